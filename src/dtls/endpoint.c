/* endpoint.c — the shared DTLS server context: SSL_CTX, server certificate, verify policy.
 *
 * Invariant: shards only ever take the current SSL_CTX through dtls__ctx_acquire(), which
 * returns it with a reference; a reload builds a complete new SSL_CTX first and swaps the
 * pointer under a mutex, so a failed reload changes nothing and live sessions keep the
 * SSL_CTX (and certificate) they were made with until they end.
 *
 * Client certificates are requested, never required (spec §6.4), and never trust-checked:
 * the identity is decided later by the identify callback of dtls_cfg_t, which src/app wires
 * to the device registry (STYLE.md §10.6).
 * Proof of possession is OpenSSL's CertificateVerify check, which we do not touch.
 *
 * Resumption is by session id only (no tickets), from a store of serialized sessions owned by
 * dtls_ctx_t: bounded (SESSION_CACHE_SIZE, oldest evicted first) and emptied on reload.
 */
#include "dtls/dtls_int.h"

#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* RFC 7252 §9.1.3.3 mandates ECDHE-ECDSA-AES128-CCM8 (OpenSSL leaves CCM out of DEFAULT, so
 * it is named here); then the other AEAD suites Scandium offers for EC keys (spec §6.7), and
 * ECDHE-RSA-GCM for RSA server keys. No CBC. */
static const char CIPHERS[] = "ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-GCM-SHA256:"
                              "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-CCM:"
                              "ECDHE-ECDSA-AES256-CCM:ECDHE-ECDSA-AES256-CCM8:"
                              "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384";
/* PSK devices (added when a psk_find callback is configured): RFC 7252 §9.1.3.1's mandatory
 * PSK-AES128-CCM8, PSK with AES-GCM, and the one AEAD ECDHE-PSK suite OpenSSL 3.0 has for DTLS
 * 1.2 (ChaCha20-Poly1305: it stays on OpenSSL's record layer, compact.c carries AES only).
 * OpenSSL selects a PSK suite only for a client that offers one, so certificate clients are
 * unaffected. */
static const char PSK_CIPHERS[] =
    "PSK-AES128-CCM8:PSK-AES128-GCM-SHA256:PSK-AES128-CCM:"
    "PSK-AES256-GCM-SHA384:PSK-AES256-CCM8:"
    "ECDHE-PSK-CHACHA20-POLY1305";
static const char GROUPS[] = "P-256:P-384:X25519";
static const unsigned char SID_CTX[] = "coaphub-dtls";
/* Sessions (ids and tickets) stay resumable for a day: a device that reconnects or moves
 * behind a NAT gets an abbreviated handshake and the identity of its certificate. */
enum { SESSION_TIMEOUT_S = 86400, SESSION_CACHE_SIZE = 20480, DTLS_HOT_SESSIONS = 256 };

typedef struct sess_store sess_store_t;

/* The session store (see "session store" below). */
struct sess_store {
    pthread_mutex_t mu;
    htab_t by_id;            /* entries by session id */
    struct sess_ent **ring;  /* SESSION_CACHE_SIZE, insertion order; ring[head] is the oldest */
    size_t head, n;
};

struct dtls_ctx {
    pthread_mutex_t mu;
    SSL_CTX *ssl_ctx; /* current; guarded by mu */
    _Atomic unsigned gen;
    int64_t (*identify)(void *ctx, const uint8_t *const *der, const size_t *len, size_t n);
    void *identify_ctx;
    int64_t (*psk_find)(void *ctx, const char *identity, size_t len, uint8_t *key, size_t *key_len);
    bool skip_validity;
    int min_rsa_bits; /* 0: any RSA client key */
    int max_chain;    /* SSL_CTX_set_max_cert_list: see dtls_cfg_t.max_client_chain_bytes */
    char *cert_path, *key_path, *chain_path, *password;
    char *ciphers; /* NULL: the built-in AEAD list */
    int cid_len;   /* RFC 9146: 0 = the connection_id extension is not registered */
    sess_store_t sessions;
    dtls_restore_t *restore; /* sessions loaded from a previous run (saved.c) */
};

