#!/usr/bin/env python3
"""slowloris.py — a bounded slowloris against coaphub's HTTP front (test_http_slowloris.sh).

Opens CONNS TCP connections to 127.0.0.1:PORT spread over ADDRS source addresses
(127.0.0.2, 127.0.0.3, ...), sends the start of a request on each, then one more header byte
every DRIP seconds, reopening every connection the server closes (as a real attacker would),
until DURATION seconds have passed; then closes everything. Never runs longer than DURATION
plus a second. Prints one JSON line: connections opened, refused or closed by the server, and
the most held open at once.

usage: slowloris.py PORT CONNS ADDRS DRIP DURATION
"""
import errno
import json
import selectors
import socket
import sys
import time


def main():
    port, conns, addrs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    drip, duration = float(sys.argv[4]), float(sys.argv[5])
    end = time.monotonic() + duration
    sel = selectors.DefaultSelector()
    st = {"opened": 0, "connect_failed": 0, "closed_by_server": 0, "max_open": 0}
    slots = [None] * conns  # socket or None

    def open_slot(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((f"127.0.0.{2 + i % addrs}", 0))
            rc = s.connect_ex(("127.0.0.1", port))
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, "connect")
        except OSError:
            s.close()
            st["connect_failed"] += 1
            return
        slots[i] = s
        sel.register(s, selectors.EVENT_READ, i)
        st["opened"] += 1

    def drop(i, by_server):
        s = slots[i]
        if s is None:
            return
        sel.unregister(s)
        s.close()
        slots[i] = None
        if by_server:
            st["closed_by_server"] += 1

    for i in range(conns):
        open_slot(i)
    started = {}
    next_drip = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_drip:
            next_drip = now + drip
            for i, s in enumerate(slots):
                if s is None:
                    open_slot(i)
                    continue
                try:
                    if i not in started:
                        s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
                        started[i] = True
                    else:
                        s.send(b"X")
                except BlockingIOError:
                    pass
                except OSError:
                    started.pop(i, None)
                    drop(i, True)
            st["max_open"] = max(st["max_open"], sum(1 for s in slots if s is not None))
        for key, _ in sel.select(timeout=max(0.0, min(next_drip, end) - time.monotonic())):
            i = key.data
            try:
                data = slots[i].recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed (or refused) by the server
                started.pop(i, None)
                drop(i, True)
    for i in range(conns):
        drop(i, False)
    print(json.dumps(st), flush=True)


if __name__ == "__main__":
    main()
