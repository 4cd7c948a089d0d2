/* test_device.c — schema/migrations, devices, credentials, users, settings, RPC records. */
#include "store_test_util.h"

#include "core/err.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_migrations_idempotent(void **state)
{
    tstore_t *t = *state;
    int v = store_schema_version(t->s);
    assert_true(v >= 1);
    int64_t id = tstore_device(t->s, "keep-me");
    assert_true(id > 0);
    store_close(t->s);
    assert_non_null(tstore_reopen(t));
    assert_int_equal(store_schema_version(t->s), v);
    store_close(t->s);
    assert_non_null(tstore_reopen(t));
    /* each migration recorded exactly once, and the tables exist */
    char row[64], want[64];
    assert_int_equal(
        tstore_query(t, "SELECT COUNT(*), MAX(version) FROM schema_version", row, sizeof(row)), 0);
    snprintf(want, sizeof(want), "%d|%d", v, v);
    assert_string_equal(row, want);
    if (t->pg) { /* telemetry is partitioned by time (pg_migrate.c) */
        assert_int_equal(tstore_query(t,
                                      "SELECT COUNT(*) FROM pg_partitioned_table"
                                      " WHERE partrelid = 'ts_kv'::regclass",
                                      row, sizeof(row)),
                         0);
        assert_string_equal(row, "1");
    } else {
        assert_int_equal(tstore_query(t, "PRAGMA journal_mode", row, sizeof(row)), 0);
        assert_string_equal(row, "wal");
    }
    store_device_t d;
    assert_int_equal(store_device_get(t->s, id, &d), 0);
    assert_string_equal(d.name, "keep-me");
    store_device_fini(&d);
}

