/* http_int.h — private declarations shared by the files of src/http.
 *
 * Request flow: server.c accumulates the body (capped), finds the route (router.c, table in
 * routes.c), checks the JWT (jwt.c) unless the route is public, and calls one handler
 * (auth.c, rest_*.c). A handler fills an http_resp_t and returns; errors go through the one
 * table in codes.c. Pure body parsers live in body.c so they can be fuzzed without a server.
 */
#ifndef COAPHUB_HTTP_HTTP_INT_H
#define COAPHUB_HTTP_HTTP_INT_H

#include "http/http.h"

#include "device/token.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Daemon;
struct MHD_Connection;

#define HTTP_UUID_NULL "13814000-1dd2-11b2-8080-808080808080" /* TB's "no customer" */
#define HTTP_MAX_PARAMS 4
#define HTTP_JWT_KEY_LEN 64
#define HTTP_TOKEN_MAX DEVICE_TOKEN_MAX /* access-token credentialsId length cap */

/* Failed-login throttle: per username (hashed), bounded table, oldest slot reused. */
#define HTTP_LOGIN_SLOTS 256
#define HTTP_LOGIN_MAX_FAILS 5        /* failures before the lockout starts */
#define HTTP_LOGIN_LOCK_MS (60 * 1000) /* lockout after the last failure */

/* Verified-token cache (jwt_cache.c) and device uuid -> id cache (device_cache.c). */
#define HTTP_JWT_CACHE_SLOTS 64
#define HTTP_DEV_CACHE_SLOTS 32768 /* ~1.5 MiB at most, touched only as devices are used */
typedef struct http_jwt_cache http_jwt_cache_t;
typedef struct http_dev_cache http_dev_cache_t;

typedef struct http_login_slot {
    uint64_t user_hash;
    int fails;
    int64_t last_ms;
} http_login_slot_t;

struct http_server {
    http_cfg_t cfg;          /* string members point into the copies below */
    char *bind_addr, *jwt_issuer;
    store_t *store;
    registry_t *reg;
    hub_t *hub;
    struct MHD_Daemon *daemon;
    atomic_bool ready;
    uint8_t jwt_key[HTTP_JWT_KEY_LEN + 64];
    size_t jwt_key_len;
    char tenant_id[STORE_UUID_LEN + 1];
    pthread_mutex_t mu;      /* guards n_background, inflight, stopping */
    pthread_cond_t bg_done;
    int n_background;        /* persistent-RPC threads still running */
    struct http_inflight *inflight; /* RPC calls waiting in the hub (rest_rpc.c) */
    bool stopping;                  /* set by http_server_stop: no new RPC calls or long polls */
    struct http_poll *polls;        /* long polls waiting (device_poll.c) */
    pthread_mutex_t login_mu;
    http_login_slot_t login[HTTP_LOGIN_SLOTS];
    http_jwt_cache_t *jwt_cache; /* access tokens that verified (keyed by the exact string) */
    http_dev_cache_t *dev_cache; /* device uuid -> id for the telemetry/attribute handlers */
    struct http_devact *devact;  /* activity of devices on the HTTP device API */
    struct http_front *front;    /* deadlines, eviction and handler workers (front.c) */
    struct sse *streams;         /* open event streams (events.c), under mu */
};

/* ---- requests and responses ---- */

typedef struct http_claims {
    char sub[256];                    /* user email */
    char user_id[STORE_UUID_LEN + 1];
    bool refresh;                     /* a refresh token (scope REFRESH_TOKEN) */
    bool tenant_admin;                /* scopes contain TENANT_ADMIN */
    int64_t iat, exp;                 /* seconds */
} http_claims_t;

typedef struct http_ota_upload http_ota_upload_t;

typedef struct http_req {
    const char *method;
    const char *path;
    const char *body;       /* NUL-terminated copy of the body (body_len bytes) */
    size_t body_len;
    char *params[HTTP_MAX_PARAMS]; /* path parameters in pattern order (owned) */
    size_t n_params;
    struct MHD_Connection *conn;   /* NULL in tests that call handlers directly */
    http_server_t *srv;
    http_claims_t claims;
    http_ota_upload_t *upload; /* the streamed OTA image upload (rest_ota.c), or NULL */
} http_req_t;

