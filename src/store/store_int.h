/* store_int.h — private parts of the store shared by its jobs: the handle (struct store),
 * batches and their operations, and the module-internal calls of the writer, the telemetry
 * log, the latest values, the merge and the key cache.
 *
 * The module reads top to bottom: the public face (open.c) and the synchronous calls
 * (dispatch.c); the jobs (writer.c, batch.c, log.c, merge.c, latest.c, keycache.c); the
 * backend interface (backend.h) with the SQLite backend behind it (sqlite.c and the
 * sqlite_*.c files, down to its db layer, sqlite_db.c). A job calls a backend only through
 * s->be, so nothing here knows SQL or a database library.
 *
 * Invariant: the writer thread alone touches the writer's fields (the key cache, the merge,
 * the device bitmap); the queue is q_mu's, the latest values latest_mu's, the counters
 * stats_mu's; log_rows and log_deletes are atomics.
 */
#ifndef COAPHUB_STORE_STORE_INT_H
#define COAPHUB_STORE_STORE_INT_H

#include "store/backend.h"
#include "store/store.h"

#include "core/arena.h"
#include "core/err.h"
#include "core/htab.h"
#include "core/loop.h"
#include "core/xmalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/types.h>

/* One operation of a batch (batch.c builds them, the writer reads them in place). */
typedef struct store_op {
    store_op_kind_t kind;
    int64_t device_id;
    store_scope_t scope;
    store_kv_t kv; /* key and s point into the batch's text storage */
} store_op_t;

#define STORE_BATCH_INLINE_OPS 4

struct store_batch {
    store_op_t *ops; /* inline_ops until more are needed */
    size_t n, cap;
    store_batch_t *next; /* the writer's queue and group (writer.c) */
    loop_t *reply_loop;
    store_done_cb done;
    store_done_keep_cb done_keep; /* the caller takes the batch back (store_submit_keep) */
    void *arg;
    int status;
    loop_post_node_t post; /* posting done to reply_loop allocates nothing */
    arena_t text;          /* keys and string values (batch.c) */
    store_op_t inline_ops[STORE_BATCH_INLINE_OPS];
};

typedef struct store_merge store_merge_t;   /* merge.c */
typedef struct store_latest store_latest_t; /* latest.c */

/* The writer's key-id cache (keycache.c). */
typedef struct store_keycache_entry store_keycache_entry_t;
typedef struct store_keycache {
    htab_t keys;                      /* store_keycache_entry_t by key name */
    store_keycache_entry_t **pending; /* learnt in the open transaction */
    size_t n_pending, cap_pending;
} store_keycache_t;

struct store {
    store_cfg_t cfg;
    char *path;
    int schema_version;

    /* The backend and its context (backend.h). */
    const store_backend_t *be;
    store_db_t *db;

    /* writer */
    pthread_t writer;
    bool writer_started;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    store_batch_t *q_head, *q_tail;
    size_t q_ops;
    bool closing;
    store_commit_hook commit_hook; /* set before the first submit; read by the writer only */
    void *commit_hook_ctx;
    store_keycache_t keys; /* writer thread only */
    /* Rows in ts_kv_log not yet merged into ts_kv (merge.c). Raised after a commit, before
     * its batches are acknowledged; lowered after a merge commits. An over-estimate is
     * harmless (a merge finds fewer rows), an under-estimate never happens. */
    _Atomic int64_t log_rows;
    store_merge_t *merge; /* the run being merged; writer thread only */
    bool merge_active;    /* a run is under way (merge.c keeps it) */
    bool memory_released; /* the idle writer gave its caches back (writer.c) */
    _Atomic int64_t log_deletes; /* bumped by store__log_deleting */
    /* Devices the writer has seen exist, a bit per id (writer.c, device_check); writer
     * thread only, valid while log_deletes equals dev_known_deletes. */
    uint64_t *dev_known;
    size_t dev_known_words;
    int64_t dev_known_deletes;
    /* Latest values not yet in ts_kv_latest (latest.c, which says who holds the lock when). */
    pthread_mutex_t latest_mu;
    store_latest_t *latest;

    pthread_mutex_t stats_mu;
    store_stats_t stats;

    /* the database's merge (merge_db.c, when the backend has log_merge) */
    pthread_t mg_thread;
    bool mg_started, mg_stop, mg_kicked, mg_idle;
    pthread_mutex_t mg_mu;
    pthread_cond_t mg_cv;

