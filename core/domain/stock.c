/*
 * stock.c: the shared stock rules (stock.h, docs/stock.md).
 *
 * Versions. Every inventory.changed carries the source's version (or its
 * time). An absolute count at version v replaces the count of every
 * version up to v: it applies only when v is newer than the last absolute
 * count, and the deltas newer than v that arrived before it are added on
 * top. A delta at version v applies once (sku, location and version are
 * its key) and only when it is newer than the last absolute count, which
 * already holds it otherwise. So duplicated and reordered updates never
 * move stock backwards.
 */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "domain/stock.h"
#include "event/event.h"

#define MAX_SKUS 64 /* distinct skus one event changes */
#define SKU_MAX 130
#define ORDER_MAX 136

int og__stock_type(const char *type)
{
    return type != NULL && (strcmp(type, "inventory.changed") == 0 ||
                            strcmp(type, "order.placed") == 0 ||
                            strcmp(type, "order.cancelled") == 0 ||
                            strcmp(type, "order.completed") == 0 ||
                            strcmp(type, "order.ready_for_pickup") == 0);
}

/* ---- reading the event ------------------------------------------------- */

/* Text (or a positive integer) at path into buf; NULL when none. */
static const char *text(const msgpack_object *o, const char *path, char *buf,
                        size_t len)
{
    return og__obj_text(o, path, 1, buf, len);
}

/* An integer at path; 1 when there is one. */
static int integer(const msgpack_object *o, const char *path, int64_t *out)
{
    const msgpack_object *v;

    if (og__obj_lookup(o, path, &v) != OG_OK)
        return 0;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        v->via.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->via.u64;
        return 1;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return 1;
    }
    return 0;
}

/* The order an order.* event is about: entity.id of kind order, else
 * props.order_id. */
static const char *order_id(const msgpack_object *root, char *buf, size_t len)
{
    char kind[16];
    const char *k = text(root, "entity.kind", kind, sizeof(kind));

    if (k != NULL && strcmp(k, "order") == 0 &&
        text(root, "entity.id", buf, len) != NULL)
        return buf;
    return text(root, "props.order_id", buf, len);
}

static int unpack(const uint8_t *b, size_t len, msgpack_zone *zone,
                  msgpack_object *root)
{
    size_t off = 0;

    msgpack_zone_init(zone, 2048);
    if (msgpack_unpack((const char *)b, len, &off, zone, root) !=
        MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy(zone);
        return -1;
    }
    return 0;
}

/* ---- availability and stock.out / stock.back --------------------------- */

struct touched {
    char sku[MAX_SKUS][SKU_MAX];
    size_t n;
};

static void touch(struct touched *t, const char *sku)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        if (strcmp(t->sku[i], sku) == 0)
            return;
    if (t->n < MAX_SKUS)
        snprintf(t->sku[t->n++], sizeof(t->sku[0]), "%s", sku);
}

og_err_t og__stock_available(og__stock_repo_t *r, const og__stock_chan_t *c,
                             const char *sku, int64_t *avail)
{
    int64_t sum = 0;
    size_t i;

    for (i = 0; c->locations[i] != NULL; i++) {
        int64_t here = 0;
        int all = strcmp(c->locations[i], "*") == 0;
        og_err_t rc =
            r->ops->available(r, sku, all ? NULL : c->locations[i], &here);

        if (rc != OG_OK)
            return rc;
        if (all) {
            sum = here;
            break;
        }
        sum += here;
    }
    *avail = sum - c->buffer;
    return OG_OK;
}

/* stock.out or stock.back for channel c. */
static og_err_t crossed(const og__stock_input_t *in, og__stock_made_fn made,
                        void *data, const char *sku, const og__stock_chan_t *c,
                        int64_t avail)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char id[40];

    if (made == NULL)
        return OG_OK;
    og__uuid7_at(id, in->received_ms);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    og__pack_core_head(&pk, 3, avail > 0 ? "stock.back" : "stock.out", id,
                       in->received_ms);
    og__pack_cstr(&pk, "causation");
    og__pack_cstr(&pk, in->event_id);
    og__pack_cstr(&pk, "entity");
    msgpack_pack_map(&pk, 2);
    og__pack_cstr(&pk, "kind");
    og__pack_cstr(&pk, "product");
    og__pack_cstr(&pk, "id");
    og__pack_cstr(&pk, sku);
    og__pack_cstr(&pk, "props");
    msgpack_pack_map(&pk, 3);
    og__pack_cstr(&pk, "sku");
    og__pack_cstr(&pk, sku);
    og__pack_cstr(&pk, "channel");
    og__pack_cstr(&pk, c->channel);
    og__pack_cstr(&pk, "available");
    msgpack_pack_int64(&pk, avail > 0 ? avail : 0);
    return made(data, (uint8_t *)sb.data, sb.size);
}

/* After a change to skus: each stock channel's availability, and the
 * events for those that crossed zero. A channel's first figure makes a
 * stock.out when it is zero, nothing otherwise. */
