/*
 * store.h: durable state behind one interface with interchangeable
 * backends (SQLite now, PostgreSQL later). Callers use only the functions
 * below; a backend provides og__store_ops.
 *
 * Threading: a store handle is used by one thread at a time (the daemon
 * runs store work on a libuv worker thread, one round at a time, so the
 * loop never waits for the disk; see durable.c).
 */
#ifndef OG_CORE_STORE_H
#define OG_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_errors.h>

#include "base/util.h"
#include "config/conf.h"
#include "domain/consent.h"
#include "domain/customers.h"
#include "domain/stock.h"
#include "domain/traits.h"

/* How much a commit survives (omnigate.conf(5), docs/man/omnigate.conf.5). */
typedef enum og__durability_e {
    OG__DURABLE_POWER,  /* survives power loss of the host (fsync per commit) */
    OG__DURABLE_PROCESS /* survives a crash of the daemon, not of the host */
} og__durability_t;

typedef struct og__store_opts_s {
    const char *dir; /* state directory; created if missing */
    og__durability_t durability;
    uint64_t dedup_window_ms; /* how long ids stay idempotency keys */
    /* how long timeline entries and finished journey runs are kept
     * (0: for ever) */
    uint64_t timeline_retention_ms;
} og__store_opts_t;

/* The outcome of accepting one event. */
typedef enum og__accept_e {
    OG__ACCEPT_NEW,       /* stored with its outbox rows */
    OG__ACCEPT_DUPLICATE, /* seen within the window with the same content */
    OG__ACCEPT_CONFLICT,  /* seen within the window with other content */
    OG__ACCEPT_ABORTED /* not stored: another event of its group conflicted */
} og__accept_t;

/* One event to accept, and what became of it. */
typedef struct og__store_item_s {
    /* in */
    const char *event_id;
    const char *vendor_key; /* "instance/vendor id", or NULL */
    uint64_t content_hash;  /* of the plugin-supplied content */
    const uint8_t *body;    /* the stamped envelope */
    size_t len;
    uint64_t received_ms;
    const char *const *targets; /* channel instances to deliver to */
    size_t ntargets;
    /* Per target (NULL: none): 1 when the caller holds the delivery in
     * memory already, so that og__store_ops.claim skips it. */
    const unsigned char *held;
    /* out */
    og__accept_t result;
    char first_id[72]; /* for duplicates: the id first accepted */
    int64_t *rows;     /* caller's array of ntargets: the outbox row ids */
    /* Customer resolution (when person is not NULL and the commit has
     * hooks): the canonical customer, and the body as stored with it
     * (from hooks->stamp, freed by the caller; NULL when unchanged). */
    const og__person_t *person;
    char customer[40];
    char conversation[72];
    uint8_t *stamped;
    size_t stamped_len;
    /* Per target (caller's array of ntargets, may be NULL): set to 1 when
     * consent forbids the message on that channel; the row is then
     * stored as a dead letter with the reason, not delivered. */
    unsigned char *denied;
    /* Consecutive items with the same nonzero group are stored all or
     * none: when one is a conflict, it is OG__ACCEPT_CONFLICT and the
     * others of the group OG__ACCEPT_ABORTED. */
    unsigned group;
    /* What the event does to journey runs (journeys.h), applied with its
     * customer when it is new; NULL when nothing. */
    const struct og__jmatch_s *jm;
    size_t njm;
    const char *source; /* the source instance (timeline), or NULL */
    const char *type;   /* the event type (timeline), or NULL */
} og__store_item_t;

/* What the core lends the store for resolution inside a commit; called on
 * the thread running the commit. */
typedef struct og__store_hooks_s {
    void *data;
    /* The envelope body with "customer" (and "conversation" when not
     * NULL) set: malloc'd, or NULL. */
    uint8_t *(*stamp)(void *data, const uint8_t *body, size_t len,
                      const char *customer, const char *conversation,
                      size_t *outlen);
    /* Builds the event telling of m: fills ev's event_id, body, len,
     * received_ms and targets (memory owned by the hook until the round
     * ends). Returns 0, or -1 to record the merge without an event. */
    int (*merged)(void *data, const og__merge_t *m, og__store_item_t *ev);
    const og__consent_rules_t *consent; /* NULL: no consent checks */
    /* Shared stock: the channels' locations and buffers (NULL: stock
     * events change counts but make no stock.out/stock.back). */
    const og__stock_rules_t *stock;
    /* Builds an event the store made (body malloc'd, taken over, a
     * complete envelope with its id) into ev: targets from the routes,
     * memory owned by the hook until the round ends. -1: not made. */
    int (*made)(void *data, uint8_t *body, size_t len, og__store_item_t *ev);
} og__store_hooks_t;

/* One delivery row of the outbox, valid during the callback that gets it. */
typedef struct og__outbox_row_s {
    int64_t id;
    const char *event_id;
    const char *channel;
    uint32_t attempts;
    uint64_t next_ms;
    const uint8_t *body; /* the stamped envelope */
    size_t len;
    const char *last_error; /* NULL when none */
} og__outbox_row_t;

