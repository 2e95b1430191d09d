/*
 * test_journeys.c: journeys over the real SQLite store, on a clock the
 * test sets (every "now" below is a chosen instant, nothing sleeps):
 * local times of day across a daylight saving change; a run started by a
 * trigger in the accepting commit, not due before its wait, fired at it
 * with the message rendered for the channel the customer can be reached
 * on (social has no address: email), then a time-of-day step; a cancel
 * committed before the due time wins over the step, a step fired before
 * the cancel stays done; restart semantics (one run per customer and
 * entity, a new trigger replaces it); consent and frequency caps steering
 * the channel; configuration problems named with file and line.
 */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf.h"
#include "event/event.h"
#include "domain/identity.h"
#include "domain/journeys.h"
#include "pipeline/answers.h"
#include "store/store.h"
#include "testutil.h"
#include "domain/tz.h"

static char *dir;

/* 2026-03-28 12:00:00 UTC, the day before Paris moves to summer time */
#define T0 1774699200000ull
#define MIN 60000ull

static void put(const char *rel, const char *text)
{
    tu_put(dir, rel, text);
}

#define has_error(errs, rel, line, msg) tu_has_error(errs, dir, rel, line, msg)

static void test_tz(void)
{
    uint64_t t;
    int m;
    char why[256];

    CU_ASSERT_EQUAL(og__parse_hhmm("09:30"), 570);
    CU_ASSERT_EQUAL(og__parse_hhmm("23:59"), 1439);
    CU_ASSERT_EQUAL(og__parse_hhmm("24:00"), -1);
    CU_ASSERT_EQUAL(og__parse_hhmm("9:30"), -1);
    CU_ASSERT_EQUAL(og__parse_hhmm("09:60"), -1);
    CU_ASSERT_EQUAL(og__tz_check("Europe/Paris", why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(og__tz_check("Mars/Olympus", why, sizeof(why)),
                    OG_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown time zone 'Mars/Olympus'"));
    /* 12:00 UTC is 13:00 in Paris (winter time) */
    CU_ASSERT_EQUAL(og__tz_minute("Europe/Paris", T0, &m, why, sizeof(why)),
                    OG_OK);
    CU_ASSERT_EQUAL(m, 13 * 60);
    /* the next 09:00 in Paris is on the 29th, in summer time: 07:00 UTC */
    CU_ASSERT_EQUAL(
        og__tz_next("Europe/Paris", T0, 9 * 60, &t, why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(t, T0 + 19 * 60 * MIN);
    /* the same instant when it is exactly that time */
    CU_ASSERT_EQUAL(og__tz_next("UTC", T0, 12 * 60, &t, why, sizeof(why)),
                    OG_OK);
    CU_ASSERT_EQUAL(t, T0);
    /* 12:00 UTC is 08:00 in New York (UTC-4 since March 8th): 07:00 is
     * the next day's, 23 hours later */
    CU_ASSERT_EQUAL(og__tz_minute("America/New_York", T0, &m, why, sizeof(why)),
                    OG_OK);
    CU_ASSERT_EQUAL(m, 8 * 60);
    CU_ASSERT_EQUAL(
        og__tz_next("America/New_York", T0, 7 * 60, &t, why, sizeof(why)),
        OG_OK);
    CU_ASSERT_EQUAL(t, T0 + 23 * 60 * MIN);
}

/* ---- runs over the store ------------------------------------------------ */

static og__store_t *st;
static og__journeys_t *js;
static og__conf_t *conf;
static uint64_t clock_now; /* the journeys' clock */

static og_event_t *event(const char *type, const char *email, const char *cart,
                         const char *cart_id)
{
    og_event_t *ev = tu_shop_event(type, email, cart, cart_id);

    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    return ev;
}

/* Accepts ev in one commit with what it does to journeys; its customer
 * goes to cust. */
static void accept_ev(og_event_t *ev, char cust[40])
{
    char c[1][40];

    CU_ASSERT_EQUAL(tu_commit_events(st, js, &ev, 1, clock_now, c), 0);
    snprintf(cust, 40, "%s", c[0]);
}

/* What the steps fired at clock_now made: types, and the last event. */
struct made {
    size_t n;
    char types[8][72];
    char channel[8][72];
    char text[8][200];
};

static void str_prop(const uint8_t *b, size_t len, const char *path, char *out,
                     size_t outlen)
{
    char why[128];
    og_event_t *ev = og__event_restore(b, len, why, sizeof(why));
    const char *v;
    size_t n;

    out[0] = '\0';
    if (ev != NULL && og__event_get_str(ev, path, &v, &n) == OG_OK)
        snprintf(out, outlen, "%.*s", (int)n, v);
    og__event_unref(ev);
}

static og_err_t fire_fn(void *data, const og__fire_env_t *env,
                        const og__run_t *run, og__step_result_t *res,
                        og__store_item_t *ev)
{
    struct made *m = data;
    og_err_t rc = og__journeys_fire(js, env, run, clock_now, res);

    if (rc == OG_OK && res->body != NULL && m->n < 8) {
        snprintf(m->types[m->n], 72, "%s", res->type);
        snprintf(m->channel[m->n], 72, "%s", res->channel);
        str_prop(res->body, res->len, "props.text", m->text[m->n], 200);
        m->n++;
        ev->targets = res->targets;
        ev->ntargets = res->ntargets;
    }
    return rc;
}

static size_t fire(struct made *m, uint64_t *next)
{
    static const og__consent_rules_t consent = {0, NULL, 0};
    size_t fired = 0;
    char err[256];

    memset(m, 0, sizeof(*m));
    CU_ASSERT_EQUAL(st->ops->journeys_fire(st, clock_now, 100, fire_fn, m, NULL,
                                           &consent, &fired, next, err,
                                           sizeof(err)),
                    OG_OK);
    return fired;
}

static char *timeline(const char *cust)
{
    og__sbuf_t b = {0};

    CU_ASSERT_EQUAL(og__answer_timeline(st, cust, 100, &b), OG_OK);
    return b.p;
}

static void setup(void)
{
    static const char *const subdirs[] = {"templates", "journeys.d",
                                          "channels.d", "state", NULL};
    og__errlist_t errs = {NULL, 0};
    og__store_opts_t o = {NULL, OG__DURABLE_PROCESS, 3600 * 1000, 0};
    char err[256], *state;

    tu_fresh(dir, subdirs);
    put("omnigate.conf", "[journeys]\ntimezone = Europe/Paris\n");
    put("channels.d/email.conf", "[channel]\nplugin = dropdir\n");
    put("channels.d/social.conf", "[channel]\nplugin = httpout\n");
    put("templates/reminder.conf",
        "[template]\nvars = customer, event, journey\n"
        "[default]\ntext = {{#event.props.lines}}{{qty}} {{name}}"
        "{{/event.props.lines}} (step {{journey.step}})\n");
    put("journeys.d/cart.conf",
        "[journey]\ntrigger = cart.updated\nentity = entity.id\n"
        "concurrency = restart\ncancel_on = order.placed\n"
        "cancel_entity = props.cart_id\nchannels = social, email\n"
        "purpose = transactional\n"
        "[step remind]\nwait = 30m\nsend = reminder\n"
        "[step follow]\nat = 09:00\nif = customer.orders == 0\n"
        "emit = cart.followed\n"
        "[step tag]\nset = cart_reminded = true\n");
    conf = og__conf_load(dir, NULL, &errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    js = og__journeys_build(conf, &errs);
    CU_ASSERT_EQUAL_FATAL(errs.n, 0);
    og__errlist_free(&errs);
    state = og__xasprintf("%s/state", dir);
    o.dir = state;
    st = og__store_open_sqlite(&o, err, sizeof(err));
    free(state);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
}

static void teardown(void)
{
    og__store_close(st);
    og__journeys_unref(js);
    og__conf_free(conf);
}

static void test_run_waits_sends_and_follows(void)
{
    struct made m;
    uint64_t next = 0;
    char ann[40], *t;

    setup();
    clock_now = T0;
    accept_ev(event("cart.updated", "ann@example.com", "c-1", NULL), ann);
    CU_ASSERT_EQUAL(fire(&m, &next), 0);
    CU_ASSERT_EQUAL(next, T0 + 30 * MIN); /* not before its wait */
    clock_now = T0 + 29 * MIN;
    CU_ASSERT_EQUAL(fire(&m, &next), 0);
    clock_now = T0 + 30 * MIN;
    CU_ASSERT_EQUAL(fire(&m, &next), 1);
    CU_ASSERT_EQUAL(m.n, 1);
    CU_ASSERT_STRING_EQUAL(m.types[0], "message.send");
    /* social first, but Ann has no social address: email */
    CU_ASSERT_STRING_EQUAL(m.channel[0], "email");
    CU_ASSERT_STRING_EQUAL(m.text[0], "2 Boots (step 1)");
    /* next: 09:00 in Paris (the journeys' time zone) on the 29th, summer
     * time: 07:00 UTC */
    CU_ASSERT_EQUAL(next, T0 + 19 * 60 * MIN);
    clock_now = next;
    CU_ASSERT_EQUAL(fire(&m, &next), 1);
    CU_ASSERT_STRING_EQUAL(m.types[0], "cart.followed");
    CU_ASSERT_EQUAL(next, clock_now); /* the last step has no wait */
    CU_ASSERT_EQUAL(fire(&m, &next), 1);
    CU_ASSERT_STRING_EQUAL(m.types[0], "customer.updated");
    CU_ASSERT_EQUAL(next, 0); /* nothing waits */
    {
        og__sbuf_t b = {0};

        CU_ASSERT_EQUAL(st->ops->customer_get(st, ann, NULL, NULL, &b), OG_OK);
        CU_ASSERT_PTR_NOT_NULL(strstr(b.p, "\"cart_reminded\":true"));
        og__sbuf_free(&b);
    }
    t = timeline(ann);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"state\":\"completed\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"type\":\"journey.started\""));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(t, "\"type\":\"message.send\",\"channel\":\"email\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "social: no address"));
    free(t);
    teardown();
}

static void test_cancel_and_restart(void)
{
    struct made m;
    uint64_t next;
    char bob[40], cy[40], *t;

    setup();
    clock_now = T0;
    accept_ev(event("cart.updated", "bob@example.com", "c-2", NULL), bob);
    /* the order for another cart cancels nothing */
    clock_now = T0 + 10 * MIN;
    accept_ev(event("order.placed", "bob@example.com", NULL, "c-other"), bob);
    /* the order for the cart, committed before the step is due, wins */
    clock_now = T0 + 29 * MIN;
    accept_ev(event("order.placed", "bob@example.com", NULL, "c-2"), bob);
    clock_now = T0 + 31 * MIN;
    CU_ASSERT_EQUAL(fire(&m, &next), 0);
    t = timeline(bob);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"state\":\"cancelled\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "cancelled by order.placed"));
    CU_ASSERT_EQUAL(tu_count_str(t, "journey.cancelled"), 1);
    free(t);

    /* a step fired before the order stays done; the cancel then only
     * ends the follow-up */
    clock_now = T0;
    accept_ev(event("cart.updated", "cy@example.com", "c-3", NULL), cy);
    /* a second update restarts the wait from its own time */
    clock_now = T0 + 20 * MIN;
    accept_ev(event("cart.updated", "cy@example.com", "c-3", NULL), cy);
    clock_now = T0 + 31 * MIN;
    CU_ASSERT_EQUAL(fire(&m, &next), 0);
    CU_ASSERT_EQUAL(next, T0 + 50 * MIN);
    clock_now = T0 + 50 * MIN;
    CU_ASSERT_EQUAL(fire(&m, &next), 1);
    CU_ASSERT_STRING_EQUAL(m.types[0], "message.send");
    accept_ev(event("order.placed", "cy@example.com", NULL, "c-3"), cy);
    clock_now = T0 + 48 * 60 * MIN;
    CU_ASSERT_EQUAL(fire(&m, &next), 0);
    t = timeline(cy);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"state\":\"replaced\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"state\":\"cancelled\""));
    CU_ASSERT_EQUAL(tu_count_str(t, "\"type\":\"message.send\""), 1);
    free(t);
    teardown();
}

/* A run whose journey was disabled waits (an hour at a time) without
 * blocking the others, and goes on when the journey is back. */
static void test_journey_removed(void)
{
    og__journeys_t *on;
    og__conf_t *c2;
    og__errlist_t errs = {NULL, 0};
    struct made m;
    uint64_t next;
    char ann[40], *t;

    setup();
    clock_now = T0;
    accept_ev(event("cart.updated", "ann@example.com", "c-1", NULL), ann);
    put("journeys.d/cart.conf", "[journey]\nenabled = no\n"
                                "trigger = cart.updated\n"
                                "[step a]\nemit = x.y\n");
    c2 = og__conf_load(dir, NULL, &errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c2);
    on = js;
    js = og__journeys_build(c2, &errs);
    CU_ASSERT_EQUAL(errs.n, 0);
    clock_now = T0 + 30 * MIN;
    CU_ASSERT_EQUAL(fire(&m, &next), 1); /* looked at, parked */
    CU_ASSERT_EQUAL(m.n, 0);
    CU_ASSERT_EQUAL(next, clock_now + 60 * MIN);
    t = timeline(ann);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "is not configured or not enabled"));
    free(t);
    og__journeys_unref(js);
    og__conf_free(c2);
    js = on; /* back */
    clock_now = T0 + 90 * MIN;
    CU_ASSERT_EQUAL(fire(&m, &next), 1);
    CU_ASSERT_STRING_EQUAL(m.types[0], "message.send");
    og__errlist_free(&errs);
    teardown();
}

/* Timeline entries and finished runs go after timeline_retention; an
 * active run stays. */
static void test_retention(void)
{
    og__store_opts_t o = {NULL, OG__DURABLE_PROCESS, 3600 * 1000,
                          24 * 3600 * 1000};
    struct made m;
    uint64_t next, count = 0;
    char ann[40], bob[40], *t, err[256], *state;

    setup();
    og__store_close(st);
    state = og__xasprintf("%s/state", dir);
    o.dir = state;
    st = og__store_open_sqlite(&o, err, sizeof(err));
    free(state);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    clock_now = T0;
    accept_ev(event("cart.updated", "ann@example.com", "c-1", NULL), ann);
    accept_ev(event("order.placed", "ann@example.com", NULL, "c-1"), ann);
    clock_now = T0 + 2 * 24 * 60 * MIN;
    accept_ev(event("cart.updated", "bob@example.com", "c-2", NULL), bob);
    CU_ASSERT_EQUAL(fire(&m, &next), 0);
    /* pruning a day and a half after Ann's events, 3 days after T0 */
    CU_ASSERT_EQUAL(
        st->ops->prune(st, T0 + 3 * 24 * 60 * MIN - 3600 * 1000, 1000, &count),
        OG_OK);
    t = timeline(ann);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"entries\":[],\"runs\":[]"));
    free(t);
    t = timeline(bob);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "journey.started"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"state\":\"active\""));
    free(t);
    teardown();
}

