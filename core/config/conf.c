/*
 * conf.c: strict configuration loading on top of inih.
 *
 * Debian's libinih is built without INI_HANDLER_LINENO, so the handler does
 * not learn line numbers. We parse through ini_parse_stream() with our own
 * reader, which inih calls exactly once per physical line: the reader counts
 * lines, notices section headers and over-long lines, and the handler reads
 * the current line number from the shared parse state.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/conf.h"
#include "base/phone.h"
#include "base/log.h"
#include "event/cond.h"
#include "base/util.h"

#define DEFAULT_PLUGIN_DIR PLUGINSDIR

void og__errlist_add(og__errlist_t *e, const char *file, int line,
                     const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    e->v = og__xrealloc(e->v, (e->n + 1) * sizeof(*e->v));
    if (line > 0)
        e->v[e->n++] = og__xasprintf("%s:%d: %s", file, line, msg);
    else
        e->v[e->n++] = og__xasprintf("%s: %s", file, msg);
}

void og__errlist_free(og__errlist_t *e)
{
    size_t i;

    for (i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
    e->v = NULL;
    e->n = 0;
}

/* What kind of file is being parsed. */
enum file_kind {
    FILE_MAIN,
    FILE_CHANNEL,
    FILE_ROUTES,
    FILE_TEMPLATE,
    FILE_JOURNEY
};

/* A section seen in the current file, with the line it started on. */
struct section {
    char *name;
    int line;
};

/* Parse state shared by the reader and the handler for one file. */
struct parse {
    og__conf_t *conf;
    og__errlist_t *errs;
    const char *file;
    enum file_kind kind;
    FILE *fp;
    int line;         /* current physical line */
    int continuation; /* current line starts with blank */
    struct section *sections;
    size_t nsections;
    og__chconf_t *ch;       /* FILE_CHANNEL: the channel being read */
    int unread;             /* the file was refused or not read */
    og__routeconf_t *route; /* the [route] being read */
    og__tmplconf_t *tmpl;   /* FILE_TEMPLATE: the template being read */
    og__journeyconf_t *jny; /* FILE_JOURNEY: the journey being read */
    /* keys seen in the current section, to refuse duplicates */
    char **seen;
    size_t nseen;
    char *seen_section;
    /* [daemon] values that are resolved after the file is read */
    char *channels_dir;
    char *routes_dir;
};

/* inih's reader: one physical line per call, like fgets(). */
static char *reader(char *str, int num, void *stream)
{
    struct parse *p = stream;
    size_t len;
    const char *s;

    if (fgets(str, num, p->fp) == NULL)
        return NULL;
    p->line++;
    len = strlen(str);
    if (len > 0 && str[len - 1] != '\n' && !feof(p->fp)) {
        int c;

        og__errlist_add(p->errs, p->file, p->line,
                        "line longer than %d characters", num - 2);
        while ((c = fgetc(p->fp)) != EOF && c != '\n')
            ;
        str[0] = '\0'; /* hand inih an empty line instead */
        return str;
    }
    p->continuation = (str[0] == ' ' || str[0] == '\t') &&
                      str[strspn(str, " \t\r\n")] != '\0';
    s = str + strspn(str, " \t");
    if (*s == '[') {
        const char *end = strchr(s, ']');

        if (end != NULL) {
            p->sections = og__xrealloc(p->sections, (p->nsections + 1) *
                                                        sizeof(*p->sections));
            p->sections[p->nsections].name =
                og__xstrndup(s + 1, (size_t)(end - s - 1));
            p->sections[p->nsections].line = p->line;
            p->nsections++;
        }
    }
    return str;
}

static int section_line(const struct parse *p, const char *name)
{
    size_t i;

    for (i = 0; i < p->nsections; i++)
        if (strcmp(p->sections[i].name, name) == 0)
            return p->sections[i].line;
    return 0;
}

/* Records key as seen in section; returns 0 when it was seen before. */
static int first_time(struct parse *p, const char *section, const char *key)
{
    size_t i;

    if (p->seen_section == NULL || strcmp(p->seen_section, section) != 0) {
        og__strv_free(p->seen);
        p->seen = NULL;
        p->nseen = 0;
        free(p->seen_section);
        p->seen_section = og__xstrdup(section);
    }
    for (i = 0; i < p->nseen; i++)
        if (strcmp(p->seen[i], key) == 0)
            return 0;
    p->seen = og__xrealloc(p->seen, (p->nseen + 2) * sizeof(*p->seen));
    p->seen[p->nseen++] = og__xstrdup(key);
    p->seen[p->nseen] = NULL;
    return 1;
}

