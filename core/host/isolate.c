/*
 * isolate.c: the daemon's side of a plugin running in a host process of
 * its own (isolation = process; docs/isolation.md).
 *
 * The proxy is a plugin like any other to the instance machinery: the
 * instance counts its deliveries, requests and emits and runs its stop as
 * for an in-process plugin. The proxy calls the host API table
 * (og__host_api) as a plugin would. What is its own:
 *
 * - the child: spawned with the socket as fd 3; init and start are a
 *   blocking handshake the first time (so that a channel whose init fails
 *   fails as it would in process) and asynchronous after a crash;
 * - deliveries: a table of tokens; those taken while the child is down
 *   wait in order and go once it is up; those in flight when it dies are
 *   completed as OG_ERR_RETRY (an attempt: a poison event ends as a dead
 *   letter, it cannot crash the plugin forever);
 * - supervision: a tick sends heartbeats and reads the child's resident
 *   memory; the child is killed when a heartbeat is unanswered for
 *   heartbeat_timeout or when it passes memory_limit; it is restarted
 *   after 200 ms, doubling to 30 s while it keeps dying (reset after a
 *   minute up).
 *
 * Memory: the proxy outlives destroy() until libuv closed its handles
 * (the process handle once the child exited, and the grace timer).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/instance.h"
#include "host/ipc.h"
#include "host/isolate.h"
#include "base/log.h"
#include "base/util.h"

#define RESTART_BASE_MS 200
#define RESTART_MAX_MS 30000
#define STABLE_MS 60000 /* up this long: the next crash starts over */
#define GRACE_MS 3000   /* a stopped child's time to exit by itself */
#define MAX_FRAME (64u << 20)

enum child_state {
    C_DOWN,     /* no process (crashed, waiting to restart) */
    C_INIT,     /* HELLO sent, init() running */
    C_STARTING, /* START sent */
    C_UP,
    C_STOPPING, /* STOP sent */
    C_STOPPED   /* said STOPPED; exiting */
};

/* What the child was handed and will answer by token: a delivery (obj
 * the og_delivery_t, ev its event) or an HTTP request (obj the
 * og_http_req_t). A token is the slot's generation and its index, so a
 * late or forged answer finds nothing. */
struct slot {
    void *obj;
    const og_event_t *ev;
    uint32_t gen;
    int state;   /* 0 free, 1 waiting for the child, 2 with the child */
    size_t next; /* free list or waiting queue */
};

struct table {
    struct slot *v;
    size_t n, free;
};

/* An emit or batch of the child's waiting for the daemon's outcome. */
struct pemit {
    struct proxy *p;
    uint64_t epoch;
    uint64_t token;
    struct pemit *prev, *next;
};

#define NONE ((size_t)-1)

struct proxy {
    og_plugin_ctx_t *ctx;
    uv_loop_t *loop;
    char name[OG__MAX_NAME + 1]; /* a copy: the instance goes first */
    uint64_t heartbeat_ms, tick_ms, memory_limit;

    uv_process_t proc;
    int proc_open; /* handle initialised, not closed */
    int alive;     /* exit not seen yet */
    int pid;
    og__ipc_t *ipc;
    enum child_state cst;
    uint64_t epoch;       /* one per process started */
    char kill_why[200];   /* why we killed it */
    uint64_t deadline_ms; /* C_INIT, C_STARTING: ready by then */
    uint64_t up_since_ms;

    /* blocking handshake */
    int hs_kind, hs_rc;
    char hs_err[256];

    struct table ds; /* deliveries */
    size_t qhead, qtail, nsent;
    struct table rs; /* HTTP requests */
    struct pemit *emits;

    og_timer_t *tick, *restart;
    uint64_t ping_seq, ping_sent_ms;
    unsigned crashes;
    uint64_t restarts;

    int stopping;
    int destroyed;
    uv_timer_t grace; /* a live child's time to exit by itself */
    int grace_open;
    char grace_why[200]; /* why it is killed when the time is up */
};

static void spawn_async(struct proxy *p);
static void grace_start(struct proxy *p, uint64_t ms, const char *why);

/* ---- the host program ----------------------------------------------- */

const char *og__isolate_host_path(void)
{
    static char path[4200];
    char exe[4096];
    size_t n = sizeof(exe);
    const char *env = getenv("OMNIGATE_PLUGIN_HOST");

    if (env != NULL && env[0] != '\0') {
        snprintf(path, sizeof(path), "%s", env);
        return path;
    }
    if (uv_exepath(exe, &n) == 0) {
        char *slash = strrchr(exe, '/');

        if (slash != NULL) {
            *slash = '\0';
            snprintf(path, sizeof(path), "%s/omnigate-plugin-host", exe);
            if (access(path, X_OK) == 0)
                return path;
        }
    }
    snprintf(path, sizeof(path), "%s", PLUGINHOSTPATH);
    return path;
}

