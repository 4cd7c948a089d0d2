/* main.c — argv, configuration, signals, run. Nothing else. */
#include "app/config.h"
#include "app/dbtool.h"
#include "app/server.h"
#include "core/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "db") == 0)
        return dbtool_main(argc - 1, argv + 1);
    config_t cfg;
    config_result_t r = config_load(&cfg, argc, argv);
    if (r != CONFIG_RUN) {
        config_free(&cfg);
        return r == CONFIG_EXIT_OK ? 0 : EX_USAGE;
    }
    log_level_t level;
    if (log_parse_level(cfg.log_level, &level) != 0) {
        fprintf(stderr, "coaphub: --log-level must be error, warn, info or debug\n");
        config_free(&cfg);
        return EX_USAGE;
    }
    log_set_level(level);
    log_set_json(cfg.log_json);
    if (cfg.print_config || cfg.check_config) {
        if (cfg.print_config)
            config_print(&cfg, stdout);
        config_free(&cfg);
        return 0;
    }

    /* Every thread inherits this mask; only this thread receives the signals, by sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[ERR_LEN] = "";
    server_t *srv = server_start(&cfg, err);
    if (!srv) {
        LOG_E("main", "cannot start: %s", err);
        config_free(&cfg);
        return 1;
    }
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGHUP) {
            if (server_reload(srv, err) == 0)
                LOG_I("main", "SIGHUP: provisioning profiles and server certificate reloaded");
            else
                LOG_E("main", "SIGHUP: reload failed, keeping the old certificate: %s", err);
            continue;
        }
        LOG_I("main", "signal %d: stopping", sig);
        break;
    }
    /* A second SIGTERM/SIGINT during shutdown exits at once. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    server_stop(srv);
    LOG_I("main", "stopped");
    config_free(&cfg);
    return 0;
}
