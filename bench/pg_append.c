/* pg_append.c — pg-append-bench: how fast libpq can append telemetry rows to a table shaped
 * like ts_kv_log, in durable transactions of G rows (G = the size of one group commit), by
 * each way libpq offers. It answers issue 13's "use what libpq offers for throughput —
 * pipeline mode, COPY, multi-row statements — and measure which wins" without coaphub in the
 * way: one connection, one thread, rows made up in memory.
 *
 * Methods (one transaction = BEGIN + the writer's shared advisory lock, G rows, COMMIT; the
 * COMMIT is checked as pg_write.c checks it, and every row's seq is read back where the
 * method can return it):
 *   multi      what the backend does now (pg_points.c): prepared INSERT ... VALUES of
 *              --rows-per-stmt rows (32 = STORE_MULTI) RETURNING seq, one round trip each,
 *              plus one for BEGIN and one for COMMIT
 *   pipeline   the same statements and the same BEGIN/COMMIT in libpq pipeline mode: all sent,
 *              one PQpipelineSync per transaction, so one round trip per transaction
 *   unnest     one prepared INSERT ... SELECT FROM unnest($1::bigint[], ...) RETURNING seq per
 *              transaction (three round trips: BEGIN, INSERT, COMMIT)
 *   unnest-pipeline  the unnest transaction in pipeline mode (one round trip)
 *   copy       COPY ... FROM STDIN (text format). COPY returns no rows, so the seqs are
 *              reserved first (--copy-seq): `series` = SELECT nextval(seq) FROM
 *              generate_series(1, G) in the transaction (one round trip, G nextval calls);
 *              `block` = a second sequence with INCREMENT BY 4096 whose every nextval
 *              reserves 4096 seqs for this connection (one round trip per 4096 rows; safe with
 *              several writers, unlike a setval, which another session could race)
 *
 * Rows look like the default coaphub-bench payload ({"temperature":21.5,"humidity":40}): two
 * keys per device, a double and a long, over --devices device ids, ts = the wall clock in
 * ms; parameters go in libpq's text format with doubles printed to 17 digits, as the backend
 * sends them (pg_int.h). The table is dropped and created at start and emptied (TRUNCATE)
 * and checkpointed before each run, so every run starts alike; each run ends by counting the
 * table's rows against the rows committed, and the tool fails when they differ.
 *
 * CPU: the client's own (getrusage), the server backend's (/proc/PID/stat of PQbackendPID)
 * and the whole cluster's (the postmaster and all its children: WAL writer, checkpointer,
 * autovacuum ... ; children that exited are in the postmaster's cutime), when the server runs
 * on this host. Not done here: concurrency (one writer, as coaphub has one writer per store).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/xmalloc.h"

/* The lock every writer transaction of coaphub takes (pg_write.c, "writer" in ASCII). */
#define WRITER_LOCK "SELECT pg_advisory_xact_lock_shared(x'777269746572'::bigint)"
#define COLS "device_id, key_id, ts, bool_v, long_v, dbl_v, str_v, json_v"
#define NCOLS 8
#define BLOCK_SEQS 4096  /* --copy-seq block: seqs reserved per nextval */
#define MAX_STMT_ROWS 40 /* 40 rows x 8 columns = 320 parameters, the backend's PG_MAX_PARAMS */
#define MAX_GROUPS 8
#define NUM_LEN 32
#define IO_TIMEOUT_MS 30000 /* a pipeline that makes no progress this long is an error */

typedef enum { M_MULTI, M_PIPELINE, M_UNNEST, M_UNNEST_PIPE, M_COPY, M_COUNT } method_t;
static const char *const method_names[M_COUNT] = {"multi", "pipeline", "unnest", "unnest-pipeline",
                                                  "copy"};

typedef struct cfg {
    const char *conninfo;
    bool methods[M_COUNT];
    int groups[MAX_GROUPS];
    int n_groups;
    double duration_s;
    int rounds;
    int devices;
    int stmt_rows;
    bool copy_block;
    const char *table;
    int cluster_pid; /* 0: the backend's parent, when on this host */
    bool json, keep, allow_nondurable;
} cfg_t;

/* One made-up telemetry point: a double (key 1) or a long (key 2). */
typedef struct row {
    int64_t device_id, key_id, ts;
    bool is_dbl;
    double d;
    int64_t l;
} row_t;

typedef struct result {
    method_t method;
    int group, round;
    int64_t rows, txs, round_trips;
    double elapsed_s;
    double tx_p50_ms, tx_p99_ms;
    double client_cpu_us, backend_cpu_us, cluster_cpu_us; /* < 0: not measured */
} result_t;

/* A growable text buffer. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_need(sbuf_t *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
    sb_need(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static int fmt_i64(char out[static NUM_LEN], int64_t v)
{
    return snprintf(out, NUM_LEN, "%" PRId64, v);
}

static int fmt_f64(char out[static NUM_LEN], double d)
{
    return snprintf(out, NUM_LEN, "%.17g", d); /* as pg__p_f64: read back exactly */
}

