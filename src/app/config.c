/* config.c — the option table and the four sources (defaults, file, env, flags).
 *
 * One table drives everything: parsing of each source, --help, --print-config and
 * docs/configuration.md, so a new option is added in exactly one place.
 */
#include "app/config.h"

#include "core/xmalloc.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { T_STR, T_INT, T_I64, T_SIZE, T_BOOL } opt_type_t;

typedef struct opt {
    const char *flag;    /* long flag without "--" */
    const char *section; /* INI section */
    const char *key;     /* INI key */
    const char *env[3];  /* environment names, first = ours */
    opt_type_t type;
    size_t offset; /* of the field in config_t, usually inside a module's cfg struct */
    const char *help;
    int secret; /* false, true (--print-config masks the value) or MASK_URL */
} opt_t;

/* A URL or libpq string: --print-config and the start-up log mask only the password in it. */
enum { MASK_URL = 2 };

#define OFF(f) offsetof(config_t, f)

/* No defaults here: each comes from the struct the option points into (config_defaults).
 * The table is laid out by hand, a few rows per option; clang-format would put every field
 * on a line of its own. */
/* clang-format off */
static const opt_t opts[] = {
    {"data-dir", "server", "data_dir", {"COAPHUB_DATA_DIR"}, T_STR, OFF(data_dir),
     "folder for the database and generated keys (default: $STATE_DIRECTORY, "
     "$XDG_STATE_HOME/coaphub or ~/.local/state/coaphub)", false},
    {"bind", "coap", "bind_address", {"COAPHUB_BIND", "COAP_BIND_ADDRESS"}, T_STR,
     OFF(udp.bind_addr), "address the CoAP and CoAPS listeners bind to (\"::\" for IPv4+IPv6)",
     false},
    {"coap-port", "coap", "bind_port", {"COAPHUB_COAP_PORT", "COAP_BIND_PORT"}, T_INT,
     OFF(udp.port), "UDP port for plain CoAP", false},
    {"coaps-port", "coap", "dtls_bind_port", {"COAPHUB_COAPS_PORT", "COAP_DTLS_BIND_PORT"},
     T_INT, OFF(dtls.port), "UDP port for CoAP over DTLS", false},
    {"dtls", "coap", "dtls_enabled", {"COAPHUB_DTLS", "COAP_DTLS_ENABLED"}, T_BOOL,
     OFF(dtls_enabled), "serve CoAP over DTLS 1.2 on --coaps-port", false},
    {"dtls-cert", "dtls", "cert_file", {"COAPHUB_DTLS_CERT", "COAP_DTLS_PEM_CERT"}, T_STR,
     OFF(dtls.cert_file),
     "server certificate (PEM; may hold the chain and key). Default: a self-signed EC P-256 "
     "certificate generated once in the data dir", false},
    {"dtls-key", "dtls", "key_file", {"COAPHUB_DTLS_KEY", "COAP_DTLS_PEM_KEY"}, T_STR,
     OFF(dtls.key_file), "server private key (PEM); default: the certificate file", false},
    {"dtls-key-password", "dtls", "key_password",
     {"COAPHUB_DTLS_KEY_PASSWORD", "COAP_DTLS_PEM_KEY_PASSWORD"}, T_STR, OFF(dtls.key_password),
     "password of an encrypted server key", true},
    {"dtls-chain", "dtls", "chain_file", {"COAPHUB_DTLS_CHAIN"}, T_STR, OFF(dtls.chain_file),
     "intermediate certificates sent after the server certificate (PEM)", false},
    {"dtls-ciphers", "dtls", "ciphers", {"COAPHUB_DTLS_CIPHERS"}, T_STR, OFF(dtls.ciphers),
     "OpenSSL cipher list offered (default: ECDHE-ECDSA AES-128-CCM-8, AES-128/256-GCM, "
     "AES-128/256-CCM and ECDHE-RSA AES-GCM; PSK AES-128-CCM-8, AES-128/256-GCM, AES-128-CCM, "
     "AES-256-CCM-8 and ECDHE-PSK ChaCha20-Poly1305)", false},
    {"dtls-compact-records", "dtls", "compact_records", {"COAPHUB_DTLS_COMPACT_RECORDS"}, T_BOOL,
     OFF(dtls.compact_records),
     "after the handshake keep only the record keys and protect records ourselves with "
     "OpenSSL's AEAD ciphers (~13 KB per idle session instead of ~52 KB); false keeps "
     "OpenSSL's record layer", false},
    {"dtls-cid-length", "dtls", "connection_id_length",
     {"COAPHUB_DTLS_CID_LENGTH", "COAP_DTLS_CONNECTION_ID_LENGTH"}, T_INT, OFF(dtls.cid_len),
     "RFC 9146 Connection ID length the server chooses (0 = not offered, at most 16); a "
     "device whose address changes keeps its session (needs compact records)", false},
    {"dtls-skip-validity-check", "dtls", "skip_validity_check_for_client_cert",
     {"COAPHUB_DTLS_SKIP_VALIDITY_CHECK", "TB_COAP_X509_DTLS_SKIP_VALIDITY_CHECK_FOR_CLIENT_CERT"},
     T_BOOL, OFF(dtls.skip_validity_check),
     "accept expired and not-yet-valid client certificates", false},
    {"dtls-min-rsa-bits", "dtls", "min_rsa_bits", {"COAPHUB_DTLS_MIN_RSA_BITS"}, T_INT,
     OFF(dtls.min_rsa_bits),
     "smallest RSA client key accepted, in bits (0 = any, as ThingsBoard; e.g. 2048 refuses "
     "RSA-1024 certificates with bad_certificate)", false},
    {"dtls-max-client-chain-bytes", "dtls", "max_client_chain_bytes",
     {"COAPHUB_DTLS_MAX_CLIENT_CHAIN_BYTES"}, T_INT, OFF(dtls.max_client_chain_bytes),
     "largest client certificate chain (Certificate message) accepted, in bytes, at least 1024; "
     "also bounds the handshake messages a peer may announce (to this or ~17.7 KB, whichever "
     "is larger), which OpenSSL allocates on their first fragment; a bigger one fails the "
     "handshake", false},
    {"dtls-mtu", "dtls", "max_transmission_unit",
     {"COAPHUB_DTLS_MTU", "COAP_DTLS_MAX_TRANSMISSION_UNIT"}, T_INT, OFF(dtls.mtu),
     "the link MTU (IP packet size, as ThingsBoard): DTLS datagrams we send are at most this "
     "less 28 bytes to IPv4 peers and 48 to IPv6 peers (handshake flights are fragmented to fit)", false},
    {"dtls-retransmission-ms", "dtls", "retransmission_timeout",
     {"COAPHUB_DTLS_RETRANSMISSION_MS", "COAP_DTLS_RETRANSMISSION_TIMEOUT_MS"}, T_INT,
     OFF(dtls.retransmission_ms),
     "first handshake-flight retransmission timeout in ms (doubles up to 60 s)", false},
    {"dtls-handshake-timeout-ms", "dtls", "handshake_timeout",
     {"COAPHUB_DTLS_HANDSHAKE_TIMEOUT_MS"}, T_INT, OFF(dtls.handshake_timeout_ms),
     "a handshake not finished after this many ms is dropped (its slot freed)", false},
    {"dtls-max-handshakes", "dtls", "max_handshakes", {"COAPHUB_DTLS_MAX_HANDSHAKES"}, T_INT,
     OFF(dtls.max_handshakes),
     "handshakes in progress per shard (after the cookie); when full, a new one replaces the "
     "oldest one stalled for a retransmission period (from the address with the most), or "
     "is refused if none is", false},
    {"dtls-max-handshakes-per-address", "dtls", "max_handshakes_per_address",
     {"COAPHUB_DTLS_MAX_HANDSHAKES_PER_ADDRESS"}, T_INT, OFF(dtls.max_handshakes_per_addr),
     "handshakes in progress per shard from one IP address (IPv6: one /64; any ports); more "
     "are refused", false},
    {"dtls-handshake-stall-ms", "dtls", "handshake_stall_timeout",
     {"COAPHUB_DTLS_HANDSHAKE_STALL_MS"}, T_INT, OFF(dtls.handshake_stall_ms),
     "a handshake whose state has not advanced for this many ms is dropped (a repeated "
     "flight is not progress)", false},
    {"dtls-max-sessions", "dtls", "max_sessions", {"COAPHUB_DTLS_MAX_SESSIONS"}, T_INT,
     OFF(dtls.max_sessions),
     "established DTLS sessions per shard; when full, the stalest is evicted if it is stale "
     "(--dtls-stale-session-ms), otherwise new handshakes are refused", false},
    {"dtls-stale-session-ms", "dtls", "stale_session_threshold",
     {"COAPHUB_DTLS_STALE_SESSION_MS"}, T_I64, OFF(dtls.stale_session_ms),
     "a session without authenticated traffic for this long may be evicted for a new one "
     "when --dtls-max-sessions is reached; 0 = always evict the stalest", false},
    {"dtls-session-inactivity-ms", "dtls", "dtls_session_inactivity_timeout",
     {"COAPHUB_DTLS_SESSION_INACTIVITY_MS", "TB_COAP_X509_DTLS_SESSION_INACTIVITY_TIMEOUT"}, T_I64,
     OFF(dtls.session_inactivity_ms),
     "a DTLS session without authenticated traffic for this long is closed", false},
    {"dtls-unknown-cert-inactivity-ms", "dtls", "unknown_cert_inactivity_timeout",
     {"COAPHUB_DTLS_UNKNOWN_CERT_INACTIVITY_MS"}, T_I64, OFF(dtls.unknown_cert_inactivity_ms),
     "the same for a session whose client certificate names no device (usable with a token "
     "in the path); such sessions are also evicted first when --dtls-max-sessions is reached",
     false},
    {"dtls-session-save-max-age", "dtls", "session_save_max_age",
     {"COAPHUB_DTLS_SESSION_SAVE_MAX_AGE"}, T_I64, OFF(dtls_save_max_age_s),
     "seconds a clean stop's saved DTLS sessions stay usable by the next start (devices "
     "continue without a handshake); 0 = sessions are not saved, at most 86400", false},
    {"http-bind", "http", "bind_address", {"COAPHUB_HTTP_BIND", "HTTP_BIND_ADDRESS"}, T_STR,
     OFF(http.bind_addr), "address the REST API binds to", false},
    {"http-port", "http", "bind_port", {"COAPHUB_HTTP_PORT", "HTTP_BIND_PORT"}, T_INT,
     OFF(http.port), "TCP port of the REST API", false},
    {"http-max-connections", "http", "max_connections", {"COAPHUB_HTTP_MAX_CONNECTIONS"}, T_INT,
     OFF(http.max_connections),
     "REST/UI connections open at once; more are refused at accept; at 90 % the oldest ones "
     "without a complete request are closed", false},
    {"http-max-connections-per-address", "http", "max_connections_per_address",
     {"COAPHUB_HTTP_MAX_CONNECTIONS_PER_ADDRESS"}, T_INT, OFF(http.max_connections_per_addr),
     "connections open at once from one IPv4 address; more are refused at accept", false},
    {"http-header-timeout-ms", "http", "header_timeout", {"COAPHUB_HTTP_HEADER_TIMEOUT_MS"},
     T_I64, OFF(http.header_timeout_ms),
     "a new connection's request headers must be complete within this (not reset by each "
     "byte); later the connection is closed", false},
    {"http-body-min-rate", "http", "body_min_rate", {"COAPHUB_HTTP_BODY_MIN_RATE"}, T_INT,
     OFF(http.body_min_rate),
     "bytes/s a request body must average once the header timeout has passed since its "
     "headers; slower is closed (0 = off)", false},
    {"http-idle-timeout-ms", "http", "idle_timeout", {"COAPHUB_HTTP_IDLE_TIMEOUT_MS"}, T_I64,
     OFF(http.idle_timeout_ms),
     "a connection with no byte in either direction for this long is closed; also how long a "
     "kept-alive connection may wait for its next request's headers", false},
    {"http-threads", "http", "threads", {"COAPHUB_HTTP_THREADS"}, T_INT, OFF(http.threads),
     "HTTP event-loop threads (connections are multiplexed on them)", false},
    {"http-workers", "http", "workers", {"COAPHUB_HTTP_WORKERS"}, T_INT, OFF(http.max_workers),
     "threads running REST handlers at most (started on demand); more requests wait in a "
     "queue", false},
    {"public-host", "http", "public_host", {"COAPHUB_PUBLIC_HOST"}, T_STR, OFF(http.public_host),
     "host name shown in the web UI's connectivity commands (default: the one the browser used)",
     false},
    {"http-long-poll-max", "http", "long_poll_max", {"COAPHUB_HTTP_LONG_POLL_MAX"}, T_INT,
     OFF(http.long_poll_max),
     "HTTP device API long polls (attributes/updates, rpc) open at once; each holds a "
     "connection, no thread; more get 503 (0 = none allowed, at most 90 % of "
     "--http-max-connections)", false},
    {"http-long-poll-per-device", "http", "long_poll_per_device",
     {"COAPHUB_HTTP_LONG_POLL_PER_DEVICE"}, T_INT, OFF(http.long_poll_per_device),
     "long polls one device may hold open at once; more get 503", false},
    {"http-long-poll-timeout-ms", "http", "long_poll_timeout",
     {"COAPHUB_HTTP_LONG_POLL_TIMEOUT_MS", "HTTP_REQUEST_TIMEOUT"}, T_I64,
     OFF(http.long_poll_timeout_ms), "long-poll wait when the request gives no ?timeout=", false},
    {"http-long-poll-max-timeout-ms", "http", "long_poll_max_timeout",
     {"COAPHUB_HTTP_LONG_POLL_MAX_TIMEOUT_MS", "HTTP_MAX_REQUEST_TIMEOUT"}, T_I64,
     OFF(http.long_poll_max_timeout_ms), "longest long-poll wait; longer ?timeout= is cut to it",
     false},
    {"shards", "server", "shards", {"COAPHUB_SHARDS"}, T_INT, OFF(shards),
     "datagram event-loop threads (0 = one per CPU core)", false},
    {"log-level", "log", "level", {"COAPHUB_LOG_LEVEL"}, T_STR, OFF(log_level),
     "error, warn, info or debug", false},
    {"log-json", "log", "json", {"COAPHUB_LOG_JSON"}, T_BOOL, OFF(log_json),
     "write logs as JSON lines", false},
    {"sync-full", "store", "synchronous_full", {"COAPHUB_SYNC_FULL"}, T_BOOL,
     OFF(store.synchronous_full), "SQLite synchronous=FULL (true) or NORMAL (false)", false},
    {"batch-delay-ms", "store", "batch_max_delay_ms",
     {"COAPHUB_BATCH_DELAY_MS", "SQL_TS_BATCH_MAX_DELAY_MS"}, T_INT,
     OFF(store.batch_max_delay_ms),
     "longest wait to grow a group commit, in ms (0: commit what is queued at once; groups "
     "grow by themselves under load)", false},
    {"db-integrity-check", "store", "integrity_check", {"COAPHUB_DB_INTEGRITY_CHECK"}, T_BOOL,
     OFF(store.integrity_check),
     "SQLite: PRAGMA quick_check at start; a corrupt database is refused with the recovery "
     "command (docs/operations.md)", false},
    {"disk-reserve", "store", "disk_reserve", {"COAPHUB_DISK_RESERVE"}, T_SIZE,
     OFF(store.disk_reserve_bytes),
     "SQLite: bytes kept free in <database>.reserve, released when the disk fills so the store "
     "can finish its checkpoint and merge; writes resume once it is taken back (0 = none)",
     false},
    {"store-probe-ms", "store", "probe_ms", {"COAPHUB_STORE_PROBE_MS"}, T_INT,
     OFF(store.probe_ms),
     "after a storage fault (disk full, read-only, I/O error) writes are refused with 5.03 and "
     "probed this often, doubling up to 8 times that, until one succeeds", false},
    {"database", "database", "url", {"COAPHUB_DATABASE_URL", "SPRING_DATASOURCE_URL"}, T_STR,
     OFF(store.database_url),
     "PostgreSQL URL (postgresql://user:pass@host:port/db?sslmode=..., jdbc:postgresql://... "
     "accepted, libpq parameters pass through); unset = SQLite in the data dir", MASK_URL},
    {"database-user", "database", "username",
     {"COAPHUB_DATABASE_USER", "SPRING_DATASOURCE_USERNAME"}, T_STR, OFF(store.database_user),
     "PostgreSQL user (overrides the URL's)", false},
    {"database-password", "database", "password",
     {"COAPHUB_DATABASE_PASSWORD", "SPRING_DATASOURCE_PASSWORD"}, T_STR,
     OFF(store.database_password), "PostgreSQL password (overrides the URL's)", true},
    {"ts-partitioning", "database", "ts_key_value_partitioning",
     {"COAPHUB_TS_PARTITIONING", "SQL_POSTGRES_TS_KV_PARTITIONING"}, T_STR,
     OFF(store.ts_partitioning),
     "PostgreSQL: time range of one telemetry partition: DAYS, MONTHS, YEARS or INDEFINITE",
     false},
    {"ts-ttl", "database", "ts_key_value_ttl", {"COAPHUB_TS_TTL", "SQL_TTL_TS_TS_KEY_VALUE_TTL"},
     T_I64, OFF(store.ts_ttl_s),
     "telemetry points older than this many seconds are deleted (0 = kept forever)", false},
    {"ttl-interval", "database", "ttl_execution_interval_ms",
     {"COAPHUB_TTL_INTERVAL_MS", "SQL_TTL_TS_EXECUTION_INTERVAL"}, T_I64,
     OFF(store.ttl_interval_ms), "how often the --ts-ttl clean-up runs, in ms", false},
    {"piggyback-ms", "coap", "piggyback_timeout",
     {"COAPHUB_PIGGYBACK_MS", "COAP_PIGGYBACK_TIMEOUT"}, T_INT, OFF(api.engine.piggyback_ms),
     "answer in the ACK if ready within this many ms, else empty ACK + separate response",
     false},
    {"ack-timeout-ms", "coap", "ack_timeout", {"COAPHUB_ACK_TIMEOUT_MS"}, T_INT,
     OFF(api.engine.ack_timeout_ms), "RFC 7252 ACK_TIMEOUT for our confirmable messages", false},
    {"max-retransmit", "coap", "max_retransmit", {"COAPHUB_MAX_RETRANSMIT"}, T_INT,
     OFF(api.engine.max_retransmit), "RFC 7252 MAX_RETRANSMIT", false},
    {"max-body", "coap", "max_body", {"COAPHUB_MAX_BODY"}, T_SIZE, OFF(api.engine.max_body),
     "largest request body (Block1 reassembly) in bytes; larger gets 4.13", false},
    {"coap-rate-device", "coap", "rate_device", {"COAPHUB_COAP_RATE_DEVICE"}, T_INT,
     OFF(api.rate_device),
     "requests per second one device may send (per shard; beyond: 4.29 + Max-Age; 0 = no limit)",
     false},
    {"coap-burst-device", "coap", "burst_device", {"COAPHUB_COAP_BURST_DEVICE"}, T_INT,
     OFF(api.burst_device), "requests one device may send at once above --coap-rate-device",
     false},
    {"coap-rate-address", "coap", "rate_address", {"COAPHUB_COAP_RATE_ADDRESS"}, T_INT,
     OFF(api.rate_address),
     "requests per second from one IPv4 address or IPv6 /64, all ports (per shard; beyond: "
     "4.29 + Max-Age; 0 = no limit)", false},
    {"coap-burst-address", "coap", "burst_address", {"COAPHUB_COAP_BURST_ADDRESS"}, T_INT,
     OFF(api.burst_address), "requests one address may send at once above --coap-rate-address",
     false},
    {"coap-rate-buckets", "coap", "rate_buckets", {"COAPHUB_COAP_RATE_BUCKETS"}, T_SIZE,
     OFF(api.rate_buckets),
     "devices and addresses each shard tracks for the rate limits (least recently used reused)",
     false},
    {"coap-dedup-entries", "coap", "dedup_entries", {"COAPHUB_COAP_DEDUP_ENTRIES"}, T_SIZE,
     OFF(api.engine.max_dedup_entries),
     "(peer, Message ID) pairs each shard remembers to answer retransmissions (RFC 7252 "
     "§4.5; beyond: the oldest is forgotten)", false},
    {"coap-block1-per-address", "coap", "block1_per_address",
     {"COAPHUB_COAP_BLOCK1_PER_ADDRESS"}, T_SIZE, OFF(api.engine.block1_per_addr),
     "Block1 uploads in progress from one IPv4 address or IPv6 /64 (per shard; a new one beyond "
     "gets 5.03 + Max-Age; 0 = no limit)", false},
    {"coap-block1-per-device", "coap", "block1_per_device", {"COAPHUB_COAP_BLOCK1_PER_DEVICE"},
     T_SIZE, OFF(api.engine.block1_per_owner),
     "Block1 uploads in progress per device (per shard; a new one drops its oldest; 0 = no "
     "limit)", false},
    {"coap-block-memory", "coap", "block_memory", {"COAPHUB_COAP_BLOCK_MEMORY"}, T_SIZE,
     OFF(api.engine.block_mem_cap),
     "bytes per shard for Block1 uploads and Block2 caches (a new upload beyond gets 5.03 + "
     "Max-Age)", false},
    {"coap-block-lifetime-ms", "coap", "block_lifetime", {"COAPHUB_COAP_BLOCK_LIFETIME_MS"},
     T_INT, OFF(api.engine.block_lifetime_ms),
     "an unfinished block-wise transfer is dropped after this long without a block (0 = "
     "EXCHANGE_LIFETIME, 247 s)", false},
    {"coap-amplification-factor", "coap", "amplification_factor",
     {"COAPHUB_COAP_AMPLIFICATION_FACTOR"}, T_INT, OFF(api.engine.amp_factor),
     "a reply to a plain-UDP address that has not proven it receives there (Echo, an ACK) is at "
     "most this many times its request: larger ones go as Block2, trimmed or 4.01 + Echo (0 = "
     "off)", false},
    {"coap-verified-addresses", "coap", "verified_addresses",
     {"COAPHUB_COAP_VERIFIED_ADDRESSES"}, T_SIZE, OFF(api.engine.amp_verified_max),
     "plain-UDP addresses (with port) each shard remembers as verified (least recently verified "
     "forgotten first)", false},
    {"coap-verified-ms", "coap", "verified_ms", {"COAPHUB_COAP_VERIFIED_MS"}, T_INT,
     OFF(api.engine.amp_verified_ms),
     "an address stays verified this long after its last proof (an Echo value back, an ACK of "
     "a CON); then its next large reply is shortened again", false},
    {"coap-observers-per-address", "coap", "observers_per_address",
     {"COAPHUB_COAP_OBSERVERS_PER_ADDRESS"}, T_SIZE, OFF(api.engine.observers_per_addr),
     "Observe relations from one IPv4 address or IPv6 /64 (per shard; a registration beyond is "
     "answered without Observe; 0 = no limit, e.g. 64 where devices have their own addresses)", false},
    {"psm-activity-timer-ms", "coap", "psm_activity_timer",
     {"COAPHUB_PSM_ACTIVITY_TIMER_MS", "COAP_PSM_ACTIVITY_TIMER"}, T_I64,
     OFF(api.psm_activity_timer_ms),
     "PSM devices get downlinks this long after an uplink, unless their profile says", false},
    {"paging-window-ms", "coap", "paging_transmission_window",
     {"COAPHUB_PAGING_WINDOW_MS", "COAP_PAGING_TRANSMISSION_WINDOW"}, T_I64,
     OFF(api.paging_window_ms),
     "eDRX devices get downlinks this long after an uplink, unless their profile says", false},
    {"max-string-len", "transport", "max_string_value_length",
     {"COAPHUB_MAX_STRING_LEN", "JSON_MAX_STRING_VALUE_LENGTH"}, T_SIZE, OFF(api.max_string_len),
     "longest string value accepted from devices (0 = no limit)", false},
    {"type-cast", "transport", "type_cast_enabled",
     {"COAPHUB_TYPE_CAST", "JSON_TYPE_CAST_ENABLED"}, T_BOOL, OFF(api.type_cast),
     "store numeric strings (\"43\") as numbers, as ThingsBoard does", false},
    {"inactivity-timeout-ms", "state", "inactivity_timeout_ms",
     {"COAPHUB_INACTIVITY_TIMEOUT_MS"}, T_I64, OFF(api.inactivity_timeout_ms),
     "a device without requests for this long becomes inactive", false},
    {"activity-report-ms", "state", "activity_report_ms", {"COAPHUB_ACTIVITY_REPORT_MS"}, T_I64,
     OFF(api.activity_report_ms), "lastActivityTime is written at most this often", false},
    {"ota-max-size", "ota", "max_size", {"COAPHUB_OTA_MAX_SIZE"}, T_SIZE, OFF(ota.max_size),
     "largest OTA package image accepted by upload, in bytes (kept in <data-dir>/ota); larger "
     "gets 413", false},
    {"jwt-expiration", "security", "jwt_token_expiration_time",
     {"COAPHUB_JWT_EXPIRATION", "JWT_TOKEN_EXPIRATION_TIME"}, T_I64, OFF(http.jwt_expiration_s),
     "REST access token lifetime in seconds", false},
    {"jwt-refresh-expiration", "security", "jwt_refresh_token_expiration_time",
     {"COAPHUB_JWT_REFRESH_EXPIRATION", "JWT_REFRESH_TOKEN_EXPIRATION_TIME"}, T_I64,
     OFF(http.jwt_refresh_expiration_s), "REST refresh token lifetime in seconds", false},
    {"jwt-signing-key", "security", "jwt_token_signing_key",
     {"COAPHUB_JWT_SIGNING_KEY", "JWT_TOKEN_SIGNING_KEY"}, T_STR, OFF(http.jwt_signing_key),
     "HMAC key for JWTs (default: random, generated once and kept in the database)", true},
    {"jwt-issuer", "security", "jwt_token_issuer", {"COAPHUB_JWT_ISSUER", "JWT_TOKEN_ISSUER"},
     T_STR, OFF(http.jwt_issuer), "JWT issuer claim", false},
    {"login-max-failures", "security", "login_max_failures", {"COAPHUB_LOGIN_MAX_FAILURES"},
     T_INT, OFF(http.login.max_fails),
     "failed logins for one user name before 429: from one address, that address is refused; "
     "in total, every address that failed for it is refused (addresses that did not fail are "
     "never refused)", false},
    {"login-address-max-failures", "security", "login_address_max_failures",
     {"COAPHUB_LOGIN_ADDRESS_MAX_FAILURES"}, T_INT, OFF(http.login.addr_max_fails),
     "failed logins from one address (IPv4, IPv6 /64), any user names, before it gets 429",
     false},
    {"login-lockout-ms", "security", "login_lockout", {"COAPHUB_LOGIN_LOCKOUT_MS"}, T_I64,
     OFF(http.login.lock_ms),
     "failures count while each comes within this many ms of the previous one; a lockout "
     "lasts this long after the last failure", false},
    {"login-throttle-entries", "security", "login_throttle_entries",
     {"COAPHUB_LOGIN_THROTTLE_ENTRIES"}, T_SIZE, OFF(http.login.max_entries),
     "failed-login counters kept (48 bytes each); when full, the least recently failed one "
     "that locks nothing is dropped", false},
    {"login-max-concurrent", "security", "login_max_concurrent",
     {"COAPHUB_LOGIN_MAX_CONCURRENT"}, T_INT, OFF(http.login.max_concurrent),
     "password (bcrypt) checks running at once; addresses that logged in before, then those "
     "without failures, wait up to 1 s for one, others get 429 (0 = half the CPU cores)",
     false},
    {"rpc-default-timeout-ms", "rpc", "default_timeout", {"COAPHUB_RPC_DEFAULT_TIMEOUT_MS"},
     T_I64, OFF(http.rpc_default_timeout_ms), "server-side RPC timeout when none is given",
     false},
    {"rpc-min-timeout-ms", "rpc", "min_timeout", {"COAPHUB_RPC_MIN_TIMEOUT_MS"}, T_I64,
     OFF(http.rpc_min_timeout_ms), "shortest server-side RPC timeout accepted", false},
    {"admin-user", "admin", "user", {"COAPHUB_ADMIN_USER"}, T_STR, OFF(admin_user),
     "first tenant administrator's login (new data dir only)", false},
    {"admin-password", "admin", "password", {"COAPHUB_ADMIN_PASSWORD"}, T_STR,
     OFF(admin_password),
     "first tenant administrator's password (new data dir only; default: generated, printed once)",
     true},
};
/* clang-format on */

