/* store_test_util.h — a store in a fresh temporary directory, for the store unit tests. */
#ifndef COAPHUB_TESTS_STORE_TEST_UTIL_H
#define COAPHUB_TESTS_STORE_TEST_UTIL_H

#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tstore {
    char dir[64];
    char path[128];
    store_t *s;
    int64_t merge_run_rows; /* 0: the store's default */
} tstore_t;

static inline store_t *tstore_reopen(tstore_t *t)
{
    store_cfg_t cfg;
    store_cfg_default(&cfg);
    cfg.path = t->path;
    cfg.read_pool = 2;
    cfg.merge_run_rows = t->merge_run_rows;
    char err[256];
    t->s = store_open(&cfg, err);
    if (!t->s)
        fprintf(stderr, "store_open: %s\n", err);
    return t->s;
}

static inline store_t *tstore_open(tstore_t *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/coaphub-store-XXXXXX");
    if (!mkdtemp(t->dir))
        return NULL;
    snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
    return tstore_reopen(t);
}

/* Closes the store and removes the database with its WAL files and the directory. */
static inline void tstore_close(tstore_t *t)
{
    store_close(t->s);
    t->s = NULL;
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", t->path, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

static inline int64_t tstore_device(store_t *s, const char *name)
{
    store_device_t d = {.name = (char *)name};
    if (store_device_create(s, &d) != 0)
        return -1;
    return d.id;
}

#endif
