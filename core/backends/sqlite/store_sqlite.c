/*
 * store_sqlite.c: the SQLite backend of the store, one file state.db in
 * the state directory, WAL journal. Schema changes are numbered
 * migrations recorded in PRAGMA user_version.
 */
#include "config.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backends/sqlite/consent_sqlite.h"
#include "backends/sqlite/customers_sqlite.h"
#include "backends/sqlite/journeys_sqlite.h"
#include "backends/sqlite/stock_sqlite.h"
#include "backends/sqlite/traits_sqlite.h"
#include "backends/sqlite/sqlite_ckpt.h"
#include "backends/sqlite/sqlite_util.h"
#include "store/store.h"
#include "base/util.h"

/* Migration N brings the schema from version N-1 to N. Append only. */
static const char *const migrations[] = {
    /* 1: events with their idempotency keys, and the outbox */
    "CREATE TABLE events ("
    "  id TEXT PRIMARY KEY,"
    "  vendor_key TEXT,"
    "  content_hash INTEGER NOT NULL,"
    "  received_ms INTEGER NOT NULL,"
    "  body BLOB NOT NULL"
    ") STRICT;"
    "CREATE INDEX events_vendor ON events (vendor_key, received_ms)"
    "  WHERE vendor_key IS NOT NULL;"
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY,"
    "  event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,"
    "  channel TEXT NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0," /* 0 due, 1 delivered, 2 dead */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_ms INTEGER NOT NULL,"
    "  last_error TEXT"
    ") STRICT;"
    "CREATE INDEX outbox_due ON outbox (channel, state, next_ms);",
    /* 2: rows held by the running process are not claimed twice */
    "ALTER TABLE outbox ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;"
    /* pruning and replacing an event find its rows without a scan */
    "CREATE INDEX outbox_event ON outbox (event_id);",
    /* 3: delivered rows are deleted (foreign keys are no longer enforced:
     * the code deletes an event's rows itself, and an outbox insert no
     * longer pays a lookup of its event) */
    "DELETE FROM outbox WHERE state = 1;",
    /* 4: pruning finds rows by a set of the outbox's event ids built per
     * run instead of an index every insert and delete maintains */
    "DROP INDEX IF EXISTS outbox_event;",
    /* 5: customers, their identity keys, traits, channels seen, revenue,
     * and the merges that joined them (docs/customers.md) */
    "CREATE TABLE customers ("
    "  id TEXT PRIMARY KEY,"
    "  created_ms INTEGER NOT NULL,"
    "  merged_into TEXT," /* NULL: canonical; else its survivor */
    "  first_channel TEXT NOT NULL,"
    "  orders INTEGER NOT NULL DEFAULT 0"
    ") STRICT;"
    "CREATE INDEX customers_alias ON customers (merged_into)"
    "  WHERE merged_into IS NOT NULL;"
    "CREATE TABLE identities ("
    "  kind TEXT NOT NULL, scope TEXT NOT NULL, value TEXT NOT NULL,"
    "  customer TEXT NOT NULL," /* always a canonical customer */
    "  verified INTEGER NOT NULL,"
    "  first_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (kind, scope, value)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX identities_customer ON identities (customer);"
    "CREATE TABLE traits ("
    "  customer TEXT NOT NULL, name TEXT NOT NULL,"
    "  value BLOB NOT NULL," /* MessagePack */
    "  set_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (customer, name)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE customer_channels ("
    "  customer TEXT NOT NULL, channel TEXT NOT NULL,"
    "  first_ms INTEGER NOT NULL," /* last_ms moves in steps of 1 min */
    "  last_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (customer, channel)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE revenue ("
    "  customer TEXT NOT NULL, currency TEXT NOT NULL,"
    "  amount INTEGER NOT NULL," /* minor units */
    "  PRIMARY KEY (customer, currency)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE merges ("
    "  id INTEGER PRIMARY KEY,"
    "  survivor TEXT NOT NULL, merged TEXT NOT NULL,"
    "  reason_kind TEXT NOT NULL, reason_scope TEXT NOT NULL,"
    "  reason_value TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL, split_ms INTEGER"
    ") STRICT;"
    "CREATE INDEX merges_merged ON merges (merged);"
    "CREATE INDEX merges_survivor ON merges (survivor);"
    "CREATE TABLE merge_keys ("
    "  merge_id INTEGER NOT NULL,"
    "  kind TEXT NOT NULL, scope TEXT NOT NULL, value TEXT NOT NULL"
    ") STRICT;"
    "CREATE INDEX merge_keys_merge ON merge_keys (merge_id);"
    "CREATE TABLE merge_conversations ("
    "  merge_id INTEGER NOT NULL, conversation TEXT NOT NULL"
    ") STRICT;"
    "CREATE INDEX merge_conversations_merge ON merge_conversations"
    "  (merge_id);"
    /* consent statements: the latest per purpose and channel */
    "CREATE TABLE consents ("
    "  customer TEXT NOT NULL, purpose TEXT NOT NULL, channel TEXT NOT NULL,"
    "  granted INTEGER NOT NULL, source TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (customer, purpose, channel)"
    ") STRICT, WITHOUT ROWID;"
    /* conversations and the channel-native thread keys that find them */
    "CREATE TABLE conversations ("
    "  id TEXT PRIMARY KEY, customer TEXT NOT NULL,"
    "  state INTEGER NOT NULL," /* 0 open, 1 resolved */
    "  opened_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  resolved_ms INTEGER, last_channel TEXT NOT NULL,"
    "  messages INTEGER NOT NULL DEFAULT 0"
    ") STRICT;"
    "CREATE INDEX conversations_customer ON conversations (customer,"
    "  updated_ms);"
    "CREATE TABLE thread_keys ("
    "  channel TEXT NOT NULL, key TEXT NOT NULL, conversation TEXT NOT NULL,"
    "  PRIMARY KEY (channel, key)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX thread_keys_conversation ON thread_keys (conversation);"
    /* the customer of each stored event, for erasure */
    "ALTER TABLE events ADD COLUMN customer TEXT;"
    "CREATE INDEX events_customer ON events (customer)"
    "  WHERE customer IS NOT NULL;"
    /* erasures done: no personal data, only what was removed */
    "CREATE TABLE erasures ("
    "  id INTEGER PRIMARY KEY, customer TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    "  customers INTEGER NOT NULL, identities INTEGER NOT NULL,"
    "  events INTEGER NOT NULL, deliveries INTEGER NOT NULL,"
    "  conversations INTEGER NOT NULL"
    ") STRICT;",
    /* 6: journey runs and the customer timeline (docs/journeys.md) */
    "CREATE TABLE journey_runs ("
    "  id INTEGER PRIMARY KEY,"
    "  journey TEXT NOT NULL, customer TEXT NOT NULL,"
    "  entity TEXT NOT NULL,"   /* '' when the journey has none */
    "  state INTEGER NOT NULL," /* og__run_state_t */
    "  step INTEGER NOT NULL, waited INTEGER NOT NULL,"
    "  due_ms INTEGER NOT NULL,"
    "  correlation TEXT NOT NULL, trigger_id TEXT NOT NULL,"
    "  trigger BLOB NOT NULL," /* the trigger event's envelope */
    "  tried TEXT NOT NULL,"   /* channels a message failed on */
    "  started_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  note TEXT"
    ") STRICT;"
    "CREATE INDEX journey_runs_due ON journey_runs (due_ms) WHERE state = 0;"
    "CREATE INDEX journey_runs_customer ON journey_runs (customer, journey);"
    "CREATE TABLE timeline ("
    "  seq INTEGER PRIMARY KEY,"
    "  customer TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL," /* event, journey */
    "  type TEXT, channel TEXT, ref TEXT, correlation TEXT, journey TEXT,"
    "  detail TEXT"
    ") STRICT;"
    "CREATE INDEX timeline_customer ON timeline (customer, at_ms);",
    /* 7: shared stock and orders (docs/stock.md); runs that wait for an
     * event about their entity */
    "CREATE TABLE stock ("
    "  sku TEXT NOT NULL, location TEXT NOT NULL,"
    "  on_hand INTEGER NOT NULL, reserved INTEGER NOT NULL,"
    "  abs_version INTEGER NOT NULL," /* of the last absolute count */
    "  updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (sku, location)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE stock_deltas (" /* deltas newer than the last count */
    "  sku TEXT NOT NULL, location TEXT NOT NULL, version INTEGER NOT NULL,"
    "  delta INTEGER NOT NULL,"
    "  PRIMARY KEY (sku, location, version)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE stock_channels (" /* availability last seen */
    "  sku TEXT NOT NULL, channel TEXT NOT NULL, available INTEGER NOT NULL,"
    "  PRIMARY KEY (sku, channel)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE orders ("
    "  id TEXT PRIMARY KEY, customer TEXT, location TEXT,"
    "  state INTEGER NOT NULL," /* 0 placed, 1 ready, 2 completed, 3 cancelled */
    "  placed_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE reservations ("
    "  order_id TEXT NOT NULL, sku TEXT NOT NULL, location TEXT NOT NULL,"
    "  qty INTEGER NOT NULL,"
    "  PRIMARY KEY (order_id, sku, location)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX journey_runs_entity ON journey_runs (journey, entity)"
    "  WHERE state = 0;",
    /* 8: addresses that bounce for good (docs/customers.md) */
    "CREATE TABLE bounces ("
    "  channel TEXT NOT NULL, address TEXT NOT NULL,"
    "  count INTEGER NOT NULL, undeliverable INTEGER NOT NULL,"
    "  last_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (channel, address)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX bounces_address ON bounces (address) WHERE undeliverable;",
};

