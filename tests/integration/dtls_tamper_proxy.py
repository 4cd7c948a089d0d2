#!/usr/bin/env python3
"""dtls_tamper_proxy.py LISTEN_PORT SERVER_PORT LOG -- a UDP relay between one DTLS client and
the server on 127.0.0.1 that, for the client's first datagram carrying an application-data
record (content type 23, epoch >= 1), also sends the server an exact replay of it and a copy
with one ciphertext bit flipped. Everything else is relayed unchanged. Stops after 60 s or
when the client has been silent for 10 s. Writes what it did to LOG."""
import select, socket, sys, time

listen_port, server_port, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind(("127.0.0.1", listen_port))
back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
back.connect(("127.0.0.1", server_port))
client = None
tampered = False
start = last = time.monotonic()
log = open(log_path, "w", buffering=1)
log.write("listening\n")  # the test waits for this line: both sockets are ready


def app_data(d):
    """True if the datagram holds an encrypted application-data record."""
    off = 0
    while off + 13 <= len(d):
        ctype, epoch, length = d[off], int.from_bytes(d[off + 3:off + 5], "big"), \
            int.from_bytes(d[off + 11:off + 13], "big")
        if ctype == 23 and epoch >= 1:
            return True
        off += 13 + length
    return False


while time.monotonic() - start < 60 and time.monotonic() - last < 10:
    ready, _, _ = select.select([front, back], [], [], 0.5)
    for s in ready:
        if s is front:
            d, client = front.recvfrom(4096)
            last = time.monotonic()
            back.send(d)
            if not tampered and app_data(d):
                tampered = True
                back.send(d)                       # replay: same epoch and sequence number
                flipped = bytearray(d)
                # A fresh sequence number (so the replay window does not catch it first) and
                # one flipped bit in the last byte of the AEAD tag.
                seq = int.from_bytes(flipped[5:11], "big") + 1000
                flipped[5:11] = seq.to_bytes(6, "big")
                flipped[-1] ^= 0x01
                back.send(bytes(flipped))
                log.write("tampered: sent replay and bit-flipped copy of %d bytes\n" % len(d))
        else:
            d = back.recv(4096)
            if client:
                front.sendto(d, client)
log.write("done tampered=%s\n" % tampered)
