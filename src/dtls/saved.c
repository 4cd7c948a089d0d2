/* saved.c — established compact sessions kept across a restart: the file format, its key,
 * and the table of loaded sessions that the shards' listeners claim from.
 *
 * File <data_dir>/dtls-sessions.bin (written atomically: tmp + fsync + rename):
 *
 *   header (44 bytes, authenticated as AAD, not encrypted)
 *     magic "CHDTLSS\0" (8) | version u32 | flags u32 (0) | created unix s u64 |
 *     max age s u64 | nonce (12)
 *   body, AES-256-GCM under the key in <data_dir>/dtls-sessions.key (32 random bytes, 0600,
 *   made on first use), followed by its 16-byte tag:
 *     count u32, then per session (all integers big-endian):
 *       save id u64 (random; names the session in the stale list)
 *       family u8 (4|6) | port u16 | address (4|16) [| scope id u32 for IPv6]
 *       device id i64 | last seen unix ms i64
 *       alg u8 | tag len u8 | key len u8 | flags u8 (bit 0: r_any) | epoch u16
 *       rkey, wkey (key len each) | rsalt, wsalt (12 each)
 *       w_seq u64 (already past the margin) | r_top u64 | r_map u64
 *       our CID: len u8 + bytes | peer's CID: len u8 + bytes (empty until CID is wired)
 *       sink blob: len u16 + bytes (what the CoAP side needs to re-create observers)
 *
 * Threat model: the file holds live record keys. Whoever can read the data dir can read the
 * key file too, so the encryption protects backups and copies of the one file; the tag makes
 * a file crafted or altered without the key fail as a whole. The parser still treats the
 * plaintext as hostile (fuzzed: tests/fuzz/dtls_saved.c): every length is checked.
 *
 * The table: one per dtls_ctx_t (all shards), a mutex, keyed by address. The datagram path
 * looks at it only while it is non-empty (an atomic count), i.e. for the first max-age
 * seconds after a start that restored sessions.
 */
#include "dtls/dtls_int.h"

#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/sockaddr.h"
#include "core/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const uint8_t MAGIC[8] = {'C', 'H', 'D', 'T', 'L', 'S', 'S', 0};
enum { HDR_LEN = 44, NONCE_LEN = 12, TAG_LEN = 16, KEY_LEN = 32 };
/* A file larger than this is not read (10 000 sessions take ~1.2 MB without observers). */
#define MAX_FILE (256u << 20)

/* ---- byte writer / reader ---------------------------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
} wbuf_t;

static void w_bytes(wbuf_t *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        w->p = xrealloc(w->p, cap);
        w->cap = cap;
    }
    if (n)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}
static void w_u8(wbuf_t *w, unsigned v)
{
    uint8_t b = (uint8_t)v;
    w_bytes(w, &b, 1);
}
static void w_u16(wbuf_t *w, unsigned v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    w_bytes(w, b, 2);
}
static void w_u32(wbuf_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    w_bytes(w, b, 4);
}
static void w_u64(wbuf_t *w, uint64_t v)
{
    w_u32(w, (uint32_t)(v >> 32));
    w_u32(w, (uint32_t)v);
}

typedef struct rbuf {
    const uint8_t *p;
    size_t len;
    bool bad; /* read past the end: everything after reads as zero */
} rbuf_t;

