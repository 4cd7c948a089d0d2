/* sqlite_history.c — the SQLite backend's time-series history: raw points or per-interval
 * aggregates (ThingsBoard's MIN/MAX/AVG/SUM/COUNT).
 *
 * Buckets are [start + k*interval, start + (k+1)*interval) clipped to end_ms; each result
 * point carries ts = bucket start + (bucket end - bucket start) / 2 as ThingsBoard does, and
 * empty buckets produce no point. MIN/MAX/AVG/SUM look at LONG and DOUBLE values only;
 * COUNT counts every point. Aggregation runs in SQL (GROUP BY bucket), so memory use is one
 * row per non-empty bucket whatever the number of points.
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The points of one device and key in [?3, ?4]: ts_kv plus the telemetry log not merged yet
 * (merge.c). A log point replaces a ts_kv point of the same ts, and of several log points with
 * the same ts the last one counts (SQLite takes the bare columns of a MAX() row), exactly
 * what the merge will do. Both arms come ordered by ts, so SQLite merges them and LIMIT
 * stops early; the log arm scans the log, which the writer keeps small. */
#define LOG_POINTS(cols)                                                                           \
    "SELECT " cols                                                                                 \
    " FROM (SELECT ts, bool_v, long_v, dbl_v, str_v, json_v, MAX(seq)"                             \
    " FROM ts_kv_log WHERE device_id = ?1 AND key_id = ?2 AND ts BETWEEN ?3 AND ?4"                \
    " GROUP BY ts)"
#define KV_POINTS(cols)                                                                            \
    "SELECT " cols                                                                                 \
    " FROM ts_kv WHERE device_id = ?1 AND key_id = ?2"                                             \
    " AND ts BETWEEN ?3 AND ?4 AND ts NOT IN (SELECT ts FROM ts_kv_log"                            \
    " WHERE device_id = ?1 AND key_id = ?2 AND ts BETWEEN ?3 AND ?4)"
#define POINTS_COLS "?6, ts, bool_v, long_v, dbl_v, str_v, json_v"
#define POINTS_SQL(dir)                                                                            \
    KV_POINTS(POINTS_COLS) " UNION ALL " LOG_POINTS(POINTS_COLS) " ORDER BY 2 " dir " LIMIT ?5"

static int history_raw(store_conn_t *c, int64_t device_id, int64_t key_id, const char *key,
                       int64_t start_ms, int64_t end_ms, int64_t limit, bool ascending,
                       store_kv_list_t *out)
{
    sqlite3_stmt *st = store__stmt(c, ascending ? POINTS_SQL("ASC") : POINTS_SQL("DESC"));
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int64(st, 2, key_id);
    sqlite3_bind_int64(st, 3, start_ms);
    sqlite3_bind_int64(st, 4, end_ms);
    sqlite3_bind_int64(st, 5, limit > 0 ? limit : -1);
    sqlite3_bind_text(st, 6, key, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_kv_t kv = {0};
        if (store__column_value(st, 2, &kv) != 0)
            continue;
        kv.ts = sqlite3_column_int64(st, 1);
        kv.key = (char *)key;
        char *sv = kv.s;
        kv.s = NULL;
        store_kv_list_push(out, &kv);
        out->items[out->n - 1].s = sv;
    }
    int r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
    return r;
}

/* Column layout of the aggregate query. */
enum { A_BUCKET, A_COUNT, A_NL, A_ND, A_MINL, A_MAXL, A_SUML, A_MIND, A_MAXD, A_TOTD, A_TOTL };

