"""values_prop.py — the values round-trip property for test_values_roundtrip.sh.

usage: values_prop.py   (everything comes from the environment the shell test sets:
       COAP_PORT BASE_URL JWT DEV_ID DEV_TOKEN, and optionally VALUES_PROP_SEED,
       VALUES_PROP_COUNT, VALUES_PROP_SECONDS)

Property: a random value written through each write path (CoAP client attribute, CoAP
telemetry, REST shared attribute, REST telemetry) reads back as the same bytes through every
read path that can see it (CoAP attribute GET, the CoAP Observe notification of a shared
attribute, REST attribute list, REST latest time series typed and as text, and the web UI's
Server-Sent Events), and those bytes are what ThingsBoard's typing rules (spec §5; REST §8.5)
and our one writer predict. The prediction is computed here from the text we sent, with
Python's Decimal standing in for BigDecimal, so a path that types or prints a value its own
way fails the test even when all paths agree.

Bounded: COUNT values (default 150) and SECONDS (default 240) of wall time, whichever ends
first; every wait is bounded. The seed is printed first; rerun with VALUES_PROP_SEED=<seed>.
Fails when it proves nothing: too few values checked, or a category of values (doubles that
look like integers, exponent forms, long edge values, escaped/unicode strings, numeric
strings, nested JSON) or a read path (notifications, events, many-key answers) that was never exercised.
"""
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402

SEED = int(os.environ.get("VALUES_PROP_SEED", "20261212"))
COUNT = int(os.environ.get("VALUES_PROP_COUNT", "150"))
SECONDS = float(os.environ.get("VALUES_PROP_SECONDS", "240"))
PORT = int(os.environ["COAP_PORT"])
BASE = os.environ["BASE_URL"]
JWT = os.environ["JWT"]
DEV = os.environ["DEV_ID"]
TOKEN = os.environ["DEV_TOKEN"]
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

print("values_prop: seed %d, count %d, at most %.0f s" % (SEED, COUNT, SECONDS), flush=True)
rng = random.Random(SEED)


class Failed(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# What our writer prints (values/buf.c): strings, and the one number formatter.

def esc(s):
    """values_buf_json_str: '"', '\\' and control characters escaped, the rest raw UTF-8."""
    short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
             "\f": "\\f"}
    out = ['"']
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def fmt_double(d):
    """values_double_format: the shortest %g that reads back (searched from 15 digits, from 1
    for a subnormal), and an integral-looking result gets ".0"."""
    for prec in range(1 if 0 < abs(d) < 2.2250738585072014e-308 else 15, 18):
        s = "%.*g" % (prec, d)
        if float(s) == d:
            break
    if not any(ch in s for ch in ".eE"):
        s += ".0"
    return s


# ---------------------------------------------------------------------------------------------
# The typing rules, as the spec states them, over the text we send. A stored value is
# (type, text-as-our-writer-prints-it).

def plain(d):
    """BigDecimal.toPlainString of the exact literal (Decimal keeps the literal's exponent)."""
    return format(d, "f")


def device_number(text):
    """Gson JsonConverter (type cast on): the exact decimal value decides. None = refused."""
    if "e" in text or "E" in text:
        d = Decimal(text)
        sign, digits, exp = d.as_tuple()
        digits = list(digits)
        while len(digits) > 1 and digits[-1] == 0:  # stripTrailingZeros
            digits.pop()
            exp += 1
        if d == 0 or exp >= 0:
            v = int(d)
            if INT64_MIN <= v <= INT64_MAX:
                return ("LONG", str(v))
        elif -d.as_tuple().exponent <= 16:
            return ("DOUBLE", fmt_double(float(text)))
        p = plain(d)
        return ("STRING", esc(p)) if len(p) <= 400 else None
    if "." in text:
        f = float(text)
        return ("DOUBLE", fmt_double(f)) if f not in (float("inf"), float("-inf")) else None
    v = int(text)
    return ("LONG", str(v)) if INT64_MIN <= v <= INT64_MAX else ("STRING", esc(text))


