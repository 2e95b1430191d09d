/*
 * live.c: live web messages. A visitor's browser long-polls
 * GET /v1/messages?anonymousId=...; a message event delivered to the web
 * channel for that visitor's customer is the answer. A message for a
 * customer with no browser waiting is held (its delivery pending) for
 * live_hold, then handed back to the outbox to be retried on the
 * channel's schedule: it is delivered when a browser asks, or becomes a
 * dead letter when its lifetime ends (a journey can then continue by
 * email).
 *
 * Which customer a browser is: the plugin learns anonymousId -> customer
 * from the events sent with that visitor's session token (or by a server
 * key): og_emit_batch_async's callback names the customer each event was
 * resolved to, and a public client's event resolves only by its own
 * anonymous id or a signed user id (docs/security.md). The map is a hash
 * table keyed with a secret (SipHash), chained, so no crafted id can push
 * out another visitor; it holds at most max_visitors, forgetting the one
 * seen longest ago. A visitor it forgot is known again at its next event
 * (the snippet sends a page view on every page).
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

#define BUCKETS 65536
#define MAX_WAITERS 10000 /* polls waiting at once */

struct slot {
    char anon[72];
    char customer[40];
    struct slot *chain;         /* same bucket */
    struct slot *older, *newer; /* by when last learned */
};

struct waiter {
    web_live_t *l;
    og_http_req_t *req;
    char customer[40];
    og_timer_t *timer;
    struct waiter *prev, *next;
};

struct held {
    web_live_t *l;
    og_delivery_t *d;
    char customer[40];
    json_t *msg;
    og_timer_t *timer;
    struct held *prev, *next;
};

struct web_live_s {
    og_plugin_ctx_t *ctx;
    uint64_t wait_ms, hold_ms;
    web_live_answer_fn answer;
    void *answer_data;
    struct slot **buckets;
    struct slot *oldest, *newest;
    size_t nslots, max_slots;
    unsigned char key[16]; /* SipHash key, random per start */
    struct waiter *waiters;
    size_t nwaiters;
    struct held *held;
    size_t nheld;
};

/* The bucket of an anonymous id: SipHash-2-4 under the table's key. */
static size_t bucket(const web_live_t *l, const char *s)
{
    unsigned char out[8];
    size_t outlen = 0, i, size = sizeof(out);
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
        OSSL_PARAM_END};
    uint64_t h = 0;

    if (EVP_Q_mac(NULL, "SIPHASH", NULL, NULL, params, l->key, sizeof(l->key),
                  (const unsigned char *)s, strlen(s), out, sizeof(out),
                  &outlen) == NULL)
        return 0;
    for (i = 0; i < outlen; i++)
        h = (h << 8) | out[i];
    return (size_t)(h % BUCKETS);
}

static struct slot *find(const web_live_t *l, const char *anon, size_t b)
{
    struct slot *s;

    for (s = l->buckets[b]; s != NULL; s = s->chain)
        if (strcmp(s->anon, anon) == 0)
            return s;
    return NULL;
}

static void age_unlink(web_live_t *l, struct slot *s)
{
    if (s->older)
        s->older->newer = s->newer;
    else
        l->oldest = s->newer;
    if (s->newer)
        s->newer->older = s->older;
    else
        l->newest = s->older;
    s->older = s->newer = NULL;
}

static void age_append(web_live_t *l, struct slot *s)
{
    s->older = l->newest;
    s->newer = NULL;
    if (l->newest)
        l->newest->newer = s;
    else
        l->oldest = s;
    l->newest = s;
}

/* Forgets the visitor seen longest ago. */
static void forget_oldest(web_live_t *l)
{
    struct slot *s = l->oldest, **pp;

    if (s == NULL)
        return;
    age_unlink(l, s);
    for (pp = &l->buckets[bucket(l, s->anon)]; *pp != NULL; pp = &(*pp)->chain)
        if (*pp == s) {
            *pp = s->chain;
            break;
        }
    free(s);
    l->nslots--;
}

web_live_t *web_live_create(og_plugin_ctx_t *ctx, uint64_t wait_ms,
                            uint64_t hold_ms, size_t max_visitors,
                            web_live_answer_fn answer, void *data)
{
    web_live_t *l = calloc(1, sizeof(*l));

    if (l == NULL ||
        (l->buckets = calloc(BUCKETS, sizeof(*l->buckets))) == NULL ||
        RAND_bytes(l->key, sizeof(l->key)) != 1) {
        if (l != NULL)
            free(l->buckets);
        free(l);
        return NULL;
    }
    l->max_slots = max_visitors ? max_visitors : 1;
    l->ctx = ctx;
    l->wait_ms = wait_ms;
    l->hold_ms = hold_ms;
    l->answer = answer;
    l->answer_data = data;
    return l;
}

void web_live_learn(web_live_t *l, const char *anon, const char *customer)
{
    struct slot *s;
    size_t b;

    if (l == NULL || anon == NULL || customer == NULL || strlen(anon) >= 72 ||
        strlen(customer) >= 40)
        return;
    b = bucket(l, anon);
    if ((s = find(l, anon, b)) != NULL) {
        age_unlink(l, s);
    } else {
        if (l->nslots >= l->max_slots)
            forget_oldest(l);
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return;
        snprintf(s->anon, sizeof(s->anon), "%s", anon);
        s->chain = l->buckets[b];
        l->buckets[b] = s;
        l->nslots++;
    }
    snprintf(s->customer, sizeof(s->customer), "%s", customer);
    age_append(l, s);
}

static const char *customer_of(const web_live_t *l, const char *anon)
{
    const struct slot *s = find(l, anon, bucket(l, anon));

    return s != NULL ? s->customer : NULL;
}

