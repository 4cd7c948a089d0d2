/* provision_chain.c — X.509 certificate-chain provisioning over DTLS (spec §6.5). See
 * provision.h.
 *
 * What ThingsBoard does only for MQTT, and there without checking a single signature
 * (issue #14103): a profile names a CA; a device whose certificate that CA issued is created
 * on its first handshake. Here the chain is verified by OpenSSL's X509_verify_cert against a
 * store holding that CA alone (PARTIAL_CHAIN: the CA may itself be an intermediate), with the
 * client's own intermediates as untrusted helpers, at most PROVISION_CHAIN_MAX_INTERMEDIATES of
 * them, dates checked on every certificate. The device name comes from the leaf's CN through
 * the profile's pattern (POSIX ERE, matching the whole CN; group 1, or the whole CN when the
 * pattern has no group). ThingsBoard's Matcher.find() accepts a match anywhere in the CN;
 * whole-CN matching keeps "(.*)" meaning what it says and "dev-[0-9]+" from matching
 * "evil-dev-1-x".
 *
 * COST. Every handshake with a certificate the registry does not know comes here. With no
 * chain profile configured that is one read-locked pointer test. Otherwise the chain is parsed
 * and its issuer names compared with the cached CAs' subjects; only a chain whose issuer name
 * equals a CA's subject costs a signature check, and only a chain that verified costs store
 * calls. A forged issuer name costs one failed signature check, less than the handshake the
 * client had to complete to get here.
 *
 * CACHE. An immutable table of parsed profiles behind a rwlock: readers hold the read lock
 * while they verify (microseconds), a reload builds a new table outside the lock and swaps it
 * in. It is a pre-filter only: before anything is written, the profile is read again from the
 * store and the chain verified again against it, so a CA removed from its profile (or a
 * provisioning type changed) stops provisioning at once, whether or not the cache has been
 * reloaded. A profile added needs provision_chain_reload (the REST profile handlers, SIGHUP).
 */
#include "device/provision_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "device/x509.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAIN_TYPE "X509_CERTIFICATE_CHAIN"
/* ThingsBoard's UI proposes "(.*)"; a profile saved without a pattern means the same. */
#define DEFAULT_PATTERN "(.*)"
#define PATTERN_MAX 1024
#define CN_MAX 255
/* Certificates accepted from a client: the leaf and its intermediates. */
#define SENT_MAX (1 + PROVISION_CHAIN_MAX_INTERMEDIATES)
/* Certificates parsed at most (a longer chain is refused anyway, but its issuers are looked
 * at so that the refusal of a chain naming one of our CAs is logged). */
#define PARSE_MAX (SENT_MAX + 3)

typedef struct chain_profile {
    int64_t id;
    char *name;             /* for the log */
    X509 *ca;               /* the trust anchor: the first certificate of the profile's PEM */
    X509_STORE *trust;      /* holds ca alone */
    STACK_OF(X509) * extra; /* the profile's further certificates, offered as untrusted */
    regex_t re;
    bool has_group;
    bool allow_create;
} chain_profile_t;

typedef struct chain_table {
    chain_profile_t *items;
    size_t n, cap;
} chain_table_t;

struct provision_chain {
    store_t *store;
    registry_t *reg;
    hub_t *hub; /* told of devices made (HUB_CHANGE_DEVICE_PROVISIONED); may be NULL */
    pthread_rwlock_t lock;
    chain_table_t *table; /* never NULL */
};

static void profile_fini(chain_profile_t *e)
{
    free(e->name);
    X509_free(e->ca);
    X509_STORE_free(e->trust);
    sk_X509_pop_free(e->extra, X509_free);
    if (e->trust)
        regfree(&e->re); /* compiled last: trust set means re is too */
    memset(e, 0, sizeof *e);
}

static void table_free(chain_table_t *t)
{
    for (size_t i = 0; t && i < t->n; i++)
        profile_fini(&t->items[i]);
    if (t)
        free(t->items);
    free(t);
}

