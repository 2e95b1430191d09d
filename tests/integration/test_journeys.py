#!/usr/bin/env python3
"""Journeys end to end, against the real daemon, on a controlled clock.

The daemon runs with --test-clock: POST /v1/test/clock moves the journeys'
clock ahead of the real one, so a 30-minute wait is tested without
sleeping. Events go in through the webhook test plugin (MessagePack
envelopes); messages come out at dropdir sinks named after channels
(email) or an HTTP channel (social) whose server refuses for good.

- abandoned cart: reminder after 30 min with the cart's lines rendered,
  not before; restarted by a new cart update; cancelled by an order for
  the cart; the timeline shows the story under one correlation id.
- a pending step survives kill -9 and fires after the restart.
- quiet hours in the customer's time zone (America/New_York).
- fallback: social refuses for good -> message.failed -> email.
- frequency cap per customer and channel.
- configuration errors named with file and line.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_customers as tc  # noqa: E402
import test_durable as td  # noqa: E402

check = td.check
key = tc.key
MIN = 60 * 1000


def admin(d, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", d.adm, timeout=10)
    c.request(method, path, body=body,
              headers={"Authorization": "Bearer " + td.ADMIN_TOKEN})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, text


def clock(d, offset_ms):
    st, body = admin(d, "POST", "/v1/test/clock",
                     json.dumps({"offset_ms": offset_ms}))
    check(st == 200, "clock moved: %d %s" % (st, body))
    return json.loads(body)["now"]


def timeline(d, cust):
    st, body = admin(d, "GET", "/v1/customers/%s/timeline" % cust)
    check(st == 200, "timeline: %d %s" % (st, body[:200]))
    return json.loads(body) if st == 200 else {"entries": [], "runs": []}


def messages(out):
    return {i: e for i, e in tc.delivered(out).items()
            if e.get("type") == "message.send"}


def wait_for(pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


CART_JOURNEY = """[journey]
description = Remind a visitor of the cart they left
trigger = cart.updated
entity = entity.id
concurrency = restart
cancel_on = order.placed
cancel_entity = props.cart_id
channels = email
purpose = transactional
[step remind]
wait = 30m
if = customer.orders == 0
send = cart_reminder
"""

CART_TEMPLATE = """[template]
vars = customer, event, journey
[default]
subject = Your cart is waiting
text = Hi {{customer.traits.name}}: {{#event.props.lines}}{{name}} x{{qty}}; \
{{/event.props.lines}}
[social]
text = {{customer.traits.name}}, {{#event.props.lines}}{{name}} {{/event.props.lines}}
max_length = 40
"""


def tree(name, journeys, extra_main="", social_url=None):
    d, hook_out = tc.tree(name, main_extra=extra_main)
    email_out = os.path.join(d.root, "email-out")
    os.makedirs(email_out)
    d.channel("email", "dropdir", "outbox = %s\n" % email_out)
    if social_url:
        d.channel("social", "httpout", "url = %s\n" % social_url,
                  "retry_lifetime = 1s\n")
    os.makedirs(os.path.join(d.conf, "templates"))
    os.makedirs(os.path.join(d.conf, "journeys.d"))
    d.write("conf/templates/cart_reminder.conf", CART_TEMPLATE.replace(
        "\\\n", ""))
    for n, text in journeys.items():
        d.write("conf/journeys.d/%s.conf" % n, text)
    return d, email_out


def start(d):
    d.start(args=["--test-clock"])


def cart(d, user, cart_id, lines, name="Ann"):
    ev = {"type": "cart.updated",
          "ids": [key("email", user, True)],
          "entity": {"kind": "cart", "id": cart_id},
          "props": {"lines": lines, "traits": {"name": name}}}
    st, body = tc.post_envelope(d, ev)
    check(st == 202, "cart accepted: %d %s" % (st, body))
    return ev["id"]


def test_abandoned_cart():
    print("abandoned cart", flush=True)
    d, out = tree("cart", {"abandoned_cart": CART_JOURNEY})
    try:
        start(d)
        check(admin(d, "GET", "/v1/test/clock")[0] == 200, "test clock on")
        cart(d, "ann@example.com", "c-1", [{"name": "Boots", "qty": 1}])
        cart(d, "ann@example.com", "c-1",
             [{"name": "Boots", "qty": 1}, {"name": "Socks", "qty": 3}])
        cart(d, "bob@example.com", "c-2", [{"name": "Hat", "qty": 1}])
        ann = tc.cust_of(d, kind="email", value="ann@example.com")
        bob = tc.cust_of(d, kind="email", value="bob@example.com")
        # Bob buys his cart in the store before the reminder.
        st, body = tc.post_envelope(d, {
            "type": "order.placed", "ids": [key("email", "bob@example.com",
                                                True)],
            "props": {"cart_id": "c-2"}})
        check(st == 202, "order accepted")
        clock(d, 29 * MIN)
        time.sleep(0.5)
        check(messages(out) == {}, "nothing before 30 minutes")
        clock(d, 31 * MIN)
        got = wait_for(lambda: messages(out))
        check(len(got) == 1, "one reminder: %s" % list(got))
        m = next(iter(got.values())) if got else {}
        p = m.get("props", {})
        check(m.get("customer") == ann, "to Ann")
        check(p.get("text") == "Hi Ann: Boots x1; Socks x3; ",
              "the cart's latest lines rendered: %r" % p.get("text"))
        check(p.get("subject") == "Your cart is waiting", "subject")
        check(p.get("to") == "ann@example.com", "address")
        check(p.get("channel") == "email" and p.get("journey") ==
              "abandoned_cart", "channel and journey")
        time.sleep(0.5)
        check(len(messages(out)) == 1, "still one reminder")

        t = wait_for(lambda: (lambda x: x if any(
            e["type"] == "message.sent" for e in x["entries"]) else None)(
            timeline(d, ann)))
        types = [e["type"] for e in t["entries"]]
        check(types.count("cart.updated") == 2 and "journey.started" in types
              and "journey.replaced" in types and "message.send" in types
              and "message.sent" in types and "journey.completed" in types,
              "Ann's timeline: %s" % types)
        runs = t["runs"]
        check([r["state"] for r in runs] == ["replaced", "completed"],
              "runs: %s" % runs)
        corr = runs[-1]["correlation"]
        tied = {e["type"] for e in t["entries"] if e["correlation"] == corr}
        check({"message.send", "message.sent", "journey.completed"} <= tied,
              "one correlation id ties the story: %s" % tied)
        check(m.get("correlation") == corr, "the message carries it")

        tb = timeline(d, bob)
        check([r["state"] for r in tb["runs"]] == ["cancelled"],
              "Bob's run cancelled: %s" % tb["runs"])
        check(any(e["type"] == "journey.cancelled" and "order.placed" in
                  (e["detail"] or "") for e in tb["entries"]),
              "cancelled by the order")

        st, _ = admin(d, "GET", "/v1/customers/nobody/timeline")
        check(st == 404, "timeline of an unknown customer: 404")
    finally:
        d.cleanup()


def test_restart_with_pending_step():
    print("restart with a pending step", flush=True)
    d, out = tree("restart", {"abandoned_cart": CART_JOURNEY})
    try:
        start(d)
        cart(d, "cy@example.com", "c-9", [{"name": "Scarf", "qty": 2}],
             name="Cy")
        time.sleep(0.3)
        d.kill()
        start(d)
        check(messages(out) == {}, "not yet")
        clock(d, 40 * MIN)
        got = wait_for(lambda: messages(out))
        check(len(got) == 1 and next(iter(got.values()))["props"]["text"] ==
              "Hi Cy: Scarf x2; ", "fires after kill -9 and restart: %s" %
              [g["props"].get("text") for g in got.values()])
    finally:
        d.cleanup()


def test_cancel_race():
    print("orders racing with due reminders", flush=True)
    d, out = tree("race", {"abandoned_cart": CART_JOURNEY})
    try:
        start(d)
        n = 40
        emails = ["race%d@example.com" % i for i in range(n)]
        for i, e in enumerate(emails):
            cart(d, e, "c-%d" % i, [{"name": "Item", "qty": i + 1}])
        custs = [tc.cust_of(d, kind="email", value=e) for e in emails]

        half = threading.Event()

        def orders():
            conn = http.client.HTTPConnection("127.0.0.1", d.pub, timeout=10)
            for i, e in enumerate(emails):
                if i % 2 == 0:
                    tc.post_envelope(d, {
                        "type": "order.placed",
                        "ids": [key("email", e, True)],
                        "props": {"cart_id": "c-%d" % i}}, conn=conn)
                if i == n // 2:
                    half.set()
            conn.close()

        t = threading.Thread(target=orders)
        t.start()
        half.wait(10)
        clock(d, 31 * MIN)  # the reminders fall due while orders come in
        t.join()

        def settled():
            states = []
            for c in custs:
                runs = timeline(d, c)["runs"]
                states.append(runs[0]["state"] if runs else None)
            return states if all(x in ("completed", "cancelled")
                                 for x in states) else None
        states = wait_for(settled, 20) or []
        time.sleep(0.5)  # deliveries of the last reminders
        to = {}
        for m in messages(out).values():
            to[m["customer"]] = to.get(m["customer"], 0) + 1
        bad = [(i, states[i] if i < len(states) else None, to.get(c, 0))
               for i, c in enumerate(custs)
               if (states[i] if i < len(states) else None) !=
               ("completed" if to.get(c, 0) == 1 else "cancelled")
               or to.get(c, 0) > 1]
        check(len(states) == n and not bad,
              "a reminder exactly when the run completed, none when the "
              "order cancelled it first: %s" % bad)
        check(all(states[i] == "completed" for i in range(1, n, 2)),
              "customers without an order got their reminder")
        print("    %d cancelled, %d reminded of the %d who ordered" % (
            states.count("cancelled"),
            sum(1 for i in range(0, n, 2) if states[i] == "completed"),
            (n + 1) // 2), flush=True)
    finally:
        d.cleanup()


QUIET_JOURNEY = """[journey]
trigger = order.placed
quiet_hours = 21:00-08:00
channels = email
purpose = transactional
[step receipt]
send = cart_reminder
"""


def test_quiet_hours_other_zone():
    print("quiet hours in the customer's time zone", flush=True)
    d, out = tree("quiet", {"receipt": QUIET_JOURNEY})
    try:
        start(d)
        ny = ZoneInfo("America/New_York")
        now = datetime.now(ny)
        # 23:30 in New York, the next local night
        target = now.replace(hour=23, minute=30, second=0, microsecond=0)
        if target <= now:
            target = target.replace(day=now.day)  # today, later
        while target <= now:
            target = datetime.fromtimestamp(target.timestamp() + 86400, ny)
        offset = int((target.timestamp() - time.time()) * 1000)
        clock(d, offset)
        st, _ = tc.post_envelope(d, {
            "type": "order.placed",
            "ids": [key("email", "ny@example.com", True)],
            "props": {"traits": {"timezone": "America/New_York",
                                 "name": "Nia"}}})
        check(st == 202, "order accepted")
        cust = tc.cust_of(d, kind="email", value="ny@example.com")
        t = wait_for(lambda: (lambda x: x if x["runs"] and x["runs"][0].get(
            "due", 0) > 0 and "quiet" in (x["runs"][0]["note"] or "")
            else None)(timeline(d, cust)))
        time.sleep(0.3)
        check(messages(out) == {}, "not sent in the night")
        run = t["runs"][0] if t["runs"] else {}
        due = datetime.fromtimestamp(run.get("due", 0) / 1000, ny)
        check(due.hour == 8 and due.minute == 0 and due > target,
              "waits until 08:00 New York time: %s" % due)
        clock(d, offset + 9 * 3600 * 1000)
        got = wait_for(lambda: messages(out))
        check(len(got) == 1, "sent in the morning")
    finally:
        d.cleanup()


class Refuse(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Refuse.hits.append(self.path)
        self.send_response(410)
        self.send_header("Content-Length", "0")
        self.end_headers()


FALLBACK_JOURNEY = """[journey]
trigger = order.placed
channels = preferred, email
purpose = transactional
[step receipt]
send = cart_reminder
"""


def test_fallback_on_permanent_failure():
    print("fallback when a channel refuses for good", flush=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/social" % srv.server_port
    d, out = tree("fallback", {"receipt": FALLBACK_JOURNEY}, social_url=url)
    try:
        start(d)
        st, _ = tc.post_envelope(d, {
            "type": "order.placed",
            "ids": [key("email", "fay@example.com", True),
                    key("social", "@fay", True)],
            "props": {"traits": {"preferred_channel": "social",
                                 "name": "Fay"},
                      "lines": [{"name": "Lamp", "qty": 1}]}})
        check(st == 202, "order accepted")
        got = wait_for(lambda: messages(out), 20)
        check(len(got) == 1, "the email came after social failed: %s" %
              list(got))
        m = next(iter(got.values())) if got else {"props": {}}
        check(m["props"].get("tried") == "social", "tried social first: %s" %
              m["props"])
        check(len(Refuse.hits) >= 1, "social was tried")
        cust = tc.cust_of(d, kind="email", value="fay@example.com")
        t = timeline(d, cust)
        types = [e["type"] for e in t["entries"]]
        check("message.failed" in types and "journey.fallback" in types,
              "failure and fallback on the timeline: %s" % types)
    finally:
        srv.shutdown()
        d.cleanup()


CAP_JOURNEY = """[journey]
trigger = page.viewed
concurrency = many
channels = email
purpose = transactional
frequency_cap = 1/1d
[step nudge]
send = cart_reminder
"""


def test_frequency_cap():
    print("frequency cap", flush=True)
    d, out = tree("cap", {"nudge": CAP_JOURNEY})
    try:
        start(d)
        for _ in range(3):
            tc.send(d, "page.viewed", [key("email", "gus@example.com", True)])
            time.sleep(0.3)
        time.sleep(0.5)
        got = messages(out)
        check(len(got) == 1, "one message a day: %d" % len(got))
        cust = tc.cust_of(d, kind="email", value="gus@example.com")
        t = timeline(d, cust)
        capped = [e for e in t["entries"] if "frequency cap" in (
            e["detail"] or "")]
        check(len(capped) == 2, "two capped: %s" % [
            e["detail"] for e in t["entries"]])
        clock(d, 25 * 3600 * 1000)
        tc.send(d, "page.viewed", [key("email", "gus@example.com", True)])
        check(wait_for(lambda: len(messages(out)) == 2), "a day later: again")
    finally:
        d.cleanup()


def default_tree(name):
    """etc/'s journeys and templates with a web storefront, a store's POS
    (both webhooks, both selling from the shared stock), email (dropdir)
    and a sink that gets the core's stock events."""
    d = td.Daemon(name)
    top = os.environ.get("OG_TOP_SRCDIR", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    for sub in ("journeys.d", "templates"):
        shutil.copytree(os.path.join(top, "etc", sub),
                        os.path.join(d.conf, sub))
    out = {}
    for n in ("email", "sink"):
        out[n] = os.path.join(d.root, n + "-out")
        os.makedirs(out[n])
        d.channel(n, "dropdir", "outbox = %s\n" % out[n])
    d.channel("web", "webhook", "token = %s\npath = /web\n" % td.TOKEN,
              "stock = *\nsafety_buffer = 1\n")
    d.channel("pos.store-12", "webhook",
              "token = %s\npath = /pos\n" % td.TOKEN, "stock = store-12\n")
    d.write("conf/routes.d/all.conf",
            "[route stock]\nmatch = stock.*\nfrom = core\nto = sink\n")
    return d, out


def post(d, path, ev):
    ev.setdefault("source", {"channel": path.strip("/")})
    st, body = tc.post_envelope(d, ev, path)
    check(st == 202, "%s accepted: %d %s" % (ev["type"], st, body))


def sent(out, template=None):
    return [m for m in messages(out).values()
            if template is None or m["props"]["template"] == template]


def test_default_journeys():
    print("the default journeys of etc/ with shared stock", flush=True)
    d, out = default_tree("defaults")
    email = out["email"]
    try:
        start(d)
        text = d.logtext()
        check("6 of 6 enabled" in text, "every default journey runs: %s" %
              [x for x in text.splitlines() if "journeys" in x])
        yes = {"marketing": {"email": True}}

        # Buy online, pick up in store: the order reserves at the store,
        # the store's POS says it is ready (naming only the order), the
        # customer hears it by email.
        post(d, "/pos", {"type": "inventory.changed", "props": {
            "sku": "S-1", "location": "store-12", "on_hand": 5,
            "version": 1}})
        post(d, "/web", {"type": "order.placed",
                         "ids": [key("email", "dee@example.com", True)],
                         "entity": {"kind": "order", "id": "o-1"},
                         "props": {"pickup_location": "store-12",
                                   "lines": [{"sku": "S-1", "qty": 2,
                                              "name": "Lamp"}]}})
        st, body = admin(d, "GET", "/v1/stock/S-1")
        s1 = json.loads(body) if st == 200 else {}
        check(s1.get("locations", {}).get("store-12", {}).get("reserved") ==
              2, "reserved at the store: %s" % body)
        check(s1.get("channels", {}).get("web", {}).get("available") == 2,
              "web sells 5 - 2 reserved - 1 buffer: %s" % body)
        post(d, "/pos", {"type": "order.ready_for_pickup",
                         "location": "store-12",
                         "entity": {"kind": "order", "id": "o-1"}})
        got = wait_for(lambda: sent(email, "pickup_ready"))
        check(len(got) == 1 and "o-1 is ready for pickup at store-12" in
              got[0]["props"].get("text", "") and got[0]["props"]["to"] ==
              "dee@example.com", "pickup message: %s" % [
                  g["props"] for g in got])
        check(sent(email, "receipt") == [], "no receipt for a web order")

        # Back in stock: out on the web, a customer asks, a delivery
        # comes in at the store.
        post(d, "/pos", {"type": "inventory.changed", "props": {
            "sku": "S-2", "location": "store-12", "on_hand": 0,
            "version": 1}})
        post(d, "/web", {"type": "stock.subscribed",
                         "ids": [key("email", "eve@example.com", True)],
                         "consent": yes,
                         "entity": {"kind": "product", "id": "S-2"},
                         "props": {"name": "Scarf"}})
        time.sleep(0.3)
        check(sent(email, "back_in_stock") == [], "not yet back")
        post(d, "/pos", {"type": "inventory.changed", "props": {
            "sku": "S-2", "location": "store-12", "delta": 3,
            "version": 2}})
        got = wait_for(lambda: sent(email, "back_in_stock"))
        check(len(got) == 1 and got[0]["props"].get("subject") ==
              "It's back: Scarf", "back in stock: %s" % [
                  g["props"] for g in got])
        stock_evs = [e for e in tc.delivered(out["sink"]).values()
                     if e["type"].startswith("stock.")]
        kinds = sorted((e["type"], e["props"]["channel"]) for e in stock_evs
                       if e["props"]["sku"] == "S-2")
        check(("stock.out", "web") in kinds and ("stock.back", "web") in
              kinds, "stock.out and stock.back of the web: %s" % kinds)

        # In-store purchase: a receipt at once, a follow-up in 3 days.
        post(d, "/pos", {"type": "order.placed", "location": "store-12",
                         "ids": [key("email", "fay@example.com", True)],
                         "consent": yes,
                         "entity": {"kind": "order", "id": "o-2"},
                         "props": {"lines": [{"sku": "S-1", "qty": 1,
                                              "name": "Lamp"}]}})
        got = wait_for(lambda: sent(email, "receipt"))
        check(len(got) == 1 and "1 x Lamp" in got[0]["props"].get(
            "text", "") and "<li>1 &times; Lamp</li>" in got[0]["props"].get(
            "html", ""), "receipt: %s" % [g["props"] for g in got])
        check(sent(email, "follow_up") == [], "no follow-up yet")

        # A message on command: a template and channels in order (sms
        # is not enabled here: email).
        post(d, "/web", {"type": "message.send",
                         "ids": [key("email", "hal@example.com", True)],
                         "entity": {"kind": "order", "id": "o-5"},
                         "props": {"template": "pickup_ready",
                                   "purpose": "transactional",
                                   "channel": "sms", "fallback": ["email"]}})
        got = [m for m in wait_for(lambda: sent(email, "pickup_ready") if len(
            sent(email, "pickup_ready")) > 1 else None) or []
            if m["props"]["to"] == "hal@example.com"]
        check(len(got) == 1 and "o-5 is ready" in got[0]["props"]["text"],
              "a message on command: %s" % [g["props"] for g in got])
        hal = tc.cust_of(d, kind="email", value="hal@example.com")
        check(any("sms: not enabled" in (e["detail"] or "") for e in
                  timeline(d, hal)["entries"]), "why not sms, on the timeline")

        # Abandoned cart, 31 minutes later by the test clock.
        post(d, "/web", {"type": "cart.updated",
                         "ids": [key("email", "gil@example.com", True)],
                         "consent": yes,
                         "entity": {"kind": "cart", "id": "c-7"},
                         "props": {"lines": [{"name": "Boots", "qty": 1}],
                                   "traits": {"first_name": "Gil"}}})
        clock(d, 31 * MIN)
        got = wait_for(lambda: sent(email, "cart_reminder"))
        check(len(got) == 1 and got[0]["props"].get("subject") ==
              "Gil, your cart is waiting" and "1 x Boots" in
              got[0]["props"].get("text", ""), "cart reminder: %s" % [
                  g["props"] for g in got])
        # four days later at noon (UTC, the journeys' default zone): out
        # of the quiet hours (21:00-09:00)
        day = (int(time.time() * 1000) // (24 * 60 * MIN) + 4) * 24 * 60 * MIN
        clock(d, day + 12 * 60 * MIN - int(time.time() * 1000))
        got = wait_for(lambda: sent(email, "follow_up"))
        fay = tc.cust_of(d, kind="email", value="fay@example.com")
        check(len(got) == 1 and got[0]["props"]["to"] == "fay@example.com",
              "follow-up after three days: %s" % timeline(d, fay)["runs"])
    finally:
        d.cleanup()


def test_config_errors():
    print("configuration errors", flush=True)
    d, out = tree("errors", {"bad": """[journey]
trigger = cart.updated
concurrency = sometimes
quiet_hours = 25:00-08:00
timezone = Mars/Olympus
frequency_cap = often
[step a]
wait = 5 parsecs
send = no_such_template
[step b]
emit = order.nudged
set = vip=true
"""})
    try:
        r = subprocess.run([td.DAEMON, "-c", d.conf, "--check-config"],
                           capture_output=True, text=True)
        err = r.stderr
        check(r.returncode == 78, "refused: %d" % r.returncode)
        f = os.path.join(d.conf, "journeys.d", "bad.conf")
        for line, text in ((3, "concurrency"), (4, "quiet_hours"),
                           (5, "unknown time zone 'Mars/Olympus'"),
                           (6, "frequency_cap"), (8, "wait"),
                           (9, "no template 'no_such_template'"),
                           (10, "one action per step")):
            check("%s:%d: " % (f, line) in err and text in err,
                  "%s named at line %d" % (text, line))
    finally:
        d.cleanup()


if __name__ == "__main__":
    sys.exit(td.run([test_config_errors, test_abandoned_cart,
            test_restart_with_pending_step, test_cancel_race,
            test_quiet_hours_other_zone,
            test_fallback_on_permanent_failure, test_frequency_cap,
            test_default_journeys]))
