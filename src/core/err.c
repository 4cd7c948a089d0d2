/* err.c — error names and the always-on assertion handler. */
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *err_str(int err)
{
    switch (err) {
    case 0: return "ok";
    case ERR_CONFIG: return "invalid configuration";
    case ERR_STORE: return "storage backend failure";
    case ERR_CONFLICT: return "already exists";
    case ERR_TIMEOUT: return "timed out";
    case ERR_UNAVAILABLE:
        return "database unavailable";
    case ERR_CORRUPT:
        return "database corrupt";
    default: break;
    }
    if (err < 0 && err > ERR_BASE)
        return strerror(-err);
    return "unknown error";
}

void err_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "coaphub: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
