/* transport.c — helpers shared by every transport. */
#include "core/transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

const char *transport_peer_addr_str(const transport_peer_t *p, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (p->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&p->addr;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(buf, cap, "%s:%u", ip, port);
    } else if (p->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&p->addr;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(buf, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, cap, "?");
    }
    return buf;
}
