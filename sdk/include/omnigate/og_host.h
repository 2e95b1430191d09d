/*
 * og_host.h: the host API table, the only way a plugin reaches the daemon.
 *
 * The host passes one og_host_api_t to og_plugin_entry(); OG_PLUGIN_DEFINE()
 * keeps it in a plugin-private pointer that the inline wrappers of the other
 * SDK headers (og_log(), og_emit(), og_timer_start(), ...) call through. A
 * plugin therefore links with no undefined reference to the daemon.
 *
 * ABI rules for this table:
 * - struct_size, abi_major and abi_minor are the first members forever.
 * - Members are only ever appended, each in a new ABI minor; a member is
 *   never removed, reordered or changed in type within a major.
 * - A plugin built against a newer minor may find members missing on an
 *   older host: OG_HOST_HAS() tells, and the wrappers return
 *   OG_ERR_UNSUPPORTED instead of calling past the table.
 *
 * Every function runs on the loop thread only, unless its note says so.
 */
#ifndef OMNIGATE_OG_HOST_H
#define OMNIGATE_OG_HOST_H

#include <stdarg.h>

#include <omnigate/og_types.h>

OG_BEGIN_DECLS

struct og_host_api_s {
    /* --- header, fixed forever --- */
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* --- ABI 1.0 --- */
    const char *(*version)(void);
    void (*vlog)(og_plugin_ctx_t *ctx, og_log_level_t level, const char *fmt,
                 va_list ap);
    const char *(*instance_name)(og_plugin_ctx_t *ctx);
    struct uv_loop_s *(*loop)(og_plugin_ctx_t *ctx);

    og_err_t (*config_get_str)(og_plugin_ctx_t *ctx, const char *key,
                               const char **value);
    og_err_t (*config_get_int)(og_plugin_ctx_t *ctx, const char *key,
                               int64_t *value);
    og_err_t (*config_get_bool)(og_plugin_ctx_t *ctx, const char *key,
                                int *value);
    og_err_t (*config_get_duration_ms)(og_plugin_ctx_t *ctx, const char *key,
                                       uint64_t *value);
    og_err_t (*config_get_size)(og_plugin_ctx_t *ctx, const char *key,
                                uint64_t *value);

    og_err_t (*emit)(og_plugin_ctx_t *ctx, const uint8_t *msgpack, size_t len);
    og_event_builder_t *(*builder_create)(og_plugin_ctx_t *ctx,
                                          const char *type);
    og_err_t (*builder_set_str)(og_event_builder_t *b, const char *path,
                                const char *value);
    og_err_t (*builder_set_int)(og_event_builder_t *b, const char *path,
                                int64_t value);
    og_err_t (*builder_set_double)(og_event_builder_t *b, const char *path,
                                   double value);
    og_err_t (*builder_set_bool)(og_event_builder_t *b, const char *path,
                                 int value);
    og_err_t (*builder_set_msgpack)(og_event_builder_t *b, const char *path,
                                    const uint8_t *msgpack, size_t len);
    og_err_t (*builder_add_identity)(og_event_builder_t *b, const char *kind,
                                     const char *value, int verified);
    og_err_t (*builder_emit)(og_event_builder_t *b);
    void (*builder_destroy)(og_event_builder_t *b);

    const char *(*event_type)(const og_event_t *ev);
    const char *(*event_id)(const og_event_t *ev);
    const uint8_t *(*event_data)(const og_event_t *ev, size_t *len);
    og_err_t (*event_get_str)(const og_event_t *ev, const char *path,
                              const char **value, size_t *len);
    og_err_t (*event_get_int)(const og_event_t *ev, const char *path,
                              int64_t *value);
    og_err_t (*event_get_bool)(const og_event_t *ev, const char *path,
                               int *value);

    const char *(*delivery_key)(const og_delivery_t *d);
    void (*delivery_complete)(og_delivery_t *d, og_err_t result,
                              const char *reason);
    void (*stopped)(og_plugin_ctx_t *ctx);

    og_timer_t *(*timer_start)(og_plugin_ctx_t *ctx, uint64_t timeout_ms,
                               uint64_t repeat_ms, og_timer_cb cb, void *data);
    void (*timer_stop)(og_timer_t *timer);

    og_err_t (*http_request)(og_plugin_ctx_t *ctx,
                             const og_http_request_t *request, og_http_cb cb,
                             void *data);

    void (*counter_add)(og_plugin_ctx_t *ctx, const char *name, uint64_t delta);
    void (*gauge_set)(og_plugin_ctx_t *ctx, const char *name, int64_t value);

    og_err_t (*http_mount)(og_plugin_ctx_t *ctx, const og_http_route_t *route);
    const char *(*http_req_method)(const og_http_req_t *req);
    const char *(*http_req_path)(const og_http_req_t *req);
    const char *(*http_req_query)(const og_http_req_t *req);
    const char *(*http_req_header)(const og_http_req_t *req, const char *name);
    const uint8_t *(*http_req_body)(const og_http_req_t *req, size_t *len);
    void (*http_respond)(og_http_req_t *req, int status,
                         const char *content_type, const char *const *headers,
                         const void *body, size_t len);

    og_err_t (*emit_async)(og_plugin_ctx_t *ctx, const uint8_t *msgpack,
                           size_t len, og_emit_cb cb, void *data);
    og_err_t (*builder_emit_async)(og_event_builder_t *b, og_emit_cb cb,
                                   void *data);
    void (*delivery_retry_after)(og_delivery_t *d, uint64_t delay_ms);
    og_err_t (*emit_batch_async)(og_plugin_ctx_t *ctx,
                                 const og_emit_item_t *items, size_t n,
                                 size_t *bad, char *why, size_t whylen,
                                 og_emit_batch_cb cb, void *data);
    og_err_t (*curl_run)(og_plugin_ctx_t *ctx, void *easy, og_curl_cb cb,
                         void *data);
};

/*
 * The table this plugin was given; defined by OG_PLUGIN_DEFINE() and hidden
 * inside the plugin's shared object. NULL until og_plugin_entry() ran.
 */
extern OG_HIDDEN const og_host_api_t *og__host;

/* True when the host's table has member m (the host may be older). */
#define OG_HOST_HAS(m)                                                         \
    (og__host != NULL &&                                                       \
     og__host->struct_size >=                                                  \
         offsetof(og_host_api_t, m) + sizeof(og__host->m) &&                   \
     og__host->m != NULL)

/*
 * og_host_version: the host's version string ("0.1.0"), static storage.
 * NULL before og_plugin_entry() ran.
 */
static inline const char *og_host_version(void)
{
    return OG_HOST_HAS(version) ? og__host->version() : NULL;
}

OG_END_DECLS

#endif /* OMNIGATE_OG_HOST_H */
