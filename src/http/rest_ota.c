/* rest_ota.c — OTA packages over REST as ThingsBoard's OtaPackageController: package rows
 * (create, read, page, delete), the image upload and its download.
 *
 * The upload (POST /api/otaPackage/{id}?checksumAlgorithm=..[&checksum=..], multipart field
 * "file", as ThingsBoard's UI and `curl -F file=@fw.bin` send it) is streamed: server.c hands
 * each piece of the body to http__ota_upload_feed as libmicrohttpd reads it, the multipart
 * parser passes the file part's bytes to ota_upload_write, which writes them to a temp file
 * and checksums them on the way. So an image is never held in memory, and the JWT is checked
 * before the first byte is written (server.c). Errors found while streaming are kept and
 * answered once the body has been read; the rest of the body is drained unread.
 *
 * An image is stored once: ThingsBoard refuses to replace a package's data ("Updating
 * otaPackage data is prohibited!"), so devices that downloaded a version all got the same
 * bytes. A checksum the client gives is compared with the one we compute (ThingsBoard stores
 * whatever it is given; a mismatch here is a 400, so a corrupted upload is never served).
 */
#include "http/http_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "http/multipart.h"
#include "ota/ota.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define OTA_PATH "/api/otaPackage/"

/* Serialises the last step of uploads (check, rename, row update); see http__h_ota_upload. */
static pthread_mutex_t commit_mu = PTHREAD_MUTEX_INITIALIZER;

struct http_ota_upload {
    http_server_t *h;
    store_ota_t row;
    bool have_row;
    http_mp_t mp;
    ota_upload_t *up;
    bool in_file, file_seen;
    char file_name[HTTP_MP_NAME_MAX];
    char content_type[HTTP_MP_NAME_MAX];
    /* The first error, answered after the body (err set: the rest is drained). */
    http_err_t err;
    int err_store; /* a store error (answered through the store table) or 0 */
    char msg[200];
    bool failed;
};

static json_t *entity_id(const char *type, const char *id)
{
    return json_pack("{s:s, s:s}", "entityType", type, "id", id);
}

static json_t *str_or_null(const char *s)
{
    json_t *j = s ? json_string(s) : NULL;
    return j ? j : json_null();
}

/* OtaPackageInfo as ThingsBoard writes it. */
static json_t *ota_json(const http_server_t *h, const store_ota_t *o)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", entity_id("OTA_PACKAGE", o->uuid));
    json_object_set_new(j, "createdTime", json_integer(o->created_ms));
    json_object_set_new(j, "tenantId", entity_id("TENANT", h->tenant_id));
    json_object_set_new(j, "deviceProfileId", entity_id("DEVICE_PROFILE", o->profile_uuid));
    json_object_set_new(j, "type", str_or_null(o->type));
    json_object_set_new(j, "title", str_or_null(o->title));
    json_object_set_new(j, "version", str_or_null(o->version));
    json_object_set_new(j, "tag", str_or_null(o->tag));
    json_object_set_new(j, "url", str_or_null(o->url));
    json_object_set_new(j, "hasData", json_boolean(o->has_data));
    json_object_set_new(j, "fileName", str_or_null(o->file_name));
    json_object_set_new(j, "contentType", str_or_null(o->content_type));
    json_object_set_new(j, "checksumAlgorithm", str_or_null(o->checksum_algorithm));
    json_object_set_new(j, "checksum", str_or_null(o->checksum));
    json_object_set_new(j, "dataSize", o->has_data ? json_integer(o->data_size) : json_null());
    json_object_set_new(j, "externalId", json_null());
    json_object_set_new(j, "name", str_or_null(o->title));
    json_t *ai = o->additional_info ? json_loads(o->additional_info, 0, NULL) : NULL;
    json_object_set_new(j, "additionalInfo", ai ? ai : json_null());
    return j;
}

/* Loads the package a path parameter names; fills rs and returns false on failure. */
static bool lookup(http_req_t *rq, http_resp_t *rs, const char *uuid, store_ota_t *o)
{
    memset(o, 0, sizeof *o);
    char lower[STORE_UUID_LEN + 1];
    if (!http__path_uuid(rs, uuid, lower))
        return false;
    int rc = store_ota_get_by_uuid(rq->srv->store, lower, o);
    if (rc < 0) {
        store_ota_fini(o);
        http__resp_store_error(rs, rc);
        return false;
    }
    return true;
}

