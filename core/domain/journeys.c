/*
 * journeys.c: journeys compiled from the configuration, matched against
 * accepted events, and their steps fired (journeys.h, docs/journeys.md).
 */
#include "config.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/journeys.h"
#include "domain/tz.h"
#include "base/util.h"

enum action { A_NONE, A_SEND, A_EMIT, A_SET, A_CALL };

struct step {
    const og__stepconf_t *sc;
    uint64_t wait_ms;
    int at; /* local minute of the day, -1: none */
    og__cond_t *conds;
    size_t nconds;
    enum action action;
    const char *arg; /* send: template; emit: type; call: channel */
    char **channels; /* send: own order (NULL: the journey's) */
    char *trait;     /* set */
    uint8_t *traits; /* set: {trait: value} as MessagePack */
    size_t traits_len;
    const char *type; /* call: the event type ("journey.call") */
    char **until;     /* event types the step waits for, or NULL */
    og__cond_t *until_when;
    size_t nuntil_when;
    const char *until_entity; /* path in that event: the run's entity */
};

struct journey {
    const og__journeyconf_t *jc;
    int enabled;
    int builtin;    /* message.send commands: template and channels in it */
    char **trigger; /* type patterns */
    og__cond_t *when;
    size_t nwhen;
    const char *entity; /* path in the trigger, or NULL */
    char **cancel_on;   /* type patterns, or NULL */
    og__cond_t *cancel_when;
    size_t ncancel_when;
    const char *cancel_entity; /* path in the cancel event, or NULL */
    int concurrency;
    char **channels;
    const char *purpose;
    int quiet_start, quiet_end; /* -1: none */
    const char *tz;
    int64_t cap_n; /* 0: none */
    uint64_t cap_ms;
    struct step *steps;
    size_t nsteps;
};

struct og__journeys_s {
    unsigned refs;
    og__conf_t *conf;
    og__templates_t *ts;
    struct journey *v;
    size_t n;
    const char **enabled; /* names */
    size_t nenabled;
    int64_t cap_n; /* [journeys] frequency_cap: all journeys */
    uint64_t cap_ms;
    /* the built-in journey of message.send commands (the last of v) */
    og__journeyconf_t cmd_jc;
    og__stepconf_t cmd_sc;
};

/* ---- building ---------------------------------------------------------- */

struct ctx {
    const og__conf_t *conf;
    og__errlist_t *errs;
    const char *file;
};

static const char *opt(const og__opt_t *o, size_t n, const char *key, int *line)
{
    const og__opt_t *x = og__opts_find(o, n, key);

    if (line != NULL)
        *line = x ? x->line : 0;
    return x ? x->value : NULL;
}

/* An enabled channel instance for name: the instance itself, or the first
 * enabled instance of that kind (its plugin) or named "KIND.something". */
static const og__chconf_t *find_channel(const og__conf_t *c, const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i < c->nchannels; i++)
        if (c->channels[i].enabled && strcmp(c->channels[i].name, name) == 0)
            return &c->channels[i];
    for (i = 0; i < c->nchannels; i++) {
        const og__chconf_t *ch = &c->channels[i];

        if (!ch->enabled)
            continue;
        if ((ch->plugin != NULL && strcmp(ch->plugin, name) == 0) ||
            (strncmp(ch->name, name, n) == 0 && ch->name[n] == '.'))
            return ch;
    }
    return NULL;
}

static int parse_quiet(const char *v, int *start, int *end)
{
    char a[8], b[8];
    const char *dash = strchr(v, '-');

    if (strcmp(v, "none") == 0) {
        *start = *end = -1;
        return 0;
    }
    if (dash == NULL || dash - v > 5 || strlen(dash + 1) > 5)
        return -1;
    snprintf(a, sizeof(a), "%.*s", (int)(dash - v), v);
    snprintf(b, sizeof(b), "%s", dash + 1);
    *start = og__parse_hhmm(a);
    *end = og__parse_hhmm(b);
    return *start < 0 || *end < 0 || *start == *end ? -1 : 0;
}

/* "N/DURATION" (at most N messages per DURATION) or "none". */
static int parse_cap(const char *v, int64_t *n, uint64_t *ms)
{
    const char *slash = strchr(v, '/');
    char num[24], why[128];

    if (strcmp(v, "none") == 0) {
        *n = 0;
        *ms = 0;
        return 0;
    }
    if (slash == NULL || slash - v >= (long)sizeof(num))
        return -1;
    snprintf(num, sizeof(num), "%.*s", (int)(slash - v), v);
    if (og__parse_int(num, n, why, sizeof(why)) != OG_OK || *n < 1 ||
        og__parse_duration_ms(slash + 1, ms, why, sizeof(why)) != OG_OK ||
        *ms < 1000)
        return -1;
    return 0;
}

static og__cond_t *conds(struct ctx *x, const char *expr, int line,
                         const char *key, size_t *n)
{
    char why[256];
    og__cond_t *c;

    *n = 0;
    if (expr == NULL)
        return NULL;
    c = og__conds_parse(expr, n, why, sizeof(why));
    if (c == NULL)
        og__errlist_add(x->errs, x->file, line, "%s: %s", key, why);
    return c;
}

static char **types(struct ctx *x, const char *v, int line, const char *key)
{
    char **t;
    size_t i;

    if (v == NULL)
        return NULL;
    t = og__split_list(v, NULL);
    if (t[0] == NULL)
        og__errlist_add(x->errs, x->file, line, "%s: no event type given", key);
    for (i = 0; t[i] != NULL; i++)
        if (!og__is_ident_glob(t[i]))
            og__errlist_add(x->errs, x->file, line,
                            "%s: '%s' is not an event type or pattern", key,
                            t[i]);
    return t;
}

/* {name: value} for set: true/false, an integer, or text. */
static uint8_t *pack_trait(const char *name, const char *v, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int64_t i;
    char why[64];

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, strlen(name));
    msgpack_pack_str_body(&pk, name, strlen(name));
    if (strcmp(v, "true") == 0)
        msgpack_pack_true(&pk);
    else if (strcmp(v, "false") == 0)
        msgpack_pack_false(&pk);
    else if (og__parse_int(v, &i, why, sizeof(why)) == OG_OK)
        msgpack_pack_int64(&pk, i);
    else {
        msgpack_pack_str(&pk, strlen(v));
        msgpack_pack_str_body(&pk, v, strlen(v));
    }
    *len = sb.size;
    return (uint8_t *)sb.data;
}

static const og__tmplconf_t *find_template(const og__conf_t *c,
                                           const char *name)
{
    size_t i;

    for (i = 0; i < c->ntemplates; i++)
        if (strcmp(c->templates[i].name, name) == 0)
            return &c->templates[i];
    return NULL;
}