enum { N_OPTS = sizeof opts / sizeof opts[0] };
_Static_assert(N_OPTS <= sizeof(((config_t *)0)->owned) / sizeof(char *),
               "config_t.owned needs a slot per option");

void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    /* The daemon's own defaults; the modules' come from their _cfg_default. */
    cfg->dtls_save_max_age_s = 600;
    cfg->shards = 1; /* one loop thread: the common case is the easiest to read (STYLE §2.3) */
    cfg->log_level = "info";
    cfg->log_json = false;
    cfg->dtls_enabled = true;
    cfg->admin_user = "tenant@thingsboard.org"; /* ThingsBoard's demo tenant administrator */
    udp_cfg_default(&cfg->udp);
    dtls_cfg_default(&cfg->dtls);
    store_cfg_default(&cfg->store);
    api_cfg_default(&cfg->api);
    http_cfg_default(&cfg->http);
    ota_cfg_default(&cfg->ota);
}

/* The value of option o in cfg as text (a default for --help, a value for --print-config). */
static void format_value(const config_t *cfg, const opt_t *o, char *buf, size_t cap)
{
    const char *base = (const char *)cfg;
    switch (o->type) {
    case T_STR: {
        const char *v = *(const char *const *)(base + o->offset);
        snprintf(buf, cap, "%s", v ? v : "");
        break;
    }
    case T_INT:
        snprintf(buf, cap, "%d", *(const int *)(base + o->offset));
        break;
    case T_I64:
        snprintf(buf, cap, "%lld", (long long)*(const int64_t *)(base + o->offset));
        break;
    case T_SIZE:
        snprintf(buf, cap, "%zu", *(const size_t *)(base + o->offset));
        break;
    case T_BOOL:
        snprintf(buf, cap, "%s", *(const bool *)(base + o->offset) ? "true" : "false");
        break;
    }
}

