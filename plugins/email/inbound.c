/*
 * inbound.c: a received email read with GMime (email.h): a reply, an
 * auto-reply or a delivery status notification (RFC 3464), with what the
 * channel's events need from it.
 */
#define _GNU_SOURCE /* strcasestr */
#include <ctype.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "email.h"

/* GMime is initialised once for the process and never shut down: it
 * cannot be initialised again after g_mime_shutdown() (its tables stay
 * NULL), and a configuration check, a reload or a second instance would
 * do just that. Its state is a few tables; g_mime_init() counts calls. */
static int gmime_ready;

void og_email_gmime_ref(void)
{
    if (!gmime_ready) {
        g_mime_init();
        gmime_ready = 1;
    }
}

void og_email_gmime_unref(void)
{
    /* kept: see above */
}

void og_email_in_free(og_email_in_t *m)
{
    size_t i;

    g_free(m->text);
    for (i = 0; i < m->nthread; i++)
        free(m->thread[i]);
    memset(m, 0, sizeof(*m));
}

/* "<id>" -> "id" into out. */
static void strip_angles(const char *in, char *out, size_t len)
{
    size_t n;

    while (*in == ' ' || *in == '\t' || *in == '<')
        in++;
    n = strcspn(in, ">");
    while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\t'))
        n--;
    if (n >= len)
        n = len - 1;
    memcpy(out, in, n);
    out[n] = '\0';
}

/* src (NULL: "") into dst, cut to fit. */
static void copy(char *dst, size_t len, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= len)
        n = len - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static const char *header(GMimeObject *o, const char *name)
{
    return g_mime_object_get_header(o, name);
}

/* The first address of a list header, and its display name. */
static void first_address(InternetAddressList *l, char *addr, size_t alen,
                          char *name, size_t nlen)
{
    int i, n = l ? internet_address_list_length(l) : 0;

    addr[0] = '\0';
    if (name != NULL)
        name[0] = '\0';
    for (i = 0; i < n; i++) {
        InternetAddress *a = internet_address_list_get_address(l, i);

        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            copy(
                addr, alen,
                internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)));
            if (name != NULL)
                copy(name, nlen, internet_address_get_name(a));
            return;
        }
    }
}

/* Every mailbox of l into the recipients list. */
static void add_recipients(og_email_in_t *m, InternetAddressList *l)
{
    int i, n = l ? internet_address_list_length(l) : 0;

    for (i = 0; i < n && m->nrcpt < OG_EMAIL_MAX_RCPT; i++) {
        InternetAddress *a = internet_address_list_get_address(l, i);

        if (INTERNET_ADDRESS_IS_MAILBOX(a))
            copy(
                m->rcpt[m->nrcpt++], sizeof(m->rcpt[0]),
                internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)));
    }
}

static void add_thread(og_email_in_t *m, const char *id)
{
    char buf[300];
    size_t i;

    strip_angles(id, buf, sizeof(buf));
    if (buf[0] == '\0' || m->nthread >= OG_EMAIL_MAX_THREAD)
        return;
    for (i = 0; i < m->nthread; i++)
        if (strcmp(m->thread[i], buf) == 0)
            return;
    m->thread[m->nthread] = strdup(buf);
    if (m->thread[m->nthread] != NULL)
        m->nthread++;
}

/* In-Reply-To first, then References, newest first. */
static void thread_keys(og_email_in_t *m, GMimeObject *o)
{
    const char *irt = header(o, "In-Reply-To"), *refs = header(o, "References");
    GMimeReferences *r;
    int i;

    if (irt != NULL) {
        r = g_mime_references_parse(NULL, irt);
        for (i = 0; r != NULL && i < g_mime_references_length(r); i++)
            add_thread(m, g_mime_references_get_message_id(r, i));
        if (r != NULL)
            g_mime_references_free(r);
    }
    if (refs != NULL) {
        r = g_mime_references_parse(NULL, refs);
        for (i = r ? g_mime_references_length(r) - 1 : -1; i >= 0; i--)
            add_thread(m, g_mime_references_get_message_id(r, i));
        if (r != NULL)
            g_mime_references_free(r);
    }
}

/* The text of a message: its first text/plain part, else its first
 * text/html one (converted to UTF-8 from the part's charset). */
struct find_text {
    GMimeTextPart *plain, *html;
};

