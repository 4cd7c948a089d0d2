/* assign.c — an assignment made known to devices, as ThingsBoard's OtaPackageStateService.
 *
 * ThingsBoard sends, per device whose effective package changed: telemetry target_fw_title,
 * target_fw_version, target_fw_ts and fw_state QUEUED; then (from its queue, moments later)
 * the shared attributes fw_title, fw_version, fw_tag, fw_size, fw_checksum_algorithm,
 * fw_checksum — or fw_url for a package kept as a URL — which a device observing its
 * attributes receives as an update. A removed assignment deletes those attributes. We have no
 * queue in between: both go into one store batch per device; the batches of up to
 * APPLY_ROUND devices are submitted together (one profile's devices share a few group
 * commits), and only once they are durable are the attribute observers told through the hub,
 * so a device never sees an update that could still be lost. ThingsBoard's intermediate
 * fw_state INITIATED (its queue picked the message up) is not written; the device's own
 * reports (DOWNLOADING ... UPDATED) are ordinary telemetry.
 */
#include "ota/ota.h"

#include "core/clock.h"
#include "core/xmalloc.h"
#include "values/render.h"

#include <pthread.h>
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

/* What an assignment writes for one device and what its observers then hear. The values
 * point into the package row (apply_many's) and into the job's own key buffers. */
typedef struct apply_job {
    int64_t device_id;
    kvs_t set, del, ts;
    int status;
    struct apply_wait *wait;
} apply_job_t;

typedef struct apply_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t left;
} apply_wait_t;

/* Fills j for device j->device_id: package o (NULL: the assignment was removed). Reads which
 * of the keys to delete the device has. 0 or a store error. */
static int build(store_t *s, const char *p, const store_ota_t *o, int64_t now, apply_job_t *j)
{
    kvs_t *set = &j->set, *del = &j->del, *ts = &j->ts;
    if (o) {
        char target[16];
        snprintf(target, sizeof target, "target_%s", p);
        kv_str(ts, target, "title", o->title, now);
        kv_str(ts, target, "version", o->version, now);
        kv_long(ts, target, "ts", now, now);
        kv_str(ts, p, "state", "QUEUED", now);
        kv_str(set, p, "title", o->title, now);
        kv_str(set, p, "version", o->version, now);
        if (o->tag && *o->tag)
            kv_str(set, p, "tag", o->tag, now);
        else
            kv_add(del, p, "tag", now);
        bool url = o->url && *o->url && !o->has_data;
        if (url) {
            kv_str(set, p, "url", o->url, now);
            kv_add(del, p, "size", now);
            kv_add(del, p, "checksum_algorithm", now);
            kv_add(del, p, "checksum", now);
        } else {
            kv_long(set, p, "size", o->data_size, now);
            kv_str(set, p, "checksum_algorithm", o->checksum_algorithm ? o->checksum_algorithm : "",
                   now);
            kv_str(set, p, "checksum", o->checksum ? o->checksum : "", now);
            kv_add(del, p, "url", now);
        }
    } else {
        for (size_t i = 0; i < N_ATTR; i++)
            kv_add(del, p, attr_suffix[i], now);
    }
    if (!del->n)
        return 0;
    /* Delete (and tell observers of) only the keys the device has: a device should not be
     * told that fw_url went away when it never had one. */
    const char *keys[N_ATTR];
    for (size_t i = 0; i < del->n; i++)
        keys[i] = del->items[i].key;
    store_kv_list_t have = {0};
    int rc = store_attr_get(s, j->device_id, SCOPE_SHARED, keys, del->n, &have);
    size_t m = 0;
    for (size_t i = 0; rc == 0 && i < del->n; i++) {
        bool found = false;
        for (size_t k = 0; k < have.n && !found; k++)
            found = strcmp(have.items[k].key, del->items[i].key) == 0;
        if (found) {
            /* The key lives in del->keys[i]: move it with its item. */
            if (m != i) {
                memcpy(del->keys[m], del->keys[i], sizeof del->keys[m]);
                del->items[m] = del->items[i];
            }
            del->items[m].key = del->keys[m];
            m++;
        }
    }
    del->n = rc == 0 ? m : 0;
    store_kv_list_fini(&have);
    return rc;
}