def is_parsable(s):
    """commons-lang3 NumberUtils.isParsable."""
    if not s or s.endswith("."):
        return False
    body = s[1:] if s.startswith("-") else s
    return bool(body) and body.count(".") <= 1 and all(ch.isdigit() and ch.isascii() or ch == "."
                                                      for ch in body)


def typed_device(v):
    kind = v[0]
    if kind == "bool":
        return ("BOOL", "true" if v[1] else "false")
    if kind == "num":
        return device_number(v[1])
    if kind == "str":
        if is_parsable(v[1]):
            t = device_number(v[1])
            if t is not None:
                return t
        return ("STRING", esc(v[1]))
    return ("JSON", v[1])


def typed_rest(v):
    """ThingsBoard's REST controller (Jackson): the token decides, strings stay strings."""
    kind = v[0]
    if kind == "bool":
        return ("BOOL", "true" if v[1] else "false")
    if kind == "num":
        t = v[1]
        if not any(ch in t for ch in ".eE"):
            return ("LONG", str(int(t)))
        return ("DOUBLE", fmt_double(float(t)))
    if kind == "str":
        return ("STRING", esc(v[1]))
    return ("JSON", v[1])


def as_text(t):
    """VALUES_TEXT: every value as a JSON string."""
    kind, text = t
    return text if kind == "STRING" else esc(text)


# ---------------------------------------------------------------------------------------------
# Random values. Each is (kind, payload, sent_text, category): payload is the bool, the
# number literal, the decoded string, or the compact JSON text we expect stored.

PIECES = ["a", "Z", "9", " ", "/", '"', "\\", "\n", "\t", "\r", "\b", "\f", "\x01", "\x1f",
          "\x7f", "é", "ß", "中文", "😀", "\u2028", "\ufffd", "{", "}", ":", ",", "'", "="]
NUMERIC_STRINGS = ["43", "-1.5", "007", "0.10", "1e3", "5.", "-", "-0", "123456789012345678901",
                   "9223372036854775807", "-9223372036854775809", "3.14159265358979323846"]