static const uint8_t *r_take(rbuf_t *r, size_t n)
{
    static const uint8_t zero[64];
    if (r->bad || r->len < n) {
        r->bad = true;
        return n <= sizeof zero ? zero : NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->len -= n;
    return p;
}
static unsigned r_u8(rbuf_t *r)
{
    return r_take(r, 1)[0];
}
static unsigned r_u16(rbuf_t *r)
{
    const uint8_t *b = r_take(r, 2);
    return (unsigned)b[0] << 8 | b[1];
}
static uint32_t r_u32(rbuf_t *r)
{
    const uint8_t *b = r_take(r, 4);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static uint64_t r_u64(rbuf_t *r)
{
    uint64_t hi = r_u32(r);
    return hi << 32 | r_u32(r);
}
static void r_copy(rbuf_t *r, void *out, size_t n)
{
    const uint8_t *p = r_take(r, n);
    if (p)
        memcpy(out, p, n);
    else
        memset(out, 0, n);
}

/* ---- sessions ---------------------------------------------------------------------------- */

void dtls__saved_sess_free(dtls_saved_sess_t *s)
{
    if (!s)
        return;
    dtls__rl_wipe(&s->rl);
    free(s->blob);
    free(s);
}

static void put_sess(wbuf_t *w, const dtls_saved_sess_t *s)
{
    w_u64(w, s->id);
    if (s->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&s->addr;
        w_u8(w, 4);
        w_u16(w, ntohs(a->sin_port));
        w_bytes(w, &a->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&s->addr;
        w_u8(w, 6);
        w_u16(w, ntohs(a->sin6_port));
        w_bytes(w, &a->sin6_addr, 16);
        w_u32(w, a->sin6_scope_id);
    }
    w_u64(w, (uint64_t)s->device_id);
    w_u64(w, (uint64_t)s->last_seen_unix_ms);
    const dtls_rl_t *rl = &s->rl;
    w_u8(w, rl->alg);
    w_u8(w, rl->tag_len);
    w_u8(w, rl->key_len);
    w_u8(w, rl->r_any ? 1 : 0);
    w_u16(w, rl->epoch);
    w_bytes(w, rl->rkey, rl->key_len);
    w_bytes(w, rl->wkey, rl->key_len);
    w_bytes(w, rl->rsalt, DTLS_SALT_LEN);
    w_bytes(w, rl->wsalt, DTLS_SALT_LEN);
    w_u64(w, rl->w_seq);
    w_u64(w, rl->r_top);
    w_u64(w, rl->r_map);
    w_u8(w, s->cid_ours_len);
    w_bytes(w, s->cid_ours, s->cid_ours_len);
    w_u8(w, s->cid_peer_len);
    w_bytes(w, s->cid_peer, s->cid_peer_len);
    w_u16(w, (unsigned)s->blob_len);
    w_bytes(w, s->blob, s->blob_len);
}

/* The key length and tag lengths each algorithm allows (record.c's table, restated as the
 * parser's sanity check: a decrypted file is still not trusted blindly). */
static bool rl_sane(const dtls_rl_t *rl)
{
    switch (rl->alg) {
    case DTLS_AEAD_AES128_GCM:
        return rl->key_len == 16 && rl->tag_len == 16;
    case DTLS_AEAD_AES256_GCM:
    case DTLS_AEAD_CHACHA20:
        return rl->key_len == 32 && rl->tag_len == 16;
    case DTLS_AEAD_AES128_CCM:
        return rl->key_len == 16 && (rl->tag_len == 16 || rl->tag_len == 8);
    case DTLS_AEAD_AES256_CCM:
        return rl->key_len == 32 && (rl->tag_len == 16 || rl->tag_len == 8);
    default:
        return false;
    }
}

/* One session from r, or NULL (r->bad set or the values make no sense). */
static dtls_saved_sess_t *get_sess(rbuf_t *r)
{
    dtls_saved_sess_t *s = xcalloc(1, sizeof *s);
    s->id = r_u64(r);
    unsigned fam = r_u8(r);
    if (fam == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&s->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)r_u16(r));
        r_copy(r, &a->sin_addr, 4);
        s->addr_len = sizeof *a;
    } else if (fam == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)r_u16(r));
        r_copy(r, &a->sin6_addr, 16);
        a->sin6_scope_id = r_u32(r);
        s->addr_len = sizeof *a;
    } else {
        r->bad = true;
    }
    s->device_id = (int64_t)r_u64(r);
    s->last_seen_unix_ms = (int64_t)r_u64(r);
    dtls_rl_t *rl = &s->rl;
    rl->alg = (uint8_t)r_u8(r);
    rl->tag_len = (uint8_t)r_u8(r);
    rl->key_len = (uint8_t)r_u8(r);
    unsigned flags = r_u8(r);
    rl->r_any = flags & 1;
    rl->epoch = (uint16_t)r_u16(r);
    if (!r->bad && (!rl_sane(rl) || flags > 1 || rl->epoch != 1))
        r->bad = true;
    if (!r->bad) {
        r_copy(r, rl->rkey, rl->key_len);
        r_copy(r, rl->wkey, rl->key_len);
    }
    r_copy(r, rl->rsalt, DTLS_SALT_LEN);
    r_copy(r, rl->wsalt, DTLS_SALT_LEN);
    rl->w_seq = r_u64(r);
    rl->r_top = r_u64(r);
    rl->r_map = r_u64(r);
    if (rl->w_seq > DTLS_SEQ_MAX || rl->r_top > DTLS_SEQ_MAX)
        r->bad = true;
    unsigned cid_len = r_u8(r);
    if (cid_len > DTLS_SAVED_CID_MAX)
        r->bad = true;
    s->cid_ours_len = (uint8_t)cid_len;
    if (!r->bad)
        r_copy(r, s->cid_ours, s->cid_ours_len);
    cid_len = r_u8(r);
    if (cid_len > DTLS_SAVED_CID_MAX)
        r->bad = true;
    s->cid_peer_len = (uint8_t)cid_len;
    if (!r->bad)
        r_copy(r, s->cid_peer, s->cid_peer_len);
    size_t blen = r_u16(r);
    if (!r->bad && blen > 0) {
        const uint8_t *b = r_take(r, blen);
        if (b && !r->bad) {
            s->blob = xmalloc(blen);
            memcpy(s->blob, b, blen);
            s->blob_len = blen;
        }
    }
    if (r->bad) {
        dtls__saved_sess_free(s);
        return NULL;
    }
    return s;
}