static void sb_i64(sbuf_t *b, int64_t v)
{
    char t[NUM_LEN];
    sb_add(b, t, (size_t)fmt_i64(t, v));
}

static void sb_f64(sbuf_t *b, double d)
{
    char t[NUM_LEN];
    sb_add(b, t, (size_t)fmt_f64(t, d));
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double client_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---- /proc ---------------------------------------------------------------------------------- */

/* utime+stime (and with `children`, cutime+cstime) of pid in clock ticks, and its parent;
 * -1 when pid is gone. Fields are counted after the last ')': comm may hold anything. */
static long long proc_ticks(int pid, bool children, int *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    int pp;
    unsigned long long ut, st, cut, cst;
    if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &pp,
                     &ut, &st, &cut, &cst) != 5)
        return -1;
    if (ppid)
        *ppid = pp;
    return (long long)(ut + st + (children ? cut + cst : 0));
}

/* CPU of a PostgreSQL cluster in µs: its postmaster (with the children it reaped) and every
 * live child. -1 when the postmaster is not visible. */
static double cluster_cpu_us(int postmaster)
{
    if (postmaster <= 0)
        return -1;
    long long total = proc_ticks(postmaster, true, NULL);
    if (total < 0)
        return -1;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == postmaster)
            continue;
        int pp = 0;
        long long t = proc_ticks((int)pid, false, &pp);
        if (t >= 0 && pp == postmaster)
            total += t;
    }
    closedir(d);
    return (double)total * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static double backend_cpu_us(int pid)
{
    long long t = pid > 0 ? proc_ticks(pid, false, NULL) : -1;
    return t < 0 ? -1 : (double)t * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* ---- connection helpers --------------------------------------------------------------------- */

static void die_conn(PGconn *c, const char *what)
{
    fprintf(stderr, "pg-append-bench: %s: %s", what, c ? PQerrorMessage(c) : "no connection\n");
    exit(1);
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        fprintf(stderr, "pg-append-bench: %s\n  -> %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
}

static char *query_value(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        fprintf(stderr, "pg-append-bench: %s\n  -> %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    char *v = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static PGconn *connect_db(const cfg_t *c)
{
    PGconn *conn = PQconnectdb(c->conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        die_conn(conn, "cannot connect");
    /* The backend's session settings that matter here (pg_db.c): every COMMIT waits for its
     * WAL flush. */
    exec_ok(conn, "SET synchronous_commit = on; SET client_min_messages = warning");
    return conn;
}

/* COMMIT, checked as pg_write.c does: a COMMIT of an aborted transaction answers ROLLBACK. */
static void check_commit(PGresult *r)
{
    if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        fprintf(stderr, "pg-append-bench: COMMIT failed: %s%s\n", PQresultErrorMessage(r),
                PQcmdStatus(r));
        exit(1);
    }
}

/* ---- one run -------------------------------------------------------------------------------- */

typedef struct run {
    const cfg_t *cfg;
    PGconn *conn;
    method_t method;
    int group;
    row_t *rows;   /* this transaction's rows */
    int64_t *seqs; /* seqs read back (or reserved) for them */
    int64_t n_seqs;
    int64_t round_trips;       /* waits for the server: one per blocking call or pipeline sync */
    int64_t point;             /* rows made so far (device, key cycle) */
    int64_t blk_next, blk_end; /* copy --copy-seq block: seqs still reserved [next, end) */
    /* parameter space: up to MAX_STMT_ROWS rows of text values */
    char num[MAX_STMT_ROWS * NCOLS][NUM_LEN];
    const char *val[MAX_STMT_ROWS * NCOLS];
    sbuf_t arr[NCOLS]; /* unnest: one array literal per column */
    sbuf_t copy;       /* copy: the transaction's COPY data */
    char seq_name[160];
} run_t;

static void make_rows(run_t *r)
{
    int64_t ts = wall_ms();
    for (int i = 0; i < r->group; i++, r->point++) {
        row_t *w = &r->rows[i];
        int64_t p = r->point;
        w->device_id = (p / 2) % r->cfg->devices + 1;
        w->key_id = p % 2 + 1;
        w->ts = ts;
        w->is_dbl = w->key_id == 1;
        w->d = 15.0 + (double)(p % 200) * 0.1;
        w->l = 30 + p % 50;
    }
}

/* Text parameters of rows [from, from + n): 8 per row, NULL for the unused value columns. */
static void fill_params(run_t *r, int from, int n)
{
    for (int i = 0; i < n; i++) {
        const row_t *w = &r->rows[from + i];
        int b = i * NCOLS;
        fmt_i64(r->num[b], w->device_id);
        fmt_i64(r->num[b + 1], w->key_id);
        fmt_i64(r->num[b + 2], w->ts);
        r->val[b] = r->num[b];
        r->val[b + 1] = r->num[b + 1];
        r->val[b + 2] = r->num[b + 2];
        r->val[b + 3] = NULL; /* bool_v */
        if (w->is_dbl) {
            r->val[b + 4] = NULL;
            fmt_f64(r->num[b + 5], w->d);
            r->val[b + 5] = r->num[b + 5];
        } else {
            fmt_i64(r->num[b + 4], w->l);
            r->val[b + 4] = r->num[b + 4];
            r->val[b + 5] = NULL;
        }
        r->val[b + 6] = NULL; /* str_v */
        r->val[b + 7] = NULL; /* json_v */
    }
}

static void stmt_name(char out[static 16], int rows)
{
    snprintf(out, 16, "m%d", rows);
}

static void prepare(run_t *r, const char *name, const char *sql)
{
    PGresult *res = PQprepare(r->conn, name, sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pg-append-bench: prepare %s: %s", sql, PQresultErrorMessage(res));
        exit(1);
    }
    PQclear(res);
}

static void prepare_multi(run_t *r, int rows)
{
    sbuf_t s = {0};
    sb_str(&s, "INSERT INTO ");
    sb_str(&s, r->cfg->table);
    sb_str(&s, " (" COLS ") VALUES ");
    for (int i = 0; i < rows; i++) {
        char t[128]; /* at most 2 + 8 x (4 + 10) + 2 */
        int b = i * NCOLS;
        snprintf(t, sizeof t, "%s($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", i ? ", " : "", b + 1,
                 b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8);
        sb_str(&s, t);
    }
    sb_str(&s, " RETURNING seq");
    char name[16];
    stmt_name(name, rows);
    prepare(r, name, s.p);
    free(s.p);
}

static void prepare_statements(run_t *r)
{
    char sql[512];
    switch (r->method) {
    case M_MULTI:
    case M_PIPELINE:
        prepare_multi(r, r->cfg->stmt_rows);
        if (r->group % r->cfg->stmt_rows)
            prepare_multi(r, r->group % r->cfg->stmt_rows);
        break;
    case M_UNNEST:
    case M_UNNEST_PIPE:
        /* A function scan yields the arrays' elements in order and INSERT takes nextval in
         * the order rows arrive, so RETURNING gives the seqs in the arrays' order, as for
         * multi-row VALUES. */
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s (" COLS
                 ") SELECT * FROM unnest($1::bigint[], $2::bigint[],"
                 " $3::bigint[], $4::boolean[], $5::bigint[], $6::float8[], $7::text[],"
                 " $8::text[]) RETURNING seq",
                 r->cfg->table);
        prepare(r, "u", sql);
        break;
    case M_COPY:
        snprintf(sql, sizeof sql, "SELECT nextval('%s') FROM generate_series(1, $1::int)",
                 r->seq_name);
        prepare(r, "reserve", sql);
        break;
    case M_COUNT:
        break;
    }
}

static void take_seqs(run_t *r, PGresult *res)
{
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        int64_t v = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (r->n_seqs > 0 && v <= r->seqs[r->n_seqs - 1]) {
            fprintf(stderr, "pg-append-bench: seqs out of order (%" PRId64 " after %" PRId64 ")\n",
                    v, r->seqs[r->n_seqs - 1]);
            exit(1);
        }
        r->seqs[r->n_seqs++] = v;
    }
}

/* The unnest statement's eight array literals, e.g. "{1,2,3}" and "{NULL,21.5}". */
static void fill_arrays(run_t *r)
{
    for (int c = 0; c < NCOLS; c++) {
        r->arr[c].len = 0;
        sb_add(&r->arr[c], "{", 1);
    }
    for (int i = 0; i < r->group; i++) {
        const row_t *w = &r->rows[i];
        const char *sep = i ? "," : "";
        for (int c = 0; c < NCOLS; c++)
            sb_str(&r->arr[c], sep);
        sb_i64(&r->arr[0], w->device_id);
        sb_i64(&r->arr[1], w->key_id);
        sb_i64(&r->arr[2], w->ts);
        sb_str(&r->arr[3], "NULL");
        if (w->is_dbl) {
            sb_str(&r->arr[4], "NULL");
            sb_f64(&r->arr[5], w->d);
        } else {
            sb_i64(&r->arr[4], w->l);
            sb_str(&r->arr[5], "NULL");
        }
        sb_str(&r->arr[6], "NULL");
        sb_str(&r->arr[7], "NULL");
    }
    for (int c = 0; c < NCOLS; c++) {
        sb_add(&r->arr[c], "}", 1);
        r->val[c] = r->arr[c].p;
    }
}

/* Blocking: one statement, one round trip. */
static PGresult *exec_prepared(run_t *r, const char *name, int n_params, ExecStatusType want)
{
    PGresult *res = PQexecPrepared(r->conn, name, n_params, r->val, NULL, NULL, 0);
    r->round_trips++;
    if (PQresultStatus(res) != want) {
        fprintf(stderr, "pg-append-bench: %s: %s", name, PQresultErrorMessage(res));
        exit(1);
    }
    return res;
}

static void begin(run_t *r)
{
    exec_ok(r->conn, "BEGIN; " WRITER_LOCK); /* one round trip, as pg_write.c */
    r->round_trips++;
}

static void commit(run_t *r)
{
    PGresult *res = PQexec(r->conn, "COMMIT");
    r->round_trips++;
    check_commit(res);
    PQclear(res);
}

static void tx_multi(run_t *r)
{
    begin(r);
    for (int i = 0; i < r->group; i += r->cfg->stmt_rows) {
        int n = r->group - i < r->cfg->stmt_rows ? r->group - i : r->cfg->stmt_rows;
        char name[16];
        stmt_name(name, n);
        fill_params(r, i, n);
        PGresult *res = exec_prepared(r, name, n * NCOLS, PGRES_TUPLES_OK);
        take_seqs(r, res);
        PQclear(res);
    }
    commit(r);
}

static void tx_unnest(run_t *r)
{
    begin(r);
    fill_arrays(r);
    PGresult *res = exec_prepared(r, "u", NCOLS, PGRES_TUPLES_OK);
    take_seqs(r, res);
    PQclear(res);
    commit(r);
}

/* Pipeline mode: queue BEGIN, the lock, the inserts and COMMIT, one sync, then send and read
 * until the sync's result. The connection is non-blocking so that sending a large
 * transaction never waits on a server that is itself waiting for us to read its results. */
static void pipe_send(run_t *r, int ok, const char *what)
{
    if (!ok)
        die_conn(r->conn, what);
}

static void pipe_drain(run_t *r)
{
    PGconn *c = r->conn;
    bool flushing = true;
    int syncs = 1, idx = 0;
    while (syncs > 0) {
        if (flushing) {
            int f = PQflush(c);
            if (f < 0)
                die_conn(c, "flush");
            flushing = f == 1;
        }
        if (!PQconsumeInput(c))
            die_conn(c, "read");
        while (syncs > 0 && !PQisBusy(c)) {
            PGresult *res = PQgetResult(c);
            if (!res)
                continue; /* the end of one statement's results */
            switch (PQresultStatus(res)) {
            case PGRES_PIPELINE_SYNC:
                syncs--;
                break;
            case PGRES_TUPLES_OK:
                if (idx >= 2) /* 0: BEGIN, 1: the lock; then the inserts */
                    take_seqs(r, res);
                break;
            case PGRES_COMMAND_OK:
                if (strcmp(PQcmdStatus(res), "BEGIN") != 0)
                    check_commit(res);
                break;
            default:
                fprintf(stderr, "pg-append-bench: pipeline result %d: %s", idx,
                        PQresultErrorMessage(res));
                exit(1);
            }
            if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
                idx++;
            PQclear(res);
        }
        if (syncs == 0)
            break;
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN | (flushing ? POLLOUT : 0)};
        int pr = poll(&p, 1, IO_TIMEOUT_MS);
        if (pr == 0) {
            fprintf(stderr, "pg-append-bench: no progress for %d ms in a pipeline\n",
                    IO_TIMEOUT_MS);
            exit(1);
        }
        if (pr < 0 && errno != EINTR)
            die_conn(c, "poll");
    }
    r->round_trips++;
}

static void tx_pipeline(run_t *r, bool unnest)
{
    PGconn *c = r->conn;
    pipe_send(r, PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0), "BEGIN");
    pipe_send(r, PQsendQueryParams(c, WRITER_LOCK, 0, NULL, NULL, NULL, NULL, 0), "lock");
    if (unnest) {
        fill_arrays(r);
        pipe_send(r, PQsendQueryPrepared(c, "u", NCOLS, r->val, NULL, NULL, 0), "insert");
    } else {
        for (int i = 0; i < r->group; i += r->cfg->stmt_rows) {
            int n = r->group - i < r->cfg->stmt_rows ? r->group - i : r->cfg->stmt_rows;
            char name[16];
            stmt_name(name, n);
            fill_params(r, i, n); /* libpq copies the values into its buffer at once */
            pipe_send(r, PQsendQueryPrepared(c, name, n * NCOLS, r->val, NULL, NULL, 0), "insert");
        }
    }
    pipe_send(r, PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0), "COMMIT");
    pipe_send(r, PQpipelineSync(c), "sync");
    pipe_drain(r);
}

