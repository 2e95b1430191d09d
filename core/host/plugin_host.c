/*
 * plugin_host.c: omnigate-plugin-host, the process a plugin with
 * isolation = process runs in (docs/isolation.md).
 *
 * The daemon starts it with a socket as fd 3 and speaks the frames of
 * core/host/ipc.h. Inside, the plugin runs on the same instance machinery as
 * in the daemon (core/host/instance.c: the same host API table, timers, HTTP
 * client, config getters, envelope checks), with an og__core_t whose
 * hooks send what the plugin emits, mounts, counts and answers to the
 * daemon instead of storing it. So the .so is the same, the ABI is the
 * same, and a plugin cannot tell.
 *
 * It ignores SIGTERM, SIGINT and SIGHUP (the daemon stops it with a
 * frame; systemd signals the whole unit), dies with the daemon
 * (PR_SET_PDEATHSIG) and exits at once when its socket closes.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "net/http_client.h"
#include "net/http_server.h"
#include "host/instance.h"
#include "host/ipc.h"
#include "base/log.h"
#include "host/plugin.h"
#include "base/util.h"

#if defined(__SANITIZE_ADDRESS__)
#define OG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OG_ASAN 1
#endif
#endif

/*
 * Events forwarded and not answered yet, at most: past it an emit is
 * refused OG_ERR_BUSY at once, as the daemon's full queue refuses one in
 * process, so that a plugin that emits as fast as it is let (og_emit()'s
 * contract) is held back instead of piling up frames.
 */
#define EMIT_WINDOW 4096

/* An emit or batch waiting for the daemon's outcome (cb NULL: og_emit()
 * without one; the outcome is only counted, and logged when a refusal). */
struct wait {
    uint64_t token;
    og__committed_cb cb;
    void **cbdata;
    size_t n;
    struct wait *next;
};

static struct host {
    uv_loop_t loop;
    og__core_t core;
    og__ipc_t *ipc;
    og_plugin_ctx_t *inst;
    og__chconf_t ch;
    struct wait *waits, *waits_tail; /* in the order sent */
    size_t outstanding;              /* events in them */
    uint64_t next_token;
    int done; /* stopped or failed: exit once the socket is flushed */
    int exit_code;
} H;

static void send_frame(og__ipc_frame_t *f)
{
    if (H.ipc == NULL) {
        msgpack_sbuffer_destroy(&f->sb);
        return;
    }
    og__ipc_send(H.ipc, f);
}

static void send_result(unsigned kind, og_err_t rc, const char *why)
{
    og__ipc_frame_t f;

    og__ipc_begin(&f, kind, 3);
    msgpack_pack_int(&f.pk, rc);
    og__ipc_pack_str(&f.pk, why);
    send_frame(&f);
}

/* ---- leaving ---------------------------------------------------------- */

static void close_all(void *data)
{
    (void)data;
    if (H.inst != NULL) {
        og__instance_free(H.inst);
        H.inst = NULL;
    }
    if (H.core.http_public != NULL) {
        og__http_server_close(H.core.http_public);
        H.core.http_public = NULL;
    }
    if (H.core.http != NULL) {
        og__http_destroy(H.core.http);
        H.core.http = NULL;
    }
    if (H.ipc != NULL) {
        og__ipc_free(H.ipc);
        H.ipc = NULL;
    }
}

/* Exits (through the loop running dry) once what was sent is written. */
static void finish(int code)
{
    H.done = 1;
    H.exit_code = code;
    if (H.ipc != NULL)
        og__ipc_on_flushed(H.ipc, close_all, NULL);
    else
        close_all(NULL);
}

/* ---- hooks of the plugin's instance ------------------------------------ */

static og_err_t no_emit(void *data, og_plugin_ctx_t *from, og_event_t *ev,
                        og__committed_cb cb, void *cbdata)
{
    (void)data, (void)from, (void)ev, (void)cb, (void)cbdata;
    return OG_ERR_INTERNAL; /* every emit is forwarded */
}

