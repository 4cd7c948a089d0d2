// devices.js — the device list: search, sort, paging (state kept in the URL so reload and
// back keep it), status column, create / rename / delete.
// Status: one request for the whole page (/api/coaphub/devices/status), then live activity
// events of every device from one event stream; relative times are re-rendered every 10 s.

import { h, clear, fmtTime, relTime, modal, confirmDialog, spinner, errorBox, toast, field } from './dom.js';
import { devices, profiles, api } from './api.js';
import { subscribeAll } from './live.js';

const RELTIME_REFRESH_MS = 10000;

const COLUMNS = [
  { key: 'name', label: 'Name', sort: 'name' },
  { key: 'type', label: 'Profile', sort: 'type' }, // a device's type is its profile's name
  { key: 'label', label: 'Label', sort: 'label' },
  { key: 'status', label: 'Status' },
  { key: 'createdTime', label: 'Created', sort: 'createdTime' },
];

export function devicesView(root, { query }) {
  const st = {
    page: Math.max(0, parseInt(query.get('page') || '0', 10) || 0),
    pageSize: [10, 20, 50, 100].includes(+query.get('size')) ? +query.get('size') : 20,
    text: query.get('q') || '',
    sort: query.get('sort') || 'createdTime',
    order: query.get('order') === 'ASC' ? 'ASC' : 'DESC',
  };
  let ctl = null;
  let alive = true;
  const statusById = new Map(); // uuid -> {active, transport, observations, lastActivityTime}
  const cells = new Map();      // uuid -> status <td> of the rows on this page
  let sinceFetch = null;        // ids that got a live event while a status request ran

  const showStatus = (id) => { const td = cells.get(id); if (td) clear(td, statusBadge(statusById.get(id))); };
  const unsubscribe = subscribeAll((ev) => {
    statusById.set(ev.deviceId, { ...(statusById.get(ev.deviceId) || {}), ...ev });
    if (sinceFetch) sinceFetch.add(ev.deviceId);
    showStatus(ev.deviceId);
  });
  const ticker = setInterval(() => { for (const id of cells.keys()) showStatus(id); }, RELTIME_REFRESH_MS);

  const search = h('input', { type: 'search', id: 'device-search', placeholder: 'Search devices by name', 'aria-label': 'Search devices', value: st.text });
  let debounce;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { st.text = search.value.trim(); st.page = 0; sync(); }, 250);
  });
  const body = h('div', { class: 'card-body' });
  root.append(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Devices'),
      h('div', { class: 'toolbar' }, search,
        h('button', { type: 'button', class: 'btn', onclick: () => load(), title: 'Reload' }, 'Refresh'),
        h('button', { type: 'button', class: 'btn btn-primary', id: 'add-device', onclick: create }, '+ Add device'))),
    h('section', { class: 'card' }, body));

  function sync() {
    const q = new URLSearchParams();
    if (st.page) q.set('page', st.page);
    if (st.pageSize !== 20) q.set('size', st.pageSize);
    if (st.text) q.set('q', st.text);
    if (st.sort !== 'createdTime') q.set('sort', st.sort);
    if (st.order !== 'DESC') q.set('order', st.order);
    const s = q.toString();
    history.replaceState(null, '', `#/devices${s ? `?${s}` : ''}`);
    load();
  }

  async function load() {
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const mySignal = ctl.signal;
    if (!body.querySelector('table')) clear(body, spinner('Loading devices…'));
    else body.classList.add('busy');
    try {
      const pg = await devices.list({ page: st.page, pageSize: st.pageSize, textSearch: st.text, sortProperty: st.sort, sortOrder: st.order }, mySignal);
      if (!alive || mySignal.aborted) return;
      if (pg.totalPages && st.page >= pg.totalPages) { st.page = pg.totalPages - 1; sync(); return; }
      renderTable(pg);
    } catch (e) {
      if (e.name === 'AbortError' || !alive) return;
      clear(body, errorBox(e, load));
    } finally {
      body.classList.remove('busy');
    }
  }

  function sortHeader(c) {
    if (!c.sort) return h('th', { scope: 'col' }, c.label);
    const active = st.sort === c.sort;
    const dir = active ? (st.order === 'ASC' ? 'ascending' : 'descending') : 'none';
    return h('th', { scope: 'col', 'aria-sort': dir },
      h('button', { type: 'button', class: `sort ${active ? 'sort-on' : ''}`,
        onclick: () => {
          if (active) st.order = st.order === 'ASC' ? 'DESC' : 'ASC';
          else { st.sort = c.sort; st.order = c.sort === 'createdTime' ? 'DESC' : 'ASC'; }
          st.page = 0; sync();
        } }, c.label, h('span', { class: 'sort-ind', 'aria-hidden': 'true' }, active ? (st.order === 'ASC' ? '▲' : '▼') : '↕')));
  }

  function renderTable(pg) {
    const rows = pg.data || [];
    if (!rows.length) {
      clear(body, h('div', { class: 'empty' },
        h('p', {}, st.text ? `No device matches “${st.text}”.` : 'No devices yet.'),
        st.text ? null : h('button', { type: 'button', class: 'btn btn-primary', onclick: create }, 'Add your first device')));
      return;
    }
    const tbody = h('tbody', {});
    cells.clear();
    for (const d of rows) {
      const status = h('td', { class: 'status-cell', 'data-label': 'Status' }, statusBadge(statusById.get(d.id.id)));
      cells.set(d.id.id, status);
      tbody.append(h('tr', { dataset: { id: d.id.id } },
        h('td', { 'data-label': 'Name' }, h('a', { href: `#/device/${encodeURIComponent(d.id.id)}`, class: 'dev-name' }, d.name)),
        h('td', { 'data-label': 'Profile' }, d.type || ''),
        h('td', { 'data-label': 'Label' }, d.label || ''),
        status,
        h('td', { 'data-label': 'Created' }, fmtTime(d.createdTime)),
        h('td', { class: 'row-actions' },
          h('button', { type: 'button', class: 'btn btn-small', onclick: () => rename(d), 'aria-label': `Rename ${d.name}` }, 'Rename'),
          h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', onclick: () => remove(d), 'aria-label': `Delete ${d.name}` }, 'Delete'))));
    }
    const total = pg.totalElements ?? rows.length;
    const pages = Math.max(1, pg.totalPages || 1);
    const size = h('select', { 'aria-label': 'Rows per page', onchange: (e) => { st.pageSize = +e.target.value; st.page = 0; sync(); } },
      [10, 20, 50, 100].map((n) => h('option', { value: n, selected: n === st.pageSize }, `${n} / page`)));
    clear(body,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table devices' },
        h('thead', {}, h('tr', {}, COLUMNS.map(sortHeader), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody)),
      h('div', { class: 'pager' },
        h('span', { class: 'muted' }, `${total} device${total === 1 ? '' : 's'}`),
        h('div', { class: 'spacer' }), size,
        h('button', { type: 'button', class: 'btn btn-small', disabled: st.page === 0, onclick: () => { st.page--; sync(); } }, '‹ Prev'),
        h('span', { class: 'page-no' }, `Page ${st.page + 1} of ${pages}`),
        h('button', { type: 'button', class: 'btn btn-small', disabled: !pg.hasNext, onclick: () => { st.page++; sync(); } }, 'Next ›')));
    fillStatus(rows.map((d) => d.id.id), ctl && ctl.signal);
  }

  // One status request for the page; an event that arrived meanwhile is newer and wins.
  async function fillStatus(ids, signal) {
    if (!ids.length) return;
    const seen = new Set();
    sinceFetch = seen;
    try {
      const all = await devices.status(ids, signal);
      if (!alive) return;
      for (const [id, s] of Object.entries(all || {})) {
        if (!seen.has(id)) statusById.set(id, s);
        showStatus(id);
      }
    } catch { /* the cells keep "Unknown"; live events still fill them */ }
    if (sinceFetch === seen) sinceFetch = null;
  }

  async function create() {
    const name = h('input', { name: 'name', required: true, maxlength: 255, autocomplete: 'off' });
    const label = h('input', { name: 'label', maxlength: 255, autocomplete: 'off' });
    // The profile to create it in (deviceProfileId, as ThingsBoard's dialog); a server without
    // profiles gets the free-text type instead.
    const profs = await profiles.all().catch(() => null);
    const type = profs && profs.length
      ? h('select', { name: 'profile', id: 'device-new-profile' }, profs.map((p) => h('option', { value: p.id.id, selected: !!p.default }, p.name)))
      : h('input', { name: 'type', value: 'default', maxlength: 255, autocomplete: 'off' });
    const token = h('input', { name: 'token', maxlength: 128, autocomplete: 'off', placeholder: 'generated if empty' });
    const fName = field('Name', name);
    const fToken = field('Access token (optional)', token);
    const formErr = h('div', { class: 'form-error', role: 'alert' });
    const created = await modal('Add device', (done) => {
      const f = h('form', { novalidate: true }, fName, field('Label', label), field(profs && profs.length ? 'Device profile' : 'Device type', type), fToken, formErr,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create')));
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        fName.setError(''); formErr.textContent = '';
        if (!name.value.trim()) { fName.setError('A device needs a name.'); name.focus(); return; }
        const btn = f.querySelector('[type=submit]');
        btn.disabled = true;
        try {
          const q = token.value.trim() ? `?accessToken=${encodeURIComponent(token.value.trim())}` : '';
          const what = type.tagName === 'SELECT' ? { deviceProfileId: { entityType: 'DEVICE_PROFILE', id: type.value } } : { type: type.value.trim() || 'default' };
          const d = await api('POST', `/api/device${q}`, { name: name.value.trim(), label: label.value.trim() || null, ...what });
          done(d);
        } catch (ex) {
          btn.disabled = false;
          if (/name/i.test(ex.message)) fName.setError(ex.message);
          else if (/token|credential/i.test(ex.message)) fToken.setError(ex.message);
          else formErr.textContent = ex.message;
        }
      });
      return f;
    });
    if (created) {
      toast(`Device “${created.name}” created`);
      location.hash = `#/device/${encodeURIComponent(created.id.id)}/credentials`;
    }
  }

  async function rename(d) {
    const name = h('input', { name: 'name', required: true, maxlength: 255, value: d.name, autocomplete: 'off' });
    const fName = field('New name', name);
    const ok = await modal(`Rename device`, (done) => {
      const f = h('form', { novalidate: true }, fName,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save')));
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!name.value.trim()) { fName.setError('A device needs a name.'); return; }
        try { done(await devices.save({ ...d, name: name.value.trim() })); } catch (ex) { fName.setError(ex.message); }
      });
      return f;
    });
    if (ok) { toast('Device renamed'); load(); }
  }

  async function remove(d) {
    if (!(await confirmDialog('Delete device?', `“${d.name}” and all its telemetry, attributes and credentials will be deleted. This cannot be undone.`))) return;
    try { await devices.remove(d.id.id); toast(`Deleted “${d.name}”`); load(); } catch (e) { toast(e.message, 'err'); }
  }

  load();
  return () => { alive = false; if (ctl) ctl.abort(); clearTimeout(debounce); clearInterval(ticker); unsubscribe(); };
}

