/* cli_device.c — `coaphub-cli device ...`: add, list, show, delete, token, cert.
 *
 * Devices are addressed by name (unique per tenant), resolved to an id with
 * GET /api/tenant/devices?deviceName=. Credential changes follow TB's update-only rule: read
 * the current credentials (for their "id"), change type and value, POST them back.
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
#define CLI_LIST_PAGE 100
#define CLI_LIST_MAX_PAGES 10000

static const char DEVICE_HELP[] =
    "usage: coaphub-cli [global options] device VERB ...\n"
    "  device add NAME [--token T] [--type TYPE]   create a device (token: random if omitted)\n"
    "  device list [--search S]                    list devices (name contains S)\n"
    "  device show NAME                            device and its credentials\n"
    "  device delete NAME                          delete device, credentials and data\n"
    "  device token NAME TOKEN                     set access-token credentials\n"
    "  device cert NAME --cert cert.pem            set X.509 credentials; prints credentialsId\n"
    "Run 'coaphub-cli device VERB --help' for details.\n";

static int help(const char *text, int rc)
{
    fputs(text, rc == EX_OK ? stdout : stderr);
    return rc;
}

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
    char *path = xasprintf("/api/device/%s/credentials", id);
    cli_resp_t r;
    int rc = cli_http(c, "GET", path, NULL, &r);
    free(path);
    if (rc == 0 && r.status != 200)
        rc = cli_fail(&r, "get credentials");
    else if (rc == 0 && !json_is_object(r.json)) {
        fprintf(stderr, "error: get credentials: answer is not a JSON object\n");
        rc = EX_PROTOCOL;
    } else if (rc == 0)
        *out = json_incref(r.json);
    cli_resp_fini(&r);
    return rc;
}

static int post_creds(cli_t *c, json_t *cred, json_t **out)
{
    cli_resp_t r;
    int rc = cli_http(c, "POST", "/api/device/credentials", cred, &r);
    if (rc == 0 && r.status != 200)
        rc = cli_fail(&r, "update credentials");
    else if (rc == 0)
        *out = r.json ? json_incref(r.json) : json_object();
    cli_resp_fini(&r);
    return rc;
}

static int cmd_add(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli device add NAME [--token TOKEN] [--type TYPE]\n"
        "Creates device NAME (profile TYPE, default \"default\") with access-token credentials.\n"
        "Without --token the server picks a random 20-character token. Prints name, id, token.\n";
    const char *token = NULL, *type = "default";
    const cli_opt_t opts[] = {{"token", &token, NULL}, {"type", &type, NULL}, {NULL, NULL, NULL}};
    char *pos[1];
    int n = cli_parse(c, argc, argv, opts, pos, 1);
    if (n == -2)
        return help(usage, EX_OK);
    if (n != 1)
        return help(usage, EX_USAGE);
    int rc = cli_login(c);
    if (rc)
        return rc;
    char *path;
    if (token) {
        char *q = cli_escape(token);
        path = xasprintf("/api/device?accessToken=%s", q);
        free(q);
    } else {
        path = xstrdup("/api/device");
    }
    json_t *body = json_pack("{s:s, s:s}", "name", pos[0], "type", type);
    cli_resp_t r;
    rc = cli_http(c, "POST", path, body, &r);
    json_decref(body);
    free(path);
    if (rc == 0 && r.status != 200)
        rc = cli_fail(&r, "create device");
    json_t *cred = NULL;
    if (rc == 0)
        rc = get_creds(c, jid(r.json, "id"), &cred);
    if (rc == 0 && c->json) {
        json_t *both = json_pack("{s:O, s:O}", "device", r.json, "credentials", cred);
        cli_print_json(both);
        json_decref(both);
    } else if (rc == 0) {
        printf("%-32s %-36s %s\n", "NAME", "ID", "TOKEN");
        printf("%-32s %-36s %s\n", jstr(r.json, "name"), jid(r.json, "id"),
               jstr(cred, "credentialsId"));
    }
    json_decref(cred);
    cli_resp_fini(&r);
    return rc;
}

static int cmd_list(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli device list [--search TEXT]\n"
        "Lists the tenant's devices (name, type, id), optionally those whose name contains\n"
        "TEXT. With --json prints the array of device objects.\n";
    const char *search = NULL;
    const cli_opt_t opts[] = {{"search", &search, NULL}, {NULL, NULL, NULL}};
    char *pos[1];
    int n = cli_parse(c, argc, argv, opts, pos, 0);
    if (n == -2)
        return help(usage, EX_OK);
    if (n != 0)
        return help(usage, EX_USAGE);
    int rc = cli_login(c);
    if (rc)
        return rc;
    char *q = search ? cli_escape(search) : NULL;
    json_t *all = json_array();
    for (int page = 0; page < CLI_LIST_MAX_PAGES && rc == 0; page++) {
        char *path = xasprintf("/api/tenant/devices?pageSize=%d&page=%d%s%s", CLI_LIST_PAGE,
                               page, q ? "&textSearch=" : "", q ? q : "");
        cli_resp_t r;
        rc = cli_http(c, "GET", path, NULL, &r);
        free(path);
        if (rc == 0 && r.status != 200)
            rc = cli_fail(&r, "list devices");
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

static int cmd_show(cli_t *c, int argc, char **argv)
{
    static const char usage[] = "usage: coaphub-cli device show NAME\n"
                                "Prints the device's id, type, creation time and credentials.\n";
    char *pos[1];
    int n = cli_parse(c, argc, argv, NULL, pos, 1);
    if (n == -2)
        return help(usage, EX_OK);
    if (n != 1)
        return help(usage, EX_USAGE);
    int rc = cli_login(c);
    json_t *dev = NULL, *cred = NULL;
    const char *id = NULL;
    if (rc == 0)
        rc = cli_device_by_name(c, pos[0], &dev, &id);
    if (rc == 0)
        rc = get_creds(c, id, &cred);
    if (rc == 0 && c->json) {
        json_t *both = json_pack("{s:O, s:O}", "device", dev, "credentials", cred);
        cli_print_json(both);
        json_decref(both);
    } else if (rc == 0) {
        printf("name:            %s\n", jstr(dev, "name"));
        printf("id:              %s\n", id);
        printf("type:            %s\n", jstr(dev, "type"));
        printf("label:           %s\n", jstr(dev, "label"));
        printf("createdTime:     %lld\n",
               (long long)json_integer_value(json_object_get(dev, "createdTime")));
        printf("credentialsType: %s\n", jstr(cred, "credentialsType"));
        printf("credentialsId:   %s\n", jstr(cred, "credentialsId"));
    }
    json_decref(cred);
    json_decref(dev);
    return rc;
}

static int cmd_delete(cli_t *c, int argc, char **argv)
{
    static const char usage[] = "usage: coaphub-cli device delete NAME\n"
                                "Deletes the device, its credentials, telemetry and attributes.\n";
    char *pos[1];
    int n = cli_parse(c, argc, argv, NULL, pos, 1);
    if (n == -2)
        return help(usage, EX_OK);
    if (n != 1)
        return help(usage, EX_USAGE);
    int rc = cli_login(c);
    json_t *dev = NULL;
    const char *id = NULL;
    if (rc == 0)
        rc = cli_device_by_name(c, pos[0], &dev, &id);
    if (rc == 0) {
        char *path = xasprintf("/api/device/%s", id);
        cli_resp_t r;
        rc = cli_http(c, "DELETE", path, NULL, &r);
        free(path);
        if (rc == 0 && r.status != 200)
            rc = cli_fail(&r, "delete device");
        cli_resp_fini(&r);
    }
    if (rc == 0 && !c->json)
        printf("deleted %s\n", pos[0]);
    json_decref(dev);
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

/* Shared by `device token` and `device cert`: value is the token or the PEM text. */
static int set_creds(cli_t *c, const char *name, const char *type, const char *value)
{
    int rc = cli_login(c);
    json_t *dev = NULL, *cred = NULL, *out = NULL;
    const char *id = NULL;
    if (rc == 0)
        rc = cli_device_by_name(c, name, &dev, &id);
    if (rc == 0)
        rc = get_creds(c, id, &cred);
    if (rc == 0) {
        json_object_set_new(cred, "credentialsType", json_string(type));
        if (strcmp(type, "ACCESS_TOKEN") == 0) {
            json_object_set_new(cred, "credentialsId", json_string(value));
            json_object_set_new(cred, "credentialsValue", json_null());
        } else {
            /* The server derives credentialsId (the certificate fingerprint) itself. */
            json_object_del(cred, "credentialsId");
            json_object_set_new(cred, "credentialsValue", json_string(value));
        }
        rc = post_creds(c, cred, &out);
    }
    if (rc == 0 && c->json)
        cli_print_json(out);
    else if (rc == 0)
        printf("%s\n", jstr(out, "credentialsId"));
    json_decref(out);
    json_decref(cred);
    json_decref(dev);
    return rc;
}

