/* test_profiles.c — device profiles, a device's profile, OTA package rows; on both backends. */
#include "store_test_util.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static int64_t default_id(store_t *s)
{
    store_profile_t p;
    assert_int_equal(store_profile_get_default(s, &p), 0);
    int64_t id = p.id;
    store_profile_fini(&p);
    return id;
}

/* The default profile exists from the first open; a device without type or profile joins it,
 * one with a new type makes the profile of that name; devices from before schema 3 get theirs
 * at open. */
static void test_default_and_device_profiles(void **state)
{
    tstore_t *t = *state;
    store_profile_t p;
    assert_int_equal(store_profile_get_default(t->s, &p), 0);
    assert_string_equal(p.name, "default");
    assert_true(p.is_default);
    assert_string_equal(p.provision_type, "DISABLED");
    assert_non_null(p.data);
    int64_t def = p.id;
    store_profile_fini(&p);

    store_device_t d = {.name = "plain"};
    assert_int_equal(store_device_create(t->s, &d), 0);
    assert_int_equal(d.profile_id, def);
    store_device_t g;
    assert_int_equal(store_device_get(t->s, d.id, &g), 0);
    assert_string_equal(g.type, "default");
    assert_int_equal(g.profile_id, def);
    assert_int_equal(strlen(g.profile_uuid), STORE_UUID_LEN);
    store_device_fini(&g);

    store_device_t e = {.name = "typed", .type = "thermostat"};
    assert_int_equal(store_device_create(t->s, &e), 0);
    assert_true(e.profile_id != def);
    assert_int_equal(store_profile_get_by_name(t->s, "thermostat", &p), 0);
    assert_int_equal(p.id, e.profile_id);
    assert_false(p.is_default);
    store_profile_fini(&p);

    store_device_t bad = {.name = "bad", .profile_id = 987654};
    assert_int_equal(store_device_create(t->s, &bad), -ENOENT);

    /* A device row from before profiles (schema 2) joins the profile named as its type. */
    tstore_exec(t, "UPDATE device SET profile_id = NULL, type = 'legacy' WHERE name = 'plain'");
    store_close(t->s);
    assert_non_null(tstore_reopen(t));
    assert_int_equal(store_device_get_by_name(t->s, "plain", &g), 0);
    assert_int_equal(store_profile_get_by_name(t->s, "legacy", &p), 0);
    assert_int_equal(g.profile_id, p.id);
    assert_string_equal(g.type, "legacy");
    store_device_fini(&g);
    store_profile_fini(&p);
    assert_int_equal(default_id(t->s), def);

    /* An installation from before stored profiles answered with the deviceProfileId kept in
     * settings: its default profile is made with that id. */
    tstore_exec(t, "UPDATE device SET profile_id = NULL");
    tstore_exec(t, "DELETE FROM device_profile");
    tstore_exec(t,
                "INSERT INTO settings(key, value) VALUES ('default_profile_id',"
                " '0b6bd6a0-5c3e-4a2e-9d1c-1f2e3d4c5b6a')");
    store_close(t->s);
    assert_non_null(tstore_reopen(t));
    assert_int_equal(store_profile_get_default(t->s, &p), 0);
    assert_string_equal(p.uuid, "0b6bd6a0-5c3e-4a2e-9d1c-1f2e3d4c5b6a");
    assert_string_equal(p.name, "default");
    store_profile_fini(&p);
}

