/*
 * journeys_sqlite.c: journey runs and the customer timeline in the SQLite
 * store (journeys_sqlite.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "base/json.h" /* og__json_escape_n */
#include "domain/journeys.h"
#include "backends/sqlite/journeys_sqlite.h"
#include "backends/sqlite/sqlite_util.h"
#include "base/util.h"

enum {
    J_TIMELINE,
    J_ACTIVE,
    J_INSERT,
    J_REPLACE,
    J_CANCEL,
    J_CANCEL_ENTITY,
    J_FAILED,
    J_DUE,
    J_NEXT,
    J_UPDATE,
    J_SENT,
    J_SENT_ANY,
    J_RESUME,
    J_THREAD,
    J_COUNT
};

static const char *const sql[J_COUNT] = {
    [J_TIMELINE] = "INSERT INTO timeline (customer, at_ms, kind, type, "
                   "channel, ref, correlation, journey, detail) VALUES (?1, "
                   "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [J_ACTIVE] = "SELECT id FROM journey_runs WHERE state = 0 AND journey = "
                 "?2 AND entity = ?3 AND customer IN " FAMILY " LIMIT 1",
    [J_INSERT] = "INSERT INTO journey_runs (journey, customer, entity, "
                 "state, step, waited, due_ms, correlation, trigger_id, "
                 "trigger, tried, started_ms, updated_ms) VALUES (?1, ?2, "
                 "?3, 0, 0, ?4, ?5, ?6, ?7, ?8, '', ?9, ?9)",
    [J_REPLACE] = "UPDATE journey_runs SET state = 4, updated_ms = ?4, note "
                  "= ?5 WHERE state = 0 AND journey = ?2 AND entity = ?3 AND "
                  "customer IN " FAMILY " RETURNING id, correlation",
    [J_CANCEL] = "UPDATE journey_runs SET state = 2, updated_ms = ?4, note = "
                 "?5 WHERE state = 0 AND journey = ?2 AND customer IN " FAMILY
                 " RETURNING id, correlation, entity",
    [J_CANCEL_ENTITY] = "UPDATE journey_runs SET state = 2, updated_ms = ?4, "
                        "note = ?5 WHERE state = 0 AND journey = ?2 AND "
                        "customer IN " FAMILY " AND entity = ?3 RETURNING "
                        "id, correlation, entity",
    /* back to the step whose message failed, unless the run ended
     * otherwise than by completing */
    [J_FAILED] = "UPDATE journey_runs SET state = 0, step = ?2, waited = 1, "
                 "due_ms = ?3, tried = ?4, updated_ms = ?3, note = ?5 WHERE "
                 "id = ?1 AND state IN (0, 1) RETURNING customer, "
                 "correlation, journey",
    [J_DUE] = "SELECT id, journey, customer, entity, correlation, "
              "trigger_id, trigger, step, waited, tried, due_ms, started_ms "
              "FROM journey_runs WHERE state = 0 AND due_ms <= ?1 ORDER BY "
              "due_ms LIMIT ?2",
    [J_NEXT] = "SELECT min(due_ms) FROM journey_runs WHERE state = 0",
    [J_UPDATE] = "UPDATE journey_runs SET state = ?2, step = ?3, waited = "
                 "?4, due_ms = ?5, tried = ?6, updated_ms = ?7, note = ?8 "
                 "WHERE id = ?1",
    [J_SENT] = "SELECT count(*) FROM timeline WHERE customer IN " FAMILY
               " AND at_ms >= ?2 AND type = 'message.send' AND channel = ?3 "
               "AND journey = ?4",
    [J_SENT_ANY] = "SELECT count(*) FROM timeline WHERE customer IN " FAMILY
                   " AND at_ms >= ?2 AND type = 'message.send' AND channel = "
                   "?3",
    /* a reply that names the message (its id: In-Reply-To) finds the
     * conversation */
    [J_THREAD] = "INSERT OR IGNORE INTO thread_keys (channel, key, "
                 "conversation) VALUES (?1, ?2, ?3)",
    [J_RESUME] = "UPDATE journey_runs SET waited = 2, due_ms = ?4, "
                 "updated_ms = ?4 WHERE state = 0 AND journey = ?1 AND entity "
                 "= ?2 AND step = ?3 AND waited = 1 RETURNING id, customer, "
                 "correlation",
};

