#!/usr/bin/env python3
"""dtls_state_client.py — scripted DTLS 1.2 state-machine negatives (reliability D4).

A small DTLS 1.2 client built record by record over raw UDP (ECDHE with P-256,
AES-128-GCM, an ECDSA client certificate; the `cryptography` package does the arithmetic),
so that a sequence can send what no real client would: ChangeCipherSpec or Finished before
the key exchange, application data in epoch 0, Finished without CertificateVerify, an empty
Certificate, a renegotiating ClientHello on an established session, a ClientHello with an
invalid version, records in wrong epochs, duplicated / changed / reordered flights, a
ClientHello retransmitted mid-handshake, plaintext alerts on a session and a client restart
on the same port, a fragment announcing an oversized handshake message; and (reliability
D10) a session ended by the client's close_notify or a fatal alert.

Each sequence runs on a fresh UDP socket (its own source port), watches what the server
answers (alerts, flights, CoAP responses) and reads /metrics before and after it. It prints
one line per sequence:
  seq NAME: PASS|FAIL <what happened>
and two last lines, `stored KEY...` naming the telemetry keys that must be stored and
`sent KEY...` every key it posted (the others must not be stored); the caller checks
storage and the server's counters once more.

usage: dtls_state_client.py COAPS_PORT METRICS_URL CERT KEY OTHER_CERT OTHER_KEY [SEQ...]
CERT/KEY belong to a registered device; OTHER_* to an unregistered certificate.
"""
import hashlib
import hmac
import os
import select
import socket
import struct
import sys
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SENT = []  # every telemetry key posted, stored or not
CT_CCS, CT_ALERT, CT_HS, CT_APP = 20, 21, 22, 23
HS_CH, HS_SH, HS_HVR, HS_CERT, HS_SKE, HS_CR, HS_SHD, HS_CV, HS_CKE, HS_FIN = \
    1, 2, 3, 11, 12, 13, 14, 15, 16, 20
DTLS12 = 0xFEFD
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40:
          "handshake_failure", 42: "bad_certificate", 47: "illegal_parameter", 50: "decode_error",
          51: "decrypt_error", 70: "protocol_version", 80: "internal_error",
          100: "no_renegotiation", 110: "unsupported_extension"}


def prf(secret, label, seed, n):
    """TLS 1.2 PRF with SHA-256 (RFC 5246 §5)."""
    seed = label + seed
    a, out = seed, b""
    while len(out) < n:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + seed, hashlib.sha256).digest()
    return out[:n]


def ext(t, body):
    return struct.pack("!HH", t, len(body)) + body


EXTS = (ext(0x000A, struct.pack("!HH", 2, 0x0017))                      # supported_groups
        + ext(0x000B, b"\x01\x00")                                      # ec_point_formats
        + ext(0x000D, struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401))  # signature_algorithms
        + ext(0xFF01, b"\x00"))                                         # renegotiation_info
SUITES = [0xC02B, 0xC02F]  # ECDHE-ECDSA/RSA-AES128-GCM-SHA256: the same key schedule


def coap_post(key, mid):
    """A CON POST /api/v1/telemetry {"KEY":1} (the certificate names the device)."""
    opts = b"\xb3api" + b"\x02v1" + b"\x09telemetry" + b"\x11\x32"  # Uri-Path x3, CF json
    return struct.pack("!BBH", 0x41, 0x02, mid) + b"\x7a" + opts + b"\xff" + \
        ('{"%s":1}' % key).encode()


