/* provision.c — provisioning with a profile's key and secret (spec §3.9). See provision.h.
 *
 * ThingsBoard's DeviceProvisionServiceImpl, rule for rule, with two deliberate differences
 * (docs/COMPATIBILITY.md): a pre-provisioned device whose provisionState is already
 * "provisioned" is refused (ThingsBoard hands its credentials out again to anyone holding the
 * key and secret), and MQTT_BASIC credentials are refused (coaphub speaks no MQTT, so such a
 * device could never connect). The secret is compared in constant time.
 *
 * Order of writes: device and credentials in one transaction, then the provisionState
 * attribute, then the registry. The registry only ever learns what the store accepted.
 */
#include "device/provision_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "device/token.h"
#include "device/x509.h"
#include "values/buf.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROVISION_STATE_KEY "provisionState"
#define PROVISIONED "provisioned"
/* A device name longer than this is refused (ThingsBoard's column is varchar(255)). */
#define PROVISION_NAME_MAX 255

/* ---- request parsing ---- */

static int bad(char *err, size_t cap, const char *why)
{
    if (err && cap)
        snprintf(err, cap, "%s", why);
    return -EBADMSG;
}

/* JsonElement.getAsString: a primitive's text (numbers as written); NULL for objects, arrays,
 * null and strings holding NUL (no C string can carry them). */
static const char *primitive_text(const values_json_t *v)
{
    switch (v->kind) {
    case VALUES_JSON_BOOL:
        return v->b ? "true" : "false";
    case VALUES_JSON_NUMBER:
        return v->text;
    case VALUES_JSON_STRING:
        return memchr(v->text, '\0', v->len) ? NULL : v->text;
    default:
        return NULL;
    }
}

/* Field `name` of obj into *out: "" when absent; -1 when present but not a usable primitive. */
static int field(const values_json_t *obj, const char *name, const char **out)
{
    const values_json_t *v = values_json_get(obj, name);
    *out = "";
    if (!v)
        return 0;
    const char *t = primitive_text(v);
    if (!t)
        return -1;
    *out = t;
    return 0;
}

int provision_req_parse(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                        provision_req_t *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    values_json_t *root = values_parse(arena, cfg, p, len, err, err_cap);
    if (!root)
        return -EBADMSG;
    if (root->kind != VALUES_JSON_OBJECT)
        return bad(err, err_cap, "provision request must be a JSON object");
    /* ThingsBoard's getStrValue(jo, field, required): the key and the secret must be present
     * (an empty one is answered NOT_FOUND later, as ThingsBoard does). */
    if (!values_json_get(root, "provisionDeviceKey") ||
        !values_json_get(root, "provisionDeviceSecret"))
        return bad(err, err_cap, "provisionDeviceKey and provisionDeviceSecret are required");
    const char *type;
    if (field(root, "deviceName", &out->device_name) < 0 ||
        field(root, "provisionDeviceKey", &out->key) < 0 ||
        field(root, "provisionDeviceSecret", &out->secret) < 0 ||
        field(root, "credentialsType", &type) < 0 || field(root, "token", &out->token) < 0 ||
        field(root, "hash", &out->hash) < 0)
        return bad(err, err_cap, "a provision request field is not a string");
    /* CredentialsType.valueOf: exact names only; absent = ACCESS_TOKEN. */
    if (!values_json_get(root, "credentialsType") || strcmp(type, "ACCESS_TOKEN") == 0)
        out->cred_type = PROVISION_CRED_ACCESS_TOKEN;
    else if (strcmp(type, "X509_CERTIFICATE") == 0)
        out->cred_type = PROVISION_CRED_X509;
    else if (strcmp(type, "MQTT_BASIC") == 0)
        out->cred_type = PROVISION_CRED_MQTT_BASIC;
    else
        return bad(err, err_cap, "unknown credentialsType");
    return 0;
}

/* ---- the rules ---- */

