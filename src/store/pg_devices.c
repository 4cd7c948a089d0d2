/* pg_devices.c — the PostgreSQL backend's device administration (create, update, get, list,
 * delete) on pool connections; the twin of sqlite_devices.c, with the same results, order and
 * error codes for every caller.
 *
 * Invariant: every multi-statement change runs in one transaction, so a concurrent writer or
 * admin call sees either all of it or none; uniqueness (device name) is enforced by the schema
 * and reported as ERR_CONFLICT. A delete is ordered against the writer's transactions
 * (pg__lock_out_writer), as SQLite's single write lock orders it, and removes the device's
 * points from ts_kv and ts_kv_log itself: those two tables have no foreign keys here
 * (pg_migrate.c says why), where SQLite cascades and fires its trigger.
 *
 * Listing reproduces SQLite's comparisons rather than PostgreSQL's: text sorts byte-wise
 * (COLLATE "C", SQLite's BINARY) with NULL labels first when ascending, and the name search is
 * SQLite's LIKE prefix, case-insensitive for ASCII letters only.
 */
#include "store/pg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *type_or_default(const store_device_t *d)
{
    return d->type && d->type[0] ? d->type : "default";
}

int store__pg_device_create(store_db_t *db, store_device_t *d, store_cred_t *cred)
{
    store_pg_t *q = store__pg(db);
    pg_params_t p = {0};
    char uuid[STORE_UUID_LEN + 1];
    int64_t now = pg__new_row(uuid);
    pg__p_text(&p, uuid);
    pg__p_i64(&p, now);
    pg__p_text(&p, d->name);
    pg__p_text(&p, type_or_default(d));
    pg__p_text(&p, d->label);
    pg__p_text(&p, d->additional_info);
    pg__p_i64(&p, d->profile_id);
    pg__p_text(&p, d->firmware_id);
    pg__p_text(&p, d->software_id);
    pg__p_text(&p, d->device_data);
    pg_conn_t *c = pg__conn_take(q);
    /* With credentials: both rows in one transaction, so a failure leaves neither. */
    int r = cred ? pg__exec_simple(c, q, "BEGIN") : 0;
    PGresult *res = NULL;
    if (r == 0)
        res = pg__query(c, q,
                        "INSERT INTO device(uuid, created_time, name, type,"
                        " label, additional_info, version, profile_id, firmware_id,"
                        " software_id, device_data)"
                        " VALUES ($1, $2, $3,"
                        " COALESCE((SELECT name FROM device_profile WHERE id = $7), $4),"
                        " $5, $6, 1, $7, $8, $9, $10) RETURNING id",
                        &p, &r);
    if (res) {
        d->id = pg__i64(res, 0, 0);
        memcpy(d->uuid, uuid, sizeof(uuid));
        d->created_ms = now;
        d->version = 1;
        PQclear(res);
        r = 0;
    }
    if (r == 0 && cred) {
        cred->device_id = d->id;
        r = pg__cred_set_on(c, q, cred);
        if (r == ERR_CONFLICT)
            r = -EEXIST; /* the credentials, not the name */
        if (r == 0)
            r = pg__commit(c, q);
    }
    pg__conn_give(q, c); /* rolls back what failed */
    if (r != 0)
        d->id = 0;
    return r;
}

int store__pg_device_update(store_db_t *db, store_device_t *d)
{
    store_pg_t *q = store__pg(db);
    pg_params_t p = {0};
    pg__p_i64(&p, d->id);
    pg__p_text(&p, d->name);
    pg__p_text(&p, type_or_default(d));
    pg__p_text(&p, d->label);
    pg__p_text(&p, d->additional_info);
    pg__p_i64(&p, d->profile_id);
    pg__p_text(&p, d->firmware_id);
    pg__p_text(&p, d->software_id);
    pg__p_text(&p, d->device_data);
    pg_conn_t *c = pg__conn_take(q);
    int r;
    PGresult *res = pg__query(
        c, q,
        "UPDATE device SET name = $2,"
        " type = COALESCE((SELECT name FROM device_profile WHERE id = $6), $3),"
        " label = $4, additional_info = $5,"
        " profile_id = $6, firmware_id = $7, software_id = $8, device_data = $9,"
        " version = version + 1 WHERE id = $1 RETURNING version",
        &p, &r);
    if (res) {
        r = PQntuples(res) > 0 ? 0 : -ENOENT;
        if (r == 0)
            d->version = pg__i64(res, 0, 0);
        PQclear(res);
    }
    pg__conn_give(q, c);
    return r;
}

