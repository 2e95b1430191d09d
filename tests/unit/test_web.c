/*
 * test_web.c: the web channel's pure parts: the Standard Webhooks signature
 * (the specification's own test vector, rotation), site signatures of user
 * ids, times, JSON <-> MessagePack, and Segment calls mapped to envelopes.
 * The HTTP behaviour is tested against the real daemon
 * (tests/integration/test_web.py).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "web.h"

/* hooks.c calls the SDK's inline wrappers, which read the plugin's host
 * table; these tests never reach them. */
const og_host_api_t *og__host = NULL;

static void test_webhook_signature(void)
{
    /* From the Standard Webhooks specification's test suite. */
    static const char secret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    static const char body[] = "{\"test\": 2432232314}";
    char sig[600];

    CU_ASSERT_EQUAL(web_webhook_signature(
                        secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                        (const uint8_t *)body, strlen(body), sig, sizeof(sig)),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(sig,
                           "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* rotation: one signature per secret, in order */
    CU_ASSERT_EQUAL(web_webhook_signature(
                        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, "
                        "whsec_c2Vjb25kLXNlY3JldA==",
                        "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                        (const uint8_t *)body, strlen(body), sig, sizeof(sig)),
                    OG_OK);
    CU_ASSERT_NSTRING_EQUAL(
        sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,", 50);
    CU_ASSERT_EQUAL(strlen(sig), 47 + 1 + 47);
    /* bad secrets */
    CU_ASSERT_EQUAL(web_webhook_signature("whsec_!!!!", "m", 1,
                                          (const uint8_t *)"", 0, sig,
                                          sizeof(sig)),
                    OG_ERR_INVALID);
    CU_ASSERT_EQUAL(web_webhook_signature("", "m", 1, (const uint8_t *)"", 0,
                                          sig, sizeof(sig)),
                    OG_ERR_INVALID);
    CU_ASSERT_EQUAL(web_webhook_signature("whsec_abc", "m", 1,
                                          (const uint8_t *)"", 0, sig,
                                          sizeof(sig)),
                    OG_ERR_INVALID); /* not a multiple of 4 */
}

static void test_user_signature(void)
{
    char hex[65];

    /* computed the way a site's backend computes it */
    {
        FILE *p = popen("printf %s u-42 | openssl dgst -sha256 -hmac s3cret "
                        "-r | cut -c1-64",
                        "r");

        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_PTR_NOT_NULL(fgets(hex, sizeof(hex), p));
        pclose(p);
    }
    CU_ASSERT_TRUE(web_signature_ok("s3cret", "u-42", hex));
    CU_ASSERT_FALSE(web_signature_ok("s3cret", "u-43", hex));
    CU_ASSERT_FALSE(web_signature_ok("other", "u-42", hex));
    CU_ASSERT_FALSE(web_signature_ok("", "u-42", hex));
    hex[10] = hex[10] == 'a' ? 'b' : 'a';
    CU_ASSERT_FALSE(web_signature_ok("s3cret", "u-42", hex));
}

static void test_times(void)
{
    CU_ASSERT_EQUAL(web_parse_time("2026-11-30T10:00:00Z"), 1796032800000ull);
    CU_ASSERT_EQUAL(web_parse_time("2026-11-30T10:00:00.5Z"), 1796032800500ull);
    CU_ASSERT_EQUAL(web_parse_time("2026-11-30T10:00:00.123456Z"),
                    1796032800123ull);
    CU_ASSERT_EQUAL(web_parse_time("2026-11-30T11:30:00+01:30"),
                    1796032800000ull);
    CU_ASSERT_EQUAL(web_parse_time("2026-11-30T08:00:00-02:00"),
                    1796032800000ull);
    CU_ASSERT_EQUAL(web_parse_time("2026-11-30 10:00:00Z"), 1796032800000ull);
    CU_ASSERT_EQUAL(web_parse_time("2026-11-30T10:00:00"), 0); /* no zone */
    CU_ASSERT_EQUAL(web_parse_time("2026-13-30T10:00:00Z"), 0);
    CU_ASSERT_EQUAL(web_parse_time("yesterday"), 0);
    CU_ASSERT_EQUAL(web_parse_time(""), 0);
    CU_ASSERT_EQUAL(web_parse_time(NULL), 0);
}

static void test_json_msgpack(void)
{
    const char *text = "{\"a\":1,\"b\":-2,\"c\":1.5,\"d\":\"x\\u0000y\","
                       "\"e\":[true,false,null],\"f\":{\"g\":{}}}";
    json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL), *back;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    web_pack_json(&pk, j);
    back = web_mp_to_json((const uint8_t *)sb.data, sb.size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_TRUE(json_equal(j, back));
    CU_ASSERT_TRUE(json_is_integer(json_object_get(back, "a")));
    CU_ASSERT_TRUE(json_is_real(json_object_get(back, "c")));
    CU_ASSERT_EQUAL(json_string_length(json_object_get(back, "d")), 3);
    CU_ASSERT_PTR_NULL(web_mp_to_json((const uint8_t *)"\x92\x01", 2));
    json_decref(back);
    json_decref(j);
    msgpack_sbuffer_destroy(&sb);
}

static void test_segment_types(void)
{
    char t[160];

    web_segment_type("Order Completed", t, sizeof(t));
    CU_ASSERT_STRING_EQUAL(t, "order.placed");
    web_segment_type("Product Added", t, sizeof(t));
    CU_ASSERT_STRING_EQUAL(t, "cart.item_added");
    web_segment_type("Checkout Started", t, sizeof(t));
    CU_ASSERT_STRING_EQUAL(t, "checkout.started");
    web_segment_type("Video Played -- 2x!", t, sizeof(t));
    CU_ASSERT_STRING_EQUAL(t, "track.video_played_2x");
    web_segment_type("???", t, sizeof(t));
    CU_ASSERT_STRING_EQUAL(t, "track.x");
}

/* Loads a fixture: tests/fixtures/segment/NAME.json */
static json_t *fixture(const char *name)
{
    char path[1024];
    const char *top = getenv("OG_TOP_SRCDIR");
    json_error_t e;
    json_t *j;

    snprintf(path, sizeof(path), "%s/tests/fixtures/segment/%s.json",
             top ? top : "..", name);
    j = json_load_file(path, 0, &e);
    if (j == NULL)
        fprintf(stderr, "%s: %s\n", path, e.text);
    return j;
}

static const json_t *key_of(const json_t *env, const char *kind)
{
    const json_t *ids = json_object_get(env, "ids");
    size_t i;

    for (i = 0; i < json_array_size(ids); i++)
        if (strcmp(json_string_value(
                       json_object_get(json_array_get(ids, i), "kind")),
                   kind) == 0)
            return json_array_get(ids, i);
    return NULL;
}

static void test_segment_mapping(void)
{
    json_t *call, *env;
    const json_t *p, *line;
    char why[300];
    const uint64_t now = 1796032800000ull;

    /* track: Order Completed with products */
    call = fixture("track-order-completed");
    CU_ASSERT_PTR_NOT_NULL_FATAL(call);
    env = web_segment_envelope(call, "track", now, "s3cret", why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL_FATAL(env);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(env, "type")),
                           "order.placed");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
                               json_object_get(env, "source"), "vendor_id")),
                           "ajs-next-69b2bd0f3c5d4c0a8b8a5b9c1b2e5f10");
    p = json_object_get(env, "props");
    CU_ASSERT_EQUAL(json_integer_value(
                        json_object_get(json_object_get(p, "total"), "amount")),
                    2750);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
                               json_object_get(p, "total"), "currency")),
                           "EUR");
    line = json_array_get(json_object_get(p, "lines"), 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(line, "sku")),
                           "45360-32");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(line, "quantity")), 2);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(
                        json_object_get(line, "price"), "amount")),
                    1000);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "order_id")),
                           "50314b8e9bcf000000000000");
    /* the user id is not signed: unverified */
    CU_ASSERT_TRUE(
        json_is_false(json_object_get(key_of(env, "user"), "verified")));
    /* skew: sent 10 s after it happened by the device's clock */
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(env, "occurred")),
                    now - 10000);
    json_decref(env);
    json_decref(call);

    /* identify with a signed user id: verified; traits; email key */
    call = fixture("identify");
    CU_ASSERT_PTR_NOT_NULL_FATAL(call);
    env =
        web_segment_envelope(call, "identify", now, "s3cret", why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL_FATAL(env);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(env, "type")),
                           "customer.identified");
    CU_ASSERT_TRUE(
        json_is_true(json_object_get(key_of(env, "user"), "verified")));
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(key_of(env, "email"), "value")),
        "peter@example.com");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(
            json_object_get(json_object_get(env, "props"), "traits"), "name")),
        "Peter Gibbons");
    CU_ASSERT_PTR_NULL(json_object_get(json_object_get(env, "context"),
                                       "omnigate")); /* signature removed */
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(env, "occurred")),
                    1796032790000ull); /* its own timestamp */
    json_decref(env);
    /* the same with another secret: not verified */
    env =
        web_segment_envelope(call, "identify", now, "other", why, sizeof(why));
    CU_ASSERT_TRUE(
        json_is_false(json_object_get(key_of(env, "user"), "verified")));
    json_decref(env);
    json_decref(call);

    /* page */
    call = fixture("page");
    CU_ASSERT_PTR_NOT_NULL_FATAL(call);
    env = web_segment_envelope(call, "page", now, NULL, why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL_FATAL(env);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(env, "type")),
                           "page.viewed");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(
                               json_object_get(env, "props"), "name")),
                           "Home");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(key_of(env, "anon"), "value")),
        "507f191e810c19729de860ea");
    json_decref(env);
    json_decref(call);

    /* alias: the previous id becomes an anonymous key */
    call = fixture("alias");
    CU_ASSERT_PTR_NOT_NULL_FATAL(call);
    env = web_segment_envelope(call, "alias", now, NULL, why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL_FATAL(env);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(env, "type")),
                           "customer.aliased");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(key_of(env, "anon"), "value")),
        "39239-239239-239239-23923");
    json_decref(env);
    json_decref(call);

    /* refusals */
    call = json_pack("{ss}", "userId", "u");
    CU_ASSERT_PTR_NULL(
        web_segment_envelope(call, "track", now, NULL, why, sizeof(why)));
    CU_ASSERT_STRING_EQUAL(why, "field 'event' must be a non-empty string");
    CU_ASSERT_PTR_NULL(
        web_segment_envelope(call, "launch", now, NULL, why, sizeof(why)));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "is not a Segment call"));
    json_decref(call);
    call = json_pack("{ss}", "event", "x");
    CU_ASSERT_PTR_NULL(
        web_segment_envelope(call, "track", now, NULL, why, sizeof(why)));
    CU_ASSERT_STRING_EQUAL(why, "a call needs a userId or an anonymousId");
    json_decref(call);
}

