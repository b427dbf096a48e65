// Server-side sessions through the real binary: the official openai SDK (and plain fetch where
// status codes and headers matter) as the client, a fake upstream in this process that records
// every request the provider received, the official filesystem MCP server for the agent loop, two
// gateway replicas on one real redis-server for a hybrid loop resumed on the other replica, and a
// SQLite file that outlives a gateway. The client sends only its new messages; the tests check
// what the provider got and what GET /v1/sessions/{id} shows. Every scenario has its own gateway.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, realpathSync, readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startGateway, serversUp, waitFor, sleep, cleanup, assertClean, cleanGateway as gateway } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { startRedis } from './lib/state_peers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const filesystem = join(here, 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');
const user = (content) => [{ role: 'user', content }];
// A history as [role, content] pairs (what the provider and GET show may carry more fields).
const pairs = (messages) => messages.map((m) => [m.role, m.content]);

// A temporary directory, removed when the test ends (after the gateways that use it stopped).
function tempDir(defer, prefix = 'toolgate-sessions-') {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const providerLine = (up) =>
  `  - { name: fake, type: openai, base_url: "${up.url}", api_key: sk-fake, timeout: 20s, models: [mock-1, mock-500, mock-hang, mock-agent] }`;

// The chat requests the fake upstream has seen.
const chats = (up) => up.state.requests.filter((r) => r.url.endsWith('/chat/completions'));

const sdk = (gw, apiKey = 'k') => new OpenAI({ baseURL: gw.url + '/v1', apiKey, maxRetries: 0, timeout: 20000 });

// Through the SDK, on a session: the answer and the x-session-id the gateway answered with.
async function create(client, body, sessionId) {
  const { data, response } = await client.chat.completions.create(body, { headers: { 'x-session-id': sessionId } }).withResponse();
  return { data, text: data.choices[0].message.content, session: response.headers.get('x-session-id') };
}

async function createStream(client, body, sessionId) {
  const { data: stream, response } = await client.chat.completions
    .create({ ...body, stream: true }, { headers: { 'x-session-id': sessionId } }).withResponse();
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  const finish = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
  return { chunks, text, finish, session: response.headers.get('x-session-id') };
}

// Plain fetch: status, headers, parsed body.
async function call(gw, method, path, { body, key = null, headers = {}, signal } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const res = await fetch(gw.url + path, { method, headers: h, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  const raw = await res.text();
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, raw };
}

// A chat request on a session with plain fetch (model mock-1 unless the body names one).
const chatIn = (gw, id, body, opts = {}) => call(gw, 'POST', '/v1/chat/completions',
  { ...opts, body: { model: 'mock-1', ...body }, headers: { 'x-session-id': id, ...opts.headers } });
const getSession = (gw, id, key) => call(gw, 'GET', `/v1/sessions/${encodeURIComponent(id)}`, { key });
const newSession = (gw, body, key) => call(gw, 'POST', '/v1/sessions', { body, key });
const listSessions = (gw, query = '', key) => call(gw, 'GET', `/v1/sessions${query}`, { key });

const why = (r, gw) => `response ${r.status}: ${r.raw}\n--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;

// An error in OpenAI's shape with this status and code.
function assertError(r, status, code, gw) {
  assert.equal(r.status, status, why(r, gw));
  assert.equal(r.json?.error?.code, code, why(r, gw));
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal(typeof r.json.error.type, 'string');
  assert.ok('param' in r.json.error, 'the error has a param field (null when none)');
}

// An upstream that holds the chat answers whose last message says "hold" until release(); every
// other request is answered at once. Records what it received.
async function startHeldUpstream() {
  const st = { requests: [], held: [] };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let json = {};
      try { json = JSON.parse(body); } catch { /* empty */ }
      st.requests.push({ url: req.url, body: json });
      const n = st.requests.length;
      const answer = () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: `chatcmpl-held-${n}`, object: 'chat.completion', created: 1, model: json.model,
          choices: [{ index: 0, message: { role: 'assistant', content: `answer ${n}` }, finish_reason: 'stop', logprobs: null }],
          usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } }));
      };
      const last = json.messages?.at(-1)?.content;
      if (typeof last === 'string' && last.startsWith('hold')) st.held.push(answer); else answer();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    state: st,
    url: `http://127.0.0.1:${server.address().port}/v1`,
    release: () => { for (const a of st.held.splice(0)) a(); },
    close: async () => { for (const s of sockets) s.destroy(); await new Promise((r) => server.close(r)); },
  };
}

// --- 1. a conversation where the client sends only its new message ---------------------------------

