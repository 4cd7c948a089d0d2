/* reserve.c — the disk reserve: a file of cfg.disk_reserve_bytes next to a SQLite database
 * (DB.reserve), allocated at open and given back when the disk fills (health.c).
 *
 * Why: on a full disk SQLite cannot even finish what it holds — the checkpoint copies WAL
 * frames into pages the database file has not got yet, the merge moves points from the log to
 * ts_kv — and the first write after space returns would race every other process for it.
 * Releasing the reserve gives the store that room at once; taking it back before writes are
 * accepted again means "recovered" requires the reserve and as much again to be free, so a
 * disk that regains a few pages does not flap between episodes, and the WAL and the merge
 * cannot eat the space back the moment it returns.
 *
 * PostgreSQL keeps its files on its own server: nothing to reserve there (0 is returned).
 */
#include "store/store_int.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static bool reserve_applies(const store_t *s)
{
    return s->cfg.disk_reserve_bytes > 0 && s->be == &store__sqlite_backend;
}

static char *reserve_path(const store_t *s)
{
    size_t n = strlen(s->path) + sizeof ".reserve";
    char *p = xmalloc(n);
    snprintf(p, n, "%s.reserve", s->path);
    return p;
}

/* Free bytes for an unprivileged writer on the file system of path's directory, or -1. */
static int64_t free_bytes(const char *file)
{
    char *dir = xstrdup(file);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    struct statvfs v;
    int r = statvfs(slash ? dir : ".", &v);
    free(dir);
    if (r != 0)
        return -1;
    return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

int store__reserve_take(store_t *s)
{
    if (!reserve_applies(s))
        return 0;
    char *p = reserve_path(s);
    int64_t want = (int64_t)s->cfg.disk_reserve_bytes;
    struct stat st;
    int r = 0;
    if (stat(p, &st) == 0 && st.st_size >= want && (int64_t)st.st_blocks * 512 >= want)
        goto out; /* held already */
    int64_t have = free_bytes(s->path);
    if (have >= 0 && have < 2 * want) { /* the reserve and as much again (see above) */
        r = -ENOSPC;
        goto out;
    }
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    int e = posix_fallocate(fd, 0, (off_t)want);
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    close(fd);
    if (e != 0) {
        unlink(p); /* a half reserve would only hide space */
        r = -e;
    }
out:
    free(p);
    return r;
}

bool store__reserve_release(store_t *s)
{
    if (!reserve_applies(s))
        return false;
    char *p = reserve_path(s);
    bool had = unlink(p) == 0;
    free(p);
    return had;
}

void store__reserve_open(store_t *s)
{
    if (!reserve_applies(s))
        return;
    int r = store__reserve_take(s);
    if (r != 0)
        LOG_W("store",
              "cannot allocate the disk reserve %s.reserve (%zu bytes): %s; a full "
              "disk will have no room for the checkpoint and the merge to finish",
              s->path, s->cfg.disk_reserve_bytes, err_str(r));
}
