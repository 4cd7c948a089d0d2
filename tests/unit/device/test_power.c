/* test_power.c — power-saving rules (spec §4): settings from ThingsBoard's JSON, resolution
 * device > profile > default, the PSM window, the eDRX window plus one late downlink, and the
 * merge of attribute updates held for a sleeping device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "device/power.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_profile_settings(void **state)
{
    (void)state;
    power_raw_t r;
    power_raw_from_profile(
        "{\"description\":\"x\",\"profileData\":{\"transportConfiguration\":{\"type\":\"COAP\","
        "\"coapDeviceTypeConfiguration\":{\"coapDeviceType\":\"DEFAULT\"},"
        "\"clientSettings\":{\"powerMode\":\"PSM\",\"psmActivityTimer\":1500,"
        "\"edrxCycle\":81000,\"pagingTransmissionWindow\":2500}}}}",
        &r);
    assert_int_equal(r.mode, POWER_PSM);
    assert_int_equal(r.psm_activity_timer_ms, 1500);
    assert_int_equal(r.edrx_cycle_ms, 81000);
    assert_int_equal(r.paging_window_ms, 2500);

    power_raw_from_profile(
        "{\"profileData\":{\"transportConfiguration\":{\"type\":\"COAP\","
        "\"clientSettings\":{\"powerMode\":\"E_DRX\"}}}}",
        &r);
    assert_int_equal(r.mode, POWER_EDRX);
    assert_int_equal(r.psm_activity_timer_ms, 0);

    /* Another transport type, no profileData, bad JSON, NULL, odd values: no settings. */
    const char *none[] = {
        "{\"profileData\":{\"transportConfiguration\":{\"type\":\"DEFAULT\","
        "\"clientSettings\":{\"powerMode\":\"PSM\"}}}}",
        "{}",
        "{\"profileData\":",
        "[1,2]",
        "",
        NULL,
        "{\"profileData\":{\"transportConfiguration\":{\"type\":\"COAP\","
        "\"clientSettings\":{\"powerMode\":\"SLEEPY\",\"psmActivityTimer\":-5}}}}",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        power_raw_from_profile(none[i], &r);
        assert_int_equal(r.mode, POWER_UNSET);
        assert_int_equal(r.psm_activity_timer_ms, 0);
    }
    /* A timer written as a fraction or a string is not a Java Long: absent. */
    power_raw_from_profile(
        "{\"profileData\":{\"transportConfiguration\":{\"type\":\"COAP\","
        "\"clientSettings\":{\"powerMode\":\"DRX\",\"psmActivityTimer\":1.5,"
        "\"pagingTransmissionWindow\":\"300\"}}}}",
        &r);
    assert_int_equal(r.mode, POWER_DRX);
    assert_int_equal(r.psm_activity_timer_ms, 0);
    assert_int_equal(r.paging_window_ms, 0);
}

static void test_device_override_and_resolve(void **state)
{
    (void)state;
    power_raw_t dev, prof = {.mode = POWER_EDRX,
                             .psm_activity_timer_ms = 4000,
                             .paging_window_ms = 3000,
                             .edrx_cycle_ms = 9000};
    power_settings_t s;

    power_raw_from_device(
        "{\"configuration\":{\"type\":\"DEFAULT\"},"
        "\"transportConfiguration\":{\"type\":\"COAP\",\"powerMode\":\"PSM\","
        "\"psmActivityTimer\":1500}}",
        &dev);
    assert_int_equal(dev.mode, POWER_PSM);
    assert_int_equal(dev.psm_activity_timer_ms, 1500);
    power_resolve(&dev, &prof, 10000, 10000, &s);
    assert_int_equal(s.mode, POWER_PSM);
    assert_int_equal(s.psm_activity_timer_ms, 1500);
    /* The device chose the mode: the profile's other timers are not consulted (TB getTimeout). */
    assert_int_equal(s.paging_window_ms, 10000);
    assert_int_equal(s.edrx_cycle_ms, 0);

    /* No override: the profile's mode and timers, defaults for what it leaves out. */
    power_raw_from_device("{\"transportConfiguration\":{\"type\":\"DEFAULT\"}}", &dev);
    assert_int_equal(dev.mode, POWER_UNSET);
    power_resolve(&dev, &prof, 10000, 10000, &s);
    assert_int_equal(s.mode, POWER_EDRX);
    assert_int_equal(s.paging_window_ms, 3000);
    assert_int_equal(s.psm_activity_timer_ms, 4000);
    prof.paging_window_ms = 0; /* 0 means "server default" in ThingsBoard too */
    power_resolve(&dev, &prof, 10000, 7000, &s);
    assert_int_equal(s.paging_window_ms, 7000);

    /* A device timer without a mode of its own still wins over the profile's. */
    dev = (power_raw_t){.paging_window_ms = 1200};
    power_resolve(&dev, &prof, 10000, 7000, &s);
    assert_int_equal(s.mode, POWER_EDRX);
    assert_int_equal(s.paging_window_ms, 1200);

    power_resolve(NULL, NULL, 10000, 10000, &s);
    assert_int_equal(s.mode, POWER_UNSET);
    assert_false(power_saving(&s));
}

