/* body.c — telemetry and attribute bodies to typed key/values, as ThingsBoard's JsonConverter
 * types them (spec §3.1, §3.2, §5).
 *
 * Typing table (per object member):
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
 * Memory: the parse tree, the item array and every key/string of the result live in the
 * caller's arena; items point into the tree's strings where they can. Nothing here calls
 * malloc for a small flat payload (issue #5); object/array values (STORE_JSON) and
 * type-cast plain-text numbers are written through a heap buffer and copied in.
 */
#include "values/body.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest plain-text rendering of a huge or tiny exponent number we agree to produce;
 * Java would expand 1e999999999 to a billion characters, we refuse instead. */
#define PLAIN_MAX 400

typedef struct ctx {
    arena_t *arena;
    const values_cfg_t *cfg;
    char *err;
    size_t err_cap;
} ctx_t;

static int bad(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(ctx_t *c, const char *fmt, ...)
{
    if (c->err && c->err_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->err_cap, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

/* Copies a heap string into the arena and frees it. */
static char *to_arena(ctx_t *c, char *heap)
{
    char *s = arena_strdup(c->arena, heap);
    free(heap);
    return s;
}

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

/* Long.parseLong: optional sign, decimal digits, int64 range. */
static bool parse_long(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (!*p)
        return false;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* A decimal number as BigDecimal sees it: sign, unscaled digits (no leading zeros, "0" for
 * zero) and scale, so value = digits * 10^-scale. */
typedef struct dec {
    bool neg;
    char digits[PLAIN_MAX + 1];
    size_t nd;
    long scale;
} dec_t;

static bool dec_parse(const char *s, dec_t *d)
{
    memset(d, 0, sizeof *d);
    const char *p = s;
    if (*p == '-' || *p == '+')
        d->neg = *p++ == '-';
    long frac = 0;
    bool seen_dot = false, any = false;
    for (; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            if (seen_dot)
                return false;
            seen_dot = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            return false;
        any = true;
        if (seen_dot)
            frac++;
        if (d->nd == 0 && *p == '0')
            continue;
        if (d->nd >= PLAIN_MAX)
            return false;
        d->digits[d->nd++] = *p;
    }
    if (!any)
        return false;
    long exp = 0;
    if (*p) {
        p++;
        bool eneg = false;
        if (*p == '-' || *p == '+')
            eneg = *p++ == '-';
        if (!*p)
            return false;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return false;
            if (exp > 100000000)
                return false; /* Java's int exponent would overflow too */
            exp = exp * 10 + (*p - '0');
        }
        if (eneg)
            exp = -exp;
    }
    if (d->nd == 0)
        d->digits[d->nd++] = '0';
    d->scale = frac - exp;
    return true;
}

/* BigDecimal.toPlainString into a new string, or NULL if longer than PLAIN_MAX. */
static char *dec_plain(const dec_t *d)
{
    bool zero = d->nd == 1 && d->digits[0] == '0';
    long nd = (long)d->nd;
    long total = d->scale <= 0 ? nd - d->scale : (nd > d->scale ? nd + 1 : d->scale + 2);
    if (total > PLAIN_MAX)
        return NULL;
    values_buf_t b = {0};
    if (d->neg && !zero)
        values_buf_put(&b, "-", 1);
    if (d->scale <= 0) {
        values_buf_put(&b, d->digits, d->nd);
        for (long i = 0; i < -d->scale; i++)
            values_buf_put(&b, "0", 1);
    } else if (nd > d->scale) {
        values_buf_put(&b, d->digits, (size_t)(nd - d->scale));
        values_buf_put(&b, ".", 1);
        values_buf_put(&b, d->digits + nd - d->scale, (size_t)d->scale);
    } else {
        values_buf_put(&b, "0.", 2);
        for (long i = 0; i < d->scale - nd; i++)
            values_buf_put(&b, "0", 1);
        values_buf_put(&b, d->digits, d->nd);
    }
    return values_buf_take(&b);
}

/* Numeric typing of a literal (JSON number, or a string that isParsable). Returns 0 and fills
 * kv, or -EBADMSG when ThingsBoard would reject it. */
static int type_number(ctx_t *c, const char *key, char *text, store_kv_t *kv)
{
    if (strpbrk(text, "eE")) {
        dec_t d;
        if (!dec_parse(text, &d))
            return bad(c, "number out of range for key [%s]", key);
        dec_t st = d; /* stripTrailingZeros */
        while (st.nd > 1 && st.digits[st.nd - 1] == '0') {
            st.nd--;
            st.scale--;
        }
        bool zero = st.nd == 1 && st.digits[0] == '0';
        if (zero || st.scale <= 0) {
            /* Integral: exact value digits * 10^-scale must fit int64. */
            char tmp[PLAIN_MAX + 2];
            long zeros = zero ? 0 : -st.scale;
            if (zero || (long)st.nd + zeros <= 19) {
                size_t k = 0;
                if (st.neg && !zero)
                    tmp[k++] = '-';
                memcpy(tmp + k, st.digits, zero ? 1 : st.nd);
                k += zero ? 1 : st.nd;
                for (long i = 0; i < zeros; i++)
                    tmp[k++] = '0';
                tmp[k] = '\0';
                if (parse_long(tmp, &kv->l)) {
                    kv->type = STORE_LONG;
                    return 0;
                }
            }
        } else if (d.scale <= 16) {
            kv->type = STORE_DOUBLE;
            kv->d = strtod(text, NULL);
            return 0;
        }
        char *plain = c->cfg->type_cast ? dec_plain(&d) : NULL;
        if (!plain)
            return bad(c, "number not representable for key [%s]", key);
        kv->type = STORE_STRING;
        kv->s = to_arena(c, plain);
        return 0;
    }
    if (strchr(text, '.')) {
        /* Java would keep Infinity; we refuse it: JSON has no spelling for it and the REST
         * side could not render it. */
        kv->type = STORE_DOUBLE;
        kv->d = strtod(text, NULL);
        return isfinite(kv->d) ? 0 : bad(c, "number out of range for key [%s]", key);
    }
    if (parse_long(text, &kv->l)) {
        kv->type = STORE_LONG;
        return 0;
    }
    if (!c->cfg->type_cast)
        return bad(c, "big integer values are not supported (key [%s])", key);
    kv->type = STORE_STRING;
    kv->s = text; /* the tree's copy, in the arena */
    return 0;
}

/* commons-lang3 NumberUtils.isParsable: [-]digits with at most one '.', not ending in '.'. */
static bool is_parsable(const char *s, size_t n)
{
    if (n == 0 || s[n - 1] == '.')
        return false;
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == n)
        return false;
    int dots = 0;
    for (; i < n; i++) {
        if (s[i] == '.') {
            if (++dots > 1)
                return false;
        } else if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

/* String length as Java counts it (UTF-16 code units) of valid UTF-8. */
static size_t utf16_units(const char *s, size_t n)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch & 0xC0) != 0x80)
            u += ch >= 0xF0 ? 2 : 1;
    }
    return u;
}

