// Virtual keys, rate limits, budgets, the admin API and the request log through the real binary:
// the official openai SDK (and plain fetch where headers matter) as the client, fake upstreams in
// this process, the real sqlite3 CLI reading the gateway's database file, real redis-server
// processes shared by two gateway replicas (killed and restarted mid-run), and the MCP SDK's
// client on /mcp. Every scenario has its own small gateway config and stops what it starts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startGateway, waitFor, toolgateBin } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { startRedis, sqlite, sqliteText, startPostgres, psql } from './lib/state_peers.mjs';

// --- helpers -------------------------------------------------------------------------------------

const ADMIN = 'admin-secret';
const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const today = () => new Date().toISOString().slice(0, 10);  // the UTC day, as the ledger names it
const month = () => new Date().toISOString().slice(0, 7);
const micros = (usd) => Math.round(usd * 1e6);
const user = (content) => [{ role: 'user', content }];
// Budgets or an admin token without a state section mean ./toolgate.db: every config here names
// its own file in a temporary directory, and the last test checks that none was left behind.
const strayDb = () => ['toolgate.db', 'toolgate.db-wal', 'toolgate.db-shm'].filter((f) => existsSync(f));
const strayBefore = strayDb();
const MODELS = ['mock-1', 'mock-2', 'mock-free', 'mock-agent', 'mock-stream'];

// One provider line for an upstream; `prices` maps models to {input, output} USD per million
// tokens (written as JSON, which is YAML flow).
const provider = (up, prices = {}) =>
  `  - { name: fake, type: openai, base_url: "${up.url}", api_key: sk-fake, timeout: 20s, models: ${JSON.stringify(MODELS)}, prices: ${JSON.stringify(prices)} }`;

// What a test started, stopped when it ends, last started first (gateways before the redis-server
// and the directory they use); every step runs even when one fails.
const stacks = new WeakMap();
function defer(t, fn) {
  let stack = stacks.get(t);
  if (!stack) {
    stack = [];
    stacks.set(t, stack);
    t.after(async () => {
      let first = null;
      while (stack.length) { try { await stack.pop()(); } catch (e) { first ??= e; } }
      if (first) throw first;
    });
  }
  stack.push(fn);
}

// A temporary directory the test removes itself (gw.stop() removes only the config's own dir).
function tempDir(t, prefix = 'toolgate-keys-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function assertClean(gw) {
  assert.doesNotMatch(gw.logs, /AddressSanitizer|LeakSanitizer|runtime error:/, `sanitizer report:\n${gw.logs.slice(-4000)}`);
}

// A gateway stopped when the test `t` ends (and checked for sanitizer reports).
async function gateway(t, yaml) {
  const gw = await startGateway(yaml);
  defer(t, async () => { await gw.stop(); assertClean(gw); });
  return gw;
}

const why = (r, gw) => `response: ${JSON.stringify(r)}\n--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;

// A chat request with plain fetch: status, headers, parsed body.
async function chat(gw, key, body, extraHeaders = {}) {
  const headers = { 'content-type': 'application/json', ...extraHeaders };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers, body: JSON.stringify({ model: 'mock-1', messages: user('hi'), ...body }) });
  const raw = await res.text();
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, headers: Object.fromEntries(res.headers), json, raw };
}

// The admin API with the admin token (or another, or none: token null).
async function admin(gw, method, path, body, token = ADMIN) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(gw.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const raw = await res.text();
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, json, raw, headers: Object.fromEntries(res.headers) };
}

const sdk = (gw, apiKey) => new OpenAI({ baseURL: gw.url + '/v1', apiKey, maxRetries: 0, timeout: 20000 });

async function spend(gw, scope, period) {
  const r = await admin(gw, 'GET', `/admin/spend?${scope}&period=${period}`);
  assert.equal(r.status, 200, r.raw);
  return r.json;
}

// The id the gateway gives a key (config keys have one too), from the admin list.
async function keyId(gw, name) {
  const r = await admin(gw, 'GET', '/admin/keys');
  assert.equal(r.status, 200, r.raw);
  const k = r.json.data.find((x) => x.name === name);
  assert.ok(k, `key ${name} in ${r.raw}`);
  return k.id;
}

// An OpenAI-shaped error.
function assertError(r, status, type, code, gw) {
  assert.equal(r.status, status, why(r, gw));
  assert.equal(r.json?.error?.type, type, why(r, gw));
  assert.equal(r.json?.error?.code, code, why(r, gw));
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok('param' in r.json.error, 'the error has a param field (null when none)');
}

// An upstream that holds every chat answer until release(): requests in flight stay in flight.
async function startHeldUpstream() {
  const st = { arrived: 0, held: [], hold: true };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      st.arrived++;
      let json = {};
      try { json = JSON.parse(body); } catch { /* empty */ }
      const answer = () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: 'chatcmpl-held', object: 'chat.completion', created: 1, model: json.model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'released' }, finish_reason: 'stop', logprobs: null }],
          usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } }));
      };
      if (st.hold) st.held.push(answer); else answer();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    state: st,
    url: `http://127.0.0.1:${server.address().port}/v1`,
    release: () => { st.hold = false; for (const a of st.held.splice(0)) a(); },
    close: async () => { for (const s of sockets) s.destroy(); await new Promise((r) => server.close(r)); },
  };
}

// An upstream that streams `chunks` content deltas every `everyMs`, then usage; notes a hang-up.
async function startSlowStreamUpstream({ chunks = 100, everyMs = 20 } = {}) {
  const st = { requests: 0, closedEarly: 0, sent: 0 };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      st.requests++;
      res.setHeader('content-type', 'text/event-stream');
      const ev = (o) => `data: ${JSON.stringify({ id: 'chatcmpl-slow', object: 'chat.completion.chunk', created: 1, model: 'mock-stream', ...o })}\n\n`;
      res.write(ev({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }));
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed) return clearInterval(timer);
        if (i < chunks) { res.write(ev({ choices: [{ index: 0, delta: { content: ` w${i}` }, finish_reason: null }] })); st.sent = ++i; return; }
        clearInterval(timer);
        res.write(ev({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }));
        res.write(ev({ choices: [], usage: { prompt_tokens: 11, completion_tokens: chunks, total_tokens: 11 + chunks } }));
        res.end('data: [DONE]\n\n');
      }, everyMs);
      res.on('close', () => { clearInterval(timer); if (!res.writableEnded) st.closedEarly++; });
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    state: st,
    url: `http://127.0.0.1:${server.address().port}/v1`,
    close: async () => { for (const s of sockets) s.destroy(); await new Promise((r) => server.close(r)); },
  };
}

// An upstream stopped when the test ends.
async function upstreamFor(t, start) {
  const up = await start();
  defer(t, () => up.close());
  return up;
}

const demoServer = `mcp_servers:\n  - { name: demo, command: "${toolgateBin}", args: [demo-mcp-server] }\n`;
const mcpUp = (gw, key) => waitFor(async () => {
  const r = await fetch(gw.url + '/v1/mcp/servers', { headers: { authorization: `Bearer ${key}` } });
  return r.status === 200 && (await r.json()).data.every((s) => s.status === 'up');
}, 15000, 'the demo MCP server up');

// "1s", "6m0s", "59.5s", "120ms": a Go-style duration.
const DURATION = /^(?:\d+h)?(?:\d+m)?(?:\d+(?:\.\d+)?s|\d+(?:\.\d+)?ms)$|^(?:\d+h)?\d+m$/;

// --- 1. keys from config -------------------------------------------------------------------------

