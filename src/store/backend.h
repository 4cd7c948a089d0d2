/* backend.h — the store's internal backend interface: an ops table plus an opaque context
 * (STYLE.md §4), as redis plugs its connection types in through ConnectionType. The jobs of
 * the store (writer.c, log.c, merge.c, the synchronous calls in dispatch.c) are written once
 * against it; a backend (SQLite: sqlite*.c; PostgreSQL next, issue 13) fills one table and
 * keeps its library's calls and its SQL in files of its own.
 *
 * The writer's half runs on the backend's own writer connection: on the writer thread, inside
 * transactions the writer opens with transact(), or at open before the writer starts (the log's
 * count, bounds and rows, log.c). Its granularity is a call per statement the writer runs, and
 * never a call per point where a statement takes a group: log_append and kv_upsert take up to
 * STORE_MULTI points, so the indirection costs one call per 32 points on the hot path, and per
 * point the writer binds and stages exactly what it did before the interface (docs/BENCHMARKS.md,
 * performance passes 2 and 4).
 *
 * Every op returns 0 or a negative error of ours (errno values or core/err.h codes, mapped
 * in one place inside the backend: ERR_CONFLICT for a unique key taken, -ENOENT for a missing
 * row or device, -ENOSPC for a full disk, ...), never a library's result code.
 */
#ifndef COAPHUB_STORE_BACKEND_H
#define COAPHUB_STORE_BACKEND_H

#include "store/store.h"

#include "core/xmalloc.h"

typedef struct store_db store_db_t; /* a backend's context; only its own files look inside */

/* Points of a group (or of a merge step), written STORE_MULTI rows per statement. kv is
 * borrowed from the batch (or the merge's run) until the call returns; seq is filled by
 * log_append with each row's position in the telemetry log. */
enum { STORE_MULTI = 32 };
typedef struct store_points {
    size_t n;
    struct {
        int64_t device_id, key_id, seq;
        const store_kv_t *kv;
    } row[STORE_MULTI];
} store_points_t;

/* Rows read back from the telemetry log; kv.s owned by the row, kv.key unused (NULL). */
typedef struct store_log_row {
    int64_t seq, device_id, key_id;
    store_kv_t kv;
} store_log_row_t;

typedef struct store_log_rows {
    store_log_row_t *row;
    size_t n, cap;
} store_log_rows_t;

/* Appends an uninitialised row (capacity doubles from STORE_LOG_ROWS_MIN). */
enum { STORE_LOG_ROWS_MIN = 1024 };
static inline store_log_row_t *store__log_rows_push(store_log_rows_t *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : STORE_LOG_ROWS_MIN;
        l->row = xrealloc(l->row, l->cap * sizeof(*l->row));
    }
    return &l->row[l->n++];
}

/* How a result row maps onto a struct: column i of the row goes to the field at col[i].off,
 * read as col[i].kind. One table per struct (the backends' devices, creds and admin files) replaces a hand-written reader each. */
typedef enum {
    STORE_COL_I64,  /* int64_t */
    STORE_COL_INT,  /* int, or an enum stored as INTEGER (its size is checked where used) */
    STORE_COL_BOOL, /* bool, from 0 / non-zero */
    STORE_COL_STR,  /* char *, xstrndup'd (NULL for NULL) */
    STORE_COL_UUID, /* char[STORE_UUID_LEN + 1] */
} store_col_kind_t;

enum { STORE_ROW_MAX_COLS = 20 };
typedef struct store_row_map {
    size_t size; /* of the struct: zeroed before the columns are read */
    size_t n_cols;
    struct {
        store_col_kind_t kind;
        size_t off;
    } col[STORE_ROW_MAX_COLS];
} store_row_map_t;

/* One entry of a row map: STORE_COL(STR, store_user_t, email). */
#define STORE_COL(kind, type, field)                                                               \
    {                                                                                              \
        STORE_COL_##kind, offsetof(type, field)                                                    \
    }

