/*
 * test_conf.c: configuration loading; every error must name file and line
 * exactly.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/conf.h"
#include "testutil.h"

static char *dir;

/* Writes dir/rel with text. */
static void put(const char *rel, const char *text)
{
    tu_put(dir, rel, text);
}

static void fresh(void)
{
    static const char *const subdirs[] = {"channels.d", "routes.d", NULL};

    tu_fresh(dir, subdirs);
}

#define has_error(errs, rel, line, msg) tu_has_error(errs, dir, rel, line, msg)

static og__conf_t *load(og__errlist_t *errs)
{
    return og__conf_load(dir, NULL, errs);
}

static void test_valid(void)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;
    const og__chconf_t *ch;

    fresh();
    put("omnigate.conf", "# main\n[daemon]\nplugin_dir = plugins\n"
                         "shutdown_timeout = 2500ms\nlog_level = debug\n"
                         "queue_max = 100\nmax_event_size = 64k\n\n"
                         "[route r1]\nmatch = order.*, cart.updated\n"
                         "to = crm\n");
    put("channels.d/pos-12.conf", "[channel]\nplugin = dropdir\n"
                                  "required = yes\n[config]\n"
                                  "inbox = /x ; inline comment\n");
    put("channels.d/crm.conf", "[channel]\nplugin = dropdir\nenabled = no\n");
    put("channels.d/ignored.conf.disabled", "garbage");
    put("routes.d/more.conf", "[route r2]\nmatch = *\nfrom = pos-12\n"
                              "to = crm\n");
    c = load(&errs);
    CU_ASSERT_EQUAL(errs.n, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->shutdown_timeout_ms, 2500);
    CU_ASSERT_EQUAL(c->log_level, OG_LOG_DEBUG);
    CU_ASSERT_EQUAL(c->queue_max, 100);
    CU_ASSERT_EQUAL(c->max_event_bytes, 65536);
    CU_ASSERT_EQUAL(c->nchannels, 2);
    CU_ASSERT_EQUAL(c->nroutes, 2);
    ch = og__conf_channel(c, "pos-12");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
    CU_ASSERT_TRUE(ch->required);
    CU_ASSERT_TRUE(ch->enabled);
    CU_ASSERT_STRING_EQUAL(og__chconf_opt(ch, "inbox")->value, "/x");
    CU_ASSERT_EQUAL(og__chconf_opt(ch, "inbox")->line, 5);
    CU_ASSERT_FALSE(og__conf_channel(c, "crm")->enabled);
    CU_ASSERT_EQUAL(ch->queue_max, 10000); /* defaults */
    CU_ASSERT_EQUAL(ch->max_inflight, 64);
    CU_ASSERT_STRING_EQUAL(c->routes[1].from[0], "pos-12");
    CU_ASSERT_PTR_NOT_NULL(strstr(c->plugin_dir, "/plugins"));
    og__conf_free(c);
    /* The main file can be named directly too. */
    {
        char main[1024];
        snprintf(main, sizeof(main), "%s/omnigate.conf", dir);
        c = og__conf_load(main, "/override", &errs);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_STRING_EQUAL(c->plugin_dir, "/override");
        og__conf_free(c);
    }
}

static void test_main_errors(void)
{
    og__errlist_t errs = {NULL, 0};

    fresh();
    put("omnigate.conf", "[daemon]\n"
                         "shutdown_timeout = soon\n" /* 2 */
                         "colour = blue\n"           /* 3 */
                         "log_level = loud\n"        /* 4 */
                         "queue_max = 0\n"           /* 5 */
                         "log_level = info\n"        /* 6 */
                         "[network]\n"               /* 7 */
                         "port = 1\n");
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 2,
                             "shutdown_timeout: expected a duration"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 3,
                             "unknown key 'colour' in [daemon]"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 4,
                             "log_level: expected error, warning"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 5,
                             "queue_max: must be between 1 and"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 6,
                             "key 'log_level' given twice in [daemon]"));
    CU_ASSERT_TRUE(
        has_error(&errs, "omnigate.conf", 7, "unknown section [network]"));
    CU_ASSERT_EQUAL(errs.n, 6);
    og__errlist_free(&errs);
}

static void chmod_rel(const char *rel, mode_t mode)
{
    char *p;

    CU_ASSERT_FATAL(asprintf(&p, "%s/%s", dir, rel) > 0);
    CU_ASSERT_EQUAL(chmod(p, mode), 0);
    free(p);
}

/* docs/security.md: files anyone may change are refused; the admin API on
 * TCP needs a tokens file that is a secret. */
