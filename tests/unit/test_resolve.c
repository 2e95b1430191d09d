/*
 * test_resolve.c: identity resolution (domain/customers.h) on two
 * implementations of the identity repository: the SQLite store's and the
 * in-memory one of tests/mem_repos.c. New and known keys, the strongest
 * key choosing, verified keys joining customers (the older survives),
 * device keys claimed by a verified event, unverified keys never joining,
 * a public client's claims, the event's own customer id, repeated keys,
 * events without keys; every error of the repository ends resolution
 * with it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/customers.h"
#include "mem_repos.h"
#include "base/util.h"
#include "testutil.h"

static char *dir;
static tu_repos_t rp;
static og__identity_repo_t *repo;

/* The merges resolution told of, as "survivor<-merged by kind". */
static char merges[8][128];
static size_t nmerges;

static og_err_t merged(void *data, const og__merge_t *m)
{
    (void)data;
    CU_ASSERT_FATAL(nmerges < 8);
    CU_ASSERT(m->id > 0);
    snprintf(merges[nmerges++], sizeof(merges[0]), "%s<-%s by %s", m->survivor,
             m->merged, m->reason->kind);
    return OG_OK;
}

/* A key from "kind=value", verified with a trailing '!'. */
static og__idkey_t key(const char *spec)
{
    og__idkey_t k;
    const char *eq = strchr(spec, '=');
    size_t n = strlen(eq + 1);

    memset(&k, 0, sizeof(k));
    snprintf(k.kind, sizeof(k.kind), "%.*s", (int)(eq - spec), spec);
    k.verified = eq[n] == '!';
    snprintf(k.value, sizeof(k.value), "%.*s", (int)(n - (size_t)k.verified),
             eq + 1);
    return k;
}

static uint64_t now_ms = 1790000000000ull;

/* Resolves an event with the keys of specs (NULL-terminated), its own
 * customer id cust (may be NULL), from a public client when untrusted;
 * out gets the customer. */
static og_err_t run_resolve(const char *const *specs, const char *cust,
                            int untrusted, char out[40])
{
    og__idkey_t keys[8];
    og__person_t p;
    size_t n = 0;

    while (specs[n] != NULL) {
        keys[n] = key(specs[n]);
        n++;
    }
    memset(&p, 0, sizeof(p));
    p.keys = keys;
    p.nkeys = n;
    p.customer = cust;
    p.instance = "web";
    p.untrusted = untrusted;
    now_ms += 1000;
    return og__customer_resolve(repo, &p, now_ms, merged, NULL, out);
}

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void resolve(const char *const *specs, char out[40])
{
    CU_ASSERT_EQUAL(run_resolve(specs, NULL, 0, out), OG_OK);
    CU_ASSERT_NOT_EQUAL(out[0], '\0');
}

/* The customer key points at now (after merges), "" when none. */
static void owner(const char *spec, char out[40])
{
    og__idkey_t k = key(spec);
    char cust[40] = "";
    int verified = 0, found = 0;
    int64_t created = 0;

    out[0] = '\0';
    CU_ASSERT_EQUAL(repo->ops->key_find(repo, &k, cust, &verified, &found),
                    OG_OK);
    if (!found)
        return;
    CU_ASSERT_EQUAL(repo->ops->canonical(repo, cust, out, &created, &found),
                    OG_OK);
    CU_ASSERT_TRUE(found);
}

static void canon(const char *id, char out[40])
{
    int64_t created = 0;
    int found = 0;

    out[0] = '\0';
    CU_ASSERT_EQUAL(repo->ops->canonical(repo, id, out, &created, &found),
                    OG_OK);
}

static void begin(void)
{
    nmerges = 0;
    tu_repos_open(&rp, dir);
    repo = rp.identity;
}

static void end(void)
{
    tu_repos_close(&rp);
    repo = NULL;
}