static void find_text(GMimeObject *parent, GMimeObject *part, gpointer data)
{
    struct find_text *f = data;

    (void)parent;
    if (!GMIME_IS_TEXT_PART(part) ||
        g_mime_part_is_attachment(GMIME_PART(part)))
        return;
    if (f->plain == NULL &&
        g_mime_content_type_is_type(g_mime_object_get_content_type(part),
                                    "text", "plain"))
        f->plain = GMIME_TEXT_PART(part);
    else if (f->html == NULL &&
             g_mime_content_type_is_type(g_mime_object_get_content_type(part),
                                         "text", "html"))
        f->html = GMIME_TEXT_PART(part);
}

static int is_auto_reply(GMimeObject *o)
{
    const char *as = header(o, "Auto-Submitted");
    const char *prec = header(o, "Precedence");

    if (as != NULL && strncasecmp(as, "no", 2) != 0)
        return 1;
    if (header(o, "X-Autoreply") != NULL ||
        header(o, "X-Autorespond") != NULL ||
        header(o, "X-Auto-Response-Suppress") != NULL)
        return 1;
    return prec != NULL &&
           (strcasecmp(prec, "auto_reply") == 0 ||
            strcasecmp(prec, "bulk") == 0 || strcasecmp(prec, "junk") == 0);
}

/* A field of a delivery-status block ("Status: 5.1.1"), value into out. */
static void dsn_field(const char *block, const char *name, char *out,
                      size_t len)
{
    const char *p = block;
    size_t nl = strlen(name);

    out[0] = '\0';
    while (p != NULL && *p) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            size_t n;

            while (*v == ' ' || *v == '\t')
                v++;
            n = strcspn(v, "\r\n");
            if (n >= len)
                n = len - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
}

/* The bytes of a part's content, decoded, NUL-terminated (g_free). */
static char *part_bytes(GMimeObject *part)
{
    GMimeDataWrapper *w;
    GMimeStream *s;
    GByteArray *a;
    char *out;

    if (!GMIME_IS_PART(part) ||
        (w = g_mime_part_get_content(GMIME_PART(part))) == NULL)
        return NULL;
    s = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(w, s);
    a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
    out = g_malloc(a->len + 1);
    if (a->len > 0) /* an empty part's data may be NULL */
        memcpy(out, a->data, a->len);
    out[a->len] = '\0';
    g_object_unref(s);
    return out;
}

/* A DSN: the recipient, action, status and diagnostic of its first
 * per-recipient block, and the Message-ID of the message it returns. */
static void read_dsn(og_email_in_t *m, GMimeMultipart *report)
{
    int i, n = g_mime_multipart_get_count(report);

    for (i = 0; i < n; i++) {
        GMimeObject *p = g_mime_multipart_get_part(report, i);
        GMimeContentType *ct = g_mime_object_get_content_type(p);

        if (g_mime_content_type_is_type(ct, "message", "delivery-status")) {
            char *b = GMIME_IS_MESSAGE_PART(p) ? NULL : part_bytes(p);
            char rcpt[400];

            if (b == NULL)
                continue;
            dsn_field(b, "Final-Recipient", rcpt, sizeof(rcpt));
            if (rcpt[0] == '\0')
                dsn_field(b, "Original-Recipient", rcpt, sizeof(rcpt));
            copy(m->recipient, sizeof(m->recipient),
                 strchr(rcpt, ';') ? strchr(rcpt, ';') + 1 : rcpt);
            memmove(m->recipient, m->recipient + strspn(m->recipient, " \t<"),
                    strlen(m->recipient) + 1);
            m->recipient[strcspn(m->recipient, "> \t")] = '\0';
            dsn_field(b, "Action", m->action, sizeof(m->action));
            dsn_field(b, "Status", m->status, sizeof(m->status));
            dsn_field(b, "Diagnostic-Code", m->diagnostic,
                      sizeof(m->diagnostic));
            g_free(b);
        } else if (GMIME_IS_MESSAGE_PART(p)) { /* message/rfc822 */
            GMimeMessage *orig =
                g_mime_message_part_get_message(GMIME_MESSAGE_PART(p));
            const char *id = orig ? g_mime_message_get_message_id(orig) : NULL;

            if (id != NULL)
                strip_angles(id, m->orig_message_id,
                             sizeof(m->orig_message_id));
        } else if (g_mime_content_type_is_type(ct, "text", "rfc822-headers")) {
            char *b = part_bytes(p), id[300];

            if (b != NULL) {
                dsn_field(b, "Message-ID", id, sizeof(id));
                strip_angles(id, m->orig_message_id,
                             sizeof(m->orig_message_id));
                g_free(b);
            }
        }
    }
}

/* ---- Authentication-Results (RFC 8601) ---------------------------------- */

