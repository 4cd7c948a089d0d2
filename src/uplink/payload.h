/* payload.h — the device API's other bodies: client-side RPC, RPC replies and claims
 * (spec §3.6–§3.8; module-internal).
 *
 * Telemetry and attribute bodies are values' job (values/body.h); these bodies carry no
 * stored values, only a method, a reply or a claim secret. Each function parses with
 * values_parse under the shard's caps and returns 0 or -EBADMSG with a reason in err (for
 * the log; ThingsBoard answers errors with an empty body). Results live in the caller's
 * arena, or are string literals, until the arena is reset.
 */
#ifndef COAPHUB_UPLINK_PAYLOAD_H
#define COAPHUB_UPLINK_PAYLOAD_H

#include "core/arena.h"
#include "values/body.h"

#include <stddef.h>
#include <stdint.h>

/* Client-side RPC (§3.7): {"method":..,"params":..}. *method is the method text, *params the
 * compact JSON of params ("null" when absent); both NULL on an error. */
int uplink_payload_client_rpc(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                              const char **method, const char **params, char *err, size_t err_cap);
/* Server-side RPC reply (§3.6): must be a JSON object; *compact receives its compact text. */
int uplink_payload_rpc_reply(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                             const char **compact, char *err, size_t err_cap);
/* Claim (§3.8): optional body {"secretKey":..,"durationMs":..}. An empty body or a JSON
 * value that is not an object gives secret "" and duration 0 (= use the default). */
int uplink_payload_claim(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                         const char **secret, int64_t *duration_ms, char *err, size_t err_cap);

#endif
