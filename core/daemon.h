/*
 * daemon.h: the omnigated process: configuration, channel instances,
 * routing, signals.
 */
#ifndef OG_CORE_DAEMON_H
#define OG_CORE_DAEMON_H

#include "conf.h"
#include "instance.h"

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

/* Runs the daemon until SIGTERM/SIGINT; returns the process exit code. */
int og__daemon_run(const char *conf_path, const char *plugin_dir);

#endif /* OG_CORE_DAEMON_H */