struct sqlite_store {
    og__store_t base;
    sqlite3 *db;
    uint64_t window_ms;
    uint64_t retention_ms; /* of the timeline and finished runs */
    sqlite3_stmt *by_id, *by_vendor, *ins_event, *ins_outbox, *del_old;
    sqlite3_stmt *del_rows, *ins_dead;
    sqlite3_stmt *begin, *commit, *rollback; /* prepared once: a commit
                                              * round runs them per fsync */
    sqlite3_stmt *claim_sel, *claim_hold, *claim_next;
    sqlite3_stmt *done[4]; /* per og__outcome_t */
    og__consentdb_t *consent;
    og__traitdb_t *traits;
    og__custdb_t *cust;
    og__jdb_t *jdb;
    og__stockdb_t *stock;
    og__ckpt_t *ckpt; /* checkpoints off the commit path */
};

static void sq_close(og__store_t *s)
{
    struct sqlite_store *q = (struct sqlite_store *)s;

    sqlite3_finalize(q->by_id);
    sqlite3_finalize(q->by_vendor);
    sqlite3_finalize(q->ins_event);
    sqlite3_finalize(q->ins_outbox);
    sqlite3_finalize(q->del_old);
    sqlite3_finalize(q->del_rows);
    sqlite3_finalize(q->ins_dead);
    sqlite3_finalize(q->begin);
    sqlite3_finalize(q->commit);
    sqlite3_finalize(q->rollback);
    sqlite3_finalize(q->claim_sel);
    sqlite3_finalize(q->claim_hold);
    sqlite3_finalize(q->claim_next);
    og__jdb_free(q->jdb);
    og__stockdb_free(q->stock);
    og__custdb_free(q->cust);
    og__consentdb_free(q->consent);
    og__traitdb_free(q->traits);
    for (size_t i = 0; i < OG__ARRAY_SIZE(q->done); i++)
        sqlite3_finalize(q->done[i]);
    og__ckpt_stop(q->ckpt);
    sqlite3_close(q->db);
    free(q);
}

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    int v = -1;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

