/*
 * util.h: small helpers of the core: typed value parsing for the config,
 * string and array helpers.
 */
#ifndef OG_CORE_UTIL_H
#define OG_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_errors.h>

#define OG__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that aborts the daemon when memory is exhausted; used only for
 * small control-plane structures (config, registries), never per event. */
void *og__xmalloc(size_t n);
void *og__xcalloc(size_t n, size_t size);
void *og__xrealloc(void *p, size_t n);
char *og__xstrdup(const char *s);
char *og__xstrndup(const char *s, size_t n);
char *og__xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse typed config values. Each returns OG_OK, or OG_ERR_INVALID /
 * OG_ERR_RANGE and writes a short reason ("unknown unit 'q'") to why. */
og_err_t og__parse_bool(const char *s, int *out, char *why, size_t whylen);
og_err_t og__parse_int(const char *s, int64_t *out, char *why, size_t whylen);
og_err_t og__parse_duration_ms(const char *s, uint64_t *out, char *why,
                               size_t whylen);
og_err_t og__parse_size(const char *s, uint64_t *out, char *why, size_t whylen);

/* Split a comma or blank separated list into trimmed, non-empty items.
 * Returns a NULL-terminated array the caller frees with og__strv_free(). */
char **og__split_list(const char *s, size_t *count);
void og__strv_free(char **v);

/* True when s is a non-empty identifier of [a-z0-9_-] (plus '.' if dots). */
int og__is_ident(const char *s, int dots);

/* True when s is an event type pattern: [a-z0-9_.-] plus '*' and '?'. */
int og__is_ident_glob(const char *s);

/* Appends n bytes to the heap buffer *p of *len bytes, keeping a NUL
 * after them. Returns 0, or -1 when out of memory (the buffer is intact). */
int og__mem_append(char **p, size_t *len, const void *data, size_t n);

/* A growable string buffer. */
typedef struct og__sbuf_s {
    char *p;
    size_t n;
    size_t cap;
} og__sbuf_t;

/* Appends formatted text; p stays NUL-terminated. */
void og__sbuf_printf(og__sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void og__sbuf_free(og__sbuf_t *b);

/*
 * og__module_load: dlopen the core's own module (og_phone.so, og_tz.so)
 * at the path in environment variable env, else at dflt, and resolve the
 * n symbols names into fns. The handle stays open for the life of the
 * process. Returns 0, or -1 with fns all NULL and "WHAT cannot be ...:
 * reason" in err.
 */
int og__module_load(const char *env, const char *dflt, const char *what,
                    const char *const *names, void **fns, size_t n, char *err,
                    size_t errlen);

/* Milliseconds since the Unix epoch, from the real-time clock. */
uint64_t og__now_ms(void);

/*
 * og__crashpoint: a test hook. When the environment variable
 * OMNIGATE_CRASHPOINT is "name" or "name:N", the process kills itself with
 * SIGKILL the first (or Nth) time it reaches the point called name, so
 * that tests can stop it between two steps of a commit or a delivery.
 * Costs one branch otherwise. Any thread.
 */
void og__crashpoint(const char *name);

/* 1 when a secret's value is a placeholder of an example file
 * ("CHANGE-ME", "changeme", "xxx..."), anywhere in it. */
int og__is_placeholder(const char *value);

/*
 * og__file_check: whether a configuration or secret file can be trusted:
 * 0, or -1 with the reason in why. Every such file must not be writable by
 * group or others (anyone who can change it can change the gateway);
 * with secret set it must not be readable by others either.
 */
int og__file_check(const char *path, int secret, char *why, size_t whylen);

/* The file descriptors this process has open (/proc/self/fd), 0 when
 * that cannot be read. */
unsigned og__open_fds(void);

#endif /* OG_CORE_UTIL_H */