const char *web_live_customer(const web_live_t *l, const char *anon)
{
    return customer_of(l, anon);
}

static void unlink_waiter(struct waiter *w)
{
    w->l->nwaiters--;
    if (w->prev)
        w->prev->next = w->next;
    else
        w->l->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

static void unlink_held(struct held *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        h->l->held = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->l->nheld--;
}

/* Answers a poll with messages (an array, taken) and forgets it. */
static void reply(struct waiter *w, json_t *messages)
{
    og_timer_stop(w->timer);
    unlink_waiter(w);
    w->l->answer(w->l->answer_data, w->req,
                 json_pack("{so}", "messages", messages));
    free(w);
}

static void poll_expired(og_timer_t *t, void *data)
{
    (void)t;
    reply(data, json_array());
}

void web_live_poll(web_live_t *l, og_http_req_t *req, const char *anon)
{
    const char *c = customer_of(l, anon);
    struct waiter *w;
    struct held *h, *next;
    json_t *now;

    if (c == NULL) { /* not seen yet: nothing can be for it */
        l->answer(l->answer_data, req,
                  json_pack("{s[]sb}", "messages", "known", 0));
        return;
    }
    /* held messages first: the answer is at once */
    now = json_array();
    for (h = l->held; h != NULL; h = next) {
        next = h->next;
        if (strcmp(h->customer, c) != 0)
            continue;
        json_array_append(now, h->msg);
        og_timer_stop(h->timer);
        unlink_held(h);
        og_delivery_complete(h->d, OG_OK, NULL);
        json_decref(h->msg);
        free(h);
    }
    if (json_array_size(now) > 0) {
        l->answer(l->answer_data, req, json_pack("{so}", "messages", now));
        return;
    }
    json_decref(now);
    w = l->nwaiters < MAX_WAITERS ? calloc(1, sizeof(*w)) : NULL;
    if (w == NULL) { /* bounded: a poll more is answered empty at once */
        l->answer(l->answer_data, req, json_pack("{s[]}", "messages"));
        return;
    }
    w->l = l;
    w->req = req;
    snprintf(w->customer, sizeof(w->customer), "%s", c);
    w->timer = og_timer_start(l->ctx, l->wait_ms, 0, poll_expired, w);
    w->next = l->waiters;
    if (l->waiters)
        l->waiters->prev = w;
    l->waiters = w;
    l->nwaiters++;
}

static void hold_expired(og_timer_t *t, void *data)
{
    struct held *h = data;

    (void)t;
    og_timer_stop(h->timer);
    unlink_held(h);
    og_delivery_complete(h->d, OG_ERR_RETRY,
                         "no browser of the customer is connected");
    json_decref(h->msg);
    free(h);
}

/* What the browser gets of a message event. */
static json_t *message_of(const og_event_t *ev)
{
    const char *text = NULL, *conv = NULL;
    size_t tl = 0, cl = 0;
    json_t *m =
        json_pack("{ssss}", "id", og_event_id(ev), "type", og_event_type(ev));

    if (og_event_get_str(ev, "props.text", &text, &tl) == OG_OK)
        json_object_set_new(m, "text", json_stringn(text, tl));
    if (og_event_get_str(ev, "conversation", &conv, &cl) == OG_OK)
        json_object_set_new(m, "conversation", json_stringn(conv, cl));
    return m;
}

og_err_t web_live_send(web_live_t *l, const og_event_t *ev, og_delivery_t *d)
{
    const char *cust = NULL;
    size_t cl = 0;
    struct waiter *w, *next;
    struct held *h;
    json_t *msg;
    int sent = 0;

    if (og_event_get_str(ev, "customer", &cust, &cl) != OG_OK || cl == 0 ||
        cl >= 40)
        return OG_ERR_REJECTED; /* a live message needs its customer */
    msg = message_of(ev);
    for (w = l->waiters; w != NULL; w = next) {
        next = w->next;
        if (strlen(w->customer) == cl && memcmp(w->customer, cust, cl) == 0) {
            json_t *a = json_array();

            json_array_append(a, msg);
            reply(w, a); /* every tab of the visitor */
            sent = 1;
        }
    }
    if (sent) {
        json_decref(msg);
        return OG_OK;
    }
    if (l->nheld >= 10000) {
        json_decref(msg);
        og_delivery_retry_after(d, l->hold_ms);
        return OG_ERR_RETRY;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        json_decref(msg);
        return OG_ERR_RETRY;
    }
    h->l = l;
    h->d = d;
    h->msg = msg;
    memcpy(h->customer, cust, cl);
    h->customer[cl] = '\0';
    h->timer = og_timer_start(l->ctx, l->hold_ms, 0, hold_expired, h);
    h->next = l->held;
    if (l->held)
        l->held->prev = h;
    l->held = h;
    l->nheld++;
    return OG_PENDING;
}

void web_live_stop(web_live_t *l)
{
    /* Unanswered polls are answered 503 by the host when the instance
     * stops; held messages go back to the outbox. */
    while (l->waiters != NULL) {
        struct waiter *w = l->waiters;

        og_timer_stop(w->timer);
        unlink_waiter(w);
        free(w);
    }
    while (l->held != NULL) {
        struct held *h = l->held;

        og_timer_stop(h->timer);
        unlink_held(h);
        og_delivery_complete(h->d, OG_ERR_RETRY, "channel stopping");
        json_decref(h->msg);
        free(h);
    }
}

void web_live_destroy(web_live_t *l)
{
    if (l == NULL)
        return;
    web_live_stop(l);
    while (l->oldest != NULL)
        forget_oldest(l);
    free(l->buckets);
    free(l);
}