/* ---- session store: DER by session id ------------------------------------------------------
 *
 * What a resumption needs, serialized: i2d_SSL_SESSION costs a few us (the peer certificate's
 * DER is cached in the X509), d2i on resumption ~150 us (it parses the certificate again) --
 * still far below a full handshake, and paid only by devices that resume. Invariants: at most
 * SESSION_CACHE_SIZE entries, evicted oldest first (a ring in insertion order); one mutex,
 * since all shards share the SSL_CTX; OpenSSL itself checks the session id context and the
 * session's timeout on every entry we hand back. Not removed on a later fatal alert (OpenSSL
 * tells only its internal cache), the same as a ticket, which cannot be revoked either.
 */
/* A session's DER is ~150 B plus the client's leaf certificate (EC: 300-700 B, RSA-4096 ~1.4 KB);
 * a larger one is not stored (that device gets full handshakes), so the store stays below
 * SESSION_CACHE_SIZE x 2 KB even when anyone with a self-signed certificate fills it. */
enum { SESS_MAX_DER = 2048 };

typedef struct sess_ent {
    htab_link_t link; /* in sess_store.by_id */
    unsigned id_len;
    uint8_t id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    size_t der_len;
    uint8_t der[];
} sess_ent_t;

static bool sess_has_id(const htab_link_t *l, const void *key)
{
    const sess_ent_t *e = HTAB_ENTRY(l, sess_ent_t, link);
    return htab_bytes_equal(key, e->id, e->id_len);
}

static void sess_init(sess_store_t *st)
{
    pthread_mutex_init(&st->mu, NULL);
    htab_init(&st->by_id, SESSION_CACHE_SIZE);
    st->ring = xcalloc(SESSION_CACHE_SIZE, sizeof *st->ring);
}

static void sess_clear(sess_store_t *st)
{
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n; i++) {
        sess_ent_t *e = st->ring[(st->head + i) % SESSION_CACHE_SIZE];
        htab_remove(&st->by_id, &e->link);
        OPENSSL_clear_free(e, sizeof *e + e->der_len); /* it holds a master secret */
    }
    st->head = st->n = 0;
    pthread_mutex_unlock(&st->mu);
}

static void sess_fini(sess_store_t *st)
{
    if (!st->ring)
        return;
    sess_clear(st);
    htab_fini(&st->by_id);
    free(st->ring);
    pthread_mutex_destroy(&st->mu);
}

static sess_store_t *sess_of(SSL *ssl)
{
    dtls_ctx_t *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    return ctx && ctx->sessions.ring ? &ctx->sessions : NULL;
}

