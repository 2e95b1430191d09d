/*
 * test_daemon.c: drives the real omnigated binary through its real
 * interfaces: command line, exit codes, config files, signals, and the
 * dropdir plugin's directories.
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/time.h>

#include "testutil.h"

/* Every daemon in the tests listens on ephemeral ports. */
#define HTTP0                                                                  \
    "[http]\npublic_listen = 127.0.0.1:0\nadmin_listen = 127.0.0.1:0\n"        \
    "admin_tokens = admin.tokens\n"
/* The admin API on TCP answers bearer tokens only (docs/security.md). */
#define ADMIN_TOKEN "adm1n-t0ken-0123456789abcdef"

static char *root; /* per-test temporary tree */
static char *daemon_bin;
static char logfile[600];

static void pathf(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(out, size, "%s/", root);

    va_start(ap, fmt);
    vsnprintf(out + n, size - (size_t)n, fmt, ap);
    va_end(ap);
}

static void put(const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(const char *rel, const char *fmt, ...)
{
    char path[700], text[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pathf(path, sizeof(path), "%s", rel);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, text), 0);
}

static void mk(const char *rel)
{
    char path[700];

    pathf(path, sizeof(path), "%s", rel);
    mkdir(path, 0755);
}

/* A fresh tree: conf/{channels.d,routes.d}, plugins/ with the built ones. */
static void setup(void)
{
    static const char *const plugins[] = {"dropdir",   "good",      "init_fail",
                                          "slow_stop", "abi_major", "webhook",
                                          NULL};
    char dir[700];

    if (root != NULL) {
        tu_rmrf(root);
        free(root);
    }
    root = tu_mkdtemp();
    mk("conf");
    mk("conf/channels.d");
    mk("conf/routes.d");
    mk("plugins");
    pathf(dir, sizeof(dir), "plugins");
    CU_ASSERT_EQUAL_FATAL(tu_install_plugins(dir, plugins), 0);
    put("conf/admin.tokens", "erase %s\n", ADMIN_TOKEN);
    pathf(dir, sizeof(dir), "conf/admin.tokens");
    chmod(dir, 0600);
    put("conf/omnigate.conf",
        HTTP0 "[daemon]\nplugin_dir = ../plugins\n"
              "shutdown_timeout = 3s\nlog_level = debug\n");
    pathf(logfile, sizeof(logfile), "daemon.log");
}

static pid_t start(void)
{
    char conf[700], state[700];
    char *argv[] = {daemon_bin, (char *)"-c", conf, (char *)"--state-dir",
                    state,      NULL};
    pid_t pid;

    pathf(conf, sizeof(conf), "conf");
    pathf(state, sizeof(state), "state");
    pid = tu_spawn(argv, logfile);
    CU_ASSERT_FATAL(pid > 0);
    return pid;
}

static int run_check(void)
{
    char conf[700];
    char *argv[] = {daemon_bin, (char *)"-c", conf, (char *)"--check-config",
                    NULL};
    pid_t pid;

    pathf(conf, sizeof(conf), "conf");
    pid = tu_spawn(argv, logfile);
    return tu_wait(pid, 10000);
}

static int stop(pid_t pid)
{
    kill(pid, SIGTERM);
    return tu_wait(pid, 15000);
}

static void show_log_on_failure(void)
{
    char *s = tu_read(logfile, NULL);

    fprintf(stderr, "---- daemon log ----\n%s--------------------\n",
            s ? s : "(none)");
    free(s);
}

static int log_has(const char *needle)
{
    return tu_contains(logfile, needle);
}

static void drop(const char *inbox, const char *name, const char *text)
{
    char rel[300];

    snprintf(rel, sizeof(rel), "%s/%s", inbox, name);
    put(rel, "%s", text);
}

/* Writes n event files into inbox and publishes them all at once (by
 * renaming), so that one poll of the dropdir plugin takes them together. */
static void burst(const char *inbox, int n, const char *text)
{
    char name[32], a[700], b[700];
    int i;

    for (i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%02d.evt.tmp", i);
        drop(inbox, name, text);
    }
    for (i = 0; i < n; i++) {
        pathf(a, sizeof(a), "%s/%02d.evt.tmp", inbox, i);
        pathf(b, sizeof(b), "%s/%02d.evt", inbox, i);
        rename(a, b);
    }
}