static int set_value(config_t *cfg, const opt_t *o, const char *val, const char *source)
{
    char *base = (char *)cfg;
    char *end;
    switch (o->type) {
    case T_STR: {
        size_t i = (size_t)(o - opts);
        free(cfg->owned[i]);
        cfg->owned[i] = val ? xstrdup(val) : NULL;
        *(const char **)(base + o->offset) = cfg->owned[i];
        return 0;
    }
    case T_INT:
    case T_I64:
    case T_SIZE: {
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (errno || end == val || *end || v < 0 || (o->type == T_INT && v > INT_MAX)) {
            fprintf(stderr, "coaphub: %s: %s must be a non-negative integer, got '%s'\n", source,
                    o->flag, val);
            return -1;
        }
        if (o->type == T_INT)
            *(int *)(base + o->offset) = (int)v;
        else if (o->type == T_I64)
            *(int64_t *)(base + o->offset) = v;
        else
            *(size_t *)(base + o->offset) = (size_t)v;
        return 0;
    }
    case T_BOOL: {
        bool *p = (bool *)(base + o->offset);
        if (!strcasecmp(val, "true") || !strcmp(val, "1") || !strcasecmp(val, "yes") ||
            !strcasecmp(val, "on"))
            *p = true;
        else if (!strcasecmp(val, "false") || !strcmp(val, "0") || !strcasecmp(val, "no") ||
                 !strcasecmp(val, "off"))
            *p = false;
        else {
            fprintf(stderr, "coaphub: %s: %s must be true or false, got '%s'\n", source, o->flag,
                    val);
            return -1;
        }
        return 0;
    }
    }
    return -1;
}