/* A full handshake completed: keep its session. Returns 0: OpenSSL keeps its reference. */
static int sess_new_cb(SSL *ssl, SSL_SESSION *sess)
{
    sess_store_t *st = sess_of(ssl);
    unsigned id_len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &id_len);
    if (SSL_get_psk_identity(ssl)) {
        /* PSK sessions are not resumable: a resumption skips the PSK callback, so a session
         * made with a key since replaced would outlive it. A PSK handshake costs no public-key
         * operation (ECDHE-PSK one ECDH), so little is lost. */
        SSL_CTX_remove_session(SSL_get_SSL_CTX(ssl), sess);
        return 0;
    }
    if (!st || id_len == 0 || id_len > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return 0;
    unsigned char *tmp = NULL; /* one encoding pass: OpenSSL allocates the output */
    int n = i2d_SSL_SESSION(sess, &tmp);
    if (n <= 0 || n > SESS_MAX_DER) {
        if (tmp)
            OPENSSL_clear_free(tmp, (size_t)n);
        ERR_clear_error();
        return 0;
    }
    /* From OpenSSL's heap (mem.c), not ours: an entry made in the middle of a handshake would
     * otherwise sit among the handshake's freed blocks in the shard's arena and pin a page
     * there for as long as it lives. */
    sess_ent_t *e = OPENSSL_malloc(sizeof *e + (size_t)n);
    if (!e) {
        OPENSSL_clear_free(tmp, (size_t)n);
        return 0;
    }
    e->id_len = id_len;
    memcpy(e->id, id, id_len);
    memcpy(e->der, tmp, (size_t)n);
    OPENSSL_clear_free(tmp, (size_t)n); /* it holds the master secret */
    e->der_len = (size_t)n;
    /* Session ids are 32 random bytes chosen by us, but a ClientHello may name any: the
     * lookup side is attacker-driven, hence the keyed hash. */
    uint64_t h = hash_bytes(id, id_len);
    pthread_mutex_lock(&st->mu);
    if (st->n == SESSION_CACHE_SIZE) {
        sess_ent_t *old = st->ring[st->head];
        htab_remove(&st->by_id, &old->link);
        st->head = (st->head + 1) % SESSION_CACHE_SIZE;
        st->n--;
        OPENSSL_clear_free(old, sizeof *old + old->der_len);
    }
    htab_insert(&st->by_id, &e->link, h);
    st->ring[(st->head + st->n) % SESSION_CACHE_SIZE] = e;
    st->n++;
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* A ClientHello names a session id: a fresh SSL_SESSION that OpenSSL owns, or NULL. */
static SSL_SESSION *sess_get_cb(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    *copy = 0;
    sess_store_t *st = sess_of(ssl);
    if (!st || len <= 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return NULL;
    uint8_t der[SESS_MAX_DER];
    size_t der_len = 0;
    htab_bytes_t k = {id, (size_t)len};
    uint64_t h = hash_bytes(id, (size_t)len);
    pthread_mutex_lock(&st->mu);
    htab_link_t *l = htab_find(&st->by_id, h, sess_has_id, &k);
    if (l) {
        const sess_ent_t *e = HTAB_ENTRY(l, sess_ent_t, link);
        memcpy(der, e->der, e->der_len);
        der_len = e->der_len;
    }
    pthread_mutex_unlock(&st->mu);
    if (der_len == 0)
        return NULL;
    /* Decoded outside the lock: this is the slow part. */
    const unsigned char *p = der;
    SSL_SESSION *sess = d2i_SSL_SESSION(NULL, &p, (long)der_len);
    OPENSSL_cleanse(der, der_len);
    if (!sess)
        ERR_clear_error();
    return sess;
}

size_t dtls__ctx_sessions_stored(dtls_ctx_t *ctx)
{
    pthread_mutex_lock(&ctx->sessions.mu);
    size_t n = ctx->sessions.n;
    pthread_mutex_unlock(&ctx->sessions.mu);
    return n;
}

void dtls_cfg_default(dtls_cfg_t *cfg)
{
    *cfg = (dtls_cfg_t){.bind_addr = "0.0.0.0",
                        .port = 5684,
                        .data_dir = ".",
                        .mtu = 1024,
                        .retransmission_ms = 1000,
                        .max_handshakes = 1000,
                        .max_handshakes_per_addr = 100,
                        .handshake_stall_ms = 10000,
                        .max_sessions = 100000,
                        .session_inactivity_ms = 86400000,
                        .unknown_cert_inactivity_ms = 600000,
                        .stale_session_ms = 1800000,
                        .handshake_timeout_ms = 30000,
                        .max_client_chain_bytes = 16384,
                        .compact_records = true};
}

int dtls__verify_policy(int preverify_ok, int err, int depth, bool skip_validity)
{
    if (preverify_ok)
        return 1;
    if (depth == 0 && !skip_validity &&
        (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID ||
         err == X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD ||
         err == X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD))
        return 0;
    /* Self-signed, unknown issuer, untrusted, bad issuer signature, purpose, and anything
     * about certificates above the leaf: none of it names the device, so none of it fails
     * the handshake. Which device (if any) the leaf belongs to is cfg.identify's call. */
    return 1;
}

bool dtls__rsa_key_ok(const EVP_PKEY *key, int min_rsa_bits)
{
    if (min_rsa_bits <= 0 || !key || !EVP_PKEY_is_a(key, "RSA"))
        return true;
    return EVP_PKEY_get_bits(key) >= min_rsa_bits;
}

int dtls__verify_cb(int preverify_ok, X509_STORE_CTX *xs)
{
    int err = X509_STORE_CTX_get_error(xs);
    int depth = X509_STORE_CTX_get_error_depth(xs);
    bool skip = false;
    int min_rsa = 0;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl) {
        dtls_ctx_t *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
        skip = ctx && ctx->skip_validity;
        min_rsa = ctx ? ctx->min_rsa_bits : 0;
    }
    /* The leaf's key signs CertificateVerify, so its size is the client's strength; keys
     * above it prove nothing here (identity comes from the registry, not from a CA). OpenSSL
     * is asked once per certificate, errors or not, so depth 0 always passes through here. */
    X509 *cur = X509_STORE_CTX_get_current_cert(xs);
    if (depth == 0 && cur && !dtls__rsa_key_ok(X509_get0_pubkey(cur), min_rsa)) {
        LOG_D("dtls", "client certificate rejected: RSA key of %d bits (--dtls-min-rsa-bits %d)",
              EVP_PKEY_get_bits(X509_get0_pubkey(cur)), min_rsa);
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    if (dtls__verify_policy(preverify_ok, err, depth, skip))
        return 1;
    LOG_D("dtls", "client certificate rejected: %s", X509_verify_cert_error_string(err));
    /* Spec §6.1: the handshake fails with bad_certificate (42); OpenSSL would send
     * certificate_expired for the date errors, so the error is restated. */
    X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
    return 0;
}

/* OpenSSL's PSK server callback, on ClientKeyExchange: one registry lookup. 0 (unknown
 * identity, or a key too long for OpenSSL's buffer) makes OpenSSL fail the handshake with
 * unknown_psk_identity (RFC 4279 §2). */
static unsigned psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk, unsigned max)
{
    dtls_ctx_t *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!ctx || !ctx->psk_find || !identity)
        return 0;
    uint8_t key[DTLS_PSK_MAX];
    size_t key_len = 0;
    unsigned rc = 0;
    if (ctx->psk_find(ctx->identify_ctx, identity, strlen(identity), key, &key_len) != 0 &&
        key_len > 0 && key_len <= max) {
        memcpy(psk, key, key_len);
        rc = (unsigned)key_len;
    } else {
        LOG_D("dtls", "unknown PSK identity (%zu bytes)", strlen(identity));
    }
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int64_t dtls__ctx_identify_psk(dtls_ctx_t *ctx, const char *identity)
{
    if (!ctx->psk_find || !identity)
        return 0;
    uint8_t key[DTLS_PSK_MAX];
    size_t key_len = 0;
    int64_t id = ctx->psk_find(ctx->identify_ctx, identity, strlen(identity), key, &key_len);
    OPENSSL_cleanse(key, sizeof key);
    return id;
}

static int password_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pw = u;
    if (!pw || size <= 0)
        return 0;
    size_t n = strlen(pw);
    if (n > (size_t)size)
        n = (size_t)size;
    memcpy(buf, pw, n);
    return (int)n;
}

