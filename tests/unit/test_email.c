/*
 * test_email.c: the email channel's pure parts: addresses (parsed and
 * refused), headers encoded per RFC 2047 (UTF-8 cut between characters,
 * line breaks never passed into a header, decoded back by base64), signed
 * conversation tokens in Reply-To (a tampered one refused), and the
 * classes of SMTP replies.
 */
#include "config.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"
#include "testutil.h"

static void test_addresses(void)
{
    char name[100], addr[300];

    CU_ASSERT_EQUAL(og_email_parse_address("shop@example.com", name,
                                           sizeof(name), addr, sizeof(addr)),
                    0);
    CU_ASSERT_STRING_EQUAL(name, "");
    CU_ASSERT_STRING_EQUAL(addr, "shop@example.com");
    CU_ASSERT_EQUAL(
        og_email_parse_address(" \"Zoë's Shop\" <zoe@shop.example> ", name,
                               sizeof(name), addr, sizeof(addr)),
        0);
    CU_ASSERT_STRING_EQUAL(name, "Zoë's Shop");
    CU_ASSERT_STRING_EQUAL(addr, "zoe@shop.example");
    CU_ASSERT_EQUAL(og_email_parse_address("Shop <no-at-sign>", name,
                                           sizeof(name), addr, sizeof(addr)),
                    -1);
    CU_ASSERT_EQUAL(og_email_parse_address("Shop <a@b.c> extra", name,
                                           sizeof(name), addr, sizeof(addr)),
                    -1);
    CU_ASSERT_EQUAL(og_email_valid_address("a@b.c"), 0);
    CU_ASSERT_EQUAL(og_email_valid_address("a b@c.d"), -1);
    CU_ASSERT_EQUAL(og_email_valid_address("a@b.c\r\nBcc: x@y.z"), -1);
    CU_ASSERT_EQUAL(og_email_valid_address("a@@b.c"), -1);
    CU_ASSERT_EQUAL(og_email_valid_address("@b.c"), -1);
    CU_ASSERT_EQUAL(og_email_valid_address("a@localhost"), -1);
}

/* The text of encoded words (=?UTF-8?B?..?=, folded) decoded back. */
static void decode(const char *h, char *out, size_t outlen)
{
    size_t o = 0;
    const char *p = h;

    while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
        const char *end = strstr(p + 10, "?=");
        unsigned char buf[200];
        int n;

        CU_ASSERT_PTR_NOT_NULL_FATAL(end);
        CU_ASSERT((end - p) + 2 <= 75); /* RFC 2047's limit */
        n = EVP_DecodeBlock(buf, (const unsigned char *)p + 10,
                            (int)(end - p - 10));
        while (n > 0 && end[-1] == '=') { /* padding decodes as zeros */
            n--;
            end--;
        }
        CU_ASSERT_FATAL(o + (size_t)n < outlen);
        memcpy(out + o, buf, (size_t)n);
        o += (size_t)n;
        p = strstr(p + 10, "?=") + 2;
    }
    out[o] = '\0';
}

static void test_headers(void)
{
    static const char *const long_subject =
        "Zoë, ton panier t'attend : bottes, chaussettes, écharpe et "
        "bonnet — jusqu'à dimanche 😀";
    char *h, back[400];

    h = og_email_encoded_header("Subject", "Your cart", 9);
    CU_ASSERT_STRING_EQUAL(h, "Subject: Your cart");
    free(h);
    h = og_email_encoded_header("Subject", long_subject, strlen(long_subject));
    CU_ASSERT_EQUAL(strncmp(h, "Subject: =?UTF-8?B?", 19), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "?=\r\n =?UTF-8?B?")); /* folded */
    decode(h, back, sizeof(back));
    CU_ASSERT_STRING_EQUAL(back, long_subject); /* no character cut */
    free(h);
    /* a line break in a value never starts a new header */
    h = og_email_encoded_header("Subject", "Hi\r\nBcc: evil@example.com",
                                strlen("Hi\r\nBcc: evil@example.com"));
    CU_ASSERT_PTR_NULL(strstr(h, "\r\nBcc"));
    decode(h, back, sizeof(back));
    CU_ASSERT_STRING_EQUAL(back, "HiBcc: evil@example.com");
    free(h);
    h = og_email_address_header("From", "Shop", "shop@example.com");
    CU_ASSERT_STRING_EQUAL(h, "From: \"Shop\" <shop@example.com>");
    free(h);
    h = og_email_address_header("From", "Zoë", "zoe@example.com");
    CU_ASSERT_STRING_EQUAL(h, "From: =?UTF-8?B?Wm/Dqw==?= <zoe@example.com>");
    free(h);
    h = og_email_address_header("To", NULL, "a@b.c");
    CU_ASSERT_STRING_EQUAL(h, "To: a@b.c");
    free(h);
}

