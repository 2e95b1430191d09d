/*
 * og_plugin.h: what a plugin is: its descriptor, its entry symbol and the
 * per-instance services (configuration, lifecycle).
 *
 * Lifecycle of one channel instance, all on the loop thread:
 *
 *   init(ctx, &state)   read config, allocate; no I/O that must be undone.
 *                       Returning an error unloads the instance (the channel
 *                       is marked failed); destroy() is NOT called then, so
 *                       init frees what it allocated before failing.
 *   start(state)        begin ingress: open listeners, start timers.
 *   send(state, ev, d)  deliver one event (egress plugins), any time between
 *                       start() and the end of stop().
 *   stop(state)         stop taking new work. Return OG_OK when stopped, or
 *                       OG_PENDING and call og_stopped(ctx) once in-flight
 *                       work has finished; the host waits up to the
 *                       configured shutdown timeout.
 *   destroy(state)      free everything. Timers and HTTP requests the plugin
 *                       left running were cancelled by the host before this.
 */
#ifndef OMNIGATE_OG_PLUGIN_H
#define OMNIGATE_OG_PLUGIN_H

#include <omnigate/og_version.h>
#include <omnigate/og_host.h>

OG_BEGIN_DECLS

/* og_plugin_def_t.caps */
#define OG_CAP_INGRESS 0x1u /* emits events into the gateway */
#define OG_CAP_EGRESS 0x2u  /* receives deliveries through send() */

/*
 * The plugin's descriptor: a constant the plugin returns from
 * og_plugin_entry(). Initialise it with OG_PLUGIN_DEF_INIT so that the
 * header fields are right.
 *
 * The first three members are fixed for every ABI major. The host refuses
 * a descriptor whose abi_major differs from its own, whose abi_minor is
 * newer than its own, or whose struct_size is shorter than ABI 1.0's.
 */
typedef struct og_plugin_def_s {
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t struct_size; /* sizeof(og_plugin_def_t) when built */

    /* --- ABI 1.0 --- */
    const char *name;                /* [a-z0-9_-]+, the name channels use */
    const char *version;             /* the plugin's own version string */
    const char *description;         /* one line */
    uint32_t caps;                   /* OG_CAP_INGRESS | OG_CAP_EGRESS */
    const og_config_field_t *config; /* NULL-key terminated, or NULL */

    /* Required. *state is the plugin's own pointer passed to the others. */
    og_err_t (*init)(og_plugin_ctx_t *ctx, void **state);
    /* Optional (NULL: nothing to start). */
    og_err_t (*start)(void *state);
    /*
     * Required with OG_CAP_EGRESS. ev and d are borrowed: ev stays valid
     * until send() returns or, when it returns OG_PENDING, until
     * og_delivery_complete(d, ...) is called. Return OG_OK (delivered),
     * OG_ERR_RETRY (transient: tried again on the channel's backoff
     * schedule, see og_delivery_retry_after()), OG_ERR_REJECTED
     * (permanent: a dead letter) or OG_PENDING. Delivery is at least once:
     * after a crash the same event may come again with the same
     * og_delivery_key(d).
     */
    og_err_t (*send)(void *state, const og_event_t *ev, og_delivery_t *d);
    /* Optional (NULL: stopping is immediate). */
    og_err_t (*stop)(void *state);
    /* Required. Called once after a successful init(), after stop. */
    void (*destroy)(void *state);

    /* --- ABI 1.0, appended before the release --- */
    /*
     * Optional (NULL: the key table's checks are all). Checks the
     * instance's configuration beyond what the table says (formats,
     * combinations, files it names), as init() would, but without side
     * effects: it may read its configuration (og_config_get_*) and log,
     * nothing else. omnigated --check-config, the start and every reload
     * call it, so a configuration that init() would refuse fails the
     * check. Return OG_OK or OG_ERR_CONFIG with the reason in why (when it
     * starts with "KEY:", the host reports it at that key's line);
     * without a reason in why, the last problem it logged is the reason.
     * Loop thread.
     */
    og_err_t (*check)(og_plugin_ctx_t *ctx, char *why, size_t whylen);
} og_plugin_def_t;

/* Header of a descriptor built against these headers. */
#define OG_PLUGIN_DEF_INIT                                                     \
    .abi_major = OG_SDK_ABI_MAJOR, .abi_minor = OG_SDK_ABI_MINOR,              \
    .struct_size = (uint32_t)sizeof(og_plugin_def_t)