static void check_channels(struct ctx *x, char **v, int line, const char *key)
{
    size_t i;

    for (i = 0; v != NULL && v[i] != NULL; i++)
        if (strcmp(v[i], "preferred") != 0 && !og__is_ident(v[i], 1))
            og__errlist_add(x->errs, x->file, line,
                            "%s: '%s' is not a channel name or kind, or "
                            "preferred",
                            key, v[i]);
}

static const char *const step_keys[] = {
    "wait", "at",   "if",   "send",  "channel",    "channels",     "emit",
    "set",  "call", "type", "until", "until_when", "until_entity", NULL};
static const char *const journey_keys[] = {
    "description",   "enabled",     "requires",      "trigger",
    "when",          "entity",      "cancel_on",     "cancel_when",
    "cancel_entity", "concurrency", "channels",      "purpose",
    "quiet_hours",   "timezone",    "frequency_cap", NULL};

static int known_key(const char *const *keys, const char *k)
{
    size_t i;

    for (i = 0; keys[i] != NULL; i++)
        if (strcmp(keys[i], k) == 0)
            return 1;
    return 0;
}

static void build_step(struct ctx *x, struct journey *jn, struct step *st)
{
    const og__stepconf_t *sc = st->sc;
    const char *v;
    int line, nact = 0;
    char why[256];
    size_t i;

    st->at = -1;
    for (i = 0; i < sc->nopts; i++)
        if (!known_key(step_keys, sc->opts[i].key))
            og__errlist_add(x->errs, x->file, sc->opts[i].line,
                            "unknown key '%s' in [step %s] (known: wait, at, "
                            "until, until_when, until_entity, if, send, "
                            "channels, emit, set, call, type)",
                            sc->opts[i].key, sc->name);
    if ((v = opt(sc->opts, sc->nopts, "wait", &line)) != NULL &&
        og__parse_duration_ms(v, &st->wait_ms, why, sizeof(why)) != OG_OK)
        og__errlist_add(x->errs, x->file, line, "wait: %s, got '%s'", why, v);
    if ((v = opt(sc->opts, sc->nopts, "at", &line)) != NULL &&
        (st->at = og__parse_hhmm(v)) < 0)
        og__errlist_add(x->errs, x->file, line,
                        "at: expected a local time HH:MM (00:00-23:59), got "
                        "'%s'",
                        v);
    v = opt(sc->opts, sc->nopts, "if", &line);
    st->conds = conds(x, v, line, "if", &st->nconds);
    if (st->conds != NULL) { /* paths start at event., customer., journey. */
        char **words = og__split_list(v, NULL);
        size_t k;

        for (k = 0; words[k] != NULL; k++) {
            const char *w = words[k];

            if (k > 0 && strcmp(words[k - 1], "and") != 0)
                continue;
            if (strncmp(w, "event.", 6) != 0 &&
                strncmp(w, "customer.", 9) != 0 &&
                strncmp(w, "journey.", 8) != 0)
                og__errlist_add(x->errs, x->file, line,
                                "if: '%s' must start with event., customer. "
                                "or journey.",
                                w);
        }
        og__strv_free(words);
    }
    if ((v = opt(sc->opts, sc->nopts, "send", &line)) != NULL) {
        const og__tmplconf_t *t = find_template(x->conf, v);

        nact++;
        st->action = A_SEND;
        st->arg = v;
        if (t == NULL) {
            og__errlist_add(x->errs, x->file, line,
                            "send: no template '%s' in %s", v,
                            x->conf->templates_dir);
        } else {
            for (i = 0; t->vars != NULL && t->vars[i] != NULL; i++)
                if (strcmp(t->vars[i], "customer") != 0 &&
                    strcmp(t->vars[i], "event") != 0 &&
                    strcmp(t->vars[i], "journey") != 0)
                    og__errlist_add(x->errs, x->file, line,
                                    "send: template '%s' uses '%s', which a "
                                    "journey does not give (customer, event, "
                                    "journey)",
                                    v, t->vars[i]);
        }
    }
    v = opt(sc->opts, sc->nopts, "channels", &line);
    if (v == NULL)
        v = opt(sc->opts, sc->nopts, "channel", &line);
    if (v != NULL) {
        st->channels = og__split_list(v, NULL);
        check_channels(x, st->channels, line, "channels");
        if (st->action != A_SEND)
            og__errlist_add(x->errs, x->file, line,
                            "channels: only a step that sends has channels");
    }
    if ((v = opt(sc->opts, sc->nopts, "emit", &line)) != NULL) {
        nact++;
        st->action = A_EMIT;
        st->arg = v;
        if (!og__is_ident(v, 1))
            og__errlist_add(x->errs, x->file, line,
                            "emit: '%s' is not an event type", v);
    }
    if ((v = opt(sc->opts, sc->nopts, "set", &line)) != NULL) {
        const char *eq = strchr(v, '=');
        char *name;

        nact++;
        st->action = A_SET;
        if (eq == NULL || eq == v) {
            og__errlist_add(x->errs, x->file, line,
                            "set: expected TRAIT=VALUE, got '%s'", v);
        } else {
            name = og__xstrndup(v, (size_t)(eq - v));
            while (name[0] && name[strlen(name) - 1] == ' ')
                name[strlen(name) - 1] = '\0';
            st->trait = name;
            eq++;
            while (*eq == ' ')
                eq++;
            st->traits = pack_trait(name, eq, &st->traits_len);
        }
    }
    if ((v = opt(sc->opts, sc->nopts, "call", &line)) != NULL) {
        nact++;
        st->action = A_CALL;
        st->arg = v;
        if (og__conf_channel(x->conf, v) == NULL)
            og__errlist_add(x->errs, x->file, line,
                            "call: no channel instance '%s'", v);
    }
    v = opt(sc->opts, sc->nopts, "until", &line);
    st->until = types(x, v, line, "until");
    if (st->until != NULL && jn->entity == NULL)
        og__errlist_add(x->errs, x->file, line,
                        "until: the journey needs an entity (the event "
                        "waited for is matched by it)");
    if (st->until != NULL && st->at >= 0)
        og__errlist_add(x->errs, x->file, line,
                        "until: a step waits for an event or for a time of "
                        "day (at), not both");
    v = opt(sc->opts, sc->nopts, "until_when", &line);
    st->until_when = conds(x, v, line, "until_when", &st->nuntil_when);
    st->until_entity = opt(sc->opts, sc->nopts, "until_entity", &line);
    if ((st->until_when != NULL || st->until_entity != NULL) &&
        st->until == NULL)
        og__errlist_add(x->errs, x->file, line, "%s needs until",
                        st->until_entity ? "until_entity" : "until_when");
    if (st->until_entity == NULL)
        st->until_entity = "entity.id";
    st->type = opt(sc->opts, sc->nopts, "type", &line);
    if (st->type != NULL &&
        (st->action != A_CALL || !og__is_ident(st->type, 1)))
        og__errlist_add(x->errs, x->file, line,
                        "type: the event type of a call step (default "
                        "journey.call)");
    if (st->type == NULL)
        st->type = "journey.call";
    if (nact > 1)
        og__errlist_add(x->errs, x->file, sc->line,
                        "[step %s]: one action per step (send, emit, set or "
                        "call); split it into steps",
                        sc->name);
}

