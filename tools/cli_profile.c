/* cli_profile.c — `coaphub-cli profile ...`: list, show, add, set, delete, default.
 *
 * Profiles are addressed by name, resolved to an id by listing with textSearch (a name prefix,
 * case-insensitive) and taking the exact match: ThingsBoard has no by-name lookup for
 * profiles. `add` builds a DeviceProfile body from the options; `set` reads the profile, applies
 * the same options to it and posts it back whole (ThingsBoard's update is a full replacement).
 * The server validates everything (keys, CA certificate, regex, timers); the CLI only turns
 * option spellings into ThingsBoard's enum values.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "core/xmalloc.h"

static const char PROFILE_HELP[] =
    "usage: coaphub-cli [global options] profile VERB ...\n"
    "  profile list [--search S]          list device profiles\n"
    "  profile show NAME                  one profile: transport, provisioning, power saving\n"
    "  profile add NAME [OPTIONS]         create a profile\n"
    "  profile set NAME [OPTIONS]         change a profile\n"
    "  profile delete NAME                delete a profile no device uses\n"
    "  profile default NAME               make NAME the default profile\n"
    "OPTIONS (add, set):\n"
    "  --strategy allow-create|check-pre-provisioned|x509-chain|disabled\n"
    "  --provision-key K --provision-secret S      self-provisioning over CoAP\n"
    "  --ca-cert FILE [--cn-regex RE]              X.509 chain provisioning (CA PEM)\n"
    "  --power-mode psm|drx|edrx [--psm-activity-timer MS] [--edrx-cycle MS]\n"
    "                             [--paging-window MS]  CoAP power saving\n"
    "  --description TEXT   --default\n"
    "Run 'coaphub-cli profile VERB --help' for details.\n";

typedef struct {
    const char *usage;
    char *pos[1];
    const char *search, *strategy, *key, *secret, *ca_cert, *cn_regex, *power_mode, *psm_timer,
        *edrx_cycle, *paging_window, *description;
    int make_default;
    json_t *prof;   /* the profile named by pos[0] (show, set, delete, default), new reference */
    const char *id; /* its id, inside prof */
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

/* Every profile whose name starts with prefix (NULL: all), all pages, as one array. */
static int list_all(cli_t *c, const char *prefix, json_t **out)
{
    return cli_list_all(c, "list device profiles",
                        "/api/deviceProfiles?sortProperty=name&sortOrder=ASC", prefix, out);
}

int cli_profile_by_name(cli_t *c, const char *name, json_t **prof, const char **id)
{
    int rc = cli_login(c);
    json_t *all = NULL;
    if (rc == 0)
        rc = list_all(c, name, &all);
    if (rc != 0)
        return rc;
    size_t i;
    json_t *p;
    *prof = NULL;
    json_array_foreach(all, i, p)
    {
        if (strcmp(jstr(p, "name"), name) == 0) {
            *prof = json_incref(p);
            *id = jid(p, "id");
            break;
        }
    }
    json_decref(all);
    if (!*prof) {
        fprintf(stderr, "error: no device profile named '%s'\n", name);
        return EX_NOINPUT;
    }
    return 0;
}

static int run_list(cli_t *c, args_t *a)
{
    json_t *all = NULL;
    int rc = list_all(c, a->search, &all);
    if (rc != 0)
        return rc;
    if (c->json) {
        cli_print_json(all);
    } else {
        printf("%-24s %-7s %-9s %-30s %s\n", "NAME", "DEFAULT", "TRANSPORT", "PROVISIONING", "ID");
        size_t i;
        json_t *p;
        json_array_foreach(all, i, p)
            printf("%-24s %-7s %-9s %-30s %s\n", jstr(p, "name"),
                   json_is_true(json_object_get(p, "default")) ? "yes" : "",
                   jstr(p, "transportType"), jstr(p, "provisionType"), jid(p, "id"));
    }
    json_decref(all);
    return 0;
}

static void print_int_or_dash(const char *label, const json_t *v)
{
    if (json_is_integer(v))
        printf("%s%lld\n", label, (long long)json_integer_value(v));
    else
        printf("%s-\n", label);
}

