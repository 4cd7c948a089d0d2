/* power.h — power-saving downlink rules (spec/thingsboard-coap.md §4): when a device in PSM or
 * eDRX may be sent a notification, which settings apply to it, and how attribute updates
 * missed while it sleeps are merged into one.
 *
 * Pure: no I/O, no clock, no locks. The caller (a shard) owns a power_state_t per device and
 * passes the monotonic time in; power_cache.h finds a device's settings in the store.
 *
 * ThingsBoard's model (TbCoapClientState, DefaultCoapClientContext): a device's profile
 * carries profileData.transportConfiguration = {type:"COAP", clientSettings:{powerMode,
 * psmActivityTimer, edrxCycle, pagingTransmissionWindow}} and the device may override them in
 * deviceData.transportConfiguration = {type:"COAP", powerMode, psmActivityTimer, ...}.
 * Every request from the device is an uplink; an acknowledged CON notification is one too.
 */
#ifndef COAPHUB_DEVICE_POWER_H
#define COAPHUB_DEVICE_POWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    POWER_UNSET = 0, /* no powerMode given (null / absent): DRX behaviour */
    POWER_DRX,
    POWER_PSM,
    POWER_EDRX,
} power_mode_t;

/* Settings as written in one JSON document; 0 = not given (ThingsBoard treats 0 as "use the
 * server default" too). */
typedef struct power_raw {
    power_mode_t mode;
    int64_t psm_activity_timer_ms;
    int64_t edrx_cycle_ms;
    int64_t paging_window_ms;
} power_raw_t;

/* The settings that apply to one device, defaults filled in. */
typedef struct power_settings {
    power_mode_t mode;
    int64_t psm_activity_timer_ms; /* PSM: downlinks this long after the last uplink */
    int64_t edrx_cycle_ms;         /* informative; the gate uses the paging window */
    int64_t paging_window_ms;      /* eDRX: downlinks this long after the last uplink */
} power_settings_t;

/* Server defaults (transport.coap.psm_activity_timer / paging_transmission_window). */
#define POWER_DEFAULT_PSM_ACTIVITY_TIMER_MS 10000
#define POWER_DEFAULT_PAGING_WINDOW_MS 10000

/* Reads clientSettings from a device profile's data JSON (store_profile_t.data: the object
 * holding profileData). Anything missing, of another transport type or malformed gives an
 * all-zero *out: a profile never makes a device unreachable by being odd. */
void power_raw_from_profile(const char *data_json, power_raw_t *out);
/* Reads the override from a device's deviceData JSON (store_device_t.device_data). */
void power_raw_from_device(const char *device_data_json, power_raw_t *out);

/* ThingsBoard's resolution: the device's powerMode, else the profile's. Each timer: the
 * device's, else the profile's (only when the mode came from the profile), else the default. */
void power_resolve(const power_raw_t *device, const power_raw_t *profile, int64_t default_psm_ms,
                   int64_t default_paging_ms, power_settings_t *out);

/* True for PSM and eDRX: the modes that ever hold a downlink back. */
static inline bool power_saving(const power_settings_t *s)
{
    return s->mode == POWER_PSM || s->mode == POWER_EDRX;
}

/* A device's reachability as the shard sees it. Zero-initialised = never heard from. */
typedef struct power_state {
    int64_t last_uplink_ms; /* monotonic; 0 = none yet */
    bool edrx_first_used;   /* the one downlink eDRX allows after the window went out */
    bool asleep;            /* a CON notification was not acknowledged since the last uplink */
} power_state_t;

/* An uplink at now_ms (a request, or an acknowledged CON notification): the device is awake. */
void power_uplink(power_state_t *st, int64_t now_ms);
/* A CON notification went unacknowledged: the device is asleep until its next uplink. */
void power_asleep(power_state_t *st);
/* May a downlink go out at now_ms? PSM: within psm_activity_timer_ms of the last uplink.
 * eDRX: within paging_window_ms, or the first downlink after it. Other modes: always. PSM and
 * eDRX: never while asleep, nor before the first uplink. Changes nothing. */
bool power_may_send(const power_settings_t *s, const power_state_t *st, int64_t now_ms);
/* A downlink went out at now_ms: after the eDRX window this uses up the one late downlink. */
void power_sent(const power_settings_t *s, power_state_t *st, int64_t now_ms);

/* ---- attribute updates held for a sleeping device ----
 *
 * Later values win per key; a deletion drops a held update of the key and is remembered, an
 * update drops a held deletion. Values are kept as their JSON text (numbers as written). */
typedef struct power_held {
    char **keys, **vals; /* updated keys and their JSON values, in first-update order */
    size_t n, cap;
    char **deleted; /* deleted keys, in order */
    size_t n_deleted, cap_deleted;
} power_held_t;

/* Merges a SHARED_UPDATED body (flat JSON object). Returns 0, or -EBADMSG if json is not an
 * object (nothing merged). */
int power_held_update(power_held_t *h, const char *json, size_t len);
/* Merges a SHARED_DELETED body ({"deleted":[keys...]}). 0 or -EBADMSG. */
int power_held_delete(power_held_t *h, const char *json, size_t len);
static inline bool power_held_empty(const power_held_t *h)
{
    return h->n == 0 && h->n_deleted == 0;
}
/* The one notification body for everything held — {"k":v,...,"deleted":[...]}, as
 * ThingsBoard writes a merged AttributeUpdateNotificationMsg — and empties h. NULL if empty.
 * Caller frees. */
char *power_held_take(power_held_t *h);
/* Empties h and frees its memory (h itself is the caller's). */
void power_held_fini(power_held_t *h);

#endif
