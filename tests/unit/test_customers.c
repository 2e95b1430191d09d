/*
 * test_customers.c: identity keys (normalization, masking), what the store
 * reads of an envelope, and resolution in the SQLite store: the
 * resolution table, merges with their events, splits, duplicates that
 * change nothing, and a failed commit that leaves no customer behind.
 */
#include "config.h"

#include <msgpack.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "domain/identity.h"
#include "store/store.h"
#include "testutil.h"

static char *dir;

/* ---- identity keys ------------------------------------------------------ */

static og_err_t norm(const char *kind, const char *value, int verified,
                     const char *instance, const char *region, og__idkey_t *k,
                     char *why)
{
    og__raw_idkey_t r = {kind, value, (uint32_t)strlen(kind),
                         (uint32_t)strlen(value), verified};

    return og__idkey_normalize(&r, instance, region, k, why, 200);
}

static void test_normalize(void)
{
    og__idkey_t k;
    char why[200];

    CU_ASSERT_EQUAL(
        norm("email", "  Jo.Doe@Example.COM\t", 1, "web", NULL, &k, why),
        OG_OK);
    CU_ASSERT_STRING_EQUAL(k.value, "Jo.Doe@example.com");
    CU_ASSERT_STRING_EQUAL(k.scope, "");
    CU_ASSERT_EQUAL(k.verified, 1);
    CU_ASSERT_EQUAL(norm("email", "no-at-sign", 0, "web", NULL, &k, why),
                    OG_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "email key"));
    CU_ASSERT_PTR_NULL(strstr(why, "no-at-sign")); /* never the value */
    CU_ASSERT_EQUAL(norm("email", "a@b@c", 0, "web", NULL, &k, why),
                    OG_ERR_INVALID);
    CU_ASSERT_EQUAL(norm("email", "@b.c", 0, "web", NULL, &k, why),
                    OG_ERR_INVALID);
    CU_ASSERT_EQUAL(norm("user", "   ", 0, "web", NULL, &k, why),
                    OG_ERR_INVALID);
    /* phones: national with the region, international without */
    CU_ASSERT_EQUAL(norm("phone", "06 12 34 56 78", 0, "pos.1", "FR", &k, why),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(k.value, "+33612345678");
    CU_ASSERT_EQUAL(norm("phone", "+1 (650) 253-0000", 0, "web", NULL, &k, why),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(k.value, "+16502530000");
    CU_ASSERT_EQUAL(norm("phone", "06 12 34 56 78", 0, "web", NULL, &k, why),
                    OG_ERR_INVALID); /* no country code, no region */
    CU_ASSERT_EQUAL(norm("phone", "12", 0, "web", "FR", &k, why),
                    OG_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "phone key"));
    CU_ASSERT_EQUAL(norm("phone", "call me", 0, "web", "FR", &k, why),
                    OG_ERR_INVALID);
    /* scoped kinds take the source instance */
    CU_ASSERT_EQUAL(norm("pos", "C-1", 1, "pos.store-12", NULL, &k, why),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(k.scope, "pos.store-12");
    CU_ASSERT_EQUAL(norm("social", "123", 1, "social.meta", NULL, &k, why),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(k.scope, "social.meta");
    CU_ASSERT_EQUAL(norm("loyalty", "L1", 1, "pos.store-12", NULL, &k, why),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(k.scope, "");
    /* ranks and device kinds */
    CU_ASSERT(og__idkind_rank("user") < og__idkind_rank("email"));
    CU_ASSERT(og__idkind_rank("email") < og__idkind_rank("crm"));
    CU_ASSERT(og__idkind_rank("crm") < og__idkind_rank("anon"));
    CU_ASSERT(og__idkind_is_device("cart") && og__idkind_is_device("anon"));
    CU_ASSERT(!og__idkind_is_device("email"));
}

static void test_mask(void)
{
    char m[64];

    og__mask("jane.doe@example.com", m, sizeof(m));
    CU_ASSERT_STRING_EQUAL(m, "j***@example.com");
    og__mask("+33612345678", m, sizeof(m));
    CU_ASSERT_STRING_EQUAL(m, "+3361***78");
    og__mask("u-12345", m, sizeof(m));
    CU_ASSERT_STRING_EQUAL(m, "u***");
}

/* ---- envelopes ----------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* An envelope with n extra top-level pairs x0..x(n-1). */
static msgpack_sbuffer envelope(size_t extra, const char *customer)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t i;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4 + extra + (customer ? 1 : 0));
    pack_str(&pk, "v");
    msgpack_pack_uint8(&pk, 1);
    pack_str(&pk, "type");
    pack_str(&pk, "order.placed");
    pack_str(&pk, "ids");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "kind");
    pack_str(&pk, "email");
    pack_str(&pk, "value");
    pack_str(&pk, "a@b.c");
    pack_str(&pk, "verified");
    msgpack_pack_true(&pk);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "kind");
    pack_str(&pk, "anon");
    pack_str(&pk, "value");
    pack_str(&pk, "x1");
    pack_str(&pk, "props");
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "total");
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "amount");
    msgpack_pack_uint32(&pk, 4990);
    pack_str(&pk, "currency");
    pack_str(&pk, "EUR");
    pack_str(&pk, "traits");
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "name");
    pack_str(&pk, "Ann");
    if (customer != NULL) {
        pack_str(&pk, "customer");
        pack_str(&pk, customer);
    }
    for (i = 0; i < extra; i++) {
        char k[16];

        snprintf(k, sizeof(k), "x%zu", i);
        pack_str(&pk, k);
        msgpack_pack_uint32(&pk, (uint32_t)i);
    }
    return sb;
}

