/* number.c — how a number literal is typed (spec §5): LONG, DOUBLE, or STRING.
 *
 * Two readers, one function, as ThingsBoard has them. The device API (Gson JsonConverter)
 * looks at the exact decimal value, as BigDecimal does: 1e3 is the LONG 1000, 1.5e-3 a
 * DOUBLE, a scale above 16 or an integer beyond int64 is plain text (type cast on) or an
 * error. The REST API (Jackson, in TelemetryController) types by the token: an integer
 * literal is a LONG, any other number a DOUBLE (1e3 is 1000.0); the strict reader has
 * already refused what does not fit (json.c).
 *
 * Memory: text of a STRING result is the literal itself (arena) or a plain-text rendering
 * copied into the arena; nothing is kept.
 */
#include "values/values_int.h"

#include "values/buf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest plain-text rendering of a huge or tiny exponent number we agree to produce;
 * Java would expand 1e999999999 to a billion characters, we refuse instead. */
#define PLAIN_MAX 400

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

/* Defined here, the lowest of the typing files, so body.c above can use it too. */
int values__bad(values__ctx_t *c, const char *fmt, ...)
{
    if (c->err && c->err_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->err_cap, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

/* Gson JsonConverter: the exact decimal value decides (see the file comment). */
static int device_number(values__ctx_t *c, const char *key, char *text, store_kv_t *kv)
{
    if (strpbrk(text, "eE")) {
        dec_t d;
        if (!dec_parse(text, &d))
            return values__bad(c, "number out of range for key [%s]", key);
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
                if (values__parse_long(tmp, &kv->l)) {
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
            return values__bad(c, "number not representable for key [%s]", key);
        kv->type = STORE_STRING;
        kv->s = arena_strdup(c->arena, plain);
        free(plain);
        return 0;
    }
    if (strchr(text, '.')) {
        /* Java would keep Infinity; we refuse it: JSON has no spelling for it and the REST
         * side could not render it. */
        kv->type = STORE_DOUBLE;
        kv->d = strtod(text, NULL);
        return isfinite(kv->d) ? 0 : values__bad(c, "number out of range for key [%s]", key);
    }
    if (values__parse_long(text, &kv->l)) {
        kv->type = STORE_LONG;
        return 0;
    }
    if (!c->cfg->type_cast)
        return values__bad(c, "big integer values are not supported (key [%s])", key);
    kv->type = STORE_STRING;
    kv->s = text; /* the tree's copy, in the arena */
    return 0;
}

bool values__is_parsable(const char *s, size_t n)
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

/* Jackson, as ThingsBoard's REST controller reads a body: the token decides. */
static int rest_number(values__ctx_t *c, const char *key, const char *text, store_kv_t *kv)
{
    if (!strpbrk(text, ".eE")) {
        if (!values__parse_long(text, &kv->l))
            return values__bad(c, "big integer values are not supported (key [%s])", key);
        kv->type = STORE_LONG;
        return 0;
    }
    kv->type = STORE_DOUBLE;
    kv->d = strtod(text, NULL);
    return isfinite(kv->d) ? 0 : values__bad(c, "number out of range for key [%s]", key);
}

int values__type_number(values__ctx_t *c, const char *key, char *text, store_kv_t *kv)
{
    return c->cfg->strict ? rest_number(c, key, text, kv) : device_number(c, key, text, kv);
}