static void ssl_err(char err[static ERR_LEN], const char *what, const char *path)
{
    char e[160];
    ERR_error_string_n(ERR_get_error(), e, sizeof e);
    ERR_clear_error();
    snprintf(err, ERR_LEN, "%.60s %.100s: %.80s", what, path ? path : "", e);
}

static int load_chain(SSL_CTX *c, const char *path, char err[static ERR_LEN])
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        ssl_err(err, "cannot open chain file", path);
        return -EINVAL;
    }
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(c, x) != 1) {
            X509_free(x);
            BIO_free(b);
            ssl_err(err, "cannot add chain certificate from", path);
            return -EINVAL;
        }
        n++;
    }
    ERR_clear_error(); /* the read that ended the loop */
    BIO_free(b);
    if (n == 0) {
        snprintf(err, ERR_LEN, "no certificate in chain file %s", path);
        return -EINVAL;
    }
    return 0;
}

/* ---- RFC 9146 connection_id extension -------------------------------------------------------
 *
 * OpenSSL 3.0 does not know extension 54, so it is a custom extension: the ClientHello's
 * `opaque cid<0..2^8-1>` is the CID the client wants in the records we send; the ServerHello's
 * is the CID we want in the records it sends. We answer a client whose negotiated suite the
 * compact layer carries and whose own CID is at most DTLS_CID_MAX bytes (a longer one gets
 * no answer, so no CID at all, RFC 9146 §3): its CID records are opened by our keys from its
 * Finished on, and when its CID is not empty our epoch-1 records carry it, OpenSSL's
 * rewritten on their way out (compact.c). The SSL's app data is its dtls_peer_t (peer.c),
 * which holds the client's CID and the one we chose. */
