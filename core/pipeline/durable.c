/*
 * durable.c: group commit, the outbox in memory and in the store, retries
 * and dead letters. See durable.h for the flow and docs/durability.md for
 * the guarantees.
 *
 * One round at a time runs on a libuv worker thread and is the only user
 * of the store while it runs; everything else here is loop-thread state.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/backoff.h"
#include "pipeline/answers.h"
#include "pipeline/durable.h"
#include "base/json.h"
#include "domain/journeys.h"
#include "base/log.h"
#include "base/util.h"

#define PACE_MS 250          /* between rounds while the store fails */
#define PRUNE_EVERY_MS 60000 /* deduplication records past the window */
#define PRUNE_BATCH 10000
#define MAX_DEAD_LISTED 1000
#define FIRE_LIMIT 2048 /* journey steps per round */

/* A delivery held in memory: its event, outbox row and attempts so far. */
struct qitem {
    og_event_t *ev;
    int64_t row;
    uint32_t attempts;
    uint32_t consent_gen; /* d->consent_gen when it entered memory */
};

struct chan {
    char *name;
    struct qitem *ring; /* the channel's queue in memory */
    size_t alloc, head, len;
    size_t cap;         /* queue_max */
    size_t reserved;    /* held rows of batches not committed yet */
    size_t unheld_open; /* rows of the open batch left in the store */
    int spilled;        /* the store may hold rows to claim now */
    int claiming;       /* a claim is in the running round */
    uint64_t due_at;    /* earliest known retry time, 0: none */
    og__backoff_t backoff;
    char region[3]; /* phone_region of the channel as a source */
    uint64_t waiting, dead, retries, dead_new;
    uint64_t suppressed; /* messages consent kept from this channel */
    struct chan *next;
};

/* One submitted event. */
struct sub {
    og_event_t *ev;
    og__committed_cb cb;
    void *data;
    size_t t0, nt;  /* its targets in the batch's arrays */
    unsigned group; /* of og__durable_submit_group(), 0: none */
    char region[3]; /* the source's phone_region */
};

struct batch {
    struct sub *subs;
    size_t n, alloc;
    struct chan **tch; /* per target */
    unsigned char *held;
    size_t nt, talloc;
};

/* A finished attempt waiting for its commit. */
struct done {
    og__store_done_t d;
    struct chan *ch;
};

struct claim {
    struct chan *ch;
    char *name;
    size_t limit;
    struct qitem *got;
    size_t ngot;
    uint64_t next_due;
    og__store_done_t *bad;     /* rows whose stored event is unreadable, or
                            * whose message consent forbids */
    unsigned char *suppressed; /* per bad row: 1 when by consent */
    size_t nbad;
    const struct round *r;
    og_err_t rc;
};

struct op {
    og__admin_op_t op;
    char *channel; /* or the customer id */
    int64_t row;
    og__idkey_t key; /* OG__CUSTOMER_GET by key */
    int has_key;
    char **erased; /* OG__CUSTOMER_ERASE: the customer ids erased */
    og__admin_cb cb;
    void *data;
    og_err_t rc;
    og__sbuf_t out;
    uint64_t count;
    struct op *next;
};

/* An event made during a round (customer.merged, stock.out, a journey's
 * step), with its targets. */
struct made {
    uint8_t *body;
    size_t len;
    char id[72];
    const char **targets; /* names owned by the round's router */
    size_t ntargets;
    og_event_t *ev;   /* restored from body, or NULL */
    og__jmatch_t *jm; /* what it does to journey runs */
    size_t njm;
};

/* A line for the log, written on the loop thread after the round (the
 * worker thread does not log: log hooks are not thread-safe). */
struct note {
    og_log_level_t level;
    char *scope, *text;
};

/* The [customers] and [consent] settings, as of a configuration: a round
 * holds a reference, so a reload never changes them under it. */
struct rules {
    unsigned refs; /* loop thread only */
    og__trait_rules_t traits;
    og__consent_rules_t consent;
    og__stock_rules_t stock;
    char **names, **bypass;  /* owned; traits.names, consent.bypass */
    og__trait_rule_t *per;   /* owned; traits.rules */
    og__stock_chan_t *chans; /* owned; stock.chans */
    char ***locs;            /* owned; per channel its locations */
};

static struct rules *rules_create(const og__conf_t *conf)
{
    struct rules *r = og__xcalloc(1, sizeof(*r));
    size_t i, n = 0;

    r->refs = 1;
    r->names = og__xcalloc(conf->ntraits + 1, sizeof(char *));
    r->per = og__xcalloc(conf->ntraits + 1, sizeof(*r->per));
    for (i = 0; i < conf->ntraits; i++) {
        r->names[i] = og__xstrdup(conf->trait_names[i]);
        r->per[i] = conf->trait_rules[i];
    }
    r->traits.dflt = conf->trait_default;
    r->traits.names = (const char *const *)r->names;
    r->traits.rules = r->per;
    r->traits.n = conf->ntraits;
    while (conf->transactional_bypass && conf->transactional_bypass[n])
        n++;
    r->bypass = og__xcalloc(n + 1, sizeof(char *));
    for (i = 0; i < n; i++)
        r->bypass[i] = og__xstrdup(conf->transactional_bypass[i]);
    r->consent.marketing_default = conf->marketing_default;
    r->consent.bypass = (const char *const *)r->bypass;
    r->consent.nbypass = n;
    /* the channels taking part in shared stock, enabled or not: a
     * storefront being restarted still has availability */
    r->chans = og__xcalloc(conf->nchannels + 1, sizeof(*r->chans));
    r->locs = og__xcalloc(conf->nchannels + 1, sizeof(*r->locs));
    for (i = 0; i < conf->nchannels; i++) {
        const og__chconf_t *ch = &conf->channels[i];
        og__stock_chan_t *c = &r->chans[r->stock.n];
        size_t k, nl = 0;

        if (ch->stock == NULL)
            continue;
        while (ch->stock[nl] != NULL)
            nl++;
        r->locs[r->stock.n] = og__xcalloc(nl + 2, sizeof(char *));
        r->locs[r->stock.n][0] = og__xstrdup(ch->name);
        for (k = 0; k < nl; k++)
            r->locs[r->stock.n][k + 1] = og__xstrdup(ch->stock[k]);
        c->channel = r->locs[r->stock.n][0];
        c->locations = (const char *const *)(r->locs[r->stock.n] + 1);
        c->buffer = ch->safety_buffer;
        c->first = strcmp(ch->stock[0], "*") != 0 ? c->locations[0] : NULL;
        r->stock.n++;
    }
    r->stock.chans = r->chans;
    return r;
}

static void rules_unref(struct rules *r)
{
    if (r == NULL || --r->refs > 0)
        return;
    og__strv_free(r->names);
    og__strv_free(r->bypass);
    free(r->per);
    for (size_t i = 0; i < r->stock.n; i++)
        og__strv_free(r->locs[i]);
    free(r->locs);
    free(r->chans);
    free(r);
}

struct round {
    uv_work_t work;
    og__durable_t *d;
    struct batch b;
    og__store_item_t *items;
    int64_t *rows;
    const char **names; /* per target: its channel's name */
    char **vendor;
    struct done *done;
    size_t ndone;
    og__store_done_t *sdone;
    og__person_t **persons; /* per item, NULL when not customer-scoped */
    unsigned char *denied;  /* per target: consent forbids the message */
    struct rules *rules;    /* a reference while the round runs */
    og__router_t *router;   /* a reference while the round runs */
    struct made *made;      /* events the store made (customer.merged) */
    size_t nmade;
    struct note *notes; /* to log after the round */
    size_t nnotes;
    struct claim *claims;
    size_t nclaims;
    struct op *ops;
    int prune;
    uint64_t pruned;
    og__journeys_t *journeys; /* a reference while the round runs */
    og__jmatch_t **jm;        /* per item: what it does to journey runs */
    int fire;                 /* fire the due journey steps */
    size_t fired;
    uint64_t jnow;  /* the journeys' clock */
    uint64_t jnext; /* the earliest step still waiting, 0: none */
    og_err_t fire_rc;
    uint64_t now;
    og_err_t rc;
    char err[256];
};