class Conn:
    """One client (one source port) and its handshake state."""

    def __init__(self, port, cert=None, key=None):
        self.addr = ("127.0.0.1", port)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.cert, self.key = cert, key
        self.seq = {0: 0, 1: 0}
        self.msg_seq = 0
        self.transcript = b""
        self.random = os.urandom(32)
        self.keys = None          # (client key, server key, client salt, server salt)
        self.write_epoch = 0
        self.alerts = []          # (epoch, level, description) received
        self.got = []             # every record received: (type, epoch, plaintext or None)
        self.pending = {}         # server handshake fragments: msg_seq -> (type, len, {off: data})
        self.next_in = 0          # next server msg_seq to deliver
        self.server_msgs = []     # (type, body) in order
        self.server_finished = None
        self.coap = []            # CoAP responses (decrypted application data)

    # ---- records ------------------------------------------------------------------------------
    def record(self, ctype, payload, epoch=None, seq=None, version=DTLS12, encrypt=None):
        epoch = self.write_epoch if epoch is None else epoch
        if seq is None:
            seq = self.seq.setdefault(epoch, 0)
            self.seq[epoch] = seq + 1
        if encrypt is None:
            encrypt = epoch >= 1 and self.keys is not None
        if encrypt:
            explicit = struct.pack("!H", epoch) + seq.to_bytes(6, "big")
            aad = explicit + struct.pack("!BHH", ctype, version, len(payload))
            payload = explicit + AESGCM(self.keys[0]).encrypt(self.keys[2] + explicit, payload,
                                                               aad)
        return struct.pack("!BHH", ctype, version, epoch) + seq.to_bytes(6, "big") + \
            struct.pack("!H", len(payload)) + payload

    def send(self, *records):
        self.s.sendto(b"".join(records), self.addr)

    def handshake(self, mtype, body, msg_seq=None, transcript=True):
        """A whole handshake message (one fragment); added to the transcript unless told."""
        if msg_seq is None:
            msg_seq = self.msg_seq
            self.msg_seq += 1
        n = len(body).to_bytes(3, "big")
        m = bytes([mtype]) + n + struct.pack("!H", msg_seq) + b"\x00\x00\x00" + n + body
        if transcript:
            self.transcript += m
        return m

    def recv(self, timeout, until=None):
        """Reads datagrams for up to `timeout` s (or until `until()` holds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until and until():
                return True
            r, _, _ = select.select([self.s], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            d = self.s.recv(65536)
            off = 0
            while off + 13 <= len(d):
                ctype, _, epoch = struct.unpack("!BHH", d[off:off + 5])
                seq = int.from_bytes(d[off + 5:off + 11], "big")
                n = struct.unpack("!H", d[off + 11:off + 13])[0]
                self.on_record(ctype, epoch, seq, d[off + 13:off + 13 + n])
                off += 13 + n
        return bool(until and until())

    def on_record(self, ctype, epoch, seq, payload):
        plain = payload
        if epoch >= 1:
            if not self.keys:
                self.got.append((ctype, epoch, None))
                return
            explicit = payload[:8]
            aad = struct.pack("!H", epoch) + seq.to_bytes(6, "big") + \
                struct.pack("!BHH", ctype, DTLS12, len(payload) - 8 - 16)
            try:
                plain = AESGCM(self.keys[1]).decrypt(self.keys[3] + explicit, payload[8:], aad)
            except Exception:
                self.got.append((ctype, epoch, None))
                return
        self.got.append((ctype, epoch, plain))
        if ctype == CT_ALERT and len(plain) >= 2:
            self.alerts.append((epoch, plain[0], plain[1]))
        elif ctype == CT_HS:
            self.on_handshake(epoch, plain)
        elif ctype == CT_APP and epoch >= 1:
            self.coap.append(plain)

    def on_handshake(self, epoch, d):
        off = 0
        while off + 12 <= len(d):
            mtype = d[off]
            total = int.from_bytes(d[off + 1:off + 4], "big")
            mseq = struct.unpack("!H", d[off + 4:off + 6])[0]
            foff = int.from_bytes(d[off + 6:off + 9], "big")
            flen = int.from_bytes(d[off + 9:off + 12], "big")
            frag = d[off + 12:off + 12 + flen]
            off += 12 + flen
            if mtype == HS_HVR:
                self.server_msgs.append((mtype, frag))
                continue
            if epoch >= 1 and mtype == HS_FIN:
                self.server_finished = frag
                continue
            if mseq < self.next_in:
                continue  # a retransmitted flight
            e = self.pending.setdefault(mseq, (mtype, total, {}))
            e[2][foff] = frag
        while self.next_in in self.pending:
            mtype, total, frags = self.pending[self.next_in]
            body, pos = b"", 0
            while pos < total and pos in frags:
                body += frags[pos]
                pos += len(frags[pos])
            if pos < total:
                break
            n = total.to_bytes(3, "big")
            self.transcript += bytes([mtype]) + n + struct.pack("!H", self.next_in) + \
                b"\x00\x00\x00" + n + body
            self.server_msgs.append((mtype, body))
            del self.pending[self.next_in]
            self.next_in += 1

    def fatal(self):
        """A fatal alert came: no point waiting for more."""
        return any(a[1] == 2 for a in self.alerts)

    def has(self, mtype):
        return any(m[0] == mtype for m in self.server_msgs)

    def msg(self, mtype):
        return next(b for t, b in self.server_msgs if t == mtype)

    def alert_names(self):
        return ",".join(ALERTS.get(a[2], str(a[2])) for a in self.alerts) or "none"

    # ---- handshake steps ----------------------------------------------------------------------
    def client_hello(self, cookie, version=DTLS12, random=None):
        body = (struct.pack("!H", version) + (random or self.random) + b"\x00"
                + bytes([len(cookie)]) + cookie
                + struct.pack("!H", 2 * len(SUITES))
                + b"".join(struct.pack("!H", s) for s in SUITES)
                + b"\x01\x00" + struct.pack("!H", len(EXTS)) + EXTS)
        return body

    def hello(self, version=DTLS12):
        """ClientHello, HelloVerifyRequest, ClientHello with the cookie; then the server's
        flight up to ServerHelloDone. True if that flight came."""
        self.send(self.record(CT_HS, self.handshake(HS_CH, self.client_hello(b""),
                                                    transcript=False)))
        if not self.recv(3, lambda: self.has(HS_HVR)):
            return False
        hvr = self.msg(HS_HVR)
        self.cookie = hvr[3:3 + hvr[2]]
        self.ch1 = self.client_hello(self.cookie, version)
        self.next_in = 1  # the server's next message has the ClientHello's sequence number
        self.send(self.record(CT_HS, self.handshake(HS_CH, self.ch1)))
        self.recv(3, lambda: self.has(HS_SHD) or self.fatal())
        return self.has(HS_SHD)

    def key_exchange(self):
        """ClientKeyExchange body; derives the master secret and the keys."""
        sh = self.msg(HS_SH)
        self.server_random = sh[2:34]
        ske = self.msg(HS_SKE)
        assert ske[0] == 3 and struct.unpack("!H", ske[1:3])[0] == 0x17, "not P-256 ECDHE"
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ske[4:4 + ske[3]])
        mine = ec.generate_private_key(ec.SECP256R1())
        pms = mine.exchange(ec.ECDH(), peer)
        self.master = prf(pms, b"master secret", self.random + self.server_random, 48)
        kb = prf(self.master, b"key expansion", self.server_random + self.random, 40)
        self.keys = (kb[0:16], kb[16:32], kb[32:36], kb[36:40])
        pub = mine.public_key().public_bytes(serialization.Encoding.X962,
                                             serialization.PublicFormat.UncompressedPoint)
        return bytes([len(pub)]) + pub

    def certificate_body(self, certs):
        chain = b"".join(len(c).to_bytes(3, "big") + c for c in certs)
        return len(chain).to_bytes(3, "big") + chain

    def cert_verify_body(self, key=None):
        sig = (key or self.key).sign(self.transcript, ec.ECDSA(hashes.SHA256()))
        return struct.pack("!HH", 0x0403, len(sig)) + sig

    def finished_body(self):
        return prf(self.master, b"client finished", hashlib.sha256(self.transcript).digest(), 12)

    def second_flight(self, cert=True, cert_verify=True, finished=True):
        """Certificate, ClientKeyExchange, CertificateVerify, CCS, Finished (each optional)."""
        recs = []
        if cert is not None:
            certs = [self.cert] if cert is True else cert
            recs.append(self.record(CT_HS, self.handshake(HS_CERT, self.certificate_body(certs))))
        recs.append(self.record(CT_HS, self.handshake(HS_CKE, self.key_exchange())))
        if cert_verify:
            recs.append(self.record(CT_HS, self.handshake(HS_CV, self.cert_verify_body())))
        recs.append(self.record(CT_CCS, b"\x01"))
        self.write_epoch = 1
        if finished:
            recs.append(self.record(CT_HS, self.handshake(HS_FIN, self.finished_body())))
        self.send(*recs)

    def server_finished_ok(self, timeout=3):
        self.recv(timeout, lambda: self.server_finished is not None or self.fatal())
        if self.server_finished is None:
            return False
        want = prf(self.master, b"server finished", hashlib.sha256(self.transcript).digest(), 12)
        return self.server_finished == want

    def post(self, key, mid=None, epoch=None, encrypt=None, timeout=3):
        """A CoAP POST in an application-data record; the response code ("2.01") or None."""
        mid = mid if mid is not None else int.from_bytes(os.urandom(2), "big")
        SENT.append(key)
        n = len(self.coap)
        self.send(self.record(CT_APP, coap_post(key, mid), epoch=epoch, encrypt=encrypt))
        self.recv(timeout, lambda: len(self.coap) > n)
        for r in self.coap[n:]:
            if len(r) >= 4 and struct.unpack("!H", r[2:4])[0] == mid:
                return "%d.%02d" % (r[1] >> 5, r[1] & 31)
        return None

    def close(self):
        if self.keys and self.write_epoch == 1:
            self.send(self.record(CT_ALERT, b"\x01\x00"))  # close_notify
            self.recv(0.5)
        self.s.close()


# ---- the sequences ---------------------------------------------------------------------------
# Each returns (ok, detail, keys that must be stored). `ctx` carries the configuration.
class Ctx:
    pass


def load_cert(path):
    return x509.load_pem_x509_certificate(open(path, "rb").read()).public_bytes(
        serialization.Encoding.DER)


def load_key(path):
    return serialization.load_pem_private_key(open(path, "rb").read(), None)


def full(ctx, c):
    """A complete, correct handshake on c: True if the server's Finished verified."""
    if not c.hello():
        return False
    c.second_flight()
    return c.server_finished_ok()


