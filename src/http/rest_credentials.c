/* rest_credentials.c — device credentials (§8.4): read, and update-only save.
 *
 * A save is validated first (body.c canonicalises X.509 and hashes it), then applied by
 * credentials.c (store, then registry, then the shards close the device's sessions).
 */
#include "http/http_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

json_t *http__cred_json(const store_cred_t *c, const char *device_uuid)
{
    json_t *o = json_pack("{s:{s:s}, s:I, s:{s:s,s:s}, s:s, s:s, s:I}", "id", "id", c->uuid,
                          "createdTime", (json_int_t)c->created_ms, "deviceId", "entityType",
                          "DEVICE", "id", device_uuid, "credentialsType",
                          store_cred_type_name(c->type), "credentialsId",
                          c->cred_id ? c->cred_id : "", "version", (json_int_t)c->version);
    if (!o)
        return NULL;
    json_object_set_new(o, "credentialsValue",
                        c->cred_value ? json_string(c->cred_value) : json_null());
    return o;
}

void http__h_cred_get(http_req_t *rq, http_resp_t *rs)
{
    store_device_t d;
    if (!http__device_lookup(rq, rs, rq->params[0], &d))
        return;
    store_cred_t c;
    memset(&c, 0, sizeof c);
    int rc = store_cred_get_by_device(rq->srv->store, d.id, &c);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
    } else {
        json_t *o = http__cred_json(&c, d.uuid);
        if (o)
            http__resp_json(rs, 200, o);
        else
            http__resp_error(rs, HTTP_E_GENERAL, NULL);
        store_cred_fini(&c);
    }
    store_device_fini(&d);
}

void http__h_cred_save(http_req_t *rq, http_resp_t *rs)
{
    char msg[300];
    json_t *j = http__json_parse(rq->body, rq->body_len);
    http_cred_req_t cr;
    store_cred_t cur, saved;
    store_device_t d;
    memset(&cur, 0, sizeof cur);
    memset(&d, 0, sizeof d);
    if (http__cred_from_json(j, &cr, msg, sizeof msg) < 0) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        json_decref(j);
        return;
    }
    if (!cr.id) {
        /* TB treats a save without id as a create, and every device already has a row. */
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Credentials for this device are already "
                                                "specified!");
        goto out;
    }
    if (!cr.device_uuid || !http__is_uuid(cr.device_uuid)) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "Can't assign device credentials to non-existent device!");
        goto out;
    }
    http_resp_t tmp = {0};
    if (!http__device_lookup(rq, &tmp, cr.device_uuid, &d)) {
        if (tmp.status == 404) {
            free(tmp.body);
            http__resp_error(rs, HTTP_E_BAD_PARAMS,
                             "Can't assign device credentials to non-existent device!");
        } else { /* the store failed: its answer (503 while the database is down) */
            free(rs->body);
            *rs = tmp;
        }
        goto out;
    }
    int rc = store_cred_get_by_device(rq->srv->store, d.id, &cur);
    if (rc < 0 && rc != -ENOENT) {
        http__resp_store_error(rs, rc);
        goto out;
    }
    if (rc < 0 || strcasecmp(cur.uuid, cr.id) != 0) {
        http__resp_error(rs, HTTP_E_NOT_FOUND, NULL);
        goto out;
    }
    json_t *ver = json_object_get(j, "version");
    if (json_is_integer(ver) && json_integer_value(ver) != cur.version) {
        http__resp_error(rs, HTTP_E_VERSION, NULL);
        goto out;
    }
    rc = http__cred_apply(rq->srv, d.id, &cr, &saved);
    if (rc == ERR_CONFLICT) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "Device credentials are already assigned to another device!");
    } else if (rc < 0) {
        http__resp_store_error(rs, rc);
    } else {
        LOG_I("http", "credentials of device %s changed (%s)", d.uuid,
              store_cred_type_name(cr.type));
        json_t *o = http__cred_json(&saved, d.uuid);
        if (o)
            http__resp_json(rs, 200, o);
        else
            http__resp_error(rs, HTTP_E_GENERAL, NULL);
        store_cred_fini(&saved);
    }
out:
    if (cur.cred_id || cur.cred_value)
        store_cred_fini(&cur);
    if (d.name)
        store_device_fini(&d);
    http__cred_req_fini(&cr);
    json_decref(j);
}
