/* schema.h — the schema's versions: one list for every backend. Each backend keeps its own
 * SQL for each version (sqlite_migrate.c, pg_migrate.c) and checks at compile time that it has
 * one migration per version here, so a change of schema is never made for one backend only.
 *
 * Never edit a shipped version; append a new one, to this list and to every backend.
 */
#ifndef COAPHUB_STORE_SCHEMA_H
#define COAPHUB_STORE_SCHEMA_H

#define STORE_SCHEMA_VERSIONS(X)                                                                   \
    X(1,                                                                                           \
      "devices, credentials, key dictionary, attributes, time series, latest values, RPC, "        \
      "users, settings")                                                                           \
    X(2, "the telemetry log (ts_kv_log), merged into ts_kv by the writer (merge.c)")               \
    X(3, "device profiles, OTA packages; a device's profile, packages and deviceData")

#define STORE_SCHEMA_COUNT_(v, what) +1
enum { STORE_SCHEMA_LATEST = 0 STORE_SCHEMA_VERSIONS(STORE_SCHEMA_COUNT_) };

#endif
