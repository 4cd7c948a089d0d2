/* points.c — a group's telemetry points written with multi-row statements.
 *
 * Why: at ~100k points/s the writer's time went mostly to executing one INSERT into the log
 * and one upsert of the latest value per point (statement start-up, binding, reset). One
 * statement of STORE_MULTI rows does the same work for a fraction of that (performance
 * pass 2). Rows are applied in order, so within a group a later point of the same
 * (device, key) meets the earlier one exactly as with one statement per point. Latest
 * values are staged in memory (latest.c), each with its row's seq, and written by the merge.
 *
 * Invariant: used by the group commit's fast path only, inside its transaction; any error
 * makes the whole group go the slow way (one batch per savepoint, one row per statement).
 * The merge (merge.c) moves its sorted rows into ts_kv the same way (store__points_merge).
 */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <string.h>

#define COLS "(device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v)"
#define ROW "(?, ?, ?, ?, ?, ?, ?, ?)"

#define KV_UPSERT                                                                             \
    " ON CONFLICT(device_id, key_id, ts) DO UPDATE SET bool_v = excluded.bool_v,"            \
    " long_v = excluded.long_v, dbl_v = excluded.dbl_v, str_v = excluded.str_v,"            \
    " json_v = excluded.json_v"

/* The statements' text, built once: the statement cache keys on its address. */
static char log_sql[256 + STORE_MULTI * (sizeof ROW + 2)];
static char kv_sql[256 + sizeof KV_UPSERT + STORE_MULTI * (sizeof ROW + 2)];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

static void build(char *out, size_t cap, const char *table, const char *tail)
{
    size_t n = (size_t)snprintf(out, cap, "INSERT INTO %s" COLS " VALUES ", table);
    for (int i = 0; i < STORE_MULTI; i++)
        n += (size_t)snprintf(out + n, cap - n, i ? ", " ROW : ROW);
    snprintf(out + n, cap - n, "%s", tail);
}

static void build_all(void)
{
    build(log_sql, sizeof log_sql, "ts_kv_log", "");
    build(kv_sql, sizeof kv_sql, "ts_kv", KV_UPSERT);
}

/* Binds the rows to st (8 parameters each) and runs it. */
static int run(store_conn_t *c, sqlite3_stmt *st, const store_points_t *pp)
{
    for (size_t i = 0; i < pp->n; i++) {
        int r = store__bind_point(st, (int)i * 8 + 1, pp->row[i].device_id, pp->row[i].key_id,
                                  pp->row[i].kv);
        if (r != 0) {
            sqlite3_reset(st);
            return r;
        }
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
}

int store__points_flush(store_t *s, store_points_t *pp)
{
    if (pp->n == 0)
        return 0;
    if (pp->n < STORE_MULTI) { /* the tail of a group: one row at a time */
        for (size_t i = 0; i < pp->n; i++) {
            int r = store__point_apply(s, pp->row[i].device_id, pp->row[i].key_id,
                                       pp->row[i].kv);
            if (r != 0)
                return r;
        }
        pp->n = 0;
        return 0;
    }
    pthread_once(&sql_once, build_all);
    store_conn_t *c = store__wconn(s);
    sqlite3_stmt *st = store__stmt(c, log_sql);
    int r = st ? run(c, st, pp) : ERR_STORE;
    if (r == 0) {
        /* The rows took consecutive rowids (each the largest + 1), the last one's known. */
        int64_t seq = sqlite3_last_insert_rowid(c->db) - (int64_t)pp->n + 1;
        for (size_t i = 0; i < pp->n; i++)
            store__latest_stage(s, pp->row[i].device_id, pp->row[i].key_id, seq + (int64_t)i,
                                pp->row[i].kv);
    }
    pp->n = 0;
    return r;
}

int store__points_add(store_t *s, store_points_t *pp, int64_t device_id, int64_t key_id,
                      const store_kv_t *kv)
{
    pp->row[pp->n].device_id = device_id;
    pp->row[pp->n].key_id = key_id;
    pp->row[pp->n].kv = kv;
    pp->n++;
    return pp->n == STORE_MULTI ? store__points_flush(s, pp) : 0;
}

int store__points_merge(store_t *s, const store_points_t *pp)
{
    if (pp->n == 0)
        return 0;
    store_conn_t *c = store__wconn(s);
    if (pp->n < STORE_MULTI) {
        for (size_t i = 0; i < pp->n; i++) {
            int r = store__point_merge(c, pp->row[i].device_id, pp->row[i].key_id,
                                       pp->row[i].kv);
            if (r != 0)
                return r;
        }
        return 0;
    }
    pthread_once(&sql_once, build_all);
    sqlite3_stmt *st = store__stmt(c, kv_sql);
    return st ? run(c, st, pp) : ERR_STORE;
}
