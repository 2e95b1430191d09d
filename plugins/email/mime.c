/*
 * mime.c: addresses, headers, conversation tokens and SMTP reply classes
 * of the email channel (email.h).
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

int og_email_valid_address(const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t i, n = strlen(addr);

    if (n == 0 || n > 254 || at == NULL || at == addr || at[1] == '\0' ||
        strchr(addr, '@') != at || strchr(at, '.') == NULL)
        return -1;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)addr[i];

        if (c <= ' ' || c >= 0x7f || strchr("<>()[],;:\\\"", c) != NULL)
            return -1;
    }
    return 0;
}

static char *trim(char *s)
{
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

int og_email_parse_address(const char *in, char *name, size_t namelen,
                           char *addr, size_t addrlen)
{
    char buf[600], *lt, *gt, *nm, *ad;

    if (strlen(in) >= sizeof(buf))
        return -1;
    snprintf(buf, sizeof(buf), "%s", in);
    lt = strchr(buf, '<');
    gt = strrchr(buf, '>');
    if (lt != NULL) {
        if (gt == NULL || gt < lt || trim(gt + 1)[0] != '\0')
            return -1;
        *lt = '\0';
        *gt = '\0';
        nm = trim(buf);
        ad = trim(lt + 1);
        if (nm[0] == '"' && strlen(nm) >= 2 && nm[strlen(nm) - 1] == '"') {
            nm[strlen(nm) - 1] = '\0';
            nm++;
        }
    } else {
        nm = (char *)"";
        ad = trim(buf);
    }
    if (og_email_valid_address(ad) != 0 || strlen(ad) >= addrlen ||
        strlen(nm) >= namelen || strpbrk(nm, "\r\n") != NULL)
        return -1;
    snprintf(name, namelen, "%s", nm);
    snprintf(addr, addrlen, "%s", ad);
    return 0;
}

static int plain(const char *v, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f)
            return 0;
    /* "=?" would read as an encoded word */
    for (i = 0; i + 1 < len; i++)
        if (v[i] == '=' && v[i + 1] == '?')
            return 0;
    return 1;
}

/* Appends value as encoded words: chunks of at most 45 bytes (60 base64
 * characters, 72 with the =?UTF-8?B?...?= around them) cut between UTF-8
 * characters, line breaks dropped, each on its own folded line. */
static void encode_words(char *out, size_t *o, const char *v, size_t len)
{
    size_t i = 0, first = 1;

    while (i < len) {
        unsigned char chunk[48];
        size_t n = 0, k;

        while (i < len && n < 45) {
            size_t cl = 1;
            unsigned char c = (unsigned char)v[i];

            if (c >= 0xf0)
                cl = 4;
            else if (c >= 0xe0)
                cl = 3;
            else if (c >= 0xc0)
                cl = 2;
            if (i + cl > len)
                cl = len - i;
            if (n + cl > 45)
                break;
            for (k = 0; k < cl; k++)
                if (v[i + k] != '\r' && v[i + k] != '\n')
                    chunk[n++] = (unsigned char)v[i + k];
            i += cl;
        }
        if (!first) {
            memcpy(out + *o, "\r\n ", 3);
            *o += 3;
        }
        first = 0;
        memcpy(out + *o, "=?UTF-8?B?", 10);
        *o += 10;
        *o += (size_t)EVP_EncodeBlock((unsigned char *)out + *o, chunk, (int)n);
        memcpy(out + *o, "?=", 2);
        *o += 2;
    }
}

char *og_email_encoded_header(const char *field, const char *value, size_t len)
{
    size_t cap = strlen(field) + 3 + len * 2 + (len / 45 + 1) * 20 + 1, o;
    char *out = malloc(cap);

    if (out == NULL)
        return NULL;
    o = (size_t)snprintf(out, cap, "%s: ", field);
    if (plain(value, len)) {
        memcpy(out + o, value, len);
        o += len;
    } else {
        encode_words(out, &o, value, len);
    }
    out[o] = '\0';
    return out;
}

