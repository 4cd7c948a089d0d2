/* sqlite_int.h — private parts of the SQLite backend, shared by the sqlite_*.c files only:
 * its context (connections, the read pool, the checkpoint thread), the db layer's calls
 * (sqlite_db.c: connections, statement cache, binding, columns, error mapping) and the small
 * inline helpers around them.
 *
 * Invariant: a connection (store_conn_t) is used by one thread at a time — the writer owns
 * its own, the checkpoint thread its own, every other caller borrows one from the pool with
 * store__conn_take() and gives it back with store__conn_give(). Statements from the cache are
 * reset and unbound before they are returned.
 *
 * Only the backend's files (sqlite.c, sqlite_*.c) include this file, and one test that reaches
 * the writer's connection: no other file of the store sees <sqlite3.h>.
 */
#ifndef COAPHUB_STORE_SQLITE_INT_H
#define COAPHUB_STORE_SQLITE_INT_H

/* The store's jobs are compiled with COAPHUB_STORE_JOBS (CMakeLists.txt): they reach the
 * backend through backend.h only. */
#ifdef COAPHUB_STORE_JOBS
#error "sqlite_int.h is the SQLite backend's: a job of the store goes through backend.h"
#endif

#include "store/store_int.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>

#define STORE_STMT_CACHE 256       /* distinct SQL texts per connection (the backend has ~100) */
#define STORE_BUSY_TIMEOUT_MS 5000 /* every connection's busy timeout (sqlite_db.c) */

typedef struct store_stmt_slot {
    const char *sql; /* the caller's static text (compared by address, then content) */
    sqlite3_stmt *stmt;
} store_stmt_slot_t;

typedef struct store_conn {
    sqlite3 *db;
    store_stmt_slot_t slots[STORE_STMT_CACHE];
    size_t n_slots;
    struct store_conn *next_free;
} store_conn_t;

/* The backend's context: what store_t's opaque db points to. */
typedef struct store_sqlite {
    store_t *s;             /* the store served (its cfg, latest values, log counters) */
    const store_cfg_t *cfg; /* s->cfg, read-only once open */

    /* read/admin pool */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    store_conn_t *pool;      /* array of cfg->read_pool */
    int n_pool;              /* opened so far */
    store_conn_t *pool_free; /* free list */

    store_conn_t wconn; /* the writer thread's */
    bool lazy;          /* a STORE_TX_BEGIN_LAZY transaction is open (sqlite_write.c) */

    /* checkpoint thread (sqlite_checkpoint.c) */
    store_conn_t ckpt_conn;
    pthread_t ckpt_thread;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_stop, ckpt_started;
    /* Size of the WAL (frames) that the last checkpoint pass copied completely; the writer
     * takes it to restart the WAL cheaply (sqlite_write.c, store__sqlite_tidy). */
    _Atomic int64_t ckpt_backfilled;
    /* The error (store__err's) of the checkpoint's last pass when it could not write the
     * database file (full, read-only, immutable, I/O error), 0 after a pass that could: the
     * WAL would grow without end, so the writer takes it as a storage fault (tidy). */
    _Atomic int ckpt_fault;

    /* retention's walk over the series (sqlite_retention.c): the last one visited, and
     * whether it may hold more expired points; the retention thread's only */
    int64_t ttl_dev, ttl_key;
    bool ttl_in_series;
} store_sqlite_t;

static inline store_sqlite_t *store__sq(store_db_t *db)
{
    return (store_sqlite_t *)db;
}

/* ---- the db layer (sqlite_db.c) ---- */

/* Opens one connection with the project's pragmas; 0 or ERR_STORE with err filled. */
int store__conn_open(store_sqlite_t *q, store_conn_t *c, char err[static ERR_LEN]);
void store__conn_close(store_conn_t *c);
/* Opens the cfg->read_pool connections of the pool; 0 or ERR_STORE with err filled (those
 * opened stay for store__pool_close). */
int store__pool_open(store_sqlite_t *q, char err[static ERR_LEN]);
void store__pool_close(store_sqlite_t *q);
/* Borrows a pool connection (waits for one), gives it back (rolling back what its borrower
 * left open). Any thread. */
store_conn_t *store__conn_take(store_sqlite_t *q);
void store__conn_give(store_sqlite_t *q, store_conn_t *c);

/* Cached prepared statement for sql (a string literal), reset and unbound; NULL on error. */
sqlite3_stmt *store__stmt(store_conn_t *c, const char *sql);
/* Runs SQL without results (BEGIN, COMMIT, ...); returns 0 or an error from store__err. */
int store__exec(store_conn_t *c, const char *sql);
/* Steps a bound statement that returns no row and resets it; 0 or an error from store__err. */
int store__step_done(store_conn_t *c, sqlite3_stmt *st);

