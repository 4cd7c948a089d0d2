/* payload_json.c — libFuzzer target: every device-payload parser (values/body.h, uplink/payload.h)
 * on arbitrary bytes (telemetry, attributes, client RPC, RPC reply, claim), with and without
 * type cast and with tight caps. Any accepted value is re-serialised and parsed back, which
 * must succeed, and written as an answer would write it (values/render.h): that text must
 * parse too, and a JSON value must come back exactly as stored. Everything is parsed into
 * one small-chunk arena (so inputs cross chunk boundaries), reset after each parser as a
 * shard does after each request. */
#include "uplink/payload.h"
#include "values/body.h"
#include "values/json.h"
#include "values/render.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_kvs(arena_t *a, const values_kvs_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const store_kv_t *kv = &l->items[i];
        if (!kv->key)
            abort();
        if ((kv->type == STORE_STRING || kv->type == STORE_JSON) && !kv->s)
            abort();
        if (kv->type == STORE_JSON) {
            char err[64];
            values_json_t *v = values_json_parse(a, (const uint8_t *)kv->s, strlen(kv->s),
                                                 VALUES_LENIENT, 0, err, sizeof err);
            if (!v)
                abort(); /* our own compact output must read back */
        }
        for (int typed = 0; typed < 2; typed++) {
            values_buf_t b = {0};
            char err[64];
            values_kv_write(&b, kv, typed ? VALUES_TYPED : VALUES_TEXT);
            if (!values_json_parse(a, (const uint8_t *)b.p, b.len, VALUES_LENIENT, 0, err,
                                   sizeof err))
                abort();
            if (typed && kv->type == STORE_JSON && strcmp(b.p, kv->s) != 0)
                abort(); /* a JSON value is answered as it was stored */
            values_buf_fini(&b);
        }
    }
    /* The grouped shapes (keys repeat across a telemetry array's elements). */
    for (int series = 0; series < 2; series++) {
        values_buf_t b = {0};
        char err[64];
        if (series)
            values_kvs_write_series(&b, l->items, l->n, VALUES_TEXT);
        else
            values_kvs_write_object(&b, l->items, l->n, VALUES_TYPED);
        if (!values_json_parse(a, (const uint8_t *)b.p, b.len, VALUES_LENIENT, 0, err, sizeof err))
            abort();
        values_buf_fini(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    arena_t a;
    arena_init(&a, 256);
    for (int variant = 0; variant < 2; variant++) {
        values_cfg_t cfg = {.type_cast = variant == 0,
                            .max_string_len = variant ? 8 : 0,
                            .max_depth = variant ? 3 : 32};
        values_kvs_t l = {0};
        if (values_telemetry(&a, &cfg, data, size, &l, err, sizeof err) == 0)
            check_kvs(&a, &l);
        else if (l.n)
            abort();
        arena_reset(&a);
        memset(&l, 0, sizeof l);
        if (values_attributes(&a, &cfg, data, size, &l, err, sizeof err) == 0)
            check_kvs(&a, &l);
        arena_reset(&a);
        const char *m, *p;
        if (uplink_payload_client_rpc(&a, &cfg, data, size, &m, &p, err, sizeof err) == 0) {
            if (!m || !p)
                abort();
        }
        arena_reset(&a);
        const char *c;
        if (uplink_payload_rpc_reply(&a, &cfg, data, size, &c, err, sizeof err) == 0) {
            values_json_t *v = values_json_parse(&a, (const uint8_t *)c, strlen(c), VALUES_LENIENT,
                                                 0, err, sizeof err);
            if (!v || v->kind != VALUES_JSON_OBJECT)
                abort();
            char *again = values_json_compact(v);
            if (strcmp(again, c) != 0)
                abort(); /* compact form is a fixed point */
            free(again);
        }
        arena_reset(&a);
        const char *secret;
        int64_t dur;
        if (uplink_payload_claim(&a, &cfg, data, size, &secret, &dur, err, sizeof err) == 0 &&
            !secret)
            abort();
        arena_reset(&a);
    }
    arena_fini(&a);
    return 0;
}