describe('a three-turn conversation through x-session-id (openai SDK)', () => {
  for (const stream of [false, true]) {
    test(stream ? 'streamed' : 'non-streamed', async (t) => {
      const defer = cleanup(t);
      const up = await startFakeUpstream();
      defer(() => up.close());
      const dir = tempDir(defer);
      // The default store: the state's SQLite file.
      const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
state: { sqlite: { path: "${join(dir, 'state.db')}" } }
sessions: { ttl: 1h, max_messages: 200 }
`);
      const client = sdk(gw);
      const id = stream ? 'conv-streamed' : 'conv-json';
      const said = [];
      for (const q of ['What is two plus two?', 'And times three?', 'Thanks, that is all.']) {
        const seen = chats(up).length;
        const r = stream
          ? await createStream(client, { model: 'mock-1', messages: user(q) }, id)
          : await create(client, { model: 'mock-1', messages: user(q) }, id);
        assert.equal(r.session, id, 'the answer names its session');
        assert.equal(r.text, stream ? 'Hello from the fake upstream' : 'reply from mock-1');
        if (stream) assert.deepEqual(r.finish, ['stop']);
        assert.equal(chats(up).length, seen + 1);
        assert.deepEqual(pairs(chats(up)[seen].body.messages), [...said, ['user', q]],
          'the provider received the whole history, then the new message');
        said.push(['user', q], ['assistant', r.text]);
      }
      const g = await getSession(gw, id);
      assert.equal(g.status, 200, why(g, gw));
      assert.equal(g.json.id, id);
      assert.equal(g.json.object, 'session');
      assert.equal(g.json.message_count, 6);
      assert.deepEqual(pairs(g.json.messages), said);
    });
  }
});

// --- the session API ---------------------------------------------------------------------------------

describe('the session API', () => {
  let up, gw;
  before(async () => {
    up = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
providers:
${providerLine(up)}
state: { persist: false }
sessions: { store: memory, ttl: 1h, max_messages: 200, create_on_use: false }
`);
  });
  after(async () => {
    try { await gw?.stop(); } finally { await up?.close(); }
    if (gw) assertClean(gw);
  });

  test('POST without a body makes a session with a generated id and the gateway\'s limits', async () => {
    const now = Math.floor(Date.now() / 1000);
    const r = await call(gw, 'POST', '/v1/sessions');
    assert.equal(r.status, 200, why(r, gw));
    const s = r.json;
    assert.match(s.id, /^sess_[A-Za-z0-9]+$/);
    assert.equal(s.object, 'session');
    for (const f of ['created_at', 'updated_at', 'expires_at']) assert.ok(Number.isInteger(s[f]), `${f}: ${r.raw}`);
    assert.ok(Math.abs(s.created_at - now) <= 2, r.raw);
    assert.ok(Math.abs(s.expires_at - s.updated_at - 3600) <= 1, `expires an hour after its last use: ${r.raw}`);
    assert.deepEqual(s.metadata, {});
    assert.equal(s.system, undefined, 'no system prompt, no field');
    assert.deepEqual(s.limits, { ttl_seconds: 3600, max_messages: 200, max_tokens: 0, on_limit: 'trim' });
    assert.equal(s.message_count, 0);
    assert.equal(s.messages, undefined, 'POST answers without the messages');
    const g = await getSession(gw, s.id);
    assert.equal(g.status, 200, why(g, gw));
    assert.deepEqual(g.json.messages, []);
  });

  test('an id that exists answers 409 session_exists; a malformed id or a looser limit 400', async () => {
    const ok = await newSession(gw, { id: 'api:dup-1', metadata: { team: 'qa' } });
    assert.equal(ok.status, 200, why(ok, gw));
    assert.equal(ok.json.id, 'api:dup-1');
    assertError(await newSession(gw, { id: 'api:dup-1' }), 409, 'session_exists', gw);
    for (const bad of [{ id: 'has space' }, { id: 'x'.repeat(129) }, { id: '' }, { id: 'slash/no' },
      { max_messages: 1000 }, { ttl_seconds: 7200 }, { on_limit: 'drop' }, { metadata: { n: 1 } }, { metadata: 'x' }]) {
      const r = await newSession(gw, bad);
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.raw}`);
      assert.equal(r.json?.error?.type, 'invalid_request_error', r.raw);
    }
    const max = await newSession(gw, { id: 'x'.repeat(128) });
    assert.equal(max.status, 200, `128 characters are allowed: ${max.raw}`);
  });

  test('tighter limits are taken and enforced: max_messages 2 with on_limit reject', async () => {
    const r = await newSession(gw, { max_messages: 2, ttl_seconds: 600, on_limit: 'reject' });
    assert.equal(r.status, 200, why(r, gw));
    assert.deepEqual(r.json.limits, { ttl_seconds: 600, max_messages: 2, max_tokens: 0, on_limit: 'reject' });
    const first = await chatIn(gw, r.json.id, { messages: user('one') });
    assert.equal(first.status, 200, why(first, gw));
    assert.equal(first.headers.get('x-session-id'), r.json.id);
    const seen = chats(up).length;
    assertError(await chatIn(gw, r.json.id, { messages: user('two') }), 429, 'session_limit', gw);
    assert.equal(chats(up).length, seen, 'refused before the provider');
  });

  test('a malformed x-session-id: 400 invalid_session_id; an unknown one with create_on_use false: 404', async () => {
    const seen = chats(up).length;
    for (const bad of ['has space', 'x'.repeat(129), 'semi;colon', 'slash/no']) {
      assertError(await chatIn(gw, bad, { messages: user('hi') }), 400, 'invalid_session_id', gw);
    }
    assertError(await chatIn(gw, 'never-made', { messages: user('hi') }), 404, 'session_not_found', gw);
    assertError(await getSession(gw, 'never-made'), 404, 'session_not_found', gw);
    assertError(await call(gw, 'DELETE', '/v1/sessions/never-made'), 404, 'session_not_found', gw);
    assert.equal(chats(up).length, seen, 'nothing reached the provider');
    // A request without the header is not a session request at all.
    const plain = await call(gw, 'POST', '/v1/chat/completions', { body: { model: 'mock-1', messages: user('hi') } });
    assert.equal(plain.status, 200, why(plain, gw));
    assert.equal(plain.headers.get('x-session-id'), null);
  });

  test('list: newest created first, paged with limit and after', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await newSession(gw, { id: `page-${i}` });
      assert.equal(r.status, 200, why(r, gw));
      ids.push(r.json.id);
      await sleep(5);  // distinct creation times: the order is by creation
    }
    const all = await listSessions(gw, '?limit=100');
    assert.equal(all.status, 200, why(all, gw));
    assert.equal(all.json.object, 'list');
    const order = all.json.data.map((s) => s.id).filter((id) => id.startsWith('page-'));
    assert.deepEqual(order, ['page-2', 'page-1', 'page-0']);
    assert.ok(all.json.data.every((s) => s.object === 'session' && s.messages === undefined), 'no messages in a list');
    for (let i = 1; i < all.json.data.length; i++) assert.ok(all.json.data[i - 1].created_at >= all.json.data[i].created_at);
    assert.equal(all.json.has_more, false);
    assert.equal(all.json.first_id, all.json.data[0].id);
    assert.equal(all.json.last_id, all.json.data.at(-1).id);
    // The three newest are page-2, page-1, page-0 (made last): two pages of two and one.
    const p1 = await listSessions(gw, '?limit=2');
    assert.deepEqual(p1.json.data.map((s) => s.id), ['page-2', 'page-1']);
    assert.equal(p1.json.has_more, true);
    assert.equal(p1.json.last_id, 'page-1');
    const p2 = await listSessions(gw, `?limit=2&after=${p1.json.last_id}`);
    assert.equal(p2.status, 200, why(p2, gw));
    assert.equal(p2.json.data[0].id, 'page-0');
  });
});

// --- 2. a system prompt and metadata; list; delete ------------------------------------------------

describe('a session made with a system prompt and metadata', () => {
  test('the provider gets the system prompt first; list shows it; after DELETE: 410 session_expired', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
state: { persist: false }
sessions: { store: memory }
`);
    const made = await newSession(gw, { system: 'You are a terse pirate.', metadata: { user: 'alice', ticket: 'T-42' } });
    assert.equal(made.status, 200, why(made, gw));
    const id = made.json.id;
    assert.equal(made.json.system, 'You are a terse pirate.');
    assert.deepEqual(made.json.metadata, { user: 'alice', ticket: 'T-42' });
    assert.equal(made.json.message_count, 1, 'the system prompt is the first stored message');

    const r = await create(sdk(gw), { model: 'mock-1', messages: user('Ahoy?') }, id);
    assert.equal(r.text, 'reply from mock-1');
    assert.deepEqual(pairs(chats(up).at(-1).body.messages), [['system', 'You are a terse pirate.'], ['user', 'Ahoy?']]);

    const g = await getSession(gw, id);
    assert.equal(g.status, 200, why(g, gw));
    assert.deepEqual(pairs(g.json.messages),
      [['system', 'You are a terse pirate.'], ['user', 'Ahoy?'], ['assistant', 'reply from mock-1']]);
    assert.equal(g.json.message_count, 3);
    assert.ok(g.json.updated_at >= made.json.updated_at);

    const list = await listSessions(gw);
    assert.equal(list.status, 200, why(list, gw));
    const listed = list.json.data.find((s) => s.id === id);
    assert.ok(listed, list.raw);
    assert.deepEqual(listed.metadata, { user: 'alice', ticket: 'T-42' });
    assert.equal(listed.system, 'You are a terse pirate.');
    assert.equal(listed.message_count, 3);
    assert.equal(listed.messages, undefined);

    const del = await call(gw, 'DELETE', `/v1/sessions/${id}`);
    assert.equal(del.status, 200, why(del, gw));
    assert.deepEqual(del.json, { id, object: 'session.deleted', deleted: true });
    const seen = chats(up).length;
    assertError(await chatIn(gw, id, { messages: user('Still there?') }), 410, 'session_expired', gw);
    assert.equal(chats(up).length, seen, 'a deleted session never reaches the provider');
    assertError(await getSession(gw, id), 410, 'session_expired', gw);
    assert.ok(!(await listSessions(gw)).json.data.some((s) => s.id === id), 'a deleted session is not listed');
  });
});

