/* page.c — ThingsBoard's PageData answers of any page size, in bounded memory.
 *
 * Clients ask for pageSize=999999999 to mean "everything". The store is read in chunks of
 * HTTP_PAGE_CHUNK rows (store page k of that size), so no allocation follows the page size:
 * a page of up to one chunk is answered from memory as before; a larger one is streamed, each
 * chunk read and written out as the client takes the bytes (libmicrohttpd's content reader,
 * on the connection's own thread). The first chunk is read before the answer starts, so a
 * store that cannot answer still gets its error status; a failure in a later chunk can only
 * cut the stream short (the client sees a truncated body, never a wrong complete one).
 * Chunks are separate reads: rows written between them may shift the page by a few rows,
 * as between two pages of ThingsBoard's own paging.
 */
#include "http/http_int.h"

#include "core/xmalloc.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct page_stream {
    http_page_fetch_fn fetch;
    void *ctx;
    void (*ctx_free)(void *ctx);
    int64_t chunk; /* next store chunk to read */
    int64_t left;  /* rows of the page still to write */
    int64_t total, page, page_size;
    json_t *rows;    /* the chunk being written */
    size_t next_row; /* index in rows */
    bool first, done;
    int err;   /* the store error that cut the answer short */
    char *out; /* text not yet handed to the client */
    size_t out_len, out_pos;
} page_stream_t;

static void set_out(page_stream_t *s, char *text)
{
    free(s->out);
    s->out = text;
    s->out_len = text ? strlen(text) : 0;
    s->out_pos = 0;
}

static char *tail_text(const page_stream_t *s)
{
    int64_t pages = (s->total + s->page_size - 1) / s->page_size;
    char buf[160];
    snprintf(buf, sizeof buf, "],\"totalPages\":%lld,\"totalElements\":%lld,\"hasNext\":%s}",
             (long long)pages, (long long)s->total, s->page + 1 < pages ? "true" : "false");
    return xstrdup(buf);
}

/* Produces the next piece of text: a row (with its leading comma), or the tail. -1 when a
 * chunk could not be read. */
static int produce(page_stream_t *s)
{
    for (;;) {
        if (s->left == 0) {
            set_out(s, tail_text(s));
            s->done = true;
            return 0;
        }
        if (s->next_row < json_array_size(s->rows)) {
            char *t = http__dumps(json_array_get(s->rows, s->next_row++));
            if (!s->first) {
                size_t n = strlen(t);
                char *w = xmalloc(n + 2);
                w[0] = ',';
                memcpy(w + 1, t, n + 1);
                free(t);
                t = w;
            }
            set_out(s, t);
            s->first = false;
            s->left--;
            return 0;
        }
        if (json_array_size(s->rows) < HTTP_PAGE_CHUNK) {
            s->left = 0; /* the store ran out before the page did (rows deleted meanwhile) */
            continue;
        }
        json_array_clear(s->rows);
        int64_t total;
        if ((s->err = s->fetch(s->ctx, s->chunk++, HTTP_PAGE_CHUNK, s->rows, &total)) < 0)
            return -1;
        s->next_row = 0;
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    page_stream_t *s = cls;
    while (s->out_pos == s->out_len) {
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (produce(s) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = s->out_len - s->out_pos;
    if (n > max)
        n = max;
    memcpy(buf, s->out + s->out_pos, n);
    s->out_pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    page_stream_t *s = cls;
    json_decref(s->rows);
    free(s->out);
    if (s->ctx_free)
        s->ctx_free(s->ctx);
    free(s);
}

/* The streamed text collected into rs (the same code path, without libmicrohttpd). */
static void drain(page_stream_t *s, http_resp_t *rs)
{
    size_t cap = 4096, len = 0;
    char *text = xmalloc(cap);
    ssize_t n;
    while ((n = reader(s, len, text + len, cap - len - 1)) >= 0) {
        len += (size_t)n;
        if (cap - len < 1024)
            text = xrealloc(text, cap *= 2);
    }
    text[len] = '\0';
    if (n == MHD_CONTENT_READER_END_OF_STREAM) {
        http__resp_json_text(rs, 200, text);
    } else {
        free(text);
        http__resp_store_error(rs, s->err);
    }
    stream_free(s);
}

void http__page_answer(http_req_t *rq, http_resp_t *rs, int64_t page, int64_t page_size,
                       http_page_fetch_fn fetch, void *ctx, void (*ctx_free)(void *ctx))
{
    (void)rq;
    /* page and page_size are Java ints (< 2^31), so the offset fits in 62 bits. */
    int64_t offset = page * page_size;
    int64_t chunk = offset / HTTP_PAGE_CHUNK, skip = offset % HTTP_PAGE_CHUNK;
    json_t *rows = json_array();
    int64_t total = 0;
    int rc = fetch(ctx, chunk, HTTP_PAGE_CHUNK, rows, &total);
    if (rc < 0) {
        json_decref(rows);
        if (ctx_free)
            ctx_free(ctx);
        http__resp_store_error(rs, rc);
        return;
    }
    int64_t want = total > offset ? total - offset : 0;
    if (want > page_size)
        want = page_size;
    if (want + skip <= HTTP_PAGE_CHUNK) {
        /* The whole page is in this chunk: from memory. */
        json_t *data = json_array();
        for (int64_t i = skip; i < skip + want && i < (int64_t)json_array_size(rows); i++)
            json_array_append(data, json_array_get(rows, (size_t)i));
        json_decref(rows);
        if (ctx_free)
            ctx_free(ctx);
        http__resp_json(rs, 200, http__page_json(data, total, page, page_size));
        return;
    }
    page_stream_t *s = xcalloc(1, sizeof *s);
    *s = (page_stream_t){.fetch = fetch,
                         .ctx = ctx,
                         .ctx_free = ctx_free,
                         .chunk = chunk + 1,
                         .left = want,
                         .total = total,
                         .page = page,
                         .page_size = page_size,
                         .rows = rows,
                         .next_row = (size_t)skip,
                         .first = true};
    set_out(s, xstrdup("{\"data\":["));
    if (!rq->conn) {
        drain(s, rs); /* a test calling the handler without a server */
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader,
                                                                  s, stream_free);
    if (!resp) {
        stream_free(s);
        http__resp_error(rs, HTTP_E_GENERAL, NULL);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    rs->status = 200;
    rs->stream = resp;
}
