/* rest_profiles.c — device profiles over REST, as ThingsBoard's DeviceProfileController:
 * save (create or update), get, delete, list, infos, the default profile and making one the
 * default.
 *
 * The body is validated by profile_body.c; here are the checks that need the store
 * (uniqueness of name and provision key with ThingsBoard's messages, one default profile, OTA
 * packages that exist, are of the right kind and belong to the profile) and the one place
 * where a saved or deleted profile is announced (hub_change_publish), so that every cache of
 * provisioning keys, CA certificates, power-saving settings and OTA assignments hears of it
 * before the client gets its answer.
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

#define MSG_NAME_TAKEN "Device profile with such name already exists!"

static void announce(http_server_t *h, hub_change_t what, int64_t id)
{
    if (h->hub)
        hub_change_publish(h->hub, what, id);
}

/* The profile a {id} path parameter names: 400 for a malformed UUID, 404 when unknown. */
static bool lookup(http_req_t *rq, http_resp_t *rs, const char *uuid, store_profile_t *p)
{
    memset(p, 0, sizeof *p);
    char lower[STORE_UUID_LEN + 1];
    if (!http__path_uuid(rs, uuid, lower))
        return false;
    int rc = store_profile_get_by_uuid(rq->srv->store, lower, p);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return false;
    }
    return true;
}

static void answer(http_req_t *rq, http_resp_t *rs, const store_profile_t *p, bool info)
{
    http__resp_json(rs, 200, http__profile_json(rq->srv->tenant_id, p, info));
}

int http__ota_assign_check(http_server_t *h, const char *uuid, bool firmware, int64_t profile_id,
                           char *msg, size_t cap)
{
    const char *kind = firmware ? "firmware" : "software";
    store_ota_t o;
    memset(&o, 0, sizeof o);
    int rc = store_ota_get_by_uuid(h->store, uuid, &o);
    if (rc == -ENOENT) {
        snprintf(msg, cap, "Can't assign non-existent %s!", kind);
        return -EINVAL;
    }
    if (rc < 0)
        return rc;
    if (!o.type || strcmp(o.type, firmware ? "FIRMWARE" : "SOFTWARE") != 0) {
        snprintf(msg, cap, "Can't assign %s with type: %s", kind, o.type ? o.type : "");
        rc = -EINVAL;
    } else if (!o.has_data && !o.url) {
        snprintf(msg, cap, "Can't assign %s with empty data!", kind);
        rc = -EINVAL;
    } else if (o.profile_id != profile_id) {
        snprintf(msg, cap, "Can't assign %s with different deviceProfile!", kind);
        rc = -EINVAL;
    }
    store_ota_fini(&o);
    return rc;
}

/* The checks ThingsBoard's validator and unique constraints make, in its order; 0, or the
 * answer is in rs. self_id is the profile being updated (0 on create). */
static int check_unique(http_server_t *h, http_resp_t *rs, const http_profile_req_t *pr,
                        int64_t self_id)
{
    store_profile_t other;
    memset(&other, 0, sizeof other);
    int rc;
    if (pr->is_default && (rc = store_profile_get_default(h->store, &other)) != -ENOENT) {
        bool another = rc == 0 && other.id != self_id;
        store_profile_fini(&other);
        if (rc < 0) {
            http__resp_store_error(rs, rc);
            return rc;
        }
        if (another) {
            http__resp_error(rs, HTTP_E_BAD_PARAMS,
                             "Another default device profile is present in scope of current "
                             "tenant!");
            return -EINVAL;
        }
    }
    if ((rc = store_profile_get_by_name(h->store, pr->name, &other)) != -ENOENT) {
        bool taken = rc == 0 && other.id != self_id;
        store_profile_fini(&other);
        if (rc < 0 || taken) {
            if (rc < 0)
                http__resp_store_error(rs, rc);
            else
                http__resp_error(rs, HTTP_E_BAD_PARAMS, MSG_NAME_TAKEN);
            return rc < 0 ? rc : -EINVAL;
        }
    }
    if (pr->provision_key &&
        (rc = store_profile_get_by_provision_key(h->store, pr->provision_key, &other)) != -ENOENT) {
        bool taken = rc == 0 && other.id != self_id;
        store_profile_fini(&other);
        if (rc < 0 || taken) {
            if (rc < 0)
                http__resp_store_error(rs, rc);
            else
                http__resp_error(rs, HTTP_E_BAD_PARAMS,
                                 strcmp(pr->provision_type, "X509_CERTIFICATE_CHAIN") == 0
                                     ? "Device profile with such certificate already exists!"
                                     : "Device profile with such provision device key already "
                                       "exists!");
            return rc < 0 ? rc : -EINVAL;
        }
    }
    char msg[128];
    for (int fw = 1; fw >= 0; fw--) {
        const char *ota = fw ? pr->firmware_uuid : pr->software_uuid;
        /* A profile being created owns no package yet, so any would be "different". */
        if (ota && (rc = http__ota_assign_check(h, ota, fw, self_id, msg, sizeof msg)) < 0) {
            if (rc == -EINVAL)
                http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
            else
                http__resp_store_error(rs, rc);
            return rc;
        }
    }
    return 0;
}

