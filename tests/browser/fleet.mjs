// fleet.mjs — browser tests of the Profiles page, the OTA page and a device's "Profile &
// firmware" tab, registered into ui.test.mjs's run (same browser, same daemon, same login):
// fleetTests(ctx) with ctx = {page(), target(), dev(), tmp(), shot, docShot, waitFor, createDevice}.
// They need the daemon's profile and OTA endpoints, so they skip against serve.mjs's mock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function run(cmd, args, timeoutMs = 60000) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { out += c; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, out }); });
  });
}

export function fleetTests(ctx) {
  const st = {};
  const api = (method, p, body) => ctx.page().evaluate(async ([m, u, b]) => {
    const r = await fetch(u, { method: m, headers: { 'Content-Type': 'application/json', 'X-Authorization': `Bearer ${localStorage.getItem('coaphub.token')}` }, body: b === null ? undefined : JSON.stringify(b) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }, [method, p, body ?? null]);
  const skip = (t) => { if (ctx.target().mode === 'mock') { t.skip('profiles and OTA need the daemon (serve.mjs mocks neither)'); return true; } return false; };

  test('profiles: create a COAP profile with a generated provision key and secret; it is listed and saved as ThingsBoard JSON', async (t) => {
    if (skip(t)) return;
    const page = ctx.page();
    await page.goto(`${ctx.target().baseUrl}/#/profiles`);
    await page.waitForSelector('#profiles-table tr[data-name="default"] .badge-default');
    await page.click('#add-profile');
    await page.fill('#profile-name', 'ui-fleet');
    await page.fill('#profile-description', 'Sensors of the browser test');
    assert.equal(await page.inputValue('#profile-transport'), 'COAP');
    await page.selectOption('#profile-power-mode', 'PSM');
    await page.fill('#profile-psm-timer', '20');
    await page.selectOption('#profile-provision-type', 'ALLOW_CREATE_NEW_DEVICES');
    // Choosing a strategy with keys fills both; Generate makes a new one.
    const first = await page.inputValue('#profile-provision-key');
    assert.match(first, /^[A-Za-z0-9]{20}$/);
    await page.click('#gen-provision-key');
    st.key = await page.inputValue('#profile-provision-key');
    st.secret = await page.inputValue('#profile-provision-secret');
    assert.notEqual(st.key, first);
    assert.match(st.secret, /^[A-Za-z0-9]{20}$/);
    await ctx.shot('profile-create');
    await ctx.docShot('profile-edit');
    await page.click('#profile-save');
    const row = 'tr[data-name="ui-fleet"]';
    await page.waitForSelector(`${row} .provisioning:text("Allow creating new devices")`);
    assert.match(await page.textContent(`${row} .transport`), /COAP · PSM/);
    st.profileId = await page.getAttribute(row, 'data-id');
    const p = (await api('GET', `/api/deviceProfile/${st.profileId}`)).body;
    assert.equal(p.provisionDeviceKey, st.key);
    assert.equal(p.provisionType, 'ALLOW_CREATE_NEW_DEVICES');
    assert.equal(p.profileData.provisionConfiguration.provisionDeviceSecret, st.secret);
    assert.equal(p.transportType, 'COAP');
    assert.deepEqual(p.profileData.transportConfiguration.clientSettings,
      { powerMode: 'PSM', psmActivityTimer: 20000, edrxCycle: null, pagingTransmissionWindow: null });
    assert.equal(p.description, 'Sensors of the browser test');
    await ctx.shot('profiles-list');
    await ctx.docShot('profiles');
  });

  test('profiles: edit the power mode to eDRX; the list and the saved profile follow; deleting the default profile shows the server\'s refusal', async (t) => {
    if (skip(t)) return;
    const page = ctx.page();
    await page.click('button[aria-label="Edit ui-fleet"]');
    await page.waitForSelector('#profile-form');
    assert.equal(await page.inputValue('#profile-provision-key'), st.key);
    await page.selectOption('#profile-power-mode', 'E_DRX');
    await page.fill('#profile-edrx-cycle', '40.96');
    await page.fill('#profile-ptw', '5.12');
    await page.click('#profile-save');
    await page.waitForSelector('tr[data-name="ui-fleet"] .power-mode:text("E_DRX")');
    const p = (await api('GET', `/api/deviceProfile/${st.profileId}`)).body;
    assert.deepEqual(p.profileData.transportConfiguration.clientSettings,
      { powerMode: 'E_DRX', psmActivityTimer: null, edrxCycle: 40960, pagingTransmissionWindow: 5120 });
    assert.equal(p.provisionDeviceKey, st.key, 'the key is kept by an edit');
    await page.click('button[aria-label="Delete default"]');
    await page.click('dialog .btn-danger');
    const err = await page.waitForSelector('#profile-error');
    assert.match(await err.textContent(), /Default Device Profile|referenced by the devices/);
    await ctx.shot('profile-delete-refused');
  });

  test('profiles: X.509 chain provisioning from an uploaded CA certificate; a private key is refused in the page', async (t) => {
    if (skip(t)) return;
    const page = ctx.page();
    const dir = path.join(ctx.tmp(), 'ca');
    fs.mkdirSync(dir, { recursive: true });
    const key = path.join(dir, 'ca-key.pem'), cert = path.join(dir, 'ca.pem');
    execFileSync('openssl', ['ecparam', '-out', key, '-name', 'secp256r1', '-genkey']);
    execFileSync('openssl', ['req', '-new', '-key', key, '-x509', '-nodes', '-days', '30', '-out', cert, '-subj', '/CN=ui-test-ca']);
    await page.click('#add-profile');
    await page.fill('#profile-name', 'ui-chain');
    await page.selectOption('#profile-provision-type', 'X509_CERTIFICATE_CHAIN');
    assert.ok(await page.isHidden('#profile-provision-key'), 'no key to type for chain provisioning');
    await page.fill('#profile-ca', fs.readFileSync(key, 'utf8'));
    await page.click('#profile-save');
    await page.waitForSelector('#profile-ca-err:text("private key")');
    await page.setInputFiles('#profile-ca-file', cert);
    await ctx.waitFor(async () => (await page.inputValue('#profile-ca')).includes('BEGIN CERTIFICATE'), 5000, 'the CA file in the text area');
    await page.fill('#profile-cn-regex', '^ui-(.*)$');
    await page.click('#profile-save');
    await page.waitForSelector('tr[data-name="ui-chain"] .provisioning:text("X.509 certificate chain")');
    const id = await page.getAttribute('tr[data-name="ui-chain"]', 'data-id');
    const p = (await api('GET', `/api/deviceProfile/${id}`)).body;
    const pc = p.profileData.provisionConfiguration;
    assert.equal(pc.type, 'X509_CERTIFICATE_CHAIN');
    assert.equal(pc.certificateRegExPattern, '^ui-(.*)$');
    assert.equal(pc.allowCreateNewDevicesByX509Certificate, true);
    assert.match(pc.provisionDeviceSecret, /BEGIN CERTIFICATE/);
    assert.ok(p.provisionDeviceKey, 'the server derives the key from the CA');
  });

  test('OTA: upload a firmware file; the checksum shown is what sha256sum says; download gives the same bytes; assign it to the profile', async (t) => {
    if (skip(t)) return;
    const page = ctx.page();
    const file = path.join(ctx.tmp(), 'ui-fw-1.0.1.bin');
    fs.writeFileSync(file, crypto.randomBytes(3000 + crypto.randomInt(1000)));
    st.sha = execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(/\s+/)[0];
    await page.click('#nav-ota');
    await page.waitForSelector('h1:text("OTA updates")');
    await page.click('#ota-upload');
    await page.setInputFiles('#ota-file', file);
    assert.equal(await page.inputValue('#ota-title'), 'ui-fw-1.0.1'); // taken from the file name
    await page.fill('#ota-title', 'ui-fw');
    await page.fill('#ota-version', '1.0.1');
    await page.selectOption('#ota-profile', { label: 'ui-fleet' });
    await page.click('#ota-submit');
    const row = 'tr[data-title="ui-fw"]';
    const sum = await page.waitForSelector(`${row} .checksum`);
    assert.equal((await sum.textContent()).trim(), st.sha);
    assert.equal((await page.textContent(`${row} .profile`)).trim(), 'ui-fleet');
    st.otaId = await page.getAttribute(row, 'data-id');
    await ctx.shot('ota-uploaded');

    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`button[aria-label="Download ui-fw"]`)]);
    const saved = path.join(ctx.tmp(), 'downloaded.bin');
    await dl.saveAs(saved);
    assert.equal(execFileSync('sha256sum', [saved], { encoding: 'utf8' }).split(/\s+/)[0], st.sha);

    await page.click(`button[aria-label="Assign ui-fw"]`);
    await page.waitForSelector('#assign-profile-note:text("ui-fleet")');
    await page.click('#assign-save');
    await page.waitForSelector(`${row} .badge:text("Profile default")`);
    const p = (await api('GET', `/api/deviceProfile/${st.profileId}`)).body;
    assert.equal(p.firmwareId && p.firmwareId.id, st.otaId);
    await ctx.docShot('ota');
    // An assigned package cannot go: the server's reason is shown.
    await page.click(`button[aria-label="Delete ui-fw"]`);
    await page.click('dialog .btn-danger');
    const err = await page.waitForSelector('#ota-error');
    assert.match(await err.textContent(), /referenced by the device profile cannot be deleted/);
  });

  test('device: move it to the profile, copy the provision key, and watch fw_state and the running version as tools/ota-device.sh takes the update over CoAP', async (t) => {
    if (skip(t)) return;
    const page = ctx.page();
    const token = `FW${Date.now().toString(36)}`;
    const id = await ctx.createDevice('ui-fw-device');
    await page.fill('#token-input', token);
    await page.click('#cred-save');
    await page.waitForSelector('.toast:text("Credentials saved")');
    await page.click('#tab-firmware');
    await page.waitForSelector('#device-profile');
    await page.selectOption('#device-profile', { label: 'ui-fleet' });
    await page.click('#device-profile-save');
    await page.waitForSelector('#device-provision-key');
    assert.equal(await page.textContent('#device-provision-key'), st.key);
    assert.equal(await page.textContent('#dev-type'), 'ui-fleet', 'the header names the new profile');
    const d = (await api('GET', `/api/device/${id}`)).body;
    assert.equal(d.deviceProfileId.id, st.profileId);
    await page.click('#copy-provision-key');
    await page.waitForSelector('.toast:text("Copied to clipboard")');
    // The profile's firmware is the device's target (shared fw_* attributes the server sets).
    await page.waitForSelector('#fw-target:text("ui-fw 1.0.1")', { timeout: 10000 });
    await page.waitForSelector('#fw-state').then(() => ctx.shot('device-firmware-queued'));
    await ctx.dev().telemetryToken(token, { fw_state: 'DOWNLOADING', current_fw_title: 'ui-fw', current_fw_version: '1.0.0' });
    await page.waitForSelector('#fw-state-badge:text("DOWNLOADING")', { timeout: 10000 });
    assert.equal(await page.textContent('#fw-current'), 'ui-fw 1.0.0');
    const prog = await page.$eval('#fw-progress', (e) => [e.value, e.max]);
    assert.deepEqual(prog, [2, 6]);
    // Then the scripted device (tools/ota-device.sh) takes the update for real: it reads the
    // shared fw_* attributes, downloads the image block-wise over CoAP, checks its SHA-256 and
    // reports DOWNLOADING .. UPDATED; the page follows without reload.
    const r = await run(path.join(ROOT, 'tools/ota-device.sh'), ['--host', '127.0.0.1', '--port', String(ctx.target().coapPort), '--token', token, '--once', '--block', '512', '--state', ctx.tmp()]);
    assert.equal(r.code, 0, `ota-device.sh: ${r.out}`);
    await page.waitForSelector('#fw-state-badge:text("UPDATED")', { timeout: 10000 });
    assert.equal(await page.textContent('#fw-current'), 'ui-fw 1.0.1');
    await ctx.shot('device-firmware-updated');
    await ctx.docShot('device-firmware', { fullPage: true });
    // The profile now has a device: deleting it is refused with ThingsBoard's reason.
    await page.click('#nav-profiles');
    await page.click('button[aria-label="Delete ui-fleet"]');
    await page.click('dialog .btn-danger');
    await page.waitForSelector('#profile-error:text("referenced by the devices cannot be deleted")');
    assert.ok(await page.$('tr[data-name="ui-fleet"]'), 'the profile is still listed');
  });

  test('Add device puts the new device in the profile chosen in the dialog', async (t) => {
    if (skip(t)) return;
    const page = ctx.page();
    await page.goto(`${ctx.target().baseUrl}/#/devices`);
    await page.click('#add-device');
    await page.fill('dialog input[name=name]', 'ui-fleet-2');
    assert.equal(await page.$eval('#device-new-profile', (s) => s.selectedOptions[0].textContent), 'default');
    await page.selectOption('#device-new-profile', { label: 'ui-fleet' });
    await page.click('dialog button[type=submit]');
    await page.waitForURL(/#\/device\/[0-9a-f-]+\/credentials/);
    const id = page.url().match(/#\/device\/([0-9a-f-]+)/)[1];
    assert.equal((await api('GET', `/api/device/${id}`)).body.deviceProfileId.id, st.profileId);
    assert.equal(await page.textContent('#dev-type'), 'ui-fleet');
  });

  test('phone-sized screen: the profiles and OTA pages fit without horizontal scrolling', async (t) => {
    if (skip(t)) return;
    const phone = await ctx.page().context().newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    for (const [route, sel] of [['profiles', '#profiles-table'], ['ota', '#ota-table']]) {
      await phone.goto(`${ctx.target().baseUrl}/#/${route}`);
      await phone.waitForSelector(sel);
      assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= 391), `${route} fits`);
      await ctx.shot(`phone-${route}`, phone);
    }
    await phone.close();
  });
}
