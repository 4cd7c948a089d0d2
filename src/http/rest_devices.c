/* rest_devices.c — device CRUD (§8.3): create/update, get, list, by name, delete.
 *
 * A new device always gets credentials: the ?accessToken= given, or a random 20-character
 * token like ThingsBoard. Create and credential insert are two store calls; if the token is
 * taken we delete the half-created device again so no credential-less device is left.
 */
#include "http/http_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static json_t *entity_id(const char *type, const char *id)
{
    return json_pack("{s:s, s:s}", "entityType", type, "id", id);
}

static json_t *str_or_null(const char *s)
{
    json_t *j = s ? json_string(s) : NULL;
    return j ? j : json_null();
}

json_t *http__device_json(const http_server_t *h, const store_device_t *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", entity_id("DEVICE", d->uuid));
    json_object_set_new(o, "createdTime", json_integer(d->created_ms));
    json_object_set_new(o, "tenantId", entity_id("TENANT", h->tenant_id));
    json_object_set_new(o, "customerId", entity_id("CUSTOMER", HTTP_UUID_NULL));
    json_object_set_new(o, "name", str_or_null(d->name));
    json_object_set_new(o, "type", str_or_null(d->type ? d->type : "default"));
    json_object_set_new(o, "label", str_or_null(d->label));
    json_object_set_new(o, "deviceProfileId", entity_id("DEVICE_PROFILE", h->profile_id));
    json_object_set_new(o, "deviceData",
                        json_pack("{s:{s:s}, s:{s:s}}", "configuration", "type", "DEFAULT",
                                  "transportConfiguration", "type", "DEFAULT"));
    json_object_set_new(o, "firmwareId", json_null());
    json_object_set_new(o, "softwareId", json_null());
    json_object_set_new(o, "externalId", json_null());
    json_object_set_new(o, "version", json_integer(d->version));
    json_t *ai = d->additional_info ? json_loads(d->additional_info, 0, NULL) : NULL;
    json_object_set_new(o, "additionalInfo", ai ? ai : json_null());
    return o;
}

static void conflict_or_error(http_resp_t *rs, int rc, const char *conflict_msg)
{
    if (rc == ERR_CONFLICT)
        http__resp_error(rs, HTTP_E_BAD_PARAMS, conflict_msg);
    else
        http__resp_store_error(rs, rc);
}

/* Creates the device and its credentials (token given, random token, or creds). */
static void create(http_req_t *rq, http_resp_t *rs, http_device_req_t *dr,
                   const http_cred_req_t *creds)
{
    http_server_t *h = rq->srv;
    store_device_t d = {.name = dr->name, .type = dr->type, .label = dr->label,
                        .additional_info = dr->additional_info};
    http_cred_req_t tok = {.type = CRED_ACCESS_TOKEN};
    char random_tok[21];
    if (!creds) {
        const char *given = http__query(rq, "accessToken");
        if (given && given[0]) {
            char msg[160];
            json_t *o = json_pack("{s:s, s:s}", "credentialsType", "ACCESS_TOKEN",
                                  "credentialsId", given);
            http_cred_req_t chk;
            int vrc = o ? http__cred_from_json(o, &chk, msg, sizeof msg) : -EINVAL;
            json_decref(o);
            if (vrc < 0) {
                http__resp_error(rs, HTTP_E_BAD_PARAMS, o ? msg : "Invalid access token");
                return;
            }
            http__cred_req_fini(&chk);
            tok.cred_id = (char *)given;
        } else {
            http__random_alnum(random_tok, 20);
            tok.cred_id = random_tok;
        }
        if (registry_find_token(h->reg, (const uint8_t *)tok.cred_id, strlen(tok.cred_id))) {
            http__resp_error(rs, HTTP_E_BAD_PARAMS,
                             "Device credentials are already assigned to another device!");
            return;
        }
        creds = &tok;
    }
    /* One transaction for both rows (as ThingsBoard's saveDeviceWithCredentials): a failure
     * of either — a token taken meanwhile, the database gone between the two — leaves no
     * device without credentials behind. */
    store_cred_t cred = {
        .type = creds->type, .cred_id = creds->cred_id, .cred_value = creds->cred_value};
    int rc = store_device_create_with_cred(h->store, &d, &cred);
    if (rc == -EEXIST) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "Device credentials are already assigned to another device!");
        return;
    }
    if (rc < 0) {
        conflict_or_error(rs, rc, "Device with such name already exists!");
        return;
    }
    http__cred_published(h, d.id, creds);
    if (h->dev_cache) /* a new device is usually written to next (bulk provisioning) */
        http__dev_cache_put(h->dev_cache, d.uuid, d.id, http__dev_cache_gen(h->dev_cache));
    LOG_I("http", "device %s created", d.uuid);
    http__resp_json(rs, 200, http__device_json(h, &d));
}

