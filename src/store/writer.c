/* writer.c — the writer thread: its queue of batches (batch.c), the group commit, completions.
 *
 * Invariant: a batch's done callback runs exactly once, and only after the transaction that
 * holds its operations has committed (status 0) or after they were given up (status < 0).
 * So "acknowledge after done(0)" means "acknowledge only what is on disk".
 *
 * Group commit: the writer takes every queued batch (up to batch_max_ops operations), applies
 * each inside its own SAVEPOINT so one bad batch (say, a deleted device) fails alone, and
 * commits once. Batches that arrive while a commit is running form the next group, so under
 * load groups grow by themselves; an idle store commits a lone batch at once, and a group
 * smaller than the previous one waits at most batch_max_delay_ms for stragglers. If the COMMIT
 * itself fails (disk full, I/O error), the group is rolled back and each batch is retried in
 * its own transaction so the status is reported per batch.
 *
 * Fast path: the group is applied without a SAVEPOINT per batch; only when a batch fails is
 * the transaction rolled back and the group applied again batch by batch in savepoints.
 * Points go to the telemetry log (log.c); between groups the writer merges the log into ts_kv
 * in slices (merge.c), and when idle it merges what is left.
 *
 * Not here: building batches (batch.c) and any statement: transactions, savepoints and writes
 * are the backend's ops (backend.h), one call per statement; on the fast path a group's points
 * go STORE_MULTI to a call (log.c).
 */
#include "store/store_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- applying operations (writer thread, inside a transaction) ---- */

/* key_id through the writer's cache; ids learnt here are parked until the commit. */
static int key_id(store_t *s, const char *key, bool create, int64_t *out)
{
    if (store__keycache_get(&s->keys, key, out))
        return 0;
    int r = s->be->key_id(s->db, key, create, out);
    if (r == 0)
        store__keycache_park(&s->keys, key, *out);
    return r;
}

/* Ids up to this are remembered in the bitmap (512 KiB at most); larger ones are looked up. */
#define DEV_KNOWN_MAX_ID (INT64_C(1) << 22)

/* The writer's connection runs without foreign keys (SQLite's does, sqlite.c says why), so a
 * point or an attribute of a deleted device is refused here: -ENOENT, as the foreign key
 * would have.
 * Inside the transaction, so a device delete (another connection) is either seen or comes
 * after the commit and cascades over what it wrote.
 * The lookup cost ~0.6 µs per request, so devices found are remembered in a bitmap until
 * the next delete of points or devices: each bumps log_deletes before its transaction, and
 * we read it inside ours (holding the write lock), so a delete committed before our
 * transaction is always noticed, and one not yet committed cannot commit before ours. */
static int device_check(store_t *s, int64_t device_id)
{
    int64_t deletes = atomic_load(&s->log_deletes);
    if (deletes != s->dev_known_deletes) {
        if (s->dev_known)
            memset(s->dev_known, 0, s->dev_known_words * sizeof(uint64_t));
        s->dev_known_deletes = deletes;
    }
    bool cacheable = device_id > 0 && device_id < DEV_KNOWN_MAX_ID;
    size_t w = cacheable ? (size_t)device_id / 64 : 0;
    uint64_t bit = UINT64_C(1) << (device_id & 63);
    if (cacheable && w < s->dev_known_words && (s->dev_known[w] & bit))
        return 0;
    int r = s->be->device_exists(s->db, device_id);
    if (r != 0)
        return r;
    if (cacheable) {
        if (w >= s->dev_known_words) {
            size_t words = s->dev_known_words ? s->dev_known_words : 64;
            while (words <= w)
                words *= 2;
            s->dev_known = xrealloc(s->dev_known, words * sizeof(uint64_t));
            memset(s->dev_known + s->dev_known_words, 0,
                   (words - s->dev_known_words) * sizeof(uint64_t));
            s->dev_known_words = words;
        }
        s->dev_known[w] |= bit;
    }
    return 0;
}