/* The value of top-level key in b as a string, or "". */
static void field(const uint8_t *b, size_t len, const char *key, char *out,
                  size_t outlen, uint32_t *npairs)
{
    msgpack_unpacked u;
    size_t off = 0;
    uint32_t i;

    out[0] = '\0';
    msgpack_unpacked_init(&u);
    CU_ASSERT_EQUAL_FATAL(msgpack_unpack_next(&u, (const char *)b, len, &off),
                          MSGPACK_UNPACK_SUCCESS);
    CU_ASSERT_EQUAL(off, len);
    *npairs = u.data.via.map.size;
    for (i = 0; i < u.data.via.map.size; i++) {
        msgpack_object_kv *kv = &u.data.via.map.ptr[i];

        if (kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0 &&
            kv->val.type == MSGPACK_OBJECT_STR)
            snprintf(out, outlen, "%.*s", (int)kv->val.via.str.size,
                     kv->val.via.str.ptr);
    }
    msgpack_unpacked_destroy(&u);
}

static void test_facts_and_stamp(void)
{
    msgpack_sbuffer sb = envelope(0, NULL);
    og__event_facts_t f;
    uint8_t *out;
    size_t outlen;
    char v[64];
    uint32_t n;
    size_t extra;

    CU_ASSERT_EQUAL_FATAL(og__event_facts((uint8_t *)sb.data, sb.size, &f), 0);
    CU_ASSERT_EQUAL(f.nids, 2);
    CU_ASSERT_EQUAL(f.ids[0].verified, 1);
    CU_ASSERT_EQUAL(f.ids[1].verified, 0);
    CU_ASSERT_NSTRING_EQUAL(f.ids[1].value, "x1", 2);
    CU_ASSERT(f.has_total && f.total_amount == 4990);
    CU_ASSERT_STRING_EQUAL(f.currency, "EUR");
    CU_ASSERT_PTR_NOT_NULL(f.traits);
    CU_ASSERT_EQUAL(f.traits[0], 0x81);
    CU_ASSERT_PTR_NULL(f.customer);
    /* not a map (the input is well-formed by contract) */
    CU_ASSERT_EQUAL(og__event_facts((const uint8_t *)"\x91\x01", 2, &f), -1);

    /* set: added, then replaced in place of the old one */
    out = og__envelope_set_str((uint8_t *)sb.data, sb.size, "customer", "C-1",
                               &outlen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    field(out, outlen, "customer", v, sizeof(v), &n);
    CU_ASSERT_STRING_EQUAL(v, "C-1");
    CU_ASSERT_EQUAL(n, 5);
    {
        size_t l2;
        uint8_t *o2 =
            og__envelope_set_str(out, outlen, "customer", "C-22", &l2);

        field(o2, l2, "customer", v, sizeof(v), &n);
        CU_ASSERT_STRING_EQUAL(v, "C-22");
        CU_ASSERT_EQUAL(n, 5);
        free(o2);
    }
    free(out);
    msgpack_sbuffer_destroy(&sb);
    /* across the fixmap/map16 boundary (15 pairs + 1), and a large map */
    for (extra = 10; extra <= 12; extra++) {
        sb = envelope(extra, NULL);
        out = og__envelope_set_str((uint8_t *)sb.data, sb.size, "customer",
                                   "C-3", &outlen);
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        field(out, outlen, "customer", v, sizeof(v), &n);
        CU_ASSERT_STRING_EQUAL(v, "C-3");
        CU_ASSERT_EQUAL(n, 4 + extra + 1);
        free(out);
        msgpack_sbuffer_destroy(&sb);
    }
    sb = envelope(70000, "old");
    out = og__envelope_set_str((uint8_t *)sb.data, sb.size, "customer", "new",
                               &outlen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    field(out, outlen, "customer", v, sizeof(v), &n);
    CU_ASSERT_STRING_EQUAL(v, "new");
    CU_ASSERT_EQUAL(n, 4 + 70000 + 1);
    free(out);
    msgpack_sbuffer_destroy(&sb);
    CU_ASSERT_PTR_NULL(og__envelope_set_str((const uint8_t *)"\x91\x01", 2,
                                            "customer", "x", &outlen));
}

/* ---- resolution in the store --------------------------------------------- */

static og__store_t *st;
static int nmerges, nsplits;
static char last_survivor[40], last_merged[40], last_reason[40];
static uint8_t made_body[64];
static char made_id[40];
static int seq;

static int merged(void *data, const og__merge_t *m, og__store_item_t *ev)
{
    (void)data;
    if (m->split)
        nsplits++;
    else
        nmerges++;
    snprintf(last_survivor, sizeof(last_survivor), "%s", m->survivor);
    snprintf(last_merged, sizeof(last_merged), "%s", m->merged);
    snprintf(last_reason, sizeof(last_reason), "%s", m->reason->kind);
    snprintf(made_id, sizeof(made_id), "made-%d", ++seq);
    memcpy(made_body, "\x81\xa1v\x01", 4);
    ev->event_id = made_id;
    ev->body = made_body;
    ev->len = 4;
    ev->received_ms = m->at_ms;
    return 0;
}

static const og__store_hooks_t hooks = {.stamp = og__stamp_hook,
                                        .merged = merged};

/* Keys "kind=value" or "kind=value!" (verified). */
static og__person_t person(og__idkey_t *keys, const char *const *specs)
{
    og__person_t p;
    size_t n = 0;

    memset(&p, 0, sizeof(p));
    for (; *specs; specs++, n++) {
        const char *eq = strchr(*specs, '=');
        size_t vl = strlen(eq + 1);
        char why[200];
        og__raw_idkey_t r;

        memset(&r, 0, sizeof(r));
        r.kind = *specs;
        r.kind_len = (uint32_t)(eq - *specs);
        r.value = eq + 1;
        r.verified = eq[vl] == '!';
        r.value_len = (uint32_t)(vl - (r.verified ? 1 : 0));
        CU_ASSERT_EQUAL(
            og__idkey_normalize(&r, "web", "FR", &keys[n], why, sizeof(why)),
            OG_OK);
    }
    p.keys = keys;
    p.nkeys = n;
    p.instance = "web";
    return p;
}

/* Commits one event with keys; returns its customer in out. */
static og__accept_t resolve_as(const char *id, const char *const *specs,
                               int is_order, char out[40])
{
    og__idkey_t keys[8];
    og__person_t p = person(keys, specs);
    og__store_item_t it;
    char err[256];

    memset(&it, 0, sizeof(it));
    it.event_id = id;
    it.content_hash = 7;
    it.body = (const uint8_t *)"\x81\xa1v\x01";
    it.len = 4;
    it.received_ms = 1000 + (uint64_t)seq++;
    p.is_order = is_order;
    it.person = &p;
    CU_ASSERT_EQUAL(
        st->ops->commit(st, &it, 1, NULL, 0, &hooks, err, sizeof(err)), OG_OK);
    snprintf(out, 40, "%s", it.customer);
    if (it.result == OG__ACCEPT_NEW) {
        char v[64];
        uint32_t n;

        CU_ASSERT_PTR_NOT_NULL_FATAL(it.stamped);
        field(it.stamped, it.stamped_len, "customer", v, sizeof(v), &n);
        CU_ASSERT_STRING_EQUAL(v, out);
    }
    free(it.stamped);
    return it.result;
}

/* The canonical customer of a key, "" when none. */
static void who(const char *spec, char out[40])
{
    og__idkey_t keys[1];
    const char *specs[] = {spec, NULL};
    og__person_t p = person(keys, specs);
    og__sbuf_t b = {0};

    out[0] = '\0';
    if (st->ops->customer_get(st, NULL, &keys[0], NULL, &b) == OG_OK)
        sscanf(b.p, "{\"id\":\"%39[^\"]\"", out);
    (void)p;
    og__sbuf_free(&b);
}

static long long count(const char *q)
{
    char path[600];
    sqlite3 *db;
    sqlite3_stmt *s;
    long long v = -1;

    snprintf(path, sizeof(path), "%s/state.db", dir);
    sqlite3_open(path, &db);
    if (sqlite3_prepare_v2(db, q, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_resolve(void)
{
    og__store_opts_t o = {dir, OG__DURABLE_PROCESS, 60000, 0};
    char err[256], a[40], b[40], c[40], x[40], y[40];

    st = og__store_open_sqlite(&o, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);

    /* new keys make a new customer; known ones find it */
    resolve_as("e1", KEYS("anon=a1"), 0, a);
    CU_ASSERT(a[0] != '\0');
    resolve_as("e2", KEYS("anon=a1", "cart=k1"), 0, x);
    CU_ASSERT_STRING_EQUAL(x, a);
    who("cart=k1", x);
    CU_ASSERT_STRING_EQUAL(x, a);
    /* a new verified user attaches to the visitor */
    resolve_as("e3", KEYS("user=u1!", "anon=a1"), 0, x);
    CU_ASSERT_STRING_EQUAL(x, a);
    CU_ASSERT_EQUAL(nmerges, 0);

    /* a known user claims an anonymous profile (no merge of people) */
    resolve_as("e4", KEYS("user=u2!"), 0, b);
    resolve_as("e5", KEYS("anon=a2"), 0, c);
    CU_ASSERT_STRING_NOT_EQUAL(b, c);
    resolve_as("e6", KEYS("user=u2!", "anon=a2"), 0, x);
    CU_ASSERT_STRING_EQUAL(x, b);
    CU_ASSERT_EQUAL(nmerges, 1);
    CU_ASSERT_STRING_EQUAL(last_survivor, b);
    CU_ASSERT_STRING_EQUAL(last_merged, c);
    CU_ASSERT_STRING_EQUAL(last_reason, "user");
    who("anon=a2", x);
    CU_ASSERT_STRING_EQUAL(x, b);

    /* ... but not a profile somebody verified */
    resolve_as("e7", KEYS("user=u3!", "anon=a3"), 0, c);
    resolve_as("e8", KEYS("user=u2!", "anon=a3"), 0, x);
    CU_ASSERT_STRING_EQUAL(x, b);
    who("anon=a3", x);
    CU_ASSERT_STRING_EQUAL(x, c);
    CU_ASSERT_EQUAL(nmerges, 1);

    /* an unverified email does not join two verified customers */
    resolve_as("e9", KEYS("user=u4!", "email=z@z.z!"), 0, y);
    resolve_as("e10", KEYS("user=u3!", "email=z@Z.Z"), 0, x);
    CU_ASSERT_STRING_EQUAL(x, c);
    who("email=z@z.z", x);
    CU_ASSERT_STRING_EQUAL(x, y);
    CU_ASSERT_EQUAL(nmerges, 1);

    /* two verified keys on two customers: the older survives, the
     * merge event is written in the same commit with its id */
    resolve_as("e11", KEYS("email=z@z.z!", "user=u3!"), 0, x);
    CU_ASSERT_EQUAL(nmerges, 2);
    CU_ASSERT_STRING_EQUAL(x, c); /* c was created before y */
    CU_ASSERT_STRING_EQUAL(last_survivor, c);
    CU_ASSERT_STRING_EQUAL(last_merged, y);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE id LIKE "
                          "'made-%'"),
                    2);
    who("user=u4", x);
    CU_ASSERT_STRING_EQUAL(x, c);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM identities i JOIN customers "
                          "c ON c.id = i.customer WHERE c.merged_into IS NOT "
                          "NULL"),
                    0); /* identities always name canonical customers */

    /* a duplicate changes no profile; orders count once */
    CU_ASSERT_EQUAL(resolve_as("o1", KEYS("user=u1!"), 1, x), OG__ACCEPT_NEW);
    CU_ASSERT_EQUAL(resolve_as("o1", KEYS("user=u1!"), 1, x),
                    OG__ACCEPT_DUPLICATE);
    CU_ASSERT_EQUAL(count("SELECT orders FROM customers WHERE orders > 0"), 1);

    /* split y out of c: y's keys go back, c keeps its own */
    {
        og__sbuf_t out = {0};

        CU_ASSERT_EQUAL(st->ops->customer_split(st, y, 5000, &hooks, &out, err,
                                                sizeof(err)),
                        OG_OK);
        CU_ASSERT_PTR_NOT_NULL(strstr(out.p, "\"identities_restored\":2"));
        og__sbuf_free(&out);
        CU_ASSERT_EQUAL(nsplits, 1);
        who("user=u4", x);
        CU_ASSERT_STRING_EQUAL(x, y);
        who("email=z@z.z", x);
        CU_ASSERT_STRING_EQUAL(x, y);
        who("user=u3", x);
        CU_ASSERT_STRING_EQUAL(x, c);
        CU_ASSERT_EQUAL(st->ops->customer_split(st, y, 5000, &hooks, &out, err,
                                                sizeof(err)),
                        OG_ERR_CONFLICT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not merged"));
        CU_ASSERT_EQUAL(st->ops->customer_split(st, "nobody", 5000, &hooks,
                                                &out, err, sizeof(err)),
                        OG_ERR_NOT_FOUND);
        og__sbuf_free(&out);
    }
    og__store_close(st);
    st = NULL;
}

/* Commits an event of user=who with a consent map {purpose: {ch: v}} at
 * time at (ms). */
static void state_consent(const char *user, const char *purpose, const char *ch,
                          int v, uint64_t at)
{
    char spec[64], err[256], id[32];
    const char *specs[] = {spec, NULL};
    og__idkey_t keys[1];
    og__person_t p;
    og__store_item_t it;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    snprintf(spec, sizeof(spec), "user=%s!", user);
    p = person(keys, specs);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, purpose);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, ch);
    if (v)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    p.consent = (const uint8_t *)sb.data;
    p.consent_len = sb.size;
    p.occurred = at;
    memset(&it, 0, sizeof(it));
    snprintf(id, sizeof(id), "cs-%d", seq++);
    it.event_id = id;
    it.body = (const uint8_t *)"\x81\xa1v\x01";
    it.len = 4;
    it.received_ms = 50000 + (uint64_t)seq;
    it.person = &p;
    CU_ASSERT_EQUAL(
        st->ops->commit(st, &it, 1, NULL, 0, &hooks, err, sizeof(err)), OG_OK);
    free(it.stamped);
    msgpack_sbuffer_destroy(&sb);
}

