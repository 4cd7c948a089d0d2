/* static.c — serves the embedded web UI (src/web) with the headers that keep it safe:
 * a strict Content-Security-Policy (no inline script or style, nothing from other origins),
 * nosniff, no referrer, and ETag revalidation (file names carry no hash, so no-cache).
 */
#include "http/http_int.h"

#include "web/web.h"

#include <microhttpd.h>
#include <string.h>

#define CSP                                                                                    \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

void http__security_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
}

bool http__serve_static(struct MHD_Connection *conn, const char *method, const char *url,
                        enum MHD_Result *ret)
{
    const char *path;
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        path = "index.html";
    else if (strncmp(url, "/static/", 8) == 0)
        path = url + 8;
    else
        return false;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return false; /* the router answers 405 */
    const web_asset_t *a = web_asset_find(path);
    if (!a)
        return false; /* the router answers 404 with TB's error JSON */
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
    bool fresh = web_asset_etag_match(a, inm);
    struct MHD_Response *resp =
        fresh ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
              : MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        *ret = MHD_NO;
        return true;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    http__security_headers(resp);
    *ret = MHD_queue_response(conn, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return true;
}
