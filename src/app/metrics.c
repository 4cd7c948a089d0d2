/* metrics.c — GET /metrics: Prometheus text exposition of the daemon's counters.
 *
 * Shard counters live on their loop threads without locks; the collector posts a small job
 * to every shard's loop and waits (at most a second) for each to copy its counters out, so
 * the datagram path never pays for metrics. Names follow operations.md §B4: one prefix,
 * base units, _total on counters, no per-device labels.
 */
#include "app/server_int.h"

#include "core/clock.h"
#include "core/xmalloc.h"

#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shard_snap {
    coap_engine_stats_t coap;
    api_stats_t api;
    udp_stats_t udp;
    dtls_stats_t dtls;
    bool has_dtls;
} shard_snap_t;

typedef struct collect {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    int refs; /* the collector and each posted job: the last one frees */
    shard_snap_t *snaps;
    shard_t *shards;
} collect_t;

static void collect_unref(collect_t *c)
{
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left)
        return;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->snaps);
    free(c);
}

typedef struct job {
    collect_t *c;
    int index;
} job_t;

static void snapshot(void *arg)
{
    job_t *j = arg;
    collect_t *c = j->c;
    shard_t *sh = &c->shards[j->index];
    shard_snap_t snap = {0};
    coap_engine_get_stats(api_shard_engine(sh->api), &snap.coap);
    api_shard_get_stats(sh->api, &snap.api);
    udp_listener_get_stats(sh->udp, &snap.udp);
    if (sh->dtls) {
        dtls_listener_get_stats(sh->dtls, &snap.dtls);
        snap.has_dtls = true;
    }
    pthread_mutex_lock(&c->mu);
    c->snaps[j->index] = snap;
    c->pending--;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    collect_unref(c);
    free(j);
}

typedef struct out {
    char *buf;
    size_t len, cap;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (o->len + (size_t)n + 1 > o->cap) {
        o->cap = (o->len + (size_t)n + 1) * 2;
        o->buf = xrealloc(o->buf, o->cap);
    }
    va_start(ap, fmt);
    vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    o->len += (size_t)n;
}

static void metric(out_t *o, const char *name, const char *type, const char *help,
                   const char *labels, uint64_t v)
{
    put(o, "# HELP coaphub_%s %s\n# TYPE coaphub_%s %s\ncoaphub_%s%s %llu\n", name, help, name,
        type, name, labels ? labels : "", (unsigned long long)v);
}

/* The /metrics description of each stats struct, from the module's one X-macro list. */
#define DESC_ROW(S, field, family, type, labels, help)                                             \
    {family, type, labels, help, offsetof(S, field)},
#define COAP_DESC(f, fam, ty, lab, h) DESC_ROW(coap_engine_stats_t, f, fam, ty, lab, h)
#define API_DESC(f, fam, ty, lab, h) DESC_ROW(api_stats_t, f, fam, ty, lab, h)
#define UDP_DESC(f, fam, ty, lab, h) DESC_ROW(udp_stats_t, f, fam, ty, lab, h)
#define DTLS_DESC(f, fam, ty, lab, h) DESC_ROW(dtls_stats_t, f, fam, ty, lab, h)
static const stats_desc_t coap_desc[] = {COAP_ENGINE_STATS(COAP_DESC)};
static const stats_desc_t api_desc[] = {API_STATS(API_DESC)};
static const stats_desc_t udp_desc[] = {UDP_STATS(UDP_DESC)};
static const stats_desc_t dtls_desc[] = {DTLS_STATS(DTLS_DESC)};

/* Writes every exported row of one stats struct; HELP and TYPE once per family. */
static void put_stats(out_t *o, const stats_desc_t *d, size_t n, const void *stats)
{
    const char *family = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!d[i].family)
            continue;
        if (!family || strcmp(family, d[i].family) != 0) {
            family = d[i].family;
            put(o, "# HELP coaphub_%s %s\n# TYPE coaphub_%s %s\n", family, d[i].help, family,
                d[i].type);
        }
        uint64_t v;
        memcpy(&v, (const char *)stats + d[i].offset, sizeof v);
        put(o, "coaphub_%s%s %llu\n", family, d[i].labels ? d[i].labels : "",
            (unsigned long long)v);
    }
}