enum { EXT_CONNECTION_ID = 54, CID_TRIES = 8 };

static int cid_parse_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
                        const unsigned char *in, size_t inlen, X509 *x, size_t chainidx, int *al,
                        void *arg)
{
    (void)ext_type, (void)x, (void)chainidx, (void)arg;
    if (context != SSL_EXT_CLIENT_HELLO)
        return 1;
    if (inlen < 1 || (size_t)in[0] != inlen - 1) {
        *al = SSL_AD_DECODE_ERROR;
        return 0;
    }
    dtls_peer_t *p = SSL_get_app_data(ssl);
    if (p && in[0] <= DTLS_CID_MAX) {
        p->cid_asked = true;
        p->peer_cid_len = in[0];
        memcpy(p->peer_cid, in + 1, in[0]);
    }
    return 1;
}

/* Chooses a random CID no other peer of the listener holds and files p under it. Its first
 * byte names the listener's shard (dtls_cfg_t.shard_index; listener.c steers by it). */
static bool cid_choose(dtls_peer_t *p, size_t len)
{
    dtls_listener_t *l = p->owner;
    unsigned n = l->cfg.shard_count > 1 ? (unsigned)l->cfg.shard_count : 1;
    for (int i = 0; i < CID_TRIES; i++) {
        if (RAND_bytes(p->cid, (int)len) != 1) {
            ERR_clear_error();
            return false;
        }
        /* The largest multiple of n that fits a byte, plus the index, is < 256. */
        p->cid[0] = (uint8_t)(p->cid[0] % (256u / n) * n + (unsigned)l->cfg.shard_index);
        if (!dtls__ptab_find_cid(&l->cids, p->cid, len)) {
            p->cid_len = (uint8_t)len;
            dtls__ptab_insert_cid(&l->cids, p);
            return true;
        }
    }
    return false;
}

static int cid_add_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
                      const unsigned char **out, size_t *outlen, X509 *x, size_t chainidx, int *al,
                      void *arg)
{
    (void)ext_type, (void)x, (void)chainidx, (void)al, (void)arg;
    dtls_peer_t *p = SSL_get_app_data(ssl);
    if (context != SSL_EXT_TLS1_2_SERVER_HELLO || !p || !p->cid_asked)
        return 0;
    dtls_ctx_t *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    uint8_t tag_len = 0;
    if (!ctx || ctx->cid_len <= 0 || !p->owner->cfg.compact_records ||
        dtls__aead_of_cipher(SSL_get_pending_cipher(ssl), &tag_len) == DTLS_AEAD_NONE)
        return 0;
    if (p->cid_len == 0 && !cid_choose(p, (size_t)ctx->cid_len))
        return 0;
    unsigned char *b = OPENSSL_malloc(1u + p->cid_len);
    if (!b)
        return 0;
    b[0] = p->cid_len;
    memcpy(b + 1, p->cid, p->cid_len);
    *out = b;
    *outlen = 1u + p->cid_len;
    return 1;
}

static void cid_free_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
                        const unsigned char *out, void *arg)
{
    (void)ssl, (void)ext_type, (void)context, (void)arg;
    OPENSSL_free((void *)out);
}

/* 3.0.22 (0x30000160): the build requires it (cmake/Dependencies.cmake); this catches a server
 * started against an older libssl than it was built with. */
#define DTLS_MIN_OPENSSL 0x30000160UL

