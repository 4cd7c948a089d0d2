/* report.c — coaphub-bench's numbers: the fixed-bucket latency histogram, the progress line
 * printed each second, the final summary and the one-line JSON result, and /proc readers.
 *
 * The histogram is HDR-like: values below 16 us have their own bucket, larger ones fall into
 * 16 sub-buckets per power of two, so a quantile is off by at most 1/32 of its value (the
 * bucket's midpoint is reported). It never allocates, so recording costs no more at 1M
 * requests than at 10.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    if (v >= (1ull << 40))
        v = (1ull << 40) - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 4 */
    unsigned sub = (unsigned)(v >> (e - 4)) & (BENCH_HIST_SUB - 1);
    return (e - 3) * BENCH_HIST_SUB + sub;
}

static uint64_t bucket_mid(unsigned i)
{
    if (i < BENCH_HIST_SUB)
        return i;
    unsigned e = i / BENCH_HIST_SUB + 3, sub = i % BENCH_HIST_SUB;
    uint64_t low = (uint64_t)(BENCH_HIST_SUB + sub) << (e - 4);
    return low + ((1ull << (e - 4)) >> 1);
}

void bench_hist_add(bench_hist_t *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t bench_hist_quantile(const bench_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->count + 0.5);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t m = bucket_mid(i);
            return m > h->max ? h->max : m;
        }
    }
    return h->max;
}

double bench_error_rate(const bench_stats_t *st)
{
    uint64_t settled = st->done + st->timeouts + st->resets + st->handshake_errors +
                       st->dtls_errors;
    double r = settled ? (double)st->errors / (double)settled : (st->errors ? 1.0 : 0.0);
    return r > 1.0 ? 1.0 : r;
}

long bench_read_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

long long bench_read_cpu_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* comm may hold spaces and parentheses: fields are counted after the last ')'. Field 3
     * (state) follows it; utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

long long bench_read_udp_drops(void)
{
    FILE *f = fopen("/proc/net/snmp", "r");
    if (!f)
        return -1;
    char hdr[1024], val[1024];
    long long out = -1;
    while (fgets(hdr, sizeof hdr, f)) {
        if (strncmp(hdr, "Udp: ", 5) != 0 || !fgets(val, sizeof val, f))
            continue;
        /* "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors ..." then values. */
        char *hs = NULL, *vs = NULL;
        char *h = strtok_r(hdr + 5, " \n", &hs), *v = strtok_r(val + 5, " \n", &vs);
        out = 0;
        for (; h && v; h = strtok_r(NULL, " \n", &hs), v = strtok_r(NULL, " \n", &vs))
            if (!strcmp(h, "RcvbufErrors"))
                out += atoll(v);
        break;
    }
    fclose(f);
    return out;
}

static double ms(uint64_t us);

void bench_progress(const bench_t *b, int64_t now_us, const bench_stats_t *prev, double dt_s)
{
    if (b->cfg.quiet || b->cfg.json)
        return;
    const bench_stats_t *s = &b->st;
    double t = (double)(now_us - b->t_start_us) / 1e6;
    /* This second's own p99: the histogram's growth since the last line (a stall shows up
     * where it happened instead of only in the run's tail). */
    static bench_hist_t win;
    win.count = s->lat.count - prev->lat.count;
    win.max = s->lat.max;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        win.b[i] = s->lat.b[i] - prev->lat.b[i];
    fprintf(stderr,
            "[%6.1fs] %9.0f req/s  done %-9llu errors %-6llu retrans %-6llu timeouts %-6llu "
            "hs %6.0f/s  ready %d  p99 %.1f ms\n",
            t, (double)(s->done - prev->done) / dt_s, (unsigned long long)s->done,
            (unsigned long long)s->errors, (unsigned long long)s->retrans,
            (unsigned long long)s->timeouts,
            (double)(s->handshakes - prev->handshakes) / dt_s, b->n_ready,
            ms(bench_hist_quantile(&win, .99)));
}

static const char *mode_name(bench_mode_t m)
{
    switch (m) {
    case BENCH_TELEMETRY: return "telemetry";
    case BENCH_HANDSHAKE: return "handshake";
    case BENCH_OBSERVE: return "observe";
    case BENCH_IDLE: return "idle";
    case BENCH_OSSL: return "openssl";
    }
    return "?";
}

static double ms(uint64_t us) { return (double)us / 1000.0; }

