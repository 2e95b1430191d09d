/*
 * mem_repos.c: the domain's repositories in memory (mem_repos.h). Linear
 * scans: a test holds a handful of rows.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "mem_repos.h"
#include "store/store.h"

#define K 136

struct level {
    char sku[K], loc[K];
    int64_t on_hand, reserved, version;
    uint64_t updated_ms;
};

struct delta {
    char sku[K], loc[K];
    int64_t version, delta;
};

struct chan {
    char sku[K], channel[K];
    int64_t avail;
};

struct order {
    char id[K], customer[K], pickup[K];
    int state;
    uint64_t placed_ms, updated_ms;
};

struct res {
    char order[K], sku[K], loc[K];
    int64_t qty;
};

#define TABLE(T, name)                                                         \
    struct {                                                                   \
        T *v;                                                                  \
        size_t n, cap;                                                         \
    } name

/* Calls made, and from which one on they fail (0: none). */
struct faults {
    unsigned calls, fail_from;
};

static unsigned fail_from(struct faults *f, unsigned n)
{
    f->fail_from = n == 0 ? 0 : f->calls + n;
    return f->calls;
}

struct mem {
    og__stock_repo_t repo; /* first */
    TABLE(struct level, levels);
    TABLE(struct delta, deltas);
    TABLE(struct chan, chans);
    TABLE(struct order, orders);
    TABLE(struct res, res);
    struct faults f;
};

/* t's rows with room for one more, zeroed, after its n rows. */
static void *grow(void *v, size_t n, size_t *cap, size_t size)
{
    if (n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        v = og__xrealloc(v, *cap * size);
    }
    memset((char *)v + n * size, 0, size);
    return v;
}

/* A new zeroed row at the end of table t. */
#define APPEND(t)                                                              \
    ((t).v = grow((t).v, (t).n, &(t).cap, sizeof(*(t).v)), &(t).v[(t).n++])

static void copy(char *dst, const char *src)
{
    snprintf(dst, K, "%s", src ? src : "");
}

/* Counts the call; 1 when it must fail. */
static int failing(struct faults *f)
{
    f->calls++;
    return f->fail_from != 0 && f->calls >= f->fail_from;
}

#define CALL(r)                                                                \
    do {                                                                       \
        if (failing(&((struct mem *)(r))->f))                                  \
            return OG_ERR_IO;                                                  \
    } while (0)

static struct level *level_of(struct mem *m, const char *sku, const char *loc,
                              int create)
{
    struct level *l;
    size_t i;

    for (i = 0; i < m->levels.n; i++)
        if (strcmp(m->levels.v[i].sku, sku) == 0 &&
            strcmp(m->levels.v[i].loc, loc) == 0)
            return &m->levels.v[i];
    if (!create)
        return NULL;
    l = APPEND(m->levels);
    copy(l->sku, sku);
    copy(l->loc, loc);
    return l;
}

static struct order *order_of(struct mem *m, const char *id)
{
    size_t i;

    for (i = 0; i < m->orders.n; i++)
        if (strcmp(m->orders.v[i].id, id) == 0)
            return &m->orders.v[i];
    return NULL;
}

static og_err_t count_version(og__stock_repo_t *r, const char *sku,
                              const char *loc, int64_t *version, int *found)
{
    struct level *l;

    CALL(r);
    l = level_of((struct mem *)r, sku, loc, 0);
    *found = l != NULL;
    *version = l ? l->version : 0;
    return OG_OK;
}

static og_err_t count_set(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t on_hand, int64_t version, uint64_t at_ms)
{
    struct level *l;

    CALL(r);
    l = level_of((struct mem *)r, sku, loc, 1);
    l->on_hand = on_hand;
    l->version = version;
    l->updated_ms = at_ms;
    return OG_OK;
}

static og_err_t move(og__stock_repo_t *r, const char *sku, const char *loc,
                     int64_t d_on_hand, int64_t d_reserved, uint64_t at_ms)
{
    struct level *l;

    CALL(r);
    l = level_of((struct mem *)r, sku, loc, 1);
    l->on_hand += d_on_hand;
    l->reserved += d_reserved;
    if (l->reserved < 0)
        l->reserved = 0;
    l->updated_ms = at_ms;
    return OG_OK;
}

