/* modes.c — coaphub-bench's workloads, all driven by one epoll loop:
 *   telemetry  closed loop (each device keeps W requests outstanding) or open loop (--rate)
 *   handshake  each device does DTLS handshakes back to back (full, or resumed with --resume)
 *   observe    devices observe their attributes; a REST thread updates a shared attribute of
 *              every device per round and the loop times how long until all were notified
 *   idle       connect N devices, one request each, hold them; server RSS per session
 * Every phase has a time cap; nothing here waits without one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "modes.h"

#define SWEEP_US 5000
/* Handshakes started at once while connecting: enough to keep the server busy without
 * turning the connect phase into a retransmission storm. */
#define HS_CONCURRENCY 64

static bool count_reached(const bench_t *b)
{
    uint64_t n = b->cfg.mode == BENCH_HANDSHAKE ? b->st.handshakes : b->st.sent;
    return b->cfg.requests > 0 && n >= (uint64_t)b->cfg.requests;
}

static void on_done(bench_t *b, bench_dev_t *d)
{
    if (b->cfg.mode != BENCH_TELEMETRY || b->cfg.rate > 0 || b->stop_issuing || b->t_start_us == 0)
        return;
    if (!count_reached(b))
        (void)bench_dev_request(b, d);
}

static void on_ready(bench_t *b, bench_dev_t *d)
{
    if (b->cfg.mode != BENCH_HANDSHAKE || b->t_start_us == 0)
        return;
    /* Handshake loop: close (close_notify); the loop starts the next handshake on a new
     * socket. Not reopened here: a server that fails every handshake at once would otherwise
     * recurse through open -> fail -> ready without end. */
    bench_dev_close(b, d, true);
    b->reopen[b->n_reopen++] = (int)(d - b->devs);
}

/* Runs the loop for one phase. done_fn says when the phase is over; the phase also ends at
 * deadline_us. Progress lines are printed when progress is set. */
typedef bool (*phase_done_fn)(bench_t *b);

static void run_phase(bench_t *b, phase_done_fn done_fn, int64_t deadline_us, bool progress)
{
    int64_t now = bench_now_us(), next_sweep = now + SWEEP_US, next_prog = now + 1000000;
    bench_stats_t prev = b->st;
    int64_t prev_t = now;
    while (!done_fn(b) && (now = bench_now_us()) < deadline_us) {
        bench_net_poll(b, 2);
        now = bench_now_us();
        if (now >= next_sweep) {
            bench_net_sweep(b);
            next_sweep = now + SWEEP_US;
        }
        if (progress && now >= next_prog) {
            bench_progress(b, now, &prev, (double)(now - prev_t) / 1e6);
            prev = b->st;
            prev_t = now;
            next_prog += 1000000;
        }
    }
}

static bool all_connected(bench_t *b)
{
    /* Open devices as handshake slots free up (plain CoAP opens all at once). */
    for (int i = 0; i < b->cfg.devices; i++) {
        bench_dev_t *d = &b->devs[i];
        if (d->fd >= 0 || d->state == DEV_FAILED)
            continue;
        if (b->cfg.dtls && b->hs_inflight >= HS_CONCURRENCY)
            break;
        if (bench_dev_open(b, d) < 0) {
            b->st.errors++;
            b->n_failed++;
        }
    }
    return b->n_ready + b->n_failed >= b->cfg.devices && b->hs_inflight == 0;
}

static int connect_all(bench_t *b)
{
    int64_t t0 = bench_now_us();
    run_phase(b, all_connected, t0 + (int64_t)(b->cfg.connect_s * 1e6), false);
    b->hs_elapsed_us = bench_now_us() - t0;
    double el = (double)b->hs_elapsed_us / 1e6;
    if (!b->cfg.quiet && !b->cfg.json)
        fprintf(stderr,
                "coaphub-bench: %d of %d devices ready in %.2f s (%llu handshakes, %d failed)\n",
                b->n_ready, b->cfg.devices, el, (unsigned long long)b->st.handshakes, b->n_failed);
    return b->n_ready > 0 ? 0 : -1;
}