/* The visitor map (issue 15): no id pushes out another by colliding with
 * it; only the bound forgets, the visitor seen longest ago first. */
static void test_visitors(void)
{
    web_live_t *l = web_live_create(NULL, 1000, 1000, 100000, NULL, NULL);
    char anon[40], cust[40];
    int i, known = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    for (i = 0; i < 100; i++) {
        snprintf(anon, sizeof(anon), "visitor-%d", i);
        snprintf(cust, sizeof(cust), "cust-%d", i);
        web_live_learn(l, anon, cust);
    }
    for (i = 0; i < 99900; i++) { /* a flood of other ids, to the bound */
        snprintf(anon, sizeof(anon), "flood-%08x-%d", (unsigned)rand(), i);
        web_live_learn(l, anon, "attacker");
    }
    for (i = 0; i < 100; i++) {
        const char *c;

        snprintf(anon, sizeof(anon), "visitor-%d", i);
        snprintf(cust, sizeof(cust), "cust-%d", i);
        c = web_live_customer(l, anon);
        known += c != NULL && strcmp(c, cust) == 0;
    }
    CU_ASSERT_EQUAL(known, 100);
    /* past the bound the oldest goes first: visitor-0, not the newest */
    web_live_learn(l, "visitor-0", "cust-0"); /* seen again: newest now */
    web_live_learn(l, "one-more", "x");
    CU_ASSERT_PTR_NOT_NULL(web_live_customer(l, "visitor-0"));
    CU_ASSERT_PTR_NULL(web_live_customer(l, "visitor-1"));
    CU_ASSERT_PTR_NOT_NULL(web_live_customer(l, "one-more"));
    web_live_destroy(l);
}

