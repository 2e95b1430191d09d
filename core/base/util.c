/*
 * util.c: typed value parsing and small helpers.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "base/util.h"

static void oom(void)
{
    fputs("omnigated: out of memory\n", stderr);
    abort();
}

void *og__xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

void *og__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

void *og__xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom();
    return q;
}

char *og__xstrdup(const char *s)
{
    return og__xstrndup(s, strlen(s));
}

char *og__xstrndup(const char *s, size_t n)
{
    char *p = og__xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *og__xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    return s;
}

og_err_t og__parse_bool(const char *s, int *out, char *why, size_t whylen)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    size_t i;

    for (i = 0; i < OG__ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return OG_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return OG_OK;
        }
    }
    snprintf(why, whylen,
             "expected a boolean (yes/no, true/false, on/off, 1/0)");
    return OG_ERR_INVALID;
}

og_err_t og__parse_int(const char *s, int64_t *out, char *why, size_t whylen)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)*s)) {
        snprintf(why, whylen, "expected an integer");
        return OG_ERR_INVALID;
    }
    if (errno == ERANGE) {
        snprintf(why, whylen, "integer out of range");
        return OG_ERR_RANGE;
    }
    *out = v;
    return OG_OK;
}

/* Parses "<digits><unit>" where unit is looked up in a table. */
static og_err_t parse_scaled(const char *s, const char *const *units,
                             const uint64_t *mult, size_t nunits, uint64_t bare,
                             uint64_t *out, const char *what, char *why,
                             size_t whylen)
{
    const char *p = s;
    uint64_t v = 0;
    size_t i;

    if (!isdigit((unsigned char)*p)) {
        snprintf(why, whylen, "expected a %s such as %s", what,
                 bare == 1000 ? "30s or 250ms" : "64k or 10M");
        return OG_ERR_INVALID;
    }
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            snprintf(why, whylen, "%s out of range", what);
            return OG_ERR_RANGE;
        }
        v = v * 10 + d;
        p++;
    }
    while (*p == ' ')
        p++;
    if (*p == '\0') {
        if (v > UINT64_MAX / bare)
            goto range;
        *out = v * bare;
        return OG_OK;
    }
    for (i = 0; i < nunits; i++) {
        if (strcasecmp(p, units[i]) == 0) {
            if (mult[i] != 0 && v > UINT64_MAX / mult[i])
                goto range;
            *out = v * mult[i];
            return OG_OK;
        }
    }
    snprintf(why, whylen, "unknown %s unit '%s'", what, p);
    return OG_ERR_INVALID;
range:
    snprintf(why, whylen, "%s out of range", what);
    return OG_ERR_RANGE;
}

og_err_t og__parse_duration_ms(const char *s, uint64_t *out, char *why,
                               size_t whylen)
{
    static const char *const units[] = {"ms", "s", "sec", "m", "min", "h", "d"};
    static const uint64_t mult[] = {1,     1000,    1000,    60000,
                                    60000, 3600000, 86400000};

    return parse_scaled(s, units, mult, OG__ARRAY_SIZE(units), 1000, out,
                        "duration", why, whylen);
}

og_err_t og__parse_size(const char *s, uint64_t *out, char *why, size_t whylen)
{
    static const char *const units[] = {"b",  "k",   "kb", "kib", "m",
                                        "mb", "mib", "g",  "gb",  "gib"};
    static const uint64_t mult[] = {
        1,          1ull << 10, 1ull << 10, 1ull << 10, 1ull << 20,
        1ull << 20, 1ull << 20, 1ull << 30, 1ull << 30, 1ull << 30};

    return parse_scaled(s, units, mult, OG__ARRAY_SIZE(units), 1, out, "size",
                        why, whylen);
}

char **og__split_list(const char *s, size_t *count)
{
    char **v = og__xcalloc(1, sizeof(*v));
    size_t n = 0;
    const char *p = s;

    while (*p != '\0') {
        const char *start;

        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        start = p;
        while (*p != '\0' && *p != ',' && !isspace((unsigned char)*p))
            p++;
        v = og__xrealloc(v, (n + 2) * sizeof(*v));
        v[n++] = og__xstrndup(start, (size_t)(p - start));
        v[n] = NULL;
    }
    if (count != NULL)
        *count = n;
    return v;
}

