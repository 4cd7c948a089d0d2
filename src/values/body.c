/* body.c — telemetry and attribute bodies to typed key/values, as ThingsBoard types them
 * (spec §3.1, §3.2, §5; REST §8.5).
 *
 * Typing table (per object member), device API (Gson JsonConverter):
 *   true/false                         -> BOOL
 *   number without '.', 'e', 'E'       -> LONG; beyond int64 -> STRING (type cast) or error
 *   number with 'e'/'E'                -> exact decimal value: integral -> LONG (1e3 = 1000,
 *                                         beyond int64 -> plain-text STRING or error);
 *                                         fractional -> DOUBLE if its scale <= 16, else STRING
 *                                         or error
 *   number with '.' (no exponent)      -> DOUBLE (42.0 stays DOUBLE)
 *   string of [-]digits[.digits]       -> as the number above when type cast is on
 *   other string                       -> STRING (max_string_len in UTF-16 units, as Java)
 *   object / array                     -> JSON (compact text)
 *   null                               -> skipped
 * Keys and string values must not contain NUL: the store keeps C strings.
 *
 * REST bodies (cfg->strict) differ where ThingsBoard's REST controller differs, and nowhere
 * else: numbers are typed by their token (number.c), a blank key is refused, a null attribute
 * is refused, a repeated name never reaches us (the strict reader refused it), and the
 * {"ts","values"} form needs exactly those two members with an integer ts >= 0.
 *
 * Memory: the parse tree, the item array and every key/string of the result live in the
 * caller's arena; items point into the tree's strings where they can. Nothing here calls
 * malloc for a small flat payload (issue #5); object/array values (STORE_JSON) and
 * type-cast plain-text numbers are written through a heap buffer and copied in.
 */
#include "values/body.h"

#include "values/values_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef values__ctx_t ctx_t;

/* key points into the parse tree, which lives in the same arena as the list. */
static store_kv_t *kvs_add(ctx_t *c, values_kvs_t *l, char *key, int64_t ts)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        l->items = arena_grow(c->arena, l->items, l->n * sizeof *l->items, cap * sizeof *l->items);
        l->cap = cap;
    }
    store_kv_t *kv = &l->items[l->n++];
    memset(kv, 0, sizeof *kv);
    kv->key = key;
    kv->ts = ts;
    return kv;
}

/* Adds key=v to out (null skipped). */
static int add_typed(ctx_t *c, values_kvs_t *out, char *key, size_t key_len, const values_json_t *v,
                     int64_t ts)
{
    /* REST rules broken by well-formed JSON: -EINVAL and ThingsBoard's own message, which
     * REST clients match on (body.h). */
    if (c->cfg->strict && key_len == 0) {
        values__bad(c, "Key cannot be blank");
        return -EINVAL;
    }
    if (v->kind == VALUES_JSON_NULL)
        return 0;
    if (memchr(key, '\0', key_len))
        return values__bad(c, "NUL character in key");
    store_kv_t kv = {0};
    switch (v->kind) {
    case VALUES_JSON_BOOL:
        kv.type = STORE_BOOL;
        kv.b = v->b;
        break;
    case VALUES_JSON_NUMBER:
        if (values__type_number(c, key, v->text, &kv) < 0)
            return -EBADMSG;
        break;
    case VALUES_JSON_STRING:
        if (memchr(v->text, '\0', v->len))
            return values__bad(c, "NUL character in value of key [%s]", key);
        if (c->cfg->type_cast && values__is_parsable(v->text, v->len)) {
            /* ThingsBoard falls back to STRING when the numeric conversion throws. */
            if (values__type_number(c, key, v->text, &kv) == 0)
                break;
            memset(&kv, 0, sizeof kv); /* a failed attempt's text stays in the arena */
        }
        if (c->cfg->max_string_len && values__utf16_units(v->text, v->len) > c->cfg->max_string_len)
            return values__bad(c,
                               "string value length for key [%s] is greater than maximum "
                               "allowed [%zu]",
                               key, c->cfg->max_string_len);
        kv.type = STORE_STRING;
        kv.s = v->text;
        break;
    case VALUES_JSON_OBJECT:
    case VALUES_JSON_ARRAY:
        kv.type = STORE_JSON;
        kv.s = values_json_compact_arena(c->arena, v);
        break;
    case VALUES_JSON_NULL:
        break;
    }
    store_kv_t *slot = kvs_add(c, out, key, ts);
    slot->type = kv.type;
    slot->b = kv.b;
    slot->l = kv.l;
    slot->d = kv.d;
    slot->s = kv.s;
    return 0;
}

/* Flags the members whose name occurs again later in the object: Gson keeps the last value.
 * NULL when no name repeats (always so for the strict reader, which refuses repeats). */
