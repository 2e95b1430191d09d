/*
 * identity.h: identity keys as the customer store keeps them, normalized
 * from what events carry (docs/customers.md).
 *
 *   email    trimmed, domain lower-cased, exactly one '@'
 *   phone    E.164 through libphonenumber, the source instance's
 *            phone_region assumed when the number has no country code
 *   pos, chat, social
 *            scoped to the source instance (the same number at two POS
 *            instances is two keys)
 *   other kinds (user, anon, cart, loyalty, custom ones)
 *            trimmed, global
 */
#ifndef OG_CORE_IDENTITY_H
#define OG_CORE_IDENTITY_H

#include <stddef.h>

#include <omnigate/og_errors.h>

#include "event/event.h"

typedef struct og__idkey_s {
    char kind[33];
    char scope[65]; /* "" for global kinds, else the source instance */
    char value[257];
    int verified; /* the plugin authenticated it */
} og__idkey_t;

/*
 * og__idkey_normalize: raw as seen on an event from instance (region: the
 * instance's phone_region, may be NULL). OG_ERR_INVALID with the reason in
 * why when the key cannot be used (an empty value, an email without one
 * '@', a number that is not a possible phone number); the reason never
 * holds the value itself.
 */
og_err_t og__idkey_normalize(const og__raw_idkey_t *raw, const char *instance,
                             const char *region, og__idkey_t *out, char *why,
                             size_t whylen);

/* Keys that name a device or a session rather than a person (anon, cart):
 * a profile known only by them may be claimed by an authenticated event. */
int og__idkind_is_device(const char *kind);

/* Order in which keys choose the customer of an event that has no
 * verified key: lower first (user, email, phone, loyalty, pos, social,
 * chat, custom kinds, anon, cart). */
int og__idkind_rank(const char *kind);

/* A value with personal data masked for logs: "j***@example.com",
 * "+3361******78", "a***". */
void og__mask(const char *value, char *out, size_t outlen);

#endif /* OG_CORE_IDENTITY_H */