typedef void (*og__outbox_cb)(void *data, const og__outbox_row_t *row);

/* How a delivery attempt ended (og__store_ops.complete). */
typedef enum og__outcome_e {
    OG__OUTCOME_DELIVERED,
    OG__OUTCOME_RETRY,  /* try again at next_ms */
    OG__OUTCOME_DEAD,   /* permanent failure or lifetime over */
    OG__OUTCOME_RELEASE /* not attempted: claimable again, attempts kept */
} og__outcome_t;

/* One finished delivery attempt, written with the next commit. */
typedef struct og__store_done_s {
    int64_t row;
    og__outcome_t outcome;
    uint64_t next_ms;
    const char *error; /* NULL when none; copied by the store */
} og__store_done_t;

/* Called with the number of outbox rows of channel in state (0 due or
 * waiting, 2 dead; a delivered row is deleted, 1 is only found in
 * databases written before that). */
typedef void (*og__count_cb)(void *data, const char *channel, int state,
                             uint64_t count);

struct og__run_s;
struct og__step_result_s;
struct og__fire_env_s;

/* Fires one due journey run (og__journeys_fire() with what the caller
 * adds): fills res; the store writes res's event and the run's next state.
 * ev gets the event's targets (when res has an event). Returns OG_OK, or
 * OG_ERR_NOT_FOUND to leave the run as it is (its journey is gone). */
typedef og_err_t (*og__fire_fn)(void *data, const struct og__fire_env_s *env,
                                const struct og__run_s *run,
                                struct og__step_result_s *res,
                                og__store_item_t *ev);

/* One entry of a customer's timeline (docs/journeys.md), valid during
 * the callback; a string is NULL when the entry has none. */
typedef struct og__timeline_entry_s {
    uint64_t at_ms;
    const char *kind, *type, *channel, *ref, *correlation, *journey, *detail;
} og__timeline_entry_t;

/* One journey run as the timeline shows it, valid during the callback. */
typedef struct og__run_view_s {
    int64_t id;
    const char *journey, *entity;             /* entity NULL when none */
    int state;                                /* og__run_state (journeys.h) */
    int step;                                 /* from 0 */
    uint64_t due_ms;                          /* when state is active */
    const char *correlation, *trigger, *note; /* NULL when none */
    uint64_t started_ms, updated_ms;
} og__run_view_t;

/* Receives a customer's timeline: entries first, then runs. */
typedef struct og__timeline_reader_s {
    void *data;
    void (*entry)(void *data, const og__timeline_entry_t *e);
    void (*run)(void *data, const og__run_view_t *r);
} og__timeline_reader_t;

/* A conversation (docs/customers.md, Conversations), valid during the
 * callback. */
typedef struct og__conversation_view_s {
    const char *id;
    const char *customer; /* its customer now (after merges), or NULL */
    int resolved;
    uint64_t opened_ms, updated_ms;
    int has_resolved_ms; /* resolved_ms is set (it was resolved once) */
    uint64_t resolved_ms;
    const char *last_channel; /* NULL when none */
    int64_t messages, thread_keys;
} og__conversation_view_t;

typedef void (*og__conversation_cb)(void *data,
                                    const og__conversation_view_t *v);

typedef struct og__store_s og__store_t;