int store__pg_device_get(store_db_t *db, int64_t id, store_device_t *out)
{
    return pg__row_get(store__pg(db), "SELECT " STORE_DEVICE_COLS " FROM device WHERE id = $1", id,
                       NULL, &store__device_row, out);
}

int store__pg_device_get_by_uuid(store_db_t *db, const char *uuid, store_device_t *out)
{
    return pg__row_get(store__pg(db), "SELECT " STORE_DEVICE_COLS " FROM device WHERE uuid = $1", 0,
                       uuid, &store__device_row, out);
}

int store__pg_device_get_by_name(store_db_t *db, const char *name, store_device_t *out)
{
    return pg__row_get(store__pg(db), "SELECT " STORE_DEVICE_COLS " FROM device WHERE name = $1", 0,
                       name, &store__device_row, out);
}

/* Inside the delete's transaction: the device row first (its absence is -ENOENT, and the
 * transaction is rolled back before anything else ran), then the points SQLite's cascade and
 * trigger would remove. Credentials, attributes, latest values and RPC rows still cascade. */
static int delete_locked(pg_conn_t *c, store_pg_t *q, int64_t id)
{
    static const char *const children[] = {"DELETE FROM ts_kv WHERE device_id = $1",
                                           "DELETE FROM ts_kv_log WHERE device_id = $1"};
    pg_params_t p = {0};
    pg__p_i64(&p, id);
    int64_t n = 0;
    int r = pg__exec(c, q, "DELETE FROM device WHERE id = $1", &p, &n);
    if (r == 0 && n == 0)
        r = -ENOENT;
    for (size_t i = 0; r == 0 && i < sizeof(children) / sizeof(children[0]); i++)
        r = pg__exec(c, q, children[i], &p, NULL);
    return r;
}

