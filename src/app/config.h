/* config.h — the daemon's settings: one table of options read from defaults, then a config
 * file (INI, section.key), then environment variables (ThingsBoard's names where a TB
 * concept exists, else COAPHUB_*), then command-line flags. Later sources win.
 * After config_load() the structure is read-only.
 */
#ifndef COAPHUB_APP_CONFIG_H
#define COAPHUB_APP_CONFIG_H

#include "api/api.h"
#include "dtls/dtls.h"
#include "http/http.h"
#include "ota/ota.h"
#include "store/store.h"
#include "udp/udp.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct config {
    char *config_file;
    /* The daemon's own settings (defaults: config.c's app_defaults). */
    const char *data_dir; /* NULL until config_load picks the default */
    int shards;
    const char *log_level;
    bool log_json;
    bool dtls_enabled;
    const char *admin_user;
    const char *admin_password;
    /* Each module's settings. Its _cfg_default() is the only source of their defaults; the
     * option table points into these structs, and server_start hands them on. Fields that
     * are wiring rather than settings (ports actually bound, callbacks, the store's path)
     * are filled by server_start. */
    udp_cfg_t udp;     /* --bind, --coap-port */
    dtls_cfg_t dtls;   /* --coaps-port, --dtls-*; bind_addr follows udp.bind_addr */
    store_cfg_t store; /* --sync-full, --batch-delay-ms, --database, --ts-* */
    api_cfg_t api;     /* the device API and its CoAP engine */
    http_cfg_t http;   /* --http-*, --jwt-*, --rpc-*, --public-host */
    ota_cfg_t ota;     /* --ota-max-size */
    /* actions */
    bool print_config;
    bool check_config;
    /* Strings config_load allocated, by option index (freed by config_free); the others
     * point to constants of the _cfg_default functions. */
    char *owned[96];
} config_t;

/* Fills cfg with every default: the app's own, then each module's _cfg_default(). No
 * allocation; config_free is harmless on the result. */
void config_defaults(config_t *cfg);

typedef enum { CONFIG_RUN = 0, CONFIG_EXIT_OK = 1, CONFIG_EXIT_USAGE = 2 } config_result_t;

/* Fills cfg from all sources. Prints --help/--version itself (CONFIG_EXIT_OK) and writes
 * errors to stderr (CONFIG_EXIT_USAGE). */
config_result_t config_load(config_t *cfg, int argc, char **argv);
/* Writes the effective configuration as INI, secrets masked. */
void config_print(const config_t *cfg, FILE *out);
/* Copies a database URL (postgresql://, jdbc:postgresql://) or libpq "key=value" string to out
 * with every password in it replaced by "********": the user:password@ part, and password or
 * sslpassword parameters. Cut to cap - 1 bytes; out is always NUL-terminated (cap > 0). For
 * logs and --print-config: a password is never printed. */
void config_mask_url(const char *url, char *out, size_t cap);
/* Writes --help; each default is printed from config_defaults(). */
void config_usage(FILE *out);
void config_free(config_t *cfg);

#endif
