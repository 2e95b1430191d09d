/*
 * test_templates.c: templates in the configuration: variants chosen by
 * channel instance, kind and default; HTML escaped and text not; text cut
 * at max_length; partials; and every problem reported when the
 * configuration is checked (--check-config): syntax, missing files,
 * missing partials, names outside the template's vars, a missing
 * [default], unknown keys.
 */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf.h"
#include "daemon/daemon.h"
#include "domain/templates.h"
#include "testutil.h"

static char *dir;

static void put(const char *rel, const char *text)
{
    tu_put(dir, rel, text);
}

static void fresh(void)
{
    static const char *const subdirs[] = {"templates", "templates/partials",
                                          NULL};

    tu_fresh(dir, subdirs);
    put("omnigate.conf", "[daemon]\n");
}

#define has_error(errs, rel, line, msg) tu_has_error(errs, dir, rel, line, msg)

/* {"customer": {"name": "Zoë <Z>"}, "cart": {"lines": [...], "url": ...}} */
static msgpack_object *data(msgpack_sbuffer *sb, msgpack_unpacked *u)
{
    msgpack_packer pk;
    size_t off = 0;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "customer", 8);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "Zo\xc3\xab <Z>", 8);
    msgpack_pack_str_with_body(&pk, "cart", 4);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "lines", 5);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "sku", 3);
    msgpack_pack_str_with_body(&pk, "A&B", 3);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "sku", 3);
    msgpack_pack_str_with_body(&pk, "C", 1);
    msgpack_pack_str_with_body(&pk, "url", 3);
    msgpack_pack_str_with_body(&pk, "https://shop.example/cart", 25);
    msgpack_unpacked_init(u);
    msgpack_unpack_next(u, sb->data, sb->size, &off);
    return &u->data;
}

