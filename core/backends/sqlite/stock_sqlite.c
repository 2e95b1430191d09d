/*
 * stock_sqlite.c: shared stock in the SQLite store (stock_sqlite.h,
 * docs/stock.md).
 *
 * Versions. Every inventory.changed carries the source's version (or its
 * time). An absolute count at version v replaces the count of every
 * version up to v: it applies only when v is newer than the last absolute
 * count, and the deltas newer than v that arrived before it are added on
 * top. A delta at version v applies once (sku, location and version are
 * its key) and only when it is newer than the last absolute count, which
 * already holds it otherwise. So duplicated and reordered updates never
 * move stock backwards.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "base/json.h" /* og__sbuf_json */
#include "backends/sqlite/stock_sqlite.h"
#include "backends/sqlite/sqlite_util.h"
#include "base/util.h"

#define MAX_SKUS 64 /* distinct skus one event changes */

enum {
    K_GET,
    K_UPSERT,
    K_DELTAS_AFTER,
    K_DELTAS_PRUNE,
    K_DELTA_INS,
    K_ADD,
    K_ORDER_INS,
    K_ORDER_CUST,
    K_ORDER_STATE,
    K_RES_INS,
    K_RES_OF,
    K_RES_DEL,
    K_AVAIL_ALL,
    K_AVAIL_AT,
    K_CHAN_GET,
    K_CHAN_SET,
    K_COUNT
};

static const char *const sql[K_COUNT] = {
    [K_GET] = "SELECT abs_version FROM stock WHERE sku = ?1 AND "
              "location = ?2",
    [K_UPSERT] = "INSERT INTO stock (sku, location, on_hand, reserved, "
                 "abs_version, updated_ms) VALUES (?1, ?2, ?3, 0, ?4, ?5) ON "
                 "CONFLICT (sku, location) DO UPDATE SET on_hand = ?3, "
                 "abs_version = ?4, updated_ms = ?5",
    [K_DELTAS_AFTER] = "SELECT total(delta) FROM stock_deltas WHERE sku = ?1 "
                       "AND location = ?2 AND version > ?3",
    [K_DELTAS_PRUNE] = "DELETE FROM stock_deltas WHERE sku = ?1 AND location "
                       "= ?2 AND version <= ?3",
    [K_DELTA_INS] = "INSERT OR IGNORE INTO stock_deltas (sku, location, "
                    "version, delta) VALUES (?1, ?2, ?3, ?4)",
    /* on hand and reserved moved by ?3 and ?4 */
    [K_ADD] = "INSERT INTO stock (sku, location, on_hand, reserved, "
              "abs_version, updated_ms) VALUES (?1, ?2, ?3, ?4, 0, ?5) ON "
              "CONFLICT (sku, location) DO UPDATE SET on_hand = on_hand + ?3, "
              "reserved = max(reserved + ?4, 0), updated_ms = ?5",
    [K_ORDER_INS] = "INSERT OR IGNORE INTO orders (id, customer, location, "
                    "state, placed_ms, updated_ms) VALUES (?1, ?2, ?3, 0, ?4, "
                    "?4)",
    [K_ORDER_CUST] = "SELECT customer FROM orders WHERE id = ?1",
    [K_ORDER_STATE] = "UPDATE orders SET state = ?2, updated_ms = ?3 WHERE id "
                      "= ?1",
    [K_RES_INS] = "INSERT OR IGNORE INTO reservations (order_id, sku, "
                  "location, qty) VALUES (?1, ?2, ?3, ?4)",
    [K_RES_OF] = "SELECT sku, location, qty FROM reservations WHERE order_id "
                 "= ?1",
    [K_RES_DEL] = "DELETE FROM reservations WHERE order_id = ?1",
    [K_AVAIL_ALL] = "SELECT total(on_hand - reserved) FROM stock WHERE sku = "
                    "?1",
    [K_AVAIL_AT] = "SELECT on_hand - reserved FROM stock WHERE sku = ?1 AND "
                   "location = ?2",
    [K_CHAN_GET] = "SELECT available FROM stock_channels WHERE sku = ?1 AND "
                   "channel = ?2",
    [K_CHAN_SET] = "INSERT INTO stock_channels (sku, channel, available) "
                   "VALUES (?1, ?2, ?3) ON CONFLICT (sku, channel) DO UPDATE "
                   "SET available = ?3",
};

