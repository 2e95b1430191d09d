/*
 * templates.h: messages written once and rendered per channel
 * (docs/templates.md). A template (templates_dir/NAME.conf) has variants
 * named after channel instances or kinds and a [default]; each has a
 * subject (email), a text and an HTML part, inline or from files, written
 * in Mustache (mustache.h).
 *
 * Everything is checked when the configuration is loaded (--check-config,
 * start, reload): Mustache syntax, files that cannot be read, partials
 * that do not exist, and names at a template's top level that are not
 * among the data it declares (vars), so that a typo never reaches a
 * customer.
 */
#ifndef OG_CORE_TEMPLATES_H
#define OG_CORE_TEMPLATES_H

#include <msgpack.h>

#include "config/conf.h"
#include "base/util.h"

typedef struct og__templates_s og__templates_t;

/* Reads, parses and checks every template of conf; problems go to errs
 * as "file:line: message". Never NULL. */
og__templates_t *og__templates_build(const og__conf_t *conf,
                                     og__errlist_t *errs);
void og__templates_free(og__templates_t *ts);

/* One rendered message. */
typedef struct og__message_s {
    og__sbuf_t subject, text, html; /* p is NULL for a part the variant
                                     * does not have */
    int truncated;                  /* text was cut at max_length */
} og__message_t;

void og__message_free(og__message_t *m);

/*
 * og__templates_render: template name for channel (an instance: its own
 * variant, its kind's, or [default]) over data (a map with the template's
 * vars). HTML parts are escaped, subject and text are not; text longer
 * than the variant's max_length characters is cut, ending in "…".
 * OG_ERR_NOT_FOUND when there is no such template.
 */
og_err_t og__templates_render(const og__templates_t *ts, const char *name,
                              const char *channel, const msgpack_object *data,
                              og__message_t *out, char *why, size_t whylen);

#endif /* OG_CORE_TEMPLATES_H */
