/*
 * test_consent.c: the consent rules (domain/consent.h) on two
 * implementations of the consent repository: the SQLite store's and the
 * in-memory one of tests/mem_repos.c. Statements recorded from an event's
 * consent map, the newest and most specific deciding, the default for
 * marketing, transactional messages and the bypass, stale statements
 * ignored, malformed entries skipped; every error of the repository ends
 * the rules with it.
 */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/consent.h"
#include "mem_repos.h"
#include "base/util.h"
#include "testutil.h"

static char *dir;
static tu_repos_t rp;
static og__consent_repo_t *repo;

static void open_repos(void)
{
    tu_repos_open(&rp, dir);
    repo = rp.consent;
}

static void close_repos(void)
{
    tu_repos_close(&rp);
    repo = NULL;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Records {purpose: {channel: v}} as customer's statement made at at. */
static og_err_t state(const char *cust, const char *purpose, const char *ch,
                      int v, uint64_t at)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    og_err_t rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, purpose);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, ch);
    if (v)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    rc = og__consent_record(repo, cust, (const uint8_t *)sb.data, sb.size,
                            "web", at);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The verdict; a refusal must say why. */
static int allows(const char *cust, const char *purpose, const char *channel,
                  const og__consent_rules_t *rules, const char *why_part)
{
    char why[256] = "";
    int allowed = -1;

    CU_ASSERT_EQUAL(og__consent_decide(repo, cust, purpose, channel, rules,
                                       &allowed, why, sizeof(why)),
                    OG_OK);
    CU_ASSERT(allowed == 0 || allowed == 1);
    if (!allowed) {
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "suppressed: "));
        if (why_part != NULL && strstr(why, why_part) == NULL) {
            fprintf(stderr, "\n  want '%s' in '%s'\n", why_part, why);
            CU_FAIL("the reason");
        }
    }
    return allowed;
}

static const char *const sms[] = {"sms"};
static const og__consent_rules_t deny = {0, NULL, 0}, allow = {1, NULL, 0},
                                 bypass = {0, sms, 1};

static void test_decisions(void)
{
    open_repos();
    CU_ASSERT_EQUAL(state("k1", "marketing", "email", 1, 100), OG_OK);
    /* no statement: the default decides */
    CU_ASSERT_EQUAL(allows("k1", "marketing", "sms.twilio", &deny,
                           "no marketing consent for 'sms.twilio'"),
                    0);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "sms.twilio", &allow, NULL), 1);
    /* by kind: "email" covers the instance email.smtp */
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email.smtp", &deny, NULL), 1);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email", &deny, NULL), 1);
    /* a newer "*" opt-out covers everything, and names itself */
    CU_ASSERT_EQUAL(state("k1", "marketing", "*", 0, 200), OG_OK);
    CU_ASSERT_EQUAL(
        allows("k1", "marketing", "email", &allow, "refused marketing on '*'"),
        0);
    /* an older statement arriving later changes nothing */
    CU_ASSERT_EQUAL(state("k1", "marketing", "email.smtp", 1, 150), OG_OK);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email.smtp", &deny, NULL), 0);
    /* a newer specific opt-in wins over the older "*" */
    CU_ASSERT_EQUAL(state("k1", "marketing", "email.smtp", 1, 300), OG_OK);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email.smtp", &deny, NULL), 1);
    CU_ASSERT_EQUAL(allows("k1", "marketing", "email.other", &deny, NULL), 0);
    /* transactional: blocked by the marketing opt-out unless bypassed */
    CU_ASSERT_EQUAL(
        allows("k1", "transactional", "sms", &deny, "transactional_bypass"), 0);
    CU_ASSERT_EQUAL(allows("k1", "transactional", "sms", &bypass, NULL), 1);
    CU_ASSERT_EQUAL(allows("k1", "transactional", "sms.x", &bypass, NULL), 1);
    CU_ASSERT_EQUAL(allows("k1", "transactional", "email.smtp", &bypass, NULL),
                    1);
    /* ... and by its own opt-out, bypass or not */
    CU_ASSERT_EQUAL(state("k1", "transactional", "sms", 0, 400), OG_OK);
    CU_ASSERT_EQUAL(allows("k1", "transactional", "sms", &bypass,
                           "refused transactional messages on 'sms'"),
                    0);
    /* a customer without statements: transactional goes */
    CU_ASSERT_EQUAL(state("k2", "transactional", "push", 1, 100), OG_OK);
    CU_ASSERT_EQUAL(allows("k2", "transactional", "email", &deny, NULL), 1);
    CU_ASSERT_EQUAL(allows("k2", "marketing", "email", &deny, NULL), 0);
    /* an unknown customer: marketing follows the default, the rest goes */
    CU_ASSERT_EQUAL(allows("", "marketing", "email", &deny, NULL), 0);
    CU_ASSERT_EQUAL(allows("", "marketing", "email", &allow, NULL), 1);
    CU_ASSERT_EQUAL(allows("", "transactional", "email", &deny, NULL), 1);
    /* another purpose is not checked */
    CU_ASSERT_EQUAL(allows("k1", "service", "sms", &deny, NULL), 1);
    close_repos();
}