static og_err_t forward(void *data, og_plugin_ctx_t *from,
                        const og_emit_item_t *items, size_t n,
                        og__committed_cb cb, void *const *cbdata)
{
    og__ipc_frame_t f;
    uint64_t token = 0;
    size_t i;

    (void)data, (void)from;
    if (H.ipc == NULL || H.done)
        return OG_ERR_STOPPING;
    if (H.outstanding > 0 && H.outstanding + n > EMIT_WINDOW)
        return OG_ERR_BUSY;
    {
        struct wait *w = og__xcalloc(1, sizeof(*w));

        w->token = token = ++H.next_token;
        w->cb = cb;
        w->n = n;
        w->cbdata = og__xcalloc(n, sizeof(*w->cbdata));
        for (i = 0; cb != NULL && i < n; i++)
            w->cbdata[i] = cbdata[i];
        if (H.waits_tail != NULL)
            H.waits_tail->next = w;
        else
            H.waits = w;
        H.waits_tail = w;
        H.outstanding += n;
    }
    if (n == 1 && items[0].flags == 0) {
        og__ipc_begin(&f, OG__F_EMIT, 4);
        msgpack_pack_uint64(&f.pk, token);
        msgpack_pack_uint32(&f.pk, 0);
        msgpack_pack_bin(&f.pk, items[0].len);
        msgpack_pack_bin_body(&f.pk, items[0].msgpack, items[0].len);
    } else {
        og__ipc_begin(&f, OG__F_BATCH, 3);
        msgpack_pack_uint64(&f.pk, token);
        msgpack_pack_array(&f.pk, (uint32_t)n);
        for (i = 0; i < n; i++) {
            msgpack_pack_array(&f.pk, 2);
            msgpack_pack_uint32(&f.pk, items[i].flags);
            msgpack_pack_bin(&f.pk, items[i].len);
            msgpack_pack_bin_body(&f.pk, items[i].msgpack, items[i].len);
        }
    }
    send_frame(&f);
    return OG_OK;
}

/* Answers come in the order sent: the head, almost always. */
static struct wait *wait_take(uint64_t token)
{
    struct wait **pp, *w, *prev = NULL;

    for (pp = &H.waits; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
        if ((*pp)->token == token) {
            w = *pp;
            *pp = w->next;
            if (H.waits_tail == w)
                H.waits_tail = prev;
            H.outstanding -= w->n;
            return w;
        }
    }
    return NULL;
}

static void wait_free(struct wait *w)
{
    free(w->cbdata);
    free(w);
}

static void metric(void *data, og_plugin_ctx_t *from, const char *name,
                   int gauge, int64_t value)
{
    og__ipc_frame_t f;

    (void)data, (void)from;
    og__ipc_begin(&f, OG__F_METRIC, 4);
    og__ipc_pack_str(&f.pk, name);
    msgpack_pack_int(&f.pk, gauge);
    msgpack_pack_int64(&f.pk, value);
    send_frame(&f);
}

static void mounted(void *data, og_plugin_ctx_t *from, const char *method,
                    const char *path, size_t max_body)
{
    og__ipc_frame_t f;

    (void)data, (void)from;
    og__ipc_begin(&f, OG__F_MOUNT, 4);
    og__ipc_pack_str(&f.pk, method);
    og__ipc_pack_str(&f.pk, path);
    msgpack_pack_uint64(&f.pk, max_body);
    send_frame(&f);
}

static void delivered(void *data, og_plugin_ctx_t *inst, og_event_t *ev,
                      int64_t row, uint32_t attempts, og_err_t rc,
                      const char *reason, uint64_t retry_after_ms)
{
    og__ipc_frame_t f;

    (void)data, (void)inst, (void)ev, (void)attempts;
    og__ipc_begin(&f, OG__F_DONE, 5);
    msgpack_pack_uint64(&f.pk, (uint64_t)row);
    msgpack_pack_int(&f.pk, rc);
    og__ipc_pack_str(&f.pk, reason);
    msgpack_pack_uint64(&f.pk, retry_after_ms);
    send_frame(&f);
}

/* ---- the daemon's frames ------------------------------------------------ */

