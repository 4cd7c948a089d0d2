#!/usr/bin/env python3
"""coap_amp.py — reliability.md C6: replies to an unverified plain-UDP address stay within 3x
their request (RFC 7252 §11.3, RFC 9175 Echo, RFC 7641 §7), and the full reply comes after a
proof. Raw datagrams from addresses the server has never seen (127.0.0.2..), so each starts
unverified.

usage: coap_amp.py PORT TOKEN BASE_URL JWT DEVICE_ID
Prints one JSON object: every (what, request bytes, reply bytes) measured, the checks' results,
the largest ratio. Exits 1 (with the JSON) when a check fails.
"""
import json
import socket
import sys
import time
import urllib.request

sys.path.insert(0, __import__("os").path.dirname(__file__))
from coap_raw import (ACK, CON, GET, NON, OBSERVE, block_opt, decode, encode, opt_uint,
                      path_options, udp_socket)

BLOCK2, SIZE2, ECHO = 23, 28, 252
PORT, TOKEN, BASE, JWT, DEV = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
PORT = int(PORT)
FACTOR = 3

rows = []      # (what, request bytes, reply bytes)
failures = []
mids = iter(range(0x2000, 0x10000))


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


def recv_all(sock, wait):
    """Every datagram that arrives within wait seconds."""
    out = []
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            return out
        out.append(data)


def send(sock, msg, what, wait=1.0, want=1):
    """Sends msg, collects what comes back (until want replies or wait), records each reply's
    size against the request's and checks the 3x bound."""
    sock.sendto(msg, ("127.0.0.1", PORT))
    replies = []
    deadline = time.monotonic() + wait
    while len(replies) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            break
        replies.append(data)
    for r in replies:
        rows.append((what, len(msg), len(r)))
    return replies


def bounded(what, req_len, reply):
    check(len(reply) <= FACTOR * req_len,
          "%s: reply %d B > %d x request %d B" % (what, len(reply), FACTOR, req_len))


def get_blocks(sock, path, what, bound=True):
    """GET path block by block as an RFC 7959 client would (following the server's SZX);
    returns (body, first reply decoded). Every reply is checked against its own request."""
    body = b""
    num, szx = 0, 6
    first_reply = None
    while True:
        opts = path_options(path)
        if num > 0:
            opts.append((BLOCK2, block_opt(num, False, szx)))
        msg = encode(CON, GET, next(mids), b"\x0a\x0b\x0c\x0d", opts)
        rs = send(sock, msg, what)
        if not check(len(rs) == 1, "%s: block %d: no reply" % (what, num)):
            return body, first_reply
        if bound:
            bounded("%s block %d" % (what, num), len(msg), rs[0])
        r = decode(rs[0])
        if first_reply is None:
            first_reply = r
        if not r["code"].startswith("2."):
            return body, r
        body += r["payload"]
        b2 = opt_uint(r, BLOCK2)
        if b2 is None:
            return body, first_reply
        rnum, more, rszx = b2 >> 4, bool(b2 & 8), b2 & 7
        if not more:
            return body, first_reply
        # next block at the server's size: the offset after this one
        szx = rszx
        num = rnum + 1
        if num > 5000:
            check(False, "%s: runaway block numbers" % what)
            return body, first_reply