static void test_config_problems(void)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;
    og__journeys_t *j;
    const char **names;

    static const char *const subdirs[] = {"templates", "journeys.d",
                                          "channels.d", NULL};

    tu_fresh(dir, subdirs);
    put("omnigate.conf", "[journeys]\nquiet_hours = 22:00\ncolour = red\n");
    put("channels.d/email.conf", "[channel]\nplugin = dropdir\n");
    put("templates/t.conf", "[template]\nvars = customer, cart\n"
                            "[default]\ntext = {{cart.id}}\n");
    put("journeys.d/auto.conf", "[journey]\nenabled = auto\n"
                                "requires = web, email\ntrigger = x.y\n"
                                "[step a]\nemit = x.z\n");
    put("journeys.d/on.conf", "[journey]\nenabled = auto\nrequires = email\n"
                              "trigger = x.y\n[step a]\nemit = x.z\n");
    put("journeys.d/bad.conf",
        "[journey]\ntrigger = Not A Type\nwhen = props.total >\n"
        "colour = blue\npurpose = spam\n"
        "[step a]\nsend = t\nchannels = email, Bad Name\nif = total > 3\n"
        "[step b]\nat = 9am\ncall = nowhere\n"
        "[step c]\ntype = x.y\nemit = a.b\n");
    put("journeys.d/empty.conf", "[journey]\ntrigger = a.b\n");
    c = og__conf_load(dir, NULL, &errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    j = og__journeys_build(c, &errs);
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 2, "quiet_hours"));
    CU_ASSERT_TRUE(has_error(&errs, "omnigate.conf", 3,
                             "unknown key 'colour' in "
                             "[journeys]"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 2,
                             "trigger: 'Not' is not an event type"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 3, "when: "));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 4,
                             "unknown key 'colour' in [journey]"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 5,
                             "purpose: expected marketing or transactional"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 7,
                             "send: template 't' uses 'cart', which a "
                             "journey does "
                             "not give"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 8,
                             "channels: 'Bad' is not a channel name"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 9,
                             "if: 'total' must start with event., customer. "
                             "or journey."));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 11,
                             "at: expected a local time HH:MM"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 12,
                             "call: no channel instance 'nowhere'"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/bad.conf", 14,
                             "type: the event type of a call step"));
    CU_ASSERT_TRUE(has_error(&errs, "journeys.d/empty.conf", 1,
                             "journey has no [step NAME] section"));
    /* enabled = auto: on when the channels it requires are */
    CU_ASSERT_EQUAL(og__journeys_enabled(j, &names), 3); /* bad, empty, on */
    CU_ASSERT_STRING_EQUAL(names[2], "on");
    og__journeys_unref(j);
    og__conf_free(c);
    og__errlist_free(&errs);
}

int main(void)
{
    CU_pSuite s;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    s = CU_add_suite("journeys", NULL, NULL);
    CU_add_test(s, "local times of day (ICU, DST)", test_tz);
    CU_add_test(s, "a run waits, sends on a reachable channel, follows up",
                test_run_waits_sends_and_follows);
    CU_add_test(s, "cancel by entity, races, restart", test_cancel_and_restart);
    CU_add_test(s, "a journey disabled with runs waiting",
                test_journey_removed);
    CU_add_test(s, "timeline retention", test_retention);
    CU_add_test(s, "configuration problems", test_config_problems);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
