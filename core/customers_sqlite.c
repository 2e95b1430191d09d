/*
 * customers_sqlite.c: identity resolution, merges, splits and profiles in
 * the SQLite store (docs/customers.md for the rules).
 *
 * Invariants kept by every write here:
 * - an identity row always names a canonical customer (merged_into NULL):
 *   a merge moves the merged customer's identities to the survivor, so a
 *   resolution is one primary-key lookup per key;
 * - an alias points at its canonical customer in one hop (merged_into is
 *   rewritten for every alias of a customer that is merged in turn);
 * - a merged customer's own rows (traits, channels seen, revenue) stay
 *   under its id: a profile is read over the customer and its aliases, so
 *   a split gives each side back exactly what it had.
 */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "customers_sqlite.h"
#include "event.h"
#include "util.h"

enum {
    S_IDENT_GET,
    S_CUST_GET,
    S_HAS_VERIFIED,
    S_CUST_INS,
    S_IDENT_INS,
    S_IDENT_TOUCH,
    S_ALIAS,
    S_MERGE_INS,
    S_MERGE_KEYS,
    S_IDENT_MOVE,
    S_SEEN,
    S_TRAIT_SET,
    S_TRAIT_DEL,
    S_ORDER,
    S_REVENUE,
    S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_IDENT_GET] = "SELECT customer, verified FROM identities WHERE kind = "
                    "?1 AND scope = ?2 AND value = ?3",
    [S_CUST_GET] = "SELECT coalesce(merged_into, id), created_ms FROM "
                   "customers WHERE id = ?1",
    [S_HAS_VERIFIED] = "SELECT 1 FROM identities WHERE customer = ?1 AND "
                       "verified = 1 LIMIT 1",
    [S_CUST_INS] = "INSERT INTO customers (id, created_ms, first_channel) "
                   "VALUES (?1, ?2, ?3)",
    [S_IDENT_INS] = "INSERT INTO identities (kind, scope, value, customer, "
                    "verified, first_ms, last_ms) VALUES (?1, ?2, ?3, ?4, "
                    "?5, ?6, ?6)",
    [S_IDENT_TOUCH] = "UPDATE identities SET last_ms = max(last_ms, ?4), "
                      "verified = max(verified, ?5) WHERE kind = ?1 AND "
                      "scope = ?2 AND value = ?3",
    [S_ALIAS] = "UPDATE customers SET merged_into = ?1 WHERE id = ?2 OR "
                "merged_into = ?2",
    [S_MERGE_INS] = "INSERT INTO merges (survivor, merged, reason_kind, "
                    "reason_scope, reason_value, at_ms) VALUES (?1, ?2, ?3, "
                    "?4, ?5, ?6)",
    [S_MERGE_KEYS] = "INSERT INTO merge_keys (merge_id, kind, scope, value) "
                     "SELECT ?1, kind, scope, value FROM identities WHERE "
                     "customer = ?2",
    [S_IDENT_MOVE] = "UPDATE identities SET customer = ?1 WHERE customer = ?2",
    [S_SEEN] = "INSERT INTO customer_channels (customer, channel, first_ms, "
               "last_ms, events) VALUES (?1, ?2, ?3, ?3, 1) ON CONFLICT "
               "(customer, channel) DO UPDATE SET first_ms = min(first_ms, "
               "excluded.first_ms), last_ms = max(last_ms, excluded.last_ms), "
               "events = events + 1",
    [S_TRAIT_SET] = "INSERT INTO traits (customer, name, value, set_ms) "
                    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (customer, name) DO "
                    "UPDATE SET value = excluded.value, set_ms = "
                    "excluded.set_ms",
    [S_TRAIT_DEL] = "DELETE FROM traits WHERE customer = ?1 AND name = ?2",
    [S_ORDER] = "UPDATE customers SET orders = orders + 1 WHERE id = ?1",
    /* Saturates instead of overflowing (SQLite would turn the sum into a
     * REAL, which the STRICT table refuses, failing the whole commit). */
    [S_REVENUE] = "INSERT INTO revenue (customer, currency, amount) VALUES "
                  "(?1, ?2, ?3) ON CONFLICT (customer, currency) DO UPDATE "
                  "SET amount = CASE WHEN amount > 9000000000000000000 - "
                  "excluded.amount THEN 9000000000000000000 ELSE amount + "
                  "excluded.amount END",
};

struct og__custdb_s {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
};

