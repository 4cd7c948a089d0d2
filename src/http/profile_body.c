/* profile_body.c — ThingsBoard's DeviceProfile JSON and a device's deviceData: request bodies
 * to what the store keeps, and stored rows back to ThingsBoard's JSON.
 *
 * The store keeps the columns it searches on (name, default, provision type and key, OTA
 * package ids) and everything else of the profile as one JSON text (store_profile_t.data).
 * This file owns that text's shape: it is written only here, normalised (the sub-objects
 * ThingsBoard always has are filled in, values are type-checked), and read back here with the
 * same defaults, so a row the store made itself (the default profile of a migration, whose data
 * is NULL) answers exactly like one saved through REST.
 *
 * Pure functions, no store, no server: tests/fuzz/rest_json.c reaches every line. Messages are
 * ThingsBoard's where it has one (DeviceProfileDataValidator, DeviceProfileServiceImpl).
 */
#include "http/http_int.h"

#include "core/xmalloc.h"
#include "device/x509.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Timers of clientSettings and deviceData are milliseconds; a month is far beyond any PSM or
 * eDRX timer (3GPP's longest eDRX cycle is under three hours) and keeps every sum in range. */
#define PROFILE_TIMER_MAX_MS (31LL * 24 * 3600 * 1000)
/* TB's column widths (varchar(255)) for names and keys. */
#define PROFILE_STR_MAX 255

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

static const char *const PROVISION_TYPES[] = {"DISABLED", "ALLOW_CREATE_NEW_DEVICES",
                                              "CHECK_PRE_PROVISIONED_DEVICES",
                                              "X509_CERTIFICATE_CHAIN", NULL};
/* Transport types ThingsBoard knows. coaphub serves DEFAULT and COAP devices; the others are
 * kept and returned as sent, so a profile exported from ThingsBoard imports unchanged. */
static const char *const TRANSPORT_TYPES[] = {"DEFAULT", "COAP", "MQTT", "LWM2M", "SNMP", NULL};
static const char *const POWER_MODES[] = {"PSM", "DRX", "E_DRX", NULL};

static bool one_of(const char *s, const char *const *set)
{
    for (size_t i = 0; s && set[i]; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

/* A JSON string without an embedded NUL (we keep C strings), else NULL. */
static const char *cstr(const json_t *v)
{
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

static bool absent(const json_t *v)
{
    return !v || json_is_null(v);
}

/* {"id":"<uuid>"} or {"entityType":..,"id":"<uuid>"}: 1 and *uuid (lower case) set; 0 when
 * absent or null; -1 when malformed. */
static int entity_uuid(const json_t *v, char uuid[static STORE_UUID_LEN + 1])
{
    if (absent(v))
        return 0;
    const char *id = json_is_object(v) ? cstr(json_object_get(v, "id")) : NULL;
    if (!http__is_uuid(id))
        return -1;
    for (size_t i = 0; i <= STORE_UUID_LEN; i++)
        uuid[i] = (char)(id[i] >= 'A' && id[i] <= 'F' ? id[i] + 32 : id[i]);
    return 1;
}

/* ---- transport settings: clientSettings of a COAP profile, a device's override ---- */

/* powerMode and the three timers, where they live in obj (a profile's clientSettings, or a
 * device's COAP transportConfiguration, which holds them directly). Absent and null pass. */
static int power_saving_check(const json_t *obj, const char *where, char *msg, size_t cap)
{
    json_t *pm = json_object_get(obj, "powerMode");
    if (!absent(pm) && !one_of(cstr(pm), POWER_MODES))
        return fail(msg, cap, "%s: powerMode must be one of PSM, DRX, E_DRX", where);
    static const char *const timers[] = {"psmActivityTimer", "edrxCycle",
                                         "pagingTransmissionWindow"};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        json_t *t = json_object_get(obj, timers[i]);
        if (absent(t))
            continue;
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) > PROFILE_TIMER_MAX_MS)
            return fail(msg, cap, "%s: %s must be a number of milliseconds (0..%lld)", where,
                        timers[i], PROFILE_TIMER_MAX_MS);
    }
    return 0;
}

/* A profile's transportConfiguration of type COAP, completed with ThingsBoard's defaults
 * (DEFAULT device type, JSON payloads, DRX power mode). Returns a new object or NULL. */
static json_t *coap_transport(const json_t *tc, char *msg, size_t cap, int *rc)
{
    json_t *out = json_pack("{s:s}", "type", "COAP");
    json_t *dflt = NULL; /* clientSettings made here when none came */
    json_t *dt = json_object_get(tc, "coapDeviceTypeConfiguration");
    const char *dev_type = "DEFAULT", *payload = "JSON";
    json_t *ptc = NULL;
    if (!absent(dt)) {
        if (!json_is_object(dt))
            goto bad_dt;
        json_t *t = json_object_get(dt, "coapDeviceType");
        if (!absent(t) && !one_of(cstr(t), (const char *const[]){"DEFAULT", "EFENTO", NULL}))
            goto bad_dt;
        if (!absent(t))
            dev_type = cstr(t);
        ptc = json_object_get(dt, "transportPayloadTypeConfiguration");
        if (!absent(ptc)) {
            json_t *pt = json_object_get(ptc, "transportPayloadType");
            if (!json_is_object(ptc) ||
                (!absent(pt) && !one_of(cstr(pt), (const char *const[]){"JSON", "PROTOBUF", NULL})))
                goto bad_dt;
            if (!absent(pt))
                payload = cstr(pt);
        }
    }
    /* A PROTOBUF configuration carries its .proto schemas: keep the object as sent. */
    json_t *ptc_out = json_is_object(ptc) ? json_deep_copy(ptc) : json_object();
    json_object_set_new(ptc_out, "transportPayloadType", json_string(payload));
    json_object_set_new(out, "coapDeviceTypeConfiguration",
                        json_pack("{s:s, s:o}", "coapDeviceType", dev_type,
                                  "transportPayloadTypeConfiguration", ptc_out));
    json_t *cs = json_object_get(tc, "clientSettings");
    if (absent(cs)) /* ThingsBoard's UI default; the same shape as a given one below */
        cs = dflt = json_pack("{s:s}", "powerMode", "DRX");
    if (!json_is_object(cs)) {
        *rc = fail(msg, cap, "clientSettings must be an object");
        goto err;
    } else if ((*rc = power_saving_check(cs, "clientSettings", msg, cap)) < 0) {
        goto err;
    } else {
        json_t *c = json_object();
        static const char *const keep[] = {"powerMode", "psmActivityTimer", "edrxCycle",
                                           "pagingTransmissionWindow"};
        for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
            json_t *v = json_object_get(cs, keep[i]);
            json_object_set_new(c, keep[i], v ? json_incref(v) : json_null());
        }
        json_object_set_new(out, "clientSettings", c);
    }
    json_decref(dflt);
    return out;
bad_dt:
    *rc = fail(msg, cap,
               "coapDeviceTypeConfiguration: coapDeviceType must be DEFAULT or EFENTO and "
               "transportPayloadType JSON or PROTOBUF");
err:
    json_decref(dflt);
    json_decref(out);
    return NULL;
}