static bool *shadowed_members(ctx_t *c, const values_json_t *obj)
{
    if (obj->n < 2 || c->cfg->strict)
        return NULL;
    size_t *first = arena_alloc(c->arena, obj->n * sizeof *first);
    size_t *slots = arena_calloc(c->arena, values__key_slots(obj->n), sizeof *slots);
    values__key_first(obj->keys, obj->key_lens, obj->n, first, slots);
    size_t *last = slots; /* reused: last[f] = last member named as member f */
    for (size_t i = 0; i < obj->n; i++)
        last[first[i]] = i;
    bool *shadow = NULL;
    for (size_t i = 0; i < obj->n; i++) {
        if (last[first[i]] != i) {
            if (!shadow)
                shadow = arena_calloc(c->arena, obj->n, sizeof *shadow);
            shadow[i] = true;
        }
    }
    return shadow;
}

static int add_object(ctx_t *c, values_kvs_t *out, const values_json_t *obj, int64_t ts,
                      bool null_refused)
{
    /* REST attributes: ThingsBoard checks every value for null before it types any. */
    for (size_t i = 0; null_refused && i < obj->n; i++) {
        if (obj->items[i]->kind == VALUES_JSON_NULL) {
            values__bad(c, "Attribute value for key '%.64s' must not be null", obj->keys[i]);
            return -EINVAL; /* a REST rule, as above */
        }
    }
    bool *shadow = shadowed_members(c, obj);
    int rc = 0;
    for (size_t i = 0; i < obj->n && rc == 0; i++)
        if (!shadow || !shadow[i])
            rc = add_typed(c, out, obj->keys[i], obj->key_lens[i], obj->items[i], ts);
    return rc;
}

int values_json_as_long(const values_json_t *v, int64_t *out)
{
    if (v->kind == VALUES_JSON_NUMBER) {
        if (values__parse_long(v->text, out))
            return 0;
        double d = strtod(v->text, NULL);
        if (d > -9.2e18 && d < 9.2e18) {
            *out = (int64_t)d;
            return 0;
        }
    } else if (v->kind == VALUES_JSON_STRING && !memchr(v->text, '\0', v->len)) {
        if (values__parse_long(v->text, out))
            return 0;
    }
    return -EBADMSG;
}

/* The REST form's ts: an integer token (jansson's json_integer), not negative. */
static int rest_ts(const values_json_t *v, int64_t *out)
{
    if (v->kind != VALUES_JSON_NUMBER || strpbrk(v->text, ".eE") ||
        !values__parse_long(v->text, out) || *out < 0)
        return -EBADMSG;
    return 0;
}

static int add_telemetry_object(ctx_t *c, values_kvs_t *out, const values_json_t *obj)
{
    const values_json_t *ts = values_json_get(obj, "ts"), *values = values_json_get(obj, "values");
    /* Gson: both present makes the {ts,values} form; if only "ts" is there it is a key.
     * REST: the object must hold exactly those two members, else all of it is values. */
    if (!ts || !values || (c->cfg->strict && obj->n != 2))
        return add_object(c, out, obj, VALUES_TS_NONE, false);
    int64_t t;
    if ((c->cfg->strict ? rest_ts(ts, &t) : values_json_as_long(ts, &t)) < 0)
        return values__bad(c, "'ts' is not a valid long");
    if (values->kind != VALUES_JSON_OBJECT)
        return values__bad(c, "'values' is not a JSON object");
    return add_object(c, out, values, t, false);
}

values_json_t *values_parse(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                            char *err, size_t err_cap)
{
    if (cfg->max_bytes && len > cfg->max_bytes) {
        ctx_t c = {arena, cfg, err, err_cap};
        values__bad(&c, "payload of %zu bytes exceeds %zu", len, cfg->max_bytes);
        return NULL;
    }
    return values_json_parse(arena, p, len, cfg->strict ? VALUES_STRICT : VALUES_LENIENT,
                             cfg->max_depth, err, err_cap);
}

/* One body: parse, add every item, leave out empty on an error. */
static int read_body(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                     values_kvs_t *out, char *err, size_t err_cap, bool attributes)
{
    ctx_t c = {arena, cfg, err, err_cap};
    values_json_t *root = values_parse(arena, cfg, p, len, err, err_cap);
    if (!root)
        return -EBADMSG;
    int rc = 0;
    if (attributes) {
        rc = root->kind == VALUES_JSON_OBJECT
                 ? add_object(&c, out, root, VALUES_TS_NONE, cfg->strict)
                 : values__bad(&c, "attributes must be a JSON object");
    } else if (root->kind == VALUES_JSON_OBJECT) {
        rc = add_telemetry_object(&c, out, root);
    } else if (root->kind == VALUES_JSON_ARRAY) {
        for (size_t i = 0; i < root->n && rc == 0; i++) {
            if (root->items[i]->kind != VALUES_JSON_OBJECT)
                rc = values__bad(&c, "telemetry array element %zu is not a JSON object", i);
            else
                rc = add_telemetry_object(&c, out, root->items[i]);
        }
    } else {
        rc = values__bad(&c, "telemetry must be a JSON object or array");
    }
    if (rc < 0)
        *out = (values_kvs_t){0};
    return rc;
}

int values_telemetry(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                     values_kvs_t *out, char *err, size_t err_cap)
{
    return read_body(arena, cfg, p, len, out, err, err_cap, false);
}

int values_attributes(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                      values_kvs_t *out, char *err, size_t err_cap)
{
    return read_body(arena, cfg, p, len, out, err, err_cap, true);
}
