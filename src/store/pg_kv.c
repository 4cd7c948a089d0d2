/* pg_kv.c — the PostgreSQL backend's reads and deletes of attributes and of time series
 * (keys, latest values, deletes of points); the history is in pg_history.c. The twin of
 * sqlite_kv.c: same results, in the same order, with the same error codes.
 *
 * Invariant: values come back with the type they were stored with (exactly one typed column
 * is set per row), so a DOUBLE 42.0 is read back as DOUBLE, never as LONG.
 *
 * Where SQLite runs one statement per key inside a read transaction, a list of keys travels
 * here as one text[] parameter (key_array) and one statement answers for all of them: a round
 * trip to the server costs far more than a step of SQLite. unnest() keeps the caller's order
 * and repeats where SQLite's loop does. Keys sort byte-wise (COLLATE "C"), as SQLite's BINARY
 * and strcmp do.
 */
#include "store/pg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* A PostgreSQL array literal of the keys, {"a","b\"c"}: every element quoted, with '"' and
 * '\' escaped by a backslash, so no key can change the array's shape; NULL keys are NULL
 * elements (they match nothing, as a NULL bound in SQLite does). The text goes as a parameter,
 * never into SQL. */
static char *key_array(const char *const *keys, size_t n_keys)
{
    size_t len = 3;
    for (size_t i = 0; i < n_keys; i++)
        len += (keys[i] ? 2 * strlen(keys[i]) + 2 : 4) + 1;
    char *a = xmalloc(len), *w = a;
    *w++ = '{';
    for (size_t i = 0; i < n_keys; i++) {
        if (i > 0)
            *w++ = ',';
        if (!keys[i]) {
            memcpy(w, "NULL", 4);
            w += 4;
            continue;
        }
        *w++ = '"';
        for (const char *k = keys[i]; *k; k++) {
            if (*k == '"' || *k == '\\')
                *w++ = '\\';
            *w++ = *k;
        }
        *w++ = '"';
    }
    *w++ = '}';
    *w = '\0';
    return a;
}

/* {1,2,3}: the key ids of the in-memory latest values. */
static char *id_array(const store_latest_copy_t *mem, size_t n_mem)
{
    size_t cap = 3 + n_mem * 21, len = 1;
    char *a = xmalloc(cap);
    a[0] = '{';
    for (size_t i = 0; i < n_mem; i++)
        len += (size_t)snprintf(a + len, cap - len, i ? ",%lld" : "%lld", (long long)mem[i].key_id);
    snprintf(a + len, cap - len, "}");
    return a;
}

/* Appends row i of res as key (ts at ts_col, the five value columns after it) to out; false
 * when the row has no value (not written by us, or a key only memory holds a value of). */
static bool push_row(const PGresult *res, int i, const char *key, int ts_col, store_kv_list_t *out)
{
    store_kv_t kv = {0};
    if (pg__value(res, i, ts_col + 1, &kv) != 0)
        return false;
    kv.ts = pg__i64(res, i, ts_col);
    /* Move ownership of s into the list without another copy. */
    char *sv = kv.s;
    kv.s = NULL;
    kv.key = (char *)key;
    store_kv_list_push(out, &kv);
    out->items[out->n - 1].s = sv;
    return true;
}

/* Runs sql on a pool connection and appends its rows (key, ts, five value columns). */
static int collect(store_pg_t *q, const char *sql, const pg_params_t *p, store_kv_list_t *out)
{
    pg_conn_t *c = pg__conn_take(q);
    int r;
    PGresult *res = pg__query(c, q, sql, p, &r);
    if (res) {
        for (int i = 0; i < PQntuples(res); i++)
            push_row(res, i, PQgetvalue(res, i, 0), 1, out);
        PQclear(res);
        r = 0;
    }
    pg__conn_give(q, c);
    return r;
}

