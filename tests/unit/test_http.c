/*
 * test_http.c: the shared HTTP client (libcurl multi on libuv) against a
 * real HTTP server: bodies, headers, statuses, timeouts, limits, refused
 * connections, cancellation, connection reuse and a clean loop teardown.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include <uv.h>

#include <omnigate/og_services.h>

#include "net/http_client.h"
#include "testutil.h"

static uv_loop_t loop;
static og__http_t *http;
static pid_t peer;
static char base[64];
static char *tmp;

struct result {
    int done;
    og_err_t rc;
    int status;
    char body[256];
    size_t body_len;
    char retry_after[16];
    char xmethod[16];
    char xgot[32];
};

/* og__host is only used by og_http_header's OG_HOST_HAS-free code path. */
const og_host_api_t *og__host = NULL;

static void copy_header(const og_http_response_t *r, const char *name,
                        char *out, size_t size)
{
    size_t len;
    const char *v = og_http_header(r, name, &len);

    out[0] = '\0';
    if (v != NULL) {
        if (len >= size)
            len = size - 1;
        memcpy(out, v, len);
        out[len] = '\0';
    }
}

static void on_done(void *data, const og_http_response_t *r)
{
    struct result *res = data;

    res->done++;
    res->rc = r->result;
    res->status = r->status;
    res->body_len = r->body_len;
    if (r->body_len < sizeof(res->body)) {
        memcpy(res->body, r->body, r->body_len);
        res->body[r->body_len] = '\0';
    }
    copy_header(r, "retry-after", res->retry_after, sizeof(res->retry_after));
    copy_header(r, "X-Method", res->xmethod, sizeof(res->xmethod));
    copy_header(r, "X-Got-Header", res->xgot, sizeof(res->xgot));
}

static void run_until_done(struct result *res, int ms)
{
    int waited = 0;

    while (!res->done && waited < ms) {
        uv_run(&loop, UV_RUN_NOWAIT);
        tu_sleep_ms(2);
        waited += 2;
    }
}

static og_err_t get(const char *path, uint32_t timeout_ms, uint32_t max,
                    struct result *res)
{
    char url[256];
    og_http_request_t req = OG_HTTP_REQUEST_INIT;

    snprintf(url, sizeof(url), "%s%s", base, path);
    req.url = url;
    req.timeout_ms = timeout_ms;
    req.max_response_bytes = max;
    memset(res, 0, sizeof(*res));
    return og__http_request(http, &loop, &req, on_done, res);
}

static void test_get_and_post(void)
{
    struct result res;
    og_http_request_t req = OG_HTTP_REQUEST_INIT;
    static const char *const hdrs[] = {"X-Test: yes", NULL};
    char url[128];

    CU_ASSERT_EQUAL_FATAL(get("/hello", 0, 0, &res), OG_OK);
    run_until_done(&res, 5000);
    CU_ASSERT_EQUAL(res.done, 1);
    CU_ASSERT_EQUAL(res.rc, OG_OK);
    CU_ASSERT_EQUAL(res.status, 200);
    CU_ASSERT_STRING_EQUAL(res.body, "hello");

    snprintf(url, sizeof(url), "%s/echo", base);
    req.url = url;
    req.body = (const uint8_t *)"{\"a\":1}";
    req.body_len = 7;
    req.headers = hdrs;
    memset(&res, 0, sizeof(res));
    CU_ASSERT_EQUAL_FATAL(og__http_request(http, &loop, &req, on_done, &res),
                          OG_OK);
    run_until_done(&res, 5000);
    CU_ASSERT_EQUAL(res.status, 200);
    CU_ASSERT_STRING_EQUAL(res.body, "{\"a\":1}");
    CU_ASSERT_STRING_EQUAL(res.xmethod, "POST");
    CU_ASSERT_STRING_EQUAL(res.xgot, "yes");
}

static void test_status_and_errors(void)
{
    struct result res;
    og_http_request_t req = OG_HTTP_REQUEST_INIT;

    CU_ASSERT_EQUAL_FATAL(get("/status/503", 0, 0, &res), OG_OK);
    run_until_done(&res, 5000);
    CU_ASSERT_EQUAL(res.rc, OG_OK);
    CU_ASSERT_EQUAL(res.status, 503);
    CU_ASSERT_STRING_EQUAL(res.retry_after, "7");

    CU_ASSERT_EQUAL_FATAL(get("/slow", 200, 0, &res), OG_OK);
    run_until_done(&res, 5000);
    CU_ASSERT_EQUAL(res.rc, OG_ERR_TIMEOUT);

    CU_ASSERT_EQUAL_FATAL(get("/big", 0, 1000, &res), OG_OK);
    run_until_done(&res, 5000);
    CU_ASSERT_EQUAL(res.rc, OG_ERR_TOO_LARGE);

    /* A port nobody listens on: connection refused. */
    req.url = "http://127.0.0.1:1/";
    memset(&res, 0, sizeof(res));
    CU_ASSERT_EQUAL_FATAL(og__http_request(http, &loop, &req, on_done, &res),
                          OG_OK);
    run_until_done(&res, 5000);
    CU_ASSERT_EQUAL(res.rc, OG_ERR_IO);

    /* Refused up front; the callback is never called. */
    req.url = "ftp://127.0.0.1/";
    memset(&res, 0, sizeof(res));
    CU_ASSERT_EQUAL(og__http_request(http, &loop, &req, on_done, &res),
                    OG_ERR_INVALID);
    req.url = NULL;
    CU_ASSERT_EQUAL(og__http_request(http, &loop, &req, on_done, &res),
                    OG_ERR_INVALID);
    req.url = base;
    req.struct_size = 8;
    CU_ASSERT_EQUAL(og__http_request(http, &loop, &req, on_done, &res),
                    OG_ERR_INVALID);
    uv_run(&loop, UV_RUN_NOWAIT);
    CU_ASSERT_EQUAL(res.done, 0);
}