/* ---- the writer -------------------------------------------------------------------------- */

struct dtls_save {
    pthread_mutex_t mu; /* shards may add concurrently (a live save) */
    wbuf_t body;        /* the sessions, without the count */
    uint32_t n;
};

dtls_save_t *dtls_save_new(void)
{
    dtls_save_t *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    return w;
}

void dtls_save_free(dtls_save_t *w)
{
    if (!w)
        return;
    if (w->body.p)
        OPENSSL_cleanse(w->body.p, w->body.cap);
    free(w->body.p);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

size_t dtls_save_count(const dtls_save_t *w)
{
    return w->n;
}

void dtls__save_add(dtls_save_t *w, const dtls_saved_sess_t *s)
{
    wbuf_t one = {0};
    put_sess(&one, s);
    pthread_mutex_lock(&w->mu);
    w_bytes(&w->body, one.p, one.len);
    w->n++;
    pthread_mutex_unlock(&w->mu);
    OPENSSL_cleanse(one.p, one.cap);
    free(one.p);
}

static int aead(bool enc, const uint8_t key[static KEY_LEN], const uint8_t nonce[static NONCE_LEN],
                const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                uint8_t tag[static TAG_LEN])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int rc = -EIO, n = 0;
    if (!c)
        return -ENOMEM;
    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) != 1 ||
        EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) != 1)
        goto out;
    if (len > 0 && EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(c, out + (len > 0 ? (size_t)n : 0), &n) != 1) {
        rc = enc ? -EIO : -EBADMSG;
        goto out;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int dtls__saved_encode(const dtls_save_t *w, const uint8_t key[static 32], int64_t now_s,
                       int64_t max_age_s, uint8_t **out, size_t *out_len)
{
    if (w->body.len > MAX_FILE - HDR_LEN - TAG_LEN - 4)
        return -EFBIG;
    size_t plen = 4 + w->body.len;
    uint8_t *f = xmalloc(HDR_LEN + plen + TAG_LEN);
    wbuf_t h = {0};
    w_bytes(&h, MAGIC, sizeof MAGIC);
    w_u32(&h, DTLS_SAVED_VERSION);
    w_u32(&h, 0);
    w_u64(&h, (uint64_t)now_s);
    w_u64(&h, (uint64_t)max_age_s);
    uint8_t nonce[NONCE_LEN];
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        free(h.p);
        free(f);
        return -EIO;
    }
    w_bytes(&h, nonce, sizeof nonce);
    memcpy(f, h.p, HDR_LEN);
    free(h.p);
    uint8_t *plain = xmalloc(plen);
    plain[0] = (uint8_t)(w->n >> 24);
    plain[1] = (uint8_t)(w->n >> 16);
    plain[2] = (uint8_t)(w->n >> 8);
    plain[3] = (uint8_t)w->n;
    if (w->body.len)
        memcpy(plain + 4, w->body.p, w->body.len);
    int rc = aead(true, key, nonce, f, HDR_LEN, plain, plen, f + HDR_LEN, f + HDR_LEN + plen);
    OPENSSL_cleanse(plain, plen);
    free(plain);
    if (rc != 0) {
        free(f);
        return rc;
    }
    *out = f;
    *out_len = HDR_LEN + plen + TAG_LEN;
    return 0;
}

