/* page.c — ThingsBoard's PageData answers of any page size, in bounded memory.
 *
 * Clients ask for pageSize=999999999 to mean "everything". The store is read in chunks of
 * HTTP_PAGE_CHUNK rows (store page k of that size; the page's first row may lie inside a
 * chunk), so no allocation follows the page size: a page within one chunk is answered from
 * memory as before, a larger one is streamed (stream.c), one chunk of rows per piece.
 * Chunks are separate reads: rows written between them may shift the page by a few rows, as
 * between two pages of ThingsBoard's own paging.
 */
#include "http/http_int.h"

#include "core/xmalloc.h"
#include "values/buf.h"

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
    bool head, first, tail;
} page_stream_t;

/* http_stream_fn: "{"data":[", then the rows of each chunk, then the totals. */
static int next_piece(void *arg, char **piece)
{
    page_stream_t *s = arg;
    values_buf_t b = {0};
    if (!s->head) {
        s->head = true;
        *piece = xstrdup("{\"data\":[");
        return 1;
    }
    if (s->tail)
        return 0;
    if (s->left > 0 && s->next_row == json_array_size(s->rows) &&
        json_array_size(s->rows) == HTTP_PAGE_CHUNK) {
        json_array_clear(s->rows);
        int64_t total;
        int rc = s->fetch(s->ctx, s->chunk++, HTTP_PAGE_CHUNK, s->rows, &total);
        if (rc < 0)
            return rc;
        s->next_row = 0;
    }
    while (s->left > 0 && s->next_row < json_array_size(s->rows)) {
        char *t = http__dumps(json_array_get(s->rows, s->next_row++));
        if (!s->first)
            values_buf_put(&b, ",", 1);
        values_buf_puts(&b, t);
        free(t);
        s->first = false;
        s->left--;
    }
    if (s->left == 0 || s->next_row < HTTP_PAGE_CHUNK) {
        /* the page is complete, or the store ran out before it (rows deleted meanwhile) */
        int64_t pages = (s->total + s->page_size - 1) / s->page_size;
        values_buf_printf(&b, "],\"totalPages\":%lld,\"totalElements\":%lld,\"hasNext\":%s}",
                          (long long)pages, (long long)s->total,
                          s->page + 1 < pages ? "true" : "false");
        s->tail = true;
    }
    *piece = values_buf_take(&b);
    return 1;
}

static void page_stream_free(void *arg)
{
    page_stream_t *s = arg;
    json_decref(s->rows);
    if (s->ctx_free)
        s->ctx_free(s->ctx);
    free(s);
}

void http__page_answer(http_req_t *rq, http_resp_t *rs, int64_t page, int64_t page_size,
                       http_page_fetch_fn fetch, void *ctx, void (*ctx_free)(void *ctx))
{
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
    if (want + skip <= HTTP_PAGE_CHUNK) { /* the whole page is in this chunk: from memory */
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
    http__stream_answer(rq, rs, next_piece, s, page_stream_free);
}