/* ---- provisioning ---- */

static int provision_config(const json_t *pc_in, const char *type, http_profile_req_t *out,
                            json_t **pc_out, char *msg, size_t cap)
{
    json_t *pc = json_pack("{s:s}", "type", type);
    json_t *secret = json_object_get(pc_in, "provisionDeviceSecret");
    int rc = 0;
    if (!absent(secret) && !cstr(secret)) {
        rc = fail(msg, cap, "provisionDeviceSecret must be a string");
        goto out;
    }
    if (strcmp(type, "DISABLED") == 0) {
        /* No key and no secret: a disabled profile must not answer provisioning requests,
         * and a key left behind would keep blocking that key for other profiles. */
        free(out->provision_key);
        out->provision_key = NULL;
        json_object_set_new(pc, "provisionDeviceSecret", json_null());
        goto out;
    }
    if (strcmp(type, "X509_CERTIFICATE_CHAIN") != 0) {
        if (!out->provision_key || !out->provision_key[0]) {
            rc = fail(msg, cap, "Provision device key should be specified!");
            goto out;
        }
        const char *s = cstr(secret);
        if (!s || !s[0]) {
            rc = fail(msg, cap, "Provision device secret should be specified!");
            goto out;
        }
        if (strlen(out->provision_key) > PROFILE_STR_MAX || strlen(s) > PROFILE_STR_MAX) {
            rc = fail(msg, cap, "Provision device key and secret must be at most %d characters!",
                      PROFILE_STR_MAX);
            goto out;
        }
        json_object_set_new(pc, "provisionDeviceSecret", json_string(s));
        goto out;
    }
    /* X509_CERTIFICATE_CHAIN: the secret is the CA chain; the key is derived from it. */
    const char *ca = cstr(secret);
    if (!ca || !ca[0]) {
        rc = fail(msg, cap, "Provision device secret should be specified!");
        goto out;
    }
    char *pem = NULL, hash[65], why[200];
    int n = 0;
    if (x509_chain_from_pem(ca, strlen(ca), &pem, &n, hash, why, sizeof why) < 0) {
        rc = fail(msg, cap, "Invalid CA certificate: %s", why);
        goto out;
    }
    json_object_set_new(pc, "provisionDeviceSecret", json_string(pem));
    free(pem);
    free(out->provision_key);
    out->provision_key = xstrdup(hash);
    json_t *re = json_object_get(pc_in, "certificateRegExPattern");
    const char *pattern = absent(re) ? "(.*)" : cstr(re);
    regex_t rx;
    int rerr = pattern && strlen(pattern) <= 1024 ? regcomp(&rx, pattern, REG_EXTENDED)
                                                  : REG_BADPAT;
    if (rerr != 0) {
        char rmsg[120] = "not a string of at most 1024 characters";
        if (pattern && strlen(pattern) <= 1024)
            regerror(rerr, &rx, rmsg, sizeof rmsg);
        rc = fail(msg, cap, "Invalid certificateRegExPattern: %s", rmsg);
        goto out;
    }
    /* Group 1 names the device: a pattern without one could never name any. */
    size_t groups = rx.re_nsub;
    regfree(&rx);
    if (groups < 1) {
        rc = fail(msg, cap,
                  "Invalid certificateRegExPattern: it needs a group, e.g. (.*), whose match "
                  "in the certificate's CN is the device name");
        goto out;
    }
    json_object_set_new(pc, "certificateRegExPattern", json_string(pattern));
    json_t *allow = json_object_get(pc_in, "allowCreateNewDevicesByX509Certificate");
    if (!absent(allow) && !json_is_boolean(allow)) {
        rc = fail(msg, cap, "allowCreateNewDevicesByX509Certificate must be a boolean");
        goto out;
    }
    json_object_set_new(pc, "allowCreateNewDevicesByX509Certificate",
                        json_boolean(absent(allow) || json_is_true(allow)));
out:
    if (rc < 0) {
        json_decref(pc);
        pc = NULL;
    }
    *pc_out = pc;
    return rc;
}

