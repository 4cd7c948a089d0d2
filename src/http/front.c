/* front.c — what keeps the HTTP front answering under slow or hostile clients.
 *
 * libmicrohttpd runs event-driven (an epoll thread pool): an open connection costs a socket and
 * its memory pool, never a thread, so a slowloris cannot take every thread. Three things here
 * complete that:
 *
 * WORKERS. Handlers may block (store reads, store_submit_wait, a two-way RPC waiting for its
 * device, a long poll). They must not block a polling thread, which serves many connections,
 * so a complete request is handed to a worker: the access handler suspends the connection
 * (MHD_suspend_connection) and queues the job; a worker runs the handler, leaves the answer in
 * the connection's context and resumes the connection; libmicrohttpd then calls the access
 * handler again, which queues that answer. Workers are started on demand up to a cap and end
 * after 30 s idle, so threads follow requests in progress, not open connections; at the cap
 * jobs wait in a FIFO (their connections are suspended, so the wait costs no thread).
 *
 * DEADLINES. libmicrohttpd's own timeout is an idle timeout that every byte resets. Here a
 * connection's request headers must be complete within a deadline counted from its accept (or,
 * on a kept-alive connection, within the idle timeout after the previous answer), and a body
 * must arrive at a minimum average rate after a grace period; a watchdog thread checks every
 * 250 ms and shuts the socket down (shutdown(2), not close: libmicrohttpd owns the descriptor
 * and sees the end of stream as a closed connection). A request being handled (suspended) or
 * an answer being streamed has no deadline here (the handlers bound their own waits).
 *
 * PER ADDRESS. Connections open from one address (an IPv4 address; an IPv6 /64, one
 * subscriber's usual allocation) are counted here, and the accept policy refuses one beyond
 * the cap before libmicrohttpd sets the connection up, so the refusal is counted for /metrics
 * (libmicrohttpd checks its own per-IP limit before the accept policy, so that one is set to
 * twice the cap, a backstop only). The count is taken when a connection starts, so threads of
 * the pool accepting from one address at the same instant may pass it by a few.
 *
 * EVICTION. The connection limit is a pool an attacker with many addresses can still fill.
 * When nine tenths of it are taken, each new connection shuts down the oldest one that has not
 * completed its request headers (and the watchdog trims back to nine tenths, sparing those
 * younger than a second), so the pool never reaches libmicrohttpd's hard limit, which would
 * refuse everyone at accept, and a client that sends its request at once (every real one)
 * always finds room: only connections older than it can be taken for it.
 */
#include "http/front.h"

#include "core/hash.h"
#include "core/sockaddr.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum { WATCH_EVERY_MS = 250, WORKER_IDLE_MS = 30000, EVICT_MIN_AGE_MS = 1000 };
enum { ADDR_BUCKETS = 1024 };

/* Connections open from one address key (see addr_key). */
typedef struct addr_count {
    struct addr_count *next;
    uint64_t key;
    size_t n;
} addr_count_t;

typedef enum { PH_HEADERS, PH_BODY, PH_HANDLER } phase_t;

/* One open connection (libmicrohttpd's socket context), linked in accept order. */
typedef struct front_conn {
    struct front_conn *prev, *next;
    int fd;
    bool first; /* no request completed yet: the header deadline applies */
    bool shut;  /* shut down by the watchdog (counted once) */
    phase_t phase;
    int64_t since_ms;    /* when the phase began */
    uint64_t body_bytes; /* received in PH_BODY */
    uint64_t addr;       /* addr_key of the peer; 0 = not counted */
} front_conn_t;

typedef struct job {
    struct job *next;
    struct MHD_Connection *conn;
    void (*run)(void *arg);
    void *arg;
} job_t;

struct http_front {
    pthread_mutex_t mu;
    http_front_cfg_t cfg;
    /* connections */
    front_conn_t *head, *tail;
    size_t n_conns;
    size_t n_shut; /* of those, shut down and not yet closed by libmicrohttpd */
    addr_count_t *by_addr[ADDR_BUCKETS];
    /* watchdog */
    pthread_t watchdog;
    pthread_cond_t wd_cv;
    bool stop;
    /* workers */
    job_t *q_head, *q_tail;
    size_t q_len;
    int n_workers, n_idle, busy;
    bool closing; /* http_server_stop began: no new jobs */
    pthread_cond_t work_cv, drained_cv;
    http_front_stats_t st;
};

