/*
 * durable.h: the path of an event from acceptance to its deliveries,
 * through the store (docs/durability.md).
 *
 *   submit()   an accepted event and the channels its routes name join the
 *              open batch; the caller learns the outcome from its callback.
 *   a round    on a libuv worker thread: one transaction writes the batch
 *              (events, their outbox rows, deduplication), the finished
 *              delivery attempts and the claims of waiting rows; one commit,
 *              so one fsync, for all of it (group commit). While a round
 *              runs the next batch fills.
 *   after it   (loop thread) callbacks run, new deliveries join their
 *              channel's queue in memory, and each channel's queue feeds
 *              its instance up to max_inflight.
 *
 * A channel's queue in memory is bounded (queue_max); beyond it, and after
 * a restart, deliveries wait in the store and are claimed as the queue
 * drains. Retries wait in the store until their time.
 *
 * Everything here runs on the loop thread except the rounds.
 */
#ifndef OG_CORE_DURABLE_H
#define OG_CORE_DURABLE_H

#include <uv.h>

#include "config/conf.h"
#include "event/event.h"
#include "domain/identity.h"
#include "host/instance.h"
#include "pipeline/router.h"
#include "store/store.h"

typedef struct og__durable_s og__durable_t;

/* The instance of a channel that takes deliveries now, or NULL. */
typedef og_plugin_ctx_t *(*og__find_inst_fn)(void *data, const char *channel);

/*
 * og__durable_create: take over store (closed by og__durable_close()).
 * Reads the backlog counts; channels with waiting rows are claimed from
 * as soon as their instances run. NULL with err on failure.
 */
og__durable_t *og__durable_create(uv_loop_t *loop, og__store_t *store,
                                  const og__conf_t *conf, og__find_inst_fn find,
                                  void *find_data, char *err, size_t errlen);
/* A new configuration: channels' queue bounds and retry schedules, the
 * backlog bound. */
void og__durable_configure(og__durable_t *d, const og__conf_t *conf);

/*
 * og__durable_submit: write ev with one outbox row per target in the next
 * round; cb(data, rc, id) follows (see og_emit_cb for rc). Returns OG_OK,
 * or without calling cb: OG_ERR_BUSY when the open batch or the backlog is
 * at its bound, OG_ERR_IO while the store fails (a commit failed less
 * than 250 ms ago: disk full, I/O error), OG_ERR_STOPPING when closing.
 */
og_err_t og__durable_submit(og__durable_t *d, og_event_t *ev,
                            const char *const *targets, size_t ntargets,
                            og__committed_cb cb, void *data);

/* Submits n events as one group: all go into the same commit, and the
 * store stores all of them or none (when one conflicts, it gets
 * OG_ERR_CONFLICT and the others OG_ERR_CANCELLED). Refused as a whole
 * (the return value) when they do not all fit. cb gets data[i] for
 * evs[i]. */
og_err_t og__durable_submit_group(og__durable_t *d, og_event_t *const *evs,
                                  size_t n, const char *const *const *targets,
                                  const size_t *ntargets, og__committed_cb cb,
                                  void *const *data);

/* An instance finished a delivery handed to it by this module. rc is the
 * plugin's result, or OG_ERR_CANCELLED when the instance stopped first. */
void og__durable_result(og__durable_t *d, og_plugin_ctx_t *inst, og_event_t *ev,
                        int64_t row, uint32_t attempts, og_err_t rc,
                        const char *reason, uint64_t retry_after_ms);

/* Instances may take deliveries now (one started or has capacity). */
void og__durable_kick(og__durable_t *d);

/*
 * og__durable_close: stop taking submits, finish the rounds that carry
 * what was accepted and the results of finished deliveries, release the
 * rows still queued in memory, close the store, then cb(data).
 */
void og__durable_close(og__durable_t *d, void (*cb)(void *data), void *data);
void og__durable_free(og__durable_t *d);

/* What /metrics and /v1/outbox show of one channel. */
typedef struct og__chan_stats_s {
    const char *channel;
    uint64_t waiting;  /* undelivered rows (queued, in flight, in the store) */
    uint64_t queued;   /* of them, in memory */
    uint64_t dead;     /* dead letters */
    uint64_t retries;  /* attempts that will be retried */
    uint64_t dead_new; /* deliveries that became dead letters */
    uint64_t suppressed; /* messages consent kept from the channel */
} og__chan_stats_t;

typedef struct og__durable_stats_s {
    uint64_t commits;     /* transactions committed (each one fsync) */
    uint64_t events;      /* events committed */
    uint64_t duplicates;  /* submits answered as duplicates */
    uint64_t conflicts;   /* submits answered as conflicts */
    uint64_t busy;        /* submits refused at a bound or by the store */
    uint64_t failures;    /* rounds the store failed */
    uint64_t backlog;     /* undelivered rows, all channels */
    uint64_t max_backlog; /* its bound */
    size_t batch;         /* events waiting for the next round */
    int degraded;         /* the last round failed */
    char last_error[256]; /* why, "" when it did not */
} og__durable_stats_t;

void og__durable_stats(og__durable_t *d, og__durable_stats_t *st);
void og__durable_foreach_channel(og__durable_t *d,
                                 void (*fn)(void *data,
                                            const og__chan_stats_t *st),
                                 void *data);

/* Operator actions (dead letters, customers, conversations), run in a
 * round; cb gets the JSON answer (an object), or an error with NULL (dead
 * letters) or with the reason as its text (customers). */
typedef enum og__admin_op_e {
    OG__DEAD_LIST,
    OG__DEAD_REQUEUE,
    OG__DEAD_PURGE,
    OG__CUSTOMER_GET,   /* the profile of a customer, by id or key */
    OG__CUSTOMER_SPLIT, /* undo the merge that made a customer an alias */
    OG__CUSTOMER_ERASE, /* right to erasure */
    OG__CONVERSATION_GET,
    OG__CONVERSATION_RESOLVE,
    OG__CUSTOMER_TIMELINE, /* entries and journey runs of a customer */
    OG__STOCK_GET          /* the stock of a sku */
} og__admin_op_t;

typedef void (*og__admin_cb)(void *data, og_err_t rc, const char *json);

void og__durable_dead(og__durable_t *d, og__admin_op_t op, const char *channel,
                      int64_t row, og__admin_cb cb, void *data);

/* A customer operation (OG__CUSTOMER_GET or OG__CUSTOMER_SPLIT) on the
 * customer id, or (GET only, id NULL) on the customer of key. cb gets
 * OG_ERR_NOT_FOUND, OG_ERR_CONFLICT (nothing to split) with the reason
 * as its text, or OG_OK with the JSON. */
void og__durable_customer(og__durable_t *d, og__admin_op_t op, const char *id,
                          const og__idkey_t *key, og__admin_cb cb, void *data);

/* The routes for the events the store makes (customer.merged): the
 * durable module keeps a reference while a round may use them. */
void og__durable_set_router(og__durable_t *d, og__router_t *router);

struct og__journeys_s;
/* The journeys whose runs the store keeps (a reference is taken); NULL:
 * none. Rounds match every accepted event against them and fire the
 * steps that are due (docs/journeys.md). */
void og__durable_set_journeys(og__durable_t *d, struct og__journeys_s *j);

/* Moves the journeys' clock to the real time plus offset_ms (tests:
 * omnigated --test-clock, POST /v1/test/clock); due steps fire at once. */
void og__durable_clock(og__durable_t *d, int64_t offset_ms);
int64_t og__durable_clock_offset(const og__durable_t *d);

#endif /* OG_CORE_DURABLE_H */
