/*
 * sqlite_util.c: prepared statements of the SQLite store's modules
 * (sqlite_util.h).
 */
#include "config.h"

#include "backends/sqlite/sqlite_util.h"

int og__sql_prepare_all(sqlite3 *db, const char *const *sql, size_t n,
                        sqlite3_stmt **st)
{
    size_t i;

    for (i = 0; i < n; i++)
        st[i] = NULL;
    for (i = 0; i < n; i++)
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &st[i], NULL) != SQLITE_OK) {
            og__sql_finalize_all(st, n);
            return -1;
        }
    return 0;
}

void og__sql_finalize_all(sqlite3_stmt **st, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        sqlite3_finalize(st[i]);
        st[i] = NULL;
    }
}

sqlite3_stmt *og__sql_use(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

int og__sql_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
