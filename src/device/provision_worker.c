/* provision_worker.c — provisioning requests run off the shard threads. See provision.h.
 *
 * One thread and a FIFO of at most PROVISION_QUEUE_MAX jobs. A job owns copies of the
 * request's strings (the shard's arena is reset as soon as its handler returns) and carries
 * its own loop_post_node, so posting the completion back never allocates. One thread is
 * enough: provisioning happens once per device, and serialising it also means two requests
 * for the same pre-provisioned device are decided one after the other. A flood of requests
 * with made-up keys costs the database one query at a time and the shards nothing but a
 * 5.03 once the queue is full.
 */
#include "device/provision.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    struct job *next;
    loop_post_node_t node;
    char *name, *key, *secret, *token, *hash;
    provision_cred_kind_t type;
    loop_t *loop;
    provision_done_cb done;
    void *arg;
    int rc;
    provision_result_t r;
} job_t;

struct provision_worker {
    store_t *store;
    registry_t *reg;
    hub_t *hub; /* may be NULL */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail; /* guarded by mu */
    size_t n;           /* jobs queued, not yet taken */
    bool stop;
};

static void wipe_free(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static void finish_free(job_t *j)
{
    provision_result_fini(&j->r);
    free(j->name);
    wipe_free(j->key);
    wipe_free(j->secret);
    wipe_free(j->token);
    free(j->hash);
    free(j);
}

/* On the submitter's loop: the answer, then the job's memory. */
static void finish(void *arg)
{
    job_t *j = arg;
    j->done(j->arg, j->rc, &j->r);
    finish_free(j);
}

static void *run(void *arg)
{
    provision_worker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        job_t *j = w->head;
        if (!j)
            break; /* stopping, and nothing left */
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        w->n--;
        pthread_mutex_unlock(&w->mu);
        provision_req_t req = {.device_name = j->name,
                               .key = j->key,
                               .secret = j->secret,
                               .cred_type = j->type,
                               .token = j->token,
                               .hash = j->hash};
        j->rc = provision_device(w->store, w->reg, w->hub, &req, &j->r);
        loop_post_node(j->loop, &j->node, finish, j);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

provision_worker_t *provision_worker_new(store_t *s, registry_t *reg, hub_t *hub)
{
    provision_worker_t *w = xcalloc(1, sizeof *w);
    w->store = s;
    w->reg = reg;
    w->hub = hub;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    ASSERT(pthread_create(&w->thread, NULL, run, w) == 0);
    pthread_setname_np(w->thread, "coaphub-prov");
    return w;
}

int provision_worker_submit(provision_worker_t *w, const provision_req_t *req, loop_t *loop,
                            provision_done_cb done, void *arg)
{
    job_t *j = xcalloc(1, sizeof *j);
    j->name = xstrdup(req->device_name);
    j->key = xstrdup(req->key);
    j->secret = xstrdup(req->secret);
    j->token = xstrdup(req->token);
    j->hash = xstrdup(req->hash);
    j->type = req->cred_type;
    j->loop = loop;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&w->mu);
    if (w->n >= PROVISION_QUEUE_MAX || w->stop) {
        pthread_mutex_unlock(&w->mu);
        j->done = NULL;
        finish_free(j);
        return -EAGAIN;
    }
    w->n++;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void provision_worker_free(provision_worker_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