static og_err_t deltas_after(og__stock_repo_t *r, const char *sku,
                             const char *loc, int64_t version, int64_t *sum)
{
    struct mem *m = (struct mem *)r;
    size_t i;

    CALL(r);
    *sum = 0;
    for (i = 0; i < m->deltas.n; i++)
        if (strcmp(m->deltas.v[i].sku, sku) == 0 &&
            strcmp(m->deltas.v[i].loc, loc) == 0 &&
            m->deltas.v[i].version > version)
            *sum += m->deltas.v[i].delta;
    return OG_OK;
}

static og_err_t deltas_drop(og__stock_repo_t *r, const char *sku,
                            const char *loc, int64_t version)
{
    struct mem *m = (struct mem *)r;
    size_t i, k = 0;

    CALL(r);
    for (i = 0; i < m->deltas.n; i++)
        if (strcmp(m->deltas.v[i].sku, sku) != 0 ||
            strcmp(m->deltas.v[i].loc, loc) != 0 ||
            m->deltas.v[i].version > version)
            m->deltas.v[k++] = m->deltas.v[i];
    m->deltas.n = k;
    return OG_OK;
}

static og_err_t delta_add(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t version, int64_t delta, int *added)
{
    struct mem *m = (struct mem *)r;
    struct delta *d;
    size_t i;

    CALL(r);
    *added = 0;
    for (i = 0; i < m->deltas.n; i++)
        if (strcmp(m->deltas.v[i].sku, sku) == 0 &&
            strcmp(m->deltas.v[i].loc, loc) == 0 &&
            m->deltas.v[i].version == version)
            return OG_OK;
    d = APPEND(m->deltas);
    copy(d->sku, sku);
    copy(d->loc, loc);
    d->version = version;
    d->delta = delta;
    *added = 1;
    return OG_OK;
}

static og_err_t available(og__stock_repo_t *r, const char *sku, const char *loc,
                          int64_t *sum)
{
    struct mem *m = (struct mem *)r;
    size_t i;

    CALL(r);
    *sum = 0;
    for (i = 0; i < m->levels.n; i++)
        if (strcmp(m->levels.v[i].sku, sku) == 0 &&
            (loc == NULL || strcmp(m->levels.v[i].loc, loc) == 0))
            *sum += m->levels.v[i].on_hand - m->levels.v[i].reserved;
    return OG_OK;
}

static og_err_t order_add(og__stock_repo_t *r, const char *order,
                          const char *customer, const char *pickup,
                          uint64_t at_ms, int *added)
{
    struct mem *m = (struct mem *)r;
    struct order *o;

    CALL(r);
    *added = order_of(m, order) == NULL;
    if (!*added)
        return OG_OK;
    o = APPEND(m->orders);
    copy(o->id, order);
    copy(o->customer, customer);
    copy(o->pickup, pickup);
    o->placed_ms = o->updated_ms = at_ms;
    return OG_OK;
}

static og_err_t order_customer(og__stock_repo_t *r, const char *order,
                               char *buf, size_t len, int *found)
{
    struct order *o;

    CALL(r);
    o = order_of((struct mem *)r, order);
    *found = o != NULL && o->customer[0] != '\0';
    if (*found)
        snprintf(buf, len, "%s", o->customer);
    return OG_OK;
}

static og_err_t order_state(og__stock_repo_t *r, const char *order,
                            og__order_state_t state, uint64_t at_ms)
{
    struct order *o;

    CALL(r);
    if ((o = order_of((struct mem *)r, order)) != NULL) {
        o->state = (int)state;
        o->updated_ms = at_ms;
    }
    return OG_OK;
}