/* ---- POST /api/otaPackage: the package row ---- */

static bool opt_str(const json_t *o, const char *k, char **out, bool *bad)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return false;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = true;
        return false;
    }
    *out = xstrdup(json_string_value(v));
    return true;
}

static const char *id_of(const json_t *o, const char *field)
{
    json_t *f = json_object_get(o, field);
    if (json_is_string(f))
        return json_string_value(f);
    return json_string_value(json_object_get(f, "id"));
}

static bool same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

void http__h_ota_save(http_req_t *rq, http_resp_t *rs)
{
    http_server_t *h = rq->srv;
    json_t *j = http__json_parse(rq->body, rq->body_len);
    store_ota_t in = {0}, cur = {0};
    store_profile_t prof = {0};
    bool bad = false;
    const char *err = NULL;
    if (!json_is_object(j)) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Invalid JSON");
        goto out;
    }
    opt_str(j, "type", &in.type, &bad);
    opt_str(j, "title", &in.title, &bad);
    opt_str(j, "version", &in.version, &bad);
    opt_str(j, "tag", &in.tag, &bad);
    opt_str(j, "url", &in.url, &bad);
    json_t *ai = json_object_get(j, "additionalInfo");
    if (ai && !json_is_null(ai))
        in.additional_info = http__dumps(ai);
    const char *prof_uuid = id_of(j, "deviceProfileId");
    const char *uuid = id_of(j, "id");
    bool uses_url = json_is_true(json_object_get(j, "usesUrl"));
    ota_type_t t;
    /* OtaPackageInfoDataValidator's checks and messages, in its order. */
    if (bad)
        err = "Invalid OTA package field type";
    else if (!in.type)
        err = "Type should be specified!";
    else if (ota_type_parse(in.type, &t) < 0)
        err = "Invalid OTA package type";
    else if (!prof_uuid)
        err = "OtaPackage should be assigned to device profile!";
    else if (!in.title || !*in.title)
        err = "OtaPackage title should be specified!";
    else if (!in.version || !*in.version)
        err = "OtaPackage version should be specified!";
    else if (uses_url && !(in.url && *in.url))
        err = "Ota package URL should be specified!";
    else if (strlen(in.title) > 255 || strlen(in.version) > 255 || (in.tag && strlen(in.tag) > 255))
        err = "OtaPackage title, version and tag must be at most 255 characters!";
    else if (!http__is_uuid(prof_uuid))
        err = "OtaPackage is referencing to non-existent device profile!";
    if (err) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, err);
        goto out;
    }
    int rc = store_profile_get_by_uuid(h->store, prof_uuid, &prof);
    if (rc == -ENOENT) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "OtaPackage is referencing to non-existent device profile!");
        goto out;
    }
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        goto out;
    }
    in.profile_id = prof.id;
    if (uuid && *uuid) {
        /* An update: only tag, url and additionalInfo may change (ThingsBoard's
         * validateUpdate refuses the rest). */
        store_ota_fini(&cur);
        if (!lookup(rq, rs, uuid, &cur))
            goto out;
        if (!same(cur.type, in.type))
            err = "Updating type is prohibited!";
        else if (!same(cur.title, in.title))
            err = "Updating otaPackage title is prohibited!";
        else if (!same(cur.version, in.version))
            err = "Updating otaPackage version is prohibited!";
        else if (cur.profile_id != in.profile_id)
            err = "Updating otaPackage deviceProfile is prohibited!";
        if (err) {
            http__resp_error(rs, HTTP_E_BAD_PARAMS, err);
            goto out;
        }
        free(cur.tag);
        free(cur.url);
        free(cur.additional_info);
        cur.tag = in.tag;
        cur.url = in.url;
        cur.additional_info = in.additional_info;
        in.tag = in.url = in.additional_info = NULL;
        rc = store_ota_update(h->store, &cur);
    } else {
        rc = store_ota_create(h->store, &in);
    }
    if (rc == ERR_CONFLICT) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS,
                         "OtaPackage with such title and version already exists!");
        goto out;
    }
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        goto out;
    }
    store_ota_t saved = {0};
    rc = store_ota_get_by_uuid(h->store, uuid && *uuid ? cur.uuid : in.uuid, &saved);
    if (rc < 0)
        http__resp_store_error(rs, rc);
    else
        http__resp_json(rs, 200, ota_json(h, &saved));
    store_ota_fini(&saved);
    LOG_I("http", "OTA package %s saved", uuid && *uuid ? cur.uuid : in.uuid);
