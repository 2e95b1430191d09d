/*
 * policy.c: what a write key may assert (docs/security.md).
 *
 * A browser key is public by design (it stands in every shop page), so an
 * event sent with it is the visitor's word about itself and nothing more:
 * page and screen views, product, cart, checkout and wishlist activity,
 * identify with unverified traits, custom track events, its own messages
 * and its own consent. It names no customer, no journey's correlation or
 * causation, no source channel, and no verified identity except a user id
 * the site signed. A server key (the shop's backend) may assert all of it.
 *
 * A browser's ids (the envelope's "id", source.vendor_id, Segment's
 * messageId) are idempotency keys of that key alone: they become the
 * vendor id "KEY/ID" (deduplicated per instance by the core) and the core
 * gives the event its own id, so a public client can never pre-claim an
 * id the shop's backend will use. A server key's ids are the shop's own
 * event ids, as before.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "web.h"

/* A signed user id: the hex HMAC-SHA256 of the id under identity_secret
 * (used by the events API here and by the Segment mapping). */
int web_signature_ok(const char *secret, const char *value, const char *sig)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned int i;

    if (secret == NULL || secret[0] == '\0' || value == NULL || sig == NULL)
        return 0;
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
             (const unsigned char *)value, strlen(value), mac, &len) == NULL)
        return 0;
    for (i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return strlen(sig) == 2 * len &&
           CRYPTO_memcmp(hex, sig, 2 * len) == 0; /* constant time */
}

int web_browser_type_ok(const char *type)
{
    static const char *const prefixes[] = {
        "product.",  "product_list.", "cart.", "checkout.",
        "wishlist.", "track.",        NULL};
    static const char *const exact[] = {"page.viewed",
                                        "screen.viewed",
                                        "customer.identified",
                                        "customer.signed_up",
                                        "customer.signed_in",
                                        "customer.signed_out",
                                        "customer.aliased",
                                        "customer.grouped",
                                        "consent.changed",
                                        "message.received",
                                        NULL};
    size_t i;

    if (type == NULL)
        return 0;
    for (i = 0; exact[i] != NULL; i++)
        if (strcmp(type, exact[i]) == 0)
            return 1;
    for (i = 0; prefixes[i] != NULL; i++)
        if (strncmp(type, prefixes[i], strlen(prefixes[i])) == 0 &&
            type[strlen(prefixes[i])] != '\0')
            return 1;
    return 0;
}

void web_policy_drop(web_policy_t *pol, const char *name)
{
    size_t n = strlen(pol->dropped);

    pol->stripped++;
    if (strstr(pol->dropped, name) != NULL)
        return; /* named once */
    if (n + strlen(name) + 3 < sizeof(pol->dropped))
        snprintf(pol->dropped + n, sizeof(pol->dropped) - n, "%s%s",
                 n ? ", " : "", name);
}

void web_session_token(const char *secret, const char *anon, char out[65])
{
    static const char hexd[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE], msg[160];
    unsigned int len = 0, i;
    int n = snprintf((char *)msg, sizeof(msg), "omnigate-session:%s", anon);

    out[0] = '\0';
    if (n < 0 || (size_t)n >= sizeof(msg) ||
        HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, (size_t)n, mac,
             &len) == NULL)
        return;
    for (i = 0; i < len && i < 32; i++) {
        out[2 * i] = hexd[mac[i] >> 4];
        out[2 * i + 1] = hexd[mac[i] & 15];
    }
    out[2 * i] = '\0';
}

int web_session_ok(const char *secret, const char *anon, const char *token)
{
    char want[65];

    if (secret == NULL || anon == NULL || token == NULL ||
        strlen(token) != 64 || strlen(anon) > 100)
        return 0;
    web_session_token(secret, anon, want);
    return strlen(want) == 64 && CRYPTO_memcmp(want, token, 64) == 0;
}

