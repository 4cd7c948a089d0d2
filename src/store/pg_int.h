/* pg_int.h — private parts of the PostgreSQL backend, shared by the pg_*.c files only: its
 * context (the writer's connection, the read pool, the maintenance thread, the partitions it
 * knows), the db layer's calls (pg_db.c: connections and reconnecting, the per-connection
 * prepared-statement cache, parameters, columns, error mapping) and the ops of backend.h.
 *
 * Invariant: a connection (pg_conn_t) is used by one thread at a time — the writer owns its
 * own, the maintenance thread its own, every other caller borrows one from the pool with
 * pg__conn_take() and gives it back with pg__conn_give(). A connection that lost its server is
 * reset on its next use (at most once a second); until then its calls fail with
 * ERR_UNAVAILABLE, which the device API answers with 5.03 and REST with 503.
 *
 * Parameters and results travel in libpq's text format: integers are printed and parsed
 * exactly, doubles with 17 significant digits out and PostgreSQL's shortest exact form back,
 * so a value round-trips bit for bit as it does through SQLite.
 *
 * Only the backend's files (pg.c, pg_*.c) include this file: no other file of the store sees
 * <libpq-fe.h>.
 */
#ifndef COAPHUB_STORE_PG_INT_H
#define COAPHUB_STORE_PG_INT_H

#ifdef COAPHUB_STORE_JOBS
#error "pg_int.h is the PostgreSQL backend's: a job of the store goes through backend.h"
#endif

#include "store/store_int.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

#define PG_STMT_CACHE 256 /* distinct SQL texts per connection */

typedef struct pg_stmt_slot {
    const char *sql; /* the caller's static text (compared by address, then content) */
    char name[12];   /* "s<N>": the prepared statement's name on this connection */
} pg_stmt_slot_t;

typedef struct pg_conn {
    PGconn *conn;
    pg_stmt_slot_t slots[PG_STMT_CACHE];
    size_t n_slots;
    int64_t next_reset_ms; /* a lost connection is not reset again before this (monotonic) */
    int pipe_pending;      /* statements sent in pipeline mode, results not read yet */
    struct pg_conn *next_free;
} pg_conn_t;

/* One partition of ts_kv: rows with from <= ts < to (INT64_MIN / INT64_MAX: unbounded). */
typedef struct pg_part {
    int64_t from, to;
    char name[48];
} pg_part_t;

/* The backend's context: what store_t's opaque db points to. */
typedef struct store_pg {
    store_t *s;             /* the store served (its cfg, latest values, log counters) */
    const store_cfg_t *cfg; /* s->cfg, read-only once open */

    /* libpq's connection parameters (keywords/values, NULL-terminated): the URL expanded as
     * dbname, then the user and password overrides. */
    const char *kw[12];
    const char *val[12];
    char *url; /* the URL as libpq takes it ("jdbc:" removed) */

    /* read/admin pool */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    pg_conn_t *pool; /* array of cfg->read_pool */
    int n_pool;
    pg_conn_t *pool_free;

    pg_conn_t wconn;   /* the writer thread's */
    pg_conn_t mgconn;  /* the merge thread's (merge_db.c; pg_points.c log_merge) */
    bool in_savepoint; /* a batch's savepoint is open: its statements wait for their answers,
                        * so its failure is its own (pg_write.c) */
    /* The telemetry log's seqs: the writer takes them from a block it reserved from the log's
     * sequence (which counts in blocks, pg_migrate.c), so appends need no RETURNING and can
     * be pipelined (pg_points.c). [seq_next, seq_end) is left; writer thread only. */
    int64_t seq_next, seq_end;

    /* ts_kv partitions (pg_partition.c): their length, and those known to exist (sorted by
     * range), guarded by part_mu (the merge creates them on demand, the maintenance thread
     * ahead of time, retention drops expired ones). The merge's new ones wait in pending
     * until its transaction commits (merge thread only). */
    enum { PG_PART_DAYS, PG_PART_MONTHS, PG_PART_YEARS, PG_PART_INDEFINITE } part_kind;
    pthread_mutex_t part_mu;
    pg_part_t *parts;
    size_t n_parts, cap_parts;
    pg_part_t *pending;
    size_t n_pending, cap_pending;
    bool parts_stale; /* a creation failed: read what exists after the rollback */

    /* maintenance thread (pg_partition.c): partitions ahead of time */
    pg_conn_t mconn;
    pthread_t m_thread;
    pthread_mutex_t m_mu;
    pthread_cond_t m_cv;
    bool m_stop, m_started;

    /* store_ready: the last answer and when it was asked (monotonic ms) */
    pthread_mutex_t ping_mu;
    int64_t ping_at_ms;
    int ping_result;
} store_pg_t;

