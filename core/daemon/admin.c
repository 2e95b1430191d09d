/*
 * admin.c: the admin API. Read-only views of the daemon's state, built on
 * each request; nothing here keeps state of its own.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdarg.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "daemon/admin.h"
#include "pipeline/durable.h"
#include "host/instance.h"
#include "base/json.h"
#include "base/util.h"

static const char *chan_state(const og__chan_status_t *st)
{
    return st->inst ? og__inst_state_name(st->inst->st) : "failed";
}

/* ---- /health -------------------------------------------------------- */

struct health {
    og__sbuf_t why;
    int ok;
    int down; /* a required channel is down or the daemon stops */
};

static void add_reason(struct health *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_reason(struct health *h, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    og__sbuf_printf(&h->why, "%s%s", h->ok ? "" : "; ", line);
    h->ok = 0;
}

/* Below this much free space where the store lives (or 5% of a smaller
 * disk), /health is degraded before the disk is full. */
#define HEALTH_MIN_FREE (64ull << 20)

/*
 * What makes the gateway degraded though it runs (issue 16): the store
 * failing (a full disk), little room left for it, a stalled event loop,
 * descriptors exhausted within the last minute. Each says its figure.
 */
static void degraded(og__daemon_t *d, const og__daemon_stats_t *st,
                     struct health *h)
{
    og__durable_stats_t ds;
    struct statvfs vfs;

    og__durable_stats(og__daemon_durable(d), &ds);
    if (ds.degraded)
        add_reason(h, "the store cannot take events: %s", ds.last_error);
    if (st->state_dir != NULL && statvfs(st->state_dir, &vfs) == 0) {
        unsigned long long avail =
            (unsigned long long)vfs.f_bavail * vfs.f_frsize;
        unsigned long long size =
            (unsigned long long)vfs.f_blocks * vfs.f_frsize;
        unsigned long long min =
            size / 20 < HEALTH_MIN_FREE ? size / 20 : HEALTH_MIN_FREE;

        if (avail < min)
            add_reason(h, "the disk of %s has %llu kB free", st->state_dir,
                       avail >> 10);
    }
    if (st->loop_lag_ms >= 1000)
        add_reason(h, "the event loop stalled for %llu ms in the last minute",
                   (unsigned long long)st->loop_lag_ms);
    if (st->accept_failed_ms != 0 &&
        og__now_ms() - st->accept_failed_ms < 60000)
        add_reason(h,
                   "connections could not be accepted in the last minute: "
                   "%s (%llu in all)",
                   st->accept_error, (unsigned long long)st->accept_failures);
}

static void health_channel(void *data, const og__chan_status_t *st)
{
    struct health *h = data;

    if (!st->required || (st->inst && st->inst->st == OG__INST_RUNNING))
        return;
    if (!h->ok)
        og__sbuf_printf(&h->why, "; ");
    h->ok = 0;
    h->down = 1;
    og__sbuf_printf(&h->why, "required channel '%s' is %s%s%s", st->name,
                    chan_state(st), st->error[0] ? ": " : "", st->error);
}

static void get_health(void *data, og__http_req_t *req)
{
    og__daemon_t *d = data;
    og__daemon_stats_t stats;
    struct health h = {{NULL, 0, 0}, 1, 0};
    og__sbuf_t body = {NULL, 0, 0};
    char esc[2048];

    og__daemon_stats(d, &stats);
    if (stats.stopping) {
        h.ok = 0;
        h.down = 1;
        og__sbuf_printf(&h.why, "stopping");
    }
    og__daemon_foreach_channel(d, health_channel, &h);
    degraded(d, &stats, &h);
    if (h.ok) {
        og__sbuf_printf(&body, "{\"status\":\"ok\"}");
    } else {
        og__json_escape(esc, sizeof(esc), h.why.p);
        og__sbuf_printf(&body, "{\"status\":\"%s\",\"reason\":%s}",
                        h.down ? "unavailable" : "degraded", esc);
    }
    og__http_respond(req, h.ok ? 200 : 503, "application/json", NULL, body.p,
                     body.n);
    og__sbuf_free(&body);
    og__sbuf_free(&h.why);
}

/* ---- /v1/channels --------------------------------------------------- */

struct list {
    og__sbuf_t b;
    int n;
};

static void list_channel(void *data, const og__chan_status_t *st)
{
    struct list *l = data;
    const og_plugin_def_t *def = st->inst ? st->inst->plugin->def : NULL;
    char name[256], plugin[256], version[256], err[1200];

    og__json_escape(name, sizeof(name), st->name);
    og__json_escape(plugin, sizeof(plugin), st->plugin);
    og__json_escape(version, sizeof(version),
                    def && def->version ? def->version : "");
    if (st->error[0])
        og__json_escape(err, sizeof(err), st->error);
    else if (st->inst && st->inst->last_error[0])
        og__json_escape(err, sizeof(err), st->inst->last_error);
    else
        snprintf(err, sizeof(err), "null");
    og__sbuf_printf(&l->b,
                    "%s{\"instance\":%s,\"plugin\":%s,\"plugin_version\":%s,"
                    "\"abi\":\"%u.%u\",\"state\":\"%s\",\"required\":%s,"
                    "\"last_error\":%s}",
                    l->n++ ? "," : "", name, plugin, def ? version : "null",
                    def ? def->abi_major : 0, def ? def->abi_minor : 0,
                    chan_state(st), st->required ? "true" : "false", err);
}

static void get_channels(void *data, og__http_req_t *req)
{
    struct list l = {{NULL, 0, 0}, 0};

    og__sbuf_printf(&l.b, "{\"channels\":[");
    og__daemon_foreach_channel(data, list_channel, &l);
    og__sbuf_printf(&l.b, "]}");
    og__http_respond(req, 200, "application/json", NULL, l.b.p, l.b.n);
    og__sbuf_free(&l.b);
}

/* ---- /metrics ------------------------------------------------------- */

static void family(og__sbuf_t *b, const char *name, const char *type,
                   const char *help)
{
    og__sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Each metric family is written by one pass over the channels. */
struct mpass {
    og__sbuf_t *b;
    int which;
};

enum {
    M_UP,
    M_IN,
    M_STRIPPED,
    M_REFUSED,
    M_DELIVERIES,
    M_PENDING,
    M_LATENCY,
    M_PLUGIN,
    M_COUNT
};

/* The per-instance metric families, in the order of the enum above. */
static const struct {
    const char *name, *type, *help;
} fams[M_COUNT] = {
    {"omnigate_channel_up", "gauge", "1 when the channel instance is running."},
    {"omnigate_events_in_total", "counter",
     "Events accepted from the channel instance."},
    {"omnigate_events_stripped_total", "counter",
     "Fields the core dropped from public clients' events (customer, "
     "correlation, causation)."},
    {"omnigate_events_refused_total", "counter",
     "Events refused from the channel instance, by reason."},
    {"omnigate_deliveries_total", "counter",
     "Deliveries to the channel instance, by result."},
    {"omnigate_deliveries_pending", "gauge",
     "Deliveries the channel instance has not completed yet."},
    {"omnigate_delivery_latency_seconds", "histogram",
     "Time from acceptance to the delivery result."},
    {NULL, NULL, NULL},
};

/* The value of a family with one plain value per instance, or -1 when
 * the family is written otherwise. */
static int simple_value(int which, const og_plugin_ctx_t *i,
                        unsigned long long *v)
{
    switch (which) {
    case M_IN: *v = i->events_in; return 0;
    case M_STRIPPED: *v = i->events_stripped; return 0;
    case M_PENDING: *v = i->npending; return 0;
    }
    return -1;
}

static void metric_channel(void *data, const og__chan_status_t *st)
{
    struct mpass *m = data;
    const og_plugin_ctx_t *i = st->inst;
    og__sbuf_t *b = m->b;
    unsigned long long v;
    size_t k;

    switch (m->which) {
    case M_UP:
        og__sbuf_printf(b,
                        "omnigate_channel_up{instance=\"%s\",plugin=\"%s\"}"
                        " %d\n",
                        st->name, st->plugin,
                        i && i->st == OG__INST_RUNNING ? 1 : 0);
        return;
    }
    if (i == NULL)
        return;
    if (simple_value(m->which, i, &v) == 0) {
        og__sbuf_printf(b, "%s{instance=\"%s\"} %llu\n", fams[m->which].name,
                        st->name, v);
        return;
    }
    switch (m->which) {
    case M_REFUSED:
        for (k = 1; k < OG__REFUSE_COUNT; k++)
            og__sbuf_printf(b,
                            "omnigate_events_refused_total{instance=\"%s\","
                            "reason=\"%s\"} %llu\n",
                            st->name, og__refusal_name((og__refusal_t)k),
                            (unsigned long long)i->refused_by[k]);
        og__sbuf_printf(b,
                        "omnigate_events_refused_total{instance=\"%s\","
                        "reason=\"busy\"} %llu\n",
                        st->name, (unsigned long long)i->events_busy);
        break;
    case M_DELIVERIES:
        og__sbuf_printf(
            b,
            "omnigate_deliveries_total{instance=\"%s\",result=\"ok\"} %llu\n"
            "omnigate_deliveries_total{instance=\"%s\",result=\"retry\"} "
            "%llu\n"
            "omnigate_deliveries_total{instance=\"%s\",result=\"rejected\"} "
            "%llu\n",
            st->name, (unsigned long long)i->deliveries_ok, st->name,
            (unsigned long long)i->deliveries_retry, st->name,
            (unsigned long long)i->deliveries_rejected);
        break;
    case M_LATENCY:
        for (k = 0; k < OG__LATENCY_BUCKETS; k++)
            og__sbuf_printf(b,
                            "omnigate_delivery_latency_seconds_bucket{instance"
                            "=\"%s\",le=\"%g\"} %llu\n",
                            st->name, og__latency_bounds[k],
                            (unsigned long long)i->latency_buckets[k]);
        og__sbuf_printf(b,
                        "omnigate_delivery_latency_seconds_bucket{instance="
                        "\"%s\",le=\"+Inf\"} %llu\n"
                        "omnigate_delivery_latency_seconds_sum{instance="
                        "\"%s\"} %.6f\n"
                        "omnigate_delivery_latency_seconds_count{instance="
                        "\"%s\"} %llu\n",
                        st->name, (unsigned long long)i->latency_count,
                        st->name, i->latency_sum, st->name,
                        (unsigned long long)i->latency_count);
        break;
    case M_PLUGIN:
        for (k = 0; k < i->nmetrics; k++)
            og__sbuf_printf(b,
                            "omnigate_plugin_%s{instance=\"%s\",name=\"%s\"}"
                            " %lld\n",
                            i->metrics[k].gauge ? "gauge" : "counter_total",
                            st->name, i->metrics[k].name,
                            (long long)i->metrics[k].value);
        break;
    }
}

/* A family with one unlabelled value. */
static void scalar(og__sbuf_t *b, const char *name, const char *type,
                   const char *help, uint64_t v)
{
    family(b, name, type, help);
    og__sbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* Per-channel outbox families, one pass each. */
static const struct {
    const char *name, *type, *help;
} ofams[] = {
    {"omnigate_outbox_waiting", "gauge",
     "Deliveries not completed yet (in memory, in flight or in the store)."},
    {"omnigate_outbox_queued", "gauge",
     "Of them, held in the channel's queue in memory."},
    {"omnigate_dead_letters", "gauge", "Dead letters of the channel."},
    {"omnigate_delivery_retries_total", "counter",
     "Delivery attempts that failed transiently and were scheduled again."},
    {"omnigate_dead_letters_total", "counter",
     "Deliveries that became dead letters since the start."},
    {"omnigate_consent_suppressed_total", "counter",
     "Messages consent kept from the channel since the start (stored as "
     "dead letters with the reason)."},
};

struct opass {
    og__sbuf_t *b;
    size_t which;
};

static void outbox_metric(void *data, const og__chan_stats_t *c)
{
    struct opass *o = data;
    uint64_t v[] = {c->waiting, c->queued,   c->dead,
                    c->retries, c->dead_new, c->suppressed};

    og__sbuf_printf(o->b, "%s{channel=\"%s\"} %llu\n", ofams[o->which].name,
                    c->channel, (unsigned long long)v[o->which]);
}

static void store_metrics(og__sbuf_t *b, og__durable_t *dur)
{
    og__durable_stats_t st;
    struct opass o = {b, 0};

    og__durable_stats(dur, &st);
    for (o.which = 0; o.which < OG__ARRAY_SIZE(ofams); o.which++) {
        family(b, ofams[o.which].name, ofams[o.which].type,
               ofams[o.which].help);
        og__durable_foreach_channel(dur, outbox_metric, &o);
    }
    scalar(b, "omnigate_store_commits_total", "counter",
           "Store transactions committed (each one fsync with durability "
           "= power).",
           st.commits);
    scalar(b, "omnigate_store_events_total", "counter",
           "Events committed to the store.", st.events);
    family(b, "omnigate_store_answers_total", "counter",
           "Emits answered other than by a new commit, by answer.");
    og__sbuf_printf(b,
                    "omnigate_store_answers_total{answer=\"duplicate\"} "
                    "%llu\n"
                    "omnigate_store_answers_total{answer=\"conflict\"} %llu\n"
                    "omnigate_store_answers_total{answer=\"busy\"} %llu\n",
                    (unsigned long long)st.duplicates,
                    (unsigned long long)st.conflicts,
                    (unsigned long long)st.busy);
    scalar(b, "omnigate_store_failures_total", "counter",
           "Commits the store failed (disk full, I/O error).", st.failures);
    scalar(b, "omnigate_store_backlog", "gauge",
           "Undelivered deliveries, all channels (max_backlog bounds it).",
           st.backlog);
    scalar(b, "omnigate_store_batch", "gauge",
           "Events waiting for the next commit.", st.batch);
    scalar(b, "omnigate_store_degraded", "gauge",
           "1 while the store fails commits (ingress answers 503).",
           (uint64_t)st.degraded);
}

static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static void get_metrics(void *data, og__http_req_t *req)
{
    og__daemon_t *d = data;
    og__daemon_stats_t st;
    og__sbuf_t b = {NULL, 0, 0};
    struct mpass m;

    og__daemon_stats(d, &st);
    m.b = &b;
    for (m.which = 0; m.which < M_COUNT; m.which++) {
        if (fams[m.which].name != NULL)
            family(&b, fams[m.which].name, fams[m.which].type,
                   fams[m.which].help);
        og__daemon_foreach_channel(d, metric_channel, &m);
    }
    store_metrics(&b, og__daemon_durable(d));
    scalar(&b, "omnigate_events_unrouted_total", "counter",
           "Accepted events that matched no route.", st.unrouted);
    family(&b, "omnigate_http_connections", "gauge",
           "Open HTTP connections per listener.");
    og__sbuf_printf(&b,
                    "omnigate_http_connections{listener=\"public\"} %zu\n"
                    "omnigate_http_connections{listener=\"admin\"} %zu\n",
                    st.public_connections, st.admin_connections);
    scalar(&b, "omnigate_process_resident_memory_bytes", "gauge",
           "Resident set size of the daemon.", (uint64_t)rss_bytes());
    og__http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                     b.p, b.n);
    og__sbuf_free(&b);
}

/* ---- /v1/outbox and /v1/dead-letters ------------------------------- */

struct olist {
    og__sbuf_t b;
    int n;
};

static void outbox_channel(void *data, const og__chan_stats_t *c)
{
    struct olist *l = data;
    char name[256];

    og__json_escape(name, sizeof(name), c->channel);
    og__sbuf_printf(&l->b,
                    "%s{\"channel\":%s,\"waiting\":%llu,\"queued\":%llu,"
                    "\"dead\":%llu}",
                    l->n++ ? "," : "", name, (unsigned long long)c->waiting,
                    (unsigned long long)c->queued, (unsigned long long)c->dead);
}

static void get_outbox(void *data, og__http_req_t *req)
{
    og__durable_t *dur = og__daemon_durable(data);
    og__durable_stats_t st;
    struct olist l = {{NULL, 0, 0}, 0};
    char err[600];

    og__durable_stats(dur, &st);
    if (st.last_error[0])
        og__json_escape(err, sizeof(err), st.last_error);
    else
        snprintf(err, sizeof(err), "null");
    og__sbuf_printf(&l.b,
                    "{\"backlog\":%llu,\"max_backlog\":%llu,\"batch\":%zu,"
                    "\"degraded\":%s,\"last_error\":%s,\"channels\":[",
                    (unsigned long long)st.backlog,
                    (unsigned long long)st.max_backlog, st.batch,
                    st.degraded ? "true" : "false", err);
    og__durable_foreach_channel(dur, outbox_channel, &l);
    og__sbuf_printf(&l.b, "]}");
    og__http_respond(req, 200, "application/json", NULL, l.b.p, l.b.n);
    og__sbuf_free(&l.b);
}

/* The value of name in the query string (no percent-decoding: channel
 * names and row ids need none); 0 when absent or too long. */
static int query_param(const char *q, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);

    while (q != NULL && *q != '\0') {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);

        if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            if (len - nl - 1 >= size)
                return 0;
            memcpy(out, q + nl + 1, len - nl - 1);
            out[len - nl - 1] = '\0';
            return 1;
        }
        q = end ? end + 1 : NULL;
    }
    return 0;
}

