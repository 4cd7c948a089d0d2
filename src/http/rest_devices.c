/* rest_devices.c — device CRUD (§8.3): create/update, get, list, infos, by name, delete.
 *
 * A new device always gets credentials: the ?accessToken= given, or a random 20-character
 * token like ThingsBoard; device and credentials are written in one transaction. Every device
 * has a profile: deviceProfileId when given, else the profile named by `type` (made when
 * missing, ThingsBoard's findOrCreateDeviceProfile, done by the store), else the default one;
 * `type` in answers is the profile's name. A saved device is announced (hub_change_publish) so
 * that caches derived from its profile, deviceData and OTA packages reload it.
 */
#include "http/http_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "ota/ota.h"

#include <errno.h>
#include <stdio.h>
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
    json_object_set_new(o, "deviceProfileId", entity_id("DEVICE_PROFILE", d->profile_uuid));
    json_object_set_new(o, "deviceData", http__device_data_json(d->device_data));
    json_object_set_new(o, "firmwareId",
                        d->firmware_id ? entity_id("OTA_PACKAGE", d->firmware_id) : json_null());
    json_object_set_new(o, "softwareId",
                        d->software_id ? entity_id("OTA_PACKAGE", d->software_id) : json_null());
    json_object_set_new(o, "externalId", json_null());
    json_object_set_new(o, "version", json_integer(d->version));
    json_t *ai = d->additional_info ? json_loads(d->additional_info, 0, NULL) : NULL;
    json_object_set_new(o, "additionalInfo", ai ? ai : json_null());
    return o;
}

/* The profile a device body asks for, as ThingsBoard's DeviceServiceImpl decides it, and the
 * checks of its OTA packages. *profile_id: the profile's id, or 0 = "by type" (the store
 * finds or makes it); *new_profile: that profile does not exist yet. true, or false with the
 * answer in rs. */
static bool resolve_profile(http_server_t *h, http_resp_t *rs, const http_device_req_t *dr,
                            int64_t *profile_id, bool *new_profile)
{
    *profile_id = 0;
    *new_profile = false;
    store_profile_t p;
    memset(&p, 0, sizeof p);
    int rc;
    if (dr->profile_uuid) {
        rc = store_profile_get_by_uuid(h->store, dr->profile_uuid, &p);
        if (rc == -ENOENT) {
            http__resp_error(rs, HTTP_E_BAD_PARAMS,
                             "Device is referencing non existing device profile!");
            return false;
        }
    } else {
        rc = dr->type ? store_profile_get_by_name(h->store, dr->type, &p)
                      : store_profile_get_default(h->store, &p);
        *new_profile = rc == -ENOENT && dr->type;
        if (*new_profile)
            rc = 0;
    }
    int64_t id = p.id;
    store_profile_fini(&p);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return false;
    }
    if (dr->profile_uuid)
        *profile_id = id;
    char msg[128];
    for (int fw = 1; fw >= 0; fw--) {
        const char *ota = fw ? dr->firmware_uuid : dr->software_uuid;
        /* A profile about to be made owns no package yet (id 0 matches none). */
        if (ota && (rc = http__ota_assign_check(h, ota, fw, id, msg, sizeof msg)) < 0) {
            if (rc == -EINVAL)
                http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
            else
                http__resp_store_error(rs, rc);
            return false;
        }
    }
    return true;
}

static void announce(http_server_t *h, hub_change_t what, int64_t id)
{
    if (h->hub)
        hub_change_publish(h->hub, what, id);
}

/* After a save: a device whose effective OTA package changed is told (shared fw_ and sw_
 * attributes, fw_state QUEUED: ota_device_assignment_changed). old_fw/old_sw are the
 * packages it downloaded before the save ("" for a new device). The device row is stored
 * either way; a failure here is logged, as ThingsBoard's OtaPackageStateService logs its own. */
static void ota_notify(http_server_t *h, int64_t device_id, const char *old_fw, const char *old_sw)
{
    int rc = ota_device_assignment_changed(h->store, h->hub, device_id, old_fw, old_sw);
    if (rc < 0)
        LOG_W("http", "device %lld: OTA assignment not sent: %s", (long long)device_id,
              err_str(rc));
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
    int64_t profile_id;
    bool new_profile;
    if (!resolve_profile(h, rs, dr, &profile_id, &new_profile))
        return;
    store_device_t d = {.name = dr->name,
                        .type = dr->type,
                        .label = dr->label,
                        .additional_info = dr->additional_info,
                        .profile_id = profile_id,
                        .firmware_id = dr->firmware_uuid,
                        .software_id = dr->software_uuid,
                        .device_data = dr->device_data};
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
            device_random_alnum(random_tok, 20);
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
    if (new_profile)
        announce(h, HUB_CHANGE_PROFILE_SAVED, d.profile_id);
    announce(h, HUB_CHANGE_DEVICE, d.id);
    LOG_I("http", "device %s created", d.uuid);
    ota_notify(h, d.id, "", "");
    /* Read back for the answer: the store filled in the profile's uuid and name. */
    store_device_t saved;
    memset(&saved, 0, sizeof saved);
    if ((rc = store_device_get(h->store, d.id, &saved)) < 0)
        http__resp_store_error(rs, rc);
    else
        http__resp_json(rs, 200, http__device_json(h, &saved));
    store_device_fini(&saved);
}

