"""coap_loss_load.py — confirmable telemetry over a lossy link, for test_coap_loss.sh (C5).

usage: coap_loss_load.py HOST PORT ACK_FILE STATS_FILE SECONDS ACK_TIMEOUT TOKEN...

Each token is one device sending CON POST {"ts":TS0+N,"values":{"v":N}} with N = 1, 2, 3 ...,
one request in flight per device (RFC 7252 §4.7 NSTART = 1), the next one as soon as the last
is done. Retransmission is RFC 7252 §4.2's: the first timeout is random in
[ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR (1.5)], doubled after each retransmission, the
same datagram (same Message ID) sent again up to MAX_RETRANSMIT (4) times; after the timeout of
the last one the request is given up (not acknowledged) and the device moves on to N+1.
ACK_TIMEOUT is a parameter (RFC 7252 §4.8.1 lets it be changed) so that a 20 s run over a
sub-millisecond veth finishes within the test's time budget; the retry count, which alone
decides the delivery probability on a link without delay, is the RFC's.

An empty ACK (the server's separate-response path) stops the retransmissions; the device then
waits for the separate CON response (acknowledging it, and any CON the server sends again)
until the exchange's own deadline. Every N answered 2.01 is appended to ACK_FILE
("token N") and flushed at once. After SECONDS no new request starts; the ones in flight
finish. STATS_FILE gets one JSON object: requests, acked, gave_up, other codes, transmissions,
retransmissions, and how many requests needed k transmissions (k = 1..5).
"""
import json
import os
import random
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402

ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4
# Client timestamps TS0+N keep every point a distinct row (the store keys telemetry by
# device, key and ts), so a request the server stored twice shows up as a duplicate.
TS0 = 1600000000000

host, port = sys.argv[1], int(sys.argv[2])
ack_path, stats_path = sys.argv[3], sys.argv[4]
seconds, ack_timeout = float(sys.argv[5]), float(sys.argv[6])
tokens = sys.argv[7:]
server = (host, port)
# Past this a request whose separate response never came is given up too: the span of all
# five transmissions' timeouts, as for a request that got no ACK at all.
exchange_span = ack_timeout * ACK_RANDOM_FACTOR * (2 ** (MAX_RETRANSMIT + 1) - 1)

acks = open(ack_path, "a", buffering=1)
devs = []
for t in tokens:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.setblocking(False)
    devs.append({"tok": t, "sock": s, "n": 0, "mid": random.randrange(65536), "ctok": b"",
                 "msg": b"", "busy": False, "tx": 0, "timeout": 0.0, "next": 0.0,
                 "empty_ack": False, "deadline": 0.0})
by_fd = {d["sock"].fileno(): d for d in devs}
st = {"requests": 0, "acked": 0, "gave_up": 0, "gave_up_after_empty_ack": 0, "other_codes": {},
      "transmissions": 0, "retransmissions": 0, "empty_acks": 0, "separate_responses": 0,
      "send_errors": 0,
      "tx_histogram": [0] * (MAX_RETRANSMIT + 1)}


def transmit(d):
    try:
        d["sock"].sendto(d["msg"], server)
    except OSError:
        st["send_errors"] += 1   # a full queue or a local firewall: as lost as on the wire
    d["tx"] += 1
    st["transmissions"] += 1
    if d["tx"] > 1:
        st["retransmissions"] += 1


def start(d, now):
    d["n"] += 1
    d["mid"] = (d["mid"] + 1) % 65536
    d["ctok"] = os.urandom(4)
    d["msg"] = c.encode(c.CON, c.POST, d["mid"], d["ctok"],
                        c.path_options("/api/v1/%s/telemetry" % d["tok"]),
                        b'{"ts":%d,"values":{"v":%d}}' % (TS0 + d["n"], d["n"]))
    d["busy"], d["tx"], d["empty_ack"] = True, 0, False
    d["timeout"] = ack_timeout * random.uniform(1.0, ACK_RANDOM_FACTOR)
    d["next"] = now + d["timeout"]
    d["deadline"] = now + exchange_span
    st["requests"] += 1
    transmit(d)


def finish(d, code):
    d["busy"] = False
    st["tx_histogram"][d["tx"] - 1] += 1
    if code == "2.01":
        acks.write("%s %d\n" % (d["tok"], d["n"]))
        st["acked"] += 1
    elif code is None:
        st["gave_up"] += 1
        if d["empty_ack"]:
            st["gave_up_after_empty_ack"] += 1
    else:
        st["other_codes"][code] = st["other_codes"].get(code, 0) + 1


def on_datagram(d, data):
    m = c.decode(data)
    if m is None:
        return
    if m["type"] == c.CON:
        # Acknowledge every CON from the server, also a retransmission of one already seen,
        # or it keeps sending it.
        try:
            d["sock"].sendto(c.encode(c.ACK, 0, m["mid"]), server)
        except OSError:
            st["send_errors"] += 1
    if not d["busy"]:
        return
    if m["type"] == c.ACK and m["mid"] == d["mid"]:
        if m["code"] == "0.00":
            if not d["empty_ack"]:
                st["empty_acks"] += 1
            d["empty_ack"] = True   # §5.2.2: stop retransmitting, wait for the response
            return
        finish(d, m["code"])
    elif m["type"] in (c.CON, c.NON) and m["token"] == d["ctok"] and m["code"] != "0.00":
        st["separate_responses"] += 1
        finish(d, m["code"])


t0 = time.monotonic()
end = t0 + seconds
while True:
    now = time.monotonic()
    if now < end:
        for d in devs:
            if not d["busy"]:
                start(d, now)
    elif not any(d["busy"] for d in devs):
        break
    for d in devs:
        if not d["busy"]:
            continue
        if d["empty_ack"]:
            if now >= d["deadline"]:
                finish(d, None)
        elif now >= d["next"]:
            if d["tx"] <= MAX_RETRANSMIT:
                transmit(d)
                d["timeout"] *= 2
                d["next"] = now + d["timeout"]
            else:
                finish(d, None)   # the last transmission's timeout is over: give up
    waits = [(d["deadline"] if d["empty_ack"] else d["next"]) - now for d in devs if d["busy"]]
    wait = max(0.0, min(waits + [0.05]))
    r, _, _ = select.select([d["sock"] for d in devs], [], [], wait)
    for s in r:
        d = by_fd[s.fileno()]
        while True:
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            on_datagram(d, data)
st["elapsed_s"] = round(time.monotonic() - t0, 3)
st["ack_timeout_s"] = ack_timeout
st["max_retransmit"] = MAX_RETRANSMIT
st["sent_per_device"] = {d["tok"]: d["n"] for d in devs}
with open(stats_path, "w") as f:
    json.dump(st, f)
print(json.dumps(st))
