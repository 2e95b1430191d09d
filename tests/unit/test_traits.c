/*
 * test_traits.c: the trait rules (domain/traits.h) on two
 * implementations of the trait repository: the SQLite store's and the
 * in-memory one of tests/mem_repos.c. props.traits applied (nil deletes,
 * bad keys skipped), each trait's value over a customer and the
 * customers merged into it by its rule (newest, oldest, non_empty); every
 * error of the repository ends the rules with it.
 */
#include "config.h"

#include <msgpack.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/traits.h"
#include "mem_repos.h"
#include "base/util.h"
#include "testutil.h"

static char *dir;
static tu_repos_t rp;
static sqlite3 *db; /* on SQLite, a second connection for merges */
static og__trait_repo_t *repo;

static void open_repos(void)
{
    char path[1024];

    tu_repos_open(&rp, dir);
    repo = rp.traits;
    if (rp.store == NULL)
        return;
    snprintf(path, sizeof(path), "%s/state.db", dir);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
}

static void close_repos(void)
{
    sqlite3_close(db);
    db = NULL;
    tu_repos_close(&rp);
    repo = NULL;
}

/* Makes merged a customer merged into survivor. */
static void merge(const char *merged, const char *survivor)
{
    char *q;

    if (rp.store == NULL) {
        mem_traits_merge(repo, merged, survivor);
        return;
    }
    q = sqlite3_mprintf(
        "INSERT INTO customers (id, created_ms, merged_into, first_channel) "
        "VALUES (%Q, 1, NULL, 'web'), (%Q, 2, %Q, 'web') ON CONFLICT (id) DO "
        "UPDATE SET merged_into = excluded.merged_into",
        survivor, merged, survivor);
    CU_ASSERT_EQUAL(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(q);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Applies {name: value} (value NULL: nil) to cust at at. */
static og_err_t set(const char *cust, const char *name, const char *value,
                    uint64_t at)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    og_err_t rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, name);
    if (value != NULL)
        pack_str(&pk, value);
    else
        msgpack_pack_nil(&pk);
    rc = og__traits_apply(repo, cust, (const uint8_t *)sb.data, sb.size, at);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The traits of a customer as "name=value;..." (strings only). */
struct got {
    char text[512];
};

static void collect(void *ctx, const char *name, const void *value, size_t n)
{
    struct got *g = ctx;
    msgpack_unpacked u;
    size_t off = 0, len = strlen(g->text);
    char v[64] = "?";

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, value, n, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_STR)
        snprintf(v, sizeof(v), "%.*s", (int)u.data.via.str.size,
                 u.data.via.str.ptr);
    msgpack_unpacked_destroy(&u);
    snprintf(g->text + len, sizeof(g->text) - len, "%s=%s;", name, v);
}

static void check(const char *cust, const og__trait_rules_t *rules,
                  const char *want)
{
    struct got g = {""};

    CU_ASSERT_EQUAL(og__traits_each(repo, cust, rules, collect, &g), OG_OK);
    if (strcmp(g.text, want) != 0) {
        fprintf(stderr, "\n  want %s\n  got  %s\n", want, g.text);
        CU_FAIL("traits");
    }
}

static void test_apply(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char long_name[140];

    open_repos();
    CU_ASSERT_EQUAL(set("c1", "tier", "gold", 10), OG_OK);
    CU_ASSERT_EQUAL(set("c1", "city", "Lyon", 10), OG_OK);
    check("c1", NULL, "city=Lyon;tier=gold;");
    CU_ASSERT_EQUAL(set("c1", "tier", "silver", 20), OG_OK);
    CU_ASSERT_EQUAL(set("c1", "city", NULL, 20), OG_OK); /* nil deletes */
    check("c1", NULL, "tier=silver;");
    /* keys that are no trait names are skipped, the others kept */
    memset(long_name, 'n', 129);
    long_name[129] = '\0';
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pack_str(&pk, "");
    pack_str(&pk, "empty name");
    pack_str(&pk, long_name);
    pack_str(&pk, "too long");
    msgpack_pack_int(&pk, 5);
    pack_str(&pk, "not a string key");
    pack_str(&pk, "pet");
    pack_str(&pk, "cat");
    CU_ASSERT_EQUAL(
        og__traits_apply(repo, "c1", (const uint8_t *)sb.data, sb.size, 30),
        OG_OK);
    check("c1", NULL, "pet=cat;tier=silver;");
    /* not a map, or truncated: nothing */
    CU_ASSERT_EQUAL(
        og__traits_apply(repo, "c1", (const uint8_t *)sb.data, sb.size / 2, 31),
        OG_OK);
    CU_ASSERT_EQUAL(
        og__traits_apply(repo, "c1", (const uint8_t *)"\xa1x", 2, 32), OG_OK);
    check("c1", NULL, "pet=cat;tier=silver;");
    msgpack_sbuffer_destroy(&sb);
    check("nobody", NULL, "");
    close_repos();
}

