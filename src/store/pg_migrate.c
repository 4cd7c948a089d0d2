/* pg_migrate.c — the PostgreSQL schema as numbered migrations compiled into the binary, one per
 * version of schema.h (the SQLite backend has the same list, sqlite_migrate.c).
 *
 * Invariant: migration N is applied exactly once, in one transaction together with the row
 * that records it in schema_version, under a transaction-level advisory lock, so two coaphub
 * processes starting on one database at once migrate it once and a crash leaves the schema at
 * N-1 or N, never between. Never edit a shipped migration; append a new one.
 *
 * The tables are SQLite's, column for column (so the copy between backends, copy.c, is a copy
 * of rows), with PostgreSQL's types: BIGINT ids from sequences, BOOLEAN flags, DOUBLE
 * PRECISION, TEXT for JSON (its text is kept as written, as in SQLite). Differences, and why:
 * - ts_kv is partitioned by time range (pg_partition.c), as ThingsBoard's ts_kv on
 *   PostgreSQL, so retention drops whole partitions;
 * - ts_kv and ts_kv_log have no foreign keys (a check per point would cost the writer what
 *   SQLite's writer avoids by turning them off); a device delete removes their rows itself
 *   (pg_devices.c), ordered against the writer by pg__lock_out_writer;
 * - app_user's email is unique case-insensitively through an index on lower(email COLLATE "C"):
 *   under the C collation lower() folds ASCII letters only, as SQLite's COLLATE NOCASE does.
 */
#include "store/pg_int.h"
#include "store/schema.h"

#include "core/clock.h"

#include <stdlib.h>
#include <string.h>

/* The advisory lock key of migrations (any constant of ours; "coaphub" in ASCII). */
#define PG_MIGRATE_LOCK "636f617068"

static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE device ("
    " id BIGSERIAL PRIMARY KEY,"
    " uuid TEXT NOT NULL UNIQUE,"
    " created_time BIGINT NOT NULL,"
    " name TEXT NOT NULL UNIQUE,"
    " type TEXT NOT NULL DEFAULT 'default',"
    " label TEXT,"
    " additional_info TEXT,"
    " version BIGINT NOT NULL DEFAULT 1);"
    "CREATE INDEX device_created_time ON device(created_time);"
    "CREATE INDEX device_type ON device(type);"
    "CREATE TABLE device_credentials ("
    " id BIGSERIAL PRIMARY KEY,"
    " uuid TEXT NOT NULL UNIQUE,"
    " created_time BIGINT NOT NULL,"
    " device_id BIGINT NOT NULL UNIQUE REFERENCES device(id) ON DELETE CASCADE,"
    " credentials_type INTEGER NOT NULL,"
    " credentials_id TEXT NOT NULL UNIQUE,"
    " credentials_value TEXT,"
    " version BIGINT NOT NULL DEFAULT 1);"
    "CREATE TABLE key_dictionary ("
    " key_id BIGSERIAL PRIMARY KEY,"
    " key TEXT NOT NULL UNIQUE);"
    "CREATE TABLE attribute_kv ("
    " device_id BIGINT NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
    " attribute_type INTEGER NOT NULL,"
    " key_id BIGINT NOT NULL REFERENCES key_dictionary(key_id),"
    " bool_v BOOLEAN, long_v BIGINT, dbl_v DOUBLE PRECISION, str_v TEXT, json_v TEXT,"
    " last_update_ts BIGINT NOT NULL,"
    " version BIGINT NOT NULL DEFAULT 1,"
    " PRIMARY KEY (device_id, attribute_type, key_id));"
    "CREATE TABLE ts_kv ("
    " device_id BIGINT NOT NULL,"
    " key_id BIGINT NOT NULL,"
    " ts BIGINT NOT NULL,"
    " bool_v BOOLEAN, long_v BIGINT, dbl_v DOUBLE PRECISION, str_v TEXT, json_v TEXT,"
    " PRIMARY KEY (device_id, key_id, ts)) PARTITION BY RANGE (ts);"
    "CREATE TABLE ts_kv_latest ("
    " device_id BIGINT NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
    " key_id BIGINT NOT NULL REFERENCES key_dictionary(key_id),"
    " ts BIGINT NOT NULL,"
    " bool_v BOOLEAN, long_v BIGINT, dbl_v DOUBLE PRECISION, str_v TEXT, json_v TEXT,"
    " version BIGINT NOT NULL DEFAULT 1,"
    " PRIMARY KEY (device_id, key_id));"
    "CREATE TABLE rpc ("
    " id BIGSERIAL PRIMARY KEY,"
    " uuid TEXT NOT NULL UNIQUE,"
    " device_id BIGINT NOT NULL REFERENCES device(id) ON DELETE CASCADE,"
    " created_time BIGINT NOT NULL,"
    " expiration_time BIGINT NOT NULL,"
    " request_id BIGINT NOT NULL,"
    " method TEXT NOT NULL,"
    " params TEXT,"
    " status TEXT NOT NULL,"
    " response TEXT,"
    " oneway BOOLEAN NOT NULL,"
    " persistent BOOLEAN NOT NULL);"
    "CREATE INDEX rpc_device_request ON rpc(device_id, request_id);"
    "CREATE TABLE app_user ("
    " id BIGSERIAL PRIMARY KEY,"
    " uuid TEXT NOT NULL UNIQUE,"
    " created_time BIGINT NOT NULL,"
    " email TEXT NOT NULL,"
    " password_hash TEXT NOT NULL,"
    " authority TEXT NOT NULL,"
    " first_name TEXT,"
    " last_name TEXT);"
    "CREATE UNIQUE INDEX app_user_email ON app_user (lower(email COLLATE \"C\"));"
    "CREATE TABLE settings ("
    " key TEXT PRIMARY KEY,"
    " value TEXT NOT NULL);",
    /* 2: the telemetry log (merge.c says why). Its sequence counts in blocks: a writer takes
     * a block of 65536 seqs with one nextval and numbers its rows itself (pg_points.c), so
     * its appends return nothing and can be pipelined; blocks keep writers of several
     * processes apart. */
    "CREATE TABLE ts_kv_log ("
    " seq BIGSERIAL PRIMARY KEY,"
    " device_id BIGINT NOT NULL,"
    " key_id BIGINT NOT NULL,"
    " ts BIGINT NOT NULL,"
    " bool_v BOOLEAN, long_v BIGINT, dbl_v DOUBLE PRECISION, str_v TEXT, json_v TEXT);"
    "ALTER SEQUENCE ts_kv_log_seq_seq INCREMENT BY 65536;",
    /* 3: device profiles and OTA packages (admin_sql.c); a device's profile, packages and
     * deviceData. Which profile each existing device joins is decided at open (the default
     * profile, or the one named as its type), in C, the same on both backends. */
    "CREATE COLLATION IF NOT EXISTS \"binary\" (provider = libc, locale = 'C');"
    "CREATE TABLE device_profile ("
    " id BIGSERIAL PRIMARY KEY,"
    " uuid TEXT NOT NULL UNIQUE,"
    " created_time BIGINT NOT NULL,"
    " name TEXT NOT NULL UNIQUE,"
    " is_default BOOLEAN NOT NULL DEFAULT FALSE,"
    " provision_type TEXT NOT NULL DEFAULT 'DISABLED',"
    " provision_key TEXT UNIQUE,"
    " firmware_id TEXT,"
    " software_id TEXT,"
    " data TEXT,"
    " version BIGINT NOT NULL DEFAULT 1);"
    "CREATE TABLE ota_package ("
    " id BIGSERIAL PRIMARY KEY,"
    " uuid TEXT NOT NULL UNIQUE,"
    " created_time BIGINT NOT NULL,"
    " device_profile_id BIGINT NOT NULL REFERENCES device_profile(id) ON DELETE CASCADE,"
    " type TEXT NOT NULL,"
    " title TEXT NOT NULL,"
    " version TEXT NOT NULL,"
    " tag TEXT,"
    " url TEXT,"
    " has_data BOOLEAN NOT NULL DEFAULT FALSE,"
    " file_name TEXT,"
    " content_type TEXT,"
    " checksum_algorithm TEXT,"
    " checksum TEXT,"
    " data_size BIGINT NOT NULL DEFAULT 0,"
    " additional_info TEXT,"
    " UNIQUE (title, version));"
    "ALTER TABLE device ADD COLUMN profile_id BIGINT REFERENCES device_profile(id);"
    "ALTER TABLE device ADD COLUMN firmware_id TEXT;"
    "ALTER TABLE device ADD COLUMN software_id TEXT;"
    "ALTER TABLE device ADD COLUMN device_data TEXT;"
    "CREATE INDEX device_profile_id ON device(profile_id);",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_LATEST,
               "one PostgreSQL migration per version of schema.h");

