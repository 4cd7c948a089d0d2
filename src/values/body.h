/* body.h — telemetry and attribute bodies (JSON) to typed key/values, per
 * spec/thingsboard-coap.md §3.1, §3.2 and §5: the one place ThingsBoard's value rules live.
 *
 * Two readers, one set of rules, chosen by values_cfg_t.strict. Device payloads (CoAP) are
 * read as ThingsBoard's transport reads them: Gson lenient, JsonConverter's typing, type cast
 * and string caps from the configuration. REST bodies (strict) are read as ThingsBoard's
 * REST controller reads them: RFC 8259 as jansson enforced it, numbers typed by their token
 * (1e3 is a DOUBLE), blank keys and null attributes refused, {"ts","values"} only with
 * exactly those two members. body.c lists every difference; there are no others.
 *
 * Every function parses with the reader of values/json.h, applies the caps of values_cfg_t
 * and returns 0, -EBADMSG with a reason in err (not JSON we read, or not the expected
 * shape, or a value ThingsBoard would refuse), or, strict only, -EINVAL with ThingsBoard's
 * REST message in err ("Key cannot be blank", "Attribute value for key 'k' must not be
 * null"). Nothing here touches a device or a store: it is pure, so the fuzzers drive it.
 *
 * Memory: every result (the item array, keys, strings) lives in the caller's arena, or is a
 * string literal, and stays valid until the arena is reset; the caller frees nothing. A small
 * payload costs no malloc (issue #5): a shard resets its arena when the handler is done
 * (store_batch_* copy what they keep).
 */
#ifndef COAPHUB_VALUES_BODY_H
#define COAPHUB_VALUES_BODY_H

#include "core/arena.h"
#include "store/store.h"
#include "values/json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* kv.ts value meaning "no client timestamp: use the server's time". */
#define VALUES_TS_NONE INT64_MIN

typedef struct values_cfg {
    bool strict;           /* REST body rules (above); false = device payload rules */
    bool type_cast;        /* "43" -> LONG 43 (JSON_TYPE_CAST_ENABLED) */
    size_t max_string_len; /* 0 = unlimited; a longer STRING value is an error */
    size_t max_depth;      /* nesting cap (0 = the reader's hard limit) */
    size_t max_bytes;      /* 0 = unlimited; a longer payload is an error */
} values_cfg_t;

/* Typed key/values; the array and the item strings live in the arena given to the parser.
 * Start from {0}; on an error it is left empty. */
typedef struct values_kvs {
    store_kv_t *items;
    size_t n, cap;
} values_kvs_t;

/* Telemetry (§3.1; REST §8.5): an object, {"ts":..,"values":{..}}, or an array of those.
 * Items carry the client ts or VALUES_TS_NONE. A key repeated within one object keeps its
 * last value (lenient; strict refuses the body). */
int values_telemetry(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                     values_kvs_t *out, char *err, size_t err_cap);
/* Attributes (§3.2; REST §8.5): a JSON object only. Items have ts VALUES_TS_NONE. */
int values_attributes(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                      values_kvs_t *out, char *err, size_t err_cap);

/* Parses a whole body in cfg's syntax under its byte and depth caps (also for the device
 * API's other bodies: RPC, claim). The tree lives in arena; NULL with a reason in err. */
values_json_t *values_parse(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                            char *err, size_t err_cap);
/* JsonPrimitive.getAsLong as ThingsBoard reads "ts" and "durationMs": an integral number, a
 * fractional one truncated, or a numeric string. 0 or -EBADMSG. */
int values_json_as_long(const values_json_t *v, int64_t *out);

#endif
