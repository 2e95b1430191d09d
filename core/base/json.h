/*
 * json.h: writing JSON text. The core writes JSON in a few places (the
 * admin API, error bodies, the store's reports); it parses none, so only
 * string escaping lives here. Plugins use the SDK's JSON helpers instead.
 */
#ifndef OG_CORE_JSON_H
#define OG_CORE_JSON_H

#include <stddef.h>

#include "base/util.h"

/* Writes s as a JSON string (quoted, escaped) into out; returns the length
 * it needed (like snprintf). */
size_t og__json_escape(char *out, size_t size, const char *s);
/* The same for len bytes of s (which may hold NUL bytes: \u0000). */
size_t og__json_escape_n(char *out, size_t size, const char *s, size_t len);
/* Appends len bytes of s to b as a JSON string (quoted, escaped). */
void og__sbuf_json(og__sbuf_t *b, const char *s, size_t len);

#endif /* OG_CORE_JSON_H */
