/*
 * store.h: durable state behind one interface with interchangeable
 * backends (SQLite now, PostgreSQL later). Callers use only the functions
 * below; a backend provides og__store_ops.
 *
 * Threading: a store handle is used by one thread at a time (the daemon
 * will run store work on a libuv worker thread, so the loop never waits
 * for the disk).
 */
#ifndef OG_CORE_STORE_H
#define OG_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_errors.h>

/* How much a commit survives (docs/configuration.md). */
typedef enum og__durability_e {
    OG__DURABLE_POWER,  /* survives power loss of the host (fsync per commit) */
    OG__DURABLE_PROCESS /* survives a crash of the daemon, not of the host */
} og__durability_t;

typedef struct og__store_opts_s {
    const char *dir; /* state directory; created if missing */
    og__durability_t durability;
    uint64_t dedup_window_ms; /* how long ids stay idempotency keys */
} og__store_opts_t;

/* The outcome of accepting one event. */
typedef enum og__accept_e {
    OG__ACCEPT_NEW,       /* stored with its outbox rows */
    OG__ACCEPT_DUPLICATE, /* seen within the window with the same content */
    OG__ACCEPT_CONFLICT   /* seen within the window with other content */
} og__accept_t;

/* One event to accept, and what became of it. */
typedef struct og__store_item_s {
    /* in */
    const char *event_id;
    const char *vendor_key; /* "instance/vendor id", or NULL */
    uint64_t content_hash;  /* of the plugin-supplied content */
    const uint8_t *body;    /* the stamped envelope */
    size_t len;
    uint64_t received_ms;
    const char *const *targets; /* channel instances to deliver to */
    size_t ntargets;
    /* out */
    og__accept_t result;
    char first_id[72]; /* for duplicates: the id first accepted */
} og__store_item_t;

/* One delivery row of the outbox, valid during the callback that gets it. */
typedef struct og__outbox_row_s {
    int64_t id;
    const char *event_id;
    const char *channel;
    uint32_t attempts;
    uint64_t next_ms;
    const uint8_t *body; /* the stamped envelope */
    size_t len;
    const char *last_error; /* NULL when none */
} og__outbox_row_t;

typedef void (*og__outbox_cb)(void *data, const og__outbox_row_t *row);

/* How a delivery attempt ended (og__store_ops.complete). */
typedef enum og__outcome_e {
    OG__OUTCOME_DELIVERED,
    OG__OUTCOME_RETRY, /* try again at next_ms */
    OG__OUTCOME_DEAD   /* permanent failure or lifetime over */
} og__outcome_t;

typedef struct og__store_s og__store_t;

struct og__store_ops {
    const char *name;
    void (*close)(og__store_t *s);
    int (*schema_version)(og__store_t *s);
    og_err_t (*accept)(og__store_t *s, og__store_item_t *items, size_t n,
                       char *err, size_t errlen);
    og_err_t (*outbox_count)(og__store_t *s, const char *channel,
                             uint64_t *count);
    /* Due rows of channel (next_ms <= now), oldest first, at most limit;
     * each is leased until now + lease_ms so that a crash makes it due
     * again (at-least-once). */
    og_err_t (*claim)(og__store_t *s, const char *channel, uint64_t now_ms,
                      size_t limit, uint64_t lease_ms, og__outbox_cb cb,
                      void *data);
    og_err_t (*complete)(og__store_t *s, int64_t row, og__outcome_t outcome,
                         uint64_t next_ms, const char *error);
    /* Dead letters of channel (NULL: every channel). */
    og_err_t (*dead_list)(og__store_t *s, const char *channel, og__outbox_cb cb,
                          void *data);
    /* Makes dead letters due again (row 0: all of channel, or of every
     * channel when channel is NULL); *count gets how many. */
    og_err_t (*dead_requeue)(og__store_t *s, const char *channel, int64_t row,
                             uint64_t now_ms, uint64_t *count);
    og_err_t (*dead_purge)(og__store_t *s, const char *channel,
                           uint64_t *count);
};

struct og__store_s {
    const struct og__store_ops *ops;
};

/* The schema version this build writes. */
#define OG__STORE_SCHEMA_VERSION 1

/*
 * og__store_open_sqlite: open (or create) state.db in opts->dir, in WAL
 * mode, and bring its schema up to date. A database written by a newer
 * omnigate is refused. Returns NULL with the reason in err.
 */
og__store_t *og__store_open_sqlite(const og__store_opts_t *opts, char *err,
                                   size_t errlen);

static inline void og__store_close(og__store_t *s)
{
    if (s != NULL)
        s->ops->close(s);
}

/*
 * og__store_accept: in one transaction, and so one commit, store every
 * new event of items with one outbox row per target; duplicates and
 * conflicts (by event id or vendor key within the window) store nothing.
 * On error nothing of the batch is stored.
 */
static inline og_err_t og__store_accept(og__store_t *s, og__store_item_t *items,
                                        size_t n, char *err, size_t errlen)
{
    return s->ops->accept(s, items, n, err, errlen);
}

#endif /* OG_CORE_STORE_H */