struct og__store_ops {
    const char *name;
    void (*close)(og__store_t *s);
    int (*schema_version)(og__store_t *s);
    /* In one transaction: record the finished attempts of done, then
     * accept items (see og__store_accept()). On error nothing is written. */
    og_err_t (*commit)(og__store_t *s, og__store_item_t *items, size_t n,
                       const og__store_done_t *done, size_t ndone,
                       const og__store_hooks_t *hooks, char *err,
                       size_t errlen);
    og_err_t (*outbox_count)(og__store_t *s, const char *channel,
                             uint64_t *count);
    /* Row counts of every channel and state. */
    og_err_t (*counts)(og__store_t *s, og__count_cb cb, void *data);
    /* Due rows of channel (next_ms <= now) that nobody holds, oldest
     * first, at most limit; each is marked held until its attempt is
     * recorded. *next_due_ms gets the earliest next_ms of the rows still
     * waiting (0: none). Holds end when the store is opened again, so
     * that after a crash every undelivered row is due (at-least-once). */
    og_err_t (*claim)(og__store_t *s, const char *channel, uint64_t now_ms,
                      size_t limit, og__outbox_cb cb, void *data,
                      uint64_t *next_due_ms);
    /* Of the limit oldest events, deletes those received before
     * before_ms whose deliveries are all done (no outbox row left). Costs
     * at most limit rows read, however large the table. */
    og_err_t (*prune)(og__store_t *s, uint64_t before_ms, size_t limit,
                      uint64_t *count);
    /* Dead letters of channel (NULL: every channel). */
    og_err_t (*dead_list)(og__store_t *s, const char *channel, og__outbox_cb cb,
                          void *data);
    /* Makes dead letters due again (row 0: all of channel, or of every
     * channel when channel is NULL); *count gets how many. */
    og_err_t (*dead_requeue)(og__store_t *s, const char *channel, int64_t row,
                             uint64_t now_ms, uint64_t *count);
    og_err_t (*dead_purge)(og__store_t *s, const char *channel,
                           uint64_t *count);
    /* The profile of a customer found by id (an alias finds its
     * survivor) or by key, as the JSON of GET /v1/customers/{id}
     * (docs/customers.md). OG_ERR_NOT_FOUND when there is none. */
    og_err_t (*customer_get)(og__store_t *s, const char *id,
                             const struct og__idkey_s *key,
                             const og__trait_rules_t *rules, og__sbuf_t *out);
    /* Undoes the merge that made customer id an alias: it is a customer
     * again with the identities it brought, and a customer.split event
     * (hooks->merged) is written with it; the JSON answer goes to out. */
    og_err_t (*customer_split)(og__store_t *s, const char *id, uint64_t now_ms,
                               const og__store_hooks_t *hooks, og__sbuf_t *out,
                               char *err, size_t errlen);
    /* Erases customer id and its aliases (right to erasure): profile,
     * identities, consents, conversations, stored events and their
     * deliveries (pending ones included), merge records; keeps an audit
     * row without personal data; deleted content is overwritten and the
     * WAL truncated. out gets the JSON answer; erased (may be NULL) gets
     * the erased customer ids, NULL-terminated, malloc'd. */
    og_err_t (*customer_erase)(og__store_t *s, const char *id, uint64_t now_ms,
                               og__sbuf_t *out, char ***erased, char *err,
                               size_t errlen);
    /* The consent statements (domain/consent.h), for the consent rules
     * inside commit and for readers between commits. Lives as long as
     * s. */
    og__consent_repo_t *(*consent_repo)(og__store_t *s);
    /* Customers and their keys (domain/customers.h), the same way. */
    og__identity_repo_t *(*identity_repo)(og__store_t *s);
    /* Customers' traits (domain/traits.h), the same way. */
    og__trait_repo_t *(*trait_repo)(og__store_t *s);
    /* A conversation, to cb; OG_ERR_NOT_FOUND when there is none. With
     * resolve, it is marked resolved first. */
    og_err_t (*conversation)(og__store_t *s, const char *id, int resolve,
                             uint64_t now_ms, og__conversation_cb cb,
                             void *data);
    /* In one transaction: the journey runs due at now_ms (at most limit,
     * earliest first) fired through fn, their events and next states
     * written. *fired gets how many ran, *next_due the earliest due time
     * of the runs still waiting (0: none). */
    og_err_t (*journeys_fire)(og__store_t *s, uint64_t now_ms, size_t limit,
                              og__fire_fn fn, void *data,
                              const og__trait_rules_t *rules,
                              const og__consent_rules_t *consent, size_t *fired,
                              uint64_t *next_due, char *err, size_t errlen);
    /* The cross-channel story of a customer (id or an alias): canon gets
     * the customer it is now, rd its last limit timeline entries (oldest
     * first), then its journey runs (oldest first). OG_ERR_NOT_FOUND when
     * there is no such customer. */
    og_err_t (*timeline)(og__store_t *s, const char *id, size_t limit,
                         char canon[40], const og__timeline_reader_t *rd);
    /* The stock ledger (domain/stock.h): the repository the stock rules
     * run on inside commit, and the one readers use between commits
     * (each of its calls then its own transaction). Lives as long as s. */
    og__stock_repo_t *(*stock_repo)(og__store_t *s);
};

struct og__store_s {
    const struct og__store_ops *ops;
};

/* The schema version this build writes. */
#define OG__STORE_SCHEMA_VERSION 8

/*
 * og__store_open_sqlite: open (or create) state.db in opts->dir, in WAL
 * mode, and bring its schema up to date. A database written by a newer
 * omnigate is refused. Returns NULL with the reason in err.
 */
og__store_t *og__store_open_sqlite(const og__store_opts_t *opts, char *err,
                                   size_t errlen);

static inline void og__store_close(og__store_t *s)
{
    if (s != NULL)
        s->ops->close(s);
}

/*
 * og__store_accept: in one transaction, and so one commit, store every
 * new event of items with one outbox row per target; duplicates and
 * conflicts (by event id or vendor key within the window) store nothing.
 * On error nothing of the batch is stored.
 */
static inline og_err_t og__store_accept(og__store_t *s, og__store_item_t *items,
                                        size_t n, char *err, size_t errlen)
{
    return s->ops->commit(s, items, n, NULL, 0, NULL, err, errlen);
}

/* og__store_complete: record one finished attempt on its own. */
static inline og_err_t og__store_complete(og__store_t *s, int64_t row,
                                          og__outcome_t outcome,
                                          uint64_t next_ms, const char *error)
{
    og__store_done_t d;
    char err[256];

    d.row = row;
    d.outcome = outcome;
    d.next_ms = next_ms;
    d.error = error;
    return s->ops->commit(s, NULL, 0, &d, 1, NULL, err, sizeof(err));
}

#endif /* OG_CORE_STORE_H */
