/*
 * mustache.c: Mustache templates over MessagePack data (mustache.h).
 *
 * A template is parsed once into a tree (text, variables, sections,
 * inverted sections, partials); standalone lines (a section, comment,
 * partial or delimiter tag alone on its line) are removed while parsing,
 * as the specification asks. Rendering walks the tree with a stack of
 * contexts.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/mustache.h"

#define MAX_DELIM 16
#define MAX_DEPTH 64 /* sections and partials nested */

enum nk { N_TEXT, N_VAR, N_RAW, N_SEC, N_INV, N_PARTIAL };

struct node {
    enum nk k;
    char *s; /* text, or the name */
    size_t len;
    int line;
    char *indent; /* N_PARTIAL: the standalone tag's indentation */
    struct node *kids;
    size_t nkids, cap;
};

struct og__tmpl_s {
    struct node root;
};

static struct node *add(struct node *parent, enum nk k, const char *s,
                        size_t len, int line)
{
    struct node *n;

    if (parent->nkids == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 8;
        parent->kids =
            og__xrealloc(parent->kids, parent->cap * sizeof(*parent->kids));
    }
    n = &parent->kids[parent->nkids++];
    memset(n, 0, sizeof(*n));
    n->k = k;
    n->s = og__xmalloc(len + 1);
    memcpy(n->s, s, len);
    n->s[len] = '\0';
    n->len = len;
    n->line = line;
    return n;
}

static void free_node(struct node *n)
{
    size_t i;

    for (i = 0; i < n->nkids; i++)
        free_node(&n->kids[i]);
    free(n->kids);
    free(n->s);
    free(n->indent);
}

void og__tmpl_free(og__tmpl_t *t)
{
    if (t == NULL)
        return;
    free_node(&t->root);
    free(t);
}

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

static const char *find(const char *s, size_t len, size_t from, const char *pat)
{
    size_t pl = strlen(pat), i;

    for (i = from; i + pl <= len; i++)
        if (memcmp(s + i, pat, pl) == 0)
            return s + i;
    return NULL;
}

static int count_lines(const char *s, size_t from, size_t to)
{
    int n = 0;

    for (; from < to; from++)
        n += s[from] == '\n';
    return n;
}

/* The standalone check: the tag [ts, te) alone on its line, text before
 * it starting at text_start. Sets *ls (start of its line) and *next
 * (after the line's end). */
static int standalone(const char *s, size_t len, size_t text_start, size_t ts,
                      size_t te, size_t *ls, size_t *next)
{
    size_t i = ts, p = te;

    while (i > text_start && s[i - 1] != '\n')
        i--;
    if (i == text_start && i > 0 && s[i - 1] != '\n')
        return 0; /* another tag earlier on this line */
    for (*ls = i; i < ts; i++)
        if (!blank(s[i]))
            return 0;
    while (p < len && blank(s[p]))
        p++;
    if (p == len)
        *next = p;
    else if (s[p] == '\n')
        *next = p + 1;
    else if (s[p] == '\r' && p + 1 < len && s[p + 1] == '\n')
        *next = p + 2;
    else
        return 0;
    return 1;
}