static int sq_schema_version(og__store_t *s)
{
    return user_version(((struct sqlite_store *)s)->db);
}

/* Looks up an earlier event by key; returns 1 and fills first_id when one
 * within the window exists. */
static int seen(sqlite3_stmt *st, const char *key, uint64_t since,
                uint64_t *hash, char *first_id, size_t idlen)
{
    int found = 0;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)since);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0);

        *hash = (uint64_t)sqlite3_column_int64(st, 1);
        snprintf(first_id, idlen, "%s", id ? (const char *)id : "");
        found = 1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return found;
}

/* Runs one of the prepared transaction statements. */
static int tx(sqlite3_stmt *st)
{
    return og__sql_done(st);
}

/* Inserts the outbox rows of it, a new event just inserted. A message
 * that consent forbids on a target gets its row as a dead letter with
 * the reason instead. */
static int insert_rows(struct sqlite_store *q, og__store_item_t *it,
                       const og__store_hooks_t *h)
{
    const char *purpose = it->person != NULL ? it->person->purpose : NULL;
    size_t t;
    int rc;

    for (t = 0; t < it->ntargets; t++) {
        if (purpose != NULL && h != NULL && h->consent != NULL) {
            char why[256];
            int allowed = 1;

            if (og__consent_decide(og__consentdb_repo(q->consent), it->customer,
                                   purpose, it->targets[t], h->consent,
                                   &allowed, why, sizeof(why)) != OG_OK)
                return sqlite3_errcode(q->db) != SQLITE_OK
                           ? sqlite3_errcode(q->db)
                           : SQLITE_ERROR;
            if (!allowed) {
                sqlite3_stmt *st = q->ins_dead;

                sqlite3_bind_text(st, 1, it->event_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, it->targets[t], -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, (sqlite3_int64)it->received_ms);
                sqlite3_bind_text(st, 4, why, -1, SQLITE_TRANSIENT);
                rc = sqlite3_step(st);
                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
                if (rc != SQLITE_DONE)
                    return rc;
                if (it->denied != NULL)
                    it->denied[t] = 1;
                if (it->rows != NULL)
                    it->rows[t] = sqlite3_last_insert_rowid(q->db);
                continue;
            }
        }
        sqlite3_bind_text(q->ins_outbox, 1, it->event_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q->ins_outbox, 2, it->targets[t], -1, SQLITE_STATIC);
        sqlite3_bind_int64(q->ins_outbox, 3, (sqlite3_int64)it->received_ms);
        sqlite3_bind_int(q->ins_outbox, 4,
                         it->held != NULL && it->held[t] ? 1 : 0);
        rc = sqlite3_step(q->ins_outbox);
        sqlite3_reset(q->ins_outbox);
        sqlite3_clear_bindings(q->ins_outbox);
        if (rc != SQLITE_DONE)
            return rc;
        if (it->rows != NULL)
            it->rows[t] = sqlite3_last_insert_rowid(q->db);
    }
    it->result = OG__ACCEPT_NEW;
    return SQLITE_OK;
}

/* Binds and runs the event insert of it (its stamped body when it has
 * one); an SQLite result code. */