void http__h_profile_save(http_req_t *rq, http_resp_t *rs)
{
    http_server_t *h = rq->srv;
    char msg[300];
    json_t *j = http__json_parse(rq->body, rq->body_len);
    http_profile_req_t pr;
    int rc = http__profile_from_json(j, &pr, msg, sizeof msg);
    json_decref(j);
    if (rc < 0) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        return;
    }
    store_profile_t p;
    memset(&p, 0, sizeof p);
    if (pr.uuid) {
        if (!lookup(rq, rs, pr.uuid, &p))
            goto out;
        /* Optimistic locking as ThingsBoard: a stale version is refused, none is not. */
        if (pr.version && pr.version != p.version) {
            http__resp_error(rs, HTTP_E_VERSION, NULL);
            goto out;
        }
    }
    if (check_unique(h, rs, &pr, p.id) < 0)
        goto out;
    bool created = !pr.uuid;
    /* ThingsBoard's isFirmwareChanged/isSoftwareChanged: the devices that follow the profile
     * are told of a changed package after the save (ota_profile_assignment_changed). */
    bool fw_changed = strcmp(p.firmware_id ? p.firmware_id : "",
                             pr.firmware_uuid ? pr.firmware_uuid : "") != 0;
    bool sw_changed = strcmp(p.software_id ? p.software_id : "",
                             pr.software_uuid ? pr.software_uuid : "") != 0;
    free(p.name);
    free(p.provision_type);
    free(p.provision_key);
    free(p.firmware_id);
    free(p.software_id);
    free(p.data);
    p.name = pr.name;
    p.is_default = pr.is_default;
    p.provision_type = pr.provision_type;
    p.provision_key = pr.provision_key;
    p.firmware_id = pr.firmware_uuid;
    p.software_id = pr.software_uuid;
    p.data = pr.data;
    free(pr.uuid);
    memset(&pr, 0, sizeof pr); /* p owns the other strings now */
    rc = created ? store_profile_create(h->store, &p) : store_profile_update(h->store, &p);
    if (rc == ERR_CONFLICT) { /* a concurrent save took the name or key since the checks */
        http__resp_error(rs, HTTP_E_BAD_PARAMS, MSG_NAME_TAKEN);
        goto out;
    }
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        goto out;
    }
    int64_t id = p.id;
    announce(h, HUB_CHANGE_PROFILE_SAVED, id);
    if (!created && (fw_changed || sw_changed) &&
        (rc = ota_profile_assignment_changed(h->store, h->hub, id, fw_changed, sw_changed)) < 0)
        LOG_W("http", "device profile %s: OTA assignment not sent to every device: %s", p.uuid,
              err_str(rc));
    LOG_I("http", "device profile %s %s", p.uuid, created ? "created" : "updated");
    store_profile_fini(&p);
    memset(&p, 0, sizeof p);
    /* Read back: the store set the version, and an update of a renamed profile renamed the
     * type of its devices. */
    if ((rc = store_profile_get(h->store, id, &p)) < 0) {
        http__resp_store_error(rs, rc);
        goto out;
    }
    answer(rq, rs, &p, false);
out:
    store_profile_fini(&p);
    http__profile_req_fini(&pr);
}

void http__h_profile_get(http_req_t *rq, http_resp_t *rs)
{
    store_profile_t p;
    if (!lookup(rq, rs, rq->params[0], &p))
        return;
    answer(rq, rs, &p, false);
    store_profile_fini(&p);
}

