/* codes.c — the one table from this module's negative errors to CoAP response codes
 * (spec §1.5). ThingsBoard answers every error with an empty body, and so do we.
 *
 * Storage that cannot take the request right now answers 5.03 Service Unavailable with
 * Max-Age API_RETRY_AFTER_S, never 5.00 and never 2.01 (reliability.md S2, S4): the database
 * is down or restarting, or corrupt (ERR_UNAVAILABLE: the store refuses writes then), the disk
 * is full (-ENOSPC), the database was made read-only or immutable (-EROFS), the disk fails
 * writes (-EIO), another process holds SQLite's lock past the busy timeout (-EBUSY), or a
 * bounded wait ran out (-EAGAIN, ERR_TIMEOUT). The store probes and takes writes again by
 * itself once the fault clears (store/health.c), and RFC 7252 §5.9.3.4 lets the client retry
 * after Max-Age seconds: the device keeps its points meanwhile. -ENOMEM, ERR_CORRUPT (a read
 * that met corruption) and ERR_STORE stay 5.00.
 */
#include "api/api_int.h"

#include "core/err.h"

#include <errno.h>

uint8_t api__code_for_err(int err)
{
    switch (err) {
    case 0: return COAP_CREATED;
    case -EBADMSG:
    case -EINVAL: return COAP_BAD_REQUEST;
    case -EACCES:
    case -EPERM: return COAP_UNAUTHORIZED;
    case -ENOENT: return COAP_NOT_FOUND;
    case ERR_UNAVAILABLE:
    case -ENOSPC:
    case -EROFS:
    case -EIO:
    case -EBUSY:
    case -EAGAIN:
    case ERR_TIMEOUT:
        return COAP_SERVICE_UNAVAILABLE;
    default:
        return COAP_INTERNAL_SERVER_ERROR; /* out of memory, corruption, SQL failure */
    }
}

void api__respond_err(coap_exchange_t *x, int err)
{
    uint8_t code = api__code_for_err(err);
    if (code == COAP_SERVICE_UNAVAILABLE)
        coap_exchange_set_max_age(x, API_RETRY_AFTER_S);
    coap_exchange_respond(x, code, COAP_CF_NONE, NULL, 0);
}
