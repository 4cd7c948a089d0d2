/* test_config.c — defaults < file < environment < flags, ThingsBoard env names, errors; and
 * that the defaults agree everywhere they are written: each default --help prints, given
 * back as that option's flag, leaves the configuration exactly as the modules' _cfg_default
 * functions made it, and docs/configuration.md holds --help as it is. */
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
    fprintf(f,
            "[coap]\nbind_port = 6000\npiggyback_timeout = 100\n[http]\nbind_port = 9000\n"
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
    assert_int_equal(c.udp.port, 5683);
    assert_int_equal(c.dtls.port, 5684);
    assert_int_equal(c.http.port, 8080);
    assert_string_equal(c.udp.bind_addr, "0.0.0.0");
    assert_true(c.store.synchronous_full);
    assert_true(c.api.type_cast);
    assert_non_null(c.data_dir);
    config_free(&c);
}

static void test_precedence(void **state)
{
    char *argv[] = {"coaphub", "--config", path, "--http-port", "9100", NULL};
    setenv("COAP_BIND_PORT", "6100", 1); /* ThingsBoard's name beats the file */
    config_t c;
    assert_int_equal(config_load(&c, 5, argv), CONFIG_RUN);
    assert_int_equal(c.udp.port, 6100);
    assert_int_equal(c.http.port, 9100); /* the flag beats the file */
    assert_int_equal(c.api.engine.piggyback_ms, 100);
    assert_false(c.store.synchronous_full);
    config_free(&c);
    setenv("COAPHUB_COAP_PORT", "6200", 1); /* our own name beats ThingsBoard's */
    assert_int_equal(config_load(&c, 5, argv), CONFIG_RUN);
    assert_int_equal(c.udp.port, 6200);
    config_free(&c);
    char *argv2[] = {"coaphub", "--config", path, "--coap-port", "6300", NULL};
    assert_int_equal(config_load(&c, 5, argv2), CONFIG_RUN);
    assert_int_equal(c.udp.port, 6300);
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

/* The PostgreSQL settings: ThingsBoard's variable names, our flags, checked values. */
static void test_database(void **state)
{
    (void)state;
    config_t c;
    char *argv0[] = {"coaphub", NULL};
    assert_int_equal(config_load(&c, 1, argv0), CONFIG_RUN);
    assert_null(c.store.database_url); /* unset = SQLite */
    assert_false(store_cfg_is_postgresql(&c.store));
    assert_string_equal(c.store.ts_partitioning, "MONTHS");
    assert_int_equal(c.store.ts_ttl_s, 0);
    assert_int_equal(c.store.ttl_interval_ms, 86400000);
    config_free(&c);

    setenv("SPRING_DATASOURCE_URL", "jdbc:postgresql://db:5432/thingsboard", 1);
    setenv("SPRING_DATASOURCE_USERNAME", "postgres", 1);
    setenv("SPRING_DATASOURCE_PASSWORD", "s3cret", 1);
    setenv("SQL_POSTGRES_TS_KV_PARTITIONING", "days", 1);
    setenv("SQL_TTL_TS_TS_KEY_VALUE_TTL", "2592000", 1);
    setenv("SQL_TTL_TS_EXECUTION_INTERVAL", "3600000", 1);
    assert_int_equal(config_load(&c, 1, argv0), CONFIG_RUN);
    assert_string_equal(c.store.database_url, "jdbc:postgresql://db:5432/thingsboard");
    assert_true(store_cfg_is_postgresql(&c.store));
    assert_string_equal(c.store.database_user, "postgres");
    assert_string_equal(c.store.database_password, "s3cret");
    assert_string_equal(c.store.ts_partitioning, "DAYS"); /* canonical spelling */
    assert_int_equal(c.store.ts_ttl_s, 2592000);
    assert_int_equal(c.store.ttl_interval_ms, 3600000);
    config_free(&c);

    char *flags[] = {"coaphub",           "--database", "postgresql://u:pw@h/db",
                     "--ts-partitioning", "INDEFINITE", NULL};
    assert_int_equal(config_load(&c, 5, flags), CONFIG_RUN);
    assert_string_equal(c.store.database_url, "postgresql://u:pw@h/db");
    assert_string_equal(c.store.ts_partitioning, "INDEFINITE");
    /* --print-config shows neither password. */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    config_print(&c, m);
    fclose(m);
    assert_non_null(strstr(buf, "[database]\nurl = postgresql://u:********@h/db\n"));
    assert_non_null(strstr(buf, "username = postgres\n"));
    assert_non_null(strstr(buf, "password = ********\n"));
    assert_null(strstr(buf, "s3cret"));
    assert_null(strstr(buf, ":pw@"));
    free(buf);
    config_free(&c);
    unsetenv("SPRING_DATASOURCE_URL");
    unsetenv("SPRING_DATASOURCE_USERNAME");
    unsetenv("SPRING_DATASOURCE_PASSWORD");
    unsetenv("SQL_POSTGRES_TS_KV_PARTITIONING");
    unsetenv("SQL_TTL_TS_TS_KEY_VALUE_TTL");
    unsetenv("SQL_TTL_TS_EXECUTION_INTERVAL");

    char *bad_part[] = {"coaphub", "--ts-partitioning", "WEEKS", NULL};
    assert_int_equal(config_load(&c, 3, bad_part), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *bad_url[] = {"coaphub", "--database", "mysql://u:pw@h/db", NULL};
    assert_int_equal(config_load(&c, 3, bad_url), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *bad_interval[] = {"coaphub", "--ttl-interval", "0", NULL};
    assert_int_equal(config_load(&c, 3, bad_interval), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *bad_ttl[] = {"coaphub", "--ts-ttl", "-1", NULL};
    assert_int_equal(config_load(&c, 3, bad_ttl), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *empty[] = {"coaphub", "--database", "", NULL}; /* given empty: SQLite */
    assert_int_equal(config_load(&c, 3, empty), CONFIG_RUN);
    assert_false(store_cfg_is_postgresql(&c.store));
    config_free(&c);
}

/* The HTTP device API's long-poll bounds: defaults as ThingsBoard's timeouts, TB's variable
 * names, and values that would let polls take every connection thread refused. */
static void test_long_polls(void **state)
{
    (void)state;
    config_t c;
    char *none[] = {"coaphub", NULL};
    assert_int_equal(config_load(&c, 1, none), CONFIG_RUN);
    assert_int_equal(c.http.long_poll_max, 256);
    assert_int_equal(c.http.long_poll_per_device, 4);
    assert_int_equal(c.http.long_poll_timeout_ms, 60000);
    assert_int_equal(c.http.long_poll_max_timeout_ms, 300000);
    config_free(&c);
    setenv("HTTP_REQUEST_TIMEOUT", "20000", 1);
    setenv("HTTP_MAX_REQUEST_TIMEOUT", "90000", 1);
    char *caps[] = {"coaphub", "--http-long-poll-max", "0", "--http-long-poll-per-device", "1",
                    NULL};
    assert_int_equal(config_load(&c, 5, caps), CONFIG_RUN);
    assert_int_equal(c.http.long_poll_max, 0); /* long polls off */
    assert_int_equal(c.http.long_poll_per_device, 1);
    assert_int_equal(c.http.long_poll_timeout_ms, 20000);
    assert_int_equal(c.http.long_poll_max_timeout_ms, 90000);
    config_free(&c);
    unsetenv("HTTP_REQUEST_TIMEOUT");
    unsetenv("HTTP_MAX_REQUEST_TIMEOUT");
    char *too_many[] = {"coaphub", "--http-long-poll-max", "901", NULL};
    assert_int_equal(config_load(&c, 3, too_many), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *per_dev[] = {"coaphub", "--http-long-poll-per-device", "0", NULL};
    assert_int_equal(config_load(&c, 3, per_dev), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *inverted[] = {"coaphub", "--http-long-poll-timeout-ms", "400000", NULL};
    assert_int_equal(config_load(&c, 3, inverted), CONFIG_EXIT_USAGE);
    config_free(&c);
    char *zero[] = {"coaphub", "--http-long-poll-timeout-ms", "0", NULL};
    assert_int_equal(config_load(&c, 3, zero), CONFIG_EXIT_USAGE);
    config_free(&c);
}

static void mask_is(const char *url, const char *want)
{
    char out[256];
    config_mask_url(url, out, sizeof out);
    if (strcmp(out, want) != 0)
        fail_msg("mask(%s) = %s, want %s", url, out, want);
}

static void test_mask_url(void **state)
{
    (void)state;
    mask_is("postgresql://u:pw@host:5432/db?sslmode=require",
            "postgresql://u:********@host:5432/db?sslmode=require");
    mask_is("postgres://u@host/db", "postgres://u@host/db");
    mask_is("postgresql://host/db", "postgresql://host/db");
    mask_is("postgresql://u:p/w@d@host/db", "postgresql://u:********@host/db");
    mask_is("jdbc:postgresql://h:5432/tb?user=u&password=pw&sslmode=disable",
            "jdbc:postgresql://h:5432/tb?user=u&password=********&sslmode=disable");
    mask_is("postgresql:///db?host=/run/pg&sslpassword=k",
            "postgresql:///db?host=/run/pg&sslpassword=********");
    mask_is("host=db user=u password=pw dbname=tb", "host=db user=u password=******** dbname=tb");
    mask_is("host=db password = 'p w\\' x' dbname=tb", "host=db password = ******** dbname=tb");
    mask_is("PASSWORD=pw", "PASSWORD=********");
    mask_is("host=db oops password=pw", "host=db oops password=********");
    mask_is("", "");
    char small[8];
    config_mask_url("postgresql://u:pw@h/db", small, sizeof small);
    assert_string_equal(small, "postgre");
}

static char *slurp_stream(void (*write)(FILE *, const void *), const void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    write(m, arg);
    fclose(m);
    return buf;
}

static void write_usage(FILE *f, const void *arg)
{
    (void)arg;
    config_usage(f);
}

static void write_config(FILE *f, const void *cfg)
{
    config_print(cfg, f);
}

/* Every "--flag TYPE ... default VALUE" pair of --help: loading "--flag VALUE" must give the
 * same effective configuration as loading nothing, which is the structs' defaults. */
static void test_help_defaults_are_the_structs(void **state)
{
    (void)state;
    char *help = slurp_stream(write_usage, NULL);
    char *argv0[] = {"coaphub", NULL};
    config_t plain;
    assert_int_equal(config_load(&plain, 1, argv0), CONFIG_RUN);
    char *want = slurp_stream(write_config, &plain);
    config_t def;
    config_defaults(&def);
    /* config_load starts from config_defaults: the structs are the one source. */
    assert_int_equal(plain.api.engine.piggyback_ms, def.api.engine.piggyback_ms);
    assert_int_equal(plain.api.engine.max_body, def.api.engine.max_body);
    assert_int_equal(plain.dtls.handshake_timeout_ms, def.dtls.handshake_timeout_ms);
    int checked = 0;
    char flag[80] = "";
    for (char *line = strtok(help, "\n"); line; line = strtok(NULL, "\n")) {
        char f[64];
        if (sscanf(line, "  --%63s", f) == 1 && strchr(line + 4, ' ')) {
            snprintf(flag, sizeof flag, "--%s", f);
            continue;
        }
        const char *d = strstr(line, "; default ");
        if (!d || !*flag)
            continue;
        d += strlen("; default ");
        if (strcmp(d, "(none)") == 0)
            continue;
        char *argv[] = {"coaphub", flag, (char *)d, NULL};
        config_t c;
        assert_int_equal(config_load(&c, 3, argv), CONFIG_RUN);
        char *got = slurp_stream(write_config, &c);
        if (strcmp(got, want) != 0)
            fail_msg("%s %s (the default --help prints) changes the configuration", flag, d);
        free(got);
        config_free(&c);
        checked++;
        *flag = '\0';
    }
    if (checked < 33) /* the 33 options with a default as of this writing, or more */
        fail_msg("only %d options with a default found in --help", checked);
    free(want);
    free(help);
    config_free(&plain);
}

/* docs/configuration.md shows --help between its first pair of ``` fences, exactly. */
static void test_docs_show_help(void **state)
{
    (void)state;
    FILE *f = fopen(COAPHUB_DOCS_DIR "/configuration.md", "r");
    assert_non_null(f);
    char *doc = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&doc, &cap, '\0', f);
    fclose(f);
    assert_true(n > 0);
    char *start = strstr(doc, "```\n");
    assert_non_null(start);
    start += 4;
    char *end = strstr(start, "```");
    assert_non_null(end);
    *end = '\0';
    char *help = slurp_stream(write_usage, NULL);
    if (strcmp(start, help) != 0)
        fail_msg(
            "docs/configuration.md differs from coaphub --help; paste the new --help "
            "between its first ``` fences");
    free(help);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_help_defaults_are_the_structs),
        cmocka_unit_test(test_docs_show_help), cmocka_unit_test(test_database),
        cmocka_unit_test(test_mask_url),       cmocka_unit_test(test_long_polls),
    };
    return cmocka_run_group_tests(tests, write_file, remove_file);
}
