/*
 * journeys.h: what happens on one channel drives the others
 * (docs/journeys.md). A journey (journeys_dir/NAME.conf) starts a run for
 * a customer when a trigger event is accepted; the run's steps wait
 * (durations, a time of day in the customer's time zone, quiet hours),
 * check conditions on the event and the profile, and act: send a message
 * rendered from a template on the channel the customer can be reached on,
 * emit an event, set a trait, or call a channel. A cancel-on event by the
 * same customer (and entity) ends a run.
 *
 * Runs live in the store: starts and cancels are written in the commit
 * that accepts their event, and a step's effects (the events it makes and
 * the run's next state) in one transaction, so that a crash never loses a
 * pending step nor does one twice (the events a step makes have ids
 * derived from the run and step: a step done again after a crash makes
 * duplicates, which the store drops).
 *
 * Threads: built and matched on the loop thread; og__journeys_fire() runs
 * on the store's thread. A journeys object is read-only once built and
 * reference counted on the loop thread, like the router.
 */
#ifndef OG_CORE_JOURNEYS_H
#define OG_CORE_JOURNEYS_H

#include <msgpack.h>

#include "config/conf.h"
#include "event/event.h"
#include "event/cond.h"
#include "domain/templates.h"

typedef struct og__journeys_s og__journeys_t;

/*
 * og__journeys_build: compile the journeys of conf (a reference is taken)
 * with its templates; every problem goes to errs as "file:line: message".
 * Never NULL.
 */
og__journeys_t *og__journeys_build(og__conf_t *conf, og__errlist_t *errs);
og__journeys_t *og__journeys_ref(og__journeys_t *j);
void og__journeys_unref(og__journeys_t *j);
/* Enabled journeys (names in *names, owned by j, when not NULL). */
size_t og__journeys_enabled(const og__journeys_t *j, const char ***names);

/* The states of a run. Stored: append only. */
typedef enum og__run_state_e {
    OG__RUN_ACTIVE,
    OG__RUN_COMPLETED, /* every step done */
    OG__RUN_CANCELLED, /* a cancel-on event */
    OG__RUN_EXITED,    /* a step's condition did not hold */
    OG__RUN_REPLACED   /* a new trigger restarted the journey */
} og__run_state_t;

const char *og__run_state_name(int state);

/* What accepting one event does to runs: decided on the loop thread from
 * the event, applied by the store in the event's commit, once its
 * customer is known. */
typedef enum og__jm_op_e {
    OG__JM_START,  /* a trigger: a new run (see concurrency) */
    OG__JM_CANCEL, /* a cancel-on event: active runs of the journey end */
    OG__JM_FAILED, /* a journey's message failed for good: fall back */
    OG__JM_RESUME  /* the event a step waits for (until): runs of the
                    * journey at that step with that entity go on */
} og__jm_op_t;

/* Concurrency of a journey's runs per customer and entity. */
enum {
    OG__JC_ONE,     /* a trigger while a run is active is ignored */
    OG__JC_RESTART, /* it replaces the active run (a cart updated again) */
    OG__JC_MANY     /* every trigger starts its own run */
};

typedef struct og__jmatch_s {
    og__jm_op_t op;
    const char *journey; /* owned by the journeys object */
    char entity[136];    /* "" when the journey has none */
    int concurrency;     /* START */
    uint64_t due_ms;     /* START: when step 1 is looked at */
    int waited;          /* START: due_ms already includes step 1's wait */
    /* FAILED: the run and step of the message, and the channels tried so
     * far (comma-separated, the failed one last); RESUME: the step */
    int64_t run;
    int step;
    char tried[256];
} og__jmatch_t;

/*
 * og__journeys_match: what ev does to runs, at now_ms (the journeys'
 * clock). *out (malloc'd, NULL when none) gets the matches; returns how
 * many. Events of the instance "core" made by journeys do not start
 * journeys (no loops).
 */
size_t og__journeys_match(const og__journeys_t *j, og_event_t *ev,
                          uint64_t now_ms, og__jmatch_t **out);

/* One active run whose time has come, as the store hands it over. */
typedef struct og__run_s {
    int64_t id;
    const char *journey, *customer, *entity, *correlation, *trigger_id;
    const uint8_t *trigger; /* the trigger event's envelope */
    size_t trigger_len;
    int step;          /* 0-based */
    int waited;        /* 0: its wait starts; 1: due_ms ends it; 2: the
                        * event of its until came */
    const char *tried; /* channels tried for this step's message, "" */
    uint64_t due_ms, started_ms;
} og__run_t;

/* What the store lends a firing step (on its thread, in its
 * transaction). */
typedef struct og__fire_env_s {
    void *st;
    /* Packs the customer's data (docs/journeys.md, Data) as one map; its
     * canonical id goes to canonical. -1 when there is no such customer
     * (erased). */
    int (*profile)(void *st, const char *customer, msgpack_packer *pk,
                   char canonical[40]);
    /* 1 when a message of purpose may go to channel, 0 when not. */
    int (*consent)(void *st, const char *customer, const char *purpose,
                   const char *channel);
    /* Messages sent to customer on channel since since_ms (by journey,
     * or by any when journey is NULL). */
    uint64_t (*sent)(void *st, const char *customer, const char *channel,
                     const char *journey, uint64_t since_ms);
} og__fire_env_t;

/* What a step did: the run's next state and the event it made. */
typedef struct og__step_result_s {
    og__run_state_t state;
    int step, waited;
    uint64_t due_ms;
    char tried[256]; /* the run's tried channels from now on */
    char note[512];  /* what happened, for the timeline */
    /* the event made (body NULL: none), with its targets */
    uint8_t *body;
    size_t len;
    char id[72];
    const char *targets[1];
    size_t ntargets; /* 0: routed by the router */
    char type[72];
    char channel[72]; /* a message's channel */
    char customer[40];
    char conversation[72]; /* a message's conversation, or "" */
    /* set: the traits to write on the customer (a MessagePack map of one
     * entry, owned by the journeys object), or NULL */
    const uint8_t *traits;
    size_t traits_len;
} og__step_result_t;

/*
 * og__journeys_fire: run's step at now_ms. res gets the outcome (res->body
 * malloc'd, the caller frees it; an event without targets is routed by
 * the caller).
 * OG_ERR_NOT_FOUND when the run's journey is no longer configured or
 * enabled (the run stays as it is).
 */
og_err_t og__journeys_fire(const og__journeys_t *j, const og__fire_env_t *env,
                           const og__run_t *run, uint64_t now_ms,
                           og__step_result_t *res);

/* The ids of the events a step makes: "j<run>.<step>". */
void og__journeys_event_id(char out[72], int64_t run, int step);

#endif /* OG_CORE_JOURNEYS_H */
