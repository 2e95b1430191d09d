/*
 * testutil.c: see testutil.h.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <msgpack.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/conf.h"
#include "event/event.h"
#include "domain/identity.h"
#include "domain/journeys.h"
#include "store/store.h"
#include "testutil.h"

extern char **environ;

int tu_run(void)
{
    unsigned failed;

    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *p;

    if (asprintf(&p, "%s/ogtest.XXXXXX", base ? base : "/tmp") < 0)
        return NULL;
    if (mkdtemp(p) == NULL) {
        free(p);
        return NULL;
    }
    chmod(p, 0755);
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rmrf(const char *path)
{
    if (path != NULL)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_write_bytes(const char *path, const void *buf, size_t len)
{
    char tmp[4200];
    FILE *f;

    /* Written aside and renamed, so that pollers never see half a file. */
    snprintf(tmp, sizeof(tmp), "%s.tmp~", path);
    f = fopen(tmp, "wb");
    if (f == NULL)
        return -1;
    if (fwrite(buf, 1, len, f) != len) {
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

int tu_write(const char *path, const char *text)
{
    return tu_write_bytes(path, text, strlen(text));
}

char *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, r;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            buf = realloc(buf, cap);
        }
        r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

size_t tu_count_str(const char *s, const char *needle)
{
    const char *p;
    size_t n = 0;

    for (p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

size_t tu_count(const char *path, const char *needle)
{
    char *s = tu_read(path, NULL);
    size_t n;

    if (s == NULL)
        return 0;
    n = tu_count_str(s, needle);
    free(s);
    return n;
}

int tu_contains(const char *path, const char *needle)
{
    return tu_count(path, needle) > 0;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);

    return a >= b && strcmp(s + a - b, suffix) == 0;
}

size_t tu_count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && has_suffix(de->d_name, suffix))
            n++;
    closedir(d);
    return n;
}

char *tu_first_file(const char *dir, const char *suffix)
{
    struct dirent **list;
    char *res = NULL;
    int n, i;

    n = scandir(dir, &list, NULL, alphasort);
    for (i = 0; i < n; i++) {
        if (res == NULL && list[i]->d_name[0] != '.' &&
            has_suffix(list[i]->d_name, suffix)) {
            if (asprintf(&res, "%s/%s", dir, list[i]->d_name) < 0)
                res = NULL;
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    return res;
}

static const char *builddir(void)
{
    const char *b = getenv("OG_TOP_BUILDDIR");
    return b ? b : ".";
}

char *tu_built_plugin(const char *name)
{
    char *p;

    if (strcmp(name, "dropdir") == 0) {
        if (asprintf(&p, "%s/sdk/examples/dropdir/.libs/dropdir.so",
                     builddir()) < 0)
            return NULL;
    } else if (asprintf(&p, "%s/tests/plugins/.libs/%s.so", builddir(), name) <
               0) {
        return NULL;
    }
    return p;
}

int tu_install_plugins(const char *dir, const char *const *names)
{
    size_t i;

    for (i = 0; names[i] != NULL; i++) {
        char *src = tu_built_plugin(names[i]), *dst = NULL;
        size_t len;
        char *buf = tu_read(src, &len);
        int rc = -1;

        if (buf != NULL && asprintf(&dst, "%s/%s.so", dir, names[i]) >= 0) {
            rc = tu_write_bytes(dst, buf, len);
            if (rc == 0)
                rc = chmod(dst, 0755);
        }
        if (rc != 0)
            fprintf(stderr, "cannot install %s into %s\n", src, dir);
        free(buf);
        free(src);
        free(dst);
        if (rc != 0)
            return -1;
    }
    return 0;
}

char *tu_daemon_path(void)
{
    char *p;

    if (asprintf(&p, "%s/core/omnigated", builddir()) < 0)
        return NULL;
    return p;
}

void tu_pack_head(struct msgpack_sbuffer *sb, struct msgpack_packer *pk,
                  const char *type, size_t extra)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(pk, 2 + extra);
    msgpack_pack_str_with_body(pk, "v", 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_str_with_body(pk, "type", 4);
    msgpack_pack_str_with_body(pk, type, strlen(type));
}

uint8_t *tu_envelope(const char *type, const char *id, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    tu_pack_head(&sb, &pk, type, id ? 1 : 0);
    if (id) {
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_str_with_body(&pk, id, strlen(id));
    }
    *len = sb.size;
    return (uint8_t *)msgpack_sbuffer_release(&sb);
}

pid_t tu_spawn(char *const argv[], const char *log)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int tu_wait(pid_t pid, int ms)
{
    int status, waited = 0;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            break;
        if (r < 0)
            return -1;
        if (waited >= ms)
            return -1;
        tu_sleep_ms(10);
        waited += 10;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int tu_wait_log(const char *path, const char *needle, size_t count, int ms)
{
    int waited = 0;

    while (tu_count(path, needle) < count) {
        if (waited >= ms)
            return 0;
        tu_sleep_ms(20);
        waited += 20;
    }
    return 1;
}

int tu_wait_files(const char *dir, const char *suffix, size_t n, int ms)
{
    int waited = 0;

    while (tu_count_files(dir, suffix) < n) {
        if (waited >= ms)
            return 0;
        tu_sleep_ms(20);
        waited += 20;
    }
    return 1;
}

void tu_put(const char *dir, const char *rel, const char *text)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, text), 0);
}

