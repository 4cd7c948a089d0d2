/* log.c — the telemetry log, the writer's side: a group commit's points are appended to the
 * log (ts_kv_log, migration 2) STORE_MULTI per statement, and each point's latest value is
 * staged (latest.c) with its position in the log; at open the log's rows are counted and
 * their latest values rebuilt; deletes announce themselves here before they run.
 *
 * Why a log and why groups of STORE_MULTI: merge.c and the backend's point statements
 * (sqlite_points.c) give the measurements. Rows are appended in order, so within a group a
 * later point of the same (device, key) meets the earlier one exactly as with one statement
 * per point.
 *
 * Invariant: a point's latest value is staged only once its row is in the log, in the
 * writer's open transaction; the writer drops what was staged if that transaction (or the
 * batch's savepoint) is rolled back, and publishes it when it commits (writer.c).
 *
 * Not here: moving the log into ts_kv (merge.c), and any statement (the backend's log ops,
 * backend.h).
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdlib.h>

int store__log_flush(store_t *s, store_points_t *pp)
{
    if (pp->n == 0)
        return 0;
    int r = s->be->log_append(s->db, pp);
    if (r == 0) {
        for (size_t i = 0; i < pp->n; i++)
            store__latest_stage(s, pp->row[i].device_id, pp->row[i].key_id, pp->row[i].seq,
                                pp->row[i].kv);
    }
    pp->n = 0;
    return r;
}

int store__log_add(store_t *s, store_points_t *pp, int64_t device_id, int64_t key_id,
                   const store_kv_t *kv)
{
    pp->row[pp->n].device_id = device_id;
    pp->row[pp->n].key_id = key_id;
    pp->row[pp->n].kv = kv;
    pp->n++;
    return pp->n == STORE_MULTI ? store__log_flush(s, pp) : 0;
}

int store__log_point(store_t *s, int64_t device_id, int64_t key_id, const store_kv_t *kv)
{
    store_points_t pp; /* one row: not zeroed, the rest of it is never read */
    pp.n = 1;
    pp.row[0].device_id = device_id;
    pp.row[0].key_id = key_id;
    pp.row[0].kv = kv;
    return store__log_flush(s, &pp);
}

void store__log_deleting(store_t *s)
{
    atomic_fetch_add(&s->log_deletes, 1);
}

/* Seqs per read while rebuilding the latest values: bounded memory however long the log. */
enum { LOAD_CHUNK = 1024 };

/* The entries of the points left in the log (latest.c's invariant: the log is durable, so a
 * crash loses no latest value). Before the writer starts: nobody else holds latest_mu. */
static int latest_rebuild(store_t *s)
{
    int64_t first, last;
    int r = s->be->log_bounds(s->db, &first, &last);
    if (r != 0)
        return r == -ENOENT ? 0 : r;
    store_log_rows_t rows = {0};
    for (int64_t from = first; r == 0 && from <= last; from += LOAD_CHUNK) {
        int64_t to = last - from >= LOAD_CHUNK ? from + LOAD_CHUNK - 1 : last;
        rows.n = 0;
        r = s->be->log_load(s->db, from, to, &rows);
        pthread_mutex_lock(&s->latest_mu);
        for (size_t i = 0; i < rows.n; i++) {
            const store_log_row_t *row = &rows.row[i];
            if (r == 0)
                store__latest_put_locked(s, row->device_id, row->key_id, row->seq, &row->kv);
            free(row->kv.s);
        }
        pthread_mutex_unlock(&s->latest_mu);
    }
    free(rows.row);
    return r;
}

int store__log_open(store_t *s, char err[static ERR_LEN])
{
    int64_t n = 0;
    int r = s->be->log_count(s->db, &n);
    if (r == 0) {
        atomic_store(&s->log_rows, n);
        r = latest_rebuild(s);
    }
    if (r != 0)
        snprintf(err, ERR_LEN, "store: cannot read the telemetry log: %s", s->be->errmsg(s->db));
    return r;
}
