#!/usr/bin/env python3
"""Resilience under abuse (issue 16), against the real daemon.

- a client that pipelines requests and never reads: the daemon stops
  reading it (backpressure) and its resident size stays bounded;
- idle connections cost a few KB each, not a read buffer each;
- a connection that sends nothing is closed after read_timeout, not
  idle_timeout;
- long-polls whose browsers went away give their connection slots back at
  once;
- an event over max_event_size is answered 413, not 503.

Needs OG_TOP_BUILDDIR (set by make check).
"""
import json
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_durable as td  # noqa: E402
import test_security as tsec  # noqa: E402
import test_web as tw  # noqa: E402

check = td.check
td.PLUGINS["web"] = os.path.join(td.BUILD, "plugins/web/.libs/web.so")
td.PLUGINS["stall"] = os.path.join(td.BUILD, "tests/plugins/.libs/stall.so")
KEY = "wk_abuse_0123456789abcdef"
SKEY = "sk_abuse_0123456789abcdef"


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def web_tree(name, main_extra="", web_extra=""):
    d = td.Daemon(name)
    d.main_conf(main_extra)
    d.channel("web", "web", "write_keys = shop=%s\nserver_keys = b=%s\n%s" %
              (KEY, SKEY, web_extra))
    return d


def request(d, method, path, body=b"", headers=None):
    """(status, body) of one request on the public listener."""
    return tw.request(d, method, path, body, headers)[:2]


def test_pipelining_reader_that_never_reads():
    print("a client that pipelines and never reads", flush=True)
    d = web_tree("pipeline")
    try:
        d.start()
        before = rss_kb(d.proc.pid)
        s = socket.create_connection(("127.0.0.1", d.pub))
        s.setblocking(False)
        req = b"GET /v1/omnigate.js HTTP/1.1\r\nHost: x\r\n\r\n" * 64
        sent, last_progress, t0 = 0, time.time(), time.time()
        peak = before
        while time.time() - t0 < 8 and time.time() - last_progress < 2:
            try:
                sent += s.send(req)
                last_progress = time.time()
            except BlockingIOError:
                time.sleep(0.01)
            peak = max(peak, rss_kb(d.proc.pid))
        stalled = time.time() - last_progress >= 2
        peak = max(peak, rss_kb(d.proc.pid))
        print("  sent %d kB before the daemon stopped reading; RSS %d kB -> "
              "%d kB at most" % (sent >> 10, before, peak), flush=True)
        check(stalled, "the daemon stopped reading the client (sent %d MB)"
              % (sent >> 20))
        check(peak - before < 64 * 1024,
              "resident size bounded: %d kB before, %d kB at most" %
              (before, peak))
        st, body = request(d, "GET", "/v1/omnigate.js")
        check(st == 200, "others are still served")
        s.close()
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def test_idle_connections():
    print("idle connections: their cost, and read_timeout from accept",
          flush=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = 2000
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 500), hard))
    d = web_tree("idle", main_extra="")
    conns = []
    try:
        d.start()
        st, body = request(d, "GET", "/v1/omnigate.js")  # warm
        time.sleep(0.3)
        before = rss_kb(d.proc.pid)
        for i in range(n):  # from 4 addresses: 1024 is the per-client bound
            c = socket.create_connection(("127.0.0.1", d.pub),
                                         source_address=("127.0.1.%d" % (i % 4
                                                                      + 1), 0))
            conns.append(c)
        # each connection must be taken: one request on the last ones
        time.sleep(1.0)
        after = rss_kb(d.proc.pid)
        per = (after - before) * 1024 / n
        print("  %.0f bytes of RSS per idle connection (%d connections)" %
              (per, n), flush=True)
        check(per <= 8 * 1024, "%.0f bytes per idle connection (%d kB for "
              "%d)" % (per, after - before, n))
        st, body = request(d, "GET", "/v1/omnigate.js")
        check(st == 200, "and the daemon still answers")
        for c in conns:
            c.close()
        conns = []
        check(d.stop() == 0, "clean stop")
    finally:
        for c in conns:
            c.close()
        d.cleanup()
    # a connection that sends nothing goes after read_timeout
    d = web_tree("silent", main_extra="[http]\nread_timeout = 500ms\n"
                 "idle_timeout = 60s\n")
    # main_conf wrote [http] already: merge by rewriting the keys
    text = open(os.path.join(d.conf, "omnigate.conf")).read()
    text = text.replace("[http]\nread_timeout = 500ms\nidle_timeout = 60s\n",
                        "")
    text = text.replace("admin_tokens = admin.tokens\n",
                        "admin_tokens = admin.tokens\nread_timeout = 500ms\n"
                        "idle_timeout = 60s\n")
    d.write("conf/omnigate.conf", text)
    try:
        d.start()
        s = socket.create_connection(("127.0.0.1", d.pub))
        s.settimeout(5)
        t0 = time.time()
        try:
            data = s.recv(100)
        except socket.timeout:
            data = None
        took = time.time() - t0
        check(data is not None and took < 3,
              "a silent connection is closed after read_timeout: %.1f s %r"
              % (took, data[:40] if data else data))
        s.close()
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def test_closed_long_polls():
    print("long-polls whose browsers went away free their slots", flush=True)
    d = web_tree("polls", main_extra="",
                 web_extra="live_wait = 30s\n")
    text = open(os.path.join(d.conf, "omnigate.conf")).read()
    d.write("conf/omnigate.conf", text.replace(
        "admin_tokens = admin.tokens\n",
        "admin_tokens = admin.tokens\nmax_connections = 25\n"))
    try:
        d.start()
        anon, token = tw.new_session(d, key=KEY)
        polls = []
        for _ in range(25):
            s = socket.create_connection(("127.0.0.1", d.pub))
            s.sendall(("GET /v1/messages?anonymousId=%s HTTP/1.1\r\n"
                       "Host: x\r\nAuthorization: Bearer %s\r\n"
                       "X-Omnigate-Session: %s\r\n\r\n" %
                       (anon, KEY, token)).encode())
            polls.append(s)
        time.sleep(0.5)
        for s in polls:
            s.close()
        time.sleep(0.3)
        ok = 0
        for _ in range(20):
            st, body = request(d, "GET", "/v1/omnigate.js")
            ok += st == 200
        check(ok == 20, "new clients are served at once (%d of 20)" % ok)
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def test_too_large():
    print("an event over max_event_size: 413", flush=True)
    d = web_tree("large", main_extra="max_event_size = 1k\n",
                 web_extra="max_body = 64k\n")
    try:
        d.start()
        st, body = request(d, "POST", "/v1/events", json.dumps(
            {"type": "page.viewed", "props": {"pad": "x" * 4000}}),
            {"Content-Type": "application/json",
             "Authorization": "Bearer " + SKEY})
        check(st == 413 and "max_event_size" in json.loads(body)["error"],
              "413 naming the limit: %d %s" % (st, body))
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def test_fd_exhaustion():
    print("descriptors exhausted: logged once with figures, /health says it",
          flush=True)
    d = web_tree("fds")
    conns = []
    try:
        d.start(wrap=["prlimit", "--nofile=64", "--"])
        for _ in range(120):
            try:
                conns.append(socket.create_connection(("127.0.0.1", d.pub),
                                                      timeout=2))
            except OSError:
                break
        time.sleep(2.5)  # the daemon looks every 2 s
        for c in conns:
            c.close()
        conns = []
        time.sleep(0.5)
        st, body = d.admin("GET", "/health")
        health = json.loads(body) if body.startswith("{") else {}
        check(st == 503 and health.get("status") == "degraded" and
              "could not be accepted" in health.get("reason", ""),
              "/health reports it: %d %s" % (st, body))
        log = d.logtext()
        lines = [x for x in log.splitlines()
                 if "file descriptors exhausted" in x]
        check(len(lines) == 1 and "limit 64" in lines[0],
              "one log line with the figures: %s" % lines)
        st, body = request(d, "GET", "/v1/omnigate.js")
        check(st == 200, "served again once descriptors are free")
        check(d.stop() == 0, "clean stop")
    finally:
        for c in conns:
            c.close()
        d.cleanup()


