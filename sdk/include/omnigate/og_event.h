/*
 * og_event.h: emitting events, reading delivered events, completing
 * deliveries. Events cross the boundary as MessagePack bytes (envelope v1,
 * sdk/docs/envelope.md); no msgpack-c type is part of the ABI, so a plugin
 * may decode the bytes with any MessagePack library it links itself.
 */
#ifndef OMNIGATE_OG_EVENT_H
#define OMNIGATE_OG_EVENT_H

#include <omnigate/og_host.h>

OG_BEGIN_DECLS

/*
 * og_emit: hand one event, a complete envelope as MessagePack bytes, to the
 * gateway. The bytes are borrowed: the host validates and copies them before
 * returning. The host fills the fields it owns (id when absent, received
 * time, source instance and plugin). Returns OG_OK (validated and queued
 * for its commit to durable storage, which follows within milliseconds but
 * has not happened yet), OG_ERR_INVALID (not a valid envelope; the reason
 * is logged and counted), OG_ERR_BUSY (the gateway cannot take more now:
 * answer the sender 429 with Retry-After and let it retry), OG_ERR_IO (its
 * store fails now, e.g. disk full: answer 503 with Retry-After) or
 * OG_ERR_STOPPING (shutting down). A plugin that acknowledges its sender
 * (HTTP 2xx, an IMAP flag) uses og_emit_async() instead, which reports the
 * commit.
 */
static inline og_err_t og_emit(og_plugin_ctx_t *ctx, const uint8_t *msgpack,
                               size_t len)
{
    return OG_HOST_HAS(emit) ? og__host->emit(ctx, msgpack, len)
                             : OG_ERR_UNSUPPORTED;
}

/*
 * og_emit_async: like og_emit(), and cb(data, result, event_id) runs once
 * the outcome is known: after the event is committed to durable storage
 * (or found to be a duplicate or a conflict, or the store refused it; see
 * og_emit_cb). Acknowledge the sender only from cb, and only for OG_OK.
 * When og_emit_async() itself returns anything but OG_OK, cb is never
 * called. cb runs on the loop thread, never from inside og_emit_async(),
 * and never after the instance's destroy().
 */
static inline og_err_t og_emit_async(og_plugin_ctx_t *ctx,
                                     const uint8_t *msgpack, size_t len,
                                     og_emit_cb cb, void *data)
{
    return OG_HOST_HAS(emit_async)
               ? og__host->emit_async(ctx, msgpack, len, cb, data)
               : OG_ERR_UNSUPPORTED;
}

/*
 * og_emit_batch_async: hand n events to the gateway as one batch that is
 * stored all or nothing (an HTTP batch answered with one status). Every
 * envelope is validated first: when one is not valid, nothing is emitted,
 * OG_ERR_INVALID is returned, *bad (may be NULL) gets its index and why
 * (may be NULL) the reason, which names the field ("field 'type' must be
 * 1-128 characters..."). Otherwise the events go into one commit and
 * cb(data, ...) runs once with the outcome (og_emit_batch_cb), never from
 * inside this call. OG_ERR_BUSY, OG_ERR_IO or OG_ERR_STOPPING returned
 * here refuse the whole batch at once (cb is not called). n may be 1: the
 * way to learn why a single event was refused.
 */
static inline og_err_t og_emit_batch_async(og_plugin_ctx_t *ctx,
                                           const og_emit_item_t *items,
                                           size_t n, size_t *bad, char *why,
                                           size_t whylen, og_emit_batch_cb cb,
                                           void *data)
{
    return OG_HOST_HAS(emit_batch_async)
               ? og__host->emit_batch_async(ctx, items, n, bad, why, whylen, cb,
                                            data)
               : OG_ERR_UNSUPPORTED;
}

/*
 * og_event_builder_create: start an event of the given dotted type
 * ("order.placed"). type is copied. Returns a builder the caller owns and
 * must pass to og_event_builder_emit() or og_event_builder_destroy(), or
 * NULL when out of memory or type is empty.
 */
static inline og_event_builder_t *og_event_builder_create(og_plugin_ctx_t *ctx,
                                                          const char *type)
{
    return OG_HOST_HAS(builder_create) ? og__host->builder_create(ctx, type)
                                       : NULL;
}

/*
 * og_event_builder_set_str, og_event_builder_set_int,
 * og_event_builder_set_double, og_event_builder_set_bool: set the field at
 * a dotted path ("customer",
 * "props.sku", "source.vendor_id", "props.total.amount"); intermediate maps
 * are created. Setting a path twice replaces the value. Core-owned fields
 * (v, received, source.instance, source.plugin) cannot be set, and the first
 * segment must be an envelope field (sdk/docs/envelope.md): custom data goes
 * under props. All strings
 * and bytes are copied. Return OG_OK, OG_ERR_INVALID (bad path or value),
 * OG_ERR_NOMEM.
 */
