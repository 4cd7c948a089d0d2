/* dtls_int.h — private declarations shared by the files of src/dtls (not for other modules).
 *
 * Split: endpoint.c owns the SSL_CTX and the verify policy; cookie.c the stateless
 * HelloVerifyRequest (record pre-filter + HMAC cookie); bio.c the datagram BIO that serves the
 * datagram the loop just received and writes straight to the socket; peer.c the per-peer SSL
 * state machine; listener.c the socket, dispatch, caps and timers; ptab.c the peer tables
 * (by address and by age); admit.c the handshakes in progress per source address; record.c
 * the compact DTLS 1.2 AEAD record layer (keys, seal/open, replay window); compact.c
 * established sessions that run on it after their SSL is freed; pool.c the storage of
 * dtls_peer_t. RFC 9146 Connection ID runs through the same files: the extension in
 * endpoint.c, tls12_cid records in record.c, their conversion for OpenSSL and the address
 * move in compact.c and peer.c, the CID table in ptab.c, routing in listener.c; saved.c the
 * saved-sessions file and the table of sessions restored from it (a leaf: data and crypto of
 * its own, no peers).
 *
 * Calls go one way: listener.c -> peer.c -> compact.c -> record.c, and each of those may use
 * the leaf files (ptab.c, admit.c, pool.c, bio.c, cookie.c, endpoint.c). A file never calls
 * a file above it: compact.c tells peer.c what to do with a session (dtls_compact_verdict_t)
 * instead of closing it itself.
 */
#ifndef COAPHUB_DTLS_DTLS_INT_H
#define COAPHUB_DTLS_DTLS_INT_H

#include "dtls/dtls.h"

#include "core/htab.h"
#include "core/outq.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ---- endpoint.c --------------------------------------------------------------------------- */

/* The current SSL_CTX with a reference taken (the caller SSL_CTX_free()s it) and its
 * generation, which changes on every reload. Any thread. */
SSL_CTX *dtls__ctx_acquire(dtls_ctx_t *ctx, unsigned *gen);
/* Generation of the current SSL_CTX (cheap atomic read). */
unsigned dtls__ctx_gen(dtls_ctx_t *ctx);
/* The device a client's certificates (leaf first, DER) name, through cfg.identify; 0 for
 * none. */
int64_t dtls__ctx_identify(dtls_ctx_t *ctx, const uint8_t *const *der, const size_t *len, size_t n);
/* The device a PSK identity (NUL-terminated) names, through cfg.psk_find; 0 for none. */
int64_t dtls__ctx_identify_psk(dtls_ctx_t *ctx, const char *identity);
/* Sessions in the context's resumption store (by session id; endpoint.c). */
size_t dtls__ctx_sessions_stored(dtls_ctx_t *ctx);
typedef struct dtls_restore dtls_restore_t;
/* The table of sessions restored from a previous run (saved.c), never NULL. */
dtls_restore_t *dtls__ctx_restore(dtls_ctx_t *ctx);

/* The client-certificate policy as a pure function (unit-tested): preverify_ok and err are
 * OpenSSL's verdict for the certificate at depth (0 = leaf). Returns 1 to go on, 0 to fail the
 * handshake. Only the leaf's validity dates can fail it (unless skip_validity); issuer, trust
 * and chain errors are accepted because identity comes from the registry, not from a CA. */
int dtls__verify_policy(int preverify_ok, int err, int depth, bool skip_validity);
/* False if key is an RSA key shorter than min_rsa_bits (0: any size). */
bool dtls__rsa_key_ok(const EVP_PKEY *key, int min_rsa_bits);
/* The SSL_CTX verify callback applying dtls__rsa_key_ok to the leaf, then
 * dtls__verify_policy. */
int dtls__verify_cb(int preverify_ok, X509_STORE_CTX *xs);

/* ---- cookie.c ----------------------------------------------------------------------------- */

enum { DTLS_COOKIE_LEN = 32, DTLS_COOKIE_SECRET_LEN = 32 };
/* The secret rotates this often; a cookie made with the previous secret is still accepted,
 * so a cookie lives between one and two periods. */
#define DTLS_COOKIE_ROTATE_MS (5 * 60 * 1000)

typedef struct dtls_cookie {
    uint8_t cur[DTLS_COOKIE_SECRET_LEN];
    uint8_t prev[DTLS_COOKIE_SECRET_LEN];
    bool have_prev;
    int64_t rotated_ms;
    EVP_MAC *mac; /* HMAC, fetched once */
    uint64_t *cookies_sent, *cookies_bad; /* counters to bump (may be NULL) */
} dtls_cookie_t;

void dtls__cookie_init(dtls_cookie_t *c, int64_t now_ms);
void dtls__cookie_fini(dtls_cookie_t *c);
/* Rotates the secret if DTLS_COOKIE_ROTATE_MS passed since the last rotation. */
void dtls__cookie_tick(dtls_cookie_t *c, int64_t now_ms);
/* Forces a rotation now (tests). */
void dtls__cookie_rotate(dtls_cookie_t *c, int64_t now_ms);
/* Cookie for the peer address under the current secret. Returns 0 or -EINVAL. */
int dtls__cookie_make(const dtls_cookie_t *c, const struct sockaddr *a, socklen_t alen,
                      uint8_t out[static DTLS_COOKIE_LEN]);
