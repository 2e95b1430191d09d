/*
 * http_server.c: HTTP/1.1 server on libuv with libhttp-parser.
 *
 * Each connection parses with one http_parser. When a request is complete
 * the parser is paused and reading stops until the handler's response has
 * been queued; any bytes already read (pipelined requests) wait in
 * conn->pending and are parsed afterwards, so responses go out in request
 * order. Handlers may respond synchronously or later; a late response on a
 * closed connection is dropped.
 */
#include "config.h"

#include <errno.h>
#include <http_parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/http_server.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

#define READ_BUF 65536
/* Unsent response bytes above which a connection is not read from
 * (backpressure against a client that pipelines and never reads). */
#define OUT_MAX (256 * 1024)

struct route {
    char *method; /* NULL: any */
    char *path;
    size_t plen;
    int prefix;
    size_t max_body;
    og__http_handler h;
    void *data;
    void *owner;
    struct route *next;
};

struct hdr {
    char *name;
    char *value;
};

struct conn;

struct og__http_req_s {
    struct conn *conn; /* NULL once the connection is gone */
    const char *method;
    char *url;
    size_t url_len;
    char *path;
    char *query;
    struct hdr *hdrs;
    size_t nhdrs;
    uint8_t *body;
    size_t body_len;
    int keep_alive;
    /* A request handed in by og__http_server_inject(): answered through
     * reply instead of a connection. */
    og__http_reply_fn reply;
    void *reply_data;
    char *method_own;
};

/* A peer address with connections open: its count and its request
 * budget (a token bucket). Kept while it has a connection, so the table
 * is bounded by max_connections. */
struct client {
    char addr[48];
    size_t conns;
    double tokens;
    uint64_t refilled_ms;
    struct client *next;
};

#define CLIENT_BUCKETS 4096

struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;
    og__http_server_t *srv;
    http_parser parser;
    og__http_req_t *cur;      /* being parsed */
    og__http_req_t *inflight; /* handed to a handler, not answered yet */
    const struct route *route;
    size_t body_limit;
    size_t header_bytes;
    int last_was_value;
    int in_request;
    int in_feed;
    int close_after; /* close once the current response is written */
    int need_resume; /* an async response was sent: continue reading */
    int closing;
    int open_handles;
    int err_status; /* set by a callback that refuses the request */
    char err_msg[160];
    char *pending; /* bytes read but not parsed yet */
    size_t npending;
    int reading;           /* uv_read_start() in effect */
    int write_blocked;     /* unsent responses over OUT_MAX: not parsing */
    struct client *client; /* its peer's address, NULL on a unix socket */
    struct conn *prev, *next;
};

struct og__http_server_s {
    uv_loop_t *loop;
    char *name;
    og__http_limits_t limits;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    int listening;
    int is_pipe;
    char *pipe_path;
    int port;
    struct route *routes;
    struct conn *conns;
    size_t nconns;
    int closing;
    int draining;
    int listener_open;
    int listener_closing;
    og__http_guard guard; /* asked before every request, or NULL */
    void *guard_data;
    /* One read buffer for every connection: a read is parsed (and what
     * must stay is copied) before the next one, so an idle connection
     * costs its structs only, not a buffer. */
    char *rbuf;
    struct client **clients; /* CLIENT_BUCKETS chains, by address */
    uint32_t client_seed;
    /* accept() failures (fd exhaustion): counted, the last one kept */
    uint64_t client_refusals; /* over a per-client limit */
    uint64_t accept_errors;
    uint64_t accept_error_ms, accept_logged_ms;
    int accept_errno;
};

struct write_req {
    uv_write_t w;
    struct conn *conn;
    char *mem;
};

static http_parser_settings settings;

void og__http_limits_default(og__http_limits_t *l)
{
    l->max_url_bytes = 8 * 1024;
    l->max_header_bytes = 32 * 1024;
    l->max_headers = 100;
    l->max_body_bytes = 1024 * 1024;
    l->read_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->max_connections = 4096;
    l->max_client_connections = 1024;
    l->client_rate = 0;
    l->client_burst = 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    }
    return "Unknown";
}

/* ---- connections ---------------------------------------------------- */

