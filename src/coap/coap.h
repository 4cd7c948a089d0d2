/* coap.h — the CoAP engine of one shard: RFC 7252 messaging, RFC 7641 Observe and
 * RFC 7959 block-wise transfer, between a transport (core/transport.h) and an application
 * (src/api). It knows nothing of OpenSSL, SQL, JSON or ThingsBoard.
 *
 * Stage order for an incoming datagram (Californium's CoapUdpStack is the model):
 *   parse -> (empty CON -> RST ping; RST/ACK -> match our CONs) -> dedup by (peer, MID)
 *   -> unknown critical option -> 4.02 -> Observe deregistration/replacement -> ops.admit
 *   (credentials, rate limits: nothing is kept for a refused request) -> Block1 reassembly
 *   (capped) -> Block2 follow-ups served from the cached body -> ops.on_request.
 *
 * Responses: the application answers each request exactly once with coap_exchange_respond(),
 * either inside on_request or later (for example after a store commit). If the answer comes
 * within cfg.piggyback_ms of the request, a CON request gets it piggybacked in the ACK;
 * otherwise the engine sends an empty ACK at the deadline and the answer later as a separate
 * CON response, retransmitted with RFC 7252 §4.2 backoff. NON requests get NON responses.
 * Responses larger than the block size are sliced with Block2. To a plain-UDP address that
 * has not proven it receives at its address, every answer is at most cfg.amp_factor times
 * its request (smaller Block2 blocks with an Echo option, RFC 7252 §11.3 and RFC 9175; amp.c).
 *
 * Threading: everything runs on the shard's loop thread.
 */
#ifndef COAPHUB_COAP_COAP_H
#define COAPHUB_COAP_COAP_H

#include "core/loop.h"
#include "core/stats.h"
#include "core/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CoAP codes as (class << 5) | detail, e.g. COAP_CODE(2, 5) = 2.05 Content. */
#define COAP_CODE(c, d) ((uint8_t)(((c) << 5) | (d)))
enum {
    COAP_GET = 1,
    COAP_POST = 2,
    COAP_PUT = 3,
    COAP_DELETE = 4,
    COAP_FETCH = 5,
    COAP_PATCH = 6,
    COAP_IPATCH = 7,
};
#define COAP_CREATED COAP_CODE(2, 1)
#define COAP_DELETED COAP_CODE(2, 2)
#define COAP_VALID COAP_CODE(2, 3)
#define COAP_CHANGED COAP_CODE(2, 4)
#define COAP_CONTENT COAP_CODE(2, 5)
#define COAP_BAD_REQUEST COAP_CODE(4, 0)
#define COAP_UNAUTHORIZED COAP_CODE(4, 1)
#define COAP_BAD_OPTION COAP_CODE(4, 2)
#define COAP_NOT_FOUND COAP_CODE(4, 4)
#define COAP_METHOD_NOT_ALLOWED COAP_CODE(4, 5)
#define COAP_REQUEST_ENTITY_INCOMPLETE COAP_CODE(4, 8)
#define COAP_REQUEST_ENTITY_TOO_LARGE COAP_CODE(4, 13)
#define COAP_TOO_MANY_REQUESTS COAP_CODE(4, 29) /* RFC 8516 */
#define COAP_INTERNAL_SERVER_ERROR COAP_CODE(5, 0)
#define COAP_SERVICE_UNAVAILABLE COAP_CODE(5, 3)
#define COAP_GATEWAY_TIMEOUT COAP_CODE(5, 4)

#define COAP_CF_NONE (-1) /* no Content-Format option */
#define COAP_CF_TEXT 0
#define COAP_CF_OCTET 42
#define COAP_CF_JSON 50

/* Caps on the request view (compile-time; a request with more is answered 4.00 or 4.02). */
#define COAP_MAX_PATH_SEGS 16
#define COAP_MAX_QUERY_ITEMS 16

typedef struct coap_slice {
    const uint8_t *p;
    size_t len;
} coap_slice_t;

typedef struct coap_engine coap_engine_t;
typedef struct coap_exchange coap_exchange_t;
typedef struct coap_observer coap_observer_t;

/* The parsed request handed to the application. Views borrow from engine memory and are
 * valid only during on_request; copy what you keep. */
