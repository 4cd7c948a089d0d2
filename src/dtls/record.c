/* record.c — the compact DTLS 1.2 record layer: key expansion, AEAD seal/open, replay window.
 *
 * Once OpenSSL has finished a handshake, a session needs only its record keys, sequence
 * numbers and replay window (spec dtls-session-memory.md §5): this file is that state and
 * the code that protects records with it, so the ~50 KB SSL object can be freed. Crypto
 * stays OpenSSL's (EVP_KDF TLS1-PRF, EVP AES-GCM/CCM, ChaCha20-Poly1305); only the framing is ours.
 *
 * Invariants: a record's sequence number enters the replay window only after its tag
 * verified; no sequence number is ever sent twice (the 48-bit space is never wrapped); only
 * DTLS 1.2 and the session's one epoch are accepted. Pure functions of their inputs, no I/O:
 * peer.c/compact.c decide what to do with each record.
 */
#include "dtls/dtls_int.h"

#include "core/err.h"

#include <errno.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <string.h>

/* RFC 5246 §6.2.3: a TLSCiphertext fragment carries at most 2^14 bytes of plaintext. */
enum { MAX_PLAIN = 16384, NONCE_LEN = 12, AES_SALT_LEN = 4, AAD_LEN = 13 };

static const char *const CIPHER_NAMES[DTLS_AEAD_N] = {
    [DTLS_AEAD_AES128_GCM] = "AES-128-GCM",     [DTLS_AEAD_AES256_GCM] = "AES-256-GCM",
    [DTLS_AEAD_AES128_CCM] = "AES-128-CCM",     [DTLS_AEAD_AES256_CCM] = "AES-256-CCM",
    [DTLS_AEAD_CHACHA20] = "ChaCha20-Poly1305",
};

static void put_seq(uint8_t *p, uint16_t epoch, uint64_t seq);

static bool is_ccm(unsigned alg)
{
    return alg == DTLS_AEAD_AES128_CCM || alg == DTLS_AEAD_AES256_CCM;
}

static uint8_t key_len_of(unsigned alg)
{
    return alg == DTLS_AEAD_AES256_GCM || alg == DTLS_AEAD_AES256_CCM || alg == DTLS_AEAD_CHACHA20
               ? 32
               : 16;
}

/* The implicit IV's length (RFC 5288 §3: 4; RFC 7905 §2: 12) and the explicit nonce sent in
 * each record (8; none for ChaCha20-Poly1305). */
static size_t iv_len_of(unsigned alg)
{
    return alg == DTLS_AEAD_CHACHA20 ? DTLS_SALT_LEN : AES_SALT_LEN;
}

static size_t explicit_len_of(unsigned alg)
{
    return alg == DTLS_AEAD_CHACHA20 ? 0 : DTLS_EXPLICIT_NONCE;
}

/* The AEAD nonce of the record with sequence number epoch || seq. AES: salt[4] || the
 * explicit nonce as sent (explicit). ChaCha20: the 12-byte IV XOR (0^32 || epoch || seq). */
static void make_nonce(uint8_t nonce[static NONCE_LEN], unsigned alg, const uint8_t *salt,
                       const uint8_t *explicit, uint16_t epoch, uint64_t seq)
{
    if (alg == DTLS_AEAD_CHACHA20) {
        uint8_t s[8];
        put_seq(s, epoch, seq);
        memcpy(nonce, salt, NONCE_LEN);
        for (int i = 0; i < 8; i++)
            nonce[4 + i] ^= s[i];
        return;
    }
    memcpy(nonce, salt, AES_SALT_LEN);
    memcpy(nonce + AES_SALT_LEN, explicit, DTLS_EXPLICIT_NONCE);
}

void dtls__aead_init(dtls_aead_ctx_t *a)
{
    memset(a, 0, sizeof *a);
    for (unsigned i = 1; i < DTLS_AEAD_N; i++)
        a->ciph[i] = EVP_CIPHER_fetch(NULL, CIPHER_NAMES[i], NULL); /* NULL: suite unused */
    a->enc = EVP_CIPHER_CTX_new();
    a->dec = EVP_CIPHER_CTX_new();
    a->enc_alg = a->dec_alg = -1;
    ASSERT(a->enc && a->dec);
}