static void dropdir_channel(const char *name, const char *inbox,
                            const char *outbox)
{
    char rel[300], in[700] = "", out[700] = "";

    if (inbox) {
        mk(inbox);
        pathf(in, sizeof(in), "%s", inbox);
    }
    if (outbox) {
        mk(outbox);
        pathf(out, sizeof(out), "%s", outbox);
    }
    snprintf(rel, sizeof(rel), "conf/channels.d/%s.conf", name);
    put(rel,
        "[channel]\nplugin = dropdir\n[config]\npoll_interval = 20ms\n"
        "%s%s%s%s%s%s",
        inbox ? "inbox = " : "", in, inbox ? "\n" : "",
        outbox ? "outbox = " : "", out, outbox ? "\n" : "");
}

static size_t files(const char *rel)
{
    char dir[700];

    pathf(dir, sizeof(dir), "%s", rel);
    return tu_count_files(dir, ".msgpack");
}

static int wait_files(const char *rel, size_t n)
{
    char dir[700];

    pathf(dir, sizeof(dir), "%s", rel);
    return tu_wait_files(dir, ".msgpack", n, 5000);
}

static int has_file(const char *rel, const char *prefix)
{
    char dir[700];
    char *f;
    int found;

    pathf(dir, sizeof(dir), "%s", rel);
    f = tu_first_file(dir, ".msgpack");
    found = f != NULL && strstr(f, prefix) != NULL;
    free(f);
    return found;
}

/* The port the daemon logged for listener which ("admin", "public"). */
static int listener_port(const char *which)
{
    char *log = tu_read(logfile, NULL), *p, needle[64];
    int port = 0;

    snprintf(needle, sizeof(needle), "%s listening on 127.0.0.1:", which);
    if (log != NULL && (p = strstr(log, needle)))
        port = (int)strtol(p + strlen(needle), NULL, 10);
    free(log);
    return port;
}

static int admin_port(void)
{
    return listener_port("admin");
}

/* Sends a raw request to port and returns the whole response (free it). */
static char *http_call(int port, const char *req)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    char *buf = calloc(1, 1 << 20);
    size_t n = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        send(fd, req, strlen(req), MSG_NOSIGNAL) > 0) {
        ssize_t r;
        while ((r = recv(fd, buf + n, (1 << 20) - 1 - n, 0)) > 0)
            n += (size_t)r;
    }
    close(fd);
    return buf;
}

/* GET path on the admin listener. */
static char *admin_get(const char *path)
{
    char req[256];

    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
             "Bearer " ADMIN_TOKEN "\r\nConnection: close\r\n\r\n",
             path);
    return http_call(admin_port(), req);
}

/* POST body to path on the public listener with extra header lines. */
static char *public_post(const char *path, const char *headers,
                         const char *body)
{
    char req[8192];

    snprintf(req, sizeof(req),
             "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
             "Content-Length: %zu\r\n\r\n%s",
             path, headers, strlen(body), body);
    return http_call(listener_port("public"), req);
}

static int has(const char *hay, const char *needle)
{
    if (strstr(hay, needle) != NULL)
        return 1;
    fprintf(stderr, "  missing: %s\n", needle);
    return 0;
}

/* ------------------------------------------------------------------------ */

static void test_version(void)
{
    char *argv[] = {daemon_bin, (char *)"--version", NULL};

    setup();
    CU_ASSERT_EQUAL(tu_wait(tu_spawn(argv, logfile), 5000), 0);
    CU_ASSERT_TRUE(log_has("omnigated " PACKAGE_VERSION "\n"));
    CU_ASSERT_TRUE(log_has("plugin ABI 1.0\n"));
}

