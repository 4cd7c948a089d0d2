"""soak_load.py — R7 soak: a mixed CoAP / DTLS / REST load for a fixed time while the server's
RSS and open file descriptors are sampled (test_soak.sh; by hand for the 30-minute run).

usage: soak_load.py --bench BIN --pid PID --coap-port N --coaps-port N --base-url URL
                    --work DIR --log FILE --seconds S --warmup S [rates, thresholds: --help]
The administrator's name and password come from COAPHUB_BENCH_USER / COAPHUB_BENCH_PASSWORD
(as coaphub-bench reads them: never on a command line).

The load is made of coaphub-bench runs (bench/, docs/bench.md), real libcoap observers and a
REST client of its own, all started here and each bounded in time and count:
  - first the devices are registered, and the CoAP deduplication table is filled to its cap
    (--prefill, see prefill());
  - then segments of --segment seconds, each followed by --quiet seconds without requests
    (see "phases" below). In each segment: plain CoAP token devices posting telemetry and
    others reading their attributes (open loop, --rate-plain / --rate-attr, CON); X.509 and
    PSK DTLS devices posting telemetry (--rate-x509 / --rate-psk; one session per device for
    the segment: a full handshake at its start, close_notify at its end); every --hs-period
    seconds a burst of full X.509 handshakes, resumed ones and full PSK handshakes
    (coaphub-bench handshake -n); a REST round every --rest-period seconds: device list,
    telemetry history and latest values, a shared attribute update, a one-way RPC every 5th
    round, a new login (and a logout of the old session) every --login-period seconds;
  - for the whole run one X.509 device observes its shared attributes and another its RPC
    subscription (coap-client-openssl -s), notified by the REST updates and RPCs.
Every --sample seconds (and at the end of each quiet window) the server's VmRSS, RssAnon,
RssFile (/proc/PID/status), open fds (/proc/PID/fd), threads and the 1-minute load average
are written to WORK/samples.csv. At the end one JSON line on stdout gives the achieved rates,
the RSS at the quiet points (the first after the warm-up and the last), the drift (least-squares
slope over the quiet samples after the warm-up, in MiB per 10 minutes; also over every sample,
and end point minus start point), fds min / max after the warm-up, and the error-level lines
the server logged during the run. Exit status: 0 when the criteria hold, 1 when one does not
(each one that failed is named on stderr and in "fails"), 2 when the load could not be set up.
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--bench", required=True)
p.add_argument("--pid", type=int, required=True)
p.add_argument("--coap-port", type=int, required=True)
p.add_argument("--coaps-port", type=int, required=True)
p.add_argument("--base-url", required=True)
p.add_argument("--work", required=True, help="folder for certificates, outputs, samples.csv")
p.add_argument("--log", required=True, help="the server's log (error-level lines are counted)")
p.add_argument("--seconds", type=float, required=True)
p.add_argument("--warmup", type=float, required=True, help="seconds not judged for drift")
p.add_argument("--sample", type=float, default=5.0, help="seconds between RSS / fd samples")
p.add_argument("--segment", type=float, default=20, help="seconds of load between quiet windows")
p.add_argument("--quiet", type=float, default=4, help="seconds without load after each segment")
p.add_argument("--plain-devices", type=int, default=8)
p.add_argument("--rate-plain", type=float, default=100, help="plain telemetry, requests/s")
p.add_argument("--rate-attr", type=float, default=320, help="plain attribute reads, requests/s")
p.add_argument("--prefill", type=int, default=105000,
               help="attribute reads sent as fast as answered before the run (dedup table)")
p.add_argument("--window", type=int, default=1,
               help="requests a device may have outstanding (coaphub-bench -w)")
p.add_argument("--x509-devices", type=int, default=6)
p.add_argument("--rate-x509", type=float, default=60, help="X.509 DTLS telemetry, requests/s")
p.add_argument("--psk-devices", type=int, default=4)
p.add_argument("--rate-psk", type=float, default=20, help="PSK DTLS telemetry, requests/s")
p.add_argument("--hs-period", type=float, default=15, help="seconds between handshake bursts")
p.add_argument("--hs-full", type=int, default=2, help="full X.509 handshakes per burst")
p.add_argument("--hs-resumed", type=int, default=6, help="resumed handshakes per burst")
p.add_argument("--hs-psk", type=int, default=2, help="full PSK handshakes per burst")
p.add_argument("--rest-period", type=float, default=1.0)
p.add_argument("--login-period", type=float, default=30.0)
p.add_argument("--max-drift", type=float, default=2.0, help="MiB per 10 min (slope), at most")
p.add_argument("--judge", choices=("quiet", "all"), default="quiet",
               help="RSS drift judged on the quiet samples or on every sample after the warm-up")
p.add_argument("--fd-tolerance", type=int, default=5, help="fds within +- this of the warm value")
p.add_argument("--max-error-rate", type=float, default=0.001,
               help="errors / settled requests per load component, at most")
a = p.parse_args()

USER = os.environ.get("COAPHUB_BENCH_USER", "")
PASSWORD = os.environ.get("COAPHUB_BENCH_PASSWORD", "")
WORK = os.path.abspath(a.work)
CERTS = os.path.join(WORK, "certs")
os.makedirs(CERTS, exist_ok=True)
T0 = time.monotonic()
END = T0 + a.seconds
URL = urllib.parse.urlparse(a.base_url)
ERROR_LINE = re.compile(r"^\S+\s+error\s")   # src/core/log.c: "<ISO time> error [comp] msg"
stop = threading.Event()


def say(msg):
    print("[soak_load %6.0fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def bench(args, timeout):
    """One coaphub-bench run; its JSON summary (or None)."""
    cmd = [a.bench] + args + ["--json", "-q"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        say("bench timed out: %s" % " ".join(args))
        return None
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    say("bench gave no JSON (rc %d): %s %s" % (r.returncode, " ".join(args), r.stderr[-500:]))
    return None


# Device groups: (name prefix, token prefix, count, transport args). X.509 devices 0..N-1 post
# telemetry; N and N+1 do the handshake bursts; N+2 observes attributes, N+3 RPC.
NX = a.x509_devices
GROUPS = {
    "plain": ["-p", str(a.coap_port), "--token-prefix", "soakp-", "--name-prefix", "soak-p-",
              "-c", str(a.plain_devices)],
    "attr": ["-p", str(a.coap_port), "--token-prefix", "soaka-", "--name-prefix", "soak-a-",
             "-c", str(a.plain_devices)],
    "x509": ["-p", str(a.coaps_port), "--dtls", "--certs", CERTS, "--token-prefix", "soakx-",
             "--name-prefix", "soak-x-"],
    "psk": ["-p", str(a.coaps_port), "--psk", "--token-prefix", "soakk-",
            "--name-prefix", "soak-k-", "-c", str(a.psk_devices)],
}


# The attribute read, the same in the prefill and the run: the dedup entry keeps its response,
# so both must leave blocks of the same size.
ATTR_PATH = "/api/v1/{token}/attributes?clientKeys=a,b&sharedKeys=mode"


def setup_devices():
    """Registers every device over REST (coaphub-bench --create-devices) with a short run that
    must be answered 2.01 throughout."""
    rest = ["--rest", a.base_url, "--create-devices"]
    for name, args in GROUPS.items():
        extra = ["-c", str(NX + 4), "--gen-certs"] if name == "x509" else []
        if name == "attr":   # client attributes for the reads to find (none: 4.04)
            extra = ["--path", "/api/v1/{token}/attributes", "--payload", '{"a":1,"b":"two"}']
        n = NX + 4 if name == "x509" else int(args[args.index("-c") + 1])
        out = bench(["telemetry"] + args + extra + rest + ["-n", str(n), "--rate", "50",
                                                            "-d", "30", "--connect-timeout", "60"], 150)
        if not out or out.get("codes", {}).get("2.01") != n:
            say("setup of %s devices failed: %s" % (name, out))
            sys.exit(2)
    say("devices registered")


def prefill():
    """Fills the CoAP deduplication table to its cap before the run. Every CON request leaves a
    (peer, MID) entry with its response for EXCHANGE_LIFETIME (247 s; src/coap/engine.c), at
    most 100,000 per shard. Filling at the run's rate would look exactly like a leak for 247 s,
    longer than the whole CI form; filled here (closed loop, ~10 s under ASan) and kept at the
    cap by a plain CON rate of at least 100,000 / 247 s = 405 requests/s (--rate-plain +
    --rate-attr), its memory is constant through the run, and no freed dedup memory is there
    for a leak to hide in."""
    if a.prefill <= 0:
        return
    out = bench(["telemetry"] + GROUPS["attr"] + [
        "-w", "8", "-n", str(a.prefill), "-d", "120", "--method", "get",
        "--path", ATTR_PATH], 180)
    # (A 2.01 among the 2.05s is no error: a new socket can get the port of one the setup
    # used, and a Message ID it used then is a duplicate for EXCHANGE_LIFETIME, RFC 7252 §4.5.)
    if not out or out.get("done") != a.prefill or out.get("errors") != 0:
        say("dedup prefill failed: %s" % out)
        sys.exit(2)
    say("dedup table filled: %d reads in %.1f s" % (a.prefill, out["elapsed_s"]))


# --- phases ------------------------------------------------------------------------------------
# The load runs in segments of --segment seconds, each followed by --quiet seconds without any
# request (the observers stay registered). Why: under load the store's writer keeps its SQLite
# page cache (up to 64 MiB) and the merge's rows, which grow with the database until their caps;
# once a batch has not come for 200 ms it merges its log and hands that memory back
# (src/store/writer.c wait_for_work). RSS at the end of each quiet window is the server's
# resting size: a leak makes it climb, a cache filling does not. Both are reported; the row's
# drift is judged on the quiet samples.

running = threading.Event()   # set while a segment's load runs
busy = {"rest": threading.Lock(), "hs": threading.Lock()}   # held during one action


def wait_running():
    """Blocks while the load is paused; False once the run is over."""
    while not stop.is_set():
        if running.wait(0.5):
            return True
    return False


# --- REST --------------------------------------------------------------------------------------

class Rest:
    def __init__(self):
        self.conn = None
        self.jwt = None
        self.codes = {}

    def request(self, what, method, path, body=None, auth=True):
        headers = {"Accept": "application/json"}
        if auth and self.jwt:
            headers["X-Authorization"] = "Bearer " + self.jwt
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        code, raw = 0, b""
        for _ in (1, 2):   # once more on a fresh connection if keep-alive was closed
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=15)
                self.conn.request(method, path, data, headers)
                r = self.conn.getresponse()
                raw = r.read()
                code = r.status
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
        k = "%s %d" % (what, code)
        self.codes[k] = self.codes.get(k, 0) + 1
        try:
            return code, json.loads(raw) if raw else None
        except ValueError:
            return code, None

    def login(self):
        old = self.jwt
        code, body = self.request("login", "POST", "/api/auth/login",
                                  {"username": USER, "password": PASSWORD}, auth=False)
        if code != 200:
            return False
        if old:   # the old session ends: its tokens are revoked (issue 17 point 1)
            self.request("logout", "POST", "/api/auth/logout", {})
        self.jwt = body["token"]
        return True

    def errors(self):
        return sum(n for k, n in self.codes.items() if not k.endswith(" 200"))

    def total(self):
        return sum(self.codes.values())


rest = Rest()
stats = {"attr_updates": 0, "rpcs": 0}


def device_id(name):
    code, body = rest.request("by-name", "GET", "/api/tenant/devices?deviceName=" + name)
    if code != 200:
        say("device %s: HTTP %d" % (name, code))
        sys.exit(2)
    return body["id"]["id"]


def rest_round(n, obs_attr_id, obs_rpc_id, plain_id, next_login):
    now_ms = int(time.time() * 1000)
    if time.monotonic() >= next_login:
        rest.login()
        next_login = time.monotonic() + a.login_period
    rest.request("list", "GET", "/api/tenant/devices?pageSize=50&page=0&sortProperty=name")
    rest.request("history", "GET",
                 "/api/plugins/telemetry/DEVICE/%s/values/timeseries?keys=temperature"
                 "&startTs=%d&endTs=%d&limit=100" % (plain_id, now_ms - 60000, now_ms))
    rest.request("latest", "GET", "/api/plugins/telemetry/DEVICE/%s/values/timeseries" % plain_id)
    code, _ = rest.request("attr-set", "POST",
                           "/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE"
                           % obs_attr_id, {"soakRound": n})
    if code == 200:
        stats["attr_updates"] += 1
    if n % 5 == 0:
        code, _ = rest.request("rpc", "POST", "/api/plugins/rpc/oneway/" + obs_rpc_id,
                               {"method": "soakPing", "params": {"n": n}, "timeout": 5000})
        if code == 200:
            stats["rpcs"] += 1
    return next_login


def rest_loop(obs_attr_id, obs_rpc_id, plain_id):
    if a.rest_period <= 0:   # --rest-period 0: no REST load (for looking at one part alone)
        return
    n = 0
    next_login = time.monotonic() + a.login_period
    while wait_running():
        with busy["rest"]:
            if not running.is_set():
                continue
            n += 1
            next_login = rest_round(n, obs_attr_id, obs_rpc_id, plain_id, next_login)
        stop.wait(a.rest_period)


# --- sampling ----------------------------------------------------------------------------------

samples = []   # (t, rss_kb, fds, threads, load1, anon_kb, file_kb, shmem_kb, quiet)
cpu = {}       # the server's CPU seconds (utime + stime) at the first and last sample
CSV_ROW = "%.1f,%d,%d,%d,%.2f,%d,%d,%d,%d\n"
csv_lock = threading.Lock()


def sample_once(csv, quiet=0):
    try:
        v = {}
        with open("/proc/%d/status" % a.pid) as f:
            for line in f:
                k, _, rest_ = line.partition(":")
                if k in ("VmRSS", "Threads", "RssAnon", "RssFile", "RssShmem"):
                    v[k] = int(rest_.split()[0])
        fds = len(os.listdir("/proc/%d/fd" % a.pid))
        with open("/proc/%d/stat" % a.pid) as f:   # fields 14, 15 after the ")" of comm
            st = f.read().rsplit(")", 1)[1].split()
        cpu_s = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        with open("/proc/loadavg") as f:
            load1 = float(f.read().split()[0])
    except OSError:
        return False
    # RssFile / RssShmem: mapped files (libraries, SQLite's WAL index), not the heap.
    row = (time.monotonic() - T0, v.get("VmRSS", 0), fds, v.get("Threads", 0), load1,
           v.get("RssAnon", 0), v.get("RssFile", 0), v.get("RssShmem", 0), quiet)
    with csv_lock:
        cpu.setdefault("first", (row[0], cpu_s))
        cpu["last"] = (row[0], cpu_s)
        samples.append(row)
        csv.write(CSV_ROW % row)
        csv.flush()
    return True


def sampler(csv):
    n = 0
    while not stop.is_set():
        if not sample_once(csv):
            say("server pid %d is gone" % a.pid)
            stop.set()
            return
        n += 1
        if n % max(1, int(60 / a.sample)) == 0:
            r = samples[-1]
            say("rss %d kB, fds %d, threads %d, load %.2f" % (r[1], r[2], r[3], r[4]))
        stop.wait(a.sample)


# --- handshake bursts ----------------------------------------------------------------------------

hs = {"full": 0, "resumed": 0, "psk": 0, "errors": 0, "bursts": 0}


def handshake_loop():
    x = GROUPS["x509"]
    k = GROUPS["psk"][:-2] + ["-c", "1"]   # PSK device 0, without the group's -c
    runs = [("full", x + ["-c", "1", "--token-start", str(NX), "-n", str(a.hs_full)]),
            ("resumed", x + ["--resume", "-c", "1", "--token-start", str(NX + 1),
                             "-n", str(a.hs_resumed)]),
            ("psk", k + ["-n", str(a.hs_psk)])]
    while wait_running():
        for kind, args in runs:
            if not args[-1] or args[-1] == "0":
                continue
            with busy["hs"]:
                if not running.is_set():
                    break
                out = bench(["handshake"] + args + ["-d", "10", "--drain", "1",
                                                    "--connect-timeout", "10"], 40)
            if out is None:
                hs["errors"] += 1
                continue
            hs[kind] += out.get("handshakes", 0)
            hs["errors"] += out.get("handshake_errors", 0)
        hs["bursts"] += 1
        stop.wait(a.hs_period)


# --- main ----------------------------------------------------------------------------------------

def log_size():
    try:
        return os.path.getsize(a.log)
    except OSError:
        return 0


def error_lines(offset):
    out = []
    with open(a.log, errors="replace") as f:
        f.seek(offset)
        for line in f:
            if ERROR_LINE.match(line):
                out.append(line.rstrip())
    return out


LOADS = {
    "plain": lambda: ["telemetry"] + GROUPS["plain"] + [
        "--rate", str(a.rate_plain), "--payload", '{"temperature":21.5,"humidity":40}'],
    "attr": lambda: ["telemetry"] + GROUPS["attr"] + [
        "--rate", str(a.rate_attr), "--method", "get",
        "--path", ATTR_PATH],
    "x509": lambda: ["telemetry"] + GROUPS["x509"] + ["-c", str(NX), "--rate", str(a.rate_x509)],
    "psk": lambda: ["telemetry"] + GROUPS["psk"] + ["--rate", str(a.rate_psk)],
}
SUMS = ("sent", "done", "errors", "timeouts", "retrans", "overload", "handshakes")
totals = {}   # load -> summed bench figures over the segments


def run_segment(seconds, seg):
    """One segment: every steady load for `seconds` (new sessions: X.509 and PSK devices do a
    full handshake at the start of each segment), the REST and handshake loops alongside."""
    procs = {}
    for name, mk in LOADS.items():
        args = mk()
        if float(args[args.index("--rate") + 1]) <= 0:
            continue
        out = os.path.join(WORK, "%s.%03d.json" % (name, seg))
        procs[name] = (subprocess.Popen(
            [a.bench] + args + ["-w", str(a.window), "-d", "%.1f" % seconds, "--drain", "3", "--connect-timeout", "60",
                                "--json", "-q"],
            stdout=open(out, "w"), stderr=subprocess.DEVNULL), out)
    running.set()
    for name, (pr, out) in procs.items():
        try:
            pr.wait(timeout=seconds + 90)
        except subprocess.TimeoutExpired:
            pr.kill()
            pr.wait()
        try:
            with open(out) as f:
                r = json.loads([ln for ln in f if ln.startswith("{")][-1])
        except (OSError, IndexError, ValueError):
            totals.setdefault(name, {}).setdefault("missing", 0)
            totals[name]["missing"] += 1
            continue
        t = totals.setdefault(name, {"segments": 0, "elapsed_s": 0.0, "p99_ms_max": 0.0,
                                     "codes": {}, "devices": r["devices"], "rate": r["rate"]})
        t["segments"] += 1
        t["elapsed_s"] += r["elapsed_s"]
        t["p99_ms_max"] = max(t["p99_ms_max"], r["p99_ms"])
        for k in SUMS:
            t[k] = t.get(k, 0) + max(0, r.get(k, 0))
        for c, n in r["codes"].items():
            t["codes"][c] = t["codes"].get(c, 0) + n
    running.clear()


def main():
    if not rest.login():
        say("login failed: %s" % rest.codes)
        return 2
    setup_devices()
    prefill()
    obs_attr = device_id("soak-x-%d" % (NX + 2))
    obs_rpc = device_id("soak-x-%d" % (NX + 3))
    plain_id = device_id("soak-p-0")
    log_offset = log_size()
    global T0, END
    T0 = time.monotonic()
    END = T0 + a.seconds
    csv = open(os.path.join(WORK, "samples.csv"), "w")
    csv.write("t_s,rss_kb,fds,threads,load1,anon_kb,file_kb,shmem_kb,quiet\n")
    sample_once(csv)

    # Observers for the whole run, first, so the REST updates find them registered.
    obs = {}
    for kind, dev, path in (("obs-attr", NX + 2, "/api/v1/attributes"),
                            ("obs-rpc", NX + 3, "/api/v1/rpc")):
        outf = os.path.join(WORK, kind + ".out")
        obs[kind] = subprocess.Popen(
            ["timeout", str(int(a.seconds) + 60), "coap-client-openssl", "-w", "-m", "get",
             "-s", str(int(a.seconds) + 10), "-B", str(int(a.seconds) + 20), "-o", outf,
             "-c", os.path.join(CERTS, "dev-%d.crt" % dev),
             "-j", os.path.join(CERTS, "dev-%d.key" % dev),
             "coaps://127.0.0.1:%d%s" % (a.coaps_port, path)],
            stdout=subprocess.DEVNULL, stderr=open(outf + ".log", "w"))
    threads = [threading.Thread(target=sampler, args=(csv,), daemon=True),
               threading.Thread(target=handshake_loop, daemon=True),
               threading.Thread(target=rest_loop, args=(obs_attr, obs_rpc, plain_id), daemon=True)]
    for t in threads:
        t.start()
    say("load for %.0f s in segments of %.0f s + %.0f s quiet (warm-up %.0f s)"
        % (a.seconds, a.segment, a.quiet, a.warmup))
    seg = 0
    while not stop.is_set():
        left = END - time.monotonic() - a.quiet
        if left < 5:
            break
        seg += 1
        run_segment(min(a.segment, left), seg)
        # Quiet: wait for the REST round and handshake burst in progress, then let the writer go
        # idle; the last instant of the window is the quiet sample.
        with busy["rest"], busy["hs"]:
            pass
        stop.wait(a.quiet)
        sample_once(csv, quiet=1)
    stop.set()
    for t in threads:
        t.join(60)
    for pr in obs.values():   # -s ends them about now; bounded by `timeout` anyway
        try:
            pr.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pr.kill()
            pr.wait()
    csv.close()
    return report(log_offset, seg)


def theil_sen_per_10min(pts):
    """Median of the slopes between every two samples (Theil-Sen): one step of the allocator
    at either end of a short window moves it far less than a least-squares fit."""
    sl = sorted((v2 - v1) / (t2 - t1) for i, (t1, v1) in enumerate(pts)
                for t2, v2 in pts[i + 1:] if t2 > t1)
    if not sl:
        return None
    m = len(sl) // 2
    return (sl[m] if len(sl) % 2 else (sl[m - 1] + sl[m]) / 2) * 600.0


def slope_per_10min(pts):
    n = len(pts)
    if n < 2:
        return None
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    den = sum((t - mt) ** 2 for t, _ in pts)
    return 0.0 if den == 0 else sum((t - mt) * (v - mv) for t, v in pts) / den * 600.0


def report(log_offset, segments):
    fails = []
    res = {"seconds": a.seconds, "warmup_s": a.warmup, "segment_s": a.segment, "quiet_s": a.quiet,
           "segments": segments, "loads": {}}
    for name, t in totals.items():
        settled = max(1, t.get("done", 0) + t.get("timeouts", 0))
        t["rps"] = round(t.get("done", 0) / max(1e-9, t.get("elapsed_s", 0)), 1)
        res["loads"][name] = t
        if t.get("missing"):
            fails.append("load %s: %d segments gave no summary" % (name, t["missing"]))
        if t.get("errors", 0) / settled > a.max_error_rate:
            fails.append("load %s: %d errors in %d requests" % (name, t["errors"], settled))
    notif = {}
    for kind, word in (("obs-attr", '"soakRound"'), ("obs-rpc", '"soakPing"')):
        try:
            with open(os.path.join(WORK, kind + ".out"), errors="replace") as f:
                notif[kind] = f.read().count(word)
        except OSError:
            notif[kind] = 0
    res["observe"] = {"attr_updates": stats["attr_updates"], "attr_notifications": notif["obs-attr"],
                      "rpcs": stats["rpcs"], "rpc_notifications": notif["obs-rpc"]}
    # A notification carries the latest value: an update made while the previous notification
    # is unacknowledged may be folded into the next one (RFC 7641 §4.5), hence 90 %.
    if a.rest_period <= 0:
        pass
    elif stats["attr_updates"] == 0 or notif["obs-attr"] < 0.9 * stats["attr_updates"]:
        fails.append("attribute notifications %d for %d updates"
                     % (notif["obs-attr"], stats["attr_updates"]))
    if a.rest_period > 0 and (stats["rpcs"] == 0 or notif["obs-rpc"] < 0.9 * stats["rpcs"]):
        fails.append("RPC deliveries %d for %d RPCs" % (notif["obs-rpc"], stats["rpcs"]))
    res["handshakes"] = dict(hs)
    if hs["errors"] or (hs["bursts"] == 0 and a.hs_full + a.hs_resumed + a.hs_psk > 0):
        fails.append("handshakes: %s" % hs)
    res["rest"] = {"requests": rest.total(), "errors": rest.errors(), "codes": rest.codes}
    if rest.errors() > a.max_error_rate * max(1, rest.total()):
        fails.append("REST errors: %s" % rest.codes)

    warm = [s for s in samples if s[0] >= a.warmup]
    quiet = [s for s in warm if s[8]]
    if len(quiet) < 2:
        fails.append("too few quiet samples after the warm-up (%d)" % len(quiet))
    else:
        q0, q1 = quiet[0], quiet[-1]
        # The judged drift: Theil-Sen over the quiet samples (--judge quiet), or over every
        # sample after the warm-up (--judge all: more points for a short window).
        judged = quiet if a.judge == "quiet" else warm
        slope = theil_sen_per_10min([(s[0], s[1] / 1024.0) for s in judged])
        fds = [s[2] for s in warm]
        res["rss"] = {
            "start_kb": samples[0][1],
            "quiet_kb": [s[1] for s in quiet], "quiet_at_s": [round(s[0]) for s in quiet],
            "warm_kb": q0[1], "warm_at_s": round(q0[0], 1), "end_kb": q1[1],
            "end_at_s": round(q1[0], 1), "max_kb": max(s[1] for s in samples),
            "judge": a.judge, "drift_mib_per_10min": round(slope, 3),
            "quiet_theil_sen_mib_per_10min": round(theil_sen_per_10min(
                [(s[0], s[1] / 1024.0) for s in quiet]), 3),
            "all_theil_sen_mib_per_10min": round(theil_sen_per_10min(
                [(s[0], s[1] / 1024.0) for s in warm]), 3),
            "quiet_lsq_mib_per_10min": round(slope_per_10min(
                [(s[0], s[1] / 1024.0) for s in quiet]), 3),
            "endpoints_mib_per_10min": round((q1[1] - q0[1]) / 1024.0
                                             / max(1e-9, q1[0] - q0[0]) * 600, 3),
            "anon_drift_mib_per_10min": round(slope_per_10min(
                [(s[0], s[5] / 1024.0) for s in quiet]), 3),
            # every sample after the warm-up, load and quiet alike: includes the caches
            "all_samples_drift_mib_per_10min": round(slope_per_10min(
                [(s[0], s[1] / 1024.0) for s in warm]), 3),
            "warm_anon_file_shmem_kb": list(q0[5:8]), "end_anon_file_shmem_kb": list(q1[5:8]),
        }
        res["fds"] = {"warm": q0[2], "min": min(fds), "max": max(fds),
                      "min_all": min(s[2] for s in samples), "max_all": max(s[2] for s in samples)}
        res["threads"] = {"min": min(s[3] for s in samples), "max": max(s[3] for s in samples)}
        loads = sorted(s[4] for s in samples)
        res["load1"] = {"min": loads[0], "max": loads[-1], "median": loads[len(loads) // 2]}
        res["samples"] = len(samples)
        (t0, c0), (t1, c1) = cpu["first"], cpu["last"]
        res["server_cpu_pct_of_a_core"] = round(100.0 * (c1 - c0) / max(1e-9, t1 - t0), 1)
        if slope >= a.max_drift:
            fails.append("RSS drift %.2f MiB per 10 min >= %.2f" % (slope, a.max_drift))
        if min(fds) < q0[2] - a.fd_tolerance or max(fds) > q0[2] + a.fd_tolerance:
            fails.append("fds %d..%d outside %d +- %d" % (min(fds), max(fds), q0[2],
                                                          a.fd_tolerance))
    errs = error_lines(log_offset)
    res["error_lines"] = len(errs)
    if errs:
        fails.append("%d error-level log lines, first: %s" % (len(errs), errs[0]))
    res["pass"] = not fails
    res["fails"] = fails
    print(json.dumps(res, sort_keys=True), flush=True)
    for f in fails:
        say("FAIL: " + f)
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