static og_err_t reservation_add(og__stock_repo_t *r, const char *order,
                                const char *sku, const char *loc, int64_t qty,
                                int *added)
{
    struct mem *m = (struct mem *)r;
    struct res *x;
    size_t i;

    CALL(r);
    *added = 0;
    for (i = 0; i < m->res.n; i++)
        if (strcmp(m->res.v[i].order, order) == 0 &&
            strcmp(m->res.v[i].sku, sku) == 0 &&
            strcmp(m->res.v[i].loc, loc) == 0)
            return OG_OK;
    x = APPEND(m->res);
    copy(x->order, order);
    copy(x->sku, sku);
    copy(x->loc, loc);
    x->qty = qty;
    *added = 1;
    return OG_OK;
}

static og_err_t reservations(og__stock_repo_t *r, const char *order,
                             og__stock_line_cb cb, void *data)
{
    struct mem *m = (struct mem *)r;
    size_t i;

    CALL(r);
    for (i = 0; i < m->res.n; i++)
        if (strcmp(m->res.v[i].order, order) == 0)
            cb(data, m->res.v[i].sku, m->res.v[i].loc, m->res.v[i].qty);
    return OG_OK;
}

static og_err_t reservations_drop(og__stock_repo_t *r, const char *order)
{
    struct mem *m = (struct mem *)r;
    size_t i, k = 0;

    CALL(r);
    for (i = 0; i < m->res.n; i++)
        if (strcmp(m->res.v[i].order, order) != 0)
            m->res.v[k++] = m->res.v[i];
    m->res.n = k;
    return OG_OK;
}

static struct chan *chan_of(struct mem *m, const char *sku, const char *channel)
{
    size_t i;

    for (i = 0; i < m->chans.n; i++)
        if (strcmp(m->chans.v[i].sku, sku) == 0 &&
            strcmp(m->chans.v[i].channel, channel) == 0)
            return &m->chans.v[i];
    return NULL;
}

static og_err_t channel_get(og__stock_repo_t *r, const char *sku,
                            const char *channel, int64_t *avail, int *known)
{
    struct chan *c;

    CALL(r);
    c = chan_of((struct mem *)r, sku, channel);
    *known = c != NULL;
    *avail = c ? c->avail : 0;
    return OG_OK;
}

static og_err_t channel_set(og__stock_repo_t *r, const char *sku,
                            const char *channel, int64_t avail)
{
    struct mem *m = (struct mem *)r;
    struct chan *c;

    CALL(r);
    if ((c = chan_of(m, sku, channel)) == NULL) {
        c = APPEND(m->chans);
        copy(c->sku, sku);
        copy(c->channel, channel);
    }
    c->avail = avail;
    return OG_OK;
}

static int by_location(const void *a, const void *b)
{
    return strcmp((*(const struct level *const *)a)->loc,
                  (*(const struct level *const *)b)->loc);
}

static og_err_t levels(og__stock_repo_t *r, const char *sku,
                       og__stock_level_cb cb, void *data)
{
    struct mem *m = (struct mem *)r;
    struct level **v;
    size_t i, n = 0;

    CALL(r);
    v = og__xcalloc(m->levels.n + 1, sizeof(*v));
    for (i = 0; i < m->levels.n; i++)
        if (strcmp(m->levels.v[i].sku, sku) == 0)
            v[n++] = &m->levels.v[i];
    qsort(v, n, sizeof(*v), by_location);
    for (i = 0; i < n; i++) {
        og__stock_level_t l = {v[i]->loc, v[i]->on_hand, v[i]->reserved,
                               v[i]->version, v[i]->updated_ms};

        cb(data, &l);
    }
    free(v);
    return OG_OK;
}

static const struct og__stock_repo_ops ops = {
    .count_version = count_version,
    .count_set = count_set,
    .move = move,
    .deltas_after = deltas_after,
    .deltas_drop = deltas_drop,
    .delta_add = delta_add,
    .available = available,
    .order_add = order_add,
    .order_customer = order_customer,
    .order_state = order_state,
    .reservation_add = reservation_add,
    .reservations = reservations,
    .reservations_drop = reservations_drop,
    .channel_get = channel_get,
    .channel_set = channel_set,
    .levels = levels,
};

og__stock_repo_t *mem_stock_new(void)
{
    struct mem *m = og__xcalloc(1, sizeof(*m));

    m->repo.ops = &ops;
    return &m->repo;
}