void tu_fresh(const char *dir, const char *const *subdirs)
{
    char path[1024];

    tu_rmrf(dir);
    mkdir(dir, 0755);
    for (; subdirs != NULL && *subdirs != NULL; subdirs++) {
        snprintf(path, sizeof(path), "%s/%s", dir, *subdirs);
        mkdir(path, 0755);
    }
}

int tu_has_error(const og__errlist_t *errs, const char *dir, const char *rel,
                 int line, const char *msg)
{
    char want[2048];
    size_t i;

    if (line > 0)
        snprintf(want, sizeof(want), "%s/%s:%d: %s", dir, rel, line, msg);
    else
        snprintf(want, sizeof(want), "%s/%s: %s", dir, rel, msg);
    for (i = 0; i < errs->n; i++)
        if (strncmp(errs->v[i], want, strlen(want)) == 0)
            return 1;
    for (i = 0; i < errs->n; i++)
        fprintf(stderr, "  have: %s\n", errs->v[i]);
    fprintf(stderr, "  want: %s\n", want);
    return 0;
}

og_event_t *tu_shop_event(const char *type, const char *email, const char *cart,
                          const char *cart_id)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    og_event_t *ev;
    og_err_t rc;
    char why[256];

    tu_pack_head(&sb, &pk, type, 2 + (cart != NULL));
    msgpack_pack_str_with_body(&pk, "ids", 3);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "kind", 4);
    msgpack_pack_str_with_body(&pk, "email", 5);
    msgpack_pack_str_with_body(&pk, "value", 5);
    msgpack_pack_str_with_body(&pk, email, strlen(email));
    msgpack_pack_str_with_body(&pk, "verified", 8);
    msgpack_pack_true(&pk);
    if (cart != NULL) {
        msgpack_pack_str_with_body(&pk, "entity", 6);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "kind", 4);
        msgpack_pack_str_with_body(&pk, "cart", 4);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_str_with_body(&pk, cart, strlen(cart));
    }
    msgpack_pack_str_with_body(&pk, "props", 5);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "cart_id", 7);
    msgpack_pack_str_with_body(&pk, cart_id ? cart_id : "-",
                               cart_id ? strlen(cart_id) : 1);
    msgpack_pack_str_with_body(&pk, "lines", 5);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "Boots", 5);
    msgpack_pack_str_with_body(&pk, "qty", 3);
    msgpack_pack_uint8(&pk, 2);
    ev = og__event_accept((const uint8_t *)sb.data, sb.size, "web", "web",
                          1 << 20, &rc, NULL, why, sizeof(why));
    msgpack_sbuffer_destroy(&sb);
    if (ev == NULL)
        fprintf(stderr, "tu_shop_event: %s\n", why);
    return ev;
}

int tu_commit_events(og__store_t *st, const og__journeys_t *js,
                     og_event_t **evs, size_t n, uint64_t now_ms,
                     char (*customers)[40])
{
    static const og__store_hooks_t hooks = {.stamp = og__stamp_hook};
    og__store_item_t *it = calloc(n, sizeof(*it));
    og__person_t *p = calloc(n, sizeof(*p));
    og__idkey_t *keys = calloc(n, sizeof(*keys));
    og__jmatch_t **jm = calloc(n, sizeof(*jm));
    char err[256], why[200];
    size_t i;
    int bad = 0;

    for (i = 0; i < n; i++) {
        og__event_facts_t f;

        if (og__event_facts(evs[i]->data, evs[i]->len, &f) != 0 || f.nids < 1 ||
            og__idkey_normalize(&f.ids[0], "web", NULL, &keys[i], why,
                                sizeof(why)) != OG_OK)
            bad = 1;
        p[i].keys = &keys[i];
        p[i].nkeys = 1;
        p[i].instance = "web";
        it[i].event_id = evs[i]->id;
        it[i].body = evs[i]->data;
        it[i].len = evs[i]->len;
        it[i].received_ms = now_ms;
        it[i].person = &p[i];
        it[i].type = evs[i]->type;
        it[i].source = evs[i]->instance;
        if (js != NULL) {
            it[i].njm = og__journeys_match(js, evs[i], now_ms, &jm[i]);
            it[i].jm = jm[i];
        }
    }
    if (!bad && st->ops->commit(st, it, n, NULL, 0, &hooks, err, sizeof(err)) !=
                    OG_OK) {
        fprintf(stderr, "tu_commit_events: %s\n", err);
        bad = 1;
    }
    for (i = 0; i < n; i++) {
        bad |= it[i].result != OG__ACCEPT_NEW;
        if (customers != NULL)
            snprintf(customers[i], 40, "%s", it[i].customer);
        free(it[i].stamped);
        free(jm[i]);
        og__event_unref(evs[i]);
    }
    free(it);
    free(p);
    free(keys);
    free(jm);
    return bad ? -1 : 0;
}