/* At the same time, the statement for the instance beats the kind's,
 * which beats "*". */
static void test_same_time(void)
{
    open_repos();
    CU_ASSERT_EQUAL(state("k3", "marketing", "*", 1, 500), OG_OK);
    CU_ASSERT_EQUAL(state("k3", "marketing", "email", 0, 500), OG_OK);
    CU_ASSERT_EQUAL(allows("k3", "marketing", "email.smtp", &allow,
                           "refused marketing on 'email'"),
                    0);
    CU_ASSERT_EQUAL(state("k3", "marketing", "email.smtp", 1, 500), OG_OK);
    CU_ASSERT_EQUAL(allows("k3", "marketing", "email.smtp", &deny, NULL), 1);
    CU_ASSERT_EQUAL(allows("k3", "marketing", "email.other", &allow, NULL), 0);
    CU_ASSERT_EQUAL(allows("k3", "marketing", "sms", &deny, NULL), 1);
    close_repos();
}

/* Entries of another shape in the consent map are skipped, the others
 * kept. */
static void test_malformed_entries(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    open_repos();
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "marketing");
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "email");
    msgpack_pack_int(&pk, 1); /* not a boolean */
    msgpack_pack_int(&pk, 7); /* not a channel */
    msgpack_pack_true(&pk);
    pack_str(&pk, "sms");
    msgpack_pack_true(&pk);
    pack_str(&pk, "transactional");
    pack_str(&pk, "yes"); /* not a map */
    msgpack_pack_int(&pk, 3);
    msgpack_pack_nil(&pk);
    CU_ASSERT_EQUAL(og__consent_record(repo, "k4", (const uint8_t *)sb.data,
                                       sb.size, "web", 10),
                    OG_OK);
    CU_ASSERT_EQUAL(allows("k4", "marketing", "sms", &deny, NULL), 1);
    CU_ASSERT_EQUAL(allows("k4", "marketing", "email", &deny, NULL), 0);
    /* not a map at all, and truncated bytes: nothing, no error */
    CU_ASSERT_EQUAL(
        og__consent_record(repo, "k4", (const uint8_t *)"\xc3", 1, "web", 11),
        OG_OK);
    CU_ASSERT_EQUAL(og__consent_record(repo, "k4", (const uint8_t *)sb.data,
                                       sb.size / 2, "web", 12),
                    OG_OK);
    msgpack_sbuffer_destroy(&sb);
    close_repos();
}

/* Each call of the repository fails in turn: the rules stop with its
 * error. */
static void test_errors_propagate(void)
{
    char why[256];
    unsigned before, calls, k;
    int allowed;

    open_repos(); /* in memory */
    CU_ASSERT_EQUAL(state("k5", "marketing", "sms", 0, 1), OG_OK);
    before = mem_consent_fail_from(repo, 0);
    CU_ASSERT_EQUAL(og__consent_decide(repo, "k5", "transactional", "sms",
                                       &deny, &allowed, why, sizeof(why)),
                    OG_OK);
    calls = mem_consent_fail_from(repo, 0) - before;
    CU_ASSERT_EQUAL(calls, 2); /* its own statement, then marketing's */
    CU_ASSERT_EQUAL(allowed, 0);
    for (k = 1; k <= calls + 1; k++) {
        mem_consent_fail_from(repo, k);
        CU_ASSERT_EQUAL(og__consent_decide(repo, "k5", "transactional", "sms",
                                           &deny, &allowed, why, sizeof(why)),
                        k <= calls ? OG_ERR_IO : OG_OK);
    }
    mem_consent_fail_from(repo, 1);
    CU_ASSERT_EQUAL(state("k5", "marketing", "email", 1, 2), OG_ERR_IO);
    close_repos();
}

int main(void)
{
    static const tu_test_t both[] = {
        {"the newest, most specific statement decides", test_decisions},
        {"at the same time: instance, kind, then *", test_same_time},
        {"malformed entries are skipped", test_malformed_entries},
    };
    CU_pSuite mem;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    tu_add_both("consent rules", both, OG__ARRAY_SIZE(both), NULL, &mem);
    CU_add_test(mem, "every error of the repository ends the rules",
                test_errors_propagate);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