int dtls__saved_parse_body(const uint8_t *p, size_t len, dtls_saved_cb cb, void *ctx)
{
    rbuf_t r = {.p = p, .len = len};
    uint32_t n = r_u32(&r);
    if (r.bad)
        return -EBADMSG;
    for (uint32_t i = 0; i < n; i++) {
        dtls_saved_sess_t *s = get_sess(&r);
        if (!s)
            return -EBADMSG;
        cb(ctx, s); /* takes s */
    }
    return r.len == 0 ? (int)(n > INT32_MAX ? INT32_MAX : n) : -EBADMSG;
}

int dtls__saved_decode(const uint8_t *f, size_t len, const uint8_t key[static 32], int64_t now_s,
                       int64_t *expires_s, dtls_saved_cb cb, void *ctx)
{
    if (len < HDR_LEN + 4 + TAG_LEN || memcmp(f, MAGIC, sizeof MAGIC) != 0)
        return -EBADMSG;
    rbuf_t h = {.p = f + sizeof MAGIC, .len = HDR_LEN - sizeof MAGIC};
    uint32_t version = r_u32(&h);
    uint32_t flags = r_u32(&h);
    int64_t created = (int64_t)r_u64(&h);
    int64_t max_age = (int64_t)r_u64(&h);
    if (version != DTLS_SAVED_VERSION || flags != 0)
        return -EPROTONOSUPPORT;
    size_t plen = len - HDR_LEN - TAG_LEN;
    uint8_t *plain = xmalloc(plen);
    uint8_t tag[TAG_LEN];
    memcpy(tag, f + len - TAG_LEN, TAG_LEN);
    int rc = aead(false, key, f + HDR_LEN - NONCE_LEN, f, HDR_LEN, f + HDR_LEN, plen, plain, tag);
    /* Only now are created and max_age known to be ours. A file from the future (clock set
     * back) is refused as well: its age cannot be told. */
    if (rc == 0 && (max_age <= 0 || max_age > DTLS_SAVED_MAX_AGE_S || created < 0 ||
                    created > now_s + 60 || now_s - created >= max_age))
        rc = -ETIMEDOUT;
    if (rc == 0) {
        if (expires_s)
            *expires_s = created + max_age;
        rc = dtls__saved_parse_body(plain, plen, cb, ctx);
    }
    OPENSSL_cleanse(plain, plen);
    free(plain);
    return rc;
}