/* ---- releasing -------------------------------------------------------- */

static void maybe_free(struct proxy *p)
{
    if (!p->destroyed || p->proc_open || p->grace_open || p->ipc != NULL)
        return;
    while (p->emits != NULL) {
        struct pemit *e = p->emits;
        p->emits = e->next;
        free(e);
    }
    free(p->ds.v);
    free(p->rs.v);
    free(p);
}

static void proc_closed(uv_handle_t *h)
{
    struct proxy *p = h->data;

    p->proc_open = 0;
    maybe_free(p);
}

static void grace_closed(uv_handle_t *h)
{
    struct proxy *p = h->data;

    p->grace_open = 0;
    maybe_free(p);
}

/* Kills the child (it exits through on_exit); why is logged then. */
static void kill_child(struct proxy *p, const char *why)
{
    if (!p->alive)
        return;
    if (why != NULL && p->kill_why[0] == '\0')
        snprintf(p->kill_why, sizeof(p->kill_why), "%.*s",
                 (int)sizeof(p->kill_why) - 1, why);
    uv_process_kill(&p->proc, SIGKILL);
}

/* ---- token tables ------------------------------------------------------ */

static size_t tab_new(struct table *t, void *obj, int state)
{
    size_t i;

    if (t->n == 0)
        t->free = NONE;
    if (t->free == NONE) {
        size_t n = t->n ? t->n * 2 : 16, k;

        t->v = og__xrealloc(t->v, n * sizeof(*t->v));
        for (k = t->n; k < n; k++) {
            memset(&t->v[k], 0, sizeof(t->v[k]));
            t->v[k].next = k + 1 < n ? k + 1 : NONE;
        }
        t->free = t->n;
        t->n = n;
    }
    i = t->free;
    t->free = t->v[i].next;
    t->v[i].next = NONE;
    t->v[i].obj = obj;
    t->v[i].state = state;
    return i;
}

static void tab_free(struct table *t, size_t i)
{
    t->v[i].state = 0;
    t->v[i].obj = NULL;
    t->v[i].ev = NULL;
    t->v[i].gen++;
    t->v[i].next = t->free;
    t->free = i;
}

static uint64_t tab_token(const struct table *t, size_t i)
{
    return ((uint64_t)t->v[i].gen << 32) | i;
}

/* The slot a token names with the child, or NONE. */
static size_t tab_find(const struct table *t, uint64_t token)
{
    size_t i = (size_t)(token & 0xffffffffu);

    if (i >= t->n || t->v[i].gen != (uint32_t)(token >> 32) ||
        t->v[i].state != 2)
        return NONE;
    return i;
}

static void slot_free(struct proxy *p, size_t i)
{
    if (p->ds.v[i].state == 2)
        p->nsent--;
    tab_free(&p->ds, i);
}

/* ---- sending ------------------------------------------------------------ */

static int can_send(const struct proxy *p)
{
    return p->ipc != NULL && p->alive;
}

static void send_frame(struct proxy *p, og__ipc_frame_t *f)
{
    if (!can_send(p)) {
        msgpack_sbuffer_destroy(&f->sb);
        return;
    }
    og__ipc_send(p->ipc, f); /* a loss is seen by the reader */
}

static void send_delivery(struct proxy *p, size_t i)
{
    struct slot *s = &p->ds.v[i];
    og__ipc_frame_t f;
    size_t len;
    const uint8_t *data = og__event_data(s->ev, &len);

    og__ipc_begin(&f, OG__F_SEND, 3);
    msgpack_pack_uint64(&f.pk, tab_token(&p->ds, i));
    msgpack_pack_bin(&f.pk, len);
    msgpack_pack_bin_body(&f.pk, data, len);
    s->state = 2;
    p->nsent++;
    send_frame(p, &f);
}

/* Sends the deliveries that waited for the child, in order. */
static void flush_waiting(struct proxy *p)
{
    while (p->qhead != NONE && p->cst == C_UP) {
        size_t i = p->qhead;

        p->qhead = p->ds.v[i].next;
        if (p->qhead == NONE)
            p->qtail = NONE;
        send_delivery(p, i);
    }
}

/* ---- HTTP requests ------------------------------------------------------ */

static void respond_down(struct proxy *p, og_http_req_t *req)
{
    static const char *const retry[] = {"Retry-After: 2", NULL};
    char body[200];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":\"channel '%s' is restarting its plugin "
                     "process: retry later\"}",
                     p->name);

    og__host_api.http_respond(req, 503, "application/json", retry, body,
                              (size_t)n);
}

