/*
 * testhost.c: the plugin test host. It uses the core's own loader, channel
 * instances, timers and HTTP client; only the event sink differs.
 */
#include "config.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omnigate/og_testhost.h>

#include "event/event.h"
#include "net/http_server.h"
#include "host/instance.h"
#include "base/log.h"
#include "host/plugin.h"
#include "base/util.h"

#define MAX_LOG_LINES 4096

struct og_testhost_s {
    uv_loop_t loop;
    og__core_t core;
    og_plugin_ctx_t *inst;
    og__http_server_t *http;
    og_event_t **events;
    size_t nevents;
    size_t busy;
    int stopped_flag;
    /* og_emit_async() outcomes, reported from the loop like the daemon's */
    struct acked {
        og__committed_cb cb;
        void *data;
        char id[72];
    } * acks;
    size_t nacks;
    uv_idle_t acker;
};

/* Log lines are process-wide (the core's logger has no per-host sink). */
static char *log_lines[MAX_LOG_LINES];
static size_t log_n;

/* Copies a message into a caller's OG_ERRBUF_SIZE buffer, truncating. */
static void set_err(char *errbuf, const char *msg)
{
    size_t n;

    if (errbuf == NULL)
        return;
    n = strlen(msg);
    if (n >= OG_ERRBUF_SIZE)
        n = OG_ERRBUF_SIZE - 1;
    memcpy(errbuf, msg, n);
    errbuf[n] = '\0';
}

static void ack_all(uv_idle_t *h)
{
    og_testhost_t *th = h->data;
    size_t i, n = th->nacks;
    struct acked *acks = th->acks;

    uv_idle_stop(h);
    th->acks = NULL;
    th->nacks = 0;
    for (i = 0; i < n; i++)
        acks[i].cb(acks[i].data, OG_OK, acks[i].id, NULL);
    free(acks);
}

/* Every accepted event counts as committed at once; the outcome is
 * reported on the next loop iteration. */
static og_err_t record(void *data, og_plugin_ctx_t *from, og_event_t *ev,
                       og__committed_cb cb, void *cbdata)
{
    og_testhost_t *th = data;

    (void)from;
    if (th->busy > 0) {
        th->busy--;
        return OG_ERR_BUSY;
    }
    th->events =
        og__xrealloc(th->events, (th->nevents + 1) * sizeof(*th->events));
    th->events[th->nevents++] = og__event_ref(ev);
    if (cb != NULL) {
        th->acks = og__xrealloc(th->acks, (th->nacks + 1) * sizeof(*th->acks));
        th->acks[th->nacks].cb = cb;
        th->acks[th->nacks].data = cbdata;
        snprintf(th->acks[th->nacks].id, sizeof(th->acks[0].id), "%s", ev->id);
        th->nacks++;
        uv_idle_start(&th->acker, ack_all);
    }
    return OG_OK;
}

static void capture_log(og_log_level_t level, const char *line)
{
    (void)level;
    if (log_n < MAX_LOG_LINES)
        log_lines[log_n++] = og__xstrdup(line);
}

og_testhost_t *og_testhost_create(void)
{
    og_testhost_t *th = calloc(1, sizeof(*th));

    if (th == NULL)
        return NULL;
    uv_loop_init(&th->loop);
    th->core.loop = &th->loop;
    th->core.http = og__http_create(&th->loop);
    th->core.emit = record;
    th->core.emit_data = th;
    th->core.max_event_bytes = 256 * 1024;
    uv_idle_init(&th->loop, &th->acker);
    th->acker.data = th;
    th->http = og__http_server_create(&th->loop, "public", NULL);
    {
        char err[256];

        if (og__http_server_listen(th->http, "127.0.0.1:0", err, sizeof(err)) !=
            0)
            og__log(OG_LOG_ERROR, "testhost", "%s", err);
        else
            th->core.http_public = th->http;
    }
    og__log_set_hook(capture_log);
    og__log_set_level(OG_LOG_DEBUG);
    return th;
}

