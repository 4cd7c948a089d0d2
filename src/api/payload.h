/* payload.h — device payloads (JSON) to typed key/values, per spec/thingsboard-coap.md §3 and
 * §5 (module-internal).
 *
 * Every function parses with the lenient reader of json.h, applies the caps of
 * api_payload_cfg_t and returns 0 or -EBADMSG with a human-readable reason in err (for the
 * log; ThingsBoard answers errors with an empty body). Nothing here allocates a store object
 * or touches a device: it is pure, so the fuzzer can drive it directly.
 *
 * Memory: every result (the item array, keys, strings, method/params/compact texts) lives in
 * the caller's arena, or is a string literal, and stays valid until the arena is reset; the
 * caller frees nothing. A small payload costs no malloc (issue #5); the shard resets its
 * arena when the handler is done (store_batch_* copy what they keep).
 */
#ifndef COAPHUB_API_PAYLOAD_H
#define COAPHUB_API_PAYLOAD_H

#include "core/arena.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* kv.ts value meaning "no client timestamp: use the server's time". */
#define API_TS_NONE INT64_MIN

typedef struct api_payload_cfg {
    bool type_cast;        /* "43" -> LONG 43 (JSON_TYPE_CAST_ENABLED) */
    size_t max_string_len; /* 0 = unlimited; a longer STRING value is an error */
    size_t max_depth;      /* nesting cap (0 = the reader's hard limit) */
    size_t max_bytes;      /* 0 = unlimited; a longer payload is an error */
} api_payload_cfg_t;

/* Typed key/values; the array and the item strings live in the arena given to the parser.
 * Start from {0}; on an error it is left empty. */
typedef struct api_kvs {
    store_kv_t *items;
    size_t n, cap;
} api_kvs_t;

/* Telemetry (§3.1): an object, {"ts":..,"values":{..}}, or an array of those. Items carry
 * the client ts or API_TS_NONE. A key repeated within one object keeps its last value. */
int api_payload_telemetry(arena_t *arena, const api_payload_cfg_t *cfg, const uint8_t *p,
                          size_t len, api_kvs_t *out, char *err, size_t err_cap);
/* Client attributes (§3.2): a flat JSON object only. Items have ts API_TS_NONE. */
int api_payload_attributes(arena_t *arena, const api_payload_cfg_t *cfg, const uint8_t *p,
                           size_t len, api_kvs_t *out, char *err, size_t err_cap);
/* Client-side RPC (§3.7): {"method":..,"params":..}. *method is the method text, *params the
 * compact JSON of params ("null" when absent); both NULL on an error. */
int api_payload_client_rpc(arena_t *arena, const api_payload_cfg_t *cfg, const uint8_t *p,
                           size_t len, const char **method, const char **params, char *err,
                           size_t err_cap);
/* Server-side RPC reply (§3.6): must be a JSON object; *compact receives its compact text. */
int api_payload_rpc_reply(arena_t *arena, const api_payload_cfg_t *cfg, const uint8_t *p,
                          size_t len, const char **compact, char *err, size_t err_cap);
/* Claim (§3.8): optional body {"secretKey":..,"durationMs":..}. An empty body or a JSON
 * value that is not an object gives secret "" and duration 0 (= use the default). */
int api_payload_claim(arena_t *arena, const api_payload_cfg_t *cfg, const uint8_t *p,
                      size_t len, const char **secret, int64_t *duration_ms, char *err,
                      size_t err_cap);

#endif
