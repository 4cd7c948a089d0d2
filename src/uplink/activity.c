/* activity.c — the connectivity attributes of spec §9 (active, lastConnectTime,
 * lastDisconnectTime, lastActivityTime as SERVER_SCOPE attributes) and the hub reports that
 * go with them, for every transport. See uplink.h. */
#include "uplink/uplink.h"

#include <string.h>

static void put_long(store_batch_t *b, int64_t dev, const char *key, int64_t v, int64_t now)
{
    store_kv_t kv = {.key = (char *)key, .type = STORE_LONG, .l = v, .ts = now};
    store_batch_attr(b, dev, SCOPE_SERVER, &kv);
}

static void put_bool(store_batch_t *b, int64_t dev, const char *key, bool v, int64_t now)
{
    store_kv_t kv = {.key = (char *)key, .type = STORE_BOOL, .b = v, .ts = now};
    store_batch_attr(b, dev, SCOPE_SERVER, &kv);
}

store_batch_t *uplink_activity_request(uplink_activity_t *st, int64_t device_id, hub_transport_t t,
                                       int64_t mono, int64_t wall, int64_t report_ms,
                                       hub_status_report_t *rep)
{
    memset(rep, 0, sizeof *rep);
    if (t != st->transport) {
        st->transport = t;
        rep->transport = t;
    }
    store_batch_t *b = NULL;
    if (!st->active) {
        st->active = true;
        rep->active_delta = 1;
        b = store_batch_new();
        put_bool(b, device_id, "active", true, wall);
        put_long(b, device_id, "lastConnectTime", wall, wall);
    }
    if (b || st->last_report_ms == 0 || mono - st->last_report_ms >= report_ms) {
        if (!b)
            b = store_batch_new();
        put_long(b, device_id, "lastActivityTime", wall, wall);
        st->last_report_ms = mono;
        rep->activity_ms = wall;
        /* The transport rides along: another owner (HTTP beside a CoAP shard) may have changed
         * what the hub shows since this one last reported, and the report costs nothing more. */
        rep->transport = t;
    }
    return b;
}

store_batch_t *uplink_activity_inactive(uplink_activity_t *st, int64_t device_id, int64_t wall,
                                        hub_status_report_t *rep)
{
    memset(rep, 0, sizeof *rep);
    if (!st->active)
        return NULL;
    st->active = false;
    rep->active_delta = -1;
    store_batch_t *b = store_batch_new();
    put_bool(b, device_id, "active", false, wall);
    put_long(b, device_id, "lastDisconnectTime", wall, wall);
    return b;
}
