/*
 * web.c: the web channel (plugins/web/README.md).
 *
 * Ingress, on the core's public listener under path_prefix (/v1):
 *   POST /v1/events                   omnigate's JSON events, one or a batch,
 *                                     Authorization: Bearer WRITE-KEY
 *   POST /v1/track, identify, page, screen, group, alias, batch
 *                                     Segment's tracking API, the write key
 *                                     as the HTTP Basic user name
 * Every answer that accepts events follows their durable commit
 * (og_emit_batch_async: a batch is stored whole or not at all).
 *
 * Egress: with webhook_url set, every delivery is a signed POST
 * (hooks.c).
 */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "web.h"

#define MAX_KEYS 64

struct web {
    og_plugin_ctx_t *ctx;
    struct wkey {
        char *name, *key;
        int server;           /* a server key; else a browser (public) key */
        uint64_t last_log_ms; /* dropped fields logged once a minute */
        uint64_t dropped;     /* dropped since that line */
    } keys[MAX_KEYS];
    char session_secret[65]; /* browser session tokens (policy.c) */
    size_t nkeys;
    const char *identity_secret;
    const char *prefix;
    int64_t max_batch;
    uint64_t max_body;
    web_hooks_t *hooks;
    web_live_t *live;
    char **origins; /* allowed_origins */
    size_t norigins;
    char paths[11][96];
};

extern const char web_snippet[]; /* omnigate.js, generated at build */

