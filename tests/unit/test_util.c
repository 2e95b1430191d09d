/* test_util.c: typed value parsing and list helpers. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "base/log.h"
#include "base/util.h"

static void test_bool(void)
{
    char why[128];
    int v = -1;

    CU_ASSERT_EQUAL(og__parse_bool("yes", &v, why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(og__parse_bool("Off", &v, why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(og__parse_bool("maybe", &v, why, sizeof(why)),
                    OG_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "boolean"));
}

static void test_int(void)
{
    char why[128];
    int64_t v;

    CU_ASSERT_EQUAL(og__parse_int("-42", &v, why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(v, -42);
    CU_ASSERT_EQUAL(og__parse_int("12x", &v, why, sizeof(why)), OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og__parse_int("", &v, why, sizeof(why)), OG_ERR_INVALID);
    CU_ASSERT_EQUAL(og__parse_int("99999999999999999999", &v, why, sizeof(why)),
                    OG_ERR_RANGE);
}

static void test_duration(void)
{
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {{"250ms", 250},   {"10s", 10000},  {"10", 10000},
              {"5m", 300000},   {"2h", 7200000}, {"1d", 86400000},
              {"3 min", 180000}};
    static const char *const bad[] = {"", "s", "-1s", "10q", "1.5s"};
    char why[128];
    uint64_t v;
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CU_ASSERT_EQUAL(og__parse_duration_ms(ok[i].in, &v, why, sizeof(why)),
                        OG_OK);
        CU_ASSERT_EQUAL(v, ok[i].ms);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_NOT_EQUAL(og__parse_duration_ms(bad[i], &v, why, sizeof(why)),
                            OG_OK);
    og__parse_duration_ms("10q", &v, why, sizeof(why));
    CU_ASSERT_STRING_EQUAL(why, "unknown duration unit 'q'");
    CU_ASSERT_EQUAL(
        og__parse_duration_ms("99999999999999999999d", &v, why, sizeof(why)),
        OG_ERR_RANGE);
}

static void test_size(void)
{
    char why[128];
    uint64_t v;

    CU_ASSERT_EQUAL(og__parse_size("512", &v, why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(v, 512);
    CU_ASSERT_EQUAL(og__parse_size("64k", &v, why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(v, 65536);
    CU_ASSERT_EQUAL(og__parse_size("10MiB", &v, why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(v, 10u << 20);
    CU_ASSERT_EQUAL(og__parse_size("1G", &v, why, sizeof(why)), OG_OK);
    CU_ASSERT_EQUAL(v, 1u << 30);
    CU_ASSERT_EQUAL(og__parse_size("1T", &v, why, sizeof(why)), OG_ERR_INVALID);
}

static void test_list_ident(void)
{
    size_t n;
    char **v = og__split_list(" a, b  c,,d ", &n);

    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_STRING_EQUAL(v[0], "a");
    CU_ASSERT_STRING_EQUAL(v[3], "d");
    CU_ASSERT_PTR_NULL(v[4]);
    og__strv_free(v);
    v = og__split_list("  ", &n);
    CU_ASSERT_EQUAL(n, 0);
    og__strv_free(v);
    CU_ASSERT_TRUE(og__is_ident("pos-12_a", 0));
    CU_ASSERT_FALSE(og__is_ident("pos.12", 0));
    CU_ASSERT_TRUE(og__is_ident("pos.12", 1));
    CU_ASSERT_FALSE(og__is_ident("Pos", 1));
    CU_ASSERT_FALSE(og__is_ident("", 1));
    CU_ASSERT_TRUE(og__is_ident_glob("order.*"));
    CU_ASSERT_FALSE(og__is_ident_glob("order/x"));
}

/* Log lines escape what could forge or break them (issue 16). */
static void test_log_clean(void)
{
    char out[64];

    og__log_clean("a\x01"
                  "b\xff"
                  "c\xc3\xa9"
                  "d\xed\xa0\x80"
                  "e\xc0\xaf"
                  "f\nline\r2\x7f",
                  out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "a\\x01b\\xffc\xc3\xa9"
                                "d\\xed\\xa0\\x80"
                                "e\\xc0\\xaf"
                                "f line 2\\x7f");
    og__log_clean("\xf0\x9f\x98\x80 \xf4\x90\x80\x80", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "\xf0\x9f\x98\x80 \\xf4\\x90\\x80\\x80");
    og__log_clean("\xe2\x82", out, sizeof(out)); /* cut short */
    CU_ASSERT_STRING_EQUAL(out, "\\xe2\\x82");
    og__log_clean("abcdef", out, 4); /* bounded */
    CU_ASSERT_STRING_EQUAL(out, "abc");
}

int main(void)
{
    CU_pSuite s;

    CU_initialize_registry();
    s = CU_add_suite("util", NULL, NULL);
    CU_add_test(s, "bool", test_bool);
    CU_add_test(s, "int", test_int);
    CU_add_test(s, "duration", test_duration);
    CU_add_test(s, "size", test_size);
    CU_add_test(s, "list and identifiers", test_list_ident);
    CU_add_test(s, "log lines cleaned", test_log_clean);
    return tu_run();
}
