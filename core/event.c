/*
 * event.c: envelope acceptance, accessors and the event builder.
 *
 * Acceptance unpacks the plugin's bytes once, checks the fields the core
 * relies on and re-packs the map with the core-owned fields stamped. From
 * then on the bytes are immutable and shared by reference count.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <uv.h>

#include "event.h"
#include "util.h"

#define MAX_TYPE_LEN 128
#define MAX_ID_LEN 64

static int key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);

    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

/* Random bytes from a 4 KiB pool refilled with getrandom(): one system
 * call per 256 ids instead of one per id. Loop thread only. */
static int random_bytes(uint8_t *out, size_t n)
{
    static uint8_t pool[4096];
    static size_t left;

    if (left < n) {
        if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool))
            return -1;
        left = sizeof(pool);
    }
    memcpy(out, pool + sizeof(pool) - left, n);
    left -= n;
    return 0;
}

void og__uuid7(char out[37])
{
    static uint64_t last_ms;
    static uint16_t seq;
    uint8_t b[16];
    uint64_t ms = og__now_ms();
    size_t i, o = 0;

    if (random_bytes(b, sizeof(b)) != 0) {
        /* getrandom on Linux does not fail for 16 bytes once the pool is
         * initialised; fall back to the clock so ids stay distinct. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        memcpy(b, &ts, sizeof(b) < sizeof(ts) ? sizeof(b) : sizeof(ts));
    }
    /* Keep ids from one process strictly ordered within a millisecond: the
     * 12-bit rand_a field becomes a counter (RFC 9562 method 1). */
    if (ms <= last_ms) {
        ms = last_ms;
        if (++seq > 0x0fff) {
            ms++;
            seq = 0;
        }
    } else {
        seq = (uint16_t)(((b[6] << 8) | b[7]) & 0x03ff);
    }
    last_ms = ms;
    for (i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | ((seq >> 8) & 0x0f));
    b[7] = (uint8_t)(seq & 0xff);
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    for (i = 0; i < 16; i++) {
        static const char hex[] = "0123456789abcdef";
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

static int valid_id(const char *p, size_t n)
{
    size_t i;

    if (n == 0 || n > MAX_ID_LEN)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return 0;
    return 1;
}

static int valid_type(const char *p, size_t n)
{
    size_t i;

    if (n == 0 || n > MAX_TYPE_LEN || p[0] == '.' || p[n - 1] == '.')
        return 0;
    for (i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    pack_str(pk, s, strlen(s));
}

/* ---- raw MessagePack writing and skipping --------------------------- */

struct wbuf {
    uint8_t *p;
    size_t n, cap;
};

/* The caller sized the buffer for the worst case (input length plus the
 * stamped fields), so writes never exceed it. */
static void put_raw(struct wbuf *w, const void *src, size_t n)
{
    if (w->n + n > w->cap)
        abort(); /* a sizing bug, never input-dependent */
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

static void put_be(struct wbuf *w, uint8_t tag, uint64_t v, int bytes)
{
    uint8_t b[9];
    int i;

    b[0] = tag;
    for (i = 0; i < bytes; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put_raw(w, b, (size_t)bytes + 1);
}

static void put_map(struct wbuf *w, size_t n)
{
    if (n < 16)
        put_raw(w, (uint8_t[]){(uint8_t)(0x80 | n)}, 1);
    else if (n <= 0xffff)
        put_be(w, 0xde, n, 2);
    else
        put_be(w, 0xdf, n, 4);
}

static void put_str(struct wbuf *w, const char *s, size_t n)
{
    if (n < 32)
        put_raw(w, (uint8_t[]){(uint8_t)(0xa0 | n)}, 1);
    else if (n <= 0xff)
        put_be(w, 0xd9, n, 1);
    else if (n <= 0xffff)
        put_be(w, 0xda, n, 2);
    else
        put_be(w, 0xdb, n, 4);
    put_raw(w, s, n);
}

static void put_u64(struct wbuf *w, uint64_t v)
{
    put_be(w, 0xcf, v, 8);
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * Where the key k (a string msgpack-c unpacked from buf) starts in buf,
 * header included, or SIZE_MAX when its bytes are not inside buf. The
 * header in front of the string is unambiguous: fixstr (0xa0|n), str8
 * (0xd9 n), str16 (0xda n n) or str32 (0xdb n n n n).
 */
static size_t key_start(const msgpack_object *k, const uint8_t *buf, size_t len)
{
    const uint8_t *p = (const uint8_t *)k->via.str.ptr;
    uint32_t n = k->via.str.size;

    if (p < buf || p > buf + len)
        return SIZE_MAX;
    if (n < 32 && p - buf >= 1 && p[-1] == (uint8_t)(0xa0 | n))
        return (size_t)(p - buf) - 1;
    if (n < 256 && p - buf >= 2 && p[-2] == 0xd9 && p[-1] == (uint8_t)n)
        return (size_t)(p - buf) - 2;
    if (n < 65536 && p - buf >= 3 && p[-3] == 0xda && be(p - 2, 2) == n)
        return (size_t)(p - buf) - 3;
    if (p - buf >= 5 && p[-5] == 0xdb && be(p - 4, 4) == n)
        return (size_t)(p - buf) - 5;
    return SIZE_MAX;
}

/*
 * The byte span of each pair of the validated map m (whose bytes end at
 * end): from each key's start to the next key's start. Uses msgpack-c's
 * pointers into the input; falls back to walking the bytes.
 */
static void pair_spans(const msgpack_object *m, const uint8_t *buf,
                       size_t first, size_t end, size_t *starts)
{
    uint32_t i;
    size_t off = first;

    for (i = 0; i < m->via.map.size; i++) {
        size_t at = key_start(&m->via.map.ptr[i].key, buf, end);

        if (at == SIZE_MAX || at != off)
            break;
        starts[i] = at;
        if (i + 1 < m->via.map.size) {
            size_t next = key_start(&m->via.map.ptr[i + 1].key, buf, end);
            if (next == SIZE_MAX || next <= at)
                break;
            off = next;
        }
    }
    if (i == m->via.map.size) {
        starts[i] = end;
        return;
    }
    /* fallback: walk key and value of every pair */
    off = first;
    for (i = 0; i < m->via.map.size; i++) {
        size_t kl = og__mp_skip(buf + off, end - off);
        starts[i] = off;
        off += kl + og__mp_skip(buf + off + kl, end - off - kl);
    }
    starts[i] = off;
}

/* Bytes taken by a map header starting with byte b (a validated map). */
static size_t map_header_len(uint8_t b)
{
    return b == 0xde ? 3 : b == 0xdf ? 5 : 1;
}

size_t og__mp_skip(const uint8_t *p, size_t len)
{
    /* An explicit stack of "objects still to skip" instead of recursion. */
    uint64_t todo[65];
    int depth = 0;
    size_t off = 0;

    todo[0] = 1;
    while (depth >= 0) {
        uint8_t b;
        uint64_t children = 0, skip = 0;
        size_t head = 1;

        if (todo[depth] == 0) {
            depth--;
            continue;
        }
        todo[depth]--;
        if (off >= len)
            return 0;
        b = p[off];
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, negative fixint, nil, false, true */
        } else if (b >= 0x80 && b <= 0x8f) {
            children = (uint64_t)(b & 0x0f) * 2;
        } else if (b >= 0x90 && b <= 0x9f) {
            children = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            static const uint8_t fixed[] = {/* c4..c6 bin8/16/32 */ 1,
                                            2,
                                            4,
                                            /* c7..c9 ext8/16/32 */ 1,
                                            2,
                                            4,
                                            /* ca cb float32/64 */ 4,
                                            8,
                                            /* cc..cf uint8..64 */ 1,
                                            2,
                                            4,
                                            8,
                                            /* d0..d3 int8..64 */ 1,
                                            2,
                                            4,
                                            8,
                                            /* d4..d8 fixext 1..16 */ 2,
                                            3,
                                            5,
                                            9,
                                            17,
                                            /* d9..db str8/16/32 */ 1,
                                            2,
                                            4,
                                            /* dc dd array16/32 */ 2,
                                            4,
                                            /* de df map16/32 */ 2,
                                            4};
            int n;

            if (b == 0xc1)
                return 0;
            n = fixed[b - 0xc4];
            if (off + 1 + (size_t)n > len)
                return 0;
            if (b >= 0xc4 && b <= 0xc6) { /* bin */
                skip = be(p + off + 1, n);
                head += (size_t)n;
            } else if (b >= 0xc7 && b <= 0xc9) { /* ext: length, type */
                skip = be(p + off + 1, n) + 1;
                head += (size_t)n;
            } else if (b >= 0xd9 && b <= 0xdb) { /* str */
                skip = be(p + off + 1, n);
                head += (size_t)n;
            } else if (b == 0xdc || b == 0xdd) {
                children = be(p + off + 1, n);
                head += (size_t)n;
            } else if (b == 0xde || b == 0xdf) {
                children = be(p + off + 1, n) * 2;
                head += (size_t)n;
            } else {
                skip = (uint64_t)n; /* fixed-size payload */
            }
        }
        if (skip > len || off + head + skip > len)
            return 0;
        off += head + (size_t)skip;
        if (children > 0) {
            if (depth == 64)
                return 0;
            todo[++depth] = children;
        }
    }
    return off;
}

const char *og__refusal_name(og__refusal_t r)
{
    static const char *const names[OG__REFUSE_COUNT] = {
        "none",       "too_large",     "invalid_msgpack",
        "not_a_map",  "bad_version",   "missing_field",
        "wrong_type", "invalid_value", "unknown_field"};

    return (unsigned)r < OG__REFUSE_COUNT ? names[r] : "unknown";
}

/* Validation state: the first problem found wins. */
struct check {
    og__refusal_t reason;
    char *why;
    size_t whylen;
};

static int refuse(struct check *c, og__refusal_t r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct check *c, og__refusal_t r, const char *fmt, ...)
{
    va_list ap;

    c->reason = r;
    va_start(ap, fmt);
    vsnprintf(c->why, c->whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_ident_n(const char *p, size_t n, size_t max)
{
    size_t i;

    if (n == 0 || n > max)
        return 0;
    for (i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') ||
              p[i] == '_' || p[i] == '-' || p[i] == '.'))
            return 0;
    return 1;
}

/* A string field of 1-64 printable ASCII characters (ids of all kinds). */
static int check_id(struct check *c, const msgpack_object *v, const char *name)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return refuse(c, OG__REFUSE_TYPE, "field '%s' must be a string", name);
    if (!valid_id(v->via.str.ptr, v->via.str.size))
        return refuse(c, OG__REFUSE_VALUE,
                      "field '%s' must be 1-%d printable ASCII characters",
                      name, MAX_ID_LEN);
    return 0;
}

static int check_map(struct check *c, const msgpack_object *v, const char *name)
{
    if (v->type != MSGPACK_OBJECT_MAP)
        return refuse(c, OG__REFUSE_TYPE, "field '%s' must be a map", name);
    return 0;
}

/*
 * Money anywhere in props or context: a map with "currency" holds an ISO
 * 4217 code (three capital letters) and, with "amount", an integer amount
 * in minor units (cents), never a float.
 */
static int check_money(struct check *c, const msgpack_object *v,
                       const char *where, int depth)
{
    uint32_t i;

    if (depth > 32)
        return refuse(c, OG__REFUSE_VALUE, "field '%s' nests deeper than 32",
                      where);
    if (v->type == MSGPACK_OBJECT_ARRAY) {
        for (i = 0; i < v->via.array.size; i++)
            if (check_money(c, &v->via.array.ptr[i], where, depth + 1) != 0)
                return -1;
        return 0;
    }
    if (v->type != MSGPACK_OBJECT_MAP)
        return 0;
    for (i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key;
        const msgpack_object *x = &v->via.map.ptr[i].val;

        if (key_is(k, "currency")) {
            if (x->type != MSGPACK_OBJECT_STR || x->via.str.size != 3 ||
                x->via.str.ptr[0] < 'A' || x->via.str.ptr[0] > 'Z' ||
                x->via.str.ptr[1] < 'A' || x->via.str.ptr[1] > 'Z' ||
                x->via.str.ptr[2] < 'A' || x->via.str.ptr[2] > 'Z')
                return refuse(c, OG__REFUSE_VALUE,
                              "a currency in '%s' must be an ISO 4217 code "
                              "such as \"EUR\"",
                              where);
        } else if (key_is(k, "amount")) {
            if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
                x->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
                return refuse(c, OG__REFUSE_TYPE,
                              "an amount in '%s' must be an integer in minor "
                              "units (cents), not %s",
                              where,
                              x->type == MSGPACK_OBJECT_FLOAT64 ||
                                      x->type == MSGPACK_OBJECT_FLOAT32
                                  ? "a float"
                                  : "another type");
        } else if (check_money(c, x, where, depth + 1) != 0) {
            return -1;
        }
    }
    return 0;
}

static int check_source(struct check *c, const msgpack_object *v)
{
    uint32_t i;

    if (check_map(c, v, "source") != 0)
        return -1;
    for (i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key;
        const msgpack_object *x = &v->via.map.ptr[i].val;

        if (key_is(k, "instance") || key_is(k, "plugin"))
            continue; /* replaced by the core */
        if (key_is(k, "channel")) {
            if (x->type != MSGPACK_OBJECT_STR)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'source.channel' must be a string");
            if (!is_ident_n(x->via.str.ptr, x->via.str.size, 64))
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'source.channel' must be 1-64 "
                              "characters of a-z, 0-9, '_', '-', '.'");
        } else if (key_is(k, "vendor_id")) {
            if (x->type != MSGPACK_OBJECT_STR)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'source.vendor_id' must be a string");
            if (x->via.str.size == 0 || x->via.str.size > 256)
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'source.vendor_id' must be 1-256 "
                              "characters");
        } else {
            return refuse(c, OG__REFUSE_UNKNOWN, "unknown field 'source.%.*s'",
                          k->type == MSGPACK_OBJECT_STR ? (int)k->via.str.size
                                                        : 1,
                          k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : "?");
        }
    }
    return 0;
}

static int check_ids(struct check *c, const msgpack_object *v)
{
    uint32_t i, j;

    if (v->type != MSGPACK_OBJECT_ARRAY)
        return refuse(c, OG__REFUSE_TYPE, "field 'ids' must be an array");
    if (v->via.array.size > 32)
        return refuse(c, OG__REFUSE_VALUE,
                      "field 'ids' holds %u identity keys, at most 32",
                      v->via.array.size);
    for (i = 0; i < v->via.array.size; i++) {
        const msgpack_object *e = &v->via.array.ptr[i];
        int have_kind = 0, have_value = 0;

        if (e->type != MSGPACK_OBJECT_MAP)
            return refuse(c, OG__REFUSE_TYPE, "field 'ids[%u]' must be a map",
                          i);
        for (j = 0; j < e->via.map.size; j++) {
            const msgpack_object *k = &e->via.map.ptr[j].key;
            const msgpack_object *x = &e->via.map.ptr[j].val;

            if (key_is(k, "kind")) {
                if (x->type != MSGPACK_OBJECT_STR ||
                    !is_ident_n(x->via.str.ptr, x->via.str.size, 32))
                    return refuse(c, OG__REFUSE_VALUE,
                                  "field 'ids[%u].kind' must be 1-32 "
                                  "characters of a-z, 0-9, '_', '-', '.'",
                                  i);
                have_kind = 1;
            } else if (key_is(k, "value")) {
                if (x->type != MSGPACK_OBJECT_STR)
                    return refuse(c, OG__REFUSE_TYPE,
                                  "field 'ids[%u].value' must be a string", i);
                if (x->via.str.size == 0 || x->via.str.size > 256)
                    return refuse(c, OG__REFUSE_VALUE,
                                  "field 'ids[%u].value' must be 1-256 "
                                  "characters",
                                  i);
                have_value = 1;
            } else if (key_is(k, "verified")) {
                if (x->type != MSGPACK_OBJECT_BOOLEAN)
                    return refuse(c, OG__REFUSE_TYPE,
                                  "field 'ids[%u].verified' must be a boolean",
                                  i);
            } else {
                return refuse(c, OG__REFUSE_UNKNOWN,
                              "unknown field in 'ids[%u]' (known: kind, "
                              "value, verified)",
                              i);
            }
        }
        if (!have_kind || !have_value)
            return refuse(c, OG__REFUSE_MISSING, "missing field 'ids[%u].%s'",
                          i, have_kind ? "value" : "kind");
    }
    return 0;
}

static int check_entity(struct check *c, const msgpack_object *v)
{
    uint32_t i;
    int have_kind = 0, have_id = 0;

    if (check_map(c, v, "entity") != 0)
        return -1;
    for (i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key;
        const msgpack_object *x = &v->via.map.ptr[i].val;

        if (key_is(k, "kind")) {
            if (x->type != MSGPACK_OBJECT_STR ||
                !is_ident_n(x->via.str.ptr, x->via.str.size, 32))
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'entity.kind' must be 1-32 characters "
                              "of a-z, 0-9, '_', '-', '.'");
            have_kind = 1;
        } else if (key_is(k, "id")) {
            if (x->type != MSGPACK_OBJECT_STR)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'entity.id' must be a string");
            if (x->via.str.size == 0 || x->via.str.size > 128)
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'entity.id' must be 1-128 characters");
            have_id = 1;
        } else if (key_is(k, "version")) {
            if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'entity.version' must be a positive "
                              "integer");
        } else {
            return refuse(c, OG__REFUSE_UNKNOWN,
                          "unknown field in 'entity' (known: kind, id, "
                          "version)");
        }
    }
    if (!have_kind || !have_id)
        return refuse(c, OG__REFUSE_MISSING, "missing field 'entity.%s'",
                      have_kind ? "id" : "kind");
    return 0;
}

/* Checks every top-level field of the envelope (sdk/docs/envelope.md). */
static int validate(struct check *c, const msgpack_object *root,
                    const msgpack_object **type, const msgpack_object **id,
                    const msgpack_object **source)
{
    static const char *const idlike[] = {"customer", "conversation", "location",
                                         "correlation", "causation"};
    uint32_t i;
    size_t j;
    int have_v = 0;

    if (root->type != MSGPACK_OBJECT_MAP)
        return refuse(c, OG__REFUSE_NOT_MAP, "envelope must be a map");
    for (i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key;
        const msgpack_object *v = &root->via.map.ptr[i].val;
        int known = 0;

        if (k->type != MSGPACK_OBJECT_STR)
            return refuse(c, OG__REFUSE_TYPE,
                          "envelope key #%u is not a string", i);
        for (j = 0; j < OG__ARRAY_SIZE(idlike); j++) {
            if (key_is(k, idlike[j])) {
                if (check_id(c, v, idlike[j]) != 0)
                    return -1;
                known = 1;
            }
        }
        if (known)
            continue;
        if (key_is(k, "v")) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'v' must be an integer");
            if (v->via.u64 != OG__ENVELOPE_VERSION)
                return refuse(c, OG__REFUSE_VERSION,
                              "unsupported schema version %llu (this host "
                              "speaks %d)",
                              (unsigned long long)v->via.u64,
                              OG__ENVELOPE_VERSION);
            have_v = 1;
        } else if (key_is(k, "type")) {
            if (v->type != MSGPACK_OBJECT_STR)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'type' must be a string");
            if (!valid_type(v->via.str.ptr, v->via.str.size))
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'type' must be 1-%d characters of a-z, "
                              "0-9, '_', '-', '.'",
                              MAX_TYPE_LEN);
            *type = v;
        } else if (key_is(k, "id")) {
            if (check_id(c, v, "id") != 0)
                return -1;
            *id = v;
        } else if (key_is(k, "occurred")) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'occurred' must be a positive integer "
                              "(milliseconds since the epoch)");
        } else if (key_is(k, "received")) {
            /* core-owned: replaced */
        } else if (key_is(k, "source")) {
            if (check_source(c, v) != 0)
                return -1;
            *source = v;
        } else if (key_is(k, "ids")) {
            if (check_ids(c, v) != 0)
                return -1;
        } else if (key_is(k, "entity")) {
            if (check_entity(c, v) != 0)
                return -1;
        } else if (key_is(k, "props") || key_is(k, "context")) {
            const char *name = key_is(k, "props") ? "props" : "context";
            if (check_map(c, v, name) != 0 || check_money(c, v, name, 0) != 0)
                return -1;
        } else if (key_is(k, "consent")) {
            if (check_map(c, v, "consent") != 0)
                return -1;
        } else {
            return refuse(c, OG__REFUSE_UNKNOWN,
                          "unknown field '%.*s' (custom data goes in props)",
                          (int)(k->via.str.size > 64 ? 64 : k->via.str.size),
                          k->via.str.ptr);
        }
    }
    if (!have_v)
        return refuse(c, OG__REFUSE_MISSING, "missing field 'v'");
    if (*type == NULL)
        return refuse(c, OG__REFUSE_MISSING, "missing field 'type'");
    return 0;
}

