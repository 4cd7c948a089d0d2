/* sqlite.c — the SQLite backend's life cycle: open (pragmas, migrations, pool, writer),
 * close, the per-connection statement cache, error mapping and small helpers.
 *
 * Every connection runs in WAL mode with foreign keys on and a 5 s busy timeout, and only
 * ever executes prepared statements kept in its cache, so hot paths never re-parse SQL.
 */
#include "store/store_int.h"

#include "core/log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 5000
/* 4 KiB pages (SQLite's default; new databases only, see store__conn_open) and a page cache
 * of up to 16 MiB per connection, 64 MiB for the writer (store_open says why), used as pages
 * are touched. Performance pass 1 had tried 1 KiB pages
 * against ts_kv's write amplification; the telemetry log (merge.c) removed the cause, and
 * with it larger pages mean fewer WAL frames per commit. */
#define STORE_NEW_DB_PAGE_SIZE "PRAGMA page_size=4096"
#define STORE_CACHE_PRAGMA "PRAGMA cache_size=-16384"
#define STORE_WRITER_CACHE_PRAGMA "PRAGMA cache_size=-65536"
/* A backstop only: checkpoint.c checkpoints beside the writer long before this (64 MiB). */
#define STORE_CHECKPOINT_PRAGMA "PRAGMA wal_autocheckpoint=16384"

void store_cfg_default(store_cfg_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = "coaphub.db";
    cfg->synchronous_full = true;
    cfg->batch_max_delay_ms = 0; /* waiting only added latency (performance pass 2) */
    cfg->batch_max_ops = 10000;
    cfg->read_pool = 4;
}

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
        return -EIO;
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

int store__conn_open(store_t *s, store_conn_t *c, char err[static ERR_LEN])
{
    memset(c, 0, sizeof(*c));
    int rc = sqlite3_open_v2(s->path, &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, ERR_LEN, "sqlite open %s: %s", s->path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(c->db, 1);
    const char *sync = s->cfg.synchronous_full ? "PRAGMA synchronous=FULL"
                                               : "PRAGMA synchronous=NORMAL";
    char mode[16] = "";
    char *msg = NULL;
    /* Only a new, empty database takes this (it must precede WAL, which writes page 1); an
     * existing file keeps its page size. */
    sqlite3_exec(c->db, STORE_NEW_DB_PAGE_SIZE, NULL, NULL, NULL);
    rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", journal_mode_cb, mode, &msg);
    if (rc != SQLITE_OK || strcmp(mode, "wal") != 0) {
        /* Readers beside the writer and cheap group commits both depend on WAL. */
        snprintf(err, ERR_LEN, "sqlite %s: cannot use WAL (%s)", s->path,
                 msg ? msg : mode[0] ? mode : sqlite3_errstr(rc));
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

store_conn_t *store__conn_take(store_t *s)
{
    pthread_mutex_lock(&s->pool_mu);
    while (!s->pool_free)
        pthread_cond_wait(&s->pool_cv, &s->pool_mu);
    store_conn_t *c = s->pool_free;
    s->pool_free = c->next_free;
    pthread_mutex_unlock(&s->pool_mu);
    return c;
}

void store__conn_give(store_t *s, store_conn_t *c)
{
    /* A caller that failed mid-transaction must not hand an open transaction to the next. */
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&s->pool_mu);
    c->next_free = s->pool_free;
    s->pool_free = c;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

store_t *store_open(const store_cfg_t *cfg, char err[static ERR_LEN])
{
    err[0] = '\0';
    if (!cfg || !cfg->path || !cfg->path[0]) {
        snprintf(err, ERR_LEN, "store: no database path");
        return NULL;
    }
    if (sqlite3_threadsafe() == 0) {
        snprintf(err, ERR_LEN, "store: sqlite3 built without thread support");
        return NULL;
    }
    store_t *s = xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->path = xstrdup(cfg->path);
    s->cfg.path = s->path;
    if (s->cfg.read_pool <= 0)
        s->cfg.read_pool = 4;
    if (s->cfg.batch_max_ops == 0)
        s->cfg.batch_max_ops = 10000;
    if (s->cfg.batch_max_delay_ms < 0)
        s->cfg.batch_max_delay_ms = 0;
    if (s->cfg.merge_run_rows <= 0)
        s->cfg.merge_run_rows = STORE_MERGE_RUN_ROWS;
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->stats_mu, NULL);
    store__latest_init(s);
    s->pool = xcalloc((size_t)s->cfg.read_pool, sizeof(store_conn_t));

    /* The writer's connection is opened first and runs the migrations. */
    if (store__conn_open(s, &s->wconn, err) != 0)
        goto fail;
    if (store__migrate(&s->wconn, &s->schema_version, err) != 0)
        goto fail;
    /* The writer's merges touch the newest leaf of every device's ts_kv range; with many
     * devices and a large table those pages must stay cached. Released when idle (writer.c). */
    sqlite3_exec(s->wconn.db, STORE_WRITER_CACHE_PRAGMA, NULL, NULL, NULL);
    /* The writer checks that a batch's device exists itself, once per batch (writer.c):
     * foreign keys would look up the device and the key for every point it writes and every
     * row the merge moves (two B-tree seeks each, a third of the merge's cost). Its other
     * connections keep them: device deletes cascade there. */
    if (sqlite3_exec(s->wconn.db, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, ERR_LEN, "store: %s", sqlite3_errmsg(s->wconn.db));
        goto fail;
    }
    if (store__log_count(s) != 0 || store__latest_load(s) != 0) {
        snprintf(err, ERR_LEN, "store: cannot read the telemetry log: %s",
                 sqlite3_errmsg(s->wconn.db));
        goto fail;
    }
    for (int i = 0; i < s->cfg.read_pool; i++) {
        if (store__conn_open(s, &s->pool[i], err) != 0)
            goto fail;
        s->pool[i].next_free = s->pool_free;
        s->pool_free = &s->pool[i];
    }
    if (store__checkpointer_start(s, err) != 0)
        goto fail;
    if (store__writer_start(s) != 0) {
        snprintf(err, ERR_LEN, "store: cannot start writer thread");
        goto fail;
    }
    if (!s->cfg.synchronous_full)
        LOG_W("store", "synchronous=NORMAL: the last commits may be lost on power failure");
    LOG_I("store", "opened %s (schema %d, synchronous=%s)", s->path, s->schema_version,
          s->cfg.synchronous_full ? "FULL" : "NORMAL");
    return s;
fail:
    store_close(s);
    return NULL;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    store__writer_stop(s);
    store__checkpointer_stop(s);
    for (int i = 0; i < s->cfg.read_pool; i++)
        store__conn_close(&s->pool[i]);
    store__conn_close(&s->wconn);
    free(s->pool);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->stats_mu);
    store__latest_fini(s);
    free(s->path);
    free(s);
}

int store_schema_version(store_t *s)
{
    return s->schema_version;
}

void store_get_stats(store_t *s, store_stats_t *out)
{
    pthread_mutex_lock(&s->stats_mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->stats_mu);
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

int store__key_id(store_conn_t *c, const char *key, bool create, int64_t *out)
{
    sqlite3_stmt *st = store__stmt(c, "SELECT key_id FROM key_dictionary WHERE key = ?1");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store__err(c->db, rc);
    if (!create)
        return -ENOENT;
    st = store__stmt(c, "INSERT INTO key_dictionary(key) VALUES (?1)");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store__err(c->db, rc);
    *out = sqlite3_last_insert_rowid(c->db);
    return 0;
}