struct og__jdb_s {
    sqlite3 *db;
    og__custdb_t *cust;
    sqlite3_stmt *st[J_COUNT];
};

og__jdb_t *og__jdb_prepare(sqlite3 *db, og__custdb_t *cust)
{
    og__jdb_t *j = og__xcalloc(1, sizeof(*j));

    j->db = db;
    j->cust = cust;
    if (og__sql_prepare_all(db, sql, J_COUNT, j->st) != 0) {
        free(j);
        return NULL;
    }
    return j;
}

void og__jdb_free(og__jdb_t *j)
{
    if (j == NULL)
        return;
    og__sql_finalize_all(j->st, J_COUNT);
    free(j);
}

static sqlite3_stmt *use(og__jdb_t *j, int which)
{
    return og__sql_use(j->st[which]);
}

static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
    if (s != NULL && s[0] != '\0')
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int done(sqlite3_stmt *st)
{
    return og__sql_done(st);
}

/* One timeline row. */
static int timeline(og__jdb_t *j, const char *customer, uint64_t at,
                    const char *kind, const char *type, const char *channel,
                    const char *ref, const char *correlation,
                    const char *journey, const char *detail)
{
    sqlite3_stmt *st = use(j, J_TIMELINE);

    sqlite3_bind_text(st, 1, customer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)at);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    bind_opt(st, 4, type);
    bind_opt(st, 5, channel);
    bind_opt(st, 6, ref);
    bind_opt(st, 7, correlation);
    bind_opt(st, 8, journey);
    bind_opt(st, 9, detail);
    return done(st);
}

/* Ends active runs with state (2 cancelled by it, 4 replaced by it), with
 * a timeline row for each. */
static int end_runs(og__jdb_t *j, int which, const og__store_item_t *it,
                    const og__jmatch_t *m, const char *what)
{
    sqlite3_stmt *st = use(j, which);
    char *note = og__xasprintf("%s by %s %s", what,
                               it->type ? it->type : "event", it->event_id);
    int rc;

    sqlite3_bind_text(st, 1, it->customer, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->journey, -1, SQLITE_STATIC);
    if (which != J_CANCEL) /* J_CANCEL: every entity of the customer */
        sqlite3_bind_text(st, 3, m->entity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)it->received_ms);
    sqlite3_bind_text(st, 5, note, -1, SQLITE_STATIC);
    /* RETURNING rows: collected first, the statement is reused below */
    {
        struct ended {
            int64_t id;
            char corr[72];
        } *v = NULL;
        size_t n = 0, i;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            v = og__xrealloc(v, (n + 1) * sizeof(*v));
            v[n].id = sqlite3_column_int64(st, 0);
            snprintf(v[n].corr, sizeof(v[n].corr), "%s",
                     (const char *)sqlite3_column_text(st, 1));
            n++;
        }
        sqlite3_reset(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        for (i = 0; i < n && rc == SQLITE_OK; i++) {
            char ref[24];

            snprintf(ref, sizeof(ref), "%lld", (long long)v[i].id);
            rc = timeline(j, it->customer, it->received_ms, "journey",
                          which == J_REPLACE ? "journey.replaced"
                                             : "journey.cancelled",
                          it->source, ref, v[i].corr, m->journey, note);
        }
        free(v);
    }
    free(note);
    return rc;
}

