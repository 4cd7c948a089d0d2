/* cli_ota.c — `coaphub-cli ota ...`: upload, list, assign, delete OTA packages.
 *
 *   ota upload --title T --version V [--type FIRMWARE|SOFTWARE] [--profile P] [--tag TAG]
 *              [--algorithm SHA256] FILE
 *   ota list [--search TITLE]
 *   ota assign PACKAGE --profile P | --device D      (PACKAGE "none" + --type: unassign)
 *   ota delete PACKAGE
 *
 * PACKAGE is an id, or TITLE@VERSION. An upload is ThingsBoard's two calls: POST
 * /api/otaPackage (the row), then POST /api/otaPackage/{id}?checksumAlgorithm=.. with the file
 * as multipart field "file", sent by libcurl straight from the file (never read into memory).
 * Assigning edits the profile's or the device's firmwareId/softwareId and saves it back, as
 * ThingsBoard's UI does; the server then tells the devices (fw_* shared attributes).
 */
#include "cli.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "core/xmalloc.h"

/* An upload may take a while on a slow link: at least this long, whatever --timeout says. */
#define CLI_UPLOAD_TIMEOUT_MS (10L * 60 * 1000)

static const char OTA_HELP[] =
    "usage: coaphub-cli [global options] ota VERB ...\n"
    "  ota upload --title T --version V [--type FIRMWARE|SOFTWARE] [--profile P] [--tag TAG]\n"
    "             [--algorithm SHA256|SHA384|SHA512|MD5] FILE\n"
    "                                    create a package and upload its image\n"
    "  ota list [--search TITLE]         list packages (title starts with TITLE)\n"
    "  ota assign PACKAGE --profile P    default package of a device profile\n"
    "  ota assign PACKAGE --device D     package of one device (wins over the profile's)\n"
    "  ota assign none --type T (--profile P | --device D)   remove an assignment\n"
    "  ota delete PACKAGE                delete a package (refused while assigned)\n"
    "PACKAGE is a package id or TITLE@VERSION; --profile defaults to the default profile.\n";

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

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
            return false;
    }
    return true;
}

/* Every package (title starting with search, or all) into a new array *out. */
static int list_all(cli_t *c, const char *search, json_t **out)
{
    return cli_list_all(c, "list OTA packages",
                        "/api/otaPackages?sortProperty=createdTime&sortOrder=ASC", search, out);
}

/* The package PACKAGE names (id or TITLE@VERSION) as a new reference in *pkg. */
static int find_package(cli_t *c, const char *spec, json_t **pkg)
{
    *pkg = NULL;
    int rc;
    if (is_uuid(spec)) {
        cli_resp_t r;
        rc = cli_call(c, "GET", NULL, "get OTA package", &r, "/api/otaPackage/info/%s", spec);
        if (rc == 0)
            *pkg = json_incref(r.json);
        cli_resp_fini(&r);
        return rc;
    }
    const char *at = strrchr(spec, '@');
    if (!at || at == spec || !at[1]) {
        fprintf(stderr, "error: package '%s': expected an id or TITLE@VERSION\n", spec);
        return EX_USAGE;
    }
    char *title = xstrndup(spec, (size_t)(at - spec));
    json_t *all = NULL;
    rc = list_all(c, title, &all);
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p)
    {
        if (strcmp(jstr(p, "title"), title) == 0 && strcmp(jstr(p, "version"), at + 1) == 0) {
            *pkg = json_incref(p);
            break;
        }
    }
    json_decref(all);
    free(title);
    if (rc == 0 && !*pkg) {
        fprintf(stderr, "error: no OTA package '%s'\n", spec);
        rc = EX_NOINPUT;
    }
    return rc;
}

/* The device profile named name (GET /api/deviceProfiles?textSearch=, exact match) as a new
 * reference in *prof. */
