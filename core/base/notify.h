/*
 * notify.h: the systemd readiness protocol (sd_notify(3)) without
 * libsystemd: one datagram to $NOTIFY_SOCKET. See
 * docs/decisions/0007-sd-notify.md.
 */
#ifndef OG_CORE_NOTIFY_H
#define OG_CORE_NOTIFY_H

/* Sends state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...") when
 * the service manager asked for it; a no-op otherwise. Returns 1 when
 * sent, 0 when not asked, -1 on error. */
int og__notify(const char *state);

#endif /* OG_CORE_NOTIFY_H */
