/* rest_fixture.h — shared set-up of the in-process REST tests: a real SQLite store in a
 * temp dir, the real registry and hub, and the server on an ephemeral loopback port, driven
 * with libcurl. */
#ifndef COAPHUB_TESTS_UNIT_HTTP_REST_FIXTURE_H
#define COAPHUB_TESTS_UNIT_HTTP_REST_FIXTURE_H

#include "http/http_int.h"

#include <stddef.h>

typedef struct world {
    char dir[64];
    store_t *store;
    registry_t *reg;
    hub_t *hub;
    http_server_t *srv;
    int port;
    char *token;
    char dev_uuid[STORE_UUID_LEN + 1];
    int64_t dev_id;
} world_t;

extern world_t W;

typedef struct buf {
    char *p;
    size_t n;
} buf_t;

/* libcurl write callback appending to a buf_t. */
size_t rest_on_data(char *p, size_t size, size_t n, void *arg);
/* Performs a request; returns the status and sets *out to the body (caller frees). */
long req(const char *method, const char *path, const char *body, const char *token,
         char **out);
/* Request with W.token expecting status want; returns the parsed body (NULL if empty). */
json_t *jreq(const char *method, const char *path, const char *body, long want);
/* Checks TB's error JSON shape and frees j. msg NULL = any message. */
void assert_error(json_t *j, int status, int code, const char *msg);
/* Group set-up / tear-down (cmocka_run_group_tests). */
int rest_setup(void **state);
int rest_teardown(void **state);
/* Logs in as the bootstrap administrator; sets W.token. */
void rest_login(void);

#endif
