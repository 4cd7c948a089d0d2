/* copy.c — moving an installation: every row of one database into an empty other, between
 * the backends or within one (store_copy), and the SQLite online backup (store_backup).
 *
 * Both backends have the same tables and columns (schema.h), so a copy is a copy of rows:
 * the source reads all tables in one snapshot (backend copy_read), rows are gathered
 * COPY_BATCH at a time and written by the destination in one transaction per batch
 * (copy_write), ids kept as they are — so references between tables stay right and REST ids
 * (uuids) do not change. The telemetry log goes too: its points are merged at the
 * destination's first start. Then each table is counted on the destination and compared
 * with the rows the snapshot held.
 *
 * Invariant: nothing is written to a destination that holds any row (a second copy into the
 * same database, or a copy over a used one, is refused before it starts).
 */
#include "store/schema.h"
#include "store/store_int.h"

#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VALUE_COLS "bool_v, long_v, dbl_v, str_v, json_v"

/* In the order of their references: a row's parents are copied before it. */
static const store_table_t tables[] = {
    {"settings", "key, value", "TT", "key", NULL},
    {"app_user", "id, uuid, created_time, email, password_hash, authority, first_name, last_name",
     "ITITTTTT", "id", "id"},
    {"device_profile",
     "id, uuid, created_time, name, is_default, provision_type, provision_key, firmware_id,"
     " software_id, data, version",
     "ITITBTTTTTI", "id", "id"},
    {"ota_package",
     "id, uuid, created_time, device_profile_id, type, title, version, tag, url, has_data,"
     " file_name, content_type, checksum_algorithm, checksum, data_size, additional_info",
     "ITIITTTTTBTTTTIT", "id", "id"},
    {"device",
     "id, uuid, created_time, name, type, label, additional_info, version, profile_id,"
     " firmware_id, software_id, device_data",
     "ITITTTTIITTT", "id", "id"},
    {"device_credentials",
     "id, uuid, created_time, device_id, credentials_type, credentials_id, credentials_value,"
     " version",
     "ITIIITTI", "id", "id"},
    {"key_dictionary", "key_id, key", "IT", "key_id", "key_id"},
    {"attribute_kv", "device_id, attribute_type, key_id, " VALUE_COLS ", last_update_ts, version",
     "IIIBIRTTII", "device_id, attribute_type, key_id", NULL},
    {"ts_kv_latest", "device_id, key_id, ts, " VALUE_COLS ", version", "IIIBIRTTI",
     "device_id, key_id", NULL},
    {"ts_kv", "device_id, key_id, ts, " VALUE_COLS, "IIIBIRTT", "device_id, key_id, ts", NULL},
    {"ts_kv_log", "seq, device_id, key_id, ts, " VALUE_COLS, "IIIIBIRTT", "seq", "seq"},
    {"rpc",
     "id, uuid, device_id, created_time, expiration_time, request_id, method, params, status,"
     " response, oneway, persistent",
     "ITIIIITTTTBB", "id", "id"},
};
enum { N_TABLES = sizeof(tables) / sizeof(tables[0]), COPY_BATCH = 2000, MAX_COLS = 16 };

_Static_assert(STORE_SCHEMA_LATEST == 3,
               "a new schema version: add its tables and columns to copy.c's list");

/* The rows gathered for the next copy_write: cells with their text in one arena. */
typedef struct copier {
    store_t *to;
    size_t table;
    store_cell_t *cells; /* COPY_BATCH * MAX_COLS */
    size_t rows;
    arena_t text;
    int64_t read[N_TABLES];
    int err;
} copier_t;

static int flush(copier_t *cp)
{
    if (cp->rows == 0)
        return 0;
    int r = cp->to->be->copy_write(cp->to->db, &tables[cp->table], cp->cells, cp->rows);
    cp->rows = 0;
    arena_reset(&cp->text);
    return r;
}

static int take_row(void *arg, size_t table, const store_cell_t *cells)
{
    copier_t *cp = arg;
    if (table != cp->table || cp->rows == COPY_BATCH) {
        int r = flush(cp);
        if (r != 0)
            return cp->err = r;
        cp->table = table;
    }
    size_t n = strlen(tables[table].kinds);
    store_cell_t *row = &cp->cells[cp->rows * n];
    for (size_t i = 0; i < n; i++) {
        row[i] = cells[i];
        if (cells[i].kind == STORE_CELL_TEXT)
            row[i].s = arena_strdup(&cp->text, cells[i].s);
    }
    cp->rows++;
    cp->read[table]++;
    return 0;
}

