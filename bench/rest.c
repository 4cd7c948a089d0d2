/* rest.c — the REST calls coaphub-bench makes around a run: login, create the simulated devices
 * (access token or X.509 credentials), look them up, update a shared attribute (observe mode),
 * delete them. ThingsBoard-compatible paths, so the same flags work against any such server.
 *
 * One bench_rest_t is one keep-alive libcurl handle: use it from one thread at a time. Every
 * call is bounded by a 30 s timeout. The JWT is never printed.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/xmalloc.h"

#define REST_MAX_BODY (4u * 1024u * 1024u)

struct bench_rest {
    CURL *h;
    char *url;
    char *auth_hdr;
    char *body;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    bench_rest_t *r = ud;
    size_t add = size * n;
    if (r->len + add > REST_MAX_BODY)
        return 0;
    r->body = xrealloc(r->body, r->len + add + 1);
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* Returns the HTTP status, or -EIO when no answer came. */
static long call(bench_rest_t *r, const char *method, const char *path, const char *json)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", r->url, path);
    r->len = 0;
    if (r->body)
        r->body[0] = '\0';
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    if (json)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (r->auth_hdr)
        hdrs = curl_slist_append(hdrs, r->auth_hdr);
    curl_easy_setopt(r->h, CURLOPT_URL, url);
    curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, hdrs);
    /* HTTPGET undoes an earlier handle's POSTFIELDS; CUSTOMREQUEST then names the verb. */
    if (json)
        curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, json);
    else
        curl_easy_setopt(r->h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(r->h, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(r->h);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK)
        return -EIO;
    long status = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

bench_rest_t *bench_rest_login(const char *url, const char *user, const char *password,
                               char *err, size_t errlen)
{
    bench_rest_t *r = xcalloc(1, sizeof *r);
    r->url = xstrdup(url);
    r->h = curl_easy_init();
    if (!r->h) {
        snprintf(err, errlen, "cannot initialise libcurl");
        goto fail;
    }
    curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
    json_t *req = json_pack("{s:s, s:s}", "username", user ? user : "",
                            "password", password ? password : "");
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    long st = call(r, "POST", "/api/auth/login", body);
    free(body);
    if (st != 200) {
        snprintf(err, errlen, "login at %s: %s %ld", url, st < 0 ? "no answer" : "HTTP", st);
        goto fail;
    }
    json_t *resp = json_loads(r->body, 0, NULL);
    const char *tok = json_string_value(json_object_get(resp, "token"));
    if (!tok) {
        json_decref(resp);
        snprintf(err, errlen, "login: no token in the answer");
        goto fail;
    }
    r->auth_hdr = xasprintf("X-Authorization: Bearer %s", tok);
    json_decref(resp);
    return r;
fail:
    bench_rest_free(r);
    return NULL;
}

void bench_rest_free(bench_rest_t *r)
{
    if (!r)
        return;
    if (r->h)
        curl_easy_cleanup(r->h);
    free(r->url);
    free(r->auth_hdr);
    free(r->body);
    free(r);
}

static int take_id(bench_rest_t *r, bench_dev_t *d, json_t *dev)
{
    const char *id = json_string_value(json_object_get(json_object_get(dev, "id"), "id"));
    if (!id)
        return -EPROTO;
    free(d->dev_id);
    d->dev_id = xstrdup(id);
    (void)r;
    return 0;
}

int bench_rest_lookup(bench_rest_t *r, bench_dev_t *d, const char *name)
{
    char *esc = curl_easy_escape(r->h, name, 0);
    char path[512];
    snprintf(path, sizeof path, "/api/tenant/devices?deviceName=%s", esc ? esc : "");
    curl_free(esc);
    long st = call(r, "GET", path, NULL);
    if (st != 200)
        return -ENOENT;
    json_t *j = json_loads(r->body, 0, NULL);
    int rc = take_id(r, d, j);
    json_decref(j);
    return rc;
}

int bench_rest_create(bench_rest_t *r, bench_dev_t *d, const char *name, bench_cred_t cred,
                      char *err, size_t errlen)
{
    json_t *dev = json_pack("{s:s, s:s}", "name", name, "type", "default");
    char *body;
    char path[512];
    if (cred == BENCH_CRED_X509 || cred == BENCH_CRED_PSK) {
        char *pem = cred == BENCH_CRED_X509 ? bench_pki_cert_pem(d) : NULL;
        char hex[2 * sizeof d->psk_key + 1];
        for (size_t i = 0; i < sizeof d->psk_key; i++)
            snprintf(hex + 2 * i, 3, "%02x", d->psk_key[i]);
        json_t *creds = cred == BENCH_CRED_X509
                            ? json_pack("{s:s, s:s}", "credentialsType", "X509_CERTIFICATE",
                                        "credentialsValue", pem ? pem : "")
                            : json_pack("{s:s, s:s, s:s}", "credentialsType", "PSK",
                                        "credentialsId", d->token, "credentialsValue", hex);
        free(pem);
        json_t *req = json_pack("{s:o, s:o}", "device", dev, "credentials", creds);
        body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        snprintf(path, sizeof path, "/api/device-with-credentials");
    } else {
        body = json_dumps(dev, JSON_COMPACT);
        json_decref(dev);
        char *esc = curl_easy_escape(r->h, d->token, 0);
        snprintf(path, sizeof path, "/api/device?accessToken=%s", esc ? esc : "");
        curl_free(esc);
    }
    long st = call(r, "POST", path, body);
    free(body);
    if (st == 200) {
        json_t *j = json_loads(r->body, 0, NULL);
        int rc = take_id(r, d, j);
        json_decref(j);
        return rc;
    }
    /* A device left over from an earlier run with the same name: reuse it. */
    if (st == 400 && bench_rest_lookup(r, d, name) == 0)
        return 0;
    snprintf(err, errlen, "create device %s: HTTP %ld: %.200s", name, st, r->body ? r->body : "");
    return -EIO;
}

int bench_rest_delete(bench_rest_t *r, const bench_dev_t *d)
{
    if (!d->dev_id)
        return 0;
    char path[256];
    snprintf(path, sizeof path, "/api/device/%s", d->dev_id);
    long st = call(r, "DELETE", path, NULL);
    return st == 200 ? 0 : -EIO;
}

int bench_rest_shared_attr(bench_rest_t *r, const bench_dev_t *d, const char *key, long value)
{
    if (!d->dev_id)
        return -ENOENT;
    char path[256], body[128];
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE",
             d->dev_id);
    snprintf(body, sizeof body, "{\"%s\":%ld}", key, value);
    long st = call(r, "POST", path, body);
    return st == 200 ? 0 : -EIO;
}
