/* profiles.c — device profiles (store.h), and the profile every device belongs to, written once
 * for every backend on its administrative statements (backend.h store_adm_t).
 *
 * Invariants:
 * - exactly one profile is the default: made at open if there is none (store__profiles_init),
 *   moved only by a create/update/set_default that names another, in one transaction with
 *   clearing the old one;
 * - every device has a profile: existing devices get one at open (the profile named as their
 *   type, made if missing, as ThingsBoard's migration does), new devices on create (by id, by
 *   type name, or the default), and device.type always holds the profile's name (a rename
 *   renames it in the same transaction);
 * - a profile in use by devices, or the default one, is never deleted.
 *
 * Profiles are few and change rarely: every call is a short transaction on a pool connection.
 */
#include "store/store_int.h"

#include "core/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PCOLS STORE_PROFILE_COLS

/* What ThingsBoard's default profile holds besides its name. */
static const char DEFAULT_DATA[] =
    "{\"description\":\"Default device profile\",\"type\":\"DEFAULT\","
    "\"transportType\":\"DEFAULT\",\"profileData\":{\"configuration\":{\"type\":\"DEFAULT\"},"
    "\"transportConfiguration\":{\"type\":\"DEFAULT\"},"
    "\"provisionConfiguration\":{\"type\":\"DISABLED\",\"provisionDeviceSecret\":null},"
    "\"alarms\":null}}";

/* ---- one-statement calls and small results ---- */

int store__adm_run(store_t *s, bool write, const char *sql, const store_cell_t *args, size_t n,
                   const store_row_map_t *m, store_rows_t *rows, int64_t *changes)
{
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, write, &a);
    if (r != 0)
        return r;
    r = s->be->adm_sql(a, sql, args, n, m, rows, changes);
    int e = s->be->adm_end(a, r == 0);
    return store__health_note(s, r != 0 ? r : e); /* corruption met here counts too */
}

int store__adm_get(store_t *s, const char *sql, const store_cell_t *args, size_t n,
                   const store_row_map_t *m, void *out)
{
    store_rows_t rows = {0};
    int r = store__adm_run(s, false, sql, args, n, m, &rows, NULL);
    if (r == 0 && rows.n == 0)
        r = -ENOENT;
    if (r == 0) {
        memcpy(out, rows.items, m->size); /* the first row's strings move to out */
        rows.n = 0;
    }
    store__rows_fini(&rows, NULL);
    return r;
}

int store__adm_i64(store_adm_t *a, store_t *s, const char *sql, const store_cell_t *args, size_t n,
                   int64_t *out)
{
    store_rows_t rows = {0};
    int r = store__health_note(s, s->be->adm_sql(a, sql, args, n, &store__i64_row, &rows, NULL));
    if (r == 0)
        *out = rows.n ? ((store_i64_t *)rows.items)->v : 0;
    if (r == 0 && rows.n == 0)
        r = -ENOENT;
    store__rows_fini(&rows, NULL);
    return r;
}

/* ---- the default profile and every device's profile ---- */

/* The id of the profile named name, made (with data, may be NULL) if there is none. */
static int find_or_create(store_adm_t *a, store_t *s, const char *name, const char *data,
                          const char *known_uuid, int64_t *id)
{
    char uuid[STORE_UUID_LEN + 1];
    if (known_uuid && strlen(known_uuid) == STORE_UUID_LEN)
        memcpy(uuid, known_uuid, sizeof(uuid));
    else
        store_uuid_v4(uuid);
    store_cell_t args[] = {STORE_TEXT(uuid), STORE_INT(clock_wall_ms()), STORE_TEXT(name),
                           STORE_TEXT(data)};
    int r = s->be->adm_sql(a,
                           "INSERT INTO device_profile(uuid, created_time, name, is_default,"
                           " provision_type, data, version)"
                           " VALUES ($1, $2, $3, FALSE, 'DISABLED', $4, 1)"
                           " ON CONFLICT (name) DO NOTHING",
                           args, 4, NULL, NULL, NULL);
    if (r == 0)
        r = store__adm_i64(a, s, "SELECT id FROM device_profile WHERE name = $1", &args[2], 1, id);
    return r;
}

