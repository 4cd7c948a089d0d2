// harness.mjs — starts what the browser tests talk to, and the "device" side of each scenario.
//
// With COAPHUB_BIN set: the real daemon on 127.0.0.1 with free ports and a temp data dir (as
// tests/integration/lib.sh does); if it does not serve the UI at / yet, serve.mjs serves web/
// and proxies the rest to it. Devices are real clients: coap-client-openssl with an openssl-made
// certificate, coap-client-notls, and coap-device.mjs for RPC.
// Without COAPHUB_BIN: serve.mjs's in-memory mock, with its /mock/* hooks as the devices.

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rpcResponder } from './coap-device.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ADMIN_USER = 'admin@coaphub.test';
export const ADMIN_PASSWORD = `ui-${crypto.randomBytes(6).toString('hex')}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function waitHttp(url, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { const r = await fetch(url); if (r.status < 500) return r; } catch { /* not up yet */ }
    await sleep(100);
  }
  throw new Error(`${url} did not come up`);
}

function startServe(port, env) {
  const p = spawn(process.execPath, [path.join(HERE, 'serve.mjs'), String(port)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return p;
}

export async function startTarget(tmp) {
  const procs = [];
  const t = { mode: process.env.COAPHUB_BIN ? 'daemon' : 'mock', procs, tmp };
  if (t.mode === 'daemon') {
    t.coapPort = await freePort(); t.coapsPort = await freePort(); t.httpPort = await freePort();
    const log = fs.openSync(path.join(tmp, 'daemon.log'), 'a');
    const d = spawn(process.env.COAPHUB_BIN, ['--data-dir', path.join(tmp, 'data'), '--bind', '127.0.0.1', '--coap-port', String(t.coapPort),
      '--coaps-port', String(t.coapsPort), '--http-port', String(t.httpPort), '--log-level', 'debug'],
    { env: { ...process.env, COAPHUB_ADMIN_USER: ADMIN_USER, COAPHUB_ADMIN_PASSWORD: ADMIN_PASSWORD }, stdio: ['ignore', log, log] });
    fs.mkdirSync(path.join(tmp, 'data'), { recursive: true });
    procs.push(d);
    t.daemon = d;
    const daemonUrl = `http://127.0.0.1:${t.httpPort}`;
    await waitHttp(`${daemonUrl}/healthz`);
    const root = await fetch(`${daemonUrl}/`).then((r) => r.text()).catch(() => '');
    if (root.includes('static/app.js')) {
      t.baseUrl = daemonUrl;
      t.servedBy = 'daemon';
    } else {
      const port = await freePort();
      procs.push(startServe(port, { UPSTREAM: daemonUrl }));
      t.baseUrl = `http://127.0.0.1:${port}`;
      await waitHttp(`${t.baseUrl}/`);
      t.servedBy = 'serve.mjs (proxy to daemon)';
    }
  } else {
    const port = await freePort();
    procs.push(startServe(port, { COAPHUB_ADMIN_USER: ADMIN_USER, COAPHUB_ADMIN_PASSWORD: ADMIN_PASSWORD }));
    t.baseUrl = `http://127.0.0.1:${port}`;
    await waitHttp(`${t.baseUrl}/healthz`);
    t.servedBy = 'serve.mjs (mock API)';
  }
  t.stop = async () => {
    for (const p of procs.reverse()) {
      if (p.exitCode !== null) continue;
      p.kill('SIGTERM');
      await Promise.race([new Promise((r) => p.once('exit', r)), sleep(15000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
    }
    // Like lib.sh: the daemon must exit 0 on SIGTERM with no sanitizer report in its log.
    if (t.daemon) {
      const log = fs.readFileSync(path.join(tmp, 'daemon.log'), 'utf8');
      const bad = log.split('\n').filter((l) => /AddressSanitizer|LeakSanitizer|runtime error|UndefinedBehaviorSanitizer/.test(l));
      if (t.daemon.exitCode !== 0 || bad.length) {
        throw new Error(`daemon exit ${t.daemon.exitCode ?? t.daemon.signalCode}; ${bad.slice(0, 5).join(' | ')}\n${log.split('\n').slice(-30).join('\n')}`);
      }
    }
  };
  return t;
}

// The seed's openssl commands: an EC key and a self-signed certificate for the device.
export function makeCert(dir, cn) {
  fs.mkdirSync(dir, { recursive: true });
  const key = path.join(dir, 'key.pem'), cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['ecparam', '-out', key, '-name', 'secp256r1', '-genkey']);
  execFileSync('openssl', ['req', '-new', '-key', key, '-x509', '-nodes', '-days', '365', '-out', cert, '-subj', `/CN=${cn}`]);
  const pem = fs.readFileSync(cert, 'utf8');
  const fp = new crypto.X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
  return { dir, key, cert, pem, fp };
}

function run(cmd, args, timeoutMs = 15000) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { out += c; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, out }); });
  });
}