void dtls__aead_fini(dtls_aead_ctx_t *a)
{
    for (unsigned i = 0; i < DTLS_AEAD_N; i++)
        EVP_CIPHER_free(a->ciph[i]);
    /* The contexts hold expanded keys: EVP_CIPHER_CTX_free cleanses them. */
    EVP_CIPHER_CTX_free(a->enc);
    EVP_CIPHER_CTX_free(a->dec);
    memset(a, 0, sizeof *a);
}

/* ---- wire format ---------------------------------------------------------------------------
 *
 * RFC 6347 §4.1, DTLS 1.2 record:
 *
 *   0        1        3        5                11       13
 *   +--------+--------+--------+-----------------+--------+------------------------+
 *   | type   | version| epoch  | sequence_number | length | fragment (length bytes) |
 *   +--------+--------+--------+-----------------+--------+------------------------+
 *
 * For the AEAD suites (RFC 5288 §3, RFC 6655 §3) the fragment is
 *   explicit_nonce[8] || ciphertext || tag[16 or 8]
 * where we send explicit_nonce = epoch || sequence_number, and the AEAD nonce is
 *   salt[4] (client_ or server_write_IV) || explicit_nonce[8].
 * RFC 5246 §6.2.3.3, RFC 6347 §4.1.2.1: additional data =
 *   epoch || sequence_number || type || version || plaintext length.
 */

static uint64_t get48(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_seq(uint8_t *p, uint16_t epoch, uint64_t seq)
{
    p[0] = (uint8_t)(epoch >> 8);
    p[1] = (uint8_t)epoch;
    for (int i = 0; i < 6; i++)
        p[2 + i] = (uint8_t)(seq >> (40 - 8 * i));
}

ssize_t dtls__rec_parse(const uint8_t *p, size_t len, dtls_rec_t *r)
{
    if (len < DTLS_REC_HDR)
        return -EBADMSG;
    size_t frag_len = (size_t)p[11] << 8 | p[12];
    if (frag_len > len - DTLS_REC_HDR)
        return -EBADMSG;
    r->type = p[0];
    r->version = (uint16_t)(p[1] << 8 | p[2]);
    r->epoch = (uint16_t)(p[3] << 8 | p[4]);
    r->seq = get48(p + 5);
    r->frag = p + DTLS_REC_HDR;
    r->frag_len = frag_len;
    return (ssize_t)(DTLS_REC_HDR + frag_len);
}

static void make_aad(uint8_t aad[static AAD_LEN], uint16_t epoch, uint64_t seq, uint8_t type,
                     size_t plain_len)
{
    put_seq(aad, epoch, seq);
    aad[8] = type;
    aad[9] = 0xfe;
    aad[10] = 0xfd;
    aad[11] = (uint8_t)(plain_len >> 8);
    aad[12] = (uint8_t)plain_len;
}

/* ---- keys ------------------------------------------------------------------------------- */

dtls_aead_alg_t dtls__aead_of_cipher(const SSL_CIPHER *c, uint8_t *tag_len)
{
    if (!c)
        return DTLS_AEAD_NONE;
    /* CCM and CCM_8 share the cipher NID; only the suite name tells the tag length. */
    const char *name = SSL_CIPHER_get_name(c);
    bool ccm8 = name && strstr(name, "CCM8") != NULL;
    *tag_len = 16;
    switch (SSL_CIPHER_get_cipher_nid(c)) {
    case NID_aes_128_gcm:
        return DTLS_AEAD_AES128_GCM;
    case NID_aes_256_gcm:
        return DTLS_AEAD_AES256_GCM;
    case NID_aes_128_ccm:
        *tag_len = ccm8 ? 8 : 16;
        return DTLS_AEAD_AES128_CCM;
    case NID_aes_256_ccm:
        *tag_len = ccm8 ? 8 : 16;
        return DTLS_AEAD_AES256_CCM;
    case NID_chacha20_poly1305:
        return DTLS_AEAD_CHACHA20;
    default:
        return DTLS_AEAD_NONE;
    }
}

int dtls__rl_derive(dtls_rl_t *rl, dtls_aead_alg_t alg, uint8_t tag_len, const EVP_MD *md,
                    const uint8_t *master, size_t master_len,
                    const uint8_t client_random[static 32],
                    const uint8_t server_random[static 32])
{
    if (alg <= DTLS_AEAD_NONE || alg >= DTLS_AEAD_N || !md || master_len == 0 ||
        (tag_len != 16 && !(tag_len == 8 && is_ccm(alg))))
        return -EINVAL;
    memset(rl, 0, sizeof *rl);
    uint8_t k = key_len_of(alg);
    /* RFC 5246 §6.3: key_block = PRF(master_secret, "key expansion",
     * server_random + client_random); AEAD suites have no MAC keys, so it is
     * client_write_key | server_write_key | client_write_IV | server_write_IV. */
    static const char LABEL[] = "key expansion";
    uint8_t seed[sizeof LABEL - 1 + 64];
    memcpy(seed, LABEL, sizeof LABEL - 1);
    memcpy(seed + sizeof LABEL - 1, server_random, 32);
    memcpy(seed + sizeof LABEL - 1 + 32, client_random, 32);
    size_t iv = iv_len_of(alg);
    uint8_t block[2 * DTLS_KEY_MAX + 2 * DTLS_SALT_LEN];
    size_t block_len = 2u * k + 2u * iv;
    int rc = -EIO;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                             (char *)EVP_MD_get0_name(md), 0),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)master, master_len),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof seed),
            OSSL_PARAM_construct_end(),
        };
        if (EVP_KDF_derive(kctx, block, block_len, params) == 1)
            rc = 0;
    }
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    if (rc == 0) {
        rl->alg = (uint8_t)alg;
        rl->tag_len = tag_len;
        rl->key_len = k;
        rl->epoch = 1;
        memcpy(rl->rkey, block, k);
        memcpy(rl->wkey, block + k, k);
        memcpy(rl->rsalt, block + 2 * k, iv);
        memcpy(rl->wsalt, block + 2 * k + iv, iv);
    }
    OPENSSL_cleanse(block, sizeof block);
    return rc;
}

