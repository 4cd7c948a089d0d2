/* coaphub-cli.c — admin command-line client for coaphub's ThingsBoard-compatible REST API.
 *
 *   coaphub-cli [--url URL] [--user EMAIL] [--password PW] [--json] VERB ...
 *
 * This file holds only global option handling and verb dispatch; the verbs live in
 * cli_device.c, cli_profile.c, cli_data.c, cli_ota.c and cli_sessions.c, the HTTP plumbing in cli_http.c.
 * Settings come from flags, then environment (COAPHUB_URL, COAPHUB_USER, COAPHUB_PASSWORD), then
 * defaults. Exit codes are sysexits.h values; docs/cli.md lists them.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "core/xmalloc.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"
#define CLI_DEFAULT_TIMEOUT_MS 30000L

static const char USAGE[] =
    "usage: coaphub-cli [--url URL] [--user EMAIL] [--password PW] [--json] VERB ...\n"
    "\n"
    "Global options (also accepted after the verb):\n"
    "  --url URL        server REST base URL (env COAPHUB_URL, default " CLI_DEFAULT_URL
    ")\n"
    "  --user EMAIL     tenant administrator login (env COAPHUB_USER)\n"
    "  --password PW    password (env COAPHUB_PASSWORD; prefer the env: argv is public)\n"
    "  --json           print raw JSON instead of tables\n"
    "  --help, --version\n"
    "\n"
    "Verbs:\n"
    "  device add NAME [--token T] [--type TYPE | --profile PROFILE]\n"
    "  device list [--search S]         device show NAME             device delete NAME\n"
    "  device token NAME TOKEN          device cert NAME --cert cert.pem\n"
    "  profile list [--search S]        profile show NAME            profile delete NAME\n"
    "  profile add NAME [OPTIONS]       profile set NAME [OPTIONS]   profile default NAME\n"
    "      OPTIONS: --strategy allow-create|check-pre-provisioned|x509-chain|disabled\n"
    "      --provision-key K --provision-secret S  --ca-cert FILE [--cn-regex RE]\n"
    "      --power-mode psm|drx|edrx [--psm-activity-timer MS] [--edrx-cycle MS]\n"
    "      [--paging-window MS]  --description TEXT  --default"

    "  telemetry NAME [KEYS]            latest telemetry values\n"
    "  attr set NAME SCOPE key=value... attr get NAME SCOPE [KEYS]\n"
    "  rpc NAME METHOD [PARAMS_JSON] [--oneway] [--timeout MS]\n"
    "  ota upload --title T --version V [--type T] [--profile P] FILE\n"
    "  ota list                         ota assign PACKAGE --profile P | --device D\n"
    "  ota delete PACKAGE\n"
    "  sessions save                    DTLS sessions to the saved-sessions file, now\n"
    "\n"
    "'coaphub-cli VERB --help' explains a verb. Exit status: 0 ok, 64 usage, 65 rejected input\n"
    "(HTTP 400), 66 not found, 69 server unreachable, 70 server error, 75 timeout/conflict,\n"
    "76 unexpected answer, 77 not authorised.\n";

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

int main(int argc, char **argv)
{
    cli_t c = {
        .url = env_or("COAPHUB_URL", CLI_DEFAULT_URL),
        .user = env_or("COAPHUB_USER", NULL),
        .password = env_or("COAPHUB_PASSWORD", NULL),
        .timeout_ms = CLI_DEFAULT_TIMEOUT_MS,
    };
    /* Global options before the verb; the verb parsers accept them after it as well. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            return EX_OK;
        } else if (strcmp(a, "--version") == 0) {
            printf("coaphub-cli %s\n", COAPHUB_VERSION);
            return EX_OK;
        } else if (strcmp(a, "--json") == 0) {
            c.json = 1;
            continue;
        } else if (strcmp(a, "--url") == 0) {
            slot = &c.url;
        } else if (strcmp(a, "--user") == 0) {
            slot = &c.user;
        } else if (strcmp(a, "--password") == 0) {
            slot = &c.password;
        } else {
            fprintf(stderr, "error: unknown option '%s'\n%s", a, USAGE);
            return EX_USAGE;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: option %s needs a value\n", a);
            return EX_USAGE;
        }
        *slot = argv[++i];
    }
    if (i >= argc) {
        fputs(USAGE, stderr);
        return EX_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        return EX_SOFTWARE;
    }
    const char *verb = argv[i];
    int rc;
    if (strcmp(verb, "device") == 0) {
        rc = cli_cmd_device(&c, argc - i, argv + i);
    } else if (strcmp(verb, "profile") == 0) {
        rc = cli_cmd_profile(&c, argc - i, argv + i);
    } else if (strcmp(verb, "telemetry") == 0) {
        rc = cli_cmd_telemetry(&c, argc - i, argv + i);
    } else if (strcmp(verb, "attr") == 0) {
        rc = cli_cmd_attr(&c, argc - i, argv + i);
    } else if (strcmp(verb, "rpc") == 0) {
        rc = cli_cmd_rpc(&c, argc - i, argv + i);
    } else if (strcmp(verb, "ota") == 0) {
        rc = cli_cmd_ota(&c, argc - i, argv + i);
    } else if (strcmp(verb, "sessions") == 0) {
        rc = cli_cmd_sessions(&c, argc - i, argv + i);
    } else if (strcmp(verb, "help") == 0) {
        fputs(USAGE, stdout);
        rc = EX_OK;
    } else {
        fprintf(stderr, "error: unknown verb '%s'\n%s", verb, USAGE);
        rc = EX_USAGE;
    }
    if (c.jwt) {
        memset(c.jwt, 0, strlen(c.jwt));
        free(c.jwt);
    }
    curl_global_cleanup();
    return rc;
}