typedef struct http_resp {
    struct MHD_Response *stream; /* set by streaming handlers (events.c) instead of body */
    struct http_poll *poll;      /* set by a long poll (device_poll.c): answered later */
    int status;
    char *body;               /* malloc'd, may be NULL */
    size_t body_len;
    const char *content_type; /* static string */
} http_resp_t;

/* Sets a JSON body (takes ownership of j, may be NULL for an empty 200). */
void http__resp_json(http_resp_t *r, int status, json_t *j);
/* Sets a JSON body already written as text (takes ownership of text, malloc'd): answers
 * holding stored values, which values/render.h writes. */
void http__resp_json_text(http_resp_t *r, int status, char *text);
/* Sets a plain-text body (TB's telemetry controller answers some errors this way). */
void http__resp_text(http_resp_t *r, int status, const char *text);
/* Serialises with the project's number format (integers stay integers). */
char *http__dumps(const json_t *j);

/* ---- codes.c: the one error table ---- */

typedef enum {
    HTTP_E_GENERAL = 0,          /* 500, errorCode 2 */
    HTTP_E_AUTH,                 /* 401, 10 "Authentication failed" */
    HTTP_E_BAD_LOGIN,            /* 401, 10 "Invalid username or password" */
    HTTP_E_JWT_EXPIRED,          /* 401, 11 "Token has expired" */
    HTTP_E_PERMISSION,           /* 403, 20 */
    HTTP_E_BAD_PARAMS,           /* 400, 31 */
    HTTP_E_NOT_FOUND,            /* 404, 32 "Requested item wasn't found!" */
    HTTP_E_NO_ROUTE,             /* 404, 32 "Not found" (no such path) */
    HTTP_E_METHOD,               /* 405, 31 */
    HTTP_E_VERSION,              /* 409, 35 */
    HTTP_E_TOO_LARGE,            /* 413, 31 */
    HTTP_E_TOO_MANY,             /* 429, 33 */
    HTTP_E_UNAVAILABLE,          /* 503, 2 */
    HTTP_E_RPC_BAD_REPLY,        /* 406, 2 (two-way reply is not JSON) */
    HTTP_E_RPC_NO_REPLY_V1,      /* 408, 2 */
    HTTP_E_RPC_NOT_DELIVERED_V1, /* 409, 2 */
    HTTP_E_RPC_TIMEOUT_V2,       /* 504, 2 */
    HTTP_E_NOT_IMPLEMENTED,      /* 501, 2 (a transfer coding other than chunked) */
    HTTP_E_COUNT
} http_err_t;

typedef struct http_err_info {
    int status;
    int error_code;
    const char *message;
} http_err_info_t;

const http_err_info_t *http__err_info(http_err_t e);
/* {"status":..,"message":..,"errorCode":..,"timestamp":..}; caller frees. */
char *http__error_json(int status, const char *message, int error_code, int64_t ts_ms);
/* Fills r with the error JSON of e; message NULL = the table's default text. */
void http__resp_error(http_resp_t *r, http_err_t e, const char *message);
/* Maps a store error to the table: -ENOENT 404; -EINVAL, ERR_CONFLICT 400; the database
 * cannot take it now (ERR_UNAVAILABLE, -ENOSPC, -EROFS, -EBUSY, -EAGAIN, ERR_TIMEOUT) 503;
 * anything else 500. */
http_err_t http__err_from_store(int err);
/* Fills r with the error JSON a failed store call (err < 0) maps to: the one place where
 * handlers turn store errors into answers. */
void http__resp_store_error(http_resp_t *r, int err);

/* Seconds a 503 tells the client to wait before retrying (Retry-After, RFC 9110 §10.2.3), the
 * same as the Max-Age of the device API's 5.03 (api_int.h API_RETRY_AFTER_S). */