og_err_t og_testhost_load(og_testhost_t *th, const char *path, const char *name,
                          const char *const *config, char *errbuf)
{
    og__chconf_t ch;
    og__errlist_t errs = {NULL, 0};
    og__plugin_t *p;
    char why[OG_ERRBUF_SIZE * 2];
    og_err_t rc = OG_OK;
    size_t i;

    if (th->inst != NULL)
        return OG_ERR_INVALID;
    memset(&ch, 0, sizeof(ch));
    p = og__plugin_open(path, why, sizeof(why));
    if (p == NULL) {
        set_err(errbuf, why);
        return OG_ERR_ABI;
    }
    ch.name = og__xstrdup(name ? name : "test");
    ch.file = og__xstrdup("testhost");
    ch.plugin = og__xstrdup(p->def->name);
    ch.enabled = 1;
    for (i = 0; config != NULL && config[i] != NULL; i++) {
        const char *eq = strchr(config[i], '=');

        ch.opts = og__xrealloc(ch.opts, (ch.nopts + 1) * sizeof(*ch.opts));
        ch.opts[ch.nopts].key =
            eq ? og__xstrndup(config[i], (size_t)(eq - config[i]))
               : og__xstrdup(config[i]);
        ch.opts[ch.nopts].value = og__xstrdup(eq ? eq + 1 : "");
        ch.opts[ch.nopts].line = (int)i + 1;
        ch.nopts++;
    }
    og__plugin_check_config(p, &ch, &errs);
    if (errs.n > 0) {
        set_err(errbuf, errs.v[0]);
        og__errlist_free(&errs);
        og__plugin_close(p);
        rc = OG_ERR_CONFIG;
        goto out;
    }
    th->inst = og__instance_create(&th->core, p, &ch, why, sizeof(why));
    if (th->inst == NULL) {
        set_err(errbuf, why);
        rc = OG_ERR_INVALID;
        goto out;
    }
    rc = og__instance_start(th->inst);
    if (rc != OG_OK) {
        set_err(errbuf, th->inst->last_error);
        og__instance_free(th->inst);
        th->inst = NULL;
    }
out:
    og__chconf_free(&ch);
    return rc;
}

int og_testhost_run_until(og_testhost_t *th, int (*pred)(void *data),
                          void *data, uint64_t timeout_ms)
{
    uint64_t end;

    uv_update_time(&th->loop);
    end = uv_now(&th->loop) + timeout_ms;
    while (!pred(data) && uv_now(&th->loop) < end) {
        uv_run(&th->loop, UV_RUN_NOWAIT);
        if (pred(data))
            break;
        uv_sleep(1);
        uv_update_time(&th->loop);
    }
    return pred(data);
}

static int never(void *data)
{
    (void)data;
    return 0;
}

void og_testhost_run(og_testhost_t *th, uint64_t timeout_ms)
{
    og_testhost_run_until(th, never, NULL, timeout_ms);
}

size_t og_testhost_emitted_count(const og_testhost_t *th)
{
    return th->nevents;
}

const uint8_t *og_testhost_emitted(const og_testhost_t *th, size_t i,
                                   size_t *len)
{
    if (i >= th->nevents)
        return NULL;
    return og__event_data(th->events[i], len);
}

const char *og_testhost_emitted_type(const og_testhost_t *th, size_t i)
{
    return i < th->nevents ? th->events[i]->type : NULL;
}

og_err_t og_testhost_emitted_get_str(const og_testhost_t *th, size_t i,
                                     const char *path, char *buf, size_t size)
{
    const char *v;
    size_t n;
    og_err_t rc;

    if (i >= th->nevents || size == 0)
        return OG_ERR_RANGE;
    rc = og__event_get_str(th->events[i], path, &v, &n);
    if (rc != OG_OK)
        return rc;
    if (n >= size)
        n = size - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return OG_OK;
}

size_t og_testhost_refused_count(const og_testhost_t *th)
{
    return th->inst ? th->inst->events_refused : 0;
}

void og_testhost_set_busy(og_testhost_t *th, size_t n)
{
    th->busy = n;
}