describe('keys from config', () => {
  let up, gw;
  before(async () => {
    up = await startFakeUpstream();
    gw = await startGateway(`providers_from_env: false
providers:
${provider(up)}
auth: { required: true }
keys:
  - name: support-app
    key: sk-support-123
    team: support
    models: [mock-1]
    metadata: { owner: alice }
  - { name: hashed-app, key_sha256: "${sha256('sk-hashed-456')}" }
`);
  });
  after(async () => { await gw?.stop(); await up?.close(); if (gw) assertClean(gw); });

  test('no key: 401 missing_api_key, and nothing goes upstream', async () => {
    const before = up.state.requests.length;
    const r = await chat(gw, null, {});
    assertError(r, 401, 'invalid_request_error', 'missing_api_key', gw);
    const models = await fetch(gw.url + '/v1/models');
    assert.equal(models.status, 401, 'every /v1 route wants a key');
    assert.equal(up.state.requests.length, before);
  });

  test('a wrong key: 401 invalid_api_key (also through the SDK)', async () => {
    const r = await chat(gw, 'sk-support-124', {});
    assertError(r, 401, 'invalid_request_error', 'invalid_api_key', gw);
    const err = await sdk(gw, 'sk-nobody').chat.completions.create({ model: 'mock-1', messages: user('hi') }).catch((e) => e);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'invalid_api_key');
  });

  test('the right key: 200 through the openai SDK; a key given by its SHA-256 works too', async () => {
    const r = await sdk(gw, 'sk-support-123').chat.completions.create({ model: 'mock-1', messages: user('hi') });
    assert.equal(r.choices[0].message.content, 'reply from mock-1');
    assert.notEqual(up.lastRequest().headers.authorization, 'Bearer sk-support-123', 'the client key never goes upstream');
    assert.equal(up.lastRequest().headers.authorization, 'Bearer sk-fake');
    const h = await sdk(gw, 'sk-hashed-456').chat.completions.create({ model: 'mock-2', messages: user('hi') });
    assert.equal(h.choices[0].message.content, 'reply from mock-2', 'a key without models may use every model');
  });

  test('/v1/models lists only what a key may use; another model does not exist for it', async () => {
    const limited = await (await fetch(gw.url + '/v1/models', { headers: { authorization: 'Bearer sk-support-123' } })).json();
    assert.deepEqual(limited.data.map((m) => m.id), ['mock-1']);
    const all = await (await fetch(gw.url + '/v1/models', { headers: { authorization: 'Bearer sk-hashed-456' } })).json();
    assert.ok(all.data.length > 1, JSON.stringify(all));
    const hidden = await fetch(gw.url + '/v1/models/mock-2', { headers: { authorization: 'Bearer sk-support-123' } });
    assert.equal(hidden.status, 404);
    const shown = await fetch(gw.url + '/v1/models/mock-1', { headers: { authorization: 'Bearer sk-support-123' } });
    assert.equal(shown.status, 200);
  });

  test('a model outside the key\'s models: 403 model_not_allowed, for chat and embeddings', async () => {
    const before = up.state.requests.length;
    const client = sdk(gw, 'sk-support-123');
    const err = await client.chat.completions.create({ model: 'mock-2', messages: user('hi') }).catch((e) => e);
    assert.equal(err.status, 403, String(err));
    assert.equal(err.type, 'permission_error');
    assert.equal(err.code, 'model_not_allowed');
    const emb = await client.embeddings.create({ model: 'mock-2', input: 'x', encoding_format: 'float' }).catch((e) => e);
    assert.equal(emb.status, 403, String(emb));
    assert.equal(emb.type, 'permission_error');
    assert.equal(emb.code, 'model_not_allowed');
    assert.equal(up.state.requests.length, before, 'refused before the provider');
    const ok = await client.embeddings.create({ model: 'mock-1', input: 'x', encoding_format: 'float' });
    assert.equal(ok.data.length, 1);
  });

  test('without admin.token every /admin route is 404', async () => {
    for (const [m, p] of [['GET', '/admin/keys'], ['POST', '/admin/keys'], ['GET', '/admin/spend?key=support-app&period=day'],
      ['GET', '/admin/logs'], ['GET', '/admin/audit']]) {
      const r = await admin(gw, m, p, m === 'POST' ? { name: 'x' } : undefined);
      assert.equal(r.status, 404, `${m} ${p}: ${r.raw}`);
    }
  });
});

// --- 2. the admin API ----------------------------------------------------------------------------