/* True if cookie was made for this address with the current or the previous secret.
 * Constant-time in the cookie bytes. */
bool dtls__cookie_check(const dtls_cookie_t *c, const struct sockaddr *a, socklen_t alen,
                        const uint8_t *cookie, size_t len);

/* SSL_CTX cookie callbacks: they find the cookie state and peer address through the SSL's
 * read BIO (bio.c). */
int dtls__cookie_generate_cb(SSL *ssl, unsigned char *cookie, unsigned int *len);
int dtls__cookie_verify_cb(SSL *ssl, const unsigned char *cookie, unsigned int len);

typedef enum {
    DTLS_DG_DROP = 0,     /* not a DTLS 1.x record we would ever answer */
    DTLS_DG_CLIENT_HELLO, /* epoch-0 ClientHello, big enough to answer with a HelloVerify */
    DTLS_DG_RECORD,       /* some other plausible DTLS record */
    DTLS_DG_CID,          /* RFC 9146 tls12_cid record (routed by its CID) */
} dtls_dg_kind_t;
/* Record pre-filter: classifies a datagram from its first record header, without state. */
dtls_dg_kind_t dtls__classify(const uint8_t *p, size_t len);

/* ---- bio.c -------------------------------------------------------------------------------- */

typedef struct dtls_bio {
    int fd;                       /* the listener's socket; -1 drops writes (tests) */
    struct sockaddr_storage addr; /* where writes go, and the address cookies bind to */
    socklen_t addr_len;
    const uint8_t *in;            /* the datagram being fed; consumed by one read */
    size_t in_len;
    dtls_cookie_t *cookie;
    unsigned initial_timeout_us;  /* first handshake retransmission timeout */
    uint64_t *datagrams_out;      /* counter to bump (may be NULL) */
    /* One past the highest epoch-1 sequence number OpenSSL wrote through this BIO: where the
     * compact layer continues (OpenSSL 3.0 has no getter for DTLS sequence numbers). */
    uint64_t w_next_seq;
    bool w_epoch1; /* some epoch-1 record was written */
    /* RFC 9146, a client that wants its CID in our records: OpenSSL's epoch-1 records are
     * rewritten as tls12_cid records before they leave (compact.c). Returns the length of
     * the rewritten datagram in out, or 0 to send it as it is. NULL: never. */
    size_t (*w_rewrite)(void *arg, const uint8_t *in, size_t len, uint8_t *out, size_t cap);
    void *w_arg;
} dtls_bio_t;

/* A BIO whose state (returned by dtls__bio_state) the caller fills; freed with the BIO. */
BIO *dtls__bio_new(int fd, dtls_cookie_t *cookie, unsigned initial_timeout_us,
                   uint64_t *datagrams_out);
dtls_bio_t *dtls__bio_state(BIO *b);
/* The dtls_bio_t of an SSL using our BIO, or NULL. */
dtls_bio_t *dtls__ssl_bio(SSL *ssl);
/* Output packing on this thread (bio.c): between begin and end, handshake, CCS and alert
 * records to one address share datagrams of at most mtu - dtls__bio_overhead() bytes (mtu:
 * the link MTU); end sends what is pending. */
void dtls__bio_batch_begin(size_t mtu);
/* IP + UDP header bytes to that address (28 IPv4 or v4-mapped, 48 IPv6): the link MTU less
 * this is the largest DTLS datagram we send there. */
size_t dtls__bio_overhead(const struct sockaddr_storage *a);
void dtls__bio_batch_end(void);
/* DTLS_set_timer_cb callback: initial_timeout_us first, then doubling up to 60 s. */
unsigned int dtls__timer_cb(SSL *ssl, unsigned int timer_us);

/* ---- record.c: the compact DTLS 1.2 AEAD record layer -------------------------------------- */

/* The AEAD algorithms the compact layer implements (RFC 5288 GCM, RFC 6655 CCM and CCM_8,
 * RFC 7905 ChaCha20-Poly1305). Any other negotiated suite keeps OpenSSL's record layer. */
typedef enum {
    DTLS_AEAD_NONE = 0,
    DTLS_AEAD_AES128_GCM,
    DTLS_AEAD_AES256_GCM,
    DTLS_AEAD_AES128_CCM,
    DTLS_AEAD_AES256_CCM,
    DTLS_AEAD_CHACHA20, /* RFC 7905: no explicit nonce, a 12-byte IV XORed with the sequence */
    DTLS_AEAD_N
} dtls_aead_alg_t;

enum {
    DTLS_REC_HDR = 13,       /* type, version, epoch, 48-bit sequence number, length */
    DTLS_EXPLICIT_NONCE = 8, /* epoch || sequence number, sent before the ciphertext */
    DTLS_SALT_LEN = 12,      /* client/server_write_IV: 4 bytes used for AES, 12 for ChaCha20 */
    DTLS_KEY_MAX = 32,
    DTLS_REPLAY_WINDOW = 64,
};
#define DTLS_SEQ_MAX ((UINT64_C(1) << 48) - 1)

