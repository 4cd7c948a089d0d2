"""observe_lifecycle.py — C4 of the reliability plan against the real server: many raw-UDP
observers (RFC 7641) that register, ACK, stop ACKing, answer RST and deregister with Observe=1.

Run by test_observe_lifecycle.sh, which starts the daemon with a short ACK timeout
(--ack-timeout-ms, --max-retransmit) so that a silent observer's CON notification gives up
within seconds. Prints one "figure: ..." line per measured number and exits non-zero (with a
"FAIL: ..." line) at the first broken expectation.

Phases:
  1. N devices (REST, keep-alive), one CON observer of each one's shared attributes, each on its
     own socket, spread over ADDRS loopback addresses 127.0.1.x (<= 64 per address, the
     per-address cap); /metrics shows N relations.
  2. One REST call (an OTA package assigned to the default device profile) pushes fw_* shared
     attributes to all N: every observer gets one notification; the time is measured. Observers
     0-9 answer it with RST, 10-19 never ACK it, the rest ACK.
  3. RST: relations gone at once; silent: the server retransmits MAX_RETRANSMIT times, then
     the relation is gone; observers 20-29 deregister with GET Observe=1 (2.02). The count in
     /metrics goes back by 30, and updates to those devices reach nobody.
  4. A NON observer gets a CON at least after every 5 NON notifications.
  5. Caps: 17 observers of one device from 17 ports (each replaces the previous one, which
     gets 2.02: one relation per device and kind); 65 RPC observers from one address (the 65th
     answered 2.03 without Observe, counted in /metrics).
  6. (--faketime-file, a second run against the daemon restarted under libfaketime) a NON
     relation across a 25-hour jump of the server's clocks gets a CON (one a day at least).
"""
import argparse
import json
import http.client
import resource
import selectors
import socket
import sys
import time

from coap_raw import (ACK, CON, GET, NON, OBSERVE, RST, decode, encode, opt_uint,
                      path_options)

p = argparse.ArgumentParser()
p.add_argument("--coap-port", type=int, required=True)
p.add_argument("--http-port", type=int, required=True)
p.add_argument("--jwt", required=True)
p.add_argument("--devices", type=int, default=1000)
p.add_argument("--addrs", type=int, default=20)
p.add_argument("--max-retransmit", type=int, required=True)
p.add_argument("--ack-timeout-ms", type=int, required=True)
p.add_argument("--image")
p.add_argument("--faketime-file", help="phase 6 only: libfaketime's FAKETIME_TIMESTAMP_FILE of "
               "the daemon, written here to move its clocks")
p.add_argument("--user")
p.add_argument("--password")
a = p.parse_args()
SERVER = ("127.0.0.1", a.coap_port)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def figure(msg):
    print("figure: " + msg, flush=True)


# ---- REST (one keep-alive connection) ------------------------------------------------------
rest_conn = http.client.HTTPConnection("127.0.0.1", a.http_port, timeout=30)


def rest(method, path, body=None, raw=None, ctype="application/json"):
    headers = {"Accept": "application/json"}
    if a.jwt:
        headers["X-Authorization"] = "Bearer " + a.jwt
    data = None
    if body is not None:
        data = json.dumps(body).encode()
    elif raw is not None:
        data = raw
    if data is not None:
        headers["Content-Type"] = ctype
    global rest_conn
    for attempt in (1, 2):
        try:
            rest_conn.request(method, path, body=data, headers=headers)
            r = rest_conn.getresponse()
            out = r.read()
            break
        except (ConnectionError, http.client.HTTPException):
            # The server closed the kept-alive connection (its idle timeout; after the clock
            # jump of phase 6 at once): once more on a new one.
            rest_conn.close()
            rest_conn = http.client.HTTPConnection("127.0.0.1", a.http_port, timeout=30)
            if attempt == 2:
                raise
    if r.status != 200:
        fail("%s %s -> HTTP %d %s" % (method, path, r.status, out[:200]))
    return json.loads(out) if out else None


