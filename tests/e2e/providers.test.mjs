// Native provider adapters end to end: the official `openai` SDK talks to toolgate, toolgate talks
// to an Anthropic-shaped and a Gemini-shaped fake upstream (and Azure OpenAI's URL scheme on the
// OpenAI fake). Text, streaming, errors, and a full agent loop with an MCP tool whose final answer
// must be the same as through the OpenAI adapter.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, waitFor } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { startFakeAnthropic, startFakeGemini } from './lib/fake_native.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const user = (content) => [{ role: 'user', content }];

describe('native adapters through the openai SDK', () => {
  let openaiFake, anthropic, gemini, gw, client;
  before(async () => {
    [openaiFake, anthropic, gemini] = await Promise.all([startFakeUpstream(), startFakeAnthropic(), startFakeGemini()]);
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${openaiFake.url}", api_key: sk-upstream, models: [mock-agent] }
  - name: claude
    type: anthropic
    base_url: "${anthropic.url}"
    api_key: sk-ant-fake
    models: [claude-agent, claude-429, claude-overloaded-stream]
    max_tokens: 512
  - { name: gem, type: google, base_url: "${gemini.url}", api_key: gm-fake, models: [gemini-agent, gemini-blocked, text-embedding-004] }
  - name: azure
    type: azure-openai
    base_url: "${openaiFake.url.replace(/\/v1$/, '')}"
    api_key: az-key
    models: [gpt-4o-az]
    deployments: { gpt-4o-az: my-deployment }
mcp_servers:
  - { name: everything, command: node, args: ["${everything}", stdio] }
`);
    client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'client-key', maxRetries: 0, timeout: 20000 });
    await waitFor(async () => (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.every((s) => s.status === 'up'),
      20000, 'MCP server up');
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([openaiFake?.close(), anthropic?.close(), gemini?.close()]);
  });

  test('anthropic: text, with the system prompt lifted, max_tokens filled in and the version header', async () => {
    const r = await client.chat.completions.create({
      model: 'claude-agent', messages: [{ role: 'system', content: 'Be brief.' }, ...user('hi there')],
    }, { headers: { 'x-toolgate-mcp-servers': 'none' } });
    assert.equal(r.choices[0].message.content, 'no tools needed: hi there');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.usage.total_tokens, 18);
    const sent = anthropic.lastRequest();
    assert.equal(sent.body.system, 'Be brief.');
    assert.equal(sent.body.max_tokens, 512);
    assert.equal(sent.headers['anthropic-version'], '2023-06-01');
    assert.equal(sent.headers.authorization, undefined);
  });

  test('anthropic: streaming through the SDK', async () => {
    const stream = await client.chat.completions.create({ model: 'claude-agent', stream: true, messages: user('stream me') },
      { headers: { 'x-toolgate-mcp-servers': 'none' } });
    let text = '';
    const finishes = [];
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.choices[0]?.finish_reason) finishes.push(c.choices[0].finish_reason);
    }
    assert.equal(text, 'no tools needed: stream me');
    assert.deepEqual(finishes, ['stop']);
  });

  test('gemini: text and streaming through the SDK', async () => {
    const r = await client.chat.completions.create({ model: 'gemini-agent', messages: user('hello gemini') },
      { headers: { 'x-toolgate-mcp-servers': 'none' } });
    assert.equal(r.choices[0].message.content, 'no tools needed: hello gemini');
    assert.equal(gemini.lastRequest().url, '/v1beta/models/gemini-agent:generateContent');
    const runner = client.chat.completions.stream({ model: 'gemini-agent', messages: user('streamed gemini') },
      { headers: { 'x-toolgate-mcp-servers': 'none' } });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, 'no tools needed: streamed gemini');
    assert.equal(gemini.lastRequest().url, '/v1beta/models/gemini-agent:streamGenerateContent?alt=sse');
  });

  test('the agent loop ends with the same answer through all three adapters, streamed or not', async () => {
    const prompt = user('call everything__echo {"message":"same everywhere"}\ncall everything__get-sum {"a":20,"b":22}');
    const answers = {};
    for (const model of ['mock-agent', 'claude-agent', 'gemini-agent']) {
      const r = await client.chat.completions.create({ model, messages: prompt });
      let streamed = '';
      const s = await client.chat.completions.create({ model, messages: prompt, stream: true, stream_options: { include_usage: true } });
      let usage = null;
      for await (const c of s) { streamed += c.choices[0]?.delta?.content ?? ''; if (c.usage) usage = c.usage; }
      answers[model] = { text: r.choices[0].message.content, streamed, usage: r.usage.total_tokens, streamedUsage: usage.total_tokens,
        calls: r.toolgate.tool_calls.map((c) => [c.name, c.ok]) };
    }
    assert.equal(answers['mock-agent'].text, 'Tool results: Echo: same everywhere | The sum of 20 and 22 is 42.');
    for (const model of ['claude-agent', 'gemini-agent']) assert.deepEqual(answers[model], answers['mock-agent'], model);
  });

  test('anthropic: 429 keeps its Retry-After; an overloaded error event in the stream becomes a 503', async () => {
    const res = await fetch(gw.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'none' },
      body: JSON.stringify({ model: 'claude-429', messages: user('x') }) });
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '7');
    assert.equal((await res.json()).error.code, 'upstream_rate_limited');
    await assert.rejects(client.chat.completions.create({ model: 'claude-429', messages: user('x') }, { headers: { 'x-toolgate-mcp-servers': 'none' } }),
      (e) => e instanceof OpenAI.RateLimitError);
    const s = await fetch(gw.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'none' },
      body: JSON.stringify({ model: 'claude-overloaded-stream', stream: true, messages: user('overload me') }) });
    // The fake sends the whole stream at once, so nothing had reached the client yet: a plain error.
    assert.equal(s.status, 503);
    assert.equal((await s.json()).error.code, 'upstream_unavailable');
  });

  test('gemini: a blocked prompt is a clear 400; embeddings translate both ways', async () => {
    const r = await fetch(gw.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'none' },
      body: JSON.stringify({ model: 'gemini-blocked', messages: user('x') }) });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, 'content_blocked');
    const e = await client.embeddings.create({ model: 'text-embedding-004', input: ['ab', 'abcd'], encoding_format: 'float' });
    assert.deepEqual(e.data.map((d) => d.embedding), [[0, 2, 0.5], [1, 4, 0.5]]);
  });

  test('azure-openai: deployment in the path, api-version, api-key header, no bearer token', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o-az', messages: user('hi') }, { headers: { 'x-toolgate-mcp-servers': 'none' } });
    assert.equal(r.choices[0].message.content, 'reply from gpt-4o-az');
    const sent = openaiFake.lastRequest();
    assert.equal(sent.url, '/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21');
    assert.equal(sent.headers['api-key'], 'az-key');
    assert.equal(sent.headers.authorization, undefined);
  });
});

describe('providers enabled by environment variables alone', () => {
  let upstream, gw;
  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway('server: { request_timeout: 30s }\n', {
      env: { ANTHROPIC_API_KEY: 'sk-ant-env', GEMINI_API_KEY: 'gm-env', OLLAMA_BASE_URL: upstream.url },
    });
  });
  after(async () => { await gw?.stop(); await upstream?.close(); });

  test('/v1/models lists the catalog models of each, with context window and prices; ollama needs no key', async () => {
    const models = (await (await fetch(gw.url + '/v1/models')).json()).data;
    const claude = models.find((m) => m.id === 'claude-sonnet-4-5');
    assert.equal(claude.provider, 'anthropic');
    assert.equal(claude.context_window, 200000);
    assert.equal(claude.pricing.input_per_million, 3);
    assert.ok(models.some((m) => m.id === 'gemini-2.5-flash' && m.provider === 'gemini'));
    // Ollama has no catalog entry and no key: any other model name reaches it.
    const r = await fetch(gw.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'ollama/llama3.2', messages: user('hi') }) });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).choices[0].message.content, 'reply from llama3.2');
    assert.equal(upstream.lastRequest().headers.authorization, undefined);
    assert.match(gw.logs, /provider 'anthropic' type anthropic \(from environment\)/);
    assert.ok(!gw.logs.includes('sk-ant-env') && !gw.logs.includes('gm-env'), 'keys never reach the log');
  });
});

describe('live smoke tests (only with real keys)', () => {
  const live = [['OPENAI_API_KEY', 'gpt-4o-mini'], ['ANTHROPIC_API_KEY', 'claude-haiku-4-5'], ['GEMINI_API_KEY', 'gemini-2.5-flash']];
  for (const [key, model] of live) {
    test(`${model} answers through toolgate`, { skip: process.env[key] ? false : `${key} is not set: no live call` }, async () => {
      const gw = await startGateway('providers_from_env: true\n', { env: { [key]: process.env[key] } });
      try {
        const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'x', maxRetries: 0, timeout: 60000 });
        const r = await client.chat.completions.create({ model, max_tokens: 20, messages: user('Say the word ok.') });
        assert.ok(r.choices[0].message.content.length > 0);
      } finally {
        await gw.stop();
      }
    });
  }
});
