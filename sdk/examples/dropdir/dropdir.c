/*
 * dropdir.c: an example omnigate channel plugin, built only against the
 * public SDK (`pkg-config --cflags --libs omnigate-sdk`).
 *
 * Many shop systems (POS back offices, ERPs) exchange files through a
 * directory. This channel is both ends of such an exchange:
 *
 *   ingress  every poll_interval it reads inbox/ *.msgpack files (one complete
 *            event envelope each) and *.evt files (text: first line the
 *            event type, then "path = value" lines, built with the SDK's
 *            event builder). A file is removed only once its event is
 *            durably accepted (og_emit_async(): the callback comes after
 *            the commit), so a crash at any moment loses nothing: the
 *            file is read again and its event is a duplicate. When the
 *            gateway is busy it stays for the next poll; an invalid file,
 *            or one whose id was accepted before with other content, is
 *            renamed to *.rejected.
 *   egress   every delivered event is written to outbox/ as
 *            <seq>-<event id>.msgpack, through a temporary file and
 *            rename(), so readers never see half a file.
 *
 * Blocking file I/O on the loop thread is acceptable here because files are
 * small and local; a plugin doing heavier I/O would use uv_queue_work().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <omnigate/sdk.h>

#define MAX_FILE (1024 * 1024)
#define MAX_PENDING 256 /* files being accepted at once */

struct dropdir;

/* A file whose event is being accepted: it stays until the callback. */
struct pending {
    struct dropdir *d;
    struct pending *next;
    char path[4096];
};

struct dropdir {
    og_plugin_ctx_t *ctx;
    const char *inbox;  /* owned by the host config, NULL: no ingress */
    const char *outbox; /* NULL: no egress */
    uint64_t interval_ms;
    og_timer_t *poll;
    uint64_t seq; /* events written to outbox by this instance */
    struct pending *pending;
    size_t npending;
};

static const og_config_field_t config[] = {
    {"inbox",
     OG_CFG_STRING,
     NULL,
     0,
     "directory polled for *.msgpack and *.evt files",
     0,
     0,
     {0, 0}},
    {"outbox",
     OG_CFG_STRING,
     NULL,
     0,
     "directory delivered events are written to",
     0,
     0,
     {0, 0}},
    {"poll_interval",
     OG_CFG_DURATION,
     "200ms",
     0,
     "how often the inbox is read",
     10,
     3600000,
     {0, 0}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {0, 0}},
};

static int is_dir(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static og_err_t dropdir_init(og_plugin_ctx_t *ctx, void **state)
{
    struct dropdir *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return OG_ERR_NOMEM;
    d->ctx = ctx;
    if (og_config_get_str(ctx, "inbox", &d->inbox) != OG_OK)
        d->inbox = NULL;
    if (og_config_get_str(ctx, "outbox", &d->outbox) != OG_OK)
        d->outbox = NULL;
    og_config_get_duration_ms(ctx, "poll_interval", &d->interval_ms);
    if (d->inbox == NULL && d->outbox == NULL) {
        og_log(ctx, OG_LOG_ERROR, "set inbox, outbox or both");
        free(d);
        return OG_ERR_CONFIG;
    }
    if ((d->inbox && !is_dir(d->inbox)) || (d->outbox && !is_dir(d->outbox))) {
        og_log(ctx, OG_LOG_ERROR, "%s is not a directory",
               d->inbox && !is_dir(d->inbox) ? d->inbox : d->outbox);
        free(d);
        return OG_ERR_CONFIG;
    }
    *state = d;
    return OG_OK;
}

/* Reads a whole small file; the caller frees *buf. */
static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long n;

    if (f == NULL)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > MAX_FILE ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return -1;
    }
    *buf = malloc((size_t)n + 1);
    if (*buf == NULL || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        free(*buf);
        fclose(f);
        return -1;
    }
    (*buf)[n] = '\0';
    *len = (size_t)n;
    fclose(f);
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

/* Builds and emits the event described by a .evt text file. */
static og_err_t emit_text(struct dropdir *d, char *text, og_emit_cb cb,
                          void *data)
{
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    og_event_builder_t *b;

    if (line == NULL)
        return OG_ERR_INVALID;
    b = og_event_builder_create(d->ctx, trim(line));
    if (b == NULL)
        return OG_ERR_INVALID;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        char *eq = strchr(line, '='), *key, *val;
        og_err_t rc;

        if (*trim(line) == '\0' || *trim(line) == '#')
            continue;
        if (eq == NULL) {
            og_event_builder_destroy(b);
            return OG_ERR_INVALID;
        }
        *eq = '\0';
        key = trim(line);
        val = trim(eq + 1);
        if (strncmp(key, "id.", 3) == 0)
            rc = og_event_builder_add_identity(b, key + 3, val, 0);
        else
            rc = og_event_builder_set_str(b, key, val);
        if (rc != OG_OK) {
            og_event_builder_destroy(b);
            return rc;
        }
    }
    return og_event_builder_emit_async(b, cb, data);
}

