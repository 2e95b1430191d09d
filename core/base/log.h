/*
 * log.h: the daemon's log. One line per record on stderr; under systemd
 * (JOURNAL_STREAM set) each line carries a <N> syslog priority prefix that
 * journald understands, otherwise a UTC timestamp and a level word.
 */
#ifndef OG_CORE_LOG_H
#define OG_CORE_LOG_H

#include <stdarg.h>

#include <omnigate/og_types.h>

void og__log_set_level(og_log_level_t level);
og_log_level_t og__log_get_level(void);
/* Parses "error", "warning", "notice", "info", "debug". */
int og__log_level_parse(const char *s, og_log_level_t *out);

/* Routes every formatted line to hook as well (the plugin test host);
 * NULL removes it. */
void og__log_set_hook(void (*hook)(og_log_level_t level, const char *line));
/* After this, og__log_set_level() is ignored (--log-level wins over the
 * configuration). */
void og__log_lock_level(void);
/* Adds tag to every line's scope ("[sink pid 4242]"): the host process of
 * an isolated plugin, whose lines go to the daemon's stderr. */
void og__log_set_process_tag(const char *tag);

/* scope is the channel instance or subsystem ("config", "loader"), or NULL. */
void og__log(og_log_level_t level, const char *scope, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void og__vlog(og_log_level_t level, const char *scope, const char *fmt,
              va_list ap) __attribute__((format(printf, 3, 0)));

/* in as one log line: newlines, carriage returns and tabs as blanks,
 * other controls and bytes that are not valid UTF-8 as \xNN. */
void og__log_clean(const char *in, char *out, size_t outlen);

#endif /* OG_CORE_LOG_H */