/* og_url_redact (SDK): no credential or token of a URL in a log line. */
static void test_url_redact(void)
{
    char out[120];

    CU_ASSERT_STRING_EQUAL(og_url_redact("https://u:p4ss@hooks.example/x?"
                                         "token=t0k#f",
                                         out, sizeof(out)),
                           "https://***@hooks.example/x?***");
    CU_ASSERT_STRING_EQUAL(
        og_url_redact("imaps://mail.example/INBOX", out, sizeof(out)),
        "imaps://mail.example/INBOX");
    CU_ASSERT_STRING_EQUAL(
        og_url_redact("http://h.example/a@b", out, sizeof(out)),
        "http://h.example/a@b");
    CU_ASSERT_STRING_EQUAL(og_url_redact("http://a:b@h", out, 8), "http://");
    CU_ASSERT_STRING_EQUAL(og_url_redact(NULL, out, sizeof(out)), "");
}

int main(void)
{
    CU_pSuite s;

    CU_initialize_registry();
    s = CU_add_suite("web", NULL, NULL);
    CU_add_test(s, "Standard Webhooks signature", test_webhook_signature);
    CU_add_test(s, "site-signed user ids", test_user_signature);
    CU_add_test(s, "RFC 3339 times", test_times);
    CU_add_test(s, "JSON <-> MessagePack", test_json_msgpack);
    CU_add_test(s, "Segment event names", test_segment_types);
    CU_add_test(s, "Segment calls as envelopes", test_segment_mapping);
    CU_add_test(s, "the visitor map (SipHash, bounded)", test_visitors);
    CU_add_test(s, "URLs redacted for logs", test_url_redact);
    return tu_run();
}
