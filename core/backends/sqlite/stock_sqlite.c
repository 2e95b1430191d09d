/*
 * stock_sqlite.c: the stock ledger in SQLite (stock_sqlite.h): the
 * repository of domain/stock.h as prepared statements, no rule in them.
 * Tables stock, stock_deltas, stock_channels, orders and reservations
 * (store_sqlite.c, migration 7).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/sqlite/sqlite_util.h"
#include "backends/sqlite/stock_sqlite.h"
#include "base/util.h"

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
    K_LEVELS,
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
              "abs_version, updated_ms) VALUES (?1, ?2, ?3, max(?4, 0), 0, "
              "?5) ON CONFLICT (sku, location) DO UPDATE SET on_hand = "
              "on_hand + ?3, reserved = max(reserved + ?4, 0), updated_ms = "
              "?5",
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
    [K_LEVELS] = "SELECT location, on_hand, reserved, abs_version, "
                 "updated_ms FROM stock WHERE sku = ?1 ORDER BY location",
};

struct og__stockdb_s {
    og__stock_repo_t repo; /* first: the repository is the handle */
    sqlite3 *db;
    sqlite3_stmt *st[K_COUNT];
};

static og_err_t fail(int rc)
{
    return rc == SQLITE_FULL ? OG_ERR_BUSY : OG_ERR_IO;
}

/* Statement which, bound to (sku, loc) as ?1 and ?2. */
static sqlite3_stmt *at(og__stock_repo_t *r, int which, const char *a,
                        const char *b)
{
    sqlite3_stmt *st = og__sql_use(((og__stockdb_t *)r)->st[which]);

    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b != NULL)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    return st;
}

static og_err_t run(sqlite3_stmt *st)
{
    int rc = og__sql_done(st);

    return rc == SQLITE_OK ? OG_OK : fail(rc);
}

/* Runs st, which changes at most one row: *added 1 when it did. */
static og_err_t run_added(og__stock_repo_t *r, sqlite3_stmt *st, int *added)
{
    og_err_t rc = run(st);

    *added = rc == OG_OK && sqlite3_changes(((og__stockdb_t *)r)->db) > 0;
    return rc;
}

/* The first column of st's one row as an integer (*found 0: no row). */
static og_err_t scalar(sqlite3_stmt *st, int64_t *v, int *found)
{
    int rc = sqlite3_step(st), row = rc == SQLITE_ROW;

    *v = row ? sqlite3_column_int64(st, 0) : 0;
    if (found != NULL)
        *found = row && sqlite3_column_type(st, 0) != SQLITE_NULL;
    sqlite3_reset(st);
    return row || rc == SQLITE_DONE ? OG_OK : fail(rc);
}

static og_err_t count_version(og__stock_repo_t *r, const char *sku,
                              const char *loc, int64_t *version, int *found)
{
    return scalar(at(r, K_GET, sku, loc), version, found);
}

static og_err_t count_set(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t on_hand, int64_t version, uint64_t at_ms)
{
    sqlite3_stmt *st = at(r, K_UPSERT, sku, loc);

    sqlite3_bind_int64(st, 3, on_hand);
    sqlite3_bind_int64(st, 4, version);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)at_ms);
    return run(st);
}

static og_err_t move(og__stock_repo_t *r, const char *sku, const char *loc,
                     int64_t d_on_hand, int64_t d_reserved, uint64_t at_ms)
{
    sqlite3_stmt *st = at(r, K_ADD, sku, loc);

    sqlite3_bind_int64(st, 3, d_on_hand);
    sqlite3_bind_int64(st, 4, d_reserved);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)at_ms);
    return run(st);
}

static og_err_t deltas_after(og__stock_repo_t *r, const char *sku,
                             const char *loc, int64_t version, int64_t *sum)
{
    sqlite3_stmt *st = at(r, K_DELTAS_AFTER, sku, loc);

    sqlite3_bind_int64(st, 3, version);
    return scalar(st, sum, NULL);
}

static og_err_t deltas_drop(og__stock_repo_t *r, const char *sku,
                            const char *loc, int64_t version)
{
    sqlite3_stmt *st = at(r, K_DELTAS_PRUNE, sku, loc);

    sqlite3_bind_int64(st, 3, version);
    return run(st);
}

