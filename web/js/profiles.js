// profiles.js — the device profiles page: a paged list (search, page size in the URL), and a
// create / edit dialog for what coaphub does with a profile: CoAP power-saving settings,
// provisioning (key and secret, or a CA certificate for X.509 chain provisioning) and the
// default firmware / software. Bodies are ThingsBoard's DeviceProfile JSON; an edit starts from
// the profile as the server sent it, so fields this page does not show are kept.

import { h, clear, fmtTime, modal, confirmDialog, spinner, errorBox, toast, field, copyButton, randomKey, pager } from './dom.js';
import { profiles, ota } from './api.js';

export const PROVISION_TYPES = [
  ['DISABLED', 'Disabled'],
  ['ALLOW_CREATE_NEW_DEVICES', 'Allow creating new devices'],
  ['CHECK_PRE_PROVISIONED_DEVICES', 'Check pre-provisioned devices'],
  ['X509_CERTIFICATE_CHAIN', 'X.509 certificate chain'],
];
const POWER_MODES = [['PSM', 'PSM (power saving mode)'], ['DRX', 'DRX (discontinuous reception)'], ['E_DRX', 'eDRX (extended DRX)']];
// ThingsBoard's defaults for a new COAP profile's timers (milliseconds).
const TIMER_DEFAULTS = { psmActivityTimer: 10000, edrxCycle: 81000, pagingTransmissionWindow: 10000 };

export const provisionLabel = (t) => (PROVISION_TYPES.find(([v]) => v === t) || [t, t || 'Disabled'])[1];
const otaRef = (id) => (id ? { entityType: 'OTA_PACKAGE', id } : null);

export function profilesView(root, { query }) {
  const st = {
    page: Math.max(0, parseInt(query.get('page') || '0', 10) || 0),
    pageSize: [10, 20, 50, 100].includes(+query.get('size')) ? +query.get('size') : 20,
    text: query.get('q') || '',
  };
  let alive = true;
  let ctl = null;
  const search = h('input', { type: 'search', id: 'profile-search', placeholder: 'Search profiles by name', 'aria-label': 'Search profiles', value: st.text });
  let debounce;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { st.text = search.value.trim(); st.page = 0; sync(); }, 250);
  });
  const body = h('div', { class: 'card-body' });
  root.append(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Device profiles'),
      h('div', { class: 'toolbar' }, search,
        h('button', { type: 'button', class: 'btn btn-primary', id: 'add-profile', onclick: () => edit(null) }, '+ Add profile'))),
    h('section', { class: 'card' }, body));

  function sync() {
    const q = new URLSearchParams();
    if (st.page) q.set('page', st.page);
    if (st.pageSize !== 20) q.set('size', st.pageSize);
    if (st.text) q.set('q', st.text);
    const s = q.toString();
    history.replaceState(null, '', `#/profiles${s ? `?${s}` : ''}`);
    load();
  }

  async function load() {
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const signal = ctl.signal;
    if (!body.querySelector('table')) clear(body, spinner('Loading profiles…'));
    try {
      const pg = await profiles.list({ page: st.page, pageSize: st.pageSize, textSearch: st.text }, signal);
      if (!alive || signal.aborted) return;
      if (pg.totalPages && st.page >= pg.totalPages) { st.page = pg.totalPages - 1; sync(); return; }
      render(pg);
    } catch (e) {
      if (e.name !== 'AbortError' && alive) clear(body, errorBox(e, load));
    }
  }

  function render(pg) {
    const rows = pg.data || [];
    if (!rows.length) {
      clear(body, h('div', { class: 'empty' }, h('p', {}, st.text ? `No profile matches “${st.text}”.` : 'No profiles.')));
      return;
    }
    clear(body,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'profiles-table' },
        h('thead', {}, h('tr', {}, ['Name', 'Transport', 'Provisioning', 'Description', 'Created'].map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', {}, rows.map((p) => {
          const cs = p.profileData?.transportConfiguration?.clientSettings;
          return h('tr', { dataset: { id: p.id.id, name: p.name } },
            h('td', { 'data-label': 'Name' }, h('span', { class: 'dev-name' }, p.name), p.default ? h('span', { class: 'badge badge-on badge-default' }, 'Default') : null),
            h('td', { 'data-label': 'Transport', class: 'transport' }, p.transportType || 'DEFAULT',
              p.transportType === 'COAP' && cs && cs.powerMode ? h('span', { class: 'muted small power-mode' }, ` · ${cs.powerMode}`) : null),
            h('td', { 'data-label': 'Provisioning', class: 'provisioning' }, provisionLabel(p.provisionType)),
            h('td', { 'data-label': 'Description', class: 'muted' }, p.description || ''),
            h('td', { 'data-label': 'Created' }, fmtTime(p.createdTime)),
            h('td', { class: 'row-actions' },
              h('button', { type: 'button', class: 'btn btn-small', onclick: () => edit(p), 'aria-label': `Edit ${p.name}` }, 'Edit'),
              p.default ? null : h('button', { type: 'button', class: 'btn btn-small', onclick: () => makeDefault(p), 'aria-label': `Make ${p.name} default` }, 'Make default'),
              h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', onclick: () => remove(p), 'aria-label': `Delete ${p.name}` }, 'Delete')));
        })))),
      pager(pg, st, 'profile', sync));
  }

  async function edit(p) {
    let full = null;
    if (p) {
      try { full = await profiles.get(p.id.id); } catch (e) { toast(e.message, 'err'); return; }
    }
    const saved = await profileDialog(full);
    if (saved) { toast(`Profile “${saved.name}” saved`); load(); }
  }

  async function makeDefault(p) {
    try { await profiles.setDefault(p.id.id); toast(`“${p.name}” is now the default profile`); load(); } catch (e) { toast(e.message, 'err'); }
  }

  async function remove(p) {
    if (!(await confirmDialog('Delete profile?', `The device profile “${p.name}” will be deleted. Profiles that devices use, and the default profile, cannot be deleted.`))) return;
    try {
      await profiles.remove(p.id.id);
      toast(`Deleted “${p.name}”`);
      load();
    } catch (e) {
      // ThingsBoard's reasons ("The device profile referenced by the devices cannot be deleted!",
      // "Deletion of Default Device Profile is prohibited!") are shown as they are.
      toast(e.message, 'err');
      body.prepend(h('div', { class: 'error-box', role: 'alert', id: 'profile-error' }, `Could not delete “${p.name}”: ${e.message}`));
    }
  }

  load();
  return () => { alive = false; if (ctl) ctl.abort(); clearTimeout(debounce); };
}