static void test_trust(void)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;

    /* a world-writable main file and channel file */
    fresh();
    put("omnigate.conf", "[daemon]\nplugin_dir = plugins\n");
    put("channels.d/web.conf", "[channel]\nplugin = web\n");
    chmod_rel("omnigate.conf", 0666);
    chmod_rel("channels.d/web.conf", 0620);
    c = load(&errs);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 0,
                             "refusing a file writable by group or others "
                             "(mode 0666)"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/web.conf", 0,
                             "refusing a file writable by group or others "
                             "(mode 0620)"));
    og__errlist_free(&errs);

    /* names longer than the envelope's 64 characters (issue 16) */
    fresh();
    put("omnigate.conf", "[daemon]\nplugin_dir = plugins\n");
    put("channels.d/"
        "a-very-long-channel-name-that-goes-on-and-on-past-sixty-four-chars"
        ".conf",
        "[channel]\nplugin = web\n");
    c = load(&errs);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_TRUE(has_error(&errs,
                             "channels.d/a-very-long-channel-name-that-goes-"
                             "on-and-on-past-sixty-four-chars.conf",
                             1,
                             "the channel name 'a-very-long-channel-...' has "
                             "66 characters, at most 64"));
    og__errlist_free(&errs);

    /* the default admin listener is a socket in state_dir */
    fresh();
    put("omnigate.conf", "[daemon]\nstate_dir = /var/lib/og\n");
    c = load(&errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->admin_listen, "unix:/var/lib/og/admin.sock");
    og__conf_free(c);

    /* TCP without tokens */
    fresh();
    put("omnigate.conf", "[http]\nadmin_listen = 127.0.0.1:8089\n");
    c = load(&errs);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 0,
                             "admin_listen = 127.0.0.1:8089 is TCP: set "
                             "admin_tokens"));
    og__errlist_free(&errs);

    /* tokens: roles, lengths, placeholders, a secret's mode */
    fresh();
    put("omnigate.conf", "[http]\nadmin_listen = 127.0.0.1:8089\n"
                         "admin_tokens = tokens\nadmin_hosts = ops.lan\n");
    put("tokens", "# role token\n"
                  "read 0123456789abcdef0123456789\n"     /* 2 */
                  "erase fedcba9876543210fedcba98 # ok\n" /* 3 */
                  "admin 0123456789abcdef0123456789\n"    /* 4 */
                  "read short\n"                          /* 5 */
                  "operate CHANGE-ME-0123456789abcdef\n"  /* 6 */
                  "read a b\n");                          /* 7 */
    chmod_rel("tokens", 0600);
    c = load(&errs);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_TRUE(has_error(&errs, "tokens", 4, "expected 'ROLE TOKEN'"));
    CU_ASSERT_TRUE(has_error(&errs, "tokens", 5,
                             "a token must have at least 24 characters"));
    CU_ASSERT_TRUE(
        has_error(&errs, "tokens", 6, "a token must have at least 24"));
    CU_ASSERT_TRUE(has_error(&errs, "tokens", 7, "expected 'ROLE TOKEN'"));
    CU_ASSERT_EQUAL(errs.n, 4);
    og__errlist_free(&errs);
    put("tokens", "read 0123456789abcdef0123456789\n"
                  "erase fedcba9876543210fedcba98\n");
    chmod_rel("tokens", 0644);
    c = load(&errs);
    CU_ASSERT_PTR_NULL(c);
    {
        char want[700];

        snprintf(want, sizeof(want),
                 "admin_tokens: %s/tokens: refusing a secret readable by "
                 "others (mode 0644)",
                 dir);
        CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 3, want));
    }
    og__errlist_free(&errs);
    chmod_rel("tokens", 0640);
    c = load(&errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->nadmin_tokens, 2);
    CU_ASSERT_EQUAL(c->admin_tokens[1].role, 2);
    CU_ASSERT_STRING_EQUAL(c->admin_hosts[0], "ops.lan");
    og__conf_free(c);
}

static void test_http_section(void)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;

    fresh();
    put("omnigate.conf", "[http]\npublic_listen = [::1]:9000\n"
                         "admin_listen = unix:/run/omnigate/admin.sock\n"
                         "max_body_size = 2M\nread_timeout = 5s\n"
                         "max_connections = 10\n");
    c = load(&errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->public_listen, "[::1]:9000");
    CU_ASSERT_STRING_EQUAL(c->admin_listen, "unix:/run/omnigate/admin.sock");
    CU_ASSERT_EQUAL(c->http_max_body_bytes, 2u << 20);
    CU_ASSERT_EQUAL(c->http_read_timeout_ms, 5000);
    CU_ASSERT_EQUAL(c->http_idle_timeout_ms, 60000); /* default */
    CU_ASSERT_EQUAL(c->http_max_connections, 10);
    og__conf_free(c);

    fresh();
    put("omnigate.conf", "[http]\npublic_listen = 8088\n" /* 2 */
                         "max_header_size = 10\n"         /* 3 */
                         "idle_timeout = 1ms\n"           /* 4 */
                         "tls = on\n"                     /* 5 */
                         "max_connections = many\n");     /* 6 */
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 2,
                             "public_listen: expected HOST:PORT, [IPV6]:PORT "
                             "or unix:/path, got '8088'"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 3,
                             "max_header_size: must be between 1k and 1G"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 4,
                             "idle_timeout: must be at least 10ms"));
    CU_ASSERT_TRUE(
        has_error(&errs, "omnigate.conf", 5, "unknown key 'tls' in [http]"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 6,
                             "max_connections: expected an integer"));
    og__errlist_free(&errs);
}

