/* rest_telemetry.c — time series and attributes under /api/plugins/telemetry (§8.5).
 *
 * Writes go through store_submit_wait, the same group-committed path devices use, so a 200
 * means the data is on disk. Shared-attribute changes are pushed to the shards only after
 * the commit, and carry exactly the keys that were saved. Some errors are answered in plain
 * text because ThingsBoard's telemetry controller does so and clients match on it. Values
 * are written by values/render.h, the writer CoAP answers and notifications use.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/xmalloc.h"
#include "values/render.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_KEYS 256 /* keys per request: bounds the per-key store queries of one call */
#define HISTORY_MAX_LIMIT 100000 /* raw points per key of one history answer */

typedef struct keys {
    char *items[MAX_KEYS];
    size_t n;
    bool overflow;
} keys_t;

/* Adds the key s[0..e) without the spaces around it; a blank one is no key. */
static void keys_add(keys_t *k, const char *s, const char *e)
{
    while (s < e && *s == ' ')
        s++;
    while (e > s && e[-1] == ' ')
        e--;
    if (e == s)
        return;
    if (k->n == MAX_KEYS)
        k->overflow = true;
    else
        k->items[k->n++] = xstrndup(s, (size_t)(e - s));
}

/* keys=a,b,...: every comma-separated name. */
static void keys_add_csv(void *arg, const char *csv)
{
    for (const char *p = csv;;) {
        size_t n = strcspn(p, ",");
        keys_add(arg, p, p + n);
        if (!p[n])
            break;
        p += n + 1;
    }
}

/* One repeated key=NAME: the whole value is the key (not split on commas). */
static void keys_add_one(void *arg, const char *v)
{
    keys_add(arg, v, v + strlen(v));
}

static void count_one(void *arg, const char *v)
{
    (void)v;
    ++*(size_t *)arg;
}

/* TelemetryController.getKeys: the repeated `key` parameters when there is any, else the
 * comma list `keys`. ThingsBoard splits `keys` on commas without trimming; we also drop the
 * spaces around each name ("a, b" is a and b), which clients write and no key starts with. */
static void keys_from_query(const http_req_t *rq, keys_t *k)
{
    memset(k, 0, sizeof *k);
    size_t n_key = 0;
    http__query_each(rq, "key", count_one, &n_key);
    if (n_key)
        http__query_each(rq, "key", keys_add_one, k);
    else
        http__query_each(rq, "keys", keys_add_csv, k);
}

static void keys_fini(keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->items[i]);
    k->n = 0;
}

/* Resolves {entityType}/{id}; only DEVICE entities exist here. */
/* Only the device's id is needed here, so the lookup can use the server's device cache. */
typedef struct dev_ref {
    int64_t id;
} dev_ref_t;

static bool device_of(http_req_t *rq, http_resp_t *rs, const char *type, const char *id,
                      dev_ref_t *d)
{
    /* ThingsBoard's EntityType.valueOf takes only "DEVICE"; clients write "device" too. */
    if (type && strcasecmp(type, "DEVICE") != 0) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Unsupported entity type");
        return false;
    }
    return http__device_id_lookup(rq, rs, id, &d->id);
}

static json_t *key_array(const store_kv_list_t *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_string(l->items[i].key));
    return a;
}

void http__h_ts_keys(http_req_t *rq, http_resp_t *rs)
{
    dev_ref_t d;
    if (!device_of(rq, rs, rq->params[0], rq->params[1], &d))
        return;
    store_kv_list_t l = {0};
    int rc = store_ts_keys(rq->srv->store, d.id, &l);
    if (rc < 0)
        http__resp_store_error(rs, rc);
    else
        http__resp_json(rs, 200, key_array(&l));
    store_kv_list_fini(&l);
}

/* Moves the points of src to the end of dst (their strings go with them); src is left empty.
 * Attributes are read scope by scope, and one answer groups them all. */
static void points_move(store_kv_list_t *dst, store_kv_list_t *src)
{
    if (dst->n + src->n > dst->cap) {
        dst->cap = dst->n + src->n;
        dst->items = xrealloc(dst->items, dst->cap * sizeof *dst->items);
    }
    if (src->n)
        memcpy(dst->items + dst->n, src->items, src->n * sizeof *src->items);
    dst->n += src->n;
    free(src->items);
    *src = (store_kv_list_t){0};
}

/* The history parameters of getTimeseries: startTs and endTs (required), interval (0),
 * limit (100), agg (NONE, upper case as Aggregation.valueOf), orderBy (DESC; asc/desc in any
 * case as Spring's Direction.fromString). */
