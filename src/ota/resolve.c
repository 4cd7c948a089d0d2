/* resolve.c — which package a device downloads.
 *
 * ThingsBoard's rule (OtaPackageUtil.getOtaPackageId and DefaultOtaPackageStateService): the
 * device's own firmwareId/softwareId wins, else the device profile's. Three short store reads
 * (device, profile, package); the CoAP download path does them once per block, which the
 * store serves from its read connection in well under a millisecond.
 */
#include "ota/ota.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *own_id(const store_device_t *d, ota_type_t t)
{
    return t == OTA_SOFTWARE ? d->software_id : d->firmware_id;
}

int ota_effective_id(store_t *s, const store_device_t *d, ota_type_t type,
                     char out[static STORE_UUID_LEN + 1])
{
    out[0] = '\0';
    const char *own = own_id(d, type);
    if (own && *own) {
        snprintf(out, STORE_UUID_LEN + 1, "%s", own);
        return 0;
    }
    if (d->profile_id <= 0)
        return 0;
    store_profile_t p = {0};
    int rc = store_profile_get(s, d->profile_id, &p);
    if (rc == 0) {
        const char *pid = type == OTA_SOFTWARE ? p.software_id : p.firmware_id;
        if (pid && *pid)
            snprintf(out, STORE_UUID_LEN + 1, "%s", pid);
    }
    store_profile_fini(&p);
    return rc == -ENOENT ? 0 : rc;
}

int ota_resolve(store_t *s, int64_t device_id, ota_type_t type, store_ota_t *out)
{
    memset(out, 0, sizeof *out);
    store_device_t d = {0};
    int rc = store_device_get(s, device_id, &d);
    char id[STORE_UUID_LEN + 1];
    if (rc == 0)
        rc = ota_effective_id(s, &d, type, id);
    store_device_fini(&d);
    if (rc < 0)
        return rc;
    if (!id[0])
        return -ENOENT;
    return store_ota_get_by_uuid(s, id, out);
}

static bool named_is(const char *named, size_t len, const char *have)
{
    return !named || (have && strlen(have) == len && memcmp(named, have, len) == 0);
}

bool ota_names_match(const store_ota_t *o, const char *title, size_t title_len, const char *version,
                     size_t version_len)
{
    return named_is(title, title_len, o->title) && named_is(version, version_len, o->version);
}

bool ota_chunk_range(int64_t data_size, int64_t size, int64_t chunk, uint64_t *start, uint64_t *len)
{
    uint64_t total = data_size > 0 ? (uint64_t)data_size : 0;
    *start = 0;
    *len = total;
    if (size <= 0)
        return true;
    uint64_t at = (uint64_t)(chunk > 0 ? chunk : 0) * (uint64_t)size;
    if (at >= total) {
        *start = at;
        *len = 0;
        return false;
    }
    *start = at;
    *len = total - at < (uint64_t)size ? total - at : (uint64_t)size;
    return true;
}
