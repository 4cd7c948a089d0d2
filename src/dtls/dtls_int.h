/* dtls_int.h — private declarations shared by the files of src/dtls (not for other modules).
 *
 * Split: endpoint.c owns the SSL_CTX and the verify policy; cookie.c the stateless
 * HelloVerifyRequest (record pre-filter + HMAC cookie); bio.c the datagram BIO that serves the
 * datagram the loop just received and writes straight to the socket; peer.c the per-peer SSL
 * state machine; listener.c the socket, peer tables, caps and timers.
 */
#ifndef COAPHUB_DTLS_DTLS_INT_H
#define COAPHUB_DTLS_DTLS_INT_H

#include "dtls/dtls.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- endpoint.c --------------------------------------------------------------------------- */

/* The current SSL_CTX with a reference taken (the caller SSL_CTX_free()s it) and its
 * generation, which changes on every reload. Any thread. */
SSL_CTX *dtls__ctx_acquire(dtls_ctx_t *ctx, unsigned *gen);
/* Generation of the current SSL_CTX (cheap atomic read). */
unsigned dtls__ctx_gen(dtls_ctx_t *ctx);
registry_t *dtls__ctx_registry(dtls_ctx_t *ctx);

/* The client-certificate policy as a pure function (unit-tested): preverify_ok and err are
 * OpenSSL's verdict for the certificate at depth (0 = leaf). Returns 1 to go on, 0 to fail the
 * handshake. Only the leaf's validity dates can fail it (unless skip_validity); issuer, trust
 * and chain errors are accepted because identity comes from the registry, not from a CA. */
int dtls__verify_policy(int preverify_ok, int err, int depth, bool skip_validity);
/* The SSL_CTX verify callback applying dtls__verify_policy. */
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
} dtls_bio_t;

/* A BIO whose state (returned by dtls__bio_state) the caller fills; freed with the BIO. */
BIO *dtls__bio_new(int fd, dtls_cookie_t *cookie, unsigned initial_timeout_us,
                   uint64_t *datagrams_out);
dtls_bio_t *dtls__bio_state(BIO *b);
/* The dtls_bio_t of an SSL using our BIO, or NULL. */
dtls_bio_t *dtls__ssl_bio(SSL *ssl);
/* DTLS_set_timer_cb callback: initial_timeout_us first, then doubling up to 60 s. */
unsigned int dtls__timer_cb(SSL *ssl, unsigned int timer_us);

/* ---- listener.c / peer.c ------------------------------------------------------------------ */

typedef struct dtls_peer dtls_peer_t;

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
    dtls_peer_t *hnext;    /* hash chain in the handshake or session table */
    dtls_peer_t *prev, *next; /* age list: handshakes oldest first, sessions stalest first */
};

typedef struct dtls_ptab {
    dtls_peer_t **slots;
    size_t n_slots, n;
} dtls_ptab_t;

typedef struct dtls_plist {
    dtls_peer_t *head, *tail;
} dtls_plist_t;

enum { DTLS_BATCH = 16, DTLS_MAX_DGRAM = 4096, DTLS_MAX_PLAIN = 16384 };

struct dtls_listener {
    loop_t *loop;
    coap_engine_t *engine;
    dtls_ctx_t *ctx;
    dtls_cfg_t cfg;
    int fd;
    int port;
    dtls_cookie_t cookie;
    SSL *listen_ssl;        /* runs DTLSv1_listen; becomes a peer's SSL after a good cookie */
    unsigned listen_gen;    /* ctx generation listen_ssl was made from */
    BIO_ADDR *listen_addr;
    dtls_ptab_t hs, est;    /* by address: handshakes in progress, established sessions */
    dtls_plist_t hs_age, est_age;
    loop_timer_t sweep;
    dtls_stats_t stats;
    uint8_t bufs[DTLS_BATCH][DTLS_MAX_DGRAM];
    struct sockaddr_storage addrs[DTLS_BATCH];
    uint8_t plain[DTLS_MAX_PLAIN];
};

/* Handles one received datagram (the socket path and tests/fuzzers call this). */
void dtls__listener_input(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                          const uint8_t *p, size_t len);
/* Reads and handles what is waiting on the socket (the fd callback; tests call it directly). */
void dtls__listener_poll(dtls_listener_t *l);
/* The periodic chores as of now_ms: cookie secret rotation, half-open handshakes older than
 * handshake_timeout_ms, sessions idle longer than session_inactivity_ms. */
void dtls__listener_sweep(dtls_listener_t *l, int64_t now_ms);

/* Address-keyed peer table (listener.c). */
dtls_peer_t *dtls__ptab_find(const dtls_ptab_t *t, const struct sockaddr_storage *a);
void dtls__ptab_insert(dtls_ptab_t *t, dtls_peer_t *p);
void dtls__ptab_remove(dtls_ptab_t *t, dtls_peer_t *p);
void dtls__plist_append(dtls_plist_t *l, dtls_peer_t *p);
void dtls__plist_remove(dtls_plist_t *l, dtls_peer_t *p);

/* peer.c: takes over l->listen_ssl after a valid cookie and starts the handshake. */
void dtls__peer_start(dtls_listener_t *l);
/* Feeds a datagram to a handshaking or established peer. */
void dtls__peer_input(dtls_peer_t *p, const uint8_t *data, size_t len);
/* Ends a peer. notify: send close_notify first (established sessions only). */
void dtls__peer_close(dtls_peer_t *p, bool notify);

#endif
