// otapage.js — the OTA packages page: a paged list (title, version, type, profile, size,
// checksum), upload (ThingsBoard's two steps: POST /api/otaPackage with the info, then the file
// as multipart/form-data to POST /api/otaPackage/{id}?checksumAlgorithm=SHA256), download,
// delete, and assignment to the package's profile (its default firmware / software) or to one
// device of that profile (a device's own package wins over its profile's).

import { h, clear, fmtTime, fmtBytes, modal, confirmDialog, spinner, errorBox, toast, field, copyButton, pager } from './dom.js';
import { api, devices, profiles, ota } from './api.js';

const enc = encodeURIComponent;

export function otaView(root, { query }) {
  const st = {
    page: Math.max(0, parseInt(query.get('page') || '0', 10) || 0),
    pageSize: [10, 20, 50, 100].includes(+query.get('size')) ? +query.get('size') : 20,
    text: query.get('q') || '',
  };
  let alive = true;
  let ctl = null;
  let profileNames = new Map(); // profile uuid -> name
  const search = h('input', { type: 'search', id: 'ota-search', placeholder: 'Search packages by title', 'aria-label': 'Search packages', value: st.text });
  let debounce;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { st.text = search.value.trim(); st.page = 0; sync(); }, 250);
  });
  const body = h('div', { class: 'card-body' });
  root.append(
    h('div', { class: 'page-head' },
      h('h1', {}, 'OTA updates'),
      h('div', { class: 'toolbar' }, search,
        h('button', { type: 'button', class: 'btn btn-primary', id: 'ota-upload', onclick: upload }, '+ Upload package'))),
    h('section', { class: 'card' }, body));

  function sync() {
    const q = new URLSearchParams();
    if (st.page) q.set('page', st.page);
    if (st.pageSize !== 20) q.set('size', st.pageSize);
    if (st.text) q.set('q', st.text);
    const s = q.toString();
    history.replaceState(null, '', `#/ota${s ? `?${s}` : ''}`);
    load();
  }

  async function load() {
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const signal = ctl.signal;
    if (!body.querySelector('table')) clear(body, spinner('Loading packages…'));
    try {
      const [pg, profs] = await Promise.all([ota.list({ page: st.page, pageSize: st.pageSize, textSearch: st.text }, signal), profiles.all()]);
      if (!alive || signal.aborted) return;
      profileNames = new Map(profs.map((p) => [p.id.id, p]));
      if (pg.totalPages && st.page >= pg.totalPages) { st.page = pg.totalPages - 1; sync(); return; }
      render(pg);
    } catch (e) {
      if (e.name !== 'AbortError' && alive) clear(body, errorBox(e, load));
    }
  }

  // Where a package is assigned as a profile's default: "default of <profile>".
  function assignedBy(o) {
    const p = profileNames.get(o.deviceProfileId?.id);
    const ref = o.type === 'SOFTWARE' ? p?.softwareId : p?.firmwareId;
    return ref && ref.id === o.id.id ? h('span', { class: 'badge badge-on', title: `The default ${o.type.toLowerCase()} of profile ${p.name}` }, 'Profile default') : null;
  }

  function render(pg) {
    const rows = pg.data || [];
    if (!rows.length) {
      clear(body, h('div', { class: 'empty' },
        h('p', {}, st.text ? `No package matches “${st.text}”.` : 'No OTA packages yet.'),
        st.text ? null : h('button', { type: 'button', class: 'btn btn-primary', onclick: upload }, 'Upload the first one')));
      return;
    }
    clear(body,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'ota-table' },
        h('thead', {}, h('tr', {}, ['Title', 'Version', 'Type', 'Profile', 'Size', 'Checksum', 'Created'].map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', {}, rows.map((o) => h('tr', { dataset: { id: o.id.id, title: o.title } },
          h('td', { 'data-label': 'Title' }, h('span', { class: 'dev-name' }, o.title), ' ', assignedBy(o)),
          h('td', { 'data-label': 'Version', class: 'version' }, o.version),
          h('td', { 'data-label': 'Type' }, o.type === 'SOFTWARE' ? 'Software' : 'Firmware'),
          h('td', { 'data-label': 'Profile', class: 'profile' }, profileNames.get(o.deviceProfileId?.id)?.name || o.deviceProfileId?.id || '—'),
          h('td', { 'data-label': 'Size' }, o.hasData ? fmtBytes(o.dataSize) : h('span', { class: 'badge badge-warn' }, 'No file')),
          h('td', { 'data-label': 'Checksum', class: 'checksum-cell' }, o.checksum
            ? [h('span', { class: 'muted small' }, `${o.checksumAlgorithm || ''} `), h('span', { class: 'mono small break checksum', title: o.checksum }, o.checksum), ' ', copyButton(() => o.checksum)]
            : '—'),
          h('td', { 'data-label': 'Created' }, fmtTime(o.createdTime)),
          h('td', { class: 'row-actions' },
            o.hasData ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => download(o), 'aria-label': `Download ${o.title}` }, 'Download') : null,
            o.hasData ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => assign(o), 'aria-label': `Assign ${o.title}` }, 'Assign') : null,
            h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', onclick: () => remove(o), 'aria-label': `Delete ${o.title}` }, 'Delete'))))))),
      pager(pg, st, 'package', sync));
  }

  async function upload() {
    let profs;
    try { profs = await profiles.all(); } catch (e) { toast(e.message, 'err'); return; }
    const title = h('input', { name: 'title', id: 'ota-title', required: true, maxlength: 255, autocomplete: 'off' });
    const version = h('input', { name: 'version', id: 'ota-version', required: true, maxlength: 255, autocomplete: 'off' });
    const type = h('select', { name: 'type', id: 'ota-type' }, h('option', { value: 'FIRMWARE' }, 'Firmware'), h('option', { value: 'SOFTWARE' }, 'Software'));
    const prof = h('select', { name: 'deviceProfileId', id: 'ota-profile' },
      profs.map((p) => h('option', { value: p.id.id, selected: !!p.default }, p.default ? `${p.name} (default)` : p.name)));
    const file = h('input', { type: 'file', name: 'file', id: 'ota-file' });
    const fTitle = field('Title', title, 'Devices receive it as fw_title / sw_title.');
    const fVersion = field('Version', version);
    const fFile = field('File', file);
    const formErr = h('div', { class: 'form-error', role: 'alert', id: 'ota-form-error' });
    file.addEventListener('change', () => {
      const fl = file.files && file.files[0];
      if (fl && !title.value) title.value = fl.name.replace(/\.[^.]*$/, '');
    });
    const created = await modal('Upload OTA package', (done) => {
      const f = h('form', { novalidate: true, id: 'ota-form' }, fTitle, fVersion,
        h('div', { class: 'grid-2 grid-even' }, field('Type', type), field('Device profile', prof)), fFile,
        h('p', { class: 'hint' }, 'The server computes the SHA-256 checksum that devices check the download against.'),
        formErr,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary', id: 'ota-submit' }, 'Upload')));
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        for (const x of [fTitle, fVersion, fFile]) x.setError('');
        formErr.textContent = '';
        const fl = file.files && file.files[0];
        if (!title.value.trim()) { fTitle.setError('A package needs a title.'); return; }
        if (!version.value.trim()) { fVersion.setError('A package needs a version.'); return; }
        if (!fl) { fFile.setError('Choose the file to upload.'); return; }
        const btn = f.querySelector('[type=submit]');
        btn.disabled = true;
        btn.textContent = 'Uploading…';
        let info = null;
        try {
          info = await ota.save({ title: title.value.trim(), version: version.value.trim(), type: type.value,
            deviceProfileId: { entityType: 'DEVICE_PROFILE', id: prof.value } });
          done(await ota.upload(info.id.id, fl));
        } catch (ex) {
          // A package without its file is of no use: take the half-made one back.
          if (info) await ota.remove(info.id.id).catch(() => {});
          btn.disabled = false;
          btn.textContent = 'Upload';
          if (!info && /title|version/i.test(ex.message)) (/version/i.test(ex.message) ? fVersion : fTitle).setError(ex.message);
          else formErr.textContent = ex.message;
        }
      });
      return f;
    });
    if (created) {
      toast(`Uploaded “${created.title}” ${created.version}`);
      load();
    }
  }

  async function download(o) {
    try {
      const { blob, fileName } = await ota.download(o.id.id);
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: fileName || o.fileName || `${o.title}-${o.version}.bin`, class: 'offscreen' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (e) { toast(e.message, 'err'); }
  }

  async function remove(o) {
    if (!(await confirmDialog('Delete package?', `“${o.title}” ${o.version} and its file will be deleted. A package assigned to a profile or device cannot be deleted.`))) return;
    try {
      await ota.remove(o.id.id);
      toast(`Deleted “${o.title}”`);
      load();
    } catch (e) {
      toast(e.message, 'err');
      body.querySelector('#ota-error')?.remove();
      body.prepend(h('div', { class: 'error-box', role: 'alert', id: 'ota-error' }, `Could not delete “${o.title}”: ${e.message}`));
    }
  }

  async function assign(o) {
    const done = await assignDialog(o, profileNames.get(o.deviceProfileId?.id));
    if (done) { toast(done); load(); }
  }

  load();
  return () => { alive = false; if (ctl) ctl.abort(); clearTimeout(debounce); };
}

