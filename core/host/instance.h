/*
 * instance.h: a channel instance (the SDK's og_plugin_ctx_t): one plugin
 * running with one channels.d file, and the host services it is given.
 */
#ifndef OG_CORE_INSTANCE_H
#define OG_CORE_INSTANCE_H

#include <uv.h>

#include <omnigate/og_plugin.h>

#include "config/conf.h"
#include "event/event.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "host/plugin.h"

/* The outcome of an emit: see og_emit_cb. */
typedef void (*og__committed_cb)(void *data, og_err_t rc, const char *event_id,
                                 const char *customer);

/* What an instance shares with the rest of the process. */
typedef struct og__core_s {
    uv_loop_t *loop;
    og__http_t *http;
    /* Where accepted events go; returns OG_OK (cb, when not NULL, follows)
     * or an error (cb is not called), and takes its own reference when it
     * keeps the event. */
    og_err_t (*emit)(void *data, og_plugin_ctx_t *from, og_event_t *ev,
                     og__committed_cb cb, void *cbdata);
    /* n events stored all or none (og__durable_submit_group()); NULL: the
     * events are emitted one by one. */
    og_err_t (*emit_group)(void *data, og_plugin_ctx_t *from,
                           og_event_t *const *evs, size_t n,
                           og__committed_cb cb, void *const *cbdata);
    void *emit_data;
    size_t max_event_bytes;
    int stopping; /* shutting down: emit refuses new events */
    /* A delivery handed over by og__instance_deliver() finished (rc is
     * OG_ERR_CANCELLED when the instance stopped before it did). */
    void (*delivered)(void *data, og_plugin_ctx_t *inst, og_event_t *ev,
                      int64_t row, uint32_t attempts, og_err_t rc,
                      const char *reason, uint64_t retry_after_ms);
    void *delivered_data;
    /* The public listener plugins mount routes on; NULL when there is none
     * (or it closed for shutdown). */
    og__http_server_t *http_public;

    /* The host process of an isolated plugin (core/host/plugin_host.c) sets
     * these; NULL in the daemon. forward: the n envelopes a plugin
     * emitted, validated here, go to the daemon as they were sent (it
     * accepts them again); cb(cbdata[i], ...) reports each outcome.
     * metric: a counter's delta or a gauge's value. mounted: a route the
     * plugin mounted (on http_public, which does not listen). */
    og_err_t (*forward)(void *data, og_plugin_ctx_t *from,
                        const og_emit_item_t *items, size_t n,
                        og__committed_cb cb, void *const *cbdata);
    void (*metric)(void *data, og_plugin_ctx_t *from, const char *name,
                   int gauge, int64_t value);
    void (*mounted)(void *data, og_plugin_ctx_t *from, const char *method,
                    const char *path, size_t max_body);
} og__core_t;

typedef enum og__inst_state_e {
    OG__INST_INIT,  /* init() running */
    OG__INST_READY, /* initialised, not started */
    OG__INST_RUNNING,
    OG__INST_STOPPING, /* stop() called, waiting for in-flight work */
    OG__INST_STOPPED,  /* destroy() done */
    OG__INST_FAILED    /* init() or start() failed */
} og__inst_state_t;

const char *og__inst_state_name(og__inst_state_t s);

typedef struct og__metric_s {
    char name[64];
    int64_t value;
    int gauge;
} og__metric_t;

/* Upper bounds (seconds) of the delivery latency histogram's buckets. */
#define OG__LATENCY_BUCKETS 10
extern const double og__latency_bounds[OG__LATENCY_BUCKETS];

typedef void (*og__stopped_cb)(og_plugin_ctx_t *inst, void *data);

struct og_plugin_ctx_s {
    og__core_t *core;
    og__plugin_t *plugin;
    /* What init(), start(), send(), stop() and destroy() run: the
     * plugin's own descriptor, or the daemon's side of an isolated one
     * (core/host/isolate.c) */
    const og_plugin_def_t *ops;
    og__chconf_t *conf; /* owned copy */
    void *state;        /* the plugin's */
    og__inst_state_t st;
    char last_error[256];
    unsigned refs; /* owner + open uv handles */