static int channel_ready(const og__conf_t *c, const char *name)
{
    return find_channel(c, name) != NULL;
}

static void build_journey(og__journeys_t *js, struct ctx *x, struct journey *jn,
                          const char *gtz, int gq0, int gq1)
{
    const og__journeyconf_t *jc = jn->jc;
    const char *v;
    int line;
    size_t i;
    char why[256];

    x->file = jc->file;
    for (i = 0; i < jc->nopts; i++)
        if (!known_key(journey_keys, jc->opts[i].key))
            og__errlist_add(x->errs, x->file, jc->opts[i].line,
                            "unknown key '%s' in [journey] (known: "
                            "description, enabled, requires, trigger, when, "
                            "entity, cancel_on, cancel_when, cancel_entity, "
                            "concurrency, channels, purpose, quiet_hours, "
                            "timezone, frequency_cap)",
                            jc->opts[i].key);
    jn->enabled = 1;
    v = opt(jc->opts, jc->nopts, "enabled", &line);
    if (v != NULL && strcmp(v, "auto") == 0) {
        const char *req = opt(jc->opts, jc->nopts, "requires", NULL);
        char **r = og__split_list(req ? req : "", NULL);

        for (i = 0; r[i] != NULL; i++)
            if (!channel_ready(x->conf, r[i]))
                jn->enabled = 0;
        if (req == NULL)
            og__errlist_add(x->errs, x->file, line,
                            "enabled = auto needs 'requires' (the channels "
                            "that must be enabled)");
        og__strv_free(r);
    } else if (v != NULL &&
               og__parse_bool(v, &jn->enabled, why, sizeof(why)) != OG_OK) {
        og__errlist_add(x->errs, x->file, line,
                        "enabled: expected yes, no or auto, got '%s'", v);
    }
    if ((v = opt(jc->opts, jc->nopts, "requires", &line)) != NULL) {
        char **r = og__split_list(v, NULL);

        check_channels(x, r, line, "requires");
        og__strv_free(r);
    }
    v = opt(jc->opts, jc->nopts, "trigger", &line);
    jn->trigger = types(x, v, line, "trigger");
    if (v == NULL && jc->line != 0)
        og__errlist_add(x->errs, x->file, jc->line,
                        "[journey] has no 'trigger' (the event type that "
                        "starts it)");
    v = opt(jc->opts, jc->nopts, "when", &line);
    jn->when = conds(x, v, line, "when", &jn->nwhen);
    jn->entity = opt(jc->opts, jc->nopts, "entity", NULL);
    v = opt(jc->opts, jc->nopts, "cancel_on", &line);
    jn->cancel_on = types(x, v, line, "cancel_on");
    v = opt(jc->opts, jc->nopts, "cancel_when", &line);
    jn->cancel_when = conds(x, v, line, "cancel_when", &jn->ncancel_when);
    jn->cancel_entity = opt(jc->opts, jc->nopts, "cancel_entity", NULL);
    if ((jn->cancel_when != NULL || jn->cancel_entity != NULL) &&
        jn->cancel_on == NULL)
        og__errlist_add(x->errs, x->file, jc->line,
                        "cancel_when and cancel_entity need cancel_on");
    jn->concurrency = OG__JC_ONE;
    if ((v = opt(jc->opts, jc->nopts, "concurrency", &line)) != NULL) {
        if (strcmp(v, "one") == 0)
            jn->concurrency = OG__JC_ONE;
        else if (strcmp(v, "restart") == 0)
            jn->concurrency = OG__JC_RESTART;
        else if (strcmp(v, "many") == 0)
            jn->concurrency = OG__JC_MANY;
        else
            og__errlist_add(x->errs, x->file, line,
                            "concurrency: expected one, restart or many, got "
                            "'%s'",
                            v);
    }
    v = opt(jc->opts, jc->nopts, "channels", &line);
    jn->channels = og__split_list(v ? v : "preferred", NULL);
    check_channels(x, jn->channels, line, "channels");
    jn->purpose = opt(jc->opts, jc->nopts, "purpose", &line);
    if (jn->purpose == NULL)
        jn->purpose = "marketing";
    else if (strcmp(jn->purpose, "marketing") != 0 &&
             strcmp(jn->purpose, "transactional") != 0)
        og__errlist_add(x->errs, x->file, line,
                        "purpose: expected marketing or transactional, got "
                        "'%s'",
                        jn->purpose);
    jn->quiet_start = gq0;
    jn->quiet_end = gq1;
    if ((v = opt(jc->opts, jc->nopts, "quiet_hours", &line)) != NULL &&
        parse_quiet(v, &jn->quiet_start, &jn->quiet_end) != 0)
        og__errlist_add(x->errs, x->file, line,
                        "quiet_hours: expected HH:MM-HH:MM (e.g. "
                        "21:00-08:00) or none, got '%s'",
                        v);
    jn->tz = opt(jc->opts, jc->nopts, "timezone", &line);
    if (jn->tz != NULL && og__tz_check(jn->tz, why, sizeof(why)) != OG_OK)
        og__errlist_add(x->errs, x->file, line, "timezone: %s", why);
    if (jn->tz == NULL)
        jn->tz = gtz;
    if ((v = opt(jc->opts, jc->nopts, "frequency_cap", &line)) != NULL &&
        parse_cap(v, &jn->cap_n, &jn->cap_ms) != 0)
        og__errlist_add(x->errs, x->file, line,
                        "frequency_cap: expected N/DURATION (e.g. 2/7d: at "
                        "most 2 messages a week per customer and channel) "
                        "or none, got '%s'",
                        v);
    jn->nsteps = jc->nsteps;
    jn->steps = og__xcalloc(jc->nsteps + 1, sizeof(*jn->steps));
    for (i = 0; i < jc->nsteps; i++) {
        jn->steps[i].sc = &jc->steps[i];
        build_step(x, jn, &jn->steps[i]);
    }
    if (jc->nsteps == 0 && jc->line != 0)
        og__errlist_add(x->errs, x->file, jc->line,
                        "journey has no [step NAME] section");
    if (jn->enabled) {
        js->enabled = og__xrealloc(js->enabled,
                                   (js->nenabled + 1) * sizeof(*js->enabled));
        js->enabled[js->nenabled++] = jc->name;
    }
}

