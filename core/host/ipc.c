/*
 * ipc.c: length-prefixed MessagePack frames over a stream socket.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event/event.h"
#include "host/ipc.h"
#include "base/util.h"

struct wreq {
    uv_write_t w;
    og__ipc_t *c;
    char *mem;
};

struct og__ipc_s {
    int fd;
    uv_pipe_t pipe;
    int started; /* the loop owns the socket */
    int lost;    /* on_lost called */
    int freed;   /* og__ipc_free() called: no callbacks */
    int in_dispatch;
    size_t max_frame;
    og__ipc_frame_cb on_frame;
    og__ipc_lost_cb on_lost;
    void *data;
    char *rbuf; /* bytes read, not yet a whole frame */
    size_t rlen, rcap;
    size_t writes; /* uv_write requests outstanding (+1 while closing) */
    void (*flushed_cb)(void *);
    void *flushed_data;
    msgpack_unpacked up;
};

og__ipc_t *og__ipc_new(int fd, size_t max_frame, og__ipc_frame_cb on_frame,
                       og__ipc_lost_cb on_lost, void *data)
{
    og__ipc_t *c = og__xcalloc(1, sizeof(*c));

    c->fd = fd;
    c->max_frame = max_frame;
    c->on_frame = on_frame;
    c->on_lost = on_lost;
    c->data = data;
    msgpack_unpacked_init(&c->up);
    return c;
}

static void release(og__ipc_t *c)
{
    msgpack_unpacked_destroy(&c->up);
    free(c->rbuf);
    free(c);
}

static void lose(og__ipc_t *c, const char *why)
{
    if (c->lost)
        return;
    c->lost = 1;
    if (c->started)
        uv_read_stop((uv_stream_t *)&c->pipe);
    if (!c->freed && c->on_lost != NULL)
        c->on_lost(c->data, why);
}

/* Dispatches every whole frame in rbuf; keeps the rest. */
static void drain(og__ipc_t *c)
{
    size_t off = 0;

    c->in_dispatch++;
    while (!c->lost && !c->freed && c->rlen - off >= 4) {
        const unsigned char *h = (const unsigned char *)c->rbuf + off;
        size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) |
                   ((size_t)h[2] << 8) | (size_t)h[3];
        size_t used = 0;
        char why[96];

        if (n > c->max_frame) {
            snprintf(why, sizeof(why), "frame of %zu bytes (limit %zu)", n,
                     c->max_frame);
            lose(c, why);
            break;
        }
        if (c->rlen - off - 4 < n)
            break;
        /* sizes are checked against the bytes first: a few bytes that
         * claim an array of four billion elements allocate nothing */
        if (og__mp_skip((const uint8_t *)c->rbuf + off + 4, n) != n ||
            msgpack_unpack_next(&c->up, c->rbuf + off + 4, n, &used) !=
                MSGPACK_UNPACK_SUCCESS ||
            used != n || c->up.data.type != MSGPACK_OBJECT_ARRAY ||
            c->up.data.via.array.size == 0 ||
            c->up.data.via.array.ptr[0].type !=
                MSGPACK_OBJECT_POSITIVE_INTEGER) {
            lose(c, "a frame that is not a MessagePack array of a kind");
            break;
        }
        off += 4 + n;
        c->on_frame(c->data, &c->up.data.via.array);
    }
    c->in_dispatch--;
    if (off > 0 && off <= c->rlen) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static void grow(og__ipc_t *c, size_t want)
{
    if (c->rcap - c->rlen >= want)
        return;
    while (c->rcap - c->rlen < want)
        c->rcap = c->rcap ? c->rcap * 2 : 16384;
    c->rbuf = og__xrealloc(c->rbuf, c->rcap);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    og__ipc_t *c = h->data;

    (void)suggested;
    grow(c, 16384);
    buf->base = c->rbuf + c->rlen;
    buf->len = c->rcap - c->rlen;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    og__ipc_t *c = st->data;

    (void)buf;
    if (n < 0) {
        lose(c, n == UV_EOF ? "end of stream" : uv_strerror((int)n));
        return;
    }
    c->rlen += (size_t)n;
    drain(c);
}

int og__ipc_start(og__ipc_t *c, uv_loop_t *loop)
{
    int rc;

    if (c->started)
        return 0;
    uv_pipe_init(loop, &c->pipe, 0);
    c->pipe.data = c;
    rc = uv_pipe_open(&c->pipe, c->fd);
    c->started = 1; /* the handle exists: it must be closed */
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc != 0)
        lose(c, uv_strerror(rc));
    else if (c->rlen > 0)
        drain(c); /* frames read during og__ipc_wait() */
    return rc;
}

og_err_t og__ipc_wait(og__ipc_t *c, uint64_t timeout_ms, int (*done)(void *),
                      void *data)
{
    uint64_t deadline = og__now_ms() + timeout_ms;

    while (!c->lost && !done(data)) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        uint64_t now = og__now_ms();
        ssize_t n;
        int r;

        if (now >= deadline)
            return OG_ERR_TIMEOUT;
        r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        grow(c, 16384);
        n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            lose(c, n == 0 ? "end of stream" : strerror(errno));
            break;
        }
        c->rlen += (size_t)n;
        drain(c);
    }
    return c->lost ? OG_ERR_IO : OG_OK;
}

void og__ipc_read_rest(og__ipc_t *c)
{
    while (!c->lost && !c->freed) {
        ssize_t n;

        grow(c, 16384);
        n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EOF, EAGAIN or an error: the loop reports those */
        c->rlen += (size_t)n;
        drain(c);
    }
}

