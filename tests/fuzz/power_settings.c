/* power_settings.c — libFuzzer target for device/power.h's readers: the bytes (NUL-terminated
 * copy) as a profile's data and as a device's deviceData (REST bodies end up there), then as
 * attribute bodies merged into a held set (first byte: update or delete for each half).
 * Checks that timers are never negative, modes are known, and what the held set writes is
 * again a JSON object that merges back to the same text. */
#include "device/power.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_raw(const power_raw_t *r)
{
    if (r->mode > POWER_EDRX || r->psm_activity_timer_ms < 0 || r->edrx_cycle_ms < 0 ||
        r->paging_window_ms < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    power_raw_t r;
    power_raw_from_profile(s, &r);
    check_raw(&r);
    power_raw_from_device(s, &r);
    check_raw(&r);

    power_held_t h = {0};
    size_t half = (size - 1) / 2;
    if (data[0] & 1)
        power_held_delete(&h, s, half);
    else
        power_held_update(&h, s, half);
    if (data[0] & 2)
        power_held_delete(&h, s + half, size - 1 - half);
    else
        power_held_update(&h, s + half, size - 1 - half);
    /* An attribute named "deleted" makes the body ambiguous, as in ThingsBoard's format. */
    bool ambiguous = false;
    for (size_t i = 0; i < h.n; i++)
        ambiguous |= strcmp(h.keys[i], "deleted") == 0;
    char *out = power_held_take(&h);
    if (out && !ambiguous) {
        /* The merged body is an object whose plain members read back as updates. */
        power_held_t again = {0};
        if (power_held_update(&again, out, strlen(out)) != 0)
            abort();
        power_held_fini(&again);
    }
    if (!power_held_empty(&h))
        abort();
    free(out);
    power_held_fini(&h);
    free(s);
    return 0;
}