int dtls__rl_from_ssl(dtls_rl_t *rl, SSL *ssl)
{
    if (SSL_version(ssl) != DTLS1_2_VERSION)
        return -ENOTSUP;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    uint8_t tag_len = 0;
    dtls_aead_alg_t alg = dtls__aead_of_cipher(c, &tag_len);
    SSL_SESSION *sess = SSL_get_session(ssl);
    if (alg == DTLS_AEAD_NONE || !sess)
        return -ENOTSUP;
    uint8_t master[SSL_MAX_MASTER_KEY_LENGTH], cr[32], sr[32];
    size_t ml = SSL_SESSION_get_master_key(sess, master, sizeof master);
    int rc = -EIO;
    if (ml > 0 && SSL_get_client_random(ssl, cr, sizeof cr) == sizeof cr &&
        SSL_get_server_random(ssl, sr, sizeof sr) == sizeof sr)
        rc = dtls__rl_derive(rl, alg, tag_len, SSL_CIPHER_get_handshake_digest(c), master, ml,
                             cr, sr);
    OPENSSL_cleanse(master, sizeof master);
    return rc;
}

void dtls__rl_mirror(const dtls_rl_t *server, dtls_rl_t *client)
{
    *client = *server;
    memcpy(client->rkey, server->wkey, sizeof client->rkey);
    memcpy(client->wkey, server->rkey, sizeof client->wkey);
    memcpy(client->rsalt, server->wsalt, sizeof client->rsalt);
    memcpy(client->wsalt, server->rsalt, sizeof client->wsalt);
    client->w_seq = 0;
    client->r_any = false;
    client->r_top = client->r_map = 0;
    client->uid = 0;
}

void dtls__rl_wipe(dtls_rl_t *rl)
{
    OPENSSL_cleanse(rl, sizeof *rl);
}