static int insert_event(struct sqlite_store *q, const og__store_item_t *it)
{
    int rc;

    sqlite3_bind_text(q->ins_event, 1, it->event_id, -1, SQLITE_STATIC);
    if (it->vendor_key != NULL)
        sqlite3_bind_text(q->ins_event, 2, it->vendor_key, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q->ins_event, 2);
    sqlite3_bind_int64(q->ins_event, 3, (sqlite3_int64)it->content_hash);
    sqlite3_bind_int64(q->ins_event, 4, (sqlite3_int64)it->received_ms);
    if (it->customer[0] != '\0')
        sqlite3_bind_text(q->ins_event, 6, it->customer, -1, SQLITE_STATIC);
    if (it->stamped != NULL)
        sqlite3_bind_blob(q->ins_event, 5, it->stamped, (int)it->stamped_len,
                          SQLITE_STATIC);
    else
        sqlite3_bind_blob(q->ins_event, 5, it->body, (int)it->len,
                          SQLITE_STATIC);
    rc = sqlite3_step(q->ins_event);
    sqlite3_reset(q->ins_event);
    sqlite3_clear_bindings(q->ins_event);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* An event the store makes itself (customer.merged, stock.back, a
 * journey's message): new by construction; its timeline row and what it
 * does to journey runs follow. */
static int insert_made(void *ctx, og__store_item_t *ev)
{
    struct sqlite_store *q = ctx;
    int rc = insert_event(q, ev);

    if (rc == SQLITE_OK)
        rc = insert_rows(q, ev, NULL);
    if (rc == SQLITE_OK && ev->njm > 0)
        rc = og__jdb_accepted(q->jdb, ev);
    return rc;
}

/* The stock rules' stock.out / stock.back: built into an item by the
 * core's hook, written as an event of this commit. */
struct made_ctx {
    struct sqlite_store *q;
    const og__store_hooks_t *hooks;
};

static og_err_t stock_made(void *data, uint8_t *body, size_t len)
{
    struct made_ctx *m = data;
    og__store_item_t ev;

    memset(&ev, 0, sizeof(ev));
    if (m->hooks->made(m->hooks->data, body, len, &ev) != 0)
        return OG_OK; /* not made: no route wants it */
    return insert_made(m->q, &ev) == SQLITE_OK ? OG_OK : OG_ERR_IO;
}

/* What the new event it does to stock and orders (domain/stock.h). */
static og_err_t stock_apply(struct sqlite_store *q, og__store_item_t *it,
                            const og__store_hooks_t *hooks)
{
    struct made_ctx m = {q, hooks};
    og__stock_input_t in;

    in.type = it->type;
    in.event_id = it->event_id;
    in.source = it->source;
    in.customer = it->customer;
    in.body = it->stamped ? it->stamped : it->body;
    in.len = it->stamped ? it->stamped_len : it->len;
    in.received_ms = it->received_ms;
    return og__stock_apply(og__stockdb_repo(q->stock), &in,
                           hooks ? hooks->stock : NULL,
                           hooks && hooks->made ? stock_made : NULL, &m);
}

/* An order.* event (not stored yet) that names no customer but an order
 * placed before gets that order's customer, stamped into its body, so
 * that journeys and the timeline see it (a POS's order.ready_for_pickup). */
static og_err_t order_customer(struct sqlite_store *q, og__store_item_t *it,
                               const og__store_hooks_t *hooks)
{
    int found = 0;
    og_err_t rc;

    if (it->customer[0] != '\0' || hooks->stamp == NULL)
        return OG_OK;
    rc = og__stock_order_customer(og__stockdb_repo(q->stock), it->type,
                                  it->body, it->len, it->customer,
                                  sizeof(it->customer), &found);
    if (rc == OG_OK && found)
        it->stamped = hooks->stamp(hooks->data, it->body, it->len, it->customer,
                                   NULL, &it->stamped_len);
    return rc;
}

/* Checks the group of items starting at items[0] (n items in all):
 * returns how many items it spans and, when one of them conflicts (with an
 * event stored before or with another of the group), marks the conflicting
 * ones OG__ACCEPT_CONFLICT and the others OG__ACCEPT_ABORTED and sets
 * *skip. Reads only. */
static size_t check_group(struct sqlite_store *q, og__store_item_t *items,
                          size_t n, int *skip)
{
    size_t g = 1, k, j;
    int conflict = 0;

    while (g < n && items[g].group == items[0].group)
        g++;
    for (k = 0; k < g; k++) {
        og__store_item_t *it = &items[k];
        uint64_t since =
            it->received_ms > q->window_ms ? it->received_ms - q->window_ms : 0;
        uint64_t hash = 0;

        it->result = OG__ACCEPT_NEW;
        if ((it->vendor_key != NULL &&
             seen(q->by_vendor, it->vendor_key, since, &hash, it->first_id,
                  sizeof(it->first_id)) &&
             hash != it->content_hash) ||
            (seen(q->by_id, it->event_id, since, &hash, it->first_id,
                  sizeof(it->first_id)) &&
             hash != it->content_hash))
            it->result = OG__ACCEPT_CONFLICT;
        for (j = 0; j < k && it->result != OG__ACCEPT_CONFLICT; j++)
            if (strcmp(items[j].event_id, it->event_id) == 0 &&
                items[j].content_hash != it->content_hash) {
                it->result = OG__ACCEPT_CONFLICT;
                snprintf(it->first_id, sizeof(it->first_id), "%s",
                         items[j].event_id);
            }
        conflict |= it->result == OG__ACCEPT_CONFLICT;
    }
    for (k = 0; conflict && k < g; k++)
        if (items[k].result != OG__ACCEPT_CONFLICT)
            items[k].result = OG__ACCEPT_ABORTED;
    *skip = conflict;
    return g;
}

static og_err_t sq_commit(og__store_t *s, og__store_item_t *items, size_t n,
                          const og__store_done_t *done, size_t ndone,
                          const og__store_hooks_t *hooks, char *err,
                          size_t errlen)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    size_t i;
    int rc = SQLITE_OK;

    if (tx(q->begin) != SQLITE_OK)
        goto fail;
    for (i = 0; i < ndone; i++) {
        sqlite3_stmt *st = q->done[done[i].outcome];
        int64_t first = done[i].row, last = first;
        int delivered = done[i].outcome == OG__OUTCOME_DELIVERED;

        /* Deliveries finish mostly in row order: a run of consecutive
         * delivered rows is one range delete. */
        while (delivered && i + 1 < ndone &&
               done[i + 1].outcome == OG__OUTCOME_DELIVERED &&
               done[i + 1].row == last + 1) {
            i++;
            last++;
        }
        /* Statements that lack ?2 or ?3 ignore them (SQLITE_RANGE). */
        sqlite3_bind_int64(st, 1, first);
        sqlite3_bind_int64(st, 2,
                           delivered ? last : (sqlite3_int64)done[i].next_ms);
        if (done[i].error != NULL)
            sqlite3_bind_text(st, 3, done[i].error, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 3);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
            goto fail;
    }
    for (i = 0; i < n; i++) {
        og__store_item_t *it = &items[i];
        uint64_t since =
            it->received_ms > q->window_ms ? it->received_ms - q->window_ms : 0;
        uint64_t hash = 0;
        int retried = 0, skip = 0;

        if (it->group != 0 && (i == 0 || items[i - 1].group != it->group)) {
            size_t g = check_group(q, it, n - i, &skip);

            if (skip) { /* all of the group or none */
                i += g - 1;
                continue;
            }
        }

        it->first_id[0] = '\0';
        if (it->vendor_key != NULL &&
            seen(q->by_vendor, it->vendor_key, since, &hash, it->first_id,
                 sizeof(it->first_id))) {
            it->result = hash == it->content_hash ? OG__ACCEPT_DUPLICATE
                                                  : OG__ACCEPT_CONFLICT;
            continue;
        }
        /* An event with a customer to resolve is looked up first, so
         * that a duplicate changes no profile. Others: the insert itself
         * finds a repeated id (the primary key), so a new event costs no
         * lookup of its own. */
        if (it->person == NULL && hooks != NULL &&
            order_customer(q, it, hooks) != OG_OK)
            goto fail;
        if (it->person != NULL && hooks != NULL) {
            if (seen(q->by_id, it->event_id, since, &hash, it->first_id,
                     sizeof(it->first_id))) {
                it->result = hash == it->content_hash ? OG__ACCEPT_DUPLICATE
                                                      : OG__ACCEPT_CONFLICT;
                continue;
            }
            rc = og__custdb_resolve(q->cust, it, hooks, insert_made, q);
            if (rc != SQLITE_OK)
                goto fail;
        }
    insert:
        rc = insert_event(q, it);
        if (rc == SQLITE_CONSTRAINT &&
            seen(q->by_id, it->event_id, since, &hash, it->first_id,
                 sizeof(it->first_id))) {
            it->result = hash == it->content_hash ? OG__ACCEPT_DUPLICATE
                                                  : OG__ACCEPT_CONFLICT;
            continue;
        }
        if (rc == SQLITE_CONSTRAINT && !retried) {
            /* The id was used before the window: that old event and its
             * outbox rows give way (once). */
            retried = 1;
            sqlite3_bind_text(q->del_rows, 1, it->event_id, -1, SQLITE_STATIC);
            rc = sqlite3_step(q->del_rows);
            sqlite3_reset(q->del_rows);
            if (rc != SQLITE_DONE)
                goto fail;
            sqlite3_bind_text(q->del_old, 1, it->event_id, -1, SQLITE_STATIC);
            rc = sqlite3_step(q->del_old);
            sqlite3_reset(q->del_old);
            if (rc != SQLITE_DONE)
                goto fail;
            goto insert;
        }
        if (rc != SQLITE_OK)
            goto fail;
        og__crashpoint("event-inserted");
        if ((rc = insert_rows(q, it, hooks)) != SQLITE_OK)
            goto fail;
        if ((rc = og__custdb_bounced(q->cust, it)) != SQLITE_OK)
            goto fail;
        if (og__stock_type(it->type) && stock_apply(q, it, hooks) != OG_OK)
            goto fail;
        if ((it->customer[0] != '\0' || it->njm > 0) &&
            (rc = og__jdb_accepted(q->jdb, it)) != SQLITE_OK)
            goto fail;
    }
    if (n > 0)
        og__crashpoint("outbox-inserted");
    if (tx(q->commit) != SQLITE_OK)
        goto fail;
    return OG_OK;
fail:
    snprintf(err, errlen, "store: %s", sqlite3_errmsg(q->db));
    rc = sqlite3_errcode(q->db);
    tx(q->rollback);
    return rc == SQLITE_FULL ? OG_ERR_BUSY : OG_ERR_IO;
}

static og_err_t sq_counts(og__store_t *s, og__count_cb cb, void *data)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(q->db,
                           "SELECT channel, state, count(*) FROM outbox "
                           "GROUP BY channel, state",
                           -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb(data, (const char *)sqlite3_column_text(st, 0),
           sqlite3_column_int(st, 1), (uint64_t)sqlite3_column_int64(st, 2));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? OG_OK : OG_ERR_IO;
}

static og_err_t sq_prune(og__store_t *s, uint64_t before_ms, size_t limit,
                         uint64_t *count)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(
            q->db,
            /* Only the limit oldest events are looked at (rowids grow
             * with time), so a prune never scans the table: it runs
             * between two commits, which wait for it. */
            "DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM "
            "(SELECT rowid, id, received_ms FROM events ORDER BY rowid "
            "LIMIT ?2) e WHERE e.received_ms < ?1 AND e.id NOT IN "
            "(SELECT event_id FROM outbox))",
            -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)before_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return OG_ERR_IO;
    *count = (uint64_t)sqlite3_changes(q->db);
    if (q->retention_ms == 0)
        return OG_OK;
    /* The timeline and finished journey runs past their retention, the
     * same way: at most limit of the oldest rows looked at. */
    {
        static const char *const old[] = {
            "DELETE FROM timeline WHERE seq IN (SELECT seq FROM timeline "
            "ORDER BY seq LIMIT ?2) AND at_ms < ?1",
            "DELETE FROM journey_runs WHERE id IN (SELECT id FROM "
            "journey_runs WHERE state != 0 ORDER BY id LIMIT ?2) AND "
            "updated_ms < ?1"};
        uint64_t now = before_ms + q->window_ms;
        size_t i;

        for (i = 0; i < 2; i++) {
            if (sqlite3_prepare_v2(q->db, old[i], -1, &st, NULL) != SQLITE_OK)
                return OG_ERR_IO;
            sqlite3_bind_int64(st, 1,
                               (sqlite3_int64)(now > q->retention_ms
                                                   ? now - q->retention_ms
                                                   : 0));
            sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
            rc = sqlite3_step(st);
            sqlite3_finalize(st);
            if (rc != SQLITE_DONE)
                return OG_ERR_IO;
        }
    }
    return OG_OK;
}

