/* dbtool.h — `coaphub db VERB ...` (dbtool.c): copy between stores, SQLite backup. */
#ifndef COAPHUB_APP_DBTOOL_H
#define COAPHUB_APP_DBTOOL_H

/* argv[0] is "db"; returns the process exit status (sysexits.h). */
int dbtool_main(int argc, char **argv);

#endif