// --- 3. the agent loop inside a session -------------------------------------------------------------

describe('the agent loop inside a session (filesystem MCP server)', () => {
  test('the tool call and its result are stored, and the next turn sends them to the provider', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const dir = tempDir(defer, 'toolgate-sessions-fs-');
    const file = join(dir, 'note.txt');
    writeFileSync(file, 'first version');
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
mcp_servers:
  - { name: fs, command: node, args: ["${filesystem}", "${dir}"], timeout: 20s }
state: { persist: false }
sessions: { store: memory }
`);
    await serversUp(gw);
    const client = sdk(gw);
    const id = 'agent-loop-1';
    const args = JSON.stringify({ path: file });

    // Turn 1, streamed: the model calls the tool (arguments in fragments), the gateway runs it.
    const one = await createStream(client, { model: 'mock-agent', messages: user(`call fs__read_text_file ${args}`) }, id);
    assert.equal(one.session, id);
    assert.match(one.text, /Tool results: first version/);
    assert.deepEqual(one.finish, ['stop']);

    const g = await getSession(gw, id);
    assert.equal(g.status, 200, why(g, gw));
    const m = g.json.messages;
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'tool', 'assistant'], JSON.stringify(m));
    assert.equal(m[1].tool_calls.length, 1);
    const tc = m[1].tool_calls[0];
    assert.equal(tc.type, 'function');
    assert.equal(tc.function.name, 'fs__read_text_file');
    assert.deepEqual(JSON.parse(tc.function.arguments), { path: file });
    assert.equal(m[2].tool_call_id, tc.id);
    assert.match(m[2].content, /first version/);
    assert.match(m[3].content, /Tool results: first version/);

    // Turn 2, not streamed: the provider sees the whole loop of turn 1 before the new message.
    const seen = chats(up).length;
    const two = await create(client, { model: 'mock-agent', messages: user('thanks') }, id);
    assert.equal(two.text, 'no tools needed: thanks');
    const sent = chats(up)[seen].body.messages;
    assert.deepEqual(sent.map((x) => x.role), ['user', 'assistant', 'tool', 'assistant', 'user'], JSON.stringify(sent));
    assert.equal(sent[1].tool_calls[0].id, tc.id);
    assert.equal(sent[1].tool_calls[0].function.name, 'fs__read_text_file');
    assert.equal(sent[2].tool_call_id, tc.id);
    assert.match(sent[2].content, /first version/);
    assert.equal(sent[4].content, 'thanks');
    const after2 = await getSession(gw, id);
    assert.equal(after2.json.message_count, 6);
    assert.deepEqual(pairs(after2.json.messages.slice(4)), [['user', 'thanks'], ['assistant', 'no tools needed: thanks']]);

    // A hybrid turn on the same gateway: the client's tool call comes back, the client sends only
    // its result, and the provider sees the MCP turn once (from the session), not twice.
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }];
    const three = await create(client, { model: 'mock-agent', tools,
      messages: user(`call fs__read_text_file ${args}\ncall get_weather {"city":"Oslo"}`) }, id);
    assert.equal(three.data.choices[0].finish_reason, 'tool_calls');
    const handed = three.data.choices[0].message.tool_calls;
    assert.deepEqual(handed.map((c) => c.function.name), ['get_weather']);
    const seen4 = chats(up).length;
    const four = await create(client, { model: 'mock-agent', tools,
      messages: [{ role: 'tool', tool_call_id: handed[0].id, content: 'rainy' }] }, id);
    assert.match(four.text, /^Tool results: .*first version.* \| rainy$/);
    assert.equal(chats(up).length, seen4 + 1);
    const sent4 = chats(up)[seen4].body.messages;
    assert.deepEqual(sent4.map((x) => x.role),
      ['user', 'assistant', 'tool', 'assistant', 'user', 'assistant', 'user', 'assistant', 'tool', 'tool'], JSON.stringify(sent4));
    assert.equal(sent4[7].tool_calls.length, 2);
    assert.equal(sent4[9].tool_call_id, handed[0].id);
    const after4 = await getSession(gw, id);
    assert.deepEqual(after4.json.messages.map((x) => x.role),
      ['user', 'assistant', 'tool', 'assistant', 'user', 'assistant', 'user', 'assistant', 'tool', 'tool', 'assistant']);
  });
});

// --- 4. a hybrid loop resumed on another replica ----------------------------------------------------

describe('two replicas on one redis-server', () => {
  test('a client tool call handed back by replica A is answered on replica B, which continues the loop', async (t) => {
    const defer = cleanup(t);
    const upA = await startFakeUpstream();
    defer(() => upA.close());
    const upB = await startFakeUpstream();
    defer(() => upB.close());
    const redis = await startRedis();
    defer(() => redis.stop());
    const dir = tempDir(defer, 'toolgate-sessions-hybrid-');
    const file = join(dir, 'note.txt');
    writeFileSync(file, 'first version');
    const yaml = (up) => `
providers_from_env: false
providers:
${providerLine(up)}
mcp_servers:
  - { name: fs, command: node, args: ["${filesystem}", "${dir}"], timeout: 20s }
state:
  persist: false
  redis: { url: "redis://127.0.0.1:${redis.port}/0", prefix: "tgs:" }
sessions: { store: redis, ttl: 10m }
`;
    const [a, b] = await Promise.all([gateway(defer, yaml(upA)), gateway(defer, yaml(upB))]);
    await Promise.all([serversUp(a), serversUp(b)]);
    const id = 'hybrid-1';
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];

    // Replica A: the model calls an MCP tool (run by A) and the client's tool (handed back).
    const one = await create(sdk(a), { model: 'mock-agent', tools,
      messages: user(`call fs__read_text_file ${JSON.stringify({ path: file })}\ncall get_weather {"city":"Paris"}`) }, id);
    assert.equal(one.session, id);
    assert.equal(one.data.choices[0].finish_reason, 'tool_calls');
    const handed = one.data.choices[0].message.tool_calls;
    assert.equal(handed.length, 1);
    assert.equal(handed[0].function.name, 'get_weather');
    assert.equal(handed[0].function.arguments, '{"city":"Paris"}');

    // The stored history (read on B) ends with the assistant's tool calls and the MCP result.
    const mid = await getSession(b, id);
    assert.equal(mid.status, 200, why(mid, b));
    const m = mid.json.messages;
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'tool'], JSON.stringify(m));
    const calls = m[1].tool_calls;
    assert.deepEqual(calls.map((c) => c.function.name).sort(), ['fs__read_text_file', 'get_weather']);
    assert.ok(calls.some((c) => c.id === handed[0].id), 'the client was handed the stored call id');
    const fsCall = calls.find((c) => c.function.name === 'fs__read_text_file');
    assert.equal(m[2].tool_call_id, fsCall.id);
    assert.match(m[2].content, /first version/);

    // Replica B: the client sends only its tool result; B's provider sees the whole turn.
    const two = await create(sdk(b), { model: 'mock-agent', tools,
      messages: [{ role: 'tool', tool_call_id: handed[0].id, content: 'sunny, 21 C' }] }, id);
    assert.equal(two.session, id);
    assert.equal(two.data.choices[0].finish_reason, 'stop');
    assert.match(two.text, /^Tool results: .*first version.* \| sunny, 21 C$/);
    assert.equal(chats(upB).length, 1, 'one model turn on B');
    const sent = chats(upB)[0].body.messages;
    assert.deepEqual(sent.map((x) => x.role), ['user', 'assistant', 'tool', 'tool'], JSON.stringify(sent));
    assert.equal(sent[1].tool_calls.length, 2, 'the model sees its full earlier turn again');
    assert.equal(sent[2].tool_call_id, fsCall.id);
    assert.deepEqual({ id: sent[3].tool_call_id, content: sent[3].content }, { id: handed[0].id, content: 'sunny, 21 C' });

    const end = await getSession(a, id);
    assert.equal(end.status, 200, why(end, a));
    assert.deepEqual(end.json.messages.map((x) => x.role), ['user', 'assistant', 'tool', 'tool', 'assistant']);
    assert.equal(end.json.messages[4].content, two.text);
  });

  test('without a session: the loop\'s own tool turns reach replica B through redis when the client posts the follow-up there', async (t) => {
    const defer = cleanup(t);
    const upA = await startFakeUpstream();
    defer(() => upA.close());
    const upB = await startFakeUpstream();
    defer(() => upB.close());
    const redis = await startRedis();
    defer(() => redis.stop());
    const dir = tempDir(defer, 'toolgate-hybrid-shared-');
    const file = join(dir, 'note.txt');
    writeFileSync(file, 'shared version');
    // No sessions section: the hybrid store alone, shared through state.redis.
    const yaml = (up) => `
providers_from_env: false
providers:
${providerLine(up)}
mcp_servers:
  - { name: fs, command: node, args: ["${filesystem}", "${dir}"], timeout: 20s }
state:
  persist: false
  redis: { url: "redis://127.0.0.1:${redis.port}/0", prefix: "tgh:" }
`;
    const [a, b] = await Promise.all([gateway(defer, yaml(upA)), gateway(defer, yaml(upB))]);
    await Promise.all([serversUp(a), serversUp(b)]);
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const first = user(`call fs__read_text_file ${JSON.stringify({ path: file })}\ncall get_weather {"city":"Oslo"}`);

    // Replica A runs the MCP call and hands the client's call back.
    const one = await sdk(a).chat.completions.create({ model: 'mock-agent', tools, messages: first });
    assert.equal(one.choices[0].finish_reason, 'tool_calls');
    const handed = one.choices[0].message;
    assert.deepEqual(handed.tool_calls.map((c) => c.function.name), ['get_weather'], 'the client sees only its own call');

    // Replica B gets the conversation as the client knows it, and sends the model the loop's turn too.
    const two = await sdk(b).chat.completions.create({ model: 'mock-agent', tools, messages: [
      ...first, handed, { role: 'tool', tool_call_id: handed.tool_calls[0].id, content: 'cold, 3 C' }] });
    assert.equal(two.choices[0].finish_reason, 'stop');
    assert.match(two.choices[0].message.content, /^Tool results: .*shared version.* \| cold, 3 C$/);
    const sent = chats(upB)[0].body.messages;
    assert.deepEqual(sent.map((x) => x.role), ['user', 'assistant', 'tool', 'tool'], JSON.stringify(sent));
    assert.deepEqual(sent[1].tool_calls.map((c) => c.function.name).sort(), ['fs__read_text_file', 'get_weather']);
    assert.match(sent[2].content, /shared version/);

    // The transcript is in redis under the gateway's prefix, as a hash of the call ids (no id text).
    const keys = await redis.cli('KEYS', 'tgh:hybrid:*');
    assert.equal(keys.length, 1, JSON.stringify(keys));
    assert.match(keys[0], /^tgh:hybrid:[0-9a-f]{64}$/);
    const ttl = Number((await redis.cli('PTTL', keys[0]))[0]);
    assert.ok(ttl > 0 && ttl <= 3600 * 1000, `expires within an hour (PTTL ${ttl})`);
  });
});

// --- 5. idle expiry and the tombstone ---------------------------------------------------------------

describe('expiry', () => {
  test('an idle session answers 410 session_expired, then 404 once its tombstone lapsed', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    // tombstone 3s rather than 2s: expires_at is whole seconds, and the 410 must be seen for sure
    // between "expires_at has passed by a second" and the tombstone's end.
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
state: { persist: false }
sessions: { store: memory, ttl: 1s, tombstone: 3s, create_on_use: false }
`);
    const made = await newSession(gw, {});
    assert.equal(made.status, 200, why(made, gw));
    const id = made.json.id;
    assert.equal(made.json.limits.ttl_seconds, 1);
    const r = await chatIn(gw, id, { messages: user('quick') });
    assert.equal(r.status, 200, why(r, gw));
    const g = await getSession(gw, id);
    assert.equal(g.status, 200, why(g, gw));
    assert.equal(g.json.message_count, 2);
    // No request touches the session until it has certainly expired (a use would refresh it).
    const expiredBy = (g.json.expires_at + 1) * 1000;
    await waitFor(() => Date.now() > expiredBy, 5000, 'the idle time to pass');
    const seen = chats(up).length;
    assertError(await chatIn(gw, id, { messages: user('still there?') }), 410, 'session_expired', gw);
    assertError(await getSession(gw, id), 410, 'session_expired', gw);
    assert.equal(chats(up).length, seen);
    assert.ok(!(await listSessions(gw)).json.data.some((s) => s.id === id), 'an expired session is not listed');
    await waitFor(async () => (await getSession(gw, id)).status === 404, 8000, 'the tombstone to lapse');
    assertError(await getSession(gw, id), 404, 'session_not_found', gw);
    assertError(await chatIn(gw, id, { messages: user('hello?') }), 404, 'session_not_found', gw);
    assert.equal(chats(up).length, seen);
  });
});

