/* kv.c — synchronous reads and deletes of attributes and time series.
 *
 * Invariant: values come back with the type they were stored with (exactly one typed column
 * is set per row), so a DOUBLE 42.0 is read back as DOUBLE, never as LONG.
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

int store_attr_get(store_t *s, int64_t device_id, store_scope_t scope, const char *const *keys,
                   size_t n_keys, store_kv_list_t *out)
{
    store_conn_t *c = store__conn_take(s);
    int r = store__exec(c, "BEGIN");
    if (r != 0)
        goto out;
    if (!keys || n_keys == 0) {
        sqlite3_stmt *st = store__stmt(
            c, "SELECT k.key, a.last_update_ts, a.bool_v, a.long_v, a.dbl_v, a.str_v, a.json_v"
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
            c, "SELECT k.key, a.last_update_ts, a.bool_v, a.long_v, a.dbl_v, a.str_v, a.json_v"
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
    store__conn_give(s, c);
    return r;
}

int store_attr_keys(store_t *s, int64_t device_id, store_scope_t scope, store_kv_list_t *out)
{
    store_conn_t *c = store__conn_take(s);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(
        c, "SELECT DISTINCT k.key FROM attribute_kv a JOIN key_dictionary k"
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
    store__conn_give(s, c);
    return r;
}

int store_attr_delete(store_t *s, int64_t device_id, store_scope_t scope,
                      const char *const *keys, size_t n_keys, size_t *n_deleted)
{
    if (n_deleted)
        *n_deleted = 0;
    store_conn_t *c = store__conn_take(s);
    size_t total = 0;
    int r = store__exec(c, "BEGIN IMMEDIATE");
    sqlite3_stmt *st = NULL;
    if (r == 0 &&
        !(st = store__stmt(c, "DELETE FROM attribute_kv WHERE device_id = ?1"
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
    store__conn_give(s, c);
    if (r == 0 && n_deleted)
        *n_deleted = total;
    return r;
}

int store_ts_keys(store_t *s, int64_t device_id, store_kv_list_t *out)
{
    store_conn_t *c = store__conn_take(s);
    int r = ERR_STORE;
    /* Like ThingsBoard, the keys of a device are those that have a latest value. */
    sqlite3_stmt *st = store__stmt(c, "SELECT k.key FROM ts_kv_latest l JOIN key_dictionary k"
                                      " ON k.key_id = l.key_id WHERE l.device_id = ?1"
                                      " ORDER BY k.key");
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, device_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_kv_t kv = {.key = (char *)sqlite3_column_text(st, 0)};
        store_kv_list_push(out, &kv);
    }
    r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
out:
    store__conn_give(s, c);
    return r;
}

int store_ts_latest(store_t *s, int64_t device_id, const char *const *keys, size_t n_keys,
                    store_kv_list_t *out)
{
    store_conn_t *c = store__conn_take(s);
    int r = store__exec(c, "BEGIN");
    if (r != 0)
        goto out;
    if (!keys || n_keys == 0) {
        sqlite3_stmt *st = store__stmt(
            c, "SELECT k.key, l.ts, l.bool_v, l.long_v, l.dbl_v, l.str_v, l.json_v"
               " FROM ts_kv_latest l JOIN key_dictionary k ON k.key_id = l.key_id"
               " WHERE l.device_id = ?1 ORDER BY k.key");
        if (!st) {
            r = ERR_STORE;
            goto out;
        }
        sqlite3_bind_int64(st, 1, device_id);
        r = collect(c, st, out);
    } else {
        sqlite3_stmt *st = store__stmt(
            c, "SELECT k.key, l.ts, l.bool_v, l.long_v, l.dbl_v, l.str_v, l.json_v"
               " FROM ts_kv_latest l JOIN key_dictionary k ON k.key_id = l.key_id"
               " WHERE l.device_id = ?1 AND k.key = ?2");
        if (!st) {
            r = ERR_STORE;
            goto out;
        }
        for (size_t i = 0; i < n_keys && r == 0; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, device_id);
            sqlite3_bind_text(st, 2, keys[i], -1, SQLITE_STATIC);
            r = collect(c, st, out);
        }
    }
    store__exec(c, "COMMIT");
out:
    store__conn_give(s, c);
    return r;
}

int store_ts_delete(store_t *s, int64_t device_id, const char *const *keys, size_t n_keys,
                    int64_t start_ms, int64_t end_ms, bool delete_latest)
{
    if (!keys || n_keys == 0)
        return -EINVAL;
    store__log_deleting(s); /* before the delete: see merge.c */
    store_conn_t *c = store__conn_take(s);
    int r = store__exec(c, "BEGIN IMMEDIATE");
    for (size_t i = 0; r == 0 && i < n_keys; i++) {
        int64_t key_id;
        r = store__key_id(c, keys[i], false, &key_id);
        if (r == -ENOENT) {
            r = 0;
            continue;
        }
        if (r != 0)
            break;
        /* Points not merged yet are still in the telemetry log (merge.c): both tables. The
         * latest value goes only when asked, and (as in ThingsBoard) only when it lies in the
         * deleted range. */
        static const char *const del_sql[] = {
            "DELETE FROM ts_kv WHERE device_id = ?1 AND key_id = ?2 AND ts BETWEEN ?3 AND ?4",
            "DELETE FROM ts_kv_log WHERE device_id = ?1 AND key_id = ?2"
            " AND ts BETWEEN ?3 AND ?4",
            "DELETE FROM ts_kv_latest WHERE device_id = ?1 AND key_id = ?2"
            " AND ts BETWEEN ?3 AND ?4"};
        size_t n_sql = delete_latest ? 3 : 2;
        for (size_t t = 0; r == 0 && t < n_sql; t++) {
            sqlite3_stmt *st = store__stmt(c, del_sql[t]);
            if (!st) {
                r = ERR_STORE;
                break;
            }
            sqlite3_bind_int64(st, 1, device_id);
            sqlite3_bind_int64(st, 2, key_id);
            sqlite3_bind_int64(st, 3, start_ms);
            sqlite3_bind_int64(st, 4, end_ms);
            int rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc != SQLITE_DONE)
                r = store__err(c->db, rc);
        }
    }
    if (r == 0)
        r = store__exec(c, "COMMIT");
    store__conn_give(s, c);
    return r;
}