static void test_tokens(void)
{
    static const unsigned char secret[] = "0123456789abcdef-secret";
    char addr[300], conv[100];

    og_email_reply_address("replies", "shop.example",
                           "01a22aed-48ad-7159-bb86-7bcee5d6d21b", secret,
                           sizeof(secret) - 1, addr, sizeof(addr));
    CU_ASSERT_EQUAL(
        strncmp(addr, "replies+01a22aed-48ad-7159-bb86-7bcee5d6d21b.", 45), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(addr, "@shop.example"));
    CU_ASSERT_EQUAL(og_email_reply_token(addr, secret, sizeof(secret) - 1, conv,
                                         sizeof(conv)),
                    0);
    CU_ASSERT_STRING_EQUAL(conv, "01a22aed-48ad-7159-bb86-7bcee5d6d21b");
    /* another conversation with the same signature */
    addr[9] = addr[9] == '0' ? '1' : '0';
    CU_ASSERT_EQUAL(og_email_reply_token(addr, secret, sizeof(secret) - 1, conv,
                                         sizeof(conv)),
                    -1);
    CU_ASSERT_EQUAL(og_email_reply_token("replies@shop.example", secret,
                                         sizeof(secret) - 1, conv,
                                         sizeof(conv)),
                    -1);
    /* the right token, another secret */
    og_email_reply_address("r", "s.example", "c-1", secret, sizeof(secret) - 1,
                           addr, sizeof(addr));
    CU_ASSERT_EQUAL(og_email_reply_token(addr, (const unsigned char *)"x", 1,
                                         conv, sizeof(conv)),
                    -1);
}

static void test_classes(void)
{
    CU_ASSERT_EQUAL(og_email_classify(451, CURLE_RECV_ERROR), OG_ERR_RETRY);
    CU_ASSERT_EQUAL(og_email_classify(421, CURLE_RECV_ERROR), OG_ERR_RETRY);
    CU_ASSERT_EQUAL(og_email_classify(0, CURLE_COULDNT_CONNECT), OG_ERR_RETRY);
    CU_ASSERT_EQUAL(og_email_classify(550, CURLE_SEND_ERROR), OG_ERR_REJECTED);
    CU_ASSERT_EQUAL(og_email_classify(554, CURLE_SEND_ERROR), OG_ERR_REJECTED);
    CU_ASSERT_EQUAL(og_email_classify(535, CURLE_LOGIN_DENIED), OG_ERR_RETRY);
    CU_ASSERT_EQUAL(og_email_classify(0, CURLE_USE_SSL_FAILED), OG_ERR_RETRY);
}

/* Authentication-Results as RFC 8601 parses it: each forgery of issue 15.
 * Runs inside test_inbound, while GMime is initialised (it cannot be
 * initialised again once shut down). */