int store__pg_attr_get(store_db_t *db, int64_t device_id, store_scope_t scope,
                       const char *const *keys, size_t n_keys, store_kv_list_t *out)
{
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    pg__p_i64(&p, (int)scope);
    if (!keys || n_keys == 0)
        return collect(
            store__pg(db),
            "SELECT k.key, a.last_update_ts, a.bool_v, a.long_v, a.dbl_v, a.str_v, a.json_v"
            " FROM attribute_kv a JOIN key_dictionary k ON k.key_id = a.key_id"
            " WHERE a.device_id = $1 AND a.attribute_type = $2 ORDER BY k.key COLLATE \"C\"",
            &p, out);
    /* A key named twice comes back twice, as from SQLite's loop over the keys. */
    char *arr = key_array(keys, n_keys);
    pg__p_text(&p, arr);
    int r = collect(
        store__pg(db),
        "SELECT k.key, a.last_update_ts, a.bool_v, a.long_v, a.dbl_v, a.str_v, a.json_v"
        " FROM unnest($3::text[]) AS u(key) JOIN key_dictionary k ON k.key = u.key"
        " JOIN attribute_kv a ON a.key_id = k.key_id"
        " WHERE a.device_id = $1 AND a.attribute_type = $2 ORDER BY k.key COLLATE \"C\"",
        &p, out);
    free(arr);
    return r;
}

/* Appends the first column of every row of sql's result to out as a key-only item. */
static int collect_keys(store_pg_t *q, const char *sql, const pg_params_t *p, store_kv_list_t *out)
{
    pg_conn_t *c = pg__conn_take(q);
    int r;
    PGresult *res = pg__query(c, q, sql, p, &r);
    if (res) {
        for (int i = 0; i < PQntuples(res); i++) {
            store_kv_t kv = {.key = PQgetvalue(res, i, 0)};
            store_kv_list_push(out, &kv);
        }
        PQclear(res);
        r = 0;
    }
    pg__conn_give(q, c);
    return r;
}

int store__pg_attr_keys(store_db_t *db, int64_t device_id, store_scope_t scope,
                        store_kv_list_t *out)
{
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    pg__p_i64(&p, (int)scope);
    /* The collation is on the selected expression: DISTINCT's and ORDER BY's must agree. */
    return collect_keys(store__pg(db),
                        "SELECT DISTINCT k.key COLLATE \"C\" FROM attribute_kv a"
                        " JOIN key_dictionary k ON k.key_id = a.key_id WHERE a.device_id = $1"
                        " AND ($2::integer = 0 OR a.attribute_type = $2::integer) ORDER BY 1",
                        &p, out);
}

int store__pg_attr_delete(store_db_t *db, int64_t device_id, store_scope_t scope,
                          const char *const *keys, size_t n_keys, size_t *n_deleted)
{
    store_pg_t *q = store__pg(db);
    char *arr = key_array(keys, n_keys);
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    pg__p_i64(&p, (int)scope);
    pg__p_text(&p, arr);
    pg_conn_t *c = pg__conn_take(q);
    int64_t n = 0;
    /* One statement, so atomic by itself; a key named twice is deleted once, as SQLite's
     * second delete of it changes nothing. */
    int r = pg__exec(c, q,
                     "DELETE FROM attribute_kv WHERE device_id = $1 AND attribute_type = $2"
                     " AND key_id IN (SELECT key_id FROM key_dictionary"
                     " WHERE key = ANY($3::text[]))",
                     &p, &n);
    pg__conn_give(q, c);
    free(arr);
    if (r == 0 && n_deleted)
        *n_deleted = (size_t)n;
    return r;
}

/* Latest values are the newer of ts_kv_latest and the in-memory entries of points not merged
 * yet (latest.c). The entries are copied before the statement runs: an entry gone from memory
 * by then is in the table its snapshot sees. The entries' key names come in the same
 * statement ($2, their ids), where SQLite looks each one up. */