static void test_route_conditions(void)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;

    fresh();
    put("omnigate.conf", "[daemon]\n");
    put("channels.d/pos-1.conf", "[channel]\nplugin = dropdir\n");
    put("channels.d/crm.conf", "[channel]\nplugin = dropdir\n");
    put("routes.d/r.conf", "[route big]\nmatch = order.*\nfrom = pos-*\n"
                           "when = props.total >= 100 and props.currency == EUR"
                           "\nto = crm\n");
    c = load(&errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->routes[0].when,
                           "props.total >= 100 and props.currency == EUR");
    og__conf_free(c);

    put("routes.d/r.conf", "[route big]\nmatch = order.*\n"
                           "when = props.total >\nto = crm\n");
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "routes.d/r.conf", 3,
                             "when: condition 'props.total >' has no value"));
    og__errlist_free(&errs);
}

static void test_syntax_errors(void)
{
    og__errlist_t errs = {NULL, 0};
    char longline[400];

    fresh();
    put("omnigate.conf", "[daemon]\nlog_level = info\nthis is not ini\n");
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 3, "syntax error"));
    og__errlist_free(&errs);

    fresh();
    put("omnigate.conf", "log_level = info\n");
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 1,
                             "key 'log_level' outside of any section"));
    og__errlist_free(&errs);

    fresh();
    put("omnigate.conf", "[daemon]\nlog_level = info\n  debug\n");
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 3,
                             "continuation lines are not supported"));
    og__errlist_free(&errs);

    fresh();
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "[daemon]\nstate_dir = ", 21);
    longline[sizeof(longline) - 2] = '\n';
    longline[sizeof(longline) - 1] = '\0';
    put("omnigate.conf", longline);
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 2, "line longer than"));
    og__errlist_free(&errs);

    fresh();
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 0, "cannot open"));
    og__errlist_free(&errs);
}

static void test_channel_errors(void)
{
    og__errlist_t errs = {NULL, 0};

    fresh();
    put("omnigate.conf", "[daemon]\n");
    put("channels.d/a.conf", "[channel]\nplugin = dropdir\nname = shop\n");
    put("channels.d/b.conf", "# b\n[channel]\nplugin = dropdir\n"
                             "name = shop\nenabled = perhaps\n"
                             "timeout = 1\n[extra]\n");
    put("channels.d/c.conf", "[config]\nx = 1\n");
    put("channels.d/d.conf", "\n\n[channel]\nrequired = no\n");
    put("channels.d/e.conf", "[channel]\nplugin = Bad/Name\n");
    put("channels.d/f.conf", "[channel]\nplugin = dropdir\nqueue_max = 0\n"
                             "max_inflight = lots\n");
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/b.conf", 2,
                             "channel name 'shop' already used by"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/b.conf", 5,
                             "enabled: expected a boolean"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/b.conf", 6,
                             "unknown key 'timeout' in [channel]"));
    CU_ASSERT_TRUE(
        has_error(&errs, "channels.d/b.conf", 7, "unknown section [extra]"));
    CU_ASSERT_TRUE(
        has_error(&errs, "channels.d/c.conf", 0, "missing [channel] section"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/d.conf", 3,
                             "[channel] has no 'plugin' key"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/f.conf", 3,
                             "queue_max: must be between 1 and 10000000"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/f.conf", 4,
                             "max_inflight: expected an integer"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/e.conf", 2,
                             "plugin: 'Bad/Name' is not a valid plugin name"));
    og__errlist_free(&errs);
}