static og_err_t delta_add(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t version, int64_t delta, int *added)
{
    sqlite3_stmt *st = at(r, K_DELTA_INS, sku, loc);

    sqlite3_bind_int64(st, 3, version);
    sqlite3_bind_int64(st, 4, delta);
    return run_added(r, st, added);
}

static og_err_t available(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t *sum)
{
    return scalar(at(r, loc ? K_AVAIL_AT : K_AVAIL_ALL, sku, loc), sum, NULL);
}

static og_err_t order_add(og__stock_repo_t *r, const char *order,
                          const char *customer, const char *pickup,
                          uint64_t at_ms, int *added)
{
    sqlite3_stmt *st = at(r, K_ORDER_INS, order, customer);

    if (pickup != NULL)
        sqlite3_bind_text(st, 3, pickup, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)at_ms);
    return run_added(r, st, added);
}

static og_err_t order_customer(og__stock_repo_t *r, const char *order,
                               char *buf, size_t len, int *found)
{
    sqlite3_stmt *st = at(r, K_ORDER_CUST, order, NULL);
    int rc = sqlite3_step(st);

    *found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (*found)
        snprintf(buf, len, "%s", sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? OG_OK : fail(rc);
}

static og_err_t order_state(og__stock_repo_t *r, const char *order,
                            og__order_state_t state, uint64_t at_ms)
{
    sqlite3_stmt *st = at(r, K_ORDER_STATE, order, NULL);

    sqlite3_bind_int(st, 2, (int)state);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)at_ms);
    return run(st);
}

static og_err_t reservation_add(og__stock_repo_t *r, const char *order,
                                const char *sku, const char *loc, int64_t qty,
                                int *added)
{
    sqlite3_stmt *st = at(r, K_RES_INS, order, sku);

    sqlite3_bind_text(st, 3, loc, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, qty);
    return run_added(r, st, added);
}

static og_err_t reservations(og__stock_repo_t *r, const char *order,
                             og__stock_line_cb cb, void *data)
{
    sqlite3_stmt *st = at(r, K_RES_OF, order, NULL);
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb(data, (const char *)sqlite3_column_text(st, 0),
           (const char *)sqlite3_column_text(st, 1),
           sqlite3_column_int64(st, 2));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? OG_OK : fail(rc);
}

static og_err_t reservations_drop(og__stock_repo_t *r, const char *order)
{
    return run(at(r, K_RES_DEL, order, NULL));
}

static og_err_t channel_get(og__stock_repo_t *r, const char *sku,
                            const char *channel, int64_t *avail, int *known)
{
    return scalar(at(r, K_CHAN_GET, sku, channel), avail, known);
}

static og_err_t channel_set(og__stock_repo_t *r, const char *sku,
                            const char *channel, int64_t avail)
{
    sqlite3_stmt *st = at(r, K_CHAN_SET, sku, channel);

    sqlite3_bind_int64(st, 3, avail);
    return run(st);
}

static og_err_t levels(og__stock_repo_t *r, const char *sku,
                       og__stock_level_cb cb, void *data)
{
    sqlite3_stmt *st = at(r, K_LEVELS, sku, NULL);
    og__stock_level_t l;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        l.location = (const char *)sqlite3_column_text(st, 0);
        l.on_hand = sqlite3_column_int64(st, 1);
        l.reserved = sqlite3_column_int64(st, 2);
        l.version = sqlite3_column_int64(st, 3);
        l.updated_ms = (uint64_t)sqlite3_column_int64(st, 4);
        cb(data, &l);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? OG_OK : fail(rc);
}

static const struct og__stock_repo_ops ops = {
    .count_version = count_version,
    .count_set = count_set,
    .move = move,
    .deltas_after = deltas_after,
    .deltas_drop = deltas_drop,
    .delta_add = delta_add,
    .available = available,
    .order_add = order_add,
    .order_customer = order_customer,
    .order_state = order_state,
    .reservation_add = reservation_add,
    .reservations = reservations,
    .reservations_drop = reservations_drop,
    .channel_get = channel_get,
    .channel_set = channel_set,
    .levels = levels,
};

og__stockdb_t *og__stockdb_prepare(sqlite3 *db)
{
    og__stockdb_t *s = og__xcalloc(1, sizeof(*s));

    s->repo.ops = &ops;
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

og__stock_repo_t *og__stockdb_repo(og__stockdb_t *s)
{
    return &s->repo;
}