static inline store_pg_t *store__pg(store_db_t *db)
{
    return (store_pg_t *)db;
}

/* ---- parameters ---- */

/* Text parameters of one statement: values point either into buf (numbers printed here) or at
 * the caller's strings, which must live until the statement has run. NULL = SQL NULL. */
enum { PG_MAX_PARAMS = 320, PG_NUM_LEN = 26 };
typedef struct pg_params {
    int n;
    const char *v[PG_MAX_PARAMS];
    char buf[PG_MAX_PARAMS][PG_NUM_LEN];
} pg_params_t;

static inline void pg__p_text(pg_params_t *p, const char *s)
{
    p->v[p->n++] = s;
}

static inline void pg__p_i64(pg_params_t *p, int64_t x)
{
    snprintf(p->buf[p->n], PG_NUM_LEN, "%lld", (long long)x);
    p->v[p->n] = p->buf[p->n];
    p->n++;
}

static inline void pg__p_bool(pg_params_t *p, bool b)
{
    p->v[p->n++] = b ? "t" : "f";
}

/* A double as PostgreSQL's float8 input reads it back exactly (17 digits; NaN and infinities
 * by name). */
void pg__p_f64(pg_params_t *p, double d);

/* kv's five typed columns (bool_v, long_v, dbl_v, str_v, json_v): exactly one not NULL.
 * -EINVAL (and nothing added) for a value SQLite refuses too: NaN, a string without text. */
int pg__p_value(pg_params_t *p, const store_kv_t *kv);
/* device_id, key_id, ts, then the five value columns; -EINVAL as pg__p_value. */
int pg__p_point(pg_params_t *p, int64_t device_id, int64_t key_id, const store_kv_t *kv);

/* ---- connections ---- */

/* Opens one connection with the project's session settings (synchronous_commit=on, UTC, ...);
 * 0, or ERR_UNAVAILABLE / ERR_STORE with err filled. */
int pg__conn_open(store_pg_t *q, pg_conn_t *c, char err[static ERR_LEN]);
void pg__conn_close(pg_conn_t *c);
/* A lost connection is reset here (at most once a second): 0 when c is usable, else
 * ERR_UNAVAILABLE. The calls below run it themselves. */
int pg__conn_ready(store_pg_t *q, pg_conn_t *c);
/* Opens the cfg->read_pool connections; 0 or an error with err filled. */
int pg__pool_open(store_pg_t *q, char err[static ERR_LEN]);
void pg__pool_close(store_pg_t *q);
/* Borrows a pool connection (waits for one), gives it back (rolling back what its borrower
 * left open). Any thread. */
pg_conn_t *pg__conn_take(store_pg_t *q);
void pg__conn_give(store_pg_t *q, pg_conn_t *c);

/* ---- statements ---- */

/* Runs sql (a string literal with $1..$n, prepared once per connection) with p's parameters
 * (p may be NULL). Returns the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK; PQclear it) or
 * NULL with *err set from pg__err. */
PGresult *pg__query(pg_conn_t *c, store_pg_t *q, const char *sql, const pg_params_t *p, int *err);
/* The same for a statement whose result is not read: 0 or an error; *affected (may be NULL)
 * gets the rows it changed. */
