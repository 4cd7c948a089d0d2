/* submit.c — "answer after it is durable": a handler's store batch goes to the writer and
 * its exchange is answered 2.01 from the commit's completion (or with the failure's code),
 * with the batches and pending records recycled per shard so a request allocates nothing.
 *
 * A completion may run after the shard is gone (loop_free/drain at shutdown): the pending
 * record holds the shard's api_life_t, whose pointer is NULL by then, and the answer still
 * goes out through the exchange, which the engine keeps valid until it is answered.
 */
#include "api/api_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <stdlib.h>

void api__life_unref(api_life_t *l)
{
    if (--l->refs == 0)
        free(l);
}

/* Free pendings kept for reuse: enough for the commits in flight of a busy shard; a burst
 * beyond it gives its extra memory back. */
#define API_PENDING_KEEP 8192

/* Every API_POOL_TRIM_MS the pools give back what the period did not need: the entries
 * below its low-water mark were never taken, so a burst's extra memory returns within two
 * periods of the load dropping (issue #5: RSS back near its start once devices leave). */
#define API_POOL_TRIM_MS 10000

static void pools_trim(loop_t *loop, void *arg)
{
    (void)loop;
    api_shard_t *a = arg;
    for (size_t i = 0; i < a->batch_pool_low && a->n_batch_pool; i++)
        store_batch_free(a->batch_pool[--a->n_batch_pool]);
    if (a->n_batch_pool == 0) {
        free(a->batch_pool);
        a->batch_pool = NULL;
        a->cap_batch_pool = 0;
    }
    for (size_t i = 0; i < a->pending_low && a->pending_free; i++) {
        api_pending_t *p = a->pending_free;
        a->pending_free = p->next;
        a->n_pending_free--;
        free(p);
    }
    a->batch_pool_low = a->n_batch_pool;
    a->pending_low = a->n_pending_free;
    loop_timer_arm(a->loop, &a->trim_timer, API_POOL_TRIM_MS);
}

store_batch_t *api__batch_get(api_shard_t *a)
{
    if (a->n_batch_pool) {
        store_batch_t *b = a->batch_pool[--a->n_batch_pool];
        if (a->n_batch_pool < a->batch_pool_low)
            a->batch_pool_low = a->n_batch_pool;
        return b;
    }
    a->batch_pool_low = 0;
    return store_batch_new();
}

/* Keeps an emptied batch for the next request, or frees it when the pool is full. */
void api__batch_put(api_shard_t *a, store_batch_t *b)
{
    if (a->n_batch_pool == API_PENDING_KEEP) {
        store_batch_free(b);
        return;
    }
    if (a->n_batch_pool == a->cap_batch_pool) { /* grows during warm-up only */
        a->cap_batch_pool = a->cap_batch_pool ? a->cap_batch_pool * 2 : 64;
        a->batch_pool = xrealloc(a->batch_pool, a->cap_batch_pool * sizeof *a->batch_pool);
    }
    store_batch_reset(b);
    a->batch_pool[a->n_batch_pool++] = b;
}

/* While the database is down every request fails the same way: the first failure is logged,
 * then one line per API_FAIL_LOG_MS with the count in between (STYLE §5: per-packet failures
 * are counted and logged with rate limiting). */
#define API_FAIL_LOG_MS 10000

void api__store_failed(api_shard_t *a, int64_t device_id, const char *what, int err)
{
    a->stats.store_failures++;
    /* A storage fault or corruption: the store logs each episode once, when it starts and
     * when it ends (store/health.c), so no line per request here. */
    if (store_unready_reason(a->store))
        return;
    int64_t now = clock_mono_ms();
    if (a->fail_log_ms && now - a->fail_log_ms < API_FAIL_LOG_MS) {
        a->fail_unlogged++;
        return;
    }
    if (a->fail_unlogged)
        LOG_W("api", "%s for device %lld failed: %s (and %llu more failures in the last %lld s)",
              what, (long long)device_id, err_str(err), (unsigned long long)a->fail_unlogged,
              (long long)(now - a->fail_log_ms) / 1000);
    else
        LOG_W("api", "%s for device %lld failed: %s", what, (long long)device_id, err_str(err));
    a->fail_log_ms = now;
    a->fail_unlogged = 0;
}

/* Store completion: runs on the shard loop (or after it stopped, from loop_free/drain). */
static void submit_done(void *arg, int status, store_batch_t *b)
{
    api_pending_t *p = arg;
    api_shard_t *a = p->life->a;
    if (status == 0) {
        coap_exchange_respond(p->x, COAP_CREATED, COAP_CF_NONE, NULL, 0);
    } else {
        if (a)
            api__store_failed(a, p->device_id, "store commit", status);
        api__respond_err(p->x, status);
    }
    api__life_unref(p->life);
    if (a && b)
        api__batch_put(a, b);
    else
        store_batch_free(b);
    if (a && a->n_pending_free < API_PENDING_KEEP) {
        p->next = a->pending_free;
        a->pending_free = p;
        a->n_pending_free++;
    } else {
        free(p); /* the shard is gone (or keeps enough): nobody would reuse it */
    }
}

void api__submit_then_answer(api_shard_t *a, coap_exchange_t *x, int64_t device_id,
                             store_batch_t *b)
{
    if (store_batch_len(b) == 0) { /* nothing to make durable, e.g. telemetry {} */
        api__batch_put(a, b);
        coap_exchange_respond(x, COAP_CREATED, COAP_CF_NONE, NULL, 0);
        return;
    }
    api_pending_t *p = a->pending_free;
    if (p) {
        a->pending_free = p->next;
        a->n_pending_free--;
        if (a->n_pending_free < a->pending_low)
            a->pending_low = a->n_pending_free;
    } else {
        p = xmalloc(sizeof *p);
    }
    p->next = NULL;
    p->life = a->life;
    p->life->refs++;
    p->x = x;
    p->device_id = device_id;
    store_submit_keep(a->store, b, a->loop, submit_done, p);
}

void api__pools_init(api_shard_t *a)
{
    loop_timer_init(&a->trim_timer, pools_trim, a);
    loop_timer_arm(a->loop, &a->trim_timer, API_POOL_TRIM_MS);
}

void api__pools_fini(api_shard_t *a)
{
    loop_timer_cancel(a->loop, &a->trim_timer);
    while (a->pending_free) {
        api_pending_t *p = a->pending_free;
        a->pending_free = p->next;
        free(p);
    }
    while (a->n_batch_pool)
        store_batch_free(a->batch_pool[--a->n_batch_pool]);
    free(a->batch_pool);
    a->batch_pool = NULL;
}
