/* response.c — building and sending an answer: message type and MID (piggybacked ACK,
 * separate CON, NON), the options an exchange calls for (Observe, Content-Format, Max-Age,
 * Block2 slicing with Size2, Block1 echo, Size1), the Block2 cache of a sliced body, and the copy a
 * dedup entry keeps to answer a duplicate CON again.
 *
 * Used by engine.c (answers) and observe.c (notifications, the final cancel); it decides
 * nothing about relations: the caller says whether the answer carries Observe.
 */
#include "coap/coap_int.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint8_t cfg_szx(const coap_engine_t *e)
{
    return coap_block_szx_for(e->cfg.block_size);
}

/* What one build may use: the largest SZX (-1: the configured block size), the most
 * payload bytes of an unsliced answer (SIZE_MAX: all), an Echo option. */
typedef struct build_lim {
    int szx;
    size_t payload_cap;
    const uint8_t *echo;
    size_t echo_len;
} build_lim_t;

/* How the payload went out: sliced as block num (more follows), or whole. */
typedef struct build_out {
    bool sliced, more;
    uint32_t num;
} build_out_t;

static ssize_t build_one(coap_exchange_t *x, uint8_t **out, size_t out_cap, uint8_t type,
                         uint16_t mid, uint8_t code, int cf, const uint8_t *payload, size_t len,
                         bool with_observe, uint32_t observe, const build_lim_t *lim,
                         build_out_t *bo)
{
    coap_engine_t *e = x->e;
    uint8_t szx = cfg_szx(e);
    if (lim->szx >= 0 && lim->szx < szx)
        szx = (uint8_t)lim->szx;
    uint32_t num = 0;
    bool beyond = false;
    if (x->has_block2) {
        /* RFC 7959 §2.4: the client's SZX is a maximum; we may go smaller, never larger, and
         * then the same offset is a larger block number. */
        if (x->block2.szx < szx)
            szx = x->block2.szx;
        uint64_t n = (uint64_t)x->block2.num << (x->block2.szx - szx);
        beyond = n > 0xfffffu; /* not a NUM a Block2 option can carry */
        num = beyond ? 0 : (uint32_t)n;
    }
    size_t bsize = coap_block_size(szx);
    /* A diagnostic cut to the budget (payload_cap) goes whole, never as block 0. */
    bool sliced = (len > bsize && lim->payload_cap == SIZE_MAX) || num > 0;
    const uint8_t *slice = payload;
    size_t slice_len = len;
    bool more = false;
    uint64_t total = len;
    if (x->block_ext) {
        /* The application handed us one block already (coap_exchange_respond_block). */
        total = x->block_total;
        sliced = x->has_block2 || total > bsize;
        more = (uint64_t)num * bsize + len < total;
    } else if (sliced) {
        size_t off = (size_t)num * bsize;
        if (beyond || off >= len) {
            /* RFC 7959 §2.2: a block number beyond the body is a bad Block2 option. */
            code = COAP_BAD_OPTION;
            sliced = false;
            slice = NULL;
            slice_len = 0;
            with_observe = false;
            cf = COAP_CF_NONE;
        } else {
            slice = payload + off;
            slice_len = len - off < bsize ? len - off : bsize;
            more = off + slice_len < len;
        }
    } else if (slice_len > lim->payload_cap) {
        slice_len = lim->payload_cap; /* a diagnostic payload cut to the budget */
    }
    /* 9: an ETag of up to 8 bytes; 3: the Echo option's header */
    size_t cap = 4 + COAP_TOKEN_MAX + 64 + 9 + 3 + lim->echo_len + slice_len;
    uint8_t *buf = *out && cap <= out_cap ? *out : xmalloc(cap);
    coap_builder_t b;
    coap_builder_init(&b, buf, cap, type, code, mid, x->token, x->tkl);
    if (x->etag_len)
        coap_builder_opt(&b, COAP_OPT_ETAG, x->etag, x->etag_len);
    if (with_observe)
        coap_builder_opt_uint(&b, COAP_OPT_OBSERVE, observe & 0xffffffu);
    if (cf >= 0)
        coap_builder_opt_uint(&b, COAP_OPT_CONTENT_FORMAT, (uint32_t)cf);
    if (x->has_max_age)
        coap_builder_opt_uint(&b, COAP_OPT_MAX_AGE, x->max_age);
    if (sliced) {
        coap_block_t bl = {.num = num, .more = more, .szx = szx};
        coap_builder_opt_uint(&b, COAP_OPT_BLOCK2, coap_block_encode(&bl));
    }
    if (x->has_block1)
        coap_builder_opt_uint(&b, COAP_OPT_BLOCK1, coap_block_encode(&x->block1));
    if (sliced && num == 0)
        coap_builder_opt_uint(&b, COAP_OPT_SIZE2,
                              total > UINT32_MAX ? UINT32_MAX : (uint32_t)total);
    if (x->size1)
        coap_builder_opt_uint(&b, COAP_OPT_SIZE1, x->size1);
    if (lim->echo_len)
        coap_builder_opt(&b, COAP_OPT_ECHO, lim->echo, lim->echo_len);
    coap_builder_payload(&b, slice, slice_len);
    ssize_t n = coap_builder_finish(&b);
    ASSERT(n >= 0); /* cap covers the header, token, every option we add and the slice */
    *out = buf;
    *bo = (build_out_t){.sliced = sliced, .more = more, .num = num};
    return n;
}

