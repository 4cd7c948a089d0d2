/* store.h — durable storage of devices, credentials, attributes, time series, RPC records,
 * users and settings. One interface, with backends behind it (backend.h): SQLite now
 * (sqlite*.c), PostgreSQL later.
 *
 * DURABILITY. Device data (telemetry, attributes) is written through store_batch_t objects
 * submitted to the store's writer thread. The writer collects every batch that arrived since
 * its last commit and commits them in one transaction (group commit); only then does each
 * batch's completion callback run. A device is answered 2.01 from that callback, so an
 * acknowledged point is on disk (WAL, synchronous=FULL by default).
 *
 * READS and administrative writes (devices, credentials, users, settings, RPC records) are
 * synchronous and thread-safe: any thread may call them. They use a small pool of
 * connections; SQLite's WAL mode lets readers run beside the writer.
 *
 * Strings in and out are NUL-terminated UTF-8. Every out-structure is owned by the caller and
 * released with its _free/_fini function.
 */
#ifndef COAPHUB_STORE_STORE_H
#define COAPHUB_STORE_STORE_H

#include "core/err.h"
#include "core/loop.h"

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

/* ---- values ---- */

typedef enum {
    STORE_BOOL = 1,
    STORE_LONG = 2,
    STORE_DOUBLE = 3,
    STORE_STRING = 4,
    STORE_JSON = 5, /* s holds JSON text (object or array) */
} store_type_t;

typedef enum { SCOPE_CLIENT = 1, SCOPE_SERVER = 2, SCOPE_SHARED = 3 } store_scope_t;

/* One key/value with its time: a telemetry point or an attribute. */
typedef struct store_kv {
    char *key;
    store_type_t type;
    bool b;
    int64_t l;
    double d;
    char *s; /* STORE_STRING and STORE_JSON */
    int64_t ts; /* ms since epoch: point time, or lastUpdateTs for attributes */
} store_kv_t;

typedef struct store_kv_list {
    store_kv_t *items;
    size_t n, cap;
} store_kv_list_t;

/* Appends a copy of kv (key and s are copied). */
void store_kv_list_push(store_kv_list_t *l, const store_kv_t *kv);
/* Frees every item's strings and the array; leaves an empty list. */
void store_kv_list_fini(store_kv_list_t *l);

/* Scope names as ThingsBoard spells them ("CLIENT_SCOPE", ...); parse returns 0 or -EINVAL. */
const char *store_scope_name(store_scope_t s);
int store_scope_parse(const char *name, store_scope_t *out);

/* ---- opening ---- */

typedef struct store_cfg {
    const char *path; /* SQLite database file (when database_url is not PostgreSQL's) */
    /* PostgreSQL: "postgresql://user:pass@host:port/db?sslmode=...", "postgres://...",
     * "jdbc:postgresql://..." (ThingsBoard's SPRING_DATASOURCE_URL) or libpq's "key=value ..."
     * form; libpq's parameters pass through. NULL or "" = SQLite at path. */
    const char *database_url;
    const char *database_user;     /* override the URL's (SPRING_DATASOURCE_USERNAME); NULL */
    const char *database_password; /* (SPRING_DATASOURCE_PASSWORD); NULL */
    /* PostgreSQL: the time range of one ts_kv partition, as ThingsBoard's
     * SQL_POSTGRES_TS_KV_PARTITIONING: "DAYS", "MONTHS" (default), "YEARS" or "INDEFINITE". */
    const char *ts_partitioning;
    /* Retention, as ThingsBoard's SQL_TTL_TS_TS_KEY_VALUE_TTL: telemetry points older than this
     * many seconds are removed in the background; 0 = kept forever (default). */
    int64_t ts_ttl_s;
    int64_t ttl_interval_ms; /* how often retention runs (SQL_TTL_TS_EXECUTION_INTERVAL) */
    bool synchronous_full; /* true (default): synchronous=FULL; false: NORMAL */
    int batch_max_delay_ms; /* the writer waits at most this long to grow a group (default 0) */
    size_t batch_max_ops;   /* commit once a group holds this many ops (default 10000) */
    int read_pool;          /* read connections (default 4) */
    int64_t merge_run_rows; /* telemetry-log points merged per run (merge.c; default 65536;
                             * tests use small runs) */
    /* SQLite: PRAGMA quick_check at open, refusing a corrupt database (default true). */
    bool integrity_check;
    /* SQLite: bytes kept in DB.reserve, released when the disk fills so the checkpoint and
     * the merge can finish, and taken back (with as much again free) before writes resume
     * (reserve.c; default 64 MiB; 0 = none). */
    size_t disk_reserve_bytes;
    /* After a storage fault (disk full, read-only, I/O error) the writer refuses batches and
     * probes with a write this often, doubling up to 8 times that (health.c; default 1000). */
    int probe_ms;
} store_cfg_t;