static void test_new_and_known(void)
{
    char a[40], b[40], o[40];

    begin();
    resolve(KEYS("anon=a1"), a);
    resolve(KEYS("anon=a1"), b);
    CU_ASSERT_STRING_EQUAL(a, b);
    /* a new key attaches to the customer the known one finds */
    resolve(KEYS("anon=a1", "email=x@y.test"), b);
    CU_ASSERT_STRING_EQUAL(a, b);
    owner("email=x@y.test", o);
    CU_ASSERT_STRING_EQUAL(o, a);
    /* the same key twice in one event is one key */
    resolve(KEYS("anon=z1", "anon=z1"), b);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    owner("anon=z1", o);
    CU_ASSERT_STRING_EQUAL(o, b);
    CU_ASSERT_EQUAL(nmerges, 0);
    end();
}

static void test_unverified_never_joins(void)
{
    char c1[40], c2[40], r[40], o[40];

    begin();
    resolve(KEYS("email=u@y.test"), c1);
    resolve(KEYS("anon=a2"), c2);
    CU_ASSERT_STRING_NOT_EQUAL(c1, c2);
    /* both known, neither verified: no merge, the stronger key chooses */
    resolve(KEYS("anon=a2", "email=u@y.test"), r);
    CU_ASSERT_EQUAL(nmerges, 0);
    CU_ASSERT_STRING_EQUAL(
        r, og__idkind_rank("email") < og__idkind_rank("anon") ? c1 : c2);
    owner("anon=a2", o);
    CU_ASSERT_STRING_EQUAL(o, c2);
    end();
}

static void test_verified_joins(void)
{
    char c3[40], c4[40], r[40], o[40], want[128];

    begin();
    resolve(KEYS("user=u1!"), c3);
    resolve(KEYS("user=u2!", "anon=d4"), c4);
    CU_ASSERT_STRING_NOT_EQUAL(c3, c4);
    /* one event proves both: the older customer survives */
    resolve(KEYS("user=u2!", "user=u1!"), r);
    CU_ASSERT_STRING_EQUAL(r, c3);
    CU_ASSERT_EQUAL_FATAL(nmerges, 1);
    snprintf(want, sizeof(want), "%s<-%s by user", c3, c4);
    CU_ASSERT_STRING_EQUAL(merges[0], want);
    canon(c4, o);
    CU_ASSERT_STRING_EQUAL(o, c3);
    owner("user=u2", o);
    CU_ASSERT_STRING_EQUAL(o, c3);
    owner("anon=d4", o); /* the merged customer's keys moved too */
    CU_ASSERT_STRING_EQUAL(o, c3);
    /* the event's own customer id: the alias finds its survivor */
    CU_ASSERT_EQUAL(run_resolve(KEYS("anon=d5"), c4, 0, r), OG_OK);
    CU_ASSERT_STRING_EQUAL(r, c3);
    owner("anon=d5", o);
    CU_ASSERT_STRING_EQUAL(o, c3);
    /* ... and without keys */
    CU_ASSERT_EQUAL(run_resolve((const char *const[]){NULL}, c3, 0, r), OG_OK);
    CU_ASSERT_STRING_EQUAL(r, c3);
    CU_ASSERT_EQUAL(nmerges, 1);
    end();
}

static void test_device_claims(void)
{
    char c5[40], c6[40], c7[40], c8[40], r[40], o[40], want[128];

    begin();
    resolve(KEYS("anon=d1"), c5); /* a visitor, older */
    resolve(KEYS("user=u6!"), c6);
    /* signs in on the visitor's device: the device's profile, which has
     * no verified key, is claimed even though it is older */
    resolve(KEYS("user=u6!", "anon=d1"), r);
    CU_ASSERT_STRING_EQUAL(r, c6);
    CU_ASSERT_EQUAL_FATAL(nmerges, 1);
    snprintf(want, sizeof(want), "%s<-%s by user", c6, c5);
    CU_ASSERT_STRING_EQUAL(merges[0], want);
    canon(c5, o);
    CU_ASSERT_STRING_EQUAL(o, c6);
    /* a device of a profile with a verified key is not claimed */
    resolve(KEYS("user=u7!", "anon=d2"), c7);
    resolve(KEYS("user=u8!"), c8);
    resolve(KEYS("user=u8!", "anon=d2"), r);
    CU_ASSERT_STRING_EQUAL(r, c8);
    CU_ASSERT_EQUAL(nmerges, 1);
    owner("anon=d2", o);
    CU_ASSERT_STRING_EQUAL(o, c7);
    end();
}