typedef struct coap_request {
    uint8_t method;   /* COAP_GET, COAP_POST, ... */
    bool confirmable; /* CON (true) or NON (false) */
    transport_peer_t *peer;
    coap_slice_t token; /* 0..8 bytes */
    /* Uri-Path segments. When the request carried exactly one Uri-Path option it is split
     * on '/' with a leading '/' dropped (ThingsBoard does this; spec §1.1). */
    coap_slice_t path[COAP_MAX_PATH_SEGS];
    size_t n_path;
    coap_slice_t query[COAP_MAX_QUERY_ITEMS]; /* Uri-Query options, as sent ("k=v") */
    size_t n_query;
    bool has_observe;
    uint32_t observe;     /* 0 = register, 1 = deregister (RFC 7641 §2) */
    int content_format;   /* COAP_CF_NONE if absent */
    int accept;           /* COAP_CF_NONE if absent */
    coap_slice_t payload; /* whole body (Block1 already reassembled); in ops.admit only this
                           * datagram's payload */
    /* Whom the request acts for, as ops.admit named it (0 = nobody, e.g. provisioning): the
     * engine only uses it to count Block1 transfers per owner (cfg.block1_per_owner). */
    uint64_t owner;
    uint64_t owner_seq; /* also the admission hook's, set with owner; the engine ignores it */
} coap_request_t;

typedef enum {
    COAP_OBS_END_DEREGISTERED, /* GET with Observe=1 and the same token */
    COAP_OBS_END_REPLACED,     /* a new registration from the same peer with the same token */
    COAP_OBS_END_RESET,        /* the client answered a notification with RST */
    COAP_OBS_END_TIMEOUT,      /* a CON notification was never acknowledged */
    COAP_OBS_END_CANCELLED,    /* the application called coap_observer_cancel() */
    COAP_OBS_END_PEER_CLOSED,  /* the transport closed the peer, or the engine is freed */
} coap_obs_end_t;

typedef struct coap_engine_ops {
    /* Optional: admission of a new request (never a duplicate), before the engine keeps any
     * state for it — Block1 reassembly, a new observation, Block2 follow-ups from the cache —
     * so that a request which is refused (unknown credentials, rate limit) costs no memory.
     * (Observe deregistration and replacement, which only free state, come before it.)
     * req->payload is this datagram's only. Returns 0 to go on (req->owner may be set), or
     * the code to answer with at once (the hook may call coap_exchange_set_max_age(x) first;
     * it must not respond itself). */
    uint8_t (*admit)(void *app, coap_exchange_t *x, coap_request_t *req);
    /* A new request. The application must answer it exactly once with
     * coap_exchange_respond(), now or later. Duplicates never reach here. */
    void (*on_request)(void *app, coap_exchange_t *x, const coap_request_t *req);
    /* An observation accepted with coap_exchange_observe() has ended; obs is freed after this
     * returns. Not called for an observation whose registration response was never sent. */
    void (*on_observe_end)(void *app, coap_observer_t *obs, void *obs_data, coap_obs_end_t why);
    /* Optional: a CON notification sent with a non-NULL cookie was acknowledged (acked=true)
     * or given up (false). Used for RPC delivery status. */
    void (*on_notify_result)(void *app, void *obs_data, void *cookie, bool acked);
    /* Optional (both or neither): observations that survive a restart with their transport
     * session (the sink's save/restored hooks, src/dtls/saved.c). save: describe what obs
     * observes in at most cap bytes of out (the engine keeps token, type, Observe number and
     * resource key itself); 0 = do not keep it. restore: a relation described so came back
     * on a restored peer, live, with its Observe numbers continuing: return its obs_data
     * (as coap_exchange_observe would have been given), or NULL to drop it silently. */
    size_t (*on_observer_save)(void *app, coap_observer_t *obs, void *obs_data, uint8_t *out,
                               size_t cap);
    void *(*on_observer_restore)(void *app, coap_observer_t *obs, const uint8_t *desc, size_t len);
} coap_engine_ops_t;