describe('admin API for keys', () => {
  let up, gw, dir, db, created, rotated;
  before(async () => {
    up = await startFakeUpstream();
    dir = mkdtempSync(join(tmpdir(), 'toolgate-keys-admin-'));
    db = join(dir, 'toolgate.db');
    // Priced models: the key made below has a budget (an unpriced model would be refused).
    gw = await startGateway(`providers_from_env: false
providers:
${provider(up, { 'mock-1': { input: 1, output: 1 }, 'mock-2': { input: 1, output: 1 } })}
state:
  sqlite: { path: "${db}" }
auth: { required: true }
admin: { token: ${ADMIN} }
keys:
  - { name: support-app, key: sk-support-123, team: support }
`);
  });
  after(async () => { await gw?.stop(); await up?.close(); rmSync(dir, { recursive: true, force: true }); if (gw) assertClean(gw); });

  // Everything in the database file (and its WAL), as bytes.
  const fileBytes = () => Buffer.concat(readdirSync(dir).filter((f) => f.startsWith('toolgate.db')).map((f) => readFileSync(join(dir, f))));

  test('without the admin token, or with a wrong one: 401', async () => {
    for (const token of [null, 'admin-wrong', 'sk-support-123']) {
      const r = await admin(gw, 'POST', '/admin/keys', { name: 'intruder' }, token);
      assert.equal(r.status, 401, `${token}: ${r.raw}`);
      assert.equal((await admin(gw, 'GET', '/admin/keys', undefined, token)).status, 401);
    }
  });

  test('create: 201 with the key shown once; it works for chat at once', async () => {
    const r = await admin(gw, 'POST', '/admin/keys', {
      name: 'ci-bot', team: 'ci', models: ['mock-1', 'mock-2'], limits: { requests_per_minute: 100 },
      budget: { daily_usd: 5 }, metadata: { owner: 'bob' } });
    assert.equal(r.status, 201, r.raw);
    created = r.json;
    assert.match(created.id, /^key_/);
    assert.match(created.key, /^tg-/);
    assert.ok(created.key.length >= 24, `a key long enough to be unguessable: ${created.key}`);
    // The prefix is for display ("tg-qNB5..." is fine): its characters are the key's first ones.
    const shown = created.key_prefix.replace(/(\.\.\.|\u2026)$/, '');
    assert.ok(shown.length >= 4 && shown.length < 16 && created.key.startsWith(shown), r.raw);
    assert.equal(created.name, 'ci-bot');
    assert.equal(created.team, 'ci');
    assert.deepEqual(created.models, ['mock-1', 'mock-2']);
    assert.equal(created.limits.requests_per_minute, 100);
    assert.equal(created.budget.daily_usd, 5);
    assert.deepEqual(created.metadata, { owner: 'bob' });
    assert.equal(created.disabled, false);
    assert.equal(created.source, 'admin');
    assert.ok(created.created_at, r.raw);
    const c = await sdk(gw, created.key).chat.completions.create({ model: 'mock-1', messages: user('hi') });
    assert.equal(c.choices[0].message.content, 'reply from mock-1');
  });

  test('GET and list never show the key text or its hash; config keys are listed as source config', async () => {
    const one = await admin(gw, 'GET', `/admin/keys/${created.id}`);
    assert.equal(one.status, 200, one.raw);
    assert.equal(one.json.id, created.id);
    assert.equal(one.json.name, 'ci-bot');
    assert.equal(one.json.key, undefined);
    assert.equal(one.json.key_prefix, created.key_prefix);
    const list = await admin(gw, 'GET', '/admin/keys');
    assert.equal(list.status, 200, list.raw);
    assert.equal(list.json.object, 'list');
    const byName = Object.fromEntries(list.json.data.map((k) => [k.name, k]));
    assert.equal(byName['ci-bot']?.source, 'admin', list.raw);
    assert.equal(byName['support-app']?.source, 'config', list.raw);
    assert.equal(byName['support-app'].team, 'support');
    for (const raw of [one.raw, list.raw]) {
      for (const secret of [created.key, sha256(created.key), 'sk-support-123', sha256('sk-support-123')])
        assert.ok(!raw.includes(secret), `an admin answer shows a key or its hash: ${raw}`);
    }
  });

  test('the database file holds only the key\'s SHA-256, never its text', async () => {
    const rows = await sqlite(db, `SELECT id, hash, prefix, attrs, created_ms, updated_ms FROM keys WHERE id = '${created.id}'`);
    assert.equal(rows.length, 1, JSON.stringify(rows));
    assert.equal(rows[0].hash, sha256(created.key));
    assert.equal(rows[0].prefix, created.key_prefix);
    assert.ok(rows[0].created_ms > 0 && rows[0].updated_ms >= rows[0].created_ms, JSON.stringify(rows[0]));
    const dump = await sqliteText(db, '.dump');
    assert.ok(dump.includes(sha256(created.key)));
    assert.ok(!dump.includes(created.key), 'the key text is in no table');
    assert.ok(!fileBytes().includes(Buffer.from(created.key)), 'the key text is nowhere in the file or its WAL');
    assert.ok(!fileBytes().includes(Buffer.from('sk-support-123')), 'nor is a config key');
  });

  test('a duplicate name: 409 key_exists; bad fields: 400', async () => {
    const dup = await admin(gw, 'POST', '/admin/keys', { name: 'ci-bot' });
    assert.equal(dup.status, 409, dup.raw);
    assert.equal(dup.json.error.code, 'key_exists');
    const dupConfig = await admin(gw, 'POST', '/admin/keys', { name: 'support-app' });
    assert.equal(dupConfig.status, 409, `a config key's name is taken too: ${dupConfig.raw}`);
    // Renaming a key to a taken name: the same 409, and the gateway goes on (it once crashed here:
    // a ?: inside a co_await, which GCC 12 miscompiles).
    const other = await admin(gw, 'POST', '/admin/keys', { name: 'rename-me' });
    assert.equal(other.status, 201, other.raw);
    const renamed = await admin(gw, 'PATCH', `/admin/keys/${other.json.id}`, { name: 'ci-bot' });
    assert.equal(renamed.status, 409, renamed.raw);
    assert.equal(renamed.json.error.code, 'key_exists');
    const still = await admin(gw, 'GET', `/admin/keys/${other.json.id}`);
    assert.equal(still.status, 200, still.raw);
    assert.equal(still.json.name, 'rename-me');
    assert.equal((await admin(gw, 'DELETE', `/admin/keys/${other.json.id}`)).status, 200);
    for (const bad of [{ name: 'neg', limits: { requests_per_minute: -1 } }, { name: 'unknown', colour: 'blue' },
      { name: 'badlimit', limits: { requests_per_fortnight: 3 } }, { name: 'negbudget', budget: { daily_usd: -5 } },
      { name: 'models', models: 'mock-1' }, {}]) {
      const r = await admin(gw, 'POST', '/admin/keys', bad);
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.raw}`);
      assert.equal(r.json?.error?.type, 'invalid_request_error', r.raw);
    }
  });

  test('patch: an admin key changes; a config key answers 409 config_key', async () => {
    const p = await admin(gw, 'PATCH', `/admin/keys/${created.id}`, { metadata: { owner: 'carol' }, models: ['mock-1'] });
    assert.equal(p.status, 200, p.raw);
    assert.deepEqual(p.json.metadata, { owner: 'carol' });
    assert.equal(p.json.key, undefined, 'a patch does not show the key');
    const g = await admin(gw, 'GET', `/admin/keys/${created.id}`);
    assert.deepEqual(g.json.models, ['mock-1']);
    const now = await chat(gw, created.key, { model: 'mock-2' });
    assert.equal(now.status, 403, `the new models apply at once: ${now.raw}`);
    assert.equal(now.json.error.code, 'model_not_allowed');
    const cfgId = await keyId(gw, 'support-app');
    const c = await admin(gw, 'PATCH', `/admin/keys/${cfgId}`, { metadata: { owner: 'mallory' } });
    assert.equal(c.status, 409, c.raw);
    assert.equal(c.json.error.code, 'config_key');
    assert.equal((await admin(gw, 'PATCH', `/admin/keys/${created.id}`, { limits: { max_concurrent: -2 } })).status, 400);
  });

  test('rotate: the old key stops at once, the new one works; the file holds the new hash', async () => {
    const r = await admin(gw, 'POST', `/admin/keys/${created.id}/rotate`);
    assert.equal(r.status, 200, r.raw);
    rotated = r.json.key;
    assert.match(rotated, /^tg-/);
    assert.notEqual(rotated, created.key);
    assert.equal(r.json.id, created.id, 'the id stays across rotations');
    const old = await chat(gw, created.key, {});
    assertError(old, 401, 'invalid_request_error', 'invalid_api_key', gw);
    assert.equal((await chat(gw, rotated, {})).status, 200);
    const rows = await sqlite(db, `SELECT hash FROM keys WHERE id = '${created.id}'`);
    assert.deepEqual(rows.map((x) => x.hash), [sha256(rotated)]);
    assert.ok(!fileBytes().includes(Buffer.from(rotated)));
  });

  test('disable: 401; enable: 200 again', async () => {
    const d = await admin(gw, 'POST', `/admin/keys/${created.id}/disable`);
    assert.equal(d.status, 200, d.raw);
    assertError(await chat(gw, rotated, {}), 401, 'invalid_request_error', 'invalid_api_key', gw);
    assert.equal((await admin(gw, 'GET', `/admin/keys/${created.id}`)).json.disabled, true);
    const e = await admin(gw, 'POST', `/admin/keys/${created.id}/enable`);
    assert.equal(e.status, 200, e.raw);
    assert.equal((await admin(gw, 'GET', `/admin/keys/${created.id}`)).json.disabled, false);
    assert.equal((await chat(gw, rotated, {})).status, 200);
  });

  test('delete: 401 afterwards; unknown ids answer 404', async () => {
    const d = await admin(gw, 'DELETE', `/admin/keys/${created.id}`);
    assert.equal(d.status, 200, d.raw);
    assert.equal(d.json.id, created.id, d.raw);
    assert.equal(d.json.deleted, true, d.raw);
    assertError(await chat(gw, rotated, {}), 401, 'invalid_request_error', 'invalid_api_key', gw);
    assert.equal((await admin(gw, 'GET', `/admin/keys/${created.id}`)).status, 404);
    assert.equal((await sqlite(db, `SELECT count(*) AS n FROM keys WHERE id = '${created.id}'`))[0].n, 0);
    for (const [m, p] of [['GET', '/admin/keys/key_nope'], ['PATCH', '/admin/keys/key_nope'], ['DELETE', '/admin/keys/key_nope'],
      ['POST', '/admin/keys/key_nope/rotate'], ['POST', '/admin/keys/key_nope/disable'], ['POST', '/admin/keys/key_nope/enable']]) {
      const r = await admin(gw, m, p, m === 'PATCH' ? { metadata: {} } : undefined);
      assert.equal(r.status, 404, `${m} ${p}: ${r.raw}`);
    }
  });

  test('the audit log lists the actions in order, newest first', async () => {
    // Audit records are written off the request path: wait until the last one is in.
    let r, mine;
    await waitFor(async () => {
      r = await admin(gw, 'GET', '/admin/audit');
      mine = r.status === 200 ? r.json.data.filter((x) => x.target === created.id) : [];
      return mine.some((x) => x.action === 'key.delete');
    }, 5000, 'the audit records');
    assert.equal(r.json.object, 'list');
    assert.deepEqual(mine.map((x) => x.action).reverse(),
      ['key.create', 'key.update', 'key.rotate', 'key.disable', 'key.enable', 'key.delete'], r.raw);
    for (const x of mine) {
      assert.equal(x.actor, 'admin');
      assert.equal(x.name, 'ci-bot');
      assert.ok(x.ts, JSON.stringify(x));
    }
    assert.ok(!r.raw.includes(created.key) && !r.raw.includes(rotated), 'the audit log shows no key');
    assert.equal((await admin(gw, 'GET', '/admin/audit', undefined, null)).status, 401);
    await waitFor(async () => (await sqlite(db, 'SELECT count(*) AS n FROM audit_log'))[0].n >= 6, 5000, 'audit_log rows in the file');
  });
});

// --- 3. requests_per_minute is exact under concurrency, with the rate-limit headers -------------

test('requests_per_minute: 50 of 200 concurrent requests pass, exactly; the headers count down', async (t) => {
  const up = await upstreamFor(t, startFakeUpstream);
  const gw = await gateway(t, `providers_from_env: false
providers:
${provider(up)}
auth: { required: true }
keys:
  - { name: burst, key: sk-burst, limits: { requests_per_minute: 50 } }
  - { name: probe, key: sk-probe, limits: { requests_per_minute: 10, requests_per_hour: 1000, tokens_per_minute: 100000 } }
rate_limits:
  - { scope: global, requests_per_minute: 10000 }
`);
  // The headers on 200s: the tightest limit (10 a minute) is the one shown; remaining counts down.
  const a = await chat(gw, 'sk-probe', { max_tokens: 50 });
  const b = await chat(gw, 'sk-probe', { max_tokens: 50 });
  assert.equal(a.status, 200, why(a, gw));
  for (const h of ['x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests',
    'x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens'])
    assert.ok(a.headers[h] !== undefined, `${h} missing: ${JSON.stringify(a.headers)}`);
  assert.equal(a.headers['x-ratelimit-limit-requests'], '10');
  assert.equal(Number(a.headers['x-ratelimit-remaining-requests']), 9);
  assert.equal(Number(b.headers['x-ratelimit-remaining-requests']), 8, 'remaining decreases');
  assert.match(a.headers['x-ratelimit-reset-requests'], DURATION);
  assert.equal(a.headers['x-ratelimit-limit-tokens'], '100000');
  assert.ok(Number(a.headers['x-ratelimit-remaining-tokens']) < 100000, JSON.stringify(a.headers));
  assert.match(a.headers['x-ratelimit-reset-tokens'], DURATION);
  // Embeddings of the key carry them too, from the same counters.
  const emb = await fetch(gw.url + '/v1/embeddings', { method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-probe' },
    body: JSON.stringify({ model: 'mock-1', input: 'x' }) });
  assert.equal(emb.status, 200);
  assert.equal(emb.headers.get('x-ratelimit-limit-requests'), '10');
  assert.equal(Number(emb.headers.get('x-ratelimit-remaining-requests')), 7);

  const before = up.state.requests.length;
  const all = await Promise.all(Array.from({ length: 200 }, () => chat(gw, 'sk-burst', {})));
  const ok = all.filter((r) => r.status === 200), limited = all.filter((r) => r.status === 429);
  assert.equal(ok.length, 50, `statuses: ${JSON.stringify(all.reduce((m, r) => ({ ...m, [r.status]: (m[r.status] ?? 0) + 1 }), {}))}`);
  assert.equal(limited.length, 150);
  assert.equal(up.state.requests.length - before, 50, 'only the admitted requests reach the provider');
  for (const r of limited) {
    assertError(r, 429, 'rate_limit_error', 'rate_limit_exceeded', gw);
    const s = Number(r.headers['retry-after']);
    assert.ok(Number.isInteger(s) && s >= 1 && s <= 60, `retry-after: ${r.headers['retry-after']}`);
    const ms = Number(r.headers['retry-after-ms']);
    // A minute's window, counted in 1 s buckets: the oldest one leaves within 61 s.
    assert.ok(ms > 0 && ms <= 61000, `retry-after-ms: ${r.headers['retry-after-ms']}`);
  }
  assert.match(limited[0].json.error.message, /requests_per_minute/);
  assert.match(limited[0].json.error.message, /burst/);
  for (const r of ok) {
    const left = Number(r.headers['x-ratelimit-remaining-requests']);
    assert.ok(Number.isInteger(left) && left >= 0 && left < 50, `remaining ${r.headers['x-ratelimit-remaining-requests']}`);
    assert.equal(r.headers['x-ratelimit-limit-requests'], '50');
  }
});

// --- 4. tokens_per_minute: admitted on the estimate, corrected by the real usage -----------------

test('tokens_per_minute: a large max_tokens is refused at once; real usage frees the estimate', async (t) => {
  const up = await upstreamFor(t, startFakeUpstream);
  const gw = await gateway(t, `providers_from_env: false
providers:
${provider(up)}
auth: { required: true }
keys:
  - { name: tokens, key: sk-tokens, limits: { tokens_per_minute: 500 } }
`);
  const before = up.state.requests.length;
  const start = Date.now();
  const big = await chat(gw, 'sk-tokens', { max_tokens: 1000 });
  assertError(big, 429, 'rate_limit_error', 'rate_limit_exceeded', gw);
  assert.match(big.json.error.message, /tokens_per_minute/);
  assert.ok(Date.now() - start < 2000, 'refused at once');
  assert.equal(up.state.requests.length, before, 'the provider never saw it');
  // Admitted on its estimate (input estimate + 400 <= 500) in a fresh window; then counted as the
  // 18 tokens it really used (11 + 7).
  const first = await chat(gw, 'sk-tokens', { max_tokens: 400 });
  assert.equal(first.status, 200, why(first, gw));
  // Each next one is admitted on (input estimate + 200): on the estimates alone none would fit
  // beside the first; corrected by the real usage, ten do.
  let last;
  for (let i = 0; i < 10; i++) {
    last = await chat(gw, 'sk-tokens', { max_tokens: 200 });
    assert.equal(last.status, 200, `request ${i + 1}: ${why(last, gw)}`);
  }
  assert.equal(last.headers['x-ratelimit-limit-tokens'], '500', JSON.stringify(last.headers));
  assert.ok(Number(last.headers['x-ratelimit-remaining-tokens']) < 500, JSON.stringify(last.headers));
  // 11 x 18 = 198 used: another estimate of 400+ does not fit now; it would later (retry-after).
  const later = await chat(gw, 'sk-tokens', { max_tokens: 400 });
  assertError(later, 429, 'rate_limit_error', 'rate_limit_exceeded', gw);
  const s = Number(later.headers['retry-after']);
  assert.ok(Number.isInteger(s) && s >= 1 && s <= 60, `retry-after: ${later.headers['retry-after']}`);
  assert.ok(Number(later.headers['retry-after-ms']) > 0, JSON.stringify(later.headers));
  assert.equal(up.state.requests.length, before + 11, 'only the admitted requests reached the provider');
});

// --- 5. the user scope ---------------------------------------------------------------------------

test('scope user: the third request of one user is 429, another user passes', async (t) => {
  const up = await upstreamFor(t, startFakeUpstream);
  const gw = await gateway(t, `providers_from_env: false
providers:
${provider(up)}
rate_limits:
  - { scope: user, requests_per_minute: 2 }
`);
  const client = sdk(gw, 'unused');
  const ask = (u) => client.chat.completions.create({ model: 'mock-1', messages: user('hi'), user: u });
  await ask('alice');
  await ask('alice');
  const err = await ask('alice').catch((e) => e);
  assert.equal(err.status, 429, String(err));
  assert.equal(err.code, 'rate_limit_exceeded');
  assert.equal(err.type, 'rate_limit_error');
  const s = Number(err.headers.get('retry-after'));
  assert.ok(s >= 1 && s <= 60, `retry-after ${s}`);
  const other = await ask('bob');
  assert.equal(other.choices[0].message.content, 'reply from mock-1');
});

// --- 6. max_concurrent ---------------------------------------------------------------------------

test('max_concurrent: 2 — a third request in flight is refused at once; after release the next passes', async (t) => {
  const up = await upstreamFor(t, startHeldUpstream);
  const gw = await gateway(t, `providers_from_env: false
providers:
${provider(up)}
auth: { required: true }
keys:
  - { name: narrow, key: sk-narrow, limits: { max_concurrent: 2 } }
`);
  try {
    const first = [chat(gw, 'sk-narrow', {}), chat(gw, 'sk-narrow', {})];
    await waitFor(() => up.state.held.length === 2, 10000, 'two requests held upstream');
    const start = Date.now();
    const third = await chat(gw, 'sk-narrow', {});
    assertError(third, 429, 'rate_limit_error', 'rate_limit_exceeded', gw);
    assert.match(third.json.error.message, /max_concurrent/);
    assert.ok(Date.now() - start < 2000, 'refused at once, not queued');
    assert.equal(up.state.arrived, 2, 'the third never reached the provider');
    up.release();
    const done = await Promise.all(first);
    assert.deepEqual(done.map((r) => r.status), [200, 200]);
    // The slots are free again (released when each answer ended).
    const next = await chat(gw, 'sk-narrow', {});
    assert.equal(next.status, 200, why(next, gw));
  } finally { up.release(); }
});

// --- 7. budgets never overshoot under concurrency; spend equals the ledger ----------------------

test('a budget that fits 3 reservations: of 10 concurrent requests 3 reach the provider; spend = usage x price = ledger', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'toolgate.db');
  const up = await upstreamFor(t, startHeldUpstream);
  // input 1 USD per million tokens, output 1 USD per token. A request with max_tokens 100 reserves
  // 100 USD plus its (tiny) input estimate: 350 a day takes 3 such reservations, not 4. Its real
  // cost is 11 * 0.000001 + 7 * 1 = 7.000011 USD.
  const gw = await gateway(t, `providers_from_env: false
providers:
${provider(up, { 'mock-1': { input: 1, output: 1000000 } })}
state:
  sqlite: { path: "${db}" }
auth: { required: true }
admin: { token: ${ADMIN} }
keys:
  - { name: budgeted, key: sk-budgeted, team: ops, budget: { daily_usd: 350, monthly_usd: 1000 } }
teams:
  - { name: ops, budget: { monthly_usd: 100000 } }
`);
  let answered = 0;
  const pending = Array.from({ length: 10 }, () => chat(gw, 'sk-budgeted', { max_tokens: 100 }).then((r) => { answered++; return r; }));
  try {
    // Three held upstream, seven refused: nothing else can arrive, so this is the final count.
    await waitFor(() => up.state.arrived >= 3 && answered >= 7, 10000, '3 held + 7 refused');
    assert.equal(up.state.arrived, 3, 'no reservation overshoots the budget');
  } finally { up.release(); }
  const all = await Promise.all(pending);
  const ok = all.filter((r) => r.status === 200), refused = all.filter((r) => r.status !== 200);
  assert.equal(ok.length, 3, JSON.stringify(all.map((r) => r.status)));
  for (const r of refused) {
    assertError(r, 429, 'insufficient_quota', 'budget_exceeded', gw);
    assert.equal(r.headers['x-should-retry'], 'false');
  }
  assert.equal(up.state.arrived, 3);

  const expected = 3 * (11 * 1 + 7 * 1000000);  // micro-dollars
  const id = await keyId(gw, 'budgeted');
  await waitFor(async () => micros((await spend(gw, 'key=budgeted', 'day')).spent_usd) === expected, 10000, 'the day spend settled');
  const day = await spend(gw, 'key=budgeted', 'day');
  assert.equal(day.object, 'spend');
  assert.equal(day.scope, 'key:budgeted');
  assert.equal(day.period, 'day');
  assert.equal(day.window, today());
  assert.equal(day.budget_usd, 350);
  assert.equal(micros(day.spent_usd), expected);
  const mon = await spend(gw, 'key=budgeted', 'month');
  assert.equal(mon.window, month());
  assert.equal(mon.budget_usd, 1000);
  assert.equal(micros(mon.spent_usd), expected);
  const team = await spend(gw, 'team=ops', 'month');
  assert.equal(team.scope, 'team:ops');
  assert.equal(team.budget_usd, 100000);
  assert.equal(micros(team.spent_usd), expected);
  // The same figures in the file, in integer micro-dollars.
  const ledger = async (scope, period) =>
    (await sqlite(db, `SELECT COALESCE(SUM(micros), 0) AS m FROM ledger WHERE scope = '${scope}' AND period = '${period}'`))[0].m;
  await waitFor(async () => (await ledger(`key:${id}`, today())) === expected, 5000, 'the ledger row written');
  assert.equal(await ledger(`key:${id}`, month()), expected);
  assert.equal(await ledger('team:ops', month()), expected);
  // Settled, the reservations are gone: the next request fits again (21 + 100 <= 350).
  assert.equal((await chat(gw, 'sk-budgeted', { max_tokens: 100 })).status, 200);
});

// --- 8. unpriced models under a budget -----------------------------------------------------------

test('a model without a price: 403 model_unpriced for a key or team with a budget; allowed with budgets.unpriced: allow', async (t) => {
  // Budgets want a durable ledger: without a state section it would be ./toolgate.db.
  const dir = tempDir(t);
  const up = await upstreamFor(t, startFakeUpstream);
  const cfg = (extra, db) => `providers_from_env: false
providers:
${provider(up, { 'mock-1': { input: 1, output: 1 } })}
state:
  sqlite: { path: "${join(dir, db)}" }
auth: { required: true }
keys:
  - { name: capped, key: sk-capped, budget: { daily_usd: 10 } }
  - { name: teamed, key: sk-teamed, team: frugal }
  - { name: free, key: sk-free-key }
teams:
  - { name: frugal, budget: { monthly_usd: 10 } }
${extra}`;
  const strict = await gateway(t, cfg('', 'strict.db'));
  const before = up.state.requests.length;
  for (const key of ['sk-capped', 'sk-teamed']) {
    const r = await chat(strict, key, { model: 'mock-free' });
    assert.equal(r.status, 403, why(r, strict));
    assert.equal(r.json.error.code, 'model_unpriced');
    assert.match(r.json.error.message, /mock-free/);
  }
  assert.equal(up.state.requests.length, before, 'refused before the provider');
  assert.equal((await chat(strict, 'sk-capped', { model: 'mock-1' })).status, 200, 'a priced model passes');
  assert.equal((await chat(strict, 'sk-free-key', { model: 'mock-free' })).status, 200, 'a key without any budget is not concerned');

  const lenient = await gateway(t, cfg('budgets: { unpriced: allow }\n', 'lenient.db'));
  const r = await sdk(lenient, 'sk-capped').chat.completions.create({ model: 'mock-free', messages: user('hi') });
  assert.equal(r.choices[0].message.content, 'reply from mock-free');
  assert.equal((await chat(lenient, 'sk-teamed', { model: 'mock-free' })).status, 200);
});

// --- 9. spend survives kill -9 -------------------------------------------------------------------

test('spend and admin keys survive kill -9: a new gateway on the same file reports the same spend', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'toolgate.db');
  const up = await upstreamFor(t, startFakeUpstream);
  // 0.001 USD per token: 11 + 7 tokens = 18000 micro-dollars a request.
  const yaml = `providers_from_env: false
providers:
${provider(up, { 'mock-1': { input: 1000, output: 1000 } })}
state:
  sqlite: { path: "${db}" }
auth: { required: true }
admin: { token: ${ADMIN} }
keys:
  - { name: durable, key: sk-durable, budget: { daily_usd: 1000, monthly_usd: 1000 } }
`;
  const a = await gateway(t, yaml);
  const client = sdk(a, 'sk-durable');
  for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'mock-1', messages: user(`hi ${i}`) });
  const made = await admin(a, 'POST', '/admin/keys', { name: 'survivor', budget: { daily_usd: 1000 } });
  assert.equal(made.status, 201, made.raw);
  await sdk(a, made.json.key).chat.completions.create({ model: 'mock-1', messages: user('hi') });
  await waitFor(async () => micros((await spend(a, 'key=durable', 'day')).spent_usd) === 3 * 18000, 10000, 'spend settled');
  await waitFor(async () => micros((await spend(a, 'key=survivor', 'day')).spent_usd) === 18000, 10000, 'spend settled');
  const dayBefore = await spend(a, 'key=durable', 'day');
  const monthBefore = await spend(a, 'key=durable', 'month');
  a.proc.kill('SIGKILL');
  await a.waitExit();
  assert.equal(a.exited.signal, 'SIGKILL');

  const b = await gateway(t, yaml);
  assert.deepEqual(await spend(b, 'key=durable', 'day'), dayBefore);
  assert.deepEqual(await spend(b, 'key=durable', 'month'), monthBefore);
  assert.equal(micros((await spend(b, 'key=survivor', 'day')).spent_usd), 18000);
  // The restarted gateway goes on counting from there, and the admin key still opens the door.
  await sdk(b, 'sk-durable').chat.completions.create({ model: 'mock-1', messages: user('after') });
  await waitFor(async () => micros((await spend(b, 'key=durable', 'day')).spent_usd) === 4 * 18000, 10000, 'spend after restart');
  const again = await chat(b, made.json.key, {});
  assert.equal(again.status, 200, why(again, b));
});

// --- 10. a stream the client leaves is charged ---------------------------------------------------

test('a stream whose client disconnects after the first chunk is still charged', async (t) => {
  const dir = tempDir(t);
  const up = await upstreamFor(t, () => startSlowStreamUpstream({ chunks: 100, everyMs: 20 }));
  const gw = await gateway(t, `providers_from_env: false
providers:
${provider(up, { 'mock-stream': { input: 1000, output: 1000 } })}
state:
  sqlite: { path: "${join(dir, 'toolgate.db')}" }
auth: { required: true }
admin: { token: ${ADMIN} }
keys:
  - { name: streamer, key: sk-streamer, budget: { daily_usd: 1000 } }
`);
  assert.equal((await spend(gw, 'key=streamer', 'day')).spent_usd, 0);
  const ac = new AbortController();
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', signal: ac.signal,
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-streamer' },
    body: JSON.stringify({ model: 'mock-stream', stream: true, messages: user('tell me a long story') }) });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!/"content":" w\d+"/.test(text)) {
    const { value, done } = await reader.read();
    assert.ok(!done, `the stream ended before a content chunk: ${text}`);
    text += decoder.decode(value, { stream: true });
  }
  ac.abort();
  await reader.cancel().catch(() => {});
  await waitFor(async () => (await spend(gw, 'key=streamer', 'day')).spent_usd > 0, 10000, 'the left stream charged');
  // The gateway hung up on the provider too (a client that leaves cancels the upstream call).
  await waitFor(() => up.state.closedEarly === 1, 10000, 'the upstream stream cancelled');
  assert.ok(up.state.sent < 100, 'charged although the provider never finished');
});

// --- 11. the request log -------------------------------------------------------------------------

describe('request log', () => {
  let up, gw, dir, db;
  const ids = {};
  before(async () => {
    up = await startFakeUpstream();
    dir = mkdtempSync(join(tmpdir(), 'toolgate-keys-log-'));
    db = join(dir, 'toolgate.db');
    gw = await startGateway(`providers_from_env: false
providers:
${provider(up, { 'mock-1': { input: 1000, output: 1000 }, 'mock-agent': { input: 1000, output: 1000 } })}
${demoServer}state:
  sqlite: { path: "${db}" }
auth: { required: true }
admin: { token: ${ADMIN} }
keys:
  - { name: logger, key: sk-logger, team: audit }
request_log: { enabled: true, payloads: false }
`);
    await mcpUp(gw, 'sk-logger');
    const client = sdk(gw, 'sk-logger');
    const plain = await client.chat.completions.create({ model: 'mock-1', messages: user('secret-phrase-alpha') }).withResponse();
    ids.plain = plain.request_id;
    const loop = await client.chat.completions.create({ model: 'mock-agent',
      messages: user('call demo__echo {"text":"secret-phrase-beta"}') }).withResponse();
    assert.match(loop.data.choices[0].message.content, /secret-phrase-beta/, 'the loop ran the tool');
    ids.loop = loop.request_id;
    assert.ok(ids.plain && ids.loop && ids.plain !== ids.loop, JSON.stringify(ids));
  });
  after(async () => { await gw?.stop(); await up?.close(); rmSync(dir, { recursive: true, force: true }); if (gw) assertClean(gw); });

  const logs = async (q) => {
    const r = await admin(gw, 'GET', `/admin/logs?${q}`);
    assert.equal(r.status, 200, r.raw);
    return r.json;
  };
  const of = (data, rid, kind) => data.filter((x) => x.request_id === rid && x.kind === kind);

  test('a plain chat: one request record; the agent loop: a request, two turns and a tool call under one request_id', async () => {
    let data;
    await waitFor(async () => {
      data = (await logs('key=logger&limit=100')).data;
      return of(data, ids.loop, 'tool').length === 1 && of(data, ids.loop, 'turn').length === 2 && of(data, ids.loop, 'request').length === 1
        && of(data, ids.plain, 'request').length === 1;
    }, 10000, 'the log records written');
    const plain = of(data, ids.plain, 'request')[0];
    assert.equal(plain.route, '/v1/chat/completions');
    assert.equal(plain.status, 200);
    assert.equal(plain.key, 'logger');
    assert.equal(plain.team, 'audit');
    assert.equal(plain.model, 'mock-1');
    assert.equal(plain.provider, 'fake');
    assert.equal(plain.stream, false);
    assert.deepEqual([plain.prompt_tokens, plain.completion_tokens], [11, 7]);
    assert.equal(typeof plain.latency_ms, 'number');
    assert.ok(plain.attempts >= 1);
    assert.ok(plain.id && plain.ts, JSON.stringify(plain));

    const req = of(data, ids.loop, 'request')[0];
    assert.equal(req.model, 'mock-agent');
    assert.equal(req.status, 200);
    assert.deepEqual([req.prompt_tokens, req.completion_tokens], [22, 14], 'the request sums its turns');
    const turns = of(data, ids.loop, 'turn');
    for (const turn of turns) {
      assert.equal(turn.model, 'mock-agent');
      assert.equal(turn.provider, 'fake');
      assert.equal(turn.upstream_model, 'mock-agent');
      assert.equal(turn.status, 200);
      assert.equal(turn.key, 'logger');
      assert.deepEqual([turn.prompt_tokens, turn.completion_tokens], [11, 7]);
      assert.equal(micros(turn.cost_usd), 18000);
      assert.equal(typeof turn.latency_ms, 'number');
      assert.ok(turn.attempts >= 1);
    }
    const tool = of(data, ids.loop, 'tool')[0];
    assert.equal(tool.tool, 'demo__echo');
    assert.equal(tool.ok, true);
    assert.equal(typeof tool.latency_ms, 'number');
    assert.equal(tool.key, 'logger');
    // Newest first: ids decreasing (when they are numbers; otherwise the timestamps do not grow).
    const order = data.map((x) => Number(x.id));
    if (order.every(Number.isFinite)) assert.deepEqual(order, [...order].sort((p, q) => q - p));
    else {
      const ts = data.map((x) => (typeof x.ts === 'number' ? x.ts : Date.parse(x.ts)));
      assert.deepEqual(ts, [...ts].sort((p, q) => q - p));
    }
    // Costs (usage x price, 0.001 USD a token): each turn 18 tokens; a request the sum of its turns.
    assert.equal(micros(plain.cost_usd), 18000, `the plain request's cost_usd: ${JSON.stringify(plain)}`);
    assert.equal(micros(req.cost_usd), 36000, `the loop request's cost_usd: ${JSON.stringify(req)}`);
  });

  test('filters and paging', async () => {
    const turns = (await logs('kind=turn&key=logger')).data;
    assert.ok(turns.length >= 3 && turns.every((x) => x.kind === 'turn'), JSON.stringify(turns));
    const byModel = (await logs('kind=request&model=mock-agent')).data;
    assert.ok(byModel.length >= 1 && byModel.every((x) => x.model === 'mock-agent' && x.kind === 'request'));
    assert.equal((await logs('key=nobody')).data.length, 0);
    assert.ok((await logs('kind=request&status=200')).data.every((x) => x.status === 200));
    const all = (await logs('key=logger&limit=100')).data;
    const page1 = await logs('key=logger&limit=2');
    assert.equal(page1.data.length, 2);
    assert.notEqual(page1.next_before, null);
    const page2 = await logs(`key=logger&limit=100&before=${page1.next_before}`);
    assert.deepEqual([...page1.data, ...page2.data].map((x) => x.id), all.map((x) => x.id), 'the pages make up the whole list');
    assert.equal(page2.next_before, null);
    assert.equal((await admin(gw, 'GET', '/admin/logs', undefined, null)).status, 401);
  });

  test('the sqlite3 CLI counts the same records; payloads off: no message text anywhere', async () => {
    const rows = await sqlite(db, `SELECT kind, count(*) AS n FROM request_log WHERE request_id = '${ids.loop}' GROUP BY kind ORDER BY kind`);
    assert.deepEqual(rows, [{ kind: 'request', n: 1 }, { kind: 'tool', n: 1 }, { kind: 'turn', n: 2 }]);
    const plain = await sqlite(db, `SELECT key, team, model, status FROM request_log WHERE request_id = '${ids.plain}' AND kind = 'request'`);
    assert.deepEqual(plain, [{ key: 'logger', team: 'audit', model: 'mock-1', status: 200 }]);
    const records = await sqlite(db, 'SELECT record FROM request_log');
    const api = JSON.stringify((await logs('limit=100')).data);
    for (const text of [JSON.stringify(records), api, await sqliteText(db, '.dump')]) {
      assert.ok(!text.includes('secret-phrase-alpha'), 'no prompt text in the log');
      assert.ok(!text.includes('secret-phrase-beta'), 'no tool arguments or results in the log');
      assert.ok(!text.includes('reply from mock-1'), 'no answer text in the log');
      assert.ok(!text.includes('sk-logger'), 'no key text in the log');
    }
  });
});

