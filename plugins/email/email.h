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

/* What an SMTP failure means: OG_ERR_RETRY (4xx, no reply: the relay was
 * not reached, TLS or authentication problems that an operator fixes) or
 * OG_ERR_REJECTED (5xx about the message or its recipient). */
og_err_t og_email_classify(int smtp_code, int curl_code);

#endif /* OG_PLUGIN_EMAIL_H */
