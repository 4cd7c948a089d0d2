/* test_outq.c — queued datagrams leave in order with sendmmsg; a full queue sends itself;
 * a datagram larger than a slot is refused for the caller to send. */
#include "core/outq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static int bound_socket(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
    socklen_t len = sizeof *a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)a, &len), 0);
    return fd;
}

static void test_outq_order_and_overflow(void **state)
{
    (void)state;
    struct sockaddr_in ra, sa;
    int rx = bound_socket(&ra), tx = bound_socket(&sa);
    outq_t q;
    outq_init(&q, 2, 16);
    uint64_t sent = 0, failed = 0;
    const char *msgs[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(outq_push(&q, tx, (const uint8_t *)msgs[i], strlen(msgs[i]),
                                   (struct sockaddr *)&ra, sizeof ra, &sent, &failed),
                         0);
    assert_int_equal(sent, 2); /* the third push found the queue full and sent it */
    assert_int_equal(q.n, 1);
    uint8_t big[17] = {0};
    assert_int_equal(outq_push(&q, tx, big, sizeof big, (struct sockaddr *)&ra, sizeof ra,
                               &sent, &failed),
                     -EMSGSIZE);
    outq_flush(&q, tx, &sent, &failed);
    assert_int_equal(sent, 3);
    assert_int_equal(failed, 0);
    assert_int_equal(q.n, 0);
    for (int i = 0; i < 3; i++) {
        char buf[32];
        ssize_t n = recv(rx, buf, sizeof buf, 0);
        assert_int_equal(n, (ssize_t)strlen(msgs[i]));
        assert_memory_equal(buf, msgs[i], (size_t)n);
    }
    outq_fini(&q);
    close(rx);
    close(tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_outq_order_and_overflow)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