static void set_why(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

/* Builds e from a profile row. 0; -ENOENT when the profile does not provision by chain;
 * -EINVAL with why when its configuration is unusable. */
static int profile_parse(const store_profile_t *p, chain_profile_t *e, char *why, size_t cap)
{
    memset(e, 0, sizeof *e);
    if (!p->provision_type || strcmp(p->provision_type, CHAIN_TYPE) != 0)
        return -ENOENT;
    json_t *d = p->data ? json_loads(p->data, 0, NULL) : NULL;
    json_t *cfg = json_object_get(json_object_get(d, "profileData"), "provisionConfiguration");
    const char *pem = json_string_value(json_object_get(cfg, "provisionDeviceSecret"));
    const char *pattern = json_string_value(json_object_get(cfg, "certificateRegExPattern"));
    /* Absent means allowed, as the REST side normalises it (http/profile_body.c). */
    e->allow_create = !json_is_false(
        json_object_get(cfg, "allowCreateNewDevicesByX509Certificate"));
    int rc = -EINVAL;
    if (!pem || !*pem) {
        set_why(why, cap, "no CA certificate");
        goto out;
    }
    if (!pattern || !*pattern)
        pattern = DEFAULT_PATTERN;
    if (strlen(pattern) > PATTERN_MAX) {
        set_why(why, cap, "certificateRegExPattern is longer than %d bytes", PATTERN_MAX);
        goto out;
    }
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x;
    e->extra = sk_X509_new_null();
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!e->ca)
            e->ca = x;
        else
            sk_X509_push(e->extra, x);
    }
    ERR_clear_error(); /* the read that ended the loop */
    BIO_free(bio);
    if (!e->ca) {
        set_why(why, cap, "the CA certificate is not PEM");
        goto out;
    }
    int rerr = regcomp(&e->re, pattern, REG_EXTENDED);
    if (rerr != 0) {
        char msg[96];
        regerror(rerr, &e->re, msg, sizeof msg);
        set_why(why, cap, "certificateRegExPattern: %s", msg);
        goto out;
    }
    e->has_group = e->re.re_nsub > 0;
    e->trust = X509_STORE_new();
    X509_STORE_add_cert(e->trust, e->ca);
    e->id = p->id;
    e->name = xstrdup(p->name ? p->name : "");
    rc = 0;
out:
    json_decref(d);
    if (rc < 0)
        profile_fini(e);
    return rc;
}

/* The leaf's CN as UTF-8 into out (NUL-free, at most CN_MAX bytes). 0 or -EINVAL. */
static int leaf_cn(X509 *leaf, char out[static CN_MAX + 1])
{
    X509_NAME *subj = X509_get_subject_name(leaf);
    int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (i < 0)
        return -EINVAL;
    unsigned char *u = NULL;
    int n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
    int rc = -EINVAL;
    if (n > 0 && n <= CN_MAX && !memchr(u, '\0', (size_t)n)) {
        memcpy(out, u, (size_t)n);
        out[n] = '\0';
        rc = 0;
    }
    OPENSSL_free(u);
    return rc;
}

/* Whether e's CA could have issued something in the chain: its subject is the issuer name of
 * the leaf or of a certificate the client sent. No signature is checked here. */
static bool candidate(const chain_profile_t *e, X509 *leaf, STACK_OF(X509) * sent)
{
    const X509_NAME *ca = X509_get_subject_name(e->ca);
    if (X509_NAME_cmp(ca, X509_get_issuer_name(leaf)) == 0)
        return true;
    for (int i = 0; i < sk_X509_num(sent); i++)
        if (X509_NAME_cmp(ca, X509_get_issuer_name(sk_X509_value(sent, i))) == 0)
            return true;
    return false;
}

/* Verifies the chain against e and derives the device name. 0 with name filled, or -EACCES
 * with why. */
static int verify(const chain_profile_t *e, X509 *leaf, STACK_OF(X509) * sent,
                  char name[static CN_MAX + 1], char *why, size_t cap)
{
    STACK_OF(X509) *untrusted = sk_X509_dup(sent);
    for (int i = 0; i < sk_X509_num(e->extra); i++)
        sk_X509_push(untrusted, sk_X509_value(e->extra, i));
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = ctx && X509_STORE_CTX_init(ctx, e->trust, leaf, untrusted) == 1;
    if (ok) {
        X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
        X509_VERIFY_PARAM_set_depth(vp, PROVISION_CHAIN_MAX_INTERMEDIATES);
        X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_PARTIAL_CHAIN);
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        ok = X509_verify_cert(ctx) == 1;
        if (!ok)
            set_why(why, cap, "chain not valid for this CA: %s",
                    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    } else {
        set_why(why, cap, "cannot set up the verification");
    }
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    ERR_clear_error();
    if (!ok)
        return -EACCES;
    char cn[CN_MAX + 1];
    if (leaf_cn(leaf, cn) < 0) {
        set_why(why, cap, "the certificate has no usable CN");
        return -EACCES;
    }
    regmatch_t m[2];
    size_t n = strlen(cn);
    if (regexec(&e->re, cn, 2, m, 0) != 0 || m[0].rm_so != 0 || (size_t)m[0].rm_eo != n) {
        set_why(why, cap, "CN \"%s\" does not match the profile's pattern", cn);
        return -EACCES;
    }
    if (e->has_group && m[1].rm_so >= 0) {
        size_t k = (size_t)(m[1].rm_eo - m[1].rm_so);
        memmove(name, cn + m[1].rm_so, k);
        name[k] = '\0';
    } else {
        memcpy(name, cn, n + 1);
    }
    if (!name[0]) {
        set_why(why, cap, "CN \"%s\" gives an empty device name", cn);
        return -EACCES;
    }
    return 0;
}

