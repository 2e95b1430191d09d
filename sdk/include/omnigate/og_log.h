/*
 * og_log.h: logging from a plugin.
 */
#ifndef OMNIGATE_OG_LOG_H
#define OMNIGATE_OG_LOG_H

#include <omnigate/og_host.h>

OG_BEGIN_DECLS

/*
 * og_log: log one line for channel instance ctx. The host prefixes the
 * instance name and writes to its log (stderr, the journal under systemd).
 * fmt and its arguments are borrowed for the call. Do not log secrets or
 * unmasked customer data. Loop thread only.
 */
static inline void og_log(og_plugin_ctx_t *ctx, og_log_level_t level,
                          const char *fmt, ...) OG_PRINTF(3, 4);
static inline void og_log(og_plugin_ctx_t *ctx, og_log_level_t level,
                          const char *fmt, ...)
{
    va_list ap;

    if (!OG_HOST_HAS(vlog))
        return;
    va_start(ap, fmt);
    og__host->vlog(ctx, level, fmt, ap);
    va_end(ap);
}

OG_END_DECLS

#endif /* OMNIGATE_OG_LOG_H */
