/* sockaddr.h — socket addresses as table keys, and the shard's UDP socket.
 *
 * Shared by the plain UDP and the DTLS transports, which both keep a peer table keyed by
 * the remote address and both bind one SO_REUSEPORT socket per shard.
 */
#ifndef COAPHUB_CORE_SOCKADDR_H
#define COAPHUB_CORE_SOCKADDR_H

#include "core/err.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Keyed hash (core/hash.h) of family, port and address. Only AF_INET and AF_INET6 are
 * meaningful. */
uint64_t sockaddr_hash(const struct sockaddr_storage *a);
/* Same family, address and port. */
bool sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Creates a non-blocking UDP socket bound to addr:port (an IPv4 or IPv6 literal; "::" also
 * accepts IPv4), with SO_REUSEPORT so every shard can bind the same port, and receive and
 * send buffers of buffer_bytes. what names the listener in error messages ("CoAP", "DTLS").
 * Returns the fd, or -1 with err filled. */
int sockaddr_udp_bind(const char *addr, int port, int buffer_bytes, const char *what,
                      char err[static ERR_LEN]);
/* The local port a socket is bound to, or -1. */
int sockaddr_local_port(int fd);

#endif