static void test_cancel(void)
{
    struct result a, b;
    int other_owner;
    og_http_request_t req = OG_HTTP_REQUEST_INIT;
    char url[128];

    snprintf(url, sizeof(url), "%s/slow", base);
    req.url = url;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    CU_ASSERT_EQUAL_FATAL(og__http_request(http, &loop, &req, on_done, &a),
                          OG_OK);
    CU_ASSERT_EQUAL_FATAL(
        og__http_request(http, &other_owner, &req, on_done, &b), OG_OK);
    uv_run(&loop, UV_RUN_NOWAIT);
    CU_ASSERT_EQUAL(og__http_inflight(http, NULL), 2);
    og__http_cancel_owner(http, &loop);
    CU_ASSERT_EQUAL(a.done, 1);
    CU_ASSERT_EQUAL(a.rc, OG_ERR_CANCELLED);
    CU_ASSERT_EQUAL(b.done, 0);
    CU_ASSERT_EQUAL(og__http_inflight(http, &other_owner), 1);
    og__http_cancel_owner(http, &other_owner);
    CU_ASSERT_EQUAL(b.rc, OG_ERR_CANCELLED);
    CU_ASSERT_EQUAL(og__http_inflight(http, NULL), 0);
}

static void test_reuse(void)
{
    struct result res;
    int i, before, after;

    CU_ASSERT_EQUAL_FATAL(get("/conns", 0, 0, &res), OG_OK);
    run_until_done(&res, 5000);
    before = (int)strtol(res.body, NULL, 10);
    for (i = 0; i < 20; i++) {
        CU_ASSERT_EQUAL_FATAL(get("/hello", 0, 0, &res), OG_OK);
        run_until_done(&res, 5000);
        CU_ASSERT_EQUAL(res.status, 200);
    }
    CU_ASSERT_EQUAL_FATAL(get("/conns", 0, 0, &res), OG_OK);
    run_until_done(&res, 5000);
    after = (int)strtol(res.body, NULL, 10);
    /* 21 sequential requests on one kept-alive connection. */
    CU_ASSERT_TRUE(after - before <= 1);
}

int main(void)
{
    char portfile[512], *port = NULL, *script;
    const char *src = getenv("OG_TOP_SRCDIR");
    int i, rc;

    tmp = tu_mkdtemp();
    snprintf(portfile, sizeof(portfile), "%s/port", tmp);
    if (asprintf(&script, "%s/tests/integration/http_peer.py",
                 src ? src : "..") < 0)
        return 99;
    {
        char *argv[] = {(char *)"/usr/bin/python3", script, portfile, NULL};
        char log[600];

        snprintf(log, sizeof(log), "%s/peer.log", tmp);
        peer = tu_spawn(argv, log);
    }
    for (i = 0; i < 500 && port == NULL; i++) {
        port = tu_read(portfile, NULL);
        if (port == NULL)
            tu_sleep_ms(10);
    }
    if (port == NULL) {
        fprintf(stderr, "the HTTP peer did not start\n");
        return 99; /* hard error for the harness */
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%s", port);
    free(port);

    uv_loop_init(&loop);
    http = og__http_create(&loop);

    CU_initialize_registry();
    {
        CU_pSuite s = CU_add_suite("http client", NULL, NULL);
        CU_add_test(s, "GET and POST", test_get_and_post);
        CU_add_test(s, "statuses and errors", test_status_and_errors);
        CU_add_test(s, "cancellation by owner", test_cancel);
        CU_add_test(s, "connection reuse", test_reuse);
        CU_add_suite("teardown", NULL, NULL);
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    rc = CU_get_number_of_failures() ? 1 : 0;
    CU_cleanup_registry();

    og__http_destroy(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "FAIL: loop not clean after og__http_destroy\n");
        rc = 1;
    }
    og__http_global_cleanup();
    kill(peer, SIGTERM);
    waitpid(peer, NULL, 0);
    tu_rmrf(tmp);
    free(tmp);
    free(script);
    return rc;
}
