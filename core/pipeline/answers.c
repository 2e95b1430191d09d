/*
 * answers.c: admin answers rendered from the domain's structs
 * (answers.h).
 */
#include "config.h"

#include <string.h>

#include "base/json.h"
#include "pipeline/answers.h"

struct levels {
    og__sbuf_t *out;
    size_t n;
};

static void level(void *data, const og__stock_level_t *l)
{
    struct levels *v = data;

    og__sbuf_printf(v->out, v->n++ ? "," : "");
    og__sbuf_json(v->out, l->location, strlen(l->location));
    og__sbuf_printf(v->out,
                    ":{\"on_hand\":%lld,\"reserved\":%lld,\"available\":%lld,"
                    "\"version\":%lld,\"updated\":%llu}",
                    (long long)l->on_hand, (long long)l->reserved,
                    (long long)(l->on_hand - l->reserved),
                    (long long)l->version, (unsigned long long)l->updated_ms);
}

og_err_t og__answer_stock(og__stock_repo_t *r, const char *sku,
                          const og__stock_rules_t *rules, og__sbuf_t *out)
{
    struct levels v = {out, 0};
    og_err_t rc;
    size_t k;

    og__sbuf_printf(out, "{\"sku\":");
    og__sbuf_json(out, sku, strlen(sku));
    og__sbuf_printf(out, ",\"locations\":{");
    if ((rc = r->ops->levels(r, sku, level, &v)) != OG_OK)
        return rc;
    if (v.n == 0)
        return OG_ERR_NOT_FOUND;
    og__sbuf_printf(out, "},\"channels\":{");
    for (k = 0; rules != NULL && k < rules->n; k++) {
        const og__stock_chan_t *c = &rules->chans[k];
        int64_t a = 0;

        if ((rc = og__stock_available(r, c, sku, &a)) != OG_OK)
            return rc;
        og__sbuf_printf(out, k ? "," : "");
        og__sbuf_json(out, c->channel, strlen(c->channel));
        og__sbuf_printf(out, ":{\"available\":%lld,\"safety_buffer\":%lld}",
                        (long long)(a > 0 ? a : 0), (long long)c->buffer);
    }
    og__sbuf_printf(out, "}}");
    return OG_OK;
}
