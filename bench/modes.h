/* modes.h — the four coaphub-bench workloads (telemetry, handshake, observe, idle). */
#ifndef COAPHUB_BENCH_MODES_H
#define COAPHUB_BENCH_MODES_H

#include "bench.h"

/* Runs b->cfg.mode to completion (bounded by its time caps) and prints the report.
 * Returns 0, or 1 when the run could not be done at all (no session came up, REST failed). */
int bench_mode_run(bench_t *b);

/* `openssl` mode: server-side CPU of in-process DTLS handshakes (ossl.c). */
int bench_ossl_run(bench_t *b);

#endif