/* ---- the profile body ---- */

void http__profile_req_fini(http_profile_req_t *p)
{
    free(p->uuid);
    free(p->name);
    free(p->provision_type);
    free(p->provision_key);
    free(p->firmware_uuid);
    free(p->software_uuid);
    free(p->data);
    memset(p, 0, sizeof *p);
}

/* Copies an optional string member into data (null when absent). */
static int copy_opt_str(const json_t *o, const char *k, json_t *data, char *msg, size_t cap)
{
    json_t *v = json_object_get(o, k);
    if (!absent(v) && !cstr(v))
        return fail(msg, cap, "%s must be a string", k);
    json_object_set_new(data, k, absent(v) ? json_null() : json_string(cstr(v)));
    return 0;
}

/* Copies an optional entity id member ({"entityType":..,"id":..}) into data. */
static int copy_opt_entity(const json_t *o, const char *k, const char *entity_type, json_t *data,
                           char *msg, size_t cap)
{
    char uuid[STORE_UUID_LEN + 1];
    int r = entity_uuid(json_object_get(o, k), uuid);
    if (r < 0)
        return fail(msg, cap, "%s: Invalid UUID string", k);
    json_object_set_new(
        data, k, r ? json_pack("{s:s, s:s}", "entityType", entity_type, "id", uuid) : json_null());
    return 0;
}

static int ota_id(const json_t *o, const char *k, char **out, char *msg, size_t cap)
{
    char uuid[STORE_UUID_LEN + 1];
    int r = entity_uuid(json_object_get(o, k), uuid);
    if (r < 0)
        return fail(msg, cap, "%s: Invalid UUID string", k);
    if (r)
        *out = xstrdup(uuid);
    return 0;
}