// --- 12. MCP permissions of a key ----------------------------------------------------------------

describe('MCP tools of a key', () => {
  let up, gw;
  before(async () => {
    up = await startFakeUpstream();
    gw = await startGateway(`providers_from_env: false
providers:
${provider(up)}
${demoServer}auth: { required: true }
keys:
  - { name: echo-only, key: sk-echo-only, mcp_tools: [demo__echo] }
  - { name: everything, key: sk-everything }
  - { name: elsewhere, key: sk-elsewhere, mcp_tools: ["other__*"] }
`);
    await mcpUp(gw, 'sk-everything');
  });
  after(async () => { await gw?.stop(); await up?.close(); if (gw) assertClean(gw); });

  const tools = async (key) => {
    const r = await fetch(gw.url + '/v1/mcp/tools', { headers: { authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200);
    return (await r.json()).data.map((x) => x.name).sort();
  };
  const call = (key, name, args) => fetch(gw.url + '/v1/mcp/tools/call', {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ name, arguments: args }) });

  test('/v1/mcp/tools lists only the allowed tool; calling another is 403 tool_not_allowed', async () => {
    assert.deepEqual(await tools('sk-echo-only'), ['demo__echo']);
    assert.deepEqual(await tools('sk-everything'), ['demo__add', 'demo__echo', 'demo__get_current_time']);
    const denied = await call('sk-echo-only', 'demo__add', { a: 1, b: 2 });
    assert.equal(denied.status, 403);
    const body = await denied.json();
    assert.equal(body.error.type, 'permission_error');
    assert.equal(body.error.code, 'tool_not_allowed');
    const ok = await call('sk-echo-only', 'demo__echo', { text: 'allowed' });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).result.content[0].text, 'allowed');
    assert.equal((await call('sk-everything', 'demo__add', { a: 1, b: 2 })).status, 200);
    assert.equal((await fetch(gw.url + '/v1/mcp/tools')).status, 401, 'no key, no tools');
  });

  test('/v1/mcp/servers shows a key the servers of its tools, counting only those', async () => {
    const servers = async (key) => {
      const r = await fetch(gw.url + '/v1/mcp/servers', { headers: { authorization: `Bearer ${key}` } });
      assert.equal(r.status, 200);
      return (await r.json()).data.map((x) => [x.name, x.tools]);
    };
    assert.deepEqual(await servers('sk-everything'), [['demo', 3]]);
    assert.deepEqual(await servers('sk-echo-only'), [['demo', 1]]);
    assert.deepEqual(await servers('sk-elsewhere'), []);
  });

  test('chat requests of the key are offered only its tools', async () => {
    await sdk(gw, 'sk-echo-only').chat.completions.create({ model: 'mock-1', messages: user('hi') });
    assert.deepEqual((up.lastRequest().body.tools ?? []).map((x) => x.function.name), ['demo__echo']);
    await sdk(gw, 'sk-everything').chat.completions.create({ model: 'mock-1', messages: user('hi') });
    assert.deepEqual(up.lastRequest().body.tools.map((x) => x.function.name).sort(), ['demo__add', 'demo__echo', 'demo__get_current_time']);
  });

  test('/mcp takes the key as a bearer token and lists and calls only the allowed tool', async () => {
    const noKey = await fetch(gw.url + '/mcp', { method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }) });
    assert.equal(noKey.status, 401);
    const client = new Client({ name: 'keys-e2e', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url + '/mcp'),
      { requestInit: { headers: { authorization: 'Bearer sk-echo-only' } } }));
    try {
      const listed = (await client.listTools()).tools.map((x) => x.name);
      assert.deepEqual(listed, ['demo__echo']);
      const echo = await client.callTool({ name: 'demo__echo', arguments: { text: 'via mcp' } });
      assert.equal(echo.content[0].text, 'via mcp');
      // /mcp hides what a key may not use, as mcp_front.keys do: the tool does not exist for it.
      const denied = await client.callTool({ name: 'demo__add', arguments: { a: 1, b: 2 } }).catch((e) => e);
      assert.ok(denied instanceof Error, JSON.stringify(denied));
      assert.match(denied.message, /Unknown tool: demo__add/);
    } finally { await client.close(); }
  });
});

