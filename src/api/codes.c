/* codes.c — the one table from this module's negative errors to CoAP response codes
 * (spec §1.5). ThingsBoard answers every error with an empty body, and so do we. */
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
    default: return COAP_INTERNAL_SERVER_ERROR; /* store down, disk full, queue failure */
    }
}
