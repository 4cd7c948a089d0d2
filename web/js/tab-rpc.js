// tab-rpc.js — the RPC console: method, JSON params, one-way or two-way, timeout; a log of
// calls with the device's reply, the timeout, or the error.

import { h, clear, field } from './dom.js';
import { rpc } from './api.js';

export function rpcTab(panel, { id }) {
  let alive = true;
  const method = h('input', { id: 'rpc-method', name: 'method', required: true, autocomplete: 'off', placeholder: 'e.g. getTemperature', maxlength: 255 });
  const params = h('textarea', { id: 'rpc-params', name: 'params', rows: 4, spellcheck: false, class: 'mono' });
  params.value = '{}';
  const timeout = h('input', { id: 'rpc-timeout', name: 'timeout', type: 'number', min: 1000, max: 600000, step: 1000, value: 10000 });
  const twoWay = h('input', { type: 'radio', name: 'rpc-kind', value: 'twoway', checked: true, id: 'rpc-twoway' });
  const oneWay = h('input', { type: 'radio', name: 'rpc-kind', value: 'oneway', id: 'rpc-oneway' });
  const fMethod = field('Method', method);
  const fParams = field('Params (JSON)', params);
  const fTimeout = field('Timeout (ms)', timeout);
  const log = h('ol', { class: 'rpc-log', id: 'rpc-log', 'aria-live': 'polite' });
  const send = h('button', { type: 'submit', class: 'btn btn-primary', id: 'rpc-send' }, 'Send');
  const form = h('form', { class: 'rpc-form', novalidate: true },
    h('fieldset', { class: 'radio-row' }, h('legend', {}, 'Kind'),
      h('label', { class: 'check' }, twoWay, 'Two-way (wait for the reply)'),
      h('label', { class: 'check' }, oneWay, 'One-way')),
    h('div', { class: 'grid-2' }, fMethod, fTimeout), fParams,
    h('div', { class: 'actions' }, send));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fMethod.setError(''); fParams.setError(''); fTimeout.setError('');
    const m = method.value.trim();
    if (!m) { fMethod.setError('Enter the method the device expects.'); method.focus(); return; }
    let p;
    try { p = params.value.trim() ? JSON.parse(params.value) : {}; } catch (ex) {
      fParams.setError(`Params must be valid JSON (${ex.message}).`); params.focus(); return;
    }
    const t = Number(timeout.value);
    if (!(t >= 1000 && t <= 600000)) { fTimeout.setError('Between 1000 and 600000 ms.'); return; }
    const two = twoWay.checked;
    const entry = h('li', { class: 'rpc-entry pending' },
      h('div', { class: 'rpc-req' }, h('span', { class: 'badge' }, two ? 'two-way' : 'one-way'), ' ', h('span', { class: 'mono' }, m), ' ',
        h('span', { class: 'mono muted' }, JSON.stringify(p)), h('span', { class: 'muted small' }, ` · ${new Date().toLocaleTimeString(undefined, { hour12: false })}`)),
      h('div', { class: 'rpc-res muted' }, two ? 'Waiting for the device…' : 'Sending…'));
    log.prepend(entry);
    send.disabled = true;
    const started = performance.now();
    const res = entry.querySelector('.rpc-res');
    try {
      const reply = await rpc.send(id, two, { method: m, params: p, timeout: t });
      if (!alive) return;
      const ms = Math.round(performance.now() - started);
      entry.className = 'rpc-entry ok';
      clear(res, two ? [h('span', {}, `Reply after ${ms} ms: `), h('code', { class: 'rpc-reply' }, reply === null ? 'null' : JSON.stringify(reply))]
        : `Delivered to the device (${ms} ms).`);
    } catch (ex) {
      if (!alive) return;
      entry.className = 'rpc-entry err';
      const timedOut = ex.status === 408 || ex.status === 504;
      res.textContent = timedOut ? `Timed out: the device did not answer within ${t} ms.`
        : ex.status === 409 ? `The device is not connected or not subscribed to RPC (${ex.message}).` : ex.message;
    } finally {
      send.disabled = false;
    }
  });

  clear(panel, h('div', { class: 'rpc' }, h('h2', { class: 'tab-title' }, 'RPC console'), form,
    h('h3', {}, 'Calls'), log));
  return { destroy() { alive = false; } };
}
