/* test_provision.c — device/provision.h on both store backends: the key-and-secret rules
 * (what each strategy answers, provisionState, the registry learning new credentials) and the
 * X.509 chain rules that the integration test cannot reach with real clients: a CN pattern
 * matched as a whole, with and without a group; a CA removed in the store but still in the
 * cache (refused: the store is asked again); a renewed certificate re-binding its device; a
 * device of the same name in another profile left alone. And the worker that takes the store
 * calls off the shards: bounded, every request it took answered once. Certificates are made
 * in-process. */
#include "device/provision.h"
#include "device/x509.h"
#include "unit/store/store_test_util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

typedef struct cert {
    EVP_PKEY *key;
    X509 *x;
    unsigned char *der;
    size_t len;
} cert_t;

/* A P-256 certificate for cn valid [now+from_days, now+to_days], self-signed or by issuer;
 * a CA when ca. */
static void cert_make(cert_t *c, const char *cn, const cert_t *issuer, bool ca, int from_days,
                      int to_days)
{
    memset(c, 0, sizeof *c);
    c->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(c->key);
    c->x = X509_new();
    uint8_t serial[2];
    RAND_bytes(serial, sizeof serial);
    ASN1_INTEGER_set(X509_get_serialNumber(c->x), 1 + (serial[0] << 8 | serial[1]));
    X509_set_version(c->x, X509_VERSION_3);
    X509_time_adj_ex(X509_getm_notBefore(c->x), from_days, 0, NULL);
    X509_time_adj_ex(X509_getm_notAfter(c->x), to_days, 0, NULL);
    X509_NAME *name = X509_get_subject_name(c->x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c->x, issuer ? X509_get_subject_name(issuer->x) : name);
    X509_set_pubkey(c->x, c->key);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer ? issuer->x : c->x, c->x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(c->x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(c->x, issuer ? issuer->key : c->key, EVP_sha256()) > 0);
    int n = i2d_X509(c->x, &c->der);
    assert_true(n > 0);
    c->len = (size_t)n;
}

static void cert_free(cert_t *c)
{
    EVP_PKEY_free(c->key);
    X509_free(c->x);
    OPENSSL_free(c->der);
}

static char *cert_pem(const cert_t *c)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, c->x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(b);
    return out;
}

static char *cert_hash(const cert_t *c)
{
    static char h[65];
    assert_int_equal(x509_cred_hash_der(c->der, c->len, h), 0);
    return h;
}

/* A chain-provisioning profile for ca, as the REST side would store it; its id. */
static int64_t chain_profile(store_t *s, const char *name, const cert_t *ca, const char *re,
                             bool allow)
{
    char *pem = cert_pem(ca);
    json_t *pc = json_pack("{s:s, s:s, s:s, s:b}", "type", "X509_CERTIFICATE_CHAIN",
                           "provisionDeviceSecret", pem, "certificateRegExPattern", re,
                           "allowCreateNewDevicesByX509Certificate", allow);
    json_t *d = json_pack("{s:{s:o}}", "profileData", "provisionConfiguration", pc);
    char *data = json_dumps(d, JSON_COMPACT);
    store_profile_t p = {.name = (char *)name,
                         .provision_type = "X509_CERTIFICATE_CHAIN",
                         .provision_key = cert_hash(ca),
                         .data = data};
    assert_int_equal(store_profile_create(s, &p), 0);
    json_decref(d);
    free(data);
    free(pem);
    return p.id;
}

static int64_t identify(provision_chain_t *pc, const cert_t *leaf, const cert_t *inter)
{
    const uint8_t *der[2] = {leaf->der, inter ? inter->der : NULL};
    size_t len[2] = {leaf->len, inter ? inter->len : 0};
    return provision_chain_identify(pc, der, len, inter ? 2 : 1);
}

static int64_t device_named(store_t *s, const char *name)
{
    store_device_t d;
    if (store_device_get_by_name(s, name, &d) != 0)
        return 0;
    int64_t id = d.id;
    store_device_fini(&d);
    return id;
}

