/* loop.c — epoll + binary timer heap + eventfd mailbox. See loop.h.
 *
 * DESIGN. The fd table is indexed by fd number (fds are small dense integers), so dispatch is
 * an array lookup. Timers live in a binary min-heap of pointers to loop_timer_t; each timer
 * knows its heap slot, so cancel is O(log n) without a search. The mailbox is a mutex-protected
 * singly linked list swapped out whole by the loop thread, plus an eventfd that wakes the loop;
 * the mutex is held only for a pointer swap, so posters never wait on the loop's work.
 */
#include "core/loop.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct fd_slot {
    loop_fd_cb cb;
    void *arg;
    bool used;
} fd_slot_t;

struct loop {
    int epfd;
    int wakefd;
    fd_slot_t *fds;
    size_t n_fds;
    loop_timer_t **heap;
    size_t heap_len, heap_cap;
    int64_t now_ms;
    atomic_bool stop;
    bool running; /* inside loop_run (its thread only) */
    pthread_mutex_t post_mu;
    loop_post_node_t *post_head, *post_tail;
    struct {
        loop_flush_cb cb;
        void *arg;
    } flush[LOOP_MAX_FLUSH];
    size_t n_flush;
};

int loop_flush_add(loop_t *loop, loop_flush_cb cb, void *arg)
{
    if (loop->n_flush == LOOP_MAX_FLUSH)
        return -ENOSPC;
    loop->flush[loop->n_flush].cb = cb;
    loop->flush[loop->n_flush].arg = arg;
    loop->n_flush++;
    return 0;
}

void loop_flush_del(loop_t *loop, loop_flush_cb cb, void *arg)
{
    for (size_t i = 0; i < loop->n_flush; i++) {
        if (loop->flush[i].cb == cb && loop->flush[i].arg == arg) {
            loop->flush[i] = loop->flush[--loop->n_flush];
            return;
        }
    }
}

static void run_flush(loop_t *loop)
{
    for (size_t i = 0; i < loop->n_flush; i++)
        loop->flush[i].cb(loop, loop->flush[i].arg);
}

loop_t *loop_new(char err[static ERR_LEN])
{
    loop_t *loop = xcalloc(1, sizeof *loop);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        snprintf(err, ERR_LEN, "epoll_create1: %s", strerror(errno));
        goto fail;
    }
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wakefd < 0) {
        snprintf(err, ERR_LEN, "eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0) {
        snprintf(err, ERR_LEN, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_init(&loop->post_mu, NULL);
    loop->now_ms = clock_mono_ms();
    return loop;
fail:
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->wakefd > 0)
        close(loop->wakefd);
    free(loop);
    return NULL;
}

static void run_posted(loop_t *loop)
{
    for (;;) {
        pthread_mutex_lock(&loop->post_mu);
        loop_post_node_t *it = loop->post_head;
        loop->post_head = loop->post_tail = NULL;
        pthread_mutex_unlock(&loop->post_mu);
        if (!it)
            return;
        while (it) {
            /* Read the node before cb runs: cb may free it (loop_post_node's contract). */
            loop_post_node_t *next = it->next;
            loop_post_cb cb = it->cb;
            void *arg = it->arg;
            if (it->heap)
                free(it);
            cb(arg);
            it = next;
        }
    }
}

void loop_drain(loop_t *loop)
{
    run_posted(loop);
    run_flush(loop);
}

void loop_free(loop_t *loop)
{
    if (!loop)
        return;
    run_posted(loop);
    close(loop->epfd);
    close(loop->wakefd);
    pthread_mutex_destroy(&loop->post_mu);
    free(loop->fds);
    free(loop->heap);
    free(loop);
}

int loop_fd_add(loop_t *loop, int fd, uint32_t events, loop_fd_cb cb, void *arg)
{
    ASSERT(fd >= 0);
    if ((size_t)fd >= loop->n_fds) {
        size_t n = (size_t)fd * 2 + 16;
        loop->fds = xrealloc(loop->fds, n * sizeof *loop->fds);
        memset(loop->fds + loop->n_fds, 0, (n - loop->n_fds) * sizeof *loop->fds);
        loop->n_fds = n;
    }
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    loop->fds[fd] = (fd_slot_t){.cb = cb, .arg = arg, .used = true};
    return 0;
}

int loop_fd_mod(loop_t *loop, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_fd_del(loop_t *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->n_fds || !loop->fds[fd].used)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    loop->fds[fd].used = false;
}

/* ---- timer heap ---- */

static void heap_set(loop_t *loop, size_t i, loop_timer_t *t)
{
    loop->heap[i] = t;
    t->heap_index = i + 1;
}

static void sift_up(loop_t *loop, size_t i)
{
    loop_timer_t *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->deadline_ms <= t->deadline_ms)
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void sift_down(loop_t *loop, size_t i)
{
    loop_timer_t *t = loop->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = t->deadline_ms;
        if (l < loop->heap_len && loop->heap[l]->deadline_ms < best) {
            m = l;
            best = loop->heap[l]->deadline_ms;
        }
        if (r < loop->heap_len && loop->heap[r]->deadline_ms < best)
            m = r;
        if (m == i)
            break;
        heap_set(loop, i, loop->heap[m]);
        i = m;
    }
    heap_set(loop, i, t);
}

