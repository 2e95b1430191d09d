/*
 * test_dropdir.c: unit test of the dropdir plugin with the omnigate test
 * host: no daemon, the real plugin .so, CUnit.
 *
 *   ./test_dropdir ./dropdir.so
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <omnigate/og_testhost.h>

static const char *plugin;
static char dir[] = "/tmp/dropdir-test.XXXXXX";

static int one_event(void *th)
{
    return og_testhost_emitted_count(th) >= 1;
}

static void test_roundtrip(void)
{
    og_testhost_t *th = og_testhost_create();
    char in[128], out[128], cfg_in[160], cfg_out[160], file[200], buf[64];
    const char *config[] = {cfg_in, cfg_out, "poll_interval=20ms", NULL};
    /* {"v": 1, "type": "order.placed"} as MessagePack */
    static const unsigned char env[] = {
        0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xac, 'o',
        'r',  'd',  'e', 'r',  '.',  'p', 'l', 'a', 'c', 'e',  'd'};
    FILE *f;

    snprintf(in, sizeof(in), "%s/in", dir);
    snprintf(out, sizeof(out), "%s/out", dir);
    mkdir(in, 0755);
    mkdir(out, 0755);
    snprintf(cfg_in, sizeof(cfg_in), "inbox=%s", in);
    snprintf(cfg_out, sizeof(cfg_out), "outbox=%s", out);
    CU_ASSERT_EQUAL_FATAL(og_testhost_load(th, plugin, "shop", config, NULL),
                          OG_OK);

    snprintf(file, sizeof(file), "%s/1.evt", in);
    f = fopen(file, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("customer.identified\nid.email = ann@example.com\n", f);
    fclose(f);
    CU_ASSERT_TRUE(og_testhost_run_until(th, one_event, th, 2000));
    CU_ASSERT_STRING_EQUAL(og_testhost_emitted_type(th, 0),
                           "customer.identified");
    CU_ASSERT_EQUAL(
        og_testhost_emitted_get_str(th, 0, "source.plugin", buf, sizeof(buf)),
        OG_OK);
    CU_ASSERT_STRING_EQUAL(buf, "dropdir");

    CU_ASSERT_EQUAL(og_testhost_deliver(th, env, sizeof(env), 1000), OG_OK);
    CU_ASSERT_EQUAL(og_testhost_metric(th, "files_out"), 1);
    CU_ASSERT_EQUAL(og_testhost_destroy(th), 0);
}

int main(int argc, char **argv)
{
    CU_pSuite s;
    unsigned failed;
    char cmd[200];

    plugin = argc > 1 ? argv[1] : "./dropdir.so";
    if (mkdtemp(dir) == NULL)
        return 99;
    chmod(dir, 0755);
    CU_initialize_registry();
    s = CU_add_suite("dropdir", NULL, NULL);
    CU_add_test(s, "file in, event out; event in, file out", test_roundtrip);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failed ? 1 : 0;
}
