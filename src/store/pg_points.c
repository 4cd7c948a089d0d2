/* pg_points.c — the PostgreSQL backend's telemetry statements: the log's append (the
 * writer's group commit), count, bounds, load and delete (ts_kv_log), and the merge of the log
 * into ts_kv and ts_kv_latest, which the database does by itself (log_merge, on the merge
 * thread's connection, merge_db.c).
 *
 * Why this shape: each statement is a round trip, and on this machine a round trip cost the
 * server more CPU than writing a few dozen rows. So a group's points go STORE_MULTI to a
 * statement (backend.h), one prepared text per row count, numbered by the writer from a block
 * of seqs (no RETURNING) and pipelined with the group's attribute writes (pg_db.c); and a
 * merge step is three statements inside the database however many rows it moves, where the
 * load-sort-apply path of merge.c moved every row to coaphub and back (docs/BENCHMARKS.md,
 * issue 13: 27k -> 52k durable points/s at 1000 devices).
 *
 * Invariants: appends run on the writer's connection inside its transactions; the seqs of one
 * writer grow with each commit (blocks are taken in order), so every row not yet committed
 * has a larger seq than every committed one — what the merge's `through` relies on. An upsert
 * statement must not touch one (device, key, ts) twice (PostgreSQL refuses it), so of equal
 * rows the merge takes the last written (DISTINCT ON ... seq DESC).
 */
#include "store/pg_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define COLS "(device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v)"
#define LOG_COLS "(seq, device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v)"
#define SEQ_BLOCK 65536 /* the log sequence's increment (pg_migrate.c) */
#define KV_UPSERT                                                                                  \
    " ON CONFLICT (device_id, key_id, ts) DO UPDATE SET bool_v = excluded.bool_v,"                 \
    " long_v = excluded.long_v, dbl_v = excluded.dbl_v, str_v = excluded.str_v,"                   \
    " json_v = excluded.json_v"
#define ROW_MAX_LEN 64 /* "($249, $250, ..., $256)" */

/* The statements' text for 1..STORE_MULTI rows, built once: the statement cache keys on the
 * address. */
static char log_sql[STORE_MULTI + 1][128 + STORE_MULTI * (ROW_MAX_LEN + 8)];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

/* rows rows of cols parameters each: "($1, ..., $cols), ($cols+1, ...)". */
static void build(char *out, size_t cap, int rows, int cols, const char *head, const char *tail)
{
    size_t n = (size_t)snprintf(out, cap, "%s", head);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++)
            n += (size_t)snprintf(out + n, cap - n, "%s$%d",
                                  c   ? ", "
                                  : i ? ", ("
                                      : "(",
                                  i * cols + c + 1);
        n += (size_t)snprintf(out + n, cap - n, ")");
    }
    snprintf(out + n, cap - n, "%s", tail);
}

static void build_all(void)
{
    for (int rows = 1; rows <= STORE_MULTI; rows++) {
        build(log_sql[rows], sizeof log_sql[rows], rows, 9,
              "INSERT INTO ts_kv_log" LOG_COLS " VALUES ", "");
    }
}

/* The next seq, from the writer's block; a new block when it is used up. */
static int next_seq(store_pg_t *q, int64_t *out)
{
    if (q->seq_next >= q->seq_end) {
        int r;
        PGresult *res = pg__query(
            &q->wconn, q, "SELECT nextval(pg_get_serial_sequence('ts_kv_log', 'seq'))", NULL, &r);
        if (!res)
            return r;
        q->seq_next = pg__i64(res, 0, 0);
        q->seq_end = q->seq_next + SEQ_BLOCK;
        PQclear(res);
    }
    *out = q->seq_next++;
    return 0;
}

int store__pg_log_append(store_db_t *db, store_points_t *pp)
{
    store_pg_t *q = store__pg(db);
    if (pp->n == 0)
        return 0;
    pthread_once(&sql_once, build_all);
    pg_params_t p;
    p.n = 0;
    for (size_t i = 0; i < pp->n; i++) {
        int64_t seq = 0;
        int r = next_seq(q, &seq);
        if (r != 0)
            return r;
        pp->row[i].seq = seq;
        pg__p_i64(&p, seq);
        r = pg__p_point(&p, pp->row[i].device_id, pp->row[i].key_id, pp->row[i].kv);
        if (r != 0)
            return r;
    }
    return pg__write_stmt(q, log_sql[pp->n], &p);
}

