/* coap_int.h — private structures and calls shared by the files of src/coap.
 *
 * Layers, top to bottom; a file calls only files below it:
 *   engine.c    the public API: input stages, exchanges, answers, peer drop
 *   observe.c   RFC 7641 relations and notifications
 *   blockwise.c RFC 7959 input stages (Block1 reassembly, Block2 follow-ups)
 *   response.c  building and sending an answer (type, MID, options, Block2 slicing)
 *   session.c   a peer's lifetime, dedup by (peer, MID), CONs and retransmission, gc
 *   bstate.c    block-wise bodies held per peer
 *   pdu.c option.c block.c   the codec (pdu.h)
 *
 * Ownership: the engine keeps one coap_peer_t per transport peer that has state (hung on
 * transport_peer_t.engine_state, holding one transport reference). A coap_peer_t lives while
 * it has dedup entries, outstanding CONs, observers, pending exchanges or block-wise state,
 * and while an input is being processed (hold > 0); coap__peer_maybe_release() frees it
 * otherwise. Exchanges point at their peer; when the peer or the engine goes first, the
 * exchange is orphaned (ps = NULL) and only waits for coap_exchange_respond() to free it.
 */
#ifndef COAPHUB_COAP_COAP_INT_H
#define COAPHUB_COAP_COAP_INT_H

#include "coap/coap.h"
#include "coap/pdu.h"
#include "core/htab.h"
#include "core/sockaddr.h"

#include <sys/types.h>

/* Observers one peer may hold (RFC 7641 §7: observers consume state, so cap them). */
#define COAP_MAX_OBSERVERS_PER_PEER 64
/* Block-wise state lifetime (Californium BLOCKWISE_STATUS_LIFETIME, spec §1.3), further
 * bounded by exchange_lifetime_ms so abandoned transfers are freed within EXCHANGE_LIFETIME;
 * cfg.block_lifetime_ms overrides both. */
#define COAP_BLOCKWISE_LIFETIME_MS 300000
/* Block1 reassemblies and Block2 caches one peer may hold at once; older ones are evicted. */
#define COAP_MAX_BLOCK_STATES_PER_PEER 4
/* Default of cfg.block_mem_cap, the engine-wide bytes held by Block1 reassembly and Block2
 * caches: 16 MiB, i.e. 256 bodies at a 64 KiB cap (64 at the default 256 KiB). Beyond it new
 * transfers get 5.03. */
#define COAP_BLOCK_MEM_CAP (16u * 1024u * 1024u)
/* Slots the (peer, MID) dedup index starts with: max_dedup_entries, at most this many, so a
 * full cache never waits for the table to double (core/htab keeps chains ~1 entry long; a
 * fixed 4096 buckets once gave 25-entry chains at the default cap of 100000 and the lookup
 * was 11 % of server CPU at 1000 devices, performance pass 1 in docs/BENCHMARKS.md). */
#define COAP_DEDUP_SLOTS_MAX (1u << 20)
/* NO ALLOCATION ON THE STEADY PATH (issue #5). A request answered with a small piggybacked
 * response allocates nothing: the response is built on the stack and replayed for duplicates
 * from the dedup entry's inline buffer, the request key sits in the exchange, and dedup
 * entries and exchanges come from the engine's spare lists (an entry evicted at the cap is
 * the next one added). The lists are capped, so a burst's extra memory goes back to malloc. */
#define COAP_DEDUP_INLINE_RESP 32   /* ACK + 8-byte token + a few options */
#define COAP_EXCHANGE_INLINE_KEY 96 /* method + Uri-Path/Uri-Query of a usual request */
#define COAP_SPARE_DEDUPS 512       /* at the cap an evicted entry is reused at once */
#define COAP_SPARE_EXCHANGES 2048   /* requests waiting for a store commit, ~250 B each */
/* RFC 7641 §4.5: send a CON notification at least every 24 hours. */
#define COAP_OBS_CON_EVERY_MS (24LL * 3600 * 1000)
/* NON notifications a relation remembers (MID, time) so that a client's RST to one of them
 * ends it (RFC 7641 §3.6); at most max_non_notifications go out between CONs, so 8 covers
 * the default 5. An RST to an older one is ignored; the next CON finds the client gone. */
#define COAP_OBS_NON_MIDS 8

