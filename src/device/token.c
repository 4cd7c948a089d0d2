/* token.c — access-token rules and random tokens. See token.h. */
#include "device/token.h"

#include "core/err.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>

int device_token_check(const char *tok, size_t n, char *msg, size_t cap)
{
    const char *why = NULL;
    if (!tok || n == 0)
        why = "Device credentials id should be specified!";
    for (size_t i = 0; !why && i < n; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (c < 0x20 || c == 0x7f)
            why = "credentialsId must not contain control characters!";
    }
    if (why) {
        if (msg && cap)
            snprintf(msg, cap, "%s", why);
        return -EINVAL;
    }
    if (n > DEVICE_TOKEN_MAX) {
        if (msg && cap)
            snprintf(msg, cap, "Access token length must be at most %d characters!",
                     DEVICE_TOKEN_MAX);
        return -EINVAL;
    }
    return 0;
}

void device_random_alnum(char *out, size_t n)
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
