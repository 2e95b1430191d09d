/*
 * test_event.c: envelope acceptance (every refusal reason), stamping,
 * accessors, the builder and UUIDv7 ids.
 */
#include "config.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "testutil.h"

#define MAX 4096

static og__refusal_t last_reason;

static og_event_t *accept_bytes(const void *b, size_t n, og_err_t *rc,
                                char *why)
{
    return og__event_accept(b, n, "pos-1", "dropdir", MAX, rc, &last_reason,
                            why, 256);
}

/* Packs a map from alternating key/value C strings; "#N" values become
 * integers. */
static uint8_t *pack_map(size_t *len, size_t npairs, ...)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    va_list ap;
    size_t i;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, npairs);
    va_start(ap, npairs);
    for (i = 0; i < npairs; i++) {
        const char *k = va_arg(ap, const char *);
        const char *v = va_arg(ap, const char *);
        msgpack_pack_str_with_body(&pk, k, strlen(k));
        if (v[0] == '#')
            msgpack_pack_int64(&pk, atoll(v + 1));
        else
            msgpack_pack_str_with_body(&pk, v, strlen(v));
    }
    va_end(ap);
    *len = sb.size;
    return (uint8_t *)msgpack_sbuffer_release(&sb);
}

static void expect_refusal(const uint8_t *b, size_t n, og_err_t want_rc,
                           og__refusal_t want_reason, const char *want_why)
{
    char why[256] = "";
    og_err_t rc = OG_OK;
    og_event_t *ev = accept_bytes(b, n, &rc, why);

    CU_ASSERT_PTR_NULL(ev);
    CU_ASSERT_EQUAL(rc, want_rc);
    CU_ASSERT_EQUAL(last_reason, want_reason);
    if (strcmp(why, want_why) != 0)
        fprintf(stderr, "  got:  %s\n  want: %s\n", why, want_why);
    CU_ASSERT_STRING_EQUAL(why, want_why);
    og__event_unref(ev);
}

/* Packs {v:1, type:"a.b", <key>: <the MessagePack object in raw>}. */
static uint8_t *with_field(const char *key, const uint8_t *raw, size_t rawlen,
                           size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    tu_pack_head(&sb, &pk, "a.b", 1);
    msgpack_pack_str_with_body(&pk, key, strlen(key));
    msgpack_sbuffer_write(&sb, (const char *)raw, rawlen);
    *len = sb.size;
    return (uint8_t *)msgpack_sbuffer_release(&sb);
}

#define FIELD_REFUSAL(key, raw, reason, text)                                  \
    do {                                                                       \
        size_t fl;                                                             \
        uint8_t *fb =                                                          \
            with_field(key, (const uint8_t *)(raw), sizeof(raw) - 1, &fl);     \
        expect_refusal(fb, fl, OG_ERR_INVALID, reason, text);                  \
        free(fb);                                                              \
    } while (0)

