// The gateway as one MCP server: the official SDK client against toolgate's /mcp (Streamable HTTP)
// and `toolgate mcp-stdio`, in front of server-everything and our fixture server.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startGateway, waitFor, writeConfig, toolgateBin, cleanEnv } from './lib/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const filesystem = join(here, 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');
const fixture = join(here, 'fixtures', 'fixture_server.mjs');
// Directories for server-filesystem: its own argument (the shared session) and the clients' roots.
const top = mkdtempSync(join(tmpdir(), 'toolgate-roots-'));
const dirs = Object.fromEntries(['shared', 'alpha', 'beta', 'gamma'].map((d) => [d, join(top, d)]));
for (const d of Object.values(dirs)) mkdirSync(d);
process.on('exit', () => rmSync(top, { recursive: true, force: true }));
// everything and fixture take any client feature a client declares (the default); caps only roots;
// fs is started with a directory of its own, which a client's roots replace in its own session.
const serversYaml = `
mcp_servers:
  - { name: everything, command: node, args: ["${everything}", stdio] }
  - { name: fixture, command: node, args: ["${fixture}"], timeout: 20s }
  - { name: caps, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" }, client_features: [roots] }
  - { name: fs, command: node, args: ["${filesystem}", "${dirs.shared}"] }
`;
const text = async (client, name, args = {}) => (await client.callTool({ name, arguments: args })).content[0].text;
const allowedDirs = async (client) => (await text(client, 'fs__list_allowed_directories')).split('\n').slice(1);
const upAll = (gw) => waitFor(async () => (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.every((s) => s.status === 'up'),
  20000, 'MCP servers up');

async function connect(url, headers = {}) {
  const client = new Client({ name: 'e2e', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return client;
}

async function allTools(client) {
  const names = [];
  let cursor, pages = 0;
  do {
    const r = await client.listTools(cursor ? { cursor } : {});
    names.push(...r.tools.map((t) => t.name));
    cursor = r.nextCursor;
    pages++;
  } while (cursor);
  return { names, pages };
}

const post = (gw, body, headers = {}) => fetch(gw.url + '/mcp', {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
  body: JSON.stringify(body),
});
const init = (id = 1) => ({ jsonrpc: '2.0', id, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });

describe('/mcp with the official SDK client', () => {
  let gw, client;
  before(async () => {
    gw = await startGateway(`providers_from_env: false\n${serversYaml}`);
    await upAll(gw);
    client = await connect(gw.url + '/mcp');
  });
  after(async () => {
    await client?.close();
    // Clients' own upstream sessions and all: the gateway stops cleanly (sanitizers report here).
    const exit = await gw?.stop();
    assert.equal(exit?.code, 0, gw?.logs.slice(-5000));
    assert.doesNotMatch(gw.logs, /Sanitizer|runtime error/);
  });

  test('initialize negotiates, and tools/list pages through the whole catalog', async () => {
    assert.equal(client.getServerVersion().name, 'toolgate');
    const { names, pages } = await allTools(client);
    assert.ok(pages >= 3, `pages: ${pages}`);
    assert.ok(names.includes('everything__echo') && names.includes('fixture__pid') && names.includes('fixture__bulk_249'));
    assert.equal(new Set(names).size, names.length, 'no tool twice across pages');
  });

  test('tools of two different upstream servers', async () => {
    const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'via the gateway' } });
    assert.equal(echo.content[0].text, 'Echo: via the gateway');
    const pid = await client.callTool({ name: 'fixture__pid', arguments: {} });
    assert.match(pid.content[0].text, /^\d+$/);
    await assert.rejects(client.callTool({ name: 'nope__nothing', arguments: {} }), /Unknown tool/);
  });

  test('progress notifications reach the caller with its own token', async () => {
    const seen = [];
    const r = await client.callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
      undefined, { onprogress: (p) => seen.push(p) });
    assert.match(r.content[0].text, /completed/i);
    assert.ok(seen.length >= 2, JSON.stringify(seen));
    assert.equal(seen[seen.length - 1].total, 3);
  });

  test('cancelling a slow call sends notifications/cancelled to the upstream server', async () => {
    const count = async () => Number((await client.callTool({ name: 'fixture__cancellations', arguments: {} })).content[0].text);
    const before = await count();
    const ac = new AbortController();
    const call = client.callTool({ name: 'fixture__hang', arguments: {} }, undefined, { signal: ac.signal });
    setTimeout(() => ac.abort(), 300);
    await assert.rejects(call);
    await waitFor(async () => (await count()) === before + 1, 5000, 'the cancellation upstream');
  });

  test('resources and prompts of the upstream servers', async () => {
    const res = await client.listResources();
    assert.ok(res.resources.length > 0);
    const first = res.resources[0];
    const read = await client.readResource({ uri: first.uri });
    assert.equal(read.contents[0].uri, first.uri);
    const prompts = await client.listPrompts();
    const simple = prompts.prompts.find((p) => p.name === 'everything__simple-prompt');
    assert.ok(simple, prompts.prompts.map((p) => p.name).join(','));
    const got = await client.getPrompt({ name: 'everything__simple-prompt' });
    assert.ok(got.messages.length > 0);
    await client.setLoggingLevel('debug');
    await client.ping();
  });

  test("server-everything's sampling request reaches the client that declared sampling, and its answer goes back", async () => {
    const { CreateMessageRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const sampler = new Client({ name: 'sampler', version: '1.0.0' }, { capabilities: { sampling: {} } });
    const asked = [];
    sampler.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      asked.push(req.params.messages[0].content.text);
      return { role: 'assistant', model: 'client-side-model', content: { type: 'text', text: 'sampled by the client' } };
    });
    const samplerTransport = new StreamableHTTPClientTransport(new URL(gw.url + '/mcp'));
    await sampler.connect(samplerTransport);
    try {
      const r = await sampler.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'hello sampler', maxTokens: 10 } });
      assert.match(JSON.stringify(r.content), /sampled by the client/);
      assert.equal(asked.length, 1);
      assert.match(asked[0], /hello sampler/);
    } finally {
      await samplerTransport.terminateSession();
      await sampler.close();
    }
    // A client that did not declare sampling talks to the shared session, which declared none:
    // server-everything neither lists the tool for it nor runs it.
    assert.ok(!(await allTools(client)).names.includes('everything__trigger-sampling-request'));
    await assert.rejects(client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'x', maxTokens: 10 } }),
      /Unknown tool/);
  });

  test('sampling and roots are declared upstream only for the client that declared them, on its own sessions', async () => {
    const { ListRootsRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const caps = async (c, server) => JSON.parse(await text(c, `${server}__client_capabilities`));
    const own = async () => Object.fromEntries((await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.map((s) => [s.name, s.client_sessions]));
    assert.deepEqual(await caps(client, 'fixture'), {});
    const zero = JSON.stringify({ everything: 0, fixture: 0, caps: 0, fs: 0 });
    await waitFor(async () => JSON.stringify(await own()) === zero, 10000, 'the earlier clients ended their sessions');
    const capable = new Client({ name: 'capable', version: '1.0.0' }, { capabilities: { sampling: {}, roots: { listChanged: true } } });
    capable.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [] }));
    const transport = new StreamableHTTPClientTransport(new URL(gw.url + '/mcp'));
    await capable.connect(transport);
    try {
      assert.deepEqual(await caps(capable, 'fixture'), { sampling: {}, roots: { listChanged: true } });
      assert.deepEqual(await caps(capable, 'caps'), { roots: { listChanged: true } }, 'only what the server may use');
      assert.deepEqual(await caps(client, 'fixture'), {}, 'the shared session declares nothing');
      const during = await own();
      assert.deepEqual(during, { everything: 1, fixture: 1, caps: 1, fs: 1 });
      assert.notEqual(await text(capable, 'fixture__pid'), await text(client, 'fixture__pid'), 'a process of its own');
      // Its catalog comes from its own sessions: server-everything lists its sampling tool for it only.
      assert.ok((await allTools(capable)).names.includes('everything__trigger-sampling-request'));
      assert.ok(!(await allTools(client)).names.includes('everything__trigger-sampling-request'));
      // A list_changed of its own fixture process reaches it, and changes its catalog only.
      const { ToolListChangedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
      let changed = 0;
      capable.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed++; });
      const added = await text(capable, 'fixture__add_tool');
      await waitFor(async () => changed > 0, 10000, "list_changed on the client's GET stream");
      await waitFor(async () => (await allTools(capable)).names.includes(`fixture__${added}`), 10000, 'the new tool');
      assert.ok(!(await allTools(client)).names.includes(`fixture__${added}`), "another client's catalog is untouched");
    } finally {
      await transport.terminateSession();
      await capable.close();
    }
    await waitFor(async () => JSON.stringify(await own()) === zero, 10000, 'its own sessions closed with it');
  });

  test("server-filesystem serves each client the roots it declared, and follows roots/list_changed", async () => {
    const { ListRootsRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const ide = async (dir) => {
      const c = new Client({ name: 'ide', version: '1.0.0' }, { capabilities: { roots: { listChanged: true } } });
      const state = { c, roots: [dir] };
      c.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: state.roots.map((d) => ({ uri: pathToFileURL(d).href })) }));
      state.t = new StreamableHTTPClientTransport(new URL(gw.url + '/mcp'));
      await c.connect(state.t);
      return state;
    };
    const a = await ide(dirs.alpha);
    const b = await ide(dirs.beta);
    try {
      // (server-filesystem asks for the roots right after initialize, outside any call: the request
      // reaches each client on its GET stream.)
      await waitFor(async () => (await allowedDirs(a.c)).join() === dirs.alpha, 10000, "a's roots");
      await waitFor(async () => (await allowedDirs(b.c)).join() === dirs.beta, 10000, "b's roots");
      assert.deepEqual(await allowedDirs(client), [dirs.shared], 'a client without roots keeps the configured directory');
      writeFileSync(join(dirs.alpha, 'note.txt'), 'only for a');
      const read = (c) => c.callTool({ name: 'fs__read_text_file', arguments: { path: join(dirs.alpha, 'note.txt') } });
      assert.equal((await read(a.c)).content[0].text, 'only for a');
      assert.equal((await read(b.c)).isError, true, "outside b's roots");
      assert.equal((await read(client)).isError, true, 'outside the shared directory');
      a.roots = [dirs.gamma];
      await a.c.sendRootsListChanged();
      await waitFor(async () => (await allowedDirs(a.c)).join() === dirs.gamma, 10000, "a's new roots");
      assert.deepEqual(await allowedDirs(b.c), [dirs.beta]);
    } finally {
      for (const x of [a, b]) {
        await x.t.terminateSession();
        await x.c.close();
      }
    }
  });

  test("server-everything's roots/list during a call is answered by the calling client", async () => {
    const { ListRootsRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const withRoots = new Client({ name: 'roots', version: '1.0.0' }, { capabilities: { roots: {} } });
    withRoots.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///srv/project', name: 'project' }] }));
    const rootsTransport = new StreamableHTTPClientTransport(new URL(gw.url + '/mcp'));
    await withRoots.connect(rootsTransport);
    try {
      const r = await withRoots.callTool({ name: 'everything__get-roots-list', arguments: {} });
      assert.match(r.content[0].text, /file:\/\/\/srv\/project/);
    } finally {
      await rootsTransport.terminateSession();
      await withRoots.close();
    }
  });

  test('an upstream list_changed reaches the client as list_changed, and the new tool is listed', async () => {
    const { ToolListChangedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed++; });
    const added = (await client.callTool({ name: 'fixture__add_tool', arguments: {} })).content[0].text;
    await waitFor(async () => changed > 0, 10000, 'notifications/tools/list_changed');
    await waitFor(async () => (await allTools(client)).names.includes(`fixture__${added}`), 10000, 'the new tool');
  });

  test('the SDK client resumes a dropped tools/call stream with Last-Event-ID', async () => {
    // A proxy between the SDK and toolgate cuts the first tools/call answer after its first progress event.
    const { createServer, request } = await import('node:http');
    const seen = { cut: 0, resumed: [] };
    const proxy = createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.method === 'GET' && req.headers['last-event-id']) seen.resumed.push(req.headers['last-event-id']);
        const cut = body.includes('trigger-long-running-operation') && seen.cut === 0;
        const up = request({ host: '127.0.0.1', port: gw.port, path: req.url, method: req.method, headers: { ...req.headers, host: '127.0.0.1' } }, (ur) => {
          res.writeHead(ur.statusCode, ur.headers);
          ur.on('data', (d) => {
            res.write(d);
            if (cut && d.includes('notifications/progress')) {
              seen.cut++;
              ur.destroy();
              res.end();
            }
          });
          ur.on('end', () => res.end());
        });
        up.on('error', () => res.destroy());
        up.end(body);
      });
    });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    const sdk = await connect(`http://127.0.0.1:${proxy.address().port}/mcp`);
    try {
      const progress = [];
      const r = await sdk.callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 4 } },
        undefined, { onprogress: (p) => progress.push(p.progress), timeout: 15000 });
      assert.match(r.content[0].text, /completed/i);
      assert.equal(seen.cut, 1);
      assert.equal(seen.resumed.length, 1, 'one GET with Last-Event-ID');
      assert.ok(progress.length >= 3, JSON.stringify(progress));
    } finally {
      await sdk.close();
      proxy.closeAllConnections();
      proxy.close();
    }
  });

  test('a dropped SSE answer resumes with Last-Event-ID', async () => {
    const r0 = await post(gw, init());
    const sid = r0.headers.get('mcp-session-id');
    await post(gw, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': sid });
    const ac = new AbortController();
    const res = await fetch(gw.url + '/mcp', {
      method: 'POST', signal: ac.signal,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sid },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call',
        params: { name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 4 }, _meta: { progressToken: 'tok' } } }),
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body.getReader();
    let text = '';
    while (!/\nid: [^\n]+\n/.test('\n' + text) || !text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
    const lastId = text.match(/id: (\S+)/)[1];
    ac.abort();  // the connection drops after the first event
    const resumed = await fetch(gw.url + '/mcp', { headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'last-event-id': lastId } });
    assert.equal(resumed.status, 200);
    const rest = await resumed.text();
    assert.ok(!rest.includes(`id: ${lastId}\n`), 'nothing replayed twice');
    assert.match(rest, /"id":7,"result"/);
    assert.match(rest, /"progressToken":"tok"/);
  });
});

