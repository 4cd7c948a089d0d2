/* ota_download.c — OTA downloads over CoAP (spec §3.10): GET /fw/$TOKEN and /sw/$TOKEN as ThingsBoard,
 * and for a device identified by its DTLS certificate GET /fw, /sw, /api/v1/firmware,
 * /api/v1/software (ThingsBoard issue #13097; the /api/v1 forms are the paths its docs show).
 *
 * Query (ThingsBoard's OtaPackageTransportResource): title and version, when given, must equal
 * the assigned package's (else 4.00); size and chunk select the application chunk
 * [chunk*size, chunk*size+size); without size the whole image is the representation. Either
 * representation goes out in RFC 7959 Block2 blocks of the client's size (or the engine's),
 * one block per request, read from the image file with pread: an image is never loaded
 * whole, and nothing is cached between block requests (each one checks the assignment
 * again, so a device never stitches blocks of two packages; the ETag names the package).
 *
 * Codes: no package assigned, or one kept only as an external URL -> 4.04; a chunk or block
 * that starts past the end -> 4.02 Bad Option with a short diagnostic (ThingsBoard sends no
 * answer at all there; RFC 7959 §2.2 answers a Block2 past the end 4.02, and the chunk is a
 * Uri-Query option); size/chunk that are not integers in range -> 4.00.
 */
#include "api/api_int.h"

#include "core/log.h"
#include "core/xmalloc.h"
#include "ota/ota.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The value of the first Uri-Query option "name=value", as Californium's getQueryParameter. */
static bool query(const coap_request_t *req, const char *name, coap_slice_t *out)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->n_query; i++) {
        const coap_slice_t *q = &req->query[i];
        if (q->len > nl && q->p[nl] == '=' && memcmp(q->p, name, nl) == 0) {
            *out = (coap_slice_t){q->p + nl + 1, q->len - nl - 1};
            return true;
        }
    }
    return false;
}

/* Integer.parseInt of a non-negative value; empty means absent (StringUtils.isEmpty -> 0). */
static bool query_int(const coap_request_t *req, const char *name, int64_t *out)
{
    *out = 0;
    coap_slice_t v;
    if (!query(req, name, &v) || v.len == 0)
        return true;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
        n = n * 10 + (v.p[i] - '0');
        if (n > INT32_MAX)
            return false;
    }
    *out = n;
    return true;
}

static void respond_diag(coap_exchange_t *x, uint8_t code, const char *diag)
{
    /* RFC 7252 §5.5.2: a diagnostic payload for humans, no Content-Format. */
    coap_exchange_respond(x, code, COAP_CF_NONE, (const uint8_t *)diag, strlen(diag));
}

/* 8 bytes of the package uuid: packages never change their image, so it names the content. */
static void etag_of(const char *uuid, uint8_t etag[8])
{
    memset(etag, 0, 8);
    size_t k = 0;
    for (const char *c = uuid; *c && k < 16; c++) {
        int v = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;
        if (v < 0)
            continue;
        etag[k / 2] = (uint8_t)(etag[k / 2] | (k % 2 ? v : v << 4));
        k++;
    }
}