static void test_check_config(void)
{
    setup();
    dropdir_channel("pos", "in", NULL);
    CU_ASSERT_EQUAL(run_check(), 0);
    CU_ASSERT_TRUE(log_has("configuration OK"));

    /* A plugin key the plugin does not declare: file:line and exit 78. */
    put("conf/channels.d/crm.conf", "[channel]\nplugin = dropdir\n[config]\n"
                                    "outbox = /tmp\ncolour = red\n");
    put("conf/routes.d/r.conf", "[route r]\nmatch = *\nto = crm, nobody\n");
    CU_ASSERT_EQUAL(run_check(), 78);
    {
        char want[800];
        pathf(want, sizeof(want),
              "conf/channels.d/crm.conf:5: unknown key "
              "'colour' for plugin 'dropdir'");
        CU_ASSERT_TRUE(log_has(want));
        pathf(want, sizeof(want),
              "conf/routes.d/r.conf:3: route 'r' names "
              "unknown channel 'nobody'");
        CU_ASSERT_TRUE(log_has(want));
    }
    CU_ASSERT_TRUE(log_has("configuration invalid: 2 problem(s)"));

    /* A plugin the loader refuses is reported with the channel file: an
     * error for a required channel, a warning (exit 0, as the daemon
     * starts without it) for one that is not (issue 18). */
    setup();
    put("conf/channels.d/old.conf",
        "[channel]\nplugin = abi_major\nrequired = yes\n");
    CU_ASSERT_EQUAL(run_check(), 78);
    {
        char want[800];
        pathf(want, sizeof(want),
              "conf/channels.d/old.conf:2: plugin "
              "'abi_major': refusing plugin");
        CU_ASSERT_TRUE(log_has(want));
    }
    setup();
    put("conf/channels.d/old.conf", "[channel]\nplugin = abi_major\n");
    CU_ASSERT_EQUAL(run_check(), 0);
    CU_ASSERT_TRUE(log_has("(required = no: the daemon starts without this "
                           "channel)"));
    CU_ASSERT_TRUE(log_has("configuration OK"));
    /* --check-config initialises nothing: init_fail would log its error. */
    setup();
    put("conf/channels.d/f.conf", "[channel]\nplugin = init_fail\n"
                                  "[config]\ntoken = x\n");
    CU_ASSERT_EQUAL(run_check(), 0);
    CU_ASSERT_FALSE(log_has("cannot reach backend"));
}

static void test_route_through(void)
{
    pid_t pid;

    setup();
    dropdir_channel("pos", "in", NULL);
    dropdir_channel("crm", NULL, "crm-out");
    dropdir_channel("web", NULL, "web-out");
    put("conf/routes.d/r.conf", "[route orders]\nmatch = order.*\n"
                                "to = crm, web\n[route carts]\n"
                                "match = cart.updated\nto = web\n");
    pid = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    drop("in", "1.evt", "order.placed\nprops.total = 5\n");
    drop("in", "2.evt", "cart.updated\n");
    drop("in", "3.evt", "page.viewed\n");
    CU_ASSERT_TRUE(wait_files("web-out", 2));
    CU_ASSERT_TRUE(wait_files("crm-out", 1));
    tu_sleep_ms(200);
    CU_ASSERT_EQUAL(files("crm-out"), 1);
    CU_ASSERT_EQUAL(files("web-out"), 2);
    CU_ASSERT_EQUAL(stop(pid), 0);
    CU_ASSERT_TRUE(log_has("exited"));
    if (CU_get_number_of_failures())
        show_log_on_failure();
}

static void test_failed_channels(void)
{
    pid_t pid;

    /* Not required: the daemon continues without it. */
    setup();
    dropdir_channel("pos", "in", NULL);
    put("conf/channels.d/flaky.conf", "[channel]\nplugin = init_fail\n"
                                      "[config]\ntoken = x\n");
    pid = start();
    CU_ASSERT_TRUE(tu_wait_log(logfile, "ready", 1, 5000));
    CU_ASSERT_TRUE(log_has("[flaky] channel failed, continuing without it: "
                           "plugin 'init_fail' failed to initialise"));
    CU_ASSERT_EQUAL(stop(pid), 0);

    /* Required: start-up fails with 78. */
    setup();
    put("conf/channels.d/flaky.conf", "[channel]\nplugin = init_fail\n"
                                      "required = yes\n[config]\ntoken = x\n");
    pid = start();
    CU_ASSERT_EQUAL(tu_wait(pid, 10000), 78);
    CU_ASSERT_TRUE(log_has("a required channel failed"));

    /* A required plugin the loader refuses: also 78. */
    setup();
    put("conf/channels.d/old.conf", "[channel]\nplugin = abi_major\n"
                                    "required = yes\n");
    pid = start();
    CU_ASSERT_EQUAL(tu_wait(pid, 10000), 78);
    CU_ASSERT_TRUE(log_has("expected plugin ABI 1.x"));

    /* An invalid configuration: 78 and nothing started. */
    setup();
    put("conf/omnigate.conf", HTTP0 "[daemon]\nplugin_dir = ../plugins\n"
                                    "shutdown_timeout = forever\n");
    pid = start();
    CU_ASSERT_EQUAL(tu_wait(pid, 10000), 78);
    CU_ASSERT_TRUE(log_has("omnigate.conf:7: shutdown_timeout: expected a "
                           "duration"));
}