static void test_refusals(void)
{
    static const uint8_t not_msgpack[] = {0xc1};
    static const uint8_t truncated[] = {0x82, 0xa1, 'v'};
    static const uint8_t array[] = {0x91, 0x01};
    static const uint8_t intkey[] = {0x81, 0x01, 0x01};
    uint8_t *b, big[MAX + 1];
    size_t n;

    expect_refusal(NULL, 0, OG_ERR_INVALID, OG__REFUSE_MSGPACK, "empty event");
    expect_refusal(not_msgpack, sizeof(not_msgpack), OG_ERR_INVALID,
                   OG__REFUSE_MSGPACK, "invalid MessagePack");
    expect_refusal(truncated, sizeof(truncated), OG_ERR_INVALID,
                   OG__REFUSE_MSGPACK,
                   "invalid MessagePack: truncated at byte 3");
    expect_refusal(array, sizeof(array), OG_ERR_INVALID, OG__REFUSE_NOT_MAP,
                   "envelope must be a map");
    expect_refusal(intkey, sizeof(intkey), OG_ERR_INVALID, OG__REFUSE_TYPE,
                   "envelope key #0 is not a string");
    memset(big, 0, sizeof(big));
    expect_refusal(big, sizeof(big), OG_ERR_TOO_LARGE, OG__REFUSE_TOO_LARGE,
                   "event of 4097 bytes exceeds max_event_size (4096)");

    b = pack_map(&n, 1, "type", "a.b");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_MISSING,
                   "missing field 'v'");
    free(b);
    b = pack_map(&n, 1, "v", "#1");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_MISSING,
                   "missing field 'type'");
    free(b);
    b = pack_map(&n, 2, "v", "#2", "type", "a.b");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_VERSION,
                   "unsupported schema version 2 (this host speaks 1)");
    free(b);
    b = pack_map(&n, 2, "v", "1", "type", "a.b");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_TYPE,
                   "field 'v' must be an integer");
    free(b);
    b = pack_map(&n, 2, "v", "#1", "type", "#7");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_TYPE,
                   "field 'type' must be a string");
    free(b);
    b = pack_map(&n, 2, "v", "#1", "type", "Order Placed");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_VALUE,
                   "field 'type' must be 1-128 characters of a-z, 0-9, '_', "
                   "'-', '.'");
    free(b);
    b = pack_map(&n, 3, "v", "#1", "type", "a.b", "id", "has space");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_VALUE,
                   "field 'id' must be 1-64 printable ASCII characters");
    free(b);
    b = pack_map(&n, 3, "v", "#1", "type", "a.b", "customer", "#5");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_TYPE,
                   "field 'customer' must be a string");
    free(b);
    b = pack_map(&n, 3, "v", "#1", "type", "a.b", "source", "web");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_TYPE,
                   "field 'source' must be a map");
    free(b);
    b = pack_map(&n, 3, "v", "#1", "type", "a.b", "occurred", "#-5");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_TYPE,
                   "field 'occurred' must be a positive integer (milliseconds "
                   "since the epoch)");
    free(b);
    b = pack_map(&n, 3, "v", "#1", "type", "a.b", "colour", "red");
    expect_refusal(b, n, OG_ERR_INVALID, OG__REFUSE_UNKNOWN,
                   "unknown field 'colour' (custom data goes in props)");
    free(b);
    /* trailing bytes after a valid map */
    b = pack_map(&n, 2, "v", "#1", "type", "a.b");
    b = realloc(b, n + 2);
    b[n] = 0x01;
    b[n + 1] = 0x02;
    expect_refusal(b, n + 2, OG_ERR_INVALID, OG__REFUSE_MSGPACK,
                   "2 trailing bytes after the envelope");
    free(b);

    /* nested fields; raw MessagePack written as C strings */
    FIELD_REFUSAL("source",
                  "\x81\xa7"
                  "channel"
                  "\xa3"
                  "Web",
                  OG__REFUSE_VALUE,
                  "field 'source.channel' must be 1-64 characters of a-z, "
                  "0-9, '_', '-', '.'");
    FIELD_REFUSAL("source",
                  "\x81\xa4"
                  "shop"
                  "\x01",
                  OG__REFUSE_UNKNOWN, "unknown field 'source.shop'");
    /* consent: {PURPOSE: {CHANNEL: bool}} */
    FIELD_REFUSAL("consent",
                  "\x81\xaa"
                  "newsletter"
                  "\x80",
                  OG__REFUSE_VALUE,
                  "consent: purpose must be marketing or transactional");
    FIELD_REFUSAL("consent",
                  "\x81\xa9"
                  "marketing"
                  "\xc3",
                  OG__REFUSE_TYPE,
                  "consent.marketing must be a map of channel to boolean");
    FIELD_REFUSAL("consent",
                  "\x81\xa9"
                  "marketing"
                  "\x81\xa5"
                  "email"
                  "\xa3"
                  "yes",
                  OG__REFUSE_TYPE, "consent.marketing.email must be a boolean");
    FIELD_REFUSAL("consent",
                  "\x81\xa9"
                  "marketing"
                  "\x81\xa6"
                  "E Mail"
                  "\xc3",
                  OG__REFUSE_VALUE,
                  "consent.marketing: a channel must be 1-64 of a-z, 0-9, "
                  "'_', '-', '.' or \"*\"");
    FIELD_REFUSAL("ids",
                  "\x81\xa1"
                  "a"
                  "\x01",
                  OG__REFUSE_TYPE, "field 'ids' must be an array");
    FIELD_REFUSAL("ids",
                  "\x91\x81\xa4"
                  "kind"
                  "\xa5"
                  "email",
                  OG__REFUSE_MISSING, "missing field 'ids[0].value'");
    FIELD_REFUSAL("ids",
                  "\x92\x82\xa4"
                  "kind"
                  "\xa5"
                  "email"
                  "\xa5"
                  "value"
                  "\xa1"
                  "x"
                  "\x82\xa4"
                  "kind"
                  "\xa5"
                  "email"
                  "\xa5"
                  "value"
                  "\xa0",
                  OG__REFUSE_VALUE,
                  "field 'ids[1].value' must be 1-256 characters");
    FIELD_REFUSAL("ids",
                  "\x91\x83\xa4"
                  "kind"
                  "\xa5"
                  "email"
                  "\xa5"
                  "value"
                  "\xa1"
                  "x"
                  "\xa8"
                  "verified"
                  "\x01",
                  OG__REFUSE_TYPE, "field 'ids[0].verified' must be a boolean");
    FIELD_REFUSAL("entity",
                  "\x81\xa4"
                  "kind"
                  "\xa4"
                  "cart",
                  OG__REFUSE_MISSING, "missing field 'entity.id'");
    FIELD_REFUSAL("entity",
                  "\x83\xa4"
                  "kind"
                  "\xa4"
                  "cart"
                  "\xa2"
                  "id"
                  "\xa2"
                  "c1"
                  "\xa7"
                  "version"
                  "\xa1"
                  "x",
                  OG__REFUSE_TYPE,
                  "field 'entity.version' must be a positive integer");
    FIELD_REFUSAL("props",
                  "\x81\xa5"
                  "total"
                  "\x82\xa6"
                  "amount"
                  "\xcb\x40\x29\x00\x00\x00\x00\x00\x00"
                  "\xa8"
                  "currency"
                  "\xa3"
                  "EUR",
                  OG__REFUSE_TYPE,
                  "an amount in 'props' must be an integer in minor units "
                  "(cents), not a float");
    FIELD_REFUSAL("props",
                  "\x81\xa5"
                  "lines"
                  "\x91\x82\xa6"
                  "amount"
                  "\x05"
                  "\xa8"
                  "currency"
                  "\xa3"
                  "eur",
                  OG__REFUSE_VALUE,
                  "a currency in 'props' must be an ISO 4217 code such as "
                  "\"EUR\"");
    FIELD_REFUSAL("context", "\x01", OG__REFUSE_TYPE,
                  "field 'context' must be a map");
}