static int allows(const char *user, const char *purpose, const char *channel,
                  const og__consent_rules_t *rules)
{
    char spec[64], cust[40], why[256] = "";
    int allowed = -1;

    snprintf(spec, sizeof(spec), "user=%s", user);
    who(spec, cust);
    CU_ASSERT_EQUAL(og__consent_decide(st->ops->consent_repo(st), cust, purpose,
                                       channel, rules, &allowed, why,
                                       sizeof(why)),
                    OG_OK);
    if (!allowed)
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "suppressed: "));
    return allowed;
}

static void test_consent_rules(void)
{
    og__store_opts_t o = {dir, OG__DURABLE_PROCESS, 60000, 0};
    static const char *const sms[] = {"sms"};
    og__consent_rules_t deny = {0, NULL, 0}, allow = {1, NULL, 0},
                        bypass = {0, sms, 1};
    char err[256];

    st = og__store_open_sqlite(&o, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    state_consent("k1", "marketing", "email", 1, 100);
    /* no statement: the default decides */
    CU_ASSERT_EQUAL(allows("k1", "marketing", "sms.twilio", &deny), 0);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "sms.twilio", &allow), 1);
    /* by kind: "email" covers the instance email.smtp */
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email.smtp", &deny), 1);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email", &deny), 1);
    /* a newer "*" opt-out covers everything */
    state_consent("k1", "marketing", "*", 0, 200);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email", &allow), 0);
    /* an older statement arriving later changes nothing */
    state_consent("k1", "marketing", "email.smtp", 1, 150);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email.smtp", &deny), 0);
    /* a newer specific opt-in wins over the older "*" */
    state_consent("k1", "marketing", "email.smtp", 1, 300);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email.smtp", &deny), 1);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email.other", &deny), 0);
    /* transactional: blocked by the marketing opt-out unless bypassed */
    CU_ASSERT_EQUAL(allows("k1", "transactional", "sms", &deny), 0);
    CU_ASSERT_EQUAL(allows("k1", "transactional", "sms", &bypass), 1);
    CU_ASSERT_EQUAL(allows("k1", "transactional", "sms.x", &bypass), 1);
    CU_ASSERT_EQUAL(allows("k1", "transactional", "email.smtp", &bypass), 1);
    /* ... and by its own opt-out, bypass or not */
    state_consent("k1", "transactional", "sms", 0, 400);
    CU_ASSERT_EQUAL(allows("k1", "transactional", "sms", &bypass), 0);
    /* a customer without statements: transactional goes */
    state_consent("k2", "transactional", "push", 1, 100);
    CU_ASSERT_EQUAL(allows("k2", "transactional", "email", &deny), 1);
    CU_ASSERT_EQUAL(allows("k2", "marketing", "email", &deny), 0);
    og__store_close(st);
    st = NULL;
}

