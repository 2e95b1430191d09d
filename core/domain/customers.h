/*
 * customers.h: which customer an event is (docs/customers.md, Identity
 * resolution), the rules above the storage seam. Each key of the event
 * points at a customer or at none; a verified key (or the event's own
 * customer id) chooses the oldest customer it names, else the strongest
 * key that has one; a verified key on another customer joins the two,
 * the older surviving; a device key (anon, cart) on a profile with no
 * verified identity is claimed by an event that has one; an unverified
 * key never joins two customers; a public client's unverified keys choose
 * nobody but its own anon key. New keys attach to the chosen customer.
 *
 * The domain owns the repository interface (og__identity_repo_t) that a
 * backend implements; og__customer_resolve() runs inside the caller's
 * unit of work.
 */
#ifndef OG_CORE_DOMAIN_CUSTOMERS_H
#define OG_CORE_DOMAIN_CUSTOMERS_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_errors.h>

#include "domain/identity.h"

/* What resolving the customer of one event needs (docs/customers.md). */
typedef struct og__person_s {
    const og__idkey_t *keys; /* normalized, at most 32 */
    size_t nkeys;
    const char *customer;  /* the event's own "customer", or NULL */
    const char *instance;  /* the source instance (first and last seen) */
    const uint8_t *traits; /* props.traits (a MessagePack map), or NULL */
    size_t traits_len;
    int is_order; /* an order.placed: counts, with its total when given */
    int has_total;
    int64_t total_amount;
    char currency[4];
    const uint8_t *consent; /* the envelope's "consent" map, or NULL */
    size_t consent_len;
    uint64_t occurred;   /* when it happened (consent time), 0: unknown */
    const char *purpose; /* a message's props.purpose, or NULL */
    /* Conversations (message.* events): the event's own conversation,
     * the native thread keys it names and its own native key. */
    int is_message; /* message.received, message.send, message.sent */
    int inbound;    /* message.received: reopens a resolved conversation */
    int resolves;   /* conversation.resolved */
    const char *conversation;
    const char *const *thread;
    size_t nthread;
    const char *message_key;
    const char *correlation; /* the event's "correlation", or NULL */
    /* From a public client (OG_EMIT_UNTRUSTED): only verified keys and the
     * browser's own anon key choose the customer, a named conversation
     * counts only when it is that customer's, no thread keys are used. */
    int untrusted;
} og__person_t;

/* A merge of two customers, as the customer.merged event tells it. */
typedef struct og__merge_s {
    int64_t id; /* the merge record, for a split */
    const char *survivor, *merged;
    const og__idkey_t *reason; /* the verified key that joined them */
    uint64_t at_ms;
    int split; /* 1: this is a split (customer.split) */
} og__merge_t;

typedef struct og__identity_repo_s og__identity_repo_t;

/* Customers and their keys as a backend stores them; OG_OK or the
 * backend's error. Customer ids are at most 39 bytes. */
struct og__identity_repo_ops {
    /* The customer key is attached to, and whether it was verified;
     * *found 0 when no customer has it. */
    og_err_t (*key_find)(og__identity_repo_t *r, const og__idkey_t *key,
                         char customer[40], int *verified, int *found);
    /* What customer id is now (itself, or the survivor it was merged
     * into) and when id was created; *found 0 when there is no id. */
    og_err_t (*canonical)(og__identity_repo_t *r, const char *id,
                          char canon[40], int64_t *created_ms, int *found);
    /* *yes 1 when customer has a verified key. */
    og_err_t (*has_verified)(og__identity_repo_t *r, const char *customer,
                             int *yes);
    og_err_t (*customer_add)(og__identity_repo_t *r, const char *id,
                             int64_t created_ms, const char *first_channel);
    og_err_t (*key_add)(og__identity_repo_t *r, const og__idkey_t *key,
                        const char *customer, int verified, uint64_t at_ms);
    og_err_t (*key_verify)(og__identity_repo_t *r, const og__idkey_t *key);
    /* Merges customer merged into survivor (both canonical): a merge
     * record (its id into *merge_id) with merged's keys, the keys and
     * conversations move to survivor, merged and its aliases become
     * aliases of survivor. */
    og_err_t (*merge)(og__identity_repo_t *r, const char *survivor,
                      const char *merged, const og__idkey_t *reason,
                      uint64_t at_ms, int64_t *merge_id);
};

struct og__identity_repo_s {
    const struct og__identity_repo_ops *ops;
};

/* Told of each merge resolution makes, after the repository recorded it
 * (to write the customer.merged event); a nonzero result ends the
 * resolution with it. */
typedef og_err_t (*og__merged_fn)(void *data, const og__merge_t *m);

/*
 * og__customer_resolve: finds or creates the customer of an event with
 * person p received at at_ms, merging customers where its keys say so
 * (merged told of each), and attaches its new keys. customer gets the
 * canonical id; "" when p has no key and no customer is chosen (nothing
 * is written then).
 */
og_err_t og__customer_resolve(og__identity_repo_t *r, const og__person_t *p,
                              uint64_t at_ms, og__merged_fn merged, void *data,
                              char customer[40]);

#endif /* OG_CORE_DOMAIN_CUSTOMERS_H */