static og_err_t recheck(og__stock_repo_t *r, const og__stock_input_t *in,
                        const og__stock_rules_t *rules, og__stock_made_fn made,
                        void *data, const struct touched *t)
{
    size_t i, k;
    og_err_t rc = OG_OK;

    for (i = 0; rules != NULL && i < t->n && rc == OG_OK; i++) {
        for (k = 0; k < rules->n && rc == OG_OK; k++) {
            const og__stock_chan_t *c = &rules->chans[k];
            int64_t now = 0, before = 0;
            int known = 0;

            if ((rc = og__stock_available(r, c, t->sku[i], &now)) != OG_OK ||
                (rc = r->ops->channel_get(r, t->sku[i], c->channel, &before,
                                          &known)) != OG_OK)
                return rc;
            if (known && before == now)
                continue;
            if ((rc = r->ops->channel_set(r, t->sku[i], c->channel, now)) !=
                OG_OK)
                return rc;
            if ((known && (before > 0) != (now > 0)) || (!known && now <= 0))
                rc = crossed(in, made, data, t->sku[i], c, now);
        }
    }
    return rc;
}

/* ---- inventory.changed ------------------------------------------------- */

static og_err_t inventory(og__stock_repo_t *r, const og__stock_input_t *in,
                          const msgpack_object *root, struct touched *t)
{
    char sku[SKU_MAX], loc[SKU_MAX];
    int64_t version = 0, count, delta, absv = 0, after = 0;
    int has_count, has_delta, exists = 0, added = 0;
    og_err_t rc;

    if (text(root, "props.sku", sku, sizeof(sku)) == NULL ||
        (text(root, "props.location", loc, sizeof(loc)) == NULL &&
         text(root, "location", loc, sizeof(loc)) == NULL))
        return OG_OK; /* refused at the edge (docs/stock.md) */
    has_count = integer(root, "props.on_hand", &count);
    has_delta = integer(root, "props.delta", &delta);
    if (!integer(root, "props.version", &version) &&
        !integer(root, "entity.version", &version) &&
        !integer(root, "occurred", &version))
        version = (int64_t)in->received_ms;
    if ((rc = r->ops->count_version(r, sku, loc, &absv, &exists)) != OG_OK)
        return rc;
    if (exists && version <= absv)
        return OG_OK; /* the last count already holds it: stale */
    if (has_count) {
        if ((rc = r->ops->deltas_after(r, sku, loc, version, &after)) !=
                OG_OK ||
            (rc = r->ops->count_set(r, sku, loc, count + after, version,
                                    in->received_ms)) != OG_OK ||
            (rc = r->ops->deltas_drop(r, sku, loc, version)) != OG_OK)
            return rc;
    } else if (has_delta) {
        if ((rc = r->ops->delta_add(r, sku, loc, version, delta, &added)) !=
            OG_OK)
            return rc;
        if (!added)
            return OG_OK; /* this version's delta was applied */
        if ((rc = r->ops->move(r, sku, loc, delta, 0, in->received_ms)) !=
            OG_OK)
            return rc;
    }
    touch(t, sku);
    return OG_OK;
}

/* ---- orders ------------------------------------------------------------ */

/* Where an order's line reserves: its own location, the order's pickup
 * location, the event's location, or the first location of the source
 * channel's stock; NULL when none. */
static const char *line_location(const msgpack_object *line,
                                 const msgpack_object *root,
                                 const og__stock_input_t *in,
                                 const og__stock_rules_t *rules, char *buf,
                                 size_t len)
{
    size_t i;

    if (text(line, "location", buf, len) != NULL ||
        text(root, "props.pickup_location", buf, len) != NULL ||
        text(root, "location", buf, len) != NULL)
        return buf;
    for (i = 0; rules != NULL && i < rules->n; i++)
        if (in->source != NULL &&
            strcmp(rules->chans[i].channel, in->source) == 0 &&
            rules->chans[i].first != NULL) {
            snprintf(buf, len, "%s", rules->chans[i].first);
            return buf;
        }
    return NULL;
}