#define HTTP_RETRY_AFTER_S 5

/* ---- router.c ---- */

typedef void (*http_handler_fn)(http_req_t *req, http_resp_t *resp);

enum { HTTP_ROUTE_PUBLIC = 1 }; /* no JWT needed */

typedef struct http_route {
    const char *method;
    const char *pattern; /* "/api/device/{id}": {x} matches one non-empty segment */
    http_handler_fn fn;
    unsigned flags;
} http_route_t;

/* True if path matches pattern; then params[] receive copies of the {x} segments (caller
 * frees them) and *n_params their count. A trailing '/' on path is ignored. */
bool http__route_match(const char *pattern, const char *path, char *params[HTTP_MAX_PARAMS],
                       size_t *n_params);
/* First route matching method and path, or NULL; *path_known tells whether some other
 * method would have matched (405 rather than 404). */
const http_route_t *http__route_find(const http_route_t *routes, size_t n, const char *method,
                                     const char *path, char *params[HTTP_MAX_PARAMS],
                                     size_t *n_params, bool *path_known);
/* The route table (routes.c). */
extern const http_route_t http__routes[];
extern const size_t http__n_routes;

/* ---- jwt.c ---- */

/* Signs an HS512 JWT for claims (iat/exp in seconds). Caller frees. */
char *http__jwt_sign(const uint8_t *key, size_t key_len, const char *issuer,
                     const char *tenant_id, const http_claims_t *c);
/* Verifies signature (HS512 only), then expiry against now_s. Returns 0 and fills out,
 * -EKEYEXPIRED if valid but expired, or -EACCES for anything else. */
int http__jwt_verify(const uint8_t *key, size_t key_len, const char *token, int64_t now_s,
                     http_claims_t *out);
/* ---- jwt_cache.c ---- */

/* A cache of verified tokens for one signing key (copied). Any thread. */
http_jwt_cache_t *http__jwt_cache_new(const uint8_t *key, size_t key_len);
/* Frees it and wipes the tokens it holds; NULL does nothing. */
void http__jwt_cache_free(http_jwt_cache_t *c);
/* Same contract as http__jwt_verify with the cache's key: a token that verified before and
 * has not expired (exp > now_s) is answered from the cache; anything else gets the full
 * check, and a token that passes it is remembered. Any thread. */
int http__jwt_cache_verify(http_jwt_cache_t *c, const char *token, int64_t now_s,
                           http_claims_t *out);
/* Lookups answered from the cache and not (tests, metrics). */
void http__jwt_cache_stats(http_jwt_cache_t *c, uint64_t *hits, uint64_t *misses);

/* ---- device_cache.c ---- */

/* uuid (36 lower-case chars) -> device id, bounded (HTTP_DEV_CACHE_SLOTS, 4-way sets).
 * Race rule: take a generation with http__dev_cache_gen before reading the store, and pass
 * it to _put; a _forget (device deleted) in between bumps the generation, so an answer read
 * before the delete is never cached after it. Any thread. */
http_dev_cache_t *http__dev_cache_new(void);
void http__dev_cache_free(http_dev_cache_t *c);
uint64_t http__dev_cache_gen(http_dev_cache_t *c);
/* True and *id if uuid is cached. */
bool http__dev_cache_get(http_dev_cache_t *c, const char *uuid, int64_t *id);
/* Caches uuid -> id unless a _forget happened since gen was taken. */
void http__dev_cache_put(http_dev_cache_t *c, const char *uuid, int64_t id, uint64_t gen);
/* The device is gone (call after the store delete returned): drops it, bumps the generation. */
void http__dev_cache_forget(http_dev_cache_t *c, const char *uuid);

/* base64url without padding; caller frees. */
char *http__b64url(const uint8_t *p, size_t n);

/* ---- password.c ---- */

/* bcrypt ($2b$, cost 10) hash of password; caller frees. NULL if hashing failed. */
char *http__password_hash(const char *password);
/* Constant-time comparison of crypt_r(password, hash) with hash. */
bool http__password_verify(const char *password, const char *hash);

