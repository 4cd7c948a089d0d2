"""outage_load.py — telemetry load and single probes for test_pg_outage.sh, recording every
answer with its time, so the test can tell what the server said before, during and after an
outage of its database.

usage: outage_load.py load PORT OUT_FILE STOP_FILE MAX_SECONDS TS0 TOKEN...
       outage_load.py probe PORT OUT_FILE TOKEN N TS0

load: each token is one device sending CON POST {"ts":TS0+N,"values":{"v":N}} with N = 1, 2,
3 ..., one request in flight per device, at most 50 a second each, until STOP_FILE exists (or
MAX_SECONDS have passed). probe: one such request with the given N, waiting up to 1 s; prints
"CODE MAX_AGE". Every answer is appended to OUT_FILE (flushed at once) as one line:

    TOKEN N CODE MAX_AGE T_SENT T_ANSWERED

CODE is the response code ("2.01", "5.03", ...) or "none" when nothing came within 1 s (the
request is abandoned: the server owes nothing for it); MAX_AGE is the Max-Age option's value
(RFC 7252 §5.10.5, option 14) or "-" when the answer has none; the times are wall-clock
seconds (time.time()), comparable with `date +%s.%N` in the shell. All traffic goes to
127.0.0.1.
"""
import os
import random
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402

MAX_AGE = 14
MIN_GAP_S = 0.02
TIMEOUT_S = 1.0


def options(data):
    """The options of a datagram as {number: [bytes, ...]}; {} if it is not CoAP."""
    out = {}
    if len(data) < 4 or data[0] >> 6 != 1:
        return out
    i, num = 4 + (data[0] & 0x0F), 0
    try:
        while i < len(data) and data[i] != 0xFF:
            nibs = [data[i] >> 4, data[i] & 0x0F]
            i += 1
            for k in (0, 1):
                if nibs[k] == 13:
                    nibs[k], i = data[i] + 13, i + 1
                elif nibs[k] == 14:
                    nibs[k], i = ((data[i] << 8) | data[i + 1]) + 269, i + 2
                elif nibs[k] == 15:
                    return out  # reserved: a broken message, no options to trust
            num += nibs[0]
            if i + nibs[1] > len(data):
                return out
            out.setdefault(num, []).append(bytes(data[i:i + nibs[1]]))
            i += nibs[1]
    except IndexError:
        pass
    return out


def max_age(data):
    v = options(data).get(MAX_AGE)
    return "-" if not v else str(int.from_bytes(v[0], "big"))


class Dev:
    def __init__(self, tok):
        self.tok, self.sock, self.n = tok, c.udp_socket(0.0), 0
        self.mid, self.ctok, self.sent, self.busy = random.randrange(65000), b"", 0.0, False
        self.t_sent = 0.0

    def send(self, port, ts0, n=None):
        self.n = self.n + 1 if n is None else n
        self.mid = (self.mid + 1) % 65000
        self.ctok = os.urandom(4)
        msg = c.encode(c.CON, c.POST, self.mid, self.ctok,
                       c.path_options("/api/v1/%s/telemetry" % self.tok),
                       b'{"ts":%d,"values":{"v":%d}}' % (ts0 + self.n, self.n))
        self.sent, self.t_sent, self.busy = time.monotonic(), time.time(), True
        self.sock.sendto(msg, ("127.0.0.1", port))

    def receive(self, port):
        """The final answer to the request in flight as (code, max_age), or None."""
        try:
            data = self.sock.recv(65536)
        except OSError:
            return None
        m = c.decode(data)
        if m is None or not self.busy:
            return None
        if m["type"] == c.CON:  # a separate response: acknowledge it
            self.sock.sendto(c.encode(c.ACK, 0, m["mid"]), ("127.0.0.1", port))
        mine = (m["type"] == c.ACK and m["mid"] == self.mid) or m["token"] == self.ctok
        if not mine or m["code"] == "0.00":
            return None
        self.busy = False
        return m["code"], max_age(data)


def record(out, d, code, age):
    out.write("%s %d %s %s %.6f %.6f\n" % (d.tok, d.n, code, age, d.t_sent, time.time()))


def load(port, out, stop_file, seconds, ts0, tokens):
    devs = [Dev(t) for t in tokens]
    end = time.monotonic() + seconds
    counts = {}
    while time.monotonic() < end and not os.path.exists(stop_file):
        now = time.monotonic()
        for d in devs:
            if not d.busy and now - d.sent >= MIN_GAP_S:
                d.send(port, ts0)
            elif d.busy and now - d.sent > TIMEOUT_S:
                d.busy = False
                record(out, d, "none", "-")
                counts["none"] = counts.get("none", 0) + 1
        r, _, _ = select.select([d.sock for d in devs], [], [], 0.02)
        for s in r:
            d = next(x for x in devs if x.sock is s)
            got = d.receive(port)
            if got:
                record(out, d, *got)
                counts[got[0]] = counts.get(got[0], 0) + 1
    # The requests still in flight get their answer or their timeout.
    deadline = time.monotonic() + TIMEOUT_S
    while any(d.busy for d in devs) and time.monotonic() < deadline:
        r, _, _ = select.select([d.sock for d in devs if d.busy], [], [], 0.05)
        for s in r:
            d = next(x for x in devs if x.sock is s)
            got = d.receive(port)
            if got:
                record(out, d, *got)
    for d in devs:
        if d.busy:
            record(out, d, "none", "-")
    print(" ".join("%s:%d" % kv for kv in sorted(counts.items())))


def probe(port, out, tok, n, ts0):
    d = Dev(tok)
    d.send(port, ts0, n)
    deadline = time.monotonic() + TIMEOUT_S
    got = None
    while got is None and time.monotonic() < deadline:
        r, _, _ = select.select([d.sock], [], [], max(0.0, deadline - time.monotonic()))
        if r:
            got = d.receive(port)
    code, age = got if got else ("none", "-")
    record(out, d, code, age)
    print(code, age)


def main():
    mode = sys.argv[1]
    port = int(sys.argv[2])
    out = open(sys.argv[3], "a", buffering=1)
    if mode == "load":
        load(port, out, sys.argv[4], float(sys.argv[5]), int(sys.argv[6]), sys.argv[7:])
    elif mode == "probe":
        probe(port, out, sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    else:
        sys.exit("usage: outage_load.py load|probe ...")


if __name__ == "__main__":
    main()
