/* stream.c — answers written piece by piece as the client reads them, so their size never
 * decides an allocation (PageData of any pageSize, time-series history of many keys).
 *
 * A producer hands out the next piece of text on demand. Its first piece is asked for by the
 * handler, before the answer starts, so an error there still gets its own status; an error
 * later can only cut the body short: the client sees a truncated body, never a
 * complete-looking wrong one. The producers read the store, which may wait, and libmicrohttpd
 * asks for content on a polling thread that serves many connections: so when the text in hand
 * is sent, the content reader parks the connection and a worker (front.c) pulls the next
 * pieces, up to STREAM_BATCH bytes, then resumes it. Without a connection (unit tests calling
 * a handler directly) the same pieces are collected into an ordinary body.
 */
#include "http/http_int.h"

#include "http/front.h"

#include "core/xmalloc.h"
#include "values/buf.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_BATCH = 16384 };

typedef struct stream {
    http_stream_fn next;
    void *ctx;
    void (*ctx_free)(void *ctx);
    char *out; /* the piece being sent */
    size_t out_len, out_pos;
    bool done;
    int err; /* the producer's error that cut the answer short */
    struct MHD_Connection *conn;
    http_front_t *front;
} stream_t;

static void take(stream_t *s, char *piece)
{
    free(s->out);
    s->out = piece;
    s->out_len = piece ? strlen(piece) : 0;
    s->out_pos = 0;
}

/* Next non-empty piece into s->out: 1, 0 at the end, or the producer's error. */
static int pull(stream_t *s)
{
    while (!s->done) {
        char *piece = NULL;
        int rc = s->next(s->ctx, &piece);
        if (rc < 0) {
            free(piece);
            s->err = rc;
            s->done = true;
            return rc;
        }
        if (rc == 0) {
            free(piece);
            s->done = true;
            break;
        }
        take(s, piece);
        if (s->out_len)
            return 1;
    }
    take(s, NULL);
    return 0;
}

/* The next pieces, up to STREAM_BATCH bytes, into s->out (a worker's job: the store is read
 * here). Nothing left in s->out means the end (s->done, s->err). */
static void fill(void *arg)
{
    stream_t *s = arg;
    values_buf_t b = {0};
    while (b.len < STREAM_BATCH && pull(s) > 0)
        values_buf_put(&b, s->out, s->out_len);
    if (b.len) {
        take(s, values_buf_take(&b));
    } else {
        values_buf_fini(&b);
        take(s, NULL);
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_t *s = cls;
    if (s->out_pos == s->out_len) {
        if (s->done)
            return s->err ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        if (s->front && http__front_offload(s->front, s->conn, fill, s))
            return 0; /* parked; called again once the worker has filled s->out */
        fill(s);      /* the server is stopping: no workers */
        if (s->out_pos == s->out_len)
            return s->err ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
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
    stream_t *s = cls;
    free(s->out);
    if (s->ctx_free)
        s->ctx_free(s->ctx);
    free(s);
}

/* All pieces into one body (no connection to stream to). */
static void drain(stream_t *s, http_resp_t *rs)
{
    values_buf_t b = {0};
    int rc;
    do {
        values_buf_put(&b, s->out + s->out_pos, s->out_len - s->out_pos);
    } while ((rc = pull(s)) > 0);
    if (rc == 0) {
        http__resp_json_text(rs, 200, values_buf_take(&b));
    } else {
        values_buf_fini(&b);
        http__resp_store_error(rs, rc);
    }
    stream_free(s);
}

void http__stream_answer(http_req_t *rq, http_resp_t *rs, http_stream_fn next, void *ctx,
                         void (*ctx_free)(void *ctx))
{
    stream_t *s = xcalloc(1, sizeof *s);
    *s = (stream_t){.next = next, .ctx = ctx, .ctx_free = ctx_free};
    int rc = pull(s);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        stream_free(s);
        return;
    }
    if (!rq->conn) {
        drain(s, rs);
        return;
    }
    s->conn = rq->conn;
    s->front = rq->srv->front;
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