static void proxy_http(void *data, og_http_req_t *req)
{
    struct proxy *p = data;
    og__http_req_t *raw = og__instance_req_raw(req);
    og__ipc_frame_t f;
    size_t i, n, k, blen;
    const uint8_t *body;

    if (p->cst != C_UP || !can_send(p)) {
        respond_down(p, req);
        return;
    }
    i = tab_new(&p->rs, req, 2);
    n = og__http_req_nheaders(raw);
    body = og__http_req_body(raw, &blen);
    og__ipc_begin(&f, OG__F_HTTP_REQ, 7);
    msgpack_pack_uint64(&f.pk, tab_token(&p->rs, i));
    og__ipc_pack_str(&f.pk, og__http_req_method(raw));
    og__ipc_pack_str(&f.pk, og__http_req_path(raw));
    og__ipc_pack_str(&f.pk, og__http_req_query(raw));
    msgpack_pack_array(&f.pk, (uint32_t)(2 * n));
    for (k = 0; k < n; k++) {
        const char *value, *name = og__http_req_header_at(raw, k, &value);

        og__ipc_pack_str(&f.pk, name);
        og__ipc_pack_str(&f.pk, value);
    }
    msgpack_pack_bin(&f.pk, blen);
    msgpack_pack_bin_body(&f.pk, body, blen);
    send_frame(p, &f);
}

static void on_http_resp(struct proxy *p, const msgpack_object_array *f)
{
    size_t i = tab_find(&p->rs, (uint64_t)og__ipc_int(f, 1)), k, blen, nh = 0;
    char ctype[256];
    const char **hdrs = NULL;
    const uint8_t *body;
    og_http_req_t *req;

    if (i == NONE)
        return;
    req = p->rs.v[i].obj;
    tab_free(&p->rs, i);
    og__ipc_str(f, 3, ctype, sizeof(ctype));
    if (f->size > 4 && f->ptr[4].type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object_array *h = &f->ptr[4].via.array;

        hdrs = og__xcalloc(h->size + 1, sizeof(*hdrs));
        for (k = 0; k < h->size; k++) {
            char *line;

            if (h->ptr[k].type != MSGPACK_OBJECT_STR)
                continue;
            line = og__xstrndup(h->ptr[k].via.str.ptr, h->ptr[k].via.str.size);
            if (strpbrk(line, "\r\n") != NULL) { /* no header injection */
                free(line);
                continue;
            }
            hdrs[nh++] = line;
        }
    }
    body = og__ipc_bin(f, 5, &blen);
    og__host_api.http_respond(req, (int)og__ipc_int(f, 2),
                              ctype[0] ? ctype : NULL,
                              (const char *const *)hdrs, body, blen);
    for (k = 0; k < nh; k++)
        free((char *)hdrs[k]);
    free(hdrs);
}

static void on_mount(struct proxy *p, const msgpack_object_array *f)
{
    char method[16], path[1024];
    og_http_route_t route;
    og__http_server_t *srv = p->ctx->core->http_public;

    og__ipc_str(f, 1, method, sizeof(method));
    og__ipc_str(f, 2, path, sizeof(path));
    if (srv != NULL &&
        og__http_server_owner(srv, method[0] ? method : NULL, path) == p->ctx)
        return; /* mounted by the process before this one */
    memset(&route, 0, sizeof(route));
    route.struct_size = sizeof(route);
    route.method = method[0] ? method : NULL;
    route.path = path;
    route.max_body = (size_t)og__ipc_int(f, 3);
    route.handler = proxy_http;
    route.data = p;
    og__host_api.http_mount(p->ctx, &route);
}

/* ---- the child's events ------------------------------------------------- */

static struct pemit *pemit_new(struct proxy *p, uint64_t token)
{
    struct pemit *e = og__xcalloc(1, sizeof(*e));

    e->p = p;
    e->epoch = p->epoch;
    e->token = token;
    e->next = p->emits;
    if (p->emits)
        p->emits->prev = e;
    p->emits = e;
    return e;
}

/* Unlinks e; true when its answer is still wanted. */
static int pemit_done(struct pemit *e)
{
    struct proxy *p = e->p;

    if (e->prev)
        e->prev->next = e->next;
    else
        p->emits = e->next;
    if (e->next)
        e->next->prev = e->prev;
    return !p->destroyed && e->epoch == p->epoch && can_send(p);
}

static void emitted(void *data, og_err_t rc, const char *event_id)
{
    struct pemit *e = data;
    struct proxy *p = e->p;

    if (pemit_done(e)) {
        og__ipc_frame_t f;

        og__ipc_begin(&f, OG__F_EMITTED, 4);
        msgpack_pack_uint64(&f.pk, e->token);
        msgpack_pack_int(&f.pk, rc);
        og__ipc_pack_str(&f.pk, event_id);
        send_frame(p, &f);
    }
    free(e);
}

static void on_emit(struct proxy *p, const msgpack_object_array *f)
{
    uint64_t token = (uint64_t)og__ipc_int(f, 1);
    size_t len;
    const uint8_t *bytes = og__ipc_bin(f, 3, &len);
    struct pemit *e;
    og_err_t rc;

    if (bytes == NULL)
        bytes = (const uint8_t *)"";
    if (token == 0) {
        og__host_api.emit(p->ctx, bytes, len);
        return;
    }
    e = pemit_new(p, token);
    rc = og__host_api.emit_async(p->ctx, bytes, len, emitted, e);
    if (rc != OG_OK)
        emitted(e, rc, NULL);
}

