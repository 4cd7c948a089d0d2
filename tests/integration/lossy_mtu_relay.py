#!/usr/bin/env python3
"""lossy_mtu_relay.py — a lossy, reordering UDP link with a small MTU (test_dtls_lossy_mtu.sh).

    lossy_mtu_relay.py SERVER_PORT PORT_FILE STATS_FILE STOP_FILE [SEED] [MAX_SECONDS]

`tc qdisc netem` needs privileges the CI machine does not give, so the link of reliability.md
D6 is played in user space. Listens on a free port of 127.0.0.1 (written to PORT_FILE); each
client address gets an upstream socket of its own towards 127.0.0.1:SERVER_PORT, so the server
sees every client at its own address. Each way:
- 10 % of datagrams are dropped (random.Random(SEED): the same run drops the same datagrams);
- every 7th datagram is held back until the next one of that direction has passed
  (reordering; a held datagram still waiting after 200 ms is sent anyway);
- every datagram the server sends is measured: the test asserts none is larger than the UDP
  payload a 576-byte IPv4 MTU carries (576 - 20 IP - 8 UDP = 548).
It also reads the DTLS record headers of the server's epoch-0 handshake records: the same
handshake fragment (message_seq, fragment_offset) sent twice to one client is a
retransmission, and one sent >= 0.5 s after the last datagram from that client reached the
server was started by the server's own timer (not an answer to a client's retransmission).
Bounded: stops when STOP_FILE exists or after MAX_SECONDS (default 120). Writes JSON stats.
"""
import json
import os
import random
import select
import socket
import sys
import time

BUDGET = 576 - 28
LOSS = 0.10
HOLD_EVERY = 7


def handshake_fragments(data):
    """(message_seq, fragment_offset) of each epoch-0 handshake record in a datagram."""
    out, i = [], 0
    while i + 13 <= len(data):
        ctype, epoch = data[i], int.from_bytes(data[i + 3:i + 5], "big")
        length = int.from_bytes(data[i + 11:i + 13], "big")
        body = data[i + 13:i + 13 + length]
        if ctype == 22 and epoch == 0 and len(body) >= 12:
            out.append((body[0], int.from_bytes(body[4:6], "big"),
                        int.from_bytes(body[6:9], "big")))
        i += 13 + length
    return out


class Direction:
    def __init__(self, rng):
        self.rng, self.n, self.held = rng, 0, None
        self.passed = self.dropped = self.reordered = 0

    def send(self, sock, data, addr):
        """Applies loss and reordering to one datagram; sends what may go now."""
        self.n += 1
        if self.rng.random() < LOSS:
            self.dropped += 1
            return
        if self.held is None and self.n % HOLD_EVERY == 0:
            self.held = (sock, data, addr, time.monotonic())
            return
        sock.sendto(data, addr)
        self.passed += 1
        if self.held is not None:
            self.flush()
            self.reordered += 1

    def flush(self, older_than=None):
        if self.held is None:
            return
        if older_than is not None and time.monotonic() - self.held[3] < older_than:
            return
        sock, data, addr, _ = self.held
        self.held = None
        try:
            sock.sendto(data, addr)
        except OSError:
            pass
        self.passed += 1


def main():
    server = ("127.0.0.1", int(sys.argv[1]))
    port_file, stats_file, stop_file = sys.argv[2], sys.argv[3], sys.argv[4]
    rng = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 576)
    max_s = float(sys.argv[6]) if len(sys.argv) > 6 else 120.0
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 0))
    with open(port_file + ".tmp", "w") as f:
        f.write(str(front.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    up_dir, down_dir = Direction(rng), Direction(rng)
    ups = {}          # client address -> upstream socket
    clients = {}      # upstream socket -> client address
    last_up = {}      # client address -> when its last datagram went to the server
    seen = {}         # client address -> handshake fragments the server sent it
    st = {"server_datagrams": 0, "server_max": 0, "server_over_budget": 0,
          "client_datagrams": 0, "client_max": 0, "retransmitted_fragments": 0,
          "timer_retransmissions": 0, "clients": 0, "budget": BUDGET}
    start = time.monotonic()
    while time.monotonic() - start < max_s and not os.path.exists(stop_file):
        ready, _, _ = select.select([front] + list(clients), [], [], 0.1)
        for s in ready:
            try:
                data, addr = s.recvfrom(65535)
            except OSError:
                continue
            if s is front:
                up = ups.get(addr)
                if up is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.bind(("127.0.0.1", 0))
                    ups[addr], clients[up] = up, addr
                    st["clients"] += 1
                st["client_datagrams"] += 1
                st["client_max"] = max(st["client_max"], len(data))
                before = up_dir.dropped
                up_dir.send(up, data, server)
                if up_dir.dropped == before:
                    last_up[addr] = time.monotonic()
            else:
                addr = clients[s]
                st["server_datagrams"] += 1
                st["server_max"] = max(st["server_max"], len(data))
                st["server_over_budget"] += len(data) > BUDGET
                frags = seen.setdefault(addr, set())
                for fr in handshake_fragments(data):
                    if fr in frags:
                        st["retransmitted_fragments"] += 1
                        if time.monotonic() - last_up.get(addr, 0) >= 0.5:
                            st["timer_retransmissions"] += 1
                    frags.add(fr)
                down_dir.send(front, data, addr)
        up_dir.flush(0.2)
        down_dir.flush(0.2)
    for d, name in ((up_dir, "to_server"), (down_dir, "to_client")):
        st[name] = {"passed": d.passed, "dropped": d.dropped, "reordered": d.reordered}
    with open(stats_file + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(stats_file + ".tmp", stats_file)


if __name__ == "__main__":
    main()