int store__profiles_init(store_t *s)
{
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, true, &a);
    if (r != 0)
        return r;
    int64_t id = 0;
    r = store__adm_i64(a, s, "SELECT id FROM device_profile WHERE is_default = TRUE", NULL, 0, &id);
    if (r == -ENOENT) {
        /* Before profiles were stored, every device answered with one deviceProfileId kept
         * in settings: the default profile keeps that id, so clients that saved it still
         * find their profile. */
        store_rows_t old_id = {0};
        r = s->be->adm_sql(a, "SELECT value FROM settings WHERE key = 'default_profile_id'", NULL,
                           0, &store__text_row, &old_id, NULL);
        const char *known = r == 0 && old_id.n ? ((store_text_t *)old_id.items)->v : NULL;
        if (r == 0)
            r = find_or_create(a, s, "default", DEFAULT_DATA, known, &id);
        store__rows_fini(&old_id, store__text_fini);
        store_cell_t arg = STORE_INT(id);
        if (r == 0)
            r = s->be->adm_sql(a, "UPDATE device_profile SET is_default = TRUE WHERE id = $1", &arg,
                               1, NULL, NULL, NULL);
    }
    /* Devices from before profiles (schema 3) join the profile named as their type. */
    store_rows_t types = {0};
    if (r == 0)
        r = s->be->adm_sql(a,
                           "SELECT DISTINCT type FROM device WHERE profile_id IS NULL ORDER BY 1",
                           NULL, 0, &store__text_row, &types, NULL);
    for (size_t i = 0; r == 0 && i < types.n; i++) {
        const char *type = ((store_text_t *)types.items)[i].v;
        r = find_or_create(a, s, type ? type : "default", NULL, NULL, &id);
        store_cell_t args[] = {STORE_INT(id), STORE_TEXT(type)};
        if (r == 0)
            r = s->be->adm_sql(a,
                               "UPDATE device SET profile_id = $1"
                               " WHERE profile_id IS NULL AND type = $2",
                               args, 2, NULL, NULL, NULL);
    }
    store__rows_fini(&types, store__text_fini);
    int e = s->be->adm_end(a, r == 0);
    return r != 0 ? r : e;
}

int store__device_profile_resolve(store_t *s, store_device_t *d)
{
    store_adm_t *a;
    bool by_name = d->profile_id == 0 && d->type && d->type[0];
    int r = s->be->adm_begin(s->db, by_name, &a);
    if (r != 0)
        return r;
    int64_t id = 0;
    if (d->profile_id != 0) {
        store_cell_t arg = STORE_INT(d->profile_id);
        r = store__adm_i64(a, s, "SELECT id FROM device_profile WHERE id = $1", &arg, 1, &id);
    } else if (by_name) {
        r = find_or_create(a, s, d->type, NULL, NULL, &id);
    } else {
        r = store__adm_i64(a, s, "SELECT id FROM device_profile WHERE is_default = TRUE", NULL, 0,
                           &id);
    }
    int e = s->be->adm_end(a, r == 0);
    if (r == 0 && e == 0)
        d->profile_id = id;
    return r != 0 ? r : e;
}

