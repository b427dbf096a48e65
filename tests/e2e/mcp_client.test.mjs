// The MCP client core against real MCP servers nobody here wrote (server-everything over stdio,
// Streamable HTTP and legacy SSE; server-filesystem; server-memory) and a fixture server of ours.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, sleep, cleanEnv, waitFor } from './lib/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = (p) => join(here, 'node_modules', '@modelcontextprotocol', p, 'dist', 'index.js');
const fixture = join(here, 'fixtures', 'fixture_server.mjs');

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise((r) => s.close(r));
  return p;
}

// server-everything in an HTTP mode on a free port (it listens on all interfaces; the port is ours).
async function startEverythingHttp(mode) {
  const port = await freePort();
  const proc = spawn('node', [pkg('server-everything'), mode], { env: cleanEnv({ PORT: String(port) }), stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => { const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); }); c.on('error', () => r(false)); });
    if (ok) break;
    await sleep(100);
  }
  return { port, stop: () => proc.kill('SIGKILL') };
}

const call = async (gw, name, args = {}) => {
  const res = await fetch(gw.url + '/v1/mcp/tools/call', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, arguments: args }) });
  return { status: res.status, body: await res.json() };
};
const servers = async (gw) => Object.fromEntries((await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.map((s) => [s.name, s]));
const tools = async (gw) => (await (await fetch(gw.url + '/v1/mcp/tools')).json());

describe('MCP aggregator with real servers', () => {
  let gw, evHttp, evSse, dir;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'toolgate-mcp-'));
    writeFileSync(join(dir, 'hello.txt'), 'hello from the filesystem server\n');
    evHttp = await startEverythingHttp('streamableHttp');
    evSse = await startEverythingHttp('sse');
    gw = await startGateway(`
providers_from_env: false
mcp_servers:
  - { name: everything, command: node, args: ["${pkg('server-everything')}", stdio] }
  - { name: evhttp, url: "http://127.0.0.1:${evHttp.port}/mcp", transport: streamable-http }
  - { name: evsse, url: "http://127.0.0.1:${evSse.port}/sse" }
  - { name: fs, command: node, args: ["${pkg('server-filesystem')}", "${dir}"] }
  - { name: memory, command: node, args: ["${pkg('server-memory')}"], env: { MEMORY_FILE_PATH: "${join(dir, 'memory.jsonl')}" } }
  - name: fixture
    command: node
    args: ["${fixture}"]
    timeout: 1s
    max_result_bytes: 65536
    circuit_breaker: { failures: 100, open_for: 1s }
  - { name: fixture2, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" }, allowed_tools: [shared, pid], denied_tools: [pid] }
  - name: flaky
    command: node
    args: ["${fixture}"]
    env: { FIXTURE_BULK_TOOLS: "0" }
    timeout: 500ms
    circuit_breaker: { failures: 2, open_for: 1500ms }
  - { name: narrow, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" }, max_concurrency: 1, max_queue: 1 }
`, { env: { OPENAI_API_KEY: 'sk-gateway-secret-must-not-leak', TMPDIR: '/tmp' } });
    await waitFor(async () => Object.values(await servers(gw)).every((s) => s.status === 'up'), 20000, 'all servers up');
  });
  after(async () => {
    await gw?.stop();
    evHttp?.stop();
    evSse?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('every server is up, with its protocol version and tools', async () => {
    const s = await servers(gw);
    // (13: without client_features toolgate declares no sampling or elicitation, so everything
    // leaves out the tools that need them.)
    for (const name of ['everything', 'evhttp', 'evsse']) {
      assert.equal(s[name].tools, 13, name);
      assert.equal(s[name].protocol_version, '2025-11-25');
    }
    assert.equal(s.fixture.tools, 261, 'tools/list pagination followed to the end (3 pages)');
    assert.equal(s.fixture2.tools, 1, 'allowed_tools and denied_tools applied');
  });

  test('exposed names are valid for models, unique, and map back to the original', async () => {
    const t = await tools(gw);
    const names = t.data.map((x) => x.name);
    assert.equal(new Set(names).size, names.length);
    for (const n of names) assert.match(n, /^[a-zA-Z0-9_-]{1,64}$/);
    const long = t.data.find((x) => x.original_name === 'x'.repeat(80));
    assert.ok(long.name.length <= 64 && long.name.startsWith('fixture__xxx'));
    const weird = t.data.find((x) => x.original_name === 'weird.name/with:chars');
    assert.match(weird.name, /^fixture__weird_name_with_chars_[0-9a-f]{8}$/);
    assert.deepEqual(t.data.filter((x) => x.server === 'fixture2').map((x) => x.name), ['fixture2__shared']);
    assert.ok(names.includes('everything__echo') && names.includes('evsse__get-sum') && names.includes('fs__read_text_file'));
    assert.equal(typeof t.data.find((x) => x.name === 'everything__echo').inputSchema, 'object');
    // Calls by the mapped names reach the original tools.
    assert.equal((await call(gw, long.name)).body.result.content[0].text, `called ${'x'.repeat(80)}`);
    assert.equal((await call(gw, weird.name)).body.result.content[0].text, 'called weird.name/with:chars');
  });

  test('tools are called over stdio, Streamable HTTP and legacy SSE', async () => {
    for (const server of ['everything', 'evhttp', 'evsse']) {
      const r = await call(gw, `${server}__echo`, { message: `via ${server}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.result.content[0].text, `Echo: via ${server}`);
      const sum = await call(gw, `${server}__get-sum`, { a: 20, b: 22 });
      assert.match(sum.body.result.content[0].text, /42/);
    }
  });

  test('the filesystem and memory servers work through the aggregator', async () => {
    const file = await call(gw, 'fs__read_text_file', { path: join(dir, 'hello.txt') });
    assert.equal(file.body.result.content[0].text, 'hello from the filesystem server\n');
    const denied = await call(gw, 'fs__read_text_file', { path: '/etc/passwd' });
    assert.equal(denied.status, 200);
    assert.equal(denied.body.result.isError, true, 'the server\'s own refusal comes back as an isError result');
    const created = await call(gw, 'memory__create_entities', { entities: [{ name: 'toolgate', entityType: 'project', observations: ['speaks MCP'] }] });
    assert.equal(created.status, 200);
    const graph = await call(gw, 'memory__read_graph');
    assert.match(graph.body.result.content[0].text, /speaks MCP/);
  });

  test('stdio servers get a clean environment, and their stderr goes to the gateway log', async () => {
    const r = await call(gw, 'everything__get-env');
    const env = JSON.parse(r.body.result.content[0].text);
    assert.ok(!('OPENAI_API_KEY' in env), 'the gateway\'s secrets are not passed on');
    assert.ok('PATH' in env);
    const keys = Object.keys(env).filter((k) => !['PATH', 'HOME', 'LANG', 'TMPDIR'].includes(k));
    assert.deepEqual(keys, [], `unexpected variables: ${keys}`);
    const mem = await call(gw, 'memory__read_graph');
    assert.equal(mem.status, 200);
    assert.match(gw.logs, /\[mcp:everything\] stderr: .*STDIO/);
    assert.ok(!gw.logs.includes('sk-gateway-secret-must-not-leak'));
  });

  test('calls past max_concurrency queue, and past the queue bound are refused', async () => {
    const calls = [0, 1, 2].map(() => call(gw, 'narrow__slow', { ms: 400 }));
    const results = await Promise.all(calls);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 503], JSON.stringify(results.map((r) => r.body)));
    assert.equal(results.find((r) => r.status === 503).body.error.code, 'busy');
  });

  test('progress and cancellation reach the right caller', async () => {
    const streamed = async (name, args) => {
      const res = await fetch(gw.url + '/v1/mcp/tools/call', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, arguments: args, stream: true }) });
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(text, /^: call started\n\n/, 'the head and a comment come first');
      const events = text.split('\n\n').filter((block) => /^data: /m.test(block)).map((block) => {
        const type = /^event: (.*)$/m.exec(block)?.[1];
        const data = JSON.parse(/^data: (.*)$/m.exec(block)[1]);
        return { type, data };
      });
      return { progress: events.filter((e) => e.type === 'progress').map((e) => e.data), result: events.find((e) => e.type === 'result')?.data };
    };
    // Two callers at once, over two transports, with different step counts: each sees only its own.
    const [a, b] = await Promise.all([
      streamed('everything__trigger-long-running-operation', { duration: 1, steps: 3 }),
      streamed('evhttp__trigger-long-running-operation', { duration: 1, steps: 5 }),
    ]);
    assert.deepEqual(a.progress.map((p) => p.progress), [1, 2, 3]);
    assert.ok(a.progress.every((p) => p.total === 3));
    assert.deepEqual(b.progress.map((p) => p.progress), [1, 2, 3, 4, 5]);
    assert.ok(b.progress.every((p) => p.total === 5));
    assert.equal(a.result.ok, true);
    assert.match(b.result.result.content[0].text, /Steps: 5/);

    // A caller that goes away cancels its call at the server.
    const before = Number((await call(gw, 'narrow__cancellations')).body.result.content[0].text);
    const ctrl = new AbortController();
    const res = await fetch(gw.url + '/v1/mcp/tools/call', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'narrow__hang', arguments: {}, stream: true }), signal: ctrl.signal });
    assert.equal(res.status, 200);
    await sleep(200);
    ctrl.abort();
    await waitFor(async () => Number((await call(gw, 'narrow__cancellations')).body.result.content[0].text) > before, 5000,
      'notifications/cancelled after the caller left');
  });

  test('unknown tools and bad arguments are clear errors', async () => {
    const r = await call(gw, 'nope__nothing');
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'unknown_tool');
    const bad = await call(gw, 'everything__get-sum', { a: 'not a number' });
    assert.ok(bad.status === 400 || bad.body.result?.isError === true, JSON.stringify(bad.body));
  });

  test('a hanging tool times out, and the server is told to cancel', async () => {
    const start = Date.now();
    const r = await call(gw, 'fixture__hang');
    const took = Date.now() - start;
    assert.equal(r.status, 504);
    assert.equal(r.body.error.code, 'timeout');
    assert.ok(took >= 900 && took < 4000, `took ${took} ms`);
    await waitFor(async () => Number((await call(gw, 'fixture__cancellations')).body.result.content[0].text) >= 1, 3000,
      'notifications/cancelled to reach the server');
  });

  test('a 10 MB result is cut to the configured cap with a notice', async () => {
    const r = await call(gw, 'fixture__big');
    assert.equal(r.status, 200);
    assert.equal(r.body.truncated, true);
    const size = JSON.stringify(r.body.result).length;
    assert.ok(size <= 65536, `result is ${size} bytes`);
    assert.match(r.body.result.content.at(-1).text, /truncated/);
  });

  test('list_changed refreshes the catalog', async () => {
    const r = await call(gw, 'fixture__add_tool');
    assert.equal(r.body.result.content[0].text, 'added_0');
    await waitFor(async () => (await tools(gw)).data.some((t) => t.name === 'fixture__added_0'), 5000, 'the new tool');
    assert.equal((await call(gw, 'fixture__added_0')).body.result.content[0].text, 'called added_0');
  });

  test('a crashing server fails the call cleanly, is restarted, and works again', async () => {
    const pidBefore = (await call(gw, 'fixture__pid')).body.result.content[0].text;
    const restarts = (await servers(gw)).fixture.restarts;
    const r = await call(gw, 'fixture__crash');
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, 'unavailable');
    await waitFor(async () => { const f = (await servers(gw)).fixture; return f.restarts > restarts && f.status === 'up'; }, 10000, 'restart');
    const pidAfter = (await call(gw, 'fixture__pid')).body.result.content[0].text;
    assert.notEqual(pidAfter, pidBefore);
  });

  test('kill -9 of a stdio server mid-call: the call fails, the server comes back, the next call works', async () => {
    const pid = Number((await call(gw, 'fixture__pid')).body.result.content[0].text);
    const restarts = (await servers(gw)).fixture.restarts;
    const pending = call(gw, 'fixture__slow', { ms: 5000 });
    await sleep(200);
    process.kill(pid, 'SIGKILL');
    const r = await pending;
    assert.equal(r.status, 503, JSON.stringify(r.body));
    await waitFor(async () => { const f = (await servers(gw)).fixture; return f.restarts > restarts && f.status === 'up'; }, 10000,
      'restart after kill -9');
    assert.equal((await call(gw, 'fixture__slow', { ms: 10 })).body.result.content[0].text, 'slow done');
    // While it was down its tools had left the catalog; they are back.
    assert.ok((await tools(gw)).data.some((t) => t.name === 'fixture__bulk_249'));
  });

  test('the circuit breaker opens after repeated failures and closes again', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await call(gw, 'flaky__hang')).status, 504);
    const open = await call(gw, 'flaky__pid');
    assert.equal(open.status, 503);
    assert.equal(open.body.error.code, 'circuit_open');
    assert.equal((await servers(gw)).flaky.circuit_breaker, 'open');
    await sleep(1600);
    const trial = await call(gw, 'flaky__pid');
    assert.equal(trial.status, 200, 'the trial call after open_for succeeds');
    assert.equal((await servers(gw)).flaky.circuit_breaker, 'closed');
  });

  test('per-server state in /health and /metrics', async () => {
    const health = await (await fetch(gw.url + '/health')).json();
    assert.equal(health.mcp_servers.length, 9);
    const text = await (await fetch(gw.url + '/metrics')).text();
    assert.match(text, /toolgate_mcp_server_up\{server="everything"\} 1/);
    assert.match(text, /toolgate_mcp_tool_calls_total\{server="evhttp",tool="echo"\} \d+/);
    assert.match(text, /toolgate_mcp_tool_errors_total\{server="fixture",tool="hang"\} [1-9]/);
    assert.match(text, /toolgate_mcp_tool_call_duration_seconds_bucket\{server="fs",tool="read_text_file",le="\+Inf"\} \d+/);
  });
});

// A Streamable HTTP MCP server in this process that can be told to stop answering tools/call.
function startStallableHttpServer() {
  const state = { stall: false, forget: false, initializes: 0, deletes: 0, session: 'sess-1', gets: 0, lastEventIds: [], pings: 0 };
  const server = http.createServer((req, res) => {
    if (req.method === 'DELETE') { state.deletes++; res.statusCode = 200; return res.end(); }
    if (req.method === 'GET') {
      // The server-to-client stream: one event, then the connection drops; the client must come
      // back with Last-Event-ID.
      state.gets++;
      if (req.headers['last-event-id']) state.lastEventIds.push(req.headers['last-event-id']);
      res.setHeader('content-type', 'text/event-stream');
      const id = `ev-${state.gets}`;
      res.write(`id: ${id}\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"${id}"}}\n\n`);
      return setTimeout(() => res.destroy(), 50);
    }
    if (req.method !== 'POST') { res.statusCode = 405; return res.end(); }
    if (state.forget && req.headers['mcp-session-id']) { res.statusCode = 404; return res.end(); }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const msg = JSON.parse(body);
      if (msg.id === undefined) { res.statusCode = 202; return res.end(); }
      const reply = (result) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result })); };
      if (msg.method === 'initialize') {
        state.initializes++;
        state.forget = false;
        state.session = `sess-${state.initializes}`;
        res.setHeader('mcp-session-id', state.session);
        return reply({ protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'stallable', version: '1' } });
      }
      if (msg.method === 'tools/list') return reply({ tools: [{ name: 'ping', inputSchema: { type: 'object' } }] });
      if (msg.method === 'ping') { state.pings++; if (state.stall) return; return reply({}); }
      if (msg.method === 'tools/call') {
        if (state.stall) return; // never answers
        return reply({ content: [{ type: 'text', text: 'pong' }] });
      }
      reply({});
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ state, port: server.address().port, close: () => { server.closeAllConnections(); server.close(); } })));
}

describe('an HTTP MCP server that stops answering', () => {
  let gw, stall;
  before(async () => {
    stall = await startStallableHttpServer();
    gw = await startGateway(`
providers_from_env: false
mcp_servers:
  - name: remote
    url: http://127.0.0.1:${stall.port}/mcp
    timeout: 500ms
    ping_interval: 400ms
    circuit_breaker: { failures: 2, open_for: 1s }
  - { name: missing, command: /nonexistent/mcp-server, required: true }
`);
    await waitFor(async () => (await servers(gw)).remote.status === 'up', 10000, 'remote up');
  });
  after(async () => {
    await gw?.stop();
    assert.ok(stall.state.deletes >= 1, 'the session is ended with DELETE on shutdown');
    stall?.close();
  });

  test('deadline hit, breaker opens, and closes again once the server answers', async () => {
    assert.equal((await call(gw, 'remote__ping')).body.result.content[0].text, 'pong');
    assert.equal((await servers(gw)).remote.protocol_version, '2025-06-18', 'negotiated down');
    stall.state.stall = true;
    for (let i = 0; i < 2; i++) {
      const start = Date.now();
      const r = await call(gw, 'remote__ping');
      assert.equal(r.status, 504);
      assert.ok(Date.now() - start < 2500);
    }
    assert.equal((await call(gw, 'remote__ping')).body.error.code, 'circuit_open');
    stall.state.stall = false;
    await sleep(1100);
    assert.equal((await call(gw, 'remote__ping')).status, 200);
  });

  test('the gateway pings the server, and reconnects when pings go unanswered', async () => {
    await waitFor(async () => stall.state.pings >= 2, 5000, 'pings');
    const inits = stall.state.initializes;
    stall.state.stall = true;
    await waitFor(async () => stall.state.initializes > inits, 10000, 'a reconnect after unanswered pings');
    stall.state.stall = false;
    await waitFor(async () => (await servers(gw)).remote.status === 'up', 10000, 'up again');
    assert.equal((await call(gw, 'remote__ping')).status, 200);
  });

  test('the GET stream is resumed with Last-Event-ID after it drops', async () => {
    await waitFor(async () => stall.state.lastEventIds.length >= 1, 8000, 'a reconnect with Last-Event-ID');
    assert.match(stall.state.lastEventIds[0], /^ev-\d+$/);
    assert.match(gw.logs, /\[mcp:remote\] server log: "ev-1"/);
  });

  test('a session the server forgot (404) is initialised again', async () => {
    const before = stall.state.initializes;
    stall.state.forget = true;
    const failed = await call(gw, 'remote__ping');
    assert.notEqual(failed.status, 200);
    await waitFor(async () => stall.state.initializes > before && (await servers(gw)).remote.status === 'up', 10000, 're-initialise');
    assert.equal((await call(gw, 'remote__ping')).status, 200);
  });

  test('a required server that cannot start makes /health unhealthy without blocking the gateway', async () => {
    const res = await fetch(gw.url + '/health');
    assert.equal(res.status, 503);
    const h = await res.json();
    assert.equal(h.status, 'unhealthy');
    const missing = h.mcp_servers.find((s) => s.name === 'missing');
    assert.equal(missing.status, 'down');
    assert.match(missing.last_error, /could not start/);
    assert.equal((await fetch(gw.url + '/v1/models')).status, 200);
  });
});

// A Streamable HTTP server whose tools/call streams end before the answer (SEP-1699): "resumable"
// closes its stream and every resumed one again after a progress event with a new id, seven
// times (more than the five tries in a row toolgate allows without progress), then answers on the
// eighth; "idless" closes its stream without any event id, so it cannot be resumed.
function startClosingServer() {
  const state = { resumes: [], pending: null, closes: 0 };
  const sse = (res) => res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 's1' });
  const server = http.createServer((req, res) => {
    if (req.method === 'DELETE') { res.statusCode = 200; return res.end(); }
    if (req.method === 'GET') {
      const last = req.headers['last-event-id'];
      if (!last || !state.pending) { res.statusCode = 405; return res.end(); }
      state.resumes.push({ last, at: Date.now() });
      sse(res);
      if (state.closes < 7) {
        state.closes++;
        res.write(`id: long-${state.closes}\nretry: 100\nevent: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `step ${state.closes}` } })}\n\n`);
        return setTimeout(() => res.end(), 20);
      }
      res.write(`id: long-done\nevent: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: state.pending, result: { content: [{ type: 'text', text: 'finally' }] } })}\n\n`);
      state.pending = null;
      return; // left open, as a server may: toolgate stops reading once its answer came
    }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const msg = JSON.parse(body);
      if (msg.id === undefined) { res.statusCode = 202; return res.end(); }
      const reply = (result) => { res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 's1' }); res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result })); };
      if (msg.method === 'initialize') return reply({ protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'closing', version: '1' } });
      if (msg.method === 'tools/list') return reply({ tools: [{ name: 'resumable', inputSchema: { type: 'object' } }, { name: 'idless', inputSchema: { type: 'object' } }] });
      if (msg.method === 'tools/call') {
        sse(res);
        if (msg.params.name === 'idless') { res.write('data: \n\n'); return setTimeout(() => res.end(), 20); }
        state.pending = msg.id;
        state.closes = 0;
        state.resumes = [];
        res.write('id: long-0\nretry: 100\ndata: \n\n');
        return setTimeout(() => res.end(), 20);
      }
      reply({});
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ state, port: server.address().port, close: () => { server.closeAllConnections(); server.close(); } })));
}

describe('an HTTP MCP server that ends call streams before the answer', () => {
  let gw, srv;
  before(async () => {
    srv = await startClosingServer();
    // The URL without a path, and with a query: both are legal.
    gw = await startGateway(`