void og__ipc_begin(og__ipc_frame_t *f, unsigned kind, uint32_t n)
{
    msgpack_sbuffer_init(&f->sb);
    msgpack_sbuffer_write(&f->sb, "\0\0\0\0", 4);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&f->pk, n);
    msgpack_pack_unsigned_int(&f->pk, kind);
}

static void write_done(uv_write_t *w, int status)
{
    struct wreq *r = (struct wreq *)w;
    og__ipc_t *c = r->c;

    c->writes--;
    free(r->mem);
    free(r);
    if (status != 0 && !c->freed)
        lose(c, uv_strerror(status));
    if (c->freed) {
        if (c->writes == 0)
            release(c);
        return;
    }
    if (c->writes == 0 && c->flushed_cb != NULL) {
        void (*cb)(void *) = c->flushed_cb;

        c->flushed_cb = NULL;
        cb(c->flushed_data);
    }
}

og_err_t og__ipc_send(og__ipc_t *c, og__ipc_frame_t *f)
{
    size_t len = f->sb.size, n = len - 4;
    char *mem = msgpack_sbuffer_release(&f->sb);
    unsigned char *h = (unsigned char *)mem;

    msgpack_sbuffer_destroy(&f->sb);
    h[0] = (unsigned char)(n >> 24);
    h[1] = (unsigned char)(n >> 16);
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    if (c->lost || c->freed) {
        free(mem);
        return OG_ERR_IO;
    }
    if (!c->started) {
        /* the handshake: a blocking socket, written whole */
        size_t off = 0;

        while (off < len) {
            ssize_t w = write(c->fd, mem + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                free(mem);
                lose(c, strerror(errno));
                return OG_ERR_IO;
            }
            off += (size_t)w;
        }
        free(mem);
        return OG_OK;
    }
    if (c->writes == 0) {
        uv_buf_t b = uv_buf_init(mem, (unsigned)len);
        int w = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);

        if (w == (int)len) {
            free(mem);
            return OG_OK;
        }
        if (w > 0) {
            memmove(mem, mem + w, len - (size_t)w);
            len -= (size_t)w;
        } else if (w != UV_EAGAIN) {
            free(mem);
            lose(c, uv_strerror(w));
            return OG_ERR_IO;
        }
    }
    {
        struct wreq *r = og__xmalloc(sizeof(*r));
        uv_buf_t b = uv_buf_init(mem, (unsigned)len);
        int rc;

        r->c = c;
        r->mem = mem;
        rc = uv_write(&r->w, (uv_stream_t *)&c->pipe, &b, 1, write_done);
        if (rc != 0) {
            free(mem);
            free(r);
            lose(c, uv_strerror(rc));
            return OG_ERR_IO;
        }
        c->writes++;
    }
    return OG_OK;
}

size_t og__ipc_queued(const og__ipc_t *c)
{
    return c->started ? c->pipe.write_queue_size : 0;
}

int og__ipc_flushed(const og__ipc_t *c)
{
    return c->writes == 0;
}

void og__ipc_on_flushed(og__ipc_t *c, void (*cb)(void *), void *data)
{
    if (c->writes == 0 || c->lost) {
        cb(data);
        return;
    }
    c->flushed_cb = cb;
    c->flushed_data = data;
}

static void pipe_closed(uv_handle_t *h)
{
    og__ipc_t *c = h->data;

    if (--c->writes == 0)
        release(c);
}

void og__ipc_free(og__ipc_t *c)
{
    if (c == NULL)
        return;
    c->freed = 1;
    c->flushed_cb = NULL;
    if (c->started) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        /* pending writes are cancelled with the handle; their callbacks
         * run before the close callback */
        c->writes++; /* held until closed */
        uv_close((uv_handle_t *)&c->pipe, pipe_closed);
        return;
    }
    close(c->fd);
    release(c);
}

/* ---- frame elements ------------------------------------------------- */

const char *og__ipc_str(const msgpack_object_array *f, uint32_t i, char *buf,
                        size_t len)
{
    const msgpack_object *o;
    size_t n;

    buf[0] = '\0';
    if (i >= f->size || len == 0)
        return buf;
    o = &f->ptr[i];
    if (o->type != MSGPACK_OBJECT_STR && o->type != MSGPACK_OBJECT_BIN)
        return buf;
    n = o->via.str.size < len - 1 ? o->via.str.size : len - 1;
    if (n > 0)
        memcpy(buf, o->via.str.ptr, n);
    buf[n] = '\0';
    return buf;
}

int64_t og__ipc_int(const msgpack_object_array *f, uint32_t i)
{
    if (i >= f->size)
        return 0;
    if (f->ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return f->ptr[i].via.u64 > INT64_MAX ? INT64_MAX
                                             : (int64_t)f->ptr[i].via.u64;
    if (f->ptr[i].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return f->ptr[i].via.i64;
    if (f->ptr[i].type == MSGPACK_OBJECT_BOOLEAN)
        return f->ptr[i].via.boolean ? 1 : 0;
    return 0;
}

const uint8_t *og__ipc_bin(const msgpack_object_array *f, uint32_t i,
                           size_t *len)
{
    const msgpack_object *o;

    *len = 0;
    if (i >= f->size)
        return NULL;
    o = &f->ptr[i];
    if (o->type == MSGPACK_OBJECT_BIN) {
        *len = o->via.bin.size;
        return (const uint8_t *)o->via.bin.ptr;
    }
    if (o->type == MSGPACK_OBJECT_STR) {
        *len = o->via.str.size;
        return (const uint8_t *)o->via.str.ptr;
    }
    return NULL;
}

void og__ipc_pack_str(msgpack_packer *pk, const char *s)
{
    if (s == NULL)
        msgpack_pack_nil(pk);
    else
        og__pack_cstr(pk, s);
}