// --- 6. limits ------------------------------------------------------------------------------------------

describe('history limits', () => {
  test('on_limit reject: the message past max_messages is refused with 429 session_limit', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
state: { persist: false }
sessions: { store: memory, max_messages: 4, on_limit: reject }
`);
    const client = sdk(gw);
    const id = 'reject-1';
    await create(client, { model: 'mock-1', messages: user('u1') }, id);
    await create(client, { model: 'mock-1', messages: user('u2') }, id);
    assert.equal((await getSession(gw, id)).json.message_count, 4);
    const seen = chats(up).length;
    const err = await create(client, { model: 'mock-1', messages: user('u3') }, id).catch((e) => e);
    assert.equal(err.status, 429, String(err));
    assert.equal(err.code, 'session_limit');
    assert.equal(chats(up).length, seen, 'the provider was not called');
    const g = await getSession(gw, id);
    assert.deepEqual(pairs(g.json.messages),
      [['user', 'u1'], ['assistant', 'reply from mock-1'], ['user', 'u2'], ['assistant', 'reply from mock-1']]);
  });

  test('on_limit trim: the oldest turn goes, the system prompt stays, the provider gets the trimmed history', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
state: { persist: false }
sessions: { store: memory, max_messages: 4, on_limit: trim }
`);
    const made = await newSession(gw, { system: 'S-trim' });
    assert.equal(made.status, 200, why(made, gw));
    const id = made.json.id;
    const client = sdk(gw);
    const reply = 'reply from mock-1';
    const conversation = [];  // every turn, untrimmed
    for (const q of ['u1', 'u2', 'u3']) {
      const seen = chats(up).length;
      const r = await create(client, { model: 'mock-1', messages: user(q) }, id);
      assert.equal(r.text, reply);
      conversation.push(['user', q]);
      // What the provider got: the system prompt, then whole turns from the newest back, ending
      // with the new message.
      const sent = pairs(chats(up)[seen].body.messages);
      assert.deepEqual(sent[0], ['system', 'S-trim']);
      const rest = sent.slice(1);
      assert.equal(rest[0][0], 'user', `a kept history starts with a user message: ${JSON.stringify(sent)}`);
      assert.deepEqual(rest, conversation.slice(conversation.length - rest.length), JSON.stringify(sent));
      conversation.push(['assistant', reply]);
      const g = await getSession(gw, id);
      assert.ok(g.json.messages.length <= 4, `at most 4 stored: ${g.raw}`);
      assert.equal(g.json.message_count, g.json.messages.length);
      assert.deepEqual(pairs(g.json.messages)[0], ['system', 'S-trim'], 'the system prompt is never dropped');
      assert.deepEqual(pairs(g.json.messages).slice(-2), [['user', q], ['assistant', reply]]);
    }
    // By the third turn the first one is gone, from what the provider got and what is stored.
    assert.deepEqual(pairs(chats(up).at(-1).body.messages), [['system', 'S-trim'], ['user', 'u2'], ['assistant', reply], ['user', 'u3']]);
    assert.deepEqual(pairs((await getSession(gw, id)).json.messages), [['system', 'S-trim'], ['user', 'u3'], ['assistant', reply]]);
  });
});

