/*
 * router.c: route matching. Type patterns and source names are shell
 * globs (fnmatch without FNM_PATHNAME, so "order.*" matches "order.placed"
 * and "*" matches everything). A route's conditions are core/event/cond.c's.
 */
#include "config.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/router.h"
#include "base/util.h"

/* A compiled pattern: "*", an exact name, or a glob for fnmatch. */
enum pat_kind { PAT_ANY, PAT_EXACT, PAT_GLOB };

struct pat {
    char *s;
    enum pat_kind kind;
};

struct route {
    struct pat *match; /* NULL-terminated by s == NULL */
    struct pat *from;  /* NULL: any source */
    char **to;
    og__cond_t *conds;
    size_t nconds;
};

struct og__router_s {
    struct route *routes;
    size_t n;
    unsigned refs; /* loop thread only */
};

/* ---- routes ---------------------------------------------------------- */

static struct pat *compile(char **v)
{
    size_t n = 0, i;
    struct pat *p;

    if (v == NULL)
        return NULL;
    while (v[n] != NULL)
        n++;
    p = og__xcalloc(n + 1, sizeof(*p));
    for (i = 0; i < n; i++) {
        p[i].s = og__xstrdup(v[i]);
        p[i].kind = strcmp(v[i], "*") == 0         ? PAT_ANY
                    : strpbrk(v[i], "*?[") == NULL ? PAT_EXACT
                                                   : PAT_GLOB;
    }
    return p;
}

static void pats_free(struct pat *p)
{
    size_t i;

    for (i = 0; p != NULL && p[i].s != NULL; i++)
        free(p[i].s);
    free(p);
}

/* The targets of a route, without the channels configured but disabled:
 * an event is never routed to those (no delivery is stored for them). */
static char **targets_of(const og__conf_t *conf, char **v)
{
    size_t n = 0, i, k = 0;
    char **d;

    if (v == NULL)
        return NULL;
    while (v[n] != NULL)
        n++;
    d = og__xcalloc(n + 1, sizeof(*d));
    for (i = 0; i < n; i++) {
        const og__chconf_t *ch = og__conf_channel(conf, v[i]);

        if (ch == NULL || ch->enabled)
            d[k++] = og__xstrdup(v[i]);
    }
    return d;
}

og__router_t *og__router_create(const og__conf_t *conf)
{
    og__router_t *r = og__xcalloc(1, sizeof(*r));
    size_t i;

    r->refs = 1;
    r->routes = og__xcalloc(conf->nroutes, sizeof(*r->routes));
    r->n = conf->nroutes;
    for (i = 0; i < conf->nroutes; i++) {
        char why[256];

        r->routes[i].match = compile(conf->routes[i].match);
        r->routes[i].from = compile(conf->routes[i].from);
        r->routes[i].to = targets_of(conf, conf->routes[i].to);
        if (conf->routes[i].when != NULL)
            r->routes[i].conds = og__conds_parse(
                conf->routes[i].when, &r->routes[i].nconds, why, sizeof(why));
    }
    return r;
}

void og__router_free(og__router_t *r)
{
    size_t i;

    if (r == NULL || --r->refs > 0)
        return;
    for (i = 0; i < r->n; i++) {
        pats_free(r->routes[i].match);
        pats_free(r->routes[i].from);
        og__strv_free(r->routes[i].to);
        og__conds_free(r->routes[i].conds, r->routes[i].nconds);
    }
    free(r->routes);
    free(r);
}

og__router_t *og__router_ref(og__router_t *r)
{
    r->refs++;
    return r;
}

static int matches(const struct pat *p, const char *s)
{
    for (; p != NULL && p->s != NULL; p++) {
        if (p->kind == PAT_ANY ||
            (p->kind == PAT_EXACT ? strcmp(p->s, s) == 0
                                  : fnmatch(p->s, s, 0) == 0))
            return 1;
    }
    return 0;
}

size_t og__router_targets(const og__router_t *r, const og_event_t *ev,
                          const char **out, size_t max)
{
    size_t i, j, n = 0, k;

    for (i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];

        if (rt->from != NULL && !matches(rt->from, ev->instance))
            continue;
        if (!matches(rt->match, ev->type))
            continue;
        if (rt->nconds > 0 && !og__conds_match(rt->conds, rt->nconds, ev))
            continue;
        for (j = 0; rt->to[j] != NULL; j++) {
            const char *t = rt->to[j];
            int dup = 0;

            if (strcmp(t, ev->instance) == 0)
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
