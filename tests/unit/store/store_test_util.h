/* store_test_util.h — the store unit tests' fixture (a store on a fresh database, optionally
 * with a device "dev"), and what they share: counting a table's rows, waiting for the merge,
 * putting a point, running SQL as another process would.
 *
 * BACKENDS. Every store test runs on both (tests/unit/store/CMakeLists.txt registers test_x on
 * SQLite and test_x_pg on PostgreSQL); COAPHUB_TEST_BACKEND picks one:
 * - unset or "sqlite": an SQLite file in a fresh temporary directory;
 * - "postgresql": a fresh database (CREATE DATABASE, a name made of the pid and a counter) on
 *   the server whose superuser URL is in COAPHUB_TEST_PG (scripts/pg-test-server.sh starts one;
 *   scripts/test.sh does that for ctest), dropped again by tstore_close. Without
 *   COAPHUB_TEST_PG every test fails with a message saying so: a PostgreSQL run never passes on
 *   SQLite, and tstore_reopen checks which backend the store really opened.
 * tstore_exec, tstore_rows and tstore_query reach either database over a connection of their
 * own (sqlite3 or libpq). Where a test needs SQL that only one backend speaks, it branches on
 * t->pg. */
#ifndef COAPHUB_TESTS_STORE_TEST_UTIL_H
#define COAPHUB_TESTS_STORE_TEST_UTIL_H

#include "store/store.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct tstore {
    char dir[64];
    char path[128]; /* SQLite: the database file */
    bool pg;        /* PostgreSQL (COAPHUB_TEST_BACKEND=postgresql) */
    char pg_db[64]; /* PostgreSQL: the test's database ... */
    char url[512];  /* ... and its URL (cfg.database_url) */
    store_t *s;
    int64_t merge_run_rows; /* 0: the store's default */
    const char *partitioning; /* NULL: the store's default (MONTHS) */
    int64_t dev;              /* device "dev", when tstore_new made one */
} tstore_t;

/* ---- PostgreSQL: the server of COAPHUB_TEST_PG ---- */

/* Whether this run is on PostgreSQL (1), SQLite (0), or misconfigured (-1, said on stderr). */
static inline int tstore_want_pg(void)
{
    const char *b = getenv("COAPHUB_TEST_BACKEND");
    if (!b || !b[0] || strcmp(b, "sqlite") == 0)
        return 0;
    if (strcmp(b, "postgresql") == 0)
        return 1;
    fprintf(stderr, "COAPHUB_TEST_BACKEND=%s: expected sqlite or postgresql\n", b);
    return -1;
}

/* The URL of database db on the COAPHUB_TEST_PG server (its path replaced, its ?query kept)
 * into out; -1 when COAPHUB_TEST_PG is not set or too long. */
