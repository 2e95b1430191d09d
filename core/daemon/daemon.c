/*
 * daemon.c: the omnigated process.
 *
 * Start-up validates the whole configuration (including every plugin's
 * [config] keys) before anything is initialised. Each channel runs in a
 * slot; a reload (SIGHUP) loads and validates the new configuration first,
 * then stops, starts or restarts only the slots whose fingerprint changed.
 * Accepted events are routed and handed to the durable pipeline
 * (durable.c), which commits them with their deliveries and feeds the
 * channels.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "pipeline/durable.h"
#include "net/http_server.h"
#include "host/isolate.h"
#include "base/notify.h"
#include "base/log.h"
#include "domain/journeys.h"
#include "pipeline/router.h"
#include "domain/templates.h"
#include "base/util.h"

#define MAX_TARGETS 64
#define LOOKUP_CACHE_SIZE 16

/* One configured, enabled channel. */
struct slot {
    char *name;
    char *plugin;
    char *fingerprint;
    int required;
    og_plugin_ctx_t *inst;      /* NULL when failed */
    char error[512];            /* why it failed */
    og__chconf_t *restart_with; /* start this once inst has stopped */
    struct slot *next;
};

struct og__daemon_s {
    uv_loop_t loop;
    og__core_t core;
    og__conf_t *conf;
    char *conf_path;
    char *plugin_dir;
    char *state_dir; /* --state-dir, or NULL */
    og__router_t *router;
    og__journeys_t *journeys; /* of conf */
    int test_clock;
    struct slot *slots;

    og__durable_t *dur;
    uint64_t unrouted;

    og__http_server_t *pub; /* public listener (plugin routes) */
    og__http_server_t *adm; /* admin listener */
    uv_signal_t sig_term, sig_int, sig_hup;
    /* Loop lag: a timer every LAG_TICK_MS notes how late it ran. */
    uv_timer_t lag_timer;
    uint64_t lag_expected;   /* uv_now() the tick was due */
    uint64_t lag_max_ms;     /* the worst lateness of this window */
    uint64_t lag_prev_ms;    /* ... of the previous window */
    uint64_t lag_window_end; /* uv_now() this window ends */
    unsigned fd_ticks;
    uint64_t fd_full_ms; /* descriptors last seen exhausted, ms since epoch */
    uint64_t fd_logged;  /* uv_now() of that log line */
    uint64_t gen;        /* bumped when channels or routes change */
    uint64_t cache_gen;  /* generation the lookup cache belongs to */
    const char *cache_name[LOOKUP_CACHE_SIZE];
    og_plugin_ctx_t *cache_inst[LOOKUP_CACHE_SIZE];
    int shutting_down;
    size_t stopping; /* instances still stopping */
    int exit_code;
};

static void notify(const char *state)
{
    if (og__notify(state) < 0)
        og__log(OG_LOG_WARNING, NULL,
                "cannot notify the service manager "
                "(%s): %s",
                state, strerror(errno));
}

/* ---- dispatch ------------------------------------------------------- */

/*
 * Target lookups are cached by the router's name pointer (stable until the
 * router is rebuilt) and invalidated whenever a channel starts, stops or
 * the router changes (d->gen), so routing does not compare names for
 * every event.
 */
/* The instance of the channel called name, whatever its state. */
static og_plugin_ctx_t *find_instance(og__daemon_t *d, const char *name)
{
    struct slot *s;

    for (s = d->slots; s != NULL; s = s->next)
        if (s->inst != NULL && strcmp(s->name, name) == 0)
            return s->inst;
    return NULL;
}

/* The instance of channel name if it takes deliveries (running or
 * finishing its stop), through the lookup cache. */
static og_plugin_ctx_t *find_running(og__daemon_t *d, const char *name)
{
    size_t h = ((uintptr_t)name >> 4) % LOOKUP_CACHE_SIZE;
    og_plugin_ctx_t *inst;

    if (d->cache_gen != d->gen) {
        memset(d->cache_name, 0, sizeof(d->cache_name));
        d->cache_gen = d->gen;
    }
    if (d->cache_name[h] != name) {
        d->cache_name[h] = name;
        d->cache_inst[h] = find_instance(d, name);
    }
    inst = d->cache_inst[h];
    return inst != NULL && inst->st == OG__INST_RUNNING ? inst : NULL;
}