/* A new row's identity: binds a random UUID (written to uuid) at index uuid_i and the wall
 * clock (ms, returned) at time_i; uuid must live until the statement has run. */
int64_t store__bind_new_row(sqlite3_stmt *st, int uuid_i, int time_i,
                            char uuid[static STORE_UUID_LEN + 1]);

/* Maps a SQLite result code to our errors (constraint unique -> ERR_CONFLICT, ...). */
int store__err(sqlite3 *db, int rc);

/* kv <-> the five typed columns (bool_v, long_v, dbl_v, str_v, json_v) bound from index first. */
int store__bind_value(sqlite3_stmt *st, int first, const store_kv_t *kv);
/* device_id, key_id, ts, then the five value columns, bound from index first. */
int store__bind_point(sqlite3_stmt *st, int first, int64_t device_id, int64_t key_id,
                      const store_kv_t *kv);
/* Runs sql (a literal: one row whose ?1..?8 are laid out as store__bind_point's) for one
 * point; 0 or an error from store__err. */
int store__exec_point(store_conn_t *c, const char *sql, int64_t device_id, int64_t key_id,
                      const store_kv_t *kv);
/* Reads the five typed columns starting at col into kv (type, b/l/d/s). -EINVAL if none set. */
int store__column_value(sqlite3_stmt *st, int col, store_kv_t *kv);

/* Reads the current row of st into out (a struct laid out as m says). */
void store__row_read(sqlite3_stmt *st, const store_row_map_t *m, void *out);
/* Runs sql (one row expected) on a pool connection with ?1 bound to text, or to id when text
 * is NULL, and reads the row into out: 0, -ENOENT when there is none, or an error. */
int store__row_get(store_sqlite_t *q, const char *sql, int64_t id, const char *text,
                   const store_row_map_t *m, void *out);

static inline char *store__col_str(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t)
        return NULL;
    return xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st, col));
}

static inline void store__col_uuid(sqlite3_stmt *st, int col, char out[static STORE_UUID_LEN + 1])
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, STORE_UUID_LEN + 1, "%s", t ? (const char *)t : "");
}

static inline int store__bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* ---- the rest of the backend ---- */

/* The ops of backend.h (sqlite_write.c, sqlite_points.c); see there. */
const char *store__sqlite_errmsg(store_db_t *db);
int store__sqlite_transact(store_db_t *db, store_tx_t what);
bool store__sqlite_tx_open(store_db_t *db);
int store__sqlite_key_id(store_db_t *db, const char *key, bool create, int64_t *out);
int store__sqlite_device_exists(store_db_t *db, int64_t device_id);
int store__sqlite_attr_set(store_db_t *db, int64_t device_id, store_scope_t scope, int64_t key_id,
                           const store_kv_t *kv);
int store__sqlite_attr_remove(store_db_t *db, int64_t device_id, store_scope_t scope,
                              int64_t key_id);
int store__sqlite_log_append(store_db_t *db, store_points_t *pp);
int store__sqlite_log_count(store_db_t *db, int64_t *out);
int store__sqlite_log_bounds(store_db_t *db, int64_t *first, int64_t *last);
int store__sqlite_log_load(store_db_t *db, int64_t from, int64_t to, store_log_rows_t *out);
int store__sqlite_log_remove(store_db_t *db, int64_t from, int64_t to);
int store__sqlite_kv_upsert(store_db_t *db, const store_points_t *pp);
int store__sqlite_latest_upsert(store_db_t *db, int64_t device_id, int64_t key_id,
                                const store_kv_t *kv);
int store__sqlite_tidy(store_db_t *db);
int store__sqlite_probe_write(store_db_t *db, const char *value);
int store__sqlite_ts_expire(store_db_t *db, int64_t cutoff_ms, int64_t *removed, bool *more);
/* sqlite_copy.c */
int store__sqlite_copy_read(store_db_t *db, const store_table_t *tables, size_t n,
                            store_copy_row_fn fn, void *arg);
int store__sqlite_copy_write(store_db_t *db, const store_table_t *t, const store_cell_t *cells,
                             size_t n_rows);
int store__sqlite_copy_finish(store_db_t *db, const store_table_t *tables, size_t n);
int store__sqlite_count_rows(store_db_t *db, const char *table, int64_t *out);
int store__sqlite_backup(const store_cfg_t *cfg, const char *dest, char err[static ERR_LEN]);
void store__sqlite_release(store_db_t *db);
int store__sqlite_ping(store_db_t *db);

