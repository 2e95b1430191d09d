/*
 * crashy.c: a destination that misbehaves on purpose, for the tests of
 * isolation = process (issue 16): on its crash_at-th delivery of a process
 * it dereferences NULL, on its hang_at-th it spins forever, on its
 * abort_at-th it calls abort(), and every delivery leaks leak_kb KiB
 * (touched, so that it is resident). Deliveries it takes are appended to
 * the file out, one event id per line, before it answers OG_OK. Built with
 * the public SDK only, like any plugin.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omnigate/sdk.h>

struct crashy {
    og_plugin_ctx_t *ctx;
    int64_t crash_at, hang_at, abort_at, leak_kb, n;
    const char *out;
};

static const og_config_field_t config[] = {
    {"out",
     OG_CFG_STRING,
     NULL,
     1,
     "file the delivered ids go to",
     0,
     0,
     {NULL, NULL}},
    {"crash_at",
     OG_CFG_INT,
     "0",
     0,
     "segfault on this delivery (0: never)",
     0,
     1000000000,
     {NULL, NULL}},
    {"hang_at",
     OG_CFG_INT,
     "0",
     0,
     "spin forever on this delivery",
     0,
     1000000000,
     {NULL, NULL}},
    {"abort_at",
     OG_CFG_INT,
     "0",
     0,
     "abort() on this delivery",
     0,
     1000000000,
     {NULL, NULL}},
    {"leak_kb",
     OG_CFG_INT,
     "0",
     0,
     "KiB leaked by every delivery",
     0,
     1048576,
     {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

static og_err_t crashy_init(og_plugin_ctx_t *ctx, void **state)
{
    struct crashy *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return OG_ERR_NOMEM;
    c->ctx = ctx;
    og_config_get_str(ctx, "out", &c->out);
    og_config_get_int(ctx, "crash_at", &c->crash_at);
    og_config_get_int(ctx, "hang_at", &c->hang_at);
    og_config_get_int(ctx, "abort_at", &c->abort_at);
    og_config_get_int(ctx, "leak_kb", &c->leak_kb);
    *state = c;
    return OG_OK;
}

static og_err_t crashy_send(void *state, const og_event_t *ev, og_delivery_t *d)
{
    struct crashy *c = state;
    const char *id = og_event_id(ev);
    size_t n = strlen(id);
    char line[128];
    int fd;

    (void)d;
    c->n++;
    if (c->crash_at > 0 && c->n == c->crash_at) {
        volatile int *nowhere = NULL;
        *nowhere = 1; /* SIGSEGV */
    }
    if (c->hang_at > 0 && c->n == c->hang_at)
        for (;;)
            pause();
    if (c->abort_at > 0 && c->n == c->abort_at)
        abort();
    if (c->leak_kb > 0) {
        char *leak = malloc((size_t)c->leak_kb * 1024);

        if (leak != NULL)
            memset(leak, 0x5a, (size_t)c->leak_kb * 1024); /* never freed */
    }
    if (n + 2 > sizeof(line))
        return OG_ERR_REJECTED;
    memcpy(line, id, n);
    line[n] = '\n';
    fd = open(c->out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return OG_ERR_RETRY;
    if (write(fd, line, n + 1) != (ssize_t)(n + 1)) {
        close(fd);
        return OG_ERR_RETRY;
    }
    close(fd);
    og_counter_add(c->ctx, "taken", 1);
    return OG_OK;
}

static void crashy_destroy(void *state)
{
    free(state);
}

static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,
    .name = "crashy",
    .version = "0.1.0",
    .description = "crashes, hangs, aborts or leaks on purpose (tests)",
    .caps = OG_CAP_EGRESS,
    .config = config,
    .init = crashy_init,
    .send = crashy_send,
    .destroy = crashy_destroy,
};

OG_PLUGIN_DEFINE(&def)
