/* pg_copy.c — the PostgreSQL backend's side of moving an installation (copy.c): reading every
 * table in one snapshot through cursors, writing batches with COPY, moving the sequences past
 * the copied ids, counting.
 *
 * Why COPY: one COPY of a batch is one statement whatever its rows, and the server parses its
 * rows far faster than as many INSERTs. Why cursors: a table (ts_kv) may hold more rows than
 * fit in memory; FETCH brings FETCH_ROWS at a time. The statements name tables and columns
 * from copy.c's list, never from input.
 *
 * Invariant: the read runs in one REPEATABLE READ READ ONLY transaction, so every table comes
 * from the same snapshot while a server may be writing.
 */
#include "store/pg_int.h"

#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { SQL_LEN = 512, MAX_COLS = 16, FETCH_ROWS = 5000 };

static int exec_text(pg_conn_t *c, store_pg_t *q, const char *sql)
{
    return pg__exec_simple(c, q, sql);
}

static int read_table(pg_conn_t *c, store_pg_t *q, const store_table_t *t, size_t ti,
                      store_copy_row_fn fn, void *arg)
{
    char sql[SQL_LEN];
    /* sql-gate: table and column names from copy.c's fixed tables[]. */
    snprintf(sql, sizeof sql, "DECLARE copy_cur NO SCROLL CURSOR FOR SELECT %s FROM %s ORDER BY %s",
             t->cols, t->name, t->order);
    int r = exec_text(c, q, sql);
    size_t n = strlen(t->kinds);
    store_cell_t cells[MAX_COLS];
    while (r == 0) {
        PGresult *res = PQexec(c->conn, "FETCH 5000 FROM copy_cur") /* FETCH_ROWS */;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            r = pg__err(c->conn, res);
            PQclear(res);
            break;
        }
        int rows = PQntuples(res);
        for (int row = 0; r == 0 && row < rows; row++) {
            for (size_t i = 0; i < n; i++) {
                store_cell_t *cl = &cells[i];
                memset(cl, 0, sizeof(*cl));
                int col = (int)i;
                if (pg__null(res, row, col))
                    cl->kind = STORE_CELL_NULL;
                else if (t->kinds[i] == 'R')
                    cl->kind = STORE_CELL_REAL, cl->d = pg__f64(res, row, col);
                else if (t->kinds[i] == 'T')
                    cl->kind = STORE_CELL_TEXT, cl->s = PQgetvalue(res, row, col);
                else if (t->kinds[i] == 'B')
                    cl->kind = STORE_CELL_INT, cl->i = pg__bool(res, row, col);
                else
                    cl->kind = STORE_CELL_INT, cl->i = pg__i64(res, row, col);
            }
            r = fn(arg, ti, cells);
        }
        PQclear(res);
        if (rows < FETCH_ROWS)
            break;
    }
    if (r == 0)
        r = exec_text(c, q, "CLOSE copy_cur");
    return r;
}