def metric(name, labels=""):
    """The sum of coaphub_<name> over its series (shards) whose labels contain labels."""
    c = http.client.HTTPConnection("127.0.0.1", a.http_port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        series, _, lab = key.partition("{")
        if series == "coaphub_" + name and labels.strip("{}") in lab:
            total += float(val)
    return int(total)


def wait_metric(name, want, timeout, labels=""):
    deadline = time.monotonic() + timeout
    while True:
        v = metric(name, labels)
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


# ---- observers -----------------------------------------------------------------------------
class Obs:
    def __init__(self, i, addr, token, path):
        self.i = i
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 0))
        self.sock.setblocking(False)
        self.token = token
        self.path = path
        self.mode = "ack"      # ack | rst | silent
        self.registered = None  # the registration answer
        self.notes = []         # (monotonic time, decoded) of notifications, first copies
        self.con_mids = {}      # MID -> copies received (retransmissions)
        self.con_times = {}     # MID -> [arrival times]
        self.other = []         # responses without Observe (2.02 ...)


sel = selectors.DefaultSelector()
mid_next = [1]


def next_mid():
    mid_next[0] = (mid_next[0] + 1) & 0xFFFF
    return mid_next[0]


def register(o, mtype=CON, observe=0):
    msg = encode(mtype, GET, next_mid(), o.token, [(OBSERVE, b"" if observe == 0 else
                                                    bytes([observe]))] + path_options(o.path))
    o.sock.sendto(msg, SERVER)
    return msg


def on_datagram(o, data):
    r = decode(data)
    if r is None or r["token"] != o.token:
        return
    now = time.monotonic()
    if r["type"] == ACK and r["code"] != "0.00" and o.registered is None:
        o.registered = r
        return
    if r["type"] in (CON, NON):
        if r["type"] == CON:
            o.con_mids[r["mid"]] = o.con_mids.get(r["mid"], 0) + 1
            o.con_times.setdefault(r["mid"], []).append(now)
            if o.mode == "ack":
                o.sock.sendto(encode(ACK, 0, r["mid"]), SERVER)
            elif o.mode == "rst":
                o.sock.sendto(encode(RST, 0, r["mid"]), SERVER)
            if o.con_mids[r["mid"]] > 1:
                return  # a retransmission: already counted
        if opt_uint(r, OBSERVE) is None:
            if o.registered is None:
                o.registered = r  # a NON registration's answer
            else:
                o.other.append(r)
            return
        if o.registered is None:
            o.registered = r
            return
        o.notes.append((now, r))


def pump(timeout):
    for key, _ in sel.select(timeout):
        o = key.data
        while True:
            try:
                data = o.sock.recv(2048)
            except BlockingIOError:
                break
            on_datagram(o, data)


