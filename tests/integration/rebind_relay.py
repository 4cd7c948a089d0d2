#!/usr/bin/env python3
"""rebind_relay.py — a UDP relay that plays a NAT rebinding its mapping (test_dtls_cid.sh).

    rebind_relay.py SERVER_PORT TRIGGER PORT_FILE STATS_FILE [MAX_SECONDS]

Listens on a free port of 127.0.0.1 (written to PORT_FILE) for one device and forwards its
datagrams to 127.0.0.1:SERVER_PORT from a socket of its own; answers go back to the device.
Once the file TRIGGER exists, the next datagram from the device goes out from a NEW socket
(another source port), and the old one is closed: the server sees the device at a new address,
as after a NAT rebinding. Bounded: stops after MAX_SECONDS (default 60), or 5 s after the
last datagram once it has rebound. Writes what it did as JSON to STATS_FILE.
"""
import json
import os
import select
import socket
import sys
import time


def main():
    server = ("127.0.0.1", int(sys.argv[1]))
    trigger, port_file, stats_file = sys.argv[2], sys.argv[3], sys.argv[4]
    max_s = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dev.bind(("127.0.0.1", 0))
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.bind(("127.0.0.1", 0))
    stats = {"ports": [up.getsockname()[1]], "to_server": 0, "from_server": 0,
             "to_server_after_rebind": 0, "from_server_after_rebind": 0}
    with open(port_file + ".tmp", "w") as f:
        f.write(str(dev.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    device = None
    rebound = False
    start = last = time.monotonic()
    while True:
        now = time.monotonic()
        if now - start > max_s or (rebound and now - last > 5.0):
            break
        ready, _, _ = select.select([dev, up], [], [], 0.2)
        for s in ready:
            data, addr = s.recvfrom(65535)
            last = time.monotonic()
            if s is dev:
                device = addr
                if not rebound and os.path.exists(trigger):
                    up.close()
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.bind(("127.0.0.1", 0))
                    stats["ports"].append(up.getsockname()[1])
                    rebound = True
                up.sendto(data, server)
                stats["to_server"] += 1
                stats["to_server_after_rebind"] += rebound
            elif device is not None:
                dev.sendto(data, device)
                stats["from_server"] += 1
                stats["from_server_after_rebind"] += rebound
    with open(stats_file, "w") as f:
        json.dump(stats, f)


if __name__ == "__main__":
    main()
