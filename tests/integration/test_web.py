#!/usr/bin/env python3
"""The web channel plugin against the real daemon.

- the events API: every status code with its exact body (202, 400 for bad
  JSON, a bad field and a batch with one bad event, 401, 409, 413 twice,
  415, 429 with Retry-After), duplicates answered like the first time,
  batches stored whole or not at all;
- the Segment-compatible API: fixtures of identify, track (Order
  Completed), page and alias mapped to envelopes, a signed user id
  verified, a repeated messageId not routed twice, the batch endpoint;
- outbound webhooks: signatures checked by an independent implementation
  (the standardwebhooks package from npm, run with node) for both secrets
  of a rotation, a tampered body refused by it; 429 with Retry-After
  retried; 410 disables the endpoint.

Needs OG_TOP_BUILDDIR (set by make check), node and npm (the npm registry)
for the signature check.
"""
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_durable as td  # noqa: E402
import test_customers as tc  # noqa: E402

check = td.check
BUILD = td.BUILD
SRC = os.environ.get("OG_TOP_SRCDIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
td.PLUGINS["web"] = os.path.join(BUILD, "plugins/web/.libs/web.so")
KEY = "wk_shop_0123456789"
KEY2 = "wk_app_9876543210"
SKEY = "sk_backend_0123456789abcdef"  # a server key: the shop's backend
SECRET = "s3cret"
WH1 = "whsec_" + base64.b64encode(b"first webhook secret 123").decode()
WH2 = "whsec_" + base64.b64encode(b"second webhook secret 45").decode()
BATCH_NOTE = "stored whole or not at all: nothing was stored"


def request(d, method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", d.pub, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read().decode()
    c.close()
    return r.status, data, dict(r.getheaders())


def events(d, body, key=SKEY, ctype="application/json", session=None):
    h = {"Content-Type": ctype}
    if session:
        h["X-Omnigate-Session"] = session
    if key:
        h["Authorization"] = "Bearer " + key
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return request(d, "POST", "/v1/events", body, h)


def segment(d, call, body, key=SKEY, session=None):
    auth = base64.b64encode((key + ":").encode()).decode()
    h = {"Content-Type": "application/json", "Authorization": "Basic " + auth}
    if session:
        h["X-Omnigate-Session"] = session
    return request(d, "POST", "/v1/" + call, json.dumps(body), h)


def new_session(d, key=KEY):
    """A visitor's session: (anonymous id, "ANON.TOKEN")."""
    st, body, h = request(d, "POST", "/v1/session", "{}",
                          {"Content-Type": "application/json",
                           "Authorization": "Bearer " + key})
    b = json.loads(body)
    return b.get("anonymousId"), b.get("session")


def fixture(name):
    with open(os.path.join(SRC, "tests/fixtures/segment", name + ".json")) as f:
        return json.load(f)


def web_tree(name, main_extra="", web_extra=""):
    d = td.Daemon(name)
    out = os.path.join(d.root, "sink-out")
    os.makedirs(out)
    d.main_conf(main_extra)
    d.channel("web", "web",
              "write_keys = shop=%s, app=%s\nserver_keys = backend=%s\n"
              "identity_secret = %s\n"
              "max_batch = 5\nmax_body = 4k\n%s" % (KEY, KEY2, SKEY, SECRET,
                                                   web_extra))
    d.channel("sink", "dropdir", "outbox = %s\n" % out)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = web\nto = sink\n")
    return d, out


def ev(etype="page.viewed", **kw):
    e = {"type": etype, "ids": [{"kind": "anon", "value": "v-1"}]}
    e.update(kw)
    return e


def test_events_api():
    print("events API: status codes and bodies", flush=True)
    d, out = web_tree("webapi", main_extra="queue_max = 4\n")
    try:
        d.start()
        st, body, h = events(d, ev(id="e-1", occurred="2026-11-30T10:00:00Z"))
        check(st == 202 and json.loads(body) == {"accepted": 1,
                                                  "ids": ["e-1"]},
              "202 with the id: %d %s" % (st, body))
        got = tc.wait_delivered(out, ["e-1"])
        check(got.get("e-1", {}).get("occurred") == 1796032800000,
              "RFC 3339 occurred converted: %s" % got.get("e-1"))
        check(got.get("e-1", {}).get("customer") is not None,
              "the customer resolved")
        st, body, h = events(d, ev(id="e-1", occurred="2026-11-30T10:00:00Z"))
        check(st == 202 and json.loads(body)["ids"] == ["e-1"],
              "a duplicate gets the same answer: %s" % body)
        st, body, h = events(d, [ev(id="b-1"), ev(id="b-2"), ev(id="b-3")])
        check(st == 202 and json.loads(body) == {
            "accepted": 3, "ids": ["b-1", "b-2", "b-3"]}, "batch: %s" % body)

        st, body, h = events(d, '{"type": "x",')
        check(st == 400 and json.loads(body)["error"].startswith(
            "invalid JSON at line 1 column"), "bad JSON: %d %s" % (st, body))
        st, body, h = events(d, ev("Bad Type"))
        check(st == 400 and json.loads(body) == {
            "error": "field 'type' must be 1-128 characters of a-z, 0-9, "
                     "'_', '-', '.'"}, "a bad field named: %s" % body)
        st, body, h = events(d, ev(occurred="yesterday"))
        check(st == 400 and "field 'occurred'" in body, "bad time: %s" % body)
        st, body, h = events(d, [ev(id="p-1"), {"ids": []}, ev(id="p-3")])
        check(st == 400 and json.loads(body) == {
            "error": "event 1: missing field 'type'", "index": 1,
            "accepted": 0, "batch": BATCH_NOTE},
            "a batch with one bad event: %s" % body)
        st, body, h = events(d, [ev(id="q-1"), ev(colour="red")])
        check(st == 400 and json.loads(body)["index"] == 1 and
              "unknown field 'colour'" in json.loads(body)["error"],
              "unknown field named with its index: %s" % body)
        time.sleep(0.3)
        check(not ({"p-1", "p-3", "q-1"} & set(tc.ids_in(out))),
              "nothing of a refused batch was stored")
        st, body, h = events(d, [])
        check(st == 400 and json.loads(body) == {"error": "empty batch"},
              "empty batch: %s" % body)

        st, body, h = events(d, ev(), key=None)
        check(st == 401 and json.loads(body) == {
            "error": "missing or unknown write key"} and
            h.get("WWW-Authenticate") == 'Bearer realm="omnigate"',
            "401 without a key: %s %s" % (body, h))
        st, body, h = events(d, ev(), key="wk_guess")
        check(st == 401, "401 with a wrong key")
        st, body, h = events(d, ev(id="k-2"), key=KEY2)
        check(st == 202, "a browser key works")

        st, body, h = events(d, ev(), ctype="text/plain")
        check(st == 415 and json.loads(body) == {
            "error": "Content-Type must be application/json"},
            "415: %s" % body)
        st, body, h = events(d, ev(), ctype="application/json; charset=utf-8")
        check(st == 202, "a charset parameter is fine")
        st, body, h = events(d, [ev() for _ in range(6)])
        check(st == 413 and json.loads(body) == {
            "error": "batch of 6 events exceeds max_batch (5)"},
            "413 for too many events: %s" % body)
        st, body, h = events(d, ev(props={"x": "y" * 5000}))
        check(st == 413 and "error" in json.loads(body),
              "413 for a large body: %d %s" % (st, body))

        # conflicts: all or nothing
        st, body, h = events(d, [ev(id="c-new"), ev(id="e-1", props={"o": 1})])
        check(st == 409 and json.loads(body) == {
            "error": "event 1: its id (or vendor id) was accepted before "
                     "with other content", "index": 1, "accepted": 0,
            "batch": BATCH_NOTE}, "409 names the event: %s" % body)
        st, body, h = events(d, ev(id="c-new"))
        check(st == 202, "the other event of that batch was not stored")
        check("c-new" in tc.wait_delivered(out, ["c-new"]),
              "and arrives once sent alone")

        # overload: a batch larger than the commit queue (queue_max = 4)
        st, body, h = events(d, [ev() for _ in range(5)])
        check(st == 429 and json.loads(body) == {"error": "busy: retry later"}
              and h.get("Retry-After") == "1", "429 with Retry-After: %d %s %s"
              % (st, body, h))
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def test_segment():
    print("Segment-compatible API", flush=True)
    d, out = web_tree("segment")
    try:
        d.start()
        for call, name in (("identify", "identify"),
                           ("track", "track-order-completed"),
                           ("page", "page"), ("alias", "alias")):
            st, body, h = segment(d, call, fixture(name))
            check(st == 200 and json.loads(body) == {"success": True},
                  "%s: 200 %s" % (call, body))
        deadline = time.time() + 10
        while time.time() < deadline and len(tc.files_of(out)) < 4:
            time.sleep(0.05)
        got = {e["type"]: e for e in tc.delivered(out).values()}
        check(set(got) == {"customer.identified", "order.placed",
                           "page.viewed", "customer.aliased"},
              "four events mapped: %s" % sorted(got))
        o = got.get("order.placed", {})
        check(o.get("props", {}).get("total") == {"amount": 2750,
                                                   "currency": "EUR"} and
              len(o.get("props", {}).get("lines", [])) == 2 and
              o.get("source", {}).get("vendor_id") ==
              "ajs-next-69b2bd0f3c5d4c0a8b8a5b9c1b2e5f10",
              "order mapped with money, lines and messageId: %s" % o)
        ident = got.get("customer.identified", {})
        check(ident.get("customer") == o.get("customer") and
              ident.get("customer") == got.get("page.viewed", {}).get(
                  "customer"), "one customer for the visitor's calls")
        st, p = tc.profile(d, kind="user", value="97980cfea0067")
        users = [i for i in p.get("identities", []) if i["kind"] == "user"]
        check(st == 200 and users and users[0]["verified"],
              "the signed user id is verified: %s" % users)
        check(p.get("traits", {}).get("name") == "Peter Gibbons",
              "traits from identify")
        # the same messageId again: answered, not routed twice
        st, body, h = segment(d, "track", fixture("track-order-completed"))
        check(st == 200, "repeat answered 200")
        time.sleep(0.5)
        check(len(tc.files_of(out)) == 4, "a repeated messageId is not "
              "delivered again (%d files)" % len(tc.files_of(out)))
        # batch endpoint, and a bad call in it
        b = {"batch": [
            {"type": "track", "event": "Product Added", "anonymousId": "z-1",
             "messageId": "m-b1", "properties": {"sku": "S1", "price": 9.99,
                                                 "currency": "usd"}},
            {"type": "screen", "name": "Cart", "anonymousId": "z-1",
             "messageId": "m-b2"}]}
        st, body, h = segment(d, "batch", b)
        check(st == 200, "batch: %d %s" % (st, body))
        b["batch"].append({"type": "launch", "anonymousId": "z-1"})
        st, body, h = segment(d, "batch", b)
        check(st == 400 and json.loads(body)["index"] == 2 and
              "is not a Segment call" in json.loads(body)["error"],
              "a bad call in a batch is named: %s" % body)
        st, body, h = segment(d, "track", fixture("page"), key="nope")
        check(st == 401, "Segment with a wrong write key: 401")
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records webhooks; answers per event id: 429 once, then 410, else 204."""
    got = []
    plan = {}
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        msg = json.loads(body)
        eid = msg["data"]["id"]
        with Receiver.lock:
            Receiver.got.append((dict(self.headers), body, time.time()))
            step = Receiver.plan.get(eid, [204])
            status = step.pop(0) if len(step) > 1 else step[0]
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "2")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def npm_standardwebhooks(root):
    """Installs the standardwebhooks package from npm into root."""
    if shutil.which("npm") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "npm"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = subprocess.run(["npm", "install", "--silent", "--no-audit",
                        "--no-fund", "--prefix", root, "standardwebhooks@1"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    return r.returncode == 0


VERIFY_JS = r"""
const { Webhook } = require("standardwebhooks");
const [secret, file] = process.argv.slice(2);
const m = JSON.parse(require("fs").readFileSync(file, "utf8"));
try {
  new Webhook(secret).verify(m.body, m.headers);
  console.log("ok");
} catch (e) {
  console.log("refused: " + e.message);
}
"""


def verify(root, secret, headers, body):
    f = os.path.join(root, "msg.json")
    with open(f, "w") as fh:
        json.dump({"headers": {k.lower(): v for k, v in headers.items()},
                   "body": body.decode()}, fh)
    js = os.path.join(root, "verify.js")
    with open(js, "w") as fh:
        fh.write(VERIFY_JS)
    r = subprocess.run(["node", js, secret, f], cwd=root,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.stdout.decode().strip()


def test_webhooks():
    print("outbound webhooks", flush=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    d, out = web_tree("hooks")
    npmroot = tempfile.mkdtemp(prefix="ogweb-npm.")
    d.channel("crm", "web",
              "webhook_url = http://hookuser:canary-pass@127.0.0.1:%d/hook"
              "?token=canary-token\n"
              "webhook_secrets = %s %s\n" % (srv.server_address[1], WH1, WH2),
              "retry_base = 200ms\n")
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = web\nto = sink, crm\n")
    try:
        have_npm = npm_standardwebhooks(npmroot)
        check(have_npm, "npm installed standardwebhooks")
        d.start()
        Receiver.plan = {"w-429": [429, 204], "w-410": [410]}
        st, body, h = events(d, [ev("order.placed", id="w-1",
                                    props={"total": {"amount": 100,
                                                     "currency": "EUR"}})])
        check(st == 202, "accepted")
        check(td.wait_for(lambda: len(Receiver.got) >= 1, 10), "delivered")
        headers, wbody, _ = Receiver.got[0]
        msg = json.loads(wbody)
        check(msg["type"] == "order.placed" and msg["data"]["id"] == "w-1" and
              msg["data"]["props"]["total"]["amount"] == 100,
              "the event as JSON: %s" % msg)
        check(headers.get("webhook-id") and headers.get("webhook-timestamp"),
              "Standard Webhooks headers: %s" % headers)
        sigs = headers.get("webhook-signature", "").split(" ")
        check(len(sigs) == 2 and all(s.startswith("v1,") for s in sigs),
              "two signatures for two secrets: %s" % sigs)
        # our own check of the scheme, then the independent one
        key = base64.b64decode(WH1[6:])
        signed = ("%s.%s.%s" % (headers["webhook-id"],
                                headers["webhook-timestamp"],
                                wbody.decode())).encode()
        mine = "v1," + base64.b64encode(
            hmac.new(key, signed, hashlib.sha256).digest()).decode()
        check(mine == sigs[0], "HMAC-SHA256 over id.timestamp.body")
        if have_npm:
            for s in (WH1, WH2):
                res = verify(npmroot, s, headers, wbody)
                check(res == "ok", "standardwebhooks verifies with %s: %s" %
                      (s[:10], res))
            res = verify(npmroot, WH1, headers, wbody.replace(b"100", b"999"))
            check(res.startswith("refused"),
                  "a tampered body is refused: %s" % res)
            res = verify(npmroot, "whsec_" + base64.b64encode(
                b"not the secret at all!!!").decode(), headers, wbody)
            check(res.startswith("refused"), "a wrong secret is refused")
        # 429 with Retry-After: 2 s, then delivered
        st, body, h = events(d, ev("order.placed", id="w-429"))
        check(td.wait_for(lambda: len([g for g in Receiver.got
                                       if b'"w-429"' in g[1]]) >= 2, 15),
              "retried after 429")
        t = [g[2] for g in Receiver.got if b'"w-429"' in g[1]]
        check(len(t) >= 2 and t[1] - t[0] >= 1.9,
              "Retry-After honoured: %.2f s" % (t[1] - t[0] if len(t) > 1
                                                 else -1))
        # 410: the endpoint is disabled; the next delivery is not sent
        st, body, h = events(d, ev("order.placed", id="w-410"))
        check(td.wait_for(lambda: any(x["event_id"] == "w-410" for x in
                                      tc.dead_letters(d, "crm")), 10),
              "410 is a dead letter")
        n = len(Receiver.got)
        st, body, h = events(d, ev("order.placed", id="w-after"))
        check(td.wait_for(lambda: any(x["event_id"] == "w-after" for x in
                                      tc.dead_letters(d, "crm")), 10),
              "later deliveries are refused while disabled")
        check(len(Receiver.got) == n, "and not sent")
        dl = [x for x in tc.dead_letters(d, "crm") if x["event_id"] == "w-410"]
        check(dl and "410" in dl[0]["error"], "reason: %s" % dl)
        log = d.logtext()
        check("answered 410 Gone" in log and "canary-pass" not in log and
              "canary-token" not in log and "hookuser" not in log,
              "the 410 is logged without the URL's credentials and token")
        check(d.stop() == 0, "clean stop")
    finally:
        srv.shutdown()
        d.cleanup()
        shutil.rmtree(npmroot, ignore_errors=True)


def test_store_full():
    print("events API with a full store: 503, then everything", flush=True)
    mnt = td.mount_tmpfs()
    if mnt is None:
        return
    d = td.Daemon("webfull", state_dir=os.path.join(mnt, "state"))
    out = os.path.join(d.root, "sink-out")
    os.makedirs(out)
    d.channel("web", "web", "write_keys = shop=%s\nserver_keys = b=%s\n"
              "max_body = 64k\n" % (KEY, SKEY))
    d.channel("sink", "dropdir", "outbox = %s\n" % out)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = web\nto = sink\n")
    try:
        d.start()
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            try:
                f.write(b"\0" * (5 << 20))
            except OSError:
                pass
        acked, full = [], None
        for i in range(300):
            st, body, h = events(d, ev(id="full-%03d" % i,
                                       props={"pad": "z" * 30000}))
            if st == 202:
                acked.append("full-%03d" % i)
            elif st == 503:
                full = (body, h)
                break
            else:
                check(False, "full store: unexpected %d %s" % (st, body))
                break
        check(full is not None and json.loads(full[0]) == {
            "error": "the store cannot take events now: retry later"} and
            full[1].get("Retry-After") == "5",
            "503 with Retry-After while the store is full: %s" % (full,))
        st, body = d.admin("GET", "/health")
        health = json.loads(body) if body.startswith("{") else {}
        check(st == 503 and health.get("status") == "degraded" and
              ("store cannot take events" in health.get("reason", "") or
               "kB free" in health.get("reason", "")),
              "/health says the disk is full: %d %s" % (st, body))
        os.unlink(filler)
        deadline = time.time() + 20
        st = 0
        while time.time() < deadline:
            st, body, h = events(d, ev(id="after-full"))
            if st == 202:
                break
            time.sleep(0.3)
        check(st == 202, "accepted again once there is room")
        got = tc.wait_delivered(out, acked + ["after-full"], 30)
        check(all(a in got for a in acked + ["after-full"]),
              "every event answered 202 was delivered (%d of %d)" % (
                  len([a for a in acked if a in got]), len(acked)))
        check(td.wait_for(lambda: d.admin("GET", "/health")[0] == 200, 10),
              "/health is ok again once there is room: %s" %
              (d.admin("GET", "/health"),))
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)


SHOP_PAGE = """<!doctype html>
<html><head><title>Test shop</title>
<script>window.omnigateConfig = {writeKey: "%(key)s",
                                 endpoint: "http://127.0.0.1:%(pub)d/v1"};</script>
<script src="http://127.0.0.1:%(pub)d/v1/omnigate.js"></script>
</head><body><div id="status">waiting</div>
<script>
var sent = 0, statuses = [];
omnigate.onSent(function (st, n) {
  sent += n; statuses.push(st);
  if (sent >= 3)
    document.getElementById("status").textContent =
      "sent:" + statuses.join(",") + ":" + omnigate.anonymousId();
});
omnigate.track("Product Added", {sku: "S-1", name: "Mug", price: 12.5,
                                 currency: "EUR", quantity: 1});
omnigate.identify("u-77", {email: "shopper@example.com"}, "%(sig)s");
</script></body></html>
"""


def serve_dir(root):
    """A static HTTP server for root on loopback: (server, its origin)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=root, **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "http://127.0.0.1:%d" % srv.server_address[1]


def chromium():
    for c in ("chromium", "chromium-browser"):
        if shutil.which(c):
            return shutil.which(c)
    subprocess.run(["apt-get", "install", "-y", "-qq",
                    "--no-install-recommends", "chromium"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return shutil.which("chromium")


def test_snippet_in_chromium():
    print("the site snippet in headless Chromium", flush=True)
    browser = chromium()
    check(browser is not None, "chromium installed")
    if browser is None:
        return
    shopdir = tempfile.mkdtemp(prefix="ogweb-shop.")
    shop, origin = serve_dir(shopdir)
    d, out = web_tree("snippet", web_extra="allowed_origins = %s\n" % origin)
    try:
        d.start()
        st, js, h = request(d, "GET", "/v1/omnigate.js")
        check(st == 200 and "window.omnigate" in js and
              h.get("Content-Type", "").startswith("application/javascript"),
              "the snippet is served")
        # preflights: allowed origin, other origin
        st, body, h = request(d, "OPTIONS", "/v1/batch", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        check(st == 204 and h.get("Access-Control-Allow-Origin") == origin,
              "preflight from the shop: %d %s" % (st, h))
        st, body, h = request(d, "OPTIONS", "/v1/batch", headers={
            "Origin": "http://evil.example"})
        check(st == 403 and "Access-Control-Allow-Origin" not in h,
              "preflight from another origin: 403 (%d)" % st)
        sig = hmac.new(SECRET.encode(), b"u-77", hashlib.sha256).hexdigest()
        with open(os.path.join(shopdir, "index.html"), "w") as f:
            f.write(SHOP_PAGE % {"key": KEY, "pub": d.pub, "sig": sig})
        profile = tempfile.mkdtemp(prefix="ogweb-chromium.")
        r = subprocess.run(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--user-data-dir=" + profile,
             "--virtual-time-budget=20000", "--dump-dom",
             origin + "/index.html"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        shutil.rmtree(profile, ignore_errors=True)
        dom = r.stdout.decode(errors="replace")
        m = re.search(r'id="status">([^<]*)<', dom)
        status = m.group(1) if m else dom[-300:]
        check(status.startswith("sent:200:"),
              "the page sent its calls: %s" % status)
        anon = status.split(":")[-1] if m else None
        deadline = time.time() + 10
        while time.time() < deadline and len(tc.files_of(out)) < 3:
            time.sleep(0.05)
        got = list(tc.delivered(out).values())
        types = sorted(e["type"] for e in got)
        check(types == ["cart.item_added", "customer.identified",
                        "page.viewed"], "page view, add-to-cart and login "
              "arrived: %s" % types)
        custs = {e.get("customer") for e in got}
        check(len(custs) == 1 and None not in custs,
              "as one customer: %s" % custs)
        st, p = tc.profile(d, kind="anon", value=anon or "?")
        users = [i for i in p.get("identities", []) if i["kind"] == "user"]
        check(st == 200 and users and users[0]["value"] == "u-77" and
              users[0]["verified"],
              "the signed login is a verified identity of that customer: %s"
              % users)
        check(d.stop() == 0, "clean stop")
    finally:
        shop.shutdown()
        d.cleanup()
        shutil.rmtree(shopdir, ignore_errors=True)


CHAT_PAGE = """<!doctype html>
<html><head><title>Help</title>
<script>window.omnigateConfig = {writeKey: "%(key)s",
                                 endpoint: "http://127.0.0.1:%(pub)d/v1",
                                 autoPage: %(autopage)s};</script>
<script src="http://127.0.0.1:%(pub)d/v1/omnigate.js"></script>
</head><body><div id="status">waiting</div>
<script>
var st = document.getElementById("status");
if (%(chat)s) {
  st.textContent = "waiting:" + omnigate.anonymousId();
  omnigate.chat();
  omnigate.messages(function (m) {
    /* a visitor reads the message and answers in the panel */
    var input = document.querySelector("#omnigate-chat input");
    omnigate.stopMessages(); /* lets the page go idle for the dump */
    input.value = "Thanks!";
    input.form.requestSubmit();
    st.textContent = "got:" + m.text + "|" +
      document.querySelectorAll("#omnigate-chat p").length;
  });
} else {
  omnigate.onSent(function (s) {
    st.textContent = "anon:" + omnigate.anonymousId();
  });
}
</script></body></html>
"""


def run_chromium(browser, profile, url):
    """Loads url in headless Chromium; the text of #status."""
    r = subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--user-data-dir=" + profile,
         "--virtual-time-budget=20000", "--dump-dom", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    m = re.search(r'id="status">([^<]*)<', r.stdout.decode(errors="replace"))
    return m.group(1) if m else r.stdout.decode(errors="replace")[-300:]


def poll(d, anon, key=KEY, session=None):
    h = {"Authorization": "Bearer " + key}
    if session:
        h["X-Omnigate-Session"] = session
    return request(d, "GET", "/v1/messages?anonymousId=" + anon, headers=h)


def test_live_messages():
    print("live web messages", flush=True)
    browser = chromium()
    shopdir = tempfile.mkdtemp(prefix="ogweb-chat.")
    shop, origin = serve_dir(shopdir)
    d, out = web_tree("live", web_extra="allowed_origins = %s\n"
                      "live_wait = 2s\nlive_hold = 20s\n" % origin)
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = web\nto = sink\n"
            "[route agent]\nmatch = message.*\nfrom = hook\nto = web, sink\n")
    profile = tempfile.mkdtemp(prefix="ogweb-chromium.")
    try:
        d.start()
        # the protocol
        v9, s9 = new_session(d)
        check(v9 and s9 and s9.startswith(v9 + "."),
              "a session: an anonymous id and its token: %s" % s9)
        st, body, h = poll(d, v9, session=s9)
        check(st == 200 and json.loads(body) == {"messages": [],
                                                  "known": False},
              "an unknown visitor: no messages at once: %s" % body)
        st, body, h = poll(d, v9, key="wrong", session=s9)
        check(st == 401, "a poll needs the write key")
        st, body, h = poll(d, v9)
        check(st == 401 and "session" in json.loads(body)["error"],
              "a poll needs the visitor's session: %s" % body)
        other, so = new_session(d)
        st, body, h = poll(d, v9, session=so)
        check(st == 401, "another visitor's session is not this one's")
        st, body, h = events(d, ev(ids=[{"kind": "anon", "value": v9}]),
                             key=KEY, session=s9)
        check(st == 202, "the visitor sends an event")
        t0 = time.time()
        st, body, h = poll(d, v9, session=s9)
        check(st == 200 and json.loads(body) == {"messages": []} and
              time.time() - t0 >= 1.9, "an empty poll waits live_wait")
        result = {}

        def waiting():
            result["poll"] = poll(d, v9, session=s9)

        t = threading.Thread(target=waiting)
        t.start()
        time.sleep(0.3)
        tc.send(d, "message.send", [tc.key("anon", v9)],
                {"text": "Your parcel left", "purpose": "transactional"})
        t.join(10)
        st, body, h = result.get("poll", (0, "{}", {}))
        msgs = json.loads(body).get("messages", [])
        check(st == 200 and len(msgs) == 1 and
              msgs[0]["text"] == "Your parcel left" and
              msgs[0].get("conversation"),
              "a waiting poll gets the message: %s" % body)
        check(td.wait_for(lambda: td.chan(d, "web")["waiting"] == 0),
              "and the delivery is done")
        # in a browser: the page learns its id, a message is held for it,
        # the chat panel shows it and the visitor answers
        if browser is None:
            check(False, "chromium installed")
            return
        with open(os.path.join(shopdir, "a.html"), "w") as f:
            f.write(CHAT_PAGE % {"key": KEY, "pub": d.pub,
                                 "autopage": "true", "chat": "false"})
        with open(os.path.join(shopdir, "b.html"), "w") as f:
            f.write(CHAT_PAGE % {"key": KEY, "pub": d.pub,
                                 "autopage": "false", "chat": "true"})
        status = run_chromium(browser, profile, origin + "/a.html")
        check(status.startswith("anon:"), "the page sent a view: %s" % status)
        anon = status[5:]
        mid = tc.send(d, "message.send", [tc.key("anon", anon)],
                      {"text": "Can we help?", "purpose": "transactional"})
        check(td.wait_for(lambda: td.chan(d, "web")["waiting"] == 1),
              "the message is held for the visitor's browser")
        status = run_chromium(browser, profile, origin + "/b.html")
        check(status == "got:Can we help?|2",
              "the panel shows it and the answer: %s" % status)
        check(td.wait_for(lambda: td.chan(d, "web")["waiting"] == 0),
              "the held delivery is done")
        got = tc.wait_delivered(out, [mid])
        replies = [e for e in tc.delivered(out).values()
                   if e["type"] == "message.received"]
        check(len(replies) == 1 and replies[0]["props"]["text"] == "Thanks!"
              and replies[0].get("conversation") ==
              got.get(mid, {}).get("conversation") and
              replies[0].get("customer") == got.get(mid, {}).get("customer"),
              "the answer arrives in the same conversation, from the same "
              "customer: %s" % replies)
        check(d.stop() == 0, "clean stop")
    finally:
        shop.shutdown()
        d.cleanup()
        shutil.rmtree(shopdir, ignore_errors=True)
        shutil.rmtree(profile, ignore_errors=True)


def find(out, pred, timeout=10):
    """The first delivered event for which pred is true, or {}."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for e in tc.delivered(out).values():
            if pred(e):
                return e
        time.sleep(0.05)
    return {}


def marked(out, mark):
    return find(out, lambda e: e.get("props", {}).get("mark") == mark)


def trust_view(d, cust):
    """What must not move when a browser attacks a customer."""
    st, p = tc.profile(d, cust)
    return {k: p.get(k) for k in ("id", "aliases", "identities", "merges",
                                   "consents", "consent", "traits")}


def test_browser_key():
    """docs/security.md: a browser key sends its own events and nothing more;
    a server key may assert. Each case is one of issue 15's reproductions."""
    print("the trust model: browser keys against server keys", flush=True)
    d, out = web_tree("trust", web_extra="live_wait = 1s\n")
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = web\nto = sink\n"
            "[route agent]\nmatch = message.*\nfrom = hook\nto = web, sink\n")
    try:
        d.start()
        # the victim, known to the shop's backend
        victim = [{"kind": "user", "value": "u-victim", "verified": True},
                  {"kind": "email", "value": "victim@example.com",
                   "verified": True}]
        st, body, h = events(d, {"type": "customer.signed_in", "ids": victim,
                                 "props": {"mark": "v0"}})
        check(st == 202, "the backend's server key asserts verified keys")
        vc = marked(out, "v0").get("customer")
        check(vc is not None, "the victim's customer: %s" % vc)
        st, body, h = events(d, {"type": "message.received", "ids": victim,
                                 "props": {"mark": "v1", "text": "hi"}})
        vconv = marked(out, "v1").get("conversation")
        check(vconv is not None, "the victim's conversation")
        st, body, h = events(d, {"type": "consent.changed", "ids": victim,
                                 "consent": {"marketing": {"email": False}},
                                 "props": {"mark": "v2"}})
        check(marked(out, "v2").get("customer") == vc,
              "the victim refused marketing email")
        before = trust_view(d, vc)
        check(before.get("consents") and
              before["consents"][0]["granted"] is False,
              "the profile shows the consent: %s" % before.get("consents"))

        att, satt = new_session(d)
        a_ids = [{"kind": "anon", "value": att}]

        def attack(mark, e, expect=202, key=KEY):
            e.setdefault("props", {})["mark"] = mark
            st, body, h = events(d, e, key=key, session=satt)
            check(st == expect, "%s: %d %s" % (mark, st, body))
            return marked(out, mark) if st == 202 else {}

        # takeover by a "verified" user key
        got = attack("a1", {"type": "customer.signed_in", "ids": a_ids + [
            {"kind": "user", "value": "u-victim", "verified": True}]})
        check(got.get("customer") not in (None, vc),
              "ids[].verified from a browser is not believed: %s" %
              got.get("customer"))
        check(all(not i.get("verified") for i in got.get("ids", [])),
              "and is delivered unverified: %s" % got.get("ids"))
        # by naming the customer
        got = attack("a2", {"type": "page.viewed", "ids": a_ids,
                            "customer": vc, "correlation": "c-x",
                            "causation": "e-x"})
        check(got.get("customer") not in (None, vc) and
              "correlation" not in got and "causation" not in got,
              "customer, correlation, causation from a browser dropped: %s"
              % {k: got.get(k) for k in ("customer", "correlation")})
        # a second "verified" address for the victim
        got = attack("a3", {"type": "customer.identified", "ids": a_ids + [
            {"kind": "user", "value": "u-victim", "verified": True},
            {"kind": "email", "value": "attacker@evil.test",
             "verified": True}]})
        # consent for someone else, by their address
        got = attack("a4", {"type": "consent.changed", "ids": [
            {"kind": "email", "value": "victim@example.com"}],
            "consent": {"marketing": {"*": True},
                        "transactional": {"*": False}}})
        check(got.get("customer") != vc,
              "an unverified address does not choose its customer for a "
              "browser: %s" % got.get("customer"))
        # another channel
        got = attack("a5", {"type": "page.viewed", "ids": a_ids,
                            "source": {"channel": "pos"}})
        check(got.get("source", {}).get("channel") == "web",
              "a browser's events come from the web: %s" % got.get("source"))
        # commands and back-office events
        for mark, t in (("a6", "message.send"), ("a7", "order.placed"),
                        ("a8", "inventory.changed"), ("a9", "customer.merged")):
            attack(mark, {"type": t, "ids": a_ids,
                          "props": {"template": "chat_followup",
                                    "to": "anyone@example.net"}}, expect=403)
        st, body, h = segment(d, "track", {
            "type": "track", "event": "Order Completed", "anonymousId": att,
            "messageId": "m-oc", "properties": {"total": 10}}, key=KEY)
        check(st == 403 and "browser key" in json.loads(body)["error"],
              "Segment Order Completed from a browser: %d %s" % (st, body))
        # the victim's conversation
        st, body, h = request(d, "POST", "/v1/messages", json.dumps(
            {"anonymousId": att, "text": "injected", "conversation": vconv}),
            {"Content-Type": "application/json",
             "Authorization": "Bearer " + KEY, "X-Omnigate-Session": satt})
        check(st == 202, "a reply is accepted: %d %s" % (st, body))
        inj = find(out, lambda e: e.get("props", {}).get("text") ==
                   "injected")
        check(inj and inj.get("conversation") != vconv,
              "but not into another customer's conversation: %s" %
              inj.get("conversation"))
        st, body, h = request(d, "POST", "/v1/messages", json.dumps(
            {"anonymousId": att, "text": "x"}),
            {"Content-Type": "application/json",
             "Authorization": "Bearer " + KEY})
        check(st == 401, "a reply needs the visitor's session")
        # the same through the Segment API: an unsigned or wrongly signed
        # user id, the victim's email in traits, a consent in context
        for mark, call in (
                ("g1", {"type": "identify", "userId": "u-victim",
                        "anonymousId": att, "traits": {"mark": "g1"}}),
                ("g2", {"type": "track", "event": "Product Viewed",
                        "userId": "u-victim", "anonymousId": att,
                        "properties": {"mark": "g2"},
                        "context": {"omnigate": {"signature": "00" * 32}}}),
                ("g3", {"type": "identify", "anonymousId": att,
                        "traits": {"email": "victim@example.com",
                                   "mark": "g3"}})):
            st, body, h = segment(d, call["type"], call, key=KEY,
                                  session=satt)
            check(st == 200, "Segment %s: %d %s" % (mark, st, body))
            got = find(out, lambda e, m=mark: (
                e.get("props", {}).get("mark") == m or
                e.get("props", {}).get("traits", {}).get("mark") == m))
            check(got.get("customer") not in (None, vc) and
                  all(not i.get("verified") for i in got.get("ids", [])),
                  "Segment %s does not reach the victim: %s" % (
                      mark, got.get("customer")))
        # reading the victim's live messages after an unverified identify
        st, body, h = segment(d, "identify", {
            "type": "identify", "anonymousId": att, "messageId": "m-id",
            "traits": {"email": "victim@example.com"}}, key=KEY,
            session=satt)
        check(st == 200, "identify with the victim's email: %d" % st)
        tc.send(d, "message.send", [tc.key("user", "u-victim", True)],
                {"text": "your code is 424242", "purpose": "transactional"})
        check(td.wait_for(lambda: td.chan(d, "web")["waiting"] == 1),
              "the victim's message is held for the victim's browser")
        st, body, h = poll(d, att, session=satt)
        check(st == 200 and "424242" not in body,
              "the attacker's poll does not get it: %s" % body)
        check(td.chan(d, "web")["waiting"] == 1, "it is still held")
        # an id the backend will use, claimed first by a browser
        st, body, h = events(d, ev(id="order-5001"), key=KEY)
        check(st == 202 and json.loads(body)["ids"] != ["order-5001"],
              "a browser's id is its own idempotency key: %s" % body)
        st, body, h = events(d, {"type": "order.placed", "id": "order-5001",
                                 "ids": victim})
        check(st == 202 and json.loads(body)["ids"] == ["order-5001"],
              "the backend's order keeps its id: %d %s" % (st, body))
        check("order-5001" in tc.wait_delivered(out, ["order-5001"]),
              "and is delivered")
        st, body, h = events(d, ev(id="order-5001"), key=KEY)
        first = json.loads(body)["ids"]
        st, body, h = events(d, ev(id="order-5001"), key=KEY)
        check(json.loads(body)["ids"] == first,
              "a browser's repeat is still a duplicate: %s" % body)

        after = trust_view(d, vc)
        check(after == before, "the victim's profile, identities, merges "
              "and consents are unchanged:\n%s\n%s" % (before, after))
        # the same with the server key: allowed
        st, body, h = events(d, {"type": "customer.signed_in", "ids": [
            {"kind": "anon", "value": "srv-anon"},
            {"kind": "user", "value": "u-victim", "verified": True}],
            "props": {"mark": "s1"}})
        check(marked(out, "s1").get("customer") == vc,
              "a server key may assert a verified user")
        st, body, h = events(d, {"type": "order.placed", "ids": victim,
                                 "props": {"mark": "s2"}})
        check(st == 202, "and send back-office events")
        # a signed user id is verified from a browser too
        sig = hmac.new(SECRET.encode(), b"u-victim", hashlib.sha256).hexdigest()
        got = attack("a10", {"type": "customer.signed_in", "ids": a_ids + [
            {"kind": "user", "value": "u-victim", "signature": sig}]})
        check(got.get("customer") == vc,
              "a browser's signed login is the customer: %s" %
              got.get("customer"))
        st, m = d.admin("GET", "/metrics")
        n = re.search(r'omnigate_plugin_\w*\{instance="web",'
                      r'name="browser_fields_dropped_total"\} (\d+)', m)
        check(n and int(n.group(1)) >= 6, "dropped fields counted: %s" %
              (n.group(0) if n else m[:200]))
        check(d.stop() == 0, "clean stop")
        log = d.logtext()
        check(log.count("browser key 'shop': dropped") == 1 and
              "u-victim" not in log.split("browser key 'shop'")[1][:300],
              "logged once a minute per key, naming fields, not values")
    finally:
        d.cleanup()


def main():
    return td.run([test_events_api, test_segment, test_browser_key,
                   test_webhooks,
                   test_snippet_in_chromium, test_live_messages,
                   test_store_full])


if __name__ == "__main__":
    sys.exit(main())