def run_until(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        pump(min(left, 0.05))
    return True


def run_for(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pump(max(0.0, min(0.05, deadline - time.monotonic())))


def add(o):
    sel.register(o.sock, selectors.EVENT_READ, o)
    return o


def register_all(obs, mtype=CON):
    """Registers every observer (resending unanswered ones every second, 5 times)."""
    for o in obs:
        o.regmsg = register(o, mtype)
    for _ in range(5):
        if run_until(lambda: all(o.registered for o in obs), 1.0):
            return
        for o in obs:
            if not o.registered:
                o.sock.sendto(o.regmsg, SERVER)
    fail("%d of %d registrations unanswered" % (sum(1 for o in obs if not o.registered),
                                                len(obs)))


def faketime_phase():
    """6. The RFC 7641 §4.5 24-hour rule on the real server, whose clocks (monotonic and wall)
    libfaketime moves forward 25 hours: a NON relation that got 2 NON notifications gets its
    third as CON, and the one after that NON again (the day restarts at that CON)."""
    o = add(Obs(0, "127.0.1.253", b"day", "/api/v1/obsl1/attributes"))
    register_all([o], NON)
    dev = rest("GET", "/api/tenant/device?deviceName=obsl-1")["id"]["id"]

    def update(k):
        rest("POST", "/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE" % dev, {"day": k})
        if not run_until(lambda: len(o.notes) >= k, 5):
            fail("24 h phase: notification %d missing" % k)

    update(1)
    update(2)
    open(a.faketime_file, "w").write("+25h\n")
    time.sleep(0.2)
    # The access token was issued a day ago in the server's time: log in again.
    a.jwt = None
    a.jwt = rest("POST", "/api/auth/login", {"username": a.user, "password": a.password})["token"]
    update(3)
    # The server's wall clock moved too: the attribute's lastUpdateTs is a day ahead of ours.
    attr = rest("GET", "/api/plugins/telemetry/DEVICE/%s/values/attributes/SHARED_SCOPE?keys=day"
                % dev)
    ahead_h = (attr[0]["lastUpdateTs"] - time.time() * 1000) / 3600000.0
    if not 24.9 < ahead_h < 25.1:
        fail("the server's clock is %.2f h ahead, not 25" % ahead_h)
    update(4)
    types = "".join("C" if r["type"] == CON else "N" for _, r in o.notes)
    seqs = [opt_uint(r, OBSERVE) for _, r in o.notes]
    if types != "NNCN" or seqs != [1, 2, 3, 4]:
        fail("after 25 h: types %s Observe %s, want NNCN 1..4" % (types, seqs))
    figure("NON relation across a 25-hour clock jump (libfaketime; the server's attribute "
           "timestamps %.2f h ahead): %s (Observe 1..4): CON after 2 NON ones because a day "
           "passed, then NON again" % (ahead_h, types))
    print("ok", flush=True)
    sys.exit(0)


if a.faketime_file:
    faketime_phase()

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
N = a.devices
base_relations = metric("observe_relations")

# ---- 1. devices and observers ----------------------------------------------------------------
t0 = time.monotonic()
dev_ids = []
for i in range(N + 66):
    d = rest("POST", "/api/device?accessToken=obsl%d" % i,
             {"name": "obsl-%d" % i, "type": "default"})
    dev_ids.append(d["id"]["id"])
figure("created %d devices in %.1f s" % (len(dev_ids), time.monotonic() - t0))

obs = []
for i in range(N):
    addr = "127.0.1.%d" % (1 + i % a.addrs)
    obs.append(add(Obs(i, addr, b"o%05d" % i, "/api/v1/obsl%d/attributes" % i)))
t0 = time.monotonic()
register_all(obs)
bad = [o.i for o in obs if o.registered["code"] != "2.05" or opt_uint(o.registered, OBSERVE) != 0]
if bad:
    fail("registrations not answered 2.05 + Observe=0: %s" % bad[:10])
figure("%d CON observers registered from %d addresses (%d per address) in %.2f s" %
       (N, a.addrs, (N + a.addrs - 1) // a.addrs, time.monotonic() - t0))
rel = wait_metric("observe_relations", base_relations + N, 5)
if rel != base_relations + N:
    fail("coaphub_observe_relations %d, want %d" % (rel, base_relations + N))
figure("coaphub_observe_relations %d" % rel)

# ---- 2. one REST update reaches all N --------------------------------------------------------
for o in obs[0:10]:
    o.mode = "rst"
for o in obs[10:20]:
    o.mode = "silent"
prof = rest("GET", "/api/deviceProfileInfo/default")["id"]["id"]
pkg = rest("POST", "/api/otaPackage", {"title": "c4-fw", "version": "1", "type": "FIRMWARE",
                                        "deviceProfileId": {"entityType": "DEVICE_PROFILE",
                                                            "id": prof}})["id"]["id"]
boundary = "c4boundary"
img = open(a.image, "rb").read()
body = (b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"; "
        b"filename=\"fw.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" + img +
        b"\r\n--" + boundary.encode() + b"--\r\n")
rest("POST", "/api/otaPackage/%s?checksumAlgorithm=SHA256" % pkg, raw=body,
     ctype="multipart/form-data; boundary=" + boundary)
profile = rest("GET", "/api/deviceProfile/" + prof)
profile["firmwareId"] = {"entityType": "OTA_PACKAGE", "id": pkg}
notes_before = metric("observe_notifications_total")
t0 = time.monotonic()
rest("POST", "/api/deviceProfile", profile)
t_rest = time.monotonic() - t0
ok = run_until(lambda: all(o.notes for o in obs), 20)
got = [o for o in obs if o.notes]
if not ok:
    fail("only %d of %d observers got the fw_* notification" % (len(got), N))
lat = sorted(o.notes[0][0] - t0 for o in obs)
for o in obs:
    body = json.loads(o.notes[0][1]["payload"])
    if body.get("fw_title") != "c4-fw" or opt_uint(o.notes[0][1], OBSERVE) != 1:
        fail("observer %d got %s (Observe %s)" % (o.i, body, opt_uint(o.notes[0][1], OBSERVE)))
figure("one REST call (OTA package assigned to the profile, %.2f s) -> %d/%d observers "
       "notified, Observe=1, first %.2f s, median %.2f s, last %.2f s after the call" %
       (t_rest, len(got), N, lat[0], lat[len(lat) // 2], lat[-1]))

# ---- 3. RST, a silent observer, Observe=1 ----------------------------------------------------
rel = wait_metric("observe_relations", base_relations + N - 10, 2)
figure("after 10 RSTs: coaphub_observe_relations %d (%d before)" % (rel, base_relations + N))
if rel < base_relations + N - 20 or rel > base_relations + N - 10:
    fail("RST did not end the relations: %d" % rel)
# A silent observer's CON notification: sent, retransmitted MAX_RETRANSMIT times (after
# T, 2T with T in [ACK_TIMEOUT, 1.5 ACK_TIMEOUT]), given up T(2^(MAX_RETRANSMIT+1)-1) after the
# first send (RFC 7252 §4.2); then the relation ends (RFC 7641 §4.5).
give_up_s = a.ack_timeout_ms * 1.5 * (2 ** (a.max_retransmit + 1) - 1) / 1000.0
first = min(min(t) for o in obs[10:20] for t in o.con_times.values())
ok = run_until(lambda: metric("observe_relations") == base_relations + N - 20, give_up_s + 3)
t_gone = time.monotonic() - first
if not ok:
    fail("silent observers still related %.1f s after their notification: %d" %
         (t_gone, metric("observe_relations")))
copies = [sum(o.con_mids.values()) for o in obs[10:20]]
if any(c != 1 + a.max_retransmit for c in copies):
    fail("silent observers got %s copies, want %d each" % (copies, 1 + a.max_retransmit))
# Gaps between copies; the first arrival may be late by the client's backlog of 1,000
# notifications, so the gap between the last two is the clean one (2T).
last_gap = [t[-1] - t[-2] for o in obs[10:20] for t in o.con_times.values()]
figure("10 silent observers: %d transmissions each (MAX_RETRANSMIT %d, ACK_TIMEOUT %d ms), "
       "last gap %.2f-%.2f s (2T, expected %.2f-%.2f), relations gone %.2f s after the first "
       "copy arrived (RFC 7252 bound %.2f-%.2f s, + the 50 ms poll)" %
       (copies[0], a.max_retransmit, a.ack_timeout_ms, min(last_gap), max(last_gap),
        2 * a.ack_timeout_ms / 1000.0, 3 * a.ack_timeout_ms / 1000.0, t_gone,
        give_up_s / 1.5, give_up_s))
# The deregistration's answer comes piggybacked in the ACK: on_datagram files the first ACK
# with a code as `registered`, so clear it first.
for o in obs[20:30]:
    o.registered = None
    register(o, CON, observe=1)
ok = run_until(lambda: all(o.registered for o in obs[20:30]), 5)
codes = sorted(set(o.registered["code"] for o in obs[20:30] if o.registered))
if not ok or codes != ["2.02"] or any(opt_uint(o.registered, OBSERVE) is not None
                                      for o in obs[20:30]):
    fail("GET Observe=1 answered %s, want 2.02 without Observe" % codes)
rel = wait_metric("observe_relations", base_relations + N - 30, 2)
if rel != base_relations + N - 30:
    fail("after Observe=1: coaphub_observe_relations %d, want %d" % (rel, base_relations + N - 30))
figure("GET Observe=1 x 10 -> 2.02; coaphub_observe_relations %d" % rel)
# Ended means ended: updates of those devices reach no one; a live one is still served.
for i in (0, 10, 20, 30):
    rest("POST", "/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE" % dev_ids[i],
         {"after": i})
run_until(lambda: len(obs[30].notes) >= 2, 5)
run_for(0.5)
stray = [i for i in (0, 10, 20) if len(obs[i].notes) > 1]
if len(obs[30].notes) < 2 or stray:
    fail("after the end: live observer got %d notes, ended ones got more: %s" %
         (len(obs[30].notes), stray))
figure("updates after the end: RST/silent/Observe=1 observers 0 notifications, a live one 1")

# ---- 4. NON relation: a CON at least after every 5 NON ones -----------------------------------
non = add(Obs(N, "127.0.1.250", b"nonobs", "/api/v1/obsl%d/attributes" % N))
register_all([non], NON)
for k in range(12):
    rest("POST", "/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE" % dev_ids[N],
         {"k": k})
    if not run_until(lambda: len(non.notes) >= k + 1, 5):
        fail("NON observer: notification %d missing" % (k + 1))
types = "".join("C" if r["type"] == CON else "N" for _, r in non.notes)
seqs = [opt_uint(r, OBSERVE) for _, r in non.notes]
if types != "NNNNNCNNNNNC" or seqs != list(range(1, 13)):
    fail("NON relation types %s Observe %s" % (types, seqs))
figure("NON relation, 12 notifications: %s (Observe 1..12)" % types)
# A client that forgot a NON relation rejects its next NON notification with RST: that ends
# it too (RFC 7641 §3.6), not only an RST to a CON one.
rel0 = metric("observe_relations")
non.mode = "rst"
rest("POST", "/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE" % dev_ids[N], {"k": 12})
if not run_until(lambda: len(non.notes) >= 13, 5) or non.notes[12][1]["type"] != NON:
    fail("NON observer: 13th notification missing or not NON")
non.sock.sendto(encode(RST, 0, non.notes[12][1]["mid"]), SERVER)
rel = wait_metric("observe_relations", rel0 - 1, 2)
rest("POST", "/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE" % dev_ids[N], {"k": 13})
run_for(0.5)
if rel != rel0 - 1 or len(non.notes) != 13:
    fail("RST to a NON notification: relations %d (want %d), %d notifications (want 13)" %
         (rel, rel0 - 1, len(non.notes)))
figure("RST to a NON notification: relation ended (coaphub_observe_relations %d -> %d), the "
       "next update not sent" % (rel0, rel))

# ---- 5. caps ---------------------------------------------------------------------------------
# One device, 17 observers from 17 ports: each new one replaces the one before (2.02).
many = [add(Obs(N + 1 + k, "127.0.1.251", b"dev%02d" % k, "/api/v1/obsl%d/attributes" % (N + 1)))
        for k in range(17)]
rel0 = metric("observe_relations")
for o in many:
    register_all([o])
    if opt_uint(o.registered, OBSERVE) != 0:
        fail("observer %d of one device not registered" % o.i)
run_until(lambda: all(any(r["code"] == "2.02" for r in o.other) for o in many[:-1]), 5)
replaced = sum(1 for o in many[:-1] if any(r["code"] == "2.02" for r in o.other))
rel = wait_metric("observe_relations", rel0 + 1, 2)
if replaced != 16 or rel != rel0 + 1:
    fail("17 observers of one device: %d replaced (2.02), relations +%d" % (replaced, rel - rel0))
figure("17 observers of one device from 17 ports: 16 replaced with 2.02, 1 relation left")
# One address, 65 RPC observers of 65 devices on 65 ports: the 65th gets 2.03 without Observe.
refused0 = metric("coap_observe_refused_total", '{cap="address"}')
rpc = [add(Obs(2000 + k, "127.0.1.252", b"rpc%02d" % k, "/api/v1/obsl%d/rpc" % (k + 30)))
       for k in range(65)]
register_all(rpc)
with_obs = sum(1 for o in rpc if opt_uint(o.registered, OBSERVE) == 0)
codes = sorted(set(o.registered["code"] for o in rpc))
refused = metric("coap_observe_refused_total", '{cap="address"}') - refused0
if codes != ["2.03"] or with_obs != 64 or opt_uint(rpc[-1].registered, OBSERVE) is not None or \
        refused != 1:
    fail("65 RPC observers from one address: codes %s, %d with Observe, refused %d" %
         (codes, with_obs, refused))
figure("65 RPC observers from 127.0.1.252: 64 with Observe=0, the 65th 2.03 without Observe; "
       "coap_observe_refused_total{cap=\"address\"} +%d" % refused)
print("ok", flush=True)