/* ---- body.c: pure JSON body handling (fuzzed by tests/fuzz/rest_json.c) ---- */

/* Parses JSON with duplicate keys rejected; NULL on error. */
json_t *http__json_parse(const char *body, size_t len);
/* Telemetry body (object, {ts,values}, or array of those) -> points, typed by values' REST
 * rules (values/body.h); points without a ts get now_ms. 0 or -EINVAL with ThingsBoard's
 * message in msg; out is left empty on an error. */
int http__telemetry_parse(const char *body, size_t len, int64_t now_ms, store_kv_list_t *out,
                          char *msg, size_t cap);
/* Attribute save body (JSON object, no nulls, no blank keys) -> kvs at now_ms, as above. */
int http__attributes_parse(const char *body, size_t len, int64_t now_ms, store_kv_list_t *out,
                           char *msg, size_t cap);

typedef struct http_cred_req {
    char *id;           /* credentials uuid from {"id":{"id":..}} or NULL */
    char *device_uuid;  /* deviceId.id or NULL */
    store_cred_type_t type;
    char *cred_id;      /* token, or the certificate hash */
    char *cred_value;   /* canonical Base64 for X.509, NULL for tokens */
} http_cred_req_t;

/* Validates a credentials object (ACCESS_TOKEN, X509_CERTIFICATE, PSK, or LWM2M_CREDENTIALS in PSK mode, stored as PSK). Returns 0 or -EINVAL
 * with TB's message in msg. */
int http__cred_from_json(const json_t *o, http_cred_req_t *out, char *msg, size_t cap);
void http__cred_req_fini(http_cred_req_t *c);

typedef struct http_device_req {
    char *uuid;          /* "id":{"id":..} for an update, else NULL */
    char *name, *label, *additional_info; /* additional_info: JSON text */
    char *type;         /* NULL when absent or empty: the default profile (unless profile_uuid) */
    char *profile_uuid; /* deviceProfileId.id (lower case) or NULL; wins over type */
    char *firmware_uuid, *software_uuid; /* firmwareId.id / softwareId.id or NULL */
    char *device_data; /* deviceData normalised (http__device_data_from_json) or NULL */
} http_device_req_t;

int http__device_from_json(const json_t *o, http_device_req_t *out, char *msg, size_t cap);
void http__device_req_fini(http_device_req_t *d);

/* ---- profile_body.c: DeviceProfile and deviceData JSON (fuzzed by tests/fuzz/rest_json.c) ---- */

typedef struct http_profile_req {
    char *uuid; /* id.id (lower case) for an update, else NULL */
    char *name;
    bool is_default;
    int64_t version;      /* "version" when given (optimistic locking), else 0 */
    char *provision_type; /* always set: DISABLED, ALLOW_CREATE_NEW_DEVICES, ... */
    char *provision_key;  /* NULL when DISABLED; for X509_CERTIFICATE_CHAIN the CA's hash */
    char *firmware_uuid, *software_uuid; /* OTA package ids or NULL */
    char *data; /* the rest of the profile as store_profile_t.data, normalised */
} http_profile_req_t;

/* Validates a DeviceProfile body as ThingsBoard does (name, types, provisioning: key and
 * secret required when provisioning is on; for X509_CERTIFICATE_CHAIN the secret must be a
 * parseable CA chain, kept as canonical PEM, and the key becomes the first certificate's hash;
 * certificateRegExPattern must compile as a POSIX extended regex with a group) and fills out.
 * 0, or -EINVAL with the message in msg. Nothing is looked up: uniqueness and the existence of
 * referenced OTA packages are the handler's. */
int http__profile_from_json(const json_t *o, http_profile_req_t *out, char *msg, size_t cap);
void http__profile_req_fini(http_profile_req_t *p);
/* ThingsBoard's DeviceProfile JSON of a stored profile (info: the DeviceProfileInfo subset:
 * id, tenantId, name, image, defaultDashboardId, type, transportType). Fields missing from
 * p->data get ThingsBoard's defaults. New reference. */
