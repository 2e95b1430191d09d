/*
 * templates.c: templates from the configuration, checked and rendered
 * (templates.h).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "domain/mustache.h"
#include "domain/templates.h"

enum { PART_SUBJECT, PART_TEXT, PART_HTML, NPARTS };

struct variant {
    const og__variantconf_t *vc;
    og__tmpl_t *part[NPARTS];
};

struct tmpl {
    const og__tmplconf_t *tc;
    struct variant *variants;
    size_t n;
};

struct partial {
    char *name;
    char *src;
    size_t len;
};

struct og__templates_s {
    const og__conf_t *c; /* must outlive the templates */
    struct tmpl *t;
    size_t n;
    struct partial *partials;
    size_t npartials;
};

static char *read_file(const char *path, size_t *len, char *why, size_t whylen)
{
    FILE *f;
    char *buf = NULL;
    size_t n = 0, cap = 0, r;

    if (og__file_check(path, 0, why, whylen) != 0)
        return NULL;
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = og__xrealloc(buf, cap);
        }
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
    } while (r > 0 && n < (4u << 20));
    if (ferror(f) || n >= (4u << 20)) {
        snprintf(why, whylen, "cannot read %s: %s", path,
                 ferror(f) ? strerror(errno) : "larger than 4 MiB");
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Every templates_dir/partials/NAME.mustache. */
static void load_partials(og__templates_t *ts, og__errlist_t *errs)
{
    char *dir = og__xasprintf("%s/partials", ts->c->templates_dir);
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL) {
        if (errno != ENOENT)
            og__errlist_add(errs, dir, 0, "cannot read directory: %s",
                            strerror(errno));
        free(dir);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name), len = 0;
        char *path, *src, why[512];
        og__tmpl_t *t;

        if (de->d_name[0] == '.' || nl <= 9 ||
            strcmp(de->d_name + nl - 9, ".mustache") != 0)
            continue;
        path = og__xasprintf("%s/%s", dir, de->d_name);
        src = read_file(path, &len, why, sizeof(why));
        if (src == NULL) {
            og__errlist_add(errs, path, 0, "%s", why);
        } else if ((t = og__tmpl_parse(src, len, why, sizeof(why))) == NULL) {
            og__errlist_add(errs, path, 0, "%s", why);
            free(src);
        } else {
            og__tmpl_free(t);
            ts->partials = og__xrealloc(
                ts->partials, (ts->npartials + 1) * sizeof(*ts->partials));
            ts->partials[ts->npartials].name = og__xstrndup(de->d_name, nl - 9);
            ts->partials[ts->npartials].src = src;
            ts->partials[ts->npartials].len = len;
            ts->npartials++;
        }
        free(path);
    }
    closedir(d);
    free(dir);
}

static const char *partial_src(void *data, const char *name, size_t *len)
{
    const og__templates_t *ts = data;
    size_t i;

    for (i = 0; i < ts->npartials; i++)
        if (strcmp(ts->partials[i].name, name) == 0) {
            *len = ts->partials[i].len;
            return ts->partials[i].src;
        }
    return NULL;
}

/* 1 when path (file as written) stays inside the configuration: the
 * configuration directory or templates_dir, links followed. Anything else
 * (../../etc/shadow, /etc/shadow) only with [daemon] outside_paths = yes:
 * who may write a template must not read every file of the daemon's. */
static int inside_config(const og__conf_t *c, const char *path,
                         const char *file, char *why, size_t whylen)
{
    const char *const bases[] = {c->dir, c->templates_dir};
    char *real, *base;
    size_t i, n;
    int ok = 0;

    if (c->outside_paths)
        return 1;
    if ((real = realpath(path, NULL)) == NULL) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return 0;
    }
    for (i = 0; i < 2 && !ok; i++) {
        if ((base = realpath(bases[i], NULL)) == NULL)
            continue;
        n = strlen(base);
        ok = strncmp(real, base, n) == 0 && real[n] == '/';
        free(base);
    }
    if (!ok)
        snprintf(why, whylen,
                 "'%s' (%s) is outside the configuration directory %s; set "
                 "[daemon] outside_paths = yes to allow it",
                 file, real, c->dir);
    free(real);
    return ok;
}

/*
 * Warns (the configuration stays valid) about a variable written into a
 * URL attribute of an HTML part without {{url:...}}: HTML escaping keeps
 * javascript: links working (docs/security.md). A scan of the source:
 * href, src, action, formaction, then '=', a quote or none, then a tag.
 */