static void err(struct parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void err(struct parse *p, const char *fmt, ...)
{
    char msg[900];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    og__errlist_add(p->errs, p->file, p->line, "%s", msg);
}

/* Resolves a path relative to the configuration directory. */
static char *conf_path(const og__conf_t *conf, const char *value)
{
    if (value[0] == '/')
        return og__xstrdup(value);
    return og__xasprintf("%s/%s", conf->dir, value);
}

static void daemon_key(struct parse *p, const char *key, const char *value)
{
    og__conf_t *c = p->conf;
    char why[128];

    if (strcmp(key, "plugin_dir") == 0) {
        free(c->plugin_dir);
        c->plugin_dir = conf_path(c, value);
    } else if (strcmp(key, "state_dir") == 0) {
        free(c->state_dir);
        c->state_dir = conf_path(c, value);
    } else if (strcmp(key, "templates_dir") == 0) {
        free(c->templates_dir);
        c->templates_dir = conf_path(c, value);
    } else if (strcmp(key, "journeys_dir") == 0) {
        free(c->journeys_dir);
        c->journeys_dir = conf_path(c, value);
    } else if (strcmp(key, "channels_dir") == 0) {
        free(p->channels_dir);
        p->channels_dir = conf_path(c, value);
    } else if (strcmp(key, "routes_dir") == 0) {
        free(p->routes_dir);
        p->routes_dir = conf_path(c, value);
    } else if (strcmp(key, "shutdown_timeout") == 0) {
        if (og__parse_duration_ms(value, &c->shutdown_timeout_ms, why,
                                  sizeof(why)) != OG_OK)
            err(p, "shutdown_timeout: %s, got '%s'", why, value);
    } else if (strcmp(key, "log_level") == 0) {
        if (og__log_level_parse(value, &c->log_level) != 0)
            err(p,
                "log_level: expected error, warning, notice, info or "
                "debug, got '%s'",
                value);
    } else if (strcmp(key, "queue_max") == 0) {
        if (og__parse_int(value, &c->queue_max, why, sizeof(why)) != OG_OK)
            err(p, "queue_max: %s, got '%s'", why, value);
        else if (c->queue_max < 1 || c->queue_max > 10000000)
            err(p, "queue_max: must be between 1 and 10000000, got %s", value);
    } else if (strcmp(key, "durability") == 0) {
        if (strcmp(value, "power") == 0)
            c->durability_power = 1;
        else if (strcmp(value, "process") == 0)
            c->durability_power = 0;
        else
            err(p, "durability: expected power or process, got '%s'", value);
    } else if (strcmp(key, "timeline_retention") == 0) {
        if (og__parse_duration_ms(value, &c->timeline_retention_ms, why,
                                  sizeof(why)) != OG_OK)
            err(p, "timeline_retention: %s, got '%s'", why, value);
        else if (c->timeline_retention_ms < 3600 * 1000 &&
                 c->timeline_retention_ms != 0)
            err(p,
                "timeline_retention: at least 1h (or 0: for ever), got "
                "%s",
                value);
    } else if (strcmp(key, "dedup_window") == 0) {
        if (og__parse_duration_ms(value, &c->dedup_window_ms, why,
                                  sizeof(why)) != OG_OK)
            err(p, "dedup_window: %s, got '%s'", why, value);
    } else if (strcmp(key, "outside_paths") == 0) {
        if (og__parse_bool(value, &c->outside_paths, why, sizeof(why)) != OG_OK)
            err(p, "outside_paths: %s, got '%s'", why, value);
    } else if (strcmp(key, "max_backlog") == 0) {
        if (og__parse_int(value, &c->max_backlog, why, sizeof(why)) != OG_OK)
            err(p, "max_backlog: %s, got '%s'", why, value);
        else if (c->max_backlog < 1)
            err(p, "max_backlog: must be at least 1, got %s", value);
    } else if (strcmp(key, "max_event_size") == 0) {
        uint64_t v;

        if (og__parse_size(value, &v, why, sizeof(why)) != OG_OK)
            err(p, "max_event_size: %s, got '%s'", why, value);
        else if (v < 256 || v > (64u << 20))
            err(p, "max_event_size: must be between 256 and 64M, got %s",
                value);
        else
            c->max_event_bytes = (int64_t)v;
    } else {
        err(p,
            "unknown key '%s' in [daemon] (known: plugin_dir, state_dir, "
            "outside_paths, "
            "channels_dir, routes_dir, templates_dir, journeys_dir, "
            "shutdown_timeout, "
            "log_level, "
            "queue_max, max_event_size, durability, dedup_window, "
            "timeline_retention, "
            "max_backlog)",
            key);
    }
}

static int valid_listen(const char *v)
{
    const char *colon = strrchr(v, ':');

    if (strncmp(v, "unix:/", 6) == 0)
        return strlen(v) < 100; /* sun_path */
    return colon != NULL && colon != v && colon[1] != '\0' &&
           strspn(colon + 1, "0123456789") == strlen(colon + 1);
}

static void http_key(struct parse *p, const char *key, const char *value)
{
    og__conf_t *c = p->conf;
    char why[128];
    uint64_t *dur = NULL, *size = NULL;

    if (strcmp(key, "public_listen") == 0 || strcmp(key, "admin_listen") == 0) {
        char **dst = key[0] == 'p' ? &c->public_listen : &c->admin_listen;

        if (!valid_listen(value)) {
            err(p,
                "%s: expected HOST:PORT, [IPV6]:PORT or unix:/path, got "
                "'%s'",
                key, value);
            return;
        }
        free(*dst);
        *dst = og__xstrdup(value);
        return;
    }
    if (strcmp(key, "admin_tokens") == 0) {
        free(c->admin_tokens_file);
        c->admin_tokens_file = conf_path(c, value);
        c->admin_tokens_line = p->line;
        return;
    }
    if (strcmp(key, "admin_hosts") == 0) {
        og__strv_free(c->admin_hosts);
        c->admin_hosts = og__split_list(value, NULL);
        return;
    }
    if (strcmp(key, "max_header_size") == 0)
        size = &c->http_max_header_bytes;
    else if (strcmp(key, "max_body_size") == 0)
        size = &c->http_max_body_bytes;
    else if (strcmp(key, "read_timeout") == 0)
        dur = &c->http_read_timeout_ms;
    else if (strcmp(key, "idle_timeout") == 0)
        dur = &c->http_idle_timeout_ms;
    if (size != NULL) {
        if (og__parse_size(value, size, why, sizeof(why)) != OG_OK)
            err(p, "%s: %s, got '%s'", key, why, value);
        else if (*size < 1024 || *size > (1ull << 30))
            err(p, "%s: must be between 1k and 1G, got %s", key, value);
    } else if (dur != NULL) {
        if (og__parse_duration_ms(value, dur, why, sizeof(why)) != OG_OK)
            err(p, "%s: %s, got '%s'", key, why, value);
        else if (*dur < 10)
            err(p, "%s: must be at least 10ms, got %s", key, value);
    } else if (strcmp(key, "max_connections_per_client") == 0 ||
               strcmp(key, "max_requests_per_client") == 0) {
        int64_t *dst =
            key[4] == 'c' ? &c->http_client_connections : &c->http_client_rate;

        if (og__parse_int(value, dst, why, sizeof(why)) != OG_OK)
            err(p, "%s: %s, got '%s'", key, why, value);
        else if (*dst < 0 || *dst > 1000000)
            err(p, "%s: must be between 0 (no limit) and 1000000, got %s", key,
                value);
    } else if (strcmp(key, "max_connections") == 0) {
        if (og__parse_int(value, &c->http_max_connections, why, sizeof(why)) !=
            OG_OK)
            err(p, "max_connections: %s, got '%s'", why, value);
        else if (c->http_max_connections < 1 ||
                 c->http_max_connections > 1000000)
            err(p, "max_connections: must be between 1 and 1000000, got %s",
                value);
    } else {
        err(p,
            "unknown key '%s' in [http] (known: public_listen, "
            "admin_listen, admin_tokens, admin_hosts, "
            "max_connections_per_client, max_requests_per_client, "
            "max_header_size, "
            "max_body_size, read_timeout, "
            "idle_timeout, max_connections)",
            key);
    }
}

/* Reads the admin tokens file: "ROLE TOKEN" lines (read, operate,
 * erase), '#' comments. */
static void read_admin_tokens(og__conf_t *c, og__errlist_t *errs)
{
    const char *f = c->admin_tokens_file;
    char why[512], line[1024];
    FILE *fp;
    int n = 0;

    if (og__file_check(f, 1, why, sizeof(why)) != 0) {
        og__errlist_add(errs, c->main_file, c->admin_tokens_line,
                        "admin_tokens: %s: %s", f, why);
        return;
    }
    if ((fp = fopen(f, "r")) == NULL) {
        og__errlist_add(errs, c->main_file, c->admin_tokens_line,
                        "admin_tokens: %s: %s", f, strerror(errno));
        return;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char role[32], tok[512], extra[8];
        int k, r = -1;
        static const char *const roles[] = {"read", "operate", "erase"};

        n++;
        line[strcspn(line, "#\r\n")] = '\0';
        k = sscanf(line, "%31s %511s %7s", role, tok, extra);
        if (k <= 0)
            continue;
        for (size_t i = 0; i < 3; i++)
            if (k >= 1 && strcmp(role, roles[i]) == 0)
                r = (int)i;
        if (k != 2 || r < 0) {
            og__errlist_add(errs, f, n,
                            "expected 'ROLE TOKEN' with ROLE read, operate or "
                            "erase");
            continue;
        }
        if (strlen(tok) < 24 || og__is_placeholder(tok)) {
            og__errlist_add(errs, f, n,
                            "a token must have at least 24 characters and "
                            "be no placeholder (e.g. openssl rand -hex 24)");
            continue;
        }
        c->admin_tokens = og__xrealloc(
            c->admin_tokens, (c->nadmin_tokens + 1) * sizeof(*c->admin_tokens));
        c->admin_tokens[c->nadmin_tokens].role = r;
        c->admin_tokens[c->nadmin_tokens].token = og__xstrdup(tok);
        c->nadmin_tokens++;
    }
    fclose(fp);
}

/* The admin listener's defaults and rules (docs/security.md): a unix
 * socket in state_dir unless set; on TCP only with bearer tokens. */
static void admin_access(og__conf_t *c, og__errlist_t *errs)
{
    if (c->admin_listen == NULL) {
        c->admin_default = 1;
        c->admin_listen = og__xasprintf("unix:%s/admin.sock", c->state_dir);
        if (strlen(c->admin_listen) >= 100)
            og__errlist_add(errs, c->main_file, 0,
                            "admin_listen: the default socket %s is too long "
                            "a path for a unix socket: set admin_listen",
                            c->admin_listen);
    }
    if (c->admin_tokens_file != NULL)
        read_admin_tokens(c, errs);
    if (strncmp(c->admin_listen, "unix:", 5) != 0 &&
        c->admin_tokens_file == NULL)
        og__errlist_add(errs, c->main_file, 0,
                        "admin_listen = %s is TCP: set admin_tokens (a file "
                        "of 'ROLE TOKEN' lines) so that only holders of a "
                        "token reach the admin API, or listen on unix:/path "
                        "(docs/security.md)",
                        c->admin_listen);
}

static void route_key(struct parse *p, const char *key, const char *value)
{
    og__routeconf_t *r = p->route;
    char ***dst = NULL;
    size_t n;
    size_t i;

    if (strcmp(key, "when") == 0) {
        char cwhy[256];
        size_t nc = 0;
        og__cond_t *cond = og__conds_parse(value, &nc, cwhy, sizeof(cwhy));

        if (cond == NULL)
            err(p, "when: %s", cwhy);
        og__conds_free(cond, nc);
        free(r->when);
        r->when = og__xstrdup(value);
        r->when_line = p->line;
        return;
    }
    if (strcmp(key, "match") == 0) {
        dst = &r->match;
    } else if (strcmp(key, "from") == 0) {
        dst = &r->from;
        r->from_line = p->line;
    } else if (strcmp(key, "to") == 0) {
        dst = &r->to;
        r->to_line = p->line;
    } else {
        err(p, "unknown key '%s' in [route %s] (known: match, from, when, to)",
            key, r->name);
        return;
    }
    og__strv_free(*dst);
    *dst = og__split_list(value, &n);
    if (n == 0)
        err(p, "%s: empty list", key);
    for (i = 0; i < n; i++) {
        if (dst != &r->to ? !og__is_ident_glob((*dst)[i])
                          : !og__is_ident((*dst)[i], 1))
            err(p, "%s: '%s' is not a valid %s", key, (*dst)[i],
                dst == &r->match ? "event type pattern" : "channel name");
    }
}

static og__routeconf_t *route_section(struct parse *p, const char *section)
{
    og__conf_t *c = p->conf;
    const char *name = section + strlen("route");
    og__routeconf_t *r;
    size_t i;

    while (*name == ' ' || *name == '\t')
        name++;
    if (p->route != NULL && strcmp(p->route->name, name) == 0 &&
        strcmp(p->route->file, p->file) == 0)
        return p->route;
    if (!og__is_ident(name, 1)) {
        err(p, "[%s]: a route needs a name, as in [route orders]", section);
        return NULL;
    }
    for (i = 0; i < c->nroutes; i++) {
        if (strcmp(c->routes[i].name, name) == 0) {
            err(p, "route '%s' defined twice (first at %s:%d)", name,
                c->routes[i].file, c->routes[i].line);
            return NULL;
        }
    }
    c->routes = og__xrealloc(c->routes, (c->nroutes + 1) * sizeof(*c->routes));
    r = &c->routes[c->nroutes++];
    memset(r, 0, sizeof(*r));
    r->name = og__xstrdup(name);
    r->file = og__xstrdup(p->file);
    r->line = section_line(p, section);
    p->route = r;
    return r;
}

static int parse_trait_rule(const char *v, og__trait_rule_t *out)
{
    if (strcmp(v, "newest") == 0)
        *out = OG__TRAIT_NEWEST;
    else if (strcmp(v, "oldest") == 0)
        *out = OG__TRAIT_OLDEST;
    else if (strcmp(v, "non_empty") == 0)
        *out = OG__TRAIT_NON_EMPTY;
    else
        return -1;
    return 0;
}

static void customers_key(struct parse *p, const char *key, const char *value)
{
    og__conf_t *c = p->conf;
    og__trait_rule_t rule;

    if (strcmp(key, "traits") == 0) {
        if (parse_trait_rule(value, &c->trait_default) != 0)
            err(p, "traits: expected newest, oldest or non_empty, got '%s'",
                value);
    } else if (strncmp(key, "trait.", 6) == 0) {
        if (key[6] == '\0' || strlen(key + 6) > 128)
            err(p,
                "%s: a trait name of 1-128 characters must follow "
                "'trait.'",
                key);
        else if (parse_trait_rule(value, &rule) != 0)
            err(p, "%s: expected newest, oldest or non_empty, got '%s'", key,
                value);
        else {
            c->trait_names = og__xrealloc(
                c->trait_names, (c->ntraits + 2) * sizeof(*c->trait_names));
            c->trait_rules = og__xrealloc(
                c->trait_rules, (c->ntraits + 1) * sizeof(*c->trait_rules));
            c->trait_names[c->ntraits] = og__xstrdup(key + 6);
            c->trait_names[c->ntraits + 1] = NULL;
            c->trait_rules[c->ntraits] = rule;
            c->ntraits++;
        }
    } else {
        err(p, "unknown key '%s' in [customers] (known: traits, trait.NAME)",
            key);
    }
}

static void consent_key(struct parse *p, const char *key, const char *value)
{
    og__conf_t *c = p->conf;

    if (strcmp(key, "marketing_default") == 0) {
        if (strcmp(value, "deny") == 0)
            c->marketing_default = 0;
        else if (strcmp(value, "allow") == 0)
            c->marketing_default = 1;
        else
            err(p, "marketing_default: expected deny or allow, got '%s'",
                value);
    } else if (strcmp(key, "transactional_bypass") == 0) {
        char **v = og__split_list(value, NULL);
        size_t i;

        for (i = 0; v[i] != NULL; i++)
            if (strcmp(v[i], "*") != 0 && !og__is_ident(v[i], 1))
                err(p,
                    "transactional_bypass: '%s' is not a channel name, "
                    "kind or '*'",
                    v[i]);
        og__strv_free(c->transactional_bypass);
        c->transactional_bypass = v;
    } else {
        err(p,
            "unknown key '%s' in [consent] (known: marketing_default, "
            "transactional_bypass)",
            key);
    }
}

static void add_opt(og__opt_t **opts, size_t *n, const char *key,
                    const char *value, int line)
{
    *opts = og__xrealloc(*opts, (*n + 1) * sizeof(**opts));
    (*opts)[*n].key = og__xstrdup(key);
    (*opts)[*n].value = og__xstrdup(value);
    (*opts)[*n].line = line;
    (*n)++;
}

static void opts_free(og__opt_t *opts, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(opts[i].key);
        free(opts[i].value);
    }
    free(opts);
}

