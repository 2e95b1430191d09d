/*
 * router.h: routes compiled from [route] sections. A route matches an event
 * by type pattern (exact or glob: "order.*") and, optionally, by source
 * instance; its targets are channel instance names.
 */
#ifndef OG_CORE_ROUTER_H
#define OG_CORE_ROUTER_H

#include <stddef.h>

#include "conf.h"

typedef struct og__router_s og__router_t;

/* Compiles the routes of conf; the router keeps its own copies. */
og__router_t *og__router_create(const og__conf_t *conf);
void og__router_free(og__router_t *r);

/*
 * og__router_targets: the distinct target instances for an event of type
 * emitted by source, never source itself. Writes up to max names (owned by
 * the router, valid until it is freed) and returns how many matched in
 * all.
 */
size_t og__router_targets(const og__router_t *r, const char *type,
                          const char *source, const char **out, size_t max);

#endif /* OG_CORE_ROUTER_H */
