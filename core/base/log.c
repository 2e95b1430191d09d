/*
 * log.c: the daemon's log sink.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

static og_log_level_t max_level = OG_LOG_INFO;
static int level_locked;
static void (*log_hook)(og_log_level_t level, const char *line);
static char proc_tag[48];

void og__log_set_process_tag(const char *tag)
{
    snprintf(proc_tag, sizeof(proc_tag), "%s", tag ? tag : "");
}

void og__log_set_hook(void (*hook)(og_log_level_t level, const char *line))
{
    log_hook = hook;
}

void og__log_lock_level(void)
{
    level_locked = 1;
}

static const struct {
    const char *name;
    og_log_level_t level;
} levels[] = {
    {"error", OG_LOG_ERROR},   {"warning", OG_LOG_WARNING},
    {"notice", OG_LOG_NOTICE}, {"info", OG_LOG_INFO},
    {"debug", OG_LOG_DEBUG},
};

void og__log_set_level(og_log_level_t level)
{
    if (!level_locked)
        max_level = level;
}

og_log_level_t og__log_get_level(void)
{
    return max_level;
}

int og__log_level_parse(const char *s, og_log_level_t *out)
{
    size_t i;

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(s, levels[i].name) == 0) {
            *out = levels[i].level;
            return 0;
        }
    }
    return -1;
}

static const char *level_name(og_log_level_t level)
{
    size_t i;

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (levels[i].level == level)
            return levels[i].name;
    return "?";
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0: overlong
 * forms, surrogates and code points past U+10FFFF are not valid. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07u;
    else
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

void og__log_clean(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0, n;

    if (outlen == 0)
        return;
    while (*s != '\0' && o + 1 < outlen) {
        if (*s == '\n' || *s == '\r' || *s == '\t') {
            out[o++] = ' '; /* one record is one line */
            s++;
        } else if (*s < 0x20 || *s == 0x7f || (n = utf8_len(s)) == 0) {
            if (o + 5 > outlen)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[*s >> 4];
            out[o++] = hex[*s & 15];
            s++;
        } else {
            if (o + n + 1 > outlen)
                break;
            memcpy(out + o, s, n);
            o += n;
            s += n;
        }
    }
    out[o] = '\0';
}

void og__vlog(og_log_level_t level, const char *scope, const char *fmt,
              va_list ap)
{
    char raw[2048], msg[4096], tagged[160];

    if (level > max_level)
        return;
    if (proc_tag[0] != '\0') {
        snprintf(tagged, sizeof(tagged), "%s%s%s", scope ? scope : "",
                 scope ? " " : "", proc_tag);
        scope = tagged;
    }
    vsnprintf(raw, sizeof(raw), fmt, ap);
    /* What a log line quotes may come from outside (a header, a mail's
     * subject): controls and invalid UTF-8 are escaped, so a line is one
     * line of valid text that forges nothing. */
    og__log_clean(raw, msg, sizeof(msg));

    if (log_hook != NULL) {
        char line[4400];

        snprintf(line, sizeof(line), "%s %s%s%s%s", level_name(level),
                 scope ? "[" : "", scope ? scope : "", scope ? "] " : "", msg);
        log_hook(level, line);
    }
    if (getenv("JOURNAL_STREAM") != NULL) {
        fprintf(stderr, "<%d>%s%s%s%s\n", (int)level, scope ? "[" : "",
                scope ? scope : "", scope ? "] " : "", msg);
    } else {
        struct timespec ts;
        struct tm tm;
        char when[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ldZ %-7s %s%s%s%s\n", when,
                ts.tv_nsec / 1000000L, level_name(level), scope ? "[" : "",
                scope ? scope : "", scope ? "] " : "", msg);
    }
    fflush(stderr);
}

void og__log(og_log_level_t level, const char *scope, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    og__vlog(level, scope, fmt, ap);
    va_end(ap);
}