static void serve_image(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                        const store_ota_t *o)
{
    coap_slice_t title = {0}, version = {0};
    bool has_title = query(req, "title", &title), has_version = query(req, "version", &version);
    if (!ota_names_match(o, has_title ? (const char *)title.p : NULL, title.len,
                         has_version ? (const char *)version.p : NULL, version.len)) {
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    if (!o->has_data || !a->ota) { /* a URL package: the device fetches it elsewhere */
        coap_exchange_respond(x, COAP_NOT_FOUND, COAP_CF_NONE, NULL, 0);
        return;
    }
    int64_t size, chunk;
    if (!query_int(req, "size", &size) || !query_int(req, "chunk", &chunk)) {
        respond_diag(x, COAP_BAD_REQUEST, "size and chunk must be non-negative integers");
        return;
    }
    /* The representation: the whole image, or the application chunk. */
    uint64_t start, total;
    if (!ota_chunk_range(o->data_size, size, chunk, &start, &total)) {
        respond_diag(x, COAP_BAD_OPTION, "chunk past the end of the image");
        return;
    }
    uint32_t num;
    size_t bsize;
    uint64_t off;
    coap_exchange_block2(x, &num, &bsize, &off);
    if (off >= total) {
        respond_diag(x, COAP_BAD_OPTION, "block past the end of the image");
        return;
    }
    size_t len = total - off < bsize ? (size_t)(total - off) : bsize;
    uint8_t buf[1024];
    ASSERT(len <= sizeof buf); /* bsize is at most 1024 (RFC 7959 SZX 6) */
    int fd = ota_files_open_image(a->ota, o->uuid);
    ssize_t got = -1;
    if (fd >= 0) {
        got = pread(fd, buf, len, (off_t)(start + off));
        close(fd);
    }
    if (got != (ssize_t)len) {
        /* The row says there is data but the file is short or gone: an operator's mistake
         * (files restored without the database, or the reverse); say so once per request. */
        LOG_W("ota", "package %s: image file unreadable at %llu (%s)", o->uuid,
              (unsigned long long)(start + off), fd < 0 ? err_str(fd) : "short read");
        coap_exchange_respond(x, COAP_INTERNAL_SERVER_ERROR, COAP_CF_NONE, NULL, 0);
        return;
    }
    uint8_t etag[8];
    etag_of(o->uuid, etag);
    coap_exchange_respond_block(x, COAP_CONTENT, COAP_CF_OCTET, buf, len, total, etag, sizeof etag);
}

/* A download is a run of block requests, each naming the package again: the device's package
 * is resolved (three store reads) once and reused while no device or profile changed
 * (hub_change_gen; an assigned package's row cannot change) and for at most
 * API_OTA_CACHE_MS, so a 1 MB image at 1024-byte blocks costs 3 reads, not 3 072, on the
 * shard thread. The answer ("none" too) is kept in the device's entry, which lives as long as
 * the device is active. Returns 0 with *out pointing into the cache, -ENOENT, or an error. */
#define API_OTA_CACHE_MS 10000

static int resolve_cached(api_shard_t *a, int64_t device_id, bool software, const store_ota_t **out)
{
    api_dev_t *d = api__dev_get(a, device_id);
    if (!d->ota)
        d->ota = xcalloc(1, sizeof *d->ota);
    api_ota_cache_t *c = d->ota;
    int t = software ? 1 : 0;
    uint64_t gen = hub_change_gen(a->hub); /* before the reads: a change during them shows */
    int64_t now = loop_now_ms(a->loop);
    if (!c->at_ms[t] || c->gen[t] != gen || now - c->at_ms[t] > API_OTA_CACHE_MS) {
        store_ota_fini(&c->o[t]);
        c->at_ms[t] = 0;
        int rc = ota_resolve(a->store, device_id, software ? OTA_SOFTWARE : OTA_FIRMWARE, &c->o[t]);
        if (rc < 0 && rc != -ENOENT)
            return rc; /* not kept: the next block asks the store again */
        c->rc[t] = rc;
        c->gen[t] = gen;
        c->at_ms[t] = now ? now : 1;
    }
    *out = &c->o[t];
    return c->rc[t];
}

void api__ota_download(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                       int64_t device_id, bool software)
{
    const store_ota_t *o = NULL;
    int rc = resolve_cached(a, device_id, software, &o);
    if (rc == -ENOENT) {
        coap_exchange_respond(x, COAP_NOT_FOUND, COAP_CF_NONE, NULL, 0);
    } else if (rc < 0) {
        api__store_failed(a, device_id, "OTA package read", rc);
        api__respond_err(x, rc);
    } else {
        serve_image(a, x, req, o);
    }
    api__dev_maybe_free(api__dev_get(a, device_id));
}