int http__profile_from_json(const json_t *o, http_profile_req_t *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(o))
        return fail(msg, cap, "Invalid JSON");
    int rc = -EINVAL;
    json_t *data = json_object();
    char uuid[STORE_UUID_LEN + 1];
    int r = entity_uuid(json_object_get(o, "id"), uuid);
    if (r < 0) {
        rc = fail(msg, cap, "Invalid UUID string: %.40s",
                  cstr(json_object_get(json_object_get(o, "id"), "id"))
                      ? cstr(json_object_get(json_object_get(o, "id"), "id"))
                      : "");
        goto err;
    }
    if (r)
        out->uuid = xstrdup(uuid);
    json_t *name = json_object_get(o, "name");
    if (absent(name) || !cstr(name) || !cstr(name)[0]) {
        rc = fail(msg, cap, "Device profile name should be specified!");
        goto err;
    }
    if (strlen(cstr(name)) > PROFILE_STR_MAX) {
        rc = fail(msg, cap, "Device profile name must be at most %d characters!", PROFILE_STR_MAX);
        goto err;
    }
    out->name = xstrdup(cstr(name));
    json_t *def = json_object_get(o, "default");
    if (!absent(def) && !json_is_boolean(def)) {
        rc = fail(msg, cap, "default must be a boolean");
        goto err;
    }
    out->is_default = json_is_true(def);
    json_t *ver = json_object_get(o, "version");
    if (json_is_integer(ver))
        out->version = json_integer_value(ver);

    /* type: ThingsBoard has one profile type, DEFAULT. A missing one is taken as DEFAULT
     * (ThingsBoard refuses it; every request it accepts is accepted here). */
    json_t *type = json_object_get(o, "type");
    if (!absent(type) && (!cstr(type) || strcmp(cstr(type), "DEFAULT") != 0)) {
        rc = fail(msg, cap, "Device profile type must be DEFAULT");
        goto err;
    }
    json_object_set_new(data, "type", json_string("DEFAULT"));
    if ((rc = copy_opt_str(o, "description", data, msg, cap)) < 0 ||
        (rc = copy_opt_str(o, "image", data, msg, cap)) < 0 ||
        (rc = copy_opt_str(o, "defaultQueueName", data, msg, cap)) < 0 ||
        (rc = copy_opt_entity(o, "defaultRuleChainId", "RULE_CHAIN", data, msg, cap)) < 0 ||
        (rc = copy_opt_entity(o, "defaultDashboardId", "DASHBOARD", data, msg, cap)) < 0 ||
        (rc = copy_opt_entity(o, "defaultEdgeRuleChainId", "RULE_CHAIN", data, msg, cap)) < 0 ||
        (rc = ota_id(o, "firmwareId", &out->firmware_uuid, msg, cap)) < 0 ||
        (rc = ota_id(o, "softwareId", &out->software_uuid, msg, cap)) < 0)
        goto err;
    rc = -EINVAL;

    json_t *pd = json_object_get(o, "profileData");
    if (!absent(pd) && !json_is_object(pd)) {
        rc = fail(msg, cap, "profileData must be an object");
        goto err;
    }
    json_t *conf = json_object_get(pd, "configuration");
    if (!absent(conf) &&
        (!json_is_object(conf) ||
         !one_of(cstr(json_object_get(conf, "type")), (const char *const[]){"DEFAULT", NULL}))) {
        rc = fail(msg, cap, "profileData.configuration: type must be DEFAULT");
        goto err;
    }

    /* transportType and transportConfiguration.type name the same thing; either may be left
     * out, but they must agree. */
    json_t *tt = json_object_get(o, "transportType");
    json_t *tc = json_object_get(pd, "transportConfiguration");
    if (!absent(tc) && !json_is_object(tc)) {
        rc = fail(msg, cap, "transportConfiguration must be an object");
        goto err;
    }
    const char *ttype = !absent(tt) ? cstr(tt) : NULL;
    const char *tctype = cstr(json_object_get(tc, "type"));
    if (!ttype)
        ttype = absent(tt) ? (tctype ? tctype : "DEFAULT") : NULL;
    if (!one_of(ttype, TRANSPORT_TYPES)) {
        rc = fail(msg, cap,
                  "Device profile transport type should be one of DEFAULT, COAP, "
                  "MQTT, LWM2M, SNMP!");
        goto err;
    }
    if (tctype && strcmp(tctype, ttype) != 0) {
        rc = fail(msg, cap,
                  "transportConfiguration.type (%.16s) differs from transportType "
                  "(%.16s)",
                  tctype, ttype);
        goto err;
    }
    json_object_set_new(data, "transportType", json_string(ttype));
    json_t *tc_out;
    if (strcmp(ttype, "COAP") == 0) {
        if (!(tc_out = coap_transport(tc, msg, cap, &rc)))
            goto err;
    } else if (strcmp(ttype, "DEFAULT") == 0 || absent(tc)) {
        tc_out = json_pack("{s:s}", "type", ttype);
    } else {
        tc_out = json_deep_copy(tc);
    }

    /* provisionType and provisionConfiguration.type likewise; the key may come at the top
     * (ThingsBoard's API) or inside provisionConfiguration (its UI's form). */
    json_t *pt = json_object_get(o, "provisionType");
    json_t *pc = json_object_get(pd, "provisionConfiguration");
    if (!absent(pc) && !json_is_object(pc)) {
        json_decref(tc_out);
        rc = fail(msg, cap, "provisionConfiguration must be an object");
        goto err;
    }
    const char *ptype = cstr(json_object_get(pc, "type"));
    if (!ptype)
        ptype = !absent(pt) ? cstr(pt) : "DISABLED";
    if (!one_of(ptype, PROVISION_TYPES) || (!absent(pt) && !one_of(cstr(pt), PROVISION_TYPES))) {
        json_decref(tc_out);
        rc = fail(msg, cap,
                  "Unsupported provision type; one of DISABLED, "
                  "ALLOW_CREATE_NEW_DEVICES, CHECK_PRE_PROVISIONED_DEVICES, "
                  "X509_CERTIFICATE_CHAIN");
        goto err;
    }
    out->provision_type = xstrdup(ptype);
    json_t *key = json_object_get(o, "provisionDeviceKey");
    if (absent(key))
        key = json_object_get(pc, "provisionDeviceKey");
    if (!absent(key) && !cstr(key)) {
        json_decref(tc_out);
        rc = fail(msg, cap, "provisionDeviceKey must be a string");
        goto err;
    }
    out->provision_key = absent(key) ? NULL : xstrdup(cstr(key));
    json_t *pc_out = NULL;
    if ((rc = provision_config(pc, ptype, out, &pc_out, msg, cap)) < 0) {
        json_decref(tc_out);
        goto err;
    }
    json_t *alarms = json_object_get(pd, "alarms");
    json_object_set_new(data, "profileData",
                        json_pack("{s:{s:s}, s:o, s:o, s:O}", "configuration", "type", "DEFAULT",
                                  "transportConfiguration", tc_out, "provisionConfiguration",
                                  pc_out, "alarms", json_is_array(alarms) ? alarms : json_null()));
    out->data = http__dumps(data);
    json_decref(data);
    return 0;
