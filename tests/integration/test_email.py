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
import imaplib
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

    def __init__(self, root, auth=None, tls=None, smtps=None):
        self.root = root
        self.out = os.path.join(root, "smtp-out")
        os.makedirs(self.out, exist_ok=True)
        self.auth = auth
        self.tls = tls  # (cert, key) or None
        self.smtps = smtps
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
        if self.tls:
            args += ["--tls", self.tls[0], self.tls[1]]
        if self.smtps:
            args += ["--smtps", self.smtps[0], self.smtps[1]]
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


class Imap:
    """Dovecot (dovecot-imapd) with a throwaway configuration: one user
    in a passwd-file, maildirs in the test's directory, IMAP on a free
    loopback port, no TLS (loopback only)."""

    USER, PASSWORD = "shop", "imap-Pa55"

    def __init__(self, root, tls=None):
        self.root = os.path.join(root, "dovecot")
        os.makedirs(os.path.join(self.root, "run"))
        os.makedirs(os.path.join(self.root, "state"))
        os.makedirs(os.path.join(self.root, "home"))
        self.port = free_port()
        with open(os.path.join(self.root, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s\n" % (self.USER, self.PASSWORD))
        if os.geteuid() == 0:  # mail as nobody, services as dovecot's users
            os.chmod(root, 0o755)
            os.chmod(self.root, 0o755)
            shutil.chown(os.path.join(self.root, "home"), "nobody", "nogroup")
            users = "uid=nobody gid=nogroup"
            internal = ""
        else:  # everything as the user running the tests
            import pwd
            import grp
            u = pwd.getpwuid(os.getuid()).pw_name
            g = grp.getgrgid(os.getgid()).gr_name
            users = "uid=%s gid=%s" % (u, g)
            internal = ("default_internal_user = %s\ndefault_login_user = "
                        "%s\ndefault_internal_group = %s\n" % (u, u, g))
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.tls_port = free_port() if tls else 0
        ssl = ("ssl = yes\nssl_cert = <%s\nssl_key = <%s\n" % tls) if tls \
            else "ssl = no\n"
        with open(self.conf, "w") as f:
            f.write(internal + ssl + """base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
disable_plaintext_auth = no
protocols = imap
listen = 127.0.0.1
first_valid_uid = 1
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = static
  args = {users} home={r}/home/%u
}}
""".format(r=self.root, port=self.port, users=users,
           tls_port=self.tls_port))
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                self.session().logout()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not start")

    def session(self):
        m = imaplib.IMAP4("127.0.0.1", self.port)
        m.login(self.USER, self.PASSWORD)
        m.select("INBOX")
        return m

    def append(self, raw):
        m = self.session()
        m.append("INBOX", None, None, raw)
        m.logout()

    def taken(self):
        """UIDs with the OmnigateTaken keyword, and all UIDs."""
        m = self.session()
        t = m.uid("SEARCH", None, "KEYWORD", "OmnigateTaken")[1][0].split()
        a = m.uid("SEARCH", None, "ALL")[1][0].split()
        m.logout()
        return len(t), len(a)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


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
    d.write("conf/templates/chat.conf", "[template]\nvars = event\n"
            "[default]\nsubject = About your message\n"
            "text = You wrote: {{event.props.text}}\n")
    d.write("conf/journeys.d/chat.conf",
            "[journey]\ntrigger = message.received\n"
            "when = source.channel == chat\nchannels = email\n"
            "purpose = transactional\n[step answer]\nsend = chat\n")
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
def running(name, auth=None, creds=None, unsubscribe=False, imap=False,
            dkim=None):
    """An SMTP peer and a daemon whose email channel submits to it (with
    the credentials file creds); both stopped and removed after."""
    root = tempfile.mkdtemp(prefix="ogsmtp-%s." % name)
    smtp = Smtp(root, auth)
    smtp.start()
    d = None
    box = None
    try:
        extra = ""
        if dkim:
            extra += ("dkim_key_file = %s\ndkim_selector = s1\n"
                      "dkim_domain = shop.example\n" % dkim)
        if imap:
            box = Imap(root)
            path = os.path.join(root, "imap.creds")
            with open(path, "w") as f:
                f.write("%s\n%s\n" % (Imap.USER, Imap.PASSWORD))
            extra += ("imap_url = imap://127.0.0.1:%d/INBOX\n"
                      "imap_credentials = %s\nimap_starttls = off\n"
                      "poll_interval = 300ms\nbounce_limit = 1\n"
                      "max_message_size = 64k\n"
                      "trust_authserv = mx.shop.example\n" % (box.port, path))
            smtp.imap = box
            smtp.sink = os.path.join(root, "sink-out")
            os.makedirs(smtp.sink)
        if creds is not None:
            path = os.path.join(root, "smtp.creds")
            with open(path, "w") as f:
                f.write(creds)
            extra += "credentials = %s\n" % path
            smtp.creds = path
        d = tree(name, smtp, extra)
        if imap:  # what the mailbox gave, for the test to read
            d.channel("sink", "dropdir", "outbox = %s\n" % smtp.sink)
            d.write("conf/routes.d/in.conf", "[route in]\nmatch = message.*"
                    "\nfrom = email\nto = sink\n")
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
        if box is not None:
            box.stop()
        smtp.stop()
        shutil.rmtree(root, ignore_errors=True)


def command(d, to, note, order="o-1", purpose="transactional",
            consent=None, channel="email"):
    ev = {"type": "message.send", "ids": [key("email", to, True)],
          "entity": {"kind": "order", "id": order},
          "props": {"template": "note", "purpose": purpose,
                    "channel": channel, "note": note}}
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


def mail(headers, body, charset="utf-8"):
    h = "".join("%s: %s\r\n" % kv for kv in headers)
    return (h + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=%s"
            "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" % charset
            ).encode() + body.encode(charset) + b"\r\n"


def test_inbound():
    print("IMAP: a reply threaded, an auto-reply, a bounce, "
          "non-UTF-8 and malformed mail", flush=True)
    with running("inbound", imap=True) as (d, smtp):
        box = smtp.imap
        # A chat message gets an email answer carrying its conversation.
        st, body = tc.post_envelope(d, {
            "type": "message.received", "source": {"channel": "chat"},
            "ids": [key("email", "ann@example.com", True)],
            "props": {"text": "Do you have it in blue?"}})
        check(st == 202, "chat message accepted")
        got = wait_mail(smtp)
        out = got[0] if got else email.message_from_string("")
        reply_to = str(out["Reply-To"] or "")
        check(reply_to.startswith("replies+") and
              reply_to.endswith("@shop.example"),
              "Reply-To carries the conversation: %s" % reply_to)
        conv = reply_to[len("replies+"):].split(".")[0]
        st, before = d.admin("GET", "/v1/conversations/" + conv)
        check(st == 200, "the conversation exists: %s" % before)
        n0 = json.loads(before).get("messages", 0) if st == 200 else 0

        # Ann answers by email, to the Reply-To, in reply to the message.
        box.append(mail([("From", "Ann <ann@example.com>"),
                         ("To", reply_to),
                         ("Subject", "Re: About your message"),
                         ("Message-ID", "<r1@example.com>"),
                         ("In-Reply-To", out["Message-ID"]),
                         ("References", out["Message-ID"]),
                         ("Date", "Mon, 30 Nov 2026 10:00:00 +0000"),
                         ("Authentication-Results",
                          "mx.shop.example; dmarc=pass "
                          "header.from=example.com")],
                        "Yes, in blue, size 40.\n\n> You wrote: ..."))
        st, after = None, None

        def threaded():
            st, body = d.admin("GET", "/v1/conversations/" + conv)
            c = json.loads(body) if st == 200 else {}
            return c if c.get("messages", 0) > n0 else None
        c = tj.wait_for(threaded, 15)
        check(c is not None and c.get("last_channel") == "email",
              "the reply joined the conversation: %s" % c)
        ann = tc.cust_of(d, kind="email", value="ann@example.com")
        t = tj.timeline(d, ann)
        check(any(e["type"] == "message.received" and e["channel"] == "email"
                  for e in t["entries"]), "message.received on the timeline")

        # Another reply to the plain address, naming the message only by
        # In-Reply-To: its id finds the conversation.
        n1 = c["messages"]
        box.append(mail([("From", "ann@example.com"),
                         ("To", "replies@shop.example"),
                         ("Subject", "Re: About your message"),
                         ("Message-ID", "<r2@example.com>"),
                         ("In-Reply-To", out["Message-ID"])],
                        "And in red?"))
        c2 = tj.wait_for(lambda: (lambda c: c if c.get("messages", 0) > n1
                                  else None)(json.loads(d.admin(
                                      "GET", "/v1/conversations/" + conv)[1])),
                         15)
        check(c2 is not None, "In-Reply-To alone threads the reply")
        c = c2 or c

        # An out-of-office answer is no reply.
        box.append(mail([("From", "ann@example.com"), ("To", reply_to),
                         ("Subject", "Out of office"),
                         ("Auto-Submitted", "auto-replied"),
                         ("Message-ID", "<ooo1@example.com>")],
                        "I am away until Monday."))
        t = tj.wait_for(lambda: (lambda t: t if any(
            e["type"] == "message.auto_reply" for e in t["entries"])
            else None)(tj.timeline(d, ann)), 15)
        check(t is not None, "message.auto_reply on the timeline")
        st, body = d.admin("GET", "/v1/conversations/" + conv)
        check(json.loads(body)["messages"] == c["messages"],
              "an auto-reply is not a message of the conversation")

        # A bounce of a message sent on command.
        command(d, "bob@example.com", "your order", "o-7")
        got = wait_mail(smtp, 2)
        mid = str(got[-1]["Message-ID"]) if len(got) >= 2 else "<none>"
        dsn = ("From: MAILER-DAEMON@mx.example.net\r\n"
               "To: shop@shop.example\r\n"
               "Subject: Undelivered Mail Returned to Sender\r\n"
               "Message-ID: <dsn1@mx.example.net>\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: multipart/report; report-type=delivery-status;"
               " boundary=\"B\"\r\n\r\n"
               "--B\r\nContent-Type: text/plain\r\n\r\n"
               "Your message could not be delivered.\r\n"
               "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
               "Reporting-MTA: dns; mx.example.net\r\n\r\n"
               "Final-Recipient: rfc822; bob@example.com\r\n"
               "Action: failed\r\nStatus: 5.1.1\r\n"
               "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
               "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
               "From: shop@shop.example\r\nTo: bob@example.com\r\n"
               "Message-ID: %s\r\n\r\n--B--\r\n" % mid)
        box.append(dsn.encode())
        bob = tc.cust_of(d, kind="email", value="bob@example.com")
        t = tj.wait_for(lambda: (lambda t: t if any(
            e["type"] == "journey.fallback" for e in t["entries"])
            else None)(tj.timeline(d, bob)), 15)
        types = [e["type"] for e in (t or tj.timeline(d, bob))["entries"]]
        check("message.bounced" in types and "journey.fallback" in types,
              "the bounce names the message and its run falls back: %s" %
              types)
        st, p = tc.profile(d, bob)
        check(st == 200 and any(x.get("undeliverable") is True
                                for x in p.get("addresses", [])),
              "after bounce_limit (1) the address is undeliverable: %s" %
              p.get("addresses"))
        n_sent = len(smtp.messages())
        command(d, "bob@example.com", "again", "o-8")
        time.sleep(1.0)
        check(len(smtp.messages()) == n_sent,
              "nothing more is sent to an undeliverable address")
        check(any("email: no address" in (e["detail"] or "")
                  for e in tj.timeline(d, bob)["entries"]),
              "the timeline says why")

        # ISO-8859-1, and a message without a From among good ones.
        box.append(mail([("From", "cafe@example.com"),
                         ("To", "replies@shop.example"),
                         ("Subject", "Latin-1"),
                         ("Message-ID", "<l1@example.com>")],
                        "Un café, s'il vous plaît.", "iso-8859-1"))
        box.append(b"this is not a mail at all\r\n\r\nno headers\r\n")
        box.append(mail([("From", "big@example.com"),
                         ("To", "replies@shop.example"),
                         ("Subject", "a large attachment"),
                         ("Message-ID", "<big1@example.com>")],
                        "x" * 100000))
        box.append(mail([("From", "last@example.com"),
                         ("To", "replies@shop.example"),
                         ("Subject", "after the bad one"),
                         ("Message-ID", "<last1@example.com>")], "still read"))
        ok = tj.wait_for(lambda: (lambda n: n if n[0] == n[1] else None)(
            box.taken()), 15)
        check(ok is not None, "every message flagged taken: %s" %
              (box.taken(),))
        cafe = tc.cust_of(d, kind="email", value="cafe@example.com")
        last = tc.cust_of(d, kind="email", value="last@example.com")
        check(cafe is not None and last is not None,
              "the good messages around a bad one were read")
        check("left unread" in d.logtext(), "the bad one is named in the log")
        big = [x for x in d.logtext().splitlines()
               if "larger than max_message_size" in x]
        check(len(big) == 1 and "set aside" in big[0],
              "a mail over max_message_size is set aside once, named: %s" % big)
        check(tc.cust_of(d, kind="email", value="big@example.com") is None,
              "and not read")
        evs = [e for e in tj.timeline(d, cafe)["entries"]
               if e["type"] == "message.received"]
        check(len(evs) == 1, "read once: %s" % evs)
        got = {e["id"]: e for e in tc.wait_delivered(smtp.sink, [
            e["ref"] for e in evs]).values()}
        ev = got.get(evs[0]["ref"], {}) if evs else {}
        check(ev.get("props", {}).get("text", "").strip() ==
              "Un café, s'il vous plaît.", "Latin-1 read as UTF-8: %r" %
              ev.get("props", {}).get("text"))
        check(ev.get("ids", [{}])[0].get("verified") is False,
              "an unauthenticated sender is not verified")
        reply = [e for e in tc.delivered(smtp.sink).values()
                 if e.get("props", {}).get("message_key") == "r1@example.com"]
        check(len(reply) == 1 and reply[0]["ids"][0]["verified"] is True and
              reply[0]["props"]["thread"][0] == str(out["Message-ID"]).strip(
                  "<>").split("@")[0] and reply[0]["props"]["text"].startswith(
                  "Yes, in blue") and reply[0].get("conversation") == conv,
              "the reply: verified by the trusted MTA, its thread, text and "
              "conversation: %s" % reply)
        n_before = len(tj.timeline(d, ann)["entries"])
        time.sleep(1.0)  # polls go on: nothing taken twice
        check(len(tj.timeline(d, ann)["entries"]) == n_before,
              "nothing taken twice")


def certificate(root):
    """A self-signed certificate for localhost (and its key) in root."""
    cert, pkey = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost", "-days", "1", "-keyout",
                    pkey, "-out", cert], check=True, capture_output=True)
    return cert, pkey