def seq_ccs_before_kex(ctx):
    # (a) on a fresh address before any ClientHello; (b) right after the server's first flight.
    a = Conn(ctx.port)
    a.send(a.record(CT_CCS, b"\x01"), a.record(CT_HS, a.handshake(HS_FIN, os.urandom(12))))
    a.recv(1.0)
    b = Conn(ctx.port)
    if not b.hello():
        return False, "no server flight", []
    b.send(b.record(CT_CCS, b"\x01"))
    b.write_epoch = 1
    b.send(b.record(CT_HS, b.handshake(HS_FIN, os.urandom(12)), encrypt=False))
    b.recv(2.0)
    ok = not a.got and b.server_finished is None and not any(r[0] == CT_CCS for r in b.got)
    return ok, ("before hello: %d replies; after ServerHelloDone: alerts %s, "
                "server CCS/Finished %s") % (
        len(a.got), b.alert_names(), "yes" if b.server_finished else "no"), []


def seq_finished_before_kex(ctx):
    c = Conn(ctx.port)
    if not c.hello():
        return False, "no server flight", []
    c.send(c.record(CT_HS, c.handshake(HS_FIN, os.urandom(12))))  # epoch 0, no key exchange
    c.recv(2.0)
    ok = c.server_finished is None and not any(r[0] == CT_CCS for r in c.got)
    return ok, "plaintext Finished after ServerHelloDone: alerts %s, handshake %s" % (
        c.alert_names(), "completed" if c.server_finished else "not completed"), []


