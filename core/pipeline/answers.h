/*
 * answers.h: the admin API's answers that are rendered from the domain's
 * C structs (the JSON is written here, not in a backend). Run where the
 * store is used: on the store's thread.
 */
#ifndef OG_CORE_ANSWERS_H
#define OG_CORE_ANSWERS_H

#include "base/util.h"
#include "domain/stock.h"
#include "store/store.h"

/*
 * og__answer_stock: GET /v1/stock/{sku} (docs/stock.md): per location on
 * hand, reserved, available, the last count's version and when it last
 * changed; per stock channel of rules what it may sell and its safety
 * buffer. OG_ERR_NOT_FOUND when the sku was never seen.
 */
og_err_t og__answer_stock(og__stock_repo_t *r, const char *sku,
                          const og__stock_rules_t *rules, og__sbuf_t *out);

/*
 * og__answer_timeline: GET /v1/customers/{id}/timeline (docs/journeys.md):
 * the customer it is now, its last limit entries and its journey runs.
 * OG_ERR_NOT_FOUND when there is no such customer.
 */
og_err_t og__answer_timeline(og__store_t *s, const char *id, size_t limit,
                             og__sbuf_t *out);

/*
 * og__answer_conversation: GET /v1/conversations/{id}, and with resolve
 * POST .../resolve (docs/customers.md). OG_ERR_NOT_FOUND when there is
 * none.
 */
og_err_t og__answer_conversation(og__store_t *s, const char *id, int resolve,
                                 uint64_t now_ms, og__sbuf_t *out);

#endif /* OG_CORE_ANSWERS_H */
