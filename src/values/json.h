/* json.h — the values unit's JSON reader (a tree in an arena) and compact writer.
 *
 * One tokenizer, two grammars chosen by a flag. VALUES_LENIENT is for device payloads:
 * ThingsBoard reads them with Gson in lenient mode, so we accept what Gson lenient accepts
 * and is harmless: standard JSON (RFC 8259) plus unquoted keys and values
 * ({temperature:25}, {mode:eco}), single-quoted strings, '=' or '=>' between name and value,
 * ';' between members or elements, and //, # and slash-star comments. Keywords true/false/null
 * match case-insensitively (Gson does). Not accepted: Gson's ")]}'" prefix, elided array
 * elements ([1,,2]), several top-level values. VALUES_STRICT is for REST bodies: RFC 8259
 * exactly, plus the limits jansson (the REST side's former reader) put on it — no \u0000,
 * no lone surrogate escape, no member name twice in one object, integers within int64 and
 * other numbers within double range.
 *
 * The parser builds a small tree in a caller's arena (core/arena.h): nodes, member arrays and
 * strings all live there and die with the arena's next reset, so parsing a small payload
 * never calls malloc (issue #5). Every input byte is read at most a bounded
 * number of times, nesting is capped, and strings must be valid UTF-8 (escapes \uXXXX are
 * decoded, lone surrogates become U+FFFD) because the store and the REST side treat text as
 * UTF-8. Numbers keep their literal text so 42.0 and 1e3 can be typed as ThingsBoard does and
 * echoed unchanged inside JSON values.
 */
#ifndef COAPHUB_VALUES_JSON_H
#define COAPHUB_VALUES_JSON_H

#include "core/arena.h"
#include "values/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    VALUES_LENIENT, /* Gson lenient (device API) */
    VALUES_STRICT,  /* RFC 8259 as jansson enforced it (REST API) */
} values_syntax_t;

typedef enum {
    VALUES_JSON_NULL,
    VALUES_JSON_BOOL,
    VALUES_JSON_NUMBER, /* text = the literal as written, e.g. "42.0", "-1e3" */
    VALUES_JSON_STRING, /* text = decoded UTF-8, len bytes (may contain NUL from \u0000) */
    VALUES_JSON_OBJECT,
    VALUES_JSON_ARRAY,
} values_json_kind_t;

typedef struct values_json values_json_t;
struct values_json {
    values_json_kind_t kind;
    bool b;
    char *text; /* NUMBER and STRING; NUL-terminated copy */
    size_t len;
    char **keys; /* OBJECT: member names (NUL-terminated, UTF-8) */
    size_t *key_lens;
    values_json_t **items; /* OBJECT values / ARRAY elements, n of them */
    size_t n, cap;
};

/* Parses p[0..len) in the given syntax into a tree allocated in arena. max_depth caps
 * nesting of objects/arrays (1 = a flat object; 0 or more than 256 = 256). Returns the tree,
 * valid until the arena is reset, or NULL with a message in err (a partial tree may remain in
 * the arena until then). An empty or all-whitespace document is an error. */
values_json_t *values_json_parse(arena_t *arena, const uint8_t *p, size_t len,
                                 values_syntax_t syntax, size_t max_depth, char *err,
                                 size_t err_cap);
/* Member value of an object by exact name, or NULL (the last one if a name repeats). */
const values_json_t *values_json_get(const values_json_t *obj, const char *key);

/* Appends v as compact JSON (numbers as written, unquoted strings quoted, every member kept
 * in order). Compact output parsed leniently and written again is the same text. */
void values_json_write(values_buf_t *b, const values_json_t *v);
/* v as a new compact JSON string (caller frees). */
char *values_json_compact(const values_json_t *v);
/* v as compact JSON text in arena (valid until the arena is reset). */
char *values_json_compact_arena(arena_t *arena, const values_json_t *v);

#endif