json_t *http__profile_json(const char *tenant_id, const store_profile_t *p, bool info);
/* A device's deviceData: absent/null -> *out NULL (defaults); an object is checked (type of
 * transportConfiguration; for COAP powerMode and the timers) and normalised into *out (JSON
 * text, caller frees). 0 or -EINVAL with the message in msg. */
int http__device_data_from_json(const json_t *v, char **out, char *msg, size_t cap);
/* deviceData JSON of a stored device_data text (NULL: the defaults). New reference. */
json_t *http__device_data_json(const char *text);

typedef struct http_rpc_req {
    char *method;
    char *params;        /* JSON text ("null" when absent) */
    int64_t timeout_ms;
    int64_t expiration_ms;
    bool persistent;
} http_rpc_req_t;

int http__rpc_parse(const char *body, size_t len, int64_t def_timeout_ms, int64_t min_timeout_ms,
                    int64_t now_ms, http_rpc_req_t *out, char *msg, size_t cap);
void http__rpc_req_fini(http_rpc_req_t *r);

/* True if s is a canonical 36-char UUID. */
bool http__is_uuid(const char *s);

/* ---- request.c ---- */

/* Query parameter (URL-decoded by libmicrohttpd) or NULL. */
const char *http__query(const http_req_t *r, const char *key);
/* Calls fn for every value of a repeated query parameter key. */
void http__query_each(const http_req_t *r, const char *key,
                      void (*fn)(void *arg, const char *value), void *arg);
/* Request header or NULL. */
const char *http__header(const http_req_t *r, const char *name);
/* Spring's binding of a number: surrounding whitespace trimmed, decimal, within [lo, hi].
 * 0 and *out, or -EINVAL (also for NULL and empty). */
int http__parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* Spring's binding of a boolean: true/on/yes/1 or false/off/no/0, any case. 0 or -EINVAL. */
int http__parse_bool(const char *s, bool *out);
/* Query parameter name bound as ThingsBoard's controllers do (an empty value is absent, then
 * dflt; a required one missing or a malformed value: false, and rs holds Spring's 400).
 * _int is a Java int, _long a Java Long. */
bool http__arg_bool(const http_req_t *r, http_resp_t *rs, const char *name, bool dflt, bool *out);
bool http__arg_int(const http_req_t *r, http_resp_t *rs, const char *name, bool required,
                   int64_t dflt, int64_t *out);
bool http__arg_long(const http_req_t *r, http_resp_t *rs, const char *name, bool required,
                    int64_t dflt, int64_t *out);
/* ThingsBoard's paging parameters: pageSize (required, 1..2^31-1) and page (>= 0; missing
 * means 0 here, ThingsBoard requires it). False (and rs filled with ThingsBoard's 400) when
 * they are missing or malformed. */
bool http__page_args(const http_req_t *r, http_resp_t *rs, int64_t *page, int64_t *page_size);
/* sortProperty (one of props[0..n), else 400) and sortOrder (ASC/DESC in any case, default
 * ASC; anything else 400 with ThingsBoard's message), as BaseController.createPageLink. No
 * sortProperty: *sort NULL, *asc from a sortOrder of ASC (else false: newest first). */
bool http__sort_args(const http_req_t *r, http_resp_t *rs, const char *const *props, size_t n,
                     const char **sort, bool *asc);
/* ThingsBoard's PageData {data,totalPages,totalElements,hasNext}; takes data. */
json_t *http__page_json(json_t *data, int64_t total, int64_t page, int64_t page_size);

/* ---- stream.c ---- */

/* Producer of a streamed answer: sets *piece to the next text (malloc'd, may be "") and
 * returns 1, returns 0 at the end, or a negative (store) error. Called on the request's
 * thread, also after the handler returned. */
typedef int (*http_stream_fn)(void *ctx, char **piece);
/* Answers 200 application/json with the pieces of next, sent as the client reads them. The
 * first piece is produced before the answer starts: its error becomes the answer (store error
 * table); a later error cuts the body short. Without a connection (rq->conn NULL) the pieces
 * are collected into rs's body. Takes ctx (ctx_free, may be NULL, frees it at the end). */