static og_err_t sq_outbox_count(og__store_t *s, const char *channel,
                                uint64_t *count)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    sqlite3_stmt *st;
    og_err_t rc = OG_ERR_IO;

    if (sqlite3_prepare_v2(q->db,
                           "SELECT count(*) FROM outbox WHERE channel = ?1 "
                           "AND state = 0",
                           -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *count = (uint64_t)sqlite3_column_int64(st, 0);
        rc = OG_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Calls cb for each row of a prepared SELECT of outbox joined with events
 * (columns: id, event_id, channel, attempts, next_ms, body, last_error). */
static og_err_t each_row(sqlite3_stmt *st, og__outbox_cb cb, void *data,
                         int64_t *ids, size_t *nids, size_t maxids)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        og__outbox_row_t r;

        r.id = sqlite3_column_int64(st, 0);
        r.event_id = (const char *)sqlite3_column_text(st, 1);
        r.channel = (const char *)sqlite3_column_text(st, 2);
        r.attempts = (uint32_t)sqlite3_column_int(st, 3);
        r.next_ms = (uint64_t)sqlite3_column_int64(st, 4);
        r.body = sqlite3_column_blob(st, 5);
        r.len = (size_t)sqlite3_column_bytes(st, 5);
        r.last_error = (const char *)sqlite3_column_text(st, 6);
        if (ids != NULL && *nids < maxids)
            ids[(*nids)++] = r.id;
        cb(data, &r);
    }
    return rc == SQLITE_DONE ? OG_OK : OG_ERR_IO;
}

