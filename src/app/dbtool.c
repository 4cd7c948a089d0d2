/* dbtool.c — `coaphub db VERB`: moving an installation and backing the SQLite store up, run
 * beside (or instead of) the server on the same machine.
 *
 *   coaphub db copy --from SRC --to DST    every row of SRC into the empty DST, counts checked
 *   coaphub db backup --from DB --to FILE  SQLite: a consistent copy, safe while a server runs
 *
 * A database is named as --database names it: a PostgreSQL URL (postgresql://..., jdbc:...,
 * or libpq's key=value form) or a SQLite file path. Exit status: 0 done; 64 usage; 65 the
 * destination is not empty or exists; 70 the copy failed or the counts differ.
 */
#include "app/dbtool.h"

#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

static const char USAGE[] =
    "usage: coaphub db copy --from SRC --to DST\n"
    "       coaphub db backup --from DB.sqlite --to FILE\n"
    "\n"
    "  copy    copies every row of SRC into DST, which must be empty (a new SQLite file or a\n"
    "          new PostgreSQL database), reading SRC in one snapshot, then compares the row\n"
    "          count of every table. SQLite -> PostgreSQL, PostgreSQL -> SQLite, or alike.\n"
    "  backup  writes a consistent copy of a SQLite database to FILE (must not exist), safe\n"
    "          while the server runs (SQLite's online backup). For PostgreSQL use pg_dump.\n"
    "\n"
    "A database is a PostgreSQL URL (postgresql://user:pass@host:port/db, jdbc:postgresql://...,\n"
    "or \"host=... dbname=...\") or the path of a SQLite file (the server's is\n"
    "DATA_DIR/coaphub.db). Exit status: 0 ok, 64 usage, 65 destination not empty or exists,\n"
    "70 failed or counts differ.\n";

static void cfg_for(store_cfg_t *cfg, const char *db)
{
    store_cfg_default(cfg);
    cfg->read_pool = 1;
    cfg->disk_reserve_bytes = 0; /* a tool's copy is no server's data dir */
    cfg->path = db;
    cfg->database_url = db;
    if (!store_cfg_is_postgresql(cfg))
        cfg->database_url = NULL;
}

int dbtool_main(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : NULL;
    const char *from = NULL, *to = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from = argv[++i];
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return EX_OK;
        } else {
            fprintf(stderr, "coaphub db: unknown argument '%s'\n%s", argv[i], USAGE);
            return EX_USAGE;
        }
    }
    if (verb && strcmp(verb, "--help") == 0) {
        fputs(USAGE, stdout);
        return EX_OK;
    }
    if (!verb || !from || !to || (strcmp(verb, "copy") != 0 && strcmp(verb, "backup") != 0)) {
        fputs(USAGE, stderr);
        return EX_USAGE;
    }
    store_cfg_t src, dst;
    cfg_for(&src, from);
    cfg_for(&dst, to);
    char err[ERR_LEN];
    int r;
    if (strcmp(verb, "backup") == 0) {
        r = store_backup(&src, to, err);
        if (r == 0)
            printf("backup of %s written to %s\n", from, to);
    } else {
        r = store_copy(&src, &dst, stdout, err);
        if (r == 0)
            printf("copied: every table's rows match\n");
    }
    if (r == 0)
        return EX_OK;
    fprintf(stderr, "coaphub db %s: %s\n", verb, err);
    return r == ERR_CONFLICT || r == -EEXIST ? EX_DATAERR : r == -ENOTSUP ? EX_USAGE : EX_SOFTWARE;
}