struct og__durable_s {
    uv_loop_t *loop;
    og__store_t *store;
    og__find_inst_fn find;
    void *find_data;
    struct chan *chans;
    struct batch open;
    size_t batch_max;
    uint64_t max_backlog;
    uint64_t window_ms;
    struct done *done; /* finished attempts for the next round */
    size_t ndone, done_alloc;
    struct op *ops, **ops_tail;
    struct round *running;
    uv_timer_t retry_timer; /* the earliest due_at */
    uv_timer_t pace_timer;  /* after a failed round; also prunes */
    uv_idle_t idle;         /* dispatch and rounds after callbacks */
    uv_check_t check;       /* a round after this loop turn's input */
    uv_prepare_t prepare;   /* ... or before the loop blocks for input */
    int pacing;
    int prune_due;
    uint64_t next_prune;
    int closing;
    void (*closed_cb)(void *data);
    void *closed_data;
    int handles; /* open handles while closing */
    og__router_t *router;
    unsigned groups;      /* the last group id given */
    uint32_t consent_gen; /* bumped by each round that changed a consent */
    struct rules *rules;  /* [customers], [consent] */
    int regions;          /* some channel has a phone_region */
    og__journeys_t *journeys;
    uv_timer_t journey_timer; /* the earliest due step */
    int fire_due;             /* steps may be due: fire in the next round */
    int64_t clock_offset_ms;  /* the journeys' clock minus the real one */
    og__durable_stats_t st;
};

static void maybe_round(og__durable_t *d);
static void retry_fired(uv_timer_t *h);

/* The journeys' clock: the real one, moved by og__durable_clock(). */
static uint64_t journey_now(const og__durable_t *d)
{
    int64_t t = (int64_t)og__now_ms() + d->clock_offset_ms;

    return t > 0 ? (uint64_t)t : 0;
}
static void finish_close(og__durable_t *d);
static void recount(og__durable_t *d);
static void push_done(og__durable_t *d, struct chan *c, int64_t row,
                      og__outcome_t outcome, uint64_t next_ms,
                      const char *error);

/* ---- channels ---------------------------------------------------------- */

static struct chan *chan_get(og__durable_t *d, const char *name)
{
    struct chan *c;

    for (c = d->chans; c != NULL; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    /* Queue bound and retry schedule come from the channel's configuration
     * (og__durable_configure()); a channel known only from the store has
     * no instance, so it is never delivered to or claimed for. */
    c = og__xcalloc(1, sizeof(*c));
    c->name = og__xstrdup(name);
    c->next = d->chans;
    d->chans = c;
    return c;
}

static void q_push(struct chan *c, og_event_t *ev, int64_t row,
                   uint32_t attempts, uint32_t gen)
{
    struct qitem *it;

    if (c->len == c->alloc) {
        size_t n = c->alloc ? c->alloc * 2 : 16, i;
        struct qitem *ring = og__xcalloc(n, sizeof(*ring));

        for (i = 0; i < c->len; i++)
            ring[i] = c->ring[(c->head + i) % c->alloc];
        free(c->ring);
        c->ring = ring;
        c->alloc = n;
        c->head = 0;
    }
    it = &c->ring[(c->head + c->len) % c->alloc];
    it->ev = og__event_ref(ev);
    it->row = row;
    it->attempts = attempts;
    it->consent_gen = gen;
    c->len++;
}

static struct qitem q_pop(struct chan *c)
{
    struct qitem it = c->ring[c->head];

