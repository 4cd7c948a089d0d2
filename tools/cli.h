/* cli.h — shared declarations of coaphub-cli, the admin client over coaphub's REST API.
 *
 * The CLI is a thin ThingsBoard-compatible REST client: it logs in once per run, turns a verb
 * into one or a few HTTP calls and prints a table (or raw JSON with --json). It keeps no state
 * between runs and never prints the JWT, the password or a device token it was not asked for.
 * Exit codes come from sysexits.h (see cli_exit_for_status()).
 */
#ifndef COAPHUB_TOOLS_CLI_H
#define COAPHUB_TOOLS_CLI_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    const char *url;      /* base URL without trailing slash, e.g. http://127.0.0.1:8080 */
    const char *user;     /* tenant administrator e-mail */
    const char *password; /* never logged or printed */
    int json;             /* print raw JSON instead of tables */
    long timeout_ms;      /* whole-request timeout for HTTP calls */
    char *jwt;            /* access token after cli_login(); owned */
} cli_t;

/* One HTTP exchange's result. body is NUL-terminated (possibly empty); json is the parsed body
 * when it is JSON, else NULL. Both owned by the response; free with cli_resp_fini(). */
typedef struct {
    long status; /* HTTP status, 0 if the request never got an answer */
    char *body;
    size_t len;
    json_t *json;
} cli_resp_t;

/* Performs METHOD url+path with an optional JSON body (not consumed). Adds the JWT header when
 * logged in. Returns 0 when an HTTP answer arrived (any status), EX_UNAVAILABLE otherwise (and
 * says why on stderr). */
int cli_http(cli_t *c, const char *method, const char *path, const json_t *body, cli_resp_t *r);
void cli_resp_fini(cli_resp_t *r);

/* cli_http() on a printf-formatted path, for a call that succeeds with 200: any other status
 * is reported as the failure of `what` (cli_fail) and mapped to its sysexits code. Returns 0 or
 * that code; r holds whatever arrived and needs cli_resp_fini() in every case. */
int cli_call(cli_t *c, const char *method, const json_t *body, const char *what, cli_resp_t *r,
             const char *path_fmt, ...) __attribute__((format(printf, 6, 7)));

/* Logs in with user/password unless already logged in. Returns 0 or a sysexits code. */
int cli_login(cli_t *c);

/* Prints the server's error (TB's "message", else the raw body) to stderr and maps the HTTP
 * status to a sysexits code. */
int cli_fail(const cli_resp_t *r, const char *what);
int cli_exit_for_status(long status);

/* Percent-encodes s for a URL path segment or query value; caller frees. */
char *cli_escape(const char *s);

/* Paging through a list: entities per request, and a bound on the requests. */
#define CLI_LIST_PAGE 100
#define CLI_LIST_MAX_PAGES 10000

/* Every entity of a paged list (ThingsBoard's PageData), all pages, as one new array in *out.
 * path is the list's path and its fixed query ("/api/otaPackages?sortProperty=..&sortOrder=.."),
 * search an optional textSearch, what names the call in errors. 0 or a sysexits code. */
int cli_list_all(cli_t *c, const char *what, const char *path, const char *search, json_t **out);

/* Logs in (cli_login) and looks a device up by name; on success *dev is a new reference to the
 * device JSON and *id points into it. Returns 0 or a sysexits code (EX_NOINPUT when no such
 * device). */
int cli_device_by_name(cli_t *c, const char *name, json_t **dev, const char **id);

/* Logs in and looks a device profile up by its exact name; on success *prof is a new reference
 * to the DeviceProfile JSON and *id points into it. Returns 0 or a sysexits code (EX_NOINPUT
 * when no such profile). */
int cli_profile_by_name(cli_t *c, const char *name, json_t **prof, const char **id);

/* Prints v as indented JSON on stdout. */
void cli_print_json(const json_t *v);

/* Verb entry points: argv[0] is the verb itself. Return a sysexits code. */
int cli_cmd_device(cli_t *c, int argc, char **argv);
int cli_cmd_telemetry(cli_t *c, int argc, char **argv);
int cli_cmd_attr(cli_t *c, int argc, char **argv);
int cli_cmd_rpc(cli_t *c, int argc, char **argv);
int cli_cmd_profile(cli_t *c, int argc, char **argv);
int cli_cmd_ota(cli_t *c, int argc, char **argv);
int cli_cmd_sessions(cli_t *c, int argc, char **argv);

/* Argument parsing shared by the verbs: options may appear anywhere after the verb; the
 * global options (--url, --user, --password, --json) are accepted there too. */
typedef struct {
    const char *name;   /* long option without dashes, e.g. "token" */
    const char **value; /* set when the option takes a value */
    int *flag;          /* set to 1 when it is a plain flag */
} cli_opt_t;

/* Fills pos[] (at most max_pos) with the positional arguments after argv[0]. Returns the count,
 * -1 on a usage error (already reported), -2 when --help was given. */
int cli_parse(cli_t *c, int argc, char **argv, const cli_opt_t *opts, char **pos, int max_pos);

/* Prints a verb's usage: on stdout when asked for (rc EX_OK), on stderr after a bad command
 * line. Returns rc. */
int cli_usage(const char *usage, int rc);

/* The first step of every verb: cli_parse() for min_pos..max_pos positional arguments, with
 * --help and a bad command line answered by the verb's usage. Returns the count of positional
 * arguments, or -1 when the verb is done: *rc is then its exit code (EX_OK after --help, else
 * EX_USAGE). *rc is 0 otherwise. */
int cli_args(cli_t *c, int argc, char **argv, const char *usage, const cli_opt_t *opts, char **pos,
             int min_pos, int max_pos, int *rc);

#endif