static int start_run(og__jdb_t *j, const og__store_item_t *it,
                     const og__jmatch_t *m)
{
    sqlite3_stmt *st;
    char corr[40], ref[24];
    int rc;

    if (m->concurrency == OG__JC_ONE) {
        st = use(j, J_ACTIVE);
        sqlite3_bind_text(st, 1, it->customer, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, m->journey, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, m->entity, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_ROW)
            return SQLITE_OK; /* one is running: this trigger is ignored */
        if (rc != SQLITE_DONE)
            return rc;
    } else if (m->concurrency == OG__JC_RESTART &&
               (rc = end_runs(j, J_REPLACE, it, m, "replaced")) != SQLITE_OK) {
        return rc;
    }
    og__uuid7_at(corr, it->received_ms);
    st = use(j, J_INSERT);
    sqlite3_bind_text(st, 1, m->journey, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, it->customer, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->entity, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, m->waited);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)m->due_ms);
    sqlite3_bind_text(st, 6, corr, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, it->event_id, -1, SQLITE_STATIC);
    if (it->stamped != NULL)
        sqlite3_bind_blob(st, 8, it->stamped, (int)it->stamped_len,
                          SQLITE_STATIC);
    else
        sqlite3_bind_blob(st, 8, it->body, (int)it->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)it->received_ms);
    if ((rc = done(st)) != SQLITE_OK)
        return rc;
    snprintf(ref, sizeof(ref), "%lld",
             (long long)sqlite3_last_insert_rowid(j->db));
    return timeline(j, it->customer, it->received_ms, "journey",
                    "journey.started", it->source, ref, corr, m->journey,
                    m->entity[0] ? m->entity : NULL);
}

static int failed_run(og__jdb_t *j, const og__store_item_t *it,
                      const og__jmatch_t *m)
{
    sqlite3_stmt *st = use(j, J_FAILED);
    char *note = og__xasprintf("message failed on %s: falling back",
                               m->tried[0] ? m->tried : "its channel");
    char cust[40] = "", corr[72] = "", jn[136] = "", ref[24];
    int rc;

    sqlite3_bind_int64(st, 1, m->run);
    sqlite3_bind_int(st, 2, m->step);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)it->received_ms);
    sqlite3_bind_text(st, 4, m->tried, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, note, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(cust, sizeof(cust), "%s", sqlite3_column_text(st, 0));
        snprintf(corr, sizeof(corr), "%s", sqlite3_column_text(st, 1));
        snprintf(jn, sizeof(jn), "%s", sqlite3_column_text(st, 2));
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    if (rc == SQLITE_OK && cust[0] != '\0') {
        snprintf(ref, sizeof(ref), "%lld", (long long)m->run);
        rc = timeline(j, cust, it->received_ms, "journey", "journey.fallback",
                      NULL, ref, corr, jn, note);
    }
    free(note);
    return rc;
}

/* The event a step waits for came: its runs go on now. */
static int resume_runs(og__jdb_t *j, const og__store_item_t *it,
                       const og__jmatch_t *m)
{
    sqlite3_stmt *st = use(j, J_RESUME);
    struct resumed {
        int64_t id;
        char cust[40], corr[72];
    } *v = NULL;
    size_t n = 0, i;
    char *note;
    int rc;

    sqlite3_bind_text(st, 1, m->journey, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->entity, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, m->step);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)it->received_ms);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        v = og__xrealloc(v, (n + 1) * sizeof(*v));
        v[n].id = sqlite3_column_int64(st, 0);
        snprintf(v[n].cust, sizeof(v[n].cust), "%s",
                 sqlite3_column_text(st, 1));
        snprintf(v[n].corr, sizeof(v[n].corr), "%s",
                 sqlite3_column_text(st, 2));
        n++;
    }
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    note = og__xasprintf("resumed by %s %s", it->type ? it->type : "event",
                         it->event_id);
    for (i = 0; i < n && rc == SQLITE_OK; i++) {
        char ref[24];

        snprintf(ref, sizeof(ref), "%lld", (long long)v[i].id);
        rc = timeline(j, v[i].cust, it->received_ms, "journey",
                      "journey.resumed", it->source, ref, v[i].corr, m->journey,
                      note);
    }
    free(note);
    free(v);
    return rc;
}

