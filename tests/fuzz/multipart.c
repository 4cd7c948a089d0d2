/* multipart.c — libFuzzer target: the streaming multipart/form-data parser of OTA uploads
 * (src/http/multipart.c), which reads the body of an authenticated POST as it arrives.
 *
 * Input: byte 0 picks the piece size the body is fed in (1..256), the next bytes up to the
 * first '\n' are the boundary, the rest is the body. The parser must never crash, and it must
 * give the same parts and data whether the body comes whole or in pieces — a difference
 * would mean a delimiter split across two reads is handled wrongly, which an upload over a
 * slow link would hit. */
#include "http/multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct trace {
    uint8_t buf[1 << 16];
    size_t len;
    int parts;
} trace_t;

static void put(trace_t *t, const void *p, size_t n)
{
    if (t->len + n > sizeof t->buf)
        n = sizeof t->buf - t->len;
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static int on_begin(void *arg, const http_mp_part_t *p)
{
    trace_t *t = arg;
    t->parts++;
    put(t, "<", 1);
    put(t, p->name, strlen(p->name));
    put(t, "|", 1);
    put(t, p->filename, strlen(p->filename));
    put(t, "|", 1);
    put(t, p->content_type, strlen(p->content_type));
    put(t, ">", 1);
    return 0;
}

static int on_data(void *arg, const uint8_t *p, size_t n)
{
    put(arg, p, n);
    return 0;
}

static int on_end(void *arg)
{
    put(arg, "</>", 3);
    return 0;
}

static int run(const char *ct, const uint8_t *body, size_t len, size_t step, trace_t *t)
{
    http_mp_t m;
    http_mp_cbs_t cbs = {on_begin, on_data, on_end};
    memset(t, 0, sizeof *t);
    if (http__mp_init(&m, ct, &cbs, t) < 0)
        return 1;
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += step)
        rc = http__mp_feed(&m, body + off, len - off < step ? len - off : step);
    return rc ? rc : http__mp_finish(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = (size_t)data[0] + 1;
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    if (!nl)
        return 0;
    char ct[128];
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%.*s",
             (int)(nl - data - 1 > 90 ? 90 : nl - data - 1), (const char *)data + 1);
    const uint8_t *body = nl + 1;
    size_t len = size - (size_t)(body - data);
    static trace_t whole, split;
    int a = run(ct, body, len, len ? len : 1, &whole);
    int b = run(ct, body, len, step, &split);
    if (a == 1)
        return 0; /* boundary refused: nothing was parsed */
    /* Same verdict and the same parts and bytes, however the body was cut. */
    if (a != b || whole.parts != split.parts || whole.len != split.len ||
        memcmp(whole.buf, split.buf, whole.len) != 0)
        abort();
    return 0;
}
