/* pg_db.c — the PostgreSQL backend's db layer: connections, their session settings and their
 * reset after a lost server, the read pool, the per-connection prepared-statement cache,
 * parameters and columns in libpq's text format, error mapping.
 *
 * Every connection runs with synchronous_commit=on (a COMMIT returns once its WAL is flushed:
 * the durability promise of store.h) and executes only statements it prepared once, so hot
 * paths never re-parse SQL. A connection whose server went away fails its calls with
 * ERR_UNAVAILABLE and is reset on a later use, at most once a second, so an outage costs a
 * refused connect per second per connection and coaphub is back within about a second of the
 * server.
 *
 * Invariant: this file knows the project's tables only through the value layout its
 * parameter and column helpers share (device_id, key_id, ts, then bool_v, long_v, dbl_v,
 * str_v, json_v); the statements live in the pg_*.c files of their job.
 */
#include "store/pg_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A lost connection is reset at most this often (per connection). */
#define PG_RESET_INTERVAL_MS 1000

/* Session settings of every connection: durable commits whatever the server's default, UTC
 * for the few date computations done in SQL, and no statement that waits forever on a lock
 * (a stuck DDL would otherwise stall the writer). */
#define PG_SESSION_SQL                                                                             \
    "SET synchronous_commit = on; SET TIME ZONE 'UTC'; SET lock_timeout = '10s'; "                 \
    "SET client_min_messages = warning"

/* ---- parameters ---- */

void pg__p_f64(pg_params_t *p, double d)
{
    if (isnan(d))
        p->v[p->n] = "NaN";
    else if (isinf(d))
        p->v[p->n] = d > 0 ? "Infinity" : "-Infinity";
    else {
        snprintf(p->buf[p->n], PG_NUM_LEN, "%.17g", d);
        p->v[p->n] = p->buf[p->n];
    }
    p->n++;
}

int pg__p_value(pg_params_t *p, const store_kv_t *kv)
{
    const char *none = NULL;
    switch (kv->type) {
    case STORE_BOOL:
        pg__p_bool(p, kv->b);
        for (int i = 0; i < 4; i++)
            pg__p_text(p, none);
        return 0;
    case STORE_LONG:
        pg__p_text(p, none);
        pg__p_i64(p, kv->l);
        for (int i = 0; i < 3; i++)
            pg__p_text(p, none);
        return 0;
    case STORE_DOUBLE:
        /* SQLite cannot store NaN (it becomes NULL, a row without a value); refuse it alike. */
        if (isnan(kv->d))
            return -EINVAL;
        pg__p_text(p, none);
        pg__p_text(p, none);
        pg__p_f64(p, kv->d);
        pg__p_text(p, none);
        pg__p_text(p, none);
        return 0;
    case STORE_STRING:
    case STORE_JSON:
        if (!kv->s)
            return -EINVAL;
        for (int i = 0; i < 3; i++)
            pg__p_text(p, none);
        pg__p_text(p, kv->type == STORE_STRING ? kv->s : none);
        pg__p_text(p, kv->type == STORE_JSON ? kv->s : none);
        return 0;
    }
    return -EINVAL;
}

int pg__p_point(pg_params_t *p, int64_t device_id, int64_t key_id, const store_kv_t *kv)
{
    int n = p->n;
    pg__p_i64(p, device_id);
    pg__p_i64(p, key_id);
    pg__p_i64(p, kv->ts);
    int r = pg__p_value(p, kv);
    if (r != 0)
        p->n = n;
    return r;
}

/* ---- errors ---- */

int pg__err(PGconn *conn, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state || !conn || PQstatus(conn) != CONNECTION_OK) {
        /* No SQLSTATE: libpq's own failure, i.e. the connection (lost, refused, reset). */
        return ERR_UNAVAILABLE;
    }
    int r = pg__err_state(state);
    if (r == ERR_STORE)
        LOG_W("store", "postgresql: %s (%s)", PQresultErrorMessage(res), state);
    return r;
}

