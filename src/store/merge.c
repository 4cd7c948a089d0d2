/* merge.c — the merge of the telemetry log (ts_kv_log, migration 2; log.c) into ts_kv.
 *
 * Why: ts_kv is ordered by (device_id, key_id, ts), so a group commit of N devices' points
 * dirtied about N B-tree pages, all written to the WAL and fsynced: at 1000 devices the
 * writer spent most of its time writing pages, and throughput fell as ts_kv grew
 * (docs/BENCHMARKS.md, performance passes 1 and 2). Points are now appended to ts_kv_log
 * (rowid order: a few pages per commit) and moved into ts_kv in sorted runs, so one page
 * write carries many points of a device (measured: ~1.5 µs per point for a 24k-point run
 * against ~4.6 µs for 4k-point runs, and ~10 µs when every commit wrote ts_kv directly).
 *
 * A run is merged in small steps the writer takes between group commits, so no commit waits
 * long behind a merge: LOADING reads the next LOAD_CHUNK log rows (in seq order) into memory;
 * once the run is loaded it is sorted; APPLYING then moves APPLY_CHUNK rows per transaction
 * (STORE_MULTI rows per statement, backend.h; SQLite's writer connection has no foreign-key
 * checks, sqlite.c), with the newest point of each (device, key) into ts_kv_latest, and at
 * the end drops the in-memory latest values the run covered (latest.c); DELETING removes
 * the run from the log, DELETE_CHUNK rows (in seq order) per transaction.
 *
 * Invariants: a chunk is inserted into ts_kv (an upsert: applying a point twice changes nothing)
 * and the run's rows leave the log with its last chunk, so until then a point may be in both
 * tables with the same value — readers (sqlite_history.c) let the log win on equal ts, and a
 * crash only means the run is applied again. Deleting from the bottom of the run keeps its top
 * row, so no new row can take a seq inside the run (rowids grow from the largest) — unless a
 * delete removed the log's top rows: then the deleting stops and what is left of the run is
 * merged again later (an upsert of the same values). Points of the same (device, key, ts) are
 * applied in log order, so the last write wins as it did before. A merge never brings back
 * deleted data: whoever deletes points or devices bumps s->log_deletes before its transaction
 * (store__log_deleting), and a run loaded before a bump is dropped unapplied; the check runs
 * inside the merge's write transaction, so a delete is either seen or ordered after the merge
 * (and then deletes what the merge wrote).
 */
#include "store/store_int.h"

#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Step sizes: each step well under a millisecond or two, since a group commit that arrives
 * during a step waits for it (measured: deleting a whole 32k-row run at once took 5-10 ms and
 * was most of the p99 acknowledgement latency at half load). */
enum { LOAD_CHUNK = 1024, APPLY_CHUNK = 256, DELETE_CHUNK = 4096 };

struct store_merge {
    enum { M_IDLE, M_LOADING, M_APPLYING, M_DELETING } phase;
    store_log_rows_t rows; /* the run's rows (kv.s owned), sorted once loaded */
    size_t applied;
    int64_t first_seq, next_seq, last_seq; /* the run is [first, last]; LOADING reads next..,
                                            * DELETING deletes from next.. */
    int64_t deletes; /* s->log_deletes when the run started */
};

static void run_free(store_merge_t *m)
{
    for (size_t i = 0; i < m->rows.n; i++)
        free(m->rows.row[i].kv.s);
    m->rows.n = m->applied = 0;
    m->phase = M_IDLE;
}

void store__merge_release(store_merge_t *m)
{
    if (!m || m->phase != M_IDLE)
        return;
    free(m->rows.row);
    m->rows.row = NULL;
    m->rows.cap = 0;
}

void store__merge_free(store_merge_t *m)
{
    if (!m)
        return;
    run_free(m);
    free(m->rows.row);
    free(m);
}

static int cmp_rows(const void *a, const void *b)
{
    const store_log_row_t *x = a, *y = b;
#define CMP(f)                                                                                \
    if (x->f != y->f)                                                                         \
        return x->f < y->f ? -1 : 1;
    CMP(device_id)
    CMP(key_id)
    CMP(kv.ts)
    CMP(seq)
#undef CMP
    return 0;
}

/* Starts a run of at most run_rows of the oldest log rows. 0 with phase still M_IDLE when the
 * log is empty. */
static int start_run(store_t *s, store_merge_t *m, int64_t run_rows)
{
    int r = s->be->log_bounds(s->db, &m->next_seq, &m->last_seq);
    if (r == -ENOENT) {
        atomic_store(&s->log_rows, 0); /* device deletes may have taken rows */
        return 0;
    }
    if (r != 0)
        return r;
    if (m->last_seq - m->next_seq >= run_rows)
        m->last_seq = m->next_seq + run_rows - 1;
    m->first_seq = m->next_seq;
    m->deletes = atomic_load(&s->log_deletes);
    m->phase = M_LOADING;
    return 0;
}

static int load_step(store_t *s, store_merge_t *m)
{
    int64_t to = m->last_seq - m->next_seq >= LOAD_CHUNK ? m->next_seq + LOAD_CHUNK - 1
                                                         : m->last_seq;
    int r = s->be->log_load(s->db, m->next_seq, to, &m->rows);
    if (r != 0)
        return r;
    m->next_seq = to + 1;
    if (m->next_seq > m->last_seq) {
        /* A run may load no row at all: a delete between finding its bounds and loading it
         * took them (rows is NULL then, freed by an idle writer). */
        if (m->rows.n > 1)
            qsort(m->rows.row, m->rows.n, sizeof(*m->rows.row), cmp_rows);
        m->phase = M_APPLYING;
    }
    return 0;
}