typedef struct history {
    http_server_t *srv;
    int64_t dev, start, end, interval, limit;
    store_agg_t agg;
    bool asc, strict;
    keys_t k;
    size_t next;  /* key to read next */
    bool written; /* some key's points were written */
} history_t;

static void history_free(void *arg)
{
    history_t *h = arg;
    keys_fini(&h->k);
    free(h);
}

/* http_stream_fn: one key's points per piece ("{" before the first, "}" after the last), so
 * only one key's points (at most HISTORY_MAX_LIMIT) are held at a time. */
static int history_piece(void *arg, char **piece)
{
    history_t *h = arg;
    if (h->next > h->k.n)
        return 0;
    values_buf_t b = {0};
    if (h->next == 0)
        values_buf_put(&b, "{", 1);
    if (h->next < h->k.n) {
        store_kv_list_t l = {0};
        int rc = store_ts_history(h->srv->store, h->dev, h->k.items[h->next], h->start, h->end,
                                  h->interval, h->agg, h->limit, h->asc, &l);
        if (rc < 0) {
            store_kv_list_fini(&l);
            values_buf_fini(&b);
            return rc;
        }
        values_buf_t one = {0};
        values_kvs_write_series(&one, l.items, l.n, h->strict ? VALUES_TYPED : VALUES_TEXT);
        if (one.len > 2) { /* {"key":[...]}: its member, after a comma if not the first */
            if (h->written)
                values_buf_put(&b, ",", 1);
            values_buf_put(&b, one.p + 1, one.len - 2);
            h->written = true;
        }
        values_buf_fini(&one);
        store_kv_list_fini(&l);
    }
    if (h->next == h->k.n)
        values_buf_put(&b, "}", 1);
    h->next++;
    *piece = values_buf_take(&b);
    return 1;
}

/* Takes k (left empty). */
static void history(http_req_t *rq, http_resp_t *rs, int64_t dev, bool strict, keys_t *k)
{
    int64_t start, end, interval, limit;
    if (!http__arg_long(rq, rs, "startTs", true, 0, &start) ||
        !http__arg_long(rq, rs, "endTs", true, 0, &end) ||
        !http__arg_long(rq, rs, "interval", false, 0, &interval) ||
        !http__arg_int(rq, rs, "limit", false, 100, &limit))
        return;
    if (limit <= 0) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Page size must not be less than one");
        return;
    }
    store_agg_t agg = STORE_AGG_NONE;
    const char *a = http__query(rq, "agg");
    if (a && *a && store_agg_parse(a, &agg) < 0) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "No enum constant org.thingsboard.server.common.data.kv.Aggregation.%.40s", a);
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        return;
    }
    const char *itype = http__query(rq, "intervalType");
    if (itype && *itype && strcmp(itype, "MILLISECONDS") != 0) {
        /* Calendar buckets (WEEK, WEEK_ISO, MONTH, QUARTER, with timeZone) are not offered:
         * refused rather than answered as fixed-length ones. */
        bool known = strcmp(itype, "WEEK") == 0 || strcmp(itype, "WEEK_ISO") == 0 ||
                     strcmp(itype, "MONTH") == 0 || strcmp(itype, "QUARTER") == 0;
        char msg[300];
        if (known)
            snprintf(msg, sizeof msg, "intervalType %s is not supported (only MILLISECONDS)",
                     itype);
        else
            snprintf(msg, sizeof msg,
                     "Failed to convert value of type 'java.lang.String' to required type "
                     "'org.thingsboard.server.common.data.kv.IntervalType'; No enum constant "
                     "org.thingsboard.server.common.data.kv.IntervalType.%.40s",
                     itype);
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        return;
    }
    if (interval == 0)
        agg = STORE_AGG_NONE; /* DefaultTbTelemetryService: no interval, no aggregation */
    /* Points are held per key before they are written: at most HISTORY_MAX_LIMIT each (a
     * ThingsBoard client asking limit=999999999 means "all of the range"). */
    if (limit > HISTORY_MAX_LIMIT)
        limit = HISTORY_MAX_LIMIT;
    const char *order = http__query(rq, "orderBy");
    bool asc = false;
    if (order && *order && strcasecmp(order, "DESC") != 0) {
        if (strcasecmp(order, "ASC") != 0) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "Invalid value '%.40s' for orders given; Has to be either "
                     "'desc' or 'asc' (case insensitive)",
                     order);
            http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
            return;
        }
        asc = true;
    }
    history_t *h = xcalloc(1, sizeof *h);
    *h = (history_t){.srv = rq->srv,
                     .dev = dev,
                     .start = start,
                     .end = end,
                     .interval = interval,
                     .limit = limit,
                     .agg = agg,
                     .asc = asc,
                     .strict = strict};
    /* Each key once: one member per key in the answer (a repeated key read twice would
     * write it twice). */
    for (size_t i = 0; i < k->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < h->k.n && !seen; j++)
            seen = strcmp(h->k.items[j], k->items[i]) == 0;
        if (seen)
            free(k->items[i]);
        else
            h->k.items[h->k.n++] = k->items[i];
    }
    k->n = 0;
    http__stream_answer(rq, rs, history_piece, h, history_free);
}

