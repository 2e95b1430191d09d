#!/usr/bin/env python3
"""One customer across channels, end to end, against the real daemon.

Events with identity keys go in through the webhook test plugin (a
MessagePack envelope as the body), out to a dropdir sink; the admin API
shows the profiles.

- resolution table: an anonymous visitor who logs in (new user, and a user
  known from the store); the same email on POS and web; an unverified
  email that must not join two customers; phone numbers in two notations
  with the channel's phone_region; an impossible number left out.
- merge then split: customer.merged and customer.split events, aliases,
  identities back where they were, trait merge rules from config.
- a merge racing with events for both customers from several threads.
- profile facts: channels seen, orders and revenue; delivered events carry
  the customer id; everything survives a restart.
- admin errors (404, 409, 400) and logs without the personal values.

Needs OG_TOP_BUILDDIR (set by make check). Uses only the standard library.
"""
import http.client
import json
import os
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_durable as td  # noqa: E402

check = td.check


# ---- a minimal MessagePack codec (str, int, bool, nil, list, dict) -------

def mp_pack(o):
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if o >= 0:
            return b"\xcf" + struct.pack(">Q", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, str):
        b = o.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(o, (list, tuple)):
        return b"\xdc" + struct.pack(">H", len(o)) + b"".join(
            mp_pack(x) for x in o)
    if isinstance(o, dict):
        return b"\xde" + struct.pack(">H", len(o)) + b"".join(
            mp_pack(k) + mp_pack(v) for k, v in o.items())
    raise TypeError(o)


def mp_unpack(b, i=0):  # noqa: C901 (one branch per format)
    t = b[i]
    if t <= 0x7f:
        return t, i + 1
    if 0x80 <= t <= 0x8f or t in (0xde, 0xdf):
        if t <= 0x8f:
            n, i = t & 15, i + 1
        elif t == 0xde:
            n, i = struct.unpack(">H", b[i + 1:i + 3])[0], i + 3
        else:
            n, i = struct.unpack(">I", b[i + 1:i + 5])[0], i + 5
        d = {}
        for _ in range(n):
            k, i = mp_unpack(b, i)
            v, i = mp_unpack(b, i)
            d[k] = v
        return d, i
    if 0x90 <= t <= 0x9f or t in (0xdc, 0xdd):
        if t <= 0x9f:
            n, i = t & 15, i + 1
        elif t == 0xdc:
            n, i = struct.unpack(">H", b[i + 1:i + 3])[0], i + 3
        else:
            n, i = struct.unpack(">I", b[i + 1:i + 5])[0], i + 5
        a = []
        for _ in range(n):
            v, i = mp_unpack(b, i)
            a.append(v)
        return a, i
    if 0xa0 <= t <= 0xbf:
        n = t & 31
        return b[i + 1:i + 1 + n].decode(), i + 1 + n
    if t in (0xd9, 0xda, 0xdb):
        w = {0xd9: 1, 0xda: 2, 0xdb: 4}[t]
        n = int.from_bytes(b[i + 1:i + 1 + w], "big")
        s = i + 1 + w
        return b[s:s + n].decode(), s + n
    if t == 0xc0:
        return None, i + 1
    if t in (0xc2, 0xc3):
        return t == 0xc3, i + 1
    if t in (0xcc, 0xcd, 0xce, 0xcf):
        w = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[t]
        return int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
    if t in (0xd0, 0xd1, 0xd2, 0xd3):
        w = {0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[t]
        return int.from_bytes(b[i + 1:i + 1 + w], "big", signed=True), \
            i + 1 + w
    if t >= 0xe0:
        return t - 256, i + 1
    if t == 0xca:
        return struct.unpack(">f", b[i + 1:i + 5])[0], i + 5
    if t == 0xcb:
        return struct.unpack(">d", b[i + 1:i + 9])[0], i + 9
    raise ValueError("unsupported MessagePack byte 0x%02x" % t)


# ---- helpers ---------------------------------------------------------------

seq = [0]


def key(kind, value, verified=False):
    return {"kind": kind, "value": value, "verified": verified}


def post_envelope(d, ev, path="/hook", conn=None):
    """POSTs one envelope (given a fresh id) to a webhook ingress; returns
    (status, body)."""
    seq[0] += 1
    ev.setdefault("v", 1)
    ev["id"] = "cust-%d-%d" % (os.getpid(), seq[0])
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", d.pub, timeout=10)
    conn.request("POST", path, body=mp_pack(ev),
                 headers={"Authorization": "Bearer " + td.TOKEN,
                          "Content-Type": "application/msgpack"})
    r = conn.getresponse()
    body = r.read().decode()
    if own:
        conn.close()
    return r.status, body


def send(d, etype, ids=(), props=None, conn=None, path="/hook"):
    """One event through the webhook ingress; returns its id (asserts 202)."""
    ev = {"type": etype}
    if ids:
        ev["ids"] = list(ids)
    if props:
        ev["props"] = props
    st, body = post_envelope(d, ev, path, conn)
    check(st == 202, "%s accepted: %d %s" % (etype, st, body))
    return ev["id"]


def profile(d, ident=None, **q):
    if ident is not None:
        st, body = d.admin("GET", "/v1/customers/" + ident)
    else:
        st, body = d.admin("GET", "/v1/customers?" + urllib.parse.urlencode(
            q, quote_via=urllib.parse.quote))
    return st, (json.loads(body) if body.startswith("{") else body)


def cust_of(d, **q):
    st, p = profile(d, **q)
    return p["id"] if st == 200 else None


def delivered(out):
    """Every event the sink got, decoded, by id (last copy wins)."""
    evs = {}
    for n in sorted(os.listdir(out)):
        if n.endswith(".msgpack"):
            with open(os.path.join(out, n), "rb") as f:
                ev, _ = mp_unpack(f.read())
            evs[ev["id"]] = ev
    return evs


def wait_delivered(out, ids, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = delivered(out)
        if all(i in got for i in ids):
            return got
        time.sleep(0.05)
    return delivered(out)


def tree(name, main_extra="", hook_extra=""):
    d = td.Daemon(name)
    out = os.path.join(d.root, "sink-out")
    os.makedirs(out)
    d.main_conf(main_extra)
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN, hook_extra)
    d.channel("sink", "dropdir", "outbox = %s\n" % out)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = hook\nto = sink\n"
            "[route people]\nmatch = customer.*\nfrom = core\nto = sink\n")
    return d, out


