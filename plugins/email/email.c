/*
 * email.c: the email channel (plugins/email/README.md). Delivers the
 * message.send events routed to it over SMTP: a MIME message built with
 * libcurl's MIME API (multipart/alternative text and HTML, UTF-8 headers
 * encoded per RFC 2047), submitted to the configured relay through the
 * daemon's shared libcurl multi handle (og_curl_run(): no blocking, the
 * connection kept for the next message). Public SDK only.
 *
 * SMTP replies decide the outcome: 2xx delivered; 4xx (and a relay that
 * cannot be reached) retried on the channel's backoff schedule; 5xx
 * refused for good with the reply's text (the core then makes
 * message.failed and a journey falls back). Credentials come from a file
 * or a systemd credential, never from the main configuration, and are
 * never logged.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <omnigate/sdk.h>

#include "email.h"

static const og_config_field_t config[] = {
    {"smtp_url",
     OG_CFG_STRING,
     NULL,
     OG_CFG_REQUIRED,
     "relay to submit to: smtp://host:port or smtps://host:port",
     0,
     0,
     {NULL, NULL}},
    {"starttls",
     OG_CFG_STRING,
     "required",
     0,
     "smtp://: required, opportunistic or off",
     0,
     0,
     {NULL, NULL}},
    {"credentials",
     OG_CFG_STRING,
     NULL,
     0,
     "AUTH: a file (user on the first line, password on the second) or "
     "systemd:NAME for $CREDENTIALS_DIRECTORY/NAME",
     0,
     0,
     {NULL, NULL}},
    {"from",
     OG_CFG_STRING,
     NULL,
     OG_CFG_REQUIRED,
     "sender: address, or Name <address>",
     0,
     0,
     {NULL, NULL}},
    {"reply_to",
     OG_CFG_STRING,
     NULL,
     0,
     "the mailbox replies go to (polled by imap_url); with secret_file "
     "each message's Reply-To carries its conversation as a signed "
     "subaddress",
     0,
     0,
     {NULL, NULL}},
    {"secret_file",
     OG_CFG_STRING,
     NULL,
     0,
     "a file whose contents sign conversation tokens",
     0,
     0,
     {NULL, NULL}},
    {"timeout",
     OG_CFG_DURATION,
     "30s",
     0,
     "per SMTP transaction",
     1000,
     600000,
     {NULL, NULL}},
    {"tls_verify",
     OG_CFG_BOOL,
     "yes",
     0,
     "verify the relay's certificate and name",
     0,
     0,
     {NULL, NULL}},
    {"ca_file",
     OG_CFG_STRING,
     NULL,
     0,
     "CA bundle for the relay",
     0,
     0,
     {NULL, NULL}},
    {"unsubscribe_url",
     OG_CFG_STRING,
     NULL,
     0,
     "the public URL of the one-click unsubscribe endpoint this channel "
     "mounts (https://shop.example/v1/email/unsubscribe); marketing "
     "messages carry List-Unsubscribe with it (needs secret_file)",
     0,
     0,
     {NULL, NULL}},
    {"unsubscribe_mailto",
     OG_CFG_STRING,
     NULL,
     0,
     "an address for List-Unsubscribe's mailto: (unsubscribe@shop.example)",
     0,
     0,
     {NULL, NULL}},
    {"imap_url",
     OG_CFG_STRING,
     NULL,
     0,
     "the mailbox replies and bounces arrive in: imap://HOST:PORT/INBOX or "
     "imaps://...; polled for messages without the OmnigateTaken keyword",
     0,
     0,
     {NULL, NULL}},
    {"imap_credentials",
     OG_CFG_STRING,
     NULL,
     0,
     "IMAP login: a file (user, then password) or systemd:NAME",
     0,
     0,
     {NULL, NULL}},
    {"imap_starttls",
     OG_CFG_STRING,
     "required",
     0,
     "imap://: required, opportunistic or off",
     0,
     0,
     {NULL, NULL}},
    {"poll_interval",
     OG_CFG_DURATION,
     "30s",
     0,
     "between two IMAP polls",
     200,
     3600000,
     {NULL, NULL}},
    {"max_message_size",
     OG_CFG_SIZE,
     "25M",
     0,
     "larger received mail is set aside (flagged OmnigateTaken "
     "OmnigateTooLarge) with a warning, not read",
     1024,
     1 << 30,
     {NULL, NULL}},
    {"bounce_limit",
     OG_CFG_INT,
     "3",
     0,
     "permanent bounces after which an address is undeliverable",
     1,
     100,
     {NULL, NULL}},
    {"dkim_key_file",
     OG_CFG_STRING,
     NULL,
     0,
     "the private key (PEM) that signs every message (DKIM, rsa-sha256)",
     0,
     0,
     {NULL, NULL}},
    {"dkim_selector",
     OG_CFG_STRING,
     NULL,
     0,
     "the DKIM selector (its public key is at SELECTOR._domainkey.DOMAIN)",
     0,
     0,
     {NULL, NULL}},
    {"dkim_domain",
     OG_CFG_STRING,
     NULL,
     0,
     "the signing domain (default: the from address's)",
     0,
     0,
     {NULL, NULL}},
    {"trust_authserv",
     OG_CFG_STRING,
     NULL,
     0,
     "the authserv-id of the receiving MTA whose Authentication-Results "
     "(dmarc=pass for the From domain) make a sender's address verified",
     0,
     0,
     {NULL, NULL}},
    {NULL, 0, NULL, 0, NULL, 0, 0, {NULL, NULL}},
};

/* A user and password from a file, read again when the file changes. */
struct cred {
    char *user, *password;
    char path[300];
    struct timespec mtime;
    off_t size;
};

struct inbox; /* IMAP polling, below */

struct email {
    og_plugin_ctx_t *ctx;
    const char *url;
    long use_ssl; /* CURLUSESSL_* */
    struct cred smtp_cred, imap_cred;
    CURLSH *clear; /* the connections of transfers that may go in clear */
    char from_addr[256];
    char *from_header; /* "From: ..." encoded */
    char domain[200];  /* of Message-IDs */
    char reply_user[128], reply_domain[200];
    unsigned char secret[64];
    size_t secret_len;
    uint64_t timeout_ms;
    int verify;
    const char *ca_file;
    size_t inflight;
    const char *instance;
    /* inbound */
    const char *imap_url;
    long imap_ssl;
    uint64_t poll_ms;
    const char *authserv;
    int64_t bounce_limit;
    uint64_t max_message; /* max_message_size */
    struct inbox *inbox;
    /* DKIM: key NULL when messages are not signed */
    char *dkim_key;
    size_t dkim_key_len;
    og_email_dkim_t dkim;
    const char *unsub_url, *unsub_mailto; /* NULL: no List-Unsubscribe */
};