/* A merge step's transaction: lazy (backend.h), as a merge only moves points that are
 * durable already; the step's statements, then COMMIT, or ROLLBACK on error. */
static int end_step(store_t *s, int r)
{
    if (r == 0)
        r = s->be->transact(s->db, STORE_TX_COMMIT);
    if (r != 0)
        s->be->transact(s->db, STORE_TX_ROLLBACK);
    return r;
}

/* 1 when the run was dropped because points or devices were deleted since it was loaded. */
static int apply_step(store_t *s, store_merge_t *m)
{
    int r = s->be->transact(s->db, STORE_TX_BEGIN_LAZY);
    bool stale = r == 0 && atomic_load(&s->log_deletes) != m->deletes;
    size_t end = m->applied + APPLY_CHUNK < m->rows.n ? m->applied + APPLY_CHUNK : m->rows.n;
    /* STORE_MULTI rows per statement (backend.h), in sorted order */
    store_points_t pp;
    pp.n = 0;
    for (size_t i = m->applied; r == 0 && !stale && i < end; i++) {
        const store_log_row_t *row = &m->rows.row[i];
        pp.row[pp.n].device_id = row->device_id;
        pp.row[pp.n].key_id = row->key_id;
        pp.row[pp.n].kv = &row->kv;
        if (++pp.n == STORE_MULTI || i + 1 == end) {
            r = s->be->kv_upsert(s->db, &pp);
            pp.n = 0;
        }
        /* The run's newest point of a (device, key) is the last of its rows (sorted by ts,
         * then seq): its latest value, once per run (latest.c). */
        const store_log_row_t *next = i + 1 < m->rows.n ? &m->rows.row[i + 1] : NULL;
        if (r == 0 &&
            (!next || next->device_id != row->device_id || next->key_id != row->key_id))
            r = s->be->latest_upsert(s->db, row->device_id, row->key_id, &row->kv);
    }
    if ((r = end_step(s, r)) != 0)
        return r;
    if (stale) {
        run_free(m); /* the rows still in the log are loaded again, fresh */
        return 1;
    }
    m->applied = end;
    if (m->applied == m->rows.n) {
        /* Every point of the run is in ts_kv and its newest values in ts_kv_latest. Points
         * committed while the run was applied have larger seqs (a delete that could let
         * them reuse seqs inside the run made it stale), so the entries dropped are the
         * run's. */
        store__latest_sweep(s, m->last_seq);
        for (size_t i = 0; i < m->rows.n; i++)
            free(m->rows.row[i].kv.s);
        m->rows.n = m->applied = 0;
        m->next_seq = m->first_seq;
        m->phase = M_DELETING;
    }
    return 0;
}

/* Deletes the next slice of the merged run from the log; at the end the run is done. */
static int delete_step(store_t *s, store_merge_t *m)
{
    int64_t to = m->last_seq - m->next_seq >= DELETE_CHUNK ? m->next_seq + DELETE_CHUNK - 1
                                                           : m->last_seq;
    int r = s->be->transact(s->db, STORE_TX_BEGIN_LAZY);
    /* After a delete the log's top rows may be gone and their seqs reused by new rows (see
     * the invariants): stop; the rest of the run stays in the log and is merged again. */
    bool stale = r == 0 && atomic_load(&s->log_deletes) != m->deletes;
    if (r == 0 && !stale)
        r = s->be->log_remove(s->db, m->next_seq, to);
    if ((r = end_step(s, r)) != 0)
        return r;
    int64_t gone = stale ? 0 : to - m->next_seq + 1;
    int64_t now = atomic_load(&s->log_rows) - gone;
    atomic_store(&s->log_rows, now > 0 ? now : 0);
    m->next_seq = to + 1;
    if (stale || m->next_seq > m->last_seq)
        run_free(m);
    return 0;
}

void (*store__merge_test_hook)(bool deleting);

int store__merge_step(store_t *s, int64_t run_rows, bool *active)
{
    if (!s->merge)
        s->merge = xcalloc(1, sizeof(*s->merge));
    store_merge_t *m = s->merge;
    int r = 0;
    if (m->phase == M_IDLE)
        r = start_run(s, m, run_rows);
    if (r == 0 && m->phase == M_LOADING)
        r = load_step(s, m);
    else if (r == 0 && m->phase == M_APPLYING)
    {
        int k = apply_step(s, m);
        r = k < 0 ? k : 0;
    } else if (r == 0 && m->phase == M_DELETING)
        r = delete_step(s, m);
    if (r != 0) {
        /* Nothing was lost (the log keeps every row not moved); start over later. A storage
         * fault or corruption is the writer's to report, once (health.c). */
        if (store_err_is_outage(r))
            LOG_D("store", "merging the telemetry log failed: %s", err_str(r));
        else
            LOG_W("store", "merging the telemetry log failed: %s (the points stay in the log)",
                  err_str(r));
        run_free(m);
    }
    *active = s->merge_active = m->phase != M_IDLE;
    if (store__merge_test_hook)
        store__merge_test_hook(m->phase == M_DELETING);
    return r;
}

int store__merge_all(store_t *s)
{
    for (;;) {
        bool active = false;
        int r = store__merge_step(s, INT64_MAX / 2, &active);
        if (r != 0 || (!active && atomic_load(&s->log_rows) == 0))
            return r;
    }
}
