/* dispatch.c — store.h's synchronous calls (devices, credentials, reads and deletes of
 * attributes and time series, RPC records, users, settings), handed to the open backend.
 *
 * Invariant: what store.h promises whatever the backend is kept here, once: arguments are
 * checked before any backend sees them (-EINVAL, or an empty result where store.h says so),
 * out-parameters promised on every return are set, and a delete of points or devices is
 * announced to the merge before its transaction starts (store__log_deleting, merge.c says
 * why), and corruption a backend reports is recorded (store__health_note: logged once,
 * /readyz not ready).
 *
 * Not here: any work of the calls themselves (the backend's files: sqlite_devices.c,
 * sqlite_creds.c, sqlite_kv.c, sqlite_history.c, sqlite_admin.c), and device data writes,
 * which go through the writer (writer.c).
 */
#include "store/store_int.h"

#include <errno.h>
#include <string.h>

/* ---- devices ---- */

int store_device_create(store_t *s, store_device_t *d)
{
    return store_device_create_with_cred(s, d, NULL);
}

int store_device_create_with_cred(store_t *s, store_device_t *d, store_cred_t *cred)
{
    if (!d->name || !d->name[0] || (cred && (!cred->cred_id || !cred->cred_id[0])))
        return -EINVAL;
    /* A profile made here for a new type stays if the device then fails (ThingsBoard's
     * findOrCreateDeviceProfile does the same); a profile deleted in between fails the insert
     * by its foreign key. */
    int r = store__device_profile_resolve(s, d);
    return r != 0 ? r : store__health_note(s, s->be->device_create(s->db, d, cred));
}

int store_device_update(store_t *s, store_device_t *d)
{
    if (!d->name || !d->name[0])
        return -EINVAL;
    int r = store__device_profile_resolve(s, d);
    return r != 0 ? r : store__health_note(s, s->be->device_update(s->db, d));
}

int store_device_get(store_t *s, int64_t id, store_device_t *out)
{
    return store__health_note(s, s->be->device_get(s->db, id, out));
}

int store_device_get_by_uuid(store_t *s, const char *uuid, store_device_t *out)
{
    return uuid ? store__health_note(s, s->be->device_get_by_uuid(s->db, uuid, out)) : -EINVAL;
}

int store_device_get_by_name(store_t *s, const char *name, store_device_t *out)
{
    return name ? store__health_note(s, s->be->device_get_by_name(s->db, name, out)) : -EINVAL;
}

int store_device_delete(store_t *s, int64_t id)
{
    store__log_deleting(s);
    return store__health_note(s, s->be->device_delete(s->db, id));
}

int store_device_list(store_t *s, const char *text_search, const char *type,
                      const char *sort_property, bool ascending, int64_t page, int64_t page_size,
                      store_device_page_t *out)
{
    memset(out, 0, sizeof(*out));
    if (page < 0 || page_size <= 0 || page > INT64_MAX / page_size)
        return -EINVAL;
    return store__health_note(s, s->be->device_list(s->db, text_search, type, sort_property,
                                                    ascending, page, page_size, out));
}

/* ---- credentials ---- */

int store_cred_set(store_t *s, store_cred_t *c)
{
    if (!c->cred_id || !c->cred_id[0] ||
        (c->type != CRED_ACCESS_TOKEN && c->type != CRED_X509 && c->type != CRED_PSK))
        return -EINVAL;
    return store__health_note(s, s->be->cred_set(s->db, c));
}

int store_cred_get_by_device(store_t *s, int64_t device_id, store_cred_t *out)
{
    return store__health_note(s, s->be->cred_get_by_device(s->db, device_id, out));
}

int store_cred_get_by_id(store_t *s, const char *cred_id, store_cred_t *out)
{
    return cred_id ? store__health_note(s, s->be->cred_get_by_id(s->db, cred_id, out)) : -EINVAL;
}

int store_cred_foreach(store_t *s, void (*fn)(void *arg, const store_cred_t *c), void *arg)
{
    return store__health_note(s, s->be->cred_foreach(s->db, fn, arg));
}

/* ---- attributes and time series ---- */

int store_attr_get(store_t *s, int64_t device_id, store_scope_t scope, const char *const *keys,
                   size_t n_keys, store_kv_list_t *out)
{
    return store__health_note(s, s->be->attr_get(s->db, device_id, scope, keys, n_keys, out));
}

