/* udp_echo.c — the floor of the benchmark: a bare UDP "CoAP echo" that answers each datagram
 * with the same bytes, turned into a piggy-backed ACK (type ACK, code 2.05, same MID and
 * token), so coaphub-bench can drive it exactly as it drives a CoAP server.
 *
 * One thread, blocking recvmmsg/sendmmsg in batches of 64; nothing parsed beyond the first two
 * header bytes. Usage: udp_echo ADDR PORT [SECONDS] (exits after SECONDS, default 600, so a
 * forgotten echo never outlives its benchmark). Built by bench/run with cc -O2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ADDR PORT [SECONDS]\n", argv[0]);
        return 1;
    }
    alarm(argc > 3 ? (unsigned)atoi(argv[3]) : 600u);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (fd < 0 || inet_pton(AF_INET, argv[1], &a.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("udp_echo");
        return 1;
    }
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    static unsigned char bufs[BATCH][1536];
    struct sockaddr_in peers[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof bufs[i]};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i],
                                              .msg_namelen = sizeof peers[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            unsigned len = msgs[i].msg_len;
            if (len >= 4 && (bufs[i][0] & 0x30) == 0x00) { /* CON -> ACK 2.05 */
                bufs[i][0] = (unsigned char)((bufs[i][0] & 0xCF) | 0x20);
                bufs[i][1] = 0x45;
            } else if (len >= 4 && (bufs[i][0] & 0x30) == 0x10) { /* NON -> NON 2.05 */
                bufs[i][1] = 0x45;
            }
            iov[i].iov_len = len;
        }
        sendmmsg(fd, msgs, (unsigned)n, 0);
    }
}
