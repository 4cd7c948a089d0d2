/* json.c — the JSON reader (lenient or strict, one tokenizer) and the compact writer.
 *
 * Grammar accepted in VALUES_LENIENT (RFC 8259 plus the extensions listed in json.h):
 *
 *   value   = object / array / string / literal
 *   object  = '{' [ member *( (',' / ';') member ) ] '}'
 *   member  = name ( ':' / '=' / '=>' ) value
 *   name    = string / literal
 *   array   = '[' [ value *( (',' / ';') value ) ] ']'
 *   string  = '"' chars '"' / "'" chars "'"       ; escapes \" \' \\ \/ \b \f \n \r \t \uXXXX
 *   literal = 1*( any byte except  / \ ; # = { } [ ] : , SP HT CR LF FF  and quotes )
 *             -> true/false/null (any case), an RFC 8259 number, or else an unquoted string
 *   white space also takes FF and comments: // and # to the end of the line, slash-star
 *
 * VALUES_STRICT narrows the same tokenizer to RFC 8259 as jansson (the REST side's former
 * reader) enforced it: only '"' strings without \' and without raw control characters, only
 * ':' and ',', keywords in lower case, white space SP HT CR LF, no comments; and beyond the
 * grammar, as jansson: no \u0000, no lone surrogate escape, no repeated member name, an
 * integer must fit int64 and any other number must be a finite double.
 *
 * Every read checks the remaining length before advancing (no pointer ever passes `end`).
 * The tree (nodes, member arrays, strings) lives in the caller's arena: no malloc per value,
 * nothing to free on an error path (issue #5: no allocation on the steady datagram path).
 * Recursion depth is bounded by max_depth, clamped to VALUES_JSON_DEPTH_LIMIT.
 */
#include "values/json.h"

#include "values/values_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hard bound on nesting whatever the configuration says: recursion uses the C stack. */
#define VALUES_JSON_DEPTH_LIMIT 256

typedef struct cur {
    arena_t *arena;
    const uint8_t *p, *end;
    size_t depth, max_depth;
    bool strict;
    char *err;
    size_t err_cap;
    bool failed;
} cur_t;

static void fail(cur_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(cur_t *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    if (c->err && c->err_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->err_cap, fmt, ap);
        va_end(ap);
    }
}

/* ---- tree ---- */

static values_json_t *node(cur_t *c, values_json_kind_t kind)
{
    values_json_t *v = arena_calloc(c->arena, 1, sizeof *v);
    v->kind = kind;
    return v;
}

/* Appends an item; the arrays grow by doubling inside the arena (a grown array is a new
 * block and the old one is abandoned until the reset: at most as much again). */
static void push(cur_t *c, values_json_t *v, char *key, size_t key_len, values_json_t *item)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        v->items = arena_grow(c->arena, v->items, v->n * sizeof *v->items, cap * sizeof *v->items);
        if (v->kind == VALUES_JSON_OBJECT) {
            v->keys = arena_grow(c->arena, v->keys, v->n * sizeof *v->keys, cap * sizeof *v->keys);
            v->key_lens = arena_grow(c->arena, v->key_lens, v->n * sizeof *v->key_lens,
                                     cap * sizeof *v->key_lens);
        }
        v->cap = cap;
    }
    if (v->kind == VALUES_JSON_OBJECT) {
        v->keys[v->n] = key;
        v->key_lens[v->n] = key_len;
    }
    v->items[v->n++] = item;
}

const values_json_t *values_json_get(const values_json_t *obj, const char *key)
{
    if (!obj || obj->kind != VALUES_JSON_OBJECT)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = obj->n; i-- > 0;)
        if (obj->key_lens[i] == klen && memcmp(obj->keys[i], key, klen) == 0)
            return obj->items[i];
    return NULL;
}

/* ---- lexer ---- */

static void skip_ws(cur_t *c)
{
    while (c->p < c->end) {
        uint8_t ch = *c->p;
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            c->p++;
        } else if (c->strict) {
            return;
        } else if (ch == '\f') {
            c->p++;
        } else if (ch == '#' || (ch == '/' && c->end - c->p >= 2 && c->p[1] == '/')) {
            while (c->p < c->end && *c->p != '\n' && *c->p != '\r')
                c->p++;
        } else if (ch == '/' && c->end - c->p >= 2 && c->p[1] == '*') {
            const uint8_t *q = c->p + 2;
            while (c->end - q >= 2 && !(q[0] == '*' && q[1] == '/'))
                q++;
            if (c->end - q < 2) {
                fail(c, "unterminated comment");
                c->p = c->end;
                return;
            }
            c->p = q + 2;
        } else {
            return;
        }
    }
}