typedef struct coap_engine_cfg {
    int piggyback_ms;         /* wait this long for an answer before an empty ACK (default 500) */
    int ack_timeout_ms;       /* RFC 7252 ACK_TIMEOUT (default 2000) */
    double ack_random_factor; /* default 1.5 */
    int max_retransmit;       /* default 4 */
    int exchange_lifetime_ms; /* dedup window (default 247000) */
    size_t max_body;   /* Block1 reassembly cap in bytes; larger -> 4.13 + Size1 (default 262144) */
    size_t block_size; /* preferred Block2 size: 16..1024 (default 1024) */
    int max_non_notifications; /* at most this many NON notifications before a CON (default 5) */
    size_t max_dedup_entries;  /* cap per engine on (peer, MID) entries and their cached
                                * responses; beyond it the oldest is dropped (default 100000) */
    size_t max_pending_con_per_peer; /* cap on outstanding CONs per peer (default 64) */
    size_t observers_per_addr;       /* observations from one source address (IPv4 / IPv6 /64, all
                                * ports): a registration beyond it is answered without
                                * Observe (RFC 7641 §4.1); 0 = no cap (the default: a fleet
                                * behind one NAT observes from one address) */
    /* Block1 reassembly caps (besides COAP_MAX_BLOCK_STATES_PER_PEER, where a new transfer
     * evicts the peer's oldest). 0 = no cap. */
    size_t block1_per_addr;  /* transfers from one source address (IPv4 / IPv6 /64, all
                              * ports): a new one beyond it gets 5.03 + Max-Age (default 16) */
    size_t block1_per_owner; /* transfers of one req.owner: a new one evicts its least
                              * recently active one (default 4) */
    size_t block_mem_cap;    /* engine-wide bytes of Block1 bodies and Block2 caches: a new
                              * transfer beyond it gets 5.03 + Max-Age (default 16 MiB) */
    int block_lifetime_ms;   /* an idle block-wise state is freed after this; 0 = the default
                              * min(COAP_BLOCKWISE_LIFETIME_MS, exchange_lifetime_ms) */
    /* Amplification guard (RFC 7252 §11.3, RFC 9175, RFC 7641 §7; amp.c): a reply to a plain
     * UDP address that has not proven it receives at its claimed address is at most
     * amp_factor times the bytes of the request that caused it (0 = no guard; default 3). */
    int amp_factor;
    size_t amp_verified_max; /* addresses remembered as proven (LRU; default 10000) */
    /* How long an address stays verified after its last proof (an Echo value we issued to
     * it, an ACK/RST of a CON we sent it; default 600000). NAT bindings of a real device
     * last minutes, so not much longer than one; sleepy devices may want more. */
    int amp_verified_ms;
} coap_engine_cfg_t;

/* Fills cfg with the defaults above. */
void coap_engine_cfg_default(coap_engine_cfg_t *cfg);

/* Stateless Echo values (RFC 9175) that bind an address: the engine puts make's value in
 * replies it had to shorten for an unverified plain-UDP address, and an address whose request
 * carries a value check accepts counts as verified (amp.c). The engine links no crypto, so
 * the application provides both (src/udp/proof.c: HMAC-SHA256 under a rotating secret).
 * make returns the value's length (1..COAP_ECHO_MAX) or 0 for none. */
#define COAP_ECHO_MAX 40
typedef struct coap_echo_ops {
    size_t (*make)(void *ctx, const transport_peer_t *peer, int64_t now_ms, uint8_t *out,
                   size_t cap);
    bool (*check)(void *ctx, const transport_peer_t *peer, int64_t now_ms, const uint8_t *v,
                  size_t len);
    void *ctx;
} coap_echo_ops_t;

/* Creates an engine on loop. ops is copied; app is passed to every callback. */
coap_engine_t *coap_engine_new(loop_t *loop, const coap_engine_cfg_t *cfg,
                               const coap_engine_ops_t *ops, void *app);
/* Ends every observation (on_observe_end with PEER_CLOSED), drops all state and frees.
 * Pending exchanges stay valid objects until the application responds to them (the response
 * is then discarded and the exchange freed). coap_engine_free(NULL) does nothing. */
void coap_engine_free(coap_engine_t *e);

/* Installs the Echo provider (copied; NULL removes it). Without one, addresses are verified
 * only by acknowledging a confirmable message. Loop thread. */
void coap_engine_set_echo(coap_engine_t *e, const coap_echo_ops_t *echo);

/* Has the address of peer (plain UDP) proven that it receives at its address (an Echo value
 * or an acknowledged CON within cfg.amp_verified_ms)? For tests and the guard. */
bool coap_engine_addr_verified(coap_engine_t *e, const transport_peer_t *peer);

/* A request datagram from peer was larger than the transport's buffer: p holds its first
 * len bytes, full_len is its true size. A request whose header and token are there is
 * answered 4.13 Request Entity Too Large (RFC 7252 §5.9.2.9) with Size1 = cfg.max_body and
 * a Block1 option suggesting block-wise transfer at cfg.block_size (RFC 7959 §2.9.3); the
 * answer is stateless (no dedup entry: a retransmission gets the same answer). Anything
 * else is dropped. Counted in stats.oversize. */