og__tmpl_t *og__tmpl_parse(const char *s, size_t len, char *why, size_t whylen)
{
    og__tmpl_t *t = og__xcalloc(1, sizeof(*t));
    struct node *stack[MAX_DEPTH + 1];
    char otag[MAX_DELIM + 1] = "{{", ctag[MAX_DELIM + 1] = "}}";
    size_t depth = 0, pos = 0, text_start = 0;
    int line = 1;

    stack[0] = &t->root;
    for (;;) {
        const char *o = find(s, len, pos, otag), *close;
        size_t ts, cs, te, ls = 0, next = 0, nl, ce;
        char type = 0, closing[MAX_DELIM + 2];
        const char *name;
        int sa = 0, tline;

        if (o == NULL) {
            if (text_start < len)
                add(stack[depth], N_TEXT, s + text_start, len - text_start,
                    line);
            break;
        }
        ts = (size_t)(o - s);
        tline = line + count_lines(s, text_start, ts);
        cs = ts + strlen(otag);
        if (cs < len && strchr("#^/!>=&{", s[cs]) != NULL)
            type = s[cs++];
        snprintf(closing, sizeof(closing), "%s%s",
                 type == '{'   ? "}"
                 : type == '=' ? "="
                               : "",
                 ctag);
        close = find(s, len, cs, closing);
        if (close == NULL) {
            snprintf(why, whylen, "line %d: tag '%s' is not closed (%s)", tline,
                     otag, ctag);
            goto fail;
        }
        ce = (size_t)(close - s);
        te = ce + strlen(closing);
        /* the name, trimmed */
        while (cs < ce && (blank(s[cs]) || s[cs] == '\n' || s[cs] == '\r'))
            cs++;
        while (ce > cs &&
               (blank(s[ce - 1]) || s[ce - 1] == '\n' || s[ce - 1] == '\r'))
            ce--;
        name = s + cs;
        nl = ce - cs;
        if (type != 0 && strchr("#^/!>=", type) != NULL)
            sa = standalone(s, len, text_start, ts, te, &ls, &next);
        if (sa) {
            if (ls > text_start)
                add(stack[depth], N_TEXT, s + text_start, ls - text_start,
                    line);
        } else if (ts > text_start) {
            add(stack[depth], N_TEXT, s + text_start, ts - text_start, line);
        }
        line = tline + count_lines(s, ts, sa ? next : te);
        pos = text_start = sa ? next : te;
        if (type != '!' && type != '=' && nl == 0) {
            snprintf(why, whylen, "line %d: a tag without a name", tline);
            goto fail;
        }
        switch (type) {
        case '!': break;
        case '=': {
            /* "<% %>": two delimiters separated by white space */
            size_t a = 0, b;

            while (a < nl && !blank(name[a]))
                a++;
            b = a;
            while (b < nl && blank(name[b]))
                b++;
            if (a == 0 || b == nl || a > MAX_DELIM || nl - b > MAX_DELIM ||
                memchr(name, '=', nl) != NULL) {
                snprintf(why, whylen,
                         "line %d: a delimiter tag must be {{=OPEN CLOSE=}}",
                         tline);
                goto fail;
            }
            memcpy(otag, name, a);
            otag[a] = '\0';
            memcpy(ctag, name + b, nl - b);
            ctag[nl - b] = '\0';
            break;
        }
        case '#':
        case '^':
            if (depth == MAX_DEPTH) {
                snprintf(why, whylen, "line %d: sections nest deeper than %d",
                         tline, MAX_DEPTH);
                goto fail;
            }
            stack[depth + 1] =
                add(stack[depth], type == '#' ? N_SEC : N_INV, name, nl, tline);
            depth++;
            break;
        case '/':
            if (depth == 0 || stack[depth]->len != nl ||
                memcmp(stack[depth]->s, name, nl) != 0) {
                if (depth == 0)
                    snprintf(why, whylen,
                             "line %d: '%.*s' closes no open section", tline,
                             (int)(nl > 64 ? 64 : nl), name);
                else
                    snprintf(why, whylen,
                             "line %d: '%.*s' closes section '%s' opened at "
                             "line %d",
                             tline, (int)(nl > 64 ? 64 : nl), name,
                             stack[depth]->s, stack[depth]->line);
                goto fail;
            }
            depth--;
            break;
        case '>': {
            struct node *n = add(stack[depth], N_PARTIAL, name, nl, tline);

            if (sa && ts > ls) {
                n->indent = og__xmalloc(ts - ls + 1);
                memcpy(n->indent, s + ls, ts - ls);
                n->indent[ts - ls] = '\0';
            }
            break;
        }
        case '&':
        case '{': add(stack[depth], N_RAW, name, nl, tline); break;
        default: add(stack[depth], N_VAR, name, nl, tline); break;
        }
    }
    if (depth > 0) {
        snprintf(why, whylen, "line %d: section '%s' is not closed",
                 stack[depth]->line, stack[depth]->s);
        goto fail;
    }
    return t;
fail:
    og__tmpl_free(t);
    return NULL;
}

/* ---- rendering ---------------------------------------------------------- */

struct render {
    const msgpack_object *stack[2 * MAX_DEPTH + 2];
    size_t depth;
    int escape;
    og__partial_fn partials;
    void *pdata;
    og__sbuf_t *out;
    int nesting; /* partials */
    char *why;
    size_t whylen;
};