typedef struct ini_ctx {
    config_t *cfg;
    const char *path;
    int errors;
} ini_ctx_t;

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *c = user;
    for (size_t i = 0; i < N_OPTS; i++) {
        if (!strcmp(opts[i].section, section) && !strcmp(opts[i].key, name)) {
            if (set_value(c->cfg, &opts[i], value, c->path) != 0)
                c->errors++;
            return 1;
        }
    }
    fprintf(stderr, "coaphub: %s: unknown setting [%s] %s\n", c->path, section, name);
    c->errors++;
    return 1;
}

static char *default_data_dir(void)
{
    const char *s = getenv("STATE_DIRECTORY"); /* systemd StateDirectory= */
    if (s && *s)
        return xstrdup(s);
    s = getenv("XDG_STATE_HOME");
    if (s && *s)
        return xasprintf("%s/coaphub", s);
    s = getenv("HOME");
    return xasprintf("%s/.local/state/coaphub", s && *s ? s : ".");
}

/* Appends len bytes of p to out (cap bytes, always NUL-terminated), cutting what does not fit. */
static void append(char *out, size_t cap, size_t *n, const char *p, size_t len)
{
    if (*n + 1 >= cap)
        return;
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(out + *n, p, len);
    *n += len;
    out[*n] = '\0';
}