static void test_chain_rules(void **state)
{
    tstore_t *t = *state;
    registry_t *reg = registry_new();
    provision_chain_t *pc = provision_chain_new(t->s, reg, NULL);
    cert_t ca, inter, a, b, c, g, renewed, twin;
    cert_make(&ca, "Unit Root", NULL, true, -1, 30);
    cert_make(&inter, "Unit Sub", &ca, true, -1, 30);
    cert_make(&a, "dev-12", &ca, false, -1, 30);
    cert_make(&b, "xdev-12", &ca, false, -1, 30);
    cert_make(&c, "dev-12x", &inter, false, -1, 30);
    cert_make(&g, "sensor-7", &inter, false, -1, 30);

    /* Nothing cached: nothing provisioned, nothing created. */
    assert_int_equal(identify(pc, &a, NULL), 0);
    int64_t prof = chain_profile(t->s, "unit", &ca, "dev-[0-9]+", true);
    assert_int_equal(provision_chain_count(pc), 0);
    assert_int_equal(provision_chain_reload(pc), 0);
    assert_int_equal(provision_chain_count(pc), 1);

    /* No group: the whole CN is the name, and the pattern must match all of it. */
    int64_t id = identify(pc, &a, NULL);
    assert_true(id > 0);
    assert_int_equal(device_named(t->s, "dev-12"), id);
    assert_int_equal(registry_find_cert(reg, cert_hash(&a)), id);
    assert_int_equal(identify(pc, &b, NULL), 0);
    assert_int_equal(identify(pc, &c, &inter), 0);
    assert_int_equal(device_named(t->s, "xdev-12"), 0);

    /* A renewed certificate of dev-12 re-binds the device; the old one no longer names it. */
    cert_make(&renewed, "dev-12", &inter, false, -1, 30);
    assert_int_equal(identify(pc, &renewed, &inter), id);
    assert_int_equal(registry_find_cert(reg, cert_hash(&renewed)), id);
    assert_int_equal(registry_find_cert(reg, cert_hash(&a)), 0);

    /* A device of that name in another profile is not taken over. */
    assert_true(tstore_device(t->s, "dev-99") > 0);
    cert_make(&twin, "dev-99", &ca, false, -1, 30);
    assert_int_equal(identify(pc, &twin, NULL), 0);

    /* A group: its match is the name. */
    store_profile_t p;
    assert_int_equal(store_profile_get(t->s, prof, &p), 0);
    char *data = p.data;
    json_t *d = json_loads(data, 0, NULL);
    json_object_set_new(
        json_object_get(json_object_get(d, "profileData"), "provisionConfiguration"),
        "certificateRegExPattern", json_string("sensor-([0-9])"));
    p.data = json_dumps(d, JSON_COMPACT);
    free(data);
    json_decref(d);
    assert_int_equal(store_profile_update(t->s, &p), 0);
    assert_int_equal(provision_chain_reload(pc), 0);
    int64_t gid = identify(pc, &g, &inter);
    assert_true(gid > 0);
    assert_int_equal(device_named(t->s, "7"), gid);

    /* Provisioning switched off in the store, the cache not reloaded: refused all the same. */
    free(p.provision_type);
    p.provision_type = strdup("DISABLED");
    free(p.provision_key);
    p.provision_key = NULL;
    assert_int_equal(store_profile_update(t->s, &p), 0);
    store_profile_fini(&p);
    assert_int_equal(provision_chain_count(pc), 1);
    cert_t late;
    cert_make(&late, "sensor-8", &inter, false, -1, 30);
    assert_int_equal(identify(pc, &late, &inter), 0);
    assert_int_equal(device_named(t->s, "8"), 0);
    assert_int_equal(provision_chain_reload(pc), 0);
    assert_int_equal(provision_chain_count(pc), 0);

    cert_t *all[] = {&ca, &inter, &a, &b, &c, &g, &renewed, &twin, &late};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cert_free(all[i]);
    provision_chain_free(pc);
    registry_free(reg);
}

static provision_req_t req(const char *name, const char *key, const char *secret)
{
    return (provision_req_t){.device_name = name,
                             .key = key,
                             .secret = secret,
                             .cred_type = PROVISION_CRED_ACCESS_TOKEN,
                             .token = "",
                             .hash = ""};
}