/* ---- files ------------------------------------------------------------------------------- */

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int read_exact(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EBADMSG;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int dtls__saved_key(const char *data_dir, bool create, uint8_t key[static 32],
                    char err[static ERR_LEN])
{
    char *path = xasprintf("%s/%s", data_dir, DTLS_SAVED_KEY_FILE);
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            struct stat st;
            if (fstat(fd, &st) != 0 || st.st_size != KEY_LEN || (st.st_mode & 077)) {
                snprintf(err, ERR_LEN, "%s: must be %d bytes, mode 0600", path, KEY_LEN);
                rc = -EACCES;
            } else {
                rc = read_exact(fd, key, KEY_LEN);
                if (rc != 0)
                    snprintf(err, ERR_LEN, "%s: %s", path, err_str(rc));
            }
            close(fd);
            goto out;
        }
        if (errno != ENOENT || !create) {
            rc = -errno;
            snprintf(err, ERR_LEN, "%s: %s", path, strerror(errno));
            goto out;
        }
        /* First use: O_EXCL so two writers cannot both make one; the loser reads it. */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            rc = -errno;
            snprintf(err, ERR_LEN, "cannot create %s: %s", path, strerror(errno));
            goto out;
        }
        if (RAND_bytes(key, KEY_LEN) != 1) {
            rc = -EIO;
        } else if ((rc = write_all(fd, key, KEY_LEN)) == 0 && fsync(fd) != 0) {
            rc = -errno;
        }
        close(fd);
        if (rc != 0) {
            snprintf(err, ERR_LEN, "cannot write %s: %s", path, err_str(rc));
            unlink(path);
            goto out;
        }
        fsync_dir(data_dir);
        goto out;
    }
    rc = -EEXIST;
    snprintf(err, ERR_LEN, "%s: cannot create or read", path);
out:
    free(path);
    return rc;
}

int dtls_save_write(const dtls_save_t *w, const char *data_dir, int64_t max_age_s,
                    char err[static ERR_LEN])
{
    if (max_age_s <= 0 || max_age_s > DTLS_SAVED_MAX_AGE_S) {
        snprintf(err, ERR_LEN, "max age must be 1..%d s", DTLS_SAVED_MAX_AGE_S);
        return -EINVAL;
    }
    uint8_t key[KEY_LEN];
    int rc = dtls__saved_key(data_dir, true, key, err);
    if (rc != 0)
        return rc;
    uint8_t *f = NULL;
    size_t len = 0;
    rc = dtls__saved_encode(w, key, (int64_t)time(NULL), max_age_s, &f, &len);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != 0) {
        snprintf(err, ERR_LEN, "cannot encrypt saved sessions: %s", err_str(rc));
        return rc;
    }
    char *path = xasprintf("%s/%s", data_dir, DTLS_SAVED_FILE);
    char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
    } else {
        rc = write_all(fd, f, len);
        if (rc == 0 && fsync(fd) != 0)
            rc = -errno;
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -errno;
        if (rc != 0)
            unlink(tmp);
    }
    if (rc == 0)
        fsync_dir(data_dir);
    else
        snprintf(err, ERR_LEN, "cannot write %s: %s", path, err_str(rc));
    free(f);
    free(path);
    free(tmp);
    return rc;
}

/* ---- the stale list ------------------------------------------------------------------------
 *
 * A save made while the server runs (`coaphub-cli sessions save`) describes sessions that go
 * on: once one of them sends or receives a record, the copy in the file would reuse its
 * sequence numbers beyond the margin or accept that record again. So its save id is appended
 * to <data_dir>/dtls-sessions.stale first (8 bytes, once per session per save, no cost per
 * record), and a load skips the sessions listed. The append is a write() without fsync: it
 * survives the process being killed (kill -9), not a power loss (docs/operations.md).
 */

static char *stale_path(const char *data_dir)
{
    return xasprintf("%s/%s", data_dir, DTLS_SAVED_STALE_FILE);
}

void dtls__saved_stale_add(const char *data_dir, uint64_t id)
{
    if (!data_dir)
        return;
    char *path = stale_path(data_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        uint8_t b[8];
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)(id >> (56 - 8 * i));
        if (write_all(fd, b, sizeof b) != 0)
            LOG_W("dtls", "%s: %s (a later load may offer a stale session)", path, strerror(errno));
        close(fd);
    } else {
        LOG_W("dtls", "cannot open %s: %s", path, strerror(errno));
    }
    free(path);
}