static const msgpack_object *get(const msgpack_object *m, const char *k,
                                 size_t kl)
{
    uint32_t i;

    if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (i = 0; i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;

        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == kl &&
            (kl == 0 || memcmp(key->via.str.ptr, k, kl) == 0))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* A name in the context stack: the first part from the innermost context
 * that has it, the rest within that value only. */
static const msgpack_object *lookup(const struct render *r, const char *name)
{
    const msgpack_object *v = NULL;
    const char *dot;
    size_t i, fl;

    if (strcmp(name, ".") == 0)
        return r->depth > 0 ? r->stack[r->depth - 1] : NULL;
    dot = strchr(name, '.');
    fl = dot ? (size_t)(dot - name) : strlen(name);
    for (i = r->depth; i > 0 && v == NULL; i--)
        v = get(r->stack[i - 1], name, fl);
    while (v != NULL && dot != NULL) {
        const char *part = dot + 1;

        dot = strchr(part, '.');
        v = get(v, part, dot ? (size_t)(dot - part) : strlen(part));
    }
    return v;
}

static int falsey(const msgpack_object *v)
{
    return v == NULL || v->type == MSGPACK_OBJECT_NIL ||
           (v->type == MSGPACK_OBJECT_BOOLEAN && !v->via.boolean) ||
           (v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == 0);
}

static void put(struct render *r, const char *s, size_t n, int escape)
{
    size_t i, from = 0;

    if (!escape) {
        og__sbuf_printf(r->out, "%.*s", (int)n, s);
        return;
    }
    for (i = 0; i < n; i++) {
        const char *e = s[i] == '&'   ? "&amp;"
                        : s[i] == '<' ? "&lt;"
                        : s[i] == '>' ? "&gt;"
                        : s[i] == '"' ? "&quot;"
                                      : NULL;

        if (e == NULL)
            continue;
        og__sbuf_printf(r->out, "%.*s%s", (int)(i - from), s + from, e);
        from = i + 1;
    }
    og__sbuf_printf(r->out, "%.*s", (int)(n - from), s + from);
}

/* The prefix of a variable that is a URL ({{url:event.props.url}}). */
#define URL_TAG "url:"
#define URL_TAG_LEN 4

/*
 * A URL in its context: only an http or https URL is written, with every
 * byte that cannot stand in a URL (white space, quotes, angle brackets,
 * backslashes, controls, non-ASCII) percent-encoded, then HTML-escaped
 * when escape is set; anything else (javascript:, data:, a relative path)
 * writes nothing. HTML escaping alone is no URL check (docs/templates.md).
 */
static void interpolate_url(struct render *r, const msgpack_object *v,
                            int escape)
{
    static const char hexd[] = "0123456789ABCDEF";
    const char *s;
    size_t n, i;

    if (v == NULL || v->type != MSGPACK_OBJECT_STR)
        return;
    s = v->via.str.ptr;
    n = v->via.str.size;
    if (!((n > 7 && strncasecmp(s, "http://", 7) == 0) ||
          (n > 8 && strncasecmp(s, "https://", 8) == 0)))
        return;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '<' ||
            c == '>' || c == '\\' || c == '`' || c == '{' || c == '}' ||
            c == '|' || c == '^')
            og__sbuf_printf(r->out, "%%%c%c", hexd[c >> 4], hexd[c & 15]);
        else if (c == '&' && escape)
            og__sbuf_printf(r->out, "&amp;");
        else
            og__sbuf_printf(r->out, "%c", c);
    }
}

static void interpolate(struct render *r, const msgpack_object *v, int escape)
{
    char num[64];

    if (v == NULL)
        return;
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
        put(r, v->via.str.ptr, v->via.str.size, escape);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(num, sizeof(num), "%llu", (unsigned long long)v->via.u64);
        put(r, num, strlen(num), 0);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)v->via.i64);
        put(r, num, strlen(num), 0);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        snprintf(num, sizeof(num), "%.15g", v->via.f64);
        put(r, num, strlen(num), 0);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        put(r, v->via.boolean ? "true" : "false", v->via.boolean ? 4 : 5, 0);
        break;
    default: break; /* nil, maps, arrays: nothing */
    }
}

static int render_nodes(struct render *r, const struct node *kids, size_t n);