static void test_reload(void)
{
    pid_t pid;

    setup();
    dropdir_channel("in1", "in", NULL);
    dropdir_channel("keep", NULL, "keep-out");
    dropdir_channel("chg", NULL, "chg-out1");
    dropdir_channel("gone", NULL, "gone-out");
    put("conf/routes.d/r.conf", "[route all]\nmatch = *\n"
                                "to = keep, chg, gone\n");
    pid = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    drop("in", "a.evt", "x.one\n");
    CU_ASSERT_TRUE(wait_files("keep-out", 1));
    drop("in", "b.evt", "x.two\n");
    CU_ASSERT_TRUE(wait_files("keep-out", 2));
    CU_ASSERT_TRUE(wait_files("chg-out1", 2));
    CU_ASSERT_TRUE(wait_files("gone-out", 2));

    /* change chg's outbox, remove gone, add new */
    dropdir_channel("chg", NULL, "chg-out2");
    dropdir_channel("new", NULL, "new-out");
    {
        char p[700];
        pathf(p, sizeof(p), "conf/channels.d/gone.conf");
        unlink(p);
    }
    put("conf/routes.d/r.conf", "[route all]\nmatch = *\n"
                                "to = keep, chg, new\n");
    kill(pid, SIGHUP);
    CU_ASSERT_TRUE(tu_wait_log(logfile, "configuration reloaded", 1, 5000));
    CU_ASSERT_TRUE(log_has("[keep] started"));
    CU_ASSERT_EQUAL(tu_count(logfile, "[keep] started"), 1); /* untouched */
    CU_ASSERT_EQUAL(tu_count(logfile, "[in1] started"), 1);
    CU_ASSERT_TRUE(log_has("[gone] channel removed or disabled"));
    CU_ASSERT_TRUE(log_has("[new] channel added"));
    CU_ASSERT_TRUE(log_has("[chg] configuration changed, restarting"));

    drop("in", "c.evt", "x.three\n");
    CU_ASSERT_TRUE(wait_files("keep-out", 3));
    CU_ASSERT_TRUE(wait_files("chg-out2", 1));
    CU_ASSERT_TRUE(wait_files("new-out", 1));
    tu_sleep_ms(200);
    /* keep's in-memory sequence continued: it was not restarted */
    {
        char dir[700];
        size_t n;
        pathf(dir, sizeof(dir), "keep-out");
        n = tu_count_files(dir, ".msgpack");
        CU_ASSERT_EQUAL(n, 3);
    }
    CU_ASSERT_TRUE(has_file("chg-out2", "/000001-")); /* restarted: seq 1 */
    CU_ASSERT_EQUAL(files("gone-out"), 2);            /* removed */
    CU_ASSERT_EQUAL(files("chg-out1"), 2);

    /* An invalid new configuration is refused; the old one keeps running. */
    put("conf/channels.d/keep.conf", "[channel]\nplugin = dropdir\n"
                                     "[config]\nbogus = 1\n");
    kill(pid, SIGHUP);
    CU_ASSERT_TRUE(tu_wait_log(logfile, "reload refused", 1, 5000));
    CU_ASSERT_TRUE(log_has("keep.conf:4: unknown key 'bogus'"));
    drop("in", "d.evt", "x.four\n");
    CU_ASSERT_TRUE(wait_files("keep-out", 4));
    CU_ASSERT_EQUAL(tu_count(logfile, "[keep] started"), 1);
    {
        char dir[700], *f;
        /* seq 4 proves the same instance is still running */
        pathf(dir, sizeof(dir), "keep-out/000004-");
        f = NULL;
        (void)f;
        pathf(dir, sizeof(dir), "keep-out");
        CU_ASSERT_EQUAL(tu_count_files(dir, ".msgpack"), 4);
    }
    CU_ASSERT_EQUAL(stop(pid), 0);
    if (CU_get_number_of_failures())
        show_log_on_failure();
}

