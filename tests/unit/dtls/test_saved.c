/* test_saved.c — sessions that survive a restart (src/dtls/saved.c): the file format (round
 * trip, wrong key, truncated, tampered, expired, wrong version), the key and session files
 * on disk, and a whole save -> new listener -> claim cycle in-process, where a device's next
 * record (sealed with the other end's view of the same keys) resumes the session, a forged
 * one does not claim it, a replay is refused and our next record continues past the margin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static void make_rl(dtls_rl_t *rl, dtls_aead_alg_t alg, uint8_t tag_len)
{
    uint8_t master[48], cr[32], sr[32];
    RAND_bytes(master, sizeof master);
    RAND_bytes(cr, sizeof cr);
    RAND_bytes(sr, sizeof sr);
    assert_int_equal(dtls__rl_derive(rl, alg, tag_len, EVP_sha256(), master, sizeof master, cr, sr),
                     0);
}

static dtls_saved_sess_t sample(int i)
{
    dtls_saved_sess_t s = {0};
    s.id = 0xabcdef0000000000ull + (uint64_t)i;
    if (i % 2 == 0) {
        struct sockaddr_in *a = (struct sockaddr_in *)&s.addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)(5000 + i));
        a->sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)i);
        s.addr_len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s.addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)(6000 + i));
        inet_pton(AF_INET6, "2001:db8::7", &a->sin6_addr);
        a->sin6_scope_id = 3;
        s.addr_len = sizeof *a;
    }
    s.device_id = 1000 + i;
    s.last_seen_unix_ms = 1700000000000 + i;
    make_rl(&s.rl, i % 3 == 0 ? DTLS_AEAD_AES128_CCM : DTLS_AEAD_CHACHA20, i % 3 == 0 ? 8 : 16);
    s.rl.w_seq = 77 + (uint64_t)i;
    s.rl.r_top = 55;
    s.rl.r_map = 0xf0f0;
    s.rl.r_any = true;
    s.cid_ours_len = (uint8_t)(i % 3);
    memset(s.cid_ours, 0xc1, s.cid_ours_len);
    s.cid_peer_len = (uint8_t)(i == 2 ? 200 : 0); /* a long one (RFC 9146 allows 255) */
    memset(s.cid_peer, 0xd2, s.cid_peer_len);
    return s;
}

typedef struct got {
    dtls_saved_sess_t *s[8];
    int n;
} got_t;

static void collect(void *ctx, dtls_saved_sess_t *s)
{
    got_t *g = ctx;
    if (g->n < 8)
        g->s[g->n++] = s;
    else
        dtls__saved_sess_free(s);
}

static void got_free(got_t *g)
{
    for (int i = 0; i < g->n; i++)
        dtls__saved_sess_free(g->s[i]);
    g->n = 0;
}

/* A file of three sessions (one with a blob) written now, valid 600 s. */
static uint8_t *sample_file(size_t *len, dtls_saved_sess_t ss[3], int64_t now)
{
    dtls_save_t *w = dtls_save_new();
    static uint8_t blob[] = "observers";
    for (int i = 0; i < 3; i++) {
        ss[i] = sample(i);
        if (i == 1) {
            ss[i].blob = blob;
            ss[i].blob_len = sizeof blob;
        }
        dtls__save_add(w, &ss[i]);
    }
    uint8_t *f = NULL;
    assert_int_equal(dtls__saved_encode(w, KEY, now, 600, &f, len), 0);
    dtls_save_free(w);
    return f;
}

