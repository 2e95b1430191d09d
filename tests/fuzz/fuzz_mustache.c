/*
 * fuzz_mustache: a template as an operator (or a compromised config
 * file) writes it: parsed, its names listed, rendered as HTML and as
 * text over a small data tree with strings, numbers, lists, maps and
 * empty keys (core/domain/mustache.c).
 */
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "domain/mustache.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void pstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void on_name(void *data, int kind, const char *name, int line, int depth)
{
    (void)data;
    (void)kind;
    (void)name;
    (void)line;
    (void)depth;
}

static const char *partial(void *data, const char *name, size_t *len)
{
    static const char p[] = "{{a}}{{>self}}";

    (void)data;
    (void)name;
    *len = sizeof(p) - 1;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static msgpack_sbuffer sb;
    static msgpack_unpacked root;
    static int ready;
    char why[256];
    og__tmpl_t *t;
    int esc;

    if (!ready) {
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        pstr(&pk, "a");
        pstr(&pk, "<b>&\"x\" javascript:y");
        pstr(&pk, "n");
        msgpack_pack_int64(&pk, -42);
        pstr(&pk, "url");
        pstr(&pk, "https://shop.example/c?x=1&y=\"2\"");
        pstr(&pk, "list");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_map(&pk, 1);
        pstr(&pk, "");
        msgpack_pack_true(&pk);
        msgpack_pack_double(&pk, 1.5);
        pstr(&pk, "");
        msgpack_pack_nil(&pk);
        msgpack_unpacked_init(&root);
        msgpack_unpack_next(&root, sb.data, sb.size, NULL);
        ready = 1;
    }
    t = og__tmpl_parse((const char *)data, size, why, sizeof(why));
    if (t == NULL)
        return 0;
    og__tmpl_names(t, on_name, NULL);
    for (esc = 0; esc <= 1; esc++) {
        og__sbuf_t out = {NULL, 0, 0};

        (void)og__tmpl_render(t, &root.data, esc, partial, NULL, &out, why,
                              sizeof(why));
        og__sbuf_free(&out);
    }
    og__tmpl_free(t);
    return 0;
}