    /* health (health.c): the storage fault under way (0: none; writer thread writes, any
     * reads), corruption met (one way), and the episode's writer-thread bookkeeping */
    _Atomic int h_fault;
    _Atomic bool h_corrupt;
    int64_t h_since_ms, h_probe_at_ms, h_probe_wait_ms;
    uint64_t h_refused;
    bool h_released; /* this episode released the disk reserve: the probe takes it back */

    /* retention (retention.c) */
    pthread_t ret_thread;
    bool ret_started, ret_stop;
    pthread_mutex_t ret_mu;
    pthread_cond_t ret_cv;
    _Atomic int64_t ret_runs;
};

/* The index of key in l, or -1 (types.c). */
ssize_t store__kv_list_find(const store_kv_list_t *l, const char *key);

/* Starts / stops (after draining) the writer thread (writer.c). */
/* Administrative statements (profiles.c, ota.c; backend.h store_adm_t): one statement in a
 * transaction of its own; the first row of one into out (-ENOENT if none); one integer from
 * a statement inside a's transaction (-ENOENT if no row). */
int store__adm_run(store_t *s, bool write, const char *sql, const store_cell_t *args, size_t n,
                   const store_row_map_t *m, store_rows_t *rows, int64_t *changes);
int store__adm_get(store_t *s, const char *sql, const store_cell_t *args, size_t n,
                   const store_row_map_t *m, void *out);
int store__adm_i64(store_adm_t *a, store_t *s, const char *sql, const store_cell_t *args, size_t n,
                   int64_t *out);
/* "abc" -> "abc%" with LIKE's wildcards escaped (ESCAPE '\'): a literal prefix. */
char *store__like_prefix(const char *text);
/* At open: the default profile exists, and every device has a profile (profiles.c). */
int store__profiles_init(store_t *s);
/* Sets d->profile_id for a device about to be created or updated: checks a given id, or
 * finds (making it if missing) the profile named d->type, or takes the default. */
int store__device_profile_resolve(store_t *s, store_device_t *d);

/* Health (health.c). note: records corruption (logged once) and returns r. fault_begin:
 * writer thread, starts an episode for a fault error (nothing for others or during one).
 * fault_refuse: writer thread, the error to refuse n_batches with now, or 0 (counted).
 * fault_probe_in: ms until the next probe, -1 when no episode. fault_probe: writer thread,
 * takes the reserve back and writes; ends the episode when both work. */
int store__health_note(store_t *s, int r);
void store__fault_begin(store_t *s, int err);
int store__fault_refuse(store_t *s, size_t n_batches);
int64_t store__fault_probe_in(store_t *s);
void store__fault_probe(store_t *s);
/* The disk reserve (reserve.c): at open (a failure is logged, not fatal); take it back (0,
 * or -ENOSPC while less than twice its size is free); release it (true if it was there). */
void store__reserve_open(store_t *s);
int store__reserve_take(store_t *s);
bool store__reserve_release(store_t *s);

int store__writer_start(store_t *s);
void store__writer_stop(store_t *s);

/* Writer's key-id cache (keycache.c): committed ids only; park ids learnt in the open
 * transaction, then commit or roll them back with it. */
void store__keycache_init(store_keycache_t *kc);
bool store__keycache_get(const store_keycache_t *kc, const char *key, int64_t *id);
void store__keycache_park(store_keycache_t *kc, const char *key, int64_t id);
void store__keycache_commit(store_keycache_t *kc);
void store__keycache_rollback(store_keycache_t *kc);
void store__keycache_free(store_keycache_t *kc);

/* The telemetry log (log.c). Writer thread: a group's points go to the log STORE_MULTI at a
 * time (add, then flush the rest), each with its latest value staged; log_point writes one
 * point alone. At open: counts the log's rows and rebuilds the latest values of the points
 * in it (a log left by a crash or a stop is merged later). */
int store__log_add(store_t *s, store_points_t *pp, int64_t device_id, int64_t key_id,
                   const store_kv_t *kv);