static void update(http_req_t *rq, http_resp_t *rs, http_device_req_t *dr)
{
    store_device_t d;
    if (!http__device_lookup(rq, rs, dr->uuid, &d))
        return;
    free(d.name);
    free(d.type);
    free(d.label);
    free(d.additional_info);
    d.name = xstrdup(dr->name);
    d.type = xstrdup(dr->type);
    d.label = xstrdup(dr->label);
    d.additional_info = xstrdup(dr->additional_info);
    int rc = store_device_update(rq->srv->store, &d);
    int64_t id = d.id;
    store_device_fini(&d);
    if (rc < 0) {
        conflict_or_error(rs, rc, "Device with such name already exists!");
        return;
    }
    /* Read back: the store bumped the version. */
    if ((rc = store_device_get(rq->srv->store, id, &d)) < 0) {
        http__resp_store_error(rs, rc);
        return;
    }
    http__resp_json(rs, 200, http__device_json(rq->srv, &d));
    store_device_fini(&d);
}

void http__h_device_save(http_req_t *rq, http_resp_t *rs)
{
    char msg[200];
    json_t *j = http__json_parse(rq->body, rq->body_len);
    http_device_req_t dr;
    if (http__device_from_json(j, &dr, msg, sizeof msg) < 0) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
    } else {
        if (dr.uuid)
            update(rq, rs, &dr);
        else
            create(rq, rs, &dr, NULL);
        http__device_req_fini(&dr);
    }
    json_decref(j);
}

void http__h_device_with_creds(http_req_t *rq, http_resp_t *rs)
{
    char msg[300];
    json_t *j = http__json_parse(rq->body, rq->body_len);
    http_device_req_t dr;
    http_cred_req_t cr;
    if (!json_is_object(j)) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Invalid JSON");
    } else if (http__device_from_json(json_object_get(j, "device"), &dr, msg, sizeof msg) < 0) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
    } else {
        if (dr.uuid) {
            http__resp_error(rs, HTTP_E_BAD_PARAMS, "Device id must not be specified!");
        } else if (http__cred_from_json(json_object_get(j, "credentials"), &cr, msg,
                                        sizeof msg) < 0) {
            http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        } else {
            create(rq, rs, &dr, &cr);
            http__cred_req_fini(&cr);
        }
        http__device_req_fini(&dr);
    }
    json_decref(j);
}

void http__h_device_get(http_req_t *rq, http_resp_t *rs)
{
    store_device_t d;
    if (!http__device_lookup(rq, rs, rq->params[0], &d))
        return;
    http__resp_json(rs, 200, http__device_json(rq->srv, &d));
    store_device_fini(&d);
}

void http__h_device_delete(http_req_t *rq, http_resp_t *rs)
{
    store_device_t d;
    if (!http__device_lookup(rq, rs, rq->params[0], &d))
        return;
    http_server_t *h = rq->srv;
    int rc = store_device_delete(h->store, d.id);
    if (h->dev_cache) /* after the delete: see the race rule in http_int.h */
        http__dev_cache_forget(h->dev_cache, d.uuid);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
    } else {
        registry_remove_device(h->reg, d.id);
        hub_rpc_cancel_device(h->hub, d.id);
        hub_publish(h->hub, HUB_EV_DEVICE_DELETED, d.id, NULL);
        LOG_I("http", "device %s deleted", d.uuid);
        http__resp_json(rs, 200, NULL);
    }
    store_device_fini(&d);
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static void by_name(http_req_t *rq, http_resp_t *rs, const char *name)
{
    store_device_t d;
    memset(&d, 0, sizeof d);
    int rc = store_device_get_by_name(rq->srv->store, name, &d);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return;
    }
    http__resp_json(rs, 200, http__device_json(rq->srv, &d));
    store_device_fini(&d);
}

void http__h_device_by_name(http_req_t *rq, http_resp_t *rs)
{
    const char *name = http__query(rq, "deviceName");
    if (!name) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Required request parameter 'deviceName' "
                                                "is not present");
        return;
    }
    by_name(rq, rs, name);
}

void http__h_devices_list(http_req_t *rq, http_resp_t *rs)
{
    const char *name = http__query(rq, "deviceName");
    if (name) {
        by_name(rq, rs, name);
        return;
    }
    int64_t page_size, page = 0;
    if (!parse_int(http__query(rq, "pageSize"), 1, 10000, &page_size) ||
        (http__query(rq, "page") && !parse_int(http__query(rq, "page"), 0, 1000000000, &page))) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "Invalid page parameters: pageSize (1..10000) is required, page >= 0");
        return;
    }
    const char *sort = http__query(rq, "sortProperty");
    if (sort && strcmp(sort, "name") && strcmp(sort, "createdTime") && strcmp(sort, "type") &&
        strcmp(sort, "label")) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Unsupported sort property");
        return;
    }
    const char *order = http__query(rq, "sortOrder");
    bool asc = order && strcasecmp(order, "ASC") == 0;
    const char *text = http__query(rq, "textSearch");
    const char *type = http__query(rq, "type");
    store_device_page_t pg;
    memset(&pg, 0, sizeof pg);
    int rc = store_device_list(rq->srv->store, text && *text ? text : NULL,
                               type && *type ? type : NULL, sort, asc, page, page_size, &pg);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < pg.n; i++)
        json_array_append_new(data, http__device_json(rq->srv, &pg.items[i]));
    int64_t pages = (pg.total + page_size - 1) / page_size;
    http__resp_json(rs, 200,
                    json_pack("{s:o, s:I, s:I, s:b}", "data", data, "totalPages",
                              (json_int_t)pages, "totalElements", (json_int_t)pg.total,
                              "hasNext", (page + 1) < pages));
    store_device_page_fini(&pg);
}