/* A store with its backend open (schema migrated) but no writer: copy and backup only. */
static store_t *open_bare(const store_cfg_t *cfg, char err[static ERR_LEN])
{
    bool pg = store_cfg_is_postgresql(cfg);
    if (!pg && (!cfg->path || !cfg->path[0])) {
        snprintf(err, ERR_LEN, "store: no database path");
        return NULL;
    }
    store_t *s = xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->path = xstrdup(pg ? "postgresql" : cfg->path);
    s->cfg.path = s->path;
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->stats_mu, NULL);
    store__latest_init(s);
    s->be = pg ? &store__pg_backend : &store__sqlite_backend;
    s->db = s->be->open(s, &s->schema_version, err);
    if (!s->db) {
        store_close(s);
        return NULL;
    }
    return s;
}

static bool empty(store_t *s, char err[static ERR_LEN])
{
    for (size_t i = 0; i < N_TABLES; i++) {
        int64_t n = 0;
        int r = s->be->count_rows(s->db, tables[i].name, &n);
        if (r != 0 || n != 0) {
            snprintf(err, ERR_LEN, "store: the destination is not empty (%s: %lld rows)",
                     tables[i].name, (long long)n);
            return false;
        }
    }
    return true;
}

static int compare(copier_t *cp, FILE *report, char err[static ERR_LEN])
{
    int bad = 0;
    if (report)
        fprintf(report, "%-20s %12s %12s\n", "table", "source", "destination");
    for (size_t i = 0; i < N_TABLES; i++) {
        int64_t n = -1;
        int r = cp->to->be->count_rows(cp->to->db, tables[i].name, &n);
        if (report)
            fprintf(report, "%-20s %12lld %12lld%s\n", tables[i].name, (long long)cp->read[i],
                    (long long)n, n == cp->read[i] ? "" : "  MISMATCH");
        if (r != 0 || n != cp->read[i]) {
            if (!bad)
                snprintf(err, ERR_LEN, "store: %s has %lld rows at the destination, %lld read",
                         tables[i].name, (long long)n, (long long)cp->read[i]);
            bad = r != 0 ? r : ERR_STORE;
        }
    }
    return bad;
}

int store_copy(const store_cfg_t *from, const store_cfg_t *to, FILE *report,
               char err[static ERR_LEN])
{
    err[0] = '\0';
    /* Opening an SQLite path creates the file: a mistyped source would become an empty
     * database, "copied" with every count 0. */
    if (!store_cfg_is_postgresql(from) && from->path && access(from->path, F_OK) != 0) {
        snprintf(err, ERR_LEN, "store: %s: no such database file", from->path);
        return -ENOENT;
    }
    store_t *src = open_bare(from, err);
    if (!src)
        return ERR_STORE;
    store_t *dst = open_bare(to, err);
    if (!dst) {
        store_close(src);
        return ERR_STORE;
    }
    int r = ERR_CONFLICT;
    copier_t cp = {.to = dst};
    if (!empty(dst, err))
        goto out;
    cp.cells = xcalloc(COPY_BATCH * MAX_COLS, sizeof(*cp.cells));
    arena_init(&cp.text, 64 * 1024);
    r = src->be->copy_read(src->db, tables, N_TABLES, take_row, &cp);
    if (r == 0 && cp.err == 0)
        r = flush(&cp);
    if (r == 0)
        r = cp.err;
    if (r != 0) {
        snprintf(err, ERR_LEN, "store: copy of %s failed: %s", tables[cp.table].name, err_str(r));
        goto out;
    }
    r = dst->be->copy_finish(dst->db, tables, N_TABLES);
    if (r != 0) {
        snprintf(err, ERR_LEN, "store: finishing the copy failed: %s", err_str(r));
        goto out;
    }
    r = compare(&cp, report, err);
out:
    free(cp.cells);
    arena_fini(&cp.text);
    store_close(dst);
    store_close(src);
    return r;
}

int store_backup(const store_cfg_t *cfg, const char *dest_path, char err[static ERR_LEN])
{
    err[0] = '\0';
    if (store_cfg_is_postgresql(cfg)) {
        snprintf(err, ERR_LEN,
                 "store: backup is for the SQLite store; back PostgreSQL up with pg_dump "
                 "(docs/operations.md)");
        return -ENOTSUP;
    }
    return store__sqlite_backend.backup(cfg, dest_path, err);
}