err:
    json_decref(data);
    http__profile_req_fini(out);
    return rc;
}

/* ---- stored profile -> ThingsBoard's JSON ---- */

static json_t *entity(const char *type, const char *id)
{
    return id && id[0] ? json_pack("{s:s, s:s}", "entityType", type, "id", id) : json_null();
}

/* data's member k, or a copy of dflt (a new reference either way). */
static json_t *member_or(const json_t *data, const char *k, json_t *dflt)
{
    json_t *v = json_object_get(data, k);
    if (v) {
        json_decref(dflt);
        return json_incref(v);
    }
    return dflt;
}

json_t *http__profile_json(const char *tenant_id, const store_profile_t *p, bool info)
{
    json_t *data = p->data ? json_loads(p->data, 0, NULL) : NULL;
    if (!json_is_object(data)) {
        json_decref(data);
        data = json_object();
    }
    json_t *transport = member_or(data, "transportType", json_string("DEFAULT"));
    json_t *o = json_object();
    json_object_set_new(o, "id", entity("DEVICE_PROFILE", p->uuid));
    if (!info)
        json_object_set_new(o, "createdTime", json_integer(p->created_ms));
    json_object_set_new(o, "tenantId", entity("TENANT", tenant_id));
    json_object_set_new(o, "name", json_string(p->name ? p->name : ""));
    if (!info)
        json_object_set_new(o, "description", member_or(data, "description", json_null()));
    json_object_set_new(o, "image", member_or(data, "image", json_null()));
    json_object_set_new(o, "defaultDashboardId",
                        member_or(data, "defaultDashboardId", json_null()));
    json_object_set_new(o, "type", member_or(data, "type", json_string("DEFAULT")));
    json_object_set_new(o, "transportType", json_incref(transport));
    if (info) {
        json_decref(transport);
        json_decref(data);
        return o;
    }
    const char *ptype = p->provision_type ? p->provision_type : "DISABLED";
    json_object_set_new(o, "provisionType", json_string(ptype));
    json_object_set_new(o, "defaultRuleChainId",
                        member_or(data, "defaultRuleChainId", json_null()));
    json_object_set_new(o, "defaultQueueName", member_or(data, "defaultQueueName", json_null()));
    json_object_set_new(o, "defaultEdgeRuleChainId",
                        member_or(data, "defaultEdgeRuleChainId", json_null()));
    json_object_set_new(o, "provisionDeviceKey",
                        p->provision_key ? json_string(p->provision_key) : json_null());
    json_object_set_new(o, "firmwareId", entity("OTA_PACKAGE", p->firmware_id));
    json_object_set_new(o, "softwareId", entity("OTA_PACKAGE", p->software_id));
    json_object_set_new(o, "externalId", json_null());
    json_object_set_new(o, "version", json_integer(p->version));
    json_object_set_new(o, "default", json_boolean(p->is_default));
    /* profileData with every part ThingsBoard always has, for rows written elsewhere. */
    json_t *pd = json_object_get(data, "profileData");
    json_t *pdo = json_is_object(pd) ? json_deep_copy(pd) : json_object();
    if (!json_is_object(json_object_get(pdo, "configuration")))
        json_object_set_new(pdo, "configuration", json_pack("{s:s}", "type", "DEFAULT"));
    if (!json_is_object(json_object_get(pdo, "transportConfiguration")))
        json_object_set_new(pdo, "transportConfiguration", json_pack("{s:O}", "type", transport));
    if (!json_is_object(json_object_get(pdo, "provisionConfiguration")))
        json_object_set_new(pdo, "provisionConfiguration",
                            json_pack("{s:s, s:n}", "type", ptype, "provisionDeviceSecret"));
    if (!json_object_get(pdo, "alarms"))
        json_object_set_new(pdo, "alarms", json_null());
    json_object_set_new(o, "profileData", pdo);
    json_decref(transport);
    json_decref(data);
    return o;
}