int og__jdb_accepted(og__jdb_t *j, const og__store_item_t *it)
{
    size_t i;
    int rc = SQLITE_OK;

    if (it->customer[0] != '\0' && it->type != NULL)
        rc = timeline(j, it->customer, it->received_ms, "event", it->type,
                      it->source, it->event_id,
                      it->person ? it->person->correlation : NULL, NULL, NULL);
    for (i = 0; i < it->njm && rc == SQLITE_OK; i++) {
        const og__jmatch_t *m = &it->jm[i];

        if (m->op == OG__JM_FAILED)
            rc = failed_run(j, it, m);
        else if (m->op == OG__JM_RESUME)
            rc = resume_runs(j, it, m);
        else if (it->customer[0] == '\0')
            continue; /* journeys are per customer */
        else if (m->op == OG__JM_CANCEL)
            rc = end_runs(j, m->entity[0] ? J_CANCEL_ENTITY : J_CANCEL, it, m,
                          "cancelled");
        else
            rc = start_run(j, it, m);
    }
    return rc;
}

/* ---- firing ------------------------------------------------------------ */

struct env {
    og__jdb_t *j;
    const og__trait_rules_t *rules;
    const og__consent_rules_t *consent;
    int rc; /* the first store error */
};

static int env_profile(void *st, const char *customer, msgpack_packer *pk,
                       char canonical[40])
{
    struct env *e = st;
    int rc = og__custdb_pack(e->j->cust, customer, e->rules, pk, canonical);

    if (rc == -2 && e->rc == SQLITE_OK)
        e->rc = SQLITE_ERROR;
    return rc == 0 ? 0 : -1;
}

static int env_consent(void *st, const char *customer, const char *purpose,
                       const char *channel)
{
    struct env *e = st;
    int allowed = 1;
    char why[256];

    if (e->consent == NULL)
        return 1;
    if (og__consent_decide(og__custdb_consent_repo(e->j->cust), customer,
                           purpose, channel, e->consent, &allowed, why,
                           sizeof(why)) != OG_OK) {
        if (e->rc == SQLITE_OK)
            e->rc = SQLITE_ERROR;
        return 0;
    }
    return allowed;
}

static uint64_t env_sent(void *st, const char *customer, const char *channel,
                         const char *journey, uint64_t since)
{
    struct env *e = st;
    sqlite3_stmt *q = use(e->j, journey ? J_SENT : J_SENT_ANY);
    uint64_t n = 0;

    sqlite3_bind_text(q, 1, customer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)since);
    sqlite3_bind_text(q, 3, channel, -1, SQLITE_STATIC);
    if (journey != NULL)
        sqlite3_bind_text(q, 4, journey, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return n;
}

static char *col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);

    return og__xstrdup(t ? (const char *)t : "");
}

/* One due run as read, owned. */
struct due {
    og__run_t run;
    char *s[6];
    uint8_t *trigger;
};