static int64_t elapsed_ms(int64_t since, int64_t now)
{
    return now > since ? now - since : 0;
}

/* ---- per address ---- */

/* The address a connection counts under (sockaddr_prefix_key: an IPv4 address, IPv4-mapped
 * ones as IPv4, or an IPv6 /64) as a 64-bit keyed hash, never 0; 0 for anything else. Two
 * addresses share a count only if their hashes collide (odds 2^-63). */
static uint64_t addr_key(const struct sockaddr *sa)
{
    uint8_t k[SOCKADDR_PREFIX_KEY_MAX];
    size_t n = sa ? sockaddr_prefix_key((const struct sockaddr_storage *)(const void *)sa, k) : 0;
    return n ? hash_bytes(k, n) | 1 : 0;
}

/* Under f->mu: the counter of key (created at 0 if create), or NULL. */
static addr_count_t *addr_find(http_front_t *f, uint64_t key, bool create)
{
    addr_count_t **bucket = &f->by_addr[(key ^ key >> 29) % ADDR_BUCKETS];
    for (addr_count_t *a = *bucket; a; a = a->next)
        if (a->key == key)
            return a;
    if (!create)
        return NULL;
    addr_count_t *a = xcalloc(1, sizeof *a);
    a->key = key;
    a->next = *bucket;
    *bucket = a;
    return a;
}

static void addr_release(http_front_t *f, uint64_t key)
{
    addr_count_t **pp = &f->by_addr[(key ^ key >> 29) % ADDR_BUCKETS];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->key == key) {
            addr_count_t *a = *pp;
            if (--a->n == 0) {
                *pp = a->next;
                free(a);
            }
            return;
        }
    }
}

enum MHD_Result http__front_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    http_front_t *f = cls;
    uint64_t key = addr_key(addr);
    if (!key)
        return MHD_YES;
    pthread_mutex_lock(&f->mu);
    addr_count_t *a = addr_find(f, key, false);
    bool full = a && a->n >= f->cfg.max_per_addr;
    if (full)
        f->st.per_addr_refused++;
    pthread_mutex_unlock(&f->mu);
    return full ? MHD_NO : MHD_YES;
}

/* ---- connections ---- */

static void shut(http_front_t *f, front_conn_t *c, uint64_t *counter);

static size_t high_water(const http_front_t *f)
{
    return f->cfg.max_connections - f->cfg.max_connections / 10;
}

void http__front_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                               enum MHD_ConnectionNotificationCode code)
{
    http_front_t *f = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
            conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        front_conn_t *c = xcalloc(1, sizeof *c);
        c->fd = ci ? ci->connect_fd : -1;
        c->first = true;
        c->phase = PH_HEADERS;
        c->since_ms = clock_mono_ms();
        const union MHD_ConnectionInfo *ai = MHD_get_connection_info(
            conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        c->addr = ai ? addr_key(ai->client_addr) : 0;
        pthread_mutex_lock(&f->mu);
        if (c->addr)
            addr_find(f, c->addr, true)->n++;
        c->prev = f->tail;
        if (f->tail)
            f->tail->next = c;
        else
            f->head = c;
        f->tail = c;
        f->n_conns++;
        f->st.accepted++;
        if (f->n_conns - f->n_shut > high_water(f)) {
            for (front_conn_t *o = f->head; o != c; o = o->next) {
                if (!o->shut && o->phase == PH_HEADERS) {
                    shut(f, o, &f->st.evicted);
                    break;
                }
            }
        }
        pthread_mutex_unlock(&f->mu);
        *socket_context = c;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED: called before libmicrohttpd closes the descriptor, so the
     * watchdog (which shuts down only under f->mu) never touches a reused one. */
    front_conn_t *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&f->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        f->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        f->tail = c->prev;
    f->n_conns--;
    if (c->shut)
        f->n_shut--;
    if (c->addr)
        addr_release(f, c->addr);
    pthread_mutex_unlock(&f->mu);
    free(c);
    *socket_context = NULL;
}

static front_conn_t *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
        conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void http__front_headers_done(http_front_t *f, struct MHD_Connection *conn)
{
    front_conn_t *c = conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&f->mu);
    c->phase = PH_BODY;
    c->since_ms = clock_mono_ms();
    c->body_bytes = 0;
    pthread_mutex_unlock(&f->mu);
}