static inline og_err_t og_event_builder_set_str(og_event_builder_t *b,
                                                const char *path,
                                                const char *value)
{
    return OG_HOST_HAS(builder_set_str)
               ? og__host->builder_set_str(b, path, value)
               : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_event_builder_set_int(og_event_builder_t *b,
                                                const char *path, int64_t value)
{
    return OG_HOST_HAS(builder_set_int)
               ? og__host->builder_set_int(b, path, value)
               : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_event_builder_set_double(og_event_builder_t *b,
                                                   const char *path,
                                                   double value)
{
    return OG_HOST_HAS(builder_set_double)
               ? og__host->builder_set_double(b, path, value)
               : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_event_builder_set_bool(og_event_builder_t *b,
                                                 const char *path, int value)
{
    return OG_HOST_HAS(builder_set_bool)
               ? og__host->builder_set_bool(b, path, value)
               : OG_ERR_UNSUPPORTED;
}

/* og_event_builder_set_msgpack: set path to one complete MessagePack
 * object (an array of cart lines, say); the bytes must hold exactly one
 * object and are copied. */
static inline og_err_t og_event_builder_set_msgpack(og_event_builder_t *b,
                                                    const char *path,
                                                    const uint8_t *msgpack,
                                                    size_t len)
{
    return OG_HOST_HAS(builder_set_msgpack)
               ? og__host->builder_set_msgpack(b, path, msgpack, len)
               : OG_ERR_UNSUPPORTED;
}

/*
 * og_event_builder_add_identity: add an identity key seen on the event
 * (kind "email", "phone", "anon", "user", ...). verified is non-zero only
 * when this plugin authenticated the value. Strings are copied.
 */
static inline og_err_t og_event_builder_add_identity(og_event_builder_t *b,
                                                     const char *kind,
                                                     const char *value,
                                                     int verified)
{
    return OG_HOST_HAS(builder_add_identity)
               ? og__host->builder_add_identity(b, kind, value, verified)
               : OG_ERR_UNSUPPORTED;
}

/*
 * og_event_builder_emit: encode and emit the event like og_emit(). Always
 * consumes b, whatever the result.
 */
static inline og_err_t og_event_builder_emit(og_event_builder_t *b)
{
    return OG_HOST_HAS(builder_emit) ? og__host->builder_emit(b)
                                     : OG_ERR_UNSUPPORTED;
}

/*
 * og_event_builder_emit_async: encode and emit the event like
 * og_emit_async(). Always consumes b, whatever the result.
 */
static inline og_err_t og_event_builder_emit_async(og_event_builder_t *b,
                                                   og_emit_cb cb, void *data)
{
    return OG_HOST_HAS(builder_emit_async)
               ? og__host->builder_emit_async(b, cb, data)
               : OG_ERR_UNSUPPORTED;
}

/* og_event_builder_destroy: drop b without emitting. NULL is allowed. */
static inline void og_event_builder_destroy(og_event_builder_t *b)
{
    if (OG_HOST_HAS(builder_destroy))
        og__host->builder_destroy(b);
}

/*
 * Accessors for an event passed to send(). Every returned pointer is owned
 * by the event and valid as long as the event is (see og_plugin_def_t.send).
 */

/* og_event_type: the event's dotted type; never NULL. */
static inline const char *og_event_type(const og_event_t *ev)
{
    return OG_HOST_HAS(event_type) ? og__host->event_type(ev) : NULL;
}

/* og_event_id: the event's id (a UUIDv7 when the core generated it);
 * never NULL. */
static inline const char *og_event_id(const og_event_t *ev)
{
    return OG_HOST_HAS(event_id) ? og__host->event_id(ev) : NULL;
}

/* og_event_data: the whole envelope as MessagePack bytes; *len gets its
 * length. */
static inline const uint8_t *og_event_data(const og_event_t *ev, size_t *len)
{
    return OG_HOST_HAS(event_data) ? og__host->event_data(ev, len) : NULL;
}

/*
 * og_event_get_str: the string at a dotted path. *value points into the
 * event's bytes and is NOT NUL-terminated; *len is its length. Returns
 * OG_OK, OG_ERR_NOT_FOUND or OG_ERR_TYPE. og_event_get_int and
 * og_event_get_bool work the same way for integers and booleans.
 */
static inline og_err_t og_event_get_str(const og_event_t *ev, const char *path,
                                        const char **value, size_t *len)
{
    return OG_HOST_HAS(event_get_str)
               ? og__host->event_get_str(ev, path, value, len)
               : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_event_get_int(const og_event_t *ev, const char *path,
                                        int64_t *value)
{
    return OG_HOST_HAS(event_get_int) ? og__host->event_get_int(ev, path, value)
                                      : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_event_get_bool(const og_event_t *ev, const char *path,
                                         int *value)
{
    return OG_HOST_HAS(event_get_bool)
               ? og__host->event_get_bool(ev, path, value)
               : OG_ERR_UNSUPPORTED;
}

/*
 * og_delivery_key: the idempotency key of this delivery (stable across
 * retries of the same event to the same instance); pass it to the remote
 * side when it supports idempotency. Owned by d.
 */
static inline const char *og_delivery_key(const og_delivery_t *d)
{
    return OG_HOST_HAS(delivery_key) ? og__host->delivery_key(d) : NULL;
}

/*
 * og_delivery_retry_after: the remote side asked to wait delay_ms before
 * the next attempt (an HTTP Retry-After, an SMTP 4xx hint). Call it before
 * send() returns OG_ERR_RETRY or before og_delivery_complete(d,
 * OG_ERR_RETRY, ...); the next attempt is then no earlier than that, and
 * otherwise follows the channel's backoff schedule (retry_base, retry_max,
 * retry_lifetime in its channels.d file).
 */
static inline void og_delivery_retry_after(og_delivery_t *d, uint64_t delay_ms)
{
    if (OG_HOST_HAS(delivery_retry_after))
        og__host->delivery_retry_after(d, delay_ms);
}

/*
 * og_delivery_complete: finish a delivery for which send() returned
 * OG_PENDING. result is OG_OK, OG_ERR_RETRY or OG_ERR_REJECTED; reason
 * (copied, may be NULL) says why it failed. Call exactly once; d and its
 * event are invalid afterwards.
 */
static inline void og_delivery_complete(og_delivery_t *d, og_err_t result,
                                        const char *reason)
{
    if (OG_HOST_HAS(delivery_complete))
        og__host->delivery_complete(d, result, reason);
}

OG_END_DECLS

#endif /* OMNIGATE_OG_EVENT_H */