def test_stalled_loop():
    print("a plugin that blocks the loop: logged, /health says it",
          flush=True)
    d = web_tree("stall")
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN)
    d.channel("slow", "stall", "stall_ms = 1500\n")
    d.write("conf/routes.d/all.conf",
            "[route s]\nmatch = test.stall\nfrom = hook\nto = slow\n")
    try:
        d.start()
        st, body = d.admin("GET", "/health")
        check(st == 200, "healthy at first: %s" % body)
        import test_customers as tc
        tc.send(d, "test.stall")
        time.sleep(2.5)
        st, body = d.admin("GET", "/health")
        health = json.loads(body) if body.startswith("{") else {}
        check(st == 503 and "event loop stalled for" in
              health.get("reason", ""), "/health: %d %s" % (st, body))
        check("the event loop was stalled for" in d.logtext(),
              "and the log says it")
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def from_addr(d, src, path="/v1/omnigate.js"):
    """(status, headers) of a GET to the public listener from source
    address src (any of 127.0.0.0/8 is this machine)."""
    s = socket.create_connection(("127.0.0.1", d.pub), timeout=5,
                                 source_address=(src, 0))
    data = td.get_raw(s, path)
    head = data.split(b"\r\n\r\n")[0].decode(errors="replace")
    return (int(head.split(" ")[1]) if head.startswith("HTTP/") else 0,
            head)


