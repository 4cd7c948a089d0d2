/* syncer.c — makes group commits durable on a thread of its own, so the writer can apply and
 * commit the next group while the disk flushes the last one (a pipelined group commit).
 *
 * Why: with synchronous=FULL the writer waited for the WAL's fsync inside every COMMIT; at
 * 1000 devices that was a third of its time (about 700 commits/s, ~0.5 ms each), time in
 * which no group could be applied. Now the writer's connection commits with
 * synchronous=NORMAL (the WAL is written, not flushed) and hands the group here; this thread
 * calls fdatasync on the WAL file and only then completes the group's batches (commit hook,
 * then the done callbacks that acknowledge devices).
 *
 * Invariant (durability): a batch is completed with status 0 only after an fdatasync of the
 * WAL that began after its COMMIT returned. fsync works on the file, so a descriptor of our
 * own to the same -wal file flushes what SQLite wrote through its own. After a power loss
 * SQLite's WAL recovery keeps a prefix of the commits (frame checksums chain), and every
 * acknowledged one lies in that prefix. Checkpoints need nothing from us: at
 * synchronous=NORMAL SQLite syncs the WAL before copying it into the database and the
 * database after, so a WAL that is reused has been made durable in the database first.
 * The -wal file is the same file for the store's whole life (SQLite deletes it only when
 * the last connection closes; we never truncate it by size).
 *
 * If fdatasync fails, the group's batches fail (5.00 to the device, which retries): whether
 * they reached the disk is unknown, and acknowledging them would be a lie.
 */
#include "store/store_int.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *syncer_main(void *arg)
{
    store_t *s = arg;
    pthread_mutex_lock(&s->sync_mu);
    for (;;) {
        while (!s->sync_head && !s->sync_stop)
            pthread_cond_wait(&s->sync_cv, &s->sync_mu);
        store_batch_t *head = s->sync_head;
        s->sync_head = s->sync_tail = NULL;
        if (!head && s->sync_stop)
            break;
        pthread_mutex_unlock(&s->sync_mu);
        /* Every batch here committed before this call begins. */
        if (fdatasync(s->wal_fd) != 0) {
            int e = errno;
            LOG_E("store", "fdatasync of the WAL failed: %s (those points are not acknowledged)",
                  strerror(e));
            store__batches_fail(head, -e);
        }
        store__batches_complete(s, head);
        pthread_mutex_lock(&s->sync_mu);
    }
    pthread_mutex_unlock(&s->sync_mu);
    return NULL;
}

/* The directory entry of the -wal file must be durable too (SQLite syncs the directory
 * when it creates a journal only at synchronous=FULL). */
static int sync_dir_of(const char *path)
{
    char *copy = xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return r;
}

int store__syncer_start(store_t *s, char err[static 256])
{
    char wal[4096];
    if (snprintf(wal, sizeof wal, "%s-wal", s->path) >= (int)sizeof wal) {
        snprintf(err, 256, "store: database path too long");
        return ERR_STORE;
    }
    /* The migrations ran in WAL mode, so the file exists; it stays while we hold connections. */
    s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (s->wal_fd < 0) {
        snprintf(err, 256, "store: cannot open the WAL file: %s", strerror(errno));
        return ERR_STORE;
    }
    int r = sync_dir_of(wal);
    if (r != 0) {
        snprintf(err, 256, "store: cannot sync the database directory: %s", strerror(-r));
        return ERR_STORE;
    }
    if (pthread_create(&s->sync_thread, NULL, syncer_main, s) != 0) {
        snprintf(err, 256, "store: cannot start the WAL sync thread");
        return ERR_STORE;
    }
    s->sync_started = true;
    return 0;
}

void store__syncer_submit(store_t *s, store_batch_t *head, store_batch_t *tail)
{
    pthread_mutex_lock(&s->sync_mu);
    if (s->sync_tail)
        store__batch_link(s->sync_tail, head);
    else
        s->sync_head = head;
    s->sync_tail = tail;
    pthread_cond_signal(&s->sync_cv);
    pthread_mutex_unlock(&s->sync_mu);
}

void store__syncer_stop(store_t *s)
{
    if (s->sync_started) {
        pthread_mutex_lock(&s->sync_mu);
        s->sync_stop = true; /* what is queued is still synced and completed */
        pthread_cond_signal(&s->sync_cv);
        pthread_mutex_unlock(&s->sync_mu);
        pthread_join(s->sync_thread, NULL);
        s->sync_started = false;
    }
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    s->wal_fd = -1;
}