int store_attr_keys(store_t *s, int64_t device_id, store_scope_t scope, store_kv_list_t *out)
{
    return store__health_note(s, s->be->attr_keys(s->db, device_id, scope, out));
}

int store_attr_delete(store_t *s, int64_t device_id, store_scope_t scope, const char *const *keys,
                      size_t n_keys, size_t *n_deleted)
{
    if (n_deleted)
        *n_deleted = 0;
    return store__health_note(s,
                              s->be->attr_delete(s->db, device_id, scope, keys, n_keys, n_deleted));
}

int store_ts_keys(store_t *s, int64_t device_id, store_kv_list_t *out)
{
    return store__health_note(s, s->be->ts_keys(s->db, device_id, out));
}

int store_ts_latest(store_t *s, int64_t device_id, const char *const *keys, size_t n_keys,
                    store_kv_list_t *out)
{
    return store__health_note(s, s->be->ts_latest(s->db, device_id, keys, n_keys, out));
}

int store_ts_history(store_t *s, int64_t device_id, const char *key, int64_t start_ms,
                     int64_t end_ms, int64_t interval_ms, store_agg_t agg, int64_t limit,
                     bool ascending, store_kv_list_t *out)
{
    if (!key || agg < STORE_AGG_NONE || agg > STORE_AGG_COUNT)
        return -EINVAL;
    if (start_ms > end_ms)
        return 0;
    return store__health_note(s, s->be->ts_history(s->db, device_id, key, start_ms, end_ms,
                                                   interval_ms, agg, limit, ascending, out));
}

int store_ts_delete(store_t *s, int64_t device_id, const char *const *keys, size_t n_keys,
                    int64_t start_ms, int64_t end_ms, bool delete_latest)
{
    if (!keys || n_keys == 0)
        return -EINVAL;
    store__log_deleting(s);
    return store__health_note(
        s, s->be->ts_delete(s->db, device_id, keys, n_keys, start_ms, end_ms, delete_latest));
}

/* ---- RPC records ---- */

int store_rpc_create(store_t *s, store_rpc_t *r)
{
    if (!r->method || !r->method[0])
        return -EINVAL;
    return store__health_note(s, s->be->rpc_create(s->db, r));
}

int store_rpc_set_status(store_t *s, const char *uuid, const char *status, const char *response)
{
    if (!uuid || !status)
        return -EINVAL;
    return store__health_note(s, s->be->rpc_set_status(s->db, uuid, status, response));
}

int store_rpc_get(store_t *s, const char *uuid, store_rpc_t *out)
{
    return uuid ? store__health_note(s, s->be->rpc_get(s->db, uuid, out)) : -EINVAL;
}

int store_rpc_max_request_id(store_t *s, int64_t device_id, int64_t *out)
{
    return store__health_note(s, s->be->rpc_max_request_id(s->db, device_id, out));
}

/* ---- users ---- */

int store_user_create(store_t *s, store_user_t *u)
{
    if (!u->email || !u->email[0] || !u->password_hash)
        return -EINVAL;
    return store__health_note(s, s->be->user_create(s->db, u));
}

int store_user_get_by_email(store_t *s, const char *email, store_user_t *out)
{
    return email ? store__health_note(s, s->be->user_get_by_email(s->db, email, out)) : -EINVAL;
}

int store_user_get_by_uuid(store_t *s, const char *uuid, store_user_t *out)
{
    return uuid ? store__health_note(s, s->be->user_get_by_uuid(s->db, uuid, out)) : -EINVAL;
}

int store_user_set_password(store_t *s, int64_t id, const char *password_hash)
{
    return password_hash ? store__health_note(s, s->be->user_set_password(s->db, id, password_hash))
                         : -EINVAL;
}

int store_user_count(store_t *s, int64_t *out)
{
    return store__health_note(s, s->be->user_count(s->db, out));
}

/* ---- settings ---- */

int store_setting_get(store_t *s, const char *key, char **out)
{
    return key ? store__health_note(s, s->be->setting_get(s->db, key, out)) : -EINVAL;
}

int store_setting_set(store_t *s, const char *key, const char *value)
{
    if (!key || !value)
        return -EINVAL;
    return store__health_note(s, s->be->setting_set(s->db, key, value));
}
