/* sqlite_db.c — the SQLite backend's db layer: connections and their pragmas, the read
 * pool, the per-connection statement cache, binding and reading values, error mapping.
 *
 * Every connection runs in WAL mode with foreign keys on (the writer's turns them off, see
 * sqlite.c) and a 5 s busy timeout, and only ever executes prepared statements kept in its
 * cache, so hot paths never re-parse SQL.
 *
 * Invariant: this file knows the project's tables only through the value layout its binders
 * and readers share (device_id, key_id, ts, then bool_v, long_v, dbl_v, str_v, json_v); the
 * statements themselves live in the sqlite_*.c files of their job.
 */
#include "store/sqlite_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 4 KiB pages (SQLite's default; new databases only, see store__conn_open) and a page cache
 * of up to 16 MiB per connection (the writer's gets 64 MiB, sqlite.c says why), used as
 * pages are touched. Performance pass 1 had tried 1 KiB pages against ts_kv's write
 * amplification; the telemetry log (merge.c) removed the cause, and with it larger pages
 * mean fewer WAL frames per commit. */
#define STORE_NEW_DB_PAGE_SIZE "PRAGMA page_size=4096"
#define STORE_CACHE_PRAGMA "PRAGMA cache_size=-16384"
/* A backstop only: sqlite_checkpoint.c checkpoints beside the writer long before this
 * (64 MiB). */
#define STORE_CHECKPOINT_PRAGMA "PRAGMA wal_autocheckpoint=16384"

int store__err(sqlite3 *db, int rc)
{
    int ext = db ? sqlite3_extended_errcode(db) : rc;
    switch (ext) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return ERR_CONFLICT;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return -ENOENT;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: /* the WAL or its index could not be opened or made */
        return -EIO;
    case SQLITE_PERM:
        return -EROFS;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ERR_CORRUPT;
    case SQLITE_CONSTRAINT:
        return -EINVAL;
    default:
        return ERR_STORE;
    }
}

static int journal_mode_cb(void *arg, int n, char **vals, char **names)
{
    (void)names;
    if (n > 0 && vals[0])
        snprintf(arg, 16, "%s", vals[0]);
    return 0;
}