out:
    store_ota_fini(&in);
    store_ota_fini(&cur);
    store_profile_fini(&prof);
    json_decref(j);
}

/* ---- the streamed upload ---- */

static void up_fail(http_ota_upload_t *u, http_err_t e, const char *msg)
{
    if (u->failed)
        return;
    u->failed = true;
    u->err = e;
    snprintf(u->msg, sizeof u->msg, "%s", msg ? msg : "");
}

static int part_begin(void *arg, const http_mp_part_t *part)
{
    http_ota_upload_t *u = arg;
    /* Spring's MultipartFile "file": the first part of that name (others are ignored). */
    u->in_file = !u->file_seen && strcmp(part->name, "file") == 0;
    if (u->in_file) {
        u->file_seen = true;
        snprintf(u->file_name, sizeof u->file_name, "%s", part->filename);
        snprintf(u->content_type, sizeof u->content_type, "%s",
                 part->content_type[0] ? part->content_type : "application/octet-stream");
    }
    return 0;
}

static int part_data(void *arg, const uint8_t *p, size_t n)
{
    http_ota_upload_t *u = arg;
    if (!u->in_file)
        return 0;
    int rc = ota_upload_write(u->up, p, n);
    if (rc == -EFBIG) {
        char m[96];
        snprintf(m, sizeof m, "OTA package file is larger than %zu bytes",
                 ota_files_cfg(u->h->cfg.ota)->max_size);
        up_fail(u, HTTP_E_TOO_LARGE, m);
    } else if (rc < 0) {
        LOG_E("http", "OTA upload of %s: write failed: %s", u->row.uuid, err_str(rc));
        up_fail(u, rc == -ENOSPC ? HTTP_E_UNAVAILABLE : HTTP_E_GENERAL,
                "Cannot store the OTA package file");
    }
    return rc;
}

static int part_end(void *arg)
{
    http_ota_upload_t *u = arg;
    u->in_file = false;
    return 0;
}

bool http__ota_upload_wanted(const char *method, const char *url)
{
    if (strcmp(method, "POST") != 0 || strncmp(url, OTA_PATH, strlen(OTA_PATH)) != 0)
        return false;
    const char *id = url + strlen(OTA_PATH);
    size_t n = strcspn(id, "/");
    return n > 0 && (id[n] == '\0' || (id[n] == '/' && id[n + 1] == '\0'));
}

http_ota_upload_t *http__ota_upload_new(http_req_t *rq)
{
    http_server_t *h = rq->srv;
    http_ota_upload_t *u = xcalloc(1, sizeof *u);
    u->h = h;
    char id[64];
    snprintf(id, sizeof id, "%.*s", (int)strcspn(rq->path + strlen(OTA_PATH), "/"),
             rq->path + strlen(OTA_PATH));
    const char *alg = http__query(rq, "checksumAlgorithm");
    const char *ct = http__header(rq, "Content-Type");
    const char *cl = http__header(rq, "Content-Length");
    http_resp_t tmp = {0};
    if (!h->cfg.ota) {
        up_fail(u, HTTP_E_GENERAL, "OTA package storage is not configured");
    } else if (!lookup(rq, &tmp, id, &u->row)) {
        /* Answer what the lookup answered (400 bad uuid, 404, 503): keep its status. */
        u->failed = true;
        u->err = HTTP_E_COUNT;
        u->err_store = tmp.status;
        snprintf(u->msg, sizeof u->msg, "%.*s", (int)tmp.body_len, tmp.body ? tmp.body : "");
    } else if (!alg || !*alg) {
        u->have_row = true;
        up_fail(u, HTTP_E_BAD_PARAMS,
                "Required request parameter 'checksumAlgorithm' for method parameter type "
                "String is not present");
    } else {
        u->have_row = true;
        int rc = 0;
        if (u->row.has_data)
            up_fail(u, HTTP_E_BAD_PARAMS, "Updating otaPackage data is prohibited!");
        else if (cl && strtoull(cl, NULL, 10) > ota_files_cfg(h->cfg.ota)->max_size + 65536)
            /* the file alone cannot fit (64 KiB for the multipart framing) */
            up_fail(u, HTTP_E_TOO_LARGE, "OTA package file is too large");
        else if ((rc = http__mp_init(&u->mp, ct, &(http_mp_cbs_t){part_begin, part_data, part_end},
                                     u)) < 0)
            up_fail(u, HTTP_E_BAD_PARAMS,
                    "Current request is not a multipart request (multipart/form-data with a "
                    "boundary expected)");
        else if ((rc = ota_upload_begin(h->cfg.ota, u->row.uuid, alg, &u->up)) == -ENOTSUP)
            up_fail(u, HTTP_E_BAD_PARAMS,
                    "Checksum algorithm not supported by coaphub (use SHA256, SHA384, SHA512 "
                    "or MD5)");
        else if (rc == -EINVAL)
            up_fail(u, HTTP_E_BAD_PARAMS, "Unknown checksum algorithm!");
        else if (rc < 0)
            up_fail(u, HTTP_E_GENERAL, "Cannot store the OTA package file");
    }
    free(tmp.body);
    return u;
}

