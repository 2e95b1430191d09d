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

#include "backends/sqlite/customers_sqlite.h"
#include "backends/sqlite/sqlite_util.h"
#include "base/json.h" /* og__json_escape_n */
#include "event/event.h"
#include "base/util.h"

enum {
    S_IDENT_GET,
    S_CUST_GET,
    S_HAS_VERIFIED,
    S_CUST_INS,
    S_IDENT_INS,
    S_IDENT_VERIFY,
    S_ALIAS,
    S_MERGE_INS,
    S_MERGE_KEYS,
    S_IDENT_MOVE,
    S_SEEN,
    S_ORDER,
    S_REVENUE,
    S_CONV_GET,
    S_THREAD_GET,
    S_CONV_LATEST,
    S_CONV_INS,
    S_CONV_TOUCH,
    S_CONV_RESOLVE,
    S_THREAD_INS,
    S_CONV_MOVE_REC,
    S_CONV_MOVE,
    S_ADDRESSES,
    S_ORDERS,
    S_BOUNCE,
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
                    "verified, first_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_IDENT_VERIFY] = "UPDATE identities SET verified = 1 WHERE kind = ?1 "
                       "AND scope = ?2 AND value = ?3",
    [S_ALIAS] = "UPDATE customers SET merged_into = ?1 WHERE id = ?2 OR "
                "merged_into = ?2",
    [S_MERGE_INS] = "INSERT INTO merges (survivor, merged, reason_kind, "
                    "reason_scope, reason_value, at_ms) VALUES (?1, ?2, ?3, "
                    "?4, ?5, ?6)",
    [S_MERGE_KEYS] = "INSERT INTO merge_keys (merge_id, kind, scope, value) "
                     "SELECT ?1, kind, scope, value FROM identities WHERE "
                     "customer = ?2",
    [S_IDENT_MOVE] = "UPDATE identities SET customer = ?1 WHERE customer = ?2",
    /* Written when the channel is new to the customer, or last seen a
     * step (SEEN_STEP_MS) ago or more: a returning customer costs one
     * page write per step, not one per event. */
    [S_SEEN] = "INSERT INTO customer_channels (customer, channel, first_ms, "
               "last_ms) VALUES (?1, ?2, ?3, ?3) ON CONFLICT (customer, "
               "channel) DO UPDATE SET first_ms = min(first_ms, "
               "excluded.first_ms), last_ms = max(last_ms, excluded.last_ms) "
               "WHERE excluded.last_ms >= last_ms + ?4 OR excluded.first_ms "
               "< first_ms",
    [S_ORDER] = "UPDATE customers SET orders = orders + 1 WHERE id = ?1",
    /* Saturates instead of overflowing (SQLite would turn the sum into a
     * REAL, which the STRICT table refuses, failing the whole commit). */
    [S_REVENUE] = "INSERT INTO revenue (customer, currency, amount) VALUES "
                  "(?1, ?2, ?3) ON CONFLICT (customer, currency) DO UPDATE "
                  "SET amount = CASE WHEN amount > 9000000000000000000 - "
                  "excluded.amount THEN 9000000000000000000 ELSE amount + "
                  "excluded.amount END",
    /* A statement never replaces a newer one (events arrive out of
     * order across channels). */
    [S_CONV_GET] = "SELECT customer, state FROM conversations WHERE id = ?1",
    [S_THREAD_GET] = "SELECT conversation FROM thread_keys WHERE channel = "
                     "?1 AND key = ?2",
    [S_CONV_LATEST] = "SELECT id FROM conversations WHERE customer IN " FAMILY
                      " ORDER BY state, updated_ms DESC LIMIT 1",
    [S_CONV_INS] = "INSERT INTO conversations (id, customer, state, "
                   "opened_ms, updated_ms, last_channel) VALUES (?1, ?2, 0, "
                   "?3, ?3, ?4)",
    [S_CONV_TOUCH] = "UPDATE conversations SET updated_ms = max(updated_ms, "
                     "?2), last_channel = ?3, messages = messages + 1, state "
                     "= CASE WHEN ?4 THEN 0 ELSE state END, resolved_ms = "
                     "CASE WHEN ?4 THEN NULL ELSE resolved_ms END WHERE id = "
                     "?1",
    [S_CONV_RESOLVE] = "UPDATE conversations SET state = 1, resolved_ms = "
                       "?2, updated_ms = max(updated_ms, ?2) WHERE id = ?1 "
                       "AND state = 0",
    [S_THREAD_INS] = "INSERT OR IGNORE INTO thread_keys (channel, key, "
                     "conversation) VALUES (?1, ?2, ?3)",
    [S_CONV_MOVE_REC] = "INSERT INTO merge_conversations (merge_id, "
                        "conversation) SELECT ?1, id FROM conversations WHERE "
                        "customer = ?2",
    [S_CONV_MOVE] = "UPDATE conversations SET customer = ?1 WHERE customer = "
                    "?2",
    /* Per kind, the newest key first. */
    /* an address that bounced for good bounce_limit times is no way to
     * reach the customer any more */
    [S_ADDRESSES] = "SELECT kind, value FROM identities i WHERE customer = "
                    "?1 AND NOT EXISTS (SELECT 1 FROM bounces b WHERE "
                    "b.address = i.value AND b.undeliverable = 1) ORDER BY "
                    "1, first_ms DESC",
    [S_BOUNCE] = "INSERT INTO bounces (channel, address, count, "
                 "undeliverable, last_ms) VALUES (?1, ?2, 1, ?3 <= 1, ?4) ON "
                 "CONFLICT (channel, address) DO UPDATE SET count = count + "
                 "1, undeliverable = undeliverable OR count + 1 >= ?3, "
                 "last_ms = ?4",
    [S_ORDERS] = "SELECT total(orders), (SELECT first_channel FROM customers "
                 "WHERE id = ?1) FROM customers WHERE id IN " FAMILY,
};