int pg__err_state(const char *state)
{
    if (strcmp(state, "23505") == 0)
        return ERR_CONFLICT;
    if (strcmp(state, "23503") == 0)
        return -ENOENT;
    if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
        strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
        strcmp(state, "53300") == 0 /* too many connections */)
        return ERR_UNAVAILABLE;
    if (strcmp(state, "53100") == 0) /* disk full */
        return -ENOSPC;
    if (strcmp(state, "53200") == 0) /* out of memory */
        return -ENOMEM;
    if (strncmp(state, "58", 2) == 0) /* system error: I/O */
        return -EIO;
    if (strcmp(state, "25006") == 0) /* read-only transaction: a hot standby */
        return -EROFS;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
        strcmp(state, "55P03") == 0 /* lock not available (lock_timeout) */)
        return -EBUSY;
    if (strcmp(state, "22P02") == 0 || strcmp(state, "22003") == 0 || strcmp(state, "22021") == 0)
        return -EINVAL; /* bad text for a type, out of range, bad encoding */
    if (strcmp(state, "XX001") == 0 || strcmp(state, "XX002") == 0)
        return ERR_CORRUPT; /* data_corrupted, index_corrupted */
    return ERR_STORE;
}

/* ---- connections ---- */

static int session_setup(pg_conn_t *c)
{
    PGresult *res = PQexec(c->conn, PG_SESSION_SQL);
    int r = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg__err(c->conn, res);
    PQclear(res);
    return r;
}

/* Notices (a table that already exists, ...) are ours to ignore, not stderr's. */
static void ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int pg__conn_open(store_pg_t *q, pg_conn_t *c, char err[static ERR_LEN])
{
    memset(c, 0, sizeof(*c));
    c->conn = PQconnectdbParams(q->kw, q->val, 1);
    if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
        const char *m = c->conn ? PQerrorMessage(c->conn) : "out of memory";
        snprintf(err, ERR_LEN, "postgresql: cannot connect: %.*s", (int)strcspn(m, "\n"), m);
        pg__conn_close(c);
        return ERR_UNAVAILABLE;
    }
    PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
    int r = session_setup(c);
    if (r != 0) {
        snprintf(err, ERR_LEN, "postgresql: session settings: %s", PQerrorMessage(c->conn));
        pg__conn_close(c);
        return r;
    }
    return 0;
}

void pg__conn_close(pg_conn_t *c)
{
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
    c->n_slots = 0;
}

int pg__conn_ready(store_pg_t *q, pg_conn_t *c)
{
    (void)q;
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK)
        return 0;
    int64_t now = clock_mono_ms();
    if (now < c->next_reset_ms)
        return ERR_UNAVAILABLE;
    c->next_reset_ms = now + PG_RESET_INTERVAL_MS;
    if (!c->conn)
        return ERR_UNAVAILABLE;
    PQreset(c->conn);
    c->n_slots = 0; /* a new session: nothing is prepared there */
    if (PQstatus(c->conn) != CONNECTION_OK)
        return ERR_UNAVAILABLE;
    if (session_setup(c) != 0) {
        PQreset(c->conn); /* leave it for the next try */
        return ERR_UNAVAILABLE;
    }
    LOG_I("store", "postgresql: reconnected");
    return 0;
}

int pg__pool_open(store_pg_t *q, char err[static ERR_LEN])
{
    q->pool = xcalloc((size_t)q->cfg->read_pool, sizeof(pg_conn_t));
    for (; q->n_pool < q->cfg->read_pool; q->n_pool++) {
        pg_conn_t *c = &q->pool[q->n_pool];
        int r = pg__conn_open(q, c, err);
        if (r != 0)
            return r;
        c->next_free = q->pool_free;
        q->pool_free = c;
    }
    return 0;
}

void pg__pool_close(store_pg_t *q)
{
    for (int i = 0; i < q->n_pool; i++)
        pg__conn_close(&q->pool[i]);
    free(q->pool);
    q->pool = q->pool_free = NULL;
    q->n_pool = 0;
}

pg_conn_t *pg__conn_take(store_pg_t *q)
{
    pthread_mutex_lock(&q->pool_mu);
    while (!q->pool_free)
        pthread_cond_wait(&q->pool_cv, &q->pool_mu);
    pg_conn_t *c = q->pool_free;
    q->pool_free = c->next_free;
    pthread_mutex_unlock(&q->pool_mu);
    return c;
}

