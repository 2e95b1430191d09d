/*
 * test_mustache.c: the Mustache renderer against the specification's own
 * test suites (tests/fixtures/mustache-spec, copied from
 * ../shared/testdata with their LICENSE: comments, delimiters,
 * interpolation, inverted, partials, sections; 136 cases), then our own
 * cases: errors with line numbers, no escaping for text channels, the
 * names a template uses, partial recursion bounded.
 */
#include "config.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/mustache.h"
#include "testutil.h"
#include "web.h" /* web_pack_json: JSON as MessagePack */

static const char *partial_of(void *data, const char *name, size_t *len)
{
    json_t *v = json_object_get(data, name);

    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* Renders template over data (JSON); the output, malloc'd, or NULL. */
static char *render(const char *tmpl, json_t *data, json_t *partials,
                    int escape, char *why, size_t whylen)
{
    og__tmpl_t *t = og__tmpl_parse(tmpl, strlen(tmpl), why, whylen);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    og__sbuf_t out = {0};
    size_t off = 0;
    int rc;

    if (t == NULL)
        return NULL;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    web_pack_json(&pk, data ? data : json_null());
    msgpack_unpacked_init(&u);
    msgpack_unpack_next(&u, sb.data, sb.size, &off);
    rc = og__tmpl_render(t, &u.data, escape, partial_of, partials, &out, why,
                         whylen);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    og__tmpl_free(t);
    if (rc != 0) {
        og__sbuf_free(&out);
        return NULL;
    }
    return out.p;
}

static int passed, failed;

static void run_spec(const char *file)
{
    char path[1024], why[256];
    const char *top = getenv("OG_TOP_SRCDIR");
    json_error_t e;
    json_t *spec, *t;
    size_t i;

    snprintf(path, sizeof(path), "%s/tests/fixtures/mustache-spec/%s",
             top ? top : "..", file);
    spec = json_load_file(path, 0, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(spec);
    json_array_foreach(json_object_get(spec, "tests"), i, t)
    {
        const char *tmpl = json_string_value(json_object_get(t, "template"));
        const char *want = json_string_value(json_object_get(t, "expected"));
        char *got = render(tmpl, json_object_get(t, "data"),
                           json_object_get(t, "partials"), 1, why, sizeof(why));

        if (got != NULL && strcmp(got, want) == 0) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "  %s: %s\n    got:  [%s]%s\n    want: [%s]\n",
                    file, json_string_value(json_object_get(t, "name")),
                    got ? got : "(error)", got ? "" : why, want);
        }
        CU_ASSERT_PTR_NOT_NULL(got);
        CU_ASSERT_STRING_EQUAL(got ? got : "", want);
        free(got);
    }
    json_decref(spec);
}

static void test_spec(void)
{
    static const char *const files[] = {"comments.json",      "delimiters.json",
                                        "interpolation.json", "inverted.json",
                                        "partials.json",      "sections.json"};
    size_t i;

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        run_spec(files[i]);
    fprintf(stderr, "  mustache spec: %d passed, %d failed\n", passed, failed);
    CU_ASSERT_EQUAL(passed, 136);
    CU_ASSERT_EQUAL(failed, 0);
}

static void test_errors(void)
{
    static const struct {
        const char *tmpl, *why;
    } bad[] = {
        {"a\n{{#items}}\nb", "line 2: section 'items' is not closed"},
        {"{{/items}}", "line 1: 'items' closes no open section"},
        {"{{#a}}\n\n{{/b}}", "line 3: 'b' closes section 'a' opened at line 1"},
        {"x\ny {{name", "line 2: tag '{{' is not closed (}})"},
        {"{{=<% =}}", "line 1: a delimiter tag must be {{=OPEN CLOSE=}}"},
        {"{{ }}", "line 1: a tag without a name"},
    };
    char why[256];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        og__tmpl_t *t =
            og__tmpl_parse(bad[i].tmpl, strlen(bad[i].tmpl), why, sizeof(why));

        CU_ASSERT_PTR_NULL(t);
        if (t == NULL && strcmp(why, bad[i].why) != 0)
            fprintf(stderr, "  got %s\n  want %s\n", why, bad[i].why);
        CU_ASSERT_STRING_EQUAL(why, bad[i].why);
        og__tmpl_free(t);
    }
}

