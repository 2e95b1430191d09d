/*
 * test_event.c: envelope acceptance (every refusal reason), stamping,
 * accessors, the builder and UUIDv7 ids.
 */
#include "config.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "testutil.h"

#define MAX 4096

static og_event_t *accept_bytes(const void *b, size_t n, og_err_t *rc,
                                char *why)
{
    return og__event_accept(b, n, "pos-1", "dropdir", MAX, rc, why, 256);
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
                           const char *want_why)
{
    char why[256] = "";
    og_err_t rc = OG_OK;
    og_event_t *ev = accept_bytes(b, n, &rc, why);

    CU_ASSERT_PTR_NULL(ev);
    CU_ASSERT_EQUAL(rc, want_rc);
    CU_ASSERT_STRING_EQUAL(why, want_why);
    og__event_unref(ev);
}

static void test_refusals(void)
{
    static const uint8_t not_msgpack[] = {0xc1};
    static const uint8_t truncated[] = {0x82, 0xa1, 'v'};
    static const uint8_t array[] = {0x91, 0x01};
    static const uint8_t intkey[] = {0x81, 0x01, 0x01};
    uint8_t *b, big[MAX + 1];
    size_t n;

    expect_refusal(NULL, 0, OG_ERR_INVALID, "empty event");
    expect_refusal(not_msgpack, sizeof(not_msgpack), OG_ERR_INVALID,
                   "invalid MessagePack");
    expect_refusal(truncated, sizeof(truncated), OG_ERR_INVALID,
                   "invalid MessagePack: truncated at byte 3");
    expect_refusal(array, sizeof(array), OG_ERR_INVALID,
                   "envelope must be a map");
    expect_refusal(intkey, sizeof(intkey), OG_ERR_INVALID,
                   "envelope key #0 is not a string");
    memset(big, 0, sizeof(big));
    expect_refusal(big, sizeof(big), OG_ERR_TOO_LARGE,
                   "event of 4097 bytes exceeds max_event_size (4096)");

    b = pack_map(&n, 1, "type", "a.b");
    expect_refusal(b, n, OG_ERR_INVALID, "missing field 'v'");
    free(b);
    b = pack_map(&n, 1, "v", "#1");
    expect_refusal(b, n, OG_ERR_INVALID, "missing field 'type'");
    free(b);
    b = pack_map(&n, 2, "v", "#2", "type", "a.b");
    expect_refusal(b, n, OG_ERR_INVALID,
                   "unsupported schema version 2 (this host speaks 1)");
    free(b);
    b = pack_map(&n, 2, "v", "1", "type", "a.b");
    expect_refusal(b, n, OG_ERR_INVALID, "field 'v' must be an integer");
    free(b);
    b = pack_map(&n, 2, "v", "#1", "type", "#7");
    expect_refusal(b, n, OG_ERR_INVALID, "field 'type' must be a string");
    free(b);
    b = pack_map(&n, 2, "v", "#1", "type", "Order Placed");
    expect_refusal(b, n, OG_ERR_INVALID,
                   "field 'type' must be 1-128 characters of a-z, 0-9, '_', "
                   "'-', '.'");
    free(b);
    b = pack_map(&n, 3, "v", "#1", "type", "a.b", "id", "has space");
    expect_refusal(b, n, OG_ERR_INVALID,
                   "field 'id' must be a string of 1-64 printable ASCII "
                   "characters");
    free(b);
    b = pack_map(&n, 3, "v", "#1", "type", "a.b", "source", "web");
    expect_refusal(b, n, OG_ERR_INVALID, "field 'source' must be a map");
    free(b);
    b = pack_map(&n, 3, "v", "#1", "type", "a.b", "time", "#-5");
    expect_refusal(b, n, OG_ERR_INVALID,
                   "field 'time' must be a positive integer (milliseconds "
                   "since the epoch)");
    free(b);
    /* trailing bytes after a valid map */
    b = pack_map(&n, 2, "v", "#1", "type", "a.b");
    b = realloc(b, n + 2);
    b[n] = 0x01;
    b[n + 1] = 0x02;
    expect_refusal(b, n + 2, OG_ERR_INVALID,
                   "2 trailing bytes after the envelope");
    free(b);
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

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        msgpack_pack_str_with_body(&pk, "v", 1);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_str_with_body(&pk, "type", 4);
        msgpack_pack_str_with_body(&pk, "x.y", 3);
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
    CU_add_test(s, "builder", test_builder);
    CU_add_test(s, "uuid7 ordering", test_uuid7_order);
    return tu_run();
}
