/* codes.c — the one table from REST errors to HTTP status and ThingsBoard error JSON (§8.2).
 *
 * Every failure a handler reports goes through here, so a client always gets
 * {"status","message","errorCode","timestamp"} with a status that agrees with the body. The
 * few telemetry errors TB answers in plain text are the exception and use http__resp_text.
 * A failed store call goes through http__resp_store_error, so a database outage is 503 (with
 * Retry-After, added by server.c) from every handler, never a 500 from some.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <string.h>

static const http_err_info_t table[HTTP_E_COUNT] = {
    [HTTP_E_GENERAL] = {500, 2, "Internal server error"},
    [HTTP_E_AUTH] = {401, 10, "Authentication failed"},
    [HTTP_E_BAD_LOGIN] = {401, 10, "Invalid username or password"},
    [HTTP_E_JWT_EXPIRED] = {401, 11, "Token has expired"},
    [HTTP_E_PERMISSION] = {403, 20, "You don't have permission to perform this operation!"},
    [HTTP_E_BAD_PARAMS] = {400, 31, "Invalid request parameters"},
    [HTTP_E_NOT_FOUND] = {404, 32, "Requested item wasn't found!"},
    [HTTP_E_NO_ROUTE] = {404, 32, "Not found"},
    [HTTP_E_METHOD] = {405, 31, "Request method not supported"},
    [HTTP_E_VERSION] = {409, 35, "The entity was already changed by someone else"},
    [HTTP_E_TOO_LARGE] = {413, 31, "Request body is too large"},
    [HTTP_E_TOO_MANY] = {429, 33, "Too many requests"},
    [HTTP_E_UNAVAILABLE] = {503, 2, "Service unavailable"},
    [HTTP_E_RPC_BAD_REPLY] = {406, 2, "Device reply is not valid JSON"},
    [HTTP_E_RPC_NO_REPLY_V1] = {408, 2, "Timeout waiting for the device's reply"},
    [HTTP_E_RPC_NOT_DELIVERED_V1] = {409, 2, "Device is not subscribed to RPC requests"},
    [HTTP_E_RPC_TIMEOUT_V2] = {504, 2, "Timeout to process the RPC call"},
    [HTTP_E_NOT_IMPLEMENTED] = {501, 2, "Transfer coding not implemented"},
};

const http_err_info_t *http__err_info(http_err_t e)
{
    ASSERT((unsigned)e < HTTP_E_COUNT);
    return &table[e];
}

char *http__error_json(int status, const char *message, int error_code, int64_t ts_ms)
{
    json_t *j = json_pack("{s:i, s:s, s:i, s:I}", "status", status, "message",
                          message ? message : "", "errorCode", error_code, "timestamp",
                          (json_int_t)ts_ms);
    if (!j) /* message was not valid UTF-8; never echo it raw */
        j = json_pack("{s:i, s:s, s:i, s:I}", "status", status, "message", "Invalid request",
                      "errorCode", error_code, "timestamp", (json_int_t)ts_ms);
    char *s = http__dumps(j);
    json_decref(j);
    return s;
}

void http__resp_error(http_resp_t *r, http_err_t e, const char *message)
{
    const http_err_info_t *info = http__err_info(e);
    free(r->body);
    r->status = info->status;
    r->body = http__error_json(info->status, message ? message : info->message,
                               info->error_code, clock_wall_ms());
    r->body_len = strlen(r->body);
    r->content_type = "application/json";
}

http_err_t http__err_from_store(int err)
{
    switch (err) {
    case -ENOENT:
        return HTTP_E_NOT_FOUND;
    case -EINVAL:
    case ERR_CONFLICT:
        return HTTP_E_BAD_PARAMS;
    /* The database cannot take it now and will again without anyone's help: PostgreSQL down
     * or restarting, a full disk, a read-only database, SQLite locked by another process, a
     * bounded wait that ran out. The same set the device API answers 5.03 (api/codes.c). */
    case ERR_UNAVAILABLE:
    case -ENOSPC:
    case -EROFS:
    case -EBUSY:
    case -EAGAIN:
    case ERR_TIMEOUT:
        return HTTP_E_UNAVAILABLE;
    default: /* -EIO, -ENOMEM, ERR_STORE: the storage is failing, not busy */
        return HTTP_E_GENERAL;
    }
}

void http__resp_store_error(http_resp_t *r, int err)
{
    http__resp_error(r, http__err_from_store(err), NULL);
}

char *http__dumps(const json_t *j)
{
    /* 15 significant digits print what people typed (9.2 stays 9.2, not 9.199999999999999);
     * integers are json_integer and always print exactly. */
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    ASSERT(s != NULL);
    /* jansson allocates with malloc by default, so callers free() it like our strings. */
    return s;
}

void http__resp_json(http_resp_t *r, int status, json_t *j)
{
    free(r->body);
    r->status = status;
    r->body = j ? http__dumps(j) : NULL;
    r->body_len = r->body ? strlen(r->body) : 0;
    r->content_type = "application/json";
    json_decref(j);
}

void http__resp_json_text(http_resp_t *r, int status, char *text)
{
    free(r->body);
    r->status = status;
    r->body = text;
    r->body_len = strlen(text);
    r->content_type = "application/json";
}

void http__resp_text(http_resp_t *r, int status, const char *text)
{
    free(r->body);
    r->status = status;
    r->body = xstrdup(text);
    r->body_len = strlen(r->body);
    r->content_type = "text/plain; charset=utf-8";
}
