#!/usr/bin/env python3
"""Durable acceptance, end to end, against the real daemon.

- crash: signed HTTP load through the webhook ingress, SIGKILL at random
  moments (12 times) and restarts; every event answered 202 reaches the
  sink at least once.
- crash points: the daemon kills itself between event insert, outbox
  insert, commit, delivery and marking delivered; no event is stored
  without its deliveries and no event is delivered more than twice.
- sinks: real HTTP endpoints answering 503, 429 with Retry-After, hanging,
  and 204 at once; retry times follow the schedule; the lifetime ends in
  the dead-letter table, which the admin API lists, requeues and purges.
- dedup: a repeated id or vendor id gets the same answer, other content
  a 409.
- disk full: the state directory on a small tmpfs; 503 while full, a
  consistent database, everything acknowledged delivered after space
  returns.

Needs OG_TOP_BUILDDIR (set by make check). Uses only the standard library.
"""
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("OG_TOP_BUILDDIR", os.getcwd())
DAEMON = os.path.join(BUILD, "core", "omnigated")
PLUGINS = {
    "webhook": os.path.join(BUILD, "tests/plugins/.libs/webhook.so"),
    "httpout": os.path.join(BUILD, "tests/plugins/.libs/httpout.so"),
    "dropdir": os.path.join(BUILD, "sdk/examples/dropdir/.libs/dropdir.so"),
    "init_fail": os.path.join(BUILD, "tests/plugins/.libs/init_fail.so"),
}
TOKEN = "t0k3n"
ADMIN_TOKEN = "adm1n-t0ken-0123456789abcdef"  # role erase: every call

failures = []


def get_raw(s, path, host="x"):
    """Sends GET path on socket s (Connection: close) and returns every
    byte of the answer; closes s."""
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % (path, host)).encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    return data


def check(cond, what):
    if not cond:
        failures.append(what)
        print("  FAIL: " + what, flush=True)
    return cond


