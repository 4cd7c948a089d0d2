// serve.mjs — test-side HTTP server for the web UI, used until (and unless) the daemon serves
// web/ itself. Serves index.html at / and web/* at /static/* with the same security headers the
// daemon must send, and answers everything else either
//   - by proxying to the real daemon (UPSTREAM=http://127.0.0.1:PORT), or
//   - from an in-memory mock of the REST API (no UPSTREAM), enough to exercise every page.
// The mock also offers /mock/* hooks standing in for a CoAP device (post telemetry, answer RPC).
// Usage: node serve.mjs PORT  (prints "listening <port>" when ready). Loopback only.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');
// static/vendor/<name> is an npm package's file, as the build embeds it (web/package.json).
const VENDOR = JSON.parse(fs.readFileSync(path.join(WEB, 'package.json'), 'utf8')).coaphub.vendor;
const PORT = Number(process.argv[2] || 0);
const UPSTREAM = process.env.UPSTREAM || '';
export const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };

function serveStatic(req, res) {
  const u = new URL(req.url, 'http://x');
  let rel = u.pathname === '/' ? 'index.html' : u.pathname.startsWith('/static/') ? u.pathname.slice(8) : null;
  if (rel === null || rel.split('/').some((s) => !s || s.startsWith('.')) || rel.startsWith('node_modules')) return false;
  const file = rel.startsWith('vendor/') && VENDOR[rel.slice(7)] ? path.join(WEB, 'node_modules', VENDOR[rel.slice(7)]) : path.join(WEB, rel);
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return false;
  const data = fs.readFileSync(file);
  res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-cache', ...SECURITY_HEADERS });
  res.end(data);
  return true;
}

function proxy(req, res) {
  const up = new URL(UPSTREAM);
  const p = http.request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers: { ...req.headers, host: up.host } }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  p.on('error', () => { res.writeHead(502, { 'Content-Type': 'application/json' }); res.end(JSON.stringify({ status: 502, message: 'Upstream unreachable', errorCode: 2, timestamp: Date.now() })); });
  req.pipe(p);
}

// ---------------------------------------------------------------------------------------- mock
const M = {
  users: { [process.env.COAPHUB_ADMIN_USER || 'tenant@thingsboard.org']: process.env.COAPHUB_ADMIN_PASSWORD || 'tenant' },
  tokens: new Set(), devices: new Map(), status: new Map(), creds: new Map(), ts: new Map(), attrs: new Map(), sse: new Set(), rpcWait: new Map(), rpcQueue: new Map(), rpcSeq: 1,
};
const uuid = () => crypto.randomUUID();
function err(res, status, message) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ status, message, errorCode: status === 401 ? 10 : status === 404 ? 32 : 31, timestamp: Date.now() }));
}
function ok(res, body) {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(body === undefined ? '' : JSON.stringify(body));
}
function readBody(req) {
  return new Promise((resolve) => { let b = ''; req.on('data', (c) => { b += c; }); req.on('end', () => resolve(b)); });
}
function publish(type, data) {
  // A stream without deviceId follows the activity of every device (the device list).
  for (const s of M.sse) if (s.deviceId === data.deviceId || (!s.deviceId && type === 'activity')) s.res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
}
function devJson(d) { return { id: { entityType: 'DEVICE', id: d.id }, createdTime: d.createdTime, name: d.name, type: d.type, label: d.label, additionalInfo: null, version: d.version }; }
function setAttrs(id, scope, obj) {
  const a = M.attrs.get(id)[scope];
  for (const [k, v] of Object.entries(obj)) a[k] = { value: v, lastUpdateTs: Date.now() };
  publish('attributes', { deviceId: id, scope, values: obj });
}
function addTelemetry(id, obj) {
  const now = Date.now();
  const values = {};
  for (const [k, v] of Object.entries(obj)) {
    if (!M.ts.get(id)[k]) M.ts.get(id)[k] = [];
    M.ts.get(id)[k].push({ ts: now, value: v });
    values[k] = [{ ts: now, value: v }];
  }
  setAttrs(id, 'SERVER_SCOPE', { active: true, lastActivityTime: now });
  publish('telemetry', { deviceId: id, values });
  setStatus(id, { active: true, lastActivityTime: now });
}
// Live status like the daemon's hub table; X.509 devices (fingerprint credentials) use CoAPS.
function setStatus(id, change) {
  const before = M.status.get(id) || { active: false, transport: null, observations: 0, lastActivityTime: 0 };
  const x509 = M.creds.get(id)?.credentialsType === 'X509_CERTIFICATE';
  const now = { ...before, transport: x509 ? 'coaps' : 'coap', ...change };
  M.status.set(id, now);
  if (JSON.stringify(now) !== JSON.stringify(before)) publish('activity', { deviceId: id, ...now });
}
function certInfo(pem) {
  const c = new crypto.X509Certificate(pem);
  return { subject: c.subject.replace(/\n/g, ', '), issuer: c.issuer.replace(/\n/g, ', '), notBefore: new Date(c.validFrom).toISOString(), notAfter: new Date(c.validTo).toISOString(), sha256Fingerprint: c.fingerprint256.replace(/:/g, '').toLowerCase() };
}