def seq_appdata_epoch0(ctx):
    # (a) mid-handshake; (b) on an established session: a plaintext CoAP POST in epoch 0.
    a = Conn(ctx.port)
    if not a.hello():
        return False, "no server flight", []
    ra = a.post("d4_epoch0_hs", epoch=0, encrypt=False, timeout=1.5)
    b = Conn(ctx.port, ctx.cert, ctx.key)
    if not full(ctx, b):
        return False, "the reference handshake failed (alerts %s)" % b.alert_names(), []
    rb = b.post("d4_epoch0_sess", epoch=0, encrypt=False, timeout=1.5)
    rc = b.post("d4_epoch0_after")
    b.close()
    ok = ra is None and rb is None and rc == "2.01" and not a.coap
    return ok, ("epoch-0 POST mid-handshake -> %s, on a session -> %s; "
                "then an epoch-1 POST -> %s") % (
        ra or "no reply", rb or "no reply", rc), ["d4_epoch0_after"]


def seq_no_cert_verify(ctx):
    c = Conn(ctx.port, ctx.cert, ctx.key)
    if not c.hello():
        return False, "no server flight", []
    c.second_flight(cert_verify=False)
    fin = c.server_finished_ok(2.0)
    r = c.post("d4_no_cv", timeout=1.0) if fin else None
    ok = not fin and r is None
    return ok, "Certificate without CertificateVerify: alerts %s, server Finished %s, POST %s" % (
        c.alert_names(), "yes" if fin else "no", r or "no reply"), []