void store_cfg_default(store_cfg_t *cfg);

/* Opens (creating if needed) and migrates the database, starts the writer thread.
 * Returns NULL and fills err on failure. */
store_t *store_open(const store_cfg_t *cfg, char err[static ERR_LEN]);
/* Commits everything submitted so far (running its callbacks), stops the writer, closes.
 * store_close(NULL) does nothing. */
void store_close(store_t *s);
/* Schema version after migrations. */
int store_schema_version(store_t *s);
/* Retention runs completed since open (tests wait for one; 0 when retention is off). */
int64_t store_retention_runs(store_t *s);
/* "sqlite" or "postgresql". */
const char *store_backend_name(store_t *s);
/* The durability of an acknowledged commit (reliability.md S3): "synchronous=FULL" or
 * "synchronous=NORMAL" (SQLite, --sync-full), "synchronous_commit=on" (PostgreSQL); *durable
 * (may be NULL) is false when the last commits may be lost on power failure (NORMAL). */
const char *store_durability(store_t *s, bool *durable);
/* Whether the database can take work now (readiness, /readyz): 0, or ERR_UNAVAILABLE while it
 * cannot be reached (PostgreSQL down or restarting), during a storage fault or once corruption
 * was met (store_unready_reason says which). Asks the database at most once a second; any
 * thread. */
int store_ready(store_t *s);
/* Why the store cannot take writes now (/readyz, logs): "disk full", "database read-only",
 * "I/O error", "database corrupt"; NULL when it can. Any thread. */
const char *store_unready_reason(store_t *s);
/* A storage fault of the write path, which starts an episode of refused batches until a
 * probe write succeeds (health.c): -ENOSPC, -EROFS, -EIO. */
bool store_err_is_fault(int err);
/* An error the store itself reports, once per episode (a fault, corruption): its own jobs do
 * not log it again. Callers of the store ask store_unready_reason instead: while it is not
 * NULL, every failure is part of the episode the store has logged. */
bool store_err_is_outage(int err);
/* Whether cfg selects PostgreSQL (database_url is a postgres URL or a libpq key=value string). */
bool store_cfg_is_postgresql(const store_cfg_t *cfg);

/* ---- device data: group-committed batches ---- */

typedef struct store_batch store_batch_t;

store_batch_t *store_batch_new(void);
/* Adds a time-series point (also updates the latest value if ts is not older). */
void store_batch_ts(store_batch_t *b, int64_t device_id, const store_kv_t *kv);
/* Sets an attribute (kv->ts is its lastUpdateTs). */
void store_batch_attr(store_batch_t *b, int64_t device_id, store_scope_t scope,
                      const store_kv_t *kv);
/* Deletes an attribute if it exists. */
void store_batch_attr_delete(store_batch_t *b, int64_t device_id, store_scope_t scope,
                             const char *key);
/* Number of operations in the batch. */
size_t store_batch_len(const store_batch_t *b);
/* Empties the batch for reuse, keeping its storage for small contents (a batch reused for
 * requests of a few short keys allocates nothing). */
void store_batch_reset(store_batch_t *b);
void store_batch_free(store_batch_t *b);

/* What one operation of a batch is, for commit hooks. */
typedef enum { STORE_OP_TS = 1, STORE_OP_ATTR, STORE_OP_ATTR_DELETE } store_op_kind_t;

typedef struct store_op_view {
    store_op_kind_t kind;
    int64_t device_id;
    store_scope_t scope;   /* attributes only */
    const store_kv_t *kv;  /* the point or attribute (for deletes only kv->key is set) */
} store_op_view_t;

/* Reads operation i (< store_batch_len) of a batch. */
void store_batch_op(const store_batch_t *b, size_t i, store_op_view_t *out);

/* Called on the writer thread after a batch has committed, before its done callback: the
 * place to tell live watchers (web UI) what changed. Must be quick and must not call the
 * store. Set before any batch is submitted; fn NULL removes it. */
typedef void (*store_commit_hook)(void *ctx, const store_batch_t *b);
void store_set_commit_hook(store_t *s, store_commit_hook fn, void *ctx);

