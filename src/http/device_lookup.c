/* device_lookup.c — the device a REST path names by its UUID: checked (ThingsBoard's 400
 * "Invalid UUID string"), lower-cased, loaded from the store or, for handlers that need only
 * the id, answered from the device cache. Used by every handler under /api/device/{id}/... and
 * /api/plugins/telemetry/DEVICE/{id}/...; uses no handler. */
#include "http/http_int.h"

#include <stdio.h>
#include <string.h>

/* ThingsBoard's UUIDs are lower case; a client may send upper case. uuid is a valid UUID. */
static void uuid_lower(const char *uuid, char lower[static STORE_UUID_LEN + 1])
{
    for (size_t i = 0; i <= STORE_UUID_LEN; i++)
        lower[i] = (char)(uuid[i] >= 'A' && uuid[i] <= 'F' ? uuid[i] + 32 : uuid[i]);
}

bool http__path_uuid(http_resp_t *rs, const char *uuid, char lower[static STORE_UUID_LEN + 1])
{
    if (!http__is_uuid(uuid)) {
        char msg[96];
        snprintf(msg, sizeof msg, "Invalid UUID string: %.40s", uuid ? uuid : "");
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        return false;
    }
    uuid_lower(uuid, lower);
    return true;
}

bool http__device_lookup(http_req_t *rq, http_resp_t *rs, const char *uuid, store_device_t *d)
{
    memset(d, 0, sizeof *d);
    char lower[STORE_UUID_LEN + 1];
    if (!http__path_uuid(rs, uuid, lower))
        return false;
    int rc = store_device_get_by_uuid(rq->srv->store, lower, d);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return false;
    }
    return true;
}

bool http__device_id_lookup(http_req_t *rq, http_resp_t *rs, const char *uuid, int64_t *id)
{
    http_dev_cache_t *c = rq->srv->dev_cache;
    char lower[STORE_UUID_LEN + 1];
    if (c && http__is_uuid(uuid)) {
        uuid_lower(uuid, lower);
        if (http__dev_cache_get(c, lower, id))
            return true;
    }
    uint64_t gen = c ? http__dev_cache_gen(c) : 0; /* before the store read */
    store_device_t d;
    if (!http__device_lookup(rq, rs, uuid, &d))
        return false;
    *id = d.id;
    if (c)
        http__dev_cache_put(c, d.uuid, d.id, gen);
    store_device_fini(&d);
    return true;
}
