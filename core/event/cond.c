/*
 * cond.c: the "when" condition language of routes and journeys, compiled
 * once and evaluated against an event's MessagePack tree.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/cond.h"
#include "base/util.h"

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