static void forget(struct pending *p)
{
    struct pending **pp;

    for (pp = &p->d->pending; *pp != NULL; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    p->d->npending--;
    free(p);
}

static void reject(struct dropdir *d, const char *path, og_err_t rc)
{
    char bad[4200];
    const char *base = strrchr(path, '/');

    snprintf(bad, sizeof(bad), "%s.rejected", path);
    rename(path, bad);
    og_counter_add(d->ctx, "files_rejected", 1);
    og_log(d->ctx, OG_LOG_WARNING, "%s rejected: %s", base ? base + 1 : path,
           og_strerror(rc));
}

/* The event of a file is durably accepted (or refused): only now may the
 * file go. */
static void accepted(void *data, og_err_t result, const char *event_id)
{
    struct pending *p = data;

    (void)event_id;
    if (result == OG_OK) {
        unlink(p->path);
        og_counter_add(p->d->ctx, "files_in", 1);
    } else if (result == OG_ERR_CONFLICT) {
        reject(p->d, p->path, result);
    } /* else busy, a full store, stopping: read again at the next poll */
    forget(p);
}

static int is_pending(const struct dropdir *d, const char *path)
{
    const struct pending *p;

    for (p = d->pending; p != NULL; p = p->next)
        if (strcmp(p->path, path) == 0)
            return 1;
    return 0;
}

static void poll_inbox(og_timer_t *t, void *data)
{
    struct dropdir *d = data;
    DIR *dir = opendir(d->inbox);
    struct dirent *de;

    (void)t;
    if (dir == NULL) {
        og_log(d->ctx, OG_LOG_WARNING, "cannot read %s: %s", d->inbox,
               strerror(errno));
        return;
    }
    while ((de = readdir(dir)) != NULL && d->npending < MAX_PENDING) {
        size_t n = strlen(de->d_name);
        int is_mp = n > 8 && strcmp(de->d_name + n - 8, ".msgpack") == 0;
        int is_evt = n > 4 && strcmp(de->d_name + n - 4, ".evt") == 0;
        struct pending *p;
        uint8_t *buf;
        size_t len;
        og_err_t rc;

        if (de->d_name[0] == '.' || (!is_mp && !is_evt))
            continue;
        if ((p = calloc(1, sizeof(*p))) == NULL)
            break;
        p->d = d;
        snprintf(p->path, sizeof(p->path), "%s/%s", d->inbox, de->d_name);
        if (is_pending(d, p->path) || read_file(p->path, &buf, &len) != 0) {
            free(p); /* already on its way, or unreadable now */
            continue;
        }
        p->next = d->pending;
        d->pending = p;
        d->npending++;
        rc = is_mp ? og_emit_async(d->ctx, buf, len, accepted, p)
                   : emit_text(d, (char *)buf, accepted, p);
        free(buf);
        if (rc == OG_OK)
            continue; /* accepted() decides */
        if (rc != OG_ERR_BUSY && rc != OG_ERR_STOPPING)
            reject(d, p->path, rc);
        forget(p); /* a call that fails never calls back */
        if (rc == OG_ERR_BUSY || rc == OG_ERR_STOPPING)
            break; /* keep the file; try again at the next poll */
    }
    closedir(dir);
}

static og_err_t dropdir_start(void *state)
{
    struct dropdir *d = state;

    if (d->inbox != NULL) {
        d->poll = og_timer_start(d->ctx, 0, d->interval_ms, poll_inbox, d);
        if (d->poll == NULL)
            return OG_ERR_NOMEM;
    }
    og_log(d->ctx, OG_LOG_INFO, "watching %s, writing %s",
           d->inbox ? d->inbox : "-", d->outbox ? d->outbox : "-");
    return OG_OK;
}

static og_err_t dropdir_send(void *state, const og_event_t *ev,
                             og_delivery_t *delivery)
{
    struct dropdir *d = state;
    char tmp[4096], dst[4096];
    const uint8_t *bytes;
    size_t len;
    int fd;

    (void)delivery;
    if (d->outbox == NULL)
        return OG_ERR_REJECTED; /* ingress-only instance */
    bytes = og_event_data(ev, &len);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", d->outbox, og_event_id(ev));
    snprintf(dst, sizeof(dst), "%s/%06llu-%s.msgpack", d->outbox,
             (unsigned long long)(d->seq + 1), og_event_id(ev));
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return OG_ERR_RETRY;
    if (write(fd, bytes, len) != (ssize_t)len || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return OG_ERR_RETRY;
    }
    close(fd);
    if (rename(tmp, dst) != 0) {
        unlink(tmp);
        return OG_ERR_RETRY;
    }
    d->seq++;
    og_counter_add(d->ctx, "files_out", 1);
    return OG_OK;
}

static og_err_t dropdir_stop(void *state)
{
    struct dropdir *d = state;

    og_timer_stop(d->poll);
    d->poll = NULL;
    return OG_OK;
}

static void dropdir_destroy(void *state)
{
    struct dropdir *d = state;

    while (d->pending != NULL) /* callbacks that never came (shutdown) */
        forget(d->pending);
    free(d);
}

static const og_plugin_def_t dropdir_def = {
    OG_PLUGIN_DEF_INIT,
    .name = "dropdir",
    .version = "1.0.0",
    .description = "events in and out through a directory of files",
    .caps = OG_CAP_INGRESS | OG_CAP_EGRESS,
    .config = config,
    .init = dropdir_init,
    .start = dropdir_start,
    .send = dropdir_send,
    .stop = dropdir_stop,
    .destroy = dropdir_destroy,
};

OG_PLUGIN_DEFINE(&dropdir_def)