/* libpq's password parameters: "password", and "sslpassword" (the client key's). */
static bool is_password_key(const char *k, size_t len)
{
    return len >= 8 && strncasecmp(k + len - 8, "password", 8) == 0;
}

/* libpq's "key = value ..." form: a value runs to the next space unless single-quoted, with
 * backslash escapes in either form. */
static void mask_keyvalue(const char *s, char *out, size_t cap, size_t *n)
{
    while (*s) {
        const char *p = s;
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\t' && *p != '\n')
            p++;
        size_t klen = (size_t)(p - k);
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (*p != '=') { /* a word that is no key=value (libpq would refuse it): go on */
            append(out, cap, n, s, (size_t)(p - s));
            s = p;
            continue;
        }
        p++;
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        const char *v = p;
        bool quoted = *p == '\'';
        if (quoted)
            p++;
        while (*p && (quoted ? *p != '\'' : (*p != ' ' && *p != '\t' && *p != '\n'))) {
            if (*p == '\\' && p[1])
                p++;
            p++;
        }
        if (quoted && *p == '\'')
            p++;
        append(out, cap, n, s, (size_t)(v - s));
        if (is_password_key(k, klen))
            append(out, cap, n, "********", 8);
        else
            append(out, cap, n, v, (size_t)(p - v));
        s = p;
    }
}