/* The ids in the stale list (malloc'd, *n of them); NULL when there is none. */
static uint64_t *stale_read(const char *data_dir, size_t *n)
{
    *n = 0;
    char *path = stale_path(data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return NULL;
    struct stat st;
    uint64_t *ids = NULL;
    if (fstat(fd, &st) == 0 && st.st_size >= 8 && (uint64_t)st.st_size <= MAX_FILE) {
        size_t k = (size_t)st.st_size / 8;
        uint8_t *b = xmalloc(k * 8);
        if (read_exact(fd, b, k * 8) == 0) {
            ids = xmalloc(k * sizeof *ids);
            for (size_t i = 0; i < k; i++) {
                uint64_t v = 0;
                for (int j = 0; j < 8; j++)
                    v = v << 8 | b[i * 8 + (size_t)j];
                ids[i] = v;
            }
            *n = k;
        }
        free(b);
    }
    close(fd);
    return ids;
}

int dtls_save_begin(const char *data_dir)
{
    /* The old file goes first: were it kept while the stale list is emptied, a crash now
     * would leave it loadable with its stale entries forgotten. */
    char *path = xasprintf("%s/%s", data_dir, DTLS_SAVED_FILE);
    int rc = unlink(path) != 0 && errno != ENOENT ? -errno : 0;
    free(path);
    char *sp = stale_path(data_dir);
    if (rc == 0 && unlink(sp) != 0 && errno != ENOENT)
        rc = -errno;
    free(sp);
    fsync_dir(data_dir);
    return rc;
}

/* ---- the table of loaded sessions -------------------------------------------------------- */

struct dtls_restore {
    pthread_mutex_t mu;
    htab_t by_addr;          /* dtls_saved_sess_t.link */
    htab_t by_cid;           /* dtls_saved_sess_t.clink: sessions with a CID of ours */
    _Atomic size_t n;        /* entries in by_addr (read without the lock on the fast path) */
    int64_t expires_unix_ms; /* all entries go at this wall-clock time */
    size_t loaded;
};

static bool addr_eq(const htab_link_t *link, const void *key)
{
    const dtls_saved_sess_t *s = HTAB_ENTRY(link, dtls_saved_sess_t, link);
    return sockaddr_equal(&s->addr, key);
}

static bool cid_eq(const htab_link_t *link, const void *key)
{
    const dtls_saved_sess_t *s = HTAB_ENTRY(link, dtls_saved_sess_t, clink);
    return htab_bytes_equal(key, s->cid_ours, s->cid_ours_len);
}

/* Takes s out of both indexes (under t->mu). */
static void restore_unlink(dtls_restore_t *t, dtls_saved_sess_t *s)
{
    htab_remove(&t->by_addr, &s->link);
    if (s->in_cid)
        htab_remove(&t->by_cid, &s->clink);
    s->in_cid = false;
    atomic_fetch_sub(&t->n, 1);
}

static void restore_insert(dtls_restore_t *t, dtls_saved_sess_t *s)
{
    uint64_t h = sockaddr_hash(&s->addr);
    htab_link_t *old = htab_find(&t->by_addr, h, addr_eq, &s->addr);
    if (old) { /* two sessions of one address cannot both be live: keep the later one */
        dtls_saved_sess_t *o = HTAB_ENTRY(old, dtls_saved_sess_t, link);
        restore_unlink(t, o);
        dtls__saved_sess_free(o);
    }
    htab_insert(&t->by_addr, &s->link, h);
    s->in_cid = false;
    if (s->cid_ours_len > 0) {
        /* CIDs are unique per listener, random across shards: a clash is not worth keeping
         * either session's CID route for (the address route stays). */
        htab_bytes_t k = {s->cid_ours, s->cid_ours_len};
        uint64_t ch = hash_bytes(s->cid_ours, s->cid_ours_len);
        if (!htab_find(&t->by_cid, ch, cid_eq, &k)) {
            htab_insert(&t->by_cid, &s->clink, ch);
            s->in_cid = true;
        }
    }
    atomic_fetch_add(&t->n, 1);
}

typedef struct load_ctx {
    dtls_restore_t *t;
    const uint64_t *stale; /* ids of sessions that moved on after a live save */
    size_t n_stale;
    size_t skipped;
} load_ctx_t;

static void restore_add(void *ctx, dtls_saved_sess_t *s)
{
    load_ctx_t *lc = ctx;
    for (size_t i = 0; i < lc->n_stale; i++) {
        if (lc->stale[i] == s->id) {
            lc->skipped++;
            dtls__saved_sess_free(s);
            return;
        }
    }
    restore_insert(lc->t, s);
}

static void restore_clear(dtls_restore_t *t)
{
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &t->by_addr); l; l = htab_iter_next(&it)) {
        dtls_saved_sess_t *s = HTAB_ENTRY(l, dtls_saved_sess_t, link);
        restore_unlink(t, s);
        dtls__saved_sess_free(s);
    }
    atomic_store(&t->n, 0);
}

