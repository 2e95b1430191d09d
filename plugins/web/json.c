/*
 * json.c: JSON <-> MessagePack for the web channel, and times.
 */
#define _GNU_SOURCE /* timegm */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web.h"

void web_pack_json(msgpack_packer *pk, const json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, key, v)
        {
            size_t n = strlen(key);

            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, key, n);
            web_pack_json(pk, v);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        for (i = 0; i < json_array_size(j); i++)
            web_pack_json(pk, json_array_get(j, i));
        break;
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(j));
        msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    case JSON_NULL: msgpack_pack_nil(pk); break;
    }
}

static json_t *to_json(const msgpack_object *o)
{
    json_t *j;
    uint32_t i;

    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: /* msgpack-c leaves an empty string's ptr NULL */
        return o->via.str.size
                   ? json_stringn_nocheck(o->via.str.ptr, o->via.str.size)
                   : json_string("");
    case MSGPACK_OBJECT_ARRAY:
        j = json_array();
        for (i = 0; i < o->via.array.size; i++)
            json_array_append_new(j, to_json(&o->via.array.ptr[i]));
        return j;
    case MSGPACK_OBJECT_MAP:
        j = json_object();
        for (i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char *name;

            if (k->type != MSGPACK_OBJECT_STR)
                continue;
            name = k->via.str.size ? strndup(k->via.str.ptr, k->via.str.size)
                                   : strdup("");
            if (name != NULL)
                json_object_set_new_nocheck(j, name,
                                            to_json(&o->via.map.ptr[i].val));
            free(name);
        }
        return j;
    default: return json_null();
    }
}

json_t *web_mp_to_json(const uint8_t *bytes, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    json_t *j = NULL;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)bytes, len, &off) ==
        MSGPACK_UNPACK_SUCCESS)
        j = to_json(&u.data);
    msgpack_unpacked_destroy(&u);
    return j;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

uint64_t web_parse_time(const char *s)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    const char *p = s;
    long long t;

    memset(&tm, 0, sizeof(tm));
    if (s == NULL || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) ||
        *p++ != '-' || digits(&p, 2, &d) || (*p != 'T' && *p != ' '))
        return 0;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return 0;
    if (*p == '.') {
        int n = 0;

        p++;
        while (isdigit((unsigned char)*p)) {
            if (n < 3)
                ms = ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0)
            return 0;
        for (; n < 3; n++)
            ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (digits(&p, 2, &oh) || (*p == ':' && p++ == NULL) ||
            digits(&p, 2, &om))
            return 0;
    } else {
        return 0;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || sec > 60)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = (long long)timegm(&tm) - sign * (oh * 3600LL + om * 60LL);
    if (t <= 0)
        return 0;
    return (uint64_t)t * 1000u + (uint64_t)ms;
}

/* The next item of a list separated by commas or blanks: its start and
 * length in *n, *p moved past it; NULL at the end. */
const char *web_list_item(const char **p, size_t *n)
{
    const char *item;

    if (*p == NULL)
        return NULL;
    *p += strspn(*p, ", \t");
    if (**p == '\0')
        return NULL;
    item = *p;
    *n = strcspn(item, ", \t");
    *p += *n;
    return item;
}
