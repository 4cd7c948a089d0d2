// tab-chart.js — time series of chosen keys over a chosen range, drawn with uPlot (loaded on
// first use from static/vendor/, which the build fills from web/package.json) and extended live
// for relative ranges.

import { h, clear, spinner, errorBox } from './dom.js';
import { telemetry } from './api.js';

const RANGES = [
  { id: '5m', label: 'Last 5 min', ms: 5 * 60e3 },
  { id: '1h', label: 'Last hour', ms: 3600e3 },
  { id: '1d', label: 'Last day', ms: 86400e3 },
  { id: 'custom', label: 'Custom…' },
];
const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];
const MAX_POINTS = 20000;

let uplotLoad = null;
function loadUPlot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!uplotLoad) {
    uplotLoad = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = new URL('../vendor/uPlot.iife.min.js', import.meta.url).href;
      s.onload = () => (window.uPlot ? resolve(window.uPlot) : reject(new Error('uPlot did not load')));
      s.onerror = () => { uplotLoad = null; reject(new Error('The chart library could not be loaded.')); };
      document.head.appendChild(s);
    });
  }
  return uplotLoad;
}

function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 16);
}

export function chartTab(panel, { id }) {
  let alive = true;
  let plot = null;
  let ro = null;
  let keys = [];
  const chosen = new Set();
  const series = new Map(); // key -> [[ts, value]] ascending
  let range = RANGES[0];
  let custom = { from: Date.now() - 3600e3, to: Date.now() };
  let redrawQueued = false;

  const rangeSel = h('select', { id: 'chart-range', 'aria-label': 'Time range' }, RANGES.map((r) => h('option', { value: r.id }, r.label)));
  const from = h('input', { type: 'datetime-local', 'aria-label': 'From', value: toLocalInput(custom.from) });
  const to = h('input', { type: 'datetime-local', 'aria-label': 'To', value: toLocalInput(custom.to) });
  const customBox = h('div', { class: 'custom-range', hidden: true }, from, h('span', {}, '→'), to,
    h('button', { type: 'button', class: 'btn btn-small', onclick: () => {
      const f = new Date(from.value).getTime(); const t = new Date(to.value).getTime();
      if (!(f < t)) { status.textContent = 'Pick a start before the end.'; return; }
      custom = { from: f, to: t }; fetchData();
    } }, 'Apply'));
  const keyBox = h('fieldset', { class: 'key-picker' }, h('legend', {}, 'Keys'));
  const status = h('div', { class: 'muted small', role: 'status' });
  const chartEl = h('div', { class: 'chart', id: 'chart' });
  rangeSel.addEventListener('change', () => {
    range = RANGES.find((r) => r.id === rangeSel.value);
    customBox.hidden = range.id !== 'custom';
    if (range.id !== 'custom') fetchData();
  });

  function window_() {
    return range.ms ? { from: Date.now() - range.ms, to: Date.now() } : custom;
  }

  async function init() {
    clear(panel, spinner('Loading keys…'));
    try {
      keys = ((await telemetry.keys(id)) || []).slice().sort();
      if (!alive) return;
      if (!keys.length) {
        clear(panel, h('div', { class: 'empty' }, h('p', {}, 'No time series yet.'), h('p', { class: 'muted' }, 'The chart fills in once the device sends numeric telemetry.')));
        return;
      }
      keys.slice(0, 3).forEach((k) => chosen.add(k));
      renderKeys();
      clear(panel, h('div', { class: 'chart-controls' }, rangeSel, customBox, keyBox), chartEl, status);
      await fetchData();
    } catch (e) { if (alive) clear(panel, errorBox(e, init)); }
  }

  function renderKeys() {
    clear(keyBox, h('legend', {}, 'Keys'), keys.map((k, i) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', checked: chosen.has(k), value: k, onchange: (e) => {
        if (e.target.checked) chosen.add(k); else chosen.delete(k);
        fetchData();
      } }),
      h('span', { class: 'swatch', dataset: { c: String(i % COLORS.length) } }), k)));
    // Swatch colours come from CSS classes (no inline styles under the CSP).
    keyBox.querySelectorAll('.swatch').forEach((s) => s.classList.add(`c${s.dataset.c}`));
  }

  async function fetchData() {
    const ks = keys.filter((k) => chosen.has(k));
    series.clear();
    if (!ks.length) { status.textContent = 'Choose at least one key.'; draw(); return; }
    status.textContent = 'Loading…';
    try {
      const w = window_();
      const [U, data] = await Promise.all([loadUPlot(), telemetry.range(id, ks, Math.floor(w.from), Math.ceil(w.to), MAX_POINTS)]);
      if (!alive) return;
      for (const k of ks) {
        series.set(k, (data && data[k] ? data[k] : []).map((p) => [p.ts, Number(p.value)]).filter((p) => Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]));
      }
      const n = [...series.values()].reduce((a, s) => a + s.length, 0);
      status.textContent = n ? `${n} points${range.ms ? ' · updating live' : ''}` : 'No numeric values in this range.';
      draw(U);
    } catch (e) {
      if (alive) status.textContent = e.message;
    }
  }

  function buildData() {
    const ks = [...series.keys()];
    const tsSet = new Set();
    for (const s of series.values()) for (const p of s) tsSet.add(p[0]);
    const xs = [...tsSet].sort((a, b) => a - b);
    const idx = new Map(xs.map((t, i) => [t, i]));
    const ys = ks.map((k) => {
      const arr = new Array(xs.length).fill(null);
      for (const [t, v] of series.get(k)) arr[idx.get(t)] = v;
      return arr;
    });
    return { ks, data: [xs.map((t) => t / 1000), ...ys] };
  }

  function draw(U = window.uPlot) {
    if (!U || !alive) return;
    const { ks, data } = buildData();
    const width = Math.max(280, chartEl.clientWidth || panel.clientWidth - 32);
    const height = window.innerWidth < 600 ? 240 : 340;
    const w = window_();
    const opts = {
      width, height,
      scales: { x: { time: true, range: () => [w.from / 1000, (range.ms ? Date.now() : w.to) / 1000] } },
      series: [{}, ...ks.map((k) => ({ label: k, stroke: COLORS[keys.indexOf(k) % COLORS.length], width: 2, spanGaps: true, points: { size: 4 } }))],
      axes: [{ stroke: '#6b7280', grid: { stroke: '#eef0f3' } }, { stroke: '#6b7280', grid: { stroke: '#eef0f3' } }],
      legend: { live: true },
    };
    if (plot) plot.destroy();
    clear(chartEl);
    plot = new U(opts, data, chartEl);
    if (!ro) {
      ro = new ResizeObserver(() => { if (plot && chartEl.clientWidth) plot.setSize({ width: chartEl.clientWidth, height }); });
      ro.observe(chartEl);
    }
  }

  function queueRedraw() {
    if (redrawQueued) return;
    redrawQueued = true;
    requestAnimationFrame(() => {
      redrawQueued = false;
      if (!plot || !alive) return;
      const w = window_();
      for (const [k, s] of series) {
        while (s.length && s[0][0] < w.from) s.shift();
        series.set(k, s);
      }
      const { data } = buildData();
      plot.setData(data);
      const n = [...series.values()].reduce((a, x) => a + x.length, 0);
      status.textContent = `${n} points · updating live`;
    });
  }

  init();
  return {
    onEvent(type, data) {
      if (type !== 'telemetry' || !range.ms || !data.values) return;
      let hit = false;
      for (const [k, arr] of Object.entries(data.values)) {
        if (!keys.includes(k)) { keys.push(k); keys.sort(); renderKeys(); }
        if (!series.has(k)) continue;
        const s = series.get(k);
        for (const p of arr || []) {
          const v = Number(p.value);
          if (Number.isFinite(v) && !s.some((q) => q[0] === p.ts)) { s.push([p.ts, v]); hit = true; }
        }
        s.sort((a, b) => a[0] - b[0]);
      }
      if (hit) queueRedraw();
    },
    destroy() { alive = false; if (ro) ro.disconnect(); if (plot) plot.destroy(); },
  };
}
