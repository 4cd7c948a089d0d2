// api.js — the ThingsBoard-shaped REST client: JWT in localStorage (so a reload keeps the
// session), X-Authorization header, one transparent refresh (POST /api/auth/token) on 401.

const K_TOKEN = 'coaphub.token';
const K_REFRESH = 'coaphub.refreshToken';
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export const session = {
  get token() { return localStorage.getItem(K_TOKEN); },
  get refreshToken() { return localStorage.getItem(K_REFRESH); },
  set(token, refreshToken) {
    localStorage.setItem(K_TOKEN, token);
    if (refreshToken) localStorage.setItem(K_REFRESH, refreshToken);
  },
  clear() {
    localStorage.removeItem(K_TOKEN);
    localStorage.removeItem(K_REFRESH);
    for (const f of listeners) f();
  },
  onLogout(f) { listeners.add(f); },
};

// Turns an error response into one readable sentence: the server's "message" if it sent one
// (ThingsBoard error JSON), else a description of the status.
async function errorFrom(res) {
  let body = null;
  let msg = '';
  try {
    const text = await res.text();
    try { body = JSON.parse(text); } catch { body = text; }
  } catch { /* body unreadable: keep the status text */ }
  if (body && typeof body === 'object' && typeof body.message === 'string') msg = body.message;
  else if (typeof body === 'string' && body.length && body.length < 200 && !body.startsWith('<')) msg = body;
  if (!msg) {
    const words = { 400: 'The request was rejected', 401: 'Your session has expired — please sign in again',
      403: 'You are not allowed to do this', 404: 'Not found', 408: 'Timed out', 409: 'Conflict',
      413: 'Too large', 429: 'Too many requests — try again shortly', 500: 'Server error',
      502: 'The server is not reachable', 503: 'The server is busy', 504: 'Timed out' };
    msg = words[res.status] || `HTTP ${res.status}`;
  }
  return new ApiError(res.status, msg, body);
}

let refreshing = null;
async function refresh() {
  const rt = session.refreshToken;
  if (!rt) return false;
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const res = await fetch('/api/auth/token', {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ refreshToken: rt }),
        });
        if (!res.ok) return false;
        const j = await res.json();
        if (!j.token) return false;
        session.set(j.token, j.refreshToken);
        return true;
      } catch { return false; } finally { setTimeout(() => { refreshing = null; }, 0); }
    })();
  }
  return refreshing;
}

