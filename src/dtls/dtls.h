/* dtls.h — the DTLS listener of one shard (implements core/transport.h over DTLS 1.2 with
 * OpenSSL 3). It knows nothing of CoAP or devices: it hands plaintext datagrams and closes
 * to a transport_sink_t, and asks cfg.identify which device a client certificate names.
 *
 * One UDP socket per shard (SO_REUSEPORT). A ClientHello without a valid cookie gets only a
 * HelloVerifyRequest (stateless); then a per-peer SSL runs the handshake, capped; an
 * established session is a transport_peer_t whose cert_device_id carries what cfg.identify
 * said of the client's leaf certificate (0 for one-way DTLS / unknown certificates).
 * Runs on the shard's loop thread, except dtls_ctx_* which are shared by all shards.
 */
#ifndef COAPHUB_DTLS_DTLS_H
#define COAPHUB_DTLS_DTLS_H

#include "core/err.h"
#include "core/loop.h"
#include "core/stats.h"
#include "core/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most certificates of a client's chain handed to dtls_cfg_t.identify (the leaf included); a
 * longer chain is cut, which the identify side sees as an incomplete one. */
#define DTLS_IDENTIFY_MAX 8

typedef struct dtls_cfg {
    const char *bind_addr;
    int port;
    const char *data_dir;      /* where a generated server certificate is kept */
    const char *cert_file;     /* NULL: generate/reuse data_dir/dtls-server-cert.pem + key */
    const char *key_file;      /* NULL: same file as cert_file */
    const char *key_password;  /* NULL if the key is not encrypted */
    const char *chain_file;    /* NULL: none */
    bool skip_validity_check;  /* accept expired / not-yet-valid client certificates */
    const char *ciphers;       /* OpenSSL cipher list; NULL = the AEAD suites of spec §6.7 */
    int mtu; /* link MTU (IP packet), default 1024: datagrams <= mtu - 28 (IPv4), - 48 (IPv6) */
    int retransmission_ms;     /* first flight retransmission timeout, default 1000 */
    int max_handshakes;        /* per shard, default 1000; when full the oldest stalled one
                                * is evicted (listener.c) */
    /* Handshakes in progress from one IP address (an IPv6 /64), per shard; more from it are
     * refused until one ends (default 100). */
    int max_handshakes_per_addr;
    /* A handshake whose state has not advanced for this long is dropped (default 10000):
     * shorter than handshake_timeout_ms, long enough for two lost flights of a client that
     * retransmits after 1 s, 2 s, 4 s (RFC 6347 §4.2.4). */
    int handshake_stall_ms;
    int max_sessions;          /* per shard, default 100000 */
    /* When max_sessions is reached, a session without authenticated traffic for this long is
     * stale and may be evicted for a new one; if the stalest is fresher, new handshakes are
     * refused instead (Scandium's model, reliability.md D10; default 1800000, 30 min, as
     * Scandium's stale-connection threshold). 0: the stalest is always evicted. */
    int64_t stale_session_ms;
    int64_t session_inactivity_ms; /* default 86400000 */
    /* Sessions whose client certificate names no device (an unknown self-signed certificate,
     * usable only with a token in the path) are closed after this long without traffic
     * (default 600000), and are evicted before any other session when max_sessions is hit. */
    int64_t unknown_cert_inactivity_ms;
    /* Smallest RSA client key accepted, in bits (0 = any, the default, as ThingsBoard). */
    int min_rsa_bits;
    /* Largest client Certificate message accepted, in bytes (default 16384). OpenSSL also
     * uses it (or ~17.7 KB, whichever is larger) as the largest handshake message a peer may
     * announce, and allocates each announced length as soon as a first fragment of it comes,
     * for up to 11 messages per handshake: this bounds what a stalled handshake can hold. */
    int max_client_chain_bytes;
    int handshake_timeout_ms;  /* a half-open handshake is dropped after this (default 30000) */
    /* After the first application record, free OpenSSL's SSL and protect records with our
     * compact record layer (~0.2 KB instead of ~50 KB per idle session; AES-GCM/CCM/CCM_8
     * suites only, others keep OpenSSL's). false keeps OpenSSL's record layer throughout
     * (for comparison). Default true. */
    bool compact_records;
    /* RFC 9146 Connection ID: the length of the CIDs the server chooses for clients that ask
     * (1..DTLS_CID_LEN_MAX); 0 = the extension is never answered (default). Needs
     * compact_records: records with a CID are opened by the compact layer. */
    int cid_len;
    /* This listener's place among the shards' listeners of one port (they bind in index
     * order, which is also their order in the kernel's SO_REUSEPORT group). With more than
     * one shard, a socket filter attached by shard 0 picks the shard of each datagram: a
     * tls12_cid record goes to the shard named by the first byte of its CID (its value
     * modulo shard_count; endpoint.c chooses CIDs so), so a device whose NAT rebinds stays on
     * the shard holding its session; anything else by a hash of its source address and port
     * that dtls computes too, so saved sessions go back to the right shard at start.
     * shard_count 0 or 1: one listener, no filter. */
    int shard_index, shard_count;
    /* Which device the client's certificates name: its id, or 0 for none (the session then
     * works as one-way DTLS). der[0] (len[0] bytes) is the leaf; der[1..n) are the
     * certificates the client sent above it, as sent, at most DTLS_IDENTIFY_MAX in all (none
     * after a resumption: OpenSSL keeps only the leaf in a session). Called on the shard
     * thread once per completed handshake, after OpenSSL's verify callback and outside it:
     * it answers from memory for every certificate it knows (STYLE.md §2.3), and may write
     * to the store for the rare first handshake of a certificate it provisions. NULL: no
     * device is ever identified by certificate. */
    int64_t (*identify)(void *ctx, const uint8_t *const *der, const size_t *len, size_t n);
    void *identify_ctx;
    /* Which device a PSK identity (len bytes, not NUL-terminated) names, with its key copied
     * to key (*key_len bytes, at most DTLS_PSK_MAX): the device id, or 0 when unknown (the
     * handshake then fails with unknown_psk_identity). Called with identify_ctx on the shard
     * thread from OpenSSL's PSK callback (once per full PSK handshake) and again when the
     * session is established (to bind it to the device); it answers from memory only. NULL:
     * PSK suites are not offered. */
    int64_t (*psk_find)(void *ctx, const char *identity, size_t len, uint8_t *key, size_t *key_len);
} dtls_cfg_t;

