/* provision.h — devices that register themselves: provisioning with a profile's key and secret
 * (spec §3.9) and X.509 certificate-chain provisioning (§6.5).
 *
 * The rules only: a parsed request in, a result out. The transports own the wire (src/api
 * answers POST /api/v1/provision over CoAP; the HTTP device API can call the same function).
 * Both paths write through the store synchronously and then update the in-memory credential
 * registry, so a provisioned token or certificate works on the very next request.
 *
 * Chain provisioning keeps a small cache of the profiles whose provisioning type is
 * X509_CERTIFICATE_CHAIN (their CA certificates parsed, their CN patterns compiled) so that a
 * DTLS handshake with an unknown certificate costs only a comparison of issuer names unless a
 * configured CA really issued it. The cache is a pre-filter, never the authority: a match is
 * checked again against the profile as it is in the store at that moment, so removing a CA
 * from its profile stops provisioning at once, even before the cache is reloaded.
 */
#ifndef COAPHUB_DEVICE_PROVISION_H
#define COAPHUB_DEVICE_PROVISION_H

#include "core/arena.h"
#include "core/loop.h"
#include "device/hub.h"
#include "device/registry.h"
#include "store/store.h"
#include "values/body.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- provisioning with key and secret (§3.9) ---- */

typedef enum {
    PROVISION_CRED_ACCESS_TOKEN = 1, /* the default */
    PROVISION_CRED_X509,             /* "X509_CERTIFICATE" */
    PROVISION_CRED_MQTT_BASIC,       /* accepted by the parser, refused by the rules */
} provision_cred_kind_t;

/* A provision request as ThingsBoard's JsonConverter reads it. Strings are NUL-terminated,
 * never NULL (an absent optional field is ""). */
typedef struct provision_req {
    const char *device_name;         /* "deviceName": "" = a random 20-character name */
    const char *key;                 /* "provisionDeviceKey" (mandatory) */
    const char *secret;              /* "provisionDeviceSecret" (mandatory) */
    provision_cred_kind_t cred_type; /* "credentialsType" */
    const char *token;               /* "token": ACCESS_TOKEN preset, "" = generate one */
    const char *hash; /* "hash": X509_CERTIFICATE, the certificate (PEM or Base64 DER) */
} provision_req_t;

/* Parses a provision request body (JSON as the device payloads: lenient, under cfg's caps).
 * Fields are read as JsonElement.getAsString reads them (a number's text as written). Returns
 * 0, or -EBADMSG with a reason in err: not JSON, not an object, provisionDeviceKey or
 * provisionDeviceSecret missing, an unknown credentialsType, a field that is not a primitive.
 * Everything lives in arena until it is reset. Pure (fuzzed). */
int provision_req_parse(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                        provision_req_t *out, char *err, size_t err_cap);

typedef enum {
    PROVISION_SUCCESS = 0,
    PROVISION_NOT_FOUND, /* unknown key, wrong secret, provisioning disabled */
    PROVISION_FAILURE,   /* the request cannot be met: name taken, not pre-provisioned, ... */
} provision_status_t;

typedef struct provision_result {
    provision_status_t status;
    int64_t device_id;           /* SUCCESS */
    store_cred_type_t cred_type; /* SUCCESS */
    char *cred_value;            /* SUCCESS: the token, or the certificate's Base64 DER */
    char why[160];               /* what decided a NOT_FOUND or FAILURE, for the log */
} provision_result_t;

void provision_result_fini(provision_result_t *r);

/* Applies ThingsBoard's provisioning rules (DeviceProvisionServiceImpl) to req: finds the
 * profile by key, checks the secret in constant time, then by the profile's provision_type:
 * DISABLED (or anything else) -> NOT_FOUND; ALLOW_CREATE_NEW_DEVICES creates the device with
 * its credentials in one transaction (FAILURE when the name exists); CHECK_PRE_PROVISIONED_DEVICES
 * answers the existing device's credentials if the device is in that profile and has no
 * server attribute provisionState = "provisioned". On success provisionState is set to
 * "provisioned" and the registry learns new credentials. Returns 0 with out filled, or a
 * negative store error (the database failed: no answer about the request can be given).
 * Synchronous store calls; any thread. */