static void req_free(og__http_req_t *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->hdrs);
    free(r->method_own);
    free(r->url);
    free(r->path);
    free(r->query);
    free(r->body);
    free(r);
}

static void maybe_free_server(og__http_server_t *s)
{
    if (s->closing && s->nconns == 0 && !s->listener_open) {
        struct route *r, *next;

        for (r = s->routes; r != NULL; r = next) {
            next = r->next;
            free(r->method);
            free(r->path);
            free(r);
        }
        free(s->pipe_path);
        free(s->name);
        free(s->rbuf);
        free(s->clients); /* every entry went with its connections */
        free(s);
    }
}

static size_t client_bucket(const og__http_server_t *s, const char *addr)
{
    uint32_t h = s->client_seed ^ 2166136261u;

    while (*addr)
        h = (h ^ (unsigned char)*addr++) * 16777619u;
    return h % CLIENT_BUCKETS;
}

/* The client entry of a peer address, created with its first connection. */
static struct client *client_get(og__http_server_t *s, const char *addr)
{
    size_t b;
    struct client *cl;

    if (s->clients == NULL) {
        s->clients = og__xcalloc(CLIENT_BUCKETS, sizeof(*s->clients));
        s->client_seed = (uint32_t)uv_hrtime() ^ (uint32_t)(uintptr_t)s;
    }
    b = client_bucket(s, addr);
    for (cl = s->clients[b]; cl != NULL; cl = cl->next)
        if (strcmp(cl->addr, addr) == 0)
            return cl;
    cl = og__xcalloc(1, sizeof(*cl));
    snprintf(cl->addr, sizeof(cl->addr), "%s", addr);
    cl->tokens = (double)s->limits.client_burst;
    cl->refilled_ms = uv_now(s->loop);
    cl->next = s->clients[b];
    s->clients[b] = cl;
    return cl;
}

static void client_release(og__http_server_t *s, struct client *cl)
{
    struct client **pp;

    if (cl == NULL || --cl->conns > 0)
        return;
    for (pp = &s->clients[client_bucket(s, cl->addr)]; *pp != NULL;
         pp = &(*pp)->next)
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    free(cl);
}

/* 1 when the client may make one more request now (its bucket refills at
 * client_rate per second up to client_burst); always with no rate set. */
static int client_may_ask(og__http_server_t *s, struct client *cl)
{
    uint64_t now;

    if (cl == NULL || s->limits.client_rate == 0)
        return 1;
    now = uv_now(s->loop);
    cl->tokens +=
        (double)(now - cl->refilled_ms) * s->limits.client_rate / 1000.0;
    if (cl->tokens > (double)s->limits.client_burst)
        cl->tokens = (double)s->limits.client_burst;
    cl->refilled_ms = now;
    if (cl->tokens < 1.0)
        return 0;
    cl->tokens -= 1.0;
    return 1;
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    og__http_server_t *s = c->srv;

    if (--c->open_handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    client_release(s, c->client);
    free(c->pending);
    free(c);
    maybe_free_server(s);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->inflight != NULL) {
        c->inflight->conn = NULL; /* the handler's late response is dropped */
        c->inflight = NULL;
    }
    req_free(c->cur);
    c->cur = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close(&c->h.handle, conn_handle_closed);
}

static void resume(struct conn *c);

static void on_write(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct conn *c = wr->conn;
    size_t queued = w->handle->write_queue_size;

    free(wr->mem);
    free(wr);
    if (c->closing)
        return;
    if (status < 0 || (c->close_after && c->inflight == NULL && queued == 0)) {
        conn_close(c);
        return;
    }
    /* Backpressure: a client that does not read its answers is not read
     * from either, until they drained to half the bound. */
    if (c->write_blocked && queued <= OUT_MAX / 2) {
        c->write_blocked = 0;
        resume(c);
    }
}

/* Writes raw bytes, at once when the socket takes them (uv_write() would
 * also stop and restart the POLLOUT watch: an epoll_ctl call per
 * response), else queued; the connection closes after them if
 * close_after. Takes mem. */