static void test_sigterm_drain(void)
{
    pid_t pid;
    int rc;

    /* In-flight work finishes before exit: a pending delivery and a plugin
     * whose stop takes 300 ms. */
    setup();
    dropdir_channel("in1", "in", NULL);
    put("conf/channels.d/g.conf", "[channel]\nplugin = good\n[config]\n"
                                  "token = t\n");
    put("conf/channels.d/slow.conf", "[channel]\nplugin = slow_stop\n"
                                     "[config]\ntoken = t\n"
                                     "stop_delay = 300ms\n");
    put("conf/routes.d/r.conf", "[route all]\nmatch = *\nto = g\n");
    pid = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    drop("in", "p.evt", "test.pending\n");
    CU_ASSERT_TRUE(tu_wait_log(logfile, "[in1]", 1, 2000));
    tu_sleep_ms(60);
    rc = stop(pid);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(log_has("[slow] slow stop finished"));
    CU_ASSERT_FALSE(log_has("shutdown timeout reached"));
    CU_ASSERT_TRUE(log_has("exited"));

    /* A plugin that never finishes is cut off at shutdown_timeout and the
     * daemon still exits 0. */
    setup();
    put("conf/omnigate.conf", HTTP0 "[daemon]\nplugin_dir = ../plugins\n"
                                    "shutdown_timeout = 300ms\n");
    put("conf/channels.d/slow.conf", "[channel]\nplugin = slow_stop\n"
                                     "[config]\ntoken = t\n"
                                     "stop_delay = 1h\n");
    pid = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    CU_ASSERT_EQUAL(stop(pid), 0);
    CU_ASSERT_TRUE(log_has("[slow] shutdown timeout reached"));
    CU_ASSERT_TRUE(log_has("fake destroyed"));
    CU_ASSERT_TRUE(log_has("exited"));
    if (CU_get_number_of_failures())
        show_log_on_failure();
}

static void test_admin_api(void)
{
    pid_t pid;
    char *r;

    setup();
    dropdir_channel("pos", "in", NULL);
    dropdir_channel("crm", NULL, "crm-out");
    put("conf/routes.d/r.conf", "[route all]\nmatch = *\nto = crm\n");
    pid = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    CU_ASSERT_FATAL(admin_port() > 0);
    drop("in", "1.evt", "order.placed\n");
    drop("in", "2.evt", "order.placed\n");
    drop("in", "3.msgpack", "\x91\x01"); /* an array, not an envelope */
    CU_ASSERT_TRUE(wait_files("crm-out", 2));
    CU_ASSERT_TRUE(tu_wait_log(logfile, "event refused (not_a_map)", 1, 5000));

    r = admin_get("/health");
    CU_ASSERT_TRUE(has(r, "HTTP/1.1 200 OK"));
    CU_ASSERT_TRUE(has(r, "{\"status\":\"ok\"}"));
    free(r);

    r = admin_get("/metrics");
    CU_ASSERT_TRUE(has(r, "Content-Type: text/plain; version=0.0.4"));
    CU_ASSERT_TRUE(has(r, "# TYPE omnigate_events_in_total counter\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_events_in_total{instance=\"pos\"} 2\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_deliveries_total{instance=\"crm\","
                          "result=\"ok\"} 2\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_delivery_latency_seconds_count{instance="
                          "\"crm\"} 2\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_delivery_latency_seconds_bucket{instance="
                          "\"crm\",le=\"+Inf\"} 2\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_channel_up{instance=\"crm\",plugin="
                          "\"dropdir\"} 1\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_plugin_counter_total{instance=\"pos\","
                          "name=\"files_in\"} 2\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_store_batch 0\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_store_degraded 0\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_events_refused_total{instance=\"pos\","
                          "reason=\"not_a_map\"} 1\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_events_refused_total{instance=\"pos\","
                          "reason=\"unknown_field\"} 0\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_process_resident_memory_bytes "));
    free(r);

    r = admin_get("/v1/channels");
    CU_ASSERT_TRUE(has(r, "{\"instance\":\"crm\",\"plugin\":\"dropdir\","
                          "\"plugin_version\":\"1.0.0\",\"abi\":\"1.0\","
                          "\"state\":\"running\",\"required\":false,"
                          "\"last_error\":null}"));
    free(r);

    /* A required channel that fails after a reload makes /health 503. */
    put("conf/channels.d/flaky.conf", "[channel]\nplugin = init_fail\n"
                                      "required = yes\n[config]\ntoken = x\n");
    kill(pid, SIGHUP);
    CU_ASSERT_TRUE(tu_wait_log(logfile, "configuration reloaded", 1, 5000));
    r = admin_get("/health");
    CU_ASSERT_TRUE(has(r, "HTTP/1.1 503"));
    CU_ASSERT_TRUE(has(r, "\"reason\":\"required channel 'flaky' is failed: "
                          "plugin 'init_fail' failed to initialise"));
    free(r);
    r = admin_get("/v1/channels");
    CU_ASSERT_TRUE(has(r, "\"instance\":\"flaky\",\"plugin\":\"init_fail\","
                          "\"plugin_version\":null,\"abi\":\"0.0\",\"state\":"
                          "\"failed\",\"required\":true,\"last_error\":"
                          "\"plugin 'init_fail' failed"));
    free(r);
    CU_ASSERT_EQUAL(stop(pid), 0);
    if (CU_get_number_of_failures())
        show_log_on_failure();
}

