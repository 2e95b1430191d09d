/*
 * og_phone.cc: phone numbers to E.164 with Google's libphonenumber. Built as
 * a module that the core loads on the first phone number it sees
 * (core/base/phone.c), because libphonenumber and what it links (ICU,
 * protobuf, abseil) add about 7 MB to the resident size of every process
 * that maps them, and most deployments never see a phone number.
 *
 * The functions are safe to call from several threads at once:
 * PhoneNumberUtil's instance is created once under its own lock and its
 * parse and format methods are const.
 */
#include <phonenumbers/phonenumberutil.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

extern "C" {
__attribute__((visibility("default"))) int
og_phone_e164(const char *raw, const char *region, char *out, size_t outlen,
              char *why, size_t whylen);
__attribute__((visibility("default"))) int
og_phone_region_known(const char *region);
}

static const char *parse_error(PhoneNumberUtil::ErrorType e)
{
    switch (e) {
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
        return "no country code, and no default region to assume one";
    case PhoneNumberUtil::NOT_A_NUMBER: return "not a phone number";
    case PhoneNumberUtil::TOO_SHORT_AFTER_IDD:
    case PhoneNumberUtil::TOO_SHORT_NSN: return "too short";
    case PhoneNumberUtil::TOO_LONG_NSN: return "too long";
    default: return "cannot be parsed";
    }
}

/* 0 and the number in out, or -1 with the reason in why. */
int og_phone_e164(const char *raw, const char *region, char *out, size_t outlen,
                  char *why, size_t whylen)
{
    const PhoneNumberUtil *u = PhoneNumberUtil::GetInstance();
    PhoneNumber n;
    std::string e164;
    PhoneNumberUtil::ErrorType e =
        u->Parse(raw, region != nullptr && region[0] ? region : "ZZ", &n);

    if (e != PhoneNumberUtil::NO_PARSING_ERROR) {
        snprintf(why, whylen, "%s", parse_error(e));
        return -1;
    }
    /* Possible rather than valid: the number plan data ages, a customer's
     * new number must not be refused for it. */
    if (!u->IsPossibleNumber(n)) {
        std::string region_code;

        u->GetRegionCodeForNumber(n, &region_code);
        snprintf(why, whylen, "not a possible number in region %s",
                 region_code.c_str());
        return -1;
    }
    u->Format(n, PhoneNumberUtil::E164, &e164);
    if (e164.size() + 1 > outlen) {
        snprintf(why, whylen, "too long");
        return -1;
    }
    memcpy(out, e164.c_str(), e164.size() + 1);
    return 0;
}

/* 1 when region is a region code libphonenumber has a numbering plan for. */
int og_phone_region_known(const char *region)
{
    std::set<std::string> regions;

    PhoneNumberUtil::GetInstance()->GetSupportedRegions(&regions);
    return regions.count(region) ? 1 : 0;
}
