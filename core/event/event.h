/*
 * event.h: the core's event object. An og_event_t holds one envelope as
 * MessagePack bytes and is reference counted, so that fan-out to several
 * channels shares one buffer and nothing is re-encoded after acceptance.
 */
#ifndef OG_CORE_EVENT_H
#define OG_CORE_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <omnigate/og_types.h>

/* The envelope schema version this core speaks. */
#define OG__ENVELOPE_VERSION 1

struct og_event_s {
    unsigned refs;
    uint8_t *data; /* the envelope, owned */
    size_t len;
    char *type;            /* NUL-terminated copy of "type" */
    char id[72];           /* NUL-terminated copy of "id" */
    char *instance;        /* the source instance's name */
    uint64_t accepted_ns;  /* uv_hrtime() at acceptance, for latency */
    uint64_t received_ms;  /* the envelope's "received" */
    uint64_t content_hash; /* of the bytes the plugin emitted (dedup) */
    const char *vendor_id; /* source.vendor_id inside data, or NULL */
    uint32_t vendor_len;
    uint8_t *own;      /* data when replaced (og__event_replace_data) */
    int purpose;       /* a message with a purpose: consent applies */
    int untrusted;     /* from a public client (OG_EMIT_UNTRUSTED) */
    unsigned stripped; /* fields the core dropped from it as untrusted */
    int parsed;        /* root below is valid */
    msgpack_zone zone;
    msgpack_object root;
};

/* Why an envelope was refused; counted per instance and exported as the
 * "reason" label of omnigate_events_refused_total. Append only. */
typedef enum og__refusal_e {
    OG__REFUSE_NONE,
    OG__REFUSE_TOO_LARGE,
    OG__REFUSE_MSGPACK,
    OG__REFUSE_NOT_MAP,
    OG__REFUSE_VERSION,
    OG__REFUSE_MISSING,
    OG__REFUSE_TYPE,
    OG__REFUSE_VALUE,
    OG__REFUSE_UNKNOWN,
    OG__REFUSE_COUNT
} og__refusal_t;

/* "too_large", "invalid_msgpack", "not_a_map", "bad_version",
 * "missing_field", "wrong_type", "invalid_value", "unknown_field". */
const char *og__refusal_name(og__refusal_t r);

/*
 * og__event_accept: validate the envelope a plugin emitted and build the
 * accepted event: core-owned fields are stamped (id when absent, received
 * time, source.instance, source.plugin). On failure returns NULL, sets *rc
 * (OG_ERR_INVALID or OG_ERR_TOO_LARGE), the reason code (may be NULL) and
 * writes the precise reason to why.
 */
og_event_t *og__event_accept(const uint8_t *bytes, size_t len,
                             const char *instance, const char *plugin,
                             size_t max_bytes, og_err_t *rc,
                             og__refusal_t *reason, char *why, size_t whylen);

/* og__event_accept_flags: the same with OG__ACCEPT_* flags. */
#define OG__ACCEPT_UNTRUSTED 0x1u /* drop customer, correlation, causation */
og_event_t *og__event_accept_flags(const uint8_t *bytes, size_t len,
                                   const char *instance, const char *plugin,
                                   size_t max_bytes, unsigned flags,
                                   og_err_t *rc, og__refusal_t *reason,
                                   char *why, size_t whylen);

/*
 * og__event_restore: rebuild an event from a stamped envelope the store
 * kept (og_event_t.data of an accepted event). Reads id, type, received
 * and source.instance back; returns NULL when the bytes are not such an
 * envelope (a damaged database), with the reason in why. Any thread.
 */
og_event_t *og__event_restore(const uint8_t *bytes, size_t len, char *why,
                              size_t whylen);

og_event_t *og__event_ref(og_event_t *ev);
/* The content that makes a repeat a duplicate or a conflict is the vendor
 * id alone (OG_EMIT_VENDOR_RETRIES). */
void og__event_content_by_vendor(og_event_t *ev);
/* Replaces the envelope bytes by data (malloc'd, taken over), as the store
 * wrote them (with the customer id). Pointers into the old bytes stay
 * valid until the event is freed. */
void og__event_replace_data(og_event_t *ev, uint8_t *data, size_t len);
void og__event_unref(og_event_t *ev);

/* Looks up a dotted path; *out points into the event's parsed tree. */
og_err_t og__event_lookup(const og_event_t *ev, const char *path,
                          const msgpack_object **out);
/* The same in any MessagePack tree. */
og_err_t og__obj_lookup(const msgpack_object *root, const char *path,
                        const msgpack_object **out);
/* The non-empty string at path of root (and, with numbers, a positive
 * integer in decimal) copied into buf; NULL when there is none or it does
 * not fit. */
const char *og__obj_text(const msgpack_object *root, const char *path,
                         int numbers, char *buf, size_t len);
/* Parses the event's bytes into ev->root once (the lookups do it lazily:
 * call this before handing an event to another thread). */
og_err_t og__event_parse(og_event_t *ev);

/*
 * og__mp_skip: the length in bytes of the one MessagePack object at p
 * (nested maps and arrays included), or 0 when it does not fit in len,
 * nests deeper than 64 or uses the reserved byte 0xc1.
 */
