/* credentials.c — applying a device's new credentials, for device creation (rest_devices.c)
 * and the credentials save (rest_credentials.c).
 *
 * Order: the store first (it enforces platform-wide uniqueness of credentialsId), then the
 * in-memory registry, then the hub, which tells the shards to close the device's sessions.
 * The registry is only touched after the store accepted the change, so the cache never holds
 * a credential the database refused.
 */
#include "http/http_int.h"

#include "core/xmalloc.h"

#include <string.h>

int http__cred_apply(http_server_t *h, int64_t device_id, const http_cred_req_t *c,
                     store_cred_t *saved)
{
    memset(saved, 0, sizeof *saved);
    saved->device_id = device_id;
    saved->type = c->type;
    saved->cred_id = xstrdup(c->cred_id);
    saved->cred_value = xstrdup(c->cred_value);
    int rc = store_cred_set(h->store, saved);
    if (rc < 0) {
        store_cred_fini(saved);
        return rc;
    }
    http__cred_published(h, device_id, c);
    return 0;
}

void http__cred_published(http_server_t *h, int64_t device_id, const http_cred_req_t *c)
{
    registry_set_cred(h->reg, device_id, c->type, c->cred_id, c->cred_value);
    hub_publish_cred(h->hub, HUB_EV_CREDENTIALS_CHANGED, device_id, registry_changes(h->reg));
}
