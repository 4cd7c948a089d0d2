/* retention.c — telemetry retention (TTL), as ThingsBoard's SQL_TTL_TS_TS_KEY_VALUE_TTL: every
 * ttl_interval_ms a thread of its own removes the points older than ts_ttl_s seconds from
 * ts_kv, through the backend's ts_expire in bounded steps (SQLite: a few thousand rows per
 * transaction; PostgreSQL: one whole partition), pausing between steps so the writer's group
 * commits never queue behind a long delete.
 *
 * What it does not remove, as ThingsBoard: latest values (ts_kv_latest keeps the last value of
 * every key however old), attributes, and points still in the telemetry log (they are
 * removed by the run after their merge). A PostgreSQL partition goes only once all of it is
 * older than the TTL, so points may outlive the TTL by up to one partition's length.
 *
 * Invariant: the thread is started by store_open only when ts_ttl_s > 0 and stopped (joined)
 * before the backend closes.
 */
#include "store/store_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <time.h>

/* The pause between two steps of one run: the writer takes its turn in between. */
enum { STEP_PAUSE_MS = 20, FIRST_RUN_DELAY_MS = 1000 };

/* Waits ms or until the store stops; false when it stops. ret_mu held. */
static bool pause_ms(store_t *s, int64_t ms)
{
    struct timespec dl;
    clock_mono_deadline(&dl, ms);
    while (!s->ret_stop && pthread_cond_timedwait(&s->ret_cv, &s->ret_mu, &dl) == 0)
        ;
    return !s->ret_stop;
}

/* One run: every step due for the cutoff now. */
static void run(store_t *s)
{
    int64_t cutoff = clock_wall_ms() - s->cfg.ts_ttl_s * 1000;
    int64_t removed = 0, steps = 0;
    bool known = true, more = true;
    while (more) {
        pthread_mutex_unlock(&s->ret_mu);
        int64_t n = -1;
        int r = s->be->ts_expire(s->db, cutoff, &n, &more);
        pthread_mutex_lock(&s->ret_mu);
        if (r != 0) {
            LOG_W("store", "retention: %s; trying again at the next run", err_str(r));
            break;
        }
        steps++;
        if (n < 0)
            known = false;
        else
            removed += n;
        if (more && n != 0 && !pause_ms(s, STEP_PAUSE_MS))
            break;
    }
    atomic_fetch_add(&s->ret_runs, 1);
    if (known && removed > 0)
        LOG_I("store", "retention: removed %lld points older than %lld s", (long long)removed,
              (long long)s->cfg.ts_ttl_s);
    else if (!known)
        LOG_D("store", "retention: %lld steps", (long long)steps);
}

static void *retention_main(void *arg)
{
    store_t *s = arg;
    pthread_mutex_lock(&s->ret_mu);
    bool go = pause_ms(s, FIRST_RUN_DELAY_MS);
    while (go) {
        run(s);
        go = pause_ms(s, s->cfg.ttl_interval_ms);
    }
    pthread_mutex_unlock(&s->ret_mu);
    return NULL;
}

int store__retention_start(store_t *s)
{
    if (s->cfg.ts_ttl_s <= 0 || !s->be->ts_expire)
        return 0;
    pthread_mutex_init(&s->ret_mu, NULL);
    clock_cond_init(&s->ret_cv);
    if (pthread_create(&s->ret_thread, NULL, retention_main, s) != 0) {
        pthread_cond_destroy(&s->ret_cv);
        pthread_mutex_destroy(&s->ret_mu);
        return -EAGAIN;
    }
    pthread_setname_np(s->ret_thread, "coaphub-ttl");
    s->ret_started = true;
    LOG_I("store", "retention: points older than %lld s are removed every %lld ms",
          (long long)s->cfg.ts_ttl_s, (long long)s->cfg.ttl_interval_ms);
    return 0;
}

void store__retention_stop(store_t *s)
{
    if (!s->ret_started)
        return;
    pthread_mutex_lock(&s->ret_mu);
    s->ret_stop = true;
    pthread_cond_signal(&s->ret_cv);
    pthread_mutex_unlock(&s->ret_mu);
    pthread_join(s->ret_thread, NULL);
    pthread_cond_destroy(&s->ret_cv);
    pthread_mutex_destroy(&s->ret_mu);
    s->ret_started = false;
}

int64_t store_retention_runs(store_t *s)
{
    return atomic_load(&s->ret_runs);
}