/* ---- a device's deviceData ---- */

int http__device_data_from_json(const json_t *v, char **out, char *msg, size_t cap)
{
    *out = NULL;
    if (absent(v))
        return 0;
    if (!json_is_object(v))
        return fail(msg, cap, "deviceData must be an object");
    json_t *conf = json_object_get(v, "configuration");
    if (!absent(conf) && (!json_is_object(conf) || !one_of(cstr(json_object_get(conf, "type")),
                                                           (const char *const[]){"DEFAULT", NULL})))
        return fail(msg, cap, "deviceData.configuration: type must be DEFAULT");
    json_t *tc = json_object_get(v, "transportConfiguration");
    json_t *tc_out;
    if (absent(tc)) {
        tc_out = json_pack("{s:s}", "type", "DEFAULT");
    } else {
        const char *t = json_is_object(tc) ? cstr(json_object_get(tc, "type")) : NULL;
        if (!one_of(t, TRANSPORT_TYPES))
            return fail(msg, cap,
                        "deviceData.transportConfiguration: type should be one of "
                        "DEFAULT, COAP, MQTT, LWM2M, SNMP");
        if (strcmp(t, "COAP") == 0) {
            int rc = power_saving_check(tc, "deviceData.transportConfiguration", msg, cap);
            if (rc < 0)
                return rc;
            tc_out = json_pack("{s:s}", "type", "COAP");
            static const char *const keep[] = {"powerMode", "psmActivityTimer", "edrxCycle",
                                               "pagingTransmissionWindow"};
            for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
                json_t *x = json_object_get(tc, keep[i]);
                json_object_set_new(tc_out, keep[i], x ? json_incref(x) : json_null());
            }
        } else if (strcmp(t, "DEFAULT") == 0) {
            tc_out = json_pack("{s:s}", "type", "DEFAULT");
        } else {
            tc_out = json_deep_copy(tc);
        }
    }
    json_t *dd = json_pack("{s:{s:s}, s:o}", "configuration", "type", "DEFAULT",
                           "transportConfiguration", tc_out);
    *out = http__dumps(dd);
    json_decref(dd);
    return 0;
}

json_t *http__device_data_json(const char *text)
{
    json_t *dd = text ? json_loads(text, 0, NULL) : NULL;
    if (json_is_object(dd))
        return dd;
    json_decref(dd);
    return json_pack("{s:{s:s}, s:{s:s}}", "configuration", "type", "DEFAULT",
                     "transportConfiguration", "type", "DEFAULT");
}
