/*
 * log.c: the daemon's log sink.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static og_log_level_t max_level = OG_LOG_INFO;
static int level_locked;
static void (*log_hook)(og_log_level_t level, const char *line);

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

void og__vlog(og_log_level_t level, const char *scope, const char *fmt,
              va_list ap)
{
    char msg[2048];
    size_t n;

    if (level > max_level)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* One record is one line: fold embedded newlines. */
    for (n = 0; msg[n] != '\0'; n++)
        if (msg[n] == '\n' || msg[n] == '\r')
            msg[n] = ' ';

    if (log_hook != NULL) {
        char line[2200];

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