static int run_show(cli_t *c, args_t *a)
{
    if (c->json) {
        cli_print_json(a->prof);
        return 0;
    }
    const json_t *p = a->prof;
    json_t *pd = json_object_get(p, "profileData");
    json_t *pc = json_object_get(pd, "provisionConfiguration");
    json_t *tc = json_object_get(pd, "transportConfiguration");
    printf("name:               %s\n", jstr(p, "name"));
    printf("id:                 %s\n", a->id);
    printf("default:            %s\n", json_is_true(json_object_get(p, "default")) ? "yes" : "no");
    printf("description:        %s\n", jstr(p, "description"));
    printf("transportType:      %s\n", jstr(p, "transportType"));
    const char *pt = jstr(p, "provisionType");
    printf("provisionType:      %s\n", pt);
    if (strcmp(pt, "X509_CERTIFICATE_CHAIN") == 0) {
        /* The secret is the CA chain: its hash (the key) names it well enough here. */
        printf("caCertificateHash:  %s\n", jstr(p, "provisionDeviceKey"));
        printf("cnRegex:            %s\n", jstr(pc, "certificateRegExPattern"));
        printf("allowCreate:        %s\n",
               json_is_false(json_object_get(pc, "allowCreateNewDevicesByX509Certificate"))
                   ? "no"
                   : "yes");
    } else if (strcmp(pt, "DISABLED") != 0) {
        printf("provisionKey:       %s\n", jstr(p, "provisionDeviceKey"));
        printf("provisionSecret:    %s\n", jstr(pc, "provisionDeviceSecret"));
    }
    json_t *cs = json_object_get(tc, "clientSettings");
    if (json_is_object(cs)) {
        printf("powerMode:          %s\n", jstr(cs, "powerMode"));
        print_int_or_dash("psmActivityTimer:   ", json_object_get(cs, "psmActivityTimer"));
        print_int_or_dash("edrxCycle:          ", json_object_get(cs, "edrxCycle"));
        print_int_or_dash("pagingWindow:       ", json_object_get(cs, "pagingTransmissionWindow"));
    }
    printf("firmwareId:         %s\n", jid(p, "firmwareId"));
    printf("softwareId:         %s\n", jid(p, "softwareId"));
    return 0;
}

/* Reads a whole (small) text file; NULL with a message on failure. */
static char *read_text(const char *file, size_t max)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "error: %s: %s\n", file, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(max + 1);
    size_t n = fread(buf, 1, max + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > max || n == 0) {
        fprintf(stderr, "error: %s: %s\n", file,
                err      ? "read error"
                : n == 0 ? "empty file"
                         : "too large");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* A non-negative number of milliseconds, else a usage error. */
static int parse_ms(const char *opt, const char *s, json_int_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 0) {
        fprintf(stderr, "error: --%s: '%s' is not a number of milliseconds\n", opt, s);
        return EX_USAGE;
    }
    *out = v;
    return 0;
}

/* Object member k of o, made if missing (borrowed). */
static json_t *obj(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(o, k, v);
    }
    return v;
}

/* Applies the options to profile p (a new profile's skeleton, or the one read for `set`). */
static int apply(args_t *a, json_t *p, int creating)
{
    static const struct {
        const char *opt, *tb;
    } strategies[] = {{"allow-create", "ALLOW_CREATE_NEW_DEVICES"},
                      {"check-pre-provisioned", "CHECK_PRE_PROVISIONED_DEVICES"},
                      {"x509-chain", "X509_CERTIFICATE_CHAIN"},
                      {"disabled", "DISABLED"}};
    static const struct {
        const char *opt, *tb;
    } modes[] = {{"psm", "PSM"}, {"drx", "DRX"}, {"edrx", "E_DRX"}};
    json_t *pd = obj(p, "profileData");
    json_t *pc = obj(pd, "provisionConfiguration");
    if (a->description)
        json_object_set_new(p, "description", json_string(a->description));

    const char *ptype = NULL;
    if (a->strategy) {
        for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++)
            if (strcmp(a->strategy, strategies[i].opt) == 0)
                ptype = strategies[i].tb;
        if (!ptype) {
            fprintf(stderr,
                    "error: --strategy: one of allow-create, check-pre-provisioned, "
                    "x509-chain, disabled\n");
            return EX_USAGE;
        }
    } else if (a->ca_cert) {
        ptype = "X509_CERTIFICATE_CHAIN";
    } else if (a->key || a->secret) {
        const char *cur = json_string_value(json_object_get(pc, "type"));
        ptype = !cur || strcmp(cur, "DISABLED") == 0 || strcmp(cur, "X509_CERTIFICATE_CHAIN") == 0
                    ? "ALLOW_CREATE_NEW_DEVICES"
                    : cur;
    }
    if (ptype) {
        json_object_set_new(p, "provisionType", json_string(ptype));
        json_object_set_new(pc, "type", json_string(ptype));
    } else if (creating) {
        json_object_set_new(pc, "type", json_string("DISABLED"));
    }
    if (a->key)
        json_object_set_new(p, "provisionDeviceKey", json_string(a->key));
    if (a->secret)
        json_object_set_new(pc, "provisionDeviceSecret", json_string(a->secret));
    if (a->ca_cert) {
        char *pem = read_text(a->ca_cert, 64 * 1024);
        if (!pem)
            return EX_NOINPUT;
        json_object_set_new(pc, "provisionDeviceSecret", json_string(pem));
        free(pem);
    }
    if (a->cn_regex)
        json_object_set_new(pc, "certificateRegExPattern", json_string(a->cn_regex));
    if (ptype && strcmp(ptype, "DISABLED") == 0) {
        json_object_set_new(p, "provisionDeviceKey", json_null());
        json_object_set_new(pc, "provisionDeviceSecret", json_null());
    }

    if (a->power_mode || a->psm_timer || a->edrx_cycle || a->paging_window) {
        json_t *tc = obj(pd, "transportConfiguration");
        const char *cur = json_string_value(json_object_get(tc, "type"));
        if (!cur || strcmp(cur, "COAP") != 0) { /* the server fills in the COAP defaults */
            json_object_clear(tc);
            json_object_set_new(tc, "type", json_string("COAP"));
        }
        json_object_set_new(p, "transportType", json_string("COAP"));
        json_t *cs = obj(tc, "clientSettings");
        if (a->power_mode) {
            const char *m = NULL;
            for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
                if (strcmp(a->power_mode, modes[i].opt) == 0)
                    m = modes[i].tb;
            if (!m) {
                fprintf(stderr, "error: --power-mode: one of psm, drx, edrx\n");
                return EX_USAGE;
            }
            json_object_set_new(cs, "powerMode", json_string(m));
        }
        const struct {
            const char *opt, *value, *key;
        } timers[] = {{"psm-activity-timer", a->psm_timer, "psmActivityTimer"},
                      {"edrx-cycle", a->edrx_cycle, "edrxCycle"},
                      {"paging-window", a->paging_window, "pagingTransmissionWindow"}};
        for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
            json_int_t ms;
            if (!timers[i].value)
                continue;
            if (parse_ms(timers[i].opt, timers[i].value, &ms) != 0)
                return EX_USAGE;
            json_object_set_new(cs, timers[i].key, json_integer(ms));
        }
    }
    return 0;
}

