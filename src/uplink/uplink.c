/* uplink.c — the device API's requests as store batches and answers (see uplink.h). */
#include "uplink/uplink.h"

#include "core/xmalloc.h"
#include "uplink/payload.h"
#include "values/render.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* TB security.claim.duration default: one day. */
#define UPLINK_CLAIM_DEFAULT_MS 86400000LL

int uplink_telemetry(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                     int64_t device_id, int64_t now_ms, store_batch_t *b, char *err, size_t err_cap)
{
    values_kvs_t kvs = {0};
    int rc = values_telemetry(arena, cfg, p, len, &kvs, err, err_cap);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < kvs.n; i++) {
        store_kv_t *kv = &kvs.items[i];
        if (kv->ts == VALUES_TS_NONE)
            kv->ts = now_ms;
        store_batch_ts(b, device_id, kv);
    }
    return 0;
}

int uplink_attributes(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                      int64_t device_id, int64_t now_ms, store_batch_t *b, char *err,
                      size_t err_cap)
{
    values_kvs_t kvs = {0};
    int rc = values_attributes(arena, cfg, p, len, &kvs, err, err_cap);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < kvs.n; i++) {
        kvs.items[i].ts = now_ms;
        store_batch_attr(b, device_id, SCOPE_CLIENT, &kvs.items[i]);
    }
    return 0;
}

int uplink_claim(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                 int64_t device_id, int64_t now_ms, store_batch_t *b, char *err, size_t err_cap)
{
    const char *secret;
    int64_t duration;
    int rc = uplink_payload_claim(arena, cfg, p, len, &secret, &duration, err, err_cap);
    if (rc < 0)
        return rc;
    if (duration <= 0)
        duration = UPLINK_CLAIM_DEFAULT_MS;
    int64_t expires = duration > INT64_MAX - now_ms ? INT64_MAX : now_ms + duration;
    values_buf_t v = {0};
    values_buf_puts(&v, "{\"secretKey\":");
    values_buf_json_str(&v, secret, strlen(secret));
    values_buf_printf(&v, ",\"expirationTime\":%" PRId64 "}", expires);
    store_kv_t kv = {.key = "claimingData", .type = STORE_JSON, .s = v.p, .ts = now_ms};
    store_batch_attr(b, device_id, SCOPE_SERVER, &kv);
    values_buf_fini(&v);
    return 0;
}

int uplink_client_rpc(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                      int64_t now_ms, values_buf_t *out, char *err, size_t err_cap)
{
    const char *method, *params;
    int rc = uplink_payload_client_rpc(arena, cfg, p, len, &method, &params, err, err_cap);
    if (rc < 0)
        return rc;
    (void)params; /* built-in methods take none */
    if (strcmp(method, "getCurrentTime") == 0) {
        values_buf_printf(out, "{\"time\":%" PRId64 "}", now_ms);
        return 0;
    }
    values_buf_t m = {0};
    values_buf_puts(&m, "Unsupported client-side RPC method: ");
    values_buf_puts(&m, method);
    values_buf_puts(out, "{\"error\":");
    values_buf_json_str(out, m.p, m.len);
    values_buf_puts(out, "}");
    values_buf_fini(&m);
    return 1;
}

int uplink_rpc_reply(hub_t *hub, arena_t *arena, const values_cfg_t *cfg, const uint8_t *p,
                     size_t len, int64_t device_id, int64_t request_id, char *err, size_t err_cap)
{
    const char *body;
    int rc = uplink_payload_rpc_reply(arena, cfg, p, len, &body, err, err_cap);
    if (rc < 0)
        return rc;
    (void)hub_rpc_reply(hub, device_id, request_id, (const uint8_t *)body, strlen(body));
    return 0;
}

void uplink_keys_add_csv(uplink_keys_t *k, const char *v, size_t len)
{
    const char *end = v + len;
    while (end > v && end[-1] == ',')
        end--;
    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *stop = comma ? comma : end;
        if (k->n == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 8;
            k->keys = xrealloc(k->keys, k->cap * sizeof *k->keys);
        }
        k->keys[k->n++] = xstrndup(v, (size_t)(stop - v));
        k->present = true;
        v = comma ? comma + 1 : end;
    }
}

void uplink_keys_fini(uplink_keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    memset(k, 0, sizeof *k);
}

int uplink_attributes_read(store_t *s, int64_t device_id, const uplink_keys_t *client,
                           const uplink_keys_t *shared, values_buf_t *out)
{
    bool all = !client->present && !shared->present;
    store_kv_list_t cl = {0}, sl = {0};
    int rc = 0;
    if (all || client->present)
        rc = store_attr_get(s, device_id, SCOPE_CLIENT, (const char *const *)client->keys,
                            client->n, &cl);
    if (rc == 0 && (all || shared->present))
        rc = store_attr_get(s, device_id, SCOPE_SHARED, (const char *const *)shared->keys,
                            shared->n, &sl);
    if (rc == 0 && cl.n == 0 && sl.n == 0)
        rc = 1;
    if (rc == 0) {
        values_buf_put(out, "{", 1);
        if (cl.n) {
            values_buf_puts(out, "\"client\":");
            values_kvs_write_object(out, cl.items, cl.n, VALUES_TYPED);
        }
        if (sl.n) {
            values_buf_puts(out, cl.n ? ",\"shared\":" : "\"shared\":");
            values_kvs_write_object(out, sl.items, sl.n, VALUES_TYPED);
        }
        values_buf_put(out, "}", 1);
    }
    store_kv_list_fini(&cl);
    store_kv_list_fini(&sl);
    return rc;
}