int store__pg_ts_keys(store_db_t *db, int64_t device_id, store_kv_list_t *out)
{
    store_pg_t *q = store__pg(db);
    store_latest_copy_t *mem;
    size_t n_mem = store__latest_copy(q->s, device_id, &mem);
    char *ids = id_array(mem, n_mem);
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    pg__p_text(&p, ids);
    /* Like ThingsBoard, the keys of a device are those that have a latest value. UNION:
     * distinct, as SQLite's list is once it has skipped the entries it holds already. */
    int r = collect_keys(q,
                         "SELECT k.key FROM key_dictionary k WHERE k.key_id IN"
                         " (SELECT l.key_id FROM ts_kv_latest l WHERE l.device_id = $1"
                         " UNION SELECT unnest($2::bigint[])) ORDER BY k.key COLLATE \"C\"",
                         &p, out);
    free(ids);
    store__latest_copy_free(mem, n_mem);
    return r;
}

/* Every key of the device with a value in the table or in memory, sorted: key, key_id, then
 * the table's ts and five value columns (NULL when only memory has one). */
#define LATEST_ALL_SQL                                                                             \
    "SELECT k.key, k.key_id, l.ts, l.bool_v, l.long_v, l.dbl_v, l.str_v, l.json_v"                 \
    " FROM (SELECT key_id FROM ts_kv_latest WHERE device_id = $1"                                  \
    " UNION SELECT unnest($2::bigint[])) i JOIN key_dictionary k ON k.key_id = i.key_id"           \
    " LEFT JOIN ts_kv_latest l ON l.device_id = $1 AND l.key_id = i.key_id"                        \
    " ORDER BY k.key COLLATE \"C\""

/* The keys asked for, in the caller's order: key, key_id (NULL for a key never written),
 * then the table's ts and five value columns (NULL when it has none). */
#define LATEST_KEYS_SQL                                                                            \
    "SELECT u.key, k.key_id, l.ts, l.bool_v, l.long_v, l.dbl_v, l.str_v, l.json_v"                 \
    " FROM unnest($2::text[]) WITH ORDINALITY AS u(key, i)"                                        \
    " LEFT JOIN key_dictionary k ON k.key = u.key"                                                 \
    " LEFT JOIN ts_kv_latest l ON l.device_id = $1 AND l.key_id = k.key_id ORDER BY u.i"

/* Row i of a LATEST_*_SQL result into out: the table's value if any, then the newer in-memory
 * one (store__latest_take_newer, as sqlite_kv.c calls it for the same key). */
static void latest_row(const PGresult *res, int i, store_latest_copy_t *mem, size_t n_mem,
                       store_kv_list_t *out)
{
    size_t before = out->n;
    const char *key = PQgetvalue(res, i, 0);
    push_row(res, i, key, 2, out);
    if (pg__null(res, i, 1))
        return; /* a key never written has no entry either */
    int64_t kid = pg__i64(res, i, 1);
    for (size_t j = 0; j < n_mem; j++)
        if (mem[j].key_id == kid)
            store__latest_take_newer(out, out->n > before ? (ssize_t)before : -1, key, &mem[j].kv);
}

int store__pg_ts_latest(store_db_t *db, int64_t device_id, const char *const *keys, size_t n_keys,
                        store_kv_list_t *out)
{
    store_pg_t *q = store__pg(db);
    store_latest_copy_t *mem;
    size_t n_mem = store__latest_copy(q->s, device_id, &mem);
    bool all = !keys || n_keys == 0;
    char *arr = all ? id_array(mem, n_mem) : key_array(keys, n_keys);
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    pg__p_text(&p, arr);
    pg_conn_t *c = pg__conn_take(q);
    int r;
    PGresult *res = pg__query(c, q, all ? LATEST_ALL_SQL : LATEST_KEYS_SQL, &p, &r);
    if (res) {
        /* Rows come sorted (all keys) or in the caller's order, so appending an entry's
         * value keeps the order SQLite's final sort (or its loop) gives. */
        for (int i = 0; i < PQntuples(res); i++)
            latest_row(res, i, mem, n_mem, out);
        PQclear(res);
        r = 0;
    }
    pg__conn_give(q, c);
    free(arr);
    store__latest_copy_free(mem, n_mem);
    return r;
}

/* ---- deletes of points ---- */