void coap_engine_input_oversize(coap_engine_t *e, transport_peer_t *peer, const uint8_t *p,
                                size_t len, size_t full_len);

/* Feeds one datagram received from peer. Malformed input is counted and answered as RFC 7252
 * says (RST, 4.00, 4.02) or ignored; it never fails. May call ops before returning. */
void coap_engine_input(coap_engine_t *e, transport_peer_t *peer, const uint8_t *p, size_t len);

/* The transport closed peer: ends its observations (PEER_CLOSED), drops its retransmissions
 * and deduplication entries, and releases the engine's references to it. */
void coap_engine_peer_closed(coap_engine_t *e, transport_peer_t *peer);

/* The sink a transport delivers to so that its datagrams reach e (coap_engine_input and
 * coap_engine_peer_closed behind core/transport.h's interface). src/app wires it. */
transport_sink_t coap_engine_sink(coap_engine_t *e);

/* Answers the request. code is a COAP_CODE; content_format COAP_CF_NONE for none. The payload
 * is copied. Must be called exactly once per exchange, from the loop thread; the exchange is
 * invalid afterwards. If the peer has gone meanwhile, the answer is dropped silently. */
void coap_exchange_respond(coap_exchange_t *x, uint8_t code, int content_format,
                           const uint8_t *payload, size_t len);

/* For a handler that serves a large representation one block at a time (RFC 7959 §2.4)
 * instead of handing the engine the whole body: the block the client asks for. That is its
 * Block2 option (number, and the smaller of its size and the engine's block size: §2.4 lets
 * the server pick a smaller one), or block 0 of the engine's block size when it sent none.
 * *offset = num * size. Loop thread. */
void coap_exchange_block2(const coap_exchange_t *x, uint32_t *num, size_t *size, uint64_t *offset);

/* Answers x with one block of a representation of total bytes: payload holds the bytes
 * [offset, offset + len) for the offset of coap_exchange_block2, len <= its size (shorter
 * only for the last block). The answer carries Block2 (M set while more follows; left out
 * when the whole representation fits in this block and the client sent no Block2), Size2 =
 * total on block 0 (RFC 7959 §4), and ETag etag (1..8 bytes; NULL/0 for none) so a client
 * can tell that the representation changed between its block requests. Nothing is cached:
 * each block request reaches the application again. A code other than 2.xx is answered as
 * coap_exchange_respond would. Same rules as coap_exchange_respond otherwise. */
void coap_exchange_respond_block(coap_exchange_t *x, uint8_t code, int content_format,
                                 const uint8_t *payload, size_t len, uint64_t total,
                                 const uint8_t *etag, size_t etag_len);

/* Adds a Max-Age option (RFC 7252 §5.10.5) of `seconds` to the answer of x; call before
 * coap_exchange_respond(). With 5.03 Service Unavailable it tells the client after how many
 * seconds to retry (§5.9.3.4); without the option a client assumes 60. Loop thread. */
void coap_exchange_set_max_age(coap_exchange_t *x, uint32_t seconds);

/* Turns a GET exchange into an observation (RFC 7641). Call before coap_exchange_respond();
 * the response then carries Observe=0 (the first of this relation's 24-bit sequence) if it is
 * a 2.xx, and the relation becomes live once it is sent. If the response is not 2.xx the
 * relation is dropped without on_observe_end. Returns NULL when the per-peer cap or
 * cfg.observers_per_addr is reached (the response is then sent without Observe; counted in
 * stats.observe_refused_*). obs_data is the application's. */
coap_observer_t *coap_exchange_observe(coap_exchange_t *x, void *obs_data);

/* The peer a live exchange came from (for the application's bookkeeping). */
transport_peer_t *coap_exchange_peer(const coap_exchange_t *x);

/* Sends a notification on a live relation: same token, Observe = next sequence number,
 * CON or NON like the registration (with a CON at least every max_non_notifications).
 * cookie, if not NULL, is reported through on_notify_result when the notification is sent as
 * CON and then acknowledged or given up; for a NON notification on_notify_result is called
 * with acked=true right away. Returns 0, or -EAGAIN if the peer's CON queue is full. */
int coap_observer_notify(coap_observer_t *obs, uint8_t code, int content_format,
                         const uint8_t *payload, size_t len, void *cookie);