int store__log_flush(store_t *s, store_points_t *pp);
int store__log_point(store_t *s, int64_t device_id, int64_t key_id, const store_kv_t *kv);
int store__log_open(store_t *s, char err[static ERR_LEN]);
/* Any thread, before a transaction that deletes points or devices: a merge run loaded
 * earlier is dropped instead of writing deleted points back (merge.c says why). */
void store__log_deleting(store_t *s);

/* Latest values of points in the log (latest.c). Writer thread: stage each point written
 * in the open transaction; take a mark before a savepoint and unstage back to it when the
 * savepoint is rolled back; publish with latest_mu held across the COMMIT. */
void store__latest_init(store_t *s);
void store__latest_fini(store_t *s);
void store__latest_stage(store_t *s, int64_t device_id, int64_t key_id, int64_t seq,
                         const store_kv_t *kv);
size_t store__latest_staged(const store_t *s);
void store__latest_unstage(store_t *s, size_t mark);
void store__latest_publish_locked(store_t *s);
/* At open (log.c), latest_mu held: makes (seq, kv) the entry of (device, key) unless the
 * entry is newer; kv->s is copied. */
void store__latest_put_locked(store_t *s, int64_t device_id, int64_t key_id, int64_t seq,
                              const store_kv_t *kv);
/* Merge: the run up to last_seq is in ts_kv_latest now; drop the entries it covered. */
void store__latest_sweep(store_t *s, int64_t last_seq);
/* Deletes, with latest_mu held: the entry of (device, key) (borrowed while the lock is held),
 * dropping it, dropping a device's. */
bool store__latest_find_locked(store_t *s, int64_t device_id, int64_t key_id, store_kv_t *out);
void store__latest_remove_locked(store_t *s, int64_t device_id, int64_t key_id);
void store__latest_forget_device_locked(store_t *s, int64_t device_id);
/* Readers: a copy of a device's entries (kv.key NULL, kv.s owned); free with _copy_free. */
typedef struct store_latest_copy {
    int64_t key_id;
    store_kv_t kv;
} store_latest_copy_t;
size_t store__latest_copy(store_t *s, int64_t device_id, store_latest_copy_t **out);
void store__latest_copy_free(store_latest_copy_t *c, size_t n);
/* Readers, after reading a table's latest values into out: puts an entry's value (a copy's
 * kv, its string moving into the list) at out->items[at] unless that is newer, or appends
 * it as key when at < 0. */
void store__latest_take_newer(store_kv_list_t *out, ssize_t at, const char *key, store_kv_t *mem);
/* An idle writer hands back the memory of its staged latest values. */
void store__latest_release(store_t *s);

/* The merge when the database does it (merge_db.c; backend.h log_merge): a thread beside
 * the writer, started by store_open, stopped after the writer (it merges what is left). The
 * writer kicks it after a commit. Without log_merge these do nothing and the writer merges
 * (merge.c). */
int store__merge_db_start(store_t *s);
void store__merge_db_kick(store_t *s);
void store__merge_db_stop(store_t *s);

/* Retention (retention.c): started by store_open when cfg.ts_ttl_s > 0; stopped before the
 * backend closes. */
int store__retention_start(store_t *s);
void store__retention_stop(store_t *s);

/* Points per merge run by default (writer.c says why this size). */
#define STORE_MERGE_RUN_ROWS 65536

/* At close the log is merged for at most this long (then the run under way is finished):
 * a backlog left by a storage fault could otherwise hold a stop for many seconds (2 M rows:
 * 12.6 s under ASan), past a service manager's stop timeout and reliability.md S6's 10 s.
 * What is left stays in the log, which every read includes and the next start merges. */
#define STORE_STOP_MERGE_MS 3000

/* The merge of the telemetry log into ts_kv (merge.c). Writer thread: one bounded step (a
 * run holds at most run_rows of the oldest rows); *active tells whether a run is under way.
 * store__merge_all merges everything (db tools); the writer's close merges for at most
 * STORE_STOP_MERGE_MS. */
int store__merge_step(store_t *s, int64_t run_rows, bool *active);
int store__merge_all(store_t *s);
/* Tests only: when set, called on the writer thread after each merge step with whether the
 * run is now being deleted from the log (so a test can act at that exact moment). */
extern void (*store__merge_test_hook)(bool deleting);
void store__merge_free(store_merge_t *m);
/* An idle writer hands back the memory of the last run's rows. */
void store__merge_release(store_merge_t *m);

#endif
