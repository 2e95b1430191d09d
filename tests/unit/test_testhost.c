/*
 * test_testhost.c: the plugin test host, and through it the instance
 * lifecycle: emits, busy back-pressure, invalid envelopes, deliveries with
 * every result, init and start failures, slow stops, and that every handle
 * a plugin opened is closed by teardown.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <omnigate/og_testhost.h>

#include "testutil.h"

static char *dir;

static char *plugin(const char *name)
{
    return tu_built_plugin(name);
}

static int has_one_event(void *data)
{
    return og_testhost_emitted_count(data) >= 1;
}

static void test_dropdir_ingress(void)
{
    og_testhost_t *th = og_testhost_create();
    char in[600], file[700], cfg[700], buf[128];
    char err[OG_ERRBUF_SIZE] = "";
    char *path = plugin("dropdir");
    const char *config[] = {cfg, "poll_interval=20ms", NULL};

    snprintf(in, sizeof(in), "%s/in", dir);
    mkdir(in, 0755);
    snprintf(cfg, sizeof(cfg), "inbox=%s", in);
    CU_ASSERT_EQUAL_FATAL(og_testhost_load(th, path, "pos-7", config, err),
                          OG_OK);
    snprintf(file, sizeof(file), "%s/a.evt", in);
    CU_ASSERT_EQUAL(tu_write(file, "order.placed\nprops.total = 12\n"
                                   "id.email = ann@example.com\n"),
                    0);
    CU_ASSERT_TRUE(og_testhost_run_until(th, has_one_event, th, 3000));
    CU_ASSERT_EQUAL(og_testhost_emitted_count(th), 1);
    CU_ASSERT_STRING_EQUAL(og_testhost_emitted_type(th, 0), "order.placed");
    CU_ASSERT_EQUAL(
        og_testhost_emitted_get_str(th, 0, "props.total", buf, sizeof(buf)),
        OG_OK);
    CU_ASSERT_STRING_EQUAL(buf, "12");
    CU_ASSERT_EQUAL(
        og_testhost_emitted_get_str(th, 0, "source.instance", buf, sizeof(buf)),
        OG_OK);
    CU_ASSERT_STRING_EQUAL(buf, "pos-7");
    CU_ASSERT_EQUAL(tu_count_files(in, ".evt"), 0); /* removed once accepted */
    CU_ASSERT_EQUAL(og_testhost_metric(th, "files_in"), 1);

    /* Busy: the file stays and is taken at a later poll. */
    og_testhost_set_busy(th, 3);
    CU_ASSERT_EQUAL(tu_write(file, "cart.updated\n"), 0);
    og_testhost_run(th, 30);
    CU_ASSERT_EQUAL(og_testhost_emitted_count(th), 1);
    og_testhost_run(th, 200);
    CU_ASSERT_EQUAL(og_testhost_emitted_count(th), 2);
    CU_ASSERT_EQUAL(tu_count_files(in, ".evt"), 0);

    /* An invalid envelope is refused with a reason and set aside. */
    snprintf(file, sizeof(file), "%s/bad.msgpack", in);
    CU_ASSERT_EQUAL(tu_write(file, "\x91\x01"), 0);
    og_testhost_run(th, 100);
    CU_ASSERT_EQUAL(og_testhost_refused_count(th), 1);
    CU_ASSERT_EQUAL(tu_count_files(in, ".rejected"), 1);
    CU_ASSERT_TRUE(og_testhost_log_count(th, "envelope must be a map") >= 1);
    CU_ASSERT_EQUAL(og_testhost_emitted_count(th), 2);

    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);
}

static void test_dropdir_egress(void)
{
    og_testhost_t *th = og_testhost_create();
    char out[600], cfg[700];
    char *path = plugin("dropdir"), *first;
    const char *config[] = {cfg, NULL};
    uint8_t *env;
    size_t len, flen;
    char *content;

    snprintf(out, sizeof(out), "%s/out", dir);
    mkdir(out, 0755);
    snprintf(cfg, sizeof(cfg), "outbox=%s", out);
    CU_ASSERT_EQUAL_FATAL(og_testhost_load(th, path, "crm", config, NULL),
                          OG_OK);
    env = tu_envelope("order.placed", "evt-1", &len);
    CU_ASSERT_EQUAL(og_testhost_deliver(th, env, len, 1000), OG_OK);
    free(env);
    CU_ASSERT_EQUAL(tu_count_files(out, ".msgpack"), 1);
    first = tu_first_file(out, ".msgpack");
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    CU_ASSERT_PTR_NOT_NULL(strstr(first, "000001-evt-1.msgpack"));
    content = tu_read(first, &flen);
    CU_ASSERT_PTR_NOT_NULL(memmem(content, flen, "order.placed", 12));
    free(content);
    free(first);
    CU_ASSERT_EQUAL(og_testhost_metric(th, "files_out"), 1);
    /* An envelope the host itself refuses never reaches the plugin. */
    CU_ASSERT_EQUAL(og_testhost_deliver(th, (const uint8_t *)"\xc1", 1, 100),
                    OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);
}