/* One message on its way. */
struct msg {
    struct email *e;
    og_delivery_t *d;
    CURL *easy;
    curl_mime *mime;
    struct curl_slist *hdrs, *rcpt;
    char reply[256]; /* the relay's last reply line */
    char id[300];
    char *raw; /* a signed message, sent as bytes */
    size_t raw_len, raw_off;
};

/* ---- configuration ------------------------------------------------------ */

static char *read_secret_file(const char *path, size_t *len, char *why,
                              size_t whylen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(4097);
    if (buf == NULL) {
        fclose(f);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    n = fread(buf, 1, 4096, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/*
 * libcurl 7.88 keeps connections for reuse and gives a transfer that
 * requires STARTTLS a connection another transfer to the same server left
 * in clear, and sends on it in clear (found by tests/integration/
 * test_email.py, test_starttls; CONNECT_TO does not keep them apart).
 * Transfers that may go in clear (starttls opportunistic or off) therefore
 * keep their connections in a cache of their own (a share handle with
 * CURL_LOCK_DATA_CONNECT): they still reuse them among themselves, and the
 * shared multi handle's cache only ever holds connections of transfers
 * that required TLS. Loop thread only, like every transfer.
 */
static CURLSH *clear_cache(void)
{
    CURLSH *sh = curl_share_init();

    if (sh != NULL && curl_share_setopt(sh, CURLSHOPT_SHARE,
                                        CURL_LOCK_DATA_CONNECT) != CURLSHE_OK) {
        curl_share_cleanup(sh);
        sh = NULL;
    }
    return sh;
}

/* What an SMTP or IMAP transfer needs to reach its server: URL, protocols,
 * TLS and login. */
static void connection(const struct email *e, CURL *easy, const char *url,
                       const char *protocols, long ssl, const struct cred *c)
{
    if (ssl != CURLUSESSL_ALL)
        curl_easy_setopt(easy, CURLOPT_SHARE, e->clear);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(easy, CURLOPT_USE_SSL, ssl);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, e->verify ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, e->verify ? 2L : 0L);
    if (e->ca_file != NULL)
        curl_easy_setopt(easy, CURLOPT_CAINFO, e->ca_file);
    if (c->user != NULL) {
        curl_easy_setopt(easy, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(easy, CURLOPT_PASSWORD, c->password);
    }
}

static void forget_credentials(struct cred *c)
{
    if (c->password != NULL) {
        OPENSSL_cleanse(c->password, strlen(c->password));
        free(c->password);
    }
    free(c->user);
    c->user = c->password = NULL;
}

/* user and password from credentials (a path or systemd:NAME). */
static og_err_t load_credentials(struct cred *c, const char *spec, char *why,
                                 size_t whylen)
{
    char path[300], *buf, *nl, *pw;
    size_t len;

    if (strncmp(spec, "systemd:", 8) == 0) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");

        if (dir == NULL || dir[0] == '\0') {
            snprintf(why, whylen,
                     "credentials = %s: CREDENTIALS_DIRECTORY is not set "
                     "(LoadCredential= in the unit)",
                     spec);
            return OG_ERR_INVALID;
        }
        if (snprintf(path, sizeof(path), "%s/%s", dir, spec + 8) >=
            (int)sizeof(path)) {
            snprintf(why, whylen, "credentials: path too long");
            return OG_ERR_INVALID;
        }
    } else {
        if (snprintf(path, sizeof(path), "%s", spec) >= (int)sizeof(path)) {
            snprintf(why, whylen, "credentials: path too long");
            return OG_ERR_INVALID;
        }
    }
    {
        struct stat st;

        if (stat(path, &st) == 0) {
            c->mtime = st.st_mtim;
            c->size = st.st_size;
        }
    }
    snprintf(c->path, sizeof(c->path), "%s", path);
    if ((buf = read_secret_file(path, &len, why, whylen)) == NULL)
        return OG_ERR_INVALID;
    nl = strchr(buf, '\n');
    if (nl == NULL || nl == buf) {
        free(buf);
        snprintf(why, whylen,
                 "credentials %s: expected the user on the first line and "
                 "the password on the second",
                 path);
        return OG_ERR_INVALID;
    }
    *nl = '\0';
    pw = nl + 1;
    pw[strcspn(pw, "\r\n")] = '\0';
    forget_credentials(c);
    c->user = strdup(buf);
    c->password = strdup(pw);
    OPENSSL_cleanse(buf, len);
    free(buf);
    return c->user && c->password ? OG_OK : OG_ERR_NOMEM;
}

/* A starttls key: required, opportunistic or off. */
static og_err_t tls_mode(og_plugin_ctx_t *ctx, const char *key, long *out)
{
    const char *v = NULL;

    og_config_get_str(ctx, key, &v);
    if (strcmp(v, "required") == 0)
        *out = CURLUSESSL_ALL;
    else if (strcmp(v, "opportunistic") == 0)
        *out = CURLUSESSL_TRY;
    else if (strcmp(v, "off") == 0)
        *out = CURLUSESSL_NONE;
    else {
        og_log(ctx, OG_LOG_ERROR,
               "%s: expected required, opportunistic or off, got '%s'", key, v);
        return OG_ERR_INVALID;
    }
    return OG_OK;
}

static og_err_t email_init(og_plugin_ctx_t *ctx, void **state)
{
    struct email *e = calloc(1, sizeof(*e));
    const char *v = NULL, *at;
    char why[600], name[256];
    uint64_t ms = 0;
    og_err_t rc = OG_ERR_INVALID;

    if (e == NULL)
        return OG_ERR_NOMEM;
    e->ctx = ctx;
    og_config_get_str(ctx, "smtp_url", &e->url);
    if (strncmp(e->url, "smtp://", 7) != 0 &&
        strncmp(e->url, "smtps://", 8) != 0) {
        og_log(ctx, OG_LOG_ERROR,
               "smtp_url: expected smtp://HOST[:PORT] or smtps://HOST[:PORT]");
        goto fail;
    }
    if (tls_mode(ctx, "starttls", &e->use_ssl) != OG_OK)
        goto fail;
    if (strncmp(e->url, "smtps://", 8) == 0)
        e->use_ssl = CURLUSESSL_ALL; /* implicit TLS */
    v = NULL;
    if (og_config_get_str(ctx, "credentials", &v) == OG_OK && v != NULL &&
        load_credentials(&e->smtp_cred, v, why, sizeof(why)) != OG_OK) {
        og_log(ctx, OG_LOG_ERROR, "%s", why);
        goto fail;
    }
    og_config_get_str(ctx, "from", &v);
    if (og_email_parse_address(v, name, sizeof(name), e->from_addr,
                               sizeof(e->from_addr)) != 0) {
        og_log(ctx, OG_LOG_ERROR,
               "from: expected an address or Name <address>, got '%s'", v);
        goto fail;
    }
    e->from_header = og_email_address_header("From", name, e->from_addr);
    at = strrchr(e->from_addr, '@');
    snprintf(e->domain, sizeof(e->domain), "%s", at + 1);
    v = NULL;
    if (og_config_get_str(ctx, "reply_to", &v) == OG_OK && v != NULL) {
        char addr[256];

        if (og_email_parse_address(v, name, sizeof(name), addr, sizeof(addr)) !=
            0) {
            og_log(ctx, OG_LOG_ERROR, "reply_to: not an address: '%s'", v);
            goto fail;
        }
        at = strrchr(addr, '@');
        snprintf(e->reply_user, sizeof(e->reply_user), "%.*s", (int)(at - addr),
                 addr);
        snprintf(e->reply_domain, sizeof(e->reply_domain), "%s", at + 1);
    }
    v = NULL;
    if (og_config_get_str(ctx, "secret_file", &v) == OG_OK && v != NULL) {
        size_t len;
        char *s = read_secret_file(v, &len, why, sizeof(why));

        if (s == NULL || len < 16) {
            og_log(ctx, OG_LOG_ERROR, "secret_file: %s",
                   s == NULL ? why : "at least 16 bytes of secret");
            free(s);
            goto fail;
        }
        e->secret_len = len < sizeof(e->secret) ? len : sizeof(e->secret);
        memcpy(e->secret, s, e->secret_len);
        OPENSSL_cleanse(s, len);
        free(s);
    }
    og_config_get_duration_ms(ctx, "timeout", &ms);
    e->timeout_ms = ms;
    og_config_get_bool(ctx, "tls_verify", &e->verify);
    og_config_get_str(ctx, "ca_file", &e->ca_file);
    e->instance = og_instance_name(ctx);
    v = NULL;
    og_config_get_str(ctx, "dkim_key_file", &v);
    if (v != NULL) {
        const char *dom = NULL;

        e->dkim_key = read_secret_file(v, &e->dkim_key_len, why, sizeof(why));
        og_config_get_str(ctx, "dkim_selector", &e->dkim.selector);
        og_config_get_str(ctx, "dkim_domain", &dom);
        if (e->dkim_key == NULL || e->dkim.selector == NULL) {
            og_log(ctx, OG_LOG_ERROR, "dkim_key_file: %s",
                   e->dkim_key == NULL ? why
                                       : "dkim_selector is needed with it");
            goto fail;
        }
        if (strstr(e->dkim_key, "PRIVATE KEY") == NULL) {
            og_log(ctx, OG_LOG_ERROR,
                   "dkim_key_file: %s holds no PEM private key", v);
            goto fail;
        }
        e->dkim.key = e->dkim_key;
        e->dkim.domain = dom != NULL ? dom : e->domain;
    }
    og_config_get_str(ctx, "imap_url", &e->imap_url);
    if (e->imap_url != NULL) {
        const char *path = strstr(e->imap_url, "://");

        if ((strncmp(e->imap_url, "imap://", 7) != 0 &&
             strncmp(e->imap_url, "imaps://", 8) != 0) ||
            (path = strchr(path + 3, '/')) == NULL || path[1] == '\0' ||
            strpbrk(path, ";?") != NULL) {
            char shown[300];

            og_log(ctx, OG_LOG_ERROR,
                   "imap_url: expected imap://HOST[:PORT]/MAILBOX or "
                   "imaps://..., got '%s'",
                   og_url_redact(e->imap_url, shown, sizeof(shown)));
            goto fail;
        }
        if (tls_mode(ctx, "imap_starttls", &e->imap_ssl) != OG_OK)
            goto fail;
        if (strncmp(e->imap_url, "imaps://", 8) == 0)
            e->imap_ssl = CURLUSESSL_ALL;
        v = NULL;
        og_config_get_str(ctx, "imap_credentials", &v);
        if (v == NULL) {
            og_log(ctx, OG_LOG_ERROR, "imap_url needs imap_credentials");
            goto fail;
        }
        if (load_credentials(&e->imap_cred, v, why, sizeof(why)) != OG_OK) {
            og_log(ctx, OG_LOG_ERROR, "imap_credentials: %s", why);
            goto fail;
        }
        og_config_get_duration_ms(ctx, "poll_interval", &e->poll_ms);
        og_config_get_str(ctx, "trust_authserv", &e->authserv);
        og_config_get_int(ctx, "bounce_limit", &e->bounce_limit);
        e->max_message = 25u << 20;
        og_config_get_size(ctx, "max_message_size", &e->max_message);
    }
    og_config_get_str(ctx, "unsubscribe_url", &e->unsub_url);
    og_config_get_str(ctx, "unsubscribe_mailto", &e->unsub_mailto);
    if (e->unsub_url != NULL &&
        ((strncmp(e->unsub_url, "https://", 8) != 0 &&
          strncmp(e->unsub_url, "http://", 7) != 0) ||
         strchr(strstr(e->unsub_url, "://") + 3, '/') == NULL ||
         strchr(e->unsub_url, '?') != NULL)) {
        og_log(ctx, OG_LOG_ERROR,
               "unsubscribe_url: expected https://HOST/PATH (the path is "
               "mounted on the public listener), got '%s'",
               e->unsub_url);
        goto fail;
    }
    if (e->unsub_mailto != NULL && og_email_valid_address(e->unsub_mailto)) {
        og_log(ctx, OG_LOG_ERROR, "unsubscribe_mailto: not an address: '%s'",
               e->unsub_mailto);
        goto fail;
    }
    if ((e->unsub_url != NULL || e->unsub_mailto != NULL) &&
        e->secret_len == 0) {
        og_log(ctx, OG_LOG_ERROR,
               "unsubscribe_url and unsubscribe_mailto need secret_file (the "
               "links are signed)");
        goto fail;
    }
    if ((e->use_ssl != CURLUSESSL_ALL ||
         (e->imap_url != NULL && e->imap_ssl != CURLUSESSL_ALL)) &&
        (e->clear = clear_cache()) == NULL) {
        og_log(ctx, OG_LOG_ERROR, "cannot make a connection cache");
        goto fail;
    }
    if (e->imap_url != NULL || e->dkim_key != NULL)
        og_email_gmime_ref(); /* reading mail, writing signed mail */
    *state = e;
    return OG_OK;
fail:
    forget_credentials(&e->smtp_cred);
    forget_credentials(&e->imap_cred);
    if (e->dkim_key != NULL) {
        OPENSSL_cleanse(e->dkim_key, e->dkim_key_len);
        free(e->dkim_key);
    }
    free(e->from_header);
    free(e);
    return rc;
}

/* ---- sending ------------------------------------------------------------ */

static void msg_free(struct msg *m)
{
    if (m->easy != NULL)
        curl_easy_cleanup(m->easy);
    curl_mime_free(m->mime);
    curl_slist_free_all(m->hdrs);
    curl_slist_free_all(m->rcpt);
    free(m->raw);
    free(m);
}

/* The relay's replies, line by line: the first 4xx or 5xx says why. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size,
                    void *userp)
{
    struct msg *m = userp;

    (void)easy;
    /* the first refusal says why (a QUIT's 221 follows it) */
    if (type == CURLINFO_HEADER_IN && size >= 3 && data[0] >= '4' &&
        data[0] <= '5' && m->reply[0] == '\0') {
        size_t n = size < sizeof(m->reply) - 1 ? size : sizeof(m->reply) - 1;

        memcpy(m->reply, data, n);
        while (n > 0 && (data[n - 1] == '\r' || data[n - 1] == '\n'))
            n--;
        m->reply[n] = '\0';
    }
    return 0;
}

static void sent(void *data, void *easy, og_err_t result, int curl_code)
{
    struct msg *m = data;
    struct email *e = m->e;
    long code = 0;
    char why[400];

    e->inflight--;
    og_gauge_set(e->ctx, "smtp_inflight", (int64_t)e->inflight);
    curl_easy_getinfo((CURL *)easy, CURLINFO_RESPONSE_CODE, &code);
    if (result == OG_OK) {
        og_counter_add(e->ctx, "smtp_sent_total", 1);
        og_delivery_complete(m->d, OG_OK, NULL);
    } else if (result == OG_ERR_CANCELLED) {
        og_delivery_complete(m->d, OG_ERR_RETRY, "the channel stopped");
    } else {
        og_err_t rc = og_email_classify((int)code, curl_code);

        snprintf(why, sizeof(why), "SMTP %s%s%s",
                 m->reply[0] ? m->reply
                             : curl_easy_strerror((CURLcode)curl_code),
                 code == 0 ? " (relay not reached)" : "",
                 rc == OG_ERR_RETRY && code >= 500 ? " (authentication: "
                                                     "check credentials)"
                                                   : "");
        og_counter_add(e->ctx,
                       rc == OG_ERR_RETRY ? "smtp_deferred_total"
                                          : "smtp_refused_total",
                       1);
        if (rc == OG_ERR_REJECTED || code >= 500)
            og_log(e->ctx, OG_LOG_WARNING, "message %s: %s", m->id, why);
        og_delivery_complete(m->d, rc, why);
    }
    msg_free(m);
}

static og_err_t add_header(struct msg *m, char *line)
{
    struct curl_slist *n;

    if (line == NULL)
        return OG_ERR_NOMEM;
    n = curl_slist_append(m->hdrs, line);
    free(line);
    if (n == NULL)
        return OG_ERR_NOMEM;
    m->hdrs = n;
    return OG_OK;
}

static og_err_t add_part(curl_mime *mime, const char *type, const char *text,
                         size_t len)
{
    curl_mimepart *p = curl_mime_addpart(mime);

    if (p == NULL || curl_mime_data(p, text, len) != CURLE_OK ||
        curl_mime_type(p, type) != CURLE_OK ||
        curl_mime_encoder(p, "quoted-printable") != CURLE_OK)
        return OG_ERR_NOMEM;
    return OG_OK;
}

/* The body: text, HTML, or both as multipart/alternative. */
static og_err_t build_body(struct msg *m, const char *text, size_t tl,
                           const char *html, size_t hl)
{
    curl_mimepart *p;
    curl_mime *alt;

    m->mime = curl_mime_init(m->easy);
    if (m->mime == NULL)
        return OG_ERR_NOMEM;
    if (text == NULL || html == NULL)
        return add_part(m->mime,
                        html ? "text/html; charset=utf-8"
                             : "text/plain; charset=utf-8",
                        html   ? html
                        : text ? text
                               : "",
                        html ? hl : tl);
    alt = curl_mime_init(m->easy);
    if (alt == NULL ||
        add_part(alt, "text/plain; charset=utf-8", text, tl) != OG_OK ||
        add_part(alt, "text/html; charset=utf-8", html, hl) != OG_OK) {
        curl_mime_free(alt);
        return OG_ERR_NOMEM;
    }
    p = curl_mime_addpart(m->mime);
    if (p == NULL || curl_mime_subparts(p, alt) != CURLE_OK) {
        curl_mime_free(alt);
        return OG_ERR_NOMEM;
    }
    curl_mime_type(p, "multipart/alternative");
    return OG_OK;
}

/* A message to sign: written and signed whole (dkim.c), its headers
 * those gathered in m->hdrs. */
static og_err_t sign(struct msg *m, const char *text, size_t tl,
                     const char *html, size_t hl)
{
    const char *hv[32];
    struct curl_slist *h;
    size_t n = 0;
    char why[300];

    for (h = m->hdrs; h != NULL && n < 31; h = h->next)
        hv[n++] = h->data;
    hv[n] = NULL;
    if (og_email_dkim_message(hv, text, tl, html, hl, &m->e->dkim, &m->raw,
                              &m->raw_len, why, sizeof(why)) != 0) {
        og_log(m->e->ctx, OG_LOG_ERROR, "message %s: %s", m->id, why);
        return OG_ERR_INVALID;
    }
    return OG_OK;
}

static size_t read_raw(char *buf, size_t size, size_t nitems, void *data)
{
    struct msg *m = data;
    size_t n = size * nitems, left = m->raw_len - m->raw_off;

    if (n > left)
        n = left;
    memcpy(buf, m->raw + m->raw_off, n);
    m->raw_off += n;
    return n;
}

/* The string at path of ev as a NUL-terminated copy in buf, or NULL. */
static const char *get(const og_event_t *ev, const char *path, char *buf,
                       size_t len)
{
    const char *v;
    size_t n;

    if (og_event_get_str(ev, path, &v, &n) != OG_OK || n >= len)
        return NULL;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

/* ---- one-click unsubscribe (RFC 8058) ------------------------------------ */

/* The token of customer's link: CUSTOMER.SIG, SIG the first 32 hex digits
 * of HMAC-SHA256(secret, "unsubscribe" NUL instance NUL customer). */
static void unsub_token(const struct email *e, const char *customer, char *out,
                        size_t outlen)
{
    unsigned char mac[EVP_MAX_MD_SIZE], msg[300];
    unsigned int ml = 0, i;
    size_t n = 0, il = strlen(e->instance), cl = strlen(customer);
    char hex[33];

    if (12 + il + 1 + cl > sizeof(msg)) {
        out[0] = '\0';
        return;
    }
    memcpy(msg, "unsubscribe", 12); /* with its NUL */
    n = 12;
    memcpy(msg + n, e->instance, il + 1);
    n += il + 1;
    memcpy(msg + n, customer, cl);
    n += cl;
    HMAC(EVP_sha256(), e->secret, (int)e->secret_len, msg, n, mac, &ml);
    for (i = 0; i < 16; i++)
        snprintf(hex + i * 2, 3, "%02x", mac[i]);
    snprintf(out, outlen, "%s.%s", customer, hex);
}

/* The customer of a token whose signature holds, else -1. */
static int unsub_check(const struct email *e, const char *token, char *cust,
                       size_t custlen)
{
    const char *dot = strrchr(token, '.');
    char c[80], expect[200];
    size_t n;

    if (dot == NULL || (n = (size_t)(dot - token)) == 0 || n >= sizeof(c) ||
        n >= custlen || strlen(dot + 1) != 32)
        return -1;
    memcpy(c, token, n);
    c[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (c[i] <= ' ' || c[i] > '~')
            return -1;
    unsub_token(e, c, expect, sizeof(expect));
    if (strlen(expect) != strlen(token) ||
        CRYPTO_memcmp(expect, token, strlen(token)) != 0)
        return -1;
    snprintf(cust, custlen, "%s", c);
    return 0;
}

/* List-Unsubscribe and List-Unsubscribe-Post for a marketing message to a
 * known customer. */
static og_err_t unsubscribe_headers(struct email *e, const og_event_t *ev,
                                    struct msg *m)
{
    char purpose[32], cust[80], token[200], *h;
    og_err_t rc;
    size_t n;

    if ((e->unsub_url == NULL && e->unsub_mailto == NULL) ||
        get(ev, "props.purpose", purpose, sizeof(purpose)) == NULL ||
        strcmp(purpose, "marketing") != 0 ||
        get(ev, "customer", cust, sizeof(cust)) == NULL)
        return OG_OK;
    unsub_token(e, cust, token, sizeof(token));
    n = 64 + strlen(token) * 2 + (e->unsub_url ? strlen(e->unsub_url) : 0) +
        (e->unsub_mailto ? strlen(e->unsub_mailto) : 0);
    if ((h = malloc(n)) == NULL)
        return OG_ERR_NOMEM;
    if (e->unsub_url != NULL && e->unsub_mailto != NULL)
        snprintf(h, n, "List-Unsubscribe: <%s?t=%s>, <mailto:%s?subject=%s>",
                 e->unsub_url, token, e->unsub_mailto, token);
    else if (e->unsub_url != NULL)
        snprintf(h, n, "List-Unsubscribe: <%s?t=%s>", e->unsub_url, token);
    else
        snprintf(h, n, "List-Unsubscribe: <mailto:%s?subject=%s>",
                 e->unsub_mailto, token);
    if ((rc = add_header(m, h)) != OG_OK || e->unsub_url == NULL)
        return rc;
    return add_header(m, strdup("List-Unsubscribe-Post: "
                                "List-Unsubscribe=One-Click"));
}

static void page(og_http_req_t *req, int status, const char *title,
                 const char *body)
{
    static const char *const hdrs[] = {"Cache-Control: no-store",
                                       "X-Robots-Tag: noindex", NULL};
    char html[2048];
    int n = snprintf(html, sizeof(html),
                     "<!doctype html><html><head><meta charset=\"utf-8\">"
                     "<title>%s</title></head><body><h1>%s</h1>%s</body>"
                     "</html>",
                     title, title, body);

    og_http_respond(req, status, "text/html; charset=utf-8", hdrs, html,
                    (size_t)n);
}

struct unsub_call {
    og_http_req_t *req;
};

static void unsubscribed(void *data, og_err_t result, const char *event_id)
{
    struct unsub_call *c = data;

    (void)event_id;
    if (result == OG_OK)
        page(c->req, 200, "Unsubscribed",
             "<p>You will not get marketing email from us any more.</p>");
    else
        page(c->req, 503, "Try again",
             "<p>We could not record this right now; please try again in "
             "a minute.</p>");
    free(c);
}

/* GET: a page with the button (a link checker or a preview never
 * unsubscribes anybody); POST (the button, or the mail client's one click
 * per RFC 8058): the opt-out, as consent.changed, acknowledged once
 * stored. A token that does not verify: 404. */
static void unsubscribe(void *data, og_http_req_t *req)
{
    struct email *e = data;
    const char *q = og_http_req_query(req), *t = strstr(q, "t=");
    char token[200], cust[80], form[600];
    size_t n;

    if (t != NULL && (t == q || t[-1] == '&')) {
        t += 2;
        n = strcspn(t, "&");
        if (n >= sizeof(token))
            n = 0;
        memcpy(token, t, n);
        token[n] = '\0';
    } else {
        token[0] = '\0';
    }
    if (token[0] == '\0' || unsub_check(e, token, cust, sizeof(cust)) != 0) {
        page(req, 404, "Not found", "<p>This link is not valid.</p>");
        return;
    }
    if (strcmp(og_http_req_method(req), "POST") != 0) {
        snprintf(form, sizeof(form),
                 "<p>Stop marketing email to this address?</p>"
                 "<form method=\"post\" action=\"?t=%s\">"
                 "<input type=\"hidden\" name=\"List-Unsubscribe\" "
                 "value=\"One-Click\"><button type=\"submit\">"
                 "Unsubscribe</button></form>",
                 token);
        page(req, 200, "Unsubscribe", form);
        return;
    }
    {
        og_event_builder_t *b =
            og_event_builder_create(e->ctx, "consent.changed");
        struct unsub_call *c = malloc(sizeof(*c));
        uint8_t consent[120];
        size_t il = strlen(e->instance), k = 0;
        og_err_t rc = OG_ERR_NOMEM;

        /* {"marketing": {INSTANCE: false}}; an instance name is at most
         * 64 characters (the envelope's channel rule): checked before
         * anything is copied */
        if (il <= 64) {
            consent[k++] = 0x81;
            consent[k++] = 0xa9;
            memcpy(consent + k, "marketing", 9);
            k += 9;
            consent[k++] = 0x81;
            consent[k++] = 0xd9;
            consent[k++] = (uint8_t)il;
            memcpy(consent + k, e->instance, il);
            k += il;
            consent[k++] = 0xc2;
        }
        if (b != NULL && c != NULL && il <= 64 &&
            og_event_builder_set_str(b, "customer", cust) == OG_OK &&
            og_event_builder_set_str(b, "source.channel", "email") == OG_OK &&
            og_event_builder_set_msgpack(b, "consent", consent, k) == OG_OK &&
            og_event_builder_set_str(b, "props.via", "one-click") == OG_OK) {
            c->req = req;
            rc = og_event_builder_emit_async(b, unsubscribed, c);
            b = NULL; /* consumed */
        }
        og_event_builder_destroy(b);
        if (rc != OG_OK) {
            free(c);
            page(req, 503, "Try again",
                 "<p>We could not record this right now; please try again "
                 "in a minute.</p>");
        }
    }
}

static void fresh_credentials(og_plugin_ctx_t *ctx, struct cred *c);

/* ---- inbound: polling the mailbox over IMAP ------------------------------ */

#define INBOX_BATCH 64                       /* messages taken per poll */
#define TAKEN_KEYWORD "OmnigateTaken"        /* set once the event is stored */
#define TOO_LARGE_KEYWORD "OmnigateTooLarge" /* set aside, not read */

enum { IN_IDLE, IN_SEARCH, IN_FETCH, IN_EMIT, IN_STORE };

struct inbox {
    struct email *e;
    og_timer_t *timer;
    int phase;
    int stopping;
    CURL *easy;
    char *buf; /* the response being read */
    size_t len, cap;
    int too_big;
    unsigned long uids[INBOX_BATCH];
    size_t n, next;
    unsigned long uid;
};

static size_t inbox_write(char *p, size_t size, size_t nmemb, void *data)
{
    struct inbox *in = data;
    size_t n = size * nmemb;

    if (in->len + n > in->e->max_message) {
        in->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (in->len + n + 1 > in->cap) {
        size_t cap = in->cap ? in->cap : 16384;
        char *b;

        while (cap < in->len + n + 1)
            cap *= 2;
        if ((b = realloc(in->buf, cap)) == NULL)
            return 0;
        in->buf = b;
        in->cap = cap;
    }
    memcpy(in->buf + in->len, p, n);
    in->len += n;
    in->buf[in->len] = '\0';
    return n;
}

static void inbox_next(struct inbox *in);
static void inbox_done(void *data, void *easy, og_err_t result, int curl_code);

/* One IMAP transfer: a command on the mailbox (cmd), or the message of
 * uid (cmd NULL). */
static og_err_t inbox_transfer(struct inbox *in, const char *cmd,
                               unsigned long uid)
{
    struct email *e = in->e;
    char url[600];

    if (in->easy == NULL && (in->easy = curl_easy_init()) == NULL)
        return OG_ERR_NOMEM;
    curl_easy_reset(in->easy);
    in->len = 0;
    in->too_big = 0;
    if (cmd == NULL)
        snprintf(url, sizeof(url), "%s;UID=%lu", e->imap_url, uid);
    else
        snprintf(url, sizeof(url), "%s", e->imap_url);
    fresh_credentials(e->ctx, &e->imap_cred);
    connection(e, in->easy, url, "imap,imaps", e->imap_ssl, &e->imap_cred);
    if (cmd != NULL)
        curl_easy_setopt(in->easy, CURLOPT_CUSTOMREQUEST, cmd);
    curl_easy_setopt(in->easy, CURLOPT_WRITEFUNCTION, inbox_write);
    curl_easy_setopt(in->easy, CURLOPT_WRITEDATA, in);
    curl_easy_setopt(in->easy, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
    return og_curl_run(e->ctx, in->easy, inbox_done, in);
}

/* The poll is over (all taken, or something failed): wait for the next. */
static void inbox_rest(struct inbox *in)
{
    in->phase = IN_IDLE;
    in->n = in->next = 0;
}

static void emitted(void *data, og_err_t result, const char *event_id)
{
    struct inbox *in = data;
    char cmd[80];

    (void)event_id;
    if (in->stopping) {
        inbox_rest(in);
        return;
    }
    if (result != OG_OK && result != OG_ERR_CONFLICT) {
        /* not stored: left in the mailbox for the next poll */
        og_log(in->e->ctx, OG_LOG_WARNING,
               "IMAP message %lu not taken now (%s); next poll", in->uid,
               og_strerror(result));
        inbox_rest(in);
        return;
    }
    in->phase = IN_STORE;
    snprintf(cmd, sizeof(cmd), "UID STORE %lu +FLAGS (%s)", in->uid,
             TAKEN_KEYWORD);
    if (inbox_transfer(in, cmd, 0) != OG_OK)
        inbox_rest(in);
}

/* Builds the event of a received message: message.received,
 * message.auto_reply or message.bounced. */
static og_event_builder_t *inbound_event(struct email *e, og_email_in_t *m,
                                         unsigned long uid)
{
    og_event_builder_t *b;
    char conv[80], vendor[320], orig[300];
    size_t i;
    og_err_t rc = OG_OK;

    b = og_event_builder_create(
        e->ctx, m->kind == OG_EMAIL_IN_BOUNCE       ? "message.bounced"
                : m->kind == OG_EMAIL_IN_AUTO_REPLY ? "message.auto_reply"
                                                    : "message.received");
    if (b == NULL)
        return NULL;
    if (m->message_id[0] != '\0' && strlen(m->message_id) <= 250)
        snprintf(vendor, sizeof(vendor), "%s", m->message_id);
    else
        snprintf(vendor, sizeof(vendor), "imap-uid-%lu", uid);
    rc |= og_event_builder_set_str(b, "source.channel", "email");
    rc |= og_event_builder_set_str(b, "source.vendor_id", vendor);
    if (m->date_ms > 0)
        rc |= og_event_builder_set_int(b, "occurred", m->date_ms);
    if (m->kind == OG_EMAIL_IN_BOUNCE) {
        const char *at;

        /* our Message-IDs are <EVENT-ID@DOMAIN>: the message's id */
        snprintf(orig, sizeof(orig), "%s", m->orig_message_id);
        at = strrchr(orig, '@');
        if (at != NULL && strcmp(at + 1, e->domain) == 0)
            orig[at - orig] = '\0';
        if (m->recipient[0] != '\0' &&
            og_email_valid_address(m->recipient) == 0)
            rc |= og_event_builder_add_identity(b, "email", m->recipient, 0);
        if (orig[0] != '\0')
            rc |= og_event_builder_set_str(b, "props.message", orig);
        rc |= og_event_builder_set_str(b, "props.channel", e->instance);
        rc |= og_event_builder_set_str(b, "props.recipient", m->recipient);
        rc |= og_event_builder_set_str(b, "props.status", m->status);
        rc |= og_event_builder_set_str(b, "props.action", m->action);
        rc |= og_event_builder_set_str(b, "props.diagnostic", m->diagnostic);
        rc |= og_event_builder_set_bool(b, "props.permanent",
                                        m->status[0] == '5');
        rc |=
            og_event_builder_set_int(b, "props.bounce_limit", e->bounce_limit);
        if (rc != OG_OK) {
            og_event_builder_destroy(b);
            return NULL;
        }
        return b;
    }
    rc |= og_event_builder_add_identity(b, "email", m->from, m->authenticated);
    for (i = 0; i < m->nrcpt; i++)
        if (e->secret_len > 0 &&
            og_email_reply_token(m->rcpt[i], e->secret, e->secret_len, conv,
                                 sizeof(conv)) == 0) {
            rc |= og_event_builder_set_str(b, "conversation", conv);
            break;
        }
    if (m->message_id[0] != '\0')
        rc |= og_event_builder_set_str(b, "props.message_key", m->message_id);
    if (m->nthread > 0) {
        uint8_t *pk;
        size_t len, k, dl = strlen(e->domain);
        const char *ids[OG_EMAIL_MAX_THREAD];

        /* our own Message-IDs are <EVENT-ID@DOMAIN>: the core knows the
         * message by its event id */
        for (k = 0; k < m->nthread; k++) {
            size_t l = strlen(m->thread[k]);

            ids[k] = m->thread[k];
            if (l > dl + 1 && m->thread[k][l - dl - 1] == '@' &&
                strcmp(m->thread[k] + l - dl, e->domain) == 0)
                m->thread[k][l - dl - 1] = '\0';
        }
        if (og_email_pack_strings(ids, m->nthread, &pk, &len) == 0) {
            rc |= og_event_builder_set_msgpack(b, "props.thread", pk, len);
            free(pk);
        }
    }
    rc |= og_event_builder_set_str(b, "props.subject", m->subject);
    rc |= og_event_builder_set_str(b, "props.text", m->text ? m->text : "");
    if (m->text_is_html)
        rc |= og_event_builder_set_bool(b, "props.text_is_html", 1);
    if (m->from_name[0] != '\0')
        rc |= og_event_builder_set_str(b, "props.from_name", m->from_name);
    if (rc != OG_OK) {
        og_event_builder_destroy(b);
        return NULL;
    }
    return b;
}

/* A message fetched: read, handed to the gateway, flagged once stored. A
 * message that cannot be read is flagged too, with a log line naming it,
 * so that it does not come back at every poll. */
static void fetched(struct inbox *in)
{
    struct email *e = in->e;
    og_email_in_t m;
    og_event_builder_t *b = NULL;
    char why[200];

    if (og_email_parse_in(in->buf ? in->buf : "", in->len, e->authserv, &m, why,
                          sizeof(why)) != 0) {
        og_log(e->ctx, OG_LOG_WARNING,
               "IMAP message %lu left unread: %s; flagged %s", in->uid, why,
               TAKEN_KEYWORD);
        og_counter_add(e->ctx, "imap_unreadable_total", 1);
        emitted(in, OG_OK, NULL);
        return;
    }
    b = inbound_event(e, &m, in->uid);
    og_email_in_free(&m);
    if (b == NULL) {
        og_log(e->ctx, OG_LOG_WARNING,
               "IMAP message %lu: no event could be made of it; flagged %s",
               in->uid, TAKEN_KEYWORD);
        emitted(in, OG_OK, NULL);
        return;
    }
    in->phase = IN_EMIT;
    og_counter_add(e->ctx, "imap_received_total", 1);
    if (og_event_builder_emit_async(b, emitted, in) != OG_OK) {
        og_log(e->ctx, OG_LOG_WARNING,
               "IMAP message %lu refused by the gateway; next poll", in->uid);
        inbox_rest(in);
    }
}

static void inbox_next(struct inbox *in)
{
    if (in->stopping || in->next >= in->n) {
        inbox_rest(in);
        return;
    }
    in->uid = in->uids[in->next++];
    in->phase = IN_FETCH;
    if (inbox_transfer(in, NULL, in->uid) != OG_OK)
        inbox_rest(in);
}

static void inbox_done(void *data, void *easy, og_err_t result, int curl_code)
{
    struct inbox *in = data;
    struct email *e = in->e;

    (void)easy;
    if (result == OG_ERR_CANCELLED || in->stopping) {
        inbox_rest(in);
        return;
    }
    if (result != OG_OK) {
        if (in->phase == IN_FETCH && in->too_big) {
            /* set aside, or it would be fetched again at every poll and
             * hold up the mailbox (issue 16) */
            char cmd[120];

            og_log(e->ctx, OG_LOG_WARNING,
                   "IMAP message %lu is larger than max_message_size (%llu "
                   "bytes): set aside, flagged %s %s",
                   in->uid, (unsigned long long)e->max_message, TAKEN_KEYWORD,
                   TOO_LARGE_KEYWORD);
            og_counter_add(e->ctx, "imap_too_large_total", 1);
            in->too_big = 0;
            in->phase = IN_STORE;
            snprintf(cmd, sizeof(cmd), "UID STORE %lu +FLAGS (%s %s)", in->uid,
                     TAKEN_KEYWORD, TOO_LARGE_KEYWORD);
            if (inbox_transfer(in, cmd, 0) != OG_OK)
                inbox_rest(in);
            return;
        }
        og_log(e->ctx, OG_LOG_WARNING, "IMAP %s: %s",
               in->phase == IN_SEARCH  ? "search"
               : in->phase == IN_FETCH ? "fetch"
                                       : "flag",
               curl_easy_strerror((CURLcode)curl_code));
        og_counter_add(e->ctx, "imap_errors_total", 1);
        inbox_rest(in);
        return;
    }
    switch (in->phase) {
    case IN_SEARCH:
        in->next = 0;
        in->n = og_email_imap_search(in->buf, in->uids, INBOX_BATCH);
        inbox_next(in);
        break;
    case IN_FETCH: fetched(in); break;
    case IN_STORE: inbox_next(in); break;
    default: inbox_rest(in);
    }
}

static void inbox_poll(og_timer_t *t, void *data)
{
    struct inbox *in = data;

    (void)t;
    if (in->phase != IN_IDLE || in->stopping)
        return;
    in->phase = IN_SEARCH;
    if (inbox_transfer(in, "UID SEARCH UNKEYWORD " TAKEN_KEYWORD, 0) != OG_OK)
        inbox_rest(in);
}

static og_err_t inbox_start(struct email *e)
{
    struct inbox *in = calloc(1, sizeof(*in));

    if (in == NULL)
        return OG_ERR_NOMEM;
    in->e = e;
    e->inbox = in;
    in->timer = og_timer_start(e->ctx, 0, e->poll_ms, inbox_poll, in);
    return in->timer != NULL ? OG_OK : OG_ERR_NOMEM;
}

static og_err_t email_stop(void *state)
{
    struct email *e = state;

    if (e->inbox != NULL) {
        e->inbox->stopping = 1;
        og_timer_stop(e->inbox->timer);
        e->inbox->timer = NULL;
    }
    return OG_OK;
}

static void inbox_free(struct email *e)
{
    struct inbox *in = e->inbox;

    if (in == NULL)
        return;
    if (in->easy != NULL)
        curl_easy_cleanup(in->easy);
    free(in->buf);
    free(in);
    e->inbox = NULL;
}

static og_err_t email_start(void *state)
{
    struct email *e = state;
    og_http_route_t r = OG_HTTP_ROUTE_INIT;

    if (e->imap_url != NULL && inbox_start(e) != OG_OK)
        return OG_ERR_NOMEM;
    if (e->unsub_url == NULL)
        return OG_OK;
    r.path = strchr(strstr(e->unsub_url, "://") + 3, '/');
    r.max_body = 4096;
    r.handler = unsubscribe;
    r.data = e;
    return og_http_mount(e->ctx, &r);
}

/* A credentials file changed since it was read (a rotated password, a
 * fixed typo): read it again, so that no restart is needed. */
static void fresh_credentials(og_plugin_ctx_t *ctx, struct cred *c)
{
    struct stat st;
    char why[400], spec[300];

    if (c->path[0] == '\0' || stat(c->path, &st) != 0 ||
        (st.st_mtim.tv_sec == c->mtime.tv_sec &&
         st.st_mtim.tv_nsec == c->mtime.tv_nsec && st.st_size == c->size))
        return;
    snprintf(spec, sizeof(spec), "%s", c->path);
    if (load_credentials(c, spec, why, sizeof(why)) == OG_OK)
        og_log(ctx, OG_LOG_NOTICE, "credentials %s read again", spec);
    else
        og_log(ctx, OG_LOG_ERROR, "%s", why);
}

static og_err_t email_send(void *state, const og_event_t *ev, og_delivery_t *d)
{
    struct email *e = state;
    struct msg *m;
    const char *text = NULL, *html = NULL, *subj = NULL;
    size_t tl = 0, hl = 0, sl = 0;
    char to[320], conv[80], date[96];
    time_t now = time(NULL);
    struct tm tm;
    og_err_t rc;

    if (strcmp(og_event_type(ev), "message.send") != 0)
        return OG_ERR_REJECTED; /* routed here by mistake */
    fresh_credentials(e->ctx, &e->smtp_cred);
    if (get(ev, "props.to", to, sizeof(to)) == NULL ||
        og_email_valid_address(to) != 0) {
        og_log(e->ctx, OG_LOG_WARNING,
               "message %s: props.to is not an email address", og_event_id(ev));
        return OG_ERR_REJECTED;
    }
    og_event_get_str(ev, "props.text", &text, &tl);
    og_event_get_str(ev, "props.html", &html, &hl);
    og_event_get_str(ev, "props.subject", &subj, &sl);
    if (text == NULL && html == NULL)
        return OG_ERR_REJECTED; /* nothing to say */
    m = calloc(1, sizeof(*m));
    if (m == NULL || (m->easy = curl_easy_init()) == NULL) {
        free(m);
        return OG_ERR_RETRY;
    }
    m->e = e;
    m->d = d;
    /* The Message-ID is the event's: replies name it (In-Reply-To) and
     * a retry of the same message sends the same one. */
    snprintf(m->id, sizeof(m->id), "<%s@%s>", og_event_id(ev), e->domain);
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "Date: %a, %d %b %Y %H:%M:%S +0000", &tm);
    rc = add_header(m, strdup(e->from_header));
    if (rc == OG_OK)
        rc = add_header(m, og_email_address_header("To", NULL, to));
    if (rc == OG_OK)
        rc = add_header(m, og_email_encoded_header("Subject", subj ? subj : "",
                                                   subj ? sl : 0));
    if (rc == OG_OK)
        rc = add_header(m, strdup(date));
    if (rc == OG_OK) {
        char *h = malloc(strlen(m->id) + 13);

        if (h != NULL)
            snprintf(h, strlen(m->id) + 13, "Message-ID: %s", m->id);
        rc = add_header(m, h);
    }
    if (rc == OG_OK && e->reply_user[0] != '\0') {
        char addr[512];

        if (e->secret_len > 0 &&
            get(ev, "conversation", conv, sizeof(conv)) != NULL)
            og_email_reply_address(e->reply_user, e->reply_domain, conv,
                                   e->secret, e->secret_len, addr,
                                   sizeof(addr));
        else
            snprintf(addr, sizeof(addr), "%s@%s", e->reply_user,
                     e->reply_domain);
        rc = add_header(m, og_email_address_header("Reply-To", NULL, addr));
    }
    if (rc == OG_OK)
        rc = unsubscribe_headers(e, ev, m);
    if (rc == OG_OK && e->dkim.key != NULL)
        rc = sign(m, text, tl, html, hl);
    else if (rc == OG_OK)
        rc = build_body(m, text, tl, html, hl);
    if (rc == OG_OK && (m->rcpt = curl_slist_append(NULL, to)) == NULL)
        rc = OG_ERR_NOMEM;
    if (rc != OG_OK) {
        msg_free(m);
        return OG_ERR_RETRY;
    }
    connection(e, m->easy, e->url, "smtp,smtps", e->use_ssl, &e->smtp_cred);
    curl_easy_setopt(m->easy, CURLOPT_MAIL_FROM, e->from_addr);
    curl_easy_setopt(m->easy, CURLOPT_MAIL_RCPT, m->rcpt);
    if (m->raw != NULL) { /* signed: the bytes as they are */
        curl_easy_setopt(m->easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(m->easy, CURLOPT_READFUNCTION, read_raw);
        curl_easy_setopt(m->easy, CURLOPT_READDATA, m);
        curl_easy_setopt(m->easy, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)m->raw_len);
    } else {
        curl_easy_setopt(m->easy, CURLOPT_HTTPHEADER, m->hdrs);
        curl_easy_setopt(m->easy, CURLOPT_MIMEPOST, m->mime);
    }
    curl_easy_setopt(m->easy, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
    curl_easy_setopt(m->easy, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(m->easy, CURLOPT_DEBUGDATA, m);
    curl_easy_setopt(m->easy, CURLOPT_VERBOSE, 1L); /* for on_debug only */
    rc = og_curl_run(e->ctx, m->easy, sent, m);
    if (rc != OG_OK) {
        msg_free(m);
        return OG_ERR_RETRY;
    }
    e->inflight++;
    og_gauge_set(e->ctx, "smtp_inflight", (int64_t)e->inflight);
    return OG_PENDING;
}

static void email_destroy(void *state)
{
    struct email *e = state;

    if (e == NULL)
        return;
    inbox_free(e);
    if (e->imap_url != NULL || e->dkim_key != NULL)
        og_email_gmime_unref();
    if (e->dkim_key != NULL) {
        OPENSSL_cleanse(e->dkim_key, e->dkim_key_len);
        free(e->dkim_key);
    }
    forget_credentials(&e->smtp_cred);
    forget_credentials(&e->imap_cred);
    if (e->clear != NULL)
        curl_share_cleanup(e->clear);
    free(e->from_header);
    OPENSSL_cleanse(e->secret, sizeof(e->secret));
    free(e);
}

/* --check-config: what init() would refuse (URLs, TLS modes, credential
 * and key files), without connecting to anything; init() only reads. */
static og_err_t email_check(og_plugin_ctx_t *ctx, char *why, size_t whylen)
{
    void *state = NULL;
    og_err_t rc = email_init(ctx, &state);

    (void)why; /* init() logs the reason: the host takes the last one */
    if (rc == OG_OK)
        email_destroy(state);
    return rc;
}

static const og_plugin_def_t def = {
    OG_PLUGIN_DEF_INIT,
    .name = "email",
    .version = "0.1.0",
    .description = "the email channel: SMTP delivery of message.send",
    .caps = OG_CAP_INGRESS | OG_CAP_EGRESS,
    .config = config,
    .init = email_init,
    .start = email_start,
    .send = email_send,
    .stop = email_stop,
    .destroy = email_destroy,
    .check = email_check,
};

OG_PLUGIN_DEFINE(&def)