int provision_device(store_t *s, registry_t *reg, hub_t *hub, const provision_req_t *req,
                     provision_result_t *out);

/* ---- the same off the caller's thread ----
 *
 * POST /api/v1/provision is not authenticated, so anyone can make a shard ask the database
 * something. A provision worker takes those store calls off the shard threads: one thread,
 * a bounded queue; a shard hands a request over and answers from the completion posted back
 * to its loop, and when the queue is full it answers "busy" at once. */

typedef struct provision_worker provision_worker_t;

/* Requests waiting for the worker at most; more are refused with -EAGAIN. */
#define PROVISION_QUEUE_MAX 64

/* rc and r as provision_device returns them; r is valid during the call only. Runs on the
 * loop given to provision_worker_submit. */
typedef void (*provision_done_cb)(void *arg, int rc, const provision_result_t *r);

/* Starts the worker thread. store and registry must outlive it. */
provision_worker_t *provision_worker_new(store_t *s, registry_t *reg, hub_t *hub);
/* Copies req and queues it: provision_device runs on the worker thread, then done(arg, ..)
 * is posted to loop. 0, or -EAGAIN when PROVISION_QUEUE_MAX requests are waiting (done will
 * not be called). Any thread. */
int provision_worker_submit(provision_worker_t *w, const provision_req_t *req, loop_t *loop,
                            provision_done_cb done, void *arg);
/* Runs what is queued, stops the thread and frees the worker; the completions it posted run
 * with their loops (loop_drain at shutdown). Call while the store is still open.
 * provision_worker_free(NULL) does nothing. */
void provision_worker_free(provision_worker_t *w);

/* The response body of §3.9 for r (caller frees): {"credentialsValue":..,"credentialsType":..,
 * "status":"SUCCESS"}, or {"errorMsg":..,"status":"NOT_FOUND"|"FAILURE"}. */
char *provision_result_json(const provision_result_t *r);

/* ---- X.509 certificate-chain provisioning (§6.5) ---- */

/* Certificates a client may send above its leaf and still be provisioned (intermediates
 * between the leaf and a profile's CA). */
#define PROVISION_CHAIN_MAX_INTERMEDIATES 4

typedef struct provision_chain provision_chain_t;

/* The cache of chain-provisioning profiles, empty until provision_chain_reload. store and
 * registry must outlive it. */
provision_chain_t *provision_chain_new(store_t *s, registry_t *reg, hub_t *hub);
void provision_chain_free(provision_chain_t *pc);

/* Rebuilds the cache from the store's profiles (call after a profile is created, changed or
 * deleted, and at start). A profile whose CA or pattern does not parse is left out with a
 * warning. Returns 0, or a negative store error (the old cache stays). Any thread. */
int provision_chain_reload(provision_chain_t *pc);
/* Number of chain-provisioning profiles in the cache. */
size_t provision_chain_count(provision_chain_t *pc);

/* The device for a client certificate chain that the registry does not know: der[0] is the
 * leaf, der[1..n) the certificates the client sent above it. If a cached profile's CA issued
 * the chain (signatures and validity checked by OpenSSL against that CA alone, at most
 * PROVISION_CHAIN_MAX_INTERMEDIATES between), the leaf's CN matches the profile's pattern as a
 * whole, and the profile in the store still says so, the device named by the pattern is
 * created (if the profile allows it) or, when it exists in that profile with an X.509
 * credential, re-bound to this leaf; its id is returned. 0 otherwise, with a log line saying
 * why when a configured CA was involved. Cheap when no CA's name matches the chain's issuers
 * (no signature check, no store call). Touches the store only after a chain verified. Any
 * thread (a shard calls it once per completed handshake of an unknown certificate). */
int64_t provision_chain_identify(provision_chain_t *pc, const uint8_t *const *der,
                                 const size_t *len, size_t n);

#endif
