/* buf.c — growing text buffer, JSON string escaping, the number formatter. See buf.h.
 *
 * Why one number formatter: the paths used to print the same stored double differently (the
 * web UI's events kept 17 significant digits and showed 0.1 as 0.10000000000000001, REST's
 * dump kept 15 and answered 0.30000000000000004 as 0.3, CoAP wrote the shortest exact form),
 * so a device and an operator read two values for one point. The rule here is the
 * one a Java client expects from ThingsBoard: the shortest text that reads back exactly,
 * and an integral double keeps its ".0" so it stays a double on the wire.
 */
#include "values/buf.h"

#include "core/xmalloc.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(values_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void values_buf_put(values_buf_t *b, const char *s, size_t n)
{
    reserve(b, n);
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void values_buf_puts(values_buf_t *b, const char *s)
{
    values_buf_put(b, s, strlen(s));
}

void values_buf_printf(values_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void values_buf_json_str(values_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    values_buf_put(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed in one put */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (ch) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        default:
            if (ch < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = hex[ch >> 4];
                u[5] = hex[ch & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        if (run)
            values_buf_put(b, s + i - run, run);
        run = 0;
        values_buf_puts(b, esc);
    }
    if (run)
        values_buf_put(b, s + n - run, run);
    values_buf_put(b, "\"", 1);
}

size_t values_double_format(char out[static VALUES_DOUBLE_LEN], double d)
{
    if (!isfinite(d)) {
        memcpy(out, "null", 5);
        return 4;
    }
    /* For a normal double, %.15g is already the shortest form when one of at most 15 digits
     * (DBL_DIG) exists, which is what people and sensors write; 16 or 17 digits only for the
     * rest. A subnormal carries fewer digits (5e-324), so it is searched from 1. */
    int n = 0;
    for (int prec = fabs(d) < DBL_MIN && d != 0 ? 1 : 15; prec <= 17; prec++) {
        n = snprintf(out, VALUES_DOUBLE_LEN, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    if (!strpbrk(out, ".eE")) { /* integral: keep it a double on the wire, like Java's 42.0 */
        memcpy(out + n, ".0", 3);
        n += 2;
    }
    return (size_t)n;
}

void values_buf_double(values_buf_t *b, double d)
{
    char tmp[VALUES_DOUBLE_LEN];
    values_buf_put(b, tmp, values_double_format(tmp, d));
}

char *values_buf_take(values_buf_t *b)
{
    char *s = b->p ? b->p : xstrdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return s;
}

void values_buf_fini(values_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