void mem_stock_free(og__stock_repo_t *r)
{
    struct mem *m = (struct mem *)r;

    if (m == NULL)
        return;
    free(m->levels.v);
    free(m->deltas.v);
    free(m->chans.v);
    free(m->orders.v);
    free(m->res.v);
    free(m);
}

unsigned mem_stock_fail_from(og__stock_repo_t *r, unsigned n)
{
    return fail_from(&((struct mem *)r)->f, n);
}

/* ---- consent statements ------------------------------------------------ */

struct statement {
    char customer[K], purpose[K], channel[K], source[K];
    int granted;
    uint64_t at_ms;
};

struct mem_consent {
    og__consent_repo_t repo; /* first */
    TABLE(struct statement, st);
    struct faults f;
};

static og_err_t consent_set(og__consent_repo_t *r, const char *customer,
                            const char *purpose, const char *channel,
                            int granted, const char *source, uint64_t at_ms)
{
    struct mem_consent *m = (struct mem_consent *)r;
    struct statement *s = NULL;
    size_t i;

    if (failing(&m->f))
        return OG_ERR_IO;
    for (i = 0; i < m->st.n && s == NULL; i++)
        if (strcmp(m->st.v[i].customer, customer) == 0 &&
            strcmp(m->st.v[i].purpose, purpose) == 0 &&
            strcmp(m->st.v[i].channel, channel) == 0)
            s = &m->st.v[i];
    if (s != NULL && at_ms < s->at_ms)
        return OG_OK; /* the one kept is newer */
    if (s == NULL) {
        s = APPEND(m->st);
        copy(s->customer, customer);
        copy(s->purpose, purpose);
        copy(s->channel, channel);
    }
    copy(s->source, source);
    s->granted = granted ? 1 : 0;
    s->at_ms = at_ms;
    return OG_OK;
}

/* 0 given for the channel itself, 1 for its kind, 2 for "*". */
static int specificity(const char *given, const char *channel)
{
    return strcmp(given, channel) == 0 ? 0 : strcmp(given, "*") == 0 ? 2 : 1;
}

static og_err_t consent_statement(og__consent_repo_t *r, const char *customer,
                                  const char *purpose, const char *channel,
                                  const char *kind, int *granted, char *on,
                                  size_t onlen)
{
    struct mem_consent *m = (struct mem_consent *)r;
    const struct statement *best = NULL;
    size_t i;

    if (failing(&m->f))
        return OG_ERR_IO;
    for (i = 0; i < m->st.n; i++) {
        const struct statement *s = &m->st.v[i];

        if (strcmp(s->customer, customer) != 0 ||
            strcmp(s->purpose, purpose) != 0 ||
            (strcmp(s->channel, channel) != 0 &&
             strcmp(s->channel, kind) != 0 && strcmp(s->channel, "*") != 0))
            continue;
        if (best == NULL || s->at_ms > best->at_ms ||
            (s->at_ms == best->at_ms &&
             specificity(s->channel, channel) <
                 specificity(best->channel, channel)))
            best = s;
    }
    *granted = best ? best->granted : -1;
    if (best != NULL)
        snprintf(on, onlen, "%s", best->channel);
    return OG_OK;
}

static const struct og__consent_repo_ops consent_ops = {
    .set = consent_set,
    .statement = consent_statement,
};

og__consent_repo_t *mem_consent_new(void)
{
    struct mem_consent *m = og__xcalloc(1, sizeof(*m));

    m->repo.ops = &consent_ops;
    return &m->repo;
}

void mem_consent_free(og__consent_repo_t *r)
{
    struct mem_consent *m = (struct mem_consent *)r;

    if (m == NULL)
        return;
    free(m->st.v);
    free(m);
}

unsigned mem_consent_fail_from(og__consent_repo_t *r, unsigned n)
{
    return fail_from(&((struct mem_consent *)r)->f, n);
}

/* ---- traits -------------------------------------------------------------- */

struct trait {
    char customer[K], name[K];
    uint8_t value[256];
    size_t n;
    uint64_t at_ms, seq;
};

struct alias {
    char merged[K], survivor[K];
};