/* Gson's JsonReader.isLiteral: these bytes end an unquoted literal (a NUL does not). */
static bool is_literal_byte(uint8_t ch)
{
    return ch == '\0' || strchr("/\\;#={}[]:, \t\r\n\f\"'", ch) == NULL;
}

/* Decoded string text in the arena. cap is an upper bound computed before decoding (the
 * raw length between the quotes: no escape decodes to more bytes than it is written with),
 * so put never reallocates; it checks anyway rather than trust that argument with memory. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static bool sbuf_put(cur_t *c, sbuf_t *b, const void *s, size_t n)
{
    if (n > b->cap - b->len) {
        fail(c, "internal: string longer than its bound");
        return false;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

static bool put_utf8(cur_t *c, sbuf_t *b, uint32_t cp)
{
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6)), t[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12)), t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18)), t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), t[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    return sbuf_put(c, b, t, n);
}

static int hex4(const uint8_t *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t h = p[i];
        v <<= 4;
        if (h >= '0' && h <= '9')
            v |= (uint32_t)(h - '0');
        else if (h >= 'a' && h <= 'f')
            v |= (uint32_t)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            v |= (uint32_t)(h - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Reads a quoted string starting at the opening quote into a NUL-terminated arena block.
 * A first pass finds the closing quote (an escape skips the byte after the backslash, as the
 * decoder does) to size the block; the second decodes and validates. */
static bool read_string(cur_t *c, char **text, size_t *len)
{
    uint8_t q = *c->p++;
    const uint8_t *e0 = c->p;
    while (e0 < c->end && *e0 != q)
        e0 += *e0 == '\\' && c->end - e0 >= 2 ? 2 : 1;
    sbuf_t out = {.cap = (size_t)(e0 - c->p)};
    out.p = arena_alloc(c->arena, out.cap + 1);
    while (c->p < c->end) {
        uint8_t ch = *c->p;
        if (ch == q) {
            c->p++;
            out.p[out.len] = '\0';
            *text = out.p;
            *len = out.len;
            return true;
        }
        if (ch != '\\') {
            if (ch < 0x20 && c->strict) {
                fail(c, "control character in string");
                return false;
            }
            size_t n = values__utf8_len(c->p, (size_t)(c->end - c->p));
            if (!n) {
                fail(c, "invalid UTF-8 in string");
                return false;
            }
            if (!sbuf_put(c, &out, c->p, n))
                return false;
            c->p += n;
            continue;
        }
        if (c->end - c->p < 2)
            break;
        uint8_t e = c->p[1];
        c->p += 2;
        char one;
        switch (e) {
        case '\'':
            if (c->strict) {
                fail(c, "invalid escape sequence");
                return false;
            }
            one = (char)e;
            break;
        case '"':
        case '\\':
        case '/':
            one = (char)e;
            break;
        case 'b':
            one = '\b';
            break;
        case 'f':
            one = '\f';
            break;
        case 'n':
            one = '\n';
            break;
        case 'r':
            one = '\r';
            break;
        case 't':
            one = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if (c->end - c->p < 4 || hex4(c->p, &cp) < 0) {
                fail(c, "bad \\u escape");
                return false;
            }
            c->p += 4;
            bool lone = false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u' &&
                    hex4(c->p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    c->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    lone = true;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                lone = true;
            }
            /* Strict, as jansson: a lone surrogate is an error, and so is U+0000 (jansson
             * refuses it unless told otherwise). Lenient, as Gson: U+FFFD and a NUL that the
             * typing refuses in keys and string values (the store keeps C strings). */
            if (c->strict && (lone || cp == 0)) {
                fail(c, lone ? "lone surrogate in \\u escape" : "\\u0000 in string");
                return false;
            }
            if (!put_utf8(c, &out, lone ? 0xFFFD : cp))
                return false;
            continue;
        }
        default:
            fail(c, "invalid escape sequence");
            return false;
        }
        if (!sbuf_put(c, &out, &one, 1))
            return false;
    }
    fail(c, "unterminated string");
    return false;
}