/* Runs sql with $1 = device, $2 = key and, when given (with_range), $3 = start, $4 = end. */
static int run_key_sql(pg_conn_t *c, store_pg_t *q, const char *sql, int64_t device_id,
                       int64_t key_id, bool with_range, int64_t start_ms, int64_t end_ms)
{
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    pg__p_i64(&p, key_id);
    if (with_range) {
        pg__p_i64(&p, start_ms);
        pg__p_i64(&p, end_ms);
    }
    return pg__exec(c, q, sql, &p, NULL);
}

/* ts of the stored latest value of (device, key); false when there is none. */
static bool table_latest_ts(pg_conn_t *c, store_pg_t *q, int64_t device_id, int64_t key_id,
                            int64_t *ts, int *r)
{
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    pg__p_i64(&p, key_id);
    PGresult *res = pg__query(
        c, q, "SELECT ts FROM ts_kv_latest WHERE device_id = $1 AND key_id = $2", &p, r);
    if (!res)
        return false;
    bool found = PQntuples(res) > 0;
    if (found)
        *ts = pg__i64(res, 0, 0);
    PQclear(res);
    return found;
}

/* The ts_kv partitions the key's log points outside [start, end] need (pg_partition.c): the
 * maintenance thread makes those near now ahead of time, but a device may have sent
 * timestamps far from now, and their partitions would otherwise come with the merge. */
static int cover_parts(pg_conn_t *c, store_pg_t *q, int64_t device_id, int64_t key_id,
                       int64_t start_ms, int64_t end_ms)
{
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    pg__p_i64(&p, key_id);
    pg__p_i64(&p, start_ms);
    pg__p_i64(&p, end_ms);
    int r;
    PGresult *res = pg__query(c, q,
                              "SELECT DISTINCT ts FROM ts_kv_log WHERE device_id = $1"
                              " AND key_id = $2 AND ts NOT BETWEEN $3 AND $4 ORDER BY ts",
                              &p, &r);
    if (!res)
        return r;
    size_t n = (size_t)PQntuples(res);
    int64_t *ts = xmalloc((n ? n : 1) * sizeof(*ts));
    for (size_t i = 0; i < n; i++)
        ts[i] = pg__i64(res, (int)i, 0);
    PQclear(res);
    r = pg__parts_cover(q, c, ts, n);
    free(ts);
    return r;
}

/* The key's latest value is gone: its older points still in the log must not bring an older
 * value back when they are merged, so they move into ts_kv now and leave the log. Only those
 * outside [start, end] move: the delete that follows removes the others from both tables, so
 * the end state is SQLite's (which moves them all, then deletes the range), and no partition
 * is made for points about to go. */
static int move_log_points(pg_conn_t *c, store_pg_t *q, int64_t device_id, int64_t key_id,
                           int64_t start_ms, int64_t end_ms)
{
    static const char *const sql[] = {
        "DELETE FROM ts_kv_latest WHERE device_id = $1 AND key_id = $2",
        /* One row per ts, the last written (highest seq) winning, as the merge applies them
         * in seq order: PostgreSQL's upsert may not touch a row twice in one statement. */
        "INSERT INTO ts_kv(device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v)"
        " SELECT DISTINCT ON (ts) device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v"
        " FROM ts_kv_log WHERE device_id = $1 AND key_id = $2 AND ts NOT BETWEEN $3 AND $4"
        " ORDER BY ts, seq DESC"
        " ON CONFLICT (device_id, key_id, ts) DO UPDATE SET bool_v = excluded.bool_v,"
        " long_v = excluded.long_v, dbl_v = excluded.dbl_v, str_v = excluded.str_v,"
        " json_v = excluded.json_v",
        "DELETE FROM ts_kv_log WHERE device_id = $1 AND key_id = $2"};
    int r = cover_parts(c, q, device_id, key_id, start_ms, end_ms);
    for (size_t t = 0; r == 0 && t < sizeof(sql) / sizeof(sql[0]); t++)
        r = run_key_sql(c, q, sql[t], device_id, key_id, t == 1, start_ms, end_ms);
    return r;
}

/* The latest value of one key around a delete of [start, end] (latest.c keeps it in two
 * places: the table and, for points not merged yet, memory). 1 when the in-memory entry must
 * go after the commit. */