/* Checks each device of b once (a batch is usually one device's). */
static int batch_devices_check(store_t *s, const store_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (i > 0 && b->ops[i].device_id == b->ops[i - 1].device_id)
            continue;
        int r = device_check(s, b->ops[i].device_id);
        if (r != 0)
            return r;
    }
    return 0;
}

static int apply_ts(store_t *s, const store_op_t *o)
{
    int64_t key_id_v;
    int r = key_id(s, o->kv.key, true, &key_id_v);
    return r != 0 ? r : store__log_point(s, o->device_id, key_id_v, &o->kv);
}

static int apply_attr(store_t *s, const store_op_t *o)
{
    if (o->scope < SCOPE_CLIENT || o->scope > SCOPE_SHARED)
        return -EINVAL;
    int64_t key_id_v;
    int r = key_id(s, o->kv.key, o->kind == STORE_OP_ATTR, &key_id_v);
    if (o->kind == STORE_OP_ATTR_DELETE) {
        if (r == -ENOENT)
            return 0; /* never seen key: nothing to delete */
        return r != 0 ? r : s->be->attr_remove(s->db, o->device_id, o->scope, key_id_v);
    }
    return r != 0 ? r : s->be->attr_set(s->db, o->device_id, o->scope, key_id_v, &o->kv);
}

static int apply_batch(store_t *s, const store_batch_t *b)
{
    int r = batch_devices_check(s, b);
    if (r != 0)
        return r;
    for (size_t i = 0; i < b->n; i++) {
        const store_op_t *o = &b->ops[i];
        if (!o->kv.key || !o->kv.key[0])
            return -EINVAL;
        r = o->kind == STORE_OP_TS ? apply_ts(s, o) : apply_attr(s, o);
        if (r != 0)
            return r;
    }
    return 0;
}

static size_t count_ts(const store_batch_t *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->ops[i].kind == STORE_OP_TS;
    return n;
}

/* Applies b inside a savepoint of the open transaction; on error only b is undone. */
static int apply_in_savepoint(store_t *s, store_batch_t *b)
{
    int r = s->be->transact(s->db, STORE_TX_SAVEPOINT);
    if (r != 0)
        return r;
    size_t staged = store__latest_staged(s);
    r = apply_batch(s, b);
    if (r != 0) {
        s->be->transact(s->db, STORE_TX_SAVEPOINT_ROLLBACK);
        store__keycache_rollback(&s->keys); /* ids parked since may be undone */
        store__latest_unstage(s, staged);
    }
    s->be->transact(s->db, STORE_TX_SAVEPOINT_RELEASE);
    return r;
}

static void rollback(store_t *s)
{
    s->be->transact(s->db, STORE_TX_ROLLBACK);
    store__keycache_rollback(&s->keys);
    store__latest_unstage(s, 0);
}

/* latest_mu is held across the COMMIT: readers see the new latest values exactly when the
 * points are durable, and a delete waiting for the lock sees them (latest.c). */
static int commit(store_t *s, size_t ts_points)
{
    pthread_mutex_lock(&s->latest_mu);
    int r = s->be->transact(s->db, STORE_TX_COMMIT);
    if (r == 0)
        store__latest_publish_locked(s);
    pthread_mutex_unlock(&s->latest_mu);
    if (r != 0)
        return r;
    store__keycache_commit(&s->keys);
    atomic_fetch_add(&s->log_rows, (int64_t)ts_points);
    return 0;
}

static void count(store_t *s, bool ok, size_t ops, size_t group)
{
    pthread_mutex_lock(&s->stats_mu);
    if (ok) {
        s->stats.commits++;
        s->stats.ops += ops;
        if (group > s->stats.max_group)
            s->stats.max_group = group;
    } else {
        s->stats.failed_commits++;
    }
    pthread_mutex_unlock(&s->stats_mu);
}

/* One batch, one transaction: the fallback after a failed group commit. */
static void commit_alone(store_t *s, store_batch_t *b)
{
    int r = s->be->transact(s->db, STORE_TX_BEGIN);
    if (r == 0) {
        r = apply_batch(s, b);
        if (r == 0)
            r = commit(s, count_ts(b));
        if (r != 0)
            rollback(s);
    }
    count(s, r == 0, b->n, 1);
    b->status = r;
}

