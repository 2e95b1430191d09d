/*
 * og_common.h: portability and visibility macros shared by all SDK headers.
 */
#ifndef OMNIGATE_OG_COMMON_H
#define OMNIGATE_OG_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define OG_BEGIN_DECLS extern "C" {
#define OG_END_DECLS }
#else
#define OG_BEGIN_DECLS
#define OG_END_DECLS
#endif

#if defined(__GNUC__) || defined(__clang__)
/* Marks the one symbol a plugin exports: og_plugin_entry. */
#define OG_EXPORT __attribute__((visibility("default")))
/* Marks plugin-global SDK state that must not leave the plugin's object. */
#define OG_HIDDEN __attribute__((visibility("hidden")))
#define OG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define OG_DEPRECATED(version, msg) __attribute__((deprecated(msg)))
#define OG_UNUSED __attribute__((unused))
#else
#define OG_EXPORT
#define OG_HIDDEN
#define OG_PRINTF(fmt, args)
#define OG_DEPRECATED(version, msg)
#define OG_UNUSED
#endif

/* Size of the error buffers that config validation fills. */
#define OG_ERRBUF_SIZE 256

#endif /* OMNIGATE_OG_COMMON_H */