struct og__custdb_s {
    og__identity_repo_t repo; /* first: customers and keys (customers.h) */
    sqlite3 *db;
    og__consent_repo_t *consent;
    og__trait_repo_t *traits;
    sqlite3_stmt *st[S_COUNT];
};

static const struct og__identity_repo_ops identity_ops; /* below */

og__custdb_t *og__custdb_prepare(sqlite3 *db, og__consent_repo_t *consent,
                                 og__trait_repo_t *traits)
{
    og__custdb_t *c = og__xcalloc(1, sizeof(*c));

    c->repo.ops = &identity_ops;
    c->db = db;
    c->consent = consent;
    c->traits = traits;
    if (og__sql_prepare_all(db, sql, S_COUNT, c->st) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

og__consent_repo_t *og__custdb_consent_repo(og__custdb_t *c)
{
    return c->consent;
}

void og__custdb_free(og__custdb_t *c)
{
    if (c == NULL)
        return;
    og__sql_finalize_all(c->st, S_COUNT);
    free(c);
}

/* ---- small statement helpers ------------------------------------------ */

/* After a repository failed: the connection's error, which the commit
 * reports (SQLITE_ERROR when it has none). */
static int errcode(og__custdb_t *c)
{
    int rc = sqlite3_errcode(c->db);

    return rc != SQLITE_OK ? rc : SQLITE_ERROR;
}

static sqlite3_stmt *use(og__custdb_t *c, int which)
{
    return og__sql_use(c->st[which]);
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
    return og__sql_done(st);
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

/* A channel's last seen time moves in steps of a minute, and an identity
 * row is only written when it is new or becomes verified: recording every
 * event would write a random page per key and event, which is what
 * limits resolution on a large store (docs/PERFORMANCE.md). */
#define SEEN_STEP_MS (60 * 1000)

/* og__identity_repo_ops.merge: records the merge of merged into survivor
 * (both canonical), moves keys and conversations, makes merged an alias. */
static og_err_t repo_merge(og__identity_repo_t *r, const char *survivor,
                           const char *merged, const og__idkey_t *reason,
                           uint64_t now, int64_t *merge_id)
{
    og__custdb_t *c = (og__custdb_t *)r;
    sqlite3_stmt *st;
    int rc;

    st = use(c, S_MERGE_INS);
    sqlite3_bind_text(st, 1, survivor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, reason->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, reason->scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, reason->value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
    if ((rc = run(st)) != SQLITE_OK)
        return OG_ERR_IO;
    *merge_id = sqlite3_last_insert_rowid(c->db);
    st = use(c, S_MERGE_KEYS);
    sqlite3_bind_int64(st, 1, *merge_id);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    if ((rc = run(st)) != SQLITE_OK)
        return OG_ERR_IO;
    st = use(c, S_IDENT_MOVE);
    sqlite3_bind_text(st, 1, survivor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    if ((rc = run(st)) != SQLITE_OK)
        return OG_ERR_IO;
    /* its conversations continue with the survivor */
    st = use(c, S_CONV_MOVE_REC);
    sqlite3_bind_int64(st, 1, *merge_id);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    if ((rc = run(st)) != SQLITE_OK)
        return OG_ERR_IO;
    st = use(c, S_CONV_MOVE);
    sqlite3_bind_text(st, 1, survivor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    if ((rc = run(st)) != SQLITE_OK)
        return OG_ERR_IO;
    st = use(c, S_ALIAS);
    sqlite3_bind_text(st, 1, survivor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
    return run(st) == SQLITE_OK ? OG_OK : OG_ERR_IO;
}

static og_err_t repo_key_find(og__identity_repo_t *r, const og__idkey_t *key,
                              char customer[40], int *verified, int *found)
{
    sqlite3_stmt *st = use((og__custdb_t *)r, S_IDENT_GET);
    int rc;

    bind_key(st, key);
    rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        copy_id(customer, sqlite3_column_text(st, 0));
        *verified = sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? OG_OK : OG_ERR_IO;
}

static og_err_t repo_canonical(og__identity_repo_t *r, const char *id,
                               char canon[40], int64_t *created, int *found)
{
    int rc = canonical((og__custdb_t *)r, id, canon, created);

    *found = rc == 1;
    return rc < 0 ? OG_ERR_IO : OG_OK;
}

static og_err_t repo_has_verified(og__identity_repo_t *r, const char *id,
                                  int *yes)
{
    sqlite3_stmt *st = use((og__custdb_t *)r, S_HAS_VERIFIED);
    int rc;

    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    *yes = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? OG_OK : OG_ERR_IO;
}

static og_err_t repo_customer_add(og__identity_repo_t *r, const char *id,
                                  int64_t created_ms, const char *first)
{
    sqlite3_stmt *st = use((og__custdb_t *)r, S_CUST_INS);

    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, created_ms);
    sqlite3_bind_text(st, 3, first, -1, SQLITE_STATIC);
    return run(st) == SQLITE_OK ? OG_OK : OG_ERR_IO;
}

static og_err_t repo_key_add(og__identity_repo_t *r, const og__idkey_t *key,
                             const char *customer, int verified, uint64_t at)
{
    sqlite3_stmt *st = use((og__custdb_t *)r, S_IDENT_INS);

    bind_key(st, key);
    sqlite3_bind_text(st, 4, customer, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, verified ? 1 : 0);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)at);
    return run(st) == SQLITE_OK ? OG_OK : OG_ERR_IO;
}

static og_err_t repo_key_verify(og__identity_repo_t *r, const og__idkey_t *key)
{
    sqlite3_stmt *st = use((og__custdb_t *)r, S_IDENT_VERIFY);

    bind_key(st, key);
    return run(st) == SQLITE_OK ? OG_OK : OG_ERR_IO;
}

static const struct og__identity_repo_ops identity_ops = {
    .key_find = repo_key_find,
    .canonical = repo_canonical,
    .has_verified = repo_has_verified,
    .customer_add = repo_customer_add,
    .key_add = repo_key_add,
    .key_verify = repo_key_verify,
    .merge = repo_merge,
};

og__identity_repo_t *og__custdb_identity_repo(og__custdb_t *c)
{
    return &c->repo;
}

/* Runs a one-row SELECT of one text column bound to a and b; copies the
 * column into out. 1 found, 0 not, or a negative SQLite error. */
static int one_id(og__custdb_t *c, int which, const char *a, const char *b,
                  char out[72])
{
    sqlite3_stmt *st = use(c, which);
    int rc;

    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b != NULL)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(out, 72, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -rc;
}

/* The conversation of a message event: the one it names, else the one a
 * native thread key maps to, else the customer's open one, else its
 * latest (reopened by an inbound message), else a new one. Records the
 * message's own native key and the thread keys it names. */
static int conversation_of(og__custdb_t *c, og__store_item_t *it,
                           const char *cust)
{
    const og__person_t *p = it->person;
    uint64_t now = it->received_ms;
    char conv[72] = "", tmp[72];
    sqlite3_stmt *st;
    size_t i;
    int rc, exists = 0;

    if (p->conversation != NULL) {
        snprintf(conv, sizeof(conv), "%s", p->conversation);
        if ((exists = one_id(c, S_CONV_GET, conv, NULL, tmp)) < 0)
            return -exists;
        /* A public client writes only into its own customer's
         * conversations; another's id is not a way in (docs/security.md). */
        if (p->untrusted && (!exists || strcmp(tmp, cust) != 0)) {
            conv[0] = '\0';
            exists = 0;
        }
    }
    for (i = 0; conv[0] == '\0' && !p->untrusted && i < p->nthread; i++)
        if ((exists =
                 one_id(c, S_THREAD_GET, p->instance, p->thread[i], conv)) < 0)
            return -exists;
    if (conv[0] == '\0' && cust[0] != '\0' &&
        (exists = one_id(c, S_CONV_LATEST, cust, NULL, conv)) < 0)
        return -exists;
    if (conv[0] == '\0')
        og__uuid7_at(conv, now);
    if (!exists) {
        st = use(c, S_CONV_INS);
        sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, cust, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
        sqlite3_bind_text(st, 4, p->instance, -1, SQLITE_STATIC);
        if ((rc = run(st)) != SQLITE_OK)
            return rc;
    }
    st = use(c, S_CONV_TOUCH);
    sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
    sqlite3_bind_text(st, 3, p->instance, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, p->inbound ? 1 : 0);
    if ((rc = run(st)) != SQLITE_OK)
        return rc;
    for (i = 0; !p->untrusted && i <= p->nthread; i++) {
        const char *k = i < p->nthread ? p->thread[i] : p->message_key;

        if (k == NULL)
            continue;
        st = use(c, S_THREAD_INS);
        sqlite3_bind_text(st, 1, p->instance, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, conv, -1, SQLITE_STATIC);
        if ((rc = run(st)) != SQLITE_OK)
            return rc;
    }
    snprintf(it->conversation, sizeof(it->conversation), "%s", conv);
    return SQLITE_OK;
}

static int resolve_conversation(og__custdb_t *c, const char *id, uint64_t now)
{
    sqlite3_stmt *st = use(c, S_CONV_RESOLVE);

    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
    return run(st);
}

/* What the event adds to the profile of the current customer. */
static int update_profile(og__custdb_t *c, og__store_item_t *it,
                          const char *cur)
{
    const og__person_t *p = it->person;
    sqlite3_stmt *st;
    int rc;

    st = use(c, S_SEEN);
    sqlite3_bind_text(st, 1, cur, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->instance, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)it->received_ms);
    sqlite3_bind_int64(st, 4, SEEN_STEP_MS);
    if ((rc = run(st)) != SQLITE_OK)
        return rc;
    if (p->traits != NULL &&
        og__traits_apply(c->traits, cur, p->traits, p->traits_len,
                         it->received_ms) != OG_OK)
        return errcode(c);
    /* a statement counts from when the customer made it, where the
     * channel tells (out of order arrivals keep the newest choice) */
    if (p->consent != NULL &&
        og__consent_record(
            c->consent, cur, p->consent, p->consent_len, p->instance,
            p->occurred ? p->occurred : it->received_ms) != OG_OK)
        return sqlite3_errcode(c->db) != SQLITE_OK ? sqlite3_errcode(c->db)
                                                   : SQLITE_ERROR;
    if (p->is_message && (rc = conversation_of(c, it, cur)) != SQLITE_OK)
        return rc;
    if (p->resolves && p->conversation != NULL &&
        (rc = resolve_conversation(c, p->conversation, it->received_ms)) !=
            SQLITE_OK)
        return rc;
    if (p->is_order) {
        st = use(c, S_ORDER);
        sqlite3_bind_text(st, 1, cur, -1, SQLITE_STATIC);
        if ((rc = run(st)) != SQLITE_OK)
            return rc;
        if (p->has_total && p->total_amount > 0) {
            st = use(c, S_REVENUE);
            sqlite3_bind_text(st, 1, cur, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, p->currency, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, p->total_amount);
            if ((rc = run(st)) != SQLITE_OK)
                return rc;
        }
    }
    return SQLITE_OK;
}

/* The customer.merged event of a merge resolution made, written with the
 * commit. */
struct merged_ctx {
    const og__store_hooks_t *h;
    og__custdb_insert_fn insert;
    void *ctx;
};

static og_err_t tell_merged(void *data, const og__merge_t *m)
{
    struct merged_ctx *x = data;
    og__store_item_t ev;

    memset(&ev, 0, sizeof(ev));
    if (x->h == NULL || x->h->merged == NULL ||
        x->h->merged(x->h->data, m, &ev) != 0)
        return OG_OK;
    return x->insert(x->ctx, &ev) == SQLITE_OK ? OG_OK : OG_ERR_IO;
}

int og__custdb_resolve(og__custdb_t *c, og__store_item_t *it,
                       const og__store_hooks_t *h, og__custdb_insert_fn insert,
                       void *ctx)
{
    const og__person_t *p = it->person;
    struct merged_ctx x = {h, insert, ctx};
    char cur[40];
    int rc;

    if (og__customer_resolve(&c->repo, p, it->received_ms, tell_merged, &x,
                             cur) != OG_OK)
        return errcode(c);
    if (cur[0] == '\0') /* nothing to resolve by: only a resolution */
        return p->resolves && p->conversation != NULL
                   ? resolve_conversation(c, p->conversation, it->received_ms)
                   : SQLITE_OK;
    if ((rc = update_profile(c, it, cur)) != SQLITE_OK)
        return rc;
    snprintf(it->customer, sizeof(it->customer), "%s", cur);
    if (h != NULL && h->stamp != NULL)
        it->stamped = h->stamp(h->data, it->body, it->len, cur,
                               it->conversation[0] ? it->conversation : NULL,
                               &it->stamped_len);
    return SQLITE_OK;
}

/* ---- profiles ---------------------------------------------------------- */

/* A JSON string (the HTTP server's escaping) appended to b. */
static void json_str(og__sbuf_t *b, const char *s, size_t n)
{
    og__sbuf_json(b, s, n);
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

static sqlite3_stmt *prep(og__custdb_t *c, const char *q, const char *id)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(c->db, q, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return st;
}

static int is_special_trait(const char *name)
{
    return strcmp(name, "preferred_channel") == 0 ||
           strcmp(name, "locale") == 0 || strcmp(name, "timezone") == 0;
}

struct json_traits {
    og__sbuf_t *out, *special;
    int n;
};

static void json_trait(void *ctx, const char *name, const void *p, size_t n)
{
    struct json_traits *j = ctx;

    og__sbuf_printf(j->out, j->n++ ? "," : "");
    json_str(j->out, name, strlen(name));
    og__sbuf_printf(j->out, ":");
    json_blob(j->out, p, (int)n);
    if (is_special_trait(name)) {
        og__sbuf_printf(j->special, ",\"%s\":", name);
        json_blob(j->special, p, (int)n);
    }
}

static int write_traits(og__custdb_t *c, const char *id,
                        const og__trait_rules_t *rules, og__sbuf_t *out,
                        og__sbuf_t *special)
{
    struct json_traits j = {out, special, 0};
    int rc;

    og__sbuf_printf(out, "\"traits\":{");
    rc =
        og__traits_each(c->traits, id, rules, json_trait, &j) == OG_OK ? 0 : -1;
    og__sbuf_printf(out, "}");
    return rc;
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
              "SELECT kind, scope, value, verified, first_ms FROM "
              "identities WHERE customer = ?1 ORDER BY kind, scope, value",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, "%s{", i ? "," : "");
        json_key(out, st, 0);
        og__sbuf_printf(out, ",\"verified\":%s,\"first_seen\":%lld}",
                        sqlite3_column_int(st, 3) ? "true" : "false",
                        (long long)sqlite3_column_int64(st, 4));
    }
    sqlite3_finalize(st);

    /* Addresses: the keys a channel can reach the customer at. */
    og__sbuf_printf(out, "],\"addresses\":[");
    st = prep(c,
              "SELECT CASE WHEN scope = '' THEN kind ELSE scope END, value, "
              "verified, EXISTS (SELECT 1 FROM bounces b WHERE b.address = "
              "value AND b.undeliverable = 1) FROM identities WHERE "
              "customer = ?1 AND kind IN ('email', 'phone', 'social', "
              "'chat') ORDER BY kind, scope, first_ms DESC",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, "%s{\"channel\":", i ? "," : "");
        json_cstr(out, sqlite3_column_text(st, 0));
        og__sbuf_printf(out, ",\"value\":");
        json_cstr(out, sqlite3_column_text(st, 1));
        og__sbuf_printf(out, ",\"verified\":%s%s}",
                        sqlite3_column_int(st, 2) ? "true" : "false",
                        sqlite3_column_int(st, 3) ? ",\"undeliverable\":true"
                                                  : "");
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
              "SELECT channel, min(first_ms), max(last_ms) FROM "
              "customer_channels WHERE customer IN " FAMILY
              " GROUP BY channel ORDER BY channel",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, i ? "," : "");
        json_cstr(out, sqlite3_column_text(st, 0));
        og__sbuf_printf(out, ":{\"first_seen\":%lld,\"last_seen\":%lld}",
                        (long long)sqlite3_column_int64(st, 1),
                        (long long)sqlite3_column_int64(st, 2));
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

    /* Consent statements over the customer and its aliases (the newest
     * per purpose and channel decides, docs/customers.md). */
    og__sbuf_printf(out, "},\"consents\":[");
    st = prep(c,
              "SELECT purpose, channel, granted, source, max(at_ms) FROM "
              "consents WHERE customer IN " FAMILY
              " GROUP BY purpose, channel ORDER BY purpose, channel",
              cur);
    for (i = 0; st != NULL && sqlite3_step(st) == SQLITE_ROW; i++) {
        og__sbuf_printf(out, "%s{\"purpose\":", i ? "," : "");
        json_cstr(out, sqlite3_column_text(st, 0));
        og__sbuf_printf(out, ",\"channel\":");
        json_cstr(out, sqlite3_column_text(st, 1));
        og__sbuf_printf(out, ",\"granted\":%s,\"source\":",
                        sqlite3_column_int(st, 2) ? "true" : "false");
        json_cstr(out, sqlite3_column_text(st, 3));
        og__sbuf_printf(out, ",\"at\":%lld}",
                        (long long)sqlite3_column_int64(st, 4));
    }
    sqlite3_finalize(st);

    og__sbuf_printf(out, "],\"merges\":[");
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

/* id (copied to cid) and its canonical customer, or OG_ERR_NOT_FOUND /
 * OG_ERR_IO with the reason in err. */
static og_err_t existing(og__custdb_t *c, const char *id, char cid[40],
                         char canon[40], int64_t *created, char *err,
                         size_t errlen)
{
    int rc;

    snprintf(cid, 40, "%s", id);
    rc = canonical(c, cid, canon, created);
    if (rc < 0) {
        snprintf(err, errlen, "store: %s", sqlite3_errmsg(c->db));
        return OG_ERR_IO;
    }
    if (rc == 0) {
        snprintf(err, errlen, "no customer %s", cid);
        return OG_ERR_NOT_FOUND;
    }
    return OG_OK;
}

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

    if ((rc = existing(c, id, cid, canon, &created, err, errlen)) != OG_OK)
        return rc;
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
                         cid, merge_id, canon, &restored)) != SQLITE_OK ||
        (rc = exec_bind2(c,
                         "UPDATE conversations SET customer = ?1 WHERE "
                         "customer = ?3 AND id IN (SELECT conversation FROM "
                         "merge_conversations WHERE merge_id = ?2)",
                         cid, merge_id, canon, NULL)) != SQLITE_OK)
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

