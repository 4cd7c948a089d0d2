"""coap_attack.py — the hostile CoAP clients of the limit tests (issue 17), on loopback only.

Each scenario runs a legitimate device and an attacker side by side and prints one JSON object
of what it saw; the calling test_*.sh asserts on it. Another loopback address (127.0.0.2,
127.0.0.3, ...) stands for another host: the server limits per source address. Every loop is
bounded in count and time.

  python3 coap_attack.py block1 PORT LEGIT_TOKEN ATTACK_TOKENS(comma-separated) SOCKETS
  python3 coap_attack.py rate PORT VICTIM_TOKEN FLOOD_TOKEN SAMPLES
  python3 coap_attack.py oversize PORT TOKEN
"""
import json
import multiprocessing
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402

HOST = "127.0.0.1"
RETRANSMISSIONS = [0]  # CONs of the legitimate device resent after 1 s without an answer


class Mids:
    def __init__(self, seed):
        self.n = seed & 0xFFFF

    def next(self):
        self.n = (self.n + 1) & 0xFFFF
        return self.n


def block1_upload(sock, port, token, mids, n_blocks=4, szx=6, tag=0):
    """A Block1 telemetry upload of n_blocks blocks, lock-step (RFC 7959 §2.5). Returns the
    list of response codes, one per block, stopping at the first unexpected one."""
    size = 16 << szx
    body = json.dumps({"b1": tag, "pad": "x" * (n_blocks * size)}).encode()[: n_blocks * size]
    # keep it valid JSON: replace the tail so the body ends the object
    body = body[: n_blocks * size - 2] + b'"}'
    codes = []
    path = c.path_options("/api/v1/%s/telemetry" % token)
    for num in range(n_blocks):
        more = num < n_blocks - 1
        chunk = body[num * size:(num + 1) * size]
        msg = c.encode(c.CON, c.POST, mids.next(), b"\x42%c" % (num & 0xFF),
                       path + [(c.BLOCK1, c.block_opt(num, more, szx))], chunk)
        # a real client retransmits a CON that got no answer (RFC 7252 §4.2; same MID, so
        # the server's dedup answers it): a datagram the kernel dropped while the flood
        # filled the server's socket is not a refusal
        r = None
        for _ in range(4):
            r = c.exchange(sock, port, msg, wait=1.0)
            if r:
                break
            RETRANSMISSIONS[0] += 1
        code = r["code"] if r else "timeout"
        codes.append(code)
        if code != ("2.31" if more else "2.01"):
            break
    return codes


def upload_ok(codes):
    return bool(codes) and codes[-1] == "2.01"


