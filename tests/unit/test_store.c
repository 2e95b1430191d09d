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

#include "base/backoff.h"
#include "store/store.h"
#include "testutil.h"

static char *dir;

static og__store_t *open_store(char *err)
{
    og__store_opts_t o = {dir, OG__DURABLE_POWER, 60000, 0};

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
    {
        char want[128];

        snprintf(want, sizeof(want),
                 "schema version 99 was written by a newer omnigate (this "
                 "one knows up to %d)",
                 OG__STORE_SCHEMA_VERSION);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    }
    CU_ASSERT_EQUAL(sql("PRAGMA user_version", &v), 0);
    CU_ASSERT_EQUAL(v, 99);
    {
        char setv[64];

        snprintf(setv, sizeof(setv), "PRAGMA user_version = %d",
                 OG__STORE_SCHEMA_VERSION);
        CU_ASSERT_EQUAL(sql(setv, NULL), 0);
    }
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

static void complete(og__store_t *s, int64_t row, og__outcome_t o,
                     uint64_t next, const char *error)
{
    CU_ASSERT_EQUAL(og__store_complete(s, row, o, next, error), OG_OK);
}

static void test_outbox(void)
{
    static const char *const to1[] = {"hook"};
    char err[512] = "";
    og__store_t *s = open_store(err);
    og__store_item_t batch[3];
    struct rows rs, again;
    uint64_t n = 0, now = 5000000, next = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    batch[0] = item("o1", NULL, 1, now, to1, 1);
    batch[1] = item("o2", NULL, 2, now + 1, to1, 1);
    batch[2] = item("o3", NULL, 3, now + 2, to1, 1);
    CU_ASSERT_EQUAL_FATAL(og__store_accept(s, batch, 3, err, sizeof(err)),
                          OG_OK);

    /* claim two, oldest first; they stay held until their attempt ends */
    memset(&rs, 0, sizeof(rs));
    CU_ASSERT_EQUAL(s->ops->claim(s, "hook", now + 10, 2, collect, &rs, &next),
                    OG_OK);
    CU_ASSERT_EQUAL_FATAL(rs.n, 2);
    CU_ASSERT_STRING_EQUAL(rs.event[0], "o1");
    CU_ASSERT_STRING_EQUAL(rs.event[1], "o2");
    CU_ASSERT_EQUAL(next, now + 2); /* o3 still waits */
    memset(&again, 0, sizeof(again));
    s->ops->claim(s, "hook", now + 99999, 10, collect, &again, &next);
    CU_ASSERT_EQUAL_FATAL(again.n, 1); /* only o3: the others are held */
    CU_ASSERT_STRING_EQUAL(again.event[0], "o3");
    CU_ASSERT_EQUAL(next, 0);

    /* o1 delivered, o2 retried later with its error; recording o1 again
     * changes nothing (it is no longer due) */
    complete(s, rs.id[0], OG__OUTCOME_DELIVERED, now, NULL);
    complete(s, rs.id[1], OG__OUTCOME_RETRY, now + 90000, "HTTP 503");
    complete(s, rs.id[0], OG__OUTCOME_RETRY, now, NULL);
    CU_ASSERT_EQUAL(s->ops->outbox_count(s, "hook", &n), OG_OK);
    CU_ASSERT_EQUAL(n, 2);
    /* o3 released without an attempt: due again, attempts kept at 0 */
    complete(s, again.id[0], OG__OUTCOME_RELEASE, now + 20, NULL);
    memset(&again, 0, sizeof(again));
    s->ops->claim(s, "hook", now + 89999, 10, collect, &again, &next);
    CU_ASSERT_EQUAL_FATAL(again.n, 1);
    CU_ASSERT_STRING_EQUAL(again.event[0], "o3");
    CU_ASSERT_EQUAL(again.attempts[0], 0);
    CU_ASSERT_EQUAL(next, now + 90000); /* o2's retry */
    complete(s, again.id[0], OG__OUTCOME_DEAD, now + 89999, "HTTP 410 Gone");
    /* at its retry time o2 comes back with its attempt and error */
    memset(&again, 0, sizeof(again));
    s->ops->claim(s, "hook", now + 90000, 10, collect, &again, &next);
    CU_ASSERT_EQUAL_FATAL(again.n, 1);
    CU_ASSERT_STRING_EQUAL(again.event[0], "o2");
    CU_ASSERT_EQUAL(again.attempts[0], 1);
    CU_ASSERT_STRING_EQUAL(again.error[0], "HTTP 503");

    /* a restart (the store opened again) ends every hold: o2 is due */
    og__store_close(s);
    s = open_store(err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    memset(&again, 0, sizeof(again));
    s->ops->claim(s, "hook", now + 90000, 10, collect, &again, &next);
    CU_ASSERT_EQUAL_FATAL(again.n, 1);
    CU_ASSERT_STRING_EQUAL(again.event[0], "o2");

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
    memset(&rs, 0, sizeof(rs));
    s->ops->claim(s, "hook", now + 100000, 10, collect, &rs, &next);
    CU_ASSERT_EQUAL_FATAL(rs.n, 1); /* the requeued o3; o2 is held */
    complete(s, rs.id[0], OG__OUTCOME_DEAD, now, "x");
    complete(s, again.id[0], OG__OUTCOME_DEAD, now, "y");
    CU_ASSERT_EQUAL(s->ops->dead_purge(s, "other", &n), OG_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(s->ops->dead_purge(s, "hook", &n), OG_OK);
    CU_ASSERT_EQUAL(n, 2);
    og__store_close(s);
}

struct tally {
    uint64_t due, delivered, dead;
};

static void tally(void *data, const char *channel, int state, uint64_t count)
{
    struct tally *t = data;

    if (strcmp(channel, "held") != 0)
        return;
    if (state == 0)
        t->due = count;
    else if (state == 1)
        t->delivered = count;
    else
        t->dead = count;
}

static void tally_runs(void *data, const char *channel, int state,
                       uint64_t count)
{
    if (strcmp(channel, "runs") == 0)
        tally(data, "held", state, count);
}

/* Rows the caller holds in memory are not claimed; results and new events
 * commit together; pruning keeps what is not finished. */
static void test_held_commit_prune(void)
{
    static const char *const to1[] = {"held"};
    static const unsigned char held[] = {1}, free_row[] = {0};
    char err[512] = "", *outer = dir, sub[600];
    og__store_t *s;
    og__store_item_t batch[2];
    og__store_done_t done;
    int64_t rows[2] = {0, 0};
    struct rows rs;
    struct tally t = {0, 0, 0};
    uint64_t now = 7000000, next, n = 0;

    /* a database of its own, so that other tests' events do not count */
    snprintf(sub, sizeof(sub), "%s/held", outer);
    dir = sub;
    s = open_store(err);
    dir = outer;
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    batch[0] = item("h1", NULL, 1, now, to1, 1);
    batch[0].held = held;
    batch[0].rows = &rows[0];
    batch[1] = item("h2", NULL, 2, now, to1, 1);
    batch[1].held = free_row;
    batch[1].rows = &rows[1];
    CU_ASSERT_EQUAL_FATAL(og__store_accept(s, batch, 2, err, sizeof(err)),
                          OG_OK);
    CU_ASSERT_TRUE(rows[0] > 0 && rows[1] > rows[0]);
    memset(&rs, 0, sizeof(rs));
    s->ops->claim(s, "held", now, 10, collect, &rs, &next);
    CU_ASSERT_EQUAL_FATAL(rs.n, 1);
    CU_ASSERT_STRING_EQUAL(rs.event[0], "h2");
    /* h1 delivered and a new event h3, in one commit */
    done.row = rows[0];
    done.outcome = OG__OUTCOME_DELIVERED;
    done.next_ms = now;
    done.error = NULL;
    batch[0] = item("h3", NULL, 3, now + 5, to1, 1);
    CU_ASSERT_EQUAL(
        s->ops->commit(s, batch, 1, &done, 1, NULL, err, sizeof(err)), OG_OK);
    CU_ASSERT_EQUAL(s->ops->counts(s, tally, &t), OG_OK);
    CU_ASSERT_EQUAL(t.due, 2);       /* h2 held by the claim, h3 new */
    CU_ASSERT_EQUAL(t.delivered, 0); /* a delivered row is deleted */
    /* pruning: of this test's events only h1 is finished */
    CU_ASSERT_EQUAL(s->ops->prune(s, now + 1000, 100, &n), OG_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(s->ops->prune(s, now + 1000, 100, &n), OG_OK);
    CU_ASSERT_EQUAL(n, 0);
    memset(&t, 0, sizeof(t));
    s->ops->counts(s, tally, &t);
    CU_ASSERT_EQUAL(t.delivered, 0);
    CU_ASSERT_EQUAL(t.due, 2);
    og__store_close(s);
}

/* Delivered rows are deleted, runs of consecutive rows in one statement;
 * a row in the middle of a run that is not done stays. */
static void test_delivered_runs(void)
{
    static const char *const to1[] = {"runs"};
    char err[512] = "", *outer = dir, sub[600];
    og__store_t *s;
    og__store_item_t batch[5];
    og__store_done_t done[4];
    int64_t rows[5];
    struct tally t = {0, 0, 0};
    char ids[5][8];
    size_t i;

    snprintf(sub, sizeof(sub), "%s/runs", outer);
    dir = sub;
    s = open_store(err);
    dir = outer;
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (i = 0; i < 5; i++) {
        snprintf(ids[i], sizeof(ids[i]), "r%zu", i);
        batch[i] = item(ids[i], NULL, i, 8000000, to1, 1);
        batch[i].rows = &rows[i];
    }
    CU_ASSERT_EQUAL_FATAL(og__store_accept(s, batch, 5, err, sizeof(err)),
                          OG_OK);
    /* rows 0, 1 (a run), 3 delivered; 4 retried; 2 untouched */
    for (i = 0; i < 4; i++) {
        done[i].row = rows[i == 2 ? 3 : i == 3 ? 4 : i];
        done[i].outcome = i == 3 ? OG__OUTCOME_RETRY : OG__OUTCOME_DELIVERED;
        done[i].next_ms = 9000000;
        done[i].error = i == 3 ? "HTTP 503" : NULL;
    }
    CU_ASSERT_EQUAL(s->ops->commit(s, NULL, 0, done, 4, NULL, err, sizeof(err)),
                    OG_OK);
    CU_ASSERT_EQUAL(s->ops->counts(s, tally_runs, &t), OG_OK);
    CU_ASSERT_EQUAL(t.due, 2); /* row 2 and the retried row 4 */
    CU_ASSERT_EQUAL(t.delivered, 0);
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
                          1000, 0};

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
    CU_add_test(s, "outbox: claim, hold, complete, dead letters", test_outbox);
    CU_add_test(s, "outbox: held rows, one commit, pruning",
                test_held_commit_prune);
    CU_add_test(s, "outbox: delivered rows deleted in runs",
                test_delivered_runs);
    CU_add_test(s, "retry schedule", test_backoff);
    CU_add_test(s, "unwritable state directory", test_unwritable);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
