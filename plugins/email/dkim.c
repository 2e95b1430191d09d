/*
 * dkim.c: a message signed with DKIM (email.h). libcurl's MIME API writes
 * its boundaries while it sends, so a message to sign is written here
 * instead, with GMime (multipart/alternative, quoted-printable, CRLF), then
 * signed with libopendkim (relaxed/relaxed, rsa-sha256) and handed to
 * libcurl as plain bytes.
 */
#include <gmime/gmime.h>
#include <opendkim/dkim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

static GMimeTextPart *text_part(const char *subtype, const char *text,
                                size_t len)
{
    GMimeTextPart *p = g_mime_text_part_new_with_subtype(subtype);
    char *copy = g_strndup(text, len);

    g_mime_text_part_set_text(p, copy);
    g_mime_text_part_set_charset(p, "utf-8");
    g_mime_part_set_content_encoding(GMIME_PART(p),
                                     GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    g_free(copy);
    return p;
}

/* The body as MIME entity bytes (its own Content-* headers first), CRLF. */
static char *body_bytes(const char *text, size_t tl, const char *html,
                        size_t hl)
{
    GMimeObject *top;
    GMimeFormatOptions *fo = g_mime_format_options_new();
    char *out;

    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    if (text != NULL && html != NULL) {
        GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
        GMimeTextPart *a = text_part("plain", text, tl),
                      *b = text_part("html", html, hl);

        g_mime_multipart_add(alt, GMIME_OBJECT(a));
        g_mime_multipart_add(alt, GMIME_OBJECT(b));
        g_object_unref(a);
        g_object_unref(b);
        top = GMIME_OBJECT(alt);
    } else {
        top = GMIME_OBJECT(html ? text_part("html", html, hl)
                                : text_part("plain", text ? text : "", tl));
    }
    out = g_mime_object_to_string(top, fo);
    g_object_unref(top);
    g_mime_format_options_free(fo);
    return out;
}

int og_email_dkim_message(const char *const *headers, const char *text,
                          size_t tl, const char *html, size_t hl,
                          const og_email_dkim_t *k, char **out, size_t *outlen,
                          char *why, size_t whylen)
{
    DKIM_LIB *lib = NULL;
    DKIM *dk = NULL;
    DKIM_STAT st = DKIM_STAT_OK;
    char *body = body_bytes(text, tl, html, hl), *msg = NULL;
    unsigned char *sig = NULL;
    size_t len = 0, n = 0, i, siglen = 0;
    int rc = -1;

    if (body == NULL) {
        snprintf(why, whylen, "DKIM: cannot write the message");
        return -1;
    }
    for (i = 0; headers[i] != NULL; i++)
        len += strlen(headers[i]) + 2;
    len += 19 + strlen(body) + 2;
    if ((msg = malloc(len + 1)) == NULL)
        goto out;
    for (i = 0; headers[i] != NULL; i++)
        n += (size_t)snprintf(msg + n, len + 1 - n, "%s\r\n", headers[i]);
    n +=
        (size_t)snprintf(msg + n, len + 1 - n, "MIME-Version: 1.0\r\n%s", body);
    if (n < 2 || msg[n - 2] != '\r' || msg[n - 1] != '\n') /* a lone part */
        n += (size_t)snprintf(msg + n, len + 1 - n, "\r\n");
    lib = dkim_init(NULL, NULL);
    if (lib == NULL) {
        snprintf(why, whylen, "DKIM: cannot start libopendkim");
        goto out;
    }
    dk = dkim_sign(lib, (const unsigned char *)"omnigate", NULL,
                   (dkim_sigkey_t)k->key, (const unsigned char *)k->selector,
                   (const unsigned char *)k->domain, DKIM_CANON_RELAXED,
                   DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
    if (dk == NULL || st != DKIM_STAT_OK ||
        (st = dkim_chunk(dk, (unsigned char *)msg, n)) != DKIM_STAT_OK ||
        (st = dkim_chunk(dk, NULL, 0)) != DKIM_STAT_OK ||
        (st = dkim_eom(dk, NULL)) != DKIM_STAT_OK ||
        (st = dkim_getsighdr_d(dk, strlen("DKIM-Signature: "), &sig,
                               &siglen)) != DKIM_STAT_OK) {
        snprintf(why, whylen, "DKIM: signing failed (%s)",
                 dkim_getresultstr(st));
        goto out;
    }
    /* the header as SMTP wants it: folded lines end in CRLF */
    *out = malloc(strlen("DKIM-Signature: ") + siglen * 2 + 2 + n + 1);
    if (*out == NULL)
        goto out;
    len = (size_t)snprintf(*out, 17, "DKIM-Signature: ");
    for (i = 0; i < siglen; i++) {
        if (sig[i] == '\n' && (i == 0 || sig[i - 1] != '\r'))
            (*out)[len++] = '\r';
        (*out)[len++] = (char)sig[i];
    }
    memcpy(*out + len, "\r\n", 2);
    len += 2;
    memcpy(*out + len, msg, n);
    len += n;
    (*out)[len] = '\0';
    *outlen = len;
    rc = 0;
out:
    if (dk != NULL)
        dkim_free(dk);
    if (lib != NULL)
        dkim_close(lib);
    free(msg);
    g_free(body);
    return rc;
}
