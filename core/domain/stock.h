/*
 * stock.h: shared stock (docs/stock.md), the rules above the storage
 * seam. On hand and reserved per SKU and location, versioned updates that
 * never move stock backwards, order reservations, per-channel
 * availability with stock.out / stock.back.
 *
 * The domain owns the repository interface (og__stock_repo_t) that a
 * backend implements: plain reads and writes of the stock ledger, no rule
 * in them. The functions below are the rules; they run inside whatever
 * unit of work the caller opened (a store commit), so a failed call
 * leaves the caller to roll back.
 */
#ifndef OG_CORE_DOMAIN_STOCK_H
#define OG_CORE_DOMAIN_STOCK_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_errors.h>

/* A channel taking part in shared stock (docs/stock.md). */
typedef struct og__stock_chan_s {
    const char *channel;
    const char *const *locations; /* NULL-terminated; "*": every one */
    int64_t buffer;               /* safety buffer, units */
    const char *first;            /* where its orders reserve, or NULL */
} og__stock_chan_t;

typedef struct og__stock_rules_s {
    const og__stock_chan_t *chans;
    size_t n;
} og__stock_rules_t;

/* The state of an order as the ledger keeps it. */
typedef enum og__order_state_e {
    OG__ORDER_PLACED = 0,
    OG__ORDER_READY = 1, /* ready for pickup */
    OG__ORDER_COMPLETED = 2,
    OG__ORDER_CANCELLED = 3
} og__order_state_t;

/* One location's count of a SKU, valid during the callback. */
typedef struct og__stock_level_s {
    const char *location;
    int64_t on_hand;
    int64_t reserved;
    int64_t version; /* of the last absolute count, 0: none */
    uint64_t updated_ms;
} og__stock_level_t;

typedef void (*og__stock_level_cb)(void *data, const og__stock_level_t *l);
/* One reservation line of an order, valid during the callback. */
typedef void (*og__stock_line_cb)(void *data, const char *sku,
                                  const char *location, int64_t qty);

typedef struct og__stock_repo_s og__stock_repo_t;

/*
 * The stock ledger as a backend stores it. Every operation returns OG_OK
 * or the backend's error (OG_ERR_IO, OG_ERR_BUSY when full); strings are
 * copied when kept. A level that does not exist reads as absent (found,
 * known 0) or as zero (available, deltas_after).
 */
struct og__stock_repo_ops {
    /* The version of the last absolute count of (sku, loc); *found 0
     * when there is no level. */
    og_err_t (*count_version)(og__stock_repo_t *r, const char *sku,
                              const char *loc, int64_t *version, int *found);
    /* Sets on hand and the count's version (creating the level with
     * nothing reserved); reserved is kept. */
    og_err_t (*count_set)(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t on_hand, int64_t version, uint64_t at_ms);
    /* Moves on hand and reserved by the deltas (creating the level at
     * version 0); reserved never goes below 0. */
    og_err_t (*move)(og__stock_repo_t *r, const char *sku, const char *loc,
                     int64_t d_on_hand, int64_t d_reserved, uint64_t at_ms);
    /* The sum of the deltas kept with a version above version. */
    og_err_t (*deltas_after)(og__stock_repo_t *r, const char *sku,
                             const char *loc, int64_t version, int64_t *sum);
    /* Forgets the deltas with a version up to version. */
    og_err_t (*deltas_drop)(og__stock_repo_t *r, const char *sku,
                            const char *loc, int64_t version);
    /* Keeps the delta of version; *added 0 when that version had one. */
    og_err_t (*delta_add)(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t version, int64_t delta, int *added);
    /* On hand minus reserved at loc, or over every location (loc NULL). */
    og_err_t (*available)(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t *sum);
    /* Records an order (customer and pickup may be NULL); *added 0 when
     * it was recorded before (and nothing changes). */
    og_err_t (*order_add)(og__stock_repo_t *r, const char *order,
                          const char *customer, const char *pickup,
                          uint64_t at_ms, int *added);
    /* The customer of an order into buf; *found 0 when the order is
     * unknown or has none. */
    og_err_t (*order_customer)(og__stock_repo_t *r, const char *order,
                               char *buf, size_t len, int *found);
    og_err_t (*order_state)(og__stock_repo_t *r, const char *order,
                            og__order_state_t state, uint64_t at_ms);
    /* *added 0 when the order has that line (sku, location) already. */
    og_err_t (*reservation_add)(og__stock_repo_t *r, const char *order,
                                const char *sku, const char *loc, int64_t qty,
                                int *added);
    og_err_t (*reservations)(og__stock_repo_t *r, const char *order,
                             og__stock_line_cb cb, void *data);
    og_err_t (*reservations_drop)(og__stock_repo_t *r, const char *order);
    /* The availability last announced for (sku, channel); *known 0 when
     * none was. */
    og_err_t (*channel_get)(og__stock_repo_t *r, const char *sku,
                            const char *channel, int64_t *avail, int *known);
    og_err_t (*channel_set)(og__stock_repo_t *r, const char *sku,
                            const char *channel, int64_t avail);
    /* Every level of sku, by location in byte order. */
    og_err_t (*levels)(og__stock_repo_t *r, const char *sku,
                       og__stock_level_cb cb, void *data);
};

struct og__stock_repo_s {
    const struct og__stock_repo_ops *ops;
};

/* 1 when events of this type change stock or orders. */
int og__stock_type(const char *type);

/* One new event as the stock rules read it. */
typedef struct og__stock_input_s {
    const char *type;
    const char *event_id;
    const char *source;   /* the source instance, or NULL */
    const char *customer; /* its resolved customer, or "" / NULL */
    const uint8_t *body;  /* the stamped envelope */
    size_t len;
    uint64_t received_ms;
} og__stock_input_t;

/*
 * Takes over body (a complete stock.out / stock.back envelope, malloc'd)
 * and writes it as an event of the same unit of work. A nonzero result
 * ends og__stock_apply() with it.
 */
typedef og_err_t (*og__stock_made_fn)(void *data, uint8_t *body, size_t len);

/*
 * og__stock_apply: what the new event in does to stock and orders:
 * inventory.changed (counts and deltas), order.placed (reservations),
 * order.cancelled (released), order.completed (fulfilled),
 * order.ready_for_pickup. With rules, each stock channel's availability
 * of the SKUs it touched is updated and a stock.out / stock.back made
 * through made (when not NULL) for each that crossed zero. Events of
 * other types, and bodies that do not unpack, change nothing.
 */
og_err_t og__stock_apply(og__stock_repo_t *r, const og__stock_input_t *in,
                         const og__stock_rules_t *rules, og__stock_made_fn made,
                         void *data);

/*
 * og__stock_order_customer: the customer recorded with the order an
 * order.* event names (entity of kind order, else props.order_id), into
 * buf; *found 0 when there is none (or the event is no order.*).
 */
og_err_t og__stock_order_customer(og__stock_repo_t *r, const char *type,
                                  const uint8_t *body, size_t len, char *buf,
                                  size_t buflen, int *found);

/* What channel c may sell of sku now: on hand minus reserved over its
 * locations, minus its safety buffer (may be negative). */
og_err_t og__stock_available(og__stock_repo_t *r, const og__stock_chan_t *c,
                             const char *sku, int64_t *avail);

#endif /* OG_CORE_DOMAIN_STOCK_H */