int store_device_ids_by_profile(store_t *s, int64_t profile_id, const char *only_without,
                                int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    const char *sql;
    if (!only_without)
        sql = "SELECT id FROM device WHERE profile_id = $1 ORDER BY id";
    else if (strcmp(only_without, "firmware") == 0)
        sql = "SELECT id FROM device WHERE profile_id = $1 AND firmware_id IS NULL ORDER BY id";
    else if (strcmp(only_without, "software") == 0)
        sql = "SELECT id FROM device WHERE profile_id = $1 AND software_id IS NULL ORDER BY id";
    else
        return -EINVAL;
    store_cell_t arg = STORE_INT(profile_id);
    store_rows_t rows = {0};
    int r = store__adm_run(s, false, sql, &arg, 1, &store__i64_row, &rows, NULL);
    if (r == 0 && rows.n) {
        *ids = xmalloc(rows.n * sizeof(**ids));
        for (size_t i = 0; i < rows.n; i++)
            (*ids)[i] = ((store_i64_t *)rows.items)[i].v;
        *n = rows.n;
    }
    store__rows_fini(&rows, NULL);
    return r;
}

/* ---- profiles ---- */

static bool profile_ok(const store_profile_t *p)
{
    return p->name && p->name[0] && (!p->provision_key || p->provision_key[0]);
}

static const char *ptype(const store_profile_t *p)
{
    return p->provision_type && p->provision_type[0] ? p->provision_type : "DISABLED";
}

int store_profile_create(store_t *s, store_profile_t *p)
{
    if (!profile_ok(p))
        return -EINVAL;
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, true, &a);
    if (r != 0)
        return r;
    if (p->is_default)
        r = s->be->adm_sql(a, "UPDATE device_profile SET is_default = FALSE WHERE is_default", NULL,
                           0, NULL, NULL, NULL);
    char uuid[STORE_UUID_LEN + 1];
    store_uuid_v4(uuid);
    int64_t now = clock_wall_ms();
    store_cell_t args[] = {STORE_TEXT(uuid),           STORE_INT(now),
                           STORE_TEXT(p->name),        STORE_INT(p->is_default),
                           STORE_TEXT(ptype(p)),       STORE_TEXT(p->provision_key),
                           STORE_TEXT(p->firmware_id), STORE_TEXT(p->software_id),
                           STORE_TEXT(p->data)};
    int64_t id = 0;
    if (r == 0)
        r = store__adm_i64(a, s,
                           "INSERT INTO device_profile(uuid, created_time, name, is_default,"
                           " provision_type, provision_key, firmware_id, software_id, data,"
                           " version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1) RETURNING id",
                           args, 9, &id);
    int e = s->be->adm_end(a, r == 0);
    if (r == 0 && e == 0) {
        p->id = id;
        memcpy(p->uuid, uuid, sizeof(uuid));
        p->created_ms = now;
        p->version = 1;
    }
    return r != 0 ? r : e;
}

int store_profile_update(store_t *s, store_profile_t *p)
{
    if (!profile_ok(p))
        return -EINVAL;
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, true, &a);
    if (r != 0)
        return r;
    store_cell_t idarg = STORE_INT(p->id);
    if (p->is_default)
        r = s->be->adm_sql(a,
                           "UPDATE device_profile SET is_default = FALSE"
                           " WHERE is_default AND id <> $1",
                           &idarg, 1, NULL, NULL, NULL);
    store_cell_t args[] = {
        STORE_INT(p->id),           STORE_TEXT(p->name),          STORE_INT(p->is_default),
        STORE_TEXT(ptype(p)),       STORE_TEXT(p->provision_key), STORE_TEXT(p->firmware_id),
        STORE_TEXT(p->software_id), STORE_TEXT(p->data)};
    int64_t version = 0;
    if (r == 0)
        r = store__adm_i64(a, s,
                           "UPDATE device_profile SET name = $2,"
                           " is_default = CASE WHEN $3 = 1 THEN TRUE ELSE is_default END,"
                           " provision_type = $4, provision_key = $5, firmware_id = $6,"
                           " software_id = $7, data = $8, version = version + 1"
                           " WHERE id = $1 RETURNING version",
                           args, 8, &version);
    /* device.type is the profile's name (ThingsBoard keeps it so for old clients). */
    if (r == 0)
        r = s->be->adm_sql(a, "UPDATE device SET type = $2 WHERE profile_id = $1 AND type <> $2",
                           args, 2, NULL, NULL, NULL);
    int e = s->be->adm_end(a, r == 0);
    if (r == 0 && e == 0)
        p->version = version;
    return r != 0 ? r : e;
}

