/*
 * http_server.h: the core's HTTP/1.1 listeners on the libuv loop, parsed by
 * Debian's libhttp-parser. One server object per listener (public, admin);
 * handlers are mounted per method and path (exact or prefix).
 *
 * Requests on one connection are handled strictly one at a time and in
 * order: after a request is complete the parser pauses until its response
 * is written, so pipelined requests are answered in order. Limits on the
 * request line, headers and body, an idle timeout between requests and a
 * read timeout within a request (slowloris) protect the daemon.
 */
#ifndef OG_CORE_HTTP_SERVER_H
#define OG_CORE_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/util.h"

typedef struct og__http_server_s og__http_server_t;
typedef struct og__http_req_s og__http_req_t;

typedef struct og__http_limits_s {
    size_t max_url_bytes;     /* request target; over: 414 */
    size_t max_header_bytes;  /* all header names and values; over: 431 */
    size_t max_headers;       /* header count; over: 431 */
    size_t max_body_bytes;    /* default body limit of a route; over: 413 */
    uint64_t read_timeout_ms; /* from a request's first byte to its end */
    uint64_t idle_timeout_ms; /* keep-alive wait for the next request */
    size_t max_connections;   /* over: 503 and close */
    /* per peer address (TCP): connections at once (0: no limit; over:
     * 503 and close) and requests per second with a burst (0: no limit;
     * over: 429 with Retry-After) */
    size_t max_client_connections;
    unsigned client_rate;
    unsigned client_burst;
} og__http_limits_t;

/* Defaults: 8 KiB URL, 32 KiB headers, 100 headers, 1 MiB body, 10 s
 * read, 60 s idle, 4096 connections, 1024 per client, no request rate. */
void og__http_limits_default(og__http_limits_t *l);

/* Called once per complete request, on the loop thread. The handler must
 * eventually call og__http_respond() exactly once (now or later). */
typedef void (*og__http_handler)(void *data, og__http_req_t *req);

og__http_server_t *og__http_server_create(uv_loop_t *loop, const char *name,
                                          const og__http_limits_t *limits);
/* Asked before each complete request is handled (on_pipe: the listener is
 * a unix socket): 0 lets it through; otherwise the guard has answered it
 * (og__http_respond) and the handler is not called. */
typedef int (*og__http_guard)(void *data, og__http_req_t *req, int on_pipe);
void og__http_server_guard(og__http_server_t *s, og__http_guard guard,
                           void *data);
/*
 * og__http_server_listen: bind "HOST:PORT", "[V6]:PORT" or "unix:/path".
 * Port 0 picks a free port (see og__http_server_port()). Returns 0 or -1
 * with a reason in err.
 */
int og__http_server_listen(og__http_server_t *s, const char *addr, char *err,
                           size_t errlen);
int og__http_server_port(const og__http_server_t *s);
/* Mounts h for method ("GET", or NULL for any) and path; a path ending in
 * '*' matches by prefix. max_body 0 means the server's default. owner
 * groups routes for og__http_server_unmount(). Later mounts of the same
 * method and path replace earlier ones. */
int og__http_server_mount(og__http_server_t *s, const char *method,
                          const char *path, size_t max_body, og__http_handler h,
                          void *data, void *owner);
void og__http_server_unmount(og__http_server_t *s, void *owner);
/* The owner of the route mounted for exactly this method and path, or
 * NULL. */
void *og__http_server_owner(const og__http_server_t *s, const char *method,
                            const char *path);
/* Connections open now. */
size_t og__http_server_connections(const og__http_server_t *s);
/* Connections that could not be accepted (descriptors exhausted...): the
 * count, when the last one failed (ms since the epoch, 0: never) and why. */
uint64_t og__http_server_accept_failed(const og__http_server_t *s,
                                       uint64_t *last_ms, char *why,
                                       size_t whylen);
/* Stops listening and closes idle connections; a connection with a request
 * being read or answered gets its response (with Connection: close) and
 * then closes. Routes stay mounted. */
void og__http_server_drain(og__http_server_t *s);
/* Stops listening and closes every connection; memory is released once
 * libuv ran the close callbacks. */
void og__http_server_close(og__http_server_t *s);

/* Request accessors; pointers are valid until the response is sent. */
/*
 * og__http_server_inject: hand a request that did not come from a
 * connection (an isolated plugin's host process receives its requests
 * from the daemon) to s's routes as if it had been read: its answer goes
 * to reply(data, ...) instead of a socket. hdrs holds nhdrs name, value
 * pairs. 404 and 405 are answered as for a connection.
 */
typedef void (*og__http_reply_fn)(void *data, int status,
                                  const char *content_type,
                                  const char *const *headers, const void *body,
                                  size_t len);
void og__http_server_inject(og__http_server_t *s, const char *method,
                            const char *path, const char *query,
                            const char *const *hdrs, size_t nhdrs,
                            const uint8_t *body, size_t len,
                            og__http_reply_fn reply, void *data);

const char *og__http_req_method(const og__http_req_t *r);
const char *og__http_req_path(const og__http_req_t *r);  /* no query */
const char *og__http_req_query(const og__http_req_t *r); /* "" if none */
/* Header value by case-insensitive name, or NULL. */
const char *og__http_req_header(const og__http_req_t *r, const char *name);
const uint8_t *og__http_req_body(const og__http_req_t *r, size_t *len);
/* The request's headers in order: name of the i-th (NULL past the end),
 * its value in *value. */
size_t og__http_req_nheaders(const og__http_req_t *r);
const char *og__http_req_header_at(const og__http_req_t *r, size_t i,
                                   const char **value);

/*
 * og__http_respond: send the response and release r. headers is a
 * NULL-terminated list of "Name: value" lines (may be NULL). If the client
 * is gone the response is dropped silently.
 */
void og__http_respond(og__http_req_t *r, int status, const char *content_type,
                      const char *const *headers, const void *body, size_t len);
/* Responds {"error": "<message>"} as application/json. */
void og__http_respond_error(og__http_req_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* OG_CORE_HTTP_SERVER_H */