void http__h_profile_info_get(http_req_t *rq, http_resp_t *rs)
{
    store_profile_t p;
    if (!lookup(rq, rs, rq->params[0], &p))
        return;
    answer(rq, rs, &p, true);
    store_profile_fini(&p);
}

void http__h_profile_info_default(http_req_t *rq, http_resp_t *rs)
{
    store_profile_t p;
    memset(&p, 0, sizeof p);
    int rc = store_profile_get_default(rq->srv->store, &p);
    if (rc < 0)
        http__resp_store_error(rs, rc);
    else
        answer(rq, rs, &p, true);
    store_profile_fini(&p);
}

void http__h_profile_delete(http_req_t *rq, http_resp_t *rs)
{
    store_profile_t p;
    if (!lookup(rq, rs, rq->params[0], &p))
        return;
    http_server_t *h = rq->srv;
    /* The store refuses both too (-EBUSY, ERR_CONFLICT); asking first gives ThingsBoard's
     * messages without guessing which refusal a code meant. */
    int rc = p.is_default ? -EBUSY : store_profile_delete(h->store, p.id);
    if (rc == -EBUSY) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "Deletion of Default Device Profile is prohibited!");
    } else if (rc == ERR_CONFLICT) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "The device profile referenced by the devices cannot be deleted!");
    } else if (rc < 0) {
        http__resp_store_error(rs, rc);
    } else {
        announce(h, HUB_CHANGE_PROFILE_DELETED, p.id);
        LOG_I("http", "device profile %s deleted", p.uuid);
        /* The store dropped the profile's OTA package rows with it: their images go too. */
        size_t n = 0;
        if (h->cfg.ota && (rc = ota_files_sweep(h->cfg.ota, h->store, false, &n)) < 0)
            LOG_W("http", "OTA images of deleted packages kept until the next start: %s",
                  err_str(rc));
        http__resp_json(rs, 200, NULL);
    }
    store_profile_fini(&p);
}

void http__h_profile_set_default(http_req_t *rq, http_resp_t *rs)
{
    store_profile_t p;
    if (!lookup(rq, rs, rq->params[0], &p))
        return;
    http_server_t *h = rq->srv;
    int64_t id = p.id;
    store_profile_fini(&p);
    memset(&p, 0, sizeof p);
    int rc = store_profile_set_default(h->store, id);
    if (rc == 0)
        rc = store_profile_get(h->store, id, &p);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return;
    }
    announce(h, HUB_CHANGE_PROFILE_SAVED, id);
    answer(rq, rs, &p, false);
    store_profile_fini(&p);
}

/* Does profile p have the transport type t? (deviceProfileInfos?transportType=) */
static bool has_transport(const store_profile_t *p, const char *t)
{
    json_t *info = http__profile_json("", p, true);
    const char *pt = json_string_value(json_object_get(info, "transportType"));
    bool yes = pt && strcmp(pt, t) == 0;
    json_decref(info);
    return yes;
}

/* What one profile list reads, for each chunk of its answer (page.c). */
typedef struct list_ctx {
    http_server_t *srv;
    char *text, *transport;
    const char *sort; /* a literal of list()'s table */
    bool asc, info;
} list_ctx_t;

static void list_ctx_free(void *arg)
{
    list_ctx_t *c = arg;
    free(c->text);
    free(c->transport);
    free(c);
}

static int list_fetch(void *arg, int64_t chunk, int64_t size, json_t *rows, int64_t *total)
{
    list_ctx_t *c = arg;
    store_profile_page_t pg;
    memset(&pg, 0, sizeof pg);
    int rc;
    if (c->transport) {
        /* The transport type lives in the profile's data, not in a column: filter a tenant's
         * profiles (tens, rarely hundreds; at most 10000 are looked at) and cut the chunk. */
        rc = store_profile_list(c->srv->store, c->text, c->sort, c->asc, 0, 10000, &pg);
        *total = 0;
        for (size_t i = 0; rc == 0 && i < pg.n; i++) {
            if (!has_transport(&pg.items[i], c->transport))
                continue;
            if ((*total)++ / size == chunk)
                json_array_append_new(rows,
                                      http__profile_json(c->srv->tenant_id, &pg.items[i], c->info));
        }
    } else {
        rc = store_profile_list(c->srv->store, c->text, c->sort, c->asc, chunk, size, &pg);
        for (size_t i = 0; rc == 0 && i < pg.n; i++)
            json_array_append_new(rows,
                                  http__profile_json(c->srv->tenant_id, &pg.items[i], c->info));
        *total = pg.total;
    }
    store_profile_page_fini(&pg);
    return rc;
}