struct mem_traits {
    og__trait_repo_t repo; /* first */
    TABLE(struct trait, t);
    TABLE(struct alias, a);
    uint64_t seq;
    struct faults f;
};

static og_err_t trait_set(og__trait_repo_t *r, const char *customer,
                          const char *name, const void *value, size_t n,
                          uint64_t at_ms)
{
    struct mem_traits *m = (struct mem_traits *)r;
    struct trait *t = NULL;
    size_t i;

    if (failing(&m->f))
        return OG_ERR_IO;
    if (n > sizeof(t->value))
        return OG_ERR_INVALID; /* a test's value: small */
    for (i = 0; i < m->t.n && t == NULL; i++)
        if (strcmp(m->t.v[i].customer, customer) == 0 &&
            strcmp(m->t.v[i].name, name) == 0)
            t = &m->t.v[i];
    if (t == NULL) {
        t = APPEND(m->t);
        copy(t->customer, customer);
        copy(t->name, name);
    }
    memcpy(t->value, value, n);
    t->n = n;
    t->at_ms = at_ms;
    t->seq = ++m->seq;
    return OG_OK;
}

static og_err_t trait_del(og__trait_repo_t *r, const char *customer,
                          const char *name)
{
    struct mem_traits *m = (struct mem_traits *)r;
    size_t i, k = 0;

    if (failing(&m->f))
        return OG_ERR_IO;
    for (i = 0; i < m->t.n; i++)
        if (strcmp(m->t.v[i].customer, customer) != 0 ||
            strcmp(m->t.v[i].name, name) != 0)
            m->t.v[k++] = m->t.v[i];
    m->t.n = k;
    return OG_OK;
}

static int in_family(const struct mem_traits *m, const char *customer,
                     const char *of)
{
    size_t i;

    if (strcmp(customer, of) == 0)
        return 1;
    for (i = 0; i < m->a.n; i++)
        if (strcmp(m->a.v[i].merged, customer) == 0 &&
            strcmp(m->a.v[i].survivor, of) == 0)
            return 1;
    return 0;
}