export async function api(method, path, body, { auth = true, retry = true, signal } = {}) {
  const headers = { Accept: 'application/json' };
  // A FormData body (a file upload) is sent as multipart/form-data: the browser writes the
  // Content-Type with its boundary itself.
  const form = typeof FormData !== 'undefined' && body instanceof FormData;
  if (body !== undefined && !form) headers['Content-Type'] = 'application/json';
  if (auth && session.token) headers['X-Authorization'] = `Bearer ${session.token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, signal,
      body: body === undefined ? undefined : form ? body : JSON.stringify(body) });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Cannot reach the server — check that coaphub is running');
  }
  if (res.status === 401 && auth && retry) {
    if (await refresh()) return api(method, path, body, { auth, retry: false, signal });
    session.clear();
  }
  if (!res.ok) throw await errorFrom(res);
  const text = await res.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch { return text; }
}

// A file behind authentication (an OTA package): the bytes as a Blob and the server's file
// name (Content-Disposition), for a download link made from an object URL.
export async function download(path) {
  let res;
  try {
    res = await fetch(path, { headers: { 'X-Authorization': `Bearer ${session.token}` } });
  } catch {
    throw new ApiError(0, 'Cannot reach the server — check that coaphub is running');
  }
  if (res.status === 401 && await refresh()) return download(path);
  if (!res.ok) throw await errorFrom(res);
  const cd = res.headers.get('Content-Disposition') || '';
  const m = cd.match(/filename\*?=(?:UTF-8'')?"?([^";]+)"?/i);
  return { blob: await res.blob(), fileName: m ? decodeURIComponent(m[1]) : '' };
}

export async function login(username, password) {
  const j = await api('POST', '/api/auth/login', { username, password }, { auth: false });
  if (!j || !j.token) throw new ApiError(500, 'The server did not return a token');
  session.set(j.token, j.refreshToken);
  return j;
}

export async function logout() {
  try { await api('POST', '/api/auth/logout', undefined, { retry: false }); } catch { /* ignore */ }
  session.clear();
}

const enc = encodeURIComponent;
const TM = '/api/plugins/telemetry/DEVICE';

export const devices = {
  list: ({ page = 0, pageSize = 20, textSearch = '', sortProperty = 'createdTime', sortOrder = 'DESC' }, signal) =>
    api('GET', `/api/tenant/devices?pageSize=${pageSize}&page=${page}` +
      `${textSearch ? `&textSearch=${enc(textSearch)}` : ''}&sortProperty=${enc(sortProperty)}&sortOrder=${sortOrder}`,
    undefined, { signal }),
  get: (id) => api('GET', `/api/device/${enc(id)}`),
  save: (dev) => api('POST', '/api/device', dev),
  remove: (id) => api('DELETE', `/api/device/${enc(id)}`),
  credentials: (id) => api('GET', `/api/device/${enc(id)}/credentials`),
  saveCredentials: (c) => api('POST', '/api/device/credentials', c),
  credentialsInfo: (id) => api('GET', `/api/device/${enc(id)}/credentials/info`),
  // Live status of several devices in one request: {uuid: {active, transport, observations,
  // lastActivityTime}} (coaphub's own endpoint, not ThingsBoard's).
  status: (ids, signal) => api('GET', `/api/coaphub/devices/status?ids=${ids.map(enc).join(',')}`,
    undefined, { signal }),
};

// ThingsBoard's page query string: pageSize, page, textSearch, sortProperty, sortOrder.
function pageQuery({ page = 0, pageSize = 20, textSearch = '', sortProperty, sortOrder = 'ASC' }) {
  return `pageSize=${pageSize}&page=${page}${textSearch ? `&textSearch=${enc(textSearch)}` : ''}` +
    `${sortProperty ? `&sortProperty=${enc(sortProperty)}&sortOrder=${sortOrder}` : ''}`;
}

// Device profiles (ThingsBoard's DeviceProfileController).
export const profiles = {
  list: (q, signal) => api('GET', `/api/deviceProfiles?${pageQuery({ sortProperty: 'name', ...q })}`, undefined, { signal }),
  get: (id) => api('GET', `/api/deviceProfile/${enc(id)}`),
  save: (p) => api('POST', '/api/deviceProfile', p),
  remove: (id) => api('DELETE', `/api/deviceProfile/${enc(id)}`),
  setDefault: (id) => api('POST', `/api/deviceProfile/${enc(id)}/default`),
  defaultInfo: () => api('GET', '/api/deviceProfileInfo/default'),
  // Every profile (for selects): pages of 100 until the last one.
  async all() {
    const out = [];
    for (let page = 0; page < 100; page++) {
      const pg = await profiles.list({ page, pageSize: 100 });
      out.push(...(pg.data || []));
      if (!pg.hasNext) break;
    }
    return out;
  },
};

// OTA packages (ThingsBoard's OtaPackageController). A package is made in two steps, as
// ThingsBoard's UI does: the info (title, version, type, profile), then its file.
export const ota = {
  list: (q, signal) => api('GET', `/api/otaPackages?${pageQuery({ sortProperty: 'createdTime', sortOrder: 'DESC', ...q })}`, undefined, { signal }),
  // Packages of one profile and type that have a file (what a profile or device may be given).
  forProfile: (profileId, type) =>
    api('GET', `/api/otaPackages/${enc(profileId)}/${enc(type)}?pageSize=100&page=0&sortProperty=createdTime&sortOrder=DESC`),
  info: (id) => api('GET', `/api/otaPackage/info/${enc(id)}`),
  save: (info) => api('POST', '/api/otaPackage', info),
  upload: (id, file, checksumAlgorithm = 'SHA256') => {
    const fd = new FormData();
    fd.append('file', file, file.name);
    return api('POST', `/api/otaPackage/${enc(id)}?checksumAlgorithm=${enc(checksumAlgorithm)}`, fd);
  },
  download: (id) => download(`/api/otaPackage/${enc(id)}/download`),
  remove: (id) => api('DELETE', `/api/otaPackage/${enc(id)}`),
};

export const telemetry = {
  keys: (id) => api('GET', `${TM}/${enc(id)}/keys/timeseries`),
  latest: (id, keys) => api('GET', `${TM}/${enc(id)}/values/timeseries?useStrictDataTypes=true` +
    (keys && keys.length ? `&keys=${keys.map(enc).join(',')}` : '')),
  range: (id, keys, startTs, endTs, limit = 10000) =>
    api('GET', `${TM}/${enc(id)}/values/timeseries?keys=${keys.map(enc).join(',')}` +
      `&startTs=${startTs}&endTs=${endTs}&limit=${limit}&agg=NONE&orderBy=ASC&useStrictDataTypes=true`),
  attributes: (id, scope, keys) => api('GET', `${TM}/${enc(id)}/values/attributes/${scope}` +
    (keys ? `?keys=${keys.map(enc).join(',')}` : '')),
  saveAttributes: (id, scope, obj) => api('POST', `${TM}/${enc(id)}/attributes/${scope}`, obj),
  deleteAttributes: (id, scope, keys) =>
    api('DELETE', `${TM}/${enc(id)}/${scope}?keys=${keys.map(enc).join(',')}`),
};

export const rpc = {
  send: (id, twoWay, req) => api('POST', `/api/rpc/${twoWay ? 'twoway' : 'oneway'}/${enc(id)}`, req),
};

export const server = {
  connectivity: () => api('GET', '/api/noauth/connectivity', undefined, { auth: false }),
  user: () => api('GET', '/api/auth/user'),
};