/* The common case: every batch applies, one transaction, no savepoints. 1 when a batch
 * failed (the transaction is rolled back: nothing of the group is applied). */
static int commit_group_fast(store_t *s, store_batch_t *group, size_t n_batches)
{
    int r = s->be->transact(s->db, STORE_TX_BEGIN);
    if (r != 0)
        return r;
    size_t ops = 0, points = 0;
    store_points_t pp; /* points of the group, STORE_MULTI per statement (log.c) */
    pp.n = 0;
    for (store_batch_t *b = group; b; b = b->next) {
        r = batch_devices_check(s, b);
        for (size_t i = 0; i < b->n && r == 0; i++) {
            const store_op_t *o = &b->ops[i];
            int64_t kid;
            if (!o->kv.key || !o->kv.key[0])
                r = -EINVAL;
            else if (o->kind != STORE_OP_TS)
                r = apply_attr(s, o);
            else if ((r = key_id(s, o->kv.key, true, &kid)) == 0) {
                r = store__log_add(s, &pp, o->device_id, kid, &o->kv);
                points++;
            }
        }
        if (r == 0 && !b->next)
            r = store__log_flush(s, &pp);
        if (r != 0) {
            rollback(s);
            return 1;
        }
        b->status = 0;
        ops += b->n;
    }
    if ((r = commit(s, points)) != 0) {
        rollback(s);
        return r;
    }
    count(s, true, ops, n_batches);
    return 0;
}

static void commit_group(store_t *s, store_batch_t *group, size_t n_batches)
{
    int r = commit_group_fast(s, group, n_batches);
    if (r == 0)
        return;
    if (r == 1) /* a batch failed: again, each batch in its savepoint so it fails alone */
        r = s->be->transact(s->db, STORE_TX_BEGIN);
    if (r == 0) {
        size_t ops = 0, points = 0;
        for (store_batch_t *b = group; b && r == 0; b = b->next) {
            b->status = apply_in_savepoint(s, b);
            if (b->status == 0) {
                ops += b->n;
                points += count_ts(b);
            }
            /* A full disk, an I/O error or no memory may roll back the whole transaction, not
             * just the statement: then nothing of this group is applied, so stop and retry
             * alone. */
            if (!s->be->tx_open(s->db))
                r = ERR_STORE;
        }
        if (r == 0)
            r = commit(s, points);
        if (r == 0) {
            count(s, true, ops, n_batches);
            return;
        }
        rollback(s);
    }
    count(s, false, 0, 0);
    /* During a database outage every group fails: a line a second says so, not one a group;
     * a storage fault or corruption gets one line per episode instead (health.c). */
    static _Thread_local int64_t last_warn_ms;
    static _Thread_local uint64_t quiet;
    int64_t now = clock_mono_ms();
    if (store_err_is_outage(r)) {
        LOG_D("store", "group commit of %zu batches failed (%s)", n_batches, err_str(r));
    } else if (now - last_warn_ms >= 1000) {
        LOG_W("store", "group commit of %zu batches failed (%s); retrying one by one%s", n_batches,
              err_str(r), quiet ? " (and groups failed since the last warning)" : "");
        last_warn_ms = now;
        quiet = 0;
    } else {
        quiet++;
    }
    for (store_batch_t *b = group; b; b = b->next) {
        /* A batch that failed on its own inside the group would fail again: keep its error. */
        if (b->status == 0)
            commit_alone(s, b);
    }
}

/* After a group: a storage fault met by any batch (or its commit) starts an episode, and
 * corruption is recorded (health.c). */
static void health_after_group(store_t *s, store_batch_t *group)
{
    for (store_batch_t *b = group; b; b = b->next) {
        store__health_note(s, b->status);
        if (store_err_is_fault(b->status)) {
            store__fault_begin(s, b->status);
            return;
        }
    }
}

/* During an episode, or once the database is corrupt, nothing is tried: each batch fails at
 * once (5.03 for devices). 0 when the group may be committed. */