def send_str(s):
    """A JSON string for s, escaped in one of the ways a client may choose."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "/" and rng.random() < 0.5:
            out.append("\\/")
        elif o < 0x20 or (o > 0x7e and rng.random() < 0.4):
            short = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}
            if ch in short and rng.random() < 0.5:
                out.append(short[ch])
            elif o > 0xFFFF:
                o -= 0x10000
                hi, lo = 0xD800 + (o >> 10), 0xDC00 + (o & 0x3FF)
                out.append(("\\u%04x\\u%04x" if rng.random() < 0.5 else "\\u%04X\\u%04X")
                           % (hi, lo))
            else:
                out.append("\\u%04x" % o if rng.random() < 0.5 else "\\u%04X" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def gen_long():
    v = rng.choice([0, 1, -1, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1, 2 ** 53,
                    2 ** 53 + 1, -(2 ** 53) - 1, 10 ** 15, rng.randint(INT64_MIN, INT64_MAX),
                    rng.randint(-1000, 1000)])
    text = "-0" if rng.random() < 0.05 else str(v)
    return ("num", text, text, "long")


def gen_double():
    form = rng.randrange(3)
    if form == 0:  # looks like an integer: stays a DOUBLE and keeps its ".0"
        text = "%d.%s" % (rng.choice([0, 42, -7, 10 ** 6, rng.randint(-10 ** 15, 10 ** 15)]),
                          "0" * rng.randint(1, 3))
        return ("num", text, text, "double_integral")
    if form == 1:  # a random double written shortest (Python's repr)
        d = rng.choice([rng.uniform(-1e6, 1e6), rng.random() * 10.0 ** rng.randint(-30, 30),
                        0.1 + 0.2, 1 / 3, -2.5e-8, 5e-324, 1.7976931348623157e308,
                        rng.random() * 10.0 ** rng.randint(-300, 300)])
        text = repr(d)
        if not any(ch in text for ch in ".eE"):
            text += ".0"
        return ("num", text, text, "exponent" if "e" in text else "double")
    mant = rng.choice(["1", "2", "-3", "1.5", "12.50", "-0.25", "7.000", "0", "123456789"])
    text = "%s%s%s%d" % (mant, rng.choice("eE"), rng.choice(["", "+", "-"]), rng.randint(0, 25))
    return ("num", text, text, "exponent")


def gen_string():
    if rng.random() < 0.3:
        s = rng.choice(NUMERIC_STRINGS)
        return ("str", s, send_str(s), "string_numeric")
    s = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
    special = any(ord(ch) < 0x20 or ord(ch) > 0x7e or ch in '"\\/' for ch in s)
    return ("str", s, send_str(s), "string_escaped" if special else "string")


NESTED_NUMBERS = ["0", "-0", "1.50", "1e3", "-2.5E-3", "0.1", "42.0", "9223372036854775807",
                  "-9223372036854775808", "3.0e+2", "12345.678"]


def gen_json_value(depth):
    """(sent text, expected compact text) of a nested value."""
    r = rng.random()
    if depth < 3 and r < 0.35:
        is_obj = rng.random() < 0.5
        n = rng.randint(0, 4)
        sent, want = [], []
        keys = set()
        for _ in range(n):
            s_item, w_item = gen_json_value(depth + 1)
            if is_obj:
                k = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 4)))
                if k in keys:
                    continue
                keys.add(k)
                sent.append("%s %s %s" % (send_str(k), rng.choice([":", " :", ": "]), s_item))
                want.append("%s:%s" % (esc(k), w_item))
            else:
                sent.append(s_item)
                want.append(w_item)
        o, cl = ("{", "}") if is_obj else ("[", "]")
        return (o + rng.choice(["", " "]) + rng.choice([",", ", ", " ,"]).join(sent) + cl,
                o + ",".join(want) + cl)
    if r < 0.55:
        t = rng.choice(NESTED_NUMBERS)
        return t, t
    if r < 0.8:
        s = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6)))
        return send_str(s), esc(s)
    t = rng.choice(["true", "false", "null"])
    return t, t


def gen_json():
    while True:
        sent, want = gen_json_value(0)
        if sent[0] in "[{":
            return ("json", want, sent, "json")


def gen_value():
    r = rng.random()
    if r < 0.08:
        b = rng.random() < 0.5
        return ("bool", b, "true" if b else "false", "bool")
    if r < 0.25:
        return gen_long()
    if r < 0.55:
        return gen_double()
    if r < 0.8:
        return gen_string()
    return gen_json()


def gen_key(i, path):
    """Keys vary too (unicode, escapes); none holds ',' or '=' (query syntax) or is blank."""
    extra = rng.choice(["", "", "é", "温度", " x", "\"q\"", "\\", "😀"])
    return "v%d_%s%s" % (i, path, extra)


# ---------------------------------------------------------------------------------------------
# Clients: CoAP over coap_raw (one socket for requests, one for the Observe relation), REST
# over urllib, SSE over a raw HTTP/1.0 socket (no chunking to undo).

mid = rng.randrange(1, 30000)
req_sock = c.udp_socket(5.0)


def coap(method, path, payload=b""):
    global mid
    mid = (mid + 1) & 0xFFFF
    tok = mid.to_bytes(2, "big")
    # exchange_echo: a large answer to a new address is shortened until the address answers
    # an Echo (the amplification guard, reliability.md C6); this client is Echo-aware.
    r = c.exchange_echo(req_sock, PORT, c.encode(c.CON, method, mid, tok, c.path_options(path),
                                                 payload), wait=10.0)
    mid = (mid + 1) & 0xFFFF  # exchange_echo may have used the next MID
    if r is None:
        raise Failed("CoAP %s %s: no answer" % (method, path))
    return r


def rest(method, path, body=None):
    data = body.encode() if body is not None else None
    rq = urllib.request.Request(BASE + path, data=data, method=method)
    rq.add_header("X-Authorization", "Bearer " + JWT)
    if data is not None:
        rq.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(rq, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Observer:
    """The shared-attribute Observe relation (spec §3.4). Notifications are collected by key."""

    def __init__(self):
        self.sock = c.udp_socket(5.0)
        self.token = b"\x0b\x5e"
        msg = c.encode(c.CON, c.GET, 0x7777, self.token,
                       c.path_options("/api/v1/%s/attributes" % TOKEN) + [(c.OBSERVE, b"")])
        r = c.exchange_echo(self.sock, PORT, msg, wait=10.0)
        if r is None or r["code"] != "2.05":
            raise Failed("Observe registration: %r" % (r,))
        self.seen = {}  # key -> payload bytes of the notification that carried it
        self.backlog = []  # notifications that arrived while a block was fetched
        self.mid = 0x7800

    def _rest_of(self, first, deadline):
        """RFC 7959 §3.4: a notification sent as Block2 block 0 (the amplification guard
        shortens large ones to an address it has not verified, reliability.md C6): the rest is
        fetched with GETs under another token, as a real client does; notifications arriving
        meanwhile wait in the backlog."""
        body = first["payload"]
        b2 = c.opt_uint(first, 23)
        tok = b"\x0b\x5f"
        while b2 is not None and b2 & 8:
            num, szx = (b2 >> 4) + 1, b2 & 7
            self.mid += 1
            self.sock.sendto(c.encode(c.CON, c.GET, self.mid, tok,
                                      c.path_options("/api/v1/%s/attributes" % TOKEN) +
                                      [(23, c.block_opt(num, False, szx))]),
                             ("127.0.0.1", PORT))
            while True:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data, _ = self.sock.recvfrom(65536)
                except socket.timeout:
                    raise Failed("notification block %d: no answer" % num)
                r = c.decode(data)
                if r is None:
                    continue
                if r["token"] == self.token:
                    if r["type"] == c.CON:
                        self.sock.sendto(c.encode(c.ACK, 0, r["mid"]), ("127.0.0.1", PORT))
                    self.backlog.append(r)
                    continue
                if r["token"] == tok and r["type"] == c.ACK and r["mid"] == self.mid:
                    break
            body += r["payload"]
            b2 = c.opt_uint(r, 23)
        return body

    def wait_for(self, key, seconds=10.0):
        deadline = time.monotonic() + seconds
        while key not in self.seen and time.monotonic() < deadline:
            if self.backlog:
                r = self.backlog.pop(0)
            else:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data, _ = self.sock.recvfrom(65536)
                except socket.timeout:
                    break
                r = c.decode(data)
                if r is None or r["token"] != self.token:
                    continue
                if r["type"] == c.CON:
                    self.sock.sendto(c.encode(c.ACK, 0, r["mid"]), ("127.0.0.1", PORT))
            payload = self._rest_of(r, deadline)
            try:
                for k in json.loads(payload):
                    self.seen.setdefault(k, payload)
            except ValueError:
                raise Failed("notification is not JSON: %r" % payload)
        return self.seen.get(key)


class Events(threading.Thread):
    """The web UI's event stream for the device (GET /api/events): data lines by key."""

    def __init__(self):
        super().__init__(daemon=True)
        u = urllib.parse.urlsplit(BASE)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=1.0)
        q = urllib.parse.urlencode({"deviceId": DEV, "token": JWT})
        self.sock.sendall(("GET /api/events?%s HTTP/1.0\r\nHost: %s\r\n\r\n" % (q, u.netloc))
                          .encode())
        self.stop = False
        self.lock = threading.Lock()
        self.data = []  # raw bytes of each "data:" line
        self.start()

    def run(self):
        buf = b""
        while not self.stop:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.startswith(b"data: "):
                    with self.lock:
                        self.data.append(line[6:])

    def find(self, key, kind):
        """The event that carried key: an attribute event has a scope, telemetry has not."""
        with self.lock:
            lines = list(self.data)
        for raw in lines:
            ev = json.loads(raw)
            vals = ev.get("values")
            if isinstance(vals, dict) and key in vals and ("scope" in ev) == (kind == "attr"):
                return raw, ev
        return None, None

    def close(self):
        self.stop = True
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# The run.

