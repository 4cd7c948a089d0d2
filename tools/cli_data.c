/* cli_data.c — `coaphub-cli telemetry|attr|rpc`: read telemetry, write attributes, call RPCs.
 *
 * Values given on the command line are JSON when they parse as JSON (42, true, {"a":1},
 * "quoted") and plain strings otherwise, so `attr set dev SHARED_SCOPE mode=eco target=22`
 * stores a string and a number without shell-quoting gymnastics.
 */
#include "cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "core/xmalloc.h"

/* The server clamps RPC timeouts to at least 5 s (spec §8.6); we refuse silly values early. */
#define CLI_RPC_MIN_TIMEOUT_MS 1000L
#define CLI_RPC_MAX_TIMEOUT_MS 600000L
#define CLI_RPC_DEFAULT_TIMEOUT_MS 10000L

static char *value_text(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : xstrdup("");
}

int cli_cmd_telemetry(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli telemetry NAME [KEY,KEY...] [--strict]\n"
        "Prints the latest telemetry value of every key (or of the given keys) of device NAME\n"
        "as a table KEY TS VALUE. --strict asks for typed values (useStrictDataTypes=true).\n";
    int strict = 0;
    const cli_opt_t opts[] = {{"strict", NULL, &strict}, {NULL, NULL, NULL}};
    char *pos[2];
    int rc, n = cli_args(c, argc, argv, usage, opts, pos, 1, 2, &rc);
    if (n < 0)
        return rc;
    json_t *dev = NULL;
    const char *id = NULL;
    rc = cli_device_by_name(c, pos[0], &dev, &id);
    if (rc)
        return rc;
    char *keys = n == 2 ? cli_escape(pos[1]) : NULL;
    cli_resp_t r;
    rc = cli_call(c, "GET", NULL, "read telemetry", &r,
                  "/api/plugins/telemetry/DEVICE/%s/values/timeseries?%s%s%s", id,
                  strict ? "useStrictDataTypes=true&" : "", keys ? "keys=" : "", keys ? keys : "");
    free(keys);
    if (rc == 0 && !json_is_object(r.json)) {
        fprintf(stderr, "error: read telemetry: answer is not a JSON object\n");
        rc = EX_PROTOCOL;
    }
    if (rc == 0 && c->json) {
        cli_print_json(r.json);
    } else if (rc == 0) {
        printf("%-24s %-14s %s\n", "KEY", "TS", "VALUE");
        const char *k;
        json_t *list;
        json_object_foreach(r.json, k, list) {
            size_t i;
            json_t *pt;
            json_array_foreach(list, i, pt) {
                char *v = value_text(json_object_get(pt, "value"));
                printf("%-24s %-14lld %s\n", k,
                       (long long)json_integer_value(json_object_get(pt, "ts")), v);
                free(v);
            }
        }
    }
    cli_resp_fini(&r);
    json_decref(dev);
    return rc;
}

/* Accepts TB's scope names and the short lower-case forms. NULL if unknown. */
static const char *scope_name(const char *s, int allow_client)
{
    if (strcasecmp(s, "SHARED_SCOPE") == 0 || strcasecmp(s, "shared") == 0)
        return "SHARED_SCOPE";
    if (strcasecmp(s, "SERVER_SCOPE") == 0 || strcasecmp(s, "server") == 0)
        return "SERVER_SCOPE";
    if (allow_client && (strcasecmp(s, "CLIENT_SCOPE") == 0 || strcasecmp(s, "client") == 0))
        return "CLIENT_SCOPE";
    return NULL;
}

static int attr_set(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli attr set NAME SCOPE KEY=VALUE...\n"
        "Saves attributes of device NAME in SCOPE (SHARED_SCOPE or SERVER_SCOPE; also 'shared',\n"
        "'server'). VALUE is JSON if it parses as JSON (22, true, {\"a\":1}, '\"22\"'), else a\n"
        "string. Shared attributes are pushed to devices observing /attributes.\n";
    enum { MAX_KV = 64 };
    char *pos[2 + MAX_KV];
    int rc, n = cli_args(c, argc, argv, usage, NULL, pos, 3, 2 + MAX_KV, &rc);
    if (n < 0)
        return rc;
    const char *scope = scope_name(pos[1], 0);
    if (!scope) {
        fprintf(stderr, "error: scope must be SHARED_SCOPE or SERVER_SCOPE, not '%s'\n", pos[1]);
        return EX_USAGE;
    }
    json_t *body = json_object();
    for (int i = 2; i < n; i++) {
        char *eq = strchr(pos[i], '=');
        if (!eq || eq == pos[i]) {
            fprintf(stderr, "error: '%s' is not KEY=VALUE\n", pos[i]);
            json_decref(body);
            return EX_USAGE;
        }
        char *key = xstrndup(pos[i], (size_t)(eq - pos[i]));
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        if (!v || json_is_null(v)) {
            json_decref(v);
            v = json_string(eq + 1);
        }
        json_object_set_new(body, key, v);
        free(key);
    }
    json_t *dev = NULL;
    const char *id = NULL;
    rc = cli_device_by_name(c, pos[0], &dev, &id);
    if (rc == 0) {
        cli_resp_t r;
        rc = cli_call(c, "POST", body, "save attributes", &r,
                      "/api/plugins/telemetry/DEVICE/%s/attributes/%s", id, scope);
        cli_resp_fini(&r);
    }
    if (rc == 0 && !c->json)
        printf("saved %zu attribute(s)\n", json_object_size(body));
    json_decref(body);
    json_decref(dev);
    return rc;
}