/* The name of the one symbol every plugin exports. */
#define OG_PLUGIN_ENTRY_SYMBOL "og_plugin_entry"

/*
 * og_plugin_entry: the plugin's entry point, called once after dlopen().
 * host is owned by the host and valid until the plugin is unloaded. Returns
 * the plugin's descriptor (static storage), or NULL to refuse loading. Its
 * signature is the same for every ABI major.
 */
typedef const og_plugin_def_t *(*og_plugin_entry_fn)(const og_host_api_t *host);

/*
 * OG_PLUGIN_DEFINE(def): put once in one source file of a plugin, with a
 * pointer to the plugin's constant descriptor. Defines og_plugin_entry and
 * the hidden og__host pointer the SDK's inline wrappers use.
 */
#define OG_PLUGIN_DEFINE(def)                                                  \
    OG_HIDDEN const og_host_api_t *og__host = NULL;                            \
    OG_BEGIN_DECLS                                                             \
    OG_EXPORT const og_plugin_def_t *og_plugin_entry(                          \
        const og_host_api_t *host);                                            \
    OG_END_DECLS                                                               \
    const og_plugin_def_t *og_plugin_entry(const og_host_api_t *host)          \
    {                                                                          \
        og__host = host;                                                       \
        return (def);                                                          \
    }

/*
 * og_instance_name: the channel instance's name (the channels.d file name
 * or its name= key). Owned by the host, valid until destroy() returns.
 */
static inline const char *og_instance_name(og_plugin_ctx_t *ctx)
{
    return OG_HOST_HAS(instance_name) ? og__host->instance_name(ctx) : NULL;
}

/*
 * og_loop: the daemon's libuv loop, for plugins that use libuv directly.
 * Handles a plugin opens on it must be closed before destroy() returns.
 * Blocking work goes through uv_queue_work(). Never NULL on this host.
 */
static inline struct uv_loop_s *og_loop(og_plugin_ctx_t *ctx)
{
    return OG_HOST_HAS(loop) ? og__host->loop(ctx) : NULL;
}

/*
 * og_config_get_str: the value of key in the instance's [config] section,
 * or its declared default. *value is owned by the host and valid until
 * destroy() returns. Returns OG_OK, OG_ERR_NOT_FOUND (absent and no
 * default) or OG_ERR_TYPE (key not declared with this type).
 * og_config_get_int, og_config_get_bool, og_config_get_duration_ms
 * (milliseconds) and og_config_get_size (bytes) work the same way for keys
 * of those types and return the parsed value, validated when the config
 * was loaded.
 */
static inline og_err_t og_config_get_str(og_plugin_ctx_t *ctx, const char *key,
                                         const char **value)
{
    return OG_HOST_HAS(config_get_str)
               ? og__host->config_get_str(ctx, key, value)
               : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_config_get_int(og_plugin_ctx_t *ctx, const char *key,
                                         int64_t *value)
{
    return OG_HOST_HAS(config_get_int)
               ? og__host->config_get_int(ctx, key, value)
               : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_config_get_bool(og_plugin_ctx_t *ctx, const char *key,
                                          int *value)
{
    return OG_HOST_HAS(config_get_bool)
               ? og__host->config_get_bool(ctx, key, value)
               : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_config_get_duration_ms(og_plugin_ctx_t *ctx,
                                                 const char *key,
                                                 uint64_t *value)
{
    return OG_HOST_HAS(config_get_duration_ms)
               ? og__host->config_get_duration_ms(ctx, key, value)
               : OG_ERR_UNSUPPORTED;
}

static inline og_err_t og_config_get_size(og_plugin_ctx_t *ctx, const char *key,
                                          uint64_t *value)
{
    return OG_HOST_HAS(config_get_size)
               ? og__host->config_get_size(ctx, key, value)
               : OG_ERR_UNSUPPORTED;
}

/*
 * og_stopped: tell the host that an instance whose stop() returned
 * OG_PENDING has finished its in-flight work. Call once.
 */
static inline void og_stopped(og_plugin_ctx_t *ctx)
{
    if (OG_HOST_HAS(stopped))
        og__host->stopped(ctx);
}

OG_END_DECLS

#endif /* OMNIGATE_OG_PLUGIN_H */