/* A message.send with props.template from any channel but the core is a
 * command: a run of this journey sends it like a journey's step
 * (docs/journeys.md, Messages on command). Its name cannot be a file's. */
static void command_journey(og__journeys_t *js, struct journey *jn,
                            const char *gtz)
{
    size_t n;

    js->cmd_jc.name = (char *)"message.send";
    js->cmd_jc.file = (char *)"(built in)";
    js->cmd_jc.steps = &js->cmd_sc;
    js->cmd_jc.nsteps = 1;
    js->cmd_sc.name = (char *)"send";
    jn->jc = &js->cmd_jc;
    jn->enabled = 1;
    jn->builtin = 1;
    jn->trigger = og__split_list("message.send", NULL);
    jn->when = og__conds_parse("props.template exists", &n, NULL, 0);
    jn->nwhen = n;
    jn->concurrency = OG__JC_MANY;
    jn->channels = og__split_list("preferred", NULL);
    jn->purpose = "marketing";
    jn->quiet_start = jn->quiet_end = -1;
    jn->tz = gtz;
    jn->nsteps = 1;
    jn->steps = og__xcalloc(2, sizeof(*jn->steps));
    jn->steps[0].sc = &js->cmd_sc;
    jn->steps[0].at = -1;
    jn->steps[0].action = A_SEND;
}

og__journeys_t *og__journeys_build(og__conf_t *conf, og__errlist_t *errs)
{
    og__journeys_t *js = og__xcalloc(1, sizeof(*js));
    struct ctx x = {conf, errs, conf->main_file};
    const char *gtz = "UTC", *v;
    int gq0 = -1, gq1 = -1, line;
    size_t i;
    char why[256];

    js->refs = 1;
    js->conf = og__conf_ref(conf);
    js->ts = og__templates_build(conf, errs);
    for (i = 0; i < conf->njourney_opts; i++) {
        const og__opt_t *o = &conf->journey_opts[i];

        if (strcmp(o->key, "timezone") != 0 &&
            strcmp(o->key, "quiet_hours") != 0 &&
            strcmp(o->key, "frequency_cap") != 0)
            og__errlist_add(errs, conf->main_file, o->line,
                            "unknown key '%s' in [journeys] (known: "
                            "timezone, quiet_hours, frequency_cap)",
                            o->key);
    }
    if ((v = opt(conf->journey_opts, conf->njourney_opts, "timezone", &line)) !=
        NULL) {
        if (og__tz_check(v, why, sizeof(why)) != OG_OK)
            og__errlist_add(errs, conf->main_file, line, "timezone: %s", why);
        gtz = v;
    }
    if ((v = opt(conf->journey_opts, conf->njourney_opts, "quiet_hours",
                 &line)) != NULL &&
        parse_quiet(v, &gq0, &gq1) != 0)
        og__errlist_add(errs, conf->main_file, line,
                        "quiet_hours: expected HH:MM-HH:MM (e.g. "
                        "21:00-08:00) or none, got '%s'",
                        v);
    if ((v = opt(conf->journey_opts, conf->njourney_opts, "frequency_cap",
                 &line)) != NULL &&
        parse_cap(v, &js->cap_n, &js->cap_ms) != 0)
        og__errlist_add(errs, conf->main_file, line,
                        "frequency_cap: expected N/DURATION (e.g. 3/1d) or "
                        "none, got '%s'",
                        v);
    js->n = conf->njourneys;
    js->v = og__xcalloc(js->n + 2, sizeof(*js->v));
    for (i = 0; i < js->n; i++) {
        js->v[i].jc = &conf->journeys[i];
        build_journey(js, &x, &js->v[i], gtz, gq0, gq1);
    }
    command_journey(js, &js->v[js->n++], gtz);
    return js;
}

og__journeys_t *og__journeys_ref(og__journeys_t *j)
{
    j->refs++;
    return j;
}

void og__journeys_unref(og__journeys_t *js)
{
    size_t i, k;

    if (js == NULL || --js->refs > 0)
        return;
    for (i = 0; i < js->n; i++) {
        struct journey *jn = &js->v[i];

        og__strv_free(jn->trigger);
        og__strv_free(jn->cancel_on);
        og__strv_free(jn->channels);
        og__conds_free(jn->when, jn->nwhen);
        og__conds_free(jn->cancel_when, jn->ncancel_when);
        for (k = 0; k < jn->nsteps; k++) {
            og__conds_free(jn->steps[k].conds, jn->steps[k].nconds);
            og__conds_free(jn->steps[k].until_when, jn->steps[k].nuntil_when);
            og__strv_free(jn->steps[k].until);
            og__strv_free(jn->steps[k].channels);
            free(jn->steps[k].trait);
            free(jn->steps[k].traits);
        }
        free(jn->steps);
    }
    free(js->v);
    free(js->enabled);
    og__templates_free(js->ts);
    og__conf_free(js->conf);
    free(js);
}

size_t og__journeys_enabled(const og__journeys_t *j, const char ***names)
{
    if (names != NULL)
        *names = j->enabled;
    return j->nenabled;
}

const char *og__run_state_name(int state)
{
    switch (state) {
    case OG__RUN_ACTIVE: return "active";
    case OG__RUN_COMPLETED: return "completed";
    case OG__RUN_CANCELLED: return "cancelled";
    case OG__RUN_EXITED: return "exited";
    case OG__RUN_REPLACED: return "replaced";
    }
    return "unknown";
}

/* ---- matching (loop thread) -------------------------------------------- */

static int type_in(char **pats, const char *type)
{
    size_t i;

    for (i = 0; pats != NULL && pats[i] != NULL; i++)
        if (fnmatch(pats[i], type, 0) == 0)
            return 1;
    return 0;
}

/* The text (or integer) at path in ev, into out; 0 when none. */
/* The event's tree for matching, parsed once per og__journeys_match()
 * into a zone of its own that goes with it: an event waiting in a batch
 * does not keep a parsed copy (2 KB each) for the journeys' sake. */
struct tree {
    og_event_t *ev;
    int state; /* 0 not parsed yet, 1 parsed, -1 not parseable */
    msgpack_zone zone;
    msgpack_object root;
    const msgpack_object *use;
};

static const msgpack_object *tree_root(struct tree *t)
{
    size_t off = 0;

    if (t->state == 0) {
        t->state = -1;
        if (t->ev->parsed) {
            t->use = &t->ev->root;
            t->state = 1;
        } else if (msgpack_zone_init(&t->zone, 1024)) {
            if (msgpack_unpack((const char *)t->ev->data, t->ev->len, &off,
                               &t->zone, &t->root) == MSGPACK_UNPACK_SUCCESS) {
                t->use = &t->root;
                t->state = 2; /* ours to destroy */
            } else {
                msgpack_zone_destroy(&t->zone);
            }
        }
    }
    return t->state > 0 ? t->use : NULL;
}

