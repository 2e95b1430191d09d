/*
 * answers.c: admin answers rendered from the domain's structs
 * (answers.h).
 */
#include "config.h"

#include <string.h>

#include "base/json.h"
#include "domain/journeys.h"
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

/* ,"key":"value" or ,"key":null */
static void field(og__sbuf_t *out, const char *key, const char *value)
{
    og__sbuf_printf(out, ",\"%s\":", key);
    if (value == NULL)
        og__sbuf_printf(out, "null");
    else
        og__sbuf_json(out, value, strlen(value));
}

struct timeline {
    og__sbuf_t entries, runs;
    size_t nentries, nruns;
};

static void entry(void *data, const og__timeline_entry_t *e)
{
    struct timeline *t = data;
    og__sbuf_t *out = &t->entries;

    og__sbuf_printf(out, "%s{\"at\":%llu", t->nentries++ ? "," : "",
                    (unsigned long long)e->at_ms);
    field(out, "kind", e->kind);
    field(out, "type", e->type);
    field(out, "channel", e->channel);
    field(out, "ref", e->ref);
    field(out, "correlation", e->correlation);
    field(out, "journey", e->journey);
    field(out, "detail", e->detail);
    og__sbuf_printf(out, "}");
}

static void run(void *data, const og__run_view_t *r)
{
    struct timeline *t = data;
    og__sbuf_t *out = &t->runs;

    og__sbuf_printf(out, "%s{\"id\":%lld", t->nruns++ ? "," : "",
                    (long long)r->id);
    field(out, "journey", r->journey);
    field(out, "entity", r->entity);
    og__sbuf_printf(out, ",\"state\":\"%s\",\"step\":%d",
                    og__run_state_name(r->state), r->step + 1);
    if (r->state == OG__RUN_ACTIVE)
        og__sbuf_printf(out, ",\"due\":%llu", (unsigned long long)r->due_ms);
    field(out, "correlation", r->correlation);
    field(out, "trigger", r->trigger);
    og__sbuf_printf(out, ",\"started\":%llu,\"updated\":%llu",
                    (unsigned long long)r->started_ms,
                    (unsigned long long)r->updated_ms);
    field(out, "note", r->note);
    og__sbuf_printf(out, "}");
}

og_err_t og__answer_timeline(og__store_t *s, const char *id, size_t limit,
                             og__sbuf_t *out)
{
    struct timeline t;
    og__timeline_reader_t rd = {&t, entry, run};
    char canon[40] = "";
    og_err_t rc;

    memset(&t, 0, sizeof(t));
    rc = s->ops->timeline(s, id, limit, canon, &rd);
    if (rc == OG_OK) {
        og__sbuf_printf(out, "{\"customer\":");
        og__sbuf_json(out, canon, strlen(canon));
        og__sbuf_printf(out, ",\"entries\":[%s],\"runs\":[%s]}",
                        t.entries.p ? t.entries.p : "",
                        t.runs.p ? t.runs.p : "");
    }
    og__sbuf_free(&t.entries);
    og__sbuf_free(&t.runs);
    return rc;
}

static void conversation(void *data, const og__conversation_view_t *v)
{
    og__sbuf_t *out = data;

    og__sbuf_printf(out, "{\"id\":");
    og__sbuf_json(out, v->id, strlen(v->id));
    field(out, "customer", v->customer);
    og__sbuf_printf(out,
                    ",\"state\":\"%s\",\"opened\":%llu,\"updated\":%llu,"
                    "\"resolved\":",
                    v->resolved ? "resolved" : "open",
                    (unsigned long long)v->opened_ms,
                    (unsigned long long)v->updated_ms);
    if (v->has_resolved_ms)
        og__sbuf_printf(out, "%llu", (unsigned long long)v->resolved_ms);
    else
        og__sbuf_printf(out, "null");
    field(out, "last_channel", v->last_channel);
    og__sbuf_printf(out, ",\"messages\":%lld,\"thread_keys\":%lld}",
                    (long long)v->messages, (long long)v->thread_keys);
}

og_err_t og__answer_conversation(og__store_t *s, const char *id, int resolve,
                                 uint64_t now_ms, og__sbuf_t *out)
{
    return s->ops->conversation(s, id, resolve, now_ms, conversation, out);
}