static void copy_field_sep(sbuf_t *b, bool last)
{
    sb_add(b, last ? "\n" : "\t", 1);
}

static void tx_copy(run_t *r)
{
    begin(r);
    int64_t first = r->n_seqs;
    if (r->cfg->copy_block) {
        for (int i = 0; i < r->group; i++) {
            if (r->blk_next >= r->blk_end) {
                char sql[256];
                snprintf(sql, sizeof sql, "SELECT nextval('%s_blk')", r->cfg->table);
                char *v = query_value(r->conn, sql);
                r->round_trips++;
                r->blk_next = strtoll(v, NULL, 10);
                r->blk_end = r->blk_next + BLOCK_SEQS;
                free(v);
            }
            r->seqs[r->n_seqs++] = r->blk_next++;
        }
    } else {
        char g[NUM_LEN];
        fmt_i64(g, r->group);
        r->val[0] = g;
        PGresult *res = exec_prepared(r, "reserve", 1, PGRES_TUPLES_OK);
        if (PQntuples(res) != r->group) {
            fprintf(stderr, "pg-append-bench: reserved %d seqs, wanted %d\n", PQntuples(res),
                    r->group);
            exit(1);
        }
        take_seqs(r, res);
        PQclear(res);
    }
    sbuf_t *b = &r->copy;
    b->len = 0;
    for (int i = 0; i < r->group; i++) {
        const row_t *w = &r->rows[i];
        sb_i64(b, r->seqs[first + i]);
        copy_field_sep(b, false);
        sb_i64(b, w->device_id);
        copy_field_sep(b, false);
        sb_i64(b, w->key_id);
        copy_field_sep(b, false);
        sb_i64(b, w->ts);
        copy_field_sep(b, false);
        sb_str(b, "\\N\t"); /* bool_v */
        if (w->is_dbl) {
            sb_str(b, "\\N\t");
            sb_f64(b, w->d);
            copy_field_sep(b, false);
        } else {
            sb_i64(b, w->l);
            sb_str(b, "\t\\N\t");
        }
        sb_str(b, "\\N\t\\N\n"); /* str_v, json_v */
    }
    char sql[256];
    snprintf(sql, sizeof sql, "COPY %s (seq, " COLS ") FROM STDIN", r->cfg->table);
    PGresult *res = PQexec(r->conn, sql);
    r->round_trips++;
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        fprintf(stderr, "pg-append-bench: %s: %s", sql, PQresultErrorMessage(res));
        exit(1);
    }
    PQclear(res);
    if (PQputCopyData(r->conn, b->p, (int)b->len) != 1 || PQputCopyEnd(r->conn, NULL) != 1)
        die_conn(r->conn, "COPY data");
    res = PQgetResult(r->conn);
    r->round_trips++;
    char want[32];
    snprintf(want, sizeof want, "COPY %d", r->group);
    if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(res), want) != 0) {
        fprintf(stderr, "pg-append-bench: COPY: %s%s\n", PQresultErrorMessage(res),
                PQcmdStatus(res));
        exit(1);
    }
    PQclear(res);
    while ((res = PQgetResult(r->conn)))
        PQclear(res);
    commit(r);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double quantile_ms(int64_t *us, int64_t n, double q)
{
    if (n == 0)
        return -1;
    int64_t i = (int64_t)(q * (double)(n - 1) + 0.5);
    return (double)us[i] / 1000.0;
}