int pg__latest_upsert(pg_conn_t *c, store_pg_t *q, int64_t device_id, int64_t key_id,
                      const store_kv_t *kv)
{
    pg_params_t p;
    p.n = 0;
    int r = pg__p_point(&p, device_id, key_id, kv);
    if (r != 0)
        return r;
    /* An older point (late or replayed) does not replace a newer latest; an equal ts
     * overwrites, as in ThingsBoard. */
    return pg__exec(c, q,
                    "INSERT INTO ts_kv_latest" COLS
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    " ON CONFLICT (device_id, key_id) DO UPDATE SET ts = excluded.ts,"
                    " bool_v = excluded.bool_v, long_v = excluded.long_v,"
                    " dbl_v = excluded.dbl_v, str_v = excluded.str_v, json_v = excluded.json_v,"
                    " version = ts_kv_latest.version + 1 WHERE excluded.ts >= ts_kv_latest.ts",
                    &p, NULL);
}

int store__pg_log_count(store_db_t *db, int64_t *out)
{
    store_pg_t *q = store__pg(db);
    int r;
    PGresult *res = pg__query(&q->wconn, q, "SELECT COUNT(*) FROM ts_kv_log", NULL, &r);
    if (!res)
        return r;
    *out = pg__i64(res, 0, 0);
    PQclear(res);
    return 0;
}

int store__pg_log_bounds(store_db_t *db, int64_t *first, int64_t *last)
{
    store_pg_t *q = store__pg(db);
    int r;
    PGresult *res = pg__query(&q->wconn, q, "SELECT MIN(seq), MAX(seq) FROM ts_kv_log", NULL, &r);
    if (!res)
        return r;
    r = pg__null(res, 0, 0) ? -ENOENT : 0;
    if (r == 0) {
        *first = pg__i64(res, 0, 0);
        *last = pg__i64(res, 0, 1);
    }
    PQclear(res);
    return r;
}

int store__pg_log_load(store_db_t *db, int64_t from, int64_t to, store_log_rows_t *out)
{
    store_pg_t *q = store__pg(db);
    pg_params_t p;
    p.n = 0;
    pg__p_i64(&p, from);
    pg__p_i64(&p, to);
    int r;
    PGresult *res = pg__query(&q->wconn, q,
                              "SELECT seq, device_id, key_id, ts, bool_v, long_v, dbl_v, str_v,"
                              " json_v FROM ts_kv_log WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
                              &p, &r);
    if (!res)
        return r;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        store_log_row_t *row = store__log_rows_push(out);
        row->seq = pg__i64(res, i, 0);
        row->device_id = pg__i64(res, i, 1);
        row->key_id = pg__i64(res, i, 2);
        row->kv.key = NULL;
        row->kv.ts = pg__i64(res, i, 3);
        if (pg__value(res, i, 4, &row->kv) != 0) {
            out->n--; /* a row without a value cannot be written; SQLite's loader skips it too */
            continue;
        }
    }
    PQclear(res);
    return 0;
}

int store__pg_log_remove(store_db_t *db, int64_t from, int64_t to)
{
    store_pg_t *q = store__pg(db);
    pg_params_t p;
    p.n = 0;
    pg__p_i64(&p, from);
    pg__p_i64(&p, to);
    return pg__exec(&q->wconn, q, "DELETE FROM ts_kv_log WHERE seq BETWEEN $1 AND $2", &p, NULL);
}

/* The partitions the log's rows in [from, to] need: usually all in one known partition (the
 * smallest and largest ts say so); otherwise each range from the smallest ts up. */
static int merge_parts(store_pg_t *q, pg_conn_t *c, int64_t from, int64_t to)
{
    pg_params_t p;
    int64_t cursor = INT64_MIN;
    for (int guard = 0; guard < 100000; guard++) {
        p.n = 0;
        pg__p_i64(&p, from);
        pg__p_i64(&p, to);
        pg__p_i64(&p, cursor);
        int r;
        PGresult *res = pg__query(c, q,
                                  "SELECT MIN(ts), MAX(ts) FROM ts_kv_log"
                                  " WHERE seq BETWEEN $1 AND $2 AND ts >= $3",
                                  &p, &r);
        if (!res)
            return r;
        bool none = pg__null(res, 0, 0);
        int64_t lo = pg__i64(res, 0, 0), hi = pg__i64(res, 0, 1);
        PQclear(res);
        if (none)
            return 0;
        if ((r = pg__parts_step(q, c, lo, hi, &cursor)) != 0 || cursor == INT64_MAX)
            return r;
    }
    return ERR_STORE; /* more partitions than a step has rows: cannot happen */
}

