// tab-attributes.js — client (read-only), server and shared attributes: list, add, edit,
// delete; shared changes are pushed by the server to observing devices.

import { h, clear, fmtTime, fmtValue, spinner, errorBox, modal, confirmDialog, toast, field } from './dom.js';
import { telemetry } from './api.js';

const SCOPES = [
  { id: 'CLIENT_SCOPE', label: 'Client', editable: false, note: 'Reported by the device itself (read-only here).' },
  { id: 'SERVER_SCOPE', label: 'Server', editable: true, note: 'Kept on the server; the device never sees them.' },
  { id: 'SHARED_SCOPE', label: 'Shared', editable: true, note: 'Sent to the device; observing devices get changes at once.' },
];

// A typed value: JSON literals (numbers, true/false, objects) keep their type, anything else
// is a string — the same rule ThingsBoard's attribute dialog applies.
function parseValue(text) {
  const t = text.trim();
  if (t === '') return '';
  try { return JSON.parse(t); } catch { return text; }
}

export function attributesTab(panel, { id }) {
  let alive = true;
  let scope = SCOPES[2];
  const rows = new Map(); // key -> {value, lastUpdateTs}
  const seg = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Attribute scope' });
  const note = h('p', { class: 'muted small' });
  const body = h('div', {});
  const addBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'attr-add', onclick: () => edit(null) }, '+ Add attribute');
  clear(panel, h('div', { class: 'tab-head' }, seg, h('div', { class: 'spacer' }), addBtn), note, body);

  function renderSeg() {
    clear(seg, SCOPES.map((s) => h('button', { type: 'button', role: 'radio', 'aria-checked': s === scope ? 'true' : 'false',
      class: s === scope ? 'seg seg-on' : 'seg', dataset: { scope: s.id }, onclick: () => { scope = s; load(); } }, s.label)));
    note.textContent = scope.note;
    addBtn.hidden = !scope.editable;
  }

  async function load() {
    renderSeg();
    rows.clear();
    clear(body, spinner('Loading attributes…'));
    const my = scope;
    try {
      const list = await telemetry.attributes(id, scope.id);
      if (!alive || my !== scope) return;
      for (const a of list || []) rows.set(a.key, { value: a.value, lastUpdateTs: a.lastUpdateTs });
      render();
    } catch (e) { if (alive) clear(body, errorBox(e, load)); }
  }

  function render(flash = new Set()) {
    if (!rows.size) {
      clear(body, h('div', { class: 'empty' }, h('p', {}, `No ${scope.label.toLowerCase()} attributes.`)));
      return;
    }
    const keys = [...rows.keys()].sort();
    clear(body, h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'attr-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Last update'),
        scope.editable ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')) : null)),
      h('tbody', {}, keys.map((k) => {
        const r = rows.get(k);
        return h('tr', { class: flash.has(k) ? 'flash' : '', dataset: { key: k } },
          h('th', { scope: 'row', class: 'mono', 'data-label': 'Key' }, k),
          h('td', { class: 'value', 'data-label': 'Value' }, fmtValue(r.value)),
          h('td', { class: 'muted', 'data-label': 'Last update' }, fmtTime(r.lastUpdateTs)),
          scope.editable ? h('td', { class: 'row-actions' },
            h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Edit ${k}`, onclick: () => edit(k) }, 'Edit'),
            h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', 'aria-label': `Delete ${k}`, onclick: () => del(k) }, 'Delete')) : null);
      })))));
  }

  async function edit(key) {
    const my = scope;
    const keyIn = h('input', { name: 'key', required: true, maxlength: 255, autocomplete: 'off', value: key || '', readonly: key !== null });
    const valIn = h('textarea', { name: 'value', rows: 3, spellcheck: false });
    valIn.value = key !== null ? fmtValue(rows.get(key).value) : '';
    const fKey = field('Key', keyIn);
    const fVal = field('Value', valIn, 'Numbers, true/false and JSON keep their type; anything else is saved as text.');
    const saved = await modal(key === null ? `Add ${my.label.toLowerCase()} attribute` : `Edit “${key}”`, (done) => {
      const f = h('form', { novalidate: true }, fKey, fVal, h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save')));
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        fKey.setError(''); fVal.setError('');
        const k = keyIn.value.trim();
        if (!k) { fKey.setError('Give the attribute a key.'); return; }
        try {
          await telemetry.saveAttributes(id, my.id, { [k]: parseValue(valIn.value) });
          done(k);
        } catch (ex) { fVal.setError(ex.message); }
      });
      return f;
    });
    if (saved) { toast(`Saved “${saved}”`); if (my === scope) load(); }
  }

  async function del(key) {
    if (!(await confirmDialog('Delete attribute?', `Delete ${scope.label.toLowerCase()} attribute “${key}”?`))) return;
    try { await telemetry.deleteAttributes(id, scope.id, [key]); rows.delete(key); render(); toast(`Deleted “${key}”`); } catch (e) { toast(e.message, 'err'); }
  }

  load();
  return {
    onEvent(type, data) {
      if (type !== 'attributes' || data.scope !== scope.id) return;
      const flash = new Set();
      for (const [k, v] of Object.entries(data.values || {})) { rows.set(k, { value: v, lastUpdateTs: data.ts || Date.now() }); flash.add(k); }
      for (const k of data.deleted || []) rows.delete(k);
      render(flash);
    },
    destroy() { alive = false; },
  };
}