dtls_restore_t *dtls__restore_new(void)
{
    dtls_restore_t *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    htab_init(&t->by_addr, 64);
    htab_init(&t->by_cid, 0);
    return t;
}

void dtls__restore_free(dtls_restore_t *t)
{
    if (!t)
        return;
    restore_clear(t);
    htab_fini(&t->by_addr);
    htab_fini(&t->by_cid);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int dtls__restore_load_buf(dtls_restore_t *t, const uint8_t *f, size_t len,
                           const uint8_t key[static 32], int64_t now_s, const uint64_t *stale,
                           size_t n_stale)
{
    int64_t expires_s = 0;
    load_ctx_t lc = {.t = t, .stale = stale, .n_stale = n_stale};
    pthread_mutex_lock(&t->mu);
    int rc = dtls__saved_decode(f, len, key, now_s, &expires_s, restore_add, &lc);
    if (lc.skipped > 0)
        LOG_I("dtls",
              "%zu saved session(s) skipped: they sent or received records after the "
              "save (stale list)",
              lc.skipped);
    if (rc < 0) {
        restore_clear(t); /* a file that fails anywhere is not used at all */
    } else {
        t->expires_unix_ms = expires_s * 1000;
        t->loaded = atomic_load(&t->n);
    }
    pthread_mutex_unlock(&t->mu);
    return rc < 0 ? rc : (int)t->loaded;
}

bool dtls__restore_pending(dtls_restore_t *t)
{
    return t && atomic_load_explicit(&t->n, memory_order_relaxed) > 0;
}

dtls_saved_sess_t *dtls__restore_take(dtls_restore_t *t, const struct sockaddr_storage *a)
{
    pthread_mutex_lock(&t->mu);
    htab_link_t *l = htab_find(&t->by_addr, sockaddr_hash(a), addr_eq, a);
    dtls_saved_sess_t *s = l ? HTAB_ENTRY(l, dtls_saved_sess_t, link) : NULL;
    if (s)
        restore_unlink(t, s);
    pthread_mutex_unlock(&t->mu);
    return s;
}

dtls_saved_sess_t **dtls__restore_take_shard(dtls_restore_t *t, int shard, unsigned shards,
                                             size_t *n)
{
    *n = 0;
    pthread_mutex_lock(&t->mu);
    size_t cap = atomic_load(&t->n);
    dtls_saved_sess_t **v = cap ? xmalloc(cap * sizeof *v) : NULL;
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &t->by_addr); l && *n < cap;
         l = htab_iter_next(&it)) {
        dtls_saved_sess_t *s = HTAB_ENTRY(l, dtls_saved_sess_t, link);
        unsigned to = s->cid_ours_len > 0 ? s->cid_ours[0] % (shards ? shards : 1)
                                          : dtls__shard_of(&s->addr, shards);
        if (to == (unsigned)shard)
            v[(*n)++] = s;
    }
    for (size_t i = 0; i < *n; i++)
        restore_unlink(t, v[i]);
    pthread_mutex_unlock(&t->mu);
    if (*n == 0) {
        free(v);
        v = NULL;
    }
    return v;
}

dtls_saved_sess_t *dtls__restore_take_cid(dtls_restore_t *t, const uint8_t *cid, size_t len)
{
    htab_bytes_t k = {cid, len};
    pthread_mutex_lock(&t->mu);
    htab_link_t *l = htab_find(&t->by_cid, hash_bytes(cid, len), cid_eq, &k);
    dtls_saved_sess_t *s = l ? HTAB_ENTRY(l, dtls_saved_sess_t, clink) : NULL;
    if (s)
        restore_unlink(t, s);
    pthread_mutex_unlock(&t->mu);
    return s;
}

