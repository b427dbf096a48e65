// The response cache through the real binary: the official openai SDK as the client, a fake
// upstream in this process that counts what reaches it (and serves a deterministic embedding model
// of the test's own for the semantic mode), the official filesystem MCP server for the agent loop,
// and two gateway replicas on one real redis-server. Every scenario has its own gateway.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, realpathSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { execFileSync } from 'node:child_process';
import { startGateway, serversUp, waitFor, cleanup, cleanGateway as gateway } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { startRedis } from './lib/state_peers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const filesystem = join(here, 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');
const ADMIN = 'admin-secret';
const user = (content) => [{ role: 'user', content }];

// --- a deterministic embedding model: words hashed into 256 dimensions, negations weighted ---------
const STOP = new Set(['a', 'an', 'the', 'is', 'it', 'of', 'to', 'please', 'me', 'tell']);
function embed(text) {
  const v = new Array(256).fill(0);
  for (const w of text.toLowerCase().split(/[^a-z0-9']+/).filter(Boolean)) {
    if (STOP.has(w)) continue;
    let h = 2166136261;
    for (const ch of w) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
    v[h % 256] += ['not', "isn't", 'never', 'no'].includes(w) ? 4 : 1;
  }
  return v;
}
const embeddingAnswer = (record) => {
  const inputs = Array.isArray(record.body.input) ? record.body.input : [record.body.input];
  return { status: 200, body: { object: 'list', model: record.body.model,
    data: inputs.map((t, i) => ({ object: 'embedding', index: i, embedding: embed(t) })), usage: { prompt_tokens: 4, total_tokens: 4 } } };
};

const providerLine = (up) =>
  `  - { name: fake, type: openai, base_url: "${up.url}", api_key: sk-fake, timeout: 20s, models: [mock-1, mock-2, mock-500, mock-agent, text-embed] }`;

// The chat requests the fake upstream has seen.
const chats = (up) => up.state.requests.filter((r) => r.url.endsWith('/chat/completions'));

async function create(client, body, headers = {}) {
  const { data, response } = await client.chat.completions.create(body, { headers }).withResponse();
  return { data, cache: response.headers.get('x-toolgate-cache'), score: response.headers.get('x-toolgate-cache-score'), headers: response.headers };
}

async function createStream(client, body, headers = {}) {
  const { data: stream, response } = await client.chat.completions.create({ ...body, stream: true }, { headers }).withResponse();
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  const finish = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
  const usage = chunks.find((c) => c.usage)?.usage ?? null;
  return { chunks, text, finish, usage, cache: response.headers.get('x-toolgate-cache') };
}

describe('exact cache (memory store)', () => {
  let up, gw, client, other, defer;
  before(async (t) => {
    up = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
providers:
${providerLine(up)}
admin: { token: ${ADMIN} }
state: { persist: false }
keys:
  - { name: app-a, key: key-a-secret }
  - { name: app-b, key: key-b-secret }
plugins:
  - name: response-cache
    config: { mode: exact, ttl: 10m, max_bytes: 16MiB, scope: key }
`);
    client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'key-a-secret', maxRetries: 0 });
    other = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'key-b-secret', maxRetries: 0 });
  });
  after(async () => {
    await gw?.stop();
    assert.doesNotMatch(gw?.logs ?? '', /AddressSanitizer|LeakSanitizer|runtime error:/);
    await up?.close();
  });

  test('a second identical request is a hit the upstream never sees, with the same answer', async () => {
    const body = { model: 'mock-1', messages: user('exact one'), temperature: 0.2 };
    const seen = chats(up).length;
    const a = await create(client, body);
    assert.equal(a.cache, 'miss');
    const b = await create(client, body);
    assert.equal(b.cache, 'hit');
    assert.equal(chats(up).length, seen + 1);
    assert.deepEqual(b.data, a.data);
    assert.equal(b.headers.get('x-toolgate-provider'), 'fake');
  });

  test('key order, whitespace and number forms do not change the key', async () => {
    const seen = chats(up).length;
    const send = (raw) => fetch(gw.url + '/v1/chat/completions', {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer key-a-secret' }, body: raw });
    const r1 = await send('{"model":"mock-1","temperature":1,"messages":[{"role":"user","content":"forms"}]}');
    assert.equal(r1.headers.get('x-toolgate-cache'), 'miss');
    await r1.json();
    const r2 = await send('{ "messages" : [ { "content":"forms", "role":"user" } ],\n "temperature": 1.0, "model": "mock-1" }');
    assert.equal(r2.headers.get('x-toolgate-cache'), 'hit');
    await r2.json();
    const r3 = await send('{"temperature":1e0,"model":"mock-1","messages":[{"role":"user","content":"forms"}]}');
    assert.equal(r3.headers.get('x-toolgate-cache'), 'hit');
    await r3.json();
    assert.equal(chats(up).length, seen + 1);
  });

  test('a different model, system prompt or temperature misses', async () => {
    const base = { model: 'mock-1', messages: [{ role: 'system', content: 'be brief' }, ...user('variants')], temperature: 0 };
    await create(client, base);
    const seen = chats(up).length;
    assert.equal((await create(client, { ...base, model: 'mock-2' })).cache, 'miss');
    assert.equal((await create(client, { ...base, messages: [{ role: 'system', content: 'be long' }, ...user('variants')] })).cache, 'miss');
    assert.equal((await create(client, { ...base, temperature: 0.5 })).cache, 'miss');
    assert.equal(chats(up).length, seen + 3);
    assert.equal((await create(client, base)).cache, 'hit');
  });

  test('scope key: another key does not hit', async () => {
    const body = { model: 'mock-1', messages: user('scoped') };
    await create(client, body);
    assert.equal((await create(client, body)).cache, 'hit');
    const seen = chats(up).length;
    assert.equal((await create(other, body)).cache, 'miss');
    assert.equal(chats(up).length, seen + 1);
  });

  test('a stream recorded is replayed as a stream and as JSON, usage included when asked', async () => {
    const body = { model: 'mock-1', messages: user('stream first') };
    const seen = chats(up).length;
    const first = await createStream(client, body);
    assert.equal(first.cache, 'miss');
    assert.equal(first.text, 'Hello from the fake upstream');
    const again = await createStream(client, { ...body, stream_options: { include_usage: true } });
    assert.equal(again.cache, 'hit');
    assert.equal(again.text, first.text);
    assert.deepEqual(again.finish, ['stop']);
    assert.ok(again.usage && again.usage.total_tokens > 0, 'a usage chunk when the client asks for one');
    assert.equal(again.chunks.length, first.chunks.length + 1);
    const json = await create(client, body);
    assert.equal(json.cache, 'hit');
    assert.equal(json.data.choices[0].message.content, first.text);
    assert.equal(json.data.choices[0].finish_reason, 'stop');
    assert.equal(json.data.object, 'chat.completion');
    assert.equal(chats(up).length, seen + 1);
  });

  test('a JSON answer recorded is replayed as a stream', async () => {
    const body = { model: 'mock-2', messages: user('json first') };
    const seen = chats(up).length;
    const a = await create(client, body);
    const s = await createStream(client, body);
    assert.equal(s.cache, 'hit');
    assert.equal(s.text, a.data.choices[0].message.content);
    assert.deepEqual(s.finish, ['stop']);
    assert.equal(s.usage, null, 'no usage chunk unless asked');
    assert.equal(chats(up).length, seen + 1);
  });

  test('cache-control: no-store bypasses, no-cache skips the lookup but stores', async () => {
    const body = { model: 'mock-1', messages: user('directives') };
    const seen = chats(up).length;
    assert.equal((await create(client, body, { 'cache-control': 'no-store' })).cache, 'bypass');
    assert.equal((await create(client, body)).cache, 'miss', 'no-store stored nothing');
    assert.equal((await create(client, body, { 'cache-control': 'no-cache' })).cache, 'miss');
    assert.equal((await create(client, body)).cache, 'hit');
    assert.equal(chats(up).length, seen + 3);
  });

  test('errors are never cached', async () => {
    const body = { model: 'mock-500', messages: user('boom') };
    const seen = chats(up).length;
    for (let i = 0; i < 2; i++) await assert.rejects(create(client, body), (e) => e.status >= 500);
    assert.ok(chats(up).length >= seen + 2);
  });

  test('DELETE /admin/cache empties one key scope, then everything', async () => {
    const body = { model: 'mock-1', messages: user('to be cleared') };
    await create(client, body);
    await create(other, body);
    const del = (q) => fetch(gw.url + '/admin/cache' + q, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal((await del('')).status === 200, true);
    assert.equal((await create(client, body)).cache, 'miss');
    assert.equal((await create(other, body)).cache, 'miss');
    const one = await del('?scope=key:app-a');
    assert.equal(one.status, 200);
    const j = await one.json();
    assert.ok(j.removed >= 1, JSON.stringify(j));
    assert.equal((await create(client, body)).cache, 'miss');
    assert.equal((await create(other, body)).cache, 'hit', 'the other key kept its entries');
    const byModel = await (await del('?model=mock-1')).json();
    assert.ok(byModel.removed >= 2);
    assert.equal((await create(other, body)).cache, 'miss');
    assert.equal((await del('?scope=bogus')).status, 400);
    assert.equal((await del('?scope=key:nobody')).status, 404);
    assert.equal((await fetch(gw.url + '/admin/cache', { method: 'DELETE' })).status, 401);
  });

  test('/metrics counts hits, misses and bytes per scope', async () => {
    const text = await (await fetch(gw.url + '/metrics')).text();
    assert.match(text, /toolgate_cache_lookups_total\{scope="key:app-a",result="hit"\} [1-9]/);
    assert.match(text, /toolgate_cache_lookups_total\{scope="key:app-a",result="miss"\} [1-9]/);
    assert.match(text, /toolgate_cache_bytes\{scope="key:app-b"\} [1-9]/);
    assert.match(text, /toolgate_cache_evictions_total/);
  });

  test('the access log says hit or miss', async () => {
    const lines = gw.accessLog().filter((l) => l.route === '/v1/chat/completions');
    assert.ok(lines.some((l) => l.cache === 'hit'));
    assert.ok(lines.some((l) => l.cache === 'miss'));
  });
});

describe('semantic cache', () => {
  let up, gw, client;
  before(async () => {
    up = await startFakeUpstream({ intercept: (r) => (r.url.endsWith('/embeddings') ? embeddingAnswer(r) : undefined) });
    gw = await startGateway(`
providers_from_env: false
providers:
${providerLine(up)}
plugins:
  - name: response-cache
    config:
      mode: semantic
      scope: global
      semantic: { embedding_model: text-embed, threshold: 0.8, max_messages: 3 }
`);
    client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await gw?.stop();
    assert.doesNotMatch(gw?.logs ?? '', /AddressSanitizer|LeakSanitizer|runtime error:/);
    await up?.close();
  });

  test('a paraphrase hits above the threshold, with its score', async () => {
    const a = await create(client, { model: 'mock-1', messages: user('What is the capital of France?') });
    assert.equal(a.cache, 'miss');
    const seen = chats(up).length;
    const b = await create(client, { model: 'mock-1', messages: user('Tell me the capital of France') });
    assert.equal(b.cache, 'hit');
    assert.ok(Number(b.score) >= 0.8 && Number(b.score) < 1, `score ${b.score}`);
    assert.equal(b.data.choices[0].message.content, a.data.choices[0].message.content);
    assert.equal(chats(up).length, seen);
    const embeds = up.state.requests.filter((r) => r.url.endsWith('/embeddings'));
    assert.ok(embeds.length >= 2, 'the embedding calls went through the gateway\'s routing');
  });

  test('a negation and an unrelated question miss', async () => {
    await create(client, { model: 'mock-1', messages: user('Is Paris the capital of France?') });
    const seen = chats(up).length;
    assert.equal((await create(client, { model: 'mock-1', messages: user('Is Paris not the capital of France?') })).cache, 'miss');
    assert.equal((await create(client, { model: 'mock-1', messages: user('How do I bake sourdough bread?') })).cache, 'miss');
    assert.equal(chats(up).length, seen + 2);
  });

  test('everything but the last user message must match exactly', async () => {
    const sys = (s) => [{ role: 'system', content: s }];
    await create(client, { model: 'mock-1', messages: [...sys('terse'), ...user('Which river flows through Paris?')] });
    assert.equal((await create(client, { model: 'mock-1', messages: [...sys('verbose'), ...user('which river flows through paris')] })).cache, 'miss');
    assert.equal((await create(client, { model: 'mock-2', messages: [...sys('terse'), ...user('which river flows through paris')] })).cache, 'miss');
    assert.equal((await create(client, { model: 'mock-1', messages: [...sys('terse'), ...user('which river flows through paris')] })).cache, 'hit');
  });

  test('a conversation over max_messages is cached exactly, not semantically', async () => {
    const long = (last) => [
      { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'and then' }, { role: 'assistant', content: 'yes' }, { role: 'user', content: last }];
    await create(client, { model: 'mock-1', messages: long('What is the tallest mountain on Earth?') });
    assert.equal((await create(client, { model: 'mock-1', messages: long('tallest mountain on earth: what is it') })).cache, 'miss');
    assert.equal((await create(client, { model: 'mock-1', messages: long('What is the tallest mountain on Earth?') })).cache, 'hit');
  });
});

describe('cache and policies', () => {
  test('a hit counts as a request on the rate limit but costs nothing', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
  - { name: fake, type: openai, base_url: "${up.url}", api_key: sk-fake, models: [mock-1], prices: { mock-1: { input: 1000, output: 1000 } } }
state: { persist: false }
admin: { token: ${ADMIN} }
keys:
  - { name: app, key: app-key-secret, limits: { requests_per_minute: 3 }, budget: { daily_usd: 10 } }
plugins:
  - name: response-cache
    config: { scope: key }
`);
    const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'app-key-secret', maxRetries: 0 });
    const spent = async () => (await (await fetch(gw.url + '/admin/spend?key=app&period=day',
      { headers: { authorization: `Bearer ${ADMIN}` } })).json()).spent_usd;
    const body = { model: 'mock-1', messages: user('priced') };
    assert.equal((await create(client, body)).cache, 'miss');
    const afterMiss = await spent();
    assert.ok(afterMiss > 0, `spent ${afterMiss}`);
    const hit = await create(client, body);
    assert.equal(hit.cache, 'hit');
    assert.equal(hit.headers.get('x-ratelimit-remaining-requests'), '1');
    assert.equal((await create(client, body)).cache, 'hit');
    assert.equal(await spent(), afterMiss, 'hits cost nothing');
    await assert.rejects(create(client, body), (e) => e.status === 429);
    assert.equal(chats(up).length, 1);
  });

  test('a semantic lookup slower than its timeout is a miss, and the answer still comes', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream({ intercept: (r) => (r.url.endsWith('/embeddings') ? { hang: true } : undefined) });
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
plugins:
  - name: response-cache
    config:
      mode: semantic
      semantic: { embedding_model: text-embed, threshold: 0.9, timeout: 150ms }
`);
    const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'k', maxRetries: 0 });
    const started = Date.now();
    const r = await create(client, { model: 'mock-1', messages: user('anyone there?') });
    assert.equal(r.cache, 'miss');
    assert.equal(r.data.choices[0].message.content, 'reply from mock-1');
    assert.ok(Date.now() - started < 5000);
    assert.equal((await create(client, { model: 'mock-1', messages: user('anyone there?') })).cache, 'hit', 'stored exactly all the same');
    const text = await (await fetch(gw.url + '/metrics')).text();
    assert.match(text, /toolgate_cache_embedding_failures_total [1-9]/);
  });
});

describe('agent loop: each model turn is looked up on its own', () => {
  test('unchanged tool results answer turn by turn from the cache; a changed one misses', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'toolgate-cache-fs-')));
    defer(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'note.txt');
    writeFileSync(file, 'first version');
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
mcp_servers:
  - { name: fs, command: node, args: ["${filesystem}", "${dir}"], timeout: 20s }
plugins:
  - name: response-cache
    config: { scope: global }
`);
    await serversUp(gw);
    const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'k', maxRetries: 0 });
    const body = { model: 'mock-agent', messages: user(`call fs__read_text_file {"path":"${file}"}`) };
    const a = await create(client, body);
    assert.match(a.data.choices[0].message.content, /first version/);
    const seen = chats(up).length;
    const b = await create(client, body);
    assert.equal(b.data.choices[0].message.content, a.data.choices[0].message.content);
    assert.equal(chats(up).length, seen, 'both turns answered from the cache');
    writeFileSync(file, 'second version');
    const c = await createStream(client, body);
    assert.match(c.text, /second version/);
    assert.equal(chats(up).length, seen + 1, 'the first turn hit, the turn after the changed result missed');
  });
});

