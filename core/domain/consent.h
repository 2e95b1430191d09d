/*
 * consent.h: when a message may be sent (docs/customers.md, Consent),
 * the rules above the storage seam. A customer states consent per
 * purpose (marketing, transactional) and channel (an instance, a kind, or
 * "*"); the newest statement that covers a channel decides, the most
 * specific at the same time; marketing without a statement follows the
 * configured default; a transactional message goes despite a marketing
 * opt-out only where [consent] transactional_bypass says.
 *
 * The domain owns the repository interface (og__consent_repo_t) that a
 * backend implements; the functions below run inside the caller's unit of
 * work.
 */
#ifndef OG_CORE_DOMAIN_CONSENT_H
#define OG_CORE_DOMAIN_CONSENT_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_errors.h>

/* When a message may be sent (docs/customers.md, Consent). */
typedef struct og__consent_rules_s {
    int marketing_default; /* 1: allowed without a statement */
    /* Channels (instances, kinds, or "*") where a transactional message
     * is sent despite a marketing opt-out. */
    const char *const *bypass;
    size_t nbypass;
} og__consent_rules_t;

typedef struct og__consent_repo_s og__consent_repo_t;

/* Consent statements as a backend stores them; OG_OK or the backend's
 * error. */
struct og__consent_repo_ops {
    /* Keeps customer's statement for (purpose, channel), given by source
     * at at_ms, unless the one kept is newer. */
    og_err_t (*set)(og__consent_repo_t *r, const char *customer,
                    const char *purpose, const char *channel, int granted,
                    const char *source, uint64_t at_ms);
    /* Of the statements of customer (and of the customers merged into
     * it) for purpose given for channel, for kind or for "*": the newest,
     * at the same time the one for channel, then kind. *granted 1 or 0,
     * -1 when there is none; on gets what it was given for. */
    og_err_t (*statement)(og__consent_repo_t *r, const char *customer,
                          const char *purpose, const char *channel,
                          const char *kind, int *granted, char *on,
                          size_t onlen);
};

struct og__consent_repo_s {
    const struct og__consent_repo_ops *ops;
};

/*
 * og__consent_record: keeps the statements of an event's "consent" map
 * ({PURPOSE: {CHANNEL: bool}}, MessagePack, checked at acceptance) as
 * customer's, from source, made at at_ms. Entries of another shape are
 * skipped.
 */
og_err_t og__consent_record(og__consent_repo_t *r, const char *customer,
                            const uint8_t *map, size_t len, const char *source,
                            uint64_t at_ms);

/*
 * og__consent_decide: whether a message for purpose (marketing,
 * transactional; any other is not checked) may go to customer ("" when
 * unknown) on channel (an instance, "kind.name" or "kind"). *allowed 1 or
 * 0; when 0, why tells the reason ("suppressed: ...").
 */
og_err_t og__consent_decide(og__consent_repo_t *r, const char *customer,
                            const char *purpose, const char *channel,
                            const og__consent_rules_t *rules, int *allowed,
                            char *why, size_t whylen);

#endif /* OG_CORE_DOMAIN_CONSENT_H */
