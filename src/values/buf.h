/* buf.h — a growing text buffer with JSON's string escaping and the project's one number
 * formatter.
 *
 * Every JSON text coaphub writes for a value (CoAP answers and notifications, REST answers,
 * the web UI's live events, stored JSON values) goes through values_buf_json_str and
 * values_buf_double, so a value reads the same whichever path asks for it. The buffer
 * allocates with xrealloc (aborts on exhaustion, STYLE.md §5); it is not for the datagram
 * path's parse memory, which lives in the shard's arena (core/arena.h).
 */
#ifndef COAPHUB_VALUES_BUF_H
#define COAPHUB_VALUES_BUF_H

#include <stddef.h>

/* A growing NUL-terminated string. Start from {0}; p is NULL until the first append. */
typedef struct values_buf {
    char *p;
    size_t len, cap;
} values_buf_t;

/* Longest text values_double_format writes, NUL included ("-2.2250738585072014e-308"). */
#define VALUES_DOUBLE_LEN 32

/* Appends s[0..n) (n may be 0; s may then be NULL). */
void values_buf_put(values_buf_t *b, const char *s, size_t n);
/* Appends the NUL-terminated s. */
void values_buf_puts(values_buf_t *b, const char *s);
/* Appends printf output. */
void values_buf_printf(values_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string: '"', '\\' and control characters escaped
 * (\n \r \t \b \f, others \u00xx), everything else copied byte for byte. */
void values_buf_json_str(values_buf_t *b, const char *s, size_t n);
/* Writes d as the shortest %g text that reads back to the same double, plus ".0" when that
 * looks integral (42.0 stays 42.0, as Java prints it). Non-finite values become "null" (JSON
 * cannot spell them; the parsers never store one). Returns the length. */
size_t values_double_format(char out[static VALUES_DOUBLE_LEN], double d);
/* Appends values_double_format(d): the one way a stored double becomes text. */
void values_buf_double(values_buf_t *b, double d);
/* Takes the string out (caller frees; never NULL, "" when nothing was appended) and leaves
 * b empty. */
char *values_buf_take(values_buf_t *b);
/* Frees the text; b is empty and reusable afterwards. */
void values_buf_fini(values_buf_t *b);

#endif