/* Record-layer state of one session once OpenSSL's SSL is gone: ~130 bytes (the 12-byte
 * IVs are ChaCha20's; AES suites use 4 of them). The keys are
 * secret (wiped by dtls__rl_wipe). "r" is what the client sends us, "w" what we send. */
typedef struct dtls_rl {
    uint8_t alg;     /* dtls_aead_alg_t */
    uint8_t tag_len; /* 16, or 8 for CCM_8 */
    uint8_t key_len; /* 16 or 32 */
    bool r_any;      /* some record was accepted: r_top and r_map are meaningful */
    uint16_t epoch;  /* the only epoch accepted and used (1: renegotiation is refused) */
    uint8_t rkey[DTLS_KEY_MAX], wkey[DTLS_KEY_MAX];
    uint8_t rsalt[DTLS_SALT_LEN], wsalt[DTLS_SALT_LEN];
    uint64_t w_seq; /* next sequence number we send */
    uint64_t r_top; /* highest sequence number accepted */
    uint64_t r_map; /* RFC 6347 §4.1.2.6: bit i set = r_top - i was accepted */
    uint64_t uid;   /* names these keys in a dtls_aead_ctx_t (never reused); 0 = no caching */
} dtls_rl_t;

/* Cipher contexts shared by all compact sessions of one listener (one thread): each record
 * re-keys a context unless it was last keyed for the same uid. */
typedef struct dtls_aead_ctx {
    EVP_CIPHER *ciph[DTLS_AEAD_N];
    EVP_CIPHER_CTX *enc, *dec;
    uint64_t enc_uid, dec_uid; /* whose keys the contexts hold; 0 = none */
    int enc_alg, dec_alg;      /* set up for: alg << 8 | tag length; -1 = none */
} dtls_aead_ctx_t;

void dtls__aead_init(dtls_aead_ctx_t *a);
void dtls__aead_fini(dtls_aead_ctx_t *a);

/* One parsed record header (a view into the datagram). */
typedef struct dtls_rec {
    uint8_t type;
    uint16_t version;
    uint16_t epoch;
    uint64_t seq;
    const uint8_t *frag;
    size_t frag_len;
    const uint8_t *cid; /* type tls12_cid only: the connection id in the header */
    uint8_t cid_len;
} dtls_rec_t;

/* Parses the record at the start of p. Returns the bytes it spans (header + fragment), or
 * -EBADMSG when the header or the fragment is cut short. */
ssize_t dtls__rec_parse(const uint8_t *p, size_t len, dtls_rec_t *r);

/* ---- RFC 9146 Connection ID ---------------------------------------------------------------
 *
 * A record of type tls12_cid (25) carries the connection id its receiver chose between the
 * sequence number and the length: type, version, epoch, seq, cid[cid_len], length, then the
 * AEAD-protected DTLSInnerPlaintext (content || real type || zero padding). The CID length
 * is not in the record: the receiver knows it (all our CIDs have the listener's length). */
enum { DTLS_CT_CID = 25, DTLS_CID_MAX = 16, DTLS_CID_HDR = 13 /* + cid_len */ };

/* Parses the record at the start of p; a tls12_cid record with a CID of cid_len bytes, any
 * other type as dtls__rec_parse does. Returns the bytes it spans, or -EBADMSG. */
ssize_t dtls__rec_parse_cid(const uint8_t *p, size_t len, size_t cid_len, dtls_rec_t *r);

/* The AEAD algorithm and tag length of a negotiated suite; DTLS_AEAD_NONE if unsupported. */
dtls_aead_alg_t dtls__aead_of_cipher(const SSL_CIPHER *c, uint8_t *tag_len);

/* RFC 5246 §6.3 key expansion for an AEAD suite with TLS1-PRF(md): fills the keys and salts
 * of rl (server view: r = client_write, w = server_write), epoch 1, sequences zero, replay
 * window empty, uid 0. Returns 0, -EINVAL (bad algorithm/lengths) or -EIO (KDF failed). */
int dtls__rl_derive(dtls_rl_t *rl, dtls_aead_alg_t alg, uint8_t tag_len, const EVP_MD *md,
                    const uint8_t *master, size_t master_len,
                    const uint8_t client_random[static 32],
                    const uint8_t server_random[static 32]);
/* The same from an established DTLS 1.2 server SSL. -ENOTSUP if its suite is not one of
 * ours. The write sequence is left 0: the caller knows what OpenSSL sent. */
int dtls__rl_from_ssl(dtls_rl_t *rl, SSL *ssl);
/* The other end's view of the same keys (tests and the fuzzer act as the client). */
void dtls__rl_mirror(const dtls_rl_t *server, dtls_rl_t *client);
void dtls__rl_wipe(dtls_rl_t *rl);

/* Replay window (RFC 6347 §4.1.2.6). check: false if seq was accepted already or is older
 * than the window. mark: records seq as accepted (only after it authenticated). */