# ---- the tests ---------------------------------------------------------------

def test_resolution_table():
    print("resolution table", flush=True)
    d, out = tree("resolve", hook_extra="phone_region = FR\n")
    try:
        d.start()
        # An anonymous visitor browses, then logs in as a new user.
        e1 = send(d, "page.viewed", [key("anon", "a-1")])
        e2 = send(d, "cart.updated", [key("anon", "a-1"), key("cart", "c-1")])
        anon = cust_of(d, kind="anon", value="a-1")
        check(anon is not None, "anonymous visitor has a profile")
        e3 = send(d, "customer.identified",
                  [key("user", "u-1", True), key("anon", "a-1")],
                  {"traits": {"name": "Ann"}})
        check(cust_of(d, kind="user", value="u-1") == anon,
              "login of a new user keeps the visitor's profile")
        got = wait_delivered(out, [e1, e2, e3])
        check(all(got.get(e, {}).get("customer") == anon
                  for e in (e1, e2, e3)),
              "delivered events carry the customer id")

        # A customer known from the store logs in on the web after
        # browsing anonymously: the anonymous profile joins the known one.
        send(d, "order.placed", [key("pos", "P-7", True)],
             {"total": {"amount": 4990, "currency": "EUR"}})
        store_cust = cust_of(d, kind="pos", value="P-7", scope="hook")
        send(d, "customer.identified",
             [key("user", "u-2", True), key("pos", "P-7", True)])
        check(cust_of(d, kind="user", value="u-2") == store_cust,
              "a verified user id joins the store customer")
        send(d, "page.viewed", [key("anon", "a-2")])
        anon2 = cust_of(d, kind="anon", value="a-2")
        check(anon2 not in (None, store_cust), "second visitor is separate")
        e4 = send(d, "cart.updated",
                  [key("user", "u-2", True), key("anon", "a-2")])
        check(cust_of(d, kind="anon", value="a-2") == store_cust,
              "login claims the anonymous profile for the known customer")
        st, p = profile(d, anon2)
        check(st == 200 and p["id"] == store_cust and anon2 in p["aliases"],
              "the visitor's old id resolves to the survivor: %s" % (p,))
        check(wait_delivered(out, [e4])[e4].get("customer") == store_cust,
              "the login event carries the survivor")

        # The same email on POS (unverified) and web (verified, other case).
        send(d, "order.placed",
             [key("pos", "P-8", True), key("email", " Alice@Example.COM ")])
        pos_cust = cust_of(d, kind="email", value="Alice@example.com")
        check(pos_cust is not None, "email normalized: trimmed, domain lower")
        send(d, "customer.identified",
             [key("user", "u-3", True), key("email", "Alice@EXAMPLE.com",
                                            True)])
        check(cust_of(d, kind="user", value="u-3") == pos_cust,
              "the same email on POS and web is one customer")
        st, p = profile(d, pos_cust)
        em = [i for i in p["identities"] if i["kind"] == "email"]
        check(len(em) == 1 and em[0]["verified"],
              "the email is verified once the web verified it: %s" % em)

        # An unverified email must not join two customers.
        send(d, "customer.identified", [key("user", "u-4", True)])
        send(d, "customer.identified",
             [key("user", "u-5", True), key("email", "bob@x.test", True)])
        c4 = cust_of(d, kind="user", value="u-4")
        c5 = cust_of(d, kind="user", value="u-5")
        send(d, "page.viewed",
             [key("user", "u-4", True), key("email", "bob@x.test")])
        check(cust_of(d, kind="user", value="u-4") == c4 and
              cust_of(d, kind="user", value="u-5") == c5 and c4 != c5,
              "an unverified email does not merge two customers")
        check(cust_of(d, kind="email", value="bob@x.test") == c5,
              "the email stays with its verified owner")
        # ... nor does an unverified key make a merge on its own
        send(d, "page.viewed", [key("anon", "a-9"), key("email", "bob@x.test")])
        check(cust_of(d, kind="anon", value="a-9") == c5,
              "unverified keys attach to the customer they find")

        # Phones: two notations, one customer; an impossible number is
        # left out and the event kept.
        send(d, "order.placed", [key("phone", "06 12 34 56 78")])
        ph = cust_of(d, kind="phone", value="+33612345678")
        check(ph is not None, "national number normalized with region FR")
        send(d, "page.viewed", [key("phone", "+33 6 12 34 56 78"),
                                key("loyalty", "L-1")])
        check(cust_of(d, kind="loyalty", value="L-1") == ph,
              "international notation finds the same customer")
        send(d, "page.viewed", [key("phone", "12"), key("loyalty", "L-2")])
        check(cust_of(d, kind="loyalty", value="L-2") is not None,
              "an impossible number is left out, the event kept")
        check("identity key 0 (phone 1***) not used: phone key: " in
              d.logtext(), "the log says why, the value masked")

        # Profile facts.
        send(d, "order.placed", [key("pos", "P-7", True)],
             {"total": {"amount": 1010, "currency": "EUR"}})
        send(d, "order.placed", [key("user", "u-2", True)],
             {"total": {"amount": 500, "currency": "USD"}})
        st, p = profile(d, store_cust)
        check(p.get("orders") == 3, "three orders: %s" % p.get("orders"))
        check(p.get("revenue") == {"EUR": 6000, "USD": 500},
              "revenue per currency: %s" % p.get("revenue"))
        check(p.get("first_channel") == "hook" and "hook" in p["channels"],
              "first touch and channels seen: %s" % p.get("channels"))
        ch = p["channels"]["hook"]
        check(ch["first_seen"] <= ch["last_seen"] and
              ch["first_seen"] == min(x["first_seen"] for x in
                                      p["identities"]),
              "first and last seen over the customer and its aliases: %s"
              % ch)

        # Admin errors.
        st, body = d.admin("GET", "/v1/customers/nobody")
        check(st == 404, "unknown customer: 404 (%d)" % st)
        st, body = d.admin("GET", "/v1/customers?kind=email&value=nobody")
        check(st == 400 and "email" in body, "bad email key: 400 %s" % body)
        st, body = d.admin("POST", "/v1/customers/%s/split" % store_cust)
        check(st == 409 and "not merged" in body,
              "split of a customer that is not an alias: 409 %s" % body)
        st, body = d.admin("GET", "/v1/customers")
        check(st == 400, "lookup without kind and value: 400")

        # Restart: the same answers from the store.
        check(d.stop() == 0, "clean stop")
        d.start()
        check(cust_of(d, kind="anon", value="a-2") == store_cust and
              cust_of(d, kind="user", value="u-3") == pos_cust,
              "resolution survives a restart")
        send(d, "page.viewed", [key("anon", "a-1")])
        check(cust_of(d, kind="anon", value="a-1") == anon,
              "known keys still resolve after the restart")
        # No personal value in the log.
        log = open(d.log, errors="replace").read()
        for v in ("Alice@", "bob@x.test", "612345678", "u-3"):
            check(v not in log, "log does not show %r" % v)
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def test_merge_split():
    print("merge and split", flush=True)
    d, out = tree("merge",
                  main_extra="[customers]\ntraits = newest\n"
                             "trait.name = oldest\n"
                             "trait.city = non_empty\n")
    try:
        d.start()
        send(d, "customer.identified", [key("user", "m-1", True)],
             {"traits": {"name": "First", "city": "Paris", "tier": "gold"}})
        a = cust_of(d, kind="user", value="m-1")
        time.sleep(0.01)
        send(d, "customer.identified", [key("loyalty", "ML-1", True),
                                        key("email", "m1@x.test")],
             {"traits": {"name": "Second", "city": "", "tier": "silver"}})
        b = cust_of(d, kind="loyalty", value="ML-1")
        check(a != b, "two customers before the merge")
        e = send(d, "page.viewed", [key("user", "m-1", True),
                                    key("loyalty", "ML-1", True)])
        check(cust_of(d, kind="loyalty", value="ML-1") == a and
              cust_of(d, kind="email", value="m1@x.test") == a,
              "a verified key on two customers merges them into the older")
        st, p = profile(d, b)
        check(st == 200 and p["id"] == a and p["aliases"] == [b],
              "the merged id resolves to the survivor")
        check(p["traits"] == {"name": "First", "city": "Paris",
                              "tier": "silver"},
              "trait rules: oldest name, non-empty city, newest tier: %s" %
              p["traits"])
        m = [x for x in p["merges"] if x["merged"] == b]
        check(len(m) == 1 and m[0]["reason"]["kind"] == "loyalty" and
              m[0]["split_at"] is None, "the merge is recorded: %s" % m)
        got = wait_delivered(out, [e])
        merged = [x for x in got.values() if x["type"] == "customer.merged"]
        check(len(merged) == 1 and merged[0]["props"]["merged"] == b and
              merged[0]["props"]["survivor"] == a and
              merged[0]["customer"] == a and
              merged[0]["ids"][0]["kind"] == "loyalty",
              "customer.merged delivered with the reason key: %s" % merged)
        # Split.
        st, body = d.admin("POST", "/v1/customers/%s/split" % b)
        check(st == 200, "split answered 200: %s" % body)
        check(cust_of(d, kind="loyalty", value="ML-1") == b and
              cust_of(d, kind="email", value="m1@x.test") == b and
              cust_of(d, kind="user", value="m-1") == a,
              "the split gives each customer its identities back")
        st, p = profile(d, a)
        check(p["aliases"] == [] and p["traits"]["name"] == "First" and
              p["traits"]["tier"] == "gold",
              "the survivor's traits are its own again: %s" % p["traits"])
        st, p = profile(d, b)
        check(p["id"] == b and p["traits"]["tier"] == "silver",
              "the split customer has its traits: %s" % p)
        deadline = time.time() + 10
        while time.time() < deadline:
            split = [x for x in delivered(out).values()
                     if x["type"] == "customer.split"]
            if split:
                break
            time.sleep(0.05)
        check(len(split) == 1 and split[0]["customer"] == b,
              "customer.split delivered: %s" % split)
        st, body = d.admin("POST", "/v1/customers/%s/split" % b)
        check(st == 409, "a second split: 409")
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def test_merge_race():
    print("merge racing with events", flush=True)
    d, out = tree("race")
    try:
        d.start()
        send(d, "customer.identified", [key("user", "r-1", True)])
        send(d, "customer.identified", [key("loyalty", "RL-1", True)])
        a = cust_of(d, kind="user", value="r-1")
        b = cust_of(d, kind="loyalty", value="RL-1")
        ids = []
        lock = threading.Lock()

        def worker(k):
            conn = http.client.HTTPConnection("127.0.0.1", d.pub, timeout=10)
            mine = []
            for n in range(60):
                kk = (key("user", "r-1", True) if (n + k) % 2 else
                      key("loyalty", "RL-1", True))
                mine.append(send(d, "page.viewed",
                                 [kk, key("anon", "ra-%d-%d" % (k, n))],
                                 conn=conn))
                if k == 0 and n == 30:
                    mine.append(send(d, "customer.identified",
                                     [key("user", "r-1", True),
                                      key("loyalty", "RL-1", True)],
                                     conn=conn))
            conn.close()
            with lock:
                ids.extend(mine)

        ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        got = wait_delivered(out, ids)
        check(all(i in got for i in ids), "every event delivered")
        custs = {got[i].get("customer") for i in ids if i in got}
        check(custs <= {a, b}, "events name only the two customers")
        check(cust_of(d, kind="loyalty", value="RL-1") == a and
              cust_of(d, kind="user", value="r-1") == a,
              "after the race both keys resolve to the survivor")
        lost = [k for k in range(4) for n in range(60)
                if cust_of(d, kind="anon", value="ra-%d-%d" % (k, n)) != a]
        check(not lost, "every anonymous key ends on the survivor (%d not)"
              % len(lost))
        merges = [x for x in delivered(out).values()
                  if x["type"] == "customer.merged"]
        check(len(merges) == 1, "one merge: %d" % len(merges))
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def dead_letters(d, channel):
    st, body = d.admin("GET", "/v1/dead-letters?channel=" + channel)
    return json.loads(body)["dead_letters"] if st == 200 else []