/* store.h's synchronous calls, as backend.h's ops (dispatch.c checked the arguments). */
/* sqlite_devices.c */
int store__sqlite_device_create(store_db_t *db, store_device_t *d, store_cred_t *cred);
int store__sqlite_device_update(store_db_t *db, store_device_t *d);
int store__sqlite_device_get(store_db_t *db, int64_t id, store_device_t *out);
int store__sqlite_device_get_by_uuid(store_db_t *db, const char *uuid, store_device_t *out);
int store__sqlite_device_get_by_name(store_db_t *db, const char *name, store_device_t *out);
int store__sqlite_device_delete(store_db_t *db, int64_t id);
int store__sqlite_device_list(store_db_t *db, const char *text_search, const char *type,
                              const char *sort_property, bool ascending, int64_t page,
                              int64_t page_size, store_device_page_t *out);
/* sqlite_creds.c; _set_locked: inside the caller's write transaction on c */
int store__sqlite_cred_set_locked(store_conn_t *c, store_cred_t *cr);
int store__sqlite_cred_set(store_db_t *db, store_cred_t *cr);
int store__sqlite_cred_get_by_device(store_db_t *db, int64_t device_id, store_cred_t *out);
int store__sqlite_cred_get_by_id(store_db_t *db, const char *cred_id, store_cred_t *out);
int store__sqlite_cred_foreach(store_db_t *db, void (*fn)(void *arg, const store_cred_t *c),
                               void *arg);
/* sqlite_kv.c */
int store__sqlite_attr_get(store_db_t *db, int64_t device_id, store_scope_t scope,
                           const char *const *keys, size_t n_keys, store_kv_list_t *out);
int store__sqlite_attr_keys(store_db_t *db, int64_t device_id, store_scope_t scope,
                            store_kv_list_t *out);
int store__sqlite_attr_delete(store_db_t *db, int64_t device_id, store_scope_t scope,
                              const char *const *keys, size_t n_keys, size_t *n_deleted);
int store__sqlite_ts_keys(store_db_t *db, int64_t device_id, store_kv_list_t *out);
int store__sqlite_ts_latest(store_db_t *db, int64_t device_id, const char *const *keys,
                            size_t n_keys, store_kv_list_t *out);
int store__sqlite_ts_delete(store_db_t *db, int64_t device_id, const char *const *keys,
                            size_t n_keys, int64_t start_ms, int64_t end_ms, bool delete_latest);
/* sqlite_history.c */
int store__sqlite_ts_history(store_db_t *db, int64_t device_id, const char *key, int64_t start_ms,
                             int64_t end_ms, int64_t interval_ms, store_agg_t agg, int64_t limit,
                             bool ascending, store_kv_list_t *out);
/* sqlite_admin.c */
int store__sqlite_rpc_create(store_db_t *db, store_rpc_t *r);
int store__sqlite_rpc_set_status(store_db_t *db, const char *uuid, const char *status,
                                 const char *response);
int store__sqlite_rpc_get(store_db_t *db, const char *uuid, store_rpc_t *out);
int store__sqlite_rpc_max_request_id(store_db_t *db, int64_t device_id, int64_t *out);
int store__sqlite_user_create(store_db_t *db, store_user_t *u);
int store__sqlite_user_get_by_email(store_db_t *db, const char *email, store_user_t *out);
int store__sqlite_user_get_by_uuid(store_db_t *db, const char *uuid, store_user_t *out);
int store__sqlite_user_set_password(store_db_t *db, int64_t id, const char *password_hash);
int store__sqlite_user_count(store_db_t *db, int64_t *out);
int store__sqlite_setting_get(store_db_t *db, const char *key, char **out);
int store__sqlite_setting_set(store_db_t *db, const char *key, const char *value);

/* The latest-value upsert on any connection (sqlite_points.c): the merge's, and a delete's
 * that keeps a value whose point it removes (sqlite_kv.c). */
int store__latest_upsert(store_conn_t *c, int64_t device_id, int64_t key_id, const store_kv_t *kv);

/* Key dictionary (sqlite_write.c): id of key, inserting it when create is true. -ENOENT if
 * absent. Any connection. */
int store__key_id(store_conn_t *c, const char *key, bool create, int64_t *out);
/* Applies every migration not yet applied, one transaction each. 0 or error (err filled)
 * (sqlite_migrate.c). */
int store__migrate(store_conn_t *c, int *version, char err[static ERR_LEN]);

/* WAL checkpoints on a thread of their own (sqlite_checkpoint.c). */
int store__checkpointer_start(store_sqlite_t *q, char err[static ERR_LEN]);
void store__checkpointer_stop(store_sqlite_t *q);

/* Administrative statements (sqlite_adm.c / pg_adm.c; backend.h store_adm_t). */
int store__sqlite_adm_begin(store_db_t *db, bool write, store_adm_t **out);
int store__sqlite_adm_sql(store_adm_t *a, const char *sql, const store_cell_t *args, size_t n_args,
                          const store_row_map_t *m, store_rows_t *rows, int64_t *changes);
int store__sqlite_adm_end(store_adm_t *a, bool commit);

#endif