og_event_t *og__event_accept(const uint8_t *bytes, size_t len,
                             const char *instance, const char *plugin,
                             size_t max_bytes, og_err_t *rc,
                             og__refusal_t *reason, char *why, size_t whylen)
{
    static msgpack_zone *zone;
    msgpack_object root;
    const msgpack_object *type = NULL, *id = NULL, *source = NULL;
    size_t off = 0, i, nout;
    msgpack_unpack_return ur;
    og_event_t *ev = NULL;
    char newid[37];
    struct check chk = {OG__REFUSE_NONE, why, whylen};
    og__refusal_t dummy;

    if (reason == NULL)
        reason = &dummy;
    *reason = OG__REFUSE_MSGPACK;
    *rc = OG_ERR_INVALID;
    if (bytes == NULL || len == 0) {
        snprintf(why, whylen, "empty event");
        return NULL;
    }
    if (len > max_bytes) {
        *rc = OG_ERR_TOO_LARGE;
        *reason = OG__REFUSE_TOO_LARGE;
        snprintf(why, whylen, "event of %zu bytes exceeds max_event_size (%zu)",
                 len, max_bytes);
        return NULL;
    }
    /* One zone serves every acceptance (loop thread only): cleared, not
     * freed, so its chunks are reused. */
    if (zone == NULL && (zone = msgpack_zone_new(8192)) == NULL) {
        *rc = OG_ERR_NOMEM;
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    ur = msgpack_unpack((const char *)bytes, len, &off, zone, &root);
    if (ur == MSGPACK_UNPACK_CONTINUE) {
        snprintf(why, whylen, "invalid MessagePack: truncated at byte %zu",
                 len);
        goto out;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES) {
        snprintf(why, whylen, "invalid MessagePack");
        goto out;
    }
    if (off != len) {
        snprintf(why, whylen, "%zu trailing bytes after the envelope",
                 len - off);
        goto out;
    }
    if (validate(&chk, &root, &type, &id, &source) != 0) {
        *reason = chk.reason;
        goto out;
    }

    /* Copy the accepted map byte for byte, leaving out the core-owned
     * fields, and append them stamped: one allocation, no re-encoding. */
    nout = 3; /* id, received, source */
    for (i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr[i].key;
        if (!key_is(k, "id") && !key_is(k, "received") && !key_is(k, "source"))
            nout++;
    }
    {
        struct wbuf w;
        size_t ns = 2, in_off = map_header_len(bytes[0]), src_off = 0;
        size_t src_end = 0, span_buf[33], *spans;
        const char *eid;
        size_t eidlen;

        size_t ilen = strlen(instance), plen = strlen(plugin);
        size_t tlen = type->via.str.size;

        /* One block: the event, its bytes, its type and instance names. */
        w.cap = len + ilen + plen + 128;
        ev = og__xmalloc(sizeof(*ev) + w.cap + tlen + 1 + ilen + 1);
        memset(ev, 0, sizeof(*ev));
        ev->type = (char *)(ev + 1);
        ev->instance = ev->type + tlen + 1;
        memcpy(ev->type, type->via.str.ptr, tlen);
        ev->type[tlen] = '\0';
        memcpy(ev->instance, instance, ilen + 1);
        w.p = (uint8_t *)(ev->instance + ilen + 1);
        w.n = 0;
        put_map(&w, nout);
        spans = root.via.map.size < 32
                    ? span_buf
                    : og__xmalloc((root.via.map.size + 1) * sizeof(*spans));
        pair_spans(&root, bytes, in_off, len, spans);
        for (i = 0; i < root.via.map.size; i++) {
            const msgpack_object *k = &root.via.map.ptr[i].key;

            if (key_is(k, "source")) /* the source map's value bytes */
                src_off = spans[i] +
                          (size_t)og__mp_skip(bytes + spans[i], len - spans[i]);
            else if (!key_is(k, "id") && !key_is(k, "received"))
                put_raw(&w, bytes + spans[i], spans[i + 1] - spans[i]);
            if (key_is(k, "source"))
                src_end = spans[i + 1];
        }
        if (spans != span_buf)
            free(spans);
        if (id != NULL) {
            eid = id->via.str.ptr;
            eidlen = id->via.str.size;
        } else {
            og__uuid7(newid);
            eid = newid;
            eidlen = 36;
        }
        put_str(&w, "id", 2);
        put_str(&w, eid, eidlen);
        put_str(&w, "received", 8);
        put_u64(&w, og__now_ms());
        put_str(&w, "source", 6);
        if (source != NULL)
            for (i = 0; i < source->via.map.size; i++) {
                const msgpack_object *k = &source->via.map.ptr[i].key;
                if (!key_is(k, "instance") && !key_is(k, "plugin"))
                    ns++;
            }
        put_map(&w, ns);
        if (source != NULL) {
            size_t sspans[33];

            if (source->via.map.size <= 32) {
                pair_spans(source, bytes,
                           src_off + map_header_len(bytes[src_off]), src_end,
                           sspans);
                for (i = 0; i < source->via.map.size; i++) {
                    const msgpack_object *k = &source->via.map.ptr[i].key;
                    if (!key_is(k, "instance") && !key_is(k, "plugin"))
                        put_raw(&w, bytes + sspans[i],
                                sspans[i + 1] - sspans[i]);
                }
            }
        }
        put_str(&w, "instance", 8);
        put_str(&w, instance, ilen);
        put_str(&w, "plugin", 6);
        put_str(&w, plugin, plen);

        ev->refs = 1;
        ev->len = w.n;
        ev->data = w.p;
        memcpy(ev->id, eid, eidlen);
        ev->id[eidlen] = '\0';
    }
    ev->accepted_ns = uv_hrtime();
    *rc = OG_OK;
    *reason = OG__REFUSE_NONE;
out:
    msgpack_zone_clear(zone);
    return ev;
}

og_event_t *og__event_ref(og_event_t *ev)
{
    ev->refs++;
    return ev;
}

void og__event_unref(og_event_t *ev)
{
    if (ev == NULL || --ev->refs > 0)
        return;
    if (ev->parsed)
        msgpack_zone_destroy(&ev->zone);
    free(ev); /* data, type and instance live in the same block */
}

og_err_t og__event_lookup(const og_event_t *cev, const char *path,
                          const msgpack_object **out)
{
    og_event_t *ev = (og_event_t *)cev; /* lazy parse cache */
    const msgpack_object *cur;
    const char *seg = path;

    if (path == NULL || *path == '\0')
        return OG_ERR_INVALID;
    if (!ev->parsed) {
        size_t off = 0;

        if (!msgpack_zone_init(&ev->zone, 2048))
            return OG_ERR_NOMEM;
        if (msgpack_unpack((const char *)ev->data, ev->len, &off, &ev->zone,
                           &ev->root) != MSGPACK_UNPACK_SUCCESS) {
            msgpack_zone_destroy(&ev->zone);
            return OG_ERR_INTERNAL;
        }
        ev->parsed = 1;
    }
    cur = &ev->root;
    while (seg != NULL) {
        const char *dot = strchr(seg, '.');
        size_t n = dot ? (size_t)(dot - seg) : strlen(seg), i;
        const msgpack_object *next = NULL;

        if (cur->type != MSGPACK_OBJECT_MAP)
            return OG_ERR_NOT_FOUND;
        for (i = 0; i < cur->via.map.size; i++) {
            const msgpack_object *k = &cur->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
                memcmp(k->via.str.ptr, seg, n) == 0) {
                next = &cur->via.map.ptr[i].val;
                break;
            }
        }
        if (next == NULL)
            return OG_ERR_NOT_FOUND;
        cur = next;
        seg = dot ? dot + 1 : NULL;
    }
    *out = cur;
    return OG_OK;
}