bool dtls__rl_replay_check(const dtls_rl_t *rl, uint64_t seq);
void dtls__rl_replay_mark(dtls_rl_t *rl, uint64_t seq);

/* Opens one parsed record: checks version (DTLS 1.2), epoch, replay window, length, and
 * the AEAD tag; on success marks seq in the window and writes the plaintext to out.
 * Returns its length, or -EPROTO (version/epoch), -EALREADY (replayed or too old),
 * -EBADMSG (too short, too long for cap, or authentication failed; out is then garbage). */
ssize_t dtls__rl_open(dtls_rl_t *rl, dtls_aead_ctx_t *a, const dtls_rec_t *r, uint8_t *out,
                      size_t cap);
/* Seals len bytes of type as the next record (epoch rl->epoch, sequence rl->w_seq, which is
 * then incremented) into out. Returns the record's length, -ENOSPC (cap too small or len >
 * 2^14), -EOVERFLOW (sequence numbers exhausted: the session must end) or -EIO. */
ssize_t dtls__rl_seal(dtls_rl_t *rl, dtls_aead_ctx_t *a, uint8_t type, const uint8_t *p,
                      size_t len, uint8_t *out, size_t cap);

/* Opens a parsed tls12_cid record (RFC 9146 §5: its own additional data, and the inner
 * plaintext's real type, returned in *type, found behind the zero padding). Same checks and
 * returns as dtls__rl_open, plus -EBADMSG for an inner plaintext without a type. */
ssize_t dtls__rl_open_cid(dtls_rl_t *rl, dtls_aead_ctx_t *a, const dtls_rec_t *r, uint8_t *type,
                          uint8_t *out, size_t cap);
/* Seals len bytes of type as the next tls12_cid record carrying cid (no padding). Same
 * returns as dtls__rl_seal. */
ssize_t dtls__rl_seal_cid(dtls_rl_t *rl, dtls_aead_ctx_t *a, uint8_t type, const uint8_t *cid,
                          size_t cid_len, const uint8_t *p, size_t len, uint8_t *out, size_t cap);
/* During the handshake, for OpenSSL (which does not know tls12_cid): opens the client's
 * tls12_cid record r with rl (marking its sequence number in rl's window) and writes it to
 * out as the ordinary record OpenSSL expects (same epoch and sequence number, sealed with the
 * client's keys). It never leaves the process. *type gets the real content type. Returns
 * the ordinary record's length or what dtls__rl_open_cid / dtls__rl_seal return. */
ssize_t dtls__rl_cid_to_plain(dtls_rl_t *rl, dtls_aead_ctx_t *a, const dtls_rec_t *r, uint8_t *type,
                              uint8_t *out, size_t cap);

/* ---- listener.c / peer.c ------------------------------------------------------------------ */

typedef struct dtls_peer dtls_peer_t;
typedef struct dtls_pool dtls_pool_t;
typedef struct dtls_admit_addr dtls_admit_addr_t; /* admit.c */

typedef enum { DTLS_PEER_HANDSHAKE, DTLS_PEER_ESTABLISHED, DTLS_PEER_CLOSED } dtls_peer_state_t;

struct dtls_peer {
    transport_peer_t base; /* first member: a transport_peer_t* is a dtls_peer_t* */
    dtls_listener_t *owner;
    SSL *ssl;              /* NULL once closed */
    dtls_bio_t *bio;       /* owned by ssl's BIO */
    dtls_peer_state_t state;
    int64_t started_ms;    /* handshake start */
    int64_t last_seen_ms;  /* last authenticated (decrypted) record */
    loop_timer_t rtx;      /* handshake flight retransmission */
    htab_link_t hlink;     /* in the handshake or the session table (ptab.c) */
    dtls_peer_t *prev, *next; /* age list: handshakes oldest first, sessions stalest first */
    /* Compact record layer (compact.c). From the end of the handshake rl holds the session's
     * record keys and a shadow replay window fed with every epoch-1 record OpenSSL is
     * given; once ssl is NULL on an established peer, rl is its only record layer. */
    dtls_rl_t *rl;        /* &rl_store while in use, else NULL */
    dtls_rl_t rl_store;
    dtls_pool_t *pool;    /* where this struct lives (pool.c) */
    /* RFC 9146: the CID we chose (records to us carry it; in l->cids by it) or cid_len 0.
     * cid_asked: the client offered the extension (with a CID of its own of at most
     * DTLS_CID_MAX bytes, in peer_cid; a longer one is not answered). */
    htab_link_t clink;
    uint8_t cid[DTLS_CID_MAX];
    uint8_t cid_len;
    bool cid_asked;
    uint8_t peer_cid_len; /* the client's CID, which our records carry (0: ordinary records) */
    uint8_t peer_cid[DTLS_CID_MAX];
    bool indexed;     /* hlink is in l->hs or l->est (a CID session can lose its address) */
    bool rl_refused;  /* this session keeps OpenSSL's record layer */
    bool rl_verified; /* our keys opened an application record OpenSSL also received */
    bool saved;       /* written to a saved-sessions file at stop: ends without close_notify */
    uint64_t save_id; /* in a file saved while running, unchanged since: its id (else 0) */
    const uint8_t *cur; /* the datagram being fed (valid during dtls__peer_input) */
    size_t cur_len;
    /* Admission (admit.c, listener.c): the per-address count this handshake is in, and when
     * its handshake state last advanced (a retransmitted flight is not progress). */
    dtls_admit_addr_t *admit;
    int64_t progress_ms;
    /* Established with a client certificate that names no device: lives on l->est_unknown
     * instead of l->est_age (shorter idle timeout, evicted first). */
    bool unknown_cert;
};

