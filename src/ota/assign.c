/* assign.c — an assignment made known to devices, as ThingsBoard's OtaPackageStateService.
 *
 * ThingsBoard sends, per device whose effective package changed: telemetry target_fw_title,
 * target_fw_version, target_fw_ts and fw_state QUEUED; then (from its queue, moments later)
 * the shared attributes fw_title, fw_version, fw_tag, fw_size, fw_checksum_algorithm,
 * fw_checksum — or fw_url for a package kept as a URL — which a device observing its
 * attributes receives as an update. A removed assignment deletes those attributes. We have no
 * queue in between: both go into one store batch per device, committed with
 * store_submit_wait, and only then are the attribute observers told through the hub, so a
 * device never sees an update that could still be lost. ThingsBoard's intermediate
 * fw_state INITIATED (its queue picked the message up) is not written; the device's own
 * reports (DOWNLOADING ... UPDATED) are ordinary telemetry.
 */
#include "ota/ota.h"

#include "core/clock.h"
#include "values/render.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shared attributes an assignment sets or deletes, by suffix. */
static const char *const attr_suffix[] = {
    "title", "version", "tag", "size", "checksum_algorithm", "checksum", "url", "ts"};
enum { N_ATTR = sizeof attr_suffix / sizeof attr_suffix[0] };

typedef struct kvs {
    store_kv_t items[N_ATTR];
    char keys[N_ATTR][40];
    size_t n;
} kvs_t;

static store_kv_t *kv_add(kvs_t *k, const char *prefix, const char *suffix, int64_t ts)
{
    store_kv_t *kv = &k->items[k->n];
    snprintf(k->keys[k->n], sizeof k->keys[k->n], "%s_%s", prefix, suffix);
    memset(kv, 0, sizeof *kv);
    kv->key = k->keys[k->n];
    kv->ts = ts;
    k->n++;
    return kv;
}

static void kv_str(kvs_t *k, const char *prefix, const char *suffix, const char *v, int64_t ts)
{
    store_kv_t *kv = kv_add(k, prefix, suffix, ts);
    kv->type = STORE_STRING;
    kv->s = (char *)v;
}

static void kv_long(kvs_t *k, const char *prefix, const char *suffix, int64_t v, int64_t ts)
{
    store_kv_t *kv = kv_add(k, prefix, suffix, ts);
    kv->type = STORE_LONG;
    kv->l = v;
}

static void publish_deleted(hub_t *h, int64_t device_id, const kvs_t *del)
{
    if (!h || del->n == 0)
        return;
    values_buf_t b = {0};
    values_buf_puts(&b, "{\"deleted\":");
    values_kvs_write_keys(&b, del->items, del->n);
    values_buf_put(&b, "}", 1);
    hub_publish(h, HUB_EV_SHARED_DELETED, device_id, b.p);
    values_buf_fini(&b);
}