/* ---- erasure ------------------------------------------------------------ */

og_err_t og__custdb_erase(og__custdb_t *c, const char *id, uint64_t now_ms,
                          og__sbuf_t *out, char ***erased, char *err,
                          size_t errlen)
{
    /* Statements over the family of ?1, children before parents; the
     * customers rows go last, as the family is read through them. */
    static const struct {
        const char *what; /* counted under this name, or NULL */
        const char *sql;
    } steps[] = {
        {"deliveries", "DELETE FROM outbox WHERE event_id IN (SELECT id FROM "
                       "events WHERE customer IN " FAMILY ")"},
        {"events", "DELETE FROM events WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM bounces WHERE address IN (SELECT value FROM "
               "identities WHERE customer IN " FAMILY ")"},
        {"identities", "DELETE FROM identities WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM traits WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM customer_channels WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM revenue WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM consents WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM timeline WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM journey_runs WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM thread_keys WHERE conversation IN (SELECT id FROM "
               "conversations WHERE customer IN " FAMILY ")"},
        {"conversations",
         "DELETE FROM conversations WHERE customer IN " FAMILY},
        {NULL, "DELETE FROM merge_keys WHERE merge_id IN (SELECT id FROM "
               "merges WHERE survivor IN " FAMILY " OR merged IN " FAMILY ")"},
        {NULL,
         "DELETE FROM merge_conversations WHERE merge_id IN (SELECT id "
         "FROM merges WHERE survivor IN " FAMILY " OR merged IN " FAMILY ")"},
        {NULL, "DELETE FROM merges WHERE survivor IN " FAMILY
               " OR merged IN " FAMILY},
        {"customers", "DELETE FROM customers WHERE id IN " FAMILY},
    };
    char cid[40], canon[40];
    int64_t created, n[5] = {0};
    char **ids = NULL;
    size_t nids = 0, i;
    sqlite3_stmt *st;
    int rc;

    if ((rc = existing(c, id, cid, canon, &created, err, errlen)) != OG_OK)
        return rc;
    st = prep(c, "SELECT id FROM customers WHERE id IN " FAMILY, canon);
    while (st != NULL && sqlite3_step(st) == SQLITE_ROW) {
        ids = og__xrealloc(ids, (nids + 2) * sizeof(*ids));
        ids[nids++] = og__xstrdup((const char *)sqlite3_column_text(st, 0));
        ids[nids] = NULL;
    }
    sqlite3_finalize(st);
    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        st = prep(c, steps[i].sql, canon);
        if (st == NULL)
            goto io;
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            goto io;
        if (steps[i].what != NULL) {
            static const char *const names[] = {"deliveries", "events",
                                                "identities", "conversations",
                                                "customers"};
            size_t k;

            for (k = 0; k < 5; k++)
                if (strcmp(names[k], steps[i].what) == 0)
                    n[k] = sqlite3_changes(c->db);
        }
    }
    st = NULL;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT INTO erasures (customer, at_ms, "
                           "customers, identities, events, deliveries, "
                           "conversations) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                           "?7)",
                           -1, &st, NULL) != SQLITE_OK)
        goto io;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
    sqlite3_bind_int64(st, 3, n[4]);
    sqlite3_bind_int64(st, 4, n[2]);
    sqlite3_bind_int64(st, 5, n[1]);
    sqlite3_bind_int64(st, 6, n[0]);
    sqlite3_bind_int64(st, 7, n[3]);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        goto io;
    og__sbuf_printf(out,
                    "{\"erased\":\"%s\",\"customers\":%lld,"
                    "\"identities\":%lld,\"events\":%lld,"
                    "\"deliveries\":%lld,\"conversations\":%lld}",
                    canon, (long long)n[4], (long long)n[2], (long long)n[1],
                    (long long)n[0], (long long)n[3]);
    if (erased != NULL)
        *erased = ids;
    else
        og__strv_free(ids);
    return OG_OK;