int store__pg_device_delete(store_db_t *db, int64_t id)
{
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = pg__conn_take(q);
    /* The writer's open transaction ends before this one goes on, and its next one waits
     * for our COMMIT: a point of this device can neither slip in behind the delete nor
     * outlive it. The in-memory latest values go with the commit, under latest_mu taken
     * after the writer is locked out (the writer holds latest_mu across its COMMIT, never
     * while waiting for us): a new device that takes this id never sees them. */
    int r = pg__exec_simple(c, q, "BEGIN");
    if (r != 0)
        goto out;
    r = pg__lock_out_writer(c, q);
    if (r != 0) {
        pg__exec_simple(c, q, "ROLLBACK");
        goto out;
    }
    pthread_mutex_lock(&q->s->latest_mu);
    r = delete_locked(c, q, id);
    if (r == 0)
        r = pg__exec_simple(c, q, "COMMIT");
    if (r != 0 && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        pg__exec_simple(c, q, "ROLLBACK");
    if (r == 0)
        store__latest_forget_device_locked(q->s, id);
    pthread_mutex_unlock(&q->s->latest_mu);
out:
    pg__conn_give(q, c);
    return r;
}

/* $1 = LIKE pattern or NULL, $2 = type or NULL. SQLite's LIKE folds ASCII letters only (no
 * ICU), so the name is folded here with translate(), whose mapping does not depend on the
 * database's locale as lower() would, and the pattern in C (like_prefix). The escape is
 * written E'\\' so it means one backslash whatever standard_conforming_strings says. */
#define FOLDED_NAME "translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
#define LIST_WHERE                                                                                 \
    " FROM device WHERE ($1::text IS NULL OR " FOLDED_NAME                                         \
    " LIKE $1::text ESCAPE E'\\\\')"                                                               \
    " AND ($2::text IS NULL OR type = $2::text)"

/* The SQL for each sort column and direction: a fixed set of literals, each prepared once
 * per connection. Text sorts byte-wise as SQLite's BINARY does; NULLs (labels) come first
 * ascending and last descending, as SQLite puts them. */
#define LIST_SQL(col, dir, nulls)                                                                  \
    "SELECT " STORE_DEVICE_COLS LIST_WHERE " ORDER BY " col " " dir " " nulls ", id " dir          \
    " LIMIT $3 OFFSET $4"
#define ASC(col) LIST_SQL(col, "ASC", "NULLS FIRST")
#define DESC(col) LIST_SQL(col, "DESC", "NULLS LAST")

static const struct {
    const char *prop;
    const char *asc, *desc;
} sorts[] = {
    {"createdTime", ASC("created_time"), DESC("created_time")},
    {"name", ASC("name COLLATE \"C\""), DESC("name COLLATE \"C\"")},
    {"type", ASC("type COLLATE \"C\""), DESC("type COLLATE \"C\"")},
    {"label", ASC("label COLLATE \"C\""), DESC("label COLLATE \"C\"")},
};

/* "aBc" -> "abc%": ASCII letters folded (the other side is FOLDED_NAME) and LIKE's
 * wildcards escaped, so a search is a literal, ASCII-case-insensitive prefix, as SQLite's
 * LIKE makes it. */
static char *like_prefix(const char *text)
{
    size_t n = strlen(text);
    char *p = xmalloc(2 * n + 2), *w = p;
    for (size_t i = 0; i < n; i++) {
        char ch = text[i];
        if (ch == '%' || ch == '_' || ch == '\\')
            *w++ = '\\';
        *w++ = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    *w++ = '%';
    *w = '\0';
    return p;
}

/* Appends the rows of res to out. */
static void page_rows(const PGresult *res, store_device_page_t *out)
{
    int n = PQntuples(res);
    if (n <= 0)
        return;
    out->items = xrealloc(out->items, (out->n + (size_t)n) * sizeof(*out->items));
    for (int i = 0; i < n; i++)
        pg__row_read(res, i, &store__device_row, &out->items[out->n++]);
}

int store__pg_device_list(store_db_t *db, const char *text_search, const char *type,
                          const char *sort_property, bool ascending, int64_t page,
                          int64_t page_size, store_device_page_t *out)
{
    const char *sql = NULL;
    for (size_t i = 0; i < sizeof(sorts) / sizeof(sorts[0]); i++) {
        if (!sort_property ? i == 0 : strcmp(sort_property, sorts[i].prop) == 0)
            sql = ascending ? sorts[i].asc : sorts[i].desc;
    }
    if (!sql)
        return -EINVAL;
    char *pattern = text_search && text_search[0] ? like_prefix(text_search) : NULL;
    pg_params_t p = {0};
    pg__p_text(&p, pattern);
    pg__p_text(&p, type && type[0] ? type : NULL);

    store_pg_t *q = store__pg(db);
    pg_conn_t *c = pg__conn_take(q);
    PGresult *res = NULL;
    /* Count and page from one snapshot so the total matches the page (each statement of a
     * READ COMMITTED transaction would take its own). */
    int r = pg__exec_simple(c, q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (r != 0)
        goto out;
    if (!(res = pg__query(c, q, "SELECT COUNT(*)" LIST_WHERE, &p, &r)))
        goto out;
    out->total = pg__i64(res, 0, 0);
    PQclear(res);
    pg__p_i64(&p, page_size);
    pg__p_i64(&p, page * page_size);
    if (!(res = pg__query(c, q, sql, &p, &r)))
        goto out;
    page_rows(res, out);
    PQclear(res);
    pg__exec_simple(c, q, "COMMIT");
out:
    pg__conn_give(q, c); /* rolls back if still open */
    free(pattern);
    if (r != 0)
        store_device_page_fini(out);
    return r;
}
