/*
 * plugin.h: loading plugin shared objects and checking their descriptors.
 */
#ifndef OG_CORE_PLUGIN_H
#define OG_CORE_PLUGIN_H

#include <sys/types.h>

#include <omnigate/og_plugin.h>

#include "config/conf.h"

/* Size of og_plugin_def_t in ABI 1.0: shorter descriptors are refused. */
#define OG__PLUGIN_DEF_SIZE_1_0                                                \
    (offsetof(og_plugin_def_t, destroy) + sizeof(void (*)(void *)))

typedef struct og__plugin_s {
    char *path;
    void *handle; /* dlopen handle */
    const og_plugin_def_t *def;
    dev_t dev; /* identity of the file when loaded, */
    ino_t ino; /* to notice a replaced .so on reload */
    long long mtime_ns;
} og__plugin_t;

/* The host table given to every plugin. */
extern const og_host_api_t og__host_api;

/* The path of plugin name in dir ("dir/name.so"); caller frees. */
char *og__plugin_path(const char *dir, const char *name);

/*
 * og__plugin_open: check the file and its directory (regular file, owned by
 * root or the daemon's user, not writable by group or others), dlopen it,
 * call its entry and check the descriptor. On refusal returns NULL and
 * writes one line naming the file, what was expected and what was found.
 */
og__plugin_t *og__plugin_open(const char *path, char *errbuf, size_t errlen);
void og__plugin_close(og__plugin_t *p);

/*
 * og__plugin_check_config: validate a channel's [config] keys against the
 * plugin's table: unknown keys, wrong types, bounds, missing required keys.
 */
void og__plugin_check_config(const og__plugin_t *p, const og__chconf_t *ch,
                             og__errlist_t *errs);

/* The plugin's declaration of key, or NULL. */
const og_config_field_t *og__plugin_field(const og__plugin_t *p,
                                          const char *key);

#endif /* OG_CORE_PLUGIN_H */
