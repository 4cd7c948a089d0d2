/* pg_partition.c — ts_kv's time-range partitions on PostgreSQL, as ThingsBoard keeps its
 * ts_kv (SQL_POSTGRES_TS_KV_PARTITIONING): created ahead of time by a maintenance thread,
 * created on demand by the merge (pg_points.c) for a point outside them, and dropped whole by retention.
 *
 * Ranges are UTC days, months or years, or one range for everything (INDEFINITE). Every ts
 * has a range: those before 1970 share one partition and those after 9999 another, so there
 * is no DEFAULT partition (a default partition holding rows of a range would make creating
 * that range fail). If the setting changes, existing partitions stay and a new one is cut to
 * the gap between its neighbours.
 *
 * Invariants: the list of known partitions (q->parts) holds only committed partitions; the
 * merge's new ones wait in q->pending until its transaction ends (pg__parts_settle), since a
 * rolled-back CREATE leaves no partition behind. Names and bounds are printed from numbers we
 * computed, never from input.
 */
#include "store/pg_int.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_PER_DAY INT64_C(86400000)
#define YEAR_10000_MS INT64_C(253402300800000) /* 10000-01-01T00:00:00Z */
#define AHEAD_EVERY_MS (60 * 60 * 1000)        /* the maintenance thread's period */

