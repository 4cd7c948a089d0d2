#!/usr/bin/env python3
"""dtls_halfopen.py — a half-open DTLS handshake flood (reliability D3, issue #17 hole 2).

Each handshake is a fresh UDP socket (a new source port) on one of the 127/8 source
addresses given: a ClientHello, the server's HelloVerifyRequest parsed, the ClientHello again
with the cookie echoed (so it passes DTLSv1_listen and costs the server a peer), then the
socket is closed without ever answering the server's flight: a stalled handshake.

Bounded: stops after --max handshakes, --seconds, or when --stop-file appears. Phase 1 sends
--burst handshakes as fast as it can from the first address; phase 2 spreads the rest over
the other addresses at --rate per second. After --ready-after handshakes it creates
--ready-file (the caller then starts its real device). Prints one summary line:
  handshakes N cookies C admitted A unanswered U seconds S
where admitted counts cookie-valid hellos the server answered with a ServerHello flight.
"""
import argparse
import os
import select
import socket
import struct
import sys
import time

SUITES = [0xC0AE, 0xC02B, 0xC02F]  # ECDHE-ECDSA-AES128-CCM8, -GCM-SHA256, ECDHE-RSA-AES128-GCM


def ext(t, body):
    return struct.pack("!HH", t, len(body)) + body


EXTS = (ext(0x000A, struct.pack("!HH", 2, 0x0017))          # supported_groups: secp256r1
        + ext(0x000B, b"\x01\x00")                          # ec_point_formats: uncompressed
        + ext(0x000D, struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401))  # signature_algorithms
        + ext(0x0017, b""))                                 # extended_master_secret


def client_hello(rnd, cookie, seq):
    body = (struct.pack("!H", 0xFEFD) + rnd + b"\x00" + bytes([len(cookie)]) + cookie
            + struct.pack("!H", 2 * len(SUITES)) + b"".join(struct.pack("!H", s) for s in SUITES)
            + b"\x01\x00" + struct.pack("!H", len(EXTS)) + EXTS)
    n = len(body).to_bytes(3, "big")
    hs = b"\x01" + n + struct.pack("!H", seq) + b"\x00\x00\x00" + n + body
    return (b"\x16\xfe\xfd" + b"\x00\x00" + seq.to_bytes(6, "big")
            + struct.pack("!H", len(hs)) + hs)


def hvr_cookie(d):
    """The cookie of a HelloVerifyRequest datagram, or None."""
    if len(d) < 13 + 12 + 3 or d[0] != 22 or d[13] != 3:
        return None
    n = d[13 + 12 + 2]
    c = d[13 + 12 + 3:13 + 12 + 3 + n]
    return c if len(c) == n else None


def run_batch(port, srcs, st):
    """One handshake per source address in srcs, together; updates the counters in st."""
    socks = []
    for src in srcs:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.setblocking(False)
        rnd = os.urandom(32)
        s.sendto(client_hello(rnd, b"", 0), ("127.0.0.1", port))
        socks.append([s, rnd, None])
    # The HelloVerifyRequests (1 s at most), then the hellos with their cookie.
    waiting = {e[0]: e for e in socks}
    deadline = time.monotonic() + 1.0
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], max(0.0, deadline - time.monotonic()))
        for s in ready:
            try:
                c = hvr_cookie(s.recv(4096))
            except OSError:
                c = None
            e = waiting.pop(s)
            if c is not None:
                e[2] = c
                st["cookies"] += 1
                s.sendto(client_hello(e[1], c, 1), ("127.0.0.1", port))
    # A ServerHello flight means the server made a peer for it (0.25 s at most).
    waiting = {e[0]: e for e in socks if e[2] is not None}
    deadline = time.monotonic() + 0.25
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], max(0.0, deadline - time.monotonic()))
        for s in ready:
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if len(d) > 13 and d[0] == 22 and d[13] == 2:
                st["admitted"] += 1
                del waiting[s]
    st["unanswered"] += len(waiting)
    st["handshakes"] += len(srcs)
    for e in socks:
        e[0].close()  # abandoned: the server's flight and its retransmissions go nowhere


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--burst-src", default="127.0.0.9")
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--srcs", type=int, default=20, help="phase-2 addresses 127.0.0.10 ...")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--max", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--ready-after", type=int, default=300)
    ap.add_argument("--ready-file")
    ap.add_argument("--stop-file")
    a = ap.parse_args()
    st = {"handshakes": 0, "cookies": 0, "admitted": 0, "unanswered": 0}
    t0 = time.monotonic()
    for i in range(0, a.burst, 10):
        run_batch(a.port, [a.burst_src] * min(10, a.burst - i), st)
    srcs = ["127.0.0.%d" % (10 + i) for i in range(a.srcs)]
    k = 0
    while st["handshakes"] < a.max and time.monotonic() - t0 < a.seconds:
        if a.stop_file and os.path.exists(a.stop_file):
            break
        t_batch = time.monotonic()
        batch = [srcs[(k + j) % len(srcs)] for j in range(10)]
        k += 10
        run_batch(a.port, batch, st)
        if a.ready_file and st["handshakes"] >= a.ready_after and not os.path.exists(a.ready_file):
            open(a.ready_file, "w").close()
        # Pace phase 2: 10 handshakes per 10/rate seconds at most, never catching up in a
        # burst after a slow batch (a burst of fresh handshakes is a different test).
        delay = 10 / a.rate - (time.monotonic() - t_batch)
        if delay > 0:
            time.sleep(delay)
    if a.ready_file and not os.path.exists(a.ready_file):
        open(a.ready_file, "w").close()
    print("handshakes %d cookies %d admitted %d unanswered %d seconds %.1f" % (
        st["handshakes"], st["cookies"], st["admitted"], st["unanswered"], time.monotonic() - t0))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