static void channel_key(struct parse *p, const char *section, const char *key,
                        const char *value)
{
    og__chconf_t *ch = p->ch;
    char why[128];

    if (strcmp(section, "channel") == 0) {
        if (strcmp(key, "name") == 0) {
            if (!og__is_ident(value, 1))
                err(p,
                    "name: '%s' is not a valid channel name (use a-z, 0-9, "
                    "'-', '_', '.')",
                    value);

            free(ch->name);
            ch->name = og__xstrdup(value);
        } else if (strcmp(key, "plugin") == 0) {
            if (!og__is_ident(value, 0))
                err(p,
                    "plugin: '%s' is not a valid plugin name (use a-z, 0-9, "
                    "'-', '_')",
                    value);
            free(ch->plugin);
            ch->plugin = og__xstrdup(value);
            ch->plugin_line = p->line;
        } else if (strcmp(key, "enabled") == 0) {
            if (og__parse_bool(value, &ch->enabled, why, sizeof(why)) != OG_OK)
                err(p, "enabled: %s, got '%s'", why, value);
        } else if (strcmp(key, "queue_max") == 0 ||
                   strcmp(key, "max_inflight") == 0) {
            int64_t *dst = key[0] == 'q' ? &ch->queue_max : &ch->max_inflight;

            if (og__parse_int(value, dst, why, sizeof(why)) != OG_OK)
                err(p, "%s: %s, got '%s'", key, why, value);
            else if (*dst < 1 || *dst > 10000000)
                err(p, "%s: must be between 1 and 10000000, got %s", key,
                    value);
        } else if (strcmp(key, "phone_region") == 0) {
            char pwhy[600];
            int known;

            if (strlen(value) != 2 || value[0] < 'A' || value[0] > 'Z' ||
                value[1] < 'A' || value[1] > 'Z') {
                err(p,
                    "phone_region: expected a two-letter ISO 3166 region "
                    "code such as FR or US, got '%s'",
                    value);
            } else if ((known = og__phone_region_known(value, pwhy,
                                                       sizeof(pwhy))) == 0) {
                err(p,
                    "phone_region: libphonenumber has no numbering plan "
                    "for region '%s'",
                    value);
            } else if (known < 0) {
                err(p, "phone_region: %s", pwhy);
            } else {
                memcpy(ch->phone_region, value, 3);
            }
        } else if (strcmp(key, "stock") == 0) {
            size_t i;

            og__strv_free(ch->stock);
            ch->stock = og__split_list(value, NULL);
            if (ch->stock[0] == NULL)
                err(p, "stock: expected locations (store-12, warehouse) or "
                       "'*' for every location");
            for (i = 0; ch->stock[i] != NULL; i++)
                if (strcmp(ch->stock[i], "*") != 0 &&
                    !og__is_ident(ch->stock[i], 1))
                    err(p, "stock: '%s' is not a location id", ch->stock[i]);
        } else if (strcmp(key, "safety_buffer") == 0) {
            if (og__parse_int(value, &ch->safety_buffer, why, sizeof(why)) !=
                OG_OK)
                err(p, "safety_buffer: %s, got '%s'", why, value);
            else if (ch->safety_buffer < 0 || ch->safety_buffer > 1000000)
                err(p, "safety_buffer: must be between 0 and 1000000, got %s",
                    value);
        } else if (strcmp(key, "required") == 0) {
            if (og__parse_bool(value, &ch->required, why, sizeof(why)) != OG_OK)
                err(p, "required: %s, got '%s'", why, value);
        } else if (strcmp(key, "isolation") == 0) {
            if (strcmp(value, "process") == 0)
                ch->isolated = 1;
            else if (strcmp(value, "none") == 0)
                ch->isolated = 0;
            else
                err(p,
                    "isolation: expected 'none' (the plugin runs inside "
                    "the daemon) or 'process' (in a host process of its "
                    "own), got '%s'",
                    value);
        } else if (strcmp(key, "memory_limit") == 0) {
            if (og__parse_size(value, &ch->memory_limit, why, sizeof(why)) !=
                OG_OK)
                err(p, "memory_limit: %s, got '%s'", why, value);
            else if (ch->memory_limit != 0 && ch->memory_limit < (8u << 20))
                err(p, "memory_limit: must be 0 (none) or at least 8M, got %s",
                    value);
        } else if (strcmp(key, "heartbeat_timeout") == 0) {
            if (og__parse_duration_ms(value, &ch->heartbeat_ms, why,
                                      sizeof(why)) != OG_OK)
                err(p, "heartbeat_timeout: %s, got '%s'", why, value);
            else if (ch->heartbeat_ms < 100 || ch->heartbeat_ms > 3600000)
                err(p,
                    "heartbeat_timeout: must be between 100ms and 1h, got "
                    "%s",
                    value);
        } else if (strcmp(key, "retry_base") == 0 ||
                   strcmp(key, "retry_max") == 0 ||
                   strcmp(key, "retry_lifetime") == 0) {
            uint64_t *dst = key[6] == 'b'   ? &ch->retry_base_ms
                            : key[6] == 'm' ? &ch->retry_max_ms
                                            : &ch->retry_lifetime_ms;

            if (og__parse_duration_ms(value, dst, why, sizeof(why)) != OG_OK)
                err(p, "%s: %s, got '%s'", key, why, value);
            else if (*dst < 1)
                err(p, "%s: must be at least 1ms, got %s", key, value);
        } else {
            err(p,
                "unknown key '%s' in [channel] (known: name, plugin, "
                "enabled, required, queue_max, max_inflight, retry_base, "
                "retry_max, retry_lifetime, phone_region, stock, "
                "safety_buffer, isolation, memory_limit, "
                "heartbeat_timeout; plugin settings go in [config])",
                key);
        }
        return;
    }
    /* [config]: kept as text; typed by the plugin's table later. */
    add_opt(&ch->opts, &ch->nopts, key, value, p->line);
}

