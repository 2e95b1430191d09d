/*
 * instance.c: channel instances and the host API table.
 *
 * Everything here runs on the loop thread. An instance is reference
 * counted: its owner holds one reference and every libuv handle it opened
 * (plugin timers, the stop timer) holds one until libuv's close callback,
 * so that memory is never freed under a pending close.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/instance.h"
#include "base/log.h"
#include "base/util.h"

struct og_timer_s {
    uv_timer_t h;
    og_plugin_ctx_t *inst;
    og_timer_cb cb;
    void *data;
    int closing;
    struct og_timer_s *prev, *next;
};

struct og_delivery_s {
    og_plugin_ctx_t *inst;
    og_event_t *ev;
    int64_t row;
    uint32_t attempts;
    uint64_t retry_after_ms;
    char key[128];
    struct og_delivery_s *prev, *next;
};

/* One route a plugin mounted. */
struct og__mount_s {
    og_plugin_ctx_t *inst;
    og_http_handler handler;
    og_http_auth_cb auth;
    void *data;
    struct og__mount_s *next;
};

/* A request handed to a plugin, until it responds. */
struct og_http_req_s {
    og__http_req_t *raw;
    og_plugin_ctx_t *inst;
    struct og_http_req_s *prev, *next;
};

const double og__latency_bounds[OG__LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5};

static void unmount_all(og_plugin_ctx_t *inst);
static void host_timer_stop(og_timer_t *t);

/*
 * Cancels what a plugin left running: its HTTP requests (callbacks first,
 * so that it can free per-request data), its timers and its routes.
 */
static void cancel_leftovers(og_plugin_ctx_t *inst)
{
    og__http_cancel_owner(inst->core->http, inst);
    while (inst->timers != NULL)
        host_timer_stop(inst->timers);
    unmount_all(inst);
}

const char *og__inst_state_name(og__inst_state_t s)
{
    switch (s) {
    case OG__INST_INIT: return "init";
    case OG__INST_READY: return "ready";
    case OG__INST_RUNNING: return "running";
    case OG__INST_STOPPING: return "stopping";
    case OG__INST_STOPPED: return "stopped";
    case OG__INST_FAILED: return "failed";
    }
    return "unknown";
}

const char *og__instance_name(const og_plugin_ctx_t *inst)
{
    return inst->conf->name;
}

static void inst_unref(og_plugin_ctx_t *inst)
{
    if (--inst->refs > 0)
        return;
    free(inst->metrics);
    og__plugin_close(inst->plugin);
    og__chconf_free(inst->conf);
    free(inst->conf);
    free(inst);
}

og_err_t og__instance_check(og__plugin_t *p, const og__chconf_t *conf,
                            char *why, size_t whylen)
{
    const og_plugin_def_t *def = p->def;
    og_plugin_ctx_t *inst;
    og_err_t rc;

    if (def->struct_size <
            offsetof(og_plugin_def_t, check) + sizeof(def->check) ||
        def->check == NULL)
        return OG_OK;
    inst = og__xcalloc(1, sizeof(*inst));
    inst->plugin = p;
    inst->conf = (og__chconf_t *)conf; /* borrowed: only read */
    inst->st = OG__INST_INIT;
    inst->checking = 1;
    why[0] = '\0';
    rc = def->check(inst, why, whylen);
    if (rc != OG_OK && why[0] == '\0')
        snprintf(why, whylen, "%s",
                 inst->last_error[0] ? inst->last_error : og_strerror(rc));
    free(inst);
    return rc;
}

og_plugin_ctx_t *og__instance_create(og__core_t *core, og__plugin_t *p,
                                     const og__chconf_t *conf, char *errbuf,
                                     size_t errlen)
{
    return og__instance_create_with(core, p, NULL, conf, errbuf, errlen);
}

og_plugin_ctx_t *og__instance_create_with(og__core_t *core, og__plugin_t *p,
                                          const og_plugin_def_t *ops,
                                          const og__chconf_t *conf,
                                          char *errbuf, size_t errlen)
{
    og_plugin_ctx_t *inst = og__xcalloc(1, sizeof(*inst));
    og_err_t rc;

    inst->core = core;
    inst->plugin = p;
    inst->ops = ops != NULL ? ops : p->def;
    inst->conf = og__chconf_dup(conf);
    inst->refs = 1;
    inst->st = OG__INST_INIT;
    inst->max_inflight =
        conf->max_inflight > 0 ? (size_t)conf->max_inflight : 64;
    rc = inst->ops->init(inst, &inst->state);
    if (rc != OG_OK) {
        snprintf(errbuf, errlen, "plugin '%s' failed to initialise: %s%s%s",
                 p->def->name, og_strerror(rc), inst->last_error[0] ? ": " : "",
                 inst->last_error);
        /* init failed: destroy() is not called; drop anything it started. */
        cancel_leftovers(inst);
        inst->st = OG__INST_FAILED;
        inst_unref(inst);
        return NULL;
    }
    inst->st = OG__INST_READY;
    return inst;
}

static void teardown(og_plugin_ctx_t *inst);

