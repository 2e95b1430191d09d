/*
 * customers_sqlite.h: the customer part of the SQLite store (identity
 * resolution, merges and splits, profiles). Internal to the SQLite
 * backend: it runs inside the transactions store_sqlite.c opens.
 */
#ifndef OG_CORE_CUSTOMERS_SQLITE_H
#define OG_CORE_CUSTOMERS_SQLITE_H

#include <msgpack.h>
#include <sqlite3.h>

#include "domain/consent.h"
#include "domain/customers.h"
#include "domain/identity.h"
#include "domain/traits.h"
#include "store/store.h"

typedef struct og__custdb_s og__custdb_t;

/* Writes an event made by the store (customer.merged, customer.split)
 * with its outbox rows; an SQLite result code. */
typedef int (*og__custdb_insert_fn)(void *ctx, og__store_item_t *ev);

/* Prepares the statements; NULL with sqlite3_errmsg(db) set on error.
 * The consent statements and traits of resolved events are kept in
 * consent and traits. */
og__custdb_t *og__custdb_prepare(sqlite3 *db, og__consent_repo_t *consent,
                                 og__trait_repo_t *traits);
void og__custdb_free(og__custdb_t *c);

/*
 * og__custdb_resolve: finds or creates the canonical customer of it (a new
 * event with it->person set), merging customers where a verified key
 * joins them, updates the profile, and sets it->customer and
 * it->stamped. Runs in the caller's transaction. SQLITE_OK or an error.
 */
int og__custdb_resolve(og__custdb_t *c, og__store_item_t *it,
                       const og__store_hooks_t *h, og__custdb_insert_fn insert,
                       void *ctx);

og_err_t og__custdb_get(og__custdb_t *c, const char *id, const og__idkey_t *key,
                        const og__trait_rules_t *rules, og__sbuf_t *out);

/* The split of og__store_ops.customer_split, in the caller's
 * transaction. */
og_err_t og__custdb_split(og__custdb_t *c, const char *id, uint64_t now_ms,
                          const og__store_hooks_t *h,
                          og__custdb_insert_fn insert, void *ctx,
                          og__sbuf_t *out, char *err, size_t errlen);

/* The consent repository given to og__custdb_prepare(). */
og__consent_repo_t *og__custdb_consent_repo(og__custdb_t *c);

/* og__store_ops.customer_erase, in the caller's transaction. */
og_err_t og__custdb_erase(og__custdb_t *c, const char *id, uint64_t now_ms,
                          og__sbuf_t *out, char ***erased, char *err,
                          size_t errlen);

/* The profile of customer id as journeys see it (docs/journeys.md,
 * Data), one MessagePack map into pk; its canonical id into canon. 0, -1
 * when there is no such customer, -2 on a store error. */
int og__custdb_pack(og__custdb_t *c, const char *id,
                    const og__trait_rules_t *rules, msgpack_packer *pk,
                    char canon[40]);

/* Customers and their keys (domain/customers.h), living as long as c. */
og__identity_repo_t *og__custdb_identity_repo(og__custdb_t *c);

/* The trait repository given to og__custdb_prepare(). */
og__trait_repo_t *og__custdb_trait_repo(og__custdb_t *c);

/* A message.bounced (it, new) that says the bounce is permanent counts
 * against its props.recipient on its source channel; at
 * props.bounce_limit (default 3) the address is undeliverable: journeys
 * no longer choose it and the profile shows it. An SQLite result code. */
int og__custdb_bounced(og__custdb_t *c, const og__store_item_t *it);

/* og__store_ops.conversation. */
og_err_t og__custdb_conversation(og__custdb_t *c, const char *id, int resolve,
                                 uint64_t now_ms, og__conversation_cb cb,
                                 void *data);

#endif /* OG_CORE_CUSTOMERS_SQLITE_H */
