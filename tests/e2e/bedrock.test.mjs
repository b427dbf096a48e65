// Bedrock through toolgate (type: bedrock): the official openai SDK sends chat requests, toolgate
// translates them to Converse / ConverseStream, signs them with SigV4 and reads the binary event
// stream back. The fake Bedrock recomputes each signature and refuses a wrong one, so every
// passing request here was signed correctly; a real MCP server's tool runs in an agent loop.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, waitFor, collectStream } from './lib/harness.mjs';
import { startFakeBedrock } from './lib/fake_bedrock.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';

describe('type: bedrock, signed with SigV4, against a fake Bedrock that checks signatures', () => {
  let bedrock, gw, client;
  before(async () => {
    bedrock = await startFakeBedrock({ secret, bearerKeys: ['bedrock-key-2'] });
    gw = await startGateway(`
providers_from_env: false
providers:
  - name: aws
    type: bedrock
    base_url: "${bedrock.url}"
    region: eu-west-1
    access_key_id: AKIDEXAMPLE
    secret_access_key: "${secret}"
    session_token: the-session-token
    models: ["anthropic.claude-3-5-sonnet-20240620-v1:0", agent, throttled, "amazon.titan-embed-text-v2:0", cohere.embed-english-v3]
  - name: wrong
    type: bedrock
    base_url: "${bedrock.url}"
    region: eu-west-1
    access_key_id: AKIDEXAMPLE
    secret_access_key: not-the-secret
    models: [wrong-secret]
  - name: keyed
    type: bedrock
    base_url: "${bedrock.url}"
    region: eu-west-1
    api_keys: [bedrock-key-revoked, bedrock-key-2]
    models: [keyed-model]
mcp_servers:
  - { name: everything, command: node, args: ["${everything}", stdio] }
`);
    client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'any', maxRetries: 0, timeout: 20000 });
    await waitFor(async () => (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.every((x) => x.status === 'up'),
      20000, 'MCP server up');
  });
  after(async () => {
    await gw?.stop();
    await bedrock?.close();
  });

  const model = 'anthropic.claude-3-5-sonnet-20240620-v1:0';
  const noTools = { headers: { 'x-toolgate-mcp-servers': 'none' } };

  test('non-streamed: a Converse call, signed for bedrock in the region, the session token signed too', async () => {
    const r = await client.chat.completions.create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }] }, noTools);
    assert.equal(r.choices[0].message.content, 'Bedrock says: hello');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [11, 7]);
    const req = bedrock.lastRequest();
    assert.equal(req.url, '/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse');
    assert.equal(req.sig.ok, true, req.sig.why);
    assert.equal(req.sig.service, 'bedrock');
    assert.equal(req.sig.region, 'eu-west-1');
    assert.ok(req.sig.signedHeaders.includes('x-amz-security-token'), req.sig.signedHeaders.join(';'));
    assert.equal(req.headers['x-amz-security-token'], 'the-session-token');
    assert.deepEqual(req.body.system, [{ text: 'Be brief.' }]);
  });

  test('Bedrock API keys rotate: a refused key cools down and the next one is sent as the bearer token', async () => {
    const before = bedrock.state.requests.length;
    const r = await client.chat.completions.create({ model: 'keyed-model', messages: [{ role: 'user', content: 'keyed' }] }, noTools);
    assert.equal(r.choices[0].message.content, 'Bedrock says: keyed');
    const seen = bedrock.state.requests.slice(before).map((q) => q.headers.authorization);
    assert.deepEqual(seen, ['Bearer bedrock-key-revoked', 'Bearer bedrock-key-2']);
    // The revoked key is cooling down: the next request goes straight to the second key.
    await client.chat.completions.create({ model: 'keyed-model', messages: [{ role: 'user', content: 'again' }] }, noTools);
    assert.equal(bedrock.lastRequest().headers.authorization, 'Bearer bedrock-key-2');
    assert.equal(bedrock.lastRequest().headers['x-amz-date'], undefined, 'no SigV4 headers beside an API key');
  });

  test('streamed: ConverseStream event frames, split anywhere, become OpenAI chunks with usage', async () => {
    const stream = await client.chat.completions.create({ model, stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream me' }] }, noTools);
    const { text, finish, usage } = await collectStream(stream);
    assert.equal(text, 'Bedrock says: stream me');
    assert.equal(finish, 'stop');
    assert.deepEqual([usage.prompt_tokens, usage.completion_tokens], [11, 7]);
    const req = bedrock.lastRequest();
    assert.match(req.url, /\/converse-stream$/);
    assert.equal(req.sig.ok, true, req.sig.why);
    assert.equal(req.headers.accept, 'application/vnd.amazon.eventstream');
  });

  test('an agent loop: the model calls a real MCP tool through Converse toolUse, streamed', async () => {
    const stream = await client.chat.completions.create({ model: 'agent', stream: true,
      messages: [{ role: 'user', content: 'call everything__echo {"message":"via bedrock"}' }] });
    let text = '';
    for await (const c of stream) for (const ch of c.choices) text += ch.delta?.content ?? '';
    assert.equal(text, 'Tool results: Echo: via bedrock');
    const turns = bedrock.state.requests.filter((q) => q.url.startsWith('/model/agent/'));
    assert.equal(turns.length, 2);
    assert.ok(turns.every((q) => q.sig.ok));
    const second = turns[1].body.messages;
    assert.equal(second.at(-2).content[0].toolUse.name, 'everything__echo');
    assert.equal(second.at(-1).content[0].toolResult.content[0].text, 'Echo: via bedrock');
  });

  test('embeddings: Titan one signed InvokeModel call per text, Cohere one for all; base64 for the SDK', async () => {
    const before = bedrock.state.requests.length;
    // The SDK asks for base64 by default and decodes it back to floats.
    const titan = await client.embeddings.create({ model: 'amazon.titan-embed-text-v2:0', input: ['hello there', 'abc'], dimensions: 256 });
    assert.deepEqual(titan.data.map((d) => d.embedding), [[11, 256, 0.5], [3, 256, 0.5]]);
    assert.equal(titan.usage.prompt_tokens, 3);
    const calls = bedrock.state.requests.slice(before);
    assert.deepEqual(calls.map((q) => q.url), ['/model/amazon.titan-embed-text-v2%3A0/invoke', '/model/amazon.titan-embed-text-v2%3A0/invoke']);
    assert.ok(calls.every((q) => q.sig.ok));
    assert.deepEqual(calls.map((q) => q.body), [{ inputText: 'hello there', dimensions: 256 }, { inputText: 'abc', dimensions: 256 }]);
    const cohere = await client.embeddings.create({ model: 'cohere.embed-english-v3', input: ['a', 'bb', 'ccc'], encoding_format: 'float' });
    assert.deepEqual(cohere.data.map((d) => d.embedding), [[0, 1], [1, 2], [2, 3]]);
    assert.equal(bedrock.lastRequest().body.input_type, 'search_document');
    // A chat model is no embedding model: a clear 400, nothing sent.
    const n = bedrock.state.requests.length;
    await assert.rejects(client.embeddings.create({ model, input: 'x' }), (e) => e.status === 400 && /Titan/.test(e.message));
    assert.equal(bedrock.state.requests.length, n);
  });

  test('a wrong secret: Bedrock refuses the signature, the client gets 502 upstream_auth_failed', async () => {
    const r = await fetch(gw.url + '/v1/chat/completions', { method: 'POST',
      headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'none' },
      body: JSON.stringify({ model: 'wrong-secret', messages: [{ role: 'user', content: 'x' }] }) });
    assert.equal(r.status, 502);
    assert.equal((await r.json()).error.code, 'upstream_auth_failed');
    assert.equal(bedrock.lastRequest().sig.ok, false);
  });

  test('throttling: 429 with Retry-After passed on', async () => {
    const r = await fetch(gw.url + '/v1/chat/completions', { method: 'POST',
      headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'none' },
      body: JSON.stringify({ model: 'throttled', messages: [{ role: 'user', content: 'x' }] }) });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '2');
    const body = await r.json();
    assert.equal(body.error.code, 'upstream_rate_limited');
    assert.match(body.error.message, /Too many requests/);
  });
});

test('AWS credentials and a region in the environment enable a bedrock provider; its catalog models are listed', async () => {
  const gw = await startGateway('providers_from_env: true\n', {
    env: { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: secret, AWS_REGION: 'us-west-2' } });
  try {
    const models = (await (await fetch(gw.url + '/v1/models')).json()).data;
    const nova = models.find((m) => m.id === 'amazon.nova-pro-v1:0');
    assert.ok(nova, models.map((m) => m.id).join(', '));
    assert.equal(nova.owned_by, 'bedrock');
  } finally {
    await gw.stop();
  }
  // Without a secret (or a region) the access key alone enables nothing.
  const bare = await startGateway('providers_from_env: true\n', { env: { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE' } });
  try {
    const models = (await (await fetch(bare.url + '/v1/models')).json()).data;
    assert.ok(!models.some((m) => m.id === 'amazon.nova-pro-v1:0'));
  } finally {
    await bare.stop();
  }
});
