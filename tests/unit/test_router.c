/* test_router.c: the route matching table. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "testutil.h"
#include "util.h"

static og__conf_t conf;

static void add_route(const char *match, const char *from, const char *to)
{
    og__routeconf_t *r;

    conf.routes = realloc(conf.routes, (conf.nroutes + 1) * sizeof(*r));
    r = &conf.routes[conf.nroutes++];
    memset(r, 0, sizeof(*r));
    r->match = og__split_list(match, NULL);
    r->from = from ? og__split_list(from, NULL) : NULL;
    r->to = og__split_list(to, NULL);
}

static void test_table(void)
{
    static const struct {
        const char *type, *source, *want;
    } cases[] = {
        {"order.placed", "web", "crm,mail"},
        {"order.completed", "web", "crm"},
        {"order.placed", "pos-1", "crm,mail,web"},
        {"cart.updated", "web", ""},
        {"cart.updated", "pos-1", "web"},
        {"inventory.changed", "pos-1", "web,pos-2"},
        {"inventory.changed", "pos-2", "web,pos-1"},
        {"orderx", "web", ""},
        {"customer.identified", "crm", "mail"},
    };
    og__router_t *r;
    size_t i, j;

    add_route("order.*", NULL, "crm");
    add_route("order.placed, customer.*", NULL, "mail, crm");
    add_route("*", "pos-1", "web");
    add_route("inventory.changed", "pos-1, pos-2", "web, pos-1, pos-2");
    r = og__router_create(&conf);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *out[8];
        char got[256] = "";
        size_t n =
            og__router_targets(r, cases[i].type, cases[i].source, out, 8);

        for (j = 0; j < n; j++) {
            size_t used = strlen(got);
            snprintf(got + used, sizeof(got) - used, "%s%s", j ? "," : "",
                     out[j]);
        }
        if (strcmp(got, cases[i].want) != 0)
            fprintf(stderr, "%s from %s: got '%s' want '%s'\n", cases[i].type,
                    cases[i].source, got, cases[i].want);
        CU_ASSERT_STRING_EQUAL(got, cases[i].want);
    }
    /* max bounds the output but the count is complete */
    {
        const char *out[1];
        CU_ASSERT_EQUAL(og__router_targets(r, "order.placed", "pos-1", out, 1),
                        3);
    }
    og__router_free(r);
}

int main(void)
{
    CU_pSuite s;
    size_t i;
    int rc;

    CU_initialize_registry();
    s = CU_add_suite("router", NULL, NULL);
    CU_add_test(s, "matching table", test_table);
    rc = tu_run();
    for (i = 0; i < conf.nroutes; i++) {
        og__strv_free(conf.routes[i].match);
        og__strv_free(conf.routes[i].from);
        og__strv_free(conf.routes[i].to);
    }
    free(conf.routes);
    return rc;
}