static int profile_by_name(cli_t *c, const char *name, json_t **prof)
{
    *prof = NULL;
    char *q = cli_escape(name);
    int rc = 0;
    for (int page = 0; page < CLI_LIST_MAX_PAGES && rc == 0 && !*prof; page++) {
        cli_resp_t r;
        rc = cli_call(c, "GET", NULL, "list device profiles", &r,
                      "/api/deviceProfiles?pageSize=%d&page=%d&textSearch=%s", CLI_LIST_PAGE, page,
                      q);
        json_t *data = rc == 0 ? json_object_get(r.json, "data") : NULL;
        size_t i;
        json_t *p;
        json_array_foreach(data, i, p)
        {
            if (strcmp(jstr(p, "name"), name) == 0) {
                *prof = json_incref(p);
                break;
            }
        }
        int more = json_is_true(json_object_get(r.json, "hasNext"));
        cli_resp_fini(&r);
        if (!more)
            break;
    }
    free(q);
    if (rc == 0 && !*prof) {
        fprintf(stderr, "error: no device profile named '%s'\n", name);
        rc = EX_NOINPUT;
    }
    return rc;
}

/* The profile: by name, or the default one. *prof is a new reference. */
static int find_profile(cli_t *c, const char *name, json_t **prof)
{
    *prof = NULL;
    if (name)
        return profile_by_name(c, name, prof);
    cli_resp_t r;
    int rc = cli_call(c, "GET", NULL, "get default device profile", &r,
                      "/api/deviceProfileInfo/default");
    if (rc == 0)
        *prof = json_incref(r.json);
    cli_resp_fini(&r);
    return rc;
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    cli_resp_t *r = ud;
    size_t add = size * n;
    if (r->len + add > 1024 * 1024)
        return 0;
    r->body = xrealloc(r->body, r->len + add + 1);
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* POST path with FILE as multipart field "file" (what `curl -F file=@FILE` sends). */
static int post_file(cli_t *c, const char *path, const char *file, cli_resp_t *r)
{
    memset(r, 0, sizeof *r);
    r->body = xstrdup("");
    CURL *h = curl_easy_init();
    if (!h)
        return EX_SOFTWARE;
    size_t ulen = strlen(c->url);
    if (ulen > 0 && c->url[ulen - 1] == '/')
        ulen--;
    char *url = xasprintf("%.*s%s", (int)ulen, c->url, path);
    char *auth = xasprintf("X-Authorization: Bearer %s", c->jwt);
    struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
    hdr = curl_slist_append(hdr, auth);
    curl_mime *mime = curl_mime_init(h);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filedata(part, file); /* streamed from the file; also sets the filename */
    curl_mime_type(part, "application/octet-stream");
    long timeout = c->timeout_ms > CLI_UPLOAD_TIMEOUT_MS ? c->timeout_ms : CLI_UPLOAD_TIMEOUT_MS;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = curl_easy_perform(h);
    int rc = 0;
    if (cc != CURLE_OK) {
        fprintf(stderr, "error: upload %s: %s\n", file, curl_easy_strerror(cc));
        rc = EX_UNAVAILABLE;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->len)
            r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
        if (r->status != 200)
            rc = cli_fail(r, "upload OTA package file");
    }
    curl_mime_free(mime);
    curl_slist_free_all(hdr);
    memset(auth, 0, strlen(auth));
    free(auth);
    free(url);
    curl_easy_cleanup(h);
    return rc;
}

static void print_table(const json_t *pkgs)
{
    printf("%-36s %-8s %-20s %-12s %10s %s\n", "ID", "TYPE", "TITLE", "VERSION", "SIZE",
           "CHECKSUM");
    size_t i;
    json_t *p;
    json_array_foreach(pkgs, i, p)
    {
        json_t *size = json_object_get(p, "dataSize");
        char sz[24] = "-";
        if (json_is_integer(size))
            snprintf(sz, sizeof sz, "%lld", (long long)json_integer_value(size));
        const char *alg = jstr(p, "checksumAlgorithm");
        printf("%-36s %-8s %-20s %-12s %10s %s%s%s\n", jid(p, "id"), jstr(p, "type"),
               jstr(p, "title"), jstr(p, "version"), sz, alg, *alg ? ":" : "", jstr(p, "checksum"));
    }
}