struct og__stockdb_s {
    sqlite3 *db;
    sqlite3_stmt *st[K_COUNT];
};

og__stockdb_t *og__stockdb_prepare(sqlite3 *db)
{
    og__stockdb_t *s = og__xcalloc(1, sizeof(*s));

    s->db = db;
    if (og__sql_prepare_all(db, sql, K_COUNT, s->st) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void og__stockdb_free(og__stockdb_t *s)
{
    if (s == NULL)
        return;
    og__sql_finalize_all(s->st, K_COUNT);
    free(s);
}

static sqlite3_stmt *use(og__stockdb_t *s, int which)
{
    return og__sql_use(s->st[which]);
}

static int done(sqlite3_stmt *st)
{
    return og__sql_done(st);
}

int og__stock_type(const char *type)
{
    return type != NULL && (strcmp(type, "inventory.changed") == 0 ||
                            strcmp(type, "order.placed") == 0 ||
                            strcmp(type, "order.cancelled") == 0 ||
                            strcmp(type, "order.completed") == 0 ||
                            strcmp(type, "order.ready_for_pickup") == 0);
}

/* ---- reading the event ------------------------------------------------- */

struct ev {
    msgpack_zone zone;
    msgpack_object root;
    const char *type;
};

static int parse(struct ev *e, const og__store_item_t *it)
{
    const uint8_t *b = it->stamped ? it->stamped : it->body;
    size_t len = it->stamped ? it->stamped_len : it->len, off = 0;

    e->type = it->type;
    msgpack_zone_init(&e->zone, 2048);
    if (msgpack_unpack((const char *)b, len, &off, &e->zone, &e->root) !=
        MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy(&e->zone);
        return -1;
    }
    return 0;
}

/* Text (or a positive integer) at path into buf; NULL when none. */
static const char *text(const msgpack_object *o, const char *path, char *buf,
                        size_t len)
{
    return og__obj_text(o, path, 1, buf, len);
}

/* An integer at path; 1 when there is one. */
static int integer(const msgpack_object *o, const char *path, int64_t *out)
{
    const msgpack_object *v;

    if (og__obj_lookup(o, path, &v) != OG_OK)
        return 0;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        v->via.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->via.u64;
        return 1;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return 1;
    }
    return 0;
}

/* The order an order.* event is about: entity.id of kind order, else
 * props.order_id. */
static const char *order_id(const msgpack_object *root, char *buf, size_t len)
{
    char kind[16];
    const char *k = text(root, "entity.kind", kind, sizeof(kind));

    if (k != NULL && strcmp(k, "order") == 0 &&
        text(root, "entity.id", buf, len) != NULL)
        return buf;
    return text(root, "props.order_id", buf, len);
}

/* ---- availability and stock.out / stock.back --------------------------- */

struct touched {
    char sku[MAX_SKUS][130];
    size_t n;
};

static void touch(struct touched *t, const char *sku)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        if (strcmp(t->sku[i], sku) == 0)
            return;
    if (t->n < MAX_SKUS)
        snprintf(t->sku[t->n++], sizeof(t->sku[0]), "%s", sku);
}

static int64_t scalar(sqlite3_stmt *st, int *rc)
{
    int64_t v = 0;
    int r = sqlite3_step(st);

    if (r == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (r != SQLITE_DONE)
        *rc = r;
    sqlite3_reset(st);
    return v;
}

/* What channel c may sell of sku now: on hand minus reserved over its
 * locations, minus its safety buffer. */
static int64_t available(og__stockdb_t *s, const og__stock_chan_t *c,
                         const char *sku, int *rc)
{
    int64_t sum = 0;
    size_t i;

    for (i = 0; c->locations[i] != NULL; i++) {
        sqlite3_stmt *st;

        if (strcmp(c->locations[i], "*") == 0) {
            st = use(s, K_AVAIL_ALL);
            sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
            return scalar(st, rc) - c->buffer;
        }
        st = use(s, K_AVAIL_AT);
        sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->locations[i], -1, SQLITE_STATIC);
        sum += scalar(st, rc);
    }
    return sum - c->buffer;
}