int ota_device_apply(store_t *s, hub_t *h, int64_t device_id, ota_type_t type,
                     const char *package_uuid)
{
    const char *p = ota_type_prefix(type);
    int64_t now = clock_wall_ms();
    kvs_t set = {.n = 0}, del = {.n = 0}, ts = {.n = 0};
    store_ota_t o = {0};
    if (package_uuid && *package_uuid) {
        int rc = store_ota_get_by_uuid(s, package_uuid, &o);
        if (rc < 0) {
            store_ota_fini(&o);
            return rc;
        }
        char target[16];
        snprintf(target, sizeof target, "target_%s", p);
        kv_str(&ts, target, "title", o.title, now);
        kv_str(&ts, target, "version", o.version, now);
        kv_long(&ts, target, "ts", now, now);
        kv_str(&ts, p, "state", "QUEUED", now);
        kv_str(&set, p, "title", o.title, now);
        kv_str(&set, p, "version", o.version, now);
        if (o.tag && *o.tag)
            kv_str(&set, p, "tag", o.tag, now);
        else
            kv_add(&del, p, "tag", now);
        bool url = o.url && *o.url && !o.has_data;
        if (url) {
            kv_str(&set, p, "url", o.url, now);
            kv_add(&del, p, "size", now);
            kv_add(&del, p, "checksum_algorithm", now);
            kv_add(&del, p, "checksum", now);
        } else {
            kv_long(&set, p, "size", o.data_size, now);
            kv_str(&set, p, "checksum_algorithm", o.checksum_algorithm ? o.checksum_algorithm : "",
                   now);
            kv_str(&set, p, "checksum", o.checksum ? o.checksum : "", now);
            kv_add(&del, p, "url", now);
        }
    } else {
        for (size_t i = 0; i < N_ATTR; i++)
            kv_add(&del, p, attr_suffix[i], now);
    }
    /* Delete (and tell observers of) only the keys the device has: a device should not be
     * told that fw_url went away when it never had one. */
    if (del.n) {
        const char *keys[N_ATTR];
        for (size_t i = 0; i < del.n; i++)
            keys[i] = del.items[i].key;
        store_kv_list_t have = {0};
        int rc = store_attr_get(s, device_id, SCOPE_SHARED, keys, del.n, &have);
        if (rc < 0) {
            store_kv_list_fini(&have);
            store_ota_fini(&o);
            return rc;
        }
        size_t m = 0;
        for (size_t i = 0; i < del.n; i++) {
            bool found = false;
            for (size_t k = 0; k < have.n && !found; k++)
                found = strcmp(have.items[k].key, del.items[i].key) == 0;
            if (found)
                del.items[m++] = del.items[i]; /* key points into del.keys[i], still valid */
        }
        del.n = m;
        store_kv_list_fini(&have);
    }
    store_batch_t *b = store_batch_new();
    for (size_t i = 0; i < ts.n; i++)
        store_batch_ts(b, device_id, &ts.items[i]);
    for (size_t i = 0; i < set.n; i++)
        store_batch_attr(b, device_id, SCOPE_SHARED, &set.items[i]);
    for (size_t i = 0; i < del.n; i++)
        store_batch_attr_delete(b, device_id, SCOPE_SHARED, del.items[i].key);
    int rc = store_submit_wait(s, b);
    if (rc == 0 && h) {
        /* The text observers receive is written as REST and CoAP answers write it. */
        if (set.n) {
            values_buf_t j = {0};
            values_kvs_write_object(&j, set.items, set.n, VALUES_TYPED);
            hub_publish(h, HUB_EV_SHARED_UPDATED, device_id, j.p);
            values_buf_fini(&j);
        }
        publish_deleted(h, device_id, &del);
    }
    store_ota_fini(&o);
    return rc;
}

int ota_device_assignment_changed(store_t *s, hub_t *h, int64_t device_id, const char *old_fw,
                                  const char *old_sw)
{
    store_device_t d = {0};
    int rc = store_device_get(s, device_id, &d);
    for (int t = OTA_FIRMWARE; rc == 0 && t <= OTA_SOFTWARE; t++) {
        char now_id[STORE_UUID_LEN + 1];
        rc = ota_effective_id(s, &d, (ota_type_t)t, now_id);
        if (rc < 0)
            break;
        const char *old = t == OTA_FIRMWARE ? old_fw : old_sw;
        if (strcmp(now_id, old ? old : "") == 0)
            continue; /* unchanged: devices are not told again (TB compares the ids too) */
        rc = ota_device_apply(s, h, device_id, (ota_type_t)t, now_id);
    }
    store_device_fini(&d);
    return rc;
}

int ota_profile_assignment_changed(store_t *s, hub_t *h, int64_t profile_id, bool firmware,
                                   bool software)
{
    store_profile_t p = {0};
    int rc = store_profile_get(s, profile_id, &p);
    for (int t = OTA_FIRMWARE; rc == 0 && t <= OTA_SOFTWARE; t++) {
        if (!(t == OTA_FIRMWARE ? firmware : software))
            continue;
        const char *pkg = t == OTA_FIRMWARE ? p.firmware_id : p.software_id;
        int64_t *ids = NULL;
        size_t n = 0;
        rc = store_device_ids_by_profile(s, profile_id, t == OTA_FIRMWARE ? "firmware" : "software",
                                         &ids, &n);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = ota_device_apply(s, h, ids[i], (ota_type_t)t, pkg);
        free(ids);
    }
    store_profile_fini(&p);
    return rc;
}
