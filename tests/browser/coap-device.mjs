// coap-device.mjs — a minimal plain-CoAP device for the browser tests: observes
// /api/v1/<token>/rpc and answers every server-side RPC by POSTing {"echo": params} (or the
// reply chosen by the test) to /api/v1/<token>/rpc/<id>. Only what the test needs of RFC 7252:
// CON/NON requests, ACK of CON notifications, Uri-Path, Observe, Content-Format JSON.

import dgram from 'node:dgram';
import crypto from 'node:crypto';

function encodeOptions(opts) {
  const out = [];
  let prev = 0;
  for (const [num, val] of opts.sort((a, b) => a[0] - b[0])) {
    const ext = (n) => (n < 13 ? [n, []] : n < 269 ? [13, [n - 13]] : [14, [(n - 269) >> 8, (n - 269) & 255]]);
    const [d, dx] = ext(num - prev);
    const [l, lx] = ext(val.length);
    out.push((d << 4) | l, ...dx, ...lx, ...val);
    prev = num;
  }
  return out;
}

function encode(type, code, mid, token, path, { observe, payload } = {}) {
  const opts = path.split('/').filter(Boolean).map((s) => [11, [...Buffer.from(s)]]);
  if (observe !== undefined) opts.push([6, observe === 0 ? [] : [observe]]);
  if (payload !== undefined) opts.push([12, [50]]); // application/json
  const head = [0x40 | (type << 4) | token.length, code, mid >> 8, mid & 255, ...token];
  const body = payload !== undefined ? [0xff, ...Buffer.from(payload)] : [];
  return Buffer.from([...head, ...encodeOptions(opts), ...body]);
}

function decode(buf) {
  const type = (buf[0] >> 4) & 3, tkl = buf[0] & 15, code = buf[1], mid = (buf[2] << 8) | buf[3];
  const token = buf.subarray(4, 4 + tkl);
  let i = 4 + tkl;
  while (i < buf.length && buf[i] !== 0xff) {
    let d = buf[i] >> 4, l = buf[i] & 15; i++;
    if (d === 13) i++; else if (d === 14) i += 2;
    if (l === 13) l = buf[i++] + 13; else if (l === 14) { l = ((buf[i] << 8) | buf[i + 1]) + 269; i += 2; }
    i += l;
  }
  const payload = i < buf.length ? buf.subarray(i + 1).toString() : '';
  return { type, code, mid, token, payload };
}

// Starts the responder; returns {stop(), calls[]}.
export function rpcResponder({ port, token, reply = (req) => ({ echo: req.params }) }) {
  const sock = dgram.createSocket('udp4');
  const obsToken = crypto.randomBytes(4);
  let mid = crypto.randomInt(1, 60000);
  const calls = [];
  const send = (b) => sock.send(b, port, '127.0.0.1');
  const subscribe = () => send(encode(0, 1, mid++ & 0xffff, [...obsToken], `/api/v1/${token}/rpc`, { observe: 0 }));
  sock.on('message', (buf) => {
    const m = decode(buf);
    if (m.type === 0) send(encode(2, 0, m.mid, [], '')); // ACK a CON notification (empty ACK)
    if (!m.token.equals(obsToken) || !m.payload) return;
    let req;
    try { req = JSON.parse(m.payload); } catch { return; }
    if (req.id === undefined || !req.method) return;
    calls.push(req);
    send(encode(0, 2, mid++ & 0xffff, [...crypto.randomBytes(4)], `/api/v1/${token}/rpc/${req.id}`, { payload: JSON.stringify(reply(req)) }));
  });
  sock.bind(0, '127.0.0.1', subscribe);
  const timer = setInterval(subscribe, 20000); // refresh the observation well before it lapses
  return { calls, stop: () => { clearInterval(timer); try { send(encode(0, 1, mid++ & 0xffff, [...obsToken], `/api/v1/${token}/rpc`, { observe: 1 })); } catch { /* closing */ } setTimeout(() => sock.close(), 50); } };
}