static void batched(void *data, og_err_t all, size_t n, const og_err_t *results,
                    const char *const *ids, const char *const *customers)
{
    struct pemit *e = data;
    struct proxy *p = e->p;
    size_t i;

    if (pemit_done(e)) {
        og__ipc_frame_t f;

        og__ipc_begin(&f, OG__F_BATCHED, 4);
        msgpack_pack_uint64(&f.pk, e->token);
        msgpack_pack_int(&f.pk, all);
        msgpack_pack_array(&f.pk, (uint32_t)n);
        for (i = 0; i < n; i++) {
            msgpack_pack_array(&f.pk, 3);
            msgpack_pack_int(&f.pk, results ? results[i] : all);
            og__ipc_pack_str(&f.pk, ids ? ids[i] : NULL);
            og__ipc_pack_str(&f.pk, customers ? customers[i] : NULL);
        }
        send_frame(p, &f);
    }
    free(e);
}

static void on_batch(struct proxy *p, const msgpack_object_array *f)
{
    uint64_t token = (uint64_t)og__ipc_int(f, 1);
    const msgpack_object_array *a;
    og_emit_item_t *items;
    struct pemit *e;
    char why[256];
    size_t i, n, bad = 0;
    og_err_t rc;

    if (f->size < 3 || f->ptr[2].type != MSGPACK_OBJECT_ARRAY ||
        f->ptr[2].via.array.size == 0)
        return;
    a = &f->ptr[2].via.array;
    n = a->size;
    items = og__xcalloc(n, sizeof(*items));
    for (i = 0; i < n; i++) {
        if (a->ptr[i].type == MSGPACK_OBJECT_ARRAY) {
            items[i].flags = (uint32_t)og__ipc_int(&a->ptr[i].via.array, 0);
            items[i].msgpack =
                og__ipc_bin(&a->ptr[i].via.array, 1, &items[i].len);
        }
        if (items[i].msgpack == NULL)
            items[i].msgpack = (const uint8_t *)"";
    }
    e = pemit_new(p, token);
    rc = og__host_api.emit_batch_async(p->ctx, items, n, &bad, why, sizeof(why),
                                       batched, e);
    free(items);
    if (rc != OG_OK) {
        og_err_t *rcs = og__xcalloc(n, sizeof(*rcs));

        for (i = 0; i < n; i++)
            rcs[i] = rc;
        batched(e, rc, n, rcs, NULL, NULL);
        free(rcs);
    }
}

static void on_done(struct proxy *p, const msgpack_object_array *f)
{
    size_t i = tab_find(&p->ds, (uint64_t)og__ipc_int(f, 1));
    og_err_t rc = (og_err_t)og__ipc_int(f, 2);
    char reason[512];
    uint64_t retry = (uint64_t)og__ipc_int(f, 4);
    og_delivery_t *d;

    if (i == NONE)
        return;
    if (rc != OG_OK && rc != OG_ERR_RETRY && rc != OG_ERR_REJECTED &&
        rc != OG_ERR_CANCELLED)
        rc = OG_ERR_INTERNAL;
    og__ipc_str(f, 3, reason, sizeof(reason));
    d = p->ds.v[i].obj;
    slot_free(p, i);
    if (retry > 0)
        og__host_api.delivery_retry_after(d, retry);
    og__host_api.delivery_complete(d, rc, reason[0] ? reason : NULL);
}

/* ---- the child's frames ------------------------------------------------- */

