/*
 * fake.c: plugins for the loader and lifecycle tests, one per -D variant.
 * Each variant is a real shared object built with the public SDK only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omnigate/sdk.h>

struct fake {
    og_plugin_ctx_t *ctx;
    og_timer_t *timer;
    og_delivery_t *pending;
    uint64_t stop_delay;
};

static const og_config_field_t fake_config[] = {
    {"token",
     OG_CFG_STRING,
     NULL,
     OG_CFG_REQUIRED | OG_CFG_SECRET,
     "access token",
     0,
     0,
     {NULL, NULL}},
    {"greeting", OG_CFG_STRING, "hello", 0, "text to log", 0, 0, {NULL, NULL}},
    {"count", OG_CFG_INT, "3", 0, "a number", 1, 100, {NULL, NULL}},
    {"verbose", OG_CFG_BOOL, "no", 0, "log more", 0, 0, {NULL, NULL}},
    {"stop_delay",
     OG_CFG_DURATION,
     "0",
     0,
     "time stop() takes",
     0,
     0,
     {NULL, NULL}},
    {"limit", OG_CFG_SIZE, "1M", 0, "a size", 0, 0, {NULL, NULL}},
    {"pin",
     OG_CFG_INT,
     NULL,
     OG_CFG_SECRET,
     "a secret number",
     0,
     0,
     {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

static og_err_t fake_init(og_plugin_ctx_t *ctx, void **state)
{
    struct fake *f;
    const char *greeting;
    int64_t count = 0;

    if (og_config_get_str(ctx, "greeting", &greeting) != OG_OK ||
        og_config_get_int(ctx, "count", &count) != OG_OK)
        return OG_ERR_CONFIG;
#ifdef FAKE_INIT_FAIL
    /* A timer started before failing must be cleaned up by the host. */
    og_timer_start(ctx, 100000, 0, NULL, NULL);
    og_log(ctx, OG_LOG_ERROR, "cannot reach backend");
    return OG_ERR_IO;
#endif
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return OG_ERR_NOMEM;
    f->ctx = ctx;
    og_config_get_duration_ms(ctx, "stop_delay", &f->stop_delay);
    og_log(ctx, OG_LOG_INFO, "%s x%lld", greeting, (long long)count);
    *state = f;
    return OG_OK;
}

static og_err_t fake_start(void *state)
{
    struct fake *f = state;

    og_log(f->ctx, OG_LOG_INFO, "fake started");
#ifdef FAKE_START_FAIL
    return OG_ERR_IO;
#else
    return OG_OK;
#endif
}

static void complete_later(og_timer_t *t, void *data)
{
    struct fake *f = data;

    og_timer_stop(t);
    f->timer = NULL;
    if (f->pending != NULL) {
        og_delivery_t *d = f->pending;
        f->pending = NULL;
        og_delivery_complete(d, OG_OK, NULL);
    }
}

static og_err_t fake_send(void *state, const og_event_t *ev, og_delivery_t *d)
{
    struct fake *f = state;
    const char *type = og_event_type(ev);

    og_counter_add(f->ctx, "sent", 1);
    if (strcmp(type, "test.retry") == 0)
        return OG_ERR_RETRY;
    if (strcmp(type, "test.reject") == 0)
        return OG_ERR_REJECTED;
    if (strcmp(type, "test.stuck") == 0)
        return OG_PENDING; /* never completed: a hung remote side */
    if (strcmp(type, "test.pending") == 0 && f->pending == NULL) {
        f->pending = d;
        f->timer = og_timer_start(f->ctx, 50, 0, complete_later, f);
        return OG_PENDING;
    }
    return OG_OK;
}

static void stop_later(og_timer_t *t, void *data)
{
    struct fake *f = data;

    og_timer_stop(t);
    og_log(f->ctx, OG_LOG_INFO, "slow stop finished");
    og_stopped(f->ctx);
}

static og_err_t fake_stop(void *state)
{
    struct fake *f = state;

#ifdef FAKE_SLOW_STOP
    og_timer_start(f->ctx, f->stop_delay, 0, stop_later, f);
    return OG_PENDING;
#else
    (void)stop_later;
    og_log(f->ctx, OG_LOG_INFO, "fake stopping");
    return OG_OK;
#endif
}

static void fake_destroy(void *state)
{
    struct fake *f = state;

    og_log(f->ctx, OG_LOG_INFO, "fake destroyed");
    free(f);
}

OG_UNUSED static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,
#if defined(FAKE_GOOD)
    .name = "good",
#elif defined(FAKE_ABI_MAJOR)
    .name = "abi_major",
#elif defined(FAKE_ABI_MINOR)
    .name = "abi_minor",
#elif defined(FAKE_INIT_FAIL)
    .name = "init_fail",
#elif defined(FAKE_START_FAIL)
    .name = "start_fail",
#elif defined(FAKE_SLOW_STOP)
    .name = "slow_stop",
#elif defined(FAKE_SHORT_DEF)
    .name = "short_def",
#else
    .name = "fake",
#endif
    .version = "1.0.0",
    .description = "test plugin",
    .caps = OG_CAP_INGRESS | OG_CAP_EGRESS,
    .config = fake_config,
    .init = fake_init,
    .start = fake_start,
    .send = fake_send,
    .stop = fake_stop,
    .destroy = fake_destroy,
};

#if defined(FAKE_ABI_MAJOR) || defined(FAKE_ABI_MINOR) ||                      \
    defined(FAKE_SHORT_DEF)
static og_plugin_def_t patched;

static const og_plugin_def_t *patch(void)
{
    patched = def;
#if defined(FAKE_ABI_MAJOR)
    patched.abi_major = OG_SDK_ABI_MAJOR + 1;
#elif defined(FAKE_ABI_MINOR)
    patched.abi_minor = OG_SDK_ABI_MINOR + 1;
#else
    patched.struct_size = 24;
#endif
    return &patched;
}
OG_PLUGIN_DEFINE(patch())
#elif defined(FAKE_NULL_DEF)
OG_PLUGIN_DEFINE(NULL)
#elif defined(FAKE_NO_ENTRY)
/* Exports nothing an omnigate host looks for. */
OG_HIDDEN const og_host_api_t *og__host = NULL;
OG_EXPORT const og_plugin_def_t *not_the_entry(void);
const og_plugin_def_t *not_the_entry(void)
{
    return &def;
}
#else
OG_PLUGIN_DEFINE(&def)
#endif
