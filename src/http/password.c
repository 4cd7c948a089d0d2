/* password.c — bcrypt password hashes (libxcrypt) and random strings.
 *
 * Hashes are "$2b$10$..." so they interoperate with ThingsBoard's BCrypt users. Results are
 * compared with CRYPTO_memcmp; crypt_r output for a wrong password differs from the stored
 * hash in a way that must not be timed.
 */
#include "http/http_int.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define BCRYPT_COST 10 /* ~50-100 ms per check: slows guessing, keeps login snappy */

char *http__password_hash(const char *password)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$2b$", BCRYPT_COST, NULL, 0, salt, sizeof salt))
        return NULL;
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    const char *h = crypt_r(password, salt, cd);
    char *out = (h && h[0] == '$') ? xstrdup(h) : NULL;
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return out;
}

bool http__password_verify(const char *password, const char *hash)
{
    if (!password || !hash || strncmp(hash, "$2", 2) != 0)
        return false;
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    const char *h = crypt_r(password, hash, cd);
    size_t n = strlen(hash);
    bool ok = h && h[0] == '$' && strlen(h) == n && CRYPTO_memcmp(h, hash, n) == 0;
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return ok;
}

void http__random_alnum(char *out, size_t n)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t i = 0;
    while (i < n) {
        unsigned char buf[64];
        ASSERT(RAND_bytes(buf, sizeof buf) == 1);
        for (size_t k = 0; k < sizeof buf && i < n; k++) {
            /* 62 * 4 = 248: rejecting bytes >= 248 keeps every character equally likely. */
            if (buf[k] < 248)
                out[i++] = set[buf[k] % 62];
        }
    }
    out[n] = '\0';
}