/* stock.out or stock.back for channel c, made by the store. */
static int crossed(const og__store_item_t *it, const og__store_hooks_t *h,
                   og__custdb_insert_fn insert, void *ctx, const char *sku,
                   const og__stock_chan_t *c, int64_t avail)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    og__store_item_t ev;
    char id[40];

    if (h == NULL || h->made == NULL)
        return SQLITE_OK;
    og__uuid7_at(id, it->received_ms);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    og__pack_core_head(&pk, 3, avail > 0 ? "stock.back" : "stock.out", id,
                       it->received_ms);
    og__pack_cstr(&pk, "causation");
    og__pack_cstr(&pk, it->event_id);
    og__pack_cstr(&pk, "entity");
    msgpack_pack_map(&pk, 2);
    og__pack_cstr(&pk, "kind");
    og__pack_cstr(&pk, "product");
    og__pack_cstr(&pk, "id");
    og__pack_cstr(&pk, sku);
    og__pack_cstr(&pk, "props");
    msgpack_pack_map(&pk, 3);
    og__pack_cstr(&pk, "sku");
    og__pack_cstr(&pk, sku);
    og__pack_cstr(&pk, "channel");
    og__pack_cstr(&pk, c->channel);
    og__pack_cstr(&pk, "available");
    msgpack_pack_int64(&pk, avail > 0 ? avail : 0);
    memset(&ev, 0, sizeof(ev));
    if (h->made(h->data, (uint8_t *)sb.data, sb.size, &ev) != 0)
        return SQLITE_OK;
    return insert(ctx, &ev);
}

/* After a change to skus: each stock channel's availability, and the
 * events for those that crossed zero. A channel's first figure makes a
 * stock.out when it is zero, nothing otherwise. */
static int recheck(og__stockdb_t *s, const og__store_item_t *it,
                   const og__store_hooks_t *h, og__custdb_insert_fn insert,
                   void *ctx, const struct touched *t)
{
    size_t i, k;
    int rc = SQLITE_OK;

    if (h == NULL || h->stock == NULL)
        return SQLITE_OK;
    for (i = 0; i < t->n && rc == SQLITE_OK; i++) {
        for (k = 0; k < h->stock->n && rc == SQLITE_OK; k++) {
            const og__stock_chan_t *c = &h->stock->chans[k];
            int64_t now = available(s, c, t->sku[i], &rc), before = 0;
            sqlite3_stmt *st = use(s, K_CHAN_GET);
            int r, known;

            sqlite3_bind_text(st, 1, t->sku[i], -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, c->channel, -1, SQLITE_STATIC);
            r = sqlite3_step(st);
            known = r == SQLITE_ROW;
            if (known)
                before = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
            if (r != SQLITE_ROW && r != SQLITE_DONE)
                return r;
            if (known && before == now)
                continue;
            st = use(s, K_CHAN_SET);
            sqlite3_bind_text(st, 1, t->sku[i], -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, c->channel, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, now);
            if ((rc = done(st)) != SQLITE_OK)
                return rc;
            if ((known && (before > 0) != (now > 0)) || (!known && now <= 0))
                rc = crossed(it, h, insert, ctx, t->sku[i], c, now);
        }
    }
    return rc;
}

/* ---- inventory.changed ------------------------------------------------- */

