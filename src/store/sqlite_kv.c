/* sqlite_kv.c — the SQLite backend's reads and deletes of attributes and of time series
 * (keys, latest values, deletes of points); the history is in sqlite_history.c.
 *
 * Invariant: values come back with the type they were stored with (exactly one typed column
 * is set per row), so a DOUBLE 42.0 is read back as DOUBLE, never as LONG.
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const store_kv_t *)a)->key, ((const store_kv_t *)b)->key);
}

/* Steps st collecting rows laid out as: key, ts, then the five value columns. */
static int collect(store_conn_t *c, sqlite3_stmt *st, store_kv_list_t *out)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_kv_t kv = {0};
        if (store__column_value(st, 2, &kv) != 0)
            continue; /* a row without a value cannot be written by us; skip it */
        kv.ts = sqlite3_column_int64(st, 1);
        /* Move ownership of s into the list without another copy. */
        char *sv = kv.s;
        kv.s = NULL;
        kv.key = (char *)sqlite3_column_text(st, 0);
        store_kv_list_push(out, &kv);
        out->items[out->n - 1].s = sv;
    }
    int r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
    return r;
}

int store__sqlite_attr_get(store_db_t *db, int64_t device_id, store_scope_t scope,
                           const char *const *keys, size_t n_keys, store_kv_list_t *out)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = store__exec(c, "BEGIN");
    if (r != 0)
        goto out;
    if (!keys || n_keys == 0) {
        sqlite3_stmt *st = store__stmt(
            c,
            "SELECT k.key, a.last_update_ts, a.bool_v, a.long_v, a.dbl_v, a.str_v, a.json_v"
            " FROM attribute_kv a JOIN key_dictionary k ON k.key_id = a.key_id"
            " WHERE a.device_id = ?1 AND a.attribute_type = ?2 ORDER BY k.key");
        if (!st) {
            r = ERR_STORE;
            goto out;
        }
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_int(st, 2, (int)scope);
        r = collect(c, st, out);
    } else {
        sqlite3_stmt *st = store__stmt(
            c,
            "SELECT k.key, a.last_update_ts, a.bool_v, a.long_v, a.dbl_v, a.str_v, a.json_v"
            " FROM attribute_kv a JOIN key_dictionary k ON k.key_id = a.key_id"
            " WHERE a.device_id = ?1 AND a.attribute_type = ?2 AND k.key = ?3");
        if (!st) {
            r = ERR_STORE;
            goto out;
        }
        for (size_t i = 0; i < n_keys && r == 0; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, device_id);
            sqlite3_bind_int(st, 2, (int)scope);
            sqlite3_bind_text(st, 3, keys[i], -1, SQLITE_STATIC);
            r = collect(c, st, out);
        }
        if (out->n > 1)
            qsort(out->items, out->n, sizeof(*out->items), cmp_key);
    }
    store__exec(c, "COMMIT");
out:
    store__conn_give(q, c);
    return r;
}

int store__sqlite_attr_keys(store_db_t *db, int64_t device_id, store_scope_t scope,
                            store_kv_list_t *out)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(c,
                                   "SELECT DISTINCT k.key FROM attribute_kv a JOIN key_dictionary k"
                                   " ON k.key_id = a.key_id WHERE a.device_id = ?1"
                                   " AND (?2 = 0 OR a.attribute_type = ?2) ORDER BY k.key");
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int(st, 2, (int)scope);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_kv_t kv = {.key = (char *)sqlite3_column_text(st, 0)};
        store_kv_list_push(out, &kv);
    }
    r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
out:
    store__conn_give(q, c);
    return r;
}

int store__sqlite_attr_delete(store_db_t *db, int64_t device_id, store_scope_t scope,
                              const char *const *keys, size_t n_keys, size_t *n_deleted)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    size_t total = 0;
    int r = store__exec(c, "BEGIN IMMEDIATE");
    sqlite3_stmt *st = NULL;
    if (r == 0 && !(st = store__stmt(c,
                                     "DELETE FROM attribute_kv WHERE device_id = ?1"
                                     " AND attribute_type = ?2 AND key_id ="
                                     " (SELECT key_id FROM key_dictionary WHERE key = ?3)")))
        r = ERR_STORE;
    for (size_t i = 0; r == 0 && i < n_keys; i++) {
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_int(st, 2, (int)scope);
        sqlite3_bind_text(st, 3, keys[i], -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            total += (size_t)sqlite3_changes(c->db);
        else
            r = store__err(c->db, rc);
        sqlite3_reset(st);
    }
    if (r == 0)
        r = store__exec(c, "COMMIT");
    store__conn_give(q, c);
    if (r == 0 && n_deleted)
        *n_deleted = total;
    return r;
}

/* Latest values are the newer of ts_kv_latest and the in-memory entries of points not merged
 * yet (latest.c). The entries are copied before the read transaction starts: an entry gone
 * from memory by then is in the table the transaction sees. */

