/*
 * test_stock.c: the shared stock rules (domain/stock.h) run on two
 * implementations of the stock repository: the real SQLite store, each
 * event accepted through its commit, and the in-memory one of
 * mem_repos.c, each event applied by og__stock_apply(). Absolute counts
 * and deltas with versions, duplicated and out-of-order (stock never moves
 * backwards); order reservations, releases and fulfilment; per-channel
 * availability with safety buffers and the stock.out / stock.back events
 * when it crosses zero; an order.* event from a POS that names only the
 * order gets the order's customer; every error of the repository ends
 * the rules with it.
 */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "domain/identity.h"
#include "domain/stock.h"
#include "event/event.h"
#include "mem_repos.h"
#include "pipeline/answers.h"
#include "store/store.h"
#include "testutil.h"

static char *dir;
static og__store_t *st;
static uint64_t now_ms = 1790000000000ull;
static int seq;

/* the events the store made (stock.out / stock.back), as "type channel" */
static char made[16][80];
static size_t nmade;
static uint8_t *bodies[64];
static char ids[64][72];
static size_t nbodies;

/* Records the event the rules made as "type channel"; its id kept. */
static const char *record(const uint8_t *body, size_t len, uint64_t *at)
{
    char why[128], tmp[80];
    og_event_t *e = og__event_restore(body, len, why, sizeof(why));
    const char *ch = "";
    size_t n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    og__event_get_str(e, "props.channel", &ch, &n);
    snprintf(tmp, sizeof(tmp), "%s %.*s", e->type, (int)n, ch);
    if (nmade < 16)
        snprintf(made[nmade++], sizeof(made[0]), "%s", tmp);
    CU_ASSERT_FATAL(nbodies < 64);
    snprintf(ids[nbodies], sizeof(ids[0]), "%s", e->id);
    if (at != NULL)
        *at = e->received_ms;
    og__event_unref(e);
    return ids[nbodies];
}

/* The store's hooks->made: the event becomes an item of the commit. */
static int made_hook(void *data, uint8_t *body, size_t len,
                     og__store_item_t *ev)
{
    (void)data;
    memset(ev, 0, sizeof(*ev));
    ev->event_id = record(body, len, &ev->received_ms);
    bodies[nbodies++] = body;
    ev->body = body;
    ev->len = len;
    return 0;
}

/* The rules' made function in memory: recorded, then dropped. */
static og_err_t mem_made(void *data, uint8_t *body, size_t len)
{
    (void)data;
    record(body, len, NULL);
    free(body);
    return OG_OK;
}

static const char *const web_locs[] = {"*", NULL};
static const char *const pos_locs[] = {"store-12", NULL};
static const og__stock_chan_t chans[] = {
    {"web", web_locs, 2, NULL},
    {"pos.store-12", pos_locs, 0, "store-12"},
};
static const og__stock_rules_t rules = {chans, 2};
static og__store_hooks_t hooks;
static tu_repos_t rp;
static og__stock_repo_t *mem; /* in memory: rp.stock */

static og_err_t accept_one(og__store_item_t *it);

