/*
 * mem_stock.h: the stock ledger in memory, a second implementation of
 * the repository of domain/stock.h, so that the stock rules' tests run
 * on it beside SQLite. It has no unit of work: what a failed call wrote
 * stays.
 */
#ifndef OG_TESTS_MEM_STOCK_H
#define OG_TESTS_MEM_STOCK_H

#include "domain/stock.h"

og__stock_repo_t *mem_stock_new(void);
void mem_stock_free(og__stock_repo_t *r);
/* From the n-th call on (1: the next), every call fails with OG_ERR_IO
 * (0: none does). Returns how many calls were made so far. */
unsigned mem_stock_fail_from(og__stock_repo_t *r, unsigned n);

#endif /* OG_TESTS_MEM_STOCK_H */