static int refuse_group(store_t *s, store_batch_t *group, size_t n_batches)
{
    int r = store__fault_refuse(s, n_batches);
    if (r == 0)
        return 0;
    for (store_batch_t *b = group; b; b = b->next)
        b->status = r == ERR_CORRUPT ? ERR_UNAVAILABLE : r;
    return r;
}

/* A merge step that met a fault starts an episode too (the merge may be first to need a
 * page the disk has not got). */
static int merge_step(store_t *s, int64_t run, bool *active)
{
    int r = store__health_note(s, store__merge_step(s, run, active));
    store__fault_begin(s, r);
    return r;
}

static void done_trampoline(void *arg)
{
    store_batch_t *b = arg;
    if (b->done_keep) {
        b->done_keep(b->arg, b->status, b); /* the caller owns b from here */
        return;
    }
    b->done(b->arg, b->status);
    store_batch_free(b);
}

void store_set_commit_hook(store_t *s, store_commit_hook fn, void *ctx)
{
    s->commit_hook = fn;
    s->commit_hook_ctx = ctx;
}

static void complete(store_t *s, store_batch_t *b)
{
    if (b->status == 0 && s->commit_hook && b->n)
        s->commit_hook(s->commit_hook_ctx, b);
    if (!b->done && !b->done_keep) {
        store_batch_free(b);
        return;
    }
    if (b->reply_loop)
        loop_post_node(b->reply_loop, &b->post, done_trampoline, b);
    else
        done_trampoline(b);
}

/* Moves queued batches onto the group while it stays within batch_max_ops. q_mu held. */
static void take(store_t *s, store_batch_t **head, store_batch_t **tail, size_t *n_batches,
                 size_t *n_ops)
{
    while (s->q_head) {
        store_batch_t *b = s->q_head;
        if (*n_batches > 0 && *n_ops + b->n > s->cfg.batch_max_ops)
            break;
        s->q_head = b->next;
        if (!s->q_head)
            s->q_tail = NULL;
        s->q_ops -= b->n;
        b->next = NULL;
        if (*tail)
            (*tail)->next = b;
        else
            *head = b;
        *tail = b;
        (*n_batches)++;
        *n_ops += b->n;
    }
}

/* Merge policy (merge.c). The log absorbs bursts and is merged in runs of cfg.merge_run_rows
 * (more points of a device per page write the larger the run: at 1000 devices, runs of 64k
 * instead of 32k points wrote ~45 % fewer WAL frames and cut the writer's and the checkpoint
 * thread's CPU per point by ~20 and ~30 %, performance pass 4; REST history scans the log,
 * which bounds it). Once the log holds a run,
 * the writer spends a time budget on merge steps after each group commit: LOG_BUDGET_MS,
 * plus as much again for every further run waiting, up to LOG_BUDGET_MAX_MS — so a light
 * backlog costs each commit cycle about a millisecond (latency) and a heavy one gets the
 * time it needs (under sustained overload the merge keeps pace and the log stays bounded).
 * After LOG_IDLE_MS without a batch it merges back to back. Steps are small (merge.c). */
enum { LOG_BUDGET_MS = 1, LOG_BUDGET_MAX_MS = 40, LOG_IDLE_MS = 200 };

static void merge_some(store_t *s)
{
    bool active = s->merge_active;
    int64_t rows = atomic_load(&s->log_rows);
    int64_t run = s->cfg.merge_run_rows;
    if ((!active && rows < run) || atomic_load(&s->h_fault) != 0)
        return;
    int64_t budget = LOG_BUDGET_MS * (rows > run ? rows / run : 1);
    if (budget > LOG_BUDGET_MAX_MS)
        budget = LOG_BUDGET_MAX_MS;
    int64_t until = clock_mono_us() + budget * 1000;
    do {
        if (merge_step(s, run, &active) != 0)
            return;
    } while (active && clock_mono_us() < until);
}

/* Merges runs until the log is empty or STORE_STOP_MERGE_MS have passed; a run under way
 * is finished (a run cut short is safe as well, but leaves its applied rows in both tables
 * until the next merge). Writer thread, after the last commit. */