static void conn_write(struct conn *c, char *mem, size_t len)
{
    struct write_req *wr;
    uv_buf_t b = uv_buf_init(mem, (unsigned)len);
    int n = 0;

    if (c->h.stream.write_queue_size == 0)
        n = uv_try_write(&c->h.stream, &b, 1);
    if (n == (int)len) {
        free(mem);
        if (c->close_after && c->inflight == NULL)
            conn_close(c);
        return;
    }
    if (n > 0)
        b = uv_buf_init(mem + n, (unsigned)(len - (size_t)n));
    wr = og__xcalloc(1, sizeof(*wr));
    wr->conn = c;
    wr->mem = mem;
    if (uv_write(&wr->w, &c->h.stream, &b, 1, on_write) != 0) {
        free(mem);
        free(wr);
        conn_close(c);
    }
}

static void on_timer(uv_timer_t *t);
static void feed(struct conn *c, const char *data, size_t n);
static void refuse(struct conn *c, int status, const char *msg,
                   const char *extra);

static void arm_timer(struct conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    if (c->srv->rbuf == NULL)
        c->srv->rbuf = og__xmalloc(READ_BUF);
    *buf = uv_buf_init(c->srv->rbuf, READ_BUF);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;

    if (nread == UV_EOF && c->inflight != NULL) {
        /* The client is gone while its request is being handled (a closed
         * tab's long-poll): its connection slot is free at once, and the
         * handler's late answer is dropped. A client cannot tell "gone"
         * from a half-close; like nginx, omnigate takes it as gone. */
        conn_close(c);
        return;
    }
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread > 0)
        feed(c, buf->base, (size_t)nread);
}

/* Continues after a response: parses what is pending, then reads again. */
static void resume(struct conn *c)
{
    char *data = c->pending;
    size_t n = c->npending;

    if (c->closing || c->inflight != NULL || c->write_blocked)
        return;
    c->pending = NULL;
    c->npending = 0;
    http_parser_pause(&c->parser, 0);
    if (n > 0)
        feed(c, data, n);
    free(data);
    if (!c->closing && c->inflight == NULL && !c->close_after &&
        !c->write_blocked) {
        if (!c->reading) {
            uv_read_start(&c->h.stream, on_alloc, on_read);
            c->reading = 1;
        }
        if (!c->in_request)
            arm_timer(c, c->srv->limits.idle_timeout_ms);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->write_blocked) { /* its answers did not drain for idle_timeout */
        conn_close(c);
        return;
    }
    if (c->need_resume) {
        c->need_resume = 0;
        resume(c); /* deferred continuation after an async response */
        return;
    }
    if (c->in_request && c->inflight == NULL) {
        /* Slowloris: the request did not complete in time. */
        refuse(c, 408, "request not complete in time", NULL);
        return;
    }
    if (c->inflight == NULL)
        conn_close(c); /* idle keep-alive connection */
}

/* ---- responses ------------------------------------------------------ */

void og__http_respond(og__http_req_t *r, int status, const char *content_type,
                      const char *const *headers, const void *body, size_t len)
{
    struct conn *c = r->conn;
    size_t hlen = 0, cap, i;
    char *mem;
    int n;

    if (r->reply != NULL) {
        r->reply(r->reply_data, status, content_type, headers, body, len);
        req_free(r);
        return;
    }
    if (c == NULL || c->closing) {
        req_free(r);
        return;
    }
    if (!r->keep_alive || c->srv->draining)
        c->close_after = 1;
    cap = 256 + (content_type ? strlen(content_type) : 0) + len;
    for (i = 0; headers != NULL && headers[i] != NULL; i++)
        cap += strlen(headers[i]) + 2;
    mem = og__xmalloc(cap);
    n = snprintf(mem, cap, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", status,
                 status_text(status), len);
    hlen = (size_t)n;
    if (content_type != NULL) {
        n = snprintf(mem + hlen, cap - hlen, "Content-Type: %s\r\n",
                     content_type);
        hlen += (size_t)n;
    }
    for (i = 0; headers != NULL && headers[i] != NULL; i++) {
        n = snprintf(mem + hlen, cap - hlen, "%s\r\n", headers[i]);
        hlen += (size_t)n;
    }
    if (c->close_after) {
        n = snprintf(mem + hlen, cap - hlen, "Connection: close\r\n");
        hlen += (size_t)n;
    }
    memcpy(mem + hlen, "\r\n", 2);
    hlen += 2;
    if (len > 0)
        memcpy(mem + hlen, body, len);
    c->inflight = NULL;
    req_free(r);
    conn_write(c, mem, hlen + len);
    if (c->closing || c->close_after)
        return;
    if (c->h.stream.write_queue_size > OUT_MAX) {
        /* the client reads slower than it asks: parse no more of it until
         * on_write sees the queue drain */
        c->write_blocked = 1;
        if (c->reading) {
            uv_read_stop(&c->h.stream);
            c->reading = 0;
        }
        c->need_resume = 0;
        arm_timer(c, c->srv->limits.idle_timeout_ms); /* or it goes */
        return;
    }
    /* Parse pipelined bytes now if we are inside feed(); otherwise from
     * the loop, so that a handler never re-enters the parser. */
    if (!c->in_feed) {
        c->need_resume = 1;
        arm_timer(c, 0);
    }
}

