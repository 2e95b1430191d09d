/*
 * og_tz.c: the time zone module (og_tz.so), loaded by tz.c on first use
 * so that a daemon without time-of-day waits never maps ICU. Time zones
 * are ICU's (the IANA database, with its daylight saving rules).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#define EXPORT __attribute__((visibility("default")))

/* The module's interface (core/domain/tz.c resolves these by name). */
EXPORT int og_tz_valid(const char *zone, char *why, size_t whylen);
EXPORT int og_tz_minute(const char *zone, int64_t at_ms, int *minute, char *why,
                        size_t whylen);
EXPORT int og_tz_next(const char *zone, int64_t from_ms, int minute,
                      int64_t *out, char *why, size_t whylen);

static UCalendar *open_zone(const char *zone, char *why, size_t whylen)
{
    UChar id[128], canon[128];
    UErrorCode e = U_ZERO_ERROR;
    UBool system = 0;
    UCalendar *c;

    if (strlen(zone) >= sizeof(id) / sizeof(id[0])) {
        snprintf(why, whylen, "unknown time zone '%.64s...'", zone);
        return NULL;
    }
    u_uastrcpy(id, zone);
    ucal_getCanonicalTimeZoneID(id, -1, canon, 128, &system, &e);
    if (U_FAILURE(e) || !system) {
        snprintf(why, whylen,
                 "unknown time zone '%s' (an IANA name such as "
                 "Europe/Paris)",
                 zone);
        return NULL;
    }
    c = ucal_open(id, -1, "en_US_POSIX", UCAL_GREGORIAN, &e);
    if (U_FAILURE(e)) {
        snprintf(why, whylen, "time zone '%s': %s", zone, u_errorName(e));
        return NULL;
    }
    return c;
}

EXPORT int og_tz_valid(const char *zone, char *why, size_t whylen)
{
    UCalendar *c = open_zone(zone, why, whylen);

    if (c == NULL)
        return 0;
    ucal_close(c);
    return 1;
}

/* The local minute of the day (0-1439) at at_ms in zone. */
EXPORT int og_tz_minute(const char *zone, int64_t at_ms, int *minute, char *why,
                        size_t whylen)
{
    UErrorCode e = U_ZERO_ERROR;
    UCalendar *c = open_zone(zone, why, whylen);

    if (c == NULL)
        return -1;
    ucal_setMillis(c, (UDate)at_ms, &e);
    *minute =
        ucal_get(c, UCAL_HOUR_OF_DAY, &e) * 60 + ucal_get(c, UCAL_MINUTE, &e);
    ucal_close(c);
    if (U_FAILURE(e)) {
        snprintf(why, whylen, "time zone '%s': %s", zone, u_errorName(e));
        return -1;
    }
    return 0;
}

/* The first instant at or after from_ms when the local time in zone is
 * minute (minutes after midnight). A local time that a daylight saving
 * change skips is taken as the instant the clocks jump (ICU's lenient
 * reading). */
EXPORT int og_tz_next(const char *zone, int64_t from_ms, int minute,
                      int64_t *out, char *why, size_t whylen)
{
    UErrorCode e = U_ZERO_ERROR;
    UCalendar *c = open_zone(zone, why, whylen);
    int day;

    if (c == NULL)
        return -1;
    for (day = 0; day < 3; day++) {
        UDate t;

        ucal_setMillis(c, (UDate)from_ms, &e);
        ucal_add(c, UCAL_DATE, day, &e);
        ucal_set(c, UCAL_HOUR_OF_DAY, minute / 60);
        ucal_set(c, UCAL_MINUTE, minute % 60);
        ucal_set(c, UCAL_SECOND, 0);
        ucal_set(c, UCAL_MILLISECOND, 0);
        t = ucal_getMillis(c, &e);
        if (U_FAILURE(e))
            break;
        if ((int64_t)t >= from_ms) {
            *out = (int64_t)t;
            ucal_close(c);
            return 0;
        }
    }
    ucal_close(c);
    snprintf(why, whylen, "time zone '%s': %s", zone,
             U_FAILURE(e) ? u_errorName(e) : "no such local time");
    return -1;
}