static void on_frame(void *data, const msgpack_object_array *f)
{
    struct proxy *p = data;
    unsigned kind = (unsigned)f->ptr[0].via.u64;

    if (p->destroyed)
        return;
    switch (kind) {
    case OG__F_READY:
    case OG__F_STARTED:
        p->hs_kind = (int)kind;
        p->hs_rc = (int)og__ipc_int(f, 1);
        og__ipc_str(f, 2, p->hs_err, sizeof(p->hs_err));
        if (p->cst == C_INIT && kind == OG__F_READY && p->hs_rc == OG_OK &&
            p->tick != NULL) {
            og__ipc_frame_t s;

            /* a restart: go on to start() */
            og__ipc_begin(&s, OG__F_START, 1);
            send_frame(p, &s);
            p->cst = C_STARTING;
        } else if (p->cst == C_STARTING && kind == OG__F_STARTED &&
                   p->hs_rc == OG_OK && p->tick != NULL) {
            p->cst = C_UP;
            p->up_since_ms = og__now_ms();
            og__host_api.gauge_set(p->ctx, "isolation_up", 1);
            og__log(OG_LOG_NOTICE, p->name,
                    "plugin process %d up again (restart %llu)", p->pid,
                    (unsigned long long)p->restarts);
            flush_waiting(p);
        } else if (p->hs_rc != OG_OK && p->tick != NULL) {
            char why[400];

            snprintf(why, sizeof(why), "%s failed in the restarted process: %s",
                     kind == OG__F_READY ? "init()" : "start()", p->hs_err);
            kill_child(p, why);
        }
        break;
    case OG__F_DONE: on_done(p, f); break;
    case OG__F_STOPPED:
        if (p->cst == C_STOPPING) {
            p->cst = C_STOPPED;
            og__host_api.stopped(p->ctx);
        }
        break;
    case OG__F_PONG:
        if ((uint64_t)og__ipc_int(f, 1) == p->ping_seq)
            p->ping_sent_ms = 0;
        break;
    case OG__F_EMIT: on_emit(p, f); break;
    case OG__F_BATCH: on_batch(p, f); break;
    case OG__F_METRIC: {
        char name[64];

        og__ipc_str(f, 1, name, sizeof(name));
        if (og__ipc_int(f, 2))
            og__host_api.gauge_set(p->ctx, name, og__ipc_int(f, 3));
        else
            og__host_api.counter_add(p->ctx, name, (uint64_t)og__ipc_int(f, 3));
        break;
    }
    case OG__F_MOUNT: on_mount(p, f); break;
    case OG__F_HTTP_RESP: on_http_resp(p, f); break;
    default: kill_child(p, "sent a frame of unknown kind"); break;
    }
}

static void on_lost(void *data, const char *why)
{
    struct proxy *p = data;

    char msg[200];

    /* A child that dies closes its socket too: on_exit tells how it
     * ended. One that closed it and lives on is killed. */
    snprintf(msg, sizeof(msg), "closed its socket (%s) and did not exit", why);
    if (p->alive)
        grace_start(p, 500, msg);
}

/* ---- the child's end ------------------------------------------------------ */

static void schedule_restart(struct proxy *p);

/* The child is gone: in-flight work goes back, then it restarts. */
static void child_lost(struct proxy *p, const char *why)
{
    size_t i, returned = 0, answered = 0;
    char reason[340];
    int was_up = p->cst == C_UP || p->cst == C_STOPPING;

    p->cst = C_DOWN;
    p->epoch++; /* answers owed to the dead process are dropped */
    p->ping_sent_ms = 0;
    snprintf(reason, sizeof(reason), "plugin process %s", why);
    for (i = 0; i < p->rs.n; i++) {
        if (p->rs.v[i].state == 2) {
            og_http_req_t *req = p->rs.v[i].obj;

            tab_free(&p->rs, i);
            respond_down(p, req);
            answered++;
        }
    }
    /* Completing a delivery may finish the instance's stop and destroy
     * the proxy: collect first. */
    {
        og_delivery_t **ds = og__xcalloc(p->ds.n + 1, sizeof(*ds));
        size_t n = 0, k;
        int stopping = p->stopping;

        for (i = 0; i < p->ds.n; i++) {
            if (p->ds.v[i].state == 2) {
                ds[n++] = p->ds.v[i].obj;
                slot_free(p, i);
            }
        }
        returned = n;
        og__log(OG_LOG_ERROR, p->name,
                "plugin process %d %s; %zu deliveries in flight go back to "
                "the queue, %zu requests answered 503%s",
                p->pid, why, returned, answered,
                stopping ? "" : "; restarting it");
        og__host_api.counter_add(p->ctx, "isolation_crashes", 1);
        og__host_api.gauge_set(p->ctx, "isolation_up", 0);
        if (!stopping && !p->destroyed)
            schedule_restart(p);
        for (k = 0; k < n; k++)
            og__host_api.delivery_complete(ds[k], OG_ERR_RETRY, reason);
        free(ds);
        if (stopping && !p->destroyed)
            og__host_api.stopped(p->ctx);
    }
    (void)was_up;
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
    struct proxy *p = proc->data;
    char why[300];
    int killed;

    p->alive = 0;
    if (p->kill_why[0] != '\0')
        snprintf(why, sizeof(why), "was killed: %s", p->kill_why);
    else if (sig != 0)
        snprintf(why, sizeof(why), "died of signal %d (%s)", sig,
                 strsignal(sig));
    else
        snprintf(why, sizeof(why), "exited with status %lld",
                 (long long)status);
    /* what it wrote before it died counts: results it sent are results */
    if (p->ipc != NULL && !p->destroyed)
        og__ipc_read_rest(p->ipc); /* nothing is sent back: it is dead */
    killed = p->kill_why[0] != '\0';
    p->kill_why[0] = '\0';
    og__ipc_free(p->ipc);
    p->ipc = NULL;
    uv_close((uv_handle_t *)&p->proc, proc_closed);
    uv_timer_stop(&p->grace);
    if (p->destroyed && p->grace_open == 1) {
        uv_close((uv_handle_t *)&p->grace, grace_closed);
        p->grace_open = 2; /* closing */
    }
    if (p->destroyed) {
        if ((status != 0 || sig != 0) && !killed)
            og__log(OG_LOG_WARNING, p->name,
                    "plugin process %d %s after its channel stopped", p->pid,
                    why);
        return; /* freed by the close callbacks */
    }
    if (p->cst == C_STOPPED)
        return; /* a clean end after STOPPED */
    child_lost(p, why);
}

