/*
 * bench_sink.c: a null destination. Counts deliveries; after `count` of
 * them it logs the rate measured from the first delivery to the last.
 */
#include <stdlib.h>
#include <time.h>

#include <omnigate/sdk.h>

struct sink {
    og_plugin_ctx_t *ctx;
    int64_t count, got;
    struct timespec first;
};

static const og_config_field_t config[] = {
    {"count",
     OG_CFG_INT,
     "1000000",
     0,
     "deliveries to time",
     1,
     1000000000,
     {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

static og_err_t sink_init(og_plugin_ctx_t *ctx, void **state)
{
    struct sink *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return OG_ERR_NOMEM;
    s->ctx = ctx;
    og_config_get_int(ctx, "count", &s->count);
    *state = s;
    return OG_OK;
}

static og_err_t sink_send(void *state, const og_event_t *ev, og_delivery_t *d)
{
    struct sink *s = state;

    (void)ev;
    (void)d;
    if (s->got++ == 0)
        clock_gettime(CLOCK_MONOTONIC, &s->first);
    if (s->got == s->count) {
        struct timespec now;
        double secs;

        clock_gettime(CLOCK_MONOTONIC, &now);
        secs = (double)(now.tv_sec - s->first.tv_sec) +
               (double)(now.tv_nsec - s->first.tv_nsec) / 1e9;
        og_log(s->ctx, OG_LOG_NOTICE,
               "bench: delivered %lld events in %.3f s: %.0f events/s",
               (long long)s->got, secs, (double)s->got / secs);
    }
    return OG_OK;
}

static void sink_destroy(void *state)
{
    free(state);
}

static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,      .name = "bench_sink",
    .version = "1.0.0",      .description = "benchmark null destination",
    .caps = OG_CAP_EGRESS,   .config = config,
    .init = sink_init,       .send = sink_send,
    .destroy = sink_destroy,
};

OG_PLUGIN_DEFINE(&def)