describe('two replicas on one redis-server', () => {
  test('an answer cached by one replica is a hit on the other', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const redis = await startRedis();
    defer(() => redis.stop());
    const yaml = `
providers_from_env: false
providers:
${providerLine(up)}
state:
  persist: false
  redis: { url: "redis://127.0.0.1:${redis.port}/0", prefix: "tgc:" }
admin: { token: ${ADMIN} }
keys:
  - { name: app, key: app-key-secret }
plugins:
  - name: response-cache
    config: { store: redis, scope: global, ttl: 1m }
`;
    const one = await gateway(defer, yaml);
    const two = await gateway(defer, yaml);
    const c1 = new OpenAI({ baseURL: one.url + '/v1', apiKey: 'app-key-secret', maxRetries: 0 });
    const c2 = new OpenAI({ baseURL: two.url + '/v1', apiKey: 'app-key-secret', maxRetries: 0 });
    const body = { model: 'mock-1', messages: user('shared across replicas') };
    const seen = chats(up).length;
    const a = await createStream(c1, body);
    assert.equal(a.cache, 'miss');
    // The store is written after the answer: wait until the real redis-server holds it.
    const keys = () => execFileSync('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', 'tgc:cache:*']).toString().split('\n').filter(Boolean);
    await waitFor(() => keys().length === 1, 5000, 'the entry in redis');
    const ttl = Number(execFileSync('redis-cli', ['-p', String(redis.port), 'pttl', keys()[0]]).toString());
    assert.ok(ttl > 0 && ttl <= 60000, `ttl ${ttl}`);
    const b = await create(c2, body);
    assert.equal(b.cache, 'hit');
    assert.equal(b.data.choices[0].message.content, a.text);
    assert.equal(chats(up).length, seen + 1);
    const cleared = await (await fetch(two.url + '/admin/cache', { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } })).json();
    assert.equal(cleared.removed, 1);
    assert.equal((await create(c1, body)).cache, 'miss', 'cleared for both replicas');
  });
});

describe('examples/cache.yaml', () => {
  test('runs offline as written: miss, hit, a streamed replay, and the admin API empties it', async (t) => {
    const defer = cleanup(t);
    const yaml = readFileSync(join(here, '..', '..', 'examples', 'cache.yaml'), 'utf8');
    const gw = await gateway(defer, yaml);
    const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'sk-cache-demo-key', maxRetries: 0 });
    const body = { model: 'toolgate-demo', messages: user('hello cache') };
    const a = await create(client, body);
    assert.equal(a.cache, 'miss');
    assert.match(a.data.choices[0].message.content, /hello cache/);
    const b = await create(client, body);
    assert.equal(b.cache, 'hit');
    assert.deepEqual(b.data, a.data);
    const s = await createStream(client, body);
    assert.equal(s.cache, 'hit');
    assert.equal(s.text, a.data.choices[0].message.content);
    const del = await fetch(gw.url + '/admin/cache?model=toolgate-demo', { method: 'DELETE', headers: { authorization: 'Bearer demo-admin-token' } });
    assert.equal((await del.json()).removed, 1);
    assert.equal((await create(client, body)).cache, 'miss');
  });
});
