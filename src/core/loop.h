/* loop.h — one single-threaded event loop: epoll for file descriptors, a timer heap, and a
 * mailbox through which other threads hand work to the loop's thread.
 *
 * A shard is one loop on one thread (STYLE.md §2.3). Everything registered with a loop is
 * called on that loop's thread only. Only loop_post() and loop_stop() may be called from
 * other threads.
 *
 * Timers are embedded in their owners (loop_timer_t), so arming one never allocates except
 * when the heap has to grow past its high-water mark.
 */
#ifndef COAPHUB_CORE_LOOP_H
#define COAPHUB_CORE_LOOP_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct loop loop_t;

/* Called when fd is readable (EPOLLIN) or writable (EPOLLOUT); events is the epoll mask. */
typedef void (*loop_fd_cb)(loop_t *loop, int fd, uint32_t events, void *arg);
typedef void (*loop_timer_cb)(loop_t *loop, void *arg);
/* Work posted from another thread; runs on the loop's thread. */
typedef void (*loop_post_cb)(void *arg);

/* A timer embedded in its owner. Zero-initialise or call loop_timer_init() before use. */
typedef struct loop_timer {
    int64_t deadline_ms; /* monotonic */
    size_t heap_index;   /* 0 = not armed; else position + 1 in the heap */
    loop_timer_cb cb;
    void *arg;
} loop_timer_t;

/* Creates a loop; returns NULL and fills err on failure. */
loop_t *loop_new(char err[static ERR_LEN]);
/* Frees the loop. Posted work that never ran is run first (so nothing posted is lost or leaked).
 * Registered fds are not closed. loop_free(NULL) does nothing. */
void loop_free(loop_t *loop);

/* Watches fd for events (EPOLLIN and/or EPOLLOUT). Returns 0 or -errno. */
int loop_fd_add(loop_t *loop, int fd, uint32_t events, loop_fd_cb cb, void *arg);
/* Changes the watched events of a registered fd. */
int loop_fd_mod(loop_t *loop, int fd, uint32_t events);
/* Stops watching fd (does not close it). Safe inside that fd's own callback. */
void loop_fd_del(loop_t *loop, int fd);

void loop_timer_init(loop_timer_t *t, loop_timer_cb cb, void *arg);
/* (Re)arms t to fire once after delay_ms. */
void loop_timer_arm(loop_t *loop, loop_timer_t *t, int64_t delay_ms);
/* Disarms t; does nothing if it is not armed. Safe inside t's own callback. */
void loop_timer_cancel(loop_t *loop, loop_timer_t *t);
static inline bool loop_timer_armed(const loop_timer_t *t) { return t->heap_index != 0; }

/* Registers cb(loop, arg) to run at the end of every iteration, after the fd, mailbox and
 * timer callbacks and before the loop sleeps: where batched output is flushed (udp.c
 * queues replies and sends them with one sendmmsg). At most LOOP_MAX_FLUSH per loop; returns
 * 0 or -ENOSPC. loop_flush_del removes it (safe during shutdown). */
enum { LOOP_MAX_FLUSH = 8 };
/* True while loop_run runs (on the loop's thread): then the flush hooks will run before the
 * loop sleeps, so output may wait for them; otherwise (tests, shutdown) send at once. */
bool loop_running(const loop_t *loop);
typedef void (*loop_flush_cb)(loop_t *loop, void *arg);
int loop_flush_add(loop_t *loop, loop_flush_cb cb, void *arg);
void loop_flush_del(loop_t *loop, loop_flush_cb cb, void *arg);

/* Runs cb(arg) on the loop's thread soon. Any thread; never blocks for long; never fails. */
void loop_post(loop_t *loop, loop_post_cb cb, void *arg);

/* The same with storage the caller provides, typically embedded in the object posted, so a
 * post on the hot path allocates nothing. The node belongs to the loop from this call until
 * cb starts; cb may free it. */
typedef struct loop_post_node {
    struct loop_post_node *next;
    loop_post_cb cb;
    void *arg;
    bool heap; /* allocated by loop_post(), freed by the loop */
} loop_post_node_t;
void loop_post_node(loop_t *loop, loop_post_node_t *node, loop_post_cb cb, void *arg);

/* Runs work posted so far (and work that work posts) on the calling thread. Only while the
 * loop is not running, e.g. during shutdown after its thread has been joined. */
void loop_drain(loop_t *loop);

/* Runs until loop_stop(). Returns 0. */
int loop_run(loop_t *loop);
/* Makes loop_run return after the current iteration. Any thread. */
void loop_stop(loop_t *loop);

/* The loop's cached monotonic time in ms, refreshed once per iteration. */
int64_t loop_now_ms(const loop_t *loop);
/* Refreshes the cached time (after long work inside a callback). */
void loop_update_time(loop_t *loop);

#endif
