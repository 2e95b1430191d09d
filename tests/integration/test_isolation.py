#!/usr/bin/env python3
"""isolation = process (issue 16, docs/isolation.md), against the real daemon.

A test plugin (tests/plugins/crashy.c, built with the public SDK) that
segfaults on its 10th delivery, spins forever, aborts or leaks runs in a
host process of its own; the signed webhook ingress takes events and an
in-process destination gets every one of them too. Each test checks that
the daemon went on accepting and delivering to the other channel, that
every acknowledged event reached both destinations (0 lost), and that the
plugin's process came back (its restarts in /metrics and the log). The
webhook ingress itself isolated: its routes are served through the host
process; killing that process answers 503 with Retry-After until it is
back, and nothing acknowledged is lost. SIGKILL of the daemon takes its
plugin processes with it.

Needs OG_TOP_BUILDDIR (set by make check).
"""
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_durable as td  # noqa: E402

check = td.check
td.PLUGINS["crashy"] = os.path.join(td.BUILD, "tests/plugins/.libs/crashy.so")


def ids_in(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()


def tree(name, sink_conf, sink_extra="", hook_extra=""):
    """webhook 'hook' -> isolated crashy 'sink' and in-process 'other'."""
    d = td.Daemon(name)

    d.out = os.path.join(d.root, "sink.ids")
    d.other = os.path.join(d.root, "other.ids")
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN, extra=hook_extra)
    d.channel("sink", "crashy", "out = %s\n%s" % (d.out, sink_conf),
              extra="isolation = process\nretry_base = 50ms\n"
              "retry_max = 500ms\n" + sink_extra)
    d.channel("other", "crashy", "out = %s\n" % d.other)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = hook\nto = sink, other\n")
    return d


def post_all(d, prefix, n, retry=False):
    """POSTs n events; returns the ids answered 202."""
    ok = []
    for i in range(n):
        eid = "%s-%d" % (prefix, i)
        for _ in range(200 if retry else 1):
            st, body, after = td.post(d.pub, eid)
            if st == 202:
                ok.append(eid)
                break
            check(not retry or st == 503 and after is not None,
                  "%s: refused with %d (%s), Retry-After %s" %
                  (eid, st, body, after))
            time.sleep(0.05)
    return ok


def metric(d, name):
    text = d.admin("GET", "/metrics")[1]
    m = re.search(r'omnigate_plugin_\w+\{instance="sink",name="%s"\} (\d+)'
                  % name, text)
    return int(m.group(1)) if m else 0


def child_pids(d):
    return [int(p) for p in re.findall(r"\[sink\] plugin process (\d+) up",
                                       d.logtext())]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def all_delivered(d, acked):
    want = set(acked)
    return td.wait_for(lambda: want <= set(ids_in(d.out)) and
                       want <= set(ids_in(d.other)), timeout=60)


def finish(d, acked, what, allowed=None):
    check(all_delivered(d, acked),
          "%s: every acknowledged event reached both destinations (%d "
          "acked; sink has %d distinct, other %d)" %
          (what, len(acked), len(set(ids_in(d.out))),
           len(set(ids_in(d.other)))))
    pids = child_pids(d)
    check(d.stop() == 0, "%s: the daemon stops clean" % what)
    # sanitizer builds: only what the test plugin does on purpose
    bad = [b for b in re.findall(r"(AddressSanitizer: [\w-]+.*|"
                                 r"runtime error: .*)", d.logtext())
           if not allowed or not re.search(allowed, b)]
    check(not bad, "%s: no sanitizer report from either process: %s"
          % (what, bad[:3]))
    time.sleep(0.2)
    check(pids and not any(alive(p) for p in pids),
          "%s: no plugin process outlives the daemon (%s)" % (what, pids))


def test_segfault_on_tenth():
    print("a plugin that segfaults on its 10th delivery", flush=True)
    d = tree("segv", "crash_at = 10\n")
    try:
        d.start()
        # each process life delivers 9: the 40 take five lives, restarted
        # after 0.2, 0.4, 0.8 and 1.6 s
        acked = post_all(d, "segv", 40)
        check(len(acked) == 40, "segv: all 40 accepted while the plugin "
              "crashes (%d)" % len(acked))
        check(all_delivered(d, acked), "segv: all delivered")
        log = d.logtext()
        check(re.search(r"\[sink\] plugin process \d+ (died of signal 11|"
                        r"exited with status 1)", log) is not None,
              "segv: the crash is logged with its signal")
        check("up again" in log, "segv: the plugin process came back")
        restarts = metric(d, "isolation_restarts")
        check(restarts >= 1, "segv: restarts counted in /metrics (%d)"
              % restarts)
        check(metric(d, "taken") > 0,
              "segv: the plugin's own counter reaches /metrics")
        print("  %d restarts, %d deliveries by the sink (%d distinct)" %
              (restarts, len(ids_in(d.out)), len(set(ids_in(d.out)))),
              flush=True)
        finish(d, acked, "segv", allowed=r"SEGV|store to null pointer")
    finally:
        d.cleanup()


def test_hang():
    print("a plugin that hangs in send()", flush=True)
    d = tree("hang", "hang_at = 5\n", sink_extra="heartbeat_timeout = 1s\n")
    try:
        d.start()
        t0 = time.time()
        # 4 deliveries a process life: three lives
        acked = post_all(d, "hang", 12)
        check(len(acked) == 12, "hang: all accepted (%d)" % len(acked))
        check(td.wait_for(lambda: set(acked) <= set(ids_in(d.other)), 10),
              "hang: the other channel is served meanwhile")
        finish_t = all_delivered(d, acked)
        check(finish_t, "hang: all delivered after the hung process was "
              "killed")
        check("left a heartbeat unanswered" in d.logtext(),
              "hang: the unanswered heartbeat is logged")
        print("  delivered in %.1f s" % (time.time() - t0), flush=True)
        finish(d, acked, "hang")
    finally:
        d.cleanup()


