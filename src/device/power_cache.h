/* power_cache.h — each device's power-saving settings (power.h) without a store read per
 * downlink: device id -> (profile id, deviceData override) and profile id -> clientSettings,
 * filled from the store on first use and dropped by the invalidation calls below.
 *
 * Readers (shards) keep a resolved copy per device together with power_cache_gen() at the
 * time they read it; every invalidation bumps the generation, so a shard notices a change
 * with one atomic load and asks again. A device that never gets a downlink never causes a
 * lookup, so the request path costs nothing here.
 *
 * Whoever saves a device profile or a device's deviceData / profile (REST, provisioning)
 * calls the matching invalidation after the store committed. Any thread.
 */
#ifndef COAPHUB_DEVICE_POWER_CACHE_H
#define COAPHUB_DEVICE_POWER_CACHE_H

#include "device/power.h"
#include "store/store.h"

#include <stdint.h>

typedef struct power_cache power_cache_t;

/* store may be NULL (tests): every lookup then finds no settings. */
power_cache_t *power_cache_new(store_t *store);
/* power_cache_free(NULL) does nothing. */
void power_cache_free(power_cache_t *c);

/* Changes whenever an invalidation happened. */
uint64_t power_cache_gen(const power_cache_t *c);

/* The device's own settings (*dev) and its profile's (*prof), unresolved (power_resolve).
 * On a miss reads the device and its profile from the store in the calling thread. Returns 0,
 * -ENOENT for an unknown device (both zeroed), or the store's error (both zeroed). */
int power_cache_get(power_cache_t *c, int64_t device_id, power_raw_t *dev, power_raw_t *prof);

/* The device was saved (deviceData or profile changed), created or deleted. */
void power_cache_invalidate_device(power_cache_t *c, int64_t device_id);
/* The profile was saved or deleted. */
void power_cache_invalidate_profile(power_cache_t *c, int64_t profile_id);
/* Forget everything (e.g. after a bulk change). */
void power_cache_invalidate_all(power_cache_t *c);

#endif