/* Empties the table and checkpoints, so every run starts with the same table and no dirty
 * pages of the previous run to write. */
static void reset_table(PGconn *conn, const cfg_t *c)
{
    char sql[256];
    snprintf(sql, sizeof sql, "TRUNCATE %s RESTART IDENTITY", c->table);
    exec_ok(conn, sql);
    snprintf(sql, sizeof sql, "ALTER SEQUENCE %s_blk RESTART", c->table);
    exec_ok(conn, sql);
    PGresult *res = PQexec(conn, "CHECKPOINT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr,
                "pg-append-bench: CHECKPOINT refused (%s); runs may differ by the "
                "previous run's dirty pages\n",
                PQresultErrorMessage(res));
    PQclear(res);
}

static result_t one_run(const cfg_t *c, method_t m, int group, int round, int postmaster)
{
    run_t *r = xcalloc(1, sizeof *r);
    r->cfg = c;
    r->method = m;
    r->group = group;
    r->rows = xcalloc((size_t)group, sizeof *r->rows);
    r->conn = connect_db(c);
    reset_table(r->conn, c);
    snprintf(r->seq_name, sizeof r->seq_name, "%s_seq_seq", c->table);
    prepare_statements(r);
    bool pipe = m == M_PIPELINE || m == M_UNNEST_PIPE;
    if (pipe && (PQsetnonblocking(r->conn, 1) != 0 || PQenterPipelineMode(r->conn) != 1))
        die_conn(r->conn, "pipeline mode");
    int bpid = PQbackendPID(r->conn);

    size_t cap_tx = 1024;
    int64_t *lat = xmalloc(cap_tx * sizeof *lat);
    int64_t n_tx = 0, rows = 0;
    size_t cap_seqs = 0;
    double cl0 = client_cpu_us(), be0 = backend_cpu_us(bpid), cu0 = cluster_cpu_us(postmaster);
    int64_t t0 = now_us(), t_end = t0 + (int64_t)(c->duration_s * 1e6), t1 = t0;
    while (t1 < t_end) {
        make_rows(r);
        if (cap_seqs < (size_t)group) {
            cap_seqs = (size_t)group;
            r->seqs = xrealloc(r->seqs, cap_seqs * sizeof *r->seqs);
        }
        r->n_seqs = 0;
        int64_t ts = now_us();
        switch (m) {
        case M_MULTI:
            tx_multi(r);
            break;
        case M_PIPELINE:
            tx_pipeline(r, false);
            break;
        case M_UNNEST:
            tx_unnest(r);
            break;
        case M_UNNEST_PIPE:
            tx_pipeline(r, true);
            break;
        case M_COPY:
            tx_copy(r);
            break;
        case M_COUNT:
            break;
        }
        t1 = now_us();
        if (r->n_seqs != group) {
            fprintf(stderr, "pg-append-bench: %s: %" PRId64 " seqs for %d rows\n", method_names[m],
                    r->n_seqs, group);
            exit(1);
        }
        if ((size_t)n_tx == cap_tx) {
            cap_tx *= 2;
            lat = xrealloc(lat, cap_tx * sizeof *lat);
        }
        lat[n_tx++] = t1 - ts;
        rows += group;
    }
    double cl1 = client_cpu_us(), be1 = backend_cpu_us(bpid), cu1 = cluster_cpu_us(postmaster);

    if (pipe && (PQexitPipelineMode(r->conn) != 1 || PQsetnonblocking(r->conn, 0) != 0))
        die_conn(r->conn, "leaving pipeline mode");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", c->table);
    char *cnt = query_value(r->conn, sql);
    if (strtoll(cnt, NULL, 10) != rows) {
        fprintf(stderr,
                "pg-append-bench: %s: the table holds %s rows, %" PRId64 " were committed\n",
                method_names[m], cnt, rows);
        exit(1);
    }
    free(cnt);

    qsort(lat, (size_t)n_tx, sizeof *lat, cmp_i64);
    result_t res = {
        .method = m,
        .group = group,
        .round = round,
        .rows = rows,
        .txs = n_tx,
        .round_trips = r->round_trips,
        .elapsed_s = (double)(t1 - t0) / 1e6,
        .tx_p50_ms = quantile_ms(lat, n_tx, 0.5),
        .tx_p99_ms = quantile_ms(lat, n_tx, 0.99),
        .client_cpu_us = cl1 - cl0,
        .backend_cpu_us = be0 >= 0 && be1 >= be0 ? be1 - be0 : -1,
        .cluster_cpu_us = cu0 >= 0 && cu1 >= cu0 ? cu1 - cu0 : -1,
    };
    free(lat);
    PQfinish(r->conn);
    for (int i = 0; i < NCOLS; i++)
        free(r->arr[i].p);
    free(r->copy.p);
    free(r->seqs);
    free(r->rows);
    free(r);
    return res;
}

