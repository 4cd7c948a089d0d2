/* sqlite_migrate.c — the schema as numbered migrations compiled into the binary.
 *
 * Invariant: migration N is applied exactly once, in one transaction together with the row
 * that records it in schema_version, so a crash leaves the schema at N-1 or N, never between.
 * Never edit a shipped migration; append a new one.
 *
 * Tables follow ThingsBoard's (spec §9) with INTEGER row ids inside and uuid text for REST:
 * attribute_kv / ts_kv / ts_kv_latest keep one typed column per value kind, exactly one of
 * which is set; keys are interned in key_dictionary. Child rows cascade on device delete.
 */
#include "store/schema.h"
#include "store/sqlite_int.h"

#include "core/clock.h"

#include <string.h>

typedef struct migration {
    int version;
    const char *sql;
} migration_t;

static const migration_t migrations[] = {
    {1,
     "CREATE TABLE device ("
     " id INTEGER PRIMARY KEY,"
     " uuid TEXT NOT NULL UNIQUE,"
     " created_time INTEGER NOT NULL,"
     " name TEXT NOT NULL UNIQUE,"
     " type TEXT NOT NULL DEFAULT 'default',"
     " label TEXT,"
     " additional_info TEXT,"
     " version INTEGER NOT NULL DEFAULT 1);"
     "CREATE INDEX device_created_time ON device(created_time);"
     "CREATE INDEX device_type ON device(type);"
     "CREATE TABLE device_credentials ("
     " id INTEGER PRIMARY KEY,"
     " uuid TEXT NOT NULL UNIQUE,"
     " created_time INTEGER NOT NULL,"
     " device_id INTEGER NOT NULL UNIQUE REFERENCES device(id) ON DELETE CASCADE,"
     " credentials_type INTEGER NOT NULL,"
     " credentials_id TEXT NOT NULL UNIQUE,"
     " credentials_value TEXT,"
     " version INTEGER NOT NULL DEFAULT 1);"
     "CREATE TABLE key_dictionary ("
     " key_id INTEGER PRIMARY KEY,"
     " key TEXT NOT NULL UNIQUE);"
     "CREATE TABLE attribute_kv ("
     " device_id INTEGER NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
     " attribute_type INTEGER NOT NULL,"
     " key_id INTEGER NOT NULL REFERENCES key_dictionary(key_id),"
     " bool_v INTEGER, long_v INTEGER, dbl_v REAL, str_v TEXT, json_v TEXT,"
     " last_update_ts INTEGER NOT NULL,"
     " version INTEGER NOT NULL DEFAULT 1,"
     " PRIMARY KEY (device_id, attribute_type, key_id)) WITHOUT ROWID;"
     "CREATE TABLE ts_kv ("
     " device_id INTEGER NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
     " key_id INTEGER NOT NULL REFERENCES key_dictionary(key_id),"
     " ts INTEGER NOT NULL,"
     " bool_v INTEGER, long_v INTEGER, dbl_v REAL, str_v TEXT, json_v TEXT,"
     " PRIMARY KEY (device_id, key_id, ts)) WITHOUT ROWID;"
     "CREATE TABLE ts_kv_latest ("
     " device_id INTEGER NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
     " key_id INTEGER NOT NULL REFERENCES key_dictionary(key_id),"
     " ts INTEGER NOT NULL,"
     " bool_v INTEGER, long_v INTEGER, dbl_v REAL, str_v TEXT, json_v TEXT,"
     " version INTEGER NOT NULL DEFAULT 1,"
     " PRIMARY KEY (device_id, key_id)) WITHOUT ROWID;"
     "CREATE TABLE rpc ("
     " id INTEGER PRIMARY KEY,"
     " uuid TEXT NOT NULL UNIQUE,"
     " device_id INTEGER NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
     " created_time INTEGER NOT NULL,"
     " expiration_time INTEGER NOT NULL,"
     " request_id INTEGER NOT NULL,"
     " method TEXT NOT NULL,"
     " params TEXT,"
     " status TEXT NOT NULL,"
     " response TEXT,"
     " oneway INTEGER NOT NULL,"
     " persistent INTEGER NOT NULL);"
     "CREATE INDEX rpc_device_request ON rpc(device_id, request_id);"
     "CREATE TABLE app_user ("
     " id INTEGER PRIMARY KEY,"
     " uuid TEXT NOT NULL UNIQUE,"
     " created_time INTEGER NOT NULL,"
     " email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
     " password_hash TEXT NOT NULL,"
     " authority TEXT NOT NULL,"
     " first_name TEXT,"
     " last_name TEXT);"
     "CREATE TABLE settings ("
     " key TEXT PRIMARY KEY,"
     " value TEXT NOT NULL);"},
    /* 2: the telemetry log (performance pass 2). A group commit appends its points here, at
     * the end of one B-tree (a few pages per commit), instead of at each device's own spot
     * of ts_kv (one page per device per commit); the writer merges the log into ts_kv in
     * sorted slices (merge.c). No foreign keys: the writer checks each batch's device
     * itself (writer.c), and the trigger keeps the cascade of a device delete. */
    {2,
     "CREATE TABLE ts_kv_log ("
     " seq INTEGER PRIMARY KEY,"
     " device_id INTEGER NOT NULL,"
     " key_id INTEGER NOT NULL,"
     " ts INTEGER NOT NULL,"
     " bool_v INTEGER, long_v INTEGER, dbl_v REAL, str_v TEXT, json_v TEXT);"
     "CREATE TRIGGER ts_kv_log_device_delete AFTER DELETE ON device BEGIN"
     " DELETE FROM ts_kv_log WHERE device_id = old.id; END;"},
    /* 3: device profiles and OTA packages (admin_sql.c); a device's profile, packages and
     * deviceData. Which profile each existing device joins is decided at open (the default
     * profile, or the one named as its type), in C, the same on both backends. */
    {3,
     "CREATE TABLE device_profile ("
     " id INTEGER PRIMARY KEY,"
     " uuid TEXT NOT NULL UNIQUE,"
     " created_time INTEGER NOT NULL,"
     " name TEXT NOT NULL UNIQUE,"
     " is_default INTEGER NOT NULL DEFAULT 0,"
     " provision_type TEXT NOT NULL DEFAULT 'DISABLED',"
     " provision_key TEXT UNIQUE,"
     " firmware_id TEXT,"
     " software_id TEXT,"
     " data TEXT,"
     " version INTEGER NOT NULL DEFAULT 1);"
     "CREATE TABLE ota_package ("
     " id INTEGER PRIMARY KEY,"
     " uuid TEXT NOT NULL UNIQUE,"
     " created_time INTEGER NOT NULL,"
     " device_profile_id INTEGER NOT NULL REFERENCES device_profile(id) ON DELETE CASCADE,"
     " type TEXT NOT NULL,"
     " title TEXT NOT NULL,"
     " version TEXT NOT NULL,"
     " tag TEXT,"
     " url TEXT,"
     " has_data INTEGER NOT NULL DEFAULT 0,"
     " file_name TEXT,"
     " content_type TEXT,"
     " checksum_algorithm TEXT,"
     " checksum TEXT,"
     " data_size INTEGER NOT NULL DEFAULT 0,"
     " additional_info TEXT,"
     " UNIQUE (title, version));"
     "ALTER TABLE device ADD COLUMN profile_id INTEGER REFERENCES device_profile(id);"
     "ALTER TABLE device ADD COLUMN firmware_id TEXT;"
     "ALTER TABLE device ADD COLUMN software_id TEXT;"
     "ALTER TABLE device ADD COLUMN device_data TEXT;"
     "CREATE INDEX device_profile_id ON device(profile_id);"},
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_LATEST,
               "one SQLite migration per version of schema.h");