og_err_t og__instance_start(og_plugin_ctx_t *inst)
{
    og_err_t rc = OG_OK;

    if (inst->st != OG__INST_READY)
        return OG_ERR_INVALID;
    inst->st = OG__INST_RUNNING;
    if (inst->ops->start != NULL)
        rc = inst->ops->start(inst->state);
    if (rc != OG_OK) {
        snprintf(inst->last_error, sizeof(inst->last_error),
                 "plugin '%s' failed to start: %s", inst->plugin->def->name,
                 og_strerror(rc));
        teardown(inst); /* init succeeded, so destroy() is owed */
        inst->st = OG__INST_FAILED;
    }
    return rc;
}

/* ---- deliveries ----------------------------------------------------- */

static void delivery_unlink(struct og_delivery_s *d)
{
    og_plugin_ctx_t *inst = d->inst;

    if (d->prev)
        d->prev->next = d->next;
    else
        inst->pending = d->next;
    if (d->next)
        d->next->prev = d->prev;
    inst->npending--;
}

static void maybe_finish_stop(og_plugin_ctx_t *inst);

/* Accounts for a delivery's outcome (sync or completed later). */
static void delivery_result(og_plugin_ctx_t *inst, const og_event_t *ev,
                            og_err_t rc, const char *reason)
{
    const char *name = og__instance_name(inst);
    double secs = (double)(uv_hrtime() - ev->accepted_ns) / 1e9;
    size_t i;

    for (i = 0; i < OG__LATENCY_BUCKETS; i++)
        if (secs <= og__latency_bounds[i])
            inst->latency_buckets[i]++;
    inst->latency_count++;
    inst->latency_sum += secs;
    switch ((int)rc) {
    case OG_OK: inst->deliveries_ok++; break;
    case OG_ERR_RETRY:
        inst->deliveries_retry++;
        og__log(OG_LOG_WARNING, name,
                "delivery of %s (%s) failed "
                "transiently%s%s",
                ev->id, ev->type, reason ? ": " : "", reason ? reason : "");
        break;
    case OG_ERR_REJECTED:
        inst->deliveries_rejected++;
        og__log(OG_LOG_WARNING, name, "delivery of %s (%s) rejected%s%s",
                ev->id, ev->type, reason ? ": " : "", reason ? reason : "");
        break;
    default:
        inst->deliveries_rejected++;
        og__log(OG_LOG_ERROR, name,
                "send() of %s returned %d (%s), which "
                "is not a delivery result; counted as rejected",
                ev->id, (int)rc, og_err_name(rc));
        break;
    }
}

static void delivery_free(struct og_delivery_s *d);

/* Unlinks d, drops its event reference and recycles it. */
static void delivery_release(struct og_delivery_s *d)
{
    delivery_unlink(d);
    og__event_unref(d->ev);
    delivery_free(d);
}

/* Accounts for d's outcome, reports it and releases d. */
static void delivery_finish(struct og_delivery_s *d, og_err_t rc,
                            const char *reason)
{
    og__core_t *core = d->inst->core;

    if (rc != OG_ERR_CANCELLED)
        delivery_result(d->inst, d->ev, rc, reason);
    if (rc == OG_OK)
        og__crashpoint("delivered");
    if (core->delivered != NULL)
        core->delivered(core->delivered_data, d->inst, d->ev, d->row,
                        d->attempts, rc, reason, d->retry_after_ms);
    delivery_release(d);
}

/* Delivery records come from a small free list: one per event and
 * destination otherwise costs a malloc and a free. Loop thread only. */
static struct og_delivery_s *free_deliveries;
static size_t nfree_deliveries;

static struct og_delivery_s *delivery_new(void)
{
    struct og_delivery_s *d = free_deliveries;

    if (d == NULL)
        return og__xcalloc(1, sizeof(*d));
    free_deliveries = d->next;
    nfree_deliveries--;
    memset(d, 0, sizeof(*d));
    return d;
}

static void delivery_free(struct og_delivery_s *d)
{
    if (nfree_deliveries >= 1024) {
        free(d);
        return;
    }
    d->next = free_deliveries;
    free_deliveries = d;
    nfree_deliveries++;
}

void og__instance_free_deliveries(void)
{
    while (free_deliveries != NULL) {
        struct og_delivery_s *d = free_deliveries;
        free_deliveries = d->next;
        free(d);
    }
    nfree_deliveries = 0;
}

void og__instance_deliver(og_plugin_ctx_t *inst, og_event_t *ev, int64_t row,
                          uint32_t attempts)
{
    struct og_delivery_s *d;
    og_err_t rc;

    d = delivery_new();
    d->inst = inst;
    d->ev = og__event_ref(ev);
    d->row = row;
    d->attempts = attempts;
    /* d->key is built on first use (og_delivery_key()). */
    /* Linked before send() so that a synchronous og_delivery_complete()
     * from inside send() finds it. */
    d->next = inst->pending;
    if (inst->pending)
        inst->pending->prev = d;
    inst->pending = d;
    inst->npending++;
    if (inst->st != OG__INST_RUNNING || inst->ops->send == NULL) {
        delivery_finish(d, OG_ERR_CANCELLED, NULL);
        return;
    }
    inst->refs++;
    rc = inst->ops->send(inst->state, ev, d);
    if (rc != OG_PENDING)
        delivery_finish(d, rc, NULL);
    inst_unref(inst);
}

