/* testcert.c — see testcert.h. */
#include "testcert.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

char *testcert_new(const char *cn, uint8_t **der, size_t *der_len)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    char *pem = malloc((size_t)n + 1);
    memcpy(pem, p, (size_t)n);
    pem[n] = '\0';
    if (der) {
        unsigned char *d = NULL;
        int dl = i2d_X509(x, &d);
        *der = malloc((size_t)dl);
        memcpy(*der, d, (size_t)dl);
        *der_len = (size_t)dl;
        OPENSSL_free(d);
    }
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return pem;
}
