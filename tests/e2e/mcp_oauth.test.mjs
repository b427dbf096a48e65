// OAuth to an upstream MCP server through the real binary: an MCP server of the official SDK behind
// an authorization server of the tests (lib/oauth_peers.mjs), server-everything over stdio beside it.
// The authorization code flow is driven as an operator would: GET /admin/mcp/servers/NAME/authorize,
// open the URL, follow the redirect back to /oauth/callback. Checked: the other servers do not wait
// for it, discovery + registration + PKCE + resource, refresh before expiry and after a revoked
// token, a revoked refresh token and a refused authorization leaving the server waiting (not
// broken), tokens surviving a restart in the SQLite file (read with the sqlite3 CLI), no token or
// secret in the gateway's output, and the admin routes' errors.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { startGateway, waitFor, freePort, writeConfig, runToolgate, cleanEnv, toolgateBin } from './lib/harness.mjs';
import { startProtectedMcp } from './lib/oauth_peers.mjs';
import { sqlite } from './lib/state_peers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const ADMIN = 'oauth-admin-token';
const admin = { authorization: `Bearer ${ADMIN}` };

const config = (peers, db) => `
providers_from_env: false
admin: { token: ${ADMIN} }
auth: { required: false }
state: { sqlite: { path: "${db}" } }
mcp_servers:
  - name: protected
    url: "${peers.url}"
    auth: { type: oauth }
  - { name: open, command: node, args: ["${everything}", stdio] }
`;

async function servers(gw) {
  const body = await (await fetch(`${gw.url}/v1/mcp/servers`)).json();
  return Object.fromEntries(body.data.map((s) => [s.name, s]));
}

async function call(gw) {
  const res = await fetch(`${gw.url}/v1/mcp/tools/call`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'protected__whoami', arguments: {} }),
  });
  return { status: res.status, text: JSON.stringify(await res.json()) };
}

// The person at the browser: toolgate's URL, the authorization server's redirect, the callback.
async function authorize(gw) {
  const res = await fetch(`${gw.url}/admin/mcp/servers/protected/authorize`, { headers: admin });
  assert.equal(res.status, 200);
  const { authorization_url: url } = await res.json();
  const at = await fetch(url, { redirect: 'manual' });
  assert.equal(at.status, 302);
  const back = at.headers.get('location');
  assert.ok(back.startsWith(`${gw.url}/oauth/callback?`), back);
  const cb = await fetch(back);
  return { status: cb.status, page: await cb.text() };
}