int store_profile_get(store_t *s, int64_t id, store_profile_t *out)
{
    store_cell_t arg = STORE_INT(id);
    return store__adm_get(s, "SELECT " PCOLS " FROM device_profile WHERE id = $1", &arg, 1,
                          &store__profile_row, out);
}

int store_profile_get_by_uuid(store_t *s, const char *uuid, store_profile_t *out)
{
    if (!uuid)
        return -EINVAL;
    store_cell_t arg = STORE_TEXT(uuid);
    return store__adm_get(s, "SELECT " PCOLS " FROM device_profile WHERE uuid = $1", &arg, 1,
                          &store__profile_row, out);
}

int store_profile_get_by_name(store_t *s, const char *name, store_profile_t *out)
{
    if (!name)
        return -EINVAL;
    store_cell_t arg = STORE_TEXT(name);
    return store__adm_get(s, "SELECT " PCOLS " FROM device_profile WHERE name = $1", &arg, 1,
                          &store__profile_row, out);
}

int store_profile_get_by_provision_key(store_t *s, const char *key, store_profile_t *out)
{
    if (!key || !key[0])
        return -EINVAL;
    store_cell_t arg = STORE_TEXT(key);
    return store__adm_get(s, "SELECT " PCOLS " FROM device_profile WHERE provision_key = $1", &arg,
                          1, &store__profile_row, out);
}

int store_profile_get_default(store_t *s, store_profile_t *out)
{
    return store__adm_get(s, "SELECT " PCOLS " FROM device_profile WHERE is_default = TRUE", NULL,
                          0, &store__profile_row, out);
}

int store_profile_set_default(store_t *s, int64_t id)
{
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, true, &a);
    if (r != 0)
        return r;
    store_cell_t arg = STORE_INT(id);
    int64_t found = 0;
    r = store__adm_i64(a, s, "SELECT id FROM device_profile WHERE id = $1", &arg, 1, &found);
    if (r == 0)
        r = s->be->adm_sql(a,
                           "UPDATE device_profile SET is_default = (id = $1)"
                           " WHERE is_default OR id = $1",
                           &arg, 1, NULL, NULL, NULL);
    int e = s->be->adm_end(a, r == 0);
    return r != 0 ? r : e;
}

int store_profile_delete(store_t *s, int64_t id)
{
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, true, &a);
    if (r != 0)
        return r;
    store_cell_t arg = STORE_INT(id);
    int64_t is_default = 0, devices = 0;
    r = store__adm_i64(a, s,
                       "SELECT CASE WHEN is_default THEN 1 ELSE 0 END FROM device_profile"
                       " WHERE id = $1",
                       &arg, 1, &is_default);
    if (r == 0 && is_default)
        r = -EBUSY;
    if (r == 0)
        r = store__adm_i64(a, s, "SELECT COUNT(*) FROM device WHERE profile_id = $1", &arg, 1,
                           &devices);
    if (r == 0 && devices > 0)
        r = ERR_CONFLICT;
    /* Its OTA packages' rows go by ON DELETE CASCADE; their image files are the OTA module's. */
    if (r == 0)
        r = s->be->adm_sql(a, "DELETE FROM device_profile WHERE id = $1", &arg, 1, NULL, NULL,
                           NULL);
    int e = s->be->adm_end(a, r == 0);
    return r != 0 ? r : e;
}

/* ?1 = LIKE pattern or NULL. Text sorts byte-wise on both backends (the "binary" collation;
 * PostgreSQL's is made by migration 3). */
#define PWHERE                                                                                     \
    " FROM device_profile WHERE (CAST($1 AS TEXT) IS NULL"                                         \
    " OR lower(name) LIKE lower(CAST($1 AS TEXT)) ESCAPE '\\')"
