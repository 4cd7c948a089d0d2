/* power.c — the power-saving rules of power.h: settings from JSON, the send gate, and the
 * merge of attribute updates held for a sleeping device.
 *
 * Settings JSON is read with the values unit's strict parser into a small arena on the stack
 * side of the call (freed before returning): these documents are a few hundred bytes and are
 * read once per device per settings change, never per packet.
 *
 * The merge keeps each value's JSON text as the hub published it (values_json_write echoes
 * numbers as written), so a held 22.5 reaches the device as 22.5, exactly what an awake
 * device would have received. Linear search per key: a device has a handful of shared
 * attributes, and a sleeping device gets at most what REST callers send it.
 *
 * ThingsBoard's merge (TbCoapClientState.addQueuedNotification) loses earlier deletions when
 * a second update arrives and keeps a key in "deleted" after it was set again; we keep the
 * per-key order of events instead, which is what "later values win" means.
 */
#include "device/power.h"

#include "core/arena.h"
#include "core/xmalloc.h"
#include "values/buf.h"
#include "values/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Settings documents deeper than this are not ThingsBoard's. */
#define POWER_JSON_DEPTH 16

static power_mode_t mode_from(const values_json_t *v)
{
    if (!v || v->kind != VALUES_JSON_STRING)
        return POWER_UNSET;
    if (strcmp(v->text, "PSM") == 0)
        return POWER_PSM;
    if (strcmp(v->text, "E_DRX") == 0)
        return POWER_EDRX;
    if (strcmp(v->text, "DRX") == 0)
        return POWER_DRX;
    return POWER_UNSET;
}

/* A non-negative integral number of ms, else 0 ("not given"). Java Long fields: a fraction
 * or a string would fail ThingsBoard's JSON mapping, so they count as absent here. */
static int64_t ms_from(const values_json_t *v)
{
    if (!v || v->kind != VALUES_JSON_NUMBER)
        return 0;
    char *end;
    long long n = strtoll(v->text, &end, 10);
    if (*end != '\0' || n < 0)
        return 0;
    return (int64_t)n;
}

static bool is_coap(const values_json_t *tc)
{
    if (!tc || tc->kind != VALUES_JSON_OBJECT)
        return false;
    const values_json_t *t = values_json_get(tc, "type");
    return t && t->kind == VALUES_JSON_STRING && strcmp(t->text, "COAP") == 0;
}

static void raw_from(const values_json_t *o, power_raw_t *out)
{
    if (!o || o->kind != VALUES_JSON_OBJECT)
        return;
    out->mode = mode_from(values_json_get(o, "powerMode"));
    out->psm_activity_timer_ms = ms_from(values_json_get(o, "psmActivityTimer"));
    out->edrx_cycle_ms = ms_from(values_json_get(o, "edrxCycle"));
    out->paging_window_ms = ms_from(values_json_get(o, "pagingTransmissionWindow"));
}

static const values_json_t *parse(arena_t *ar, const char *json)
{
    if (!json || !*json)
        return NULL;
    char err[8];
    const values_json_t *root = values_json_parse(ar, (const uint8_t *)json, strlen(json),
                                                  VALUES_STRICT, POWER_JSON_DEPTH, err, sizeof err);
    return root && root->kind == VALUES_JSON_OBJECT ? root : NULL;
}

void power_raw_from_profile(const char *data_json, power_raw_t *out)
{
    memset(out, 0, sizeof *out);
    arena_t ar;
    arena_init(&ar, 1024);
    const values_json_t *root = parse(&ar, data_json);
    const values_json_t *pd = root ? values_json_get(root, "profileData") : NULL;
    const values_json_t *tc = pd && pd->kind == VALUES_JSON_OBJECT
                                  ? values_json_get(pd, "transportConfiguration")
                                  : NULL;
    if (is_coap(tc))
        raw_from(values_json_get(tc, "clientSettings"), out);
    arena_fini(&ar);
}