void http__ota_upload_feed(http_ota_upload_t *u, const char *p, size_t n)
{
    if (u->failed)
        return; /* drained unread */
    int rc = http__mp_feed(&u->mp, (const uint8_t *)p, n);
    if (rc < 0 && !u->failed)
        up_fail(u, HTTP_E_BAD_PARAMS,
                rc == -EMSGSIZE ? "Multipart part headers are too large"
                                : "Malformed multipart/form-data body");
}

void http__ota_upload_free(http_ota_upload_t *u)
{
    if (!u)
        return;
    ota_upload_free(u->up);
    store_ota_fini(&u->row);
    free(u);
}

static void respond_fail(http_ota_upload_t *u, http_resp_t *rs)
{
    if (u->err == HTTP_E_COUNT) { /* the lookup's own answer */
        rs->status = u->err_store;
        rs->body = xstrdup(u->msg);
        rs->body_len = strlen(u->msg);
        rs->content_type = "application/json";
    } else {
        http__resp_error(rs, u->err, u->msg[0] ? u->msg : NULL);
    }
}

void http__h_ota_upload(http_req_t *rq, http_resp_t *rs)
{
    http_ota_upload_t *u = rq->upload;
    if (!u) { /* only reached when server.c did not stream (cannot happen for this route) */
        http__resp_error(rs, HTTP_E_GENERAL, NULL);
        return;
    }
    if (!u->failed && http__mp_finish(&u->mp) < 0)
        up_fail(u, HTTP_E_BAD_PARAMS, "Malformed multipart/form-data body");
    if (!u->failed && !u->file_seen)
        up_fail(u, HTTP_E_BAD_PARAMS, "Required request part 'file' is not present");
    if (!u->failed && ota_upload_size(u->up) == 0)
        up_fail(u, HTTP_E_BAD_PARAMS, "OtaPackage data should be specified!");
    char sum[OTA_CHECKSUM_HEX_MAX];
    const char *alg = NULL;
    int rc;
    if (!u->failed && (rc = ota_upload_finish(u->up, sum, &alg)) < 0)
        up_fail(u, HTTP_E_GENERAL, "Cannot store the OTA package file");
    const char *given = http__query(rq, "checksum");
    if (!u->failed && given && *given && strcasecmp(given, sum) != 0) {
        char m[200];
        snprintf(m, sizeof m, "Wrong checksum: the uploaded file's %s is %s", alg, sum);
        up_fail(u, HTTP_E_BAD_PARAMS, m);
    }
    if (u->failed) {
        respond_fail(u, rs);
        return;
    }
    /* Two uploads of one package may have streamed side by side: the first to get here wins,
     * the other finds the data there (re-read under the lock) and is refused, so the row's
     * checksum always describes the file under the name. */
    pthread_mutex_lock(&commit_mu);
    store_ota_t now = {0};
    rc = store_ota_get_by_uuid(rq->srv->store, u->row.uuid, &now);
    bool taken = rc == 0 && now.has_data;
    store_ota_fini(&now);
    if (rc < 0 || taken) {
        pthread_mutex_unlock(&commit_mu);
        if (rc < 0)
            http__resp_store_error(rs, rc);
        else
            http__resp_error(rs, HTTP_E_BAD_PARAMS, "Updating otaPackage data is prohibited!");
        return;
    }
    if ((rc = ota_upload_commit(u->up)) < 0) {
        pthread_mutex_unlock(&commit_mu);
        LOG_E("http", "OTA upload of %s: rename failed: %s", u->row.uuid, err_str(rc));
        http__resp_error(rs, HTTP_E_GENERAL, "Cannot store the OTA package file");
        return;
    }
    store_ota_t *o = &u->row;
    o->has_data = true;
    free(o->file_name);
    free(o->content_type);
    free(o->checksum_algorithm);
    free(o->checksum);
    o->file_name = xstrdup(u->file_name);
    o->content_type = xstrdup(u->content_type);
    o->checksum_algorithm = xstrdup(alg);
    o->checksum = xstrdup(sum);
    o->data_size = ota_upload_size(u->up);
    rc = store_ota_update(rq->srv->store, o);
    if (rc < 0) /* no row says the file is there: take it away again */
        ota_files_remove(rq->srv->cfg.ota, o->uuid);
    pthread_mutex_unlock(&commit_mu);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return;
    }
    LOG_I("http", "OTA package %s: %lld bytes uploaded, %s %s", o->uuid, (long long)o->data_size,
          alg, sum);
    http__resp_json(rs, 200, ota_json(rq->srv, o));
}