/* Called once the batch is committed (status 0) or failed (negative error). */
typedef void (*store_done_cb)(void *arg, int status);

/* Hands the batch to the writer (takes ownership, also on failure). done runs after the
 * commit: posted to reply_loop if it is not NULL, else on the writer thread itself. Never
 * runs before store_submit returns. Any thread. */
void store_submit(store_t *s, store_batch_t *b, loop_t *reply_loop, store_done_cb done,
                  void *arg);
/* Like store_submit, but the batch comes back: done(arg, status, b) owns b afterwards, to
 * store_batch_reset and reuse it or to store_batch_free it. Lets a loop thread keep a pool of
 * batches so its request path does not allocate. */
typedef void (*store_done_keep_cb)(void *arg, int status, store_batch_t *b);
void store_submit_keep(store_t *s, store_batch_t *b, loop_t *reply_loop,
                       store_done_keep_cb done, void *arg);
/* Submits and waits for the commit; returns its status. For threads without a loop (HTTP). */
int store_submit_wait(store_t *s, store_batch_t *b);

/* ---- devices ---- */

#define STORE_UUID_LEN 36

typedef struct store_device {
    int64_t id;                      /* internal row id, > 0 */
    char uuid[STORE_UUID_LEN + 1];   /* ThingsBoard-style id */
    int64_t created_ms;
    char *name;
    char *type;                      /* device profile name; "default" */
    char *label;                     /* may be NULL */
    char *additional_info;           /* JSON text or NULL */
    int64_t version;
    /* The device profile (device_profile.id; 0 on create = the profile named `type`, made if
     * missing, as ThingsBoard's findOrCreateDeviceProfile, or the default profile when type is
     * empty). On read also its uuid. The stored type is always the profile's name (the
     * caller's d->type is not changed: read the device back to see it). */
    int64_t profile_id;
    char profile_uuid[STORE_UUID_LEN + 1];
    char
        *firmware_id; /* OTA package uuid assigned to this device (wins over the profile's); NULL */
    char *software_id;
    char *device_data; /* ThingsBoard's deviceData JSON text (transportConfiguration overrides,
                        * e.g. CoAP powerMode); NULL = defaults */
} store_device_t;

void store_device_fini(store_device_t *d);

/* Creates a device: fills d->id, d->uuid (random v4), d->created_ms, d->version=1, and
 * d->profile_id (see profile_id above; an unknown non-zero profile_id is -ENOENT).
 * Returns 0, ERR_CONFLICT if the name exists, or another negative error. */
int store_device_create(store_t *s, store_device_t *d);
/* Updates name, label, additional_info, profile (profile_id, or 0 = by type as on create),
 * firmware_id, software_id, device_data of d->id; the stored type becomes the profile's name;
 * bumps version. 0, -ENOENT (also for an unknown profile_id), ERR_CONFLICT. */
int store_device_update(store_t *s, store_device_t *d);
/* 0 and fills out, or -ENOENT. */
int store_device_get(store_t *s, int64_t id, store_device_t *out);
int store_device_get_by_uuid(store_t *s, const char *uuid, store_device_t *out);
int store_device_get_by_name(store_t *s, const char *name, store_device_t *out);
/* Deletes the device with its credentials, attributes, time series and RPC records. */
int store_device_delete(store_t *s, int64_t id);

typedef struct store_device_page {
    store_device_t *items;
    size_t n;
    int64_t total; /* matching devices over all pages */
} store_device_page_t;

/* Lists devices. text_search matches a name prefix, case-insensitively (ThingsBoard); NULL =
 * all. sort_property: "name", "createdTime", "type", "label" (NULL = createdTime);
 * ascending false = DESC. */
int store_device_list(store_t *s, const char *text_search, const char *type,
                      const char *sort_property, bool ascending, int64_t page, int64_t page_size,
                      store_device_page_t *out);
void store_device_page_fini(store_device_page_t *p);

/* The device and its credentials in one transaction: both or neither (ThingsBoard's
 * saveDeviceWithCredentials). cred's type, cred_id and cred_value are written; its uuid,
 * device_id, created_ms and version are filled. 0; ERR_CONFLICT when the name is taken;
 * -EEXIST when the credentials id belongs to another device; another negative error. */
typedef struct store_cred store_cred_t;
int store_device_create_with_cred(store_t *s, store_device_t *d, store_cred_t *cred);

/* Ids of the devices of a profile (ascending), e.g. those an OTA assignment reaches. *ids is
 * the caller's to free. only_without: "firmware" / "software" = only devices that have no
 * package of that kind of their own; NULL = all. */