/* 1 when s is an id the envelope takes: 1-64 printable ASCII. */
static int valid_id(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > 64)
        return 0;
    for (i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

/* The client's own id for the event (its "id", else source.vendor_id) as
 * the vendor id scoped by the key: "KEY/ID". */
static void scope_ids(json_t *e, web_policy_t *pol, json_t *src)
{
    json_t *id = json_object_get(e, "id");
    const char *mine = NULL;
    char buf[400];

    if (json_is_string(id) && valid_id(json_string_value(id)))
        mine = json_string_value(id);
    else if (id == NULL && json_is_object(src) &&
             json_is_string(json_object_get(src, "vendor_id")))
        mine = json_string_value(json_object_get(src, "vendor_id"));
    if (mine == NULL || pol->scope == NULL || !pol->browser)
        return; /* absent, a server's own id, or left for the envelope's
                   check to name */
    snprintf(buf, sizeof(buf), "%s/%.256s", pol->scope, mine);
    buf[256] = '\0'; /* the envelope's bound on a vendor id */
    if (json_is_object(src))
        json_object_set_new(src, "vendor_id", json_string(buf));
    json_object_del(e, "id");
}

int web_event_apply(json_t *e, web_policy_t *pol, char *why, size_t whylen)
{
    static const char *const links[] = {"customer", "correlation", "causation",
                                        NULL};
    const char *type = json_string_value(json_object_get(e, "type"));
    json_t *src = json_object_get(e, "source"),
           *ids = json_object_get(e, "ids");
    json_t *anon = NULL;
    int signed_user = 0, proven = 0;
    size_t i;

    if (pol->browser && type != NULL && !web_browser_type_ok(type)) {
        snprintf(why, whylen,
                 "a browser key may not send '%.128s' events (a server key "
                 "may: see docs/security.md)",
                 type);
        return -1;
    }
    /* The source: a browser's events come from the web, whatever they say;
     * a server names its own channel. */
    if (pol->browser) {
        json_t *mine = json_object();

        if (json_is_object(src)) {
            const char *k;
            json_t *v;

            json_object_foreach(src, k, v)
            {
                if (strcmp(k, "vendor_id") == 0)
                    json_object_set(mine, k, v);
                else if (strcmp(k, "channel") != 0 || !json_is_string(v) ||
                         strcmp(json_string_value(v), "web") != 0)
                    web_policy_drop(pol, "source");
            }
        } else if (src != NULL) {
            web_policy_drop(pol, "source");
        }
        json_object_set_new(mine, "channel", json_string("web"));
        json_object_set_new(e, "source", mine);
        src = mine;
    } else if (src == NULL) {
        src = json_object();
        json_object_set_new(e, "source", src);
    }
    if (json_is_object(src))
        scope_ids(e, pol, src);
    if (pol->browser)
        for (i = 0; links[i] != NULL; i++)
            if (json_object_get(e, links[i]) != NULL) {
                json_object_del(e, links[i]);
                web_policy_drop(pol, links[i]);
            }
    /* Identity keys: a user id is verified by the site's signature; a
     * browser proves nothing else, and names one anonymous visitor. */
    for (i = 0; json_is_array(ids) && i < json_array_size(ids); i++) {
        json_t *k = json_array_get(ids, i);
        const char *kind = json_string_value(json_object_get(k, "kind"));
        const char *value = json_string_value(json_object_get(k, "value"));
        json_t *sig = json_object_get(k, "signature");
        int ok;

        if (!json_is_object(k))
            continue;
        ok = sig != NULL && kind != NULL && value != NULL &&
             strcmp(kind, "user") == 0 && json_is_string(sig) &&
             pol->secret != NULL && pol->secret[0] != '\0' &&
             web_signature_ok(pol->secret, value, json_string_value(sig));
        if (sig != NULL) {
            json_object_del(k, "signature");
            json_object_set_new(k, "verified", json_boolean(ok));
        } else if (pol->browser &&
                   json_is_true(json_object_get(k, "verified"))) {
            json_object_set_new(k, "verified", json_false());
            web_policy_drop(pol, "ids[].verified");
        }
        if (json_is_true(json_object_get(k, "verified")) && kind != NULL &&
            strcmp(kind, "user") == 0)
            signed_user = 1;
        if (pol->browser && kind != NULL && strcmp(kind, "anon") == 0) {
            if (anon != NULL) { /* one visitor per event */
                json_array_remove(ids, i--);
                web_policy_drop(pol, "ids[] (a second anon key)");
                continue;
            }
            anon = k;
            proven = pol->proven != NULL && value != NULL &&
                     strcmp(value, pol->proven) == 0;
        }
    }
    if (!pol->browser)
        return 0;
    /* A login claims the anonymous profile it logs in from: only the
     * browser that holds that visitor's session may name it then. */
    if (anon != NULL && signed_user && !proven) {
        for (i = 0; i < json_array_size(ids); i++)
            if (json_array_get(ids, i) == anon) {
                json_array_remove(ids, i);
                break;
            }
        anon = NULL;
        web_policy_drop(pol, "ids[] (an anon key without its session)");
    }
    if (json_object_get(e, "consent") != NULL && !proven && !signed_user) {
        json_object_del(e, "consent");
        web_policy_drop(pol, "consent (needs the visitor's session or a "
                             "signed user id)");
    }
    if (json_object_get(e, "conversation") != NULL &&
        (type == NULL || strcmp(type, "message.received") != 0)) {
        json_object_del(e, "conversation");
        web_policy_drop(pol, "conversation");
    }
    return 0;
}