/* sum += one shard's snapshot, field by field as the X-macro lists name them. */
static void snap_add(shard_snap_t *sum, const shard_snap_t *p)
{
    {
        coap_engine_stats_t *dst = &sum->coap;
        const coap_engine_stats_t *src = &p->coap;
        COAP_ENGINE_STATS(STATS_ADD)
    }
    {
        api_stats_t *dst = &sum->api;
        const api_stats_t *src = &p->api;
        API_STATS(STATS_ADD)
    }
    {
        udp_stats_t *dst = &sum->udp;
        const udp_stats_t *src = &p->udp;
        UDP_STATS(STATS_ADD)
    }
    {
        dtls_stats_t *dst = &sum->dtls;
        const dtls_stats_t *src = &p->dtls;
        DTLS_STATS(STATS_ADD)
    }
    sum->has_dtls |= p->has_dtls;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", (unsigned long long *)&kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

char *server_metrics_text(void *ctx)
{
    server_t *s = ctx;
    collect_t *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->snaps = xcalloc((size_t)s->n_shards, sizeof *c->snaps);
    c->shards = s->shards;
    c->pending = s->n_shards;
    c->refs = 1 + s->n_shards;
    for (int i = 0; i < s->n_shards; i++) {
        job_t *j = xmalloc(sizeof *j);
        *j = (job_t){.c = c, .index = i};
        loop_post(s->shards[i].loop, snapshot, j);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 1;
    pthread_mutex_lock(&c->mu);
    while (c->pending > 0)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) != 0)
            break;
    shard_snap_t sum = {0};
    for (int i = 0; i < s->n_shards; i++)
        snap_add(&sum, &c->snaps[i]);
    pthread_mutex_unlock(&c->mu);
    collect_unref(c);

    out_t o = {0};
    put(&o, "# HELP coaphub_build_info Build information.\n# TYPE coaphub_build_info gauge\n"
            "coaphub_build_info{version=\"%s\"} 1\n", COAPHUB_VERSION);
    put_stats(&o, coap_desc, sizeof coap_desc / sizeof coap_desc[0], &sum.coap);
    put_stats(&o, api_desc, sizeof api_desc / sizeof api_desc[0], &sum.api);
    put_stats(&o, udp_desc, sizeof udp_desc / sizeof udp_desc[0], &sum.udp);
    if (sum.has_dtls)
        put_stats(&o, dtls_desc, sizeof dtls_desc / sizeof dtls_desc[0], &sum.dtls);
    if (s->dtls_ctx)
        metric(&o, "dtls_saved_sessions_restored", "gauge",
               "DTLS sessions loaded at start from the previous run's saved-sessions file.", NULL,
               dtls_ctx_restore_loaded(s->dtls_ctx));
    store_stats_t st;
    store_get_stats(s->store, &st);
    metric(&o, "storage_commits_total", "counter", "Group commits.", NULL, st.commits);
    metric(&o, "storage_ops_total", "counter", "Operations committed.", NULL, st.ops);
    metric(&o, "storage_failed_commits_total", "counter", "Commits that failed.", NULL,
           st.failed_commits);
    metric(&o, "storage_max_group_batches", "gauge", "Largest group commit so far, in batches.",
           NULL, st.max_group);
    /* reliability.md S3: relaxed durability is visible here as well as in the start-up log. */
    bool durable = true;
    const char *mode = store_durability(s->store, &durable);
    char dl[96];
    snprintf(dl, sizeof dl, "{backend=\"%s\",mode=\"%s\"}", store_backend_name(s->store), mode);
    metric(&o, "storage_durable", "gauge",
           "1 when every acknowledged commit is synced to disk (SQLite synchronous=FULL, "
           "PostgreSQL synchronous_commit=on), 0 when the last ones may be lost on power "
           "failure (--sync-full false); mode: the setting.",
           dl, durable);
    /* Storage faults (store/health.c): episodes of refused writes, what they refused, and
     * whether one is under way; corruption lasts until a restart. */
    const char *why = store_unready_reason(s->store);
    metric(&o, "storage_write_fault", "gauge",
           "Whether writes are refused now after a storage fault or corruption (1) or not (0).",
           NULL, why != NULL);
    metric(&o, "storage_write_faults_total", "counter",
           "Storage faults (disk full, read-only, I/O error) that made the store refuse writes.",
           NULL, st.write_faults);
    metric(&o, "storage_refused_batches_total", "counter",
           "Batches refused (5.03 / 503) during storage faults or after corruption.", NULL,
           st.refused_batches);
    metric(&o, "storage_corrupt", "gauge",
           "Whether a statement met database corruption since the start (1) or not (0).", NULL,
           st.corruptions > 0);
    /* The /readyz database check as a gauge, so an outage shows on a dashboard and can alert;
     * store_ready asks the database at most once a second. */
    char backend[48];
    snprintf(backend, sizeof backend, "{backend=\"%s\"}", store_backend_name(s->store));
    metric(&o, "storage_up", "gauge",
           "Whether the database can take work now (1) or not (0); backend: sqlite or postgresql.",
           backend, store_ready(s->store) == 0);
    /* HTTP device API long polls: each holds a connection, no thread (device_poll.c). */
    hub_wait_stats_t ws;
    hub_wait_get_stats(s->hub, &ws);
    put(&o,
        "# HELP coaphub_http_long_polls HTTP device API long polls open now.\n"
        "# TYPE coaphub_http_long_polls gauge\n"
        "coaphub_http_long_polls{kind=\"attributes\"} %llu\n"
        "coaphub_http_long_polls{kind=\"rpc\"} %llu\n",
        (unsigned long long)ws.waiting[HUB_WAIT_ATTRIBUTES],
        (unsigned long long)ws.waiting[HUB_WAIT_RPC]);
    metric(&o, "http_long_polls_refused_total", "counter",
           "Long polls answered 503 because a cap (all devices, or one device) was reached.", NULL,
           ws.refused_total);
    /* The HTTP front (http/front.c): connections, what the deadlines and eviction closed. */
    http_front_stats_t fs;
    http_server_front_stats(s->http, &fs);
    metric(&o, "http_connections", "gauge", "REST/UI connections open now.", NULL, fs.open);
    metric(&o, "http_connections_accepted_total", "counter", "REST/UI connections accepted.", NULL,
           fs.accepted);
    put(&o,
        "# HELP coaphub_http_connections_closed_total REST/UI connections closed by a limit.\n"
        "# TYPE coaphub_http_connections_closed_total counter\n"
        "coaphub_http_connections_closed_total{reason=\"header_timeout\"} %llu\n"
        "coaphub_http_connections_closed_total{reason=\"body_too_slow\"} %llu\n"
        "coaphub_http_connections_closed_total{reason=\"evicted\"} %llu\n",
        (unsigned long long)fs.header_timeouts, (unsigned long long)fs.body_timeouts,
        (unsigned long long)fs.evicted);
    metric(&o, "http_connections_refused_total", "counter",
           "Connections refused at accept because their address (IPv4, IPv6 /64) had "
           "--http-max-connections-per-address open.",
           NULL, fs.per_addr_refused);
    metric(&o, "http_bad_framing_total", "counter",
           "Requests refused for their framing (two Content-Lengths, a transfer coding other "
           "than chunked).",
           NULL, fs.bad_framing);
    metric(&o, "http_workers", "gauge", "Threads running REST handlers now.", NULL, fs.workers);
    metric(&o, "http_workers_busy", "gauge", "Of those, running a handler now.", NULL,
           fs.workers_busy);
    metric(&o, "http_requests_queued_total", "counter",
           "Requests that waited for a free worker (--http-workers reached).", NULL, fs.queued);
    /* REST login throttle (login_guard.c) and logout revocation (revoked.c). */
    if (s->http) {
        http_auth_stats_t as;
        http_server_auth_stats(s->http, &as);
        metric(&o, "http_login_failures_total", "counter",
               "REST logins refused for a wrong password or unknown user.", NULL,
               as.login.failures);
        metric(&o, "http_login_throttled_total", "counter",
               "REST logins answered 429 before the password check (address or user locked).", NULL,
               as.login.throttled);
        metric(&o, "http_login_lockouts_total", "counter",
               "Failed-login counts (address, user, user at address) that reached their limit.",
               NULL, as.login.lockouts);
        metric(&o, "http_login_busy_total", "counter",
               "REST logins answered 429 because every password-check slot was busy.", NULL,
               as.login.busy);
        metric(&o, "http_login_throttle_entries", "gauge", "Failed-login counters held now.", NULL,
               as.login.entries);
        metric(&o, "http_login_throttle_evicted_total", "counter",
               "Failed-login counters dropped to make room (never a live lockout).", NULL,
               as.login.evicted);
        metric(&o, "http_login_throttle_full_total", "counter",
               "Failed logins not counted: the table held only live lockouts.", NULL,
               as.login.table_full);
        metric(&o, "http_tokens_revoked_total", "counter",
               "Sessions (or users' older tokens) revoked by logout.", NULL, as.tokens_revoked);
        metric(&o, "http_revoked_entries", "gauge",
               "Revoked sessions and users held until their tokens expire.", NULL,
               as.revoked_entries);
        metric(&o, "http_revoke_fallbacks_total", "counter",
               "Logouts that revoked all of the user's tokens: the session set was full.", NULL,
               as.revoke_fallbacks);
    }
    put(&o, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
        (unsigned long long)rss_bytes());
    return o.buf;
}