#define PLIST(col, dir)                                                                            \
    "SELECT " PCOLS PWHERE " ORDER BY " col " " dir ", id " dir " LIMIT $2 OFFSET $3"

static const struct {
    const char *prop, *asc, *desc;
} profile_sorts[] = {
    {"createdTime", PLIST("created_time", "ASC"), PLIST("created_time", "DESC")},
    {"name", PLIST("name COLLATE \"binary\"", "ASC"), PLIST("name COLLATE \"binary\"", "DESC")},
    {"isDefault", PLIST("is_default", "ASC"), PLIST("is_default", "DESC")},
    {"type", PLIST("created_time", "ASC"), PLIST("created_time", "DESC")}, /* all DEFAULT */
    {"transportType", PLIST("created_time", "ASC"), PLIST("created_time", "DESC")},
    {"description", PLIST("created_time", "ASC"), PLIST("created_time", "DESC")},
};

char *store__like_prefix(const char *text)
{
    size_t n = strlen(text);
    char *p = xmalloc(2 * n + 2), *w = p;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '%' || text[i] == '_' || text[i] == '\\')
            *w++ = '\\';
        *w++ = text[i];
    }
    *w++ = '%';
    *w = '\0';
    return p;
}

static void profile_fini_item(void *p)
{
    store_profile_fini(p);
}

int store_profile_list(store_t *s, const char *text_search, const char *sort_property,
                       bool ascending, int64_t page, int64_t page_size, store_profile_page_t *out)
{
    memset(out, 0, sizeof(*out));
    if (page < 0 || page_size <= 0 || page > INT64_MAX / page_size)
        return -EINVAL;
    const char *sql = NULL;
    for (size_t i = 0; i < sizeof(profile_sorts) / sizeof(profile_sorts[0]); i++) {
        if (!sort_property ? i == 0 : strcmp(sort_property, profile_sorts[i].prop) == 0)
            sql = ascending ? profile_sorts[i].asc : profile_sorts[i].desc;
    }
    if (!sql)
        return -EINVAL;
    char *pattern = text_search && text_search[0] ? store__like_prefix(text_search) : NULL;
    store_cell_t args[] = {STORE_TEXT(pattern), STORE_INT(page_size), STORE_INT(page * page_size)};
    store_adm_t *a;
    int r = s->be->adm_begin(s->db, false, &a);
    store_rows_t rows = {0};
    if (r == 0) {
        /* Count and page in one transaction so the total matches the page. */
        r = store__adm_i64(a, s, "SELECT COUNT(*)" PWHERE, args, 1, &out->total);
        if (r == 0)
            r = s->be->adm_sql(a, sql, args, 3, &store__profile_row, &rows, NULL);
        int e = s->be->adm_end(a, r == 0);
        r = r != 0 ? r : e;
    }
    free(pattern);
    if (r != 0) {
        store__rows_fini(&rows, profile_fini_item);
        return r;
    }
    out->items = rows.items;
    out->n = rows.n;
    return 0;
}

void store_profile_page_fini(store_profile_page_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        store_profile_fini(&p->items[i]);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

int store_profile_foreach(store_t *s, void (*fn)(void *arg, const store_profile_t *p), void *arg)
{
    store_rows_t rows = {0};
    int r = store__adm_run(s, false, "SELECT " PCOLS " FROM device_profile ORDER BY id", NULL, 0,
                           &store__profile_row, &rows, NULL);
    for (size_t i = 0; r == 0 && i < rows.n; i++)
        fn(arg, &((store_profile_t *)rows.items)[i]);
    store__rows_fini(&rows, profile_fini_item);
    return r;
}

void store_profile_fini(store_profile_t *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->provision_type);
    free(p->provision_key);
    free(p->firmware_id);
    free(p->software_id);
    free(p->data);
    p->name = p->provision_type = p->provision_key = p->firmware_id = p->software_id = p->data =
        NULL;
}
