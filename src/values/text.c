/* text.c — the lexical rules the values unit agrees on: UTF-8, RFC 8259 numbers, Java's
 * long range and string length. See values_int.h.
 *
 * One copy each because the reader, the typing and the writer must agree to the byte: a
 * number the reader accepts is one the typing can read, and text the writer checks as UTF-8
 * is what the reader would have let in.
 */
#include "values/values_int.h"

#include <stdint.h>
#include <string.h>

size_t values__utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c0 = p[0];
    if (c0 < 0x80)
        return 1;
    size_t len;
    uint32_t min, cp;
    if ((c0 & 0xE0) == 0xC0) {
        len = 2, min = 0x80, cp = c0 & 0x1F;
    } else if ((c0 & 0xF0) == 0xE0) {
        len = 3, min = 0x800, cp = c0 & 0x0F;
    } else if ((c0 & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, cp = c0 & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

bool values__utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = values__utf8_len((const uint8_t *)s + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

size_t values__utf16_units(const char *s, size_t n)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch & 0xC0) != 0x80)
            u += ch >= 0xF0 ? 2 : 1;
    }
    return u;
}

/* Index after the run of decimal digits that starts at s[i]. */
static size_t digits(const char *s, size_t i, size_t n)
{
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

bool values__is_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || s[i] < '0' || s[i] > '9')
        return false;
    i = s[i] == '0' ? i + 1 : digits(s, i, n); /* no leading zero */
    if (i < n && s[i] == '.') {
        size_t d = i + 1;
        if ((i = digits(s, d, n)) == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t d = i + 1 + (i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-'));
        if ((i = digits(s, d, n)) == d)
            return false;
    }
    return i == n;
}

bool values__parse_long(const char *s, int64_t *out)
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