def rest_post(path, obj):
    req = urllib.request.Request(BASE + path, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-Authorization": "Bearer " + JWT})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def echo_of(r):
    for n, v in r.get("options", ()):
        if n == ECHO:
            return v
    return None


result = {}
attrs_path = "/api/v1/%s/attributes" % TOKEN

# 1. unknown token: 4.01 with an empty payload.
a = udp_socket(addr="127.0.0.2")
msg = encode(CON, GET, next(mids), b"\x01\x02", path_options("/api/v1/NOT-A-TOKEN/attributes"))
rs = send(a, msg, "unknown token")
if check(len(rs) == 1, "unknown token: no reply"):
    r = decode(rs[0])
    check(r["code"] == "4.01" and r["payload"] == b"", "unknown token: %s" % r)
    bounded("unknown token", len(msg), rs[0])

# 2. /.well-known/core (not served: whatever the answer, it is bounded).
msg = encode(CON, GET, next(mids), b"\x01\x03", path_options("/.well-known/core"))
rs = send(a, msg, "/.well-known/core")
if check(len(rs) == 1, "well-known: no reply"):
    bounded("/.well-known/core", len(msg), rs[0])
    result["well_known_code"] = decode(rs[0])["code"]

# 3. the large shared attribute set, block by block from the unverified address.
body, first = get_blocks(a, attrs_path, "attributes GET")
result["attributes_blocks_first_code"] = first["code"] if first else None
try:
    got = json.loads(body)
except ValueError:
    got = None
result["attributes_json"] = got
echo = echo_of(first) if first else None
result["echo_len"] = len(echo) if echo else 0
check(echo is not None, "the shortened reply carries no Echo option")

# 4. malformed requests: an unknown critical option (4.02), garbage (RST or nothing), a
#    request that is only a header with a Block2 beyond the body.
msg = encode(CON, GET, next(mids), b"\x05", path_options(attrs_path) + [(9, b"x")])
for rep in send(a, msg, "unknown critical option"):
    bounded("unknown critical option", len(msg), rep)
msg = bytes([0x40, 0x01, 0x12, 0x34, 0xF0, 0xFF, 0xEE])
for rep in send(a, msg, "malformed (bad option nibble)", wait=0.5):
    bounded("malformed", len(msg), rep)
msg = encode(CON, GET, next(mids), b"", path_options(attrs_path) + [(BLOCK2, b"\xff\xf2")])
for rep in send(a, msg, "Block2 beyond the body"):
    bounded("Block2 beyond the body", len(msg), rep)

# 5. a short datagram reusing the MID of an earlier request: no replay of the larger reply.
c = udp_socket(addr="127.0.0.4")
mid = next(mids)
msg = encode(CON, GET, mid, b"\x07\x07\x07\x07", path_options(attrs_path))
rs = send(c, msg, "attributes GET (for the MID replay)")
for rep in rs:
    bounded("attributes GET (for the MID replay)", len(msg), rep)
short = encode(CON, GET, mid)  # 4 bytes, same MID
rs = send(c, short, "4-byte datagram reusing its MID", wait=0.5)
for rep in rs:
    bounded("4-byte datagram reusing its MID", len(short), rep)
result["mid_replay_replies"] = len(rs)

# 6. Observe from an unverified address: registration, then a large attribute update.
b = udp_socket(addr="127.0.0.3")
reg = encode(CON, GET, next(mids), b"\x0b\x0b", path_options(attrs_path) + [(OBSERVE, b"")])
rs = send(b, reg, "Observe registration")
if check(len(rs) == 1, "observe registration: no reply"):
    bounded("Observe registration", len(reg), rs[0])
    r = decode(rs[0])
    check(opt_uint(r, OBSERVE) is not None, "registration answered without Observe: %s" % r)
big = {"upd_%03d" % i: "U" * 40 for i in range(60)}
check(rest_post("/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE" % DEV, big) == 200,
      "REST attribute update failed")
first_notes = recv_all(b, 2.0)
check(len(first_notes) >= 1, "no notification after the update")
notes = [decode(d) for d in first_notes]
for d in first_notes:
    rows.append(("notification (unverified)", len(reg), len(d)))
    bounded("notification (unverified)", len(reg), d)
if notes:
    n0 = notes[0]
    check(n0["type"] == CON, "notification to an unverified address is not CON")
    check(opt_uint(n0, BLOCK2) is not None, "large notification not sliced")
    # one in flight: every datagram so far is the same MID (retransmissions only)
    check(len({n["mid"] for n in notes}) == 1, "more than one notification in flight")
    # a second update while the first is unacknowledged: still one in flight
    rest_post("/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE" % DEV,
              {"upd_000": "second"})
    more = recv_all(b, 1.0)
    check(all(decode(d)["mid"] == n0["mid"] for d in more),
          "a second notification went out before the first was acknowledged")
    for d in more:
        rows.append(("notification retransmission", len(reg), len(d)))
        bounded("notification retransmission", len(reg), d)
    # ACK it: the address is verified, the queued notification follows in full
    b.sendto(encode(ACK, 0, n0["mid"]), ("127.0.0.1", PORT))
    after = recv_all(b, 1.5)
    full = [decode(d) for d in after if decode(d)["mid"] != n0["mid"]]
    result["after_ack"] = [len(d) for d in after]
    for n in full:
        if n["type"] == CON:
            b.sendto(encode(ACK, 0, n["mid"]), ("127.0.0.1", PORT))
    rest_post("/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE" % DEV, big)
    verified_notes = recv_all(b, 1.5)
    result["verified_notification_bytes"] = max((len(d) for d in verified_notes), default=0)
    check(result["verified_notification_bytes"] > FACTOR * len(reg),
          "after the ACK the notification is still shortened (%s)" %
          result["verified_notification_bytes"])
    for d in verified_notes:
        n = decode(d)
        if n["type"] == CON:
            b.sendto(encode(ACK, 0, n["mid"]), ("127.0.0.1", PORT))
# deregister
b.sendto(encode(NON, GET, next(mids), b"\x0b\x0b", path_options(attrs_path) + [(OBSERVE, b"\x01")]),
         ("127.0.0.1", PORT))
recv_all(b, 0.3)

# 7. the Echo value proves the address: the same GET carrying it gets the full reply.
msg = encode(CON, GET, next(mids), b"\x0a\x0b\x0c\x0d", path_options(attrs_path) +
             ([(ECHO, echo)] if echo else []))
rs = send(a, msg, "attributes GET with Echo (verified)")
if check(len(rs) == 1, "GET with Echo: no reply"):
    result["echo_request_bytes"] = len(msg)
    result["echo_reply_bytes"] = len(rs[0])
    check(len(rs[0]) > FACTOR * len(msg), "the Echo did not lift the limit (%d B)" % len(rs[0]))
    r = decode(rs[0])
    b2 = opt_uint(r, BLOCK2)
    result["echo_reply_szx"] = b2 & 7 if b2 is not None else None
# and the whole body again, now at the configured block size, equals the shortened one
body2, _ = get_blocks(a, attrs_path, "attributes GET (verified)", bound=False)
# (the Observe step added upd_* keys since: the shared_* ones must be the same)
try:
    v = json.loads(body2)
    same = {k: x for k, x in v.get("shared", {}).items() if k.startswith("shared_")}
    check(same == got.get("shared"), "verified body differs from the block-by-block one")
except (ValueError, AttributeError):
    check(False, "verified body is not the attribute JSON")

limited = [(w, q, p) for (w, q, p) in rows if "verified" not in w]
worst = max(limited, key=lambda t: t[2] / t[1])
result["rows"] = rows
result["worst"] = {"what": worst[0], "request": worst[1], "reply": worst[2],
                   "ratio": round(worst[2] / worst[1], 2)}
result["largest_limited_reply"] = max(p for (_, _, p) in limited)
result["failures"] = failures
print(json.dumps(result))
sys.exit(1 if failures else 0)