#define ROW_COLUMNS                                                            \
    "SELECT o.id, o.event_id, o.channel, o.attempts, o.next_ms, e.body, "      \
    "o.last_error FROM outbox o JOIN events e ON e.id = o.event_id "

static og_err_t sq_claim(og__store_t *s, const char *channel, uint64_t now_ms,
                         size_t limit, og__outbox_cb cb, void *data,
                         uint64_t *next_due_ms)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    sqlite3_stmt *st = q->claim_sel, *up = q->claim_hold, *next = q->claim_next;
    int64_t *ids = og__xcalloc(limit ? limit : 1, sizeof(*ids));
    size_t n = 0, i;
    og_err_t rc = OG_ERR_IO;

    *next_due_ms = 0;
    if (tx(q->begin) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
    if (each_row(st, cb, data, ids, &n, limit) != OG_OK)
        goto rollback;
    for (i = 0; i < n; i++) {
        sqlite3_bind_int64(up, 1, ids[i]);
        if (sqlite3_step(up) != SQLITE_DONE)
            goto rollback;
        sqlite3_reset(up);
    }
    sqlite3_bind_text(next, 1, channel, -1, SQLITE_STATIC);
    if (sqlite3_step(next) == SQLITE_ROW)
        *next_due_ms = (uint64_t)sqlite3_column_int64(next, 0);
    if (tx(q->commit) == SQLITE_OK) {
        rc = OG_OK;
        goto out;
    }
rollback:
    tx(q->rollback);
out:
    sqlite3_reset(st);
    sqlite3_reset(up);
    sqlite3_reset(next);
    free(ids);
    return rc;
}

static og_err_t sq_dead_list(og__store_t *s, const char *channel,
                             og__outbox_cb cb, void *data)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    sqlite3_stmt *st;
    og_err_t rc;

    if (sqlite3_prepare_v2(q->db,
                           ROW_COLUMNS "WHERE o.state = 2 AND (?1 IS NULL OR "
                                       "o.channel = ?1) ORDER BY o.id",
                           -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    if (channel != NULL)
        sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
    rc = each_row(st, cb, data, NULL, NULL, 0);
    sqlite3_finalize(st);
    return rc;
}

/* Runs an UPDATE or DELETE on dead letters selected by channel and row. */
static og_err_t dead_exec(struct sqlite_store *q, const char *sql,
                          const char *channel, int64_t row, uint64_t now_ms,
                          uint64_t *count)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return OG_ERR_IO;
    if (channel != NULL)
        sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, row);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)now_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return OG_ERR_IO;
    if (count != NULL)
        *count = (uint64_t)sqlite3_changes(q->db);
    return OG_OK;
}

static og_err_t sq_dead_requeue(og__store_t *s, const char *channel,
                                int64_t row, uint64_t now_ms, uint64_t *count)
{
    return dead_exec((struct sqlite_store *)s,
                     "UPDATE outbox SET state = 0, attempts = 0, next_ms = ?3 "
                     "WHERE state = 2 AND (?1 IS NULL OR channel = ?1) AND "
                     "(?2 = 0 OR id = ?2)",
                     channel, row, now_ms, count);
}

static og_err_t sq_dead_purge(og__store_t *s, const char *channel,
                              uint64_t *count)
{
    return dead_exec((struct sqlite_store *)s,
                     "DELETE FROM outbox WHERE state = 2 AND (?1 IS NULL OR "
                     "channel = ?1) AND (?2 = 0 OR id = ?2)",
                     channel, 0, 0, count);
}

static og_err_t sq_customer_get(og__store_t *s, const char *id,
                                const og__idkey_t *key,
                                const og__trait_rules_t *rules, og__sbuf_t *out)
{
    struct sqlite_store *q = (struct sqlite_store *)s;

    return og__custdb_get(q->cust, id, key, rules, out);
}

/* An operator action's transaction: begun (OG_OK, or OG_ERR_IO with the
 * reason), then ended by its outcome: committed when rc is OG_OK, else
 * rolled back; returns the final outcome. */
static og_err_t op_begin(struct sqlite_store *q, char *err, size_t errlen)
{
    if (tx(q->begin) == SQLITE_OK)
        return OG_OK;
    snprintf(err, errlen, "store: %s", sqlite3_errmsg(q->db));
    return OG_ERR_IO;
}

static og_err_t op_end(struct sqlite_store *q, og_err_t rc, char *err,
                       size_t errlen)
{
    if (rc == OG_OK && tx(q->commit) != SQLITE_OK) {
        snprintf(err, errlen, "store: %s", sqlite3_errmsg(q->db));
        rc = OG_ERR_IO;
    }
    if (rc != OG_OK)
        tx(q->rollback);
    return rc;
}

