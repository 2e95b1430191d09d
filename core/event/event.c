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
#include <xxhash.h>

#include "event/event.h"
#include "base/util.h"

#define MAX_TYPE_LEN 128
#define MAX_ID_LEN 64

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
    og__uuid7_at(out, og__now_ms());
}

void og__uuid7_at(char out[37], uint64_t now_ms)
{
    static uint64_t last_ms;
    static uint16_t seq;
    uint8_t b[16];
    uint64_t ms = now_ms;
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

/* Bytes taken by a map header starting with byte b (a validated map). */
static size_t map_header_len(uint8_t b)
{
    return b == 0xde ? 3 : b == 0xdf ? 5 : 1;
}

enum mpt {
    T_NIL,
    T_BOOL,
    T_UINT,
    T_INT,
    T_FLOAT,
    T_STR,
    T_BIN,
    T_EXT,
    T_ARRAY,
    T_MAP
};

/* How the formats 0xc4..0xdf are laid out after their tag byte. */
enum fkind {
    F_LEN, /* n length bytes, then a body of that length */
    F_EXT, /* n length bytes, a type byte, then the body */
    F_FIX, /* a fixed payload of n bytes */
    F_CNT  /* n count bytes; the elements follow as objects */
};

static const struct fmt {
    uint8_t type; /* enum mpt */
    uint8_t n;
    uint8_t kind; /* enum fkind */
} fmts[28] = {
    {T_BIN, 1, F_LEN},   {T_BIN, 2, F_LEN},   {T_BIN, 4, F_LEN},   /* c4 */
    {T_EXT, 1, F_EXT},   {T_EXT, 2, F_EXT},   {T_EXT, 4, F_EXT},   /* c7 */
    {T_FLOAT, 4, F_FIX}, {T_FLOAT, 8, F_FIX},                      /* ca */
    {T_UINT, 1, F_FIX},  {T_UINT, 2, F_FIX},  {T_UINT, 4, F_FIX},  /* cc */
    {T_UINT, 8, F_FIX},  {T_INT, 1, F_FIX},   {T_INT, 2, F_FIX},   /* cf */
    {T_INT, 4, F_FIX},   {T_INT, 8, F_FIX},   {T_EXT, 2, F_FIX},   /* d2 */
    {T_EXT, 3, F_FIX},   {T_EXT, 5, F_FIX},   {T_EXT, 9, F_FIX},   /* d5 */
    {T_EXT, 17, F_FIX},  {T_STR, 1, F_LEN},   {T_STR, 2, F_LEN},   /* d8 */
    {T_STR, 4, F_LEN},   {T_ARRAY, 2, F_CNT}, {T_ARRAY, 4, F_CNT}, /* db */
    {T_MAP, 2, F_CNT},   {T_MAP, 4, F_CNT},                        /* de */
};

/* og__mp_skip() that also tells whether it failed for lack of bytes (a
 * truncated object) rather than a bad byte or too deep nesting. */
static size_t mp_skip_impl(const uint8_t *p, size_t len, int *short_input)
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
        if (off >= len) {
            *short_input = 1;
            return 0;
        }
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
            const struct fmt *f;
            size_t n;

            if (b == 0xc1)
                return 0;
            f = &fmts[b - 0xc4];
            n = f->n;
            if (off + 1 + (f->kind == F_FIX ? 0 : n) > len) {
                *short_input = 1;
                return 0;
            }
            if (f->kind == F_FIX) {
                skip = n;
            } else if (f->kind == F_CNT) {
                children = be(p + off + 1, (int)n) * (f->type == T_MAP ? 2 : 1);
                head += n;
            } else {
                skip = be(p + off + 1, (int)n) + (f->kind == F_EXT ? 1 : 0);
                head += n;
            }
        }
        if (skip > len || off + head + skip > len) {
            *short_input = 1;
            return 0;
        }
        off += head + (size_t)skip;
        if (children > 0) {
            if (depth == 64)
                return 0;
            todo[++depth] = children;
        }
    }
    return off;
}

