#!/usr/bin/env python3
"""The trust model's core rules against the real daemon (docs/security.md).

- the admin API: the default unix socket (its mode, answered without a
  token), on TCP bearer tokens with roles (none, wrong, too low a role,
  right), a Host of another site (DNS rebinding), a browser's Origin, the
  test clock only with --test-clock;
- files: a world-writable channel file and a placeholder secret fail
  --check-config naming the file, and the daemon does not start on them;
- secrets: keys and tokens sent right or wrong never reach the log.

Needs OG_TOP_BUILDDIR (set by make check).
"""
import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_durable as td  # noqa: E402
import test_customers as tc  # noqa: E402

check = td.check
td.PLUGINS["web"] = os.path.join(td.BUILD, "plugins/web/.libs/web.so")
READ = "read-t0ken-0123456789abcdefgh"
OPERATE = "operate-t0ken-0123456789abcdef"
ERASE = "erase-t0ken-0123456789abcdefgh"
BROWSER = "wk_canary_browser_key_123"
SERVER = "sk_canary_server_key_0123456789"


def call(d, method, path, token=None, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", d.adm, timeout=10)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, text, dict(r.getheaders())


def roles_tree(name, extra_args=()):
    d = td.Daemon(name)
    d.write("conf/admin.tokens", "# role token\nread %s\noperate %s\n"
            "erase %s\n" % (READ, OPERATE, ERASE))
    os.chmod(os.path.join(d.conf, "admin.tokens"), 0o640)
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN)
    return d


def test_admin_tokens():
    print("admin API on TCP: bearer tokens with roles, Host, Origin",
          flush=True)
    d = roles_tree("admin")
    try:
        d.start()
        st, body, h = call(d, "GET", "/health")
        check(st == 401 and h.get("WWW-Authenticate", "").startswith(
            "Bearer") and "admin token" in json.loads(body)["error"],
            "no token: 401 %s" % body)
        st, body, h = call(d, "GET", "/health", token="read-t0ken-wrong-xyz")
        check(st == 401, "a wrong token: 401")
        st, body, h = call(d, "GET", "/health", token=READ[:-1])
        check(st == 401, "a token's prefix: 401")
        st, body, h = call(d, "GET", "/metrics", token=READ)
        check(st == 200 and "omnigate_" in body, "read: metrics")
        cid = None
        tc.send(d, "order.placed", [tc.key("email", "ann@example.com", True)])
        deadline = time.time() + 5
        while cid is None and time.time() < deadline:
            st, body, h = call(d, "GET", "/v1/customers?kind=email&value="
                               "ann%40example.com", token=READ)
            if st == 200:
                cid = json.loads(body)["id"]
            time.sleep(0.05)
        check(cid is not None, "read: a profile")
        st, body, h = call(d, "POST", "/v1/dead-letters/requeue", token=READ,
                           body="{}")
        check(st == 403 and "needs operate" in json.loads(body)["error"],
              "read may not requeue: %d %s" % (st, body))
        st, body, h = call(d, "POST", "/v1/dead-letters/requeue",
                           token=OPERATE, body="{}")
        check(st != 401 and st != 403, "operate may: %d %s" % (st, body))
        st, body, h = call(d, "POST", "/v1/customers/%s/erase" % cid,
                           token=OPERATE)
        check(st == 403 and "needs erase" in body, "operate may not erase")
        st, body, h = call(d, "POST", "/v1/test/clock", token=OPERATE,
                           body='{"offset_ms": 1000}')
        check(st in (403, 404, 409) and "test-clock" in body,
              "the test clock needs --test-clock: %d %s" % (st, body))
        # another site's page in an operator's browser
        st, body, h = call(d, "GET", "/health", token=READ,
                           headers={"Host": "evil.example:%d" % d.adm})
        check(st == 403 and "Host" in json.loads(body)["error"],
              "DNS rebinding: another Host is refused: %d %s" % (st, body))
        st, body, h = call(d, "GET", "/health", token=READ,
                           headers={"Origin": "http://evil.example"})
        check(st == 403 and "browser" in json.loads(body)["error"],
              "a browser's Origin is refused: %d %s" % (st, body))
        st, body, h = call(d, "GET", "/health", token=READ,
                           headers={"Host": "localhost:%d" % d.adm})
        check(st == 200, "localhost is this listener")
        st, body, h = call(d, "POST", "/v1/customers/%s/erase" % cid,
                           token=ERASE)
        check(st == 200, "erase may: %d %s" % (st, body))
        check(d.stop() == 0, "clean stop")
        log = d.logtext()
        check(not any(t in log for t in (READ, OPERATE, ERASE, READ[:-1])),
              "no admin token in the log")
    finally:
        d.cleanup()