/* Skips white space and comments (nested, with quoted pairs). */
static const char *ar_cfws(const char *p)
{
    for (;;) {
        p += strspn(p, " \t\r\n");
        if (*p != '(')
            return p;
        {
            int depth = 0;

            do {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                else if (*p == '(')
                    depth++;
                else if (*p == ')')
                    depth--;
                p++;
            } while (*p != '\0' && depth > 0);
            if (depth > 0)
                return p; /* an unclosed comment ends the header */
        }
    }
}

/* One value: a quoted string (unquoted into out) or a token (anything up
 * to white space, a comment, ';', '=' or '/'). NULL when empty. */
static const char *ar_value(const char *p, char *out, size_t outlen)
{
    size_t n = 0;

    p = ar_cfws(p);
    if (*p == '"') {
        for (p++; *p != '\0' && *p != '"'; p++) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            if (n + 1 < outlen)
                out[n++] = *p;
        }
        if (*p != '"')
            return NULL;
        p++;
    } else {
        while (*p != '\0' && strchr(" \t\r\n();=/\"", *p) == NULL) {
            if (n + 1 < outlen)
                out[n++] = *p;
            p++;
        }
        if (n == 0)
            return NULL;
    }
    out[n] = '\0';
    return p;
}

/*
 * og_email_ar_pass: 1 when one Authentication-Results header value, parsed
 * as RFC 8601 says (comments and quoted strings are not results), comes
 * from authserv (exactly) and holds dmarc=pass with header.from equal to
 * domain; 0 otherwise, and for anything it cannot parse. -1 when the
 * header is from another authserv-id.
 */
int og_email_ar_pass(const char *v, const char *authserv, const char *domain)
{
    char tok[256], method[64], result[64], prop[64], val[256];
    const char *p = ar_value(v, tok, sizeof(tok));

    if (p == NULL || strcasecmp(tok, authserv) != 0)
        return -1;
    p = ar_cfws(p);
    if (isdigit((unsigned char)*p)) { /* a version */
        while (isdigit((unsigned char)*p))
            p++;
        p = ar_cfws(p);
    }
    while (*p == ';') {
        int is_dmarc, from_ok = 0;

        if ((p = ar_value(p + 1, method, sizeof(method))) == NULL)
            return 0;
        p = ar_cfws(p);
        if (*p == '/') { /* method version */
            if ((p = ar_value(p + 1, tok, sizeof(tok))) == NULL)
                return 0;
            p = ar_cfws(p);
        }
        if (*p != '=' || (p = ar_value(p + 1, result, sizeof(result))) == NULL)
            return 0;
        is_dmarc = strcasecmp(method, "dmarc") == 0;
        for (;;) { /* reason and properties, up to the next ';' */
            p = ar_cfws(p);
            if (*p == ';' || *p == '\0')
                break;
            if ((p = ar_value(p, prop, sizeof(prop))) == NULL)
                return 0;
            p = ar_cfws(p);
            if (*p != '=' || (p = ar_value(p + 1, val, sizeof(val))) == NULL)
                return 0;
            if (is_dmarc && strcasecmp(prop, "header.from") == 0)
                from_ok = strcasecmp(val, domain) == 0;
        }
        if (is_dmarc) /* the first dmarc result decides */
            return strcasecmp(result, "pass") == 0 && from_ok;
    }
    return 0;
}

/* The sender is verified only by the topmost Authentication-Results of
 * the receiving MTA the configuration trusts (RFC 8601 makes that MTA
 * remove such headers from incoming mail; anything below it may be the
 * sender's own), with dmarc=pass for the domain of a message's single
 * From address: two From headers, two addresses, a group or an address in
 * the display name are never verified. */
static int authenticated(GMimeMessage *msg, GMimeObject *o,
                         const char *authserv, const char *from,
                         const char *from_name)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(o);
    InternetAddressList *fl = g_mime_message_get_from(msg);
    const char *dom = strrchr(from, '@');
    int i, n = hl ? g_mime_header_list_get_count(hl) : 0, froms = 0;

    if (authserv == NULL || authserv[0] == '\0' || dom == NULL || fl == NULL ||
        internet_address_list_length(fl) != 1 ||
        !INTERNET_ADDRESS_IS_MAILBOX(
            internet_address_list_get_address(fl, 0)) ||
        strchr(from_name, '@') != NULL)
        return 0;
    for (i = 0; i < n; i++)
        froms += strcasecmp(g_mime_header_get_name(
                                g_mime_header_list_get_header_at(hl, i)),
                            "From") == 0;
    if (froms != 1)
        return 0;
    for (i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *v = g_mime_header_get_raw_value(h);
        int r;

        if (strcasecmp(g_mime_header_get_name(h), "Authentication-Results") !=
                0 ||
            v == NULL)
            continue;
        if ((r = og_email_ar_pass(v, authserv, dom + 1)) >= 0)
            return r; /* the topmost of the trusted MTA decides */
    }
    return 0;
}