/* The name of key_id; NULL if unknown (cannot happen for an entry: keys are never deleted). */
static char *key_name(store_conn_t *c, int64_t key_id)
{
    sqlite3_stmt *st = store__stmt(c, "SELECT key FROM key_dictionary WHERE key_id = ?1");
    if (!st)
        return NULL;
    sqlite3_bind_int64(st, 1, key_id);
    char *name = sqlite3_step(st) == SQLITE_ROW ? store__col_str(st, 0) : NULL;
    sqlite3_reset(st);
    return name;
}

int store__sqlite_ts_keys(store_db_t *db, int64_t device_id, store_kv_list_t *out)
{
    store_sqlite_t *q = store__sq(db);
    store_latest_copy_t *mem;
    size_t n_mem = store__latest_copy(q->s, device_id, &mem);
    store_conn_t *c = store__conn_take(q);
    int r = store__exec(c, "BEGIN");
    if (r != 0)
        goto out;
    /* Like ThingsBoard, the keys of a device are those that have a latest value. */
    sqlite3_stmt *st = store__stmt(c,
                                   "SELECT k.key FROM ts_kv_latest l JOIN key_dictionary k"
                                   " ON k.key_id = l.key_id WHERE l.device_id = ?1"
                                   " ORDER BY k.key");
    if (!st) {
        r = ERR_STORE;
        goto done;
    }
    sqlite3_bind_int64(st, 1, device_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_kv_t kv = {.key = (char *)sqlite3_column_text(st, 0)};
        store_kv_list_push(out, &kv);
    }
    r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
    size_t n_table = out->n;
    for (size_t i = 0; r == 0 && i < n_mem; i++) {
        char *name = key_name(c, mem[i].key_id);
        if (name && store__kv_list_find(out, name) < 0) {
            store_kv_t kv = {.key = name};
            store_kv_list_push(out, &kv);
        }
        free(name);
    }
    if (out->n > n_table)
        qsort(out->items, out->n, sizeof(*out->items), cmp_key);
done:
    store__exec(c, "COMMIT");
out:
    store__conn_give(q, c);
    store__latest_copy_free(mem, n_mem);
    return r;
}

int store__sqlite_ts_latest(store_db_t *db, int64_t device_id, const char *const *keys,
                            size_t n_keys, store_kv_list_t *out)
{
    store_sqlite_t *q = store__sq(db);
    store_latest_copy_t *mem;
    size_t n_mem = store__latest_copy(q->s, device_id, &mem);
    store_conn_t *c = store__conn_take(q);
    int r = store__exec(c, "BEGIN");
    if (r != 0)
        goto out;
    if (!keys || n_keys == 0) {
        sqlite3_stmt *st = store__stmt(
            c,
            "SELECT k.key, l.ts, l.bool_v, l.long_v, l.dbl_v, l.str_v, l.json_v"
            " FROM ts_kv_latest l JOIN key_dictionary k ON k.key_id = l.key_id"
            " WHERE l.device_id = ?1 ORDER BY k.key");
        if (!st) {
            r = ERR_STORE;
            goto done;
        }
        sqlite3_bind_int64(st, 1, device_id);
        r = collect(c, st, out);
        size_t n_table = out->n;
        for (size_t i = 0; r == 0 && i < n_mem; i++) {
            char *name = key_name(c, mem[i].key_id);
            if (name)
                store__latest_take_newer(out, store__kv_list_find(out, name), name, &mem[i].kv);
            free(name);
        }
        if (out->n > n_table)
            qsort(out->items, out->n, sizeof(*out->items), cmp_key);
    } else {
        sqlite3_stmt *st = store__stmt(
            c,
            "SELECT k.key, l.ts, l.bool_v, l.long_v, l.dbl_v, l.str_v, l.json_v"
            " FROM ts_kv_latest l JOIN key_dictionary k ON k.key_id = l.key_id"
            " WHERE l.device_id = ?1 AND k.key = ?2");
        if (!st) {
            r = ERR_STORE;
            goto done;
        }
        for (size_t i = 0; i < n_keys && r == 0; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, device_id);
            sqlite3_bind_text(st, 2, keys[i], -1, SQLITE_STATIC);
            size_t before = out->n;
            r = collect(c, st, out);
            int64_t kid;
            if (r != 0 || n_mem == 0 || store__key_id(c, keys[i], false, &kid) != 0)
                continue;
            for (size_t j = 0; j < n_mem; j++)
                if (mem[j].key_id == kid)
                    store__latest_take_newer(out, out->n > before ? (ssize_t)before : -1, keys[i],
                                             &mem[j].kv);
        }
    }
done:
    store__exec(c, "COMMIT");
out:
    store__conn_give(q, c);
    store__latest_copy_free(mem, n_mem);
    return r;
}