static void test_listen_failure(void)
{
    pid_t a, b;
    char conf[200];
    int port;

    /* Two daemons on one admin port: the second cannot listen, exits 1. */
    setup();
    a = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    port = admin_port();
    snprintf(conf, sizeof(conf),
             "[http]\npublic_listen = 127.0.0.1:0\nadmin_listen = "
             "127.0.0.1:%d\nadmin_tokens = admin.tokens\n[daemon]\n"
             "plugin_dir = ../plugins\n",
             port);
    put("conf/omnigate.conf", "%s", conf);
    b = start();
    CU_ASSERT_EQUAL(tu_wait(b, 10000), 1);
    CU_ASSERT_TRUE(log_has("admin listener: cannot listen on 127.0.0.1:"));
    CU_ASSERT_EQUAL(stop(a), 0);
}

static void test_plugin_routes(void)
{
    static const char auth[] = "Authorization: Bearer s3cret\r\n";
    char big[2100], *r;
    pid_t pid;

    setup();
    put("conf/channels.d/hooks.conf", "[channel]\nplugin = webhook\n"
                                      "[config]\ntoken = s3cret\n"
                                      "max_body = 1k\n");
    /* same path as hooks: refused, the channel fails, the daemon runs */
    put("conf/channels.d/hooks2.conf", "[channel]\nplugin = webhook\n"
                                       "[config]\ntoken = other\n");
    put("conf/channels.d/slowhook.conf", "[channel]\nplugin = webhook\n"
                                         "[config]\ntoken = s3cret\n"
                                         "path = /hook-async\ndelay = 30ms\n");
    dropdir_channel("crm", NULL, "crm-out");
    put("conf/routes.d/r.conf", "[route all]\nmatch = *\nto = crm\n");
    pid = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    CU_ASSERT_TRUE(log_has("[hooks] mounted POST /hook"));
    CU_ASSERT_TRUE(log_has("[hooks2] cannot mount POST /hook: already mounted "
                           "by channel 'hooks'"));

    r = public_post("/hook",
                    "Authorization: Bearer s3cret\r\n"
                    "X-Event-Type: order.placed\r\n",
                    "hello");
    CU_ASSERT_TRUE(has(r, "HTTP/1.1 202 Accepted"));
    CU_ASSERT_TRUE(has(r, "{\"id\":\""));
    free(r);
    CU_ASSERT_TRUE(wait_files("crm-out", 1));

    r = public_post("/hook",
                    "Authorization: Bearer wrong\r\n"
                    "X-Event-Type: order.placed\r\n",
                    "x");
    CU_ASSERT_TRUE(has(r, "HTTP/1.1 401 Unauthorized"));
    CU_ASSERT_TRUE(has(r, "{\"error\":\"unauthorized\"}"));
    free(r);

    r = public_post("/hook", auth, "no type");
    CU_ASSERT_TRUE(has(r, "HTTP/1.1 400"));
    free(r);

    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    r = public_post("/hook",
                    "Authorization: Bearer s3cret\r\n"
                    "X-Event-Type: order.placed\r\n",
                    big);
    CU_ASSERT_TRUE(has(r, "HTTP/1.1 413"));
    free(r);

    r = http_call(listener_port("public"),
                  "GET /hook HTTP/1.1\r\nConnection: close\r\n\r\n");
    CU_ASSERT_TRUE(has(r, "HTTP/1.1 405"));
    free(r);

    r = public_post("/hook-async",
                    "Authorization: Bearer s3cret\r\n"
                    "X-Event-Type: cart.updated\r\n",
                    "later");
    CU_ASSERT_TRUE(has(r, "HTTP/1.1 202"));
    free(r);
    CU_ASSERT_TRUE(wait_files("crm-out", 2));
    tu_sleep_ms(100);
    CU_ASSERT_EQUAL(files("crm-out"), 2); /* the 401/400/413 made nothing */

    /* SIGTERM while the async channel is still answering (30 ms): the
     * request in flight gets its 202, then the daemon exits 0. Run last
     * in this test, after the metrics check below. */
    r = admin_get("/metrics");
    CU_ASSERT_TRUE(has(r, "omnigate_plugin_counter_total{instance=\"hooks\","
                          "name=\"requests\"} 1\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_channel_up{instance=\"hooks2\",plugin="
                          "\"webhook\"} 0\n"));
    free(r);
    {
        char req[512];
        int fd;
        struct sockaddr_in sa;
        size_t n = 0;
        ssize_t got;
        char buf[2048];
        struct timeval tv = {5, 0};

        snprintf(req, sizeof(req),
                 "POST /hook-async HTTP/1.1\r\nHost: x\r\n"
                 "Authorization: Bearer s3cret\r\nX-Event-Type: a.b\r\n"
                 "Content-Length: 2\r\n\r\nhi");
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)listener_port("public"));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)),
                              0);
        send(fd, req, strlen(req), MSG_NOSIGNAL);
        tu_sleep_ms(10);
        kill(pid, SIGTERM);
        while ((got = recv(fd, buf + n, sizeof(buf) - 1 - n, 0)) > 0)
            n += (size_t)got;
        buf[n] = '\0';
        close(fd);
        CU_ASSERT_TRUE(has(buf, "HTTP/1.1 202"));
        CU_ASSERT_TRUE(has(buf, "Connection: close"));
    }
    CU_ASSERT_EQUAL(tu_wait(pid, 15000), 0);
    CU_ASSERT_FALSE(log_has("s3cret")); /* secrets never logged */
    if (CU_get_number_of_failures())
        show_log_on_failure();
}

