"""durability_load.py — telemetry load for test_durability.sh.

usage: durability_load.py PORT_FILE ACK_FILE SECONDS TOKEN...

Each token is one device sending CON POST {"ts":TS0+N,"values":{"v":N}} with N = 1, 2, 3 ...,
one request in flight per device. Every N answered 2.01 is appended to ACK_FILE ("token N") and flushed at once, so the
file survives whatever happens next. A request that gets no answer within 1 s is abandoned
(not acknowledged, so the server owes nothing for it) and the device moves on to N+1. The CoAP
port is re-read from PORT_FILE after a timeout, in case the daemon came back on another port.
"""
import os
import random
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402

port_file, ack_path, seconds, tokens = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]


def read_port():
    with open(port_file) as f:
        return int(f.read().strip())


# Client timestamps TS0+N keep every point a distinct row even if two land in the same
# millisecond (the store keys telemetry by device, key and ts).
TS0 = 1600000000000
# At most 50 requests/s per device: enough to have writes in flight at every SIGKILL, few
# enough that the history check stays quick (~20 k points over 20 s for 20 devices).
MIN_GAP_S = 0.02
port = read_port()
acks = open(ack_path, "a", buffering=1)
devs = []
for i, t in enumerate(tokens):
    devs.append({"tok": t, "sock": c.udp_socket(0.0), "n": 0, "mid": random.randrange(65000),
                 "ctok": b"", "sent": 0.0, "busy": False})
end = time.monotonic() + seconds
sent = acked = 0


def send(d):
    global sent
    d["n"] += 1
    d["mid"] = (d["mid"] + 1) % 65000
    d["ctok"] = os.urandom(4)
    msg = c.encode(c.CON, c.POST, d["mid"], d["ctok"],
                   c.path_options("/api/v1/%s/telemetry" % d["tok"]),
                   b'{"ts":%d,"values":{"v":%d}}' % (TS0 + d["n"], d["n"]))
    d["sock"].sendto(msg, ("127.0.0.1", port))
    d["sent"], d["busy"] = time.monotonic(), True
    sent += 1


while time.monotonic() < end:
    now = time.monotonic()
    for d in devs:
        if not d["busy"] and now - d["sent"] >= MIN_GAP_S:
            send(d)
        elif now - d["sent"] > 1.0:
            try:
                port = read_port()
            except (OSError, ValueError):
                pass
            d["busy"] = False
    r, _, _ = select.select([d["sock"] for d in devs], [], [], 0.05)
    for s in r:
        d = next(x for x in devs if x["sock"] is s)
        try:
            data = s.recv(65536)
        except OSError:
            continue
        m = c.decode(data)
        if m is None or not d["busy"]:
            continue
        if m["type"] == c.CON:
            s.sendto(c.encode(c.ACK, 0, m["mid"]), ("127.0.0.1", port))
        match = (m["type"] == c.ACK and m["mid"] == d["mid"]) or m["token"] == d["ctok"]
        if not match or m["code"] == "0.00":
            continue
        if m["code"] == "2.01":
            acks.write("%s %d\n" % (d["tok"], d["n"]))
            acked += 1
        d["busy"] = False
print("sent %d acked %d" % (sent, acked))