/* ---- admit.c: handshakes in progress by source address (IPv4 address, IPv6 /64) ---------- */

/* An address counts under its core/sockaddr.h sockaddr_prefix_key (IPv4 address, IPv6 /64). */
/* Handshakes in progress from a's address (any port). */
unsigned dtls__admit_count(const htab_t *t, const struct sockaddr_storage *a);
/* The same for the address of handshake p (0 if p is not counted). */
unsigned dtls__admit_of(const dtls_peer_t *p);
/* Counts handshake p under its address / stops counting it (idempotent). */
void dtls__admit_add(htab_t *t, dtls_peer_t *p);
void dtls__admit_del(htab_t *t, dtls_peer_t *p);

typedef struct dtls_plist {
    dtls_peer_t *head, *tail;
} dtls_plist_t;

enum { DTLS_BATCH = 16, DTLS_OUT_BATCH = 32, DTLS_MAX_DGRAM = 4096, DTLS_MAX_PLAIN = 16384 };

struct dtls_listener {
    loop_t *loop;
    transport_sink_t sink; /* where plaintext datagrams and closes go */
    dtls_ctx_t *ctx;
    dtls_cfg_t cfg;
    int fd;
    int port;
    dtls_cookie_t cookie;
    SSL *listen_ssl;        /* runs DTLSv1_listen; becomes a peer's SSL after a good cookie */
    unsigned listen_gen;    /* ctx generation listen_ssl was made from */
    BIO_ADDR *listen_addr;
    htab_t hs, est; /* by address: handshakes in progress, established sessions */
    htab_t cids;    /* by the CID we chose (RFC 9146): peers with cid_len > 0 */
    dtls_plist_t hs_age, est_age;
    htab_t admit;             /* handshakes in progress by source address (admit.c) */
    dtls_plist_t est_unknown; /* sessions of unknown certificates, stalest first */
    loop_timer_t sweep;
    dtls_stats_t stats;
    dtls_aead_ctx_t aead; /* cipher contexts of the compact sessions */
    uint64_t next_uid;    /* for dtls_rl_t.uid */
    unsigned ssl_freed;   /* SSL objects freed since the last malloc_trim (listener.c) */
    dtls_pool_t *pool;    /* dtls_peer_t structs of this listener (pool.c) */
    uint8_t out[DTLS_REC_HDR + DTLS_CID_MAX + DTLS_EXPLICIT_NONCE + DTLS_MAX_PLAIN + 1 + 16];
    /* Compact-layer records waiting for one sendmmsg at the end of the loop iteration
     * (compact.c). */
    outq_t outq;
    uint8_t bufs[DTLS_BATCH][DTLS_MAX_DGRAM];
    struct sockaddr_storage addrs[DTLS_BATCH];
    uint8_t plain[DTLS_MAX_PLAIN];
    uint8_t conv[DTLS_MAX_DGRAM]; /* CID records rewritten for OpenSSL (compact.c) */
};

/* The age list an established session is on: est_unknown for an unknown certificate's. */
static inline dtls_plist_t *dtls__est_list(dtls_listener_t *l, const dtls_peer_t *p)
{
    return p->unknown_cert ? &l->est_unknown : &l->est_age;
}

/* Sends the queued compact-layer records (compact.c; the loop's flush hook and shutdown). */
void dtls__compact_flush(dtls_listener_t *l);

/* Ends every handshake, and every session with close_notify (dtls_listener_free; the fuzz
 * targets after each input). */
void dtls__listener_close_all(dtls_listener_t *l);

/* Handles one received datagram (the socket path and tests/fuzzers call this). */
void dtls__listener_input(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                          const uint8_t *p, size_t len);
/* Reads and handles what is waiting on the socket (the fd callback; tests call it directly). */
void dtls__listener_poll(dtls_listener_t *l);
/* The periodic chores as of now_ms: cookie secret rotation, half-open handshakes older than
 * handshake_timeout_ms, sessions idle longer than session_inactivity_ms. */
void dtls__listener_sweep(dtls_listener_t *l, int64_t now_ms);

/* ptab.c: the address-keyed peer tables (l->hs, l->est) and the age lists. */
dtls_peer_t *dtls__ptab_find(const htab_t *t, const struct sockaddr_storage *a);
/* The same with a's sockaddr_hash already computed (the datagram path looks an address up in
 * both tables and hashes it once). */
dtls_peer_t *dtls__ptab_find_hashed(const htab_t *t, const struct sockaddr_storage *a,
                                    uint64_t hash);
