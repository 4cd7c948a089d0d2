/* dtls_fuzz_env.h — the process-wide set-up the DTLS fuzz targets share: a loop and a server
 * context whose generated certificate lives in a temp dir, and one listener, made once and
 * removed at exit. Header-only so each target stays one translation unit (static state per
 * target).
 *
 * Why one listener for the whole run and not one per input: a listener is a bound UDP socket,
 * an epoll registration, ~100 KB of buffers and a 128 KB send queue (mmap'd and unmapped again
 * by ASan's allocator each time) and an OpenSSL cipher fetch; made per input that was half of
 * the CPU time of dtls_cid/dtls_compact/dtls_record (perf, 2026-12-07). The server itself keeps
 * one listener for its life, so this is also the shape the code runs in. What an input leaves
 * behind is taken away by dtls_fuzz_reset(), which puts the listener back to how a new one
 * starts (no peers, cold cipher contexts, zero counters) and
 * aborts if a table still holds anything once every peer is closed (a leak a per-input
 * listener could not show). */
#ifndef COAPHUB_TESTS_FUZZ_DTLS_FUZZ_ENV_H
#define COAPHUB_TESTS_FUZZ_DTLS_FUZZ_ENV_H

#include "dtls/dtls_int.h"

#include "core/log.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Plaintext the transport hands up goes nowhere: these targets fuzz the transport itself. */
static void fuzz_sink_input(void *c, transport_peer_t *peer, const uint8_t *p, size_t len)
{
    (void)c, (void)peer, (void)p, (void)len;
}
static void fuzz_sink_closed(void *c, transport_peer_t *peer)
{
    (void)c, (void)peer;
}
static const transport_sink_t fuzz_sink = {.input = fuzz_sink_input, .closed = fuzz_sink_closed};

static loop_t *loop;
static dtls_ctx_t *ctx;
static dtls_listener_t *fuzz_l;
static int fuzz_fd = -1;
static dtls_aead_ctx_t fuzz_aead;
static int fuzz_aead_made;
static char dir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    return remove(p);
}

static void cleanup(void)
{
    if (fuzz_l) {
        fuzz_l->fd = fuzz_fd; /* closed with the listener */
        dtls_listener_free(fuzz_l);
    }
    if (fuzz_aead_made)
        dtls__aead_fini(&fuzz_aead);
    dtls_ctx_free(ctx);
    loop_free(loop);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Creates loop and ctx once; tag names the temp dir. */
static void dtls_fuzz_init(const char *tag)
{
    char err[ERR_LEN];
    log_set_level(LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/coaphub-fuzz-%s-XXXXXX", tag);
    if (!mkdtemp(dir))
        abort();
    loop = loop_new(err);
    dtls_cfg_t cfg;
    dtls_cfg_default(&cfg);
    cfg.data_dir = dir;
    ctx = dtls_ctx_new(&cfg, err);
    if (!loop || !ctx) {
        fprintf(stderr, "fuzz init: %s\n", err);
        abort();
    }
    atexit(cleanup);
}

/* The target's listener (cfg's settings, bound to 127.0.0.1 port 0 once), made on the first
 * call. Unless send_out, its socket is kept aside (fd -1): nothing leaves the process, the compact
 * layer's sends skip it. With send_out, the handshake path's datagrams really go out (to the
 * 127.0.0.x:40000 sources, where nothing listens), so bio.c's packing of flights runs too. */
static inline dtls_listener_t *dtls_fuzz_listener(dtls_cfg_t *cfg, bool send_out)
{
    if (!fuzz_l) {
        char err[ERR_LEN];
        cfg->bind_addr = "127.0.0.1";
        cfg->port = 0;
        fuzz_l = dtls_listener_new(loop, &fuzz_sink, ctx, cfg, err);
        if (!fuzz_l) {
            fprintf(stderr, "fuzz listener: %s\n", err);
            abort();
        }
        fuzz_fd = fuzz_l->fd;
        if (!send_out)
            fuzz_l->fd = -1;
    }
    return fuzz_l;
}

/* A cipher-context set for the harness's own (client) side, made once: the fetch of six
 * ciphers is most of dtls__aead_init. */
static inline dtls_aead_ctx_t *dtls_fuzz_aead(void)
{
    if (!fuzz_aead_made) {
        dtls__aead_init(&fuzz_aead);
        fuzz_aead_made = 1;
    }
    fuzz_aead.enc_uid = fuzz_aead.dec_uid = 0; /* cold, as a new one: nothing from the last input */
    fuzz_aead.enc_alg = fuzz_aead.dec_alg = -1;
    return &fuzz_aead;
}

/* After an input: every peer closed (as dtls_listener_free does), then the listener as a new
 * one starts. next_uid keeps counting on purpose: uids name keys in the cipher-context cache
 * and must never repeat. listen_ssl (the SSL that runs DTLSv1_listen) stays, as it does in the
 * server from one ClientHello to the next: listener.c keeps no state in it after a datagram
 * (SSL_clear when a hello is refused; a good one takes it away to a new peer); an SSL_new per
 * input was a third of dtls_record's CPU time in ASan's allocator. */
static inline void dtls_fuzz_reset(dtls_listener_t *l)
{
    dtls__listener_close_all(l);
    if (htab_count(&l->hs) || htab_count(&l->est) || htab_count(&l->cids) || htab_count(&l->admit))
        abort(); /* a closed peer left an entry behind */
    l->aead.enc_uid = l->aead.dec_uid = 0;
    l->aead.enc_alg = l->aead.dec_alg = -1;
    memset(&l->stats, 0, sizeof l->stats);
    l->ssl_freed = 0;
}

#endif