def files_of(out):
    return [n for n in os.listdir(out) if n.endswith(".msgpack")]


def ids_in(out):
    return {mp_unpack(open(os.path.join(out, n), "rb").read())[0]["id"]
            for n in files_of(out)}


def consent_tree(name):
    d = td.Daemon(name)
    outs = {}
    for ch in ("email", "sms", "late"):
        outs[ch] = os.path.join(d.root, ch + "-out")
        os.makedirs(outs[ch])
    d.main_conf("[consent]\ntransactional_bypass = sms\n")
    d.channel("hook", "webhook", "token = %s\n" % td.TOKEN)
    d.channel("email", "dropdir", "outbox = %s\n" % outs["email"])
    d.channel("sms", "dropdir", "outbox = %s\n" % outs["sms"])
    d.channel("late", "init_fail", "token = x\n")  # down at first
    d.write("conf/routes.d/all.conf",
            "[route msgs]\nmatch = message.*\nfrom = hook\n"
            "to = email, sms, late\n")
    return d, outs


def test_consent():
    print("consent checked at send time", flush=True)
    d, outs = consent_tree("consent")
    try:
        d.start()
        me = [key("user", "cs-1", True)]
        send(d, "customer.identified", me)

        def msg(purpose):
            return send(d, "message.send", me, {"purpose": purpose,
                                                "text": "hi"})

        def consent(c, occurred=None):
            ev = {"type": "consent.changed", "consent": c, "ids": me}
            if occurred:
                ev["occurred"] = occurred
            return post_envelope(d, ev)

        def where(mid):
            time.sleep(0.3)
            return {ch: mid in ids_in(out) for ch, out in outs.items()
                    if ch != "late"}

        m1 = msg("marketing")
        check(where(m1) == {"email": False, "sms": False},
              "marketing without consent goes nowhere")
        dl = [x for x in dead_letters(d, "email") if x["event_id"] == m1]
        check(len(dl) == 1 and "no marketing consent for 'email'" in
              dl[0]["error"], "kept as a dead letter with the reason: %s" % dl)
        check(consent({"marketing": {"email": True}})[0] == 202,
              "consent.changed accepted")
        m2 = msg("marketing")
        check(where(m2) == {"email": True, "sms": False},
              "marketing consent for email only: %s" % where(m2))
        check(consent({"marketing": {"*": False}})[0] == 202, "opt-out")
        m3 = msg("marketing")
        check(where(m3) == {"email": False, "sms": False},
              "a newer opt-out of everything wins over the email opt-in")
        dl = [x for x in dead_letters(d, "email") if x["event_id"] == m3]
        check(dl and "refused marketing on '*'" in dl[0]["error"],
              "reason names the statement: %s" % dl)
        t1 = msg("transactional")
        check(where(t1) == {"email": False, "sms": True},
              "transactional bypasses the marketing opt-out only where "
              "configured (sms): %s" % where(t1))
        # an older statement arriving late changes nothing
        check(consent({"marketing": {"email": True}}, occurred=1000)[0] == 202,
              "late statement accepted")
        m4 = msg("marketing")
        check(where(m4) == {"email": False, "sms": False},
              "a statement older than the opt-out does not undo it")
        check(consent({"marketing": {"email": True}})[0] == 202, "re-opt-in")
        m5 = msg("marketing")
        check(where(m5) == {"email": True, "sms": False},
              "a newer email opt-in wins over the older global opt-out")
        # bad consent statements are refused at the edge
        st, body = consent({"marketing": {"email": "yes"}})
        check(st == 400, "a consent value that is not a boolean: 400 %s" % st)
        st, body = consent({"newsletter": {"email": True}})
        check(st == 400, "an unknown purpose: 400")

        # At send time: two customers allowed on 'late' while it is down;
        # one revokes before it comes back.
        a = [key("user", "cs-a", True)]
        b = [key("user", "cs-b", True)]
        for who_ in (a, b):
            me[:] = who_
            consent({"marketing": {"late": True}})
        me[:] = a
        la = msg("marketing")
        me[:] = b
        lb = msg("marketing")
        c = td.chan(d, "late")
        check(c["queued"] >= 2, "both wait in memory for 'late': %s" % c)
        me[:] = a
        consent({"marketing": {"late": False}})
        d.channel("late", "dropdir", "outbox = %s\n" % outs["late"])
        d.proc.send_signal(td.signal.SIGHUP)
        check(td.wait_for(lambda: lb in ids_in(outs["late"]), 15),
              "the customer who kept consent gets the message")
        time.sleep(0.5)
        check(la not in ids_in(outs["late"]),
              "the customer who revoked while it waited does not")
        dl = [x for x in dead_letters(d, "late") if x["event_id"] == la]
        check(len(dl) == 1 and "refused marketing on 'late'" in dl[0]["error"],
              "checked again at send time: %s" % dl)
        st, body = d.admin("GET", "/metrics")
        for ch in ("email", "late"):
            n = len([x for x in dead_letters(d, ch)
                     if x["error"].startswith("suppressed")])
            line = 'omnigate_consent_suppressed_total{channel="%s"} %d' % (
                ch, n)
            check(n > 0 and line in body,
                  "suppressions counted per channel: %s" % line)
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def scan(d, needles):
    """Which needles occur in the database files."""
    found = set()
    for n in ("state.db", "state.db-wal"):
        path = os.path.join(d.state, n)
        if os.path.exists(path):
            data = open(path, "rb").read()
            found |= {x for x in needles if x.encode() in data}
    return found