def unix_get(path, sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock)
    return td.get_raw(s, path, "localhost").decode(errors="replace")


def test_admin_socket():
    print("admin API by default: a unix socket in state_dir", flush=True)
    d = td.Daemon("adminsock")
    d.write("conf/omnigate.conf", "[http]\npublic_listen = 127.0.0.1:0\n"
            "[daemon]\nplugin_dir = ../plugins\nshutdown_timeout = 2s\n")
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN)
    sock = os.path.join(d.state, "admin.sock")
    try:
        with open(d.log, "a") as lf:
            d.logpos = 0
            d.proc = subprocess.Popen(
                [td.DAEMON, "-c", d.conf, "--state-dir", d.state],
                stdout=lf, stderr=subprocess.STDOUT)
        check(td.wait_for(lambda: "ready" in d.logtext(), 20), "ready")
        check(os.path.exists(sock) and stat.S_ISSOCK(os.stat(sock).st_mode),
              "the socket is there: %s" % sock)
        mode = stat.S_IMODE(os.stat(sock).st_mode) if os.path.exists(
            sock) else 0
        check(mode & 0o007 == 0, "not for others: mode %o" % mode)
        resp = unix_get("/health", sock) if os.path.exists(sock) else ""
        check(resp.startswith("HTTP/1.1 200") and '"ok"' in resp,
              "answered over the socket without a token: %s" % resp[:80])
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def check_config(d):
    r = subprocess.run([td.DAEMON, "-c", d.conf, "--check-config",
                        "--plugin-dir", os.path.join(d.root, "plugins")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.returncode, r.stdout.decode(errors="replace")


def test_files_and_secrets():
    print("files anyone may change, placeholder secrets, secrets in logs",
          flush=True)
    d = td.Daemon("files")
    d.channel("web", "web", "write_keys = shop=%s\nserver_keys = b=%s\n" %
              (BROWSER, SERVER))
    try:
        rc, out = check_config(d)
        check(rc == 0, "a sound tree passes: %s" % out)
        f = os.path.join(d.conf, "channels.d", "web.conf")
        os.chmod(f, 0o666)
        rc, out = check_config(d)
        check(rc != 0 and f in out and "writable by group or others" in out,
              "a world-writable channel file is refused: %s" % out)
        try:
            d.start()
            check(False, "the daemon started on a world-writable file")
        except RuntimeError:
            check("writable by group or others" in d.logtext(),
                  "the daemon refuses it too")
        os.chmod(f, 0o644)
        d.channel("web", "web", "write_keys = shop=CHANGE-ME\n")
        rc, out = check_config(d)
        check(rc != 0 and "web.conf:4: write_keys: a placeholder is no "
              "secret" in out and "CHANGE-ME" not in out,
              "a placeholder key is refused: %s" % out)
        d.channel("web", "web", "write_keys = shop=%s\nserver_keys = b=%s\n" %
                  (BROWSER, SERVER))
        d.start()
        for key in (BROWSER, SERVER, "wk_canary_wrong_key_9999"):
            c = http.client.HTTPConnection("127.0.0.1", d.pub, timeout=10)
            c.request("POST", "/v1/events", body=json.dumps(
                {"type": "order.placed", "customer": "x",
                 "ids": [{"kind": "anon", "value": "v"}]}),
                headers={"Content-Type": "application/json",
                         "Authorization": "Bearer " + key})
            c.getresponse().read()
            c.close()
        check(d.stop() == 0, "clean stop")
        log = d.logtext()
        check("canary" not in log, "no key, right or wrong, in the log")
    finally:
        d.cleanup()


def test_url_warning():
    print("--check-config warns about a URL attribute without {{url:}}",
          flush=True)
    d = td.Daemon("urlwarn")
    os.makedirs(os.path.join(d.conf, "templates"))
    d.write("conf/templates/promo.conf",
            "[template]\nvars = event\n[default]\ntext = hi\n"
            "[email]\nhtml = <a href=\"{{event.props.url}}\">go</a> "
            "<img src='{{url:event.props.img}}'>\n")
    d.write("conf/templates/ok.conf",
            "[template]\nvars = event\n[default]\n"
            "html = <a href=\"{{url:event.props.url}}\">go</a>\n")
    try:
        rc, out = check_config(d)
        check(rc == 0, "a warning, not an error: %d %s" % (rc, out))
        warns = [x for x in out.splitlines() if "not checked as a URL" in x]
        check(len(warns) == 1 and "promo.conf:6:" in warns[0] and
              "{{url:event.props.url}}" in warns[0],
              "one warning, for promo's href, with its line: %s" % warns)
    finally:
        d.cleanup()


def main():
    return td.run([test_admin_tokens, test_admin_socket,
                   test_files_and_secrets, test_url_warning])


if __name__ == "__main__":
    sys.exit(main())