/* A step's rows for ts_kv: one per (device, key, ts), the last written. */
#define MERGE_ROWS                                                                                 \
    " SELECT DISTINCT ON (device_id, key_id, ts)"                                                  \
    " device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v FROM ts_kv_log"                  \
    " WHERE seq BETWEEN $1 AND $2 ORDER BY device_id, key_id, ts, seq DESC"

/* The statements of one step on [$1, $2]; the transaction is merge_step's. */
static int merge_rows(store_pg_t *q, pg_conn_t *c, int64_t from, int64_t to, int64_t *moved)
{
    int r = merge_parts(q, c, from, to);
    if (r != 0)
        return r;
    pg_params_t p;
    p.n = 0;
    pg__p_i64(&p, from);
    pg__p_i64(&p, to);
    /* Of equal (device, key, ts) the last written (largest seq) wins, as the log order says.
     * A plain INSERT first: an upsert checks the index for every row before inserting it
     * (ExecCheckIndexConstraints: ~10 % of PostgreSQL's CPU under load, perf over bench/store),
     * and a point already in ts_kv (a replay, a late duplicate) is rare; when there is one,
     * the step's rows go again as the upsert. */
    r = pg__exec_simple(c, q, "SAVEPOINT merge_insert");
    if (r == 0)
        r = pg__exec(c, q, "INSERT INTO ts_kv" COLS MERGE_ROWS, &p, NULL);
    if (r == ERR_CONFLICT) {
        r = pg__exec_simple(c, q, "ROLLBACK TO SAVEPOINT merge_insert");
        if (r == 0)
            r = pg__exec(c, q, "INSERT INTO ts_kv" COLS MERGE_ROWS KV_UPSERT, &p, NULL);
    }
    if (r == 0)
        r = pg__exec_simple(c, q, "RELEASE SAVEPOINT merge_insert");
    /* The newest point of each (device, key): an older one (late, replayed) does not replace
     * a newer latest; an equal ts overwrites, as in ThingsBoard. */
    if (r == 0)
        r = pg__exec(c, q,
                     "INSERT INTO ts_kv_latest" COLS
                     " SELECT DISTINCT ON (device_id, key_id)"
                     " device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v"
                     " FROM ts_kv_log WHERE seq BETWEEN $1 AND $2"
                     " ORDER BY device_id, key_id, ts DESC, seq DESC"
                     " ON CONFLICT (device_id, key_id) DO UPDATE SET ts = excluded.ts,"
                     " bool_v = excluded.bool_v, long_v = excluded.long_v,"
                     " dbl_v = excluded.dbl_v, str_v = excluded.str_v, json_v = excluded.json_v,"
                     " version = ts_kv_latest.version + 1 WHERE excluded.ts >= ts_kv_latest.ts",
                     &p, NULL);
    if (r == 0)
        r = pg__exec(c, q, "DELETE FROM ts_kv_log WHERE seq BETWEEN $1 AND $2", &p, moved);
    return r;
}

int store__pg_log_merge(store_db_t *db, int64_t max_rows, int64_t *through, int64_t *moved)
{
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = &q->mgconn;
    *through = *moved = 0;
    /* Unsynced: the points are durable in the log; a crash before a later synced commit
     * undoes this step whole and they are merged again. The writer lock's shared side orders
     * it against deletes (pg_write.c). */
    int r = pg__exec_simple(c, q,
                            "BEGIN; SET LOCAL synchronous_commit = off;"
                            " SET LOCAL work_mem = '64MB';"
                            " SELECT pg_advisory_xact_lock_shared(" PG_WRITER_LOCK_KEY ")");
    PGresult *res = NULL;
    if (r == 0)
        res = pg__query(c, q, "SELECT MIN(seq), MAX(seq) FROM ts_kv_log", NULL, &r);
    bool empty = res && pg__null(res, 0, 0);
    int64_t from = res ? pg__i64(res, 0, 0) : 0, last = res ? pg__i64(res, 0, 1) : 0;
    PQclear(res);
    int64_t to = last - from >= max_rows ? from + max_rows - 1 : last;
    if (r == 0 && !empty)
        r = merge_rows(q, c, from, to, moved);
    if (r == 0)
        r = pg__commit(c, q);
    if (r != 0) {
        pg__rollback(c);
        *moved = 0;
    } else if (!empty) {
        *through = to;
    }
    pg__parts_settle(q, c, r == 0);
    return r;
}