static const char *host_delivery_key(const og_delivery_t *cd)
{
    og_delivery_t *d = (og_delivery_t *)cd; /* lazily built cache */

    if (d->key[0] == '\0')
        snprintf(d->key, sizeof(d->key), "%s/%s", d->ev->id,
                 og__instance_name(d->inst));
    return d->key;
}

static void host_delivery_complete(og_delivery_t *d, og_err_t result,
                                   const char *reason)
{
    og_plugin_ctx_t *inst;

    if (d == NULL)
        return;
    inst = d->inst;
    if (result == OG_PENDING)
        result = OG_ERR_INTERNAL;
    delivery_finish(d, result, reason);
    if (inst->st == OG__INST_STOPPING)
        maybe_finish_stop(inst);
}

/* ---- timers --------------------------------------------------------- */

static void timer_closed(uv_handle_t *h)
{
    struct og_timer_s *t = h->data;
    og_plugin_ctx_t *inst = t->inst;

    free(t);
    inst_unref(inst);
}

static void timer_fired(uv_timer_t *h)
{
    struct og_timer_s *t = h->data;

    t->cb(t, t->data);
}

static og_timer_t *host_timer_start(og_plugin_ctx_t *inst, uint64_t timeout_ms,
                                    uint64_t repeat_ms, og_timer_cb cb,
                                    void *data)
{
    struct og_timer_s *t;

    if (inst == NULL || cb == NULL || inst->st == OG__INST_STOPPED ||
        inst->st == OG__INST_FAILED)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    uv_timer_init(inst->core->loop, &t->h);
    t->h.data = t;
    t->inst = inst;
    t->cb = cb;
    t->data = data;
    t->next = inst->timers;
    if (inst->timers)
        inst->timers->prev = t;
    inst->timers = t;
    inst->refs++;
    uv_timer_start(&t->h, timer_fired, timeout_ms, repeat_ms);
    return t;
}

static void host_timer_stop(og_timer_t *t)
{
    og_plugin_ctx_t *inst;

    if (t == NULL || t->closing)
        return;
    inst = t->inst;
    t->closing = 1;
    if (t->prev)
        t->prev->next = t->next;
    else
        inst->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    uv_timer_stop(&t->h);
    uv_close((uv_handle_t *)&t->h, timer_closed);
}

/* ---- stopping ------------------------------------------------------- */

static void stop_timer_closed(uv_handle_t *h)
{
    inst_unref(h->data);
}

/* Cancels what the plugin left running, calls destroy() and drops
 * abandoned deliveries. */
static void teardown(og_plugin_ctx_t *inst)
{
    inst->st = OG__INST_STOPPING;
    inst->stop_acked = 1; /* refuse new HTTP requests from callbacks */
    cancel_leftovers(inst);
    inst->ops->destroy(inst->state);
    inst->state = NULL;
    while (inst->pending != NULL)
        delivery_finish(inst->pending, OG_ERR_CANCELLED, NULL);
}

static void finish_stop(og_plugin_ctx_t *inst, int timed_out)
{
    const char *name = og__instance_name(inst);
    size_t abandoned = inst->npending;

    if (inst->stop_timer_live) {
        uv_timer_stop(&inst->stop_timer);
        uv_close((uv_handle_t *)&inst->stop_timer, stop_timer_closed);
        inst->stop_timer_live = 0;
    }
    if (timed_out)
        og__log(OG_LOG_WARNING, name,
                "shutdown timeout reached with %zu deliveries in flight "
                "(delivered again later)%s",
                abandoned, inst->stop_acked ? "" : "; stop() unfinished");
    teardown(inst);
    inst->st = OG__INST_STOPPED;
    og__log(OG_LOG_INFO, name, "stopped");
    if (inst->on_stopped != NULL)
        inst->on_stopped(inst, inst->on_stopped_data);
}

static void maybe_finish_stop(og_plugin_ctx_t *inst)
{
    if (inst->st == OG__INST_STOPPING && inst->stop_acked &&
        inst->npending == 0 && inst->nreqs == 0 && inst->nemits == 0 &&
        og__http_inflight(inst->core->http, inst) == 0)
        finish_stop(inst, 0);
}

static void stop_timeout(uv_timer_t *h)
{
    og_plugin_ctx_t *inst = h->data;

    if (inst->st == OG__INST_STOPPING)
        finish_stop(inst, 1);
}

static void host_stopped(og_plugin_ctx_t *inst)
{
    if (inst == NULL || inst->st != OG__INST_STOPPING || inst->stop_acked)
        return;
    inst->stop_acked = 1;
    maybe_finish_stop(inst);
}