static SSL_CTX *build(dtls_ctx_t *ctx, char err[static ERR_LEN])
{
    if (OpenSSL_version_num() < DTLS_MIN_OPENSSL) {
        snprintf(err, ERR_LEN, "OpenSSL %s is too old: coaphub needs 3.0.22 or newer",
                 OpenSSL_version(OPENSSL_VERSION_STRING));
        return NULL;
    }
    SSL_CTX *c = SSL_CTX_new(DTLS_server_method());
    if (!c) {
        ssl_err(err, "SSL_CTX_new", NULL);
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(c, DTLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(c, DTLS1_2_VERSION) != 1) {
        ssl_err(err, "cannot restrict to DTLS 1.2", NULL);
        goto fail;
    }
    char *deflt = ctx->psk_find ? xasprintf("%s:%s", CIPHERS, PSK_CIPHERS) : xstrdup(CIPHERS);
    const char *ciphers = ctx->ciphers ? ctx->ciphers : deflt;
    if (SSL_CTX_set_cipher_list(c, ciphers) != 1) {
        ssl_err(err, "cipher list", ciphers);
        free(deflt);
        goto fail;
    }
    free(deflt);
    if (ctx->psk_find)
        SSL_CTX_set_psk_server_callback(c, psk_server_cb);
    if (SSL_CTX_set1_groups_list(c, GROUPS) != 1) {
        ssl_err(err, "groups", GROUPS);
        goto fail;
    }
    /* No session tickets: resumption goes by session id from our own store (below). OpenSSL
     * 3.0 builds a ticket by i2d + d2i + i2d of the whole SSL_SESSION, and that d2i re-parses
     * the client certificate, public-key decoders included: ~190 us of server CPU per full
     * handshake, a quarter of it. Scandium resumes by session id only as well (spec §6.7). */
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_COOKIE_EXCHANGE |
                               SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, dtls__verify_cb);
    /* OpenSSL's default, 100 KB, is also the length a peer may announce for each of up to 11
     * fragmented handshake messages, allocated on the first fragment: ~240 KB of RSS per
     * stalled handshake (12 datagrams), 6x a plain one. A client chain is a few KB. */
    SSL_CTX_set_max_cert_list(c, (long)ctx->max_chain);
    SSL_CTX_set_cookie_generate_cb(c, dtls__cookie_generate_cb);
    SSL_CTX_set_cookie_verify_cb(c, dtls__cookie_verify_cb);
    SSL_CTX_set_session_id_context(c, SID_CTX, sizeof SID_CTX - 1);
    /* Two tiers. OpenSSL's own cache keeps sessions decoded, which makes resuming cheap
     * (no d2i: that re-parses the client certificate, ~150 us) but costs ~7.5 KB of RSS per
     * session with its parsed peer certificate, so it holds only the DTLS_HOT_SESSIONS most
     * recent ones (a fixed ~2 MB at most, whatever the number of devices). Every session is
     * also in our store as DER, ~0.5-1 KB (sess_new_cb), which OpenSSL asks on a miss. */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(c, DTLS_HOT_SESSIONS);
    SSL_CTX_sess_set_new_cb(c, sess_new_cb);
    SSL_CTX_sess_set_get_cb(c, sess_get_cb);
    SSL_CTX_set_timeout(c, SESSION_TIMEOUT_S);
    SSL_CTX_set_app_data(c, ctx);
    if (ctx->cid_len > 0 &&
        SSL_CTX_add_custom_ext(c, EXT_CONNECTION_ID,
                               SSL_EXT_CLIENT_HELLO | SSL_EXT_TLS1_2_SERVER_HELLO, cid_add_cb,
                               cid_free_cb, NULL, cid_parse_cb, NULL) != 1) {
        /* Refused if OpenSSL handles extension 54 itself (a future version may). */
        ssl_err(err, "cannot register the RFC 9146 connection_id extension", NULL);
        goto fail;
    }

    SSL_CTX_set_default_passwd_cb(c, password_cb);
    SSL_CTX_set_default_passwd_cb_userdata(c, ctx->password);
    if (SSL_CTX_use_certificate_chain_file(c, ctx->cert_path) != 1) {
        ssl_err(err, "cannot load server certificate", ctx->cert_path);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, ctx->key_path, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, "cannot load server key", ctx->key_path);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        ssl_err(err, "server key does not match certificate", ctx->cert_path);
        goto fail;
    }
    if (ctx->chain_path && load_chain(c, ctx->chain_path, err) != 0)
        goto fail;
    /* Not the password: a copy would outlive the key it unlocks for no use. */
    SSL_CTX_set_default_passwd_cb_userdata(c, NULL);
    return c;
