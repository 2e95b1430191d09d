/*
 * traits_sqlite.c: customers' traits in SQLite (traits_sqlite.h): the
 * repository of domain/traits.h as prepared statements.
 */
#include "config.h"

#include <stdlib.h>

#include "backends/sqlite/sqlite_util.h"
#include "backends/sqlite/traits_sqlite.h"
#include "base/util.h"

enum { T_SET, T_DEL, T_ROWS, T_COUNT };

static const char *const sql[T_COUNT] = {
    [T_SET] = "INSERT INTO traits (customer, name, value, set_ms) VALUES (?1, "
              "?2, ?3, ?4) ON CONFLICT (customer, name) DO UPDATE SET value = "
              "excluded.value, set_ms = excluded.set_ms",
    [T_DEL] = "DELETE FROM traits WHERE customer = ?1 AND name = ?2",
    [T_ROWS] = "SELECT name, value, customer = ?1 FROM traits WHERE customer "
               "IN " FAMILY " ORDER BY name, set_ms",
};

struct og__traitdb_s {
    og__trait_repo_t repo; /* first: the repository is the handle */
    sqlite3_stmt *st[T_COUNT];
};

static og_err_t fail(int rc)
{
    return rc == SQLITE_FULL ? OG_ERR_BUSY : OG_ERR_IO;
}

static sqlite3_stmt *use(og__trait_repo_t *r, int which, const char *customer)
{
    sqlite3_stmt *st = og__sql_use(((og__traitdb_t *)r)->st[which]);

    sqlite3_bind_text(st, 1, customer, -1, SQLITE_STATIC);
    return st;
}

static og_err_t set(og__trait_repo_t *r, const char *customer, const char *name,
                    const void *value, size_t n, uint64_t at_ms)
{
    sqlite3_stmt *st = use(r, T_SET, customer);
    int rc;

    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, value, (int)n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)at_ms);
    rc = og__sql_done(st);
    return rc == SQLITE_OK ? OG_OK : fail(rc);
}

static og_err_t del(og__trait_repo_t *r, const char *customer, const char *name)
{
    sqlite3_stmt *st = use(r, T_DEL, customer);
    int rc;

    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    rc = og__sql_done(st);
    return rc == SQLITE_OK ? OG_OK : fail(rc);
}

static og_err_t rows(og__trait_repo_t *r, const char *customer,
                     og__trait_row_cb cb, void *data)
{
    sqlite3_stmt *st = use(r, T_ROWS, customer);
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb(data, (const char *)sqlite3_column_text(st, 0),
           sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
           sqlite3_column_int(st, 2));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? OG_OK : fail(rc);
}

static const struct og__trait_repo_ops ops = {
    .set = set,
    .del = del,
    .rows = rows,
};

og__traitdb_t *og__traitdb_prepare(sqlite3 *db)
{
    og__traitdb_t *s = og__xcalloc(1, sizeof(*s));

    s->repo.ops = &ops;
    if (og__sql_prepare_all(db, sql, T_COUNT, s->st) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void og__traitdb_free(og__traitdb_t *s)
{
    if (s == NULL)
        return;
    og__sql_finalize_all(s->st, T_COUNT);
    free(s);
}

og__trait_repo_t *og__traitdb_repo(og__traitdb_t *s)
{
    return &s->repo;
}
