#!/usr/bin/env python3
"""malformed_flood.py — reliability R5, a live malformed flood (test_malformed_flood.sh).

Phase A sends --count datagrams (default 100,000) to the plain CoAP port of the running
server, and --dtls-count (default 5,000) to its DTLS port; phase B then sends --auth-count
(default 20,000) mutated requests that carry a real device's token. Every reply is checked
against the request it answers. Exact, not statistical: every datagram is classified here,
before it is sent, and every reply is matched to the one datagram it answers.

What is sent (seeded; the same --seed gives the same bytes):
  corpus   tests/fuzz/corpus/coap_pdu/* whole, and split into the fuzz target's
           [length byte][bytes] datagrams (each distinct one once)
  zzuf     valid ThingsBoard requests mutated by zzuf (random bit flips at 0.4 %, 2 % and 8 %;
           Debian package zzuf, run as a filter over a concatenation of requests which is
           split back at the same offsets: zzuf keeps lengths). Phase A's carry tokens no
           device has (they parse, then get 4.01 at admission); phase B's the real one's
  trunc    valid requests cut short at a random length
  version  valid requests with version 0, 2 or 3
  foreign  other protocols' datagrams (DNS, NTP, TLS ClientHello, SSDP/HTTP, QUIC, SNMP,
           STUN) and random bytes of 0..300 bytes
  dtls     (DTLS port) zzuf-mutated and truncated ClientHellos, application-data and alert
           records of epoch 1 without a session, random bytes

Matching. Each phase's flood comes from --sockets sockets on four 127.0.0.x addresses (not
127.0.0.1, where the real device is). Bytes 2-3 of every datagram of 4 bytes or more (the
CoAP Message ID) are rewritten to a value unique on its socket, and the token of every
well-formed request to a value unique within its window (token bytes are opaque: neither
change decides whether the rest parses, which is classified after the rewrite). An ACK or
RST is matched by its MID, a response the server starts itself (separate or NON response)
by its token. Datagrams go out in windows of up to --window on one socket (at most one
token-less NON request each), each closed by a fence: an empty CON (a ping), answered with
RST after everything before it on that socket. The next window waits until the fence's RST
and every answer the window must get have come (bounded), so the server is never flooded
faster than it answers: this is not a throughput test.

Rules (RFC 7252):
  not CoAP (< 4 bytes, version != 1)            no reply at all (§11.5: silent drop)
  version 1 but not parseable, CON               exactly one reply: RST, or ACK 4.00 (more
                                                 options than the server indexes), never
                                                 larger than the request (§4.2)
  version 1 but not parseable, NON/ACK/RST       no reply
  parseable empty or response-class CON          exactly one RST (§4.2, §4.3)
  parseable CON request                          exactly one ACK (piggybacked or empty)
  parseable NON request                          at most one response
  parseable anything else                        no reply
  every reply to a parseable request             size recorded; phase A: <= --max-ratio x
                                                 the request
  DTLS port                                      only HelloVerifyRequests, <= the datagram

Also: a real device (coap-client-notls, POST telemetry from 127.0.0.1) is served 2.01
during the floods (--probes times in phase A, once in B, while windows keep going), and the
server's VmRSS is read at the start, after --warmup datagrams of phase A (and 2/5 of the DTLS
flood), every 10,000 datagrams and at the end of each phase. Prints one JSON object; exits 1
with the reasons on stderr when a rule was broken.
"""
import argparse
import json
import os
import random
import re
import select
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402
import dtls_halfopen as dh  # noqa: E402

HOST = "127.0.0.1"
MAX_DATAGRAM = 1600   # the server's plain CoAP buffer: larger is test_coap_oversize's subject
MAX_OPTS = 64         # COAP_PDU_MAX_OPTS: a 65th option is answered 4.00, not RST
TOKEN_MAX = 8

# ---------------------------------------------------------------------------------------------
# Classification: an RFC 7252 parser of our own, mirroring what a correct server must decide.


