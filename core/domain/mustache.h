/*
 * mustache.h: Mustache templates (https://mustache.github.io/mustache.5.html)
 * rendered over MessagePack data, for messages written once and rendered
 * per channel (issue 7). Passes every case of the specification's
 * comments, delimiters, interpolation, inverted, partials and sections
 * suites (tests/unit/test_mustache.c runs ../shared/testdata/mustache-spec);
 * lambdas, an optional part of the specification, are not supported.
 *
 * Debian's Mustache libraries were tried first: libkainjow-mustache-dev
 * (C++) fails 20 of the 136 cases (standalone lines, partial indentation,
 * dotted-name precedence), so this one is omnigate's (docs/decisions/0013).
 */
#ifndef OG_CORE_MUSTACHE_H
#define OG_CORE_MUSTACHE_H

#include <msgpack.h>
#include <stddef.h>

#include "base/util.h"

typedef struct og__tmpl_s og__tmpl_t;

/* Parses a template. NULL with the reason ("line 3: section 'items' is
 * not closed") in why when it is not a valid template. */
og__tmpl_t *og__tmpl_parse(const char *src, size_t len, char *why,
                           size_t whylen);
void og__tmpl_free(og__tmpl_t *t);

/* The source of partial name, or NULL when there is none (it renders as
 * nothing). */
typedef const char *(*og__partial_fn)(void *data, const char *name,
                                      size_t *len);

/*
 * og__tmpl_render: appends t rendered over data (NULL: no data) to out.
 * Variables are HTML-escaped when escape is set ({{{x}}} and {{&x}} never
 * are). Returns 0, or -1 with the reason in why when a partial does not
 * parse or partials nest deeper than 64.
 */
int og__tmpl_render(const og__tmpl_t *t, const msgpack_object *data, int escape,
                    og__partial_fn partials, void *pdata, og__sbuf_t *out,
                    char *why, size_t whylen);

/* The names a template uses, for checking it against what will be there:
 * kind is 'v' (a variable), 'u' (a URL variable, {{url:NAME}}: NAME
 * given without the prefix), '#' (a section), '^' (an inverted section) or
 * '>' (a partial); line is where it is; depth how many sections enclose
 * it (0: it is resolved against the data itself). */
void og__tmpl_names(const og__tmpl_t *t,
                    void (*cb)(void *data, int kind, const char *name, int line,
                               int depth),
                    void *data);

#endif /* OG_CORE_MUSTACHE_H */
