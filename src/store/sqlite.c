/* sqlite.c — the SQLite backend's life cycle: open (the writer's connection, migrations, its
 * pragmas, the read pool, the checkpoint thread) and close.
 *
 * Invariant: a failed open leaves nothing behind (it closes what it opened), so the caller
 * only ever holds a fully open backend or none.
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The writer's page cache (the others' is 16 MiB, sqlite_db.c). */
#define STORE_WRITER_CACHE_PRAGMA "PRAGMA cache_size=-65536"

void store__sqlite_close(store_db_t *db)
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

store_db_t *store__sqlite_open(store_t *s, int *schema_version, char err[static ERR_LEN])
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
    s->db = db; /* TODO(store split): the log's reads below go through s until they move */

    /* The writer's connection is opened first and runs the migrations. */
    if (store__conn_open(q, &q->wconn, err) != 0)
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
    if (store__log_count(s) != 0 || store__latest_load(s) != 0) {
        snprintf(err, ERR_LEN, "store: cannot read the telemetry log: %s",
                 sqlite3_errmsg(q->wconn.db));
        goto fail;
    }
    if (store__pool_open(q, err) != 0)
        goto fail;
    if (store__checkpointer_start(q, err) != 0)
        goto fail;
    return db;
fail:
    store__sqlite_close(db);
    s->db = NULL;
    return NULL;
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