/* Runs sql for (device, key) as ?1, ?2 and, when it has them, start and end as ?3, ?4. */
static int run_key_sql(store_conn_t *c, const char *sql, int64_t device_id, int64_t key_id,
                       int64_t start_ms, int64_t end_ms)
{
    sqlite3_stmt *st = store__stmt(c, sql);
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int64(st, 2, key_id);
    if (sqlite3_bind_parameter_count(st) >= 4) {
        sqlite3_bind_int64(st, 3, start_ms);
        sqlite3_bind_int64(st, 4, end_ms);
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
}

/* ts of the stored latest value of (device, key); false when there is none. */
static bool table_latest_ts(store_conn_t *c, int64_t device_id, int64_t key_id, int64_t *ts, int *r)
{
    sqlite3_stmt *st = store__stmt(
        c, "SELECT ts FROM ts_kv_latest WHERE device_id = ?1 AND key_id = ?2");
    if (!st) {
        *r = ERR_STORE;
        return false;
    }
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int64(st, 2, key_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ts = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        *r = store__err(c->db, rc);
    sqlite3_reset(st);
    return rc == SQLITE_ROW;
}

/* The latest value of one key around a delete of [start, end] (latest.c keeps it in two
 * places: the table and, for points not merged yet, memory). 1 when the in-memory entry must
 * go after the commit. */
static int fix_latest(store_sqlite_t *q, store_conn_t *c, int64_t device_id, int64_t key_id,
                      int64_t start_ms, int64_t end_ms, bool delete_latest, int *r)
{
    store_kv_t mem;
    bool has_mem = store__latest_find_locked(q->s, device_id, key_id, &mem);
    int64_t tab_ts = 0;
    bool has_tab = table_latest_ts(c, device_id, key_id, &tab_ts, r);
    if (*r != 0)
        return 0;
    if (!delete_latest) {
        /* The latest value stays even when its point goes; its log row is gone now, so the
         * merge will not write it: the table takes it. */
        if (!has_mem || mem.ts < start_ms || mem.ts > end_ms)
            return 0;
        *r = store__latest_upsert(c, device_id, key_id, &mem);
        return *r == 0;
    }
    int64_t latest = has_mem && (!has_tab || mem.ts >= tab_ts) ? mem.ts : tab_ts;
    if ((!has_mem && !has_tab) || latest < start_ms || latest > end_ms)
        return 0; /* as in ThingsBoard: the latest value goes only when it is in the range */
    /* Gone. The key's older points still in the log must not bring an older value back
     * when they are merged: they move into ts_kv now. */
    static const char *const sql[] = {
        "DELETE FROM ts_kv_latest WHERE device_id = ?1 AND key_id = ?2",
        "INSERT INTO ts_kv(device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v)"
        " SELECT device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v FROM ts_kv_log"
        " WHERE device_id = ?1 AND key_id = ?2 ORDER BY seq"
        " ON CONFLICT(device_id, key_id, ts) DO UPDATE SET bool_v = excluded.bool_v,"
        " long_v = excluded.long_v, dbl_v = excluded.dbl_v, str_v = excluded.str_v,"
        " json_v = excluded.json_v",
        "DELETE FROM ts_kv_log WHERE device_id = ?1 AND key_id = ?2"};
    for (size_t t = 0; *r == 0 && t < sizeof(sql) / sizeof(sql[0]); t++)
        *r = run_key_sql(c, sql[t], device_id, key_id, 0, 0);
    return *r == 0;
}

int store__sqlite_ts_delete(store_db_t *db, int64_t device_id, const char *const *keys,
                            size_t n_keys, int64_t start_ms, int64_t end_ms, bool delete_latest)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = store__exec(c, "BEGIN IMMEDIATE");
    if (r != 0) {
        store__conn_give(q, c);
        return r;
    }
    /* From inside the write transaction until the entries are fixed: no commit of the
     * writer in between (latest.c). The write lock first, so the writer never waits for it
     * while holding latest_mu. */
    pthread_mutex_lock(&q->s->latest_mu);
    int64_t *forget = xcalloc(n_keys, sizeof(*forget));
    size_t n_forget = 0;
    for (size_t i = 0; r == 0 && i < n_keys; i++) {
        int64_t key_id;
        r = store__key_id(c, keys[i], false, &key_id);
        if (r == -ENOENT) {
            r = 0;
            continue;
        }
        if (r != 0)
            break;
        /* Points not merged yet are still in the telemetry log (merge.c): both tables. */
        static const char *const del_sql[] = {
            "DELETE FROM ts_kv WHERE device_id = ?1 AND key_id = ?2 AND ts BETWEEN ?3 AND ?4",
            "DELETE FROM ts_kv_log WHERE device_id = ?1 AND key_id = ?2"
            " AND ts BETWEEN ?3 AND ?4"};
        if (fix_latest(q, c, device_id, key_id, start_ms, end_ms, delete_latest, &r) == 1)
            forget[n_forget++] = key_id;
        for (size_t t = 0; r == 0 && t < 2; t++)
            r = run_key_sql(c, del_sql[t], device_id, key_id, start_ms, end_ms);
    }
    if (r == 0)
        r = store__exec(c, "COMMIT");
    if (r != 0 && !sqlite3_get_autocommit(c->db))
        store__exec(c, "ROLLBACK");
    for (size_t i = 0; r == 0 && i < n_forget; i++)
        store__latest_remove_locked(q->s, device_id, forget[i]);
    pthread_mutex_unlock(&q->s->latest_mu);
    free(forget);
    store__conn_give(q, c);
    return r;
}