// --- 7. sessions belong to the key that made them ----------------------------------------------------

describe('key scoping', () => {
  test('another key\'s session id is 404 session_not_found and is not in its list', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const dir = tempDir(defer);
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
state: { sqlite: { path: "${join(dir, 'state.db')}" } }
auth: { required: true }
keys:
  - { name: app-a, key: sk-a-secret }
  - { name: app-b, key: sk-b-secret }
sessions: { store: sqlite, create_on_use: true }
`);
    const A = 'sk-a-secret', B = 'sk-b-secret';
    const id = 'owned-by-a';
    const r = await create(sdk(gw, A), { model: 'mock-1', messages: user('mine') }, id);
    assert.equal(r.session, id);
    const mine = await newSession(gw, { metadata: { who: 'a' } }, A);
    assert.equal(mine.status, 200, why(mine, gw));

    const seen = chats(up).length;
    // create_on_use does not give B a session under A's id.
    const err = await create(sdk(gw, B), { model: 'mock-1', messages: user('theirs?') }, id).catch((e) => e);
    assert.equal(err.status, 404, String(err));
    assert.equal(err.code, 'session_not_found');
    assert.equal(chats(up).length, seen, 'the provider was not called');
    assertError(await getSession(gw, id, B), 404, 'session_not_found', gw);
    assertError(await getSession(gw, mine.json.id, B), 404, 'session_not_found', gw);
    assertError(await call(gw, 'DELETE', `/v1/sessions/${id}`, { key: B }), 404, 'session_not_found', gw);

    const listB = await listSessions(gw, '', B);
    assert.equal(listB.status, 200, why(listB, gw));
    assert.ok(!listB.json.data.some((s) => s.id === id || s.id === mine.json.id), listB.raw);
    const listA = await listSessions(gw, '', A);
    assert.deepEqual(listA.json.data.map((s) => s.id).sort(), [id, mine.json.id].sort());

    const g = await getSession(gw, id, A);
    assert.equal(g.status, 200, why(g, gw));
    assert.deepEqual(pairs(g.json.messages), [['user', 'mine'], ['assistant', 'reply from mock-1']], 'B changed nothing');
    assert.equal((await listSessions(gw, '', null)).status, 401, 'no key, no sessions');
  });
});

// --- 8. one request at a time per session -------------------------------------------------------------

describe('concurrency', () => {
  test('a second request while the first runs is refused with 409 session_busy, not interleaved', async (t) => {
    const defer = cleanup(t);
    const up = await startHeldUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
  - { name: held, type: openai, base_url: "${up.url}", api_key: sk-fake, timeout: 20s, models: [mock-1] }
state: { persist: false }
sessions: { store: memory }
`);
    const made = await newSession(gw, { id: 'busy-1' });
    assert.equal(made.status, 200, why(made, gw));
    const first = chatIn(gw, 'busy-1', { messages: user('hold on') });
    await waitFor(() => up.state.requests.length === 1, 5000, 'the first request at the provider');
    const start = Date.now();
    assertError(await chatIn(gw, 'busy-1', { messages: user('me too') }), 409, 'session_busy', gw);
    assert.ok(Date.now() - start < 2000, 'refused at once, not queued');
    assert.equal(up.state.requests.length, 1, 'the second never reached the provider');
    // Another session is not held up by this one.
    const other = await chatIn(gw, 'busy-2', { messages: user('independent') });
    assert.equal(other.status, 200, why(other, gw));
    up.release();
    const r1 = await first;
    assert.equal(r1.status, 200, why(r1, gw));
    const g = await getSession(gw, 'busy-1');
    assert.deepEqual(pairs(g.json.messages), [['user', 'hold on'], ['assistant', 'answer 1']], 'exactly one new exchange');
    // Free again once the first finished.
    const next = await chatIn(gw, 'busy-1', { messages: user('next') });
    assert.equal(next.status, 200, why(next, gw));
    assert.equal((await getSession(gw, 'busy-1')).json.message_count, 4);
  });
});

