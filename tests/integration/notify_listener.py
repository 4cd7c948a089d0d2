"""notify_listener.py — a stand-in for systemd's notification socket, for test_graceful_stop.sh.

usage: notify_listener.py ADDRESS OUT PORTS_FILE SECONDS

Binds an AF_UNIX datagram socket at ADDRESS (a path, or an abstract name written '@name' as
in $NOTIFY_SOCKET) and appends one JSON object per datagram received to OUT, flushed at once:
{"wall_ns": time.time_ns(), "mono_us": CLOCK_MONOTONIC in µs, "msg": the text}. When a message
holds READY=1 it checks at once, before reading the next datagram, that the daemon answers:
a CoAP CON GET to the port in PORTS_FILE ("COAP_PORT HTTP_PORT") and GET /readyz on the HTTP
port, and adds {"probe": {"coap": code or null, "readyz": HTTP status or null}} to that line.
Ends after SECONDS.
"""
import json
import os
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402

address, out_path, ports_path, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])


def probe():
    coap_port, http_port = (int(x) for x in open(ports_path).read().split())
    res = {"coap": None, "readyz": None}
    s = c.udp_socket(1.0)
    try:
        # An unknown token: any answer (4.01, 4.04) proves the listener is bound and served.
        msg = c.encode(c.CON, c.GET, 4242, b"\x42", c.path_options("/api/v1/nobody/attributes"))
        s.sendto(msg, ("127.0.0.1", coap_port))
        m = c.decode(s.recv(2048))
        res["coap"] = m["code"] if m else "undecodable"
    except OSError:
        pass
    finally:
        s.close()
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % http_port, timeout=2) as r:
            res["readyz"] = r.status
    except urllib.error.HTTPError as e:
        res["readyz"] = e.code
    except OSError:
        pass
    return res


sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("\0" + address[1:] if address.startswith("@") else address)
sock.settimeout(0.2)
end = time.monotonic() + seconds
with open(out_path, "a", buffering=1) as out:
    while time.monotonic() < end:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        rec = {"wall_ns": time.time_ns(), "mono_us": time.monotonic_ns() // 1000,
               "msg": data.decode("utf-8", "replace")}
        if "READY=1" in rec["msg"].split("\n"):
            rec["probe"] = probe()
        out.write(json.dumps(rec) + "\n")