static bool load_done(bench_t *b)
{
    int64_t now = bench_now_us();
    if (!b->stop_issuing && (now >= b->t_end_us || count_reached(b)))
        b->stop_issuing = true;
    if (b->cfg.mode == BENCH_TELEMETRY && b->cfg.rate > 0 && !b->stop_issuing) {
        /* Open loop: requests go out on schedule, round robin over the devices, whether or not
         * earlier ones were answered; a full window is counted, never waited for. */
        double interval = 1e6 / b->cfg.rate;
        while (b->next_send_us <= now && !b->stop_issuing) {
            bench_dev_t *d = &b->devs[b->rr++ % (unsigned)b->cfg.devices];
            if (bench_dev_request(b, d) < 0)
                b->st.overload++;
            b->next_send_us = b->t_start_us +
                              (int64_t)((double)(b->st.sent + b->st.overload) * interval);
            if (count_reached(b))
                b->stop_issuing = true;
        }
    }
    if (b->cfg.mode == BENCH_HANDSHAKE) {
        while (b->n_reopen > 0 && !b->stop_issuing && !count_reached(b))
            (void)bench_dev_open(b, &b->devs[b->reopen[--b->n_reopen]]);
        return b->stop_issuing && b->hs_inflight == 0;
    }
    return b->stop_issuing && b->n_out == 0;
}

static int run_load(bench_t *b)
{
    memset(&b->st, 0, sizeof b->st);
    b->t_start_us = bench_now_us();
    b->t_end_us = b->t_start_us + (int64_t)(b->cfg.duration_s * 1e6);
    b->next_send_us = b->t_start_us;
    if (b->cfg.mode == BENCH_TELEMETRY && b->cfg.rate == 0) {
        for (int w = 0; w < b->cfg.window; w++)
            for (int i = 0; i < b->cfg.devices && !count_reached(b); i++)
                if (b->devs[i].state == DEV_READY)
                    (void)bench_dev_request(b, &b->devs[i]);
    } else if (b->cfg.mode == BENCH_HANDSHAKE) {
        b->reopen = xcalloc((size_t)b->cfg.devices, sizeof *b->reopen);
        for (int i = 0; i < b->cfg.devices; i++) {
            bench_dev_close(b, &b->devs[i], true);
            b->reopen[b->n_reopen++] = i;
        }
    }
    int64_t load_end = b->t_end_us;
    b->cpu0 = b->cfg.server_pid ? bench_read_cpu_ticks(b->cfg.server_pid) : -1;
    b->drops0 = bench_read_udp_drops();
    run_phase(b, load_done, load_end + (int64_t)(b->cfg.drain_s * 1e6), true);
    int64_t now = bench_now_us();
    b->cpu1 = b->cfg.server_pid ? bench_read_cpu_ticks(b->cfg.server_pid) : -1;
    b->drops1 = bench_read_udp_drops();
    /* What is still outstanding after the drain counts as timed out. */
    b->st.timeouts += (uint64_t)b->n_out;
    b->st.errors += (uint64_t)b->n_out;
    b->t_end_us = now < load_end || b->n_out == 0 ? now : load_end;
    if (b->cfg.mode == BENCH_HANDSHAKE && now > load_end)
        b->t_end_us = load_end;
    return 0;
}

/* ---- observe ---------------------------------------------------------------------------- */

/* One REST poster thread per --rest-conns connection: devices first, first + step, ...
 * ThingsBoard keeps one attribute subscription per device, so "one change to N observers" is
 * N REST updates. A bulk client runs them over several keep-alive connections in parallel;
 * each update answers only after its group commit, so the number of connections is also how
 * many updates can share one commit. The default (32) is what such a client would use and
 * keeps the REST side from hiding the push path; the count stays bounded (threads, sockets). */
