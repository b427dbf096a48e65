// Vertex AI through toolgate (type: vertex): the official openai SDK sends chat and embeddings
// requests; toolgate signs in with a service-account key file (an RS256 JWT assertion that the fake
// token endpoint checks against the public key), caches the access token, sends Gemini models to
// the google publisher and Claude models to the anthropic publisher's rawPredict, and a real MCP
// server's tool runs in agent loops through both. Also: one exchange for concurrent requests, a
// revoked token replaced once, refused and unreachable token endpoints, throttling, no secret in the
// log, and a provider from GOOGLE_APPLICATION_CREDENTIALS.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, serversUp, freePort, waitFor, collectStream } from './lib/harness.mjs';
import { startFakeVertex } from './lib/fake_vertex.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const noTools = { headers: { 'x-toolgate-mcp-servers': 'none' } };
const base = '/v1/projects/test-project/locations/us-central1/publishers';
const claudeModel = 'claude-sonnet-4@20250514';

const vertexProvider = (name, url, file, models) => `
  - name: ${name}
    type: vertex
    base_url: "${url}"
    project_id: test-project
    location: us-central1
    credentials_file: "${file}"
    models: [${models.map((m) => JSON.stringify(m)).join(', ')}]`;


const post = (gw, model) => fetch(gw.url + '/v1/chat/completions', { method: 'POST',
  headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'none' },
  body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }) });