static void on_hello(const msgpack_object_array *f)
{
    char path[4096], name[256], file[4096], err[512];
    const msgpack_object_array *opts = NULL;
    og__http_limits_t limits;
    og__plugin_t *p;
    uint64_t memory_limit;
    size_t i;

    og__ipc_str(f, 1, path, sizeof(path));
    og__ipc_str(f, 2, name, sizeof(name));
    og__ipc_str(f, 3, file, sizeof(file));
    og__log_set_level((og_log_level_t)og__ipc_int(f, 6));
    memory_limit = (uint64_t)og__ipc_int(f, 7);
#ifndef OG_ASAN
    if (memory_limit > 0) {
        /* A backstop for one huge allocation between two of the daemon's
         * resident-memory checks: address space, which counts more than
         * what is resident, hence the margin. (AddressSanitizer's shadow
         * memory makes such a limit meaningless in sanitizer builds.) */
        struct rlimit rl;

        rl.rlim_cur = rl.rlim_max = (rlim_t)(2 * memory_limit + (1ull << 30));
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            og__log(OG_LOG_WARNING, name,
                    "cannot limit the plugin process's address space (%s); "
                    "its resident memory is still watched",
                    strerror(errno));
    }
#else
    (void)memory_limit;
#endif
    memset(&H.ch, 0, sizeof(H.ch));
    H.ch.name = og__xstrdup(name);
    H.ch.file = og__xstrdup(file);
    H.ch.enabled = 1;
    H.ch.max_inflight = og__ipc_int(f, 4);
    if (f->size > 8 && f->ptr[8].type == MSGPACK_OBJECT_ARRAY)
        opts = &f->ptr[8].via.array;
    H.ch.nopts = opts ? opts->size : 0;
    H.ch.opts = og__xcalloc(H.ch.nopts + 1, sizeof(*H.ch.opts));
    for (i = 0; i < H.ch.nopts; i++) {
        char buf[65536];
        const msgpack_object_array *o =
            opts->ptr[i].type == MSGPACK_OBJECT_ARRAY ? &opts->ptr[i].via.array
                                                      : NULL;
        if (o == NULL)
            continue;
        H.ch.opts[i].key = og__xstrdup(og__ipc_str(o, 0, buf, sizeof(buf)));
        H.ch.opts[i].value = og__xstrdup(og__ipc_str(o, 1, buf, sizeof(buf)));
        H.ch.opts[i].line = (int)og__ipc_int(o, 2);
    }
    p = og__plugin_open(path, err, sizeof(err));
    if (p == NULL) {
        og__log(OG_LOG_ERROR, name, "%s", err);
        send_result(OG__F_READY, OG_ERR_IO, err);
        finish(1);
        return;
    }
    H.ch.plugin = og__xstrdup(p->def->name);
    H.core.loop = &H.loop;
    H.core.http = og__http_create(&H.loop);
    og__http_limits_default(&limits);
    H.core.http_public = og__http_server_create(&H.loop, name, &limits);
    H.core.emit = no_emit;
    H.core.emit_data = &H;
    H.core.forward = forward;
    H.core.metric = metric;
    H.core.mounted = mounted;
    H.core.delivered = delivered;
    H.core.delivered_data = &H;
    H.core.max_event_bytes = (size_t)og__ipc_int(f, 5);
    H.inst = og__instance_create(&H.core, p, &H.ch, err, sizeof(err));
    if (H.inst == NULL) {
        send_result(OG__F_READY, OG_ERR_CONFIG, err);
        finish(1);
        return;
    }
    send_result(OG__F_READY, OG_OK, NULL);
}

static void on_start(void)
{
    og_err_t rc;

    if (H.inst == NULL) {
        send_result(OG__F_STARTED, OG_ERR_INVALID, "not initialised");
        finish(1);
        return;
    }
    rc = og__instance_start(H.inst);
    send_result(OG__F_STARTED, rc, rc == OG_OK ? NULL : H.inst->last_error);
    if (rc != OG_OK)
        finish(1);
}