/* A commit that fails after resolution leaves no customer behind. */
static void test_rollback(void)
{
    og__store_opts_t o = {dir, OG__DURABLE_PROCESS, 60000, 0};
    char err[256], x[40];
    og__idkey_t keys[2];
    og__person_t p;
    og__store_item_t it[2];
    long long before;

    st = og__store_open_sqlite(&o, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    before = count("SELECT count(*) FROM customers");
    p = person(keys, KEYS("user=rb1!"));
    memset(it, 0, sizeof(it));
    it[0].event_id = "rb-1";
    it[0].body = (const uint8_t *)"\x81\xa1v\x01";
    it[0].len = 4;
    it[0].received_ms = 9000;
    it[0].person = &p;
    /* the second item's target makes the outbox insert fail (NULL) */
    it[1] = it[0];
    it[1].event_id = "rb-2";
    it[1].person = NULL;
    it[1].ntargets = 1;
    it[1].targets = (const char *const[]){NULL};
    CU_ASSERT_NOT_EQUAL(
        st->ops->commit(st, it, 2, NULL, 0, &hooks, err, sizeof(err)), OG_OK);
    free(it[0].stamped);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM customers"), before);
    who("user=rb1", x);
    CU_ASSERT_STRING_EQUAL(x, "");
    og__store_close(st);
    st = NULL;
}

int main(void)
{
    CU_pSuite s;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    s = CU_add_suite("customers", NULL, NULL);
    CU_add_test(s, "identity keys normalized", test_normalize);
    CU_add_test(s, "personal data masked for logs", test_mask);
    CU_add_test(s, "envelope facts, customer stamped", test_facts_and_stamp);
    CU_add_test(s, "resolution table, merges, split", test_resolve);
    CU_add_test(s, "a failed commit leaves no customer", test_rollback);
    CU_add_test(s, "consent rules", test_consent_rules);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