static og_err_t sq_customer_split(og__store_t *s, const char *id,
                                  uint64_t now_ms, const og__store_hooks_t *h,
                                  og__sbuf_t *out, char *err, size_t errlen)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    og_err_t rc = op_begin(q, err, errlen);

    if (rc != OG_OK)
        return rc;
    return op_end(q,
                  og__custdb_split(q->cust, id, now_ms, h, insert_made, q, out,
                                   err, errlen),
                  err, errlen);
}

static og_err_t sq_customer_erase(og__store_t *s, const char *id,
                                  uint64_t now_ms, og__sbuf_t *out,
                                  char ***erased, char *err, size_t errlen)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    og_err_t rc;

    /* Deleted content is overwritten while this runs, and the WAL,
     * which holds the old pages, is emptied after it. */
    sqlite3_exec(q->db, "PRAGMA secure_delete = ON", NULL, NULL, NULL);
    if ((rc = op_begin(q, err, errlen)) != OG_OK)
        goto out;
    rc = op_end(q,
                og__custdb_erase(q->cust, id, now_ms, out, erased, err, errlen),
                err, errlen);
    if (rc != OG_OK) {
        if (erased != NULL && *erased != NULL) {
            og__strv_free(*erased);
            *erased = NULL;
        }
    } else if (sqlite3_wal_checkpoint_v2(q->db, NULL,
                                         SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                         NULL) != SQLITE_OK) {
        /* Committed: only the old pages may still sit in the WAL until
         * the next checkpoint. */
        snprintf(err, errlen, "store: checkpoint after erasure: %s",
                 sqlite3_errmsg(q->db));
    }
out:
    sqlite3_exec(q->db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
    return rc;
}

static og__identity_repo_t *sq_identity_repo(og__store_t *s)
{
    return og__custdb_identity_repo(((struct sqlite_store *)s)->cust);
}

static og__trait_repo_t *sq_trait_repo(og__store_t *s)
{
    return og__traitdb_repo(((struct sqlite_store *)s)->traits);
}

static og__consent_repo_t *sq_consent_repo(og__store_t *s)
{
    return og__consentdb_repo(((struct sqlite_store *)s)->consent);
}

static og_err_t sq_conversation(og__store_t *s, const char *id, int resolve,
                                uint64_t now_ms, og__conversation_cb cb,
                                void *data)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    char err[256];
    og_err_t rc;

    if (!resolve) /* a read */
        return og__custdb_conversation(q->cust, id, 0, now_ms, cb, data);
    if ((rc = op_begin(q, err, sizeof(err))) != OG_OK)
        return rc;
    return op_end(q, og__custdb_conversation(q->cust, id, 1, now_ms, cb, data),
                  err, sizeof(err));
}

static og_err_t sq_journeys_fire(og__store_t *s, uint64_t now_ms, size_t limit,
                                 og__fire_fn fn, void *data,
                                 const og__trait_rules_t *rules,
                                 const og__consent_rules_t *consent,
                                 size_t *fired, uint64_t *next_due, char *err,
                                 size_t errlen)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    og_err_t rc = op_begin(q, err, errlen);

    if (rc != OG_OK)
        return rc;
    rc = og__jdb_fire(q->jdb, now_ms, limit, fn, data, rules, consent,
                      insert_made, q, fired, next_due, err, errlen);
    if (rc == OG_OK && *fired > 0)
        og__crashpoint("steps-fired");
    return op_end(q, rc, err, errlen);
}

static og_err_t sq_timeline(og__store_t *s, const char *id, size_t limit,
                            char canon[40], const og__timeline_reader_t *rd)
{
    struct sqlite_store *q = (struct sqlite_store *)s;

    return og__jdb_timeline(q->jdb, id, limit, canon, rd);
}

static og__stock_repo_t *sq_stock_repo(og__store_t *s)
{
    return og__stockdb_repo(((struct sqlite_store *)s)->stock);
}

static const struct og__store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .schema_version = sq_schema_version,
    .commit = sq_commit,
    .outbox_count = sq_outbox_count,
    .counts = sq_counts,
    .claim = sq_claim,
    .prune = sq_prune,
    .dead_list = sq_dead_list,
    .dead_requeue = sq_dead_requeue,
    .dead_purge = sq_dead_purge,
    .customer_get = sq_customer_get,
    .customer_split = sq_customer_split,
    .customer_erase = sq_customer_erase,
    .consent_repo = sq_consent_repo,
    .trait_repo = sq_trait_repo,
    .identity_repo = sq_identity_repo,
    .conversation = sq_conversation,
    .journeys_fire = sq_journeys_fire,
    .timeline = sq_timeline,
    .stock_repo = sq_stock_repo,
};

/* Runs the migrations the database lacks, each in its own transaction. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int have = user_version(db), want = (int)OG__ARRAY_SIZE(migrations), v;

    if (have < 0) {
        snprintf(err, errlen, "%s: cannot read the schema version: %s", path,
                 sqlite3_errmsg(db));
        return -1;
    }
    if (have > want) {
        snprintf(err, errlen,
                 "%s: schema version %d was written by a newer omnigate "
                 "(this one knows up to %d); upgrade omnigate or restore a "
                 "backup",
                 path, have, want);
        return -1;
    }
    for (v = have + 1; v <= want; v++) {
        char *msg = NULL, setv[64];

        snprintf(setv, sizeof(setv), "PRAGMA user_version = %d", v);
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, migrations[v - 1], NULL, NULL, &msg) !=
                SQLITE_OK ||
            sqlite3_exec(db, setv, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen,
                     "%s: migration to schema version %d "
                     "failed: %s",
                     path, v, msg ? msg : sqlite3_errmsg(db));
            sqlite3_free(msg);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

/* Creates dir and its missing parents (like mkdir -p). */
static int mkdir_p(const char *dir)
{
    char *p = og__xstrdup(dir), *s;
    int rc = 0;

    for (s = p + 1; rc == 0 && *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *s = '/';
    }
    if (rc == 0 && mkdir(p, 0750) != 0 && errno != EEXIST)
        rc = -1;
    free(p);
    return rc;
}

