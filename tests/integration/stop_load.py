"""stop_load.py — confirmable telemetry that runs through a daemon's SIGTERM, for
test_graceful_stop.sh (reliability.md S6).

usage: stop_load.py PORT STOP_FILE MAX_SECONDS WINDOW ACK_TIMEOUT DRAIN_S REQUESTS_OUT TOKEN...

Each token is one device sending CON POST /api/v1/TOKEN/telemetry {"ts":TS0+N,"values":{"v":N}}
with N = 1, 2, 3 ... and up to WINDOW requests in flight (RFC 7252 §4.7 NSTART, raised so that
many requests are in flight at the SIGTERM), each with its own Message ID and token.
Retransmission is RFC 7252 §4.2's: the same datagram again after a random timeout in
[ACK_TIMEOUT, 1.5 × ACK_TIMEOUT], doubled each time, up to 4 times; then the request is given
up. An empty ACK stops the retransmissions and the device waits for the separate response.
New requests start until STOP_FILE exists or MAX_SECONDS pass; then the requests in flight go
on being retransmitted for at most DRAIN_S more seconds (the test restarts the daemon before
making the file, so a request the stop left unanswered can still reach the next process) and
what is left is recorded as unanswered.

REQUESTS_OUT gets one line per request: "TOKEN N FIRST_SEND_NS DONE_NS CODE TX" (wall clock
ns, time.time_ns(), comparable with `date +%s%N`; DONE_NS 0 and CODE "none" when it was never
answered; TX the transmissions). A summary goes to stdout.
"""
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
TS0 = 1600000000000   # ts = TS0 + N: every point its own row; one stored twice shows up

port, stop_file = int(sys.argv[1]), sys.argv[2]
max_s, window, ack_timeout = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
drain_s, out_path, tokens = float(sys.argv[6]), sys.argv[7], sys.argv[8:]
server = ("127.0.0.1", port)
span = ack_timeout * ACK_RANDOM_FACTOR * (2 ** (MAX_RETRANSMIT + 1) - 1)

devs = []
for t in tokens:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    devs.append({"tok": t, "sock": s, "n": 0, "mid": random.randrange(65536), "x": {}})
by_fd = {d["sock"].fileno(): d for d in devs}
done = []   # finished requests
stats = {"sent": 0, "tx": 0, "retx": 0, "answered": 0}


def transmit(d, x):
    try:
        d["sock"].sendto(x["msg"], server)
    except OSError:
        pass   # the daemon is gone: as lost as on the wire
    x["tx"] += 1
    stats["tx"] += 1
    if x["tx"] > 1:
        stats["retx"] += 1


def start(d, now):
    d["n"] += 1
    d["mid"] = (d["mid"] + 1) % 65536
    tok = os.urandom(4)
    x = {"n": d["n"], "mid": d["mid"], "tok": tok, "tx": 0, "empty_ack": False,
         "t0": time.time_ns(), "timeout": ack_timeout * random.uniform(1.0, ACK_RANDOM_FACTOR)}
    x["msg"] = c.encode(c.CON, c.POST, x["mid"], tok,
                        c.path_options("/api/v1/%s/telemetry" % d["tok"]),
                        b'{"ts":%d,"values":{"v":%d}}' % (TS0 + x["n"], x["n"]))
    x["next"], x["deadline"] = now + x["timeout"], now + span
    d["x"][tok] = x
    stats["sent"] += 1
    transmit(d, x)


def finish(d, x, code):
    del d["x"][x["tok"]]
    stats["answered"] += 1 if code else 0
    done.append("%s %d %d %d %s %d" % (d["tok"], x["n"], x["t0"],
                                       time.time_ns() if code else 0, code or "none", x["tx"]))


def on_datagram(d, data):
    m = c.decode(data)
    if m is None:
        return
    if m["type"] == c.CON:
        try:
            d["sock"].sendto(c.encode(c.ACK, 0, m["mid"]), server)
        except OSError:
            pass
    if m["type"] == c.ACK:
        x = next((x for x in d["x"].values() if x["mid"] == m["mid"]), None)
        if x is None:
            return
        if m["code"] == "0.00":
            x["empty_ack"] = True
            return
        finish(d, x, m["code"])
    elif m["type"] in (c.CON, c.NON) and m["token"] in d["x"] and m["code"] != "0.00":
        finish(d, d["x"][m["token"]], m["code"])


end = time.monotonic() + max_s
stop_at = None
while True:
    now = time.monotonic()
    if stop_at is None and (now >= end or os.path.exists(stop_file)):
        stop_at = now
    if stop_at is not None and (now >= stop_at + drain_s or not any(d["x"] for d in devs)):
        break
    for d in devs:
        while stop_at is None and len(d["x"]) < window:
            start(d, now)
        for x in list(d["x"].values()):
            if x["empty_ack"]:
                if now >= x["deadline"]:
                    finish(d, x, None)
            elif now >= x["next"]:
                if x["tx"] <= MAX_RETRANSMIT:
                    transmit(d, x)
                    x["timeout"] *= 2
                    x["next"] = now + x["timeout"]
                else:
                    finish(d, x, None)
    r, _, _ = select.select([d["sock"] for d in devs], [], [], 0.02)
    for s in r:
        d = by_fd[s.fileno()]
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                break
            on_datagram(d, data)
for d in devs:
    for x in list(d["x"].values()):
        finish(d, x, None)
with open(out_path, "w") as f:
    f.write("\n".join(done) + "\n")
print("sent %d transmissions %d retransmissions %d answered %d" % (
    stats["sent"], stats["tx"], stats["retx"], stats["answered"]))