static void merge_at_close(store_t *s)
{
    if (atomic_load(&s->h_fault) != 0)
        return; /* a storage fault: merging needs the space it waits for */
    int64_t until = clock_mono_ms() + STORE_STOP_MERGE_MS;
    bool active = s->merge_active;
    while (active || atomic_load(&s->log_rows) > 0) {
        if (!active && clock_mono_ms() >= until)
            break;
        if (merge_step(s, s->cfg.merge_run_rows, &active) != 0)
            return;
    }
    int64_t left = atomic_load(&s->log_rows);
    if (left > 0)
        LOG_I("store",
              "%lld telemetry points left in the log at close after %d ms of merging "
              "(readable as they are; the next start merges them)",
              (long long)left, STORE_STOP_MERGE_MS);
}

/* Waits for a batch; once LOG_IDLE_MS pass without one, merges the log slice by slice,
 * looking for batches between slices, and then hands the idle writer's memory back: its
 * page cache (refilled by the next commits) and the free pages of the heap, so a server whose
 * load has stopped returns to its resting size. q_mu held. */
static void wait_for_work(store_t *s)
{
    bool merge_failed = false; /* (logged) then wait for the next batch, not in a loop */
    bool idle = false;
    while (!s->q_head && !s->closing) {
        /* A storage fault: no merging (it needs the space waited for), a probe when due. */
        int64_t probe_in = store__fault_probe_in(s);
        if (probe_in > 0) {
            struct timespec dl;
            clock_mono_deadline(&dl, probe_in);
            pthread_cond_timedwait(&s->q_cv, &s->q_mu, &dl);
            continue;
        }
        if (probe_in == 0) {
            pthread_mutex_unlock(&s->q_mu);
            store__fault_probe(s);
            pthread_mutex_lock(&s->q_mu);
            continue;
        }
        if (!idle) {
            struct timespec dl;
            clock_mono_deadline(&dl, LOG_IDLE_MS);
            idle = pthread_cond_timedwait(&s->q_cv, &s->q_mu, &dl) == ETIMEDOUT;
            continue;
        }
        if (atomic_load(&s->log_rows) == 0 || merge_failed || s->be->log_merge) {
            if (!s->memory_released) {
                pthread_mutex_unlock(&s->q_mu);
                s->be->release(s->db);          /* SQLite: its page cache */
                store__merge_release(s->merge); /* a run's rows: ~2.4 MB at 32k */
                store__latest_release(s);
                malloc_trim(0);
                pthread_mutex_lock(&s->q_mu);
                s->memory_released = true;
                continue;
            }
            pthread_cond_wait(&s->q_cv, &s->q_mu);
            continue;
        }
        pthread_mutex_unlock(&s->q_mu);
        bool active = false;
        merge_failed = merge_step(s, s->cfg.merge_run_rows, &active) != 0;
        pthread_mutex_lock(&s->q_mu);
    }
    s->memory_released = false;
}

