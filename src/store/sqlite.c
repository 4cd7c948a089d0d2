/* sqlite.c — the SQLite backend: its life cycle (open: the writer's connection, migrations,
 * the writer's pragmas, the read pool, the checkpoint thread; close) and its ops table, which
 * names the sqlite_*.c function behind each op of backend.h.
 *
 * Invariant: a failed open leaves nothing behind (it closes what it opened), so the store
 * only ever holds a fully open backend or none.
 */
#include "store/sqlite_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The writer's page cache (the others' is 16 MiB, sqlite_db.c). */
#define STORE_WRITER_CACHE_PRAGMA "PRAGMA cache_size=-65536"

static void sqlite_close(store_db_t *db)
{
    store_sqlite_t *q = store__sq(db);
    if (!q)
        return;
    store__checkpointer_stop(q);
    store__pool_close(q);
    store__conn_close(&q->wconn);
    pthread_mutex_destroy(&q->pool_mu);
    pthread_cond_destroy(&q->pool_cv);
    free(q);
}

/* How a damaged database is recovered (docs/operations.md says more). .dump keeps every row
 * SQLite can still read and works with every sqlite3 (it ends a damaged dump with ROLLBACK,
 * which sed turns into COMMIT); .recover can save more, but Debian 12's sqlite3 3.40.1 fails
 * it with "SQL logic error" even on a sound file. */
#define RECOVER_HINT                                                                               \
    "stop the server and recover it: sqlite3 %s .dump | sed '$s/^ROLLBACK; -- due to "             \
    "errors$/COMMIT;/' | sqlite3 %s.recovered, check the result, then move it in place of %s "     \
    "and remove %s-wal and %s-shm (docs/operations.md, \"Recovering a damaged database\")"

/* A database that cannot even be opened (its header is damaged): the recovery command. */
static void explain_unopenable(const char *path, char err[static ERR_LEN])
{
    if (!strstr(err, "not a database") && !strstr(err, "malformed"))
        return;
    LOG_E("store", "database %s is damaged (%s); " RECOVER_HINT, path, err, path, path, path, path,
          path);
}

/* PRAGMA quick_check at open (cfg.integrity_check): reads every page of the database (a few
 * seconds per GiB, docs/operations.md has the figures) and checks each B-tree's structure,
 * but not that indexes match their tables (integrity_check's much slower part). A database
 * that fails it is refused: served, it would answer history with holes as if complete. */
static int integrity_check(store_sqlite_t *q, char err[static ERR_LEN])
{
    const char *path = q->cfg->path;
    int64_t t0 = clock_mono_ms();
    sqlite3_stmt *st = NULL;
    char first[160] = "";
    int n_bad = 0;
    int rc = sqlite3_prepare_v2(q->wconn.db, "PRAGMA quick_check(10)", -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        const char *m = (const char *)sqlite3_column_text(st, 0);
        if (m && strcmp(m, "ok") == 0)
            continue;
        if (n_bad++ == 0)
            snprintf(first, sizeof first, "%s", m ? m : "?");
        LOG_E("store", "quick_check: %s", m ? m : "?");
    }
    if (rc != SQLITE_DONE && rc != SQLITE_OK && n_bad == 0) {
        snprintf(first, sizeof first, "%s", sqlite3_errmsg(q->wconn.db));
        n_bad = 1;
    }
    sqlite3_finalize(st);
    if (n_bad == 0) {
        LOG_I("store", "integrity check (quick_check) of %s: ok in %lld ms", path,
              (long long)(clock_mono_ms() - t0));
        return 0;
    }
    LOG_E("store", "database %s is corrupt; refusing to start; " RECOVER_HINT, path, path, path,
          path, path, path);
    int n = snprintf(err, ERR_LEN,
                     "database %s is corrupt (quick_check: %s); recover it with sqlite3 .dump "
                     "(see the log line above and docs/operations.md)",
                     path, first);
    (void)n; /* a long path cuts the message: the log line above has it whole */
    return ERR_CORRUPT;
}

