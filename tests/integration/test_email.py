#!/usr/bin/env python3
"""The email channel against a real SMTP server (Debian's aiosmtpd,
tests/integration/smtp_peer.py), driven through the real daemon.

- the abandoned-cart email end to end: a web event, the journey on the
  test clock, and the SMTP server got a correct multipart/alternative
  message (UTF-8 subject, the cart's lines in text and HTML, Message-ID,
  Reply-To) that Python's email parser reads back;
- 451 then success (retried on the channel's schedule);
- 550: a permanent failure, message.failed with the reply's text and a
  dead letter;
- the relay down for a while, then back: delivered, nothing lost;
- AUTH with credentials from a file; a wrong password is deferred, never
  a dead letter; the password never appears in the logs.
"""
import contextlib
import email
import http.client as http_client
import email.policy
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.parse
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_customers as tc  # noqa: E402
import test_durable as td  # noqa: E402
import test_journeys as tj  # noqa: E402

check = td.check
key = tc.key
HERE = os.path.dirname(os.path.abspath(__file__))
EMAIL_SO = os.path.join(td.BUILD, "plugins/email/.libs/email.so")
SECRET = "s3cr3t-Pa55-9f1c"


class Smtp:
    """smtp_peer.py in a process of its own (stopped and started again on
    the same port for the relay-down test)."""

    def __init__(self, root, auth=None):
        self.root = root
        self.out = os.path.join(root, "smtp-out")
        os.makedirs(self.out, exist_ok=True)
        self.auth = auth
        self.port = 0
        self.proc = None

    def start(self):
        pf = os.path.join(self.root, "smtp.port")
        if os.path.exists(pf):
            os.unlink(pf)
        args = ["/usr/bin/python3", os.path.join(HERE, "smtp_peer.py"), pf,
                self.out]
        if self.port:
            args += ["--port", str(self.port)]
        if self.auth:
            args += ["--auth", self.auth]
        self.proc = subprocess.Popen(args)
        deadline = time.time() + 10
        while not os.path.exists(pf) and time.time() < deadline:
            time.sleep(0.05)
        with open(pf) as f:
            self.port = int(f.read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)

    def messages(self):
        got = []
        for n in sorted(os.listdir(self.out)):
            if n.endswith(".eml"):
                with open(os.path.join(self.out, n), "rb") as f:
                    got.append(email.message_from_bytes(
                        f.read(), policy=email.policy.default))
        return got


TEMPLATE = """[template]
vars = customer, event
[default]
subject = {{customer.traits.first_name}}, ton panier t'attend 🛒
text_file = cart.txt
html_file = cart.html
"""

NOTE = """[template]
vars = event
[default]
subject = A note
text = Order {{event.entity.id}}: {{event.props.note}}
"""


def tree(name, smtp, extra_email=""):
    d = td.Daemon(name)
    shutil.copy(EMAIL_SO, os.path.join(d.root, "plugins", "email.so"))
    os.makedirs(os.path.join(d.conf, "templates"))
    os.makedirs(os.path.join(d.conf, "journeys.d"))
    d.write("conf/templates/cart.conf", TEMPLATE)
    d.write("conf/templates/cart.txt",
            "Bonjour {{customer.traits.first_name}},\n"
            "{{#event.props.lines}}- {{qty}} x {{name}}\n"
            "{{/event.props.lines}}")
    d.write("conf/templates/cart.html",
            "<p>Bonjour {{customer.traits.first_name}},</p><ul>"
            "{{#event.props.lines}}<li>{{qty}} x {{name}}</li>"
            "{{/event.props.lines}}</ul>")
    d.write("conf/templates/note.conf", NOTE)
    d.write("conf/journeys.d/cart.conf", tj.CART_JOURNEY.replace(
        "send = cart_reminder", "send = cart"))
    d.write("secret", "conversation-token-secret-0123456789")
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN)
    d.channel("email", "email",
              "smtp_url = smtp://127.0.0.1:%d\nstarttls = off\n"
              "from = Zoë's Shop <shop@shop.example>\n"
              "reply_to = replies@shop.example\n"
              "secret_file = %s\n%s" % (smtp.port,
                                        os.path.join(d.root, "secret"),
                                        extra_email),
              "retry_base = 200ms\nretry_max = 1s\nretry_lifetime = 1h\n")
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def running(name, auth=None, creds=None, unsubscribe=False):
    """An SMTP peer and a daemon whose email channel submits to it (with
    the credentials file creds); both stopped and removed after."""
    root = tempfile.mkdtemp(prefix="ogsmtp-%s." % name)
    smtp = Smtp(root, auth)
    smtp.start()
    d = None
    try:
        extra = ""
        if creds is not None:
            path = os.path.join(root, "smtp.creds")
            with open(path, "w") as f:
                f.write(creds)
            extra = "credentials = %s\n" % path
            smtp.creds = path
        d = tree(name, smtp, extra)
        if unsubscribe:  # a known public port for the links
            d.public = free_port()
            d.write("conf/channels.d/email.conf", open(os.path.join(
                d.conf, "channels.d", "email.conf")).read() +
                "unsubscribe_url = http://127.0.0.1:%d/v1/email/"
                "unsubscribe\nunsubscribe_mailto = unsubscribe@shop.example\n"
                % d.public)
            # receipts still go to those who refused marketing email
            d.main_conf("[consent]\ntransactional_bypass = email\n")
            text = open(os.path.join(d.conf, "omnigate.conf")).read()
            d.write("conf/omnigate.conf", text.replace(
                "public_listen = 127.0.0.1:0",
                "public_listen = 127.0.0.1:%d" % d.public))
        tj.start(d)
        yield d, smtp
    finally:
        if d is not None:
            d.cleanup()
        smtp.stop()
        shutil.rmtree(root, ignore_errors=True)


