// tab-firmware.js — a device's profile and firmware: its profile (change it; the provision key
// to copy where the profile provisions), the firmware / software it should run (its own package
// or its profile's), and the update as the device reports it — ThingsBoard's fw_state progress
// (QUEUED .. UPDATED / FAILED) and current_fw_* telemetry against the target in the shared
// fw_* attributes, live from the page's event stream.

import { h, clear, fmtTime, fmtValue, spinner, errorBox, toast, field, copyButton, copyText } from './dom.js';
import { devices, profiles, ota, telemetry } from './api.js';
import { provisionLabel } from './profiles.js';

// ThingsBoard's OtaPackageUpdateStatus, in the order a device walks through them.
const STATES = ['QUEUED', 'INITIATED', 'DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED'];
const KINDS = [{ p: 'fw', key: 'firmwareId', type: 'FIRMWARE', label: 'Firmware' }, { p: 'sw', key: 'softwareId', type: 'SOFTWARE', label: 'Software' }];

export function firmwareTab(panel, ctx) {
  const { id } = ctx;
  let alive = true;
  let device = ctx.device;
  let profile = null;
  const ts = new Map();    // telemetry key -> {ts, value}
  const shared = new Map(); // shared attribute key -> value
  const stateBoxes = {};    // 'fw' | 'sw' -> element

  async function load() {
    clear(panel, spinner('Loading profile and firmware…'));
    try {
      device = await devices.get(id);
      const keys = KINDS.flatMap(({ p }) => [`${p}_state`, `${p}_error`, `current_${p}_title`, `current_${p}_version`, `target_${p}_title`, `target_${p}_version`]);
      const [prof, all, latest, attrs] = await Promise.all([
        device.deviceProfileId ? profiles.get(device.deviceProfileId.id).catch(() => null) : null,
        profiles.all(), telemetry.latest(id, keys), telemetry.attributes(id, 'SHARED_SCOPE')]);
      if (!alive) return;
      profile = prof;
      for (const [k, arr] of Object.entries(latest || {})) if (arr && arr.length) ts.set(k, arr[0]);
      for (const a of attrs || []) shared.set(a.key, a.value);
      render(all);
    } catch (e) { if (alive) clear(panel, errorBox(e, load)); }
  }

  function render(allProfiles) {
    const sel = h('select', { id: 'device-profile', name: 'deviceProfileId' },
      allProfiles.map((p) => h('option', { value: p.id.id, selected: device.deviceProfileId?.id === p.id.id }, p.default ? `${p.name} (default)` : p.name)));
    const fSel = field('Device profile', sel, 'The profile sets the power-saving settings, provisioning and the default firmware.');
    const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'device-profile-save' }, 'Save profile');
    const profForm = h('form', { novalidate: true, class: 'inline-form' }, fSel, h('div', { class: 'actions' }, save));
    profForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      fSel.setError('');
      if (sel.value === device.deviceProfileId?.id) return;
      save.disabled = true;
      try {
        // Packages belong to one profile: the device's own ones would not fit the new profile.
        device = await devices.save({ ...device, deviceProfileId: { entityType: 'DEVICE_PROFILE', id: sel.value }, firmwareId: null, softwareId: null });
        toast('Profile saved');
        if (ctx.onSaved) ctx.onSaved(device);
        load();
      } catch (ex) { fSel.setError(ex.message); save.disabled = false; }
    });

    const prov = profile && profile.provisionType && profile.provisionType !== 'DISABLED'
      ? h('dl', { class: 'kv', id: 'device-provisioning' },
        h('dt', {}, 'Provisioning'), h('dd', {}, provisionLabel(profile.provisionType)),
        profile.provisionDeviceKey ? [h('dt', {}, 'Provision key'), h('dd', {}, h('span', { class: 'mono break', id: 'device-provision-key' }, profile.provisionDeviceKey),
          h('button', { type: 'button', class: 'btn btn-small', id: 'copy-provision-key', onclick: () => copyText(profile.provisionDeviceKey) }, 'Copy key'))] : null,
        profile.profileData?.provisionConfiguration?.provisionDeviceSecret && profile.provisionType !== 'X509_CERTIFICATE_CHAIN'
          ? [h('dt', {}, 'Provision secret'), h('dd', {}, h('span', { class: 'muted' }, '••••••'), copyButton(() => profile.profileData.provisionConfiguration.provisionDeviceSecret, 'Copy secret'))] : null)
      : h('p', { class: 'muted small' }, 'This profile does not provision devices.');

    const assign = h('div', { class: 'grid-2 grid-even' });
    for (const k of KINDS) assign.append(packageField(k));

    const states = h('div', { class: 'fw-states' });
    for (const k of KINDS) { stateBoxes[k.p] = h('section', { class: 'fw-state', id: `${k.p}-state` }); states.append(stateBoxes[k.p]); }
    clear(panel,
      h('div', { class: 'tab-head' }, h('h2', { class: 'tab-title' }, 'Profile'), h('div', { class: 'spacer' }),
        profile ? h('a', { href: '#/profiles', class: 'small' }, 'All profiles ›') : null),
      h('div', { class: 'grid-2' }, profForm, prov),
      h('h2', { class: 'tab-title section-gap' }, 'Firmware and software'), assign, states);
    for (const k of KINDS) renderState(k);
  }

  // The package a device should run: its own, or (empty select) its profile's default.
  function packageField(k) {
    const own = device[k.key];
    const profDefault = profile && profile[k.key];
    const sel = h('select', { id: `device-${k.p}`, name: k.key }, h('option', { value: '' }, profDefault ? 'The profile’s default' : 'None'));
    const f = field(k.label, sel, profDefault ? 'A package chosen here wins over the profile’s default.' : null);
    if (device.deviceProfileId) {
      ota.forProfile(device.deviceProfileId.id, k.type).then((pg) => {
        for (const o of pg.data || []) {
          const isDefault = profDefault && profDefault.id === o.id.id;
          sel.append(h('option', { value: o.id.id, selected: !!(own && own.id === o.id.id) }, `${o.title} ${o.version}${isDefault ? ' (profile default)' : ''}`));
        }
      }).catch(() => {});
    }
    sel.addEventListener('change', async () => {
      f.setError('');
      try {
        device = await devices.save({ ...device, [k.key]: sel.value ? { entityType: 'OTA_PACKAGE', id: sel.value } : null });
        toast(`${k.label} saved`);
      } catch (ex) { f.setError(ex.message); }
    });
    return f;
  }

  function renderState(k) {
    const box = stateBoxes[k.p];
    if (!box) return;
    const v = (key) => ts.get(key)?.value;
    const state = v(`${k.p}_state`);
    const targetTitle = shared.get(`${k.p}_title`) ?? v(`target_${k.p}_title`);
    const targetVersion = shared.get(`${k.p}_version`) ?? v(`target_${k.p}_version`);
    const step = STATES.indexOf(state);
    const row = (label, value, idSuffix) => [h('dt', {}, label), h('dd', { id: `${k.p}-${idSuffix}` }, value)];
    const cur = v(`current_${k.p}_title`) !== undefined || v(`current_${k.p}_version`) !== undefined
      ? `${fmtValue(v(`current_${k.p}_title`) ?? '')} ${fmtValue(v(`current_${k.p}_version`) ?? '')}`.trim() : '—';
    clear(box, h('h3', {}, k.label, ' ',
      state ? h('span', { class: `badge fw-badge ${state === 'UPDATED' ? 'badge-on' : state === 'FAILED' ? 'badge-err' : 'badge-warn'}`, id: `${k.p}-state-badge` }, state)
        : h('span', { class: 'badge', id: `${k.p}-state-badge` }, 'No update reported')),
    state && state !== 'FAILED'
      ? h('progress', { max: STATES.length - 1, value: Math.max(0, step), 'aria-label': `${k.label} update progress`, id: `${k.p}-progress` }) : null,
    h('dl', { class: 'kv' },
      row('Running', cur, 'current'),
      row('Target', targetTitle !== undefined ? `${fmtValue(targetTitle)} ${fmtValue(targetVersion ?? '')}`.trim() : '—', 'target'),
      shared.has(`${k.p}_size`) ? row('Size', `${shared.get(`${k.p}_size`)} bytes`, 'size') : null,
      shared.has(`${k.p}_checksum`) ? row(`${shared.get(`${k.p}_checksum_algorithm`) || 'Checksum'}`, h('span', { class: 'mono small break' }, String(shared.get(`${k.p}_checksum`))), 'checksum') : null,
      v(`${k.p}_error`) !== undefined && state === 'FAILED' ? row('Error', fmtValue(v(`${k.p}_error`)), 'error') : null,
      ts.get(`${k.p}_state`) ? row('Last report', fmtTime(ts.get(`${k.p}_state`).ts), 'reported') : null));
  }

  load();
  return {
    onEvent(type, data) {
      const touched = new Set();
      if (type === 'telemetry' && data.values) {
        for (const [key, arr] of Object.entries(data.values)) {
          const m = key.match(/^(?:current_|target_)?(fw|sw)_/);
          if (!m) continue;
          for (const p of arr || []) { const c = ts.get(key); if (!c || p.ts >= c.ts) { ts.set(key, p); touched.add(m[1]); } }
        }
      } else if (type === 'attributes' && data.scope === 'SHARED_SCOPE') {
        for (const [key, val] of Object.entries(data.values || {})) { const m = key.match(/^(fw|sw)_/); if (m) { shared.set(key, val); touched.add(m[1]); } }
        for (const key of data.deleted || []) { const m = key.match(/^(fw|sw)_/); if (m) { shared.delete(key); touched.add(m[1]); } }
      }
      for (const p of touched) renderState(KINDS.find((k) => k.p === p));
    },
    destroy() { alive = false; },
  };
}