// The status of one device as text only: dot + Active/Inactive, a CoAP/CoAPS badge for the
// transport of its last request, "n obs" while it holds observations, last activity as a
// relative time (exact time in the tooltip). st undefined = not known yet.
export function statusBadge(st) {
  if (!st || st.active === undefined || st.active === null) {
    return h('span', { class: 'status' }, h('span', { class: 'badge badge-unknown' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Unknown'));
  }
  const last = Number(st.lastActivityTime) || 0;
  const obs = Number(st.observations) || 0;
  return h('span', { class: 'status', dataset: { active: st.active ? 'true' : 'false' } },
    h('span', { class: `badge ${st.active ? 'badge-on' : 'badge-off'}` },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('span', { class: 'status-text' }, st.active ? 'Active' : last ? 'Inactive' : 'Never connected')),
    st.transport ? h('span', { class: `proto proto-${st.transport}`, title: ({ coaps: 'Last request over DTLS (CoAPS)', http: 'Last request over the HTTP device API' })[st.transport] || 'Last request over plain CoAP' },
      ({ coaps: 'CoAPS', http: 'HTTP' })[st.transport] || 'CoAP') : null,
    obs > 0 ? h('span', { class: 'status-obs', title: 'Open observations (attribute and RPC subscriptions)' }, `${obs} obs`) : null,
    h('span', { class: 'status-time muted', title: last ? `Last activity ${fmtTime(last)}` : '' }, relTime(last)));
}