def check(what, got, want):
    if got != want:
        raise Failed("%s\n  got:  %r\n  want: %r" % (what, got, want))


def check_many(written, counts):
    """Answers that hold many keys at once, where the writer groups by key: REST latest of
    every telemetry key written, and CoAP GETs of a few short attributes per section."""
    attr = "/api/plugins/telemetry/DEVICE/%s" % DEV
    keys = list(written["ct"]) + list(written["rt"])
    want = dict(written["ct"], **written["rt"])
    for start in range(0, len(keys), 50):
        part = keys[start:start + 50]
        st, out = rest("GET", attr + "/values/timeseries?useStrictDataTypes=true&keys=" +
                       ",".join(urllib.parse.quote(k, safe="") for k in part))
        check("REST latest of %d keys: status" % len(part), st, 200)
        got = json.loads(out, object_pairs_hook=list)
        exp = "{%s}" % ",".join('%s:[{"ts":%d,"value":%s}]' % (esc(k), pts[0][0][1], want[k])
                                for k, pts in got)
        check("REST latest of %d keys" % len(part), out.decode(), exp)
        check("REST latest of %d keys: key set" % len(part), sorted(k for k, _ in got),
              sorted(part))
        counts["rest_multi"] = counts.get("rest_multi", 0) + 1
    for _ in range(10):
        q, sections = [], []
        for section, p in (("client", "ca"), ("shared", "ra")):
            short = [k for k, t in written[p].items() if len(t) < 60]
            pick = rng.sample(short, min(3, len(short)))
            q.append("%sKeys=%s" % ("client" if p == "ca" else "shared", ",".join(pick)))
            sections.append((section, p, pick))
        r = coap(c.GET, "/api/v1/%s/attributes?%s" % (TOKEN, "&".join(q)))
        got = json.loads(r["payload"], object_pairs_hook=list)
        exp = "{%s}" % ",".join(
            '"%s":{%s}' % (section, ",".join("%s:%s" % (esc(k), written[p][k])
                                           for k, _ in dict(got)[section]))
            for section, p, pick in sections if pick)
        check("CoAP GET of several keys", r["payload"].decode(), exp)
        for section, p, pick in sections:
            check("CoAP GET of several keys: %s key set" % section,
                  sorted(k for k, _ in dict(got).get(section, [])), sorted(pick))
        counts["coap_multi"] = counts.get("coap_multi", 0) + 1