void config_mask_url(const char *url, char *out, size_t cap)
{
    size_t n = 0;
    if (cap)
        out[0] = '\0';
    if (!url)
        return;
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end) {
        mask_keyvalue(url, out, cap, &n);
        return;
    }
    /* user:password@ ends at the last '@' before the query: a password with an unescaped
     * '/' or '@' is masked whole rather than cut at the wrong place and half shown. */
    const char *auth = scheme_end + 3;
    const char *query = strchr(auth, '?');
    const char *end = query ? query : auth + strlen(auth);
    const char *at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
        append(out, cap, &n, url, (size_t)(colon + 1 - url));
        append(out, cap, &n, "********", 8);
        append(out, cap, &n, at, (size_t)(end - at));
    } else {
        append(out, cap, &n, url, (size_t)(end - url));
    }
    /* ?user=...&password=... (JDBC and libpq URLs both take the password there too) */
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p + 1, '&');
        const char *stop = amp ? amp : p + strlen(p);
        const char *eq = memchr(p + 1, '=', (size_t)(stop - p - 1));
        if (eq && is_password_key(p + 1, (size_t)(eq - p - 1))) {
            append(out, cap, &n, p, (size_t)(eq + 1 - p));
            append(out, cap, &n, "********", 8);
        } else {
            append(out, cap, &n, p, (size_t)(stop - p));
        }
        p = stop;
    }
}

