/* cli_http.c — the REST plumbing of coaphub-cli: libcurl calls, login, error mapping, parsing.
 *
 * Invariant: every request is bounded by cli_t.timeout_ms, so the CLI can never hang on a
 * stuck server. The JWT and password travel only in headers/bodies, never to stdout/stderr.
 */
#include "cli.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "core/xmalloc.h"

/* A reply bigger than this is a server bug or the wrong URL; stop reading instead of
 * growing without bound. 64 MiB covers a long telemetry history. */
#define CLI_MAX_BODY (64u * 1024u * 1024u)

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    cli_resp_t *r = ud;
    size_t add = size * n;
    if (r->len + add > CLI_MAX_BODY)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    r->body = xrealloc(r->body, r->len + add + 1);
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

int cli_http(cli_t *c, const char *method, const char *path, const json_t *body, cli_resp_t *r)
{
    memset(r, 0, sizeof(*r));
    r->body = xstrdup("");
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        return EX_SOFTWARE;
    }
    /* --url may end in '/' (flags and env both feed it); paths always start with one. */
    size_t ulen = strlen(c->url);
    if (ulen > 0 && c->url[ulen - 1] == '/')
        ulen--;
    char *url = xasprintf("%.*s%s", (int)ulen, c->url, path);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (payload)
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    char *auth = NULL;
    if (c->jwt) {
        auth = xasprintf("X-Authorization: Bearer %s", c->jwt);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (payload) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (rc != CURLE_OK) {
        fprintf(stderr, "error: %s %s: %s\n", method, c->url, curl_easy_strerror(rc));
        ret = EX_UNAVAILABLE;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->len > 0)
            r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
    }
    curl_slist_free_all(hdr);
    if (auth) {
        /* The header held the JWT; do not leave it in freed heap memory. */
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    free(payload);
    free(url);
    curl_easy_cleanup(h);
    return ret;
}

int cli_call(cli_t *c, const char *method, const json_t *body, const char *what, cli_resp_t *r,
             const char *path_fmt, ...)
{
    va_list ap, again;
    va_start(ap, path_fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, path_fmt, ap);
    va_end(ap);
    char *path = xmalloc((size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(path, (size_t)(n < 0 ? 0 : n) + 1, path_fmt, again);
    va_end(again);
    int rc = cli_http(c, method, path, body, r);
    free(path);
    if (rc == 0 && r->status != 200)
        rc = cli_fail(r, what);
    return rc;
}

void cli_resp_fini(cli_resp_t *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int cli_exit_for_status(long status)
{
    if (status >= 200 && status < 300)
        return EX_OK;
    switch (status) {
    case 400:
    case 406:
    case 413:
        return EX_DATAERR;
    case 401:
    case 403:
        return EX_NOPERM;
    case 404:
        return EX_NOINPUT;
    case 408:
    case 409:
    case 429:
    case 503:
    case 504:
        return EX_TEMPFAIL;
    default:
        return status >= 500 ? EX_SOFTWARE : EX_PROTOCOL;
    }
}

int cli_fail(const cli_resp_t *r, const char *what)
{
    const char *msg = NULL;
    if (json_is_object(r->json))
        msg = json_string_value(json_object_get(r->json, "message"));
    if (!msg || !*msg)
        msg = r->len ? r->body : "(empty response)";
    fprintf(stderr, "error: %s: %s (HTTP %ld)\n", what, msg, r->status);
    return cli_exit_for_status(r->status);
}

int cli_login(cli_t *c)
{
    if (c->jwt)
        return 0;
    if (!c->user || !c->password) {
        fprintf(stderr, "error: no credentials: use --user/--password or set COAPHUB_USER and "
                        "COAPHUB_PASSWORD\n");
        return EX_USAGE;
    }
    json_t *body = json_pack("{s:s, s:s}", "username", c->user, "password", c->password);
    cli_resp_t r;
    int rc = cli_http(c, "POST", "/api/auth/login", body, &r);
    json_decref(body);
    if (rc == 0 && r.status != 200)
        rc = cli_fail(&r, "login");
    if (rc == 0) {
        const char *tok = json_string_value(json_object_get(r.json, "token"));
        if (!tok) {
            fprintf(stderr, "error: login: answer has no token\n");
            rc = EX_PROTOCOL;
        } else {
            c->jwt = xstrdup(tok);
        }
    }
    cli_resp_fini(&r);
    return rc;
}

char *cli_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = xstrdup(e ? e : "");
    curl_free(e);
    return out;
}

int cli_device_by_name(cli_t *c, const char *name, json_t **dev, const char **id)
{
    int rc = cli_login(c);
    if (rc)
        return rc;
    char *q = cli_escape(name);
    char *path = xasprintf("/api/tenant/devices?deviceName=%s", q);
    free(q);
    cli_resp_t r;
    rc = cli_http(c, "GET", path, NULL, &r);
    free(path);
    if (rc == 0 && r.status == 404) {
        fprintf(stderr, "error: no device named '%s'\n", name);
        rc = EX_NOINPUT;
    } else if (rc == 0 && r.status != 200) {
        rc = cli_fail(&r, "device lookup");
    } else if (rc == 0) {
        const char *s = json_string_value(json_object_get(json_object_get(r.json, "id"), "id"));
        if (!s) {
            fprintf(stderr, "error: device lookup: answer has no id\n");
            rc = EX_PROTOCOL;
        } else {
            *dev = json_incref(r.json);
            *id = s;
        }
    }
    cli_resp_fini(&r);
    return rc;
}

void cli_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s)
        puts(s);
    free(s);
}