/* [customers], phone_region, the reserved source name "core". */
static void test_customer_settings(void)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;

    fresh();
    put("omnigate.conf", "[customers]\n"
                         "traits = oldest\n"        /* 2 */
                         "trait.city = non_empty\n" /* 3 */
                         "trait.name = newest\n");  /* 4 */
    put("channels.d/pos.conf", "[channel]\nplugin = dropdir\n"
                               "phone_region = FR\n");
    put("routes.d/r.conf", "[route people]\nmatch = customer.*\n"
                           "from = core\nto = pos\n");
    c = load(&errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->trait_default, OG__TRAIT_OLDEST);
    CU_ASSERT_EQUAL(c->ntraits, 2);
    CU_ASSERT_STRING_EQUAL(c->trait_names[0], "city");
    CU_ASSERT_EQUAL(c->trait_rules[0], OG__TRAIT_NON_EMPTY);
    CU_ASSERT_EQUAL(c->trait_rules[1], OG__TRAIT_NEWEST);
    CU_ASSERT_STRING_EQUAL(c->channels[0].phone_region, "FR");
    og__conf_free(c);

    fresh();
    put("omnigate.conf", "[customers]\n"
                         "traits = sometimes\n" /* 2 */
                         "trait. = oldest\n"    /* 3 */
                         "trait.city = first\n" /* 4 */
                         "merge = yes\n");      /* 5 */
    put("channels.d/pos.conf", "[channel]\nplugin = dropdir\n"
                               "phone_region = France\n" /* 3 */
                               "[config]\n");
    put("channels.d/web.conf", "[channel]\nplugin = dropdir\n"
                               "phone_region = XX\n"); /* 3 */
    put("routes.d/r.conf", "[route people]\nmatch = customer.*\n"
                           "from = pos\nto = core\n"); /* 4 */
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 2,
                             "traits: expected newest, oldest or non_empty"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 3,
                             "trait.: a trait name of 1-128 characters"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 4,
                             "trait.city: expected newest, oldest or "
                             "non_empty, got 'first'"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 5,
                             "unknown key 'merge' in [customers]"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/pos.conf", 3,
                             "phone_region: expected a two-letter ISO 3166"));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/web.conf", 3,
                             "phone_region: libphonenumber has no numbering "
                             "plan for region 'XX'"));
    CU_ASSERT_TRUE(has_error(&errs, "routes.d/r.conf", 4,
                             "route 'people' names unknown channel 'core'"));
    og__errlist_free(&errs);

    fresh();
    put("omnigate.conf", "[daemon]\n");
    put("channels.d/core.conf", "[channel]\nplugin = dropdir\n");
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "channels.d/core.conf", 1,
                             "channel name 'core' is reserved"));
    og__errlist_free(&errs);
}

static void test_route_errors(void)
{
    og__errlist_t errs = {NULL, 0};

    fresh();
    put("omnigate.conf", "[daemon]\n[route a]\nmatch = x\nto = nowhere\n");
    put("channels.d/crm.conf", "[channel]\nplugin = dropdir\n");
    put("routes.d/r.conf", "[route b]\nto = crm\n"
                           "\n[route a]\nmatch = y\nto = crm\n"
                           "[route c]\nmatch = Bad!\nto = crm\nvia = x\n"
                           "from = ghost\n[route]\nmatch = z\n");
    CU_ASSERT_PTR_NULL(load(&errs));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 4,
                             "route 'a' names unknown channel 'nowhere'"));
    CU_ASSERT_TRUE(
        has_error(&errs, "routes.d/r.conf", 1, "[route b] has no 'match' key"));
    CU_ASSERT_TRUE(
        has_error(&errs, "routes.d/r.conf", 5, "route 'a' defined twice"));
    CU_ASSERT_TRUE(has_error(&errs, "routes.d/r.conf", 8,
                             "match: 'Bad!' is not a valid event type"));
    CU_ASSERT_TRUE(has_error(&errs, "routes.d/r.conf", 10,
                             "unknown key 'via' in [route c]"));
    CU_ASSERT_TRUE(has_error(&errs, "routes.d/r.conf", 11,
                             "route 'c' names unknown channel 'ghost'"));
    CU_ASSERT_TRUE(has_error(&errs, "routes.d/r.conf", 13,
                             "[route]: a route needs a name"));
    og__errlist_free(&errs);
}

int main(void)
{
    CU_pSuite s;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    s = CU_add_suite("conf", NULL, NULL);
    CU_add_test(s, "[customers], phone_region, source core",
                test_customer_settings);
    CU_add_test(s, "valid configuration", test_valid);
    CU_add_test(s, "main file errors", test_main_errors);
    CU_add_test(s, "[http] section", test_http_section);
    CU_add_test(s, "files and admin tokens (docs/security.md)", test_trust);
    CU_add_test(s, "route conditions", test_route_conditions);
    CU_add_test(s, "syntax errors", test_syntax_errors);
    CU_add_test(s, "channel file errors", test_channel_errors);
    CU_add_test(s, "route errors", test_route_errors);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