static int by_name_then_time(const void *a, const void *b)
{
    const struct trait *x = *(const struct trait *const *)a;
    const struct trait *y = *(const struct trait *const *)b;
    int c = strcmp(x->name, y->name);

    if (c != 0)
        return c;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static og_err_t trait_rows(og__trait_repo_t *r, const char *customer,
                           og__trait_row_cb cb, void *data)
{
    struct mem_traits *m = (struct mem_traits *)r;
    struct trait **v;
    size_t i, n = 0;

    if (failing(&m->f))
        return OG_ERR_IO;
    v = og__xcalloc(m->t.n + 1, sizeof(*v));
    for (i = 0; i < m->t.n; i++)
        if (in_family(m, m->t.v[i].customer, customer))
            v[n++] = &m->t.v[i];
    qsort(v, n, sizeof(*v), by_name_then_time);
    for (i = 0; i < n; i++)
        cb(data, v[i]->name, v[i]->value, v[i]->n,
           strcmp(v[i]->customer, customer) == 0);
    free(v);
    return OG_OK;
}

static const struct og__trait_repo_ops trait_ops = {
    .set = trait_set,
    .del = trait_del,
    .rows = trait_rows,
};

og__trait_repo_t *mem_traits_new(void)
{
    struct mem_traits *m = og__xcalloc(1, sizeof(*m));

    m->repo.ops = &trait_ops;
    return &m->repo;
}

void mem_traits_free(og__trait_repo_t *r)
{
    struct mem_traits *m = (struct mem_traits *)r;

    if (m == NULL)
        return;
    free(m->t.v);
    free(m->a.v);
    free(m);
}

unsigned mem_traits_fail_from(og__trait_repo_t *r, unsigned n)
{
    return fail_from(&((struct mem_traits *)r)->f, n);
}

void mem_traits_merge(og__trait_repo_t *r, const char *merged,
                      const char *survivor)
{
    struct mem_traits *m = (struct mem_traits *)r;
    struct alias *a = APPEND(m->a);

    copy(a->merged, merged);
    copy(a->survivor, survivor);
}

/* ---- customers and keys ---------------------------------------------- */

struct mcust {
    char id[40], merged_into[40], first[K];
    int64_t created_ms;
};

struct mkey {
    og__idkey_t key;
    char customer[40];
    int verified;
    uint64_t first_ms;
};

struct mem_identity {
    og__identity_repo_t repo; /* first */
    TABLE(struct mcust, c);
    TABLE(struct mkey, k);
    int64_t merges;
    struct faults f;
};

#define ICALL(r)                                                               \
    do {                                                                       \
        if (failing(&((struct mem_identity *)(r))->f))                         \
            return OG_ERR_IO;                                                  \
    } while (0)

static struct mkey *key_of(struct mem_identity *m, const og__idkey_t *k)
{
    size_t i;

    for (i = 0; i < m->k.n; i++)
        if (strcmp(m->k.v[i].key.kind, k->kind) == 0 &&
            strcmp(m->k.v[i].key.scope, k->scope) == 0 &&
            strcmp(m->k.v[i].key.value, k->value) == 0)
            return &m->k.v[i];
    return NULL;
}

static og_err_t id_key_find(og__identity_repo_t *r, const og__idkey_t *key,
                            char customer[40], int *verified, int *found)
{
    struct mkey *k;

    ICALL(r);
    k = key_of((struct mem_identity *)r, key);
    *found = k != NULL;
    if (k != NULL) {
        snprintf(customer, 40, "%s", k->customer);
        *verified = k->verified;
    }
    return OG_OK;
}

static og_err_t id_canonical(og__identity_repo_t *r, const char *id,
                             char canon[40], int64_t *created, int *found)
{
    struct mem_identity *m = (struct mem_identity *)r;
    size_t i;

    ICALL(r);
    *found = 0;
    for (i = 0; i < m->c.n && !*found; i++)
        if (strcmp(m->c.v[i].id, id) == 0) {
            *found = 1;
            *created = m->c.v[i].created_ms;
            /* id may be canon itself */
            snprintf(canon, 40, "%s",
                     m->c.v[i].merged_into[0] ? m->c.v[i].merged_into
                                              : m->c.v[i].id);
        }
    return OG_OK;
}

static og_err_t id_has_verified(og__identity_repo_t *r, const char *customer,
                                int *yes)
{
    struct mem_identity *m = (struct mem_identity *)r;
    size_t i;

    ICALL(r);
    *yes = 0;
    for (i = 0; i < m->k.n; i++)
        if (strcmp(m->k.v[i].customer, customer) == 0 && m->k.v[i].verified)
            *yes = 1;
    return OG_OK;
}

static og_err_t id_customer_add(og__identity_repo_t *r, const char *id,
                                int64_t created_ms, const char *first)
{
    struct mem_identity *m = (struct mem_identity *)r;
    struct mcust *c;
    size_t i;

    ICALL(r);
    for (i = 0; i < m->c.n; i++)
        if (strcmp(m->c.v[i].id, id) == 0)
            return OG_ERR_IO; /* the primary key */
    c = APPEND(m->c);
    snprintf(c->id, sizeof(c->id), "%s", id);
    copy(c->first, first);
    c->created_ms = created_ms;
    return OG_OK;
}

static og_err_t id_key_add(og__identity_repo_t *r, const og__idkey_t *key,
                           const char *customer, int verified, uint64_t at_ms)
{
    struct mem_identity *m = (struct mem_identity *)r;
    struct mkey *k;

    ICALL(r);
    if (key_of(m, key) != NULL)
        return OG_ERR_IO; /* the primary key */
    k = APPEND(m->k);
    k->key = *key;
    snprintf(k->customer, sizeof(k->customer), "%s", customer);
    k->verified = verified ? 1 : 0;
    k->first_ms = at_ms;
    return OG_OK;
}

static og_err_t id_key_verify(og__identity_repo_t *r, const og__idkey_t *key)
{
    struct mkey *k;

    ICALL(r);
    if ((k = key_of((struct mem_identity *)r, key)) != NULL)
        k->verified = 1;
    return OG_OK;
}

static og_err_t id_merge(og__identity_repo_t *r, const char *survivor,
                         const char *merged, const og__idkey_t *reason,
                         uint64_t at_ms, int64_t *merge_id)
{
    struct mem_identity *m = (struct mem_identity *)r;
    size_t i;

    ICALL(r);
    (void)reason;
    (void)at_ms;
    *merge_id = ++m->merges;
    for (i = 0; i < m->k.n; i++)
        if (strcmp(m->k.v[i].customer, merged) == 0)
            snprintf(m->k.v[i].customer, 40, "%s", survivor);
    for (i = 0; i < m->c.n; i++)
        if (strcmp(m->c.v[i].id, merged) == 0 ||
            strcmp(m->c.v[i].merged_into, merged) == 0)
            snprintf(m->c.v[i].merged_into, 40, "%s", survivor);
    return OG_OK;
}

static const struct og__identity_repo_ops identity_ops = {
    .key_find = id_key_find,
    .canonical = id_canonical,
    .has_verified = id_has_verified,
    .customer_add = id_customer_add,
    .key_add = id_key_add,
    .key_verify = id_key_verify,
    .merge = id_merge,
};

og__identity_repo_t *mem_identity_new(void)
{
    struct mem_identity *m = og__xcalloc(1, sizeof(*m));

    m->repo.ops = &identity_ops;
    return &m->repo;
}

void mem_identity_free(og__identity_repo_t *r)
{
    struct mem_identity *m = (struct mem_identity *)r;

    if (m == NULL)
        return;
    free(m->c.v);
    free(m->k.v);
    free(m);
}

unsigned mem_identity_fail_from(og__identity_repo_t *r, unsigned n)
{
    return fail_from(&((struct mem_identity *)r)->f, n);
}

/* ---- the domain's rule tests on both implementations ------------------ */

int tu_on_sqlite;

void tu_repos_open(tu_repos_t *r, const char *dir)
{
    memset(r, 0, sizeof(*r));
    if (tu_on_sqlite) {
        static const char *const subdirs[] = {NULL};
        og__store_opts_t o = {NULL, OG__DURABLE_PROCESS, 3600 * 1000, 0};
        char err[256];

        tu_fresh(dir, subdirs);
        o.dir = dir;
        r->store = og__store_open_sqlite(&o, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r->store);
        r->stock = r->store->ops->stock_repo(r->store);
        r->consent = r->store->ops->consent_repo(r->store);
        r->traits = r->store->ops->trait_repo(r->store);
        r->identity = r->store->ops->identity_repo(r->store);
        return;
    }
    r->stock = mem_stock_new();
    r->consent = mem_consent_new();
    r->traits = mem_traits_new();
    r->identity = mem_identity_new();
}

void tu_repos_close(tu_repos_t *r)
{
    if (r->store != NULL) {
        og__store_close(r->store);
    } else {
        mem_stock_free(r->stock);
        mem_consent_free(r->consent);
        mem_traits_free(r->traits);
        mem_identity_free(r->identity);
    }
    memset(r, 0, sizeof(*r));
}

static int on_sqlite(void)
{
    tu_on_sqlite = 1;
    return 0;
}

static int in_memory(void)
{
    tu_on_sqlite = 0;
    return 0;
}

void tu_add_both(const char *what, const tu_test_t *tests, size_t n,
                 CU_pSuite *sqlite_suite, CU_pSuite *mem_suite)
{
    char name[256];
    CU_pSuite s, m;
    size_t i;

    snprintf(name, sizeof(name), "%s on SQLite", what);
    s = CU_add_suite(name, on_sqlite, NULL);
    snprintf(name, sizeof(name), "%s on the in-memory repositories", what);
    m = CU_add_suite(name, in_memory, NULL);
    for (i = 0; i < n; i++) {
        CU_add_test(s, tests[i].name, tests[i].fn);
        CU_add_test(m, tests[i].name, tests[i].fn);
    }
    if (sqlite_suite != NULL)
        *sqlite_suite = s;
    if (mem_suite != NULL)
        *mem_suite = m;
}