static void dead_answer(void *data, og_err_t rc, const char *json)
{
    og__http_req_t *req = data;

    if (rc != OG_OK) {
        og__http_respond_error(
            req, rc == OG_ERR_STOPPING || rc == OG_ERR_IO ? 503 : 500,
            "dead letters: %s%s", og_strerror(rc),
            rc == OG_ERR_IO ? " (the store fails now; see /v1/outbox)" : "");
        return;
    }
    og__http_respond(req, 200, "application/json", NULL, json, strlen(json));
}

static void dead_op(og__daemon_t *d, og__http_req_t *req, og__admin_op_t op)
{
    const char *q = og__http_req_query(req);
    char channel[128], id[32];
    int have_channel = query_param(q, "channel", channel, sizeof(channel));
    long long row = 0;

    if (have_channel && !og__is_ident(channel, 1)) {
        og__http_respond_error(req, 400, "channel: not a valid channel name");
        return;
    }
    if (query_param(q, "id", id, sizeof(id))) {
        char *end;

        row = strtoll(id, &end, 10);
        if (*end != '\0' || row <= 0) {
            og__http_respond_error(req, 400,
                                   "id: expected a dead letter's row id "
                                   "(a positive integer), got '%s'",
                                   id);
            return;
        }
        if (op == OG__DEAD_PURGE) {
            og__http_respond_error(req, 400,
                                   "id: purge takes a channel or nothing, "
                                   "not one row");
            return;
        }
    }
    og__durable_dead(og__daemon_durable(d), op, have_channel ? channel : NULL,
                     row, dead_answer, req);
}

