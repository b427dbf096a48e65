// The Anthropic Messages API as an ingress (POST /v1/messages, /v1/messages/count_tokens), end to
// end: the official `@anthropic-ai/sdk`, unchanged but for baseURL, talks to the real binary;
// toolgate translates to a chat body and runs it through the chat route's machinery against an
// OpenAI-shaped and an Anthropic-shaped fake upstream (in this process, so the tests see what each
// received), the agent loop with the official filesystem MCP server, client tools (tool_use out,
// tool_result back), sessions, keys and limits, and the offline default config. Everything a test
// starts is stopped when it ends, also when it fails.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, realpathSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, serversUp, repoRoot, toolgateBin, cleanup, assertClean, cleanGateway as gateway, startOfflineDemo } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { startFakeAnthropic } from './lib/fake_native.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const filesystem = join(here, 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');

const sdk = (gw, apiKey = 'client-key') => new Anthropic({ baseURL: gw.url, apiKey, maxRetries: 0, timeout: 20000 });
const noMcp = { headers: { 'x-toolgate-mcp-servers': 'none' } };
const why = (gw) => `\n--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;

// The chat requests an OpenAI-shaped fake received.
const chats = (up) => up.state.requests.filter((r) => r.url.endsWith('/chat/completions'));

// A MessageStream run to its end: every event (pings included), the text deltas, the final message.
async function runStream(stream) {
  const events = [];
  const texts = [];
  stream.on('streamEvent', (e) => events.push(e));
  stream.on('text', (d) => texts.push(d));
  const final = await stream.finalMessage();
  return { events, texts, final, types: events.map((e) => e.type) };
}

// The raw Messages endpoint with fetch: status, parsed body, raw text.
async function post(gw, path, body, headers = {}) {
  const res = await fetch(gw.url + path, {
    method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const raw = await res.text();
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, raw };
}

// An error in Anthropic's shape: exactly {type: "error", error: {type, message}}.
function assertAnthropicError(r, status, type, message, gw) {
  assert.equal(r.status, status, r.raw + why(gw));
  assert.equal(r.json?.type, 'error', r.raw);
  assert.equal(r.json.error.type, type, r.raw);
  assert.equal(typeof r.json.error.message, 'string', r.raw);
  if (message) assert.match(r.json.error.message, message);
}

// The text of a native Messages content (a string or text blocks).
const textOf = (c) => (typeof c === 'string' ? c : c.filter((b) => b.type === 'text').map((b) => b.text).join(''));

// A 1x1 transparent PNG.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

const weatherTool = {
  name: 'get_weather', description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

// ---------------------------------------------------------------------------------------------------

describe('Messages API: both upstream shapes, the agent loop, client tools (one gateway)', () => {
  let up, anth, gw, client, dir, file;
  const NOTE = 'the note says: forty-two';

  before(async () => {
    [up, anth] = await Promise.all([startFakeUpstream(), startFakeAnthropic()]);
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'toolgate-messages-')));
    file = join(dir, 'note.txt');
    writeFileSync(file, NOTE);
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, timeout: 20s, models: [mock-ok, mock-stream, mock-agent, mock-500, mock-garbage] }
  - { name: claude, type: anthropic, base_url: "${anth.url}", api_key: sk-ant-fake, timeout: 20s, models: [claude-agent, claude-429], max_tokens: 512 }
mcp_servers:
  - { name: fs, command: node, args: ["${filesystem}", "${dir}"], timeout: 20s }
agent_loop: { tool_timeout: 10s, keepalive_interval: 200ms }
`);
    await serversUp(gw);
    client = sdk(gw);
  });
  after(async () => {
    try {
      await gw?.stop();
      if (gw) assertClean(gw);
    } finally {
      await Promise.all([up?.close(), anth?.close()]);
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  test('create: a text answer from an OpenAI-shaped upstream, which got the translated chat body', async () => {
    const seen = chats(up).length;
    const msg = await client.messages.create({
      model: 'mock-ok', max_tokens: 100,
      // Text blocks with cache_control, as clients that cache prompts send them.
      system: [{ type: 'text', text: 'Be brief.' }, { type: 'text', text: 'Answer in English.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi there', cache_control: { type: 'ephemeral' } }] }],
      stop_sequences: ['END'], metadata: { user_id: 'user-42' },
      temperature: 0.2, top_p: 0.9, top_k: 5,
    }, noMcp);
    assert.match(msg.id, /^msg_/);
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'mock-ok');
    assert.deepEqual(msg.content, [{ type: 'text', text: 'reply from mock-ok' }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.stop_sequence, null);
    assert.deepEqual(msg.usage, { input_tokens: 11, output_tokens: 7 });

    assert.equal(chats(up).length, seen + 1);
    const sent = chats(up)[seen];
    assert.equal(sent.headers.authorization, 'Bearer sk-upstream', 'the provider\'s key, not the client\'s');
    assert.equal(sent.headers['x-api-key'], undefined);
    const b = sent.body;
    assert.equal(b.model, 'mock-ok');
    assert.deepEqual(b.messages, [
      { role: 'system', content: 'Be brief.\nAnswer in English.' },
      { role: 'user', content: 'hi there' },
    ]);
    assert.equal(b.max_tokens, 100);
    assert.deepEqual(b.stop, ['END']);
    assert.equal(b.user, 'user-42');
    assert.equal(b.temperature, 0.2);
    assert.equal(b.top_p, 0.9);
    for (const dropped of ['top_k', 'metadata', 'system', 'stop_sequences', 'stream'])
      assert.equal(b[dropped], undefined, `${dropped} is not sent on`);
  });

  test('stream: Anthropic events in order; the SDK\'s MessageStream assembles text and usage', async () => {
    const seen = chats(up).length;
    const { texts, types, events, final } = await runStream(client.messages.stream({
      model: 'mock-stream', max_tokens: 50, system: 'Be brief.', messages: [{ role: 'user', content: 'stream please' }],
    }, noMcp));
    assert.deepEqual(texts, ['Hello', ' from', ' the', ' fake', ' upstream']);
    assert.deepEqual(types.filter((t) => t !== 'ping'), ['message_start', 'content_block_start',
      'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_delta',
      'content_block_stop', 'message_delta', 'message_stop']);
    assert.match(events[0].message.id, /^msg_/);
    assert.deepEqual(events[1].content_block, { type: 'text', text: '' });
    assert.ok(events.filter((e) => e.type === 'content_block_delta').every((e) => e.index === 0 && e.delta.type === 'text_delta'));
    assert.equal(final.role, 'assistant');
    assert.deepEqual(final.content.map(({ type, text }) => ({ type, text })), [{ type: 'text', text: 'Hello from the fake upstream' }]);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.input_tokens, 5);
    assert.equal(final.usage.output_tokens, 5);

    const b = chats(up)[seen].body;
    assert.equal(b.stream, true);
    assert.deepEqual(b.stream_options, { include_usage: true });
    assert.equal(b.max_tokens, 50);
    assert.deepEqual(b.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'stream please' }]);

    // On the wire: text/event-stream, each event's name is its data's type.
    const res = await fetch(gw.url + '/v1/messages', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'none' },
      body: JSON.stringify({ model: 'mock-stream', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'raw' }] }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const blocks = (await res.text()).split('\n\n').filter((x) => x.trim());
    assert.ok(blocks.length >= 10, blocks.join('\n\n'));
    for (const block of blocks) {
      const m = /^event: (\w+)\ndata: (.*)$/.exec(block);
      assert.ok(m, `a well-formed event: ${JSON.stringify(block)}`);
      assert.equal(JSON.parse(m[2]).type, m[1]);
    }
    assert.ok(!blocks.some((x) => x.includes('[DONE]')), 'no OpenAI terminator leaks into the Messages stream');
  });

  test('an Anthropic-shaped upstream, created and streamed; the adapter sent a native Messages body', async () => {
    const seen = anth.state.requests.length;
    const msg = await client.messages.create({
      model: 'claude-agent', max_tokens: 64, system: 'Be brief.',
      messages: [{ role: 'user', content: 'hi there' }],
      stop_sequences: ['END'], metadata: { user_id: 'user-7' }, temperature: 0.5,
    }, noMcp);
    assert.deepEqual(msg.content, [{ type: 'text', text: 'no tools needed: hi there' }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.model, 'claude-agent');
    assert.deepEqual(msg.usage, { input_tokens: 11, output_tokens: 7 });
    const sent = anth.state.requests[seen];
    assert.equal(sent.url, '/v1/messages');
    assert.equal(sent.headers['x-api-key'], 'sk-ant-fake', 'the provider\'s key, not the client\'s');
    assert.ok(sent.headers['anthropic-version']);
    assert.equal(textOf(sent.body.system), 'Be brief.');
    assert.equal(sent.body.max_tokens, 64, 'the client\'s max_tokens, not the provider default');
    assert.deepEqual(sent.body.stop_sequences, ['END']);
    assert.deepEqual(sent.body.metadata, { user_id: 'user-7' });
    assert.equal(sent.body.temperature, 0.5);
    assert.deepEqual(sent.body.messages.map((m) => [m.role, textOf(m.content)]), [['user', 'hi there']]);

    const { texts, types, final } = await runStream(client.messages.stream({
      model: 'claude-agent', max_tokens: 64, messages: [{ role: 'user', content: 'stream me' }],
    }, noMcp));
    assert.equal(texts.join(''), 'no tools needed: stream me');
    assert.ok(texts.length > 1, 'streamed in pieces');
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.input_tokens, 11);
    assert.equal(final.usage.output_tokens, 7);
    assert.equal(anth.state.requests.at(-1).body.stream, true);
  });

  test('agent loop, not streamed: the filesystem MCP tool runs in the gateway; the SDK gets only the answer', async () => {
    const seen = chats(up).length;
    const ask = `call fs__read_text_file ${JSON.stringify({ path: file })}`;
    const msg = await client.messages.create({ model: 'mock-agent', max_tokens: 200, messages: [{ role: 'user', content: ask }] });
    assert.deepEqual(msg.content, [{ type: 'text', text: `Tool results: ${NOTE}` }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.deepEqual(msg.usage, { input_tokens: 22, output_tokens: 14 }, 'usage summed over both turns');
    assert.equal(msg.toolgate.iterations, 2);
    assert.deepEqual(msg.toolgate.tool_calls.map((c) => [c.name, c.ok]), [['fs__read_text_file', true]]);

    const reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 2);
    assert.ok(reqs[0].body.tools.some((t) => t.function.name === 'fs__read_text_file'), 'the MCP tools were offered');
    const m = reqs[1].body.messages;
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'tool']);
    assert.equal(m[2].tool_call_id, m[1].tool_calls[0].id);
    assert.equal(m[2].content, NOTE);

    // The same loop through the Anthropic adapter: the same answer; the model saw a tool_result.
    const seenA = anth.state.requests.length;
    const viaClaude = await client.messages.create({ model: 'claude-agent', max_tokens: 200, messages: [{ role: 'user', content: ask }] });
    assert.deepEqual(viaClaude.content, [{ type: 'text', text: `Tool results: ${NOTE}` }]);
    const native = anth.state.requests.slice(seenA);
    assert.equal(native.length, 2);
    const toolUse = native[1].body.messages[1].content.find((b) => b.type === 'tool_use');
    const toolResult = native[1].body.messages[2].content.find((b) => b.type === 'tool_result');
    assert.equal(toolUse.name, 'fs__read_text_file');
    assert.equal(toolResult.tool_use_id, toolUse.id);
  });

  test('agent loop, streamed: one message, the final text, tool progress as pings, no tool_use blocks', async () => {
    const ask = `call fs__read_text_file ${JSON.stringify({ path: file })}`;
    const { texts, types, events, final } = await runStream(client.messages.stream({
      model: 'mock-agent', max_tokens: 200, messages: [{ role: 'user', content: ask }],
    }));
    assert.equal(texts.join(''), `Tool results: ${NOTE}`);
    assert.equal(types.filter((t) => t === 'message_start').length, 1);
    assert.equal(types.filter((t) => t === 'message_stop').length, 1);
    assert.equal(types.at(-1), 'message_stop');
    assert.ok(!events.some((e) => e.type === 'content_block_start' && e.content_block.type !== 'text'),
      'the gateway\'s own tool calls never reach the client');
    assert.deepEqual(final.content.map((b) => b.type), ['text']);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.input_tokens, 22);
    assert.equal(final.usage.output_tokens, 14);

    // On the wire (the SDK drops pings): the tool's progress became ping events after message_start.
    const raw = await fetch(gw.url + '/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-agent', max_tokens: 200, stream: true, messages: [{ role: 'user', content: ask }] }) });
    const names = (await raw.text()).split('\n\n').filter((x) => x.trim()).map((x) => /^event: (\w+)/.exec(x)?.[1]);
    assert.equal(names[0], 'message_start');
    assert.ok(names.indexOf('ping') > 0 && names.indexOf('ping') < names.indexOf('content_block_start'), names.join(','));
    assert.ok(!names.includes(undefined), 'only named events, no bare SSE comments');
  });

  test('client tool round trip: tool_use streamed out (input_json_delta), tool_result back as a tool message', async () => {
    const seen = chats(up).length;
    const first = [{ role: 'user', content: 'call get_weather {"city":"Oslo"}' }];
    const { events, final } = await runStream(client.messages.stream({
      model: 'mock-agent', max_tokens: 200, tools: [weatherTool], tool_choice: { type: 'auto' }, messages: first,
    }));
    const start = events.find((e) => e.type === 'content_block_start');
    assert.equal(start.content_block.type, 'tool_use');
    assert.equal(start.content_block.name, 'get_weather');
    const pieces = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta);
    assert.ok(pieces.length >= 2 && pieces.every((d) => d.type === 'input_json_delta'), JSON.stringify(pieces));
    assert.equal(final.stop_reason, 'tool_use');
    assert.equal(final.content.length, 1);
    const use = final.content[0];
    assert.equal(use.type, 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { city: 'Oslo' });
    assert.ok(use.id);

    const b1 = chats(up)[seen].body;
    assert.deepEqual(b1.tools.find((t) => t.function.name === 'get_weather'),
      { type: 'function', function: { name: 'get_weather', description: weatherTool.description, parameters: weatherTool.input_schema } });
    assert.ok(b1.tools.some((t) => t.function.name === 'fs__read_text_file'), 'the MCP tools are offered beside it');
    assert.equal(b1.tool_choice, 'auto');

    // The follow-up, as the SDK's docs write it: the assistant turn as received, then the result.
    const seen2 = chats(up).length;
    const msg = await client.messages.create({
      model: 'mock-agent', max_tokens: 200, tools: [weatherTool],
      messages: [...first, { role: 'assistant', content: final.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny, 21 C' }] }],
    });
    assert.deepEqual(msg.content, [{ type: 'text', text: 'Tool results: sunny, 21 C' }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(chats(up).length, seen2 + 1);
    const m = chats(up)[seen2].body.messages;
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'tool']);
    assert.equal(m[1].tool_calls.length, 1);
    assert.equal(m[1].tool_calls[0].id, use.id);
    assert.equal(m[1].tool_calls[0].type, 'function');
    assert.equal(m[1].tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(m[1].tool_calls[0].function.arguments), { city: 'Oslo' });
    assert.deepEqual(m[2], { role: 'tool', tool_call_id: use.id, content: 'sunny, 21 C' });
  });

  test('tool_result with is_error and text in the same turn; tool_choice tool with disable_parallel_tool_use', async () => {
    const seen = chats(up).length;
    const msg = await client.messages.create({
      model: 'mock-agent', max_tokens: 200, tools: [weatherTool],
      tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true },
      messages: [
        { role: 'user', content: 'weather in Atlantis?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Let me look.' },
          { type: 'tool_use', id: 'toolu_client_1', name: 'get_weather', input: { city: 'Atlantis' } }] },
        { role: 'user', content: [
          { type: 'tool_result', tool_use_id: 'toolu_client_1', is_error: true, content: [{ type: 'text', text: 'city not found' }] },
          { type: 'text', text: 'try Paris then' }] },
      ],
    }, noMcp);
    assert.deepEqual(msg.content, [{ type: 'text', text: 'no tools needed: try Paris then' }]);
    const b = chats(up)[seen].body;
    assert.deepEqual(b.messages, [
      { role: 'user', content: 'weather in Atlantis?' },
      { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'toolu_client_1', type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Atlantis"}' } }] },
      { role: 'tool', tool_call_id: 'toolu_client_1', content: 'Error: city not found' },
      { role: 'user', content: 'try Paris then' },
    ]);
    assert.deepEqual(b.tool_choice, { type: 'function', function: { name: 'get_weather' } });
    assert.equal(b.parallel_tool_calls, false);
  });

  test('hybrid: the MCP call runs in the gateway, the client tool comes back; the follow-up finishes the loop', async () => {
    const first = [{ role: 'user', content: `call fs__read_text_file ${JSON.stringify({ path: file })}\ncall get_weather {"city":"Paris"}` }];
    const r = await client.messages.create({ model: 'mock-agent', max_tokens: 200, tools: [weatherTool], messages: first });
    assert.equal(r.stop_reason, 'tool_use');
    assert.deepEqual(r.content.map((b) => [b.type, b.name, b.input]), [['tool_use', 'get_weather', { city: 'Paris' }]]);
    assert.deepEqual(r.toolgate.tool_calls.map((c) => c.name), ['fs__read_text_file']);
    const seen = chats(up).length;
    const msg = await client.messages.create({
      model: 'mock-agent', max_tokens: 200, tools: [weatherTool],
      messages: [...first, { role: 'assistant', content: r.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: r.content[0].id, content: 'rainy' }] }],
    });
    assert.deepEqual(msg.content, [{ type: 'text', text: `Tool results: ${NOTE} | rainy` }]);
    const sent = chats(up)[seen].body.messages;
    assert.equal(sent[1].tool_calls.length, 2, 'the model sees its full earlier turn again, the MCP call included');
  });

  test('image blocks reach the upstream as image_url parts (base64 as a data: URL, a url as it is)', async () => {
    const seen = chats(up).length;
    const msg = await client.messages.create({
      model: 'mock-ok', max_tokens: 30,
      messages: [{ role: 'user', content: [
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
        { type: 'image', source: { type: 'url', url: 'https://example.com/cat.png' } },
        { type: 'text', text: 'What is in these?' },
      ] }],
    }, noMcp);
    assert.deepEqual(msg.content, [{ type: 'text', text: 'reply from mock-ok' }]);
    assert.deepEqual(chats(up)[seen].body.messages, [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
      { type: 'text', text: 'What is in these?' },
    ] }]);
  });

  test('errors in Anthropic\'s shape, raised by the SDK as its error classes; refused requests reach no upstream', async () => {
    const seen = chats(up).length + anth.state.requests.length;
    const user = [{ role: 'user', content: 'x' }];
    // Missing max_tokens.
    await assert.rejects(client.messages.create({ model: 'mock-ok', messages: user }),
      (e) => e instanceof Anthropic.BadRequestError && e.status === 400 && e.type === 'invalid_request_error' && /max_tokens/.test(e.message));
    // An unknown top-level field.
    await assert.rejects(client.messages.create({ model: 'mock-ok', max_tokens: 5, messages: user, frobnicate: true }),
      (e) => e instanceof Anthropic.BadRequestError && e.type === 'invalid_request_error' && /frobnicate: Extra inputs are not permitted/.test(e.message));
    // Anthropic's server tools and the MCP connector.
    await assert.rejects(client.messages.create({ model: 'mock-ok', max_tokens: 5, messages: user,
      tools: [{ type: 'web_search_20250305', name: 'web_search' }] }),
    (e) => e instanceof Anthropic.BadRequestError && /web_search_20250305/.test(e.message));
    await assert.rejects(client.messages.create({ model: 'mock-ok', max_tokens: 5, messages: user,
      mcp_servers: [{ type: 'url', url: 'https://mcp.example.com/sse', name: 'x' }] }),
    (e) => e instanceof Anthropic.BadRequestError && /mcp_servers/.test(e.message));
    assert.equal(chats(up).length + anth.state.requests.length, seen, 'nothing refused reached an upstream');
    // An unknown model.
    await assert.rejects(client.messages.create({ model: 'no-such-model', max_tokens: 5, messages: user }),
      (e) => e instanceof Anthropic.NotFoundError && e.status === 404 && e.type === 'not_found_error');
    // Upstream failures: a 500 (the gateway's 502) and a 429 of the Anthropic-shaped upstream.
    await assert.rejects(client.messages.create({ model: 'mock-500', max_tokens: 5, messages: user }, noMcp),
      (e) => e instanceof Anthropic.InternalServerError && e.status === 502 && e.type === 'api_error');
    await assert.rejects(client.messages.create({ model: 'claude-429', max_tokens: 5, messages: user }, noMcp),
      (e) => e instanceof Anthropic.RateLimitError && e.type === 'rate_limit_error' && e.headers.get('retry-after') === '7');
    // On the wire: exactly Anthropic's error object; a stream refused before it began is one too.
    const raw = await post(gw, '/v1/messages', { model: 'mock-ok', messages: user });
    assertAnthropicError(raw, 400, 'invalid_request_error', /max_tokens/, gw);
    assert.deepEqual(Object.keys(raw.json).sort(), ['error', 'type']);
    const rawStream = await post(gw, '/v1/messages', { model: 'no-such-model', max_tokens: 5, stream: true, messages: user });
    assertAnthropicError(rawStream, 404, 'not_found_error', null, gw);
    const badJson = await post(gw, '/v1/messages', '{"model": ');
    assertAnthropicError(badJson, 400, 'invalid_request_error', null, gw);

    // A failure after the stream began: the text so far, then one error event and nothing after it.
    const broken = await post(gw, '/v1/messages', { model: 'mock-garbage', max_tokens: 5, stream: true, messages: user }, noMcp.headers);
    assert.equal(broken.status, 200);
    const evs = broken.raw.split('\n\n').filter((x) => x.trim()).map((x) => JSON.parse(/^data: (.*)$/m.exec(x)[1]));
    assert.deepEqual(evs.map((e) => e.type), ['message_start', 'content_block_start', 'content_block_delta', 'error'], broken.raw);
    assert.equal(evs[2].delta.text, 'ok');
    assert.equal(evs[3].error.type, 'api_error');
    assert.match(evs[3].error.message, /malformed/);
    const texts = [];
    await assert.rejects(client.messages.stream({ model: 'mock-garbage', max_tokens: 5, messages: user }, noMcp).on('text', (d) => texts.push(d)).finalMessage(),
      (e) => e instanceof Anthropic.APIError && e.type === 'api_error');
    assert.deepEqual(texts, ['ok']);
  });

  test('count_tokens: an estimate that grows with the request; nothing reaches an upstream', async () => {
    const seen = up.state.requests.length + anth.state.requests.length;
    const count = (params) => client.messages.countTokens(params);
    const small = await count({ model: 'mock-ok', messages: [{ role: 'user', content: 'hi' }] });
    assert.deepEqual(Object.keys(small), ['input_tokens']);
    assert.ok(Number.isInteger(small.input_tokens) && small.input_tokens > 0, JSON.stringify(small));
    const long = await count({ model: 'mock-ok', messages: [{ role: 'user', content: 'hi '.repeat(400) }] });
    assert.ok(long.input_tokens > small.input_tokens + 100, `${long.input_tokens} vs ${small.input_tokens}`);
    const withSystem = await count({ model: 'mock-ok', system: 'You are a careful assistant who answers in French.', messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(withSystem.input_tokens > small.input_tokens, 'the system prompt counts');
    const withTools = await count({ model: 'mock-ok', tools: [weatherTool], messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(withTools.input_tokens > small.input_tokens, 'the tools count');
    assert.equal(up.state.requests.length + anth.state.requests.length, seen, 'counting asks no upstream');
    await assert.rejects(count({ model: 'mock-ok', messages: [{ role: 'user', content: 'hi' }], frobnicate: 1 }),
      (e) => e instanceof Anthropic.BadRequestError && e.type === 'invalid_request_error');
  });
});

// ---------------------------------------------------------------------------------------------------

// An OpenAI-shaped upstream whose answers end with the finish reason the last user message names
// ("finish length"), streamed or not; records what it received.
async function startFinishUpstream() {
  const state = { requests: [] };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const body = JSON.parse(raw);
      state.requests.push(body);
      const finish = /^finish (\w+)$/.exec(body.messages.at(-1).content)?.[1] ?? 'stop';
      const usage = { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 };
      const base = { id: 'chatcmpl-finish', created: 1, model: body.model };
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ ...base, object: 'chat.completion', usage,
          choices: [{ index: 0, message: { role: 'assistant', content: 'partial' }, finish_reason: finish, logprobs: null }] }));
      }
      const ev = (o) => `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', ...o })}\n\n`;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(ev({ choices: [{ index: 0, delta: { role: 'assistant', content: 'partial' }, finish_reason: null }] })
        + ev({ choices: [{ index: 0, delta: {}, finish_reason: finish }] })
        + (body.stream_options?.include_usage ? ev({ choices: [], usage }) : '') + 'data: [DONE]\n\n');
    });
  });
  server.on('connection', (c) => { sockets.add(c); c.on('close', () => sockets.delete(c)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    state, url: `http://127.0.0.1:${server.address().port}/v1`,
    close: async () => { for (const c of sockets) c.destroy(); await new Promise((r) => server.close(r)); },
  };
}

describe('Messages API stop reasons', () => {
  test('the upstream\'s finish reason maps to stop_reason (length: max_tokens, content_filter: refusal), streamed or not', async (t) => {
    const defer = cleanup(t);
    const up = await startFinishUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", models: [mock-finish] }
`);
    const client = sdk(gw);
    for (const [finish, stop] of [['length', 'max_tokens'], ['content_filter', 'refusal'], ['stop', 'end_turn']]) {
      const params = { model: 'mock-finish', max_tokens: 4, messages: [{ role: 'user', content: `finish ${finish}` }] };
      const msg = await client.messages.create(params);
      assert.equal(msg.stop_reason, stop, `${finish}, not streamed`);
      assert.deepEqual(msg.content, [{ type: 'text', text: 'partial' }]);
      assert.deepEqual(msg.usage, { input_tokens: 3, output_tokens: 4 });
      const { final, texts } = await runStream(client.messages.stream(params));
      assert.equal(final.stop_reason, stop, `${finish}, streamed`);
      assert.deepEqual(texts, ['partial']);
      assert.equal(final.usage.output_tokens, 4);
    }
    assert.equal(up.state.requests.length, 6);
    assert.ok(up.state.requests.every((b) => b.max_tokens === 4));
  });
});

describe('Messages API with virtual keys', () => {
  test('401 AuthenticationError for a wrong or missing x-api-key, 403 for a model the key may not use, 429 RateLimitError past requests_per_minute', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, models: [mock-ok, mock-other] }
state: { persist: false }
auth: { required: true }
keys:
  - { name: one, key: sk-one-messages, limits: { requests_per_minute: 1 } }
  - { name: narrow, key: sk-narrow-messages, models: [mock-other] }
`);
    const params = { model: 'mock-ok', max_tokens: 10, messages: [{ role: 'user', content: 'hello' }] };
    await assert.rejects(sdk(gw, 'sk-wrong').messages.create(params),
      (e) => e instanceof Anthropic.AuthenticationError && e.status === 401 && e.type === 'authentication_error');
    await assert.rejects(sdk(gw, 'sk-wrong').messages.countTokens({ model: 'mock-ok', messages: params.messages }),
      (e) => e instanceof Anthropic.AuthenticationError && e.type === 'authentication_error');
    const none = await post(gw, '/v1/messages', params);
    assertAnthropicError(none, 401, 'authentication_error', null, gw);
    // A key limited to other models: 403 permission_error.
    await assert.rejects(sdk(gw, 'sk-narrow-messages').messages.create(params),
      (e) => e instanceof Anthropic.PermissionDeniedError && e.status === 403 && e.type === 'permission_error' && /mock-ok/.test(e.message));
    assert.equal(chats(up).length, 0, 'no upstream call without a valid key');

    const ok = await sdk(gw, 'sk-one-messages').messages.create(params);
    assert.deepEqual(ok.content, [{ type: 'text', text: 'reply from mock-ok' }]);
    await assert.rejects(sdk(gw, 'sk-one-messages').messages.create(params),
      (e) => e instanceof Anthropic.RateLimitError && e.status === 429 && e.type === 'rate_limit_error'
        && /requests_per_minute/.test(e.message) && Number(e.headers.get('retry-after')) > 0);
    await assert.rejects(sdk(gw, 'sk-one-messages').messages.stream(params).finalMessage(),
      (e) => e instanceof Anthropic.RateLimitError && e.type === 'rate_limit_error');
    assert.equal(chats(up).length, 1);
  });
});

