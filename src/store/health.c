/* health.c — whether the store can take writes, and getting it back without a restart.
 *
 * A storage fault (a full disk, a read-only or immutable database, an I/O error: -ENOSPC,
 * -EROFS, -EIO) on the write path starts an EPISODE: the writer stops trying, refuses every
 * batch at once with the episode's error (devices get 5.03 + Max-Age, HTTP 503 +
 * Retry-After: api/codes.c, http/codes.c), /readyz says not ready and why, and one line is
 * logged when the episode starts and one when it ends, never one per request. On a timer
 * with backoff (cfg.probe_ms, doubling up to PROBE_BACKOFF_MAX times that) the writer probes:
 * after a full disk the disk reserve is taken back (reserve.c; the disk must have room for it
 * and as much again before it counts as recovered, so a disk that gains a few pages does not
 * flap), and a one-row write is committed and checkpointed; when that succeeds the episode
 * ends and batches flow again.
 * No point is lost: a refused batch was never acknowledged, an acknowledged one committed.
 *
 * CORRUPTION (ERR_CORRUPT from any statement, or the integrity check at open) is different:
 * it does not clear by itself. It is logged once with the recovery command, /readyz stays
 * not ready until a restart, reads that meet it fail (500), and device writes are refused
 * (5.03: the device keeps its points until an operator has recovered the database).
 *
 * Invariant: the fault fields are written by the writer thread only (h_fault is atomic so any
 * thread may read it); corruption is a one-way atomic flag.
 */
#include "store/store_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The probe interval doubles after each failed probe, up to this many times cfg.probe_ms. */
enum { PROBE_BACKOFF_MAX = 8 };

bool store_err_is_fault(int err)
{
    return err == -ENOSPC || err == -EROFS || err == -EIO;
}

bool store_err_is_outage(int err)
{
    return store_err_is_fault(err) || err == ERR_CORRUPT;
}

static const char *fault_name(int err)
{
    switch (err) {
    case -ENOSPC:
        return "disk full";
    case -EROFS:
        return "database read-only";
    case -EIO:
        return "I/O error";
    default:
        return "storage fault";
    }
}

int store__health_note(store_t *s, int r)
{
    if (r != ERR_CORRUPT)
        return r;
    bool was = atomic_exchange(&s->h_corrupt, true);
    if (!was) {
        pthread_mutex_lock(&s->stats_mu);
        s->stats.corruptions++;
        pthread_mutex_unlock(&s->stats_mu);
        if (s->be == &store__sqlite_backend)
            LOG_E("store",
                  "database %s is corrupt (a statement met a damaged page): reads that meet it "
                  "fail, device writes get 5.03 and /readyz is not ready. Stop the server and "
                  "recover: sqlite3 %s .dump | sed '$s/^ROLLBACK; -- due to errors$/COMMIT;/' "
                  "| sqlite3 %s.recovered, then move the recovered file in place "
                  "(docs/operations.md, \"Recovering a damaged database\")",
                  s->path, s->path, s->path);
        else
            LOG_E("store",
                  "database is corrupt (PostgreSQL reported data or index corruption): reads "
                  "that meet it fail, device writes get 5.03 and /readyz is not ready; see "
                  "docs/operations.md, \"Recovering a damaged database\"");
    }
    return r;
}

void store__fault_begin(store_t *s, int err)
{
    if (!store_err_is_fault(err) || atomic_load(&s->h_fault) != 0)
        return;
    s->h_since_ms = clock_mono_ms();
    s->h_refused = 0;
    s->h_probe_wait_ms = s->cfg.probe_ms;
    s->h_probe_at_ms = s->h_since_ms + s->h_probe_wait_ms;
    /* On a full disk the reserve is given back first: the merge and the checkpoint may need
     * those pages to finish what they hold, and nothing new is accepted until it is taken
     * back. Other faults leave it (a read-only file on a nearly full disk must not wait for
     * twice the reserve to be free). */
    bool released = err == -ENOSPC && store__reserve_release(s);
    s->h_released = released;
    atomic_store(&s->h_fault, err);
    pthread_mutex_lock(&s->stats_mu);
    s->stats.write_faults++;
    pthread_mutex_unlock(&s->stats_mu);
    LOG_W("store",
          "cannot write: %s (%s)%s; devices get 5.03 and /readyz is not ready until a probe "
          "write succeeds (every %lld ms at first)",
          fault_name(err), err_str(err), released ? "; disk reserve released" : "",
          (long long)s->h_probe_wait_ms);
}

int store__fault_refuse(store_t *s, size_t n_batches)
{
    int f = atomic_load(&s->h_corrupt) ? ERR_CORRUPT : atomic_load(&s->h_fault);
    if (f != 0) {
        s->h_refused += n_batches;
        pthread_mutex_lock(&s->stats_mu);
        s->stats.refused_batches += n_batches;
        pthread_mutex_unlock(&s->stats_mu);
    }
    return f;
}

int64_t store__fault_probe_in(store_t *s)
{
    if (atomic_load(&s->h_fault) == 0)
        return -1;
    int64_t d = s->h_probe_at_ms - clock_mono_ms();
    return d > 0 ? d : 0;
}

void store__fault_probe(store_t *s)
{
    int f = atomic_load(&s->h_fault);
    if (f == 0)
        return;
    int r = s->h_released ? store__reserve_take(s) : 0;
    if (r == 0) {
        char ts[24];
        snprintf(ts, sizeof ts, "%lld", (long long)clock_wall_ms());
        r = s->be->probe_write(s->db, ts);
    }
    int64_t now = clock_mono_ms();
    if (r != 0) {
        LOG_D("store", "write probe: still failing (%s)", err_str(r));
        if (s->h_probe_wait_ms < (int64_t)s->cfg.probe_ms * PROBE_BACKOFF_MAX)
            s->h_probe_wait_ms *= 2;
        s->h_probe_at_ms = now + s->h_probe_wait_ms;
        return;
    }
    atomic_store(&s->h_fault, 0);
    LOG_I("store", "writes work again after %.1f s (%s; %llu batches refused with 5.03 meanwhile)",
          (double)(now - s->h_since_ms) / 1000.0, fault_name(f), (unsigned long long)s->h_refused);
}

const char *store_unready_reason(store_t *s)
{
    if (atomic_load(&s->h_corrupt))
        return "database corrupt";
    int f = atomic_load(&s->h_fault);
    if (f != 0)
        return fault_name(f);
    return NULL;
}
