/* token.h — access tokens as credentials: the rules a token must obey and random tokens.
 *
 * One place for both, because three paths make tokens: REST device creation and credential
 * saves (src/http) and provisioning (device/provision.c). Any thread.
 */
#ifndef COAPHUB_DEVICE_TOKEN_H
#define COAPHUB_DEVICE_TOKEN_H

#include <stddef.h>

/* Access-token length cap (ThingsBoard's UI: 1..32 characters). */
#define DEVICE_TOKEN_MAX 32
/* Length of a generated token (ThingsBoard: StringUtils.randomAlphanumeric(20)). */
#define DEVICE_TOKEN_RANDOM_LEN 20

/* Whether tok[0..n) may be an access token: 1..DEVICE_TOKEN_MAX bytes, no control character.
 * Returns 0, or -EINVAL with ThingsBoard's message in msg (if cap > 0). */
int device_token_check(const char *tok, size_t n, char *msg, size_t cap);

/* n random characters of [A-Za-z0-9] plus a NUL into out (n + 1 bytes), from OpenSSL's RAND,
 * every character equally likely. */
void device_random_alnum(char *out, size_t n);

#endif