    c->head = (c->head + 1) % c->alloc;
    c->len--;
    return it;
}

/* Room in the channel's queue for rows claimed from the store. */
static size_t chan_room(const struct chan *c)
{
    size_t used = c->len + c->reserved;

    return used < c->cap ? c->cap - used : 0;
}

static int chan_wants_claim(og__durable_t *d, struct chan *c)
{
    return c->spilled && !c->claiming && chan_room(c) > 0 &&
           chan_room(c) >= (c->cap + 1) / 2 &&
           d->find(d->find_data, c->name) != NULL;
}

static void arm_retry_timer(og__durable_t *d)
{
    struct chan *c;
    uint64_t min = 0, now = og__now_ms();

    if (d->closing)
        return;
    for (c = d->chans; c != NULL; c = c->next)
        if (c->due_at != 0 && (min == 0 || c->due_at < min))
            min = c->due_at;
    if (min == 0)
        uv_timer_stop(&d->retry_timer);
    else
        uv_timer_start(&d->retry_timer, retry_fired, min > now ? min - now : 0,
                       0);
}

static void retry_fired(uv_timer_t *h)
{
    og__durable_t *d = h->data;
    uint64_t now = og__now_ms();
    struct chan *c;

    for (c = d->chans; c != NULL; c = c->next) {
        if (c->due_at != 0 && c->due_at <= now) {
            c->due_at = 0;
            c->spilled = 1;
        }
    }
    arm_retry_timer(d);
    maybe_round(d);
}

/* ---- dispatch ---------------------------------------------------------- */

static void dispatch(og__durable_t *d)
{
    struct chan *c;

    for (c = d->chans; c != NULL; c = c->next) {
        og_plugin_ctx_t *inst;

        if (c->len == 0)
            continue;
        inst = d->find(d->find_data, c->name);
        while (c->len > 0 && inst != NULL && og__instance_can_take(inst)) {
            struct qitem it = q_pop(c);

            /* A message whose consent was checked before a consent
             * changed goes back to the store: its next claim checks
             * again, so consent holds at send time. */
            if (it.ev->purpose && it.consent_gen != d->consent_gen) {
                push_done(d, c, it.row, OG__OUTCOME_RELEASE, og__now_ms(),
                          NULL);
                og__event_unref(it.ev);
                continue;
            }
            og__instance_deliver(inst, it.ev, it.row, it.attempts);
            og__event_unref(it.ev);
        }
    }
}

static void on_idle(uv_idle_t *h)
{
    og__durable_t *d = h->data;

    uv_idle_stop(h);
    dispatch(d);
    maybe_round(d);
}

static void on_check(uv_check_t *h)
{
    uv_check_stop(h);
    maybe_round(h->data);
}

static void on_prepare(uv_prepare_t *h)
{
    uv_prepare_stop(h);
    maybe_round(h->data);
}

static void soon(og__durable_t *d)
{
    if (!uv_is_closing((uv_handle_t *)&d->idle))
        uv_idle_start(&d->idle, on_idle);
}

void og__durable_kick(og__durable_t *d)
{
    soon(d);
}

/* ---- submit and results ------------------------------------------------ */

/* Whether n more events with ntargets deliveries in all fit the open
 * batch now: OG_OK or the answer for all of them. */
static og_err_t room_for(og__durable_t *d, size_t n, size_t ntargets)
{
    struct batch *b = &d->open;

    if (d->closing)
        return OG_ERR_STOPPING;
    if (d->pacing) { /* the last commit failed: answer at once */
        d->st.busy += n;
        return OG_ERR_IO;
    }
    if (b->n + n > d->batch_max ||
        d->st.backlog + b->nt + ntargets > d->max_backlog) {
        d->st.busy += n;
        return OG_ERR_BUSY;
    }
    return OG_OK;
}

static void add_sub(og__durable_t *d, og_event_t *ev,
                    const char *const *targets, size_t ntargets,
                    og__committed_cb cb, void *data, unsigned group);

og_err_t og__durable_submit(og__durable_t *d, og_event_t *ev,
                            const char *const *targets, size_t ntargets,
                            og__committed_cb cb, void *data)
{
    og_err_t rc = room_for(d, 1, ntargets);

    if (rc == OG_OK)
        add_sub(d, ev, targets, ntargets, cb, data, 0);
    return rc;
}

og_err_t og__durable_submit_group(og__durable_t *d, og_event_t *const *evs,
                                  size_t n, const char *const *const *targets,
                                  const size_t *ntargets, og__committed_cb cb,
                                  void *const *data)
{
    size_t i, nt = 0;
    og_err_t rc;

    for (i = 0; i < n; i++)
        nt += ntargets[i];
    if ((rc = room_for(d, n, nt)) != OG_OK)
        return rc;
    /* Consecutive in the open batch, so in one commit, marked as one
     * group: the store stores all of them or none. */
    if (++d->groups == 0)
        d->groups = 1;
    for (i = 0; i < n; i++)
        add_sub(d, evs[i], targets[i], ntargets[i], cb, data[i], d->groups);
    return OG_OK;
}

static void add_sub(og__durable_t *d, og_event_t *ev,
                    const char *const *targets, size_t ntargets,
                    og__committed_cb cb, void *data, unsigned group)
{
    struct batch *b = &d->open;
    struct sub *s;
    size_t i;

    if (b->n == b->alloc) {
        b->alloc = b->alloc ? b->alloc * 2 : 64;
        b->subs = og__xrealloc(b->subs, b->alloc * sizeof(*b->subs));
    }
    if (b->nt + ntargets > b->talloc) {
        while (b->nt + ntargets > b->talloc)
            b->talloc = b->talloc ? b->talloc * 2 : 64;
        b->tch = og__xrealloc(b->tch, b->talloc * sizeof(*b->tch));
        b->held = og__xrealloc(b->held, b->talloc);
    }
    s = &b->subs[b->n++];
    s->ev = og__event_ref(ev);
    s->cb = cb;
    s->data = data;
    s->t0 = b->nt;
    s->nt = ntargets;
    s->group = group;
    s->region[0] = '\0';
    if (d->regions) /* a lookup per event only where it may matter */
        memcpy(s->region, chan_get(d, ev->instance)->region, sizeof(s->region));
    for (i = 0; i < ntargets; i++) {
        struct chan *c = chan_get(d, targets[i]);

        b->tch[b->nt] = c;
        /* Held in memory when the queue has room and nothing of this
         * channel waits in the store (keeps the order roughly FIFO). */
        if (!c->spilled && c->len + c->reserved < c->cap) {
            b->held[b->nt] = 1;
            c->reserved++;
        } else {
            b->held[b->nt] = 0;
            c->unheld_open++;
            c->spilled = 1;
        }
        b->nt++;
    }
    /* Not at once: the round starts after this loop turn has read every
     * request that is ready, so they share one commit instead of the
     * first going alone and the others waiting for it. */
    if (d->running == NULL && !uv_is_closing((uv_handle_t *)&d->check)) {
        uv_check_start(&d->check, on_check);
        /* A submit from a timer callback (a quiet plugin's og_emit())
         * would otherwise wait in the poll phase for whatever wakes the
         * loop next (seen: 497 ms): the prepare phase, just before poll,
         * starts the round then. A submit from the poll phase (HTTP) is
         * handled by the check above; the prepare finds the round running
         * and costs nothing (issue 18). */
        if (!uv_is_closing((uv_handle_t *)&d->prepare))
            uv_prepare_start(&d->prepare, on_prepare);
    }
}

static void push_done(og__durable_t *d, struct chan *c, int64_t row,
                      og__outcome_t outcome, uint64_t next_ms,
                      const char *error)
{
    struct done *x;

    if (d->ndone == d->done_alloc) {
        d->done_alloc = d->done_alloc ? d->done_alloc * 2 : 64;
        d->done = og__xrealloc(d->done, d->done_alloc * sizeof(*d->done));
    }
    x = &d->done[d->ndone++];
    x->ch = c;
    x->d.row = row;
    x->d.outcome = outcome;
    x->d.next_ms = next_ms;
    x->d.error = error ? og__xstrdup(error) : NULL;
}

static void pk_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Copies the string field path of ev as key into pk; 1 when it did. */
static int pk_copy(msgpack_packer *pk, og_event_t *ev, const char *path,
                   const char *key)
{
    const char *v;
    size_t n;

    if (og__event_get_str(ev, path, &v, &n) != OG_OK)
        return 0;
    if (pk != NULL) {
        og__pack_cstr(pk, key);
        pk_str(pk, v, n);
    }
    return 1;
}

/*
 * A message.send that a channel took (message.sent) or that failed for
 * good (message.failed, with the reason): an event from the instance
 * "core" with the message's customer, conversation and correlation, its
 * journey, run and step, and the channels tried so far, so that the
 * journey falls back to the next one (docs/journeys.md).
 */
static void message_result(og__durable_t *d, const char *channel,
                           og_event_t *ev, int sent, const char *why)
{
    static const char *const top[] = {"customer", "conversation",
                                      "correlation"};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    og_event_t *e;
    char id[72], whye[128], tried[256];
    const char *targets[64], *t = NULL;
    size_t n, i, tn = 0, ntop = 0, nprops = 2;
    int64_t run, step;
    int journey = og__event_get_int(ev, "props.run", &run) == OG_OK &&
                  og__event_get_int(ev, "props.step", &step) == OG_OK;
    uint64_t now = og__now_ms();

    if (strlen(ev->id) + 2 <= 64)
        snprintf(id, sizeof(id), "%s.%c", ev->id, sent ? 's' : 'f');
    else
        og__uuid7_at(id, now);
    tried[0] = '\0';
    if (!sent) {
        if (og__event_get_str(ev, "props.tried", &t, &tn) == OG_OK &&
            tn + strlen(channel) + 2 < sizeof(tried))
            snprintf(tried, sizeof(tried), "%.*s,%s", (int)tn, t, channel);
        else
            snprintf(tried, sizeof(tried), "%s", channel);
    }
    for (i = 0; i < OG__ARRAY_SIZE(top); i++)
        ntop += pk_copy(NULL, ev, top[i], top[i]);
    nprops += journey ? 3 : 0;
    nprops += !sent ? 2 : 0;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    og__pack_core_head(&pk, 2 + ntop, sent ? "message.sent" : "message.failed",
                       id, now);
    for (i = 0; i < OG__ARRAY_SIZE(top); i++)
        pk_copy(&pk, ev, top[i], top[i]);
    og__pack_cstr(&pk, "causation");
    og__pack_cstr(&pk, ev->id);
    og__pack_cstr(&pk, "props");
    msgpack_pack_map(&pk, nprops);
    og__pack_cstr(&pk, "message");
    og__pack_cstr(&pk, ev->id);
    og__pack_cstr(&pk, "channel");
    og__pack_cstr(&pk, channel);
    if (journey) {
        pk_copy(&pk, ev, "props.journey", "journey");
        if (og__event_get_str(ev, "props.journey", &t, &tn) != OG_OK) {
            og__pack_cstr(&pk, "journey");
            og__pack_cstr(&pk, "");
        }
        og__pack_cstr(&pk, "run");
        msgpack_pack_int64(&pk, run);
        og__pack_cstr(&pk, "step");
        msgpack_pack_int64(&pk, step);
    }
    if (!sent) {
        og__pack_cstr(&pk, "reason");
        og__pack_cstr(&pk, why ? why : "failed");
        og__pack_cstr(&pk, "tried");
        og__pack_cstr(&pk, tried);
    }
    e = og__event_restore((const uint8_t *)sb.data, sb.size, whye,
                          sizeof(whye));
    msgpack_sbuffer_destroy(&sb);
    if (e == NULL)
        return;
    n = d->router != NULL ? og__router_targets(d->router, e, targets, 64) : 0;
    /* Not bounded like ingress: a result follows a delivery, and
     * deliveries are bounded by the channels' queues; dropping it would
     * lose the fallback of a failed journey message. */
    if (!d->closing)
        add_sub(d, e, targets, n < 64 ? n : 64, NULL, NULL, 0);
    else
        og__log(OG_LOG_WARNING, "core",
                "%s of message %s not recorded: the daemon is stopping",
                sent ? "message.sent" : "message.failed", ev->id);
    og__event_unref(e);
}

static int is_message_send(const og_event_t *ev)
{
    return strcmp(ev->type, "message.send") == 0;
}

void og__durable_result(og__durable_t *d, og_plugin_ctx_t *inst, og_event_t *ev,
                        int64_t row, uint32_t attempts, og_err_t rc,
                        const char *reason, uint64_t retry_after_ms)
{
    struct chan *c = chan_get(d, og__instance_name(inst));
    uint64_t now = og__now_ms(), next;
    uint32_t rnd = 0;
    char why[512];

    switch ((int)rc) {
    case OG_OK:
        push_done(d, c, row, OG__OUTCOME_DELIVERED, now, NULL);
        if (is_message_send(ev))
            message_result(d, c->name, ev, 1, NULL);
        break;
    case OG_ERR_CANCELLED:
        push_done(d, c, row, OG__OUTCOME_RELEASE, now, NULL);
        break;
    case OG_ERR_RETRY:
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
            rnd = (uint32_t)now * 2654435761u;
        next = og__backoff_next(&c->backoff, attempts + 1, now, ev->received_ms,
                                retry_after_ms, rnd);
        if (next != 0) {
            push_done(d, c, row, OG__OUTCOME_RETRY, next,
                      reason ? reason : "transient failure");
            c->retries++;
            if (c->due_at == 0 || next < c->due_at) {
                c->due_at = next;
                arm_retry_timer(d);
            }
            break;
        }
        snprintf(why, sizeof(why),
                 "retry lifetime over after %u attempts; last: %s",
                 attempts + 1, reason ? reason : "transient failure");
        og__log(OG_LOG_WARNING, c->name,
                "delivery of %s (%s) is a dead letter: %s", ev->id, ev->type,
                why);
        goto dead;
    default:
        /* the instance logged the rejection (delivery_result()) */
        snprintf(why, sizeof(why), "rejected%s%s", reason ? ": " : "",
                 reason ? reason : "");
    dead:
        push_done(d, c, row, OG__OUTCOME_DEAD, now, why);
        c->dead_new++;
        if (is_message_send(ev))
            message_result(d, c->name, ev, 0, why);
        break;
    }
    soon(d);
}

/* ---- rounds ------------------------------------------------------------ */

/* A claimed row that is not delivered: a dead letter with the reason. */
static void claim_bad(struct claim *cl, int64_t row, const char *why,
                      int suppressed)
{
    cl->bad = og__xrealloc(cl->bad, (cl->nbad + 1) * sizeof(*cl->bad));
    cl->suppressed = og__xrealloc(cl->suppressed, cl->nbad + 1);
    cl->bad[cl->nbad].row = row;
    cl->bad[cl->nbad].outcome = OG__OUTCOME_DEAD;
    cl->bad[cl->nbad].next_ms = 0;
    cl->bad[cl->nbad].error = og__xstrdup(why);
    cl->suppressed[cl->nbad] = (unsigned char)suppressed;
    cl->nbad++;
}

/* A message checks consent again before each attempt (its customer may
 * have opted out since it was accepted). 1: it may go. */
static int consent_ok(struct claim *cl, const og__outbox_row_t *r,
                      og_event_t *ev)
{
    og__event_facts_t f;
    og__store_t *s = cl->r->d->store;
    char purpose[32], cust[72], why[256];
    int allowed = 1;

    if (og__event_facts(r->body, r->len, &f) != 0 || f.purpose == NULL ||
        f.purpose_len >= sizeof(purpose))
        return 1;
    ev->purpose = 1;
    snprintf(purpose, sizeof(purpose), "%.*s", (int)f.purpose_len, f.purpose);
    snprintf(cust, sizeof(cust), "%.*s", f.customer ? (int)f.customer_len : 0,
             f.customer ? f.customer : "");
    if (og__consent_decide(s->ops->consent_repo(s), cust, purpose, r->channel,
                           &cl->r->rules->consent, &allowed, why,
                           sizeof(why)) != OG_OK)
        return 1; /* the commit after the claim reports the store */
    if (!allowed)
        claim_bad(cl, r->id, why, 1);
    return allowed;
}

static void claim_row(void *data, const og__outbox_row_t *r)
{
    struct claim *cl = data;
    char why[128];
    og_event_t *ev = og__event_restore(r->body, r->len, why, sizeof(why));

    if (ev == NULL) {
        claim_bad(cl, r->id, why, 0);
        return;
    }
    if (!consent_ok(cl, r, ev)) {
        og__event_unref(ev);
        return;
    }
    cl->got[cl->ngot].ev = ev;
    cl->got[cl->ngot].row = r->id;
    cl->got[cl->ngot].attempts = r->attempts;
    cl->ngot++;
}

static void dead_row(void *data, const og__outbox_row_t *r)
{
    struct op *op = data;
    char id[160], ch[160], err[1100];

    if (op->count++ >= MAX_DEAD_LISTED)
        return;
    og__json_escape(id, sizeof(id), r->event_id);
    og__json_escape(ch, sizeof(ch), r->channel);
    og__json_escape(err, sizeof(err), r->last_error ? r->last_error : "");
    og__sbuf_printf(&op->out,
                    "%s{\"id\":%lld,\"event_id\":%s,\"channel\":%s,"
                    "\"attempts\":%u,\"failed_at\":%llu,\"error\":%s}",
                    op->count > 1 ? "," : "", (long long)r->id, id, ch,
                    r->attempts, (unsigned long long)r->next_ms, err);
}

/* ---- customers (on the worker thread) --------------------------------- */

/* Copies n bytes as a string at *w (advanced). */
static const char *put_cstr(char **w, const char *s, size_t n)
{
    char *d = *w;

    memcpy(d, s, n);
    d[n] = '\0';
    *w += n + 1;
    return d;
}

static int type_is(const og__event_facts_t *f, const char *t)
{
    return f->type_len == strlen(t) && memcmp(f->type, t, f->type_len) == 0;
}

/* What the store needs to resolve the customer of an event, read from its
 * bytes; NULL when the event names no identity key and no customer. A key
 * that cannot be used (an impossible phone number) is left out and
 * noted, masked, for the log: the event itself is kept. */
static og__person_t *person_of(struct round *r, const struct sub *s)
{
    og__event_facts_t f;
    og__person_t *p;
    og__idkey_t *keys;
    size_t i, n = 0, strs;
    char *w;
    const char **thread;

    if (og__event_facts(s->ev->data, s->ev->len, &f) != 0 ||
        (f.nids == 0 && f.customer == NULL &&
         !(f.conversation != NULL && type_is(&f, "conversation.resolved"))))
        return NULL;
    strs = (f.customer ? f.customer_len + 1 : 0) +
           (f.conversation ? f.conversation_len + 1 : 0) +
           (f.purpose ? f.purpose_len + 1 : 0) +
           (f.message_key ? f.message_key_len + 1 : 0) +
           (f.correlation ? f.correlation_len + 1 : 0);
    for (i = 0; i < f.nthread; i++)
        strs += f.thread_len[i] + 1;
    p = og__xcalloc(1, sizeof(*p) + f.nids * sizeof(og__idkey_t) +
                           f.nthread * sizeof(char *) + strs);
    keys = (og__idkey_t *)(p + 1);
    thread = (const char **)(keys + f.nids);
    w = (char *)(thread + f.nthread);
    for (i = 0; i < f.nids; i++) {
        char why[200];
        og_err_t rc = og__idkey_normalize(&f.ids[i], s->ev->instance, s->region,
                                          &keys[n], why, sizeof(why));

        if (rc == OG_OK) {
            n++;
        } else {
            char raw[260], masked[280];

            snprintf(raw, sizeof(raw), "%.*s", (int)f.ids[i].value_len,
                     f.ids[i].value);
            og__mask(raw, masked, sizeof(masked));
            r->notes =
                og__xrealloc(r->notes, (r->nnotes + 1) * sizeof(*r->notes));
            r->notes[r->nnotes].level =
                rc == OG_ERR_UNSUPPORTED ? OG_LOG_ERROR : OG_LOG_NOTICE;
            r->notes[r->nnotes].scope = og__xstrdup(s->ev->instance);
            r->notes[r->nnotes].text = og__xasprintf(
                "event %s: identity key %zu (%.*s %s) not used: %s", s->ev->id,
                i, (int)f.ids[i].kind_len, f.ids[i].kind, masked, why);
            r->nnotes++;
        }
    }
    p->keys = keys;
    p->nkeys = n;
    if (f.customer != NULL)
        p->customer = put_cstr(&w, f.customer, f.customer_len);
    if (f.conversation != NULL)
        p->conversation = put_cstr(&w, f.conversation, f.conversation_len);
    if (f.purpose != NULL)
        p->purpose = put_cstr(&w, f.purpose, f.purpose_len);
    if (f.message_key != NULL)
        p->message_key = put_cstr(&w, f.message_key, f.message_key_len);
    for (i = 0; i < f.nthread; i++)
        thread[i] = put_cstr(&w, f.thread[i], f.thread_len[i]);
    p->thread = thread;
    p->nthread = f.nthread;
    p->consent = f.consent;
    p->consent_len = f.consent_len;
    p->occurred = f.occurred;
    if (f.correlation != NULL)
        p->correlation = put_cstr(&w, f.correlation, f.correlation_len);
    p->inbound = type_is(&f, "message.received");
    /* The core's message.sent is a delivery result, not a message. */
    p->is_message = (p->inbound || type_is(&f, "message.send") ||
                     type_is(&f, "message.sent")) &&
                    strcmp(s->ev->instance, "core") != 0;
    p->resolves = type_is(&f, "conversation.resolved");
    p->untrusted = s->ev->untrusted;
    p->instance = s->ev->instance;
    p->traits = f.traits;
    p->traits_len = f.traits_len;
    p->is_order = type_is(&f, "order.placed");
    p->has_total = f.has_total;
    p->total_amount = f.total_amount;
    memcpy(p->currency, f.currency, sizeof(p->currency));
    return p;
}

/* og__store_hooks_t.made: an event the store made (body taken over), its
 * targets from the round's routes and, when journeys run, what it does to
 * them (a stock.back resumes the runs waiting for it). The round keeps
 * what it allocates until it ends; the loop counts the deliveries. */
static int made_hook(void *data, uint8_t *body, size_t len,
                     og__store_item_t *ev)
{
    struct round *r = data;
    struct made *x;
    og_event_t *e;
    char why[128];
    const char *targets[64];
    size_t nt, i;

    e = og__event_restore(body, len, why, sizeof(why));
    if (e == NULL) {
        free(body);
        return -1;
    }
    r->made = og__xrealloc(r->made, (r->nmade + 1) * sizeof(*r->made));
    x = &r->made[r->nmade++];
    memset(x, 0, sizeof(*x));
    x->body = body;
    x->len = len;
    snprintf(x->id, sizeof(x->id), "%s", e->id);
    nt = r->router != NULL ? og__router_targets(r->router, e, targets, 64) : 0;
    if (nt > 64)
        nt = 64;
    x->targets = og__xcalloc(nt ? nt : 1, sizeof(*x->targets));
    for (i = 0; i < nt; i++)
        x->targets[i] = targets[i];
    x->ntargets = nt;
    if (r->journeys != NULL)
        x->njm = og__journeys_match(r->journeys, e, r->jnow, &x->jm);
    ev->event_id = x->id;
    ev->content_hash = 0;
    ev->body = x->body;
    ev->len = x->len;
    ev->received_ms = e->received_ms;
    ev->targets = x->targets;
    ev->ntargets = nt;
    ev->type = e->type; /* lives in the round: */
    x->ev = e;          /* released after it */
    ev->source = "core";
    ev->jm = x->jm;
    ev->njm = x->njm;
    return 0;
}

/* customer.merged / customer.split: the survivor as its customer, the
 * key that joined them in ids, both ids in props; routed like any event
 * from the instance "core". */
static int merged_hook(void *data, const og__merge_t *m, og__store_item_t *ev)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char id[40];

