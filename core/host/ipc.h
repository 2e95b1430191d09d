/*
 * ipc.h: MessagePack frames over a stream socket, between the daemon and
 * an isolated plugin's host process (docs/isolation.md).
 *
 * A frame is a 4-byte big-endian length and that many bytes of one
 * MessagePack array whose first element is the frame's kind (an unsigned
 * integer). Frames longer than the bound given at creation, or that are
 * not such an array, close the channel with the reason.
 *
 * Reading runs either from the loop (og__ipc_start()) or, before that,
 * blocking with a deadline (og__ipc_wait()), so that a synchronous
 * handshake and the loop share one frame parser. Loop thread only.
 */
#ifndef OG_CORE_IPC_H
#define OG_CORE_IPC_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include <omnigate/og_errors.h>

typedef struct og__ipc_s og__ipc_t;

/* Frame kinds between the daemon (D) and a plugin host process (H); the
 * elements that follow the kind are in docs/isolation.md. */
enum og__ipc_kind {
    OG__F_HELLO = 1,  /* D->H: the plugin, its channel and limits */
    OG__F_START,      /* D->H */
    OG__F_SEND,       /* D->H: token, event envelope */
    OG__F_STOP,       /* D->H */
    OG__F_PING,       /* D->H: sequence number */
    OG__F_EMITTED,    /* D->H: token, result, event id */
    OG__F_BATCHED,    /* D->H: token, [[result, id, customer]...] */
    OG__F_HTTP_REQ,   /* D->H: token, method, path, query, headers, body */
    OG__F_READY = 20, /* H->D: init()'s result, reason */
    OG__F_STARTED,    /* H->D: start()'s result, reason */
    OG__F_DONE,       /* H->D: token, result, reason, retry after (ms) */
    OG__F_STOPPED,    /* H->D: stopped, nothing in flight */
    OG__F_PONG,       /* H->D: the ping's sequence number */
    OG__F_EMIT,       /* H->D: token (0: no answer), flags, envelope */
    OG__F_BATCH,      /* H->D: token, [[flags, envelope]...] */
    OG__F_METRIC,     /* H->D: name, gauge?, delta or value */
    OG__F_MOUNT,      /* H->D: method, path, max body */
    OG__F_HTTP_RESP   /* H->D: token, status, type, headers, body */
};

/* One frame: an array of at least one element; valid during the call. */
typedef void (*og__ipc_frame_cb)(void *data, const msgpack_object_array *f);
/* The other side is gone (EOF, an error, a bad frame): why says which.
 * Called once; og__ipc_free() is still the owner's to call. */
typedef void (*og__ipc_lost_cb)(void *data, const char *why);

/* Takes fd over (closed by og__ipc_free()). */
og__ipc_t *og__ipc_new(int fd, size_t max_frame, og__ipc_frame_cb on_frame,
                       og__ipc_lost_cb on_lost, void *data);
/* From now on frames are read and written by the loop. */
int og__ipc_start(og__ipc_t *c, uv_loop_t *loop);
/*
 * Blocks reading frames (dispatched as from the loop) until done(data) is
 * true, the channel is lost or timeout_ms passed. Only before
 * og__ipc_start(). Returns OG_OK, OG_ERR_TIMEOUT or OG_ERR_IO (lost).
 */
og_err_t og__ipc_wait(og__ipc_t *c, uint64_t timeout_ms, int (*done)(void *),
                      void *data);

/* Reads and dispatches at once what the socket holds (the last frames of
 * a process that died: its exit can be seen before its socket is read).
 * Never from inside c's own callbacks. */
void og__ipc_read_rest(og__ipc_t *c);

/* A frame being written: og__ipc_begin(), msgpack_pack_*() on pk, then
 * og__ipc_send(). */
typedef struct og__ipc_frame_s {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} og__ipc_frame_t;

/* Starts a frame of kind with n elements in all (kind included). */
void og__ipc_begin(og__ipc_frame_t *f, unsigned kind, uint32_t n);
/* Sends the frame (queued when the socket is full) and resets f. Returns
 * OG_OK or OG_ERR_IO when the channel is lost. */
og_err_t og__ipc_send(og__ipc_t *c, og__ipc_frame_t *f);
/* Bytes written but not yet taken by the kernel. */
size_t og__ipc_queued(const og__ipc_t *c);
/* True once every queued byte was taken by the kernel. */
int og__ipc_flushed(const og__ipc_t *c);
/* Calls cb(data) once the queue is empty (at once when it is). */
void og__ipc_on_flushed(og__ipc_t *c, void (*cb)(void *), void *data);

/* Stops reading and releases c once libuv is done with its handle; no
 * callback runs after this returns. Never from inside c's own
 * callbacks. */
void og__ipc_free(og__ipc_t *c);

/* Accessors for frame elements: the string (NUL-terminated copy into
 * buf, "" when not a string or nil), integers (0 when not one), binary or
 * string bytes (NULL when neither). */
const char *og__ipc_str(const msgpack_object_array *f, uint32_t i, char *buf,
                        size_t len);
int64_t og__ipc_int(const msgpack_object_array *f, uint32_t i);
const uint8_t *og__ipc_bin(const msgpack_object_array *f, uint32_t i,
                           size_t *len);
/* Packs s, or nil when NULL. */
void og__ipc_pack_str(msgpack_packer *pk, const char *s);

#endif /* OG_CORE_IPC_H */
