/* values_int.h — declarations shared by the values unit's files (module-internal).
 *
 * text.c holds the lexical rules every other file agrees on (what a number is, what UTF-8
 * is, what fits a long), keys.c the one index of repeated member names, number.c the typing
 * of numbers; body.c, json.c and render.c use them so that no rule is written twice.
 */
#ifndef COAPHUB_VALUES_VALUES_INT_H
#define COAPHUB_VALUES_VALUES_INT_H

#include "core/arena.h"
#include "store/store.h"
#include "values/body.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- text.c: lexical rules ---- */

/* Length of the valid UTF-8 sequence at p (at most n bytes, n >= 1), or 0 if it is not one
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
size_t values__utf8_len(const uint8_t *p, size_t n);
/* True when s[0..n) is all valid UTF-8. */
bool values__utf8_valid(const char *s, size_t n);
/* Length in UTF-16 code units (Java's String.length) of valid UTF-8 s[0..n). */
size_t values__utf16_units(const char *s, size_t n);
/* RFC 8259 number, exactly the whole of s[0..n): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
bool values__is_number(const char *s, size_t n);
/* Long.parseLong of the NUL-terminated s: optional sign, decimal digits, int64 range. */
bool values__parse_long(const char *s, int64_t *out);

/* ---- keys.c: repeated member names ---- */

/* Number of scratch slots values__key_first needs for n keys (a power of two >= 2n, at least
 * 16; a caller may reuse them as n entries of its own afterwards). */
size_t values__key_slots(size_t n);
/* For keys[0..n) (lengths lens), sets first[i] to the index of the first key equal to
 * keys[i] (so first[i] == i for a name's first occurrence). slots: values__key_slots(n)
 * zeroed entries of scratch. Linear time in the total key length. */
void values__key_first(char *const *keys, const size_t *lens, size_t n, size_t *first,
                       size_t *slots);

/* ---- number.c and body.c: typing ---- */

/* One body being typed: the caller's arena, caps and error buffer. */
typedef struct values__ctx {
    arena_t *arena;
    const values_cfg_t *cfg;
    char *err;
    size_t err_cap;
} values__ctx_t;

/* Writes a reason into c->err and returns -EBADMSG. */
int values__bad(values__ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Types the number literal text (a JSON number, or a string that looks like one when type
 * cast is on) into kv as the configured reader does (body.h). 0, or -EBADMSG with a reason
 * naming key. kv's text, if any, lives in c->arena or is text itself. */
int values__type_number(values__ctx_t *c, const char *key, char *text, store_kv_t *kv);
/* commons-lang3 NumberUtils.isParsable: [-]digits with at most one '.', not ending in '.'. */
bool values__is_parsable(const char *s, size_t n);

#endif
