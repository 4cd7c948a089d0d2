/* types.c — the value types of store.h: key/value lists, the names ThingsBoard gives scopes,
 * aggregations and credential types, random UUIDs, and the _fini functions of the structures
 * the store hands out.
 *
 * Invariant: nothing here touches a database, a lock or the store handle; every backend and
 * every caller shares these, so a name or a destructor exists once.
 */
#include "store/store_int.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void store_kv_list_push(store_kv_list_t *l, const store_kv_t *kv)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    store_kv_t *d = &l->items[l->n++];
    *d = *kv;
    d->key = xstrdup(kv->key);
    d->s = xstrdup(kv->s);
}

void store_kv_list_fini(store_kv_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].key);
        free(l->items[i].s);
    }
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

ssize_t store__kv_list_find(const store_kv_list_t *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return (ssize_t)i;
    return -1;
}

const char *store_scope_name(store_scope_t s)
{
    switch (s) {
    case SCOPE_CLIENT:
        return "CLIENT_SCOPE";
    case SCOPE_SERVER:
        return "SERVER_SCOPE";
    case SCOPE_SHARED:
        return "SHARED_SCOPE";
    }
    return "UNKNOWN_SCOPE";
}

int store_scope_parse(const char *name, store_scope_t *out)
{
    static const store_scope_t all[] = {SCOPE_CLIENT, SCOPE_SERVER, SCOPE_SHARED};
    for (size_t i = 0; name && i < 3; i++) {
        if (strcmp(name, store_scope_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

int store_agg_parse(const char *name, store_agg_t *out)
{
    static const char *const names[] = {"NONE", "MIN", "MAX", "AVG", "SUM", "COUNT"};
    for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (store_agg_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *store_cred_type_name(store_cred_type_t t)
{
    switch (t) {
    case CRED_ACCESS_TOKEN:
        return "ACCESS_TOKEN";
    case CRED_X509:
        return "X509_CERTIFICATE";
    case CRED_PSK:
        return "PSK";
    }
    return "UNKNOWN";
}

int store_cred_type_parse(const char *name, store_cred_type_t *out)
{
    if (name && strcmp(name, "ACCESS_TOKEN") == 0)
        *out = CRED_ACCESS_TOKEN;
    else if (name && strcmp(name, "X509_CERTIFICATE") == 0)
        *out = CRED_X509;
    else if (name && strcmp(name, "PSK") == 0)
        *out = CRED_PSK;
    else
        return -EINVAL;
    return 0;
}

void store_uuid_v4(char out[static STORE_UUID_LEN + 1])
{
    uint8_t b[16];
    /* A failing CSPRNG is not something to limp on with: ids must be unguessable. */
    ASSERT(RAND_bytes(b, sizeof(b)) == 1);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, STORE_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

void store_device_fini(store_device_t *d)
{
    if (!d)
        return;
    free(d->name);
    free(d->type);
    free(d->label);
    free(d->additional_info);
    free(d->firmware_id);
    free(d->software_id);
    free(d->device_data);
    d->name = d->type = d->label = d->additional_info = NULL;
    d->firmware_id = d->software_id = d->device_data = NULL;
}

void store_device_page_fini(store_device_page_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        store_device_fini(&p->items[i]);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

void store_cred_fini(store_cred_t *c)
{
    if (!c)
        return;
    free(c->cred_id);
    free(c->cred_value);
    c->cred_id = c->cred_value = NULL;
}

void store_rpc_fini(store_rpc_t *r)
{
    if (!r)
        return;
    free(r->method);
    free(r->params);
    free(r->status);
    free(r->response);
    r->method = r->params = r->status = r->response = NULL;
}

void store_user_fini(store_user_t *u)
{
    if (!u)
        return;
    free(u->email);
    free(u->password_hash);
    free(u->authority);
    free(u->first_name);
    free(u->last_name);
    u->email = u->password_hash = u->authority = u->first_name = u->last_name = NULL;
}