static void *writer_main(void *arg)
{
    store_t *s = arg;
    size_t last_group = 0; /* batches in the previous group: our measure of current load */
    pthread_mutex_lock(&s->q_mu);
    for (;;) {
        wait_for_work(s);
        if (!s->q_head)
            break; /* closing and drained */
        if (store__fault_probe_in(s) == 0) { /* batches keep coming during an episode */
            pthread_mutex_unlock(&s->q_mu);
            store__fault_probe(s);
            pthread_mutex_lock(&s->q_mu);
        }
        store_batch_t *head = NULL, *tail = NULL;
        size_t n_batches = 0, n_ops = 0;
        take(s, &head, &tail, &n_batches, &n_ops);
        /* Several batches waiting, but fewer than in the last group, means writers are busy
         * and some of them have not caught up yet: give them up to batch_max_delay_ms to
         * join. A lone batch is committed at once (latency), and so is a group as large as
         * the last one (waiting would only idle: its writers are blocked on us). */
        if (n_batches > 1 && n_batches < last_group && n_ops < s->cfg.batch_max_ops &&
            s->cfg.batch_max_delay_ms > 0 && !s->closing) {
            struct timespec dl;
            clock_mono_deadline(&dl, s->cfg.batch_max_delay_ms);
            while (n_batches < last_group && n_ops < s->cfg.batch_max_ops && !s->closing) {
                if (pthread_cond_timedwait(&s->q_cv, &s->q_mu, &dl) == ETIMEDOUT)
                    break;
                take(s, &head, &tail, &n_batches, &n_ops);
                if (s->q_head)
                    break; /* group is full */
            }
            take(s, &head, &tail, &n_batches, &n_ops);
        }
        pthread_mutex_unlock(&s->q_mu);
        last_group = n_batches;

        bool refused = refuse_group(s, head, n_batches) != 0;
        if (!refused) {
            commit_group(s, head, n_batches);
            health_after_group(s, head);
        }
        while (head) {
            store_batch_t *next = head->next;
            complete(s, head);
            head = next;
        }
        if (refused || atomic_load(&s->h_fault) != 0) {
            pthread_mutex_lock(&s->q_mu);
            continue;
        }
        /* SQLite: restarts the WAL once it is copied, and reports a checkpoint that cannot
         * write the database file (an immutable file, a full disk): a fault too. */
        store__fault_begin(s, s->be->tidy(s->db));
        if (s->be->log_merge)
            store__merge_db_kick(s); /* the database merges, on a thread of its own */
        else
            merge_some(s); /* after the acknowledgements: they do not wait for it */
        pthread_mutex_lock(&s->q_mu);
    }
    pthread_mutex_unlock(&s->q_mu);
    /* Leave a merged database behind if it is quick (merge_db.c does it for a database that
     * merges); a restart merges the rest. */
    if (!s->be->log_merge)
        merge_at_close(s);
    store__merge_free(s->merge);
    s->merge = NULL;
    store__keycache_free(&s->keys);
    free(s->dev_known);
    s->dev_known = NULL;
    s->dev_known_words = 0;
    return NULL;
}

int store__writer_start(store_t *s)
{
    store__keycache_init(&s->keys); /* freed by the writer when it stops */
    pthread_cond_destroy(&s->q_cv);
    clock_cond_init(&s->q_cv);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0)
        return -EAGAIN;
    pthread_setname_np(s->writer, "coaphub-writer");
    s->writer_started = true;
    return 0;
}

void store__writer_stop(store_t *s)
{
    if (!s->writer_started)
        return;
    pthread_mutex_lock(&s->q_mu);
    s->closing = true;
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
    pthread_join(s->writer, NULL);
    s->writer_started = false;
}

static void enqueue(store_t *s, store_batch_t *b, loop_t *reply_loop, store_done_cb done,
                    store_done_keep_cb done_keep, void *arg)
{
    ASSERT(s != NULL && b != NULL);
    b->reply_loop = reply_loop;
    b->done = done;
    b->done_keep = done_keep;
    b->arg = arg;
    b->status = 0;
    b->next = NULL;
    pthread_mutex_lock(&s->q_mu);
    ASSERT(!s->closing); /* submitting into a closing store is a wiring bug */
    if (s->q_tail)
        s->q_tail->next = b;
    else
        s->q_head = b;
    s->q_tail = b;
    s->q_ops += b->n;
    pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

void store_submit(store_t *s, store_batch_t *b, loop_t *reply_loop, store_done_cb done,
                  void *arg)
{
    enqueue(s, b, reply_loop, done, NULL, arg);
}

void store_submit_keep(store_t *s, store_batch_t *b, loop_t *reply_loop,
                       store_done_keep_cb done, void *arg)
{
    ASSERT(done != NULL);
    enqueue(s, b, reply_loop, NULL, done, arg);
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
} waiter_t;

static void wake(void *arg, int status)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int store_submit_wait(store_t *s, store_batch_t *b)
{
    waiter_t w = {.done = false, .status = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    store_submit(s, b, NULL, wake, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return w.status;
}