/* Longest Connection ID the server chooses. */
#define DTLS_CID_LEN_MAX 16

/* Largest PSK psk_find may return, in bytes. */
#define DTLS_PSK_MAX 64

/* Fills cfg with the defaults noted above (bind 0.0.0.0:5684, data_dir "."). */
void dtls_cfg_default(dtls_cfg_t *cfg);

/* The shared server context: SSL_CTX with certificate, verify policy, cookie secret. */
typedef struct dtls_ctx dtls_ctx_t;

/* Loads (or on first start generates and stores) the server certificate and builds the
 * context. Prints the certificate's SHA-256 fingerprint and how a client trusts it when it
 * was generated. NULL and err on failure. Any thread, before shards start. */
dtls_ctx_t *dtls_ctx_new(const dtls_cfg_t *cfg, char err[static ERR_LEN]);
/* Reloads the server certificate for new handshakes (SIGHUP); live sessions keep theirs.
 * Returns 0, or a negative error with err filled (the old certificate stays in use). */
int dtls_ctx_reload(dtls_ctx_t *ctx, char err[static ERR_LEN]);
/* Path of the server certificate in use (for `-R` hints and downloads). */
const char *dtls_ctx_cert_path(const dtls_ctx_t *ctx);
void dtls_ctx_free(dtls_ctx_t *ctx);

typedef struct dtls_listener dtls_listener_t;

/* Binds the shard's DTLS socket and delivers decrypted datagrams to sink (copied). */
dtls_listener_t *dtls_listener_new(loop_t *loop, const transport_sink_t *sink, dtls_ctx_t *ctx,
                                   const dtls_cfg_t *cfg, char err[static ERR_LEN]);
int dtls_listener_port(const dtls_listener_t *l);
/* Ends every session bound to device_id (credentials changed or device deleted): sends
 * close_notify and tells the sink. Shard thread. */
void dtls_listener_close_device(dtls_listener_t *l, int64_t device_id);
void dtls_listener_free(dtls_listener_t *l);

/* ---- sessions that survive a restart (saved.c; docs/operations.md) ----------------------- */

