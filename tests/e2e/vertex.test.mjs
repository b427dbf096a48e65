// Vertex AI through toolgate (type: vertex): the official openai SDK sends chat and embeddings
// requests; toolgate signs in with a service account (an RS256 JWT the fake token endpoint checks
// with the public key), sends Gemini models to the google publisher and Claude models to the
// anthropic publisher's rawPredict, and a real MCP server's tool runs in an agent loop.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, serversUp, freePort, waitFor } from './lib/harness.mjs';
import { startFakeVertex } from './lib/fake_vertex.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const noTools = { headers: { 'x-toolgate-mcp-servers': 'none' } };

describe('type: vertex, signed in with a service account, against a fake token endpoint and Vertex', () => {
  let vertex, gw, client, dir;
  const good = () => vertex.state.exchanges.filter((e) => e.ok).length;
  before(async () => {
    vertex = await startFakeVertex();
    dir = mkdtempSync(join(tmpdir(), 'toolgate-vertex-'));
    const sa = vertex.writeCredentials(dir, 'sa.json');
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const bad = vertex.writeCredentials(dir, 'bad.json', { private_key: otherKey });
    const nowhere = vertex.writeCredentials(dir, 'nowhere.json', { token_uri: `http://127.0.0.1:${await freePort()}/token` });
    const provider = (name, file, models) => `
  - name: ${name}
    type: vertex
    base_url: "${vertex.url}"
    project_id: test-project
    location: us-central1
    credentials_file: "${file}"
    models: [${models}]`;
    gw = await startGateway(`
providers_from_env: false
providers:${provider('gcp', sa, 'gemini-2.5-flash, gemini-429, "claude-sonnet-4@20250514", text-embedding-005')}${provider('bad', bad, 'bad-key-model')}${provider('nowhere', nowhere, 'no-token-model')}
mcp_servers:
  - { name: everything, command: node, args: ["${everything}", stdio] }
`);
    client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'any', maxRetries: 0, timeout: 20000 });
    await serversUp(gw, 30000, 'MCP server up');
  });
  after(async () => {
    await gw?.stop();
    await vertex?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('Gemini, non-streamed: generateContent at the publisher model path with an issued bearer token', async () => {
    const r = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }] }, noTools);
    assert.equal(r.choices[0].message.content, 'Vertex Gemini says: hello');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [11, 7]);
    const req = vertex.lastRequest();
    assert.equal(req.url, '/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent');
    assert.ok(vertex.issued.has(req.headers.authorization.slice(7)));
    assert.equal(req.headers['x-goog-api-key'], undefined);
    assert.deepEqual(req.body.systemInstruction, { parts: [{ text: 'Be brief.' }] });
  });

  test('Gemini, streamed: streamGenerateContent with usage', async () => {
    const stream = await client.chat.completions.create({ model: 'gemini-2.5-flash', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream me' }] }, noTools);
    let text = '', usage = null;
    for await (const c of stream) { if (c.usage) usage = c.usage; for (const ch of c.choices) text += ch.delta?.content ?? ''; }
    assert.equal(text, 'Vertex Gemini says: stream me');
    assert.deepEqual([usage.prompt_tokens, usage.completion_tokens], [11, 7]);
    assert.match(vertex.lastRequest().url, /:streamGenerateContent\?alt=sse$/);
  });

  test('Claude on Vertex: rawPredict, the model in the path, anthropic_version in the body', async () => {
    const r = await client.chat.completions.create({ model: 'claude-sonnet-4@20250514', messages: [{ role: 'user', content: 'hello' }] }, noTools);
    assert.equal(r.choices[0].message.content, 'Vertex Claude says: hello');
    const req = vertex.lastRequest();
    assert.equal(decodeURIComponent(req.url), '/v1/projects/test-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict');
    assert.equal(req.body.anthropic_version, 'vertex-2023-10-16');
    assert.equal(req.body.model, undefined);
    assert.equal(req.headers['anthropic-version'], undefined);
  });

  test('an agent loop through Claude on Vertex, streamed: streamRawPredict and a real MCP tool', async () => {
    const stream = await client.chat.completions.create({ model: 'claude-sonnet-4@20250514', stream: true,
      messages: [{ role: 'user', content: 'call everything__echo {"message":"via vertex"}' }] });
    let text = '';
    for await (const c of stream) for (const ch of c.choices) text += ch.delta?.content ?? '';
    assert.equal(text, 'Tool results: Echo: via vertex');
    const turns = vertex.state.requests.slice(-2);
    assert.ok(turns.every((q) => q.url.endsWith(':streamRawPredict') && q.body.stream === true));
    assert.equal(turns[1].body.messages.at(-1).content[0].type, 'tool_result');
  });

  test('an agent loop through Gemini, non-streamed', async () => {
    const r = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'call everything__echo {"message":"via gemini"}' }] });
    assert.equal(r.choices[0].message.content, 'Tool results: Echo: via gemini');
    assert.ok(vertex.lastRequest().body.contents.at(-1).parts[0].functionResponse);
  });

  test('embeddings through predict, as base64 for the SDK, with token counts', async () => {
    const r = await client.embeddings.create({ model: 'text-embedding-005', input: ['a', 'bbb'] });
    assert.deepEqual(r.data.map((d) => Array.from(d.embedding)), [[0, 1, 0.25], [1, 3, 0.25]]);
    assert.equal(r.usage.prompt_tokens, 4);
    assert.match(vertex.lastRequest().url, /text-embedding-005:predict$/);
    assert.deepEqual(vertex.lastRequest().body, { instances: [{ content: 'a' }, { content: 'bbb' }] });
  });

  test('one token for everything so far, and one exchange for concurrent requests', async () => {
    assert.equal(good(), 1);
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: `p${i}` }] }, noTools)));
    assert.equal(all.length, 8);
    assert.equal(good(), 1);
  });

  test('a revoked token: the 401 brings one new exchange and the request still succeeds', async () => {
    vertex.revokeAll();
    const r = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'again' }] }, noTools);
    assert.equal(r.choices[0].message.content, 'Vertex Gemini says: again');
    assert.equal(good(), 2);
  });

  test('a key the token endpoint refuses: 502 upstream_auth_failed, the reason in the log, nothing sent upstream', async () => {
    const n = vertex.state.requests.length;
    await assert.rejects(client.chat.completions.create({ model: 'bad-key-model', messages: [{ role: 'user', content: 'x' }] }, noTools),
      (e) => e.status === 502 && e.code === 'upstream_auth_failed' && /access token/.test(e.message));
    assert.equal(vertex.state.requests.length, n);
    await waitFor(() => /invalid_grant/.test(gw.logs), 5000, 'the reason in the log');  // (the log is written off the request path)
    assert.equal(vertex.state.exchanges.at(-1).why, 'Invalid JWT Signature.');
  });

  test('an unreachable token endpoint: a prompt 502', async () => {
    const t0 = Date.now();
    await assert.rejects(client.chat.completions.create({ model: 'no-token-model', messages: [{ role: 'user', content: 'x' }] }, noTools),
      (e) => e.status === 502 && e.code === 'upstream_auth_failed');
    assert.ok(Date.now() - t0 < 15000);
  });

  test('throttling: 429 with Retry-After passed on', async () => {
    const r = await fetch(gw.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'none' },
      body: JSON.stringify({ model: 'gemini-429', messages: [{ role: 'user', content: 'x' }] }) });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '3');
    assert.equal((await r.json()).error.code, 'upstream_rate_limited');
  });

  test('no token, key or assertion in the log', () => {
    for (const t of vertex.issued) assert.ok(!gw.logs.includes(t));
    const keyBody = vertex.pem.split('\n').slice(5, 6)[0];
    assert.ok(keyBody.length > 40 && !gw.logs.includes(keyBody));
    assert.ok(!gw.logs.includes('eyJhbGciOiJSUzI1NiI'), 'no JWT header in the log');
  });
});

test('GOOGLE_APPLICATION_CREDENTIALS enables a vertex provider; its catalog models are listed', async () => {
  const vertex = await startFakeVertex();
  const dir = mkdtempSync(join(tmpdir(), 'toolgate-vertex-env-'));
  try {
    const file = vertex.writeCredentials(dir, 'sa.json');
    const gw = await startGateway('providers_from_env: true\n', { env: { GOOGLE_APPLICATION_CREDENTIALS: file, GOOGLE_CLOUD_LOCATION: 'us-central1' } });
    try {
      const models = (await (await fetch(gw.url + '/v1/models')).json()).data;
      const claude = models.find((m) => m.id === 'claude-sonnet-4@20250514');
      assert.ok(claude, models.map((m) => m.id).join(', '));
      assert.equal(claude.owned_by, 'vertex');
    } finally {
      await gw.stop();
    }
    const bare = await startGateway('providers_from_env: true\n');
    try {
      const models = (await (await fetch(bare.url + '/v1/models')).json()).data;
      assert.ok(!models.some((m) => m.owned_by === 'vertex'));
    } finally {
      await bare.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await vertex.close();
  }
});