// Device-side actions, the same calls in both modes.
export function deviceDriver(t) {
  const mockPost = (p, body) => fetch(`${t.baseUrl}${p}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return {
    async telemetryX509(cert, obj) {
      if (t.mode === 'mock') return mockPost(`/mock/telemetry/${cert.fp}`, obj);
      return run('coap-client-openssl', ['-c', cert.cert, '-j', cert.key, '-m', 'POST', '-t', 'application/json', '-e', JSON.stringify(obj),
        `coaps://127.0.0.1:${t.coapsPort}/api/v1/telemetry`]);
    },
    // PSK (libcoap 4.3.1: -k is the key as text). The mock has no DTLS: undefined.
    async telemetryPsk(identity, keyText, obj) {
      if (t.mode === 'mock') return undefined;
      return run('coap-client-openssl', ['-u', identity, '-k', keyText, '-m', 'POST', '-t', 'application/json', '-e', JSON.stringify(obj),
        `coaps://127.0.0.1:${t.coapsPort}/api/v1/telemetry`]);
    },
    async telemetryToken(token, obj) {
      if (t.mode === 'mock') return mockPost(`/mock/telemetry/${token}`, obj);
      return run('coap-client-notls', ['-m', 'POST', '-t', 'application/json', '-e', JSON.stringify(obj), `coap://127.0.0.1:${t.coapPort}/api/v1/${token}/telemetry`]);
    },
    // Observes shared attributes; returns {output(), stop()}.
    observeAttributesX509(cert) {
      if (t.mode === 'mock') {
        let last = '';
        const iv = setInterval(async () => { try { last = await (await fetch(`${t.baseUrl}/mock/attributes/${cert.fp}`)).text(); } catch { /* retry */ } }, 200);
        return { output: () => last, stop: () => clearInterval(iv) };
      }
      let out = '';
      const p = spawn('coap-client-openssl', ['-c', cert.cert, '-j', cert.key, '-m', 'GET', '-s', '30', `coaps://127.0.0.1:${t.coapsPort}/api/v1/attributes`], { stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout.on('data', (c) => { out += c; });
      p.stderr.on('data', (c) => { out += c; });
      t.procs.push(p);
      return { output: () => out, stop: () => p.kill('SIGTERM') };
    },
    rpcResponder(token) {
      if (t.mode === 'mock') {
        const calls = [];
        const iv = setInterval(async () => {
          try {
            const pending = await (await fetch(`${t.baseUrl}/mock/rpc/${token}`, { method: 'POST' })).json();
            for (const r of pending) { calls.push(r); await mockPost(`/mock/rpc/${token}/${r.id}`, { echo: r.params }); }
          } catch { /* retry */ }
        }, 100);
        return { calls, stop: () => clearInterval(iv) };
      }
      return rpcResponder({ port: t.coapPort, token });
    },
  };
}

export function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'coaphub-ui.'));
}
