/*
 * webhook.c: a test plugin that takes events over HTTP on the daemon's
 * public listener, as the web and POS channels will: a Bearer token checked
 * by the route's auth hook, the event type from X-Event-Type, the body kept
 * in props.body, X-Event-Id and X-Vendor-Id as the envelope's id and
 * source.vendor_id. The answer waits for durable acceptance
 * (og_emit_async): 202 with the event id, 409 for a conflict, 503 with
 * Retry-After when the store is busy, 400 for an invalid event. With
 * delay = N ms it answers that much later still. A body sent as
 * Content-Type: application/msgpack is emitted as the whole envelope, so
 * that tests can send events with identity keys, traits and totals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omnigate/sdk.h>

struct hook {
    og_plugin_ctx_t *ctx;
    const char *token;
    const char *path;
    uint64_t max_body;
    uint64_t delay;
};

struct later {
    og_http_req_t *req;
    struct hook *h;
    int status;
    char id[72];
};

static const og_config_field_t config[] = {
    {"token",
     OG_CFG_STRING,
     NULL,
     OG_CFG_REQUIRED | OG_CFG_SECRET,
     "Bearer token senders must present",
     0,
     0,
     {NULL, NULL}},
    {"path", OG_CFG_STRING, "/hook", 0, "path to mount", 0, 0, {NULL, NULL}},
    {"max_body", OG_CFG_SIZE, "64k", 0, "largest body", 0, 0, {NULL, NULL}},
    {"delay", OG_CFG_DURATION, "0", 0, "answer later", 0, 0, {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

static og_err_t hook_init(og_plugin_ctx_t *ctx, void **state)
{
    struct hook *h = calloc(1, sizeof(*h));

    if (h == NULL)
        return OG_ERR_NOMEM;
    h->ctx = ctx;
    og_config_get_str(ctx, "token", &h->token);
    og_config_get_str(ctx, "path", &h->path);
    og_config_get_size(ctx, "max_body", &h->max_body);
    og_config_get_duration_ms(ctx, "delay", &h->delay);
    *state = h;
    return OG_OK;
}

static og_err_t auth(void *data, const og_http_req_t *req)
{
    struct hook *h = data;
    const char *v = og_http_req_header(req, "Authorization");

    if (v == NULL || strncmp(v, "Bearer ", 7) != 0 ||
        strcmp(v + 7, h->token) != 0)
        return OG_ERR_REJECTED;
    return OG_OK;
}

static void answer(struct later *l)
{
    static const char *const retry[] = {"Retry-After: 1", NULL};
    char body[160];

    if (l->status == 202)
        snprintf(body, sizeof(body), "{\"id\":\"%s\"}", l->id);
    else
        snprintf(body, sizeof(body), "{\"error\":\"%s\"}",
                 l->status == 400   ? "invalid event"
                 : l->status == 409 ? "conflict"
                                    : "busy");
    og_http_respond(l->req, l->status, "application/json",
                    l->status == 429 || l->status == 503 ? retry : NULL, body,
                    strlen(body));
    free(l);
}

static void answer_later(og_timer_t *t, void *data)
{
    og_timer_stop(t);
    answer(data);
}

static void settle(struct later *l)
{
    if (l->h->delay > 0 &&
        og_timer_start(l->h->ctx, l->h->delay, 0, answer_later, l) != NULL)
        return;
    answer(l);
}

static int status_of(og_err_t rc)
{
    return rc == OG_OK             ? 202
           : rc == OG_ERR_CONFLICT ? 409
           : rc == OG_ERR_BUSY     ? 503
           : rc == OG_ERR_STOPPING ? 503
           : rc == OG_ERR_IO       ? 503
                                   : 400;
}

static void committed(void *data, og_err_t rc, const char *event_id)
{
    struct later *l = data;

    l->status = status_of(rc);
    if (event_id != NULL)
        snprintf(l->id, sizeof(l->id), "%s", event_id);
    settle(l);
}

static void handle(void *data, og_http_req_t *req)
{
    struct hook *h = data;
    const char *type = og_http_req_header(req, "X-Event-Type");
    const char *id = og_http_req_header(req, "X-Event-Id");
    const char *vendor = og_http_req_header(req, "X-Vendor-Id");
    og_event_builder_t *b;
    size_t len;
    const uint8_t *body = og_http_req_body(req, &len);
    struct later *l = calloc(1, sizeof(*l));
    char *text;
    og_err_t rc;

    l->req = req;
    l->h = h;
    {
        const char *ct = og_http_req_header(req, "Content-Type");

        if (ct != NULL && strcmp(ct, "application/msgpack") == 0) {
            og_counter_add(h->ctx, "requests", 1);
            rc = og_emit_async(h->ctx, body, len, committed, l);
            if (rc != OG_OK) {
                l->status = rc == OG_ERR_BUSY ? 429 : status_of(rc);
                settle(l);
            }
            return;
        }
    }
    b = type ? og_event_builder_create(h->ctx, type) : NULL;
    if (b == NULL) {
        l->status = 400;
        answer(l);
        return;
    }
    og_counter_add(h->ctx, "requests", 1);
    text = malloc(len + 1);
    memcpy(text, body, len);
    text[len] = '\0';
    og_event_builder_set_str(b, "props.body", text);
    free(text);
    if (id != NULL)
        og_event_builder_set_str(b, "id", id);
    if (vendor != NULL)
        og_event_builder_set_str(b, "source.vendor_id", vendor);
    rc = og_event_builder_emit_async(b, committed, l);
    if (rc != OG_OK) {
        l->status = rc == OG_ERR_BUSY ? 429 : status_of(rc);
        settle(l);
    }
}

static og_err_t hook_start(void *state)
{
    struct hook *h = state;
    og_http_route_t r = OG_HTTP_ROUTE_INIT;

    r.method = "POST";
    r.path = h->path;
    r.max_body = (size_t)h->max_body;
    r.handler = handle;
    r.auth = auth;
    r.data = h;
    return og_http_mount(h->ctx, &r);
}

static void hook_destroy(void *state)
{
    free(state);
}

static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,      .name = "webhook",
    .version = "1.0.0",      .description = "events in over HTTP (test plugin)",
    .caps = OG_CAP_INGRESS,  .config = config,
    .init = hook_init,       .start = hook_start,
    .destroy = hook_destroy,
};

OG_PLUGIN_DEFINE(&def)
