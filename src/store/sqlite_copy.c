/* sqlite_copy.c — the SQLite backend's side of moving an installation (copy.c): reading every
 * table in one read transaction, writing batches of rows, counting, and the online backup.
 *
 * The statements name tables and columns from copy.c's list, never from input, so they are
 * built as text here and prepared per call (a copy runs them a few times per table, not per
 * row). Reading holds one WAL read transaction for the whole copy: a server writing meanwhile
 * goes on, and the copy sees the database as it was when the copy began.
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SQL_LEN = 512, MAX_COLS = 16 };

static int read_table(store_conn_t *c, const store_table_t *t, size_t ti, store_copy_row_fn fn,
                      void *arg)
{
    char sql[SQL_LEN];
    /* sql-gate: table and column names from copy.c's fixed tables[]. */
    snprintf(sql, sizeof sql, "SELECT %s FROM %s ORDER BY %s", t->cols, t->name, t->order);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store__err(c->db, sqlite3_errcode(c->db));
    size_t n = strlen(t->kinds);
    store_cell_t cells[MAX_COLS];
    int rc, r = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (size_t i = 0; i < n; i++) {
            store_cell_t *cl = &cells[i];
            memset(cl, 0, sizeof(*cl));
            if (sqlite3_column_type(st, (int)i) == SQLITE_NULL)
                cl->kind = STORE_CELL_NULL;
            else if (t->kinds[i] == 'R')
                cl->kind = STORE_CELL_REAL, cl->d = sqlite3_column_double(st, (int)i);
            else if (t->kinds[i] == 'T')
                cl->kind = STORE_CELL_TEXT, cl->s = (const char *)sqlite3_column_text(st, (int)i);
            else
                cl->kind = STORE_CELL_INT, cl->i = sqlite3_column_int64(st, (int)i);
        }
        r = fn(arg, ti, cells);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = store__err(c->db, rc);
    sqlite3_finalize(st);
    return r;
}

int store__sqlite_copy_read(store_db_t *db, const store_table_t *tables, size_t n,
                            store_copy_row_fn fn, void *arg)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    /* One read transaction: every table from the same snapshot. */
    int r = store__exec(c, "BEGIN");
    for (size_t i = 0; r == 0 && i < n; i++)
        r = read_table(c, &tables[i], i, fn, arg);
    store__conn_give(q, c); /* ends the read transaction */
    return r;
}

int store__sqlite_copy_write(store_db_t *db, const store_table_t *t, const store_cell_t *cells,
                             size_t n_rows)
{
    store_sqlite_t *q = store__sq(db);
    size_t n = strlen(t->kinds);
    char sql[SQL_LEN];
    /* sql-gate: table and column names from copy.c's fixed tables[]; values are bound. */
    size_t len = (size_t)snprintf(sql, sizeof sql, "INSERT INTO %s(%s) VALUES (", t->name, t->cols);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len, i ? ", ?" : "?");
    snprintf(sql + len, sizeof sql - len, ")");
    store_conn_t *c = store__conn_take(q);
    sqlite3_stmt *st = NULL;
    int r = store__exec(c, "BEGIN IMMEDIATE");
    if (r == 0 && sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        r = store__err(c->db, sqlite3_errcode(c->db));
    for (size_t row = 0; r == 0 && row < n_rows; row++) {
        const store_cell_t *cl = &cells[row * n];
        for (size_t i = 0; i < n; i++) {
            int k = (int)i + 1;
            switch (cl[i].kind) {
            case STORE_CELL_NULL:
                sqlite3_bind_null(st, k);
                break;
            case STORE_CELL_INT:
                sqlite3_bind_int64(st, k, cl[i].i);
                break;
            case STORE_CELL_REAL:
                sqlite3_bind_double(st, k, cl[i].d);
                break;
            case STORE_CELL_TEXT:
                sqlite3_bind_text(st, k, cl[i].s, -1, SQLITE_STATIC);
                break;
            }
        }
        r = store__step_done(c, st);
    }
    sqlite3_finalize(st);
    if (r == 0)
        r = store__exec(c, "COMMIT");
    store__conn_give(q, c); /* rolls back what failed */
    return r;
}

/* Ids are the rows' own (INTEGER PRIMARY KEY): nothing kept beside them. */
int store__sqlite_copy_finish(store_db_t *db, const store_table_t *tables, size_t n)
{
    (void)db;
    (void)tables;
    (void)n;
    return 0;
}

int store__sqlite_count_rows(store_db_t *db, const char *table, int64_t *out)
{
    store_sqlite_t *q = store__sq(db);
    char sql[128];
    /* sql-gate: table names from copy.c's fixed tables[]. */
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    store_conn_t *c = store__conn_take(q);
    sqlite3_stmt *st = NULL;
    int r = 0;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        r = store__err(c->db, sqlite3_errcode(c->db));
    else if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        r = store__err(c->db, sqlite3_errcode(c->db));
    sqlite3_finalize(st);
    store__conn_give(q, c);
    return r;
}

/* One step copies every page while holding one read transaction on the source, so the copy
 * is the database at one moment; a WAL reader does not stop the server's writer. */
int store__sqlite_backup(const store_cfg_t *cfg, const char *dest, char err[static ERR_LEN])
{
    struct stat sb;
    if (stat(dest, &sb) == 0) {
        snprintf(err, ERR_LEN, "backup: %s exists; give a new file", dest);
        return -EEXIST;
    }
    sqlite3 *src = NULL, *dst = NULL;
    int r = 0;
    if (sqlite3_open_v2(cfg->path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, ERR_LEN, "backup: cannot open %s: %s", cfg->path, sqlite3_errmsg(src));
        r = ERR_STORE;
        goto out;
    }
    sqlite3_busy_timeout(src, 5000);
    if (sqlite3_open_v2(dest, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, ERR_LEN, "backup: cannot create %s: %s", dest, sqlite3_errmsg(dst));
        r = ERR_STORE;
        goto out;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        snprintf(err, ERR_LEN, "backup: %s", sqlite3_errmsg(dst));
        r = ERR_STORE;
        goto out;
    }
    int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        snprintf(err, ERR_LEN, "backup: %s", sqlite3_errstr(rc));
        r = store__err(NULL, rc);
        goto out;
    }
    /* The copy is a database file of its own: rollback journal, ready to be opened (coaphub
     * turns WAL on again at its first start on it). */
    char *msg = NULL;
    if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, ERR_LEN, "backup: %s", msg ? msg : "journal mode");
        sqlite3_free(msg);
        r = ERR_STORE;
    }
out:
    sqlite3_close(dst);
    sqlite3_close(src);
    if (r != 0 && dst)
        unlink(dest);
    return r;
}