void config_usage(FILE *out)
{
    config_t def;
    config_defaults(&def);
    fprintf(out,
            "Usage: coaphub [OPTIONS]\n"
            "       coaphub db copy|backup ...   (moving and backing up the store; coaphub db "
            "--help)\n"
            "CoAP/DTLS device server compatible with ThingsBoard's device API and REST API.\n\n"
            "Every option can also be set in the config file ([section] key = value) or by an\n"
            "environment variable; flags win over the environment, which wins over the file.\n\n"
            "  --config FILE            INI config file (env COAPHUB_CONFIG)\n"
            "  --print-config           print the effective configuration and exit\n"
            "  --check-config           validate the configuration and exit\n"
            "  --help, --version\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_t *o = &opts[i];
        char left[64];
        snprintf(left, sizeof left, "--%s %s", o->flag,
                 o->type == T_BOOL ? "BOOL" : (o->type == T_STR ? "STR" : "N"));
        fprintf(out, "  %-30s %s\n", left, o->help);
        fprintf(out, "  %-30s [%s] %s; env", "", o->section, o->key);
        for (int e = 0; e < 3 && o->env[e]; e++)
            fprintf(out, " %s", o->env[e]);
        char v[4096];
        format_value(&def, o, v, sizeof v);
        fprintf(out, "; default %s\n", *v ? v : "(none)");
    }
    fprintf(out,
            "\nSignals: SIGTERM/SIGINT stop cleanly; a second one exits at once. SIGHUP reloads\n"
            "the DTLS server certificate and the device profiles.\n"
            "Service manager: with $NOTIFY_SOCKET set, READY=1, RELOADING=1, STOPPING=1 and\n"
            "WATCHDOG=1 (every $WATCHDOG_USEC/3) are sent as systemd's sd_notify(3) describes.\n"
            "Exit codes: 0 ok, 64 invalid usage or configuration, 1 start-up failure.\n");
}

/* The PostgreSQL settings the store would otherwise misread: a URL that names another database
 * would silently mean SQLite, and ThingsBoard's partitioning names are a closed set. */
static int check_database(store_cfg_t *s)
{
    const char *url = s->database_url;
    if (url && *url && !store_cfg_is_postgresql(s)) {
        char masked[512];
        config_mask_url(url, masked, sizeof masked);
        fprintf(stderr,
                "coaphub: --database must be a PostgreSQL URL (postgresql://, postgres://, "
                "jdbc:postgresql://) or libpq key=value parameters, got '%s'; leave it unset "
                "for SQLite\n",
                masked);
        return -1;
    }
    /* ThingsBoard reads the name case-insensitively; the store is given the canonical one. */
    static const char *const parts[] = {"DAYS", "MONTHS", "YEARS", "INDEFINITE"};
    const char *p = s->ts_partitioning ? s->ts_partitioning : "";
    bool found = false;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && !found; i++) {
        if (strcasecmp(p, parts[i]) == 0) {
            s->ts_partitioning = parts[i];
            found = true;
        }
    }
    if (!found) {
        fprintf(stderr,
                "coaphub: --ts-partitioning must be DAYS, MONTHS, YEARS or INDEFINITE, "
                "got '%s'\n",
                p);
        return -1;
    }
    if (s->ttl_interval_ms <= 0) {
        fprintf(stderr, "coaphub: --ttl-interval must be a positive number of ms\n");
        return -1;
    }
    if (s->probe_ms <= 0) {
        fprintf(stderr, "coaphub: --store-probe-ms must be a positive number of ms\n");
        return -1;
    }
    return 0;
}

static int check_login(const http_login_cfg_t *l)
{
    if (l->max_fails < 1 || l->addr_max_fails < 1 || l->lock_ms < 1 || l->max_entries < 16 ||
        l->max_entries > 16 * 1024 * 1024 || l->max_concurrent < 0) {
        fprintf(stderr,
                "coaphub: --login-max-failures, --login-address-max-failures and "
                "--login-lockout-ms must be at least 1, --login-throttle-entries "
                "16..16777216, --login-max-concurrent at least 0\n");
        return -1;
    }
    return 0;
}

/* Long polls hold a worker thread each (device_poll.c): the cap stays below the worker cap
 * so REST and the web UI always find a worker. */
static int check_long_polls(const http_cfg_t *h)
{
    if (h->long_poll_max < 0 || h->long_poll_max >= h->max_workers) {
        fprintf(stderr,
                "coaphub: --http-long-poll-max must be 0..--http-workers - 1 (each "
                "holds a worker thread)\n");
        return -1;
    }
    if (h->long_poll_per_device < 1) {
        fprintf(stderr, "coaphub: --http-long-poll-per-device must be at least 1\n");
        return -1;
    }
    if (h->long_poll_timeout_ms < 1 || h->long_poll_max_timeout_ms < h->long_poll_timeout_ms) {
        fprintf(stderr,
                "coaphub: --http-long-poll-timeout-ms must be at least 1 and at most "
                "--http-long-poll-max-timeout-ms\n");
        return -1;
    }
    return 0;
}

