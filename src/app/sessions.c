/* sessions.c — `coaphub-cli sessions save`: the DTLS sessions of every shard written to the
 * saved-sessions file while the server keeps running (POST /api/coaphub/dtls/sessions/save).
 *
 * Each shard adds its own sessions on its loop thread (a posted job, as metrics.c collects
 * counters), so the datagram path takes no lock; the HTTP thread waits for all of them (at
 * most SAVE_WAIT_S) and writes the file. A shard that did not answer in time makes the save
 * fail rather than write a file that silently lacks its sessions. The sessions go on after
 * the save: each is listed as stale at its next record (src/dtls/saved.c), so a later start
 * never reuses a sequence number nor accepts a record twice (docs/operations.md).
 */
#include "app/server_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { SAVE_WAIT_S = 10 };

typedef struct save_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;    /* shards that have not added their sessions yet */
    int refs;       /* the caller and each posted job: the last one frees */
    size_t skipped; /* sessions on OpenSSL's record layer */
    dtls_save_t *w;
    dtls_listener_t **listeners;
} save_job_t;

typedef struct shard_job {
    save_job_t *j;
    int index;
} shard_job_t;

static void job_unref(save_job_t *j)
{
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left)
        return;
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    dtls_save_free(j->w);
    free(j->listeners);
    free(j);
}

static void on_shard(void *arg)
{
    shard_job_t *sj = arg;
    save_job_t *j = sj->j;
    size_t skipped = 0;
    dtls_listener_save(j->listeners[sj->index], j->w, false, &skipped);
    pthread_mutex_lock(&j->mu);
    j->skipped += skipped;
    j->pending--;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    free(sj);
}

int server_sessions_save(void *ctx, size_t *saved, size_t *skipped, char err[static ERR_LEN])
{
    server_t *s = ctx;
    *saved = *skipped = 0;
    if (!s->dtls_ctx || s->dtls_save_max_age_s <= 0) {
        snprintf(err, ERR_LEN, "%s",
                 !s->dtls_ctx ? "DTLS is off" : "--dtls-session-save-max-age is 0 (saving is off)");
        return -ENOTSUP;
    }
    /* One save at a time: a second one would empty the stale list of the first. */
    pthread_mutex_lock(&s->save_mu);
    int rc = dtls_save_begin(s->data_dir);
    if (rc != 0) {
        snprintf(err, ERR_LEN, "cannot remove the previous saved-sessions file: %s", err_str(rc));
        pthread_mutex_unlock(&s->save_mu);
        return rc;
    }
    save_job_t *j = xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->w = dtls_save_new();
    j->listeners = xcalloc((size_t)s->n_shards, sizeof *j->listeners);
    j->refs = 1;
    for (int i = 0; i < s->n_shards; i++) {
        if (!s->shards[i].dtls)
            continue;
        j->listeners[i] = s->shards[i].dtls;
        shard_job_t *sj = xmalloc(sizeof *sj);
        *sj = (shard_job_t){.j = j, .index = i};
        pthread_mutex_lock(&j->mu);
        j->pending++;
        j->refs++;
        pthread_mutex_unlock(&j->mu);
        loop_post(s->shards[i].loop, on_shard, sj);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += SAVE_WAIT_S;
    pthread_mutex_lock(&j->mu);
    while (j->pending > 0)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &deadline) != 0)
            break;
    int late = j->pending;
    *skipped = j->skipped;
    pthread_mutex_unlock(&j->mu);
    if (late > 0) {
        snprintf(err, ERR_LEN, "%d shard(s) did not answer within %d s; nothing written", late,
                 SAVE_WAIT_S);
        rc = -ETIMEDOUT;
    } else {
        *saved = dtls_save_count(j->w);
        rc = dtls_save_write(j->w, s->data_dir, s->dtls_save_max_age_s, err);
    }
    pthread_mutex_unlock(&s->save_mu);
    job_unref(j);
    if (rc == 0)
        LOG_I("server",
              "sessions save: %zu DTLS session(s) written (%zu on OpenSSL's record "
              "layer cannot be saved), valid for %llds",
              *saved, *skipped, (long long)s->dtls_save_max_age_s);
    return rc;
}