/* ---- replay window (RFC 6347 §4.1.2.6) ---------------------------------------------------- */

bool dtls__rl_replay_check(const dtls_rl_t *rl, uint64_t seq)
{
    if (!rl->r_any || seq > rl->r_top)
        return true;
    uint64_t d = rl->r_top - seq;
    if (d >= DTLS_REPLAY_WINDOW)
        return false; /* older than the window: cannot tell, so refuse */
    return !(rl->r_map >> d & 1);
}

void dtls__rl_replay_mark(dtls_rl_t *rl, uint64_t seq)
{
    if (!rl->r_any) {
        rl->r_any = true;
        rl->r_top = seq;
        rl->r_map = 1;
    } else if (seq > rl->r_top) {
        uint64_t shift = seq - rl->r_top;
        rl->r_map = shift >= DTLS_REPLAY_WINDOW ? 1 : rl->r_map << shift | 1;
        rl->r_top = seq;
    } else if (rl->r_top - seq < DTLS_REPLAY_WINDOW) {
        rl->r_map |= UINT64_C(1) << (rl->r_top - seq);
    }
}

/* ---- AEAD --------------------------------------------------------------------------------- */

/* Keys ctx for rl in direction enc (unless it already holds them) and sets the nonce. */
static int key_ctx(dtls_aead_ctx_t *a, const dtls_rl_t *rl, int enc, const uint8_t nonce[12])
{
    EVP_CIPHER_CTX *ctx = enc ? a->enc : a->dec;
    uint64_t *owner = enc ? &a->enc_uid : &a->dec_uid;
    EVP_CIPHER *ciph = rl->alg < DTLS_AEAD_N ? a->ciph[rl->alg] : NULL;
    if (!ciph)
        return -EIO;
    int *alg = enc ? &a->enc_alg : &a->dec_alg;
    if (rl->uid == 0 || *owner != rl->uid) {
        *owner = 0;
        /* A new cipher: a new provider context, set up before the key (CCM fixes nonce and
         * tag lengths when the key is set, RFC 3610 L and M). The same cipher as the last
         * session's (the usual case: one suite for every device): only the key changes, and
         * the context keeps its nonce and tag lengths — passing the cipher again would free
         * and allocate the provider context on every record of a shard with many devices. */
        int setup = (int)rl->alg << 8 | rl->tag_len; /* CCM and CCM-8 differ in tag only */
        if (*alg != setup) {
            *alg = -1;
            if (EVP_CipherInit_ex2(ctx, ciph, NULL, NULL, enc, NULL) != 1 ||
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
                (is_ccm(rl->alg) &&
                 EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, rl->tag_len, NULL) != 1))
                return -EIO;
        }
        if (EVP_CipherInit_ex2(ctx, NULL, enc ? rl->wkey : rl->rkey, NULL, enc, NULL) != 1) {
            *alg = -1;
            return -EIO;
        }
        *alg = setup;
        *owner = rl->uid;
    }
    if (EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, enc, NULL) != 1) {
        *owner = 0;
        return -EIO;
    }
    return 0;
}

/* AEAD-decrypts n bytes of ct with tag into out under rl's read key (nonce, aad given).
 * 0, -EIO (cipher setup) or -EBADMSG (authentication failed; out is then garbage). */
static int aead_open(dtls_rl_t *rl, dtls_aead_ctx_t *a, const uint8_t nonce[static NONCE_LEN],
                     const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t n,
                     const uint8_t *tag, uint8_t *out)
{
    if (key_ctx(a, rl, 0, nonce) != 0)
        return -EIO;
    EVP_CIPHER_CTX *ctx = a->dec;
    int outl = 0, ok;
    if (is_ccm(rl->alg)) {
        /* CCM: tag and total length first; the one Update verifies the tag. */
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, rl->tag_len, (void *)tag) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &outl, NULL, (int)n) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1 &&
             EVP_DecryptUpdate(ctx, out, &outl, ct, (int)n) == 1;
    } else {
        int fin = 0;
        ok = EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1 &&
             EVP_DecryptUpdate(ctx, out, &outl, ct, (int)n) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, rl->tag_len, (void *)tag) == 1 &&
             EVP_DecryptFinal_ex(ctx, out + outl, &fin) == 1;
    }
    if (!ok) {
        /* Nothing of an unauthenticated record may be used; the caller drops it. */
        ERR_clear_error();
        return -EBADMSG;
    }
    return 0;
}

