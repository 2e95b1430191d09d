/*
 * daemon.h: the omnigated process: configuration, channel instances,
 * routing, signals.
 */
#ifndef OG_CORE_DAEMON_H
#define OG_CORE_DAEMON_H

#include "config/conf.h"
#include "host/instance.h"

/* sysexits.h's EX_CONFIG: the configuration is invalid. */
#define OG__EXIT_CONFIG 78

typedef struct og__daemon_s og__daemon_t;

/*
 * og__check_config: load the configuration and every plugin the enabled
 * channels name, validate everything, initialise nothing. Problems are
 * appended to errs. Returns the configuration or NULL.
 */
og__conf_t *og__check_config(const char *path, const char *plugin_dir,
                             og__errlist_t *errs);

/* What the admin API shows of one configured channel. */
typedef struct og__chan_status_s {
    const char *name;
    const char *plugin; /* the configured plugin name */
    int required;
    const og_plugin_ctx_t *inst; /* NULL when the channel failed */
    const char *error;           /* why it failed, "" when it did not */
} og__chan_status_t;

typedef struct og__daemon_stats_s {
    uint64_t unrouted;
    int stopping;
    size_t public_connections;
    size_t admin_connections;
    uint64_t loop_lag_ms;      /* the loop's worst lateness, last 1-2 min */
    uint64_t accept_failures;  /* connections not accepted, ever */
    uint64_t accept_failed_ms; /* the last one (ms since epoch), 0: none */
    char accept_error[64];     /* why */
    const char *state_dir;     /* where the store lives */
} og__daemon_stats_t;

/* Calls fn for every configured, enabled channel. */
void og__daemon_foreach_channel(og__daemon_t *d,
                                void (*fn)(void *data,
                                           const og__chan_status_t *st),
                                void *data);
void og__daemon_stats(og__daemon_t *d, og__daemon_stats_t *st);
/* The durable pipeline (store, outbox, dead letters). */
struct og__durable_s *og__daemon_durable(og__daemon_t *d);

/* The configuration in force (replaced by a reload). */
const og__conf_t *og__daemon_conf(og__daemon_t *d);

/* 1 when the daemon runs with --test-clock. */
int og__daemon_test_clock(og__daemon_t *d);

/* Mounts the admin API's routes on its listener (core/daemon/admin.c's
 * og__admin_mount(); given by main.c, so that the daemon does not depend
 * on the API built over it). */
typedef void (*og__admin_mount_fn)(og__http_server_t *admin, og__daemon_t *d);

/* Runs the daemon until SIGTERM/SIGINT; returns the process exit code.
 * test_clock: the admin API may move the journeys' clock. */
int og__daemon_run(const char *conf_path, const char *plugin_dir,
                   const char *state_dir, int test_clock,
                   og__admin_mount_fn admin_mount);

#endif /* OG_CORE_DAEMON_H */
