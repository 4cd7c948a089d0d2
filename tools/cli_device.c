/* cli_device.c — `coaphub-cli device ...`: add, list, show, delete, token, cert, psk.
 *
 * Devices are addressed by name (unique per tenant), resolved to an id with
 * GET /api/tenant/devices?deviceName=. Credential changes follow TB's update-only rule: read
 * the current credentials (for their "id"), change type and value, POST them back.
 *
 * Every verb has the same steps (parse its command line, log in or find the device it names,
 * call, print), so the steps are written once in cli_cmd_device() and the verbs table at the
 * end of the file says, per verb, its usage, options, positional arguments and first step.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "core/xmalloc.h"

/* A certificate PEM larger than this is not a single device certificate. */
#define CLI_MAX_PEM (64 * 1024)
/* Pages of 100 devices; the bound keeps a broken "hasNext" from looping forever. */

static const char DEVICE_HELP[] =
    "usage: coaphub-cli [global options] device VERB ...\n"
    "  device add NAME [--token T] [--type TYPE | --profile PROFILE]\n"
    "                                              create a device (token: random if omitted)\n"
    "  device list [--search S]                    list devices (name contains S)\n"
    "  device show NAME                            device and its credentials\n"
    "  device delete NAME                          delete device, credentials and data\n"
    "  device token NAME TOKEN                     set access-token credentials\n"
    "  device cert NAME --cert cert.pem            set X.509 credentials; prints credentialsId\n"
    "  device psk NAME --identity ID --key HEX     set DTLS PSK credentials\n"
    "Run 'coaphub-cli device VERB --help' for details.\n";

/* A verb's command line once parsed and, for a verb that names an existing device, that device. */
typedef struct {
    const char *usage;
    char *pos[2];
    const char *token, *type, *search, *cert, *profile, *identity, *key; /* options */
    json_t *dev;    /* the device named by pos[0], a new reference */
    const char *id; /* its id, inside dev */
} args_t;

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const char *jid(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(json_object_get(o, k), "id"));
    return s ? s : "";
}

/* GET /api/device/{id}/credentials into *out (new reference). */
static int get_creds(cli_t *c, const char *id, json_t **out)
{
    cli_resp_t r;
    int rc = cli_call(c, "GET", NULL, "get credentials", &r, "/api/device/%s/credentials", id);
    if (rc == 0 && !json_is_object(r.json)) {
        fprintf(stderr, "error: get credentials: answer is not a JSON object\n");
        rc = EX_PROTOCOL;
    } else if (rc == 0)
        *out = json_incref(r.json);
    cli_resp_fini(&r);
    return rc;
}

/* Prints {"device": dev, "credentials": cred} for --json. */
static void print_device_json(const json_t *dev, const json_t *cred)
{
    json_t *both = json_pack("{s:O, s:O}", "device", dev, "credentials", cred);
    cli_print_json(both);
    json_decref(both);
}

static int run_add(cli_t *c, args_t *a)
{
    if (a->profile && a->type) {
        fprintf(stderr, "error: --type and --profile are exclusive\n");
        return cli_usage(a->usage, EX_USAGE);
    }
    json_t *body = json_pack("{s:s}", "name", a->pos[0]);
    if (a->profile) { /* an existing profile: a typo must not make a new one, as --type would */
        json_t *prof = NULL;
        const char *pid = NULL;
        int prc = cli_profile_by_name(c, a->profile, &prof, &pid);
        if (prc != 0) {
            json_decref(body);
            return prc;
        }
        json_object_set_new(body, "deviceProfileId",
                            json_pack("{s:s, s:s}", "entityType", "DEVICE_PROFILE", "id", pid));
        json_decref(prof);
    } else if (a->type) {
        json_object_set_new(body, "type", json_string(a->type));
    }
    char *q = a->token ? cli_escape(a->token) : NULL;
    cli_resp_t r;
    int rc = cli_call(c, "POST", body, "create device", &r, "/api/device%s%s",
                      q ? "?accessToken=" : "", q ? q : "");
    json_decref(body);
    free(q);
    json_t *cred = NULL;
    if (rc == 0)
        rc = get_creds(c, jid(r.json, "id"), &cred);
    if (rc == 0 && c->json) {
        print_device_json(r.json, cred);
    } else if (rc == 0) {
        printf("%-32s %-36s %s\n", "NAME", "ID", "TOKEN");
        printf("%-32s %-36s %s\n", jstr(r.json, "name"), jid(r.json, "id"),
               jstr(cred, "credentialsId"));
    }
    json_decref(cred);
    cli_resp_fini(&r);
    return rc;
}