class Daemon:
    """One configuration tree and the daemon processes run on it."""

    def __init__(self, name, state_dir=None):
        self.root = tempfile.mkdtemp(prefix="ogdur-%s." % name)
        self.conf = os.path.join(self.root, "conf")
        self.state = state_dir or os.path.join(self.root, "state")
        self.log = os.path.join(self.root, "daemon.log")
        self.proc = None
        os.makedirs(os.path.join(self.conf, "channels.d"))
        os.makedirs(os.path.join(self.conf, "routes.d"))
        plugdir = os.path.join(self.root, "plugins")
        os.makedirs(plugdir)
        for n, p in PLUGINS.items():
            shutil.copy(p, os.path.join(plugdir, n + ".so"))
        self.main_conf("")

    def main_conf(self, extra):
        # the admin API on TCP answers only bearer tokens (docs/security.md)
        self.write("conf/admin.tokens", "erase %s\n" % ADMIN_TOKEN)
        os.chmod(os.path.join(self.root, "conf/admin.tokens"), 0o600)
        self.write("conf/omnigate.conf",
                   "[http]\npublic_listen = 127.0.0.1:0\n"
                   "admin_listen = 127.0.0.1:0\n"
                   "admin_tokens = admin.tokens\n"
                   "[daemon]\nplugin_dir = ../plugins\n"
                   "shutdown_timeout = 2s\n" + extra)

    def write(self, rel, text):
        with open(os.path.join(self.root, rel), "w") as f:
            f.write(text)

    def channel(self, name, plugin, config, extra=""):
        self.write("conf/channels.d/%s.conf" % name,
                   "[channel]\nplugin = %s\n%s[config]\n%s" %
                   (plugin, extra, config))

    def route(self, to):
        self.write("conf/routes.d/all.conf",
                   "[route all]\nmatch = *\nfrom = hook\nto = %s\n" % to)

    def start(self, env=None, wrap=None, args=()):
        e = dict(os.environ)
        e.update(env or {})
        self.logpos = os.path.getsize(self.log) if os.path.exists(
            self.log) else 0
        with open(self.log, "a") as lf:
            self.proc = subprocess.Popen(
                (wrap or []) +
                [DAEMON, "-c", self.conf, "--state-dir", self.state] +
                list(args),
                stdout=lf, stderr=subprocess.STDOUT, env=e)
        deadline = time.time() + 20
        while time.time() < deadline:
            text = self.logtext()
            m_pub = re.search(r"public listening on 127\.0\.0\.1:(\d+)", text)
            m_adm = re.search(r"admin listening on 127\.0\.0\.1:(\d+)", text)
            if m_pub and m_adm and "ready" in text:
                self.pub = int(m_pub.group(1))
                self.adm = int(m_adm.group(1))
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        print(self.logtext())
        raise RuntimeError("daemon did not start")

    def logtext(self):
        with open(self.log, errors="replace") as f:
            f.seek(self.logpos)
            return f.read()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def admin(self, method, path, token=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.adm, timeout=10)
        h = {"Authorization": "Bearer " + (token or ADMIN_TOKEN)}
        h.update(headers or {})
        c.request(method, path, headers=h)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body

    def outbox(self):
        return json.loads(self.admin("GET", "/v1/outbox")[1])

    def wait_drained(self, channel, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for c in self.outbox()["channels"]:
                if c["channel"] == channel and c["waiting"] == 0:
                    return True
            time.sleep(0.05)
        return False

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def post(port, event_id, body="x", vendor=None, conn=None, etype="order.placed"):
    """POST one event to the webhook ingress; (status, body) or (0, err)."""
    own = conn is None
    try:
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        h = {"Authorization": "Bearer " + TOKEN, "X-Event-Type": etype}
        if event_id:
            h["X-Event-Id"] = event_id
        if vendor:
            h["X-Vendor-Id"] = vendor
        conn.request("POST", "/hook", body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.read().decode(), r.getheader("Retry-After")
    except (OSError, http.client.HTTPException) as e:
        return 0, str(e), None
    finally:
        if own and conn:
            conn.close()


def delivered_ids(outdir):
    """Event ids of the files the dropdir sink wrote, with repeats."""
    ids = []
    for n in os.listdir(outdir):
        m = re.match(r"\d+-(.+)\.msgpack$", n)
        if m:
            ids.append(m.group(1))
    return ids


def sink_tree(name, **kw):
    d = Daemon(name, **kw)
    out = os.path.join(d.root, "sink-out")
    os.makedirs(out)
    d.channel("hook", "webhook", "token = %s\n" % TOKEN)
    d.channel("sink", "dropdir", "outbox = %s\n" % out)
    d.route("sink")
    return d, out


# ---- crash under load -----------------------------------------------------

def test_crash_under_load():
    print("crash: SIGKILL under load, 12 times", flush=True)
    d, out = sink_tree("crash")
    acked = set()
    lock = threading.Lock()
    rng = random.Random(int(os.environ.get("OG_SEED", time.time())))
    try:
        for rnd in range(12):
            d.start()
            stop = threading.Event()

            def client(t):
                conn = http.client.HTTPConnection("127.0.0.1", d.pub,
                                                  timeout=10)
                n = 0
                while not stop.is_set():
                    eid = "c%02d-%d-%05d" % (rnd, t, n)
                    n += 1
                    st, body, _ = post(d.pub, eid, body="load", conn=conn)
                    if st == 202:
                        with lock:
                            acked.add(json.loads(body)["id"])
                    elif st == 0:
                        conn.close()
                        conn = http.client.HTTPConnection(
                            "127.0.0.1", d.pub, timeout=10)
                        time.sleep(0.01)
                conn.close()

            ths = [threading.Thread(target=client, args=(t,)) for t in range(4)]
            for t in ths:
                t.start()
            time.sleep(rng.uniform(0.15, 0.8))
            d.kill()
            stop.set()
            for t in ths:
                t.join()
        d.start()
        check(d.wait_drained("sink", 60), "crash: the backlog drains")
        check(d.stop() == 0, "crash: clean exit at the end")
        got = delivered_ids(out)
        lost = acked - set(got)
        check(len(acked) > 200, "crash: load was real (%d acks)" % len(acked))
        check(not lost, "crash: %d acknowledged events lost (e.g. %s)" %
              (len(lost), sorted(lost)[:3]))
        print("  %d acknowledged, %d deliveries, %d redelivered" %
              (len(acked), len(got), len(got) - len(set(got))), flush=True)
    finally:
        d.cleanup()


# ---- acknowledged means fsynced --------------------------------------------

def test_fsync_before_ack():
    print("durability = power: the WAL is fsynced before each 202 goes out",
          flush=True)
    for mode in ["power", "process"]:
        d, out = sink_tree("fsync")
        d.main_conf("durability = %s\n" % mode)
        trace = os.path.join(d.root, "trace")
        try:
            # LeakSanitizer cannot run under ptrace (sanitizer builds)
            d.start(env={"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
                         ":detect_leaks=0"},
                    wrap=["strace", "-f", "-y", "-qq", "-o", trace, "-e",
                          "trace=fsync,fdatasync,write,writev,sendto,sendmsg",
                          "-e", "signal=none", "-s", "16"])
            for i in range(5):
                st, _, _ = post(d.pub, "fs-%d" % i)
                check(st == 202, "fsync: accepted")
            # SIGTERM to the daemon itself, strace's child
            with open("/proc/%d/task/%d/children" % (d.proc.pid,
                                                     d.proc.pid)) as f:
                child = int(f.read().split()[0])
            os.kill(child, signal.SIGTERM)
            check(d.wait_exit() == 0, "fsync: exit")
            # each 202 written to a socket must come after an fsync that
            # followed the previous 202 (its own commit's)
            synced, answers, unsynced = False, 0, 0
            with open(trace) as f:
                for line in f:
                    # the WAL's own fsync (the sink fsyncs its files too)
                    if re.search(r"\b(fsync|fdatasync)\(\d+<[^>]*state\.db-wal>",
                                 line):
                        synced = True
                    elif "HTTP/1.1 202" in line:
                        answers += 1
                        if not synced:
                            unsynced += 1
                        synced = False
            check(answers == 5, "fsync %s: 5 answers traced (%d)" %
                  (mode, answers))
            if mode == "power":
                check(unsynced == 0, "fsync power: %d answers before their "
                      "fsync" % unsynced)
            else:
                # SQLite syncs a new WAL header once (the first commit after
                # the store opened); after that, no fsync per commit
                check(unsynced >= 4, "fsync process: no fsync per commit "
                      "(%d answers of 5 without one)" % unsynced)
        finally:
            d.cleanup()


# ---- crash points -----------------------------------------------------------

def test_crash_points():
    for point in ["event-inserted", "outbox-inserted", "committed",
                  "delivered", "marked"]:
        print("crash point %s" % point, flush=True)
        d, out = sink_tree("cp")
        try:
            d.start({"OMNIGATE_CRASHPOINT": point + ":3"})
            acked = set()
            for i in range(6):
                st, body, _ = post(d.pub, "cp-%d" % i)
                if st == 202:
                    acked.add(json.loads(body)["id"])
                if d.proc.poll() is not None:
                    break
            check(d.wait_exit(10) is not None,
                  "%s: the crash point was reached" % point)
            check("crash point %s reached" % point in d.logtext(),
                  "%s: logged" % point)
            d.start()
            # the senders retry what was not acknowledged
            for i in range(6):
                st, body, _ = post(d.pub, "cp-%d" % i)
                check(st == 202, "%s: cp-%d accepted on retry (%d %s)" %
                      (point, i, st, body))
                acked.add(json.loads(body)["id"] if st == 202 else "")
            check(d.wait_drained("sink"), "%s: drained" % point)
            check(d.stop() == 0, "%s: clean exit" % point)
            got = delivered_ids(out)
            for i in range(6):
                n = got.count("cp-%d" % i)
                check(1 <= n <= 2, "%s: cp-%d delivered %d times" %
                      (point, i, n))
            # every stored event was delivered or still has its delivery
            # waiting (a delivered outbox row is deleted)
            db = sqlite3.connect(os.path.join(d.state, "state.db"))
            stored = [r[0] for r in db.execute(
                "SELECT e.id FROM events e WHERE NOT EXISTS "
                "(SELECT 1 FROM outbox o WHERE o.event_id = e.id)")]
            lost = [i for i in stored if i not in got]
            check(not lost, "%s: stored events without deliveries: %s" %
                  (point, lost))
            check(len(stored) == 6, "%s: 6 events stored (%d)" %
                  (point, len(stored)))
            ok = db.execute("PRAGMA integrity_check").fetchone()[0]
            check(ok == "ok", "%s: integrity %s" % (point, ok))
            db.close()
        finally:
            d.cleanup()


# ---- deduplication ------------------------------------------------------------

def test_dedup():
    print("dedup: ids and vendor ids", flush=True)
    d, out = sink_tree("dedup")
    try:
        d.start()
        a = post(d.pub, "same-1", body="one")
        b = post(d.pub, "same-1", body="one")
        c = post(d.pub, "same-1", body="other")
        check(a[0] == 202 and b[:2] == a[:2], "dedup: same id, same answer "
              "(%s / %s)" % (a[:2], b[:2]))
        check(c[0] == 409, "dedup: same id, other body: 409 (%s)" % (c,))
        v1 = post(d.pub, None, body="v", vendor="T-1")
        v2 = post(d.pub, None, body="v", vendor="T-1")
        check(v1[0] == 202 and v1[:2] == v2[:2],
              "dedup: vendor id repeat answered with the first id (%s / %s)"
              % (v1[:2], v2[:2]))
        check(d.wait_drained("sink"), "dedup: drained")
        time.sleep(0.2)
        got = delivered_ids(out)
        check(got.count("same-1") == 1, "dedup: routed once")
        check(len(got) == 2, "dedup: two events delivered (%d)" % len(got))
        check(d.stop() == 0, "dedup: exit")
    finally:
        d.cleanup()


# ---- sinks ------------------------------------------------------------------

class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log = {}  # port -> [(time, event id, status)]
    mode = {}  # port -> "ok" | "503" | "429" | "hang"
    seen = {}

    def do_POST(self):
        port = self.server.server_address[1]
        n = int(self.headers.get("Content-Length", 0))
        self.rfile.read(n)
        eid = self.headers.get("X-Event-Id")
        mode = Sink.mode[port]
        first = (port, eid) not in Sink.seen
        Sink.seen[(port, eid)] = True
        if mode == "hang":
            time.sleep(3)
            status = 204
        elif mode == "503":
            status = 503
        elif mode == "429" and first:
            status = 429
        else:
            status = 204
        Sink.log.setdefault(port, []).append((time.time(), eid, status))
        try:
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "2")
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass

    def log_message(self, *a):
        pass


def serve(mode):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    srv.daemon_threads = True
    Sink.mode[srv.server_address[1]] = mode
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_sinks():
    print("sinks: 503, 429 + Retry-After, hanging and healthy at once",
          flush=True)
    srv = {m: serve(m) for m in ["ok", "503", "429", "hang"]}
    port = {m: s.server_address[1] for m, s in srv.items()}
    d = Daemon("sinks")
    sched = "retry_base = 200ms\nretry_max = 1s\n"
    d.channel("hook", "webhook", "token = %s\n" % TOKEN)
    d.channel("ok", "httpout", "url = http://127.0.0.1:%d/\n" % port["ok"],
              sched)
    d.channel("s503", "httpout", "url = http://127.0.0.1:%d/\n" % port["503"],
              sched + "retry_lifetime = 3s\n")
    d.channel("s429", "httpout", "url = http://127.0.0.1:%d/\n" % port["429"],
              sched)
    d.channel("hang", "httpout", "url = http://127.0.0.1:%d/\n"
              "timeout = 500ms\n" % port["hang"],
              sched + "max_inflight = 2\nretry_lifetime = 2s\n")
    d.route("ok, s503, s429, hang")
    try:
        d.start()
        acks = {}
        for i in range(20):
            st, body, _ = post(d.pub, "s-%02d" % i)
            check(st == 202, "sinks: accepted")
            acks["s-%02d" % i] = time.time()
            time.sleep(0.02)
        time.sleep(5)
        okl = [x for x in Sink.log.get(port["ok"], []) if x[2] == 204]
        check(len({x[1] for x in okl}) == 20,
              "sinks: healthy sink got all 20 (%d)" % len(okl))
        late = [x[0] - acks[x[1]] for x in okl if x[0] - acks[x[1]] > 1.0]
        check(not late, "sinks: healthy deliveries not held up by the others "
              "(%d over 1 s after acceptance)" % len(late))
        # 503: attempts of one event follow base 200 ms doubling, capped 1 s
        times = [x[0] for x in Sink.log.get(port["503"], [])
                 if x[1] == "s-00"]
        gaps = [b - a for a, b in zip(times, times[1:])]
        want = [min(0.2 * 2 ** i, 1.0) / 2 for i in range(len(gaps))]
        check(len(times) >= 4, "sinks: 503 retried (%d attempts)" % len(times))
        check(all(g >= w * 0.9 for g, w in zip(gaps, want)),
              "sinks: backoff gaps %s >= %s" %
              (["%.2f" % g for g in gaps], want))
        check(len(times) <= 12, "sinks: attempts stop at the lifetime")
        # 429 with Retry-After: 2
        t429 = [x[0] for x in Sink.log.get(port["429"], []) if x[1] == "s-00"]
        check(len(t429) == 2 and t429[1] - t429[0] >= 1.9,
              "sinks: Retry-After honoured (%s)" %
              ["%.2f" % (t - t429[0]) for t in t429])
        # dead letters of the 503 sink
        st, body = d.admin("GET", "/v1/dead-letters?channel=s503")
        dl = json.loads(body)
        check(st == 200 and dl["total"] == 20,
              "sinks: 20 dead letters for s503 (%s)" % body[:200])
        check(all("retry lifetime over" in x["error"] and "HTTP 503" in
                  x["error"] for x in dl["dead_letters"]),
              "sinks: dead letters say why")
        st, body = d.admin("GET", "/v1/dead-letters?channel=bad!name")
        check(st == 400, "sinks: a bad channel name is refused")
        row = dl["dead_letters"][0]["id"]
        rid = dl["dead_letters"][0]["event_id"]

        def tries():
            return len([x for x in Sink.log.get(port["503"], [])
                        if x[1] == rid])
        before = tries()
        st, body = d.admin("POST", "/v1/dead-letters/requeue?channel=s503"
                           "&id=%d" % row)
        check(st == 200 and json.loads(body)["requeued"] == 1,
              "sinks: requeue one (%s)" % body)
        # it is attempted again at once; its lifetime still counts from
        # acceptance, so the 503 makes it a dead letter again
        # (docs/durability.md)
        check(wait_for(lambda: chan(d, "s503")["dead"] == 20 and
                       chan(d, "s503")["waiting"] == 0),
              "sinks: the requeued one tried and dead again (%s)" %
              chan(d, "s503"))
        check(wait_for(lambda: tries() == before + 1),
              "sinks: the requeued delivery attempted once more (%d -> %d)" %
              (before, tries()))
        st, body = d.admin("POST", "/v1/dead-letters/purge?channel=s503")
        check(st == 200 and json.loads(body)["purged"] == 20,
              "sinks: purge (%s)" % body)
        check(chan(d, "s503")["dead"] == 0, "sinks: none left after purge")
        m = d.admin("GET", "/metrics")[1]
        check('omnigate_dead_letters{channel="hang"}' in m,
              "sinks: metrics per channel")
        check(d.stop() == 0, "sinks: exit")
    finally:
        for s in srv.values():
            s.shutdown()
        d.cleanup()


# ---- a channel that is down, removed, then back ---------------------------

def chan(d, name):
    return [c for c in d.outbox()["channels"] if c["channel"] == name][0]


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def down_channel_tree(name, route, prefix, n):
    """A daemon whose channel 'later' failed to start, routed to by
    route, after n events (ids prefix-0...) were accepted; returns the
    daemon (running) and the directory 'later' writes to once it works."""
    d, _ = sink_tree(name)
    later = os.path.join(d.root, "later-out")
    os.makedirs(later)
    d.channel("later", "init_fail", "token = x\n")
    d.route(route)
    d.start()
    for i in range(n):
        st, _, _ = post(d.pub, "%s-%d" % (prefix, i))
        check(st == 202, "%s: accepted" % name)
    return d, later


def test_channel_down_removed_back():
    print("a channel down, removed by a reload, then back", flush=True)
    d, later = down_channel_tree("later", "sink, later", "l", 5)
    try:
        check(d.wait_drained("sink"), "later: the healthy channel drained")
        c = chan(d, "later")
        check(c["waiting"] == 5 and c["queued"] == 5,
              "later: 5 waiting in memory for the failed channel (%s)" % c)
        # removed: its deliveries go back to the store, none is lost
        os.unlink(os.path.join(d.conf, "channels.d", "later.conf"))
        d.route("sink")
        d.proc.send_signal(signal.SIGHUP)
        check(wait_for(lambda: chan(d, "later")["queued"] == 0),
              "later: released from memory on removal")
        check(chan(d, "later")["waiting"] == 5, "later: still waiting")
        # back, working: the waiting deliveries arrive
        d.channel("later", "dropdir", "outbox = %s\n" % later)
        d.route("sink, later")
        d.proc.send_signal(signal.SIGHUP)
        check(d.wait_drained("later"), "later: drained once back")
        check(sorted(delivered_ids(later)) == ["l-%d" % i for i in range(5)],
              "later: every event delivered once (%s)" %
              sorted(delivered_ids(later)))
        check(d.stop() == 0, "later: exit")
    finally:
        d.cleanup()


# ---- a damaged database -------------------------------------------------------

def test_damaged_row():
    print("a stored event damaged on disk becomes a dead letter", flush=True)
    d, later = down_channel_tree("damaged", "later", "dmg", 3)
    try:
        check(d.stop() == 0, "damaged: exit")
        db = sqlite3.connect(os.path.join(d.state, "state.db"))
        db.execute("UPDATE events SET body = x'c1' WHERE id = 'dmg-1'")
        db.commit()
        db.close()
        d.channel("later", "dropdir", "outbox = %s\n" % later)
        d.start()
        check(wait_for(lambda: chan(d, "later")["dead"] == 1),
              "damaged: one dead letter")
        st, body = d.admin("GET", "/v1/dead-letters?channel=later")
        dl = json.loads(body)["dead_letters"]
        check(len(dl) == 1 and dl[0]["event_id"] == "dmg-1" and
              "not one MessagePack object" in dl[0]["error"],
              "damaged: the dead letter names the damage (%s)" % body[:300])
        check(d.wait_drained("later"), "damaged: the others delivered")
        check(sorted(delivered_ids(later)) == ["dmg-0", "dmg-2"],
              "damaged: dmg-0 and dmg-2 delivered (%s)" %
              sorted(delivered_ids(later)))
        check(d.stop() == 0, "damaged: exit")
    finally:
        d.cleanup()


# ---- disk full --------------------------------------------------------------

def mount_tmpfs(size="6m"):
    """A fresh tmpfs of size, or None (after saying SKIP) when this user
    may not mount: only root may; CI runs as root (.ci/run), so the skip
    is for developers running make check unprivileged."""
    mnt = tempfile.mkdtemp(prefix="ogfull.")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs",
                        mnt], capture_output=True, text=True)
    if r.returncode != 0:
        print("  SKIP: cannot mount a tmpfs here (%s)" % r.stderr.strip())
        os.rmdir(mnt)
        return None
    return mnt


