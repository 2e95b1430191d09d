/*
 * bench/journeys/fire.c: N pending journey steps (default 1,000,000) in
 * the store, fired on one thread.
 *
 *   fire DIR [N]
 *
 * DIR holds the configuration (written here: an email channel, a
 * template, the abandoned-cart journey: wait 30m, if customer.orders == 0,
 * send the reminder with the cart's lines) and the store (state/). The
 * store is filled through the real commit path: N cart.updated events of
 * N customers (a verified email each), every one starting a run in the
 * accepting commit. Then the clock moves 31 minutes and the steps fire as
 * the daemon fires them (og__store_ops.journeys_fire, 2048 per
 * transaction, durability = power): for each, the customer's profile is
 * read, the condition checked, the channel chosen (address, consent), the
 * template rendered, the message.send stored with its outbox row and the
 * run advanced, with two timeline rows. Prints steps per second.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config/conf.h"
#include "event/event.h"
#include "domain/journeys.h"
#include "store/store.h"
#include "testutil.h"
#include "base/util.h"

#define FILL_BATCH 1000
#define T0 1790000000000ull

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_file(const char *dir, const char *rel, const char *text)
{
    char *p = og__xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(p, "w");

    if (f == NULL || fputs(text, f) < 0) {
        perror(p);
        exit(1);
    }
    fclose(f);
    free(p);
}

static void mkdirs(const char *dir, const char *rel)
{
    char *p = og__xasprintf("%s/%s", dir, rel);

    mkdir(p, 0755);
    free(p);
}

static og__journeys_t *js;
static uint64_t clock_ms;

static og_err_t fire_fn(void *data, const og__fire_env_t *env,
                        const og__run_t *run, og__step_result_t *res,
                        og__store_item_t *ev)
{
    og_err_t rc = og__journeys_fire(js, env, run, clock_ms, res);

    (void)data;
    if (rc == OG_OK && res->body != NULL) {
        ev->targets = res->targets;
        ev->ntargets = res->ntargets;
    }
    return rc;
}

/* N runs through the real commit path, FILL_BATCH events a commit. */
static void fill(og__store_t *st, uint64_t n)
{
    og_event_t *evs[FILL_BATCH];
    uint64_t i = 0, t0 = now_ns();
    size_t b, k;

    while (i < n) {
        b = n - i < FILL_BATCH ? (size_t)(n - i) : FILL_BATCH;
        for (k = 0; k < b; k++) {
            char email[64], cart[32];

            snprintf(email, sizeof(email), "c%08llu@example.com",
                     (unsigned long long)(i + k));
            snprintf(cart, sizeof(cart), "cart-%llu",
                     (unsigned long long)(i + k));
            evs[k] = tu_shop_event("cart.updated", email, cart, NULL);
        }
        if (tu_commit_events(st, js, evs, b, T0, NULL) != 0) {
            fprintf(stderr, "fire: the fill failed\n");
            exit(1);
        }
        i += b;
        if (i % 100000 == 0)
            fprintf(stderr, "  %llu runs pending\n", (unsigned long long)i);
    }
    fprintf(stderr, "filled %llu runs in %.1f s\n", (unsigned long long)n,
            (double)(now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    og__errlist_t errs = {NULL, 0};
    og__store_opts_t o = {NULL, OG__DURABLE_POWER, 24ull * 3600 * 1000, 0};
    static const og__consent_rules_t consent = {0, NULL, 0};
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000, total = 0;
    uint64_t t0, next = 0, rounds = 0;
    og__conf_t *conf;
    og__store_t *st;
    char err[256], *state;
    size_t fired;

    if (argc < 2) {
        fprintf(stderr, "usage: fire DIR [N]\n");
        return 64;
    }
    mkdirs(argv[1], "");
    mkdirs(argv[1], "channels.d");
    mkdirs(argv[1], "templates");
    mkdirs(argv[1], "journeys.d");
    write_file(argv[1], "omnigate.conf", "[daemon]\n");
    write_file(argv[1], "channels.d/email.conf", "[channel]\nplugin = email\n");
    write_file(argv[1], "templates/cart_reminder.conf",
               "[template]\nvars = customer, event\n"
               "[default]\nsubject = Your cart is waiting\n"
               "text = Your cart: {{#event.props.lines}}{{qty}} x "
               "{{name}}; {{/event.props.lines}}\n"
               "html = <p>Your cart:</p><ul>{{#event.props.lines}}<li>{{qty}} "
               "x {{name}}</li>{{/event.props.lines}}</ul>\n");
    write_file(argv[1], "journeys.d/abandoned_cart.conf",
               "[journey]\ntrigger = cart.updated\nentity = entity.id\n"
               "concurrency = restart\ncancel_on = order.placed\n"
               "channels = email\npurpose = transactional\n"
               "[step remind]\nwait = 30m\nif = customer.orders == 0\n"
               "send = cart_reminder\n");
    conf = og__conf_load(argv[1], NULL, &errs);
    if (conf == NULL || (js = og__journeys_build(conf, &errs), errs.n > 0)) {
        fprintf(stderr, "fire: %s\n", errs.n ? errs.v[0] : "config");
        return 1;
    }
    state = og__xasprintf("%s/state", argv[1]);
    o.dir = state;
    st = og__store_open_sqlite(&o, err, sizeof(err));
    if (st == NULL) {
        fprintf(stderr, "fire: %s\n", err);
        return 1;
    }
    fill(st, n);
    clock_ms = T0 + 31 * 60000;
    t0 = now_ns();
    do {
        if (st->ops->journeys_fire(st, clock_ms, 2048, fire_fn, NULL, NULL,
                                   &consent, &fired, &next, err,
                                   sizeof(err)) != OG_OK) {
            fprintf(stderr, "fire: %s\n", err);
            return 1;
        }
        total += fired;
        rounds++;
    } while (fired > 0);
    {
        double s = (double)(now_ns() - t0) / 1e9;

        printf("journey steps fired: %llu in %.2f s (%llu transactions): "
               "%.0f steps/s\n",
               (unsigned long long)total, s, (unsigned long long)rounds,
               (double)total / s);
    }
    og__store_close(st);
    og__journeys_unref(js);
    og__conf_free(conf);
    og__errlist_free(&errs);
    free(state);
    return total == n ? 0 : 1;
}
