/* render.c — stored value -> JSON text, and the three shapes values travel in. See render.h.
 *
 * This replaces three writers that disagreed: the CoAP answer embedded a JSON value's text
 * as stored and printed doubles shortest-exact; REST re-parsed JSON values with jansson and
 * printed every double with 15 digits (0.30000000000000004 came back as 0.3); the web UI's
 * events printed doubles with 17 (0.1 came back as 0.10000000000000001).
 *
 * A STORE_JSON text is read back with the lenient reader and written compact rather than
 * copied: the parsers store compact text, which that round trip reproduces byte for byte
 * (json.h), so the answer is what was stored, and a text that no longer parses (written by
 * an older build, or by hand) becomes a JSON string instead of breaking the whole answer.
 * The round trip costs one parse per JSON value read, into a scratch arena made per call.
 */
#include "values/render.h"

#include "values/json.h"
#include "values/values_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Per-call scratch memory, each arena made on first use (most calls hold no JSON value and
 * one key). Two arenas because their lifetimes differ: the key groups live for the whole
 * call, a JSON value's parse tree only until it is written (reset after each). */
typedef struct scratch {
    arena_t groups, json;
    bool groups_live, json_live;
} scratch_t;

static arena_t *scratch_get(arena_t *a, bool *live)
{
    if (!*live) {
        arena_init(a, 0);
        *live = true;
    }
    return a;
}

static void scratch_fini(scratch_t *sc)
{
    if (sc->groups_live)
        arena_fini(&sc->groups);
    if (sc->json_live)
        arena_fini(&sc->json);
}

static bool key_ok(const char *key)
{
    return key && values__utf8_valid(key, strlen(key));
}

/* A JSON string of s, or "" when s is not UTF-8 (it could not be read back as JSON). */
static void put_text(values_buf_t *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n && values__utf8_valid(s, n))
        values_buf_json_str(b, s, n);
    else
        values_buf_put(b, "\"\"", 2);
}

static void put_json(values_buf_t *b, const char *s, scratch_t *sc)
{
    arena_t *a = scratch_get(&sc->json, &sc->json_live);
    size_t n = s ? strlen(s) : 0;
    values_json_t *v = values_json_parse(a, (const uint8_t *)s, n, VALUES_LENIENT, 0, NULL, 0);
    if (v && (v->kind == VALUES_JSON_OBJECT || v->kind == VALUES_JSON_ARRAY))
        values_json_write(b, v);
    else
        put_text(b, s);
    arena_reset(a);
}

static void put_value(values_buf_t *b, const store_kv_t *kv, values_style_t style, scratch_t *sc)
{
    char num[VALUES_DOUBLE_LEN]; /* also holds any int64 */
    size_t len;
    switch (kv->type) {
    case STORE_BOOL:
        values_buf_puts(b, style == VALUES_TEXT ? (kv->b ? "\"true\"" : "\"false\"")
                                                : (kv->b ? "true" : "false"));
        return;
    case STORE_LONG:
        len = (size_t)snprintf(num, sizeof num, "%" PRId64, kv->l);
        break;
    case STORE_DOUBLE:
        len = values_double_format(num, kv->d);
        break;
    case STORE_JSON:
        if (style == VALUES_TYPED)
            put_json(b, kv->s, sc);
        else
            put_text(b, kv->s);
        return;
    case STORE_STRING:
    default:
        put_text(b, kv->s);
        return;
    }
    if (style == VALUES_TEXT)
        values_buf_json_str(b, num, len);
    else
        values_buf_put(b, num, len);
}

void values_kv_write(values_buf_t *b, const store_kv_t *kv, values_style_t style)
{
    scratch_t sc = {0};
    put_value(b, kv, style, &sc);
    scratch_fini(&sc);
}

/* Points grouped by key: first[i] is the index of the first point with kvs[i]'s key (the
 * group's head), next[i] the following point of that key (n = none), and tail[h] the last
 * point of the group headed by h. Linear in n (values__key_first). */