void og__strv_free(char **v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

int og__is_ident(const char *s, int dots)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || (dots && *s == '.')))
            return 0;
    }
    return 1;
}

int og__is_ident_glob(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.' || *s == '*' || *s == '?'))
            return 0;
    }
    return 1;
}

int og__mem_append(char **p, size_t *len, const void *data, size_t n)
{
    char *q = realloc(*p, *len + n + 1);

    if (q == NULL)
        return -1;
    if (n > 0)
        memcpy(q + *len, data, n);
    *len += n;
    q[*len] = '\0';
    *p = q;
    return 0;
}

void og__sbuf_printf(og__sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = b->cap - b->n;

        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p != NULL && (size_t)n < room) {
            b->n += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = og__xrealloc(b->p, b->cap);
    }
}

void og__sbuf_free(og__sbuf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

uint64_t og__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct {
    pthread_once_t once;
    char name[64];
    unsigned long at;
    atomic_ulong hits;
} crash = {PTHREAD_ONCE_INIT, "", 1, 0};

static void crash_init(void)
{
    const char *v = getenv("OMNIGATE_CRASHPOINT");
    const char *colon;

    if (v == NULL || *v == '\0')
        return;
    colon = strchr(v, ':');
    snprintf(crash.name, sizeof(crash.name), "%.*s",
             (int)(colon ? (size_t)(colon - v) : strlen(v)), v);
    if (colon != NULL)
        crash.at = strtoul(colon + 1, NULL, 10);
    if (crash.at == 0)
        crash.at = 1;
}

void og__crashpoint(const char *name)
{
    pthread_once(&crash.once, crash_init);
    if (crash.name[0] == '\0' || strcmp(crash.name, name) != 0)
        return;
    if (atomic_fetch_add(&crash.hits, 1) + 1 == crash.at) {
        fprintf(stderr, "crash point %s reached: SIGKILL\n", name);
        fflush(stderr);
        raise(SIGKILL);
    }
}

int og__module_load(const char *env, const char *dflt, const char *what,
                    const char *const *names, void **fns, size_t n, char *err,
                    size_t errlen)
{
    const char *path = getenv(env);
    void *h;
    size_t i;

    if (path == NULL || path[0] == '\0')
        path = dflt;
    for (i = 0; i < n; i++)
        fns[i] = NULL;
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(err, errlen, "%s cannot be handled: %s", what, dlerror());
        return -1;
    }
    for (i = 0; i < n; i++) {
        fns[i] = dlsym(h, names[i]);
        if (fns[i] == NULL) {
            snprintf(err, errlen, "%s cannot be handled: %s lacks %s", what,
                     path, names[i]);
            for (i = 0; i < n; i++)
                fns[i] = NULL;
            return -1;
        }
    }
    /* The handle stays open for the life of the process. */
    return 0;
}

int og__is_placeholder(const char *value)
{
    static const char *const marks[] = {"change-me",  "changeme", "change_me",
                                        "replace-me", "xxxxxxxx", NULL};
    size_t i;

    for (i = 0; marks[i] != NULL; i++)
        if (strcasestr(value, marks[i]) != NULL)
            return 1;
    return 0;
}

int og__file_check(const char *path, int secret, char *why, size_t whylen)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, whylen,
                 "refusing a file writable by group or others (mode %04o): "
                 "run chmod go-w %s",
                 (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    if (secret && (st.st_mode & S_IROTH)) {
        snprintf(why, whylen,
                 "refusing a secret readable by others (mode %04o): run "
                 "chmod o-rwx %s",
                 (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    return 0;
}

unsigned og__open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    unsigned n = 0;

    if (d == NULL) {
        struct rlimit rl;

        /* not even one left to look with: all of them are open */
        if (errno == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
            return (unsigned)rl.rlim_cur;
        return 0;
    }
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the one opendir holds */
}
