/* err.h — assertions that stay on in every build, and the few project error codes.
 *
 * Functions return 0 or a negative errno (-EINVAL, -ENOMEM, ...). Codes that errno
 * has no name for live here, below ERR_BASE, so they never collide with errno.
 */
#ifndef COAPHUB_CORE_ERR_H
#define COAPHUB_CORE_ERR_H

#include <stddef.h>

#define ERR_LEN 256 /* size of the caller-provided error message buffers */

enum {
    ERR_BASE = -10000,
    ERR_CONFIG = ERR_BASE - 1,   /* invalid configuration value */
    ERR_STORE = ERR_BASE - 2,    /* backend (SQL) failure */
    ERR_CONFLICT = ERR_BASE - 3, /* uniqueness violated (name, token, certificate) */
    ERR_TIMEOUT = ERR_BASE - 4,  /* a bounded wait ran out */
    ERR_UNAVAILABLE = ERR_BASE -
                      5,        /* the database cannot be reached now: retry later (5.03, 503) */
    ERR_CORRUPT = ERR_BASE - 6, /* the database is damaged (SQLITE_CORRUPT, PG XX001/XX002) */
};

/* Names any error this project returns: a negative errno or one of the codes above. */
const char *err_str(int err);

/* Always-on assertion for our own invariants (never for hostile input). */
void err_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define ASSERT(e) ((e) ? (void)0 : err_assert_fail(#e, __FILE__, __LINE__))

#endif