int pg__parts_kind(const char *name, int *out)
{
    static const char *const names[] = {"DAYS", "MONTHS", "YEARS", "INDEFINITE"};
    for (int i = 0; i < 4; i++) {
        if (name && strcasecmp(name, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return -EINVAL;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The range of ts under the configured partitioning, and its name. */
static pg_part_t range_of(const store_pg_t *q, int64_t ts)
{
    pg_part_t p = {.from = INT64_MIN, .to = INT64_MAX};
    if (q->part_kind == PG_PART_INDEFINITE) {
        snprintf(p.name, sizeof p.name, "ts_kv_indefinite");
        return p;
    }
    if (ts < 0) {
        p.to = 0;
        snprintf(p.name, sizeof p.name, "ts_kv_before_1970");
        return p;
    }
    if (ts >= YEAR_10000_MS) {
        p.from = YEAR_10000_MS;
        snprintf(p.name, sizeof p.name, "ts_kv_after_9999");
        return p;
    }
    time_t secs = (time_t)floor_div(ts, 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    struct tm next = tm;
    switch (q->part_kind) {
    case PG_PART_DAYS:
        next.tm_mday++;
        snprintf(p.name, sizeof p.name, "ts_kv_%04d_%02d_%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday);
        break;
    case PG_PART_MONTHS:
        tm.tm_mday = next.tm_mday = 1;
        next.tm_mon++;
        snprintf(p.name, sizeof p.name, "ts_kv_%04d_%02d", tm.tm_year + 1900, tm.tm_mon + 1);
        break;
    default: /* YEARS */
        tm.tm_mday = next.tm_mday = 1;
        tm.tm_mon = next.tm_mon = 0;
        next.tm_year++;
        snprintf(p.name, sizeof p.name, "ts_kv_%04d", tm.tm_year + 1900);
        break;
    }
    p.from = (int64_t)timegm(&tm) * 1000;
    p.to = (int64_t)timegm(&next) * 1000;
    if (p.to > YEAR_10000_MS)
        p.to = YEAR_10000_MS;
    return p;
}

/* The known partition holding ts, or NULL. part_mu held. */
static const pg_part_t *find_locked(const store_pg_t *q, int64_t ts)
{
    size_t lo = 0, hi = q->n_parts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (q->parts[mid].to <= ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < q->n_parts && q->parts[lo].from <= ts ? &q->parts[lo] : NULL;
}

static void add_locked(store_pg_t *q, const pg_part_t *p)
{
    if (q->n_parts == q->cap_parts) {
        q->cap_parts = q->cap_parts ? q->cap_parts * 2 : 64;
        q->parts = xrealloc(q->parts, q->cap_parts * sizeof(*q->parts));
    }
    size_t i = q->n_parts;
    while (i > 0 && q->parts[i - 1].from > p->from) {
        q->parts[i] = q->parts[i - 1];
        i--;
    }
    q->parts[i] = *p;
    q->n_parts++;
}

/* Cuts p to the gap around ts between known partitions (the setting changed since they were
 * made); renames it after its start when cut. part_mu held. */
static void fit_locked(const store_pg_t *q, pg_part_t *p, int64_t ts)
{
    bool cut = false;
    for (size_t i = 0; i < q->n_parts; i++) {
        const pg_part_t *k = &q->parts[i];
        if (k->to <= ts && k->to > p->from) {
            p->from = k->to;
            cut = true;
        }
        if (k->from > ts && k->from < p->to) {
            p->to = k->from;
            cut = true;
        }
    }
    if (cut)
        snprintf(p->name, sizeof p->name, "ts_kv_p%lld", (long long)p->from);
}

/* The partition of ts: the known one (true), or the range to create for it (false). */
static bool plan(store_pg_t *q, int64_t ts, pg_part_t *p)
{
    pthread_mutex_lock(&q->part_mu);
    const pg_part_t *k = find_locked(q, ts);
    if (k) {
        *p = *k;
    } else {
        *p = range_of(q, ts);
        fit_locked(q, p, ts);
    }
    pthread_mutex_unlock(&q->part_mu);
    return k != NULL;
}

static void bound(char *out, size_t cap, int64_t v, bool is_from)
{
    if ((is_from && v == INT64_MIN) || (!is_from && v == INT64_MAX))
        snprintf(out, cap, is_from ? "MINVALUE" : "MAXVALUE");
    else
        snprintf(out, cap, "%lld", (long long)v);
}

static int create(store_pg_t *q, pg_conn_t *c, const pg_part_t *p)
{
    char from[24], to[24], sql[256];
    bound(from, sizeof from, p->from, true);
    bound(to, sizeof to, p->to, false);
    /* sql-gate: the partition name is made by range_of() from numbers; bounds are numbers. */
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS %s PARTITION OF ts_kv FOR VALUES FROM (%s) TO (%s)",
             p->name, from, to);
    int r = pg__exec_simple(c, q, sql);
    if (r != 0)
        LOG_W("store", "postgresql: cannot create partition %s: %s", p->name,
              PQerrorMessage(c->conn));
    return r;
}

/* Parses "FOR VALUES FROM (x) TO (y)" as pg_get_expr prints a range bound. */
static bool parse_bounds(const char *expr, pg_part_t *p)
{
    const char *f = strstr(expr, "FROM (");
    const char *t = strstr(expr, ") TO (");
    if (!f || !t)
        return false;
    f += 6;
    t += 6;
    f += *f == '\'';
    t += *t == '\'';
    p->from = strncmp(f, "MINVALUE", 8) == 0 ? INT64_MIN : strtoll(f, NULL, 10);
    p->to = strncmp(t, "MAXVALUE", 8) == 0 ? INT64_MAX : strtoll(t, NULL, 10);
    return true;
}

int pg__parts_load(store_pg_t *q, pg_conn_t *c)
{
    int r;
    PGresult *res = pg__query(c, q,
                              "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)"
                              " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                              " WHERE i.inhparent = 'ts_kv'::regclass",
                              NULL, &r);
    if (!res)
        return r;
    pthread_mutex_lock(&q->part_mu);
    q->n_parts = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        pg_part_t p = {0};
        snprintf(p.name, sizeof p.name, "%s", PQgetvalue(res, i, 0));
        if (parse_bounds(PQgetvalue(res, i, 1), &p))
            add_locked(q, &p);
    }
    pthread_mutex_unlock(&q->part_mu);
    PQclear(res);
    return 0;
}

static const pg_part_t *pending_find(const store_pg_t *q, int64_t ts)
{
    for (size_t i = 0; i < q->n_pending; i++)
        if (q->pending[i].from <= ts && ts < q->pending[i].to)
            return &q->pending[i];
    return NULL;
}

int pg__parts_step(store_pg_t *q, pg_conn_t *c, int64_t lo, int64_t hi, int64_t *next)
{
    pg_part_t p;
    bool known = plan(q, lo, &p);
    const pg_part_t *pend = known ? NULL : pending_find(q, lo);
    if (pend) {
        p = *pend;
    } else if (!known) {
        int r = create(q, c, &p);
        if (r != 0) {
            q->parts_stale = true; /* the transaction is aborted; reloaded after its rollback */
            return r;
        }
        if (q->n_pending == q->cap_pending) {
            q->cap_pending = q->cap_pending ? q->cap_pending * 2 : 8;
            q->pending = xrealloc(q->pending, q->cap_pending * sizeof(*q->pending));
        }
        q->pending[q->n_pending++] = p;
    }
    *next = hi < p.to ? INT64_MAX : p.to;
    return 0;
}

int pg__parts_cover(store_pg_t *q, pg_conn_t *c, const int64_t *ts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pg_part_t p;
        bool known = plan(q, ts[i], &p);
        /* Several ts of one range: the first made it (IF NOT EXISTS makes the rest cheap). */
        if (known || (i > 0 && p.from <= ts[i - 1] && ts[i - 1] < p.to))
            continue;
        int r = create(q, c, &p);
        if (r != 0)
            return r;
    }
    return 0;
}

void pg__parts_settle(store_pg_t *q, pg_conn_t *c, bool committed)
{
    if (!committed && q->parts_stale) {
        q->parts_stale = false;
        q->n_pending = 0;
        pg__parts_load(q, c); /* failing, the next creation fails and comes back */
        return;
    }
    if (q->n_pending == 0)
        return;
    pthread_mutex_lock(&q->part_mu);
    for (size_t i = 0; committed && i < q->n_pending; i++) {
        if (!find_locked(q, q->pending[i].from))
            add_locked(q, &q->pending[i]);
    }
    pthread_mutex_unlock(&q->part_mu);
    q->n_pending = 0;
}

/* Ahead of time: the partitions of the current period and the next few, so the merge rarely
 * creates one (which locks ts_kv for readers until its transaction ends). */
static void ahead(store_pg_t *q, pg_conn_t *c)
{
    int64_t now = clock_wall_ms();
    int64_t step = q->part_kind == PG_PART_DAYS ? MS_PER_DAY : 28 * MS_PER_DAY;
    int periods = q->part_kind == PG_PART_DAYS ? 8 : 3;
    for (int i = 0; i < periods; i++) {
        int64_t ts = now + i * step;
        pg_part_t p;
        if (plan(q, ts, &p))
            continue;
        if (create(q, c, &p) != 0) {
            pg__parts_load(q, c); /* someone else may have made it: learn what exists */
            return;
        }
        pthread_mutex_lock(&q->part_mu);
        if (!find_locked(q, ts))
            add_locked(q, &p);
        pthread_mutex_unlock(&q->part_mu);
        if (q->part_kind == PG_PART_INDEFINITE)
            return;
    }
}

static void *maint_main(void *arg)
{
    store_pg_t *q = arg;
    pthread_mutex_lock(&q->m_mu);
    while (!q->m_stop) {
        pthread_mutex_unlock(&q->m_mu);
        ahead(q, &q->mconn);
        pthread_mutex_lock(&q->m_mu);
        struct timespec dl;
        clock_mono_deadline(&dl, AHEAD_EVERY_MS);
        while (!q->m_stop && pthread_cond_timedwait(&q->m_cv, &q->m_mu, &dl) == 0)
            ;
    }
    pthread_mutex_unlock(&q->m_mu);
    return NULL;
}

int pg__maint_start(store_pg_t *q, char err[static ERR_LEN])
{
    int r = pg__conn_open(q, &q->mconn, err);
    if (r != 0)
        return r;
    r = pg__parts_load(q, &q->mconn);
    if (r != 0) {
        snprintf(err, ERR_LEN, "postgresql: cannot read ts_kv's partitions: %s",
                 PQerrorMessage(q->mconn.conn));
        return r;
    }
    ahead(q, &q->mconn); /* before the first point, not an hour later */
    pthread_mutex_init(&q->m_mu, NULL);
    clock_cond_init(&q->m_cv);
    if (pthread_create(&q->m_thread, NULL, maint_main, q) != 0) {
        snprintf(err, ERR_LEN, "postgresql: cannot start the partition thread");
        pthread_mutex_destroy(&q->m_mu);
        pthread_cond_destroy(&q->m_cv);
        return -EAGAIN;
    }
    pthread_setname_np(q->m_thread, "coaphub-pgmaint");
    q->m_started = true;
    return 0;
}

void pg__maint_stop(store_pg_t *q)
{
    if (q->m_started) {
        pthread_mutex_lock(&q->m_mu);
        q->m_stop = true;
        pthread_cond_signal(&q->m_cv);
        pthread_mutex_unlock(&q->m_mu);
        pthread_join(q->m_thread, NULL);
        pthread_mutex_destroy(&q->m_mu);
        pthread_cond_destroy(&q->m_cv);
        q->m_started = false;
    }
    pg__conn_close(&q->mconn);
}

int store__pg_ts_expire(store_db_t *db, int64_t cutoff_ms, int64_t *removed, bool *more)
{
    store_pg_t *q = store__pg(db);
    *removed = -1;
    *more = false;
    /* The oldest partition entirely below the cutoff, one per step. */
    pg_part_t victim;
    bool found = false;
    pthread_mutex_lock(&q->part_mu);
    if (q->n_parts > 0 && q->parts[0].to <= cutoff_ms) {
        victim = q->parts[0];
        found = true;
        *more = q->n_parts > 1 && q->parts[1].to <= cutoff_ms;
    }
    pthread_mutex_unlock(&q->part_mu);
    if (!found)
        return 0;
    pg_conn_t *c = pg__conn_take(q);
    char sql[256];
    /* The name was read back from pg_inherits: whoever can create a partition by hand chooses
     * it, so it is quoted as an identifier rather than trusted. */
    int r = pg__conn_ready(q, c);
    char *ident = r == 0 ? PQescapeIdentifier(c->conn, victim.name, strlen(victim.name)) : NULL;
    if (r == 0 && !ident)
        r = pg__err(c->conn, NULL);
    if (ident) {
        /* DROP locks ts_kv for a moment; waiting long behind a merge or a long read is not
         * worth it: the next run drops it. */
        /* sql-gate: the identifier is quoted by PQescapeIdentifier above. */
        snprintf(sql, sizeof sql,
                 "BEGIN; SET LOCAL lock_timeout = '2s'; DROP TABLE IF EXISTS %s; COMMIT", ident);
        PQfreemem(ident);
        r = pg__exec_simple(c, q, sql);
    }
    pg__conn_give(q, c);
    if (r != 0) {
        *more = false;
        return r;
    }
    pthread_mutex_lock(&q->part_mu);
    for (size_t i = 0; i < q->n_parts; i++) {
        if (strcmp(q->parts[i].name, victim.name) == 0) {
            memmove(&q->parts[i], &q->parts[i + 1], (q->n_parts - i - 1) * sizeof(*q->parts));
            q->n_parts--;
            break;
        }
    }
    pthread_mutex_unlock(&q->part_mu);
    LOG_I("store", "retention: dropped partition %s (points before %lld)", victim.name,
          (long long)victim.to);
    return 0;
}
