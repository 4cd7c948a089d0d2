/* rows.c — the rows the backends read into structs: each table's column list and the map from
 * those columns to the struct's fields (backend.h, store_row_map_t). They are the same on every
 * backend (one schema, schema.h), so they are written once; a backend's statements select
 * STORE_*_COLS and read the result with its row reader (sqlite_db.c, pg_db.c).
 */
#include "store/backend.h"

/* The type column is the enum's value; STORE_COL_INT writes an int. */
_Static_assert(sizeof(store_cred_type_t) == sizeof(int), "credential type read as int");

const store_row_map_t store__device_row = {
    sizeof(store_device_t),
    8,
    {STORE_COL(I64, store_device_t, id), STORE_COL(UUID, store_device_t, uuid),
     STORE_COL(I64, store_device_t, created_ms), STORE_COL(STR, store_device_t, name),
     STORE_COL(STR, store_device_t, type), STORE_COL(STR, store_device_t, label),
     STORE_COL(STR, store_device_t, additional_info), STORE_COL(I64, store_device_t, version)}};

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
