// login.js — the sign-in form (POST /api/auth/login).

import { h } from './dom.js';
import { login } from './api.js';

export function loginView(root) {
  const user = h('input', { id: 'username', name: 'username', type: 'email', autocomplete: 'username', required: true, placeholder: 'tenant@thingsboard.org' });
  const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('div', { class: 'form-error', role: 'alert', id: 'login-error' });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Sign in');
  const form = h('form', { class: 'login-card', novalidate: true, 'aria-labelledby': 'login-title' },
    h('div', { class: 'login-brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'coaphub'),
    h('h1', { id: 'login-title' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Manage your CoAP devices, credentials and data.'),
    h('div', { class: 'field' }, h('label', { for: 'username' }, 'Email'), user),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), pass),
    err, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (!user.value.trim() || !pass.value) { err.textContent = 'Enter your email and password.'; return; }
    btn.disabled = true;
    btn.textContent = 'Signing in…';
    try {
      await login(user.value.trim(), pass.value);
      location.hash = '#/devices';
    } catch (ex) {
      err.textContent = ex.status === 401 ? 'Wrong email or password.' : ex.message;
      btn.disabled = false;
      btn.textContent = 'Sign in';
      pass.select();
    }
  });
  root.appendChild(h('div', { class: 'login-page' }, form));
  user.focus();
}