/* Ends a relation from the server side by sending a final response with code (e.g. 2.02
 * Deleted, no Observe option, same token), then on_observe_end(CANCELLED) is called. */
void coap_observer_cancel(coap_observer_t *obs, uint8_t code);

/* The peer of a live relation. */
transport_peer_t *coap_observer_peer(const coap_observer_t *obs);

/* Counters for metrics and tests (core/stats.h: field, /metrics family, type, labels, help). */
#define COAP_ENGINE_STATS(X)                                                                       \
    X(requests, "coap_requests_total", "counter", NULL, "CoAP requests handed to the device API.") \
    X(duplicates, "coap_duplicates_total", "counter", NULL,                                        \
      "Duplicate CoAP messages answered from cache.")                                              \
    X(malformed, "coap_malformed_total", "counter", NULL, "Malformed CoAP datagrams.")             \
    X(retransmissions, "coap_retransmissions_total", "counter", NULL,                              \
      "Confirmable messages we resent.")                                                           \
    X(con_timeouts, "coap_con_timeouts_total", "counter", NULL,                                    \
      "Confirmable messages never acknowledged.")                                                  \
    X(resets, "coap_resets_total", "counter", NULL, "RST messages received.")                      \
    X(block1_evicted_peer, "coap_block1_evicted_total", "counter", "{cap=\"peer\"}",               \
      "Block1 transfers dropped for a newer one of the same peer or device.")                      \
    X(block1_evicted_owner, "coap_block1_evicted_total", "counter", "{cap=\"device\"}", NULL)      \
    X(block1_refused_addr, "coap_block1_refused_total", "counter", "{cap=\"address\"}",            \
      "New Block1 transfers answered 5.03 because a cap was reached.")                             \
    X(block1_refused_mem, "coap_block1_refused_total", "counter", "{cap=\"memory\"}", NULL)        \
    X(block1_expired, "coap_block1_expired_total", "counter", NULL,                                \
      "Block1 transfers abandoned and freed after the block-wise lifetime.")                       \
    X(block_mem, "coap_block_memory_bytes", "gauge", NULL,                                         \
      "Bytes held by Block1 reassembly and Block2 caches (cap: --coap-block-memory).")             \
    X(oversize, "coap_oversize_requests_total", "counter", NULL,                                   \
      "Datagrams larger than the receive buffer (requests among them answered 4.13).")             \
    X(dedup_entries, "coap_dedup_entries", "gauge", NULL,                                          \
      "Deduplication entries held (cap: --coap-dedup-entries).")                                   \
    X(dedup_evicted, "coap_dedup_evicted_total", "counter", NULL,                                  \
      "Deduplication entries dropped before EXCHANGE_LIFETIME because the cap was reached.")       \
    X(amp_block2, "coap_amplification_limited_total", "counter", "{action=\"block2\"}",            \
      "Replies to unverified plain-UDP addresses shortened to the amplification limit.")           \
    X(amp_trim, "coap_amplification_limited_total", "counter", "{action=\"trim\"}", NULL)          \
    X(amp_echo, "coap_amplification_limited_total", "counter", "{action=\"echo_401\"}", NULL)      \
    X(amp_drop, "coap_amplification_limited_total", "counter", "{action=\"drop\"}", NULL)          \
    X(amp_verified_echo, "coap_amplification_verified_total", "counter", "{by=\"echo\"}",          \
      "Plain-UDP addresses that proved reachability.")                                             \
    X(amp_verified_ack, "coap_amplification_verified_total", "counter", "{by=\"ack\"}", NULL)      \
    X(amp_verified, "coap_amplification_verified_addresses", "gauge", NULL,                        \
      "Plain-UDP addresses currently verified (cap: --coap-verified-addresses).")                  \
    X(observers, "observe_relations", "gauge", NULL, "Live CoAP observations.")                    \
    X(observe_refused_peer, "coap_observe_refused_total", "counter", "{cap=\"peer\"}",             \
      "Observe registrations answered without Observe because a cap was reached.")                 \
    X(observe_refused_addr, "coap_observe_refused_total", "counter", "{cap=\"address\"}", NULL)    \
    X(notifications, "observe_notifications_total", "counter", NULL, "Observe notifications sent.")
typedef struct coap_engine_stats {
    COAP_ENGINE_STATS(STATS_FIELD)
} coap_engine_stats_t;
void coap_engine_get_stats(const coap_engine_t *e, coap_engine_stats_t *out);

#endif