static int fix_latest(store_pg_t *q, pg_conn_t *c, int64_t device_id, int64_t key_id,
                      int64_t start_ms, int64_t end_ms, bool delete_latest, int *r)
{
    store_kv_t mem;
    bool has_mem = store__latest_find_locked(q->s, device_id, key_id, &mem);
    int64_t tab_ts = 0;
    bool has_tab = table_latest_ts(c, q, device_id, key_id, &tab_ts, r);
    if (*r != 0)
        return 0;
    if (!delete_latest) {
        /* The latest value stays even when its point goes; its log row is gone now, so the
         * merge will not write it: the table takes it. */
        if (!has_mem || mem.ts < start_ms || mem.ts > end_ms)
            return 0;
        *r = pg__latest_upsert(c, q, device_id, key_id, &mem);
        return *r == 0;
    }
    int64_t latest = has_mem && (!has_tab || mem.ts >= tab_ts) ? mem.ts : tab_ts;
    if ((!has_mem && !has_tab) || latest < start_ms || latest > end_ms)
        return 0; /* as in ThingsBoard: the latest value goes only when it is in the range */
    *r = move_log_points(c, q, device_id, key_id, start_ms, end_ms);
    return *r == 0;
}

/* One key of a delete, inside its transaction: *key_id is the key's, and *forget is set
 * when its in-memory entry must go after the commit. */
static int delete_key(store_pg_t *q, pg_conn_t *c, int64_t device_id, const char *key,
                      int64_t start_ms, int64_t end_ms, bool delete_latest, int64_t *key_id,
                      bool *forget)
{
    /* Points not merged yet are still in the telemetry log (merge.c): both tables. */
    static const char *const del_sql[] = {
        "DELETE FROM ts_kv WHERE device_id = $1 AND key_id = $2 AND ts BETWEEN $3 AND $4",
        "DELETE FROM ts_kv_log WHERE device_id = $1 AND key_id = $2 AND ts BETWEEN $3 AND $4"};
    int r = pg__key_id(c, q, key, false, key_id);
    if (r != 0)
        return r == -ENOENT ? 0 : r; /* never written: nothing to delete */
    *forget = fix_latest(q, c, device_id, *key_id, start_ms, end_ms, delete_latest, &r) == 1;
    for (size_t t = 0; r == 0 && t < 2; t++)
        r = run_key_sql(c, q, del_sql[t], device_id, *key_id, true, start_ms, end_ms);
    return r;
}

int store__pg_ts_delete(store_db_t *db, int64_t device_id, const char *const *keys, size_t n_keys,
                        int64_t start_ms, int64_t end_ms, bool delete_latest)
{
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = pg__conn_take(q);
    int r = pg__exec_simple(c, q, "BEGIN");
    if (r == 0)
        r = pg__lock_out_writer(c, q);
    if (r != 0) {
        pg__conn_give(q, c); /* rolls back */
        return r;
    }
    /* From inside the transaction, once the writer is locked out, until the entries are
     * fixed: no commit of the writer in between (latest.c). The writer first, so the writer
     * never waits for it while holding latest_mu. */
    pthread_mutex_lock(&q->s->latest_mu);
    int64_t *forget = xcalloc(n_keys, sizeof(*forget));
    size_t n_forget = 0;
    for (size_t i = 0; r == 0 && i < n_keys; i++) {
        int64_t key_id;
        bool gone = false;
        r = delete_key(q, c, device_id, keys[i], start_ms, end_ms, delete_latest, &key_id, &gone);
        if (gone)
            forget[n_forget++] = key_id;
    }
    if (r == 0)
        r = pg__exec_simple(c, q, "COMMIT");
    if (r != 0 && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        pg__exec_simple(c, q, "ROLLBACK");
    for (size_t i = 0; r == 0 && i < n_forget; i++)
        store__latest_remove_locked(q->s, device_id, forget[i]);
    pthread_mutex_unlock(&q->s->latest_mu);
    free(forget);
    pg__conn_give(q, c);
    return r;
}