io:
    snprintf(err, errlen, "store: %s", sqlite3_errmsg(c->db));
    og__strv_free(ids);
    return OG_ERR_IO;
}

/* ---- conversations ------------------------------------------------------- */

og_err_t og__custdb_conversation(og__custdb_t *c, const char *id, int resolve,
                                 uint64_t now_ms, og__conversation_cb cb,
                                 void *data)
{
    og__conversation_view_t v;
    sqlite3_stmt *st, *keys;
    int rc;

    if (resolve && resolve_conversation(c, id, now_ms) != SQLITE_OK)
        return OG_ERR_IO;
    st = prep(c,
              "SELECT v.customer, coalesce(c.merged_into, c.id), v.state, "
              "v.opened_ms, v.updated_ms, v.resolved_ms, v.last_channel, "
              "v.messages FROM conversations v LEFT JOIN customers c ON c.id "
              "= v.customer WHERE v.id = ?1",
              id);
    if (st == NULL)
        return OG_ERR_IO;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? OG_ERR_NOT_FOUND : OG_ERR_IO;
    }
    keys =
        prep(c, "SELECT count(*) FROM thread_keys WHERE conversation = ?1", id);
    if (keys == NULL || sqlite3_step(keys) != SQLITE_ROW) {
        sqlite3_finalize(keys);
        sqlite3_finalize(st);
        return OG_ERR_IO;
    }
    v.id = id;
    v.customer = (const char *)sqlite3_column_text(st, 1);
    v.resolved = sqlite3_column_int(st, 2) != 0;
    v.opened_ms = (uint64_t)sqlite3_column_int64(st, 3);
    v.updated_ms = (uint64_t)sqlite3_column_int64(st, 4);
    v.has_resolved_ms = sqlite3_column_type(st, 5) != SQLITE_NULL;
    v.resolved_ms = (uint64_t)sqlite3_column_int64(st, 5);
    v.last_channel = (const char *)sqlite3_column_text(st, 6);
    v.messages = sqlite3_column_int64(st, 7);
    v.thread_keys = sqlite3_column_int64(keys, 0);
    cb(data, &v);
    sqlite3_finalize(keys);
    sqlite3_finalize(st);
    return OG_OK;
}