static void parse_file(struct parse *p, const char *file, enum file_kind kind);
static void reset_sections(struct parse *p);

static int variant_index(const og__tmplconf_t *t, const char *name)
{
    size_t i;

    for (i = 0; i < t->nvariants; i++)
        if (strcmp(t->variants[i].name, name) == 0)
            return (int)i;
    return -1;
}

const og__variantconf_t *og__tmplconf_variant(const og__tmplconf_t *t,
                                              const char *channel)
{
    char kind[72];
    const char *dot = strchr(channel, '.');
    int i = variant_index(t, channel);

    if (i < 0 && dot != NULL) {
        snprintf(kind, sizeof(kind), "%.*s", (int)(dot - channel), channel);
        i = variant_index(t, kind);
    }
    if (i < 0)
        i = variant_index(t, "default");
    return i < 0 ? NULL : &t->variants[i];
}

/* The variant a section of a template file is, created on first use. */
static og__variantconf_t *variant_of(struct parse *p, const char *section)
{
    og__tmplconf_t *t = p->tmpl;
    og__variantconf_t *v;
    size_t i;

    for (i = 0; i < t->nvariants; i++)
        if (strcmp(t->variants[i].name, section) == 0)
            return &t->variants[i];
    t->variants =
        og__xrealloc(t->variants, (t->nvariants + 1) * sizeof(*t->variants));
    v = &t->variants[t->nvariants++];
    memset(v, 0, sizeof(*v));
    v->name = og__xstrdup(section);
    v->line = section_line(p, section);
    return v;
}