/* AEAD-encrypts len bytes of p to ct, tag appended, under rl's write key. 0 or -EIO. */
static int aead_seal(dtls_rl_t *rl, dtls_aead_ctx_t *a, const uint8_t nonce[static NONCE_LEN],
                     const uint8_t *aad, size_t aad_len, const uint8_t *p, size_t len, uint8_t *ct)
{
    if (key_ctx(a, rl, 1, nonce) != 0)
        return -EIO;
    EVP_CIPHER_CTX *ctx = a->enc;
    /* A non-NULL input even when empty: CCM reads (out, NULL) as "finish". */
    const uint8_t *src = len ? p : ct;
    int outl = 0, fin = 0;
    bool ok = (!is_ccm(rl->alg) || EVP_EncryptUpdate(ctx, NULL, &outl, NULL, (int)len) == 1) &&
              EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1 &&
              EVP_EncryptUpdate(ctx, ct, &outl, src, (int)len) == 1 &&
              EVP_EncryptFinal_ex(ctx, ct + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, rl->tag_len, ct + len) == 1;
    if (!ok) {
        ERR_clear_error();
        return -EIO;
    }
    return 0;
}

/* The checks every record passes before its tag is tried; the plaintext length in *n. */
static int open_checks(const dtls_rl_t *rl, const dtls_rec_t *r, size_t cap, size_t *n)
{
    if (r->version != 0xfefd || r->epoch != rl->epoch)
        return -EPROTO;
    if (!dtls__rl_replay_check(rl, r->seq))
        return -EALREADY;
    size_t over = explicit_len_of(rl->alg) + rl->tag_len;
    if (r->frag_len < over)
        return -EBADMSG;
    *n = r->frag_len - over;
    if (*n > cap || *n > INT_MAX)
        return -EBADMSG;
    return 0;
}

ssize_t dtls__rl_open(dtls_rl_t *rl, dtls_aead_ctx_t *a, const dtls_rec_t *r, uint8_t *out,
                      size_t cap)
{
    if (r->type == DTLS_CT_CID)
        return -EPROTO; /* its additional data differs: dtls__rl_open_cid */
    size_t n = 0;
    int rc = open_checks(rl, r, cap, &n);
    if (rc != 0)
        return rc;
    if (n > MAX_PLAIN)
        return -EBADMSG;
    uint8_t nonce[NONCE_LEN], aad[AAD_LEN];
    make_nonce(nonce, rl->alg, rl->rsalt, r->frag, r->epoch, r->seq);
    make_aad(aad, r->epoch, r->seq, r->type, n);
    const uint8_t *ct = r->frag + explicit_len_of(rl->alg);
    rc = aead_open(rl, a, nonce, aad, AAD_LEN, ct, n, ct + n, out);
    if (rc != 0)
        return rc;
    dtls__rl_replay_mark(rl, r->seq);
    return (ssize_t)n;
}

