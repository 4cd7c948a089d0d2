/* test_config.c — defaults < file < environment < flags, ThingsBoard env names, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "app/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static int write_file(void **state)
{
    snprintf(path, sizeof path, "/tmp/coaphub-cfg-XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "[coap]\nbind_port = 6000\npiggyback_timeout = 100\n[http]\nbind_port = 9000\n"
               "[store]\nsynchronous_full = false\n");
    fclose(f);
    unsetenv("COAP_BIND_PORT");
    unsetenv("COAPHUB_COAP_PORT");
    unsetenv("HTTP_BIND_PORT");
    unsetenv("COAPHUB_CONFIG");
    return 0;
}

static int remove_file(void **state)
{
    unlink(path);
    return 0;
}

static void test_defaults(void **state)
{
    char *argv[] = {"coaphub", NULL};
    config_t c;
    assert_int_equal(config_load(&c, 1, argv), CONFIG_RUN);
    assert_int_equal(c.coap_port, 5683);
    assert_int_equal(c.coaps_port, 5684);
    assert_int_equal(c.http_port, 8080);
    assert_string_equal(c.bind, "0.0.0.0");
    assert_true(c.sync_full);
    assert_true(c.type_cast);
    assert_non_null(c.data_dir);
    config_free(&c);
}

static void test_precedence(void **state)
{
    char *argv[] = {"coaphub", "--config", path, "--http-port", "9100", NULL};
    setenv("COAP_BIND_PORT", "6100", 1); /* ThingsBoard's name beats the file */
    config_t c;
    assert_int_equal(config_load(&c, 5, argv), CONFIG_RUN);
    assert_int_equal(c.coap_port, 6100);
    assert_int_equal(c.http_port, 9100); /* the flag beats the file */
    assert_int_equal(c.piggyback_ms, 100);
    assert_false(c.sync_full);
    config_free(&c);
    setenv("COAPHUB_COAP_PORT", "6200", 1); /* our own name beats ThingsBoard's */
    assert_int_equal(config_load(&c, 5, argv), CONFIG_RUN);
    assert_int_equal(c.coap_port, 6200);
    config_free(&c);
    char *argv2[] = {"coaphub", "--config", path, "--coap-port", "6300", NULL};
    assert_int_equal(config_load(&c, 5, argv2), CONFIG_RUN);
    assert_int_equal(c.coap_port, 6300);
    config_free(&c);
    unsetenv("COAP_BIND_PORT");
    unsetenv("COAPHUB_COAP_PORT");
}

static void test_errors(void **state)
{
    config_t c;
    char *bad_int[] = {"coaphub", "--coap-port", "abc", NULL};
    assert_int_equal(config_load(&c, 3, bad_int), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *bad_port[] = {"coaphub", "--coap-port", "70000", NULL};
    assert_int_equal(config_load(&c, 3, bad_port), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *unknown[] = {"coaphub", "--no-such-flag", NULL};
    assert_int_equal(config_load(&c, 2, unknown), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *missing[] = {"coaphub", "--config", "/nonexistent/coaphub.ini", NULL};
    assert_int_equal(config_load(&c, 3, missing), CONFIG_EXIT_USAGE);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, write_file, remove_file);
}
