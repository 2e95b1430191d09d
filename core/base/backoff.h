/*
 * backoff.h: when to try a failed delivery again.
 */
#ifndef OG_CORE_BACKOFF_H
#define OG_CORE_BACKOFF_H

#include <stdint.h>

typedef struct og__backoff_s {
    uint64_t base_ms;     /* first retry after about this long */
    uint64_t max_ms;      /* no wait longer than this */
    uint64_t lifetime_ms; /* give up this long after acceptance */
} og__backoff_t;

/*
 * og__backoff_next: the time of the next attempt after `attempts` failed
 * ones (1 for the first failure), or 0 when the delivery's lifetime is
 * over and it becomes a dead letter. The wait is exponential
 * (base * 2^(attempts-1), capped at max) with "full jitter" (uniform
 * between half of it and all of it, from rnd, any 32-bit value), and never
 * shorter than a Retry-After the remote side asked for (retry_after_ms,
 * 0 when none).
 */
uint64_t og__backoff_next(const og__backoff_t *b, uint32_t attempts,
                          uint64_t now_ms, uint64_t accepted_ms,
                          uint64_t retry_after_ms, uint32_t rnd);

#endif /* OG_CORE_BACKOFF_H */
