/* pg.c — the PostgreSQL backend: its life cycle (open: the connection parameters from the
 * URL, the writer's connection, migrations, the read pool, the partition thread; close) and its
 * ops table, which names the pg_*.c function behind each op of backend.h.
 *
 * The URL reaches libpq as its dbname with expansion on, so every libpq parameter (sslmode,
 * sslrootcert, target_session_attrs, ...) passes through; ThingsBoard's
 * "jdbc:postgresql://..." loses its "jdbc:" prefix; a user and password given apart
 * (SPRING_DATASOURCE_USERNAME / _PASSWORD) override the URL's. A few parameters of ours come
 * first, so the URL can override them: a connect timeout (a dead server must not stall the
 * writer for minutes) and TCP keepalives and a send timeout (a server that vanished without
 * closing its connections — a network partition — is noticed within about half a minute
 * instead of the kernel's two hours).
 *
 * Invariant: a failed open leaves nothing behind (it closes what it opened).
 */
#include "store/pg_int.h"

#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void pg_close(store_db_t *db)
{
    store_pg_t *q = store__pg(db);
    if (!q)
        return;
    pg__maint_stop(q);
    pg__pool_close(q);
    pg__conn_close(&q->mgconn);
    pg__conn_close(&q->wconn);
    pthread_mutex_destroy(&q->pool_mu);
    pthread_cond_destroy(&q->pool_cv);
    pthread_mutex_destroy(&q->part_mu);
    pthread_mutex_destroy(&q->ping_mu);
    free(q->parts);
    free(q->pending);
    free(q->url);
    free(q);
}

/* The keyword/value arrays libpq connects with; err filled when the URL is not one. */
static int params(store_pg_t *q, char err[static ERR_LEN])
{
    const char *url = q->cfg->database_url;
    if (strncmp(url, "jdbc:", 5) == 0)
        url += 5;
    q->url = xstrdup(url);
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(q->url, &msg);
    if (!opts) {
        snprintf(err, ERR_LEN, "store: --database is not a PostgreSQL URL libpq accepts: %s",
                 msg ? msg : "out of memory");
        PQfreemem(msg);
        return ERR_CONFIG;
    }
    PQconninfoFree(opts);
    int n = 0;
    q->kw[n] = "connect_timeout", q->val[n++] = "5";
    q->kw[n] = "keepalives_idle", q->val[n++] = "10";
    q->kw[n] = "keepalives_interval", q->val[n++] = "5";
    q->kw[n] = "keepalives_count", q->val[n++] = "3";
    q->kw[n] = "tcp_user_timeout", q->val[n++] = "20000";
    q->kw[n] = "application_name", q->val[n++] = "coaphub";
    q->kw[n] = "dbname", q->val[n++] = q->url;
    if (q->cfg->database_user && q->cfg->database_user[0])
        q->kw[n] = "user", q->val[n++] = q->cfg->database_user;
    if (q->cfg->database_password && q->cfg->database_password[0])
        q->kw[n] = "password", q->val[n++] = q->cfg->database_password;
    q->kw[n] = NULL, q->val[n] = NULL;
    return 0;
}

/* A server that is starting (or not up yet: compose files start coaphub and PostgreSQL
 * together) is waited for, up to START_WAIT_S; a refusal that waiting cannot change
 * (authentication, no such database or role) fails at once. */
enum { START_WAIT_S = 30 };

static bool worth_waiting(const char *msg)
{
    static const char *const final[] = {"authentication", "password", "does not exist",
                                        "pg_hba.conf",    "invalid",  "SSL"};
    for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
        if (strstr(msg, final[i]))
            return false;
    return true;
}

static int first_connect(store_pg_t *q, char err[static ERR_LEN])
{
    for (int waited = 0;; waited++) {
        int r = pg__conn_open(q, &q->wconn, err);
        if (r != ERR_UNAVAILABLE || waited >= START_WAIT_S || !worth_waiting(err))
            return r;
        if (waited == 0)
            LOG_W("store", "%s; waiting up to %d s for PostgreSQL", err, START_WAIT_S);
        sleep(1);
    }
}