/* Starts a child: socketpair, spawn, HELLO. 0 or -1 (why in p->hs_err). */
static int spawn(struct proxy *p)
{
    const og__chconf_t *ch = p->ctx->conf;
    const char *host = og__isolate_host_path();
    static char a_fd[] = "--ipc-fd", a_parent[] = "--parent";
    char fdarg[16], ppid[24], hostarg[4200];
    char *args[] = {hostarg, a_fd, fdarg, a_parent, ppid, NULL};
    uv_process_options_t o;
    uv_stdio_container_t stdio[4];
    og__ipc_frame_t f;
    char why[200];
    int sv[2], rc;
    size_t i;

    if (og__file_check(host, 0, why, sizeof(why)) != 0 ||
        access(host, X_OK) != 0) {
        snprintf(p->hs_err, sizeof(p->hs_err),
                 "cannot run the plugin host %s: %s", host,
                 why[0] ? why : strerror(errno));
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(p->hs_err, sizeof(p->hs_err), "socketpair: %s",
                 strerror(errno));
        return -1;
    }
    snprintf(hostarg, sizeof(hostarg), "%s", host);
    snprintf(fdarg, sizeof(fdarg), "3");
    snprintf(ppid, sizeof(ppid), "%ld", (long)getpid());
    memset(&o, 0, sizeof(o));
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = sv[1];
    o.file = host;
    o.args = args;
    o.stdio = stdio;
    o.stdio_count = 4;
    o.exit_cb = on_exit_cb;
    p->proc.data = p;
    rc = uv_spawn(p->loop, &p->proc, &o);
    close(sv[1]);
    p->proc_open = 1; /* uv_spawn initialised the handle either way */
    if (rc != 0) {
        close(sv[0]);
        uv_close((uv_handle_t *)&p->proc, proc_closed);
        snprintf(p->hs_err, sizeof(p->hs_err), "cannot start %s: %s", host,
                 uv_strerror(rc));
        return -1;
    }
    p->alive = 1;
    p->pid = p->proc.pid;
    p->epoch++;
    p->kill_why[0] = '\0';
    p->hs_kind = 0;
    p->ipc = og__ipc_new(sv[0], MAX_FRAME, on_frame, on_lost, p);
    og__ipc_begin(&f, OG__F_HELLO, 9);
    og__ipc_pack_str(&f.pk, p->ctx->plugin->path);
    og__ipc_pack_str(&f.pk, ch->name);
    og__ipc_pack_str(&f.pk, ch->file);
    msgpack_pack_int64(&f.pk, ch->max_inflight);
    msgpack_pack_uint64(&f.pk, p->ctx->core->max_event_bytes);
    msgpack_pack_int(&f.pk, (int)og__log_get_level());
    msgpack_pack_uint64(&f.pk, p->memory_limit);
    msgpack_pack_array(&f.pk, (uint32_t)ch->nopts);
    for (i = 0; i < ch->nopts; i++) {
        msgpack_pack_array(&f.pk, 3);
        og__ipc_pack_str(&f.pk, ch->opts[i].key);
        og__ipc_pack_str(&f.pk, ch->opts[i].value);
        msgpack_pack_int(&f.pk, ch->opts[i].line);
    }
    p->cst = C_INIT;
    p->deadline_ms = og__now_ms() + p->heartbeat_ms;
    send_frame(p, &f);
    return 0;
}

static void restart_fired(og_timer_t *t, void *data)
{
    struct proxy *p = data;

    og__host_api.timer_stop(t);
    p->restart = NULL;
    if (p->stopping || p->destroyed)
        return;
    spawn_async(p);
}

static void schedule_restart(struct proxy *p)
{
    uint64_t delay = RESTART_BASE_MS;
    unsigned k;

    if (p->up_since_ms != 0 && og__now_ms() - p->up_since_ms >= STABLE_MS)
        p->crashes = 0;
    p->up_since_ms = 0;
    for (k = 0; k < p->crashes && delay < RESTART_MAX_MS; k++)
        delay *= 2;
    if (delay > RESTART_MAX_MS)
        delay = RESTART_MAX_MS;
    p->crashes++;
    if (p->restart != NULL)
        og__host_api.timer_stop(p->restart);
    p->restart = og__host_api.timer_start(p->ctx, delay, 0, restart_fired, p);
    og__log(OG_LOG_NOTICE, p->name, "restarting the plugin process in %llu ms",
            (unsigned long long)delay);
}