def classify(d):
    """Returns (cls, info). cls: 'short' and 'version' (not CoAP), 'malformed' (version 1,
    format error), 'too_many_options', or 'ok'. info: dict type, code, mid, tkl."""
    if len(d) < 4:
        return "short", None
    info = {"type": (d[0] >> 4) & 3, "code": d[1], "mid": (d[2] << 8) | d[3], "tkl": d[0] & 15}
    if d[0] >> 6 != 1:
        return "version", info
    tkl = info["tkl"]
    if tkl > TOKEN_MAX or len(d) < 4 + tkl:
        return "malformed", info
    if info["code"] == 0 and len(d) != 4:
        return "malformed", info   # §4.1: an Empty message has nothing after the MID
    i, num, n = 4 + tkl, 0, 0
    while i < len(d):
        b = d[i]
        if b == 0xFF:
            return ("malformed" if i + 1 == len(d) else "ok"), info
        i += 1
        vals = []
        for nib in (b >> 4, b & 15):
            if nib == 13:
                if i + 1 > len(d):
                    return "malformed", info
                vals.append(13 + d[i])
                i += 1
            elif nib == 14:
                if i + 2 > len(d):
                    return "malformed", info
                vals.append(269 + (d[i] << 8 | d[i + 1]))
                i += 2
            elif nib == 15:
                return "malformed", info
            else:
                vals.append(nib)
        delta, olen = vals
        if i + olen > len(d):
            return "malformed", info
        num += delta
        if num > 0xFFFF:
            return "malformed", info
        if n == MAX_OPTS:
            return "too_many_options", info
        n += 1
        i += olen
    return "ok", info


def is_request(info):
    return info["code"] >> 5 == 0 and info["code"] != 0


def tokenless_non(d):
    """A NON request without a token: its response can only be told from another's by
    arriving before the fence (so a window holds one at most)."""
    cls, info = classify(d)
    return cls == "ok" and info["type"] == c.NON and is_request(info) and info["tkl"] == 0


# ---------------------------------------------------------------------------------------------
# Generation.


def valid_requests(token, unknown):
    """Well-formed ThingsBoard device requests (spec: thingsboard-coap.md §1)."""
    t, u = token, unknown
    p = c.path_options
    cf_json = [(c.CONTENT_FORMAT, b"\x32")]
    return [
        c.encode(c.CON, c.POST, 1, b"\x01\x02", p("/api/v1/%s/telemetry" % t),
                 b'{"temperature":21.5,"humidity":40,"on":true}'),
        c.encode(c.CON, c.POST, 2, b"\x03", p("/api/v1/%s/telemetry" % t) + cf_json,
                 b'{"ts":1700000000000,"values":{"a":[1,{"b":null}],"s":"x"}}'),
        c.encode(c.NON, c.POST, 3, b"\x04\x05\x06\x07", p("/api/v1/%s/telemetry" % t),
                 b'[{"k":1},{"k2":2.5}]'),
        c.encode(c.CON, c.POST, 4, b"\x08", p("/api/v1/%s/attributes" % t), b'{"fw":"1.0"}'),
        c.encode(c.CON, c.GET, 5, b"\x09\x0a",
                 p("/api/v1/%s/attributes?clientKeys=fw&sharedKeys=cfg" % t)),
        c.encode(c.CON, c.POST, 6, b"\x0b", p("/api/v1/%s/rpc/5" % t), b'{"ok":1}'),
        c.encode(c.CON, c.POST, 7, b"\x0c", p("/api/v1/%s/claim" % t),
                 b'{"secretKey":"s","durationMs":1000}'),
        c.encode(c.CON, c.POST, 8, b"\x0d\x0e\x0f",
                 p("/api/v1/%s/telemetry" % t) + [(c.BLOCK1, c.block_opt(0, True, 0))],
                 b"{\"blockwise\":123"),
        c.encode(c.CON, c.POST, 9, b"\x10", p("/api/v1/provision"),
                 b'{"deviceName":"d","provisionDeviceKey":"k","provisionDeviceSecret":"s"}'),
        c.encode(c.CON, c.GET, 10, b"\x11\x12", [(c.OBSERVE, b"")] + p("/api/v1/%s/rpc" % u)),
        c.encode(c.CON, c.POST, 11, b"\x13", p("/api/v1/%s/telemetry" % u), b'{"x":1}'),
        c.encode(c.NON, c.GET, 12, b"\x14", p("/api/v1/%s/attributes" % u)),
        c.encode(c.CON, c.GET, 13, b"", p("/.well-known/core")),
        c.encode(c.CON, c.PUT, 14, b"\x15\x16\x17\x18\x19\x1a\x1b\x1c",
                 p("/api/v1/%s/telemetry" % t), b'{"put":1}'),
        c.encode(c.CON, 0, 15),                    # ping
    ]


