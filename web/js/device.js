// device.js — one device's page: header with status and live-mode indicator, and the tabs.
// The live subscription (SSE or polling) belongs to this page; tabs get its events.

import { h, clear, spinner, errorBox, copyButton } from './dom.js';
import { devices } from './api.js';
import { subscribe } from './live.js';
import { statusBadge } from './devices.js';
import { telemetryTab } from './tab-telemetry.js';
import { chartTab } from './tab-chart.js';
import { attributesTab } from './tab-attributes.js';
import { credentialsTab } from './tab-credentials.js';
import { connectivityTab } from './tab-connectivity.js';
import { rpcTab } from './tab-rpc.js';
import { firmwareTab } from './tab-firmware.js';

const TABS = [
  { id: 'telemetry', label: 'Latest telemetry', make: telemetryTab },
  { id: 'chart', label: 'Chart', make: chartTab },
  { id: 'attributes', label: 'Attributes', make: attributesTab },
  { id: 'credentials', label: 'Credentials', make: credentialsTab },
  { id: 'firmware', label: 'Profile & firmware', make: firmwareTab },
  { id: 'connectivity', label: 'Check connectivity', make: connectivityTab },
  { id: 'rpc', label: 'RPC', make: rpcTab },
];

// Set when the tab changed from the keyboard, so the re-rendered tab list gets focus back.
let focusTabAfterRender = false;

export function deviceView(root, { id, tab }) {
  let alive = true;
  let current = null;
  let unsubscribe = null;
  let stopTicker = null;
  clear(root, spinner('Loading device…'));

  (async () => {
    let device;
    try { device = await devices.get(id); } catch (e) {
      if (!alive) return;
      clear(root, h('p', {}, h('a', { href: '#/devices' }, '‹ All devices')),
        e.status === 404 ? h('div', { class: 'error-box', role: 'alert' }, 'This device does not exist (it may have been deleted).') : errorBox(e, () => location.reload()));
      return;
    }
    if (!alive) return;
    document.title = `${device.name} · coaphub`;
    const status = h('span', { class: 'dev-status' }, statusBadge(undefined));
    let st = null; // last known status; polling-mode events carry only part of it
    const showStatus = (s) => { st = { ...(st || {}), ...s }; clear(status, statusBadge(st)); };
    const mode = h('span', { class: 'live-mode', role: 'status', title: 'How this page receives updates' }, '');
    const tabList = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Device sections' });
    const panel = h('section', { class: 'card tab-panel', role: 'tabpanel', id: 'tab-panel', tabindex: '-1' });
    const sel = TABS.find((t) => t.id === tab) || TABS[0];
    for (const t of TABS) {
      tabList.append(h('a', { role: 'tab', id: `tab-${t.id}`, href: `#/device/${encodeURIComponent(id)}/${t.id}`,
        'aria-selected': t === sel ? 'true' : 'false', 'aria-controls': 'tab-panel', tabindex: t === sel ? '0' : '-1',
        class: t === sel ? 'tab tab-on' : 'tab' }, t.label));
    }
    tabList.addEventListener('keydown', (e) => {
      const i = TABS.indexOf(sel);
      const j = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : -2;
      if (j === -2) return;
      e.preventDefault();
      const next = TABS[(j + TABS.length) % TABS.length];
      focusTabAfterRender = true;
      location.hash = `#/device/${encodeURIComponent(id)}/${next.id}`;
    });
    panel.setAttribute('aria-labelledby', `tab-${sel.id}`);
    clear(root,
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/devices' }, 'Devices'), h('span', { 'aria-hidden': 'true' }, ' / '), h('span', {}, device.name)),
      h('div', { class: 'page-head' },
        h('div', {}, h('h1', { class: 'dev-title' }, device.name),
          h('div', { class: 'dev-meta' },
            h('span', { class: 'muted', id: 'dev-type', title: 'Device profile' }, device.type || 'default'),
            device.label ? h('span', { class: 'muted' }, ` · ${device.label}`) : null,
            h('span', { class: 'mono small' }, ` · ${device.id.id} `), copyButton(() => device.id.id, 'Copy ID'))),
        h('div', { class: 'head-right' }, status, mode)),
      tabList, panel);

    if (focusTabAfterRender) { focusTabAfterRender = false; document.getElementById(`tab-${sel.id}`)?.focus(); }
    // A tab that saved the device (its profile) updates the header: the type is the profile's name.
    const ctx = { id, device, onSaved: (d) => { ctx.device = d; const t = document.getElementById('dev-type'); if (t) t.textContent = d.type || 'default'; } };
    current = sel.make(panel, ctx) || {};
    unsubscribe = subscribe(id, (type, data) => {
      if (type === 'activity') showStatus(data);
      if (current && current.onEvent) current.onEvent(type, data);
    }, (m) => {
      mode.className = `live-mode live-${m}`;
      mode.textContent = m === 'live' ? '● Live' : m === 'polling' ? '● Polling every 2 s' : '● Connecting…';
    });
    // Initial status (the stream is already open, so an event received meanwhile is newer).
    devices.status([id]).then((all) => {
      if (alive && all && all[id] && !st) showStatus(all[id]);
    }).catch(() => {});
    const ticker = setInterval(() => { if (st) clear(status, statusBadge(st)); }, 10000);
    stopTicker = () => clearInterval(ticker);
  })();

  return () => {
    alive = false;
    if (unsubscribe) unsubscribe();
    if (stopTicker) stopTicker();
    if (current && current.destroy) current.destroy();
  };
}
