/*
 * test_http_server.c: the core HTTP/1.1 server over real sockets: keep-alive,
 * pipelining with async handlers, every refusal (400, 404, 405, 408, 413,
 * 414, 431, 503), chunked bodies, 100-continue, idle close, unix sockets,
 * clients that vanish mid-request, and a clean loop teardown.
 */
#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/http_server.h"
#include "testutil.h"

static uv_loop_t loop;
static uv_async_t stop_async, drain_async;
static pthread_t thread;
static og__http_server_t *srv, *usrv;
static int port;
static char upath[100];

/* ---- handlers (loop thread) ---- */

static void h_sync(void *data, og__http_req_t *r)
{
    (void)data;
    og__http_respond(r, 200, "text/plain", NULL, "sync", 4);
}

static void async_fire(uv_timer_t *t)
{
    og__http_req_t *r = t->data;
    static const char *const hdrs[] = {"X-Async: 1", NULL};

    og__http_respond(r, 200, "text/plain", hdrs, "async", 5);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void h_async(void *data, og__http_req_t *r)
{
    uv_timer_t *t = malloc(sizeof(*t));

    (void)data;
    uv_timer_init(&loop, t);
    t->data = r;
    uv_timer_start(t, async_fire, 50, 0);
}

static void h_echo(void *data, og__http_req_t *r)
{
    size_t len;
    const uint8_t *b = og__http_req_body(r, &len);
    char hdr[128];
    const char *hdrs[] = {hdr, NULL};

    (void)data;
    snprintf(hdr, sizeof(hdr), "X-Query: %s", og__http_req_query(r));
    og__http_respond(r, 200, "application/octet-stream", hdrs, b, len);
}

static void h_prefix(void *data, og__http_req_t *r)
{
    const char *p = og__http_req_path(r);

    (void)data;
    og__http_respond(r, 200, "text/plain", NULL, p, strlen(p));
}

static void on_drain(uv_async_t *a)
{
    (void)a;
    og__http_server_drain(srv);
}

static void on_stop(uv_async_t *a)
{
    uv_close((uv_handle_t *)&drain_async, NULL);
    og__http_server_close(srv);
    og__http_server_close(usrv);
    uv_close((uv_handle_t *)a, NULL);
}

static void *run_loop(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- client helpers (test thread) ---- */

static int dial(void)
{
    struct sockaddr_in sa;
    struct timeval tv = {3, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void sendall(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void sendstr(int fd, const char *s)
{
    sendall(fd, s, strlen(s));
}

/* Reads until the peer closes, the timeout, or want bytes; returns what
 * arrived (caller frees). *closed is set when the peer closed. */
static char *recv_all(int fd, size_t want, int *closed)
{
    size_t n = 0, cap = 1 << 20;
    char *buf = malloc(cap + 1);

    *closed = 0;
    while (n < cap && (want == 0 || n < want)) {
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r == 0) {
            *closed = 1;
            break;
        }
        if (r < 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

/* One request on a fresh connection; returns the whole reply. */
static char *exchange(const char *req, size_t len, int *closed)
{
    int fd = dial();
    char *out;

    CU_ASSERT_FATAL(fd >= 0);
    sendall(fd, req, len);
    out = recv_all(fd, 0, closed);
    close(fd);
    return out;
}

#define EXCHANGE(lit, closed) exchange(lit, sizeof(lit) - 1, closed)

static int starts(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) == 0)
        return 1;
    fprintf(stderr, "  got: %.200s\n  want prefix: %s\n", s, prefix);
    return 0;
}

/* ---- tests ---- */

static void test_keepalive_and_pipelining(void)
{
    int fd = dial(), closed;
    char *out;
    const char *a, *b;

    CU_ASSERT_FATAL(fd >= 0);
    /* three requests, one connection, answered in order although the
     * first handler answers 50 ms later than the others */
    sendstr(
        fd,
        "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /sync HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /p/deep/path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    out = recv_all(fd, 0, &closed);
    CU_ASSERT_TRUE(closed);
    a = strstr(out, "async");
    b = strstr(out, "\r\n\r\nsync");
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(b);
    CU_ASSERT_TRUE(a != NULL && b != NULL && a < b);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "X-Async: 1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/p/deep/path"));
    CU_ASSERT_EQUAL(tu_count_str(out, "HTTP/1.1 200 OK"), 3);
    free(out);
    close(fd);

    /* keep-alive across separate writes */
    fd = dial();
    sendstr(fd, "GET /sync HTTP/1.1\r\nHost: x\r\n\r\n");
    out = recv_all(fd, 68, &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 200 OK"));
    CU_ASSERT_FALSE(closed);
    free(out);
    sendstr(fd, "GET /sync HTTP/1.1\r\nHost: x\r\n\r\n");
    out = recv_all(fd, 68, &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 200 OK"));
    free(out);
    close(fd);
}

static void test_refusals(void)
{
    int closed;
    char *out, big[4000];

    out = EXCHANGE("BLAH\r\n\r\n", &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 400 Bad Request"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"error\":\"malformed request: "));
    CU_ASSERT_TRUE(closed);
    free(out);

    out = EXCHANGE("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 400"));
    free(out);

    out = EXCHANGE("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 404"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no such path: /nope"));
    free(out);

    out = EXCHANGE("DELETE /sync HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 405"));
    free(out);

    /* request target over 512 bytes */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    memcpy(big + 600, " HTTP/1.1\r\n\r\n", 13);
    out = exchange(big, 613, &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 414"));
    CU_ASSERT_TRUE(closed);
    free(out);

    /* headers over 1 KiB */
    memcpy(big, "GET /sync HTTP/1.1\r\nX-Big: ", 27);
    memset(big + 27, 'b', 2000);
    memcpy(big + 2027, "\r\n\r\n", 4);
    out = exchange(big, 2031, &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 431"));
    free(out);

    /* too many headers (limit 8) */
    out = EXCHANGE(
        "GET /sync HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n"
        "f: 1\r\ng: 1\r\nh: 1\r\ni: 1\r\n\r\n",
        &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 431"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "too many request headers"));
    free(out);
}

static void test_bodies(void)
{
    int closed;
    char *out;

    out = EXCHANGE("POST /echo?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   "Connection: close\r\n\r\nhello",
                   &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 200"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "X-Query: a=1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\r\n\r\nhello"));
    free(out);

    /* chunked, de-chunked for the handler */
    out = EXCHANGE(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
        "\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        &closed);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Content-Length: 5\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\r\n\r\nabcde"));
    free(out);

    /* declared length over the route's 64-byte limit: refused before the
     * body is read */
    out =
        EXCHANGE("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                 "\r\n",
                 &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 413"));
    CU_ASSERT_TRUE(closed);
    free(out);

    /* chunked body growing over the limit */
    out =
        EXCHANGE("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                 "\r\n\r\n40\r\n0123456789012345678901234567890123456789012345"
                 "678901234567\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
                 &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 413"));
    free(out);

    out =
        EXCHANGE("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                 "\r\n\r\nzz\r\n",
                 &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 400"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "chunk size"));
    free(out);

    /* Expect: 100-continue */
    out = EXCHANGE("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                   "Expect: 100-continue\r\nConnection: close\r\n\r\nok",
                   &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"));
    free(out);
}

static void test_timeouts(void)
{
    int fd, closed;
    char *out;

    /* slowloris: a request that never completes gets 408 and a close */
    fd = dial();
    sendstr(fd, "GET /sync HTTP/1.1\r\nHost: x\r\n");
    out = recv_all(fd, 0, &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 408"));
    CU_ASSERT_TRUE(closed);
    free(out);
    close(fd);

    /* an idle keep-alive connection is closed silently */
    fd = dial();
    out = recv_all(fd, 0, &closed);
    CU_ASSERT_TRUE(closed);
    CU_ASSERT_EQUAL(strlen(out), 0);
    free(out);
    close(fd);
}

static void test_vanishing_client(void)
{
    int fd = dial(), closed;
    char *out;

    /* the client leaves while its async handler is still working */
    sendstr(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    close(fd);
    tu_sleep_ms(100);
    out = EXCHANGE("GET /sync HTTP/1.1\r\nConnection: close\r\n\r\n", &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 200"));
    free(out);
}

/* A client whose side closes while its request is being handled is gone
 * (a closed tab's long-poll): the server closes at once, freeing the
 * connection's slot, and the handler's late answer is dropped (issue 16;
 * nginx does the same). */
static void test_half_close(void)
{
    int fd = dial(), closed;
    char *out;

    CU_ASSERT_FATAL(fd >= 0);
    sendstr(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(fd, SHUT_WR);
    out = recv_all(fd, 0, &closed);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_TRUE(closed);
    free(out);
    close(fd);
}

static void test_connection_limit(void)
{
    int fds[4], i, closed;
    char *out;

    /* Four connections the server has taken for sure: each has had a
     * keep-alive exchange (a bare connect may still wait in the
     * listener's backlog when the fifth arrives). */
    for (i = 0; i < 4; i++) {
        char buf[512];
        ssize_t r;

        fds[i] = dial();
        sendstr(fds[i], "GET /sync HTTP/1.1\r\n\r\n");
        r = recv(fds[i], buf, sizeof(buf) - 1, 0);
        buf[r > 0 ? r : 0] = '\0';
        CU_ASSERT_TRUE(starts(buf, "HTTP/1.1 200"));
    }
    /* the limit is 4 connections; a 5th is told to come back */
    out = EXCHANGE("GET /sync HTTP/1.1\r\n\r\n", &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 503"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Retry-After: 1"));
    free(out);
    for (i = 0; i < 4; i++)
        close(fds[i]);
    tu_sleep_ms(50);
    out = EXCHANGE("GET /sync HTTP/1.1\r\nConnection: close\r\n\r\n", &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 200"));
    free(out);
}

static void test_unix_socket(void)
{
    struct sockaddr_un sa;
    struct timeval tv = {3, 0};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), closed;
    char *out;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, upath, strlen(upath) + 1); /* < 100 bytes */
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sendstr(fd, "GET /sync HTTP/1.1\r\nConnection: close\r\n\r\n");
    out = recv_all(fd, 0, &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 200"));
    free(out);
    close(fd);
}

/* Runs last: the server stops taking connections. */
static void test_drain(void)
{
    int idle = dial(), busy = dial(), closed, fresh;
    char *out;

    CU_ASSERT_FATAL(idle >= 0 && busy >= 0);
    sendstr(busy, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    tu_sleep_ms(10); /* the handler is now working (50 ms) */
    uv_async_send(&drain_async);
    out = recv_all(busy, 0, &closed);
    CU_ASSERT_TRUE(starts(out, "HTTP/1.1 200 OK"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Connection: close\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "async"));
    CU_ASSERT_TRUE(closed);
    free(out);
    out = recv_all(idle, 0, &closed);
    CU_ASSERT_TRUE(closed);
    CU_ASSERT_EQUAL(strlen(out), 0);
    free(out);
    close(busy);
    close(idle);
    fresh = dial();
    CU_ASSERT_EQUAL(fresh, -1); /* not listening any more */
    if (fresh >= 0)
        close(fresh);
}

static void test_listen_errors(void)
{
    og__http_server_t *s = og__http_server_create(&loop, "x", NULL);
    char err[256];

    /* the loop thread is running: only listen failures are tried here,
     * which touch no handle beyond the failed bind */
    CU_ASSERT_EQUAL(og__http_server_listen(s, "nocolon", err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "expected HOST:PORT or unix:/path"));
    CU_ASSERT_EQUAL(og__http_server_listen(s, "1.2.3:80", err, sizeof(err)),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad address"));
    CU_ASSERT_EQUAL(
        og__http_server_listen(s, "127.0.0.1:99999", err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad port"));
    og__http_server_close(s); /* never listened: no handle to close */
}

int main(void)
{
    og__http_limits_t lim;
    char err[256], *dir;
    CU_pSuite su;
    int rc;

    og__http_limits_default(&lim);
    lim.max_url_bytes = 512;
    lim.max_header_bytes = 1024;
    lim.max_headers = 8;
    lim.read_timeout_ms = 300;
    lim.idle_timeout_ms = 400;
    lim.max_connections = 4;
    uv_loop_init(&loop);
    srv = og__http_server_create(&loop, "test", &lim);
    if (og__http_server_listen(srv, "127.0.0.1:0", err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 99;
    }
    port = og__http_server_port(srv);
    og__http_server_mount(srv, "GET", "/sync", 0, h_sync, NULL, NULL);
    og__http_server_mount(srv, "GET", "/async", 0, h_async, NULL, NULL);
    og__http_server_mount(srv, "POST", "/echo", 64, h_echo, NULL, NULL);
    og__http_server_mount(srv, NULL, "/p/*", 0, h_prefix, NULL, NULL);
    dir = tu_mkdtemp();
    snprintf(upath, sizeof(upath), "%s/http.sock", dir);
    {
        char a[300];
        snprintf(a, sizeof(a), "unix:%s", upath);
        usrv = og__http_server_create(&loop, "unix", NULL);
        if (og__http_server_listen(usrv, a, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s\n", err);
            return 99;
        }
        og__http_server_mount(usrv, "GET", "/sync", 0, h_sync, NULL, NULL);
    }
    uv_async_init(&loop, &stop_async, on_stop);
    uv_async_init(&loop, &drain_async, on_drain);
    pthread_create(&thread, NULL, run_loop, NULL);

    CU_initialize_registry();
    su = CU_add_suite("http server", NULL, NULL);
    CU_add_test(su, "keep-alive and pipelining", test_keepalive_and_pipelining);
    CU_add_test(su, "refusals", test_refusals);
    CU_add_test(su, "bodies", test_bodies);
    CU_add_test(su, "timeouts", test_timeouts);
    CU_add_test(su, "client gone mid-request", test_vanishing_client);
    CU_add_test(su, "a half-closed client gets its async answer",
                test_half_close);
    CU_add_test(su, "connection limit", test_connection_limit);
    CU_add_test(su, "unix socket", test_unix_socket);
    CU_add_test(su, "listen errors", test_listen_errors);
    CU_add_test(su, "drain: finish in flight, refuse new", test_drain);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    rc = CU_get_number_of_failures() ? 1 : 0;
    CU_cleanup_registry();

    uv_async_send(&stop_async);
    pthread_join(thread, NULL);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "FAIL: loop not clean after closing the servers\n");
        rc = 1;
    }
    tu_rmrf(dir);
    free(dir);
    return rc;
}
