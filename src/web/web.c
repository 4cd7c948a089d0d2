/* web.c — lookup in the embedded UI asset table.
 *
 * Invariant: web__assets is sorted by path and never changes, so a lookup is a bisection over
 * constant data with no locks. The path check below is not what keeps files outside web/
 * unreachable (nothing outside the table exists here); it keeps odd spellings of a path from
 * reaching the table at all, so one asset has exactly one name.
 */
#include "web/web_int.h"

#include <stdlib.h>
#include <string.h>

#define WEB_PATH_MAX 255

static bool path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > WEB_PATH_MAX)
        return false;
    const char *seg = p;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '/' || c == '\0') {
            size_t len = (size_t)(p + i - seg);
            if (len == 0)
                return false; /* leading, trailing or doubled slash */
            if (seg[0] == '.')
                return false; /* ".", "..", and dot-files, which are never embedded */
            seg = p + i + 1;
            continue;
        }
        if (c < 0x20 || c == 0x7f || c == '\\' || c == '%')
            return false;
    }
    return true;
}

static int cmp_path(const void *key, const void *elem)
{
    return strcmp(key, ((const web_asset_t *)elem)->path);
}

const web_asset_t *web_asset_find(const char *path)
{
    if (!path)
        return NULL;
    if (path[0] == '/')
        path++;
    if (path[0] == '\0')
        path = "index.html";
    if (!path_ok(path))
        return NULL;
    return bsearch(path, web__assets, web__n_assets, sizeof web__assets[0], cmp_path);
}

/* Compares one entity tag (without a "W/" prefix, quotes included) to the asset's, weakly. */
static bool tag_eq(const char *tag, size_t len, const char *etag)
{
    return strlen(etag) == len && memcmp(tag, etag, len) == 0;
}

bool web_asset_etag_match(const web_asset_t *a, const char *if_none_match)
{
    if (!a || !if_none_match)
        return false;
    const char *p = if_none_match;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            return false;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return false; /* malformed list: do not guess, send the full body */
        const char *end = strchr(p + 1, '"');
        if (!end)
            return false;
        if (tag_eq(p, (size_t)(end + 1 - p), a->etag))
            return true;
        p = end + 1;
    }
}

size_t web_asset_count(void)
{
    return web__n_assets;
}

const web_asset_t *web_asset_at(size_t i)
{
    return i < web__n_assets ? &web__assets[i] : NULL;
}