static store_batch_t *batch_of(const apply_job_t *j)
{
    store_batch_t *b = store_batch_new();
    for (size_t i = 0; i < j->ts.n; i++)
        store_batch_ts(b, j->device_id, &j->ts.items[i]);
    for (size_t i = 0; i < j->set.n; i++)
        store_batch_attr(b, j->device_id, SCOPE_SHARED, &j->set.items[i]);
    for (size_t i = 0; i < j->del.n; i++)
        store_batch_attr_delete(b, j->device_id, SCOPE_SHARED, j->del.items[i].key);
    return b;
}

static void job_done(void *arg, int status)
{
    apply_job_t *j = arg;
    j->status = status;
    pthread_mutex_lock(&j->wait->mu);
    if (--j->wait->left == 0)
        pthread_cond_signal(&j->wait->cv);
    pthread_mutex_unlock(&j->wait->mu);
}

static void publish(hub_t *h, const apply_job_t *j)
{
    /* The text observers receive is written as REST and CoAP answers write it. */
    if (j->set.n) {
        values_buf_t b = {0};
        values_kvs_write_object(&b, j->set.items, j->set.n, VALUES_TYPED);
        hub_publish(h, HUB_EV_SHARED_UPDATED, j->device_id, b.p);
        values_buf_fini(&b);
    }
    publish_deleted(h, j->device_id, &j->del);
}

/* Devices told per round: their batches are submitted together, so the writer commits them
 * in a few groups (a profile of 10 000 devices is ~20 commits, not 10 000); the observers of
 * a round hear of it once its batches are all durable. */
enum { APPLY_ROUND = 512 };

/* Applies package_uuid (NULL or "": none) of type to each of ids. 0 or the first error (the
 * devices before it are told; a device whose batch failed is not). */
static int apply_many(store_t *s, hub_t *h, const int64_t *ids, size_t n, ota_type_t type,
                      const char *package_uuid)
{
    const char *p = ota_type_prefix(type);
    store_ota_t o = {0};
    bool have = package_uuid && *package_uuid;
    int rc = have ? store_ota_get_by_uuid(s, package_uuid, &o) : 0;
    int64_t now = clock_wall_ms();
    apply_wait_t w = {.left = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    apply_job_t *jobs = n ? xcalloc(n < APPLY_ROUND ? n : APPLY_ROUND, sizeof *jobs) : NULL;
    for (size_t at = 0; rc == 0 && at < n; at += APPLY_ROUND) {
        size_t m = n - at < APPLY_ROUND ? n - at : APPLY_ROUND, built = 0;
        memset(jobs, 0, m * sizeof *jobs);
        for (; built < m; built++) {
            apply_job_t *j = &jobs[built];
            j->device_id = ids[at + built];
            j->wait = &w;
            if ((rc = build(s, p, have ? &o : NULL, now, j)) < 0)
                break;
        }
        pthread_mutex_lock(&w.mu);
        w.left = built;
        pthread_mutex_unlock(&w.mu);
        for (size_t i = 0; i < built; i++)
            store_submit(s, batch_of(&jobs[i]), NULL, job_done, &jobs[i]);
        pthread_mutex_lock(&w.mu);
        while (w.left > 0)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        for (size_t i = 0; i < built; i++) {
            if (jobs[i].status == 0 && h)
                publish(h, &jobs[i]);
            else if (jobs[i].status != 0 && rc == 0)
                rc = jobs[i].status;
        }
    }
    free(jobs);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    store_ota_fini(&o);
    return rc;
}

int ota_device_apply(store_t *s, hub_t *h, int64_t device_id, ota_type_t type,
                     const char *package_uuid)
{
    return apply_many(s, h, &device_id, 1, type, package_uuid);
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
        if (rc == 0)
            rc = apply_many(s, h, ids, n, (ota_type_t)t, pkg);
        free(ids);
    }
    store_profile_fini(&p);
    return rc;
}
