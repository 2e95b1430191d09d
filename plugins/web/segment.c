/*
 * segment.c: Segment tracking calls as omnigate envelopes
 * (plugins/web/README.md has the mapping table).
 */
#include <ctype.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "web.h"

/* Segment's ecommerce and lifecycle event names, and ours. */
static const struct {
    const char *segment, *type;
} names[] = {
    {"Products Searched", "product.searched"},
    {"Product List Viewed", "product_list.viewed"},
    {"Product List Filtered", "product_list.filtered"},
    {"Product Clicked", "product.clicked"},
    {"Product Viewed", "product.viewed"},
    {"Product Added", "cart.item_added"},
    {"Product Removed", "cart.item_removed"},
    {"Cart Viewed", "cart.viewed"},
    {"Checkout Started", "checkout.started"},
    {"Checkout Step Viewed", "checkout.step_viewed"},
    {"Checkout Step Completed", "checkout.step_completed"},
    {"Payment Info Entered", "checkout.payment_entered"},
    {"Order Completed", "order.placed"},
    {"Order Updated", "order.updated"},
    {"Order Refunded", "order.refunded"},
    {"Order Cancelled", "order.cancelled"},
    {"Coupon Applied", "cart.coupon_applied"},
    {"Coupon Removed", "cart.coupon_removed"},
    {"Product Added to Wishlist", "wishlist.item_added"},
    {"Product Removed from Wishlist", "wishlist.item_removed"},
    {"Signed Up", "customer.signed_up"},
    {"Signed In", "customer.signed_in"},
    {"Signed Out", "customer.signed_out"},
};

void web_segment_type(const char *event, char *out, size_t outlen)
{
    size_t i, n = 0;
    int sep = 0;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i].segment, event) == 0) {
            snprintf(out, outlen, "%s", names[i].type);
            return;
        }
    /* Others: "track." and the name in lower case, runs of anything else
     * as one '_': "Video Played" -> "track.video_played". */
    n = (size_t)snprintf(out, outlen, "track.");
    for (i = 0; event[i] != '\0' && n + 1 < outlen && n < 120; i++) {
        unsigned char ch = (unsigned char)event[i];

        if (isalnum(ch)) {
            if (sep && n > 6)
                out[n++] = '_';
            out[n++] = (char)tolower(ch);
            sep = 0;
        } else {
            sep = 1;
        }
    }
    if (n == 6 && n + 1 < outlen)
        out[n++] = 'x'; /* a name with no letter or digit */
    out[n] = '\0';
}

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

/* Decimal places of a currency's minor unit (ISO 4217). */
static int exponent(const char *cur)
{
    static const char zero[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX "
                               "UYI VND VUV XAF XOF XPF";
    static const char three[] = "BHD IQD JOD KWD LYD OMR TND";

    return strstr(zero, cur) ? 0 : strstr(three, cur) ? 3 : 2;
}

/* A Segment decimal price with its currency as omnigate money, or NULL. */
static json_t *money(const json_t *v, const char *cur)
{
    double x;
    int e = exponent(cur), i;

    if (json_is_integer(v))
        x = (double)json_integer_value(v);
    else if (json_is_real(v))
        x = json_real_value(v);
    else
        return NULL;
    for (i = 0; i < e; i++)
        x *= 10;
    if (!isfinite(x) || fabs(x) > 9e15)
        return NULL;
    return json_pack("{sIss}", "amount", (json_int_t)llround(x), "currency",
                     cur);
}

static void add_key(json_t *ids, const char *kind, const json_t *v,
                    int verified)
{
    char buf[64];
    const char *s = NULL;

    if (json_is_string(v))
        s = json_string_value(v);
    else if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        s = buf;
    }
    if (s == NULL || s[0] == '\0' || json_array_size(ids) >= 32)
        return;
    json_array_append_new(ids, json_pack("{sssssb}", "kind", kind, "value", s,
                                         "verified", verified));
}

/* A deep copy of v with the keys the envelope treats as money ("amount"
 * and "currency") renamed when they would not pass as money, so that a
 * Segment payload is never refused for them. */