static void test_uuid_v4(void **state)
{
    (void)state;
    char a[STORE_UUID_LEN + 1], b[STORE_UUID_LEN + 1];
    store_uuid_v4(a);
    store_uuid_v4(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
}

static void test_device_crud(void **state)
{
    tstore_t *t = *state;
    store_device_t d = {.name = "Thermostat A", .label = "hall"};
    assert_int_equal(store_device_create(t->s, &d), 0);
    assert_true(d.id > 0);
    assert_int_equal(strlen(d.uuid), 36);
    assert_int_equal(d.version, 1);
    assert_true(d.created_ms > 1600000000000);
    assert_null(d.type); /* only id, uuid, created_ms, version are filled */

    store_device_t dup = {.name = "Thermostat A"};
    assert_int_equal(store_device_create(t->s, &dup), ERR_CONFLICT);

    store_device_t g;
    assert_int_equal(store_device_get_by_uuid(t->s, d.uuid, &g), 0);
    assert_int_equal(g.id, d.id);
    assert_string_equal(g.label, "hall");
    assert_string_equal(g.type, "default");
    assert_null(g.additional_info);
    store_device_fini(&g);
    assert_int_equal(store_device_get_by_name(t->s, "Thermostat A", &g), 0);
    assert_int_equal(g.id, d.id);
    store_device_fini(&g);
    assert_int_equal(store_device_get_by_name(t->s, "thermostat a", &g), -ENOENT);

    /* update: rename, bump version; conflict with another device's name */
    int64_t other = tstore_device(t->s, "Other");
    assert_true(other > 0);
    d.type = "sensor";
    d.profile_id = 0; /* by type: the profile "sensor", made now */
    d.name = "Thermostat B";
    d.additional_info = "{\"a\":1}";
    assert_int_equal(store_device_update(t->s, &d), 0);
    assert_int_equal(d.version, 2);
    assert_int_equal(store_device_get(t->s, d.id, &g), 0);
    assert_string_equal(g.name, "Thermostat B");
    assert_string_equal(g.type, "sensor");
    assert_string_equal(g.additional_info, "{\"a\":1}");
    assert_int_equal(g.version, 2);
    store_device_fini(&g);
    d.name = "Other";
    assert_int_equal(store_device_update(t->s, &d), ERR_CONFLICT);
    store_device_t ghost = {.id = 99999, .name = "ghost"};
    assert_int_equal(store_device_update(t->s, &ghost), -ENOENT);

    assert_int_equal(store_device_delete(t->s, d.id), 0);
    assert_int_equal(store_device_get(t->s, d.id, &g), -ENOENT);
    assert_int_equal(store_device_delete(t->s, d.id), -ENOENT);
}

static void test_device_list(void **state)
{
    tstore_t *t = *state;
    const char *names[] = {"beta", "Alpha-1", "alpha-2", "gamma", "ALPHA_3", "al%x"};
    const char *types[] = {"t1", "t2", "t1", "t2", "t1", "t1"};
    for (size_t i = 0; i < 6; i++) {
        store_device_t d = {.name = (char *)names[i], .type = (char *)types[i]};
        assert_int_equal(store_device_create(t->s, &d), 0);
        usleep(2000); /* distinct createdTime */
    }
    store_device_page_t p;
    /* default: createdTime ascending */
    assert_int_equal(store_device_list(t->s, NULL, NULL, NULL, true, 0, 4, &p), 0);
    assert_int_equal(p.total, 6);
    assert_int_equal(p.n, 4);
    assert_string_equal(p.items[0].name, "beta");
    assert_string_equal(p.items[3].name, "gamma");
    store_device_page_fini(&p);
    assert_int_equal(store_device_list(t->s, NULL, NULL, NULL, true, 1, 4, &p), 0);
    assert_int_equal(p.total, 6);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.items[1].name, "al%x");
    store_device_page_fini(&p);

    /* case-insensitive prefix; LIKE wildcards in the search are literal */
    assert_int_equal(store_device_list(t->s, "ALPHA", NULL, "name", true, 0, 10, &p), 0);
    assert_int_equal(p.total, 3);
    assert_int_equal(p.n, 3);
    store_device_page_fini(&p);
    assert_int_equal(store_device_list(t->s, "al%", NULL, "name", true, 0, 10, &p), 0);
    assert_int_equal(p.total, 1);
    assert_string_equal(p.items[0].name, "al%x");
    store_device_page_fini(&p);
    assert_int_equal(store_device_list(t->s, "alpha_", NULL, "name", true, 0, 10, &p), 0);
    assert_int_equal(p.total, 1); /* '_' is not a wildcard: only ALPHA_3 */
    store_device_page_fini(&p);

    /* sort by name descending (SQLite BINARY order: upper case first when ascending) */
    assert_int_equal(store_device_list(t->s, NULL, NULL, "name", false, 0, 10, &p), 0);
    assert_string_equal(p.items[0].name, "gamma");
    assert_string_equal(p.items[5].name, "ALPHA_3");
    store_device_page_fini(&p);

    /* type filter + sort by type */
    assert_int_equal(store_device_list(t->s, NULL, "t2", "type", true, 0, 10, &p), 0);
    assert_int_equal(p.total, 2);
    store_device_page_fini(&p);
    assert_int_equal(store_device_list(t->s, NULL, NULL, "createdTime", false, 0, 1, &p), 0);
    assert_string_equal(p.items[0].name, "al%x");
    store_device_page_fini(&p);
    assert_int_equal(store_device_list(t->s, NULL, NULL, "label", true, 0, 10, &p), 0);
    assert_int_equal(p.n, 6);
    store_device_page_fini(&p);

    assert_int_equal(store_device_list(t->s, NULL, NULL, "bogus", true, 0, 10, &p), -EINVAL);
    assert_int_equal(store_device_list(t->s, NULL, NULL, NULL, true, 0, 0, &p), -EINVAL);
    assert_int_equal(store_device_list(t->s, NULL, NULL, NULL, true, -1, 10, &p), -EINVAL);
}

static void count_cred(void *arg, const store_cred_t *c)
{
    int *n = arg;
    assert_non_null(c->cred_id);
    (*n)++;
}

