/*
 * tz.h: local times of day in a customer's time zone (journeys' "at" and
 * quiet hours), through ICU loaded on first use from a module (og_tz.so),
 * so that a daemon that never needs one does not map ICU. Any thread.
 *
 * The module is $(pkglibdir)/og_tz.so, or the file named by the
 * environment variable OMNIGATE_TZ_MODULE (build trees, tests).
 */
#ifndef OG_CORE_TZ_H
#define OG_CORE_TZ_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_errors.h>

/* OG_OK when zone is an IANA time zone; OG_ERR_INVALID (reason in why),
 * or OG_ERR_UNSUPPORTED when the module cannot be loaded. */
og_err_t og__tz_check(const char *zone, char *why, size_t whylen);

/* The local minute of the day (0-1439) at at_ms in zone. */
og_err_t og__tz_minute(const char *zone, uint64_t at_ms, int *minute, char *why,
                       size_t whylen);

/* The first instant at or after from_ms when it is minute (minutes after
 * midnight) in zone. */
og_err_t og__tz_next(const char *zone, uint64_t from_ms, int minute,
                     uint64_t *out, char *why, size_t whylen);

/* Parses "HH:MM" (00:00-23:59) to minutes after midnight; -1 when not. */
int og__parse_hhmm(const char *s);

#endif /* OG_CORE_TZ_H */