void pg__conn_give(store_pg_t *q, pg_conn_t *c)
{
    /* A caller that failed mid-transaction must not hand an open transaction to the next. */
    if (c->conn && PQtransactionStatus(c->conn) != PQTRANS_IDLE &&
        PQstatus(c->conn) == CONNECTION_OK)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    pthread_mutex_lock(&q->pool_mu);
    c->next_free = q->pool_free;
    q->pool_free = c;
    pthread_cond_signal(&q->pool_cv);
    pthread_mutex_unlock(&q->pool_mu);
}

/* ---- statements ---- */

/* The prepared statement for sql on c, preparing it on first use; NULL with *err set. */
static const char *prepared(pg_conn_t *c, const char *sql, int *err)
{
    /* The same literal (same address) is the common case; equal text from another call
     * site is found by the slower second pass. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < c->n_slots; i++) {
            if (pass == 0 ? c->slots[i].sql == sql : strcmp(c->slots[i].sql, sql) == 0)
                return c->slots[i].name;
        }
    }
    /* The backend has a fixed set of statements, well below the cache size. */
    ASSERT(c->n_slots < PG_STMT_CACHE);
    pg_stmt_slot_t *slot = &c->slots[c->n_slots];
    snprintf(slot->name, sizeof(slot->name), "s%zu", c->n_slots);
    PGresult *res = PQprepare(c->conn, slot->name, sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        *err = pg__err(c->conn, res);
        if (*err == ERR_STORE)
            LOG_E("store", "postgresql: prepare failed for: %.80s", sql);
        PQclear(res);
        return NULL;
    }
    PQclear(res);
    slot->sql = sql;
    c->n_slots++;
    return slot->name;
}

