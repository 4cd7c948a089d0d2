/* auth.c — login, token refresh, the current user, and the first administrator.
 *
 * Unknown users are checked against a fixed dummy bcrypt hash so that "no such user" and
 * "wrong password" take the same time and give the same answer (no user enumeration).
 * Passwords, hashes and tokens are never logged.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bcrypt of a random string nobody knows; verifying against it costs what a real check does. */
static const char dummy_hash[] = "$2b$10$CwTycUXWue0Thq9StjUM0uJ8.XfVd5/HH0sY7oVOYHQuLPYaNYhha";

static void issue_pair(http_req_t *rq, http_resp_t *rs, const store_user_t *u)
{
    http_server_t *h = rq->srv;
    int64_t now = clock_wall_ms() / 1000;
    http_claims_t c = {.iat = now, .exp = now + h->cfg.jwt_expiration_s};
    snprintf(c.sub, sizeof c.sub, "%s", u->email);
    memcpy(c.user_id, u->uuid, sizeof c.user_id);
    char *access = http__jwt_sign(h->jwt_key, h->jwt_key_len, h->cfg.jwt_issuer, h->tenant_id, &c);
    c.refresh = true;
    c.exp = now + h->cfg.jwt_refresh_expiration_s;
    char *refresh = http__jwt_sign(h->jwt_key, h->jwt_key_len, h->cfg.jwt_issuer, h->tenant_id,
                                   &c);
    if (!access || !refresh) {
        http__resp_error(rs, HTTP_E_GENERAL, NULL);
    } else {
        http__resp_json(rs, 200, json_pack("{s:s, s:s, s:s}", "token", access, "refreshToken",
                                           refresh, "scope", "TENANT_ADMIN"));
    }
    free(access);
    free(refresh);
}

/* Keyed hash of the lower-cased name: nobody can pick names that share a victim's slot. */
static uint64_t user_hash(const char *user)
{
    size_t n = strlen(user);
    char *low = xmalloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        low[i] = (user[i] >= 'A' && user[i] <= 'Z') ? (char)(user[i] + 32) : user[i];
    uint64_t x = hash_bytes(low, n);
    free(low);
    return x | 1; /* 0 marks a free slot */
}

/* The slot of user, or the stalest one to reuse. Called with login_mu held. */
static http_login_slot_t *login_slot(http_server_t *h, uint64_t uh)
{
    http_login_slot_t *oldest = &h->login[0];
    for (size_t i = 0; i < HTTP_LOGIN_SLOTS; i++) {
        if (h->login[i].user_hash == uh)
            return &h->login[i];
        if (h->login[i].last_ms < oldest->last_ms)
            oldest = &h->login[i];
    }
    oldest->user_hash = uh;
    oldest->fails = 0;
    oldest->last_ms = 0;
    return oldest;
}

/* Throttling is keyed by the name typed, whether or not that user exists, so it tells an
 * attacker nothing about which accounts are real. */
static bool login_locked(http_server_t *h, const char *user, int64_t now)
{
    pthread_mutex_lock(&h->login_mu);
    http_login_slot_t *s = login_slot(h, user_hash(user));
    bool locked = s->fails >= HTTP_LOGIN_MAX_FAILS && now - s->last_ms < HTTP_LOGIN_LOCK_MS;
    pthread_mutex_unlock(&h->login_mu);
    return locked;
}

static void login_result(http_server_t *h, const char *user, bool ok, int64_t now)
{
    pthread_mutex_lock(&h->login_mu);
    http_login_slot_t *s = login_slot(h, user_hash(user));
    if (ok) {
        s->fails = 0;
    } else {
        if (now - s->last_ms >= HTTP_LOGIN_LOCK_MS)
            s->fails = 0;
        s->fails++;
    }
    s->last_ms = now;
    pthread_mutex_unlock(&h->login_mu);
}

void http__h_login(http_req_t *rq, http_resp_t *rs)
{
    json_t *j = http__json_parse(rq->body, rq->body_len);
    const char *user = json_string_value(json_object_get(j, "username"));
    const char *pw = json_string_value(json_object_get(j, "password"));
    if (!user || !pw) {
        http__resp_error(rs, HTTP_E_BAD_LOGIN, NULL);
        json_decref(j);
        return;
    }
    int64_t now = clock_mono_ms();
    if (login_locked(rq->srv, user, now)) {
        http__resp_error(rs, HTTP_E_TOO_MANY, "Too many failed login attempts; try again later");
        json_decref(j);
        return;
    }
    store_user_t u;
    memset(&u, 0, sizeof u);
    int rc = store_user_get_by_email(rq->srv->store, user, &u);
    if (rc < 0 && rc != -ENOENT) {
        http__resp_store_error(rs, rc); /* not a failed login: no lockout count */
    } else {
        bool ok = http__password_verify(pw, rc == 0 ? u.password_hash : dummy_hash) && rc == 0;
        login_result(rq->srv, user, ok, now);
        if (ok) {
            issue_pair(rq, rs, &u);
        } else {
            LOG_I("http", "login failed for a user");
            http__resp_error(rs, HTTP_E_BAD_LOGIN, NULL);
        }
    }
    if (rc == 0)
        store_user_fini(&u);
    json_decref(j);
}