typedef struct {
    char *pos[2];
    const char *title, *version, *type, *profile, *device, *tag, *algorithm, *search;
} args_t;

static int run_upload(cli_t *c, args_t *a)
{
    const char *file = a->pos[0];
    struct stat st;
    if (!a->title || !a->version) {
        fprintf(stderr, "error: ota upload needs --title and --version\n");
        return EX_USAGE;
    }
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "error: %s: not a readable file\n", file);
        return EX_NOINPUT;
    }
    json_t *prof = NULL;
    int rc = find_profile(c, a->profile, &prof);
    if (rc)
        return rc;
    json_t *body = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "title", a->title, "version",
                             a->version, "type", a->type ? a->type : "FIRMWARE", "deviceProfileId",
                             "entityType", "DEVICE_PROFILE", "id", jid(prof, "id"));
    if (a->tag)
        json_object_set_new(body, "tag", json_string(a->tag));
    json_decref(prof);
    cli_resp_t r;
    rc = cli_call(c, "POST", body, "create OTA package", &r, "/api/otaPackage");
    json_decref(body);
    char *id = rc == 0 ? xstrdup(jid(r.json, "id")) : NULL;
    cli_resp_fini(&r);
    if (rc)
        return rc;
    char *alg = cli_escape(a->algorithm ? a->algorithm : "SHA256");
    char *path = xasprintf("/api/otaPackage/%s?checksumAlgorithm=%s", id, alg);
    rc = post_file(c, path, file, &r);
    if (rc) {
        /* Leave no package without an image behind: it could not be assigned anyway. */
        cli_resp_t d;
        char *del = xasprintf("/api/otaPackage/%s", id);
        if (cli_http(c, "DELETE", del, NULL, &d) == 0)
            cli_resp_fini(&d);
        free(del);
    } else if (c->json) {
        cli_print_json(r.json);
    } else {
        json_t *one = json_pack("[O]", r.json);
        print_table(one);
        json_decref(one);
    }
    cli_resp_fini(&r);
    free(path);
    free(alg);
    free(id);
    return rc;
}

static int run_list(cli_t *c, args_t *a)
{
    json_t *all = NULL;
    int rc = list_all(c, a->search, &all);
    if (rc == 0 && c->json)
        cli_print_json(all);
    else if (rc == 0)
        print_table(all);
    json_decref(all);
    return rc;
}

/* Sets (or clears: pkg NULL) the firmwareId/softwareId of obj, a profile or device JSON. */
static void set_ota(json_t *obj, const char *type, const json_t *pkg)
{
    const char *field = strcmp(type, "SOFTWARE") == 0 ? "softwareId" : "firmwareId";
    if (pkg)
        json_object_set_new(
            obj, field, json_pack("{s:s, s:s}", "entityType", "OTA_PACKAGE", "id", jid(pkg, "id")));
    else
        json_object_set_new(obj, field, json_null());
}