/* ---- the profile as journeys see it ------------------------------------ */

struct mp_traits {
    msgpack_sbuffer sb; /* the traits map's entries */
    msgpack_packer pk;
    size_t n;
    /* the special traits, also at the top level */
    uint8_t *special[3];
    int nspecial[3];
};

static void mp_trait(void *ctx, const char *name, const void *p, size_t n)
{
    static const char *const sp[3] = {"preferred_channel", "locale",
                                      "timezone"};
    struct mp_traits *t = ctx;
    size_t i, nl = strlen(name);

    if (n == 0)
        return;
    msgpack_pack_str(&t->pk, nl);
    msgpack_pack_str_body(&t->pk, name, nl);
    msgpack_sbuffer_write(&t->sb, p, (size_t)n);
    t->n++;
    for (i = 0; i < 3; i++)
        if (strcmp(name, sp[i]) == 0 && t->special[i] == NULL) {
            t->special[i] = og__xmalloc((size_t)n);
            memcpy(t->special[i], p, (size_t)n);
            t->nspecial[i] = (int)n;
        }
}

int og__custdb_pack(og__custdb_t *c, const char *id,
                    const og__trait_rules_t *rules, msgpack_packer *pk,
                    char canon[40])
{
    static const char *const sp[3] = {"preferred_channel", "locale",
                                      "timezone"};
    struct mp_traits t;
    int64_t created = 0, orders = 0;
    char first[72] = "", last_kind[72] = "";
    sqlite3_stmt *st;
    msgpack_sbuffer ab;
    msgpack_packer apk;
    size_t na = 0, i, top;
    int rc;

    rc = canonical(c, id, canon, &created);
    if (rc <= 0)
        return -1;
    st = use(c, S_ORDERS);
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        orders = sqlite3_column_int64(st, 0);
        if (sqlite3_column_text(st, 1) != NULL)
            snprintf(first, sizeof(first), "%s", sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    memset(&t, 0, sizeof(t));
    msgpack_sbuffer_init(&t.sb);
    msgpack_packer_init(&t.pk, &t.sb, msgpack_sbuffer_write);
    if (og__traits_each(c->traits, canon, rules, mp_trait, &t) != OG_OK) {
        msgpack_sbuffer_destroy(&t.sb);
        for (i = 0; i < 3; i++)
            free(t.special[i]);
        return -2;
    }
    /* addresses: the newest key of each kind */
    msgpack_sbuffer_init(&ab);
    msgpack_packer_init(&apk, &ab, msgpack_sbuffer_write);
    st = use(c, S_ADDRESSES);
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);

        if (k == NULL || strcmp(k, last_kind) == 0)
            continue;
        snprintf(last_kind, sizeof(last_kind), "%s", k);
        og__pack_cstr(&apk, k);
        og__pack_cstr(&apk, (const char *)sqlite3_column_text(st, 1));
        na++;
    }
    sqlite3_reset(st);
    top = 5;
    for (i = 0; i < 3; i++)
        top += t.special[i] != NULL;
    msgpack_pack_map(pk, top);
    og__pack_cstr(pk, "id");
    og__pack_cstr(pk, canon);
    og__pack_cstr(pk, "orders");
    msgpack_pack_int64(pk, orders);
    og__pack_cstr(pk, "first_channel");
    og__pack_cstr(pk, first);
    og__pack_cstr(pk, "traits");
    msgpack_pack_map(pk, t.n);
    pk->callback(pk->data, t.sb.data, t.sb.size);
    og__pack_cstr(pk, "addresses");
    msgpack_pack_map(pk, na);
    pk->callback(pk->data, ab.data, ab.size);
    for (i = 0; i < 3; i++)
        if (t.special[i] != NULL) {
            og__pack_cstr(pk, sp[i]);
            pk->callback(pk->data, (const char *)t.special[i],
                         (size_t)t.nspecial[i]);
            free(t.special[i]);
        }
    msgpack_sbuffer_destroy(&t.sb);
    msgpack_sbuffer_destroy(&ab);
    return 0;
}