og_err_t og__jdb_fire(og__jdb_t *j, uint64_t now_ms, size_t limit,
                      og__fire_fn fn, void *data,
                      const og__trait_rules_t *rules,
                      const og__consent_rules_t *consent,
                      og__custdb_insert_fn insert, void *ctx, size_t *fired,
                      uint64_t *next_due, char *err, size_t errlen)
{
    struct env e = {j, rules, consent, SQLITE_OK};
    og__fire_env_t env = {&e, env_profile, env_consent, env_sent};
    sqlite3_stmt *st = use(j, J_DUE);
    struct due *v = NULL;
    size_t n = 0, i, k;
    int rc;

    *fired = 0;
    *next_due = 0;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)now_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct due *d;
        int tl = sqlite3_column_bytes(st, 6);

        v = og__xrealloc(v, (n + 1) * sizeof(*v));
        d = &v[n++];
        memset(d, 0, sizeof(*d));
        d->run.id = sqlite3_column_int64(st, 0);
        d->run.journey = d->s[0] = col(st, 1);
        d->run.customer = d->s[1] = col(st, 2);
        d->run.entity = d->s[2] = col(st, 3);
        d->run.correlation = d->s[3] = col(st, 4);
        d->run.trigger_id = d->s[4] = col(st, 5);
        d->trigger = og__xmalloc(tl > 0 ? (size_t)tl : 1);
        memcpy(d->trigger, sqlite3_column_blob(st, 6), (size_t)tl);
        d->run.trigger = d->trigger;
        d->run.trigger_len = (size_t)tl;
        d->run.step = sqlite3_column_int(st, 7);
        d->run.waited = sqlite3_column_int(st, 8);
        d->run.tried = d->s[5] = col(st, 9);
        d->run.due_ms = (uint64_t)sqlite3_column_int64(st, 10);
        d->run.started_ms = (uint64_t)sqlite3_column_int64(st, 11);
    }
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    for (i = 0; i < n && rc == SQLITE_OK && e.rc == SQLITE_OK; i++) {
        og__step_result_t res;
        og__store_item_t ev;
        og_err_t frc;
        char ref[24];
        int parked = 0; /* its journey is gone: no timeline row */

        memset(&ev, 0, sizeof(ev));
        frc = fn(data, &env, &v[i].run, &res, &ev);
        if (frc == OG_ERR_NOT_FOUND && e.rc == SQLITE_OK) {
            /* Its journey was removed or disabled: the run waits an hour
             * (it goes on if the journey comes back), out of the way of
             * the runs that are due. */
            memset(&res, 0, sizeof(res));
            res.state = OG__RUN_ACTIVE;
            res.step = v[i].run.step;
            res.waited = v[i].run.waited;
            res.due_ms = now_ms + 3600 * 1000;
            snprintf(res.tried, sizeof(res.tried), "%s", v[i].run.tried);
            snprintf(res.note, sizeof(res.note),
                     "journey '%s' is not configured or not enabled",
                     v[i].run.journey);
            frc = OG_OK;
            parked = 1;
        }
        if (frc != OG_OK || e.rc != SQLITE_OK) {
            free(res.body);
            continue;
        }
        if (res.body != NULL) {
            ev.event_id = res.id;
            ev.body = res.body;
            ev.len = res.len;
            if (ev.received_ms == 0) /* else the real time, for the outbox */
                ev.received_ms = now_ms;
            snprintf(ev.customer, sizeof(ev.customer), "%s", res.customer);
            rc = insert(ctx, &ev);
            if (rc == SQLITE_CONSTRAINT) /* made before: a duplicate */
                rc = SQLITE_OK;
            else if (rc == SQLITE_OK)
                rc = timeline(j, res.customer, now_ms, "event", res.type,
                              res.channel[0] ? res.channel : "core", res.id,
                              v[i].run.correlation, v[i].run.journey, NULL);
            if (rc == SQLITE_OK && res.conversation[0] && res.channel[0]) {
                st = use(j, J_THREAD);
                sqlite3_bind_text(st, 1, res.channel, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, res.id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, res.conversation, -1, SQLITE_STATIC);
                rc = done(st);
            }
        }
        free(res.body);
        if (rc == SQLITE_OK && res.traits != NULL &&
            og__traits_apply(og__custdb_trait_repo(j->cust), res.customer,
                             res.traits, res.traits_len, now_ms) != OG_OK)
            rc = sqlite3_errcode(j->db) != SQLITE_OK ? sqlite3_errcode(j->db)
                                                     : SQLITE_ERROR;
        if (rc != SQLITE_OK)
            break;
        st = use(j, J_UPDATE);
        sqlite3_bind_int64(st, 1, v[i].run.id);
        sqlite3_bind_int(st, 2, (int)res.state);
        sqlite3_bind_int(st, 3, res.step);
        sqlite3_bind_int(st, 4, res.waited);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)res.due_ms);
        sqlite3_bind_text(st, 6, res.tried, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)now_ms);
        bind_opt(st, 8, res.note);
        if ((rc = done(st)) != SQLITE_OK)
            break;
        /* a row for what the step did (waits only rescheduled aside) */
        snprintf(ref, sizeof(ref), "%lld", (long long)v[i].run.id);
        if (!parked && (res.step != v[i].run.step ||
                        res.state != OG__RUN_ACTIVE || res.note[0] != '\0'))
            rc = timeline(j, res.customer[0] ? res.customer : v[i].run.customer,
                          now_ms, "journey",
                          res.state == OG__RUN_COMPLETED   ? "journey.completed"
                          : res.state == OG__RUN_EXITED    ? "journey.exited"
                          : res.state == OG__RUN_CANCELLED ? "journey.cancelled"
                                                           : "journey.step",
                          res.channel[0] ? res.channel : NULL, ref,
                          v[i].run.correlation, v[i].run.journey,
                          res.note[0] ? res.note : NULL);
        (*fired)++;
    }
    for (i = 0; i < n; i++) {
        for (k = 0; k < 6; k++)
            free(v[i].s[k]);
        free(v[i].trigger);
    }
    free(v);
    if (rc == SQLITE_OK && e.rc != SQLITE_OK)
        rc = e.rc;
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "store: %s", sqlite3_errmsg(j->db));
        return OG_ERR_IO;
    }
    st = use(j, J_NEXT);
    if (sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        *next_due = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return OG_OK;
}