void dtls__ptab_insert(htab_t *t, dtls_peer_t *p);
/* Removes p if it is in an address table (no-op once it lost its address, see move). */
void dtls__ptab_remove(htab_t *t, dtls_peer_t *p);
/* RFC 9146 §6: the established peer p now lives at address a in table est. A peer that
 * was filed there under a is taken out of the table (it keeps its struct and age-list
 * place) and returned for the caller to deal with; NULL if none. */
dtls_peer_t *dtls__ptab_move(htab_t *est, dtls_peer_t *p, const struct sockaddr_storage *a,
                             socklen_t alen);
/* The CID table (l->cids): by the bytes of the CID we chose. */
dtls_peer_t *dtls__ptab_find_cid(const htab_t *t, const uint8_t *cid, size_t len);
void dtls__ptab_insert_cid(htab_t *t, dtls_peer_t *p);
void dtls__ptab_remove_cid(htab_t *t, dtls_peer_t *p);
void dtls__plist_append(dtls_plist_t *l, dtls_peer_t *p);
/* The shard (of shards) whose listener hears ordinary datagrams from a: the function the
 * listener's SO_REUSEPORT program computes (listener.c), so a restored session can be put
 * where its device's records will arrive. 0 when shards <= 1. */
#define DTLS_SHARD_MIX 0x9E3779B1u
unsigned dtls__shard_of(const struct sockaddr_storage *a, unsigned shards);
void dtls__plist_remove(dtls_plist_t *l, dtls_peer_t *p);

/* pool.c: chunked storage for dtls_peer_t, shared by a listener and its peers. new: one
 * reference (the listener's, dropped by release); get: a zeroed peer with p->pool set, which
 * holds a reference until put. */
dtls_pool_t *dtls__pool_new(void);
dtls_peer_t *dtls__pool_get(dtls_pool_t *pool);
void dtls__pool_put(dtls_peer_t *p);
void dtls__pool_release(dtls_pool_t *pool);

/* peer.c: takes over l->listen_ssl after a valid cookie and starts the handshake. */
void dtls__peer_start(dtls_listener_t *l);
/* Feeds a datagram to a handshaking or established peer. from: the sender when the
 * datagram was routed by CID (it may differ from p's address), NULL when by address. */
void dtls__peer_input(dtls_peer_t *p, const struct sockaddr_storage *from, socklen_t alen,
                      const uint8_t *data, size_t len);
/* Ends a peer. notify: send close_notify first (established sessions only). */
void dtls__peer_close(dtls_peer_t *p, bool notify);
/* The session a new one may replace when max_sessions are established (reliability D10,
 * Scandium's model): the stalest unknown-certificate session, else the stalest session if it
 * is stale (stale_session_ms without authenticated traffic; any age when that is 0), else
 * NULL: new sessions are refused, so newcomers never push out devices that are talking. */
dtls_peer_t *dtls__session_victim(dtls_listener_t *l, int64_t now);
/* Tests and fuzzer: an established compact session for address a with the given record
 * state (copied; uid assigned), as if a handshake had just been demoted. */
dtls_peer_t *dtls__peer_new_compact(dtls_listener_t *l, const struct sockaddr_storage *a,
                                    socklen_t alen, const dtls_rl_t *rl);

/* A datagram from address a, which has no handshake or session here: if a session saved by a
 * previous run waits for a (the context's restore table) and the datagram's first record
 * authenticates under its keys, makes it this listener's established session, hands the
 * sink's blob back, feeds it the datagram and returns true. Otherwise false (an entry whose
 * keys did not open the record stays for the real device). */
bool dtls__peer_claim(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                      const uint8_t *data, size_t len);
/* The same for a tls12_cid datagram whose CID (cid_len bytes at offset 11) names no session
 * here: the saved session holding that CID is claimed whatever a is (a NAT may have rebound
 * the device across the restart), and moves to a as any CID session does. */
bool dtls__peer_claim_cid(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                          const uint8_t *data, size_t len, size_t cid_len);
/* Makes every waiting saved session an established session of l at once (see
 * dtls_listener_adopt_saved); returns how many. */
size_t dtls__peer_adopt_all(dtls_listener_t *l, int shard, unsigned shards);

/* ---- compact.c: sessions on the compact record layer ------------------------------------ */

/* True if the first record of data opens under rl (a copy is used: rl is unchanged); a
 * tls12_cid record when cid_len > 0 (its CID that long), else an ordinary one. */
bool dtls__compact_authentic(dtls_listener_t *l, const dtls_rl_t *rl, const uint8_t *data,
                             size_t len, size_t cid_len);
/* Right after the handshake completed (p->ssl established): derives p->rl unless compact
 * records are off or the suite is not ours, and shadows the current datagram. */
void dtls__compact_prepare(dtls_peer_t *p);
/* Opens the epoch-1 records of a datagram about to be given to OpenSSL, only to keep the
 * shadow replay window complete (and to check our keys against OpenSSL's). */