static void list(http_req_t *rq, http_resp_t *rs, bool info)
{
    static const char *const props[] = {"name", "createdTime", "isDefault"};
    int64_t page, page_size;
    const char *sort;
    bool asc;
    if (!http__page_args(rq, rs, &page, &page_size) ||
        !http__sort_args(rq, rs, props, sizeof props / sizeof props[0], &sort, &asc))
        return;
    for (size_t i = 0; sort && i < sizeof props / sizeof props[0]; i++)
        if (strcmp(sort, props[i]) == 0)
            sort = props[i]; /* outlives the request: the answer may be streamed */
    const char *text = http__query(rq, "textSearch");
    const char *transport = info ? http__query(rq, "transportType") : NULL;
    list_ctx_t *c = xcalloc(1, sizeof *c);
    *c = (list_ctx_t){.srv = rq->srv,
                      .text = text && *text ? xstrdup(text) : NULL,
                      .transport = transport && *transport ? xstrdup(transport) : NULL,
                      .sort = sort,
                      .asc = asc,
                      .info = info};
    http__page_answer(rq, rs, page, page_size, list_fetch, c, list_ctx_free);
}

void http__h_profiles_list(http_req_t *rq, http_resp_t *rs)
{
    list(rq, rs, false);
}

void http__h_profile_infos_list(http_req_t *rq, http_resp_t *rs)
{
    list(rq, rs, true);
}

/* GET /api/deviceProfile/names[?activeOnly=true]: EntityInfo {id, name} of every profile
 * (only those some device uses with activeOnly), sorted by name; what ThingsBoard's UI fills
 * its profile filters with. */
void http__h_profile_names(http_req_t *rq, http_resp_t *rs)
{
    http_server_t *h = rq->srv;
    bool only_used;
    if (!http__arg_bool(rq, rs, "activeOnly", false, &only_used))
        return;
    store_profile_page_t pg;
    memset(&pg, 0, sizeof pg);
    int rc = store_profile_list(h->store, NULL, "name", true, 0, 10000, &pg);
    json_t *out = json_array();
    for (size_t i = 0; rc == 0 && i < pg.n; i++) {
        if (only_used) {
            int64_t *ids = NULL;
            size_t n = 0;
            rc = store_device_ids_by_profile(h->store, pg.items[i].id, NULL, &ids, &n);
            free(ids);
            if (rc < 0 || n == 0)
                continue;
        }
        json_array_append_new(out, json_pack("{s:{s:s, s:s}, s:s}", "id", "entityType",
                                             "DEVICE_PROFILE", "id", pg.items[i].uuid, "name",
                                             pg.items[i].name ? pg.items[i].name : ""));
    }
    if (rc < 0) {
        json_decref(out);
        http__resp_store_error(rs, rc);
    } else {
        http__resp_json(rs, 200, out);
    }
    store_profile_page_fini(&pg);
}

int http__profile_ensure_default(http_server_t *h)
{
    store_profile_t p;
    memset(&p, 0, sizeof p);
    int rc = store_profile_get_default(h->store, &p);
    store_profile_fini(&p);
    if (rc != -ENOENT)
        return rc;
    /* ThingsBoard's createDefaultDeviceProfile: "default", DEFAULT transport, no
     * provisioning. The store may have made it already (its migration does for old data). */
    json_t *body = json_pack("{s:s, s:s, s:b}", "name", "default", "description",
                             "Default device profile", "default", 1);
    char msg[200];
    http_profile_req_t pr;
    rc = http__profile_from_json(body, &pr, msg, sizeof msg);
    json_decref(body);
    ASSERT(rc == 0);
    p = (store_profile_t){
        .name = pr.name, .is_default = true, .provision_type = pr.provision_type, .data = pr.data};
    rc = store_profile_create(h->store, &p);
    if (rc == 0)
        announce(h, HUB_CHANGE_PROFILE_SAVED, p.id);
    http__profile_req_fini(&pr);
    return rc;
}
