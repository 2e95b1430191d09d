/*
 * og_services.h: timers, the shared HTTP client and metrics.
 */
#ifndef OMNIGATE_OG_SERVICES_H
#define OMNIGATE_OG_SERVICES_H

#include <string.h>

#include <omnigate/og_host.h>

OG_BEGIN_DECLS

/*
 * og_timer_start: call cb(timer, data) after timeout_ms, then every
 * repeat_ms if that is non-zero. Returns a timer owned by the host until
 * og_timer_stop(), or NULL when out of memory. A one-shot timer stays
 * valid after it fired until og_timer_stop() or the instance's destroy();
 * the host stops every timer an instance left running before destroy().
 */
static inline og_timer_t *og_timer_start(og_plugin_ctx_t *ctx,
                                         uint64_t timeout_ms,
                                         uint64_t repeat_ms, og_timer_cb cb,
                                         void *data)
{
    return OG_HOST_HAS(timer_start)
               ? og__host->timer_start(ctx, timeout_ms, repeat_ms, cb, data)
               : NULL;
}

/* og_timer_stop: stop and release timer; its callback never runs again.
 * NULL is allowed. May be called from the timer's own callback. */
static inline void og_timer_stop(og_timer_t *timer)
{
    if (OG_HOST_HAS(timer_stop))
        og__host->timer_stop(timer);
}

/*
 * og_http_request: start an HTTP request on the daemon's shared libcurl
 * multi handle (connection reuse, no blocking on the loop). request and
 * everything it points to are copied before returning. cb is called exactly
 * once on the loop thread if, and only if, this returns OG_OK; if the
 * instance stops first, cb gets result OG_ERR_CANCELLED before destroy().
 */
static inline og_err_t og_http_request(og_plugin_ctx_t *ctx,
                                       const og_http_request_t *request,
                                       og_http_cb cb, void *data)
{
    return OG_HOST_HAS(http_request)
               ? og__host->http_request(ctx, request, cb, data)
               : OG_ERR_UNSUPPORTED;
}

/*
 * og_curl_run: run a libcurl transfer the plugin set up itself (a CURL *
 * from curl_easy_init() with every option it needs: SMTP, IMAP, any
 * protocol libcurl speaks) on the daemon's shared multi handle, driven by
 * the loop: no blocking, connections kept for reuse. The host sets only
 * CURLOPT_PRIVATE and CURLOPT_NOSIGNAL; the handle stays the plugin's
 * (it cleans it up after cb). cb is called exactly once on the loop
 * thread if, and only if, this returns OG_OK; if the instance stops
 * first, cb gets OG_ERR_CANCELLED before destroy(). The plugin links
 * libcurl itself (libcurl4, the same library as the host).
 */
static inline og_err_t og_curl_run(og_plugin_ctx_t *ctx, void *easy,
                                   og_curl_cb cb, void *data)
{
    return OG_HOST_HAS(curl_run) ? og__host->curl_run(ctx, easy, cb, data)
                                 : OG_ERR_UNSUPPORTED;
}

/*
 * og_http_header: find header name (case-insensitive) in a response's raw
 * header block. Returns a pointer into the block and sets *len, or NULL.
 * Pure function; any thread.
 */
static inline const char *og_http_header(const og_http_response_t *r,
                                         const char *name, size_t *len)
{
    size_t nlen = strlen(name), i = 0;

    while (r->headers != NULL && i < r->headers_len) {
        const char *line = r->headers + i;
        size_t rest = r->headers_len - i, ll = 0, k;

        while (ll < rest && line[ll] != '\n')
            ll++;
        if (ll > nlen && line[nlen] == ':') {
            for (k = 0; k < nlen; k++) {
                char a = line[k], c = name[k];
                if (a >= 'A' && a <= 'Z')
                    a = (char)(a - 'A' + 'a');
                if (c >= 'A' && c <= 'Z')
                    c = (char)(c - 'A' + 'a');
                if (a != c)
                    break;
            }
            if (k == nlen) {
                const char *v = line + nlen + 1;
                size_t vl = ll - nlen - 1;
                while (vl > 0 && (*v == ' ' || *v == '\t')) {
                    v++;
                    vl--;
                }
                while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                    vl--;
                *len = vl;
                return v;
            }
        }
        i += ll + 1;
    }
    return NULL;
}