/* Gives back a buffer build_one took from the heap (the caller's stays). */
static void unbuild(uint8_t **out, uint8_t *caller)
{
    if (*out != caller)
        free(*out);
    *out = caller;
}

/* The answer of x (to an unverified plain-UDP address, amp.c) came out larger than
 * x->amp_budget: build it again within the budget, with an Echo option so that an
 * RFC 9175 client proves its address with its next request.
 *   - a 2.xx body: Block2 at the largest SZX that fits (RFC 7252 §11.3, RFC 7959 §2.4);
 *     the client asks for the rest, each block request again bounded by its own size;
 *   - another code: its diagnostic payload cut to what fits;
 *   - otherwise (nothing fits): 4.01 with Echo (RFC 9175 §2.4), or a bare 4.01.
 * Returns the bytes built into *out, bo says how the payload went. */
static ssize_t build_limited(coap_exchange_t *x, uint8_t **out, uint8_t *caller, size_t out_cap,
                             uint8_t type, uint16_t mid, uint8_t code, int cf,
                             const uint8_t *payload, size_t len, bool with_observe,
                             uint32_t observe, build_out_t *bo)
{
    coap_engine_t *e = x->e;
    size_t budget = x->amp_budget;
    uint8_t echo[COAP_ECHO_MAX];
    size_t echo_len = x->ps ? coap__amp_echo_make(x->ps, echo) : 0;
    ssize_t n;
    for (int with_echo = echo_len ? 1 : 0; with_echo >= 0; with_echo--) {
        build_lim_t lim = {
            .szx = -1, .payload_cap = SIZE_MAX, .echo = echo, .echo_len = with_echo ? echo_len : 0};
        if ((code >> 5) == 2 && len > 0 && !x->block_ext) {
            for (int s = cfg_szx(e); s >= 0; s--) {
                lim.szx = s;
                unbuild(out, caller);
                n = build_one(x, out, out_cap, type, mid, code, cf, payload, len, with_observe,
                              observe, &lim, bo);
                if ((size_t)n <= budget) {
                    e->stats.amp_block2++;
                    return n;
                }
            }
        } else if ((code >> 5) != 2 && len > 0) {
            lim.payload_cap = 0;
            unbuild(out, caller);
            n = build_one(x, out, out_cap, type, mid, code, cf, payload, len, with_observe, observe,
                          &lim, bo);
            if ((size_t)n <= budget) {
                /* 1: the payload marker */
                lim.payload_cap = (size_t)n + 1 < budget ? budget - (size_t)n - 1 : 0;
                unbuild(out, caller);
                n = build_one(x, out, out_cap, type, mid, code, cf, payload, len, with_observe,
                              observe, &lim, bo);
                e->stats.amp_trim++;
                return n;
            }
        }
    }
    /* Nothing of the answer fits: 4.01 and the Echo value, the token, no other option. The
     * bare 4.01 (header and token) always fits: the request had at least those bytes. */
    unbuild(out, caller);
    size_t cap = 4 + COAP_TOKEN_MAX + 3 + COAP_ECHO_MAX;
    uint8_t *buf = *out && cap <= out_cap ? *out : xmalloc(cap);
    coap_builder_t b;
    coap_builder_init(&b, buf, cap, type, COAP_UNAUTHORIZED, mid, x->token, x->tkl);
    if (echo_len && 4 + (size_t)x->tkl + 3 + echo_len <= budget)
        coap_builder_opt(&b, COAP_OPT_ECHO, echo, echo_len);
    n = coap_builder_finish(&b);
    ASSERT(n >= 0);
    *out = buf;
    *bo = (build_out_t){0};
    e->stats.amp_echo++;
    return n;
}

