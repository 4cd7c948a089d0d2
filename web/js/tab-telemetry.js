// tab-telemetry.js — latest value of every time-series key, updated live.

import { h, clear, fmtTime, fmtValue, spinner, errorBox } from './dom.js';
import { telemetry } from './api.js';

export function telemetryTab(panel, { id }) {
  const latest = new Map(); // key -> {ts, value}
  let tbody = null;
  let alive = true;

  async function load() {
    clear(panel, spinner('Loading telemetry…'));
    try {
      const data = await telemetry.latest(id);
      if (!alive) return;
      for (const [k, arr] of Object.entries(data || {})) if (arr && arr.length) latest.set(k, arr[0]);
      render();
    } catch (e) { if (alive) clear(panel, errorBox(e, load)); }
  }

  function render(flashKeys = new Set()) {
    if (!latest.size) {
      tbody = null;
      clear(panel, h('div', { class: 'empty' }, h('p', {}, 'No telemetry yet.'),
        h('p', { class: 'muted' }, 'Values appear here as soon as the device posts them — see “Check connectivity” for a ready command.')));
      return;
    }
    if (!tbody) {
      tbody = h('tbody', {});
      clear(panel, h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'telemetry-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Last update'))), tbody)));
    }
    const keys = [...latest.keys()].sort();
    clear(tbody, keys.map((k) => {
      const p = latest.get(k);
      return h('tr', { class: flashKeys.has(k) ? 'flash' : '', dataset: { key: k } },
        h('th', { scope: 'row', class: 'mono', 'data-label': 'Key' }, k),
        h('td', { class: 'value', 'data-label': 'Value' }, fmtValue(p.value)),
        h('td', { class: 'muted', 'data-label': 'Last update' }, fmtTime(p.ts)));
    }));
  }

  load();
  return {
    onEvent(type, data) {
      if (type !== 'telemetry' || !data.values) return;
      const changed = new Set();
      for (const [k, arr] of Object.entries(data.values)) {
        for (const p of arr || []) {
          const cur = latest.get(k);
          if (!cur || p.ts >= cur.ts) { latest.set(k, p); changed.add(k); }
        }
      }
      if (changed.size) render(changed);
    },
    destroy() { alive = false; },
  };
}
