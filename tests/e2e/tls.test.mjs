// Upstream TLS: certificates and host names are verified; a trusted CA can come from SSL_CERT_FILE.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, readSse } from './lib/harness.mjs';

function makeCerts() {
  const dir = mkdtempSync(join(tmpdir(), 'toolgate-tls-'));
  const ossl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ossl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=toolgate test CA');
  ossl('req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
  ossl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem',
    '-days', '2', '-extfile', 'ext.cnf');
  return { dir, ca: join(dir, 'ca.pem'), key: readFileSync(join(dir, 'leaf.key')), cert: readFileSync(join(dir, 'leaf.pem')) };
}

describe('TLS to upstreams', () => {
  let certs, server, port;
  before(async () => {
    certs = makeCerts();
    server = https.createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const json = JSON.parse(body);
        if (json.stream) {
          res.setHeader('content-type', 'text/event-stream');
          res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: json.model, choices: [{ index: 0, delta: { content: 'secure' }, finish_reason: null }] })}\n\n`);
          return res.end('data: [DONE]\n\n');
        }
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: json.model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'over tls' }, finish_reason: 'stop' }] }));
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    port = server.address().port;
  });
  after(async () => {
    server?.close();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  const config = () => `
providers_from_env: false
providers:
  - { name: byname, type: openai, base_url: "https://localhost:${port}/v1", models: [m-name], connect_timeout: 3s }
  - { name: byip, type: openai, base_url: "https://127.0.0.1:${port}/v1", models: [m-ip], connect_timeout: 3s }
`;
  const ask = (gw, model, stream = false) => fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'x' }] }),
  });

  test('a certificate from a trusted CA for the right host name is accepted (plain and stream)', async () => {
    const gw = await startGateway(config(), { env: { SSL_CERT_FILE: certs.ca } });
    try {
      const res = await ask(gw, 'm-name');
      assert.equal(res.status, 200);
      assert.equal((await res.json()).choices[0].message.content, 'over tls');
      const s = await ask(gw, 'm-name', true);
      const events = await readSse(s);
      assert.equal(JSON.parse(events[0]).choices[0].delta.content, 'secure');
      assert.equal(events.at(-1), '[DONE]');
    } finally { await gw.stop(); }
  });

  test('a host name the certificate does not name is refused', async () => {
    const gw = await startGateway(config(), { env: { SSL_CERT_FILE: certs.ca } });
    try {
      const res = await ask(gw, 'm-ip');
      assert.equal(res.status, 502);
      assert.equal((await res.json()).error.code, 'upstream_unreachable');
    } finally { await gw.stop(); }
  });

  test('a certificate from an untrusted CA is refused', async () => {
    const gw = await startGateway(config());
    try {
      const res = await ask(gw, 'm-name');
      assert.equal(res.status, 502);
    } finally { await gw.stop(); }
  });
});