static void update(http_req_t *rq, http_resp_t *rs, http_device_req_t *dr)
{
    http_server_t *h = rq->srv;
    store_device_t d;
    int64_t profile_id;
    bool new_profile;
    if (!http__device_lookup(rq, rs, dr->uuid, &d))
        return;
    if (!resolve_profile(h, rs, dr, &profile_id, &new_profile)) {
        store_device_fini(&d);
        return;
    }
    /* The packages the device downloads before this save, to tell it only of a change. */
    char old_fw[STORE_UUID_LEN + 1], old_sw[STORE_UUID_LEN + 1];
    int orc = ota_effective_id(h->store, &d, OTA_FIRMWARE, old_fw);
    if (orc == 0)
        orc = ota_effective_id(h->store, &d, OTA_SOFTWARE, old_sw);
    if (orc < 0) {
        http__resp_store_error(rs, orc);
        store_device_fini(&d);
        return;
    }
    free(d.name);
    free(d.type);
    free(d.label);
    free(d.additional_info);
    free(d.firmware_id);
    free(d.software_id);
    free(d.device_data);
    d.name = xstrdup(dr->name);
    d.type = xstrdup(dr->type);
    d.label = xstrdup(dr->label);
    d.additional_info = xstrdup(dr->additional_info);
    d.profile_id = profile_id;
    d.firmware_id = xstrdup(dr->firmware_uuid);
    d.software_id = xstrdup(dr->software_uuid);
    d.device_data = xstrdup(dr->device_data);
    int rc = store_device_update(h->store, &d);
    int64_t id = d.id;
    int64_t saved_profile = d.profile_id;
    store_device_fini(&d);
    if (rc < 0) {
        conflict_or_error(rs, rc, "Device with such name already exists!");
        return;
    }
    if (new_profile)
        announce(h, HUB_CHANGE_PROFILE_SAVED, saved_profile);
    announce(h, HUB_CHANGE_DEVICE, id);
    ota_notify(h, id, old_fw, old_sw);
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
        hub_publish_cred(h->hub, HUB_EV_DEVICE_DELETED, d.id, registry_changes(h->reg));
        http__devact_forget(h->devact, d.id); /* no activity writes for a deleted device */
        announce(h, HUB_CHANGE_DEVICE_DELETED, d.id);
        LOG_I("http", "device %s deleted", d.uuid);
        http__resp_json(rs, 200, NULL);
    }
    store_device_fini(&d);
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
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "Required request parameter 'deviceName' for "
                         "method parameter type String is not present");
        return;
    }
    by_name(rq, rs, name);
}

/* DeviceInfo: the device plus its profile's name, customer and live status. */
static json_t *device_info_json(http_server_t *h, const store_device_t *d)
{
    json_t *o = http__device_json(h, d);
    json_object_set_new(o, "customerTitle", json_null());
    json_object_set_new(o, "customerIsPublic", json_false());
    json_object_set_new(o, "deviceProfileName", str_or_null(d->type));
    hub_status_t st = {0};
    json_object_set_new(o, "active",
                        json_boolean(h->hub && hub_status_get(h->hub, d->id, &st) && st.active));
    return o;
}

/* What one device list reads, for each chunk of its answer (page.c). */
typedef struct list_ctx {
    http_server_t *srv;
    char *text, *type;
    const char *sort; /* a literal of the table below */
    bool asc, info;
    int active; /* deviceInfos?active=: -1 any, else 0 or 1 */
    /* With active: the devices are filtered here, so the store's total does not count. The
     * total is one scan; chunks read in order continue a cursor instead of scanning again. */
    int64_t total;              /* -1 until counted */
    int64_t cur_chunk, cur_row; /* next store row to look at */
    int64_t cur_match;          /* matches before it */
} list_ctx_t;

static void list_ctx_free(void *arg)
{
    list_ctx_t *c = arg;
    free(c->text);
    free(c->type);
    free(c);
}

static bool is_active(http_server_t *h, int64_t id)
{
    hub_status_t st = {0};
    return h->hub && hub_status_get(h->hub, id, &st) && st.active;
}

/* Devices with the wanted live status, matches [first, first + size) appended to rows (rows
 * NULL: only counting, first = size = -1). Continues the cursor when it is not past first. */