static void test_auth_results(void)
{
    static const struct {
        const char *v;
        int want;
    } cases[] = {
        {" mx.shop.example; dkim=pass; dmarc=pass header.from=example.com", 1},
        {"mx.shop.example 1; dmarc=pass (p=none) header.from=Example.COM", 1},
        {"mx.shop.example;\r\n dkim=pass header.d=example.com;\r\n "
         "dmarc=pass header.from=example.com",
         1},
        {"mx.shop.example; dmarc=fail header.from=example.com", 0},
        {"mx.shop.example; dmarc=pass", 0},
        /* the string in a property, a comment, a quoted string */
        {"mx.shop.example; spf=pass smtp.helo=dmarc=pass "
         "header.from=example.com",
         0},
        {"mx.shop.example; dkim=pass (dmarc=pass header.from=example.com)", 0},
        {"mx.shop.example; spf=pass smtp.mailfrom=\"x dmarc=pass "
         "header.from=example.com\"",
         0},
        /* another domain that ends or starts like it */
        {"mx.shop.example; dmarc=pass header.from=example.com.evil.test", 0},
        {"mx.shop.example; dmarc=pass header.from=evilexample.com", 0},
        /* the first dmarc result decides */
        {"mx.shop.example; dmarc=fail header.from=example.com; dmarc=pass "
         "header.from=example.com",
         0},
        /* other authserv-ids */
        {"mx.shop.example.evil.test; dmarc=pass header.from=example.com", -1},
        {"(mx.shop.example) evil; dmarc=pass header.from=example.com", -1},
        {"mx.shop.example; dmarc=pass header.from=example.com (unclosed", 1},
        {"", -1},
    };
    static const char forged_below[] =
        "From: zoe@example.com\r\n"
        "Authentication-Results: mx.shop.example; dmarc=fail "
        "header.from=example.com\r\n"
        "Authentication-Results: mx.shop.example; dmarc=pass "
        "header.from=example.com\r\n\r\nhi\r\n";
    static const char *const senders[] = {
        "From: zoe@example.com\r\nFrom: eve@evil.test\r\n",
        "From: zoe@example.com, eve@evil.test\r\n",
        "From: \"zoe@example.com\" <zoe@example.com>\r\n",
        "From: friends: zoe@example.com;\r\n",
        "From: Zoe <zoe@example.com>\r\n", /* the one that passes */
    };
    og_email_in_t m;
    char why[200], msg[600];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got =
            og_email_ar_pass(cases[i].v, "mx.shop.example", "example.com");

        if (got != cases[i].want)
            fprintf(stderr, "case %zu: %d, not %d: %s\n", i, got, cases[i].want,
                    cases[i].v);
        CU_ASSERT_EQUAL(got, cases[i].want);
    }
    CU_ASSERT_EQUAL_FATAL(og_email_parse_in(forged_below, strlen(forged_below),
                                            "mx.shop.example", &m, why,
                                            sizeof(why)),
                          0);
    CU_ASSERT_EQUAL(m.authenticated, 0); /* the topmost one decides */
    og_email_in_free(&m);
    for (i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
        snprintf(msg, sizeof(msg),
                 "%sAuthentication-Results: mx.shop.example; dmarc=pass "
                 "header.from=example.com\r\n\r\nhi\r\n",
                 senders[i]);
        if (og_email_parse_in(msg, strlen(msg), "mx.shop.example", &m, why,
                              sizeof(why)) != 0) {
            CU_ASSERT(i < 4); /* refused outright is fine for a forgery */
            continue;
        }
        CU_ASSERT_EQUAL(m.authenticated, i == 4);
        og_email_in_free(&m);
    }
}