og__store_t *og__store_open_sqlite(const og__store_opts_t *opts, char *err,
                                   size_t errlen)
{
    struct sqlite_store *q;
    char *path;
    const char *sync = opts->durability == OG__DURABLE_POWER
                           ? "PRAGMA synchronous = FULL"
                           : "PRAGMA synchronous = NORMAL";

    if (mkdir_p(opts->dir) != 0) {
        snprintf(err, errlen, "cannot create state directory %s: %s", opts->dir,
                 strerror(errno));
        return NULL;
    }
    q = og__xcalloc(1, sizeof(*q));
    q->base.ops = &sqlite_ops;
    q->window_ms = opts->dedup_window_ms;
    q->retention_ms = opts->timeline_retention_ms;
    path = og__xasprintf("%s/state.db", opts->dir);
    /* One connection, used by one thread at a time (store.h): no
     * per-call mutex. Allocation statistics off: otherwise every SQLite
     * allocation takes a process-wide mutex. Both only matter once per
     * process; sqlite3_config() fails harmlessly after initialisation. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (sqlite3_open_v2(path, &q->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path,
                 q->db ? sqlite3_errmsg(q->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(q->db, 5000);
    if (sqlite3_exec(q->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(q->db, sync, NULL, NULL, NULL) != SQLITE_OK ||
        /* 4 MB of page cache (the default is 2 MB): the right edges of
         * the events table and its id index stay cached as they grow
         * (+5% in bench/http, 19 MB RSS under load). */
        sqlite3_exec(q->db, "PRAGMA cache_size = -4000", NULL, NULL, NULL) !=
            SQLITE_OK ||

        sqlite3_exec(q->db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL) !=
            SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(q->db));
        goto fail;
    }
    q->ckpt = og__ckpt_start(q->db, path, sync);
    if (migrate(q->db, path, err, errlen) != 0)
        goto fail;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT id, content_hash FROM events WHERE id = ?1 "
                           "AND received_ms >= ?2",
                           -1, &q->by_id, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "SELECT id, content_hash FROM events WHERE "
                           "vendor_key = ?1 AND received_ms >= ?2 "
                           "ORDER BY received_ms LIMIT 1",
                           -1, &q->by_vendor, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "INSERT INTO events (id, vendor_key, "
                           "content_hash, received_ms, body, customer) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &q->ins_event, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "INSERT INTO outbox (event_id, channel, next_ms, "
                           "leased) VALUES (?1, ?2, ?3, ?4)",
                           -1, &q->ins_outbox, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "DELETE FROM events WHERE id = ?1", -1,
                           &q->del_old, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "BEGIN IMMEDIATE", -1, &q->begin, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "COMMIT", -1, &q->commit, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "ROLLBACK", -1, &q->rollback, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           ROW_COLUMNS "WHERE o.channel = ?1 AND o.state = 0 "
                                       "AND o.leased = 0 AND o.next_ms <= ?2 "
                                       "ORDER BY o.next_ms, o.id LIMIT ?3",
                           -1, &q->claim_sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "UPDATE outbox SET leased = 1 WHERE id = ?1",
                           -1, &q->claim_hold, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "SELECT min(next_ms) FROM outbox WHERE channel = "
                           "?1 AND state = 0 AND leased = 0",
                           -1, &q->claim_next, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "DELETE FROM outbox WHERE event_id = ?1", -1,
                           &q->del_rows, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "INSERT INTO outbox (event_id, channel, next_ms, "
                           "state, last_error) VALUES (?1, ?2, ?3, 2, ?4)",
                           -1, &q->ins_dead, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(
            q->db,
            "DELETE FROM outbox WHERE id BETWEEN ?1 AND ?2 AND state = 0", -1,
            &q->done[OG__OUTCOME_DELIVERED], NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "UPDATE outbox SET leased = 0, attempts = "
                           "attempts + 1, next_ms = ?2, last_error = ?3 "
                           "WHERE id = ?1 AND state = 0",
                           -1, &q->done[OG__OUTCOME_RETRY],
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "UPDATE outbox SET state = 2, leased = 0, "
                           "attempts = attempts + 1, next_ms = ?2, "
                           "last_error = ?3 WHERE id = ?1 AND state = 0",
                           -1, &q->done[OG__OUTCOME_DEAD], NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "UPDATE outbox SET leased = 0, next_ms = "
                           "min(next_ms, ?2) WHERE id = ?1 AND state = 0",
                           -1, &q->done[OG__OUTCOME_RELEASE],
                           NULL) != SQLITE_OK ||
        sqlite3_exec(q->db, "UPDATE outbox SET leased = 0 WHERE leased = 1",
                     NULL, NULL, NULL) != SQLITE_OK ||
        (q->consent = og__consentdb_prepare(q->db)) == NULL ||
        (q->traits = og__traitdb_prepare(q->db)) == NULL ||
        (q->cust = og__custdb_prepare(q->db, og__consentdb_repo(q->consent),
                                      og__traitdb_repo(q->traits))) == NULL ||
        (q->jdb = og__jdb_prepare(q->db, q->cust)) == NULL ||
        (q->stock = og__stockdb_prepare(q->db)) == NULL) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(q->db));
        goto fail;
    }
    free(path);
    return &q->base;
fail:
    free(path);
    sq_close(&q->base);
    return NULL;
}
