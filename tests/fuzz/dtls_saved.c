/* dtls_saved.c — libFuzzer target for the saved-sessions loader (src/dtls/saved.c).
 *
 * Input: [mode:1][bytes]. Mode bit 0 clear: bytes are a whole file, given to the loader as
 * read from disk (magic, version, age and tag checks; almost all fail at the tag, as a file
 * crafted without the key does). Bit 0 set: bytes are a decrypted body, sealed here under the
 * loader's key with a fresh header so that the fuzzer reaches the session parser and the
 * restore table behind the tag, as a file written by a buggy or older coaphub would. Either
 * way the table is then drained and freed (no leak, no crash, no out-of-bounds read).
 */
#include "dtls/dtls_int.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t KEY[32] = {0x42};
enum { HDR = 44, TAG = 16 };

/* A file around body: the header of saved.c's format (now, max age 600), AES-256-GCM. */
static uint8_t *seal(const uint8_t *body, size_t len, int64_t now, size_t *out_len)
{
    uint8_t *f = malloc(HDR + len + TAG);
    static const uint8_t magic[8] = {'C', 'H', 'D', 'T', 'L', 'S', 'S', 0};
    memcpy(f, magic, 8);
    memset(f + 8, 0, HDR - 8);
    f[11] = DTLS_SAVED_VERSION;
    for (int i = 0; i < 8; i++) {
        f[16 + i] = (uint8_t)((uint64_t)now >> (56 - 8 * i)); /* created */
        f[24 + i] = (uint8_t)(UINT64_C(600) >> (56 - 8 * i)); /* max age */
    }
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, KEY, f + HDR - 12);
    EVP_EncryptUpdate(c, NULL, &n, f, HDR);
    if (len)
        EVP_EncryptUpdate(c, f + HDR, &n, body, (int)len);
    EVP_EncryptFinal_ex(c, f + HDR + len, &n);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG, f + HDR + len);
    EVP_CIPHER_CTX_free(c);
    *out_len = HDR + len + TAG;
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    int64_t now = 1700000000;
    dtls_restore_t *t = dtls__restore_new();
    if (data[0] & 1) {
        size_t len = 0;
        uint8_t *f = seal(data + 1, size - 1, now, &len);
        int rc = dtls__restore_load_buf(t, f, len, KEY, now, NULL, 0);
        (void)rc;
        free(f);
    } else {
        (void)dtls__restore_load_buf(t, data + 1, size - 1, KEY, now, NULL, 0);
    }
    dtls_saved_sess_t *s;
    while ((s = dtls__restore_take_any(t)) != NULL)
        dtls__saved_sess_free(s);
    dtls__restore_free(t);
    return 0;
}
