/*
 * customers.c: identity resolution (customers.h, docs/customers.md).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "domain/customers.h"

/* Where one key of the event points. */
struct seen_key {
    int found;
    char cust[40];
    int64_t created;
    int dup;      /* the same key as an earlier one of the event */
    int verified; /* as stored */
};

struct resolve {
    og__identity_repo_t *r;
    og__merged_fn merged;
    void *data;
    uint64_t at_ms;
    char cur[40]; /* the current customer, "" while none */
    int64_t cur_created;
    char gone[OG__MAX_IDKEYS + 1][40]; /* merged into cur by this event */
    size_t ngone;
};

static int is_gone(const struct resolve *r, const char *id)
{
    size_t i;

    for (i = 0; i < r->ngone; i++)
        if (strcmp(r->gone[i], id) == 0)
            return 1;
    return 0;
}

/* The customer of a key as of now: cur when it was merged into it. */
static const char *now_of(const struct resolve *r, const struct seen_key *s)
{
    return is_gone(r, s->cust) ? r->cur : s->cust;
}

/* True when a is older than b (creation time, then id). */
static int older(int64_t ta, const char *a, int64_t tb, const char *b)
{
    return ta != tb ? ta < tb : strcmp(a, b) < 0;
}

/* Merges customer other and the current one: other survives (and
 * becomes the current customer) when other_survives. */
static og_err_t join(struct resolve *r, const char *other,
                     int64_t other_created, const og__idkey_t *reason,
                     int other_survives)
{
    char survivor[40], merged[40];
    og__merge_t m;
    og_err_t rc;

    snprintf(survivor, sizeof(survivor), "%s", other_survives ? other : r->cur);
    snprintf(merged, sizeof(merged), "%s", other_survives ? r->cur : other);
    memset(&m, 0, sizeof(m));
    rc = r->r->ops->merge(r->r, survivor, merged, reason, r->at_ms, &m.id);
    if (rc != OG_OK)
        return rc;
    m.survivor = survivor;
    m.merged = merged;
    m.reason = reason;
    m.at_ms = r->at_ms;
    if (r->merged != NULL && (rc = r->merged(r->data, &m)) != OG_OK)
        return rc;
    if (r->ngone < OG__MAX_IDKEYS + 1)
        snprintf(r->gone[r->ngone++], 40, "%s", merged);
    snprintf(r->cur, sizeof(r->cur), "%s", survivor);
    if (other_survives)
        r->cur_created = other_created;
    return OG_OK;
}

static int same_key(const og__idkey_t *a, const og__idkey_t *b)
{
    return strcmp(a->kind, b->kind) == 0 && strcmp(a->scope, b->scope) == 0 &&
           strcmp(a->value, b->value) == 0;
}