static void get_dead(void *data, og__http_req_t *req)
{
    dead_op(data, req, OG__DEAD_LIST);
}

static void post_requeue(void *data, og__http_req_t *req)
{
    dead_op(data, req, OG__DEAD_REQUEUE);
}

static void post_purge(void *data, og__http_req_t *req)
{
    dead_op(data, req, OG__DEAD_PURGE);
}

/* ---- customers ---------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes s in place; -1 on a bad escape or a NUL byte. A '+' is
 * kept as it is (phone numbers). */
static int pct_decode(char *s)
{
    char *w = s;

    for (; *s; s++) {
        if (*s == '%') {
            int hi, lo;

            if ((hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0 ||
                (hi == 0 && lo == 0))
                return -1;
            *w++ = (char)(hi * 16 + lo);
            s += 2;
        } else {
            *w++ = *s;
        }
    }
    *w = '\0';
    return 0;
}

static void customer_answer(void *data, og_err_t rc, const char *text)
{
    og__http_req_t *req = data;

    switch (rc) {
    case OG_OK:
        og__http_respond(req, 200, "application/json", NULL, text,
                         strlen(text));
        return;
    case OG_ERR_NOT_FOUND:
        og__http_respond_error(req, 404, "%s",
                               text && *text ? text : "no such customer");
        return;
    case OG_ERR_CONFLICT: og__http_respond_error(req, 409, "%s", text); return;
    default:
        og__http_respond_error(
            req, rc == OG_ERR_STOPPING || rc == OG_ERR_IO ? 503 : 500,
            "customers: %s%s", og_strerror(rc),
            rc == OG_ERR_IO ? " (the store fails now; see /v1/outbox)" : "");
    }
}

static void stock_answer(void *data, og_err_t rc, const char *text)
{
    if (rc == OG_ERR_NOT_FOUND)
        og__http_respond_error(data, 404, "no stock known for this sku");
    else
        customer_answer(data, rc, text);
}

/* A customer id as the path carries it: 1-64 printable ASCII, no '/'. */
static int valid_customer_id(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 64)
        return 0;
    for (i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '/')
            return 0;
    return 1;
}