static void test_round_trip(void **state)
{
    (void)state;
    dtls_saved_sess_t ss[3];
    size_t len;
    int64_t now = (int64_t)time(NULL);
    uint8_t *f = sample_file(&len, ss, now);
    got_t g = {0};
    int64_t exp = 0;
    assert_int_equal(dtls__saved_decode(f, len, KEY, now + 10, &exp, collect, &g), 3);
    assert_int_equal(exp, now + 600);
    assert_int_equal(g.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g.s[i]->id, ss[i].id);
        assert_int_equal(g.s[i]->addr_len, ss[i].addr_len);
        assert_memory_equal(&g.s[i]->addr, &ss[i].addr, ss[i].addr_len);
        assert_int_equal(g.s[i]->device_id, ss[i].device_id);
        assert_int_equal(g.s[i]->last_seen_unix_ms, ss[i].last_seen_unix_ms);
        const dtls_rl_t *a = &g.s[i]->rl, *b = &ss[i].rl;
        assert_int_equal(a->alg, b->alg);
        assert_int_equal(a->tag_len, b->tag_len);
        assert_int_equal(a->key_len, b->key_len);
        assert_int_equal(a->epoch, 1);
        assert_true(a->r_any);
        assert_memory_equal(a->rkey, b->rkey, b->key_len);
        assert_memory_equal(a->wkey, b->wkey, b->key_len);
        assert_memory_equal(a->rsalt, b->rsalt, DTLS_SALT_LEN);
        assert_memory_equal(a->wsalt, b->wsalt, DTLS_SALT_LEN);
        assert_int_equal(a->w_seq, b->w_seq);
        assert_int_equal(a->r_top, b->r_top);
        assert_int_equal(a->r_map, b->r_map);
        assert_int_equal(g.s[i]->cid_ours_len, ss[i].cid_ours_len);
        assert_memory_equal(g.s[i]->cid_ours, ss[i].cid_ours, ss[i].cid_ours_len);
        assert_int_equal(g.s[i]->cid_peer_len, ss[i].cid_peer_len);
        assert_memory_equal(g.s[i]->cid_peer, ss[i].cid_peer, ss[i].cid_peer_len);
        assert_int_equal(g.s[i]->blob_len, ss[i].blob_len);
        if (ss[i].blob_len)
            assert_memory_equal(g.s[i]->blob, ss[i].blob, ss[i].blob_len);
    }
    got_free(&g);
    /* An empty save is a valid file of no sessions. */
    dtls_save_t *w = dtls_save_new();
    uint8_t *e = NULL;
    size_t elen;
    assert_int_equal(dtls__saved_encode(w, KEY, now, 600, &e, &elen), 0);
    assert_int_equal(dtls__saved_decode(e, elen, KEY, now, NULL, collect, &g), 0);
    dtls_save_free(w);
    free(e);
    free(f);
}

static void test_wrong_key_truncated_tampered(void **state)
{
    (void)state;
    dtls_saved_sess_t ss[3];
    size_t len;
    int64_t now = (int64_t)time(NULL);
    uint8_t *f = sample_file(&len, ss, now);
    got_t g = {0};
    uint8_t other[32] = {9};
    assert_int_equal(dtls__saved_decode(f, len, other, now, NULL, collect, &g), -EBADMSG);
    assert_int_equal(g.n, 0);
    for (size_t cut = 0; cut < len; cut++) {
        int rc = dtls__saved_decode(f, cut, KEY, now, NULL, collect, &g);
        assert_true(rc < 0);
        assert_int_equal(g.n, 0);
    }
    for (size_t i = 0; i < len; i++) {
        f[i] ^= 0x01;
        int rc = dtls__saved_decode(f, len, KEY, now, NULL, collect, &g);
        assert_true(rc == -EBADMSG || rc == -EPROTONOSUPPORT);
        assert_int_equal(g.n, 0);
        f[i] ^= 0x01;
    }
    free(f);
}

static void test_expired_and_version(void **state)
{
    (void)state;
    dtls_saved_sess_t ss[3];
    size_t len;
    int64_t now = (int64_t)time(NULL);
    uint8_t *f = sample_file(&len, ss, now);
    got_t g = {0};
    assert_int_equal(dtls__saved_decode(f, len, KEY, now + 599, NULL, collect, &g), 3);
    got_free(&g);
    assert_int_equal(dtls__saved_decode(f, len, KEY, now + 600, NULL, collect, &g), -ETIMEDOUT);
    assert_int_equal(dtls__saved_decode(f, len, KEY, now - 3600, NULL, collect, &g), -ETIMEDOUT);
    assert_int_equal(g.n, 0);
    f[11] = 2; /* version 2 (big-endian u32 after the magic) */
    assert_int_equal(dtls__saved_decode(f, len, KEY, now, NULL, collect, &g), -EPROTONOSUPPORT);
    free(f);
}