/* A partial's source with indent before each of its lines. */
static char *indented(const char *src, size_t len, const char *indent,
                      size_t *outlen)
{
    size_t il = strlen(indent), lines = 1, i, o = 0;
    char *out;

    for (i = 0; i < len; i++)
        lines += src[i] == '\n';
    out = og__xmalloc(len + lines * il + 1);
    for (i = 0; i < len; i++) {
        if (i == 0 || src[i - 1] == '\n') {
            memcpy(out + o, indent, il);
            o += il;
        }
        out[o++] = src[i];
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

static int render_partial(struct render *r, const struct node *n)
{
    size_t len = 0;
    const char *src = r->partials ? r->partials(r->pdata, n->s, &len) : NULL;
    char *text = NULL;
    og__tmpl_t *t;
    int rc;

    if (src == NULL)
        return 0;
    if (r->nesting >= MAX_DEPTH) {
        snprintf(r->why, r->whylen, "partials nest deeper than %d", MAX_DEPTH);
        return -1;
    }
    if (n->indent != NULL)
        src = text = indented(src, len, n->indent, &len);
    t = og__tmpl_parse(src, len, r->why, r->whylen);
    free(text);
    if (t == NULL)
        return -1;
    r->nesting++;
    rc = render_nodes(r, t->root.kids, t->root.nkids);
    r->nesting--;
    og__tmpl_free(t);
    return rc;
}

static int render_nodes(struct render *r, const struct node *kids, size_t n)
{
    size_t i;
    uint32_t k;

    for (i = 0; i < n; i++) {
        const struct node *x = &kids[i];
        const msgpack_object *v;

        switch (x->k) {
        case N_TEXT: put(r, x->s, x->len, 0); break;
        case N_VAR:
            if (strncmp(x->s, URL_TAG, URL_TAG_LEN) == 0)
                interpolate_url(r, lookup(r, x->s + URL_TAG_LEN), r->escape);
            else
                interpolate(r, lookup(r, x->s), r->escape);
            break;
        case N_RAW: interpolate(r, lookup(r, x->s), 0); break;
        case N_INV:
            if (falsey(lookup(r, x->s)) &&
                render_nodes(r, x->kids, x->nkids) != 0)
                return -1;
            break;
        case N_SEC:
            v = lookup(r, x->s);
            if (falsey(v))
                break;
            if (r->depth + 1 >= sizeof(r->stack) / sizeof(r->stack[0])) {
                snprintf(r->why, r->whylen, "data nests too deep");
                return -1;
            }
            if (v->type == MSGPACK_OBJECT_ARRAY) {
                for (k = 0; k < v->via.array.size; k++) {
                    r->stack[r->depth++] = &v->via.array.ptr[k];
                    if (render_nodes(r, x->kids, x->nkids) != 0)
                        return -1;
                    r->depth--;
                }
            } else {
                r->stack[r->depth++] = v;
                if (render_nodes(r, x->kids, x->nkids) != 0)
                    return -1;
                r->depth--;
            }
            break;
        case N_PARTIAL:
            if (render_partial(r, x) != 0)
                return -1;
            break;
        }
    }
    return 0;
}

int og__tmpl_render(const og__tmpl_t *t, const msgpack_object *data, int escape,
                    og__partial_fn partials, void *pdata, og__sbuf_t *out,
                    char *why, size_t whylen)
{
    struct render r;

    memset(&r, 0, sizeof(r));
    if (data != NULL)
        r.stack[r.depth++] = data;
    r.escape = escape;
    r.partials = partials;
    r.pdata = pdata;
    r.out = out;
    r.why = why;
    r.whylen = whylen;
    og__sbuf_printf(out, "%s", ""); /* out->p is a string even if empty */
    return render_nodes(&r, t->root.kids, t->root.nkids);
}

static void names(const struct node *n, int depth,
                  void (*cb)(void *data, int kind, const char *name, int line,
                             int depth),
                  void *data)
{
    size_t i;

    for (i = 0; i < n->nkids; i++) {
        const struct node *x = &n->kids[i];

        switch (x->k) {
        case N_VAR:
            if (strncmp(x->s, URL_TAG, URL_TAG_LEN) == 0) {
                cb(data, 'u', x->s + URL_TAG_LEN, x->line, depth);
                break;
            }
            /* fall through */
        case N_RAW: cb(data, 'v', x->s, x->line, depth); break;
        case N_SEC: cb(data, '#', x->s, x->line, depth); break;
        case N_INV: cb(data, '^', x->s, x->line, depth); break;
        case N_PARTIAL: cb(data, '>', x->s, x->line, depth); break;
        case N_TEXT: break;
        }
        names(x, depth + (x->k == N_SEC || x->k == N_INV), cb, data);
    }
}

void og__tmpl_names(const og__tmpl_t *t,
                    void (*cb)(void *data, int kind, const char *name, int line,
                               int depth),
                    void *data)
{
    names(&t->root, 0, cb, data);
}
