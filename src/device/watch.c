/* watch.c — committed batches -> hub watch events. See watch.h.
 *
 * Runs on the store writer thread right after a commit, so an event never shows data that
 * could still be lost. A batch usually holds one device's ops; the loop below still groups
 * per device and per scope so a mixed batch gives one event per (device, kind, scope).
 * Activity events do not come from here: the hub's live status table (hub.h) is their one
 * source, published the moment a shard sees a change. The server-scope "active" attribute
 * the device API writes still reaches watchers as an ordinary attribute event. Values are
 * written by values/render.h, as REST and CoAP answers write them.
 */
#include "device/watch.h"

#include "core/xmalloc.h"
#include "values/render.h"

#include <stdlib.h>
#include <string.h>

/* Publishes the ops of one device that match (kind, scope). */
static void emit(hub_t *h, const store_batch_t *b, int64_t device_id, store_op_kind_t kind,
                 store_scope_t scope)
{
    size_t n = store_batch_len(b), m = 0;
    store_kv_t *kvs = xmalloc((n ? n : 1) * sizeof *kvs); /* shallow: strings stay the batch's */
    for (size_t i = 0; i < n; i++) {
        store_op_view_t op;
        store_batch_op(b, i, &op);
        if (op.device_id == device_id && op.kind == kind &&
            (kind == STORE_OP_TS || op.scope == scope))
            kvs[m++] = *op.kv;
    }
    values_buf_t j = {0};
    size_t written;
    if (kind == STORE_OP_TS) {
        written = values_kvs_write_series(&j, kvs, m, VALUES_TYPED);
    } else {
        const char *name = store_scope_name(scope);
        values_buf_puts(&j, "{\"scope\":");
        values_buf_json_str(&j, name, strlen(name));
        if (kind == STORE_OP_ATTR) {
            values_buf_puts(&j, ",\"values\":");
            written = values_kvs_write_object(&j, kvs, m, VALUES_TYPED);
        } else {
            values_buf_puts(&j, ",\"deleted\":");
            written = values_kvs_write_keys(&j, kvs, m);
        }
        values_buf_put(&j, "}", 1);
    }
    if (written) /* nothing that JSON can carry: no event, as before */
        hub_watch_publish(h, kind == STORE_OP_TS ? HUB_WATCH_TELEMETRY : HUB_WATCH_ATTRIBUTES,
                          device_id, j.p);
    values_buf_fini(&j);
    free(kvs);
}

void device_watch_commit_hook(void *ctx, const store_batch_t *b)
{
    hub_t *h = ctx;
    if (!hub_watched(h))
        return;
    size_t n = store_batch_len(b);
    /* Each distinct (device, kind, scope) is emitted once: at its first op. */
    for (size_t i = 0; i < n; i++) {
        store_op_view_t op;
        store_batch_op(b, i, &op);
        bool first = true;
        for (size_t j = 0; j < i && first; j++) {
            store_op_view_t prev;
            store_batch_op(b, j, &prev);
            first = !(prev.device_id == op.device_id && prev.kind == op.kind &&
                      (op.kind == STORE_OP_TS || prev.scope == op.scope));
        }
        if (first)
            emit(h, b, op.device_id, op.kind, op.scope);
    }
}