/* Moving an installation between backends (copy.c): a table as the copy sees it, and one
 * value of a row. Both backends have the same tables and columns (schema.h); a column's kind
 * says how a backend reads and writes it: 'I' integer, 'B' boolean (0/1), 'R' double,
 * 'T' text. */
typedef struct store_table {
    const char *name;
    const char *cols;   /* "id, uuid, ..." */
    const char *kinds;  /* one letter per column */
    const char *order;  /* the primary key, for a stable order */
    const char *serial; /* the column a sequence fills (PostgreSQL), or NULL */
} store_table_t;

typedef enum {
    STORE_CELL_NULL,
    STORE_CELL_INT,
    STORE_CELL_REAL,
    STORE_CELL_TEXT
} store_cell_kind_t;
typedef struct store_cell {
    store_cell_kind_t kind;
    int64_t i;     /* INT (booleans 0/1) */
    double d;      /* REAL */
    const char *s; /* TEXT: borrowed for the callback's duration (copy_read) or the call's */
} store_cell_t;

/* copy_read's callback: one row of tables[table] (strlen(kinds) cells); non-zero stops. */
typedef int (*store_copy_row_fn)(void *arg, size_t table, const store_cell_t *cells);

/* The tables' column lists and row maps, the same on every backend (rows.c). */
#define STORE_DEVICE_COLS                                                                          \
    "id, uuid, created_time, name, type, label, additional_info, version, profile_id,"             \
    " (SELECT p.uuid FROM device_profile p WHERE p.id = device.profile_id), firmware_id,"          \
    " software_id, device_data"
#define STORE_PROFILE_COLS                                                                         \
    "id, uuid, created_time, name, is_default, provision_type, provision_key, firmware_id,"        \
    " software_id, data, version"
#define STORE_OTA_COLS                                                                             \
    "id, uuid, created_time, device_profile_id,"                                                   \
    " (SELECT p.uuid FROM device_profile p WHERE p.id = ota_package.device_profile_id), type,"     \
    " title, version, tag, url, has_data, file_name, content_type, checksum_algorithm, checksum,"  \
    " data_size, additional_info"
#define STORE_CRED_COLS                                                                            \
    "uuid, device_id, created_time, credentials_type, credentials_id, credentials_value,"          \
    " version"
#define STORE_RPC_COLS                                                                             \
    "uuid, device_id, created_time, expiration_time, request_id, method, params, status,"          \
    " response, oneway, persistent"
#define STORE_USER_COLS                                                                            \
    "id, uuid, created_time, email, password_hash, authority, first_name, last_name"
extern const store_row_map_t store__device_row, store__cred_row, store__rpc_row, store__user_row,
    store__profile_row, store__ota_row;

/* Administrative statements written once for every backend (admin_sql.c: device profiles, OTA
 * packages): the same SQL text runs on both, so it keeps to what both understand — parameters
 * $1..$n (the SQLite backend binds them by name), TRUE/FALSE, LIMIT/OFFSET, RETURNING,
 * lower(x) LIKE lower($n) ESCAPE '\'. Booleans are passed as INT cells (0/1); PostgreSQL reads
 * '0'/'1' for a boolean parameter. Every sql is a string literal (the backends cache
 * statements by text). */
typedef struct store_adm store_adm_t; /* a transaction on a pool connection */
typedef struct store_rows {
    void *items; /* structs of `size` bytes (the row map's) */
    size_t n, cap, size;
} store_rows_t;
/* Argument cells: STORE_INT(x), STORE_TEXT(s) (NULL s = SQL NULL). */
#define STORE_INT(x) ((store_cell_t){.kind = STORE_CELL_INT, .i = (int64_t)(x)})
static inline store_cell_t store__text_cell(const char *s)
{
    return (store_cell_t){.kind = s ? STORE_CELL_TEXT : STORE_CELL_NULL, .s = s};
}
#define STORE_TEXT(x) store__text_cell(x)
/* One-column results: an integer, a text (rows.c). */
typedef struct store_i64 {
    int64_t v;
} store_i64_t;
typedef struct store_text {
    char *v;
} store_text_t;
extern const store_row_map_t store__i64_row, store__text_row;
void store__text_fini(void *item);
/* A new zeroed item at the end of r. */
void *store__rows_push(store_rows_t *r, size_t size);
/* Runs fini (may be NULL) on every item, frees the array, empties r. */
void store__rows_fini(store_rows_t *r, void (*fini)(void *item));

