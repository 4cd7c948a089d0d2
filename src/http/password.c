/* password.c — bcrypt password hashes (libxcrypt).
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
