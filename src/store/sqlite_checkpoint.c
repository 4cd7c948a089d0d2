/* sqlite_checkpoint.c — copies the WAL back into the database file on a thread of its own.
 *
 * Why: SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so
 * the writer thread — and every device waiting for its acknowledgement — paid for writing
 * thousands of pages into the database file and fsyncing it. Here PASSIVE checkpoints run
 * beside the writer (they never block it) every CKPT_PERIOD_MS while the WAL has grown. The
 * writer keeps a high automatic threshold (sqlite_db.c) as a backstop should this thread fall
 * behind, so the WAL stays bounded either way.
 *
 * A WAL starts over from its beginning only when a write transaction begins with every frame
 * copied, which under steady writes this thread never sees (the writer appends meanwhile):
 * the WAL grew to the backstop and the writer's own checkpoint there (writing and fsyncing
 * what had piled up) stalled commits for 5-15 ms every half second at 1000 devices. So after
 * a pass that copied everything it found, this thread tells the writer, which copies the few
 * frames added since (the database was just fsynced: cheap) and restarts the WAL
 * (sqlite_write.c, store__sqlite_tidy, which the writer calls after each group).
 *
 * Invariant: this thread owns its connection; it stops (and joins) before the store closes.
 */
#include "store/sqlite_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <time.h>

/* Short passes: a pass copies what 10 ms of commits wrote (the WAL takes ~100 MB/s at 1000
 * devices), so the writer's catch-up before a WAL restart stays small (measured: 5 ms
 * instead of 15 ms at 100 ms periods). An idle pass only reads the WAL index header.
 *
 * Disk: SQLite keeps the WAL file at its largest size when it restarts it, so under load it
 * stays at up to WAL_RESTART_FRAMES (48 MiB, sqlite_write.c) however small the database
 * (measured: 1.02 M points in 34 MB of database beside 8-48 MB of WAL). Once the WAL is
 * copied whole and has not grown for CKPT_TRUNCATE_IDLE_MS, a TRUNCATE checkpoint gives the
 * file back (0 bytes). It needs the write lock and no reader in the WAL, so its busy handler
 * is off: anyone in the way means BUSY and another try later, and the writer waits at most
 * for the truncation itself (an ftruncate and an fsync). */
enum { CKPT_PERIOD_MS = 10, CKPT_TRUNCATE_IDLE_MS = 1000 };

/* The WAL is all copied and quiet: truncate it (see above). */
static void truncate_when_idle(store_sqlite_t *q, int frames, int64_t *quiet_since,
                               int *last_frames)
{
    int64_t now = clock_mono_ms();
    if (frames != *last_frames) {
        *last_frames = frames;
        *quiet_since = now;
        return;
    }
    if (frames == 0 || now - *quiet_since < CKPT_TRUNCATE_IDLE_MS)
        return;
    sqlite3_busy_timeout(q->ckpt_conn.db, 0);
    int rc = sqlite3_wal_checkpoint_v2(q->ckpt_conn.db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                       NULL);
    sqlite3_busy_timeout(q->ckpt_conn.db, STORE_BUSY_TIMEOUT_MS);
    if (rc == SQLITE_OK) {
        LOG_D("store", "checkpoint: idle WAL of %d frames truncated", frames);
        *last_frames = 0;
    }
    *quiet_since = now; /* BUSY: again after another quiet period */
}

static void *checkpoint_main(void *arg)
{
    store_sqlite_t *q = arg;
    int last_log = 0;
    int last_frames = -1;
    int64_t quiet_since = clock_mono_ms();
    pthread_mutex_lock(&q->ckpt_mu);
    while (!q->ckpt_stop) {
        struct timespec dl;
        clock_mono_deadline(&dl, CKPT_PERIOD_MS);
        pthread_cond_timedwait(&q->ckpt_cv, &q->ckpt_mu, &dl);
        if (q->ckpt_stop)
            break;
        pthread_mutex_unlock(&q->ckpt_mu);
        /* PASSIVE copies what it can without waiting for the writer or readers. */
        int frames = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(q->ckpt_conn.db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                           &frames, &done);
        if (rc == SQLITE_OK && frames > 0 && done == frames)
            atomic_store(&q->ckpt_backfilled, frames);
        if (rc == SQLITE_OK && done == frames)
            truncate_when_idle(q, frames, &quiet_since, &last_frames);
        else
            last_frames = -1;
        /* A full disk, a read-only or immutable file, an I/O error: the writer takes it as a
         * storage fault (store__sqlite_tidy) and logs the episode once (health.c), so no line
         * of its own here. Commits into the WAL may still work meanwhile, but a WAL that is
         * never copied back grows until the disk is full. */
        int fault = rc & 0xff;
        bool quiet = fault == SQLITE_FULL || fault == SQLITE_READONLY || fault == SQLITE_IOERR ||
                     fault == SQLITE_PERM || fault == SQLITE_CANTOPEN;
        if (quiet)
            atomic_store(&q->ckpt_fault, store__err(q->ckpt_conn.db, rc));
        else if (rc == SQLITE_OK)
            atomic_store(&q->ckpt_fault, 0);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != last_log && !quiet) {
            LOG_W("store", "checkpoint: %s", sqlite3_errmsg(q->ckpt_conn.db));
            last_log = rc;
        } else if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != last_log) {
            LOG_D("store", "checkpoint: %s", sqlite3_errmsg(q->ckpt_conn.db));
            last_log = rc;
        }
        pthread_mutex_lock(&q->ckpt_mu);
    }
    pthread_mutex_unlock(&q->ckpt_mu);
    return NULL;
}

int store__checkpointer_start(store_sqlite_t *q, char err[static ERR_LEN])
{
    if (store__conn_open(q, &q->ckpt_conn, err) != 0)
        return ERR_STORE;
    pthread_mutex_init(&q->ckpt_mu, NULL);
    clock_cond_init(&q->ckpt_cv);
    q->ckpt_stop = false;
    if (pthread_create(&q->ckpt_thread, NULL, checkpoint_main, q) != 0) {
        snprintf(err, ERR_LEN, "store: cannot start the checkpoint thread");
        pthread_cond_destroy(&q->ckpt_cv);
        pthread_mutex_destroy(&q->ckpt_mu);
        store__conn_close(&q->ckpt_conn);
        return -EAGAIN;
    }
    pthread_setname_np(q->ckpt_thread, "coaphub-ckpt");
    q->ckpt_started = true;
    return 0;
}

void store__checkpointer_stop(store_sqlite_t *q)
{
    if (!q->ckpt_started)
        return;
    pthread_mutex_lock(&q->ckpt_mu);
    q->ckpt_stop = true;
    pthread_cond_signal(&q->ckpt_cv);
    pthread_mutex_unlock(&q->ckpt_mu);
    pthread_join(q->ckpt_thread, NULL);
    pthread_cond_destroy(&q->ckpt_cv);
    pthread_mutex_destroy(&q->ckpt_mu);
    store__conn_close(&q->ckpt_conn);
    q->ckpt_started = false;
}