// --- 13. two replicas on one redis-server --------------------------------------------------------

test('two replicas on one redis: counters, admin keys and spend are shared', async (t) => {
  const redis = await startRedis();
  defer(t, () => redis.stop());
  const up = await upstreamFor(t, startFakeUpstream);
  const yaml = `providers_from_env: false
providers:
${provider(up, { 'mock-1': { input: 1000, output: 1000 } })}
state:
  redis: { url: "${redis.url}", prefix: "tg:", timeout: 200ms, on_unavailable: closed }
auth: { required: true }
admin: { token: ${ADMIN} }
keys:
  - { name: shared, key: sk-shared, limits: { requests_per_minute: 20 } }
  - { name: spender, key: sk-spender, budget: { daily_usd: 1000 } }
`;
  const a = await gateway(t, yaml);
  const b = await gateway(t, yaml);
  const replicas = [a, b];

  const statuses = [];
  for (let i = 0; i < 30; i++) statuses.push((await chat(replicas[i % 2], 'sk-shared', {})).status);
  assert.equal(statuses.filter((s) => s === 200).length, 20, JSON.stringify(statuses));
  assert.equal(statuses.filter((s) => s === 429).length, 10, JSON.stringify(statuses));
  assert.ok(statuses.slice(20).every((s) => s === 429), 'once 20 passed, both replicas refuse');

  const made = await admin(a, 'POST', '/admin/keys', { name: 'roaming' });
  assert.equal(made.status, 201, made.raw);
  const onB = await sdk(b, made.json.key).chat.completions.create({ model: 'mock-1', messages: user('hi') });
  assert.equal(onB.choices[0].message.content, 'reply from mock-1');
  assert.ok((await admin(b, 'GET', '/admin/keys')).json.data.some((k) => k.name === 'roaming'), 'B lists the key made on A');

  // 2 requests on A, 3 on B: 5 x 18000 micro-dollars on both.
  for (const gw of [a, a, b, b, b]) assert.equal((await chat(gw, 'sk-spender', {})).status, 200);
  for (const gw of replicas) {
    await waitFor(async () => micros((await spend(gw, 'key=spender', 'day')).spent_usd) === 5 * 18000, 10000, 'the summed spend');
  }

  // A key deleted on A is refused by B too.
  assert.equal((await admin(a, 'DELETE', `/admin/keys/${made.json.id}`)).status, 200);
  await waitFor(async () => (await chat(b, made.json.key, {})).status === 401, 5000, 'the deleted key refused on B');
});