def seq_empty_certificate(ctx):
    # An empty Certificate is allowed (SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT: devices
    # that authenticate by access token over DTLS send none, as with ThingsBoard), but such a
    # session is no device: a certificate-authenticated POST must not be stored.
    a = Conn(ctx.port)
    if not a.hello():
        return False, "no server flight", []
    a.second_flight(cert=[], cert_verify=False)
    fin = a.server_finished_ok()
    ra = a.post("d4_empty_cert") if fin else None
    a.close()
    # An empty Certificate followed by a CertificateVerify (signed with some key) must fail.
    b = Conn(ctx.port, ctx.cert, ctx.key)
    if not b.hello():
        return False, "no server flight", []
    b.second_flight(cert=[], cert_verify=True)
    finb = b.server_finished_ok(2.0)
    ok = (ra is None or not ra.startswith("2.")) and not finb
    return ok, ("empty Certificate: handshake %s, certificate POST -> %s; empty Certificate + "
                "CertificateVerify: alerts %s, handshake %s") % (
        "completed (anonymous)" if fin else "failed", ra or "no reply", b.alert_names(),
        "completed" if finb else "failed"), []


def seq_renegotiation(ctx):
    c = Conn(ctx.port, ctx.cert, ctx.key)
    if not full(ctx, c):
        return False, "the reference handshake failed (alerts %s)" % c.alert_names(), []
    r1 = c.post("d4_reneg_before")
    ok0 = ctx.metric('coaphub_dtls_handshakes_total{result="ok"}')
    # A renegotiating ClientHello, encrypted in epoch 1 (RFC 5746), then a plaintext one in
    # epoch 0 carrying the old cookie.
    n = len(c.server_msgs)
    c.send(c.record(CT_HS, c.handshake(HS_CH, c.client_hello(c.cookie, random=os.urandom(32)),
                                       transcript=False)))
    c.recv(2.0)
    c.send(c.record(CT_HS, c.handshake(HS_CH, c.client_hello(c.cookie, random=os.urandom(32)),
                                       transcript=False), epoch=0, encrypt=False))
    c.recv(2.0)
    new_sh = [m for m in c.server_msgs[n:] if m[0] == HS_SH]
    alerts = c.alert_names()
    r2 = c.post("d4_reneg_after")
    c.close()
    ok1 = ctx.metric('coaphub_dtls_handshakes_total{result="ok"}')
    ok = r1 == "2.01" and r2 == "2.01" and not new_sh and ok1 == ok0
    return ok, ("renegotiating ClientHello (epoch 1, then epoch 0 with the old cookie): "
                "ServerHello %d, alerts %s, handshakes ok +%d; POST before %s, after %s") % (
        len(new_sh), alerts, ok1 - ok0, r1, r2), ["d4_reneg_before", "d4_reneg_after"]


def seq_bad_version(ctx):
    # TinyDTLS #74: a ClientHello whose version is invalid must not skip the cookie check.
    out, ok = [], True
    for v in (0x0303, 0xFEFF, 0x0000, 0xFEFC):
        c = Conn(ctx.port)
        c.send(c.record(CT_HS, c.handshake(HS_CH, c.client_hello(b"", version=v),
                                           transcript=False)))
        c.recv(1.0)
        sh = c.has(HS_SH)
        ok &= not sh
        out.append("%04x: %s" % (v, "ServerHello!" if sh else "HelloVerifyRequest" if c.has(HS_HVR)
                                 else "alert " + c.alert_names() if c.alerts else "silence"))
        c.s.close()
    # A valid cookie, then the hello repeated with DTLS 1.0 in it (version downgrade).
    c = Conn(ctx.port)
    ok_hello = c.hello(version=0xFEFF)
    sh = c.has(HS_SH)
    ok &= not sh and not ok_hello
    out.append("feff with a valid cookie: %s" % (
        "ServerHello!" if sh else "alert " + c.alert_names() if c.alerts else "silence"))
    # Someone else's cookie (another port's) must not be accepted.
    d = Conn(ctx.port)
    e = Conn(ctx.port)
    d.send(d.record(CT_HS, d.handshake(HS_CH, d.client_hello(b""), transcript=False)))
    d.recv(2, lambda: d.has(HS_HVR))
    hvr = d.msg(HS_HVR)
    e.random = d.random
    e.send(e.record(CT_HS, e.handshake(HS_CH, e.client_hello(hvr[3:3 + hvr[2]]), transcript=False)))
    e.recv(1.0)
    ok &= not e.has(HS_SH)
    out.append("another port's cookie: %s" % ("ServerHello!" if e.has(HS_SH) else
                                              "HelloVerifyRequest" if e.has(HS_HVR) else "silence"))
    return ok, "; ".join(out), []


