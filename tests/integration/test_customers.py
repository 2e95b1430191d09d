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


def mp_unpack(b, i=0):
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
    raise ValueError("unsupported MessagePack byte 0x%02x" % t)


# ---- helpers ---------------------------------------------------------------

seq = [0]


def key(kind, value, verified=False):
    return {"kind": kind, "value": value, "verified": verified}


def send(d, etype, ids=(), props=None, conn=None):
    """One event through the webhook ingress; returns its id (asserts 202)."""
    seq[0] += 1
    ev = {"v": 1, "type": etype, "id": "cust-%d-%d" % (os.getpid(), seq[0])}
    if ids:
        ev["ids"] = list(ids)
    if props:
        ev["props"] = props
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", d.pub, timeout=10)
    conn.request("POST", "/hook", body=mp_pack(ev),
                 headers={"Authorization": "Bearer " + td.TOKEN,
                          "Content-Type": "application/msgpack"})
    r = conn.getresponse()
    body = r.read().decode()
    if own:
        conn.close()
    check(r.status == 202, "%s accepted: %d %s" % (etype, r.status, body))
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
        check(p["channels"]["hook"]["events"] >= 5,
              "events counted over the customer and its aliases")

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


def main():
    tests = [test_resolution_table, test_merge_split, test_merge_race]
    names = sys.argv[1:]
    for t in tests:
        if not names or t.__name__ in names:
            t()
    if td.failures:
        print("%d failure(s)" % len(td.failures))
        return 1
    print("all customer tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
