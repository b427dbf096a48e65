// End-to-end: the official `openai` npm SDK, unchanged but for baseURL, against toolgate.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startGateway } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';

describe('openai SDK through toolgate', () => {
  let upstream, gw, client;
  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
providers:
  - name: local
    type: openai
    base_url: ${upstream.url}
    api_key: sk-upstream
    models: [mock-ok, mock-stream, mock-500, text-embedding-fake]
  - name: demo
    type: scripted
    models: [toolgate-demo]
    rules:
      - when: weather
        tool_call: { name: get_weather, arguments: { city: Paris } }
`);
    client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'any-client-key', maxRetries: 0, timeout: 10000 });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  test('chat.completions.create, non-streaming, through an OpenAI-compatible upstream', async () => {
    const r = await client.chat.completions.create({ model: 'mock-ok', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.choices[0].message.content, 'reply from mock-ok');
    assert.equal(r.usage.total_tokens, 18);
  });

  test('chat.completions.create with stream: true', async () => {
    const stream = await client.chat.completions.create({
      model: 'mock-stream', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, 'Hello from the fake upstream');
    assert.equal(usage.total_tokens, 10);
  });

  test('the SDK stream helper assembles the scripted model\'s streamed reply', async () => {
    const runner = client.chat.completions.stream({
      model: 'toolgate-demo', messages: [{ role: 'user', content: 'tell me something' }],
    });
    const deltas = [];
    runner.on('content', (d) => deltas.push(d));
    const final = await runner.finalChatCompletion();
    assert.match(final.choices[0].message.content, /toolgate demo model\. You said: tell me something/);
    assert.ok(deltas.length > 5, 'streamed word by word');
    assert.equal(final.choices[0].finish_reason, 'stop');
  });

  test('streamed tool-call fragments reassemble in the SDK', async () => {
    const runner = client.chat.completions.stream({
      model: 'toolgate-demo',
      messages: [{ role: 'user', content: 'what is the weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    });
    const final = await runner.finalChatCompletion();
    const call = final.choices[0].message.tool_calls[0];
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
  });

  test('models.list and models.retrieve', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes('toolgate-demo'));
    assert.ok(ids.includes('mock-ok'));
    const m = await client.models.retrieve('toolgate-demo');
    assert.equal(m.owned_by, 'toolgate-demo');
  });

  test('embeddings.create (the SDK asks for base64 and decodes it)', async () => {
    const r = await client.embeddings.create({ model: 'toolgate-demo', input: ['hello', 'world'] });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[0].embedding.length, 16);
    const norm = Math.sqrt(r.data[0].embedding.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-3, `unit vector, norm ${norm}`);
    const again = await client.embeddings.create({ model: 'toolgate-demo', input: 'hello' });
    assert.deepEqual(again.data[0].embedding, r.data[0].embedding, 'deterministic');
    const up = await client.embeddings.create({ model: 'text-embedding-fake', input: 'x', encoding_format: 'float' });
    assert.deepEqual(up.data[0].embedding, [0.1, 0.2, 0.3]);
  });

  test('errors surface as the SDK\'s APIError subclasses', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'mock-500', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.APIError && e.status === 502 && e.type === 'upstream_error',
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'mock-ok', messages: [] }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400,
    );
  });
});