/* Strict: jansson reads an integer into a json_int_t and anything else into a double, and
 * fails the document when that overflows; the REST side keeps that rule. */
static bool number_in_range(const char *text)
{
    if (!strpbrk(text, ".eE")) {
        int64_t l;
        return values__parse_long(text, &l);
    }
    return isfinite(strtod(text, NULL));
}

static values_json_t *read_literal(cur_t *c)
{
    const uint8_t *s = c->p;
    while (c->p < c->end && is_literal_byte(*c->p))
        c->p++;
    size_t n = (size_t)(c->p - s);
    if (n == 0) {
        if (c->p < c->end)
            fail(c, "unexpected character '%c'", *c->p >= 0x20 && *c->p < 0x7f ? *c->p : '?');
        else
            fail(c, "unexpected end of input");
        return NULL;
    }
    /* Gson matches keywords in any case; RFC 8259 (and jansson) only in lower case. */
    int (*cmp)(const char *, const char *, size_t) = c->strict ? strncmp : strncasecmp;
    if (n == 4 && cmp((const char *)s, "true", 4) == 0) {
        values_json_t *v = node(c, VALUES_JSON_BOOL);
        v->b = true;
        return v;
    }
    if (n == 5 && cmp((const char *)s, "false", 5) == 0)
        return node(c, VALUES_JSON_BOOL);
    if (n == 4 && cmp((const char *)s, "null", 4) == 0)
        return node(c, VALUES_JSON_NULL);
    if (!values__utf8_valid((const char *)s, n)) {
        fail(c, "invalid UTF-8 in literal");
        return NULL;
    }
    bool number = values__is_number((const char *)s, n);
    if (c->strict && !number) {
        fail(c, "invalid literal");
        return NULL;
    }
    values_json_t *v = node(c, number ? VALUES_JSON_NUMBER : VALUES_JSON_STRING);
    v->text = arena_strndup(c->arena, (const char *)s, n);
    v->len = n;
    if (c->strict && number && !number_in_range(v->text)) {
        fail(c, "number out of range");
        return NULL;
    }
    return v;
}

static values_json_t *read_value(cur_t *c);

/* Member name: a quoted string or an unquoted literal taken as text (Gson nextName). */
static bool read_name(cur_t *c, char **name, size_t *len)
{
    if (c->p < c->end && (*c->p == '"' || (*c->p == '\'' && !c->strict)))
        return read_string(c, name, len);
    if (c->strict) {
        fail(c, "expected a quoted member name");
        return false;
    }
    const uint8_t *s = c->p;
    while (c->p < c->end && is_literal_byte(*c->p))
        c->p++;
    if (c->p == s) {
        fail(c, "expected a member name");
        return false;
    }
    if (!values__utf8_valid((const char *)s, (size_t)(c->p - s))) {
        fail(c, "invalid UTF-8 in name");
        return false;
    }
    *len = (size_t)(c->p - s);
    *name = arena_strndup(c->arena, (const char *)s, *len);
    return true;
}

/* Strict: jansson (JSON_REJECT_DUPLICATES) refuses an object that names a member twice. */
static bool has_repeated_name(cur_t *c, const values_json_t *obj)
{
    if (obj->n < 2)
        return false;
    size_t *first = arena_alloc(c->arena, obj->n * sizeof *first);
    size_t *slots = arena_calloc(c->arena, values__key_slots(obj->n), sizeof *slots);
    values__key_first(obj->keys, obj->key_lens, obj->n, first, slots);
    for (size_t i = 0; i < obj->n; i++)
        if (first[i] != i)
            return true;
    return false;
}

