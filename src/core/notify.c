/* notify.c — sd_notify(3)'s datagram protocol, spoken directly.
 *
 * Why not libsystemd's sd_notify(): the protocol is one AF_UNIX datagram of "KEY=VALUE"
 * lines to the address in $NOTIFY_SOCKET, documented by systemd as a stable interface that
 * other implementations may speak (sd_notify(3), "Notes"); doing it here keeps core on libc
 * alone (STYLE.md 2.2), adds no runtime dependency to the package, and works the same under
 * any manager that sets the variable. We support the two address forms systemd hands out to
 * services: a filesystem path and an abstract name ('@' first). (systemd also knows
 * "vsock:" addresses, for virtual machines' managers; they are refused with -EAFNOSUPPORT.)
 *
 * A socket per message: the messages are rare (a few per start, stop, reload, and one per
 * half watchdog period), so nothing is kept open, and any thread may call without a lock.
 * MONOTONIC_USEC uses CLOCK_MONOTONIC, which is what systemd compares it with.
 */
#include "core/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int notify_send_to(const char *address, const char *state)
{
    if (!address || !*address)
        return 0; /* not started by a manager that listens: nothing to say */
    if (address[0] != '/' && address[0] != '@')
        return -EAFNOSUPPORT;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(address);
    if (len >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, address, len);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (address[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, no terminator */
    else
        salen++; /* a path includes its terminating NUL */

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 1;
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    if (n < 0)
        rc = -errno;
    else if ((size_t)n != strlen(state))
        rc = -EMSGSIZE;
    close(fd);
    return rc;
}

int notify_send(const char *state)
{
    return notify_send_to(getenv("NOTIFY_SOCKET"), state);
}

int notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[64];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    return notify_send(msg);
}

/* A whole positive decimal number, or -1. */
static long long parse_positive(const char *s)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return -1;
    return v;
}

int64_t notify_watchdog_parse(const char *usec, const char *pid, pid_t self)
{
    long long us = parse_positive(usec);
    if (us <= 0)
        return 0;
    /* The manager names the process it watches; a child that inherited the variables of its
     * parent must not ping for it (sd_watchdog_enabled(3)). */
    if (pid) {
        long long p = parse_positive(pid);
        if (p <= 0 || p != (long long)self)
            return 0;
    }
    return us;
}

int64_t notify_watchdog_usec(void)
{
    return notify_watchdog_parse(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), getpid());
}