static int run_list(cli_t *c, args_t *a)
{
    char *q = a->search ? cli_escape(a->search) : NULL;
    json_t *all = json_array();
    int rc = 0;
    for (int page = 0; page < CLI_LIST_MAX_PAGES && rc == 0; page++) {
        cli_resp_t r;
        rc = cli_call(c, "GET", NULL, "list devices", &r,
                      "/api/tenant/devices?pageSize=%d&page=%d%s%s", CLI_LIST_PAGE, page,
                      q ? "&textSearch=" : "", q ? q : "");
        json_t *data = rc == 0 ? json_object_get(r.json, "data") : NULL;
        if (rc == 0 && !json_is_array(data)) {
            fprintf(stderr, "error: list devices: answer has no data array\n");
            rc = EX_PROTOCOL;
        }
        int more = 0;
        if (rc == 0) {
            json_array_extend(all, data);
            more = json_is_true(json_object_get(r.json, "hasNext")) && json_array_size(data) > 0;
        }
        cli_resp_fini(&r);
        if (!more)
            break;
    }
    free(q);
    if (rc == 0 && c->json) {
        cli_print_json(all);
    } else if (rc == 0) {
        printf("%-32s %-16s %s\n", "NAME", "TYPE", "ID");
        size_t i;
        json_t *d;
        json_array_foreach(all, i, d)
            printf("%-32s %-16s %s\n", jstr(d, "name"), jstr(d, "type"), jid(d, "id"));
    }
    json_decref(all);
    return rc;
}

static int run_show(cli_t *c, args_t *a)
{
    json_t *cred = NULL;
    int rc = get_creds(c, a->id, &cred);
    if (rc == 0 && c->json) {
        print_device_json(a->dev, cred);
    } else if (rc == 0) {
        printf("name:            %s\n", jstr(a->dev, "name"));
        printf("id:              %s\n", a->id);
        printf("type:            %s\n", jstr(a->dev, "type"));
        printf("label:           %s\n", jstr(a->dev, "label"));
        printf("createdTime:     %lld\n",
               (long long)json_integer_value(json_object_get(a->dev, "createdTime")));
        printf("credentialsType: %s\n", jstr(cred, "credentialsType"));
        printf("credentialsId:   %s\n", jstr(cred, "credentialsId"));
    }
    json_decref(cred);
    return rc;
}

static int run_delete(cli_t *c, args_t *a)
{
    cli_resp_t r;
    int rc = cli_call(c, "DELETE", NULL, "delete device", &r, "/api/device/%s", a->id);
    cli_resp_fini(&r);
    if (rc == 0 && !c->json)
        printf("deleted %s\n", a->pos[0]);
    return rc;
}