int store__pg_copy_read(store_db_t *db, const store_table_t *tables, size_t n, store_copy_row_fn fn,
                        void *arg)
{
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = pg__conn_take(q);
    int r = exec_text(c, q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    for (size_t i = 0; r == 0 && i < n; i++)
        r = read_table(c, q, &tables[i], i, fn, arg);
    if (r == 0)
        r = exec_text(c, q, "COMMIT");
    pg__conn_give(q, c); /* rolls back what failed */
    return r;
}

/* A COPY line being built (text format). */
typedef struct line {
    char *buf;
    size_t len, cap;
} line_t;

static void reserve(line_t *l, size_t more)
{
    if (l->len + more > l->cap) {
        l->cap = (l->len + more) * 2;
        l->buf = xrealloc(l->buf, l->cap);
    }
}

static void put_raw(line_t *l, const char *s, size_t n)
{
    reserve(l, n);
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Appends s escaped for COPY's text format. */
static void put_text(line_t *l, const char *s)
{
    reserve(l, 2 * strlen(s));
    char *o = l->buf + l->len;
    for (; *s; s++) {
        switch (*s) {
        case '\\':
            *o++ = '\\', *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\', *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\', *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\', *o++ = 't';
            break;
        default:
            *o++ = *s;
            break;
        }
    }
    l->len = (size_t)(o - l->buf);
}

static void put_cell(line_t *l, const store_cell_t *cl, char kind)
{
    char num[32];
    pg_params_t p; /* the one formatter of doubles for PostgreSQL (pg_db.c) */
    switch (cl->kind) {
    case STORE_CELL_NULL:
        put_raw(l, "\\N", 2);
        return;
    case STORE_CELL_INT:
        if (kind == 'B')
            put_raw(l, cl->i ? "t" : "f", 1);
        else
            put_raw(l, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)cl->i));
        return;
    case STORE_CELL_REAL:
        p.n = 0;
        pg__p_f64(&p, cl->d);
        put_raw(l, p.v[0], strlen(p.v[0]));
        return;
    case STORE_CELL_TEXT:
        put_text(l, cl->s);
        return;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ts_kv is partitioned by ts and has no default partition: the partitions of a batch's points
 * must exist before its COPY. A copied installation holds points of any time, and only those
 * near now are made ahead (pg_partition.c). ts is ts_kv's third column in copy.c's list. */
static int cover_ts_kv(store_pg_t *q, pg_conn_t *c, const store_table_t *t,
                       const store_cell_t *cells, size_t n_rows)
{
    if (strcmp(t->name, "ts_kv") != 0 || n_rows == 0)
        return 0;
    ASSERT(strncmp(t->cols, "device_id, key_id, ts,", 22) == 0);
    size_t n = strlen(t->kinds);
    int64_t *ts = xmalloc(n_rows * sizeof(*ts));
    for (size_t row = 0; row < n_rows; row++)
        ts[row] = cells[row * n + 2].i;
    qsort(ts, n_rows, sizeof(*ts), cmp_i64); /* pg__parts_cover wants them sorted */
    int r = pg__parts_cover(q, c, ts, n_rows);
    free(ts);
    return r;
}

int store__pg_copy_write(store_db_t *db, const store_table_t *t, const store_cell_t *cells,
                         size_t n_rows)
{
    store_pg_t *q = store__pg(db);
    size_t n = strlen(t->kinds);
    char sql[SQL_LEN];
    /* sql-gate: table and column names from copy.c's fixed tables[]. */
    snprintf(sql, sizeof sql, "COPY %s(%s) FROM STDIN", t->name, t->cols);
    pg_conn_t *c = pg__conn_take(q);
    int r = pg__conn_ready(q, c);
    if (r == 0)
        r = cover_ts_kv(q, c, t, cells, n_rows);
    if (r != 0) {
        pg__conn_give(q, c);
        return r;
    }
    PGresult *res = PQexec(c->conn, sql);
    bool copying = PQresultStatus(res) == PGRES_COPY_IN;
    if (!copying)
        r = pg__err(c->conn, res);
    PQclear(res);
    line_t l = {0};
    for (size_t row = 0; copying && r == 0 && row < n_rows; row++) {
        l.len = 0;
        for (size_t i = 0; i < n; i++) {
            if (i)
                put_raw(&l, "\t", 1);
            put_cell(&l, &cells[row * n + i], t->kinds[i]);
        }
        put_raw(&l, "\n", 1);
        if (PQputCopyData(c->conn, l.buf, (int)l.len) != 1)
            r = ERR_UNAVAILABLE;
    }
    free(l.buf);
    if (copying) {
        /* Ended either way: with an error message the server throws the whole batch away. */
        PQputCopyEnd(c->conn, r == 0 ? NULL : "coaphub: copy failed");
        while ((res = PQgetResult(c->conn)) != NULL) {
            if (r == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
                r = pg__err(c->conn, res);
            PQclear(res);
        }
    }
    pg__conn_give(q, c);
    return r;
}

int store__pg_copy_finish(store_db_t *db, const store_table_t *tables, size_t n)
{
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = pg__conn_take(q);
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (!tables[i].serial)
            continue;
        char sql[SQL_LEN];
        /* The next id is past every copied one (setval's false: that value is not used). */
        /* sql-gate: table and column names from copy.c's fixed tables[]. */
        snprintf(sql, sizeof sql,
                 "SELECT setval(pg_get_serial_sequence('%s', '%s'),"
                 " COALESCE(MAX(%s), 0) + 1, false) FROM %s",
                 tables[i].name, tables[i].serial, tables[i].serial, tables[i].name);
        r = exec_text(c, q, sql);
    }
    pg__conn_give(q, c);
    return r;
}

int store__pg_count_rows(store_db_t *db, const char *table, int64_t *out)
{
    store_pg_t *q = store__pg(db);
    char sql[128];
    /* sql-gate: table names from copy.c's fixed tables[]. */
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    pg_conn_t *c = pg__conn_take(q);
    int r = pg__conn_ready(q, c);
    if (r == 0) {
        PGresult *res = PQexec(c->conn, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            *out = pg__i64(res, 0, 0);
        else
            r = pg__err(c->conn, res);
        PQclear(res);
    }
    pg__conn_give(q, c);
    return r;
}