static json_t *props_of(const json_t *v)
{
    json_t *c = json_deep_copy(v);
    json_t *cur = json_object_get(c, "currency");

    if (json_is_string(cur)) {
        char up[4] = "";
        const char *s = json_string_value(cur);
        size_t i;

        for (i = 0; i < 3 && s[i]; i++)
            up[i] = (char)toupper((unsigned char)s[i]);
        up[i] = '\0';
        if (strlen(s) == 3)
            json_object_set_new(c, "currency", json_string(up));
        else {
            json_object_set(c, "currency_text", cur);
            json_object_del(c, "currency");
        }
    } else if (cur != NULL) {
        json_object_set(c, "currency_text", cur);
        json_object_del(c, "currency");
    }
    if (json_object_get(c, "amount") != NULL &&
        !json_is_integer(json_object_get(c, "amount"))) {
        json_object_set(c, "amount_value", json_object_get(c, "amount"));
        json_object_del(c, "amount");
    }
    return c;
}

/* Ecommerce properties: props.total (money) and props.lines. */
static void ecommerce(json_t *props, const json_t *p)
{
    const json_t *cur = json_object_get(props, "currency");
    const char *c = json_is_string(cur) ? json_string_value(cur) : "USD";
    const char *totals[] = {"total", "revenue", "value", "price"};
    json_t *m, *products = json_object_get(p, "products"), *lines;
    size_t i;

    for (i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        m = money(json_object_get(p, totals[i]), c);
        if (m != NULL) {
            json_object_set_new(props, "total", m);
            break;
        }
    }
    if (!json_is_array(products))
        return;
    lines = json_array();
    for (i = 0; i < json_array_size(products) && i < 1000; i++) {
        const json_t *pr = json_array_get(products, i);
        json_t *line = json_object();
        const json_t *sku = json_object_get(pr, "sku");

        if (!json_is_object(pr)) {
            json_decref(line);
            continue;
        }
        if (sku == NULL)
            sku = json_object_get(pr, "product_id");
        if (json_is_string(sku))
            json_object_set(line, "sku", (json_t *)sku);
        if (json_is_string(json_object_get(pr, "name")))
            json_object_set(line, "name", json_object_get(pr, "name"));
        json_object_set_new(
            line, "quantity",
            json_integer(
                json_is_integer(json_object_get(pr, "quantity"))
                    ? json_integer_value(json_object_get(pr, "quantity"))
                    : 1));
        m = money(json_object_get(pr, "price"), c);
        if (m != NULL)
            json_object_set_new(line, "price", m);
        json_array_append_new(lines, line);
    }
    json_object_set_new(props, "lines", lines);
}

/* The time the event happened: Segment's skew correction. */
static uint64_t occurred(const json_t *call, uint64_t now_ms)
{
    uint64_t ts =
        web_parse_time(json_string_value(json_object_get(call, "timestamp")));
    uint64_t orig = web_parse_time(
        json_string_value(json_object_get(call, "originalTimestamp")));
    uint64_t sent =
        web_parse_time(json_string_value(json_object_get(call, "sentAt")));

    if (ts != 0)
        return ts;
    /* the device's clock may be off: what it says happened before it
     * sent, counted back from when it arrived */
    if (orig != 0 && sent != 0 && sent >= orig && now_ms >= sent - orig)
        return now_ms - (sent - orig);
    if (orig != 0)
        return orig;
    return now_ms;
}