int store_device_ids_by_profile(store_t *s, int64_t profile_id, const char *only_without,
                                int64_t **ids, size_t *n);

/* ---- device profiles (ThingsBoard's DeviceProfile) ---- */

typedef struct store_profile {
    int64_t id;
    char uuid[STORE_UUID_LEN + 1];
    int64_t created_ms;
    char *name;           /* unique */
    bool is_default;      /* exactly one profile is the default */
    char *provision_type; /* "DISABLED", "ALLOW_CREATE_NEW_DEVICES",
                               * "CHECK_PRE_PROVISIONED_DEVICES", "X509_CERTIFICATE_CHAIN" */
    char *provision_key;  /* unique or NULL: the provision key, or for X509_CERTIFICATE_CHAIN
                               * the SHA3-256 hex of the CA certificate (as ThingsBoard) */
    char *firmware_id;    /* default OTA package uuids or NULL */
    char *software_id;
    /* Everything else of ThingsBoard's JSON as one object text: description, type,
     * transportType, profileData (transportConfiguration, provisionConfiguration, ...), image,
     * defaultQueueName, ... Kept as sent; the REST layer owns its shape. NULL = {}. */
    char *data;
    int64_t version;
} store_profile_t;

void store_profile_fini(store_profile_t *p);

/* Fills p->id, uuid, created_ms, version. If p->is_default, the other profiles stop being the
 * default. 0; ERR_CONFLICT when the name or provision key is taken. */
int store_profile_create(store_t *s, store_profile_t *p);
/* Updates every field of p->id (is_default: true makes it the default; false on the current
 * default is ignored, as there must be one); bumps version; renames devices' type with the
 * name. 0, -ENOENT, ERR_CONFLICT. */
int store_profile_update(store_t *s, store_profile_t *p);
int store_profile_get(store_t *s, int64_t id, store_profile_t *out);
int store_profile_get_by_uuid(store_t *s, const char *uuid, store_profile_t *out);
int store_profile_get_by_name(store_t *s, const char *name, store_profile_t *out);
int store_profile_get_by_provision_key(store_t *s, const char *key, store_profile_t *out);
int store_profile_get_default(store_t *s, store_profile_t *out);
/* Makes profile id the default. 0 or -ENOENT. */
int store_profile_set_default(store_t *s, int64_t id);
/* Deletes a profile and its OTA packages' rows. -EBUSY when it is the default; ERR_CONFLICT
 * when devices use it; -ENOENT. */
int store_profile_delete(store_t *s, int64_t id);

typedef struct store_profile_page {
    store_profile_t *items;
    size_t n;
    int64_t total;
} store_profile_page_t;
/* text_search: name prefix, case-insensitive (NULL = all). sort_property "name",
 * "createdTime", "isDefault" (NULL = createdTime). */
int store_profile_list(store_t *s, const char *text_search, const char *sort_property,
                       bool ascending, int64_t page, int64_t page_size, store_profile_page_t *out);
void store_profile_page_fini(store_profile_page_t *p);
/* Calls fn for every profile (caches of provisioning keys and CA certificates). */
int store_profile_foreach(store_t *s, void (*fn)(void *arg, const store_profile_t *p), void *arg);

/* ---- OTA packages (ThingsBoard's OtaPackage; the image itself lives outside the store) ---- */

typedef struct store_ota {
    int64_t id;
    char uuid[STORE_UUID_LEN + 1];
    int64_t created_ms;
    int64_t profile_id;                    /* device_profile.id */
    char profile_uuid[STORE_UUID_LEN + 1]; /* read only */
    char *type;                            /* "FIRMWARE" or "SOFTWARE" */
    char *title, *version;                 /* (title, version) unique */
    char *tag;                             /* NULL */
    char *url;                             /* external URL instead of data; NULL */
    bool has_data;                         /* the image has been uploaded */
    char *file_name, *content_type;
    char *checksum_algorithm, *checksum;
    int64_t data_size;
    char *additional_info; /* JSON text or NULL */
} store_ota_t;

void store_ota_fini(store_ota_t *o);
/* Fills id, uuid, created_ms. ERR_CONFLICT when (title, version) exists; -ENOENT when the
 * profile does not. */
int store_ota_create(store_t *s, store_ota_t *o);
/* Updates every field of o->id but id/uuid/created_ms. 0, -ENOENT, ERR_CONFLICT. */
int store_ota_update(store_t *s, store_ota_t *o);
int store_ota_get_by_uuid(store_t *s, const char *uuid, store_ota_t *out);
/* -EBUSY when a device or profile has it assigned (firmware_id/software_id); -ENOENT. */
int store_ota_delete(store_t *s, int64_t id);