void og__http_respond_error(og__http_req_t *r, int status, const char *fmt, ...)
{
    char msg[512], body[1100];
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(body, "{\"error\":", 9);
    n = 9 + og__json_escape(body + 9, sizeof(body) - 11, msg);
    if (n > sizeof(body) - 2)
        n = sizeof(body) - 2;
    body[n++] = '}';
    og__http_respond(r, status, "application/json", NULL, body, n);
}

/* Refuses the request being parsed (or the connection): answers with a
 * JSON error and closes. extra is one more header line, or NULL. */
static void refuse(struct conn *c, int status, const char *msg,
                   const char *extra)
{
    char body[400];
    char *mem;
    size_t n, cap = 800;

    n = og__json_escape(body, sizeof(body), msg);
    mem = og__xmalloc(cap);
    n = (size_t)snprintf(mem, cap,
                         "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n%s%sConnection: close\r\n\r\n"
                         "{\"error\":%s}",
                         status, status_text(status), n + 10,
                         extra ? extra : "", extra ? "\r\n" : "", body);
    c->close_after = 1;
    uv_read_stop(&c->h.stream);
    c->reading = 0;
    conn_write(c, mem, n < cap ? n : cap - 1);
}

/* ---- parsing -------------------------------------------------------- */

static int fail(struct conn *c, int status, const char *msg)
{
    c->err_status = status;
    snprintf(c->err_msg, sizeof(c->err_msg), "%s", msg);
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;

    c->cur = og__xcalloc(1, sizeof(*c->cur));
    c->cur->conn = c;
    c->in_request = 1;
    c->header_bytes = 0;
    c->last_was_value = 1;
    c->route = NULL;
    arm_timer(c, c->srv->limits.read_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;

    if (c->cur->url_len + n > c->srv->limits.max_url_bytes)
        return fail(c, 414, "request target too long");
    return og__mem_append(&c->cur->url, &c->cur->url_len, at, n);
}

static int header_limit(struct conn *c, size_t n)
{
    c->header_bytes += n;
    return c->header_bytes > c->srv->limits.max_header_bytes;
}

/* Appends to the current header's name or value; a name after a value
 * starts a new header. */
static int header_part(http_parser *p, const char *at, size_t n, int value)
{
    struct conn *c = p->data;
    og__http_req_t *r = c->cur;
    char **part;
    size_t len;

    if (header_limit(c, n))
        return fail(c, 431, "request headers too large");
    if (!value && c->last_was_value) {
        if (r->nhdrs >= c->srv->limits.max_headers)
            return fail(c, 431, "too many request headers");
        r->hdrs = og__xrealloc(r->hdrs, (r->nhdrs + 1) * sizeof(*r->hdrs));
        r->hdrs[r->nhdrs].name = og__xstrdup("");
        r->hdrs[r->nhdrs].value = og__xstrdup("");
        r->nhdrs++;
    }
    c->last_was_value = value;
    part = value ? &r->hdrs[r->nhdrs - 1].value : &r->hdrs[r->nhdrs - 1].name;
    len = strlen(*part);
    return og__mem_append(part, &len, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    return header_part(p, at, n, 0);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    return header_part(p, at, n, 1);
}

static const struct route *find_route(og__http_server_t *s, const char *method,
                                      const char *path, int *path_known)
{
    const struct route *rt, *best = NULL;

    *path_known = 0;
    for (rt = s->routes; rt != NULL; rt = rt->next) {
        int hit = rt->prefix ? strncmp(path, rt->path, rt->plen) == 0
                             : strcmp(path, rt->path) == 0;
        if (!hit)
            continue;
        *path_known = 1;
        if (rt->method != NULL && strcmp(rt->method, method) != 0)
            continue;
        if (best == NULL || (!rt->prefix && best->prefix) ||
            (rt->prefix && best->prefix && rt->plen > best->plen))
            best = rt;
    }
    return best;
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    og__http_req_t *r = c->cur;
    const char *q;
    int known;

    if (r->url == NULL || r->url[0] != '/')
        return fail(c, 400, "request target must be an absolute path");
    r->method = http_method_str((enum http_method)p->method);
    q = strchr(r->url, '?');
    r->path =
        q ? og__xstrndup(r->url, (size_t)(q - r->url)) : og__xstrdup(r->url);
    r->query = og__xstrdup(q ? q + 1 : "");
    c->route = find_route(c->srv, r->method, r->path, &known);
    c->body_limit = c->route && c->route->max_body
                        ? c->route->max_body
                        : c->srv->limits.max_body_bytes;
    if (p->content_length != ULLONG_MAX && p->content_length > c->body_limit)
        return fail(c, 413, "request body too large");
    if (p->flags & F_CHUNKED && p->content_length != ULLONG_MAX &&
        p->content_length > 0)
        return fail(c, 400, "both Content-Length and chunked encoding");
    {
        const char *expect = og__http_req_header(r, "expect");
        if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            conn_write(c, og__xstrndup(cont, sizeof(cont) - 1),
                       sizeof(cont) - 1);
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    og__http_req_t *r = c->cur;

    if (r->body_len + n > c->body_limit)
        return fail(c, 413, "request body too large");
    return og__mem_append((char **)&r->body, &r->body_len, at, n);
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    og__http_req_t *r = c->cur;
    int known;

    c->cur = NULL;
    c->in_request = 0;
    uv_timer_stop(&c->timer);
    r->keep_alive = http_should_keep_alive(p);
    if (r->body == NULL)
        r->body = (uint8_t *)og__xstrdup("");
    c->inflight = r;
    http_parser_pause(p, 1);
    if (!client_may_ask(c->srv, c->client)) {
        static const char *const retry[] = {"Retry-After: 1", NULL};
        static const char body[] =
            "{\"error\":\"too many requests from this client (max_requests_"
            "per_client): retry later\"}";

        c->srv->client_refusals++;
        og__http_respond(r, 429, "application/json", retry, body,
                         sizeof(body) - 1);
    } else if (c->srv->guard != NULL &&
               c->srv->guard(c->srv->guard_data, r, c->srv->is_pipe) != 0) {
        /* refused: the guard has answered */
    } else if (c->route != NULL) {
        c->route->h(c->route->data, r);
    } else if (find_route(c->srv, r->method, r->path, &known), known) {
        og__http_respond_error(r, 405, "method %s not allowed on %s", r->method,
                               r->path);
    } else {
        og__http_respond_error(r, 404, "no such path: %s", r->path);
    }
    return 0;
}

static void feed(struct conn *c, const char *data, size_t n)
{
    c->in_feed++;
    while (n > 0 && !c->closing && !c->close_after) {
        size_t done = http_parser_execute(&c->parser, &settings, data, n);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

        if (e == HPE_PAUSED) {
            data += done;
            n -= done;
            if (c->inflight != NULL || c->write_blocked) {
                /* Wait for the handler; keep what is left. Reading goes
                 * on (stopping and restarting costs two epoll_ctl calls
                 * per request) until a pipelining client has sent more
                 * than one request's headers ahead. */
                if (c->npending + n > c->srv->limits.max_header_bytes &&
                    c->reading) {
                    uv_read_stop(&c->h.stream);
                    c->reading = 0;
                }
                if (n > 0) {
                    char *p = og__xrealloc(c->pending, c->npending + n);
                    memcpy(p + c->npending, data, n);
                    c->pending = p;
                    c->npending += n;
                }
                break;
            }
            http_parser_pause(&c->parser, 0);
            continue;
        }
        if (e != HPE_OK) {
            if (c->err_status != 0)
                refuse(c, c->err_status, c->err_msg, NULL);
            else {
                char msg[160];
                snprintf(msg, sizeof(msg), "malformed request: %s",
                         http_errno_description(e));
                refuse(c, 400, msg, NULL);
            }
            break;
        }
        break; /* everything consumed */
    }
    c->in_feed--;
    if (!c->closing && !c->close_after && c->inflight == NULL &&
        !c->write_blocked && HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED) {
        http_parser_pause(&c->parser, 0);
    }
    if (!c->closing && !c->close_after && c->inflight == NULL &&
        !c->in_request && c->pending == NULL)
        arm_timer(c, c->srv->limits.idle_timeout_ms);
}

/* ---- server --------------------------------------------------------- */

/* A connection could not be accepted (EMFILE, ENFILE, ENOMEM...): counted
 * for /health and logged once a minute with the figures. */
static void accept_failed(og__http_server_t *s, int status)
{
    uint64_t now = uv_now(s->loop);

    s->accept_errors++;
    s->accept_error_ms = og__now_ms();
    s->accept_errno = status;
    if (s->accept_logged_ms != 0 && now - s->accept_logged_ms < 60000)
        return;
    s->accept_logged_ms = now;
    {
        struct rlimit rl;

        getrlimit(RLIMIT_NOFILE, &rl);
        og__log(OG_LOG_ERROR, "http",
                "%s listener cannot accept connections: %s (%u descriptors "
                "open, limit %llu; %llu failures so far)",
                s->name, uv_strerror(status), og__open_fds(),
                (unsigned long long)rl.rlim_cur,
                (unsigned long long)s->accept_errors);
    }
}

uint64_t og__http_server_accept_failed(const og__http_server_t *s,
                                       uint64_t *last_ms, char *why,
                                       size_t whylen)
{
    if (last_ms != NULL)
        *last_ms = s->accept_error_ms;
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s",
                 s->accept_errors ? uv_strerror(s->accept_errno) : "");
    return s->accept_errors;
}

static void on_connection(uv_stream_t *ls, int status)
{
    og__http_server_t *s = ls->data;
    struct conn *c;
    int rc;

    if (status < 0) {
        accept_failed(s, status);
        return;
    }
    c = og__xcalloc(1, sizeof(*c));
    c->srv = s;
    if (s->is_pipe)
        rc = uv_pipe_init(s->loop, &c->h.pipe, 0);
    else
        rc = uv_tcp_init(s->loop, &c->h.tcp);
    if (rc != 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(ls, &c->h.stream) != 0) {
        conn_close(c);
        return;
    }
    if (!s->is_pipe)
        uv_tcp_nodelay(&c->h.tcp, 1);
    if (s->nconns > s->limits.max_connections) {
        refuse(c, 503, "too many connections", "Retry-After: 1");
        return;
    }
    if (!s->is_pipe) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        char addr[48] = "";

        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET6)
                uv_ip6_name((struct sockaddr_in6 *)&ss, addr, sizeof(addr));
            else
                uv_ip4_name((struct sockaddr_in *)&ss, addr, sizeof(addr));
        }
        c->client = client_get(s, addr);
        c->client->conns++;
        if (s->limits.max_client_connections > 0 &&
            c->client->conns > s->limits.max_client_connections) {
            s->client_refusals++;
            refuse(c, 503,
                   "too many connections from this client "
                   "(max_connections_per_client)",
                   "Retry-After: 5");
            return;
        }
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    /* the first request must come within read_timeout: a connection that
     * sends nothing does not hold a slot for idle_timeout */
    arm_timer(c, s->limits.read_timeout_ms);
    uv_read_start(&c->h.stream, on_alloc, on_read);
    c->reading = 1;
}