void http__h_ts_values(http_req_t *rq, http_resp_t *rs)
{
    dev_ref_t d;
    if (!device_of(rq, rs, rq->params[0], rq->params[1], &d))
        return;
    bool strict;
    if (!http__arg_bool(rq, rs, "useStrictDataTypes", false, &strict))
        return;
    /* ThingsBoard maps .../values/timeseries to the history only when both startTs and endTs
     * are given (params = {"startTs", "endTs"}); with one or none it answers the latest. */
    bool is_history = strstr(rq->path, "/history") != NULL ||
                      (http__query(rq, "startTs") && http__query(rq, "endTs"));
    keys_t k;
    keys_from_query(rq, &k);
    store_kv_list_t points = {0};
    if (k.overflow) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Too many keys");
        goto out;
    }
    if (is_history) {
        history(rq, rs, d.id, strict, &k);
        goto out;
    }
    int rc = store_ts_latest(rq->srv->store, d.id, (const char *const *)k.items, k.n, &points);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        goto out;
    }
    values_buf_t b = {0};
    values_kvs_write_series(&b, points.items, points.n, strict ? VALUES_TYPED : VALUES_TEXT);
    http__resp_json_text(rs, 200, values_buf_take(&b));
out:
    store_kv_list_fini(&points);
    keys_fini(&k);
}

void http__h_ts_save(http_req_t *rq, http_resp_t *rs)
{
    dev_ref_t d;
    if (!device_of(rq, rs, rq->params[0], rq->params[1], &d))
        return;
    char msg[200];
    store_kv_list_t l = {0};
    if (http__telemetry_parse(rq->body, rq->body_len, clock_wall_ms(), &l, msg, sizeof msg) < 0) {
        http__resp_text(rs, 400, msg);
    } else {
        store_batch_t *b = store_batch_new();
        for (size_t i = 0; i < l.n; i++)
            store_batch_ts(b, d.id, &l.items[i]);
        int rc = store_submit_wait(rq->srv->store, b);
        if (rc < 0)
            http__resp_store_error(rs, rc);
        else
            http__resp_json(rs, 200, NULL);
    }
    store_kv_list_fini(&l);
}

void http__h_ts_delete(http_req_t *rq, http_resp_t *rs)
{
    dev_ref_t d;
    if (!device_of(rq, rs, rq->params[0], rq->params[1], &d))
        return;
    keys_t k;
    keys_from_query(rq, &k);
    int64_t start = 0, end = INT64_MAX;
    bool all, latest;
    if (!http__arg_bool(rq, rs, "deleteAllDataForKeys", false, &all) ||
        !http__arg_bool(rq, rs, "deleteLatest", true, &latest) ||
        !http__arg_long(rq, rs, "startTs", false, INT64_MIN, &start) ||
        !http__arg_long(rq, rs, "endTs", false, INT64_MIN, &end)) {
        /* rs holds the 400 */
    } else if (k.n == 0 || k.overflow) {
        http__resp_text(rs, 400, "Empty keys: []");
    } else if (!all && (start == INT64_MIN || end == INT64_MIN)) {
        http__resp_text(rs, 400,
                        "When deleteAllDataForKeys is false, start and end timestamp "
                        "values shouldn't be empty");
    } else {
        if (all) {
            start = 0;
            end = INT64_MAX;
        }
        int rc = store_ts_delete(rq->srv->store, d.id, (const char *const *)k.items, k.n, start,
                                 end, latest);
        if (rc < 0)
            http__resp_store_error(rs, rc);
        else
            http__resp_json(rs, 200, NULL);
    }
    keys_fini(&k);
}

/* Scope from a path segment; answers 400 text "Invalid scope: X" when it is not allowed. */
static bool scope_of(http_resp_t *rs, const char *name, bool allow_client, store_scope_t *out)
{
    if (store_scope_parse(name, out) == 0 && (allow_client || *out != SCOPE_CLIENT))
        return true;
    char msg[96];
    snprintf(msg, sizeof msg, "Invalid scope: %.64s", name);
    http__resp_text(rs, 400, msg);
    return false;
}

