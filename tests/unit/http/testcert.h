/* testcert.h — throwaway self-signed EC P-256 certificates for the http/x509 tests. */
#ifndef COAPHUB_TESTS_UNIT_HTTP_TESTCERT_H
#define COAPHUB_TESTS_UNIT_HTTP_TESTCERT_H

#include <stddef.h>
#include <stdint.h>

/* PEM text of a new self-signed certificate with CN=cn (caller frees). If der/der_len are
 * not NULL they receive its DER encoding (caller frees). */
char *testcert_new(const char *cn, uint8_t **der, size_t *der_len);

#endif