static void tree_done(struct tree *t)
{
    if (t->state == 2)
        msgpack_zone_destroy(&t->zone);
}

static int conds_hold(struct tree *t, const og__cond_t *c, size_t n)
{
    const msgpack_object *root;

    if (n == 0)
        return 1;
    root = tree_root(t);
    return root != NULL && og__conds_match_obj(c, n, root);
}

static int entity_of(struct tree *t, const char *path, char *out, size_t len)
{
    const msgpack_object *root;

    out[0] = '\0';
    return path != NULL && (root = tree_root(t)) != NULL &&
           og__obj_text(root, path, 1, out, len) != NULL;
}

/* The end of a step's plain wait from now_ms; with until, the wait is
 * the longest (none: ten years). */
static uint64_t until_due(const struct step *st, uint64_t now_ms)
{
    if (st->until != NULL && st->wait_ms == 0)
        return now_ms + 10ull * 365 * 24 * 3600 * 1000;
    return now_ms + st->wait_ms;
}

static og__jmatch_t *add_match(og__jmatch_t **out, size_t *n)
{
    og__jmatch_t *m;

    *out = og__xrealloc(*out, (*n + 1) * sizeof(**out));
    m = &(*out)[(*n)++];
    memset(m, 0, sizeof(*m));
    return m;
}

/* A journey's message that failed for good: props.journey, props.run,
 * props.step and props.tried of a message.failed the core made. */
static void failed_match(og_event_t *ev, og__jmatch_t **out, size_t *n)
{
    const msgpack_object *o;
    int64_t run = 0, step = -1;
    og__jmatch_t *m;
    char msg[72] = "", chan[72] = "";
    long long r;
    int st, used = 0;

    /* the message's id names them: j<run>.<step>.<channel> */
    if (og__event_lookup(ev, "props.message", &o) == OG_OK &&
        o->type == MSGPACK_OBJECT_STR && o->via.str.size < sizeof(msg)) {
        memcpy(msg, o->via.str.ptr, o->via.str.size);
        msg[o->via.str.size] = '\0';
        if (sscanf(msg, "j%lld.%d.%n", &r, &st, &used) == 2 && used > 0) {
            run = r;
            step = st;
            snprintf(chan, sizeof(chan), "%s", msg + used);
        }
    }
    if (og__event_get_int(ev, "props.run", &run) != OG_OK && run == 0)
        return;
    if (og__event_get_int(ev, "props.step", &step) != OG_OK && step < 0)
        return;
    if (run <= 0 || step < 0 || step > 1000)
        return;
    m = add_match(out, n);
    m->op = OG__JM_FAILED;
    m->run = run;
    m->step = (int)step;
    if (og__event_lookup(ev, "props.tried", &o) == OG_OK &&
        o->type == MSGPACK_OBJECT_STR && o->via.str.size < sizeof(m->tried))
        snprintf(m->tried, sizeof(m->tried), "%.*s", (int)o->via.str.size,
                 o->via.str.ptr);
    else /* a channel's own report (a bounce): the channel it came on */
        snprintf(m->tried, sizeof(m->tried), "%s", chan);
}

size_t og__journeys_match(const og__journeys_t *js, og_event_t *ev,
                          uint64_t now_ms, og__jmatch_t **out)
{
    size_t i, k, n = 0;
    int from_core = ev->instance != NULL && strcmp(ev->instance, "core") == 0;
    struct tree t;

    memset(&t, 0, sizeof(t));
    t.ev = ev;
    *out = NULL;
    /* the core's message.failed, or a channel's later report that a
     * journey's message failed (an email bounce) */
    if ((from_core && strcmp(ev->type, "message.failed") == 0) ||
        (!from_core && (strcmp(ev->type, "message.bounced") == 0 ||
                        strcmp(ev->type, "message.failed") == 0)))
        failed_match(ev, out, &n);
    for (i = 0; i < js->n; i++) {
        const struct journey *jn = &js->v[i];
        og__jmatch_t *m;

        if (!jn->enabled || (jn->builtin && from_core))
            continue;
        if (type_in(jn->cancel_on, ev->type) &&
            conds_hold(&t, jn->cancel_when, jn->ncancel_when)) {
            m = add_match(out, &n);
            m->op = OG__JM_CANCEL;
            m->journey = jn->jc->name;
            entity_of(&t, jn->cancel_entity, m->entity, sizeof(m->entity));
        }
        for (k = 0; k < jn->nsteps; k++) {
            const struct step *st = &jn->steps[k];

            if (st->until == NULL || !type_in(st->until, ev->type) ||
                !conds_hold(&t, st->until_when, st->nuntil_when))
                continue;
            m = add_match(out, &n);
            m->op = OG__JM_RESUME;
            m->journey = jn->jc->name;
            m->step = (int)k;
            if (!entity_of(&t, st->until_entity, m->entity, sizeof(m->entity)))
                n--; /* not about an entity: resumes nothing */
        }
        /* Events of journeys themselves start none (no loops). */
        if (from_core && strncmp(ev->id, "j", 1) == 0)
            continue;
        if (!type_in(jn->trigger, ev->type) ||
            !conds_hold(&t, jn->when, jn->nwhen))
            continue;
        m = add_match(out, &n);
        m->op = OG__JM_START;
        m->journey = jn->jc->name;
        m->concurrency = jn->concurrency;
        if (jn->entity != NULL &&
            !entity_of(&t, jn->entity, m->entity, sizeof(m->entity)))
            snprintf(m->entity, sizeof(m->entity), "-");
        /* A plain wait is known now; a time of day needs the customer's
         * time zone, which the first firing reads. */
        if (jn->nsteps > 0 && jn->steps[0].at < 0) {
            m->due_ms = until_due(&jn->steps[0], now_ms);
            m->waited = 1;
        } else {
            m->due_ms = now_ms;
            m->waited = 0;
        }
    }
    tree_done(&t);
    return n;
}

/* ---- firing (store thread) --------------------------------------------- */

void og__journeys_event_id(char out[72], int64_t run, int step)
{
    snprintf(out, 72, "j%lld.%d", (long long)run, step);
}

static const struct journey *journey_of(const og__journeys_t *js,
                                        const char *name)
{
    size_t i;

    for (i = 0; i < js->n; i++)
        if (strcmp(js->v[i].jc->name, name) == 0)
            return &js->v[i];
    return NULL;
}

#define PSTR(pk, str) og__pack_cstr(pk, str)

/* The string at path of data, or NULL. */
static const char *str_at(const msgpack_object *data, const char *path,
                          char *buf, size_t len)
{
    return og__obj_text(data, path, 0, buf, len);
}