void og__instance_stop(og_plugin_ctx_t *inst, uint64_t timeout_ms,
                       og__stopped_cb cb, void *data)
{
    og_err_t rc = OG_OK;

    inst->on_stopped = cb;
    inst->on_stopped_data = data;
    if (inst->st != OG__INST_RUNNING && inst->st != OG__INST_READY) {
        if (cb != NULL)
            cb(inst, data);
        return;
    }
    inst->st = OG__INST_STOPPING;
    if (inst->ops->stop != NULL)
        rc = inst->ops->stop(inst->state);
    if (rc != OG_PENDING)
        inst->stop_acked = 1;
    if (inst->stop_acked && inst->npending == 0 && inst->nreqs == 0 &&
        inst->nemits == 0 && og__http_inflight(inst->core->http, inst) == 0) {
        finish_stop(inst, 0);
        return;
    }
    uv_timer_init(inst->core->loop, &inst->stop_timer);
    inst->stop_timer.data = inst;
    inst->stop_timer_live = 1;
    inst->refs++;
    uv_timer_start(&inst->stop_timer, stop_timeout, timeout_ms, 0);
}

void og__instance_free(og_plugin_ctx_t *inst)
{
    if (inst != NULL)
        inst_unref(inst);
}

/* ---- host API ------------------------------------------------------- */

static const char *host_version(void)
{
    return PACKAGE_VERSION;
}

static void host_vlog(og_plugin_ctx_t *inst, og_log_level_t level,
                      const char *fmt, va_list ap)
{
    if (level < OG_LOG_ERROR)
        level = OG_LOG_ERROR;
    if (level > OG_LOG_DEBUG)
        level = OG_LOG_DEBUG;
    if (inst != NULL && level <= OG_LOG_WARNING && inst->st == OG__INST_INIT) {
        /* Keep the last problem init() reported for the failure line. */
        va_list copy;
        va_copy(copy, ap);
        vsnprintf(inst->last_error, sizeof(inst->last_error), fmt, copy);
        va_end(copy);
    }
    if (inst != NULL && inst->checking)
        return; /* the check reports it once, with the file and line */
    og__vlog(level, inst ? og__instance_name(inst) : "plugin", fmt, ap);
}

static const char *host_instance_name(og_plugin_ctx_t *inst)
{
    return inst ? og__instance_name(inst) : NULL;
}

static struct uv_loop_s *host_loop(og_plugin_ctx_t *inst)
{
    return inst && inst->core ? inst->core->loop : NULL;
}

/* Finds the value (or default) of key, checking its declared type. */
static og_err_t config_value(og_plugin_ctx_t *inst, const char *key,
                             og_config_type_t type, const char **value)
{
    const og_config_field_t *f;
    const og__opt_t *o;

    if (inst == NULL || key == NULL || value == NULL)
        return OG_ERR_INVALID;
    f = og__plugin_field(inst->plugin, key);
    if (f == NULL)
        return OG_ERR_NOT_FOUND;
    if (f->type != type)
        return OG_ERR_TYPE;
    o = og__chconf_opt(inst->conf, key);
    if (o != NULL)
        *value = o->value;
    else if (f->default_value != NULL)
        *value = f->default_value;
    else
        return OG_ERR_NOT_FOUND;
    return OG_OK;
}

static og_err_t host_config_get_str(og_plugin_ctx_t *inst, const char *key,
                                    const char **value)
{
    return config_value(inst, key, OG_CFG_STRING, value);
}

static og_err_t host_config_get_int(og_plugin_ctx_t *inst, const char *key,
                                    int64_t *value)
{
    const char *s;
    char why[64];
    og_err_t rc = config_value(inst, key, OG_CFG_INT, &s);

    return rc != OG_OK ? rc : og__parse_int(s, value, why, sizeof(why));
}

static og_err_t host_config_get_bool(og_plugin_ctx_t *inst, const char *key,
                                     int *value)
{
    const char *s;
    char why[64];
    og_err_t rc = config_value(inst, key, OG_CFG_BOOL, &s);

    return rc != OG_OK ? rc : og__parse_bool(s, value, why, sizeof(why));
}

static og_err_t host_config_get_duration(og_plugin_ctx_t *inst, const char *key,
                                         uint64_t *value)
{
    const char *s;
    char why[64];
    og_err_t rc = config_value(inst, key, OG_CFG_DURATION, &s);

    return rc != OG_OK ? rc : og__parse_duration_ms(s, value, why, sizeof(why));
}

static og_err_t host_config_get_size(og_plugin_ctx_t *inst, const char *key,
                                     uint64_t *value)
{
    const char *s;
    char why[64];
    og_err_t rc = config_value(inst, key, OG_CFG_SIZE, &s);

    return rc != OG_OK ? rc : og__parse_size(s, value, why, sizeof(why));
}

/* An og_emit_async() waiting for its outcome; holds the instance. */
struct emit_wait {
    og_plugin_ctx_t *inst;
    og_emit_cb cb;
    void *data;
};

/* Whether a plugin's callback may still run: never into a plugin whose
 * destroy() ran (shutdown timeout). */
static int can_call_back(const og_plugin_ctx_t *inst)
{
    return inst->st == OG__INST_RUNNING || inst->st == OG__INST_STOPPING;
}

