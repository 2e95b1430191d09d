/*
 * consent_sqlite.c: consent statements in SQLite (consent_sqlite.h): the
 * repository of domain/consent.h as prepared statements.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "backends/sqlite/consent_sqlite.h"
#include "backends/sqlite/sqlite_util.h"
#include "base/util.h"

enum { C_SET, C_GET, C_COUNT };

static const char *const sql[C_COUNT] = {
    [C_SET] = "INSERT INTO consents (customer, purpose, channel, granted, "
              "source, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT "
              "(customer, purpose, channel) DO UPDATE SET granted = "
              "excluded.granted, source = excluded.source, at_ms = "
              "excluded.at_ms WHERE excluded.at_ms >= consents.at_ms",
    /* The newest statement that covers the channel (given for the
     * instance, its kind or "*"); at the same time the most specific. */
    [C_GET] = "SELECT granted, channel FROM consents WHERE customer IN " FAMILY
              " AND purpose = ?2 AND channel IN (?3, ?4, '*') ORDER BY at_ms "
              "DESC, CASE channel WHEN ?3 THEN 0 WHEN ?4 THEN 1 ELSE 2 END "
              "LIMIT 1",
};

struct og__consentdb_s {
    og__consent_repo_t repo; /* first: the repository is the handle */
    sqlite3_stmt *st[C_COUNT];
};

static og_err_t fail(int rc)
{
    return rc == SQLITE_FULL ? OG_ERR_BUSY : OG_ERR_IO;
}

static sqlite3_stmt *use(og__consent_repo_t *r, int which)
{
    return og__sql_use(((og__consentdb_t *)r)->st[which]);
}

static og_err_t set(og__consent_repo_t *r, const char *customer,
                    const char *purpose, const char *channel, int granted,
                    const char *source, uint64_t at_ms)
{
    sqlite3_stmt *st = use(r, C_SET);
    int rc;

    sqlite3_bind_text(st, 1, customer, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, purpose, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, channel, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, granted ? 1 : 0);
    sqlite3_bind_text(st, 5, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)at_ms);
    rc = og__sql_done(st);
    return rc == SQLITE_OK ? OG_OK : fail(rc);
}

static og_err_t statement(og__consent_repo_t *r, const char *customer,
                          const char *purpose, const char *channel,
                          const char *kind, int *granted, char *on,
                          size_t onlen)
{
    sqlite3_stmt *st = use(r, C_GET);
    int rc;

    sqlite3_bind_text(st, 1, customer, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, purpose, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, channel, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    *granted = -1;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *granted = sqlite3_column_int(st, 0) ? 1 : 0;
        snprintf(on, onlen, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? OG_OK : fail(rc);
}

static const struct og__consent_repo_ops ops = {
    .set = set,
    .statement = statement,
};

og__consentdb_t *og__consentdb_prepare(sqlite3 *db)
{
    og__consentdb_t *s = og__xcalloc(1, sizeof(*s));

    s->repo.ops = &ops;
    if (og__sql_prepare_all(db, sql, C_COUNT, s->st) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void og__consentdb_free(og__consentdb_t *s)
{
    if (s == NULL)
        return;
    og__sql_finalize_all(s->st, C_COUNT);
    free(s);
}

og__consent_repo_t *og__consentdb_repo(og__consentdb_t *s)
{
    return &s->repo;
}