static void test_full_envelope(void)
{
    /* every v1 field at once is accepted */
    static const uint8_t raw[] = "\x8e"
                                 "\xa1"
                                 "v"
                                 "\x01"
                                 "\xa4"
                                 "type"
                                 "\xac"
                                 "order.placed"
                                 "\xa2"
                                 "id"
                                 "\xa3"
                                 "e-1"
                                 "\xa8"
                                 "occurred"
                                 "\xcf\x00\x00\x01\x9a\x00\x00\x00\x00"
                                 "\xa6"
                                 "source"
                                 "\x82\xa7"
                                 "channel"
                                 "\xa3"
                                 "pos"
                                 "\xa9"
                                 "vendor_id"
                                 "\xa2"
                                 "v9"
                                 "\xa3"
                                 "ids"
                                 "\x91\x83\xa4"
                                 "kind"
                                 "\xa5"
                                 "email"
                                 "\xa5"
                                 "value"
                                 "\xa7"
                                 "a@b.com"
                                 "\xa8"
                                 "verified"
                                 "\xc3"
                                 "\xa8"
                                 "customer"
                                 "\xa2"
                                 "c1"
                                 "\xac"
                                 "conversation"
                                 "\xa2"
                                 "k1"
                                 "\xa8"
                                 "location"
                                 "\xa8"
                                 "store-12"
                                 "\xab"
                                 "correlation"
                                 "\xa2"
                                 "r1"
                                 "\xa9"
                                 "causation"
                                 "\xa2"
                                 "x1"
                                 "\xa6"
                                 "entity"
                                 "\x83\xa4"
                                 "kind"
                                 "\xa5"
                                 "order"
                                 "\xa2"
                                 "id"
                                 "\xa2"
                                 "o1"
                                 "\xa7"
                                 "version"
                                 "\x03"
                                 "\xa7"
                                 "consent"
                                 "\x80"
                                 "\xa5"
                                 "props"
                                 "\x81\xa5"
                                 "total"
                                 "\x82\xa6"
                                 "amount"
                                 "\xcd\x13\x7e"
                                 "\xa8"
                                 "currency"
                                 "\xa3"
                                 "EUR";
    og_err_t rc;
    char why[256];
    og_event_t *ev = accept_bytes(raw, sizeof(raw) - 1, &rc, why);
    int64_t amount;

    if (ev == NULL)
        fprintf(stderr, "refused: %s\n", why);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_EQUAL(last_reason, OG__REFUSE_NONE);
    CU_ASSERT_EQUAL(og__event_get_int(ev, "props.total.amount", &amount),
                    OG_OK);
    CU_ASSERT_EQUAL(amount, 4990);
    CU_ASSERT_STRING_EQUAL(og__event_id(ev), "e-1");
    og__event_unref(ev);
}

