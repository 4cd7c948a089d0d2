// tab-credentials.js — the "Manage credentials" dialog of ThingsBoard as a tab: access token
// (show, copy, generate, set), X.509 certificate (paste or upload a PEM) or DTLS pre-shared key
// (identity and hex key). Server errors are shown next to the field; after saving a certificate
// its fingerprint, subject and validity.

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
      type = ['X509_CERTIFICATE', 'PSK'].includes(cred.credentialsType) ? cred.credentialsType : 'ACCESS_TOKEN';
      render();
    } catch (e) { if (alive) clear(panel, errorBox(e, load)); }
  }

  function render() {
    const form = h('div', { class: 'cred-form' });
    const radios = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Credential type' },
      [['ACCESS_TOKEN', 'Access token'], ['X509_CERTIFICATE', 'X.509 certificate'], ['PSK', 'Pre-shared key']].map(([v, l]) =>
        h('label', { class: `seg ${type === v ? 'seg-on' : ''}` },
          h('input', { type: 'radio', name: 'cred-type', value: v, checked: type === v, class: 'sr-only',
            onchange: () => { type = v; render(); } }), l)));
    clear(panel, h('div', { class: 'tab-head' }, h('h2', { class: 'tab-title' }, 'Device credentials'), h('div', { class: 'spacer' }), radios), form);
    if (type === 'ACCESS_TOKEN') tokenForm(form); else if (type === 'PSK') pskForm(form); else x509Form(form);
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

  // PSK: identity (what the device sends) and key in hex. libcoap's coap-client takes the key as
  // text (-k), so a text box fills the hex from typed text.
  function pskForm(box) {
    const isPsk = cred.credentialsType === 'PSK';
    const ident = h('input', { id: 'psk-identity', name: 'identity', autocomplete: 'off', spellcheck: false, maxlength: 128, class: 'mono', value: isPsk ? cred.credentialsId || '' : '' });
    const key = h('input', { id: 'psk-key', name: 'key', type: 'password', autocomplete: 'off', spellcheck: false, maxlength: 128, class: 'mono', value: isPsk ? cred.credentialsValue || '' : '' });
    const text = h('input', { id: 'psk-text', name: 'keytext', type: 'password', autocomplete: 'off', spellcheck: false, maxlength: 64, class: 'mono',
      oninput: () => { key.value = Array.from(new TextEncoder().encode(text.value), (b) => b.toString(16).padStart(2, '0')).join(''); } });
    const identWrap = field('PSK identity', ident, 'Sent by the device in the handshake (coap-client -u); it names the device, like a certificate.');
    const wrap = field('Key (hex)', key, '1 to 64 bytes as hexadecimal digits. Keep it secret: it is the device\'s password.');
    const textWrap = field('…or type the key as text', text, 'What coap-client -k takes; its bytes fill the hex key above.');
    wrap.querySelector('input').after(h('div', { class: 'inline-actions' },
      h('button', { type: 'button', class: 'btn btn-small', id: 'psk-generate', onclick: () => {
        const b = new Uint8Array(16);
        crypto.getRandomValues(b);
        key.value = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
        key.type = 'text';
        text.value = '';
      } }, 'Generate'), copyButton(() => key.value)));
    const f = h('form', { novalidate: true }, identWrap, wrap, textWrap,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary', id: 'cred-save' }, 'Save pre-shared key')));
    f.fieldWrap = wrap;
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      wrap.setError('');
      identWrap.setError('');
      const id = ident.value.trim();
      const v = key.value.trim();
      if (!id) { identWrap.setError('The identity cannot be empty.'); return; }
      if (!/^([0-9a-fA-F]{2}){1,64}$/.test(v)) { wrap.setError('Use 2 to 128 hexadecimal digits (an even number), or type the key as text below.'); return; }
      if (await save({ ...cred, credentialsType: 'PSK', credentialsId: id, credentialsValue: v }, f) && alive) render();
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