static void test_config_errors(void)
{
    og_testhost_t *th = og_testhost_create();
    char err[OG_ERRBUF_SIZE] = "";
    char *path = plugin("dropdir");
    const char *bad_key[] = {"inbox=/tmp", "colour=red", NULL};
    const char *bad_dur[] = {"inbox=/tmp", "poll_interval=1ms", NULL};

    CU_ASSERT_EQUAL(og_testhost_load(th, path, "x", bad_key, err),
                    OG_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown key 'colour' for plugin "
                                       "'dropdir'"));
    CU_ASSERT_EQUAL(og_testhost_load(th, path, "x", bad_dur, err),
                    OG_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "poll_interval: must be between 10 "
                                       "and 3600000 milliseconds"));
    /* init() refuses a configuration without inbox or outbox */
    CU_ASSERT_EQUAL(og_testhost_load(th, path, "x", NULL, err), OG_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "set inbox, outbox or both"));
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);
}

static void test_delivery_results(void)
{
    og_testhost_t *th = og_testhost_create();
    char *path = plugin("good");
    const char *config[] = {"token=abc", NULL};
    static const struct {
        const char *type;
        og_err_t want;
    } cases[] = {{"test.ok", OG_OK},
                 {"test.retry", OG_ERR_RETRY},
                 {"test.reject", OG_ERR_REJECTED},
                 {"test.pending", OG_OK}};
    size_t i, len;

    CU_ASSERT_EQUAL_FATAL(og_testhost_load(th, path, "g", config, NULL), OG_OK);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *env = tu_envelope(cases[i].type, NULL, &len);
        CU_ASSERT_EQUAL(og_testhost_deliver(th, env, len, 2000), cases[i].want);
        free(env);
    }
    CU_ASSERT_EQUAL(og_testhost_metric(th, "sent"), 4);
    CU_ASSERT_TRUE(og_testhost_log_count(th, "hello x3") >= 1);
    CU_ASSERT_EQUAL(og_testhost_stop(th, 1000), OG_OK);
    CU_ASSERT_TRUE(og_testhost_log_count(th, "fake destroyed") >= 1);
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);
}

static void test_init_and_start_failures(void)
{
    og_testhost_t *th = og_testhost_create();
    char err[OG_ERRBUF_SIZE] = "";
    char *path = plugin("init_fail");
    const char *config[] = {"token=abc", NULL};

    /* init() fails after starting a timer: the host closes the timer and
     * never calls destroy(). */
    CU_ASSERT_EQUAL(og_testhost_load(th, path, "f", config, err),
                    OG_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "plugin 'init_fail' failed to "
                                       "initialise: input/output error: "
                                       "cannot reach backend"));
    CU_ASSERT_EQUAL(og_testhost_log_count(th, "fake destroyed"), 0);
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);

    th = og_testhost_create();
    path = plugin("start_fail");
    CU_ASSERT_EQUAL(og_testhost_load(th, path, "s", config, err), OG_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "plugin 'start_fail' failed to "
                                       "start"));
    /* init() succeeded, so destroy() must have run. */
    CU_ASSERT_EQUAL(og_testhost_log_count(th, "fake destroyed"), 1);
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);
}

static void test_slow_stop(void)
{
    og_testhost_t *th = og_testhost_create();
    char *path = plugin("slow_stop");
    const char *fast[] = {"token=abc", "stop_delay=100ms", NULL};
    const char *stuck[] = {"token=abc", "stop_delay=1h", NULL};

    CU_ASSERT_EQUAL_FATAL(og_testhost_load(th, path, "s", fast, NULL), OG_OK);
    CU_ASSERT_EQUAL(og_testhost_stop(th, 2000), OG_OK);
    CU_ASSERT_EQUAL(og_testhost_log_count(th, "slow stop finished"), 1);
    CU_ASSERT_EQUAL(og_testhost_log_count(th, "shutdown timeout reached"), 0);
    CU_ASSERT_EQUAL(og_testhost_log_count(th, "fake destroyed"), 1);
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);

    /* A plugin that never finishes stopping is cut off at the timeout, its
     * timer is closed and destroy() still runs. */
    th = og_testhost_create();
    CU_ASSERT_EQUAL_FATAL(og_testhost_load(th, path, "s", stuck, NULL), OG_OK);
    CU_ASSERT_EQUAL(og_testhost_stop(th, 150), OG_OK);
    CU_ASSERT_EQUAL(og_testhost_log_count(th, "shutdown timeout reached"), 1);
    CU_ASSERT_EQUAL(og_testhost_log_count(th, "slow stop finished"), 0);
    CU_ASSERT_EQUAL(og_testhost_log_count(th, "fake destroyed"), 1);
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);
}