static void test_profile_crud(void **state)
{
    tstore_t *t = *state;
    int64_t def = default_id(t->s);
    store_profile_t p = {.name = "meters",
                         .provision_type = "ALLOW_CREATE_NEW_DEVICES",
                         .provision_key = "key-1",
                         .data = "{\"description\":\"m\"}"};
    assert_int_equal(store_profile_create(t->s, &p), 0);
    assert_true(p.id > 0);
    assert_int_equal(p.version, 1);
    store_profile_t dup = {.name = "meters"};
    assert_int_equal(store_profile_create(t->s, &dup), ERR_CONFLICT);
    store_profile_t dupkey = {.name = "other", .provision_key = "key-1"};
    assert_int_equal(store_profile_create(t->s, &dupkey), ERR_CONFLICT);

    store_profile_t g;
    assert_int_equal(store_profile_get_by_provision_key(t->s, "key-1", &g), 0);
    assert_int_equal(g.id, p.id);
    assert_string_equal(g.provision_type, "ALLOW_CREATE_NEW_DEVICES");
    assert_string_equal(g.data, "{\"description\":\"m\"}");
    store_profile_fini(&g);
    assert_int_equal(store_profile_get_by_uuid(t->s, p.uuid, &g), 0);
    assert_string_equal(g.name, "meters");
    store_profile_fini(&g);

    /* A device in it; a rename renames its type. */
    store_device_t d = {.name = "m1", .profile_id = p.id};
    assert_int_equal(store_device_create(t->s, &d), 0);
    p.name = "water-meters";
    p.firmware_id = "fw-uuid";
    assert_int_equal(store_profile_update(t->s, &p), 0);
    assert_int_equal(p.version, 2);
    store_device_t gd;
    assert_int_equal(store_device_get(t->s, d.id, &gd), 0);
    assert_string_equal(gd.type, "water-meters");
    store_device_fini(&gd);

    /* Default moves; deletes refused while default or in use. */
    assert_int_equal(store_profile_set_default(t->s, p.id), 0);
    assert_int_equal(default_id(t->s), p.id);
    assert_int_equal(store_profile_delete(t->s, p.id), -EBUSY);
    assert_int_equal(store_profile_set_default(t->s, def), 0);
    assert_int_equal(store_profile_delete(t->s, p.id), ERR_CONFLICT);
    assert_int_equal(store_profile_set_default(t->s, 424242), -ENOENT);
    assert_int_equal(store_device_delete(t->s, d.id), 0);
    assert_int_equal(store_profile_delete(t->s, p.id), 0);
    assert_int_equal(store_profile_get(t->s, p.id, &g), -ENOENT);
    assert_int_equal(store_profile_delete(t->s, p.id), -ENOENT);

    /* A new default through create clears the old one. */
    store_profile_t nd = {.name = "new-default", .is_default = true};
    assert_int_equal(store_profile_create(t->s, &nd), 0);
    assert_int_equal(default_id(t->s), nd.id);
    assert_int_equal(store_profile_get(t->s, def, &g), 0);
    assert_false(g.is_default);
    store_profile_fini(&g);
}

static void test_profile_list(void **state)
{
    tstore_t *t = *state;
    const char *names[] = {"Beta", "alpha", "gamma_x", "gammaY"};
    for (size_t i = 0; i < 4; i++) {
        store_profile_t p = {.name = (char *)names[i]};
        assert_int_equal(store_profile_create(t->s, &p), 0);
    }
    store_profile_page_t pg;
    assert_int_equal(store_profile_list(t->s, NULL, "name", true, 0, 3, &pg), 0);
    assert_int_equal(pg.total, 5);
    assert_int_equal(pg.n, 3);
    assert_string_equal(pg.items[0].name, "Beta"); /* byte-wise: upper case first */
    assert_string_equal(pg.items[1].name, "alpha");
    assert_string_equal(pg.items[2].name, "default");
    store_profile_page_fini(&pg);
    assert_int_equal(store_profile_list(t->s, "GAMMA_", "name", false, 0, 10, &pg), 0);
    assert_int_equal(pg.total, 1); /* '_' is literal */
    assert_string_equal(pg.items[0].name, "gamma_x");
    store_profile_page_fini(&pg);
    assert_int_equal(store_profile_list(t->s, NULL, "createdTime", true, 1, 4, &pg), 0);
    assert_int_equal(pg.n, 1);
    store_profile_page_fini(&pg);
    assert_int_equal(store_profile_list(t->s, NULL, "nope", true, 0, 4, &pg), -EINVAL);
}

static int64_t count_cb_n;
static void count_cb(void *arg, const store_ota_t *o)
{
    (void)arg;
    (void)o;
    count_cb_n++;
}

