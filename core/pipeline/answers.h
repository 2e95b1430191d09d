/*
 * answers.h: the admin API's answers that are rendered from the domain's
 * C structs (the JSON is written here, not in a backend). Run where the
 * store is used: on the store's thread.
 */
#ifndef OG_CORE_ANSWERS_H
#define OG_CORE_ANSWERS_H

#include "base/util.h"
#include "domain/stock.h"

/*
 * og__answer_stock: GET /v1/stock/{sku} (docs/stock.md): per location on
 * hand, reserved, available, the last count's version and when it last
 * changed; per stock channel of rules what it may sell and its safety
 * buffer. OG_ERR_NOT_FOUND when the sku was never seen.
 */
og_err_t og__answer_stock(og__stock_repo_t *r, const char *sku,
                          const og__stock_rules_t *rules, og__sbuf_t *out);

#endif /* OG_CORE_ANSWERS_H */