/* Packs one string pair. */
static void kv(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

/* Accepts one event from instance src whose envelope tail (pairs after
 * v and type) pack() writes; cust (may be NULL) is its customer as
 * resolved (empty: none), then the customer it ended with.
 * Returns what the backend answered. */
static og_err_t submit(const char *src, const char *type, size_t pairs,
                       void (*pack)(msgpack_packer *pk, const void *arg),
                       const void *arg, char cust[40])
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    og_event_t *ev;
    og__store_item_t it;
    og_err_t rc;
    char why[256], id[32];

    tu_pack_head(&sb, &pk, type, pairs + 1);
    snprintf(id, sizeof(id), "st-%d", ++seq);
    kv(&pk, "id", id);
    pack(&pk, arg);
    ev = og__event_accept((const uint8_t *)sb.data, sb.size, src, "pos",
                          1 << 20, &rc, NULL, why, sizeof(why));
    msgpack_sbuffer_destroy(&sb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    memset(&it, 0, sizeof(it));
    it.event_id = ev->id;
    it.body = ev->data;
    it.len = ev->len;
    it.received_ms = ++now_ms;
    it.type = ev->type;
    it.source = ev->instance;
    if (cust != NULL) /* as if resolution had found it */
        snprintf(it.customer, sizeof(it.customer), "%s", cust);
    rc = accept_one(&it);
    CU_ASSERT(rc != OG_OK || it.result == OG__ACCEPT_NEW);
    if (cust != NULL)
        snprintf(cust, 40, "%s", it.customer);
    free(it.stamped);
    og__event_unref(ev);
    return rc;
}

static void commit(const char *src, const char *type, size_t pairs,
                   void (*pack)(msgpack_packer *pk, const void *arg),
                   const void *arg, char cust[40])
{
    CU_ASSERT_EQUAL(submit(src, type, pairs, pack, arg, cust), OG_OK);
}

struct inv {
    const char *sku, *loc;
    int64_t value; /* on_hand, or the delta */
    int delta;
    int64_t version;
};

static void pack_inv(msgpack_packer *pk, const void *arg)
{
    const struct inv *i = arg;

    msgpack_pack_str_with_body(pk, "props", 5);
    msgpack_pack_map(pk, 4);
    kv(pk, "sku", i->sku);
    kv(pk, "location", i->loc);
    msgpack_pack_str_with_body(pk, i->delta ? "delta" : "on_hand",
                               i->delta ? 5 : 7);
    msgpack_pack_int64(pk, i->value);
    msgpack_pack_str_with_body(pk, "version", 7);
    msgpack_pack_int64(pk, i->version);
}

static void inventory(const char *sku, const char *loc, int64_t value,
                      int delta, int64_t version)
{
    struct inv i = {sku, loc, value, delta, version};

    commit("pos.store-12", "inventory.changed", 1, pack_inv, &i, NULL);
}

struct order {
    const char *id, *sku, *pickup, *email;
    int64_t qty;
};

static void pack_order(msgpack_packer *pk, const void *arg)
{
    const struct order *o = arg;

    msgpack_pack_str_with_body(pk, "entity", 6);
    msgpack_pack_map(pk, 2);
    kv(pk, "kind", "order");
    kv(pk, "id", o->id);
    if (o->email != NULL) {
        msgpack_pack_str_with_body(pk, "customer", 8);
        msgpack_pack_str_with_body(pk, o->email, strlen(o->email));
    }
    if (o->sku == NULL)
        return;
    msgpack_pack_str_with_body(pk, "props", 5);
    msgpack_pack_map(pk, o->pickup ? 2 : 1);
    if (o->pickup)
        kv(pk, "pickup_location", o->pickup);
    msgpack_pack_str_with_body(pk, "lines", 5);
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 2);
    kv(pk, "sku", o->sku);
    msgpack_pack_str_with_body(pk, "qty", 3);
    msgpack_pack_int64(pk, o->qty);
}

static void order(const char *src, const char *type, const char *id,
                  const char *sku, int64_t qty, const char *pickup)
{
    struct order o = {id, sku, pickup, NULL, qty};

    commit(src, type, sku ? 2 : 1, pack_order, &o, NULL);
}

/* The JSON of GET /v1/stock/SKU. */
static char *stock(const char *sku)
{
    og__sbuf_t b = {0};
    og_err_t rc = og__answer_stock(rp.stock, sku, &rules, &b);

    if (rc != OG_OK) {
        og__sbuf_free(&b);
        return NULL;
    }
    return b.p;
}

static int has(const char *json, const char *needle)
{
    int ok = json != NULL && strstr(json, needle) != NULL;

    if (!ok)
        fprintf(stderr, "\n  want %s in %s\n", needle, json ? json : "(none)");
    return ok;
}

static void check_stock(const char *sku, const char *needle)
{
    char *j = stock(sku);

    CU_ASSERT_TRUE(has(j, needle));
    free(j);
}

/* On SQLite each event goes through the store's commit, the real path;
 * in memory, what that commit does for stock, without a store. */
static og_err_t accept_one(og__store_item_t *it)
{
    og__stock_input_t in = {it->type,       it->event_id, it->source,
                            it->customer,   it->body,     it->len,
                            it->received_ms};
    char err[256];
    int found = 0;
    og_err_t rc;

    if (st != NULL)
        return st->ops->commit(st, it, 1, NULL, 0, &hooks, err, sizeof(err));
    it->result = OG__ACCEPT_NEW;
    if (it->customer[0] == '\0' &&
        (rc = og__stock_order_customer(mem, it->type, it->body, it->len,
                                       it->customer, sizeof(it->customer),
                                       &found)) != OG_OK)
        return rc;
    return og__stock_apply(mem, &in, &rules, mem_made, NULL);
}

static void begin(void)
{
    nmade = 0;
    tu_repos_open(&rp, dir);
    st = rp.store;
    mem = st == NULL ? rp.stock : NULL;
    memset(&hooks, 0, sizeof(hooks));
    hooks.stamp = og__stamp_hook;
    hooks.stock = &rules;
    hooks.made = made_hook;
}

static void end(void)
{
    size_t i;

    tu_repos_close(&rp);
    st = NULL;
    mem = NULL;
    for (i = 0; i < nbodies; i++)
        free(bodies[i]);
    nbodies = 0;
}

