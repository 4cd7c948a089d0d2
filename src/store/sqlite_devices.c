/* sqlite_devices.c — the SQLite backend's device administration (create, update, get, list,
 * delete) on pool connections.
 *
 * Invariant: every multi-statement change runs in one BEGIN IMMEDIATE transaction, so a
 * concurrent writer or admin call sees either all of it or none; uniqueness (device name,
 * credentials id, one credentials row per device) is enforced by the schema and reported as
 * ERR_CONFLICT.
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The device's row on c (inside the caller's transaction, if any). */
static int device_insert(store_conn_t *c, store_device_t *d)
{
    sqlite3_stmt *st = store__stmt(c,
                                   "INSERT INTO device(uuid, created_time, name, type,"
                                   " label, additional_info, version, profile_id,"
                                   " firmware_id, software_id, device_data)"
                                   " VALUES (?1, ?2, ?3,"
                                   " COALESCE((SELECT name FROM device_profile"
                                   " WHERE id = ?7), ?4),"
                                   " ?5, ?6, 1, ?7, ?8, ?9, ?10)");
    if (!st)
        return ERR_STORE;
    char uuid[STORE_UUID_LEN + 1];
    int64_t now = store__bind_new_row(st, 1, 2, uuid);
    sqlite3_bind_text(st, 3, d->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->type && d->type[0] ? d->type : "default", -1, SQLITE_STATIC);
    store__bind_text(st, 5, d->label);
    store__bind_text(st, 6, d->additional_info);
    sqlite3_bind_int64(st, 7, d->profile_id);
    store__bind_text(st, 8, d->firmware_id);
    store__bind_text(st, 9, d->software_id);
    store__bind_text(st, 10, d->device_data);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store__err(c->db, rc);
    d->id = sqlite3_last_insert_rowid(c->db);
    memcpy(d->uuid, uuid, sizeof(uuid));
    d->created_ms = now;
    d->version = 1;
    return 0;
}

int store__sqlite_device_create(store_db_t *db, store_device_t *d, store_cred_t *cred)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    /* With credentials: both rows in one transaction, so a failure leaves neither. */
    int r = cred ? store__exec(c, "BEGIN IMMEDIATE") : 0;
    if (r == 0)
        r = device_insert(c, d);
    if (r == 0 && cred) {
        cred->device_id = d->id;
        r = store__sqlite_cred_set_locked(c, cred);
        if (r == ERR_CONFLICT)
            r = -EEXIST; /* the credentials, not the name */
        if (r == 0)
            r = store__exec(c, "COMMIT");
    }
    store__conn_give(q, c); /* rolls back what failed */
    if (r != 0)
        d->id = 0;
    return r;
}

int store__sqlite_device_update(store_db_t *db, store_device_t *d)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(
        c,
        "UPDATE device SET name = ?2,"
        " type = COALESCE((SELECT name FROM device_profile WHERE id = ?6), ?3),"
        " label = ?4, additional_info = ?5,"
        " profile_id = ?6, firmware_id = ?7, software_id = ?8, device_data = ?9,"
        " version = version + 1 WHERE id = ?1 RETURNING version");
    if (!st)
        goto out;
    sqlite3_bind_int64(st, 1, d->id);
    sqlite3_bind_text(st, 2, d->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->type && d->type[0] ? d->type : "default", -1, SQLITE_STATIC);
    store__bind_text(st, 4, d->label);
    store__bind_text(st, 5, d->additional_info);
    sqlite3_bind_int64(st, 6, d->profile_id);
    store__bind_text(st, 7, d->firmware_id);
    store__bind_text(st, 8, d->software_id);
    store__bind_text(st, 9, d->device_data);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        d->version = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    } else if (rc == SQLITE_DONE) {
        r = -ENOENT;
        sqlite3_reset(st);
        goto out;
    }
    r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
out:
    store__conn_give(q, c);
    return r;
}

int store__sqlite_device_get(store_db_t *db, int64_t id, store_device_t *out)
{
    return store__row_get(store__sq(db), "SELECT " STORE_DEVICE_COLS " FROM device WHERE id = ?1",
                          id, NULL, &store__device_row, out);
}

int store__sqlite_device_get_by_uuid(store_db_t *db, const char *uuid, store_device_t *out)
{
    return store__row_get(store__sq(db), "SELECT " STORE_DEVICE_COLS " FROM device WHERE uuid = ?1",
                          0, uuid, &store__device_row, out);
}