def command(d, to, note, order="o-1", purpose="transactional",
            consent=None):
    ev = {"type": "message.send", "ids": [key("email", to, True)],
          "entity": {"kind": "order", "id": order},
          "props": {"template": "note", "purpose": purpose,
                    "channel": "email", "note": note}}
    if consent is not None:
        ev["consent"] = consent
    st, body = tc.post_envelope(d, ev)
    check(st == 202, "command accepted: %d %s" % (st, body))


def wait_mail(smtp, n=1, timeout=20):
    return tj.wait_for(lambda: (lambda m: m if len(m) >= n else None)(
        smtp.messages()), timeout) or smtp.messages()


def test_cart_email():
    print("the abandoned-cart email end to end", flush=True)
    with running("cart-email") as (d, smtp):
        st, body = tc.post_envelope(d, {
            "type": "cart.updated",
            "ids": [key("email", "ann@example.com", True)],
            "entity": {"kind": "cart", "id": "c-1"},
            "props": {"lines": [{"name": "Bottes", "qty": 1},
                                {"name": "Chaussettes <laine>", "qty": 3}],
                      "traits": {"first_name": "Zoë"}}})
        check(st == 202, "cart accepted")
        time.sleep(0.3)
        check(smtp.messages() == [], "nothing before 30 minutes")
        tj.clock(d, 31 * tj.MIN)
        got = wait_mail(smtp)
        check(len(got) == 1, "one email: %d" % len(got))
        m = got[0] if got else email.message_from_string("")
        check(m["Subject"] == "Zoë, ton panier t'attend 🛒",
              "UTF-8 subject decoded: %r" % m["Subject"])
        check(m["From"].addresses[0].display_name == "Zoë's Shop" and
              m["From"].addresses[0].addr_spec == "shop@shop.example",
              "From: %s" % m["From"])
        check(m["To"] == "ann@example.com", "To")
        check(m["X-Peer-From"] == "shop@shop.example" and
              m["X-Peer-Rcpt"] == "ann@example.com", "envelope")
        check(m["Reply-To"] == "replies@shop.example", "Reply-To: %s" %
              m["Reply-To"])
        mid = m["Message-ID"] or ""
        check(mid.startswith("<j") and mid.endswith("@shop.example>"),
              "Message-ID from the message's id: %s" % mid)
        check(m["Date"] is not None, "Date")
        alt = [p for p in m.walk()
               if p.get_content_type() == "multipart/alternative"]
        check(len(alt) == 1, "one multipart/alternative: %s" % [
            p.get_content_type() for p in m.walk()])
        text = m.get_body(("plain",))
        html = m.get_body(("html",))
        check(text is not None and "- 3 x Chaussettes <laine>" in
              text.get_content(), "text part: %r" % (
                  text.get_content() if text else None))
        check(html is not None and "<li>3 x Chaussettes &lt;laine&gt;</li>"
              in html.get_content(), "HTML part, escaped: %r" % (
                  html.get_content() if html else None))
        ann = tc.cust_of(d, kind="email", value="ann@example.com")
        types = [e["type"] for e in tj.wait_for(lambda: (lambda t: t if any(
            e["type"] == "message.sent" for e in t["entries"]) else None)(
            tj.timeline(d, ann)))["entries"]]
        check("message.sent" in types, "message.sent: %s" % types)


def test_deferred_refused_down():
    print("451 then success; 550; the relay down, then back", flush=True)
    with running("smtp-replies") as (d, smtp):
        command(d, "tempfail-1@example.com", "later")
        got = wait_mail(smtp)
        check(len(got) == 1 and got[0]["To"] == "tempfail-1@example.com",
              "delivered after a 451")
        check("Order o-1: later" in (got[0].get_body(("plain",))
                                     .get_content() if got else ""), "body")
        command(d, "reject-1@example.com", "never", "o-2")
        c = tc.cust_of(d, kind="email", value="reject-1@example.com")
        t = tj.wait_for(lambda: (lambda t: t if any(
            e["type"] == "message.failed" for e in t["entries"]) else None)(
            tj.timeline(d, c)))
        check(t is not None, "message.failed on the timeline")
        st, body = d.admin("GET", "/v1/dead-letters?channel=email")
        dead = json.loads(body).get("dead_letters", []) if st == 200 else []
        check(any("550 5.1.1" in (x.get("error") or "") for x in dead),
              "a dead letter with the relay's reply: %s" % dead)
        check(len(smtp.messages()) == 1, "nothing sent to the refused one")

        smtp.stop()
        command(d, "carl@example.com", "held while the relay is down", "o-3")
        time.sleep(1.5)
        check(len(smtp.messages()) == 1, "not yet")
        smtp.start()
        got = wait_mail(smtp, 2, 30)
        check(len(got) == 2 and got[1]["To"] == "carl@example.com",
              "delivered once the relay is back: %s %s" % (
                  [g["To"] for g in got], d.logtext()[-1500:]))
        st, body = d.admin("GET", "/v1/dead-letters?channel=email")
        check(st == 200 and len(json.loads(body)["dead_letters"]) == 1,
              "no other dead letter")


