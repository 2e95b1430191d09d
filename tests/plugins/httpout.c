/*
 * httpout.c: a test plugin that delivers events to an HTTP endpoint, as
 * the web channel's outbound webhooks will: one POST per event with the
 * envelope as MessagePack and the delivery's idempotency key, through the
 * host's HTTP client. 2xx is delivered; 408, 429 and 5xx are transient
 * (Retry-After honoured); other statuses are permanent; a transport error
 * or a timeout is transient.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omnigate/sdk.h>

struct out {
    og_plugin_ctx_t *ctx;
    const char *url;
    uint64_t timeout_ms;
};

static const og_config_field_t config[] = {
    {"url",
     OG_CFG_STRING,
     NULL,
     OG_CFG_REQUIRED,
     "endpoint to POST to",
     0,
     0,
     {NULL, NULL}},
    {"timeout", OG_CFG_DURATION, "2s", 0, "per request", 0, 0, {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

static og_err_t out_init(og_plugin_ctx_t *ctx, void **state)
{
    struct out *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return OG_ERR_NOMEM;
    o->ctx = ctx;
    og_config_get_str(ctx, "url", &o->url);
    og_config_get_duration_ms(ctx, "timeout", &o->timeout_ms);
    *state = o;
    return OG_OK;
}

static void done(void *data, const og_http_response_t *r)
{
    og_delivery_t *d = data;
    char why[128];
    size_t len;
    const char *ra;

    if (r->result != OG_OK) {
        og_delivery_complete(d, OG_ERR_RETRY, r->error);
        return;
    }
    if (r->status >= 200 && r->status < 300) {
        og_delivery_complete(d, OG_OK, NULL);
        return;
    }
    snprintf(why, sizeof(why), "HTTP %d", r->status);
    if (r->status == 408 || r->status == 429 || r->status >= 500) {
        ra = og_http_header(r, "Retry-After", &len);
        if (ra != NULL)
            og_delivery_retry_after(d, strtoull(ra, NULL, 10) * 1000);
        og_delivery_complete(d, OG_ERR_RETRY, why);
        return;
    }
    og_delivery_complete(d, OG_ERR_REJECTED, why);
}

static og_err_t out_send(void *state, const og_event_t *ev, og_delivery_t *d)
{
    struct out *o = state;
    og_http_request_t req = OG_HTTP_REQUEST_INIT;
    char key[200], id[120];
    const char *headers[4];
    size_t len;
    og_err_t rc;

    snprintf(key, sizeof(key), "Idempotency-Key: %s", og_delivery_key(d));
    snprintf(id, sizeof(id), "X-Event-Id: %s", og_event_id(ev));
    headers[0] = "Content-Type: application/msgpack";
    headers[1] = key;
    headers[2] = id;
    headers[3] = NULL;
    req.method = "POST";
    req.url = o->url;
    req.headers = headers;
    req.body = og_event_data(ev, &len);
    req.body_len = len;
    req.timeout_ms = (uint32_t)o->timeout_ms;
    rc = og_http_request(o->ctx, &req, done, d);
    return rc == OG_OK ? OG_PENDING : OG_ERR_RETRY;
}

static void out_destroy(void *state)
{
    free(state);
}

static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,     .name = "httpout",
    .version = "1.0.0",     .description = "events out over HTTP (test plugin)",
    .caps = OG_CAP_EGRESS,  .config = config,
    .init = out_init,       .send = out_send,
    .destroy = out_destroy,
};

OG_PLUGIN_DEFINE(&def)