def test_starttls():
    print("TLS: STARTTLS required (never in clear), smtps://, systemd "
          "credentials", flush=True)
    root = tempfile.mkdtemp(prefix="ogsmtp-tls.")
    cert, pkey = certificate(root)
    tls = Smtp(os.path.join(root, "a"), tls=(cert, pkey))
    os.makedirs(tls.root, exist_ok=True)
    tls.start()
    implicit = Smtp(os.path.join(root, "c"), smtps=(cert, pkey))
    os.makedirs(implicit.root, exist_ok=True)
    implicit.start()
    plain = Smtp(os.path.join(root, "b"))
    os.makedirs(plain.root, exist_ok=True)
    plain.start()
    d = tree("tls", tls, "ca_file = %s\n" % cert)
    try:
        # localhost: the certificate's name, checked
        d.write("conf/channels.d/email.conf", open(os.path.join(
            d.conf, "channels.d", "email.conf")).read().replace(
            "smtp://127.0.0.1:%d\nstarttls = off" % tls.port,
            "smtp://localhost:%d\nstarttls = required" % tls.port))
        d.channel("plain", "email",
                  "smtp_url = smtp://127.0.0.1:%d\nstarttls = required\n"
                  "from = shop@shop.example\n" % plain.port,
                  "retry_base = 200ms\nretry_max = 1s\n")
        # opportunistic: TLS when offered, else in clear
        d.channel("either", "email",
                  "smtp_url = smtp://127.0.0.1:%d\nstarttls = opportunistic\n"
                  "from = shop@shop.example\n" % plain.port)
        # smtps://, AUTH-less, the login read from a systemd credential
        os.makedirs(os.path.join(root, "credentials"))
        with open(os.path.join(root, "credentials", "smtp"), "w") as f:
            f.write("unused-user\nunused-password\n")
        d.channel("secure", "email",
                  "smtp_url = smtps://localhost:%d\nca_file = %s\n"
                  "credentials = systemd:smtp\nfrom = shop@shop.example\n"
                  % (implicit.port, cert))
        d.start(args=["--test-clock"],
                env={"CREDENTIALS_DIRECTORY": os.path.join(root,
                                                           "credentials")})
        command(d, "tls@example.com", "over TLS")
        got = wait_mail(tls)
        check(len(got) == 1 and got[0]["To"] == "tls@example.com",
              "delivered over STARTTLS with the name checked")
        command(d, "clear@example.com", "in clear?", channel="plain")
        time.sleep(1.5)
        check(plain.messages() == [],
              "a relay without STARTTLS gets nothing in clear")
        check("STARTTLS" in d.logtext() or "TLS" in d.logtext() or
              "SSL" in d.logtext(), "the log says TLS is the problem")
        st, body = d.admin("GET", "/v1/dead-letters?channel=plain")
        check(st == 200 and json.loads(body)["dead_letters"] == [],
              "deferred, not a dead letter: an operator fixes the relay")
        command(d, "opp@example.com", "either way", channel="either")
        got = wait_mail(plain)
        check(len(got) == 1 and got[0]["To"] == "opp@example.com",
              "opportunistic: in clear to a relay without STARTTLS: %s %s"
              % ([g["To"] for g in got], "\n".join(
                  x for x in d.logtext().splitlines() if "either" in x)))
        time.sleep(3)  # plain's retries now find either's connection
        check(all(g["To"] != "clear@example.com" for g in plain.messages()),
              "a required-TLS channel never rides an opportunistic channel's "
              "clear connection: %s" % [g["To"] for g in plain.messages()])
        command(d, "sec@example.com", "over smtps", channel="secure")
        got = wait_mail(implicit)
        check(len(got) == 1 and got[0]["To"] == "sec@example.com",
              "delivered over smtps:// with a systemd credential")
        check("unused-password" not in d.logtext(), "no password logged")
    finally:
        d.cleanup()
        tls.stop()
        plain.stop()
        implicit.stop()
        shutil.rmtree(root, ignore_errors=True)


