/* sockaddr.h — socket addresses as table keys, and the shard's UDP socket.
 *
 * Shared by the plain UDP and the DTLS transports, which both keep a peer table keyed by
 * the remote address and both bind one SO_REUSEPORT socket per shard.
 */
#ifndef COAPHUB_CORE_SOCKADDR_H
#define COAPHUB_CORE_SOCKADDR_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Keyed hash (core/hash.h) of family, port and address. Only AF_INET and AF_INET6 are
 * meaningful. */
uint64_t sockaddr_hash(const struct sockaddr_storage *a);
/* Same family, address and port. */
bool sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* The "source address" a per-address limit counts, without the port: an IPv4 address (also
 * when it arrives IPv4-mapped on a "::" socket) or the /64 prefix of an IPv6 address (one
 * host or LAN usually holds a whole /64, so limiting single IPv6 addresses would limit
 * nothing). Writes a type byte and the bytes to out; returns the length (5 or 9), or 0 for
 * another family. */
#define SOCKADDR_PREFIX_KEY_MAX 9
size_t sockaddr_prefix_key(const struct sockaddr_storage *a,
                           uint8_t out[static SOCKADDR_PREFIX_KEY_MAX]);

/* The bytes a keyed MAC binds to a peer (the DTLS cookie, the CoAP Echo value): family (2) |
 * port (2, network order) | address (4 or 16). Returns the length (8 or 20), or 0 for another
 * family or a short alen. */
#define SOCKADDR_MAC_BYTES_MAX 20
size_t sockaddr_mac_bytes(const struct sockaddr *a, socklen_t alen,
                          uint8_t out[static SOCKADDR_MAC_BYTES_MAX]);

/* Creates a non-blocking UDP socket bound to addr:port (an IPv4 or IPv6 literal; "::" also
 * accepts IPv4), with SO_REUSEPORT so every shard can bind the same port, and receive and
 * send buffers of buffer_bytes. what names the listener in error messages ("CoAP", "DTLS").
 * Returns the fd, or -1 with err filled. */
int sockaddr_udp_bind(const char *addr, int port, int buffer_bytes, const char *what,
                      char err[static ERR_LEN]);
/* The local port a socket is bound to, or -1. */
int sockaddr_local_port(int fd);

#endif
