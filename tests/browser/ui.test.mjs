// ui.test.mjs — the web UI in a real browser (Debian's chromium driven by playwright-core):
// the seed's flow end to end, plus XSS, bad PEM, phone layout and CSP checks; fleet.mjs adds
// device profiles, OTA packages and a device's firmware state to the same run.
// Run through tests/browser/run.sh. Screenshots of each step go to $ARTIFACTS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { startTarget, deviceDriver, makeCert, tmpDir, ADMIN_USER, ADMIN_PASSWORD } from './harness.mjs';
import { fleetTests } from './fleet.mjs';

// playwright-core lives in web/node_modules (web/package-lock.json); load it from there.
const { chromium } = createRequire(new URL('../../web/package.json', import.meta.url))('playwright-core');

const ARTIFACTS = process.env.ARTIFACTS || path.resolve('browser-artifacts');
const SHOTS = process.env.DOC_SHOTS || ''; // when set, also write the docs/ screenshots there
fs.mkdirSync(ARTIFACTS, { recursive: true });

let browser, ctx, page, target, dev, tmp;
const cspViolations = [];
const pageErrors = [];
const dialogs = [];
const state = {};
let shotNo = 0;

async function shot(name, p = page) {
  shotNo += 1;
  await p.screenshot({ path: path.join(ARTIFACTS, `${String(shotNo).padStart(2, '0')}-${name}.png`), fullPage: true });
}

// docs/ screenshots: same page, without the transient toasts.
async function docShot(name, opts = {}) {
  if (!SHOTS) return;
  await page.evaluate(() => document.querySelector('.toasts')?.replaceChildren());
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), ...opts });
}

function watch(p) {
  p.on('console', (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) cspViolations.push(m.text()); });
  p.on('pageerror', (e) => pageErrors.push(String(e)));
  p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
}