json_t *web_segment_envelope(const json_t *call, const char *kind,
                             uint64_t now_ms, const char *secret, char *why,
                             size_t whylen)
{
    const json_t *ctx, *traits, *uid, *sig;
    json_t *env, *ids, *props = NULL, *source;
    char type[160];
    int verified = 0;

    if (!json_is_object(call)) {
        snprintf(why, whylen, "a call must be a JSON object");
        return NULL;
    }
    if (kind == NULL)
        kind = json_string_value(json_object_get(call, "type"));
    if (kind == NULL) {
        snprintf(why, whylen, "field 'type' is missing");
        return NULL;
    }
    ctx = json_object_get(call, "context");
    traits = json_object_get(call, "traits");
    if (!json_is_object(traits) && json_is_object(ctx))
        traits = json_object_get(ctx, "traits");
    uid = json_object_get(call, "userId");
    if (json_is_object(ctx)) {
        const json_t *og = json_object_get(ctx, "omnigate");

        sig = json_is_object(og) ? json_object_get(og, "signature") : NULL;
        verified = json_is_string(uid) && json_is_string(sig) &&
                   web_signature_ok(secret, json_string_value(uid),
                                    json_string_value(sig));
    }
    if (strcmp(kind, "track") == 0) {
        const json_t *ev = json_object_get(call, "event");

        if (!json_is_string(ev) || json_string_length(ev) == 0) {
            snprintf(why, whylen, "field 'event' must be a non-empty string");
            return NULL;
        }
        web_segment_type(json_string_value(ev), type, sizeof(type));
        props = json_is_object(json_object_get(call, "properties"))
                    ? props_of(json_object_get(call, "properties"))
                    : json_object();
        json_object_set(props, "event", (json_t *)ev);
        ecommerce(props, json_object_get(call, "properties"));
    } else if (strcmp(kind, "identify") == 0) {
        snprintf(type, sizeof(type), "customer.identified");
        props = json_object();
        if (json_is_object(traits))
            json_object_set_new(props, "traits", props_of(traits));
    } else if (strcmp(kind, "page") == 0 || strcmp(kind, "screen") == 0) {
        snprintf(type, sizeof(type), "%s.viewed", kind);
        props = json_is_object(json_object_get(call, "properties"))
                    ? props_of(json_object_get(call, "properties"))
                    : json_object();
        if (json_is_string(json_object_get(call, "name")))
            json_object_set(props, "name", json_object_get(call, "name"));
        if (json_is_string(json_object_get(call, "category")))
            json_object_set(props, "category",
                            json_object_get(call, "category"));
    } else if (strcmp(kind, "group") == 0) {
        snprintf(type, sizeof(type), "customer.grouped");
        props = json_object();
        if (json_object_get(call, "groupId") != NULL)
            json_object_set(props, "group_id",
                            json_object_get(call, "groupId"));
        if (json_is_object(traits))
            json_object_set_new(props, "group_traits", props_of(traits));
    } else if (strcmp(kind, "alias") == 0) {
        snprintf(type, sizeof(type), "customer.aliased");
        props = json_object();
        if (json_object_get(call, "previousId") != NULL)
            json_object_set(props, "previous_id",
                            json_object_get(call, "previousId"));
    } else {
        snprintf(why, whylen,
                 "type '%.40s' is not a Segment call (track, identify, page, "
                 "screen, group, alias)",
                 kind);
        return NULL;
    }
    ids = json_array();
    add_key(ids, "user", uid, verified);
    add_key(ids, "anon", json_object_get(call, "anonymousId"), 0);
    if (strcmp(kind, "alias") == 0)
        add_key(ids, "anon", json_object_get(call, "previousId"), 0);
    if (json_is_object(traits)) {
        add_key(ids, "email", json_object_get(traits, "email"), 0);
        add_key(ids, "phone", json_object_get(traits, "phone"), 0);
    }
    if (json_array_size(ids) == 0) {
        json_decref(ids);
        json_decref(props);
        snprintf(why, whylen, "a call needs a userId or an anonymousId");
        return NULL;
    }
    source = json_pack("{ss}", "channel", "web");
    if (json_is_string(json_object_get(call, "messageId")))
        json_object_set(source, "vendor_id",
                        json_object_get(call, "messageId"));
    env = json_pack("{sissso}", "v", 1, "type", type, "source", source);
    json_object_set_new(env, "occurred",
                        json_integer((json_int_t)occurred(call, now_ms)));
    json_object_set_new(env, "ids", ids);
    if (json_is_object(ctx)) {
        json_t *c = props_of(ctx);

        json_object_del(c, "omnigate"); /* the signature stays here */
        json_object_set_new(env, "context", c);
    }
    json_object_set_new(env, "props", props);
    return env;
}