async function mock(req, res) {
  const u = new URL(req.url, 'http://x');
  const p = u.pathname;
  const q = u.searchParams;
  const body = ['POST', 'PUT'].includes(req.method) ? await readBody(req) : '';
  let json = null;
  if (body) { try { json = JSON.parse(body); } catch { return err(res, 400, 'Invalid request body'); } }
  if (p === '/healthz') return ok(res, { status: 'UP' });
  if (p === '/api/auth/login' && req.method === 'POST') {
    if (!json || M.users[json.username] !== json.password) return err(res, 401, 'Invalid username or password');
    const t = `mock.${uuid()}`; M.tokens.add(t);
    return ok(res, { token: t, refreshToken: `r.${t}` });
  }
  if (p === '/api/auth/token' && req.method === 'POST') {
    const t = json && json.refreshToken && json.refreshToken.slice(2);
    if (!M.tokens.has(t)) return err(res, 401, 'Invalid refresh token');
    return ok(res, { token: t, refreshToken: json.refreshToken });
  }
  if (p === '/api/noauth/connectivity') return ok(res, { host: '127.0.0.1', coapPort: 5683, coapsPort: 5684, serverCertUrl: '/api/noauth/server-cert.pem' });
  if (p === '/api/noauth/server-cert.pem') { res.writeHead(200, { 'Content-Type': 'application/x-pem-file' }); return res.end('-----BEGIN CERTIFICATE-----\nMOCK\n-----END CERTIFICATE-----\n'); }
  if (p.startsWith('/mock/')) return mockDevice(p, json, res);
  const auth = (req.headers['x-authorization'] || '').replace(/^Bearer /, '') || (p === '/api/events' ? q.get('token') : '');
  if (!M.tokens.has(auth)) return err(res, 401, 'Authentication failed');
  if (p === '/api/auth/user') return ok(res, { email: Object.keys(M.users)[0], authority: 'TENANT_ADMIN' });
  if (p === '/api/auth/logout') { M.tokens.delete(auth); return ok(res); }
  if (p === '/api/events') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.write(': hello\n\n');
    const s = { deviceId: q.get('deviceId'), res };
    M.sse.add(s);
    req.on('close', () => M.sse.delete(s));
    return undefined;
  }
  if (p === '/api/coaphub/devices/status') {
    const out = {};
    for (const id of (q.get('ids') || '').split(',').filter(Boolean)) out[id] = M.status.get(id) || { active: false, transport: null, observations: 0, lastActivityTime: 0 };
    return ok(res, out);
  }
  if (p === '/api/tenant/devices') {
    const size = Number(q.get('pageSize') || 10), page = Number(q.get('page') || 0);
    const text = (q.get('textSearch') || '').toLowerCase();
    const sp = q.get('sortProperty') || 'createdTime', asc = q.get('sortOrder') === 'ASC';
    const all = [...M.devices.values()].filter((d) => d.name.toLowerCase().startsWith(text))
      .sort((a, b) => (String(a[sp] ?? '') < String(b[sp] ?? '') ? -1 : String(a[sp] ?? '') > String(b[sp] ?? '') ? 1 : 0) * (asc ? 1 : -1));
    const pages = Math.ceil(all.length / size);
    return ok(res, { data: all.slice(page * size, page * size + size).map(devJson), totalPages: pages, totalElements: all.length, hasNext: page + 1 < pages });
  }
  if (p === '/api/device' && req.method === 'POST') {
    if (!json || !json.name) return err(res, 400, 'Device name should be specified!');
    const clash = [...M.devices.values()].find((d) => d.name === json.name && (!json.id || d.id !== json.id.id));
    if (clash) return err(res, 400, 'Device with such name already exists!');
    if (json.id) { const d = M.devices.get(json.id.id); if (!d) return err(res, 404, 'Requested item wasn\'t found!'); Object.assign(d, { name: json.name, label: json.label, type: json.type }); d.version++; return ok(res, devJson(d)); }
    const d = { id: uuid(), name: json.name, type: json.type || 'default', label: json.label || null, createdTime: Date.now(), version: 1 };
    M.devices.set(d.id, d);
    M.creds.set(d.id, { id: { id: uuid() }, deviceId: { entityType: 'DEVICE', id: d.id }, credentialsType: 'ACCESS_TOKEN', credentialsId: q.get('accessToken') || crypto.randomBytes(10).toString('hex'), credentialsValue: null, version: 0 });
    M.ts.set(d.id, {}); M.attrs.set(d.id, { CLIENT_SCOPE: {}, SERVER_SCOPE: {}, SHARED_SCOPE: {} });
    return ok(res, devJson(d));
  }
  if (p === '/api/device/credentials' && req.method === 'POST') {
    const id = json && json.deviceId && json.deviceId.id;
    if (!M.creds.has(id)) return err(res, 404, 'Device not found');
    if (json.credentialsType === 'X509_CERTIFICATE') {
      try { json.info = certInfo(json.credentialsValue); json.credentialsId = json.info.sha256Fingerprint; } catch { return err(res, 400, 'The certificate could not be read: expected a PEM "BEGIN CERTIFICATE" block with a valid X.509 certificate.'); }
    } else if (!json.credentialsId) return err(res, 400, 'Access token should be specified!');
    M.creds.set(id, { ...json, version: (M.creds.get(id).version || 0) + 1 });
    const { info, ...out } = M.creds.get(id);
    return ok(res, out);
  }
  let m;
  if ((m = p.match(/^\/api\/device\/([^/]+)(\/credentials(\/info)?)?$/))) {
    const d = M.devices.get(m[1]);
    if (!d) return err(res, 404, 'Requested item wasn\'t found!');
    if (m[3]) { const c = M.creds.get(d.id); return c.info ? ok(res, { ...c.info, credentialsId: c.credentialsId }) : err(res, 404, 'No certificate'); }
    if (m[2]) { const { info, ...c } = M.creds.get(d.id); return ok(res, c); }
    if (req.method === 'DELETE') { M.devices.delete(d.id); return ok(res); }
    return ok(res, devJson(d));
  }
  if ((m = p.match(/^\/api\/plugins\/telemetry\/DEVICE\/([^/]+)\/(.+)$/))) {
    const id = m[1], rest = m[2];
    if (!M.devices.has(id)) return err(res, 404, 'Requested item wasn\'t found!');
    const ts = M.ts.get(id), at = M.attrs.get(id);
    if (rest === 'keys/timeseries') return ok(res, Object.keys(ts));
    if (rest === 'values/timeseries') {
      const keys = q.get('keys') ? q.get('keys').split(',') : Object.keys(ts);
      const out = {};
      for (const k of keys) {
        if (!ts[k]) continue;
        if (q.get('startTs')) out[k] = ts[k].filter((pt) => pt.ts >= +q.get('startTs') && pt.ts <= +q.get('endTs'));
        else out[k] = [ts[k][ts[k].length - 1]];
      }
      return ok(res, out);
    }
    if ((m = rest.match(/^values\/attributes\/(\w+)$/))) {
      const keys = q.get('keys') ? q.get('keys').split(',') : null;
      return ok(res, Object.entries(at[m[1]] || {}).filter(([k]) => !keys || keys.includes(k)).map(([key, v]) => ({ key, value: v.value, lastUpdateTs: v.lastUpdateTs })));
    }
    if ((m = rest.match(/^attributes\/(SERVER_SCOPE|SHARED_SCOPE)$/)) && req.method === 'POST') { setAttrs(id, m[1], json || {}); return ok(res); }
    if ((m = rest.match(/^(SERVER_SCOPE|SHARED_SCOPE)$/)) && req.method === 'DELETE') {
      const keys = (q.get('keys') || '').split(',');
      for (const k of keys) delete at[m[1]][k];
      publish('attributes', { deviceId: id, scope: m[1], deleted: keys });
      return ok(res);
    }
  }
  if ((m = p.match(/^\/api\/rpc\/(oneway|twoway)\/([^/]+)$/))) {
    const id = m[2];
    if (!M.devices.has(id)) return err(res, 404, 'Requested item wasn\'t found!');
    const rpcId = M.rpcSeq++;
    const reqObj = { id: rpcId, method: json.method, params: json.params };
    (M.rpcQueue.get(id) || M.rpcQueue.set(id, []).get(id)).push(reqObj);
    if (m[1] === 'oneway') return ok(res);
    const t = setTimeout(() => { M.rpcWait.delete(rpcId); err(res, 504, 'Request timeout'); }, Math.min(json.timeout || 10000, 60000));
    M.rpcWait.set(rpcId, (reply) => { clearTimeout(t); ok(res, reply); });
    return undefined;
  }
  return err(res, 404, 'Not found');
}

