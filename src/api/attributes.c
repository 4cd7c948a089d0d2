/* attributes.c — attribute requests (§3.3) and the shared-attribute subscription (§3.4).
 *
 * One subscription per device per shard (TB: max_concurrent_sessions_per_device = 1): a new
 * registration replaces the old relation, which is told with a final 2.02. The first answer
 * carries every current SHARED attribute; later notifications carry what the hub publishes
 * (changed keys, or {"deleted":[...]}). Store reads are synchronous: SQLite in WAL mode serves
 * them beside the writer in well under a millisecond for one device's attributes. Values are
 * written by values/render.h, as REST writes them, so a device and an operator read the
 * same text for one attribute.
 */
#include "api/api_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "values/render.h"

#include <stdlib.h>
#include <string.h>

/* Query item "name=k1,k2" as TB reads it: String.split("=") must give exactly two parts
 * (Java drops trailing empty parts), then the value is split on ',' (uplink_keys_add_csv). */
static void collect_keys(const coap_request_t *req, const char *name, uplink_keys_t *out)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->n_query; i++) {
        const char *q = (const char *)req->query[i].p;
        size_t len = req->query[i].len;
        while (len && q[len - 1] == '=')
            len--;
        const char *eq = memchr(q, '=', len);
        if (!eq || memchr(eq + 1, '=', len - (size_t)(eq + 1 - q)))
            continue;
        if ((size_t)(eq - q) != nl || memcmp(q, name, nl) != 0)
            continue;
        uplink_keys_add_csv(out, eq + 1, (size_t)(q + len - (eq + 1)));
    }
}

void api__attributes_get(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                         int64_t device_id)
{
    uplink_keys_t ck = {0}, sk = {0};
    collect_keys(req, "clientKeys", &ck);
    collect_keys(req, "sharedKeys", &sk);
    values_buf_t b = {0};
    int rc = uplink_attributes_read(a->store, device_id, &ck, &sk, &b);
    uplink_keys_fini(&ck);
    uplink_keys_fini(&sk);
    if (rc < 0) {
        api__store_failed(a, device_id, "attribute read", rc);
        api__respond_err(x, rc);
    } else if (rc == 1) {
        coap_exchange_respond(x, COAP_NOT_FOUND, COAP_CF_NONE, NULL, 0);
    } else {
        coap_exchange_respond(x, COAP_CONTENT, api__resp_cf(req), (const uint8_t *)b.p, b.len);
    }
    values_buf_fini(&b);
}

void api__attributes_subscribe(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                               int64_t device_id)
{
    store_kv_list_t l = {0};
    int rc = store_attr_get(a->store, device_id, SCOPE_SHARED, NULL, 0, &l);
    if (rc < 0) {
        store_kv_list_fini(&l);
        api__store_failed(a, device_id, "shared attribute read", rc);
        api__respond_err(x, rc); /* not 2.xx: the registration is dropped */
        return;
    }
    values_buf_t b = {0};
    values_kvs_write_object(&b, l.items, l.n, VALUES_TYPED);
    store_kv_list_fini(&l);

    /* Replace an older subscription (another token or peer). Cancelling ends it at once and
     * may free the device entry, so look it up again afterwards. */
    api_dev_t *d = api__dev_find(a, device_id);
    if (d && d->attr_obs)
        coap_observer_cancel(d->attr_obs, COAP_DELETED);
    d = api__dev_get(a, device_id);
    /* The relation goes live when the 2.05 below is sent, within this call, so attr_obs
     * never points at a relation that could vanish without on_observe_end. */
    coap_observer_t *o = coap_exchange_observe(x, d);
    if (o) {
        d->attr_obs = o;
        d->attr_seq = req->owner_seq;
        api__activity_observations(d, +1);
        d->attr_cf = api__resp_cf(req);
        api__dev_drop_held(d); /* the answer below carries every current value */
    } else {
        LOG_D("api", "device %lld: observer cap reached, answering without Observe",
              (long long)device_id);
    }
    coap_exchange_respond(x, COAP_CONTENT, api__resp_cf(req), (const uint8_t *)b.p, b.len);
    values_buf_fini(&b);
    api__dev_maybe_free(d);
}

void api__attributes_send(api_dev_t *d, const char *json)
{
    if (!d->attr_obs)
        return;
    /* A power-saving device's ACK or silence tells us whether it is awake (power.c). */
    void *cookie = power_saving(&d->power) ? &api__power_cookie : NULL;
    if (api__notify(d, d->attr_obs, d->attr_cf, json, cookie) < 0)
        LOG_D("api", "device %lld: attribute notification dropped (queue full)", (long long)d->id);
}

void api__attributes_notify(api_shard_t *a, int64_t device_id, bool deleted, const char *json)
{
    api_dev_t *d = api__dev_find(a, device_id);
    if (!d || !d->attr_obs)
        return;
    char *flush;
    if (api__power_attrs(d, deleted, json, &flush)) {
        /* held for a sleeping device, or merged with what was held and sent now */
        if (flush)
            api__attributes_send(d, flush);
        free(flush);
        return;
    }
    api__attributes_send(d, json);
}

void api__attributes_flush_held(api_dev_t *d)
{
    if (!api__power_held_ready(d))
        return;
    char *body = api__power_held_take(d);
    if (body)
        api__attributes_send(d, body);
    free(body);
}