int pg__exec(pg_conn_t *c, store_pg_t *q, const char *sql, const pg_params_t *p, int64_t *affected);
/* Runs SQL text that is not prepared (transaction control, DDL, several statements): 0 or an
 * error. */
int pg__exec_simple(pg_conn_t *c, store_pg_t *q, const char *sql);

/* Pipeline mode (the writer's group commit, pg_points.c): statements whose result is only
 * success or failure are sent without waiting for it; their results are read, and the first
 * failure returned, when the pipeline ends — which pg__query, pg__exec and pg__exec_simple do
 * by themselves before a statement that waits for its answer (COMMIT among them). A failed
 * statement aborts the transaction, so that COMMIT fails: nothing is acknowledged that a
 * pipelined statement did not write. Why: a group commit at 1000 devices is ~30 statements,
 * and a round trip each cost the server more CPU than the rows (bench/pg_append.c, issue 13
 * in docs/BENCHMARKS.md). */
int pg__pipe_send(pg_conn_t *c, store_pg_t *q, const char *sql, const pg_params_t *p);
/* Reads every pipelined result and leaves pipeline mode: 0 or the first failure. */
int pg__pipe_end(pg_conn_t *c);
/* A writer's statement without result (pg_write.c): pipelined, or run at once inside a batch's
 * savepoint. */
int pg__write_stmt(store_pg_t *q, const char *sql, const pg_params_t *p);

/* Maps a failed result (or a lost connection when res is NULL) to our errors: unique
 * violation -> ERR_CONFLICT, foreign key -> -ENOENT, disk full -> -ENOSPC, connection lost,
 * server shutting down or starting -> ERR_UNAVAILABLE, others ERR_STORE (logged). */
int pg__err(PGconn *conn, const PGresult *res);
/* The SQLSTATE part of pg__err: 53100 (disk full) -> -ENOSPC, 58xxx -> -EIO, 25006 -> -EROFS,
 * XX001/XX002 -> ERR_CORRUPT, ...; ERR_STORE for a state it does not know (pg__err logs it). */
int pg__err_state(const char *state);

/* ---- columns ---- */

static inline bool pg__null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}
int64_t pg__i64(const PGresult *r, int row, int col); /* 0 for NULL */
double pg__f64(const PGresult *r, int row, int col);
bool pg__bool(const PGresult *r, int row, int col); /* "t" */
char *pg__str(const PGresult *r, int row, int col); /* xstrdup, NULL for NULL */
/* Reads the five typed columns starting at col into kv (type, b/l/d/s). -EINVAL if none set. */
int pg__value(const PGresult *r, int row, int col, store_kv_t *kv);
/* Reads row `row` of r into out (a struct laid out as m says). */
void pg__row_read(const PGresult *r, int row, const store_row_map_t *m, void *out);
/* Runs sql (one row expected) on a pool connection with $1 bound to text, or to id when text
 * is NULL, and reads the row into out: 0, -ENOENT when there is none, or an error. */
int pg__row_get(store_pg_t *q, const char *sql, int64_t id, const char *text,
                const store_row_map_t *m, void *out);

/* A new row's identity: a random UUID (written to uuid) and the wall clock (ms, returned). */
int64_t pg__new_row(char uuid[static STORE_UUID_LEN + 1]);

/* The advisory lock whose shared side every writer and merge transaction holds ("writer" in
 * ASCII); see pg__lock_out_writer. */
#define PG_WRITER_LOCK_KEY "x'777269746572'::bigint"

/* COMMIT on c, checked: 0 only if the transaction had no failed statement and PostgreSQL
 * says COMMIT (it answers a COMMIT of an aborted transaction with ROLLBACK and no error). */
int pg__commit(pg_conn_t *c, store_pg_t *q);
/* ROLLBACK of c's open transaction, if any; never fails. */
void pg__rollback(pg_conn_t *c);

/* Deletes that must not interleave with the writer's transactions (a device's, points'):
 * takes the exclusive side of the lock every writer transaction holds shared (pg_write.c), so
 * the delete waits for the writer's open transaction and the writer's next one waits for the
 * delete — as SQLite's single write lock orders them. Inside c's open transaction. */
