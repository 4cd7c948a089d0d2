#!/usr/bin/env python3
"""W3's fixed payloads: hostile strings through the REST API, read back exactly.

Device names, attribute keys and values, textSearch and sort parameters carrying SQL and LIKE
metacharacters (' " ; -- % _ \\), 10,000-character strings, NUL and invalid UTF-8. Every
request gets either the exact round trip or ThingsBoard's error JSON with a 4xx status, never
a 5xx; LIKE wildcards in textSearch match themselves only; nothing else in the database moves
(the device count is checked after each hostile step). Prints what it checked.

Env: BASE_URL, JWT.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

BASE, JWT = os.environ["BASE_URL"], os.environ["JWT"]
refusals = []
checked = {"names": 0, "search": 0, "sort": 0, "attr_keys": 0, "attr_values": 0, "refused": 0}


def call(method, path, body=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("X-Authorization", "Bearer " + JWT)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text


def fail(msg):
    print("hostile_strings: FAIL:", msg)
    sys.exit(1)


def tb_error(status, body, what):
    """A refusal must be a 4xx with ThingsBoard's error JSON."""
    if status >= 500:
        fail(f"{what}: HTTP {status} {body!r}")
    if not (400 <= status < 500) or not isinstance(body, dict) or \
            not {"status", "message", "errorCode"} <= body.keys():
        fail(f"{what}: refusal is not ThingsBoard's error JSON: {status} {body!r}")
    checked["refused"] += 1
    refusals.append(f"{what}: {status} errorCode {body['errorCode']}")


def q(s):
    return urllib.parse.quote(s, safe="")


def device_count():
    st, body = call("GET", "/api/tenant/devices?pageSize=1000&page=0")
    if st != 200:
        fail(f"device list: HTTP {st}")
    return body["totalElements"]


HOSTILE = ["a'b", "x\"; DROP TABLE device; --", "o'; DELETE FROM ts_kv; --", "100%", "50_50",
           "back\\slash", "%", "_", "\\", "''", "\\'", "%' OR '1'='1", "é中😀", "tab\there",
           "semi;colon", "/* c */", "$1", "?", ":name", "' UNION SELECT password FROM users --"]
LONG = "L" + "'%_\\" * 2499 + "x"  # 10,000 characters of metacharacters

base_count = device_count()
made = {}
for i, name in enumerate(HOSTILE):
    st, body = call("POST", "/api/device", {"name": name, "type": "hostile"})
    if st != 200:
        fail(f"create {name!r}: HTTP {st} {body!r}")
    made[name] = body["id"]["id"]
    st, back = call("GET", "/api/tenant/devices?deviceName=" + q(name))
    if st != 200 or back.get("name") != name or back["id"]["id"] != made[name]:
        fail(f"device {name!r} read back by name as {st} {back!r}")
    checked["names"] += 1
if device_count() != base_count + len(HOSTILE):
    fail("device count after hostile names")

# A 10,000-character name, NUL and invalid UTF-8: refused cleanly or kept exactly.
for what, raw in [("10,000-character name", json.dumps({"name": LONG, "type": "h"}).encode()),
                  ("NUL in a name", b'{"name":"nul\\u0000x","type":"h"}'),
                  ("raw NUL byte", b'{"name":"nul\x00y","type":"h"}'),
                  ("invalid UTF-8", b'{"name":"bad\xff\xfeutf","type":"h"}'),
                  ("lone surrogate", b'{"name":"sur\\ud800x","type":"h"}')]:
    before = device_count()
    st, body = call("POST", "/api/device", raw=raw)
    if st == 200:
        name = body["name"]
        st2, back = call("GET", "/api/device/" + body["id"]["id"])
        if st2 != 200 or back["name"] != name or name != json.loads(raw.decode("utf-8", "strict"))["name"]:
            fail(f"{what}: accepted but not kept exactly: {back!r}")
        call("DELETE", "/api/device/" + body["id"]["id"])
        checked["names"] += 1
    else:
        tb_error(st, body, what)
    if device_count() != before:
        fail(f"{what}: the device count moved")

# textSearch: LIKE's metacharacters match themselves only.
for term in ["%", "_", "\\", "'", "100%", "50_", "%' OR '1'='1"]:
    st, body = call("GET", "/api/tenant/devices?pageSize=100&page=0&textSearch=" + q(term))
    if st != 200:
        fail(f"textSearch {term!r}: HTTP {st} {body!r}")
    got = sorted(d["name"] for d in body["data"])
    want = sorted(n for n in made if term.lower() in n.lower())
    # Our search is a prefix or a substring match (ThingsBoard's versions differ): either
    # way only names that contain the term literally may come back.
    if not set(got) <= set(want) or not all(n.lower().startswith(term.lower()) or
                                            term.lower() in n.lower() for n in got):
        fail(f"textSearch {term!r} matched {got}, literal matches are {want}")
    prefix = sorted(n for n in made if n.lower().startswith(term.lower()))
    if not set(prefix) <= set(got):
        fail(f"textSearch {term!r} missed {sorted(set(prefix) - set(got))}")
    checked["search"] += 1

# Sort parameters are names from a fixed set, never SQL.
for prop, order in [("name; DROP TABLE device", "ASC"), ("name", "ASC; DELETE FROM device"),
                    ("(SELECT 1)", "DESC"), ("name' --", "ASC"), ("createdTime", "DESC,name")]:
    before = device_count()
    st, body = call("GET", f"/api/tenant/devices?pageSize=10&page=0&sortProperty={q(prop)}"
                           f"&sortOrder={q(order)}")
    if st != 200:
        tb_error(st, body, f"sort {prop!r} {order!r}")
    if device_count() != before:
        fail(f"sort {prop!r} {order!r}: the device count moved")
    checked["sort"] += 1

# Shared attributes: hostile keys and values round-trip exactly (keys without ',', which
# separates them in ?keys=).
dev = made["a'b"]
attrs = {k.replace(",", ""): k for k in HOSTILE}
attrs["long"] = LONG
attrs["quote'key"] = "v'); DROP TABLE attribute_kv; --"
st, body = call("POST", f"/api/plugins/telemetry/DEVICE/{dev}/SHARED_SCOPE", attrs)
if st != 200:
    fail(f"hostile attributes: HTTP {st} {body!r}")
for k, v in attrs.items():
    st, back = call("GET", f"/api/plugins/telemetry/DEVICE/{dev}/values/attributes/SHARED_SCOPE"
                           f"?keys={q(k)}")
    if st != 200:
        fail(f"attribute {k!r}: HTTP {st} {back!r}")
    vals = [a["value"] for a in back if a["key"] == k]
    if vals != [v]:
        fail(f"attribute {k!r} read back as {back!r}")
    checked["attr_keys"] += 1
    checked["attr_values"] += 1
st, back = call("GET", f"/api/plugins/telemetry/DEVICE/{dev}/values/attributes/SHARED_SCOPE")
if st != 200 or {a["key"]: a["value"] for a in back} != attrs:
    fail(f"all attributes read back differ: {st}")

for name, i in made.items():
    st, body = call("DELETE", "/api/device/" + i)
    if st != 200:
        fail(f"delete {name!r}: HTTP {st}")
if device_count() != base_count:
    fail("device count after the deletes")
for r in refusals:
    print("hostile_strings: refused", r)
print("hostile_strings: checked", json.dumps(checked, sort_keys=True))
print("hostile_strings: PASS")
