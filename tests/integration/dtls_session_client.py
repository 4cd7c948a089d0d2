#!/usr/bin/env python3
"""dtls_session_client.py — one DTLS session that lives as long as this process: `openssl
s_client -dtls1_2 -psk` carries CoAP requests built by coap_raw.py, so a test can send a
request, restart the server, and send the next request on the same session (same keys, same
source port, no new handshake).

Usage: dtls_session_client.py PORT IDENTITY KEYHEX CIPHER CTRL OUT
Each line written to the fifo CTRL is a JSON telemetry payload: it is POSTed (CON) to
/api/v1/telemetry and the response code ('2.01', or 'none' after 10 s) is appended to OUT as
one line. The line "quit" (or EOF) ends s_client. Everything is bounded in time.
"""
import os
import random
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coap_raw as c  # noqa: E402


def main():
    port, ident, key, cipher, ctrl, out = sys.argv[1:7]
    sc = subprocess.Popen(
        ["openssl", "s_client", "-dtls1_2", "-quiet", "-nocommands", "-psk", key,
         "-psk_identity", ident, "-cipher", cipher, "-connect", "127.0.0.1:" + port],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    mid = random.randrange(1, 60000)
    with open(ctrl, "r") as cf:
        for line in cf:
            line = line.strip()
            if not line or line == "quit":
                break
            mid = (mid + 1) & 0xFFFF
            token = os.urandom(4)
            msg = c.encode(c.CON, c.POST << 0, mid, token,
                           c.path_options("/api/v1/telemetry") + [(c.CONTENT_FORMAT, b"\x32")],
                           line.encode())
            code = "none"
            deadline = time.time() + 10
            sent_at = 0.0
            while time.time() < deadline and code == "none":
                if time.time() - sent_at > 3:  # CON retransmission, bounded by the deadline
                    sc.stdin.write(msg)
                    sc.stdin.flush()
                    sent_at = time.time()
                r, _, _ = select.select([sc.stdout], [], [], 0.2)
                if not r:
                    continue
                data = os.read(sc.stdout.fileno(), 4096)
                if not data:
                    break
                d = c.decode(data)
                if not d or d["token"] != token:
                    continue
                if d["type"] == c.CON:  # a separate response: acknowledge it
                    sc.stdin.write(c.encode(c.ACK, 0, d["mid"]))
                    sc.stdin.flush()
                if d["code"] != "0.00":
                    code = d["code"]
            with open(out, "a") as f:
                f.write(code + "\n")
    try:
        sc.stdin.close()
    except OSError:
        pass
    try:
        sc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        sc.kill()
        sc.wait()


if __name__ == "__main__":
    main()