static int active_scan(list_ctx_t *c, int64_t first, int64_t size, json_t *rows)
{
    if (!rows || c->cur_match > first) {
        c->cur_chunk = c->cur_row = c->cur_match = 0;
    }
    for (;;) {
        store_device_page_t pg;
        memset(&pg, 0, sizeof pg);
        int rc = store_device_list(c->srv->store, c->text, c->type, c->sort, c->asc, c->cur_chunk,
                                   HTTP_PAGE_CHUNK, &pg);
        if (rc < 0)
            return rc;
        bool full = false;
        for (size_t i = (size_t)c->cur_row; i < pg.n && !full; i++) {
            c->cur_row = (int64_t)i + 1;
            if (is_active(c->srv, pg.items[i].id) != (c->active == 1))
                continue;
            if (rows && c->cur_match >= first)
                json_array_append_new(rows, c->info ? device_info_json(c->srv, &pg.items[i])
                                                    : http__device_json(c->srv, &pg.items[i]));
            c->cur_match++;
            full = rows && (int64_t)json_array_size(rows) == size;
        }
        bool last = pg.n < HTTP_PAGE_CHUNK;
        store_device_page_fini(&pg);
        if (full)
            return 0;
        if (last) {
            if (!rows)
                c->total = c->cur_match;
            return 0;
        }
        c->cur_chunk++;
        c->cur_row = 0;
    }
}

static int list_fetch(void *arg, int64_t chunk, int64_t size, json_t *rows, int64_t *total)
{
    list_ctx_t *c = arg;
    if (c->active >= 0) {
        int rc = c->total < 0 ? active_scan(c, -1, -1, NULL) : 0;
        if (rc == 0)
            rc = active_scan(c, chunk * size, size, rows);
        *total = c->total;
        return rc;
    }
    store_device_page_t pg;
    memset(&pg, 0, sizeof pg);
    int rc = store_device_list(c->srv->store, c->text, c->type, c->sort, c->asc, chunk, size, &pg);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < pg.n; i++)
        json_array_append_new(rows, c->info ? device_info_json(c->srv, &pg.items[i])
                                            : http__device_json(c->srv, &pg.items[i]));
    *total = pg.total;
    store_device_page_fini(&pg);
    return 0;
}

static void list(http_req_t *rq, http_resp_t *rs, const char *type, bool info)
{
    bool active = false;
    bool by_active = info && http__query(rq, "active") && *http__query(rq, "active");
    if (by_active && !http__arg_bool(rq, rs, "active", false, &active))
        return;
    static const char *const props[] = {"name", "createdTime", "type", "label",
                                        "deviceProfileName"};
    int64_t page_size, page;
    const char *sort;
    bool asc;
    if (!http__page_args(rq, rs, &page, &page_size) ||
        !http__sort_args(rq, rs, props, sizeof props / sizeof props[0], &sort, &asc))
        return;
    if (sort && strcmp(sort, "deviceProfileName") == 0)
        sort = "type"; /* the type is the profile's name */
    for (size_t i = 0; sort && i < sizeof props / sizeof props[0]; i++)
        if (strcmp(sort, props[i]) == 0)
            sort = props[i]; /* outlives the request: the answer may be streamed */
    const char *text = http__query(rq, "textSearch");
    if (type && type[strspn(type, " \t")] == '\0')
        type = NULL; /* ThingsBoard: a blank type is no filter */
    list_ctx_t *c = xcalloc(1, sizeof *c);
    *c = (list_ctx_t){.srv = rq->srv,
                      .text = text && *text ? xstrdup(text) : NULL,
                      .type = type && *type ? xstrdup(type) : NULL,
                      .sort = sort,
                      .asc = asc,
                      .info = info,
                      .active = by_active ? active : -1,
                      .total = -1};
    http__page_answer(rq, rs, page, page_size, list_fetch, c, list_ctx_free);
}

void http__h_devices_list(http_req_t *rq, http_resp_t *rs)
{
    const char *name = http__query(rq, "deviceName");
    if (name) {
        by_name(rq, rs, name);
        return;
    }
    list(rq, rs, http__query(rq, "type"), false);
}

/* GET /api/tenant/deviceInfos?deviceProfileId=: a device's type is its profile's name, so
 * the profile filter is the store's type filter. */
void http__h_device_infos_list(http_req_t *rq, http_resp_t *rs)
{
    const char *type = http__query(rq, "type");
    if (type && type[strspn(type, " \t")] != '\0') { /* type wins over deviceProfileId */
        list(rq, rs, type, true);
        return;
    }
    const char *pid = http__query(rq, "deviceProfileId");
    if (!pid || !*pid) {
        list(rq, rs, NULL, true);
        return;
    }
    if (!http__is_uuid(pid)) {
        char msg[96];
        snprintf(msg, sizeof msg, "Invalid UUID string: %.40s", pid);
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        return;
    }
    char lower[STORE_UUID_LEN + 1];
    for (size_t i = 0; i <= STORE_UUID_LEN; i++)
        lower[i] = (char)(pid[i] >= 'A' && pid[i] <= 'F' ? pid[i] + 32 : pid[i]);
    store_profile_t p;
    memset(&p, 0, sizeof p);
    int rc = store_profile_get_by_uuid(rq->srv->store, lower, &p);
    if (rc == -ENOENT) { /* ThingsBoard answers an empty page for an unknown profile */
        int64_t page, page_size;
        if (http__page_args(rq, rs, &page, &page_size))
            http__resp_json(rs, 200, http__page_json(json_array(), 0, page, page_size));
    } else if (rc < 0) {
        http__resp_store_error(rs, rc);
    } else {
        list(rq, rs, p.name, true);
    }
    store_profile_fini(&p);
}