// --- 9. a SQLite store outlives the gateway ------------------------------------------------------------

describe('restart', () => {
  test('sessions in the SQLite file survive a restart on the same state.sqlite.path', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const dir = tempDir(defer);
    const yaml = `
providers_from_env: false
providers:
${providerLine(up)}
state: { sqlite: { path: "${join(dir, 'state.db')}" } }
sessions: { store: sqlite }
`;
    const id = 'survivor';
    const one = await gateway(defer, yaml);
    const made = await newSession(one, { id, system: 'remember me', metadata: { k: 'v' } });
    assert.equal(made.status, 200, why(made, one));
    await create(sdk(one), { model: 'mock-1', messages: user('before restart') }, id);
    const stopped = await one.stop();
    assert.equal(stopped.code, 0, one.logs.slice(-3000));
    assertClean(one);

    const two = await gateway(defer, yaml);
    const g = await getSession(two, id);
    assert.equal(g.status, 200, why(g, two));
    assert.deepEqual(g.json.metadata, { k: 'v' });
    assert.equal(g.json.created_at, made.json.created_at);
    const history = [['system', 'remember me'], ['user', 'before restart'], ['assistant', 'reply from mock-1']];
    assert.deepEqual(pairs(g.json.messages), history);
    const seen = chats(up).length;
    const r = await create(sdk(two), { model: 'mock-1', messages: user('after restart') }, id);
    assert.equal(r.text, 'reply from mock-1');
    assert.deepEqual(pairs(chats(up)[seen].body.messages), [...history, ['user', 'after restart']]);
    assert.equal((await getSession(two, id)).json.message_count, 5);
  });
});