static void test_text_and_names(void)
{
    json_t *d =
        json_pack("{s{ss}s[{sssi}{sssi}]}", "customer", "name", "Zoë <Z>",
                  "items", "sku", "A&B", "qty", 2, "sku", "C", "qty", 1);
    char why[256], *out;

    /* a text channel (SMS, chat) does not escape */
    out = render("Hi {{customer.name}}: {{#items}}{{qty}}x {{sku}} {{/items}}",
                 d, NULL, 0, why, sizeof(why));
    CU_ASSERT_STRING_EQUAL(out, "Hi Zoë <Z>: 2x A&B 1x C ");
    free(out);
    out = render("{{customer.name}}", d, NULL, 1, why, sizeof(why));
    CU_ASSERT_STRING_EQUAL(out, "Zoë &lt;Z&gt;");
    free(out);
    /* a partial that includes itself forever is stopped, not a crash */
    {
        json_t *p = json_pack("{ss}", "loop", "x{{>loop}}");

        out = render("{{>loop}}", d, p, 1, why, sizeof(why));
        CU_ASSERT_PTR_NULL(out);
        CU_ASSERT_STRING_EQUAL(why, "partials nest deeper than 64");
        json_decref(p);
    }
    json_decref(d);
}

/* {{url:NAME}}: only http(s) URLs, percent-encoded, then HTML-escaped. */
static void test_urls(void)
{
    static const struct {
        const char *url, *html, *text;
    } cases[] = {
        {"https://shop.example/cart?id=1&x=\"a b\"",
         "<a href=\"https://shop.example/cart?id=1&amp;x=%22a%20b%22\">",
         "https://shop.example/cart?id=1&x=%22a%20b%22"},
        {"HTTP://shop.example/<script>",
         "<a href=\"HTTP://shop.example/"
         "%3Cscript%3E\">",
         "HTTP://shop.example/%3Cscript%3E"},
        {"javascript:alert(1)", "<a href=\"\">", ""},
        {" javascript:alert(1)", "<a href=\"\">", ""},
        {"data:text/html,<b>x</b>", "<a href=\"\">", ""},
        {"//evil.test/phish", "<a href=\"\">", ""},
        {"https://caf\xc3\xa9.example/'",
         "<a href=\"https://caf%C3%A9.example/"
         "%27\">",
         "https://caf%C3%A9.example/%27"},
    };
    char why[200], *out;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *d =
            json_pack("{s{s{ss}}}", "event", "props", "url", cases[i].url);

        out = render("<a href=\"{{url:event.props.url}}\">", d, NULL, 1, why,
                     sizeof(why));
        CU_ASSERT_STRING_EQUAL(out ? out : "(null)", cases[i].html);
        free(out);
        out = render("{{url:event.props.url}}", d, NULL, 0, why, sizeof(why));
        CU_ASSERT_STRING_EQUAL(out ? out : "(null)", cases[i].text);
        free(out);
        json_decref(d);
    }
}

/* Names with an empty part and data with an empty key (a fuzz input of
 * issue 16: memcmp with length 0 on a NULL pointer). */
static void test_empty_names(void)
{
    json_t *d = json_pack("{s{ss}ss}", "a", "", "x", "", "y");
    char why[200], *out;

    out = render("[{{a.}}][{{.}}]", d, NULL, 0, why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL(out);
    free(out);
    json_decref(d);
}

static void collect(void *data, int kind, const char *name, int line, int depth)
{
    char *buf = data;
    size_t used = strlen(buf);

    snprintf(buf + used, 512 - used, "%c%s@%d/%d ", kind, name, line, depth);
}

static void test_names(void)
{
    const char *src = "{{! c }}Hi {{name}}\n{{#items}}{{sku}}{{/items}}\n"
                      "{{^none}}{{>footer}}{{/none}}";
    char why[256], buf[512] = "";
    og__tmpl_t *t = og__tmpl_parse(src, strlen(src), why, sizeof(why));

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    og__tmpl_names(t, collect, buf);
    CU_ASSERT_STRING_EQUAL(
        buf, "vname@1/0 #items@2/0 vsku@2/1 ^none@3/0 >footer@3/1 ");
    og__tmpl_free(t);
}

int main(void)
{
    CU_pSuite s;

    CU_initialize_registry();
    s = CU_add_suite("mustache", NULL, NULL);
    CU_add_test(s, "the Mustache specification (136 cases)", test_spec);
    CU_add_test(s, "errors name the line", test_errors);
    CU_add_test(s, "text channels, escaping, recursion bound",
                test_text_and_names);
    CU_add_test(s, "the names a template uses", test_names);
    CU_add_test(s, "URLs in their context", test_urls);
    CU_add_test(s, "empty names and keys", test_empty_names);
    return tu_run();
}
