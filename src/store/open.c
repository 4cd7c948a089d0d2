/* open.c — the store's public face: configuration defaults, open (the backend, then the
 * writer thread), close (the writer drains first), schema version and counters.
 *
 * Invariant: store_open returns a store whose writer is running, or NULL with err filled and
 * nothing left behind; store_close commits everything submitted before it returns.
 *
 * Not here: any statement or database call (the backend's files: sqlite*.c behind backend.h),
 * and the work of the writer (writer.c) or of the synchronous calls (dispatch.c).
 */
#include "store/store_int.h"

#include "core/log.h"

#include <stdlib.h>
#include <string.h>

void store_cfg_default(store_cfg_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = "coaphub.db";
    cfg->synchronous_full = true;
    cfg->batch_max_delay_ms = 0; /* waiting only added latency (performance pass 2) */
    cfg->batch_max_ops = 10000;
    cfg->read_pool = 4;
    cfg->merge_run_rows = STORE_MERGE_RUN_ROWS;
    cfg->ts_partitioning = "MONTHS";
    cfg->ts_ttl_s = 0;
    cfg->ttl_interval_ms = 86400000; /* ThingsBoard's SQL_TTL_TS_EXECUTION_INTERVAL */
    cfg->integrity_check = true;
    /* Above the WAL's restart size (48 MiB, sqlite_write.c): a full disk's checkpoint can
     * copy the whole WAL back into the database file. */
    cfg->disk_reserve_bytes = (size_t)64 << 20;
    cfg->probe_ms = 1000;
}

bool store_cfg_is_postgresql(const store_cfg_t *cfg)
{
    const char *u = cfg->database_url;
    if (!u || !u[0])
        return false;
    return strncmp(u, "postgresql://", 13) == 0 || strncmp(u, "postgres://", 11) == 0 ||
           strncmp(u, "jdbc:postgresql://", 18) == 0 || strchr(u, '=') != NULL;
}

store_t *store_open(const store_cfg_t *cfg, char err[static ERR_LEN])
{
    err[0] = '\0';
    bool pg = cfg && store_cfg_is_postgresql(cfg);
    if (!cfg || (!pg && (!cfg->path || !cfg->path[0]))) {
        snprintf(err, ERR_LEN, "store: no database path");
        return NULL;
    }
    /* store_cfg_default is the one source of defaults; zeros here are a caller's mistake. */
    if (cfg->read_pool <= 0 || cfg->batch_max_ops == 0 || cfg->batch_max_delay_ms < 0 ||
        cfg->merge_run_rows <= 0 || cfg->ts_ttl_s < 0 || cfg->ttl_interval_ms <= 0 ||
        cfg->probe_ms <= 0) {
        snprintf(err, ERR_LEN,
                 "store: read pool, group size, merge run, TTL interval and probe interval "
                 "must be positive, the batch delay and the TTL not negative (start from "
                 "store_cfg_default)");
        return NULL;
    }
    store_t *s = xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->path = xstrdup(pg ? "postgresql" : cfg->path);
    s->cfg.path = s->path;
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->stats_mu, NULL);
    store__latest_init(s);

    s->be = pg ? &store__pg_backend : &store__sqlite_backend;
    s->db = s->be->open(s, &s->schema_version, err);
    if (!s->db)
        goto fail;
    /* The default profile, and a profile for every device from before profiles. */
    int pr = store__profiles_init(s);
    if (pr != 0) {
        snprintf(err, ERR_LEN, "store: cannot set up device profiles: %s", err_str(pr));
        goto fail;
    }
    store__reserve_open(s);
    /* Before the writer starts: the points a stop or a crash left in the log. */
    if (store__log_open(s, err) != 0)
        goto fail;
    if (store__writer_start(s) != 0) {
        snprintf(err, ERR_LEN, "store: cannot start writer thread");
        goto fail;
    }
    if (store__merge_db_start(s) != 0) {
        snprintf(err, ERR_LEN, "store: cannot start the merge thread");
        goto fail;
    }
    if (store__retention_start(s) != 0) {
        snprintf(err, ERR_LEN, "store: cannot start the retention thread");
        goto fail;
    }
    if (!s->cfg.synchronous_full && !pg)
        LOG_W("store", "synchronous=NORMAL: the last commits may be lost on power failure");
    if (pg)
        LOG_I("store", "opened postgresql (schema %d, synchronous_commit=on)", s->schema_version);
    else
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
    store__retention_stop(s);
    store__writer_stop(s);
    store__merge_db_stop(s); /* after the writer: it merges what the last commits left */
    if (s->db)
        s->be->close(s->db);
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

const char *store_backend_name(store_t *s)
{
    return s->be->name;
}

const char *store_durability(store_t *s, bool *durable)
{
    bool pg = s->be == &store__pg_backend;
    if (durable)
        *durable = pg || s->cfg.synchronous_full;
    if (pg)
        return "synchronous_commit=on";
    return s->cfg.synchronous_full ? "synchronous=FULL" : "synchronous=NORMAL";
}

int store_ready(store_t *s)
{
    if (store_unready_reason(s))
        return ERR_UNAVAILABLE;
    return s->be->ping ? s->be->ping(s->db) : 0;
}

void store_get_stats(store_t *s, store_stats_t *out)
{
    pthread_mutex_lock(&s->stats_mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->stats_mu);
}