static void print_saved(cli_t *c, const json_t *p)
{
    if (c->json)
        cli_print_json(p);
    else
        printf("%s %s\n", jstr(p, "name"), jid(p, "id"));
}

/* POST /api/deviceProfile/{id}/default; prints the answer when print is set. */
static int make_default(cli_t *c, const char *id, int print)
{
    cli_resp_t r;
    int rc = cli_call(c, "POST", NULL, "set default profile", &r, "/api/deviceProfile/%s/default",
                      id);
    if (rc == 0 && print)
        print_saved(c, r.json);
    cli_resp_fini(&r);
    return rc;
}

static int run_add(cli_t *c, args_t *a)
{
    json_t *p = json_pack("{s:s, s:s, s:s, s:s}", "name", a->pos[0], "type", "DEFAULT",
                          "transportType", "DEFAULT", "provisionType", "DISABLED");
    int rc = apply(a, p, 1);
    if (rc == 0)
        rc = cli_login(c);
    cli_resp_t r = {0};
    if (rc == 0)
        rc = cli_call(c, "POST", p, "create device profile", &r, "/api/deviceProfile");
    json_decref(p);
    /* ThingsBoard refuses a second default in a save: make it the default afterwards. */
    if (rc == 0 && a->make_default)
        rc = make_default(c, jid(r.json, "id"), 1);
    else if (rc == 0)
        print_saved(c, r.json);
    cli_resp_fini(&r);
    return rc;
}

static int run_set(cli_t *c, args_t *a)
{
    json_t *p = json_deep_copy(a->prof);
    int rc = apply(a, p, 0);
    cli_resp_t r = {0};
    if (rc == 0)
        rc = cli_call(c, "POST", p, "update device profile", &r, "/api/deviceProfile");
    json_decref(p);
    if (rc == 0 && a->make_default)
        rc = make_default(c, a->id, 1);
    else if (rc == 0)
        print_saved(c, r.json);
    cli_resp_fini(&r);
    return rc;
}

static int run_delete(cli_t *c, args_t *a)
{
    cli_resp_t r;
    int rc = cli_call(c, "DELETE", NULL, "delete device profile", &r, "/api/deviceProfile/%s",
                      a->id);
    cli_resp_fini(&r);
    if (rc == 0 && !c->json)
        printf("deleted %s\n", a->pos[0]);
    return rc;
}

static int run_default(cli_t *c, args_t *a)
{
    return make_default(c, a->id, 1);
}

enum { FIRST_LOGIN, FIRST_FIND };
enum { OPT_SEARCH = 1u << 0, OPT_EDIT = 1u << 1 };