static og_plugin_ctx_t *find_for_durable(void *data, const char *channel)
{
    return find_running(data, channel);
}

/* Routes an accepted event and hands it to the durable pipeline. Targets
 * are the enabled channels the routes name (running or not: a channel
 * that is down gets its deliveries when it is back). */
static og_err_t enqueue(void *data, og_plugin_ctx_t *from, og_event_t *ev,
                        og__committed_cb cb, void *cbdata)
{
    og__daemon_t *d = data;
    const char *targets[MAX_TARGETS];
    size_t n;

    (void)from;
    n = og__router_targets(d->router, ev, targets, MAX_TARGETS);
    if (n > MAX_TARGETS)
        n = MAX_TARGETS;
    if (n == 0)
        d->unrouted++;
    return og__durable_submit(d->dur, ev, targets, n, cb, cbdata);
}

static og_err_t enqueue_group(void *data, og_plugin_ctx_t *from,
                              og_event_t *const *evs, size_t n,
                              og__committed_cb cb, void *const *cbdata)
{
    og__daemon_t *d = data;
    const char **targets = og__xcalloc(n * MAX_TARGETS + 1, sizeof(char *));
    const char ***per = og__xcalloc(n + 1, sizeof(*per));
    size_t *counts = og__xcalloc(n + 1, sizeof(*counts)), i;
    og_err_t rc;

    (void)from;
    for (i = 0; i < n; i++) {
        per[i] = targets + i * MAX_TARGETS;
        counts[i] = og__router_targets(d->router, evs[i], per[i], MAX_TARGETS);
        if (counts[i] > MAX_TARGETS)
            counts[i] = MAX_TARGETS;
        if (counts[i] == 0)
            d->unrouted++;
    }
    rc = og__durable_submit_group(
        d->dur, evs, n, (const char *const *const *)per, counts, cb, cbdata);
    free(targets);
    free(per);
    free(counts);
    return rc;
}

static void delivered(void *data, og_plugin_ctx_t *inst, og_event_t *ev,
                      int64_t row, uint32_t attempts, og_err_t rc,
                      const char *reason, uint64_t retry_after_ms)
{
    og__daemon_t *d = data;

    og__durable_result(d->dur, inst, ev, row, attempts, rc, reason,
                       retry_after_ms);
}

/* ---- channel slots -------------------------------------------------- */

static int cmp_opt(const void *a, const void *b)
{
    return strcmp(((const og__opt_t *)a)->key, ((const og__opt_t *)b)->key);
}