describe('Messages API with sessions', () => {
  test('x-session-id: each turn sends only its new message; the upstream sees the whole conversation', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, models: [mock-ok, mock-stream] }
state: { persist: false }
sessions: { store: memory }
`);
    const client = sdk(gw);
    const opts = { headers: { 'x-session-id': 'claude-conv-1' } };
    const pairs = (ms) => ms.map((m) => [m.role, m.content]);

    const { data: one, response } = await client.messages.create({ model: 'mock-ok', max_tokens: 20, system: 'Be terse.',
      messages: [{ role: 'user', content: 'What is two plus two?' }] }, opts).withResponse();
    assert.equal(response.headers.get('x-session-id'), 'claude-conv-1');
    assert.deepEqual(one.content, [{ type: 'text', text: 'reply from mock-ok' }]);

    // Turn 2, streamed.
    const two = await runStream(client.messages.stream({ model: 'mock-stream', max_tokens: 20,
      messages: [{ role: 'user', content: 'And times three?' }] }, opts));
    assert.equal(two.texts.join(''), 'Hello from the fake upstream');
    assert.deepEqual(pairs(chats(up)[1].body.messages), [
      ['system', 'Be terse.'], ['user', 'What is two plus two?'], ['assistant', 'reply from mock-ok'], ['user', 'And times three?']]);

    // Turn 3 sees the streamed answer of turn 2.
    await client.messages.create({ model: 'mock-ok', max_tokens: 20, messages: [{ role: 'user', content: 'Thanks.' }] }, opts);
    assert.deepEqual(pairs(chats(up)[2].body.messages).slice(-3), [
      ['user', 'And times three?'], ['assistant', 'Hello from the fake upstream'], ['user', 'Thanks.']]);
    const g = await (await fetch(`${gw.url}/v1/sessions/claude-conv-1`)).json();
    assert.equal(g.message_count, 7, JSON.stringify(g));
  });
});

describe('Messages API on the offline default config (examples/gateway.yaml, no upstream)', () => {
  let gw;
  before(async () => {
    gw = await startOfflineDemo();
  });
  after(async () => {
    await gw?.stop();
    if (gw) assertClean(gw);
  });

  test('the demo model calls the built-in demo MCP server (streamed); a declared client tool comes back as tool_use', async () => {
    const client = sdk(gw, 'unused');
    const { texts, final } = await runStream(client.messages.stream({
      model: 'toolgate-demo', max_tokens: 100, messages: [{ role: 'user', content: 'what time is it?' }],
    }));
    assert.match(texts.join(''), /^The tool returned: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000 \(UTC\)$/);
    assert.ok(texts.length > 1, 'streamed in pieces');
    assert.equal(final.stop_reason, 'end_turn');

    const msg = await client.messages.create({
      model: 'toolgate-demo', max_tokens: 100, tools: [weatherTool], messages: [{ role: 'user', content: 'weather?' }],
    });
    assert.equal(msg.stop_reason, 'tool_use');
    assert.deepEqual(msg.content.map((b) => [b.type, b.name, b.input]), [['tool_use', 'get_weather', { city: 'Paris' }]]);
    assert.match(msg.content[0].id, /\S/);
  });
});