typedef struct poster {
    bench_t *b;
    bench_rest_t *rest;
    int first;
    int step;
    int round;
    int failed;
    int64_t t_done_us;
} poster_t;

static void *post_round(void *arg)
{
    poster_t *p = arg;
    bench_t *b = p->b;
    for (int i = p->first; i < b->cfg.devices; i += p->step) {
        bench_dev_t *d = &b->devs[i];
        if (!d->obs_ok)
            continue;
        __atomic_store_n(&b->obs_post_us[i], bench_now_us(), __ATOMIC_RELEASE);
        if (bench_rest_shared_attr(p->rest, d, "benchRound", p->round) < 0)
            p->failed++;
    }
    p->t_done_us = bench_now_us();
    return NULL;
}

static bool obs_registered(bench_t *b)
{
    int n = 0;
    for (int i = 0; i < b->cfg.devices; i++)
        n += b->devs[i].obs_ok || b->devs[i].n_out == 0;
    return n >= b->cfg.devices;
}
static bool obs_round_done(bench_t *b) { return b->obs_seen >= b->obs_want; }

static int run_observe(bench_t *b)
{
    for (int i = 0; i < b->cfg.devices; i++)
        if (b->devs[i].state == DEV_READY)
            (void)bench_dev_observe(b, &b->devs[i]);
    run_phase(b, obs_registered, bench_now_us() + 15000000, false);
    int n_obs = 0;
    for (int i = 0; i < b->cfg.devices; i++)
        n_obs += b->devs[i].obs_ok;
    if (n_obs == 0) {
        fprintf(stderr, "coaphub-bench: no observation was accepted\n");
        return -1;
    }
    char err[512];
    int n_posters = b->cfg.rest_conns < n_obs ? b->cfg.rest_conns : n_obs;
    poster_t *posters = xcalloc((size_t)n_posters, sizeof *posters);
    pthread_t *th = xcalloc((size_t)n_posters, sizeof *th);
    for (int i = 0; i < n_posters; i++) {
        posters[i] = (poster_t){.b = b, .first = i, .step = n_posters};
        posters[i].rest = bench_rest_login(b->cfg.rest_url, b->cfg.user, b->cfg.password, err,
                                           sizeof err);
        if (!posters[i].rest) {
            fprintf(stderr, "coaphub-bench: %s\n", err);
            for (int k = 0; k < i; k++)
                bench_rest_free(posters[k].rest);
            free(posters);
            free(th);
            return -1;
        }
    }
    b->obs_post_us = xcalloc((size_t)b->cfg.devices, sizeof *b->obs_post_us);
    double fan_ms[64] = {0};
    int rounds = b->cfg.repeat < 64 ? b->cfg.repeat : 64, complete_rounds = 0, failed = 0;
    double post_ms_sum = 0;
    b->t_start_us = bench_now_us();
    /* Server CPU over the rounds only (REST updates, commits, notifications), per update. */
    long long cpu0 = b->cfg.server_pid ? bench_read_cpu_ticks(b->cfg.server_pid) : -1;
    for (int r = 1; r <= rounds; r++) {
        b->obs_round = r;
        b->obs_seen = 0;
        b->obs_want = n_obs;
        memset(b->obs_post_us, 0, (size_t)b->cfg.devices * sizeof *b->obs_post_us);
        int64_t t0 = bench_now_us(), t_posted = t0;
        int started = 0;
        for (int i = 0; i < n_posters; i++) {
            posters[i].round = r;
            posters[i].failed = 0;
            if (pthread_create(&th[i], NULL, post_round, &posters[i]) != 0)
                break;
            started++;
        }
        run_phase(b, obs_round_done, t0 + 30000000, false);
        for (int i = 0; i < started; i++) {
            pthread_join(th[i], NULL);
            failed += posters[i].failed;
            if (posters[i].t_done_us > t_posted)
                t_posted = posters[i].t_done_us;
        }
        if (started < n_posters) {
            failed++;
            break;
        }
        post_ms_sum += (double)(t_posted - t0) / 1000.0;
        /* Let stragglers (a notification after the REST burst) land before the next round. */
        if (b->obs_seen < n_obs)
            run_phase(b, obs_round_done, bench_now_us() + 2000000, false);
        fan_ms[r - 1] = b->obs_seen >= n_obs ? (double)(b->obs_last_us - t0) / 1000.0 : -1;
        complete_rounds += b->obs_seen >= n_obs;
        if (!b->cfg.quiet && !b->cfg.json)
            fprintf(stderr,
                    "[round %d] %d/%d notified, all within %.1f ms (REST posting took %.1f ms)\n",
                    r, b->obs_seen, n_obs, fan_ms[r - 1], (double)(t_posted - t0) / 1000.0);
    }
    b->t_end_us = bench_now_us();
    long long cpu1 = b->cfg.server_pid ? bench_read_cpu_ticks(b->cfg.server_pid) : -1;
    long tck = sysconf(_SC_CLK_TCK);
    double rounds_cpu_ms = cpu0 >= 0 && cpu1 >= cpu0 && tck > 0
                               ? (double)(cpu1 - cpu0) * 1000.0 / (double)tck : -1;
    double cpu_us_update = rounds_cpu_ms >= 0 ? rounds_cpu_ms * 1000.0 / ((double)n_obs * rounds)
                                              : -1;
    for (int i = 0; i < n_posters; i++)
        bench_rest_free(posters[i].rest);
    free(posters);
    free(th);
    double worst = 0, sorted[64] = {0};
    for (int i = 0; i < rounds; i++) {
        sorted[i] = fan_ms[i] < 0 ? 1e12 : fan_ms[i];
        if (sorted[i] > worst)
            worst = sorted[i];
    }
    for (int i = 1; i < rounds; i++)
        for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    /* An incomplete round sorts as 1e12 ms and is reported as -1. */
    double med = sorted[rounds / 2] >= 1e12 ? -1 : sorted[rounds / 2];
    worst = worst >= 1e12 ? -1 : worst;
    const bench_hist_t *h = &b->st.notify_lat;
    double p50 = (double)bench_hist_quantile(h, .5) / 1000;
    double p99 = (double)bench_hist_quantile(h, .99) / 1000;
    double post_ms = post_ms_sum / rounds;
    double ups = post_ms_sum > 0 ? (double)n_obs * rounds * 1000.0 / post_ms_sum : -1;
    char js[768], txt[1024];
    snprintf(js, sizeof js,
             ",\"observers\":%d,\"rounds\":%d,\"complete_rounds\":%d,\"fanout_median_ms\":%.1f,"
             "\"fanout_max_ms\":%.1f,\"notify_p50_ms\":%.3f,\"notify_p99_ms\":%.3f,"
             "\"rest_post_ms_avg\":%.1f,\"rest_failures\":%d,\"rest_conns\":%d,"
             "\"rest_updates_per_s\":%.0f,\"server_cpu_us_per_update\":%.1f",
             n_obs, rounds, complete_rounds, med, worst, p50, p99, post_ms, failed, n_posters, ups,
             cpu_us_update);
    snprintf(txt, sizeof txt,
             "  observe      %d observers, %d/%d rounds complete; all notified within median "
             "%.1f ms, worst %.1f ms\n"
             "               per-device update->notification p50 %.3f ms p99 %.3f ms; REST "
             "posting %.1f ms/round over %d connections (%.0f updates/s), %d failures\n"
             "               server CPU %.1f us per update (REST, commit and notification)\n",
             n_obs, complete_rounds, rounds, med, worst, p50, p99, post_ms, n_posters, ups, failed,
             cpu_us_update);
    if (failed || complete_rounds < rounds)
        b->st.errors += (uint64_t)(failed + (rounds - complete_rounds));
    bench_report(b, js, txt);
    return 0;
}