static store_db_t *sqlite_open(store_t *s, int *schema_version, char err[static ERR_LEN])
{
    if (sqlite3_threadsafe() == 0) {
        snprintf(err, ERR_LEN, "store: sqlite3 built without thread support");
        return NULL;
    }
    store_sqlite_t *q = xcalloc(1, sizeof(*q));
    q->s = s;
    q->cfg = &s->cfg;
    pthread_mutex_init(&q->pool_mu, NULL);
    pthread_cond_init(&q->pool_cv, NULL);
    store_db_t *db = (store_db_t *)q;

    /* The writer's connection is opened first and runs the migrations. */
    if (store__conn_open(q, &q->wconn, err) != 0) {
        explain_unopenable(q->cfg->path, err);
        goto fail;
    }
    if (q->cfg->integrity_check && integrity_check(q, err) != 0)
        goto fail;
    if (store__migrate(&q->wconn, schema_version, err) != 0)
        goto fail;
    /* The writer's merges touch the newest leaf of every device's ts_kv range; with many
     * devices and a large table those pages must stay cached. Released when idle (writer.c). */
    sqlite3_exec(q->wconn.db, STORE_WRITER_CACHE_PRAGMA, NULL, NULL, NULL);
    /* The writer checks that a batch's device exists itself, once per batch (writer.c):
     * foreign keys would look up the device and the key for every point it writes and every
     * row the merge moves (two B-tree seeks each, a third of the merge's cost). Its other
     * connections keep them: device deletes cascade there. */
    if (sqlite3_exec(q->wconn.db, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, ERR_LEN, "store: %s", sqlite3_errmsg(q->wconn.db));
        goto fail;
    }
    if (store__pool_open(q, err) != 0)
        goto fail;
    if (store__checkpointer_start(q, err) != 0)
        goto fail;
    return db;
fail:
    sqlite_close(db);
    return NULL;
}

const store_backend_t store__sqlite_backend = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .errmsg = store__sqlite_errmsg,

    .transact = store__sqlite_transact,
    .tx_open = store__sqlite_tx_open,
    .key_id = store__sqlite_key_id,
    .device_exists = store__sqlite_device_exists,
    .attr_set = store__sqlite_attr_set,
    .attr_remove = store__sqlite_attr_remove,
    .log_append = store__sqlite_log_append,
    .log_count = store__sqlite_log_count,
    .log_bounds = store__sqlite_log_bounds,
    .log_load = store__sqlite_log_load,
    .log_remove = store__sqlite_log_remove,
    .kv_upsert = store__sqlite_kv_upsert,
    .latest_upsert = store__sqlite_latest_upsert,
    .tidy = store__sqlite_tidy,
    .release = store__sqlite_release,
    .probe_write = store__sqlite_probe_write,

    .ping = store__sqlite_ping,
    .ts_expire = store__sqlite_ts_expire,

    .copy_read = store__sqlite_copy_read,
    .copy_write = store__sqlite_copy_write,
    .copy_finish = store__sqlite_copy_finish,
    .count_rows = store__sqlite_count_rows,
    .backup = store__sqlite_backup,

    .device_create = store__sqlite_device_create,
    .device_update = store__sqlite_device_update,
    .device_get = store__sqlite_device_get,
    .device_get_by_uuid = store__sqlite_device_get_by_uuid,
    .device_get_by_name = store__sqlite_device_get_by_name,
    .device_delete = store__sqlite_device_delete,
    .device_list = store__sqlite_device_list,
    .cred_set = store__sqlite_cred_set,
    .cred_get_by_device = store__sqlite_cred_get_by_device,
    .cred_get_by_id = store__sqlite_cred_get_by_id,
    .cred_foreach = store__sqlite_cred_foreach,
    .attr_get = store__sqlite_attr_get,
    .attr_keys = store__sqlite_attr_keys,
    .attr_delete = store__sqlite_attr_delete,
    .ts_keys = store__sqlite_ts_keys,
    .ts_latest = store__sqlite_ts_latest,
    .ts_delete = store__sqlite_ts_delete,
    .ts_history = store__sqlite_ts_history,
    .rpc_create = store__sqlite_rpc_create,
    .rpc_set_status = store__sqlite_rpc_set_status,
    .rpc_get = store__sqlite_rpc_get,
    .rpc_max_request_id = store__sqlite_rpc_max_request_id,
    .user_create = store__sqlite_user_create,
    .user_get_by_email = store__sqlite_user_get_by_email,
    .user_get_by_uuid = store__sqlite_user_get_by_uuid,
    .user_set_password = store__sqlite_user_set_password,
    .user_count = store__sqlite_user_count,
    .setting_get = store__sqlite_setting_get,
    .setting_set = store__sqlite_setting_set,
    .adm_begin = store__sqlite_adm_begin,
    .adm_sql = store__sqlite_adm_sql,
    .adm_end = store__sqlite_adm_end,
};