static void template_key(struct parse *p, const char *section, const char *key,
                         const char *value)
{
    og__tmplconf_t *t = p->tmpl;
    og__variantconf_t *v;
    char why[128];

    if (strcmp(section, "template") == 0) {
        if (strcmp(key, "vars") == 0) {
            og__strv_free(t->vars);
            t->vars = og__split_list(value, NULL);
            t->vars_line = p->line;
        } else if (strcmp(key, "description") != 0) {
            err(p,
                "unknown key '%s' in [template] (known: vars, "
                "description)",
                key);
        }
        return;
    }
    if (!og__is_ident(section, 1)) {
        err(p,
            "[%s]: a variant is named after a channel instance or kind "
            "(a-z, 0-9, '-', '_', '.'), or default",
            section);
        return;
    }
    v = variant_of(p, section);
    if (strcmp(key, "subject") == 0) {
        free(v->subject);
        v->subject = og__xstrdup(value);
        v->subject_line = p->line;
    } else if (strcmp(key, "text") == 0 || strcmp(key, "html") == 0) {
        char **dst = key[0] == 't' ? &v->text : &v->html;

        free(*dst);
        *dst = og__xstrdup(value);
        *(key[0] == 't' ? &v->text_line : &v->html_line) = p->line;
    } else if (strcmp(key, "text_file") == 0 || strcmp(key, "html_file") == 0) {
        char **dst = key[0] == 't' ? &v->text_file : &v->html_file;

        free(*dst);
        *dst = og__xstrdup(value);
        *(key[0] == 't' ? &v->text_line : &v->html_line) = p->line;
    } else if (strcmp(key, "max_length") == 0) {
        if (og__parse_int(value, &v->max_length, why, sizeof(why)) != OG_OK)
            err(p, "max_length: %s, got '%s'", why, value);
        else if (v->max_length < 1)
            err(p, "max_length: must be at least 1, got %s", value);
    } else {
        err(p,
            "unknown key '%s' in [%s] (known: subject, text, text_file, "
            "html, html_file, max_length)",
            key, section);
    }
}

static void load_template(struct parse *p, const char *file)
{
    og__conf_t *c = p->conf;
    const char *base = strrchr(file, '/');
    og__tmplconf_t *t;
    size_t i;

    base = base ? base + 1 : file;
    c->templates =
        og__xrealloc(c->templates, (c->ntemplates + 1) * sizeof(*c->templates));
    t = &c->templates[c->ntemplates++];
    memset(t, 0, sizeof(*t));
    t->name = og__xstrndup(base, strlen(base) - 5);
    t->file = og__xstrdup(file);
    p->tmpl = t;
    reset_sections(p);
    parse_file(p, file, FILE_TEMPLATE);
    t->line = section_line(p, "template");
    if (!og__is_ident(t->name, 1))
        og__errlist_add(p->errs, file, 0,
                        "'%s' is not a valid template name; rename the file",
                        t->name);
    else if (strlen(t->name) > OG__MAX_NAME)
        og__errlist_add(p->errs, file, 0,
                        "the template name '%.20s...' has %zu characters, at "
                        "most %d; rename the file",
                        t->name, strlen(t->name), OG__MAX_NAME);
    if (t->line == 0)
        og__errlist_add(p->errs, file, 0, "missing [template] section");
    else if (t->vars == NULL)
        og__errlist_add(p->errs, file, t->line,
                        "[template] has no 'vars' key (the data it may "
                        "name, e.g. vars = customer, event)");
    for (i = 0; i < t->nvariants; i++) {
        og__variantconf_t *v = &t->variants[i];

        if (v->text != NULL && v->text_file != NULL)
            og__errlist_add(p->errs, file, v->text_line,
                            "[%s]: text and text_file are both set", v->name);
        if (v->html != NULL && v->html_file != NULL)
            og__errlist_add(p->errs, file, v->html_line,
                            "[%s]: html and html_file are both set", v->name);
        if (v->text == NULL && v->text_file == NULL && v->html == NULL &&
            v->html_file == NULL)
            og__errlist_add(p->errs, file, v->line, "[%s] has no text or html",
                            v->name);
    }
    if (t->line != 0 && variant_index(t, "default") < 0)
        og__errlist_add(p->errs, file, t->line,
                        "no [default] variant (used for channels without "
                        "their own)");
    p->tmpl = NULL;
    reset_sections(p);
}

