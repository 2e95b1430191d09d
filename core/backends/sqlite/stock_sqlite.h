/*
 * stock_sqlite.h: shared stock in the SQLite store (docs/stock.md): on
 * hand and reserved per SKU and location, versioned updates that never
 * move stock backwards, order reservations, per-channel availability with
 * stock.out / stock.back. Internal to the SQLite backend: it runs inside
 * the transactions store_sqlite.c opens.
 */
#ifndef OG_CORE_STOCK_SQLITE_H
#define OG_CORE_STOCK_SQLITE_H

#include <sqlite3.h>

#include "backends/sqlite/customers_sqlite.h"
#include "store/store.h"

typedef struct og__stockdb_s og__stockdb_t;

/* Prepares the statements; NULL with sqlite3_errmsg(db) set on error. */
og__stockdb_t *og__stockdb_prepare(sqlite3 *db);
void og__stockdb_free(og__stockdb_t *s);

/* 1 when events of this type change stock or orders. */
int og__stock_type(const char *type);

/*
 * og__stockdb_order_customer: an order.* event (it, not stored yet) that
 * names no customer but an order placed before gets that order's
 * customer, stamped into its body (h->stamp), so that journeys and the
 * timeline see it (a POS's order.ready_for_pickup). An SQLite result
 * code.
 */
int og__stockdb_order_customer(og__stockdb_t *s, og__store_item_t *it,
                               const og__store_hooks_t *h);

/*
 * og__stockdb_apply: what the new event it does to stock and orders:
 * inventory.changed, order.placed (reservations), order.cancelled
 * (released), order.completed (fulfilled), order.ready_for_pickup. Events
 * stock.out / stock.back are made through h->made and written with
 * insert. An SQLite result code.
 */
int og__stockdb_apply(og__stockdb_t *s, og__store_item_t *it,
                      const og__store_hooks_t *h, og__custdb_insert_fn insert,
                      void *ctx);

/* og__store_ops.stock. */
og_err_t og__stockdb_get(og__stockdb_t *s, const char *sku,
                         const og__stock_rules_t *rules, og__sbuf_t *out);

#endif /* OG_CORE_STOCK_SQLITE_H */
