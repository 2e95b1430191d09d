/*
 * phone.h: phone numbers to E.164 through libphonenumber, loaded on first
 * use from a module (og_phone.so) so that processes that never see a
 * phone number do not map it. Safe to call from any thread.
 *
 * The module is $(pkglibdir)/og_phone.so, or the file named by the
 * environment variable OMNIGATE_PHONE_MODULE (build trees, tests).
 */
#ifndef OG_CORE_PHONE_H
#define OG_CORE_PHONE_H

#include <stddef.h>

#include <omnigate/og_errors.h>

/*
 * og__phone_e164: raw as an E.164 number ("+33612345678") in out, with
 * region (ISO 3166 alpha-2, may be NULL or "") assumed when raw has no
 * country code. OG_ERR_INVALID with the reason in why when raw is not a
 * possible number, OG_ERR_UNSUPPORTED when the module cannot be loaded.
 */
og_err_t og__phone_e164(const char *raw, const char *region, char *out,
                        size_t outlen, char *why, size_t whylen);

/* 1 when libphonenumber knows region, 0 when not, -1 (reason in why) when
 * the module cannot be loaded. */
int og__phone_region_known(const char *region, char *why, size_t whylen);

#endif /* OG_CORE_PHONE_H */