static void test_render(void)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;
    og__templates_t *ts;
    og__message_t m;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    msgpack_object *d;
    char why[256];

    fresh();
    put("templates/cart.conf",
        "[template]\n"
        "vars = customer, cart\n"
        "[email]\n"
        "subject = Your cart, {{customer.name}}\n"
        "text_file = cart.txt\n"
        "html = <p>{{customer.name}}: {{#cart.lines}}<b>{{sku}}</b>"
        "{{/cart.lines}}</p>{{>footer}}\n"
        "[social]\n"
        "text = {{customer.name}}, your cart is waiting: {{cart.url}}\n"
        "max_length = 20\n"
        "[default]\n"
        "text = Your cart is waiting.\n");
    put("templates/cart.txt", "Hello {{customer.name}},\n"
                              "{{#cart.lines}}\n- {{sku}}\n{{/cart.lines}}\n");
    put("templates/partials/footer.mustache", "<small>{{cart.url}}</small>");
    c = og__conf_load(dir, NULL, &errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    ts = og__templates_build(c, &errs);
    CU_ASSERT_EQUAL(errs.n, 0);
    d = data(&sb, &u);

    /* email: an instance of kind email takes [email] */
    CU_ASSERT_EQUAL(
        og__templates_render(ts, "cart", "email.smtp", d, &m, why, sizeof(why)),
        OG_OK);
    CU_ASSERT_STRING_EQUAL(m.subject.p, "Your cart, Zo\xc3\xab <Z>");
    CU_ASSERT_STRING_EQUAL(m.text.p, "Hello Zo\xc3\xab <Z>,\n- A&B\n- C\n");
    CU_ASSERT_STRING_EQUAL(m.html.p,
                           "<p>Zo\xc3\xab &lt;Z&gt;: <b>A&amp;B</b><b>C</b></p>"
                           "<small>https://shop.example/cart</small>");
    CU_ASSERT_FALSE(m.truncated);
    og__message_free(&m);
    /* social: cut at 20 characters (UTF-8), no HTML part */
    CU_ASSERT_EQUAL(
        og__templates_render(ts, "cart", "social", d, &m, why, sizeof(why)),
        OG_OK);
    CU_ASSERT_STRING_EQUAL(m.text.p, "Zo\xc3\xab <Z>, your cart \xe2\x80\xa6");
    CU_ASSERT_TRUE(m.truncated);
    CU_ASSERT_PTR_NULL(m.html.p);
    og__message_free(&m);
    /* anything else: [default] */
    CU_ASSERT_EQUAL(og__templates_render(ts, "cart", "pos.store-12", d, &m, why,
                                         sizeof(why)),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(m.text.p, "Your cart is waiting.");
    og__message_free(&m);
    CU_ASSERT_EQUAL(
        og__templates_render(ts, "nope", "email", d, &m, why, sizeof(why)),
        OG_ERR_NOT_FOUND);
    CU_ASSERT_STRING_EQUAL(why, "no template 'nope'");
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    og__templates_free(ts);
    og__conf_free(c);
    og__errlist_free(&errs);
}

static void test_checked_at_load(void)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;

    fresh();
    put("templates/bad.conf",
        "[template]\n"                    /* 1 */
        "vars = customer\n"               /* 2 */
        "[email]\n"                       /* 3 */
        "subject = Hi {{custmer.name}}\n" /* 4: typo */
        "text = {{#customer}}{{name}}\n"  /* 5: unclosed */
        "html_file = missing.html\n"      /* 6 */
        "[social]\n"                      /* 7 */
        "text = {{>nofooter}} {{#customer}}{{x}}{{/customer}}\n" /* 8 */
        "colour = red\n"                                         /* 9 */
        "[default]\n"                                            /* 10 */
        "text = ok\n");
    put("templates/nodefault.conf", "[template]\nvars = a\n[email]\n"
                                    "text = {{a}}\n");
    put("templates/novars.conf", "[template]\n[default]\ntext = x\n");
    put("templates/file.conf", "[template]\nvars = a\n[default]\n"
                               "text_file = file.txt\n");
    put("templates/file.txt", "line one\n{{#a}}\n{{/b}}\n");
    /* paths out of the configuration (issue 15) */
    put("templates/escape.conf", "[template]\nvars = a\n[default]\n"
                                 "text_file = ../../../../../../etc/passwd\n"
                                 "[email]\nhtml_file = /etc/passwd\n");
    c = og__check_config(dir, NULL, &errs);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_TRUE(has_error(&errs, "templates/bad.conf", 4,
                             "[email] subject: 'custmer.name' is not among "
                             "the template's vars"));
    CU_ASSERT_TRUE(has_error(&errs, "templates/bad.conf", 5,
                             "[email] text: line 1: section 'customer' is "
                             "not closed"));
    CU_ASSERT_TRUE(
        has_error(&errs, "templates/bad.conf", 6, "[email] html: cannot read"));
    CU_ASSERT_TRUE(has_error(&errs, "templates/bad.conf", 8,
                             "[social] text: partial 'nofooter' does not "
                             "exist"));
    CU_ASSERT_TRUE(has_error(&errs, "templates/bad.conf", 9,
                             "unknown key 'colour' in [social]"));
    CU_ASSERT_TRUE(has_error(&errs, "templates/nodefault.conf", 1,
                             "no [default] variant"));
    CU_ASSERT_TRUE(has_error(&errs, "templates/novars.conf", 1,
                             "[template] has no 'vars' key"));
    CU_ASSERT_TRUE(has_error(&errs, "templates/escape.conf", 4,
                             "[default] text: '../../../../../../etc/passwd' "
                             "(/etc/passwd) is outside the configuration "
                             "directory"));
    CU_ASSERT_TRUE(has_error(&errs, "templates/escape.conf", 6,
                             "[email] html: '/etc/passwd' (/etc/passwd) is "
                             "outside"));
    CU_ASSERT_TRUE(has_error(&errs, "templates/file.txt", 0,
                             "[default] text: line 3: 'b' closes section "
                             "'a' opened at line 2"));
    og__errlist_free(&errs);
}

int main(void)
{
    CU_pSuite s;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    s = CU_add_suite("templates", NULL, NULL);
    CU_add_test(s, "variants per channel, escaping, length", test_render);
    CU_add_test(s, "every problem reported at load", test_checked_at_load);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
