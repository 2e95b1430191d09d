/*
 * web.h: the web channel plugin's parts (plugins/web/README.md).
 *
 *   web.c       the plugin: configuration, write keys, the events API,
 *               answers
 *   json.c      JSON <-> MessagePack (jansson, msgpack-c)
 *   segment.c   the Segment-compatible tracking API's mapping
 *   hooks.c     outbound webhooks (Standard Webhooks signatures)
 *   live.c      live web messages (long-poll) to visitors' browsers
 */
#ifndef OG_WEB_H
#define OG_WEB_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include <omnigate/sdk.h>

/* ---- json.c ------------------------------------------------------------ */

/* Packs a JSON value as MessagePack (integers stay integers, reals become
 * float64, strings keep embedded NULs). */
void web_pack_json(msgpack_packer *pk, const json_t *j);

/* The JSON form of a MessagePack object (bin and ext as null); a new
 * reference, or NULL when bytes are not one object. */
json_t *web_mp_to_json(const uint8_t *bytes, size_t len);

/* The next item of a list separated by commas or blanks ("a=1, b=2"): its
 * start, its length in *n, *p moved past it; NULL at the end. */
const char *web_list_item(const char **p, size_t *n);

/* Milliseconds since the epoch of an RFC 3339 / ISO 8601 time
 * ("2026-11-30T10:00:00.123Z", "+01:00" offsets); 0 when not one. */
uint64_t web_parse_time(const char *s);

/* ---- policy.c ----------------------------------------------------------- */

/*
 * What a request may assert (docs/security.md). A browser key is public:
 * its events are limited to the types a browser originates and to the
 * fields a browser may set; a server key is a secret of the shop's
 * backend and may assert anything the envelope holds.
 */
typedef struct web_policy_s {
    int browser;        /* a browser (public) key */
    const char *scope;  /* the key's name: client ids are scoped by it */
    const char *proven; /* the anonymous id the request's session token
                           proves, or NULL */
    const char *secret; /* identity_secret (signed user ids), or NULL */
    /* out */
    unsigned stripped; /* fields dropped */
    char dropped[160]; /* their names, for the log */
} web_policy_t;

/* 1 when sig (hex) is HMAC-SHA256(secret, value): a site-signed user id
 * (constant time). */
int web_signature_ok(const char *secret, const char *value, const char *sig);

/* 1 when a browser key may send events of this type. */
int web_browser_type_ok(const char *type);

/* Notes that field name was dropped from a browser's event. */
void web_policy_drop(web_policy_t *pol, const char *name);

/*
 * web_event_apply: applies the policy to one event of the events API (a
 * JSON envelope, changed in place): a client's "id" and
 * "source.vendor_id" become the idempotency key scoped by the key's name;
 * "ids[].signature" makes a user key verified when it is the site's HMAC;
 * for a browser key the type is checked and the fields a browser may not
 * set are dropped. 0, or -1 with the reason in why (a type a browser key
 * may not send: answer 403).
 */
int web_event_apply(json_t *e, web_policy_t *pol, char *why, size_t whylen);

/* The session token of an anonymous id: hex HMAC-SHA256 under secret. */
void web_session_token(const char *secret, const char *anon, char out[65]);
/* 1 when token is the session token of anon (constant time). */
int web_session_ok(const char *secret, const char *anon, const char *token);

/* ---- segment.c ----------------------------------------------------------- */

/*
 * web_segment_pack: writes the omnigate envelope (MessagePack) for one
 * Segment call of the given kind ("track", "identify", "page", "screen",
 * "group", "alias"; for a batch item, NULL: its "type" says), received at
 * now_ms. secret (may be NULL) verifies context.omnigate.signature, the
 * site's HMAC-SHA256 of the userId: only then is the user key verified.
 * -1 with the reason in why when the call cannot be mapped (pk may then
 * hold a partial object: discard it).
 */
int web_segment_pack(msgpack_packer *pk, const json_t *call, const char *kind,
                     uint64_t now_ms, const char *secret, char *why,
                     size_t whylen);

/* The same under a key's policy (pol may be NULL: a server key with no
 * scope): messageId scoped by the key's name; for a browser key, a type
 * it may not send is refused (-1, *forbidden set), alias's previousId is
 * no identity key, and an unproven anonymous id is no key of a signed
 * login. */
int web_segment_pack_policy(msgpack_packer *pk, const json_t *call,
                            const char *kind, uint64_t now_ms,
                            web_policy_t *pol, int *forbidden, char *why,
                            size_t whylen);

/* The same as a JSON object (a new reference), for the tests. */
json_t *web_segment_envelope(const json_t *call, const char *kind,
                             uint64_t now_ms, const char *secret, char *why,
                             size_t whylen);

/* The omnigate event type for a Segment track event name ("Order
 * Completed" -> "order.placed"), written into out. */
void web_segment_type(const char *event, char *out, size_t outlen);

/* ---- live.c ------------------------------------------------------------- */

typedef struct web_live_s web_live_t;

/* Answers a request with a JSON body (taken), as the plugin answers. */
typedef void (*web_live_answer_fn)(void *data, og_http_req_t *req,
                                   json_t *body);

/* max_visitors: how many browsers it remembers (the one seen longest ago
 * is forgotten first; none is ever pushed out by another's id). */
web_live_t *web_live_create(og_plugin_ctx_t *ctx, uint64_t wait_ms,
                            uint64_t hold_ms, size_t max_visitors,
                            web_live_answer_fn answer, void *data);
/* The browser with anonymous id anon is customer. */
void web_live_learn(web_live_t *l, const char *anon, const char *customer);
/* The customer the browser anon is known as, or NULL (for the tests). */
const char *web_live_customer(const web_live_t *l, const char *anon);
/* A long-poll of the browser anon: answered with its messages, at once or
 * when one comes, or empty after wait_ms. */
void web_live_poll(web_live_t *l, og_http_req_t *req, const char *anon);
/* Delivers a message event to its customer's waiting browsers (OG_OK),
 * or holds it for one (OG_PENDING). */
og_err_t web_live_send(web_live_t *l, const og_event_t *ev, og_delivery_t *d);
void web_live_stop(web_live_t *l);
void web_live_destroy(web_live_t *l);

/* ---- hooks.c --------------------------------------------------------------- */

typedef struct web_hooks_s web_hooks_t;

/* Outbound webhooks to url, signed with secrets ("whsec_..." separated by
 * spaces or commas: several sign at once, for rotation). NULL with the
 * reason in why when a secret is not valid. */
web_hooks_t *web_hooks_create(og_plugin_ctx_t *ctx, const char *url,
                              const char *secrets, uint64_t timeout_ms,
                              char *why, size_t whylen);
og_err_t web_hooks_send(web_hooks_t *h, const og_event_t *ev, og_delivery_t *d);
void web_hooks_destroy(web_hooks_t *h);

/*
 * web_webhook_signature: the webhook-signature header value for one
 * message ("v1,BASE64" per secret, space separated) into out. Exposed for
 * the unit tests.
 */
og_err_t web_webhook_signature(const char *secrets, const char *msg_id,
                               uint64_t timestamp, const uint8_t *body,
                               size_t len, char *out, size_t outlen);

#endif /* OG_WEB_H */