/* What transact() does to the writer's transaction. */
typedef enum {
    STORE_TX_BEGIN,      /* a write transaction whose COMMIT is durable before it returns */
    STORE_TX_BEGIN_LAZY, /* one whose COMMIT need not reach the disk by itself: the merge only
                          * moves points that are durable already, and the next durable
                          * commit carries it (a crash before rolls it back whole) */
    STORE_TX_COMMIT,
    STORE_TX_ROLLBACK,           /* the open transaction, if there is one; never fails */
    STORE_TX_SAVEPOINT,          /* inside the open transaction: one batch's mark (writer.c) */
    STORE_TX_SAVEPOINT_ROLLBACK, /* undo what followed the mark */
    STORE_TX_SAVEPOINT_RELEASE,
} store_tx_t;

typedef struct store_backend {
    const char *name;

    /* ---- life cycle (the opening thread) ---- */

    /* Opens the backend for s (s->cfg is final): migrates the schema, sets *schema_version,
     * starts the backend's own threads. NULL with err filled on failure, having closed what
     * it opened. */
    store_db_t *(*open)(store_t *s, int *schema_version, char err[static ERR_LEN]);
    /* After the writer has stopped: stops the backend's threads, closes, frees. */
    void (*close)(store_db_t *db);
    /* The backend's words for the last failure on the writer's connection (for start-up
     * errors). */
    const char *(*errmsg)(store_db_t *db);

    /* ---- the writer's half (writer thread, or the opening thread before it starts) ---- */

    int (*transact)(store_db_t *db, store_tx_t what);
    /* Whether a transaction is open: a failure may have rolled back the whole transaction,
     * not only its statement (SQLite does so on a full disk, I/O errors, out of memory). */
    bool (*tx_open)(store_db_t *db);
    /* The key dictionary: the id of key, created when create is set; -ENOENT when absent. */
    int (*key_id)(store_db_t *db, const char *key, bool create, int64_t *out);
    /* 0 when the device exists, -ENOENT when not. */
    int (*device_exists)(store_db_t *db, int64_t device_id);
    /* Sets (kv->ts is its lastUpdateTs; its version goes up) or deletes an attribute. */
    int (*attr_set)(store_db_t *db, int64_t device_id, store_scope_t scope, int64_t key_id,
                    const store_kv_t *kv);
    int (*attr_remove)(store_db_t *db, int64_t device_id, store_scope_t scope, int64_t key_id);

    /* The telemetry log (log.c, merge.c). Appends pp's rows in order, filling each seq (a
     * position in the log, increasing). */
    int (*log_append)(store_db_t *db, store_points_t *pp);
    int (*log_count)(store_db_t *db, int64_t *out);
    /* The smallest and largest seq in the log; -ENOENT when it is empty. */
    int (*log_bounds)(store_db_t *db, int64_t *first, int64_t *last);
    /* Appends the log's rows with seq in [from, to] to out, in seq order. */
    int (*log_load)(store_db_t *db, int64_t from, int64_t to, store_log_rows_t *out);
    /* Deletes the log's rows with seq in [from, to]. */
    int (*log_remove)(store_db_t *db, int64_t from, int64_t to);
    /* The merge: pp's rows into ts_kv (an upsert, in order: the last of equal (device, key,
     * ts) wins), and the latest value of one (device, key) unless the stored one is newer
     * (an equal ts replaces it, as in ThingsBoard). */
    int (*kv_upsert)(store_db_t *db, const store_points_t *pp);
    int (*latest_upsert)(store_db_t *db, int64_t device_id, int64_t key_id, const store_kv_t *kv);
    /* Optional: the database merges (merge_db.c; NULL: merge.c loads, sorts and applies
     * runs on the writer thread, with kv_upsert and latest_upsert, which a backend with
     * log_merge need not have). Merges up to max_rows of the log's oldest rows in one
     * transaction of its own on a connection of its own (the merge thread's; its commit need
     * not be synced: the points are durable in the log) — into ts_kv (the last of equal
     * (device, key, ts) wins), each (device, key)'s newest into ts_kv_latest unless the
     * stored one is newer, then out of the log. *through: every row with seq <= it that was
     * committed when the step began is merged; *moved: the rows moved (0: the log was
     * empty). (PostgreSQL: no row crosses the connection.) */
    int (*log_merge)(store_db_t *db, int64_t max_rows, int64_t *through, int64_t *moved);

    /* After each group's completions: cheap upkeep (SQLite restarts its WAL here). Returns 0,
     * or a storage fault the upkeep met since (SQLite: the checkpoint cannot write the
     * database file), which starts an episode as a failed commit does (health.c). */
    int (*tidy)(store_db_t *db);
    /* The writer is idle: give caches back. */
    void (*release)(store_db_t *db);
    /* During a storage fault (health.c): commits one small row (the settings key
     * coaphub.write_probe = value) as the writer's own writes would, so success means the
     * writer can write again. 0 or the error. */
    int (*probe_write)(store_db_t *db, const char *value);

    /* ---- upkeep (any thread) ---- */

    /* Whether the database answers now: 0, or ERR_UNAVAILABLE (store_ready). */
    int (*ping)(store_db_t *db);
    /* Retention (retention.c, on its own thread): removes telemetry points with ts < cutoff_ms
     * from ts_kv, one bounded step per call so the writer never waits long behind it (SQLite:
     * a few thousand rows; PostgreSQL: whole partitions entirely below the cutoff, as
     * ThingsBoard drops them). *removed: points removed by this step when known, else -1;
     * *more: another step is due. */
    int (*ts_expire)(store_db_t *db, int64_t cutoff_ms, int64_t *removed, bool *more);

    /* ---- moving an installation (copy.c; a backend opened by store__open_bare) ---- */

    /* Calls fn for every row of the n tables, table by table in primary-key order, all read
     * in one snapshot (a server may be writing meanwhile). */
    int (*copy_read)(store_db_t *db, const store_table_t *tables, size_t n, store_copy_row_fn fn,
                     void *arg);
    /* Writes n_rows rows (cells: n_rows times the table's columns) into t, all or none. */
    int (*copy_write)(store_db_t *db, const store_table_t *t, const store_cell_t *cells,
                      size_t n_rows);
    /* After the copy: what the backend keeps beside the rows (PostgreSQL: each serial's
     * sequence moves past the largest id copied). */
    int (*copy_finish)(store_db_t *db, const store_table_t *tables, size_t n);
    /* Rows of a table (one of copy.c's). */
    int (*count_rows)(store_db_t *db, const char *table, int64_t *out);
    /* SQLite only (NULL elsewhere): a consistent copy of the database file cfg->path into
     * dest, safe while a server writes to it (SQLite's online backup API). Needs no open
     * backend. */
    int (*backup)(const store_cfg_t *cfg, const char *dest, char err[static ERR_LEN]);

    /* ---- store.h's synchronous calls (any thread) ----
     * Each does what its store.h namesake promises; dispatch.c has checked the arguments
     * (NULL strings, empty names, page bounds, the aggregation's range), set out-parameters that
     * store.h promises on every return, and announced deletes (store__log_deleting) first. */

    /* With cred (not NULL): the device and its credentials in one transaction (cred->device_id
     * is filled); -EEXIST when cred's id belongs to another device, and nothing is created. */
    int (*device_create)(store_db_t *db, store_device_t *d, store_cred_t *cred);
    int (*device_update)(store_db_t *db, store_device_t *d);
    int (*device_get)(store_db_t *db, int64_t id, store_device_t *out);
    int (*device_get_by_uuid)(store_db_t *db, const char *uuid, store_device_t *out);
    int (*device_get_by_name)(store_db_t *db, const char *name, store_device_t *out);
    int (*device_delete)(store_db_t *db, int64_t id);
    int (*device_list)(store_db_t *db, const char *text_search, const char *type,
                       const char *sort_property, bool ascending, int64_t page, int64_t page_size,
                       store_device_page_t *out);

    int (*cred_set)(store_db_t *db, store_cred_t *c);
    int (*cred_get_by_device)(store_db_t *db, int64_t device_id, store_cred_t *out);
    int (*cred_get_by_id)(store_db_t *db, const char *cred_id, store_cred_t *out);
    int (*cred_foreach)(store_db_t *db, void (*fn)(void *arg, const store_cred_t *c), void *arg);

    int (*attr_get)(store_db_t *db, int64_t device_id, store_scope_t scope, const char *const *keys,
                    size_t n_keys, store_kv_list_t *out);
    int (*attr_keys)(store_db_t *db, int64_t device_id, store_scope_t scope, store_kv_list_t *out);
    int (*attr_delete)(store_db_t *db, int64_t device_id, store_scope_t scope,
                       const char *const *keys, size_t n_keys, size_t *n_deleted);
    int (*ts_keys)(store_db_t *db, int64_t device_id, store_kv_list_t *out);
    int (*ts_latest)(store_db_t *db, int64_t device_id, const char *const *keys, size_t n_keys,
                     store_kv_list_t *out);
    int (*ts_history)(store_db_t *db, int64_t device_id, const char *key, int64_t start_ms,
                      int64_t end_ms, int64_t interval_ms, store_agg_t agg, int64_t limit,
                      bool ascending, store_kv_list_t *out);
    int (*ts_delete)(store_db_t *db, int64_t device_id, const char *const *keys, size_t n_keys,
                     int64_t start_ms, int64_t end_ms, bool delete_latest);

    int (*rpc_create)(store_db_t *db, store_rpc_t *r);
    int (*rpc_set_status)(store_db_t *db, const char *uuid, const char *status,
                          const char *response);
    int (*rpc_get)(store_db_t *db, const char *uuid, store_rpc_t *out);
    int (*rpc_max_request_id)(store_db_t *db, int64_t device_id, int64_t *out);

    int (*user_create)(store_db_t *db, store_user_t *u);
    int (*user_get_by_email)(store_db_t *db, const char *email, store_user_t *out);
    int (*user_get_by_uuid)(store_db_t *db, const char *uuid, store_user_t *out);
    int (*user_set_password)(store_db_t *db, int64_t id, const char *password_hash);
    int (*user_count)(store_db_t *db, int64_t *out);

    int (*setting_get)(store_db_t *db, const char *key, char **out);
    int (*setting_set)(store_db_t *db, const char *key, const char *value);

    /* Administrative SQL (see store_adm_t above). adm_begin opens a transaction on a pool
     * connection (write: one that takes the write lock at once); adm_sql runs one statement
     * with args and, when m is not NULL, appends its rows to rows as m says; *changes (may be
     * NULL) gets the rows it changed; adm_end commits (returning the commit's result) or rolls
     * back, and gives the connection back. */
    int (*adm_begin)(store_db_t *db, bool write, store_adm_t **out);
    int (*adm_sql)(store_adm_t *a, const char *sql, const store_cell_t *args, size_t n_args,
                   const store_row_map_t *m, store_rows_t *rows, int64_t *changes);
    int (*adm_end)(store_adm_t *a, bool commit);
} store_backend_t;

/* The backends built in. */
extern const store_backend_t store__sqlite_backend; /* sqlite.c */
extern const store_backend_t store__pg_backend;     /* pg.c */

#endif
