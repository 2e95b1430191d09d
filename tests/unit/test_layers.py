#!/usr/bin/env python3
"""scripts/check-layers: the real tree is clean, and each kind of include
against the layers is caught and named (issue 17).

Builds small trees in a temporary folder (no git: the script walks it),
each with one fault, and checks the script fails on each with a line that
names the file, the include and the rule; then runs it on the source tree.
Prints "N passed, N failed".
"""
import os
import shutil
import subprocess
import sys
import tempfile

top = os.environ.get("OG_TOP_SRCDIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
script = os.path.join(top, "scripts", "check-layers")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


def run(tree):
    p = subprocess.run([sys.executable, script, tree], capture_output=True,
                       text=True)
    return p.returncode, p.stdout + p.stderr


def tree(files):
    d = tempfile.mkdtemp(prefix="layers-")
    for path, text in files.items():
        full = os.path.join(d, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as fh:
            fh.write(text)
    return d


base = {
    "core/base/util.h": "#include <stddef.h>\n",
    "core/event/event.h": '#include "base/util.h"\n',
    "core/config/conf.h": '#include "event/event.h"\n',
    "core/store/store.h": '#include "config/conf.h"\n',
    "core/daemon/main.c": '#include "config.h"\n#include "store/store.h"\n',
    "plugins/p/p.h": "#include <omnigate/og_plugin.h>\n",
    "plugins/p/p.c": '#include "config.h"\n#include "p.h"\n',
    "sdk/include/omnigate/og_plugin.h": "#include <stdint.h>\n",
}

faults = [
    ("upward", {"core/base/log.h": '#include "config/conf.h"\n'},
     ['core/base/log.h:1: #include "config/conf.h"', "base may not include "
      "config"]),
    ("sibling", {"core/net/http.h": '#include "event/event.h"\n'},
     ["net may not include event"]),
    ("bare name", {"core/event/cond.c": '#include "util.h"\n'},
     ['core/event/cond.c:1: #include "util.h"', "no such core header"]),
    ("no layer", {"core/misc/x.c": '#include "base/util.h"\n'},
     ["core/misc/x.c is in no layer"]),
    ("circle", {"core/event/a.h": '#include "event/b.h"\n',
                "core/event/b.h": '#include "event/a.h"\n'},
     ["circle of includes: core/event/a.h -> core/event/b.h -> "
      "core/event/a.h"]),
    ("plugin sees core", {"plugins/p/q.c": '#include "base/util.h"\n'},
     ['plugins/p/q.c:1: #include "base/util.h"', "a plugin includes only"]),
    ("public header", {"sdk/include/omnigate/og_x.h":
                       '#include "base/util.h"\n'},
     ["a public header includes only"]),
]

d = tree(base)
rc, out = run(d)
check("clean tree", rc == 0 and "check-layers: ok" in out, out)
shutil.rmtree(d)

for name, extra, expect in faults:
    files = dict(base)
    files.update(extra)
    d = tree(files)
    rc, out = run(d)
    check(name + " fails", rc == 1, out)
    for e in expect:
        check(name + " names it", e in out, "%r not in %r" % (e, out))
    shutil.rmtree(d)

rc, out = run(top)
check("source tree", rc == 0, out)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
