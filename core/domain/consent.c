/*
 * consent.c: the consent rules (consent.h, docs/customers.md).
 */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "domain/consent.h"

#define NAME_MAX_LEN 72 /* purposes and channels: 1-64 bytes (acceptance) */

og_err_t og__consent_record(og__consent_repo_t *r, const char *customer,
                            const uint8_t *map, size_t len, const char *source,
                            uint64_t at_ms)
{
    msgpack_unpacked u;
    size_t off = 0;
    uint32_t i, j;
    og_err_t rc = OG_OK;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)map, len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&u);
        return OG_OK;
    }
    for (i = 0; i < u.data.via.map.size && rc == OG_OK; i++) {
        const msgpack_object_kv *pk = &u.data.via.map.ptr[i];
        char purpose[NAME_MAX_LEN];

        if (pk->key.type != MSGPACK_OBJECT_STR ||
            pk->key.via.str.size >= sizeof(purpose) ||
            pk->val.type != MSGPACK_OBJECT_MAP)
            continue;
        snprintf(purpose, sizeof(purpose), "%.*s", (int)pk->key.via.str.size,
                 pk->key.via.str.ptr);
        for (j = 0; j < pk->val.via.map.size && rc == OG_OK; j++) {
            const msgpack_object_kv *ck = &pk->val.via.map.ptr[j];
            char channel[NAME_MAX_LEN];

            if (ck->key.type != MSGPACK_OBJECT_STR ||
                ck->key.via.str.size >= sizeof(channel) ||
                ck->val.type != MSGPACK_OBJECT_BOOLEAN)
                continue;
            snprintf(channel, sizeof(channel), "%.*s",
                     (int)ck->key.via.str.size, ck->key.via.str.ptr);
            rc = r->ops->set(r, customer, purpose, channel,
                             ck->val.via.boolean ? 1 : 0, source, at_ms);
        }
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* The newest, most specific statement for purpose on channel: *v 1
 * granted, 0 refused, -1 none; on gets the channel it was given for. */
static og_err_t statement(og__consent_repo_t *r, const char *cust,
                          const char *purpose, const char *channel, int *v,
                          char on[NAME_MAX_LEN])
{
    char kind[NAME_MAX_LEN];
    const char *dot = strchr(channel, '.');

    snprintf(kind, sizeof(kind), "%.*s",
             dot ? (int)(dot - channel) : (int)strlen(channel), channel);
    return r->ops->statement(r, cust, purpose, channel, kind, v, on,
                             NAME_MAX_LEN);
}

static int bypasses(const og__consent_rules_t *rules, const char *channel)
{
    const char *dot = strchr(channel, '.');
    size_t kl = dot ? (size_t)(dot - channel) : strlen(channel), i;

    for (i = 0; i < rules->nbypass; i++) {
        const char *b = rules->bypass[i];

        if (strcmp(b, "*") == 0 || strcmp(b, channel) == 0 ||
            (strlen(b) == kl && strncmp(b, channel, kl) == 0))
            return 1;
    }
    return 0;
}

og_err_t og__consent_decide(og__consent_repo_t *r, const char *cust,
                            const char *purpose, const char *channel,
                            const og__consent_rules_t *rules, int *allowed,
                            char *why, size_t whylen)
{
    char on[NAME_MAX_LEN] = "";
    int m = -1, t = -1;
    og_err_t rc;

    *allowed = 1;
    if (strcmp(purpose, "marketing") == 0) {
        if (cust[0] != '\0' &&
            (rc = statement(r, cust, "marketing", channel, &m, on)) != OG_OK)
            return rc;
        if (m == 0 || (m < 0 && !rules->marketing_default)) {
            *allowed = 0;
            if (m == 0)
                snprintf(why, whylen,
                         "suppressed: the customer refused marketing on "
                         "'%s'",
                         on);
            else
                snprintf(why, whylen,
                         "suppressed: no marketing consent for '%s'", channel);
        }
        return OG_OK;
    }
    if (strcmp(purpose, "transactional") != 0 || cust[0] == '\0')
        return OG_OK;
    if ((rc = statement(r, cust, "transactional", channel, &t, on)) != OG_OK)
        return rc;
    if (t == 0) {
        *allowed = 0;
        snprintf(why, whylen,
                 "suppressed: the customer refused transactional messages "
                 "on '%s'",
                 on);
        return OG_OK;
    }
    if ((rc = statement(r, cust, "marketing", channel, &m, on)) != OG_OK)
        return rc;
    if (m == 0 && !bypasses(rules, channel)) {
        *allowed = 0;
        snprintf(why, whylen,
                 "suppressed: the customer refused marketing on '%s' and "
                 "transactional messages do not bypass it there "
                 "([consent] transactional_bypass)",
                 on);
    }
    return OG_OK;
}