// --- 14. redis goes away -------------------------------------------------------------------------

test('redis killed mid-run: on_unavailable closed answers 503 state_unavailable fast, open passes; both recover', async (t) => {
  const redis = await startRedis();
  defer(t, () => redis.stop());
  const up = await upstreamFor(t, startFakeUpstream);
  const yaml = (mode) => `providers_from_env: false
providers:
${provider(up)}
state:
  redis: { url: "${redis.url}", prefix: "tg:", timeout: 200ms, on_unavailable: ${mode} }
auth: { required: true }
keys:
  - { name: limited, key: sk-limited, limits: { requests_per_minute: 1000 } }
`;
  const closed = await gateway(t, yaml('closed'));
  const open = await gateway(t, yaml('open'));
  assert.equal((await chat(closed, 'sk-limited', {})).status, 200);
  assert.equal((await chat(open, 'sk-limited', {})).status, 200);

  await redis.kill();
  for (let i = 0; i < 3; i++) {
    const start = Date.now();
    const r = await chat(closed, 'sk-limited', {});
    const took = Date.now() - start;
    assert.equal(r.status, 503, why(r, closed));
    assert.equal(r.json?.error?.code, 'state_unavailable', why(r, closed));
    assert.ok(took < 2000, `answered in ${took} ms`);
    const o = await chat(open, 'sk-limited', {});
    assert.equal(o.status, 200, `open: ${why(o, open)}`);
  }

  await redis.start();
  await waitFor(async () => (await chat(closed, 'sk-limited', {})).status === 200, 15000, 'the closed replica serving again');
  assert.equal((await chat(open, 'sk-limited', {})).status, 200);
});