def seq_wrong_epoch(ctx):
    # TinyDTLS #13. Mid-handshake: the client's flight sent first in epoch 2 records (must be
    # dropped without harm), then correctly: the handshake must still complete.
    c = Conn(ctx.port, ctx.cert, ctx.key)
    if not c.hello():
        return False, "no server flight", []
    saved = (c.transcript, c.msg_seq)
    bogus = [c.record(CT_HS, c.handshake(HS_CERT, c.certificate_body([c.cert])), epoch=2,
                      encrypt=False),
             c.record(CT_HS, os.urandom(40), epoch=1, encrypt=False)]
    c.send(*bogus)
    c.recv(1.0)
    early = c.alert_names()
    c.transcript, c.msg_seq = saved  # (record sequence numbers go on: no replays)
    c.second_flight()
    fin = c.server_finished_ok()
    # On the session: application data in epochs 2 and 0xffff, a future sequence number in
    # epoch 1 is fine; the first two must be dropped and the session kept.
    r2 = c.post("d4_epoch2", epoch=2, timeout=1.0)
    rf = c.post("d4_epochffff", epoch=0xFFFF, timeout=1.0)
    ok_post = c.post("d4_epoch_after")
    c.close()
    ok = fin and r2 is None and rf is None and ok_post == "2.01" and early == "none"
    return ok, ("epoch-2/epoch-1 handshake records mid-handshake: alerts %s, handshake then %s; "
                "POST in epoch 2 -> %s, epoch 65535 -> %s, epoch 1 -> %s") % (
        early, "completed" if fin else "failed", r2 or "dropped", rf or "dropped", ok_post), \
        ["d4_epoch_after"]


def seq_reorder(ctx):
    out = []
    # (a) ClientKeyExchange before Certificate (sequence numbers in that order): must fail.
    a = Conn(ctx.port, ctx.cert, ctx.key)
    if not a.hello():
        return False, "no server flight", []
    cke = a.record(CT_HS, a.handshake(HS_CKE, a.key_exchange()))
    crt = a.record(CT_HS, a.handshake(HS_CERT, a.certificate_body([a.cert])))
    cv = a.record(CT_HS, a.handshake(HS_CV, a.cert_verify_body()))
    ccs = a.record(CT_CCS, b"\x01")
    a.write_epoch = 1
    a.send(cke, crt, cv, ccs, a.record(CT_HS, a.handshake(HS_FIN, a.finished_body())))
    fa = a.server_finished_ok(2.0)
    out.append("CKE before Certificate: alerts %s, %s" % (a.alert_names(),
                                                         "completed!" if fa else "failed"))
    # (b) the right messages, datagrams in reverse order (DTLS reorders by message_seq):
    # the handshake completes.
    b = Conn(ctx.port, ctx.cert, ctx.key)
    if not b.hello():
        return False, "no server flight", []
    crt = b.record(CT_HS, b.handshake(HS_CERT, b.certificate_body([b.cert])))
    cke = b.record(CT_HS, b.handshake(HS_CKE, b.key_exchange()))
    cv = b.record(CT_HS, b.handshake(HS_CV, b.cert_verify_body()))
    b.send(cv)
    b.send(cke)
    b.send(crt)
    b.send(b.record(CT_CCS, b"\x01"))
    b.write_epoch = 1
    b.send(b.record(CT_HS, b.handshake(HS_FIN, b.finished_body())))
    fb = b.server_finished_ok()
    rb = b.post("d4_reordered") if fb else None
    b.close()
    out.append("flight in reverse datagram order: %s, POST %s" % (
        "completed" if fb else "failed (alerts %s)" % b.alert_names(), rb or "none"))
    # (c) Certificate twice with the same message_seq, the copy changed to another
    # certificate: the first is kept (the copy is a retransmission to OpenSSL) or the
    # handshake fails; never a session as the other certificate with our signature.
    c = Conn(ctx.port, ctx.cert, ctx.key)
    if not c.hello():
        return False, "no server flight", []
    mseq = c.msg_seq
    crt = c.record(CT_HS, c.handshake(HS_CERT, c.certificate_body([c.cert])))
    other = c.record(CT_HS, c.handshake(HS_CERT, c.certificate_body([ctx.other_cert]),
                                        msg_seq=mseq, transcript=False))
    c.send(crt, other, crt)
    c.send(c.record(CT_HS, c.handshake(HS_CKE, c.key_exchange())),
           c.record(CT_HS, c.handshake(HS_CV, c.cert_verify_body())), c.record(CT_CCS, b"\x01"))
    c.write_epoch = 1
    c.send(c.record(CT_HS, c.handshake(HS_FIN, c.finished_body())))
    fc = c.server_finished_ok()
    rc = c.post("d4_dup_cert") if fc else None
    c.close()
    out.append("Certificate repeated and changed (same message_seq): %s, POST %s" % (
        "completed as the first" if fc else "failed (alerts %s)" % c.alert_names(),
        rc or "none"))
    ok = not fa and fb and rb == "2.01" and (not fc or rc == "2.01")
    return ok, "; ".join(out), ["d4_reordered"] + (["d4_dup_cert"] if rc == "2.01" else [])


