/* test_power_cache.c — the power-saving settings cache over a real store (both backends): a
 * profile row with clientSettings and a device's deviceData override are found, resolved as
 * ThingsBoard does, served from memory afterwards, and re-read after an invalidation. */
#include "../store/store_test_util.h"

#include "core/xmalloc.h"
#include "device/power_cache.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static int64_t profile(store_t *s, const char *name, const char *client_settings)
{
    char data[512];
    snprintf(data, sizeof data,
             "{\"description\":null,\"transportType\":\"COAP\",\"profileData\":{"
             "\"configuration\":{\"type\":\"DEFAULT\"},\"transportConfiguration\":{"
             "\"type\":\"COAP\",\"clientSettings\":%s}}}",
             client_settings);
    store_profile_t p = {.name = (char *)name, .provision_type = (char *)"DISABLED", .data = data};
    assert_int_equal(store_profile_create(s, &p), 0);
    return p.id;
}

static int64_t device(store_t *s, const char *name, int64_t profile_id, const char *device_data)
{
    store_device_t d = {
        .name = (char *)name, .profile_id = profile_id, .device_data = (char *)device_data};
    assert_int_equal(store_device_create(s, &d), 0);
    int64_t id = d.id;
    d.name = NULL;
    d.device_data = NULL;
    store_device_fini(&d);
    return id;
}

static void resolved(power_cache_t *c, int64_t dev, power_settings_t *out)
{
    power_raw_t d, p;
    assert_int_equal(power_cache_get(c, dev, &d, &p), 0);
    power_resolve(&d, &p, 10000, 10000, out);
}

static void test_profile_and_override(void **state)
{
    tstore_t *t = *state;
    int64_t edrx = profile(t->s, "meters",
                           "{\"powerMode\":\"E_DRX\",\"edrxCycle\":81000,"
                           "\"pagingTransmissionWindow\":1500}");
    int64_t in_profile = device(t->s, "meter-1", edrx, NULL);
    int64_t psm = device(t->s, "meter-2", edrx,
                         "{\"configuration\":{\"type\":\"DEFAULT\"},\"transportConfiguration\":{"
                         "\"type\":\"COAP\",\"powerMode\":\"PSM\",\"psmActivityTimer\":2500}}");
    int64_t plain = device(t->s, "plain", 0, NULL); /* the default profile: no power mode */

    power_cache_t *c = power_cache_new(t->s);
    power_settings_t s;
    resolved(c, in_profile, &s);
    assert_int_equal(s.mode, POWER_EDRX);
    assert_int_equal(s.paging_window_ms, 1500);
    assert_int_equal(s.edrx_cycle_ms, 81000);
    resolved(c, psm, &s);
    assert_int_equal(s.mode, POWER_PSM);
    assert_int_equal(s.psm_activity_timer_ms, 2500);
    resolved(c, plain, &s);
    assert_false(power_saving(&s));

    /* Served from memory now: a change in the store is not seen until invalidated. */
    uint64_t g0 = power_cache_gen(c);
    store_profile_t p;
    assert_int_equal(store_profile_get(t->s, edrx, &p), 0);
    free(p.data);
    p.data = xstrdup(
        "{\"profileData\":{\"transportConfiguration\":{\"type\":\"COAP\","
        "\"clientSettings\":{\"powerMode\":\"PSM\",\"psmActivityTimer\":700}}}}");
    assert_int_equal(store_profile_update(t->s, &p), 0);
    store_profile_fini(&p);
    resolved(c, in_profile, &s);
    assert_int_equal(s.mode, POWER_EDRX);
    power_cache_invalidate_profile(c, edrx);
    assert_true(power_cache_gen(c) != g0);
    resolved(c, in_profile, &s);
    assert_int_equal(s.mode, POWER_PSM);
    assert_int_equal(s.psm_activity_timer_ms, 700);
    /* The device with its own mode keeps its own timer. */
    resolved(c, psm, &s);
    assert_int_equal(s.psm_activity_timer_ms, 2500);

    /* The override dropped through a device save. */
    store_device_t d;
    assert_int_equal(store_device_get(t->s, psm, &d), 0);
    free(d.device_data);
    d.device_data = NULL;
    assert_int_equal(store_device_update(t->s, &d), 0);
    store_device_fini(&d);
    power_cache_invalidate_device(c, psm);
    resolved(c, psm, &s);
    assert_int_equal(s.mode, POWER_PSM);
    assert_int_equal(s.psm_activity_timer_ms, 700); /* now the profile's */

    /* Unknown device: -ENOENT, no settings. */
    power_raw_t rd, rp;
    assert_int_equal(power_cache_get(c, 987654, &rd, &rp), -ENOENT);
    assert_int_equal(rd.mode, POWER_UNSET);

    power_cache_invalidate_all(c);
    resolved(c, in_profile, &s);
    assert_int_equal(s.mode, POWER_PSM);
    power_cache_free(c);
}

int main(void)
{
    if (tstore_want_pg() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_profile_and_override, tstore_setup, tstore_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