static void on_send(const msgpack_object_array *f)
{
    uint64_t token = (uint64_t)og__ipc_int(f, 1);
    size_t len;
    const uint8_t *bytes = og__ipc_bin(f, 2, &len);
    char why[256];
    og_event_t *ev =
        bytes ? og__event_restore(bytes, len, why, sizeof(why)) : NULL;

    if (ev == NULL || H.inst == NULL) {
        og__ipc_frame_t d;
        char reason[400];

        snprintf(reason, sizeof(reason),
                 "the plugin process could not read the envelope: %s",
                 bytes ? why : "no bytes");
        og__ipc_begin(&d, OG__F_DONE, 5);
        msgpack_pack_uint64(&d.pk, token);
        msgpack_pack_int(&d.pk, H.inst ? OG_ERR_REJECTED : OG_ERR_RETRY);
        og__ipc_pack_str(&d.pk, reason);
        msgpack_pack_uint64(&d.pk, 0);
        send_frame(&d);
        if (ev != NULL)
            og__event_unref(ev);
        return;
    }
    og__instance_deliver(H.inst, ev, (int64_t)token, 0);
    og__event_unref(ev);
}

static void stopped(og_plugin_ctx_t *inst, void *data)
{
    og__ipc_frame_t f;

    (void)inst, (void)data;
    og__ipc_begin(&f, OG__F_STOPPED, 1);
    send_frame(&f);
    finish(0);
}

static void on_emitted(const msgpack_object_array *f, int batch)
{
    struct wait *w = wait_take((uint64_t)og__ipc_int(f, 1));
    char id[128], customer[128];
    size_t i;

    if (w == NULL)
        return;
    if (w->cb == NULL) {
        og_err_t rc = (og_err_t)og__ipc_int(f, 2);

        if (rc != OG_OK)
            og__log(OG_LOG_WARNING, H.ch.name,
                    "%zu event(s) emitted without a callback (og_emit()) "
                    "were refused by the daemon after their check here: %s",
                    w->n, og_strerror(rc));
    } else if (!batch) {
        og_err_t rc = (og_err_t)og__ipc_int(f, 2);

        og__ipc_str(f, 3, id, sizeof(id));
        w->cb(w->cbdata[0], rc, rc == OG_OK && id[0] ? id : NULL, NULL);
    } else {
        og_err_t all = (og_err_t)og__ipc_int(f, 2);
        const msgpack_object_array *r =
            f->size > 3 && f->ptr[3].type == MSGPACK_OBJECT_ARRAY
                ? &f->ptr[3].via.array
                : NULL;

        for (i = 0; i < w->n; i++) {
            const msgpack_object_array *one =
                r != NULL && i < r->size &&
                        r->ptr[i].type == MSGPACK_OBJECT_ARRAY
                    ? &r->ptr[i].via.array
                    : NULL;
            og_err_t rc = one ? (og_err_t)og__ipc_int(one, 0) : all;

            id[0] = customer[0] = '\0';
            if (one != NULL) {
                og__ipc_str(one, 1, id, sizeof(id));
                og__ipc_str(one, 2, customer, sizeof(customer));
            }
            w->cb(w->cbdata[i], rc, id[0] ? id : NULL,
                  customer[0] ? customer : NULL);
        }
    }
    wait_free(w);
}

static void http_reply(void *data, int status, const char *content_type,
                       const char *const *headers, const void *body, size_t len)
{
    uint64_t *token = data;
    og__ipc_frame_t f;
    size_t n = 0, i;

    while (headers != NULL && headers[n] != NULL)
        n++;
    og__ipc_begin(&f, OG__F_HTTP_RESP, 6);
    msgpack_pack_uint64(&f.pk, *token);
    msgpack_pack_int(&f.pk, status);
    og__ipc_pack_str(&f.pk, content_type);
    msgpack_pack_array(&f.pk, (uint32_t)n);
    for (i = 0; i < n; i++)
        og__ipc_pack_str(&f.pk, headers[i]);
    msgpack_pack_bin(&f.pk, len);
    msgpack_pack_bin_body(&f.pk, body, len);
    send_frame(&f);
    free(token);
}