/* ---- the timeline -------------------------------------------------------- */

/* Column i as text, NULL when it is NULL. */
static const char *text_or_null(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

og_err_t og__jdb_timeline(og__jdb_t *j, const char *id, size_t limit,
                          char canon[40], const og__timeline_reader_t *rd)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(j->db,
                           "SELECT coalesce(merged_into, id) FROM customers "
                           "WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(canon, 40, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return OG_ERR_NOT_FOUND;
    if (rc != SQLITE_ROW)
        return OG_ERR_IO;
    /* the newest limit entries, shown oldest first */
    if (sqlite3_prepare_v2(
            j->db,
            "SELECT * FROM (SELECT at_ms, kind, type, channel, ref, "
            "correlation, journey, detail, seq FROM timeline WHERE customer "
            "IN " FAMILY " ORDER BY at_ms DESC, seq DESC LIMIT ?2) ORDER BY "
            "at_ms, seq",
            -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        og__timeline_entry_t e;

        e.at_ms = (uint64_t)sqlite3_column_int64(st, 0);
        e.kind = text_or_null(st, 1);
        e.type = text_or_null(st, 2);
        e.channel = text_or_null(st, 3);
        e.ref = text_or_null(st, 4);
        e.correlation = text_or_null(st, 5);
        e.journey = text_or_null(st, 6);
        e.detail = text_or_null(st, 7);
        rd->entry(rd->data, &e);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return OG_ERR_IO;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT id, journey, entity, state, step, due_ms, "
                           "correlation, trigger_id, started_ms, updated_ms, "
                           "note FROM journey_runs WHERE customer IN " FAMILY
                           " ORDER BY started_ms, id",
                           -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        og__run_view_t r;

        r.id = sqlite3_column_int64(st, 0);
        r.journey = text_or_null(st, 1);
        r.entity = text_or_null(st, 2);
        r.state = sqlite3_column_int(st, 3);
        r.step = sqlite3_column_int(st, 4);
        r.due_ms = (uint64_t)sqlite3_column_int64(st, 5);
        r.correlation = text_or_null(st, 6);
        r.trigger = text_or_null(st, 7);
        r.started_ms = (uint64_t)sqlite3_column_int64(st, 8);
        r.updated_ms = (uint64_t)sqlite3_column_int64(st, 9);
        r.note = text_or_null(st, 10);
        rd->run(rd->data, &r);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? OG_OK : OG_ERR_IO;
}