/* ---- report --------------------------------------------------------------------------------- */

static double per_row(double us, int64_t rows)
{
    return us >= 0 && rows > 0 ? us / (double)rows : -1;
}

static void print_json(const result_t *x, bool durable)
{
    printf("{\"method\":\"%s\",\"group\":%d,\"round\":%d,\"rows\":%" PRId64 ",\"txs\":%" PRId64
           ",\"elapsed_s\":%.3f,\"rows_per_s\":%.1f,\"tx_per_s\":%.1f,\"tx_p50_ms\":%.3f,"
           "\"tx_p99_ms\":%.3f,\"round_trips_per_tx\":%.2f,\"client_cpu_us_per_row\":%.3f,"
           "\"backend_cpu_us_per_row\":%.3f,\"cluster_cpu_us_per_row\":%.3f,\"durable\":%s}\n",
           method_names[x->method], x->group, x->round, x->rows, x->txs, x->elapsed_s,
           (double)x->rows / x->elapsed_s, (double)x->txs / x->elapsed_s, x->tx_p50_ms,
           x->tx_p99_ms, x->txs ? (double)x->round_trips / (double)x->txs : 0,
           per_row(x->client_cpu_us, x->rows), per_row(x->backend_cpu_us, x->rows),
           per_row(x->cluster_cpu_us, x->rows), durable ? "true" : "false");
    fflush(stdout);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    if (n == 0)
        return -1;
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void fmt_num(char out[static NUM_LEN], double v, int decimals)
{
    if (v < 0)
        snprintf(out, NUM_LEN, "-");
    else
        snprintf(out, NUM_LEN, "%.*f", decimals, v);
}

/* Medians over the rounds, one row per (group, method). */
static void print_table(const cfg_t *c, const result_t *res, int n_res)
{
    printf(
        "| rows/tx | method | rows/s | tx/s | tx p50 ms | tx p99 ms | round trips/tx "
        "| client CPU us/row | backend CPU us/row | cluster CPU us/row |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (int g = 0; g < c->n_groups; g++) {
        for (int m = 0; m < M_COUNT; m++) {
            if (!c->methods[m])
                continue;
            double v[8][64];
            int n = 0;
            for (int i = 0; i < n_res && n < 64; i++) {
                const result_t *x = &res[i];
                if (x->group != c->groups[g] || (int)x->method != m)
                    continue;
                v[0][n] = (double)x->rows / x->elapsed_s;
                v[1][n] = (double)x->txs / x->elapsed_s;
                v[2][n] = x->tx_p50_ms;
                v[3][n] = x->tx_p99_ms;
                v[4][n] = x->txs ? (double)x->round_trips / (double)x->txs : 0;
                v[5][n] = per_row(x->client_cpu_us, x->rows);
                v[6][n] = per_row(x->backend_cpu_us, x->rows);
                v[7][n] = per_row(x->cluster_cpu_us, x->rows);
                n++;
            }
            if (n == 0)
                continue;
            char f[8][NUM_LEN];
            static const int dec[8] = {0, 1, 2, 2, 1, 2, 2, 2};
            for (int k = 0; k < 8; k++)
                fmt_num(f[k], median(v[k], n), dec[k]);
            printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c->groups[g],
                   method_names[m], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
        }
    }
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs(
        "Usage: pg-append-bench [options] CONNINFO\n"
        "Appends telemetry rows to a ts_kv_log-shaped table in durable transactions of G\n"
        "rows, by each method, and reports rows/s, transactions/s and CPU per row.\n"
        "  -m, --methods LIST     multi,pipeline,unnest,unnest-pipeline,copy (all)\n"
        "  -g, --groups LIST      rows per transaction (100,1000,5000)\n"
        "  -d, --duration S       seconds per (method, group) run (5)\n"
        "  -r, --rounds N         rounds, interleaved; the table shows medians (1)\n"
        "  -c, --devices N        device ids the rows cycle over, 2 keys each (1000)\n"
        "      --rows-per-stmt N  rows per INSERT for multi/pipeline (32 = STORE_MULTI; 1..40)\n"
        "      --copy-seq series|block  COPY's seqs: SELECT nextval FROM generate_series in\n"
        "                         the transaction, or blocks of 4096 from a sequence with\n"
        "                         INCREMENT BY 4096 (series)\n"
        "      --table NAME       the benchmark's table, dropped and created (pg_append_bench)\n"
        "      --cluster-pid PID  postmaster whose processes' CPU is summed (default: the\n"
        "                         backend's parent, if the server runs on this host)\n"
        "      --allow-nondurable run even when fsync or synchronous_commit is off\n"
        "      --keep             keep the table afterwards\n"
        "      --json             one JSON line per run instead of the table\n"
        "CONNINFO: a libpq URL or key=value string (postgresql://user:pw@127.0.0.1:5432/db).\n",
        f);
}

static bool parse_methods(cfg_t *c, const char *s)
{
    memset(c->methods, 0, sizeof c->methods);
    char *dup = xstrdup(s), *save = NULL;
    bool ok = true;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int m = 0;
        if (strcmp(t, "all") == 0) {
            for (m = 0; m < M_COUNT; m++)
                c->methods[m] = true;
            continue;
        }
        while (m < M_COUNT && strcmp(t, method_names[m]) != 0)
            m++;
        if (m == M_COUNT) {
            fprintf(stderr, "pg-append-bench: unknown method '%s'\n", t);
            ok = false;
        } else {
            c->methods[m] = true;
        }
    }
    free(dup);
    return ok;
}