og__custdb_t *og__custdb_prepare(sqlite3 *db)
{
    og__custdb_t *c = og__xcalloc(1, sizeof(*c));
    size_t i;

    c->db = db;
    for (i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v2(db, sql[i], -1, &c->st[i], NULL) != SQLITE_OK) {
            og__custdb_free(c);
            return NULL;
        }
    return c;
}

void og__custdb_free(og__custdb_t *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < S_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    free(c);
}

/* ---- small statement helpers ------------------------------------------ */

static sqlite3_stmt *use(og__custdb_t *c, int which)
{
    sqlite3_stmt *st = c->st[which];

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static void bind_key(sqlite3_stmt *st, const og__idkey_t *k)
{
    sqlite3_bind_text(st, 1, k->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, k->value, -1, SQLITE_STATIC);
}

/* Steps a statement that returns no row; SQLITE_OK or the error. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void copy_id(char dst[40], const unsigned char *src)
{
    snprintf(dst, 40, "%s", src != NULL ? (const char *)src : "");
}

/* The canonical id and creation time of customer id; 1 when it exists,
 * 0 when not, or a negative SQLite error. */
static int canonical(og__custdb_t *c, const char *id, char out[40],
                     int64_t *created)
{
    sqlite3_stmt *st = use(c, S_CUST_GET);
    int rc;

    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_id(out, sqlite3_column_text(st, 0));
        *created = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -rc;
}

/* ---- resolution -------------------------------------------------------- */

struct seen_key {
    int found;
    char cust[40];
    int64_t created;
    int dup; /* the same key as an earlier one of the event */
};

struct resolve {
    og__custdb_t *c;
    og__store_item_t *it;
    const og__store_hooks_t *h;
    og__custdb_insert_fn insert;
    void *ctx;
    char cur[40]; /* the current customer, "" while none */
    int64_t cur_created;
    char gone[OG__MAX_IDKEYS + 1][40]; /* merged into cur by this event */
    size_t ngone;
};

static int is_gone(const struct resolve *r, const char *id)
{
    size_t i;

    for (i = 0; i < r->ngone; i++)
        if (strcmp(r->gone[i], id) == 0)
            return 1;
    return 0;
}

/* The customer of a key as of now: cur when it was merged into it. */
static const char *now_of(const struct resolve *r, const struct seen_key *s)
{
    return is_gone(r, s->cust) ? r->cur : s->cust;
}

/* Records the merge of merged into survivor (both canonical) and writes
 * the event that tells of it. */
static int merge_into(og__custdb_t *c, const char *survivor, const char *merged,
                      const og__idkey_t *reason, uint64_t now,
                      const og__store_hooks_t *h, og__custdb_insert_fn insert,
                      void *ctx)
{
    sqlite3_stmt *st;
    og__store_item_t ev;
    og__merge_t m;
    int rc;

    st = use(c, S_MERGE_INS);
    sqlite3_bind_text(st, 1, survivor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, reason->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, reason->scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, reason->value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
    if ((rc = run(st)) != SQLITE_OK)
        return rc;
    memset(&m, 0, sizeof(m));
    m.id = sqlite3_last_insert_rowid(c->db);
    m.survivor = survivor;
    m.merged = merged;
    m.reason = reason;
    m.at_ms = now;
    st = use(c, S_MERGE_KEYS);
    sqlite3_bind_int64(st, 1, m.id);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    if ((rc = run(st)) != SQLITE_OK)
        return rc;
    st = use(c, S_IDENT_MOVE);
    sqlite3_bind_text(st, 1, survivor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    if ((rc = run(st)) != SQLITE_OK)
        return rc;
    st = use(c, S_ALIAS);
    sqlite3_bind_text(st, 1, survivor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    if ((rc = run(st)) != SQLITE_OK)
        return rc;
    memset(&ev, 0, sizeof(ev));
    if (h != NULL && h->merged != NULL && h->merged(h->data, &m, &ev) == 0)
        return insert(ctx, &ev);
    return SQLITE_OK;
}

/* Merges customer other into the current one (other is older: it
 * survives and becomes the current customer). */
static int join(struct resolve *r, const char *other, int64_t other_created,
                const og__idkey_t *reason, int other_survives)
{
    char survivor[40], merged[40];
    int rc;

    if (other_survives) {
        snprintf(survivor, sizeof(survivor), "%s", other);
        snprintf(merged, sizeof(merged), "%s", r->cur);
    } else {
        snprintf(survivor, sizeof(survivor), "%s", r->cur);
        snprintf(merged, sizeof(merged), "%s", other);
    }
    rc = merge_into(r->c, survivor, merged, reason, r->it->received_ms, r->h,
                    r->insert, r->ctx);
    if (rc != SQLITE_OK)
        return rc;
    if (r->ngone < OG__MAX_IDKEYS + 1)
        snprintf(r->gone[r->ngone++], 40, "%s", merged);
    snprintf(r->cur, sizeof(r->cur), "%s", survivor);
    if (other_survives)
        r->cur_created = other_created;
    return SQLITE_OK;
}

/* True when a is older than b (creation time, then id). */
static int older(int64_t ta, const char *a, int64_t tb, const char *b)
{
    return ta != tb ? ta < tb : strcmp(a, b) < 0;
}

static int has_verified(og__custdb_t *c, const char *id)
{
    sqlite3_stmt *st = use(c, S_HAS_VERIFIED);
    int rc;

    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -rc;
}

/* Applies props.traits: every key a trait, nil deletes it. */
static int set_traits(og__custdb_t *c, const char *cust, const uint8_t *b,
                      size_t len, uint64_t now)
{
    msgpack_unpacked u;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t off = 0;
    uint32_t i;
    int rc = SQLITE_OK;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)b, len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&u);
        return SQLITE_OK; /* validated at acceptance: never here */
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (i = 0; i < u.data.via.map.size && rc == SQLITE_OK; i++) {
        const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        sqlite3_stmt *st;

        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size == 0 ||
            kv->key.via.str.size > 128)
            continue;
        if (kv->val.type == MSGPACK_OBJECT_NIL) {
            st = use(c, S_TRAIT_DEL);
        } else {
            st = use(c, S_TRAIT_SET);
            msgpack_sbuffer_clear(&sb);
            msgpack_pack_object(&pk, kv->val);
            sqlite3_bind_blob(st, 3, sb.data, (int)sb.size, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
        }
        sqlite3_bind_text(st, 1, cust, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, kv->key.via.str.ptr, (int)kv->key.via.str.size,
                          SQLITE_STATIC);
        rc = run(st);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* What the event adds to the profile of the current customer. */
static int update_profile(struct resolve *r)
{
    const og__person_t *p = r->it->person;
    og__custdb_t *c = r->c;
    sqlite3_stmt *st;
    int rc;

    st = use(c, S_SEEN);
    sqlite3_bind_text(st, 1, r->cur, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->instance, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->it->received_ms);
    if ((rc = run(st)) != SQLITE_OK)
        return rc;
    if (p->traits != NULL &&
        (rc = set_traits(c, r->cur, p->traits, p->traits_len,
                         r->it->received_ms)) != SQLITE_OK)
        return rc;
    if (p->is_order) {
        st = use(c, S_ORDER);
        sqlite3_bind_text(st, 1, r->cur, -1, SQLITE_STATIC);
        if ((rc = run(st)) != SQLITE_OK)
            return rc;
        if (p->has_total && p->total_amount > 0) {
            st = use(c, S_REVENUE);
            sqlite3_bind_text(st, 1, r->cur, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, p->currency, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, p->total_amount);
            if ((rc = run(st)) != SQLITE_OK)
                return rc;
        }
    }
    return SQLITE_OK;
}

int og__custdb_resolve(og__custdb_t *c, og__store_item_t *it,
                       const og__store_hooks_t *h, og__custdb_insert_fn insert,
                       void *ctx)
{
    const og__person_t *p = it->person;
    struct seen_key sk[OG__MAX_IDKEYS];
    struct resolve r;
    const og__idkey_t *first_verified = NULL;
    size_t i, j, n = p->nkeys < OG__MAX_IDKEYS ? p->nkeys : OG__MAX_IDKEYS;
    sqlite3_stmt *st;
    int rc;

    memset(&r, 0, sizeof(r));
    r.c = c;
    r.it = it;
    r.h = h;
    r.insert = insert;
    r.ctx = ctx;
    /* 1. Where each key points now. */
    for (i = 0; i < n; i++) {
        const og__idkey_t *k = &p->keys[i];

        memset(&sk[i], 0, sizeof(sk[i]));
        for (j = 0; j < i; j++)
            if (strcmp(k->kind, p->keys[j].kind) == 0 &&
                strcmp(k->scope, p->keys[j].scope) == 0 &&
                strcmp(k->value, p->keys[j].value) == 0)
                sk[i].dup = 1;
        if (sk[i].dup)
            continue;
        if (k->verified && first_verified == NULL)
            first_verified = k;
        st = use(c, S_IDENT_GET);
        bind_key(st, k);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            sk[i].found = 1;
            copy_id(sk[i].cust, sqlite3_column_text(st, 0));
        }
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return rc;
        if (sk[i].found &&
            (rc = canonical(c, sk[i].cust, sk[i].cust, &sk[i].created)) < 0)
            return -rc;
    }
    /* 2. The current customer: the oldest one a verified key (or the
     * event's own customer id) names; else the customer of the strongest
     * key that has one. */
    if (p->customer != NULL) {
        char id[40];
        int64_t t;

        snprintf(id, sizeof(id), "%s", p->customer);
        if ((rc = canonical(c, id, r.cur, &t)) < 0)
            return -rc;
        if (rc == 1) {
            r.cur_created = t;
        } else {
            r.cur[0] = '\0';
        }
    }
    for (i = 0; i < n; i++)
        if (sk[i].found && p->keys[i].verified &&
            (r.cur[0] == '\0' ||
             older(sk[i].created, sk[i].cust, r.cur_created, r.cur))) {
            snprintf(r.cur, sizeof(r.cur), "%s", sk[i].cust);
            r.cur_created = sk[i].created;
        }
    if (r.cur[0] == '\0') {
        int best = -1;

        for (i = 0; i < n; i++)
            if (sk[i].found &&
                (best < 0 || og__idkind_rank(p->keys[i].kind) <
                                 og__idkind_rank(p->keys[best].kind)))
                best = (int)i;
        if (best >= 0) {
            snprintf(r.cur, sizeof(r.cur), "%s", sk[best].cust);
            r.cur_created = sk[best].created;
        }
    }
    /* 3. Merges. A verified key on another customer joins the two (the
     * older survives); a device key (anon, cart) on a profile that has
     * no verified identity is claimed by an event that has one. An
     * unverified key never joins two customers. */
    for (i = 0; i < n && r.cur[0] != '\0'; i++) {
        const char *other;

        if (!sk[i].found || sk[i].dup)
            continue;
        other = now_of(&r, &sk[i]);
        if (strcmp(other, r.cur) == 0)
            continue;
        if (p->keys[i].verified) {
            rc = join(&r, other, sk[i].created, &p->keys[i],
                      older(sk[i].created, other, r.cur_created, r.cur));
        } else if (og__idkind_is_device(p->keys[i].kind) &&
                   first_verified != NULL) {
            int v = has_verified(c, other);

            if (v < 0)
                return -v;
            rc = v ? SQLITE_OK
                   : join(&r, other, sk[i].created, first_verified, 0);
        } else {
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    /* 4. A new customer when no key was known. */
    if (r.cur[0] == '\0') {
        if (n == 0)
            return SQLITE_OK; /* nothing to resolve by */
        og__uuid7_at(r.cur, it->received_ms);
        r.cur_created = (int64_t)it->received_ms;
        st = use(c, S_CUST_INS);
        sqlite3_bind_text(st, 1, r.cur, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r.cur_created);
        sqlite3_bind_text(st, 3, p->instance, -1, SQLITE_STATIC);
        if ((rc = run(st)) != SQLITE_OK)
            return rc;
    }
    /* 5. Keys: new ones attach to the current customer, its own are
     * touched (and upgraded to verified), another's stay where they are. */
    for (i = 0; i < n; i++) {
        const og__idkey_t *k = &p->keys[i];

        if (sk[i].dup)
            continue;
        if (!sk[i].found) {
            st = use(c, S_IDENT_INS);
            bind_key(st, k);
            sqlite3_bind_text(st, 4, r.cur, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 5, k->verified ? 1 : 0);
            sqlite3_bind_int64(st, 6, (sqlite3_int64)it->received_ms);
        } else if (strcmp(now_of(&r, &sk[i]), r.cur) == 0) {
            st = use(c, S_IDENT_TOUCH);
            bind_key(st, k);
            sqlite3_bind_int64(st, 4, (sqlite3_int64)it->received_ms);
            sqlite3_bind_int(st, 5, k->verified ? 1 : 0);
        } else {
            continue;
        }
        if ((rc = run(st)) != SQLITE_OK)
            return rc;
    }
    if ((rc = update_profile(&r)) != SQLITE_OK)
        return rc;
    snprintf(it->customer, sizeof(it->customer), "%s", r.cur);
    if (h != NULL && h->stamp != NULL)
        it->stamped =
            h->stamp(h->data, it->body, it->len, r.cur, &it->stamped_len);
    return SQLITE_OK;
}

/* ---- profiles ---------------------------------------------------------- */

static void json_str(og__sbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    og__sbuf_printf(b, "\"");
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\')
            og__sbuf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            og__sbuf_printf(b, "\\u00%c%c", hex[ch >> 4], hex[ch & 15]);
        else
            og__sbuf_printf(b, "%c", ch);
    }
    og__sbuf_printf(b, "\"");
}

static void json_cstr(og__sbuf_t *b, const unsigned char *s)
{
    if (s == NULL)
        og__sbuf_printf(b, "null");
    else
        json_str(b, (const char *)s, strlen((const char *)s));
}

/* A MessagePack value as JSON (bin and ext as null: traits never hold
 * them, acceptance refuses them in props). */
static void json_value(og__sbuf_t *b, const msgpack_object *o)
{
    uint32_t i;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL: og__sbuf_printf(b, "null"); break;
    case MSGPACK_OBJECT_BOOLEAN:
        og__sbuf_printf(b, o->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        og__sbuf_printf(b, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        og__sbuf_printf(b, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: og__sbuf_printf(b, "%.17g", o->via.f64); break;
    case MSGPACK_OBJECT_STR:
        json_str(b, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        og__sbuf_printf(b, "[");
        for (i = 0; i < o->via.array.size; i++) {
            og__sbuf_printf(b, i ? "," : "");
            json_value(b, &o->via.array.ptr[i]);
        }
        og__sbuf_printf(b, "]");
        break;
    case MSGPACK_OBJECT_MAP:
        og__sbuf_printf(b, "{");
        for (i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;

            og__sbuf_printf(b, i ? "," : "");
            if (k->type == MSGPACK_OBJECT_STR)
                json_str(b, k->via.str.ptr, k->via.str.size);
            else
                og__sbuf_printf(b, "\"?\"");
            og__sbuf_printf(b, ":");
            json_value(b, &o->via.map.ptr[i].val);
        }
        og__sbuf_printf(b, "}");
        break;
    default: og__sbuf_printf(b, "null"); break;
    }
}

static void json_blob(og__sbuf_t *b, const void *p, int n)
{
    msgpack_unpacked u;
    size_t off = 0;

    msgpack_unpacked_init(&u);
    if (p != NULL &&
        msgpack_unpack_next(&u, p, (size_t)n, &off) == MSGPACK_UNPACK_SUCCESS)
        json_value(b, &u.data);
    else
        og__sbuf_printf(b, "null");
    msgpack_unpacked_destroy(&u);
}

static og__trait_rule_t rule_of(const og__trait_rules_t *rules,
                                const char *name)
{
    size_t i;

    if (rules == NULL)
        return OG__TRAIT_NEWEST;
    for (i = 0; i < rules->n; i++)
        if (strcmp(rules->names[i], name) == 0)
            return rules->rules[i];
    return rules->dflt;
}

/* The profile's customers: the canonical one and its aliases. */
#define FAMILY                                                                 \
    "(SELECT ?1 UNION ALL SELECT id FROM customers WHERE "                     \
    "merged_into = ?1)"

static sqlite3_stmt *prep(og__custdb_t *c, const char *q, const char *id)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(c->db, q, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return st;
}

/* A copy of one trait value while the rows of its name are read. */
struct tv {
    void *p;
    int n; /* -1: none */
};

static void tv_set(struct tv *t, const void *p, int n)
{
    free(t->p);
    t->p = og__xmalloc(n > 0 ? (size_t)n : 1);
    memcpy(t->p, p, (size_t)n);
    t->n = n;
}

static void tv_clear(struct tv *t)
{
    free(t->p);
    t->p = NULL;
    t->n = -1;
}

/* An empty value: nil or "". */
static int tv_empty(const void *p, int n)
{
    return n == 0 || (n == 1 && (((const uint8_t *)p)[0] == 0xc0 ||
                                 ((const uint8_t *)p)[0] == 0xa0));
}

static int is_special_trait(const char *name)
{
    return strcmp(name, "preferred_channel") == 0 ||
           strcmp(name, "locale") == 0 || strcmp(name, "timezone") == 0;
}

/* Traits over the family, one value per name by its merge rule: rows come
 * oldest first; NEWEST takes the last, OLDEST the first, NON_EMPTY the
 * survivor's own unless empty, else the newest non-empty one. */
static int write_traits(og__custdb_t *c, const char *id,
                        const og__trait_rules_t *rules, og__sbuf_t *out,
                        og__sbuf_t *special)
{
    sqlite3_stmt *st =
        prep(c,
             "SELECT name, value, customer = ?1 FROM traits "
             "WHERE customer IN " FAMILY " ORDER BY name, set_ms",
             id);
    struct tv first = {NULL, -1}, last = {NULL, -1}, own = {NULL, -1},
              nonempty = {NULL, -1};
    char name[129] = "";
    int nout = 0, rc;

    if (st == NULL)
        return -1;
    og__sbuf_printf(out, "\"traits\":{");
    for (;;) {
        const char *nm;

        rc = sqlite3_step(st);
        nm = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (name[0] != '\0' && (nm == NULL || strcmp(nm, name) != 0)) {
            og__trait_rule_t rule = rule_of(rules, name);
            const struct tv *pick = rule == OG__TRAIT_OLDEST   ? &first
                                    : rule == OG__TRAIT_NEWEST ? &last
                                    : own.n >= 0 && !tv_empty(own.p, own.n)
                                        ? &own
                                    : nonempty.n >= 0 ? &nonempty
                                                      : &last;

            og__sbuf_printf(out, nout++ ? "," : "");
            json_str(out, name, strlen(name));
            og__sbuf_printf(out, ":");
            json_blob(out, pick->p, pick->n);
            if (is_special_trait(name)) {
                og__sbuf_printf(special, ",\"%s\":", name);
                json_blob(special, pick->p, pick->n);
            }
            tv_clear(&first);
            tv_clear(&last);
            tv_clear(&own);
            tv_clear(&nonempty);
            name[0] = '\0';
        }
        if (rc != SQLITE_ROW)
            break;
        {
            const void *v = sqlite3_column_blob(st, 1);
            int vn = sqlite3_column_bytes(st, 1);

            snprintf(name, sizeof(name), "%s", nm);
            if (first.n < 0)
                tv_set(&first, v, vn);
            tv_set(&last, v, vn);
            if (sqlite3_column_int(st, 2))
                tv_set(&own, v, vn);
            if (!tv_empty(v, vn))
                tv_set(&nonempty, v, vn);
        }
    }
    sqlite3_finalize(st);
    og__sbuf_printf(out, "}");
    return rc == SQLITE_DONE ? 0 : -1;
}

/* "kind":..,["scope":..,]"value":.. from three columns from col on. */
static void json_key(og__sbuf_t *out, sqlite3_stmt *st, int col)
{
    og__sbuf_printf(out, "\"kind\":");
    json_cstr(out, sqlite3_column_text(st, col));
    if (sqlite3_column_bytes(st, col + 1) > 0) {
        og__sbuf_printf(out, ",\"scope\":");
        json_cstr(out, sqlite3_column_text(st, col + 1));
    }
    og__sbuf_printf(out, ",\"value\":");
    json_cstr(out, sqlite3_column_text(st, col + 2));
}

/* Resolves id (or key) to the canonical customer; 1 found, 0 not, <0. */
static int find(og__custdb_t *c, const char *id, const og__idkey_t *key,
                char out[40], int64_t *created)
{
    if (id != NULL) {
        char tmp[40];

        snprintf(tmp, sizeof(tmp), "%s", id);
        return canonical(c, tmp, out, created);
    }
    {
        sqlite3_stmt *st = use(c, S_IDENT_GET);
        int rc;

        bind_key(st, key);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            copy_id(out, sqlite3_column_text(st, 0));
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
            return rc == SQLITE_DONE ? 0 : -rc;
        return canonical(c, out, out, created);
    }
}

og_err_t og__custdb_get(og__custdb_t *c, const char *id, const og__idkey_t *key,
                        const og__trait_rules_t *rules, og__sbuf_t *out)
{
    char cur[40];
    int64_t created = 0;
    og__sbuf_t special = {0};
    sqlite3_stmt *st;
    int rc, i;

    rc = find(c, id, key, cur, &created);
    if (rc < 0)
        return OG_ERR_IO;
    if (rc == 0)
        return OG_ERR_NOT_FOUND;
    st = prep(c, "SELECT first_channel, orders FROM customers WHERE id = ?1",
              cur);
    if (st == NULL || sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return OG_ERR_IO;
    }
    og__sbuf_printf(out,
                    "{\"id\":\"%s\",\"created\":%lld,\"first_channel\":", cur,
                    (long long)created);
    json_cstr(out, sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    /* orders over the family */
    st =
        prep(c, "SELECT total(orders) FROM customers WHERE id IN " FAMILY, cur);
    if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
        og__sbuf_printf(out, ",\"orders\":%lld",
                        (long long)sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);

    og__sbuf_printf(out, ",\"aliases\":[");
    st = prep(c,
              "SELECT id FROM customers WHERE merged_into = ?1 ORDER BY "
              "created_ms, id",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, i ? "," : "");
        json_cstr(out, sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);

    og__sbuf_printf(out, "],\"identities\":[");
    st = prep(c,
              "SELECT kind, scope, value, verified, first_ms, last_ms FROM "
              "identities WHERE customer = ?1 ORDER BY kind, scope, value",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, "%s{", i ? "," : "");
        json_key(out, st, 0);
        og__sbuf_printf(out,
                        ",\"verified\":%s,\"first_seen\":%lld,"
                        "\"last_seen\":%lld}",
                        sqlite3_column_int(st, 3) ? "true" : "false",
                        (long long)sqlite3_column_int64(st, 4),
                        (long long)sqlite3_column_int64(st, 5));
    }
    sqlite3_finalize(st);

    /* Addresses: the keys a channel can reach the customer at. */
    og__sbuf_printf(out, "],\"addresses\":[");
    st = prep(c,
              "SELECT CASE WHEN scope = '' THEN kind ELSE scope END, value, "
              "verified FROM identities WHERE customer = ?1 AND kind IN "
              "('email', 'phone', 'social', 'chat') ORDER BY kind, scope, "
              "last_ms DESC",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, "%s{\"channel\":", i ? "," : "");
        json_cstr(out, sqlite3_column_text(st, 0));
        og__sbuf_printf(out, ",\"value\":");
        json_cstr(out, sqlite3_column_text(st, 1));
        og__sbuf_printf(out, ",\"verified\":%s}",
                        sqlite3_column_int(st, 2) ? "true" : "false");
    }
    sqlite3_finalize(st);

    og__sbuf_printf(out, "],");
    if (write_traits(c, cur, rules, out, &special) != 0) {
        og__sbuf_free(&special);
        return OG_ERR_IO;
    }
    if (special.p != NULL)
        og__sbuf_printf(out, "%s", special.p);
    og__sbuf_free(&special);

    og__sbuf_printf(out, ",\"channels\":{");
    st = prep(c,
              "SELECT channel, min(first_ms), max(last_ms), sum(events) FROM "
              "customer_channels WHERE customer IN " FAMILY
              " GROUP BY channel ORDER BY channel",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, i ? "," : "");
        json_cstr(out, sqlite3_column_text(st, 0));
        og__sbuf_printf(out,
                        ":{\"first_seen\":%lld,\"last_seen\":%lld,"
                        "\"events\":%lld}",
                        (long long)sqlite3_column_int64(st, 1),
                        (long long)sqlite3_column_int64(st, 2),
                        (long long)sqlite3_column_int64(st, 3));
    }
    sqlite3_finalize(st);

    og__sbuf_printf(out, "},\"revenue\":{");
    st = prep(
        c,
        "SELECT currency, sum(amount) FROM revenue WHERE customer IN " FAMILY
        " GROUP BY currency ORDER BY currency",
        cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, i ? "," : "");
        json_cstr(out, sqlite3_column_text(st, 0));
        og__sbuf_printf(out, ":%lld", (long long)sqlite3_column_int64(st, 1));
    }
    sqlite3_finalize(st);

    og__sbuf_printf(out, "},\"merges\":[");
    st = prep(c,
              "SELECT id, merged, reason_kind, reason_scope, reason_value, "
              "at_ms, split_ms FROM merges WHERE survivor = ?1 OR merged = "
              "?1 ORDER BY id",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, "%s{\"id\":%lld,\"merged\":", i ? "," : "",
                        (long long)sqlite3_column_int64(st, 0));
        json_cstr(out, sqlite3_column_text(st, 1));
        og__sbuf_printf(out, ",\"reason\":{");
        json_key(out, st, 2);
        og__sbuf_printf(out, "},\"at\":%lld,\"split_at\":",
                        (long long)sqlite3_column_int64(st, 5));
        if (sqlite3_column_type(st, 6) == SQLITE_NULL)
            og__sbuf_printf(out, "null}");
        else
            og__sbuf_printf(out, "%lld}",
                            (long long)sqlite3_column_int64(st, 6));
    }
    sqlite3_finalize(st);
    og__sbuf_printf(out, "]}");
    return OG_OK;
}

/* ---- split ------------------------------------------------------------- */

static int exec_bind2(og__custdb_t *c, const char *q, const char *a, int64_t b,
                      const char *s3, int64_t *changes)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sqlite3_prepare_v2(c->db, q, -1, &st, NULL)) != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, b);
    if (s3 != NULL)
        sqlite3_bind_text(st, 3, s3, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (changes != NULL)
        *changes = sqlite3_changes(c->db);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

og_err_t og__custdb_split(og__custdb_t *c, const char *id, uint64_t now_ms,
                          const og__store_hooks_t *h,
                          og__custdb_insert_fn insert, void *ctx,
                          og__sbuf_t *out, char *err, size_t errlen)
{
    char cid[40], canon[40];
    int64_t created, merge_id = 0, restored = 0, members = 0;
    og__idkey_t reason;
    sqlite3_stmt *st;
    int rc;

    snprintf(cid, sizeof(cid), "%s", id);
    rc = canonical(c, cid, canon, &created);
    if (rc < 0)
        goto io;
    if (rc == 0) {
        snprintf(err, errlen, "no customer %s", cid);
        return OG_ERR_NOT_FOUND;
    }
    if (strcmp(canon, cid) == 0) {
        snprintf(err, errlen, "customer %s is not merged into another", cid);
        return OG_ERR_CONFLICT;
    }
    st = prep(c,
              "SELECT id, reason_kind, reason_scope, reason_value "
              "FROM merges WHERE merged = ?1 AND split_ms IS NULL ORDER BY id "
              "DESC LIMIT 1",
              cid);
    if (st == NULL)
        goto io;
    memset(&reason, 0, sizeof(reason));
    if (sqlite3_step(st) == SQLITE_ROW) {
        merge_id = sqlite3_column_int64(st, 0);
        snprintf(reason.kind, sizeof(reason.kind), "%s",
                 (const char *)sqlite3_column_text(st, 1));
        snprintf(reason.scope, sizeof(reason.scope), "%s",
                 (const char *)sqlite3_column_text(st, 2));
        snprintf(reason.value, sizeof(reason.value), "%s",
                 (const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
    if (merge_id == 0) {
        snprintf(err, errlen, "customer %s has no merge to undo", cid);
        return OG_ERR_CONFLICT;
    }
    /* The customer and everything merged into it (directly or through
     * customers merged into it), and not split since, point at it again. */
    if ((rc = exec_bind2(c,
                         "WITH RECURSIVE sub(id) AS (SELECT merged FROM "
                         "merges WHERE survivor = ?1 AND split_ms IS NULL "
                         "AND id < ?2 UNION SELECT m.merged FROM merges m "
                         "JOIN sub ON m.survivor = sub.id WHERE m.split_ms "
                         "IS NULL) UPDATE customers SET merged_into = ?1 "
                         "WHERE id IN sub",
                         cid, merge_id, NULL, &members)) != SQLITE_OK ||
        (rc = exec_bind2(c,
                         "UPDATE customers SET merged_into = NULL WHERE id = "
                         "?1",
                         cid, 0, NULL, NULL)) != SQLITE_OK ||
        (rc = exec_bind2(c,
                         "UPDATE identities SET customer = ?1 WHERE customer "
                         "= ?3 AND (kind, scope, value) IN (SELECT kind, "
                         "scope, value FROM merge_keys WHERE merge_id = ?2)",
                         cid, merge_id, canon, &restored)) != SQLITE_OK)
        goto io;
    {
        sqlite3_stmt *u = NULL;

        if (sqlite3_prepare_v2(c->db,
                               "UPDATE merges SET split_ms = ?1 WHERE id = ?2",
                               -1, &u, NULL) != SQLITE_OK)
            goto io;
        sqlite3_bind_int64(u, 1, (sqlite3_int64)now_ms);
        sqlite3_bind_int64(u, 2, merge_id);
        rc = sqlite3_step(u);
        sqlite3_finalize(u);
        if (rc != SQLITE_DONE)
            goto io;
    }
    if (h != NULL && h->merged != NULL) {
        og__store_item_t ev;
        og__merge_t m;

        memset(&m, 0, sizeof(m));
        memset(&ev, 0, sizeof(ev));
        m.id = merge_id;
        m.survivor = canon;
        m.merged = cid;
        m.reason = &reason;
        m.at_ms = now_ms;
        m.split = 1;
        if (h->merged(h->data, &m, &ev) == 0 &&
            (rc = insert(ctx, &ev)) != SQLITE_OK)
            goto io;
    }
    og__sbuf_printf(out,
                    "{\"customer\":\"%s\",\"split_from\":\"%s\",\"merge\":%lld,"
                    "\"identities_restored\":%lld,\"aliases_restored\":%lld}",
                    cid, canon, (long long)merge_id, (long long)restored,
                    (long long)members);
    return OG_OK;
io:
    snprintf(err, errlen, "store: %s", sqlite3_errmsg(c->db));
    return OG_ERR_IO;
}