provision_chain_t *provision_chain_new(store_t *s, registry_t *reg, hub_t *hub)
{
    provision_chain_t *pc = xcalloc(1, sizeof *pc);
    pc->store = s;
    pc->reg = reg;
    pc->hub = hub;
    pthread_rwlock_init(&pc->lock, NULL);
    pc->table = xcalloc(1, sizeof *pc->table);
    return pc;
}

void provision_chain_free(provision_chain_t *pc)
{
    if (!pc)
        return;
    table_free(pc->table);
    pthread_rwlock_destroy(&pc->lock);
    free(pc);
}

static void load_one(void *arg, const store_profile_t *p)
{
    chain_table_t *t = arg;
    chain_profile_t e;
    char why[160];
    int rc = profile_parse(p, &e, why, sizeof why);
    if (rc == -ENOENT)
        return;
    if (rc < 0) {
        LOG_W("provision", "profile \"%s\": X.509 chain provisioning off: %s",
              p->name ? p->name : "", why);
        return;
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 4;
        t->items = xrealloc(t->items, t->cap * sizeof *t->items);
    }
    t->items[t->n++] = e;
}

int provision_chain_reload(provision_chain_t *pc)
{
    chain_table_t *t = xcalloc(1, sizeof *t);
    int rc = store_profile_foreach(pc->store, load_one, t);
    if (rc < 0) {
        table_free(t);
        return rc;
    }
    pthread_rwlock_wrlock(&pc->lock);
    chain_table_t *old = pc->table;
    pc->table = t;
    pthread_rwlock_unlock(&pc->lock);
    table_free(old); /* no reader holds it: they hold the read lock while they use it */
    LOG_D("provision", "%zu X.509 chain provisioning profile(s)", t->n);
    return 0;
}

size_t provision_chain_count(provision_chain_t *pc)
{
    pthread_rwlock_rdlock(&pc->lock);
    size_t n = pc->table->n;
    pthread_rwlock_unlock(&pc->lock);
    return n;
}

