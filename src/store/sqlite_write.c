/* sqlite_write.c — the SQLite backend's side of the writer: its transactions (group commit,
 * savepoints, the merge's unsynced steps), the key dictionary, the device check, attribute
 * writes, and the writer's upkeep (WAL restart, memory when idle).
 *
 * Invariant: everything here runs on the writer's own connection, on the writer thread, except
 * store__key_id, which any connection may run. Of the writer's transactions only a
 * STORE_TX_BEGIN_LAZY one commits without an fsync, and the synchronous level is back to the
 * configured one before transact() returns from its COMMIT or ROLLBACK: acknowledging points of a
 * commit that was not synced is the one thing the store must never do.
 *
 * Not here: the telemetry statements (sqlite_points.c) and the decisions of when to begin,
 * commit or roll back (writer.c, merge.c).
 */
#include "store/sqlite_int.h"

#include "core/log.h"

#include <errno.h>
#include <stdlib.h>

/* The writer's level once a lazy transaction ends; a failure stops the process (see the
 * invariant: carrying on could acknowledge unsynced points). */
static void durable_again(store_sqlite_t *q)
{
    if (!q->lazy)
        return;
    q->lazy = false;
    if (store__exec(&q->wconn, q->cfg->synchronous_full ? "PRAGMA synchronous=FULL"
                                                        : "PRAGMA synchronous=NORMAL") != 0) {
        LOG_E("store", "cannot restore the synchronous level after a merge: stopping");
        abort();
    }
}

int store__sqlite_transact(store_db_t *db, store_tx_t what)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = &q->wconn;
    int r = 0;
    switch (what) {
    case STORE_TX_BEGIN:
        return store__exec(c, "BEGIN IMMEDIATE");
    case STORE_TX_BEGIN_LAZY:
        /* synchronous=NORMAL: no fsync of its own. If power fails before a later
         * (synchronous=FULL) commit syncs the WAL, this transaction is rolled back whole and
         * its points are still in the log; that fsync covers it too. */
        q->lazy = true;
        r = store__exec(c, "PRAGMA synchronous=NORMAL");
        return r == 0 ? store__exec(c, "BEGIN IMMEDIATE") : r;
    case STORE_TX_COMMIT:
        r = store__exec(c, "COMMIT");
        if (r == 0)
            durable_again(q);
        return r; /* a failed COMMIT is followed by the caller's ROLLBACK */
    case STORE_TX_ROLLBACK:
        if (!sqlite3_get_autocommit(c->db))
            store__exec(c, "ROLLBACK");
        durable_again(q);
        return 0;
    case STORE_TX_SAVEPOINT:
        return store__exec(c, "SAVEPOINT batch");
    case STORE_TX_SAVEPOINT_ROLLBACK:
        return store__exec(c, "ROLLBACK TO batch");
    case STORE_TX_SAVEPOINT_RELEASE:
        return store__exec(c, "RELEASE batch");
    }
    return -EINVAL;
}

