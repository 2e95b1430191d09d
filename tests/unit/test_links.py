#!/usr/bin/env python3
"""Every relative link in the README and the docs resolves (issue 18).

Reads README.md, docs/**/*.md, sdk/**/*.md and plugins/*/README.md under
OG_TOP_SRCDIR; a link [text](target) or <a href="target"> that is not a
URL (http:, https:, mailto:) or a pure anchor must name a file or folder
that exists, relative to the file it stands in. Prints
"N passed, N failed".
"""
import glob
import os
import re
import sys

top = os.environ.get("OG_TOP_SRCDIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
files = [os.path.join(top, "README.md")]
for pat in ("docs/**/*.md", "sdk/**/*.md", "plugins/*/README.md",
            "core/**/README.md",
            "tests/fuzz/**/*.md"):
    files += glob.glob(os.path.join(top, pat), recursive=True)
link = re.compile(r"\]\(([^)\s]+)\)|href=\"([^\"]+)\"")
fence = re.compile(r"^\s*```")
passed = failed = 0
for f in sorted(set(files)):
    inside = False
    with open(f, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if fence.match(line):
                inside = not inside
                continue
            if inside:
                continue
            for m in link.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^(https?:|mailto:|#)", target):
                    continue
                path = target.split("#")[0]
                full = os.path.normpath(os.path.join(os.path.dirname(f), path))
                if os.path.exists(full):
                    passed += 1
                else:
                    failed += 1
                    print("%s:%d: broken link %s" %
                          (os.path.relpath(f, top), n, target))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed or passed == 0 else 0)
