/* request.c — what a handler reads of its request: query parameters and headers, through
 * libmicrohttpd's connection. The bottom of the handlers: every rest_*.c file may use it, it
 * uses none of them. */
#include "http/http_int.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *http__query(const http_req_t *r, const char *key)
{
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key) : NULL;
}

const char *http__header(const http_req_t *r, const char *name)
{
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) : NULL;
}

typedef struct each_ctx {
    const char *key;
    void (*fn)(void *arg, const char *value);
    void *arg;
} each_ctx_t;

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    each_ctx_t *e = cls;
    if (key && value && strcmp(key, e->key) == 0)
        e->fn(e->arg, value);
    return MHD_YES;
}

void http__query_each(const http_req_t *r, const char *key,
                      void (*fn)(void *arg, const char *value), void *arg)
{
    if (!r->conn)
        return;
    each_ctx_t e = {key, fn, arg};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, each_arg, &e);
}

/* ---- ThingsBoard's parameter binding ----
 *
 * ThingsBoard's controllers take their query parameters through Spring: numbers are parsed
 * after trimming whitespace (NumberUtils), booleans by StringToBooleanConverter (true/on/yes/1,
 * false/off/no/0, any case), and an empty value counts as absent (then the declared default
 * applies, or a required parameter is missing). The helpers below bind the same way and answer
 * with Spring's and ThingsBoard's wording, so clients that match on it see the same text.
 * Not copied: Spring also removes spaces inside a number and reads 0x1F and #1F as hex; nobody
 * sends a page size that way, and refusing keeps a number one thing. */

int http__parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s)
        return -EINVAL;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    char tmp[32];
    if (n == 0 || n >= sizeof tmp)
        return -EINVAL;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!(tmp[0] == '-' || tmp[0] == '+' || (tmp[0] >= '0' && tmp[0] <= '9')))
        return -EINVAL; /* strtoll would skip more than Java accepts */
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

int http__parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "on", "yes", "1"};
    static const char *const no[] = {"false", "off", "no", "0"};
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static void missing(http_resp_t *rs, const char *name, const char *java_type)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "Required request parameter '%s' for method parameter type %s is not present", name,
             java_type);
    http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
}

/* Spring's MethodArgumentTypeMismatchException text; why says what the converter disliked. */
static void unconvertible(http_resp_t *rs, const char *java_type, const char *why)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "Failed to convert value of type 'java.lang.String' to required type '%s'; %s",
             java_type, why);
    http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
}

static void not_a_number(http_resp_t *rs, const char *java_type, const char *value)
{
    char why[96];
    snprintf(why, sizeof why, "For input string: \"%.64s\"", value);
    unconvertible(rs, java_type, why);
}

bool http__arg_bool(const http_req_t *r, http_resp_t *rs, const char *name, bool dflt, bool *out)
{
    const char *v = http__query(r, name);
    *out = dflt;
    if (!v || !*v)
        return true;
    if (http__parse_bool(v, out) == 0)
        return true;
    char why[96];
    snprintf(why, sizeof why, "Invalid boolean value '%.64s'", v);
    unconvertible(rs, "java.lang.Boolean", why);
    return false;
}

bool http__arg_long(const http_req_t *r, http_resp_t *rs, const char *name, bool required,
                    int64_t dflt, int64_t *out)
{
    const char *v = http__query(r, name);
    *out = dflt;
    if (!v || !*v) {
        if (required)
            missing(rs, name, "Long");
        return !required;
    }
    if (http__parse_i64(v, INT64_MIN, INT64_MAX, out) == 0)
        return true;
    not_a_number(rs, "java.lang.Long", v);
    return false;
}

bool http__arg_int(const http_req_t *r, http_resp_t *rs, const char *name, bool required,
                   int64_t dflt, int64_t *out)
{
    const char *v = http__query(r, name);
    *out = dflt;
    if (!v || !*v) {
        if (required)
            missing(rs, name, "int");
        return !required;
    }
    if (http__parse_i64(v, INT32_MIN, INT32_MAX, out) == 0)
        return true;
    not_a_number(rs, "int", v);
    return false;
}

bool http__page_args(const http_req_t *r, http_resp_t *rs, int64_t *page, int64_t *page_size)
{
    /* pageSize and page are Java ints in ThingsBoard, validated by Validator.validatePageLink.
     * Any pageSize up to 2^31-1 is taken ("all" to many clients); the answer is read in
     * chunks (http__page_answer), so its size never decides an allocation. page is required
     * in ThingsBoard; a missing page here is page 0. */
    if (!http__arg_int(r, rs, "pageSize", true, 0, page_size) ||
        !http__arg_int(r, rs, "page", false, 0, page))
        return false;
    char msg[128];
    if (*page_size < 1) {
        snprintf(msg, sizeof msg,
                 "Incorrect page link page size '%lld'. Page size must be greater than zero.",
                 (long long)*page_size);
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        return false;
    }
    if (*page < 0) {
        snprintf(msg, sizeof msg, "Incorrect page link page '%lld'. Page must be positive integer.",
                 (long long)*page);
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        return false;
    }
    return true;
}

bool http__sort_args(const http_req_t *r, http_resp_t *rs, const char *const *props, size_t n,
                     const char **sort, bool *asc)
{
    /* BaseController.createPageLink: sortOrder counts only with a sortProperty, in any case,
     * default ASC; without a sortProperty the store's default order applies. */
    const char *p = http__query(r, "sortProperty");
    *sort = NULL;
    *asc = true;
    if (!p || !*p) {
        /* ThingsBoard ignores sortOrder here (its order is by id); ours is by creation time,
         * newest first unless sortOrder says ASC (what this server did before). */
        const char *o = http__query(r, "sortOrder");
        *asc = o && strcasecmp(o, "ASC") == 0;
        return true;
    }
    bool ok = false;
    for (size_t i = 0; !ok && i < n; i++)
        ok = strcmp(p, props[i]) == 0;
    if (!ok) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Unsupported sort property");
        return false;
    }
    *sort = p;
    const char *o = http__query(r, "sortOrder");
    if (!o || !*o || strcasecmp(o, "ASC") == 0)
        return true;
    if (strcasecmp(o, "DESC") == 0) {
        *asc = false;
        return true;
    }
    char msg[160];
    snprintf(msg, sizeof msg,
             "Unsupported sort order '%.48s'! Only 'ASC' or 'DESC' types are allowed.", o);
    http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
    return false;
}

json_t *http__page_json(json_t *data, int64_t total, int64_t page, int64_t page_size)
{
    int64_t pages = (total + page_size - 1) / page_size;
    return json_pack("{s:o, s:I, s:I, s:b}", "data", data, "totalPages", (json_int_t)pages,
                     "totalElements", (json_int_t)total, "hasNext", (page + 1) < pages);
}
