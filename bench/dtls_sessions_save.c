/* dtls_sessions_save.c — dtls-sessions-bench: what saving and restoring DTLS sessions costs
 * (issue #16 point 3; Californium's reference: ~284 bytes per connection, 4000 saved in 44 ms
 * on a J5005).
 *
 *   dtls-sessions-bench [N] [--observer]
 *
 * In one process, with no network: a listener with N established compact sessions (distinct
 * addresses, AES-128-CCM_8 keys from a real key expansion, as PSK devices use), optionally
 * each with one restored-observation blob of the size the CoAP engine writes for a shared-
 * attribute observation (--observer). Times the save (collect from the listener + encrypt +
 * write + fsync + rename), the load at start (read + delete + decrypt + parse + index) and
 * the adoption by a fresh listener (sessions live again), and prints the file size per
 * session. Build type matters: run it from a Release build (the ASan one is several times
 * slower). N defaults to 10000.
 */
#include "dtls/dtls_int.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The engine's blob for one attribute observation with an 8-byte token and no resource key:
 * header 2 + token 1 + 8 + flags, Observe number, key length 7 + API description 1 + 13
 * (src/coap/observe.c, src/api/api.c). */
enum { OBS_BLOB = 32 };
static bool with_observer;

static void sink_input(void *c, transport_peer_t *p, const uint8_t *d, size_t n)
{
    (void)c, (void)p, (void)d, (void)n;
}
static void sink_closed(void *c, transport_peer_t *p)
{
    (void)c, (void)p;
}
static size_t sink_save(void *c, transport_peer_t *p, uint8_t *out, size_t cap)
{
    (void)c, (void)p;
    if (!with_observer || cap < OBS_BLOB)
        return 0;
    memset(out, 0x5a, OBS_BLOB);
    return OBS_BLOB;
}
static size_t restored;
static void sink_restored(void *c, transport_peer_t *p, const uint8_t *b, size_t n)
{
    (void)c, (void)p, (void)b;
    restored += n > 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "dtls-sessions-bench: %s: %s\n", what, err);
    exit(1);
}

int main(int argc, char **argv)
{
    long n = 10000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--observer") == 0)
            with_observer = true;
        else if ((n = strtol(argv[i], NULL, 10)) <= 0 || n > 1000000) {
            fprintf(stderr, "usage: dtls-sessions-bench [N (1..1000000)] [--observer]\n");
            return 64;
        }
    }
    log_set_level(LOG_WARN);
    char dir[] = "/tmp/dtls-sessions-bench-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", "failed");
    char err[ERR_LEN] = "";
    loop_t *loop = loop_new(err);
    if (!loop)
        die("loop", err);
    dtls_cfg_t cfg;
    dtls_cfg_default(&cfg);
    cfg.bind_addr = "127.0.0.1";
    cfg.port = 0;
    cfg.data_dir = dir;
    cfg.max_sessions = (int)n + 1;
    transport_sink_t sink = {
        .input = sink_input, .closed = sink_closed, .save = sink_save, .restored = sink_restored};
    dtls_ctx_t *ctx = dtls_ctx_new(&cfg, err);
    if (!ctx)
        die("context", err);
    dtls_listener_t *l = dtls_listener_new(loop, &sink, ctx, &cfg, err);
    if (!l)
        die("listener", err);

    uint8_t master[48], cr[32], sr[32];
    for (long i = 0; i < n; i++) {
        RAND_bytes(master, sizeof master);
        RAND_bytes(cr, sizeof cr);
        RAND_bytes(sr, sizeof sr);
        dtls_rl_t rl;
        if (dtls__rl_derive(&rl, DTLS_AEAD_AES128_CCM, 8, EVP_sha256(), master, sizeof master, cr,
                            sr) != 0)
            die("key expansion", "failed");
        rl.w_seq = 1000 + (uint64_t)i;
        rl.r_top = 900;
        rl.r_map = ~UINT64_C(0);
        rl.r_any = true;
        struct sockaddr_storage a = {0};
        struct sockaddr_in *in = (struct sockaddr_in *)&a;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)(i / 60000));
        in->sin_port = htons((uint16_t)(1024 + i % 60000));
        dtls_peer_t *p = dtls__peer_new_compact(l, &a, sizeof *in, &rl);
        p->base.cert_device_id = 1 + i;
        dtls__rl_wipe(&rl);
    }

    /* Save: what a clean stop does (the listener is not used afterwards). */
    double t0 = now_ms();
    if (dtls_save_begin(dir) != 0)
        die("save begin", "failed");
    dtls_save_t *w = dtls_save_new();
    size_t saved = dtls_listener_save(l, w, true, NULL);
    double t1 = now_ms();
    if (dtls_save_write(w, dir, 600, err) != 0)
        die("save", err);
    double t2 = now_ms();
    dtls_save_free(w);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, DTLS_SAVED_FILE);
    struct stat st;
    if (stat(path, &st) != 0)
        die("stat", path);
    dtls_listener_free(l);
    dtls_ctx_free(ctx);

    /* Load + adopt: what the next start does. */
    ctx = dtls_ctx_new(&cfg, err);
    if (!ctx)
        die("context", err);
    double t3 = now_ms();
    int loaded = dtls_ctx_restore_sessions(ctx, dir, err);
    double t4 = now_ms();
    if (loaded < 0)
        die("load", err);
    l = dtls_listener_new(loop, &sink, ctx, &cfg, err);
    if (!l)
        die("listener", err);
    double t5 = now_ms();
    size_t adopted = dtls_listener_adopt_saved(l);
    double t6 = now_ms();

    printf("sessions %zu saved, %d loaded, %zu adopted%s\n", saved, loaded, adopted,
           with_observer ? " (each with one observation blob)" : "");
    printf("save:  %8.2f ms  (collect %.2f ms, encrypt + write + fsync + rename %.2f ms)\n",
           t2 - t0, t1 - t0, t2 - t1);
    printf("file:  %8lld bytes = %.1f bytes per session\n", (long long)st.st_size,
           (double)st.st_size / (double)(saved ? saved : 1));
    printf("load:  %8.2f ms  (read, delete, decrypt, parse, index)\n", t4 - t3);
    printf("adopt: %8.2f ms  (sessions live again in a listener)\n", t6 - t5);
    int rc = (size_t)loaded == saved && adopted == saved && (!with_observer || restored == saved)
                 ? 0
                 : 1;
    dtls_listener_free(l);
    dtls_ctx_free(ctx);
    loop_free(loop);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}