// --- 10. a failed or cancelled request stores nothing -------------------------------------------------

describe('failures', () => {
  test('an upstream error and a cancelled request store nothing, and leave the session usable', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
state: { persist: false }
sessions: { store: memory }
`);
    const id = 'fails-1';
    const client = sdk(gw);
    await create(client, { model: 'mock-1', messages: user('fine') }, id);
    const count = async () => (await getSession(gw, id)).json.message_count;
    assert.equal(await count(), 2);

    // The provider answers 500.
    const err = await create(client, { model: 'mock-500', messages: user('boom') }, id).catch((e) => e);
    assert.ok(err.status >= 500, String(err));
    assert.equal(await count(), 2, 'a failed request stores nothing');

    // The client leaves while the provider has not answered.
    const gone = new AbortController();
    const closed = up.state.closedEarly;
    const pending = chatIn(gw, id, { model: 'mock-hang', messages: user('never mind') }, { signal: gone.signal }).catch(() => null);
    await waitFor(() => chats(up).some((r) => r.body?.model === 'mock-hang'), 5000, 'the hanging call at the provider');
    gone.abort();
    await pending;
    await waitFor(() => up.state.closedEarly > closed, 5000, 'the provider call to be cancelled');
    // The lease comes back once the gateway has wound the request up (a 409 meanwhile stores nothing).
    let next;
    await waitFor(async () => (next = await chatIn(gw, id, { messages: user('again') })).status !== 409, 5000, 'the session free again');
    assert.equal(next.status, 200, why(next, gw));
    const g = await getSession(gw, id);
    assert.deepEqual(pairs(g.json.messages),
      [['user', 'fine'], ['assistant', 'reply from mock-1'], ['user', 'again'], ['assistant', 'reply from mock-1']],
      'neither the failed nor the cancelled request left anything');
  });
});

// --- 11. without a sessions section ---------------------------------------------------------------------

describe('sessions off', () => {
  test('x-session-id and the /v1/sessions routes answer 400 sessions_disabled', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
${providerLine(up)}
state: { persist: false }
`);
    const err = await create(sdk(gw), { model: 'mock-1', messages: user('hi') }, 'some-id').catch((e) => e);
    assert.equal(err.status, 400, String(err));
    assert.equal(err.code, 'sessions_disabled');
    assert.equal(chats(up).length, 0, 'not passed through as a plain request');
    assertError(await call(gw, 'POST', '/v1/sessions', { body: {} }), 400, 'sessions_disabled', gw);
    assertError(await listSessions(gw), 400, 'sessions_disabled', gw);
    assertError(await getSession(gw, 'some-id'), 400, 'sessions_disabled', gw);
    assertError(await call(gw, 'DELETE', '/v1/sessions/some-id'), 400, 'sessions_disabled', gw);
    const plain = await sdk(gw).chat.completions.create({ model: 'mock-1', messages: user('hi') });
    assert.equal(plain.choices[0].message.content, 'reply from mock-1');
  });
});