void dtls__compact_shadow(dtls_peer_t *p, const uint8_t *data, size_t len);
/* True if a datagram holds application data or alert records of a non-zero epoch (seen
 * during a handshake, OpenSSL may accept them before our shadow window exists). */
bool dtls__compact_early_records(const uint8_t *data, size_t len);
/* After OpenSSL delivered application data: if the peer qualifies, frees its SSL and
 * continues on p->rl (the client has proven it got our last flight). */
void dtls__compact_demote(dtls_peer_t *p);
/* What a compact session's datagram asks of the peer (peer.c acts on it). */
typedef enum {
    DTLS_COMPACT_GO_ON = 0,    /* the session lives on */
    DTLS_COMPACT_CLOSE,        /* a fatal or malformed alert: end it silently */
    DTLS_COMPACT_CLOSE_NOTIFY, /* the client's close_notify: end it, answering with ours */
} dtls_compact_verdict_t;
/* Opens the records of a datagram for a compact session and hands each authenticated
 * application record to the listener's sink; stops at the first alert that ends it.
 * from (NULL: the datagram came from p's address): where a datagram routed by CID came from;
 * when a CID record from there authenticates, p moves to that address before anything is
 * delivered (RFC 9146 §6), and the peer that was filed under it is returned in *displaced
 * (out of the address table; the caller closes it) or NULL. */
dtls_compact_verdict_t dtls__compact_input(dtls_peer_t *p, const uint8_t *data, size_t len,
                                           const struct sockaddr_storage *from, socklen_t alen,
                                           dtls_peer_t **displaced);
/* CID sessions during the handshake (and while OpenSSL still runs the session): the record
 * keys as soon as OpenSSL has the master secret (after the ClientKeyExchange, or the
 * ClientHello of a resumption). True if p->rl is there. */
bool dtls__compact_cid_keys(dtls_peer_t *p);
/* Rewrites the leading run of tls12_cid records of data as ordinary records for OpenSSL into
 * l->conv (each opened by p->rl, which keeps the shadow window; those that do not open are
 * dropped and counted). *used: bytes of data consumed. Returns the bytes written to conv. */
size_t dtls__compact_cid_convert(dtls_peer_t *p, const uint8_t *data, size_t len, size_t *used);
/* dtls_bio_t.w_rewrite for a CID session whose client has a CID (arg: the peer): each of
 * OpenSSL's epoch-1 records, opened with our write keys, is sealed again as a tls12_cid record
 * with the same sequence number (the ordinary one never leaves). 0 when nothing changes. */
size_t dtls__compact_cid_wrap(void *arg, const uint8_t *in, size_t len, uint8_t *out, size_t cap);
/* Bytes before the first tls12_cid record of data (len if none). */
size_t dtls__compact_cid_offset(const dtls_peer_t *p, const uint8_t *data, size_t len);
/* transport send on a compact session. */
int dtls__compact_send(dtls_peer_t *p, const uint8_t *data, size_t len);
/* Sends close_notify on a compact session (no state change). */
void dtls__compact_close_notify(dtls_peer_t *p);
/* Frees p->rl (wiping the keys). */
void dtls__compact_release(dtls_peer_t *p);

/* ---- saved.c: sessions kept across a restart --------------------------------------------- */

/* CID_MAX: RFC 9146 §3's largest connection ID (its length is one byte). */
enum { DTLS_SAVED_VERSION = 1, DTLS_SAVED_CID_MAX = 255 };
/* Sent-record sequence numbers skipped on restore: a session saved by `sessions save` while
 * the server runs may send this many more records before the save's copy would reuse one
 * (the stale list in docs/operations.md covers the rest); on a clean stop it costs nothing. */
#define DTLS_SAVED_SEQ_MARGIN 4096u
#define DTLS_SAVED_FILE "dtls-sessions.bin"
#define DTLS_SAVED_KEY_FILE "dtls-sessions.key"
#define DTLS_SAVED_STALE_FILE "dtls-sessions.stale"

/* One saved session: what a compact session needs to go on, in file order. */
typedef struct dtls_saved_sess {
    htab_link_t link;  /* in the restore table, by address */
    htab_link_t clink; /* by our CID too, when in_cid */
    bool in_cid;
    uint64_t id; /* random, per session and save: its name in the stale list */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int64_t device_id;
    int64_t last_seen_unix_ms;
    dtls_rl_t rl; /* uid 0; w_seq already past DTLS_SAVED_SEQ_MARGIN */
    uint8_t cid_ours_len, cid_peer_len;
    uint8_t cid_ours[DTLS_SAVED_CID_MAX], cid_peer[DTLS_SAVED_CID_MAX];
    uint8_t *blob; /* the sink's description of its state for the peer (owned) */
    size_t blob_len;
} dtls_saved_sess_t;

/* Wipes the keys and frees s (and its blob). NULL is fine. */
void dtls__saved_sess_free(dtls_saved_sess_t *s);
/* Appends s (copied) to the writer; any thread. */
void dtls__save_add(dtls_save_t *w, const dtls_saved_sess_t *s);
/* The whole file for w under key, created now_s, valid max_age_s: *out (malloc'd). 0 or
 * -EFBIG / -EIO. */