/* An asynchronous emit (one event or a batch) has called back. */
static void emit_finished(og_plugin_ctx_t *inst)
{
    inst->nemits--;
    if (inst->st == OG__INST_STOPPING)
        maybe_finish_stop(inst);
    inst_unref(inst);
}

/* OG_OK when inst may emit now, else why not. */
static og_err_t may_emit(const og_plugin_ctx_t *inst)
{
    if (inst->core->stopping || inst->st == OG__INST_STOPPING ||
        inst->st == OG__INST_STOPPED || inst->st == OG__INST_FAILED)
        return OG_ERR_STOPPING;
    return OG_OK;
}

/* Validates and stamps one envelope of inst; a refusal is counted and
 * logged (prefix says which event of what), its reason left in why. */
static og_event_t *accept_one(og_plugin_ctx_t *inst, const uint8_t *bytes,
                              size_t len, unsigned flags, og_err_t *rc,
                              char *why, size_t whylen, const char *prefix)
{
    og__refusal_t reason;
    og_event_t *ev = og__event_accept_flags(
        bytes, len, og__instance_name(inst), inst->plugin->def->name,
        inst->core->max_event_bytes, flags, rc, &reason, why, whylen);

    if (ev != NULL && ev->stripped > 0)
        inst->events_stripped += ev->stripped;
    if (ev == NULL) {
        inst->events_refused++;
        inst->refused_by[reason]++;
        og__log(OG_LOG_WARNING, og__instance_name(inst),
                "%sevent refused (%s): %s", prefix, og__refusal_name(reason),
                why);
    }
    return ev;
}

static void emit_done(void *data, og_err_t rc, const char *event_id,
                      const char *customer)
{
    struct emit_wait *w = data;
    og_plugin_ctx_t *inst = w->inst;

    if (can_call_back(inst))
        w->cb(w->data, rc, rc == OG_OK ? event_id : NULL);
    (void)customer; /* og_emit_cb has no place for it */
    free(w);
    emit_finished(inst);
}

static og_err_t emit_common(og_plugin_ctx_t *inst, const uint8_t *bytes,
                            size_t len, og_emit_cb cb, void *data)
{
    char why[256];
    og_err_t rc;
    og_event_t *ev;
    struct emit_wait *w = NULL;

    if (inst == NULL)
        return OG_ERR_INVALID;
    if ((rc = may_emit(inst)) != OG_OK)
        return rc;
    ev = accept_one(inst, bytes, len, 0, &rc, why, sizeof(why), "");
    if (ev == NULL)
        return rc;
    if (cb != NULL) {
        w = og__xmalloc(sizeof(*w));
        w->inst = inst;
        w->cb = cb;
        w->data = data;
    }
    if (inst->core->forward != NULL) { /* an isolated plugin's host */
        og_emit_item_t item = {bytes, len, 0};
        void *cbdata = w;

        rc = inst->core->forward(inst->core->emit_data, inst, &item, 1,
                                 w ? emit_done : NULL, &cbdata);
    } else {
        rc = inst->core->emit(inst->core->emit_data, inst, ev,
                              w ? emit_done : NULL, w);
    }
    if (rc == OG_OK) {
        inst->events_in++;
        if (w != NULL) {
            inst->nemits++;
            inst->refs++;
        }
    } else {
        free(w);
        if (rc == OG_ERR_BUSY)
            inst->events_busy++;
    }
    og__event_unref(ev);
    return rc;
}

/* An og_emit_batch_async() waiting for the outcome of its events. */
struct batch_wait {
    og_plugin_ctx_t *inst;
    og_emit_batch_cb cb;
    void *data;
    size_t n, pending;
    og_err_t *results;
    char **ids;
    char **customers;
    struct batch_one {
        struct batch_wait *b;
        size_t i;
    } * ones;
};

static void batch_free(struct batch_wait *b)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        free(b->ids[i]);
        free(b->customers[i]);
    }
    free(b->ids);
    free(b->customers);
    free(b->results);
    free(b->ones);
    free(b);
}

static void batch_done(void *data, og_err_t rc, const char *event_id,
                       const char *customer)
{
    struct batch_one *o = data;
    struct batch_wait *b = o->b;
    og_plugin_ctx_t *inst = b->inst;
    og_err_t all = OG_OK;
    size_t i;

    b->results[o->i] = rc;
    b->ids[o->i] = rc == OG_OK && event_id ? og__xstrdup(event_id) : NULL;
    b->customers[o->i] = customer ? og__xstrdup(customer) : NULL;
    if (--b->pending > 0)
        return;
    /* One outcome for the batch: a conflict names the culprits, else the
     * first failure. */
    for (i = 0; i < b->n; i++)
        if (b->results[i] == OG_ERR_CONFLICT)
            all = OG_ERR_CONFLICT;
    for (i = 0; i < b->n && all == OG_OK; i++)
        all = b->results[i];
    if (can_call_back(inst))
        b->cb(b->data, all, b->n, b->results, (const char *const *)b->ids,
              (const char *const *)b->customers);
    batch_free(b);
    emit_finished(inst);
}