/* A journey file: [journey] and [step NAME] keys, kept as text. */
static void journey_key(struct parse *p, const char *section, const char *key,
                        const char *value)
{
    og__journeyconf_t *j = p->jny;
    og__stepconf_t *st;
    const char *name;
    size_t i;

    if (strcmp(section, "journey") == 0) {
        add_opt(&j->opts, &j->nopts, key, value, p->line);
        return;
    }
    if (strncmp(section, "step ", 5) != 0)
        return; /* reported once per section by parse_file() */
    name = section + 5;
    for (i = 0; i < j->nsteps; i++)
        if (strcmp(j->steps[i].name, name) == 0)
            break;
    if (i == j->nsteps) {
        j->steps = og__xrealloc(j->steps, (j->nsteps + 1) * sizeof(*j->steps));
        st = &j->steps[j->nsteps++];
        memset(st, 0, sizeof(*st));
        st->name = og__xstrdup(name);
        st->line = section_line(p, section);
    }
    st = &j->steps[i];
    add_opt(&st->opts, &st->nopts, key, value, p->line);
}

static void load_journey(struct parse *p, const char *file)
{
    og__conf_t *c = p->conf;
    const char *base = strrchr(file, '/');
    og__journeyconf_t *j;
    size_t i;

    base = base ? base + 1 : file;
    c->journeys =
        og__xrealloc(c->journeys, (c->njourneys + 1) * sizeof(*c->journeys));
    j = &c->journeys[c->njourneys++];
    memset(j, 0, sizeof(*j));
    j->name = og__xstrndup(base, strlen(base) - 5);
    j->file = og__xstrdup(file);
    p->jny = j;
    reset_sections(p);
    parse_file(p, file, FILE_JOURNEY);
    j->line = section_line(p, "journey");
    if (!og__is_ident(j->name, 1))
        og__errlist_add(p->errs, file, 0,
                        "'%s' is not a valid journey name; rename the file",
                        j->name);
    else if (strlen(j->name) > OG__MAX_NAME)
        og__errlist_add(p->errs, file, 0,
                        "the journey name '%.20s...' has %zu characters, at "
                        "most %d; rename the file",
                        j->name, strlen(j->name), OG__MAX_NAME);
    if (j->line == 0)
        og__errlist_add(p->errs, file, 0, "missing [journey] section");
    for (i = 0; i < p->nsections; i++) {
        const char *sn = p->sections[i].name;
        size_t k, seen = 0;

        if (strncmp(sn, "step ", 5) != 0)
            continue;
        if (!og__is_ident(sn + 5, 0))
            og__errlist_add(p->errs, file, p->sections[i].line,
                            "[%s]: a step name is 1-64 characters of a-z, "
                            "0-9, '-', '_'",
                            sn);
        for (k = 0; k < p->nsections; k++)
            seen += strcmp(p->sections[k].name, sn) == 0;
        if (seen > 1 && section_line(p, sn) != p->sections[i].line)
            og__errlist_add(p->errs, file, p->sections[i].line,
                            "[%s] given twice (first at line %d)", sn,
                            section_line(p, sn));
    }
    p->jny = NULL;
    reset_sections(p);
}

static int handler(void *user, const char *section, const char *key,
                   const char *value)
{
    struct parse *p = user;

    if (p->continuation) {
        err(p,
            "continuation lines are not supported: put the value of '%s' "
            "on one line",
            key);
        return 1;
    }
    if (!first_time(p, section, key)) {
        err(p, "key '%s' given twice in [%s]", key, section);
        return 1;
    }
    if (section[0] == '\0') {
        err(p, "key '%s' outside of any section", key);
        return 1;
    }
    if (strncmp(section, "route", 5) == 0 &&
        (section[5] == ' ' || section[5] == '\0') && p->kind != FILE_CHANNEL &&
        p->kind != FILE_TEMPLATE && p->kind != FILE_JOURNEY) {
        if (route_section(p, section) != NULL)
            route_key(p, key, value);
        return 1;
    }
    switch (p->kind) {
    case FILE_MAIN:
        if (strcmp(section, "daemon") == 0) {
            daemon_key(p, key, value);
            return 1;
        }
        if (strcmp(section, "http") == 0) {
            http_key(p, key, value);
            return 1;
        }
        if (strcmp(section, "customers") == 0) {
            customers_key(p, key, value);
            return 1;
        }
        if (strcmp(section, "consent") == 0) {
            consent_key(p, key, value);
            return 1;
        }
        if (strcmp(section, "journeys") == 0) {
            add_opt(&p->conf->journey_opts, &p->conf->njourney_opts, key, value,
                    p->line);
            return 1;
        }
        return 1; /* reported once per section by parse_file() */
    case FILE_CHANNEL:
        if (strcmp(section, "channel") == 0 || strcmp(section, "config") == 0) {
            channel_key(p, section, key, value);
            return 1;
        }
        return 1;
    case FILE_ROUTES: return 1;
    case FILE_TEMPLATE: template_key(p, section, key, value); return 1;
    case FILE_JOURNEY: journey_key(p, section, key, value); return 1;
    }
    return 1;
}

/* Parses one file; problems go to p->errs. */
static void parse_file(struct parse *p, const char *file, enum file_kind kind)
{
    int rc;
    size_t i;

    p->file = file;
    p->kind = kind;
    p->line = 0;
    p->route = NULL;
    {
        char why[512];

        if (og__file_check(file, 0, why, sizeof(why)) != 0) {
            og__errlist_add(p->errs, file, 0, "%s", why);
            return;
        }
    }
    p->fp = fopen(file, "r");
    if (p->fp == NULL) {
        og__errlist_add(p->errs, file, 0, "cannot open: %s", strerror(errno));
        return;
    }
    rc = ini_parse_stream(reader, p, handler, p);
    if (rc > 0)
        og__errlist_add(p->errs, file, rc,
                        "syntax error: expected '[section]', 'key = value' or "
                        "a comment");
    else if (rc < 0)
        og__errlist_add(p->errs, file, 0, "cannot parse (error %d)", rc);
    if (ferror(p->fp))
        og__errlist_add(p->errs, file, 0, "read error");
    fclose(p->fp);
    p->fp = NULL;
    /* Every section must be one this kind of file knows. */
    for (i = 0; i < p->nsections; i++) {
        const char *s = p->sections[i].name;
        int is_route =
            strncmp(s, "route", 5) == 0 && (s[5] == ' ' || s[5] == '\0');
        const char *known = kind == FILE_MAIN
                                ? "[daemon], [http], [customers], [consent], "
                                  "[journeys], [route NAME]"
                            : kind == FILE_CHANNEL ? "[channel], [config]"
                            : kind == FILE_JOURNEY ? "[journey], [step NAME]"
                                                   : "[route NAME]";
        int ok = (kind == FILE_MAIN &&
                  (strcmp(s, "daemon") == 0 || strcmp(s, "http") == 0 ||
                   strcmp(s, "customers") == 0 || strcmp(s, "consent") == 0 ||
                   strcmp(s, "journeys") == 0 || is_route)) ||
                 (kind == FILE_JOURNEY &&
                  (strcmp(s, "journey") == 0 || strncmp(s, "step ", 5) == 0)) ||
                 (kind == FILE_CHANNEL &&
                  (strcmp(s, "channel") == 0 || strcmp(s, "config") == 0)) ||
                 (kind == FILE_ROUTES && is_route) || kind == FILE_TEMPLATE;

        if (!ok)
            og__errlist_add(p->errs, file, p->sections[i].line,
                            "unknown section [%s] (known: %s)", s, known);
    }
    og__strv_free(p->seen);
    p->seen = NULL;
    p->nseen = 0;
    free(p->seen_section);
    p->seen_section = NULL;
}