void loop_timer_init(loop_timer_t *t, loop_timer_cb cb, void *arg)
{
    *t = (loop_timer_t){.cb = cb, .arg = arg};
}

void loop_timer_cancel(loop_t *loop, loop_timer_t *t)
{
    if (!t->heap_index)
        return;
    size_t i = t->heap_index - 1;
    t->heap_index = 0;
    loop->heap_len--;
    if (i == loop->heap_len)
        return;
    heap_set(loop, i, loop->heap[loop->heap_len]);
    sift_up(loop, i);
    sift_down(loop, loop->heap[i]->heap_index - 1);
}

void loop_timer_arm(loop_t *loop, loop_timer_t *t, int64_t delay_ms)
{
    loop_timer_cancel(loop, t);
    if (delay_ms < 0)
        delay_ms = 0;
    t->deadline_ms = loop->now_ms + delay_ms;
    if (loop->heap_len == loop->heap_cap) {
        loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        loop->heap = xrealloc(loop->heap, loop->heap_cap * sizeof *loop->heap);
    }
    heap_set(loop, loop->heap_len++, t);
    sift_up(loop, loop->heap_len - 1);
}

static void run_timers(loop_t *loop)
{
    while (loop->heap_len && loop->heap[0]->deadline_ms <= loop->now_ms) {
        loop_timer_t *t = loop->heap[0];
        loop_timer_cancel(loop, t);
        t->cb(loop, t->arg);
    }
}

/* ---- mailbox ---- */

static void enqueue(loop_t *loop, loop_post_node_t *it, loop_post_cb cb, void *arg, bool heap)
{
    it->next = NULL;
    it->cb = cb;
    it->arg = arg;
    it->heap = heap;
    pthread_mutex_lock(&loop->post_mu);
    bool was_empty = loop->post_head == NULL;
    if (loop->post_tail)
        loop->post_tail->next = it;
    else
        loop->post_head = it;
    loop->post_tail = it;
    pthread_mutex_unlock(&loop->post_mu);
    if (was_empty) {
        uint64_t one = 1;
        /* The eventfd counter cannot overflow in practice; a failed write only means the
         * loop is already awake. */
        ssize_t n = write(loop->wakefd, &one, sizeof one);
        (void)n;
    }
}

void loop_post(loop_t *loop, loop_post_cb cb, void *arg)
{
    enqueue(loop, xmalloc(sizeof(loop_post_node_t)), cb, arg, true);
}

void loop_post_node(loop_t *loop, loop_post_node_t *node, loop_post_cb cb, void *arg)
{
    enqueue(loop, node, cb, arg, false);
}

void loop_stop(loop_t *loop)
{
    atomic_store(&loop->stop, true);
    uint64_t one = 1;
    ssize_t n = write(loop->wakefd, &one, sizeof one);
    (void)n;
}

int64_t loop_now_ms(const loop_t *loop)
{
    return loop->now_ms;
}

void loop_update_time(loop_t *loop)
{
    loop->now_ms = clock_mono_ms();
}

bool loop_running(const loop_t *loop)
{
    return loop->running;
}

int loop_run(loop_t *loop)
{
    enum { MAX_EVENTS = 64 };
    struct epoll_event evs[MAX_EVENTS];
    loop->running = true;
    while (!atomic_load(&loop->stop)) {
        int timeout = -1;
        if (loop->heap_len) {
            int64_t d = loop->heap[0]->deadline_ms - clock_mono_ms();
            timeout = d < 0 ? 0 : (d > 60000 ? 60000 : (int)d);
        }
        int n = epoll_wait(loop->epfd, evs, MAX_EVENTS, timeout);
        loop->now_ms = clock_mono_ms();
        if (n < 0 && errno != EINTR) {
            loop->running = false;
            return -errno;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == -1) {
                uint64_t v;
                ssize_t r = read(loop->wakefd, &v, sizeof v);
                (void)r;
                continue;
            }
            if ((size_t)fd < loop->n_fds && loop->fds[fd].used)
                loop->fds[fd].cb(loop, fd, evs[i].events, loop->fds[fd].arg);
        }
        run_posted(loop);
        run_timers(loop);
        run_flush(loop);
    }
    loop->running = false;
    atomic_store(&loop->stop, false);
    return 0;
}
