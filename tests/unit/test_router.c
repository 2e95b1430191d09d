/* test_router.c: the route matching table, source globs and conditions. */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/router.h"
#include "testutil.h"
#include "base/util.h"

static og__conf_t conf;

static void add_route(const char *match, const char *from, const char *when,
                      const char *to)
{
    og__routeconf_t *r;

    conf.routes = realloc(conf.routes, (conf.nroutes + 1) * sizeof(*r));
    r = &conf.routes[conf.nroutes++];
    memset(r, 0, sizeof(*r));
    r->match = og__split_list(match, NULL);
    r->from = from ? og__split_list(from, NULL) : NULL;
    r->to = og__split_list(to, NULL);
    r->when = when ? og__xstrdup(when) : NULL;
}

static void free_routes(void)
{
    size_t i;

    for (i = 0; i < conf.nroutes; i++) {
        og__strv_free(conf.routes[i].match);
        og__strv_free(conf.routes[i].from);
        og__strv_free(conf.routes[i].to);
        free(conf.routes[i].when);
    }
    free(conf.routes);
    conf.routes = NULL;
    conf.nroutes = 0;
}

/* An accepted event of type from source with props.total (when >= 0),
 * props.currency and props.gift. */
static og_event_t *event(const char *type, const char *source, int64_t total,
                         const char *currency, int gift)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    og_event_t *ev;
    og_err_t rc;
    char why[256];
    size_t np = (total >= 0) + (currency != NULL) + (gift >= 0);

    tu_pack_head(&sb, &pk, type, 1);
    msgpack_pack_str_with_body(&pk, "props", 5);
    msgpack_pack_map(&pk, np);
    if (total >= 0) {
        msgpack_pack_str_with_body(&pk, "total", 5);
        msgpack_pack_int64(&pk, total);
    }
    if (currency != NULL) {
        msgpack_pack_str_with_body(&pk, "currency", 8);
        msgpack_pack_str_with_body(&pk, currency, strlen(currency));
    }
    if (gift >= 0) {
        msgpack_pack_str_with_body(&pk, "gift", 4);
        if (gift)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
    }
    ev = og__event_accept((const uint8_t *)sb.data, sb.size, source, "t",
                          1 << 20, &rc, NULL, why, sizeof(why));
    msgpack_sbuffer_destroy(&sb);
    return ev;
}

static void check(og__router_t *r, og_event_t *ev, const char *want)
{
    const char *out[8];
    char got[256] = "";
    size_t n = og__router_targets(r, ev, out, 8), j;

    for (j = 0; j < n; j++) {
        size_t used = strlen(got);
        snprintf(got + used, sizeof(got) - used, "%s%s", j ? "," : "", out[j]);
    }
    if (strcmp(got, want) != 0)
        fprintf(stderr, "%s from %s: got '%s' want '%s'\n", ev->type,
                ev->instance, got, want);
    CU_ASSERT_STRING_EQUAL(got, want);
    og__event_unref(ev);
}

static void test_table(void)
{
    og__router_t *r;

    add_route("order.*", NULL, NULL, "crm");
    add_route("order.placed, customer.*", NULL, NULL, "mail, crm");
    add_route("*", "pos-1", NULL, "web");
    add_route("inventory.changed", "pos-*", NULL, "web, pos-1, pos-2");
    r = og__router_create(&conf);
    check(r, event("order.placed", "web", -1, NULL, -1), "crm,mail");
    check(r, event("order.completed", "web", -1, NULL, -1), "crm");
    check(r, event("order.placed", "pos-1", -1, NULL, -1), "crm,mail,web");
    check(r, event("cart.updated", "web", -1, NULL, -1), "");
    check(r, event("cart.updated", "pos-1", -1, NULL, -1), "web");
    check(r, event("inventory.changed", "pos-1", -1, NULL, -1), "web,pos-2");
    check(r, event("inventory.changed", "pos-2", -1, NULL, -1), "web,pos-1");
    check(r, event("inventory.changed", "web", -1, NULL, -1), "");
    check(r, event("orderx", "web", -1, NULL, -1), "");
    check(r, event("customer.identified", "crm", -1, NULL, -1), "mail");
    /* max bounds the output but the count is complete */
    {
        const char *out[1];
        og_event_t *ev = event("order.placed", "pos-1", -1, NULL, -1);
        CU_ASSERT_EQUAL(og__router_targets(r, ev, out, 1), 3);
        og__event_unref(ev);
    }
    og__router_free(r);
}

static void test_conditions(void)
{
    og__routeconf_t *saved = conf.routes;
    size_t nsaved = conf.nroutes;
    og__router_t *r;

    conf.routes = NULL;
    conf.nroutes = 0;
    add_route("order.placed", NULL, "props.total >= 10000", "vip");
    add_route("order.placed", NULL,
              "props.currency == EUR and props.total < 500", "small-eur");
    add_route("order.placed", NULL, "props.gift == true", "gifts");
    add_route("order.placed", NULL, "props.currency missing", "nocur");
    add_route("order.placed", NULL,
              "props.currency != \"USD\" and props.total exists", "notusd");
    r = og__router_create(&conf);
    check(r, event("order.placed", "web", 12000, "EUR", 0), "vip,notusd");
    check(r, event("order.placed", "web", 10000, "USD", 1), "vip,gifts");
    check(r, event("order.placed", "web", 499, "EUR", -1), "small-eur,notusd");
    check(r, event("order.placed", "web", 500, "EUR", -1), "notusd");
    check(r, event("order.placed", "web", -1, NULL, -1), "nocur");
    check(r, event("order.placed", "web", 42, NULL, -1), "nocur,notusd");
    og__router_free(r);
    free_routes();
    conf.routes = saved;
    conf.nroutes = nsaved;
}

static void test_condition_syntax(void)
{
    static const struct {
        const char *expr, *why;
    } bad[] = {
        {"props.total", "condition 'props.total': expected exists, missing, "
                        "==, !=, <, <=, > or >= after 'props.total'"},
        {"props.total >", "condition 'props.total >' has no value"},
        {"Bad.Path == 1", "'Bad.Path' is not a field path (a.b.c)"},
        {"a == 1 and ", "empty condition in 'a == 1 and '"},
        {"a == \"x", "condition 'a == \"x': unterminated quote"},
        {"a < EUR", "condition 'a < EUR': < compares numbers only"},
        {"== 3", "condition '== 3' has no field path"},
    };
    char why[256];
    size_t i, n;
    og__cond_t *c;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        c = og__conds_parse(bad[i].expr, &n, why, sizeof(why));
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_STRING_EQUAL(why, bad[i].why);
    }
    c = og__conds_parse("a.b exists and c != 2.5 and d == \"x y\"", &n, why,
                        sizeof(why));
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT_EQUAL(n, 3);
    og__conds_free(c, n);
}

int main(void)
{
    CU_pSuite s;
    int rc;

    CU_initialize_registry();
    s = CU_add_suite("router", NULL, NULL);
    CU_add_test(s, "matching table", test_table);
    CU_add_test(s, "conditions", test_conditions);
    CU_add_test(s, "condition syntax", test_condition_syntax);
    rc = tu_run();
    free_routes();
    return rc;
}
