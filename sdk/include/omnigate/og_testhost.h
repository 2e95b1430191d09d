/*
 * og_testhost.h: run a plugin in a unit test without the daemon.
 *
 * The test host loads a plugin .so exactly as omnigated does (same checks,
 * same host table, same timers and HTTP client on a private libuv loop) but
 * records what the plugin emits and logs instead of routing it. Link a
 * CUnit (or any) test with `pkg-config --cflags --libs omnigate-testhost`.
 *
 * Not part of the plugin ABI: this is a test library linked statically
 * into test programs. All functions run on the calling thread, which owns
 * the loop.
 */
#ifndef OMNIGATE_OG_TESTHOST_H
#define OMNIGATE_OG_TESTHOST_H

#include <omnigate/og_errors.h>
#include <omnigate/og_types.h>

OG_BEGIN_DECLS

typedef struct og_testhost_s og_testhost_t;

/* og_testhost_create: a test host with its own loop, or NULL when out of
 * memory. */
og_testhost_t *og_testhost_create(void);

/*
 * og_testhost_load: load the plugin at path as instance name, with
 * config (NULL-terminated "key=value" strings for its [config] section,
 * may be NULL), validate the config against the plugin's table, init() and
 * start() it. On failure returns an error and, when errbuf is given, the
 * same message the daemon would log (OG_ERRBUF_SIZE bytes). One plugin per
 * test host.
 */
og_err_t og_testhost_load(og_testhost_t *th, const char *path, const char *name,
                          const char *const *config, char *errbuf);

/* og_testhost_run: run the loop for timeout_ms (timers, HTTP). */
void og_testhost_run(og_testhost_t *th, uint64_t timeout_ms);

/* og_testhost_run_until: run the loop until pred(data) is true or
 * timeout_ms passed; returns pred's last value. */
int og_testhost_run_until(og_testhost_t *th, int (*pred)(void *data),
                          void *data, uint64_t timeout_ms);

/* og_testhost_emitted_count: events the plugin emitted and the host
 * accepted so far. */
size_t og_testhost_emitted_count(const og_testhost_t *th);
/* og_testhost_emitted: the i-th accepted event's envelope (core fields
 * stamped). Owned by th. */
const uint8_t *og_testhost_emitted(const og_testhost_t *th, size_t i,
                                   size_t *len);
/* og_testhost_emitted_type: its type, or NULL when i is out of range.
 * Owned by th. */
const char *og_testhost_emitted_type(const og_testhost_t *th, size_t i);
/* og_testhost_emitted_get_str: copy the string at dotted path of the i-th
 * event into buf (NUL terminated, truncated to size). */
og_err_t og_testhost_emitted_get_str(const og_testhost_t *th, size_t i,
                                     const char *path, char *buf, size_t size);
/* og_testhost_refused_count: emits the host refused (invalid envelopes). */
size_t og_testhost_refused_count(const og_testhost_t *th);

/* og_testhost_set_busy: make the next n emits answer OG_ERR_BUSY, to test
 * back-pressure. */
void og_testhost_set_busy(og_testhost_t *th, size_t n);

/*
 * og_testhost_deliver: hand an envelope (MessagePack bytes, validated like
 * an emitted event) to the plugin's send(). When send() returns OG_PENDING
 * the loop runs until og_delivery_complete() or timeout_ms. Returns the
 * delivery result (OG_OK, OG_ERR_RETRY, OG_ERR_REJECTED, OG_ERR_TIMEOUT
 * when still pending) or an error about the envelope.
 */
og_err_t og_testhost_deliver(og_testhost_t *th, const uint8_t *msgpack,
                             size_t len, uint64_t timeout_ms);

/* og_testhost_http_port: the port of the test host's public listener on
 * 127.0.0.1, where routes the plugin mounts with og_http_mount() are
 * served. Drive it with any HTTP client from another thread (or process)
 * while this thread runs the loop with og_testhost_run_until(). */
int og_testhost_http_port(const og_testhost_t *th);

/* og_testhost_log_count: log lines containing needle (all levels). */
size_t og_testhost_log_count(const og_testhost_t *th, const char *needle);

/* og_testhost_metric: current value of the plugin's counter or gauge name
 * (0 if never set). */
int64_t og_testhost_metric(const og_testhost_t *th, const char *name);

/* og_testhost_stop: stop the plugin (stop(), waiting up to timeout_ms) and
 * destroy it. */
og_err_t og_testhost_stop(og_testhost_t *th, uint64_t timeout_ms);

/*
 * og_testhost_destroy: stop the plugin if still running, close the loop
 * and free everything. Returns 0 when the loop closed clean (every handle
 * the plugin opened was closed), or libuv's UV_EBUSY otherwise.
 */
int og_testhost_destroy(og_testhost_t *th);

OG_END_DECLS

#endif /* OMNIGATE_OG_TESTHOST_H */