static og_err_t host_emit_batch_async(og_plugin_ctx_t *inst,
                                      const og_emit_item_t *items, size_t n,
                                      size_t *bad, char *why, size_t whylen,
                                      og_emit_batch_cb cb, void *data)
{
    og_event_t **evs;
    struct batch_wait *b;
    char reason[256], prefix[64];
    og_err_t rc = OG_OK;
    size_t i, k;

    if (inst == NULL || cb == NULL || items == NULL || n == 0)
        return OG_ERR_INVALID;
    if ((rc = may_emit(inst)) != OG_OK)
        return rc;
    evs = og__xcalloc(n, sizeof(*evs));
    for (i = 0; i < n; i++) {
        snprintf(prefix, sizeof(prefix), "batch of %zu refused: %zu: ", n, i);
        evs[i] = accept_one(
            inst, items[i].msgpack, items[i].len,
            (items[i].flags & OG_EMIT_UNTRUSTED) ? OG__ACCEPT_UNTRUSTED : 0,
            &rc, reason, sizeof(reason), prefix);
        if (evs[i] != NULL && (items[i].flags & OG_EMIT_VENDOR_RETRIES))
            og__event_content_by_vendor(evs[i]);
        if (evs[i] == NULL) {
            if (bad != NULL)
                *bad = i;
            if (why != NULL && whylen > 0)
                snprintf(why, whylen, "%s", reason);
            for (k = 0; k < i; k++)
                og__event_unref(evs[k]);
            free(evs);
            return rc;
        }
    }
    b = og__xcalloc(1, sizeof(*b));
    b->inst = inst;
    b->cb = cb;
    b->data = data;
    b->n = b->pending = n;
    b->results = og__xcalloc(n, sizeof(*b->results));
    b->ids = og__xcalloc(n, sizeof(*b->ids));
    b->customers = og__xcalloc(n, sizeof(*b->customers));
    b->ones = og__xcalloc(n, sizeof(*b->ones));
    {
        void **cbdata = og__xcalloc(n, sizeof(*cbdata));

        for (i = 0; i < n; i++) {
            b->ones[i].b = b;
            b->ones[i].i = i;
            cbdata[i] = &b->ones[i];
        }
        if (inst->core->forward != NULL) { /* an isolated plugin's host */
            rc = inst->core->forward(inst->core->emit_data, inst, items, n,
                                     batch_done, (void *const *)cbdata);
        } else if (inst->core->emit_group != NULL) {
            rc = inst->core->emit_group(inst->core->emit_data, inst, evs, n,
                                        batch_done, (void *const *)cbdata);
        } else { /* one by one (the plugin test host): not atomic */
            for (i = 0; i < n; i++) {
                rc = inst->core->emit(inst->core->emit_data, inst, evs[i],
                                      batch_done, cbdata[i]);
                if (rc != OG_OK)
                    break;
            }
            if (rc != OG_OK && i > 0) {
                /* those taken cannot be undone: the rest is reported as
                 * failed with the batch's outcome */
                for (k = i; k < n; k++)
                    b->results[k] = rc;
                b->pending = i;
                rc = OG_OK;
            }
        }
        free(cbdata);
    }
    if (rc == OG_OK && b->pending > 0) {
        inst->events_in += b->pending;
        inst->nemits++;
        inst->refs++;
    } else {
        if (rc == OG_ERR_BUSY)
            inst->events_busy += n;
        batch_free(b);
    }
    for (i = 0; i < n; i++)
        og__event_unref(evs[i]);
    free(evs);
    return rc;
}

static og_err_t host_emit(og_plugin_ctx_t *inst, const uint8_t *bytes,
                          size_t len)
{
    return emit_common(inst, bytes, len, NULL, NULL);
}

static og_err_t host_emit_async(og_plugin_ctx_t *inst, const uint8_t *bytes,
                                size_t len, og_emit_cb cb, void *data)
{
    if (cb == NULL)
        return OG_ERR_INVALID;
    return emit_common(inst, bytes, len, cb, data);
}

static og_err_t builder_emit(og_event_builder_t *b, og_emit_cb cb, void *data,
                             int async)
{
    uint8_t *bytes;
    size_t len;
    og_err_t rc;

    if (b == NULL)
        return OG_ERR_INVALID;
    rc = og__builder_encode(b, &bytes, &len);
    if (rc == OG_OK) {
        rc = async ? host_emit_async(og__builder_ctx(b), bytes, len, cb, data)
                   : host_emit(og__builder_ctx(b), bytes, len);
        free(bytes);
    }
    og__builder_destroy(b);
    return rc;
}

static og_err_t host_builder_emit(og_event_builder_t *b)
{
    return builder_emit(b, NULL, NULL, 0);
}

static og_err_t host_builder_emit_async(og_event_builder_t *b, og_emit_cb cb,
                                        void *data)
{
    return builder_emit(b, cb, data, 1);
}

static void host_delivery_retry_after(og_delivery_t *d, uint64_t delay_ms)
{
    if (d != NULL)
        d->retry_after_ms = delay_ms;
}