def flood_block1(port, token, sockets, blocks, addr, done):
    """The issue's attack: `sockets` source ports, each sending `blocks` 1 KiB blocks with
    More=1 (never the last block) to /api/v1/TOKEN/telemetry, without waiting for answers;
    then more ports sending block 0 alone until the server's memory is full."""
    path = c.path_options("/api/v1/%s/telemetry" % token)
    payload = b"A" * 1024
    sent = 0
    for i in range(sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        for num in range(blocks):
            msg = c.encode(c.CON, c.POST, (i * blocks + num) & 0xFFFF, b"\x01",
                           path + [(c.BLOCK1, c.block_opt(num, True, 6))], payload)
            s.sendto(msg, (HOST, port))
            sent += 1
        s.close()
        if i % 16 == 15:
            time.sleep(0.002)  # keep the kernel's queue from overflowing: we test the server
    # Top-up: where a server keeps these, the appends that met its memory cap freed their
    # transfers again (and blocks the kernel dropped ended others with 4.08), so memory is
    # left below the cap. New ports send block 0 alone, one at a time, until 20 in a row are
    # refused 5.03 (full) or 2,000 were sent.
    refused_in_row = 0
    for i in range(2000):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        s.settimeout(1.0)
        r = c.exchange(s, port, c.encode(c.CON, c.POST, i, b"\x02",
                                         path + [(c.BLOCK1, c.block_opt(0, True, 6))],
                                         payload), wait=1.0)
        s.close()
        sent += 1
        refused_in_row = refused_in_row + 1 if r and r["code"] == "5.03" else 0
        if refused_in_row >= 20:
            break
    done.put(sent)


def scenario_block1(port, legit, attack_tokens, sockets):
    out = {}
    mids = Mids(os.getpid())
    ls = c.udp_socket(3.0)
    out["baseline"] = block1_upload(ls, port, legit, mids, tag=1)
    # 1. unknown token, many ports of one address, in a second process; the legitimate
    # device keeps uploading meanwhile and once more after it
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=flood_block1,
                                args=(port, "NOT-A-TOKEN", sockets, 16, "127.0.0.2", q))
    t0 = time.monotonic()
    p.start()
    during = []
    while p.is_alive() and time.monotonic() - t0 < 60 and len(during) < 200:
        during.append(block1_upload(ls, port, legit, mids, tag=2))
    p.join(60)
    out["flood_sent"] = q.get(timeout=5) if not q.empty() else 0
    out["flood_seconds"] = round(time.monotonic() - t0, 2)
    time.sleep(0.3)  # the server drains its socket
    after = [block1_upload(ls, port, legit, mids, tag=3) for _ in range(3)]
    out["during_ok"] = sum(upload_ok(u) for u in during)
    out["during_total"] = len(during)
    out["during_bad"] = [u for u in during if not upload_ok(u)][:3]
    out["after"] = after
    # 2. valid tokens: 5 devices x 5 ports from one address start uploads and leave them
    tokens = attack_tokens
    started = []
    socks = []
    amids = Mids(0x3000)
    for i in range(25):
        s = c.udp_socket(3.0, "127.0.0.3")
        socks.append(s)
        tok = tokens[i % len(tokens)]
        msg = c.encode(c.CON, c.POST, amids.next(), b"\x07",
                       c.path_options("/api/v1/%s/telemetry" % tok) +
                       [(c.BLOCK1, c.block_opt(0, True, 6))], b"B" * 1024)
        r = c.exchange(s, port, msg, wait=3.0)
        started.append({"code": r["code"] if r else "timeout",
                        "max_age": c.opt_uint(r, c.MAX_AGE) if r else None})
    out["addr_codes"] = [x["code"] for x in started]
    out["addr_refused_max_age"] = [x["max_age"] for x in started if x["code"] == "5.03"]
    out["legit_during_addr_cap"] = block1_upload(ls, port, legit, mids, tag=4)
    out["legit_retransmissions"] = RETRANSMISSIONS[0]
    for s in socks:
        s.close()
    print(json.dumps(out))


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def victim_run(port, token, samples, interval, mids, base=0):
    """`samples` CON telemetry posts, one at a time every `interval` s; returns (codes,
    latencies in ms)."""
    s = c.udp_socket(3.0)
    codes, lat = [], []
    path = c.path_options("/api/v1/%s/telemetry" % token)
    nxt = time.monotonic()
    for i in range(samples):
        msg = c.encode(c.CON, c.POST, mids.next(), b"\x09", path, b'{"v":%d}' % (base + i))
        t = time.monotonic()
        r = c.exchange(s, port, msg, wait=3.0)
        lat.append((time.monotonic() - t) * 1000.0)
        codes.append(r["code"] if r else "timeout")
        # on schedule, but never two requests within 5 ms: a late answer is not caught up
        # with back-to-back requests (two points in one millisecond would share a timestamp)
        nxt += interval
        time.sleep(max(0.005, nxt - time.monotonic()))
    s.close()
    return codes, lat