/* The plaintext parser alone, on bodies that would decrypt: a lying count, a bad algorithm. */
static void test_body_checks(void **state)
{
    (void)state;
    got_t g = {0};
    static const uint8_t lying[] = {0, 0, 0, 5};
    assert_int_equal(dtls__saved_parse_body(lying, sizeof lying, collect, &g), -EBADMSG);
    static const uint8_t empty[] = {0, 0, 0, 0, 9};
    assert_int_equal(dtls__saved_parse_body(empty, sizeof empty, collect, &g), -EBADMSG);
    dtls_save_t *w = dtls_save_new();
    dtls_saved_sess_t s = sample(0);
    s.rl.alg = DTLS_AEAD_N; /* not an algorithm */
    dtls__save_add(w, &s);
    uint8_t *f = NULL;
    size_t len;
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(dtls__saved_encode(w, KEY, now, 600, &f, &len), 0);
    assert_int_equal(dtls__saved_decode(f, len, KEY, now, NULL, collect, &g), -EBADMSG);
    assert_int_equal(g.n, 0);
    dtls_save_free(w);
    free(f);
}

/* ---- files and a whole cycle on a listener ------------------------------------------------- */

static int udp_socket(struct sockaddr_storage *a, socklen_t *alen)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in *in = (struct sockaddr_in *)a;
    memset(a, 0, sizeof *a);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)in, sizeof *in), 0);
    *alen = sizeof *in;
    assert_int_equal(getsockname(fd, (struct sockaddr *)a, alen), 0);
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static bool exists(fx_t *f, const char *name, mode_t *mode)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    struct stat st;
    if (stat(p, &st) != 0)
        return false;
    if (mode)
        *mode = st.st_mode & 0777;
    return true;
}