static int run_assign(cli_t *c, args_t *a)
{
    if (!a->profile == !a->device) {
        fprintf(stderr, "error: ota assign needs exactly one of --profile and --device\n");
        return EX_USAGE;
    }
    json_t *pkg = NULL;
    const char *type = a->type;
    int rc = 0;
    if (strcmp(a->pos[0], "none") == 0) {
        if (!type) {
            fprintf(stderr, "error: ota assign none needs --type FIRMWARE or SOFTWARE\n");
            return EX_USAGE;
        }
    } else {
        if ((rc = find_package(c, a->pos[0], &pkg)) != 0)
            return rc;
        type = jstr(pkg, "type");
    }
    json_t *target = NULL;
    const char *path, *what;
    if (a->device) {
        const char *id;
        rc = cli_device_by_name(c, a->device, &target, &id);
        path = "/api/device";
        what = "save device";
    } else {
        json_t *brief = NULL;
        rc = profile_by_name(c, a->profile, &brief);
        if (rc == 0) { /* the whole profile, as its save replaces every field */
            cli_resp_t r;
            rc = cli_call(c, "GET", NULL, "get device profile", &r, "/api/deviceProfile/%s",
                          jid(brief, "id"));
            if (rc == 0)
                target = json_incref(r.json);
            cli_resp_fini(&r);
        }
        json_decref(brief);
        path = "/api/deviceProfile";
        what = "save device profile";
    }
    if (rc == 0) {
        set_ota(target, type, pkg);
        cli_resp_t r;
        rc = cli_call(c, "POST", target, what, &r, "%s", path);
        if (rc == 0 && c->json)
            cli_print_json(r.json);
        else if (rc == 0)
            printf("%s %s: %s %s\n", a->device ? "device" : "profile",
                   a->device ? a->device : a->profile, type, pkg ? jid(pkg, "id") : "(none)");
        cli_resp_fini(&r);
    }
    json_decref(target);
    json_decref(pkg);
    return rc;
}

static int run_delete(cli_t *c, args_t *a)
{
    json_t *pkg = NULL;
    int rc = find_package(c, a->pos[0], &pkg);
    if (rc == 0) {
        cli_resp_t r;
        rc = cli_call(c, "DELETE", NULL, "delete OTA package", &r, "/api/otaPackage/%s",
                      jid(pkg, "id"));
        cli_resp_fini(&r);
        if (rc == 0 && !c->json)
            printf("deleted %s\n", jid(pkg, "id"));
    }
    json_decref(pkg);
    return rc;
}

static const struct {
    const char *name, *usage;
    int (*run)(cli_t *, args_t *);
    int n_pos;
} verbs[] = {
    {"upload",
     "usage: coaphub-cli ota upload --title T --version V [--type FIRMWARE|SOFTWARE]\n"
     "       [--profile P] [--tag TAG] [--algorithm SHA256|SHA384|SHA512|MD5] FILE\n",
     run_upload, 1},
    {"list", "usage: coaphub-cli ota list [--search TITLE]\n", run_list, 0},
    {"assign",
     "usage: coaphub-cli ota assign PACKAGE (--profile P | --device D)\n"
     "       coaphub-cli ota assign none --type FIRMWARE|SOFTWARE (--profile P | --device D)\n",
     run_assign, 1},
    {"delete", "usage: coaphub-cli ota delete PACKAGE\n", run_delete, 1},
};

int cli_cmd_ota(cli_t *c, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0)
        return cli_usage(OTA_HELP, argc < 2 ? EX_USAGE : EX_OK);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(argv[1], verbs[i].name) != 0)
            continue;
        args_t a = {0};
        const cli_opt_t opts[] = {
            {"title", &a.title, NULL},
            {"version", &a.version, NULL},
            {"type", &a.type, NULL},
            {"profile", &a.profile, NULL},
            {"device", &a.device, NULL},
            {"tag", &a.tag, NULL},
            {"algorithm", &a.algorithm, NULL},
            {"search", &a.search, NULL},
            {NULL, NULL, NULL},
        };
        int rc;
        if (cli_args(c, argc - 1, argv + 1, verbs[i].usage, opts, a.pos, verbs[i].n_pos,
                     verbs[i].n_pos, &rc) < 0)
            return rc;
        if (a.type && strcmp(a.type, "FIRMWARE") != 0 && strcmp(a.type, "SOFTWARE") != 0) {
            fprintf(stderr, "error: --type must be FIRMWARE or SOFTWARE\n");
            return EX_USAGE;
        }
        rc = cli_login(c);
        return rc ? rc : verbs[i].run(c, &a);
    }
    fprintf(stderr, "error: unknown ota verb '%s'\n", argv[1]);
    return cli_usage(OTA_HELP, EX_USAGE);
}