def zzuf_mutate(msgs, seed, ratio):
    """Each of msgs mutated by one zzuf run over their concatenation (lengths are kept)."""
    blob = b"".join(msgs)
    out = subprocess.run(["zzuf", "-s", str(seed), "-r", str(ratio)], input=blob,
                         stdout=subprocess.PIPE, check=True, timeout=60).stdout
    if len(out) != len(blob):
        raise SystemExit("zzuf changed the length (%d -> %d)" % (len(blob), len(out)))
    res, off = [], 0
    for m in msgs:
        res.append(out[off:off + len(m)])
        off += len(m)
    return res


def foreign(rnd):
    """A datagram of another protocol (never CoAP version 1: the first byte's top bits
    decide, and each of these is checked by classify anyway)."""
    k = rnd.randrange(8)
    r = lambda n: bytes(rnd.getrandbits(8) for _ in range(n))  # noqa: E731
    if k == 0:   # DNS query for example.com A
        return (r(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                + b"\x07example\x03com\x00\x00\x01\x00\x01")
    if k == 1:   # NTP v4 client request (first byte 0x23: LI 0, VN 4, mode 3)
        return b"\x23" + bytes(39) + r(8)
    if k == 2:   # TLS 1.2 ClientHello record header + start
        body = b"\x03\x03" + r(32) + b"\x00\x00\x02\xc0\x2b\x01\x00"
        hs = b"\x01" + len(body).to_bytes(3, "big") + body
        return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs
    if k == 3:   # SSDP M-SEARCH (HTTP over UDP)
        return (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n"
                b"MX: 1\r\nST: ssdp:all\r\n\r\n")
    if k == 4:   # QUIC long header Initial
        return b"\xc3\x00\x00\x00\x01\x08" + r(8) + b"\x00\x44\xd0" + r(rnd.randrange(20, 200))
    if k == 5:   # SNMP GetRequest (BER sequence)
        return b"\x30\x26\x02\x01\x01\x04\x06public\xa0\x19" + r(27)
    if k == 6:   # STUN binding request
        return b"\x00\x01\x00\x00\x21\x12\xa4\x42" + r(12)
    return r(rnd.randrange(0, 300))


def split_fuzz_input(data):
    """The coap_pdu fuzz target's second view of an input: [len][bytes]... datagrams."""
    out, i = [], 0
    while i < len(data):
        n = data[i]
        i += 1
        out.append(data[i:i + n])
        i += n
    return out


def build_coap(a, rnd):
    """Phase A: [(origin, bytes)] of exactly a.count datagrams, shuffled (seeded). The
    requests carry a token no device has: they parse, and are refused at admission (4.01)."""
    items, seen = [], set()
    for name in sorted(os.listdir(a.corpus)):
        with open(os.path.join(a.corpus, name), "rb") as f:
            data = f.read()
        for d in [data] + split_fuzz_input(data):
            if len(d) <= MAX_DATAGRAM and d not in seen:   # the pieces repeat a lot
                seen.add(d)
                items.append(("corpus", d))
    valid = valid_requests("unknownTok%d" % a.seed, "NOT-A-TOKEN-%d" % a.seed)
    n_rest = a.count - len(items)
    if n_rest < 0:
        items = items[:a.count]
        n_rest = 0
    n_zzuf = n_rest * 60 // 100
    n_trunc = n_rest * 12 // 100
    n_version = n_rest * 8 // 100
    n_foreign = n_rest - n_zzuf - n_trunc - n_version
    # zzuf: three ratios (few, some, many bit flips), each over its own concatenation
    per = n_zzuf // 3
    for k, ratio in enumerate((0.004, 0.02, 0.08)):
        n = per if k < 2 else n_zzuf - 2 * per
        base = [valid[rnd.randrange(len(valid))] for _ in range(n)]
        items += [("zzuf", m) for m in zzuf_mutate(base, a.seed * 10 + k, ratio)]
    for _ in range(n_trunc):
        v = valid[rnd.randrange(len(valid))]
        items.append(("trunc", v[:rnd.randrange(0, len(v))]))
    for _ in range(n_version):
        v = bytearray(valid[rnd.randrange(len(valid))])
        v[0] = (v[0] & 0x3F) | (rnd.choice((0, 2, 3)) << 6)
        items.append(("version", bytes(v)))
    items += [("foreign", foreign(rnd)) for _ in range(n_foreign)]
    rnd.shuffle(items)
    return items


def build_auth(a, rnd):
    """Phase B: a.auth_count zzuf-mutated and truncated requests with the real device's
    token, which reach the payload parsers, the store, Block1, claiming and attributes."""
    valid = valid_requests(a.token, "NOT-A-TOKEN-%d" % a.seed)
    n_trunc = a.auth_count // 5
    n_zzuf = a.auth_count - n_trunc
    items = []
    for k, ratio in enumerate((0.004, 0.02)):
        n = n_zzuf // 2 if k == 0 else n_zzuf - n_zzuf // 2
        base = [valid[rnd.randrange(len(valid))] for _ in range(n)]
        items += [("auth_zzuf", m) for m in zzuf_mutate(base, a.seed * 10 + 5 + k, ratio)]
    for _ in range(n_trunc):
        v = valid[rnd.randrange(len(valid))]
        items.append(("auth_trunc", v[:rnd.randrange(0, len(v))]))
    rnd.shuffle(items)
    return items


def build_dtls(a, rnd):
    hello = dh.client_hello(bytes(rnd.getrandbits(8) for _ in range(32)), b"", 0)
    n = a.dtls_count
    base = [hello] * (n * 2 // 5)
    items = [("dtls_zzuf", m) for m in zzuf_mutate(base, a.seed * 10 + 7, 0.01)]
    for _ in range(n // 5):
        items.append(("dtls_trunc", hello[:rnd.randrange(0, len(hello))]))
    for _ in range(n // 5):   # application data / alert records of epoch 1, no session
        ct = rnd.choice((21, 23))
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 120)))
        items.append(("dtls_record", bytes([ct]) + b"\xfe\xfd\x00\x01" + bytes(rnd.getrandbits(8)
                      for _ in range(6)) + struct.pack("!H", len(body)) + body))
    while len(items) < n:
        n_bytes = rnd.randrange(0, 300)
        items.append(("dtls_random", bytes(rnd.getrandbits(8) for _ in range(n_bytes))))
    rnd.shuffle(items)
    return items


# ---------------------------------------------------------------------------------------------
# The flood.


class Sock:
    def __init__(self, addr, rnd):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.bind((addr, 0))
        self.s.setblocking(False)
        self.next_mid = rnd.randrange(0x10000)
        self.next_tok = rnd.randrange(1 << 16)
        self.by_mid = {}      # MID -> request record (every version-1 datagram sent)
        self.by_tok = {}      # token -> [request records] (well-formed requests)
        self.used = 0

    def mid(self):
        m = self.next_mid
        self.next_mid = (m + 1) & 0xFFFF
        self.used += 1
        if self.used > 0x10000:
            raise SystemExit("more datagrams on one socket than Message IDs: raise --sockets")
        return m


class Flood:
    def __init__(self, a, max_ratio):
        self.a = a
        self.limit = max_ratio      # None: recorded, not asserted
        self.failures = []
        self.classes = {}
        self.origins = {}
        self.replies = {}
        self.max_ratio = 0.0
        self.max_ratio_req = None
        self.pending = set()        # records that still owe an ACK/RST
        self.sep_acks = 0
        self.unmatched = 0

    def fail(self, msg):
        if len(self.failures) < 30:
            self.failures.append(msg)
        elif len(self.failures) == 30:
            self.failures.append("... (more failures not listed)")

    def prepare(self, sk, origin, d, count=True):
        """Rewrites MID/token, classifies, registers; returns (bytes, record). Every datagram
        of 4 bytes or more gets a MID unique on its socket (not only CoAP ones), so that a
        reply to anything is matched exactly."""
        d = bytearray(d)
        if len(d) >= 4:
            m = sk.mid()
            d[2], d[3] = m >> 8, m & 0xFF
        cls, info = classify(bytes(d))
        if cls == "ok" and is_request(info) and info["tkl"]:
            tkl = info["tkl"]
            t = sk.next_tok
            sk.next_tok += 1
            d[4:4 + tkl] = (t % (1 << (8 * tkl))).to_bytes(tkl, "big")
        d = bytes(d)
        rec = {"origin": origin, "cls": cls, "len": len(d), "info": info, "replies": 0,
               "bytes": d[:24].hex()}
        if count:
            self.classes[cls] = self.classes.get(cls, 0) + 1
            self.origins[origin] = self.origins.get(origin, 0) + 1
        if cls in ("short", "version"):
            rec["want"] = "none"
        elif cls in ("malformed", "too_many_options"):
            rec["want"] = "reject" if info["type"] == c.CON else "none"
        elif info["type"] == c.CON:
            rec["want"] = "ack" if is_request(info) else "rst"
        elif info["type"] == c.NON and is_request(info):
            rec["want"] = "maybe"
        else:
            rec["want"] = "none"
        if len(d) >= 4:
            sk.by_mid[d[2] << 8 | d[3]] = rec
        if cls == "ok" and is_request(info):
            sk.by_tok.setdefault(d[4:4 + info["tkl"]], []).append(rec)
        if rec["want"] in ("reject", "ack", "rst"):
            self.pending.add(id(rec))
            rec["pending"] = True
        return d, rec

    def note_ratio(self, rec, n):
        r = n / max(1, rec["len"])
        if r > self.max_ratio:
            self.max_ratio, self.max_ratio_req = r, {"origin": rec["origin"], "len": rec["len"],
                                                     "reply": n, "head": rec["bytes"]}
        if self.limit is not None and r > self.limit:
            self.fail("reply of %d bytes to a %d-byte request (%s, %s)" % (
                n, rec["len"], rec["origin"], rec["bytes"]))

    def on_reply(self, sk, data):
        r = c.decode(data)
        if r is None:
            self.fail("a reply that is not CoAP: %s" % data[:16].hex())
            return
        key = "%s %s" % (("CON", "NON", "ACK", "RST")[r["type"]], r["code"])
        self.replies[key] = self.replies.get(key, 0) + 1
        if r["type"] in (c.ACK, c.RST):
            rec = sk.by_mid.get(r["mid"])
            if rec is None:
                self.unmatched += 1
                self.fail("%s with a MID we never sent: %s" % (key, data[:16].hex()))
                return
            rec["replies"] += 1
            want = rec["want"]
            if rec.get("pending"):
                rec["pending"] = False
                self.pending.discard(id(rec))
            tag = "%s (%s, %s)" % (key, rec["origin"], rec["bytes"])
            if rec["replies"] > 1:
                self.fail("second reply %s" % tag)
            elif want == "none" or want == "maybe":
                self.fail("reply to a datagram that must get none: %s, class %s" % (
                    tag, rec["cls"]))
            elif want == "reject":
                ok = (r["type"] == c.RST and len(data) == 4) or (
                    r["type"] == c.ACK and r["code"] == "4.00")
                if not ok:
                    self.fail("unparseable CON answered %s" % tag)
                if len(data) > rec["len"]:
                    self.fail("reply larger than the unparseable request: %d > %d, %s" % (
                        len(data), rec["len"], tag))
            elif want == "rst":
                if r["type"] != c.RST or len(data) != 4:
                    self.fail("empty/response CON answered %s" % tag)
            elif want == "ack":
                if r["type"] != c.ACK:
                    self.fail("CON request answered with %s" % tag)
                self.note_ratio(rec, len(data))
            return
        # the server's own CON/NON: a separate or NON response, matched by token
        if r["type"] == c.CON:
            sk.s.sendto(c.encode(c.ACK, 0, r["mid"]), (HOST, self.a.coap_port))
            self.sep_acks += 1
        cands = sk.by_tok.get(bytes(r["token"]), [])
        if not cands:
            self.unmatched += 1
            self.fail("%s with a token we never sent: %s" % (key, data[:16].hex()))
            return
        # Tokens repeat only across windows (1-byte ones wrap after 256; a window holds at
        # most one token-less NON request), and the server answers a window before the
        # fence's RST: the latest request with the token is the one answered.
        rec = cands[-1]
        if r["type"] == c.CON and (r["mid"], bytes(r["token"])) in getattr(sk, "seen_cons", set()):
            return    # a retransmission of one we acked already
        sk.__dict__.setdefault("seen_cons", set()).add((r["mid"], bytes(r["token"])))
        self.note_ratio(rec, len(data))

    def figures(self):
        return {"classes": self.classes, "origins": self.origins, "replies": self.replies,
                "separate_acks_sent": self.sep_acks, "max_ratio": round(self.max_ratio, 3),
                "max_ratio_request": self.max_ratio_req, "unmatched": self.unmatched,
                "failures": len(self.failures)}

    def drain(self, socks, timeout):
        fds = {s.s: s for s in socks}
        ready, _, _ = select.select(list(fds), [], [], timeout)
        for f in ready:
            sk = fds[f]
            while True:
                try:
                    data = f.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                self.on_reply(sk, data)
        return bool(ready)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def probe_start(a, tag):
    cmd = ["timeout", "15", "coap-client-notls", "-v", "7", "-m", "post", "-B", "10",
           "-e", '{"flood_probe":%s}' % tag,
           "coap://127.0.0.1:%d/api/v1/%s/telemetry" % (a.coap_port, a.token)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def probe_code(p):
    out = p.stdout.read().decode(errors="replace")
    p.wait()
    codes = re.findall(r"process incoming ([0-9]\.[0-9]{2}) response", out)
    return codes[-1] if codes else "none"


def run_coap(a, fl, items, addr0, n_probes, warmup=0, at_warmup=None):
    """Sends items in windows from a.sockets sockets on four addresses from 127.0.0.addr0;
    n_probes real-device requests run while it goes on. Returns the phase's figures."""
    rnd = random.Random(a.seed + addr0)
    socks = [Sock("127.0.0.%d" % (addr0 + i % 4), rnd) for i in range(a.sockets)]
    res = {"rss_trace_kb": []}
    probes, probe_codes = [], []
    probe_at = {len(items) * (k + 1) // (n_probes + 1): k for k in range(n_probes)}
    t0 = time.monotonic()
    sent, w = 0, 0
    while sent < len(items):
        sk = socks[w % len(socks)]
        w += 1
        window, tokenless = [], False
        for origin, d in items[sent:sent + a.window]:
            if tokenless_non(d):
                if tokenless:
                    break
                tokenless = True
            window.append((origin, d))
        for origin, d in window:
            b, _ = fl.prepare(sk, origin, d)
            sk.s.sendto(b, (HOST, a.coap_port))
        before = sent
        sent += len(window)
        # fence: an empty CON, answered with RST after the window (same socket, in order)
        fb, frec = fl.prepare(sk, "fence", c.encode(c.CON, 0, 0), count=False)
        sk.s.sendto(fb, (HOST, a.coap_port))
        deadline = time.monotonic() + a.window_timeout
        while (frec.get("pending") or fl.pending) and time.monotonic() < deadline:
            fl.drain(socks, 0.05)
        if fl.pending:
            fl.fail("%d datagrams still unanswered %.0f s after their window" % (
                len(fl.pending), a.window_timeout))
            fl.pending.clear()
        fl.drain(socks, 0)
        for k in [k for k in probe_at if before < k <= sent]:
            probes.append(probe_start(a, "%d.%d" % (addr0, probe_at.pop(k))))
        for p in [p for p in probes if p.poll() is not None]:
            probes.remove(p)
            probe_codes.append(probe_code(p))
        if sent // 10000 != before // 10000:
            res["rss_trace_kb"].append(rss_kb(a.pid))
        if before < warmup <= sent:
            at_warmup()
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                fl.drain(socks, 0.1)
            res["rss_warmup_kb"] = rss_kb(a.pid)
            res["warmup_datagrams"] = sent
        if time.monotonic() - a.t0 > a.seconds:
            fl.fail("time limit of %d s reached after %d datagrams" % (a.seconds, sent))
            break
    for p in probes:
        probe_codes.append(probe_code(p))
    # late separate responses: until 1 s of quiet (5 s at most)
    end = time.monotonic() + 5
    while time.monotonic() < end and fl.drain(socks, 1.0):
        pass
    for sk in socks:
        sk.s.close()
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["sent"] = sent
    res["windows"] = w
    res["probes"] = probe_codes
    for code in probe_codes:
        if code != "2.01":
            fl.fail("the real device got %s during the flood" % code)
    if len(probe_codes) != n_probes:
        fl.fail("%d of %d device probes ran" % (len(probe_codes), n_probes))
    res.update(fl.figures())
    return res


def run_dtls(a, items, st):
    """DTLS port: one fresh socket per window (the server keeps no state for any of this),
    so each reply belongs to its window; matched to a datagram by record sequence number
    (a HelloVerifyRequest echoes the ClientHello's, RFC 6347 §4.2.1), else to the window's
    smallest datagram (an upper bound on the ratio). Each window ends with a fence, an
    intact cookie-less ClientHello, whose HelloVerifyRequest comes after the window's."""
    t0 = time.monotonic()
    fence = dh.client_hello(bytes(32), b"", 0)
    for i in range(0, len(items), a.window):
        window = items[i:i + a.window]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.10", 0))
        by_seq = {}
        for k, (origin, d) in enumerate(window):
            d = bytearray(d)
            if len(d) >= 13:
                d[5:11] = (1 + i + k).to_bytes(6, "big")
                by_seq[1 + i + k] = len(d)
            s.sendto(bytes(d), (HOST, a.dtls_port))
        s.sendto(fence, (HOST, a.dtls_port))   # record sequence number 0
        st["sent"] += len(window)
        smallest = min(len(d) for _, d in window) or 1
        deadline = time.monotonic() + a.window_timeout
        fenced = False
        while time.monotonic() < deadline:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                r = s.recv(65536)
            except socket.timeout:
                break
            seq = int.from_bytes(r[5:11], "big") if len(r) >= 13 else -1
            if seq == 0 and len(r) > 13 and r[0] == 22 and r[13] == 3 and not fenced:
                fenced = True
                deadline = time.monotonic() + 0.01
                continue
            kind = "ct%d" % r[0] if r else "empty"
            if len(r) > 13 and r[0] == 22:
                kind = "handshake type %d" % r[13]
            st["replies"][kind] = st["replies"].get(kind, 0) + 1
            n = by_seq.get(seq, smallest)
            ratio = len(r) / max(1, n)
            st["max_ratio"] = max(st["max_ratio"], round(ratio, 3))
            if not (len(r) > 13 and r[0] == 22 and r[13] == 3):
                st["bad"].append("DTLS reply that is not a HelloVerifyRequest: %s" % r[:16].hex())
            if ratio > 1.0:
                st["bad"].append("DTLS reply of %d bytes to a %d-byte datagram" % (len(r), n))
        if not fenced:   # then a late reply of this window could have been missed
            st["fences_unanswered"] += 1
            st["bad"].append("DTLS window %d: no HelloVerifyRequest for its fence" % (
                i // a.window))
        s.close()
    st["seconds"] = round(st["seconds"] + time.monotonic() - t0, 1)
    st["bad"] = st["bad"][:10]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coap-port", type=int, required=True)
    ap.add_argument("--dtls-port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the server's, for VmRSS")
    ap.add_argument("--token", required=True, help="a real device's access token")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--dtls-count", type=int, default=5000)
    ap.add_argument("--auth-count", type=int, default=20000)
    ap.add_argument("--warmup", type=int, default=10000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--window-timeout", type=float, default=5.0)
    ap.add_argument("--sockets", type=int, default=16)
    ap.add_argument("--probes", type=int, default=4)
    ap.add_argument("--max-ratio", type=float, default=3.0)
    ap.add_argument("--auth-max-ratio", type=float, default=0,
                    help="the same for phase B (0: recorded, not asserted; see the report)")
    ap.add_argument("--seconds", type=int, default=240)
    a = ap.parse_args()
    a.t0 = time.monotonic()
    rnd = random.Random(a.seed)
    items = build_coap(a, rnd)
    ditems = build_dtls(a, rnd)
    aitems = build_auth(a, rnd)
    res = {"seed": a.seed, "generate_seconds": round(time.monotonic() - a.t0, 1)}
    res["rss_start_kb"] = rss_kb(a.pid)
    # Phase A and the DTLS flood; 2/5 of the DTLS flood are part of the warm-up (OpenSSL
    # allocates on first use, and its churn is what fills ASan's quarantine).
    fa = Flood(a, a.max_ratio)
    dst = {"sent": 0, "replies": {}, "max_ratio": 0.0, "bad": [], "seconds": 0.0,
           "fences_unanswered": 0}
    n_dtls_warm = len(ditems) * 2 // 5
    res["a"] = run_coap(a, fa, items, 2, a.probes, a.warmup,
                        lambda: run_dtls(a, ditems[:n_dtls_warm], dst))
    run_dtls(a, ditems[n_dtls_warm:], dst)
    res["dtls"] = dst
    res["rss_end_kb"] = rss_kb(a.pid)
    w = res["a"].get("rss_warmup_kb") or 1
    res["rss_growth_pct"] = round(100.0 * (res["rss_end_kb"] - w) / w, 2)
    # Phase B: the real device's requests mutated (RSS recorded, not asserted: see the top)
    fb = Flood(a, a.auth_max_ratio or None)
    res["b"] = run_coap(a, fb, aitems, 6, 1)
    res["rss_after_b_kb"] = rss_kb(a.pid)
    res["seconds"] = round(time.monotonic() - a.t0, 1)
    res["failures"] = fa.failures + dst["bad"] + fb.failures
    print(json.dumps(res))
    for f in res["failures"]:
        print("FAIL:", f, file=sys.stderr)
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
