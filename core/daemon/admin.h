/*
 * admin.h: the admin API on the admin listener: GET /health, GET /metrics
 * (Prometheus text format), GET /v1/channels (JSON).
 */
#ifndef OG_CORE_ADMIN_H
#define OG_CORE_ADMIN_H

#include "daemon/daemon.h"
#include "net/http_server.h"

void og__admin_mount(og__http_server_t *admin, og__daemon_t *d);

#endif /* OG_CORE_ADMIN_H */