static int attr_get(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli attr get NAME SCOPE [KEY,KEY...]\n"
        "Prints attributes of device NAME in SCOPE (CLIENT_SCOPE, SHARED_SCOPE, SERVER_SCOPE)\n"
        "as a table KEY LAST_UPDATE VALUE.\n";
    char *pos[3];
    int rc, n = cli_args(c, argc, argv, usage, NULL, pos, 2, 3, &rc);
    if (n < 0)
        return rc;
    const char *scope = scope_name(pos[1], 1);
    if (!scope) {
        fprintf(stderr, "error: unknown scope '%s'\n", pos[1]);
        return EX_USAGE;
    }
    json_t *dev = NULL;
    const char *id = NULL;
    rc = cli_device_by_name(c, pos[0], &dev, &id);
    if (rc)
        return rc;
    char *keys = n == 3 ? cli_escape(pos[2]) : NULL;
    cli_resp_t r;
    rc = cli_call(c, "GET", NULL, "read attributes", &r,
                  "/api/plugins/telemetry/DEVICE/%s/values/attributes/%s%s%s", id, scope,
                  keys ? "?keys=" : "", keys ? keys : "");
    free(keys);
    if (rc == 0 && c->json) {
        cli_print_json(r.json);
    } else if (rc == 0) {
        printf("%-24s %-14s %s\n", "KEY", "LAST_UPDATE", "VALUE");
        size_t i;
        json_t *a;
        json_array_foreach(r.json, i, a) {
            char *v = value_text(json_object_get(a, "value"));
            printf("%-24s %-14lld %s\n", json_string_value(json_object_get(a, "key")),
                   (long long)json_integer_value(json_object_get(a, "lastUpdateTs")), v);
            free(v);
        }
    }
    cli_resp_fini(&r);
    json_decref(dev);
    return rc;
}

int cli_cmd_attr(cli_t *c, int argc, char **argv)
{
    static const char usage[] = "usage: coaphub-cli attr set NAME SCOPE KEY=VALUE...\n"
                                "       coaphub-cli attr get NAME SCOPE [KEY,KEY...]\n";
    if (argc < 2)
        return cli_usage(usage, EX_USAGE);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
        return cli_usage(usage, EX_OK);
    if (strcmp(argv[1], "set") == 0)
        return attr_set(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "get") == 0)
        return attr_get(c, argc - 1, argv + 1);
    fprintf(stderr, "error: unknown attr verb '%s'\n", argv[1]);
    return cli_usage(usage, EX_USAGE);
}

int cli_cmd_rpc(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli rpc NAME METHOD [PARAMS_JSON] [--oneway] [--timeout MS]\n"
        "Sends a server-side RPC to device NAME (which must observe /rpc) and prints the\n"
        "device's reply (two-way, the default). --oneway returns once the RPC is delivered.\n"
        "--timeout is the RPC timeout in ms (default 10000; the server enforces >= 5000).\n";
    int oneway = 0;
    const char *tmo = NULL;
    const cli_opt_t opts[] = {
        {"oneway", NULL, &oneway}, {"timeout", &tmo, NULL}, {NULL, NULL, NULL}};
    char *pos[3];
    int rc, n = cli_args(c, argc, argv, usage, opts, pos, 2, 3, &rc);
    if (n < 0)
        return rc;
    long timeout_ms = CLI_RPC_DEFAULT_TIMEOUT_MS;
    if (tmo) {
        char *end;
        timeout_ms = strtol(tmo, &end, 10);
        if (*end || timeout_ms < CLI_RPC_MIN_TIMEOUT_MS || timeout_ms > CLI_RPC_MAX_TIMEOUT_MS) {
            fprintf(stderr, "error: --timeout must be %ld..%ld ms\n", CLI_RPC_MIN_TIMEOUT_MS,
                    CLI_RPC_MAX_TIMEOUT_MS);
            return EX_USAGE;
        }
    }
    json_t *params = NULL;
    if (n == 3) {
        json_error_t jerr;
        params = json_loads(pos[2], JSON_DECODE_ANY, &jerr);
        if (!params) {
            fprintf(stderr, "error: PARAMS_JSON: %s\n", jerr.text);
            return EX_DATAERR;
        }
    }
    json_t *dev = NULL;
    const char *id = NULL;
    rc = cli_device_by_name(c, pos[0], &dev, &id);
    if (rc) {
        json_decref(params);
        return rc;
    }
    json_t *body = json_pack("{s:s, s:o, s:I}", "method", pos[1], "params",
                             params ? params : json_object(), "timeout", (json_int_t)timeout_ms);
    /* The HTTP call must outlive the RPC timeout, or we would cut off the server's answer. */
    long saved = c->timeout_ms;
    if (c->timeout_ms < timeout_ms + 10000)
        c->timeout_ms = timeout_ms + 10000;
    cli_resp_t r;
    rc = cli_call(c, "POST", body, "rpc", &r, "/api/plugins/rpc/%s/%s",
                  oneway ? "oneway" : "twoway", id);
    c->timeout_ms = saved;
    json_decref(body);
    if (rc == 0 && r.json)
        cli_print_json(r.json);
    else if (rc == 0 && r.len)
        puts(r.body);
    cli_resp_fini(&r);
    json_decref(dev);
    return rc;
}