// Assign a package to its profile (firmwareId / softwareId of the profile) or to one device of
// that profile (the device's own firmwareId / softwareId). ThingsBoard refuses a package of
// another profile, so only that profile and its devices are offered.
function assignDialog(o, prof) {
  const key = o.type === 'SOFTWARE' ? 'softwareId' : 'firmwareId';
  const what = o.type === 'SOFTWARE' ? 'software' : 'firmware';
  const ref = { entityType: 'OTA_PACKAGE', id: o.id.id };
  const target = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Assign to' });
  let mode = 'profile';
  const devSel = h('select', { id: 'assign-device', name: 'device' }, h('option', { value: '' }, 'Loading devices…'));
  const fDev = field('Device', devSel, `Only devices of profile ${prof ? prof.name : ''} can get this package.`);
  const profNote = h('p', { id: 'assign-profile-note' }, `Every device of profile “${prof ? prof.name : '?'}” without its own ${what} gets “${o.title}” ${o.version}.`);
  const formErr = h('div', { class: 'form-error', role: 'alert', id: 'assign-error' });
  const renderSeg = () => {
    clear(target, [['profile', 'Profile'], ['device', 'One device']].map(([v, l]) => h('button', { type: 'button', role: 'radio', id: `assign-to-${v}`,
      'aria-checked': String(mode === v), class: mode === v ? 'seg seg-on' : 'seg', onclick: () => { mode = v; renderSeg(); } }, l)));
    fDev.hidden = mode !== 'device';
    profNote.hidden = mode !== 'profile';
  };
  renderSeg();
  api('GET', `/api/tenant/deviceInfos?pageSize=100&page=0&sortProperty=name&sortOrder=ASC&deviceProfileId=${enc(o.deviceProfileId?.id || '')}`)
    .then((pg) => {
      const list = (pg.data || []).filter((d) => !d.deviceProfileId || d.deviceProfileId.id === o.deviceProfileId?.id);
      clear(devSel, list.length ? list.map((d) => h('option', { value: d.id.id }, d.name)) : h('option', { value: '' }, 'No device has this profile'));
    })
    .catch((e) => clear(devSel, h('option', { value: '' }, `Could not list devices: ${e.message}`)));

  return modal(`Assign “${o.title}” ${o.version}`, (done) => {
    const f = h('form', { novalidate: true, id: 'assign-form' }, h('div', { class: 'field' }, target), profNote, fDev, formErr,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => done(null) }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn btn-primary', id: 'assign-save' }, 'Assign')));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      formErr.textContent = '';
      try {
        if (mode === 'profile') {
          const p = await profiles.get(o.deviceProfileId.id);
          await profiles.save({ ...p, [key]: ref });
          done(`“${o.title}” ${o.version} is the ${what} of profile ${p.name}`);
        } else {
          if (!devSel.value) { fDev.setError('Choose a device.'); return; }
          const d = await devices.get(devSel.value);
          await devices.save({ ...d, [key]: ref });
          done(`“${o.title}” ${o.version} assigned to ${d.name}`);
        }
      } catch (ex) { formErr.textContent = ex.message; }
    });
    return f;
  });
}