static void reset_sections(struct parse *p)
{
    size_t i;

    for (i = 0; i < p->nsections; i++)
        free(p->sections[i].name);
    free(p->sections);
    p->sections = NULL;
    p->nsections = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.conf files of dir, sorted. Missing dir: empty list. */
static char **conf_files(const char *dir, og__errlist_t *errs)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **v = og__xcalloc(1, sizeof(*v));
    size_t n = 0;

    if (d == NULL) {
        if (errno != ENOENT)
            og__errlist_add(errs, dir, 0, "cannot read directory: %s",
                            strerror(errno));
        return v;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (de->d_name[0] == '.' || len <= 5 ||
            strcmp(de->d_name + len - 5, ".conf") != 0)
            continue;
        v = og__xrealloc(v, (n + 2) * sizeof(*v));
        v[n++] = og__xasprintf("%s/%s", dir, de->d_name);
        v[n] = NULL;
    }
    closedir(d);
    qsort(v, n, sizeof(*v), cmp_str);
    return v;
}

static void load_channel(struct parse *p, const char *file)
{
    og__conf_t *c = p->conf;
    og__chconf_t ch;
    const char *base = strrchr(file, '/');
    size_t i;

    memset(&ch, 0, sizeof(ch));
    base = base ? base + 1 : file;
    ch.name = og__xstrndup(base, strlen(base) - 5);
    ch.file = og__xstrdup(file);
    ch.enabled = 1;
    ch.queue_max = 10000;
    ch.max_inflight = 64;
    ch.retry_base_ms = 1000;
    ch.retry_max_ms = 3600 * 1000;
    ch.retry_lifetime_ms = 24ull * 3600 * 1000;
    ch.heartbeat_ms = 10000;
    p->ch = &ch;
    reset_sections(p);
    {
        size_t before = p->errs->n;

        parse_file(p, file, FILE_CHANNEL);
        p->unread = p->errs->n > before && p->nsections == 0;
    }
    ch.line = section_line(p, "channel");
    ch.config_line = section_line(p, "config");
    if (ch.line == 0 && p->unread) {
        /* refused or unreadable: said already */
    } else if (ch.line == 0) {
        og__errlist_add(p->errs, file, 0, "missing [channel] section");
    } else if (ch.plugin == NULL) {
        og__errlist_add(p->errs, file, ch.line,
                        "[channel] has no 'plugin' key");
    }
    if (!og__is_ident(ch.name, 1))
        og__errlist_add(p->errs, file, ch.line,
                        "'%s' is not a valid channel name; rename the file or "
                        "set name =",
                        ch.name);
    else if (strlen(ch.name) > OG__MAX_NAME)
        og__errlist_add(p->errs, file, ch.line,
                        "the channel name '%.20s...' has %zu characters, at "
                        "most %d (it is the envelope's source.instance); "
                        "rename the file or set name =",
                        ch.name, strlen(ch.name), OG__MAX_NAME);
    else if (strcmp(ch.name, "core") == 0)
        og__errlist_add(p->errs, file, ch.line,
                        "channel name 'core' is reserved for the events the "
                        "core makes; rename the file or set name =");
    for (i = 0; i < c->nchannels; i++) {
        if (strcmp(c->channels[i].name, ch.name) == 0) {
            og__errlist_add(p->errs, file, ch.line,
                            "channel name '%s' already used by %s:%d", ch.name,
                            c->channels[i].file, c->channels[i].line);
        }
    }
    c->channels =
        og__xrealloc(c->channels, (c->nchannels + 1) * sizeof(*c->channels));
    c->channels[c->nchannels++] = ch;
    p->ch = NULL;
}

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

og__conf_t *og__conf_load(const char *path, const char *plugin_dir_override,
                          og__errlist_t *errs)
{
    size_t n0 = errs->n;
    og__conf_t *c = og__conf_load_partial(path, plugin_dir_override, errs);

    if (errs->n > n0) {
        og__conf_free(c);
        return NULL;
    }
    return c;
}