/* Everything that, when changed, requires the instance to restart. */
static char *fingerprint(const og__conf_t *conf, const og__chconf_t *ch)
{
    char *path = og__plugin_path(conf->plugin_dir, ch->plugin);
    og__opt_t *opts = og__xcalloc(ch->nopts, sizeof(*opts));
    struct stat st;
    char *fp, *next;
    size_t i;

    memset(&st, 0, sizeof(st));
    stat(path, &st);
    fp = og__xasprintf("%s|%s|%d|%d.%llu.%llu|%lld|%lld|%lu|%lu|%lld.%ld",
                       ch->plugin, path, ch->required, ch->isolated,
                       (unsigned long long)ch->memory_limit,
                       (unsigned long long)ch->heartbeat_ms,
                       (long long)ch->queue_max, (long long)ch->max_inflight,
                       (unsigned long)st.st_dev, (unsigned long)st.st_ino,
                       (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    if (ch->nopts > 0) {
        memcpy(opts, ch->opts, ch->nopts * sizeof(*opts));
        qsort(opts, ch->nopts, sizeof(*opts), cmp_opt);
    }
    for (i = 0; i < ch->nopts; i++) {
        next = og__xasprintf("%s|%s=%s", fp, opts[i].key, opts[i].value);
        free(fp);
        fp = next;
    }
    free(opts);
    free(path);
    return fp;
}

static struct slot *slot_find(og__daemon_t *d, const char *name)
{
    struct slot *s;

    for (s = d->slots; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/*
 * Loads, initialises and starts a channel into slot s. Returns 0, or -1
 * when it failed (s->error says why).
 */
static int slot_start(og__daemon_t *d, struct slot *s, const og__chconf_t *ch)
{
    char *path = og__plugin_path(d->conf->plugin_dir, ch->plugin);
    og__plugin_t *p;
    og_plugin_ctx_t *inst;

    s->error[0] = '\0';
    p = og__plugin_open(path, s->error, sizeof(s->error));
    free(path);
    if (p == NULL)
        goto failed;
    inst = og__instance_create_with(&d->core, p,
                                    ch->isolated ? &og__isolate_ops : NULL, ch,
                                    s->error, sizeof(s->error));
    if (inst == NULL)
        goto failed;
    if (og__instance_start(inst) != OG_OK) {
        snprintf(s->error, sizeof(s->error), "%s", inst->last_error);
        og__instance_free(inst);
        goto failed;
    }
    s->inst = inst;
    d->gen++;
    og__durable_kick(d->dur);
    og__log(OG_LOG_INFO, s->name, "started (plugin %s %s, ABI %u.%u%s)",
            p->def->name, p->def->version ? p->def->version : "?",
            p->def->abi_major, p->def->abi_minor,
            ch->isolated ? ", in a process of its own" : "");
    return 0;
failed:
    og__log(s->required ? OG_LOG_ERROR : OG_LOG_WARNING, s->name,
            "channel failed%s: %s",
            s->required ? "" : ", continuing without it", s->error);
    return -1;
}

static void slot_free(struct slot *s)
{
    if (s->restart_with != NULL) {
        og__chconf_free(s->restart_with);
        free(s->restart_with);
    }
    free(s->name);
    free(s->plugin);
    free(s->fingerprint);
    free(s);
}

static void slot_unlink(og__daemon_t *d, struct slot *s)
{
    struct slot **pp;

    for (pp = &d->slots; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

static void maybe_exit(og__daemon_t *d);

/* An instance finished stopping: free it, then restart or drop the slot. */
static void on_slot_stopped(og_plugin_ctx_t *inst, void *data)
{
    struct slot *s = data;
    og__daemon_t *d = inst->core->emit_data;

    og__instance_free(inst);
    s->inst = NULL;
    d->gen++;
    d->stopping--;
    if (s->restart_with != NULL && !d->shutting_down) {
        og__chconf_t *ch = s->restart_with;

        s->restart_with = NULL;
        slot_start(d, s, ch);
        og__chconf_free(ch);
        free(ch);
    } else if (s->fingerprint == NULL || d->shutting_down) {
        /* removed by a reload, or shutting down */
        slot_unlink(d, s);
        slot_free(s);
    }
    maybe_exit(d);
}

static void slot_stop(og__daemon_t *d, struct slot *s)
{
    if (s->inst == NULL || s->inst->st == OG__INST_STOPPING)
        return;
    d->stopping++;
    og__instance_stop(s->inst, d->conf->shutdown_timeout_ms, on_slot_stopped,
                      s);
}

/* ---- configuration -------------------------------------------------- */

/*
 * Checks every enabled channel's [config] keys against its plugin's table.
 * A plugin that does not load is a problem for --check-config
 * (refusal_is_error) and a channel failure, decided at start, otherwise.
 */
static void check_plugins(const og__conf_t *conf, int refusal_is_error,
                          og__errlist_t *errs)
{
    size_t i;

    for (i = 0; i < conf->nchannels; i++) {
        const og__chconf_t *ch = &conf->channels[i];
        char *ppath;
        char why[512];
        og__plugin_t *p;

        if (!ch->enabled || ch->plugin == NULL)
            continue;
        ppath = og__plugin_path(conf->plugin_dir, ch->plugin);
        p = og__plugin_open(ppath, why, sizeof(why));
        free(ppath);
        if (p != NULL) {
            size_t n0 = errs->n;

            og__plugin_check_config(p, ch, errs);
            /* the plugin's own check, once its keys are sound */
            if (errs->n == n0 &&
                og__instance_check(p, ch, why, sizeof(why)) != OG_OK) {
                size_t kl = strcspn(why, ":");
                int line = ch->config_line ? ch->config_line : ch->line;
                size_t k;

                for (k = 0; why[kl] == ':' && k < ch->nopts; k++)
                    if (strlen(ch->opts[k].key) == kl &&
                        strncmp(ch->opts[k].key, why, kl) == 0)
                        line = ch->opts[k].line;
                og__errlist_add(errs, ch->file, line, "plugin '%s': %s",
                                ch->plugin, why);
            }
            og__plugin_close(p);
        } else if (refusal_is_error && ch->required) {
            og__errlist_add(errs, ch->file, ch->plugin_line, "plugin '%s': %s",
                            ch->plugin, why);
        } else if (refusal_is_error) {
            /* as the daemon treats it: it starts without this channel, so
             * a unit's ExecStartPre check must not keep it down (issue 18) */
            og__log(OG_LOG_WARNING, "config",
                    "%s:%d: plugin '%s': %s (required = no: the daemon "
                    "starts without this channel)",
                    ch->file, ch->plugin_line, ch->plugin, why);
        }
    }
}

og__conf_t *og__check_config(const char *path, const char *plugin_dir,
                             og__errlist_t *errs)
{
    size_t n0 = errs->n;
    og__conf_t *conf = og__conf_load_partial(path, plugin_dir, errs);

    check_plugins(conf, 1, errs);
    og__journeys_unref(og__journeys_build(conf, errs)); /* and templates */
    if (errs->n > n0) {
        og__conf_free(conf);
        return NULL;
    }
    return conf;
}

/* Loads the configuration for start-up or reload, with its journeys in
 * *jout. */
static og__conf_t *load_config(og__daemon_t *d, og__journeys_t **jout,
                               og__errlist_t *errs)
{
    size_t n0 = errs->n;
    og__conf_t *conf = og__conf_load(d->conf_path, d->plugin_dir, errs);

    if (conf == NULL)
        return NULL;
    if (d->state_dir != NULL) {
        free(conf->state_dir);
        conf->state_dir = og__xstrdup(d->state_dir);
        if (conf->admin_default) { /* the socket follows the state */
            free(conf->admin_listen);
            conf->admin_listen =
                og__xasprintf("unix:%s/admin.sock", conf->state_dir);
        }
    }
    check_plugins(conf, 0, errs);
    /* Journeys and templates are checked like the rest: a typo in one
     * refuses the configuration instead of reaching a customer. */
    *jout = og__journeys_build(conf, errs);
    if (errs->n > n0) {
        og__journeys_unref(*jout);
        *jout = NULL;
        og__conf_free(conf);
        return NULL;
    }
    return conf;
}

/* Which journeys run (enabled = auto ones wait for their channels). */
static void log_journeys(og__daemon_t *d)
{
    const char **names;
    size_t n = og__journeys_enabled(d->journeys, &names), i;
    og__sbuf_t b = {0};

    for (i = 0; i < n; i++)
        og__sbuf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    if (d->conf->njourneys > 0)
        og__log(OG_LOG_INFO, "journeys", "%zu of %zu enabled%s%s", n,
                d->conf->njourneys, n ? ": " : "", n ? b.p : "");
    og__sbuf_free(&b);
}

static void log_errors(const og__errlist_t *errs)
{
    size_t i;

    for (i = 0; i < errs->n; i++)
        og__log(OG_LOG_ERROR, "config", "%s", errs->v[i]);
}

/* Applies conf (now d->conf) to the slots; returns -1 when a required
 * channel could not start. */
static int apply(og__daemon_t *d, int initial)
{
    struct slot *s, *next;
    size_t i;
    int fatal = 0;

    /* Removed or changed channels stop first. */
    for (s = d->slots; s != NULL; s = next) {
        const og__chconf_t *ch = og__conf_channel(d->conf, s->name);
        char *fp = (ch && ch->enabled) ? fingerprint(d->conf, ch) : NULL;

        next = s->next;
        if (fp != NULL && strcmp(fp, s->fingerprint) == 0 && s->inst != NULL) {
            free(fp);
            continue; /* unchanged and running: untouched */
        }
        free(s->fingerprint);
        s->fingerprint = fp;
        s->required = ch ? ch->required : 0;
        if (ch != NULL) {
            free(s->plugin);
            s->plugin = og__xstrdup(ch->plugin);
        }
        if (fp != NULL) {
            og__log(OG_LOG_INFO, s->name, "configuration changed, %s",
                    s->inst ? "restarting" : "retrying");
            if (s->inst == NULL) {
                if (slot_start(d, s, ch) != 0 && s->required)
                    fatal = 1;
            } else {
                if (s->restart_with != NULL) {
                    og__chconf_free(s->restart_with);
                    free(s->restart_with);
                }
                s->restart_with = og__chconf_dup(ch);
                slot_stop(d, s);
            }
        } else {
            og__log(OG_LOG_INFO, s->name, "channel removed or disabled");
            if (s->inst != NULL) {
                slot_stop(d, s);
            } else {
                slot_unlink(d, s);
                slot_free(s);
            }
        }
    }
    /* New channels start. */
    for (i = 0; i < d->conf->nchannels; i++) {
        const og__chconf_t *ch = &d->conf->channels[i];

        if (!ch->enabled || slot_find(d, ch->name) != NULL)
            continue;
        s = og__xcalloc(1, sizeof(*s));
        s->name = og__xstrdup(ch->name);
        s->plugin = og__xstrdup(ch->plugin);
        s->fingerprint = fingerprint(d->conf, ch);
        s->required = ch->required;
        s->next = d->slots;
        d->slots = s;
        if (!initial)
            og__log(OG_LOG_INFO, s->name, "channel added");
        if (slot_start(d, s, ch) != 0 && s->required)
            fatal = 1;
    }
    og__router_free(d->router);
    d->router = og__router_create(d->conf);
    if (d->dur != NULL) {
        og__durable_set_router(d->dur, d->router);
        og__durable_set_journeys(d->dur, d->journeys);
    }
    d->gen++;
    return fatal ? -1 : 0;
}

static void reload(og__daemon_t *d)
{
    og__errlist_t errs = {NULL, 0};
    og__conf_t *conf;
    og__journeys_t *j = NULL;

    notify("RELOADING=1");
    og__log(OG_LOG_NOTICE, NULL, "SIGHUP: reloading configuration from %s",
            d->conf_path);
    conf = load_config(d, &j, &errs);
    if (conf == NULL) {
        log_errors(&errs);
        og__log(OG_LOG_ERROR, NULL,
                "reload refused: the new configuration "
                "has %zu problem(s); still running the previous one",
                errs.n);
        og__errlist_free(&errs);
        notify("READY=1");
        return;
    }
    og__errlist_free(&errs);
    if (strcmp(conf->public_listen, d->conf->public_listen) != 0 ||
        strcmp(conf->admin_listen, d->conf->admin_listen) != 0 ||
        strcmp(conf->state_dir, d->conf->state_dir) != 0 ||
        conf->durability_power != d->conf->durability_power)
        og__log(OG_LOG_WARNING, NULL,
                "listen addresses, state_dir and durability take effect at "
                "the next restart");
    og__conf_free(d->conf);
    d->conf = conf;
    og__journeys_unref(d->journeys);
    d->journeys = j;
    log_journeys(d);
    og__log_set_level(conf->log_level);
    d->core.max_event_bytes = (size_t)conf->max_event_bytes;
    og__durable_configure(d->dur, conf);
    if (apply(d, 0) != 0)
        og__log(OG_LOG_ERROR, NULL, "a required channel failed after reload");
    og__log(OG_LOG_NOTICE, NULL, "configuration reloaded");
    notify("READY=1");
}

/* ---- shutdown ------------------------------------------------------- */

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

#define LAG_TICK_MS 500
#define LAG_WINDOW_MS 60000

/* How late the loop ran this tick: a loop kept busy (a slow plugin
 * callback, a blocking call) shows here, and /health says so. */
static void on_lag_tick(uv_timer_t *t)
{
    og__daemon_t *d = t->data;
    uint64_t now = uv_now(&d->loop);
    uint64_t late = now > d->lag_expected ? now - d->lag_expected : 0;

    if (now >= d->lag_window_end) {
        d->lag_prev_ms = d->lag_max_ms;
        d->lag_max_ms = 0;
        d->lag_window_end = now + LAG_WINDOW_MS;
    }
    if (late > d->lag_max_ms)
        d->lag_max_ms = late;
    /* Descriptors: libuv accepts and drops connections it has no
     * descriptor for without telling, so the count is watched here, every
     * few ticks; near the limit is exhaustion (logged once a minute). */
    if (++d->fd_ticks % 4 == 0) {
        struct rlimit rl;
        unsigned n = og__open_fds();

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && n > 0 &&
            (rlim_t)n + 8 >= rl.rlim_cur) {
            d->fd_full_ms = og__now_ms();
            if (d->fd_logged == 0 || now - d->fd_logged >= 60000) {
                d->fd_logged = now;
                og__log(OG_LOG_ERROR, NULL,
                        "file descriptors exhausted: %u open, limit %llu "
                        "(new connections are dropped; raise LimitNOFILE or "
                        "lower max_connections)",
                        n, (unsigned long long)rl.rlim_cur);
            }
        }
    }
    if (late >= 1000)
        og__log(OG_LOG_WARNING, NULL,
                "the event loop was stalled for %llu ms (a plugin callback "
                "or a blocking call)",
                (unsigned long long)late);
    d->lag_expected = now + LAG_TICK_MS;
}

static void store_closed(void *data)
{
    (void)data;
}

static void maybe_exit(og__daemon_t *d)
{
    if (d->shutting_down != 1 || d->stopping > 0)
        return;
    d->shutting_down = 2; /* handles closing */
    uv_close((uv_handle_t *)&d->sig_term, close_cb);
    uv_close((uv_handle_t *)&d->sig_int, close_cb);
    uv_close((uv_handle_t *)&d->sig_hup, close_cb);
    uv_close((uv_handle_t *)&d->lag_timer, close_cb);
    /* Every channel has stopped: the last round records their results. */
    if (d->dur != NULL)
        og__durable_close(d->dur, store_closed, d);
    d->core.http_public = NULL;
    og__http_server_close(d->pub);
    og__http_server_close(d->adm);
    d->pub = d->adm = NULL;
    og__http_destroy(d->core.http);
    d->core.http = NULL;
}

static void shutdown_start(og__daemon_t *d, int signum)
{
    struct slot *s, *next;

    if (d->shutting_down) {
        og__log(OG_LOG_NOTICE, NULL, "already stopping");
        return;
    }
    notify("STOPPING=1");
    og__log(OG_LOG_NOTICE, NULL, "%s: stopping (timeout %llu ms)",
            strsignal(signum),
            (unsigned long long)d->conf->shutdown_timeout_ms);
    d->shutting_down = 1;
    d->core.stopping = 1; /* new emits answer OG_ERR_STOPPING */
    /* No new connections on the public listener; requests in flight are
     * answered before their connections close. Channels unmount their
     * routes as they stop; the server is closed once all have. */
    og__http_server_drain(d->pub);
    d->stopping++; /* no exit while this loop runs */
    for (s = d->slots; s != NULL; s = next) {
        next = s->next;
        if (s->inst != NULL && s->inst->st != OG__INST_STOPPING) {
            slot_stop(d, s);
        } else if (s->inst == NULL) {
            slot_unlink(d, s);
            slot_free(s);
        }
    }
    d->stopping--;
    maybe_exit(d);
}

static void on_signal(uv_signal_t *h, int signum)
{
    og__daemon_t *d = h->data;

    if (signum == SIGHUP) {
        if (!d->shutting_down)
            reload(d);
        return;
    }
    shutdown_start(d, signum);
}

void og__daemon_foreach_channel(og__daemon_t *d,
                                void (*fn)(void *data,
                                           const og__chan_status_t *st),
                                void *data)
{
    struct slot *s;

    for (s = d->slots; s != NULL; s = s->next) {
        og__chan_status_t st;

        if (s->fingerprint == NULL)
            continue; /* removed, still stopping */
        st.name = s->name;
        st.plugin = s->plugin ? s->plugin : "";
        st.required = s->required;
        st.inst = s->inst;
        st.error = s->inst ? "" : s->error;
        fn(data, &st);
    }
}

og__durable_t *og__daemon_durable(og__daemon_t *d)
{
    return d->dur;
}

void og__daemon_stats(og__daemon_t *d, og__daemon_stats_t *st)
{
    st->unrouted = d->unrouted;
    st->stopping = d->shutting_down != 0;
    st->public_connections = d->pub ? og__http_server_connections(d->pub) : 0;
    st->admin_connections = d->adm ? og__http_server_connections(d->adm) : 0;
    st->loop_lag_ms =
        d->lag_max_ms > d->lag_prev_ms ? d->lag_max_ms : d->lag_prev_ms;
    st->accept_failures = 0;
    st->accept_failed_ms = 0;
    st->accept_error[0] = '\0';
    {
        og__http_server_t *ls[2] = {d->pub, d->adm};
        size_t i;

        for (i = 0; i < 2; i++) {
            uint64_t at = 0;
            char why[64];

            if (ls[i] == NULL)
                continue;
            st->accept_failures +=
                og__http_server_accept_failed(ls[i], &at, why, sizeof(why));
            if (at > st->accept_failed_ms) {
                st->accept_failed_ms = at;
                snprintf(st->accept_error, sizeof(st->accept_error), "%s", why);
            }
        }
    }
    st->state_dir = d->conf ? d->conf->state_dir : NULL;
    if (d->fd_full_ms > st->accept_failed_ms) {
        st->accept_failed_ms = d->fd_full_ms;
        snprintf(st->accept_error, sizeof(st->accept_error),
                 "file descriptors exhausted");
    }
}

/* Opens one listener; logs and returns -1 when it cannot. */
static og__http_server_t *listen_on(og__daemon_t *d, const char *name,
                                    const char *addr)
{
    og__http_limits_t lim;
    og__http_server_t *s;
    char err[256];

    og__http_limits_default(&lim);
    lim.max_header_bytes = (size_t)d->conf->http_max_header_bytes;
    lim.max_body_bytes = (size_t)d->conf->http_max_body_bytes;
    lim.read_timeout_ms = d->conf->http_read_timeout_ms;
    lim.idle_timeout_ms = d->conf->http_idle_timeout_ms;
    lim.max_connections = (size_t)d->conf->http_max_connections;
    lim.max_client_connections = (size_t)d->conf->http_client_connections;
    lim.client_rate = (unsigned)d->conf->http_client_rate;
    lim.client_burst = lim.client_rate * 2;
    s = og__http_server_create(&d->loop, name, &lim);
    if (og__http_server_listen(s, addr, err, sizeof(err)) != 0) {
        og__log(OG_LOG_ERROR, "http", "%s listener: %s", name, err);
        og__http_server_close(s);
        return NULL;
    }
    if (strncmp(addr, "unix:", 5) == 0)
        og__log(OG_LOG_NOTICE, "http", "%s listening on %s", name, addr);
    else
        og__log(OG_LOG_NOTICE, "http", "%s listening on %.*s:%d", name,
                (int)(strrchr(addr, ':') - addr), addr,
                og__http_server_port(s));
    return s;
}

/* Opens the store in the state directory; NULL with the reason logged. */
static og__store_t *open_store(const og__conf_t *conf)
{
    og__store_opts_t o;
    og__store_t *st;
    char err[512];

    o.dir = conf->state_dir;
    o.durability =
        conf->durability_power ? OG__DURABLE_POWER : OG__DURABLE_PROCESS;
    o.dedup_window_ms = conf->dedup_window_ms;
    o.timeline_retention_ms = conf->timeline_retention_ms;
    st = og__store_open_sqlite(&o, err, sizeof(err));
    if (st == NULL)
        og__log(OG_LOG_ERROR, "store", "%s", err);
    else
        og__log(OG_LOG_INFO, "store",
                "%s/state.db (sqlite, schema %d, durability %s)",
                conf->state_dir, st->ops->schema_version(st),
                conf->durability_power ? "power" : "process");
    return st;
}

/* Frees the configuration and the command-line paths. */
static void free_settings(og__daemon_t *d)
{
    og__journeys_unref(d->journeys);
    og__conf_free(d->conf);
    free(d->conf_path);
    free(d->plugin_dir);
    free(d->state_dir);
}

int og__daemon_test_clock(og__daemon_t *d)
{
    return d->test_clock;
}

const og__conf_t *og__daemon_conf(og__daemon_t *d)
{
    return d->conf;
}

int og__daemon_run(const char *conf_path, const char *plugin_dir,
                   const char *state_dir, int test_clock,
                   og__admin_mount_fn admin_mount)
{
    og__daemon_t d;
    og__errlist_t errs = {NULL, 0};
    og__store_t *store;
    char err[256];
    int rc;

    memset(&d, 0, sizeof(d));
    d.conf_path = og__xstrdup(conf_path);
    d.plugin_dir = plugin_dir ? og__xstrdup(plugin_dir) : NULL;
    d.state_dir = state_dir ? og__xstrdup(state_dir) : NULL;
    d.test_clock = test_clock;
    d.conf = load_config(&d, &d.journeys, &errs);
    if (d.conf == NULL) {
        log_errors(&errs);
        og__log(OG_LOG_ERROR, NULL,
                "not starting: %zu configuration "
                "problem(s)",
                errs.n);
        og__errlist_free(&errs);
        free_settings(&d);
        return OG__EXIT_CONFIG;
    }
    og__log_set_level(d.conf->log_level);
    log_journeys(&d);
    signal(SIGPIPE, SIG_IGN);
    store = open_store(d.conf);
    if (store == NULL) {
        og__log(OG_LOG_ERROR, NULL, "not starting: the store cannot open");
        free_settings(&d);
        return 1;
    }

    uv_loop_init(&d.loop);
    d.dur = og__durable_create(&d.loop, store, d.conf, find_for_durable, &d,
                               err, sizeof(err));
    if (d.dur == NULL) {
        og__log(OG_LOG_ERROR, "store", "%s", err);
        og__store_close(store);
        uv_loop_close(&d.loop);
        free_settings(&d);
        return 1;
    }
    d.core.loop = &d.loop;
    d.core.http = og__http_create(&d.loop);
    d.core.emit = enqueue;
    d.core.emit_group = enqueue_group;
    d.core.emit_data = &d;
    d.core.delivered = delivered;
    d.core.delivered_data = &d;
    d.core.max_event_bytes = (size_t)d.conf->max_event_bytes;
    uv_signal_init(&d.loop, &d.sig_term);
    uv_signal_init(&d.loop, &d.sig_int);
    uv_signal_init(&d.loop, &d.sig_hup);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
    uv_signal_start(&d.sig_term, on_signal, SIGTERM);
    uv_signal_start(&d.sig_int, on_signal, SIGINT);
    uv_signal_start(&d.sig_hup, on_signal, SIGHUP);
    uv_timer_init(&d.loop, &d.lag_timer);
    d.lag_timer.data = &d;
    d.lag_expected = uv_now(&d.loop) + LAG_TICK_MS;
    d.lag_window_end = uv_now(&d.loop) + LAG_WINDOW_MS;
    uv_timer_start(&d.lag_timer, on_lag_tick, LAG_TICK_MS, LAG_TICK_MS);
    uv_unref((uv_handle_t *)&d.lag_timer);

    d.pub = listen_on(&d, "public", d.conf->public_listen);
    d.adm = listen_on(&d, "admin", d.conf->admin_listen);
    if (d.pub == NULL || d.adm == NULL) {
        d.exit_code = 1;
        shutdown_start(&d, SIGTERM);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        goto out;
    }
    admin_mount(d.adm, &d);
    d.core.http_public = d.pub;
    og__log(OG_LOG_NOTICE, NULL,
            "omnigated %s (plugin ABI %d.%d) starting "
            "with %s",
            PACKAGE_VERSION, OG_SDK_ABI_MAJOR, OG_SDK_ABI_MINOR,
            d.conf->main_file);
    if (apply(&d, 1) != 0) {
        og__log(OG_LOG_ERROR, NULL, "a required channel failed: exiting");
        d.exit_code = OG__EXIT_CONFIG;
        shutdown_start(&d, SIGTERM);
    } else {
        og__log(OG_LOG_NOTICE, NULL, "ready");
        notify("READY=1");
    }
    uv_run(&d.loop, UV_RUN_DEFAULT);
out:
    rc = uv_loop_close(&d.loop);
    if (rc != 0) {
        og__log(OG_LOG_ERROR, NULL, "event loop not clean at exit: %s",
                uv_strerror(rc));
        if (d.exit_code == 0)
            d.exit_code = 1;
    }
    og__router_free(d.router);
    og__instance_free_deliveries();
    og__durable_free(d.dur);
    free_settings(&d);
    og__log(OG_LOG_NOTICE, NULL, "exited");
    return d.exit_code;
}