/* ---- reads ---- */

void http__h_ota_info(http_req_t *rq, http_resp_t *rs)
{
    store_ota_t o;
    if (!lookup(rq, rs, rq->params[0], &o))
        return;
    http__resp_json(rs, 200, ota_json(rq->srv, &o));
    store_ota_fini(&o);
}

void http__h_ota_download(http_req_t *rq, http_resp_t *rs)
{
    store_ota_t o;
    if (!lookup(rq, rs, rq->params[0], &o))
        return;
    int fd = -ENOENT;
    struct stat st;
    if (!o.has_data) {
        /* ThingsBoard: a URL package answers an empty 400. */
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "OtaPackage has no data to download");
    } else if (!rq->srv->cfg.ota || (fd = ota_files_open_image(rq->srv->cfg.ota, o.uuid)) < 0 ||
               fstat(fd, &st) != 0 || st.st_size != o.data_size) {
        LOG_E("http", "OTA package %s: image file missing or of the wrong size", o.uuid);
        http__resp_error(rs, HTTP_E_GENERAL, "OTA package file is missing");
        if (fd >= 0)
            close(fd);
    } else {
        /* libmicrohttpd sends from the descriptor (sendfile/pread) and closes it. */
        struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
        if (!r) {
            close(fd);
            http__resp_error(rs, HTTP_E_GENERAL, NULL);
        } else {
            const char *fn = o.file_name && *o.file_name ? o.file_name : o.uuid;
            char *cd = xasprintf("attachment;filename=%s", fn);
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, cd);
            MHD_add_response_header(r, "x-filename", fn);
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    o.content_type && *o.content_type ? o.content_type
                                                                      : "application/octet-stream");
            MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
            free(cd);
            rs->stream = r;
            rs->status = 200;
        }
    }
    store_ota_fini(&o);
}

/* What one package list reads, for each chunk of its answer (page.c). */
typedef struct list_ctx {
    http_server_t *srv;
    char *text;
    const char *type, *sort; /* literals */
    int64_t profile_id;
    bool has_data_only, asc;
} list_ctx_t;

static void list_ctx_free(void *arg)
{
    list_ctx_t *c = arg;
    free(c->text);
    free(c);
}

static int list_fetch(void *arg, int64_t chunk, int64_t size, json_t *rows, int64_t *total)
{
    list_ctx_t *c = arg;
    store_ota_page_t pg = {0};
    int rc = store_ota_list(c->srv->store, c->type, c->profile_id, c->has_data_only, c->text,
                            c->sort, c->asc, chunk, size, &pg);
    for (size_t i = 0; rc == 0 && i < pg.n; i++)
        json_array_append_new(rows, ota_json(c->srv, &pg.items[i]));
    *total = pg.total;
    store_ota_page_fini(&pg);
    return rc;
}

