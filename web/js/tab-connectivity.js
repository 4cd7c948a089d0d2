// tab-connectivity.js — ready-to-copy libcoap client commands for this device, with this
// server's real host and ports, and the server certificate to download for -R.

import { h, clear, spinner, errorBox, copyButton } from './dom.js';
import { devices, server } from './api.js';

// Single-quotes a shell word unless it is plainly safe.
function sh(s) {
  return /^[A-Za-z0-9_.:/@%+=,-]+$/.test(s) ? s : `'${String(s).replace(/'/g, "'\\''")}'`;
}

function hostForUrl(host) {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export function connectivityTab(panel, { id }) {
  let alive = true;

  async function load() {
    clear(panel, spinner('Preparing commands…'));
    let conn = null;
    try { conn = await server.connectivity(); } catch { /* endpoint not there yet: use defaults */ }
    const host = hostForUrl((conn && conn.host) || location.hostname || 'localhost');
    const coapPort = (conn && conn.coapPort) || 5683;
    const coapsPort = (conn && conn.coapsPort) || 5684;
    const certUrl = new URL((conn && conn.serverCertUrl) || '/api/noauth/server-cert.pem', location.href).href;
    let cred;
    try { cred = await devices.credentials(id); } catch (e) { if (alive) clear(panel, errorBox(e, load)); return; }
    if (!alive) return;
    const payload = sh('{"temperature":43}');
    const coap = `coap://${host}${coapPort === 5683 ? '' : `:${coapPort}`}`;
    const coaps = `coaps://${host}${coapsPort === 5684 ? '' : `:${coapsPort}`}`;
    const blocks = [];
    if (cred.credentialsType === 'PSK') {
      // libcoap 4.3.1's -k takes the key as text: show it so when the key's bytes are printable.
      const hex = cred.credentialsValue || '';
      const bytes = (hex.match(/../g) || []).map((x) => parseInt(x, 16));
      const printable = bytes.length > 0 && bytes.every((b) => b >= 0x20 && b < 0x7f);
      const key = printable ? sh(String.fromCharCode(...bytes)) : 'KEY';
      const ident = sh(cred.credentialsId || 'IDENTITY');
      blocks.push(['Send telemetry over DTLS with the pre-shared key (PSK)',
        `coap-client-openssl -u ${ident} -k ${key} -m POST -t "application/json" -e ${payload} ${coaps}/api/v1/telemetry`,
        printable ? 'The identity names the device: no token in the path.'
          : 'This key is not printable text; coap-client\'s -k takes text, so use a device or library that takes the key as bytes (hex shown in Credentials).']);
      blocks.push(['…the same with OpenSSL\'s own client (handshake only)',
        `openssl s_client -dtls1_2 -psk ${sh(hex || 'HEX')} -psk_identity ${ident} -cipher PSK-AES128-CCM8 -connect ${host}:${coapsPort}`]);
      blocks.push(['Watch shared attributes (Observe)',
        `coap-client-openssl -u ${ident} -k ${key} -m GET -s 60 ${coaps}/api/v1/attributes`]);
      blocks.push(['Receive server-side RPC (Observe)',
        `coap-client-openssl -u ${ident} -k ${key} -m GET -s 60 ${coaps}/api/v1/rpc`]);
    } else if (cred.credentialsType === 'X509_CERTIFICATE') {
      blocks.push(['Send telemetry over DTLS with the device certificate (X.509)',
        `coap-client-openssl -c cert.pem -j key.pem -m POST -t "application/json" -e ${payload} ${coaps}/api/v1/telemetry`,
        'cert.pem and key.pem are the device certificate registered in Credentials and its private key.']);
      blocks.push(['…and also verify the server certificate',
        `coap-client-openssl -c cert.pem -j key.pem -R server-cert.pem -m POST -t "application/json" -e ${payload} ${coaps}/api/v1/telemetry`]);
      blocks.push(['Watch shared attributes (Observe)',
        `coap-client-openssl -c cert.pem -j key.pem -m GET -s 60 ${coaps}/api/v1/attributes`]);
      blocks.push(['Receive server-side RPC (Observe)',
        `coap-client-openssl -c cert.pem -j key.pem -m GET -s 60 ${coaps}/api/v1/rpc`]);
    } else {
      const t = encodeURIComponent(cred.credentialsId || 'ACCESS_TOKEN');
      blocks.push(['Send telemetry over plain CoAP (UDP)',
        `coap-client-notls -m POST -t "application/json" -e ${payload} ${coap}/api/v1/${t}/telemetry`]);
      blocks.push(['Send telemetry over DTLS (token, server certificate checked)',
        `coap-client-openssl -R server-cert.pem -m POST -t "application/json" -e ${payload} ${coaps}/api/v1/${t}/telemetry`,
        'One-way DTLS: the device checks the server with -R and proves itself with the token.']);
      blocks.push(['Send telemetry over HTTP (ThingsBoard\'s HTTP device API, this web port)',
        `curl -v -X POST -H 'Content-Type: application/json' -d ${payload} ${sh(`${location.origin}/api/v1/${t}/telemetry`)}`,
        'Answered 200 once the point is on disk; attributes, RPC, claim and firmware work over HTTP too.']);
      blocks.push(['Watch shared attributes (Observe)',
        `coap-client-notls -m GET -s 60 ${coap}/api/v1/${t}/attributes`]);
      blocks.push(['Receive server-side RPC (Observe)',
        `coap-client-notls -m GET -s 60 ${coap}/api/v1/${t}/rpc`]);
    }
    blocks.push(['Download the server certificate (for -R)', `curl -fsS -o server-cert.pem ${sh(certUrl)}`]);
    clear(panel,
      h('div', { class: 'tab-head' }, h('h2', { class: 'tab-title' }, 'Check connectivity'), h('div', { class: 'spacer' }),
        h('a', { class: 'btn', href: certUrl, download: 'server-cert.pem', id: 'server-cert' }, 'Download server-cert.pem')),
      h('p', { class: 'muted' }, `Server ${host} · CoAP udp/${coapPort} · CoAPS (DTLS) udp/${coapsPort}. Commands use libcoap's clients (Debian package libcoap3-bin).`),
      blocks.map(([title, cmd, hint]) => h('div', { class: 'cmd-block' },
        h('div', { class: 'cmd-head' }, h('h3', {}, title), copyButton(() => cmd)),
        h('pre', { class: 'cmd', tabindex: '0' }, h('code', {}, cmd)),
        hint ? h('p', { class: 'muted small' }, hint) : null)));
  }

  load();
  return { destroy() { alive = false; } };
}