static int in_quiet(int m, int q0, int q1)
{
    if (q0 < 0)
        return 0;
    return q0 < q1 ? (m >= q0 && m < q1) : (m >= q0 || m < q1);
}

/* The zone for the customer: their timezone trait when it is a known
 * zone, else the journey's. */
static const char *zone_of(const struct journey *jn, const msgpack_object *data,
                           char *buf, size_t len)
{
    char why[256];
    const char *z = str_at(data, "customer.timezone", buf, len);

    if (z != NULL && og__tz_check(z, why, sizeof(why)) == OG_OK)
        return z;
    return jn->tz;
}

/* When step st's wait ends, counted from from_ms. */
static og_err_t wait_end(const struct journey *jn, const struct step *st,
                         const msgpack_object *data, uint64_t from_ms,
                         uint64_t *due, char *why, size_t whylen)
{
    char zb[128];
    uint64_t t = from_ms + st->wait_ms;

    if (st->at >= 0 && og__tz_next(zone_of(jn, data, zb, sizeof(zb)), t, st->at,
                                   &t, why, whylen) != OG_OK)
        return OG_ERR_INVALID;
    *due = t;
    return OG_OK;
}

/* The address of the customer for a channel of kind (its plugin) or
 * name: the newest identity key of a kind that reaches it (email: email;
 * sms, whatsapp: phone; web: anon, user; pos: pos, loyalty; any other:
 * its own kind), copied to buf; NULL when there is none. */
static const char *address(const msgpack_object *data, const char *kind,
                           const char *name, char *buf, size_t len)
{
    static const char *const map[][3] = {
        {"email", "email", NULL},    {"sms", "phone", NULL},
        {"whatsapp", "phone", NULL}, {"social", "social", NULL},
        {"chat", "chat", NULL},      {"web", "anon", "user"},
        {"pos", "pos", "loyalty"}};
    const char *tries[2] = {kind, name};
    char path[128];
    size_t i, k, t;

    for (t = 0; t < 2; t++) {
        for (i = 0; i < OG__ARRAY_SIZE(map); i++)
            if (strcmp(map[i][0], tries[t]) == 0)
                break;
        for (k = 1; k < 3; k++) {
            const char *ak = i < OG__ARRAY_SIZE(map) ? map[i][k]
                             : k == 1                ? tries[t]
                                                     : NULL;

            if (ak == NULL)
                break;
            snprintf(path, sizeof(path), "customer.addresses.%s", ak);
            if (str_at(data, path, buf, len) != NULL)
                return buf;
        }
    }
    return NULL;
}

static int listed(const char *csv, const char *name)
{
    size_t n = strlen(name);
    const char *p = csv;

    while (p != NULL && *p) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);

        if (l == n && memcmp(p, name, n) == 0)
            return 1;
        p = c ? c + 1 : NULL;
    }
    return 0;
}