static int current_version(pg_conn_t *c, store_pg_t *q, int *out)
{
    int r;
    PGresult *res = pg__query(c, q, "SELECT COALESCE(MAX(version), 0) FROM schema_version", NULL,
                              &r);
    if (!res)
        return r;
    *out = (int)pg__i64(res, 0, 0);
    PQclear(res);
    return 0;
}

int pg__migrate(pg_conn_t *c, store_pg_t *q, int *version, char err[static ERR_LEN])
{
    int cur = 0;
    for (int v = 1; v <= STORE_SCHEMA_LATEST; v++) {
        /* Each step re-reads the version under the lock: another process may have gone first. */
        int r = pg__exec_simple(c, q,
                                "BEGIN;"
                                "SELECT pg_advisory_xact_lock(x'" PG_MIGRATE_LOCK
                                "'::bigint);"
                                "CREATE TABLE IF NOT EXISTS schema_version ("
                                " version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)");
        if (r == 0)
            r = current_version(c, q, &cur);
        if (r == 0 && cur > STORE_SCHEMA_LATEST) {
            snprintf(err, ERR_LEN, "store: database schema %d is newer than this build (%d)", cur,
                     STORE_SCHEMA_LATEST);
            pg__exec_simple(c, q, "ROLLBACK");
            return ERR_STORE;
        }
        if (r == 0 && cur < v) {
            r = pg__exec_simple(c, q, migrations[v - 1]);
            if (r == 0) {
                pg_params_t p = {0};
                pg__p_i64(&p, v);
                pg__p_i64(&p, clock_wall_ms());
                r = pg__exec(c, q,
                             "INSERT INTO schema_version(version, applied_ms) VALUES ($1, $2)", &p,
                             NULL);
            }
            if (r == 0)
                cur = v;
        }
        if (r == 0)
            r = pg__exec_simple(c, q, "COMMIT");
        if (r != 0) {
            snprintf(err, ERR_LEN, "store: PostgreSQL migration %d failed: %s", v,
                     PQerrorMessage(c->conn));
            pg__exec_simple(c, q, "ROLLBACK");
            return r;
        }
    }
    *version = cur;
    return 0;
}