def test_disk_full():
    print("disk full: a 6 MiB tmpfs state directory", flush=True)
    mnt = mount_tmpfs()
    if mnt is None:
        return
    d, out = sink_tree("full", state_dir=os.path.join(mnt, "state"))
    try:
        d.start()
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            try:
                f.write(b"\0" * (5 << 20))
            except OSError:
                pass
        acked, busy, ra = set(), 0, None
        body = "y" * 30000
        for i in range(200):
            st, b, retry = post(d.pub, "f-%03d" % i, body=body)
            if st == 202:
                acked.add(json.loads(b)["id"])
            elif st == 503:
                busy += 1
                ra = retry
                if busy >= 5:
                    break
            else:
                check(False, "disk full: unexpected answer %d %s" % (st, b))
        # operator actions while commits fail, at the same time as posts
        # that fail too: an answer each (200, or 503 naming the store)
        stop = threading.Event()
        answers = []

        def poster(t):
            n = 0
            while not stop.is_set():
                post(d.pub, "g-%d-%04d" % (t, n), body=body)
                n += 1

        def operator():
            while not stop.is_set():
                try:
                    answers.append(d.admin("GET", "/v1/dead-letters"))
                except (OSError, http.client.HTTPException) as e:
                    answers.append((0, str(e)))

        ths = [threading.Thread(target=poster, args=(t,)) for t in range(3)]
        ths += [threading.Thread(target=operator) for _ in range(3)]
        for t in ths:
            t.start()
        time.sleep(4)
        stop.set()
        for t in ths:
            t.join()
        bad = [a for a in answers
               if not (a[0] == 200 or (a[0] == 503 and "store fails" in a[1]))]
        check(answers and not bad, "disk full: %d operator answers, bad: %s" %
              (len(answers), bad[:2]))
        check(d.proc.poll() is None, "disk full: daemon alive")
        check(busy >= 5, "disk full: 503 while full (%d)" % busy)
        check(ra is not None, "disk full: 503 carries Retry-After")
        st, ob = d.admin("GET", "/v1/outbox")
        check(json.loads(ob)["degraded"] is True, "disk full: reported")
        db = sqlite3.connect("file:%s?mode=ro" %
                             os.path.join(d.state, "state.db"), uri=True)
        check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok",
              "disk full: database consistent")
        db.close()
        os.unlink(filler)
        time.sleep(0.5)
        for i in range(200, 210):
            st, b, _ = post(d.pub, "f-%03d" % i, body=body)
            check(st == 202, "disk full: accepted after space returned "
                  "(%d %s)" % (st, b))
            if st == 202:
                acked.add(json.loads(b)["id"])
        check(d.wait_drained("sink"), "disk full: drained")
        check(d.stop() == 0, "disk full: exit")
        got = set(delivered_ids(out))
        check(acked <= got, "disk full: %d acknowledged not delivered" %
              len(acked - got))
        print("  %d acknowledged, %d answered 503" % (len(acked), busy))
    finally:
        d.cleanup()
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)


def run(tests):
    """Runs tests (or those named on the command line); the exit status."""
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        try:
            t()
        except Exception as e:  # a dead daemon shows up as refused calls
            check(False, "%s: %s: %s" % (t.__name__, type(e).__name__, e))
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


def main():
    return run([test_dedup, test_fsync_before_ack, test_crash_points,
                test_sinks, test_channel_down_removed_back, test_damaged_row,
                test_crash_under_load, test_disk_full])


if __name__ == "__main__":
    sys.exit(main())
