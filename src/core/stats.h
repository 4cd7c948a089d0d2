/* stats.h — counters written once. A module lists its counters in one X-macro,
 *
 *     #define UDP_STATS(X) X(datagrams_in, "udp_datagrams_received_total", "counter", NULL,
 *                            "Plain CoAP datagrams received.") ...
 *
 * (field, Prometheus family without the coaphub_ prefix or NULL if not exported, "counter" or
 * "gauge", label set such as "{result=\"ok\"}" or NULL, help text), and these helpers expand
 * that one list into the struct, the sum over shards and the /metrics description, so a new
 * counter cannot be declared without being summed and exported (or explicitly not exported).
 * Every counter is a uint64_t: gauges of a shard (live sessions) are summed like counters.
 * Rows of one family stand together in the list; its HELP and TYPE come from the first (the
 * others may leave help NULL).
 */
#ifndef COAPHUB_CORE_STATS_H
#define COAPHUB_CORE_STATS_H

#include <stddef.h>
#include <stdint.h>

/* One struct member per row: typedef struct x_stats { X_STATS(STATS_FIELD) } x_stats_t; */
#define STATS_FIELD(field, family, type, labels, help) uint64_t field;
/* dst->field += src->field per row, in a function with `dst` and `src` in scope. */
#define STATS_ADD(field, family, type, labels, help) dst->field += src->field;

/* What /metrics says about one row; made with a STATS_DESC-style macro naming the struct. */
typedef struct stats_desc {
    const char *family; /* NULL: kept for tests and logs, not exported */
    const char *type;
    const char *labels;
    const char *help;
    size_t offset; /* of the uint64_t in the stats struct */
} stats_desc_t;

#endif