void http__front_body_bytes(http_front_t *f, struct MHD_Connection *conn, size_t n)
{
    front_conn_t *c = conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&f->mu);
    c->body_bytes += n;
    pthread_mutex_unlock(&f->mu);
}

void http__front_handling(http_front_t *f, struct MHD_Connection *conn)
{
    front_conn_t *c = conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&f->mu);
    c->phase = PH_HANDLER;
    pthread_mutex_unlock(&f->mu);
}

void http__front_request_done(http_front_t *f, struct MHD_Connection *conn)
{
    front_conn_t *c = conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&f->mu);
    c->first = false;
    c->phase = PH_HEADERS;
    c->since_ms = clock_mono_ms();
    pthread_mutex_unlock(&f->mu);
}

/* ---- watchdog ---- */

static void shut(http_front_t *f, front_conn_t *c, uint64_t *counter)
{
    if (c->shut || c->fd < 0)
        return;
    c->shut = true;
    (void)shutdown(c->fd, SHUT_RDWR);
    (*counter)++;
    f->n_shut++;
}

/* One pass under f->mu: deadlines, then eviction when the pool is nearly full. */
static void watch_once(http_front_t *f, int64_t now)
{
    const http_front_cfg_t *g = &f->cfg;
    size_t live = 0;
    for (front_conn_t *c = f->head; c; c = c->next) {
        if (c->shut)
            continue;
        int64_t age = elapsed_ms(c->since_ms, now);
        if (c->phase == PH_HEADERS) {
            int64_t limit = c->first ? g->header_timeout_ms : g->idle_timeout_ms;
            if (age >= limit) {
                shut(f, c, &f->st.header_timeouts);
                continue;
            }
        } else if (c->phase == PH_BODY && g->body_min_rate > 0 && age > g->header_timeout_ms) {
            /* Average rate since the headers, after a grace as long as the header deadline. */
            if (c->body_bytes * 1000 < (uint64_t)g->body_min_rate * (uint64_t)age) {
                shut(f, c, &f->st.body_timeouts);
                continue;
            }
        }
        live++;
    }
    size_t high = high_water(f);
    for (front_conn_t *c = f->head; c && live >= high; c = c->next) {
        if (c->shut || c->phase != PH_HEADERS || elapsed_ms(c->since_ms, now) < EVICT_MIN_AGE_MS)
            continue;
        shut(f, c, &f->st.evicted);
        live--;
    }
}

