/*
 * http_client.c: libcurl's multi-socket interface on the libuv loop.
 *
 * curl tells us which sockets to watch (socket callback) and when to call it
 * back (timer callback); libuv watches them with uv_poll_t and one
 * uv_timer_t. Completed transfers are collected with curl_multi_info_read()
 * after every curl_multi_socket_action() call, outside of curl's callbacks,
 * so a completion callback may start new requests.
 */
#include "config.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_client.h"
#include "base/util.h"

#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_MAX_RESPONSE (1u << 20)

struct buf {
    char *p;
    size_t n;
};

struct req {
    og__http_t *h;
    CURL *easy;
    void *owner;
    og_http_cb cb;
    og_curl_cb ecb; /* a plugin's own transfer (og__http_run_easy) */
    void *data;
    struct curl_slist *hdrs;
    uint8_t *body;
    struct buf resp;
    struct buf resp_hdrs;
    size_t max;
    int too_large;
    char errbuf[CURL_ERROR_SIZE];
    struct req *prev, *next;
};

struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    og__http_t *h;
    struct sock *prev, *next;
};

struct og__http_s {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct req *reqs;
    struct sock *socks;
    unsigned open_handles; /* timer + polls not yet closed */
    int closing;
};

static void maybe_free(og__http_t *h)
{
    if (h->closing && h->open_handles == 0)
        free(h);
}

static void on_handle_closed(uv_handle_t *handle)
{
    og__http_t *h;

    if (handle->type == UV_POLL) {
        struct sock *s = handle->data;
        h = s->h;
        free(s);
    } else {
        h = handle->data;
    }
    h->open_handles--;
    maybe_free(h);
}

static void finish(struct req *r, og_err_t result, int status,
                   const char *error, int curl_code)
{
    og__http_t *h = r->h;
    og_http_response_t resp;

    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    curl_multi_remove_handle(h->multi, r->easy);
    if (r->ecb != NULL) { /* the handle goes back to its plugin */
        r->ecb(r->data, r->easy, result, curl_code);
        free(r);
        return;
    }

    memset(&resp, 0, sizeof(resp));
    resp.struct_size = sizeof(resp);
    resp.result = result;
    resp.status = status;
    resp.error = error;
    /* Never NULL, so that memcpy(dst, body, 0) is defined for plugins. */
    resp.body = r->resp.p ? (const uint8_t *)r->resp.p : (const uint8_t *)"";
    resp.body_len = r->resp.n;
    resp.headers = r->resp_hdrs.p ? r->resp_hdrs.p : "";
    resp.headers_len = r->resp_hdrs.n;
    r->cb(r->data, &resp);

    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body);
    free(r->resp.p);
    free(r->resp_hdrs.p);
    free(r);
}

static void check_done(og__http_t *h)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct req *r = NULL;
        long status = 0;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (m->data.result == CURLE_OK) {
            finish(r, OG_OK, (int)status, NULL, 0);
        } else if (r->ecb != NULL) {
            finish(r, OG_ERR_IO, (int)status, NULL, (int)m->data.result);
        } else if (r->too_large) {
            finish(r, OG_ERR_TOO_LARGE, (int)status,
                   "response body exceeds max_response_bytes", 0);
        } else {
            CURLcode cc = m->data.result;
            og_err_t rc =
                cc == CURLE_OPERATION_TIMEDOUT ? OG_ERR_TIMEOUT : OG_ERR_IO;
            const char *e = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
            char copy[CURL_ERROR_SIZE];

            /* r is freed inside finish(); keep the text on the stack. */
            snprintf(copy, sizeof(copy), "%s", e);
            finish(r, rc, (int)status, copy, (int)cc);
        }
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    og__http_t *h = s->h;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    check_done(h);
}