/* OG_OK when inst may start outbound transfers now. */
static og_err_t may_call_out(const og_plugin_ctx_t *inst)
{
    if (inst == NULL)
        return OG_ERR_INVALID;
    if (inst->st != OG__INST_RUNNING && inst->st != OG__INST_READY &&
        inst->st != OG__INST_INIT &&
        !(inst->st == OG__INST_STOPPING && !inst->stop_acked))
        return OG_ERR_STOPPING;
    return OG_OK;
}

static og_err_t host_http_request(og_plugin_ctx_t *inst,
                                  const og_http_request_t *req, og_http_cb cb,
                                  void *data)
{
    og_err_t rc = may_call_out(inst);

    return rc != OG_OK
               ? rc
               : og__http_request(inst->core->http, inst, req, cb, data);
}

static og_err_t host_curl_run(og_plugin_ctx_t *inst, void *easy, og_curl_cb cb,
                              void *data)
{
    og_err_t rc = may_call_out(inst);

    return rc != OG_OK
               ? rc
               : og__http_run_easy(inst->core->http, inst, easy, cb, data);
}

static og__metric_t *metric(og_plugin_ctx_t *inst, const char *name, int gauge)
{
    size_t i;

    if (inst == NULL || !og__is_ident(name, 0) || strlen(name) >= 64)
        return NULL;
    for (i = 0; i < inst->nmetrics; i++)
        if (strcmp(inst->metrics[i].name, name) == 0)
            return inst->metrics[i].gauge == gauge ? &inst->metrics[i] : NULL;
    if (inst->nmetrics >= 256)
        return NULL; /* bounded: a plugin cannot grow memory by names */
    inst->metrics = og__xrealloc(inst->metrics,
                                 (inst->nmetrics + 1) * sizeof(*inst->metrics));
    memset(&inst->metrics[inst->nmetrics], 0, sizeof(og__metric_t));
    snprintf(inst->metrics[inst->nmetrics].name, 64, "%s", name);
    inst->metrics[inst->nmetrics].gauge = gauge;
    return &inst->metrics[inst->nmetrics++];
}

static void host_counter_add(og_plugin_ctx_t *inst, const char *name,
                             uint64_t delta)
{
    og__metric_t *m = metric(inst, name, 0);

    if (m != NULL)
        m->value += (int64_t)delta;
    if (m != NULL && inst->core != NULL && inst->core->metric != NULL)
        inst->core->metric(inst->core->emit_data, inst, name, 0,
                           (int64_t)delta);
}

static void host_gauge_set(og_plugin_ctx_t *inst, const char *name,
                           int64_t value)
{
    og__metric_t *m = metric(inst, name, 1);

    if (m != NULL)
        m->value = value;
    if (m != NULL && inst->core != NULL && inst->core->metric != NULL)
        inst->core->metric(inst->core->emit_data, inst, name, 1, value);
}

/* ---- HTTP routes on the public listener ---------------------------- */

static void req_unlink(struct og_http_req_s *r)
{
    og_plugin_ctx_t *inst = r->inst;

    if (r->prev)
        r->prev->next = r->next;
    else
        inst->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    inst->nreqs--;
}

static void mount_handler(void *data, og__http_req_t *raw)
{
    struct og__mount_s *m = data;
    og_plugin_ctx_t *inst = m->inst;
    struct og_http_req_s *r;

    if (inst->st != OG__INST_RUNNING) {
        static const char *const retry[] = {"Retry-After: 5", NULL};
        char body[200];
        int n = snprintf(body, sizeof(body),
                         "{\"error\":\"channel '%s' is not running\"}",
                         og__instance_name(inst));
        og__http_respond(raw, 503, "application/json", retry, body, (size_t)n);
        return;
    }
    r = og__xcalloc(1, sizeof(*r));
    r->raw = raw;
    r->inst = inst;
    r->next = inst->reqs;
    if (inst->reqs)
        inst->reqs->prev = r;
    inst->reqs = r;
    inst->nreqs++;
    if (m->auth != NULL && m->auth(m->data, r) != OG_OK) {
        static const char body[] = "{\"error\":\"unauthorized\"}";
        req_unlink(r);
        og__http_respond(raw, 401, "application/json", NULL, body,
                         sizeof(body) - 1);
        free(r);
        return;
    }
    m->handler(m->data, r);
}

