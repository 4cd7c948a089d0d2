/* rest_fixture.c — see rest_fixture.h. */
#include "rest_fixture.h"

#include "core/log.h"

#include <curl/curl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

world_t W;

size_t rest_on_data(char *p, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    b->p = realloc(b->p, b->n + size * n + 1);
    memcpy(b->p + b->n, p, size * n);
    b->n += size * n;
    b->p[b->n] = '\0';
    return size * n;
}

/* Performs a request; returns the status and sets *out to the body (caller frees). */
long req(const char *method, const char *path, const char *body, const char *token,
                char **out)
{
    CURL *c = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", W.port, path);
    buf_t b = {calloc(1, 1), 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[4096];
    if (token) {
        snprintf(auth, sizeof auth, "X-Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rest_on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = 0;
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out)
        *out = b.p;
    else
        free(b.p);
    return status;
}

/* Request expecting JSON; returns the parsed body (NULL for an empty body). */
json_t *jreq(const char *method, const char *path, const char *body, long want)
{
    char *out = NULL;
    long st = req(method, path, body, W.token, &out);
    if (st != want)
        fprintf(stderr, "%s %s -> %ld %s\n", method, path, st, out);
    assert_int_equal(st, want);
    json_t *j = out[0] ? json_loads(out, JSON_DECODE_ANY, NULL) : NULL;
    if (out[0])
        assert_non_null(j);
    free(out);
    return j;
}

void assert_error(json_t *j, int status, int code, const char *msg)
{
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    assert_int_equal(json_integer_value(json_object_get(j, "errorCode")), code);
    assert_true(json_is_integer(json_object_get(j, "timestamp")));
    if (msg)
        assert_string_equal(json_string_value(json_object_get(j, "message")), msg);
    json_decref(j);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

int rest_setup(void **state)
{
    (void)state;
    log_set_level(LOG_WARN);
    strcpy(W.dir, "/tmp/coaphub-rest-XXXXXX");
    assert_non_null(mkdtemp(W.dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/db.sqlite", W.dir);
    store_cfg_t sc;
    store_cfg_default(&sc);
    sc.path = path;
    sc.synchronous_full = false;
    sc.disk_reserve_bytes = 0; /* no 64 MiB file per test */
    sc.probe_ms = 20;          /* a storage fault clears within a test's patience */
    W.store = store_open(&sc, err);
    assert_non_null(W.store);
    W.reg = registry_new();
    assert_int_equal(registry_load(W.reg, W.store), 0);
    W.hub = hub_new(W.store);
    assert_int_equal(http_bootstrap_admin(W.store, "tenant@thingsboard.org", "tenant", err), 0);
    /* A second call finds the user and does nothing. */
    assert_int_equal(http_bootstrap_admin(W.store, "other@x", NULL, err), 0);
    http_cfg_t cfg;
    http_cfg_default(&cfg);
    cfg.bind_addr = "127.0.0.1";
    cfg.port = 0;
    cfg.max_body = 16 * 1024;
    cfg.rpc_min_timeout_ms = 50;
    W.srv = http_server_start(&cfg, W.store, W.reg, W.hub, err);
    assert_non_null(W.srv);
    W.port = http__server_port(W.srv);
    assert_true(W.port > 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

int rest_teardown(void **state)
{
    (void)state;
    http_server_stop(W.srv);
    hub_free(W.hub);
    registry_free(W.reg);
    store_close(W.store);
    free(W.token);
    curl_global_cleanup();
    nftw(W.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

void rest_login(void)
{
    char *out;
    assert_int_equal(req("POST", "/api/auth/login",
                         "{\"username\":\"tenant@thingsboard.org\",\"password\":\"tenant\"}",
                         NULL, &out), 200);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    free(W.token);
    W.token = strdup(json_string_value(json_object_get(j, "token")));
    json_decref(j);
}
