/* xmalloc.h — allocation that aborts on exhaustion.
 *
 * Our defence against memory exhaustion is caps on every per-peer resource, not recovery
 * paths that are never tested (STYLE.md §5). These wrappers print and abort on failure.
 */
#ifndef COAPHUB_CORE_XMALLOC_H
#define COAPHUB_CORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* Duplicates a NUL-terminated string; xstrdup(NULL) returns NULL. */
char *xstrdup(const char *s);
/* Copies len bytes and appends a NUL. */
char *xstrndup(const char *s, size_t len);
/* printf into a new string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
