/*
 * webhook.c: a test plugin that takes events over HTTP on the daemon's
 * public listener, as the web and POS channels will: a Bearer token checked
 * by the route's auth hook, the event type from X-Event-Type, the body kept
 * in props.body, and the HTTP answer chosen from og_emit()'s result (202,
 * 400, 429 with Retry-After, 503). With async = yes it answers 30 ms later,
 * like a plugin waiting for durable acceptance.
 */
#include <stdlib.h>
#include <string.h>

#include <omnigate/sdk.h>

struct hook {
    og_plugin_ctx_t *ctx;
    const char *token;
    const char *path;
    uint64_t max_body;
    int async;
};

struct later {
    og_http_req_t *req;
    int status;
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
    {"async", OG_CFG_BOOL, "no", 0, "answer later", 0, 0, {NULL, NULL}},
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
    og_config_get_bool(ctx, "async", &h->async);
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

static void answer(og_http_req_t *req, int status)
{
    static const char *const retry[] = {"Retry-After: 1", NULL};
    const char *body = status == 202   ? "{\"accepted\":true}"
                       : status == 400 ? "{\"error\":\"invalid event\"}"
                                       : "{\"error\":\"busy\"}";

    og_http_respond(req, status, "application/json",
                    status == 429 || status == 503 ? retry : NULL, body,
                    strlen(body));
}

static void answer_later(og_timer_t *t, void *data)
{
    struct later *l = data;

    og_timer_stop(t);
    answer(l->req, l->status);
    free(l);
}

static void handle(void *data, og_http_req_t *req)
{
    struct hook *h = data;
    const char *type = og_http_req_header(req, "X-Event-Type");
    og_event_builder_t *b;
    size_t len;
    const uint8_t *body = og_http_req_body(req, &len);
    char *text;
    og_err_t rc;
    int status;

    b = type ? og_event_builder_create(h->ctx, type) : NULL;
    if (b == NULL) {
        answer(req, 400);
        return;
    }
    text = malloc(len + 1);
    memcpy(text, body, len);
    text[len] = '\0';
    og_event_builder_set_str(b, "props.body", text);
    free(text);
    rc = og_event_builder_emit(b);
    status = rc == OG_OK             ? 202
             : rc == OG_ERR_BUSY     ? 429
             : rc == OG_ERR_STOPPING ? 503
                                     : 400;
    og_counter_add(h->ctx, "requests", 1);
    if (h->async) {
        struct later *l = malloc(sizeof(*l));
        l->req = req;
        l->status = status;
        if (og_timer_start(h->ctx, 30, 0, answer_later, l) != NULL)
            return;
        free(l);
    }
    answer(req, status);
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