static int inventory(og__stockdb_t *s, const og__store_item_t *it,
                     const msgpack_object *root, struct touched *t)
{
    char sku[130], loc[130];
    int64_t version = 0, count, delta, absv = 0, after;
    int has_count, has_delta, rc = SQLITE_OK, exists;
    sqlite3_stmt *st;

    if (text(root, "props.sku", sku, sizeof(sku)) == NULL ||
        (text(root, "props.location", loc, sizeof(loc)) == NULL &&
         text(root, "location", loc, sizeof(loc)) == NULL))
        return SQLITE_OK; /* refused at the edge (docs/stock.md) */
    has_count = integer(root, "props.on_hand", &count);
    has_delta = integer(root, "props.delta", &delta);
    if (!integer(root, "props.version", &version) &&
        !integer(root, "entity.version", &version) &&
        !integer(root, "occurred", &version))
        version = (int64_t)it->received_ms;
    st = use(s, K_GET);
    sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, loc, -1, SQLITE_STATIC);
    exists = sqlite3_step(st) == SQLITE_ROW;
    if (exists) {
        absv = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    if (exists && version <= absv)
        return SQLITE_OK; /* the last count already holds it: stale */
    if (has_count) {
        st = use(s, K_DELTAS_AFTER);
        sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, loc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, version);
        after = scalar(st, &rc);
        if (rc != SQLITE_OK)
            return rc;
        st = use(s, K_UPSERT);
        sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, loc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, count + after);
        sqlite3_bind_int64(st, 4, version);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)it->received_ms);
        if ((rc = done(st)) != SQLITE_OK)
            return rc;
        st = use(s, K_DELTAS_PRUNE);
        sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, loc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, version);
        rc = done(st);
    } else if (has_delta) {
        st = use(s, K_DELTA_INS);
        sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, loc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, version);
        sqlite3_bind_int64(st, 4, delta);
        if ((rc = done(st)) != SQLITE_OK)
            return rc;
        if (sqlite3_changes(s->db) == 0)
            return SQLITE_OK; /* this version's delta was applied */
        st = use(s, K_ADD);
        sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, loc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, delta);
        sqlite3_bind_int64(st, 4, 0);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)it->received_ms);
        rc = done(st);
    }
    touch(t, sku);
    return rc;
}

/* ---- orders ------------------------------------------------------------ */

/* Where an order's line reserves: its own location, the order's pickup
 * location, the event's location, or the first location of the source
 * channel's stock; NULL when none. */
static const char *line_location(const msgpack_object *line,
                                 const msgpack_object *root,
                                 const og__store_item_t *it,
                                 const og__store_hooks_t *h, char *buf,
                                 size_t len)
{
    size_t i;

    if (text(line, "location", buf, len) != NULL ||
        text(root, "props.pickup_location", buf, len) != NULL ||
        text(root, "location", buf, len) != NULL)
        return buf;
    for (i = 0; h != NULL && h->stock != NULL && i < h->stock->n; i++)
        if (it->source != NULL &&
            strcmp(h->stock->chans[i].channel, it->source) == 0 &&
            h->stock->chans[i].first != NULL) {
            snprintf(buf, len, "%s", h->stock->chans[i].first);
            return buf;
        }
    return NULL;
}

static int move(og__stockdb_t *s, const char *sku, const char *loc,
                int64_t on_hand, int64_t reserved, uint64_t at)
{
    sqlite3_stmt *st = use(s, K_ADD);

    sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, loc, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, on_hand);
    sqlite3_bind_int64(st, 4, reserved);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)at);
    return done(st);
}

static int placed(og__stockdb_t *s, const og__store_item_t *it,
                  const og__store_hooks_t *h, const msgpack_object *root,
                  struct touched *t)
{
    const msgpack_object *lines;
    char oid[136], loc[130], pick[130];
    sqlite3_stmt *st;
    uint32_t i;
    int rc;