static void test_ota(void **state)
{
    tstore_t *t = *state;
    int64_t def = default_id(t->s);
    store_ota_t o = {.profile_id = def,
                     .type = "FIRMWARE",
                     .title = "fw",
                     .version = "1.0",
                     .checksum_algorithm = "SHA256"};
    assert_int_equal(store_ota_create(t->s, &o), 0);
    assert_true(o.id > 0);
    store_ota_t dup = {.profile_id = def, .type = "SOFTWARE", .title = "fw", .version = "1.0"};
    assert_int_equal(store_ota_create(t->s, &dup), ERR_CONFLICT);
    store_ota_t noprof = {.profile_id = 777777, .type = "FIRMWARE", .title = "x", .version = "1"};
    assert_int_equal(store_ota_create(t->s, &noprof), -ENOENT);
    store_ota_t badtype = {.profile_id = def, .type = "BIOS", .title = "x", .version = "1"};
    assert_int_equal(store_ota_create(t->s, &badtype), -EINVAL);
    store_ota_t sw = {.profile_id = def, .type = "SOFTWARE", .title = "app", .version = "2"};
    assert_int_equal(store_ota_create(t->s, &sw), 0);

    o.has_data = true;
    o.data_size = 1048576;
    o.checksum = "abc";
    o.file_name = "fw.bin";
    assert_int_equal(store_ota_update(t->s, &o), 0);
    store_ota_t g;
    assert_int_equal(store_ota_get_by_uuid(t->s, o.uuid, &g), 0);
    assert_true(g.has_data);
    assert_int_equal(g.data_size, 1048576);
    assert_string_equal(g.checksum, "abc");
    assert_int_equal(g.profile_id, def);
    assert_int_equal(strlen(g.profile_uuid), STORE_UUID_LEN);
    store_ota_fini(&g);

    store_ota_page_t page;
    assert_int_equal(store_ota_list(t->s, "FIRMWARE", 0, false, NULL, NULL, true, 0, 10, &page), 0);
    assert_int_equal(page.total, 1);
    store_ota_page_fini(&page);
    assert_int_equal(store_ota_list(t->s, NULL, def, true, NULL, "title", true, 0, 10, &page), 0);
    assert_int_equal(page.total, 1);
    assert_string_equal(page.items[0].title, "fw");
    store_ota_page_fini(&page);
    assert_int_equal(store_ota_list(t->s, NULL, 0, false, "AP", "title", true, 0, 10, &page), 0);
    assert_int_equal(page.total, 1);
    store_ota_page_fini(&page);
    count_cb_n = 0;
    assert_int_equal(store_ota_foreach(t->s, count_cb, NULL), 0);
    assert_int_equal(count_cb_n, 2);

    /* Assigned to a device: not deleted; the device list by profile sees who has its own. */
    store_device_t d = {.name = "d1", .firmware_id = o.uuid};
    assert_int_equal(store_device_create(t->s, &d), 0);
    store_device_t d2 = {.name = "d2"};
    assert_int_equal(store_device_create(t->s, &d2), 0);
    int64_t *ids;
    size_t n;
    assert_int_equal(store_device_ids_by_profile(t->s, def, "firmware", &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], d2.id);
    free(ids);
    assert_int_equal(store_device_ids_by_profile(t->s, def, NULL, &ids, &n), 0);
    assert_int_equal(n, 2);
    free(ids);
    assert_int_equal(store_ota_delete(t->s, o.id), -EBUSY);
    d.firmware_id = NULL;
    assert_int_equal(store_device_update(t->s, &d), 0);
    assert_int_equal(store_ota_delete(t->s, o.id), 0);
    assert_int_equal(store_ota_get_by_uuid(t->s, o.uuid, &g), -ENOENT);

    /* Assigned to a profile: not deleted either; a deleted profile takes its packages. */
    store_profile_t p = {.name = "with-sw"};
    assert_int_equal(store_profile_create(t->s, &p), 0);
    store_ota_t sw2 = {.profile_id = p.id, .type = "SOFTWARE", .title = "app", .version = "3"};
    assert_int_equal(store_ota_create(t->s, &sw2), 0);
    store_profile_t dp;
    assert_int_equal(store_profile_get(t->s, def, &dp), 0);
    free(dp.software_id);
    dp.software_id = xstrdup(sw.uuid);
    assert_int_equal(store_profile_update(t->s, &dp), 0);
    store_profile_fini(&dp);
    assert_int_equal(store_ota_delete(t->s, sw.id), -EBUSY);
    assert_int_equal(store_profile_delete(t->s, p.id), 0);
    assert_int_equal(store_ota_get_by_uuid(t->s, sw2.uuid, &g), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_and_device_profiles, tstore_setup,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_profile_crud, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_profile_list, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_ota, tstore_setup, tstore_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
