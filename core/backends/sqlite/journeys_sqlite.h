/*
 * journeys_sqlite.h: journey runs and the customer timeline in the SQLite
 * store (docs/journeys.md). Internal to the SQLite backend: it runs inside
 * the transactions store_sqlite.c opens.
 */
#ifndef OG_CORE_JOURNEYS_SQLITE_H
#define OG_CORE_JOURNEYS_SQLITE_H

#include <sqlite3.h>

#include "backends/sqlite/customers_sqlite.h"
#include "store/store.h"

typedef struct og__jdb_s og__jdb_t;

/* Prepares the statements; NULL with sqlite3_errmsg(db) set on error. */
og__jdb_t *og__jdb_prepare(sqlite3 *db, og__custdb_t *cust);
void og__jdb_free(og__jdb_t *j);

/* After it (a new event) was stored with its customer: its timeline row
 * and what it does to journey runs (it->jm). An SQLite result code. */
int og__jdb_accepted(og__jdb_t *j, const og__store_item_t *it);

/* og__store_ops.journeys_fire, in the caller's transaction; insert
 * writes the events the steps make. */
og_err_t og__jdb_fire(og__jdb_t *j, uint64_t now_ms, size_t limit,
                      og__fire_fn fn, void *data,
                      const og__trait_rules_t *rules,
                      const og__consent_rules_t *consent,
                      og__custdb_insert_fn insert, void *ctx, size_t *fired,
                      uint64_t *next_due, char *err, size_t errlen);

/* og__store_ops.timeline. */
og_err_t og__jdb_timeline(og__jdb_t *j, const char *id, size_t limit,
                          char canon[40], const og__timeline_reader_t *rd);

#endif /* OG_CORE_JOURNEYS_SQLITE_H */
