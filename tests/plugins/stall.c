/*
 * stall.c: a destination that blocks the event loop for stall_ms in send()
 * (a plugin calling something blocking on the loop thread), for the test
 * of /health's stalled-loop report (issue 16). Built with the public SDK.
 */
#include <time.h>

#include <omnigate/sdk.h>

struct stall {
    int64_t ms;
};

static const og_config_field_t config[] = {
    {"stall_ms",
     OG_CFG_INT,
     "1500",
     0,
     "how long send() blocks the loop",
     0,
     60000,
     {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

static og_err_t stall_init(og_plugin_ctx_t *ctx, void **state)
{
    static struct stall s;

    og_config_get_int(ctx, "stall_ms", &s.ms);
    *state = &s;
    return OG_OK;
}

static og_err_t stall_send(void *state, const og_event_t *ev, og_delivery_t *d)
{
    const struct stall *s = state;
    struct timespec ts = {(time_t)(s->ms / 1000),
                          (long)(s->ms % 1000) * 1000000L};

    (void)ev;
    (void)d;
    nanosleep(&ts, NULL); /* what a plugin must never do */
    return OG_OK;
}

static void stall_destroy(void *state)
{
    (void)state; /* static */
}

static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,
    .name = "stall",
    .version = "0.1.0",
    .description = "blocks the loop in send(), for the tests",
    .caps = OG_CAP_EGRESS,
    .config = config,
    .init = stall_init,
    .send = stall_send,
    .destroy = stall_destroy,
};

OG_PLUGIN_DEFINE(&def)
