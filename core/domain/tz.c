/*
 * tz.c: loads the time zone module once, on first use (tz.h).
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "domain/tz.h"
#include "base/util.h"

typedef int (*valid_fn)(const char *, char *, size_t);
typedef int (*minute_fn)(const char *, int64_t, int *, char *, size_t);
typedef int (*next_fn)(const char *, int64_t, int, int64_t *, char *, size_t);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *fns[3];
static char load_error[512];

static void load(void)
{
    static const char *const names[] = {"og_tz_valid", "og_tz_minute",
                                        "og_tz_next"};

    og__module_load("OMNIGATE_TZ_MODULE", TZMODULE, "time zones", names, fns, 3,
                    load_error, sizeof(load_error));
}

static int loaded(char *why, size_t whylen)
{
    pthread_once(&once, load);
    if (fns[0] == NULL)
        snprintf(why, whylen, "%s", load_error);
    return fns[0] != NULL;
}

og_err_t og__tz_check(const char *zone, char *why, size_t whylen)
{
    if (!loaded(why, whylen))
        return OG_ERR_UNSUPPORTED;
    return ((valid_fn)fns[0])(zone, why, whylen) ? OG_OK : OG_ERR_INVALID;
}

og_err_t og__tz_minute(const char *zone, uint64_t at_ms, int *minute, char *why,
                       size_t whylen)
{
    if (!loaded(why, whylen))
        return OG_ERR_UNSUPPORTED;
    return ((minute_fn)fns[1])(zone, (int64_t)at_ms, minute, why, whylen) == 0
               ? OG_OK
               : OG_ERR_INVALID;
}

og_err_t og__tz_next(const char *zone, uint64_t from_ms, int minute,
                     uint64_t *out, char *why, size_t whylen)
{
    int64_t t = 0;

    if (!loaded(why, whylen))
        return OG_ERR_UNSUPPORTED;
    if (((next_fn)fns[2])(zone, (int64_t)from_ms, minute, &t, why, whylen) != 0)
        return OG_ERR_INVALID;
    *out = (uint64_t)t;
    return OG_OK;
}

int og__parse_hhmm(const char *s)
{
    int h, m;

    if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' ||
        s[1] < '0' || s[1] > '9' || s[3] < '0' || s[3] > '5' || s[4] < '0' ||
        s[4] > '9')
        return -1;
    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    return h > 23 ? -1 : h * 60 + m;
}