static values_json_t *read_container(cur_t *c)
{
    uint8_t open = *c->p++;
    bool is_obj = open == '{';
    uint8_t close = is_obj ? '}' : ']';
    if (++c->depth > c->max_depth) {
        fail(c, "nesting deeper than %zu", c->max_depth);
        return NULL;
    }
    values_json_t *v = node(c, is_obj ? VALUES_JSON_OBJECT : VALUES_JSON_ARRAY);
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        c->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0;
        skip_ws(c);
        if (is_obj) {
            if (c->failed || !read_name(c, &key, &key_len))
                goto bad;
            skip_ws(c);
            if (c->p < c->end && *c->p == ':') {
                c->p++;
            } else if (c->p < c->end && *c->p == '=' && !c->strict) {
                c->p++;
                if (c->p < c->end && *c->p == '>')
                    c->p++;
            } else {
                fail(c, "expected ':' after member name");
                goto bad;
            }
        }
        values_json_t *item = read_value(c);
        if (!item)
            goto bad;
        push(c, v, key, key_len, item);
        skip_ws(c);
        if (c->p >= c->end) {
            fail(c, "unterminated %s", is_obj ? "object" : "array");
            goto bad;
        }
        if (*c->p == close) {
            c->p++;
            break;
        }
        if (*c->p != ',' && (*c->p != ';' || c->strict)) {
            fail(c, "expected ',' or '%c'", close);
            goto bad;
        }
        c->p++;
    }
    c->depth--;
    if (is_obj && c->strict && has_repeated_name(c, v)) {
        fail(c, "duplicate member name");
        goto bad;
    }
    return v;
bad:
    return NULL; /* the partial tree stays in the arena until the caller resets it */
}

static values_json_t *read_value(cur_t *c)
{
    skip_ws(c);
    if (c->failed)
        return NULL;
    if (c->p >= c->end) {
        fail(c, "unexpected end of input");
        return NULL;
    }
    uint8_t ch = *c->p;
    if (ch == '{' || ch == '[')
        return read_container(c);
    if (ch == '"' || (ch == '\'' && !c->strict)) {
        char *text;
        size_t len;
        if (!read_string(c, &text, &len))
            return NULL;
        values_json_t *v = node(c, VALUES_JSON_STRING);
        v->text = text;
        v->len = len;
        return v;
    }
    return read_literal(c);
}

values_json_t *values_json_parse(arena_t *arena, const uint8_t *p, size_t len,
                                 values_syntax_t syntax, size_t max_depth, char *err,
                                 size_t err_cap)
{
    if (max_depth == 0 || max_depth > VALUES_JSON_DEPTH_LIMIT)
        max_depth = VALUES_JSON_DEPTH_LIMIT;
    cur_t c = {.arena = arena,
               .p = p,
               .end = p + len,
               .max_depth = max_depth,
               .strict = syntax == VALUES_STRICT,
               .err = err,
               .err_cap = err_cap};
    if (err && err_cap)
        err[0] = '\0';
    if (!p)
        c.p = c.end = (const uint8_t *)"";
    skip_ws(&c);
    if (!c.failed && c.p >= c.end) {
        fail(&c, "empty payload");
        return NULL;
    }
    values_json_t *v = read_value(&c);
    if (!v)
        return NULL;
    skip_ws(&c);
    if (c.failed || c.p != c.end) {
        fail(&c, "trailing data after JSON value");
        return NULL;
    }
    return v;
}

/* ---- writer ---- */

void values_json_write(values_buf_t *b, const values_json_t *v)
{
    switch (v->kind) {
    case VALUES_JSON_NULL:
        values_buf_puts(b, "null");
        break;
    case VALUES_JSON_BOOL:
        values_buf_puts(b, v->b ? "true" : "false");
        break;
    case VALUES_JSON_NUMBER:
        values_buf_put(b, v->text, v->len);
        break;
    case VALUES_JSON_STRING:
        values_buf_json_str(b, v->text, v->len);
        break;
    case VALUES_JSON_OBJECT:
    case VALUES_JSON_ARRAY: {
        bool obj = v->kind == VALUES_JSON_OBJECT;
        values_buf_put(b, obj ? "{" : "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                values_buf_put(b, ",", 1);
            if (obj) {
                values_buf_json_str(b, v->keys[i], v->key_lens[i]);
                values_buf_put(b, ":", 1);
            }
            values_json_write(b, v->items[i]);
        }
        values_buf_put(b, obj ? "}" : "]", 1);
        break;
    }
    }
}

char *values_json_compact(const values_json_t *v)
{
    values_buf_t b = {0};
    values_json_write(&b, v);
    return values_buf_take(&b);
}

char *values_json_compact_arena(arena_t *arena, const values_json_t *v)
{
    values_buf_t b = {0};
    values_json_write(&b, v);
    char *s = arena_strndup(arena, b.p, b.len);
    values_buf_fini(&b);
    return s;
}