static void on_http_req(const msgpack_object_array *f)
{
    char method[16], path[8192], *query;
    const msgpack_object_array *h =
        f->size > 5 && f->ptr[5].type == MSGPACK_OBJECT_ARRAY
            ? &f->ptr[5].via.array
            : NULL;
    size_t n = h ? h->size / 2 : 0, i, blen, qlen;
    char **hdrs = og__xcalloc(2 * n + 1, sizeof(*hdrs));
    const uint8_t *body = og__ipc_bin(f, 6, &blen);
    const uint8_t *q = og__ipc_bin(f, 4, &qlen);
    uint64_t *token = og__xmalloc(sizeof(*token));

    *token = (uint64_t)og__ipc_int(f, 1);
    og__ipc_str(f, 2, method, sizeof(method));
    og__ipc_str(f, 3, path, sizeof(path));
    query = og__xstrndup(q ? (const char *)q : "", q ? qlen : 0);
    for (i = 0; i < 2 * n; i++) {
        const msgpack_object *o = &h->ptr[i];

        hdrs[i] = o->type == MSGPACK_OBJECT_STR
                      ? og__xstrndup(o->via.str.ptr, o->via.str.size)
                      : og__xstrdup("");
    }
    og__http_server_inject(H.core.http_public, method, path, query,
                           (const char *const *)hdrs, n, body, blen, http_reply,
                           token);
    for (i = 0; i < 2 * n; i++)
        free(hdrs[i]);
    free(hdrs);
    free(query);
}

static void on_frame(void *data, const msgpack_object_array *f)
{
    (void)data;
    switch ((unsigned)f->ptr[0].via.u64) {
    case OG__F_HELLO:
        if (H.inst == NULL && !H.done)
            on_hello(f);
        break;
    case OG__F_START: on_start(); break;
    case OG__F_SEND: on_send(f); break;
    case OG__F_STOP:
        if (H.inst != NULL && !H.done)
            og__instance_stop(H.inst, 24ull * 3600 * 1000, stopped, NULL);
        else
            stopped(NULL, NULL);
        break;
    case OG__F_PING: {
        og__ipc_frame_t p;

        og__ipc_begin(&p, OG__F_PONG, 2);
        msgpack_pack_uint64(&p.pk, (uint64_t)og__ipc_int(f, 1));
        send_frame(&p);
        break;
    }
    case OG__F_EMITTED: on_emitted(f, 0); break;
    case OG__F_BATCHED: on_emitted(f, 1); break;
    case OG__F_HTTP_REQ: on_http_req(f); break;
    default: break;
    }
}

static void on_lost(void *data, const char *why)
{
    (void)data;
    if (H.done)
        return; /* the end of a clean stop */
    /* The daemon is gone or dropped us: nothing here is worth keeping
     * (every delivery in flight is delivered again from the queue). */
    og__log(OG_LOG_WARNING, H.ch.name,
            "the daemon's socket closed (%s): "
            "exiting",
            why);
    _exit(2);
}

static void usage(void)
{
    fprintf(stderr,
            "omnigate-plugin-host: started by omnigated for a channel with "
            "isolation = process, not by hand\n"
            "usage: omnigate-plugin-host --ipc-fd FD --parent PID\n");
}

int main(int argc, char **argv)
{
    long fd = -1, parent = -1;
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ipc-fd") == 0)
            fd = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--parent") == 0)
            parent = strtol(argv[i + 1], NULL, 10);
    }
    if (fd < 0 || parent <= 0 || i != argc) {
        usage();
        return 64;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if ((long)getppid() != parent)
        return 2; /* the daemon died before the line above */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    {
        char tag[32];

        snprintf(tag, sizeof(tag), "pid %ld", (long)getpid());
        og__log_set_process_tag(tag);
    }
    /* nothing of the daemon's but the socket and the standard streams */
    for (i = 3; i < 1024; i++)
        if (i != fd)
            close(i);
    uv_loop_init(&H.loop);
    H.ipc = og__ipc_new((int)fd, 64u << 20, on_frame, on_lost, NULL);
    if (og__ipc_start(H.ipc, &H.loop) != 0)
        return 2;
    uv_run(&H.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&H.loop) != 0)
        og__log(OG_LOG_WARNING, H.ch.name,
                "plugin process: event loop not clean at exit");
    while (H.waits != NULL) {
        struct wait *w = H.waits;
        H.waits = w->next;
        wait_free(w);
    }
    og__chconf_free(&H.ch);
    og__instance_free_deliveries();
    return H.exit_code;
}