void power_raw_from_device(const char *device_data_json, power_raw_t *out)
{
    memset(out, 0, sizeof *out);
    arena_t ar;
    arena_init(&ar, 1024);
    const values_json_t *root = parse(&ar, device_data_json);
    const values_json_t *tc = root ? values_json_get(root, "transportConfiguration") : NULL;
    if (is_coap(tc))
        raw_from(tc, out);
    arena_fini(&ar);
}

static int64_t pick(int64_t dev, int64_t prof, bool from_profile, int64_t dflt)
{
    if (dev > 0)
        return dev;
    if (from_profile && prof > 0)
        return prof;
    return dflt;
}

void power_resolve(const power_raw_t *device, const power_raw_t *profile, int64_t default_psm_ms,
                   int64_t default_paging_ms, power_settings_t *out)
{
    static const power_raw_t none = {0};
    if (!device)
        device = &none;
    if (!profile)
        profile = &none;
    /* DefaultCoapClientContext.getTimeout: the profile's settings are consulted only when
     * the device has no powerMode of its own. */
    bool from_profile = device->mode == POWER_UNSET;
    out->mode = from_profile ? profile->mode : device->mode;
    out->psm_activity_timer_ms = pick(device->psm_activity_timer_ms, profile->psm_activity_timer_ms,
                                      from_profile, default_psm_ms);
    out->edrx_cycle_ms = pick(device->edrx_cycle_ms, profile->edrx_cycle_ms, from_profile, 0);
    out->paging_window_ms = pick(device->paging_window_ms, profile->paging_window_ms, from_profile,
                                 default_paging_ms);
}

void power_uplink(power_state_t *st, int64_t now_ms)
{
    /* TbCoapClientState.updateLastUplinkTime: time only moves forward, and each new uplink
     * gives eDRX its one late downlink again. */
    if (now_ms >= st->last_uplink_ms) {
        st->last_uplink_ms = now_ms;
        st->edrx_first_used = false;
    }
    st->asleep = false;
}

void power_asleep(power_state_t *st)
{
    st->asleep = true;
}

bool power_may_send(const power_settings_t *s, const power_state_t *st, int64_t now_ms)
{
    if (!power_saving(s))
        return true;
    if (st->asleep || st->last_uplink_ms == 0)
        return false;
    int64_t since = now_ms - st->last_uplink_ms;
    if (s->mode == POWER_PSM)
        return since <= s->psm_activity_timer_ms;
    /* eDRX: the device listens once per paging cycle; ThingsBoard lets exactly one downlink
     * through after the window (TbCoapClientState.checkFirstDownlink). */
    return since <= s->paging_window_ms || !st->edrx_first_used;
}

void power_sent(const power_settings_t *s, power_state_t *st, int64_t now_ms)
{
    if (s->mode == POWER_EDRX && now_ms - st->last_uplink_ms > s->paging_window_ms)
        st->edrx_first_used = true;
}

/* ---- held attribute updates ---- */

static size_t find(char **arr, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(arr[i], key) == 0)
            return i;
    return n;
}

/* Removes arr[i], keeping the order; frees what it points to and the parallel value. */
static void remove_at(char **arr, char **vals, size_t *n, size_t i)
{
    free(arr[i]);
    if (vals)
        free(vals[i]);
    memmove(arr + i, arr + i + 1, (*n - i - 1) * sizeof *arr);
    if (vals)
        memmove(vals + i, vals + i + 1, (*n - i - 1) * sizeof *vals);
    (*n)--;
}

static void drop_deleted(power_held_t *h, const char *key)
{
    size_t i = find(h->deleted, h->n_deleted, key);
    if (i < h->n_deleted)
        remove_at(h->deleted, NULL, &h->n_deleted, i);
}