    /* An order nothing can name later (no entity of kind order, no
     * props.order_id) is not recorded: its lines, if any, reserve under
     * the event's id, which cancels and completions cannot name. */
    if (order_id(root, oid, sizeof(oid)) == NULL) {
        if (og__obj_lookup(root, "props.lines", &lines) != OG_OK)
            return SQLITE_OK;
        snprintf(oid, sizeof(oid), "%s", it->event_id);
    }
    st = use(s, K_ORDER_INS);
    sqlite3_bind_text(st, 1, oid, -1, SQLITE_STATIC);
    if (it->customer[0] != '\0')
        sqlite3_bind_text(st, 2, it->customer, -1, SQLITE_STATIC);
    if (text(root, "props.pickup_location", pick, sizeof(pick)) != NULL)
        sqlite3_bind_text(st, 3, pick, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)it->received_ms);
    if ((rc = done(st)) != SQLITE_OK)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return SQLITE_OK; /* the order was placed before */
    if (og__obj_lookup(root, "props.lines", &lines) != OG_OK ||
        lines->type != MSGPACK_OBJECT_ARRAY)
        return SQLITE_OK;
    for (i = 0; i < lines->via.array.size; i++) {
        const msgpack_object *line = &lines->via.array.ptr[i];
        char sku[130];
        int64_t qty = 1;

        if (text(line, "sku", sku, sizeof(sku)) == NULL ||
            line_location(line, root, it, h, loc, sizeof(loc)) == NULL)
            continue;
        if ((integer(line, "qty", &qty) || integer(line, "quantity", &qty)) &&
            qty <= 0)
            continue;
        st = use(s, K_RES_INS);
        sqlite3_bind_text(st, 1, oid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, sku, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, loc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, qty);
        if ((rc = done(st)) != SQLITE_OK)
            return rc;
        if (sqlite3_changes(s->db) == 0)
            continue; /* the same line twice */
        if ((rc = move(s, sku, loc, 0, qty, it->received_ms)) != SQLITE_OK)
            return rc;
        touch(t, sku);
    }
    return SQLITE_OK;
}

/* order.cancelled (release) or order.completed (the goods left). */
static int settle(og__stockdb_t *s, const og__store_item_t *it,
                  const msgpack_object *root, int completed, struct touched *t)
{
    char oid[136];
    sqlite3_stmt *st;
    int rc = SQLITE_OK, r;

    if (order_id(root, oid, sizeof(oid)) == NULL)
        return SQLITE_OK;
    st = use(s, K_RES_OF);
    sqlite3_bind_text(st, 1, oid, -1, SQLITE_TRANSIENT);
    while ((r = sqlite3_step(st)) == SQLITE_ROW && rc == SQLITE_OK) {
        char sku[130], loc[130];
        int64_t qty = sqlite3_column_int64(st, 2);

        snprintf(sku, sizeof(sku), "%s", sqlite3_column_text(st, 0));
        snprintf(loc, sizeof(loc), "%s", sqlite3_column_text(st, 1));
        rc = move(s, sku, loc, completed ? -qty : 0, -qty, it->received_ms);
        touch(t, sku);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_OK)
        return rc;
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        return r;
    st = use(s, K_RES_DEL);
    sqlite3_bind_text(st, 1, oid, -1, SQLITE_TRANSIENT);
    if ((rc = done(st)) != SQLITE_OK)
        return rc;
    st = use(s, K_ORDER_STATE);
    sqlite3_bind_text(st, 1, oid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, completed ? 2 : 3);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)it->received_ms);
    return done(st);
}

int og__stockdb_order_customer(og__stockdb_t *s, og__store_item_t *it,
                               const og__store_hooks_t *h)
{
    struct ev e;
    char oid[136];
    sqlite3_stmt *st;
    int rc = SQLITE_OK;

    if (it->person != NULL || it->customer[0] != '\0' || it->type == NULL ||
        strncmp(it->type, "order.", 6) != 0 || h == NULL || h->stamp == NULL ||
        parse(&e, it) != 0)
        return SQLITE_OK;
    if (order_id(&e.root, oid, sizeof(oid)) != NULL) {
        int r;

        st = use(s, K_ORDER_CUST);
        sqlite3_bind_text(st, 1, oid, -1, SQLITE_STATIC);
        r = sqlite3_step(st);
        if (r == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            snprintf(it->customer, sizeof(it->customer), "%s",
                     sqlite3_column_text(st, 0));
            it->stamped = h->stamp(h->data, it->body, it->len, it->customer,
                                   NULL, &it->stamped_len);
        } else if (r != SQLITE_ROW && r != SQLITE_DONE) {
            rc = r;
        }
        sqlite3_reset(st);
    }
    msgpack_zone_destroy(&e.zone);
    return rc;
}

