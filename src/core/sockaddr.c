/* sockaddr.c — see sockaddr.h. */
#include "core/sockaddr.h"

#include "core/hash.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

uint64_t sockaddr_hash(const struct sockaddr_storage *a)
{
    /* Family, port and address packed without padding, so equal addresses hash equally
     * whatever the rest of the storage holds. */
    uint8_t key[2 + 2 + 16];
    size_t n;
    uint16_t family = a->ss_family;
    memcpy(key, &family, 2);
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)a;
        memcpy(key + 2, &s->sin_port, 2);
        memcpy(key + 4, &s->sin_addr, 4);
        n = 8;
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)a;
        memcpy(key + 2, &s->sin6_port, 2);
        memcpy(key + 4, &s->sin6_addr, 16);
        n = 20;
    }
    return hash_bytes(key, n);
}

bool sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

size_t sockaddr_mac_bytes(const struct sockaddr *a, socklen_t alen,
                          uint8_t out[static SOCKADDR_MAC_BYTES_MAX])
{
    if (a->sa_family == AF_INET && alen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)a;
        out[0] = 0;
        out[1] = 4;
        memcpy(out + 2, &s->sin_port, 2);
        memcpy(out + 4, &s->sin_addr, 4);
        return 8;
    }
    if (a->sa_family == AF_INET6 && alen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)a;
        out[0] = 0;
        out[1] = 6;
        memcpy(out + 2, &s->sin6_port, 2);
        memcpy(out + 4, &s->sin6_addr, 16);
        return 20;
    }
    return 0;
}

size_t sockaddr_prefix_key(const struct sockaddr_storage *a,
                           uint8_t out[static SOCKADDR_PREFIX_KEY_MAX])
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a;
        out[0] = 4;
        memcpy(out + 1, &x->sin_addr, 4);
        return 5;
    }
    if (a->ss_family != AF_INET6)
        return 0;
    const struct sockaddr_in6 *x = (const void *)a;
    if (IN6_IS_ADDR_V4MAPPED(&x->sin6_addr)) {
        out[0] = 4;
        memcpy(out + 1, x->sin6_addr.s6_addr + 12, 4);
        return 5;
    }
    out[0] = 6;
    memcpy(out + 1, x->sin6_addr.s6_addr, 8);
    return 9;
}

int sockaddr_udp_bind(const char *addr, int port, int buffer_bytes, const char *what,
                      char err[static ERR_LEN])
{
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (port < 0 || port > 65535) {
        snprintf(err, ERR_LEN, "%s port %d out of range", what, port);
        return -1;
    }
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
    } else {
        snprintf(err, ERR_LEN, "bind address '%s' is not an IPv4 or IPv6 literal", addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, ERR_LEN, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    /* No SO_REUSEADDR: on UDP it lets any local process, of any user, bind the same port and
     * take datagrams meant for us, and a client's ephemeral port may then be ours (seen: a
     * coap-client on loopback bound to the daemon's port and answered itself 4.04). The
     * shards share the port with SO_REUSEPORT, which the kernel limits to our own user. */
    /* With SO_REUSEPORT set, a bind to port 0 may be given a port that another socket of
     * the same user already holds with SO_REUSEPORT (measured: 10 of 900 binds), silently
     * splitting that socket's traffic with ours. So port 0 is bound first without it, which
     * gets a port nobody holds, and SO_REUSEPORT is set right after: the other shards can
     * still join that port, as they join a configured one. */
    if (port != 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    /* Large buffers absorb bursts while a shard is busy; the kernel caps them at
     * net.core.rmem_max unless we are privileged (the FORCE variants). */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof buffer_bytes) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer_bytes, sizeof buffer_bytes) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        snprintf(err, ERR_LEN, "bind %s udp port %d (%s): %s", addr, port, what, strerror(errno));
        close(fd);
        return -1;
    }
    if (port == 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    return fd;
}

int sockaddr_local_port(int fd)
{
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) != 0)
        return -1;
    if (bound.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
}