    struct og_timer_s *timers;     /* live timers */
    struct og_delivery_s *pending; /* deliveries answered OG_PENDING */
    struct og__mount_s *mounts;    /* routes on the public listener */
    struct og_http_req_s *reqs;    /* requests not answered yet */
    size_t nreqs;

    size_t max_inflight; /* deliveries handed to send() at once */
    size_t npending;
    size_t nemits; /* og_emit_async() outcomes not reported yet */

    int stop_acked; /* stop() done or og_stopped() called */
    uv_timer_t stop_timer;
    int stop_timer_live;
    og__stopped_cb on_stopped;
    void *on_stopped_data;

    og__metric_t *metrics;
    size_t nmetrics;
    uint64_t events_in;       /* accepted from this instance */
    uint64_t events_refused;  /* invalid envelopes */
    uint64_t events_stripped; /* fields dropped from untrusted events */
    int checking; /* a configuration check: no core, nothing logged */
    uint64_t refused_by[OG__REFUSE_COUNT]; /* by reason code */
    uint64_t events_busy; /* refused because the queue was full */
    uint64_t deliveries_ok;
    uint64_t deliveries_retry;
    uint64_t deliveries_rejected;
    /* delivery latency, from acceptance to the plugin's result */
    uint64_t latency_buckets[OG__LATENCY_BUCKETS]; /* cumulative counts */
    uint64_t latency_count;
    double latency_sum;

    struct og_plugin_ctx_s *next; /* owner's list */
};

/*
 * og__instance_create: initialise plugin p (ownership moves to the
 * instance) for channel conf (copied). On init failure the plugin is
 * closed, NULL is returned and errbuf says why.
 */
og_plugin_ctx_t *og__instance_create(og__core_t *core, og__plugin_t *p,
                                     const og__chconf_t *conf, char *errbuf,
                                     size_t errlen);
/* The same with ops run for the plugin's lifecycle instead of its own
 * descriptor (NULL: its own); the descriptor still gives its name, keys
 * and capabilities. */
og_plugin_ctx_t *og__instance_create_with(og__core_t *core, og__plugin_t *p,
                                          const og_plugin_def_t *ops,
                                          const og__chconf_t *conf,
                                          char *errbuf, size_t errlen);
/* The server request behind a plugin's request. */
og__http_req_t *og__instance_req_raw(const og_http_req_t *r);
/* Runs the plugin's own configuration check (og_plugin_def_t.check, when
 * it has one) for channel conf: OG_OK, or the error with why set. */
og_err_t og__instance_check(og__plugin_t *p, const og__chconf_t *conf,
                            char *why, size_t whylen);
og_err_t og__instance_start(og_plugin_ctx_t *inst);
/* True when the instance takes a delivery now: running, with fewer than
 * max_inflight in flight. */
static inline int og__instance_can_take(const og_plugin_ctx_t *inst)
{
    return inst->st == OG__INST_RUNNING && inst->npending < inst->max_inflight;
}

/* Hands ev (outbox row, attempts so far) to the instance's send(); the
 * instance takes its own reference and reports the outcome through
 * core->delivered, possibly before returning. */
void og__instance_deliver(og_plugin_ctx_t *inst, og_event_t *ev, int64_t row,
                          uint32_t attempts);
/*
 * og__instance_stop: stop taking work, wait (up to timeout_ms) for the
 * plugin's og_stopped() and pending deliveries, cancel what it left
 * running, call destroy() and then cb. cb may free the instance.
 */
void og__instance_stop(og_plugin_ctx_t *inst, uint64_t timeout_ms,
                       og__stopped_cb cb, void *data);
/* Releases the instance once it is stopped or failed (may be deferred
 * until libuv closed its handles). */
void og__instance_free(og_plugin_ctx_t *inst);

const char *og__instance_name(const og_plugin_ctx_t *inst);

/* Releases the cached delivery records (at exit, for leak checkers). */
void og__instance_free_deliveries(void);

#endif /* OG_CORE_INSTANCE_H */
