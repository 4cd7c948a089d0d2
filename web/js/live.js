// live.js — live updates for one device: Server-Sent Events from /api/events, falling back to
// polling the REST endpoints every 2 s while the event stream is unavailable. Both paths emit
// the same event shapes, so views do not care which one is running:
//   telemetry  {deviceId, values: {key: [{ts, value}]}}
//   attributes {deviceId, scope, values: {k: v}}  or  {deviceId, scope, deleted: [k]}
//   activity   {deviceId, active, transport?, observations?, lastActivityTime?}
// subscribeAll() follows the activity events of every device (the device list).

import { session, telemetry as T } from './api.js';

const POLL_MS = 2000;
const SSE_RETRY_MS = 30000;
const SCOPES = ['CLIENT_SCOPE', 'SERVER_SCOPE', 'SHARED_SCOPE'];

export function subscribe(deviceId, onEvent, onMode = () => {}) {
  let es = null;
  let pollTimer = null;
  let retryTimer = null;
  let stopped = false;
  const seen = { ts: {}, attrs: {}, active: undefined };
  let primed = false;

  const emit = (type, data) => { if (!stopped) onEvent(type, data); };

  function startSse() {
    if (stopped || typeof EventSource === 'undefined' || !session.token) { startPolling(); return; }
    onMode('connecting');
    let opened = false;
    es = new EventSource(`/api/events?deviceId=${encodeURIComponent(deviceId)}&token=${encodeURIComponent(session.token)}`);
    es.onopen = () => { opened = true; stopPolling(); onMode('live'); };
    for (const type of ['telemetry', 'attributes', 'activity']) {
      es.addEventListener(type, (ev) => {
        let data;
        try { data = JSON.parse(ev.data); } catch { return; }
        if (data && (!data.deviceId || data.deviceId === deviceId)) emit(type, data);
      });
    }
    es.onerror = () => {
      // A stream that was open reconnects by itself; one that failed (404 before the endpoint
      // exists, 401 on an expired token) is CLOSED: poll instead and try again later.
      if (es.readyState === EventSource.CLOSED || !opened) {
        es.close();
        es = null;
        startPolling();
        retryTimer = setTimeout(() => { retryTimer = null; if (!stopped) startSse(); }, SSE_RETRY_MS);
      } else {
        onMode('connecting');
      }
    };
  }

  function startPolling() {
    if (stopped || pollTimer) return;
    onMode('polling');
    const tick = async () => {
      try { await pollOnce(); } catch { /* transient; next tick retries */ }
      if (!stopped && pollTimer) pollTimer = setTimeout(tick, POLL_MS);
    };
    pollTimer = setTimeout(tick, primed ? POLL_MS : 0);
  }

  function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  async function pollOnce() {
    const latest = await T.latest(deviceId);
    const values = {};
    for (const [k, arr] of Object.entries(latest || {})) {
      const pts = (arr || []).filter((p) => !(seen.ts[k] >= p.ts));
      if (pts.length) {
        values[k] = pts;
        seen.ts[k] = Math.max(...pts.map((p) => p.ts));
      }
    }
    if (primed && Object.keys(values).length) emit('telemetry', { deviceId, values });
    for (const scope of SCOPES) {
      const list = await T.attributes(deviceId, scope);
      const now = {};
      for (const a of list || []) now[a.key] = a.value;
      const before = seen.attrs[scope] || {};
      const changed = {};
      for (const [k, v] of Object.entries(now)) {
        if (JSON.stringify(before[k]) !== JSON.stringify(v)) changed[k] = v;
      }
      const deleted = Object.keys(before).filter((k) => !(k in now));
      seen.attrs[scope] = now;
      if (!primed) continue;
      if (Object.keys(changed).length) emit('attributes', { deviceId, scope, values: changed });
      if (deleted.length) emit('attributes', { deviceId, scope, deleted });
      if (scope === 'SERVER_SCOPE' && 'active' in now && now.active !== seen.active) {
        seen.active = now.active;
        emit('activity', { deviceId, active: !!now.active, lastActivityTime: now.lastActivityTime });
      }
    }
    primed = true;
  }

  startSse();
  return () => {
    stopped = true;
    stopPolling();
    if (retryTimer) clearTimeout(retryTimer);
    if (es) es.close();
  };
}

// Activity of every device: /api/events without deviceId. No polling fallback (the list
// already has one status request per load); a stream that fails is retried every 30 s.
export function subscribeAll(onActivity, onMode = () => {}) {
  let es = null;
  let retryTimer = null;
  let stopped = false;
  function start() {
    if (stopped || typeof EventSource === 'undefined' || !session.token) { onMode('off'); return; }
    let opened = false;
    es = new EventSource(`/api/events?token=${encodeURIComponent(session.token)}`);
    es.onopen = () => { opened = true; onMode('live'); };
    es.addEventListener('activity', (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      if (!stopped && data && data.deviceId) onActivity(data);
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED || !opened) {
        es.close();
        es = null;
        onMode('off');
        retryTimer = setTimeout(() => { retryTimer = null; start(); }, SSE_RETRY_MS);
      } else {
        onMode('connecting');
      }
    };
  }
  start();
  return () => {
    stopped = true;
    if (retryTimer) clearTimeout(retryTimer);
    if (es) es.close();
  };
}