def test_erasure():
    print("erasure", flush=True)
    d, out = tree("erase")
    later = os.path.join(d.root, "later-out")
    os.makedirs(later)
    d.channel("later", "init_fail", "token = x\n")
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = hook\nto = sink, later\n")
    canaries = ["canary-mail-5521@example.org", "CanaryName-88213",
                "canary-alias-6612", "canary-thread-7713",
                "canary-text-9914"]
    keep = "keepme-canary-4415@example.org"
    try:
        d.start()
        send(d, "customer.identified",
             [key("user", "er-1", True), key("email", canaries[0], True)],
             {"traits": {"name": canaries[1]}})
        send(d, "page.viewed", [key("loyalty", canaries[2], True)])
        send(d, "page.viewed", [key("user", "er-1", True),
                                key("loyalty", canaries[2], True)])  # merge
        send(d, "message.received", [key("user", "er-1", True)],
             {"thread": canaries[3], "text": canaries[4]})
        send(d, "customer.identified", [key("email", keep, True)])
        cid = cust_of(d, kind="user", value="er-1")
        check(len(profile(d, cid)[1]["aliases"]) == 1, "one alias")
        check(td.chan(d, "later")["waiting"] >= 5, "deliveries pending")
        check(d.stop() == 0, "stop")  # the WAL checkpointed into the file
        d.start()
        check(scan(d, canaries + [keep]) == set(canaries + [keep]),
              "the scan finds every canary before the erasure")
        st, body = d.admin("POST", "/v1/customers/%s/erase" % cid)
        check(st == 200, "erase answered 200: %s" % body)
        r = json.loads(body)
        check(r["customers"] == 2 and r["identities"] == 3 and
              r["events"] >= 4 and r["conversations"] == 1,
              "counts of what was erased: %s" % r)
        check(profile(d, cid)[0] == 404 and
              cust_of(d, kind="email", value=canaries[0]) is None,
              "the customer is gone, by id and by key")
        check(td.wait_for(lambda: td.chan(d, "later")["waiting"] == 1),
              "pending deliveries of the erased customer are gone "
              "(only the other customer's remains): %s" % td.chan(d, "later"))
        found = scan(d, canaries + [keep])
        check(found == {keep}, "no canary left in the database files "
              "(the other customer's stays): %s" % sorted(found))
        check(d.stop() == 0, "stop")
        import sqlite3
        db = sqlite3.connect(os.path.join(d.state, "state.db"))
        rows = db.execute("SELECT customer, customers, identities FROM "
                          "erasures").fetchall()
        db.close()
        check(rows == [(cid, 2, 3)], "an audit row without personal data: %s"
              % rows)
        check(scan(d, canaries) == set(), "still none after the stop")
    finally:
        d.cleanup()