static void test_save_restart_claim(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    struct sockaddr_storage dev;
    socklen_t dlen;
    int dfd = udp_socket(&dev, &dlen);

    dtls_rl_t srv, cli;
    make_rl(&srv, DTLS_AEAD_AES128_GCM, 16);
    dtls__rl_mirror(&srv, &cli);
    dtls_peer_t *p = dtls__peer_new_compact(f->l, &dev, dlen, &srv);
    p->base.cert_device_id = DEVICE_A;
    dtls_aead_ctx_t ca;
    dtls__aead_init(&ca);
    uint8_t rec[512], buf[512];
    /* One record each way before the stop. */
    ssize_t n = dtls__rl_seal(&cli, &ca, 23, (const uint8_t *)"before", 6, rec, sizeof rec);
    assert_true(n > 0);
    dtls__listener_input(f->l, &dev, dlen, rec, (size_t)n);
    assert_int_equal(eng.inputs, 1);
    uint8_t old_rec[512];
    memcpy(old_rec, rec, (size_t)n);
    size_t old_len = (size_t)n;

    dtls_save_t *w = dtls_save_new();
    size_t skipped = 0;
    assert_int_equal(dtls_listener_save(f->l, w, true, &skipped), 1);
    assert_int_equal(skipped, 0);
    char err[ERR_LEN] = "";
    assert_int_equal(dtls_save_write(w, f->dir, 600, err), 0);
    dtls_save_free(w);
    mode_t mode = 0;
    assert_true(exists(f, DTLS_SAVED_FILE, &mode));
    assert_int_equal(mode, 0600);
    assert_true(exists(f, DTLS_SAVED_KEY_FILE, &mode));
    assert_int_equal(mode, 0600);
    assert_int_equal(stats(f).saved_written, 1);

    /* The stop: the saved session ends without close_notify. */
    int closed = eng.closed;
    dtls_listener_free(f->l);
    dtls_ctx_free(f->ctx);
    assert_int_equal(eng.closed, closed + 1);
    assert_int_equal(recv(dfd, buf, sizeof buf, MSG_DONTWAIT), -1);

    /* The start: loaded once, file deleted. */
    fx_listener(f);
    assert_int_equal(dtls_ctx_restore_sessions(f->ctx, f->dir, err), 1);
    assert_false(exists(f, DTLS_SAVED_FILE, NULL));
    assert_int_equal(dtls_ctx_restore_loaded(f->ctx), 1);
    assert_int_equal(dtls_ctx_restore_sessions(f->ctx, f->dir, err), 0);
    assert_int_equal(dtls_ctx_restore_loaded(f->ctx), 1);

    /* A forged record (other keys) from the device's address does not claim. */
    dtls_rl_t forged;
    make_rl(&forged, DTLS_AEAD_AES128_GCM, 16);
    dtls_rl_t fcli;
    dtls__rl_mirror(&forged, &fcli);
    fcli.w_seq = cli.w_seq;
    n = dtls__rl_seal(&fcli, &ca, 23, (const uint8_t *)"forged", 6, rec, sizeof rec);
    eng.inputs = 0;
    dtls__listener_input(f->l, &dev, dlen, rec, (size_t)n);
    assert_int_equal(eng.inputs, 0);
    assert_int_equal(stats(f).saved_claimed, 0);
    /* Nor does a replay of the record the old run accepted. */
    dtls__listener_input(f->l, &dev, dlen, old_rec, old_len);
    assert_int_equal(eng.inputs, 0);
    assert_int_equal(stats(f).saved_claimed, 0);

    /* The device's next record claims it: no handshake, same device. */
    n = dtls__rl_seal(&cli, &ca, 23, (const uint8_t *)"after", 5, rec, sizeof rec);
    dtls__listener_input(f->l, &dev, dlen, rec, (size_t)n);
    assert_int_equal(eng.inputs, 1);
    assert_int_equal(eng.last_device, DEVICE_A);
    assert_memory_equal(eng.last, "after", 5);
    assert_int_equal(stats(f).saved_claimed, 1);
    assert_int_equal(stats(f).handshakes_ok, 0);
    assert_int_equal(stats(f).sessions, 1);

    /* Our answer continues past the saved sequence number plus the margin, and the device
     * opens it. */
    assert_non_null(eng.last_peer);
    assert_int_equal(transport_peer_send(eng.last_peer, (const uint8_t *)"ok", 2), 0);
    ssize_t got = recv(dfd, buf, sizeof buf, 0);
    assert_true(got > 0);
    dtls_rec_t r;
    assert_true(dtls__rec_parse(buf, (size_t)got, &r) > 0);
    assert_true(r.seq >= DTLS_SAVED_SEQ_MARGIN);
    uint8_t plain[64];
    assert_int_equal(dtls__rl_open(&cli, &ca, &r, plain, sizeof plain), 2);
    assert_memory_equal(plain, "ok", 2);

    /* The replayed old record is still refused by the claimed session. */
    uint64_t replayed = stats(f).records_replayed;
    dtls__listener_input(f->l, &dev, dlen, old_rec, old_len);
    assert_int_equal(eng.inputs, 1);
    assert_int_equal(stats(f).records_replayed, replayed + 1);

    dtls__aead_fini(&ca);
    dtls__rl_wipe(&cli);
    close(dfd);
}

/* Unclaimed sessions go when the file's max age has passed; a damaged file is not used. */
static void test_expire_and_damaged(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    dtls_saved_sess_t ss[3];
    size_t len;
    int64_t now = (int64_t)time(NULL);
    char err[ERR_LEN] = "";
    uint8_t key[32];
    assert_int_equal(dtls__saved_key(f->dir, true, key, err), 0);
    dtls_save_t *w = dtls_save_new();
    for (int i = 0; i < 3; i++) {
        ss[i] = sample(i);
        dtls__save_add(w, &ss[i]);
    }
    uint8_t *file = NULL;
    assert_int_equal(dtls__saved_encode(w, key, now, 2, &file, &len), 0);
    dtls_save_free(w);
    dtls_restore_t *t = dtls__ctx_restore(f->ctx);
    assert_int_equal(dtls__restore_load_buf(t, file, len, key, now, NULL, 0), 3);
    assert_true(dtls__restore_pending(t));
    dtls__listener_sweep(f->l, loop_now_ms(f->loop));
    assert_int_equal(stats(f).saved_expired, 0);
    assert_int_equal(dtls__restore_expire(t, (now + 2) * 1000), 3);
    assert_false(dtls__restore_pending(t));

    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, DTLS_SAVED_FILE);
    file[len - 1] ^= 0x80;
    FILE *fp = fopen(path, "wb");
    fwrite(file, 1, len, fp);
    fclose(fp);
    assert_true(dtls_ctx_restore_sessions(f->ctx, f->dir, err) < 0);
    assert_non_null(strstr(err, "damaged"));
    assert_false(exists(f, DTLS_SAVED_FILE, NULL));
    assert_false(dtls__restore_pending(t));
    free(file);
}