#define EDIT_USAGE                                                                                 \
    "  --strategy allow-create|check-pre-provisioned|x509-chain|disabled\n"                        \
    "      provisioning strategy (ThingsBoard's provisionType); --provision-key or\n"              \
    "      --provision-secret alone imply allow-create, --ca-cert implies x509-chain\n"            \
    "  --provision-key K, --provision-secret S   what devices send to POST /api/v1/provision\n"    \
    "  --ca-cert FILE     CA certificate (PEM, a chain allowed) that signs devices' "              \
    "certificates\n"                                                                               \
    "  --cn-regex RE      POSIX extended regex on the certificate CN; group 1 = device name\n"     \
    "                     (default (.*))\n"                                                        \
    "  --power-mode psm|drx|edrx   makes the profile's transport COAP with these clientSettings\n" \
    "  --psm-activity-timer MS, --edrx-cycle MS, --paging-window MS\n"                             \
    "  --description TEXT\n"                                                                       \
    "  --default          make it the default profile\n"

static const struct verb {
    const char *name;
    unsigned opts;
    int n_pos;
    int first;
    int (*run)(cli_t *c, args_t *a);
    const char *usage;
} verbs[] = {
    {"list", OPT_SEARCH, 0, FIRST_LOGIN, run_list,
     "usage: coaphub-cli profile list [--search TEXT]\n"
     "Lists device profiles (name, default, transport, provisioning, id) whose name starts\n"
     "with TEXT. With --json prints the array of DeviceProfile objects.\n"},
    {"show", 0, 1, FIRST_FIND, run_show,
     "usage: coaphub-cli profile show NAME\n"
     "Prints the profile's transport, provisioning key and secret (or CA hash and CN regex),\n"
     "power-saving settings and OTA packages. --json prints the DeviceProfile object.\n"},
    {"add", OPT_EDIT, 1, FIRST_LOGIN, run_add,
     "usage: coaphub-cli profile add NAME [OPTIONS]\n"
     "Creates device profile NAME. Prints its name and id.\n" EDIT_USAGE},
    {"set", OPT_EDIT, 1, FIRST_FIND, run_set,
     "usage: coaphub-cli profile set NAME [OPTIONS]\n"
     "Changes device profile NAME; what no option names stays as it is.\n" EDIT_USAGE},
    {"delete", 0, 1, FIRST_FIND, run_delete,
     "usage: coaphub-cli profile delete NAME\n"
     "Deletes the profile. The default profile and profiles devices use are refused.\n"},
    {"default", 0, 1, FIRST_FIND, run_default,
     "usage: coaphub-cli profile default NAME\n"
     "Makes NAME the default profile (devices created without a type or profile get it).\n"},
};

int cli_cmd_profile(cli_t *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(PROFILE_HELP, EX_USAGE);
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "help") == 0)
        return cli_usage(PROFILE_HELP, EX_OK);
    const struct verb *v = NULL;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0] && !v; i++)
        if (strcmp(name, verbs[i].name) == 0)
            v = &verbs[i];
    if (!v) {
        fprintf(stderr, "error: unknown profile verb '%s'\n", name);
        return cli_usage(PROFILE_HELP, EX_USAGE);
    }
    args_t a = {.usage = v->usage};
    cli_opt_t opts[16];
    size_t n = 0;
    if (v->opts & OPT_SEARCH)
        opts[n++] = (cli_opt_t){"search", &a.search, NULL};
    if (v->opts & OPT_EDIT) {
        opts[n++] = (cli_opt_t){"strategy", &a.strategy, NULL};
        opts[n++] = (cli_opt_t){"provision-key", &a.key, NULL};
        opts[n++] = (cli_opt_t){"provision-secret", &a.secret, NULL};
        opts[n++] = (cli_opt_t){"ca-cert", &a.ca_cert, NULL};
        opts[n++] = (cli_opt_t){"cn-regex", &a.cn_regex, NULL};
        opts[n++] = (cli_opt_t){"power-mode", &a.power_mode, NULL};
        opts[n++] = (cli_opt_t){"psm-activity-timer", &a.psm_timer, NULL};
        opts[n++] = (cli_opt_t){"edrx-cycle", &a.edrx_cycle, NULL};
        opts[n++] = (cli_opt_t){"paging-window", &a.paging_window, NULL};
        opts[n++] = (cli_opt_t){"description", &a.description, NULL};
        opts[n++] = (cli_opt_t){"default", NULL, &a.make_default};
    }
    opts[n] = (cli_opt_t){NULL, NULL, NULL};
    int rc;
    if (cli_args(c, argc - 1, argv + 1, v->usage, opts, a.pos, v->n_pos, v->n_pos, &rc) < 0)
        return rc;
    rc = v->first == FIRST_FIND ? cli_profile_by_name(c, a.pos[0], &a.prof, &a.id) : cli_login(c);
    if (rc == 0)
        rc = v->run(c, &a);
    json_decref(a.prof);
    return rc;
}
