/* sqlite_adm.c — the SQLite side of the administrative statements written once for every
 * backend (backend.h store_adm_t, admin_sql.c): a transaction on a pool connection, statements
 * from the connection's cache, parameters bound by their names $1..$n.
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct store_adm {
    store_sqlite_t *q;
    store_conn_t *c;
};

int store__sqlite_adm_begin(store_db_t *db, bool write, store_adm_t **out)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    /* A write takes the write lock at BEGIN, so its reads and writes see one state. */
    int r = store__exec(c, write ? "BEGIN IMMEDIATE" : "BEGIN");
    if (r != 0) {
        store__conn_give(q, c);
        return r;
    }
    store_adm_t *a = xmalloc(sizeof(*a));
    a->q = q;
    a->c = c;
    *out = a;
    return 0;
}

static void bind_args(sqlite3_stmt *st, const store_cell_t *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof name, "$%zu", i + 1);
        int at = sqlite3_bind_parameter_index(st, name);
        if (at == 0)
            continue; /* this statement does not use $i */
        switch (args[i].kind) {
        case STORE_CELL_NULL:
            sqlite3_bind_null(st, at);
            break;
        case STORE_CELL_INT:
            sqlite3_bind_int64(st, at, args[i].i);
            break;
        case STORE_CELL_REAL:
            sqlite3_bind_double(st, at, args[i].d);
            break;
        case STORE_CELL_TEXT:
            store__bind_text(st, at, args[i].s);
            break;
        }
    }
}

int store__sqlite_adm_sql(store_adm_t *a, const char *sql, const store_cell_t *args, size_t n_args,
                          const store_row_map_t *m, store_rows_t *rows, int64_t *changes)
{
    sqlite3_stmt *st = store__stmt(a->c, sql);
    if (!st)
        return ERR_STORE;
    bind_args(st, args, n_args);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (m)
            store__row_read(st, m, store__rows_push(rows, m->size));
    }
    int r = rc == SQLITE_DONE ? 0 : store__err(a->c->db, rc);
    if (r == 0 && changes)
        *changes = sqlite3_changes(a->c->db);
    sqlite3_reset(st);
    return r;
}

int store__sqlite_adm_end(store_adm_t *a, bool commit)
{
    int r = commit ? store__exec(a->c, "COMMIT") : 0;
    store__conn_give(a->q, a->c); /* rolls back what is still open */
    free(a);
    return r;
}