static void test_versions(void)
{
    begin();
    CU_ASSERT_PTR_NULL(stock("A-1")); /* never seen */
    inventory("A-1", "store-12", 10, 0, 5);
    check_stock("A-1", "\"store-12\":{\"on_hand\":10,\"reserved\":0");
    inventory("A-1", "store-12", -2, 1, 7);
    check_stock("A-1", "\"on_hand\":8,");
    /* the same delta again (another event id, the same version) */
    inventory("A-1", "store-12", -2, 1, 7);
    check_stock("A-1", "\"on_hand\":8,");
    /* a count of version 6 arrives after the delta of version 7: the
     * delta stays on top of it */
    inventory("A-1", "store-12", 9, 0, 6);
    check_stock("A-1", "\"on_hand\":7,");
    /* an older count, and a delta the count of version 6 holds */
    inventory("A-1", "store-12", 20, 0, 4);
    inventory("A-1", "store-12", 5, 1, 6);
    check_stock("A-1", "\"on_hand\":7,\"reserved\":0,\"available\":7,"
                       "\"version\":6");
    inventory("A-1", "store-12", 1, 1, 8);
    check_stock("A-1", "\"on_hand\":8,");
    /* another location is its own count */
    inventory("A-1", "warehouse", 100, 0, 1);
    check_stock("A-1", "\"warehouse\":{\"on_hand\":100,");
    check_stock("A-1", "\"store-12\":{\"on_hand\":8,");
    end();
}

static void test_reservations_and_channels(void)
{
    size_t i;

    begin();
    /* first figures: web 3 - 2 = 1, pos 3: nothing to announce */
    inventory("B-2", "store-12", 3, 0, 1);
    CU_ASSERT_EQUAL(nmade, 0);
    check_stock("B-2", "\"web\":{\"available\":1,\"safety_buffer\":2}");
    check_stock("B-2", "\"pos.store-12\":{\"available\":3,");
    /* a pickup order reserves at the store: web crosses zero */
    order("web", "order.placed", "o-1", "B-2", 1, "store-12");
    check_stock("B-2", "\"reserved\":1,\"available\":2");
    CU_ASSERT_EQUAL(nmade, 1);
    CU_ASSERT_STRING_EQUAL(made[0], "stock.out web");
    /* the same order again reserves nothing more */
    order("web", "order.placed", "o-1", "B-2", 1, "store-12");
    check_stock("B-2", "\"reserved\":1,");
    /* cancelled: released, web is back */
    order("pos.store-12", "order.cancelled", "o-1", NULL, 0, NULL);
    check_stock("B-2", "\"on_hand\":3,\"reserved\":0");
    CU_ASSERT_EQUAL(nmade, 2);
    CU_ASSERT_STRING_EQUAL(made[1], "stock.back web");
    /* an in-store order without a location reserves at the POS's first
     * location, then completes: the goods left */
    order("pos.store-12", "order.placed", "o-2", "B-2", 3, NULL);
    check_stock("B-2", "\"on_hand\":3,\"reserved\":3");
    CU_ASSERT_EQUAL(nmade, 4); /* web out again, pos out */
    CU_ASSERT_STRING_EQUAL(made[2], "stock.out web");
    CU_ASSERT_STRING_EQUAL(made[3], "stock.out pos.store-12");
    order("pos.store-12", "order.completed", "o-2", NULL, 0, NULL);
    check_stock("B-2", "\"on_hand\":0,\"reserved\":0");
    CU_ASSERT_EQUAL(nmade, 4); /* still none available: no event */
    /* restocked by a delta: both back */
    inventory("B-2", "store-12", 5, 1, 2);
    CU_ASSERT_EQUAL(nmade, 6);
    for (i = 4; i < 6; i++)
        CU_ASSERT_PTR_NOT_NULL(strstr(made[i], "stock.back"));
    /* a first figure of exactly zero is out (web: 2 - buffer 2) */
    inventory("Z-0", "store-12", 2, 0, 1);
    CU_ASSERT_EQUAL(nmade, 7);
    CU_ASSERT_STRING_EQUAL(made[6], "stock.out web");
    end();
}

static void pack_named(msgpack_packer *pk, const void *arg)
{
    const struct order *o = arg;

    msgpack_pack_str_with_body(pk, "ids", 3);
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 3);
    kv(pk, "kind", "email");
    kv(pk, "value", o->email);
    msgpack_pack_str_with_body(pk, "verified", 8);
    msgpack_pack_true(pk);
    pack_order(pk, &(struct order){o->id, o->sku, o->pickup, NULL, o->qty});
}