int store__conn_open(store_sqlite_t *q, store_conn_t *c, char err[static ERR_LEN])
{
    memset(c, 0, sizeof(*c));
    int rc = sqlite3_open_v2(q->cfg->path, &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, ERR_LEN, "sqlite open %s: %s", q->cfg->path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(c->db, 1);
    const char *sync = q->cfg->synchronous_full ? "PRAGMA synchronous=FULL"
                                                : "PRAGMA synchronous=NORMAL";
    char mode[16] = "";
    char *msg = NULL;
    /* Only a new, empty database takes this (it must precede WAL, which writes page 1); an
     * existing file keeps its page size. */
    sqlite3_exec(c->db, STORE_NEW_DB_PAGE_SIZE, NULL, NULL, NULL);
    rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", journal_mode_cb, mode, &msg);
    if (rc != SQLITE_OK || strcmp(mode, "wal") != 0) {
        /* Readers beside the writer and cheap group commits both depend on WAL. */
        snprintf(err, ERR_LEN, "sqlite %s: cannot use WAL (%s)", q->cfg->path,
                 msg       ? msg
                 : mode[0] ? mode
                           : sqlite3_errstr(rc));
        sqlite3_free(msg);
        goto fail;
    }
    const char *pragmas[] = {sync, "PRAGMA foreign_keys=ON", STORE_CACHE_PRAGMA,
                             STORE_CHECKPOINT_PRAGMA};
    for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
        rc = sqlite3_exec(c->db, pragmas[i], NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            snprintf(err, ERR_LEN, "%s: %s", pragmas[i], msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            goto fail;
        }
    }
    return 0;
fail:
    sqlite3_close(c->db);
    c->db = NULL;
    return ERR_STORE;
}

void store__conn_close(store_conn_t *c)
{
    for (size_t i = 0; i < c->n_slots; i++)
        sqlite3_finalize(c->slots[i].stmt);
    c->n_slots = 0;
    if (c->db)
        sqlite3_close(c->db);
    c->db = NULL;
}

int store__pool_open(store_sqlite_t *q, char err[static ERR_LEN])
{
    q->pool = xcalloc((size_t)q->cfg->read_pool, sizeof(store_conn_t));
    for (; q->n_pool < q->cfg->read_pool; q->n_pool++) {
        store_conn_t *c = &q->pool[q->n_pool];
        if (store__conn_open(q, c, err) != 0)
            return ERR_STORE;
        c->next_free = q->pool_free;
        q->pool_free = c;
    }
    return 0;
}

void store__pool_close(store_sqlite_t *q)
{
    for (int i = 0; i < q->n_pool; i++)
        store__conn_close(&q->pool[i]);
    free(q->pool);
    q->pool = q->pool_free = NULL;
    q->n_pool = 0;
}

sqlite3_stmt *store__stmt(store_conn_t *c, const char *sql)
{
    /* The same literal (same address) is the common case; equal text from another call
     * site is found by the slower second pass. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < c->n_slots; i++) {
            if (pass == 0 ? c->slots[i].sql == sql : strcmp(c->slots[i].sql, sql) == 0) {
                sqlite3_reset(c->slots[i].stmt);
                sqlite3_clear_bindings(c->slots[i].stmt);
                return c->slots[i].stmt;
            }
        }
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        LOG_E("store", "prepare failed: %s", sqlite3_errmsg(c->db));
        return NULL;
    }
    /* The module has a fixed set of statements, well below the cache size. */
    ASSERT(c->n_slots < STORE_STMT_CACHE);
    c->slots[c->n_slots].sql = sql;
    c->slots[c->n_slots].stmt = st;
    c->n_slots++;
    return st;
}

int store__exec(store_conn_t *c, const char *sql)
{
    sqlite3_stmt *st = store__stmt(c, sql);
    if (!st)
        return ERR_STORE;
    int rc = sqlite3_step(st);
    int r = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : store__err(c->db, rc);
    sqlite3_reset(st);
    return r;
}

store_conn_t *store__conn_take(store_sqlite_t *q)
{
    pthread_mutex_lock(&q->pool_mu);
    while (!q->pool_free)
        pthread_cond_wait(&q->pool_cv, &q->pool_mu);
    store_conn_t *c = q->pool_free;
    q->pool_free = c->next_free;
    pthread_mutex_unlock(&q->pool_mu);
    return c;
}

void store__conn_give(store_sqlite_t *q, store_conn_t *c)
{
    /* A caller that failed mid-transaction must not hand an open transaction to the next. */
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&q->pool_mu);
    c->next_free = q->pool_free;
    q->pool_free = c;
    pthread_cond_signal(&q->pool_cv);
    pthread_mutex_unlock(&q->pool_mu);
}

int store__step_done(store_conn_t *c, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
}

int store__bind_point(sqlite3_stmt *st, int first, int64_t device_id, int64_t key_id,
                      const store_kv_t *kv)
{
    sqlite3_bind_int64(st, first, device_id);
    sqlite3_bind_int64(st, first + 1, key_id);
    sqlite3_bind_int64(st, first + 2, kv->ts);
    return store__bind_value(st, first + 3, kv);
}

int store__exec_point(store_conn_t *c, const char *sql, int64_t device_id, int64_t key_id,
                      const store_kv_t *kv)
{
    sqlite3_stmt *st = store__stmt(c, sql);
    if (!st)
        return ERR_STORE;
    int r = store__bind_point(st, 1, device_id, key_id, kv);
    int rc = r == 0 ? sqlite3_step(st) : SQLITE_DONE;
    sqlite3_reset(st);
    if (r != 0)
        return r;
    return rc == SQLITE_DONE ? 0 : store__err(c->db, rc);
}