static void test_refused_plugin(void)
{
    og_testhost_t *th = og_testhost_create();
    char err[OG_ERRBUF_SIZE] = "";
    char *path = plugin("abi_major");

    CU_ASSERT_EQUAL(og_testhost_load(th, path, "a", NULL, err), OG_ERR_ABI);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "expected plugin ABI"));
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);
}

struct client {
    int port;
    const char *request;
    char reply[4096];
    volatile int done;
};

/* Blocking HTTP client on its own thread while the test runs the loop. */
static void *client_thread(void *arg)
{
    struct client *c = arg;
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    size_t n = 0;
    ssize_t r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)c->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        send(fd, c->request, strlen(c->request), MSG_NOSIGNAL) > 0) {
        while ((r = recv(fd, c->reply + n, sizeof(c->reply) - 1 - n, 0)) > 0)
            n += (size_t)r;
    }
    c->reply[n] = '\0';
    close(fd);
    c->done = 1;
    return NULL;
}

static int client_done(void *data)
{
    return ((struct client *)data)->done;
}

static void post(og_testhost_t *th, struct client *c, const char *request)
{
    pthread_t t;

    memset(c, 0, sizeof(*c));
    c->port = og_testhost_http_port(th);
    c->request = request;
    pthread_create(&t, NULL, client_thread, c);
    CU_ASSERT_TRUE(og_testhost_run_until(th, client_done, c, 5000));
    pthread_join(t, NULL);
}

static void test_http_route(void)
{
    og_testhost_t *th = og_testhost_create();
    char *path = plugin("webhook");
    const char *config[] = {"token=t0k", "delay=20ms", NULL};
    struct client c;

    CU_ASSERT_EQUAL_FATAL(og_testhost_load(th, path, "hooks", config, NULL),
                          OG_OK);
    CU_ASSERT_TRUE(og_testhost_http_port(th) > 0);
    post(th, &c,
         "POST /hook HTTP/1.1\r\nAuthorization: Bearer t0k\r\n"
         "X-Event-Type: order.placed\r\nContent-Length: 2\r\n"
         "Connection: close\r\n\r\nhi");
    CU_ASSERT_PTR_NOT_NULL(strstr(c.reply, "HTTP/1.1 202"));
    /* the answer carries the id the host committed the event under */
    CU_ASSERT_PTR_NOT_NULL(strstr(c.reply, "{\"id\":\""));
    CU_ASSERT_EQUAL(og_testhost_emitted_count(th), 1);
    post(th, &c,
         "POST /hook HTTP/1.1\r\nAuthorization: Bearer nope\r\n"
         "X-Event-Type: order.placed\r\nContent-Length: 2\r\n"
         "Connection: close\r\n\r\nhi");
    CU_ASSERT_PTR_NOT_NULL(strstr(c.reply, "HTTP/1.1 401"));
    /* back-pressure reaches the sender as 429 with Retry-After */
    og_testhost_set_busy(th, 1);
    post(th, &c,
         "POST /hook HTTP/1.1\r\nAuthorization: Bearer t0k\r\n"
         "X-Event-Type: order.placed\r\nContent-Length: 2\r\n"
         "Connection: close\r\n\r\nhi");
    CU_ASSERT_PTR_NOT_NULL(strstr(c.reply, "HTTP/1.1 429"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.reply, "Retry-After: 1"));
    CU_ASSERT_EQUAL(og_testhost_emitted_count(th), 1);
    CU_ASSERT_EQUAL(og_testhost_stop(th, 1000), OG_OK);
    /* after stop the route is gone */
    post(th, &c,
         "POST /hook HTTP/1.1\r\nContent-Length: 0\r\nConnection: close"
         "\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(c.reply, "HTTP/1.1 404"));
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
    free(path);
}

int main(void)
{
    CU_pSuite s;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    s = CU_add_suite("testhost", NULL, NULL);
    CU_add_test(s, "dropdir ingress, busy, invalid", test_dropdir_ingress);
    CU_add_test(s, "dropdir egress", test_dropdir_egress);
    CU_add_test(s, "config errors", test_config_errors);
    CU_add_test(s, "delivery results", test_delivery_results);
    CU_add_test(s, "init and start failures", test_init_and_start_failures);
    CU_add_test(s, "slow and stuck stop", test_slow_stop);
    CU_add_test(s, "refused plugin", test_refused_plugin);
    CU_add_test(s, "HTTP route mounted by a plugin", test_http_route);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