og__http_server_t *og__http_server_create(uv_loop_t *loop, const char *name,
                                          const og__http_limits_t *limits)
{
    og__http_server_t *s = og__xcalloc(1, sizeof(*s));

    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    s->loop = loop;
    s->name = og__xstrdup(name);
    if (limits != NULL)
        s->limits = *limits;
    else
        og__http_limits_default(&s->limits);
    return s;
}

void og__http_server_guard(og__http_server_t *s, og__http_guard guard,
                           void *data)
{
    s->guard = guard;
    s->guard_data = data;
}

int og__http_server_listen(og__http_server_t *s, const char *addr, char *err,
                           size_t errlen)
{
    int rc;

    if (strncmp(addr, "unix:", 5) == 0) {
        const char *path = addr + 5;
        struct stat st;

        s->is_pipe = 1;
        uv_pipe_init(s->loop, &s->listener.pipe, 0);
        s->listener_open = 1;
        /* A stale socket from a previous run is replaced. */
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
        rc = uv_pipe_bind(&s->listener.pipe, path);
        if (rc == 0) {
            chmod(path, 0660);
            s->pipe_path = og__xstrdup(path);
        }
    } else {
        struct sockaddr_storage ss;
        char host[256];
        const char *colon = strrchr(addr, ':');
        int port;
        char *end;

        if (colon == NULL) {
            snprintf(err, errlen, "%s: expected HOST:PORT or unix:/path", addr);
            return -1;
        }
        port = (int)strtol(colon + 1, &end, 10);
        if (*end != '\0' || port < 0 || port > 65535 || colon == addr) {
            snprintf(err, errlen, "%s: bad port", addr);
            return -1;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
            rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
        } else {
            rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
        }
        if (rc != 0) {
            snprintf(err, errlen, "%s: bad address: %s", addr, uv_strerror(rc));
            return -1;
        }
        uv_tcp_init(s->loop, &s->listener.tcp);
        s->listener_open = 1;
        rc = uv_tcp_bind(&s->listener.tcp, (struct sockaddr *)&ss, 0);
    }
    s->listener.handle.data = s;
    if (rc == 0)
        rc = uv_listen(&s->listener.stream, 1024, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, uv_strerror(rc));
        return -1;
    }
    if (!s->is_pipe) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);

        uv_tcp_getsockname(&s->listener.tcp, (struct sockaddr *)&ss, &len);
        s->port = ntohs(ss.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&ss)->sin6_port
                            : ((struct sockaddr_in *)&ss)->sin_port);
    }
    s->listening = 1;
    return 0;
}