describe('/mcp protocol and security checks', () => {
  let gw;
  before(async () => {
    gw = await startGateway(`providers_from_env: false
mcp_front:
  keys:
    - { name: full, key: "full-key-0123456789" }
    - { name: narrow, key: "narrow-key-0123456789", tools: ["everything__echo", "fixture__p*"] }
${serversYaml}`);
    await upAll(gw);
  });
  after(async () => { await gw?.stop(); });

  const auth = { authorization: 'Bearer full-key-0123456789' };

  test('no or a wrong bearer token: 401', async () => {
    assert.equal((await post(gw, init())).status, 401);
    const r = await post(gw, init(), { authorization: 'Bearer nope-nope-nope-nope' });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
  });

  test('Origin and Host are checked (DNS rebinding)', async () => {
    assert.equal((await post(gw, init(), { ...auth, origin: 'http://evil.example' })).status, 403);
    assert.equal((await post(gw, init(), { ...auth, origin: 'http://localhost:5173' })).status, 200);
    // A rebinding page reaches us under its own host name.
    const { request } = await import('node:http');
    const status = await new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/mcp', method: 'POST',
        headers: { host: 'evil.example:80', 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...auth } },
      (res) => { res.resume(); resolve(res.statusCode); });
      req.end(JSON.stringify(init()));
    });
    assert.equal(status, 403);
  });

  test('session rules: 400 without a session, 404 unknown or ended, 400 bad protocol version, 406 bad Accept', async () => {
    const r0 = await post(gw, init(), auth);
    const sid = r0.headers.get('mcp-session-id');
    assert.match(sid, /^[0-9a-f]{32}$/);
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' };
    assert.equal((await post(gw, list, auth)).status, 400);
    assert.equal((await post(gw, list, { ...auth, 'mcp-session-id': 'f'.repeat(32) })).status, 404);
    assert.equal((await post(gw, list, { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': '1999-01-01' })).status, 400);
    assert.equal((await post(gw, list, { ...auth, 'mcp-session-id': sid, accept: 'application/json' })).status, 406);
    assert.equal((await post(gw, list, { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' })).status, 200);
    assert.equal((await post(gw, { jsonrpc: '2.0', method: 'notifications/initialized' }, { ...auth, 'mcp-session-id': sid })).status, 202);
    const bad = await fetch(gw.url + '/mcp', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...auth, 'mcp-session-id': sid }, body: '{not json' });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, -32700);
    const del = await fetch(gw.url + '/mcp', { method: 'DELETE', headers: { ...auth, 'mcp-session-id': sid } });
    assert.equal(del.status, 200);
    assert.equal((await post(gw, list, { ...auth, 'mcp-session-id': sid })).status, 404);
    // Another key cannot use this key's session.
    const r1 = await post(gw, init(), auth);
    assert.match(await (await fetch(gw.url + '/metrics')).text(), /^toolgate_mcp_front_sessions [1-9]\d*$/m);
    const other = await post(gw, list, { authorization: 'Bearer narrow-key-0123456789', 'mcp-session-id': r1.headers.get('mcp-session-id') });
    assert.equal(other.status, 404);
  });

  test('a key without permission for a tool neither sees nor can call it', async () => {
    const narrow = await connect(gw.url + '/mcp', { authorization: 'Bearer narrow-key-0123456789' });
    const { names } = await allTools(narrow);
    assert.deepEqual(names.sort(), ['everything__echo', 'fixture__pid']);
    await assert.rejects(narrow.callTool({ name: 'fixture__hang', arguments: {} }), /Unknown tool/);
    assert.equal((await narrow.callTool({ name: 'everything__echo', arguments: { message: 'ok' } })).content[0].text, 'Echo: ok');
    await narrow.close();
    const full = await connect(gw.url + '/mcp', auth);
    assert.ok((await allTools(full)).names.length > 250);
    await full.close();
  });
});

describe('/mcp session expiry', () => {
  let gw;
  before(async () => { gw = await startGateway('providers_from_env: false\nmcp_front: { session_idle_timeout: 1s }\n'); });
  after(async () => { await gw?.stop(); });

  test('an idle session expires (404), a used one stays', async () => {
    const sid = (await post(gw, init())).headers.get('mcp-session-id');
    const ping = { jsonrpc: '2.0', id: 9, method: 'ping' };
    assert.equal((await post(gw, ping, { 'mcp-session-id': sid })).status, 200);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal((await post(gw, ping, { 'mcp-session-id': sid })).status, 200);
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal((await post(gw, ping, { 'mcp-session-id': sid })).status, 404);
  });
});

describe('/mcp clients over max_client_sessions', () => {
  let gw;
  before(async () => {
    gw = await startGateway(`providers_from_env: false
mcp_servers:
  - { name: fixture, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" }, max_client_sessions: 1 }
`);
    await upAll(gw);
  });
  after(async () => { await gw?.stop(); });

  test('a client over the limit shares the common session (and the log says why)', async () => {
    const open = async () => {
      const c = new Client({ name: 'ide', version: '1.0.0' }, { capabilities: { roots: {} } });
      const t = new StreamableHTTPClientTransport(new URL(gw.url + '/mcp'));
      await c.connect(t);
      return { c, t };
    };
    const first = await open();
    const second = await open();
    try {
      assert.deepEqual(JSON.parse(await text(first.c, 'fixture__client_capabilities')), { roots: {} });
      assert.deepEqual(JSON.parse(await text(second.c, 'fixture__client_capabilities')), {});
      assert.match(gw.logs, /max_client_sessions \(1\) reached/);
    } finally {
      for (const x of [first, second]) {
        await x.t.terminateSession();
        await x.c.close();
      }
    }
    // The slot is free again.
    await waitFor(async () => (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data[0].client_sessions === 0, 10000, 'slot freed');
    const third = await open();
    try {
      assert.deepEqual(JSON.parse(await text(third.c, 'fixture__client_capabilities')), { roots: {} });
    } finally {
      await third.t.terminateSession();
      await third.c.close();
    }
  });
});

describe('toolgate mcp-stdio', () => {
  let cfg;
  before(() => { cfg = writeConfig(`providers_from_env: false\n${serversYaml}`); });
  after(() => cfg?.cleanup());

  test('the official SDK client lists and calls tools over stdio; stdout carries nothing else', async () => {
    const client = new Client({ name: 'e2e-stdio', version: '1.0.0' });
    const transport = new StdioClientTransport({ command: toolgateBin, args: ['mcp-stdio', '--config', cfg.file], env: cleanEnv(), stderr: 'pipe' });
    await client.connect(transport);
    try {
      await waitFor(async () => (await allTools(client)).names.includes('fixture__pid'), 20000, 'tools over stdio');
      const r = await client.callTool({ name: 'everything__echo', arguments: { message: 'stdio' } });
      assert.equal(r.content[0].text, 'Echo: stdio');
      assert.deepEqual(JSON.parse(await text(client, 'fixture__client_capabilities')), {}, 'a client that declares nothing');
    } finally {
      await client.close();
    }
  });

  test("the IDE's roots reach the servers: server-filesystem started without a directory serves the IDE's root", async () => {
    const { ListRootsRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const only = writeConfig(`providers_from_env: false
mcp_servers:
  - { name: fs, command: node, args: ["${filesystem}"] }
  - { name: fixture, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" }, client_features: [roots] }
`);
    const client = new Client({ name: 'ide-stdio', version: '1.0.0' }, { capabilities: { roots: { listChanged: true }, sampling: {} } });
    client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: pathToFileURL(dirs.gamma).href }] }));
    const transport = new StdioClientTransport({ command: toolgateBin, args: ['mcp-stdio', only.file], env: cleanEnv(), stderr: 'pipe' });
    await client.connect(transport);
    try {
      await waitFor(async () => (await allTools(client)).names.includes('fs__list_allowed_directories'), 20000, 'fs tools');
      await waitFor(async () => (await allowedDirs(client)).join() === dirs.gamma, 10000, "the IDE's root");
      writeFileSync(join(dirs.gamma, 'ide.txt'), 'from the IDE root');
      assert.equal(await text(client, 'fs__read_text_file', { path: join(dirs.gamma, 'ide.txt') }), 'from the IDE root');
      assert.deepEqual(JSON.parse(await text(client, 'fixture__client_capabilities')), { roots: { listChanged: true } });
    } finally {
      await client.close();
      only.cleanup();
    }
  });
});
