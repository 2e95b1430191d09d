/*
 * bench/customers/resolve.c: identity resolution against a store holding
 * N customers (default 1,000,000), on one thread.
 *
 *   resolve STATE_DIR [N] [LOOKUPS]
 *
 * Fills the store through the real commit path (each customer: a verified
 * user id and an email), then resolves LOOKUPS events of random existing
 * customers (a verified user id plus the email, as a web login sends
 * them): each resolution finds the customer, touches both identities and
 * records the channel seen, in transactions of 256 like the daemon's
 * group commit (durability = process: this measures the work, not the
 * disk). Prints resolutions per second and the latency percentiles of
 * single resolutions. A second pass measures whole events (resolution,
 * stamping and the event insert) through og__store_ops.commit.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/sqlite/consent_sqlite.h"
#include "backends/sqlite/customers_sqlite.h"
#include "backends/sqlite/traits_sqlite.h"
#include "event/event.h"
#include "domain/identity.h"
#include "backends/sqlite/sqlite_ckpt.h"
#include "store/store.h"
#include "base/util.h"

#define BATCH 256

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd_state = 88172645463325252ull;
static unsigned long long run_id; /* event ids differ from run to run */

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void keys_of(uint64_t i, og__idkey_t k[2])
{
    memset(k, 0, 2 * sizeof(*k));
    snprintf(k[0].kind, sizeof(k[0].kind), "user");
    snprintf(k[0].value, sizeof(k[0].value), "u%08llu", (unsigned long long)i);
    k[0].verified = 1;
    snprintf(k[1].kind, sizeof(k[1].kind), "email");
    snprintf(k[1].value, sizeof(k[1].value), "c%08llu@example.com",
             (unsigned long long)i);
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Commits n events for customers [from, from+n) (or random existing
 * ones when random is set) through the store; returns elapsed ns. */
static uint64_t commit_events(og__store_t *s, uint64_t from, size_t n,
                              uint64_t ncust, int random, uint64_t *seq)
{
    static const uint8_t body[] = "\x82\xa1v\x01\xa4type\xa9page.view";
    og__store_hooks_t hooks = {.stamp = og__stamp_hook};
    og__store_item_t *it = calloc(BATCH, sizeof(*it));
    og__person_t *p = calloc(BATCH, sizeof(*p));
    og__idkey_t(*k)[2] = calloc(BATCH, sizeof(*k));
    char(*ids)[32] = calloc(BATCH, sizeof(*ids));
    char err[256];
    uint64_t t0 = now_ns();
    size_t done = 0, b, i;

    while (done < n) {
        b = n - done < BATCH ? n - done : BATCH;
        for (i = 0; i < b; i++) {
            uint64_t c = random ? rnd() % ncust : from + done + i;

            keys_of(c, k[i]);
            memset(&p[i], 0, sizeof(p[i]));
            p[i].keys = k[i];
            p[i].nkeys = 2;
            p[i].instance = "web";
            memset(&it[i], 0, sizeof(it[i]));
            snprintf(ids[i], sizeof(ids[i]), "ev-%llx-%llu", run_id,
                     (unsigned long long)(*seq)++);
            it[i].event_id = ids[i];
            it[i].body = body;
            it[i].len = sizeof(body) - 1;
            it[i].received_ms = og__now_ms() + 7ull * 24 * 3600 * 1000;
            it[i].person = &p[i];
        }
        if (s->ops->commit(s, it, b, NULL, 0, &hooks, err, sizeof(err)) !=
            OG_OK) {
            fprintf(stderr, "commit: %s\n", err);
            exit(1);
        }
        for (i = 0; i < b; i++)
            free(it[i].stamped);
        done += b;
    }
    free(it);
    free(p);
    free(k);
    free(ids);
    return now_ns() - t0;
}

/* The latest time the store has seen, so that every run moves on. */
static uint64_t store_clock(sqlite3 *db)
{
    sqlite3_stmt *st;
    uint64_t t = 0;

    sqlite3_prepare_v2(db, "SELECT max(last_ms) FROM customer_channels", -1,
                       &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW)
        t = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return t > og__now_ms() ? t : og__now_ms();
}

static void resolve_pass(sqlite3 *db, og__custdb_t *c, uint64_t n,
                         uint64_t lookups, const char *what, uint64_t later)
{
    uint64_t *lat = calloc(lookups, sizeof(*lat));
    uint64_t clock = store_clock(db) + later, t0, total, commit_ns = 0, a;
    size_t i;

    t0 = now_ns();
    for (i = 0; i < lookups; i++) {
        og__idkey_t k[2];
        og__person_t p;
        og__store_item_t it;

        if (i % BATCH == 0)
            sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        keys_of(rnd() % n, k);
        memset(&p, 0, sizeof(p));
        p.keys = k;
        p.nkeys = 2;
        p.instance = "web";
        memset(&it, 0, sizeof(it));
        it.event_id = "x";
        it.received_ms = clock + i / 1000; /* 1000 per ms */
        it.person = &p;
        a = now_ns();
        if (og__custdb_resolve(c, &it, NULL, NULL, NULL) != SQLITE_OK) {
            fprintf(stderr, "resolve: %s\n", sqlite3_errmsg(db));
            exit(1);
        }
        lat[i] = now_ns() - a;
        if (it.customer[0] == '\0') {
            fprintf(stderr, "no customer resolved\n");
            exit(1);
        }
        if (i % BATCH == BATCH - 1 || i + 1 == lookups) {
            a = now_ns();
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            commit_ns += now_ns() - a;
        }
    }
    total = now_ns() - t0;
    qsort(lat, lookups, sizeof(*lat), cmp);
    printf("resolutions, customers back %s: %llu against %llu customers: "
           "%.0f/s (commits %.0f%% of the time); one resolution: p50 %.1f "
           "us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
           what, (unsigned long long)lookups, (unsigned long long)n,
           (double)lookups / ((double)total / 1e9),
           100.0 * (double)commit_ns / (double)total,
           (double)lat[lookups / 2] / 1e3,
           (double)lat[lookups * 99 / 100] / 1e3,
           (double)lat[lookups * 999 / 1000] / 1e3,
           (double)lat[lookups - 1] / 1e3);
    free(lat);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : NULL;
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    uint64_t lookups = argc > 3 ? strtoull(argv[3], NULL, 10) : 200000;
    og__store_opts_t o = {dir, OG__DURABLE_PROCESS, 3600000, 0};
    char err[512], path[1024];
    og__store_t *s;
    sqlite3 *db;
    og__custdb_t *c;
    og__consentdb_t *consent;
    og__traitdb_t *traits;
    og__ckpt_t *ckpt;
    uint64_t t, seq = 0, have = 0;

    run_id = (unsigned long long)now_ns();
    if (dir == NULL) {
        fprintf(stderr, "usage: resolve STATE_DIR [N] [LOOKUPS]\n");
        return 2;
    }
    s = og__store_open_sqlite(&o, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/state.db", dir);
    /* fill (or top up) to n customers */
    sqlite3_open(path, &db);
    {
        sqlite3_stmt *st;

        sqlite3_prepare_v2(db, "SELECT count(*) FROM customers", -1, &st, NULL);
        if (sqlite3_step(st) == SQLITE_ROW)
            have = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    if (have < n) {
        t = commit_events(s, have, (size_t)(n - have), n, 0, &seq);
        printf("filled %llu customers in %.1f s\n",
               (unsigned long long)(n - have), (double)t / 1e9);
    }
    seq = 100000000ull;

    /* resolution alone, each timed: customers coming back a few minutes
     * after they were last seen (their channel's last seen is written),
     * then a few days later (their identities' last seen too) */
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                    NULL);
    sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    sqlite3_exec(db, "PRAGMA cache_size = -4000", NULL, NULL, NULL);
    /* checkpoints as the store does them */
    ckpt = og__ckpt_start(db, path, "PRAGMA synchronous = NORMAL");
    consent = og__consentdb_prepare(db);
    traits = og__traitdb_prepare(db);
    c = consent && traits ? og__custdb_prepare(db, og__consentdb_repo(consent),
                                               og__traitdb_repo(traits))
                          : NULL;
    if (c == NULL) {
        fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    resolve_pass(db, c, n, lookups, "minutes later", 5ull * 60 * 1000);
    resolve_pass(db, c, n, lookups, "days later", 3ull * 24 * 3600 * 1000);
    og__custdb_free(c);
    og__consentdb_free(consent);
    og__traitdb_free(traits);
    og__ckpt_stop(ckpt);
    sqlite3_close(db);

    /* whole events through the store's commit */
    t = commit_events(s, 0, (size_t)lookups, n, 1, &seq);
    printf("events with resolution through commit: %.0f/s\n",
           (double)lookups / ((double)t / 1e9));
    og__store_close(s);
    return 0;
}
