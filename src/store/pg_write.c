/* pg_write.c — the PostgreSQL backend's side of the writer: its transactions (group commit,
 * savepoints, the merge's unsynced steps), the lock that orders deletes against them, the key
 * dictionary, the device check, attribute writes, readiness.
 *
 * Invariants:
 * - A COMMIT is reported as done only when PostgreSQL answered COMMIT to a transaction that
 *   had no failed statement. (PostgreSQL answers a COMMIT of an aborted transaction with
 *   ROLLBACK and no error: taking that for success would acknowledge points it threw away.)
 * - Only a STORE_TX_BEGIN_LAZY transaction commits with synchronous_commit off (SET LOCAL:
 *   it ends with the transaction); every other commit waits for its WAL flush.
 * - Every writer transaction holds the shared side of one advisory lock from its first
 *   statement; deletes of devices and points take its exclusive side (pg__lock_out_writer).
 *   So a delete and a writer transaction never interleave, as SQLite's single write lock
 *   ensures there: the writer's device check (writer.c) and the merge's run check (merge.c)
 *   rely on it.
 *
 * Everything here runs on the writer's own connection, on the writer thread, except
 * pg__key_id (any connection), pg__lock_out_writer (a delete's connection) and ping (any
 * thread, on a pool connection).
 */
#include "store/pg_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pg__lock_out_writer(pg_conn_t *c, store_pg_t *q)
{
    return pg__exec(c, q, "SELECT pg_advisory_xact_lock(" PG_WRITER_LOCK_KEY ")", NULL, NULL);
}

int pg__commit(pg_conn_t *c, store_pg_t *q)
{
    (void)q;
    int r = pg__pipe_end(c); /* a pipelined statement's failure is the commit's */
    if (r != 0)
        return r;
    PGconn *conn = c->conn;
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return ERR_UNAVAILABLE;
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS)
        return ERR_STORE; /* a statement failed: the caller rolls back */
    PGresult *res = PQexec(conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        r = pg__err(conn, res);
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        r = ERR_STORE;
    PQclear(res);
    return r;
}

void pg__rollback(pg_conn_t *c)
{
    (void)pg__pipe_end(c); /* what failed there is rolled back with the rest */
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK &&
        PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        PQclear(PQexec(c->conn, "ROLLBACK"));
}

int store__pg_transact(store_db_t *db, store_tx_t what)
{
    store_pg_t *q = store__pg(db);
    pg_conn_t *c = &q->wconn;
    int r;
    switch (what) {
    case STORE_TX_BEGIN:
        return pg__exec_simple(
            c, q, "BEGIN; SELECT pg_advisory_xact_lock_shared(" PG_WRITER_LOCK_KEY ")");
    case STORE_TX_BEGIN_LAZY:
        /* No flush of its own: if the server crashes before a later (synchronous) commit
         * flushes the WAL, this transaction is lost whole and its points are still in the
         * log; that later flush covers it too (WAL is written in order). */
        return pg__exec_simple(c, q,
                               "BEGIN; SET LOCAL synchronous_commit = off;"
                               " SELECT pg_advisory_xact_lock_shared(" PG_WRITER_LOCK_KEY ")");
    case STORE_TX_COMMIT:
        q->in_savepoint = false;
        return pg__commit(c, q); /* a failed COMMIT is followed by the caller's ROLLBACK */
    case STORE_TX_ROLLBACK:
        q->in_savepoint = false;
        pg__rollback(c);
        return 0;
    case STORE_TX_SAVEPOINT:
        r = pg__exec_simple(c, q, "SAVEPOINT batch");
        q->in_savepoint = r == 0;
        return r;
    case STORE_TX_SAVEPOINT_ROLLBACK:
        q->in_savepoint = false;
        return pg__exec_simple(c, q, "ROLLBACK TO SAVEPOINT batch");
    case STORE_TX_SAVEPOINT_RELEASE:
        q->in_savepoint = false;
        /* After a failure that the savepoint did not undo, the transaction stays aborted and
         * tx_open says so. */
        if (PQtransactionStatus(c->conn) != PQTRANS_INTRANS)
            return ERR_STORE;
        return pg__exec_simple(c, q, "RELEASE SAVEPOINT batch");
    }
    return -EINVAL;
}

bool store__pg_tx_open(store_db_t *db)
{
    PGconn *conn = store__pg(db)->wconn.conn;
    return conn && PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_INTRANS;
}

int pg__write_stmt(store_pg_t *q, const char *sql, const pg_params_t *p)
{
    if (q->in_savepoint)
        return pg__exec(&q->wconn, q, sql, p, NULL);
    return pg__pipe_send(&q->wconn, q, sql, p);
}