og__trait_repo_t *og__custdb_trait_repo(og__custdb_t *c)
{
    return c->traits;
}

/* ---- bounces ------------------------------------------------------------ */

int og__custdb_bounced(og__custdb_t *c, const og__store_item_t *it)
{
    const uint8_t *b = it->stamped ? it->stamped : it->body;
    size_t len = it->stamped ? it->stamped_len : it->len, off = 0;
    msgpack_zone zone;
    msgpack_object root;
    const msgpack_object *o;
    char addr[320];
    int64_t limit = 3;
    int permanent = 0, rc = SQLITE_OK;
    sqlite3_stmt *st;

    if (it->type == NULL || strcmp(it->type, "message.bounced") != 0 ||
        it->source == NULL || !msgpack_zone_init(&zone, 1024))
        return SQLITE_OK;
    if (msgpack_unpack((const char *)b, len, &off, &zone, &root) !=
        MSGPACK_UNPACK_SUCCESS)
        goto out;
    if (og__obj_lookup(&root, "props.permanent", &o) == OG_OK &&
        o->type == MSGPACK_OBJECT_BOOLEAN)
        permanent = o->via.boolean;
    if (og__obj_lookup(&root, "props.bounce_limit", &o) == OG_OK &&
        o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 > 0 &&
        o->via.u64 < 1000)
        limit = (int64_t)o->via.u64;
    if (!permanent || og__obj_lookup(&root, "props.recipient", &o) != OG_OK ||
        o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
        o->via.str.size >= sizeof(addr))
        goto out;
    memcpy(addr, o->via.str.ptr, o->via.str.size);
    addr[o->via.str.size] = '\0';
    st = use(c, S_BOUNCE);
    sqlite3_bind_text(st, 1, it->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, addr, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, limit);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)it->received_ms);
    rc = run(st);
out:
    msgpack_zone_destroy(&zone);
    return rc;
}