describe('type: vertex, signed in with a service account, against a fake Google token endpoint and Vertex', () => {
  let vertex, gw, gw2, client, dir, goodFile, otherPem;
  const logs = [];  // the output of every gateway started here, checked for secrets at the end
  // Successful exchanges of the good service account (the bad one has the same email, never ok).
  const goodExchanges = () => vertex.state.exchanges.filter((e) => e.ok && e.claims?.iss === vertex.email).length;
  const since = (n, model) => vertex.state.requests.slice(n).filter((q) => q.route?.model === model);
  const bearer = (q) => /^Bearer (.+)$/.exec(q.headers.authorization ?? '')?.[1];

  before(async () => {
    vertex = await startFakeVertex();
    dir = mkdtempSync(join(tmpdir(), 'toolgate-vertex-'));
    goodFile = vertex.writeCredentials(dir);
    otherPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const badFile = vertex.writeCredentials(dir, { private_key: otherPem });
    // Nobody listens there: the token request is refused at connect.
    const nowhereFile = vertex.writeCredentials(dir, { token_uri: `http://127.0.0.1:${await freePort()}/token` });
    gw = await startGateway(`
providers_from_env: false
providers:${vertexProvider('gcp', vertex.url, goodFile, ['gemini-2.5-flash', 'gemini-429', claudeModel, 'text-embedding-005'])}${vertexProvider('bad', vertex.url, badFile, ['bad-key-model'])}${vertexProvider('nowhere', vertex.url, nowhereFile, ['no-token-model'])}
mcp_servers:
  - { name: everything, command: node, args: ["${everything}", stdio] }
`);
    logs.push(() => gw.logs + gw.stdout);
    client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'any', maxRetries: 0, timeout: 20000 });
    await serversUp(gw, 30000, 'MCP server up');
  });
  after(async () => {
    await gw2?.stop();
    await gw?.stop();
    await vertex?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('Gemini, non-streamed: generateContent at the publisher model path, with a bearer token the fake issued', async () => {
    const r = await client.chat.completions.create({ model: 'gemini-2.5-flash',
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }] }, noTools);
    assert.equal(r.choices[0].message.content, 'Vertex Gemini says: hello');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [11, 7]);
    const req = vertex.lastRequest();
    assert.equal(req.url, `${base}/google/models/gemini-2.5-flash:generateContent`);
    assert.ok(vertex.issued.has(bearer(req)), `authorization ${JSON.stringify(req.headers.authorization)} is no token the fake issued`);
    assert.equal(req.headers['x-goog-api-key'], undefined, 'Vertex takes no API key header');
    assert.equal(req.body.systemInstruction?.parts?.map((p) => p.text).join(''), 'Be brief.', JSON.stringify(req.body.systemInstruction));
    assert.ok(!JSON.stringify(req.body.contents).includes('Be brief.'), 'the system message belongs in systemInstruction, not contents');
  });

  test('Gemini, streamed: streamGenerateContent?alt=sse, text reassembled, usage included', async () => {
    const r = await collectStream(await client.chat.completions.create({ model: 'gemini-2.5-flash', stream: true,
      stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream me please' }] }, noTools));
    assert.equal(r.text, 'Vertex Gemini says: stream me please');
    assert.equal(r.finish, 'stop');
    assert.ok(r.usage, 'no usage chunk');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [11, 7]);
    const req = vertex.lastRequest();
    assert.equal(req.url, `${base}/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse`);
    assert.ok(vertex.issued.has(bearer(req)));
  });

  test('Claude on Vertex, non-streamed: rawPredict, the model in the path, anthropic_version in the body', async () => {
    const r = await client.chat.completions.create({ model: claudeModel, messages: [{ role: 'user', content: 'hello' }] }, noTools);
    assert.equal(r.choices[0].message.content, 'Vertex Claude says: hello');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [11, 7]);
    const req = vertex.lastRequest();
    const m = new RegExp(`^${base}/anthropic/models/([^/:]+):rawPredict$`).exec(req.url);
    assert.ok(m, `unexpected path ${req.url}`);
    // '@' may travel as itself or percent-encoded; either must name the model.
    assert.ok(['claude-sonnet-4@20250514', 'claude-sonnet-4%4020250514'].includes(m[1]), `model segment ${m[1]}`);
    assert.equal(decodeURIComponent(m[1]), claudeModel);
    assert.ok(vertex.issued.has(bearer(req)));
    assert.equal(req.body.anthropic_version, 'vertex-2023-10-16');
    assert.equal(req.body.model, undefined, 'Vertex names the model in the URL, not the body');
    assert.equal(req.headers['anthropic-version'], undefined);
    assert.equal(req.headers['x-api-key'], undefined);
  });

  test('Claude on Vertex, streamed: streamRawPredict with stream: true, text and usage', async () => {
    const r = await collectStream(await client.chat.completions.create({ model: claudeModel, stream: true,
      stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream me please' }] }, noTools));
    assert.equal(r.text, 'Vertex Claude says: stream me please');
    assert.equal(r.finish, 'stop');
    assert.ok(r.usage, 'no usage chunk');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [11, 7]);
    const req = vertex.lastRequest();
    assert.match(req.url, /\/publishers\/anthropic\/models\/[^/]+:streamRawPredict$/);
    assert.equal(req.body.stream, true);
    assert.equal(req.body.anthropic_version, 'vertex-2023-10-16');
  });

  test('an agent loop through Gemini, streamed: the model calls a real MCP tool, the result goes back as a functionResponse', async () => {
    const n = vertex.state.requests.length;
    const r = await collectStream(await client.chat.completions.create({ model: 'gemini-2.5-flash', stream: true,
      messages: [{ role: 'user', content: 'call everything__echo {"message":"via vertex"}' }] }));
    assert.equal(r.text, 'Tool results: Echo: via vertex');
    const turns = since(n, 'gemini-2.5-flash');
    assert.equal(turns.length, 2, turns.map((q) => q.url).join('\n'));
    assert.ok(turns.every((q) => q.route.method === 'streamGenerateContent' && q.status === 200), turns.map((q) => `${q.status} ${q.url}`).join('\n'));
    const declared = (turns[0].body.tools ?? []).flatMap((t) => t.functionDeclarations ?? []).map((f) => f.name);
    assert.ok(declared.includes('everything__echo'), `tools offered: ${declared.join(', ')}`);
    const contents = turns[1].body.contents;
    assert.ok(contents.at(-2).parts.some((p) => p.functionCall?.name === 'everything__echo'), JSON.stringify(contents.at(-2)));
    const answer = contents.at(-1).parts.find((p) => p.functionResponse)?.functionResponse;
    assert.ok(answer, JSON.stringify(contents.at(-1)));
    assert.equal(answer.name, 'everything__echo');
    assert.match(JSON.stringify(answer.response), /Echo: via vertex/);
  });

  test('an agent loop through Claude on Vertex, non-streamed: tool_use, then the tool_result in the second rawPredict', async () => {
    const n = vertex.state.requests.length;
    const r = await client.chat.completions.create({ model: claudeModel,
      messages: [{ role: 'user', content: 'call everything__echo {"message":"via claude on vertex"}' }] });
    assert.equal(r.choices[0].message.content, 'Tool results: Echo: via claude on vertex');
    const turns = since(n, claudeModel);
    assert.equal(turns.length, 2, turns.map((q) => q.url).join('\n'));
    assert.ok(turns.every((q) => q.route.method === 'rawPredict' && q.status === 200), turns.map((q) => `${q.status} ${q.url}`).join('\n'));
    assert.ok((turns[0].body.tools ?? []).some((t) => t.name === 'everything__echo'), 'everything__echo offered to the model');
    const msgs = turns[1].body.messages;
    assert.equal(msgs.at(-2).content.find((b) => b.type === 'tool_use')?.name, 'everything__echo');
    const result = msgs.at(-1).content.find((b) => b.type === 'tool_result');
    assert.ok(result, JSON.stringify(msgs.at(-1)));
    assert.match(JSON.stringify(result.content), /Echo: via claude on vertex/);
  });

  test('embeddings through predict: one call with an instance per text, vectors and token counts back', async () => {
    const n = vertex.state.requests.length;
    // The SDK asks for base64 and decodes it back to floats.
    const r = await client.embeddings.create({ model: 'text-embedding-005', input: ['a', 'bbb'] });
    assert.deepEqual(r.data.map((d) => Array.from(d.embedding)), [[0, 1, 0.25], [1, 3, 0.25]]);
    assert.equal(r.usage.prompt_tokens, 4);
    const calls = vertex.state.requests.slice(n);
    assert.equal(calls.length, 1, calls.map((q) => q.url).join('\n'));
    assert.equal(calls[0].url, `${base}/google/models/text-embedding-005:predict`);
    assert.deepEqual(calls[0].body.instances, [{ content: 'a' }, { content: 'bbb' }]);
  });

  test('the access token is cached and shared; concurrent requests on a fresh gateway make one exchange', async () => {
    assert.equal(goodExchanges(), 1, `exchanges so far: ${JSON.stringify(vertex.state.exchanges.map((e) => [e.ok, e.why]))}`);
    gw2 = await startGateway(`
providers_from_env: false
providers:${vertexProvider('gcp', vertex.url, goodFile, ['gemini-2.5-flash'])}
`);
    logs.push(() => gw2.logs + gw2.stdout);
    const client2 = new OpenAI({ baseURL: gw2.url + '/v1', apiKey: 'any', maxRetries: 0, timeout: 20000 });
    // Slow token answers keep the first exchange open while all eight requests want a token.
    vertex.setTokenDelay(400);
    const n = vertex.state.exchanges.length;
    try {
      const all = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        client2.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: `p${i}` }] }, noTools)));
      assert.deepEqual(all.map((r) => r.choices[0].message.content), Array.from({ length: 8 }, (_, i) => `Vertex Gemini says: p${i}`));
    } finally {
      vertex.setTokenDelay(0);
      await gw2.stop();
    }
    const made = vertex.state.exchanges.slice(n);
    assert.equal(made.length, 1, `single flight: ${made.length} exchanges for 8 concurrent requests`);
    assert.ok(made[0].ok, made[0].why);
    assert.equal(goodExchanges(), 2);
  });

  test('a revoked token: the 401 drops it, one new exchange, the request is retried and succeeds', async () => {
    const n = vertex.state.requests.length, x = vertex.state.exchanges.length;
    const earlier = new Set(vertex.state.exchanges.map((e) => e.token).filter(Boolean));
    vertex.revokeAll();
    const r = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'again' }] }, noTools);
    assert.equal(r.choices[0].message.content, 'Vertex Gemini says: again');
    assert.equal(vertex.state.exchanges.length - x, 1, 'exactly one new exchange');
    assert.ok(vertex.state.exchanges.at(-1).ok, vertex.state.exchanges.at(-1).why);
    const calls = vertex.state.requests.slice(n);
    assert.deepEqual(calls.map((q) => q.status), [401, 200], 'the cached token refused, then the retry answered');
    assert.ok(earlier.has(bearer(calls[0])), 'the first try carried the cached (now revoked) token');
    assert.equal(bearer(calls[1]), vertex.state.exchanges.at(-1).token, 'the retry carries the new token');
  });

  test('a key the token endpoint refuses: 502 upstream_auth_failed, the reason in the log, nothing sent upstream', async () => {
    const n = vertex.state.requests.length, x = vertex.state.exchanges.length;
    const r = await post(gw, 'bad-key-model');
    assert.equal(r.status, 502);
    const body = await r.json();
    assert.equal(body.error?.code, 'upstream_auth_failed', JSON.stringify(body));
    assert.match(body.error.message, /access token/i);
    assert.ok(!body.error.message.includes('Invalid JWT Signature'), 'the reason stays in the log');
    assert.equal(since(n, 'bad-key-model').length, 0, 'no upstream call without a token');
    const tried = vertex.state.exchanges.slice(x);
    assert.ok(tried.length >= 1, 'an exchange was attempted');
    // A well-formed assertion, only signed with the wrong key.
    assert.ok(tried.every((e) => !e.ok && e.why === 'Invalid JWT Signature.'), JSON.stringify(tried.map((e) => e.why)));
    // The log is written off the request path.
    await waitFor(() => gw.logs.includes('invalid_grant'), 5000, "'invalid_grant' in the gateway log");
  });

  test('an unreachable token endpoint: a prompt 502 with an OpenAI-shaped error', async () => {
    const t0 = Date.now();
    const r = await post(gw, 'no-token-model');
    const elapsed = Date.now() - t0;
    assert.equal(r.status, 502);
    const body = await r.json();
    assert.equal(typeof body.error?.message, 'string', JSON.stringify(body));
    assert.equal(body.error.code, 'upstream_auth_failed');
    assert.ok(elapsed < 15000, `took ${elapsed} ms`);
  });

  test('throttling: 429 RESOURCE_EXHAUSTED becomes 429 upstream_rate_limited with Retry-After passed on', async () => {
    const r = await post(gw, 'gemini-429');
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '3');
    const body = await r.json();
    assert.equal(body.error?.code, 'upstream_rate_limited', JSON.stringify(body));
    assert.equal(vertex.lastRequest().route.model, 'gemini-429');
  });

  test('no access token, private key or assertion reaches a log (stderr or stdout)', () => {
    const all = logs.map((l) => l()).join('\n');
    const tokens = vertex.state.exchanges.filter((e) => e.token).map((e) => e.token);
    assert.ok(tokens.length >= 3);
    for (const t of tokens) assert.ok(!all.includes(t), 'an access token is in the log');
    for (const pem of [vertex.credentials().private_key, otherPem]) {
      const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
      const mid = Math.floor(b64.length / 2) - 20;
      assert.ok(!all.includes(b64.slice(mid, mid + 40)), 'a private key is in the log');
    }
    const assertions = vertex.state.exchanges.map((e) => e.assertion).filter(Boolean);
    assert.ok(assertions.length >= 3);
    for (const a of assertions) {
      assert.ok(!all.includes(a), 'an assertion is in the log');
      assert.ok(!all.includes(a.split('.')[2].slice(0, 40)), "an assertion's signature is in the log");
    }
  });
});