def test_per_client_limits():
    print("one client cannot hold every slot nor flood with requests",
          flush=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4000), hard))
    d = web_tree("perclient")
    text = open(os.path.join(d.conf, "omnigate.conf")).read()
    d.write("conf/omnigate.conf", text.replace(
        "admin_tokens = admin.tokens\n",
        "admin_tokens = admin.tokens\nmax_requests_per_client = 20\n"))
    conns = []
    try:
        d.start(wrap=["prlimit", "--nofile=8192", "--"])
        # the default: 1024 connections per client address
        refused = 0
        for _ in range(1100):
            c = socket.create_connection(("127.0.0.1", d.pub),
                                         source_address=("127.0.0.9", 0))
            conns.append(c)
        time.sleep(1.0)
        for c in conns[1024:]:
            c.settimeout(2)
            try:
                refused += c.recv(200).startswith(b"HTTP/1.1 503")
            except OSError:
                pass
        check(refused == 76, "connections past 1024 from one address get "
              "503: %d of 76" % refused)
        st, head = from_addr(d, "127.0.0.2")
        check(st == 200, "another client is served meanwhile: %d" % st)
        for c in conns:
            c.close()
        conns = []
        # the request rate: 20/s with a burst of 40, then 429
        s = socket.create_connection(("127.0.0.1", d.pub),
                                     source_address=("127.0.0.3", 0))
        s.sendall(b"GET /v1/omnigate.js HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
        s.settimeout(5)
        data = b""
        deadline = time.time() + 5
        while data.count(b"HTTP/1.1 ") < 100 and time.time() < deadline:
            try:
                b = s.recv(1 << 20)
            except socket.timeout:
                break
            if not b:
                break
            data += b
        s.close()
        ok, busy = data.count(b"HTTP/1.1 200"), data.count(b"HTTP/1.1 429")
        check(40 <= ok <= 45 and ok + busy == 100 and
              b"Retry-After: 1" in data,
              "a burst of 40, then 429 with Retry-After: %d ok, %d 429" %
              (ok, busy))
        st, head = from_addr(d, "127.0.0.4")
        check(st == 200, "another client is not slowed: %d" % st)
        check(d.stop() == 0, "clean stop")
    finally:
        for c in conns:
            c.close()
        d.cleanup()


def test_check_config_runs_plugin_checks():
    print("--check-config runs each plugin's own check", flush=True)
    d = web_tree("plugcheck", web_extra="allowed_origins = ftp://x.example\n")
    try:
        rc, out = tsec.check_config(d)
        check(rc != 0 and
              "channels.d/web.conf:6: plugin 'web': allowed_origins: "
              "expected origins" in out,
              "the web plugin's refusal, at its key's line: %s" % out)
        try:
            d.start()
            check(False, "the daemon started with it")
        except RuntimeError:
            check("allowed_origins: expected origins" in d.logtext(),
                  "and the daemon does not start on it")
    finally:
        d.cleanup()


def test_quiet_plugin_commits_at_once():
    print("a quiet plugin's og_emit() is committed at once, not at the "
          "loop's next wake", flush=True)
    import test_customers as tc
    d = td.Daemon("quiet")
    inbox, out = os.path.join(d.root, "in"), os.path.join(d.root, "out")
    os.makedirs(inbox)
    os.makedirs(out)
    d.channel("pos", "dropdir", "inbox = %s\npoll_interval = 2s\n" % inbox)
    d.channel("sink", "dropdir", "outbox = %s\n" % out)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = pos\nto = sink\n")
    try:
        d.start()
        lat = []
        for i in range(3):
            with open(os.path.join(inbox, ".t%d" % i), "wb") as f:
                f.write(tc.mp_pack({"v": 1, "type": "order.placed",
                                    "id": "q-%d" % i}))
            os.rename(os.path.join(inbox, ".t%d" % i),
                      os.path.join(inbox, "q-%d.msgpack" % i))
            got = tc.wait_delivered(out, ["q-%d" % i], 10)
            ev = got.get("q-%d" % i, {})
            f = [n for n in os.listdir(out) if n.endswith("q-%d.msgpack" % i)]
            if ev and f:
                written = os.stat(os.path.join(out, f[0])).st_mtime * 1000
                lat.append(written - ev["received"])
        print("  accepted -> delivered: %s ms" % ["%.0f" % x for x in lat],
              flush=True)
        check(len(lat) == 3 and max(lat) < 150,
              "each within 150 ms of its acceptance: %s" % lat)
        check(not any(n.endswith(".msgpack") for n in os.listdir(inbox)),
              "and its file removed after the commit")
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def main():
    return td.run([test_pipelining_reader_that_never_reads,
                   test_idle_connections, test_closed_long_polls,
                   test_too_large, test_fd_exhaustion, test_stalled_loop,
                   test_per_client_limits,
                   test_check_config_runs_plugin_checks,
                   test_quiet_plugin_commits_at_once])


if __name__ == "__main__":
    sys.exit(main())