void http__h_attr_keys(http_req_t *rq, http_resp_t *rs)
{
    dev_ref_t d;
    store_scope_t scope = 0;
    if (rq->n_params == 3 && !scope_of(rs, rq->params[2], true, &scope))
        return;
    if (!device_of(rq, rs, rq->params[0], rq->params[1], &d))
        return;
    store_kv_list_t l = {0};
    int rc = store_attr_keys(rq->srv->store, d.id, scope, &l);
    if (rc < 0)
        http__resp_store_error(rs, rc);
    else
        http__resp_json(rs, 200, key_array(&l));
    store_kv_list_fini(&l);
}

void http__h_attr_values(http_req_t *rq, http_resp_t *rs)
{
    store_scope_t scope = 0;
    if (rq->n_params == 3 && !scope_of(rs, rq->params[2], true, &scope))
        return;
    dev_ref_t d;
    if (!device_of(rq, rs, rq->params[0], rq->params[1], &d))
        return;
    keys_t k;
    keys_from_query(rq, &k);
    store_kv_list_t all = {0};
    int rc = 0;
    for (int s = SCOPE_CLIENT; s <= SCOPE_SHARED && rc == 0; s++) {
        if (scope && (int)scope != s)
            continue;
        store_kv_list_t l = {0};
        rc = store_attr_get(rq->srv->store, d.id, (store_scope_t)s,
                            (const char *const *)k.items, k.n, &l);
        points_move(&all, &l);
    }
    if (rc < 0) {
        http__resp_store_error(rs, rc);
    } else {
        values_buf_t b = {0};
        values_kvs_write_attributes(&b, all.items, all.n);
        http__resp_json_text(rs, 200, values_buf_take(&b));
    }
    store_kv_list_fini(&all);
    keys_fini(&k);
}

/* {id}/{scope} (2 params) or {type}/{id}/{scope} (3 params). */
static void split_params(const http_req_t *rq, const char **type, const char **id,
                         const char **scope)
{
    bool short_form = rq->n_params == 2;
    *type = short_form ? NULL : rq->params[0];
    *id = rq->params[short_form ? 0 : 1];
    *scope = rq->params[short_form ? 1 : 2];
}

void http__h_attr_save(http_req_t *rq, http_resp_t *rs)
{
    const char *type, *id, *sname;
    split_params(rq, &type, &id, &sname);
    store_scope_t scope;
    if (!scope_of(rs, sname, false, &scope))
        return;
    dev_ref_t d;
    if (!device_of(rq, rs, type, id, &d))
        return;
    char msg[200];
    store_kv_list_t l = {0};
    if (http__attributes_parse(rq->body, rq->body_len, clock_wall_ms(), &l, msg, sizeof msg) <
        0) {
        http__resp_text(rs, 400, msg);
        goto out;
    }
    store_batch_t *b = store_batch_new();
    for (size_t i = 0; i < l.n; i++)
        store_batch_attr(b, d.id, scope, &l.items[i]);
    int rc = store_submit_wait(rq->srv->store, b);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        goto out;
    }
    if (scope == SCOPE_SHARED) {
        /* The text observers receive is written as CoAP answers and REST reads write it. */
        values_buf_t o = {0};
        values_kvs_write_object(&o, l.items, l.n, VALUES_TYPED);
        hub_publish(rq->srv->hub, HUB_EV_SHARED_UPDATED, d.id, o.p);
        values_buf_fini(&o);
    }
    http__resp_json(rs, 200, NULL);
out:
    store_kv_list_fini(&l);
}

void http__h_attr_delete(http_req_t *rq, http_resp_t *rs)
{
    const char *type, *id, *sname;
    split_params(rq, &type, &id, &sname);
    store_scope_t scope;
    if (!scope_of(rs, sname, true, &scope))
        return;
    dev_ref_t d;
    if (!device_of(rq, rs, type, id, &d))
        return;
    keys_t k;
    keys_from_query(rq, &k);
    if (k.n == 0 || k.overflow) {
        http__resp_text(rs, 400, "Empty keys: []");
        goto out;
    }
    int rc = store_attr_delete(rq->srv->store, d.id, scope, (const char *const *)k.items, k.n,
                               NULL);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        goto out;
    }
    if (scope == SCOPE_SHARED) {
        json_t *del = json_array();
        for (size_t i = 0; i < k.n; i++)
            json_array_append_new(del, json_string(k.items[i]));
        json_t *o = json_pack("{s:o}", "deleted", del);
        char *s = http__dumps(o);
        hub_publish(rq->srv->hub, HUB_EV_SHARED_DELETED, d.id, s);
        free(s);
        json_decref(o);
    }
    http__resp_json(rs, 200, NULL);
out:
    keys_fini(&k);
}