static void test_untrusted(void)
{
    char c9[40], r[40], o[40];

    begin();
    resolve(KEYS("email=v@y.test", "anon=b9"), c9);
    /* a browser claiming someone's address is somebody new */
    CU_ASSERT_EQUAL(run_resolve(KEYS("email=v@y.test"), NULL, 1, r), OG_OK);
    CU_ASSERT_NOT_EQUAL(r[0], '\0');
    CU_ASSERT_STRING_NOT_EQUAL(r, c9);
    owner("email=v@y.test", o); /* the address stays where it was */
    CU_ASSERT_STRING_EQUAL(o, c9);
    /* its own anon key finds the customer it already is */
    CU_ASSERT_EQUAL(run_resolve(KEYS("email=v@y.test", "anon=b9"), NULL, 1, r),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(r, c9);
    CU_ASSERT_EQUAL(nmerges, 0);
    end();
}

static void test_nothing_to_resolve(void)
{
    char r[40] = "x";

    begin();
    CU_ASSERT_EQUAL(run_resolve((const char *const[]){NULL}, NULL, 0, r),
                    OG_OK);
    CU_ASSERT_STRING_EQUAL(r, "");
    /* an unknown customer id and no key: nobody */
    CU_ASSERT_EQUAL(
        run_resolve((const char *const[]){NULL}, "no-such-id", 0, r), OG_OK);
    CU_ASSERT_STRING_EQUAL(r, "");
    end();
}

/* Each call of the repository fails in turn: resolution stops with its
 * error. */
static void test_errors_propagate(void)
{
    char c1[40], c2[40], r[40];
    unsigned k, before, calls;

    begin();
    resolve(KEYS("user=e1!"), c1);
    resolve(KEYS("user=e2!"), c2);
    before = mem_identity_fail_from(repo, 0);
    resolve(KEYS("user=e1!", "user=e2!", "anon=e3"), r);
    calls = mem_identity_fail_from(repo, 0) - before;
    CU_ASSERT_STRING_EQUAL(r, c1);
    /* 3 finds, 2 canonical, a merge, the new key */
    CU_ASSERT_EQUAL(calls, 7);
    end();
    for (k = 1; k <= calls + 1; k++) {
        begin();
        resolve(KEYS("user=e1!"), c1);
        resolve(KEYS("user=e2!"), c2);
        mem_identity_fail_from(repo, k);
        CU_ASSERT_EQUAL(
            run_resolve(KEYS("user=e1!", "user=e2!", "anon=e3"), NULL, 0, r),
            k <= calls ? OG_ERR_IO : OG_OK);
        end();
    }
}

int main(void)
{
    static const tu_test_t both[] = {
        {"new and known keys", test_new_and_known},
        {"unverified keys never join", test_unverified_never_joins},
        {"verified keys join, the older survives", test_verified_joins},
        {"device keys claimed by a verified event", test_device_claims},
        {"a public client's claims choose nobody", test_untrusted},
        {"no key, no customer: nothing", test_nothing_to_resolve},
    };
    CU_pSuite mem;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    tu_add_both("resolution", both, OG__ARRAY_SIZE(both), NULL, &mem);
    CU_add_test(mem, "every error of the repository ends resolution",
                test_errors_propagate);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
