/* pg_admin.c — the PostgreSQL backend's RPC records, users and settings: small synchronous
 * tables; the twin of sqlite_admin.c.
 *
 * Invariant: every function borrows one pool connection and gives it back before returning;
 * single statements need no explicit transaction (PostgreSQL makes each one atomic).
 *
 * One difference of schema shows here: SQLite's app_user.email is COLLATE NOCASE, PostgreSQL's
 * is unique on lower(email COLLATE "C") (pg_migrate.c: ASCII folding only, as NOCASE), so a
 * lookup by email compares that expression of both sides — the index's, so it is used.
 */
#include "store/pg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Runs a statement that returns no rows on a pool connection; -ENOENT when it changed
 * nothing and want_change is set. */
static int run(store_pg_t *q, const char *sql, const pg_params_t *p, bool want_change)
{
    pg_conn_t *c = pg__conn_take(q);
    int64_t n = 0;
    int r = pg__exec(c, q, sql, p, &n);
    pg__conn_give(q, c);
    if (r != 0)
        return r;
    return want_change && n == 0 ? -ENOENT : 0;
}

/* ---- RPC ---- */

int store__pg_rpc_create(store_db_t *db, store_rpc_t *r)
{
    pg_params_t p = {0};
    char uuid[STORE_UUID_LEN + 1];
    int64_t now = pg__new_row(uuid);
    pg__p_text(&p, uuid);
    pg__p_i64(&p, r->device_id);
    pg__p_i64(&p, now);
    pg__p_i64(&p, r->expiration_ms);
    pg__p_i64(&p, r->request_id);
    pg__p_text(&p, r->method);
    pg__p_text(&p, r->params);
    pg__p_text(&p, r->status ? r->status : "QUEUED");
    pg__p_text(&p, r->response);
    pg__p_bool(&p, r->oneway);
    pg__p_bool(&p, r->persistent);
    int ret = run(store__pg(db),
                  "INSERT INTO rpc(" STORE_RPC_COLS
                  ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
                  " $10, $11)",
                  &p, false);
    if (ret == 0) {
        memcpy(r->uuid, uuid, sizeof(uuid));
        r->created_ms = now;
    }
    return ret;
}

int store__pg_rpc_set_status(store_db_t *db, const char *uuid, const char *status,
                             const char *response)
{
    pg_params_t p = {0};
    pg__p_text(&p, uuid);
    pg__p_text(&p, status);
    pg__p_text(&p, response);
    return run(store__pg(db),
               "UPDATE rpc SET status = $2, response = COALESCE($3::text, response)"
               " WHERE uuid = $1",
               &p, true);
}

int store__pg_rpc_get(store_db_t *db, const char *uuid, store_rpc_t *out)
{
    return pg__row_get(store__pg(db), "SELECT " STORE_RPC_COLS " FROM rpc WHERE uuid = $1", 0, uuid,
                       &store__rpc_row, out);
}

/* An aggregate (COUNT, COALESCE(MAX)): always one row, so none is a store error. p may be
 * NULL: pg__row_get would bind a $1 that a statement without parameters refuses. */
static int scalar_i64(store_pg_t *q, const char *sql, const pg_params_t *p, int64_t *out)
{
    pg_conn_t *c = pg__conn_take(q);
    int r;
    PGresult *res = pg__query(c, q, sql, p, &r);
    if (res) {
        r = PQntuples(res) == 1 ? 0 : ERR_STORE;
        if (r == 0)
            *out = pg__i64(res, 0, 0);
        PQclear(res);
    }
    pg__conn_give(q, c);
    return r;
}

int store__pg_rpc_max_request_id(store_db_t *db, int64_t device_id, int64_t *out)
{
    pg_params_t p = {0};
    pg__p_i64(&p, device_id);
    return scalar_i64(store__pg(db),
                      "SELECT COALESCE(MAX(request_id), 0) FROM rpc WHERE device_id = $1", &p, out);
}

/* ---- users ---- */

int store__pg_user_create(store_db_t *db, store_user_t *u)
{
    store_pg_t *q = store__pg(db);
    pg_params_t p = {0};
    char uuid[STORE_UUID_LEN + 1];
    int64_t now = pg__new_row(uuid);
    pg__p_text(&p, uuid);
    pg__p_i64(&p, now);
    pg__p_text(&p, u->email);
    pg__p_text(&p, u->password_hash);
    pg__p_text(&p, u->authority ? u->authority : "TENANT_ADMIN");
    pg__p_text(&p, u->first_name);
    pg__p_text(&p, u->last_name);
    pg_conn_t *c = pg__conn_take(q);
    int r;
    PGresult *res = pg__query(c, q,
                              "INSERT INTO app_user(uuid, created_time, email,"
                              " password_hash, authority, first_name, last_name)"
                              " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                              &p, &r);
    if (res) {
        u->id = pg__i64(res, 0, 0);
        memcpy(u->uuid, uuid, sizeof(uuid));
        u->created_ms = now;
        PQclear(res);
        r = 0;
    }
    pg__conn_give(q, c);
    return r;
}

int store__pg_user_get_by_email(store_db_t *db, const char *email, store_user_t *out)
{
    /* Emails match case-insensitively, as logins expect (SQLite: COLLATE NOCASE). */
    return pg__row_get(store__pg(db),
                       "SELECT " STORE_USER_COLS
                       " FROM app_user"
                       " WHERE lower(email COLLATE \"C\") = lower($1 COLLATE \"C\")",
                       0, email, &store__user_row, out);
}

int store__pg_user_get_by_uuid(store_db_t *db, const char *uuid, store_user_t *out)
{
    return pg__row_get(store__pg(db), "SELECT " STORE_USER_COLS " FROM app_user WHERE uuid = $1", 0,
                       uuid, &store__user_row, out);
}

int store__pg_user_set_password(store_db_t *db, int64_t id, const char *password_hash)
{
    pg_params_t p = {0};
    pg__p_i64(&p, id);
    pg__p_text(&p, password_hash);
    return run(store__pg(db), "UPDATE app_user SET password_hash = $2 WHERE id = $1", &p, true);
}

int store__pg_user_count(store_db_t *db, int64_t *out)
{
    return scalar_i64(store__pg(db), "SELECT COUNT(*) FROM app_user", NULL, out);
}

/* ---- settings ---- */

int store__pg_setting_get(store_db_t *db, const char *key, char **out)
{
    static const store_row_map_t str_row = {sizeof(char *), 1, {{STORE_COL_STR, 0}}};
    return pg__row_get(store__pg(db), "SELECT value FROM settings WHERE key = $1", 0, key, &str_row,
                       out);
}

/* A pool connection serves: PostgreSQL's faults (a full disk, a read-only standby) are the
 * server's, the same for every connection. */
int store__pg_probe_write(store_db_t *db, const char *value)
{
    return store__pg_setting_set(db, "coaphub.write_probe", value);
}

int store__pg_setting_set(store_db_t *db, const char *key, const char *value)
{
    pg_params_t p = {0};
    pg__p_text(&p, key);
    pg__p_text(&p, value);
    return run(store__pg(db),
               "INSERT INTO settings(key, value) VALUES ($1, $2)"
               " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
               &p, false);
}
