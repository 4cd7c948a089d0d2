/* config.h — the daemon's settings: one table of options read from defaults, then a config
 * file (INI, section.key), then environment variables (ThingsBoard's names where a TB
 * concept exists, else COAPHUB_*), then command-line flags. Later sources win.
 * After config_load() the structure is read-only.
 */
#ifndef COAPHUB_APP_CONFIG_H
#define COAPHUB_APP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct config {
    char *config_file;
    char *data_dir;
    char *bind;
    int coap_port;
    int coaps_port;
    char *http_bind;
    int http_port;
    char *public_host;
    int shards;
    char *log_level;
    bool log_json;
    /* DTLS */
    bool dtls_enabled;
    char *dtls_cert_file;
    char *dtls_key_file;
    char *dtls_key_password;
    char *dtls_chain_file;
    char *dtls_ciphers;
    bool dtls_skip_validity_check;
    bool dtls_compact_records;
    int dtls_mtu;
    int dtls_retransmission_ms;
    int dtls_max_handshakes;
    int dtls_max_sessions;
    int64_t dtls_session_inactivity_ms;
    /* store */
    bool sync_full;
    int batch_delay_ms;
    /* device API */
    int piggyback_ms;
    int ack_timeout_ms;
    int max_retransmit;
    int64_t max_body;
    int64_t max_string_len;
    bool type_cast;
    int64_t inactivity_timeout_ms;
    int64_t activity_report_ms;
    /* REST */
    int64_t jwt_expiration_s;
    int64_t jwt_refresh_expiration_s;
    char *jwt_signing_key;
    char *jwt_issuer;
    int64_t rpc_default_timeout_ms;
    int64_t rpc_min_timeout_ms;
    char *admin_user;
    char *admin_password;
    /* actions */
    bool print_config;
    bool check_config;
} config_t;

typedef enum { CONFIG_RUN = 0, CONFIG_EXIT_OK = 1, CONFIG_EXIT_USAGE = 2 } config_result_t;

/* Fills cfg from all sources. Prints --help/--version itself (CONFIG_EXIT_OK) and writes
 * errors to stderr (CONFIG_EXIT_USAGE). */
config_result_t config_load(config_t *cfg, int argc, char **argv);
/* Writes the effective configuration as INI, secrets masked. */
void config_print(const config_t *cfg, FILE *out);
/* Writes --help. */
void config_usage(FILE *out);
void config_free(config_t *cfg);

#endif