og__conf_t *og__conf_load_partial(const char *path,
                                  const char *plugin_dir_override,
                                  og__errlist_t *errs)
{
    og__conf_t *c = og__xcalloc(1, sizeof(*c));
    struct parse p;
    char **files;
    size_t i, j, k;
    char *slash;

    c->refs = 1;
    memset(&p, 0, sizeof(p));
    p.conf = c;
    p.errs = errs;
    if (is_dir(path))
        c->main_file = og__xasprintf("%s/omnigate.conf", path);
    else
        c->main_file = og__xstrdup(path);
    slash = strrchr(c->main_file, '/');
    c->dir = slash ? og__xstrndup(c->main_file, (size_t)(slash - c->main_file))
                   : og__xstrdup(".");
    c->plugin_dir = og__xstrdup(DEFAULT_PLUGIN_DIR);
    c->state_dir = og__xstrdup(LOCALSTATEDIR "/lib/omnigate");
    c->shutdown_timeout_ms = 10000;
    c->log_level = OG_LOG_INFO;
    c->queue_max = 65536;
    c->max_event_bytes = 256 * 1024;
    c->durability_power = 1;
    c->dedup_window_ms = 24ull * 3600 * 1000;
    c->timeline_retention_ms = 400ull * 24 * 3600 * 1000;
    c->max_backlog = 1000000;
    c->public_listen = og__xstrdup("127.0.0.1:8088");
    c->admin_listen = NULL; /* a socket in state_dir unless set */
    c->http_max_header_bytes = 32 * 1024;
    c->http_max_body_bytes = 1024 * 1024;
    c->http_read_timeout_ms = 10000;
    c->http_idle_timeout_ms = 60000;
    c->http_max_connections = 4096;
    c->http_client_connections = 1024;
    c->http_client_rate = 0;
    p.channels_dir = og__xasprintf("%s/channels.d", c->dir);
    p.routes_dir = og__xasprintf("%s/routes.d", c->dir);

    parse_file(&p, c->main_file, FILE_MAIN);
    reset_sections(&p);
    admin_access(c, errs);
    if (plugin_dir_override != NULL) {
        free(c->plugin_dir);
        c->plugin_dir = og__xstrdup(plugin_dir_override);
    }

    files = conf_files(p.channels_dir, errs);
    for (i = 0; files[i] != NULL; i++)
        load_channel(&p, files[i]);
    og__strv_free(files);

    files = conf_files(p.routes_dir, errs);
    for (i = 0; files[i] != NULL; i++) {
        reset_sections(&p);
        parse_file(&p, files[i], FILE_ROUTES);
    }
    og__strv_free(files);
    reset_sections(&p);

    if (c->templates_dir == NULL)
        c->templates_dir = og__xasprintf("%s/templates", c->dir);
    files = conf_files(c->templates_dir, errs);
    for (i = 0; files[i] != NULL; i++)
        load_template(&p, files[i]);
    og__strv_free(files);

    if (c->journeys_dir == NULL)
        c->journeys_dir = og__xasprintf("%s/journeys.d", c->dir);
    files = conf_files(c->journeys_dir, errs);
    for (i = 0; files[i] != NULL; i++)
        load_journey(&p, files[i]);
    og__strv_free(files);

    /* Routes must be complete and name known channels. */
    for (i = 0; i < c->nroutes; i++) {
        og__routeconf_t *r = &c->routes[i];
        char **lists[2] = {r->from, r->to};
        int lines[2] = {r->from_line, r->to_line};

        if (r->match == NULL)
            og__errlist_add(errs, r->file, r->line,
                            "[route %s] has no 'match' key", r->name);
        if (r->to == NULL)
            og__errlist_add(errs, r->file, r->line,
                            "[route %s] has no 'to' key", r->name);
        for (k = 0; k < 2; k++) {
            for (j = 0; lists[k] != NULL && lists[k][j] != NULL; j++) {
                /* "core" is the source of the events the core makes
                 * (customer.merged, customer.split). */
                if (strpbrk(lists[k][j], "*?[") == NULL &&
                    !(k == 0 && strcmp(lists[k][j], "core") == 0) &&
                    og__conf_channel(c, lists[k][j]) == NULL)
                    og__errlist_add(errs, r->file, lines[k],
                                    "route '%s' names unknown channel '%s'",
                                    r->name, lists[k][j]);
            }
        }
    }
    free(p.channels_dir);
    free(p.routes_dir);
    return c;
}

void og__chconf_free(og__chconf_t *ch)
{
    if (ch == NULL)
        return;
    opts_free(ch->opts, ch->nopts);
    og__strv_free(ch->stock);
    free(ch->name);
    free(ch->file);
    free(ch->plugin);
}

og__chconf_t *og__chconf_dup(const og__chconf_t *ch)
{
    og__chconf_t *d = og__xcalloc(1, sizeof(*d));
    size_t i;

    *d = *ch;
    d->name = og__xstrdup(ch->name);
    d->file = og__xstrdup(ch->file);
    d->plugin = ch->plugin ? og__xstrdup(ch->plugin) : NULL;
    d->stock = NULL;
    if (ch->stock != NULL) {
        size_t n = 0;

        while (ch->stock[n] != NULL)
            n++;
        d->stock = og__xcalloc(n + 1, sizeof(char *));
        for (i = 0; i < n; i++)
            d->stock[i] = og__xstrdup(ch->stock[i]);
    }
    d->opts = og__xcalloc(ch->nopts, sizeof(*d->opts));
    for (i = 0; i < ch->nopts; i++) {
        d->opts[i].key = og__xstrdup(ch->opts[i].key);
        d->opts[i].value = og__xstrdup(ch->opts[i].value);
        d->opts[i].line = ch->opts[i].line;
    }
    return d;
}

og__conf_t *og__conf_ref(og__conf_t *c)
{
    c->refs++;
    return c;
}

void og__conf_free(og__conf_t *c)
{
    size_t i;

    if (c == NULL || --c->refs > 0)
        return;
    for (i = 0; i < c->nchannels; i++)
        og__chconf_free(&c->channels[i]);
    og__strv_free(c->trait_names);
    free(c->trait_rules);
    for (i = 0; i < c->ntemplates; i++) {
        og__tmplconf_t *t = &c->templates[i];
        size_t k;

        for (k = 0; k < t->nvariants; k++) {
            og__variantconf_t *v = &t->variants[k];

            free(v->name);
            free(v->subject);
            free(v->text);
            free(v->html);
            free(v->text_file);
            free(v->html_file);
        }
        free(t->variants);
        og__strv_free(t->vars);
        free(t->name);
        free(t->file);
    }
    free(c->templates);
    free(c->templates_dir);
    for (i = 0; i < c->njourneys; i++) {
        og__journeyconf_t *j = &c->journeys[i];
        size_t k;

        for (k = 0; k < j->nsteps; k++) {
            free(j->steps[k].name);
            opts_free(j->steps[k].opts, j->steps[k].nopts);
        }
        free(j->steps);
        opts_free(j->opts, j->nopts);
        free(j->name);
        free(j->file);
    }
    free(c->journeys);
    free(c->journeys_dir);
    opts_free(c->journey_opts, c->njourney_opts);
    og__strv_free(c->transactional_bypass);
    free(c->channels);
    for (i = 0; i < c->nroutes; i++) {
        free(c->routes[i].name);
        free(c->routes[i].file);
        og__strv_free(c->routes[i].match);
        og__strv_free(c->routes[i].from);
        og__strv_free(c->routes[i].to);
        free(c->routes[i].when);
    }
    free(c->routes);
    free(c->main_file);
    free(c->dir);
    free(c->plugin_dir);
    free(c->state_dir);
    free(c->public_listen);
    free(c->admin_listen);
    free(c->admin_tokens_file);
    for (i = 0; i < c->nadmin_tokens; i++)
        free(c->admin_tokens[i].token);
    free(c->admin_tokens);
    og__strv_free(c->admin_hosts);
    free(c);
}

const og__chconf_t *og__conf_channel(const og__conf_t *conf, const char *name)
{
    size_t i;

    for (i = 0; i < conf->nchannels; i++)
        if (strcmp(conf->channels[i].name, name) == 0)
            return &conf->channels[i];
    return NULL;
}

const og__opt_t *og__opts_find(const og__opt_t *opts, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

const og__opt_t *og__chconf_opt(const og__chconf_t *ch, const char *key)
{
    return og__opts_find(ch->opts, ch->nopts, key);
}