fail:
    SSL_CTX_free(c);
    return NULL;
}

static void fingerprint(X509 *x, char out[static 96])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    out[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &n) != 1)
        return;
    for (unsigned i = 0; i < n && i < 32; i++)
        snprintf(out + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
}

/* Writes data to path atomically (temp file + rename) with the given mode. */
static int write_pem(const char *path, mode_t mode, int (*emit)(BIO *, void *), void *obj,
                     char err[static ERR_LEN])
{
    char *tmp = xasprintf("%s.tmp", path);
    int rc = -EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, ERR_LEN, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -errno;
    }
    BIO *b = BIO_new_fd(fd, BIO_CLOSE);
    if (b && emit(b, obj) == 1 && BIO_flush(b) == 1 && fsync(fd) == 0)
        rc = 0;
    BIO_free(b);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        snprintf(err, ERR_LEN, "cannot write %s", path);
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int emit_key(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int emit_cert(BIO *b, void *x)
{
    return PEM_write_bio_X509(b, x);
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v;
    X509V3_set_ctx(&v, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
    if (!e)
        return -EINVAL;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -EINVAL;
}

/* First start without a configured certificate: a self-signed EC P-256 certificate for ten
 * years, CN = host name, SAN localhost and 127.0.0.1 (what `coap-client -R` checks). */
static int generate(const char *cert_path, const char *key_path, char err[static ERR_LEN])
{
    int rc = -EINVAL;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    char host[256] = "coaphub";
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof host, "coaphub");
    host[63] = '\0'; /* X.520: a commonName has at most 64 characters */
    uint8_t serial[16];
    BIGNUM *bn = NULL;
    if (!k || !x || RAND_bytes(serial, sizeof serial) != 1)
        goto out;
    serial[0] &= 0x7f; /* a positive serial number */
    bn = BN_bin2bn(serial, sizeof serial, NULL);
    X509_NAME *name = X509_get_subject_name(x);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
        X509_set_version(x, X509_VERSION_3) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), 3650, 0, NULL) ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)host, -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, k) != 1 ||
        add_ext(x, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
        add_ext(x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") != 0 ||
        X509_sign(x, k, EVP_sha256()) <= 0) {
        ssl_err(err, "cannot generate the server certificate", NULL);
        goto out;
    }
    rc = write_pem(key_path, 0600, emit_key, k, err);
    if (rc == 0)
        rc = write_pem(cert_path, 0644, emit_cert, x, err);
    if (rc == 0) {
        char fp[96];
        fingerprint(x, fp);
        LOG_I("dtls", "generated a self-signed DTLS server certificate %s (CN=%s, SHA-256 %s)",
              cert_path, host, fp);
        LOG_I("dtls", "clients can trust it with: coap-client-openssl -R %s ... coaps://HOST/...",
              cert_path);
    }
out:
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

dtls_ctx_t *dtls_ctx_new(const dtls_cfg_t *cfg, char err[static ERR_LEN])
{
    dtls_ctx_t *ctx = xcalloc(1, sizeof *ctx);
    pthread_mutex_init(&ctx->mu, NULL);
    ctx->identify = cfg->identify;
    ctx->identify_ctx = cfg->identify_ctx;
    ctx->psk_find = cfg->psk_find;
    ctx->cid_len = cfg->compact_records ? cfg->cid_len : 0;
    ctx->skip_validity = cfg->skip_validity_check;
    ctx->min_rsa_bits = cfg->min_rsa_bits;
    ctx->max_chain = cfg->max_client_chain_bytes;
    sess_init(&ctx->sessions);
    ctx->restore = dtls__restore_new();
    if (cfg->cert_file) {
        ctx->cert_path = xstrdup(cfg->cert_file);
        ctx->key_path = xstrdup(cfg->key_file ? cfg->key_file : cfg->cert_file);
    } else {
        const char *dir = cfg->data_dir;
        if (!dir) {
            snprintf(err, ERR_LEN, "dtls: no certificate file and no data dir to generate one in");
            goto fail;
        }
        ctx->cert_path = xasprintf("%s/dtls-server-cert.pem", dir);
        ctx->key_path = xasprintf("%s/dtls-server-key.pem", dir);
        if (access(ctx->cert_path, R_OK) != 0 || access(ctx->key_path, R_OK) != 0) {
            if (generate(ctx->cert_path, ctx->key_path, err) != 0)
                goto fail;
        }
    }
    ctx->chain_path = cfg->chain_file ? xstrdup(cfg->chain_file) : NULL;
    ctx->password = cfg->key_password ? xstrdup(cfg->key_password) : NULL;
    ctx->ciphers = cfg->ciphers && *cfg->ciphers ? xstrdup(cfg->ciphers) : NULL;
    ctx->ssl_ctx = build(ctx, err);
    if (!ctx->ssl_ctx)
        goto fail;
    X509 *x = SSL_CTX_get0_certificate(ctx->ssl_ctx);
    char fp[96] = "";
    if (x)
        fingerprint(x, fp);
    LOG_I("dtls", "server certificate %s (SHA-256 %s)", ctx->cert_path, fp);
    return ctx;
fail:
    dtls_ctx_free(ctx);
    return NULL;
}

int dtls_ctx_reload(dtls_ctx_t *ctx, char err[static ERR_LEN])
{
    SSL_CTX *c = build(ctx, err);
    if (!c)
        return -EINVAL;
    pthread_mutex_lock(&ctx->mu);
    SSL_CTX *old = ctx->ssl_ctx;
    ctx->ssl_ctx = c;
    atomic_fetch_add(&ctx->gen, 1);
    pthread_mutex_unlock(&ctx->mu);
    SSL_CTX_free(old); /* sessions made from it hold their own references */
    /* Sessions negotiated under the old settings (ciphers, certificate) are not resumed. */
    sess_clear(&ctx->sessions);
    LOG_I("dtls", "server certificate reloaded from %s", ctx->cert_path);
    return 0;
}

dtls_restore_t *dtls__ctx_restore(dtls_ctx_t *ctx)
{
    return ctx->restore;
}

int dtls_ctx_restore_sessions(dtls_ctx_t *ctx, const char *data_dir, char err[static ERR_LEN])
{
    return dtls__restore_load_file(ctx->restore, data_dir, err);
}

size_t dtls_ctx_save_unclaimed(dtls_ctx_t *ctx, dtls_save_t *w)
{
    return dtls__restore_save_unclaimed(ctx->restore, w);
}

size_t dtls_ctx_restore_loaded(dtls_ctx_t *ctx)
{
    return dtls__restore_loaded(ctx->restore);
}

const char *dtls_ctx_cert_path(const dtls_ctx_t *ctx)
{
    return ctx->cert_path;
}

void dtls_ctx_free(dtls_ctx_t *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    sess_fini(&ctx->sessions);
    dtls__restore_free(ctx->restore);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx->cert_path);
    free(ctx->key_path);
    free(ctx->chain_path);
    free(ctx->ciphers);
    if (ctx->password) {
        OPENSSL_cleanse(ctx->password, strlen(ctx->password));
        free(ctx->password);
    }
    free(ctx);
}

SSL_CTX *dtls__ctx_acquire(dtls_ctx_t *ctx, unsigned *gen)
{
    pthread_mutex_lock(&ctx->mu);
    SSL_CTX *c = ctx->ssl_ctx;
    SSL_CTX_up_ref(c);
    if (gen)
        *gen = atomic_load(&ctx->gen);
    pthread_mutex_unlock(&ctx->mu);
    return c;
}

unsigned dtls__ctx_gen(dtls_ctx_t *ctx)
{
    return atomic_load(&ctx->gen);
}

int64_t dtls__ctx_identify(dtls_ctx_t *ctx, const uint8_t *const *der, const size_t *len, size_t n)
{
    return ctx->identify ? ctx->identify(ctx->identify_ctx, der, len, n) : 0;
}