int pg__key_id(pg_conn_t *c, store_pg_t *q, const char *key, bool create, int64_t *out)
{
    pg_params_t p;
    p.n = 0;
    pg__p_text(&p, key);
    int r;
    PGresult *res = pg__query(c, q, "SELECT key_id FROM key_dictionary WHERE key = $1", &p, &r);
    if (!res)
        return r;
    bool found = PQntuples(res) > 0;
    if (found)
        *out = pg__i64(res, 0, 0);
    PQclear(res);
    if (found)
        return 0;
    if (!create)
        return -ENOENT;
    /* Another coaphub process may insert the same key at the same time: the upsert returns
     * the id either way. */
    res = pg__query(c, q,
                    "INSERT INTO key_dictionary(key) VALUES ($1) ON CONFLICT (key)"
                    " DO UPDATE SET key = excluded.key RETURNING key_id",
                    &p, &r);
    if (!res)
        return r;
    *out = pg__i64(res, 0, 0);
    PQclear(res);
    return 0;
}

int store__pg_key_id(store_db_t *db, const char *key, bool create, int64_t *out)
{
    store_pg_t *q = store__pg(db);
    return pg__key_id(&q->wconn, q, key, create, out);
}

int store__pg_device_exists(store_db_t *db, int64_t device_id)
{
    store_pg_t *q = store__pg(db);
    pg_params_t p;
    p.n = 0;
    pg__p_i64(&p, device_id);
    int r;
    PGresult *res = pg__query(&q->wconn, q, "SELECT 1 FROM device WHERE id = $1", &p, &r);
    if (!res)
        return r;
    r = PQntuples(res) > 0 ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

int store__pg_attr_set(store_db_t *db, int64_t device_id, store_scope_t scope, int64_t key_id,
                       const store_kv_t *kv)
{
    store_pg_t *q = store__pg(db);
    pg_params_t p;
    p.n = 0;
    pg__p_i64(&p, device_id);
    pg__p_i64(&p, (int64_t)scope);
    pg__p_i64(&p, key_id);
    int r = pg__p_value(&p, kv);
    if (r != 0)
        return r;
    pg__p_i64(&p, kv->ts);
    return pg__write_stmt(
        q,
        "INSERT INTO attribute_kv(device_id, attribute_type, key_id, bool_v, long_v,"
        " dbl_v, str_v, json_v, last_update_ts)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (device_id, attribute_type, key_id) DO UPDATE SET"
        " bool_v = excluded.bool_v, long_v = excluded.long_v,"
        " dbl_v = excluded.dbl_v, str_v = excluded.str_v, json_v = excluded.json_v,"
        " last_update_ts = excluded.last_update_ts,"
        " version = attribute_kv.version + 1",
        &p);
}

int store__pg_attr_remove(store_db_t *db, int64_t device_id, store_scope_t scope, int64_t key_id)
{
    store_pg_t *q = store__pg(db);
    pg_params_t p;
    p.n = 0;
    pg__p_i64(&p, device_id);
    pg__p_i64(&p, (int64_t)scope);
    pg__p_i64(&p, key_id);
    return pg__write_stmt(q,
                          "DELETE FROM attribute_kv WHERE device_id = $1 AND attribute_type = $2"
                          " AND key_id = $3",
                          &p);
}

/* Nothing to tidy between groups: PostgreSQL checkpoints and vacuums by itself. */
int store__pg_tidy(store_db_t *db)
{
    (void)db;
    return 0;
}

/* The writer's caches are the server's; nothing of ours to give back. */
void store__pg_release(store_db_t *db)
{
    (void)db;
}

const char *store__pg_errmsg(store_db_t *db)
{
    PGconn *conn = store__pg(db)->wconn.conn;
    return conn ? PQerrorMessage(conn) : "no connection";
}

/* How long a readiness answer is reused: /readyz may be polled often. */
#define PING_CACHE_MS 1000

int store__pg_ping(store_db_t *db)
{
    store_pg_t *q = store__pg(db);
    pthread_mutex_lock(&q->ping_mu);
    int64_t now = clock_mono_ms();
    if (q->ping_at_ms && now - q->ping_at_ms < PING_CACHE_MS) {
        int r = q->ping_result;
        pthread_mutex_unlock(&q->ping_mu);
        return r;
    }
    pthread_mutex_unlock(&q->ping_mu);
    pg_conn_t *c = pg__conn_take(q);
    int r;
    PGresult *res = pg__query(c, q, "SELECT 1", NULL, &r);
    if (res) {
        PQclear(res);
        r = 0;
    } else {
        r = ERR_UNAVAILABLE;
    }
    pg__conn_give(q, c);
    pthread_mutex_lock(&q->ping_mu);
    q->ping_at_ms = clock_mono_ms();
    q->ping_result = r;
    pthread_mutex_unlock(&q->ping_mu);
    return r;
}