void bench_report(const bench_t *b, const char *extra_json, const char *extra_text)
{
    const bench_stats_t *s = &b->st;
    const bench_cfg_t *c = &b->cfg;
    double el = (double)(b->t_end_us - b->t_start_us) / 1e6;
    if (el <= 0)
        el = 1e-6;
    double hs_el = c->mode == BENCH_HANDSHAKE || b->hs_elapsed_us <= 0
                       ? el : (double)b->hs_elapsed_us / 1e6;
    double rps = (double)s->done / el, hps = (double)s->handshakes / hs_el;
    double er = bench_error_rate(s);
    const bench_hist_t *h = &s->lat;
    char codes_txt[1024] = "", codes_js[1024] = "";
    size_t ct = 0, cj = 0;
    for (int i = 0; i < 256; i++) {
        if (!s->codes[i])
            continue;
        ct += (size_t)snprintf(codes_txt + ct, sizeof codes_txt - ct, "%s%d.%02d: %llu",
                               ct ? ", " : "", i >> 5, i & 31, (unsigned long long)s->codes[i]);
        cj += (size_t)snprintf(codes_js + cj, sizeof codes_js - cj, "%s\"%d.%02d\":%llu",
                               cj ? "," : "", i >> 5, i & 31, (unsigned long long)s->codes[i]);
        if (ct >= sizeof codes_txt - 64 || cj >= sizeof codes_js - 64)
            break;
    }
    long tck = sysconf(_SC_CLK_TCK);
    double cpu_ms = b->cpu0 >= 0 && b->cpu1 >= b->cpu0 && tck > 0
                        ? (double)(b->cpu1 - b->cpu0) * 1000.0 / (double)tck : -1;
    uint64_t ops = c->mode == BENCH_HANDSHAKE ? s->handshakes : s->done;
    double cpu_us_op = cpu_ms >= 0 && ops ? cpu_ms * 1000.0 / (double)ops : -1;
    long long drops = b->drops0 >= 0 && b->drops1 >= b->drops0 ? b->drops1 - b->drops0 : -1;
    long rss = c->server_pid ? bench_read_rss_kb(c->server_pid) : -1;
    if (!c->json) {
        printf("====== coaphub-bench %s ======\n", mode_name(c->mode));
        printf("  target       %s://%s:%d%s  (%s %s, %zu-byte payload)\n",
               c->dtls ? "coaps" : "coap", c->host, c->port, c->path, c->con ? "CON" : "NON",
               c->method == 1 ? "GET" : c->method == 2 ? "POST" : c->method == 3 ? "PUT" : "DELETE",
               b->payload_len);
        printf("  devices      %d, window %d%s\n", c->devices, c->window,
               c->rate > 0 ? " (open loop)" : " (closed loop)");
        if (c->rate > 0)
            printf("  offered      %.0f msgs/s, %llu sends skipped (window full)\n", c->rate,
                   (unsigned long long)s->overload);
        printf("  elapsed      %.2f s\n", el);
        printf("  requests     %llu sent, %llu answered, %.1f req/s\n",
               (unsigned long long)s->sent, (unsigned long long)s->done, rps);
        printf("  latency      p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n",
               ms(bench_hist_quantile(h, .5)), ms(bench_hist_quantile(h, .9)),
               ms(bench_hist_quantile(h, .99)), ms(h->max));
        printf("  codes        %s\n", ct ? codes_txt : "(none)");
        printf("  reliability  %llu retransmissions, %llu timeouts, %llu resets, %llu errors "
               "(%.3f %%), %llu socket errors\n",
               (unsigned long long)s->retrans, (unsigned long long)s->timeouts,
               (unsigned long long)s->resets, (unsigned long long)s->errors, er * 100,
               (unsigned long long)s->sock_errors);
        if (c->dtls)
            printf("  handshakes   %llu (%.1f/s), %llu resumed, %llu failed; p50 %.3f ms  p99 "
                   "%.3f ms  max %.3f ms\n",
                   (unsigned long long)s->handshakes, hps,
                   (unsigned long long)s->handshakes_resumed,
                   (unsigned long long)s->handshake_errors, ms(bench_hist_quantile(&s->hs_lat, .5)),
                   ms(bench_hist_quantile(&s->hs_lat, .99)), ms(s->hs_lat.max));
        if (cpu_ms >= 0)
            printf("  server       %.0f ms CPU, %.1f us per %s, RSS %ld kB\n", cpu_ms, cpu_us_op,
                   c->mode == BENCH_HANDSHAKE ? "handshake" : "request", rss);
        if (drops >= 0)
            printf("  kernel       %lld UDP datagrams dropped (RcvbufErrors, whole host)\n", drops);
        if (extra_text && *extra_text)
            fputs(extra_text, stdout);
    }
    printf("{\"mode\":\"%s\",\"transport\":\"%s\",\"devices\":%d,\"window\":%d,\"rate\":%.0f,"
           "\"elapsed_s\":%.3f,\"sent\":%llu,\"done\":%llu,\"rps\":%.1f,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"codes\":{%s},"
           "\"retrans\":%llu,\"timeouts\":%llu,\"resets\":%llu,\"errors\":%llu,"
           "\"error_rate\":%.6f,\"overload\":%llu,\"handshakes\":%llu,\"handshakes_per_s\":%.1f,"
           "\"resumed\":%llu,\"handshake_errors\":%llu,\"hs_p50_ms\":%.3f,\"hs_p99_ms\":%.3f,"
           "\"sock_errors\":%llu,\"notifications\":%llu,\"server_cpu_ms\":%.0f,"
           "\"server_cpu_us_per_op\":%.2f,\"server_rss_kb\":%ld,\"udp_drops\":%lld%s}\n",
           mode_name(c->mode), c->dtls ? "dtls" : "udp", c->devices, c->window, c->rate, el,
           (unsigned long long)s->sent, (unsigned long long)s->done, rps,
           ms(bench_hist_quantile(h, .5)), ms(bench_hist_quantile(h, .9)),
           ms(bench_hist_quantile(h, .99)), ms(h->max), codes_js,
           (unsigned long long)s->retrans, (unsigned long long)s->timeouts,
           (unsigned long long)s->resets, (unsigned long long)s->errors, er,
           (unsigned long long)s->overload, (unsigned long long)s->handshakes, hps,
           (unsigned long long)s->handshakes_resumed, (unsigned long long)s->handshake_errors,
           ms(bench_hist_quantile(&s->hs_lat, .5)), ms(bench_hist_quantile(&s->hs_lat, .99)),
           (unsigned long long)s->sock_errors, (unsigned long long)s->notifications, cpu_ms,
           cpu_us_op, rss, drops, extra_json ? extra_json : "");
    fflush(stdout);
}
