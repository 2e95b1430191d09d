/*
 * test_store.c: the SQLite store: schema creation and migration, refusal of
 * a newer schema, WAL mode, acceptance with deduplication by event id and
 * vendor key, conflicts, outbox rows, the dedup window, and atomic batches.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "testutil.h"

static char *dir;

static og__store_t *open_store(char *err)
{
    og__store_opts_t o = {dir, OG__DURABLE_POWER, 60000};

    return og__store_open_sqlite(&o, err, 512);
}

/* Runs one SQL statement on the database file directly. */
static int sql(const char *stmt, long long *out)
{
    char path[600];
    sqlite3 *db;
    sqlite3_stmt *st;
    int rc;

    snprintf(path, sizeof(path), "%s/state.db", dir);
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    rc = sqlite3_prepare_v2(db, stmt, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && out != NULL)
            *out = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static og__store_item_t item(const char *id, const char *vendor, uint64_t hash,
                             uint64_t when, const char *const *targets,
                             size_t n)
{
    og__store_item_t it;

    memset(&it, 0, sizeof(it));
    it.event_id = id;
    it.vendor_key = vendor;
    it.content_hash = hash;
    it.body = (const uint8_t *)"\x81\xa1v\x01";
    it.len = 4;
    it.received_ms = when;
    it.targets = targets;
    it.ntargets = n;
    return it;
}

static void test_schema(void)
{
    char err[512] = "";
    og__store_t *s = open_store(err);
    long long v = 0;
    char journal[32] = "";

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->ops->schema_version(s), OG__STORE_SCHEMA_VERSION);
    og__store_close(s);
    /* WAL mode is persistent in the file */
    {
        char path[600];
        sqlite3 *db;
        sqlite3_stmt *st;

        snprintf(path, sizeof(path), "%s/state.db", dir);
        sqlite3_open(path, &db);
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(journal, sizeof(journal), "%s",
                     (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    CU_ASSERT_STRING_EQUAL(journal, "wal");
    /* reopening keeps the version and runs no migration again */
    s = open_store(err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    og__store_close(s);
    CU_ASSERT_EQUAL(sql("PRAGMA user_version", &v), 0);
    CU_ASSERT_EQUAL(v, OG__STORE_SCHEMA_VERSION);

    /* a database from a newer omnigate is refused, untouched */
    CU_ASSERT_EQUAL(sql("PRAGMA user_version = 99", NULL), 0);
    s = open_store(err);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "schema version 99 was written by a "
                                       "newer omnigate (this one knows up "
                                       "to 1)"));
    CU_ASSERT_EQUAL(sql("PRAGMA user_version", &v), 0);
    CU_ASSERT_EQUAL(v, 99);
    CU_ASSERT_EQUAL(sql("PRAGMA user_version = 1", NULL), 0);
}

static void test_accept(void)
{
    static const char *const to2[] = {"crm", "mail"};
    char err[512] = "";
    og__store_t *s = open_store(err);
    og__store_item_t batch[4];
    uint64_t due = 0;
    long long n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    batch[0] = item("e1", "pos/T1", 111, 1000000, to2, 2);
    batch[1] = item("e2", NULL, 222, 1000000, to2, 1);
    CU_ASSERT_EQUAL_FATAL(og__store_accept(s, batch, 2, err, sizeof(err)),
                          OG_OK);
    CU_ASSERT_EQUAL(batch[0].result, OG__ACCEPT_NEW);
    CU_ASSERT_EQUAL(batch[1].result, OG__ACCEPT_NEW);
    CU_ASSERT_EQUAL(s->ops->outbox_count(s, "crm", &due), OG_OK);
    CU_ASSERT_EQUAL(due, 2);
    CU_ASSERT_EQUAL(s->ops->outbox_count(s, "mail", &due), OG_OK);
    CU_ASSERT_EQUAL(due, 1);

    /* same id, same content: duplicate; other content: conflict; the
     * vendor's own id seen again under a new event id: duplicate of e1 */
    batch[0] = item("e1", NULL, 111, 1001000, to2, 2);
    batch[1] = item("e2", NULL, 999, 1001000, to2, 2);
    batch[2] = item("e3", "pos/T1", 111, 1001000, to2, 2);
    batch[3] = item("e4", "pos/T1", 555, 1001000, to2, 2);
    CU_ASSERT_EQUAL_FATAL(og__store_accept(s, batch, 4, err, sizeof(err)),
                          OG_OK);
    CU_ASSERT_EQUAL(batch[0].result, OG__ACCEPT_DUPLICATE);
    CU_ASSERT_EQUAL(batch[1].result, OG__ACCEPT_CONFLICT);
    CU_ASSERT_EQUAL(batch[2].result, OG__ACCEPT_DUPLICATE);
    CU_ASSERT_STRING_EQUAL(batch[2].first_id, "e1");
    CU_ASSERT_EQUAL(batch[3].result, OG__ACCEPT_CONFLICT);
    CU_ASSERT_EQUAL(s->ops->outbox_count(s, "crm", &due), OG_OK);
    CU_ASSERT_EQUAL(due, 2); /* nothing new queued */

    /* after the window (60 s) the id is new again; its old outbox rows go */
    batch[0] = item("e1", NULL, 777, 1000000 + 61000, to2, 1);
    CU_ASSERT_EQUAL_FATAL(og__store_accept(s, batch, 1, err, sizeof(err)),
                          OG_OK);
    CU_ASSERT_EQUAL(batch[0].result, OG__ACCEPT_NEW);
    CU_ASSERT_EQUAL(
        sql("SELECT count(*) FROM outbox WHERE event_id = 'e1'", &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    og__store_close(s);
}

static void test_atomic_batch(void)
{
    static const char *const to1[] = {"crm"};
    char err[512] = "";
    og__store_t *s = open_store(err);
    og__store_item_t batch[2];
    long long before = 0, after = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(sql("SELECT count(*) FROM events", &before), 0);
    /* the second item has a body the schema refuses (NULL, NOT NULL
     * column): the first, already inserted, is rolled back with it */
    batch[0] = item("b1", NULL, 1, 2000000, to1, 1);
    batch[1] = item("b2", NULL, 2, 2000000, to1, 1);
    batch[1].body = NULL;
    batch[1].len = 0;
    CU_ASSERT_NOT_EQUAL(og__store_accept(s, batch, 2, err, sizeof(err)), OG_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "store: "));
    CU_ASSERT_EQUAL(sql("SELECT count(*) FROM events", &after), 0);
    CU_ASSERT_EQUAL(after, before);
    og__store_close(s);
}

static void test_unwritable(void)
{
    char err[512] = "";
    og__store_opts_t o = {"/proc/omnigate-cannot-exist", OG__DURABLE_POWER,
                          1000};

    CU_ASSERT_PTR_NULL(og__store_open_sqlite(&o, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot create state directory "
                                       "/proc/omnigate-cannot-exist"));
}

int main(void)
{
    CU_pSuite s;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    s = CU_add_suite("store", NULL, NULL);
    CU_add_test(s, "schema, WAL, newer schema refused", test_schema);
    CU_add_test(s, "accept, duplicates, conflicts, window", test_accept);
    CU_add_test(s, "a failing batch stores nothing", test_atomic_batch);
    CU_add_test(s, "unwritable state directory", test_unwritable);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
