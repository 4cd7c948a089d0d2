/* router.c — matches a method and a path against the route table.
 *
 * Patterns are literal segments and {name} placeholders, each matching exactly one non-empty
 * segment; there are no wildcards or regular expressions, so which route wins is decided by
 * table order alone and can be read off routes.c. Paths arrive URL-decoded from
 * libmicrohttpd; a segment holding '/' after decoding cannot be told apart and simply splits.
 */
#include "http/http_int.h"

#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

static void free_params(char *params[HTTP_MAX_PARAMS], size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free(params[i]);
        params[i] = NULL;
    }
    *n = 0;
}

bool http__route_match(const char *pattern, const char *path, char *params[HTTP_MAX_PARAMS],
                       size_t *n_params)
{
    *n_params = 0;
    const char *p = pattern, *s = path;
    if (*p != '/' || *s != '/')
        return false;
    while (*p == '/' && *s == '/') {
        p++;
        s++;
        size_t plen = strcspn(p, "/");
        size_t slen = strcspn(s, "/");
        if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (slen == 0 || *n_params == HTTP_MAX_PARAMS)
                goto fail;
            params[(*n_params)++] = xstrndup(s, slen);
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            goto fail;
        }
        p += plen;
        s += slen;
    }
    if (*s == '/' && s[1] == '\0')
        s++; /* trailing slash */
    if (*p == '\0' && *s == '\0')
        return true;
fail:
    free_params(params, n_params);
    return false;
}

const http_route_t *http__route_find(const http_route_t *routes, size_t n, const char *method,
                                     const char *path, char *params[HTTP_MAX_PARAMS],
                                     size_t *n_params, bool *path_known)
{
    *path_known = false;
    *n_params = 0;
    for (size_t i = 0; i < n; i++) {
        if (!http__route_match(routes[i].pattern, path, params, n_params))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
        *path_known = true;
        free_params(params, n_params);
    }
    return NULL;
}
