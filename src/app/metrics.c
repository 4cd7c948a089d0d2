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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shard_snap {
    coap_engine_stats_t coap;
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
    for (int i = 0; i < s->n_shards; i++) {
        shard_snap_t *p = &c->snaps[i];
        uint64_t *dst = (uint64_t *)&sum.coap, *src = (uint64_t *)&p->coap;
        for (size_t k = 0; k < sizeof sum.coap / sizeof(uint64_t); k++)
            dst[k] += src[k];
        dst = (uint64_t *)&sum.udp, src = (uint64_t *)&p->udp;
        for (size_t k = 0; k < sizeof sum.udp / sizeof(uint64_t); k++)
            dst[k] += src[k];
        dst = (uint64_t *)&sum.dtls, src = (uint64_t *)&p->dtls;
        for (size_t k = 0; k < sizeof sum.dtls / sizeof(uint64_t); k++)
            dst[k] += src[k];
        sum.has_dtls |= p->has_dtls;
    }
    pthread_mutex_unlock(&c->mu);
    collect_unref(c);

    out_t o = {0};
    put(&o, "# HELP coaphub_build_info Build information.\n# TYPE coaphub_build_info gauge\n"
            "coaphub_build_info{version=\"%s\"} 1\n", COAPHUB_VERSION);
    metric(&o, "coap_requests_total", "counter", "CoAP requests handed to the device API.", NULL,
           sum.coap.requests);
    metric(&o, "coap_duplicates_total", "counter", "Duplicate CoAP messages answered from cache.",
           NULL, sum.coap.duplicates);
    metric(&o, "coap_malformed_total", "counter", "Malformed CoAP datagrams.", NULL,
           sum.coap.malformed);
    metric(&o, "coap_retransmissions_total", "counter", "Confirmable messages we resent.", NULL,
           sum.coap.retransmissions);
    metric(&o, "coap_con_timeouts_total", "counter", "Confirmable messages never acknowledged.",
           NULL, sum.coap.con_timeouts);
    metric(&o, "coap_resets_total", "counter", "RST messages received.", NULL, sum.coap.resets);
    metric(&o, "observe_relations", "gauge", "Live CoAP observations.", NULL, sum.coap.observers);
    metric(&o, "observe_notifications_total", "counter", "Observe notifications sent.", NULL,
           sum.coap.notifications);
    metric(&o, "udp_datagrams_received_total", "counter", "Plain CoAP datagrams received.", NULL,
           sum.udp.datagrams_in);
    metric(&o, "udp_datagrams_sent_total", "counter", "Plain CoAP datagrams sent.", NULL,
           sum.udp.datagrams_out);
    metric(&o, "udp_peers", "gauge", "Plain CoAP peer addresses tracked.", NULL, sum.udp.peers);
    if (sum.has_dtls) {
        metric(&o, "dtls_datagrams_received_total", "counter", "DTLS datagrams received.", NULL,
               sum.dtls.datagrams_in);
        put(&o, "# HELP coaphub_dtls_handshakes_total DTLS handshake events by result.\n"
                "# TYPE coaphub_dtls_handshakes_total counter\n");
        const struct {
            const char *result;
            uint64_t v;
        } hs[] = {{"cookie_sent", sum.dtls.cookies_sent}, {"cookie_bad", sum.dtls.cookies_bad},
                  {"ok", sum.dtls.handshakes_ok},          {"failed", sum.dtls.handshakes_failed},
                  {"refused", sum.dtls.handshakes_refused}, {"timeout", sum.dtls.handshake_timeouts},
                  {"resumed", sum.dtls.resumed}};
        for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
            put(&o, "coaphub_dtls_handshakes_total{result=\"%s\"} %llu\n", hs[i].result,
                (unsigned long long)hs[i].v);
        metric(&o, "dtls_handshakes_in_progress", "gauge", "DTLS handshakes past the cookie.",
               NULL, sum.dtls.handshakes_in_progress);
        metric(&o, "dtls_sessions", "gauge", "Established DTLS sessions.", NULL,
               sum.dtls.sessions);
        metric(&o, "dtls_records_dropped_total", "counter",
               "DTLS datagrams that yielded no plaintext (bad MAC, replay, unknown peer).", NULL,
               sum.dtls.records_dropped);
        metric(&o, "dtls_sessions_compacted_total", "counter",
               "Sessions moved to the compact record layer.", NULL, sum.dtls.sessions_compacted);
        put(&o, "# HELP coaphub_dtls_records_rejected_total Records dropped by the compact layer.\n"
                "# TYPE coaphub_dtls_records_rejected_total counter\n"
                "coaphub_dtls_records_rejected_total{reason=\"replay\"} %llu\n"
                "coaphub_dtls_records_rejected_total{reason=\"mac\"} %llu\n",
            (unsigned long long)sum.dtls.records_replayed,
            (unsigned long long)sum.dtls.records_bad_mac);
        metric(&o, "dtls_sessions_closed_total", "counter", "DTLS sessions closed by the server.",
               "{reason=\"evicted\"}", sum.dtls.evicted);
        put(&o, "coaphub_dtls_sessions_closed_total{reason=\"idle\"} %llu\n"
                "coaphub_dtls_sessions_closed_total{reason=\"credentials\"} %llu\n",
            (unsigned long long)sum.dtls.idle_closed,
            (unsigned long long)sum.dtls.closed_by_credentials);
    }
    store_stats_t st;
    store_get_stats(s->store, &st);
    metric(&o, "storage_commits_total", "counter", "Group commits.", NULL, st.commits);
    metric(&o, "storage_ops_total", "counter", "Operations committed.", NULL, st.ops);
    metric(&o, "storage_failed_commits_total", "counter", "Commits that failed.", NULL,
           st.failed_commits);
    metric(&o, "storage_max_group_batches", "gauge", "Largest group commit so far, in batches.",
           NULL, st.max_group);
    put(&o, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
        (unsigned long long)rss_bytes());
    return o.buf;
}