int pg__lock_out_writer(pg_conn_t *c, store_pg_t *q);

/* ---- the ops of backend.h ---- */

/* pg_write.c */
const char *store__pg_errmsg(store_db_t *db);
int store__pg_transact(store_db_t *db, store_tx_t what);
bool store__pg_tx_open(store_db_t *db);
int store__pg_key_id(store_db_t *db, const char *key, bool create, int64_t *out);
int store__pg_device_exists(store_db_t *db, int64_t device_id);
int store__pg_attr_set(store_db_t *db, int64_t device_id, store_scope_t scope, int64_t key_id,
                       const store_kv_t *kv);
int store__pg_attr_remove(store_db_t *db, int64_t device_id, store_scope_t scope, int64_t key_id);
int store__pg_tidy(store_db_t *db);
void store__pg_release(store_db_t *db);
int store__pg_ping(store_db_t *db);
/* pg_points.c */
int store__pg_log_append(store_db_t *db, store_points_t *pp);
int store__pg_log_count(store_db_t *db, int64_t *out);
int store__pg_log_bounds(store_db_t *db, int64_t *first, int64_t *last);
int store__pg_log_load(store_db_t *db, int64_t from, int64_t to, store_log_rows_t *out);
int store__pg_log_remove(store_db_t *db, int64_t from, int64_t to);
int store__pg_log_merge(store_db_t *db, int64_t max_rows, int64_t *through, int64_t *moved);
/* pg_copy.c */
int store__pg_copy_read(store_db_t *db, const store_table_t *tables, size_t n, store_copy_row_fn fn,
                        void *arg);
int store__pg_copy_write(store_db_t *db, const store_table_t *t, const store_cell_t *cells,
                         size_t n_rows);
int store__pg_copy_finish(store_db_t *db, const store_table_t *tables, size_t n);
int store__pg_count_rows(store_db_t *db, const char *table, int64_t *out);
/* pg_partition.c */
int store__pg_ts_expire(store_db_t *db, int64_t cutoff_ms, int64_t *removed, bool *more);
/* pg_devices.c */
int store__pg_device_create(store_db_t *db, store_device_t *d, store_cred_t *cred);
int store__pg_device_update(store_db_t *db, store_device_t *d);
int store__pg_device_get(store_db_t *db, int64_t id, store_device_t *out);
int store__pg_device_get_by_uuid(store_db_t *db, const char *uuid, store_device_t *out);
int store__pg_device_get_by_name(store_db_t *db, const char *name, store_device_t *out);
int store__pg_device_delete(store_db_t *db, int64_t id);
int store__pg_device_list(store_db_t *db, const char *text_search, const char *type,
                          const char *sort_property, bool ascending, int64_t page,
                          int64_t page_size, store_device_page_t *out);
/* pg_creds.c; _set_on: on c, inside the caller's transaction if one is open */
int pg__cred_set_on(pg_conn_t *c, store_pg_t *q, store_cred_t *cr);
int store__pg_cred_set(store_db_t *db, store_cred_t *cr);
int store__pg_cred_get_by_device(store_db_t *db, int64_t device_id, store_cred_t *out);
int store__pg_cred_get_by_id(store_db_t *db, const char *cred_id, store_cred_t *out);
int store__pg_cred_foreach(store_db_t *db, void (*fn)(void *arg, const store_cred_t *c), void *arg);
/* pg_kv.c */
int store__pg_attr_get(store_db_t *db, int64_t device_id, store_scope_t scope,
                       const char *const *keys, size_t n_keys, store_kv_list_t *out);
int store__pg_attr_keys(store_db_t *db, int64_t device_id, store_scope_t scope,
                        store_kv_list_t *out);
int store__pg_attr_delete(store_db_t *db, int64_t device_id, store_scope_t scope,
                          const char *const *keys, size_t n_keys, size_t *n_deleted);
int store__pg_ts_keys(store_db_t *db, int64_t device_id, store_kv_list_t *out);
int store__pg_ts_latest(store_db_t *db, int64_t device_id, const char *const *keys, size_t n_keys,
                        store_kv_list_t *out);
