/*
 * conf.h: the configuration model and its loader.
 *
 * Layout (omnigate.conf(5), docs/man/omnigate.conf.5):
 *   omnigate.conf          [daemon] settings and optional [route NAME]s
 *   channels.d/NAME.conf   one channel instance: [channel] and [config]
 *   routes.d/NAME.conf     [route NAME] sections
 *   templates/NAME.conf    one message template (docs/templates.md)
 *   journeys.d/NAME.conf   one journey (docs/journeys.md)
 *
 * Loading is strict: every problem is collected as "file:line: message" and
 * the whole configuration is refused if there is any.
 */
#ifndef OG_CORE_CONF_H
#define OG_CORE_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <omnigate/og_types.h>

/* A list of "file:line: message" strings. */
/* How a trait of two merged profiles is chosen (docs/customers.md). */
typedef enum og__trait_rule_e {
    OG__TRAIT_NEWEST,   /* the value set last (default) */
    OG__TRAIT_OLDEST,   /* the value set first */
    OG__TRAIT_NON_EMPTY /* the survivor's unless empty, else the newest */
} og__trait_rule_t;

typedef struct og__errlist_s {
    char **v;
    size_t n;
} og__errlist_t;

void og__errlist_add(og__errlist_t *e, const char *file, int line,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void og__errlist_free(og__errlist_t *e);

/* One key = value of a channel's [config] section. */
typedef struct og__opt_s {
    char *key;
    char *value;
    int line;
} og__opt_t;

/* One channel instance (one channels.d file). */
typedef struct og__chconf_s {
    char *name; /* name= or the file's base name */
    char *file;
    int line;        /* line of [channel] */
    int config_line; /* line of [config], or 0 */
    char *plugin;    /* plugin name */
    int plugin_line;
    int enabled;                /* enabled = yes (default) */
    int required;               /* required = no (default) */
    int64_t queue_max;          /* this channel's delivery queue, in events */
    int64_t max_inflight;       /* deliveries awaiting the plugin at once */
    uint64_t retry_base_ms;     /* first retry after about this long */
    uint64_t retry_max_ms;      /* longest wait between attempts */
    uint64_t retry_lifetime_ms; /* then the delivery is a dead letter */
    char phone_region[3]; /* ISO 3166 code assumed for phone keys, or "" */
    /* Shared stock (docs/stock.md): the locations the channel sells from
     * (NULL: it takes no part; {"*"}: every location) and the units kept
     * back from its availability. */
    char **stock;
    int64_t safety_buffer;
    /* isolation = process (docs/isolation.md): the plugin runs in a host
     * process of its own, killed past memory_limit bytes resident (0:
     * no limit) or when it leaves a heartbeat unanswered heartbeat_ms. */
    int isolated;
    uint64_t memory_limit;
    uint64_t heartbeat_ms;
    og__opt_t *opts;
    size_t nopts;
} og__chconf_t;

/* One [route NAME] section. */
typedef struct og__routeconf_s {
    char *name;
    char *file;
    int line;
    char **match; /* event type patterns, NULL-terminated */
    char **from;  /* source instances, NULL-terminated (empty: any) */
    char **to;    /* target instances, NULL-terminated */
    int from_line;
    int to_line;
    char *when; /* conditions, or NULL */
    int when_line;
} og__routeconf_t;

/* One variant of a template ([email], [social], [default]...). */
typedef struct og__variantconf_s {
    char *name; /* a channel instance, a channel kind, or "default" */
    int line;
    /* each part inline, or from a file (relative to templates_dir) */
    char *subject, *text, *html;
    char *text_file, *html_file;
    int subject_line, text_line, html_line;
    int64_t max_length; /* of the text, in characters; 0: none */
} og__variantconf_t;

/* One templates_dir/NAME.conf (docs/templates.md). */
typedef struct og__tmplconf_s {
    char *name;
    char *file;
    int line;    /* of [template] */
    char **vars; /* the data a template may name at its top level */
    int vars_line;
    og__variantconf_t *variants;
    size_t nvariants;
} og__tmplconf_t;

/* One [step NAME] of a journey, its keys as written (journeys.c reads
 * them). */
typedef struct og__stepconf_s {
    char *name;
    int line;
    og__opt_t *opts;
    size_t nopts;
} og__stepconf_t;

/* One journeys_dir/NAME.conf (docs/journeys.md): [journey] keys and the
 * steps in file order. */
typedef struct og__journeyconf_s {
    char *name;
    char *file;
    int line; /* of [journey] */
    og__opt_t *opts;
    size_t nopts;
    og__stepconf_t *steps;
    size_t nsteps;
} og__journeyconf_t;

/* Channel, template and journey names: at most this many characters (a
 * channel's is the envelope's source.instance, 1-64). */
#define OG__MAX_NAME 64

typedef struct og__conf_s {
    unsigned refs; /* og__conf_ref(); loop thread */
    char *main_file;
    char *dir; /* directory of main_file */
    char *plugin_dir;
    char *state_dir;
    uint64_t shutdown_timeout_ms;
    og_log_level_t log_level;
    int64_t queue_max;              /* bound of the dispatch queue, in events */
    int64_t max_event_bytes;        /* largest accepted envelope */
    int durability_power;           /* durability = power (1) or process (0) */
    uint64_t dedup_window_ms;       /* ids are idempotency keys this long */
    uint64_t timeline_retention_ms; /* timeline and finished runs kept */
    int64_t max_backlog;            /* undelivered deliveries before 503 */
    int outside_paths; /* text_file and the like may leave the config dir */
    /* [http] */
    char *public_listen;     /* "127.0.0.1:8088" or "unix:/path" */
    char *admin_listen;      /* "127.0.0.1:8089" or "unix:/path" */
    int admin_default;       /* admin_listen not set: a socket in state_dir */
    char *admin_tokens_file; /* "ROLE TOKEN" lines, or NULL */
    int admin_tokens_line;
    struct og__admin_token_s {
        int role; /* 0 read, 1 operate, 2 erase: each includes the lower */
        char *token;
    } * admin_tokens;
    size_t nadmin_tokens;
    char **admin_hosts; /* Host names the admin API answers besides
                           loopback, NULL-terminated, or NULL */
    uint64_t http_max_header_bytes;
    uint64_t http_max_body_bytes;
    uint64_t http_read_timeout_ms;
    uint64_t http_idle_timeout_ms;
    int64_t http_max_connections;
    int64_t http_client_connections; /* per peer address, 0: no limit */
    int64_t http_client_rate;        /* requests/s per peer, 0: no limit */
    /* [customers] */
    og__trait_rule_t trait_default; /* merge rule of traits without one */
    char **trait_names;             /* trait.NAME = rule */
    og__trait_rule_t *trait_rules;
    size_t ntraits;
    /* [consent] */
    int marketing_default;       /* marketing allowed without a statement */
    char **transactional_bypass; /* channels, NULL-terminated, or NULL */
    og__chconf_t *channels;
    size_t nchannels;
    og__routeconf_t *routes;
    size_t nroutes;
    char *templates_dir;
    og__tmplconf_t *templates;
    size_t ntemplates;
    /* [journeys] of the main file (defaults for every journey) */
    og__opt_t *journey_opts;
    size_t njourney_opts;
    char *journeys_dir;
    og__journeyconf_t *journeys;
    size_t njourneys;
} og__conf_t;

/*
 * og__conf_load: read the configuration at path (a directory holding
 * omnigate.conf, or the main file itself). Returns the configuration, or
 * NULL with every problem appended to errs. plugin_dir_override, when not
 * NULL, replaces [daemon] plugin_dir (the --plugin-dir option).
 */
og__conf_t *og__conf_load(const char *path, const char *plugin_dir_override,
                          og__errlist_t *errs);
/* Like og__conf_load() but returns what was read even when errs grew, so
 * that a checker can go on validating (--check-config reports everything
 * in one run). Never NULL. */
og__conf_t *og__conf_load_partial(const char *path,
                                  const char *plugin_dir_override,
                                  og__errlist_t *errs);
/* Drops a reference; the last frees the configuration. */
void og__conf_free(og__conf_t *conf);
og__conf_t *og__conf_ref(og__conf_t *conf);

/* The channel called name, or NULL. */
const og__chconf_t *og__conf_channel(const og__conf_t *conf, const char *name);
/* The entry for key among opts, or NULL. */
const og__opt_t *og__opts_find(const og__opt_t *opts, size_t n,
                               const char *key);
/* The [config] entry for key, or NULL. */
const og__opt_t *og__chconf_opt(const og__chconf_t *ch, const char *key);

/* The variant of template t for channel (an instance name: its own
 * variant, else its kind's, the part before a '.', else [default]). */
const og__variantconf_t *og__tmplconf_variant(const og__tmplconf_t *t,
                                              const char *channel);

/* Deep copy of one channel's configuration. */
og__chconf_t *og__chconf_dup(const og__chconf_t *ch);
void og__chconf_free(og__chconf_t *ch);

#endif /* OG_CORE_CONF_H */
