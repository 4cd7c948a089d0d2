/* test_notify.c — sd_notify(3)'s datagram protocol against real AF_UNIX datagram sockets: a
 * path and an abstract name ('@') receive the state string byte for byte; unset or empty
 * $NOTIFY_SOCKET is a no-op; unusable addresses are refused, not crashed on;
 * RELOADING=1 carries the CLOCK_MONOTONIC time; the watchdog interval honours WATCHDOG_PID. */
#include "core/notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* A datagram listener at address (path or '@name'); returns the fd. */
static int listen_at(const char *address)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(address);
    memcpy(sa.sun_path, address, len);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (address[0] == '@')
        sa.sun_path[0] = '\0';
    else
        salen++;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void test_path_socket(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/coaphub-notify-%d.sock", (int)getpid());
    unlink(path);
    int fd = listen_at(path);
    assert_int_equal(notify_send_to(path, "READY=1"), 1);
    expect_datagram(fd, "READY=1");
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(notify_send("STOPPING=1\nSTATUS=bye"), 1);
    expect_datagram(fd, "STOPPING=1\nSTATUS=bye");
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    unlink(path);
    /* Nobody listens there any more: an error, not a crash or a hang. */
    assert_true(notify_send_to(path, "READY=1") < 0);
}

static void test_abstract_socket(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "@coaphub-notify-test-%d", (int)getpid());
    int fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(notify_send("WATCHDOG=1"), 1);
    expect_datagram(fd, "WATCHDOG=1");

    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long before = (unsigned long long)ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
    assert_int_equal(notify_reloading(), 1);
    char buf[128];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    unsigned long long usec = 0;
    assert_int_equal(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long after = (unsigned long long)ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
    assert_true(usec >= before && usec <= after);
    unsetenv("NOTIFY_SOCKET");
    close(fd);
}

static void test_unset_and_bad(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(notify_send("READY=1"), 0);
    assert_int_equal(notify_reloading(), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(notify_send("READY=1"), 0);
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(notify_send_to(NULL, "READY=1"), 0);
    assert_int_equal(notify_send_to("relative/path", "READY=1"), -EAFNOSUPPORT);
    assert_int_equal(notify_send_to("vsock:2:1234", "READY=1"), -EAFNOSUPPORT);
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(notify_send_to(longpath, "READY=1"), -ENAMETOOLONG);
}

static void test_watchdog(void **state)
{
    (void)state;
    assert_int_equal(notify_watchdog_parse(NULL, NULL, 42), 0);
    assert_int_equal(notify_watchdog_parse("2000000", NULL, 42), 2000000);
    assert_int_equal(notify_watchdog_parse("2000000", "42", 42), 2000000);
    assert_int_equal(notify_watchdog_parse("2000000", "43", 42), 0); /* another process's */
    assert_int_equal(notify_watchdog_parse("2000000", "x", 42), 0);
    assert_int_equal(notify_watchdog_parse("0", NULL, 42), 0);
    assert_int_equal(notify_watchdog_parse("-5", NULL, 42), 0);
    assert_int_equal(notify_watchdog_parse("12s", NULL, 42), 0);
    assert_int_equal(notify_watchdog_parse("", NULL, 42), 0);
    assert_int_equal(notify_watchdog_parse("99999999999999999999999", NULL, 42), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "500000", 1);
    assert_int_equal(notify_watchdog_usec(), 500000);
    unsetenv("WATCHDOG_USEC");
    assert_int_equal(notify_watchdog_usec(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_unset_and_bad),
        cmocka_unit_test(test_watchdog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