const char *og__event_type(const og_event_t *ev)
{
    return ev->type;
}

const char *og__event_id(const og_event_t *ev)
{
    return ev->id;
}

const uint8_t *og__event_data(const og_event_t *ev, size_t *len)
{
    if (len != NULL)
        *len = ev->len;
    return ev->data;
}

og_err_t og__event_get_str(const og_event_t *ev, const char *path,
                           const char **value, size_t *len)
{
    const msgpack_object *o;
    og_err_t rc = og__event_lookup(ev, path, &o);

    if (rc != OG_OK)
        return rc;
    if (o->type != MSGPACK_OBJECT_STR)
        return OG_ERR_TYPE;
    *value = o->via.str.ptr;
    *len = o->via.str.size;
    return OG_OK;
}

og_err_t og__event_get_int(const og_event_t *ev, const char *path,
                           int64_t *value)
{
    const msgpack_object *o;
    og_err_t rc = og__event_lookup(ev, path, &o);

    if (rc != OG_OK)
        return rc;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return OG_ERR_RANGE;
        *value = (int64_t)o->via.u64;
        return OG_OK;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *value = o->via.i64;
        return OG_OK;
    }
    return OG_ERR_TYPE;
}

og_err_t og__event_get_bool(const og_event_t *ev, const char *path, int *value)
{
    const msgpack_object *o;
    og_err_t rc = og__event_lookup(ev, path, &o);

    if (rc != OG_OK)
        return rc;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return OG_ERR_TYPE;
    *value = o->via.boolean ? 1 : 0;
    return OG_OK;
}

