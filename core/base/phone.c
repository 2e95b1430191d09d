/*
 * phone.c: loads the libphonenumber module once, on first use.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/phone.h"
#include "base/util.h"

typedef int (*e164_fn)(const char *, const char *, char *, size_t, char *,
                       size_t);
typedef int (*known_fn)(const char *);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static e164_fn e164;
static known_fn known;
static char load_error[512];

static void load(void)
{
    static const char *const names[] = {"og_phone_e164",
                                        "og_phone_region_known"};
    void *fns[2];

    if (og__module_load("OMNIGATE_PHONE_MODULE", PHONEMODULE, "phone numbers",
                        names, fns, 2, load_error, sizeof(load_error)) == 0) {
        e164 = (e164_fn)fns[0];
        known = (known_fn)fns[1];
    }
}

og_err_t og__phone_e164(const char *raw, const char *region, char *out,
                        size_t outlen, char *why, size_t whylen)
{
    pthread_once(&once, load);
    if (e164 == NULL) {
        snprintf(why, whylen, "%s", load_error);
        return OG_ERR_UNSUPPORTED;
    }
    return e164(raw, region, out, outlen, why, whylen) == 0 ? OG_OK
                                                            : OG_ERR_INVALID;
}

int og__phone_region_known(const char *region, char *why, size_t whylen)
{
    pthread_once(&once, load);
    if (known == NULL) {
        snprintf(why, whylen, "%s", load_error);
        return -1;
    }
    return known(region);
}