static void test_psm_window(void **state)
{
    (void)state;
    power_settings_t s = {
        .mode = POWER_PSM, .psm_activity_timer_ms = 1500, .paging_window_ms = 10000};
    power_state_t st = {0};
    assert_true(power_saving(&s));
    assert_false(power_may_send(&s, &st, 5000)); /* never heard from: asleep */
    power_uplink(&st, 1000);
    assert_true(power_may_send(&s, &st, 1000));
    assert_true(power_may_send(&s, &st, 2500)); /* the timer's last ms */
    assert_false(power_may_send(&s, &st, 2501));
    assert_false(power_may_send(&s, &st, 100000));
    /* Any number of downlinks inside the window. */
    for (int i = 0; i < 5; i++) {
        power_sent(&s, &st, 1200);
        assert_true(power_may_send(&s, &st, 1300));
    }
    power_uplink(&st, 50000);
    assert_true(power_may_send(&s, &st, 51000));
    /* An unacknowledged CON: asleep until the next uplink, even inside the window. */
    power_asleep(&st);
    assert_false(power_may_send(&s, &st, 51001));
    power_uplink(&st, 51002); /* an ACK or a request */
    assert_true(power_may_send(&s, &st, 51003));
    /* Time never runs backwards in the state. */
    power_uplink(&st, 10);
    assert_int_equal(st.last_uplink_ms, 51002);
}

static void test_edrx_window_and_first_after(void **state)
{
    (void)state;
    power_settings_t s = {.mode = POWER_EDRX, .paging_window_ms = 2000, .edrx_cycle_ms = 20000};
    power_state_t st = {0};
    power_uplink(&st, 1000);
    /* Within the window: every downlink. */
    assert_true(power_may_send(&s, &st, 2000));
    power_sent(&s, &st, 2000);
    assert_true(power_may_send(&s, &st, 3000));
    power_sent(&s, &st, 3000);
    /* After it: exactly one. */
    assert_true(power_may_send(&s, &st, 3001));
    assert_true(power_may_send(&s, &st, 3001)); /* asking does not use it */
    power_sent(&s, &st, 3001);
    assert_false(power_may_send(&s, &st, 3002));
    assert_false(power_may_send(&s, &st, 90000));
    /* The next uplink opens a window and gives back the late downlink. */
    power_uplink(&st, 100000);
    assert_true(power_may_send(&s, &st, 100500));
    assert_true(power_may_send(&s, &st, 200000));
    power_sent(&s, &st, 200000);
    assert_false(power_may_send(&s, &st, 200001));

    /* DRX and no mode: always. */
    power_settings_t drx = {.mode = POWER_DRX}, none = {0};
    power_state_t fresh = {0};
    assert_false(power_saving(&drx));
    assert_true(power_may_send(&drx, &fresh, 123456789));
    assert_true(power_may_send(&none, &fresh, 123456789));
    power_asleep(&fresh);
    assert_true(power_may_send(&none, &fresh, 1));
}

static char *take(power_held_t *h)
{
    return power_held_take(h);
}

#define UPD(h, s) assert_int_equal(power_held_update((h), (s), strlen(s)), 0)
#define DEL(h, s) assert_int_equal(power_held_delete((h), (s), strlen(s)), 0)

static void test_held_merge(void **state)
{
    (void)state;
    power_held_t h = {0};
    assert_true(power_held_empty(&h));
    assert_null(take(&h));

    /* Later values win, order of first appearance kept, numbers as written. */
    UPD(&h, "{\"target\":21,\"mode\":\"eco\",\"obj\":{\"a\":[1,2.50]}}");
    UPD(&h, "{\"target\":22.5}");
    DEL(&h, "{\"deleted\":[\"mode\",\"gone\"]}");
    char *s = take(&h);
    assert_string_equal(
        s, "{\"target\":22.5,\"obj\":{\"a\":[1,2.50]},\"deleted\":[\"mode\",\"gone\"]}");
    free(s);
    assert_true(power_held_empty(&h));
    assert_null(take(&h));

    /* An update after a deletion brings the key back and forgets the deletion. */
    DEL(&h, "{\"deleted\":[\"a\",\"b\"]}");
    UPD(&h, "{\"a\":true}");
    DEL(&h, "{\"deleted\":[\"b\"]}"); /* no duplicate */
    s = take(&h);
    assert_string_equal(s, "{\"a\":true,\"deleted\":[\"b\"]}");
    free(s);

    /* Only deletions; only updates; escaping of keys survives. */
    DEL(&h, "{\"deleted\":[\"x\"]}");
    s = take(&h);
    assert_string_equal(s, "{\"deleted\":[\"x\"]}");
    free(s);
    UPD(&h, "{\"q\\\"uote\":null}");
    s = take(&h);
    assert_string_equal(s, "{\"q\\\"uote\":null}");
    free(s);

    /* Bad bodies change nothing. */
    assert_int_equal(power_held_update(&h, "[1]", 3), -EBADMSG);
    assert_int_equal(power_held_update(&h, "{", 1), -EBADMSG);
    assert_int_equal(power_held_delete(&h, "{\"deleted\":1}", 13), -EBADMSG);
    assert_true(power_held_empty(&h));

    /* Many keys: growth, and fini frees what is still held. */
    char body[64];
    for (int i = 0; i < 100; i++) {
        snprintf(body, sizeof body, "{\"k%d\":%d}", i % 40, i);
        UPD(&h, body);
    }
    assert_int_equal(h.n, 40);
    DEL(&h, "{\"deleted\":[\"k0\",\"k1\"]}");
    assert_int_equal(h.n, 38);
    power_held_fini(&h);
    assert_true(power_held_empty(&h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_settings), cmocka_unit_test(test_device_override_and_resolve),
        cmocka_unit_test(test_psm_window),       cmocka_unit_test(test_edrx_window_and_first_after),
        cmocka_unit_test(test_held_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
