/* modes.h — the four coaphub-bench workloads against a server (telemetry, handshake, observe,
 * idle); the fifth mode, openssl, needs no server and is ossl.h's. */
#ifndef COAPHUB_BENCH_MODES_H
#define COAPHUB_BENCH_MODES_H

#include "bench.h"

/* Runs b->cfg.mode (any but BENCH_OSSL) to completion (bounded by its time caps) and prints
 * the report. Returns 0, or 1 when the run could not be done at all (no session came up, REST
 * failed). */
int bench_mode_run(bench_t *b);

#endif
