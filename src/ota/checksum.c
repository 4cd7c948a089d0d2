/* checksum.c — ThingsBoard's ChecksumAlgorithm names on OpenSSL digests, fed as data streams.
 *
 * ThingsBoard computes checksums with Guava's Hashing (MD5, SHA-256/384/512, CRC32,
 * Murmur3-32/128). OpenSSL offers the four cryptographic ones; CRC32 and the Murmur3 hashes
 * are not in it, and writing our own would make checksums devices verify depend on a
 * re-implementation of Guava's byte order, so those names are refused (-ENOTSUP, a 400 on
 * upload; docs/COMPATIBILITY.md).
 */
#include "ota/ota.h"

#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

struct ota_checksum {
    EVP_MD_CTX *ctx;
};

static const struct {
    const char *name;
    const char *md; /* OpenSSL digest name, NULL = not available */
} algs[] = {
    {"MD5", "MD5"},  {"SHA256", "SHA256"}, {"SHA384", "SHA384"},  {"SHA512", "SHA512"},
    {"CRC32", NULL}, {"MURMUR3_32", NULL}, {"MURMUR3_128", NULL},
};

int ota_checksum_new(const char *algorithm, ota_checksum_t **out, const char **canon)
{
    *out = NULL;
    for (size_t i = 0; algorithm && i < sizeof algs / sizeof algs[0]; i++) {
        if (strcasecmp(algorithm, algs[i].name) != 0)
            continue;
        if (canon)
            *canon = algs[i].name;
        if (!algs[i].md)
            return -ENOTSUP;
        EVP_MD *md = EVP_MD_fetch(NULL, algs[i].md, NULL);
        if (!md)
            return -ENOTSUP; /* e.g. MD5 in a FIPS-only OpenSSL */
        ota_checksum_t *c = xcalloc(1, sizeof *c);
        c->ctx = EVP_MD_CTX_new();
        int ok = c->ctx && EVP_DigestInit_ex(c->ctx, md, NULL) == 1;
        EVP_MD_free(md);
        if (!ok) {
            ota_checksum_free(c);
            return -ENOMEM;
        }
        *out = c;
        return 0;
    }
    return -EINVAL;
}

void ota_checksum_update(ota_checksum_t *c, const void *p, size_t n)
{
    if (n)
        ASSERT(EVP_DigestUpdate(c->ctx, p, n) == 1);
}

void ota_checksum_final(ota_checksum_t *c, char hex[static OTA_CHECKSUM_HEX_MAX])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ASSERT(EVP_DigestFinal_ex(c->ctx, d, &n) == 1 && 2 * n < OTA_CHECKSUM_HEX_MAX);
    for (unsigned int i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    hex[2 * n] = '\0';
    ota_checksum_free(c);
}

void ota_checksum_free(ota_checksum_t *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->ctx);
    free(c);
}
