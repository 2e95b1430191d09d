/*
 * backoff.c: exponential backoff with jitter, Retry-After and a lifetime.
 */
#include "config.h"

#include "base/backoff.h"

uint64_t og__backoff_next(const og__backoff_t *b, uint32_t attempts,
                          uint64_t now_ms, uint64_t accepted_ms,
                          uint64_t retry_after_ms, uint32_t rnd)
{
    uint64_t wait = b->base_ms, at;
    uint32_t i;

    for (i = 1; i < attempts && wait < b->max_ms; i++)
        wait *= 2;
    if (wait > b->max_ms)
        wait = b->max_ms;
    /* half fixed, half random: spreads retries of many deliveries that
     * failed together without ever retrying immediately */
    wait = wait / 2 +
           (uint64_t)(((double)rnd / 4294967296.0) * (double)(wait - wait / 2));
    if (wait < retry_after_ms)
        wait = retry_after_ms;
    at = now_ms + wait;
    if (at > accepted_ms + b->lifetime_ms)
        return 0; /* the next attempt would fall after the lifetime */
    return at;
}
