// The OpenAI Responses API as an ingress (POST /v1/responses, GET and DELETE /v1/responses/{id},
// GET /v1/responses/{id}/input_items), end to end: the official `openai` SDK, unchanged but for
// baseURL, talks to the real binary; toolgate translates each request to a chat body and runs it
// through the chat route's machinery against an OpenAI-shaped fake upstream in this process (so the
// tests see what it received), the agent loop with the official filesystem MCP server named by an
// `mcp` tool, client function tools (function_call out, function_call_output back, with
// previous_response_id or the whole history), stored responses (memory, keys, SQLite across a
// restart) and the offline default config. Everything a test starts is stopped when it ends, also
// when it fails.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, realpathSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startGateway, serversUp, repoRoot, toolgateBin, cleanup, assertClean, cleanGateway as gateway, startOfflineDemo } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { sqlite } from './lib/state_peers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const filesystem = join(here, 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');

const sdk = (gw, apiKey = 'client-key') => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0, timeout: 20000 });
const noMcp = { headers: { 'x-toolgate-mcp-servers': 'none' } };
const why = (gw) => `\n--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;

// The chat requests the OpenAI-shaped fake received.
const chats = (up) => up.state.requests.filter((r) => r.url.endsWith('/chat/completions'));

// A ResponseStream run to its end: every event, the text deltas, the final Response.
async function runStream(stream) {
  const events = [];
  const texts = [];
  stream.on('event', (e) => events.push(e));
  stream.on('response.output_text.delta', (e) => texts.push(e.delta));
  const final = await stream.finalResponse();
  return { events, texts, final, types: events.map((e) => e.type) };
}

// A raw request with fetch: status, parsed body, raw text.
async function call(gw, method, path, body, headers = {}) {
  const res = await fetch(gw.url + path, {
    method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const raw = await res.text();
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, raw };
}

// A streamed POST /v1/responses on the wire: the SSE blocks split into named events and comments.
async function rawStream(gw, body, headers = {}) {
  const r = await call(gw, 'POST', '/v1/responses', { ...body, stream: true }, headers);
  const blocks = r.raw.split('\n\n').filter((x) => x.trim());
  const comments = blocks.filter((b) => b.startsWith(':'));
  const events = blocks.filter((b) => !b.startsWith(':')).map((b) => {
    const m = /^event: ([\w.]+)\ndata: (.*)$/.exec(b);
    assert.ok(m, `a well-formed event: ${JSON.stringify(b)}`);
    return { name: m[1], data: JSON.parse(m[2]) };
  });
  return { ...r, blocks, comments, events };
}

// An error in OpenAI's shape: exactly {error: {message, type, param, code}}.
function assertOpenAIError(r, status, { param, code, message } = {}, gw) {
  assert.equal(r.status, status, r.raw + why(gw));
  assert.deepEqual(Object.keys(r.json ?? {}), ['error'], r.raw);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type'], r.raw);
  assert.equal(typeof r.json.error.message, 'string', r.raw);
  assert.equal(typeof r.json.error.type, 'string', r.raw);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.raw);
  if (code !== undefined) assert.equal(r.json.error.code, code, r.raw);
  if (message) assert.match(r.json.error.message, message);
}

const notFound = (e) => e instanceof OpenAI.NotFoundError && e.status === 404;

// A key of AWS's documented shape that is not their documentation placeholder (secret-scan blocks it).
const AWS_KEY = 'AKIA' + 'Z7QK3VXRM2PLN4TB';

// A 1x1 transparent PNG.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

const weatherTool = {
  type: 'function', name: 'get_weather', description: 'The weather in a city', strict: false,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

// A Response's output without the `parsed` field the SDK's stream helper adds to output_text parts.
const withoutParsed = (output) => output.map((o) => (o.type === 'message'
  ? { ...o, content: o.content.map(({ parsed, ...c }) => c) } : o));

// The Responses events of one text answer, in order (n text deltas).
// The MCP items of a loop that ran one call: the tools listed, then the call.
const mcpEvents = ['response.output_item.added', 'response.mcp_list_tools.in_progress', 'response.mcp_list_tools.completed',
  'response.output_item.done', 'response.output_item.added', 'response.mcp_call.in_progress', 'response.mcp_call_arguments.delta',
  'response.mcp_call_arguments.done', 'response.mcp_call.completed', 'response.output_item.done'];
const textEvents = (n) => ['response.created', 'response.in_progress', 'response.output_item.added',
  'response.content_part.added', ...Array(n).fill('response.output_text.delta'), 'response.output_text.done',
  'response.content_part.done', 'response.output_item.done', 'response.completed'];

// ---------------------------------------------------------------------------------------------------

describe('Responses API: one gateway, an OpenAI-shaped upstream, two filesystem MCP servers', () => {
  let up, gw, client, dir, notesDir, file, notesFile;
  const NOTE = 'the note says: forty-two';
  const OTHER = 'the other note says: seven';

  before(async () => {
    up = await startFakeUpstream();
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'toolgate-responses-')));
    notesDir = realpathSync(mkdtempSync(join(tmpdir(), 'toolgate-responses-notes-')));
    file = join(dir, 'note.txt');
    notesFile = join(notesDir, 'other.txt');
    writeFileSync(file, NOTE);
    writeFileSync(notesFile, OTHER);
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, timeout: 20s, models: [mock-ok, mock-stream, mock-agent, mock-garbage] }
mcp_servers:
  - { name: fs, command: node, args: ["${filesystem}", "${dir}"], timeout: 20s }
  - { name: notes, command: node, args: ["${filesystem}", "${notesDir}"], timeout: 20s }
agent_loop: { tool_timeout: 10s, keepalive_interval: 200ms }
plugins:
  - { name: secret-scan, config: { action: block } }
`);
    await serversUp(gw);
    client = sdk(gw);
  });
  after(async () => {
    try {
      await gw?.stop();
      if (gw) assertClean(gw);
    } finally {
      await up?.close();
      for (const d of [dir, notesDir]) if (d) rmSync(d, { recursive: true, force: true });
    }
  });

  test('create: a string input with instructions; the upstream got the translated chat body; the Response has OpenAI\'s shape', async () => {
    const seen = chats(up).length;
    const before = Math.floor(Date.now() / 1000);
    const r = await client.responses.create({
      model: 'mock-ok', instructions: 'Be brief.', input: 'hi there',
      max_output_tokens: 100, temperature: 0.2, top_p: 0.9, user: 'user-42',
      metadata: { ticket: 'T-1' }, reasoning: { effort: 'low' },
    }, noMcp);
    assert.match(r.id, /^resp_\w+$/);
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.incomplete_details, null);
    assert.equal(r.error, null);
    assert.equal(r.model, 'mock-ok');
    assert.ok(Number.isInteger(r.created_at) && r.created_at >= before - 1 && r.created_at <= Date.now() / 1000 + 1, String(r.created_at));
    assert.equal(r.output.length, 1, JSON.stringify(r.output));
    const [msg] = r.output;
    assert.match(msg.id, /^msg_/);
    assert.deepEqual({ ...msg, id: undefined }, { id: undefined, type: 'message', status: 'completed', role: 'assistant',
      content: [{ type: 'output_text', text: 'reply from mock-ok', annotations: [] }] });
    assert.equal(r.output_text, 'reply from mock-ok', 'the SDK\'s output_text');
    assert.equal(r.usage.input_tokens, 11);
    assert.equal(r.usage.output_tokens, 7);
    assert.equal(r.usage.total_tokens, 18);
    assert.equal(r.usage.input_tokens_details.cached_tokens, 0);
    assert.equal(r.usage.output_tokens_details.reasoning_tokens, 0);
    // The request echoed.
    assert.equal(r.instructions, 'Be brief.');
    assert.equal(r.max_output_tokens, 100);
    assert.equal(r.temperature, 0.2);
    assert.equal(r.top_p, 0.9);
    assert.deepEqual(r.metadata, { ticket: 'T-1' });
    assert.deepEqual(r.tools, []);
    assert.equal(r.tool_choice, 'auto');
    assert.deepEqual(r.text, { format: { type: 'text' } });
    assert.equal(r.parallel_tool_calls, true);
    assert.equal(r.store, true);
    assert.equal(r.previous_response_id, null);

    assert.equal(chats(up).length, seen + 1);
    const sent = chats(up)[seen];
    assert.equal(sent.headers.authorization, 'Bearer sk-upstream', 'the provider\'s key, not the client\'s');
    const b = sent.body;
    assert.equal(b.model, 'mock-ok');
    assert.deepEqual(b.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi there' }]);
    assert.equal(b.max_tokens, 100);
    assert.equal(b.temperature, 0.2);
    assert.equal(b.top_p, 0.9);
    assert.equal(b.user, 'user-42');
    assert.equal(b.reasoning_effort, 'low');
    assert.ok(!b.stream, 'not streamed');
    assert.equal(b.tools, undefined, 'no MCP tools with x-toolgate-mcp-servers: none');
    for (const dropped of ['input', 'instructions', 'max_output_tokens', 'metadata', 'store', 'reasoning', 'text', 'previous_response_id'])
      assert.equal(b[dropped], undefined, `${dropped} is not sent on`);
  });

  test('create: items as input (developer, user parts with images, an assistant turn, a reasoning item skipped)', async () => {
    const seen = chats(up).length;
    const r = await client.responses.create({
      model: 'mock-ok',
      input: [
        { role: 'developer', content: 'Answer in English.' },
        { role: 'user', content: [
          { type: 'input_text', text: 'What is in these?' },
          { type: 'input_image', image_url: `data:image/png;base64,${PNG}`, detail: 'low' },
          { type: 'input_image', image_url: 'https://example.com/cat.png', detail: 'auto' },
        ] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A cat.', annotations: [] }] },
        { type: 'reasoning', id: 'rs_earlier', summary: [] },
        { role: 'user', content: [{ type: 'input_text', text: 'Sure?' }, { type: 'input_text', text: 'Really?' }] },
      ],
    }, noMcp);
    assert.equal(r.output_text, 'reply from mock-ok');
    assert.deepEqual(chats(up)[seen].body.messages, [
      { role: 'developer', content: 'Answer in English.' },
      { role: 'user', content: [
        { type: 'text', text: 'What is in these?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}`, detail: 'low' } },
        { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'auto' } },
      ] },
      { role: 'assistant', content: 'A cat.' },
      { role: 'user', content: 'Sure?\nReally?' },
    ]);
  });

  test('stream: the Responses events in order with increasing sequence_numbers; finalResponse; stored before the end', async () => {
    const seen = chats(up).length;
    const { types, events, texts, final } = await runStream(client.responses.stream({
      model: 'mock-stream', instructions: 'Be brief.', input: 'stream please', max_output_tokens: 50,
    }, noMcp));
    assert.deepEqual(types, textEvents(5));
    assert.deepEqual(texts, ['Hello', ' from', ' the', ' fake', ' upstream']);
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i), 'sequence_numbers 0, 1, 2, ...');
    const id = events[0].response.id;
    assert.match(id, /^resp_/);
    assert.equal(events[0].response.status, 'in_progress');
    assert.deepEqual(events[0].response.output, []);
    assert.equal(events[1].response.id, id);
    const added = events[2];
    assert.equal(added.output_index, 0);
    assert.equal(added.item.type, 'message');
    assert.equal(added.item.status, 'in_progress');
    assert.ok(events.filter((e) => e.type === 'response.output_text.delta').every((e) => e.item_id === added.item.id && e.output_index === 0 && e.content_index === 0));
    assert.equal(events.find((e) => e.type === 'response.output_text.done').text, 'Hello from the fake upstream');
    assert.equal(events.find((e) => e.type === 'response.output_item.done').item.status, 'completed');

    assert.equal(final.id, id);
    assert.equal(final.status, 'completed');
    assert.equal(final.output_text, 'Hello from the fake upstream');
    assert.deepEqual(final.output.map((o) => [o.type, o.id, o.role, o.content.map((c) => c.text)]),
      [['message', added.item.id, 'assistant', ['Hello from the fake upstream']]]);
    assert.equal(final.usage.input_tokens, 5);
    assert.equal(final.usage.output_tokens, 5);
    assert.equal(final.usage.total_tokens, 10);
    assert.equal(final.instructions, 'Be brief.');
    assert.equal(final.max_output_tokens, 50);

    const b = chats(up)[seen].body;
    assert.equal(b.stream, true);
    assert.deepEqual(b.stream_options, { include_usage: true });
    assert.equal(b.max_tokens, 50);
    assert.deepEqual(b.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'stream please' }]);

    // Kept before the stream's end went out: retrievable at once.
    const got = await client.responses.retrieve(id);
    assert.equal(got.status, 'completed');
    assert.equal(got.output_text, 'Hello from the fake upstream');
    assert.deepEqual(got.output, withoutParsed(final.output));
    assert.deepEqual(got.usage, final.usage);

    // On the wire: text/event-stream; each event's name is its data's type; no [DONE].
    const raw = await rawStream(gw, { model: 'mock-stream', input: 'raw' }, noMcp.headers);
    assert.equal(raw.status, 200, raw.raw);
    assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
    for (const e of raw.events) assert.equal(e.data.type, e.name);
    assert.deepEqual(raw.events.map((e) => e.name), textEvents(5));
    assert.ok(!raw.raw.includes('[DONE]'), 'no chat terminator in a Responses stream');
    assert.equal(raw.events.at(-1).data.response.output[0].content[0].text, 'Hello from the fake upstream');
  });

  test('function tool round trip with previous_response_id: function_call streamed out, function_call_output back', async () => {
    const seen = chats(up).length;
    const first = await runStream(client.responses.stream({
      model: 'mock-agent', instructions: 'Old instructions.', input: 'call get_weather {"city":"Oslo"}',
      tools: [weatherTool], tool_choice: 'auto',
    }));
    const deltas = first.types.filter((t) => t === 'response.function_call_arguments.delta').length;
    assert.ok(deltas >= 2, `arguments in pieces: ${first.types.join(',')}`);
    assert.deepEqual(first.types, ['response.created', 'response.in_progress', 'response.output_item.added',
      ...Array(deltas).fill('response.function_call_arguments.delta'), 'response.function_call_arguments.done',
      'response.output_item.done', 'response.completed']);
    assert.equal(first.events.find((e) => e.type === 'response.function_call_arguments.done').arguments, '{"city":"Oslo"}');
    assert.equal(first.final.status, 'completed');
    assert.equal(first.final.output.length, 1, JSON.stringify(first.final.output));
    const fc = first.final.output[0];
    assert.equal(fc.type, 'function_call');
    assert.equal(fc.name, 'get_weather');
    assert.deepEqual(JSON.parse(fc.arguments), { city: 'Oslo' });
    assert.ok(fc.call_id);
    assert.equal(fc.id, `fc_${fc.call_id}`);
    assert.equal(fc.status, 'completed');
    assert.equal(first.final.output_text, '');

    const b1 = chats(up)[seen].body;
    assert.deepEqual(b1.tools.find((t) => t.function.name === 'get_weather'), { type: 'function', function: {
      name: 'get_weather', description: weatherTool.description, parameters: weatherTool.parameters, strict: false } });
    assert.ok(b1.tools.some((t) => t.function.name === 'fs__read_text_file'), 'the gateway\'s MCP tools are offered beside it');
    assert.equal(b1.tool_choice, 'auto');

    // The follow-up names the first response; new instructions replace the old ones.
    const seen2 = chats(up).length;
    const r = await client.responses.create({
      model: 'mock-agent', previous_response_id: first.final.id, instructions: 'New instructions.', tools: [weatherTool],
      input: [{ type: 'function_call_output', call_id: fc.call_id, output: 'sunny, 21 C' }],
    });
    assert.equal(r.output_text, 'Tool results: sunny, 21 C');
    assert.equal(r.status, 'completed');
    assert.equal(r.previous_response_id, first.final.id);
    assert.equal(r.instructions, 'New instructions.');
    assert.equal(chats(up).length, seen2 + 1);
    const m = chats(up)[seen2].body.messages;
    assert.deepEqual(m.map((x) => x.role), ['system', 'user', 'assistant', 'tool'], JSON.stringify(m));
    assert.deepEqual(m[0], { role: 'system', content: 'New instructions.' });
    assert.ok(!JSON.stringify(m).includes('Old instructions.'), 'the old instructions are not carried over');
    assert.deepEqual(m[1], { role: 'user', content: 'call get_weather {"city":"Oslo"}' });
    assert.equal(m[2].tool_calls.length, 1);
    assert.deepEqual(m[2].tool_calls[0], { id: fc.call_id, type: 'function', function: { name: 'get_weather', arguments: fc.arguments } });
    assert.deepEqual(m[3], { role: 'tool', tool_call_id: fc.call_id, content: 'sunny, 21 C' });

    // A third turn continues the second: the whole chain, the second answer last; no instructions.
    const seen3 = chats(up).length;
    const third = await client.responses.create({ model: 'mock-agent', previous_response_id: r.id, input: 'thanks' }, noMcp);
    assert.equal(third.output_text, 'no tools needed: thanks');
    const m3 = chats(up)[seen3].body.messages;
    assert.deepEqual(m3.map((x) => x.role), ['user', 'assistant', 'tool', 'assistant', 'user'], JSON.stringify(m3));
    assert.deepEqual(m3.slice(3), [{ role: 'assistant', content: 'Tool results: sunny, 21 C' }, { role: 'user', content: 'thanks' }]);
  });

  test('previous_response_id carries the earlier input items of every role, a system message too; only instructions are not carried over', async () => {
    const input = [
      { role: 'system', content: 'Always answer in French.' },
      { role: 'developer', content: 'Be polite.' },
      { role: 'user', content: 'hi' },
    ];
    let seen = chats(up).length;
    const first = await client.responses.create({ model: 'mock-ok', instructions: 'Old instructions.', input }, noMcp);
    assert.deepEqual(chats(up)[seen].body.messages, [{ role: 'system', content: 'Old instructions.' }, ...input]);
    const items = await client.responses.inputItems.list(first.id, { order: 'asc' });
    assert.deepEqual(items.data.map((it) => [it.role, it.content]), input.map((m) => [m.role, m.content]), 'all three are input items');

    seen = chats(up).length;
    await client.responses.create({ model: 'mock-ok', previous_response_id: first.id, input: 'again' }, noMcp);
    assert.deepEqual(chats(up)[seen].body.messages, [...input,
      { role: 'assistant', content: 'reply from mock-ok' }, { role: 'user', content: 'again' }],
    'the earlier input as it was sent, without the old instructions');
  });

  test('function tool round trip with the whole history sent back (store: false, two calls in one turn)', async () => {
    const ask = 'call get_weather {"city":"Rome"}\ncall get_weather {"city":"Oslo"}';
    const first = await client.responses.create({ model: 'mock-agent', input: ask, tools: [weatherTool], store: false }, noMcp);
    assert.equal(first.store, false);
    assert.deepEqual(first.output.map((o) => [o.type, o.name, JSON.parse(o.arguments).city]),
      [['function_call', 'get_weather', 'Rome'], ['function_call', 'get_weather', 'Oslo']]);
    assert.notEqual(first.output[0].call_id, first.output[1].call_id);
    await assert.rejects(client.responses.retrieve(first.id), notFound, 'store: false keeps nothing');

    const seen = chats(up).length;
    const [rome, oslo] = first.output;
    const r = await client.responses.create({
      model: 'mock-agent', tools: [weatherTool], store: false,
      input: [{ role: 'user', content: ask }, ...first.output,
        { type: 'function_call_output', call_id: rome.call_id, output: 'rainy' },
        { type: 'function_call_output', call_id: oslo.call_id, output: 'snowy' }],
    }, noMcp);
    assert.equal(r.output_text, 'Tool results: rainy | snowy');
    const m = chats(up)[seen].body.messages;
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'tool', 'tool'], JSON.stringify(m));
    assert.deepEqual(m[1].tool_calls, [rome, oslo].map((c) => ({ id: c.call_id, type: 'function', function: { name: 'get_weather', arguments: c.arguments } })),
      'consecutive function_call items are one assistant turn');
    assert.deepEqual(m[2], { role: 'tool', tool_call_id: rome.call_id, content: 'rainy' });
    assert.deepEqual(m[3], { role: 'tool', tool_call_id: oslo.call_id, content: 'snowy' });
    await assert.rejects(client.responses.retrieve(r.id), notFound);
  });

  test('text.format json_schema and json_object become response_format; tool_choice and parallel_tool_calls pass', async () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    let seen = chats(up).length;
    const r = await client.responses.create({
      model: 'mock-ok', input: 'structured please',
      text: { format: { type: 'json_schema', name: 'answer', description: 'One answer', schema, strict: true } },
      tools: [weatherTool], tool_choice: { type: 'function', name: 'get_weather' }, parallel_tool_calls: false,
    }, noMcp);
    assert.deepEqual(r.text, { format: { type: 'json_schema', name: 'answer', description: 'One answer', schema, strict: true } });
    assert.deepEqual(r.tool_choice, { type: 'function', name: 'get_weather' });
    assert.equal(r.parallel_tool_calls, false);
    let b = chats(up)[seen].body;
    assert.deepEqual(b.response_format, { type: 'json_schema', json_schema: { name: 'answer', description: 'One answer', schema, strict: true } });
    assert.deepEqual(b.tool_choice, { type: 'function', function: { name: 'get_weather' } });
    assert.equal(b.parallel_tool_calls, false);
    assert.equal(b.text, undefined);

    seen = chats(up).length;
    await client.responses.create({ model: 'mock-ok', input: 'json please', text: { format: { type: 'json_object' } },
      tools: [weatherTool], tool_choice: 'required' }, noMcp);
    b = chats(up)[seen].body;
    assert.deepEqual(b.response_format, { type: 'json_object' });
    assert.equal(b.tool_choice, 'required');

    seen = chats(up).length;
    await client.responses.create({ model: 'mock-ok', input: 'plain please', text: { format: { type: 'text' } } }, noMcp);
    assert.equal(chats(up)[seen].body.response_format, undefined);
  });

  test('agent loop, not streamed: an mcp tool naming one server offers only its tools; "toolgate" offers all', async () => {
    let seen = chats(up).length;
    const r = await client.responses.create({
      model: 'mock-agent', input: `call fs__read_text_file ${JSON.stringify({ path: file })}`,
      tools: [{ type: 'mcp', server_label: 'fs', require_approval: 'never' }],
    });
    assert.equal(r.output_text, `Tool results: ${NOTE}`);
    assert.deepEqual(r.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message'], 'the gateway\'s tool calls as OpenAI\'s MCP items');
    assert.deepEqual([r.output[1].server_label, r.output[1].name, r.output[1].output], ['fs', 'read_text_file', NOTE]);
    assert.equal(r.status, 'completed');
    assert.equal(r.usage.input_tokens, 22, 'usage summed over both turns');
    assert.equal(r.usage.output_tokens, 14);
    assert.equal(r.toolgate.iterations, 2);
    assert.deepEqual(r.toolgate.tool_calls.map((c) => [c.name, c.ok]), [['fs__read_text_file', true]]);
    assert.deepEqual(r.tools, [{ type: 'mcp', server_label: 'fs', require_approval: 'never' }]);
    let reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 2);
    const offered = reqs[0].body.tools.map((t) => t.function.name);
    assert.ok(offered.includes('fs__read_text_file'), offered.join(','));
    assert.ok(!offered.some((n) => n.startsWith('notes__')), `only the named server's tools: ${offered.join(',')}`);
    const m = reqs[1].body.messages;
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'tool']);
    assert.equal(m[2].tool_call_id, m[1].tool_calls[0].id);
    assert.equal(m[2].content, NOTE);

    // "toolgate": every configured server, even with the header that switches them off.
    seen = chats(up).length;
    const all = await client.responses.create({
      model: 'mock-agent', input: `call notes__read_text_file ${JSON.stringify({ path: notesFile })}`,
      tools: [{ type: 'mcp', server_label: 'toolgate' }],
    }, noMcp);
    assert.equal(all.output_text, `Tool results: ${OTHER}`);
    assert.deepEqual(all.toolgate.tool_calls.map((c) => [c.name, c.ok]), [['notes__read_text_file', true]]);
    reqs = chats(up).slice(seen);
    const names = reqs[0].body.tools.map((t) => t.function.name);
    assert.ok(names.includes('fs__read_text_file') && names.includes('notes__read_text_file'), names.join(','));

    // Hybrid: the MCP call runs in the gateway, the client's function call comes back; its output
    // with previous_response_id finishes the turn, the model seeing its whole earlier turn again.
    const mcpAndWeather = [{ type: 'mcp', server_label: 'fs' }, weatherTool];
    const hybrid = await client.responses.create({ model: 'mock-agent', tools: mcpAndWeather,
      input: `call fs__read_text_file ${JSON.stringify({ path: file })}\ncall get_weather {"city":"Paris"}` });
    assert.deepEqual(hybrid.output.map((o) => [o.type, o.name]), [['mcp_list_tools', undefined], ['mcp_call', 'read_text_file'],
      ['function_call', 'get_weather']]);
    assert.equal(hybrid.output[2].arguments, '{"city":"Paris"}');
    assert.deepEqual(hybrid.toolgate.tool_calls.map((c) => c.name), ['fs__read_text_file']);
    seen = chats(up).length;
    const finished = await client.responses.create({ model: 'mock-agent', tools: mcpAndWeather, previous_response_id: hybrid.id,
      input: [{ type: 'function_call_output', call_id: hybrid.output[2].call_id, output: 'rainy' }] });
    assert.equal(finished.output_text, `Tool results: ${NOTE} | rainy`);
    const sent = chats(up)[seen].body.messages;
    // The stored conversation: the gateway's call with its result, then the client's call with its output.
    assert.deepEqual(sent.map((x) => x.role), ['user', 'assistant', 'tool', 'assistant', 'tool'], JSON.stringify(sent));
    assert.deepEqual([sent[1], sent[3]].map((m) => m.tool_calls.map((c) => c.function.name)), [['fs__read_text_file'], ['get_weather']]);
  });

  test('agent loop, streamed: the MCP items, then one message with the final text; keep-alive comments while the tool runs', async () => {
    const params = { model: 'mock-agent', input: `call fs__read_text_file ${JSON.stringify({ path: file })}`,
      tools: [{ type: 'mcp', server_label: 'fs' }] };
    const { types, texts, final } = await runStream(client.responses.stream(params));
    assert.equal(texts.join(''), `Tool results: ${NOTE}`);
    const [head, ...rest] = [types.slice(0, 2), ...types.slice(2)];
    assert.deepEqual([...head, ...rest.slice(10)], textEvents(texts.length));
    assert.deepEqual(rest.slice(0, 10), mcpEvents);
    assert.equal(final.status, 'completed');
    assert.deepEqual(final.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message']);
    assert.equal(final.output_text, `Tool results: ${NOTE}`);
    assert.equal(final.usage.input_tokens, 22, 'usage summed over both turns');
    assert.equal(final.usage.output_tokens, 14);
    // The stored Response is the streamed one.
    assert.equal((await client.responses.retrieve(final.id)).output_text, `Tool results: ${NOTE}`);

    // On the wire (the SDK skips comments): the tool's progress as keep-alive comments.
    const raw = await rawStream(gw, params);
    assert.equal(raw.status, 200, raw.raw);
    assert.ok(raw.comments.length >= 2, raw.raw);
    assert.ok(raw.comments.every((c) => c === ': keep-alive'), raw.comments.join('|'));
    const names = raw.events.map((e) => e.name);
    assert.deepEqual([...names.slice(0, 2), ...names.slice(12)], textEvents(names.filter((n) => n === 'response.output_text.delta').length));
    assert.ok(!raw.raw.includes('fs__read_text_file'), 'the call shows under its server\'s label, by its own name');
  });

  test('retrieve, delete and input_items: the items with ids, newest first, order asc, limit, after, has_more; SDK paging', async () => {
    const input = ['one', 'two', 'three', 'four', 'five'].map((text) => ({ role: 'user', content: [{ type: 'input_text', text }] }));
    const r = await client.responses.create({ model: 'mock-ok', instructions: 'Count.', input }, noMcp);
    assert.deepEqual(await client.responses.retrieve(r.id), r, 'the Response as created');

    const text = (it) => it.content.map((c) => c.text).join('');
    const desc = await client.responses.inputItems.list(r.id);
    assert.deepEqual(desc.data.map(text), ['five', 'four', 'three', 'two', 'one'], 'newest first by default');
    assert.ok(desc.data.every((it) => it.type === 'message' && it.role === 'user' && typeof it.id === 'string' && it.id), JSON.stringify(desc.data));
    assert.equal(new Set(desc.data.map((it) => it.id)).size, 5, 'distinct ids');
    assert.equal(desc.has_more, false);

    const p1 = await call(gw, 'GET', `/v1/responses/${r.id}/input_items?order=asc&limit=2`);
    assert.equal(p1.status, 200, p1.raw);
    assert.equal(p1.json.object, 'list');
    assert.deepEqual(p1.json.data.map(text), ['one', 'two']);
    assert.equal(p1.json.first_id, p1.json.data[0].id);
    assert.equal(p1.json.last_id, p1.json.data[1].id);
    assert.equal(p1.json.has_more, true);
    const p2 = await call(gw, 'GET', `/v1/responses/${r.id}/input_items?order=asc&limit=2&after=${p1.json.last_id}`);
    assert.deepEqual(p2.json.data.map(text), ['three', 'four']);
    assert.equal(p2.json.has_more, true);
    const p3 = await call(gw, 'GET', `/v1/responses/${r.id}/input_items?order=asc&limit=2&after=${p2.json.last_id}`);
    assert.deepEqual(p3.json.data.map(text), ['five']);
    assert.equal(p3.json.has_more, false);
    assert.equal(p3.json.first_id, p3.json.last_id);
    const d2 = await call(gw, 'GET', `/v1/responses/${r.id}/input_items?limit=2&after=${desc.data[1].id}`);
    assert.deepEqual(d2.json.data.map(text), ['three', 'two']);
    assert.equal(d2.json.has_more, true);
    // The SDK follows has_more and after by itself.
    const all = [];
    for await (const it of client.responses.inputItems.list(r.id, { order: 'asc', limit: 2 })) all.push(text(it));
    assert.deepEqual(all, ['one', 'two', 'three', 'four', 'five']);
    const bad = await call(gw, 'GET', `/v1/responses/${r.id}/input_items?limit=0`);
    assertOpenAIError(bad, 400, { param: null }, gw);

    // Delete: OpenAI's deletion object; afterwards 404 everywhere.
    const del = await call(gw, 'DELETE', `/v1/responses/${r.id}`);
    assert.equal(del.status, 200, del.raw);
    assert.deepEqual(del.json, { id: r.id, object: 'response', deleted: true });
    await assert.rejects(client.responses.retrieve(r.id), notFound);
    await assert.rejects(client.responses.inputItems.list(r.id), notFound);
    await assert.rejects(client.responses.delete(r.id), notFound);
    // The SDK's delete on a live one.
    const other = await client.responses.create({ model: 'mock-ok', input: 'short-lived' }, noMcp);
    await client.responses.delete(other.id);
    await assert.rejects(client.responses.retrieve(other.id), notFound);
  });

  test('unknown ids: previous_response_id 404 (nothing sent upstream), retrieve, delete and input_items 404 in OpenAI\'s shape', async () => {
    const seen = chats(up).length;
    await assert.rejects(client.responses.create({ model: 'mock-ok', input: 'go on', previous_response_id: 'resp_doesnotexist0' }, noMcp),
      (e) => notFound(e) && e.param === 'previous_response_id' && /resp_doesnotexist0/.test(e.message));
    assert.equal(chats(up).length, seen, 'nothing reached the upstream');
    const raw = await call(gw, 'POST', '/v1/responses', { model: 'mock-ok', input: 'x', previous_response_id: 'resp_doesnotexist0' }, noMcp.headers);
    assertOpenAIError(raw, 404, { param: 'previous_response_id', message: /not found/ }, gw);
    assertOpenAIError(await call(gw, 'GET', '/v1/responses/resp_doesnotexist0'), 404, {}, gw);
    assertOpenAIError(await call(gw, 'GET', '/v1/responses/resp_doesnotexist0/input_items'), 404, {}, gw);
    assertOpenAIError(await call(gw, 'DELETE', '/v1/responses/resp_doesnotexist0'), 404, {}, gw);
    // A stored: false response cannot be continued either.
    const gone = await client.responses.create({ model: 'mock-ok', input: 'forget me', store: false }, noMcp);
    await assert.rejects(client.responses.create({ model: 'mock-ok', input: 'more', previous_response_id: gone.id }, noMcp), notFound);
  });

  test('400s in OpenAI\'s shape for what is not supported (web_search, background, conversation, an unknown mcp label, malformed allowed_tools and approvals) and for a guardrail; nothing reaches the upstream', async () => {
    const seen = chats(up).length;
    const base = { model: 'mock-ok', input: 'x' };
    const bad = (param, pattern) => (e) => e instanceof OpenAI.BadRequestError && e.status === 400
      && e.type === 'invalid_request_error' && e.param === param && pattern.test(e.message);
    await assert.rejects(client.responses.create({ ...base, tools: [{ type: 'web_search' }] }), bad('tools', /web_search/));
    await assert.rejects(client.responses.create({ ...base, tools: [{ type: 'file_search', vector_store_ids: ['vs_1'] }] }), bad('tools', /file_search/));
    await assert.rejects(client.responses.create({ ...base, background: true }), bad('background', /background/));
    await assert.rejects(client.responses.create({ ...base, conversation: 'conv_1' }), bad('conversation', /conversation/));
    await assert.rejects(client.responses.create({ ...base, tools: [{ type: 'mcp', server_label: 'elsewhere', server_url: 'https://mcp.example.com/mcp' }] }),
      bad('tools', /elsewhere/));
    await assert.rejects(client.responses.create({ ...base, tools: [{ type: 'mcp', server_label: 'fs', allowed_tools: 'read_text_file' }] }),
      bad('tools', /allowed_tools/));
    await assert.rejects(client.responses.create({ ...base, tools: [{ type: 'mcp', server_label: 'fs', require_approval: 'sometimes' }] }),
      bad('tools', /require_approval/));
    // The gateway's guardrails hold on this route: a credential in the input is refused, streamed or not.
    const secret = `deploy with ${AWS_KEY} now`;
    await assert.rejects(client.responses.create({ model: 'mock-ok', input: secret }, noMcp),
      (e) => e instanceof OpenAI.BadRequestError && e.type === 'guardrail_violation' && e.code === 'secret-scan' && !e.message.includes(AWS_KEY));
    await assert.rejects(client.responses.stream({ model: 'mock-stream', input: [{ role: 'user', content: [{ type: 'input_text', text: secret }] }] }, noMcp).finalResponse(),
      (e) => e instanceof OpenAI.BadRequestError && e.type === 'guardrail_violation');
    assert.equal(chats(up).length, seen, 'nothing refused reached the upstream');

    // On the wire; a stream refused before it began is a plain error too.
    const raw = await call(gw, 'POST', '/v1/responses', { ...base, tools: [{ type: 'web_search' }] });
    assertOpenAIError(raw, 400, { param: 'tools' }, gw);
    const refusedStream = await call(gw, 'POST', '/v1/responses', { ...base, stream: true, background: true });
    assertOpenAIError(refusedStream, 400, { param: 'background' }, gw);
    assertOpenAIError(await call(gw, 'POST', '/v1/responses', { model: 'mock-ok' }), 400, { param: 'input' }, gw);
    assertOpenAIError(await call(gw, 'POST', '/v1/responses', '{"model": '), 400, {}, gw);
    await assert.rejects(client.responses.create({ model: 'no-such-model', input: 'x' }), notFound);
    assert.equal(chats(up).length, seen);
  });

  test('a failure after the stream began: the text so far, then one error event; the SDK raises it', async () => {
    const raw = await rawStream(gw, { model: 'mock-garbage', input: 'x' }, noMcp.headers);
    assert.equal(raw.status, 200, raw.raw);
    const names = raw.events.map((e) => e.name);
    assert.deepEqual(names, ['response.created', 'response.in_progress', 'response.output_item.added',
      'response.content_part.added', 'response.output_text.delta', 'error'], raw.raw);
    assert.equal(raw.events[4].data.delta, 'ok');
    const err = raw.events.at(-1).data;
    assert.match(err.message, /malformed/);
    assert.deepEqual(raw.events.map((e) => e.data.sequence_number), names.map((_, i) => i));
    const texts = [];
    const stream = client.responses.stream({ model: 'mock-garbage', input: 'x' }, noMcp);
    stream.on('response.output_text.delta', (e) => texts.push(e.delta));
    await assert.rejects(stream.finalResponse(), (e) => e instanceof OpenAI.APIError && /malformed/.test(e.message));
    assert.deepEqual(texts, ['ok']);
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

describe('Responses API status', () => {
  test('finish length: status incomplete, incomplete_details max_output_tokens (response.incomplete when streamed); content_filter too', async (t) => {
    const defer = cleanup(t);
    const up = await startFinishUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", models: [mock-finish] }
`);
    const client = sdk(gw);
    for (const [finish, status, reason] of [['length', 'incomplete', 'max_output_tokens'], ['content_filter', 'incomplete', 'content_filter'], ['stop', 'completed', null]]) {
      const params = { model: 'mock-finish', max_output_tokens: 4, input: `finish ${finish}` };
      const r = await client.responses.create(params);
      assert.equal(r.status, status, `${finish}, not streamed`);
      assert.deepEqual(r.incomplete_details, reason ? { reason } : null);
      assert.equal(r.output_text, 'partial');
      assert.equal(r.usage.output_tokens, 4);
      const { types, final } = await runStream(client.responses.stream(params));
      assert.equal(types.at(-1), status === 'completed' ? 'response.completed' : 'response.incomplete', `${finish}, streamed: ${types.join(',')}`);
      assert.ok(!types.includes(status === 'completed' ? 'response.incomplete' : 'response.completed'));
      assert.equal(final.status, status);
      assert.deepEqual(final.incomplete_details, reason ? { reason } : null);
      assert.equal(final.output_text, 'partial');
      assert.equal(final.usage.output_tokens, 4);
      // Stored as it ended.
      assert.equal((await client.responses.retrieve(final.id)).status, status);
    }
    assert.equal(up.state.requests.length, 6);
    assert.ok(up.state.requests.every((b) => b.max_tokens === 4));
  });
});

describe('Responses API with virtual keys', () => {
  test('a stored response belongs to the key that made it: another key gets 404 for retrieve, input_items, delete and previous_response_id', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, models: [mock-ok] }
state: { persist: false }
auth: { required: true }
keys:
  - { name: alice, key: sk-alice-responses }
  - { name: bob, key: sk-bob-responses }
  - { name: narrow, key: sk-narrow-responses, models: [mock-other] }
  - { name: once, key: sk-once-responses, limits: { requests_per_minute: 1 } }
`);
    const alice = sdk(gw, 'sk-alice-responses');
    const bob = sdk(gw, 'sk-bob-responses');
    await assert.rejects(sdk(gw, 'sk-wrong').responses.create({ model: 'mock-ok', input: 'x' }),
      (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    // The key's model list and limits hold on this route as on chat.
    await assert.rejects(sdk(gw, 'sk-narrow-responses').responses.create({ model: 'mock-ok', input: 'x' }),
      (e) => e instanceof OpenAI.PermissionDeniedError && e.status === 403 && /mock-ok/.test(e.message));
    assert.equal((await sdk(gw, 'sk-once-responses').responses.create({ model: 'mock-ok', input: 'x' })).output_text, 'reply from mock-ok');
    await assert.rejects(sdk(gw, 'sk-once-responses').responses.create({ model: 'mock-ok', input: 'x' }),
      (e) => e instanceof OpenAI.RateLimitError && e.status === 429 && Number(e.headers.get('retry-after')) > 0);
    await assert.rejects(sdk(gw, 'sk-once-responses').responses.stream({ model: 'mock-ok', input: 'x' }).finalResponse(),
      (e) => e instanceof OpenAI.RateLimitError);
    assert.equal(chats(up).length, 1, 'only the one allowed request reached the upstream');

    const r = await alice.responses.create({ model: 'mock-ok', input: 'alice\'s secret' });
    assert.equal(r.output_text, 'reply from mock-ok');
    await assert.rejects(bob.responses.retrieve(r.id), notFound);
    await assert.rejects(bob.responses.inputItems.list(r.id), notFound);
    await assert.rejects(bob.responses.delete(r.id), notFound);
    await assert.rejects(bob.responses.create({ model: 'mock-ok', input: 'go on', previous_response_id: r.id }),
      (e) => notFound(e) && e.param === 'previous_response_id');
    assert.equal(chats(up).length, 2, 'bob\'s refused follow-up reached no upstream');
    assertOpenAIError(await call(gw, 'GET', `/v1/responses/${r.id}`), 401, {}, gw);

    // Still alice's, untouched by bob's delete.
    assert.deepEqual(await alice.responses.retrieve(r.id), r);
    const next = await alice.responses.create({ model: 'mock-ok', input: 'go on', previous_response_id: r.id });
    assert.equal(next.previous_response_id, r.id);
    assert.deepEqual(chats(up)[2].body.messages, [
      { role: 'user', content: 'alice\'s secret' }, { role: 'assistant', content: 'reply from mock-ok' }, { role: 'user', content: 'go on' }]);
  });
});

describe('Responses API with the state in SQLite', () => {
  test('stored responses survive a restart: retrieve, input_items and previous_response_id; a delete lasts too', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const dir = mkdtempSync(join(tmpdir(), 'toolgate-responses-db-'));
    defer(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'state.db');
    const yaml = `
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, models: [mock-ok] }
state: { sqlite: { path: "${db}" } }
`;
    const gw1 = await startGateway(yaml);
    let first, doomed;
    try {
      const c1 = sdk(gw1);
      first = await c1.responses.create({ model: 'mock-ok', instructions: 'Be brief.', input: 'remember me' });
      doomed = await c1.responses.create({ model: 'mock-ok', input: 'delete me' });
    } finally {
      await gw1.stop();
      assertClean(gw1);
    }
    // The rows, as the sqlite3 CLI reads them after the first gateway is gone.
    const rows = await sqlite(db, `SELECT id, owner FROM sessions WHERE id IN ('${first.id}', '${doomed.id}') ORDER BY created_ms`);
    assert.deepEqual(rows.map((x) => x.id).sort(), [first.id, doomed.id].sort(), JSON.stringify(rows));

    const gw2 = await gateway(defer, yaml);
    const c2 = sdk(gw2);
    assert.deepEqual(await c2.responses.retrieve(first.id), first, 'the same Response after a restart');
    const items = await c2.responses.inputItems.list(first.id);
    assert.deepEqual(items.data.map((it) => it.content.map((c) => c.text).join('')), ['remember me']);
    const seen = chats(up).length;
    const next = await c2.responses.create({ model: 'mock-ok', previous_response_id: first.id, input: 'and now?' });
    assert.equal(next.output_text, 'reply from mock-ok');
    assert.deepEqual(chats(up)[seen].body.messages, [
      { role: 'user', content: 'remember me' }, { role: 'assistant', content: 'reply from mock-ok' }, { role: 'user', content: 'and now?' }]);
    await c2.responses.delete(doomed.id);
    await gw2.stop();
    assertClean(gw2);

    const gw3 = await gateway(defer, yaml);
    const c3 = sdk(gw3);
    await assert.rejects(c3.responses.retrieve(doomed.id), notFound, 'a delete lasts across a restart');
    assert.equal((await c3.responses.retrieve(next.id)).previous_response_id, first.id);
  });
});

describe('Responses API on the offline default config (examples/gateway.yaml, no upstream)', () => {
  let gw;
  before(async () => {
    gw = await startOfflineDemo();
  });
  after(async () => {
    await gw?.stop();
    if (gw) assertClean(gw);
  });

  test('the demo model calls the demo MCP server (streamed); a client function tool comes back as a function_call and its output finishes the turn', async () => {
    const client = sdk(gw, 'unused');
    const { texts, final } = await runStream(client.responses.stream({ model: 'toolgate-demo', input: 'what time is it?' }));
    assert.match(texts.join(''), /^The tool returned: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000 \(UTC\)$/);
    assert.ok(texts.length > 1, 'streamed in pieces');
    assert.equal(final.status, 'completed');
    assert.equal(final.output_text, texts.join(''));

    const r = await client.responses.create({ model: 'toolgate-demo', input: 'weather?', tools: [weatherTool] });
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.output.map((o) => [o.type, o.name, JSON.parse(o.arguments)]), [['function_call', 'get_weather', { city: 'Paris' }]]);
    const callId = r.output[0].call_id;
    assert.match(callId, /\S/);

    const done = await client.responses.create({ model: 'toolgate-demo', previous_response_id: r.id, tools: [weatherTool],
      input: [{ type: 'function_call_output', call_id: callId, output: 'sunny' }] });
    assert.equal(done.output_text, 'The tool returned: sunny');
    assert.equal(done.previous_response_id, r.id);
  });
});

describe('Responses on a server-side session (x-session-id)', () => {
  test('the session keeps the conversation; the instructions go first each time and are never stored; both ways at once is 400', async (t) => {
    const defer = cleanup(t);
    const up = await startFakeUpstream();
    defer(() => up.close());
    const gw = await gateway(defer, `
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, models: [mock-ok] }
sessions: { store: memory }
`);
    const client = sdk(gw);
    const opts = { headers: { 'x-session-id': 'resp-sess-1' } };
    const one = await client.responses.create({ model: 'mock-ok', instructions: 'Be brief.', input: 'first question' }, opts);
    assert.equal(one.output_text, 'reply from mock-ok');
    const two = await client.responses.create({ model: 'mock-ok', instructions: 'Be brief.', input: 'second question', store: false }, opts);
    assert.equal(two.status, 'completed');
    const sent = chats(up).at(-1).body.messages;
    assert.deepEqual(sent.map((m) => [m.role, m.content]), [
      ['system', 'Be brief.'], ['user', 'first question'], ['assistant', 'reply from mock-ok'], ['user', 'second question']]);
    const stored = await call(gw, 'GET', '/v1/sessions/resp-sess-1');
    assert.equal(stored.status, 200, stored.raw + why(gw));
    assert.deepEqual(stored.json.messages.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
    const both = await call(gw, 'POST', '/v1/responses', { model: 'mock-ok', input: 'x', previous_response_id: one.id },
      { 'x-session-id': 'resp-sess-1' });
    assert.equal(both.status, 400, both.raw);
    assert.equal(both.json.error.param, 'previous_response_id');
  });
});