static void test_order_customer(void)
{
    struct order o = {"o-9", "C-3", "store-12", "dee@example.com", 1};
    og__store_item_t it;
    char cust[40] = "", err[256];
    og__idkey_t key;
    og__person_t p;
    og__event_facts_t f;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    og_event_t *ev;
    og_err_t rc;
    char why[256];

    begin();
    /* placed on the web by a known customer (resolved from the key) */
    tu_pack_head(&sb, &pk, "order.placed", 4);
    kv(&pk, "id", "st-named");
    pack_named(&pk, &o);
    ev = og__event_accept((const uint8_t *)sb.data, sb.size, "web", "web",
                          1 << 20, &rc, NULL, why, sizeof(why));
    msgpack_sbuffer_destroy(&sb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_EQUAL(og__event_facts(ev->data, ev->len, &f), 0);
    CU_ASSERT_EQUAL(
        og__idkey_normalize(&f.ids[0], "web", NULL, &key, why, sizeof(why)),
        OG_OK);
    memset(&p, 0, sizeof(p));
    p.keys = &key;
    p.nkeys = 1;
    p.instance = "web";
    memset(&it, 0, sizeof(it));
    it.event_id = ev->id;
    it.body = ev->data;
    it.len = ev->len;
    it.received_ms = ++now_ms;
    it.person = &p;
    it.type = ev->type;
    it.source = ev->instance;
    CU_ASSERT_EQUAL(
        st->ops->commit(st, &it, 1, NULL, 0, &hooks, err, sizeof(err)), OG_OK);
    CU_ASSERT_NOT_EQUAL(it.customer[0], '\0');
    free(it.stamped);
    og__event_unref(ev);
    /* the store's POS says it is ready, naming only the order */
    {
        struct order r = {"o-9", NULL, NULL, NULL, 0};

        commit("pos.store-12", "order.ready_for_pickup", 1, pack_order, &r,
               cust);
    }
    CU_ASSERT_STRING_EQUAL(cust, it.customer);
    check_stock("C-3", "\"store-12\":{\"on_hand\":0,\"reserved\":1");
    end();
}

/* An order placed by a customer, then named by its id alone: the later
 * event gets the order's customer. */
static void test_mem_order_customer(void)
{
    struct order o = {"o-m", "M-1", "store-12", NULL, 1};
    struct order named = {"o-m", NULL, NULL, NULL, 0};
    char cust[40] = "cust-7", later[40] = "";

    begin();
    commit("web", "order.placed", 2, pack_order, &o, cust);
    commit("pos.store-12", "order.ready_for_pickup", 1, pack_order, &named,
           later);
    CU_ASSERT_STRING_EQUAL(later, "cust-7");
    check_stock("M-1", "\"store-12\":{\"on_hand\":0,\"reserved\":1");
    end();
}

/* Each call of the repository fails in turn: the rules stop with its
 * error, and succeed once no call fails. */
static void test_errors_propagate(void)
{
    struct order o = {"o-f", "F-1", "store-12", NULL, 2};
    unsigned k, calls, before;

    /* how many calls placing the order makes when none fails */
    begin();
    inventory("F-1", "store-12", 1, 0, 1);
    before = mem_stock_fail_from(mem, 0);
    CU_ASSERT_EQUAL(submit("web", "order.placed", 2, pack_order, &o, NULL),
                    OG_OK);
    calls = mem_stock_fail_from(mem, 0) - before;
    CU_ASSERT_EQUAL(nmade, 2); /* web and pos.store-12 ran out */
    end();
    /* order, line, move, then per channel its availability, last figure
     * and new figure */
    CU_ASSERT(calls >= 9);
    for (k = 1; k <= calls + 1; k++) {
        og_err_t rc;

        begin();
        inventory("F-1", "store-12", 1, 0, 1);
        mem_stock_fail_from(mem, k);
        rc = submit("web", "order.placed", 2, pack_order, &o, NULL);
        CU_ASSERT_EQUAL(rc, k <= calls ? OG_ERR_IO : OG_OK);
        end();
    }
}

int main(void)
{
    static const tu_test_t both[] = {
        {"versions: duplicated and reordered updates", test_versions},
        {"reservations, buffers, stock.out and stock.back",
         test_reservations_and_channels},
    };
    CU_pSuite s, m;
    int rc;

    dir = tu_mkdtemp();
    CU_initialize_registry();
    tu_add_both("stock rules", both, OG__ARRAY_SIZE(both), &s, &m);
    CU_add_test(s, "an order's later events find its customer",
                test_order_customer);
    CU_add_test(m, "an order placed then named finds its customer",
                test_mem_order_customer);
    CU_add_test(m, "every error of the repository ends the rules",
                test_errors_propagate);
    rc = tu_run();
    tu_rmrf(dir);
    free(dir);
    return rc;
}
