/*
 * fuzz_segment: what a public client sends the web channel: JSON parsed
 * as jansson does, mapped as a Segment call of every kind and as an
 * events-API event under a browser key's policy, packed, then validated
 * by the core as the plugin's emit would be (plugins/web).
 */
#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "event/event.h"
#include "web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The plugin's sources run without a host here, as in tests/unit/test_web.c:
 * nothing they call needs one. */
const og_host_api_t *og__host = NULL;

static void accept_bytes(const msgpack_sbuffer *sb)
{
    char why[256];
    og_err_t rc;
    og__refusal_t reason;
    og_event_t *ev = og__event_accept_flags(
        (const uint8_t *)sb->data, sb->size, "web", "web", 256 * 1024,
        OG__ACCEPT_UNTRUSTED, &rc, &reason, why, sizeof(why));

    og__event_unref(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kinds[] = {"track", "identify", "page", "screen",
                                        "group", "alias",    NULL};
    json_error_t e;
    json_t *j =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
    char why[300];
    size_t i;

    if (j == NULL)
        return 0;
    for (i = 0; i <= sizeof(kinds) / sizeof(kinds[0]) - 1; i++) {
        web_policy_t pol;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int forbidden = 0;

        memset(&pol, 0, sizeof(pol));
        pol.browser = 1;
        pol.scope = "shop";
        pol.proven = "a-1";
        pol.secret = "s3cret";
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (web_segment_pack_policy(&pk, j, kinds[i], 1796032800000ull, &pol,
                                    &forbidden, why, sizeof(why)) == 0)
            accept_bytes(&sb);
        msgpack_sbuffer_destroy(&sb);
    }
    if (json_is_object(j)) {
        json_t *c = json_deep_copy(j);
        web_policy_t pol;

        memset(&pol, 0, sizeof(pol));
        pol.browser = 1;
        pol.scope = "shop";
        pol.secret = "s3cret";
        if (c != NULL && web_event_apply(c, &pol, why, sizeof(why)) == 0) {
            msgpack_sbuffer sb;
            msgpack_packer pk;

            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            web_pack_json(&pk, c);
            accept_bytes(&sb);
            json_decref(web_mp_to_json((const uint8_t *)sb.data, sb.size));
            msgpack_sbuffer_destroy(&sb);
        }
        json_decref(c);
    }
    json_decref(j);
    return 0;
}