void http__stream_answer(http_req_t *rq, http_resp_t *rs, http_stream_fn next, void *ctx,
                         void (*ctx_free)(void *ctx));

/* ---- page.c ---- */

#define HTTP_PAGE_CHUNK 1000 /* rows per store read of a page answer */

/* Reads store page `chunk` of `size` rows: appends their JSON to rows, sets *total (matching
 * rows over all pages). 0 or a store error. Called on the request's thread, also after the
 * handler returned (streamed answers). */
typedef int (*http_page_fetch_fn)(void *ctx, int64_t chunk, int64_t size, json_t *rows,
                                  int64_t *total);
/* Answers PageData for (page, page_size) of any size with rows read through fetch in chunks
 * of HTTP_PAGE_CHUNK: from memory when the page lies in one chunk, else streamed. Takes ctx
 * (ctx_free, may be NULL, frees it when the answer is done or failed). */
void http__page_answer(http_req_t *rq, http_resp_t *rs, int64_t page, int64_t page_size,
                       http_page_fetch_fn fetch, void *ctx, void (*ctx_free)(void *ctx));

/* ---- device_lookup.c ---- */
/* A UUID from a REST path (an entity's {id}): false after answering ThingsBoard's 400
 * "Invalid UUID string"; else true with it lower-cased into lower (clients may send upper
 * case). */
bool http__path_uuid(http_resp_t *rs, const char *uuid, char lower[static STORE_UUID_LEN + 1]);

/* Loads the device named by a {id} UUID param; on failure fills rs and returns false. */
bool http__device_lookup(http_req_t *rq, http_resp_t *rs, const char *uuid, store_device_t *d);
/* The same check and errors, but only the device's id, answered from the server's device
 * cache when it can (the telemetry and attribute handlers need nothing else). */
bool http__device_id_lookup(http_req_t *rq, http_resp_t *rs, const char *uuid, int64_t *id);

/* ---- credentials.c ---- */

/* Stores validated credentials for device d, updates the registry, tells the hub. 0 or a
 * store error (ERR_CONFLICT when another device owns cred_id). */
int http__cred_apply(http_server_t *h, int64_t device_id, const http_cred_req_t *c,
                     store_cred_t *saved);
/* After credentials were stored (by http__cred_apply, or with the device in one transaction):
 * the registry learns them and the shards hear of the change. */
void http__cred_published(http_server_t *h, int64_t device_id, const http_cred_req_t *c);

/* ---- handlers (auth.c, rest_*.c) ---- */

void http__h_login(http_req_t *rq, http_resp_t *rs);
void http__h_refresh(http_req_t *rq, http_resp_t *rs);
void http__h_user(http_req_t *rq, http_resp_t *rs);
void http__h_logout(http_req_t *rq, http_resp_t *rs);

void http__h_device_save(http_req_t *rq, http_resp_t *rs);
void http__h_device_with_creds(http_req_t *rq, http_resp_t *rs);
void http__h_device_get(http_req_t *rq, http_resp_t *rs);
void http__h_device_delete(http_req_t *rq, http_resp_t *rs);
void http__h_devices_list(http_req_t *rq, http_resp_t *rs);
void http__h_device_by_name(http_req_t *rq, http_resp_t *rs);
json_t *http__device_json(const http_server_t *h, const store_device_t *d);

void http__h_device_infos_list(http_req_t *rq, http_resp_t *rs);

