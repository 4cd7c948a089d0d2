// dom.js — tiny element builder. Every string child becomes a Text node, so data coming from
// devices or users can never be parsed as HTML; there is no innerHTML anywhere in the UI.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtTime(ts) {
  if (!ts) return '—';
  const d = new Date(Number(ts));
  return isNaN(d) ? '—' : d.toLocaleString(undefined, { hour12: false });
}

export function relTime(ts) {
  if (!ts) return 'never';
  const s = Math.round((Date.now() - Number(ts)) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function fmtValue(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

let toastBox;
export function toast(msg, kind = 'ok') {
  if (!toastBox) {
    toastBox = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(toastBox);
  }
  const t = h('div', { class: `toast toast-${kind}` }, msg);
  toastBox.appendChild(t);
  while (toastBox.children.length > 3) toastBox.firstChild.remove();
  setTimeout(() => t.remove(), kind === 'err' ? 6000 : 2500);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API needs a secure context (http://host is not one); fall back to a selection.
    const ta = h('textarea', { class: 'offscreen', readonly: true });
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
  toast('Copied to clipboard');
}

export function copyButton(getText, label = 'Copy') {
  return h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(getText()) }, label);
}

// A modal <dialog>: native focus handling and Esc to close. Resolves with the value passed to
// done(), or null when dismissed.
export function modal(title, build, { wide = false } = {}) {
  return new Promise((resolve) => {
    let result = null;
    const dlg = h('dialog', { class: wide ? 'modal modal-wide' : 'modal', 'aria-label': title });
    const done = (v) => { result = v; dlg.close(); };
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    dlg.append(h('h2', {}, title), build(done));
    document.body.appendChild(dlg);
    dlg.showModal();
    const first = dlg.querySelector('input, textarea, select, button.btn-primary');
    if (first) first.focus();
  });
}

export function confirmDialog(title, message, okLabel = 'Delete') {
  return modal(title, (done) => h('div', {},
    h('p', {}, message),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'btn', onclick: () => done(false) }, 'Cancel'),
      h('button', { type: 'button', class: 'btn btn-danger', onclick: () => done(true) }, okLabel))));
}

export function spinner(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spin', 'aria-hidden': 'true' }), text);
}

export function errorBox(err, retry) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', {}, 'Something went wrong. '), err && err.message ? err.message : String(err),
    retry ? h('button', { type: 'button', class: 'btn btn-small', onclick: retry }, 'Retry') : null);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const err = h('div', { class: 'field-error', id: `${id}-err`, role: 'alert' });
  input.setAttribute('aria-describedby', `${id}-err`);
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), input,
    hint ? h('div', { class: 'hint' }, hint) : null, err);
  wrap.setError = (msg) => {
    err.textContent = msg || '';
    input.toggleAttribute('aria-invalid', !!msg);
  };
  return wrap;
}

const KEY_CHARS = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

// A random key from unambiguous letters and digits (access tokens, provision keys/secrets).
export function randomKey(n = 20) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => KEY_CHARS[x % KEY_CHARS.length]).join('');
}

export function fmtBytes(n) {
  if (n === null || n === undefined || n === '') return '—';
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  return `${(v / 1024 / 1024).toFixed(1)} MiB`;
}

// The pager under a paged table (ThingsBoard's PageData: totalElements, totalPages, hasNext).
// st holds page and pageSize; go() reloads after either changed.
export function pager(pg, st, noun, go) {
  const total = pg.totalElements ?? (pg.data || []).length;
  const pages = Math.max(1, pg.totalPages || 1);
  const size = h('select', { 'aria-label': 'Rows per page', onchange: (e) => { st.pageSize = +e.target.value; st.page = 0; go(); } },
    [10, 20, 50, 100].map((n) => h('option', { value: n, selected: n === st.pageSize }, `${n} / page`)));
  return h('div', { class: 'pager' },
    h('span', { class: 'muted' }, `${total} ${noun}${total === 1 ? '' : 's'}`),
    h('div', { class: 'spacer' }), size,
    h('button', { type: 'button', class: 'btn btn-small', disabled: st.page === 0, onclick: () => { st.page--; go(); } }, '‹ Prev'),
    h('span', { class: 'page-no' }, `Page ${st.page + 1} of ${pages}`),
    h('button', { type: 'button', class: 'btn btn-small', disabled: !pg.hasNext, onclick: () => { st.page++; go(); } }, 'Next ›'));
}