char *og_email_address_header(const char *field, const char *name,
                              const char *addr)
{
    char *h, *out;
    size_t n;

    if (name == NULL || name[0] == '\0') {
        n = strlen(field) + strlen(addr) + 3;
        out = malloc(n);
        if (out != NULL)
            snprintf(out, n, "%s: %s", field, addr);
        return out;
    }
    /* a plain name is quoted (it may hold commas or dots) */
    if (plain(name, strlen(name)) && strpbrk(name, "\"\\") == NULL) {
        n = strlen(field) + strlen(name) + strlen(addr) + 8;
        out = malloc(n);
        if (out != NULL)
            snprintf(out, n, "%s: \"%s\" <%s>", field, name, addr);
        return out;
    }
    h = og_email_encoded_header(field, name, strlen(name));
    if (h == NULL)
        return NULL;
    n = strlen(h) + strlen(addr) + 4;
    out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s <%s>", h, addr);
    free(h);
    return out;
}

static void sign(const char *conv, const unsigned char *secret,
                 size_t secret_len, char hex[17])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0, i;

    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)conv,
         strlen(conv), mac, &ml);
    for (i = 0; i < 8; i++)
        snprintf(hex + i * 2, 3, "%02x", mac[i]);
}

void og_email_reply_address(const char *user, const char *domain,
                            const char *conv, const unsigned char *secret,
                            size_t secret_len, char *out, size_t outlen)
{
    char sig[17];

    sign(conv, secret, secret_len, sig);
    snprintf(out, outlen, "%s+%s.%s@%s", user, conv, sig, domain);
}

int og_email_reply_token(const char *addr, const unsigned char *secret,
                         size_t secret_len, char *conv, size_t convlen)
{
    const char *plus = strchr(addr, '+'), *at = strrchr(addr, '@'), *dot;
    char c[128], sig[17];
    size_t n;

    if (plus == NULL || at == NULL || at < plus)
        return -1;
    dot = at;
    while (dot > plus && *dot != '.')
        dot--;
    n = (size_t)(dot - plus - 1);
    if (dot == plus || n == 0 || n >= sizeof(c) || n >= convlen ||
        at - dot - 1 != 16)
        return -1;
    memcpy(c, plus + 1, n);
    c[n] = '\0';
    sign(c, secret, secret_len, sig);
    if (CRYPTO_memcmp(sig, dot + 1, 16) != 0)
        return -1;
    snprintf(conv, convlen, "%s", c);
    return 0;
}

og_err_t og_email_classify(int smtp_code, int curl_code)
{
    if (smtp_code == 0 || (smtp_code >= 400 && smtp_code < 500))
        return OG_ERR_RETRY;
    /* authentication and TLS: the relay is fine, our side is not */
    if (smtp_code == 530 || smtp_code == 534 || smtp_code == 535 ||
        smtp_code == 538 || curl_code == CURLE_LOGIN_DENIED ||
        curl_code == CURLE_USE_SSL_FAILED)
        return OG_ERR_RETRY;
    return smtp_code >= 500 ? OG_ERR_REJECTED : OG_ERR_RETRY;
}

int og_email_pack_strings(const char *const *v, size_t n, unsigned char **out,
                          size_t *len)
{
    size_t cap = 5, i, o = 0;
    unsigned char *b;

    for (i = 0; i < n; i++)
        cap += strlen(v[i]) + 5;
    if (n > 0xffff || (b = malloc(cap)) == NULL)
        return -1;
    b[o++] = 0xdc; /* array 16 */
    b[o++] = (unsigned char)(n >> 8);
    b[o++] = (unsigned char)n;
    for (i = 0; i < n; i++) {
        size_t l = strlen(v[i]);

        if (l > 0xffff) {
            free(b);
            return -1;
        }
        b[o++] = 0xda; /* str 16 */
        b[o++] = (unsigned char)(l >> 8);
        b[o++] = (unsigned char)l;
        memcpy(b + o, v[i], l);
        o += l;
    }
    *out = b;
    *len = o;
    return 0;
}
