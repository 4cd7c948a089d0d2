/* ossl.h — `coaphub-bench openssl`: server-side CPU of in-process DTLS handshakes, no server
 * (the floor bench/run compares coaphub's handshake cost against; see ossl.c). */
#ifndef COAPHUB_BENCH_OSSL_H
#define COAPHUB_BENCH_OSSL_H

#include "bench.h"

/* Runs the openssl mode for b->cfg.duration_s (or b->cfg.requests handshakes) with the first
 * device's certificate as the client's, and prints the report. Returns 0, or 1 when no
 * handshake completed. */
int bench_ossl_run(bench_t *b);

#endif
