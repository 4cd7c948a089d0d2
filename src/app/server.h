/* server.h — the daemon assembled: store, credential registry, hub, datagram shards and the
 * REST server, started and stopped in the right order. main.c only parses and calls these.
 */
#ifndef COAPHUB_APP_SERVER_H
#define COAPHUB_APP_SERVER_H

#include "app/config.h"
#include "core/err.h"

#include <stdbool.h>

typedef struct server server_t;

/* Opens the data dir and database, creates the first administrator if needed, binds every
 * listener and starts the shard threads. NULL and err filled on failure. */
server_t *server_start(const config_t *cfg, char err[static ERR_LEN]);
/* SIGHUP: reloads the X.509 chain provisioning profiles from the store and the DTLS server
 * certificate for new handshakes. 0, or a negative error with err filled (what failed to
 * reload stays as it was). */
int server_reload(server_t *s, char err[static ERR_LEN]);
/* Watchdog (main thread): true when every shard loop ran the beat posted by the previous
 * call (the first call: true), then posts the next one. A shard that is stuck makes it false
 * until it turns again, and the keep-alive to the service manager is withheld. */
bool server_heartbeat(server_t *s);
/* Stops accepting, answers what is in flight, commits the last batch, frees everything. */
void server_stop(server_t *s);

#endif
