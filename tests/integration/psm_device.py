"""psm_device.py — a scripted power-saving device for test_power_saving.sh (spec §4).

usage: psm_device.py COAP_PORT BASE_URL JWT TOKEN DEVICE_UUID MODE QUIET_MS

One UDP socket (one peer, as a real device): it registers a shared-attribute observer and an
RPC observer (GET + Observe=0; NON for eDRX, see below), then goes quiet for QUIET_MS (longer than its window) while
this script, acting as the operator, changes shared attributes over REST and sends a one-way
RPC. MODE says what the device must see:

  psm   nothing while asleep; after its next uplink (a telemetry POST) one merged attribute
        notification {"t":2,"deleted":["b"]} and the RPC
  edrx  the first downlink after the window at once ({"t":1}), nothing more while asleep; after
        the uplink the rest merged ({"t":2,"deleted":["b"]}) and the RPC
  drx   every notification at once, as without power saving

Every CON notification is acknowledged, as a device does. Prints what it saw; exits 1 with
the reason on the first thing that differs.
"""
import json
import os
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402

port, base, jwt, tok, dev_uuid, mode, quiet_ms = sys.argv[1:8]
port, quiet_s = int(port), int(quiet_ms) / 1000.0
sock = c.udp_socket(0.2)
mid = [int.from_bytes(os.urandom(2), "big") % 60000]
T_ATTR, T_RPC = b"\xa7\x01", b"\xa7\x02"
seen = []  # (seconds since start, "attr"/"rpc", payload dict)
T0 = time.monotonic()


def log(msg):
    print("[psm_device %s %.2fs] %s" % (mode, time.monotonic() - T0, msg), flush=True)


def fail(msg):
    log("FAIL: " + msg)
    sys.exit(1)


def next_mid():
    mid[0] = (mid[0] + 1) % 65000
    return mid[0]


def rest(method, path, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("X-Authorization", "Bearer " + jwt)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def handle(data):
    """Acknowledges a CON, records a notification; returns the decoded message."""
    r = c.decode(data)
    if r is None:
        return None
    if r["type"] == c.CON:
        sock.sendto(c.encode(c.ACK, 0, r["mid"]), ("127.0.0.1", port))
    if r["code"] == "2.05" and r["token"] in (T_ATTR, T_RPC):
        kind = "attr" if r["token"] == T_ATTR else "rpc"
        body = json.loads(r["payload"]) if r["payload"] else None
        seen.append((time.monotonic() - T0, kind, body))
        log("got %s %s" % (kind, r["payload"].decode()))
    return r


def listen(seconds):
    """Receives (and ACKs) for `seconds`; returns the notifications seen meanwhile."""
    n0 = len(seen)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            continue
        handle(data)
    return seen[n0:]


def request(code, path, token, payload=b"", observe=None, mtype=c.CON):
    """Sends a request; returns its response (notifications met meanwhile are recorded)."""
    opts = c.path_options(path)
    if observe is not None:
        opts.append((c.OBSERVE, bytes([observe]) if observe else b""))
    m = next_mid()
    sock.sendto(c.encode(mtype, code, m, token, opts, payload), ("127.0.0.1", port))
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            continue
        r = handle(data)
        if r is None or r["code"] == "0.00":
            continue  # an empty ACK: the response follows separately
        if r["token"] == token and (r["type"] != c.ACK or r["mid"] == m):
            return r
    fail("no response to %s" % path)


# --- register both observers (they count as uplinks) ---
# The eDRX device observes with NON requests, so its notifications are NON too: an ACK would
# be an uplink (ThingsBoard's awake()) and open a new window, hiding the rule under test.
reg_type = c.NON if mode == "edrx" else c.CON
r = request(c.GET, "/api/v1/%s/attributes" % tok, T_ATTR, observe=0, mtype=reg_type)
if r["code"] != "2.05":
    fail("attribute Observe registration answered %s" % r["code"])
seen.clear()  # the registration's own 2.05 (current values) is not a notification
r = request(c.GET, "/api/v1/%s/rpc" % tok, T_RPC, observe=0, mtype=reg_type)
if r["code"] != "2.03":
    fail("RPC Observe registration answered %s" % r["code"])
log("observers registered")

# --- quiet: past the window ---
listen(quiet_s)
attrs = "/api/plugins/telemetry/DEVICE/%s" % dev_uuid
st, body = rest("POST", attrs + "/attributes/SHARED_SCOPE", {"t": 1, "b": 1})
if st != 200:
    fail("set shared attributes: HTTP %d %s" % (st, body))
early = listen(0.7)
if mode == "psm" and early:
    fail("PSM device asleep, yet it received %s" % early)
if mode == "edrx" and [(k, b) for _, k, b in early] != [("attr", {"t": 1, "b": 1})]:
    fail("eDRX: expected the first downlink after the window at once, got %s" % early)
if mode == "drx" and [(k, b) for _, k, b in early] != [("attr", {"t": 1, "b": 1})]:
    fail("DRX: expected the notification at once, got %s" % early)

st, body = rest("POST", attrs + "/attributes/SHARED_SCOPE", {"t": 2})
if st != 200:
    fail("set shared attribute: HTTP %d %s" % (st, body))
st, body = rest("DELETE", attrs + "/SHARED_SCOPE?keys=b")
if st != 200:
    fail("delete shared attribute: HTTP %d %s" % (st, body))

rpc_result = {}


def call_rpc():
    rpc_result["status"], rpc_result["body"] = rest(
        "POST", "/api/plugins/rpc/oneway/%s" % dev_uuid,
        {"method": "wake", "params": {"n": 1}, "timeout": 20000}, timeout=30)


th = threading.Thread(target=call_rpc)
th.start()
asleep = listen(1.5)
if mode == "drx":
    attr_n = [b for _, k, b in asleep if k == "attr"]
    rpc_n = [b.get("method") for _, k, b in asleep if k == "rpc"]
    if attr_n != [{"t": 2}, {"deleted": ["b"]}] or rpc_n != ["wake"]:
        fail("DRX: expected both notifications and the RPC at once, got %s" % asleep)
    th.join(25)
    if rpc_result.get("status") != 200:
        fail("RPC to the DRX device: %s" % rpc_result)
    log("ok: DRX device got everything at once")
    sys.exit(0)
if asleep:
    fail("device asleep, yet it received %s" % asleep)
if not th.is_alive():
    fail("the RPC call returned while the device slept: %s" % rpc_result)
log("ok: nothing sent while asleep")

# --- wake up: one uplink ---
t_wake = time.monotonic() - T0
r = request(c.POST, "/api/v1/%s/telemetry" % tok, b"\xa7\x03", b'{"battery":97}')
if r["code"] != "2.01":
    fail("telemetry answered %s" % r["code"])
awake = [x for x in seen if x[0] >= t_wake] + listen(1.5)
attr_n = [b for _, k, b in awake if k == "attr"]
rpc_n = [b for _, k, b in awake if k == "rpc"]
if attr_n != [{"t": 2, "deleted": ["b"]}]:
    fail("after waking expected one merged notification {t:2, deleted:[b]}, got %s" % attr_n)
if len(rpc_n) != 1 or rpc_n[0].get("method") != "wake" or rpc_n[0].get("params") != {"n": 1}:
    fail("after waking expected the RPC, got %s" % rpc_n)
late = max(t for t, _, _ in awake) - t_wake
log("ok: woke, got the merged update and the RPC %.2f s after the uplink" % late)
th.join(25)
if rpc_result.get("status") != 200:
    fail("RPC REST call: %s" % rpc_result)
log("ok: the RPC call returned 200 once delivered")