static int cmd_token(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli device token NAME TOKEN\n"
        "Replaces the device's credentials with access token TOKEN (unique, 1-32 chars).\n"
        "Observations of the device are cancelled by the server.\n";
    char *pos[2];
    int n = cli_parse(c, argc, argv, NULL, pos, 2);
    if (n == -2)
        return help(usage, EX_OK);
    if (n != 2)
        return help(usage, EX_USAGE);
    return set_creds(c, pos[0], "ACCESS_TOKEN", pos[1]);
}

static int cmd_cert(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli device cert NAME --cert cert.pem\n"
        "Replaces the device's credentials with the X.509 certificate in cert.pem (PEM).\n"
        "Prints the credentialsId the server computed (certificate fingerprint).\n";
    const char *file = NULL;
    const cli_opt_t opts[] = {{"cert", &file, NULL}, {NULL, NULL, NULL}};
    char *pos[1];
    int n = cli_parse(c, argc, argv, opts, pos, 1);
    if (n == -2)
        return help(usage, EX_OK);
    if (n != 1 || !file)
        return help(usage, EX_USAGE);
    char *pem = read_pem(file);
    if (!pem)
        return EX_NOINPUT;
    int rc = set_creds(c, pos[0], "X509_CERTIFICATE", pem);
    free(pem);
    return rc;
}

int cli_cmd_device(cli_t *c, int argc, char **argv)
{
    if (argc < 2)
        return help(DEVICE_HELP, EX_USAGE);
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0)
        return help(DEVICE_HELP, EX_OK);
    static const struct {
        const char *name;
        int (*fn)(cli_t *, int, char **);
    } verbs[] = {{"add", cmd_add},       {"list", cmd_list},   {"show", cmd_show},
                 {"delete", cmd_delete}, {"token", cmd_token}, {"cert", cmd_cert}};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verb, verbs[i].name) == 0)
            return verbs[i].fn(c, argc - 1, argv + 1);
    fprintf(stderr, "error: unknown device verb '%s'\n", verb);
    return help(DEVICE_HELP, EX_USAGE);
}
