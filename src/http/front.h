/* front.h — connection deadlines, eviction and the worker pool of the HTTP front (front.c). */
#ifndef COAPHUB_HTTP_FRONT_H
#define COAPHUB_HTTP_FRONT_H

#include "http/http.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_front_cfg {
    int64_t header_timeout_ms; /* request headers complete within this of the accept */
    int64_t idle_timeout_ms;   /* ... or of the previous answer on a kept-alive connection */
    int64_t body_min_rate;     /* bytes/s a body must average after the grace (0 = off) */
    size_t max_connections;    /* libmicrohttpd's limit: eviction starts at 90 % of it */
    size_t max_per_addr;       /* connections from one IPv4 address / IPv6 /64 */
    int max_workers;           /* handler threads at most */
    void (*tick)(void *ctx);   /* called by the watchdog on each pass (outside its lock) */
    void *tick_ctx;
} http_front_cfg_t;

typedef struct http_front http_front_t;

http_front_t *http__front_new(const http_front_cfg_t *cfg);
/* After MHD_stop_daemon: stops the watchdog, waits for idle workers to end. */
void http__front_free(http_front_t *f);
/* libmicrohttpd's accept policy (cls = the front): refuses an address at its cap. */
enum MHD_Result http__front_accept(void *cls, const struct sockaddr *addr, socklen_t len);
/* MHD_OPTION_NOTIFY_CONNECTION callback (cls = the front). */
void http__front_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                               enum MHD_ConnectionNotificationCode code);
/* Phases of the connection's current request, reported by the access handler. */
void http__front_headers_done(http_front_t *f, struct MHD_Connection *conn);
void http__front_body_bytes(http_front_t *f, struct MHD_Connection *conn, size_t n);
void http__front_handling(http_front_t *f, struct MHD_Connection *conn);
void http__front_request_done(http_front_t *f, struct MHD_Connection *conn);
/* Suspends conn and runs run(arg) on a worker, which resumes conn after it. Called from the
 * access handler. false: not taken (the server is stopping): answer on this thread. */
bool http__front_offload(http_front_t *f, struct MHD_Connection *conn, void (*run)(void *arg),
                         void *arg);
/* No new jobs from now on; waits until every queued and running job has resumed its
 * connection. */
void http__front_drain(http_front_t *f);
void http__front_count_bad_framing(http_front_t *f);
void http__front_stats(http_front_t *f, http_front_stats_t *out);

#endif
