/*
 * fuzz_imap: what an IMAP server answers to the email channel's UID
 * SEARCH (plugins/email/inbound.c): the untagged SEARCH lines become the
 * UIDs it fetches. (The FETCH responses are libcurl's to parse, and the
 * mail they carry is fuzz_mime's.) Every UID it returns must be an
 * nz-number.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned long uids[64];
    char *resp = malloc(size + 1);
    size_t n, i;

    if (resp == NULL)
        return 0;
    memcpy(resp, data, size);
    resp[size] = '\0';
    n = og_email_imap_search(resp, uids, 64);
    if (n > 64)
        abort();
    for (i = 0; i < n; i++)
        if (uids[i] == 0 || uids[i] > 4294967295ul)
            abort();
    free(resp);
    return 0;
}