// ms <-> the seconds shown in the form (the profile keeps milliseconds, as ThingsBoard does).
const toSec = (ms) => (ms === null || ms === undefined ? '' : String(ms / 1000));
function toMs(text) {
  const t = String(text).trim();
  if (t === '') return null;
  const v = Number(t);
  return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : NaN;
}

// The create / edit dialog. Resolves with the saved profile, or null when cancelled.
function profileDialog(p) {
  const isNew = !p;
  const pd = (p && p.profileData) || {};
  const tc = pd.transportConfiguration || {};
  const cs = tc.clientSettings || {};
  const pc = pd.provisionConfiguration || {};
  const provType = (p && p.provisionType) || pc.type || 'DISABLED';

  const name = h('input', { name: 'name', id: 'profile-name', required: true, maxlength: 255, autocomplete: 'off', value: p ? p.name : '' });
  const desc = h('textarea', { name: 'description', id: 'profile-description', rows: 2, maxlength: 1024 });
  desc.value = (p && p.description) || '';
  const isDefault = h('input', { type: 'checkbox', id: 'profile-default', checked: !!(p && p.default), disabled: !!(p && p.default) });

  // Transport: DEFAULT or COAP with its power-saving settings.
  const transport = h('select', { id: 'profile-transport', name: 'transportType' },
    [['DEFAULT', 'Default (CoAP with JSON)'], ['COAP', 'CoAP with power-saving settings']].map(([v, l]) => h('option', { value: v, selected: (p ? p.transportType : 'COAP') === v }, l)));
  if (p && !['DEFAULT', 'COAP'].includes(p.transportType)) transport.append(h('option', { value: p.transportType, selected: true }, p.transportType));
  const powerMode = h('select', { id: 'profile-power-mode', name: 'powerMode' },
    POWER_MODES.map(([v, l]) => h('option', { value: v, selected: (cs.powerMode || 'DRX') === v }, l)));
  const timer = (k, id) => h('input', { id, name: k, type: 'number', min: 0, step: 'any', inputmode: 'decimal',
    value: toSec(cs[k] ?? (isNew ? TIMER_DEFAULTS[k] : null)) });
  const psm = timer('psmActivityTimer', 'profile-psm-timer');
  const edrx = timer('edrxCycle', 'profile-edrx-cycle');
  const ptw = timer('pagingTransmissionWindow', 'profile-ptw');
  const fPsm = field('PSM activity timer (s)', psm, 'How long the device stays reachable after an uplink before it sleeps.');
  const fEdrx = field('eDRX cycle (s)', edrx, 'The device listens once per cycle.');
  const fPtw = field('Paging transmission window (s)', ptw, 'How long it listens each time.');
  const coapBox = h('fieldset', { class: 'subform', id: 'profile-coap' }, h('legend', {}, 'CoAP power saving'),
    field('Power mode', powerMode, 'Downlinks (attribute updates, RPC) to a sleeping device wait for its next uplink.'), fPsm, fEdrx, fPtw);

  // Provisioning.
  const strategy = h('select', { id: 'profile-provision-type', name: 'provisionType' },
    PROVISION_TYPES.map(([v, l]) => h('option', { value: v, selected: provType === v }, l)));
  const key = h('input', { id: 'profile-provision-key', name: 'provisionDeviceKey', class: 'mono', autocomplete: 'off', spellcheck: false, maxlength: 255,
    value: provType !== 'X509_CERTIFICATE_CHAIN' ? (p && p.provisionDeviceKey) || '' : '' });
  const secret = h('input', { id: 'profile-provision-secret', name: 'provisionDeviceSecret', class: 'mono', autocomplete: 'off', spellcheck: false, maxlength: 255,
    value: provType !== 'X509_CERTIFICATE_CHAIN' ? pc.provisionDeviceSecret || '' : '' });
  const gen = (input, id) => h('button', { type: 'button', class: 'btn btn-small', id, onclick: () => { input.value = randomKey(20); } }, 'Generate');
  const fKey = field('Provision device key', key);
  fKey.querySelector('input').after(h('div', { class: 'inline-actions' }, gen(key, 'gen-provision-key'), copyButton(() => key.value)));
  const fSecret = field('Provision device secret', secret);
  fSecret.querySelector('input').after(h('div', { class: 'inline-actions' }, gen(secret, 'gen-provision-secret'), copyButton(() => secret.value)));
  const keysBox = h('div', { id: 'profile-keys' }, fKey, fSecret,
    h('p', { class: 'hint' }, 'A device sends both to POST /api/v1/provision to get its credentials.'));

  const ca = h('textarea', { id: 'profile-ca', name: 'ca', rows: 6, class: 'mono', spellcheck: false, placeholder: '-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----' });
  ca.value = provType === 'X509_CERTIFICATE_CHAIN' ? pc.provisionDeviceSecret || '' : '';
  const caFile = h('input', { type: 'file', id: 'profile-ca-file', accept: '.pem,.crt,.cer,application/x-pem-file', class: 'file' });
  const fCa = field('CA certificate (PEM)', ca, 'Devices whose certificate this CA signed are created on their first DTLS handshake. Only certificates, never a private key.');
  caFile.addEventListener('change', async () => {
    const fl = caFile.files && caFile.files[0];
    if (!fl) return;
    if (fl.size > 256 * 1024) { fCa.setError('That file is too large to be a certificate chain (over 256 KiB).'); return; }
    ca.value = await fl.text();
    fCa.setError('');
  });
  fCa.querySelector('textarea').after(h('div', { class: 'inline-actions' }, h('label', { class: 'btn btn-small', for: 'profile-ca-file' }, 'Upload file…'), caFile));
  const cnRegex = h('input', { id: 'profile-cn-regex', name: 'certificateRegExPattern', class: 'mono', autocomplete: 'off', spellcheck: false, value: pc.certificateRegExPattern || '(.*)' });
  const allowNew = h('input', { type: 'checkbox', id: 'profile-allow-x509', checked: pc.allowCreateNewDevicesByX509Certificate !== false });
  const chainKey = provType === 'X509_CERTIFICATE_CHAIN' && p && p.provisionDeviceKey
    ? h('p', { class: 'hint' }, 'Provision key (from the CA): ', h('span', { class: 'mono break' }, p.provisionDeviceKey)) : null;
  const chainBox = h('div', { id: 'profile-chain' }, fCa,
    field('Device name from the certificate CN (regular expression)', cnRegex, 'Group 1 of the match is the device name, e.g. ^sensor-(.*)$.'),
    h('label', { class: 'check' }, allowNew, 'Create new devices from certificates signed by this CA'), chainKey);

  // Default firmware / software: packages of this profile with a file (none yet for a new one).
  const fwSel = h('select', { id: 'profile-firmware', name: 'firmwareId' }, h('option', { value: '' }, isNew ? 'Save the profile first, then upload packages for it' : 'None'));
  const swSel = h('select', { id: 'profile-software', name: 'softwareId' }, h('option', { value: '' }, isNew ? 'Save the profile first, then upload packages for it' : 'None'));
  if (isNew) { fwSel.disabled = true; swSel.disabled = true; } else {
    for (const [sel, type, cur] of [[fwSel, 'FIRMWARE', p.firmwareId], [swSel, 'SOFTWARE', p.softwareId]]) {
      ota.forProfile(p.id.id, type).then((pg) => {
        for (const o of pg.data || []) sel.append(h('option', { value: o.id.id, selected: !!(cur && cur.id === o.id.id) }, `${o.title} ${o.version}`));
        if (cur && !sel.value) sel.append(h('option', { value: cur.id, selected: true }, cur.id)); // assigned but not listed
      }).catch(() => {});
    }
  }

  function showParts() {
    coapBox.hidden = transport.value !== 'COAP';
    fPsm.hidden = powerMode.value !== 'PSM';
    fEdrx.hidden = fPtw.hidden = powerMode.value !== 'E_DRX';
    keysBox.hidden = !['ALLOW_CREATE_NEW_DEVICES', 'CHECK_PRE_PROVISIONED_DEVICES'].includes(strategy.value);
    chainBox.hidden = strategy.value !== 'X509_CERTIFICATE_CHAIN';
  }
  transport.addEventListener('change', showParts);
  powerMode.addEventListener('change', showParts);
  strategy.addEventListener('change', () => {
    // A fresh strategy with keys gets generated ones: the two most common clicks saved.
    if (['ALLOW_CREATE_NEW_DEVICES', 'CHECK_PRE_PROVISIONED_DEVICES'].includes(strategy.value)) {
      if (!key.value) key.value = randomKey(20);
      if (!secret.value) secret.value = randomKey(20);
    }
    showParts();
  });
  showParts();

  const fName = field('Name', name);
  const formErr = h('div', { class: 'form-error', role: 'alert', id: 'profile-form-error' });

  function body() {
    const out = p ? structuredClone(p) : { type: 'DEFAULT', profileData: { configuration: { type: 'DEFAULT' } } };
    out.name = name.value.trim();
    out.description = desc.value.trim() || null;
    if (!p) out.default = false;
    out.transportType = transport.value;
    out.profileData = out.profileData || {};
    if (transport.value === 'COAP') {
      const clientSettings = { powerMode: powerMode.value, psmActivityTimer: null, edrxCycle: null, pagingTransmissionWindow: null };
      if (powerMode.value === 'PSM') clientSettings.psmActivityTimer = toMs(psm.value);
      if (powerMode.value === 'E_DRX') { clientSettings.edrxCycle = toMs(edrx.value); clientSettings.pagingTransmissionWindow = toMs(ptw.value); }
      out.profileData.transportConfiguration = {
        ...(tc.type === 'COAP' ? tc : {}), type: 'COAP',
        coapDeviceTypeConfiguration: tc.coapDeviceTypeConfiguration || { coapDeviceType: 'DEFAULT', transportPayloadTypeConfiguration: { transportPayloadType: 'JSON' } },
        clientSettings,
      };
    } else if (transport.value !== (p && p.transportType)) {
      out.profileData.transportConfiguration = { type: transport.value };
    }
    const t = strategy.value;
    out.provisionType = t;
    if (t === 'DISABLED') {
      out.provisionDeviceKey = null;
      out.profileData.provisionConfiguration = { type: t, provisionDeviceSecret: null };
    } else if (t === 'X509_CERTIFICATE_CHAIN') {
      out.provisionDeviceKey = null; // the server derives it from the CA certificate
      out.profileData.provisionConfiguration = { type: t, provisionDeviceSecret: ca.value.trim() ? `${ca.value.trim()}\n` : null,
        certificateRegExPattern: cnRegex.value.trim() || '(.*)', allowCreateNewDevicesByX509Certificate: allowNew.checked };
    } else {
      out.provisionDeviceKey = key.value.trim();
      out.profileData.provisionConfiguration = { type: t, provisionDeviceKey: key.value.trim(), provisionDeviceSecret: secret.value.trim() };
    }
    if (!isNew) { out.firmwareId = otaRef(fwSel.value); out.softwareId = otaRef(swSel.value); }
    return out;
  }

  function check(b) {
    fName.setError(''); fCa.setError(''); fKey.setError(''); fSecret.setError(''); formErr.textContent = '';
    for (const f of [fPsm, fEdrx, fPtw]) f.setError('');
    if (!b.name) { fName.setError('A profile needs a name.'); return false; }
    const cset = b.profileData.transportConfiguration?.clientSettings || {};
    for (const [k, f] of [['psmActivityTimer', fPsm], ['edrxCycle', fEdrx], ['pagingTransmissionWindow', fPtw]]) {
      if (Number.isNaN(cset[k])) { f.setError('A number of seconds, 0 or more.'); return false; }
    }
    if (['ALLOW_CREATE_NEW_DEVICES', 'CHECK_PRE_PROVISIONED_DEVICES'].includes(b.provisionType)) {
      if (!key.value.trim()) { fKey.setError('Provisioning needs a key — use Generate.'); return false; }
      if (!secret.value.trim()) { fSecret.setError('Provisioning needs a secret — use Generate.'); return false; }
    }
    if (b.provisionType === 'X509_CERTIFICATE_CHAIN') {
      if (!ca.value.trim()) { fCa.setError('Paste the CA certificate or upload its .pem file.'); return false; }
      if (/PRIVATE KEY-----/.test(ca.value)) { fCa.setError('This is a private key. Paste the CA certificate instead; the key stays with the CA.'); return false; }
    }
    return true;
  }

  return modal(isNew ? 'Add device profile' : `Edit profile “${p.name}”`, (done) => {
    const f = h('form', { novalidate: true, id: 'profile-form' }, fName,
      field('Description', desc),
      h('label', { class: 'check' }, isDefault, p && p.default ? 'Default profile (devices without a profile get it)' : 'Make this the default profile'),
      h('h3', {}, 'Transport'), field('Transport type', transport), coapBox,
      h('h3', {}, 'Device provisioning'), field('Strategy', strategy), keysBox, chainBox,
      h('h3', {}, 'Firmware and software'),
      h('div', { class: 'grid-2 grid-even' }, field('Default firmware', fwSel), field('Default software', swSel)),
      formErr,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn btn-primary', id: 'profile-save' }, isNew ? 'Create' : 'Save')));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      const b = body();
      if (!check(b)) return;
      const btn = f.querySelector('[type=submit]');
      btn.disabled = true;
      try {
        let saved = await profiles.save(b);
        if (isDefault.checked && !saved.default) saved = (await profiles.setDefault(saved.id.id)) || saved;
        done(saved);
      } catch (ex) {
        btn.disabled = false;
        const m = ex.message;
        if (/name/i.test(m)) fName.setError(m);
        else if (/certificate|CA\b|RegEx/i.test(m) && !chainBox.hidden) fCa.setError(m);
        else if (/key/i.test(m) && !keysBox.hidden) fKey.setError(m);
        else if (/secret/i.test(m) && !keysBox.hidden) fSecret.setError(m);
        else formErr.textContent = m;
      }
    });
    return f;
  }, { wide: true });
}
