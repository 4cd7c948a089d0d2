/* pg_adm.c — the PostgreSQL side of the administrative statements written once for every
 * backend (backend.h store_adm_t, admin_sql.c): a transaction on a pool connection whose
 * COMMIT is checked (pg__commit), statements prepared once per connection.
 */
#include "store/pg_int.h"

#include <errno.h>
#include <stdlib.h>

struct store_adm {
    store_pg_t *q;
    pg_conn_t *c;
};

int store__pg_adm_begin(store_db_t *db, bool write, store_adm_t **out)
{
    (void)write; /* row locks and unique indexes order PostgreSQL's writers */
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = pg__conn_take(q);
    int r = pg__exec_simple(c, q, "BEGIN");
    if (r != 0) {
        pg__conn_give(q, c);
        return r;
    }
    store_adm_t *a = xmalloc(sizeof(*a));
    a->q = q;
    a->c = c;
    *out = a;
    return 0;
}

int store__pg_adm_sql(store_adm_t *a, const char *sql, const store_cell_t *args, size_t n_args,
                      const store_row_map_t *m, store_rows_t *rows, int64_t *changes)
{
    if (n_args > PG_MAX_PARAMS)
        return -E2BIG;
    pg_params_t *p = xmalloc(sizeof(*p));
    p->n = 0;
    for (size_t i = 0; i < n_args; i++) {
        switch (args[i].kind) {
        case STORE_CELL_NULL:
            pg__p_text(p, NULL);
            break;
        case STORE_CELL_INT:
            pg__p_i64(p, args[i].i);
            break;
        case STORE_CELL_REAL:
            pg__p_f64(p, args[i].d);
            break;
        case STORE_CELL_TEXT:
            pg__p_text(p, args[i].s);
            break;
        }
    }
    int r = 0;
    PGresult *res = pg__query(a->c, a->q, sql, p, &r);
    free(p);
    if (!res)
        return r;
    if (m) {
        int n = PQntuples(res);
        for (int i = 0; i < n; i++)
            pg__row_read(res, i, m, store__rows_push(rows, m->size));
    }
    if (changes) {
        const char *t = PQcmdTuples(res);
        *changes = t && *t ? strtoll(t, NULL, 10) : 0;
    }
    PQclear(res);
    return 0;
}

int store__pg_adm_end(store_adm_t *a, bool commit)
{
    int r = commit ? pg__commit(a->c, a->q) : 0;
    pg__conn_give(a->q, a->c); /* rolls back what is still open */
    free(a);
    return r;
}
