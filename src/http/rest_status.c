/* rest_status.c — GET /api/coaphub/devices/status?ids=<uuid>,<uuid>...: the live status of
 * several devices in one request (the device list asks once per page load, then follows the
 * all-devices event stream).
 *
 * Answer: {"<uuid>":{"active":..,"transport":"coap"|"coaps"|"http"|null,"observations":n,
 * "lastActivityTime":ms},...}. The hub's status table (hub.h) is the source for devices seen
 * since the server started; for the others (and unknown ids) the status is inactive, no
 * transport, no observations, with lastActivityTime from the stored server attribute if any.
 * The id list is capped so one request cannot make the store do unbounded work.
 */
#include "http/http_int.h"

#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { STATUS_MAX_IDS = 200 };

/* lastActivityTime as stored (server scope), or 0. */
static int64_t stored_activity(store_t *s, int64_t device_id)
{
    const char *keys[] = {"lastActivityTime"};
    store_kv_list_t l = {0};
    int64_t v = 0;
    if (store_attr_get(s, device_id, SCOPE_SERVER, keys, 1, &l) == 0 && l.n == 1 &&
        l.items[0].type == STORE_LONG)
        v = l.items[0].l;
    store_kv_list_fini(&l);
    return v;
}

static json_t *status_json(const hub_status_t *st)
{
    const char *t = hub_transport_name(st->transport);
    return json_pack("{s:b,s:o,s:i,s:I}", "active", st->active, "transport",
                     t ? json_string(t) : json_null(), "observations", st->observations,
                     "lastActivityTime", (json_int_t)st->last_activity_ms);
}

void http__h_device_status(http_req_t *rq, http_resp_t *rs)
{
    const char *ids = http__query(rq, "ids");
    if (!ids || !*ids) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "ids is required");
        return;
    }
    http_server_t *h = rq->srv;
    json_t *out = json_object();
    char *copy = xstrdup(ids);
    char *save = NULL;
    size_t n = 0;
    for (char *id = strtok_r(copy, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
        while (*id == ' ')
            id++;
        if (!http__is_uuid(id) || ++n > STATUS_MAX_IDS) {
            json_decref(out);
            free(copy);
            http__resp_error(rs, HTTP_E_BAD_PARAMS,
                             n > STATUS_MAX_IDS ? "too many ids (at most 200)"
                                                : "ids must be device UUIDs separated by commas");
            return;
        }
        hub_status_t st = {0};
        store_device_t d = {0};
        int rc = store_device_get_by_uuid(h->store, id, &d);
        if (rc < 0 && rc != -ENOENT) { /* not "never seen": the store could not say */
            json_decref(out);
            free(copy);
            http__resp_store_error(rs, rc);
            return;
        }
        if (rc == 0) {
            if (!hub_status_get(h->hub, d.id, &st) || st.last_activity_ms == 0)
                st.last_activity_ms = stored_activity(h->store, d.id);
            store_device_fini(&d);
        }
        json_object_set_new(out, id, status_json(&st));
    }
    free(copy);
    http__resp_json(rs, 200, out);
}