def paced_flood(port, path, rate, seconds, addr, q):
    """CON requests at `rate` per second for `seconds`, from one socket of addr,
    reading every answer; reports the codes seen and the Max-Age values of 4.29 answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 0))
    s.setblocking(False)
    opts = c.path_options(path)
    codes, ages = {}, set()
    t0 = time.monotonic()
    n = 0
    end = t0 + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - t0) * rate)
        while n < due:
            s.sendto(c.encode(c.CON, c.POST, n & 0xFFFF, b"\x05", opts, b'{"f":1}'), (HOST, port))
            n += 1
        try:
            while True:
                data = s.recv(2048)
                r = c.decode(data)
                if r:
                    codes[r["code"]] = codes.get(r["code"], 0) + 1
                    if r["code"] == "4.29":
                        ages.add(c.opt_uint(r, c.MAX_AGE))
        except BlockingIOError:
            pass
        time.sleep(0.001)
    deadline = time.monotonic() + 1.0
    s.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            r = c.decode(s.recv(2048))
        except (socket.timeout, BlockingIOError):
            break
        if r:
            codes[r["code"]] = codes.get(r["code"], 0) + 1
            if r["code"] == "4.29":
                ages.add(c.opt_uint(r, c.MAX_AGE))
    q.put({"sent": n, "codes": codes, "max_ages": sorted(a for a in ages if a is not None),
           "no_max_age": None in ages})


def scenario_rate(port, victim, flooder, samples):
    out = {}
    mids = Mids(os.getpid())
    # baseline of the victim alone, then the same under two floods: one device at 500/s
    # from 127.0.0.2 and unknown tokens at 1000/s from 127.0.0.3 (reliability.md C7)
    codes, lat = victim_run(port, victim, samples, 0.02, mids)
    out["baseline_codes"] = {k: codes.count(k) for k in set(codes)}
    out["baseline_p50_ms"] = round(percentile(lat, 0.5), 3)
    out["baseline_p99_ms"] = round(percentile(lat, 0.99), 3)
    seconds = samples * 0.02 + 1.0
    q1, q2 = multiprocessing.Queue(), multiprocessing.Queue()
    p1 = multiprocessing.Process(target=paced_flood, args=(
        port, "/api/v1/%s/telemetry" % flooder, 500, seconds, "127.0.0.2", q1))
    p2 = multiprocessing.Process(target=paced_flood, args=(
        port, "/api/v1/BAD-TOKEN/telemetry", 1000, seconds, "127.0.0.3", q2))
    p1.start()
    p2.start()
    time.sleep(0.5)  # the floods are at full rate and the buckets empty before we measure
    codes, lat = victim_run(port, victim, samples, 0.02, mids, base=samples)
    out["attack_codes"] = {k: codes.count(k) for k in set(codes)}
    out["attack_p50_ms"] = round(percentile(lat, 0.5), 3)
    out["attack_p99_ms"] = round(percentile(lat, 0.99), 3)
    out["device_flood"] = q1.get(timeout=seconds + 10)
    out["address_flood"] = q2.get(timeout=seconds + 10)
    p1.join(10)
    p2.join(10)
    # duplicates: a request refused 4.29 and sent again with the same MID gets the same
    # answer from the dedup cache
    s = c.udp_socket(3.0, "127.0.0.2")
    path = c.path_options("/api/v1/%s/telemetry" % flooder)
    dup = []
    for _ in range(2):
        msg = c.encode(c.CON, c.POST, 0x7777, b"\x77", path, b'{"d":1}')
        # first drain the bucket with fresh MIDs, then the replayed pair
        for j in range(60):
            s.sendto(c.encode(c.NON, c.POST, 0x6000 + j, b"\x66", path, b'{"d":0}'), (HOST, port))
        r1 = c.exchange(s, port, msg)
        r2 = c.exchange(s, port, msg)
        dup.append([r1 and r1["code"], r2 and r2["code"], r1 and r2 and r1["mid"] == r2["mid"]])
        break
    out["duplicate"] = dup[0]
    print(json.dumps(out))


def scenario_oversize(port, token):
    out = {}
    s = c.udp_socket(3.0)
    path = c.path_options("/api/v1/%s/telemetry" % token)
    big = b'{"big":"' + b"y" * 3000 + b'"}'
    for name, mtype in (("con", c.CON), ("non", c.NON)):
        msg = c.encode(mtype, c.POST, 0x1200 + mtype, b"\x13\x14", path, big)
        s.sendto(msg, (HOST, port))
        try:
            r = c.decode(s.recv(2048))
        except socket.timeout:
            r = None
        out[name] = None if r is None else {
            "code": r["code"], "type": r["type"], "mid": r["mid"], "token": r["token"].hex(),
            "size1": c.opt_uint(r, c.SIZE1), "block1": c.opt_uint(r, c.BLOCK1),
            "len": len(c.encode(r["type"], 0, 0, r["token"], r["options"], r["payload"]))}
    out["request_len"] = len(msg)
    # an oversize ACK (not a request) gets nothing; the server still answers afterwards
    s.sendto(c.encode(c.ACK, 0x45, 0x1300, b"", (), b"z" * 2000), (HOST, port))
    s.settimeout(0.5)
    try:
        out["ack_answer"] = c.decode(s.recv(2048))["code"]
    except socket.timeout:
        out["ack_answer"] = None
    s.settimeout(3.0)
    r = c.exchange(s, port, c.encode(c.CON, c.POST, 0x1400, b"\x15", path, b'{"small":1}'))
    out["small"] = r and r["code"]
    print(json.dumps(out))


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "block1":
        scenario_block1(port, sys.argv[3], sys.argv[4].split(","), int(sys.argv[5]))
    elif kind == "rate":
        scenario_rate(port, sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif kind == "oversize":
        scenario_oversize(port, sys.argv[3])
    else:
        sys.exit("unknown scenario " + kind)