def main():
    deadline = time.monotonic() + SECONDS
    obs = Observer()
    events = Events()
    time.sleep(0.3)  # the stream registers its watcher before the first write
    attr = "/api/plugins/telemetry/DEVICE/%s" % DEV
    cats = {}
    counts = {"values": 0, "coap_get": 0, "notify": 0, "rest_attr": 0, "rest_ts": 0,
              "events": 0, "same_both_ways": 0}
    pending_events = []  # (key, kind, expected typed text, scope)
    written = {"ca": {}, "ra": {}, "ct": {}, "rt": {}}  # path -> key -> expected typed text
    for i in range(COUNT):
        if time.monotonic() > deadline:
            print("values_prop: time is up after %d values" % i, flush=True)
            break
        v = gen_value()
        kind, payload, sent, cat = v
        cats[cat] = cats.get(cat, 0) + 1
        dev_t = typed_device(v[:2])
        rest_t = typed_rest(v[:2])
        if dev_t is None:
            raise Failed("generator made a value the device reader refuses: %s" % sent)
        keys = {p: gen_key(i, p) for p in ("ca", "ct", "ra", "rt")}
        body = {p: "{%s:%s}" % (send_str(k), sent) for p, k in keys.items()}
        what = "value %d (%s) sent as %s" % (i, cat, sent)

        # Writes.
        r = coap(c.POST, "/api/v1/%s/attributes" % TOKEN, body["ca"].encode())
        check(what + ": CoAP attributes POST", r["code"], "2.01")
        r = coap(c.POST, "/api/v1/%s/telemetry" % TOKEN, body["ct"].encode())
        check(what + ": CoAP telemetry POST", r["code"], "2.01")
        st, out = rest("POST", attr + "/attributes/SHARED_SCOPE", body["ra"])
        check(what + ": REST attributes POST (%r)" % out, st, 200)
        st, out = rest("POST", attr + "/timeseries/ANY", body["rt"])
        check(what + ": REST telemetry POST (%r)" % out, st, 200)

        # CoAP attribute GET and the Observe notification.
        for p, section, t in (("ca", "client", dev_t), ("ra", "shared", rest_t)):
            q = "clientKeys" if section == "client" else "sharedKeys"
            r = coap(c.GET, "/api/v1/%s/attributes?%s=%s" % (TOKEN, q, keys[p]))
            check(what + ": CoAP GET %s" % section, r["payload"].decode(),
                  '{"%s":{%s:%s}}' % (section, esc(keys[p]), t[1]))
            counts["coap_get"] += 1
        note = obs.wait_for(keys["ra"])
        if note is None:
            raise Failed(what + ": no Observe notification for the shared attribute")
        check(what + ": Observe notification", note.decode(),
              "{%s:%s}" % (esc(keys["ra"]), rest_t[1]))
        counts["notify"] += 1

        # REST attribute lists and latest time series, typed and as text.
        for p, scope, t in (("ca", "CLIENT_SCOPE", dev_t), ("ra", "SHARED_SCOPE", rest_t)):
            st, out = rest("GET", attr + "/values/attributes/%s?keys=%s" %
                           (scope, urllib.parse.quote(keys[p], safe="")))
            check(what + ": REST attributes GET status", st, 200)
            ts = json.loads(out)[0]["lastUpdateTs"]
            check(what + ": REST attributes GET " + scope, out.decode(),
                  '[{"lastUpdateTs":%d,"key":%s,"value":%s}]' % (ts, esc(keys[p]), t[1]))
            counts["rest_attr"] += 1
            pending_events.append((keys[p], "attr", t[1], scope))
        for p, t in (("ct", dev_t), ("rt", rest_t)):
            for strict in (True, False):
                st, out = rest("GET", attr + "/values/timeseries?keys=%s%s" %
                               (urllib.parse.quote(keys[p], safe=""),
                                "&useStrictDataTypes=true" if strict else ""))
                check(what + ": REST timeseries GET status", st, 200)
                ts = json.loads(out)[keys[p]][0]["ts"]
                check(what + ": REST timeseries GET (strict=%s)" % strict, out.decode(),
                      '{%s:[{"ts":%d,"value":%s}]}' % (esc(keys[p]), ts,
                                                        t[1] if strict else as_text(t)))
                counts["rest_ts"] += 1
            pending_events.append((keys[p], "ts", t[1], None))
        for p, t in (("ca", dev_t), ("ra", rest_t), ("ct", dev_t), ("rt", rest_t)):
            written[p][keys[p]] = t[1]
        counts["values"] += 1
        if dev_t == rest_t:
            counts["same_both_ways"] += 1

    check_many(written, counts)

    # The web UI's events, written on the store's writer thread after each commit.
    wait_until = time.monotonic() + 10.0
    for key, kind, want, scope in pending_events:
        raw, ev = events.find(key, kind)
        while raw is None and time.monotonic() < wait_until:
            time.sleep(0.1)
            raw, ev = events.find(key, kind)
        if raw is None:
            raise Failed("no event for key %r" % key)
        if kind == "attr":
            exp = '{"deviceId":"%s","scope":"%s","values":{%s:%s}}' % (DEV, scope, esc(key), want)
        else:
            exp = '{"deviceId":"%s","values":{%s:[{"ts":%d,"value":%s}]}}' % (
                DEV, esc(key), ev["values"][key][0]["ts"], want)
        check("event for key %r" % key, raw.decode(), exp)
        counts["events"] += 1
    events.close()

    print("values_prop: checked %s" % json.dumps(counts, sort_keys=True), flush=True)
    print("values_prop: categories %s" % json.dumps(cats, sort_keys=True), flush=True)
    # A run that exercised too little proves nothing.
    need = {"double_integral": 3, "exponent": 5, "long": 5, "string_escaped": 5,
            "string_numeric": 3, "json": 5}
    short = [k for k, n in need.items() if cats.get(k, 0) < n]
    if (counts["values"] < 40 or short or counts["notify"] < 40 or counts["events"] < 160
            or counts.get("rest_multi", 0) < 1 or counts.get("coap_multi", 0) < 10):
        raise Failed("only %d values (%s too rare); the test proves nothing"
                     % (counts["values"], ", ".join(short) or "no category"))


try:
    main()
except Failed as e:
    print("values_prop: FAIL (seed %d): %s" % (SEED, e), flush=True)
    sys.exit(1)
print("values_prop: PASS (seed %d)" % SEED, flush=True)
