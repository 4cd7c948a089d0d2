/* web_asset.c — fuzzes web_asset_find() and web_asset_etag_match() with request paths and
 * If-None-Match headers as they arrive from the network (first line = path, rest = header).
 * Checks: a found asset's path equals the input minus one leading '/' (or index.html), so no
 * odd spelling ever reaches an asset; nothing reads out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web/web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *hdr = strchr(buf, '\n');
    if (hdr)
        *hdr++ = '\0';
    const web_asset_t *a = web_asset_find(buf);
    if (a) {
        const char *p = buf[0] == '/' ? buf + 1 : buf;
        if (*p == '\0')
            p = "index.html";
        if (strcmp(p, a->path) != 0)
            abort();
        if (!web_asset_etag_match(a, a->etag))
            abort();
    }
    const web_asset_t *idx = web_asset_find("index.html");
    (void)web_asset_etag_match(idx, hdr ? hdr : buf);
    free(buf);
    return 0;
}