def test_conversations():
    print("a conversation across channels", flush=True)
    d, out = tree("conv")
    d.channel("mail", "webhook", "token = %s\npath = /mail\n" % td.TOKEN)
    d.write("conf/routes.d/all.conf",
            "[route all]\nmatch = *\nfrom = hook, mail\nto = sink\n")
    try:
        d.start()

        def send_on(path, etype, ids, props):
            return send(d, etype, ids, props, path=path)

        me = [key("user", "cv-1", True)]
        # a social message, answered by email, the answer's reply by email
        e1 = send_on("/hook", "message.received", me,
                     {"thread": "social-thread-1", "text": "where is it?"})
        e2 = send_on("/mail", "message.send", me, {"text": "on its way"})
        e3 = send_on("/mail", "message.sent", me,
                     {"message_key": "<m1@shop.test>"})
        e4 = send_on("/mail", "message.received",
                     [key("email", "cv1@x.test")],
                     {"thread": ["<m1@shop.test>"], "text": "thanks"})
        got = wait_delivered(out, [e1, e2, e3, e4])
        convs = {got[e].get("conversation") for e in (e1, e2, e3, e4)}
        check(len(convs) == 1 and None not in convs,
              "one conversation across social and email: %s" % convs)
        conv = convs.pop()
        st, c = d.admin("GET", "/v1/conversations/" + conv)
        c = json.loads(c)
        check(st == 200 and c["state"] == "open" and c["messages"] == 4 and
              c["last_channel"] == "mail",
              "conversation state: %s" % c)
        check(sorted(c) == ["customer", "id", "last_channel", "messages",
                            "opened", "resolved", "state", "thread_keys",
                            "updated"] and c["id"] == conv and
              c["resolved"] is None and c["thread_keys"] >= 1 and
              c["opened"] <= c["updated"],
              "the conversation's fields: %s" % c)
        # resolve, then a new message on the social thread reopens it
        st, c = d.admin("POST", "/v1/conversations/%s/resolve" % conv)
        c = json.loads(c)
        check(st == 200 and c["state"] == "resolved" and
              isinstance(c["resolved"], int) and c["resolved"] > 0,
              "resolved: %s" % c)
        e5 = send_on("/hook", "message.received", me,
                     {"thread": "social-thread-1", "text": "one more"})
        got = wait_delivered(out, [e5])
        check(got[e5].get("conversation") == conv, "the same conversation")
        st, c = d.admin("GET", "/v1/conversations/" + conv)
        check(json.loads(c)["state"] == "open", "reopened by a new message")
        # a conversation.resolved event (an agent's tool) resolves it too
        st, body = post_envelope(d, {"type": "conversation.resolved",
                                     "conversation": conv})
        check(st == 202, "conversation.resolved accepted")
        check(td.wait_for(lambda: json.loads(d.admin(
            "GET", "/v1/conversations/" + conv)[1])["state"] == "resolved"),
            "resolved by an event")
        # another customer: another conversation
        e6 = send_on("/hook", "message.received",
                     [key("user", "cv-2", True)], {"text": "hello"})
        got = wait_delivered(out, [e6])
        check(got[e6].get("conversation") not in (None, conv),
              "another customer, another conversation")
        st, body = d.admin("GET", "/v1/conversations/nope")
        check(st == 404, "unknown conversation: 404")
        check(d.stop() == 0, "clean stop")
    finally:
        d.cleanup()


def main():
    return td.run([test_resolution_table, test_merge_split, test_merge_race,
                  test_consent, test_erasure, test_conversations])


if __name__ == "__main__":
    sys.exit(main())
