/* body.c — REST request bodies: telemetry and attributes (through values), credentials,
 * devices, RPC requests.
 *
 * Pure functions (no store, no server) so tests/fuzz/rest_json.c reaches every line. Any
 * body is hostile: size is capped by the server before we get here, the readers (values'
 * strict mode, jansson for the rest) reject duplicate keys and bound nesting depth, and
 * every field is type-checked before use.
 * Messages written into msg are ThingsBoard's wording where TB has one.
 */
#include "http/http_int.h"

#include "core/err.h"
#include "core/xmalloc.h"
#include "device/registry.h"
#include "device/x509.h"
#include "values/body.h"
#include "values/json.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t cap, const char *fmt, ...)
{
    if (msg && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

json_t *http__json_parse(const char *body, size_t len)
{
    if (!body)
        return NULL;
    /* Trailing garbage fails; \u0000 is refused (we keep C strings); integers stay integers. */
    return json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
}

bool http__is_uuid(const char *s)
{
    if (!s || strlen(s) != STORE_UUID_LEN)
        return false;
    for (size_t i = 0; i < STORE_UUID_LEN; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-'
                 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* Telemetry and attribute bodies are read by values in strict mode (values/body.h): RFC 8259
 * as jansson enforced it, ThingsBoard's REST typing and refusals. Here only REST's wording of
 * the answer and the copy out of the parse arena into the caller's list. */
static int rest_values(bool attributes, const char *body, size_t len, int64_t now_ms,
                       store_kv_list_t *out, char *msg, size_t cap)
{
    static const values_cfg_t strict = {.strict = true};
    arena_t a;
    arena_init(&a, 0);
    values_kvs_t kvs = {0};
    char why[ERR_LEN];
    int rc = attributes
                 ? values_attributes(&a, &strict, (const uint8_t *)body, len, &kvs, why, sizeof why)
                 : values_telemetry(&a, &strict, (const uint8_t *)body, len, &kvs, why, sizeof why);
    if (rc == -EINVAL)
        rc = fail(msg, cap, "%s", why); /* ThingsBoard's own message for the broken rule */
    else if (rc < 0)
        rc = fail(msg, cap, "Invalid JSON");
    else if (kvs.n == 0)
        rc = fail(msg, cap,
                  attributes ? "No attributes data found in request body!"
                             : "No telemetry data found in request body!");
    for (size_t i = 0; rc == 0 && i < kvs.n; i++) {
        store_kv_t kv = kvs.items[i];
        if (kv.ts == VALUES_TS_NONE)
            kv.ts = now_ms;
        store_kv_list_push(out, &kv);
    }
    arena_fini(&a);
    return rc;
}

int http__telemetry_parse(const char *body, size_t len, int64_t now_ms, store_kv_list_t *out,
                          char *msg, size_t cap)
{
    return rest_values(false, body, len, now_ms, out, msg, cap);
}

int http__attributes_parse(const char *body, size_t len, int64_t now_ms, store_kv_list_t *out,
                           char *msg, size_t cap)
{
    return rest_values(true, body, len, now_ms, out, msg, cap);
}

/* {"id":"..."} or {"entityType":..,"id":".."} -> the id string, else NULL. */
static const char *id_of(const json_t *o, const char *field)
{
    json_t *f = json_object_get(o, field);
    if (json_is_string(f))
        return json_string_value(f);
    return json_string_value(json_object_get(f, "id"));
}

/* A PSK identity is what the device sends in its ClientKeyExchange (RFC 4279 §5.1: UTF-8,
 * at most 128 bytes recommended); the key is hex of 1..REGISTRY_PSK_MAX bytes, kept in lower
 * case. The key is never echoed in an error message. */
static int psk_set(http_cred_req_t *out, const char *id, size_t id_len, const char *key,
                   size_t key_len, char *msg, size_t cap)
{
    if (!id || id_len == 0)
        return fail(msg, cap, "PSK identity should be specified!");
    if (id_len > 128 || strlen(id) != id_len)
        return fail(msg, cap, "PSK identity must be 1 to 128 characters without NUL");
    uint8_t k[REGISTRY_PSK_MAX];
    if (!key || strlen(key) != key_len || registry_psk_from_hex(key, k) < 0)
        return fail(msg, cap, "PSK key must be 2 to %d hexadecimal digits (1 to %d bytes)",
                    2 * REGISTRY_PSK_MAX, REGISTRY_PSK_MAX);
    OPENSSL_cleanse(k, sizeof k);
    out->type = CRED_PSK;
    out->cred_id = xstrndup(id, id_len);
    out->cred_value = xstrndup(key, key_len);
    for (char *c = out->cred_value; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return 0;
}

/* ThingsBoard's LwM2M credentials: credentialsValue is a JSON object (or its text) with
 * client.securityConfigClientMode "PSK", client.identity and client.key (hex). Only the PSK
 * client mode is a DTLS credential here; NO_SEC, RPK and X509 modes are refused. */
static int psk_from_lwm2m(const json_t *o, http_cred_req_t *out, char *msg, size_t cap)
{
    json_t *val = json_object_get(o, "credentialsValue");
    json_t *parsed = NULL;
    if (json_is_string(val))
        val = parsed = json_loadb(json_string_value(val), json_string_length(val), 0, NULL);
    json_t *client = json_object_get(val, "client");
    const char *mode = json_string_value(json_object_get(client, "securityConfigClientMode"));
    int rc;
    if (!json_is_object(client) || !mode)
        rc = fail(msg, cap, "LwM2M credentials must have client.securityConfigClientMode");
    else if (strcmp(mode, "PSK") != 0)
        rc = fail(msg, cap, "Unsupported LwM2M security mode: %.32s (only PSK)", mode);
    else {
        json_t *id = json_object_get(client, "identity"), *key = json_object_get(client, "key");
        rc = psk_set(out, json_string_value(id), json_is_string(id) ? json_string_length(id) : 0,
                     json_string_value(key), json_is_string(key) ? json_string_length(key) : 0, msg,
                     cap);
    }
    json_decref(parsed);
    return rc;
}

/* A token or a PSK key is a secret: wiped before its memory goes back to the allocator (the
 * registry wipes its copies too). The parsed request JSON is jansson's and freed as is. */
static void wipe_free(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void http__cred_req_fini(http_cred_req_t *c)
{
    free(c->id);
    free(c->device_uuid);
    wipe_free(c->cred_id);
    wipe_free(c->cred_value);
    memset(c, 0, sizeof *c);
}

int http__cred_from_json(const json_t *o, http_cred_req_t *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(o))
        return fail(msg, cap, "Invalid JSON");
    out->id = xstrdup(id_of(o, "id"));
    out->device_uuid = xstrdup(id_of(o, "deviceId"));
    const char *type = json_string_value(json_object_get(o, "credentialsType"));
    int rc;
    if (!type) {
        rc = fail(msg, cap, "Device credentials type should be specified!");
        goto err;
    }
    if (strcmp(type, "LWM2M_CREDENTIALS") == 0) {
        if ((rc = psk_from_lwm2m(o, out, msg, cap)) < 0)
            goto err;
        return 0;
    }
    if (store_cred_type_parse(type, &out->type) < 0) {
        rc = fail(msg, cap, "Unsupported device credentials type: %.32s", type);
        goto err;
    }
    if (out->type == CRED_ACCESS_TOKEN) {
        json_t *cid = json_object_get(o, "credentialsId");
        const char *tok = json_string_value(cid);
        size_t n = tok ? json_string_length(cid) : 0;
        if ((rc = device_token_check(tok, n, msg, cap)) < 0)
            goto err;
        out->cred_id = xstrndup(tok, n);
        return 0;
    }
    json_t *val = json_object_get(o, "credentialsValue");
    if (!json_is_string(val) || json_string_length(val) == 0) {
        rc = fail(msg, cap, "Device credentials value should be specified!");
        goto err;
    }
    if (out->type == CRED_PSK) {
        json_t *cid = json_object_get(o, "credentialsId");
        if ((rc = psk_set(out, json_string_value(cid),
                          json_is_string(cid) ? json_string_length(cid) : 0, json_string_value(val),
                          json_string_length(val), msg, cap)) < 0)
            goto err;
        return 0;
    }
    char hash[65], why[200];
    rc = x509_cred_from_pem(json_string_value(val), json_string_length(val), &out->cred_value,
                            hash, why, sizeof why);
    if (rc < 0) {
        rc = fail(msg, cap, "Invalid X.509 certificate: %s", why);
        goto err;
    }
    out->cred_id = xstrdup(hash);
    return 0;
err:
    http__cred_req_fini(out);
    return rc;
}

void http__device_req_fini(http_device_req_t *d)
{
    free(d->uuid);
    free(d->name);
    free(d->type);
    free(d->label);
    free(d->additional_info);
    free(d->profile_uuid);
    free(d->firmware_uuid);
    free(d->software_uuid);
    free(d->device_data);
    memset(d, 0, sizeof *d);
}

static bool opt_string(const json_t *o, const char *k, char **out)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return false; /* embedded NUL: refuse rather than silently truncate */
    *out = xstrdup(json_string_value(v));
    return true;
}

int http__device_from_json(const json_t *o, http_device_req_t *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(o))
        return fail(msg, cap, "Invalid JSON");
    int rc = -EINVAL;
    const char *uuid = id_of(o, "id");
    if (json_object_get(o, "id") && !json_is_null(json_object_get(o, "id"))) {
        if (!http__is_uuid(uuid)) {
            rc = fail(msg, cap, "Invalid UUID string: %.40s", uuid ? uuid : "");
            goto err;
        }
        out->uuid = xstrdup(uuid);
    }
    if (!opt_string(o, "name", &out->name) || !opt_string(o, "type", &out->type) ||
        !opt_string(o, "label", &out->label)) {
        rc = fail(msg, cap, "Invalid device field type");
        goto err;
    }
    if (!out->name || out->name[0] == '\0') {
        rc = fail(msg, cap, "Device name should be specified!");
        goto err;
    }
    if (strlen(out->name) > 255 || (out->type && strlen(out->type) > 255) ||
        (out->label && strlen(out->label) > 255)) {
        rc = fail(msg, cap, "Device name, type and label must be at most 255 characters!");
        goto err;
    }
    if (out->type && out->type[0] == '\0') {
        free(out->type); /* no type: the default profile, as ThingsBoard */
        out->type = NULL;
    }
    static const char *const refs[] = {"deviceProfileId", "firmwareId", "softwareId"};
    char **slots[] = {&out->profile_uuid, &out->firmware_uuid, &out->software_uuid};
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_object_get(o, refs[i]);
        if (!r || json_is_null(r))
            continue;
        const char *id = json_is_object(r) ? json_string_value(json_object_get(r, "id")) : NULL;
        if (!http__is_uuid(id)) {
            rc = fail(msg, cap, "%s: Invalid UUID string: %.40s", refs[i], id ? id : "");
            goto err;
        }
        *slots[i] = xstrdup(id);
        for (char *c = *slots[i]; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c + 32);
    }
    if ((rc = http__device_data_from_json(json_object_get(o, "deviceData"), &out->device_data, msg,
                                          cap)) < 0)
        goto err;
    json_t *ai = json_object_get(o, "additionalInfo");
    if (ai && !json_is_null(ai))
        out->additional_info = http__dumps(ai);
    return 0;
err:
    http__device_req_fini(out);
    return rc;
}

void http__rpc_req_fini(http_rpc_req_t *r)
{
    free(r->method);
    free(r->params);
    memset(r, 0, sizeof *r);
}

/* The body's params as the client wrote them, which ThingsBoard forwards to the device
 * unchanged: jansson's tree holds numbers as doubles, and printing them again turned
 * 0.30000000000000004 into 0.3. Falls back to that tree (p) for a body only jansson accepts. */
static char *params_as_written(const char *body, size_t len, const json_t *p)
{
    arena_t a;
    arena_init(&a, 0);
    char err[ERR_LEN];
    const values_json_t *root = values_json_parse(&a, (const uint8_t *)body, len, VALUES_STRICT, 0,
                                                  err, sizeof err);
    const values_json_t *v = root ? values_json_get(root, "params") : NULL;
    char *s = v ? values_json_compact(v) : p ? http__dumps(p) : xstrdup("null");
    arena_fini(&a);
    return s;
}

int http__rpc_parse(const char *body, size_t len, int64_t def_timeout_ms, int64_t min_timeout_ms,
                    int64_t now_ms, http_rpc_req_t *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    json_t *j = http__json_parse(body, len);
    int rc = 0;
    if (!json_is_object(j)) {
        rc = fail(msg, cap, "Invalid JSON");
        goto out;
    }
    json_t *m = json_object_get(j, "method");
    if (!json_is_string(m) || json_string_length(m) == 0 ||
        strlen(json_string_value(m)) != json_string_length(m)) {
        rc = fail(msg, cap, "Method should be specified!");
        goto out;
    }
    json_t *t = json_object_get(j, "timeout");
    int64_t timeout = def_timeout_ms;
    if (t && !json_is_null(t)) {
        if (!json_is_number(t)) {
            rc = fail(msg, cap, "Invalid timeout");
            goto out;
        }
        double td = json_number_value(t);
        timeout = td > 86400000.0 ? 86400000 : td < 0 ? 0 : (int64_t)td;
    }
    if (timeout < min_timeout_ms)
        timeout = min_timeout_ms;
    int64_t expiration = now_ms + timeout;
    json_t *e = json_object_get(j, "expirationTime");
    if (json_is_integer(e) && json_integer_value(e) > now_ms) {
        expiration = json_integer_value(e);
        if (expiration - now_ms < timeout)
            timeout = expiration - now_ms;
    }
    json_t *p = json_object_get(j, "params");
    out->method = xstrdup(json_string_value(m));
    out->params = params_as_written(body, len, p);
    out->timeout_ms = timeout;
    out->expiration_ms = expiration;
    out->persistent = json_is_true(json_object_get(j, "persistent"));
out:
    json_decref(j);
    if (rc < 0)
        http__rpc_req_fini(out);
    return rc;
}