/* ---- idle ------------------------------------------------------------------------------- */

static bool all_answered(bench_t *b) { return b->n_out == 0; }
static bool never(bench_t *b) { (void)b; return false; }

static int run_idle(bench_t *b, long rss0)
{
    b->t_start_us = bench_now_us();
    for (int i = 0; i < b->cfg.devices; i++)
        if (b->devs[i].state == DEV_READY)
            (void)bench_dev_request(b, &b->devs[i]);
    run_phase(b, all_answered, bench_now_us() + (int64_t)(b->cfg.drain_s * 1e6) + 10000000,
              false);
    long rss1 = b->cfg.server_pid ? bench_read_rss_kb(b->cfg.server_pid) : -1;
    run_phase(b, never, bench_now_us() + (int64_t)(b->cfg.hold_s * 1e6), false);
    long rss2 = b->cfg.server_pid ? bench_read_rss_kb(b->cfg.server_pid) : -1;
    int held = b->n_ready;
    b->t_end_us = bench_now_us();
    for (int i = 0; i < b->cfg.devices; i++)
        bench_dev_close(b, &b->devs[i], true);
    run_phase(b, never, bench_now_us() + 1000000, false);
    long rss3 = b->cfg.server_pid ? bench_read_rss_kb(b->cfg.server_pid) : -1;
    double per = rss0 >= 0 && rss2 >= 0 && held > 0 ? (double)(rss2 - rss0) * 1024.0 / held : -1;
    char js[512], txt[512];
    snprintf(js, sizeof js,
             ",\"sessions\":%d,\"rss_before_kb\":%ld,\"rss_connected_kb\":%ld,"
             "\"rss_held_kb\":%ld,\"rss_closed_kb\":%ld,\"rss_per_session_b\":%.0f",
             held, rss0, rss1, rss2, rss3, per);
    snprintf(txt, sizeof txt,
             "  idle         %d sessions held %.1f s; server RSS %ld kB before, %ld kB connected, "
             "%ld kB held, %ld kB after close\n"
             "               RSS per session %.0f bytes\n",
             held, b->cfg.hold_s, rss0, rss1, rss2, rss3, per);
    bench_report(b, js, txt);
    return 0;
}

