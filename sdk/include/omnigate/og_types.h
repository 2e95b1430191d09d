/*
 * og_types.h: the opaque handles and plain types shared by the SDK headers.
 *
 * Handles are incomplete types: a plugin never sees a core structure and only
 * ever holds pointers the host gave it. Plain structs that cross the boundary
 * start with a struct_size field set by the side that fills them, so they can
 * grow by appending members.
 */
#ifndef OMNIGATE_OG_TYPES_H
#define OMNIGATE_OG_TYPES_H

#include <omnigate/og_common.h>
#include <omnigate/og_errors.h>

OG_BEGIN_DECLS

/* One running channel instance (a plugin loaded for one channels.d file).
 * Owned by the host; valid from init() until destroy() returns. */
typedef struct og_plugin_ctx_s og_plugin_ctx_t;

/* A normalized event (envelope v1, MessagePack). Owned by the host and
 * reference counted; a plugin only borrows it (see og_event.h). */
typedef struct og_event_s og_event_t;

/* An event under construction (og_event_builder_create()). */
typedef struct og_event_builder_s og_event_builder_t;

/* A timer started with og_timer_start(). */
typedef struct og_timer_s og_timer_t;

/* The token of one delivery handed to a plugin's send(). */
typedef struct og_delivery_s og_delivery_t;

/* The host's service table (og_host.h). */
typedef struct og_host_api_s og_host_api_t;

/* libuv's loop; only a forward declaration, so uv.h is not required. */
struct uv_loop_s;

/* Log levels; the values are syslog's, so they map 1:1 to the journal. */
typedef enum og_log_level_e {
    OG_LOG_ERROR = 3,
    OG_LOG_WARNING = 4,
    OG_LOG_NOTICE = 5,
    OG_LOG_INFO = 6,
    OG_LOG_DEBUG = 7
} og_log_level_t;

/* Types of a plugin's configuration keys (og_config_field_t.type). */
typedef enum og_config_type_e {
    OG_CFG_STRING = 1,   /* any text */
    OG_CFG_INT = 2,      /* signed 64-bit decimal; min/max apply if min < max */
    OG_CFG_BOOL = 3,     /* yes/no, true/false, on/off, 1/0 */
    OG_CFG_DURATION = 4, /* 250ms, 10s, 5m, 2h, 1d; a bare number is seconds */
    OG_CFG_SIZE = 5 /* 512, 64k, 10M, 1G (binary multiples; B, KiB, MiB...) */
} og_config_type_t;

/* og_config_field_t.flags */
#define OG_CFG_REQUIRED 0x1u /* the key must be present */
#define OG_CFG_SECRET 0x2u   /* value never logged, masked in dumps */

/*
 * One configuration key a plugin accepts in the [config] section of its
 * channel file. A plugin's table is an array terminated by an entry whose
 * key is NULL. The host validates every channel file against this table
 * before the plugin is initialised: unknown keys, wrong types and missing
 * required keys are configuration errors with file and line.
 *
 * This struct is frozen for ABI major 1 (arrays of it cannot grow); new
 * per-key properties will come as a separate table in a later minor.
 */
typedef struct og_config_field_s {
    const char *key; /* [a-z0-9_]+ */
    og_config_type_t type;
    const char *default_value; /* text in the key's syntax, or NULL */
    uint32_t flags;            /* OG_CFG_REQUIRED | OG_CFG_SECRET */
    const char *help;          /* one line for --check-config and docs */
    int64_t min;               /* OG_CFG_INT/SIZE/DURATION bounds, */
    int64_t max;               /* enforced when min < max */
    const void *reserved[2];   /* must be NULL */
} og_config_field_t;

/*
 * An outbound HTTP request (og_http_request()). Initialise with
 * OG_HTTP_REQUEST_INIT so that struct_size is right. All pointers are
 * borrowed: the host copies what it needs before og_http_request() returns.
 */
typedef struct og_http_request_s {
    uint32_t struct_size;
    const char *method;         /* NULL: GET, or POST when body is set */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* NULL-terminated "Name: value", or NULL */
    const uint8_t *body;        /* NULL: no body */
    size_t body_len;
    uint32_t timeout_ms; /* whole transfer; 0: 30 s */
    uint32_t
        max_response_bytes; /* body limit; 0: 1 MiB; over it: ERR_TOO_LARGE */
} og_http_request_t;

#define OG_HTTP_REQUEST_INIT                                                   \
    {                                                                          \
        sizeof(og_http_request_t), NULL, NULL, NULL, NULL, 0, 0, 0             \
    }

/*
 * The outcome of an HTTP request, passed to its og_http_cb. Filled by the
 * host; every pointer is valid only during the callback.
 */
typedef struct og_http_response_s {
    uint32_t struct_size; /* sizeof as the host knows it */
    og_err_t result;      /* OG_OK if a response arrived, whatever its status */
    int status;           /* HTTP status, 0 if none */
    const char *error;    /* transport error text when result != OG_OK */
    const uint8_t *body;  /* never NULL; "" when empty */
    size_t body_len;
    const char *headers; /* raw response header block, CRLF separated */
    size_t headers_len;
} og_http_response_t;