int store__migrate(store_conn_t *c, int *version, char err[static ERR_LEN])
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db,
                          "CREATE TABLE IF NOT EXISTS schema_version ("
                          " version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
                          NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db, "SELECT COALESCE(MAX(version), 0) FROM schema_version", -1, &st,
                            NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_step(st);
    int cur = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (cur < 0)
        goto fail;
    int latest = migrations[sizeof(migrations) / sizeof(migrations[0]) - 1].version;
    if (cur > latest) {
        snprintf(err, ERR_LEN, "store: database schema %d is newer than this build (%d)", cur,
                 latest);
        return ERR_STORE;
    }
    for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
        const migration_t *m = &migrations[i];
        if (m->version <= cur)
            continue;
        /* IMMEDIATE: two processes opening the same file must not both migrate. */
        rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc != SQLITE_OK)
            goto fail;
        rc = sqlite3_exec(c->db, m->sql, NULL, NULL, &msg);
        if (rc == SQLITE_OK) {
            char ins[128];
            snprintf(ins, sizeof(ins),
                     "INSERT INTO schema_version(version, applied_ms) VALUES (%d, %lld)",
                     m->version, (long long)clock_wall_ms());
            rc = sqlite3_exec(c->db, ins, NULL, NULL, &msg);
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            snprintf(err, ERR_LEN, "store: migration %d failed: %s", m->version,
                     msg ? msg : sqlite3_errmsg(c->db));
            sqlite3_free(msg);
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            return ERR_STORE;
        }
        cur = m->version;
    }
    *version = cur;
    return 0;
fail:
    snprintf(err, ERR_LEN, "store: schema_version: %s", msg ? msg : sqlite3_errmsg(c->db));
    sqlite3_free(msg);
    return ERR_STORE;
}
