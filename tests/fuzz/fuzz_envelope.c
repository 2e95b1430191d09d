/*
 * fuzz_envelope: the envelope's MessagePack validation (core/event/event.c), as
 * a plugin's og_emit() meets it, trusted and untrusted, then what the
 * store reads back from an accepted event and the facts the pipeline
 * reads from it.
 */
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    og_err_t rc;
    og__refusal_t reason;
    unsigned flags;

    for (flags = 0; flags <= OG__ACCEPT_UNTRUSTED; flags++) {
        og_event_t *ev =
            og__event_accept_flags(data, size, "web", "web", 256 * 1024, flags,
                                   &rc, &reason, why, sizeof(why));
        og__event_facts_t f;
        og_event_t *back;

        if (ev == NULL)
            continue;
        (void)og__event_facts(ev->data, ev->len, &f);
        back = og__event_restore(ev->data, ev->len, why, sizeof(why));
        og__event_unref(back);
        og__event_unref(ev);
    }
    /* bytes a damaged database could hand back */
    og__event_unref(og__event_restore(data, size, why, sizeof(why)));
    return 0;
}