/* Longest validity of a saved-sessions file (a day): a copy of live record keys should not
 * be worth anything for long. */
#define DTLS_SAVED_MAX_AGE_S 86400

/* The sessions being saved, gathered from every shard, then written as one file. */
typedef struct dtls_save dtls_save_t;
dtls_save_t *dtls_save_new(void);
void dtls_save_free(dtls_save_t *w);
size_t dtls_save_count(const dtls_save_t *w);
/* Starts a save: removes the previous saved-sessions file and its stale list (the sessions
 * in it are saved again now). 0 or -errno. Before any dtls_listener_save of this save. */
int dtls_save_begin(const char *data_dir);
/* Adds this listener's established compact sessions to w, each with what the sink's save
 * hook says of it; sessions still on OpenSSL's record layer cannot be saved and are counted
 * in *skipped. stopping: the listener is about to be freed, and the saved sessions then end
 * without close_notify (the device must not learn that the session ended); otherwise the
 * server runs on and each saved session, at its first record sent or received after this,
 * is listed as stale so that no later load offers it (saved.c). Shard thread, or
 * any thread once the shard's loop stopped. Returns the number added. */
size_t dtls_listener_save(dtls_listener_t *l, dtls_save_t *w, bool stopping, size_t *skipped);
/* Writes <data_dir>/dtls-sessions.bin (AES-256-GCM under <data_dir>/dtls-sessions.key, made
 * on first use), valid for max_age_s seconds, atomically. 0 or a negative error with err. */
int dtls_save_write(const dtls_save_t *w, const char *data_dir, int64_t max_age_s,
                    char err[static ERR_LEN]);
/* At start, before the shards run: reads <data_dir>/dtls-sessions.bin if there is one,
 * deletes it, and offers its sessions to the listeners of ctx, which claim a session when a
 * record from its address authenticates under its keys. Returns the number loaded (0 when
 * there is no file), or a negative error with err filled (the file is then not used). */
int dtls_ctx_restore_sessions(dtls_ctx_t *ctx, const char *data_dir, char err[static ERR_LEN]);
/* Makes the saved sessions whose devices this listener will hear (its shard index: the
 * listeners steer datagrams by a function of the source address, or of the CID for CID
 * records, that this computes too) established sessions now, before their devices send
 * anything, so observations restored with them get notifications at once. A session that
 * still reaches another shard (an address rebound across the restart) is claimed there by
 * its next record. Shard thread, or before the shard's loop runs. Returns how many. */
size_t dtls_listener_adopt_saved(dtls_listener_t *l);
/* At a stop: the restored sessions that no device claimed yet (several shards) go to w as
 * they are, so a second restart within their max age does not lose them. Returns how many. */
size_t dtls_ctx_save_unclaimed(dtls_ctx_t *ctx, dtls_save_t *w);
/* How many sessions the last dtls_ctx_restore_sessions loaded. */
size_t dtls_ctx_restore_loaded(dtls_ctx_t *ctx);

/* Counters of a listener (core/stats.h: field, /metrics family, type, labels, help).
 * refused: ClientHellos with a valid cookie dropped because max_handshakes were in progress
 * and none was stalled long enough to evict; refused_per_address: because their address
 * had max_handshakes_per_addr in progress; refused_sessions_full: ClientHellos dropped, or
 * completed handshakes closed at once, because max_sessions were established and none was
 * stale (stale_session_ms); evicted: handshakes dropped to admit a new one;
 * timeout: handshakes dropped after handshake_timeout_ms; stalled: after handshake_stall_ms
 * without progress; evicted_unknown / idle_unknown: sessions of certificates that name no
 * device evicted for a new session or closed for inactivity; idle_closed: sessions closed for
 * inactivity; closed_by_credentials: by dtls_listener_close_device. Compact record layer:
 * sessions moved onto it, and of records_dropped those that were replays (or older than the
 * window) and those whose AEAD tag failed. Saved sessions (a restart): claimed by a record
 * that authenticated under a restored session's keys, expired unclaimed, written by a save. */