static void test_credentials(void **state)
{
    tstore_t *t = *state;
    int64_t a = tstore_device(t->s, "a"), b = tstore_device(t->s, "b");
    store_cred_t c = {.device_id = a, .type = CRED_ACCESS_TOKEN, .cred_id = "TOKEN_A"};
    assert_int_equal(store_cred_set(t->s, &c), 0);
    assert_int_equal(c.version, 1);
    char uuid[STORE_UUID_LEN + 1];
    memcpy(uuid, c.uuid, sizeof(uuid));

    /* replace: same row, uuid kept, version bumped */
    store_cred_t c2 = {.device_id = a, .type = CRED_X509, .cred_id = "abcdef",
                       .cred_value = "MIIB"};
    assert_int_equal(store_cred_set(t->s, &c2), 0);
    assert_string_equal(c2.uuid, uuid);
    assert_int_equal(c2.version, 2);
    store_cred_t g;
    assert_int_equal(store_cred_get_by_id(t->s, "TOKEN_A", &g), -ENOENT);
    assert_int_equal(store_cred_get_by_id(t->s, "abcdef", &g), 0);
    assert_int_equal(g.device_id, a);
    assert_int_equal(g.type, CRED_X509);
    assert_string_equal(g.cred_value, "MIIB");
    assert_string_equal(g.uuid, uuid);
    store_cred_fini(&g);

    /* conflict: b cannot take a's id */
    store_cred_t cb = {.device_id = b, .type = CRED_ACCESS_TOKEN, .cred_id = "abcdef"};
    assert_int_equal(store_cred_set(t->s, &cb), ERR_CONFLICT);
    cb.cred_id = "TOKEN_B";
    assert_int_equal(store_cred_set(t->s, &cb), 0);
    assert_int_equal(store_cred_get_by_device(t->s, b, &g), 0);
    assert_string_equal(g.cred_id, "TOKEN_B");
    assert_null(g.cred_value);
    assert_int_equal(g.type, CRED_ACCESS_TOKEN);
    store_cred_fini(&g);
    /* setting the same id again on the same device is fine */
    assert_int_equal(store_cred_set(t->s, &cb), 0);
    assert_int_equal(cb.version, 2);

    /* unknown device */
    store_cred_t cx = {.device_id = 4242, .type = CRED_ACCESS_TOKEN, .cred_id = "X"};
    assert_int_equal(store_cred_set(t->s, &cx), -ENOENT);

    int n = 0;
    assert_int_equal(store_cred_foreach(t->s, count_cred, &n), 0);
    assert_int_equal(n, 2);

    /* deleting the device removes its credentials */
    assert_int_equal(store_device_delete(t->s, a), 0);
    assert_int_equal(store_cred_get_by_device(t->s, a, &g), -ENOENT);
    assert_int_equal(store_cred_get_by_id(t->s, "abcdef", &g), -ENOENT);

    store_cred_type_t ty;
    assert_int_equal(store_cred_type_parse("X509_CERTIFICATE", &ty), 0);
    assert_int_equal(ty, CRED_X509);
    assert_string_equal(store_cred_type_name(CRED_ACCESS_TOKEN), "ACCESS_TOKEN");
    assert_int_equal(store_cred_type_parse("MQTT_BASIC", &ty), -EINVAL);
}

static void test_users_settings(void **state)
{
    tstore_t *t = *state;
    int64_t n;
    assert_int_equal(store_user_count(t->s, &n), 0);
    assert_int_equal(n, 0);
    store_user_t u = {.email = "admin@example.com", .password_hash = "$2b$10$x",
                      .first_name = "Ada"};
    assert_int_equal(store_user_create(t->s, &u), 0);
    assert_true(u.id > 0);
    assert_null(u.authority);
    store_user_t dup = {.email = "ADMIN@example.com", .password_hash = "h",
                        .authority = "TENANT_ADMIN"};
    assert_int_equal(store_user_create(t->s, &dup), ERR_CONFLICT);
    store_user_t g;
    assert_int_equal(store_user_get_by_email(t->s, "admin@example.com", &g), 0);
    assert_string_equal(g.first_name, "Ada");
    assert_string_equal(g.authority, "TENANT_ADMIN");
    assert_null(g.last_name);
    store_user_fini(&g);
    assert_int_equal(store_user_set_password(t->s, u.id, "$2b$10$y"), 0);
    assert_int_equal(store_user_get_by_uuid(t->s, u.uuid, &g), 0);
    assert_string_equal(g.password_hash, "$2b$10$y");
    store_user_fini(&g);
    assert_int_equal(store_user_set_password(t->s, 999, "z"), -ENOENT);
    assert_int_equal(store_user_get_by_email(t->s, "nobody@x", &g), -ENOENT);
    assert_int_equal(store_user_count(t->s, &n), 0);
    assert_int_equal(n, 1);

    char *v = NULL;
    assert_int_equal(store_setting_get(t->s, "jwt.key", &v), -ENOENT);
    assert_int_equal(store_setting_set(t->s, "jwt.key", "one"), 0);
    assert_int_equal(store_setting_set(t->s, "jwt.key", "two"), 0);
    assert_int_equal(store_setting_get(t->s, "jwt.key", &v), 0);
    assert_string_equal(v, "two");
    free(v);
}

