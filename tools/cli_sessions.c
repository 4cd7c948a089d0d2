/* cli_sessions.c — `coaphub-cli sessions save`: asks the server to write its DTLS sessions to
 * the saved-sessions file while it keeps running (POST /api/coaphub/dtls/sessions/save). */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

int cli_cmd_sessions(cli_t *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: coaphub-cli sessions save\n"
        "Writes the server's established DTLS sessions to <data-dir>/dtls-sessions.bin while it\n"
        "keeps running, so that a start after a crash resumes the sessions that stayed quiet\n"
        "since (the others, and everything after --dtls-session-save-max-age, handshake\n"
        "again). A clean stop (SIGTERM) saves by itself. See docs/operations.md.\n";
    const cli_opt_t opts[] = {{NULL, NULL, NULL}};
    char *pos[1];
    int rc, n = cli_args(c, argc, argv, usage, opts, pos, 1, 1, &rc);
    if (n < 0)
        return rc;
    if (strcmp(pos[0], "save") != 0) {
        fprintf(stderr, "error: unknown sessions verb '%s'\n", pos[0]);
        return cli_usage(usage, EX_USAGE);
    }
    if ((rc = cli_login(c)) != 0)
        return rc;
    cli_resp_t r;
    rc = cli_call(c, "POST", NULL, "sessions save", &r, "/api/coaphub/dtls/sessions/save");
    if (rc == 0 && c->json && r.json) {
        cli_print_json(r.json);
    } else if (rc == 0) {
        json_int_t saved = json_integer_value(json_object_get(r.json, "saved"));
        json_int_t not_saved = json_integer_value(json_object_get(r.json, "notSaved"));
        printf("%lld DTLS session(s) saved", (long long)saved);
        if (not_saved > 0)
            printf(", %lld on OpenSSL's record layer not saved", (long long)not_saved);
        printf("\n");
    }
    cli_resp_fini(&r);
    return rc;
}
