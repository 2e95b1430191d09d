/*
 * fuzz_ipc: the bytes an isolated plugin's host process sends the daemon
 * (core/host/ipc.c, docs/isolation.md): a crashed or compromised plugin may
 * write anything on its socket. Frames are cut and checked, and each
 * element read with the accessors the daemon uses; the channel must end
 * lost (end of stream or the bad frame named), never crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_frame(void *data, const msgpack_object_array *f)
{
    char buf[64];
    size_t len;
    uint32_t i;

    (void)data;
    for (i = 0; i < f->size + 1; i++) {
        og__ipc_str(f, i, buf, sizeof(buf));
        (void)og__ipc_int(f, i);
        (void)og__ipc_bin(f, i, &len);
    }
}

static void on_lost(void *data, const char *why)
{
    *(int *)data = why != NULL && why[0] != '\0';
}

static int never(void *data)
{
    (void)data;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2], lost = 0, big = 1 << 20;
    og__ipc_t *c;

    if (size > 200000 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    if (write(sv[1], data, size) != (ssize_t)size) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    close(sv[1]);
    c = og__ipc_new(sv[0], 65536, on_frame, on_lost, &lost);
    if (og__ipc_wait(c, 5000, never, NULL) != OG_ERR_IO || !lost)
        abort(); /* the end of the bytes always ends the channel */
    og__ipc_free(c);
    return 0;
}