/* GET /v1/customers?kind=K&value=V[&scope=INSTANCE][&region=RR] */
static void get_customer_by_key(void *data, og__http_req_t *req)
{
    const char *q = og__http_req_query(req);
    char kind[40], value[600], scope[80] = "", region[8] = "", why[200];
    og__raw_idkey_t raw;
    og__idkey_t key;

    if (!query_param(q, "kind", kind, sizeof(kind)) ||
        !query_param(q, "value", value, sizeof(value))) {
        og__http_respond_error(req, 400,
                               "kind and value: a customer is looked up by "
                               "/v1/customers/ID or "
                               "/v1/customers?kind=KIND&value=VALUE");
        return;
    }
    query_param(q, "scope", scope, sizeof(scope));
    query_param(q, "region", region, sizeof(region));
    if (pct_decode(kind) != 0 || pct_decode(value) != 0 ||
        pct_decode(scope) != 0 || pct_decode(region) != 0) {
        og__http_respond_error(req, 400, "query: bad percent escape");
        return;
    }
    memset(&raw, 0, sizeof(raw));
    raw.kind = kind;
    raw.kind_len = (uint32_t)strlen(kind);
    raw.value = value;
    raw.value_len = (uint32_t)strlen(value);
    if (!og__is_ident(kind, 1)) {
        og__http_respond_error(req, 400, "kind: not a valid identity kind");
        return;
    }
    if (og__idkey_normalize(&raw, scope, region, &key, why, sizeof(why)) !=
        OG_OK) {
        og__http_respond_error(req, 400, "value: %s", why);
        return;
    }
    og__durable_customer(og__daemon_durable(data), OG__CUSTOMER_GET, NULL, &key,
                         customer_answer, req);
}