size_t og__mp_skip(const uint8_t *p, size_t len)
{
    int short_input = 0;

    return mp_skip_impl(p, len, &short_input);
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
    int untrusted;     /* a public client's event: core-owned links dropped */
    unsigned stripped; /* how many fields that dropped */
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

/* ---- single-pass validation over the bytes ---------------------------- */

/*
 * A read cursor over an envelope that og__mp_skip() has already found to
 * be one well-formed object, so reads never run past the end.
 */
struct cur {
    const uint8_t *p;
    size_t off;
};

struct item {
    enum mpt t;
    uint64_t u;    /* T_UINT */
    int b;         /* T_BOOL */
    const char *s; /* T_STR */
    uint32_t n;    /* T_STR length, T_ARRAY / T_MAP count */
    size_t start;  /* offset of the item's first byte */
};

/* Reads one item; scalars, strings, bin and ext are consumed whole,
 * arrays and maps only up to their header. */
static void rd(struct cur *c, struct item *it)
{
    const uint8_t *p = c->p + c->off;
    uint8_t b = p[0];
    size_t body = 0, head = 1;

    memset(it, 0, sizeof(*it));
    it->start = c->off;
    if (b <= 0x7f) {
        it->t = T_UINT;
        it->u = b;
    } else if (b <= 0x8f) {
        it->t = T_MAP;
        it->n = b & 0x0f;
    } else if (b <= 0x9f) {
        it->t = T_ARRAY;
        it->n = b & 0x0f;
    } else if (b <= 0xbf) {
        it->t = T_STR;
        it->n = b & 0x1f;
        it->s = (const char *)p + 1;
        body = it->n;
    } else if (b >= 0xe0) {
        it->t = T_INT;
    } else if (b <= 0xc3) {
        it->t = b == 0xc0 ? T_NIL : T_BOOL; /* 0xc1 never passes the walk */
        it->b = b == 0xc3;
    } else {
        const struct fmt *f = &fmts[b - 0xc4];
        uint64_t v = f->kind == F_FIX ? 0 : be(p + 1, f->n);

        it->t = (enum mpt)f->type;
        if (f->kind == F_FIX) {
            body = f->n;
            if (it->t == T_UINT) {
                it->u = be(p + 1, f->n);
            } else if (it->t == T_INT) {
                /* a non-negative signed encoding is a positive integer */
                int64_t x = f->n == 1   ? (int8_t)p[1]
                            : f->n == 2 ? (int16_t)be(p + 1, 2)
                            : f->n == 4 ? (int32_t)be(p + 1, 4)
                                        : (int64_t)be(p + 1, 8);
                if (x >= 0) {
                    it->t = T_UINT;
                    it->u = (uint64_t)x;
                }
            }
        } else if (f->kind == F_CNT) {
            head += f->n;
            it->n = (uint32_t)v;
        } else {
            head += f->n + (f->kind == F_EXT ? 1 : 0);
            body = (size_t)v;
            if (it->t == T_STR) {
                it->s = (const char *)p + head;
                it->n = (uint32_t)v;
            }
        }
    }
    c->off += head + body;
}

/* Skips the rest of an item whose header rd() just read. */
static void skip_rest(struct cur *c, const struct item *it)
{
    if (it->t == T_ARRAY || it->t == T_MAP)
        c->off = it->start + og__mp_skip(c->p + it->start, SIZE_MAX / 2);
}

/* Reads a key and its value whole (for maps whose values are leaves to
 * the caller). */
static void rd_pair(struct cur *c, struct item *k, struct item *v)
{
    rd(c, k);
    skip_rest(c, k);
    rd(c, v);
    skip_rest(c, v);
}

static int is(const struct item *it, const char *lit, size_t n)
{
    return it->t == T_STR && it->n == n && memcmp(it->s, lit, n) == 0;
}

#define IS(it, lit) is((it), lit, sizeof(lit) - 1)

/* A string field of 1-64 printable ASCII characters (ids of all kinds). */
static int check_id(struct check *c, const struct item *v, const char *name)
{
    if (v->t != T_STR)
        return refuse(c, OG__REFUSE_TYPE, "field '%s' must be a string", name);
    if (!valid_id(v->s, v->n))
        return refuse(c, OG__REFUSE_VALUE,
                      "field '%s' must be 1-%d printable ASCII characters",
                      name, MAX_ID_LEN);
    return 0;
}

/*
 * Money anywhere in props or context: a map with "currency" holds an ISO
 * 4217 code (three capital letters) and, with "amount", an integer amount
 * in minor units (cents), never a float. Consumes the value at the cursor.
 */
static int check_money(struct check *c, struct cur *cu, const char *where,
                       int depth)
{
    struct item v, k, x;
    uint32_t i;

    rd(cu, &v);
    if (depth > 32)
        return refuse(c, OG__REFUSE_VALUE, "field '%s' nests deeper than 32",
                      where);
    if (v.t == T_ARRAY) {
        for (i = 0; i < v.n; i++)
            if (check_money(c, cu, where, depth + 1) != 0)
                return -1;
        return 0;
    }
    if (v.t != T_MAP)
        return 0;
    for (i = 0; i < v.n; i++) {
        rd(cu, &k);
        skip_rest(cu, &k);
        if (IS(&k, "currency")) {
            rd(cu, &x);
            skip_rest(cu, &x);
            if (x.t != T_STR || x.n != 3 || x.s[0] < 'A' || x.s[0] > 'Z' ||
                x.s[1] < 'A' || x.s[1] > 'Z' || x.s[2] < 'A' || x.s[2] > 'Z')
                return refuse(c, OG__REFUSE_VALUE,
                              "a currency in '%s' must be an ISO 4217 code "
                              "such as \"EUR\"",
                              where);
        } else if (IS(&k, "amount")) {
            rd(cu, &x);
            skip_rest(cu, &x);
            if (x.t != T_UINT && x.t != T_INT)
                return refuse(c, OG__REFUSE_TYPE,
                              "an amount in '%s' must be an integer in minor "
                              "units (cents), not %s",
                              where,
                              x.t == T_FLOAT ? "a float" : "another type");
        } else if (check_money(c, cu, where, depth + 1) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Validates the source map; records where its pairs are for the copy. */
static int check_source(struct check *c, struct cur *cu, uint32_t n)
{
    struct item k, x;
    uint32_t i;

    for (i = 0; i < n; i++) {
        rd_pair(cu, &k, &x);
        if (IS(&k, "instance") || IS(&k, "plugin"))
            continue; /* replaced by the core */
        if (IS(&k, "channel")) {
            if (x.t != T_STR)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'source.channel' must be a string");
            if (!is_ident_n(x.s, x.n, 64))
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'source.channel' must be 1-64 "
                              "characters of a-z, 0-9, '_', '-', '.'");
        } else if (IS(&k, "vendor_id")) {
            if (x.t != T_STR)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'source.vendor_id' must be a string");
            if (x.n == 0 || x.n > 256)
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'source.vendor_id' must be 1-256 "
                              "characters");
        } else {
            return refuse(c, OG__REFUSE_UNKNOWN, "unknown field 'source.%.*s'",
                          k.t == T_STR ? (int)(k.n > 64 ? 64 : k.n) : 1,
                          k.t == T_STR ? k.s : "?");
        }
    }
    return 0;
}

static int check_ids(struct check *c, struct cur *cu, const struct item *v)
{
    struct item e, k, x;
    uint32_t i, j;

    if (v->t != T_ARRAY)
        return refuse(c, OG__REFUSE_TYPE, "field 'ids' must be an array");
    if (v->n > 32)
        return refuse(c, OG__REFUSE_VALUE,
                      "field 'ids' holds %u identity keys, at most 32", v->n);
    for (i = 0; i < v->n; i++) {
        int have_kind = 0, have_value = 0;

        rd(cu, &e);
        if (e.t != T_MAP)
            return refuse(c, OG__REFUSE_TYPE, "field 'ids[%u]' must be a map",
                          i);
        for (j = 0; j < e.n; j++) {
            rd_pair(cu, &k, &x);
            if (IS(&k, "kind")) {
                if (x.t != T_STR || !is_ident_n(x.s, x.n, 32))
                    return refuse(c, OG__REFUSE_VALUE,
                                  "field 'ids[%u].kind' must be 1-32 "
                                  "characters of a-z, 0-9, '_', '-', '.'",
                                  i);
                have_kind = 1;
            } else if (IS(&k, "value")) {
                if (x.t != T_STR)
                    return refuse(c, OG__REFUSE_TYPE,
                                  "field 'ids[%u].value' must be a string", i);
                if (x.n == 0 || x.n > 256)
                    return refuse(c, OG__REFUSE_VALUE,
                                  "field 'ids[%u].value' must be 1-256 "
                                  "characters",
                                  i);
                have_value = 1;
            } else if (IS(&k, "verified")) {
                if (x.t != T_BOOL)
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

/* consent: {PURPOSE: {CHANNEL: bool}}, PURPOSE marketing or
 * transactional, CHANNEL a channel instance or kind, or "*". */
static int check_consent(struct check *c, struct cur *cu, uint32_t n)
{
    struct item k, v, ck, cv;
    uint32_t i, j;

    for (i = 0; i < n; i++) {
        rd(cu, &k);
        skip_rest(cu, &k);
        rd(cu, &v);
        if (!IS(&k, "marketing") && !IS(&k, "transactional")) {
            skip_rest(cu, &v);
            return refuse(c, OG__REFUSE_VALUE,
                          "consent: purpose must be marketing or "
                          "transactional");
        }
        if (v.t != T_MAP) {
            skip_rest(cu, &v);
            return refuse(c, OG__REFUSE_TYPE,
                          "consent.%.*s must be a map of channel to boolean",
                          (int)k.n, k.s);
        }
        for (j = 0; j < v.n; j++) {
            rd_pair(cu, &ck, &cv);
            if (ck.t != T_STR ||
                !((ck.n == 1 && ck.s[0] == '*') || is_ident_n(ck.s, ck.n, 64)))
                return refuse(c, OG__REFUSE_VALUE,
                              "consent.%.*s: a channel must be 1-64 of a-z, "
                              "0-9, '_', '-', '.' or \"*\"",
                              (int)k.n, k.s);
            if (cv.t != T_BOOL)
                return refuse(c, OG__REFUSE_TYPE,
                              "consent.%.*s.%.*s must be a boolean", (int)k.n,
                              k.s, (int)ck.n, ck.s);
        }
    }
    return 0;
}

static int check_entity(struct check *c, struct cur *cu, uint32_t n)
{
    struct item k, x;
    uint32_t i;
    int have_kind = 0, have_id = 0;

    for (i = 0; i < n; i++) {
        rd_pair(cu, &k, &x);
        if (IS(&k, "kind")) {
            if (x.t != T_STR || !is_ident_n(x.s, x.n, 32))
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'entity.kind' must be 1-32 characters "
                              "of a-z, 0-9, '_', '-', '.'");
            have_kind = 1;
        } else if (IS(&k, "id")) {
            if (x.t != T_STR)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'entity.id' must be a string");
            if (x.n == 0 || x.n > 128)
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'entity.id' must be 1-128 characters");
            have_id = 1;
        } else if (IS(&k, "version")) {
            if (x.t != T_UINT)
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

/* What validate() learns for building the stamped copy. */
struct found {
    struct item type, id, source;
    int have_id, have_source;
    size_t source_end;  /* end offset of the source value */
    size_t *pair_start; /* per top-level pair: key start; [n]: map end */
    uint8_t *keep;      /* per pair: copied as is */
};

/* Checks every top-level field of the envelope (sdk/docs/envelope.md). */
static int validate(struct check *c, const uint8_t *bytes, struct found *f,
                    uint32_t npairs, size_t first)
{
    static const struct {
        const char *name;
        size_t len;
    } idlike[] = {{"customer", 8},
                  {"conversation", 12},
                  {"location", 8},
                  {"correlation", 11},
                  {"causation", 9}};
    struct cur cu = {bytes, first};
    struct item k, v;
    uint32_t i;
    size_t j;
    int have_v = 0, have_type = 0;

    for (i = 0; i < npairs; i++) {
        int known = 0;

        f->pair_start[i] = cu.off;
        f->keep[i] = 1;
        rd(&cu, &k);
        if (k.t != T_STR)
            return refuse(c, OG__REFUSE_TYPE,
                          "envelope key #%u is not a string", i);
        rd(&cu, &v);
        for (j = 0; j < OG__ARRAY_SIZE(idlike); j++) {
            if (is(&k, idlike[j].name, idlike[j].len)) {
                skip_rest(&cu, &v);
                if (check_id(c, &v, idlike[j].name) != 0)
                    return -1;
                known = 1;
                /* A public client names no customer and no journey's
                 * links: the core resolves and stamps them
                 * (docs/security.md). */
                if (c->untrusted &&
                    (IS(&k, "customer") || IS(&k, "correlation") ||
                     IS(&k, "causation"))) {
                    f->keep[i] = 0;
                    c->stripped++;
                }
            }
        }
        if (known)
            continue;
        if (IS(&k, "v")) {
            skip_rest(&cu, &v);
            if (v.t != T_UINT)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'v' must be an integer");
            if (v.u != OG__ENVELOPE_VERSION)
                return refuse(c, OG__REFUSE_VERSION,
                              "unsupported schema version %llu (this host "
                              "speaks %d)",
                              (unsigned long long)v.u, OG__ENVELOPE_VERSION);
            have_v = 1;
        } else if (IS(&k, "type")) {
            skip_rest(&cu, &v);
            if (v.t != T_STR)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'type' must be a string");
            if (!valid_type(v.s, v.n))
                return refuse(c, OG__REFUSE_VALUE,
                              "field 'type' must be 1-%d characters of a-z, "
                              "0-9, '_', '-', '.'",
                              MAX_TYPE_LEN);
            f->type = v;
            have_type = 1;
        } else if (IS(&k, "id")) {
            skip_rest(&cu, &v);
            if (check_id(c, &v, "id") != 0)
                return -1;
            f->id = v;
            f->have_id = 1;
            f->keep[i] = 0;
        } else if (IS(&k, "occurred")) {
            skip_rest(&cu, &v);
            if (v.t != T_UINT)
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'occurred' must be a positive integer "
                              "(milliseconds since the epoch)");
        } else if (IS(&k, "received")) {
            skip_rest(&cu, &v); /* core-owned: replaced */
            f->keep[i] = 0;
        } else if (IS(&k, "source")) {
            if (v.t != T_MAP) {
                skip_rest(&cu, &v);
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'source' must be a map");
            }
            f->source = v;
            f->have_source = 1;
            f->keep[i] = 0;
            if (check_source(c, &cu, v.n) != 0)
                return -1;
            f->source_end = cu.off;
        } else if (IS(&k, "ids")) {
            if (check_ids(c, &cu, &v) != 0)
                return -1;
            if (v.t != T_ARRAY)
                skip_rest(&cu, &v);
        } else if (IS(&k, "entity")) {
            if (v.t != T_MAP) {
                skip_rest(&cu, &v);
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'entity' must be a map");
            }
            if (check_entity(c, &cu, v.n) != 0)
                return -1;
        } else if (IS(&k, "props") || IS(&k, "context")) {
            const char *name = IS(&k, "props") ? "props" : "context";

            if (v.t != T_MAP)
                return refuse(c, OG__REFUSE_TYPE, "field '%s' must be a map",
                              name);
            cu.off = v.start; /* check_money reads the map itself */
            if (check_money(c, &cu, name, 0) != 0)
                return -1;
        } else if (IS(&k, "consent")) {
            if (v.t != T_MAP) {
                skip_rest(&cu, &v);
                return refuse(c, OG__REFUSE_TYPE,
                              "field 'consent' must be a map");
            }
            if (check_consent(c, &cu, v.n) != 0)
                return -1;
        } else {
            return refuse(c, OG__REFUSE_UNKNOWN,
                          "unknown field '%.*s' (custom data goes in props)",
                          (int)(k.n > 64 ? 64 : k.n), k.s);
        }
    }
    f->pair_start[npairs] = cu.off;
    if (!have_v)
        return refuse(c, OG__REFUSE_MISSING, "missing field 'v'");
    if (!have_type)
        return refuse(c, OG__REFUSE_MISSING, "missing field 'type'");
    return 0;
}

og_event_t *og__event_accept(const uint8_t *bytes, size_t len,
                             const char *instance, const char *plugin,
                             size_t max_bytes, og_err_t *rc,
                             og__refusal_t *reason, char *why, size_t whylen)
{
    return og__event_accept_flags(bytes, len, instance, plugin, max_bytes, 0,
                                  rc, reason, why, whylen);
}

og_event_t *og__event_accept_flags(const uint8_t *bytes, size_t len,
                                   const char *instance, const char *plugin,
                                   size_t max_bytes, unsigned flags,
                                   og_err_t *rc, og__refusal_t *reason,
                                   char *why, size_t whylen)
{
    struct check chk = {OG__REFUSE_NONE, why, whylen,
                        (flags & OG__ACCEPT_UNTRUSTED) != 0, 0};
    struct found f;
    size_t whole, i, nout, first, span_buf[33], ilen, plen, tlen, eidlen;
    uint8_t keep_buf[32];
    uint32_t npairs;
    og__refusal_t dummy;
    og_event_t *ev = NULL;
    struct wbuf w;
    char newid[37];
    const char *eid;
    int short_input = 0;
    uint64_t now;
    size_t vendor_off = 0;
    uint32_t vendor_len = 0;

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
    /* Well-formedness first (the walker checks every length), so that the
     * field checks below never read past the end. */
    whole = mp_skip_impl(bytes, len, &short_input);
    if (whole == 0) {
        if (short_input)
            snprintf(why, whylen, "invalid MessagePack: truncated at byte %zu",
                     len);
        else
            snprintf(why, whylen, "invalid MessagePack");
        return NULL;
    }
    if (whole != len) {
        snprintf(why, whylen, "%zu trailing bytes after the envelope",
                 len - whole);
        return NULL;
    }
    if (bytes[0] < 0x80 ||
        (bytes[0] > 0x8f && bytes[0] != 0xde && bytes[0] != 0xdf)) {
        *reason = OG__REFUSE_NOT_MAP;
        snprintf(why, whylen, "envelope must be a map");
        return NULL;
    }
    first = map_header_len(bytes[0]);
    npairs = bytes[0] <= 0x8f
                 ? (uint32_t)(bytes[0] & 0x0f)
                 : (uint32_t)be(bytes + 1, bytes[0] == 0xde ? 2 : 4);
    memset(&f, 0, sizeof(f));
    f.pair_start =
        npairs < 32 ? span_buf : og__xmalloc((npairs + 1) * sizeof(size_t));
    f.keep = npairs < 32 ? keep_buf : og__xmalloc(npairs);
    if (validate(&chk, bytes, &f, npairs, first) != 0) {
        *reason = chk.reason;
        goto out;
    }

    /* The stamped copy: every kept pair as raw bytes, then id, received
     * and source; one block for the event, its bytes and its names. */
    nout = 3;
    for (i = 0; i < npairs; i++)
        nout += f.keep[i];
    ilen = strlen(instance);
    plen = strlen(plugin);
    tlen = f.type.n;
    w.cap = len + ilen + plen + 128;
    ev = og__xmalloc(sizeof(*ev) + w.cap + tlen + 1 + ilen + 1);
    memset(ev, 0, sizeof(*ev));
    ev->type = (char *)(ev + 1);
    ev->instance = ev->type + tlen + 1;
    memcpy(ev->type, f.type.s, tlen);
    ev->type[tlen] = '\0';
    memcpy(ev->instance, instance, ilen + 1);
    w.p = (uint8_t *)(ev->instance + ilen + 1);
    w.n = 0;
    put_map(&w, nout);
    for (i = 0; i < npairs; i++)
        if (f.keep[i])
            put_raw(&w, bytes + f.pair_start[i],
                    f.pair_start[i + 1] - f.pair_start[i]);
    now = og__now_ms();
    if (f.have_id) {
        eid = f.id.s;
        eidlen = f.id.n;
    } else {
        og__uuid7_at(newid, now);
        eid = newid;
        eidlen = 36;
    }
    put_str(&w, "id", 2);
    put_str(&w, eid, eidlen);
    put_str(&w, "received", 8);
    put_u64(&w, now);
    put_str(&w, "source", 6);
    {
        /* The plugin's source pairs minus instance and plugin, in one pass;
         * the map header is patched with the final count afterwards. */
        struct cur cu = {bytes, f.have_source ? f.source.start : 0};
        struct item hdr, key, val;
        size_t hpos = w.n, ns = 2, o;
        uint32_t k, max = 2;

        if (f.have_source) {
            rd(&cu, &hdr);
            max += hdr.n;
        }
        put_map(&w, max); /* same header width as the final count, or wider */
        if (f.have_source) {
            for (k = 0; k < hdr.n; k++) {
                o = cu.off;
                rd_pair(&cu, &key, &val);
                if (!IS(&key, "instance") && !IS(&key, "plugin")) {
                    if (IS(&key, "vendor_id")) {
                        vendor_off =
                            w.n + (size_t)(val.s - (const char *)(bytes + o));
                        vendor_len = val.n;
                    }
                    put_raw(&w, bytes + o, cu.off - o);
                    ns++;
                }
            }
        }
        if (max < 16)
            w.p[hpos] = (uint8_t)(0x80 | ns);
        else if (max <= 0xffff)
            w.p[hpos + 1] = (uint8_t)(ns >> 8), w.p[hpos + 2] = (uint8_t)ns;
        else
            w.p[hpos + 1] = (uint8_t)(ns >> 24),
                       w.p[hpos + 2] = (uint8_t)(ns >> 16),
                       w.p[hpos + 3] = (uint8_t)(ns >> 8),
                       w.p[hpos + 4] = (uint8_t)ns;
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
    ev->accepted_ns = uv_hrtime();
    ev->received_ms = now;
    ev->content_hash = XXH3_64bits(bytes, len);
    ev->untrusted = chk.untrusted;
    ev->stripped = chk.stripped;
    if (vendor_off != 0) {
        ev->vendor_id = (const char *)w.p + vendor_off;
        ev->vendor_len = vendor_len;
    }
    *rc = OG_OK;
    *reason = OG__REFUSE_NONE;
out:
    if (f.pair_start != span_buf)
        free(f.pair_start);
    if (f.keep != keep_buf)
        free(f.keep);
    return ev;
}

og_event_t *og__event_restore(const uint8_t *bytes, size_t len, char *why,
                              size_t whylen)
{
    struct cur cu = {bytes, 0};
    struct item hdr, k, v, sk, sv;
    struct item type = {0}, id = {0}, inst = {0};
    uint64_t received = 0;
    og_event_t *ev;
    uint32_t i, j;

    if (len == 0 || mp_skip_impl(bytes, len, &(int){0}) != len) {
        snprintf(why, whylen, "stored event is not one MessagePack object");
        return NULL;
    }
    rd(&cu, &hdr);
    if (hdr.t != T_MAP) {
        snprintf(why, whylen, "stored event is not a map");
        return NULL;
    }
    for (i = 0; i < hdr.n; i++) {
        rd(&cu, &k);
        skip_rest(&cu, &k);
        rd(&cu, &v);
        if (IS(&k, "source") && v.t == T_MAP) {
            for (j = 0; j < v.n; j++) {
                rd_pair(&cu, &sk, &sv);
                if (IS(&sk, "instance") && sv.t == T_STR)
                    inst = sv;
            }
            continue;
        }
        skip_rest(&cu, &v);
        if (IS(&k, "type") && v.t == T_STR && valid_type(v.s, v.n))
            type = v;
        else if (IS(&k, "id") && v.t == T_STR && valid_id(v.s, v.n))
            id = v;
        else if (IS(&k, "received") && v.t == T_UINT)
            received = v.u;
    }
    if (type.s == NULL || id.s == NULL || inst.s == NULL) {
        snprintf(why, whylen, "stored event lacks %s",
                 type.s == NULL ? "its type"
                 : id.s == NULL ? "its id"
                                : "source.instance");
        return NULL;
    }
    ev = og__xmalloc(sizeof(*ev) + len + type.n + 1 + inst.n + 1);
    memset(ev, 0, sizeof(*ev));
    ev->data = (uint8_t *)(ev + 1);
    memcpy(ev->data, bytes, len);
    ev->len = len;
    ev->type = (char *)ev->data + len;
    memcpy(ev->type, type.s, type.n);
    ev->type[type.n] = '\0';
    ev->instance = ev->type + type.n + 1;
    memcpy(ev->instance, inst.s, inst.n);
    ev->instance[inst.n] = '\0';
    memcpy(ev->id, id.s, id.n);
    ev->id[id.n] = '\0';
    ev->refs = 1;
    ev->received_ms = received;
    ev->accepted_ns = uv_hrtime();
    return ev;
}

og_event_t *og__event_ref(og_event_t *ev)
{
    ev->refs++;
    return ev;
}

void og__event_content_by_vendor(og_event_t *ev)
{
    if (ev->vendor_id != NULL)
        ev->content_hash = XXH3_64bits(ev->vendor_id, ev->vendor_len);
}

void og__event_replace_data(og_event_t *ev, uint8_t *data, size_t len)
{
    if (ev->parsed) {
        msgpack_zone_destroy(&ev->zone);
        ev->parsed = 0;
    }
    free(ev->own);
    ev->own = data;
    ev->data = data;
    ev->len = len;
}

void og__event_unref(og_event_t *ev)
{
    if (ev == NULL || --ev->refs > 0)
        return;
    free(ev->own);
    if (ev->parsed)
        msgpack_zone_destroy(&ev->zone);
    free(ev); /* data, type and instance live in the same block */
}

og_err_t og__obj_lookup(const msgpack_object *root, const char *path,
                        const msgpack_object **out)
{
    const msgpack_object *cur = root;
    const char *seg = path;

    if (path == NULL || *path == '\0')
        return OG_ERR_INVALID;
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

og_err_t og__event_parse(og_event_t *ev)
{
    size_t off = 0;

    if (ev->parsed)
        return OG_OK;
    if (!msgpack_zone_init(&ev->zone, 2048))
        return OG_ERR_NOMEM;
    if (msgpack_unpack((const char *)ev->data, ev->len, &off, &ev->zone,
                       &ev->root) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy(&ev->zone);
        return OG_ERR_INTERNAL;
    }
    ev->parsed = 1;
    return OG_OK;
}

og_err_t og__event_lookup(const og_event_t *cev, const char *path,
                          const msgpack_object **out)
{
    og_event_t *ev = (og_event_t *)cev; /* lazy parse cache */
    og_err_t rc;

    if (path == NULL || *path == '\0')
        return OG_ERR_INVALID;
    if ((rc = og__event_parse(ev)) != OG_OK)
        return rc;
    return og__obj_lookup(&ev->root, path, out);
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

/* ---- what the customer store reads of a stored envelope --------------- */

/* Reads {"amount": int, "currency": "XXX"} at the cursor (a map header
 * just read into m); 1 when both were found. */
static int rd_money(struct cur *cu, const struct item *m, int64_t *amount,
                    char currency[4])
{
    struct item k, v;
    int have_a = 0, have_c = 0;
    uint32_t i;

    for (i = 0; i < m->n; i++) {
        rd_pair(cu, &k, &v);
        if (IS(&k, "amount") && v.t == T_UINT && v.u <= INT64_MAX) {
            *amount = (int64_t)v.u;
            have_a = 1;
        } else if (IS(&k, "currency") && v.t == T_STR && v.n == 3) {
            memcpy(currency, v.s, 3);
            currency[3] = '\0';
            have_c = 1;
        }
    }
    return have_a && have_c;
}

int og__event_facts(const uint8_t *b, size_t len, og__event_facts_t *f)
{
    struct cur cu = {b, 0};
    struct item hdr, k, v, pk, pv;
    uint32_t i, j;

    memset(f, 0, sizeof(*f));
    /* b was validated (og__event_accept) or checked (og__event_restore):
     * no second walk over every byte. */
    if (len == 0)
        return -1;
    rd(&cu, &hdr);
    if (hdr.t != T_MAP)
        return -1;
    for (i = 0; i < hdr.n; i++) {
        rd(&cu, &k);
        skip_rest(&cu, &k);
        rd(&cu, &v);
        if (IS(&k, "ids") && v.t == T_ARRAY) {
            for (j = 0; j < v.n; j++) {
                struct item m, ik, iv;
                og__raw_idkey_t *r = &f->ids[f->nids];
                uint32_t x;

                rd(&cu, &m);
                if (m.t != T_MAP || f->nids == OG__MAX_IDKEYS) {
                    skip_rest(&cu, &m);
                    continue;
                }
                memset(r, 0, sizeof(*r));
                for (x = 0; x < m.n; x++) {
                    rd_pair(&cu, &ik, &iv);
                    if (IS(&ik, "kind") && iv.t == T_STR) {
                        r->kind = iv.s;
                        r->kind_len = iv.n;
                    } else if (IS(&ik, "value") && iv.t == T_STR) {
                        r->value = iv.s;
                        r->value_len = iv.n;
                    } else if (IS(&ik, "verified") && iv.t == T_BOOL) {
                        r->verified = iv.b;
                    }
                }
                if (r->kind != NULL && r->value != NULL)
                    f->nids++;
            }
        } else if (IS(&k, "customer") && v.t == T_STR) {
            f->customer = v.s;
            f->customer_len = v.n;
        } else if (IS(&k, "conversation") && v.t == T_STR) {
            f->conversation = v.s;
            f->conversation_len = v.n;
        } else if (IS(&k, "correlation") && v.t == T_STR) {
            f->correlation = v.s;
            f->correlation_len = v.n;
        } else if (IS(&k, "consent") && v.t == T_MAP) {
            f->consent = b + v.start;
            skip_rest(&cu, &v);
            f->consent_len = cu.off - v.start;
        } else if (IS(&k, "type") && v.t == T_STR) {
            f->type = v.s;
            f->type_len = v.n;
        } else if (IS(&k, "occurred") && v.t == T_UINT) {
            f->occurred = v.u;
        } else if (IS(&k, "props") && v.t == T_MAP) {
            for (j = 0; j < v.n; j++) {
                rd(&cu, &pk);
                skip_rest(&cu, &pk);
                rd(&cu, &pv);
                if (IS(&pk, "traits") && pv.t == T_MAP) {
                    f->traits = b + pv.start;
                    skip_rest(&cu, &pv);
                    f->traits_len = cu.off - pv.start;
                } else if (IS(&pk, "total") && pv.t == T_MAP) {
                    f->has_total =
                        rd_money(&cu, &pv, &f->total_amount, f->currency);
                } else if (IS(&pk, "purpose") && pv.t == T_STR) {
                    f->purpose = pv.s;
                    f->purpose_len = pv.n;
                } else if (IS(&pk, "message_key") && pv.t == T_STR) {
                    f->message_key = pv.s;
                    f->message_key_len = pv.n;
                } else if (IS(&pk, "thread") && pv.t == T_STR) {
                    f->thread[0] = pv.s;
                    f->thread_len[0] = pv.n;
                    f->nthread = 1;
                } else if (IS(&pk, "thread") && pv.t == T_ARRAY) {
                    uint32_t x;

                    for (x = 0; x < pv.n; x++) {
                        struct item e;

                        rd(&cu, &e);
                        skip_rest(&cu, &e);
                        if (e.t == T_STR && e.n > 0 &&
                            f->nthread < OG__MAX_THREAD_KEYS) {
                            f->thread[f->nthread] = e.s;
                            f->thread_len[f->nthread++] = e.n;
                        }
                    }
                } else {
                    skip_rest(&cu, &pv);
                }
            }
        } else {
            skip_rest(&cu, &v);
        }
    }
    return 0;
}

uint8_t *og__envelope_set_str(const uint8_t *b, size_t len, const char *key,
                              const char *value, size_t *outlen)
{
    struct cur cu = {b, 0};
    struct item hdr, k, v;
    size_t klen = strlen(key), vlen = strlen(value), o;
    uint32_t i, n = 0;
    struct wbuf w;

    if (len == 0) /* well-formed, as for og__event_facts() */
        return NULL;
    rd(&cu, &hdr);
    if (hdr.t != T_MAP)
        return NULL;
    w.cap = len + klen + vlen + 16;
    w.p = og__xmalloc(w.cap);
    w.n = 0;
    /* The header is written for the widest count, then rewritten. */
    put_map(&w, 0x10000);
    for (i = 0; i < hdr.n; i++) {
        o = cu.off;
        rd(&cu, &k);
        skip_rest(&cu, &k);
        rd(&cu, &v);
        skip_rest(&cu, &v);
        if (is(&k, key, klen))
            continue;
        put_raw(&w, b + o, cu.off - o);
        n++;
    }
    put_str(&w, key, klen);
    put_str(&w, value, vlen);
    n++;
    {
        uint8_t head[5];
        struct wbuf hw = {head, 0, sizeof(head)};
        size_t body = w.n - 5;

        put_map(&hw, n);
        memmove(w.p + hw.n, w.p + 5, body);
        memcpy(w.p, head, hw.n);
        *outlen = hw.n + body;
    }
    return w.p;
}

uint8_t *og__stamp_hook(void *data, const uint8_t *body, size_t len,
                        const char *customer, const char *conversation,
                        size_t *outlen)
{
    uint8_t *b = og__envelope_set_str(body, len, "customer", customer, outlen);

    (void)data;
    if (b != NULL && conversation != NULL) {
        uint8_t *c = og__envelope_set_str(b, *outlen, "conversation",
                                          conversation, outlen);

        free(b);
        b = c;
    }
    return b;
}

void og__pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void og__pack_core_head(msgpack_packer *pk, size_t extra, const char *type,
                        const char *id, uint64_t at_ms)
{
    msgpack_pack_map(pk, 6 + extra);
    og__pack_cstr(pk, "v");
    msgpack_pack_uint8(pk, OG__ENVELOPE_VERSION);
    og__pack_cstr(pk, "type");
    og__pack_cstr(pk, type);
    og__pack_cstr(pk, "id");
    og__pack_cstr(pk, id);
    og__pack_cstr(pk, "occurred");
    msgpack_pack_uint64(pk, at_ms);
    og__pack_cstr(pk, "received");
    msgpack_pack_uint64(pk, at_ms);
    og__pack_cstr(pk, "source");
    msgpack_pack_map(pk, 3);
    og__pack_cstr(pk, "channel");
    og__pack_cstr(pk, "core");
    og__pack_cstr(pk, "instance");
    og__pack_cstr(pk, "core");
    og__pack_cstr(pk, "plugin");
    og__pack_cstr(pk, "core");
}

const char *og__obj_text(const msgpack_object *root, const char *path,
                         int numbers, char *buf, size_t len)
{
    const msgpack_object *o;

    if (og__obj_lookup(root, path, &o) != OG_OK)
        return NULL;
    if (o->type == MSGPACK_OBJECT_STR && o->via.str.size > 0 &&
        o->via.str.size < len) {
        memcpy(buf, o->via.str.ptr, o->via.str.size);
        buf[o->via.str.size] = '\0';
        return buf;
    }
    if (numbers && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(buf, len, "%llu", (unsigned long long)o->via.u64);
        return buf;
    }
    return NULL;
}