static void spawn_async(struct proxy *p)
{
    p->restarts++;
    og__host_api.counter_add(p->ctx, "isolation_restarts", 1);
    if (spawn(p) != 0) {
        og__log(OG_LOG_ERROR, p->name, "%s", p->hs_err);
        schedule_restart(p);
        return;
    }
    if (og__ipc_start(p->ipc, p->loop) != 0)
        kill_child(p, "its socket could not be watched");
}

/* ---- supervision ---------------------------------------------------------- */

/* Resident bytes of pid, or 0 when unknown. */
static uint64_t rss_of(int pid)
{
    char path[64], buf[128];
    unsigned long long size = 0, res = 0;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &res) != 2)
        return 0;
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void tick(og_timer_t *t, void *data)
{
    struct proxy *p = data;
    uint64_t now = og__now_ms();
    char why[200];

    (void)t;
    if (!p->alive || p->kill_why[0] != '\0')
        return;
    if ((p->cst == C_INIT || p->cst == C_STARTING) && now > p->deadline_ms) {
        snprintf(why, sizeof(why),
                 "not ready within heartbeat_timeout (%llu ms)",
                 (unsigned long long)p->heartbeat_ms);
        kill_child(p, why);
        return;
    }
    if (p->memory_limit > 0) {
        uint64_t rss = rss_of(p->pid);

        og__host_api.gauge_set(p->ctx, "isolation_resident_bytes",
                               (int64_t)rss);
        if (rss > p->memory_limit) {
            snprintf(why, sizeof(why),
                     "resident memory %llu MiB over memory_limit (%llu MiB)",
                     (unsigned long long)(rss >> 20),
                     (unsigned long long)(p->memory_limit >> 20));
            kill_child(p, why);
            return;
        }
    }
    if (p->cst != C_UP && p->cst != C_STOPPING)
        return;
    if (p->ping_sent_ms != 0) {
        if (now - p->ping_sent_ms >= p->heartbeat_ms) {
            snprintf(why, sizeof(why),
                     "left a heartbeat unanswered for %llu ms (hung?)",
                     (unsigned long long)(now - p->ping_sent_ms));
            kill_child(p, why);
        }
        return;
    }
    {
        og__ipc_frame_t f;

        og__ipc_begin(&f, OG__F_PING, 2);
        msgpack_pack_uint64(&f.pk, ++p->ping_seq);
        p->ping_sent_ms = now;
        send_frame(p, &f);
    }
}

/* ---- the lifecycle ------------------------------------------------------- */

static int handshake_done(void *data)
{
    struct proxy *p = data;

    return p->hs_kind != 0;
}

/* Waits for READY or STARTED during the first start. */
static og_err_t handshake(struct proxy *p, int kind, const char *what)
{
    og_err_t rc;

    p->hs_kind = 0;
    rc = og__ipc_wait(p->ipc, p->heartbeat_ms, handshake_done, p);
    if (rc == OG_ERR_TIMEOUT) {
        snprintf(p->ctx->last_error, sizeof(p->ctx->last_error),
                 "the plugin process did not finish %s within "
                 "heartbeat_timeout (%llu ms)",
                 what, (unsigned long long)p->heartbeat_ms);
        kill_child(p, "did not finish its handshake");
        return OG_ERR_TIMEOUT;
    }
    if (rc != OG_OK || p->hs_kind != kind) {
        snprintf(p->ctx->last_error, sizeof(p->ctx->last_error),
                 "the plugin process ended during %s (its log says why)", what);
        kill_child(p, NULL);
        return OG_ERR_IO;
    }
    if (p->hs_rc != OG_OK) {
        snprintf(p->ctx->last_error, sizeof(p->ctx->last_error), "%s",
                 p->hs_err);
        return (og_err_t)p->hs_rc;
    }
    return OG_OK;
}

static void grace_fired(uv_timer_t *t)
{
    struct proxy *p = t->data;

    kill_child(p, p->grace_why);
}

/* Kills the child unless it exits within ms. */
static void grace_start(struct proxy *p, uint64_t ms, const char *why)
{
    snprintf(p->grace_why, sizeof(p->grace_why), "%.*s",
             (int)sizeof(p->grace_why) - 1, why);
    uv_timer_start(&p->grace, grace_fired, ms, 0);
}

/* Gives up the proxy: the child is killed unless it is exiting by
 * itself; memory goes once libuv closed the handles. */
