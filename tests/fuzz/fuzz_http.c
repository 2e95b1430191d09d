/*
 * fuzz_http: bytes from anyone who reaches the public listener, through
 * the core's real HTTP server (core/net/http_server.c on libhttp-parser) on a
 * unix socket: request line, headers, chunked and sized bodies,
 * pipelining, then the client's end of stream. A handler answers each
 * request it is given, so responses and pipelining run too.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "net/http_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static og__http_server_t *srv;
static char path[108];

static void answer(void *data, og__http_req_t *r)
{
    size_t len;
    const uint8_t *body = og__http_req_body(r, &len);
    const char *h = og__http_req_header(r, "Content-Type");

    (void)data;
    (void)body;
    (void)h;
    (void)og__http_req_query(r);
    og__http_respond(r, len > 0 ? 202 : 200, "text/plain", NULL, "ok", 2);
}

static void setup(void)
{
    og__http_limits_t lim;
    char addr[120], err[200];

    og__http_limits_default(&lim);
    lim.max_body_bytes = 8192;
    lim.max_header_bytes = 4096;
    uv_loop_init(&loop);
    srv = og__http_server_create(&loop, "fuzz", &lim);
    snprintf(path, sizeof(path), "/tmp/og-fuzz-http.%d.sock", (int)getpid());
    snprintf(addr, sizeof(addr), "unix:%s", path);
    if (og__http_server_listen(srv, addr, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    og__http_server_mount(srv, NULL, "/*", 0, answer, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_un sa;
    char buf[4096];
    size_t off = 0;
    int fd, i, done = 0;

    if (srv == NULL)
        setup();
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        abort();
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        abort();
    /* send what fits while the server runs, then close the sending side;
     * read until the server closes (or gives up on this input) */
    for (i = 0; i < 20000 && !done; i++) {
        ssize_t n;

        if (off < size) {
            n = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            if (off == size)
                shutdown(fd, SHUT_WR);
        } else if (size == 0 && i == 0) {
            shutdown(fd, SHUT_WR);
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            done = off == size;
    }
    close(fd);
    uv_run(&loop, UV_RUN_NOWAIT); /* the server sees the close */
    return 0;
}
