/* merge_db.c — the merge of the telemetry log when the database does it (backend.h
 * log_merge; PostgreSQL): a thread of its own, on the backend's own connection, beside the
 * writer instead of between its group commits.
 *
 * Why a thread: each step is one statement set inside the database, and the database runs it
 * on its own CPU while the writer goes on committing: on the writer thread, every step held up
 * the group commits behind it (p99 250-450 ms at 1000 devices, and fewer commits per second,
 * docs/BENCHMARKS.md issue 13). merge.c's load-sort-apply runs stay for SQLite, where a second
 * writing connection would only wait for the same lock.
 *
 * When: once MERGE_KICK_ROWS points wait in the log (the writer kicks after its commits), and
 * after MERGE_IDLE_MS without a kick whenever any wait, so an idle server's log empties as
 * SQLite's does; at stop, what is left is merged before the backend closes. Steps are large
 * (MERGE_STEP_ROWS): each series' latest value is upserted once per step, so a larger step
 * spreads that over more points, and beside the writer a step's length delays no commit
 * (65536-point steps after 16384-point kicks: ~75k instead of ~64k points/s at 1000 devices,
 * PostgreSQL's CPU per request -14 %).
 *
 * Invariant: a step merges the rows committed when it starts, up to a seq `through`; every
 * row the writer has not committed yet has a larger seq (seqs grow with each commit), so the
 * in-memory latest values of seqs <= through are in ts_kv_latest when the step commits and
 * are dropped then (latest.c). A delete of devices or points is ordered against the step by
 * the backend (backend.h), so no step writes back what a delete removed.
 */
#include "store/store_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <time.h>

enum { MERGE_STEP_ROWS = 65536, MERGE_KICK_ROWS = 16384, MERGE_IDLE_MS = 200, RETRY_MS = 1000 };

static void wait_ms(store_t *s, int64_t ms)
{
    struct timespec dl;
    clock_mono_deadline(&dl, ms);
    pthread_cond_timedwait(&s->mg_cv, &s->mg_mu, &dl);
}

/* One step of at most max_rows; the rows it moved (0: the log was empty), or a negative
 * error. */
static int64_t step(store_t *s, int64_t max_rows)
{
    if (store__merge_test_hook)
        store__merge_test_hook(true); /* rows are about to leave the log */
    int64_t through = 0, moved = 0;
    int r = s->be->log_merge(s->db, max_rows, &through, &moved);
    if (r != 0)
        return r;
    if (moved > 0)
        store__latest_sweep(s, through);
    int64_t now = moved > 0 ? atomic_load(&s->log_rows) - moved : 0;
    atomic_store(&s->log_rows, now > 0 ? now : 0);
    return moved;
}

static void *merge_main(void *arg)
{
    store_t *s = arg;
    int64_t last_log_ms = 0;
    pthread_mutex_lock(&s->mg_mu);
    while (!s->mg_stop) {
        int64_t rows = atomic_load(&s->log_rows);
        /* No merging during a storage fault: it needs the space the episode waits for. */
        bool due = (rows >= MERGE_KICK_ROWS || (rows > 0 && s->mg_idle)) &&
                   atomic_load(&s->h_fault) == 0;
        if (!due) {
            s->mg_kicked = false;
            wait_ms(s, MERGE_IDLE_MS);
            s->mg_idle = !s->mg_kicked; /* no kick for MERGE_IDLE_MS: merge the rest */
            continue;
        }
        pthread_mutex_unlock(&s->mg_mu);
        int64_t moved = step(s, MERGE_STEP_ROWS);
        pthread_mutex_lock(&s->mg_mu);
        if (moved < 0) {
            int64_t now = clock_mono_ms();
            if (now - last_log_ms >= 10000 && !store_err_is_outage((int)moved)) {
                LOG_W("store",
                      "merging the telemetry log failed: %s (the points stay in the "
                      "log; trying again every second)",
                      err_str((int)moved));
                last_log_ms = now;
            }
            wait_ms(s, RETRY_MS);
        } else if (moved == 0) {
            s->mg_idle = false;
        }
    }
    pthread_mutex_unlock(&s->mg_mu);
    /* Leave a merged database behind if it is quick (a restart merges the rest): at most
     * STORE_STOP_MERGE_MS, each step one transaction, smaller steps than at work so the last
     * one does not run far past the deadline on a loaded machine (a full step took ~3 s
     * there); a failing database stops it at the first error. */
    int64_t until = clock_mono_ms() + STORE_STOP_MERGE_MS;
    while (clock_mono_ms() < until)
        if (step(s, MERGE_STEP_ROWS / 8) <= 0)
            break;
    int64_t left = atomic_load(&s->log_rows);
    if (left > 0)
        LOG_I("store",
              "%lld telemetry points left in the log at close after %d ms of merging "
              "(readable as they are; the next start merges them)",
              (long long)left, STORE_STOP_MERGE_MS);
    return NULL;
}

int store__merge_db_start(store_t *s)
{
    if (!s->be->log_merge)
        return 0;
    pthread_mutex_init(&s->mg_mu, NULL);
    clock_cond_init(&s->mg_cv);
    s->mg_idle = true; /* a log left by a crash or a stop is merged at once */
    if (pthread_create(&s->mg_thread, NULL, merge_main, s) != 0) {
        pthread_cond_destroy(&s->mg_cv);
        pthread_mutex_destroy(&s->mg_mu);
        return -EAGAIN;
    }
    pthread_setname_np(s->mg_thread, "coaphub-merge");
    s->mg_started = true;
    return 0;
}

void store__merge_db_kick(store_t *s)
{
    if (!s->mg_started || atomic_load(&s->log_rows) < MERGE_KICK_ROWS)
        return;
    pthread_mutex_lock(&s->mg_mu);
    s->mg_kicked = true;
    pthread_cond_signal(&s->mg_cv);
    pthread_mutex_unlock(&s->mg_mu);
}

void store__merge_db_stop(store_t *s)
{
    if (!s->mg_started)
        return;
    pthread_mutex_lock(&s->mg_mu);
    s->mg_stop = true;
    pthread_cond_signal(&s->mg_cv);
    pthread_mutex_unlock(&s->mg_mu);
    pthread_join(s->mg_thread, NULL);
    pthread_cond_destroy(&s->mg_cv);
    pthread_mutex_destroy(&s->mg_mu);
    s->mg_started = false;
}
