// tab-credentials.js — the "Manage credentials" dialog of ThingsBoard as a tab: access token
// (show, copy, generate, set) or X.509 certificate (paste or upload a PEM). Server errors are
// shown next to the field; after saving a certificate its fingerprint, subject and validity.

import { h, clear, fmtTime, spinner, errorBox, toast, copyButton, field } from './dom.js';
import { devices } from './api.js';

const TOKEN_CHARS = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

function newToken(n = 20) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => TOKEN_CHARS[x % TOKEN_CHARS.length]).join('');
}

export function credentialsTab(panel, { id }) {
  let alive = true;
  let cred = null;
  let type = 'ACCESS_TOKEN';

  async function load() {
    clear(panel, spinner('Loading credentials…'));
    try {
      cred = await devices.credentials(id);
      if (!alive) return;
      type = cred.credentialsType === 'X509_CERTIFICATE' ? 'X509_CERTIFICATE' : 'ACCESS_TOKEN';
      render();
    } catch (e) { if (alive) clear(panel, errorBox(e, load)); }
  }

  function render() {
    const form = h('div', { class: 'cred-form' });
    const radios = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Credential type' },
      [['ACCESS_TOKEN', 'Access token'], ['X509_CERTIFICATE', 'X.509 certificate']].map(([v, l]) =>
        h('label', { class: `seg ${type === v ? 'seg-on' : ''}` },
          h('input', { type: 'radio', name: 'cred-type', value: v, checked: type === v, class: 'sr-only',
            onchange: () => { type = v; render(); } }), l)));
    clear(panel, h('div', { class: 'tab-head' }, h('h2', { class: 'tab-title' }, 'Device credentials'), h('div', { class: 'spacer' }), radios), form);
    if (type === 'ACCESS_TOKEN') tokenForm(form); else x509Form(form);
  }

  async function save(updated, f) {
    const btn = f.querySelector('button[type=submit]');
    btn.disabled = true;
    const label = btn.textContent;
    btn.textContent = 'Saving…';
    try {
      cred = await devices.saveCredentials(updated);
      toast('Credentials saved');
      return true;
    } catch (e) {
      f.fieldWrap.setError(e.status === 400 || e.status === 409 ? e.message : `Could not save: ${e.message}`);
      return false;
    } finally {
      btn.disabled = false;
      btn.textContent = label;
    }
  }

  function tokenForm(box) {
    const current = cred.credentialsType === 'ACCESS_TOKEN' ? cred.credentialsId || '' : '';
    const input = h('input', { id: 'token-input', name: 'token', type: 'password', autocomplete: 'off', spellcheck: false, maxlength: 128, class: 'mono', value: current });
    const show = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': 'false', onclick: () => {
      const on = input.type === 'password';
      input.type = on ? 'text' : 'password';
      show.textContent = on ? 'Hide' : 'Show';
      show.setAttribute('aria-pressed', String(on));
    } }, 'Show');
    const wrap = field('Access token', input, 'Devices put this token in the CoAP path: /api/v1/<token>/telemetry.');
    wrap.querySelector('input').after(h('div', { class: 'inline-actions' }, show, copyButton(() => input.value),
      h('button', { type: 'button', class: 'btn btn-small', id: 'token-generate', onclick: () => { input.value = newToken(); input.type = 'text'; show.textContent = 'Hide'; } }, 'Generate')));
    const f = h('form', { novalidate: true }, wrap,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary', id: 'cred-save' }, 'Save token')));
    f.fieldWrap = wrap;
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      wrap.setError('');
      const v = input.value.trim();
      if (!v) { wrap.setError('The token cannot be empty — use Generate for a random one.'); return; }
      if (/[\s/?#]/.test(v)) { wrap.setError('Use letters, digits and - _ . only: the token becomes part of a URL path.'); return; }
      if (await save({ ...cred, credentialsType: 'ACCESS_TOKEN', credentialsId: v, credentialsValue: null }, f) && alive) render();
    });
    box.append(f);
  }

  function x509Form(box) {
    const pem = h('textarea', { id: 'pem-input', name: 'pem', rows: 10, spellcheck: false, class: 'mono',
      placeholder: '-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----' });
    if (cred.credentialsType === 'X509_CERTIFICATE' && cred.credentialsValue) pem.value = cred.credentialsValue;
    const file = h('input', { type: 'file', id: 'pem-file', accept: '.pem,.crt,.cer,application/x-pem-file', class: 'file' });
    file.addEventListener('change', async () => {
      const fl = file.files && file.files[0];
      if (!fl) return;
      if (fl.size > 65536) { wrap.setError('That file is too large to be a certificate (over 64 KiB).'); return; }
      pem.value = await fl.text();
      wrap.setError('');
    });
    const wrap = field('Certificate (PEM)', pem, 'Paste cert.pem or upload it. Only the certificate — never the private key.');
    const info = h('div', { class: 'cert-info', id: 'cert-info' });
    const f = h('form', { novalidate: true }, wrap,
      h('div', { class: 'actions' }, h('label', { class: 'btn', for: 'pem-file' }, 'Upload file…'), file,
        h('div', { class: 'spacer' }), h('button', { type: 'submit', class: 'btn btn-primary', id: 'cred-save' }, 'Save certificate')),
      info);
    f.fieldWrap = wrap;
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      wrap.setError('');
      const v = pem.value.trim();
      if (!v) { wrap.setError('Paste a certificate or upload a .pem file first.'); return; }
      if (/PRIVATE KEY-----/.test(v)) { wrap.setError('This is a private key. Paste the certificate (cert.pem) instead; the key stays on the device.'); return; }
      if (await save({ ...cred, credentialsType: 'X509_CERTIFICATE', credentialsId: null, credentialsValue: `${v}\n` }, f)) showInfo(info);
    });
    box.append(f);
    if (cred.credentialsType === 'X509_CERTIFICATE') showInfo(info);
  }

  async function showInfo(box) {
    clear(box);
    try {
      const i = await devices.credentialsInfo(id);
      if (!alive || !i) return;
      const now = Date.now();
      const na = Date.parse(i.notAfter) || Number(i.notAfter);
      const nb = Date.parse(i.notBefore) || Number(i.notBefore);
      const state = na && na < now ? 'Expired' : nb && nb > now ? 'Not yet valid' : 'Valid';
      const row = (k, v, extra) => [h('dt', {}, k), h('dd', {}, v, extra || null)];
      clear(box, h('h3', {}, 'Registered certificate ', h('span', { class: `badge ${state === 'Valid' ? 'badge-on' : 'badge-warn'}` }, state)),
        h('dl', { class: 'kv' },
          row('SHA-256 fingerprint', h('span', { class: 'mono break', id: 'cert-fp' }, i.sha256Fingerprint || ''), copyButton(() => i.sha256Fingerprint || '')),
          row('Subject', h('span', { class: 'mono break', id: 'cert-subject' }, i.subject || '')),
          row('Issuer', h('span', { class: 'mono break' }, i.issuer || '')),
          row('Valid from', nb ? fmtTime(nb) : String(i.notBefore || '')),
          row('Valid until', na ? fmtTime(na) : String(i.notAfter || ''))));
    } catch { /* 404 before the endpoint exists: show nothing */ }
  }

  load();
  return { destroy() { alive = false; } };
}