bool store__sqlite_tx_open(store_db_t *db)
{
    return !sqlite3_get_autocommit(store__sq(db)->wconn.db);
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

int store__sqlite_key_id(store_db_t *db, const char *key, bool create, int64_t *out)
{
    return store__key_id(&store__sq(db)->wconn, key, create, out);
}

int store__sqlite_device_exists(store_db_t *db, int64_t device_id)
{
    store_conn_t *c = &store__sq(db)->wconn;
    sqlite3_stmt *st = store__stmt(c, "SELECT 1 FROM device WHERE id = ?1");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, device_id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? -ENOENT : store__err(c->db, rc);
    return 0;
}

int store__sqlite_attr_set(store_db_t *db, int64_t device_id, store_scope_t scope, int64_t key_id,
                           const store_kv_t *kv)
{
    store_conn_t *c = &store__sq(db)->wconn;
    sqlite3_stmt *st = store__stmt(
        c,
        "INSERT INTO attribute_kv(device_id, attribute_type, key_id, bool_v, long_v, dbl_v,"
        " str_v, json_v, last_update_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        " ON CONFLICT(device_id, attribute_type, key_id) DO UPDATE SET"
        " bool_v = excluded.bool_v, long_v = excluded.long_v, dbl_v = excluded.dbl_v,"
        " str_v = excluded.str_v, json_v = excluded.json_v,"
        " last_update_ts = excluded.last_update_ts, version = attribute_kv.version + 1");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int(st, 2, (int)scope);
    sqlite3_bind_int64(st, 3, key_id);
    sqlite3_bind_int64(st, 9, kv->ts);
    int r = store__bind_value(st, 4, kv);
    if (r != 0) {
        sqlite3_reset(st);
        return r;
    }
    return store__step_done(c, st);
}

int store__sqlite_attr_remove(store_db_t *db, int64_t device_id, store_scope_t scope,
                              int64_t key_id)
{
    store_conn_t *c = &store__sq(db)->wconn;
    sqlite3_stmt *st = store__stmt(c,
                                   "DELETE FROM attribute_kv WHERE device_id = ?1"
                                   " AND attribute_type = ?2 AND key_id = ?3");
    if (!st)
        return ERR_STORE;
    sqlite3_bind_int64(st, 1, device_id);
    sqlite3_bind_int(st, 2, (int)scope);
    sqlite3_bind_int64(st, 3, key_id);
    return store__step_done(c, st);
}

/* The WAL is restarted once it holds this many frames (48 MiB at 4 KiB pages, below the
 * 64 MiB autocheckpoint backstop) and the checkpoint thread has just copied it
 * (sqlite_checkpoint.c says why). Each restart costs the writer a checkpoint of the last
 * frames and an fsync (2-10 ms measured), so not too often: at 16 MiB it came twice a
 * second. */
enum { WAL_RESTART_FRAMES = 12288 };

int store__sqlite_tidy(store_db_t *db)
{
    store_sqlite_t *q = store__sq(db);
    int fault = atomic_load(&q->ckpt_fault);
    if (fault != 0)
        return fault;
    if (atomic_load(&q->ckpt_backfilled) < WAL_RESTART_FRAMES)
        return 0;
    atomic_store(&q->ckpt_backfilled, 0);
    /* Copies the frames committed since that pass; the next write then starts the WAL over.
     * BUSY (the checkpoint thread is in a pass again) only means: next time. */
    (void)sqlite3_wal_checkpoint_v2(q->wconn.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return 0;
}

/* On the writer's own connection: a fault that struck it (a read-only or immutable file, a
 * full disk) must have cleared for it, not just for a fresh connection. */
int store__sqlite_probe_write(store_db_t *db, const char *value)
{
    store_conn_t *c = &store__sq(db)->wconn;
    int r = store__exec(c, "BEGIN IMMEDIATE");
    if (r != 0)
        return r;
    sqlite3_stmt *st = store__stmt(c,
                                   "INSERT INTO settings(key, value)"
                                   " VALUES ('coaphub.write_probe', ?1)"
                                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    r = st ? 0 : ERR_STORE;
    if (r == 0) {
        sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
        r = store__step_done(c, st);
    }
    if (r == 0)
        r = store__exec(c, "COMMIT");
    if (r != 0 && !sqlite3_get_autocommit(c->db))
        store__exec(c, "ROLLBACK");
    if (r != 0)
        return r;
    /* And the database file takes pages again: a checkpoint must copy the whole WAL, the
     * probe's own page with it (an immutable database file takes writes into the WAL, and
     * only a checkpoint finds out). BUSY (the checkpoint thread is in a pass) proves nothing:
     * the next probe. */
    int n_log = 0, n_ckpt = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &n_log, &n_ckpt);
    if (rc == SQLITE_OK && n_ckpt < n_log)
        rc = SQLITE_BUSY; /* a reader held some frames back */
    r = rc == SQLITE_OK ? 0 : rc == SQLITE_BUSY ? -EBUSY : store__err(c->db, rc);
    if (r == 0)
        atomic_store(&store__sq(db)->ckpt_fault, 0);
    return r;
}

/* The page cache (up to 64 MiB, sqlite.c); the next commits fill it again. */
void store__sqlite_release(store_db_t *db)
{
    sqlite3_db_release_memory(store__sq(db)->wconn.db);
}

const char *store__sqlite_errmsg(store_db_t *db)
{
    return sqlite3_errmsg(store__sq(db)->wconn.db);
}

/* Readiness (store_ready): the database file can be read. A SQLite store has no server to
 * lose; this catches a file that became unreadable (permissions, a vanished mount). */
int store__sqlite_ping(store_db_t *db)
{
    store_sqlite_t *q = store__sq(db);
    store_conn_t *c = store__conn_take(q);
    int r = store__exec(c, "SELECT version FROM schema_version LIMIT 1");
    store__conn_give(q, c);
    return r == 0 ? 0 : ERR_UNAVAILABLE;
}
