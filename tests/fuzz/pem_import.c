/* pem_import.c — libFuzzer target: x509_cred_from_pem and x509_chain_from_pem on arbitrary
 * bytes.
 *
 * On success the canonical Base64 must be a fixed point (importing it again gives the same
 * value and hash), single-line, and parse for display. */
#include "device/x509.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A device profile's CA chain (x509_chain_from_pem): its canonical PEM is a fixed point with
 * the same count and hash, and a single certificate hashes as x509_cred_from_pem does. */
static void chain(const uint8_t *data, size_t size)
{
    char *pem = NULL, hash[65], err[256];
    int n = 0;
    if (x509_chain_from_pem((const char *)data, size, &pem, &n, hash, err, sizeof err) < 0) {
        if (pem || n != 0 || strlen(err) == 0)
            abort();
        return;
    }
    char *again = NULL, hash2[65];
    int n2 = 0;
    if (n < 1 || n > X509_CHAIN_MAX || strlen(hash) != 64 ||
        x509_chain_from_pem(pem, strlen(pem), &again, &n2, hash2, err, sizeof err) != 0 ||
        strcmp(again, pem) != 0 || n2 != n || strcmp(hash2, hash) != 0)
        abort();
    free(again);
    free(pem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    chain(data, size);
    char *b64 = NULL, hash[65], err[256];
    if (x509_cred_from_pem((const char *)data, size, &b64, hash, err, sizeof err) < 0) {
        if (b64 || strlen(err) == 0)
            abort();
        return 0;
    }
    if (strlen(hash) != 64 || strpbrk(b64, "\r\n \t"))
        abort();
    char *again = NULL, hash2[65];
    if (x509_cred_from_pem(b64, strlen(b64), &again, hash2, err, sizeof err) != 0 ||
        strcmp(again, b64) != 0 || strcmp(hash, hash2) != 0)
        abort();
    x509_info_t info;
    if (x509_info_from_b64(b64, &info) != 0)
        abort();
    free(again);
    free(b64);
    return 0;
}