static void note_add(char *note, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_add(char *note, size_t len, const char *fmt, ...)
{
    size_t n = strlen(note);
    va_list ap;

    if (n + 1 >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(note + n, len - n, fmt, ap);
    va_end(ap);
}

/* The channel a message goes to: the first candidate that is an enabled
 * instance, has an address for the customer, consent for the purpose,
 * room under the frequency caps, and was not tried. Reasons for the
 * others go to res->note. NULL when none. */
/* What a send step sends: its template, purpose and channels in order;
 * the built-in message.send journey reads them from the command. */
struct send {
    const char *tmpl, *purpose;
    const char *cands[18];
    char buf[17][72];
};

static const og__chconf_t *
choose(const og__journeys_t *js, const struct journey *jn,
       const struct send *sp, const og__fire_env_t *env, const og__run_t *run,
       const char *cust, const msgpack_object *data, uint64_t now, char *addr,
       size_t addrlen, og__step_result_t *res)
{
    const char *const *cands = sp->cands;
    char pb[72];
    size_t i;

    for (i = 0; cands[i] != NULL; i++) {
        const char *name = cands[i];
        const og__chconf_t *ch;
        const char *kind;

        if (strcmp(name, "preferred") == 0 &&
            (name = str_at(data, "customer.preferred_channel", pb,
                           sizeof(pb))) == NULL)
            continue;
        ch = find_channel(js->conf, name);
        if (ch == NULL) {
            note_add(res->note, sizeof(res->note), "%s: not enabled; ", name);
            continue;
        }
        if (listed(run->tried, ch->name)) {
            note_add(res->note, sizeof(res->note), "%s: failed before; ",
                     ch->name);
            continue;
        }
        kind = ch->plugin ? ch->plugin : ch->name;
        if (address(data, kind, ch->name, addr, addrlen) == NULL) {
            note_add(res->note, sizeof(res->note), "%s: no address; ",
                     ch->name);
            continue;
        }
        if (!env->consent(env->st, cust, sp->purpose, ch->name)) {
            note_add(res->note, sizeof(res->note), "%s: no consent (%s); ",
                     ch->name, sp->purpose);
            continue;
        }
        if (jn->cap_n > 0 &&
            env->sent(env->st, cust, ch->name, jn->jc->name,
                      now > jn->cap_ms ? now - jn->cap_ms : 0) >=
                (uint64_t)jn->cap_n) {
            note_add(res->note, sizeof(res->note),
                     "%s: frequency cap of the journey; ", ch->name);
            continue;
        }
        if (js->cap_n > 0 && strcmp(sp->purpose, "marketing") == 0 &&
            env->sent(env->st, cust, ch->name, NULL,
                      now > js->cap_ms ? now - js->cap_ms : 0) >=
                (uint64_t)js->cap_n) {
            note_add(res->note, sizeof(res->note), "%s: frequency cap; ",
                     ch->name);
            continue;
        }
        return ch;
    }
    return NULL;
}

/* The envelope of an event a step makes; conv: the trigger's
 * conversation, or NULL. */
static void pack_head(msgpack_packer *pk, size_t extra, const char *type,
                      const char *id, uint64_t now, const char *cust,
                      const og__run_t *run, const char *conv)
{
    og__pack_core_head(pk, 3 + extra + (conv != NULL), type, id, now);
    if (conv != NULL) {
        PSTR(pk, "conversation");
        PSTR(pk, conv);
    }
    PSTR(pk, "customer");
    PSTR(pk, cust);
    PSTR(pk, "correlation");
    PSTR(pk, run->correlation);
    PSTR(pk, "causation");
    PSTR(pk, run->trigger_id);
}

static void pack_kv(msgpack_packer *pk, const char *k, const char *v)
{
    PSTR(pk, k);
    PSTR(pk, v);
}

static void pack_sbuf(msgpack_packer *pk, const char *k, const og__sbuf_t *b)
{
    PSTR(pk, k);
    msgpack_pack_str(pk, b->n);
    msgpack_pack_str_body(pk, b->p, b->n);
}

/* The step's journey fields in props: journey, run, step. */
static void pack_origin(msgpack_packer *pk, const og__run_t *run)
{
    pack_kv(pk, "journey", run->journey);
    PSTR(pk, "run");
    msgpack_pack_int64(pk, run->id);
    PSTR(pk, "step");
    msgpack_pack_int(pk, run->step);
}

static void take(og__step_result_t *res, msgpack_sbuffer *sb, const char *type)
{
    res->body = (uint8_t *)sb->data;
    res->len = sb->size;
    snprintf(res->type, sizeof(res->type), "%s", type);
}

/* Fills sp for step st: its own, or (the built-in journey) from the
 * command: props.template, props.purpose (default marketing),
 * props.channel then props.fallback (channels in order; default
 * preferred). -1 with the reason in res->note when the command lacks a
 * template. */
static int send_spec(const struct journey *jn, const struct step *st,
                     const msgpack_object *data, struct send *sp,
                     og__step_result_t *res)
{
    const msgpack_object *o;
    char *const *v = st->channels ? st->channels : jn->channels;
    size_t n = 0, i;

    memset(sp, 0, sizeof(*sp));
    if (!jn->builtin) {
        sp->tmpl = st->arg;
        sp->purpose = jn->purpose;
        for (i = 0; v[i] != NULL && n < 17; i++)
            sp->cands[n++] = v[i];
        return 0;
    }
    if ((sp->tmpl = str_at(data, "event.props.template", sp->buf[16],
                           sizeof(sp->buf[16]))) == NULL) {
        note_add(res->note, sizeof(res->note),
                 "message.send without props.template");
        return -1;
    }
    sp->purpose = "marketing";
    if (og__obj_lookup(data, "event.props.purpose", &o) == OG_OK &&
        o->type == MSGPACK_OBJECT_STR && o->via.str.size == 13 &&
        memcmp(o->via.str.ptr, "transactional", 13) == 0)
        sp->purpose = "transactional";
    if (str_at(data, "event.props.channel", sp->buf[0], sizeof(sp->buf[0])))
        sp->cands[n++] = sp->buf[0];
    if (og__obj_lookup(data, "event.props.fallback", &o) == OG_OK &&
        o->type == MSGPACK_OBJECT_ARRAY)
        for (i = 0; i < o->via.array.size && n < 16; i++) {
            const msgpack_object *e = &o->via.array.ptr[i];

            if (e->type != MSGPACK_OBJECT_STR || e->via.str.size == 0 ||
                e->via.str.size >= sizeof(sp->buf[0]))
                continue;
            memcpy(sp->buf[n], e->via.str.ptr, e->via.str.size);
            sp->buf[n][e->via.str.size] = '\0';
            sp->cands[n] = sp->buf[n];
            n++;
        }
    if (n == 0)
        sp->cands[n++] = "preferred";
    return 0;
}

/* Sends the step's message: renders the template for the channel chosen
 * and makes a message.send for it. */
static void act_send(const og__journeys_t *js, const struct journey *jn,
                     const struct step *st, const og__fire_env_t *env,
                     const og__run_t *run, const msgpack_object *data,
                     uint64_t now, og__step_result_t *res)
{
    char why[512], addr[300] = "", conv[72];
    struct send sp;
    const og__chconf_t *ch;
    og__message_t m;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t nprops = 7, ntried = strlen(run->tried);

    if (send_spec(jn, st, data, &sp, res) != 0)
        return;
    ch = choose(js, jn, &sp, env, run, res->customer, data, now, addr,
                sizeof(addr), res);
    if (ch == NULL) {
        note_add(res->note, sizeof(res->note), "no channel to send '%s' on",
                 sp.tmpl);
        return;
    }
    if (og__templates_render(js->ts, sp.tmpl, ch->name, data, &m, why,
                             sizeof(why)) != OG_OK) {
        note_add(res->note, sizeof(res->note), "template '%s': %s", sp.tmpl,
                 why);
        return;
    }
    nprops += (m.subject.p != NULL) + (m.text.p != NULL) + (m.html.p != NULL) +
              (addr[0] != '\0') + (ntried > 0);
    snprintf(res->id, sizeof(res->id), "j%lld.%d.%s", (long long)run->id,
             run->step, ch->name);
    if (strlen(res->id) > 64)
        snprintf(res->id, sizeof(res->id), "j%lld.%d.%zu", (long long)run->id,
                 run->step, ntried);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_head(&pk, 1, "message.send", res->id, now, res->customer, run,
              str_at(data, "event.conversation", conv, sizeof(conv)));
    if (str_at(data, "event.conversation", conv, sizeof(conv)) != NULL)
        snprintf(res->conversation, sizeof(res->conversation), "%s", conv);
    PSTR(&pk, "props");
    msgpack_pack_map(&pk, nprops);
    pack_kv(&pk, "template", sp.tmpl);
    pack_kv(&pk, "channel", ch->name);
    pack_kv(&pk, "purpose", sp.purpose);
    pack_origin(&pk, run);
    PSTR(&pk, "truncated");
    if (m.truncated)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    if (addr[0] != '\0')
        pack_kv(&pk, "to", addr);
    if (ntried > 0)
        pack_kv(&pk, "tried", run->tried);
    if (m.subject.p != NULL)
        pack_sbuf(&pk, "subject", &m.subject);
    if (m.text.p != NULL)
        pack_sbuf(&pk, "text", &m.text);
    if (m.html.p != NULL)
        pack_sbuf(&pk, "html", &m.html);
    og__message_free(&m);
    take(res, &sb, "message.send");
    res->targets[0] = ch->name;
    res->ntargets = 1;
    snprintf(res->channel, sizeof(res->channel), "%s", ch->name);
    note_add(res->note, sizeof(res->note), "sent '%s' on %s", sp.tmpl,
             ch->name);
}

static int origin_key(const msgpack_object *k)
{
    static const char *const keys[] = {"journey", "run", "step"};
    size_t i;

    if (k->type != MSGPACK_OBJECT_STR)
        return 0;
    for (i = 0; i < OG__ARRAY_SIZE(keys); i++)
        if (k->via.str.size == strlen(keys[i]) &&
            memcmp(k->via.str.ptr, keys[i], k->via.str.size) == 0)
            return 1;
    return 0;
}

/* emit, set and call: an event with the trigger's entity and props. */
static void act_event(const struct step *st, const og__run_t *run,
                      const msgpack_object *data, uint64_t now,
                      og__step_result_t *res)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const msgpack_object *props = NULL, *entity = NULL;
    const char *type = st->action == A_EMIT   ? st->arg
                       : st->action == A_CALL ? st->type
                                              : "customer.updated";

    og__journeys_event_id(res->id, run->id, run->step);
    og__obj_lookup(data, "event.props", &props);
    og__obj_lookup(data, "event.entity", &entity);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_head(&pk, 1 + (entity != NULL), type, res->id, now, res->customer, run,
              NULL);
    if (entity != NULL) {
        PSTR(&pk, "entity");
        msgpack_pack_object(&pk, *entity);
    }
    PSTR(&pk, "props");
    if (st->action == A_SET) {
        msgpack_pack_map(&pk, 4);
        pack_origin(&pk, run);
        PSTR(&pk, "traits");
        msgpack_sbuffer_write(&sb, (const char *)st->traits, st->traits_len);
        res->traits = st->traits;
        res->traits_len = st->traits_len;
        note_add(res->note, sizeof(res->note), "set trait %s", st->trait);
    } else {
        size_t np = props != NULL && props->type == MSGPACK_OBJECT_MAP
                        ? props->via.map.size
                        : 0,
               i, keep = 0;

        for (i = 0; i < np; i++)
            keep += !origin_key(&props->via.map.ptr[i].key);
        msgpack_pack_map(&pk, 3 + keep);
        pack_origin(&pk, run);
        for (i = 0; i < np; i++) { /* the trigger's own, ours aside */
            const msgpack_object_kv *kv = &props->via.map.ptr[i];

            if (origin_key(&kv->key))
                continue;
            msgpack_pack_object(&pk, kv->key);
            msgpack_pack_object(&pk, kv->val);
        }
        if (st->action == A_CALL) {
            res->targets[0] = st->arg;
            res->ntargets = 1;
            note_add(res->note, sizeof(res->note), "called %s (%s)", st->arg,
                     type);
        } else {
            note_add(res->note, sizeof(res->note), "emitted %s", type);
        }
    }
    take(res, &sb, type);
}

og_err_t og__journeys_fire(const og__journeys_t *js, const og__fire_env_t *env,
                           const og__run_t *run, uint64_t now,
                           og__step_result_t *res)
{
    const struct journey *jn = journey_of(js, run->journey);
    const struct step *st;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone zone;
    msgpack_object data;
    size_t off = 0;
    char why[256];
    int profile;

    memset(res, 0, sizeof(*res));
    if (jn == NULL || !jn->enabled)
        return OG_ERR_NOT_FOUND;
    res->state = OG__RUN_ACTIVE;
    res->step = run->step;
    res->waited = run->waited;
    res->due_ms = run->due_ms;
    snprintf(res->tried, sizeof(res->tried), "%s", run->tried);
    if (run->step < 0 || (size_t)run->step >= jn->nsteps) {
        res->state = OG__RUN_COMPLETED;
        snprintf(res->note, sizeof(res->note), "no step %d: completed",
                 run->step + 1);
        return OG_OK;
    }
    st = &jn->steps[run->step];

    /* The data the step sees: {customer, event, journey}. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    PSTR(&pk, "customer");
    profile = env->profile(env->st, run->customer, &pk, res->customer);
    if (profile != 0) {
        msgpack_sbuffer_destroy(&sb);
        res->state = OG__RUN_CANCELLED;
        snprintf(res->note, sizeof(res->note), "the customer no longer exists");
        return OG_OK;
    }
    PSTR(&pk, "event");
    msgpack_sbuffer_write(&sb, (const char *)run->trigger, run->trigger_len);
    PSTR(&pk, "journey");
    msgpack_pack_map(&pk, 4);
    pack_kv(&pk, "name", run->journey);
    pack_kv(&pk, "correlation", run->correlation);
    PSTR(&pk, "run");
    msgpack_pack_int64(&pk, run->id);
    PSTR(&pk, "step");
    msgpack_pack_int(&pk, run->step + 1);
    msgpack_zone_init(&zone, 4096);
    if (msgpack_unpack(sb.data, sb.size, &off, &zone, &data) !=
        MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(&sb);
        res->state = OG__RUN_EXITED;
        snprintf(res->note, sizeof(res->note), "unreadable trigger event");
        return OG_OK;
    }

    if (!run->waited) { /* the wait starts now */
        if (st->until != NULL)
            res->due_ms = until_due(st, now);
        else if (wait_end(jn, st, &data, now, &res->due_ms, why, sizeof(why)) !=
                 OG_OK) {
            res->due_ms = now + st->wait_ms;
            snprintf(res->note, sizeof(res->note), "at: %s", why);
        }
        res->waited = 1;
        if (res->due_ms > now)
            goto out;
    }
    if (st->until != NULL && run->waited != 2) { /* the longest wait ran out */
        res->state = OG__RUN_EXITED;
        snprintf(res->note, sizeof(res->note),
                 "step %s: %s did not come in time", st->sc->name,
                 st->until[0]);
        goto out;
    }
    if (st->action == A_SEND && jn->quiet_start >= 0) {
        char zb[128];
        const char *zone_name = zone_of(jn, &data, zb, sizeof(zb));
        int minute;

        if (og__tz_minute(zone_name, now, &minute, why, sizeof(why)) == OG_OK &&
            in_quiet(minute, jn->quiet_start, jn->quiet_end) &&
            og__tz_next(zone_name, now, jn->quiet_end, &res->due_ms, why,
                        sizeof(why)) == OG_OK) {
            snprintf(res->note, sizeof(res->note),
                     "quiet hours in %s: waits until %02d:%02d", zone_name,
                     jn->quiet_end / 60, jn->quiet_end % 60);
            goto out;
        }
    }
    if (!og__conds_match_obj(st->conds, st->nconds, &data)) {
        res->state = OG__RUN_EXITED;
        snprintf(res->note, sizeof(res->note), "step %s: condition not met",
                 st->sc->name);
        goto out;
    }
    snprintf(res->note, sizeof(res->note), "step %s: ", st->sc->name);
    switch (st->action) {
    case A_SEND: act_send(js, jn, st, env, run, &data, now, res); break;
    case A_EMIT:
    case A_SET:
    case A_CALL: act_event(st, run, &data, now, res); break;
    case A_NONE: note_add(res->note, sizeof(res->note), "waited"); break;
    }
    /* the next step, its wait counted from now */
    res->tried[0] = '\0';
    res->step = run->step + 1;
    if ((size_t)res->step >= jn->nsteps) {
        res->state = OG__RUN_COMPLETED;
    } else if (jn->steps[res->step].at < 0 ||
               wait_end(jn, &jn->steps[res->step], &data, now, &res->due_ms,
                        why, sizeof(why)) != OG_OK) {
        res->due_ms = until_due(&jn->steps[res->step], now);
        res->waited = 1;
    } else {
        res->waited = 1;
    }
out:
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    return OG_OK;
}
