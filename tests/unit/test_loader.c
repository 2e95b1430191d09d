/*
 * test_loader.c: the plugin loader refuses every bad plugin with one line
 * naming the file, what was expected and what was found; a plugin's
 * [config] keys are checked against its table.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/plugin.h"
#include "testutil.h"

static char *dir;

static void install(const char *name)
{
    const char *names[] = {name, NULL};

    CU_ASSERT_EQUAL_FATAL(tu_install_plugins(dir, names), 0);
}

static char *path_of(const char *name)
{
    char *p;

    CU_ASSERT_FATAL(asprintf(&p, "%s/%s.so", dir, name) > 0);
    return p;
}

/* Opens name and expects a refusal whose text contains every fragment. */
static void expect_refusal(const char *name, const char *f1, const char *f2)
{
    char err[1024] = "";
    char *p = path_of(name);
    og__plugin_t *pl = og__plugin_open(p, err, sizeof(err));

    CU_ASSERT_PTR_NULL(pl);
    og__plugin_close(pl);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, p)); /* names the file */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, f1));
    if (f2 != NULL)
        CU_ASSERT_PTR_NOT_NULL(strstr(err, f2));
    if (strstr(err, f1) == NULL || (f2 && strstr(err, f2) == NULL))
        fprintf(stderr, "refusal text: %s\n", err);
    free(p);
}