static const og_config_field_t config[] = {
    {"write_keys",
     OG_CFG_STRING,
     "",
     OG_CFG_SECRET,
     "browser (public) keys: NAME=KEY, separated by commas; a browser key "
     "sends only a visitor's own events",
     0,
     0,
     {NULL, NULL}},
    {"server_keys",
     OG_CFG_STRING,
     "",
     OG_CFG_SECRET,
     "the shop backend's secret keys: NAME=KEY, separated by commas; they "
     "may assert verified identities, customers and commands",
     0,
     0,
     {NULL, NULL}},
    {"session_secret",
     OG_CFG_STRING,
     "",
     OG_CFG_SECRET,
     "HMAC key of browser session tokens (empty: a random one per start)",
     0,
     0,
     {NULL, NULL}},
    {"identity_secret",
     OG_CFG_STRING,
     "",
     OG_CFG_SECRET,
     "HMAC-SHA256 key of the site's signed user ids (verified identities)",
     0,
     0,
     {NULL, NULL}},
    {"path_prefix",
     OG_CFG_STRING,
     "/v1",
     0,
     "where the APIs are mounted on the public listener",
     0,
     0,
     {NULL, NULL}},
    {"max_batch",
     OG_CFG_INT,
     "500",
     0,
     "events in one batch",
     1,
     10000,
     {NULL, NULL}},
    {"max_body",
     OG_CFG_SIZE,
     "512k",
     0,
     "largest request body",
     1024,
     64 << 20,
     {NULL, NULL}},
    {"allowed_origins",
     OG_CFG_STRING,
     "",
     0,
     "origins (https://shop.example) whose pages may call the APIs, or *",
     0,
     0,
     {NULL, NULL}},
    {"live",
     OG_CFG_BOOL,
     "yes",
     0,
     "serve live messages to visitors' browsers (GET/POST /v1/messages)",
     0,
     0,
     {NULL, NULL}},
    {"live_wait",
     OG_CFG_DURATION,
     "25s",
     0,
     "how long a browser's poll waits for a message",
     100,
     120000,
     {NULL, NULL}},
    {"live_hold",
     OG_CFG_DURATION,
     "30s",
     0,
     "how long a message waits for its visitor's browser before it is "
     "retried on the channel's schedule",
     100,
     3600000,
     {NULL, NULL}},
    {"live_visitors",
     OG_CFG_INT,
     "100000",
     0,
     "browsers whose customer live messages remember (the one seen longest "
     "ago is forgotten first)",
     1,
     10000000,
     {NULL, NULL}},
    {"webhook_url",
     OG_CFG_STRING,
     "",
     0,
     "deliveries to this channel are POSTed here (http or https)",
     0,
     0,
     {NULL, NULL}},
    {"webhook_secrets",
     OG_CFG_STRING,
     "",
     OG_CFG_SECRET,
     "Standard Webhooks secrets (whsec_...), several to rotate",
     0,
     0,
     {NULL, NULL}},
    {"webhook_timeout",
     OG_CFG_DURATION,
     "10s",
     0,
     "per webhook request",
     100,
     600000,
     {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

/* ---- answers --------------------------------------------------------------- */

/* The Access-Control-Allow-Origin header for the request's Origin when
 * allowed_origins lets it in (into buf), else NULL. */
static const char *cors(const struct web *w, og_http_req_t *req, char *buf,
                        size_t len)
{
    const char *origin = og_http_req_header(req, "Origin");
    size_t i;

    if (origin == NULL || strlen(origin) > 200)
        return NULL;
    for (i = 0; i < w->norigins; i++)
        if (strcmp(w->origins[i], "*") == 0 ||
            strcmp(w->origins[i], origin) == 0) {
            snprintf(buf, len, "Access-Control-Allow-Origin: %s", origin);
            return buf;
        }
    return NULL;
}

static void answer(const struct web *w, og_http_req_t *req, int status,
                   json_t *body, const char *const *headers)
{
    char *text = json_dumps(body, JSON_COMPACT), acao[260];
    const char *all[6];
    size_t n = 0;

    while (headers != NULL && headers[n] != NULL && n < 3) {
        all[n] = headers[n];
        n++;
    }
    if ((all[n] = cors(w, req, acao, sizeof(acao))) != NULL) {
        all[++n] = "Vary: Origin";
        n++;
    }
    all[n] = NULL;
    og_http_respond(req, status, "application/json", all, text ? text : "{}",
                    text ? strlen(text) : 2);
    free(text);
    json_decref(body);
}

static void answer_error(const struct web *w, og_http_req_t *req, int status,
                         const char *msg)
{
    static const char *const retry_busy[] = {"Retry-After: 1", NULL};
    static const char *const retry_store[] = {"Retry-After: 5", NULL};
    static const char *const www[] = {
        "WWW-Authenticate: Bearer realm=\"omnigate\"", NULL};

    answer(w, req, status, json_pack("{ss}", "error", msg),
           status == 429   ? retry_busy
           : status == 503 ? retry_store
           : status == 401 ? www
                           : NULL);
}

/* The answer for a store outcome that is not OG_OK: committed says
 * whether it came from the commit (a full store: 503) or from the call
 * (the gateway's queue is full: 429). */
static void answer_rc(const struct web *w, og_http_req_t *req, og_err_t rc,
                      int committed)
{
    if (rc == OG_ERR_BUSY && !committed)
        answer_error(w, req, 429, "busy: retry later");
    else if (rc == OG_ERR_STOPPING)
        answer_error(w, req, 503, "shutting down: retry later");
    else
        answer_error(w, req, 503,
                     "the store cannot take events now: retry later");
}

/* ---- write keys ---------------------------------------------------------- */

static int parse_keys(struct web *w, const char *spec, int server, char *why,
                      size_t whylen)
{
    const char *p = spec, *item, *what = server ? "server_keys" : "write_keys";
    size_t n, i;

    while ((item = web_list_item(&p, &n)) != NULL) {
        const char *eq = memchr(item, '=', n);
        size_t kl = eq ? (size_t)(item + n - eq - 1) : 0;

        if (eq == NULL || eq == item || eq + 1 == item + n ||
            w->nkeys == MAX_KEYS || eq - item > 64) {
            snprintf(why, whylen,
                     "%s: expected NAME=KEY pairs separated by commas (at "
                     "most %d, names of at most 64 characters)",
                     what, MAX_KEYS);
            return -1;
        }
        if (kl < 16) {
            snprintf(why, whylen,
                     "%s: the key of '%.*s' is %zu characters: a key must "
                     "have at least 16",
                     what, (int)(eq - item), item, kl);
            return -1;
        }
        for (i = 0; i < w->nkeys; i++)
            if (strlen(w->keys[i].name) == (size_t)(eq - item) &&
                memcmp(w->keys[i].name, item, (size_t)(eq - item)) == 0) {
                snprintf(why, whylen,
                         "%s: the name '%.*s' is given twice (names scope "
                         "the senders' event ids)",
                         what, (int)(eq - item), item);
                return -1;
            }
        w->keys[w->nkeys].name = strndup(item, (size_t)(eq - item));
        w->keys[w->nkeys].key = strndup(eq + 1, kl);
        w->keys[w->nkeys].server = server;
        w->nkeys++;
    }
    return 0;
}

/* The source whose key is key (length n), or NULL; compares every key
 * in constant time. */
static struct wkey *source_of(struct web *w, const char *key, size_t n)
{
    struct wkey *found = NULL;
    size_t i;

    for (i = 0; i < w->nkeys; i++) {
        size_t kl = strlen(w->keys[i].key);
        volatile unsigned char diff = kl != n;
        size_t j;

        for (j = 0; j < kl; j++)
            diff |= (unsigned char)(w->keys[i].key[j] ^ (j < n ? key[j] : 0));
        if (!diff)
            found = &w->keys[i];
    }
    return found;
}

/* The write key of a request: "Bearer KEY", or HTTP Basic with the key as
 * the user name (Segment's libraries). */
static struct wkey *authorize(struct web *w, og_http_req_t *req)
{
    const char *h = og_http_req_header(req, "Authorization");
    unsigned char dec[512];
    int n;
    const char *colon;

    if (h == NULL)
        return NULL;
    if (strncmp(h, "Bearer ", 7) == 0)
        return source_of(w, h + 7, strlen(h + 7));
    if (strncmp(h, "Basic ", 6) != 0 || strlen(h + 6) > 600 ||
        strlen(h + 6) % 4 != 0)
        return NULL;
    n = EVP_DecodeBlock(dec, (const unsigned char *)h + 6, (int)strlen(h + 6));
    if (n <= 0)
        return NULL;
    dec[n] = '\0';
    colon = strchr((const char *)dec, ':');
    return source_of(w, (const char *)dec,
                     colon ? (size_t)(colon - (const char *)dec)
                           : strlen((const char *)dec));
}

/* ---- emitting a batch ------------------------------------------------------ */

struct pending {
    const struct web *w;
    og_http_req_t *req;
    int segment;  /* answer as Segment does: 200 {"success": true} */
    char **anons; /* per event: its anonymous id, or NULL */
    size_t n;
};

static void pending_free(struct pending *p)
{
    size_t i;

    for (i = 0; p->anons != NULL && i < p->n; i++)
        free(p->anons[i]);
    free(p->anons);
    free(p);
}

static void committed(void *data, og_err_t rc, size_t n,
                      const og_err_t *results, const char *const *ids,
                      const char *const *customers)
{
    struct pending *p = data;
    size_t i;

    /* which customer each browser is, for live messages */
    for (i = 0; rc == OG_OK && p->w->live && i < n && i < p->n; i++)
        if (p->anons[i] != NULL && customers[i] != NULL)
            web_live_learn(p->w->live, p->anons[i], customers[i]);
    if (rc == OG_OK) {
        if (p->segment) {
            answer(p->w, p->req, 200, json_pack("{sb}", "success", 1), NULL);
        } else {
            json_t *a = json_array();

            for (i = 0; i < n; i++)
                json_array_append_new(a, json_string(ids[i]));
            answer(p->w, p->req, 202,
                   json_pack("{sIso}", "accepted", (json_int_t)n, "ids", a),
                   NULL);
        }
    } else if (rc == OG_ERR_CONFLICT) {
        char msg[200];

        for (i = 0; i < n && results[i] != OG_ERR_CONFLICT; i++)
            ;
        snprintf(msg, sizeof(msg),
                 "event %zu: its id (or vendor id) was accepted before with "
                 "other content",
                 i);
        answer(p->w, p->req, 409,
               json_pack("{sssIsIss}", "error", msg, "index", (json_int_t)i,
                         "accepted", (json_int_t)0, "batch",
                         "stored whole or not at all: nothing was stored"),
               NULL);
    } else {
        answer_rc(p->w, p->req, rc, 1);
    }
    pending_free(p);
}

/* Emits n envelopes (JSON objects) as one batch; answers the request. */
static void emit_all(struct web *w, og_http_req_t *req,
                     const msgpack_sbuffer *sb, size_t n, int segment,
                     int untrusted, char **anons)
{
    og_emit_item_t *items = calloc(n, sizeof(*items));
    struct pending *p = calloc(1, sizeof(*p));
    char why[300];
    size_t bad = 0, i;
    og_err_t rc;

    if (items == NULL || p == NULL) {
        free(items);
        free(p);
        for (i = 0; anons != NULL && i < n; i++)
            free(anons[i]);
        free(anons);
        answer_error(w, req, 503, "out of memory: retry later");
        return;
    }
    for (i = 0; i < n; i++) {
        items[i].msgpack = (const uint8_t *)sb[i].data;
        items[i].len = sb[i].size;
        /* Segment's libraries retry with a new sentAt: the messageId
         * decides */
        items[i].flags = (segment ? OG_EMIT_VENDOR_RETRIES : 0) |
                         (untrusted ? OG_EMIT_UNTRUSTED : 0);
    }
    p->w = w;
    p->req = req;
    p->segment = segment;
    p->anons = anons; /* taken */
    p->n = n;
    rc = og_emit_batch_async(w->ctx, items, n, &bad, why, sizeof(why),
                             committed, p);
    free(items);
    if (rc == OG_OK)
        return;
    pending_free(p);
    if (rc == OG_ERR_INVALID || rc == OG_ERR_TOO_LARGE) {
        /* a refusal for good: 400, or 413 for an event over the core's
         * max_event_size (a 503 would make a client retry it forever) */
        int status = rc == OG_ERR_TOO_LARGE ? 413 : 400;
        json_t *b = json_pack("{ss}", "error", why);

        if (n > 1 || segment) {
            char msg[360];

            snprintf(msg, sizeof(msg), "event %zu: %s", bad, why);
            json_object_set_new(b, "error", json_string(msg));
            json_object_set_new(b, "index", json_integer((json_int_t)bad));
            json_object_set_new(b, "accepted", json_integer(0));
            json_object_set_new(
                b, "batch",
                json_string("stored whole or not at all: nothing was stored"));
        }
        answer(w, req, status, b, NULL);
        return;
    }
    answer_rc(w, req, rc, 0);
}

/* ---- request parsing ---------------------------------------------------- */

/* The request's JSON body, or NULL after answering 415 or 400. */
static json_t *json_body(const struct web *w, og_http_req_t *req)
{
    const char *ct = og_http_req_header(req, "Content-Type");
    size_t len, ctl;
    const uint8_t *body = og_http_req_body(req, &len);
    json_error_t e;
    json_t *j;
    char msg[300];

    ctl = ct ? strcspn(ct, ";") : 0;
    while (ctl > 0 && ct[ctl - 1] == ' ')
        ctl--;
    if (ct == NULL || ctl != 16 || strncasecmp(ct, "application/json", 16)) {
        answer_error(w, req, 415, "Content-Type must be application/json");
        return NULL;
    }
    j = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        snprintf(msg, sizeof(msg), "invalid JSON at line %d column %d: %s",
                 e.line, e.column, e.text);
        answer_error(w, req, 400, msg);
    }
    return j;
}

static uint64_t now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* An event of omnigate's JSON form as an envelope: "v" defaults to 1 and
 * "occurred" may be an RFC 3339 time. NULL with why set. */
static json_t *event_envelope(const json_t *ev, char *why, size_t whylen)
{
    json_t *e, *occ;

    if (!json_is_object(ev)) {
        snprintf(why, whylen, "an event must be a JSON object");
        return NULL;
    }
    e = json_copy((json_t *)ev);
    if (json_object_get(e, "v") == NULL)
        json_object_set_new(e, "v", json_integer(1));
    occ = json_object_get(e, "occurred");
    if (json_is_string(occ)) {
        uint64_t t = web_parse_time(json_string_value(occ));

        if (t == 0) {
            snprintf(why, whylen,
                     "field 'occurred' must be milliseconds since the epoch "
                     "or an RFC 3339 time such as 2026-11-30T10:00:00Z");
            json_decref(e);
            return NULL;
        }
        json_object_set_new(e, "occurred", json_integer((json_int_t)t));
    }
    return e;
}

/* Answers 400 naming the event of a batch that cannot be mapped. */
static void refuse_item(const struct web *w, og_http_req_t *req, size_t i,
                        size_t n, const char *why, int status)
{
    json_t *b;
    char msg[360];

    if (n == 1) {
        answer_error(w, req, status, why);
        return;
    }
    snprintf(msg, sizeof(msg), "event %zu: %s", i, why);
    b = json_pack("{sssIsIss}", "error", msg, "index", (json_int_t)i,
                  "accepted", (json_int_t)0, "batch",
                  "stored whole or not at all: nothing was stored");
    answer(w, req, status, b, NULL);
}

/* The anonymous id of a call (Segment) or an event (its anon key). */
static char *anon_of(const json_t *item, int segment)
{
    const json_t *ids;
    size_t i;

    if (segment)
        return json_is_string(json_object_get(item, "anonymousId"))
                   ? strdup(json_string_value(
                         json_object_get(item, "anonymousId")))
                   : NULL;
    ids = json_object_get(item, "ids");
    for (i = 0; i < json_array_size(ids); i++) {
        const json_t *k = json_array_get(ids, i);
        const char *kind = json_string_value(json_object_get(k, "kind"));

        if (kind != NULL && strcmp(kind, "anon") == 0 &&
            json_is_string(json_object_get(k, "value")))
            return strdup(json_string_value(json_object_get(k, "value")));
    }
    return NULL;
}

/* The anonymous id whose session token the request carries
 * (X-Omnigate-Session: ANON-ID.TOKEN), copied into out; else NULL. */
static const char *session_of(const struct web *w, og_http_req_t *req,
                              char *out, size_t outlen)
{
    const char *h = og_http_req_header(req, "X-Omnigate-Session");
    const char *dot = h ? strrchr(h, '.') : NULL;

    if (dot == NULL || (size_t)(dot - h) >= outlen || dot == h)
        return NULL;
    memcpy(out, h, (size_t)(dot - h));
    out[dot - h] = '\0';
    return web_session_ok(w->session_secret, out, dot + 1) ? out : NULL;
}

/* Logs, once a minute per key, the fields a browser key sent that only a
 * server key may set; counts every one. */
static void note_dropped(struct web *w, struct wkey *k, const web_policy_t *pol)
{
    uint64_t now = now_ms();

    if (pol->stripped == 0)
        return;
    og_counter_add(w->ctx, "browser_fields_dropped_total", pol->stripped);
    k->dropped += pol->stripped;
    if (now - k->last_log_ms < 60000)
        return;
    og_log(w->ctx, OG_LOG_NOTICE,
           "browser key '%s': dropped %llu field(s) only a server key may "
           "set, e.g. %s (docs/security.md)",
           k->name, (unsigned long long)k->dropped, pol->dropped);
    k->last_log_ms = now;
    k->dropped = 0;
}

/* The calls of a request: the body itself, or its array (events API
 * batch) or its "batch" member (Segment). */
static void handle(struct web *w, og_http_req_t *req, const char *kind)
{
    json_t *body, *list = NULL;
    msgpack_sbuffer *sb;
    char **anons;
    size_t n, i;
    int segment = kind != NULL;
    char why[300], sess[104];
    struct wkey *key;
    web_policy_t pol;

    if ((key = authorize(w, req)) == NULL) {
        answer_error(w, req, 401, "missing or unknown write key");
        return;
    }
    memset(&pol, 0, sizeof(pol));
    pol.browser = !key->server;
    pol.scope = key->name;
    pol.secret = w->identity_secret;
    pol.proven = pol.browser ? session_of(w, req, sess, sizeof(sess)) : NULL;
    if ((body = json_body(w, req)) == NULL)
        return;
    if (segment && strcmp(kind, "batch") == 0) {
        list = json_object_get(body, "batch");
        if (!json_is_array(list)) {
            json_decref(body);
            answer_error(w, req, 400,
                         "field 'batch' must be an array of calls");
            return;
        }
    } else if (!segment && json_is_array(body)) {
        list = body;
    }
    n = list ? json_array_size(list) : 1;
    if (n == 0) {
        json_decref(body);
        answer_error(w, req, 400, "empty batch");
        return;
    }
    if ((int64_t)n > w->max_batch) {
        snprintf(why, sizeof(why),
                 "batch of %zu events exceeds max_batch (%lld)", n,
                 (long long)w->max_batch);
        json_decref(body);
        answer_error(w, req, 413, why);
        return;
    }
    sb = calloc(n, sizeof(*sb));
    anons = calloc(n, sizeof(*anons));
    if (sb == NULL || anons == NULL) {
        free(sb);
        free(anons);
        json_decref(body);
        answer_error(w, req, 503, "out of memory: retry later");
        return;
    }
    for (i = 0; i < n; i++) {
        const json_t *item = list ? json_array_get(list, i) : body;
        msgpack_packer pk;
        int bad = 0;

        int forbidden = 0;

        msgpack_sbuffer_init(&sb[i]);
        msgpack_packer_init(&pk, &sb[i], msgpack_sbuffer_write);
        anons[i] = anon_of(item, segment);
        /* live messages learn which customer a browser is only from a
         * server or from the browser that holds the visitor's session */
        if (anons[i] != NULL && pol.browser &&
            (pol.proven == NULL || strcmp(anons[i], pol.proven) != 0)) {
            free(anons[i]);
            anons[i] = NULL;
        }
        if (segment) {
            bad = web_segment_pack_policy(
                      &pk, item, strcmp(kind, "batch") ? kind : NULL, now_ms(),
                      &pol, &forbidden, why, sizeof(why)) != 0;
        } else {
            json_t *e = event_envelope(item, why, sizeof(why));

            if (e != NULL && web_event_apply(e, &pol, why, sizeof(why)) != 0) {
                forbidden = 1;
                json_decref(e);
                e = NULL;
            }
            if (e != NULL)
                web_pack_json(&pk, e);
            bad = e == NULL;
            json_decref(e);
        }
        if (bad) {
            refuse_item(w, req, i, list ? n : 1, why, forbidden ? 403 : 400);
            n = i + 1; /* what to free */
            break;
        }
    }
    note_dropped(w, key, &pol);
    if (i == n) {
        emit_all(w, req, sb, n, segment, pol.browser, anons);
        anons = NULL;
    }
    for (i = 0; i < n; i++) {
        msgpack_sbuffer_destroy(&sb[i]);
        if (anons != NULL)
            free(anons[i]);
    }
    free(anons);
    free(sb);
    json_decref(body);
}

/* ---- live messages -------------------------------------------------------- */

static void live_answer(void *data, og_http_req_t *req, json_t *body)
{
    answer(data, req, 200, body, NULL);
}

/* The value of name in the request's query, percent-decoded into out;
 * NULL when absent or malformed. */
static const char *query_param(og_http_req_t *req, const char *name, char *out,
                               size_t outlen)
{
    const char *q = og_http_req_query(req);
    size_t nl = strlen(name);

    while (q != NULL && *q != '\0') {
        size_t len = strcspn(q, "&");

        if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            const char *v = q + nl + 1, *end = q + len;
            size_t o = 0;

            while (v < end && o + 1 < outlen) {
                if (*v == '%' && end - v >= 3) {
                    char hex[3] = {v[1], v[2], '\0'}, *e;
                    long c = strtol(hex, &e, 16);

                    if (*e != '\0' || c == 0)
                        return NULL;
                    out[o++] = (char)c;
                    v += 3;
                } else {
                    out[o++] = *v == '+' ? ' ' : *v;
                    v++;
                }
            }
            if (v < end)
                return NULL; /* too long */
            out[o] = '\0';
            return out;
        }
        q += len + (q[len] == '&');
    }
    return NULL;
}

/* GET /v1/messages?anonymousId=ID: the visitor's messages (long-poll);
 * POST /v1/messages {"anonymousId", "text", "conversation"}: a reply,
 * emitted as message.received. */
static void messages(struct web *w, og_http_req_t *req)
{
    char anon[80], sess[104];
    const char *proven;
    json_t *body, *env;
    struct wkey *key;

    if ((key = authorize(w, req)) == NULL) {
        answer_error(w, req, 401, "missing or unknown write key");
        return;
    }
    if (w->live == NULL) {
        answer_error(w, req, 404, "live messages are off (live = no)");
        return;
    }
    /* The anonymous id is no secret: the visitor's session token is. */
    proven = session_of(w, req, sess, sizeof(sess));
    if (strcmp(og_http_req_method(req), "GET") == 0) {
        if (query_param(req, "anonymousId", anon, sizeof(anon)) == NULL ||
            anon[0] == '\0') {
            answer_error(w, req, 400, "query parameter anonymousId is missing");
            return;
        }
        if (proven == NULL || strcmp(proven, anon) != 0) {
            answer_error(w, req, 401,
                         "missing or invalid session for this anonymousId "
                         "(X-Omnigate-Session, from POST /v1/session)");
            return;
        }
        web_live_poll(w->live, req, anon);
        return;
    }
    if ((body = json_body(w, req)) == NULL)
        return;
    if (!json_is_string(json_object_get(body, "anonymousId")) ||
        !json_is_string(json_object_get(body, "text")) ||
        json_string_length(json_object_get(body, "text")) == 0) {
        json_decref(body);
        answer_error(w, req, 400,
                     "a reply needs anonymousId and a non-empty text");
        return;
    }
    if (!key->server &&
        (proven == NULL || strcmp(proven, json_string_value(json_object_get(
                                              body, "anonymousId"))) != 0)) {
        json_decref(body);
        answer_error(w, req, 401,
                     "missing or invalid session for this anonymousId "
                     "(X-Omnigate-Session, from POST /v1/session)");
        return;
    }
    env = json_pack("{sisss[{sssOsb}]s{sO}}", "v", 1, "type",
                    "message.received", "ids", "kind", "anon", "value",
                    json_object_get(body, "anonymousId"), "verified", 0,
                    "props", "text", json_object_get(body, "text"));
    if (json_is_string(json_object_get(body, "conversation")))
        json_object_set(env, "conversation",
                        json_object_get(body, "conversation"));
    {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char **anons = calloc(1, sizeof(*anons));

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        web_pack_json(&pk, env);
        if (anons != NULL)
            anons[0] =
                strdup(json_string_value(json_object_get(body, "anonymousId")));
        emit_all(w, req, &sb, 1, 0, !key->server, anons);
        msgpack_sbuffer_destroy(&sb);
    }
    json_decref(env);
    json_decref(body);
}

/* POST /v1/session: a new visitor's anonymous id and its session token
 * ("ANON.TOKEN"), which the snippet keeps and sends as
 * X-Omnigate-Session: the anonymous id travels in every event and may
 * leak; the token only proves who holds that visitor's browser. */
static void new_session(struct web *w, og_http_req_t *req)
{
    unsigned char r[16];
    char anon[40], token[65], both[110];
    size_t i, o;

    if (authorize(w, req) == NULL) {
        answer_error(w, req, 401, "missing or unknown write key");
        return;
    }
    if (RAND_bytes(r, sizeof(r)) != 1) {
        answer_error(w, req, 503, "no randomness: retry later");
        return;
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    for (i = 0, o = 0; i < 16; i++) { /* a UUIDv4 */
        if (i == 4 || i == 6 || i == 8 || i == 10)
            anon[o++] = '-';
        snprintf(anon + o, 3, "%02x", r[i]);
        o += 2;
    }
    web_session_token(w->session_secret, anon, token);
    snprintf(both, sizeof(both), "%s.%s", anon, token);
    answer(w, req, 200,
           json_pack("{ssss}", "anonymousId", anon, "session", both), NULL);
}

static const char *const segment_calls[] = {
    "track", "identify", "page", "screen", "group", "alias", "batch"};

/* OPTIONS: the CORS preflight of a page on an allowed origin. */
static void preflight(const struct web *w, og_http_req_t *req)
{
    static const char *const allow[] = {
        "Access-Control-Allow-Methods: GET, POST",
        "Access-Control-Allow-Headers: Authorization, Content-Type, "
        "X-Omnigate-Session",
        "Access-Control-Max-Age: 600", NULL};
    char acao[260];
    const char *h[6];
    size_t i;

    if (cors(w, req, acao, sizeof(acao)) == NULL) {
        answer_error(w, req, 403, "origin not allowed (allowed_origins)");
        return;
    }
    h[0] = acao;
    h[1] = "Vary: Origin";
    for (i = 0; allow[i] != NULL; i++)
        h[2 + i] = allow[i];
    h[2 + i] = NULL;
    og_http_respond(req, 204, NULL, h, "", 0);
}

static void on_snippet(void *data, og_http_req_t *req)
{
    static const char *const h[] = {"Cache-Control: public, max-age=300", NULL};

    (void)data;
    og_http_respond(req, 200, "application/javascript; charset=utf-8", h,
                    web_snippet, strlen(web_snippet));
}

static void on_request(void *data, og_http_req_t *req)
{
    struct web *w = data;
    const char *path = og_http_req_path(req) + strlen(w->prefix);
    size_t i;

    if (strcmp(og_http_req_method(req), "OPTIONS") == 0) {
        preflight(w, req);
        return;
    }
    if (strcmp(path, "/events") == 0) {
        handle(w, req, NULL);
        return;
    }
    if (strcmp(path, "/messages") == 0) {
        messages(w, req);
        return;
    }
    if (strcmp(path, "/session") == 0) {
        new_session(w, req);
        return;
    }
    for (i = 0; i < sizeof(segment_calls) / sizeof(segment_calls[0]); i++)
        if (path[0] == '/' && strcmp(path + 1, segment_calls[i]) == 0) {
            handle(w, req, segment_calls[i]);
            return;
        }
    answer_error(w, req, 404, "no such API");
}

/* ---- life ----------------------------------------------------------------- */

/* allowed_origins: "*" or scheme://host[:port], separated by commas. */
static int split_origins(struct web *w, const char *spec)
{
    const char *p = spec, *item;
    size_t n;

    while ((item = web_list_item(&p, &n)) != NULL) {
        char *o = strndup(item, n);

        if (o == NULL)
            return -1;
        w->origins = realloc(w->origins, (w->norigins + 1) * sizeof(char *));
        w->origins[w->norigins++] = o;
        if (strcmp(o, "*") != 0 && ((strncmp(o, "http://", 7) != 0 &&
                                     strncmp(o, "https://", 8) != 0) ||
                                    strchr(o + 8, '/') != NULL))
            return -1;
    }
    return 0;
}

static og_err_t web_init(og_plugin_ctx_t *ctx, void **state)
{
    struct web *w = calloc(1, sizeof(*w));
    const char *keys = "", *url = "", *secrets = "", *origins = "";
    const char *server_keys = "", *session = "";
    uint64_t timeout = 10000;
    char why[300];

    if (w == NULL)
        return OG_ERR_NOMEM;
    w->ctx = ctx;
    og_config_get_str(ctx, "write_keys", &keys);
    og_config_get_str(ctx, "server_keys", &server_keys);
    og_config_get_str(ctx, "session_secret", &session);
    og_config_get_str(ctx, "identity_secret", &w->identity_secret);
    og_config_get_str(ctx, "path_prefix", &w->prefix);
    og_config_get_int(ctx, "max_batch", &w->max_batch);
    og_config_get_size(ctx, "max_body", &w->max_body);
    og_config_get_str(ctx, "webhook_url", &url);
    og_config_get_str(ctx, "webhook_secrets", &secrets);
    og_config_get_duration_ms(ctx, "webhook_timeout", &timeout);
    og_config_get_str(ctx, "allowed_origins", &origins);
    *state = w;
    if (split_origins(w, origins) != 0) {
        og_log(ctx, OG_LOG_ERROR,
               "allowed_origins: expected origins such as "
               "https://shop.example (scheme://host[:port]) or *");
        return OG_ERR_CONFIG;
    }
    if (parse_keys(w, keys, 0, why, sizeof(why)) != 0 ||
        parse_keys(w, server_keys, 1, why, sizeof(why)) != 0) {
        og_log(ctx, OG_LOG_ERROR, "%s", why);
        return OG_ERR_CONFIG;
    }
    if (session[0] != '\0') {
        if (strlen(session) < 32 || strlen(session) > 64) {
            og_log(ctx, OG_LOG_ERROR,
                   "session_secret: expected 32 to 64 characters");
            return OG_ERR_CONFIG;
        }
        snprintf(w->session_secret, sizeof(w->session_secret), "%s", session);
    } else {
        unsigned char r[32];
        size_t i;

        if (RAND_bytes(r, sizeof(r)) != 1)
            return OG_ERR_IO;
        for (i = 0; i < sizeof(r); i++)
            snprintf(w->session_secret + 2 * i, 3, "%02x", r[i]);
        if (w->nkeys > 0)
            og_log(ctx, OG_LOG_INFO,
                   "no session_secret: browser sessions last until the "
                   "daemon restarts");
    }
    if (url[0] != '\0') {
        if (strncmp(url, "http://", 7) != 0 &&
            strncmp(url, "https://", 8) != 0) {
            og_log(ctx, OG_LOG_ERROR,
                   "webhook_url: expected an http:// or https:// URL");
            return OG_ERR_CONFIG;
        }
        w->hooks =
            web_hooks_create(ctx, url, secrets, timeout, why, sizeof(why));
        if (w->hooks == NULL) {
            og_log(ctx, OG_LOG_ERROR, "%s", why);
            return OG_ERR_CONFIG;
        }
    }
    {
        int live = 1;
        uint64_t wait = 25000, hold = 30000;
        int64_t visitors = 100000;

        og_config_get_bool(ctx, "live", &live);
        og_config_get_int(ctx, "live_visitors", &visitors);
        og_config_get_duration_ms(ctx, "live_wait", &wait);
        og_config_get_duration_ms(ctx, "live_hold", &hold);
        if (live && w->nkeys > 0 && w->hooks == NULL)
            w->live = web_live_create(ctx, wait, hold, (size_t)visitors,
                                      live_answer, w);
    }
    if (w->nkeys == 0 && w->hooks == NULL) {
        og_log(ctx, OG_LOG_ERROR,
               "nothing to do: set write_keys (events in) or webhook_url "
               "(deliveries out)");
        return OG_ERR_CONFIG;
    }
    return OG_OK;
}

static og_err_t web_start(void *state)
{
    struct web *w = state;
    static const char *const names[] = {
        "events", "track", "identify", "page",     "screen",
        "group",  "alias", "batch",    "messages", "session"};
    size_t i;

    if (w->nkeys == 0)
        return OG_OK; /* a destination only */
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        og_http_route_t r = OG_HTTP_ROUTE_INIT;
        og_err_t rc;

        snprintf(w->paths[i], sizeof(w->paths[i]), "%s/%s", w->prefix,
                 names[i]);
        r.method = "POST";
        r.path = w->paths[i];
        r.max_body = (size_t)w->max_body;
        r.handler = on_request;
        r.data = w;
        if ((rc = og_http_mount(w->ctx, &r)) != OG_OK)
            return rc;
        r.method = "OPTIONS"; /* CORS preflights */
        r.max_body = 0;
        if ((rc = og_http_mount(w->ctx, &r)) != OG_OK)
            return rc;
        if (strcmp(names[i], "messages") == 0) { /* the long-poll */
            r.method = "GET";
            if ((rc = og_http_mount(w->ctx, &r)) != OG_OK)
                return rc;
        }
    }
    {
        og_http_route_t r = OG_HTTP_ROUTE_INIT;

        snprintf(w->paths[10], sizeof(w->paths[10]), "%s/omnigate.js",
                 w->prefix);
        r.method = "GET";
        r.path = w->paths[10];
        r.handler = on_snippet;
        r.data = w;
        return og_http_mount(w->ctx, &r);
    }
}

static og_err_t web_send(void *state, const og_event_t *ev, og_delivery_t *d)
{
    struct web *w = state;

    if (w->hooks != NULL)
        return web_hooks_send(w->hooks, ev, d);
    if (w->live != NULL && strncmp(og_event_type(ev), "message.", 8) == 0)
        return web_live_send(w->live, ev, d);
    return OG_ERR_REJECTED; /* nothing to deliver to: no webhook_url */
}

static og_err_t web_stop(void *state)
{
    struct web *w = state;

    if (w->live != NULL)
        web_live_stop(w->live);
    return OG_OK;
}

static void web_destroy(void *state)
{
    struct web *w = state;
    size_t i;

    if (w == NULL)
        return;
    for (i = 0; i < w->nkeys; i++) {
        free(w->keys[i].name);
        free(w->keys[i].key);
    }
    for (i = 0; i < w->norigins; i++)
        free(w->origins[i]);
    free(w->origins);
    web_hooks_destroy(w->hooks);
    web_live_destroy(w->live);
    free(w);
}

/* --check-config: what init() would refuse (keys, origins, URLs,
 * secrets), without starting anything; init() has no side effects. */
static og_err_t web_check(og_plugin_ctx_t *ctx, char *why, size_t whylen)
{
    void *state = NULL;
    og_err_t rc = web_init(ctx, &state);

    (void)why; /* init() logs the reason: the host takes the last one */
    web_destroy(state);
    return rc;
}

static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,
    .name = "web",
    .version = "0.1.0",
    .description = "the web channel: events API, Segment-compatible "
                   "tracking, signed outbound webhooks",
    .caps = OG_CAP_INGRESS | OG_CAP_EGRESS,
    .config = config,
    .init = web_init,
    .start = web_start,
    .send = web_send,
    .stop = web_stop,
    .destroy = web_destroy,
    .check = web_check,
};

OG_PLUGIN_DEFINE(&def)
