/*
 * plugin.c: the plugin loader.
 *
 * Every refusal produces one line that names the file, what the host
 * expected and what it found, so that an operator can act on it without
 * reading code.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/plugin.h"
#include "base/util.h"

char *og__plugin_path(const char *dir, const char *name)
{
    return og__xasprintf("%s/%s.so", dir, name);
}

/* Checks ownership and permissions of a plugin file or its directory. */
static int check_owner(const char *file, const char *subject,
                       const struct stat *st, char *errbuf, size_t errlen)
{
    uid_t me = geteuid();

    if (st->st_uid != 0 && st->st_uid != me) {
        snprintf(errbuf, errlen,
                 "refusing plugin %s: %s owned by uid %u, "
                 "expected root (0) or the daemon's user (%u)",
                 file, subject, (unsigned)st->st_uid, (unsigned)me);
        return -1;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(errbuf, errlen,
                 "refusing plugin %s: %s writable by group "
                 "or others (mode %04o), expected at most 0755; run chmod "
                 "go-w",
                 file, subject, (unsigned)(st->st_mode & 07777));
        return -1;
    }
    return 0;
}

og__plugin_t *og__plugin_open(const char *path, char *errbuf, size_t errlen)
{
    struct stat st, dst;
    char *dcopy, *dir, *real;
    void *handle;
    og_plugin_entry_fn entry;
    const og_plugin_def_t *def;
    og__plugin_t *p;
    int rc;

    /* A symlink is followed first: the file that is loaded and the
     * directory it really lives in are the ones checked. */
    if ((real = realpath(path, NULL)) == NULL) {
        snprintf(errbuf, errlen, "cannot load plugin %s: %s", path,
                 strerror(errno));
        return NULL;
    }
    if (stat(real, &st) != 0) {
        snprintf(errbuf, errlen, "cannot load plugin %s: %s", path,
                 strerror(errno));
        free(real);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(errbuf, errlen,
                 "refusing plugin file %s: expected a regular "
                 "file, found another kind of file",
                 path);
        free(real);
        return NULL;
    }
    dcopy = og__xstrdup(real);
    dir = dirname(dcopy);
    rc = stat(dir, &dst);
    if (rc != 0) {
        snprintf(errbuf, errlen, "cannot load plugin %s: directory %s: %s",
                 path, dir, strerror(errno));
        free(dcopy);
        free(real);
        return NULL;
    }
    {
        char *subject = strcmp(real, path) == 0
                            ? og__xasprintf("its directory %s is", dir)
                            : og__xasprintf("the directory %s of %s, where "
                                            "it links to, is",
                                            dir, real);

        rc = check_owner(path, subject, &dst, errbuf, errlen);
        free(subject);
    }
    free(dcopy);
    if (rc != 0 || check_owner(path, "it is", &st, errbuf, errlen) != 0) {
        free(real);
        return NULL;
    }

    dlerror();
    handle = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    free(real);
    if (handle == NULL) {
        const char *e = dlerror();
        snprintf(errbuf, errlen,
                 "cannot load plugin %s: expected a loadable "
                 "shared object: %s",
                 path, e ? e : "unknown dlopen error");
        return NULL;
    }
    *(void **)&entry = dlsym(handle, OG_PLUGIN_ENTRY_SYMBOL);
    if (entry == NULL) {
        snprintf(errbuf, errlen,
                 "refusing plugin %s: expected the symbol %s, "
                 "found none (not an omnigate plugin?)",
                 path, OG_PLUGIN_ENTRY_SYMBOL);
        dlclose(handle);
        return NULL;
    }
    def = entry(&og__host_api);
    if (def == NULL) {
        snprintf(errbuf, errlen,
                 "refusing plugin %s: expected a descriptor "
                 "from %s, found NULL",
                 path, OG_PLUGIN_ENTRY_SYMBOL);
        goto refuse;
    }
    if (def->abi_major != OG_SDK_ABI_MAJOR) {
        snprintf(errbuf, errlen,
                 "refusing plugin %s: expected plugin ABI "
                 "%d.x, found %u.%u (rebuild the plugin against this SDK)",
                 path, OG_SDK_ABI_MAJOR, def->abi_major, def->abi_minor);
        goto refuse;
    }
    if (def->abi_minor > OG_SDK_ABI_MINOR) {
        snprintf(errbuf, errlen,
                 "refusing plugin %s: expected plugin ABI "
                 "%d.%d or older, found %u.%u (the plugin needs a newer "
                 "omnigate)",
                 path, OG_SDK_ABI_MAJOR, OG_SDK_ABI_MINOR, def->abi_major,
                 def->abi_minor);
        goto refuse;
    }
    if (def->struct_size < OG__PLUGIN_DEF_SIZE_1_0) {
        snprintf(errbuf, errlen,
                 "refusing plugin %s: expected a descriptor "
                 "of at least %zu bytes for ABI %d.0, found %u bytes",
                 path, (size_t)OG__PLUGIN_DEF_SIZE_1_0, OG_SDK_ABI_MAJOR,
                 def->struct_size);
        goto refuse;
    }
    if (!og__is_ident(def->name, 0) || def->init == NULL ||
        def->destroy == NULL ||
        ((def->caps & OG_CAP_EGRESS) && def->send == NULL) ||
        (def->caps & (OG_CAP_INGRESS | OG_CAP_EGRESS)) == 0) {
        snprintf(errbuf, errlen,
                 "refusing plugin %s: expected a descriptor "
                 "with a name of [a-z0-9_-], init, destroy, capabilities and "
                 "send for egress, found %s%s%s%s%s",
                 path, og__is_ident(def->name, 0) ? "" : "a bad name ",
                 def->init ? "" : "no init ", def->destroy ? "" : "no destroy ",
                 (def->caps & (OG_CAP_INGRESS | OG_CAP_EGRESS))
                     ? ""
                     : "no capability ",
                 ((def->caps & OG_CAP_EGRESS) && def->send == NULL)
                     ? "egress without send"
                     : "");
        goto refuse;
    }
    p = og__xcalloc(1, sizeof(*p));
    p->path = og__xstrdup(path);
    p->handle = handle;
    p->def = def;
    p->dev = st.st_dev;
    p->ino = st.st_ino;
    p->mtime_ns =
        (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    return p;
refuse:
    dlclose(handle);
    return NULL;
}

void og__plugin_close(og__plugin_t *p)
{
    if (p == NULL)
        return;
        /* Under the sanitizers keep the object mapped so that leak reports can
     * still symbolize plugin frames. */
#ifndef OG_KEEP_PLUGINS_MAPPED
    dlclose(p->handle);
#endif
    free(p->path);
    free(p);
}

const og_config_field_t *og__plugin_field(const og__plugin_t *p,
                                          const char *key)
{
    const og_config_field_t *f;

    for (f = p->def->config; f != NULL && f->key != NULL; f++)
        if (strcmp(f->key, key) == 0)
            return f;
    return NULL;
}

static const char *type_name(og_config_type_t t)
{
    switch (t) {
    case OG_CFG_STRING: return "string";
    case OG_CFG_INT: return "integer";
    case OG_CFG_BOOL: return "boolean";
    case OG_CFG_DURATION: return "duration";
    case OG_CFG_SIZE: return "size";
    }
    return "unknown type";
}

/* Checks one value against its field; returns a reason or NULL. */
static int check_value(const og_config_field_t *f, const char *value, char *why,
                       size_t whylen)
{
    int64_t i = 0;
    uint64_t u = 0;
    int b;
    og_err_t rc = OG_OK;
    int bounded = f->min < f->max;

    switch (f->type) {
    case OG_CFG_STRING: return 0;
    case OG_CFG_BOOL: rc = og__parse_bool(value, &b, why, whylen); break;
    case OG_CFG_INT: rc = og__parse_int(value, &i, why, whylen); break;
    case OG_CFG_DURATION:
        rc = og__parse_duration_ms(value, &u, why, whylen);
        i = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        break;
    case OG_CFG_SIZE:
        rc = og__parse_size(value, &u, why, whylen);
        i = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        break;
    default:
        snprintf(why, whylen, "the plugin declares an unknown type %d",
                 (int)f->type);
        return -1;
    }
    if (rc != OG_OK)
        return -1;
    if (bounded && f->type != OG_CFG_BOOL && (i < f->min || i > f->max)) {
        snprintf(why, whylen, "must be between %lld and %lld%s",
                 (long long)f->min, (long long)f->max,
                 f->type == OG_CFG_DURATION ? " milliseconds"
                 : f->type == OG_CFG_SIZE   ? " bytes"
                                            : "");
        return -1;
    }
    return 0;
}

void og__plugin_check_config(const og__plugin_t *p, const og__chconf_t *ch,
                             og__errlist_t *errs)
{
    const og_config_field_t *f;
    char why[256];
    size_t i;

    for (i = 0; i < ch->nopts; i++) {
        const og__opt_t *o = &ch->opts[i];

        f = og__plugin_field(p, o->key);
        if (f == NULL) {
            char known[512] = "";
            size_t n = 0;
            const og_config_field_t *k;

            for (k = p->def->config; k != NULL && k->key != NULL; k++) {
                int w = snprintf(known + n, sizeof(known) - n, "%s%s",
                                 n ? ", " : "", k->key);
                if (w < 0 || (size_t)w >= sizeof(known) - n)
                    break;
                n += (size_t)w;
            }
            og__errlist_add(errs, ch->file, o->line,
                            "unknown key '%s' for plugin '%s' (known: %s)",
                            o->key, p->def->name, n ? known : "none");
            continue;
        }
        if (check_value(f, o->value, why, sizeof(why)) != 0)
            og__errlist_add(errs, ch->file, o->line, "%s: %s (a %s), got '%s'",
                            o->key, why, type_name(f->type),
                            (f->flags & OG_CFG_SECRET) ? "***" : o->value);
        else if ((f->flags & OG_CFG_SECRET) && og__is_placeholder(o->value))
            og__errlist_add(errs, ch->file, o->line,
                            "%s: a placeholder is no secret: set a real one "
                            "(e.g. openssl rand -hex 24)",
                            o->key);
    }
    for (f = p->def->config; f != NULL && f->key != NULL; f++) {
        if ((f->flags & OG_CFG_REQUIRED) && og__chconf_opt(ch, f->key) == NULL)
            og__errlist_add(errs, ch->file,
                            ch->config_line ? ch->config_line : ch->line,
                            "missing required key '%s' for plugin '%s' (%s)",
                            f->key, p->def->name, f->help ? f->help : "");
    }
}
