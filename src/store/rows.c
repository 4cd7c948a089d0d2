/* rows.c — the rows the backends read into structs: each table's column list and the map from
 * those columns to the struct's fields (backend.h, store_row_map_t). They are the same on every
 * backend (one schema, schema.h), so they are written once; a backend's statements select
 * STORE_*_COLS and read the result with its row reader (sqlite_db.c, pg_db.c).
 */
#include "store/backend.h"

#include <stdlib.h>
#include <string.h>

/* The type column is the enum's value; STORE_COL_INT writes an int. */
_Static_assert(sizeof(store_cred_type_t) == sizeof(int), "credential type read as int");

const store_row_map_t store__device_row = {
    sizeof(store_device_t),
    13,
    {STORE_COL(I64, store_device_t, id), STORE_COL(UUID, store_device_t, uuid),
     STORE_COL(I64, store_device_t, created_ms), STORE_COL(STR, store_device_t, name),
     STORE_COL(STR, store_device_t, type), STORE_COL(STR, store_device_t, label),
     STORE_COL(STR, store_device_t, additional_info), STORE_COL(I64, store_device_t, version),
     STORE_COL(I64, store_device_t, profile_id), STORE_COL(UUID, store_device_t, profile_uuid),
     STORE_COL(STR, store_device_t, firmware_id), STORE_COL(STR, store_device_t, software_id),
     STORE_COL(STR, store_device_t, device_data)}};

const store_row_map_t store__profile_row = {
    sizeof(store_profile_t),
    11,
    {STORE_COL(I64, store_profile_t, id), STORE_COL(UUID, store_profile_t, uuid),
     STORE_COL(I64, store_profile_t, created_ms), STORE_COL(STR, store_profile_t, name),
     STORE_COL(BOOL, store_profile_t, is_default), STORE_COL(STR, store_profile_t, provision_type),
     STORE_COL(STR, store_profile_t, provision_key), STORE_COL(STR, store_profile_t, firmware_id),
     STORE_COL(STR, store_profile_t, software_id), STORE_COL(STR, store_profile_t, data),
     STORE_COL(I64, store_profile_t, version)}};

const store_row_map_t store__ota_row = {
    sizeof(store_ota_t),
    17,
    {STORE_COL(I64, store_ota_t, id), STORE_COL(UUID, store_ota_t, uuid),
     STORE_COL(I64, store_ota_t, created_ms), STORE_COL(I64, store_ota_t, profile_id),
     STORE_COL(UUID, store_ota_t, profile_uuid), STORE_COL(STR, store_ota_t, type),
     STORE_COL(STR, store_ota_t, title), STORE_COL(STR, store_ota_t, version),
     STORE_COL(STR, store_ota_t, tag), STORE_COL(STR, store_ota_t, url),
     STORE_COL(BOOL, store_ota_t, has_data), STORE_COL(STR, store_ota_t, file_name),
     STORE_COL(STR, store_ota_t, content_type), STORE_COL(STR, store_ota_t, checksum_algorithm),
     STORE_COL(STR, store_ota_t, checksum), STORE_COL(I64, store_ota_t, data_size),
     STORE_COL(STR, store_ota_t, additional_info)}};

const store_row_map_t store__cred_row = {
    sizeof(store_cred_t),
    7,
    {STORE_COL(UUID, store_cred_t, uuid), STORE_COL(I64, store_cred_t, device_id),
     STORE_COL(I64, store_cred_t, created_ms), STORE_COL(INT, store_cred_t, type),
     STORE_COL(STR, store_cred_t, cred_id), STORE_COL(STR, store_cred_t, cred_value),
     STORE_COL(I64, store_cred_t, version)}};

const store_row_map_t store__rpc_row = {
    sizeof(store_rpc_t),
    11,
    {STORE_COL(UUID, store_rpc_t, uuid), STORE_COL(I64, store_rpc_t, device_id),
     STORE_COL(I64, store_rpc_t, created_ms), STORE_COL(I64, store_rpc_t, expiration_ms),
     STORE_COL(I64, store_rpc_t, request_id), STORE_COL(STR, store_rpc_t, method),
     STORE_COL(STR, store_rpc_t, params), STORE_COL(STR, store_rpc_t, status),
     STORE_COL(STR, store_rpc_t, response), STORE_COL(BOOL, store_rpc_t, oneway),
     STORE_COL(BOOL, store_rpc_t, persistent)}};

const store_row_map_t store__user_row = {
    sizeof(store_user_t),
    8,
    {STORE_COL(I64, store_user_t, id), STORE_COL(UUID, store_user_t, uuid),
     STORE_COL(I64, store_user_t, created_ms), STORE_COL(STR, store_user_t, email),
     STORE_COL(STR, store_user_t, password_hash), STORE_COL(STR, store_user_t, authority),
     STORE_COL(STR, store_user_t, first_name), STORE_COL(STR, store_user_t, last_name)}};

const store_row_map_t store__i64_row = {sizeof(store_i64_t), 1, {STORE_COL(I64, store_i64_t, v)}};
const store_row_map_t store__text_row = {
    sizeof(store_text_t), 1, {STORE_COL(STR, store_text_t, v)}};

void store__text_fini(void *item)
{
    free(((store_text_t *)item)->v);
}

void store__rows_fini(store_rows_t *r, void (*fini)(void *item))
{
    for (size_t i = 0; fini && i < r->n; i++)
        fini((char *)r->items + i * r->size);
    free(r->items);
    memset(r, 0, sizeof(*r));
}

void *store__rows_push(store_rows_t *r, size_t size)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->items = xrealloc(r->items, r->cap * size);
    }
    r->size = size;
    void *item = (char *)r->items + r->n++ * size;
    memset(item, 0, size);
    return item;
}