int64_t store__bind_new_row(sqlite3_stmt *st, int uuid_i, int time_i,
                            char uuid[static STORE_UUID_LEN + 1])
{
    store_uuid_v4(uuid);
    int64_t now = clock_wall_ms();
    sqlite3_bind_text(st, uuid_i, uuid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, time_i, now);
    return now;
}

int store__bind_value(sqlite3_stmt *st, int first, const store_kv_t *kv)
{
    for (int i = 0; i < 5; i++)
        sqlite3_bind_null(st, first + i);
    switch (kv->type) {
    case STORE_BOOL:
        return sqlite3_bind_int(st, first, kv->b ? 1 : 0) == SQLITE_OK ? 0 : ERR_STORE;
    case STORE_LONG:
        return sqlite3_bind_int64(st, first + 1, kv->l) == SQLITE_OK ? 0 : ERR_STORE;
    case STORE_DOUBLE:
        /* SQLite stores NaN as NULL, which would leave the row without a value. */
        if (isnan(kv->d))
            return -EINVAL;
        return sqlite3_bind_double(st, first + 2, kv->d) == SQLITE_OK ? 0 : ERR_STORE;
    case STORE_STRING:
    case STORE_JSON:
        if (!kv->s)
            return -EINVAL;
        return sqlite3_bind_text(st, first + (kv->type == STORE_STRING ? 3 : 4), kv->s, -1,
                                 SQLITE_TRANSIENT) == SQLITE_OK
                   ? 0
                   : ERR_STORE;
    }
    return -EINVAL;
}

int store__column_value(sqlite3_stmt *st, int col, store_kv_t *kv)
{
    kv->b = false;
    kv->l = 0;
    kv->d = 0;
    kv->s = NULL;
    if (sqlite3_column_type(st, col) != SQLITE_NULL) {
        kv->type = STORE_BOOL;
        kv->b = sqlite3_column_int(st, col) != 0;
    } else if (sqlite3_column_type(st, col + 1) != SQLITE_NULL) {
        kv->type = STORE_LONG;
        kv->l = sqlite3_column_int64(st, col + 1);
    } else if (sqlite3_column_type(st, col + 2) != SQLITE_NULL) {
        kv->type = STORE_DOUBLE;
        kv->d = sqlite3_column_double(st, col + 2);
    } else if (sqlite3_column_type(st, col + 3) != SQLITE_NULL) {
        kv->type = STORE_STRING;
        kv->s = store__col_str(st, col + 3);
    } else if (sqlite3_column_type(st, col + 4) != SQLITE_NULL) {
        kv->type = STORE_JSON;
        kv->s = store__col_str(st, col + 4);
    } else {
        return -EINVAL;
    }
    return 0;
}

void store__row_read(sqlite3_stmt *st, const store_row_map_t *m, void *out)
{
    ASSERT(m->n_cols <= STORE_ROW_MAX_COLS);
    char *base = out;
    memset(out, 0, m->size);
    for (size_t i = 0; i < m->n_cols; i++) {
        void *f = base + m->col[i].off;
        int col = (int)i;
        switch (m->col[i].kind) {
        case STORE_COL_I64:
            *(int64_t *)f = sqlite3_column_int64(st, col);
            break;
        case STORE_COL_INT:
            *(int *)f = sqlite3_column_int(st, col);
            break;
        case STORE_COL_BOOL:
            *(bool *)f = sqlite3_column_int(st, col) != 0;
            break;
        case STORE_COL_STR:
            *(char **)f = store__col_str(st, col);
            break;
        case STORE_COL_UUID:
            store__col_uuid(st, col, f);
            break;
        }
    }
}

int store__row_get(store_sqlite_t *q, const char *sql, int64_t id, const char *text,
                   const store_row_map_t *m, void *out)
{
    store_conn_t *c = store__conn_take(q);
    int r = ERR_STORE;
    sqlite3_stmt *st = store__stmt(c, sql);
    if (!st)
        goto out;
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store__row_read(st, m, out);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : store__err(c->db, rc);
    }
    sqlite3_reset(st);
out:
    store__conn_give(q, c);
    return r;
}