dtls_saved_sess_t *dtls__restore_take_any(dtls_restore_t *t)
{
    pthread_mutex_lock(&t->mu);
    htab_iter_t it;
    htab_link_t *l = htab_iter_first(&it, &t->by_addr);
    dtls_saved_sess_t *s = l ? HTAB_ENTRY(l, dtls_saved_sess_t, link) : NULL;
    if (s)
        restore_unlink(t, s);
    pthread_mutex_unlock(&t->mu);
    return s;
}

void dtls__restore_put_back(dtls_restore_t *t, dtls_saved_sess_t *s)
{
    pthread_mutex_lock(&t->mu);
    htab_link_t *old = htab_find(&t->by_addr, sockaddr_hash(&s->addr), addr_eq, &s->addr);
    if (old)
        dtls__saved_sess_free(s); /* cannot happen: the address is one shard's */
    else
        restore_insert(t, s);
    pthread_mutex_unlock(&t->mu);
}

size_t dtls__restore_expire(dtls_restore_t *t, int64_t now_unix_ms)
{
    if (!dtls__restore_pending(t))
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    if (now_unix_ms >= t->expires_unix_ms) {
        n = atomic_load(&t->n);
        restore_clear(t);
    }
    pthread_mutex_unlock(&t->mu);
    if (n > 0)
        LOG_I("dtls", "%zu saved session(s) expired unclaimed", n);
    return n;
}

int dtls__restore_load_file(dtls_restore_t *t, const char *data_dir, char err[static ERR_LEN])
{
    char *path = xasprintf("%s/%s", data_dir, DTLS_SAVED_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = errno == ENOENT ? 0 : -errno;
        if (rc)
            snprintf(err, ERR_LEN, "%s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    struct stat st;
    uint8_t *f = NULL;
    int rc = fstat(fd, &st) != 0 ? -errno : 0;
    if (rc == 0 && (st.st_size <= 0 || (uint64_t)st.st_size > MAX_FILE))
        rc = -EFBIG;
    size_t len = rc == 0 ? (size_t)st.st_size : 0;
    if (rc == 0) {
        f = xmalloc(len);
        rc = read_exact(fd, f, len);
    }
    close(fd);
    /* Deleted at once, used or not: a file is good for one start only (the sessions in it
     * move on as soon as they are claimed, so a second load would replay sequence numbers). */
    if (unlink(path) != 0 && rc == 0)
        rc = -errno;
    fsync_dir(data_dir);
    size_t n_stale = 0;
    uint64_t *stale = stale_read(data_dir, &n_stale);
    char *sp = stale_path(data_dir);
    unlink(sp);
    free(sp);
    uint8_t key[KEY_LEN];
    if (rc == 0)
        rc = dtls__saved_key(data_dir, false, key, err) == 0 ? 0 : -ENOKEY;
    if (rc == 0) {
        rc = dtls__restore_load_buf(t, f, len, key, (int64_t)time(NULL), stale, n_stale);
        OPENSSL_cleanse(key, sizeof key);
    }
    free(stale);
    if (rc < 0 && rc != -ENOKEY)
        snprintf(err, ERR_LEN, "%s: %s", path,
                 rc == -ETIMEDOUT ? "too old"
                 : rc == -EBADMSG ? "damaged or wrong key"
                                  : err_str(rc));
    if (f)
        OPENSSL_cleanse(f, len);
    free(f);
    free(path);
    return rc;
}

size_t dtls__restore_save_unclaimed(dtls_restore_t *t, dtls_save_t *w)
{
    size_t n = 0;
    dtls_saved_sess_t *s;
    while ((s = dtls__restore_take_any(t)) != NULL) {
        /* Never used since it was loaded: its state is still exact (w_seq already past the
         * margin once, which a second margin does not harm). */
        dtls__save_add(w, s);
        dtls__saved_sess_free(s);
        n++;
    }
    return n;
}

size_t dtls__restore_loaded(const dtls_restore_t *t)
{
    return t->loaded;
}
