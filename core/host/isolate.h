/*
 * isolate.h: isolation = process, the daemon's side (docs/isolation.md).
 *
 * og__isolate_ops is run in place of a plugin's own init/start/send/stop/
 * destroy (og__instance_create_with()): it starts the plugin in a host
 * process of its own (omnigate-plugin-host, core/host/plugin_host.c), hands it
 * deliveries and HTTP requests over a socketpair, and takes its events,
 * results, metrics and routes back. When the process crashes, aborts,
 * hangs (an unanswered heartbeat) or grows past memory_limit, it is
 * killed if need be, its deliveries in flight go back to the queue as
 * transient failures and it is started again with backoff, while the
 * daemon and every other channel go on.
 */
#ifndef OG_CORE_ISOLATE_H
#define OG_CORE_ISOLATE_H

#include <omnigate/og_plugin.h>

extern const og_plugin_def_t og__isolate_ops;

/* The host program's path: OMNIGATE_PLUGIN_HOST, else the one next to the
 * running daemon (a build tree), else the installed one. Static storage. */
const char *og__isolate_host_path(void);

#endif /* OG_CORE_ISOLATE_H */
