/* dtls_fuzz_env.h — the process-wide set-up the DTLS fuzz targets share: a loop and a server
 * context whose generated certificate lives in a temp dir, made once and removed at exit.
 * Header-only so each target stays one translation unit (static state per target). */
#ifndef COAPHUB_TESTS_FUZZ_DTLS_FUZZ_ENV_H
#define COAPHUB_TESTS_FUZZ_DTLS_FUZZ_ENV_H

#include "dtls/dtls_int.h"

#include "core/log.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

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
static char dir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    return remove(p);
}

static void cleanup(void)
{
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

#endif