ssize_t dtls__rl_seal(dtls_rl_t *rl, dtls_aead_ctx_t *a, uint8_t type, const uint8_t *p,
                      size_t len, uint8_t *out, size_t cap)
{
    size_t expl = explicit_len_of(rl->alg);
    size_t frag = expl + len + rl->tag_len;
    if (len > MAX_PLAIN || cap < DTLS_REC_HDR + frag)
        return -ENOSPC;
    if (rl->w_seq > DTLS_SEQ_MAX)
        return -EOVERFLOW; /* RFC 6347 §4.1: a sequence number is never reused */
    uint64_t seq = rl->w_seq;
    out[0] = type;
    out[1] = 0xfe;
    out[2] = 0xfd;
    put_seq(out + 3, rl->epoch, seq);
    out[11] = (uint8_t)(frag >> 8);
    out[12] = (uint8_t)frag;
    uint8_t *explicit = out + DTLS_REC_HDR;
    if (expl)
        put_seq(explicit, rl->epoch, seq);
    uint8_t nonce[NONCE_LEN], aad[AAD_LEN];
    make_nonce(nonce, rl->alg, rl->wsalt, explicit, rl->epoch, seq);
    make_aad(aad, rl->epoch, seq, type, len);
    if (aead_seal(rl, a, nonce, aad, AAD_LEN, p, len, explicit + expl) != 0)
        return -EIO;
    rl->w_seq = seq + 1;
    return (ssize_t)(DTLS_REC_HDR + frag);
}

/* ---- RFC 9146 Connection ID ----------------------------------------------------------------
 *
 * §4, the record:
 *   type=25 | version | epoch | sequence_number | cid[cid_len] | length | enc_content
 * enc_content is, for our AEAD suites, explicit_nonce[8] (not for ChaCha20) || ciphertext ||
 * tag, and the plaintext is DTLSInnerPlaintext = content || real_type || zeros.
 * §5, the additional data (the final RFC's, not draft-ietf-tls-dtls-connection-id-07's):
 *   seq_num_placeholder (8 x 0xff) || 25 || cid_length || 25 || version || epoch ||
 *   sequence_number || cid || length_of_DTLSInnerPlaintext
 * The nonce is the same as for an ordinary record.
 */

enum { CID_AAD_MAX = 8 + 3 + 2 + 8 + DTLS_CID_MAX + 2 };

static size_t make_cid_aad(uint8_t *aad, uint16_t epoch, uint64_t seq, const uint8_t *cid,
                           size_t cid_len, size_t inner_len)
{
    memset(aad, 0xff, 8);
    aad[8] = DTLS_CT_CID;
    aad[9] = (uint8_t)cid_len;
    aad[10] = DTLS_CT_CID;
    aad[11] = 0xfe;
    aad[12] = 0xfd;
    put_seq(aad + 13, epoch, seq);
    memcpy(aad + 21, cid, cid_len);
    aad[21 + cid_len] = (uint8_t)(inner_len >> 8);
    aad[22 + cid_len] = (uint8_t)inner_len;
    return 23 + cid_len;
}

ssize_t dtls__rec_parse_cid(const uint8_t *p, size_t len, size_t cid_len, dtls_rec_t *r)
{
    if (len < 1 || p[0] != DTLS_CT_CID) {
        ssize_t n = dtls__rec_parse(p, len, r);
        if (n > 0) {
            r->cid = NULL;
            r->cid_len = 0;
        }
        return n;
    }
    size_t hdr = DTLS_CID_HDR + cid_len;
    if (cid_len > DTLS_CID_MAX || len < hdr)
        return -EBADMSG;
    size_t frag_len = (size_t)p[hdr - 2] << 8 | p[hdr - 1];
    if (frag_len > len - hdr)
        return -EBADMSG;
    r->type = p[0];
    r->version = (uint16_t)(p[1] << 8 | p[2]);
    r->epoch = (uint16_t)(p[3] << 8 | p[4]);
    r->seq = get48(p + 5);
    r->cid = p + 11;
    r->cid_len = (uint8_t)cid_len;
    r->frag = p + hdr;
    r->frag_len = frag_len;
    return (ssize_t)(hdr + frag_len);
}

