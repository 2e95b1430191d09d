/*
 * traits.c: the trait rules (traits.h, docs/customers.md).
 */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "domain/traits.h"

og__trait_rule_t og__trait_rule_of(const og__trait_rules_t *rules,
                                   const char *name)
{
    size_t i;

    if (rules == NULL)
        return OG__TRAIT_NEWEST;
    for (i = 0; i < rules->n; i++)
        if (strcmp(rules->names[i], name) == 0)
            return rules->rules[i];
    return rules->dflt;
}

og_err_t og__traits_apply(og__trait_repo_t *r, const char *customer,
                          const uint8_t *map, size_t len, uint64_t at_ms)
{
    msgpack_unpacked u;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t off = 0;
    uint32_t i;
    og_err_t rc = OG_OK;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)map, len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&u);
        return OG_OK; /* checked at acceptance: never here */
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (i = 0; i < u.data.via.map.size && rc == OG_OK; i++) {
        const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        char name[OG__TRAIT_NAME_MAX + 1];

        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size == 0 ||
            kv->key.via.str.size > OG__TRAIT_NAME_MAX)
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)kv->key.via.str.size,
                 kv->key.via.str.ptr);
        if (kv->val.type == MSGPACK_OBJECT_NIL) {
            rc = r->ops->del(r, customer, name);
        } else {
            msgpack_sbuffer_clear(&sb);
            msgpack_pack_object(&pk, kv->val);
            rc = r->ops->set(r, customer, name, sb.data, sb.size, at_ms);
        }
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* A copy of one value while the rows of its name are read. */
struct tv {
    void *p;
    size_t n;
    int set;
};

static void tv_set(struct tv *t, const void *p, size_t n)
{
    free(t->p);
    t->p = og__xmalloc(n > 0 ? n : 1);
    if (n > 0)
        memcpy(t->p, p, n);
    t->n = n;
    t->set = 1;
}

static void tv_clear(struct tv *t)
{
    free(t->p);
    t->p = NULL;
    t->n = 0;
    t->set = 0;
}

/* An empty value: nil or "". */
static int tv_empty(const void *p, size_t n)
{
    return n == 0 || (n == 1 && (((const uint8_t *)p)[0] == 0xc0 ||
                                 ((const uint8_t *)p)[0] == 0xa0));
}

/* The rows of one name so far, folded by the rule when the name ends. */
struct fold {
    const og__trait_rules_t *rules;
    og__trait_fn fn;
    void *ctx;
    char name[OG__TRAIT_NAME_MAX + 1];
    struct tv first, last, own, nonempty;
};

static void fold_end(struct fold *f)
{
    og__trait_rule_t rule;
    const struct tv *pick;

    if (f->name[0] == '\0')
        return;
    rule = og__trait_rule_of(f->rules, f->name);
    pick = rule == OG__TRAIT_OLDEST                      ? &f->first
           : rule == OG__TRAIT_NEWEST                    ? &f->last
           : f->own.set && !tv_empty(f->own.p, f->own.n) ? &f->own
           : f->nonempty.set                             ? &f->nonempty
                                                         : &f->last;
    f->fn(f->ctx, f->name, pick->p, pick->n);
    tv_clear(&f->first);
    tv_clear(&f->last);
    tv_clear(&f->own);
    tv_clear(&f->nonempty);
    f->name[0] = '\0';
}

static void fold_row(void *data, const char *name, const void *value, size_t n,
                     int own)
{
    struct fold *f = data;

    if (f->name[0] != '\0' && strcmp(f->name, name) != 0)
        fold_end(f);
    if (f->name[0] == '\0')
        snprintf(f->name, sizeof(f->name), "%s", name);
    if (!f->first.set)
        tv_set(&f->first, value, n);
    tv_set(&f->last, value, n);
    if (own)
        tv_set(&f->own, value, n);
    if (!tv_empty(value, n))
        tv_set(&f->nonempty, value, n);
}

og_err_t og__traits_each(og__trait_repo_t *r, const char *customer,
                         const og__trait_rules_t *rules, og__trait_fn fn,
                         void *ctx)
{
    struct fold f;
    og_err_t rc;

    memset(&f, 0, sizeof(f));
    f.rules = rules;
    f.fn = fn;
    f.ctx = ctx;
    rc = r->ops->rows(r, customer, fold_row, &f);
    if (rc == OG_OK)
        fold_end(&f);
    tv_clear(&f.first);
    tv_clear(&f.last);
    tv_clear(&f.own);
    tv_clear(&f.nonempty);
    return rc;
}