static void test_inbound(void)
{
    static const char reply[] =
        "From: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.com>\r\n"
        "To: replies+c-1.0011223344556677@shop.example, other@x.example\r\n"
        "Subject: Re: hi\r\nMessage-ID: <r1@example.com>\r\n"
        "In-Reply-To: <j1.0.email@shop.example>\r\n"
        "References: <a@x> <j1.0.email@shop.example>\r\n"
        "Authentication-Results: mx.shop.example; dkim=pass; dmarc=pass "
        "header.from=example.com\r\n"
        "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Caf=E9 au lait\r\n";
    static const char ooo[] = "From: a@b.example\r\nSubject: away\r\n"
                              "Auto-Submitted: auto-replied\r\n\r\nbye\r\n";
    static const char dsn[] =
        "From: MAILER-DAEMON@mx.example\r\nSubject: failed\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; "
        "boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
        "sorry\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        "Final-Recipient: rfc822; <bob@example.com>\r\nAction: failed\r\n"
        "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 no such user\r\n"
        "\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: shop@shop.example\r\nMessage-ID: <j9.0.email@shop.example>"
        "\r\n\r\nhello\r\n--B--\r\n";
    og_email_in_t m;
    char why[200];

    og_email_gmime_ref();
    CU_ASSERT_EQUAL_FATAL(og_email_parse_in(reply, strlen(reply),
                                            "mx.shop.example", &m, why,
                                            sizeof(why)),
                          0);
    CU_ASSERT_EQUAL(m.kind, OG_EMAIL_IN_MESSAGE);
    CU_ASSERT_STRING_EQUAL(m.from, "zoe@example.com");
    CU_ASSERT_STRING_EQUAL(m.from_name, "Zoë");
    CU_ASSERT_STRING_EQUAL(m.message_id, "r1@example.com");
    CU_ASSERT_EQUAL(m.nthread, 2); /* In-Reply-To, then the other ref */
    CU_ASSERT_STRING_EQUAL(m.thread[0], "j1.0.email@shop.example");
    CU_ASSERT_STRING_EQUAL(m.thread[1], "a@x");
    CU_ASSERT_EQUAL(m.nrcpt, 2);
    CU_ASSERT_STRING_EQUAL(m.text, "Café au lait\r\n");
    CU_ASSERT_EQUAL(m.authenticated, 1);
    CU_ASSERT_EQUAL(m.date_ms, 1796032800000LL);
    og_email_in_free(&m);
    /* another MTA's word is not trusted */
    CU_ASSERT_EQUAL(og_email_parse_in(reply, strlen(reply), "mx.other", &m, why,
                                      sizeof(why)),
                    0);
    CU_ASSERT_EQUAL(m.authenticated, 0);
    og_email_in_free(&m);
    CU_ASSERT_EQUAL(
        og_email_parse_in(ooo, strlen(ooo), NULL, &m, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(m.kind, OG_EMAIL_IN_AUTO_REPLY);
    og_email_in_free(&m);
    CU_ASSERT_EQUAL(
        og_email_parse_in(dsn, strlen(dsn), NULL, &m, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(m.kind, OG_EMAIL_IN_BOUNCE);
    CU_ASSERT_STRING_EQUAL(m.recipient, "bob@example.com");
    CU_ASSERT_STRING_EQUAL(m.status, "5.1.1");
    CU_ASSERT_STRING_EQUAL(m.action, "failed");
    CU_ASSERT_STRING_EQUAL(m.orig_message_id, "j9.0.email@shop.example");
    CU_ASSERT_PTR_NOT_NULL(strstr(m.diagnostic, "550 no such user"));
    og_email_in_free(&m);
    CU_ASSERT_EQUAL(
        og_email_parse_in("no headers at all", 17, NULL, &m, why, sizeof(why)),
        -1);
    og_email_in_free(&m);
    test_auth_results();
    og_email_gmime_unref();
}

/* UID SEARCH answers (RFC 9051 7.3.4): nz-numbers only, bounded. */
static void test_imap_search(void)
{
    unsigned long u[4];

    CU_ASSERT_EQUAL(
        og_email_imap_search("* SEARCH 3 4 9\r\nA1 OK done\r\n", u, 4), 3);
    CU_ASSERT_EQUAL(u[0], 3);
    CU_ASSERT_EQUAL(u[2], 9);
    CU_ASSERT_EQUAL(og_email_imap_search("* SEARCH\r\nA1 OK\r\n", u, 4), 0);
    /* two lines, the bound kept */
    CU_ASSERT_EQUAL(
        og_email_imap_search("* SEARCH 1 2\r\n* SEARCH 3 4 5\r\n", u, 4), 4);
    CU_ASSERT_EQUAL(u[3], 4);
    /* not nz-numbers: 0, negative, too large, trailing letters */
    CU_ASSERT_EQUAL(og_email_imap_search("* SEARCH 7 0 8\r\n", u, 4), 1);
    CU_ASSERT_EQUAL(og_email_imap_search("* SEARCH -5\r\n", u, 4), 0);
    CU_ASSERT_EQUAL(og_email_imap_search("* SEARCH 4294967296\r\n", u, 4), 0);
    CU_ASSERT_EQUAL(og_email_imap_search("* SEARCH 4294967295\r\n", u, 4), 1);
    CU_ASSERT_EQUAL(u[0], 4294967295ul);
    CU_ASSERT_EQUAL(og_email_imap_search("* SEARCH 12x 13\r\n", u, 4), 0);
    CU_ASSERT_EQUAL(og_email_imap_search("A1 SEARCH 5\r\n", u, 4), 0);
}

int main(void)
{
    CU_pSuite s;

    CU_initialize_registry();
    s = CU_add_suite("email", NULL, NULL);
    CU_add_test(s, "addresses", test_addresses);
    CU_add_test(s, "headers (RFC 2047)", test_headers);
    CU_add_test(s, "signed conversation tokens", test_tokens);
    CU_add_test(s, "SMTP reply classes", test_classes);
    CU_add_test(s,
                "received mail: reply, auto-reply, DSN, "
                "Authentication-Results",
                test_inbound);
    CU_add_test(s, "IMAP SEARCH responses", test_imap_search);
    return tu_run();
}