VERIFY = """
import sys, dkim
raw = open(sys.argv[1], "rb").read()
raw = raw.split(b"\\r\\n", 2)[2]  # the peer's two X-Peer lines
if len(sys.argv) > 3:
    raw = raw.replace(b"x Boots", b"x Boats")
txt = b"v=DKIM1; k=rsa; p=" + sys.argv[2].encode()
ok = dkim.verify(raw, dnsfunc=lambda name, timeout=5:
                 txt if name == b"s1._domainkey.shop.example." else None)
print("pass" if ok else "fail")
"""


def test_dkim():
    print("DKIM: signed with libopendkim, verified by dkimpy", flush=True)
    root = tempfile.mkdtemp(prefix="ogdkim.")
    pkey = os.path.join(root, "dkim.pem")
    subprocess.run(["openssl", "genrsa", "-out", pkey, "2048"], check=True,
                   capture_output=True)
    pub = subprocess.run(
        "openssl rsa -in %s -pubout -outform DER 2>/dev/null | base64 -w0"
        % pkey, shell=True, check=True, capture_output=True,
        text=True).stdout.strip()
    try:
        with running("dkim", dkim=pkey) as (d, smtp):
            command(d, "ann@example.com", "2 x Boots")
            got = wait_mail(smtp)
            check(len(got) == 1 and got[0]["DKIM-Signature"] is not None,
                  "signed: %s" % (got[0]["DKIM-Signature"] if got else None))
            body = got[0].get_body(("plain",)) if got else None
            check(body is not None and "2 x Boots" in body.get_content(),
                  "the text is there")
            eml = sorted(n for n in os.listdir(smtp.out)
                         if n.endswith(".eml"))
            path = os.path.join(smtp.out, eml[0]) if eml else "/dev/null"
            v = subprocess.run(["/usr/bin/python3", "-c", VERIFY, path, pub],
                               capture_output=True, text=True)
            check(v.stdout.strip() == "pass",
                  "dkimpy verifies it: %s %s" % (v.stdout, v.stderr[-300:]))
            v = subprocess.run(["/usr/bin/python3", "-c", VERIFY, path, pub,
                                "tamper"], capture_output=True, text=True)
            check(v.stdout.strip() == "fail", "a changed body fails: %s" %
                  v.stdout)
            check(not any("PRIVATE KEY" in x or pub[:40] in x
                          for x in [d.logtext()]), "no key in the log")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_imaps():
    print("IMAP over TLS (imaps://, the name checked)", flush=True)
    root = tempfile.mkdtemp(prefix="ogimaps.")
    cert, pkey = certificate(root)
    os.chmod(root, 0o755)
    os.chmod(pkey, 0o644)  # dovecot's config reader is not root
    box = Imap(root, tls=(cert, pkey))
    smtp = Smtp(root)
    smtp.start()
    path = os.path.join(root, "imap.creds")
    with open(path, "w") as f:
        f.write("%s\n%s\n" % (Imap.USER, Imap.PASSWORD))
    d = tree("imaps", smtp, "imap_url = imaps://localhost:%d/INBOX\n"
             "imap_credentials = %s\nca_file = %s\npoll_interval = 300ms\n"
             % (box.tls_port, path, cert))
    try:
        tj.start(d)
        box.append(mail([("From", "tls@example.com"),
                         ("To", "replies@shop.example"),
                         ("Subject", "over TLS"),
                         ("Message-ID", "<t1@example.com>")], "hello"))
        c = tj.wait_for(lambda: tc.cust_of(d, kind="email",
                                           value="tls@example.com"), 15)
        check(c is not None, "read over imaps://")
        ok = tj.wait_for(lambda: (lambda n: n if n[0] == n[1] else None)(
            box.taken()), 15)
        check(ok is not None, "flagged over imaps://")
    finally:
        d.cleanup()
        box.stop()
        smtp.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(td.run([test_cart_email, test_deferred_refused_down,
                     test_auth_and_secrets, test_one_click_unsubscribe,
                     test_inbound, test_starttls, test_dkim, test_imaps]))