/* type: a literal (ota_type_name) or NULL. */
static void list(http_req_t *rq, http_resp_t *rs, const char *type, int64_t profile_id,
                 bool has_data_only)
{
    static const char *const props[] = {"createdTime", "title", "version", "type", "dataSize"};
    int64_t page_size, page;
    const char *sort;
    bool asc;
    if (!http__page_args(rq, rs, &page, &page_size) ||
        !http__sort_args(rq, rs, props, sizeof props / sizeof props[0], &sort, &asc))
        return;
    for (size_t i = 0; sort && i < sizeof props / sizeof props[0]; i++)
        if (strcmp(sort, props[i]) == 0)
            sort = props[i]; /* outlives the request: the answer may be streamed */
    const char *text = http__query(rq, "textSearch");
    list_ctx_t *c = xcalloc(1, sizeof *c);
    *c = (list_ctx_t){.srv = rq->srv,
                      .text = text && *text ? xstrdup(text) : NULL,
                      .type = type,
                      .sort = sort,
                      .profile_id = profile_id,
                      .has_data_only = has_data_only,
                      .asc = asc};
    http__page_answer(rq, rs, page, page_size, list_fetch, c, list_ctx_free);
}

void http__h_ota_list(http_req_t *rq, http_resp_t *rs)
{
    list(rq, rs, NULL, 0, false);
}

void http__h_ota_list_profile(http_req_t *rq, http_resp_t *rs)
{
    ota_type_t t;
    if (ota_type_parse(rq->params[1], &t) < 0) {
        char m[96];
        snprintf(m, sizeof m, "Invalid OTA package type: %.40s", rq->params[1]);
        http__resp_error(rs, HTTP_E_BAD_PARAMS, m);
        return;
    }
    if (!http__is_uuid(rq->params[0])) {
        char m[96];
        snprintf(m, sizeof m, "Invalid UUID string: %.40s", rq->params[0]);
        http__resp_error(rs, HTTP_E_BAD_PARAMS, m);
        return;
    }
    char lower[STORE_UUID_LEN + 1]; /* UUID.fromString takes either case; ours are lower */
    for (size_t i = 0; i <= STORE_UUID_LEN; i++)
        lower[i] = (char)(rq->params[0][i] >= 'A' && rq->params[0][i] <= 'F' ? rq->params[0][i] + 32
                                                                             : rq->params[0][i]);
    store_profile_t p = {0};
    int rc = store_profile_get_by_uuid(rq->srv->store, lower, &p);
    if (rc < 0)
        http__resp_store_error(rs, rc);
    else
        list(rq, rs, ota_type_name(t), p.id, true);
    store_profile_fini(&p);
}

/* ---- DELETE ---- */

typedef struct ref_scan {
    const char *uuid;
    bool by_profile;
} ref_scan_t;

static void scan_profile(void *arg, const store_profile_t *p)
{
    ref_scan_t *r = arg;
    if ((p->firmware_id && strcmp(p->firmware_id, r->uuid) == 0) ||
        (p->software_id && strcmp(p->software_id, r->uuid) == 0))
        r->by_profile = true;
}

void http__h_ota_delete(http_req_t *rq, http_resp_t *rs)
{
    store_ota_t o;
    if (!lookup(rq, rs, rq->params[0], &o))
        return;
    http_server_t *h = rq->srv;
    int rc = store_ota_delete(h->store, o.id);
    if (rc == -EBUSY) {
        /* ThingsBoard names the foreign key that refused the delete. */
        ref_scan_t r = {.uuid = o.uuid};
        store_profile_foreach(h->store, scan_profile, &r);
        bool sw = o.type && strcmp(o.type, "SOFTWARE") == 0;
        char m[96];
        snprintf(m, sizeof m, "The %s referenced by the %s cannot be deleted!",
                 sw ? "software" : "otaPackage", r.by_profile ? "device profile" : "devices");
        http__resp_error(rs, HTTP_E_BAD_PARAMS, m);
    } else if (rc < 0) {
        http__resp_store_error(rs, rc);
    } else {
        if (h->cfg.ota && (rc = ota_files_remove(h->cfg.ota, o.uuid)) < 0)
            LOG_W("http", "OTA package %s deleted, its file not: %s (removed at next start)",
                  o.uuid, err_str(rc));
        LOG_I("http", "OTA package %s deleted", o.uuid);
        http__resp_json(rs, 200, NULL);
    }
    store_ota_fini(&o);
}