static store_db_t *pg_open(store_t *s, int *schema_version, char err[static ERR_LEN])
{
    if (!PQisthreadsafe()) {
        snprintf(err, ERR_LEN, "store: libpq built without thread support");
        return NULL;
    }
    store_pg_t *q = xcalloc(1, sizeof(*q));
    q->s = s;
    q->cfg = &s->cfg;
    pthread_mutex_init(&q->pool_mu, NULL);
    pthread_cond_init(&q->pool_cv, NULL);
    pthread_mutex_init(&q->part_mu, NULL);
    pthread_mutex_init(&q->ping_mu, NULL);
    store_db_t *db = (store_db_t *)q;
    int kind;
    if (pg__parts_kind(q->cfg->ts_partitioning, &kind) != 0) {
        snprintf(err, ERR_LEN,
                 "store: ts partitioning '%s' is not DAYS, MONTHS, YEARS or INDEFINITE",
                 q->cfg->ts_partitioning ? q->cfg->ts_partitioning : "");
        goto fail;
    }
    q->part_kind = kind;
    if (params(q, err) != 0)
        goto fail;
    /* The writer's connection is opened first and runs the migrations. */
    if (first_connect(q, err) != 0)
        goto fail;
    if (pg__migrate(&q->wconn, q, schema_version, err) != 0)
        goto fail;
    if (pg__pool_open(q, err) != 0)
        goto fail;
    if (pg__conn_open(q, &q->mgconn, err) != 0)
        goto fail;
    if (pg__maint_start(q, err) != 0)
        goto fail;
    LOG_I("store", "postgresql: %s@%s:%s/%s", PQuser(q->wconn.conn), PQhost(q->wconn.conn),
          PQport(q->wconn.conn), PQdb(q->wconn.conn));
    return db;
fail:
    pg_close(db);
    return NULL;
}

const store_backend_t store__pg_backend = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .errmsg = store__pg_errmsg,

    .transact = store__pg_transact,
    .tx_open = store__pg_tx_open,
    .key_id = store__pg_key_id,
    .device_exists = store__pg_device_exists,
    .attr_set = store__pg_attr_set,
    .attr_remove = store__pg_attr_remove,
    .log_append = store__pg_log_append,
    .log_count = store__pg_log_count,
    .log_bounds = store__pg_log_bounds,
    .log_load = store__pg_log_load,
    .log_remove = store__pg_log_remove,
    .log_merge = store__pg_log_merge, /* no kv_upsert, latest_upsert: the database merges */
    .tidy = store__pg_tidy,
    .release = store__pg_release,
    .probe_write = store__pg_probe_write,

    .ping = store__pg_ping,
    .ts_expire = store__pg_ts_expire,

    .copy_read = store__pg_copy_read,
    .copy_write = store__pg_copy_write,
    .copy_finish = store__pg_copy_finish,
    .count_rows = store__pg_count_rows,

    .device_create = store__pg_device_create,
    .device_update = store__pg_device_update,
    .device_get = store__pg_device_get,
    .device_get_by_uuid = store__pg_device_get_by_uuid,
    .device_get_by_name = store__pg_device_get_by_name,
    .device_delete = store__pg_device_delete,
    .device_list = store__pg_device_list,
    .cred_set = store__pg_cred_set,
    .cred_get_by_device = store__pg_cred_get_by_device,
    .cred_get_by_id = store__pg_cred_get_by_id,
    .cred_foreach = store__pg_cred_foreach,
    .attr_get = store__pg_attr_get,
    .attr_keys = store__pg_attr_keys,
    .attr_delete = store__pg_attr_delete,
    .ts_keys = store__pg_ts_keys,
    .ts_latest = store__pg_ts_latest,
    .ts_delete = store__pg_ts_delete,
    .ts_history = store__pg_ts_history,
    .rpc_create = store__pg_rpc_create,
    .rpc_set_status = store__pg_rpc_set_status,
    .rpc_get = store__pg_rpc_get,
    .rpc_max_request_id = store__pg_rpc_max_request_id,
    .user_create = store__pg_user_create,
    .user_get_by_email = store__pg_user_get_by_email,
    .user_get_by_uuid = store__pg_user_get_by_uuid,
    .user_set_password = store__pg_user_set_password,
    .user_count = store__pg_user_count,
    .setting_get = store__pg_setting_get,
    .setting_set = store__pg_setting_set,
    .adm_begin = store__pg_adm_begin,
    .adm_sql = store__pg_adm_sql,
    .adm_end = store__pg_adm_end,
};