test('GOOGLE_APPLICATION_CREDENTIALS enables a vertex provider (project from the key file); its catalog models are listed', async () => {
  const vertex = await startFakeVertex();
  const dir = mkdtempSync(join(tmpdir(), 'toolgate-vertex-env-'));
  try {
    const file = vertex.writeCredentials(dir);
    const gw = await startGateway('providers_from_env: true\n', { env: { GOOGLE_APPLICATION_CREDENTIALS: file, GOOGLE_CLOUD_LOCATION: 'us-central1' } });
    try {
      const models = (await (await fetch(gw.url + '/v1/models')).json()).data;
      const flash = models.find((m) => m.id === 'gemini-2.5-flash' && m.owned_by === 'vertex');
      assert.ok(flash, models.map((m) => `${m.id} (${m.owned_by})`).join(', '));
    } finally {
      await gw.stop();
    }
    // Without the key file's variable, the location alone enables nothing.
    const bare = await startGateway('providers_from_env: true\n', { env: { GOOGLE_CLOUD_LOCATION: 'us-central1' } });
    try {
      const models = (await (await fetch(bare.url + '/v1/models')).json()).data;
      assert.ok(!models.some((m) => m.owned_by === 'vertex'), models.map((m) => `${m.id} (${m.owned_by})`).join(', '));
    } finally {
      await bare.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await vertex.close();
  }
});
