/*
 * fuzz_mime: mail as anyone on the internet can send it to the shop's
 * inbox: parsed by the email channel (GMime), with the trusted MTA's
 * Authentication-Results, and one header value as an
 * Authentication-Results value alone (plugins/email/inbound.c).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    og_email_in_t m;
    char why[256], *v;

    if (!ready) {
        og_email_gmime_ref();
        ready = 1;
    }
    if (og_email_parse_in((const char *)data, size, "mx.shop.example", &m, why,
                          sizeof(why)) == 0)
        og_email_in_free(&m);
    else
        og_email_in_free(&m);
    v = malloc(size + 1);
    if (v != NULL) {
        memcpy(v, data, size);
        v[size] = '\0';
        (void)og_email_ar_pass(v, "mx.shop.example", "example.com");
        free(v);
    }
    return 0;
}