def seq_hello_retransmit(ctx):
    c = Conn(ctx.port, ctx.cert, ctx.key)
    if not c.hello():
        return False, "no server flight", []
    first_random = c.msg(HS_SH)[2:34]
    hip0 = ctx.metric("coaphub_dtls_handshakes_in_progress")
    # The same ClientHello again (message_seq 1): a retransmission, answered at most by a
    # retransmitted flight; then one with a fresh random (a restart attempt on the same port).
    c.send(c.record(CT_HS, c.handshake(HS_CH, c.ch1, msg_seq=1, transcript=False)))
    n = len(c.got)
    c.recv(0.6)  # both waits together stay under the test's 3 s stall timeout
    again = [r for r in c.got[n:] if r[0] == CT_HS and r[2] and r[2][0] == HS_SH]
    same = all(r[2][12 + 2:12 + 34] == first_random for r in again)
    c.send(c.record(CT_HS, c.handshake(HS_CH, c.client_hello(c.cookie, random=os.urandom(32)),
                                       msg_seq=1, transcript=False)))
    n2 = len(c.got)
    c.recv(0.6)
    again2 = [r for r in c.got[n2:] if r[0] == CT_HS and r[2] and r[2][0] == HS_SH]
    same2 = all(r[2][12 + 2:12 + 34] == first_random for r in again2)
    hip1 = ctx.metric("coaphub_dtls_handshakes_in_progress")
    c.second_flight()
    fin = c.server_finished_ok()
    r = c.post("d4_retransmit") if fin else None
    c.close()
    ok = same and same2 and fin and r == "2.01" and hip1 == hip0
    return ok, ("ClientHello repeated: %d ServerHello(s) back, %s server random; "
                "with a new random: %d back, %s; in progress %d -> %d; "
                "original handshake %s, POST %s") % (
        len(again), "same" if same else "NEW", len(again2), "same" if same2 else "NEW",
        hip0, hip1, "completed" if fin else "failed", r), ["d4_retransmit"]


def seq_plaintext_alert_restart(ctx):
    # Alerts in epoch 0 on an established session are unauthenticated (anyone can send them
    # from the device's address): ignored, the session lives on. Then the client restarts on
    # the same port (RFC 6347 §4.2.8): a new cookie exchange and full handshake replace the
    # session, whose old keys then get nothing.
    c = Conn(ctx.port, ctx.cert, ctx.key)
    if not full(ctx, c):
        return False, "the reference handshake failed (alerts %s)" % c.alert_names(), []
    r1 = c.post("d4_plain_alert_before")
    s0 = ctx.metric("coaphub_dtls_sessions")
    c.send(c.record(CT_ALERT, b"\x02\x28", epoch=0, encrypt=False))  # fatal handshake_failure
    c.send(c.record(CT_ALERT, b"\x01\x00", epoch=0, encrypt=False))  # close_notify
    c.recv(0.5)
    s1 = ctx.metric("coaphub_dtls_sessions")
    r2 = c.post("d4_plain_alert_after")
    n = Conn(ctx.port, ctx.cert, ctx.key)
    n.s.close()
    n.s = c.s  # the same source port
    restarted = full(ctx, n)
    s2 = ctx.metric("coaphub_dtls_sessions")
    r3 = n.post("d4_restarted") if restarted else None
    r4 = c.post("d4_old_keys", timeout=1.0)
    n.close()
    ok = (r1 == "2.01" and s1 == s0 and r2 == "2.01" and restarted and s2 == s0
          and r3 == "2.01" and r4 is None)
    return ok, ("plaintext fatal alert + close_notify on a session: sessions %d -> %d, POST "
                "after %s; restart on the same port: handshake %s, sessions %d, POST %s, "
                "old keys -> %s") % (s0, s1, r2, "completed" if restarted else "failed", s2, r3,
                                     r4 or "no reply"), \
        ["d4_plain_alert_before", "d4_plain_alert_after", "d4_restarted"]


