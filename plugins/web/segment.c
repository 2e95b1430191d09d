/*
 * segment.c: Segment tracking calls as omnigate envelopes
 * (plugins/web/README.md has the mapping table).
 */
#include <ctype.h>
#include <math.h>
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

/* Decimal places of a currency's minor unit (ISO 4217). */
static int exponent(const char *cur)
{
    static const char zero[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX "
                               "UYI VND VUV XAF XOF XPF";
    static const char three[] = "BHD IQD JOD KWD LYD OMR TND";

    return strstr(zero, cur) ? 0 : strstr(three, cur) ? 3 : 2;
}

/* ---- packing: the envelope is written as MessagePack straight from the
 * parsed call, without building it as JSON first (every copy of a
 * Segment payload's properties and context showed in the benchmark). */

static void pstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* The text of an identity value (a string, or an integer id). */
static const char *key_text(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v) && json_string_length(v) > 0)
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return NULL;
}

struct key {
    const char *kind, *value;
    int verified;
    char buf[32];
};

static void add_key(struct key *k, size_t *n, const char *kind, const json_t *v,
                    int verified)
{
    if (*n < 8 &&
        (k[*n].value = key_text(v, k[*n].buf, sizeof(k[*n].buf))) != NULL) {
        k[*n].kind = kind;
        k[*n].verified = verified;
        (*n)++;
    }
}

/* A currency as the envelope wants it: three capital letters. */
static int currency_of(const json_t *v, char up[4])
{
    const char *s = json_string_value(v);
    size_t i;

    if (s == NULL || json_string_length(v) != 3)
        return 0;
    for (i = 0; i < 3; i++) {
        if (!isalpha((unsigned char)s[i]))
            return 0;
        up[i] = (char)toupper((unsigned char)s[i]);
    }
    up[3] = '\0';
    return 1;
}

/* Whether key of a map is written by pack_map() (and how many there
 * are): "currency" only when it can be one, else as "currency_text";
 * "amount" only when an integer, else as "amount_value". */
static size_t pack_map_pairs(msgpack_packer *pk, const json_t *m,
                             const char *const *skip, int write)
{
    const char *key;
    json_t *v;
    size_t n = 0, i;
    char up[4];

    json_object_foreach((json_t *)m, key, v)
    {
        for (i = 0; skip != NULL && skip[i] != NULL; i++)
            if (strcmp(key, skip[i]) == 0)
                break;
        if (skip != NULL && skip[i] != NULL)
            continue;
        n++;
        if (!write)
            continue;
        if (strcmp(key, "currency") == 0) {
            if (currency_of(v, up)) {
                pstr(pk, "currency");
                pstr(pk, up);
            } else {
                pstr(pk, "currency_text");
                web_pack_json(pk, v);
            }
        } else if (strcmp(key, "amount") == 0 && !json_is_integer(v)) {
            pstr(pk, "amount_value");
            web_pack_json(pk, v);
        } else {
            pstr(pk, key);
            web_pack_json(pk, v);
        }
    }
    return n;
}

/* A Segment map (properties, traits, context) with its money keys made
 * safe, without the keys in skip, and extra more pairs the caller writes
 * after it. */
static void pack_map(msgpack_packer *pk, const json_t *m,
                     const char *const *skip, size_t extra)
{
    size_t n = json_is_object(m) ? pack_map_pairs(pk, m, skip, 0) : 0;

    msgpack_pack_map(pk, n + extra);
    if (n > 0)
        pack_map_pairs(pk, m, skip, 1);
}

/* Writes {"amount": minor units, "currency": cur}; 0 when v is no price. */
static int pack_money(msgpack_packer *pk, const json_t *v, const char *cur,
                      int write)
{
    double x;
    int e = exponent(cur), i;

    if (json_is_integer(v))
        x = (double)json_integer_value(v);
    else if (json_is_real(v))
        x = json_real_value(v);
    else
        return 0;
    for (i = 0; i < e; i++)
        x *= 10;
    if (!isfinite(x) || fabs(x) > 9e15)
        return 0;
    if (write) {
        msgpack_pack_map(pk, 2);
        pstr(pk, "amount");
        msgpack_pack_int64(pk, (int64_t)llround(x));
        pstr(pk, "currency");
        pstr(pk, cur);
    }
    return 1;
}

/* props of a track call: its properties, "event", and for ecommerce
 * "total" (money) and "lines". */
