/* json.h — the api module's own lenient JSON reader and compact writer (module-internal).
 *
 * Devices post JSON that ThingsBoard reads with Gson in lenient mode, so we accept what Gson
 * lenient accepts and is harmless: standard JSON (RFC 8259) plus unquoted keys and values
 * ({temperature:25}, {mode:eco}), single-quoted strings, '=' or '=>' between name and value,
 * ';' between members or elements, and //, # and slash-star comments. Keywords true/false/null
 * match case-insensitively (Gson does). Not accepted: Gson's ")]}'" prefix, elided array
 * elements ([1,,2]), several top-level values.
 *
 * The parser builds a small tree in a caller's arena (core/arena.h): nodes, member arrays and
 * strings all live there and die with the arena's next reset, so parsing a small payload
 * never calls malloc (issue #5). Every input byte is read at most a bounded
 * number of times, nesting is capped, and strings must be valid UTF-8 (escapes \uXXXX are
 * decoded, lone surrogates become U+FFFD) because the store and the REST side treat text as
 * UTF-8. Numbers keep their literal text so 42.0 and 1e3 can be typed as ThingsBoard does and
 * echoed unchanged inside JSON values.
 */
#ifndef COAPHUB_API_JSON_H
#define COAPHUB_API_JSON_H

#include "core/arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    API_JSON_NULL,
    API_JSON_BOOL,
    API_JSON_NUMBER, /* text = the literal as written, e.g. "42.0", "-1e3" */
    API_JSON_STRING, /* text = decoded UTF-8, len bytes (may contain NUL from \u0000) */
    API_JSON_OBJECT,
    API_JSON_ARRAY,
} api_json_kind_t;

typedef struct api_json api_json_t;
struct api_json {
    api_json_kind_t kind;
    bool b;
    char *text;      /* NUMBER and STRING; NUL-terminated copy */
    size_t len;
    char **keys;     /* OBJECT: member names (NUL-terminated, UTF-8) */
    size_t *key_lens;
    api_json_t **items; /* OBJECT values / ARRAY elements, n of them */
    size_t n, cap;
};

/* Parses p[0..len) into a tree allocated in arena. max_depth caps nesting of objects/arrays
 * (1 = a flat object). Returns the tree, valid until the arena is reset, or NULL with a
 * message in err (a partial tree may remain in the arena until then). An empty or
 * all-whitespace document is an error. */
api_json_t *api_json_parse(arena_t *arena, const uint8_t *p, size_t len, size_t max_depth,
                           char *err, size_t err_cap);
/* Member value of an object by exact name, or NULL (the last one if a name repeats). */
const api_json_t *api_json_get(const api_json_t *obj, const char *key);

/* A growing NUL-terminated string. */
typedef struct api_buf {
    char *p;
    size_t len, cap;
} api_buf_t;

void api_buf_put(api_buf_t *b, const char *s, size_t n);
void api_buf_puts(api_buf_t *b, const char *s);
void api_buf_printf(api_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string. */
void api_buf_json_str(api_buf_t *b, const char *s, size_t n);
/* Appends a double so it reads back exactly; integral values get ".0" (42.0 stays 42.0, as
 * Java prints it). Non-finite values are written as null. */
void api_buf_json_double(api_buf_t *b, double d);
/* Takes the string out (caller frees; never NULL) and leaves b empty. */
char *api_buf_take(api_buf_t *b);
void api_buf_fini(api_buf_t *b);

/* Appends v as compact JSON (numbers as written, unquoted strings quoted). */
void api_json_write(api_buf_t *b, const api_json_t *v);
/* v as a new compact JSON string (caller frees). */
char *api_json_compact(const api_json_t *v);

#endif
