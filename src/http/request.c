/* request.c — what a handler reads of its request: query parameters and headers, through
 * libmicrohttpd's connection. The bottom of the handlers: every rest_*.c file may use it, it
 * uses none of them. */
#include "http/http_int.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

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

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool http__page_args(const http_req_t *r, http_resp_t *rs, int64_t *page, int64_t *page_size)
{
    *page = 0;
    const char *p = http__query(r, "page");
    if (!parse_int(http__query(r, "pageSize"), 1, 10000, page_size) ||
        (p && !parse_int(p, 0, 1000000000, page))) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "Invalid page parameters: pageSize (1..10000) is required, page >= 0");
        return false;
    }
    return true;
}

json_t *http__page_json(json_t *data, int64_t total, int64_t page, int64_t page_size)
{
    int64_t pages = (total + page_size - 1) / page_size;
    return json_pack("{s:o, s:I, s:I, s:b}", "data", data, "totalPages", (json_int_t)pages,
                     "totalElements", (json_int_t)total, "hasNext", (page + 1) < pages);
}