/* rest_profiles.c: device profiles (ThingsBoard's DeviceProfileController). */
void http__h_profile_save(http_req_t *rq, http_resp_t *rs);
void http__h_profile_get(http_req_t *rq, http_resp_t *rs);
void http__h_profile_delete(http_req_t *rq, http_resp_t *rs);
void http__h_profiles_list(http_req_t *rq, http_resp_t *rs);
void http__h_profile_infos_list(http_req_t *rq, http_resp_t *rs);
void http__h_profile_info_get(http_req_t *rq, http_resp_t *rs);
void http__h_profile_info_default(http_req_t *rq, http_resp_t *rs);
void http__h_profile_set_default(http_req_t *rq, http_resp_t *rs);
void http__h_profile_names(http_req_t *rq, http_resp_t *rs);
/* May OTA package uuid be assigned as firmware (or software) to a profile or device of
 * profile_id? 0; -EINVAL with ThingsBoard's message in msg (no such package, wrong type, no
 * data, another profile's); another negative error from the store. */
int http__ota_assign_check(http_server_t *h, const char *uuid, bool firmware, int64_t profile_id,
                           char *msg, size_t cap);
/* Start-up: creates ThingsBoard's "default" profile unless the store has a default profile.
 * 0 or a store error. */
int http__profile_ensure_default(http_server_t *h);

void http__h_cred_get(http_req_t *rq, http_resp_t *rs);
void http__h_cred_save(http_req_t *rq, http_resp_t *rs);
json_t *http__cred_json(const store_cred_t *c, const char *device_uuid);

void http__h_ts_keys(http_req_t *rq, http_resp_t *rs);
void http__h_ts_values(http_req_t *rq, http_resp_t *rs);
void http__h_ts_save(http_req_t *rq, http_resp_t *rs);
void http__h_ts_delete(http_req_t *rq, http_resp_t *rs);
void http__h_attr_keys(http_req_t *rq, http_resp_t *rs);
void http__h_attr_values(http_req_t *rq, http_resp_t *rs);
void http__h_attr_save(http_req_t *rq, http_resp_t *rs);
void http__h_attr_delete(http_req_t *rq, http_resp_t *rs);

/* Stop path: refuses new RPC calls and cancels the waiting ones, so no handler or
 * background thread stays blocked in the hub for the rest of its timeout. */
void http__rpc_cancel_all(http_server_t *h);

void http__h_rpc_v1(http_req_t *rq, http_resp_t *rs);

/* device_poll.c: the HTTP device API's long polls, GET /api/v1/{token}/attributes/updates
 * and GET /api/v1/{token}/rpc (public routes: the token is the credential). */
void http__h_dev_attr_updates(http_req_t *rq, http_resp_t *rs);
void http__h_dev_rpc_poll(http_req_t *rq, http_resp_t *rs);
/* Stop path: refuses new long polls and ends the open ones with 503. */
void http__poll_cancel_all(http_server_t *h);
/* A long poll's answer, on a polling thread (device_poll.c): true when rs holds it (then
 * http__poll_free); false after it parked conn again (MHD_suspend_connection) until a wake. */
typedef struct http_poll http_poll_t;
bool http__poll_step(http_poll_t *p, struct MHD_Connection *conn, http_resp_t *rs);
/* Unregisters and frees a poll (NULL: nothing). */
void http__poll_free(http_poll_t *p);
/* From the front's watchdog: wakes parked polls whose timeout passed or whose client left. */
void http__poll_tick(http_server_t *h);
void http__h_rpc_v2(http_req_t *rq, http_resp_t *rs);
void http__h_rpc_persistent_get(http_req_t *rq, http_resp_t *rs);

/* server.c: the answer of GET /readyz. 200 {"status":"UP",...} when the server is up and the
 * store ready (store_rc 0, from store_ready), else 503 {"status":"DOWN",...}; "checks" says
 * which of "server" and "database" failed, "backend" is store_backend_name. *status gets the
 * HTTP status. */
json_t *http__readyz_body(bool server_up, int store_rc, const char *backend, int *status);

/* Port actually bound (for tests that start on port 0). */
int http__server_port(const http_server_t *h);

/* static.c: serves GET / and /static/... from the embedded UI; false if url is not an asset. */
struct MHD_Response;
enum MHD_Result;
bool http__serve_static(struct MHD_Connection *conn, const char *method, const char *url,
                        enum MHD_Result *ret);