def seq_oversized_fragment(ctx):
    # A first fragment announcing a 100 KB Certificate (OpenSSL's default cap, and what it
    # would allocate at once, for up to 11 messages a handshake): over the server's
    # --dtls-max-client-chain-bytes, so the handshake fails at once instead of holding it.
    c = Conn(ctx.port, ctx.cert, ctx.key)
    if not c.hello():
        return False, "no server flight", []
    f0 = ctx.metric('coaphub_dtls_handshakes_total{result="failed"}')
    h0 = ctx.metric("coaphub_dtls_handshakes_in_progress")
    hs = bytes([HS_CERT]) + (102400).to_bytes(3, "big") + struct.pack("!H", c.msg_seq) + \
        b"\x00\x00\x00" + b"\x00\x00\x01" + b"\x00"
    c.send(c.record(CT_HS, hs))
    c.recv(1.0)
    f1 = ctx.metric('coaphub_dtls_handshakes_total{result="failed"}')
    h1 = ctx.metric("coaphub_dtls_handshakes_in_progress")
    ok = f1 == f0 + 1 and h1 == h0 - 1
    return ok, ("a 1-byte fragment of a Certificate announced as 102,400 bytes: alerts %s, "
                "handshakes failed +%d, in progress %d -> %d") % (
        c.alert_names(), f1 - f0, h0, h1), []


def seq_session_end(ctx):
    # Reliability D10: a session ends on the client's close_notify (answered with the
    # server's) and on a fatal alert (no answer); records after either get nothing back.
    out, ok = [], True
    for what, alert, key in (("close_notify", b"\x01\x00", "d4_end_close"),
                             ("fatal internal_error", b"\x02\x50", "d4_end_alert")):
        c = Conn(ctx.port, ctx.cert, ctx.key)
        if not full(ctx, c):
            return False, "the reference handshake failed (alerts %s)" % c.alert_names(), []
        r1 = c.post(key)
        s0 = ctx.metric("coaphub_dtls_sessions")
        c.send(c.record(CT_ALERT, alert))
        c.recv(1.0)
        s1 = ctx.metric("coaphub_dtls_sessions")
        r2 = c.post(key + "_after", timeout=1.0)
        c.s.close()
        ok &= r1 == "2.01" and s1 == s0 - 1 and r2 is None
        out.append("%s: sessions %d -> %d, server alerts %s, POST after -> %s" % (
            what, s0, s1, c.alert_names(), r2 or "no reply"))
    return ok, "; ".join(out), ["d4_end_close", "d4_end_alert"]


SEQS = [("ccs_before_kex", seq_ccs_before_kex), ("finished_before_kex", seq_finished_before_kex),
        ("appdata_epoch0", seq_appdata_epoch0), ("no_cert_verify", seq_no_cert_verify),
        ("empty_certificate", seq_empty_certificate), ("renegotiation", seq_renegotiation),
        ("bad_version", seq_bad_version), ("wrong_epoch", seq_wrong_epoch),
        ("reorder", seq_reorder), ("hello_retransmit", seq_hello_retransmit),
        ("plaintext_alert_restart", seq_plaintext_alert_restart),
        ("oversized_fragment", seq_oversized_fragment), ("session_end", seq_session_end)]


def main():
    ctx = Ctx()
    ctx.port = int(sys.argv[1])
    url = sys.argv[2]
    ctx.cert, ctx.key = load_cert(sys.argv[3]), load_key(sys.argv[4])
    ctx.other_cert = load_cert(sys.argv[5])
    want = sys.argv[7:]

    def metric(name):
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        for line in body.splitlines():
            if line.split(" ")[0] == name:
                return int(float(line.split(" ")[1]))
        return 0
    ctx.metric = metric
    failed, stored = 0, []
    for name, fn in SEQS:
        if want and name not in want:
            continue
        ok0 = metric('coaphub_dtls_handshakes_total{result="ok"}')
        try:
            ok, detail, keys = fn(ctx)
        except Exception as e:  # a protocol surprise is a failure, with its reason
            ok, detail, keys = False, "exception %r" % (e,), []
        d_ok = metric('coaphub_dtls_handshakes_total{result="ok"}') - ok0
        print("seq %s: %s %s; handshakes ok +%d" % (name, "PASS" if ok else "FAIL", detail, d_ok))
        sys.stdout.flush()
        failed += not ok
        stored += keys
    print("stored " + " ".join(stored))
    print("sent " + " ".join(sorted(set(SENT))))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
