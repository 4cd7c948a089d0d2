"""coap_raw.py — hand-built CoAP (RFC 7252) datagrams for the integration tests.

libcoap's client cannot replay a datagram byte for byte or send garbage, so the dedup, fuzz and
durability tests build messages here. Only what the tests need: encode a request, decode the
header/code/token/payload of a reply. All sockets talk to 127.0.0.1 only.
"""
import socket
import struct

CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST, PUT = 1, 2, 3
URI_PATH, CONTENT_FORMAT, URI_QUERY, OBSERVE = 11, 12, 15, 6
MAX_AGE, BLOCK1, SIZE1 = 14, 27, 60


def uint_opt(v):
    """RFC 7252 §3.2 uint: the shortest big-endian form (0 is empty)."""
    out = b""
    while v:
        out = bytes([v & 0xFF]) + out
        v >>= 8
    return out


def block_opt(num, more, szx):
    """RFC 7959 §2.2 Block1/Block2 value."""
    return uint_opt((num << 4) | (8 if more else 0) | szx)


def opt_uint(resp, num):
    """The first option num of a decoded response as an integer, or None."""
    for n, v in resp.get("options", ()):
        if n == num:
            return int.from_bytes(v, "big") if v else 0
    return None


def _opt_nibble(v):
    """RFC 7252 §3.1: values 13.. use one extension byte, 269.. two."""
    if v < 13:
        return v, b""
    if v < 269:
        return 13, bytes([v - 13])
    return 14, struct.pack("!H", v - 269)


def encode(mtype, code, mid, token=b"", options=(), payload=b""):
    """options: iterable of (number, bytes); sorted here so deltas are non-negative."""
    out = bytearray([0x40 | (mtype << 4) | len(token), code, mid >> 8, mid & 0xFF])
    out += token
    prev = 0
    for num, val in sorted(options, key=lambda o: o[0]):
        d, dext = _opt_nibble(num - prev)
        l, lext = _opt_nibble(len(val))
        out.append((d << 4) | l)
        out += dext + lext + val
        prev = num
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def path_options(path):
    """'/api/v1/T/telemetry?x=1' -> Uri-Path and Uri-Query options."""
    path, _, query = path.partition("?")
    opts = [(URI_PATH, seg.encode()) for seg in path.strip("/").split("/") if seg]
    if query:
        opts += [(URI_QUERY, q.encode()) for q in query.split("&")]
    return opts


def decode(data):
    """Returns dict(type, code 'c.dd', mid, token, options [(num, bytes)], payload) or None if
    not even a header."""
    if len(data) < 4 or data[0] >> 6 != 1:
        return None
    tkl = data[0] & 0x0F
    mtype = (data[0] >> 4) & 3
    code = "%d.%02d" % (data[1] >> 5, data[1] & 0x1F)
    mid = (data[2] << 8) | data[3]
    token = data[4:4 + tkl]
    # Walk the options to the payload marker: an option value may hold 0xFF itself (an
    # Observe sequence number does, once every 256 notifications).
    i = 4 + tkl
    options = []
    num = 0
    try:
        while i < len(data) and data[i] != 0xFF:
            delta, length = data[i] >> 4, data[i] & 0x0F
            i += 1
            for is_length, nib in ((False, delta), (True, length)):
                if nib == 13:
                    v, i = data[i] + 13, i + 1
                elif nib == 14:
                    v, i = ((data[i] << 8) | data[i + 1]) + 269, i + 2
                else:
                    v = nib
                if is_length:
                    length = v
                else:
                    delta = v
            num += delta
            options.append((num, bytes(data[i:i + length])))
            i += length
    except IndexError:
        i = len(data)  # options run past the end: no payload
    payload = data[i + 1:] if i < len(data) else b""
    return {"type": mtype, "code": code, "mid": mid, "token": token, "options": options,
            "payload": payload}


def udp_socket(timeout=2.0, addr="127.0.0.1"):
    """A socket on addr (another loopback address, 127.0.0.2.., stands for another host)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.bind((addr, 0))
    return s


def exchange(sock, port, msg, wait=5.0):
    """Sends a CON request and returns the decoded response (piggy-backed or separate).
    ACKs a separate CON response. None on timeout."""
    import time
    req = decode(msg)
    sock.sendto(msg, ("127.0.0.1", port))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            return None
        r = decode(data)
        if r is None:
            continue
        if r["type"] == ACK and r["mid"] == req["mid"] and r["code"] != "0.00":
            return r
        if r["type"] in (CON, NON) and r["token"] == req["token"] and r["code"] != "0.00":
            if r["type"] == CON:
                sock.sendto(encode(ACK, 0, r["mid"]), ("127.0.0.1", port))
            return r
    return None


ECHO = 252


def exchange_echo(sock, port, msg, wait=5.0):
    """exchange() as an RFC 9175 client does it: when the answer carries an Echo option (the
    server's amplification guard shortened it because our address is not verified yet), the
    request goes again, under the next MID, with that Echo value; the answer to that one is
    returned. The socket's address is then verified for a while and answers come whole."""
    r = exchange(sock, port, msg, wait)
    if r is None:
        return r
    echo = [v for n, v in r["options"] if n == ECHO]
    if not echo:
        return r
    q = decode(msg)
    again = encode(q["type"], msg[1], (q["mid"] + 1) & 0xFFFF, q["token"],
                   [o for o in q["options"] if o[0] != ECHO] + [(ECHO, echo[0])], q["payload"])
    return exchange(sock, port, again, wait)
