/*
 * email.h: what the email channel's parts share: addresses and headers
 * (RFC 5322 / RFC 2047), conversation tokens, SMTP reply classes. Pure
 * functions, tested by tests/unit/test_email.c.
 */
#ifndef OG_PLUGIN_EMAIL_H
#define OG_PLUGIN_EMAIL_H

#include <stddef.h>

#include <omnigate/og_errors.h>

/* "Name <addr>" or "addr" into name ("" when none) and addr; 0, or -1
 * when it is not one address. */
int og_email_parse_address(const char *in, char *name, size_t namelen,
                           char *addr, size_t addrlen);

/* 0 when addr is one plain address (local@domain, printable ASCII, no
 * spaces, brackets or line breaks, at most 254 characters). */
int og_email_valid_address(const char *addr);

/* "Field: value" with value as is when it is printable ASCII, else as
 * RFC 2047 encoded words (UTF-8, base64) folded at 75 characters; line
 * breaks can never pass into the header. malloc'd, NULL when out of
 * memory. */
char *og_email_encoded_header(const char *field, const char *value, size_t len);

/* "Field: addr" or "Field: NAME <addr>" (the name encoded as above);
 * malloc'd. */
char *og_email_address_header(const char *field, const char *name,
                              const char *addr);

/* The Reply-To of a conversation: user+CONV.SIG@domain, SIG the first 16
 * hex digits of HMAC-SHA256(secret, CONV). */
void og_email_reply_address(const char *user, const char *domain,
                            const char *conv, const unsigned char *secret,
                            size_t secret_len, char *out, size_t outlen);

/* The conversation of a reply address whose signature holds (into conv),
 * 0; -1 when the address carries none or a forged one. */
int og_email_reply_token(const char *addr, const unsigned char *secret,
                         size_t secret_len, char *conv, size_t convlen);

/* DKIM signing (dkim.c): the private key (PEM), selector and domain. */
typedef struct og_email_dkim_s {
    const char *key, *selector, *domain;
} og_email_dkim_t;

/* The whole message (headers, each one line or CRLF-folded, then the body
 * as multipart/alternative of text and html, either of which may be
 * NULL), signed: *out (malloc'd) starts with its DKIM-Signature. 0, or -1
 * with the reason in why. */
int og_email_dkim_message(const char *const *headers, const char *text,
                          size_t tl, const char *html, size_t hl,
                          const og_email_dkim_t *k, char **out, size_t *outlen,
                          char *why, size_t whylen);

/* v (n strings) as a MessagePack array into *out (malloc'd); 0, or -1. */
int og_email_pack_strings(const char *const *v, size_t n, unsigned char **out,
                          size_t *len);

/* What an SMTP failure means: OG_ERR_RETRY (4xx, no reply: the relay was
 * not reached, TLS or authentication problems that an operator fixes) or
 * OG_ERR_REJECTED (5xx about the message or its recipient). */
og_err_t og_email_classify(int smtp_code, int curl_code);

/* ---- inbound mail (inbound.c, GMime) ----------------------------------- */

#include <stdint.h>

#define OG_EMAIL_MAX_THREAD 16
#define OG_EMAIL_MAX_RCPT 8

enum {
    OG_EMAIL_IN_MESSAGE,    /* a message a person wrote: a reply */
    OG_EMAIL_IN_AUTO_REPLY, /* Auto-Submitted, out-of-office */
    OG_EMAIL_IN_BOUNCE      /* multipart/report; report-type=delivery-status */
};

typedef struct og_email_in_s {
    int kind;
    char from[320], from_name[200];
    char rcpt[OG_EMAIL_MAX_RCPT][320]; /* To, Cc, Delivered-To */
    size_t nrcpt;
    char message_id[300]; /* without <> */
    char subject[400];
    char *text; /* UTF-8 (g_free'd by og_email_in_free), or NULL */
    int text_is_html;
    char *thread[OG_EMAIL_MAX_THREAD]; /* In-Reply-To, then References */
    size_t nthread;
    int64_t date_ms;   /* Date:, 0 when absent */
    int authenticated; /* the trust rule held for From */
    /* a bounce */
    char orig_message_id[300], recipient[320], action[32], status[16];
    char diagnostic[400];
} og_email_in_t;

/* GMime, initialised while one channel instance uses it. */
void og_email_gmime_ref(void);
void og_email_gmime_unref(void);

/* Reads the message in data. authserv: the Authentication-Results
 * authserv-id trusted to vouch for senders (dmarc=pass for the From
 * domain), or NULL. 0, or -1 with the reason in why (no From address,
 * not MIME at all). */
/* 1 when the Authentication-Results header value v is from authserv
 * (exactly) and says dmarc=pass for header.from=domain (RFC 8601 parsed:
 * comments and quoted strings are no results); 0 when not or unparsable;
 * -1 when v is another authserv-id's. */
int og_email_ar_pass(const char *v, const char *authserv, const char *domain);

/* The UIDs of the untagged "* SEARCH 3 4 9" lines of an IMAP response
 * (RFC 9051 7.3.4; nz-number: 1 to 4294967295, digits only), at most max
 * into uids in the order given; a malformed number ends its line. Returns
 * how many. */
size_t og_email_imap_search(const char *resp, unsigned long *uids, size_t max);

int og_email_parse_in(const char *data, size_t len, const char *authserv,
                      og_email_in_t *m, char *why, size_t whylen);
void og_email_in_free(og_email_in_t *m);

#endif /* OG_PLUGIN_EMAIL_H */
