/* watch.c — committed batches -> hub watch events. See watch.h.
 *
 * Runs on the store writer thread right after a commit, so an event never shows data that
 * could still be lost. A batch usually holds one device's ops; the loop below still groups
 * per device and per scope so a mixed batch gives one event per (device, kind, scope).
 * Activity events do not come from here: the hub's live status table (hub.h) is their one
 * source, published the moment a shard sees a change. The server-scope "active" attribute
 * the device API writes still reaches watchers as an ordinary attribute event.
 */
#include "device/watch.h"

#include "core/xmalloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *value_json(const store_kv_t *kv)
{
    switch (kv->type) {
    case STORE_BOOL: return json_boolean(kv->b);
    case STORE_LONG: return json_integer(kv->l);
    case STORE_DOUBLE: return json_real(kv->d);
    case STORE_JSON: {
        json_t *j = json_loads(kv->s ? kv->s : "null", JSON_DECODE_ANY, NULL);
        return j ? j : json_string(kv->s ? kv->s : "");
    }
    case STORE_STRING:
    default: return json_string(kv->s ? kv->s : "");
    }
}

static void publish(hub_t *h, hub_watch_type_t type, int64_t device_id, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (s)
        hub_watch_publish(h, type, device_id, s);
    free(s);
    json_decref(j);
}

/* Publishes the ops of one device that match (kind, scope). */
static void emit(hub_t *h, const store_batch_t *b, int64_t device_id, store_op_kind_t kind,
                 store_scope_t scope)
{
    json_t *values = json_object(), *deleted = json_array();
    size_t n = store_batch_len(b);
    for (size_t i = 0; i < n; i++) {
        store_op_view_t op;
        store_batch_op(b, i, &op);
        if (op.device_id != device_id || op.kind != kind ||
            (kind != STORE_OP_TS && op.scope != scope))
            continue;
        if (kind == STORE_OP_TS) {
            json_t *arr = json_object_get(values, op.kv->key);
            if (!arr) {
                arr = json_array();
                json_object_set_new(values, op.kv->key, arr);
            }
            json_array_append_new(arr, json_pack("{s:I,s:o}", "ts", (json_int_t)op.kv->ts,
                                                 "value", value_json(op.kv)));
        } else if (kind == STORE_OP_ATTR) {
            json_object_set_new(values, op.kv->key, value_json(op.kv));
        } else {
            json_array_append_new(deleted, json_string(op.kv->key));
        }
    }
    if (kind == STORE_OP_TS && json_object_size(values)) {
        publish(h, HUB_WATCH_TELEMETRY, device_id, json_incref(values));
    } else if (kind == STORE_OP_ATTR && json_object_size(values)) {
        publish(h, HUB_WATCH_ATTRIBUTES, device_id,
                json_pack("{s:s,s:O}", "scope", store_scope_name(scope), "values", values));
    } else if (kind == STORE_OP_ATTR_DELETE && json_array_size(deleted)) {
        publish(h, HUB_WATCH_ATTRIBUTES, device_id,
                json_pack("{s:s,s:O}", "scope", store_scope_name(scope), "deleted", deleted));
    }
    json_decref(values);
    json_decref(deleted);
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
