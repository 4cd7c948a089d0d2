/* body.c — REST request bodies: JSON -> typed values, credentials, devices, RPC requests.
 *
 * Pure functions (no store, no server) so tests/fuzz/rest_json.c reaches every line. Any
 * body is hostile: size is capped by the server before we get here, jansson rejects
 * duplicate keys and bounds nesting depth, and every field is type-checked before use.
 * Messages written into msg are ThingsBoard's wording where TB has one.
 */
#include "http/http_int.h"

#include "core/xmalloc.h"
#include "device/x509.h"

#include <errno.h>
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

int http__kv_from_json(const char *key, const json_t *v, int64_t ts, store_kv_t *out)
{
    memset(out, 0, sizeof *out);
    out->ts = ts;
    switch (json_typeof(v)) {
    case JSON_NULL:
        return 1;
    case JSON_TRUE:
    case JSON_FALSE:
        out->type = STORE_BOOL;
        out->b = json_is_true(v);
        break;
    case JSON_INTEGER:
        out->type = STORE_LONG;
        out->l = json_integer_value(v);
        break;
    case JSON_REAL:
        out->type = STORE_DOUBLE;
        out->d = json_real_value(v);
        break;
    case JSON_STRING:
        out->type = STORE_STRING;
        out->s = xstrndup(json_string_value(v), json_string_length(v));
        break;
    case JSON_OBJECT:
    case JSON_ARRAY:
        out->type = STORE_JSON;
        out->s = http__dumps(v);
        break;
    default:
        return -EINVAL;
    }
    out->key = xstrdup(key);
    return 0;
}

/* Shortest decimal that reads back as d (Java's Double.toString style, no exponent games). */
static void fmt_double(double d, char *buf, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".eEin")) /* integral doubles keep a ".0" like TB prints them */
        strncat(buf, ".0", cap - strlen(buf) - 1);
}

json_t *http__kv_to_json(const store_kv_t *kv, bool typed)
{
    char num[64];
    switch (kv->type) {
    case STORE_BOOL:
        return typed ? json_boolean(kv->b) : json_string(kv->b ? "true" : "false");
    case STORE_LONG:
        if (typed)
            return json_integer((json_int_t)kv->l);
        snprintf(num, sizeof num, "%lld", (long long)kv->l);
        return json_string(num);
    case STORE_DOUBLE:
        if (typed)
            return json_real(kv->d);
        fmt_double(kv->d, num, sizeof num);
        return json_string(num);
    case STORE_JSON:
        if (typed) {
            json_t *j = kv->s ? json_loads(kv->s, 0, NULL) : NULL;
            if (j)
                return j;
        }
        return json_string(kv->s ? kv->s : "");
    case STORE_STRING:
    default: {
        json_t *s = json_string(kv->s ? kv->s : "");
        return s ? s : json_string(""); /* stored bytes that are not UTF-8 */
    }
    }
}

/* Adds every member of obj as a point at ts. */
static int add_values(const json_t *obj, int64_t ts, store_kv_list_t *out, char *msg,
                      size_t cap)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (k[0] == '\0')
            return fail(msg, cap, "Key cannot be blank");
        store_kv_t kv;
        int rc = http__kv_from_json(k, v, ts, &kv);
        if (rc == 1)
            continue;
        if (rc < 0)
            return fail(msg, cap, "Invalid JSON");
        store_kv_list_push(out, &kv);
        free(kv.key);
        free(kv.s);
    }
    return 0;
}

static int telemetry_entry(const json_t *e, int64_t now_ms, store_kv_list_t *out, char *msg,
                           size_t cap)
{
    if (!json_is_object(e))
        return fail(msg, cap, "Invalid JSON");
    json_t *ts = json_object_get(e, "ts");
    json_t *values = json_object_get(e, "values");
    if (ts && values && json_object_size(e) == 2) {
        if (!json_is_integer(ts) || !json_is_object(values) || json_integer_value(ts) < 0)
            return fail(msg, cap, "Invalid JSON");
        return add_values(values, json_integer_value(ts), out, msg, cap);
    }
    return add_values(e, now_ms, out, msg, cap);
}

int http__telemetry_parse(const char *body, size_t len, int64_t now_ms, store_kv_list_t *out,
                          char *msg, size_t cap)
{
    json_t *j = http__json_parse(body, len);
    int rc = 0;
    if (!j) {
        rc = fail(msg, cap, "Invalid JSON");
    } else if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) {
            if ((rc = telemetry_entry(e, now_ms, out, msg, cap)) < 0)
                break;
        }
    } else {
        rc = telemetry_entry(j, now_ms, out, msg, cap);
    }
    json_decref(j);
    if (rc == 0 && out->n == 0)
        rc = fail(msg, cap, "No telemetry data found in request body!");
    if (rc < 0)
        store_kv_list_fini(out);
    return rc;
}

int http__attributes_parse(const char *body, size_t len, int64_t now_ms, store_kv_list_t *out,
                           char *msg, size_t cap)
{
    json_t *j = http__json_parse(body, len);
    int rc = 0;
    if (!json_is_object(j)) {
        rc = fail(msg, cap, "Invalid JSON");
        goto out;
    }
    if (json_object_size(j) == 0) {
        rc = fail(msg, cap, "No attributes data found in request body!");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        if (json_is_null(v)) {
            rc = fail(msg, cap, "Attribute value for key '%.64s' must not be null", k);
            goto out;
        }
    }
    rc = add_values(j, now_ms, out, msg, cap);
out:
    json_decref(j);
    if (rc < 0)
        store_kv_list_fini(out);
    return rc;
}

/* {"id":"..."} or {"entityType":..,"id":".."} -> the id string, else NULL. */
static const char *id_of(const json_t *o, const char *field)
{
    json_t *f = json_object_get(o, field);
    if (json_is_string(f))
        return json_string_value(f);
    return json_string_value(json_object_get(f, "id"));
}

void http__cred_req_fini(http_cred_req_t *c)
{
    free(c->id);
    free(c->device_uuid);
    free(c->cred_id);
    free(c->cred_value);
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
    if (store_cred_type_parse(type, &out->type) < 0) {
        rc = fail(msg, cap, "Unsupported device credentials type: %.32s", type);
        goto err;
    }
    if (out->type == CRED_ACCESS_TOKEN) {
        json_t *cid = json_object_get(o, "credentialsId");
        const char *tok = json_string_value(cid);
        size_t n = tok ? json_string_length(cid) : 0;
        if (n == 0) {
            rc = fail(msg, cap, "Device credentials id should be specified!");
            goto err;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)tok[i];
            if (c < 0x20 || c == 0x7f) {
                rc = fail(msg, cap, "credentialsId must not contain control characters!");
                goto err;
            }
        }
        if (n > HTTP_TOKEN_MAX) {
            rc = fail(msg, cap, "Access token length must be at most %d characters!",
                      HTTP_TOKEN_MAX);
            goto err;
        }
        out->cred_id = xstrndup(tok, n);
        return 0;
    }
    json_t *val = json_object_get(o, "credentialsValue");
    if (!json_is_string(val) || json_string_length(val) == 0) {
        rc = fail(msg, cap, "Device credentials value should be specified!");
        goto err;
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
    if (!out->type || out->type[0] == '\0') {
        free(out->type);
        out->type = xstrdup("default");
    }
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
    out->params = p ? http__dumps(p) : xstrdup("null");
    out->timeout_ms = timeout;
    out->expiration_ms = expiration;
    out->persistent = json_is_true(json_object_get(j, "persistent"));
out:
    json_decref(j);
    if (rc < 0)
        http__rpc_req_fini(out);
    return rc;
}
