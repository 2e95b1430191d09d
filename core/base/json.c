/*
 * json.c: JSON string escaping (json.h).
 */
#include "config.h"

#include <string.h>

#include "base/json.h"

size_t og__json_escape(char *out, size_t size, const char *s)
{
    return og__json_escape_n(out, size, s, strlen(s));
}

size_t og__json_escape_n(char *out, size_t size, const char *s, size_t len)
{
    const char *end = s + len;
    size_t n = 0;

#define PUT(c)                                                                 \
    do {                                                                       \
        if (n + 1 < size)                                                      \
            out[n] = (c);                                                      \
        n++;                                                                   \
    } while (0)
    PUT('"');
    for (; s < end; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            PUT('\\');
            PUT((char)c);
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            PUT('\\');
            PUT('u');
            PUT('0');
            PUT('0');
            PUT(hex[c >> 4]);
            PUT(hex[c & 15]);
        } else {
            PUT((char)c);
        }
    }
    PUT('"');
#undef PUT
    if (size > 0)
        out[n < size ? n : size - 1] = '\0';
    return n;
}

void og__sbuf_json(og__sbuf_t *b, const char *s, size_t len)
{
    size_t need = og__json_escape_n(NULL, 0, s, len) + 1;

    if (b->cap - b->n < need) {
        b->cap = (b->cap + need) * 2;
        b->p = og__xrealloc(b->p, b->cap);
    }
    b->n += og__json_escape_n(b->p + b->n, b->cap - b->n, s, len);
}
