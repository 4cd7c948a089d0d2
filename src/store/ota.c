/* ota.c — OTA package rows (store.h), written once for every backend on its administrative
 * statements (backend.h store_adm_t). The image bytes are not here: the OTA module keeps them
 * in files, so a 10 MB image neither bloats every backup nor passes through the WAL.
 *
 * Invariant: a package assigned to a device or a profile (their firmware_id/software_id) is
 * never deleted; the check and the delete run in one write transaction.
 */
#include "store/store_int.h"

#include "core/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OCOLS STORE_OTA_COLS

static bool type_ok(const char *t)
{
    return t && (strcmp(t, "FIRMWARE") == 0 || strcmp(t, "SOFTWARE") == 0);
}

static bool ota_ok(const store_ota_t *o)
{
    return type_ok(o->type) && o->title && o->title[0] && o->version && o->version[0] &&
           o->profile_id > 0;
}

int store_ota_create(store_t *s, store_ota_t *o)
{
    if (!ota_ok(o))
        return -EINVAL;
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, true, &a);
    if (r != 0)
        return r;
    store_cell_t pid = STORE_INT(o->profile_id);
    int64_t found = 0;
    r = store__adm_i64(a, s, "SELECT id FROM device_profile WHERE id = $1", &pid, 1, &found);
    char uuid[STORE_UUID_LEN + 1];
    store_uuid_v4(uuid);
    int64_t now = clock_wall_ms();
    store_cell_t args[] = {STORE_TEXT(uuid),
                           STORE_INT(now),
                           STORE_INT(o->profile_id),
                           STORE_TEXT(o->type),
                           STORE_TEXT(o->title),
                           STORE_TEXT(o->version),
                           STORE_TEXT(o->tag),
                           STORE_TEXT(o->url),
                           STORE_INT(o->has_data),
                           STORE_TEXT(o->file_name),
                           STORE_TEXT(o->content_type),
                           STORE_TEXT(o->checksum_algorithm),
                           STORE_TEXT(o->checksum),
                           STORE_INT(o->data_size),
                           STORE_TEXT(o->additional_info)};
    int64_t id = 0;
    if (r == 0)
        r = store__adm_i64(a, s,
                           "INSERT INTO ota_package(uuid, created_time, device_profile_id, type,"
                           " title, version, tag, url, has_data, file_name, content_type,"
                           " checksum_algorithm, checksum, data_size, additional_info)"
                           " VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                           " CASE WHEN $9 = 1 THEN TRUE ELSE FALSE END,"
                           " $10, $11, $12, $13, $14, $15) RETURNING id",
                           args, 15, &id);
    int e = s->be->adm_end(a, r == 0);
    if (r == 0 && e == 0) {
        o->id = id;
        memcpy(o->uuid, uuid, sizeof(uuid));
        o->created_ms = now;
    }
    return r != 0 ? r : e;
}

int store_ota_update(store_t *s, store_ota_t *o)
{
    if (!ota_ok(o))
        return -EINVAL;
    store_cell_t args[] = {STORE_INT(o->id),
                           STORE_INT(o->profile_id),
                           STORE_TEXT(o->type),
                           STORE_TEXT(o->title),
                           STORE_TEXT(o->version),
                           STORE_TEXT(o->tag),
                           STORE_TEXT(o->url),
                           STORE_INT(o->has_data),
                           STORE_TEXT(o->file_name),
                           STORE_TEXT(o->content_type),
                           STORE_TEXT(o->checksum_algorithm),
                           STORE_TEXT(o->checksum),
                           STORE_INT(o->data_size),
                           STORE_TEXT(o->additional_info)};
    int64_t changes = 0;
    int r = store__adm_run(s, true,
                           "UPDATE ota_package SET device_profile_id = $2, type = $3, title = $4,"
                           " version = $5, tag = $6, url = $7,"
                           " has_data = CASE WHEN $8 = 1 THEN TRUE ELSE FALSE END,"
                           " file_name = $9, content_type = $10, checksum_algorithm = $11,"
                           " checksum = $12, data_size = $13, additional_info = $14"
                           " WHERE id = $1",
                           args, 14, NULL, NULL, &changes);
    return r != 0 ? r : changes > 0 ? 0 : -ENOENT;
}

int store_ota_get_by_uuid(store_t *s, const char *uuid, store_ota_t *out)
{
    if (!uuid)
        return -EINVAL;
    store_cell_t arg = STORE_TEXT(uuid);
    return store__adm_get(s, "SELECT " OCOLS " FROM ota_package WHERE uuid = $1", &arg, 1,
                          &store__ota_row, out);
}