typedef struct store_ota_page {
    store_ota_t *items;
    size_t n;
    int64_t total;
} store_ota_page_t;
/* type "FIRMWARE"/"SOFTWARE" or NULL; profile_id 0 = any; has_data_only: only uploaded ones;
 * text_search: title prefix, case-insensitive; sort_property "createdTime", "title",
 * "version", "type", "dataSize" (NULL = createdTime). */
int store_ota_list(store_t *s, const char *type, int64_t profile_id, bool has_data_only,
                   const char *text_search, const char *sort_property, bool ascending, int64_t page,
                   int64_t page_size, store_ota_page_t *out);
void store_ota_page_fini(store_ota_page_t *p);
/* Calls fn for every package (start-up cleaning of image files without a row). */
int store_ota_foreach(store_t *s, void (*fn)(void *arg, const store_ota_t *o), void *arg);

/* ---- credentials (one row per device) ---- */

/* CRED_PSK: a DTLS pre-shared key; cred_id is the PSK identity, cred_value the key in lower-case
 * hex (a secret: never logged). ThingsBoard's LWM2M_CREDENTIALS with securityConfigClientMode
 * PSK is stored as this (docs/COMPATIBILITY.md). */
typedef enum { CRED_ACCESS_TOKEN = 1, CRED_X509 = 2, CRED_PSK = 3 } store_cred_type_t;

struct store_cred {
    char uuid[STORE_UUID_LEN + 1];
    int64_t device_id;
    int64_t created_ms;
    store_cred_type_t type;
    char *cred_id;    /* the token, the SHA3-256 hex of the certificate, or the PSK identity */
    char *cred_value; /* NULL for tokens; single-line Base64 DER for X.509; hex key for PSK */
    int64_t version;
};

void store_cred_fini(store_cred_t *c);
const char *
store_cred_type_name(store_cred_type_t t); /* "ACCESS_TOKEN", "X509_CERTIFICATE", "PSK" */
int store_cred_type_parse(const char *name, store_cred_type_t *out);

/* Creates or replaces the device's credentials (uuid kept if a row exists; version bumped).
 * Fills c->uuid, c->created_ms, c->version. ERR_CONFLICT if cred_id belongs to another device. */
int store_cred_set(store_t *s, store_cred_t *c);
int store_cred_get_by_device(store_t *s, int64_t device_id, store_cred_t *out);
int store_cred_get_by_id(store_t *s, const char *cred_id, store_cred_t *out);
/* Calls fn for every credential row (to fill the in-memory cache at start). */
int store_cred_foreach(store_t *s, void (*fn)(void *arg, const store_cred_t *c), void *arg);

/* ---- attributes and time series (reads, plus synchronous deletes) ---- */

/* Attributes of one scope; keys NULL/n_keys 0 = all. Sorted by key. */
int store_attr_get(store_t *s, int64_t device_id, store_scope_t scope, const char *const *keys,
                   size_t n_keys, store_kv_list_t *out);
/* Attribute keys of a scope (scope 0 = all scopes), sorted, distinct; returned as kv items
 * with only key set. */
int store_attr_keys(store_t *s, int64_t device_id, store_scope_t scope, store_kv_list_t *out);
/* Deletes keys of a scope; *n_deleted counts rows removed (may be NULL). */
int store_attr_delete(store_t *s, int64_t device_id, store_scope_t scope,
                      const char *const *keys, size_t n_keys, size_t *n_deleted);

/* Time-series keys of a device, sorted. */
int store_ts_keys(store_t *s, int64_t device_id, store_kv_list_t *out);
/* Latest value per key; keys NULL = all keys. */
int store_ts_latest(store_t *s, int64_t device_id, const char *const *keys, size_t n_keys,
                    store_kv_list_t *out);

typedef enum {
    STORE_AGG_NONE = 0, STORE_AGG_MIN, STORE_AGG_MAX, STORE_AGG_AVG, STORE_AGG_SUM, STORE_AGG_COUNT
} store_agg_t;
int store_agg_parse(const char *name, store_agg_t *out);

/* History of one key in [start_ms, end_ms]. agg NONE: up to limit raw points, newest first if
 * !ascending. Otherwise one aggregated point per interval_ms bucket (interval_ms <= 0: one
 * bucket over the whole range), ts = bucket middle like ThingsBoard; only numeric (and for COUNT
 * any) values take part; result type LONG for COUNT and for MIN/MAX/SUM of longs, else DOUBLE. */