// Device stand-ins: /mock/telemetry/<token> {json}, /mock/rpc/<token> -> pending requests,
// /mock/rpc/<token>/<rpcId> {reply}.
function mockDevice(p, json, res) {
  const parts = p.split('/').filter(Boolean);
  const cred = [...M.creds.values()].find((c) => c.credentialsId === decodeURIComponent(parts[2] || ''));
  if (!cred) return err(res, 404, 'No device with this credential');
  const id = cred.deviceId.id;
  if (parts[1] === 'telemetry') { addTelemetry(id, json || {}); return ok(res); }
  if (parts[1] === 'attributes') setStatus(id, { active: true, observations: 1 }); // the polling "observer"
  if (parts[1] === 'attributes') return ok(res, Object.fromEntries(Object.entries(M.attrs.get(id).SHARED_SCOPE).map(([k, v]) => [k, v.value])));
  if (parts[1] === 'rpc' && parts.length === 3) { const l = M.rpcQueue.get(id) || []; M.rpcQueue.set(id, []); return ok(res, l); }
  if (parts[1] === 'rpc' && parts.length === 4) { const f = M.rpcWait.get(Number(parts[3])); if (f) { M.rpcWait.delete(Number(parts[3])); f(json); } return ok(res); }
  return err(res, 404, 'Not found');
}

const srv = http.createServer((req, res) => {
  if (req.method === 'GET' && serveStatic(req, res)) return;
  if (UPSTREAM) proxy(req, res);
  else mock(req, res).catch((e) => err(res, 500, String(e)));
});
srv.listen(PORT, '127.0.0.1', () => console.log(`listening ${srv.address().port}`));