    og__uuid7_at(id, m->at_ms);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
#define PSTR(str) og__pack_cstr(&pk, str)
    og__pack_core_head(&pk, 3, m->split ? "customer.split" : "customer.merged",
                       id, m->at_ms);
    PSTR("customer");
    PSTR(m->split ? m->merged : m->survivor);
    PSTR("ids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 3);
    PSTR("kind");
    PSTR(m->reason->kind);
    PSTR("value");
    PSTR(m->reason->value);
    PSTR("verified");
    msgpack_pack_true(&pk);
    PSTR("props");
    msgpack_pack_map(&pk, m->reason->scope[0] ? 5 : 4);
    PSTR("survivor");
    PSTR(m->survivor);
    PSTR("merged");
    PSTR(m->merged);
    PSTR("merge");
    msgpack_pack_int64(&pk, m->id);
    PSTR("reason_kind");
    PSTR(m->reason->kind);
    if (m->reason->scope[0]) {
        PSTR("reason_scope");
        PSTR(m->reason->scope);
    }
#undef PSTR
    if (made_hook(data, (uint8_t *)sb.data, sb.size, ev) != 0)
        return -1;
    ev->received_ms = m->at_ms;
    snprintf(ev->customer, sizeof(ev->customer), "%s",
             m->split ? m->merged : m->survivor);
    return 0;
}

static void add_note(struct round *r, og_log_level_t level, const char *scope,
                     const char *text)
{
    r->notes = og__xrealloc(r->notes, (r->nnotes + 1) * sizeof(*r->notes));
    r->notes[r->nnotes].level = level;
    r->notes[r->nnotes].scope = og__xstrdup(scope);
    r->notes[r->nnotes].text = og__xstrdup(text);
    r->nnotes++;
}

/* og__fire_fn: one journey step (store thread). Its event's targets are
 * the step's own or the routes'; the loop counts them after the round,
 * like the store's other events (struct made). */
static og_err_t fire_step(void *data, const og__fire_env_t *env,
                          const og__run_t *run, og__step_result_t *res,
                          og__store_item_t *ev)
{
    struct round *r = data;
    struct made *x;
    og_err_t rc = og__journeys_fire(r->journeys, env, run, r->jnow, res);
    size_t i, nt;
    const char *targets[64];

    if (rc != OG_OK || res->body == NULL)
        return rc;
    r->made = og__xrealloc(r->made, (r->nmade + 1) * sizeof(*r->made));
    x = &r->made[r->nmade++];
    memset(x, 0, sizeof(*x));
    if (res->ntargets > 0) {
        nt = res->ntargets;
        for (i = 0; i < nt; i++)
            targets[i] = res->targets[i];
    } else {
        char why[128];
        og_event_t *e =
            og__event_restore(res->body, res->len, why, sizeof(why));

        nt = e != NULL && r->router != NULL
                 ? og__router_targets(r->router, e, targets, 64)
                 : 0;
        if (nt > 64)
            nt = 64;
        og__event_unref(e);
    }
    x->targets = og__xcalloc(nt ? nt : 1, sizeof(*x->targets));
    for (i = 0; i < nt; i++)
        x->targets[i] = targets[i];
    x->ntargets = nt;
    ev->targets = x->targets;
    ev->ntargets = nt;
    ev->received_ms = r->now; /* due now by the outbox's (real) clock */
    return OG_OK;
}

static void round_work(uv_work_t *w)
{
    struct round *r = w->data;
    og__store_t *s = r->d->store;
    og__store_hooks_t hooks = {r,
                               og__stamp_hook,
                               merged_hook,
                               &r->rules->consent,
                               &r->rules->stock,
                               made_hook};
    size_t i;

    for (i = 0; i < r->b.n; i++) {
        r->persons[i] = person_of(r, &r->b.subs[i]);
        r->items[i].person = r->persons[i];
    }

    r->rc = OG_OK;
    /* A failed commit skips the claims and operator actions after it:
     * they report an I/O error, and the claims are asked for again. */
    for (struct op *op = r->ops; op != NULL; op = op->next)
        op->rc = OG_ERR_IO;
    if (r->b.n > 0 || r->ndone > 0) {
        r->rc = s->ops->commit(s, r->items, r->b.n, r->sdone, r->ndone, &hooks,
                               r->err, sizeof(r->err));
        if (r->rc != OG_OK)
            return;
        if (r->b.n > 0)
            og__crashpoint("committed");
        if (r->ndone > 0)
            og__crashpoint("marked");
    }
    for (i = 0; i < r->nclaims; i++) {
        struct claim *cl = &r->claims[i];

        cl->got = og__xcalloc(cl->limit, sizeof(*cl->got));
        cl->rc = s->ops->claim(s, cl->name, r->now, cl->limit, claim_row, cl,
                               &cl->next_due);
        if (cl->nbad > 0)
            s->ops->commit(s, NULL, 0, cl->bad, cl->nbad, NULL, r->err,
                           sizeof(r->err));
    }
    for (struct op *op = r->ops; op != NULL; op = op->next) {
        char err[256] = "";

        switch (op->op) {
        case OG__DEAD_LIST:
            og__sbuf_printf(&op->out, "{\"dead_letters\":[");
            op->rc = s->ops->dead_list(s, op->channel, dead_row, op);
            og__sbuf_printf(&op->out, "],\"total\":%llu,\"listed\":%llu}",
                            (unsigned long long)op->count,
                            (unsigned long long)(op->count < MAX_DEAD_LISTED
                                                     ? op->count
                                                     : MAX_DEAD_LISTED));
            break;
        case OG__DEAD_REQUEUE:
            op->rc = s->ops->dead_requeue(s, op->channel, op->row, r->now,
                                          &op->count);
            og__sbuf_printf(&op->out, "{\"requeued\":%llu}",
                            (unsigned long long)op->count);
            break;
        case OG__DEAD_PURGE:
            op->rc = op->row != 0
                         ? OG_ERR_UNSUPPORTED
                         : s->ops->dead_purge(s, op->channel, &op->count);
            og__sbuf_printf(&op->out, "{\"purged\":%llu}",
                            (unsigned long long)op->count);
            break;
        case OG__CUSTOMER_GET:
            op->rc = s->ops->customer_get(s, op->has_key ? NULL : op->channel,
                                          op->has_key ? &op->key : NULL,
                                          &r->rules->traits, &op->out);
            break;
        case OG__CUSTOMER_ERASE:
            op->rc = s->ops->customer_erase(s, op->channel, r->now, &op->out,
                                            &op->erased, err, sizeof(err));
            break;
        case OG__CONVERSATION_GET:
        case OG__CONVERSATION_RESOLVE:
            op->rc = og__answer_conversation(s, op->channel,
                                             op->op == OG__CONVERSATION_RESOLVE,
                                             r->now, &op->out);
            break;
        case OG__CUSTOMER_TIMELINE:
            op->rc = og__answer_timeline(s, op->channel, 1000, &op->out);
            break;
        case OG__STOCK_GET:
            op->rc = og__answer_stock(s->ops->stock_repo(s), op->channel,
                                      &r->rules->stock, &op->out);
            break;
        case OG__CUSTOMER_SPLIT:
            op->rc = s->ops->customer_split(s, op->channel, r->now, &hooks,
                                            &op->out, err, sizeof(err));
            break;
        }
        if (op->rc != OG_OK && err[0] != '\0') { /* the reason is the answer */
            og__sbuf_free(&op->out);
            og__sbuf_printf(&op->out, "%s", err);
        }
    }
    if (r->fire) {
        char err[256];
        size_t before = r->nmade;

        r->fire_rc = s->ops->journeys_fire(
            s, r->jnow, FIRE_LIMIT, fire_step, r, &r->rules->traits,
            &r->rules->consent, &r->fired, &r->jnext, err, sizeof(err));
        if (r->fire_rc != OG_OK) { /* rolled back: its events are not */
            add_note(r, OG_LOG_ERROR, "journeys", err);
            while (r->nmade > before) {
                struct made *x = &r->made[--r->nmade];

                free(x->body);
                free(x->targets);
                free(x->jm);
                og__event_unref(x->ev);
            }
        }
    }
    if (r->prune)
        s->ops->prune(s,
                      r->now > r->d->window_ms ? r->now - r->d->window_ms : 0,
                      PRUNE_BATCH, &r->pruned);
}

static void batch_free(struct batch *b)
{
    free(b->subs);
    free(b->tch);
    free(b->held);
    memset(b, 0, sizeof(*b));
}

static void pace_fired(uv_timer_t *h)
{
    og__durable_t *d = h->data;

    d->pacing = 0;
    if (og__now_ms() >= d->next_prune) {
        d->prune_due = 1;
        d->next_prune = og__now_ms() + PRUNE_EVERY_MS;
    }
    if (!d->closing)
        uv_timer_start(&d->pace_timer, pace_fired, PRUNE_EVERY_MS, 0);
    maybe_round(d);
}

static void round_after(uv_work_t *w, int status);

static int have_work(og__durable_t *d)
{
    struct chan *c;

    if (d->open.n > 0 || d->ndone > 0 || d->ops != NULL ||
        (d->prune_due && !d->closing) ||
        (d->fire_due && !d->closing && d->journeys != NULL))
        return 1;
    if (d->closing)
        return 0;
    for (c = d->chans; c != NULL; c = c->next)
        if (chan_wants_claim(d, c))
            return 1;
    return 0;
}

static void maybe_round(og__durable_t *d)
{
    struct round *r;
    struct chan *c;
    size_t i, t;

    if (d->running != NULL || d->store == NULL || d->pacing || !have_work(d))
        return;
    r = og__xcalloc(1, sizeof(*r));
    r->d = d;
    r->now = og__now_ms();
    r->b = d->open;
    memset(&d->open, 0, sizeof(d->open));
    for (c = d->chans; c != NULL; c = c->next)
        c->unheld_open = 0;
    /* the batch as store items */
    r->items = og__xcalloc(r->b.n ? r->b.n : 1, sizeof(*r->items));
    r->rows = og__xcalloc(r->b.nt ? r->b.nt : 1, sizeof(*r->rows));
    r->vendor = og__xcalloc(r->b.n ? r->b.n : 1, sizeof(*r->vendor));
    r->names = og__xcalloc(r->b.nt ? r->b.nt : 1, sizeof(*r->names));
    r->persons = og__xcalloc(r->b.n ? r->b.n : 1, sizeof(*r->persons));
    r->denied = og__xcalloc(r->b.nt ? r->b.nt : 1, 1);
    r->rules = d->rules;
    r->rules->refs++;
    r->router = d->router != NULL ? og__router_ref(d->router) : NULL;
    r->journeys = d->journeys != NULL ? og__journeys_ref(d->journeys) : NULL;
    r->jnow = journey_now(d);
    r->jm = og__xcalloc(r->b.n ? r->b.n : 1, sizeof(*r->jm));
    for (i = 0; i < r->b.n; i++) {
        struct sub *s = &r->b.subs[i];
        og__store_item_t *it = &r->items[i];
        const char **names = r->names + s->t0;

        if (r->journeys != NULL) {
            it->njm =
                og__journeys_match(r->journeys, s->ev, r->jnow, &r->jm[i]);
            it->jm = r->jm[i];
            for (t = 0; t < it->njm; t++)
                if (it->jm[t].op != OG__JM_CANCEL)
                    d->fire_due = 1; /* in this round's commit, then fired */
        }
        it->type = s->ev->type;
        it->source = s->ev->instance;

        for (t = 0; t < s->nt; t++)
            names[t] = r->b.tch[s->t0 + t]->name;
        it->event_id = s->ev->id;
        if (s->ev->vendor_id != NULL)
            r->vendor[i] =
                og__xasprintf("%s/%.*s", s->ev->instance,
                              (int)s->ev->vendor_len, s->ev->vendor_id);
        it->vendor_key = r->vendor[i];
        it->content_hash = s->ev->content_hash;
        it->body = s->ev->data;
        it->len = s->ev->len;
        it->received_ms = s->ev->received_ms;
        it->targets = names;
        it->ntargets = s->nt;
        it->held = r->b.held + s->t0;
        it->rows = r->rows + s->t0;
        it->denied = r->denied + s->t0;
        it->group = s->group;
    }
    /* finished attempts */
    r->done = d->done;
    r->ndone = d->ndone;
    d->done = NULL;
    d->ndone = d->done_alloc = 0;
    r->sdone = og__xcalloc(r->ndone ? r->ndone : 1, sizeof(*r->sdone));
    for (i = 0; i < r->ndone; i++)
        r->sdone[i] = r->done[i].d;
    /* claims */
    if (!d->closing) {
        for (c = d->chans; c != NULL; c = c->next)
            if (chan_wants_claim(d, c))
                r->nclaims++;
        r->claims =
            og__xcalloc(r->nclaims ? r->nclaims : 1, sizeof(*r->claims));
        i = 0;
        for (c = d->chans; c != NULL; c = c->next) {
            if (!chan_wants_claim(d, c))
                continue;
            r->claims[i].ch = c;
            r->claims[i].name = c->name;
            r->claims[i].limit = chan_room(c);
            r->claims[i].rc = OG_ERR_IO; /* until it ran */
            r->claims[i].r = r;
            c->claiming = 1;
            i++;
        }
    }
    r->ops = d->ops;
    d->ops = NULL;
    d->ops_tail = &d->ops;
    r->prune = d->prune_due && !d->closing;
    d->prune_due = 0;
    r->fire = d->fire_due && !d->closing && r->journeys != NULL;
    d->fire_due = 0;
    d->running = r;
    r->work.data = r;
    uv_queue_work(d->loop, &r->work, round_work, round_after);
}

/* The outcome of a batch that did not commit: its events are refused. */
static void batch_failed(og__durable_t *d, struct round *r)
{
    og_err_t rc = r->rc == OG_ERR_BUSY ? OG_ERR_BUSY : OG_ERR_IO;
    size_t i, t;

    for (i = 0; i < r->b.n; i++) {
        struct sub *s = &r->b.subs[i];

        for (t = 0; t < s->nt; t++) {
            struct chan *c = r->b.tch[s->t0 + t];

            if (r->b.held[s->t0 + t])
                c->reserved--;
        }
        d->st.busy++;
        if (s->cb != NULL)
            s->cb(s->data, rc, NULL, NULL);
    }
    /* Finished attempts go into the next round again; when closing they
     * are dropped: unmarked deliveries happen again after the restart
     * (at-least-once). */
    for (i = 0; i < r->ndone && !d->closing; i++) {
        struct done *x = &r->done[i];

        push_done(d, x->ch, x->d.row, x->d.outcome, x->d.next_ms, x->d.error);
    }
    for (i = 0; i < r->ndone; i++)
        free((char *)r->done[i].d.error);
    r->ndone = 0;
}

static void batch_committed(og__durable_t *d, struct round *r)
{
    size_t i, t;

    /* Messages checked in this round saw its consent changes: a new
     * generation, so that only those queued before are checked again. */
    for (i = 0; i < r->b.n; i++)
        if (r->items[i].result == OG__ACCEPT_NEW && r->persons[i] != NULL &&
            r->persons[i]->consent != NULL) {
            d->consent_gen++;
            break;
        }
    if (r->b.n > 0 || r->ndone > 0)
        d->st.commits++;
    /* Events the store made wait there for their channels' claims. */
    for (i = 0; i < r->nmade; i++) {
        for (t = 0; t < r->made[i].ntargets; t++) {
            struct chan *c = chan_get(d, r->made[i].targets[t]);

            c->spilled = 1;
            c->waiting++;
            d->st.backlog++;
        }
        d->st.events++;
    }
    for (i = 0; i < r->b.n; i++) {
        struct sub *s = &r->b.subs[i];
        og__store_item_t *it = &r->items[i];
        og_err_t rc = OG_OK;
        const char *id = s->ev->id;

        for (t = 0; t < s->nt; t++) {
            struct chan *c = r->b.tch[s->t0 + t];
            int held = r->b.held[s->t0 + t];

            if (held)
                c->reserved--;
            if (it->result != OG__ACCEPT_NEW)
                continue;
            if (it->denied[t]) { /* stored as a dead letter */
                c->dead++;
                c->suppressed++;
                continue;
            }
            c->waiting++;
            d->st.backlog++;
            if (held)
                q_push(c, s->ev, it->rows[t], 0, d->consent_gen);
        }
        if (it->result == OG__ACCEPT_NEW) {
            d->st.events++;
            if (r->persons[i] != NULL)
                s->ev->purpose = r->persons[i]->purpose != NULL;
            /* Delivered as stored: with its customer. */
            if (it->stamped != NULL) {
                og__event_replace_data(s->ev, it->stamped, it->stamped_len);
                it->stamped = NULL;
            }
        } else if (it->result == OG__ACCEPT_DUPLICATE) {
            d->st.duplicates++;
            id = it->first_id;
        } else if (it->result == OG__ACCEPT_ABORTED) {
            rc = OG_ERR_CANCELLED; /* another event of its group conflicted */
        } else {
            d->st.conflicts++;
            rc = OG_ERR_CONFLICT;
            og__log(OG_LOG_WARNING, s->ev->instance,
                    "event %s conflicts with %s accepted before with other "
                    "content (same id or vendor id); not routed",
                    s->ev->id, it->first_id);
        }
        if (s->cb != NULL)
            s->cb(s->data, rc, rc == OG_OK ? id : NULL,
                  rc == OG_OK && it->customer[0] ? it->customer : NULL);
    }
    for (i = 0; i < r->ndone; i++) {
        struct done *x = &r->done[i];

        switch (x->d.outcome) {
        case OG__OUTCOME_DELIVERED:
        case OG__OUTCOME_DEAD:
            if (x->ch->waiting > 0)
                x->ch->waiting--;
            if (d->st.backlog > 0)
                d->st.backlog--;
            if (x->d.outcome == OG__OUTCOME_DEAD)
                x->ch->dead++;
            break;
        case OG__OUTCOME_RELEASE: x->ch->spilled = 1; break;
        case OG__OUTCOME_RETRY: break;
        }
        free((char *)x->d.error);
    }
}

/* 1 when the event names one of the customers in ids. */
static int of_customers(const og_event_t *ev, char *const *ids)
{
    const char *c = NULL;
    size_t i, n = 0;

    if (og__event_get_str(ev, "customer", &c, &n) != OG_OK || c == NULL)
        return 0;
    for (i = 0; ids[i] != NULL; i++)
        if (strlen(ids[i]) == n && memcmp(ids[i], c, n) == 0)
            return 1;
    return 0;
}

/* After an erasure: deliveries of the erased customers' events still held
 * in memory are dropped (their rows are gone from the store); attempts
 * already handed to a plugin cannot be called back. */
static void drop_erased(og__durable_t *d, char *const *ids)
{
    struct chan *c;

    for (c = d->chans; c != NULL; c = c->next) {
        size_t n = c->len, k;

        for (k = 0; k < n; k++) {
            struct qitem it = q_pop(c);

            if (!of_customers(it.ev, ids)) {
                q_push(c, it.ev, it.row, it.attempts, it.consent_gen);
                og__event_unref(it.ev); /* q_push took its own */
                continue;
            }
            og__event_unref(it.ev);
            if (c->waiting > 0)
                c->waiting--;
            if (d->st.backlog > 0)
                d->st.backlog--;
        }
    }
}

static void journey_fired(uv_timer_t *h)
{
    og__durable_t *d = h->data;

    d->fire_due = 1;
    maybe_round(d);
}

/* After a round that fired steps: more now, or a timer for the next. */
static void fired_after(og__durable_t *d, struct round *r)
{
    uint64_t now = journey_now(d);

    if (d->closing)
        return;
    if (r->fire_rc != OG_OK) { /* again in a second */
        uv_timer_start(&d->journey_timer, journey_fired, 1000, 0);
        return;
    }
    if (r->fired >= FIRE_LIMIT) {
        d->fire_due = 1; /* more are due: at once */
        return;
    }
    if (r->jnext == 0)
        uv_timer_stop(&d->journey_timer);
    else
        uv_timer_start(&d->journey_timer, journey_fired,
                       r->jnext > now ? r->jnext - now : 0, 0);
}

static void round_after(uv_work_t *w, int status)
{
    struct round *r = w->data;
    og__durable_t *d = r->d;
    size_t i, k;

    (void)status;
    d->running = NULL;
    if (r->rc != OG_OK) {
        if (!d->st.degraded)
            og__log(OG_LOG_ERROR, "store",
                    "commit failed, answering busy until it works again: %s",
                    r->err);
        d->st.degraded = 1;
        d->st.failures++;
        snprintf(d->st.last_error, sizeof(d->st.last_error), "%s", r->err);
        batch_failed(d, r);
        d->pacing = 1;
        uv_timer_start(&d->pace_timer, pace_fired, PACE_MS, 0);
    } else {
        /* Only a round that wrote something tells that commits work. */
        if (d->st.degraded && (r->b.n > 0 || r->ndone > 0)) {
            og__log(OG_LOG_NOTICE, "store", "commits work again");
            d->st.degraded = 0;
            d->st.last_error[0] = '\0';
        }
        batch_committed(d, r);
    }
    for (i = 0; i < r->b.n; i++) {
        og__event_unref(r->b.subs[i].ev);
        free(r->vendor[i]);
    }
    for (i = 0; i < r->nclaims; i++) {
        struct claim *cl = &r->claims[i];
        struct chan *c = cl->ch;

        c->claiming = 0;
        for (k = 0; k < cl->ngot; k++) {
            q_push(c, cl->got[k].ev, cl->got[k].row, cl->got[k].attempts,
                   d->consent_gen);
            og__event_unref(cl->got[k].ev);
        }
        if (cl->rc == OG_OK) {
            if (cl->ngot + cl->nbad < cl->limit && c->unheld_open == 0)
                c->spilled = 0;
            if (cl->next_due != 0 &&
                (c->due_at == 0 || cl->next_due < c->due_at))
                c->due_at = cl->next_due;
            /* rows whose stored event could not be read are dead
             * letters now, with the reason */
            c->dead += cl->nbad;
            c->dead_new += cl->nbad;
            for (k = 0; k < cl->nbad; k++)
                c->suppressed += cl->suppressed[k];
            c->waiting -= cl->nbad < c->waiting ? cl->nbad : c->waiting;
            d->st.backlog -=
                cl->nbad < d->st.backlog ? cl->nbad : d->st.backlog;
            for (k = 0; k < cl->nbad; k++)
                og__log(cl->suppressed[k] ? OG_LOG_NOTICE : OG_LOG_ERROR,
                        c->name,
                        "outbox row %lld: %s; moved to the dead letters",
                        (long long)cl->bad[k].row, cl->bad[k].error);
        }
        for (k = 0; k < cl->nbad; k++)
            free((char *)cl->bad[k].error);
        free(cl->bad);
        free(cl->suppressed);
        free(cl->got);
    }
    arm_retry_timer(d);
    /* Requeue and purge change the counts the loop keeps: read them again
     * now that no round uses the store (a requeued channel is claimed
     * from, as its waiting count is no longer zero). */
    for (struct op *op = r->ops; op != NULL; op = op->next) {
        if (op->rc == OG_OK && op->op != OG__DEAD_LIST) {
            recount(d);
            break;
        }
    }
    while (r->ops != NULL) {
        struct op *op = r->ops;

        if (op->erased != NULL) {
            drop_erased(d, op->erased);
            og__strv_free(op->erased);
        }

        r->ops = op->next;
        op->cb(op->data, op->rc,
               op->rc == OG_OK || op->op >= OG__CUSTOMER_GET ? op->out.p
                                                             : NULL);
        og__sbuf_free(&op->out);
        free(op->channel);
        free(op);
    }
    for (i = 0; i < r->b.n; i++) {
        free(r->items[i].stamped); /* not taken: a duplicate, or failed */
        free(r->persons[i]);
    }
    for (i = 0; i < r->nmade; i++) {
        if (r->made[i].njm > 0 && r->rc == OG_OK)
            d->fire_due = 1; /* a stock.back resumed runs */
        free(r->made[i].body);
        free(r->made[i].targets);
        free(r->made[i].jm);
        og__event_unref(r->made[i].ev);
    }
    for (i = 0; i < r->nnotes; i++) {
        og__log(r->notes[i].level, r->notes[i].scope, "%s", r->notes[i].text);
        free(r->notes[i].scope);
        free(r->notes[i].text);
    }
    free(r->notes);
    free(r->made);
    for (i = 0; i < r->b.n; i++)
        free(r->jm[i]);
    free(r->jm);
    if (r->fire)
        fired_after(d, r);
    og__journeys_unref(r->journeys);
    free(r->persons);
    free(r->denied);
    rules_unref(r->rules);
    if (r->router != NULL)
        og__router_free(r->router);
    free(r->items);
    free(r->rows);
    free(r->names);
    free(r->vendor);
    free(r->done);
    free(r->sdone);
    free(r->claims);
    batch_free(&r->b);
    free(r);
    dispatch(d);
    maybe_round(d);
    if (d->closing && d->running == NULL && !have_work(d) && d->store != NULL)
        finish_close(d);
}

/* ---- counts ------------------------------------------------------------ */

static void count_row(void *data, const char *channel, int state,
                      uint64_t count)
{
    og__durable_t *d = data;
    struct chan *c = chan_get(d, channel);

    if (state == 0) {
        c->waiting = count;
        c->spilled = count > 0;
        d->st.backlog += count;
    } else if (state == 2) {
        c->dead = count;
    }
}

static void recount(og__durable_t *d)
{
    struct chan *c;

    for (c = d->chans; c != NULL; c = c->next)
        c->waiting = c->dead = 0;
    d->st.backlog = 0;
    d->store->ops->counts(d->store, count_row, d);
}

/* ---- admin ------------------------------------------------------------- */

/* Queues an operator action for the next round. */
static void queue_op(og__durable_t *d, og__admin_op_t op, const char *name,
                     int64_t row, const og__idkey_t *key, og__admin_cb cb,
                     void *data)
{
    struct op *o;

    if (d->store == NULL || d->closing) {
        cb(data, OG_ERR_STOPPING, NULL);
        return;
    }
    o = og__xcalloc(1, sizeof(*o));
    o->op = op;
    o->channel = name ? og__xstrdup(name) : NULL;
    o->row = row;
    if (key != NULL) {
        o->key = *key;
        o->has_key = 1;
    }
    o->cb = cb;
    o->data = data;
    *d->ops_tail = o;
    d->ops_tail = &o->next;
    maybe_round(d);
}

void og__durable_dead(og__durable_t *d, og__admin_op_t op, const char *channel,
                      int64_t row, og__admin_cb cb, void *data)
{
    queue_op(d, op, channel, row, NULL, cb, data);
}

void og__durable_customer(og__durable_t *d, og__admin_op_t op, const char *id,
                          const og__idkey_t *key, og__admin_cb cb, void *data)
{
    queue_op(d, op, id, 0, key, cb, data);
}

void og__durable_set_journeys(og__durable_t *d, og__journeys_t *j)
{
    og__journeys_unref(d->journeys);
    d->journeys = j != NULL ? og__journeys_ref(j) : NULL;
    d->fire_due = 1;
    soon(d);
}

void og__durable_clock(og__durable_t *d, int64_t offset_ms)
{
    d->clock_offset_ms = offset_ms;
    d->fire_due = 1;
    soon(d);
}

int64_t og__durable_clock_offset(const og__durable_t *d)
{
    return d->clock_offset_ms;
}

void og__durable_set_router(og__durable_t *d, og__router_t *router)
{
    if (d->router != NULL)
        og__router_free(d->router);
    d->router = router != NULL ? og__router_ref(router) : NULL;
}

/* ---- life ------------------------------------------------------------- */

void og__durable_configure(og__durable_t *d, const og__conf_t *conf)
{
    struct chan *k;
    size_t i, released = 0;

    d->batch_max = (size_t)conf->queue_max;
    d->max_backlog = (uint64_t)conf->max_backlog;
    d->window_ms = conf->dedup_window_ms;
    d->st.max_backlog = d->max_backlog;
    rules_unref(d->rules); /* a running round keeps its own reference */
    d->rules = rules_create(conf);
    d->regions = 0;
    for (i = 0; i < conf->nchannels; i++) {
        const og__chconf_t *ch = &conf->channels[i];
        struct chan *c = chan_get(d, ch->name);

        c->cap = (size_t)ch->queue_max;
        memcpy(c->region, ch->phone_region, sizeof(c->region));
        d->regions |= ch->phone_region[0] != '\0';
        c->backoff.base_ms = ch->retry_base_ms;
        c->backoff.max_ms = ch->retry_max_ms;
        c->backoff.lifetime_ms = ch->retry_lifetime_ms;
    }
    /* A channel removed or disabled gives its deliveries held in memory
     * back to the store (released, attempts kept): they wait there until
     * the channel is configured again. */
    for (k = d->chans; k != NULL; k = k->next) {
        const og__chconf_t *ch = og__conf_channel(conf, k->name);

        if (ch != NULL && ch->enabled)
            continue;
        while (k->len > 0) {
            struct qitem it = q_pop(k);

            push_done(d, k, it.row, OG__OUTCOME_RELEASE, og__now_ms(), NULL);
            og__event_unref(it.ev);
            released++;
        }
    }
    if (released > 0)
        soon(d);
}

og__durable_t *og__durable_create(uv_loop_t *loop, og__store_t *store,
                                  const og__conf_t *conf, og__find_inst_fn find,
                                  void *find_data, char *err, size_t errlen)
{
    og__durable_t *d = og__xcalloc(1, sizeof(*d));

    d->loop = loop;
    d->store = store;
    d->find = find;
    d->find_data = find_data;
    d->ops_tail = &d->ops;
    og__durable_configure(d, conf);
    if (store->ops->counts(store, count_row, d) != OG_OK) {
        snprintf(err, errlen, "cannot read the outbox counts");
        free(d);
        return NULL;
    }
    uv_timer_init(loop, &d->retry_timer);
    uv_timer_init(loop, &d->pace_timer);
    uv_idle_init(loop, &d->idle);
    uv_check_init(loop, &d->check);
    uv_prepare_init(loop, &d->prepare);
    uv_timer_init(loop, &d->journey_timer);
    d->journey_timer.data = d;
    d->fire_due = 1; /* steps that came due while the daemon was down */
    d->retry_timer.data = d->pace_timer.data = d->idle.data = d;
    d->check.data = d;
    d->prepare.data = d;
    d->next_prune = og__now_ms() + PRUNE_EVERY_MS;
    uv_timer_start(&d->pace_timer, pace_fired, PRUNE_EVERY_MS, 0);
    if (d->st.backlog > 0)
        og__log(OG_LOG_NOTICE, "store",
                "%llu deliveries waiting from before the start",
                (unsigned long long)d->st.backlog);
    return d;
}

static void handle_closed(uv_handle_t *h)
{
    og__durable_t *d = h->data;

    if (--d->handles == 0 && d->closed_cb != NULL)
        d->closed_cb(d->closed_data);
}

static void finish_close(og__durable_t *d)
{
    struct chan *c;

    for (c = d->chans; c != NULL; c = c->next)
        while (c->len > 0) {
            struct qitem it = q_pop(c);

            og__event_unref(it.ev); /* held rows are free again at the
                                       next start */
        }
    og__store_close(d->store);
    d->store = NULL;
    d->handles = 6;
    uv_close((uv_handle_t *)&d->journey_timer, handle_closed);
    uv_close((uv_handle_t *)&d->check, handle_closed);
    uv_close((uv_handle_t *)&d->prepare, handle_closed);
    uv_close((uv_handle_t *)&d->retry_timer, handle_closed);
    uv_close((uv_handle_t *)&d->pace_timer, handle_closed);
    uv_close((uv_handle_t *)&d->idle, handle_closed);
}

void og__durable_close(og__durable_t *d, void (*cb)(void *data), void *data)
{
    d->closing = 1;
    d->closed_cb = cb;
    d->closed_data = data;
    d->pacing = 0;
    uv_timer_stop(&d->retry_timer);
    uv_timer_stop(&d->pace_timer);
    uv_timer_stop(&d->journey_timer);
    maybe_round(d);
    if (d->running == NULL)
        finish_close(d);
}

void og__durable_free(og__durable_t *d)
{
    struct chan *c, *next;

    if (d == NULL)
        return;
    for (c = d->chans; c != NULL; c = next) {
        next = c->next;
        free(c->ring);
        free(c->name);
        free(c);
    }
    batch_free(&d->open);
    free(d->done);
    rules_unref(d->rules);
    if (d->router != NULL)
        og__router_free(d->router);
    og__journeys_unref(d->journeys);
    free(d);
}

void og__durable_stats(og__durable_t *d, og__durable_stats_t *st)
{
    *st = d->st;
    st->batch = d->open.n;
}

void og__durable_foreach_channel(og__durable_t *d,
                                 void (*fn)(void *data,
                                            const og__chan_stats_t *st),
                                 void *data)
{
    struct chan *c;

    for (c = d->chans; c != NULL; c = c->next) {
        og__chan_stats_t st;

        st.channel = c->name;
        st.waiting = c->waiting;
        st.queued = c->len;
        st.dead = c->dead;
        st.retries = c->retries;
        st.dead_new = c->dead_new;
        st.suppressed = c->suppressed;
        fn(data, &st);
    }
}
