/*
 * bench_source.c: emits `count` copies of a ~325-byte order.placed envelope
 * through og_emit() as fast as the gateway takes them (batches from an
 * idle-driven timer; on OG_ERR_BUSY it yields to the loop and retries), so
 * the whole core path is measured: validation and stamping, the accept
 * queue, routing, the channel queue and send().
 *
 * With envelope = message it emits message.send commands instead (a
 * template, the email channel, one of `customers` customers by a verified
 * email address, an order with two lines): the core renders each one and
 * the email channel submits it over SMTP (bench/email/run).
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omnigate/sdk.h>

struct src {
    og_plugin_ctx_t *ctx;
    int64_t count, sent;
    og_timer_t *t;
    uint8_t env[512];
    size_t len;
    uint8_t *vendor; /* the 8 characters after "T-" of source.vendor_id */
    int message;     /* envelope = message */
    int64_t customers;
};

static const og_config_field_t config[] = {
    {"count",
     OG_CFG_INT,
     "1000000",
     0,
     "events to emit",
     1,
     1000000000,
     {NULL, NULL}},
    {"envelope",
     OG_CFG_STRING,
     "order",
     0,
     "order (order.placed) or message (message.send commands)",
     0,
     0,
     {NULL, NULL}},
    {"customers",
     OG_CFG_INT,
     "10000",
     0,
     "envelope = message: distinct customers",
     1,
     1000000,
     {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

/* A realistic POS order: ids, location, entity, money, three lines. */
static size_t build(uint8_t *out)
{
    static const char body[] =
        "\x88\xa1v\x01\xa4type\xacorder.placed"
        "\xa6source\x82\xa7"
        "channel\xa3pos\xa9vendor_id\xa8T-888123"
        "\xa3ids\x91\x83\xa4kind\xa7loyalty\xa5value\xa6L-4411\xa8verified\xc3"
        "\xa8location\xa8store-12"
        "\xa6"
        "entity\x83\xa4kind\xa5order\xa2id\xa8o-981234\xa7version\x01"
        "\xa8occurred\xcf\x00\x00\x01\x9a\x00\x00\x00\x00"
        "\xa5props\x83\xa5total\x82\xa6"
        "amount\xcd\x13\x7e\xa8"
        "currency\xa3"
        "EUR"
        "\xa8"
        "currency\xa3"
        "EUR"
        "\xa5lines\x93"
        "\x83\xa3sku\xa8"
        "A-100-XL\xa3qty\x02\xa5price\x82\xa6"
        "amount\xcd\x07"
        "\xd0\xa8"
        "currency\xa3"
        "EUR"
        "\x83\xa3sku\xa8"
        "B-200-SM\xa3qty\x01\xa5price\x82\xa6"
        "amount\xcd\x03"
        "\xe8\xa8"
        "currency\xa3"
        "EUR"
        "\x83\xa3sku\xa8"
        "C-300-MD\xa3qty\x01\xa5price\x82\xa6"
        "amount\xcd\x03"
        "\x1e\xa8"
        "currency\xa3"
        "EUR";

    memcpy(out, body, sizeof(body) - 1);
    return sizeof(body) - 1;
}

static og_err_t src_init(og_plugin_ctx_t *ctx, void **state)
{
    struct src *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return OG_ERR_NOMEM;
    s->ctx = ctx;
    og_config_get_int(ctx, "count", &s->count);
    og_config_get_int(ctx, "customers", &s->customers);
    {
        const char *env = "order";

        og_config_get_str(ctx, "envelope", &env);
        s->message = strcmp(env, "message") == 0;
    }
    s->len = build(s->env);
    *state = s;
    return OG_OK;
}

/* A message.send command for customer sent % customers. */
static og_err_t emit_message(struct src *s)
{
    static const uint8_t lines[] = "\x92\x83\xa4name\xa5"
                                   "Boots\xa3qty\x01\xa3sku\xa8"
                                   "A-100-XL"
                                   "\x83\xa4name\xa5Socks\xa3qty\x03\xa3sku\xa8"
                                   "B-200-SM";
    og_event_builder_t *b = og_event_builder_create(s->ctx, "message.send");
    char email[64], id[32];
    og_err_t rc = OG_OK;

    if (b == NULL)
        return OG_ERR_NOMEM;
    snprintf(email, sizeof(email), "c%06lld@bench.example",
             (long long)(s->sent % s->customers));
    snprintf(id, sizeof(id), "o-%lld", (long long)s->sent);
    rc |= og_event_builder_set_str(b, "source.channel", "pos");
    rc |= og_event_builder_add_identity(b, "email", email, 1);
    rc |= og_event_builder_set_str(b, "entity.kind", "order");
    rc |= og_event_builder_set_str(b, "entity.id", id);
    rc |= og_event_builder_set_str(b, "props.template", "receipt");
    rc |= og_event_builder_set_str(b, "props.purpose", "transactional");
    rc |= og_event_builder_set_str(b, "props.channel", "email");
    rc |= og_event_builder_set_msgpack(b, "props.lines", lines,
                                       sizeof(lines) - 1);
    if (rc != OG_OK) {
        og_event_builder_destroy(b);
        return OG_ERR_INVALID;
    }
    return og_event_builder_emit(b);
}

static void pump(og_timer_t *t, void *data)
{
    struct src *s = data;
    int i;

    for (i = 0; i < 4096 && s->sent < s->count; i++) {
        og_err_t rc;
        char v[9];

        /* a vendor id of its own for every event: repeats would be
         * answered as duplicates by the store's deduplication */
        snprintf(v, sizeof(v), "%06lld", (long long)(s->sent % 1000000));
        if (s->vendor != NULL)
            memcpy(s->vendor, v, 6);
        rc = s->message ? emit_message(s) : og_emit(s->ctx, s->env, s->len);

        if (rc == OG_ERR_BUSY)
            return; /* let the dispatcher run; the timer repeats */
        if (rc != OG_OK) {
            og_log(s->ctx, OG_LOG_ERROR, "emit failed: %s", og_strerror(rc));
            s->sent = s->count;
            break;
        }
        s->sent++;
    }
    if (s->sent >= s->count) {
        og_log(s->ctx, OG_LOG_NOTICE, "bench: emitted %lld events of %zu bytes",
               (long long)s->sent, s->len);
        og_timer_stop(t);
        s->t = NULL;
    }
}

static og_err_t src_start(void *state)
{
    struct src *s = state;

    s->vendor = memmem(s->env, s->len, "T-888123", 8);
    if (s->vendor != NULL)
        s->vendor += 2;
    s->t = og_timer_start(s->ctx, 100, 1, pump, s);
    return s->t ? OG_OK : OG_ERR_NOMEM;
}

static og_err_t src_stop(void *state)
{
    struct src *s = state;

    og_timer_stop(s->t);
    s->t = NULL;
    return OG_OK;
}

static void src_destroy(void *state)
{
    free(state);
}

static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,     .name = "bench_source",
    .version = "1.0.0",     .description = "benchmark event source",
    .caps = OG_CAP_INGRESS, .config = config,
    .init = src_init,       .start = src_start,
    .stop = src_stop,       .destroy = src_destroy,
};

OG_PLUGIN_DEFINE(&def)