/* Adds key=v to out (null skipped). */
static int add_typed(ctx_t *c, values_kvs_t *out, char *key, size_t key_len,
                     const values_json_t *v, int64_t ts)
{
    if (v->kind == VALUES_JSON_NULL)
        return 0;
    if (memchr(key, '\0', key_len))
        return bad(c, "NUL character in key");
    store_kv_t kv = {0};
    switch (v->kind) {
    case VALUES_JSON_BOOL:
        kv.type = STORE_BOOL;
        kv.b = v->b;
        break;
    case VALUES_JSON_NUMBER:
        if (type_number(c, key, v->text, &kv) < 0)
            return -EBADMSG;
        break;
    case VALUES_JSON_STRING:
        if (memchr(v->text, '\0', v->len))
            return bad(c, "NUL character in value of key [%s]", key);
        if (c->cfg->type_cast && is_parsable(v->text, v->len)) {
            /* ThingsBoard falls back to STRING when the numeric conversion throws. */
            if (type_number(c, key, v->text, &kv) == 0)
                break;
            memset(&kv, 0, sizeof kv); /* a failed attempt's text stays in the arena */
        }
        if (c->cfg->max_string_len && utf16_units(v->text, v->len) > c->cfg->max_string_len)
            return bad(c, "string value length for key [%s] is greater than maximum allowed [%zu]",
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

/* Marks members whose key appears again later in the object (Gson keeps the last value).
 * Returns a flag array (in the arena) or NULL when the object has no members. */
static bool *shadowed_members(ctx_t *c, const values_json_t *obj)
{
    if (obj->n == 0)
        return NULL;
    bool *shadow = arena_calloc(c->arena, obj->n, sizeof *shadow);
    size_t cap = 16;
    while (cap < obj->n * 2)
        cap *= 2;
    size_t *slots = arena_calloc(c->arena, cap, sizeof *slots); /* member index + 1; 0 = empty */
    for (size_t i = obj->n; i-- > 0;) {
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (size_t k = 0; k < obj->key_lens[i]; k++)
            h = (h ^ (unsigned char)obj->keys[i][k]) * 1099511628211ULL;
        for (size_t j = h & (cap - 1);; j = (j + 1) & (cap - 1)) {
            if (slots[j] == 0) {
                slots[j] = i + 1;
                break;
            }
            size_t o = slots[j] - 1;
            if (obj->key_lens[o] == obj->key_lens[i] &&
                memcmp(obj->keys[o], obj->keys[i], obj->key_lens[i]) == 0) {
                shadow[i] = true;
                break;
            }
        }
    }
    return shadow;
}

static int add_object(ctx_t *c, values_kvs_t *out, const values_json_t *obj, int64_t ts)
{
    bool *shadow = shadowed_members(c, obj);
    int rc = 0;
    for (size_t i = 0; i < obj->n && rc == 0; i++)
        if (!shadow[i])
            rc = add_typed(c, out, obj->keys[i], obj->key_lens[i], obj->items[i], ts);
    return rc;
}

int values_json_as_long(const values_json_t *v, int64_t *out)
{
    if (v->kind == VALUES_JSON_NUMBER) {
        if (parse_long(v->text, out))
            return 0;
        double d = strtod(v->text, NULL);
        if (d > -9.2e18 && d < 9.2e18) {
            *out = (int64_t)d;
            return 0;
        }
    } else if (v->kind == VALUES_JSON_STRING && !memchr(v->text, '\0', v->len)) {
        if (parse_long(v->text, out))
            return 0;
    }
    return -EBADMSG;
}

static int add_telemetry_object(ctx_t *c, values_kvs_t *out, const values_json_t *obj)
{
    const values_json_t *ts = values_json_get(obj, "ts"), *values = values_json_get(obj, "values");
    if (!ts || !values)
        return add_object(c, out, obj, VALUES_TS_NONE);
    int64_t t;
    if (values_json_as_long(ts, &t) < 0)
        return bad(c, "'ts' is not a valid long");
    if (values->kind != VALUES_JSON_OBJECT)
        return bad(c, "'values' is not a JSON object");
    return add_object(c, out, values, t);
}

values_json_t *values_parse(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p,
                            size_t len, char *err, size_t err_cap)
{
    if (cfg->max_bytes && len > cfg->max_bytes) {
        ctx_t c = {arena, cfg, err, err_cap};
        bad(&c, "payload of %zu bytes exceeds %zu", len, cfg->max_bytes);
        return NULL;
    }
    return values_json_parse(arena, p, len, cfg->max_depth, err, err_cap);
}

int values_telemetry(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                     values_kvs_t *out, char *err, size_t err_cap)
{
    ctx_t c = {arena, cfg, err, err_cap};
    values_json_t *root = values_parse(arena, cfg, p, len, err, err_cap);
    if (!root)
        return -EBADMSG;
    int rc = 0;
    if (root->kind == VALUES_JSON_OBJECT) {
        rc = add_telemetry_object(&c, out, root);
    } else if (root->kind == VALUES_JSON_ARRAY) {
        for (size_t i = 0; i < root->n && rc == 0; i++) {
            if (root->items[i]->kind != VALUES_JSON_OBJECT)
                rc = bad(&c, "telemetry array element %zu is not a JSON object", i);
            else
                rc = add_telemetry_object(&c, out, root->items[i]);
        }
    } else {
        rc = bad(&c, "telemetry must be a JSON object or array");
    }
    if (rc < 0)
        *out = (values_kvs_t){0};
    return rc;
}

int values_attributes(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                      values_kvs_t *out, char *err, size_t err_cap)
{
    ctx_t c = {arena, cfg, err, err_cap};
    values_json_t *root = values_parse(arena, cfg, p, len, err, err_cap);
    if (!root)
        return -EBADMSG;
    int rc = root->kind == VALUES_JSON_OBJECT ? add_object(&c, out, root, VALUES_TS_NONE)
                                           : bad(&c, "attributes must be a JSON object");
    if (rc < 0)
        *out = (values_kvs_t){0};
    return rc;
}