static const cli_opt_t *find_opt(const cli_opt_t *opts, const char *name, size_t len)
{
    for (const cli_opt_t *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

int cli_parse(cli_t *c, int argc, char **argv, const cli_opt_t *opts, char **pos, int max_pos)
{
    int json = 0;
    const cli_opt_t global[] = {
        {"url", &c->url, NULL},
        {"user", &c->user, NULL},
        {"password", &c->password, NULL},
        {"json", NULL, &json},
        {NULL, NULL, NULL},
    };
    int n = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] != '-' || a[2] == '\0') {
            if (!only_pos && strcmp(a, "--") == 0) {
                only_pos = 1;
                continue;
            }
            if (n >= max_pos) {
                fprintf(stderr, "error: %s: unexpected argument '%s' (see --help)\n", argv[0], a);
                return -1;
            }
            pos[n++] = argv[i];
            continue;
        }
        if (strcmp(a, "--help") == 0)
            return -2;
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt_t *o = find_opt(opts, name, len);
        if (!o)
            o = find_opt(global, name, len);
        if (!o) {
            fprintf(stderr, "error: %s: unknown option '%s' (see --help)\n", argv[0], a);
            return -1;
        }
        if (o->flag) {
            if (eq) {
                fprintf(stderr, "error: option --%s takes no value\n", o->name);
                return -1;
            }
            *o->flag = 1;
        } else if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            fprintf(stderr, "error: option --%s needs a value\n", o->name);
            return -1;
        }
    }
    if (json)
        c->json = 1;
    return n;
}

int cli_usage(const char *usage, int rc)
{
    fputs(usage, rc == EX_OK ? stdout : stderr);
    return rc;
}

int cli_args(cli_t *c, int argc, char **argv, const char *usage, const cli_opt_t *opts, char **pos,
             int min_pos, int max_pos, int *rc)
{
    int n = cli_parse(c, argc, argv, opts, pos, max_pos);
    if (n == -2) {
        *rc = cli_usage(usage, EX_OK);
        return -1;
    }
    if (n < min_pos) { /* also a usage error cli_parse reported (-1) */
        *rc = cli_usage(usage, EX_USAGE);
        return -1;
    }
    *rc = EX_OK;
    return n;
}

int cli_list_all(cli_t *c, const char *what, const char *path, const char *search, json_t **out)
{
    char *q = search ? cli_escape(search) : NULL;
    json_t *all = json_array();
    int rc = 0;
    for (int page = 0; page < CLI_LIST_MAX_PAGES && rc == 0; page++) {
        cli_resp_t r;
        rc = cli_call(c, "GET", NULL, what, &r, "%s&pageSize=%d&page=%d%s%s", path, CLI_LIST_PAGE,
                      page, q ? "&textSearch=" : "", q ? q : "");
        json_t *data = rc == 0 ? json_object_get(r.json, "data") : NULL;
        if (rc == 0 && !json_is_array(data)) {
            fprintf(stderr, "error: %s: answer has no data array\n", what);
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
    if (rc == 0)
        *out = all;
    else
        json_decref(all);
    return rc;
}