/* The device the verified leaf becomes, against the profile as the store has it now. */
static int64_t bind(provision_chain_t *pc, int64_t profile_id, X509 *leaf, STACK_OF(X509) * sent,
                    const uint8_t *der, size_t der_len)
{
    store_profile_t p;
    int rc = store_profile_get(pc->store, profile_id, &p);
    if (rc < 0) {
        if (rc != -ENOENT)
            LOG_W("provision", "profile %lld: cannot read it: %s", (long long)profile_id,
                  err_str(rc));
        return 0;
    }
    chain_profile_t e;
    char why[200], name[CN_MAX + 1];
    rc = profile_parse(&p, &e, why, sizeof why);
    store_profile_fini(&p);
    if (rc < 0) {
        LOG_I("provision",
              "profile %lld no longer provisions by X.509 chain; certificate "
              "refused",
              (long long)profile_id);
        return 0;
    }
    int64_t id = 0;
    if (verify(&e, leaf, sent, name, why, sizeof why) < 0) {
        LOG_I("provision", "profile \"%s\": certificate refused: %s", e.name, why);
        goto out;
    }
    char *b64 = NULL, hash[65];
    if (x509_cred_from_der(der, der_len, &b64, hash) < 0)
        goto out;
    store_device_t d;
    rc = store_device_get_by_name(pc->store, name, &d);
    if (rc == 0) {
        /* ThingsBoard: a device of that name in the profile is re-bound to the new
         * certificate (a renewed device certificate); in another profile it is not touched. */
        int64_t did = d.id, dprofile = d.profile_id;
        store_device_fini(&d);
        store_cred_t c = {0};
        if (dprofile != e.id) {
            LOG_I("provision",
                  "profile \"%s\": device \"%s\" exists in another profile; "
                  "certificate refused",
                  e.name, name);
        } else if ((rc = store_cred_get_by_device(pc->store, did, &c)) < 0 || c.type != CRED_X509) {
            LOG_I("provision",
                  "profile \"%s\": device \"%s\" has no X.509 credentials; "
                  "certificate refused",
                  e.name, name);
        } else {
            free(c.cred_id);
            free(c.cred_value);
            c.cred_id = xstrdup(hash);
            c.cred_value = xstrdup(b64);
            if ((rc = store_cred_set(pc->store, &c)) == 0) {
                registry_set(pc->reg, did, CRED_X509, hash);
                id = did;
                LOG_I("provision",
                      "device %lld \"%s\" re-bound to a new certificate by "
                      "profile \"%s\"",
                      (long long)did, name, e.name);
            } else {
                LOG_W("provision", "device %lld: credentials not saved: %s", (long long)did,
                      err_str(rc));
            }
        }
        store_cred_fini(&c);
    } else if (rc != -ENOENT) {
        LOG_W("provision", "device \"%s\": cannot read it: %s", name, err_str(rc));
    } else if (!e.allow_create) {
        LOG_I("provision",
              "profile \"%s\": no device \"%s\" and "
              "allowCreateNewDevicesByX509Certificate is off; certificate refused",
              e.name, name);
    } else {
        rc = provision__create(pc->store, pc->reg, pc->hub, name, e.id, CRED_X509, hash, b64, &id);
        if (rc == ERR_CONFLICT || rc == -EEXIST) {
            /* Another shard provisioned the same certificate a moment ago. */
            store_cred_t c;
            id = 0;
            if (store_cred_get_by_id(pc->store, hash, &c) == 0) {
                id = c.device_id;
                store_cred_fini(&c);
            }
        } else if (rc < 0) {
            LOG_W("provision", "device \"%s\" not created: %s", name, err_str(rc));
        } else {
            LOG_I("provision",
                  "device %lld \"%s\" created by X.509 chain provisioning of "
                  "profile \"%s\"",
                  (long long)id, name, e.name);
        }
    }
    free(b64);
out:
    profile_fini(&e);
    return id;
}

int64_t provision_chain_identify(provision_chain_t *pc, const uint8_t *const *der,
                                 const size_t *len, size_t n)
{
    if (n == 0)
        return 0;
    pthread_rwlock_rdlock(&pc->lock);
    const chain_table_t *t = pc->table;
    if (t->n == 0) {
        pthread_rwlock_unlock(&pc->lock);
        return 0;
    }
    int64_t id = 0, profile_id = 0;
    STACK_OF(X509) *sent = sk_X509_new_null();
    const unsigned char *p = der[0];
    X509 *leaf = d2i_X509(NULL, &p, (long)len[0]);
    if (!leaf)
        goto out;
    /* Parsing stays bounded whatever the client sent; a chain longer than SENT_MAX is
     * refused below, and only logged when one of our CAs is involved. */
    for (size_t i = 1; i < n && i < PARSE_MAX; i++) {
        p = der[i];
        X509 *x = d2i_X509(NULL, &p, (long)len[i]);
        if (!x)
            goto out;
        sk_X509_push(sent, x);
    }
    for (size_t i = 0; i < t->n && !profile_id; i++) {
        const chain_profile_t *e = &t->items[i];
        if (!candidate(e, leaf, sent))
            continue;
        char why[200], name[CN_MAX + 1];
        if (n > SENT_MAX)
            LOG_I("provision",
                  "profile \"%s\": certificate refused: %zu certificates above the leaf "
                  "(at most %d)",
                  e->name, n - 1, PROVISION_CHAIN_MAX_INTERMEDIATES);
        else if (verify(e, leaf, sent, name, why, sizeof why) == 0)
            profile_id = e->id;
        else
            LOG_I("provision", "profile \"%s\": certificate refused: %s", e->name, why);
    }
    pthread_rwlock_unlock(&pc->lock);
    /* Store calls happen without the lock: a reload must not wait on the database. */
    if (profile_id)
        id = bind(pc, profile_id, leaf, sent, der[0], len[0]);
    X509_free(leaf);
    sk_X509_pop_free(sent, X509_free);
    ERR_clear_error();
    return id;
out:
    pthread_rwlock_unlock(&pc->lock);
    X509_free(leaf);
    sk_X509_pop_free(sent, X509_free);
    ERR_clear_error();
    return 0;
}
