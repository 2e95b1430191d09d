/*
 * identity.c: normalizing identity keys, masking them for logs.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "domain/identity.h"
#include "base/phone.h"

static int is_kind(const char *k, const char *lit)
{
    return strcmp(k, lit) == 0;
}

static int scoped(const char *kind)
{
    return is_kind(kind, "pos") || is_kind(kind, "chat") ||
           is_kind(kind, "social");
}

int og__idkind_is_device(const char *kind)
{
    return is_kind(kind, "anon") || is_kind(kind, "cart");
}

int og__idkind_rank(const char *kind)
{
    static const char *const order[] = {"user", "email",  "phone", "loyalty",
                                        "pos",  "social", "chat"};
    size_t i;

    for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        if (is_kind(kind, order[i]))
            return (int)i;
    return og__idkind_is_device(kind) ? 100 + is_kind(kind, "cart") : 50;
}

/* Copies p[0..n) without leading and trailing white space. */
static size_t trimmed(const char *p, size_t n, char *out, size_t outlen)
{
    while (n > 0 && isspace((unsigned char)p[0]))
        p++, n--;
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    if (n >= outlen)
        return (size_t)-1;
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

og_err_t og__idkey_normalize(const og__raw_idkey_t *raw, const char *instance,
                             const char *region, og__idkey_t *out, char *why,
                             size_t whylen)
{
    size_t n;

    memset(out, 0, sizeof(*out));
    if (raw->kind_len == 0 || raw->kind_len >= sizeof(out->kind)) {
        snprintf(why, whylen, "identity kind of %u bytes", raw->kind_len);
        return OG_ERR_INVALID;
    }
    memcpy(out->kind, raw->kind, raw->kind_len);
    out->verified = raw->verified;
    n = trimmed(raw->value, raw->value_len, out->value, sizeof(out->value));
    if (n == 0 || n == (size_t)-1) {
        snprintf(why, whylen, "%s key with an empty value", out->kind);
        return OG_ERR_INVALID;
    }
    if (scoped(out->kind))
        snprintf(out->scope, sizeof(out->scope), "%s", instance);
    if (is_kind(out->kind, "email")) {
        char *at = strchr(out->value, '@');

        if (at == NULL || at == out->value || at[1] == '\0' ||
            strchr(at + 1, '@') != NULL) {
            snprintf(why, whylen,
                     "email key is not one local part, '@' and a domain");
            return OG_ERR_INVALID;
        }
        for (char *p = at + 1; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    } else if (is_kind(out->kind, "phone")) {
        char e164[32], pwhy[160];
        og_err_t rc = og__phone_e164(out->value, region, e164, sizeof(e164),
                                     pwhy, sizeof(pwhy));

        if (rc != OG_OK) {
            snprintf(why, whylen, "phone key: %s", pwhy);
            return rc == OG_ERR_UNSUPPORTED ? OG_ERR_UNSUPPORTED
                                            : OG_ERR_INVALID;
        }
        snprintf(out->value, sizeof(out->value), "%s", e164);
    }
    return OG_OK;
}

void og__mask(const char *value, char *out, size_t outlen)
{
    const char *at = strchr(value, '@');
    size_t n = strlen(value);

    if (at != NULL)
        snprintf(out, outlen, "%c***%s", value[0], at);
    else if (value[0] == '+' && n > 6)
        snprintf(out, outlen, "%.5s***%s", value, value + n - 2);
    else
        snprintf(out, outlen, "%c***", n > 0 ? value[0] : '?');
}
