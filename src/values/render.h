/* render.h — stored values (store_kv_t) to JSON text: the one way a value leaves coaphub.
 *
 * CoAP attribute answers and notifications, REST answers and the web UI's live events all
 * write values here, so the same stored value reads the same on every path: doubles through
 * the one formatter (buf.h), JSON values as compact JSON, strings escaped alike. A caller
 * writes only its own envelope ({"client":..}, SSE framing) around these.
 *
 * Styles: VALUES_TYPED writes a value as its JSON type (true, 42, 42.0, "s", {..});
 * VALUES_TEXT writes every value as a JSON string ("true", "42", "42.0", "s", "{..}"), as
 * ThingsBoard's REST latest and history answers do without useStrictDataTypes.
 *
 * What cannot appear in JSON is dropped or replaced, never written raw: a member whose key is
 * not UTF-8 is left out (REST always did so), a string value that is not UTF-8 is written as
 * "", a STORE_JSON text that is not a JSON object or array is written as a string. The
 * parsers never store such values; this guards the answer, not the data.
 *
 * Thread-safe: no state; each call allocates (and frees) its own scratch memory.
 */
#ifndef COAPHUB_VALUES_RENDER_H
#define COAPHUB_VALUES_RENDER_H

#include "store/store.h"
#include "values/buf.h"

#include <stddef.h>

typedef enum {
    VALUES_TYPED, /* each value as its JSON type */
    VALUES_TEXT,  /* each value as a JSON string */
} values_style_t;

/* Appends kv's value (not its key or ts) as JSON in the given style. */
void values_kv_write(values_buf_t *b, const store_kv_t *kv, values_style_t style);
/* Appends {"key":value,...} for kvs[0..n): one member per key, at the place the key first
 * occurs, with the value of its last occurrence (as a JSON object keeps a key once). Used for
 * attribute answers and notifications. Returns the number of members written. */
size_t values_kvs_write_object(values_buf_t *b, const store_kv_t *kvs, size_t n,
                               values_style_t style);
/* Appends {"key":[{"ts":..,"value":..},...],...} for kvs[0..n): points grouped by key in the
 * order keys first occur, each group in the order given (ThingsBoard's time-series shape).
 * Returns the number of keys written. */
size_t values_kvs_write_series(values_buf_t *b, const store_kv_t *kvs, size_t n,
                               values_style_t style);
/* Appends [{"lastUpdateTs":..,"key":..,"value":..},...] for kvs[0..n) in the order given,
 * typed (ThingsBoard's REST attribute list; a key may repeat across scopes). Returns the
 * number of entries written. */
size_t values_kvs_write_attributes(values_buf_t *b, const store_kv_t *kvs, size_t n);
/* Appends ["key",...] for the keys of kvs[0..n) in the order given (deleted attributes).
 * Returns the number of keys written. */
size_t values_kvs_write_keys(values_buf_t *b, const store_kv_t *kvs, size_t n);

#endif