#define DTLS_STATS(X)                                                                              \
    X(datagrams_in, "dtls_datagrams_received_total", "counter", NULL, "DTLS datagrams received.")  \
    X(cookies_sent, "dtls_handshakes_total", "counter", "{result=\"cookie_sent\"}",                \
      "DTLS handshake events by result.")                                                          \
    X(cookies_bad, "dtls_handshakes_total", "counter", "{result=\"cookie_bad\"}", NULL)            \
    X(handshakes_ok, "dtls_handshakes_total", "counter", "{result=\"ok\"}", NULL)                  \
    X(handshakes_failed, "dtls_handshakes_total", "counter", "{result=\"failed\"}", NULL)          \
    X(handshakes_refused, "dtls_handshakes_total", "counter", "{result=\"refused\"}", NULL)        \
    X(handshake_timeouts, "dtls_handshakes_total", "counter", "{result=\"timeout\"}", NULL)        \
    X(handshakes_refused_addr, "dtls_handshakes_total", "counter",                                 \
      "{result=\"refused_per_address\"}", NULL)                                                    \
    X(handshakes_refused_full, "dtls_handshakes_total", "counter",                                 \
      "{result=\"refused_sessions_full\"}", NULL)                                                  \
    X(handshakes_evicted, "dtls_handshakes_total", "counter", "{result=\"evicted\"}", NULL)        \
    X(handshakes_stalled, "dtls_handshakes_total", "counter", "{result=\"stalled\"}", NULL)        \
    X(resumed, "dtls_handshakes_total", "counter", "{result=\"resumed\"}", NULL)                   \
    X(handshakes_in_progress, "dtls_handshakes_in_progress", "gauge", NULL,                        \
      "DTLS handshakes past the cookie.")                                                          \
    X(sessions, "dtls_sessions", "gauge", NULL, "Established DTLS sessions.")                      \
    X(records_dropped, "dtls_records_dropped_total", "counter", NULL,                              \
      "DTLS datagrams that yielded no plaintext (bad MAC, replay, unknown peer).")                 \
    X(sessions_compacted, "dtls_sessions_compacted_total", "counter", NULL,                        \
      "Sessions moved to the compact record layer.")                                               \
    X(records_replayed, "dtls_records_rejected_total", "counter", "{reason=\"replay\"}",           \
      "Records dropped by the compact layer.")                                                     \
    X(records_bad_mac, "dtls_records_rejected_total", "counter", "{reason=\"mac\"}", NULL)         \
    X(cid_records, "dtls_cid_records_total", "counter", NULL,                                      \
      "Authenticated RFC 9146 records (tls12_cid) received.")                                      \
    X(cid_address_changes, "dtls_cid_address_changes_total", "counter", NULL,                      \
      "Sessions that moved to a new client address after a CID record from it authenticated.")     \
    X(cid_unknown, "dtls_cid_records_dropped_total", "counter", "{reason=\"unknown_cid\"}",        \
      "CID records dropped before decryption.")                                                    \
    X(cid_sessions, "dtls_cid_sessions", "gauge", NULL,                                            \
      "Handshakes and sessions with a Connection ID of ours.")                                     \
    X(evicted, "dtls_sessions_closed_total", "counter", "{reason=\"evicted\"}",                    \
      "DTLS sessions closed by the server.")                                                       \
    X(idle_closed, "dtls_sessions_closed_total", "counter", "{reason=\"idle\"}", NULL)             \
    X(evicted_unknown, "dtls_sessions_closed_total", "counter",                                    \
      "{reason=\"evicted_unknown_cert\"}", NULL)                                                   \
    X(idle_unknown, "dtls_sessions_closed_total", "counter", "{reason=\"idle_unknown_cert\"}",     \
      NULL)                                                                                        \
    X(closed_by_credentials, "dtls_sessions_closed_total", "counter", "{reason=\"credentials\"}",  \
      NULL)                                                                                        \
    X(saved_claimed, "dtls_saved_sessions_total", "counter", "{event=\"claimed\"}",                \
      "Sessions of a previous run: claimed by their device, expired unclaimed, saved.")            \
    X(saved_expired, "dtls_saved_sessions_total", "counter", "{event=\"expired\"}", NULL)          \
    X(saved_written, "dtls_saved_sessions_total", "counter", "{event=\"saved\"}", NULL)
typedef struct dtls_stats {
    DTLS_STATS(STATS_FIELD)
} dtls_stats_t;
/* Counters of this listener (shard thread). */
void dtls_listener_get_stats(const dtls_listener_t *l, dtls_stats_t *out);

#endif