int store_ts_history(store_t *s, int64_t device_id, const char *key, int64_t start_ms,
                     int64_t end_ms, int64_t interval_ms, store_agg_t agg, int64_t limit,
                     bool ascending, store_kv_list_t *out);
/* Deletes points of keys in [start_ms, end_ms] and, if delete_latest, their latest values. */
int store_ts_delete(store_t *s, int64_t device_id, const char *const *keys, size_t n_keys,
                    int64_t start_ms, int64_t end_ms, bool delete_latest);

/* ---- RPC records ---- */

typedef struct store_rpc {
    char uuid[STORE_UUID_LEN + 1];
    int64_t device_id;
    int64_t created_ms;
    int64_t expiration_ms;
    int64_t request_id; /* per-device id sent to the device */
    char *method;
    char *params;       /* JSON text */
    char *status;       /* QUEUED, SENT, DELIVERED, SUCCESSFUL, TIMEOUT, EXPIRED, FAILED */
    char *response;     /* JSON text or NULL */
    bool oneway;
    bool persistent;
} store_rpc_t;

void store_rpc_fini(store_rpc_t *r);
/* Inserts; fills r->uuid and r->created_ms. */
int store_rpc_create(store_t *s, store_rpc_t *r);
/* Sets status (and response if not NULL) of the RPC with that uuid. */
int store_rpc_set_status(store_t *s, const char *uuid, const char *status, const char *response);
int store_rpc_get(store_t *s, const char *uuid, store_rpc_t *out);
/* Largest request_id ever used for the device (0 if none), so ids keep rising after restart. */
int store_rpc_max_request_id(store_t *s, int64_t device_id, int64_t *out);

/* ---- users ---- */

typedef struct store_user {
    int64_t id;
    char uuid[STORE_UUID_LEN + 1];
    int64_t created_ms;
    char *email;
    char *password_hash; /* bcrypt "$2b$..." */
    char *authority;     /* "TENANT_ADMIN" */
    char *first_name, *last_name; /* may be NULL */
} store_user_t;

void store_user_fini(store_user_t *u);
int store_user_create(store_t *s, store_user_t *u); /* ERR_CONFLICT if the email exists */
int store_user_get_by_email(store_t *s, const char *email, store_user_t *out);
int store_user_get_by_uuid(store_t *s, const char *uuid, store_user_t *out);
int store_user_set_password(store_t *s, int64_t id, const char *password_hash);
int store_user_count(store_t *s, int64_t *out);

/* ---- settings (small key/value: JWT signing key, tenant id, ...) ---- */

/* 0 and *out (caller frees), or -ENOENT. */
int store_setting_get(store_t *s, const char *key, char **out);
int store_setting_set(store_t *s, const char *key, const char *value);

/* ---- moving an installation (copy.c) ---- */

/* Copies every row of the database `from` into the database `to` — SQLite to PostgreSQL, the
 * other way round, or one backend to itself — reading `from` in one snapshot (a server may
 * keep running on it). `to` must be empty (freshly created; its schema is made here). Then
 * counts every table on both sides and writes a line per table to report (may be NULL).
 * 0 when every count matches; ERR_CONFLICT when `to` is not empty (nothing written); another
 * error with err filled. */
int store_copy(const store_cfg_t *from, const store_cfg_t *to, FILE *report,
               char err[static ERR_LEN]);
/* A consistent copy of the SQLite database cfg->path into dest_path (which must not exist),
 * safe while a server writes to the database. -ENOTSUP for PostgreSQL (pg_dump does it). */
int store_backup(const store_cfg_t *cfg, const char *dest_path, char err[static ERR_LEN]);

/* ---- helpers ---- */

/* Writes a random RFC 4122 version-4 UUID (lower case) into out. Uses OpenSSL's RAND. */
void store_uuid_v4(char out[static STORE_UUID_LEN + 1]);

/* Counters for metrics: commits, ops committed, the largest group. */
typedef struct store_stats {
    uint64_t commits, ops, max_group, failed_commits;
    uint64_t write_faults;    /* episodes of refused writes begun (health.c) */
    uint64_t refused_batches; /* batches refused during them (answered 5.03 / 503) */
    uint64_t corruptions;     /* 1 once corruption was met (it lasts until a restart) */
} store_stats_t;
void store_get_stats(store_t *s, store_stats_t *out);

#endif