/* GET /v1/customers/ID, POST /v1/customers/ID/split and .../erase,
 * GET /v1/conversations/ID, POST /v1/conversations/ID/resolve */
static void customer_path(og__daemon_t *d, og__http_req_t *req, int post)
{
    int conv = strncmp(og__http_req_path(req), "/v1/conversations/", 18) == 0;
    const char *p = og__http_req_path(req) + (conv ? 18 : 14);
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    og__admin_op_t op;
    char id[65];

    if (!post && end == NULL)
        op = conv ? OG__CONVERSATION_GET : OG__CUSTOMER_GET;
    else if (!post && end != NULL && !conv && strcmp(end, "/timeline") == 0)
        op = OG__CUSTOMER_TIMELINE;
    else if (post && end != NULL && !conv && strcmp(end, "/split") == 0)
        op = OG__CUSTOMER_SPLIT;
    else if (post && end != NULL && !conv && strcmp(end, "/erase") == 0)
        op = OG__CUSTOMER_ERASE;
    else if (post && end != NULL && conv && strcmp(end, "/resolve") == 0)
        op = OG__CONVERSATION_RESOLVE;
    else {
        og__http_respond_error(req, 404,
                               "no such resource (known: GET "
                               "/v1/customers/ID, GET "
                               "/v1/customers/ID/timeline, POST "
                               "/v1/customers/ID/split, POST "
                               "/v1/customers/ID/erase, GET "
                               "/v1/conversations/ID, POST "
                               "/v1/conversations/ID/resolve)");
        return;
    }
    if (!valid_customer_id(p, n)) {
        og__http_respond_error(req, 400, "%s id: 1-64 printable characters",
                               conv ? "conversation" : "customer");
        return;
    }
    memcpy(id, p, n);
    id[n] = '\0';
    og__durable_customer(og__daemon_durable(d), op, id, NULL, customer_answer,
                         req);
}