void http__h_refresh(http_req_t *rq, http_resp_t *rs)
{
    json_t *j = http__json_parse(rq->body, rq->body_len);
    const char *tok = json_string_value(json_object_get(j, "refreshToken"));
    http_server_t *h = rq->srv;
    http_claims_t c;
    int rc = http__jwt_verify(h->jwt_key, h->jwt_key_len, tok, clock_wall_ms() / 1000, &c);
    json_decref(j);
    if (rc == -EKEYEXPIRED) {
        http__resp_error(rs, HTTP_E_JWT_EXPIRED, NULL);
        return;
    }
    if (rc < 0 || !c.refresh) {
        http__resp_error(rs, HTTP_E_AUTH, NULL);
        return;
    }
    store_user_t u;
    memset(&u, 0, sizeof u);
    rc = store_user_get_by_email(h->store, c.sub, &u);
    if (rc == -ENOENT) { /* the user was removed since the token was issued */
        http__resp_error(rs, HTTP_E_AUTH, NULL);
        return;
    }
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return;
    }
    issue_pair(rq, rs, &u);
    store_user_fini(&u);
}

void http__h_user(http_req_t *rq, http_resp_t *rs)
{
    store_user_t u;
    memset(&u, 0, sizeof u);
    int rc = store_user_get_by_email(rq->srv->store, rq->claims.sub, &u);
    if (rc == -ENOENT) {
        http__resp_error(rs, HTTP_E_AUTH, NULL);
        return;
    }
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return;
    }
    json_t *o = json_pack("{s:{s:s,s:s}, s:I, s:{s:s,s:s}, s:{s:s,s:s}, s:s, s:s, s:s, s:n}",
                          "id", "entityType", "USER", "id", u.uuid, "createdTime",
                          (json_int_t)u.created_ms, "tenantId", "entityType", "TENANT", "id",
                          rq->srv->tenant_id, "customerId", "entityType", "CUSTOMER", "id",
                          HTTP_UUID_NULL, "email", u.email,
                          "authority", u.authority ? u.authority : "TENANT_ADMIN", "name",
                          u.email, "additionalInfo");
    if (o) {
        json_object_set_new(o, "firstName", u.first_name ? json_string(u.first_name) : json_null());
        json_object_set_new(o, "lastName", u.last_name ? json_string(u.last_name) : json_null());
    }
    store_user_fini(&u);
    if (o)
        http__resp_json(rs, 200, o);
    else
        http__resp_error(rs, HTTP_E_GENERAL, NULL);
}

void http__h_logout(http_req_t *rq, http_resp_t *rs)
{
    (void)rq;
    /* JWTs are stateless; the client drops them. TB answers 200 with no body too. */
    http__resp_json(rs, 200, NULL);
}

int http_bootstrap_admin(store_t *store, const char *email, const char *password,
                         char err[static ERR_LEN])
{
    err[0] = '\0';
    int64_t n = 0;
    int rc = store_user_count(store, &n);
    if (rc < 0) {
        snprintf(err, ERR_LEN, "http: counting users: %s", err_str(rc));
        return rc;
    }
    if (n > 0)
        return 0;
    if (!email || !email[0]) {
        snprintf(err, ERR_LEN, "http: no administrator email configured");
        return -EINVAL;
    }
    char generated[17];
    bool gen = !password || !password[0];
    if (gen) {
        device_random_alnum(generated, 16);
        password = generated;
    }
    store_user_t u = {.email = (char *)email, .authority = (char *)"TENANT_ADMIN"};
    u.password_hash = http__password_hash(password);
    if (!u.password_hash) {
        snprintf(err, ERR_LEN, "http: bcrypt is not available in libxcrypt");
        rc = -ENOSYS;
        goto out;
    }
    rc = store_user_create(store, &u);
    if (rc < 0) {
        snprintf(err, ERR_LEN, "http: creating administrator: %s", err_str(rc));
        goto out;
    }
    if (gen) {
        /* Printed once on stdout for the operator; deliberately not through the logger. */
        printf("coaphub: created tenant administrator %s with password %s\n", email, generated);
        fflush(stdout);
    }
    LOG_I("http", "created the tenant administrator account");
out:
    OPENSSL_cleanse(generated, sizeof generated);
    free(u.password_hash);
    return rc;
}