/* ---- builder ---------------------------------------------------------- */

enum bkind { B_MAP, B_STR, B_INT, B_DBL, B_BOOL, B_RAW };

struct bnode {
    char *key;
    enum bkind kind;
    union {
        char *s;
        int64_t i;
        double d;
        int b;
        struct {
            uint8_t *p;
            size_t n;
        } raw;
    } u;
    struct bnode *kids; /* B_MAP */
    struct bnode *next;
};

struct bident {
    char *kind;
    char *value;
    int verified;
};

struct og_event_builder_s {
    og_plugin_ctx_t *ctx;
    char *type;
    struct bnode root;
    struct bident *ids;
    size_t nids;
};

static void bnode_clear(struct bnode *n)
{
    struct bnode *k, *next;

    if (n->kind == B_STR)
        free(n->u.s);
    else if (n->kind == B_RAW)
        free(n->u.raw.p);
    for (k = n->kids; k != NULL; k = next) {
        next = k->next;
        bnode_clear(k);
        free(k->key);
        free(k);
    }
    n->kids = NULL;
}

og_event_builder_t *og__builder_create(og_plugin_ctx_t *ctx, const char *type)
{
    og_event_builder_t *b;

    if (type == NULL || !valid_type(type, strlen(type)))
        return NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->ctx = ctx;
    b->type = strdup(type);
    b->root.kind = B_MAP;
    if (b->type == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

og_plugin_ctx_t *og__builder_ctx(og_event_builder_t *b)
{
    return b->ctx;
}

/* Finds or creates the leaf node at path, cleared and ready for a value. */
static og_err_t builder_leaf(og_event_builder_t *b, const char *path,
                             struct bnode **out)
{
    static const char *const reserved[] = {
        "v", "type", "received", "ids", "source.instance", "source.plugin"};
    struct bnode *cur = &b->root;
    const char *seg = path;
    size_t i;

    static const char *const fields[] = {
        "id",           "occurred", "source",      "customer",
        "conversation", "location", "correlation", "causation",
        "entity",       "context",  "consent",     "props"};
    size_t first;
    int known = 0;

    if (b == NULL || path == NULL || *path == '\0' || path[0] == '.' ||
        path[strlen(path) - 1] == '.' || strstr(path, "..") != NULL)
        return OG_ERR_INVALID; /* checked whole, so nothing half-built */
    for (i = 0; i < OG__ARRAY_SIZE(reserved); i++)
        if (strcmp(path, reserved[i]) == 0)
            return OG_ERR_INVALID;
    first = strcspn(path, ".");
    for (i = 0; i < OG__ARRAY_SIZE(fields); i++)
        if (strlen(fields[i]) == first && strncmp(path, fields[i], first) == 0)
            known = 1;
    if (!known)
        return OG_ERR_INVALID; /* not an envelope field: use props.* */
    while (seg != NULL) {
        const char *dot = strchr(seg, '.');
        size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
        struct bnode *k, **tail = &cur->kids;

        if (n == 0)
            return OG_ERR_INVALID;
        for (k = cur->kids; k != NULL; k = k->next) {
            if (strlen(k->key) == n && memcmp(k->key, seg, n) == 0)
                break;
            tail = &k->next;
        }
        if (k == NULL) {
            k = calloc(1, sizeof(*k));
            if (k == NULL || (k->key = strndup(seg, n)) == NULL) {
                free(k);
                return OG_ERR_NOMEM;
            }
            k->kind = B_MAP;
            *tail = k;
        } else if (dot != NULL && k->kind != B_MAP) {
            return OG_ERR_INVALID; /* a value where a map is needed */
        }
        cur = k;
        seg = dot ? dot + 1 : NULL;
    }
    bnode_clear(cur);
    *out = cur;
    return OG_OK;
}

og_err_t og__builder_set_str(og_event_builder_t *b, const char *path,
                             const char *value)
{
    struct bnode *n;
    char *copy;
    og_err_t rc;

    if (value == NULL)
        return OG_ERR_INVALID;
    if ((copy = strdup(value)) == NULL)
        return OG_ERR_NOMEM;
    if ((rc = builder_leaf(b, path, &n)) != OG_OK) {
        free(copy);
        return rc;
    }
    n->kind = B_STR;
    n->u.s = copy;
    return OG_OK;
}

og_err_t og__builder_set_int(og_event_builder_t *b, const char *path,
                             int64_t value)
{
    struct bnode *n;
    og_err_t rc = builder_leaf(b, path, &n);

    if (rc == OG_OK) {
        n->kind = B_INT;
        n->u.i = value;
    }
    return rc;
}

og_err_t og__builder_set_double(og_event_builder_t *b, const char *path,
                                double value)
{
    struct bnode *n;
    og_err_t rc = builder_leaf(b, path, &n);

    if (rc == OG_OK) {
        n->kind = B_DBL;
        n->u.d = value;
    }
    return rc;
}

og_err_t og__builder_set_bool(og_event_builder_t *b, const char *path,
                              int value)
{
    struct bnode *n;
    og_err_t rc = builder_leaf(b, path, &n);

    if (rc == OG_OK) {
        n->kind = B_BOOL;
        n->u.b = value != 0;
    }
    return rc;
}

og_err_t og__builder_set_msgpack(og_event_builder_t *b, const char *path,
                                 const uint8_t *msgpack, size_t len)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    struct bnode *n;
    uint8_t *copy;
    og_err_t rc;
    int ok;

    if (msgpack == NULL || len == 0)
        return OG_ERR_INVALID;
    if (!msgpack_zone_init(&zone, 1024))
        return OG_ERR_NOMEM;
    ok = msgpack_unpack((const char *)msgpack, len, &off, &zone, &obj) ==
             MSGPACK_UNPACK_SUCCESS &&
         off == len;
    msgpack_zone_destroy(&zone);
    if (!ok)
        return OG_ERR_INVALID;
    if ((copy = malloc(len)) == NULL)
        return OG_ERR_NOMEM;
    memcpy(copy, msgpack, len);
    if ((rc = builder_leaf(b, path, &n)) != OG_OK) {
        free(copy);
        return rc;
    }
    n->kind = B_RAW;
    n->u.raw.p = copy;
    n->u.raw.n = len;
    return OG_OK;
}

og_err_t og__builder_add_identity(og_event_builder_t *b, const char *kind,
                                  const char *value, int verified)
{
    struct bident *ids;

    if (b == NULL || !og__is_ident(kind, 1) || value == NULL || *value == '\0')
        return OG_ERR_INVALID;
    ids = realloc(b->ids, (b->nids + 1) * sizeof(*ids));
    if (ids == NULL)
        return OG_ERR_NOMEM;
    b->ids = ids;
    ids[b->nids].kind = strdup(kind);
    ids[b->nids].value = strdup(value);
    ids[b->nids].verified = verified != 0;
    if (ids[b->nids].kind == NULL || ids[b->nids].value == NULL) {
        free(ids[b->nids].kind);
        free(ids[b->nids].value);
        return OG_ERR_NOMEM;
    }
    b->nids++;
    return OG_OK;
}

static size_t count_kids(const struct bnode *n)
{
    size_t c = 0;
    const struct bnode *k;

    for (k = n->kids; k != NULL; k = k->next)
        c++;
    return c;
}

static void pack_node(msgpack_sbuffer *sb, msgpack_packer *pk,
                      const struct bnode *n)
{
    const struct bnode *k;

    switch (n->kind) {
    case B_MAP:
        msgpack_pack_map(pk, count_kids(n));
        for (k = n->kids; k != NULL; k = k->next) {
            pack_cstr(pk, k->key);
            pack_node(sb, pk, k);
        }
        break;
    case B_STR: pack_cstr(pk, n->u.s); break;
    case B_INT: msgpack_pack_int64(pk, n->u.i); break;
    case B_DBL: msgpack_pack_double(pk, n->u.d); break;
    case B_BOOL:
        if (n->u.b)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case B_RAW:
        msgpack_sbuffer_write(sb, (const char *)n->u.raw.p, n->u.raw.n);
        break;
    }
}

og_err_t og__builder_encode(og_event_builder_t *b, uint8_t **out, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const struct bnode *k;
    size_t i;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + count_kids(&b->root) + (b->nids ? 1 : 0));
    pack_cstr(&pk, "v");
    msgpack_pack_uint8(&pk, OG__ENVELOPE_VERSION);
    pack_cstr(&pk, "type");
    pack_cstr(&pk, b->type);
    for (k = b->root.kids; k != NULL; k = k->next) {
        pack_cstr(&pk, k->key);
        pack_node(&sb, &pk, k);
    }
    if (b->nids > 0) {
        pack_cstr(&pk, "ids");
        msgpack_pack_array(&pk, b->nids);
        for (i = 0; i < b->nids; i++) {
            msgpack_pack_map(&pk, 3);
            pack_cstr(&pk, "kind");
            pack_cstr(&pk, b->ids[i].kind);
            pack_cstr(&pk, "value");
            pack_cstr(&pk, b->ids[i].value);
            pack_cstr(&pk, "verified");
            if (b->ids[i].verified)
                msgpack_pack_true(&pk);
            else
                msgpack_pack_false(&pk);
        }
    }
    if (sb.data == NULL) {
        msgpack_sbuffer_destroy(&sb);
        return OG_ERR_NOMEM;
    }
    *len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return OG_OK;
}

void og__builder_destroy(og_event_builder_t *b)
{
    size_t i;

    if (b == NULL)
        return;
    bnode_clear(&b->root);
    for (i = 0; i < b->nids; i++) {
        free(b->ids[i].kind);
        free(b->ids[i].value);
    }
    free(b->ids);
    free(b->type);
    free(b);
}