async function waitFor(fn, ms = 10000, what = 'condition') {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

async function createDevice(name) {
  await page.goto(`${target.baseUrl}/#/devices`);
  await page.click('#add-device');
  await page.fill('dialog input[name=name]', name);
  await page.click('dialog button[type=submit]');
  await page.waitForURL(/#\/device\/[0-9a-f-]+\/credentials/);
  return page.url().match(/#\/device\/([0-9a-f-]+)/)[1];
}

before(async () => {
  tmp = tmpDir();
  target = await startTarget(tmp);
  dev = deviceDriver(target);
  console.log(`# UI served by ${target.servedBy} at ${target.baseUrl}`);
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  browser = await chromium.launch({ executablePath, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'] });
  ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await ctx.newPage();
  watch(page);
});

after(async () => {
  try {
    if (browser) await browser.close();
    if (target) await target.stop();
  } finally {
    if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('login: wrong password is refused with a readable message, right one opens the device list, reload keeps the session', async () => {
  await page.goto(target.baseUrl);
  await page.waitForSelector('#username');
  await shot('login');
  await docShot('login');
  await page.fill('#username', ADMIN_USER);
  await page.fill('#password', 'wrong-password');
  await page.click('button[type=submit]');
  await page.waitForSelector('#login-error:not(:empty)');
  assert.match(await page.textContent('#login-error'), /wrong email or password/i);
  await page.fill('#password', ADMIN_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('h1:text("Devices")');
  await page.reload();
  await page.waitForSelector('h1:text("Devices")');
  assert.ok(await page.evaluate(() => !!localStorage.getItem('coaphub.token')));
  await shot('devices-empty');
});

test('create a device, then paste the seed certificate into Credentials: fingerprint, subject and dates shown', async () => {
  state.cert = makeCert(path.join(tmp, 'pki'), 'ui-thermo-x509');
  state.id = await createDevice('thermo-x509');
  await page.waitForSelector('text=Device credentials');
  await page.click('text=X.509 certificate');
  await page.fill('#pem-input', state.cert.pem);
  await page.click('#cred-save');
  await page.waitForSelector('.toast:text("Credentials saved")');
  const info = await waitFor(async () => (await page.$('#cert-fp')) || (await page.$('.field-error:not(:empty)')), 5000, 'certificate info').catch(() => null);
  if (info && (await info.getAttribute('id')) === 'cert-fp') {
    assert.equal((await info.textContent()).replace(/[: ]/g, '').toLowerCase(), state.cert.fp);
    assert.match(await page.textContent('#cert-subject'), /ui-thermo-x509/);
  } else {
    console.log('# credentials/info not available: fingerprint panel not shown');
  }
  const creds = await page.evaluate(async (id) => (await fetch(`/api/device/${id}/credentials`, { headers: { 'X-Authorization': `Bearer ${localStorage.getItem('coaphub.token')}` } })).json(), state.id);
  assert.equal(creds.credentialsType, 'X509_CERTIFICATE');
  await shot('credentials-x509-saved');
  await docShot('credentials', { fullPage: true });
});

test('a bad PEM shows a readable error next to the field', async () => {
  await page.fill('#pem-input', '-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n');
  await page.click('#cred-save');
  const err = await page.waitForSelector('#pem-input-err:not(:empty)');
  const text = await err.textContent();
  assert.ok(text.length > 10 && !text.trim().startsWith('{'), `readable error, got: ${text}`);
  assert.equal(await page.getAttribute('#pem-input', 'aria-invalid'), '');
  await shot('credentials-bad-pem');
  // Put the good certificate back for the steps that follow.
  await page.fill('#pem-input', state.cert.pem);
  await page.click('#cred-save');
  await page.waitForSelector('#pem-input-err:empty', { state: 'attached' });
});

test('coap-client-openssl with the certificate posts telemetry and the value appears without reload; chart draws', async () => {
  await page.click('#tab-telemetry');
  await page.waitForSelector('text=No telemetry yet');
  const before = page.url();
  const r = await dev.telemetryX509(state.cert, { temperature: 43 });
  if (r.out !== undefined) console.log(`# coap-client-openssl: ${r.code} ${r.out.slice(0, 200)}`);
  await page.waitForSelector('#telemetry-table tr[data-key=temperature] .value:text("43")', { timeout: 10000 });
  assert.equal(page.url(), before);
  await shot('telemetry-live');
  await docShot('telemetry', { fullPage: true });
  await dev.telemetryX509(state.cert, { temperature: 44.5, humidity: 40 });
  await page.waitForSelector('#telemetry-table tr[data-key=temperature] .value:text("44.5")', { timeout: 10000 });
  await page.click('#tab-chart');
  await page.waitForSelector('#chart canvas', { timeout: 10000 });
  const drawn = await page.evaluate(() => { const c = document.querySelector('#chart canvas'); return c.width > 100 && c.height > 100; });
  assert.ok(drawn);
  const count = () => page.evaluate(() => parseInt((document.querySelector('.tab-panel [role=status].small')?.textContent || '0'), 10));
  const n0 = await waitFor(count, 10000, 'chart point count');
  await dev.telemetryX509(state.cert, { temperature: 45 });
  await waitFor(async () => (await count()) === n0 + 1, 10000, 'live chart point');
  await shot('chart');
  await docShot('chart', { fullPage: true });
});

test('device list: status column shows the device Active over CoAPS, from one status request, and live', async () => {
  const statusReqs = [];
  const onReq = (r) => { if (r.url().includes('/api/coaphub/devices/status')) statusReqs.push(r.url()); };
  page.on('request', onReq);
  try {
    await page.goto(`${target.baseUrl}/#/devices`);
    const row = `tr[data-id="${state.id}"]`;
    await page.waitForSelector(`${row} .status-text:text-is("Active")`, { timeout: 10000 });
    await page.waitForSelector(`${row} .proto:text("CoAPS")`);
    assert.match(await page.textContent(`${row} .status-time`), /just now|s ago|min ago/);
    assert.equal(statusReqs.length, 1, `one status request per page load, got ${statusReqs.join(" ")}`);
    // The REST endpoint itself: known device live, unknown uuid inactive with null transport.
    const unknown = '00000000-0000-4000-8000-000000000000';
    const st = await page.evaluate(async ([id, other]) => (await fetch(`/api/coaphub/devices/status?ids=${id},${other}`,
      { headers: { 'X-Authorization': `Bearer ${localStorage.getItem('coaphub.token')}` } })).json(), [state.id, unknown]);
    assert.equal(st[state.id].active, true);
    assert.equal(st[state.id].transport, 'coaps');
    assert.ok(st[state.id].lastActivityTime > Date.now() - 600000);
    assert.deepEqual(st[unknown], { active: false, transport: null, observations: 0, lastActivityTime: 0 });
    const nReqs = statusReqs.length; // the page's one request plus the test's own fetch
    // Live: an observation opened by the device shows up in the list without reload.
    const obs = dev.observeAttributesX509(state.cert);
    try {
      await page.waitForSelector(`${row} .status-obs:text("1 obs")`, { timeout: 10000 });
      await shot('devices-status-live');
    } finally { obs.stop(); }
    assert.equal(statusReqs.length, nReqs, `live updates come from the event stream, not more requests: ${statusReqs.join(' ')}`);
  } finally { page.off('request', onReq); }
  await page.goto(`${target.baseUrl}/#/device/${state.id}/telemetry`);
  await page.waitForSelector('.dev-status .status-text');
});

test('a shared attribute set in the page reaches an observing coap-client-openssl -s', async () => {
  const obs = dev.observeAttributesX509(state.cert);
  try {
    // While the observer runs, the device page header counts its observation.
    await page.waitForSelector('.dev-status .status-obs:text("1 obs")', { timeout: 10000 }).catch(async (e) => {
      throw new Error(`${e.message}; header: ${await page.textContent('.dev-status')}; mode: ${await page.textContent('.live-mode')}`);
    });
    assert.equal(await page.textContent('.dev-status .status-text'), 'Active');
    assert.match(await page.textContent('.dev-status .proto'), /CoAPS/);
    await page.click('#tab-attributes');
    await page.click('[data-scope=SHARED_SCOPE]');
    await page.click('#attr-add');
    await page.fill('dialog input[name=key]', 'targetTemp');
    await page.fill('dialog textarea[name=value]', '21.5');
    await page.click('dialog button[type=submit]');
    await page.waitForSelector('#attr-table tr[data-key=targetTemp] .value:text("21.5")');
    await waitFor(() => /targetTemp"?\s*:\s*21\.5/.test(obs.output()), 10000, 'observer output with targetTemp');
    await shot('attributes-shared');
  } finally { obs.stop(); }
});

test('two-way RPC from the page is answered by a test device and the reply is shown', async () => {
  const token = `UI${Date.now().toString(36)}`;
  const id = await createDevice('rpc-responder');
  state.rpcId = id;
  state.rpcToken = token;
  await page.fill('#token-input', token);
  await page.click('#cred-save');
  await page.waitForSelector('.toast:text("Credentials saved")');
  const responder = dev.rpcResponder(token);
  try {
    await dev.telemetryToken(token, { online: 1 });
    await page.goto(`${target.baseUrl}/#/device/${id}/rpc`);
    await page.fill('#rpc-method', 'getTemp');
    await page.fill('#rpc-params', '{"unit":"C"}');
    await page.fill('#rpc-timeout', '8000');
    await new Promise((r) => setTimeout(r, 1000)); // let the responder's observation settle
    await page.click('#rpc-send');
    const reply = await page.waitForSelector('.rpc-entry.ok .rpc-reply', { timeout: 12000 });
    assert.deepEqual(JSON.parse(await reply.textContent()), { echo: { unit: 'C' } });
    await shot('rpc-two-way');
  } finally { responder.stop(); }
});

test('without the event stream the page falls back to polling and still updates', async () => {
  const polled = await ctx.newPage();
  watch(polled);
  await polled.route('**/api/events**', (r) => r.fulfill({ status: 404, contentType: 'application/json', body: '{"status":404,"message":"Not found"}' }));
  await polled.goto(`${target.baseUrl}/#/device/${state.rpcId}/telemetry`);
  await polled.waitForSelector('.live-mode:text("Polling")');
  await polled.waitForSelector('#telemetry-table');
  await dev.telemetryToken(state.rpcToken, { pressure: 1013 });
  await polled.waitForSelector('#telemetry-table tr[data-key=pressure] .value:text("1013")', { timeout: 8000 });
  await polled.close();
});

test('a device named like HTML is shown literally; nothing is executed', async () => {
  const evil = '<img src=x onerror=alert(1)>';
  const id = await createDevice(evil);
  await page.waitForSelector('.dev-title');
  assert.equal(await page.textContent('.dev-title'), evil);
  await page.goto(`${target.baseUrl}/#/devices`);
  await page.waitForSelector(`.dev-name >> text=${evil}`);
  assert.equal(await page.$$eval('img', (imgs) => imgs.length), 0);
  assert.deepEqual(dialogs, []);
  await shot('xss-literal');
  await docShot('devices');
  state.evilId = id;
});

test('delete asks for confirmation; rename works; search filters', async () => {
  await page.fill('#device-search', 'rpc-resp');
  await page.waitForSelector('.dev-name:text("rpc-responder")');
  await waitFor(async () => (await page.$$('.dev-name')).length === 1, 5000, 'search to filter');
  await page.click('button[aria-label="Rename rpc-responder"]');
  await page.fill('dialog input[name=name]', 'rpc-responder-2');
  await page.click('dialog button[type=submit]');
  await page.fill('#device-search', '');
  await page.waitForSelector('.dev-name:text("rpc-responder-2")');
  await page.click('button[aria-label="Delete rpc-responder-2"]');
  await page.waitForSelector('dialog.modal[open]');
  await shot('delete-confirm');
  await page.click('dialog .btn-danger');
  await waitFor(async () => !(await page.$('.dev-name:text("rpc-responder-2")')), 5000, 'row to disappear');
});

test('phone-sized screen: device list and device page fit without horizontal scrolling', async () => {
  const phone = await ctx.newPage();
  watch(phone);
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${target.baseUrl}/#/devices`);
  await phone.waitForSelector('.dev-name');
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= 391));
  await shot('phone-devices', phone);
  await phone.goto(`${target.baseUrl}/#/device/${state.id}/connectivity`);
  await phone.waitForSelector('pre.cmd');
  const cmds = await phone.$$eval('pre.cmd', (els) => els.map((e) => e.textContent));
  assert.ok(cmds.some((c) => c.includes('coap-client-openssl -c cert.pem -j key.pem') && c.includes('/api/v1/telemetry')));
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= 391));
  await shot('phone-connectivity', phone);
  await phone.close();
});

test('keyboard: add a device with Enter only, switch tabs with the arrow keys', async () => {
  await page.goto(`${target.baseUrl}/#/devices`);
  await page.waitForSelector('#add-device');
  await page.focus('#add-device');
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog.modal[open] input[name=name]');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'name');
  await page.keyboard.type('kbd-device');
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/device\/[0-9a-f-]+\/credentials/);
  await page.goto(`${target.baseUrl}/#/device/${state.id}/telemetry`);
  await page.waitForSelector('#tab-telemetry');
  await page.focus('#tab-telemetry');
  await page.keyboard.press('ArrowRight');
  await page.waitForURL(/\/chart$/);
  await waitFor(() => page.evaluate(() => document.activeElement && document.activeElement.id === 'tab-chart'), 5000, 'focus on the Chart tab');
  await page.keyboard.press('ArrowRight');
  await page.waitForURL(/\/attributes$/);
  await page.keyboard.press('Escape');
});

test('Credentials: a pre-shared key typed as text is saved as hex; Check connectivity shows coap-client -u/-k; the device posts with it', async () => {
  const id = await createDevice('psk-device');
  await page.waitForSelector('text=Device credentials');
  await page.click('text=Pre-shared key');
  await page.fill('#psk-identity', 'psk-ui-1');
  await page.fill('#psk-key', 'xyz');
  await page.click('#cred-save');
  await page.waitForSelector('#psk-key-err:not(:empty)');
  await page.fill('#psk-text', 'ui-secret');
  assert.equal(await page.inputValue('#psk-key'), Buffer.from('ui-secret').toString('hex'));
  await page.click('#cred-save');
  await page.waitForSelector('text=Credentials saved');
  const creds = await page.evaluate(async (i) => (await fetch(`/api/device/${i}/credentials`, { headers: { 'X-Authorization': `Bearer ${localStorage.getItem('coaphub.token')}` } })).json(), id);
  assert.equal(creds.credentialsType, 'PSK');
  assert.equal(creds.credentialsId, 'psk-ui-1');
  assert.equal(creds.credentialsValue, Buffer.from('ui-secret').toString('hex'));
  await shot('credentials-psk-saved');
  await page.goto(`${target.baseUrl}/#/device/${id}/connectivity`);
  await page.waitForSelector("text=coap-client-openssl -u psk-ui-1 -k ui-secret", { timeout: 10000 });
  await shot('connectivity-psk');
  const r = await dev.telemetryPsk('psk-ui-1', 'ui-secret', { psk: 1 });
  if (r !== undefined) {
    await page.goto(`${target.baseUrl}/#/device/${id}/telemetry`);
    await page.waitForSelector('#telemetry-table tr[data-key=psk] .value:text("1")', { timeout: 10000 });
  }
});

fleetTests({ page: () => page, target: () => target, dev: () => dev, tmp: () => tmp, shot, docShot, waitFor, createDevice });

test('log out: back to the login page and the API answers 401 without a session', async () => {
  await page.click('#logout');
  await page.waitForSelector('#username');
  assert.equal(await page.evaluate(() => localStorage.getItem('coaphub.token')), null);
  const status = await page.evaluate(async () => (await fetch('/api/tenant/devices?pageSize=10&page=0')).status);
  assert.equal(status, 401);
  await page.goto(`${target.baseUrl}/#/devices`);
  await page.waitForSelector('#username');
});

test('no CSP violations and no uncaught page errors during the run', () => {
  assert.deepEqual(cspViolations, []);
  assert.deepEqual(pageErrors, []);
});