static bool agg_point(sqlite3_stmt *st, store_agg_t agg, store_kv_t *kv)
{
    int64_t nl = sqlite3_column_int64(st, A_NL), nd = sqlite3_column_int64(st, A_ND);
    if (agg == STORE_AGG_COUNT) {
        kv->type = STORE_LONG;
        kv->l = sqlite3_column_int64(st, A_COUNT);
        return kv->l > 0;
    }
    if (nl + nd == 0)
        return false; /* only strings, booleans or JSON in this bucket */
    double minl = sqlite3_column_double(st, A_MINL), maxl = sqlite3_column_double(st, A_MAXL);
    double mind = sqlite3_column_double(st, A_MIND), maxd = sqlite3_column_double(st, A_MAXD);
    double total = sqlite3_column_double(st, A_TOTL) + sqlite3_column_double(st, A_TOTD);
    kv->type = STORE_DOUBLE;
    switch (agg) {
    case STORE_AGG_MIN:
        if (nd == 0) {
            kv->type = STORE_LONG;
            kv->l = sqlite3_column_int64(st, A_MINL);
        } else {
            kv->d = nl == 0 ? mind : (minl < mind ? minl : mind);
        }
        break;
    case STORE_AGG_MAX:
        if (nd == 0) {
            kv->type = STORE_LONG;
            kv->l = sqlite3_column_int64(st, A_MAXL);
        } else {
            kv->d = nl == 0 ? maxd : (maxl > maxd ? maxl : maxd);
        }
        break;
    case STORE_AGG_SUM:
        if (nd == 0) {
            kv->type = STORE_LONG;
            kv->l = sqlite3_column_int64(st, A_SUML);
        } else {
            kv->d = total;
        }
        break;
    case STORE_AGG_AVG:
        kv->d = total / (double)(nl + nd);
        break;
    default:
        return false;
    }
    return true;
}

static int history_agg(store_conn_t *c, int64_t device_id, int64_t key_id, const char *key,
                       int64_t start_ms, int64_t end_ms, int64_t interval_ms, store_agg_t agg,
                       int64_t limit, bool ascending, store_kv_list_t *out)
{
    int64_t span;
    if (__builtin_sub_overflow(end_ms, start_ms, &span))
        return -EINVAL;
    if (span == INT64_MAX) { /* [0, INT64_MAX]: drop the last ms so span + 1 fits */
        end_ms--;
        span--;
    }
    bool whole = interval_ms <= 0 || interval_ms > span;
    int64_t interval = whole ? span + 1 : interval_ms;
#define AGG_SQL(dir)                                                                               \
    "SELECT (ts - ?3) / ?5 AS b, COUNT(*), COUNT(long_v), COUNT(dbl_v), MIN(long_v),"              \
    " MAX(long_v), SUM(long_v), MIN(dbl_v), MAX(dbl_v), TOTAL(dbl_v), TOTAL(long_v)"               \
    " FROM (" KV_POINTS("ts, long_v, dbl_v") " UNION ALL " LOG_POINTS(                             \
        "ts, long_v, dbl_v") ") GROUP BY b ORDER BY b " dir " LIMIT ?6"
    sqlite3_stmt *st = store__stmt(c, ascending ? AGG_SQL("ASC") : AGG_SQL("DESC"));
#undef AGG_SQL
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int64(st, 2, key_id);
    sqlite3_bind_int64(st, 3, start_ms);
    sqlite3_bind_int64(st, 4, end_ms);
    sqlite3_bind_int64(st, 5, interval);
    sqlite3_bind_int64(st, 6, limit > 0 ? limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_kv_t kv = {.key = (char *)key};
        if (!agg_point(st, agg, &kv))
            continue;
        int64_t b = sqlite3_column_int64(st, A_BUCKET);
        if (whole) {
            kv.ts = start_ms + span / 2;
        } else {
            /* b * interval <= span, so neither sum below overflows. */
            int64_t bs = start_ms + b * interval;
            int64_t be = (end_ms - bs) > interval ? bs + interval : end_ms;
            kv.ts = bs + (be - bs) / 2;
        }
        store_kv_list_push(out, &kv);
    }
    int r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
    return r;
}

int store__sqlite_ts_history(store_db_t *db, int64_t device_id, const char *key, int64_t start_ms,
                             int64_t end_ms, int64_t interval_ms, store_agg_t agg, int64_t limit,
                             bool ascending, store_kv_list_t *out)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int64_t key_id;
    int r = store__key_id(c, key, false, &key_id);
    if (r == -ENOENT) {
        r = 0; /* never written: empty history */
    } else if (r == 0) {
        if (agg == STORE_AGG_NONE)
            r = history_raw(c, device_id, key_id, key, start_ms, end_ms, limit, ascending, out);
        else
            r = history_agg(c, device_id, key_id, key, start_ms, end_ms, interval_ms, agg, limit,
                            ascending, out);
    }
    store__conn_give(q, c);
    return r;
}