static void test_good(void)
{
    char err[512] = "";
    char *p;
    og__plugin_t *pl;

    install("good");
    p = path_of("good");
    pl = og__plugin_open(p, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
    CU_ASSERT_STRING_EQUAL(pl->def->name, "good");
    CU_ASSERT_EQUAL(pl->def->abi_major, OG_SDK_ABI_MAJOR);
    CU_ASSERT_EQUAL(pl->def->struct_size, sizeof(og_plugin_def_t));
    og__plugin_close(pl);
    free(p);
}

static void test_abi_refusals(void)
{
    char want[128];

    install("abi_major");
    snprintf(want, sizeof(want), "found %d.%d", OG_SDK_ABI_MAJOR + 1,
             OG_SDK_ABI_MINOR);
    expect_refusal("abi_major", "expected plugin ABI 1.x", want);

    install("abi_minor");
    snprintf(want, sizeof(want), "found %d.%d", OG_SDK_ABI_MAJOR,
             OG_SDK_ABI_MINOR + 1);
    expect_refusal("abi_minor", "or older", want);

    install("short_def");
    expect_refusal("short_def", "expected a descriptor of at least",
                   "found 24 bytes");
    install("null_def");
    expect_refusal("null_def", "expected a descriptor from og_plugin_entry",
                   "found NULL");
    install("no_entry");
    expect_refusal("no_entry", "expected the symbol og_plugin_entry",
                   "found none");
}

static void test_file_refusals(void)
{
    char *p;

    /* not a shared object at all */
    p = path_of("garbage");
    CU_ASSERT_EQUAL(tu_write(p, "this is not ELF\n"), 0);
    chmod(p, 0755);
    expect_refusal("garbage", "expected a loadable shared object", NULL);
    free(p);

    /* missing */
    expect_refusal("missing", "cannot load plugin", "No such file");

    /* a directory where a file should be */
    p = path_of("adir");
    mkdir(p, 0755);
    expect_refusal("adir", "expected a regular file", NULL);
    free(p);

    /* writable by group */
    install("good");
    p = path_of("good");
    chmod(p, 0775);
    expect_refusal("good", "it is writable by group or others (mode 0775)",
                   NULL);
    chmod(p, 0755);

    /* owned by another user (needs root to arrange) */
    if (geteuid() == 0) {
        CU_ASSERT_EQUAL(chown(p, 65534, 65534), 0);
        expect_refusal("good", "it is owned by uid 65534",
                       "expected root (0) or the daemon's user");
        CU_ASSERT_EQUAL(chown(p, 0, 0), 0);
    } else {
        fprintf(stderr, "not root: ownership refusal not exercised\n");
    }

    /* the directory itself writable by others */
    chmod(dir, 0777);
    expect_refusal("good", "its directory",
                   "is writable by group or others "
                   "(mode 0777)");
    chmod(dir, 0755);

    /* a link to a plugin in a directory anyone may write to: the real
     * file and its real directory are checked (issue 15) */
    {
        char *open_dir, *target, *link;

        CU_ASSERT_FATAL(asprintf(&open_dir, "%s/open", dir) > 0);
        CU_ASSERT_FATAL(asprintf(&target, "%s/open/good.so", dir) > 0);
        link = path_of("linked");
        mkdir(open_dir, 01777);
        chmod(open_dir, 01777);
        CU_ASSERT_EQUAL(rename(p, target), 0);
        CU_ASSERT_EQUAL(symlink(target, link), 0);
        expect_refusal("linked", "where it links to",
                       "is writable by group or others (mode 1777)");
        chmod(open_dir, 0755);
        {
            char err[512];
            og__plugin_t *pl = og__plugin_open(link, err, sizeof(err));

            CU_ASSERT_PTR_NOT_NULL(pl); /* the same link, checked dir */
            if (pl == NULL)
                fprintf(stderr, "%s\n", err);
            og__plugin_close(pl);
        }
        unlink(link);
        CU_ASSERT_EQUAL(rename(target, p), 0);
        rmdir(open_dir);
        free(link);
        free(target);
        free(open_dir);
    }
    free(p);
}

static void test_config_check(void)
{
    char err[512];
    char *p;
    og__plugin_t *pl;
    og__chconf_t ch;
    og__errlist_t errs = {NULL, 0};
    static const char *const kv[][2] = {
        {"greeting", "hi"}, {"count", "lots"},   {"colour", "red"},
        {"count", "500"},   {"verbose", "sure"}, {"stop_delay", "1x"},
        {"limit", "2Q"},
    };
    og__opt_t opts[7];
    size_t i;

    for (i = 0; i < 7; i++) {
        opts[i].key = strdup(kv[i][0]);
        opts[i].value = strdup(kv[i][1]);
        opts[i].line = (int)i + 10;
    }

    install("good");
    p = path_of("good");
    pl = og__plugin_open(p, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
    memset(&ch, 0, sizeof(ch));
    ch.name = strdup("ch");
    ch.file = strdup("chan.conf");
    ch.line = 1;
    ch.config_line = 9;
    ch.opts = opts;
    ch.nopts = 7;
    og__plugin_check_config(pl, &ch, &errs);
    CU_ASSERT_EQUAL(errs.n, 7);
    if (errs.n == 7) {
        CU_ASSERT_STRING_EQUAL(errs.v[0], "chan.conf:11: count: expected an "
                                          "integer (a integer), got 'lots'");
        CU_ASSERT_STRING_EQUAL(errs.v[1],
                               "chan.conf:12: unknown key 'colour' "
                               "for plugin 'good' (known: token, greeting, "
                               "count, verbose, stop_delay, limit, pin)");
        CU_ASSERT_STRING_EQUAL(errs.v[2],
                               "chan.conf:13: count: must be "
                               "between 1 and 100 (a integer), got '500'");
        CU_ASSERT_PTR_NOT_NULL(strstr(errs.v[3], "chan.conf:14: verbose:"));
        CU_ASSERT_PTR_NOT_NULL(strstr(errs.v[4], "chan.conf:15: stop_delay: "
                                                 "unknown duration unit 'x'"));
        CU_ASSERT_PTR_NOT_NULL(strstr(errs.v[5], "chan.conf:16: limit: "
                                                 "unknown size unit 'Q'"));
        CU_ASSERT_STRING_EQUAL(errs.v[6],
                               "chan.conf:9: missing required key "
                               "'token' for plugin 'good' (access token)");
    }
    og__errlist_free(&errs);

    /* Secrets never appear in an error. */
    {
        og__opt_t sopts[2];

        sopts[0].key = strdup("token");
        sopts[0].value = strdup("s3cr3t");
        sopts[0].line = 3;
        sopts[1].key = strdup("pin");
        sopts[1].value = strdup("s3cr3t");
        sopts[1].line = 4;
        ch.opts = sopts;
        ch.nopts = 2;
        og__plugin_check_config(pl, &ch, &errs);
        CU_ASSERT_EQUAL(errs.n, 1);
        CU_ASSERT_PTR_NULL(strstr(errs.v[0], "s3cr3t"));
        CU_ASSERT_PTR_NOT_NULL(strstr(errs.v[0], "pin: expected an integer"));
        CU_ASSERT_PTR_NOT_NULL(strstr(errs.v[0], "got '***'"));
        og__errlist_free(&errs);
        for (i = 0; i < 2; i++) {
            free(sopts[i].key);
            free(sopts[i].value);
        }
    }
    for (i = 0; i < 7; i++) {
        free(opts[i].key);
        free(opts[i].value);
    }
    free(ch.name);
    free(ch.file);
    og__plugin_close(pl);
    free(p);
}

int main(void)
{
    CU_pSuite s;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    s = CU_add_suite("loader", NULL, NULL);
    CU_add_test(s, "valid plugin", test_good);
    CU_add_test(s, "ABI and descriptor refusals", test_abi_refusals);
    CU_add_test(s, "file refusals", test_file_refusals);
    CU_add_test(s, "config checked against the plugin", test_config_check);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
