/*
 * mem_repos.h: the repositories the domain declares, kept in memory: a
 * second implementation of the storage seam, so that the domain's rule
 * tests run on it beside SQLite. No unit of work: what a failed call
 * wrote stays. Consent has no merges (a customer's family is the customer
 * alone); traits do.
 */
#ifndef OG_TESTS_MEM_REPOS_H
#define OG_TESTS_MEM_REPOS_H

#include "domain/consent.h"
#include "domain/customers.h"
#include "domain/stock.h"
#include "domain/traits.h"
#include "testutil.h"

/* The stock ledger (domain/stock.h). */
og__stock_repo_t *mem_stock_new(void);
void mem_stock_free(og__stock_repo_t *r);
/* From the n-th call on (1: the next), every call fails with OG_ERR_IO
 * (0: none does). Returns how many calls were made so far. */
unsigned mem_stock_fail_from(og__stock_repo_t *r, unsigned n);

/* Consent statements (domain/consent.h). */
og__consent_repo_t *mem_consent_new(void);
void mem_consent_free(og__consent_repo_t *r);
unsigned mem_consent_fail_from(og__consent_repo_t *r, unsigned n);

/* Traits (domain/traits.h); merge makes merged one of survivor's family,
 * as a merge of customers does. */
og__trait_repo_t *mem_traits_new(void);
void mem_traits_free(og__trait_repo_t *r);
unsigned mem_traits_fail_from(og__trait_repo_t *r, unsigned n);
void mem_traits_merge(og__trait_repo_t *r, const char *merged,
                      const char *survivor);

/* Customers and their keys (domain/customers.h); no conversations to
 * move on a merge. */
og__identity_repo_t *mem_identity_new(void);
void mem_identity_free(og__identity_repo_t *r);
unsigned mem_identity_fail_from(og__identity_repo_t *r, unsigned n);

/* ---- the domain's rule tests on both implementations ------------------ */

struct og__store_s;

/* The repositories a rule test runs on: the SQLite store's (store set)
 * or the in-memory ones (store NULL). */
typedef struct tu_repos_s {
    struct og__store_s *store;
    og__stock_repo_t *stock;
    og__consent_repo_t *consent;
    og__trait_repo_t *traits;
    og__identity_repo_t *identity;
} tu_repos_t;

/* The implementation the running suite uses (tu_add_both). */
extern int tu_on_sqlite;

/* Opens the repositories of the running suite: a new SQLite store in dir
 * (emptied first), or new in-memory ones. */
void tu_repos_open(tu_repos_t *r, const char *dir);
void tu_repos_close(tu_repos_t *r);

typedef struct tu_test_s {
    const char *name;
    CU_TestFunc fn;
} tu_test_t;

/* Registers the n tests twice: in a suite "WHAT on SQLite" and in one
 * "WHAT on the in-memory repositories", each setting tu_on_sqlite. The
 * suites go to on_sqlite and in_memory (either may be NULL), for tests of
 * their own. */
void tu_add_both(const char *what, const tu_test_t *tests, size_t n,
                 CU_pSuite *on_sqlite, CU_pSuite *in_memory);

#endif /* OG_TESTS_MEM_REPOS_H */