/* Reads a PEM file into a new string; NULL (with a message) on failure. */
static char *read_pem(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "error: %s: %s\n", file, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(CLI_MAX_PEM + 1);
    size_t n = fread(buf, 1, CLI_MAX_PEM + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > CLI_MAX_PEM || n == 0) {
        fprintf(stderr, "error: %s: %s\n", file,
                err ? "read error" : n == 0 ? "empty file" : "larger than 64 KiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Shared by `device token`, `cert` and `psk`: value is the token, the PEM text or the hex
 * key (then psk_identity is the identity). */
static int set_creds(cli_t *c, const args_t *a, const char *type, const char *value,
                     const char *psk_identity)
{
    json_t *cred = NULL, *out = NULL;
    int rc = get_creds(c, a->id, &cred);
    if (rc == 0) {
        json_object_set_new(cred, "credentialsType", json_string(type));
        if (psk_identity) {
            json_object_set_new(cred, "credentialsId", json_string(psk_identity));
            json_object_set_new(cred, "credentialsValue", json_string(value));
        } else if (strcmp(type, "ACCESS_TOKEN") == 0) {
            json_object_set_new(cred, "credentialsId", json_string(value));
            json_object_set_new(cred, "credentialsValue", json_null());
        } else {
            /* The server derives credentialsId (the certificate fingerprint) itself. */
            json_object_del(cred, "credentialsId");
            json_object_set_new(cred, "credentialsValue", json_string(value));
        }
        cli_resp_t r;
        rc = cli_call(c, "POST", cred, "update credentials", &r, "/api/device/credentials");
        if (rc == 0)
            out = r.json ? json_incref(r.json) : json_object();
        cli_resp_fini(&r);
    }
    if (rc == 0 && c->json)
        cli_print_json(out);
    else if (rc == 0)
        printf("%s\n", jstr(out, "credentialsId"));
    json_decref(out);
    json_decref(cred);
    return rc;
}

static int run_token(cli_t *c, args_t *a)
{
    return set_creds(c, a, "ACCESS_TOKEN", a->pos[1], NULL);
}

/* The server validates identity and key (hex) and answers with its message if wrong. */
static int run_psk(cli_t *c, args_t *a)
{
    if (!a->identity || !a->key)
        return cli_usage(a->usage, EX_USAGE);
    return set_creds(c, a, "PSK", a->key, a->identity);
}

/* The certificate file is read before logging in: a wrong path is the user's to fix first. */
static int run_cert(cli_t *c, args_t *a)
{
    if (!a->cert)
        return cli_usage(a->usage, EX_USAGE);
    char *pem = read_pem(a->cert);
    if (!pem)
        return EX_NOINPUT;
    int rc = cli_device_by_name(c, a->pos[0], &a->dev, &a->id);
    if (rc == 0)
        rc = set_creds(c, a, "X509_CERTIFICATE", pem, NULL);
    free(pem);
    return rc;
}

/* What cli_cmd_device() does between parsing a verb's command line and running it. */
enum { FIRST_NOTHING, FIRST_LOGIN, FIRST_FIND_DEVICE };

/* The options of the device verbs; each verb accepts some of them. */
enum {
    OPT_TOKEN = 1u << 0,
    OPT_TYPE = 1u << 1,
    OPT_SEARCH = 1u << 2,
    OPT_CERT = 1u << 3,
    OPT_PROFILE = 1u << 4,
    OPT_IDENTITY = 1u << 5,
    OPT_KEY = 1u << 6
};

static const struct verb {
    const char *name;
    unsigned opts; /* OPT_* it accepts */
    int n_pos;     /* positional arguments it takes, exactly */
    int first;     /* FIRST_*: FIRST_FIND_DEVICE looks up the device named by pos[0] */
    int (*run)(cli_t *c, args_t *a);
    const char *usage;
} verbs[] = {
    {"add", OPT_TOKEN | OPT_TYPE | OPT_PROFILE, 1, FIRST_LOGIN, run_add,
     "usage: coaphub-cli device add NAME [--token TOKEN] [--type TYPE | --profile PROFILE]\n"
     "Creates device NAME with access-token credentials. --profile names an existing device\n"
     "profile; --type names a profile that is created when missing (ThingsBoard's type);\n"
     "neither: profile \"default\". Without --token the server picks a random\n"
     "20-character token. Prints name, id, token.\n"},
    {"list", OPT_SEARCH, 0, FIRST_LOGIN, run_list,
     "usage: coaphub-cli device list [--search TEXT]\n"
     "Lists the tenant's devices (name, type, id), optionally those whose name contains\n"
     "TEXT. With --json prints the array of device objects.\n"},
    {"show", 0, 1, FIRST_FIND_DEVICE, run_show,
     "usage: coaphub-cli device show NAME\n"
     "Prints the device's id, type, creation time and credentials.\n"},
    {"delete", 0, 1, FIRST_FIND_DEVICE, run_delete,
     "usage: coaphub-cli device delete NAME\n"
     "Deletes the device, its credentials, telemetry and attributes.\n"},
    {"token", 0, 2, FIRST_FIND_DEVICE, run_token,
     "usage: coaphub-cli device token NAME TOKEN\n"
     "Replaces the device's credentials with access token TOKEN (unique, 1-32 chars).\n"
     "Observations of the device are cancelled by the server.\n"},
    {"cert", OPT_CERT, 1, FIRST_NOTHING, run_cert,
     "usage: coaphub-cli device cert NAME --cert cert.pem\n"
     "Replaces the device's credentials with the X.509 certificate in cert.pem (PEM).\n"
     "Prints the credentialsId the server computed (certificate fingerprint).\n"},
    {"psk", OPT_IDENTITY | OPT_KEY, 1, FIRST_FIND_DEVICE, run_psk,
     "usage: coaphub-cli device psk NAME --identity ID --key HEX\n"
     "Replaces the device's credentials with a DTLS pre-shared key: identity ID (unique,\n"
     "1-128 chars) and key HEX (2-128 hex digits). The device then connects with e.g.\n"
     "coap-client-openssl -u ID -k KEYTEXT (libcoap 4.3.1 takes the key as text: HEX is\n"
     "that text's bytes in hex, e.g. from `printf %s KEYTEXT | od -An -tx1`). Prints the\n"
     "identity.\n"},
};

int cli_cmd_device(cli_t *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(DEVICE_HELP, EX_USAGE);
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "help") == 0)
        return cli_usage(DEVICE_HELP, EX_OK);
    const struct verb *v = NULL;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0] && !v; i++)
        if (strcmp(name, verbs[i].name) == 0)
            v = &verbs[i];
    if (!v) {
        fprintf(stderr, "error: unknown device verb '%s'\n", name);
        return cli_usage(DEVICE_HELP, EX_USAGE);
    }
    args_t a = {.usage = v->usage};
    const struct {
        unsigned bit;
        cli_opt_t opt;
    } all[] = {
        {OPT_TOKEN, {"token", &a.token, NULL}},
        {OPT_TYPE, {"type", &a.type, NULL}},
        {OPT_SEARCH, {"search", &a.search, NULL}},
        {OPT_CERT, {"cert", &a.cert, NULL}},
        {OPT_PROFILE, {"profile", &a.profile, NULL}},
        {OPT_IDENTITY, {"identity", &a.identity, NULL}},
        {OPT_KEY, {"key", &a.key, NULL}},
    };
    cli_opt_t opts[sizeof all / sizeof all[0] + 1];
    size_t n_opts = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (v->opts & all[i].bit)
            opts[n_opts++] = all[i].opt;
    opts[n_opts] = (cli_opt_t){NULL, NULL, NULL};
    int rc;
    if (cli_args(c, argc - 1, argv + 1, v->usage, opts, a.pos, v->n_pos, v->n_pos, &rc) < 0)
        return rc;
    if (v->first == FIRST_LOGIN)
        rc = cli_login(c);
    else if (v->first == FIRST_FIND_DEVICE)
        rc = cli_device_by_name(c, a.pos[0], &a.dev, &a.id);
    if (rc == 0)
        rc = v->run(c, &a);
    json_decref(a.dev);
    return rc;
}