int dtls__saved_encode(const dtls_save_t *w, const uint8_t key[static 32], int64_t now_s,
                       int64_t max_age_s, uint8_t **out, size_t *out_len);
/* Receives each decoded session (and owns it from then on). */
typedef void (*dtls_saved_cb)(void *ctx, dtls_saved_sess_t *s);
/* Parses a decrypted body (count + sessions); cb gets each session as it is read (so on
 * -EBADMSG the caller drops what it got). Returns the count or -EBADMSG. */
int dtls__saved_parse_body(const uint8_t *p, size_t len, dtls_saved_cb cb, void *ctx);
/* Checks and decrypts a whole file: -EBADMSG (short, bad magic, tag, body), -EPROTONOSUPPORT
 * (version), -ETIMEDOUT (older than its max age, or from the future); else the count, with
 * *expires_s (may be NULL) set to when the file's sessions lapse. */
int dtls__saved_decode(const uint8_t *f, size_t len, const uint8_t key[static 32], int64_t now_s,
                       int64_t *expires_s, dtls_saved_cb cb, void *ctx);
/* Reads <data_dir>/dtls-sessions.key, creating it (0600, O_EXCL, fsync) when create is set
 * and it does not exist. 0 or a negative error with err filled. */
int dtls__saved_key(const char *data_dir, bool create, uint8_t key[static 32],
                    char err[static ERR_LEN]);

dtls_restore_t *dtls__restore_new(void);
void dtls__restore_free(dtls_restore_t *t);
/* Decodes a file into the table (all or nothing), leaving out the sessions whose ids are in
 * stale (n_stale of them). The count or a dtls__saved_decode error. */
int dtls__restore_load_buf(dtls_restore_t *t, const uint8_t *f, size_t len,
                           const uint8_t key[static 32], int64_t now_s, const uint64_t *stale,
                           size_t n_stale);
/* Appends id to <data_dir>/dtls-sessions.stale: a session saved while running moved on. */
void dtls__saved_stale_add(const char *data_dir, uint64_t id);
/* dtls_ctx_restore_sessions for the context's table (endpoint.c calls it). */
int dtls__restore_load_file(dtls_restore_t *t, const char *data_dir, char err[static ERR_LEN]);
/* Moves every session still waiting in t to w (a stop while they wait); returns how many. */
size_t dtls__restore_save_unclaimed(dtls_restore_t *t, dtls_save_t *w);
/* How many sessions the last load put in t. */
size_t dtls__restore_loaded(const dtls_restore_t *t);
/* True while unclaimed sessions wait (one relaxed atomic read: the datagram path's check). */
bool dtls__restore_pending(dtls_restore_t *t);
/* Removes and returns the session saved for address a, or NULL. Any shard. */
dtls_saved_sess_t *dtls__restore_take(dtls_restore_t *t, const struct sockaddr_storage *a);
/* Removes and returns the session holding our CID cid (len bytes), or NULL. Any shard. */
dtls_saved_sess_t *dtls__restore_take_cid(dtls_restore_t *t, const uint8_t *cid, size_t len);
/* Removes the sessions whose records reach shard (of shards): by the first byte of our CID
 * for CID sessions, dtls__shard_of(address) for the others. Returns a malloc'd array of
 * them (*n entries; NULL when none). */
dtls_saved_sess_t **dtls__restore_take_shard(dtls_restore_t *t, int shard, unsigned shards,
                                             size_t *n);
/* Removes and returns any one session, or NULL when none is left. */
dtls_saved_sess_t *dtls__restore_take_any(dtls_restore_t *t);
/* Returns a session taken but not claimed (its record did not authenticate). */
void dtls__restore_put_back(dtls_restore_t *t, dtls_saved_sess_t *s);
/* Drops every entry once the file's max age has passed; returns how many. */
size_t dtls__restore_expire(dtls_restore_t *t, int64_t now_unix_ms);

/* ---- mem.c: OpenSSL's own heap (installed before main unless under ASan) ------------------ */

typedef struct dtls_mem_stats {
    bool installed;        /* OpenSSL allocates from mem.c */
    size_t blocks, bytes;  /* live OpenSSL blocks in the slabs, and their class bytes */
    size_t slabs_resident; /* slabs in use or kept as spares */
    size_t slabs_released; /* times an empty slab went back to the kernel */
} dtls_mem_stats_t;

/* Reserves the slab region (idempotent). 0 or -errno. The constructor calls it; tests too. */
int dtls__mem_init(void);
/* malloc/realloc/free with OpenSSL's semantics: blocks <= 32 KB from size-class slabs once
 * dtls__mem_init succeeded, anything else from malloc; free and realloc accept both. */
void *dtls__mem_malloc(size_t n);
void *dtls__mem_realloc(void *p, size_t n);
void dtls__mem_free(void *p);
void dtls__mem_stats(dtls_mem_stats_t *out);
/* Gives the resident spare slabs back to the kernel (the sweep calls it after load). */
void dtls__mem_trim(void);

#endif