static void get_customer(void *data, og__http_req_t *req)
{
    customer_path(data, req, 0);
}

static void post_customer(void *data, og__http_req_t *req)
{
    customer_path(data, req, 1);
}

/* GET /v1/stock/SKU: on hand and reserved per location, availability
 * per stock channel (docs/stock.md). */
static void get_stock(void *data, og__http_req_t *req)
{
    const char *p = og__http_req_path(req) + 10;
    char sku[200];

    if (strlen(p) == 0 || strlen(p) >= sizeof(sku)) {
        og__http_respond_error(req, 400, "sku: 1-128 characters");
        return;
    }
    snprintf(sku, sizeof(sku), "%s", p);
    if (pct_decode(sku) != 0 || strlen(sku) > 128 || strchr(sku, '/')) {
        og__http_respond_error(req, 400,
                               "sku: 1-128 characters, no '/', percent "
                               "escapes valid");
        return;
    }
    og__durable_customer(og__daemon_durable(data), OG__STOCK_GET, sku, NULL,
                         stock_answer, req);
}

/* POST /v1/test/clock {"offset_ms": N} (omnigated --test-clock only):
 * the journeys' clock runs N ms ahead of the real one. GET shows it. */
static void test_clock(void *data, og__http_req_t *req)
{
    og__durable_t *dur = og__daemon_durable(data);
    char buf[96];
    int n;

    if (!og__daemon_test_clock(data)) {
        og__http_respond_error(req, 404,
                               "the test clock is off (omnigated "
                               "--test-clock)");
        return;
    }
    if (strcmp(og__http_req_method(req), "POST") == 0) {
        size_t len;
        const char *body = (const char *)og__http_req_body(req, &len), *k;
        char tmp[96], *end;
        long long off;

        if (body == NULL || len == 0 || len >= sizeof(tmp)) {
            og__http_respond_error(req, 400,
                                   "body: expected {\"offset_ms\": N}");
            return;
        }
        memcpy(tmp, body, len);
        tmp[len] = '\0';
        k = strstr(tmp, "\"offset_ms\"");
        k = k ? strchr(k + 11, ':') : NULL;
        off = k ? strtoll(k + 1, &end, 10) : 0;
        if (k == NULL || end == k + 1 ||
            strspn(end, " \t\r\n}") != strlen(end)) {
            og__http_respond_error(req, 400,
                                   "body: expected {\"offset_ms\": N}, N an "
                                   "integer");
            return;
        }
        og__durable_clock(dur, (int64_t)off);
    }
    n = snprintf(buf, sizeof(buf), "{\"offset_ms\":%lld,\"now\":%llu}",
                 (long long)og__durable_clock_offset(dur),
                 (unsigned long long)((int64_t)og__now_ms() +
                                      og__durable_clock_offset(dur)));
    og__http_respond(req, 200, "application/json", NULL, buf, (size_t)n);
}

