/* batch.c — building a batch of device-data operations (telemetry points, attribute sets and
 * deletes) for the writer.
 *
 * Invariant: a batch owns copies of every key and string it was given, so the caller's
 * buffers may go as soon as a store_batch_* call returns. Keys and string values live in the
 * batch's arena (core/arena.h), which keeps its first chunk across resets, and the first
 * STORE_BATCH_INLINE_OPS operations live inside the batch: a batch reused for requests with
 * a few short keys allocates nothing (performance pass 3).
 *
 * Not here: queueing, committing and completing batches (writer.c); this file never sees
 * the store.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define BATCH_TEXT_CHUNK 256
#define BATCH_KEEP_OPS 64 /* a reset keeps an ops array up to this capacity */

store_batch_t *store_batch_new(void)
{
    store_batch_t *b = xcalloc(1, sizeof(store_batch_t));
    b->ops = b->inline_ops;
    b->cap = STORE_BATCH_INLINE_OPS;
    arena_init(&b->text, BATCH_TEXT_CHUNK);
    return b;
}

static char *text_copy(store_batch_t *b, const char *str)
{
    return str ? arena_strdup(&b->text, str) : NULL;
}

static store_op_t *push(store_batch_t *b, store_op_kind_t kind, int64_t device_id)
{
    if (b->n == b->cap) {
        size_t cap = b->cap * 2;
        store_op_t *ops = xmalloc(cap * sizeof(*ops));
        memcpy(ops, b->ops, b->n * sizeof(*ops));
        if (b->ops != b->inline_ops)
            free(b->ops);
        b->ops = ops;
        b->cap = cap;
    }
    store_op_t *o = &b->ops[b->n++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->device_id = device_id;
    return o;
}

/* An op holding a copy of kv (its key and string in the batch's arena). */
static inline void push_kv(store_batch_t *b, store_op_kind_t kind, int64_t device_id,
                           store_scope_t scope, const store_kv_t *kv)
{
    store_op_t *o = push(b, kind, device_id);
    o->scope = scope;
    o->kv = *kv;
    o->kv.key = text_copy(b, kv->key);
    o->kv.s = text_copy(b, kv->s);
}

void store_batch_ts(store_batch_t *b, int64_t device_id, const store_kv_t *kv)
{
    push_kv(b, STORE_OP_TS, device_id, 0, kv);
}

void store_batch_attr(store_batch_t *b, int64_t device_id, store_scope_t scope,
                      const store_kv_t *kv)
{
    push_kv(b, STORE_OP_ATTR, device_id, scope, kv);
}

void store_batch_attr_delete(store_batch_t *b, int64_t device_id, store_scope_t scope,
                             const char *key)
{
    store_op_t *o = push(b, STORE_OP_ATTR_DELETE, device_id);
    o->scope = scope;
    o->kv.key = text_copy(b, key);
}

size_t store_batch_len(const store_batch_t *b)
{
    return b ? b->n : 0;
}

void store_batch_reset(store_batch_t *b)
{
    arena_reset(&b->text);
    if (b->cap > BATCH_KEEP_OPS) {
        free(b->ops);
        b->ops = b->inline_ops;
        b->cap = STORE_BATCH_INLINE_OPS;
    }
    b->n = 0;
    b->next = NULL;
    b->reply_loop = NULL;
    b->done = NULL;
    b->done_keep = NULL;
    b->arg = NULL;
    b->status = 0;
}

void store_batch_free(store_batch_t *b)
{
    if (!b)
        return;
    store_batch_reset(b);
    if (b->ops != b->inline_ops)
        free(b->ops);
    arena_fini(&b->text);
    free(b);
}

void store_batch_op(const store_batch_t *b, size_t i, store_op_view_t *out)
{
    const store_op_t *o = &b->ops[i];
    *out = (store_op_view_t){
        .kind = o->kind, .device_id = o->device_id, .scope = o->scope, .kv = &o->kv};
}