static void warn_urls(const char *src, size_t len, const char *file,
                      int key_line, const char *where)
{
    static const char *const attrs[] = {"href", "src", "action", "formaction",
                                        NULL};
    size_t i, k;
    int line = 1;

    for (i = 0; i < len; i++) {
        if (src[i] == '\n')
            line++;
        for (k = 0; attrs[k] != NULL; k++) {
            size_t al = strlen(attrs[k]), j = i + al, n;

            if (i + al >= len || strncasecmp(src + i, attrs[k], al) != 0 ||
                (i > 0 &&
                 (isalnum((unsigned char)src[i - 1]) || src[i - 1] == '-')))
                continue;
            while (j < len && src[j] == ' ')
                j++;
            if (j >= len || src[j] != '=')
                continue;
            j++;
            while (j < len && src[j] == ' ')
                j++;
            if (j < len && (src[j] == '"' || src[j] == '\''))
                j++;
            if (j + 2 > len || src[j] != '{' || src[j + 1] != '{')
                continue;
            j += 2;
            while (j < len && (src[j] == '{' || src[j] == '&' || src[j] == ' '))
                j++;
            n = strcspn(src + j, " }");
            if (n == 0 || strncmp(src + j, "url:", 4) == 0)
                continue;
            og__log(OG_LOG_WARNING, "config",
                    "%s:%d: %s: '{{%.*s}}' in %s is written as text, not "
                    "checked as a URL (a javascript: link passes): write "
                    "{{url:%.*s}}",
                    file, key_line ? key_line : line, where, (int)n, src + j,
                    attrs[k], (int)n, src + j);
        }
    }
}

/* Checks the names one part uses against the template's vars. */
struct check {
    const og__templates_t *ts;
    const og__tmplconf_t *tc;
    const char *file, *where;
    int line; /* of the key, for inline parts; 0 for files */
    og__errlist_t *errs;
};

static void check_name(void *data, int kind, const char *name, int line,
                       int depth)
{
    struct check *c = data;
    size_t fl = strcspn(name, "."), i;
    size_t len;

    if (kind == '>') {
        if (partial_src((void *)c->ts, name, &len) == NULL)
            og__errlist_add(c->errs, c->file, c->line ? c->line : line,
                            "%s: partial '%s' does not exist (%s/partials/"
                            "%s.mustache)",
                            c->where, name, c->ts->c->templates_dir, name);
        return;
    }
    if (depth > 0 || strcmp(name, ".") == 0)
        return; /* inside a section: the section's items decide */
    for (i = 0; c->tc->vars != NULL && c->tc->vars[i] != NULL; i++)
        if (strlen(c->tc->vars[i]) == fl &&
            strncmp(c->tc->vars[i], name, fl) == 0)
            return;
    og__errlist_add(c->errs, c->file, c->line ? c->line : line,
                    "%s: '%s' is not among the template's vars", c->where,
                    name);
}

static og__tmpl_t *build_part(og__templates_t *ts, const og__tmplconf_t *tc,
                              const og__variantconf_t *vc, const char *what,
                              const char *inline_src, const char *file,
                              int key_line, og__errlist_t *errs)
{
    char why[512], where[160], *path = NULL, *src = NULL;
    const char *text = inline_src, *errfile = tc->file;
    size_t len = inline_src ? strlen(inline_src) : 0;
    og__tmpl_t *t;
    struct check c;

    if (inline_src == NULL && file == NULL)
        return NULL;
    snprintf(where, sizeof(where), "[%s] %s", vc->name, what);
    if (file != NULL) {
        path = file[0] == '/'
                   ? og__xstrdup(file)
                   : og__xasprintf("%s/%s", ts->c->templates_dir, file);
        if (!inside_config(ts->c, path, file, why, sizeof(why))) {
            og__errlist_add(errs, tc->file, key_line, "%s: %s", where, why);
            free(path);
            return NULL;
        }
        text = src = read_file(path, &len, why, sizeof(why));
        if (src == NULL) {
            og__errlist_add(errs, tc->file, key_line, "%s: %s", where, why);
            free(path);
            return NULL;
        }
        errfile = path;
        key_line = 0;
    }
    t = og__tmpl_parse(text, len, why, sizeof(why));
    if (t != NULL && strcmp(what, "html") == 0)
        warn_urls(text, len, errfile, key_line, where);
    if (t == NULL) {
        og__errlist_add(errs, errfile, key_line, "%s: %s", where, why);
    } else {
        c.ts = ts;
        c.tc = tc;
        c.file = errfile;
        c.where = where;
        c.line = key_line;
        c.errs = errs;
        og__tmpl_names(t, check_name, &c);
    }
    free(src);
    free(path);
    return t;
}

