/* pg_creds.c — the PostgreSQL backend's device credentials: one row per device,
 * credentials_id unique across devices; the twin of sqlite_creds.c.
 *
 * Invariant: two devices can never end up sharing a token. SQLite checks the owner of cred_id
 * and writes the row under its single write lock; here one upsert on device_id does both, the
 * unique index on credentials_id being the check. The outcomes are SQLite's: ERR_CONFLICT when
 * another device holds cred_id (the unique violation fires before the foreign key is checked,
 * as SQLite's owner check runs first), -ENOENT for an unknown device, and two concurrent sets
 * for one device serialize on its row instead of both inserting.
 */
#include "store/pg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pg__cred_set_on(pg_conn_t *c, store_pg_t *q, store_cred_t *cr)
{
    pg_params_t p = {0};
    char uuid[STORE_UUID_LEN + 1];
    int64_t now = pg__new_row(uuid);
    pg__p_text(&p, uuid);
    pg__p_i64(&p, now);
    pg__p_i64(&p, cr->device_id);
    pg__p_i64(&p, (int)cr->type);
    pg__p_text(&p, cr->cred_id);
    pg__p_text(&p, cr->cred_value);
    int r;
    /* An existing row keeps its uuid and created_time and gets version + 1; RETURNING gives
     * whichever row is the device's now. */
    PGresult *res = pg__query(
        c, q,
        "INSERT INTO device_credentials(uuid, created_time, device_id, credentials_type,"
        " credentials_id, credentials_value, version) VALUES ($1, $2, $3, $4, $5, $6, 1)"
        " ON CONFLICT (device_id) DO UPDATE SET credentials_type = excluded.credentials_type,"
        " credentials_id = excluded.credentials_id,"
        " credentials_value = excluded.credentials_value,"
        " version = device_credentials.version + 1"
        " RETURNING uuid, created_time, version",
        &p, &r);
    if (res) {
        snprintf(cr->uuid, sizeof(cr->uuid), "%s", PQgetvalue(res, 0, 0));
        cr->created_ms = pg__i64(res, 0, 1);
        cr->version = pg__i64(res, 0, 2);
        PQclear(res);
        r = 0;
    }
    return r;
}

int store__pg_cred_set(store_db_t *db, store_cred_t *cr)
{
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = pg__conn_take(q);
    int r = pg__cred_set_on(c, q, cr);
    pg__conn_give(q, c);
    return r;
}

int store__pg_cred_get_by_device(store_db_t *db, int64_t device_id, store_cred_t *out)
{
    return pg__row_get(store__pg(db),
                       "SELECT " STORE_CRED_COLS " FROM device_credentials WHERE device_id = $1",
                       device_id, NULL, &store__cred_row, out);
}

int store__pg_cred_get_by_id(store_db_t *db, const char *cred_id, store_cred_t *out)
{
    return pg__row_get(store__pg(db),
                       "SELECT " STORE_CRED_COLS
                       " FROM device_credentials WHERE credentials_id = $1",
                       0, cred_id, &store__cred_row, out);
}

/* Rows per page of cred_foreach: libpq holds a whole result in memory, where SQLite steps
 * one row at a time, so a large fleet is read in pages (a page of 1024 rows is ~200 KiB). */
enum { CRED_PAGE = 1024 };

/* One page of rows after id `after`, in id order; the id is the column after STORE_CRED_COLS. */
static int foreach_page(pg_conn_t *c, store_pg_t *q, int64_t *after, bool *more,
                        void (*fn)(void *arg, const store_cred_t *c), void *arg)
{
    pg_params_t p = {0};
    pg__p_i64(&p, *after);
    pg__p_i64(&p, CRED_PAGE);
    int r;
    PGresult *res = pg__query(c, q,
                              "SELECT " STORE_CRED_COLS
                              ", id FROM device_credentials"
                              " WHERE id > $1 ORDER BY id LIMIT $2",
                              &p, &r);
    if (!res)
        return r;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        store_cred_t cr;
        pg__row_read(res, i, &store__cred_row, &cr);
        fn(arg, &cr);
        store_cred_fini(&cr);
    }
    if (n > 0)
        *after = pg__i64(res, n - 1, (int)store__cred_row.n_cols);
    *more = n == CRED_PAGE;
    PQclear(res);
    return 0;
}

int store__pg_cred_foreach(store_db_t *db, void (*fn)(void *arg, const store_cred_t *c), void *arg)
{
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = pg__conn_take(q);
    /* One snapshot for all pages, as SQLite's single statement sees one: a row changed
     * meanwhile is seen once, as it was. */
    int r = pg__exec_simple(c, q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    int64_t after = 0;
    bool more = true;
    while (r == 0 && more)
        r = foreach_page(c, q, &after, &more, fn, arg);
    if (r == 0)
        pg__exec_simple(c, q, "COMMIT");
    pg__conn_give(q, c); /* rolls back if still open */
    return r;
}