/* ---- who may ask (docs/security.md) ------------------------------------ */

static const char *const role_names[] = {"read", "operate", "erase"};

/* The role a request needs: reads read; erasure erase; every other change
 * (requeue, purge, split, resolve, the test clock) operate. */
static int role_needed(og__http_req_t *req)
{
    const char *m = og__http_req_method(req), *path = og__http_req_path(req);
    size_t n = strlen(path);

    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return 0;
    if (n > 6 && strcmp(path + n - 6, "/erase") == 0)
        return 2;
    return 1;
}

/* 1 when Host names this listener: loopback, or one of admin_hosts. A
 * page of another site that reaches 127.0.0.1 through DNS rebinding still
 * sends its own host name. */
static int host_ok(const og__conf_t *c, const char *host)
{
    static const char *const loopback[] = {"127.0.0.1", "localhost", "[::1]",
                                           NULL};
    char name[256];
    size_t n, i;

    if (host == NULL)
        return 0;
    n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    if (n == 0 || n >= sizeof(name) || n > strlen(host))
        return 0;
    memcpy(name, host, n);
    name[n] = '\0';
    for (i = 0; loopback[i] != NULL; i++)
        if (strcasecmp(name, loopback[i]) == 0)
            return 1;
    for (i = 0; c->admin_hosts != NULL && c->admin_hosts[i] != NULL; i++)
        if (strcasecmp(name, c->admin_hosts[i]) == 0)
            return 1;
    /* the address it listens on */
    n = strlen(name);
    return strncmp(c->admin_listen, name, n) == 0 && c->admin_listen[n] == ':';
}