static void test_merge_rules(void)
{
    static const char *const names[] = {"first_seen_city", "nickname"};
    static const og__trait_rule_t rule[] = {OG__TRAIT_OLDEST,
                                            OG__TRAIT_NON_EMPTY};
    og__trait_rules_t newest = {OG__TRAIT_NEWEST, names, rule, 2};
    og__trait_rules_t nonempty = {OG__TRAIT_NON_EMPTY, NULL, NULL, 0};

    open_repos();
    merge("m1", "s1");
    /* the merged customer's values are older for some, newer for others */
    CU_ASSERT_EQUAL(set("m1", "first_seen_city", "Paris", 5), OG_OK);
    CU_ASSERT_EQUAL(set("s1", "first_seen_city", "Lyon", 10), OG_OK);
    CU_ASSERT_EQUAL(set("s1", "nickname", "", 20), OG_OK);
    CU_ASSERT_EQUAL(set("m1", "nickname", "Jo", 15), OG_OK);
    CU_ASSERT_EQUAL(set("m1", "tier", "gold", 30), OG_OK);
    CU_ASSERT_EQUAL(set("s1", "tier", "silver", 25), OG_OK);
    CU_ASSERT_EQUAL(set("s1", "note", "", 40), OG_OK);
    /* newest by default; oldest for the city; non_empty for the nickname:
     * the survivor's own is empty, so the newest non-empty one */
    check("s1", &newest, "first_seen_city=Paris;nickname=Jo;note=;tier=gold;");
    /* non_empty for all: the survivor's own where it has one, and "" when
     * no value is non-empty */
    check("s1", &nonempty,
          "first_seen_city=Lyon;nickname=Jo;note=;tier=silver;");
    /* without rules: the newest */
    check("s1", NULL, "first_seen_city=Lyon;nickname=;note=;tier=gold;");
    /* the merged customer alone sees only its own */
    check("m1", NULL, "first_seen_city=Paris;nickname=Jo;tier=gold;");
    close_repos();
}

/* Each call of the repository fails in turn: the rules stop with its
 * error. */
static void test_errors_propagate(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct got g = {""};
    unsigned k;

    open_repos(); /* in memory */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "a");
    pack_str(&pk, "1");
    pack_str(&pk, "b");
    msgpack_pack_nil(&pk);
    pack_str(&pk, "c");
    pack_str(&pk, "3");
    for (k = 1; k <= 4; k++) {
        mem_traits_fail_from(repo, k);
        CU_ASSERT_EQUAL(
            og__traits_apply(repo, "e1", (const uint8_t *)sb.data, sb.size, 1),
            k <= 3 ? OG_ERR_IO : OG_OK);
    }
    mem_traits_fail_from(repo, 1);
    CU_ASSERT_EQUAL(og__traits_each(repo, "e1", NULL, collect, &g), OG_ERR_IO);
    CU_ASSERT_STRING_EQUAL(g.text, "");
    mem_traits_fail_from(repo, 0);
    check("e1", NULL, "a=1;c=3;");
    msgpack_sbuffer_destroy(&sb);
    close_repos();
}

int main(void)
{
    static const tu_test_t both[] = {
        {"props.traits: set, nil deletes, bad keys skipped", test_apply},
        {"over a family: newest, oldest, non_empty", test_merge_rules},
    };
    CU_pSuite mem;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    tu_add_both("trait rules", both, OG__ARRAY_SIZE(both), NULL, &mem);
    CU_add_test(mem, "every error of the repository ends the rules",
                test_errors_propagate);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
