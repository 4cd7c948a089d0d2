/* files.c — OTA images as files under <data-dir>/ota, written crash-safely, read by block.
 *
 * Layout: <data-dir>/ota/<package uuid> holds one complete image; ".upload-*" names are
 * uploads in progress. An upload writes a temp file (O_EXCL, mode 0600), fsyncs it, renames it
 * over the final name and fsyncs the directory, so after a crash the final name holds the
 * whole image or nothing (rename(2) is atomic; without the directory fsync the rename itself
 * could be lost). The package row is written after the rename: a crash in between leaves a
 * file without has_data in its row, which the next upload replaces.
 *
 * Deliberately not here: caching file descriptors. A block request opens, preads and closes
 * (a few µs against a ~1 KB datagram); an image replaced or deleted meanwhile is never served
 * from a stale descriptor for long.
 */
#include "ota/ota.h"

#include "core/log.h"
#include "core/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".upload-"

struct ota_files {
    char *dir;
    int dirfd;
    ota_cfg_t cfg;
};

struct ota_upload {
    const ota_files_t *f;
    char uuid[STORE_UUID_LEN + 1];
    char tmp[64];
    int fd;
    int64_t size;
    ota_checksum_t *sum;
    const char *alg;
    bool committed;
};

void ota_cfg_default(ota_cfg_t *cfg)
{
    cfg->max_size = 64u * 1024u * 1024u;
}

const char *ota_type_name(ota_type_t t)
{
    return t == OTA_SOFTWARE ? "SOFTWARE" : "FIRMWARE";
}
const char *ota_type_prefix(ota_type_t t)
{
    return t == OTA_SOFTWARE ? "sw" : "fw";
}

int ota_type_parse(const char *s, ota_type_t *out)
{
    if (s && strcmp(s, "FIRMWARE") == 0)
        *out = OTA_FIRMWARE;
    else if (s && strcmp(s, "SOFTWARE") == 0)
        *out = OTA_SOFTWARE;
    else
        return -EINVAL;
    return 0;
}

/* A package uuid as the store writes them: 36 chars of [0-9a-f-]. Anything else never names
 * a file, so no path a client sends can leave the directory. */
static bool uuid_name(const char *s)
{
    size_t n = strlen(s);
    if (n != STORE_UUID_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

ota_files_t *ota_files_open(const char *data_dir, const ota_cfg_t *cfg, char err[static ERR_LEN])
{
    char *dir = xasprintf("%s/ota", data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, ERR_LEN, "cannot create %s: %s", dir, strerror(errno));
        free(dir);
        return NULL;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, ERR_LEN, "cannot open %s: %s", dir, strerror(errno));
        free(dir);
        return NULL;
    }
    ota_files_t *f = xcalloc(1, sizeof *f);
    f->dir = dir;
    f->dirfd = dfd;
    if (cfg)
        f->cfg = *cfg;
    else
        ota_cfg_default(&f->cfg);
    return f;
}

void ota_files_free(ota_files_t *f)
{
    if (!f)
        return;
    close(f->dirfd);
    free(f->dir);
    free(f);
}

const ota_cfg_t *ota_files_cfg(const ota_files_t *f)
{
    return &f->cfg;
}

int ota_files_sweep(const ota_files_t *f, store_t *s, bool uploads_too, size_t *n_removed)
{
    *n_removed = 0;
    int fd = openat(f->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        bool drop = uploads_too && strncmp(n, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;
        if (!drop && uuid_name(n)) {
            store_ota_t o = {0};
            int grc = store_ota_get_by_uuid(s, n, &o);
            store_ota_fini(&o);
            if (grc == -ENOENT)
                drop = true;
            else if (grc < 0) {
                rc = grc; /* cannot tell: keep everything */
                break;
            }
        }
        if (drop && unlinkat(f->dirfd, n, 0) == 0) {
            LOG_I("ota", "removed %s/%s (no package row, or an unfinished upload)", f->dir, n);
            (*n_removed)++;
        }
    }
    closedir(d);
    return rc;
}

int ota_files_open_image(const ota_files_t *f, const char *uuid)
{
    if (!uuid_name(uuid))
        return -ENOENT;
    int fd = openat(f->dirfd, uuid, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int ota_files_remove(const ota_files_t *f, const char *uuid)
{
    if (!uuid_name(uuid))
        return -ENOENT;
    if (unlinkat(f->dirfd, uuid, 0) != 0 && errno != ENOENT)
        return -errno;
    return fsync(f->dirfd) == 0 ? 0 : -errno;
}

int ota_upload_begin(const ota_files_t *f, const char *uuid, const char *algorithm,
                     ota_upload_t **out)
{
    *out = NULL;
    if (!uuid_name(uuid))
        return -EINVAL;
    ota_checksum_t *sum;
    const char *canon = NULL;
    int rc = ota_checksum_new(algorithm, &sum, &canon);
    if (rc < 0)
        return rc;
    ota_upload_t *u = xcalloc(1, sizeof *u);
    u->f = f;
    u->sum = sum;
    u->alg = canon;
    memcpy(u->uuid, uuid, sizeof u->uuid);
    /* Unique per upload, so two uploads of one package never write the same temp file. */
    static _Atomic unsigned seq;
    snprintf(u->tmp, sizeof u->tmp, TMP_PREFIX "%.8s-%d-%u", uuid, (int)getpid(), seq++);
    u->fd = openat(f->dirfd, u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        rc = -errno;
        u->tmp[0] = '\0';
        ota_upload_free(u);
        return rc;
    }
    *out = u;
    return 0;
}

int ota_upload_write(ota_upload_t *u, const void *p, size_t n)
{
    if ((uint64_t)u->size + n > u->f->cfg.max_size)
        return -EFBIG;
    ota_checksum_update(u->sum, p, n);
    const char *c = p;
    size_t left = n;
    while (left) {
        ssize_t w = write(u->fd, c, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        left -= (size_t)w;
    }
    u->size += (int64_t)n;
    return 0;
}

int64_t ota_upload_size(const ota_upload_t *u)
{
    return u->size;
}

int ota_upload_finish(ota_upload_t *u, char hex[static OTA_CHECKSUM_HEX_MAX],
                      const char **algorithm)
{
    if (fsync(u->fd) != 0)
        return -errno;
    ota_checksum_final(u->sum, hex);
    u->sum = NULL;
    *algorithm = u->alg;
    return 0;
}

int ota_upload_commit(ota_upload_t *u)
{
    if (renameat(u->f->dirfd, u->tmp, u->f->dirfd, u->uuid) != 0)
        return -errno;
    u->committed = true;
    return fsync(u->f->dirfd) == 0 ? 0 : -errno;
}

void ota_upload_free(ota_upload_t *u)
{
    if (!u)
        return;
    if (u->fd >= 0)
        close(u->fd);
    if (!u->committed && u->tmp[0])
        unlinkat(u->f->dirfd, u->tmp, 0);
    ota_checksum_free(u->sum);
    free(u);
}
