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
 * from the events the browser sent (og_emit_batch_async's callback names
 * the customer each event was resolved to). The map is a bounded cache;
 * a visitor it forgot is known again at its next event (the snippet sends
 * a page view on every page).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

#define SLOTS 65536 /* visitors remembered */

struct slot {
    char anon[72];
    char customer[40];
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
    struct slot *slots;
    struct waiter *waiters;
    struct held *held;
    size_t nheld;
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

web_live_t *web_live_create(og_plugin_ctx_t *ctx, uint64_t wait_ms,
                            uint64_t hold_ms, web_live_answer_fn answer,
                            void *data)
{
    web_live_t *l = calloc(1, sizeof(*l));

    if (l == NULL || (l->slots = calloc(SLOTS, sizeof(*l->slots))) == NULL) {
        free(l);
        return NULL;
    }
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

    if (l == NULL || anon == NULL || customer == NULL || strlen(anon) >= 72)
        return;
    s = &l->slots[hash(anon) % SLOTS];
    snprintf(s->anon, sizeof(s->anon), "%s", anon);
    snprintf(s->customer, sizeof(s->customer), "%s", customer);
}

static const char *customer_of(const web_live_t *l, const char *anon)
{
    const struct slot *s = &l->slots[hash(anon) % SLOTS];

    return strcmp(s->anon, anon) == 0 ? s->customer : NULL;
}

static void unlink_waiter(struct waiter *w)
{
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
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
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
    free(l->slots);
    free(l);
}
