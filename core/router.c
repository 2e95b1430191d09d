/*
 * router.c: route matching. Patterns are shell globs over the dotted type
 * (fnmatch without FNM_PATHNAME, so "order.*" matches "order.placed" and
 * "*" matches everything).
 */
#include "config.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "util.h"

struct route {
    char **match;
    char **from; /* NULL: any source */
    char **to;
};

struct og__router_s {
    struct route *routes;
    size_t n;
};

static char **strv_dup(char **v)
{
    size_t n = 0, i;
    char **d;

    if (v == NULL)
        return NULL;
    while (v[n] != NULL)
        n++;
    d = og__xcalloc(n + 1, sizeof(*d));
    for (i = 0; i < n; i++)
        d[i] = og__xstrdup(v[i]);
    return d;
}

og__router_t *og__router_create(const og__conf_t *conf)
{
    og__router_t *r = og__xcalloc(1, sizeof(*r));
    size_t i;

    r->routes = og__xcalloc(conf->nroutes, sizeof(*r->routes));
    r->n = conf->nroutes;
    for (i = 0; i < conf->nroutes; i++) {
        r->routes[i].match = strv_dup(conf->routes[i].match);
        r->routes[i].from = strv_dup(conf->routes[i].from);
        r->routes[i].to = strv_dup(conf->routes[i].to);
    }
    return r;
}

void og__router_free(og__router_t *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->n; i++) {
        og__strv_free(r->routes[i].match);
        og__strv_free(r->routes[i].from);
        og__strv_free(r->routes[i].to);
    }
    free(r->routes);
    free(r);
}

static int in_list(char **v, const char *s)
{
    size_t i;

    for (i = 0; v != NULL && v[i] != NULL; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

size_t og__router_targets(const og__router_t *r, const char *type,
                          const char *source, const char **out, size_t max)
{
    size_t i, j, n = 0, k;

    for (i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        int hit = 0;

        if (rt->from != NULL && !in_list(rt->from, source))
            continue;
        for (j = 0; rt->match[j] != NULL && !hit; j++)
            hit = fnmatch(rt->match[j], type, 0) == 0;
        if (!hit)
            continue;
        for (j = 0; rt->to[j] != NULL; j++) {
            const char *t = rt->to[j];
            int dup = 0;

            if (strcmp(t, source) == 0)
                continue;
            for (k = 0; k < n && k < max; k++)
                if (strcmp(out[k], t) == 0)
                    dup = 1;
            if (dup)
                continue;
            if (n < max)
                out[n] = t;
            n++;
        }
    }
    return n;
}