/* A save while running: a session that then receives (or sends) a record is listed as stale
 * and a later load (after a kill -9: the running listener is simply never freed here) leaves
 * it out; a quiet one is offered. */
static void test_live_save_stale(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    struct sockaddr_storage d1, d2;
    socklen_t l1, l2;
    int fd1 = udp_socket(&d1, &l1), fd2 = udp_socket(&d2, &l2);
    dtls_rl_t s1, s2, c1;
    make_rl(&s1, DTLS_AEAD_AES128_GCM, 16);
    make_rl(&s2, DTLS_AEAD_AES256_GCM, 16);
    dtls__rl_mirror(&s1, &c1);
    dtls__peer_new_compact(f->l, &d1, l1, &s1);
    dtls__peer_new_compact(f->l, &d2, l2, &s2);
    char err[ERR_LEN] = "";
    assert_int_equal(dtls_save_begin(f->dir), 0);
    dtls_save_t *w = dtls_save_new();
    assert_int_equal(dtls_listener_save(f->l, w, false, NULL), 2);
    assert_int_equal(dtls_save_write(w, f->dir, 600, err), 0);
    dtls_save_free(w);
    assert_false(exists(f, DTLS_SAVED_STALE_FILE, NULL));

    dtls_aead_ctx_t ca;
    dtls__aead_init(&ca);
    uint8_t rec[256];
    ssize_t n = dtls__rl_seal(&c1, &ca, 23, (const uint8_t *)"moved", 5, rec, sizeof rec);
    dtls__listener_input(f->l, &d1, l1, rec, (size_t)n);
    assert_int_equal(eng.inputs, 1);
    mode_t mode = 0;
    assert_true(exists(f, DTLS_SAVED_STALE_FILE, &mode));
    assert_int_equal(mode, 0600);
    /* A second record costs nothing more: one entry per session per save. */
    n = dtls__rl_seal(&c1, &ca, 23, (const uint8_t *)"again", 5, rec, sizeof rec);
    dtls__listener_input(f->l, &d1, l1, rec, (size_t)n);
    char sp[128];
    snprintf(sp, sizeof sp, "%s/%s", f->dir, DTLS_SAVED_STALE_FILE);
    struct stat st;
    assert_int_equal(stat(sp, &st), 0);
    assert_int_equal(st.st_size, 8);

    /* "kill -9": another process starts on the same data dir. */
    dtls_ctx_t *ctx2 = dtls_ctx_new(&f->cfg, err);
    assert_non_null(ctx2);
    assert_int_equal(dtls_ctx_restore_sessions(ctx2, f->dir, err), 1);
    dtls_restore_t *t = dtls__ctx_restore(ctx2);
    assert_null(dtls__restore_take(t, &d1));
    dtls_saved_sess_t *quiet = dtls__restore_take(t, &d2);
    assert_non_null(quiet);
    assert_memory_equal(quiet->rl.wkey, s2.wkey, s2.key_len);
    assert_int_equal(quiet->rl.w_seq, s2.w_seq + DTLS_SAVED_SEQ_MARGIN);
    dtls__saved_sess_free(quiet);
    assert_false(exists(f, DTLS_SAVED_STALE_FILE, NULL));
    assert_false(exists(f, DTLS_SAVED_FILE, NULL));
    dtls_ctx_free(ctx2);
    dtls__aead_fini(&ca);
    close(fd1);
    close(fd2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wrong_key_truncated_tampered),
        cmocka_unit_test(test_expired_and_version),
        cmocka_unit_test(test_body_checks),
        cmocka_unit_test_setup_teardown(test_save_restart_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_and_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_save_stale, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
