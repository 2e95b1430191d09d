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

#include "backoff.h"
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

struct rows {
    int64_t id[16];
    char event[16][16];
    uint32_t attempts[16];
    char error[16][64];
    size_t n;
};

static void collect(void *data, const og__outbox_row_t *r)
{
    struct rows *rs = data;

    if (rs->n < 16) {
        rs->id[rs->n] = r->id;
        snprintf(rs->event[rs->n], 16, "%s", r->event_id);
        rs->attempts[rs->n] = r->attempts;
        snprintf(rs->error[rs->n], 64, "%s",
                 r->last_error ? r->last_error : "");
        rs->n++;
    }
}

static void test_outbox(void)
{
    static const char *const to1[] = {"hook"};
    char err[512] = "";
    og__store_t *s = open_store(err);
    og__store_item_t batch[3];
    struct rows rs;
    uint64_t n = 0, now = 5000000;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    batch[0] = item("o1", NULL, 1, now, to1, 1);
    batch[1] = item("o2", NULL, 2, now + 1, to1, 1);
    batch[2] = item("o3", NULL, 3, now + 2, to1, 1);
    CU_ASSERT_EQUAL_FATAL(og__store_accept(s, batch, 3, err, sizeof(err)),
                          OG_OK);

    /* claim two, oldest first; they are leased for 30 s */
    memset(&rs, 0, sizeof(rs));
    CU_ASSERT_EQUAL(s->ops->claim(s, "hook", now + 10, 2, 30000, collect, &rs),
                    OG_OK);
    CU_ASSERT_EQUAL_FATAL(rs.n, 2);
    CU_ASSERT_STRING_EQUAL(rs.event[0], "o1");
    CU_ASSERT_STRING_EQUAL(rs.event[1], "o2");
    {
        struct rows again;
        memset(&again, 0, sizeof(again));
        s->ops->claim(s, "hook", now + 20, 10, 30000, collect, &again);
        CU_ASSERT_EQUAL(again.n, 1); /* only o3: the others are leased */
        CU_ASSERT_STRING_EQUAL(again.event[0], "o3");
        /* a crash before completion: the lease runs out, o1 is due again */
        memset(&again, 0, sizeof(again));
        s->ops->claim(s, "hook", now + 30011, 1, 30000, collect, &again);
        CU_ASSERT_EQUAL(again.n, 1);
        CU_ASSERT_STRING_EQUAL(again.event[0], "o1");
    }
    /* o1 delivered, o2 retried later with its error, o3 dead */
    CU_ASSERT_EQUAL(
        s->ops->complete(s, rs.id[0], OG__OUTCOME_DELIVERED, now, NULL), OG_OK);
    CU_ASSERT_EQUAL(s->ops->complete(s, rs.id[1], OG__OUTCOME_RETRY,
                                     now + 90000, "HTTP 503"),
                    OG_OK);
    CU_ASSERT_EQUAL(s->ops->complete(s, rs.id[0], OG__OUTCOME_RETRY, now, NULL),
                    OG_ERR_NOT_FOUND); /* already delivered */
    CU_ASSERT_EQUAL(s->ops->outbox_count(s, "hook", &n), OG_OK);
    CU_ASSERT_EQUAL(n, 2);
    {
        struct rows due;

        /* just before o2's retry time only o3 is due (its lease of 30 s
         * from +20 ms has run out) */
        memset(&due, 0, sizeof(due));
        s->ops->claim(s, "hook", now + 89999, 10, 1000, collect, &due);
        CU_ASSERT_EQUAL_FATAL(due.n, 1);
        CU_ASSERT_STRING_EQUAL(due.event[0], "o3");
        CU_ASSERT_EQUAL(s->ops->complete(s, due.id[0], OG__OUTCOME_DEAD,
                                         now + 89999, "HTTP 410 Gone"),
                        OG_OK);
        /* at its retry time o2 comes back with its attempt and error */
        memset(&due, 0, sizeof(due));
        s->ops->claim(s, "hook", now + 90000, 10, 1000, collect, &due);
        CU_ASSERT_EQUAL_FATAL(due.n, 1);
        CU_ASSERT_STRING_EQUAL(due.event[0], "o2");
        CU_ASSERT_EQUAL(due.attempts[0], 1);
        CU_ASSERT_STRING_EQUAL(due.error[0], "HTTP 503");
    }

    /* dead letters: list, requeue, purge */
    memset(&rs, 0, sizeof(rs));
    CU_ASSERT_EQUAL(s->ops->dead_list(s, "hook", collect, &rs), OG_OK);
    CU_ASSERT_EQUAL_FATAL(rs.n, 1);
    CU_ASSERT_STRING_EQUAL(rs.event[0], "o3");
    CU_ASSERT_STRING_EQUAL(rs.error[0], "HTTP 410 Gone");
    CU_ASSERT_EQUAL(s->ops->dead_requeue(s, NULL, 0, now + 100000, &n), OG_OK);
    CU_ASSERT_EQUAL(n, 1);
    memset(&rs, 0, sizeof(rs));
    s->ops->dead_list(s, NULL, collect, &rs);
    CU_ASSERT_EQUAL(rs.n, 0);
    {
        struct rows due;
        memset(&due, 0, sizeof(due));
        s->ops->claim(s, "hook", now + 100000, 10, 1000, collect, &due);
        CU_ASSERT_EQUAL(due.n, 2); /* o2 (lease over) and requeued o3 */
        CU_ASSERT_EQUAL(
            s->ops->complete(s, due.id[0], OG__OUTCOME_DEAD, now, "x"), OG_OK);
        CU_ASSERT_EQUAL(
            s->ops->complete(s, due.id[1], OG__OUTCOME_DEAD, now, "y"), OG_OK);
    }
    CU_ASSERT_EQUAL(s->ops->dead_purge(s, "other", &n), OG_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(s->ops->dead_purge(s, "hook", &n), OG_OK);
    CU_ASSERT_EQUAL(n, 2);
    og__store_close(s);
}

static void test_backoff(void)
{
    og__backoff_t b = {1000, 60000, 3600000};
    uint64_t t0 = 10000000, at;
    uint32_t a;

    /* with the lowest jitter the wait is half of base * 2^(n-1) */
    CU_ASSERT_EQUAL(og__backoff_next(&b, 1, t0, t0, 0, 0), t0 + 500);
    CU_ASSERT_EQUAL(og__backoff_next(&b, 2, t0, t0, 0, 0), t0 + 1000);
    CU_ASSERT_EQUAL(og__backoff_next(&b, 3, t0, t0, 0, 0), t0 + 2000);
    /* with the highest, all of it */
    at = og__backoff_next(&b, 3, t0, t0, 0, 0xffffffffu);
    CU_ASSERT_TRUE(at > t0 + 3990 && at <= t0 + 4000);
    /* capped at max */
    CU_ASSERT_EQUAL(og__backoff_next(&b, 30, t0, t0, 0, 0), t0 + 30000);
    CU_ASSERT_TRUE(og__backoff_next(&b, 200, t0, t0, 0, 0xffffffffu) <=
                   t0 + 60000);
    /* a Retry-After of 2 minutes wins over a shorter backoff */
    CU_ASSERT_EQUAL(og__backoff_next(&b, 1, t0, t0, 120000, 0), t0 + 120000);
    /* never before now, always within [half, full] */
    for (a = 1; a < 40; a++) {
        at = og__backoff_next(&b, a, t0, t0, 0, a * 2654435761u);
        CU_ASSERT_TRUE(at > t0);
    }
    /* past the lifetime: dead letter */
    CU_ASSERT_EQUAL(og__backoff_next(&b, 5, t0 + 3599000, t0, 0, 0), 0);
    CU_ASSERT_EQUAL(og__backoff_next(&b, 1, t0, t0, 3600001, 0), 0);
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
    CU_add_test(s, "outbox: claim, lease, complete, dead letters", test_outbox);
    CU_add_test(s, "retry schedule", test_backoff);
    CU_add_test(s, "unwritable state directory", test_unwritable);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