static void *watchdog_main(void *arg)
{
    http_front_t *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stop) {
        watch_once(f, clock_mono_ms());
        if (f->cfg.tick) {
            pthread_mutex_unlock(&f->mu);
            f->cfg.tick(f->cfg.tick_ctx);
            pthread_mutex_lock(&f->mu);
            if (f->stop)
                break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCH_EVERY_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&f->wd_cv, &f->mu, &ts);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* ---- workers ---- */

static void *worker_main(void *arg)
{
    http_front_t *f = arg;
    pthread_setname_np(pthread_self(), "coaphub-httpw");
    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (!f->q_head) {
            if (f->stop)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += WORKER_IDLE_MS / 1000;
            f->n_idle++;
            int rc = pthread_cond_timedwait(&f->work_cv, &f->mu, &ts);
            f->n_idle--;
            if (rc == ETIMEDOUT && !f->q_head)
                break;
            continue;
        }
        job_t *j = f->q_head;
        f->q_head = j->next;
        if (!f->q_head)
            f->q_tail = NULL;
        f->q_len--;
        f->busy++;
        pthread_mutex_unlock(&f->mu);
        j->run(j->arg);
        MHD_resume_connection(j->conn); /* libmicrohttpd calls the access handler again */
        free(j);
        pthread_mutex_lock(&f->mu);
        f->busy--;
        pthread_cond_broadcast(&f->drained_cv);
    }
    f->n_workers--;
    pthread_cond_broadcast(&f->drained_cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

bool http__front_offload(http_front_t *f, struct MHD_Connection *conn, void (*run)(void *arg),
                         void *arg)
{
    pthread_mutex_lock(&f->mu);
    if (f->closing) {
        pthread_mutex_unlock(&f->mu);
        return false;
    }
    if ((size_t)f->n_idle <= f->q_len && f->n_workers < f->cfg.max_workers) {
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        pthread_t t;
        if (pthread_create(&t, &at, worker_main, f) == 0) {
            f->n_workers++;
            if ((uint64_t)f->n_workers > f->st.workers_peak)
                f->st.workers_peak = (uint64_t)f->n_workers;
        } else if (f->n_workers == 0) {
            pthread_attr_destroy(&at);
            pthread_mutex_unlock(&f->mu);
            return false; /* no thread at all: answered on the polling thread */
        }
        pthread_attr_destroy(&at);
    }
    if (f->n_workers >= f->cfg.max_workers && f->n_idle == 0)
        f->st.queued++;
    /* Suspended before the job is visible, so the worker's resume always follows it. */
    MHD_suspend_connection(conn);
    job_t *j = xcalloc(1, sizeof *j);
    *j = (job_t){.conn = conn, .run = run, .arg = arg};
    if (f->q_tail)
        f->q_tail->next = j;
    else
        f->q_head = j;
    f->q_tail = j;
    f->q_len++;
    f->st.offloaded++;
    pthread_cond_signal(&f->work_cv);
    pthread_mutex_unlock(&f->mu);
    return true;
}

void http__front_drain(http_front_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->closing = true;
    while (f->q_head || f->busy > 0)
        pthread_cond_wait(&f->drained_cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

/* ---- life cycle ---- */

http_front_t *http__front_new(const http_front_cfg_t *cfg)
{
    http_front_t *f = xcalloc(1, sizeof *f);
    f->cfg = *cfg;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->wd_cv, NULL);
    pthread_cond_init(&f->work_cv, NULL);
    pthread_cond_init(&f->drained_cv, NULL);
    if (pthread_create(&f->watchdog, NULL, watchdog_main, f) == 0) {
        pthread_setname_np(f->watchdog, "coaphub-httpwd");
    } else {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->wd_cv);
        pthread_cond_destroy(&f->work_cv);
        pthread_cond_destroy(&f->drained_cv);
        free(f);
        return NULL;
    }
    return f;
}

void http__front_free(http_front_t *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    f->closing = true;
    pthread_cond_broadcast(&f->wd_cv);
    pthread_cond_broadcast(&f->work_cv);
    while (f->n_workers > 0)
        pthread_cond_wait(&f->drained_cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->watchdog, NULL);
    /* libmicrohttpd has closed every connection (MHD_stop_daemon) and freed their records, so
     * no address is counted any more; free what a failed start may have left. */
    for (size_t i = 0; i < ADDR_BUCKETS; i++) {
        while (f->by_addr[i]) {
            addr_count_t *a = f->by_addr[i];
            f->by_addr[i] = a->next;
            free(a);
        }
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->wd_cv);
    pthread_cond_destroy(&f->work_cv);
    pthread_cond_destroy(&f->drained_cv);
    free(f);
}

void http__front_stats(http_front_t *f, http_front_stats_t *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->st;
    out->open = f->n_conns;
    out->workers = (uint64_t)f->n_workers;
    out->workers_busy = (uint64_t)f->busy;
    out->waiting = f->q_len;
    pthread_mutex_unlock(&f->mu);
}

void http__front_count_bad_framing(http_front_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->st.bad_framing++;
    pthread_mutex_unlock(&f->mu);
}
