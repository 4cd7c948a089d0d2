/* multipart.h — a streaming multipart/form-data parser (RFC 7578 on RFC 2046 §5.1).
 *
 * Fed the body in pieces of any size, it calls back with each part's headers and its data as
 * it arrives, holding at most one delimiter's worth of bytes and one part's header block
 * (HTTP_MP_HEADER_MAX): a 64 MiB upload goes to disk without ever being in memory. No
 * allocation. Module-internal to src/http; fuzzed by tests/fuzz/multipart.c.
 */
#ifndef COAPHUB_HTTP_MULTIPART_H
#define COAPHUB_HTTP_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MP_BOUNDARY_MAX 70 /* RFC 2046 §5.1.1 */
#define HTTP_MP_HEADER_MAX 2048 /* one part's header block; more is -EMSGSIZE */
#define HTTP_MP_NAME_MAX 256

typedef struct http_mp_part {
    char name[HTTP_MP_NAME_MAX];     /* Content-Disposition name= ("" if absent) */
    char filename[HTTP_MP_NAME_MAX]; /* filename= ("" if absent) */
    bool has_filename;
    char content_type[HTTP_MP_NAME_MAX]; /* Content-Type ("" if absent) */
} http_mp_part_t;

typedef struct http_mp_cbs {
    /* Each returns 0 to go on or a negative error, which http__mp_feed returns. */
    int (*part_begin)(void *arg, const http_mp_part_t *part);
    int (*part_data)(void *arg, const uint8_t *p, size_t n);
    int (*part_end)(void *arg);
} http_mp_cbs_t;

typedef struct http_mp {
    http_mp_cbs_t cbs;
    void *arg;
    char delim[4 + HTTP_MP_BOUNDARY_MAX + 1]; /* "\r\n--" boundary */
    size_t dlen;
    int state;
    size_t mi; /* bytes of delim matched */
    char hdr[HTTP_MP_HEADER_MAX];
    size_t hlen;
    bool in_part;
    int err; /* sticky */
} http_mp_t;

/* Reads the boundary from a Content-Type header value ("multipart/form-data; boundary=..").
 * 0, or -EINVAL when it is not multipart/form-data or the boundary is missing or invalid. */
int http__mp_init(http_mp_t *m, const char *content_type, const http_mp_cbs_t *cbs, void *arg);
/* Parses n more bytes. 0, -EBADMSG on malformed input, -EMSGSIZE on a header block too
 * large, or a callback's error; any error is sticky. */
int http__mp_feed(http_mp_t *m, const uint8_t *p, size_t n);
/* The body ended: 0 if the closing delimiter was seen, else -EBADMSG (or the sticky error). */
int http__mp_finish(http_mp_t *m);

#endif
