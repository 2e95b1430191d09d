/*
 * traits.h: a customer's traits (docs/customers.md, Traits), the rules
 * above the storage seam. props.traits sets them (every key a trait, nil
 * deletes it); over a customer and the customers merged into it, each
 * trait's value is chosen by its merge rule ([customers] trait.NAME).
 *
 * The domain owns the repository interface (og__trait_repo_t) that a
 * backend implements; the functions below run inside the caller's unit of
 * work. Values are MessagePack, stored as given.
 */
#ifndef OG_CORE_DOMAIN_TRAITS_H
#define OG_CORE_DOMAIN_TRAITS_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_errors.h>

#include "config/conf.h" /* og__trait_rule_t */

#define OG__TRAIT_NAME_MAX 128 /* bytes */

typedef struct og__trait_rules_s {
    og__trait_rule_t dflt;
    const char *const *names; /* traits with their own rule */
    const og__trait_rule_t *rules;
    size_t n;
} og__trait_rules_t;

/* One stored trait value, valid during the callback: own is 1 when it is
 * the customer's own, 0 when it is of a customer merged into it. */
typedef void (*og__trait_row_cb)(void *data, const char *name,
                                 const void *value, size_t n, int own);

typedef struct og__trait_repo_s og__trait_repo_t;

/* Traits as a backend stores them; OG_OK or the backend's error. */
struct og__trait_repo_ops {
    /* Sets customer's trait name to value, set at at_ms. */
    og_err_t (*set)(og__trait_repo_t *r, const char *customer, const char *name,
                    const void *value, size_t n, uint64_t at_ms);
    og_err_t (*del)(og__trait_repo_t *r, const char *customer,
                    const char *name);
    /* Every value of customer and of the customers merged into it, by
     * name (byte order), then oldest set first. */
    og_err_t (*rows)(og__trait_repo_t *r, const char *customer,
                     og__trait_row_cb cb, void *data);
};

struct og__trait_repo_s {
    const struct og__trait_repo_ops *ops;
};

/* The merge rule of trait name (NEWEST when rules is NULL). */
og__trait_rule_t og__trait_rule_of(const og__trait_rules_t *rules,
                                   const char *name);

/*
 * og__traits_apply: props.traits (a MessagePack map, checked at
 * acceptance) applied to customer at at_ms: every key of 1-128 bytes a
 * trait, nil deletes it. Other entries are skipped.
 */
og_err_t og__traits_apply(og__trait_repo_t *r, const char *customer,
                          const uint8_t *map, size_t len, uint64_t at_ms);

/* Called once per trait name with its chosen MessagePack value. */
typedef void (*og__trait_fn)(void *ctx, const char *name, const void *value,
                             size_t n);

/*
 * og__traits_each: the traits of customer over its family, one value per
 * name by its rule: NEWEST the value set last, OLDEST the first,
 * NON_EMPTY the customer's own unless empty (nil or ""), else the newest
 * non-empty one, else the newest.
 */
og_err_t og__traits_each(og__trait_repo_t *r, const char *customer,
                         const og__trait_rules_t *rules, og__trait_fn fn,
                         void *ctx);

#endif /* OG_CORE_DOMAIN_TRAITS_H */