static void test_key_rules(void **state)
{
    tstore_t *t = *state;
    registry_t *reg = registry_new();
    store_profile_t pre = {
        .name = "pre",
        .provision_type = "CHECK_PRE_PROVISIONED_DEVICES",
        .provision_key = "kp",
        .data =
            "{\"profileData\":{\"provisionConfiguration\":{\"provisionDeviceSecret\":\"sp\"}}}"};
    assert_int_equal(store_profile_create(t->s, &pre), 0);
    store_profile_t allow = {
        .name = "allow",
        .provision_type = "ALLOW_CREATE_NEW_DEVICES",
        .provision_key = "ka",
        .data =
            "{\"profileData\":{\"provisionConfiguration\":{\"provisionDeviceSecret\":\"sa\"}}}"};
    assert_int_equal(store_profile_create(t->s, &allow), 0);
    provision_result_t r;

    /* A blank name, a wrong secret, a secret that is a prefix of the right one. */
    provision_req_t q = req("  ", "ka", "sa");
    assert_int_equal(provision_device(t->s, reg, NULL, &q, &r), 0);
    assert_int_equal(r.status, PROVISION_FAILURE);
    q = req("n1", "ka", "s");
    assert_int_equal(provision_device(t->s, reg, NULL, &q, &r), 0);
    assert_int_equal(r.status, PROVISION_NOT_FOUND);

    /* A name is trimmed; a generated token is registered. */
    q = req(" n1 ", "ka", "sa");
    assert_int_equal(provision_device(t->s, reg, NULL, &q, &r), 0);
    assert_int_equal(r.status, PROVISION_SUCCESS);
    assert_int_equal(strlen(r.cred_value), 20);
    assert_int_equal(device_named(t->s, "n1"), r.device_id);
    assert_int_equal(registry_find_token(reg, (const uint8_t *)r.cred_value, 20), r.device_id);
    char *body = provision_result_json(&r);
    assert_non_null(strstr(body, "\"credentialsType\":\"ACCESS_TOKEN\",\"status\":\"SUCCESS\"}"));
    free(body);
    provision_result_fini(&r);

    /* A certificate as the credential: Base64 DER back, and in the registry. */
    cert_t x;
    cert_make(&x, "n2", NULL, false, -1, 30);
    char *pem = cert_pem(&x);
    q = req("n2", "ka", "sa");
    q.cred_type = PROVISION_CRED_X509;
    q.hash = pem;
    assert_int_equal(provision_device(t->s, reg, NULL, &q, &r), 0);
    assert_int_equal(r.status, PROVISION_SUCCESS);
    assert_int_equal(r.cred_type, CRED_X509);
    assert_int_equal(registry_find_cert(reg, cert_hash(&x)), r.device_id);
    provision_result_fini(&r);
    free(pem);
    cert_free(&x);

    /* Pre-provisioned: the existing credentials once, then FAILURE. */
    store_device_t d = {.name = "p1", .profile_id = pre.id};
    store_cred_t c = {.type = CRED_ACCESS_TOKEN, .cred_id = "P1TOKEN"};
    assert_int_equal(store_device_create_with_cred(t->s, &d, &c), 0);
    int64_t p1 = d.id;
    d.name = NULL;
    store_device_fini(&d);
    q = req("p1", "kp", "sp");
    assert_int_equal(provision_device(t->s, reg, NULL, &q, &r), 0);
    assert_int_equal(r.status, PROVISION_SUCCESS);
    assert_int_equal(r.device_id, p1);
    assert_string_equal(r.cred_value, "P1TOKEN");
    provision_result_fini(&r);
    assert_int_equal(provision_device(t->s, reg, NULL, &q, &r), 0);
    assert_int_equal(r.status, PROVISION_FAILURE);
    /* A device of the allow-create profile is not pre-provisioned in "pre". */
    q = req("n1", "kp", "sp");
    assert_int_equal(provision_device(t->s, reg, NULL, &q, &r), 0);
    assert_int_equal(r.status, PROVISION_FAILURE);
    registry_free(reg);
}

typedef struct tally {
    int done, not_found;
} tally_t;

static void on_done(void *arg, int rc, const provision_result_t *r)
{
    tally_t *t = arg;
    t->done++;
    if (rc == 0 && r->status == PROVISION_NOT_FOUND)
        t->not_found++;
}

/* The worker answers every request it took, exactly once, through the loop; beyond
 * PROVISION_QUEUE_MAX waiting requests it refuses at once (-EAGAIN) instead of queueing. */
static void test_worker_bounded(void **state)
{
    tstore_t *t = *state;
    char err[ERR_LEN];
    loop_t *loop = loop_new(err);
    assert_non_null(loop);
    registry_t *reg = registry_new();
    provision_worker_t *w = provision_worker_new(t->s, reg, NULL);
    tally_t tally = {0};
    int accepted = 0, refused = 0;
    for (int i = 0; i < 2000; i++) {
        provision_req_t q = req("x", "no-such-key", "s");
        int rc = provision_worker_submit(w, &q, loop, on_done, &tally);
        if (rc == 0)
            accepted++;
        else if (rc == -EAGAIN)
            refused++;
        else
            fail();
    }
    provision_worker_free(w); /* runs what it accepted */
    loop_drain(loop);
    assert_true(refused > 0);
    assert_int_equal(accepted + refused, 2000);
    assert_int_equal(tally.done, accepted);
    assert_int_equal(tally.not_found, accepted);
    registry_free(reg);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_rules, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_key_rules, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_worker_bounded, tstore_setup, tstore_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
