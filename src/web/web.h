/* web.h — the web UI's static files (web/, and as vendor/ the npm packages' files it loads),
 * embedded in the binary.
 *
 * The assets are generated at build time (src/web/embed.c turns every UI file into a C array)
 * and are immutable for the life of the process: a returned web_asset_t is valid forever and
 * may be read from any thread without locking. Nothing here does I/O or allocates.
 *
 * URL layout the HTTP glue is expected to serve (see the file header of web.c):
 *   GET /            -> web_asset_find("index.html")
 *   GET /static/<p>  -> web_asset_find(<p>)        e.g. "app.js", "js/api.js", "vendor/uPlot.min.css"
 */
#ifndef COAPHUB_WEB_WEB_H
#define COAPHUB_WEB_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct web_asset {
    const char *path;         /* relative to web/, e.g. "js/api.js"; never starts with '/' */
    const uint8_t *data;      /* the file's bytes (not NUL-terminated) */
    size_t len;               /* bytes in data */
    const char *content_type; /* e.g. "text/html; charset=utf-8" */
    const char *etag;         /* strong ETag with its quotes, e.g. "\"3f2a...-1c4\"" */
} web_asset_t;

/* Looks an asset up by its path relative to web/. One leading '/' is accepted and "" or "/"
 * mean "index.html". Paths with "." or ".." segments, empty segments ("a//b"), backslashes,
 * '%', control characters or more than 255 bytes are rejected: this is a fixed table, so there
 * is nothing to escape to, but refusing them early keeps the contract obvious.
 * Returns the asset, or NULL when there is no such file (or path is NULL). Any thread. */
const web_asset_t *web_asset_find(const char *path);

/* True when an If-None-Match header value ("*", or a comma-separated list of entity tags,
 * weak ones "W/\"..\"" included, as RFC 9110 §13.1.2 compares them weakly) names this asset,
 * i.e. the server should answer 304 Not Modified. NULL header -> false. Any thread. */
bool web_asset_etag_match(const web_asset_t *a, const char *if_none_match);

/* Number of embedded assets, and the i-th one (i < web_asset_count()), sorted by path. */
size_t web_asset_count(void);
const web_asset_t *web_asset_at(size_t i);

#endif