static bool parse_groups(cfg_t *c, const char *s)
{
    c->n_groups = 0;
    char *dup = xstrdup(s), *save = NULL;
    bool ok = true;
    for (char *t = strtok_r(dup, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
        long g = strtol(t, NULL, 10);
        ok = g >= 1 && g <= 1000000 && c->n_groups < MAX_GROUPS;
        if (ok)
            c->groups[c->n_groups++] = (int)g;
    }
    free(dup);
    return ok && c->n_groups > 0;
}

static bool valid_ident(const char *s)
{
    if (!*s || strlen(s) > 48)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_' || (p > s && *p >= '0' && *p <= '9')))
            return false;
    return true;
}

enum { O_ROWS = 256, O_COPYSEQ, O_TABLE, O_CLUSTER, O_NONDUR, O_KEEP, O_JSON };

int main(int argc, char **argv)
{
    cfg_t c = {
        .duration_s = 5, .rounds = 1, .devices = 1000, .stmt_rows = 32, .table = "pg_append_bench"};
    parse_methods(&c, "all");
    parse_groups(&c, "100,1000,5000");
    static const struct option opts[] = {{"methods", 1, 0, 'm'},
                                         {"groups", 1, 0, 'g'},
                                         {"duration", 1, 0, 'd'},
                                         {"rounds", 1, 0, 'r'},
                                         {"devices", 1, 0, 'c'},
                                         {"rows-per-stmt", 1, 0, O_ROWS},
                                         {"copy-seq", 1, 0, O_COPYSEQ},
                                         {"table", 1, 0, O_TABLE},
                                         {"cluster-pid", 1, 0, O_CLUSTER},
                                         {"allow-nondurable", 0, 0, O_NONDUR},
                                         {"keep", 0, 0, O_KEEP},
                                         {"json", 0, 0, O_JSON},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "m:g:d:r:c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'm':
            if (!parse_methods(&c, optarg))
                return 2;
            break;
        case 'g':
            if (!parse_groups(&c, optarg)) {
                fprintf(stderr, "pg-append-bench: bad --groups '%s'\n", optarg);
                return 2;
            }
            break;
        case 'd':
            c.duration_s = atof(optarg);
            break;
        case 'r':
            c.rounds = atoi(optarg);
            break;
        case 'c':
            c.devices = atoi(optarg);
            break;
        case O_ROWS:
            c.stmt_rows = atoi(optarg);
            break;
        case O_COPYSEQ:
            if (strcmp(optarg, "series") != 0 && strcmp(optarg, "block") != 0) {
                fprintf(stderr, "pg-append-bench: --copy-seq series|block\n");
                return 2;
            }
            c.copy_block = strcmp(optarg, "block") == 0;
            break;
        case O_TABLE:
            c.table = optarg;
            break;
        case O_CLUSTER:
            c.cluster_pid = atoi(optarg);
            break;
        case O_NONDUR:
            c.allow_nondurable = true;
            break;
        case O_KEEP:
            c.keep = true;
            break;
        case O_JSON:
            c.json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    c.conninfo = argv[optind];
    if (!(c.duration_s > 0 && c.duration_s <= 3600) || c.rounds < 1 || c.rounds > 64 ||
        c.devices < 1 || c.stmt_rows < 1 || c.stmt_rows > MAX_STMT_ROWS || !valid_ident(c.table)) {
        fprintf(stderr,
                "pg-append-bench: bad option value (duration 0..3600 s, rounds 1..64, "
                "rows-per-stmt 1..%d, table [a-z_][a-z0-9_]*)\n",
                MAX_STMT_ROWS);
        return 2;
    }

    PGconn *conn = connect_db(&c);
    char *fsync_v = query_value(conn, "SHOW fsync");
    char *sync_v = query_value(conn, "SHOW synchronous_commit");
    char *fpw_v = query_value(conn, "SHOW full_page_writes");
    char *ver = query_value(conn, "SHOW server_version");
    bool durable = strcmp(fsync_v, "on") == 0 && strcmp(sync_v, "on") == 0;
    fprintf(stderr,
            "pg-append-bench: PostgreSQL %s, fsync=%s synchronous_commit=%s "
            "full_page_writes=%s\n",
            ver, fsync_v, sync_v, fpw_v);
    if (!durable && !c.allow_nondurable) {
        fprintf(stderr,
                "pg-append-bench: the server does not make commits durable (fsync and "
                "synchronous_commit must be on); --allow-nondurable to run anyway\n");
        return 1;
    }
    free(fsync_v);
    free(sync_v);
    free(fpw_v);
    free(ver);
    int postmaster = c.cluster_pid;
    if (!postmaster) {
        int pp = 0;
        if (proc_ticks(PQbackendPID(conn), false, &pp) >= 0)
            postmaster = pp;
    }
    if (cluster_cpu_us(postmaster) < 0)
        fprintf(stderr,
                "pg-append-bench: the server's processes are not visible here: no "
                "server CPU figures\n");

    char sql[512];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s; DROP SEQUENCE IF EXISTS %s_blk", c.table,
             c.table);
    exec_ok(conn, sql);
    /* ts_kv_log's shape (migration 2). */
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (seq BIGSERIAL PRIMARY KEY, device_id BIGINT NOT NULL,"
             " key_id BIGINT NOT NULL, ts BIGINT NOT NULL, bool_v BOOLEAN, long_v BIGINT,"
             " dbl_v DOUBLE PRECISION, str_v TEXT, json_v TEXT);"
             " CREATE SEQUENCE %s_blk INCREMENT BY %d",
             c.table, c.table, BLOCK_SEQS);
    exec_ok(conn, sql);

    int n_methods = 0;
    for (int m = 0; m < M_COUNT; m++)
        n_methods += c.methods[m];
    result_t *res = xcalloc((size_t)(c.rounds * c.n_groups * n_methods), sizeof *res);
    int n_res = 0;
    for (int round = 1; round <= c.rounds; round++) {
        for (int g = 0; g < c.n_groups; g++) {
            for (int m = 0; m < M_COUNT; m++) {
                if (!c.methods[m])
                    continue;
                result_t x = one_run(&c, (method_t)m, c.groups[g], round, postmaster);
                res[n_res++] = x;
                if (c.json)
                    print_json(&x, durable);
                fprintf(stderr,
                        "pg-append-bench: round %d, %d rows/tx, %-15s %9.0f rows/s "
                        "%7.1f tx/s, cluster CPU %.2f us/row\n",
                        round, x.group, method_names[m], (double)x.rows / x.elapsed_s,
                        (double)x.txs / x.elapsed_s, per_row(x.cluster_cpu_us, x.rows));
            }
        }
    }
    if (!c.json)
        print_table(&c, res, n_res);
    if (!c.keep) {
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s; DROP SEQUENCE IF EXISTS %s_blk",
                 c.table, c.table);
        exec_ok(conn, sql);
    }
    free(res);
    PQfinish(conn);
    return 0;
}