providers_from_env: false
mcp_servers:
  - { name: closing, url: "http://127.0.0.1:${srv.port}?tenant=a", timeout: 20s }
`);
    await waitFor(async () => (await servers(gw)).closing.status === 'up', 10000, 'closing up');
  });
  after(async () => {
    await gw?.stop();
    srv?.close();
  });

  test('a stream closed again and again is resumed while it makes progress, after its retry time, with Last-Event-ID', async () => {
    const r = await call(gw, 'closing__resumable');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.result.content[0].text, 'finally');
    const ids = srv.state.resumes.map((x) => x.last);
    assert.deepEqual(ids, ['long-0', 'long-1', 'long-2', 'long-3', 'long-4', 'long-5', 'long-6', 'long-7']);
    const gaps = srv.state.resumes.slice(1).map((x, i) => x.at - srv.state.resumes[i].at);
    assert.ok(gaps.every((g) => g >= 100), `each resume waits the retry time: ${gaps}`);
  });

  test('a stream without event ids cannot be resumed: the call fails at once, not at its timeout', async () => {
    const start = Date.now();
    const r = await call(gw, 'closing__idless');
    assert.notEqual(r.status, 200);
    assert.match(JSON.stringify(r.body), /ended the stream before answering/);
    assert.ok(Date.now() - start < 3000, `${Date.now() - start} ms`);
    assert.equal((await servers(gw)).closing.status, 'up');
  });
});