int store__pg_ts_delete(store_db_t *db, int64_t device_id, const char *const *keys, size_t n_keys,
                        int64_t start_ms, int64_t end_ms, bool delete_latest);
/* pg_history.c */
int store__pg_ts_history(store_db_t *db, int64_t device_id, const char *key, int64_t start_ms,
                         int64_t end_ms, int64_t interval_ms, store_agg_t agg, int64_t limit,
                         bool ascending, store_kv_list_t *out);
/* pg_admin.c */
int store__pg_rpc_create(store_db_t *db, store_rpc_t *r);
int store__pg_rpc_set_status(store_db_t *db, const char *uuid, const char *status,
                             const char *response);
int store__pg_rpc_get(store_db_t *db, const char *uuid, store_rpc_t *out);
int store__pg_rpc_max_request_id(store_db_t *db, int64_t device_id, int64_t *out);
int store__pg_user_create(store_db_t *db, store_user_t *u);
int store__pg_user_get_by_email(store_db_t *db, const char *email, store_user_t *out);
int store__pg_user_get_by_uuid(store_db_t *db, const char *uuid, store_user_t *out);
int store__pg_user_set_password(store_db_t *db, int64_t id, const char *password_hash);
int store__pg_user_count(store_db_t *db, int64_t *out);
int store__pg_setting_get(store_db_t *db, const char *key, char **out);
int store__pg_setting_set(store_db_t *db, const char *key, const char *value);
int store__pg_probe_write(store_db_t *db, const char *value);

/* The latest-value upsert on any connection (pg_points.c): the merge's, and a delete's that
 * keeps a value whose point it removes (pg_kv.c). */
int pg__latest_upsert(pg_conn_t *c, store_pg_t *q, int64_t device_id, int64_t key_id,
                      const store_kv_t *kv);
/* Key dictionary (pg_write.c): id of key, inserting it when create is true. -ENOENT if
 * absent. Any connection. */
int pg__key_id(pg_conn_t *c, store_pg_t *q, const char *key, bool create, int64_t *out);
/* Applies every migration not yet applied (pg_migrate.c). */
int pg__migrate(pg_conn_t *c, store_pg_t *q, int *version, char err[static ERR_LEN]);
/* Partitions (pg_partition.c): the maintenance thread. */
int pg__maint_start(store_pg_t *q, char err[static ERR_LEN]);
void pg__maint_stop(store_pg_t *q);
/* The same for any connection's own transaction (a delete moving log points into ts_kv,
 * pg_kv.c): creates what ts (sorted) needs, without adding it to the known list (the next
 * merge or the maintenance thread learns it). */
int pg__parts_cover(store_pg_t *q, pg_conn_t *c, const int64_t *ts, size_t n);
/* The merge (its transaction on c): makes sure the partition of lo exists, then sets *next
 * to where the next partition to check begins, INT64_MAX when hi lies in lo's too. */
int pg__parts_step(store_pg_t *q, pg_conn_t *c, int64_t lo, int64_t hi, int64_t *next);
/* The merge's transaction on c ended: its new partitions exist now (committed) or not. */
void pg__parts_settle(store_pg_t *q, pg_conn_t *c, bool committed);
/* Reads the partitions that exist (at open, and after a creation failed). */
int pg__parts_load(store_pg_t *q, pg_conn_t *c);
/* "DAYS", ... -> part_kind; -EINVAL for another name. */
int pg__parts_kind(const char *name, int *out);

/* Administrative statements (sqlite_adm.c / pg_adm.c; backend.h store_adm_t). */
int store__pg_adm_begin(store_db_t *db, bool write, store_adm_t **out);
int store__pg_adm_sql(store_adm_t *a, const char *sql, const store_cell_t *args, size_t n_args,
                      const store_row_map_t *m, store_rows_t *rows, int64_t *changes);
int store__pg_adm_end(store_adm_t *a, bool commit);

#endif
