// app.js — entry point: hash router (#/login, #/devices, #/device/<id>/<tab>, #/profiles,
// #/ota), top bar, and
// the session check. Views are functions (root, params) -> optional cleanup function.

import { h, clear, toast } from './js/dom.js';
import { session, logout, server } from './js/api.js';
import { loginView } from './js/login.js';
import { devicesView } from './js/devices.js';
import { deviceView } from './js/device.js';
import { profilesView } from './js/profiles.js';
import { otaView } from './js/otapage.js';

const app = document.getElementById('app');
let cleanup = null;
let userEmail = '';

function topBar() {
  return h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '#/devices' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), h('span', { class: 'brand-text' }, 'coaphub')),
    h('nav', { class: 'topnav', 'aria-label': 'Main' },
      [['devices', 'Devices'], ['profiles', 'Profiles'], ['ota', 'OTA updates']].map(([r, l]) =>
        h('a', { href: `#/${r}`, id: `nav-${r}`, class: section() === r ? 'nav-on' : null, 'aria-current': section() === r ? 'page' : null }, l))),
    h('div', { class: 'spacer' }),
    userEmail ? h('span', { class: 'user', title: 'Signed in as' }, userEmail) : null,
    h('button', { type: 'button', class: 'btn btn-ghost', id: 'logout',
      onclick: async () => { await logout(); location.hash = '#/login'; } }, 'Log out'));
}

// The top-level section the current route belongs to (a device page is under Devices).
function section() {
  const first = location.hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  return first === 'device' ? 'devices' : first;
}

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query) };
}

async function render() {
  if (cleanup) { try { cleanup(); } catch { /* view already gone */ } cleanup = null; }
  const { parts, query } = parseRoute();
  if (!session.token) {
    if (parts[0] !== 'login') { location.replace('#/login'); return; }
    clear(app);
    document.title = 'Sign in · coaphub';
    cleanup = loginView(app, { next: query.get('next') });
    return;
  }
  if (parts[0] === 'login' || parts.length === 0) { location.replace('#/devices'); return; }
  if (!userEmail) {
    server.user().then((u) => {
      userEmail = (u && u.email) || '';
      const slot = document.querySelector('.topbar .user');
      if (userEmail && !slot) document.querySelector('.topbar .spacer')?.after(h('span', { class: 'user' }, userEmail));
    }).catch(() => {});
  }
  const main = h('main', { class: 'main', id: 'main' });
  clear(app, topBar(), main);
  if (parts[0] === 'device' && parts[1]) {
    cleanup = deviceView(main, { id: parts[1], tab: parts[2] || 'telemetry' });
  } else if (parts[0] === 'profiles') {
    document.title = 'Device profiles · coaphub';
    cleanup = profilesView(main, { query });
  } else if (parts[0] === 'ota') {
    document.title = 'OTA updates · coaphub';
    cleanup = otaView(main, { query });
  } else {
    document.title = 'Devices · coaphub';
    cleanup = devicesView(main, { query });
  }
}

session.onLogout(() => {
  userEmail = '';
  if (!location.hash.startsWith('#/login')) {
    toast('Signed out', 'info');
    location.hash = '#/login';
  }
});
// Another tab logging out (or in) changes localStorage: follow it.
window.addEventListener('storage', (e) => { if (e.key && e.key.startsWith('coaphub.')) render(); });
window.addEventListener('hashchange', render);
render();