def test_auth_and_secrets():
    print("AUTH from a credentials file; secrets never logged", flush=True)
    with running("smtp-auth", "omnigate:" + SECRET,
                 "omnigate\nwrong-password\n") as (d, smtp):
        command(d, "dee@example.com", "with a wrong password", "o-4")
        time.sleep(1.5)
        check(smtp.messages() == [], "refused by the relay")
        st, body = d.admin("GET", "/v1/dead-letters?channel=email")
        check(st == 200 and json.loads(body)["dead_letters"] == [],
              "an authentication failure is deferred, not a dead letter")
        out = d.outbox()
        check(any(c["channel"] == "email" and c["waiting"] == 1
                  for c in out["channels"]), "still waiting: %s" % out)
        # the operator fixes the file: the next attempt reads it again
        with open(smtp.creds, "w") as f:
            f.write("omnigate\n%s\n" % SECRET)
        got = wait_mail(smtp, 1, 30)
        check(len(got) == 1 and got[0]["To"] == "dee@example.com",
              "delivered with the right password")
        log = d.logtext()
        check(SECRET not in log and "wrong-password" not in log,
              "no password in the log")
        check("authentication" in log, "the log says what to fix")


def http(method, url, body=None):
    u = urllib.parse.urlsplit(url)
    c = http_client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request(method, u.path + ("?" + u.query if u.query else ""), body=body,
              headers={"Content-Type": "application/x-www-form-urlencoded"}
              if body else {})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, text


def test_one_click_unsubscribe():
    print("one-click unsubscribe: POST, GET, a tampered token", flush=True)
    with running("unsub", unsubscribe=True) as (d, smtp):
        yes = {"marketing": {"email": True}}
        command(d, "eve@example.com", "news 1", "n-1", "marketing", yes)
        got = wait_mail(smtp)
        m = got[0] if got else email.message_from_string("")
        lu = m["List-Unsubscribe"] or ""
        check(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click",
              "List-Unsubscribe-Post: %s" % m["List-Unsubscribe-Post"])
        links = [x.strip(" <>") for x in str(lu).split(",")]
        url = next((x for x in links if x.startswith("http")), "")
        check(url.startswith("http://127.0.0.1:%d/v1/email/unsubscribe?t="
                             % d.public) and any(
            x.startswith("mailto:unsubscribe@shop.example") for x in links),
              "List-Unsubscribe: %s" % lu)

        st, page = http("GET", url)
        check(st == 200 and "<form method=\"post\"" in page,
              "GET shows the button: %d" % st)
        command(d, "eve@example.com", "news 2", "n-2", "marketing")
        check(len(wait_mail(smtp, 2)) == 2, "a GET unsubscribes nobody")

        bad = url[:-1] + ("0" if url[-1] != "0" else "1")
        check(http("GET", bad)[0] == 404, "tampered token: GET 404")
        check(http("POST", bad, "List-Unsubscribe=One-Click")[0] == 404,
              "tampered token: POST 404")
        other = url.replace("?t=", "?t=x")
        check(http("POST", other, "List-Unsubscribe=One-Click")[0] == 404,
              "another customer's id with this signature: 404")

        t0 = time.time()
        st, page = http("POST", url, "List-Unsubscribe=One-Click")
        took = time.time() - t0
        check(st == 200 and "Unsubscribed" in page,
              "POST unsubscribes: %d %s" % (st, page[:80]))
        check(took < 1.0, "recorded within a second: %.3f s" % took)
        eve = tc.cust_of(d, kind="email", value="eve@example.com")
        t = tj.timeline(d, eve)
        check(any(e["type"] == "consent.changed" and e["channel"] == "email"
                  for e in t["entries"]), "consent.changed on the timeline")
        command(d, "eve@example.com", "news 3", "n-3", "marketing")
        command(d, "eve@example.com", "your order", "o-9", "transactional")
        got = wait_mail(smtp, 3)
        time.sleep(0.5)
        got = smtp.messages()
        notes = [g.get_body(("plain",)).get_content() for g in got]
        check(len(got) == 3 and not any("news 3" in n for n in notes) and
              any("your order" in n for n in notes),
              "no marketing after the opt-out, transactional still: %s" %
              notes)
        check(got[-1]["List-Unsubscribe"] is None,
              "no List-Unsubscribe on a transactional message")


if __name__ == "__main__":
    sys.exit(td.run([test_cart_email, test_deferred_refused_down,
                     test_auth_and_secrets, test_one_click_unsubscribe]))
