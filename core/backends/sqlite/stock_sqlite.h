/*
 * stock_sqlite.h: the stock ledger in the SQLite store, an
 * implementation of the repository of domain/stock.h (docs/stock.md).
 * Internal to the SQLite backend: inside a commit its statements run in
 * the transaction store_sqlite.c opened; outside one each is its own.
 */
#ifndef OG_CORE_STOCK_SQLITE_H
#define OG_CORE_STOCK_SQLITE_H

#include <sqlite3.h>

#include "domain/stock.h"

typedef struct og__stockdb_s og__stockdb_t;

/* Prepares the statements; NULL with sqlite3_errmsg(db) set on error. */
og__stockdb_t *og__stockdb_prepare(sqlite3 *db);
void og__stockdb_free(og__stockdb_t *s);

/* The repository (lives as long as s). */
og__stock_repo_t *og__stockdb_repo(og__stockdb_t *s);

#endif /* OG_CORE_STOCK_SQLITE_H */