static int is_uuid7(const char *s)
{
    size_t i;

    if (strlen(s) != 36 || s[14] != '7')
        return 0;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (strchr("0123456789abcdef", s[i]) == NULL) {
            return 0;
        }
    }
    return strchr("89ab", s[19]) != NULL;
}

static void test_accept_and_stamp(void)
{
    char why[256];
    og_err_t rc;
    uint8_t *b;
    size_t n, len;
    og_event_t *ev;
    const char *s;
    int64_t i;

    b = pack_map(&n, 3, "v", "#1", "type", "order.placed", "customer", "c-1");
    ev = accept_bytes(b, n, &rc, why);
    free(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_EQUAL(rc, OG_OK);
    CU_ASSERT_STRING_EQUAL(og__event_type(ev), "order.placed");
    CU_ASSERT_TRUE(is_uuid7(og__event_id(ev)));
    CU_ASSERT_EQUAL(og__event_get_str(ev, "source.instance", &s, &len), OG_OK);
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_EQUAL(memcmp(s, "pos-1", 5), 0);
    CU_ASSERT_EQUAL(og__event_get_str(ev, "customer", &s, &len), OG_OK);
    CU_ASSERT_EQUAL(og__event_get_int(ev, "received", &i), OG_OK);
    CU_ASSERT_TRUE(i > 1700000000000LL);
    CU_ASSERT_EQUAL(og__event_get_int(ev, "customer", &i), OG_ERR_TYPE);
    CU_ASSERT_EQUAL(og__event_get_str(ev, "nothing.here", &s, &len),
                    OG_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(og__event_get_str(ev, "customer.deeper", &s, &len),
                    OG_ERR_NOT_FOUND);
    og__event_unref(ev);

    /* A plugin cannot spoof core-owned fields; its own id is kept. */
    {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        tu_pack_head(&sb, &pk, "x.y", 3);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_str_with_body(&pk, "evt-123", 7);
        msgpack_pack_str_with_body(&pk, "received", 8);
        msgpack_pack_uint8(&pk, 5);
        msgpack_pack_str_with_body(&pk, "source", 6);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "instance", 8);
        msgpack_pack_str_with_body(&pk, "evil", 4);
        msgpack_pack_str_with_body(&pk, "vendor_id", 9);
        msgpack_pack_str_with_body(&pk, "V9", 2);
        ev = accept_bytes(sb.data, sb.size, &rc, why);
        msgpack_sbuffer_destroy(&sb);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_STRING_EQUAL(og__event_id(ev), "evt-123");
    CU_ASSERT_EQUAL(og__event_get_str(ev, "source.instance", &s, &len), OG_OK);
    CU_ASSERT_EQUAL(len == 5 && memcmp(s, "pos-1", 5) == 0, 1);
    CU_ASSERT_EQUAL(og__event_get_str(ev, "source.vendor_id", &s, &len), OG_OK);
    CU_ASSERT_EQUAL(og__event_get_int(ev, "received", &i), OG_OK);
    CU_ASSERT_NOT_EQUAL(i, 5);
    /* Shared by reference count. */
    CU_ASSERT_PTR_EQUAL(og__event_ref(ev), ev);
    CU_ASSERT_EQUAL(ev->refs, 2);
    og__event_unref(ev);
    og__event_unref(ev);
}

static void test_builder(void)
{
    og_event_builder_t *b = og__builder_create(NULL, "cart.updated");
    uint8_t *bytes;
    size_t n, len;
    og_event_t *ev;
    og_err_t rc;
    char why[256];
    const char *s;
    int64_t i;
    int flag;
    static const uint8_t lines[] = {0x92, 0x01, 0x02}; /* [1, 2] */
    static const uint8_t two_objs[] = {0x01, 0x02};

    CU_ASSERT_PTR_NULL(og__builder_create(NULL, "Bad Type"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(og__builder_set_str(b, "props.cart.id", "c9"), OG_OK);
    CU_ASSERT_EQUAL(og__builder_set_int(b, "props.cart.total", 1999), OG_OK);
    CU_ASSERT_EQUAL(og__builder_set_bool(b, "props.gift", 1), OG_OK);
    CU_ASSERT_EQUAL(og__builder_set_double(b, "props.rate", 0.5), OG_OK);
    CU_ASSERT_EQUAL(
        og__builder_set_msgpack(b, "props.lines", lines, sizeof(lines)), OG_OK);
    CU_ASSERT_EQUAL(
        og__builder_set_msgpack(b, "props.bad", two_objs, sizeof(two_objs)),
        OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og__builder_set_str(b, "props.cart.id", "c10"), OG_OK);
    /* a value where a map is needed */
    CU_ASSERT_EQUAL(og__builder_set_str(b, "props.gift.wrap", "x"),
                    OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og__builder_set_str(b, "v", "2"), OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og__builder_set_str(b, "source.instance", "x"),
                    OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og__builder_set_str(b, "a..b", "x"), OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og__builder_add_identity(b, "email", "a@b.c", 1), OG_OK);
    CU_ASSERT_EQUAL(og__builder_add_identity(b, "Bad Kind", "x", 0),
                    OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og__builder_encode(b, &bytes, &n), OG_OK);
    og__builder_destroy(b);
    ev = accept_bytes(bytes, n, &rc, why);
    free(bytes);
    if (ev == NULL)
        fprintf(stderr, "builder event refused: %s\n", why);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_EQUAL(og__event_get_str(ev, "props.cart.id", &s, &len), OG_OK);
    CU_ASSERT_TRUE(len == 3 && memcmp(s, "c10", 3) == 0);
    CU_ASSERT_EQUAL(og__event_get_int(ev, "props.cart.total", &i), OG_OK);
    CU_ASSERT_EQUAL(i, 1999);
    CU_ASSERT_EQUAL(og__event_get_bool(ev, "props.gift", &flag), OG_OK);
    CU_ASSERT_EQUAL(flag, 1);
    {
        const msgpack_object *o;
        CU_ASSERT_EQUAL(og__event_lookup(ev, "props.lines", &o), OG_OK);
        CU_ASSERT_EQUAL(o->type, MSGPACK_OBJECT_ARRAY);
        CU_ASSERT_EQUAL(o->via.array.size, 2);
        CU_ASSERT_EQUAL(og__event_lookup(ev, "ids", &o), OG_OK);
        CU_ASSERT_EQUAL(o->type, MSGPACK_OBJECT_ARRAY);
        CU_ASSERT_EQUAL(o->via.array.size, 1);
    }
    og__event_unref(ev);
}

static void test_mp_skip(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint8_t deep[70];
    size_t i, n;
    static const uint8_t bin[300] = {0};

    /* One object of every family, nested, packed by msgpack-c itself. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 12);
    msgpack_pack_str_with_body(&pk, "i", 1);
    msgpack_pack_int64(&pk, -5000000000LL);
    msgpack_pack_str_with_body(&pk, "u", 1);
    msgpack_pack_uint64(&pk, 18000000000000000000ULL);
    msgpack_pack_str_with_body(&pk, "f", 1);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_str_with_body(&pk, "g", 1);
    msgpack_pack_float(&pk, 2.5f);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_bin_with_body(&pk, bin, sizeof(bin));
    msgpack_pack_str_with_body(&pk, "e", 1);
    msgpack_pack_ext_with_body(&pk, bin, 4, 7);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_ext_with_body(&pk, bin, 200, 9);
    msgpack_pack_str_with_body(&pk, "s", 1);
    msgpack_pack_str_with_body(&pk, (const char *)bin, 40);
    msgpack_pack_str_with_body(&pk, "l", 1);
    msgpack_pack_str_with_body(&pk, (const char *)bin, 300);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_array(&pk, 20);
    for (i = 0; i < 20; i++)
        msgpack_pack_int(&pk, (int)i * 1000);
    msgpack_pack_str_with_body(&pk, "m", 1);
    msgpack_pack_map(&pk, 17);
    for (i = 0; i < 17; i++) {
        msgpack_pack_int(&pk, (int)i);
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_str_with_body(&pk, "t", 1);
    msgpack_pack_true(&pk);
    n = sb.size;
    CU_ASSERT_EQUAL(og__mp_skip((const uint8_t *)sb.data, n), n);
    /* with bytes after it, the skip stops at the object's end */
    msgpack_pack_int(&pk, 1);
    CU_ASSERT_EQUAL(og__mp_skip((const uint8_t *)sb.data, sb.size), n);
    /* every truncation is refused */
    for (i = 0; i < n; i++)
        CU_ASSERT_EQUAL_FATAL(og__mp_skip((const uint8_t *)sb.data, i), 0);
    msgpack_sbuffer_destroy(&sb);

    CU_ASSERT_EQUAL(og__mp_skip((const uint8_t *)"\xc1", 1), 0);
    /* 65 nested arrays are refused, 64 are fine */
    memset(deep, 0x91, sizeof(deep));
    deep[64] = 0x01;
    CU_ASSERT_EQUAL(og__mp_skip(deep, 65), 65);
    deep[64] = 0x91;
    deep[65] = 0x01;
    CU_ASSERT_EQUAL(og__mp_skip(deep, 66), 0);
}

static void test_nonminimal_keys(void)
{
    /* keys written as str8 and str16 (valid MessagePack, just not the
     * shortest form): the stamped copy must still keep exactly the right
     * bytes */
    static const uint8_t raw[] = "\x84"
                                 "\xd9\x01"
                                 "v"
                                 "\x01"
                                 "\xda\x00\x04"
                                 "type"
                                 "\xa3"
                                 "a.b"
                                 "\xd9\x05"
                                 "props"
                                 "\x81\xa1"
                                 "k"
                                 "\xa2"
                                 "ok"
                                 "\xda\x00\x06"
                                 "source"
                                 "\x82\xd9\x08"
                                 "instance"
                                 "\xa4"
                                 "evil"
                                 "\xa9"
                                 "vendor_id"
                                 "\xa2"
                                 "v1";
    og_err_t rc;
    char why[256];
    og_event_t *ev = accept_bytes(raw, sizeof(raw) - 1, &rc, why);
    const char *v;
    size_t len;

    if (ev == NULL)
        fprintf(stderr, "refused: %s\n", why);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_EQUAL(og__event_get_str(ev, "props.k", &v, &len), OG_OK);
    CU_ASSERT_TRUE(len == 2 && memcmp(v, "ok", 2) == 0);
    CU_ASSERT_EQUAL(og__event_get_str(ev, "source.instance", &v, &len), OG_OK);
    CU_ASSERT_TRUE(len == 5 && memcmp(v, "pos-1", 5) == 0);
    CU_ASSERT_EQUAL(og__event_get_str(ev, "source.vendor_id", &v, &len), OG_OK);
    CU_ASSERT_TRUE(len == 2 && memcmp(v, "v1", 2) == 0);
    /* the stamped copy is itself one valid object of exactly its length */
    CU_ASSERT_EQUAL(og__mp_skip(ev->data, ev->len), ev->len);
    og__event_unref(ev);
}

/* xorshift64*: a deterministic generator, so any failure replays. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return (uint32_t)((rnd_state * 2685821657736338717ull) >> 33) % n;
}

static void test_mutations(void)
{
    /* a valid envelope with nested maps, arrays, money and ids */
    static const uint8_t seed[] = "\x88\xa1v\x01\xa4type\xacorder.placed"
                                  "\xa6source\x82\xa7"
                                  "channel\xa3pos\xa9vendor_id\xa2v9"
                                  "\xa3ids\x91\x83\xa4kind\xa5"
                                  "email\xa5value\xa3"
                                  "a@b\xa8verified\xc3"
                                  "\xa8location\xa2s1"
                                  "\xa6"
                                  "entity\x82\xa4kind\xa5order\xa2id\xa2o1"
                                  "\xa8occurred\xce\x10\x00\x00\x00"
                                  "\xa5props\x82\xa5total\x82\xa6"
                                  "amount\xcd\x13\x7e\xa8"
                                  "currency\xa3"
                                  "EUR\xa5lines\x92\x81\xa3sku\xa1"
                                  "A\x81\xa3qty\x02";
    uint8_t buf[sizeof(seed) + 16];
    size_t accepted = 0, refused = 0;
    int i;

    {
        og_err_t rc;
        char why[256];
        og_event_t *ev = accept_bytes(seed, sizeof(seed) - 1, &rc, why);
        if (ev == NULL)
            fprintf(stderr, "seed refused: %s\n", why);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        og__event_unref(ev);
    }
    for (i = 0; i < 200000; i++) {
        size_t n = sizeof(seed) - 1, k, m = 1 + rnd(4);
        og_err_t rc;
        char why[256] = "";
        og_event_t *ev;

        memcpy(buf, seed, n);
        for (k = 0; k < m; k++) {
            size_t at = rnd((uint32_t)n);
            switch (rnd(4)) {
            case 0: buf[at] ^= (uint8_t)(1u << rnd(8)); break;
            case 1: buf[at] = (uint8_t)rnd(256); break;
            case 2: n = at + 1; break; /* truncate */
            default:                   /* insert a byte */
                if (n < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = (uint8_t)rnd(256);
                    n++;
                }
            }
        }
        ev = accept_bytes(buf, n, &rc, why);
        if (ev == NULL) {
            refused++;
            CU_ASSERT_FATAL(last_reason != OG__REFUSE_NONE && why[0] != '\0');
            continue;
        }
        accepted++;
        /* what was accepted is one well-formed object msgpack-c reads */
        CU_ASSERT_FATAL(og__mp_skip(ev->data, ev->len) == ev->len);
        {
            const char *t;
            size_t tl;
            CU_ASSERT_FATAL(og__event_get_str(ev, "type", &t, &tl) == OG_OK);
            CU_ASSERT_FATAL(tl == strlen(ev->type) &&
                            memcmp(t, ev->type, tl) == 0);
            CU_ASSERT_FATAL(og__event_get_str(ev, "source.instance", &t, &tl) ==
                            OG_OK);
        }
        og__event_unref(ev);
    }
    fprintf(stderr, "mutations: %zu accepted, %zu refused\n", accepted,
            refused);
    CU_ASSERT_TRUE(accepted > 0 && refused > 0);
}

static void test_uuid7_order(void)
{
    char a[37], b[37];
    int i;

    og__uuid7(a);
    for (i = 0; i < 10000; i++) {
        og__uuid7(b);
        CU_ASSERT_FATAL(strcmp(a, b) < 0);
        memcpy(a, b, sizeof(a));
    }
    CU_ASSERT_TRUE(is_uuid7(b));
}

int main(void)
{
    CU_pSuite s;

    CU_initialize_registry();
    s = CU_add_suite("event", NULL, NULL);
    CU_add_test(s, "every refusal reason", test_refusals);
    CU_add_test(s, "accept and stamp", test_accept_and_stamp);
    CU_add_test(s, "every v1 field", test_full_envelope);
    CU_add_test(s, "builder", test_builder);
    CU_add_test(s, "skipping MessagePack objects", test_mp_skip);
    CU_add_test(s, "keys in non-minimal encodings", test_nonminimal_keys);
    CU_add_test(s, "200,000 mutated envelopes", test_mutations);
    CU_add_test(s, "uuid7 ordering", test_uuid7_order);
    return tu_run();
}