def test_abort():
    print("a plugin that aborts", flush=True)
    d = tree("abort", "abort_at = 3\n")
    try:
        d.start()
        acked = post_all(d, "abort", 6)  # 2 a process life
        check(all_delivered(d, acked), "abort: all delivered")
        check(re.search(r"plugin process \d+ (died of signal 6|exited with)",
                        d.logtext()) is not None, "abort: logged")
        finish(d, acked, "abort")
    finally:
        d.cleanup()


def test_leak():
    print("a plugin that leaks 4 MiB a delivery under memory_limit = 160M",
          flush=True)
    d = tree("leak", "leak_kb = 4096\n",
             sink_extra="memory_limit = 160M\nheartbeat_timeout = 1s\n")
    try:
        d.start()
        acked = post_all(d, "leak", 120)
        check(len(acked) == 120, "leak: all accepted (%d)" % len(acked))
        check(all_delivered(d, acked), "leak: all delivered")
        log = d.logtext()
        check("over memory_limit" in log,
              "leak: the process over its limit is killed and logged")
        m = re.findall(r"was killed: resident memory (\d+) MiB over "
                       r"memory_limit \(160 MiB\); ", log)
        print("  killed at %s MiB resident" % ", ".join(m), flush=True)
        check(all(int(x) < 400 for x in m),
              "leak: killed close to the limit, not far past it")
        rss = td.wait_for(lambda: metric(d, "isolation_resident_bytes") > 0)
        check(rss, "leak: the resident size is a gauge in /metrics")
        finish(d, acked, "leak", allowed=r"\d+ byte\(s\) leaked")
    finally:
        d.cleanup()


def test_isolated_ingress():
    print("the webhook ingress isolated: routes served through its process",
          flush=True)
    d = td.Daemon("ingress")
    d.out = os.path.join(d.root, "sink.ids")
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN,
              extra="isolation = process\n")
    d.channel("sink", "crashy", "out = %s\n" % d.out)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = hook\nto = sink\n")
    try:
        d.start()
        st, body, _ = td.post(d.pub, "in-0")
        check(st == 202, "ingress: an event through the isolated webhook "
              "(%d %s)" % (st, body))
        st, body, _ = td.post(d.pub, "in-0")
        check(st == 200 or st == 202,
              "ingress: a repeat gets the same answer (%d %s)" % (st, body))
        # a bad token is refused by the plugin, in its process
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", d.pub, timeout=10)
        c.request("POST", "/hook", body="x", headers={
            "Authorization": "Bearer wrong", "X-Event-Type": "order.placed"})
        r = c.getresponse()
        r.read()
        check(r.status == 401, "ingress: a wrong token is 401 (%d)"
              % r.status)
        c.close()
        pids = [int(p) for p in re.findall(
            r"\[hook\] plugin process (\d+) up", d.logtext())]
        acked = []
        stop = threading.Event()

        def load():
            i = 1
            while not stop.is_set():
                eid = "in-%d" % i
                st, _, after = td.post(d.pub, eid)
                if st == 202:
                    acked.append(eid)
                    i += 1
                elif st == 503 and after is not None:
                    time.sleep(0.02)
                else:
                    check(False, "ingress: %s answered %d" % (eid, st))
                    time.sleep(0.05)
        t = threading.Thread(target=load)
        t.start()
        time.sleep(0.5)
        os.kill(pids[0], signal.SIGKILL)
        time.sleep(1.5)
        stop.set()
        t.join()
        acked.append("in-0")
        check(re.search(r"\[hook\] plugin process %d died of signal 9"
                        % pids[0], d.logtext()) is not None,
              "ingress: the killed process is logged")
        check("[hook] plugin process" in d.logtext() and
              "up again" in d.logtext(), "ingress: it came back")
        check(td.wait_for(lambda: set(acked) <= set(ids_in(d.out)), 30),
              "ingress: all %d acknowledged events delivered (%d)" %
              (len(acked), len(set(ids_in(d.out)))))
        print("  %d events acknowledged around the kill" % len(acked),
              flush=True)
        d.stop()
    finally:
        d.cleanup()


def test_daemon_killed():
    print("SIGKILL of the daemon takes its plugin processes with it",
          flush=True)
    d = tree("orphan", "")
    try:
        d.start()
        pids = child_pids(d)
        check(len(pids) == 1 and alive(pids[0]), "orphan: one child")
        d.kill()
        check(td.wait_for(lambda: not alive(pids[0]), 5),
              "orphan: the plugin process died with the daemon")
    finally:
        d.cleanup()


def test_check_config():
    print("isolation keys are checked", flush=True)
    d = tree("conf", "")
    d.write("conf/channels.d/bad.conf", "[channel]\nplugin = crashy\n"
            "isolation = sometimes\nmemory_limit = 1k\n[config]\nout = x\n")
    try:
        import subprocess
        r = subprocess.run([td.DAEMON, "-c", d.conf, "--check-config"],
                           capture_output=True, text=True)
        out = r.stdout + r.stderr
        check(r.returncode == 78, "conf: refused (%d)" % r.returncode)
        check("isolation: expected 'none'" in out and
              "memory_limit: must be 0 (none) or at least 8M" in out,
              "conf: each bad key named:\n" + out)
    finally:
        d.cleanup()


def main():
    return td.run([test_check_config, test_segfault_on_tenth, test_hang,
                   test_abort, test_leak, test_isolated_ingress,
                   test_daemon_killed])


if __name__ == "__main__":
    sys.exit(main())