/*
 * og_http_mount: serve route on the daemon's public listener for this
 * instance, from start() on. route and its strings are copied. The route is
 * unmounted when the instance stops; requests still unanswered then get
 * 503. Returns OG_OK, OG_ERR_INVALID (bad route) or OG_ERR_BUSY (another
 * instance mounted the same method and path; the log names it).
 */
static inline og_err_t og_http_mount(og_plugin_ctx_t *ctx,
                                     const og_http_route_t *route)
{
    return OG_HOST_HAS(http_mount) ? og__host->http_mount(ctx, route)
                                   : OG_ERR_UNSUPPORTED;
}

/*
 * og_http_req_method, og_http_req_path (without the query), og_http_req_query
 * ("" when none), og_http_req_header (by case-insensitive name, NULL when
 * absent) and og_http_req_body (never NULL; *len gets its length): parts of
 * a request. Every pointer is owned by req and valid until
 * og_http_respond().
 */
static inline const char *og_http_req_method(const og_http_req_t *req)
{
    return OG_HOST_HAS(http_req_method) ? og__host->http_req_method(req) : NULL;
}

static inline const char *og_http_req_path(const og_http_req_t *req)
{
    return OG_HOST_HAS(http_req_path) ? og__host->http_req_path(req) : NULL;
}

static inline const char *og_http_req_query(const og_http_req_t *req)
{
    return OG_HOST_HAS(http_req_query) ? og__host->http_req_query(req) : NULL;
}

static inline const char *og_http_req_header(const og_http_req_t *req,
                                             const char *name)
{
    return OG_HOST_HAS(http_req_header) ? og__host->http_req_header(req, name)
                                        : NULL;
}

static inline const uint8_t *og_http_req_body(const og_http_req_t *req,
                                              size_t *len)
{
    return OG_HOST_HAS(http_req_body) ? og__host->http_req_body(req, len)
                                      : NULL;
}

/*
 * og_http_respond: answer req and release it (req is invalid afterwards).
 * headers is a NULL-terminated list of "Name: value" lines or NULL; body
 * (len bytes) is copied. Content-Length and Connection are set by the host.
 */
static inline void og_http_respond(og_http_req_t *req, int status,
                                   const char *content_type,
                                   const char *const *headers, const void *body,
                                   size_t len)
{
    if (OG_HOST_HAS(http_respond))
        og__host->http_respond(req, status, content_type, headers, body, len);
}

/*
 * og_counter_add / og_gauge_set: per-instance metrics, exported by the
 * host labelled with the instance. name ([a-z0-9_]+) is copied.
 */
static inline void og_counter_add(og_plugin_ctx_t *ctx, const char *name,
                                  uint64_t delta)
{
    if (OG_HOST_HAS(counter_add))
        og__host->counter_add(ctx, name, delta);
}

static inline void og_gauge_set(og_plugin_ctx_t *ctx, const char *name,
                                int64_t value)
{
    if (OG_HOST_HAS(gauge_set))
        og__host->gauge_set(ctx, name, value);
}

/*
 * og_url_redact: url as it may be logged: user name and password become
 * "***" and the query and fragment "?***" (tokens travel there), so no
 * secret of a URL reaches a log line. Writes into out (always
 * NUL-terminated when outlen > 0) and returns out. Pure function: any
 * thread. (ABI 1.0, unreleased, appended.)
 */
static inline const char *og_url_redact(const char *url, char *out,
                                        size_t outlen)
{
    const char *p = url, *auth, *end, *at;
    size_t n = 0;

    if (outlen == 0)
        return out;
    out[0] = '\0';
    if (url == NULL)
        return out;
    auth = strstr(url, "://");
    auth = auth != NULL ? auth + 3 : url;
    end = auth + strcspn(auth, "/?#");
    at = (const char *)memchr(auth, '@', (size_t)(end - auth));
    while (*p != '\0' && n + 1 < outlen) {
        if (p == auth && at != NULL) {
            const char *mask = "***@";

            while (*mask != '\0' && n + 1 < outlen)
                out[n++] = *mask++;
            p = at + 1;
            continue;
        }
        if (p >= end && (*p == '?' || *p == '#')) {
            const char *mask = "?***";

            while (*mask != '\0' && n + 1 < outlen)
                out[n++] = *mask++;
            break;
        }
        out[n++] = *p++;
    }
    out[n] = '\0';
    return out;
}

OG_END_DECLS

#endif /* OMNIGATE_OG_SERVICES_H */