static void set_value(power_held_t *h, const char *key, char *val)
{
    drop_deleted(h, key);
    size_t i = find(h->keys, h->n, key);
    if (i < h->n) {
        free(h->vals[i]);
        h->vals[i] = val;
        return;
    }
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->keys = xrealloc(h->keys, h->cap * sizeof *h->keys);
        h->vals = xrealloc(h->vals, h->cap * sizeof *h->vals);
    }
    h->keys[h->n] = xstrdup(key);
    h->vals[h->n] = val;
    h->n++;
}

static void mark_deleted(power_held_t *h, const char *key)
{
    size_t i = find(h->keys, h->n, key);
    if (i < h->n)
        remove_at(h->keys, h->vals, &h->n, i);
    if (find(h->deleted, h->n_deleted, key) < h->n_deleted)
        return;
    if (h->n_deleted == h->cap_deleted) {
        h->cap_deleted = h->cap_deleted ? h->cap_deleted * 2 : 8;
        h->deleted = xrealloc(h->deleted, h->cap_deleted * sizeof *h->deleted);
    }
    h->deleted[h->n_deleted++] = xstrdup(key);
}

/* The hub's bodies are written by us (REST), so depth is only a guard. */
#define HELD_JSON_DEPTH 64

int power_held_update(power_held_t *h, const char *json, size_t len)
{
    arena_t ar;
    arena_init(&ar, 0);
    char err[8];
    const values_json_t *o = values_json_parse(&ar, (const uint8_t *)json, len, VALUES_STRICT,
                                               HELD_JSON_DEPTH, err, sizeof err);
    int rc = -EBADMSG;
    if (o && o->kind == VALUES_JSON_OBJECT) {
        for (size_t i = 0; i < o->n; i++) {
            values_buf_t b = {0};
            values_json_write(&b, o->items[i]);
            set_value(h, o->keys[i], values_buf_take(&b));
        }
        rc = 0;
    }
    arena_fini(&ar);
    return rc;
}

int power_held_delete(power_held_t *h, const char *json, size_t len)
{
    arena_t ar;
    arena_init(&ar, 0);
    char err[8];
    const values_json_t *o = values_json_parse(&ar, (const uint8_t *)json, len, VALUES_STRICT,
                                               HELD_JSON_DEPTH, err, sizeof err);
    const values_json_t *d = o && o->kind == VALUES_JSON_OBJECT ? values_json_get(o, "deleted")
                                                                : NULL;
    int rc = -EBADMSG;
    if (d && d->kind == VALUES_JSON_ARRAY) {
        for (size_t i = 0; i < d->n; i++)
            if (d->items[i]->kind == VALUES_JSON_STRING)
                mark_deleted(h, d->items[i]->text);
        rc = 0;
    }
    arena_fini(&ar);
    return rc;
}

static void clear(power_held_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->keys[i]);
        free(h->vals[i]);
    }
    for (size_t i = 0; i < h->n_deleted; i++)
        free(h->deleted[i]);
    h->n = h->n_deleted = 0;
}

char *power_held_take(power_held_t *h)
{
    if (power_held_empty(h))
        return NULL;
    values_buf_t b = {0};
    values_buf_put(&b, "{", 1);
    for (size_t i = 0; i < h->n; i++) {
        if (i)
            values_buf_put(&b, ",", 1);
        values_buf_json_str(&b, h->keys[i], strlen(h->keys[i]));
        values_buf_put(&b, ":", 1);
        values_buf_puts(&b, h->vals[i]);
    }
    if (h->n_deleted) {
        values_buf_puts(&b, h->n ? ",\"deleted\":[" : "\"deleted\":[");
        for (size_t i = 0; i < h->n_deleted; i++) {
            if (i)
                values_buf_put(&b, ",", 1);
            values_buf_json_str(&b, h->deleted[i], strlen(h->deleted[i]));
        }
        values_buf_put(&b, "]", 1);
    }
    values_buf_put(&b, "}", 1);
    clear(h);
    return values_buf_take(&b);
}

void power_held_fini(power_held_t *h)
{
    clear(h);
    free(h->keys);
    free(h->vals);
    free(h->deleted);
    memset(h, 0, sizeof *h);
}