static void test_stuck_subscriber(void)
{
    pid_t pid;
    char *r;

    setup();
    put("conf/omnigate.conf", HTTP0 "[daemon]\nplugin_dir = ../plugins\n"
                                    "shutdown_timeout = 500ms\n");
    dropdir_channel("in1", "in", NULL);
    dropdir_channel("sink", NULL, "sink-out");
    put("conf/channels.d/stuck.conf", "[channel]\nplugin = good\n"
                                      "queue_max = 3\nmax_inflight = 2\n"
                                      "[config]\ntoken = t\n");
    put("conf/routes.d/r.conf", "[route all]\nmatch = *\nto = stuck, sink\n");
    pid = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    burst("in", 10, "test.stuck\n");
    /* the healthy subscriber receives everything */
    CU_ASSERT_TRUE(wait_files("sink-out", 10));
    /* the stuck one: 2 in flight, 3 in its queue in memory, the other 5
     * wait in the store; nothing is lost */
    tu_sleep_ms(300);
    r = admin_get("/metrics");
    CU_ASSERT_TRUE(
        has(r, "omnigate_deliveries_pending{instance=\"stuck\"} 2\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_outbox_waiting{channel=\"stuck\"} 10\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_outbox_queued{channel=\"stuck\"} 3\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_outbox_waiting{channel=\"sink\"} 0\n"));
    CU_ASSERT_TRUE(has(r, "omnigate_deliveries_total{instance=\"sink\","
                          "result=\"ok\"} 10\n"));
    free(r);
    r = admin_get("/v1/outbox");
    CU_ASSERT_TRUE(has(r, "{\"channel\":\"stuck\",\"waiting\":10,"
                          "\"queued\":3,\"dead\":0}"));
    free(r);
    CU_ASSERT_EQUAL(stop(pid), 0);
    CU_ASSERT_TRUE(log_has("[stuck] shutdown timeout reached with 2 "
                           "deliveries in flight (delivered again later)"));
    if (CU_get_number_of_failures())
        show_log_on_failure();
}

