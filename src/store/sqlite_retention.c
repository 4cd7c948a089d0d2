/* sqlite_retention.c — the SQLite backend's retention step (backend.h ts_expire): deletes the
 * expired points of one series (device, key) at a time, at most EXPIRE_STEP rows per
 * transaction, so the writer, which needs the same write lock, waits at most one short
 * delete.
 *
 * Why series by series: ts_kv is ordered by (device_id, key_id, ts), so a series' expired
 * points are the start of its range and a delete of them is one range of the B-tree; a
 * delete by ts alone would scan the whole table every step. A cursor (the last series
 * visited) carries the walk from one step to the next; a walk ends when no series is left
 * after it, and the next run starts over.
 *
 * Invariant: the cursor is the retention thread's alone (retention.c calls ts_expire from
 * that thread only).
 */
#include "store/sqlite_int.h"

#include <errno.h>

enum { EXPIRE_STEP = 4096 };

/* The series after (dev, key) in ts_kv order: 0, or -ENOENT after the last. */
static int next_series(store_conn_t *c, int64_t *dev, int64_t *key)
{
    sqlite3_stmt *st = store__stmt(c,
                                   "SELECT device_id, key_id FROM ts_kv"
                                   " WHERE (device_id, key_id) > (?1, ?2)"
                                   " ORDER BY device_id, key_id LIMIT 1");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, *dev);
    sqlite3_bind_int64(st, 2, *key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *dev = sqlite3_column_int64(st, 0);
        *key = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOENT : store__err(c->db, rc);
}

/* Deletes up to EXPIRE_STEP of the series' oldest points below cutoff; *n: how many. */
static int expire_series(store_conn_t *c, int64_t dev, int64_t key, int64_t cutoff, int64_t *n)
{
    /* The bound is the EXPIRE_STEP-th oldest expired point, or the cutoff when fewer. */
    sqlite3_stmt *st = store__stmt(
        c,
        "DELETE FROM ts_kv WHERE device_id = ?1 AND key_id = ?2 AND ts < ?3 AND ts <="
        " COALESCE((SELECT ts FROM ts_kv WHERE device_id = ?1 AND key_id = ?2 AND ts < ?3"
        " ORDER BY ts LIMIT 1 OFFSET ?4), ?3)");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, dev);
    sqlite3_bind_int64(st, 2, key);
    sqlite3_bind_int64(st, 3, cutoff);
    sqlite3_bind_int64(st, 4, EXPIRE_STEP - 1);
    int r = store__step_done(c, st);
    *n = r == 0 ? sqlite3_changes(c->db) : 0;
    return r;
}

int store__sqlite_ts_expire(store_db_t *db, int64_t cutoff_ms, int64_t *removed, bool *more)
{
    store_sqlite_t *q = store__sq(db);
    *removed = 0;
    *more = false;
    store_conn_t *c = store__conn_take(q);
    int64_t dev = q->ttl_dev, key = q->ttl_key;
    int r = q->ttl_in_series ? 0 : next_series(c, &dev, &key);
    if (r == -ENOENT) { /* the walk is over */
        q->ttl_dev = q->ttl_key = 0;
        store__conn_give(q, c);
        return 0;
    }
    if (r == 0)
        r = store__exec(c, "BEGIN IMMEDIATE");
    if (r == 0) {
        r = expire_series(c, dev, key, cutoff_ms, removed);
        if (r == 0)
            r = store__exec(c, "COMMIT");
    }
    store__conn_give(q, c); /* rolls back what failed */
    if (r != 0) {
        *removed = 0;
        return r;
    }
    /* A full step may have left more of this series; otherwise on to the next one. */
    q->ttl_dev = dev;
    q->ttl_key = key;
    q->ttl_in_series = *removed == EXPIRE_STEP;
    *more = true;
    return 0;
}