static void on_timeout(uv_timer_t *t)
{
    og__http_t *h = t->data;
    int running;

    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    og__http_t *h = userp;

    (void)multi;
    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static void sock_close(og__http_t *h, struct sock *s)
{
    uv_poll_stop(&s->poll);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp,
                     void *socketp)
{
    og__http_t *h = userp;
    struct sock *s = socketp;
    int events = 0;

    (void)easy;
    if (action == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(h->multi, fd, NULL);
            sock_close(h, s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL || uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->h = h;
        s->poll.data = s;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        h->open_handles++;
        curl_multi_assign(h->multi, fd, s);
    }
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

/* Appends n bytes to b, keeping a NUL after them; -1 over limit or OOM. */
static int buf_append(struct buf *b, const char *ptr, size_t n, size_t limit)
{
    if (b->n + n > limit)
        return -1;
    return og__mem_append(&b->p, &b->n, ptr, n);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct req *r = userdata;
    size_t n = size * nmemb;

    if (r->resp.n + n > r->max)
        r->too_large = 1;
    /* Returning less than n aborts the transfer (CURLE_WRITE_ERROR). */
    return buf_append(&r->resp, ptr, n, r->max) == 0 ? n : 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct req *r = userdata;
    size_t n = size * nmemb;

    /* A new status line (after a redirect or 100 Continue) starts over. */
    if (n > 5 && memcmp(ptr, "HTTP/", 5) == 0)
        r->resp_hdrs.n = 0;
    return buf_append(&r->resp_hdrs, ptr, n, 64 * 1024) == 0 ? n : 0;
}

static int curl_started;

void og__http_global_cleanup(void)
{
    if (curl_started)
        curl_global_cleanup();
    curl_started = 0;
}

/* Starts libcurl and the multi handle on first use. */
static int ensure_multi(og__http_t *h)
{
    if (h->multi != NULL)
        return 0;
    if (!curl_started) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return -1;
        curl_started = 1;
    }
    h->multi = curl_multi_init();
    if (h->multi == NULL)
        return -1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    return 0;
}

og__http_t *og__http_create(uv_loop_t *loop)
{
    og__http_t *h = calloc(1, sizeof(*h));

    if (h == NULL)
        return NULL;
    h->loop = loop;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open_handles = 1;
    return h;
}

og_err_t og__http_request(og__http_t *h, void *owner,
                          const og_http_request_t *req, og_http_cb cb,
                          void *data)
{
    struct req *r;
    size_t i;

    if (h == NULL || h->closing)
        return OG_ERR_STOPPING;
    if (req == NULL || cb == NULL || req->url == NULL ||
        req->struct_size < offsetof(og_http_request_t, max_response_bytes) +
                               sizeof(req->max_response_bytes) ||
        (strncmp(req->url, "http://", 7) != 0 &&
         strncmp(req->url, "https://", 8) != 0))
        return OG_ERR_INVALID;
    if (ensure_multi(h) != 0)
        return OG_ERR_NOMEM;
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->easy = curl_easy_init()) == NULL) {
        free(r);
        return OG_ERR_NOMEM;
    }
    r->h = h;
    r->owner = owner;
    r->cb = cb;
    r->data = data;
    r->max = req->max_response_bytes ? req->max_response_bytes
                                     : DEFAULT_MAX_RESPONSE;
    for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        struct curl_slist *n = curl_slist_append(r->hdrs, req->headers[i]);
        if (n == NULL)
            goto nomem;
        r->hdrs = n;
    }
    if (req->body != NULL) {
        r->body = malloc(req->body_len ? req->body_len : 1);
        if (r->body == NULL)
            goto nomem;
        memcpy(r->body, req->body, req->body_len);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)req->body_len);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
    }
    if (req->method != NULL)
        curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(r->easy, CURLOPT_URL, req->url);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(
        r->easy, CURLOPT_TIMEOUT_MS,
        (long)(req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS));
    curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "omnigate/" PACKAGE_VERSION);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK)
        goto nomem;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    return OG_OK;
nomem:
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body);
    free(r);
    return OG_ERR_NOMEM;
}

og_err_t og__http_run_easy(og__http_t *h, void *owner, void *easy,
                           og_curl_cb cb, void *data)
{
    struct req *r;

    if (h == NULL || h->closing)
        return OG_ERR_STOPPING;
    if (easy == NULL || cb == NULL)
        return OG_ERR_INVALID;
    if (ensure_multi(h) != 0 || (r = calloc(1, sizeof(*r))) == NULL)
        return OG_ERR_NOMEM;
    r->h = h;
    r->easy = easy;
    r->owner = owner;
    r->ecb = cb;
    r->data = data;
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        free(r);
        return OG_ERR_INVALID;
    }
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    return OG_OK;
}

void og__http_cancel_owner(og__http_t *h, void *owner)
{
    struct req *r = h->reqs, *next;

    while (r != NULL) {
        next = r->next;
        if (owner == NULL || r->owner == owner) {
            finish(r, OG_ERR_CANCELLED, 0, "cancelled", 0);
            next = h->reqs; /* the callback may have changed the list */
        }
        r = next;
    }
}

size_t og__http_inflight(og__http_t *h, void *owner)
{
    struct req *r;
    size_t n = 0;

    for (r = h->reqs; r != NULL; r = r->next)
        if (owner == NULL || r->owner == owner)
            n++;
    return n;
}

void og__http_destroy(og__http_t *h)
{
    if (h == NULL)
        return;
    og__http_cancel_owner(h, NULL);
    h->closing = 1;
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    while (h->socks != NULL)
        sock_close(h, h->socks);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}