static og_err_t placed(og__stock_repo_t *r, const og__stock_input_t *in,
                       const og__stock_rules_t *rules,
                       const msgpack_object *root, struct touched *t)
{
    const msgpack_object *lines;
    char oid[ORDER_MAX], loc[SKU_MAX], pick[SKU_MAX];
    const char *pickup;
    uint32_t i;
    int added = 0;
    og_err_t rc;

    /* An order nothing can name later (no entity of kind order, no
     * props.order_id) is not recorded: its lines, if any, reserve under
     * the event's id, which cancels and completions cannot name. */
    if (order_id(root, oid, sizeof(oid)) == NULL) {
        if (og__obj_lookup(root, "props.lines", &lines) != OG_OK)
            return OG_OK;
        snprintf(oid, sizeof(oid), "%s", in->event_id);
    }
    pickup = text(root, "props.pickup_location", pick, sizeof(pick));
    rc = r->ops->order_add(
        r, oid, in->customer != NULL && in->customer[0] ? in->customer : NULL,
        pickup, in->received_ms, &added);
    if (rc != OG_OK || !added)
        return rc; /* an error, or the order was placed before */
    if (og__obj_lookup(root, "props.lines", &lines) != OG_OK ||
        lines->type != MSGPACK_OBJECT_ARRAY)
        return OG_OK;
    for (i = 0; i < lines->via.array.size; i++) {
        const msgpack_object *line = &lines->via.array.ptr[i];
        char sku[SKU_MAX];
        int64_t qty = 1;

        if (text(line, "sku", sku, sizeof(sku)) == NULL ||
            line_location(line, root, in, rules, loc, sizeof(loc)) == NULL)
            continue;
        if ((integer(line, "qty", &qty) || integer(line, "quantity", &qty)) &&
            qty <= 0)
            continue;
        if ((rc = r->ops->reservation_add(r, oid, sku, loc, qty, &added)) !=
            OG_OK)
            return rc;
        if (!added)
            continue; /* the same line twice */
        if ((rc = r->ops->move(r, sku, loc, 0, qty, in->received_ms)) != OG_OK)
            return rc;
        touch(t, sku);
    }
    return OG_OK;
}

struct line {
    char sku[SKU_MAX], loc[SKU_MAX];
    int64_t qty;
};

struct lines {
    struct line *v;
    size_t n, cap;
};

static void collect(void *data, const char *sku, const char *loc, int64_t qty)
{
    struct lines *l = data;

    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = og__xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    snprintf(l->v[l->n].sku, sizeof(l->v[0].sku), "%s", sku);
    snprintf(l->v[l->n].loc, sizeof(l->v[0].loc), "%s", loc);
    l->v[l->n++].qty = qty;
}

/* order.cancelled (released) or order.completed (the goods left). */
static og_err_t settle(og__stock_repo_t *r, const og__stock_input_t *in,
                       const msgpack_object *root, int completed,
                       struct touched *t)
{
    char oid[ORDER_MAX];
    struct lines l = {NULL, 0, 0};
    og_err_t rc;
    size_t i;

    if (order_id(root, oid, sizeof(oid)) == NULL)
        return OG_OK;
    rc = r->ops->reservations(r, oid, collect, &l);
    for (i = 0; rc == OG_OK && i < l.n; i++) {
        int64_t q = l.v[i].qty;

        rc = r->ops->move(r, l.v[i].sku, l.v[i].loc, completed ? -q : 0, -q,
                          in->received_ms);
        touch(t, l.v[i].sku);
    }
    free(l.v);
    if (rc == OG_OK)
        rc = r->ops->reservations_drop(r, oid);
    if (rc == OG_OK)
        rc = r->ops->order_state(
            r, oid, completed ? OG__ORDER_COMPLETED : OG__ORDER_CANCELLED,
            in->received_ms);
    return rc;
}

og_err_t og__stock_order_customer(og__stock_repo_t *r, const char *type,
                                  const uint8_t *body, size_t len, char *buf,
                                  size_t buflen, int *found)
{
    msgpack_zone zone;
    msgpack_object root;
    char oid[ORDER_MAX];
    og_err_t rc = OG_OK;

    *found = 0;
    if (type == NULL || strncmp(type, "order.", 6) != 0 ||
        unpack(body, len, &zone, &root) != 0)
        return OG_OK;
    if (order_id(&root, oid, sizeof(oid)) != NULL)
        rc = r->ops->order_customer(r, oid, buf, buflen, found);
    msgpack_zone_destroy(&zone);
    return rc;
}

og_err_t og__stock_apply(og__stock_repo_t *r, const og__stock_input_t *in,
                         const og__stock_rules_t *rules, og__stock_made_fn made,
                         void *data)
{
    struct touched t;
    msgpack_zone zone;
    msgpack_object root;
    og_err_t rc = OG_OK;

    if (!og__stock_type(in->type) ||
        unpack(in->body, in->len, &zone, &root) != 0)
        return OG_OK;
    t.n = 0;
    if (strcmp(in->type, "inventory.changed") == 0)
        rc = inventory(r, in, &root, &t);
    else if (strcmp(in->type, "order.placed") == 0)
        rc = placed(r, in, rules, &root, &t);
    else if (strcmp(in->type, "order.cancelled") == 0)
        rc = settle(r, in, &root, 0, &t);
    else if (strcmp(in->type, "order.completed") == 0)
        rc = settle(r, in, &root, 1, &t);
    else { /* order.ready_for_pickup */
        char oid[ORDER_MAX];

        if (order_id(&root, oid, sizeof(oid)) != NULL)
            rc = r->ops->order_state(r, oid, OG__ORDER_READY, in->received_ms);
    }
    if (rc == OG_OK)
        rc = recheck(r, in, rules, made, data, &t);
    msgpack_zone_destroy(&zone);
    return rc;
}