int og_email_parse_in(const char *data, size_t len, const char *authserv,
                      og_email_in_t *m, char *why, size_t whylen)
{
    GMimeStream *s;
    GMimeParser *p;
    GMimeMessage *msg;
    GMimeObject *o, *body;
    const char *id, *subj;
    GDateTime *dt;
    struct find_text ft = {NULL, NULL};

    memset(m, 0, sizeof(*m));
    s = g_mime_stream_mem_new_with_buffer(data, len);
    p = g_mime_parser_new_with_stream(s);
    msg = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(s);
    if (msg == NULL) {
        snprintf(why, whylen, "not a MIME message");
        return -1;
    }
    o = GMIME_OBJECT(msg);
    first_address(g_mime_message_get_from(msg), m->from, sizeof(m->from),
                  m->from_name, sizeof(m->from_name));
    if (m->from[0] == '\0' || og_email_valid_address(m->from) != 0) {
        g_object_unref(msg);
        snprintf(why, whylen, "no valid From address");
        return -1;
    }
    add_recipients(m, g_mime_message_get_to(msg));
    add_recipients(m, g_mime_message_get_cc(msg));
    {
        const char *dl = header(o, "Delivered-To");

        if (dl == NULL)
            dl = header(o, "X-Original-To");
        if (dl != NULL && m->nrcpt < OG_EMAIL_MAX_RCPT) {
            strip_angles(dl, m->rcpt[m->nrcpt], sizeof(m->rcpt[0]));
            m->nrcpt++;
        }
    }
    id = g_mime_message_get_message_id(msg);
    if (id != NULL)
        strip_angles(id, m->message_id, sizeof(m->message_id));
    subj = g_mime_message_get_subject(msg);
    copy(m->subject, sizeof(m->subject), subj);
    dt = g_mime_message_get_date(msg);
    if (dt != NULL)
        m->date_ms = (int64_t)g_date_time_to_unix(dt) * 1000;
    thread_keys(m, o);
    m->authenticated = authenticated(msg, o, authserv, m->from, m->from_name);
    body = g_mime_message_get_mime_part(msg);
    if (body != NULL && GMIME_IS_MULTIPART(body) &&
        g_mime_content_type_is_type(g_mime_object_get_content_type(body),
                                    "multipart", "report")) {
        const char *rt =
            g_mime_object_get_content_type_parameter(body, "report-type");

        if (rt != NULL && strcasecmp(rt, "delivery-status") == 0) {
            m->kind = OG_EMAIL_IN_BOUNCE;
            read_dsn(m, GMIME_MULTIPART(body));
        }
    }
    if (m->kind != OG_EMAIL_IN_BOUNCE && is_auto_reply(o))
        m->kind = OG_EMAIL_IN_AUTO_REPLY;
    if (body != NULL) {
        if (GMIME_IS_MULTIPART(body))
            g_mime_multipart_foreach(GMIME_MULTIPART(body), find_text, &ft);
        else
            find_text(NULL, body, &ft);
    }
    if (ft.plain != NULL)
        m->text = g_mime_text_part_get_text(ft.plain);
    else if (ft.html != NULL) {
        m->text = g_mime_text_part_get_text(ft.html);
        m->text_is_html = 1;
    }
    g_object_unref(msg);
    return 0;
}

size_t og_email_imap_search(const char *resp, unsigned long *uids, size_t max)
{
    const char *line = resp;
    size_t n = 0;

    while (line != NULL && *line != '\0' && n < max) {
        if (strncmp(line, "* SEARCH", 8) == 0) {
            const char *p = line + 8;

            while (*p == ' ' && n < max) {
                unsigned long long u = 0;
                const char *d = p + 1;

                while (*d >= '0' && *d <= '9' && u <= 4294967295ull) {
                    u = u * 10 + (unsigned long long)(*d - '0');
                    d++;
                }
                if (d == p + 1 || u == 0 || u > 4294967295ull ||
                    (*d != ' ' && *d != '\r' && *d != '\n' && *d != '\0'))
                    break; /* not an nz-number: the rest of the line goes */
                uids[n++] = (unsigned long)u;
                p = d;
            }
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return n;
}