static inline int tstore_pg_url(const char *db, char *out, size_t cap)
{
    const char *base = getenv("COAPHUB_TEST_PG");
    if (!base || !base[0]) {
        fprintf(stderr,
                "COAPHUB_TEST_BACKEND=postgresql, but COAPHUB_TEST_PG is not set: run "
                "scripts/test.sh, or scripts/pg-test-server.sh start DIR && . DIR/env\n");
        return -1;
    }
    const char *host = strstr(base, "://");
    if (!host) {
        fprintf(stderr, "COAPHUB_TEST_PG=%s: expected a postgresql:// URL\n", base);
        return -1;
    }
    host += 3;
    size_t host_end = strcspn(host, "/?");
    const char *query = strchr(host, '?');
    int n = snprintf(out, cap, "%.*s/%s%s", (int)(host - base + host_end), base, db,
                     query ? query : "");
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* A connection to url, bounded: 10 s to connect, no lock waited for longer than 10 s, no
 * statement longer than 60 s. NULL (said on stderr) on failure. */
static inline PGconn *tstore_pg_connect(const char *url)
{
    const char *kw[] = {"dbname", "connect_timeout", "options", NULL};
    const char *val[] = {url, "10",
                         "-c lock_timeout=10s -c statement_timeout=60s "
                         "-c client_min_messages=warning",
                         NULL};
    PGconn *c = PQconnectdbParams(kw, val, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "PostgreSQL: cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Runs sql (no rows wanted) on the server's admin database; 0 or -1 (said on stderr). */
static inline int tstore_pg_admin(const char *sql)
{
    const char *url = getenv("COAPHUB_TEST_PG");
    PGconn *c = url ? tstore_pg_connect(url) : NULL;
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc)
        fprintf(stderr, "PostgreSQL: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* ---- the fixture ---- */

/* Points cfg at t's database (SQLite file or PostgreSQL URL); nothing else in cfg changes. */
static inline void tstore_cfg_db(const tstore_t *t, store_cfg_t *cfg)
{
    cfg->path = t->path;
    cfg->database_url = t->pg ? t->url : NULL;
}

static inline store_t *tstore_reopen(tstore_t *t)
{
    store_cfg_t cfg;
    store_cfg_default(&cfg);
    tstore_cfg_db(t, &cfg);
    cfg.read_pool = 2;
    cfg.disk_reserve_bytes = 0; /* no 64 MiB file per test */
    cfg.probe_ms = 20;
    if (t->merge_run_rows)
        cfg.merge_run_rows = t->merge_run_rows;
    if (t->partitioning)
        cfg.ts_partitioning = t->partitioning;
    char err[ERR_LEN];
    t->s = store_open(&cfg, err);
    if (!t->s) {
        fprintf(stderr, "store_open: %s\n", err);
        return NULL;
    }
    const char *want = t->pg ? "postgresql" : "sqlite";
    if (strcmp(store_backend_name(t->s), want) != 0) {
        fprintf(stderr, "store_open: opened %s, but this run tests %s\n", store_backend_name(t->s),
                want);
        store_close(t->s);
        t->s = NULL;
    }
    return t->s;
}

/* Closes the store and removes its database: the SQLite file with its WAL files and the
 * directory, or the PostgreSQL database. */
static inline void tstore_close(tstore_t *t)
{
    store_close(t->s);
    t->s = NULL;
    if (t->pg && t->pg_db[0]) {
        char sql[128];
        /* FORCE: a failed test may have left a connection behind */
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", t->pg_db);
        tstore_pg_admin(sql);
        t->pg_db[0] = '\0';
    }
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", t->path, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

/* Opens a store on a fresh database of the backend under test (t->merge_run_rows is read,
 * every other field set); NULL, with nothing left behind, on failure. */
static inline store_t *tstore_open(tstore_t *t)
{
    t->s = NULL;
    t->pg = false;
    t->pg_db[0] = t->url[0] = '\0';
    snprintf(t->dir, sizeof(t->dir), "/tmp/coaphub-store-XXXXXX");
    if (!mkdtemp(t->dir))
        return NULL;
    snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
    int want_pg = tstore_want_pg();
    if (want_pg == 1) {
        static unsigned counter;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        char db[64], sql[128];
        snprintf(db, sizeof(db), "coaphub_t_%ld_%u_%lx", (long)getpid(), ++counter,
                 (unsigned long)now.tv_nsec & 0xfffff);
        snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", db);
        t->pg = true;
        if (tstore_pg_url(db, t->url, sizeof(t->url)) == 0 && tstore_pg_admin(sql) == 0)
            snprintf(t->pg_db, sizeof(t->pg_db), "%s", db);
    }
    if (want_pg < 0 || (t->pg && !t->pg_db[0]) || !tstore_reopen(t)) {
        tstore_close(t);
        return NULL;
    }
    return t->s;
}

static inline int64_t tstore_device(store_t *s, const char *name)
{
    store_device_t d = {.name = (char *)name};
    if (store_device_create(s, &d) != 0)
        return -1;
    return d.id;
}

/* A store on a fresh database (merge_run_rows 0: the default), with device "dev" in t->dev
 * when with_dev; NULL on failure. Free with tstore_teardown's steps. */
static inline tstore_t *tstore_new(int64_t merge_run_rows, bool with_dev)
{
    tstore_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->merge_run_rows = merge_run_rows;
    if (!tstore_open(t)) {
        free(t);
        return NULL;
    }
    if (with_dev && (t->dev = tstore_device(t->s, "dev")) <= 0) {
        tstore_close(t);
        free(t);
        return NULL;
    }
    return t;
}

/* cmocka setup and teardown: *state is a tstore_t (tstore_setup_dev: with device "dev"). */
static inline int tstore_setup(void **state)
{
    *state = tstore_new(0, false);
    return *state ? 0 : -1;
}

static inline int tstore_setup_dev(void **state)
{
    *state = tstore_new(0, true);
    return *state ? 0 : -1;
}

static inline int tstore_teardown(void **state)
{
    tstore_t *t = *state;
    tstore_close(t);
    free(t);
    return 0;
}

/* ---- SQL over a connection of our own ---- */

/* Runs sql (one statement or several) over a connection of our own, as another process would
 * (a crash's leftovers in the log, a write the store did not make). Returns the id of the row
 * it inserted last: on SQLite its rowid; on PostgreSQL the first column of the last
 * statement's first row when it returned rows (INSERT ... RETURNING, which SQLite speaks too),
 * else the sequence value it took last (lastval()); 0 when it inserted nothing, -1 on failure
 * (said on stderr). */
static inline int64_t tstore_exec(const tstore_t *t, const char *sql)
{
    int64_t id = -1;
    if (t->pg) {
        PGconn *c = tstore_pg_connect(t->url);
        if (!c)
            return -1;
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) {
            id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        } else if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            PQclear(r);
            r = PQexec(c, "SELECT lastval()"); /* fails when no sequence was used */
            id = PQresultStatus(r) == PGRES_TUPLES_OK ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        } else {
            fprintf(stderr, "PostgreSQL: %s: %s", sql, PQerrorMessage(c));
        }
        PQclear(r);
        PQfinish(c);
        return id;
    }
    sqlite3 *db = NULL;
    char *msg = NULL;
    if (sqlite3_open(t->path, &db) == SQLITE_OK &&
        sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        id = sqlite3_last_insert_rowid(db);
    else
        fprintf(stderr, "SQLite: %s: %s\n", sql, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return id;
}

/* Runs one query over a connection of our own and writes its first row to out, the columns'
 * text joined by '|' (NULL as ""); "" when there is no row. 0, or -1 on failure. */
static inline int tstore_query(const tstore_t *t, const char *sql, char *out, size_t cap)
{
    size_t len = 0;
    int rc = -1;
    out[0] = '\0';
    if (t->pg) {
        PGconn *c = tstore_pg_connect(t->url);
        if (!c)
            return -1;
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            rc = 0;
            for (int i = 0; PQntuples(r) > 0 && i < PQnfields(r) && len < cap; i++)
                len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "|" : "",
                                        PQgetvalue(r, 0, i));
        } else {
            fprintf(stderr, "PostgreSQL: %s: %s", sql, PQerrorMessage(c));
        }
        PQclear(r);
        PQfinish(c);
        return rc;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(t->path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        int step = sqlite3_step(st);
        rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : -1;
        for (int i = 0; step == SQLITE_ROW && i < sqlite3_column_count(st) && len < cap; i++) {
            const unsigned char *v = sqlite3_column_text(st, i);
            len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "|" : "",
                                    v ? (const char *)v : "");
        }
    }
    if (rc)
        fprintf(stderr, "SQLite: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* Rows of table, read over a connection of our own (the store's are its threads'); -1 on
 * error. */
static inline int64_t tstore_rows(const tstore_t *t, const char *table)
{
    char sql[96], out[32];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    if (tstore_query(t, sql, out, sizeof(out)) != 0 || !out[0])
        return -1;
    return strtoll(out, NULL, 10);
}

/* Waits (at most 5 s) until the idle writer has merged the whole telemetry log; returns the
 * rows left in it (0 when merged). */
static inline int64_t tstore_wait_merged(const tstore_t *t)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int64_t left;
    while ((left = tstore_rows(t, "ts_kv_log")) > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > 5000)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000}, NULL);
    }
    return left;
}

/* One LONG point, committed; the batch's status. */
static inline int tstore_put(store_t *s, int64_t dev, const char *key, int64_t v, int64_t ts)
{
    store_batch_t *b = store_batch_new();
    store_kv_t kv = {.key = (char *)key, .type = STORE_LONG, .l = v, .ts = ts};
    store_batch_ts(b, dev, &kv);
    return store_submit_wait(s, b);
}

#endif