/* Completion of og_http_request(); called once, on the loop thread. */
typedef void (*og_http_cb)(void *data, const og_http_response_t *response);

/*
 * The end of a libcurl transfer a plugin set up itself and ran with
 * og_curl_run(): easy is the plugin's CURL handle, back in its hands;
 * curl_code is libcurl's CURLcode (0: CURLE_OK). result is OG_OK when
 * curl_code is 0, OG_ERR_CANCELLED when the instance stopped first, else
 * OG_ERR_IO.
 */
typedef void (*og_curl_cb)(void *data, void *easy, og_err_t result,
                           int curl_code);

/* An HTTP request received on the public listener for a route the plugin
 * mounted. Owned by the host until og_http_respond(). */
typedef struct og_http_req_s og_http_req_t;

/* Handles one request; must lead to exactly one og_http_respond(), now or
 * later (before the instance's destroy()). Loop thread. */
typedef void (*og_http_handler)(void *data, og_http_req_t *req);

/* Decides whether a request may reach the handler: OG_OK lets it through,
 * anything else answers 401 {"error":"unauthorized"}. Loop thread. */
typedef og_err_t (*og_http_auth_cb)(void *data, const og_http_req_t *req);

/*
 * A route a plugin mounts on the public listener (og_http_mount()).
 * Initialise with OG_HTTP_ROUTE_INIT. Strings are copied.
 */
typedef struct og_http_route_s {
    uint32_t struct_size;
    const char *method;      /* "POST"; NULL: any method */
    const char *path;        /* "/v1/events"; a trailing '*' matches a prefix */
    size_t max_body;         /* body limit in bytes; 0: the listener's */
    og_http_handler handler; /* required */
    og_http_auth_cb auth;    /* NULL: no check */
    void *data;              /* passed to handler and auth */
} og_http_route_t;

#define OG_HTTP_ROUTE_INIT                                                     \
    {                                                                          \
        sizeof(og_http_route_t), NULL, NULL, 0, NULL, NULL, NULL               \
    }

/* A timer fired; called on the loop thread. */
typedef void (*og_timer_cb)(og_timer_t *timer, void *data);

/*
 * Result of og_emit_async(): result is OG_OK once the event is committed
 * to durable storage (event_id is its id) or was already accepted within
 * the deduplication window (event_id is the id first accepted: answer the
 * sender exactly as the first time); OG_ERR_CONFLICT when an event with
 * the same id or vendor id but other content was accepted before;
 * OG_ERR_BUSY when the store cannot take it now (backlog above its bound,
 * disk full: answer 503 with Retry-After); OG_ERR_IO or OG_ERR_STOPPING
 * otherwise. event_id is valid during the call only and NULL on failure.
 */
typedef void (*og_emit_cb)(void *data, og_err_t result, const char *event_id);

/* One envelope of og_emit_batch_async(). */
typedef struct og_emit_item_s {
    const uint8_t *msgpack;
    size_t len;
    uint32_t flags; /* OG_EMIT_* */
} og_emit_item_t;

/* The envelope's source.vendor_id names the sender's message, and a sender
 * that retries may change other fields (Segment's sentAt): a repeat of the
 * vendor id within the deduplication window is a duplicate, never a
 * conflict. */
#define OG_EMIT_VENDOR_RETRIES 0x1u

/* The envelope comes from a public client the plugin did not authenticate
 * (a browser holding a public write key; ABI 1.0, unreleased, appended).
 * The core then drops the client's customer, correlation and causation
 * (counted as omnigate_events_stripped_total), lets no unverified key
 * other than the browser's own anon key choose an existing customer,
 * records no native thread keys, and keeps a named conversation only when
 * it is the event's customer's (docs/security.md). Verified flags are the
 * plugin's to clear: only it knows what it authenticated. */
#define OG_EMIT_UNTRUSTED 0x2u

/*
 * Result of og_emit_batch_async(), once for the whole batch: result is
 * OG_OK when every event is committed (or was a duplicate: ids[i] is then
 * the id first accepted), else nothing of the batch was stored and result
 * says why: OG_ERR_CONFLICT (results[i] is OG_ERR_CONFLICT for the events
 * that conflict with earlier ones and OG_ERR_CANCELLED for the others),
 * OG_ERR_BUSY, OG_ERR_IO or OG_ERR_STOPPING. results, ids and customers
 * have n entries, valid during the call only; ids[i] is NULL unless
 * results[i] is OG_OK; customers[i] is the customer the event was
 * resolved to (docs/customers.md), NULL when it has none or was a
 * duplicate.
 */
typedef void (*og_emit_batch_cb)(void *data, og_err_t result, size_t n,
                                 const og_err_t *results,
                                 const char *const *ids,
                                 const char *const *customers);

OG_END_DECLS

#endif /* OMNIGATE_OG_TYPES_H */