/* The role of the bearer token in h, or -1; every token compared in
 * constant time, so timing tells nothing of them. */
static int token_role(const og__conf_t *c, const char *h)
{
    size_t i, j, n;
    int role = -1;

    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return -1;
    h += 7;
    n = strlen(h);
    for (i = 0; i < c->nadmin_tokens; i++) {
        const char *t = c->admin_tokens[i].token;
        size_t tl = strlen(t);
        volatile unsigned char diff = (unsigned char)(tl != n);

        for (j = 0; j < tl; j++)
            diff |= (unsigned char)(t[j] ^ (j < n ? h[j] : 0));
        if (!diff)
            role = c->admin_tokens[i].role;
    }
    return role;
}

/* The admin listener's guard: a unix socket's file permissions decide;
 * on TCP, a bearer token of a role that covers the request, a Host of
 * this listener and no browser's Origin. */
static int guard(void *data, og__http_req_t *req, int on_pipe)
{
    static const char *const www[] = {
        "WWW-Authenticate: Bearer realm=\"omnigate-admin\"", NULL};
    const og__conf_t *c = og__daemon_conf(data);
    int need, have;

    if (on_pipe)
        return 0;
    if (og__http_req_header(req, "Origin") != NULL) {
        og__http_respond_error(req, 403,
                               "the admin API answers no browser (a request "
                               "with an Origin header)");
        return -1;
    }
    if (!host_ok(c, og__http_req_header(req, "Host"))) {
        og__http_respond_error(req, 403,
                               "Host is not this admin listener (loopback, "
                               "its address or admin_hosts)");
        return -1;
    }
    need = role_needed(req);
    have = token_role(c, og__http_req_header(req, "Authorization"));
    if (have < 0) {
        const char *body = "{\"error\":\"missing or unknown admin token "
                           "(Authorization: Bearer TOKEN, from "
                           "admin_tokens)\"}";

        og__http_respond(req, 401, "application/json", www, body, strlen(body));
        return -1;
    }
    if (have < need) {
        og__http_respond_error(req, 403,
                               "this token's role is %s: %s %s needs %s",
                               role_names[have], og__http_req_method(req),
                               og__http_req_path(req), role_names[need]);
        return -1;
    }
    return 0;
}

void og__admin_mount(og__http_server_t *admin, og__daemon_t *d)
{
    og__http_server_guard(admin, guard, d);
    og__http_server_mount(admin, "POST", "/v1/test/clock", 0, test_clock, d, d);
    og__http_server_mount(admin, "GET", "/v1/test/clock", 0, test_clock, d, d);
    og__http_server_mount(admin, "GET", "/v1/stock/*", 0, get_stock, d, d);
    og__http_server_mount(admin, "GET", "/health", 0, get_health, d, d);
    og__http_server_mount(admin, "GET", "/metrics", 0, get_metrics, d, d);
    og__http_server_mount(admin, "GET", "/v1/channels", 0, get_channels, d, d);
    og__http_server_mount(admin, "GET", "/v1/outbox", 0, get_outbox, d, d);
    og__http_server_mount(admin, "GET", "/v1/dead-letters", 0, get_dead, d, d);
    og__http_server_mount(admin, "POST", "/v1/dead-letters/requeue", 0,
                          post_requeue, d, d);
    og__http_server_mount(admin, "POST", "/v1/dead-letters/purge", 0,
                          post_purge, d, d);
    og__http_server_mount(admin, "GET", "/v1/customers", 0, get_customer_by_key,
                          d, d);
    og__http_server_mount(admin, "GET", "/v1/customers/*", 0, get_customer, d,
                          d);
    og__http_server_mount(admin, "POST", "/v1/customers/*", 0, post_customer, d,
                          d);
    og__http_server_mount(admin, "GET", "/v1/conversations/*", 0, get_customer,
                          d, d);
    og__http_server_mount(admin, "POST", "/v1/conversations/*", 0,
                          post_customer, d, d);
}