ssize_t dtls__rl_open_cid(dtls_rl_t *rl, dtls_aead_ctx_t *a, const dtls_rec_t *r, uint8_t *type,
                          uint8_t *out, size_t cap)
{
    if (r->type != DTLS_CT_CID || r->cid_len > DTLS_CID_MAX || (r->cid_len && !r->cid))
        return -EPROTO;
    size_t n = 0;
    int rc = open_checks(rl, r, cap, &n);
    if (rc != 0)
        return rc;
    /* The inner plaintext: at most 2^14 bytes of content, its type, and padding that
     * keeps it within 2^14 + 256 (RFC 9146 §4 keeps TLS 1.3's limit for it). */
    if (n > MAX_PLAIN + 256)
        return -EBADMSG;
    uint8_t nonce[NONCE_LEN], aad[CID_AAD_MAX];
    make_nonce(nonce, rl->alg, rl->rsalt, r->frag, r->epoch, r->seq);
    size_t aad_len = make_cid_aad(aad, r->epoch, r->seq, r->cid, r->cid_len, n);
    const uint8_t *ct = r->frag + explicit_len_of(rl->alg);
    rc = aead_open(rl, a, nonce, aad, aad_len, ct, n, ct + n, out);
    if (rc != 0)
        return rc;
    /* The real type is the last non-zero byte; an all-zero inner plaintext is malformed. */
    size_t k = n;
    while (k > 0 && out[k - 1] == 0)
        k--;
    if (k == 0 || k - 1 > MAX_PLAIN)
        return -EBADMSG; /* authentic but malformed: the window stays as it was */
    dtls__rl_replay_mark(rl, r->seq);
    *type = out[k - 1];
    return (ssize_t)(k - 1);
}

ssize_t dtls__rl_seal_cid(dtls_rl_t *rl, dtls_aead_ctx_t *a, uint8_t type, const uint8_t *cid,
                          size_t cid_len, const uint8_t *p, size_t len, uint8_t *out, size_t cap)
{
    size_t expl = explicit_len_of(rl->alg);
    size_t hdr = DTLS_CID_HDR + cid_len;
    size_t inner = len + 1;
    size_t frag = expl + inner + rl->tag_len;
    if (cid_len > DTLS_CID_MAX || len > MAX_PLAIN || cap < hdr + frag)
        return -ENOSPC;
    if (rl->w_seq > DTLS_SEQ_MAX)
        return -EOVERFLOW;
    uint64_t seq = rl->w_seq;
    out[0] = DTLS_CT_CID;
    out[1] = 0xfe;
    out[2] = 0xfd;
    put_seq(out + 3, rl->epoch, seq);
    memcpy(out + 11, cid, cid_len);
    out[hdr - 2] = (uint8_t)(frag >> 8);
    out[hdr - 1] = (uint8_t)frag;
    uint8_t *explicit = out + hdr;
    if (expl)
        put_seq(explicit, rl->epoch, seq);
    uint8_t *ct = explicit + expl;
    /* The inner plaintext is built in place (the cipher runs in place). */
    if (len)
        memmove(ct, p, len);
    ct[len] = type;
    uint8_t nonce[NONCE_LEN], aad[CID_AAD_MAX];
    make_nonce(nonce, rl->alg, rl->wsalt, explicit, rl->epoch, seq);
    size_t aad_len = make_cid_aad(aad, rl->epoch, seq, cid, cid_len, inner);
    if (aead_seal(rl, a, nonce, aad, aad_len, ct, inner, ct) != 0)
        return -EIO;
    rl->w_seq = seq + 1;
    return (ssize_t)(hdr + frag);
}

ssize_t dtls__rl_cid_to_plain(dtls_rl_t *rl, dtls_aead_ctx_t *a, const dtls_rec_t *r, uint8_t *type,
                              uint8_t *out, size_t cap)
{
    /* The plaintext goes where the ordinary record's ciphertext will be. */
    size_t off = DTLS_REC_HDR + explicit_len_of(rl->alg);
    if (cap < off + rl->tag_len)
        return -ENOSPC;
    ssize_t n = dtls__rl_open_cid(rl, a, r, type, out + off, cap - off - rl->tag_len);
    if (n < 0)
        return n;
    /* Sealed the way the client would have sealed it without a CID: with its write keys
     * (our read keys) and the same sequence number, by a throwaway mirror that caches no
     * cipher context (uid 0). */
    dtls_rl_t c;
    dtls__rl_mirror(rl, &c);
    c.w_seq = r->seq;
    ssize_t m = dtls__rl_seal(&c, a, *type, out + off, (size_t)n, out, cap);
    dtls__rl_wipe(&c);
    return m;
}