static void pack_track_props(msgpack_packer *pk, const json_t *p,
                             const json_t *event)
{
    static const char *const skip[] = {"event", "total", "lines", NULL};
    static const char *const totals[] = {"total", "revenue", "value", "price"};
    char cur[4] = "USD";
    const json_t *total = NULL, *products = json_object_get(p, "products");
    size_t i, nlines = 0;

    currency_of(json_object_get(p, "currency"), cur);
    for (i = 0; i < sizeof(totals) / sizeof(totals[0]) && total == NULL; i++)
        if (pack_money(pk, json_object_get(p, totals[i]), cur, 0))
            total = json_object_get(p, totals[i]);
    if (json_is_array(products))
        for (i = 0; i < json_array_size(products) && i < 1000; i++)
            nlines += json_is_object(json_array_get(products, i));
    pack_map(pk, p, skip, 1 + (total != NULL) + (json_is_array(products)));
    pstr(pk, "event");
    web_pack_json(pk, event);
    if (total != NULL) {
        pstr(pk, "total");
        pack_money(pk, total, cur, 1);
    }
    if (!json_is_array(products))
        return;
    pstr(pk, "lines");
    msgpack_pack_array(pk, nlines);
    for (i = 0; i < json_array_size(products) && i < 1000; i++) {
        const json_t *pr = json_array_get(products, i), *sku, *q, *price;
        int has_price, has_name;

        if (!json_is_object(pr))
            continue;
        sku = json_object_get(pr, "sku");
        if (!json_is_string(sku))
            sku = json_object_get(pr, "product_id");
        q = json_object_get(pr, "quantity");
        price = json_object_get(pr, "price");
        has_price = pack_money(pk, price, cur, 0);
        has_name = json_is_string(json_object_get(pr, "name"));
        msgpack_pack_map(pk, 1 + json_is_string(sku) + has_name + has_price);
        if (json_is_string(sku)) {
            pstr(pk, "sku");
            web_pack_json(pk, sku);
        }
        if (has_name) {
            pstr(pk, "name");
            web_pack_json(pk, json_object_get(pr, "name"));
        }
        pstr(pk, "quantity");
        msgpack_pack_int64(pk, json_is_integer(q) ? json_integer_value(q) : 1);
        if (has_price) {
            pstr(pk, "price");
            pack_money(pk, price, cur, 1);
        }
    }
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

int web_segment_pack(msgpack_packer *pk, const json_t *call, const char *kind,
                     uint64_t now_ms, const char *secret, char *why,
                     size_t whylen)
{
    web_policy_t pol;
    int forbidden = 0;

    memset(&pol, 0, sizeof(pol));
    pol.secret = secret;
    return web_segment_pack_policy(pk, call, kind, now_ms, &pol, &forbidden,
                                   why, whylen);
}

int web_segment_pack_policy(msgpack_packer *pk, const json_t *call,
                            const char *kind, uint64_t now_ms,
                            web_policy_t *pol, int *forbidden, char *why,
                            size_t whylen)
{
    const char *secret = pol->secret;
    char vendor[300];
    const json_t *anon_id;
    static const char *const no_og[] = {"omnigate", NULL};
    const json_t *ctx, *traits, *uid, *ev = NULL, *mid, *props = NULL;
    struct key keys[8];
    char type[160];
    size_t nkeys = 0, i;
    int verified = 0, track, identify, page, group, alias;

    if (!json_is_object(call)) {
        snprintf(why, whylen, "a call must be a JSON object");
        return -1;
    }
    if (kind == NULL)
        kind = json_string_value(json_object_get(call, "type"));
    if (kind == NULL) {
        snprintf(why, whylen, "field 'type' is missing");
        return -1;
    }
    track = strcmp(kind, "track") == 0;
    identify = strcmp(kind, "identify") == 0;
    page = strcmp(kind, "page") == 0 || strcmp(kind, "screen") == 0;
    group = strcmp(kind, "group") == 0;
    alias = strcmp(kind, "alias") == 0;
    if (!track && !identify && !page && !group && !alias) {
        snprintf(why, whylen,
                 "type '%.40s' is not a Segment call (track, identify, page, "
                 "screen, group, alias)",
                 kind);
        return -1;
    }
    ctx = json_object_get(call, "context");
    traits = json_object_get(call, "traits");
    if (!json_is_object(traits) && json_is_object(ctx))
        traits = json_object_get(ctx, "traits");
    uid = json_object_get(call, "userId");
    if (json_is_object(ctx)) {
        const json_t *og = json_object_get(ctx, "omnigate");
        const json_t *sig =
            json_is_object(og) ? json_object_get(og, "signature") : NULL;

        verified = json_is_string(uid) && json_is_string(sig) &&
                   web_signature_ok(secret, json_string_value(uid),
                                    json_string_value(sig));
    }
    if (track) {
        ev = json_object_get(call, "event");
        if (!json_is_string(ev) || json_string_length(ev) == 0) {
            snprintf(why, whylen, "field 'event' must be a non-empty string");
            return -1;
        }
        web_segment_type(json_string_value(ev), type, sizeof(type));
    } else if (identify) {
        snprintf(type, sizeof(type), "customer.identified");
    } else if (page) {
        snprintf(type, sizeof(type), "%s.viewed", kind);
    } else if (group) {
        snprintf(type, sizeof(type), "customer.grouped");
    } else {
        snprintf(type, sizeof(type), "customer.aliased");
    }
    if (pol->browser && !web_browser_type_ok(type)) {
        *forbidden = 1;
        snprintf(why, whylen,
                 "a browser key may not send '%.128s' events (a server key "
                 "may: see docs/security.md)",
                 type);
        return -1;
    }
    add_key(keys, &nkeys, "user", uid, verified);
    anon_id = json_object_get(call, "anonymousId");
    /* A login claims the anonymous profile it logs in from: a browser
     * names it only with that visitor's session (policy.c). */
    if (pol->browser && verified && anon_id != NULL &&
        (pol->proven == NULL || !json_is_string(anon_id) ||
         strcmp(json_string_value(anon_id), pol->proven) != 0)) {
        web_policy_drop(pol, "anonymousId (an anon key without its session)");
        anon_id = NULL;
    }
    add_key(keys, &nkeys, "anon", anon_id, 0);
    if (alias && !pol->browser)
        add_key(keys, &nkeys, "anon", json_object_get(call, "previousId"), 0);
    else if (alias && json_object_get(call, "previousId") != NULL)
        web_policy_drop(pol, "previousId (no identity key from a browser)");
    if (json_is_object(traits)) {
        add_key(keys, &nkeys, "email", json_object_get(traits, "email"), 0);
        add_key(keys, &nkeys, "phone", json_object_get(traits, "phone"), 0);
    }
    if (nkeys == 0) {
        snprintf(why, whylen, "a call needs a userId or an anonymousId");
        return -1;
    }
    mid = json_object_get(call, "messageId");
    msgpack_pack_map(pk, 6 + json_is_object(ctx));
    pstr(pk, "v");
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "type");
    pstr(pk, type);
    pstr(pk, "source");
    msgpack_pack_map(pk, 1 + json_is_string(mid));
    pstr(pk, "channel");
    pstr(pk, "web");
    if (json_is_string(mid)) {
        pstr(pk, "vendor_id");
        if (pol->scope != NULL && pol->browser) { /* a browser's own ids */
            snprintf(vendor, sizeof(vendor), "%s/%s", pol->scope,
                     json_string_value(mid));
            vendor[256] = '\0';
            pstr(pk, vendor);
        } else {
            web_pack_json(pk, mid);
        }
    }
    pstr(pk, "occurred");
    msgpack_pack_uint64(pk, occurred(call, now_ms));
    pstr(pk, "ids");
    msgpack_pack_array(pk, nkeys);
    for (i = 0; i < nkeys; i++) {
        msgpack_pack_map(pk, 3);
        pstr(pk, "kind");
        pstr(pk, keys[i].kind);
        pstr(pk, "value");
        pstr(pk, keys[i].value);
        pstr(pk, "verified");
        if (keys[i].verified)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
    if (json_is_object(ctx)) {
        pstr(pk, "context"); /* the signature stays here */
        pack_map(pk, ctx, no_og, 0);
    }
    pstr(pk, "props");
    props = json_object_get(call, "properties");
    if (track) {
        pack_track_props(pk, json_is_object(props) ? props : NULL, ev);
    } else if (identify) {
        msgpack_pack_map(pk, json_is_object(traits));
        if (json_is_object(traits)) {
            pstr(pk, "traits");
            pack_map(pk, traits, NULL, 0);
        }
    } else if (page) {
        const json_t *name = json_object_get(call, "name"),
                     *cat = json_object_get(call, "category");
        static const char *const skip[] = {"name", "category", NULL};

        pack_map(pk, json_is_object(props) ? props : NULL, skip,
                 (size_t)json_is_string(name) + (size_t)json_is_string(cat));
        if (json_is_string(name)) {
            pstr(pk, "name");
            web_pack_json(pk, name);
        }
        if (json_is_string(cat)) {
            pstr(pk, "category");
            web_pack_json(pk, cat);
        }
    } else {
        const json_t *id =
            json_object_get(call, group ? "groupId" : "previousId");

        msgpack_pack_map(pk, (id != NULL) + (group && json_is_object(traits)));
        if (id != NULL) {
            pstr(pk, group ? "group_id" : "previous_id");
            web_pack_json(pk, id);
        }
        if (group && json_is_object(traits)) {
            pstr(pk, "group_traits");
            pack_map(pk, traits, NULL, 0);
        }
    }
    return 0;
}

json_t *web_segment_envelope(const json_t *call, const char *kind,
                             uint64_t now_ms, const char *secret, char *why,
                             size_t whylen)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    json_t *j = NULL;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (web_segment_pack(&pk, call, kind, now_ms, secret, why, whylen) == 0)
        j = web_mp_to_json((const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return j;
}
