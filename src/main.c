/* main.c — argv, configuration, signals, run. Nothing else. */
#include "app/config.h"
#include "app/dbtool.h"
#include "app/server.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/notify.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

/* Tells the service manager (systemd's Type=notify / notify-reload; a no-op without
 * $NOTIFY_SOCKET) and logs a failure once: the daemon runs on either way. */
static void tell_manager(const char *state)
{
    static bool warned;
    int rc = notify_send(state);
    if (rc < 0 && !warned) {
        warned = true;
        LOG_W("main", "cannot notify the service manager at $NOTIFY_SOCKET: %s", err_str(rc));
    }
}

/* Waits for SIGTERM, SIGINT or SIGHUP. With a watchdog (wd_ms > 0) it wakes every wd_ms to
 * send WATCHDOG=1, but only while every shard loop is turning (server_heartbeat): a wedged
 * shard stops the keep-alives and lets the manager restart the daemon. */
static int wait_signal(const sigset_t *set, server_t *srv, int64_t wd_ms, int64_t *next_ping)
{
    for (;;) {
        if (wd_ms <= 0) {
            int sig = 0;
            if (sigwait(set, &sig) == 0)
                return sig;
            continue;
        }
        int64_t left = *next_ping - clock_mono_ms();
        if (left <= 0) {
            if (server_heartbeat(srv))
                tell_manager("WATCHDOG=1");
            *next_ping = clock_mono_ms() + wd_ms;
            continue;
        }
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return sig;
        /* EAGAIN: time to ping; EINTR: a signal we do not wait for (none expected) */
    }
}

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
    /* Every listener is bound, migrations ran and the shards serve: ready. The watchdog is
     * fed at a third of the manager's interval (at most half is asked for), so one late
     * wake-up of a loaded machine does not cost a restart. */
    tell_manager("READY=1\nSTATUS=serving");
    int64_t wd_ms = notify_watchdog_usec() / 3000;
    if (notify_watchdog_usec() > 0 && wd_ms < 1)
        wd_ms = 1;
    if (wd_ms > 0)
        LOG_I("main", "service manager watchdog: keep-alive every %lld ms", (long long)wd_ms);
    int64_t next_ping = clock_mono_ms();
    for (;;) {
        int sig = wait_signal(&set, srv, wd_ms, &next_ping);
        if (sig == SIGHUP) {
            /* notify-reload: RELOADING=1 with the time, then READY=1 when done, also after a
             * failed reload (the daemon serves on with what it had). */
            int nr = notify_reloading();
            if (nr < 0)
                LOG_W("main", "cannot notify the service manager of the reload: %s", err_str(nr));
            if (server_reload(srv, err) == 0) {
                LOG_I("main", "SIGHUP: provisioning profiles and server certificate reloaded");
                tell_manager("READY=1\nSTATUS=serving (reloaded)");
            } else {
                LOG_E("main", "SIGHUP: reload failed, keeping the old certificate: %s", err);
                tell_manager("READY=1\nSTATUS=serving (last reload failed, see the log)");
            }
            continue;
        }
        LOG_I("main", "signal %d: stopping", sig);
        break;
    }
    /* Said before the stop begins, so the manager waits for the exit rather than judging a
     * slow stop a hang (TimeoutStopSec still bounds it). */
    tell_manager("STOPPING=1\nSTATUS=stopping: answering requests in flight");
    /* A second SIGTERM/SIGINT during shutdown exits at once. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    server_stop(srv);
    LOG_I("main", "stopped");
    config_free(&cfg);
    return 0;
}