test('request_log on postgres: two chat requests land in request_log, as psql reads them', async (t) => {
  const pg = await startPostgres();
  defer(t, () => pg.close());
  const up = await upstreamFor(t, startFakeUpstream);
  // A password in the URL (trust auth ignores it) must not show up in the gateway's output.
  const gw = await gateway(t, `providers_from_env: false
providers:
${provider(up, { 'mock-1': { input: 1000, output: 1000 } })}
auth: { required: true }
keys:
  - { name: pg-logger, key: sk-pg-logger, team: data }
request_log: { store: postgres, url: "${pg.url('postgres', 'tg:pw-e2e-not-logged')}", payloads: false }
`);
  const ids = [];
  for (const text of ['secret-phrase-one', 'secret-phrase-two']) {
    const r = await chat(gw, 'sk-pg-logger', { messages: user(text) });
    assert.equal(r.status, 200, why(r, gw));
    ids.push(r.headers['x-request-id']);
  }
  assert.ok(ids[0] && ids[1] && ids[0] !== ids[1], JSON.stringify(ids));
  const count = async () => {
    try {
      return Number(await psql(pg, "SELECT count(*) FROM request_log WHERE kind = 'request' AND key = 'pg-logger'"));
    } catch { return -1; }  // the table is created when the gateway first connects
  };
  await waitFor(async () => (await count()) === 2, 10000, 'two request records in postgres');
  const rows = (await psql(pg, `SELECT request_id, key, team, model, status, record->>'provider', record->>'route',
      (record->>'prompt_tokens')::int FROM request_log WHERE kind = 'request' ORDER BY id`)).split('\n');
  assert.deepEqual(rows, ids.map((id) => `${id}|pg-logger|data|mock-1|200|fake|/v1/chat/completions|11`));
  assert.equal(await psql(pg, "SELECT count(*) FROM request_log WHERE record::text LIKE '%secret-phrase%'"), '0', 'payloads off');
  assert.equal(await psql(pg, 'SELECT count(*) FROM audit_log'), '0');
  assert.doesNotMatch(gw.logs, /pw-e2e-not-logged/);
});

test('the suite leaves no database file in the working directory', () => {
  const left = strayDb().filter((f) => !strayBefore.includes(f));
  for (const f of left) rmSync(f, { force: true });
  assert.deepEqual(left, [], 'a gateway of this suite wrote ./toolgate.db');
});
