/*
 * hooks.c: the web channel as a destination. Each delivery is one POST of
 * the event as JSON, signed per the Standard Webhooks specification
 * (https://www.standardwebhooks.com): headers webhook-id (the delivery's
 * idempotency key, the same on every retry), webhook-timestamp (seconds)
 * and webhook-signature ("v1,BASE64(HMAC-SHA256(key, id.timestamp.body))",
 * one per secret, so that a receiver can rotate its secret). Requests go
 * through the host's HTTP client (one libcurl multi handle: connections
 * are reused, and the channel's max_inflight bounds the concurrency).
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web.h"

#define MAX_SECRETS 8

struct web_hooks_s {
    og_plugin_ctx_t *ctx;
    char *url;
    char *secrets;
    uint64_t timeout_ms;
    int gone; /* the endpoint answered 410: deliveries are refused */
};

/* The key of one "whsec_BASE64" secret; its length, or -1. */
static int secret_key(const char *s, size_t n, unsigned char *key,
                      size_t keymax)
{
    unsigned char buf[512];
    int len;

    if (n > 6 && strncmp(s, "whsec_", 6) == 0) {
        s += 6;
        n -= 6;
    }
    if (n == 0 || n % 4 != 0 || n > 600 || (n / 4) * 3 > sizeof(buf))
        return -1;
    len = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
    if (len < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes */
    while (n > 0 && s[n - 1] == '=') {
        len--;
        n--;
    }
    if (len < 1 || (size_t)len > keymax)
        return -1;
    memcpy(key, buf, (size_t)len);
    return len;
}

og_err_t web_webhook_signature(const char *secrets, const char *msg_id,
                               uint64_t timestamp, const uint8_t *body,
                               size_t len, char *out, size_t outlen)
{
    const char *p = secrets, *item;
    size_t used = 0, nsec = 0, n;
    char ts[32];

    snprintf(ts, sizeof(ts), "%llu", (unsigned long long)timestamp);
    out[0] = '\0';
    while ((item = web_list_item(&p, &n)) != NULL) {
        unsigned char key[256], mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        char b64[4 * EVP_MAX_MD_SIZE / 3 + 8];
        int klen;

        if ((klen = secret_key(item, n, key, sizeof(key))) < 0 ||
            nsec == MAX_SECRETS)
            return OG_ERR_INVALID;
        {
            /* id.timestamp.body, signed in one call */
            size_t il = strlen(msg_id), tl = strlen(ts);
            unsigned char *m = malloc(il + tl + len + 2);

            if (m == NULL)
                return OG_ERR_NOMEM;
            memcpy(m, msg_id, il);
            m[il] = '.';
            memcpy(m + il + 1, ts, tl);
            m[il + 1 + tl] = '.';
            if (len > 0)
                memcpy(m + il + tl + 2, body, len);
            if (HMAC(EVP_sha256(), key, klen, m, il + tl + len + 2, mac,
                     &maclen) == NULL) {
                free(m);
                return OG_ERR_INTERNAL;
            }
            free(m);
        }
        EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
        used += (size_t)snprintf(out + used, outlen - used, "%sv1,%s",
                                 used ? " " : "", b64);
        if (used >= outlen)
            return OG_ERR_TOO_LARGE;
        nsec++;
    }
    return nsec > 0 ? OG_OK : OG_ERR_INVALID;
}

web_hooks_t *web_hooks_create(og_plugin_ctx_t *ctx, const char *url,
                              const char *secrets, uint64_t timeout_ms,
                              char *why, size_t whylen)
{
    web_hooks_t *h;
    char sig[1024];

    if (secrets == NULL || secrets[0] == '\0' ||
        web_webhook_signature(secrets, "x", 0, (const uint8_t *)"", 0, sig,
                              sizeof(sig)) != OG_OK) {
        snprintf(why, whylen,
                 "webhook_secrets: expected one to %d secrets \"whsec_\" + "
                 "base64, separated by spaces",
                 MAX_SECRETS);
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->ctx = ctx;
    h->url = strdup(url);
    h->secrets = strdup(secrets);
    h->timeout_ms = timeout_ms;
    return h;
}

void web_hooks_destroy(web_hooks_t *h)
{
    if (h == NULL)
        return;
    free(h->url);
    free(h->secrets);
    free(h);
}

struct attempt {
    web_hooks_t *h;
    og_delivery_t *d;
    char *body;
};

static void answered(void *data, const og_http_response_t *r)
{
    struct attempt *a = data;
    char why[200];
    size_t len;
    const char *ra;

    if (r->result != OG_OK) {
        og_delivery_complete(a->d, OG_ERR_RETRY, r->error);
    } else if (r->status >= 200 && r->status < 300) {
        og_delivery_complete(a->d, OG_OK, NULL);
    } else if (r->status == 410) {
        if (!a->h->gone) {
            char shown[300];

            og_log(a->h->ctx, OG_LOG_WARNING,
                   "%s answered 410 Gone: this endpoint is disabled until the "
                   "channel restarts",
                   og_url_redact(a->h->url, shown, sizeof(shown)));
        }
        a->h->gone = 1;
        og_delivery_complete(a->d, OG_ERR_REJECTED,
                             "endpoint answered 410 Gone (disabled)");
    } else {
        snprintf(why, sizeof(why), "HTTP %d: %.*s", r->status,
                 (int)(r->body_len > 120 ? 120 : r->body_len),
                 (const char *)r->body);
        if (r->status == 408 || r->status == 425 || r->status == 429 ||
            r->status >= 500) {
            ra = og_http_header(r, "Retry-After", &len);
            if (ra != NULL)
                og_delivery_retry_after(a->d, strtoull(ra, NULL, 10) * 1000);
            og_delivery_complete(a->d, OG_ERR_RETRY, why);
        } else {
            og_delivery_complete(a->d, OG_ERR_REJECTED, why);
        }
    }
    free(a->body);
    free(a);
}

og_err_t web_hooks_send(web_hooks_t *h, const og_event_t *ev, og_delivery_t *d)
{
    og_http_request_t req = OG_HTTP_REQUEST_INIT;
    char hid[200], hts[64], hsig[1100], sig[1024];
    const char *headers[5];
    struct attempt *a;
    json_t *data, *msg;
    size_t len;
    const uint8_t *bytes = og_event_data(ev, &len);
    uint64_t now = (uint64_t)time(NULL);
    og_err_t rc;

    if (h->gone)
        return OG_ERR_REJECTED;
    data = web_mp_to_json(bytes, len);
    if (data == NULL)
        return OG_ERR_REJECTED;
    msg = json_pack("{sssIso}", "type", og_event_type(ev), "timestamp",
                    (json_int_t)now, "data", data);
    a = calloc(1, sizeof(*a));
    if (msg == NULL || a == NULL) {
        json_decref(msg);
        free(a);
        return OG_ERR_RETRY;
    }
    a->h = h;
    a->d = d;
    a->body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (a->body == NULL ||
        web_webhook_signature(h->secrets, og_delivery_key(d), now,
                              (const uint8_t *)a->body, strlen(a->body), sig,
                              sizeof(sig)) != OG_OK) {
        free(a->body);
        free(a);
        return OG_ERR_RETRY;
    }
    snprintf(hid, sizeof(hid), "webhook-id: %s", og_delivery_key(d));
    snprintf(hts, sizeof(hts), "webhook-timestamp: %llu",
             (unsigned long long)now);
    snprintf(hsig, sizeof(hsig), "webhook-signature: %s", sig);
    headers[0] = "Content-Type: application/json";
    headers[1] = hid;
    headers[2] = hts;
    headers[3] = hsig;
    headers[4] = NULL;
    req.method = "POST";
    req.url = h->url;
    req.headers = headers;
    req.body = (const uint8_t *)a->body;
    req.body_len = strlen(a->body);
    req.timeout_ms = (uint32_t)h->timeout_ms;
    rc = og_http_request(h->ctx, &req, answered, a);
    if (rc != OG_OK) {
        free(a->body);
        free(a);
        return OG_ERR_RETRY;
    }
    return OG_PENDING;
}