// --- 12. the example a user runs ------------------------------------------------------------------------

describe('examples/sessions.yaml and examples/session_walkthrough.sh', () => {
  test('run offline as written: the model sees the conversation, a client tool resumes, delete ends it', async (t) => {
    const defer = cleanup(t);
    const dir = tempDir(defer);
    const yaml = readFileSync(join(here, '..', '..', 'examples', 'sessions.yaml'), 'utf8');
    const gw = await startGateway(yaml, { env: { TOOLGATE_DB: join(dir, 'sessions.db') } });
    defer(async () => { await gw.stop(); assertClean(gw); });
    const script = join(here, '..', '..', 'examples', 'session_walkthrough.sh');
    const { stdout } = await promisify(execFile)('bash', [script, gw.url], { timeout: 30000 });
    assert.match(stdout, /Turn 2 of our conversation; you began with \\"I want to visit Lisbon\\"/, stdout);
    assert.match(stdout, /"content":"The tool returned: sunny, 24 C"/, 'the tool result continued the stored call');
    assert.match(stdout, /"message_count":7,"messages":\[\{"role":"system","content":"You are a helpful travel agent."\},\{"role":"user","content":"and a hotel/,
      'trimmed to max_messages with the system prompt kept');
    assert.match(stdout, /"object":"session.deleted"/);
    assert.match(stdout, /"code":"session_expired"[\s\S]*HTTP 410/);
  });
});