static void test_rpc(void **state)
{
    tstore_t *t = *state;
    int64_t dev = tstore_device(t->s, "rpcdev");
    int64_t max;
    assert_int_equal(store_rpc_max_request_id(t->s, dev, &max), 0);
    assert_int_equal(max, 0);
    store_rpc_t r = {.device_id = dev, .request_id = 7, .method = "setGpio",
                     .params = "{\"pin\":7}", .status = "QUEUED", .expiration_ms = 123,
                     .persistent = true};
    assert_int_equal(store_rpc_create(t->s, &r), 0);
    assert_int_equal(strlen(r.uuid), 36);
    store_rpc_t g;
    store_rpc_t r2 = {.device_id = dev, .request_id = 3, .method = "m", .oneway = true};
    assert_int_equal(store_rpc_create(t->s, &r2), 0);
    assert_int_equal(store_rpc_get(t->s, r2.uuid, &g), 0);
    assert_string_equal(g.status, "QUEUED");
    assert_true(g.oneway);
    store_rpc_fini(&g);
    assert_int_equal(store_rpc_max_request_id(t->s, dev, &max), 0);
    assert_int_equal(max, 7);

    assert_int_equal(store_rpc_set_status(t->s, r.uuid, "SUCCESSFUL", "{\"ok\":1}"), 0);
    assert_int_equal(store_rpc_get(t->s, r.uuid, &g), 0);
    assert_string_equal(g.status, "SUCCESSFUL");
    assert_string_equal(g.response, "{\"ok\":1}");
    assert_string_equal(g.params, "{\"pin\":7}");
    assert_int_equal(g.expiration_ms, 123);
    assert_true(g.persistent);
    assert_false(g.oneway);
    store_rpc_fini(&g);
    assert_int_equal(store_rpc_set_status(t->s, "00000000-0000-4000-8000-000000000000", "X",
                                          NULL),
                     -ENOENT);
    /* unknown device: foreign key */
    store_rpc_t bad = {.device_id = 31337, .method = "m", .status = "QUEUED"};
    assert_int_equal(store_rpc_create(t->s, &bad), -ENOENT);

    assert_int_equal(store_device_delete(t->s, dev), 0);
    assert_int_equal(store_rpc_get(t->s, r.uuid, &g), -ENOENT);
}

/* A device with its credentials is created whole or not at all: a taken token or a taken
 * name leaves no row of either kind behind. */
static void test_device_with_credentials(void **state)
{
    tstore_t *t = *state;
    store_device_t a = {.name = "with-cred"};
    store_cred_t ca = {.type = CRED_ACCESS_TOKEN, .cred_id = "TOKEN-A"};
    assert_int_equal(store_device_create_with_cred(t->s, &a, &ca), 0);
    assert_true(a.id > 0);
    assert_int_equal(ca.device_id, a.id);
    assert_int_equal(ca.version, 1);
    store_cred_t got;
    assert_int_equal(store_cred_get_by_id(t->s, "TOKEN-A", &got), 0);
    assert_int_equal(got.device_id, a.id);
    store_cred_fini(&got);

    /* the token belongs to a: the second device is not created either */
    store_device_t b = {.name = "token-taken"};
    store_cred_t cb = {.type = CRED_ACCESS_TOKEN, .cred_id = "TOKEN-A"};
    assert_int_equal(store_device_create_with_cred(t->s, &b, &cb), -EEXIST);
    store_device_t none;
    assert_int_equal(store_device_get_by_name(t->s, "token-taken", &none), -ENOENT);

    /* the name is taken: its new token is not stored */
    store_device_t c = {.name = "with-cred"};
    store_cred_t cc = {.type = CRED_ACCESS_TOKEN, .cred_id = "TOKEN-C"};
    assert_int_equal(store_device_create_with_cred(t->s, &c, &cc), ERR_CONFLICT);
    assert_int_equal(store_cred_get_by_id(t->s, "TOKEN-C", &got), -ENOENT);
    assert_int_equal(tstore_rows(t, "device"), 1);
    assert_int_equal(tstore_rows(t, "device_credentials"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_v4),
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_device_crud, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_device_list, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_credentials, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_device_with_credentials, tstore_setup,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_users_settings, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_rpc, tstore_setup, tstore_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
