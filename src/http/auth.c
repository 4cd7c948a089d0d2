/* auth.c — login, token refresh, the current user, and the first administrator.
 *
 * Unknown users are checked against a fixed dummy bcrypt hash so that "no such user" and
 * "wrong password" take the same time and give the same answer (no user enumeration).
 * Failed logins are throttled per address and per user by login_guard.c; logout revokes the
 * session (revoked.c).
 * Passwords, hashes and tokens are never logged.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bcrypt of a random string nobody knows; verifying against it costs what a real check does. */
static const char dummy_hash[] = "$2b$10$CwTycUXWue0Thq9StjUM0uJ8.XfVd5/HH0sY7oVOYHQuLPYaNYhha";

/* A new access + refresh pair; session_id NULL or "" starts a new session (a login), else the
 * refreshed pair continues that one, so a logout ends it whichever pair the client holds. */
static void issue_pair(http_req_t *rq, http_resp_t *rs, const store_user_t *u,
                       const char *session_id)
{
    http_server_t *h = rq->srv;
    int64_t now = clock_wall_ms() / 1000;
    http_claims_t c = {.iat = now, .exp = now + h->cfg.jwt_expiration_s};
    snprintf(c.sub, sizeof c.sub, "%s", u->email);
    memcpy(c.user_id, u->uuid, sizeof c.user_id);
    if (session_id && session_id[0])
        snprintf(c.session_id, sizeof c.session_id, "%s", session_id);
    else
        store_uuid_v4(c.session_id);
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

/* The client's address as the throttle keys it (login_guard.c); all zeroes without a
 * connection (handlers called directly by unit tests). */
static void client_addr(const http_req_t *rq, uint8_t out[static 16])
{
    const union MHD_ConnectionInfo *ci =
        rq->conn ? MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    http__login_addr_key(ci ? ci->client_addr : NULL, out);
}

/* Throttling is keyed by the name typed, whether or not that user exists, so it tells an
 * attacker nothing about which accounts are real; refusals come before the bcrypt check, so a
 * flood of wrong passwords costs no hashing, and the gate bounds the checks running at once. */
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
    http_login_guard_t *g = rq->srv->login_guard;
    uint8_t addr[16];
    client_addr(rq, addr);
    int prio = HTTP_LOGIN_PRIO_CLEAN;
    if (http__login_check(g, user, addr, clock_mono_ms(), &prio) != HTTP_LOGIN_ALLOW) {
        http__resp_error(rs, HTTP_E_TOO_MANY, "Too many failed login attempts; try again later");
        json_decref(j);
        return;
    }
    if (!http__login_gate_enter(g, prio)) {
        http__resp_error(rs, HTTP_E_TOO_MANY, "Too many login attempts at once; try again later");
        json_decref(j);
        return;
    }
    store_user_t u;
    memset(&u, 0, sizeof u);
    int rc = store_user_get_by_email(rq->srv->store, user, &u);
    bool ok = false;
    if (rc == 0 || rc == -ENOENT)
        ok = http__password_verify(pw, rc == 0 ? u.password_hash : dummy_hash) && rc == 0;
    http__login_gate_leave(g);
    if (rc < 0 && rc != -ENOENT) {
        http__resp_store_error(rs, rc); /* not a failed login: no lockout count */
    } else {
        http__login_result(g, user, addr, ok, clock_mono_ms());
        if (ok) {
            issue_pair(rq, rs, &u, NULL);
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
    int64_t now_s = clock_wall_ms() / 1000;
    int rc = http__jwt_verify(h->jwt_key, h->jwt_key_len, tok, now_s, &c);
    json_decref(j);
    if (rc == -EKEYEXPIRED) {
        http__resp_error(rs, HTTP_E_JWT_EXPIRED, NULL);
        return;
    }
    /* A refresh token of a logged-out session is refused like a forged one. */
    if (rc < 0 || !c.refresh ||
        http__revoked_check(http__jwt_cache_revoked(h->jwt_cache), &c, now_s)) {
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
    issue_pair(rq, rs, &u, c.session_id);
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

/* Ends the session of the access token used: it and every refresh token of the session are
 * refused from now on (jwt_cache.c checks every request). A token without a sessionId (issued
 * before sessions existed), or a full session set, revokes all of the user's tokens issued so
 * far instead (nbf = the next second). TB answers 200 with no body too. */
void http__h_logout(http_req_t *rq, http_resp_t *rs)
{
    http_server_t *h = rq->srv;
    http_revoked_t *r = http__jwt_cache_revoked(h->jwt_cache);
    int64_t now_s = clock_wall_ms() / 1000;
    int64_t life = h->cfg.jwt_refresh_expiration_s > h->cfg.jwt_expiration_s
                       ? h->cfg.jwt_refresh_expiration_s
                       : h->cfg.jwt_expiration_s;
    int64_t until = now_s + life + 1;
    int rc = -ENOENT;
    if (rq->claims.session_id[0])
        rc = http__revoked_add_session(r, rq->claims.session_id, until, now_s);
    if (rc < 0 && rq->claims.user_id[0])
        rc = http__revoked_add_user(r, rq->claims.user_id, now_s + 1, until, now_s);
    if (rc < 0) {
        LOG_W("http", "logout: the revoked-token set is full; the token stays valid");
        http__resp_error(rs, HTTP_E_UNAVAILABLE, NULL);
        return;
    }
    http__resp_json(rs, 200, NULL);
}

void http_server_auth_stats(http_server_t *h, http_auth_stats_t *out)
{
    memset(out, 0, sizeof *out);
    http__login_stats(h->login_guard, &out->login);
    http__revoked_stats(http__jwt_cache_revoked(h->jwt_cache), &out->tokens_revoked,
                        &out->revoked_entries, &out->revoke_fallbacks);
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