/* The HTTP front's limits (front.c): all positive, none beyond what the process can hold. */
static int check_http_front(const http_cfg_t *h)
{
    if (h->max_connections < 1 || h->max_connections > 1000000 || h->max_connections_per_addr < 1 ||
        h->max_connections_per_addr > h->max_connections) {
        fprintf(stderr,
                "coaphub: --http-max-connections must be 1..1000000 and "
                "--http-max-connections-per-address 1..--http-max-connections\n");
        return -1;
    }
    if (h->header_timeout_ms < 1000 || h->idle_timeout_ms < 1000 || h->body_min_rate < 0) {
        fprintf(stderr,
                "coaphub: --http-header-timeout-ms and --http-idle-timeout-ms must be "
                "at least 1000, --http-body-min-rate at least 0\n");
        return -1;
    }
    if (h->threads < 1 || h->threads > 64 || h->max_workers < 2 || h->max_workers > 4096) {
        fprintf(stderr, "coaphub: --http-threads must be 1..64 and --http-workers 2..4096\n");
        return -1;
    }
    return 0;
}

config_result_t config_load(config_t *cfg, int argc, char **argv)
{
    config_defaults(cfg);

    struct option longopts[N_OPTS + 6];
    for (size_t i = 0; i < N_OPTS; i++)
        longopts[i] = (struct option){opts[i].flag, required_argument, NULL, (int)(1000 + i)};
    longopts[N_OPTS] = (struct option){"config", required_argument, NULL, 'c'};
    longopts[N_OPTS + 1] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[N_OPTS + 2] = (struct option){"version", no_argument, NULL, 'V'};
    longopts[N_OPTS + 3] = (struct option){"print-config", no_argument, NULL, 'p'};
    longopts[N_OPTS + 4] = (struct option){"check-config", no_argument, NULL, 'k'};
    longopts[N_OPTS + 5] = (struct option){0};

    /* Pass 1: find --config, --help, --version and reject unknown flags. */
    const char *file = getenv("COAPHUB_CONFIG");
    int c;
    opterr = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': file = optarg; break;
        case 'h': config_usage(stdout); return CONFIG_EXIT_OK;
        case 'V': printf("coaphub %s\n", COAPHUB_VERSION); return CONFIG_EXIT_OK;
        case 'p': cfg->print_config = true; break;
        case 'k': cfg->check_config = true; break;
        case '?': fprintf(stderr, "Try 'coaphub --help'.\n"); return CONFIG_EXIT_USAGE;
        default: break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "coaphub: unexpected argument '%s'\nTry 'coaphub --help'.\n", argv[optind]);
        return CONFIG_EXIT_USAGE;
    }

    if (file) {
        cfg->config_file = xstrdup(file);
        ini_ctx_t ctx = {.cfg = cfg, .path = file};
        int rc = ini_parse(file, on_ini, &ctx);
        if (rc < 0) {
            fprintf(stderr, "coaphub: cannot read config file %s: %s\n", file, strerror(errno));
            return CONFIG_EXIT_USAGE;
        }
        if (rc > 0) {
            fprintf(stderr, "coaphub: %s:%d: syntax error\n", file, rc);
            return CONFIG_EXIT_USAGE;
        }
        if (ctx.errors)
            return CONFIG_EXIT_USAGE;
    }

    for (size_t i = 0; i < N_OPTS; i++) {
        /* Later names in the list are ThingsBoard's; ours (first) wins if both are set. */
        for (int e = 2; e >= 0; e--) {
            const char *name = opts[i].env[e];
            const char *v = name ? getenv(name) : NULL;
            if (v && *v && set_value(cfg, &opts[i], v, name) != 0)
                return CONFIG_EXIT_USAGE;
        }
    }

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c >= 1000 && c < 1000 + (int)N_OPTS) {
            char src[80];
            snprintf(src, sizeof src, "--%s", opts[c - 1000].flag);
            if (set_value(cfg, &opts[c - 1000], optarg, src) != 0)
                return CONFIG_EXIT_USAGE;
        }
    }

    if (!cfg->data_dir) {
        for (size_t i = 0; i < N_OPTS; i++)
            if (opts[i].offset == OFF(data_dir))
                cfg->data_dir = cfg->owned[i] = default_data_dir();
    }
    if (cfg->udp.port > 65535 || cfg->dtls.port > 65535 || cfg->http.port > 65535) {
        fprintf(stderr, "coaphub: ports must be 0..65535\n");
        return CONFIG_EXIT_USAGE;
    }
    if (cfg->dtls.cid_len < 0 || cfg->dtls.cid_len > DTLS_CID_LEN_MAX) {
        fprintf(stderr, "coaphub: --dtls-cid-length must be 0..%d\n", DTLS_CID_LEN_MAX);
        return CONFIG_EXIT_USAGE;
    }
    if (cfg->shards > 256) {
        fprintf(stderr, "coaphub: --shards must be 0..256\n");
        return CONFIG_EXIT_USAGE;
    }
    if (cfg->dtls_save_max_age_s > DTLS_SAVED_MAX_AGE_S) {
        fprintf(stderr, "coaphub: --dtls-session-save-max-age must be 0..%d (a day)\n",
                DTLS_SAVED_MAX_AGE_S);
        return CONFIG_EXIT_USAGE;
    }
    if (check_database(&cfg->store) != 0)
        return CONFIG_EXIT_USAGE;
    if (check_login(&cfg->http.login) != 0)
        return CONFIG_EXIT_USAGE;
    if (check_http_front(&cfg->http) != 0 || check_long_polls(&cfg->http) != 0)
        return CONFIG_EXIT_USAGE;
    return CONFIG_RUN;
}

void config_print(const config_t *cfg, FILE *out)
{
    const char *section = "";
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_t *o = &opts[i];
        if (strcmp(section, o->section)) {
            section = o->section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        char v[4096];
        format_value(cfg, o, v, sizeof v);
        if (o->secret == MASK_URL) {
            char masked[4096];
            config_mask_url(v, masked, sizeof masked);
            fprintf(out, "%s = %s\n", o->key, masked);
        } else {
            fprintf(out, "%s = %s\n", o->key, o->secret && *v ? "********" : v);
        }
    }
}

void config_free(config_t *cfg)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        free(cfg->owned[i]);
        cfg->owned[i] = NULL;
    }
    free(cfg->config_file);
    cfg->config_file = NULL;
}
