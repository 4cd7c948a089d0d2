/* request.c — what a handler reads of its request: query parameters and headers, through
 * libmicrohttpd's connection. The bottom of the handlers: every rest_*.c file may use it, it
 * uses none of them. */
#include "http/http_int.h"

#include <microhttpd.h>
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