int bench_mode_run(bench_t *b)
{
    b->on_done = on_done;
    b->on_ready = on_ready;
    long rss0 = b->cfg.server_pid ? bench_read_rss_kb(b->cfg.server_pid) : -1;
    if (b->cfg.mode == BENCH_IDLE && b->cfg.server_pid && rss0 < 0) {
        fprintf(stderr, "coaphub-bench: cannot read /proc/%d/status\n", b->cfg.server_pid);
        return 1;
    }
    if (connect_all(b) < 0) {
        fprintf(stderr, "coaphub-bench: no device could connect\n");
        b->t_start_us = bench_now_us() - 1;
        b->t_end_us = bench_now_us();
        bench_report(b, "", "");
        return 1;
    }
    switch (b->cfg.mode) {
    case BENCH_OBSERVE:
        return run_observe(b) < 0 ? 1 : 0;
    case BENCH_IDLE:
        return run_idle(b, rss0);
    case BENCH_TELEMETRY:
    case BENCH_HANDSHAKE:
    case BENCH_OSSL:
        break;
    }
    bench_stats_t hs = b->st;
    run_load(b);
    if (b->cfg.mode == BENCH_TELEMETRY && b->cfg.dtls) {
        /* The connect phase's handshakes are part of the story: keep them in the summary. */
        b->st.handshakes = hs.handshakes;
        b->st.handshake_errors = hs.handshake_errors;
        b->st.hs_lat = hs.hs_lat;
    }
    bench_report(b, "", "");
    return 0;
}
