/* notify.h — the service manager's readiness protocol (systemd's sd_notify(3)): READY=1 once
 * the daemon serves, RELOADING=1 / READY=1 around a SIGHUP reload, STOPPING=1 at SIGTERM,
 * WATCHDOG=1 keep-alives. Everything is a no-op when $NOTIFY_SOCKET is not set (as in
 * libsystemd), so the daemon behaves the same under any other supervisor or none.
 */
#ifndef COAPHUB_CORE_NOTIFY_H
#define COAPHUB_CORE_NOTIFY_H

#include <stdint.h>
#include <sys/types.h>

/* Sends one state string ("READY=1", several assignments separated by '\n') to the socket
 * $NOTIFY_SOCKET names. 1 sent, 0 nothing to do (the variable is unset or empty), or a
 * negative errno (the address is unusable, the manager is gone). Any thread. */
int notify_send(const char *state);
/* The same to an explicit address: a path ("/run/systemd/notify") or an abstract socket name
 * written with a leading '@'. NULL or "" is the unset case (0). */
int notify_send_to(const char *address, const char *state);

/* "RELOADING=1\nMONOTONIC_USEC=<now>": sent before a reload; READY=1 ends it. The time is
 * CLOCK_MONOTONIC in microseconds, as Type=notify-reload requires. */
int notify_reloading(void);

/* The watchdog interval the manager asks for: $WATCHDOG_USEC when it is a positive number
 * and $WATCHDOG_PID is unset or names this process; 0 otherwise (no watchdog). */
int64_t notify_watchdog_usec(void);
/* The same from explicit values (tests): usec and pid as the variables hold them, or NULL. */
int64_t notify_watchdog_parse(const char *usec, const char *pid, pid_t self);

#endif