describe('OAuth to an upstream MCP server', () => {
  let peers, gw, dir, db;
  const secrets = () => [...peers.as.access.keys(), ...peers.as.refresh.keys(), ...[...peers.as.clients.values()].map((c) => c.client_secret)];

  before(async () => {
    peers = await startProtectedMcp();
    dir = mkdtempSync(join(tmpdir(), 'toolgate-oauth-'));
    db = join(dir, 'state.db');
    gw = await startGateway(config(peers, db));
  });
  after(async () => {
    await gw?.stop();
    await peers?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a server waiting for authorization says so and holds up nobody', async () => {
    await waitFor(async () => {
      const s = await servers(gw);
      return s.open?.status === 'up' && s.protected?.status === 'needs_authorization';
    }, 20000, 'open up, protected waiting');
    const s = await servers(gw);
    assert.equal(s.protected.auth.state, 'needs_authorization');
    assert.equal(s.protected.auth.authorize, '/admin/mcp/servers/protected/authorize');
    assert.equal(s.protected.tools, 0);
    const tools = (await (await fetch(`${gw.url}/v1/mcp/tools`)).json()).data.map((t) => t.name);
    assert.ok(tools.includes('open__echo'));
    assert.ok(!tools.some((t) => t.startsWith('protected__')));
    const health = await (await fetch(`${gw.url}/health`)).json();
    assert.equal(JSON.stringify(health).includes('needs_authorization'), true, JSON.stringify(health));
    const c = await call(gw);
    assert.notEqual(c.status, 200);
  });

  test('the authorization code flow: registration, PKCE, resource, then the tool works', async () => {
    const cb = await authorize(gw);
    assert.equal(cb.status, 200, cb.page);
    assert.match(cb.page, /Authorized/);
    await waitFor(async () => (await servers(gw)).protected?.status === 'up', 10000, 'protected up');
    const c = await call(gw);
    assert.equal(c.status, 200, c.text);
    assert.match(c.text, /hello from the protected server/);
    assert.deepEqual(peers.as.problems, []);
    assert.equal(peers.as.clients.size, 1, 'registered once');
    const grants = peers.as.requests.filter((r) => r.grant).map((r) => r.grant);
    assert.deepEqual(grants, ['authorization_code']);
  });

  test('a callback is used once; unknown states, servers and a missing admin token are refused', async () => {
    const again = await fetch(`${gw.url}/oauth/callback?code=x&state=${'0'.repeat(32)}`);
    assert.equal(again.status, 400);
    assert.match(await again.text(), /unknown, expired or already used/);
    assert.equal((await fetch(`${gw.url}/admin/mcp/servers/protected/authorize`)).status, 401);
    const nope = await fetch(`${gw.url}/admin/mcp/servers/nope/authorize`, { headers: admin });
    assert.equal(nope.status, 404);
    assert.equal((await nope.json()).error.code, 'mcp_server_not_found');
    const open = await fetch(`${gw.url}/admin/mcp/servers/open/authorize`, { headers: admin });
    assert.equal(open.status, 409);
  });

  test('an expiring token is refreshed before use; a revoked one after its 401', async () => {
    const refreshes = () => peers.as.requests.filter((r) => r.grant === 'refresh_token').length;
    // A token that lives 1 s is renewed after half of it: calls a moment apart refresh it first.
    peers.as.lifetime = 1;
    peers.as.revokeAccess();  // the current one is refused once: 401, refresh, retry
    let c = await call(gw);
    assert.equal(c.status, 200, c.text);
    assert.equal(refreshes(), 1);
    await waitFor(async () => {
      const r = await call(gw);
      assert.equal(r.status, 200, r.text);
      return refreshes() >= 3;
    }, 10000, 'two renewals before expiry');
    peers.as.lifetime = 3600;
    await waitFor(async () => (await call(gw)).status === 200 && refreshes() >= 4, 10000, 'a long-lived token again');
    assert.deepEqual(peers.as.problems, []);
  });

  test('tokens survive a restart in the SQLite file, and are refreshed after it', async () => {
    // The saved token is short-lived: the restarted gateway must find the authorization server
    // again and refresh it.
    peers.as.lifetime = 1;
    peers.as.revokeAccess();
    assert.equal((await call(gw)).status, 200);
    peers.as.lifetime = 3600;
    const refreshesBefore = peers.as.requests.filter((r) => r.grant === 'refresh_token').length;
    const rows = await sqlite(db, "SELECT name, value FROM secrets WHERE name LIKE 'mcp_oauth:protected %'");
    assert.equal(rows.length, 1);
    assert.equal(rows[0].name, `mcp_oauth:protected ${peers.url}`);
    const saved = JSON.parse(rows[0].value);
    assert.equal(saved.issuer, peers.as.url, 'the tokens name their authorization server');
    assert.ok(peers.as.refresh.has(saved.refresh_token), 'the current refresh token is the saved one');
    await gw.stop();
    const authorizations = peers.as.requests.filter((r) => r.path === '/authorize').length;
    gw = await startGateway(config(peers, db));
    await waitFor(async () => (await servers(gw)).protected?.status === 'up', 20000, 'protected up after a restart');
    const c = await call(gw);
    assert.equal(c.status, 200, c.text);
    assert.equal(peers.as.requests.filter((r) => r.path === '/authorize').length, authorizations, 'no new authorization');
    assert.ok(peers.as.requests.filter((r) => r.grant === 'refresh_token').length > refreshesBefore, 'refreshed after the restart');
    assert.equal(peers.as.clients.size, 1, 'no new registration');
  });

  test('a revoked refresh token puts the server back to waiting; a refused authorization keeps it there', async () => {
    peers.as.revokeAll();
    const c = await call(gw);
    assert.notEqual(c.status, 200);
    assert.match(c.text, /needs authorization/);
    await waitFor(async () => (await servers(gw)).protected?.status === 'needs_authorization', 10000, 'waiting again');
    peers.as.deny = true;
    const cb = await authorize(gw);
    assert.equal(cb.status, 400);
    assert.match(cb.page, /refused access to MCP server &#39;protected&#39; \(access_denied: the user said no\)/);
    assert.equal((await servers(gw)).protected.status, 'needs_authorization');
    peers.as.deny = false;
    assert.equal((await authorize(gw)).status, 200);
    await waitFor(async () => (await servers(gw)).protected?.status === 'up', 10000, 'protected up again');
    assert.equal((await call(gw)).status, 200);
  });

  test('a callback naming another authorization server is refused (RFC 9207)', async () => {
    peers.as.revokeAll();
    await call(gw);
    await waitFor(async () => (await servers(gw)).protected?.status === 'needs_authorization', 10000, 'waiting again');
    peers.as.iss = 'https://evil.example.com';
    const cb = await authorize(gw);
    assert.equal(cb.status, 502);
    assert.match(cb.page, /another authorization server/);
    peers.as.iss = peers.as.url;  // its own name: accepted
    assert.equal((await authorize(gw)).status, 200);
    peers.as.iss = null;
    await waitFor(async () => (await servers(gw)).protected?.status === 'up', 10000, 'protected up again');
  });

  test('no token, code or client secret reaches the gateway\'s output', async () => {
    const out = gw.logs + gw.stdout;
    for (const s of secrets()) assert.ok(!out.includes(s), 'a secret in the output');
    for (const t of peers.rs.tokensSeen) assert.ok(!out.includes(t), 'an access token in the output');
  });
});

describe('toolgate mcp-login', () => {
  let peers, dir, gw;
  before(async () => {
    peers = await startProtectedMcp();
    dir = mkdtempSync(join(tmpdir(), 'toolgate-login-'));
  });
  after(async () => {
    await gw?.stop();
    await peers?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('prints the URL, takes the redirect on its loopback port, and serve starts authorized', async () => {
    const port = await freePort();
    const db = join(dir, 'state.db');
    const yaml = config(peers, db).replace('auth: { type: oauth }', `auth: { type: oauth, redirect_uri: "http://127.0.0.1:${port}/oauth/callback" }`);
    const cfg = writeConfig(yaml);
    const proc = spawn(toolgateBin, ['mcp-login', '-c', cfg.file, 'protected'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (err += d));
    const exited = new Promise((r) => proc.on('exit', r));
    try {
      await waitFor(() => /https?:\/\/\S+\/authorize\?\S+/.test(out), 10000, 'the URL on stdout');
      const url = out.match(/https?:\/\/\S+\/authorize\?\S+/)[0];
      const at = await fetch(url, { redirect: 'manual' });
      const back = at.headers.get('location');
      assert.ok(back.startsWith(`http://127.0.0.1:${port}/oauth/callback?`), back);
      const cb = await fetch(back);
      assert.equal(cb.status, 200);
      assert.equal(await exited, 0, out + err);
    } finally {
      proc.kill('SIGKILL');
      cfg.cleanup();
    }
    assert.match(out, /Authorized/);
    assert.deepEqual(peers.as.problems, []);
    for (const t of [...peers.as.access.keys(), ...peers.as.refresh.keys()]) assert.ok(!(out + err).includes(t));
    gw = await startGateway(yaml);
    await waitFor(async () => (await servers(gw)).protected?.status === 'up', 20000, 'protected up with the saved tokens');
    assert.equal((await call(gw)).status, 200);
    assert.equal(peers.as.requests.filter((r) => r.path === '/authorize').length, 1);
  });

  test('refuses what it cannot do, with a reason', async () => {
    const cfg = writeConfig(config(peers, join(dir, 'other.db')));
    try {
      const none = await runToolgate(['mcp-login', '-c', cfg.file, 'nope']);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /no MCP server named 'nope'/);
      const open = await runToolgate(['mcp-login', '-c', cfg.file, 'open']);
      assert.equal(open.code, 2);
      assert.match(open.stderr, /has no 'auth: \{ type: oauth \}'/);
    } finally {
      cfg.cleanup();
    }
  });
});