size_t og__mp_skip(const uint8_t *p, size_t len);

/* Writes a new UUIDv7 (36 characters plus NUL) to out. */
void og__uuid7(char out[37]);
/* The same for a given time (ms since the epoch), saving a clock read. */
void og__uuid7_at(char out[37], uint64_t now_ms);

/* Host-table implementations (see og_event.h for their contracts). */
const char *og__event_type(const og_event_t *ev);
const char *og__event_id(const og_event_t *ev);
const uint8_t *og__event_data(const og_event_t *ev, size_t *len);
og_err_t og__event_get_str(const og_event_t *ev, const char *path,
                           const char **value, size_t *len);
og_err_t og__event_get_int(const og_event_t *ev, const char *path,
                           int64_t *value);
og_err_t og__event_get_bool(const og_event_t *ev, const char *path, int *value);

og_event_builder_t *og__builder_create(og_plugin_ctx_t *ctx, const char *type);
og_err_t og__builder_set_str(og_event_builder_t *b, const char *path,
                             const char *value);
og_err_t og__builder_set_int(og_event_builder_t *b, const char *path,
                             int64_t value);
og_err_t og__builder_set_double(og_event_builder_t *b, const char *path,
                                double value);
og_err_t og__builder_set_bool(og_event_builder_t *b, const char *path,
                              int value);
og_err_t og__builder_set_msgpack(og_event_builder_t *b, const char *path,
                                 const uint8_t *msgpack, size_t len);
og_err_t og__builder_add_identity(og_event_builder_t *b, const char *kind,
                                  const char *value, int verified);
/* Encodes the builder's event; the caller owns *out (free()). Consumes
 * nothing. */
og_err_t og__builder_encode(og_event_builder_t *b, uint8_t **out, size_t *len);
og_plugin_ctx_t *og__builder_ctx(og_event_builder_t *b);
void og__builder_destroy(og_event_builder_t *b);

/* ---- what the customer store reads of a stored envelope (any thread) -- */

#define OG__MAX_IDKEYS 32      /* the envelope's bound on "ids" */
#define OG__MAX_THREAD_KEYS 16 /* props.thread keys looked at */

/* One identity key as the envelope carries it (pointers into the bytes). */
typedef struct og__raw_idkey_s {
    const char *kind, *value;
    uint32_t kind_len, value_len;
    int verified;
} og__raw_idkey_t;

typedef struct og__event_facts_s {
    og__raw_idkey_t ids[OG__MAX_IDKEYS];
    size_t nids;
    const char *type; /* "type" */
    uint32_t type_len;
    const char *customer; /* "customer" when the event names one */
    uint32_t customer_len;
    const uint8_t *traits; /* props.traits: a map's MessagePack bytes */
    size_t traits_len;
    int has_total; /* props.total is money */
    int64_t total_amount;
    char currency[4];
    const uint8_t *consent; /* "consent": a map's MessagePack bytes */
    size_t consent_len;
    const char *conversation; /* "conversation" when the event names one */
    uint32_t conversation_len;
    const char *purpose; /* props.purpose: "marketing", "transactional" */
    uint32_t purpose_len;
    /* props.thread (a string or an array of strings): channel-native keys
     * of the thread the message belongs to (a social thread id, the
     * In-Reply-To and References of an email); props.message_key: the
     * message's own native key, which later replies will name. */
    const char *thread[OG__MAX_THREAD_KEYS];
    uint32_t thread_len[OG__MAX_THREAD_KEYS];
    size_t nthread;
    const char *message_key;
    uint32_t message_key_len;
    uint64_t occurred;       /* "occurred", 0 when absent */
    const char *correlation; /* "correlation" when the event names one */
    uint32_t correlation_len;
} og__event_facts_t;

/* Reads the facts of a stamped envelope, which must be well-formed
 * MessagePack (accepted or restored by this module); -1 when it is not a
 * map. */
int og__event_facts(const uint8_t *b, size_t len, og__event_facts_t *f);

/* A copy of the envelope b (well-formed, as for og__event_facts()) with
 * the top-level string field key set to value (replaced, or added at the
 * end); malloc'd, length in *outlen. NULL when b is not a map. */
uint8_t *og__envelope_set_str(const uint8_t *b, size_t len, const char *key,
                              const char *value, size_t *outlen);

/* Packs the C string s. */
void og__pack_cstr(msgpack_packer *pk, const char *s);

/* Starts the envelope of an event the core makes: a map of 6 + extra
 * pairs, the first six packed here (v, type, id, occurred and received
 * at_ms, source {channel, instance, plugin: "core"}); the caller packs the
 * extra pairs. */
void og__pack_core_head(msgpack_packer *pk, size_t extra, const char *type,
                        const char *id, uint64_t at_ms);

/* og__store_hooks_t.stamp: the envelope with "customer" (and
 * "conversation" when not NULL) set; data is not used. */
uint8_t *og__stamp_hook(void *data, const uint8_t *body, size_t len,
                        const char *customer, const char *conversation,
                        size_t *outlen);

#endif /* OG_CORE_EVENT_H */
