/*
 * router.c: route matching. Type patterns and source names are shell
 * globs (fnmatch without FNM_PATHNAME, so "order.*" matches "order.placed"
 * and "*" matches everything). Conditions are compiled once and evaluated
 * against the event's MessagePack tree.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "util.h"

enum op { OP_EXISTS, OP_MISSING, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };
enum vkind { V_NUM, V_STR, V_BOOL };

struct og__cond_s {
    char *path;
    enum op op;
    enum vkind kind;
    double num;
    char *str;
    int b;
};

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

/* ---- conditions ----------------------------------------------------- */

void og__conds_free(og__cond_t *c, size_t count)
{
    size_t i;

    for (i = 0; c != NULL && i < count; i++) {
        free(c[i].path);
        free(c[i].str);
    }
    free(c);
}

/* Parses one condition from text (already trimmed, NUL-terminated). */
static int parse_one(char *text, og__cond_t *c, char *why, size_t whylen)
{
    static const struct {
        const char *s;
        enum op op;
    } ops[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE},
               {">=", OP_GE}, {"<", OP_LT},  {">", OP_GT}};
    char *p = text, *path, *val, *end;
    size_t i, n;

    path = p;
    while (*p != '\0' && !isspace((unsigned char)*p) && !strchr("=!<>", *p))
        p++;
    n = (size_t)(p - path);
    if (n == 0) {
        snprintf(why, whylen, "condition '%s' has no field path", text);
        return -1;
    }
    c->path = og__xstrndup(path, n);
    if (!og__is_ident(c->path, 1)) {
        snprintf(why, whylen, "'%s' is not a field path (a.b.c)", c->path);
        return -1;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (strcmp(p, "exists") == 0 || strcmp(p, "missing") == 0) {
        c->op = *p == 'e' ? OP_EXISTS : OP_MISSING;
        return 0;
    }
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strncmp(p, ops[i].s, strlen(ops[i].s)) == 0)
            break;
    if (i == sizeof(ops) / sizeof(ops[0])) {
        snprintf(why, whylen,
                 "condition '%s': expected exists, missing, ==, "
                 "!=, <, <=, > or >= after '%s'",
                 text, c->path);
        return -1;
    }
    c->op = ops[i].op;
    val = p + strlen(ops[i].s);
    while (isspace((unsigned char)*val))
        val++;
    if (*val == '\0') {
        snprintf(why, whylen, "condition '%s' has no value", text);
        return -1;
    }
    if (*val == '"') {
        size_t vl = strlen(val);
        if (vl < 2 || val[vl - 1] != '"') {
            snprintf(why, whylen, "condition '%s': unterminated quote", text);
            return -1;
        }
        c->kind = V_STR;
        c->str = og__xstrndup(val + 1, vl - 2);
    } else if (strcmp(val, "true") == 0 || strcmp(val, "false") == 0) {
        c->kind = V_BOOL;
        c->b = val[0] == 't';
    } else {
        errno = 0;
        c->num = strtod(val, &end);
        if (end != val && *end == '\0' && errno == 0) {
            c->kind = V_NUM;
        } else {
            c->kind = V_STR;
            c->str = og__xstrdup(val);
        }
    }
    if (c->kind != V_NUM && c->op != OP_EQ && c->op != OP_NE) {
        snprintf(why, whylen, "condition '%s': %s compares numbers only", text,
                 ops[i].s);
        return -1;
    }
    return 0;
}

og__cond_t *og__conds_parse(const char *expr, size_t *count, char *why,
                            size_t whylen)
{
    og__cond_t *c = NULL;
    size_t n = 0;
    const char *p = expr;

    for (;;) {
        const char *and = strstr(p, " and ");
        size_t len = and? (size_t)(and-p) : strlen(p);
        char *text = og__xstrndup(p, len), *t = text, *e;

        while (isspace((unsigned char)*t))
            t++;
        e = t + strlen(t);
        while (e > t && isspace((unsigned char)e[-1]))
            *--e = '\0';
        c = og__xrealloc(c, (n + 1) * sizeof(*c));
        memset(&c[n], 0, sizeof(*c));
        n++;
        if (*t == '\0') {
            snprintf(why, whylen, "empty condition in '%s'", expr);
            free(text);
            og__conds_free(c, n);
            return NULL;
        }
        if (parse_one(t, &c[n - 1], why, whylen) != 0) {
            free(text);
            og__conds_free(c, n);
            return NULL;
        }
        free(text);
        if (and == NULL)
            break;
        p = and+5;
    }
    *count = n;
    return c;
}

static int match_one(const og__cond_t *c, const msgpack_object *root)
{
    const msgpack_object *o;
    double v;
    int found = og__obj_lookup(root, c->path, &o) == OG_OK;

    if (c->op == OP_EXISTS)
        return found;
    if (c->op == OP_MISSING)
        return !found;
    if (!found)
        return c->op == OP_NE;
    switch (c->kind) {
    case V_STR: {
        int eq = o->type == MSGPACK_OBJECT_STR &&
                 o->via.str.size == strlen(c->str) &&
                 memcmp(o->via.str.ptr, c->str, o->via.str.size) == 0;
        return c->op == OP_EQ ? eq : !eq;
    }
    case V_BOOL: {
        int eq = o->type == MSGPACK_OBJECT_BOOLEAN &&
                 (o->via.boolean ? 1 : 0) == c->b;
        return c->op == OP_EQ ? eq : !eq;
    }
    case V_NUM:
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            v = (double)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            v = (double)o->via.i64;
        else if (o->type == MSGPACK_OBJECT_FLOAT32 ||
                 o->type == MSGPACK_OBJECT_FLOAT64)
            v = o->via.f64;
        else
            return c->op == OP_NE; /* not a number: only != holds */
        switch (c->op) {
        case OP_EQ: return v == c->num;
        case OP_NE: return v != c->num;
        case OP_LT: return v < c->num;
        case OP_LE: return v <= c->num;
        case OP_GT: return v > c->num;
        case OP_GE: return v >= c->num;
        default: return 0;
        }
    }
    return 0;
}

int og__conds_match_obj(const og__cond_t *c, size_t count,
                        const msgpack_object *root)
{
    size_t i;

    for (i = 0; i < count; i++)
        if (!match_one(&c[i], root))
            return 0;
    return 1;
}

int og__conds_match(const og__cond_t *c, size_t count, const og_event_t *ev)
{
    if (count == 0)
        return 1;
    if (og__event_parse((og_event_t *)ev) != OG_OK)
        return 0;
    return og__conds_match_obj(c, count, &ev->root);
}

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