int store__sqlite_device_get_by_name(store_db_t *db, const char *name, store_device_t *out)
{
    return store__row_get(store__sq(db), "SELECT " STORE_DEVICE_COLS " FROM device WHERE name = ?1",
                          0, name, &store__device_row, out);
}

int store__sqlite_device_delete(store_db_t *db, int64_t id)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    /* Credentials, attributes, points, latest values and RPC rows go by ON DELETE CASCADE in
     * the same statement, hence the same transaction (the log's rows by its trigger). The
     * in-memory latest values go with the commit, under latest_mu taken inside the write
     * transaction (latest.c): a new device that takes this id never sees them. */
    int r = store__exec(c, "BEGIN IMMEDIATE");
    if (r != 0)
        goto out;
    pthread_mutex_lock(&q->s->latest_mu);
    sqlite3_stmt *st = store__stmt(c, "DELETE FROM device WHERE id = ?1");
    if (!st) {
        r = ERR_STORE;
    } else {
        sqlite3_bind_int64(st, 1, id);
        int rc = sqlite3_step(st);
        r = rc == SQLITE_DONE ? (sqlite3_changes(c->db) > 0 ? 0 : -ENOENT) : store__err(c->db, rc);
        sqlite3_reset(st);
    }
    if (r == 0)
        r = store__exec(c, "COMMIT");
    if (r != 0 && !sqlite3_get_autocommit(c->db))
        store__exec(c, "ROLLBACK");
    if (r == 0)
        store__latest_forget_device_locked(q->s, id);
    pthread_mutex_unlock(&q->s->latest_mu);
out:
    store__conn_give(q, c);
    return r;
}

/* The SQL for each sort column and direction: a fixed set, so each text is a literal that
 * the statement cache keeps. ?1 = LIKE pattern or NULL, ?2 = type or NULL. */
#define LIST_WHERE                                                                                 \
    " FROM device WHERE (?1 IS NULL OR name LIKE ?1 ESCAPE '\\')"                                  \
    " AND (?2 IS NULL OR type = ?2)"
#define LIST_SQL(col, dir)                                                                         \
    "SELECT " STORE_DEVICE_COLS LIST_WHERE " ORDER BY " col " " dir ", id " dir                    \
    " LIMIT ?3 OFFSET ?4"

static const struct {
    const char *prop;
    const char *asc, *desc;
} sorts[] = {
    {"createdTime", LIST_SQL("created_time", "ASC"), LIST_SQL("created_time", "DESC")},
    {"name", LIST_SQL("name", "ASC"), LIST_SQL("name", "DESC")},
    {"type", LIST_SQL("type", "ASC"), LIST_SQL("type", "DESC")},
    {"label", LIST_SQL("label", "ASC"), LIST_SQL("label", "DESC")},
};

/* "abc" -> "abc%" with LIKE's wildcards escaped, so a search is a literal prefix. */
static char *like_prefix(const char *text)
{
    size_t n = strlen(text);
    char *p = xmalloc(2 * n + 2), *w = p;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '%' || text[i] == '_' || text[i] == '\\')
            *w++ = '\\';
        *w++ = text[i];
    }
    *w++ = '%';
    *w = '\0';
    return p;
}

int store__sqlite_device_list(store_db_t *db, const char *text_search, const char *type,
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
    const char *t = type && type[0] ? type : NULL;

    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    /* Count and page in one read transaction so the total matches the page. */
    if ((r = store__exec(c, "BEGIN")) != 0)
        goto out;
    sqlite3_stmt *st = store__stmt(c, "SELECT COUNT(*)" LIST_WHERE);
    if (!st) {
        r = ERR_STORE;
        goto out;
    }
    store__bind_text(st, 1, pattern);
    store__bind_text(st, 2, t);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        r = store__err(c->db, rc);
        sqlite3_reset(st);
        goto out;
    }
    out->total = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);

    if (!(st = store__stmt(c, sql))) {
        r = ERR_STORE;
        goto out;
    }
    store__bind_text(st, 1, pattern);
    store__bind_text(st, 2, t);
    sqlite3_bind_int64(st, 3, page_size);
    sqlite3_bind_int64(st, 4, page * page_size);
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->items = xrealloc(out->items, cap * sizeof(*out->items));
        }
        store__row_read(st, &store__device_row, &out->items[out->n++]);
    }
    r = rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
    store__exec(c, "COMMIT");
out:
    store__conn_give(q, c); /* rolls back if still open */
    free(pattern);
    if (r != 0)
        store_device_page_fini(out);
    return r;
}