og__templates_t *og__templates_build(const og__conf_t *conf,
                                     og__errlist_t *errs)
{
    og__templates_t *ts = og__xcalloc(1, sizeof(*ts));
    size_t i, k;

    ts->c = conf;
    load_partials(ts, errs);
    ts->t = og__xcalloc(conf->ntemplates + 1, sizeof(*ts->t));
    ts->n = conf->ntemplates;
    for (i = 0; i < conf->ntemplates; i++) {
        const og__tmplconf_t *tc = &conf->templates[i];
        struct tmpl *t = &ts->t[i];

        t->tc = tc;
        t->n = tc->nvariants;
        t->variants = og__xcalloc(tc->nvariants + 1, sizeof(*t->variants));
        for (k = 0; k < tc->nvariants; k++) {
            const og__variantconf_t *vc = &tc->variants[k];
            struct variant *v = &t->variants[k];

            v->vc = vc;
            v->part[PART_SUBJECT] =
                build_part(ts, tc, vc, "subject", vc->subject, NULL,
                           vc->subject_line, errs);
            v->part[PART_TEXT] = build_part(ts, tc, vc, "text", vc->text,
                                            vc->text_file, vc->text_line, errs);
            v->part[PART_HTML] = build_part(ts, tc, vc, "html", vc->html,
                                            vc->html_file, vc->html_line, errs);
        }
    }
    return ts;
}

void og__templates_free(og__templates_t *ts)
{
    size_t i, k, p;

    if (ts == NULL)
        return;
    for (i = 0; i < ts->n; i++) {
        for (k = 0; k < ts->t[i].n; k++)
            for (p = 0; p < NPARTS; p++)
                og__tmpl_free(ts->t[i].variants[k].part[p]);
        free(ts->t[i].variants);
    }
    free(ts->t);
    for (i = 0; i < ts->npartials; i++) {
        free(ts->partials[i].name);
        free(ts->partials[i].src);
    }
    free(ts->partials);
    free(ts);
}

void og__message_free(og__message_t *m)
{
    og__sbuf_free(&m->subject);
    og__sbuf_free(&m->text);
    og__sbuf_free(&m->html);
}

/* Cuts s to at most max characters (UTF-8), the last one "…". */
static int cut(og__sbuf_t *s, int64_t max)
{
    size_t i, chars = 0, keep = 0;

    if (s->p == NULL || max <= 0)
        return 0;
    for (i = 0; i < s->n; i++)
        if (((unsigned char)s->p[i] & 0xc0) != 0x80) {
            if ((int64_t)chars == max - 1)
                keep = i;
            chars++;
        }
    if ((int64_t)chars <= max)
        return 0;
    s->n = keep;
    s->p[keep] = '\0';
    og__sbuf_printf(s, "\xe2\x80\xa6"); /* … */
    return 1;
}

og_err_t og__templates_render(const og__templates_t *ts, const char *name,
                              const char *channel, const msgpack_object *data,
                              og__message_t *out, char *why, size_t whylen)
{
    const og__variantconf_t *vc;
    const struct variant *v = NULL;
    og__sbuf_t *dst[NPARTS];
    size_t i, k;

    memset(out, 0, sizeof(*out));
    dst[PART_SUBJECT] = &out->subject;
    dst[PART_TEXT] = &out->text;
    dst[PART_HTML] = &out->html;
    for (i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].tc->name, name) == 0)
            break;
    if (i == ts->n) {
        snprintf(why, whylen, "no template '%s'", name);
        return OG_ERR_NOT_FOUND;
    }
    vc = og__tmplconf_variant(ts->t[i].tc, channel);
    for (k = 0; vc != NULL && k < ts->t[i].n; k++)
        if (ts->t[i].variants[k].vc == vc)
            v = &ts->t[i].variants[k];
    if (v == NULL) {
        snprintf(why, whylen, "template '%s' has no variant for '%s'", name,
                 channel);
        return OG_ERR_NOT_FOUND;
    }
    for (k = 0; k < NPARTS; k++)
        if (v->part[k] != NULL &&
            og__tmpl_render(v->part[k], data, k == PART_HTML, partial_src,
                            (void *)ts, dst[k], why, whylen) != 0) {
            og__message_free(out);
            return OG_ERR_INVALID;
        }
    out->truncated = cut(&out->text, vc->max_length);
    return OG_OK;
}