og_err_t og__customer_resolve(og__identity_repo_t *repo, const og__person_t *p,
                              uint64_t at_ms, og__merged_fn merged, void *data,
                              char customer[40])
{
    const struct og__identity_repo_ops *ops = repo->ops;
    struct seen_key sk[OG__MAX_IDKEYS];
    struct resolve r;
    const og__idkey_t *first_verified = NULL;
    size_t i, j, n = p->nkeys < OG__MAX_IDKEYS ? p->nkeys : OG__MAX_IDKEYS;
    og_err_t rc;
    int found;

    memset(&r, 0, sizeof(r));
    r.r = repo;
    r.merged = merged;
    r.data = data;
    r.at_ms = at_ms;
    customer[0] = '\0';
    /* 1. Where each key points now. */
    for (i = 0; i < n; i++) {
        const og__idkey_t *k = &p->keys[i];

        memset(&sk[i], 0, sizeof(sk[i]));
        for (j = 0; j < i && !sk[i].dup; j++)
            sk[i].dup = same_key(k, &p->keys[j]);
        if (sk[i].dup)
            continue;
        if (k->verified && first_verified == NULL)
            first_verified = k;
        if ((rc = ops->key_find(repo, k, sk[i].cust, &sk[i].verified,
                                &sk[i].found)) != OG_OK)
            return rc;
    }
    /* Keys name canonical customers: creation times (which decide
     * merges) are only read when the keys name more than one. */
    {
        const char *one = NULL;
        int several = p->customer != NULL;

        for (i = 0; i < n && !several; i++)
            if (sk[i].found && !sk[i].dup) {
                if (one != NULL && strcmp(one, sk[i].cust) != 0)
                    several = 1;
                one = sk[i].cust;
            }
        for (i = 0; i < n && several; i++)
            if (sk[i].found && !sk[i].dup &&
                (rc = ops->canonical(repo, sk[i].cust, sk[i].cust,
                                     &sk[i].created, &found)) != OG_OK)
                return rc;
    }
    /* 2. The current customer: the oldest one a verified key (or the
     * event's own customer id) names; else the customer of the strongest
     * key that has one. */
    if (p->customer != NULL) {
        char id[40];
        int64_t t = 0;

        snprintf(id, sizeof(id), "%s", p->customer);
        if ((rc = ops->canonical(repo, id, r.cur, &t, &found)) != OG_OK)
            return rc;
        if (found)
            r.cur_created = t;
        else
            r.cur[0] = '\0';
    }
    for (i = 0; i < n; i++)
        if (sk[i].found && p->keys[i].verified &&
            (r.cur[0] == '\0' ||
             older(sk[i].created, sk[i].cust, r.cur_created, r.cur))) {
            snprintf(r.cur, sizeof(r.cur), "%s", sk[i].cust);
            r.cur_created = sk[i].created;
        }
    if (r.cur[0] == '\0') {
        int best = -1;

        /* A public client's unverified keys are its claims, not proof:
         * only its own anon key finds the customer it already is. */
        for (i = 0; i < n; i++)
            if (sk[i].found &&
                (!p->untrusted || strcmp(p->keys[i].kind, "anon") == 0) &&
                (best < 0 || og__idkind_rank(p->keys[i].kind) <
                                 og__idkind_rank(p->keys[best].kind)))
                best = (int)i;
        if (best >= 0) {
            snprintf(r.cur, sizeof(r.cur), "%s", sk[best].cust);
            r.cur_created = sk[best].created;
        }
    }
    /* 3. Merges. A verified key on another customer joins the two (the
     * older survives); a device key (anon, cart) on a profile that has
     * no verified identity is claimed by an event that has one. An
     * unverified key never joins two customers. */
    for (i = 0; i < n && r.cur[0] != '\0'; i++) {
        const char *other;

        if (!sk[i].found || sk[i].dup)
            continue;
        other = now_of(&r, &sk[i]);
        if (strcmp(other, r.cur) == 0)
            continue;
        rc = OG_OK;
        if (p->keys[i].verified) {
            rc = join(&r, other, sk[i].created, &p->keys[i],
                      older(sk[i].created, other, r.cur_created, r.cur));
        } else if (og__idkind_is_device(p->keys[i].kind) &&
                   first_verified != NULL) {
            int v = 0;

            if ((rc = ops->has_verified(repo, other, &v)) == OG_OK && !v)
                rc = join(&r, other, sk[i].created, first_verified, 0);
        }
        if (rc != OG_OK)
            return rc;
    }
    /* 4. A new customer when no key was known. */
    if (r.cur[0] == '\0') {
        if (n == 0) /* nothing to resolve by */
            return OG_OK;
        og__uuid7_at(r.cur, at_ms);
        r.cur_created = (int64_t)at_ms;
        if ((rc = ops->customer_add(repo, r.cur, r.cur_created, p->instance)) !=
            OG_OK)
            return rc;
    }
    /* 5. Keys: new ones attach to the current customer, its own are
     * touched (and upgraded to verified), another's stay where they are. */
    for (i = 0; i < n; i++) {
        const og__idkey_t *k = &p->keys[i];

        if (sk[i].dup)
            continue;
        if (!sk[i].found)
            rc = ops->key_add(repo, k, r.cur, k->verified, at_ms);
        else if (strcmp(now_of(&r, &sk[i]), r.cur) == 0 && !sk[i].verified &&
                 k->verified)
            rc = ops->key_verify(repo, k);
        else
            continue; /* nothing new to record, or another's */
        if (rc != OG_OK)
            return rc;
    }
    snprintf(customer, 40, "%s", r.cur);
    return OG_OK;
}