typedef struct groups {
    size_t *first, *next, *tail;
} groups_t;

static groups_t group_by_key(arena_t *a, const store_kv_t *kvs, size_t n)
{
    char **keys = arena_alloc(a, n * sizeof *keys);
    size_t *lens = arena_alloc(a, n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        keys[i] = kvs[i].key ? kvs[i].key : (char *)"";
        lens[i] = strlen(keys[i]);
    }
    groups_t g = {.first = arena_alloc(a, n * sizeof *g.first),
                  .next = arena_alloc(a, n * sizeof *g.next),
                  .tail = arena_alloc(a, n * sizeof *g.tail)};
    size_t *slots = arena_calloc(a, values__key_slots(n), sizeof *slots);
    values__key_first(keys, lens, n, g.first, slots);
    for (size_t i = 0; i < n; i++) {
        g.next[i] = n;
        if (g.first[i] != i)
            g.next[g.tail[g.first[i]]] = i;
        g.tail[g.first[i]] = i;
    }
    return g;
}

/* {"key":..,...} with one member per key: its last value (object) or all its points in
 * order (series). Returns the number of members written. */
static size_t write_by_key(values_buf_t *b, const store_kv_t *kvs, size_t n, values_style_t style,
                           bool series)
{
    size_t written = 0;
    values_buf_put(b, "{", 1);
    scratch_t sc = {0};
    groups_t g = n ? group_by_key(scratch_get(&sc.groups, &sc.groups_live), kvs, n) : (groups_t){0};
    for (size_t i = 0; i < n; i++) {
        if (g.first[i] != i || !key_ok(kvs[i].key))
            continue;
        if (written++)
            values_buf_put(b, ",", 1);
        values_buf_json_str(b, kvs[i].key, strlen(kvs[i].key));
        values_buf_put(b, ":", 1);
        if (!series) {
            put_value(b, &kvs[g.tail[i]], style, &sc);
            continue;
        }
        values_buf_put(b, "[", 1);
        for (size_t j = i; j < n; j = g.next[j]) {
            values_buf_printf(b, "%s{\"ts\":%" PRId64 ",\"value\":", j == i ? "" : ",", kvs[j].ts);
            put_value(b, &kvs[j], style, &sc);
            values_buf_put(b, "}", 1);
        }
        values_buf_put(b, "]", 1);
    }
    scratch_fini(&sc);
    values_buf_put(b, "}", 1);
    return written;
}

size_t values_kvs_write_object(values_buf_t *b, const store_kv_t *kvs, size_t n,
                               values_style_t style)
{
    return write_by_key(b, kvs, n, style, false);
}

size_t values_kvs_write_series(values_buf_t *b, const store_kv_t *kvs, size_t n,
                               values_style_t style)
{
    return write_by_key(b, kvs, n, style, true);
}

size_t values_kvs_write_attributes(values_buf_t *b, const store_kv_t *kvs, size_t n)
{
    scratch_t sc = {0};
    size_t written = 0;
    values_buf_put(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (!key_ok(kvs[i].key))
            continue;
        values_buf_printf(b, "%s{\"lastUpdateTs\":%" PRId64 ",\"key\":", written++ ? "," : "",
                          kvs[i].ts);
        values_buf_json_str(b, kvs[i].key, strlen(kvs[i].key));
        values_buf_puts(b, ",\"value\":");
        put_value(b, &kvs[i], VALUES_TYPED, &sc);
        values_buf_put(b, "}", 1);
    }
    values_buf_put(b, "]", 1);
    scratch_fini(&sc);
    return written;
}

size_t values_kvs_write_keys(values_buf_t *b, const store_kv_t *kvs, size_t n)
{
    size_t written = 0;
    values_buf_put(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (!key_ok(kvs[i].key))
            continue;
        if (written++)
            values_buf_put(b, ",", 1);
        values_buf_json_str(b, kvs[i].key, strlen(kvs[i].key));
    }
    values_buf_put(b, "]", 1);
    return written;
}
