/* sqlite_admin.c — the SQLite backend's RPC records, users and settings: small synchronous
 * tables.
 *
 * Invariant: every function borrows one pool connection and gives it back before returning;
 * single statements need no explicit transaction (SQLite makes each one atomic).
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Runs a prepared, bound statement that returns no rows; -ENOENT when it changed nothing
 * and want_change is set. */
static int run(store_conn_t *c, sqlite3_stmt *st, bool want_change)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store__err(c->db, rc);
    return want_change && sqlite3_changes(c->db) == 0 ? -ENOENT : 0;
}

/* ---- RPC ---- */

int store__sqlite_rpc_create(store_db_t *db, store_rpc_t *r)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int ret = ERR_STORE;
    sqlite3_stmt *st = store__stmt(c, "INSERT INTO rpc(" STORE_RPC_COLS
                                      ") VALUES (?1, ?2, ?3, ?4,"
                                      " ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    if (!st)
        goto out;
    char uuid[STORE_UUID_LEN + 1];
    int64_t now = store__bind_new_row(st, 1, 3, uuid);
    sqlite3_bind_int64(st, 2, r->device_id);
    sqlite3_bind_int64(st, 4, r->expiration_ms);
    sqlite3_bind_int64(st, 5, r->request_id);
    sqlite3_bind_text(st, 6, r->method, -1, SQLITE_STATIC);
    store__bind_text(st, 7, r->params);
    sqlite3_bind_text(st, 8, r->status ? r->status : "QUEUED", -1, SQLITE_STATIC);
    store__bind_text(st, 9, r->response);
    sqlite3_bind_int(st, 10, r->oneway ? 1 : 0);
    sqlite3_bind_int(st, 11, r->persistent ? 1 : 0);
    ret = run(c, st, false);
    if (ret == 0) {
        memcpy(r->uuid, uuid, sizeof(uuid));
        r->created_ms = now;
    }
out:
    store__conn_give(q, c);
    return ret;
}

int store__sqlite_rpc_set_status(store_db_t *db, const char *uuid, const char *status,
                                 const char *response)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(c,
                                   "UPDATE rpc SET status = ?2,"
                                   " response = COALESCE(?3, response) WHERE uuid = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
        store__bind_text(st, 3, response);
        r = run(c, st, true);
    }
    store__conn_give(q, c);
    return r;
}

int store__sqlite_rpc_get(store_db_t *db, const char *uuid, store_rpc_t *out)
{
    return store__row_get(store__sq(db), "SELECT " STORE_RPC_COLS " FROM rpc WHERE uuid = ?1", 0,
                          uuid, &store__rpc_row, out);
}

/* An aggregate (COUNT, COALESCE(MAX)): always one row, so none is a store error. */
static int scalar_i64(store_sqlite_t *q, const char *sql, int64_t id, int64_t *out)
{
    static const store_row_map_t i64_row = {sizeof(int64_t), 1, {{STORE_COL_I64, 0}}};
    int r = store__row_get(q, sql, id, NULL, &i64_row, out);
    return r == -ENOENT ? ERR_STORE : r;
}

int store__sqlite_rpc_max_request_id(store_db_t *db, int64_t device_id, int64_t *out)
{
    return scalar_i64(store__sq(db),
                      "SELECT COALESCE(MAX(request_id), 0) FROM rpc WHERE device_id = ?1",
                      device_id, out);
}

/* ---- users ---- */

int store__sqlite_user_create(store_db_t *db, store_user_t *u)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(c,
                                   "INSERT INTO app_user(uuid, created_time, email,"
                                   " password_hash, authority, first_name, last_name)"
                                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (st) {
        char uuid[STORE_UUID_LEN + 1];
        int64_t now = store__bind_new_row(st, 1, 2, uuid);
        sqlite3_bind_text(st, 3, u->email, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, u->password_hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, u->authority ? u->authority : "TENANT_ADMIN", -1, SQLITE_STATIC);
        store__bind_text(st, 6, u->first_name);
        store__bind_text(st, 7, u->last_name);
        r = run(c, st, false);
        if (r == 0) {
            u->id = sqlite3_last_insert_rowid(c->db);
            memcpy(u->uuid, uuid, sizeof(uuid));
            u->created_ms = now;
        }
    }
    store__conn_give(q, c);
    return r;
}

int store__sqlite_user_get_by_email(store_db_t *db, const char *email, store_user_t *out)
{
    /* The column is COLLATE NOCASE: emails match case-insensitively, as logins expect. */
    return store__row_get(store__sq(db),
                          "SELECT " STORE_USER_COLS " FROM app_user WHERE email = ?1", 0, email,
                          &store__user_row, out);
}

int store__sqlite_user_get_by_uuid(store_db_t *db, const char *uuid, store_user_t *out)
{
    return store__row_get(store__sq(db), "SELECT " STORE_USER_COLS " FROM app_user WHERE uuid = ?1",
                          0, uuid, &store__user_row, out);
}

int store__sqlite_user_set_password(store_db_t *db, int64_t id, const char *password_hash)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(c, "UPDATE app_user SET password_hash = ?2 WHERE id = ?1");
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, password_hash, -1, SQLITE_STATIC);
        r = run(c, st, true);
    }
    store__conn_give(q, c);
    return r;
}

int store__sqlite_user_count(store_db_t *db, int64_t *out)
{
    return scalar_i64(store__sq(db), "SELECT COUNT(*) FROM app_user", 0, out);
}

/* ---- settings ---- */

int store__sqlite_setting_get(store_db_t *db, const char *key, char **out)
{
    static const store_row_map_t str_row = {sizeof(char *), 1, {{STORE_COL_STR, 0}}};
    return store__row_get(store__sq(db), "SELECT value FROM settings WHERE key = ?1", 0, key,
                          &str_row, out);
}

int store__sqlite_setting_set(store_db_t *db, const char *key, const char *value)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(c,
                                   "INSERT INTO settings(key, value) VALUES (?1, ?2)"
                                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        r = run(c, st, false);
    }
    store__conn_give(q, c);
    return r;
}