ssize_t coap__build(coap_exchange_t *x, uint8_t **out, size_t out_cap, uint8_t type, uint16_t mid,
                    uint8_t code, int cf, const uint8_t *payload, size_t len, bool with_observe,
                    uint32_t observe)
{
    uint8_t *caller = *out;
    build_lim_t lim = {.szx = coap__amp_ext_szx(x), .payload_cap = SIZE_MAX};
    if (!x->block_ext)
        lim.szx = -1; /* the engine slices: build_limited picks the size if it must */
    build_out_t bo;
    ssize_t n = build_one(x, out, out_cap, type, mid, code, cf, payload, len, with_observe, observe,
                          &lim, &bo);
    if (x->amp_budget && (size_t)n > x->amp_budget)
        n = build_limited(x, out, caller, out_cap, type, mid, code, cf, payload, len, with_observe,
                          observe, &bo);
    /* Keep the whole body for the follow-up requests (RFC 7959 §2.4); only successful
     * bodies. */
    if (bo.sliced && bo.more && bo.num == 0 && !x->block_ext && x->ps && !x->ps->closing &&
        x->key_len && (code >> 5) == 2) {
        uint8_t *copy = xmalloc(len);
        memcpy(copy, payload, len);
        coap_bstate_t *c = coap__bstate_put(x->ps, &x->ps->block2, x->key, x->key_len, copy, len);
        if (c) {
            c->code = code;
            c->cf = cf;
        }
    }
    return n;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *c = xmalloc(n);
    memcpy(c, p, n);
    return c;
}

void coap__respond(coap_exchange_t *x, uint8_t code, int cf, const uint8_t *payload, size_t len,
                   bool with_observe)
{
    coap_peer_t *ps = x->ps;
    coap_engine_t *e = x->e;
    uint8_t type;
    uint16_t mid;
    if (x->con && !x->acked) {
        type = COAP_TYPE_ACK;
        mid = x->mid;
    } else {
        type = x->con ? COAP_TYPE_CON : COAP_TYPE_NON;
        mid = x->con ? coap__amp_con_mid(ps) : coap__next_mid(e);
    }
    /* Small responses are built on the stack; coap__build takes the heap for bigger ones. */
    uint8_t stack[512];
    uint8_t *buf = stack;
    ssize_t n = coap__build(x, &buf, sizeof stack, type, mid, code, cf, payload, len, with_observe,
                            0);
    bool on_heap = buf != stack;
    if (type == COAP_TYPE_CON) { /* a separate response: the retransmission keeps it */
        coap__con_send(ps, mid, on_heap ? buf : dup_bytes(buf, (size_t)n), (size_t)n);
        return;
    }
    coap__send(ps, buf, (size_t)n);
    if (type == COAP_TYPE_ACK && x->d) {
        /* RFC 7252 §4.5: a duplicate CON gets the same piggybacked response again. */
        coap_dedup_t *d = x->d;
        if (d->resp != d->resp_inline)
            free(d->resp);
        if ((size_t)n <= sizeof d->resp_inline) {
            memcpy(d->resp_inline, buf, (size_t)n);
            d->resp = d->resp_inline;
        } else {
            d->resp = on_heap ? buf : dup_bytes(buf, (size_t)n);
            on_heap = false; /* the dedup entry owns it now */
        }
        d->resp_len = (size_t)n;
    }
    if (on_heap)
        free(buf);
}

/* Here, below blockwise.c and engine.c, because both answer with a Max-Age (5.03, 4.29). */
void coap_exchange_set_max_age(coap_exchange_t *x, uint32_t seconds)
{
    x->has_max_age = true;
    x->max_age = seconds;
}
