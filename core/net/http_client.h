/*
 * http_client.h: one libcurl multi handle driven by the libuv loop
 * (curl_multi_socket_action), shared by every channel instance.
 */
#ifndef OG_CORE_HTTP_CLIENT_H
#define OG_CORE_HTTP_CLIENT_H

#include <uv.h>

#include <omnigate/og_types.h>

typedef struct og__http_s og__http_t;

/* The client starts libcurl on its first request; this releases libcurl's
 * global state at process exit if it was started. */
void og__http_global_cleanup(void);

og__http_t *og__http_create(uv_loop_t *loop);
/*
 * og__http_request: start req on behalf of owner (a channel instance, used
 * for cancellation). cb runs exactly once iff OG_OK is returned.
 */
og_err_t og__http_request(og__http_t *h, void *owner,
                          const og_http_request_t *req, og_http_cb cb,
                          void *data);
/* og__http_run_easy: run easy, a transfer set up by a plugin (og_curl_run
 * in the SDK), on the multi handle; cb runs exactly once iff OG_OK is
 * returned, with the handle still the caller's. */
og_err_t og__http_run_easy(og__http_t *h, void *owner, void *easy,
                           og_curl_cb cb, void *data);
/* Completes every request of owner with OG_ERR_CANCELLED, synchronously. */
void og__http_cancel_owner(og__http_t *h, void *owner);
/* Number of requests in flight (for owner, or all when owner is NULL). */
size_t og__http_inflight(og__http_t *h, void *owner);
/* Cancels everything and closes the handles; memory is released once the
 * loop has run the close callbacks. */
void og__http_destroy(og__http_t *h);

#endif /* OG_CORE_HTTP_CLIENT_H */
