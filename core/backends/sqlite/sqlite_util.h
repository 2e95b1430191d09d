/*
 * sqlite_util.h: what the SQLite store's modules (store_sqlite.c,
 * customers_sqlite.c, journeys_sqlite.c, stock_sqlite.c) share about
 * their prepared statements.
 */
#ifndef OG_CORE_SQLITE_UTIL_H
#define OG_CORE_SQLITE_UTIL_H

#include <sqlite3.h>
#include <stddef.h>

/* A customer's family in SQL: the canonical customer bound to ?1 and the
 * customers merged into it (docs/customers.md). */
#define FAMILY                                                                 \
    "(SELECT ?1 UNION ALL SELECT id FROM customers WHERE "                     \
    "merged_into = ?1)"

/* Prepares the n statements of sql into st (persistent: they live as
 * long as the connection). 0, or -1 with every one finalized and
 * sqlite3_errmsg(db) telling why. */
int og__sql_prepare_all(sqlite3 *db, const char *const *sql, size_t n,
                        sqlite3_stmt **st);
void og__sql_finalize_all(sqlite3_stmt **st, size_t n);

/* st reset with its bindings cleared, ready to bind. */
sqlite3_stmt *og__sql_use(sqlite3_stmt *st);

/* Steps st, which returns no row, and resets it: SQLITE_OK or the
 * error. */
int og__sql_done(sqlite3_stmt *st);

#endif /* OG_CORE_SQLITE_UTIL_H */
