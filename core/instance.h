/*
 * instance.h: a channel instance (the SDK's og_plugin_ctx_t): one plugin
 * running with one channels.d file, and the host services it is given.
 */
#ifndef OG_CORE_INSTANCE_H
#define OG_CORE_INSTANCE_H

#include <uv.h>

#include <omnigate/og_plugin.h>

#include "conf.h"
#include "event.h"
#include "evq.h"
#include "http_client.h"
#include "http_server.h"
#include "plugin.h"

/* What an instance shares with the rest of the process. */
typedef struct og__core_s {
    uv_loop_t *loop;
    og__http_t *http;
    /* Where accepted events go; returns OG_OK or OG_ERR_BUSY and takes its
     * own reference when it keeps the event. */
    og_err_t (*emit)(void *data, og_plugin_ctx_t *from, og_event_t *ev);
    void *emit_data;
    size_t max_event_bytes;
    int stopping; /* shutting down: emit refuses new events */
    /* Called when an instance can take queued deliveries again (a pending
     * delivery completed). */
    void (*kick)(void *data);
    void *kick_data;
    /* The public listener plugins mount routes on; NULL when there is none
     * (or it closed for shutdown). */
    og__http_server_t *http_public;
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

    /* The instance's delivery queue: events routed here wait until fewer
     * than max_inflight deliveries are pending. */
    og__evq_t q;
    size_t max_inflight;
    uint64_t overflow; /* events refused because the queue was full */
    size_t npending;

    int stop_acked; /* stop() done or og_stopped() called */
    uv_timer_t stop_timer;
    int stop_timer_live;
    og__stopped_cb on_stopped;
    void *on_stopped_data;

    og__metric_t *metrics;
    size_t nmetrics;
    uint64_t events_in;                    /* accepted from this instance */
    uint64_t events_refused;               /* invalid envelopes */
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
og_err_t og__instance_start(og_plugin_ctx_t *inst);
/*
 * og__instance_enqueue: deliver ev now when nothing waits and the
 * concurrency limit allows, else queue it (a reference is taken).
 * Returns OG_OK, or OG_ERR_BUSY when the instance's queue is full (counted
 * in inst->overflow) or OG_ERR_STOPPING when it no longer takes work.
 */
og_err_t og__instance_enqueue(og_plugin_ctx_t *inst, og_event_t *ev);
/* Delivers up to budget queued events while fewer than max_inflight are
 * pending; returns how many were handed to send(). */
size_t og__instance_drain(og_plugin_ctx_t *inst, size_t budget);
/* True when queued events could be delivered now. */
int og__instance_drainable(const og_plugin_ctx_t *inst);

/* Hands ev to the instance's send(); the instance takes its own ref. */
void og__instance_deliver(og_plugin_ctx_t *inst, og_event_t *ev);
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