static void release(struct proxy *p)
{
    size_t i;

    p->destroyed = 1;
    for (i = 0; i < p->ds.n; i++)
        p->ds.v[i].state = 0; /* the instance finishes them */
    for (i = 0; i < p->rs.n; i++)
        p->rs.v[i].state = 0; /* answered by the instance */
    if (p->alive && p->cst == C_STOPPED) {
        char why[100];

        /* it is exiting by itself: a grace period, then the kill */
        snprintf(why, sizeof(why), "did not exit within %d ms of stopping",
                 GRACE_MS);
        grace_start(p, GRACE_MS, why);
    }
    if (p->alive && p->cst != C_STOPPED)
        kill_child(p, "its channel stopped");
    if (!p->alive && p->ipc != NULL) {
        og__ipc_free(p->ipc);
        p->ipc = NULL;
    }
    if (!p->alive && p->grace_open == 1) {
        uv_timer_stop(&p->grace);
        uv_close((uv_handle_t *)&p->grace, grace_closed);
        p->grace_open = 2;
    }
    maybe_free(p);
}

static og_err_t proxy_init(og_plugin_ctx_t *ctx, void **state)
{
    struct proxy *p = og__xcalloc(1, sizeof(*p));
    og_err_t rc;

    p->ctx = ctx;
    p->loop = ctx->core->loop;
    snprintf(p->name, sizeof(p->name), "%s", og__instance_name(ctx));
    p->heartbeat_ms = ctx->conf->heartbeat_ms ? ctx->conf->heartbeat_ms : 10000;
    p->tick_ms = p->heartbeat_ms / 4 < 500 ? p->heartbeat_ms / 4 : 500;
    if (p->tick_ms < 25)
        p->tick_ms = 25;
    p->memory_limit = ctx->conf->memory_limit;
    p->qhead = p->qtail = NONE;
    uv_timer_init(p->loop, &p->grace);
    p->grace.data = p;
    p->grace_open = 1;
    if (spawn(p) != 0) {
        snprintf(ctx->last_error, sizeof(ctx->last_error), "%s", p->hs_err);
        release(p);
        return OG_ERR_IO;
    }
    rc = handshake(p, OG__F_READY, "init()");
    if (rc != OG_OK) {
        release(p);
        return rc;
    }
    *state = p;
    return OG_OK;
}

static og_err_t proxy_start(void *state)
{
    struct proxy *p = state;
    og__ipc_frame_t f;
    og_err_t rc;

    og__ipc_begin(&f, OG__F_START, 1);
    send_frame(p, &f);
    p->cst = C_STARTING;
    rc = handshake(p, OG__F_STARTED, "start()");
    if (rc != OG_OK)
        return rc;
    if (og__ipc_start(p->ipc, p->loop) != 0)
        return OG_ERR_IO;
    p->tick = og__host_api.timer_start(p->ctx, p->tick_ms, p->tick_ms, tick, p);
    p->cst = C_UP;
    p->up_since_ms = og__now_ms();
    og__host_api.gauge_set(p->ctx, "isolation_up", 1);
    og__log(OG_LOG_INFO, p->name, "plugin process %d up (isolation = process)",
            p->pid);
    flush_waiting(p);
    return OG_OK;
}

static og_err_t proxy_send(void *state, const og_event_t *ev, og_delivery_t *d)
{
    struct proxy *p = state;
    size_t i = tab_new(&p->ds, d, 1);

    p->ds.v[i].ev = ev;
    if (p->cst == C_UP && can_send(p)) {
        send_delivery(p, i);
    } else {
        if (p->qtail != NONE)
            p->ds.v[p->qtail].next = i;
        else
            p->qhead = i;
        p->qtail = i;
    }
    return OG_PENDING;
}

static og_err_t proxy_stop(void *state)
{
    struct proxy *p = state;

    p->stopping = 1;
    if (p->restart != NULL) {
        og__host_api.timer_stop(p->restart);
        p->restart = NULL;
    }
    /* those that never reached the child go back untried */
    while (p->qhead != NONE) {
        size_t i = p->qhead;
        og_delivery_t *d = p->ds.v[i].obj;

        p->qhead = p->ds.v[i].next;
        if (p->qhead == NONE)
            p->qtail = NONE;
        slot_free(p, i);
        og__host_api.delivery_complete(d, OG_ERR_CANCELLED, NULL);
    }
    if (p->cst == C_UP && can_send(p)) {
        og__ipc_frame_t f;

        og__ipc_begin(&f, OG__F_STOP, 1);
        send_frame(p, &f);
        p->cst = C_STOPPING;
        return OG_PENDING;
    }
    if (p->alive)
        kill_child(p, "its channel stopped while it was not up");
    return OG_OK;
}

static void proxy_destroy(void *state)
{
    release(state);
}

const og_plugin_def_t og__isolate_ops = {
    OG_PLUGIN_DEF_INIT,
    .name = "isolated",
    .version = PACKAGE_VERSION,
    .description = "the daemon's side of a plugin in its own process",
    .caps = OG_CAP_INGRESS | OG_CAP_EGRESS,
    .init = proxy_init,
    .start = proxy_start,
    .send = proxy_send,
    .stop = proxy_stop,
    .destroy = proxy_destroy,
};