static int decide(provision_result_t *r, provision_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int decide(provision_result_t *r, provision_status_t st, const char *fmt, ...)
{
    r->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    return 0;
}

void provision_result_fini(provision_result_t *r)
{
    if (r->cred_value)
        OPENSSL_cleanse(r->cred_value, strlen(r->cred_value));
    free(r->cred_value);
    memset(r, 0, sizeof *r);
}

/* profileData.provisionConfiguration.provisionDeviceSecret of a profile's data, copied; NULL
 * when there is none. */
static char *profile_secret(const store_profile_t *p)
{
    json_t *d = p->data ? json_loads(p->data, 0, NULL) : NULL;
    json_t *cfg = json_object_get(json_object_get(d, "profileData"), "provisionConfiguration");
    const char *s = json_string_value(json_object_get(cfg, "provisionDeviceSecret"));
    char *out = s ? xstrdup(s) : NULL;
    json_decref(d);
    return out;
}

static bool secret_equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    /* Lengths are not secret enough to hide at this cost; the bytes are. */
    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

/* Whether the device's server attribute provisionState is "provisioned". */
static int already_provisioned(store_t *s, int64_t device_id, bool *out)
{
    const char *key = PROVISION_STATE_KEY;
    store_kv_list_t l = {0};
    int rc = store_attr_get(s, device_id, SCOPE_SERVER, &key, 1, &l);
    *out = rc == 0 && l.n == 1 && l.items[0].type == STORE_STRING &&
           strcmp(l.items[0].s, PROVISIONED) == 0;
    store_kv_list_fini(&l);
    return rc;
}

int provision__set_provisioned(store_t *s, int64_t device_id)
{
    store_kv_t kv = {
        .key = PROVISION_STATE_KEY, .type = STORE_STRING, .s = PROVISIONED, .ts = clock_wall_ms()};
    store_batch_t *b = store_batch_new();
    store_batch_attr(b, device_id, SCOPE_SERVER, &kv);
    return store_submit_wait(s, b);
}

int provision__create(store_t *s, registry_t *reg, hub_t *hub, const char *name, int64_t profile_id,
                      store_cred_type_t type, const char *cred_id, const char *cred_value,
                      int64_t *device_id)
{
    store_device_t d = {.name = (char *)name, .profile_id = profile_id};
    store_cred_t c = {.type = type, .cred_id = (char *)cred_id, .cred_value = (char *)cred_value};
    int rc = store_device_create_with_cred(s, &d, &c);
    int64_t id = d.id;
    /* d's strings other than name were filled by the store (type, ...): free only those. */
    d.name = NULL;
    store_device_fini(&d);
    if (rc < 0)
        return rc;
    *device_id = id;
    /* ThingsBoard saves provisionState after the device; a failure here leaves a working
     * device without the attribute, which only matters to CHECK_PRE_PROVISIONED profiles,
     * and those never create devices. */
    int arc = provision__set_provisioned(s, id);
    if (arc < 0)
        LOG_W("provision", "device %lld: provisionState not saved: %s", (long long)id,
              err_str(arc));
    registry_set(reg, id, type, cred_id);
    /* What follows from a new device in its profile (its profile's OTA package, ...) is
     * the listeners' business (app/server.c). */
    if (hub)
        hub_change_publish(hub, HUB_CHANGE_DEVICE_PROVISIONED, id);
    return 0;
}

/* The credentials a new device gets from req: a token (preset or generated) or a certificate.
 * 0, or FAILURE decided in r. */
static int new_credentials(const provision_req_t *req, provision_result_t *r,
                           store_cred_type_t *type, char **cred_id, char **cred_value)
{
    *cred_id = *cred_value = NULL;
    if (req->cred_type == PROVISION_CRED_MQTT_BASIC)
        return decide(r, PROVISION_FAILURE, "MQTT_BASIC credentials are not supported");
    if (req->cred_type == PROVISION_CRED_X509) {
        char hash[65], why[160];
        *type = CRED_X509;
        if (x509_cred_from_pem(req->hash, strlen(req->hash), cred_value, hash, why, sizeof why) < 0)
            return decide(r, PROVISION_FAILURE, "invalid certificate: %s", why);
        *cred_id = xstrdup(hash);
        return 0;
    }
    *type = CRED_ACCESS_TOKEN;
    if (req->token[0]) {
        char why[160];
        if (device_token_check(req->token, strlen(req->token), why, sizeof why) < 0)
            return decide(r, PROVISION_FAILURE, "invalid token: %s", why);
        *cred_id = xstrdup(req->token);
    } else {
        *cred_id = xmalloc(DEVICE_TOKEN_RANDOM_LEN + 1);
        device_random_alnum(*cred_id, DEVICE_TOKEN_RANDOM_LEN);
    }
    return 0;
}

static void succeed(provision_result_t *r, int64_t device_id, store_cred_type_t type,
                    const char *cred_id, const char *cred_value)
{
    r->status = PROVISION_SUCCESS;
    r->device_id = device_id;
    r->cred_type = type;
    /* ThingsBoard answers a token's id and a certificate's value. */
    r->cred_value = xstrdup(type == CRED_X509 ? cred_value : cred_id);
}

static int allow_create(store_t *s, registry_t *reg, hub_t *hub, const provision_req_t *req,
                        const store_profile_t *p, const char *name, provision_result_t *r)
{
    store_device_t d;
    int rc = store_device_get_by_name(s, name, &d);
    if (rc == 0) {
        store_device_fini(&d);
        return decide(r, PROVISION_FAILURE, "a device named \"%.60s\" exists", name);
    }
    if (rc != -ENOENT)
        return rc;
    store_cred_type_t type = CRED_ACCESS_TOKEN;
    char *cred_id, *cred_value;
    new_credentials(req, r, &type, &cred_id, &cred_value);
    if (r->status != PROVISION_SUCCESS)
        return 0;
    int64_t id = 0;
    rc = provision__create(s, reg, hub, name, p->id, type, cred_id, cred_value, &id);
    if (rc == 0)
        succeed(r, id, type, cred_id, cred_value);
    else if (rc == ERR_CONFLICT)
        decide(r, PROVISION_FAILURE, "a device named \"%.60s\" exists", name);
    else if (rc == -EEXIST)
        decide(r, PROVISION_FAILURE, "the credentials belong to another device");
    if (cred_id)
        OPENSSL_cleanse(cred_id, strlen(cred_id));
    free(cred_id);
    free(cred_value);
    return rc == ERR_CONFLICT || rc == -EEXIST ? 0 : rc;
}

static int pre_provisioned(store_t *s, const store_profile_t *p, const char *name,
                           provision_result_t *r)
{
    store_device_t d;
    int rc = store_device_get_by_name(s, name, &d);
    if (rc == -ENOENT)
        return decide(r, PROVISION_FAILURE, "no pre-provisioned device \"%.60s\"", name);
    if (rc < 0)
        return rc;
    int64_t id = d.id, profile = d.profile_id;
    store_device_fini(&d);
    if (profile != p->id)
        return decide(r, PROVISION_FAILURE, "device \"%.60s\" is not in the profile", name);
    bool done = false;
    if ((rc = already_provisioned(s, id, &done)) < 0)
        return rc;
    if (done)
        return decide(r, PROVISION_FAILURE, "device \"%.60s\" is already provisioned", name);
    store_cred_t c;
    if ((rc = store_cred_get_by_device(s, id, &c)) < 0)
        return rc == -ENOENT ? decide(r, PROVISION_FAILURE, "device has no credentials") : rc;
    if ((rc = provision__set_provisioned(s, id)) == 0)
        succeed(r, id, c.type, c.cred_id, c.cred_value);
    store_cred_fini(&c);
    return rc;
}

int provision_device(store_t *s, registry_t *reg, hub_t *hub, const provision_req_t *req,
                     provision_result_t *out)
{
    memset(out, 0, sizeof *out);
    /* ThingsBoard trims a given name; one that trims to nothing is a FAILURE, an absent or
     * empty one gets a random name (only when a device is created). */
    char name[PROVISION_NAME_MAX + 1] = "";
    const char *n = req->device_name;
    size_t len = strlen(n);
    while (len && (unsigned char)*n <= ' ')
        n++, len--;
    while (len && (unsigned char)n[len - 1] <= ' ')
        len--;
    if (req->device_name[0] && len == 0)
        return decide(out, PROVISION_FAILURE, "the device name is blank");
    if (len > PROVISION_NAME_MAX)
        return decide(out, PROVISION_FAILURE, "the device name is too long");
    memcpy(name, n, len);
    name[len] = '\0';
    if (!req->key[0] || !req->secret[0])
        return decide(out, PROVISION_NOT_FOUND, "no provision key or secret");

    store_profile_t p;
    int rc = store_profile_get_by_provision_key(s, req->key, &p);
    if (rc == -ENOENT)
        return decide(out, PROVISION_NOT_FOUND, "unknown provision key");
    if (rc < 0)
        return rc;
    char *secret = profile_secret(&p);
    bool ok = secret && secret_equal(secret, req->secret);
    if (secret)
        OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
    const char *type = p.provision_type ? p.provision_type : "DISABLED";
    if (!ok) {
        rc = decide(out, PROVISION_NOT_FOUND, "wrong secret for profile %lld", (long long)p.id);
    } else if (strcmp(type, "ALLOW_CREATE_NEW_DEVICES") == 0) {
        if (!name[0])
            device_random_alnum(name, DEVICE_TOKEN_RANDOM_LEN);
        rc = allow_create(s, reg, hub, req, &p, name, out);
    } else if (strcmp(type, "CHECK_PRE_PROVISIONED_DEVICES") == 0) {
        rc = name[0] ? pre_provisioned(s, &p, name, out)
                     : decide(out, PROVISION_FAILURE, "no pre-provisioned device named");
    } else {
        rc = decide(out, PROVISION_NOT_FOUND, "profile %lld: provisioning %s", (long long)p.id,
                    type);
    }
    store_profile_fini(&p);
    if (rc < 0)
        provision_result_fini(out);
    return rc;
}

char *provision_result_json(const provision_result_t *r)
{
    values_buf_t b = {0};
    switch (r->status) {
    case PROVISION_SUCCESS:
        values_buf_puts(&b, "{\"credentialsValue\":");
        values_buf_json_str(&b, r->cred_value, strlen(r->cred_value));
        values_buf_printf(&b, ",\"credentialsType\":\"%s\",\"status\":\"SUCCESS\"}",
                          store_cred_type_name(r->cred_type));
        break;
    case PROVISION_NOT_FOUND:
        values_buf_puts(&b,
                        "{\"errorMsg\":\"Provision data was not found!\","
                        "\"status\":\"NOT_FOUND\"}");
        break;
    case PROVISION_FAILURE:
        values_buf_puts(&b,
                        "{\"errorMsg\":\"Failed to provision device!\","
                        "\"status\":\"FAILURE\"}");
        break;
    }
    return values_buf_take(&b);
}