int og__stockdb_apply(og__stockdb_t *s, og__store_item_t *it,
                      const og__store_hooks_t *h, og__custdb_insert_fn insert,
                      void *ctx)
{
    struct touched t;
    struct ev e;
    int rc = SQLITE_OK;

    if (!og__stock_type(it->type) || parse(&e, it) != 0)
        return SQLITE_OK;
    t.n = 0;
    if (strcmp(it->type, "inventory.changed") == 0)
        rc = inventory(s, it, &e.root, &t);
    else if (strcmp(it->type, "order.placed") == 0)
        rc = placed(s, it, h, &e.root, &t);
    else if (strcmp(it->type, "order.cancelled") == 0)
        rc = settle(s, it, &e.root, 0, &t);
    else if (strcmp(it->type, "order.completed") == 0)
        rc = settle(s, it, &e.root, 1, &t);
    else { /* order.ready_for_pickup */
        char oid[136];

        if (order_id(&e.root, oid, sizeof(oid)) != NULL) {
            sqlite3_stmt *st = use(s, K_ORDER_STATE);

            sqlite3_bind_text(st, 1, oid, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 2, 1);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)it->received_ms);
            rc = done(st);
        }
    }
    if (rc == SQLITE_OK)
        rc = recheck(s, it, h, insert, ctx, &t);
    msgpack_zone_destroy(&e.zone);
    return rc;
}

/* ---- reading ------------------------------------------------------------- */

og_err_t og__stockdb_get(og__stockdb_t *s, const char *sku,
                         const og__stock_rules_t *rules, og__sbuf_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc, n = 0;
    size_t k;

    if (sqlite3_prepare_v2(s->db,
                           "SELECT location, on_hand, reserved, abs_version, "
                           "updated_ms FROM stock WHERE sku = ?1 ORDER BY "
                           "location",
                           -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    sqlite3_bind_text(st, 1, sku, -1, SQLITE_TRANSIENT);
    og__sbuf_printf(out, "{\"sku\":");
    og__sbuf_json(out, sku, strlen(sku));
    og__sbuf_printf(out, ",\"locations\":{");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        og__sbuf_printf(out, n++ ? "," : "");
        og__sbuf_json(out, (const char *)sqlite3_column_text(st, 0),
                      (size_t)sqlite3_column_bytes(st, 0));
        og__sbuf_printf(out,
                        ":{\"on_hand\":%lld,\"reserved\":%lld,"
                        "\"available\":%lld,\"version\":%lld,\"updated\":%lld}",
                        (long long)sqlite3_column_int64(st, 1),
                        (long long)sqlite3_column_int64(st, 2),
                        (long long)(sqlite3_column_int64(st, 1) -
                                    sqlite3_column_int64(st, 2)),
                        (long long)sqlite3_column_int64(st, 3),
                        (long long)sqlite3_column_int64(st, 4));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return OG_ERR_IO;
    if (n == 0)
        return OG_ERR_NOT_FOUND;
    og__sbuf_printf(out, "},\"channels\":{");
    for (k = 0; rules != NULL && k < rules->n; k++) {
        int err = SQLITE_OK;
        int64_t a = available(s, &rules->chans[k], sku, &err);

        if (err != SQLITE_OK)
            return OG_ERR_IO;
        og__sbuf_printf(out, k ? "," : "");
        og__sbuf_json(out, rules->chans[k].channel,
                      strlen(rules->chans[k].channel));
        og__sbuf_printf(out, ":{\"available\":%lld,\"safety_buffer\":%lld}",
                        (long long)(a > 0 ? a : 0),
                        (long long)rules->chans[k].buffer);
    }
    og__sbuf_printf(out, "}}");
    return OG_OK;
}