int og__http_server_port(const og__http_server_t *s)
{
    return s->port;
}

/* True when r was mounted for exactly method and path. */
static int same_route(const struct route *r, const char *method,
                      const char *path, size_t plen, int prefix)
{
    return r->prefix == prefix && r->plen == plen &&
           strncmp(r->path, path, plen) == 0 &&
           ((r->method == NULL && method == NULL) ||
            (r->method && method && strcmp(r->method, method) == 0));
}

int og__http_server_mount(og__http_server_t *s, const char *method,
                          const char *path, size_t max_body, og__http_handler h,
                          void *data, void *owner)
{
    struct route *r, **pp;
    size_t plen = strlen(path);
    int prefix = plen > 0 && path[plen - 1] == '*';

    if (path[0] != '/' || h == NULL)
        return -1;
    if (prefix)
        plen--;
    /* Replace an existing mount of the same method and path. */
    for (pp = &s->routes; *pp != NULL; pp = &(*pp)->next) {
        r = *pp;
        if (same_route(r, method, path, plen, prefix)) {
            r->max_body = max_body;
            r->h = h;
            r->data = data;
            r->owner = owner;
            return 0;
        }
    }
    r = og__xcalloc(1, sizeof(*r));
    r->method = method ? og__xstrdup(method) : NULL;
    r->path = og__xstrndup(path, plen);
    r->plen = plen;
    r->prefix = prefix;
    r->max_body = max_body;
    r->h = h;
    r->data = data;
    r->owner = owner;
    r->next = s->routes;
    s->routes = r;
    return 0;
}

