/* outq.c — see outq.h. */
#include "core/outq.h"

#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { OUTQ_MAX_BATCH = 64 }; /* datagrams per sendmmsg call */

void outq_init(outq_t *q, size_t cap, size_t slot)
{
    *q = (outq_t){.cap = cap, .slot = slot};
    q->data = xmalloc(cap * slot);
    q->len = xcalloc(cap, sizeof *q->len);
    q->addr_len = xcalloc(cap, sizeof *q->addr_len);
    q->addr = xcalloc(cap, sizeof *q->addr);
}

void outq_fini(outq_t *q)
{
    free(q->data);
    free(q->len);
    free(q->addr_len);
    free(q->addr);
    *q = (outq_t){0};
}

void outq_flush(outq_t *q, int fd, uint64_t *sent, uint64_t *failed)
{
    struct mmsghdr msgs[OUTQ_MAX_BATCH];
    struct iovec iov[OUTQ_MAX_BATCH];
    size_t base = 0;
    while (fd >= 0 && base < q->n) {
        size_t m = q->n - base < OUTQ_MAX_BATCH ? q->n - base : OUTQ_MAX_BATCH;
        for (size_t i = 0; i < m; i++) {
            size_t k = base + i;
            iov[i] = (struct iovec){.iov_base = q->data + k * q->slot, .iov_len = q->len[k]};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &q->addr[k],
                                              .msg_namelen = q->addr_len[k],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
            msgs[i].msg_len = 0;
        }
        size_t done = 0;
        while (done < m) {
            int n = sendmmsg(fd, msgs + done, (unsigned)(m - done), MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                (*failed)++; /* the first one failed: skip it, try the rest */
                done++;
                continue;
            }
            *sent += (uint64_t)n;
            done += (size_t)n;
        }
        base += m;
    }
    q->n = 0;
}

int outq_push(outq_t *q, int fd, const uint8_t *p, size_t len, const struct sockaddr *a,
              socklen_t alen, uint64_t *sent, uint64_t *failed)
{
    if (len > q->slot)
        return -EMSGSIZE;
    if (q->n == q->cap)
        outq_flush(q, fd, sent, failed);
    size_t i = q->n++;
    memcpy(q->data + i * q->slot, p, len);
    q->len[i] = len;
    memcpy(&q->addr[i], a, alen);
    q->addr_len[i] = alen;
    return 0;
}