static og_err_t host_http_mount(og_plugin_ctx_t *inst,
                                const og_http_route_t *route)
{
    og__http_server_t *srv;
    struct og__mount_s *m;
    void *owner;
    const char *c;

    if (inst == NULL || route == NULL ||
        route->struct_size < offsetof(og_http_route_t, data) + sizeof(void *) ||
        route->path == NULL || route->path[0] != '/' || route->handler == NULL)
        return OG_ERR_INVALID;
    for (c = route->method; c != NULL && *c != '\0'; c++)
        if (*c < 'A' || *c > 'Z')
            return OG_ERR_INVALID;
    srv = inst->core->http_public;
    if (srv == NULL)
        return OG_ERR_UNSUPPORTED;
    owner = og__http_server_owner(srv, route->method, route->path);
    if (owner != NULL && owner != inst) {
        og__log(OG_LOG_ERROR, og__instance_name(inst),
                "cannot mount %s %s: already mounted by channel '%s'",
                route->method ? route->method : "*", route->path,
                og__instance_name(owner));
        return OG_ERR_BUSY;
    }
    m = og__xcalloc(1, sizeof(*m));
    m->inst = inst;
    m->handler = route->handler;
    m->auth = route->auth;
    m->data = route->data;
    m->next = inst->mounts;
    inst->mounts = m;
    og__http_server_mount(srv, route->method, route->path, route->max_body,
                          mount_handler, m, inst);
    og__log(OG_LOG_INFO, og__instance_name(inst), "mounted %s %s",
            route->method ? route->method : "*", route->path);
    if (inst->core->mounted != NULL)
        inst->core->mounted(inst->core->emit_data, inst, route->method,
                            route->path, route->max_body);
    return OG_OK;
}

/* Unmounts the instance's routes and answers what it left unanswered. */
static void unmount_all(og_plugin_ctx_t *inst)
{
    static const char body[] = "{\"error\":\"channel stopped\"}";
    struct og__mount_s *m, *next;

    if (inst->core->http_public != NULL)
        og__http_server_unmount(inst->core->http_public, inst);
    for (m = inst->mounts; m != NULL; m = next) {
        next = m->next;
        free(m);
    }
    inst->mounts = NULL;
    while (inst->reqs != NULL) {
        struct og_http_req_s *r = inst->reqs;

        req_unlink(r);
        og__http_respond(r->raw, 503, "application/json", NULL, body,
                         sizeof(body) - 1);
        free(r);
    }
}

og__http_req_t *og__instance_req_raw(const og_http_req_t *r)
{
    return r->raw;
}

static const char *host_req_method(const og_http_req_t *r)
{
    return og__http_req_method(r->raw);
}

static const char *host_req_path(const og_http_req_t *r)
{
    return og__http_req_path(r->raw);
}

static const char *host_req_query(const og_http_req_t *r)
{
    return og__http_req_query(r->raw);
}

static const char *host_req_header(const og_http_req_t *r, const char *name)
{
    return og__http_req_header(r->raw, name);
}

static const uint8_t *host_req_body(const og_http_req_t *r, size_t *len)
{
    return og__http_req_body(r->raw, len);
}

static void host_http_respond(og_http_req_t *r, int status,
                              const char *content_type,
                              const char *const *headers, const void *body,
                              size_t len)
{
    og_plugin_ctx_t *inst;

    if (r == NULL)
        return;
    inst = r->inst;
    req_unlink(r);
    if (status < 100 || status > 599)
        status = 500;
    og__http_respond(r->raw, status, content_type, headers, body, len);
    free(r);
    if (inst->st == OG__INST_STOPPING)
        maybe_finish_stop(inst);
}

const og_host_api_t og__host_api = {
    .struct_size = sizeof(og_host_api_t),
    .abi_major = OG_SDK_ABI_MAJOR,
    .abi_minor = OG_SDK_ABI_MINOR,
    .version = host_version,
    .vlog = host_vlog,
    .instance_name = host_instance_name,
    .loop = host_loop,
    .config_get_str = host_config_get_str,
    .config_get_int = host_config_get_int,
    .config_get_bool = host_config_get_bool,
    .config_get_duration_ms = host_config_get_duration,
    .config_get_size = host_config_get_size,
    .emit = host_emit,
    .builder_create = og__builder_create,
    .builder_set_str = og__builder_set_str,
    .builder_set_int = og__builder_set_int,
    .builder_set_double = og__builder_set_double,
    .builder_set_bool = og__builder_set_bool,
    .builder_set_msgpack = og__builder_set_msgpack,
    .builder_add_identity = og__builder_add_identity,
    .builder_emit = host_builder_emit,
    .builder_destroy = og__builder_destroy,
    .event_type = og__event_type,
    .event_id = og__event_id,
    .event_data = og__event_data,
    .event_get_str = og__event_get_str,
    .event_get_int = og__event_get_int,
    .event_get_bool = og__event_get_bool,
    .delivery_key = host_delivery_key,
    .delivery_complete = host_delivery_complete,
    .stopped = host_stopped,
    .timer_start = host_timer_start,
    .timer_stop = host_timer_stop,
    .http_request = host_http_request,
    .counter_add = host_counter_add,
    .gauge_set = host_gauge_set,
    .http_mount = host_http_mount,
    .http_req_method = host_req_method,
    .http_req_path = host_req_path,
    .http_req_query = host_req_query,
    .http_req_header = host_req_header,
    .http_req_body = host_req_body,
    .http_respond = host_http_respond,
    .emit_async = host_emit_async,
    .emit_batch_async = host_emit_batch_async,
    .curl_run = host_curl_run,
    .builder_emit_async = host_builder_emit_async,
    .delivery_retry_after = host_delivery_retry_after,
};