void *og__http_server_owner(const og__http_server_t *s, const char *method,
                            const char *path)
{
    const struct route *r;
    size_t plen = strlen(path);
    int prefix = plen > 0 && path[plen - 1] == '*';

    if (prefix)
        plen--;
    for (r = s->routes; r != NULL; r = r->next)
        if (same_route(r, method, path, plen, prefix))
            return r->owner;
    return NULL;
}

void og__http_server_unmount(og__http_server_t *s, void *owner)
{
    struct route **pp = &s->routes, *r;

    while ((r = *pp) != NULL) {
        if (r->owner == owner) {
            *pp = r->next;
            free(r->method);
            free(r->path);
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

size_t og__http_server_connections(const og__http_server_t *s)
{
    return s->nconns;
}

static void listener_closed(uv_handle_t *h)
{
    og__http_server_t *s = h->data;

    s->listener_open = 0;
    maybe_free_server(s);
}

static void close_listener(og__http_server_t *s)
{
    if (s->listener_open && !s->listener_closing) {
        s->listener_closing = 1;
        s->listener.handle.data = s;
        uv_close(&s->listener.handle, listener_closed);
    }
}

void og__http_server_drain(og__http_server_t *s)
{
    struct conn *c, *next;

    if (s == NULL || s->draining)
        return;
    s->draining = 1;
    close_listener(s);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (!c->in_request && c->inflight == NULL && c->pending == NULL)
            conn_close(c); /* idle keep-alive: nothing to finish */
    }
}

void og__http_server_close(og__http_server_t *s)
{
    struct conn *c, *next;

    if (s == NULL)
        return;
    s->closing = 1;
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
    if (s->pipe_path != NULL)
        unlink(s->pipe_path);
    if (s->listener_open)
        close_listener(s);
    else
        maybe_free_server(s);
}

void og__http_server_inject(og__http_server_t *s, const char *method,
                            const char *path, const char *query,
                            const char *const *hdrs, size_t nhdrs,
                            const uint8_t *body, size_t len,
                            og__http_reply_fn reply, void *data)
{
    og__http_req_t *r = og__xcalloc(1, sizeof(*r));
    const struct route *rt;
    size_t i;
    int known;

    r->method = r->method_own = og__xstrdup(method);
    r->path = og__xstrdup(path);
    r->query = og__xstrdup(query != NULL ? query : "");
    r->hdrs = og__xcalloc(nhdrs > 0 ? nhdrs : 1, sizeof(*r->hdrs));
    for (i = 0; i < nhdrs; i++) {
        r->hdrs[i].name = og__xstrdup(hdrs[2 * i]);
        r->hdrs[i].value = og__xstrdup(hdrs[2 * i + 1]);
    }
    r->nhdrs = nhdrs;
    r->body = og__xmalloc(len + 1);
    if (len > 0)
        memcpy(r->body, body, len);
    r->body[len] = 0;
    r->body_len = len;
    r->keep_alive = 1;
    r->reply = reply;
    r->reply_data = data;
    rt = find_route(s, r->method, r->path, &known);
    if (rt != NULL)
        rt->h(rt->data, r);
    else if (known)
        og__http_respond_error(r, 405, "method %s not allowed on %s", r->method,
                               r->path);
    else
        og__http_respond_error(r, 404, "no such path: %s", r->path);
}

/* ---- request accessors ---------------------------------------------- */

size_t og__http_req_nheaders(const og__http_req_t *r)
{
    return r->nhdrs;
}

const char *og__http_req_header_at(const og__http_req_t *r, size_t i,
                                   const char **value)
{
    if (i >= r->nhdrs)
        return NULL;
    *value = r->hdrs[i].value;
    return r->hdrs[i].name;
}

const char *og__http_req_method(const og__http_req_t *r)
{
    return r->method;
}

const char *og__http_req_path(const og__http_req_t *r)
{
    return r->path;
}

const char *og__http_req_query(const og__http_req_t *r)
{
    return r->query;
}

const char *og__http_req_header(const og__http_req_t *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

const uint8_t *og__http_req_body(const og__http_req_t *r, size_t *len)
{
    if (len != NULL)
        *len = r->body_len;
    return r->body;
}