struct deliver_wait {
    og_testhost_t *th;
    uint64_t ok, retry, rejected;
};

static int delivery_done(void *data)
{
    struct deliver_wait *w = data;
    og_plugin_ctx_t *inst = w->th->inst;

    return inst->deliveries_ok != w->ok || inst->deliveries_retry != w->retry ||
           inst->deliveries_rejected != w->rejected;
}

og_err_t og_testhost_deliver(og_testhost_t *th, const uint8_t *msgpack,
                             size_t len, uint64_t timeout_ms)
{
    struct deliver_wait w;
    og_event_t *ev;
    og_err_t rc;
    char why[256];

    if (th->inst == NULL)
        return OG_ERR_INVALID;
    ev =
        og__event_accept(msgpack, len, "testhost", "testhost",
                         th->core.max_event_bytes, &rc, NULL, why, sizeof(why));
    if (ev == NULL) {
        og__log(OG_LOG_WARNING, "testhost", "deliver: %s", why);
        return rc;
    }
    w.th = th;
    w.ok = th->inst->deliveries_ok;
    w.retry = th->inst->deliveries_retry;
    w.rejected = th->inst->deliveries_rejected;
    og__instance_deliver(th->inst, ev, 0, 0);
    og__event_unref(ev);
    if (!og_testhost_run_until(th, delivery_done, &w, timeout_ms))
        return OG_ERR_TIMEOUT;
    if (th->inst->deliveries_ok != w.ok)
        return OG_OK;
    if (th->inst->deliveries_retry != w.retry)
        return OG_ERR_RETRY;
    return OG_ERR_REJECTED;
}

int og_testhost_http_port(const og_testhost_t *th)
{
    return th->core.http_public ? og__http_server_port(th->http) : 0;
}

size_t og_testhost_log_count(const og_testhost_t *th, const char *needle)
{
    size_t i, n = 0;

    (void)th;
    for (i = 0; i < log_n; i++)
        if (strstr(log_lines[i], needle) != NULL)
            n++;
    return n;
}

int64_t og_testhost_metric(const og_testhost_t *th, const char *name)
{
    size_t i;

    if (th->inst == NULL)
        return 0;
    for (i = 0; i < th->inst->nmetrics; i++)
        if (strcmp(th->inst->metrics[i].name, name) == 0)
            return th->inst->metrics[i].value;
    return 0;
}

static void on_stopped(og_plugin_ctx_t *inst, void *data)
{
    og_testhost_t *th = data;

    (void)inst;
    th->stopped_flag = 1;
}

static int is_stopped(void *data)
{
    return ((og_testhost_t *)data)->stopped_flag;
}

og_err_t og_testhost_stop(og_testhost_t *th, uint64_t timeout_ms)
{
    if (th->inst == NULL)
        return OG_ERR_INVALID;
    th->stopped_flag = 0;
    og__instance_stop(th->inst, timeout_ms, on_stopped, th);
    og_testhost_run_until(th, is_stopped, th, timeout_ms + 1000);
    og__instance_free(th->inst);
    th->inst = NULL;
    return th->stopped_flag ? OG_OK : OG_ERR_TIMEOUT;
}

int og_testhost_destroy(og_testhost_t *th)
{
    size_t i;
    int rc;

    if (th == NULL)
        return 0;
    if (th->inst != NULL)
        og_testhost_stop(th, 5000);
    th->core.http_public = NULL;
    og__http_server_close(th->http);
    og__http_destroy(th->core.http);
    uv_close((uv_handle_t *)&th->acker, NULL);
    uv_run(&th->loop, UV_RUN_DEFAULT);
    free(th->acks);
    rc = uv_loop_close(&th->loop);
    for (i = 0; i < th->nevents; i++)
        og__event_unref(th->events[i]);
    free(th->events);
    for (i = 0; i < log_n; i++)
        free(log_lines[i]);
    log_n = 0;
    og__log_set_hook(NULL);
    og__instance_free_deliveries();
    free(th);
    og__http_global_cleanup();
    return rc;
}