static void test_accept_queue_busy(void)
{
    pid_t pid;
    char *r;

    /* The accept queue holds 2 events: a burst of 10 meets "busy", the
     * dropdir plugin keeps those files and offers them again at its next
     * poll, and every event arrives. */
    setup();
    put("conf/omnigate.conf", HTTP0 "[daemon]\nplugin_dir = ../plugins\n"
                                    "queue_max = 2\n");
    dropdir_channel("in1", "in", NULL);
    dropdir_channel("sink", NULL, "sink-out");
    put("conf/routes.d/r.conf", "[route all]\nmatch = *\nto = sink\n");
    pid = start();
    CU_ASSERT_FATAL(tu_wait_log(logfile, "ready", 1, 5000));
    burst("in", 10, "order.placed\n");
    CU_ASSERT_TRUE(wait_files("sink-out", 10));
    tu_sleep_ms(100);
    CU_ASSERT_EQUAL(files("sink-out"), 10);
    r = admin_get("/metrics");
    CU_ASSERT_TRUE(has(r, "omnigate_events_in_total{instance=\"in1\"} 10\n"));
    CU_ASSERT_PTR_NULL(strstr(r, "omnigate_events_refused_total{instance="
                                 "\"in1\",reason=\"busy\"} 0\n"));
    free(r);
    CU_ASSERT_EQUAL(stop(pid), 0);
    if (CU_get_number_of_failures())
        show_log_on_failure();
}

/* Reads one datagram from the notify socket within ms; "" on timeout. */
static void notify_read(int fd, char *buf, size_t size, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    buf[0] = '\0';
    if (poll(&p, 1, ms) == 1 && (n = recv(fd, buf, size - 1, 0)) > 0)
        buf[n] = '\0';
}

static void test_sd_notify(void)
{
    struct sockaddr_un sa;
    char buf[256];
    pid_t pid;
    int fd;

    setup();
    dropdir_channel("pos", "in", NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", root);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    pid = start();
    unsetenv("NOTIFY_SOCKET");
    notify_read(fd, buf, sizeof(buf), 5000);
    CU_ASSERT_STRING_EQUAL(buf, "READY=1");
    kill(pid, SIGHUP);
    notify_read(fd, buf, sizeof(buf), 5000);
    CU_ASSERT_STRING_EQUAL(buf, "RELOADING=1");
    notify_read(fd, buf, sizeof(buf), 5000);
    CU_ASSERT_STRING_EQUAL(buf, "READY=1");
    /* SIGINT stops like SIGTERM. */
    kill(pid, SIGINT);
    notify_read(fd, buf, sizeof(buf), 5000);
    CU_ASSERT_STRING_EQUAL(buf, "STOPPING=1");
    CU_ASSERT_EQUAL(tu_wait(pid, 10000), 0);
    CU_ASSERT_TRUE(log_has("Interrupt: stopping"));
    close(fd);
}

int main(void)
{
    CU_pSuite s;
    int rc;

    daemon_bin = tu_daemon_path();
    CU_initialize_registry();
    s = CU_add_suite("omnigated", NULL, NULL);
    CU_add_test(s, "--version", test_version);
    CU_add_test(s, "--check-config", test_check_config);
    CU_add_test(s, "events routed through plugins", test_route_through);
    CU_add_test(s, "failed and required channels", test_failed_channels);
    CU_add_test(s, "SIGHUP reload", test_reload);
    CU_add_test(s, "SIGTERM drain", test_sigterm_drain);
    CU_add_test(s, "admin API", test_admin_api);
    CU_add_test(s, "listen failure", test_listen_failure);
    CU_add_test(s, "routes mounted by plugins", test_plugin_routes);
    CU_add_test(s, "a stuck subscriber stalls no other", test_stuck_subscriber);
    CU_add_test(s, "accept queue full: busy, nothing lost",
                test_accept_queue_busy);
    CU_add_test(s, "sd_notify and SIGINT", test_sd_notify);
    rc = tu_run();
    if (root != NULL) {
        tu_rmrf(root);
        free(root);
    }
    free(daemon_bin);
    return rc;
}