/* Adds CSP, nosniff, no-referrer and frame denial to a response. */
void http__security_headers(struct MHD_Response *resp);

/* events.c and rest_ui.c */
void http__h_events(http_req_t *rq, http_resp_t *rs);
/* Wakes event streams parked for lack of data that owe a keepalive (or all of them, or all
 * when the server is no longer ready); called by the front's watchdog. */
void http__events_tick(http_server_t *h, bool all);
/* At stop, before MHD_stop_daemon: every stream ends (none stays suspended). */
void http__events_stop_all(http_server_t *h);
void http__h_cred_info(http_req_t *rq, http_resp_t *rs);
void http__h_connectivity(http_req_t *rq, http_resp_t *rs);
void http__h_server_cert(http_req_t *rq, http_resp_t *rs);
void http__h_metrics(http_req_t *rq, http_resp_t *rs);
/* rest_ota.c: OTA packages (OtaPackageController). The image upload is streamed: server.c
 * asks http__ota_upload_wanted on a request's first call, and for an authenticated one
 * creates the upload (http__ota_upload_new, which checks the package and the query and
 * records any error), feeds it the body as it arrives, and hands it to the handler in
 * http_req_t.upload; it frees it when the connection's request ends. */
bool http__ota_upload_wanted(const char *method, const char *url);
http_ota_upload_t *http__ota_upload_new(http_req_t *rq);
void http__ota_upload_feed(http_ota_upload_t *u, const char *p, size_t n);
void http__ota_upload_free(http_ota_upload_t *u);
void http__h_ota_save(http_req_t *rq, http_resp_t *rs);
void http__h_ota_upload(http_req_t *rq, http_resp_t *rs);
void http__h_ota_info(http_req_t *rq, http_resp_t *rs);
void http__h_ota_download(http_req_t *rq, http_resp_t *rs);
void http__h_ota_list(http_req_t *rq, http_resp_t *rs);
void http__h_ota_list_profile(http_req_t *rq, http_resp_t *rs);
void http__h_ota_delete(http_req_t *rq, http_resp_t *rs);

/* device_api.c: ThingsBoard's HTTP device API (DeviceApiController), public routes whose
 * {token} is the credential. */
void http__h_dev_telemetry(http_req_t *rq, http_resp_t *rs);
void http__h_dev_attributes_post(http_req_t *rq, http_resp_t *rs);
void http__h_dev_attributes_get(http_req_t *rq, http_resp_t *rs);
void http__h_dev_rpc_reply(http_req_t *rq, http_resp_t *rs);
void http__h_dev_client_rpc(http_req_t *rq, http_resp_t *rs);
void http__h_dev_claim(http_req_t *rq, http_resp_t *rs);
void http__h_dev_provision(http_req_t *rq, http_resp_t *rs);
void http__h_dev_firmware(http_req_t *rq, http_resp_t *rs);
void http__h_dev_software(http_req_t *rq, http_resp_t *rs);

/* device_activity.c: the activity (spec §9) of devices using the HTTP device API, with the
 * rules CoAP shards apply (uplink/uplink.h) and a sweeper thread for the quiet ones. */
typedef struct http_devact http_devact_t;
/* Starts the sweeper; NULL if the thread cannot start. */
http_devact_t *http__devact_new(store_t *store, hub_t *hub, int64_t inactivity_ms,
                                int64_t report_ms);
/* Stops the sweeper and frees the table; NULL does nothing. */
void http__devact_free(http_devact_t *t);
/* An authenticated device API request of device_id. Any thread; NULL t: nothing. */
void http__devact_request(http_devact_t *t, int64_t device_id);
/* device_id was deleted: drop its entry without writing or reporting anything (the hub
 * dropped its status entry), as a shard does on HUB_EV_DEVICE_DELETED. NULL t: nothing. */
void http__devact_forget(http_devact_t *t, int64_t device_id);

/* rest_status.c: GET /api/coaphub/devices/status?ids=<uuid>,... (live device status) */
void http__h_device_status(http_req_t *rq, http_resp_t *rs);

#endif