typedef struct coap_peer coap_peer_t;

/* A doubly linked list node embedded in its owner. */
typedef struct coap_link {
    struct coap_link *prev, *next;
} coap_link_t;

#define COAP_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void coap_list_init(coap_link_t *h)
{
    h->prev = h->next = h;
}
static inline bool coap_list_empty(const coap_link_t *h)
{
    return h->next == h;
}
static inline void coap_list_push(coap_link_t *h, coap_link_t *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void coap_list_del(coap_link_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* One remembered (peer, MID) of a request (RFC 7252 §4.5). */
typedef struct coap_dedup {
    coap_link_t peer_link;   /* in coap_peer_t.dedup */
    htab_link_t hash_link;   /* in coap_engine.dedup_by_mid, keyed by (peer, MID) */
    coap_link_t engine_link; /* in coap_engine.dedup, oldest first = soonest to expire */
    coap_peer_t *ps;
    uint16_t mid;
    bool con;
    bool acked; /* an empty ACK went out: duplicates get it again */
    int64_t expires_ms;
    struct coap_exchange *x; /* pending exchange, or NULL */
    uint8_t *resp;           /* piggybacked response bytes to replay, or NULL; resp_inline
                              * or the heap (a longer response) */
    size_t resp_len;
    uint8_t resp_inline[COAP_DEDUP_INLINE_RESP];
} coap_dedup_t;

/* An outgoing CON (separate response, notification, final cancel) awaiting its ACK. */
typedef struct coap_con {
    coap_link_t link; /* in coap_peer_t.cons */
    coap_peer_t *ps;
    uint16_t mid;
    uint8_t *buf;
    size_t len;
    loop_timer_t timer;
    int retries;
    int64_t timeout_ms;
    coap_observer_t *obs; /* notification of this relation, or NULL */
    void *cookie;
    /* Called instead of coap__con_free when the CON is acknowledged (acked), reset (reset) or
     * given up (neither); it must free c. NULL: just free it. */
    void (*done)(struct coap_con *c, bool acked, bool reset);
} coap_con_t;

/* A queued notification waiting for the relation's in-flight CON. */
typedef struct coap_notif {
    coap_link_t link;
    uint8_t code;
    int cf;
    uint8_t *payload;
    size_t len;
    void *cookie;
} coap_notif_t;

struct coap_observer {
    coap_link_t link; /* in coap_peer_t.observers when live */
    coap_peer_t *ps;
    uint8_t token[COAP_TOKEN_MAX];
    uint8_t tkl;
    bool con; /* the registration was CON */
    bool live;
    uint32_t seq; /* last Observe value sent */
    int non_count;
    int64_t last_con_ms;
    uint16_t non_mid[COAP_OBS_NON_MIDS]; /* the last NON notifications' MIDs, a ring */
    int64_t non_at[COAP_OBS_NON_MIDS];   /* when each went out (0: slot unused) */
    uint8_t non_next;
    void *data;
    coap_con_t *inflight;
    coap_link_t queue; /* coap_notif_t */
    uint8_t *key;      /* Block2 cache key of the resource */
    size_t key_len;
    size_t req_len; /* bytes of the registration: the amplification budget of a notification */
    struct coap_obs_addr *addr; /* its source address's count (cfg.observers_per_addr), or NULL */
};

/* The observations (live and pending registrations) of one source address, IPv4 or IPv6 /64
 * with all its ports, for cfg.observers_per_addr; exists while it counts at least one. The
 * relation keeps the group it joined, so a rebinding (DTLS CID) does not move its count. */
typedef struct coap_obs_addr {
    htab_link_t link; /* in coap_engine.obs_addrs */
    size_t n;
    uint8_t key_len;
    uint8_t key[SOCKADDR_PREFIX_KEY_MAX];
} coap_obs_addr_t;

struct coap_exchange {
    coap_link_t link; /* in coap_peer_t.exchanges */
    coap_engine_t *e; /* NULL once orphaned */
    coap_peer_t *ps;  /* NULL once orphaned */
    coap_dedup_t *d;  /* may be NULL (evicted) */
    uint8_t method;
    bool con;
    bool acked; /* empty ACK already sent: the answer goes as a separate CON */
    uint16_t mid;
    uint8_t token[COAP_TOKEN_MAX];
    uint8_t tkl;
    loop_timer_t piggy_timer;
    coap_observer_t *obs; /* registration pending until the response */
    bool has_block1;
    coap_block_t block1; /* echoed in the response */
    bool has_block2;
    coap_block_t block2; /* client's Block2 request */
    uint32_t size1;      /* > 0: add Size1 (4.13) */
    bool has_max_age;    /* add Max-Age = max_age (coap_exchange_set_max_age) */
    uint32_t max_age;
    bool block_ext; /* coap_exchange_respond_block: the payload is one block of block_total */
    uint64_t block_total;
    uint8_t etag[8]; /* ETag option (RFC 7252 §5.10.6) when etag_len > 0 */
    uint8_t etag_len;
    uint8_t *key; /* method + Uri-Path + Uri-Query, for Block2 caching: key_inline
                          * or the heap (a longer key) */
    size_t key_len;
    size_t req_len;                   /* bytes of the request datagram */
    size_t amp_budget;                /* > 0: the answer may be at most this many bytes (amp.c) */
    bool internal;                    /* the engine answers it itself (no app) */
    struct coap_exchange *next_spare; /* in coap_engine.spare_x while unused */
    uint8_t key_inline[COAP_EXCHANGE_INLINE_KEY];
};

/* The Block1 transfers of one source address (COAP_BGROUP_ADDR) or one owner
 * (COAP_BGROUP_OWNER), for their caps; exists while it counts at least one. */
enum { COAP_BGROUP_ADDR = 0, COAP_BGROUP_OWNER = 1 };
typedef struct coap_bgroup {
    htab_link_t link;   /* in coap_engine.bgroups */
    coap_link_t states; /* coap_bstate_t.grp_link[kind], least recently active first */
    size_t n;
    uint8_t key_len;
    uint8_t key[12]; /* kind byte, then the address prefix or the owner */
} coap_bgroup_t;

/* Block1 reassembly or Block2 cached body. */
typedef struct coap_bstate {
    coap_link_t link;
    coap_link_t lru_link;  /* in coap_engine.block_lru, least recently active first */
    coap_bgroup_t *grp[2]; /* Block1: its address and owner groups (NULL: none) */
    coap_link_t grp_link[2];
    uint8_t *key;
    size_t key_len;
    uint8_t *body;
    size_t len;
    int64_t expires_ms;
    uint8_t code; /* Block2 cache: the response code and Content-Format */
    int cf;
    uint8_t szx; /* Block1: the block size the client uses */
} coap_bstate_t;

struct coap_peer {
    coap_link_t link; /* in coap_engine.peers */
    coap_engine_t *e;
    transport_peer_t *tp;
    int hold;
    bool closing;
    coap_link_t dedup, cons, observers, exchanges, block1, block2;
    size_t n_pending; /* cons in flight + queued notifications */
    size_t n_observers;
};

struct coap_engine {
    loop_t *loop;
    coap_engine_cfg_t cfg;
    coap_engine_ops_t ops;
    void *app;
    coap_engine_stats_t stats;
    coap_link_t peers;
    coap_link_t dedup;
    htab_t dedup_by_mid; /* coap_dedup_t by (peer, MID) (session.c) */
    size_t n_dedup;
    size_t block_mem;
    coap_link_t block_lru; /* every coap_bstate_t, least recently active (soonest expiry) first */
    htab_t bgroups;        /* coap_bgroup_t by kind + key */
    htab_t obs_addrs;      /* coap_obs_addr_t by address prefix key (observe.c) */
    uint16_t next_mid;
    uint64_t rng;
    loop_timer_t gc_timer;
    coap_dedup_t *spare_d;         /* unused dedup entries, linked through .x */
    struct coap_exchange *spare_x; /* unused exchanges */
    size_t n_spare_d, n_spare_x;
    coap_echo_ops_t echo; /* Echo values (amp.c); make == NULL: none */
    htab_t amp_addrs;     /* coap_amp_addr_t (amp.c): verified addresses */
    coap_link_t amp_lru;  /* the same, least recently verified first */
};

/* ---- session.c ---- */
/* Checks the engine's counters against its lists (n_dedup, block_mem, n_pending, observers);
 * ASSERTs on a mismatch. For tests and fuzzing; O(state). */
void coap__engine_validate(const coap_engine_t *e);
coap_peer_t *coap__peer_get(coap_engine_t *e, transport_peer_t *tp);
/* observe.c: the live relations of ps as bytes (format in observe.c), at most cap; 0 if
 * none fit. */
size_t coap__obs_save(coap_peer_t *ps, uint8_t *out, size_t cap);
/* Re-creates the relations coap__obs_save described, live on tp (hostile bytes are dropped). */
void coap__obs_restore(coap_engine_t *e, transport_peer_t *tp, const uint8_t *p, size_t len);
/* Frees ps unless something holds it or it still has state. */
void coap__peer_maybe_release(coap_peer_t *ps);
/* The lower half of a close (after coap__peer_drop ended observers and exchanges): drops the
 * CONs, dedup entries and block-wise state, and frees ps at its last release. */
void coap__peer_close(coap_peer_t *ps);
uint16_t coap__next_mid(coap_engine_t *e);
double coap__rand01(coap_engine_t *e);
void coap__send(coap_peer_t *ps, const uint8_t *p, size_t len);
void coap__send_empty(coap_peer_t *ps, uint8_t type, uint16_t mid);
/* The dedup entry of (ps, mid), or NULL; *hash is what coap__dedup_add needs for the same
 * pair (one keyed hash per request instead of two). */
coap_dedup_t *coap__dedup_find(coap_peer_t *ps, uint16_t mid, uint64_t *hash);
coap_dedup_t *coap__dedup_add(coap_peer_t *ps, uint16_t mid, bool con, uint64_t hash);
void coap__dedup_expire(coap_engine_t *e, int64_t now);
coap_con_t *coap__con_send(coap_peer_t *ps, uint16_t mid, uint8_t *buf, size_t len);
/* An ACK or RST for one of our CONs: completes it (its done callback, or a free). */
bool coap__con_match(coap_peer_t *ps, uint16_t mid, bool reset); /* false: no CON had mid */
bool coap__con_in_flight(const coap_peer_t *ps, uint16_t mid);   /* a CON of ours has mid */
void coap__con_free(coap_con_t *c);
void coap__gc_arm(coap_engine_t *e);
/* Frees the spare lists (engine teardown). */
void coap__spares_free(coap_engine_t *e);

/* ---- bstate.c ---- */
/* How long a block-wise entry lives: cfg.block_lifetime_ms, or by default
 * min(COAP_BLOCKWISE_LIFETIME_MS, exchange lifetime). */
int64_t coap__block_lifetime(const coap_engine_t *e);
/* Takes ownership of body. Replaces an entry with the same key, evicts the peer's oldest when
 * the per-peer count is reached. Returns NULL (and frees body) when the engine cap is hit. */
coap_bstate_t *coap__bstate_put(coap_peer_t *ps, coap_link_t *list, const uint8_t *key,
                                size_t key_len, uint8_t *body, size_t len);
/* Block1 caps before a new transfer of owner (0 = none) from ps under key: frees the entry
 * the transfer replaces, evicts the peer's oldest at COAP_MAX_BLOCK_STATES_PER_PEER and the
 * owner's least recently active at cfg.block1_per_owner; then returns 0 if a new transfer of
 * len bytes may start, or COAP_SERVICE_UNAVAILABLE with *retry_s (the Max-Age: seconds until
 * the blocking state expires) when the address cap or the memory cap is reached. */
uint8_t coap__block1_admit(coap_peer_t *ps, const uint8_t *key, size_t key_len, uint64_t owner,
                           size_t len, uint32_t *retry_s);
/* Counts a new Block1 entry b of owner (0 = none) in its address and owner groups. */
void coap__bstate_join(coap_peer_t *ps, coap_bstate_t *b, uint64_t owner);
/* b was active now: its expiry moves out by the lifetime and it goes to the back of the
 * engine's and its groups' least-recently-active lists. */
void coap__bstate_touch(coap_engine_t *e, coap_bstate_t *b);
/* Seconds (>= 1) until the engine's soonest block-wise state expires (the Max-Age of a 5.03
 * for the memory cap). */
uint32_t coap__block_retry_s(const coap_engine_t *e);
coap_bstate_t *coap__bstate_find(coap_link_t *list, const uint8_t *key, size_t key_len);
void coap__bstate_free(coap_engine_t *e, coap_bstate_t *b);
/* Frees the peer's expired entries (the caller then offers ps for release). */
void coap__bstate_expire(coap_peer_t *ps, int64_t now);

/* ---- response.c ---- */
/* Builds and sends the answer of x (ACK, separate CON or NON) with Block2 slicing; keeps the
 * piggybacked bytes in the dedup entry. with_observe: the answer opens a relation (Observe
 * option 0). Used by coap_exchange_respond. */
void coap__respond(coap_exchange_t *x, uint8_t code, int cf, const uint8_t *payload, size_t len,
                   bool with_observe);
/* Builds a response into *out when *out is a buffer of out_cap bytes that is big enough,
 * else into a new heap buffer (*out then points at it; the caller frees it). */
ssize_t coap__build(coap_exchange_t *x, uint8_t **out, size_t out_cap, uint8_t type, uint16_t mid,
                    uint8_t code, int cf, const uint8_t *payload, size_t len, bool with_observe,
                    uint32_t observe);

/* ---- blockwise.c ---- */
/* Block1 stage for an admitted request of owner (cfg.block1_per_owner): returns the code to
 * answer the request with here (2.31, 4.00, 4.08, 4.13, 5.03 with x's Max-Age set), or 0 when
 * it goes on; then *body and *body_len hold the whole reassembled body (owned by the caller,
 * free()) or NULL for a request without Block1. */
uint8_t coap__block1_input(coap_exchange_t *x, const coap_pdu_t *pdu, uint64_t owner,
                           uint8_t **body, size_t *body_len);
/* Block2 follow-up stage: the cached body that answers x (num > 0 of an earlier GET), or
 * NULL. */
const coap_bstate_t *coap__block2_input(coap_exchange_t *x);

/* ---- observe.c ---- */
coap_observer_t *coap__obs_find(coap_peer_t *ps, const uint8_t *token, size_t tkl);
/* An RST that matched none of ps's CONs: if it answers one of its relations' recent NON
 * notifications, that relation ends (RESET). Returns whether one did. */
bool coap__obs_reset_non(coap_peer_t *ps, uint16_t mid);
void coap__obs_end(coap_observer_t *obs, coap_obs_end_t why);
void coap__obs_free_pending(coap_observer_t *obs);
void coap__obs_activate(coap_observer_t *obs);

/* ---- amp.c ---- */
/* The byte budget of a reply to a request of req_len bytes from ps: 0 when the guard does
 * not apply (factor 0, DTLS, a verified address), else amp_factor * req_len. */
size_t coap__amp_budget(coap_peer_t *ps, size_t req_len);
/* ps proved it receives at its address (by_echo: an Echo value; else an ACK/RST of our
 * CON): remembered for cfg.amp_verified_ms. */
void coap__amp_proven(coap_peer_t *ps, bool by_echo);
/* Echo option stage: a request carrying an Echo value we issued to its address verifies it. */
void coap__amp_echo_input(coap_peer_t *ps, const coap_pdu_t *pdu);
/* The Echo value for ps into out (COAP_ECHO_MAX bytes); 0 if there is no provider. */
size_t coap__amp_echo_make(coap_peer_t *ps, uint8_t *out);
/* The MID of a CON to ps: unpredictable while ps is unverified (its ACK is then a proof),
 * the engine's counter otherwise. */
uint16_t coap__amp_con_mid(coap_peer_t *ps);
/* The largest SZX whose block fits the budget of x next to the options an answer may carry
 * (for handlers that slice themselves, coap_exchange_respond_block); -1: no budget. */
int coap__amp_ext_szx(const coap_exchange_t *x);
void coap__amp_fini(coap_engine_t *e);

/* ---- engine.c ---- */
coap_exchange_t *coap__exchange_new(coap_peer_t *ps, const coap_pdu_t *pdu, coap_dedup_t *d);
void coap__exchange_free(coap_exchange_t *x);
void coap__exchange_orphan(coap_exchange_t *x);
/* Closes the peer: ends its observers (PEER_CLOSED) and orphans its exchanges, then
 * coap__peer_close. The only way a peer closes (transport close, engine free). */
void coap__peer_drop(coap_peer_t *ps);

#endif