int store_ota_delete(store_t *s, int64_t id)
{
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, true, &a);
    if (r != 0)
        return r;
    store_cell_t arg = STORE_INT(id);
    int64_t users = 0;
    r = store__adm_i64(a, s,
                       "SELECT (SELECT COUNT(*) FROM device d WHERE d.firmware_id = o.uuid"
                       " OR d.software_id = o.uuid) + (SELECT COUNT(*) FROM device_profile p"
                       " WHERE p.firmware_id = o.uuid OR p.software_id = o.uuid)"
                       " FROM ota_package o WHERE o.id = $1",
                       &arg, 1, &users);
    if (r == 0 && users > 0)
        r = -EBUSY;
    if (r == 0)
        r = s->be->adm_sql(a, "DELETE FROM ota_package WHERE id = $1", &arg, 1, NULL, NULL, NULL);
    int e = s->be->adm_end(a, r == 0);
    return r != 0 ? r : e;
}

/* $1 type or NULL, $2 profile id or 0, $3 1 = uploaded only, $4 LIKE pattern or NULL. */
#define OWHERE                                                                                     \
    " FROM ota_package WHERE (CAST($1 AS TEXT) IS NULL OR type = CAST($1 AS TEXT))"                \
    " AND ($2 = 0 OR device_profile_id = $2) AND ($3 = 0 OR has_data)"                             \
    " AND (CAST($4 AS TEXT) IS NULL OR lower(title) LIKE lower(CAST($4 AS TEXT)) ESCAPE '\\')"
#define OLIST(col, dir)                                                                            \
    "SELECT " OCOLS OWHERE " ORDER BY " col " " dir ", id " dir " LIMIT $5 OFFSET $6"

static const struct {
    const char *prop, *asc, *desc;
} ota_sorts[] = {
    {"createdTime", OLIST("created_time", "ASC"), OLIST("created_time", "DESC")},
    {"title", OLIST("title COLLATE \"binary\"", "ASC"), OLIST("title COLLATE \"binary\"", "DESC")},
    {"version", OLIST("version COLLATE \"binary\"", "ASC"),
     OLIST("version COLLATE \"binary\"", "DESC")},
    {"type", OLIST("type", "ASC"), OLIST("type", "DESC")},
    {"dataSize", OLIST("data_size", "ASC"), OLIST("data_size", "DESC")},
    {"tag", OLIST("tag COLLATE \"binary\"", "ASC"), OLIST("tag COLLATE \"binary\"", "DESC")},
};

static void ota_fini_item(void *o)
{
    store_ota_fini(o);
}

int store_ota_list(store_t *s, const char *type, int64_t profile_id, bool has_data_only,
                   const char *text_search, const char *sort_property, bool ascending, int64_t page,
                   int64_t page_size, store_ota_page_t *out)
{
    memset(out, 0, sizeof(*out));
    if (page < 0 || page_size <= 0 || page > INT64_MAX / page_size || (type && !type_ok(type)))
        return -EINVAL;
    const char *sql = NULL;
    for (size_t i = 0; i < sizeof(ota_sorts) / sizeof(ota_sorts[0]); i++) {
        if (!sort_property ? i == 0 : strcmp(sort_property, ota_sorts[i].prop) == 0)
            sql = ascending ? ota_sorts[i].asc : ota_sorts[i].desc;
    }
    if (!sql)
        return -EINVAL;
    char *pattern = text_search && text_search[0] ? store__like_prefix(text_search) : NULL;
    store_cell_t args[] = {STORE_TEXT(type),    STORE_INT(profile_id), STORE_INT(has_data_only),
                           STORE_TEXT(pattern), STORE_INT(page_size),  STORE_INT(page * page_size)};
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, false, &a);
    store_rows_t rows = {0};
    if (r == 0) {
        r = store__adm_i64(a, s, "SELECT COUNT(*)" OWHERE, args, 4, &out->total);
        if (r == 0)
            r = s->be->adm_sql(a, sql, args, 6, &store__ota_row, &rows, NULL);
        int e = s->be->adm_end(a, r == 0);
        r = r != 0 ? r : e;
    }
    free(pattern);
    if (r != 0) {
        store__rows_fini(&rows, ota_fini_item);
        return r;
    }
    out->items = rows.items;
    out->n = rows.n;
    return 0;
}

void store_ota_page_fini(store_ota_page_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        store_ota_fini(&p->items[i]);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

int store_ota_foreach(store_t *s, void (*fn)(void *arg, const store_ota_t *o), void *arg)
{
    store_rows_t rows = {0};
    int r = store__adm_run(s, false, "SELECT " OCOLS " FROM ota_package ORDER BY id", NULL, 0,
                           &store__ota_row, &rows, NULL);
    for (size_t i = 0; r == 0 && i < rows.n; i++)
        fn(arg, &((store_ota_t *)rows.items)[i]);
    store__rows_fini(&rows, ota_fini_item);
    return r;
}

void store_ota_fini(store_ota_t *o)
{
    if (!o)
        return;
    free(o->type);
    free(o->title);
    free(o->version);
    free(o->tag);
    free(o->url);
    free(o->file_name);
    free(o->content_type);
    free(o->checksum_algorithm);
    free(o->checksum);
    free(o->additional_info);
    o->type = o->title = o->version = o->tag = o->url = o->file_name = o->content_type =
        o->checksum_algorithm = o->checksum = o->additional_info = NULL;
}
