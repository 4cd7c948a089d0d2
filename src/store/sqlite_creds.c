/* sqlite_creds.c — the SQLite backend's device credentials: one row per device,
 * credentials_id unique across devices.
 *
 * Invariant: setting credentials checks ownership of cred_id and writes the row in one
 * BEGIN IMMEDIATE transaction, so two devices can never end up sharing a token.
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int store__sqlite_cred_set_locked(store_conn_t *c, store_cred_t *cr)
{
    sqlite3_stmt *st = store__stmt(c,
                                   "SELECT device_id FROM device_credentials"
                                   " WHERE credentials_id = ?1");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_text(st, 1, cr->cred_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int64_t owner = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store__err(c->db, rc);
    if (owner != 0 && owner != cr->device_id)
        return ERR_CONFLICT;

    st = store__stmt(c,
                     "UPDATE device_credentials SET credentials_type = ?2,"
                     " credentials_id = ?3, credentials_value = ?4, version = version + 1"
                     " WHERE device_id = ?1 RETURNING uuid, created_time, version");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, cr->device_id);
    sqlite3_bind_int(st, 2, (int)cr->type);
    sqlite3_bind_text(st, 3, cr->cred_id, -1, SQLITE_STATIC);
    store__bind_text(st, 4, cr->cred_value);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store__col_uuid(st, 0, cr->uuid);
        cr->created_ms = sqlite3_column_int64(st, 1);
        cr->version = sqlite3_column_int64(st, 2);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store__err(c->db, rc);

    st = store__stmt(c,
                     "INSERT INTO device_credentials(uuid, created_time, device_id,"
                     " credentials_type, credentials_id, credentials_value, version)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)");
    if (!st)
        return ERR_STORE;
    char uuid[STORE_UUID_LEN + 1];
    int64_t now = store__bind_new_row(st, 1, 2, uuid);
    sqlite3_bind_int64(st, 3, cr->device_id);
    sqlite3_bind_int(st, 4, (int)cr->type);
    sqlite3_bind_text(st, 5, cr->cred_id, -1, SQLITE_STATIC);
    store__bind_text(st, 6, cr->cred_value);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store__err(c->db, rc); /* unknown device -> -ENOENT (foreign key) */
    memcpy(cr->uuid, uuid, sizeof(uuid));
    cr->created_ms = now;
    cr->version = 1;
    return 0;
}

int store__sqlite_cred_set(store_db_t *db, store_cred_t *cr)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = store__exec(c, "BEGIN IMMEDIATE");
    if (r == 0) {
        r = store__sqlite_cred_set_locked(c, cr);
        if (r == 0)
            r = store__exec(c, "COMMIT");
    }
    store__conn_give(q, c); /* rolls back on failure */
    return r;
}

int store__sqlite_cred_get_by_device(store_db_t *db, int64_t device_id, store_cred_t *out)
{
    return store__row_get(store__sq(db),
                          "SELECT " STORE_CRED_COLS " FROM device_credentials WHERE device_id = ?1",
                          device_id, NULL, &store__cred_row, out);
}

int store__sqlite_cred_get_by_id(store_db_t *db, const char *cred_id, store_cred_t *out)
{
    return store__row_get(store__sq(db),
                          "SELECT " STORE_CRED_COLS
                          " FROM device_credentials WHERE credentials_id = ?1",
                          0, cred_id, &store__cred_row, out);
}

int store__sqlite_cred_foreach(store_db_t *db, void (*fn)(void *arg, const store_cred_t *c),
                               void *arg)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(c, "SELECT " STORE_CRED_COLS
                                      " FROM device_credentials ORDER BY id");
    if (!st)
        goto out;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_cred_t cr;
        store__row_read(st, &store__cred_row, &cr);
        fn(arg, &cr);
        store_cred_fini(&cr);
    }
    r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
out:
    store__conn_give(q, c);
    return r;
}