static PGresult *run_once(pg_conn_t *c, const char *sql, const pg_params_t *p, int *err)
{
    const char *name = prepared(c, sql, err);
    if (!name)
        return NULL;
    PGresult *res = PQexecPrepared(c->conn, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    *err = pg__err(c->conn, res);
    PQclear(res);
    return NULL;
}

int pg__pipe_send(pg_conn_t *c, store_pg_t *q, const char *sql, const pg_params_t *p)
{
    int err = 0;
    if (PQpipelineStatus(c->conn) == PQ_PIPELINE_OFF) {
        err = pg__conn_ready(q, c);
        if (err != 0)
            return err;
        /* Statements are prepared outside the pipeline (a prepare waits for its answer). */
        if (!prepared(c, sql, &err))
            return err;
        if (!PQenterPipelineMode(c->conn))
            return pg__err(c->conn, NULL);
    }
    const char *name = NULL;
    for (size_t i = 0; i < c->n_slots && !name; i++)
        if (c->slots[i].sql == sql)
            name = c->slots[i].name;
    if (!name) { /* first use inside a pipeline: prepare it between two pipelines */
        if ((err = pg__pipe_end(c)) != 0)
            return err;
        return pg__pipe_send(c, q, sql, p);
    }
    if (!PQsendQueryPrepared(c->conn, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0))
        return pg__err(c->conn, NULL);
    c->pipe_pending++;
    return 0;
}

int pg__pipe_end(pg_conn_t *c)
{
    if (!c->conn || PQpipelineStatus(c->conn) == PQ_PIPELINE_OFF)
        return 0;
    int first = 0;
    if (!PQpipelineSync(c->conn))
        first = ERR_UNAVAILABLE;
    /* Each statement's results end with a NULL; the sync's own result closes the pipeline. */
    while (first != ERR_UNAVAILABLE) {
        PGresult *res = PQgetResult(c->conn);
        if (!res) {
            if (PQstatus(c->conn) != CONNECTION_OK)
                first = ERR_UNAVAILABLE;
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (first == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            first = st == PGRES_PIPELINE_ABORTED ? ERR_STORE : pg__err(c->conn, res);
        PQclear(res);
    }
    c->pipe_pending = 0;
    if (!PQexitPipelineMode(c->conn) && first == 0)
        first = pg__err(c->conn, NULL);
    return first;
}

PGresult *pg__query(pg_conn_t *c, store_pg_t *q, const char *sql, const pg_params_t *p, int *err)
{
    *err = pg__pipe_end(c);
    if (*err == 0)
        *err = pg__conn_ready(q, c);
    if (*err != 0)
        return NULL;
    bool idle = PQtransactionStatus(c->conn) == PQTRANS_IDLE;
    PGresult *res = run_once(c, sql, p, err);
    /* An idle pool connection finds out only now that the server restarted since its last
     * use. A read outside a transaction is safe to run again on the reset connection (a
     * write is not: it may have committed before the connection was lost). */
    if (!res && *err == ERR_UNAVAILABLE && idle && strncmp(sql, "SELECT", 6) == 0) {
        c->next_reset_ms = 0;
        if (pg__conn_ready(q, c) == 0)
            res = run_once(c, sql, p, err);
    }
    return res;
}

int pg__exec(pg_conn_t *c, store_pg_t *q, const char *sql, const pg_params_t *p, int64_t *affected)
{
    int err;
    PGresult *res = pg__query(c, q, sql, p, &err);
    if (!res)
        return err;
    if (affected) {
        const char *t = PQcmdTuples(res);
        *affected = t && t[0] ? strtoll(t, NULL, 10) : 0;
    }
    PQclear(res);
    return 0;
}

int pg__exec_simple(pg_conn_t *c, store_pg_t *q, const char *sql)
{
    int r = pg__pipe_end(c);
    if (r == 0)
        r = pg__conn_ready(q, c);
    if (r != 0)
        return r;
    PGresult *res = PQexec(c->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    r = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : pg__err(c->conn, res);
    PQclear(res);
    return r;
}

/* ---- columns ---- */

int64_t pg__i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

double pg__f64(const PGresult *r, int row, int col)
{
    /* strtod reads "NaN", "Infinity" and "-Infinity" as PostgreSQL writes them. */
    return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

bool pg__bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

char *pg__str(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return xstrndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

int pg__value(const PGresult *r, int row, int col, store_kv_t *kv)
{
    kv->b = false;
    kv->l = 0;
    kv->d = 0;
    kv->s = NULL;
    if (!pg__null(r, row, col)) {
        kv->type = STORE_BOOL;
        kv->b = pg__bool(r, row, col);
    } else if (!pg__null(r, row, col + 1)) {
        kv->type = STORE_LONG;
        kv->l = pg__i64(r, row, col + 1);
    } else if (!pg__null(r, row, col + 2)) {
        kv->type = STORE_DOUBLE;
        kv->d = pg__f64(r, row, col + 2);
    } else if (!pg__null(r, row, col + 3)) {
        kv->type = STORE_STRING;
        kv->s = pg__str(r, row, col + 3);
    } else if (!pg__null(r, row, col + 4)) {
        kv->type = STORE_JSON;
        kv->s = pg__str(r, row, col + 4);
    } else {
        return -EINVAL;
    }
    return 0;
}

void pg__row_read(const PGresult *r, int row, const store_row_map_t *m, void *out)
{
    ASSERT(m->n_cols <= STORE_ROW_MAX_COLS);
    char *base = out;
    memset(out, 0, m->size);
    for (size_t i = 0; i < m->n_cols; i++) {
        void *f = base + m->col[i].off;
        int col = (int)i;
        switch (m->col[i].kind) {
        case STORE_COL_I64:
            *(int64_t *)f = pg__i64(r, row, col);
            break;
        case STORE_COL_INT:
            *(int *)f = (int)pg__i64(r, row, col);
            break;
        case STORE_COL_BOOL:
            *(bool *)f = pg__bool(r, row, col);
            break;
        case STORE_COL_STR:
            *(char **)f = pg__str(r, row, col);
            break;
        case STORE_COL_UUID:
            snprintf(f, STORE_UUID_LEN + 1, "%s",
                     pg__null(r, row, col) ? "" : PQgetvalue(r, row, col));
            break;
        }
    }
}

int pg__row_get(store_pg_t *q, const char *sql, int64_t id, const char *text,
                const store_row_map_t *m, void *out)
{
    pg_conn_t *c = pg__conn_take(q);
    pg_params_t p;
    p.n = 0;
    if (text)
        pg__p_text(&p, text);
    else
        pg__p_i64(&p, id);
    int r;
    PGresult *res = pg__query(c, q, sql, &p, &r);
    if (res) {
        if (PQntuples(res) > 0) {
            pg__row_read(res, 0, m, out);
            r = 0;
        } else {
            r = -ENOENT;
        }
        PQclear(res);
    }
    pg__conn_give(q, c);
    return r;
}

int64_t pg__new_row(char uuid[static STORE_UUID_LEN + 1])
{
    store_uuid_v4(uuid);
    return clock_wall_ms();
}
