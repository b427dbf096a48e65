// MCP tools the Responses way on POST /v1/responses, shaped as OpenAI's own remote MCP tool, end to
// end: the official `openai` SDK, unchanged but for baseURL, against the real binary; two official
// filesystem MCP servers (fs and notes) behind it; an OpenAI-shaped fake upstream in this process
// whose model "mock-agent" calls the tool a user line names ("call fs__read_text_file {...}") and
// answers with the tool results after them. Covered: the mcp_list_tools and mcp_call output items
// (server_label "fs": the server's own tool names; "toolgate": the exposed names), their stream
// events, a tool that reports an error (status failed), allowed_tools (a list, tool_names,
// read_only), approvals (require_approval always / never / by tool names: an mcp_approval_request
// ends the Response, an mcp_approval_response continues it, with previous_response_id or the whole
// history; declined; unknown ids), an unknown server_label, and a client function tool beside an
// mcp tool. Everything a test starts is stopped when it ends, also when it fails.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, realpathSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startGateway, serversUp, assertClean } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const filesystem = join(here, 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');

const sdk = (gw) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client-key', maxRetries: 0, timeout: 20000 });
const why = (gw) => `\n--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;

// The chat requests the OpenAI-shaped fake received.
const chats = (up) => up.state.requests.filter((r) => r.url.endsWith('/chat/completions'));
// The tool names a chat request offered the model, sorted.
const offered = (req) => (req.body.tools ?? []).map((t) => t.function?.name).sort();

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

// A streamed POST /v1/responses on the wire: the SSE blocks split into named events.
async function rawStream(gw, body) {
  const r = await call(gw, 'POST', '/v1/responses', { ...body, stream: true });
  const blocks = r.raw.split('\n\n').filter((x) => x.trim() && !x.startsWith(':'));
  const events = blocks.map((b) => {
    const m = /^event: ([\w.]+)\ndata: (.*)$/.exec(b);
    assert.ok(m, `a well-formed event: ${JSON.stringify(b)}`);
    return { name: m[1], data: JSON.parse(m[2]) };
  });
  return { ...r, events };
}

// A ResponseStream run to its end: every event (as sent), the text deltas, the final Response.
async function runStream(stream) {
  const events = [];
  const texts = [];
  stream.on('event', (e) => events.push(e));
  stream.on('response.output_text.delta', (e) => texts.push(e.delta));
  const final = await stream.finalResponse();
  return { events, texts, final, types: events.map((e) => e.type) };
}

// An error in OpenAI's shape: exactly {error: {message, type, param, code}}.
function assertOpenAIError(r, status, { param } = {}, gw) {
  assert.equal(r.status, status, r.raw + why(gw));
  assert.deepEqual(Object.keys(r.json ?? {}), ['error'], r.raw);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type'], r.raw);
  assert.equal(typeof r.json.error.message, 'string', r.raw);
  assert.ok(r.json.error.message.length > 0, r.raw);
  assert.equal(typeof r.json.error.type, 'string', r.raw);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.raw);
}

// The SDK's stream helper adds `parsed` to output_text parts and `parsed_arguments` to function calls.
const withoutParsed = (output) => output.map((o) => {
  if (o.type === 'message') return { ...o, content: o.content.map(({ parsed, ...c }) => c) };
  if (o.type === 'function_call') { const { parsed_arguments, ...rest } = o; return rest; }
  return o;
});

const weatherTool = {
  type: 'function', name: 'get_weather', description: 'The weather in a city', strict: false,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

// Chat messages that are assistant turns with tool calls and the tool messages answering them:
// the calls (in order) are `names`, the results (in order) `results`, and each tool message
// answers a call of the assistant turn before it.
function assertCallsAnswered(messages, names, results) {
  const calls = [];
  const answers = [];
  let open = null;
  for (const x of messages) {
    if (x.role === 'assistant') {
      assert.ok(Array.isArray(x.tool_calls) && x.tool_calls.length > 0, JSON.stringify(messages));
      open = new Set(x.tool_calls.map((c) => c.id));
      calls.push(...x.tool_calls.map((c) => c.function.name));
    } else {
      assert.equal(x.role, 'tool', JSON.stringify(messages));
      assert.ok(open?.has(x.tool_call_id), `the tool message answers a call of the turn before it: ${JSON.stringify(messages)}`);
      answers.push(x.content);
    }
  }
  assert.deepEqual(calls, names, JSON.stringify(messages));
  assert.deepEqual(answers, results, JSON.stringify(messages));
}

// The events of one Responses stream, in order, by output item (mcp_call_arguments.delta events,
// should there be any, are left out before comparing).
const LIST = ['response.output_item.added', 'response.mcp_list_tools.in_progress', 'response.mcp_list_tools.completed',
  'response.output_item.done'];
const CALL = (end = 'completed') => ['response.output_item.added', 'response.mcp_call.in_progress',
  'response.mcp_call_arguments.done', `response.mcp_call.${end}`, 'response.output_item.done'];
const APPROVAL = ['response.output_item.added', 'response.output_item.done'];
const MESSAGE = (n) => ['response.output_item.added', 'response.content_part.added',
  ...Array(n).fill('response.output_text.delta'), 'response.output_text.done', 'response.content_part.done',
  'response.output_item.done'];
const streamOf = (...items) => ['response.created', 'response.in_progress', ...items.flat(), 'response.completed'];
const noArgDeltas = (types) => types.filter((t) => t !== 'response.mcp_call_arguments.delta');
const deltas = (types) => types.filter((t) => t === 'response.output_text.delta').length;

// The invariants of any Responses stream: sequence_number strictly increasing; it ends with
// response.completed; every event's output_index names an item of the completed Response's output
// (item_id and the event's item are that item); each item added once, in output order, and done
// once with the item exactly as it is in the completed Response. Returns that output.
function checkStream(events) {
  assert.ok(events.length > 0);
  for (let i = 1; i < events.length; i++)
    assert.ok(events[i].sequence_number > events[i - 1].sequence_number,
      `sequence_number strictly increasing at ${i}: ${events[i - 1].sequence_number} then ${events[i].sequence_number}`);
  const last = events.at(-1);
  assert.equal(last.type, 'response.completed', events.map((e) => e.type).join(','));
  assert.equal(last.response.status, 'completed');
  assert.deepEqual(events[0].response.output, [], 'response.created has no output yet');
  const output = last.response.output;
  for (const e of events) {
    if (e.output_index === undefined) continue;
    const item = output[e.output_index];
    assert.ok(item, `${e.type}: output_index ${e.output_index} is an item of the final output (${output.length} items)`);
    if (e.item) assert.deepEqual([e.item.type, e.item.id], [item.type, item.id], `${e.type} at ${e.output_index}`);
    if (e.item_id !== undefined) assert.equal(e.item_id, item.id, `${e.type}: item_id is the id of the item at ${e.output_index}`);
    if (e.type === 'response.output_item.done') assert.deepEqual(e.item, item, 'the done item is the item of the final output');
  }
  assert.deepEqual(events.filter((e) => e.type === 'response.output_item.added').map((e) => e.output_index),
    output.map((_, i) => i), 'each item added once, in output order');
  assert.deepEqual(events.filter((e) => e.type === 'response.output_item.done').map((e) => e.output_index).sort((a, b) => a - b),
    output.map((_, i) => i), 'each item done once');
  // mcp_* events name their item by id.
  for (const e of events.filter((x) => x.type.startsWith('response.mcp_')))
    assert.equal(typeof e.item_id, 'string', `${e.type} has an item_id`);
  return output;
}

// ---------------------------------------------------------------------------------------------------

describe('Responses API: mcp tools as OpenAI\'s remote MCP tool (list_tools, mcp_call, approvals) on two filesystem MCP servers', () => {
  let up, gw, client, dir, notesDir, file, notesFile, catalog;
  const NOTE = 'the note says: forty-two';
  const OTHER = 'the other note says: seven';
  let nth = 0;
  // A path in fs's directory no test has used yet (for write_file).
  const fresh = (stem) => join(dir, `${stem}-${++nth}.txt`);

  // The tools an mcp_list_tools item should show: the catalog's (GET /v1/mcp/tools) of `servers`,
  // named as seen under `label` ("toolgate": exposed names; a server's label: its own names).
  const listed = (label, servers, keep = () => true) => catalog
    .filter((t) => servers.includes(t.server) && keep(t))
    .map((t) => ({ name: label === 'toolgate' ? t.name : t.original_name, description: t.description ?? null,
      input_schema: t.inputSchema, annotations: t.annotations ?? null }))
    .sort(byName);
  const shown = (item) => item.tools.map((t) => ({ name: t.name, description: t.description ?? null,
    input_schema: t.input_schema, annotations: t.annotations ?? null })).sort(byName);
  const exposed = (servers, keep = () => true) => catalog.filter((t) => servers.includes(t.server) && keep(t)).map((t) => t.name).sort();

  // The first item of a Response with an mcp tool: one mcp_list_tools item for the entry.
  function assertListTools(item, label, servers, keep) {
    assert.equal(item?.type, 'mcp_list_tools', JSON.stringify(item));
    assert.match(item.id, /^mcpl_\w+/);
    assert.equal(item.server_label, label);
    assert.ok(item.error == null, `no error: ${item.error}`);
    assert.deepEqual(shown(item), listed(label, servers, keep));
  }

  // A Response's output without the mcp_list_tools items (whether a continuation lists the tools
  // again is left open); when there are any, they come first.
  function afterListTools(output) {
    const k = output.findIndex((o) => o.type !== 'mcp_list_tools');
    const rest = k < 0 ? [] : output.slice(k);
    assert.ok(!rest.some((o) => o.type === 'mcp_list_tools'), `mcp_list_tools items come first: ${output.map((o) => o.type)}`);
    return rest;
  }

  // A request whose model calls write_file on `target` under an approval policy: the Response ends
  // with the mcp_approval_request, and the tool has not run.
  async function approvalAsked(tools, target, content, extra = {}) {
    const args = { path: target, content };
    const seen = chats(up).length;
    const input = `call fs__write_file ${JSON.stringify(args)}`;
    const first = await client.responses.create({ model: 'mock-agent', input, tools, ...extra });
    assert.equal(first.status, 'completed', JSON.stringify(first));
    assert.deepEqual(first.output.map((o) => o.type), ['mcp_list_tools', 'mcp_approval_request'], JSON.stringify(first.output));
    assertListTools(first.output[0], 'fs', ['fs']);
    const req = first.output[1];
    assert.match(req.id, /^mcpr_\w+/);
    assert.equal(req.server_label, 'fs');
    assert.equal(req.name, 'write_file');
    assert.equal(typeof req.arguments, 'string');
    assert.deepEqual(JSON.parse(req.arguments), args);
    assert.equal(first.output_text, '');
    assert.ok(!existsSync(target), 'the tool has not run before the approval');
    assert.equal(chats(up).length, seen + 1, 'the loop stopped after the turn that asked for the tool');
    return { first, req, args, input };
  }

  // The upstream's chat request after an approval: the user's line, the assistant's call of
  // fs__write_file, and the tool message answering it (last, so the model answers it now).
  function assertContinued(sent, input, args) {
    const m = sent.body.messages;
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'tool'], JSON.stringify(m));
    assert.deepEqual(m[0], { role: 'user', content: input });
    assert.equal(m[1].tool_calls.length, 1, JSON.stringify(m[1]));
    const tc = m[1].tool_calls[0];
    assert.equal(tc.type, 'function');
    assert.equal(tc.function.name, 'fs__write_file', 'the model sees its call under the exposed name');
    assert.deepEqual(JSON.parse(tc.function.arguments), args);
    assert.equal(m[2].tool_call_id, tc.id, 'the tool message answers that call');
    return m[2];
  }

  before(async () => {
    up = await startFakeUpstream();
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'toolgate-responses-mcp-')));
    notesDir = realpathSync(mkdtempSync(join(tmpdir(), 'toolgate-responses-mcp-notes-')));
    file = join(dir, 'note.txt');
    notesFile = join(notesDir, 'other.txt');
    writeFileSync(file, NOTE);
    writeFileSync(notesFile, OTHER);
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, timeout: 20s, models: [mock-agent] }
mcp_servers:
  - { name: fs, command: node, args: ["${filesystem}", "${dir}"], timeout: 20s }
  - { name: notes, command: node, args: ["${filesystem}", "${notesDir}"], timeout: 20s }
agent_loop: { tool_timeout: 10s, keepalive_interval: 200ms }
`);
    await serversUp(gw);
    client = sdk(gw);
    const tools = await call(gw, 'GET', '/v1/mcp/tools');
    assert.equal(tools.status, 200, tools.raw + why(gw));
    catalog = tools.json.data;
    for (const s of ['fs', 'notes'])
      for (const t of ['read_text_file', 'write_file', 'list_directory'])
        assert.ok(catalog.some((c) => c.server === s && c.original_name === t && c.name === `${s}__${t}`), `${s}__${t} in the catalog`);
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

  test('not streamed, server_label fs: mcp_list_tools with the server\'s own tool names, an mcp_call with the result, then the message; stored as returned', async () => {
    const seen = chats(up).length;
    const r = await client.responses.create({
      model: 'mock-agent', input: `call fs__read_text_file ${JSON.stringify({ path: file })}`,
      tools: [{ type: 'mcp', server_label: 'fs' }],
    });
    assert.equal(r.status, 'completed', JSON.stringify(r) + why(gw));
    assert.deepEqual(r.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message'], JSON.stringify(r.output));
    assertListTools(r.output[0], 'fs', ['fs']);
    assert.ok(r.output[0].tools.some((t) => t.name === 'read_text_file'), 'the server\'s own name, not fs__read_text_file');

    const c = r.output[1];
    assert.match(c.id, /^mcp_\w+/);
    assert.equal(c.server_label, 'fs');
    assert.equal(c.name, 'read_text_file');
    assert.equal(typeof c.arguments, 'string', 'arguments as a JSON string');
    assert.deepEqual(JSON.parse(c.arguments), { path: file });
    assert.equal(c.output, NOTE, 'the tool\'s text result');
    assert.equal(c.error, null);
    assert.equal(c.status, 'completed');
    assert.equal(new Set(r.output.map((o) => o.id)).size, 3, 'distinct item ids');

    assert.match(r.output[2].id, /^msg_/);
    assert.equal(r.output_text, `Tool results: ${NOTE}`);

    // The upstream: offered exactly fs's tools by their exposed names; then saw the call and result.
    const reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 2);
    assert.deepEqual(offered(reqs[0]), exposed(['fs']));
    const m = reqs[1].body.messages;
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'tool']);
    assert.equal(m[1].tool_calls[0].function.name, 'fs__read_text_file');
    assert.equal(m[2].tool_call_id, m[1].tool_calls[0].id);
    assert.equal(m[2].content, NOTE);

    assert.deepEqual(await client.responses.retrieve(r.id), r, 'the Response as created, its mcp items too');
  });

  test('not streamed, server_label toolgate (require_approval never): every server\'s tools under their exposed names; two calls in one turn, two mcp_call items', async () => {
    const seen = chats(up).length;
    const r = await client.responses.create({
      model: 'mock-agent',
      input: `call fs__read_text_file ${JSON.stringify({ path: file })}\ncall notes__read_text_file ${JSON.stringify({ path: notesFile })}`,
      tools: [{ type: 'mcp', server_label: 'toolgate', require_approval: 'never' }],
    });
    assert.equal(r.status, 'completed', JSON.stringify(r) + why(gw));
    assert.deepEqual(r.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'mcp_call', 'message'], JSON.stringify(r.output));
    assertListTools(r.output[0], 'toolgate', ['fs', 'notes']);
    const calls = r.output.slice(1, 3).sort(byName);
    assert.deepEqual(calls.map((c) => [c.server_label, c.name, JSON.parse(c.arguments).path, c.output, c.error, c.status]), [
      ['toolgate', 'fs__read_text_file', file, NOTE, null, 'completed'],
      ['toolgate', 'notes__read_text_file', notesFile, OTHER, null, 'completed'],
    ]);
    assert.notEqual(calls[0].id, calls[1].id);
    assert.ok(calls.every((c) => /^mcp_\w+/.test(c.id)));
    assert.equal(r.output_text, `Tool results: ${NOTE} | ${OTHER}`);

    const reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 2);
    assert.deepEqual(offered(reqs[0]), exposed(['fs', 'notes']));
    assert.deepEqual(reqs[1].body.messages.map((x) => x.role), ['user', 'assistant', 'tool', 'tool']);
  });

  test('streamed: list_tools, mcp_call and message events in order, output_index and item_id consistent, sequence_number increasing; the completed Response has the same items as one not streamed', async () => {
    const params = { model: 'mock-agent', input: `call fs__read_text_file ${JSON.stringify({ path: file })}`,
      tools: [{ type: 'mcp', server_label: 'fs' }] };
    const { events, types, texts, final } = await runStream(client.responses.stream(params));
    assert.deepEqual(noArgDeltas(types), streamOf(LIST, CALL('completed'), MESSAGE(deltas(types))), types.join('\n'));
    const output = checkStream(events);
    assert.deepEqual(output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message']);
    assert.deepEqual(withoutParsed(final.output), output, 'the SDK\'s final Response is the completed one');

    // The list: added, in progress, completed, done with the tools.
    const listAdded = events.find((e) => e.type === 'response.output_item.added');
    assert.equal(listAdded.output_index, 0);
    assert.equal(listAdded.item.type, 'mcp_list_tools');
    assertListTools(output[0], 'fs', ['fs']);
    for (const t of ['response.mcp_list_tools.in_progress', 'response.mcp_list_tools.completed']) {
      const e = events.find((x) => x.type === t);
      assert.deepEqual([e.output_index, e.item_id], [0, output[0].id], t);
    }

    // The call: added in progress, its arguments, completed, done with the output.
    const callAdded = events.filter((e) => e.type === 'response.output_item.added')[1];
    assert.equal(callAdded.output_index, 1);
    assert.equal(callAdded.item.type, 'mcp_call');
    assert.equal(callAdded.item.status, 'in_progress');
    assert.equal(callAdded.item.name, 'read_text_file');
    assert.equal(callAdded.item.server_label, 'fs');
    const argsDone = events.find((e) => e.type === 'response.mcp_call_arguments.done');
    assert.deepEqual(JSON.parse(argsDone.arguments), { path: file });
    assert.deepEqual([argsDone.output_index, argsDone.item_id], [1, callAdded.item.id]);
    const c = output[1];
    assert.equal(c.id, callAdded.item.id);
    assert.deepEqual([c.server_label, c.name, c.output, c.error, c.status], ['fs', 'read_text_file', NOTE, null, 'completed']);
    assert.equal(c.arguments, argsDone.arguments);

    // Then the message.
    assert.equal(texts.join(''), `Tool results: ${NOTE}`);
    assert.ok(events.filter((e) => e.type === 'response.output_text.delta').every((e) => e.output_index === 2 && e.item_id === output[2].id));
    assert.equal(final.output_text, `Tool results: ${NOTE}`);

    // The same items as a Response not streamed (but for the ids).
    const plain = await client.responses.create(params);
    const strip = (o) => o.map(({ id, ...rest }) => rest);
    assert.deepEqual(strip(output), strip(plain.output));
    // Stored as streamed.
    assert.deepEqual((await client.responses.retrieve(final.id)).output, output);

    // On the wire: each event's name is its data's type; the same sequence.
    const raw = await rawStream(gw, params);
    assert.equal(raw.status, 200, raw.raw);
    assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
    for (const e of raw.events) assert.equal(e.data.type, e.name);
    const names = raw.events.map((e) => e.name);
    assert.deepEqual(noArgDeltas(names), streamOf(LIST, CALL('completed'), MESSAGE(deltas(names))), names.join('\n'));
    checkStream(raw.events.map((e) => e.data));
  });

  test('a tool that reports an error: the mcp_call is failed with an error (not streamed; streamed with response.mcp_call.failed); the model reads the error', async () => {
    const missing = join(dir, 'no-such-file.txt');
    const params = { model: 'mock-agent', input: `call fs__read_text_file ${JSON.stringify({ path: missing })}`,
      tools: [{ type: 'mcp', server_label: 'fs' }] };
    const seen = chats(up).length;
    const r = await client.responses.create(params);
    assert.equal(r.status, 'completed', JSON.stringify(r));
    assert.deepEqual(r.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message'], JSON.stringify(r.output));
    const c = r.output[1];
    assert.equal(c.name, 'read_text_file');
    assert.equal(c.status, 'failed');
    assert.equal(typeof c.error, 'string');
    assert.ok(c.error.length > 0, 'the error says something');
    assert.ok(c.output == null || typeof c.output === 'string', JSON.stringify(c));
    const tool = chats(up).slice(seen)[1].body.messages.at(-1);
    assert.equal(tool.role, 'tool');
    assert.match(tool.content, /ENOENT/);
    assert.match(r.output_text, /^Tool results: .*ENOENT/);

    // Streamed with create({stream: true}): response.mcp_call.failed instead of .completed.
    const stream = await client.responses.create({ ...params, stream: true });
    const events = [];
    for await (const e of stream) events.push(e);
    const types = events.map((e) => e.type);
    assert.deepEqual(noArgDeltas(types), streamOf(LIST, CALL('failed'), MESSAGE(deltas(types))), types.join('\n'));
    assert.ok(!types.includes('response.mcp_call.completed'));
    const output = checkStream(events);
    assert.equal(output[1].status, 'failed');
    assert.equal(typeof output[1].error, 'string');
    assert.ok(output[1].error.length > 0);
    const failed = events.find((e) => e.type === 'response.mcp_call.failed');
    assert.deepEqual([failed.output_index, failed.item_id], [1, output[1].id]);
  });

  test('allowed_tools (a list, tool_names, read_only; under fs and under toolgate): only those are offered upstream and listed; a tool not allowed does not run', async () => {
    const cases = [
      { label: 'fs', allowed: ['read_text_file'], want: ['fs__read_text_file'] },
      { label: 'fs', allowed: { tool_names: ['read_text_file', 'list_directory'] }, want: ['fs__list_directory', 'fs__read_text_file'] },
      { label: 'toolgate', allowed: ['fs__read_text_file', 'notes__list_directory'], want: ['fs__read_text_file', 'notes__list_directory'] },
      { label: 'toolgate', allowed: { tool_names: ['notes__read_text_file'] }, want: ['notes__read_text_file'] },
    ];
    // read_only: the tools the server marks readOnlyHint (the filesystem server marks its read
    // tools so, write_file, edit_file, move_file and create_directory not).
    const readOnly = (t) => t.annotations?.readOnlyHint === true;
    const ro = exposed(['fs'], readOnly);
    assert.ok(ro.includes('fs__read_text_file') && !ro.includes('fs__write_file') && ro.length < exposed(['fs']).length, ro.join(','));
    cases.push({ label: 'fs', allowed: { read_only: true }, want: ro });

    for (const { label, allowed, want } of cases) {
      const what = `${label} ${JSON.stringify(allowed)}`;
      const seen = chats(up).length;
      const r = await client.responses.create({ model: 'mock-agent', input: 'hello',
        tools: [{ type: 'mcp', server_label: label, allowed_tools: allowed }] });
      assert.equal(r.status, 'completed', what);
      assert.deepEqual(r.output.map((o) => o.type), ['mcp_list_tools', 'message'], what);
      assert.equal(r.output_text, 'no tools needed: hello');
      const reqs = chats(up).slice(seen);
      assert.equal(reqs.length, 1, what);
      assert.deepEqual(offered(reqs[0]), want, `offered upstream: ${what}`);
      const servers = [...new Set(want.map((n) => n.split('__')[0]))];
      assertListTools(r.output[0], label, servers, (t) => want.includes(t.name));
    }

    // The allowed tool runs; one not allowed does not, even when the model names it.
    const seen = chats(up).length;
    const blocked = fresh('not-allowed');
    const tools = [{ type: 'mcp', server_label: 'fs', allowed_tools: ['read_text_file'] }];
    const ok = await client.responses.create({ model: 'mock-agent', tools,
      input: `call fs__read_text_file ${JSON.stringify({ path: file })}` });
    assert.deepEqual(ok.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message']);
    assert.equal(ok.output[1].output, NOTE);
    const no = await client.responses.create({ model: 'mock-agent', tools,
      input: `call fs__write_file ${JSON.stringify({ path: blocked, content: 'must not be written' })}` });
    assert.ok(!existsSync(blocked), 'a tool not in allowed_tools did not run');
    assert.ok(!no.output.some((o) => o.type === 'mcp_call' && o.status === 'completed'), JSON.stringify(no.output));
    assert.ok(chats(up).slice(seen).every((q) => !offered(q).includes('fs__write_file')));
  });

  test('require_approval always: the Response ends with an mcp_approval_request, the tool has not run; approved with previous_response_id it runs, an mcp_call then the answer; the upstream sees the call and its result', async () => {
    const target = fresh('approved');
    const tools = [{ type: 'mcp', server_label: 'fs', require_approval: 'always' }];
    const { first, req, args, input } = await approvalAsked(tools, target, 'written after approval');
    assert.deepEqual((await client.responses.retrieve(first.id)).output, first.output, 'stored with the approval request');

    const seen = chats(up).length;
    const second = await client.responses.create({ model: 'mock-agent', previous_response_id: first.id, tools,
      input: [{ type: 'mcp_approval_response', approval_request_id: req.id, approve: true }] });
    assert.equal(second.status, 'completed', JSON.stringify(second) + why(gw));
    assert.equal(second.previous_response_id, first.id);
    assert.equal(readFileSync(target, 'utf8'), 'written after approval', 'the approved tool ran');
    const rest = afterListTools(second.output);
    assert.deepEqual(rest.map((o) => o.type), ['mcp_call', 'message'], JSON.stringify(second.output));
    const c = rest[0];
    assert.match(c.id, /^mcp_\w+/);
    assert.deepEqual([c.server_label, c.name, c.output, c.error, c.status],
      ['fs', 'write_file', `Successfully wrote to ${target}`, null, 'completed']);
    assert.deepEqual(JSON.parse(c.arguments), args);
    assert.equal(c.approval_request_id, req.id, 'the call names the approval it ran on');
    assert.ok(!second.output.some((o) => o.type === 'mcp_approval_request'), 'nothing left to approve');
    assert.equal(second.output_text, `Tool results: Successfully wrote to ${target}`);

    const reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 1, 'the tool ran before the one turn that answers it');
    const tool = assertContinued(reqs[0], input, args);
    assert.equal(tool.content, `Successfully wrote to ${target}`);
  });

  test('require_approval declined (approve: false): the tool does not run; the upstream reads that the user declined', async () => {
    const target = fresh('declined');
    const tools = [{ type: 'mcp', server_label: 'fs', require_approval: 'always' }];
    const { first, req, args, input } = await approvalAsked(tools, target, 'must not be written');
    const seen = chats(up).length;
    const second = await client.responses.create({ model: 'mock-agent', previous_response_id: first.id, tools,
      input: [{ type: 'mcp_approval_response', approval_request_id: req.id, approve: false }] });
    assert.equal(second.status, 'completed', JSON.stringify(second) + why(gw));
    assert.ok(!existsSync(target), 'a declined tool does not run');
    assert.ok(!second.output.some((o) => o.type === 'mcp_call' && o.status === 'completed'), JSON.stringify(second.output));
    assert.ok(!second.output.some((o) => o.type === 'mcp_approval_request'));
    const reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 1);
    const tool = assertContinued(reqs[0], input, args);
    assert.match(tool.content, /declin|denied|reject|did not approve|not approved/i, tool.content);
    assert.equal(second.output_text, `Tool results: ${tool.content}`);
  });

  test('require_approval {never: {tool_names}}: a listed tool runs at once, one in neither list asks first', async () => {
    const tools = [{ type: 'mcp', server_label: 'fs', require_approval: { never: { tool_names: ['read_text_file'] } } }];
    const r = await client.responses.create({ model: 'mock-agent', tools,
      input: `call fs__read_text_file ${JSON.stringify({ path: file })}` });
    assert.deepEqual(r.output.map((o) => o.type), ['mcp_list_tools', 'mcp_call', 'message'], JSON.stringify(r.output));
    assert.equal(r.output[1].output, NOTE);

    const seen = chats(up).length;
    const asks = await client.responses.create({ model: 'mock-agent', tools,
      input: `call fs__list_directory ${JSON.stringify({ path: dir })}` });
    assert.deepEqual(asks.output.map((o) => o.type), ['mcp_list_tools', 'mcp_approval_request'], JSON.stringify(asks.output));
    assert.equal(asks.output[1].name, 'list_directory');
    assert.deepEqual(JSON.parse(asks.output[1].arguments), { path: dir });
    assert.equal(chats(up).length, seen + 1);
  });

  test('streamed, require_approval {always: {tool_names}}: the mcp_approval_request comes as output_item.added and .done; the streamed continuation runs the tool with mcp_call events', async () => {
    const target = fresh('streamed-approval');
    const args = { path: target, content: 'approved while streaming' };
    const input = `call fs__write_file ${JSON.stringify(args)}`;
    const tools = [{ type: 'mcp', server_label: 'fs', require_approval: { always: { tool_names: ['write_file'] } } }];
    const first = await runStream(client.responses.stream({ model: 'mock-agent', input, tools }));
    assert.deepEqual(first.types, streamOf(LIST, APPROVAL), first.types.join('\n'));
    const out1 = checkStream(first.events);
    assert.deepEqual(out1.map((o) => o.type), ['mcp_list_tools', 'mcp_approval_request']);
    const req = out1[1];
    assert.match(req.id, /^mcpr_\w+/);
    assert.deepEqual([req.server_label, req.name, JSON.parse(req.arguments)], ['fs', 'write_file', args]);
    const added = first.events.filter((e) => e.type === 'response.output_item.added')[1];
    assert.deepEqual([added.output_index, added.item.type, added.item.id], [1, 'mcp_approval_request', req.id]);
    assert.ok(!existsSync(target), 'not run before the approval');
    assert.deepEqual((await client.responses.retrieve(first.final.id)).output, out1);

    const seen = chats(up).length;
    const second = await runStream(client.responses.stream({ model: 'mock-agent', previous_response_id: first.final.id, tools,
      input: [{ type: 'mcp_approval_response', approval_request_id: req.id, approve: true }] }));
    assert.equal(readFileSync(target, 'utf8'), 'approved while streaming');
    const out2 = checkStream(second.events);
    // Whether the continuation lists the tools again is left open: compare without the list.
    const shownEvents = second.events.filter((e) => !e.type.startsWith('response.mcp_list_tools')
      && !(e.output_index !== undefined && out2[e.output_index]?.type === 'mcp_list_tools'));
    const types = shownEvents.map((e) => e.type);
    assert.deepEqual(noArgDeltas(types), streamOf(CALL('completed'), MESSAGE(deltas(types))), types.join('\n'));
    const rest = afterListTools(out2);
    assert.deepEqual(rest.map((o) => o.type), ['mcp_call', 'message']);
    assert.deepEqual([rest[0].name, rest[0].output, rest[0].status], ['write_file', `Successfully wrote to ${target}`, 'completed']);
    assert.equal(second.texts.join(''), `Tool results: Successfully wrote to ${target}`);
    const reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 1);
    assert.equal(assertContinued(reqs[0], input, args).content, `Successfully wrote to ${target}`);
  });

  test('one turn calling a tool that runs and one that needs approval: the mcp_call and the mcp_approval_request in one Response (not streamed, and streamed with consistent output indexes); approved, the model reads both results', async () => {
    const tools = [{ type: 'mcp', server_label: 'fs', require_approval: { never: { tool_names: ['read_text_file'] } } }];
    const ask = (target) => `call fs__read_text_file ${JSON.stringify({ path: file })}\ncall fs__write_file ${JSON.stringify({ path: target, content: 'mixed turn' })}`;
    const check = (output, target) => {
      assert.equal(output[0].type, 'mcp_list_tools', JSON.stringify(output));
      assert.deepEqual(output.slice(1).map((o) => o.type).sort(), ['mcp_approval_request', 'mcp_call'], JSON.stringify(output));
      const run = output.find((o) => o.type === 'mcp_call');
      assert.deepEqual([run.name, run.output, run.status], ['read_text_file', NOTE, 'completed']);
      const req = output.find((o) => o.type === 'mcp_approval_request');
      assert.deepEqual([req.name, JSON.parse(req.arguments)], ['write_file', { path: target, content: 'mixed turn' }]);
      assert.ok(!existsSync(target), 'the write waits for its approval');
      return req;
    };

    // Not streamed; then approved with previous_response_id.
    const target = fresh('mixed');
    let seen = chats(up).length;
    const first = await client.responses.create({ model: 'mock-agent', tools, input: ask(target) });
    assert.equal(first.status, 'completed', JSON.stringify(first) + why(gw));
    const req = check(first.output, target);
    assert.equal(chats(up).length, seen + 1, 'one turn: the read ran, the write waits');
    seen = chats(up).length;
    const second = await client.responses.create({ model: 'mock-agent', tools, previous_response_id: first.id,
      input: [{ type: 'mcp_approval_response', approval_request_id: req.id, approve: true }] });
    assert.equal(readFileSync(target, 'utf8'), 'mixed turn');
    assert.deepEqual(afterListTools(second.output).map((o) => [o.type, o.name ?? null]), [['mcp_call', 'write_file'], ['message', null]]);
    assert.equal(second.output_text, `Tool results: ${NOTE} | Successfully wrote to ${target}`);
    const m = chats(up).slice(seen)[0].body.messages;
    assert.equal(m[0].role, 'user');
    assertCallsAnswered(m.slice(1), ['fs__read_text_file', 'fs__write_file'], [NOTE, `Successfully wrote to ${target}`]);

    // Streamed: the SDK assembles the Response from the events (an output_index out of place
    // fails it), and every index and id agrees with the completed Response.
    const streamedTarget = fresh('mixed-streamed');
    const s = await runStream(client.responses.stream({ model: 'mock-agent', tools, input: ask(streamedTarget) }));
    const output = checkStream(s.events);
    check(output, streamedTarget);
    assert.deepEqual(withoutParsed(s.final.output), output);
  });

  test('stateless (store: false): the whole history sent back (the user message, the mcp_approval_request, the approval) runs the tool', async () => {
    const target = fresh('stateless');
    const tools = [{ type: 'mcp', server_label: 'fs', require_approval: 'always' }];
    const { first, req, args, input } = await approvalAsked(tools, target, 'approved without state', { store: false });
    assert.equal(first.store, false);
    const seen = chats(up).length;
    const second = await client.responses.create({ model: 'mock-agent', store: false, tools, input: [
      { role: 'user', content: input },
      req,
      { type: 'mcp_approval_response', approval_request_id: req.id, approve: true },
    ] });
    assert.equal(second.status, 'completed', JSON.stringify(second) + why(gw));
    assert.equal(readFileSync(target, 'utf8'), 'approved without state');
    const rest = afterListTools(second.output);
    assert.deepEqual(rest.map((o) => o.type), ['mcp_call', 'message'], JSON.stringify(second.output));
    assert.deepEqual([rest[0].name, rest[0].output, rest[0].status], ['write_file', `Successfully wrote to ${target}`, 'completed']);
    assert.equal(second.output_text, `Tool results: Successfully wrote to ${target}`);
    const reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 1);
    assert.equal(assertContinued(reqs[0], input, args).content, `Successfully wrote to ${target}`);
  });

  test('400s in OpenAI\'s shape: an mcp_approval_response that matches no pending call (param input), a server_label naming no configured server (param tools); nothing reaches the upstream, nothing runs', async () => {
    const target = fresh('unmatched');
    const tools = [{ type: 'mcp', server_label: 'fs', require_approval: 'always' }];
    const { first, req, input } = await approvalAsked(tools, target, 'must not be written');
    const seen = chats(up).length;

    // With previous_response_id: an id that is not the pending request's.
    const wrong = await call(gw, 'POST', '/v1/responses', { model: 'mock-agent', previous_response_id: first.id, tools,
      input: [{ type: 'mcp_approval_response', approval_request_id: `${req.id}x`, approve: true }] });
    assertOpenAIError(wrong, 400, { param: 'input' }, gw);
    // Without: the history has no such request.
    const stateless = await call(gw, 'POST', '/v1/responses', { model: 'mock-agent', store: false, tools, input: [
      { role: 'user', content: input },
      { type: 'mcp_approval_response', approval_request_id: 'mcpr_matchesnothing', approve: true }] });
    assertOpenAIError(stateless, 400, { param: 'input' }, gw);
    await assert.rejects(client.responses.create({ model: 'mock-agent', previous_response_id: first.id, tools,
      input: [{ type: 'mcp_approval_response', approval_request_id: 'mcpr_matchesnothing', approve: true }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'input');

    // A new message after the approval (the results must come right after the turn that asked).
    const mixed = await call(gw, 'POST', '/v1/responses', { model: 'mock-agent', previous_response_id: first.id, tools,
      input: [{ type: 'mcp_approval_response', approval_request_id: req.id, approve: true }, { role: 'user', content: 'and then?' }] });
    assertOpenAIError(mixed, 400, { param: 'input' }, gw);
    // Approving a call the gateway never asked about: the same tool, but the request says it needs no approval.
    const needless = await call(gw, 'POST', '/v1/responses', { model: 'mock-agent', previous_response_id: first.id,
      tools: [{ type: 'mcp', server_label: 'fs', require_approval: 'never' }],
      input: [{ type: 'mcp_approval_response', approval_request_id: req.id, approve: true }] });
    assertOpenAIError(needless, 400, { param: 'input' }, gw);
    assert.match(needless.json.error.message, /needs approval/);

    // An unknown server_label.
    const unknown = await call(gw, 'POST', '/v1/responses', { model: 'mock-agent', input: 'x',
      tools: [{ type: 'mcp', server_label: 'nowhere' }] });
    assertOpenAIError(unknown, 400, { param: 'tools' }, gw);
    assert.match(unknown.json.error.message, /nowhere/);
    await assert.rejects(client.responses.create({ model: 'mock-agent', input: 'x', stream: true,
      tools: [{ type: 'mcp', server_label: 'nowhere', require_approval: 'never' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'tools');

    assert.equal(chats(up).length, seen, 'nothing refused reached the upstream');
    assert.ok(!existsSync(target), 'nothing ran');
  });

  test('hybrid: a client function tool beside an mcp tool: the gateway\'s call as an mcp_call, the client\'s as a function_call, in one Response; its output finishes the turn', async () => {
    const tools = [{ type: 'mcp', server_label: 'fs' }, weatherTool];
    let seen = chats(up).length;
    const hybrid = await client.responses.create({ model: 'mock-agent', tools,
      input: `call fs__read_text_file ${JSON.stringify({ path: file })}\ncall get_weather {"city":"Paris"}` });
    assert.equal(hybrid.status, 'completed', JSON.stringify(hybrid) + why(gw));
    assert.equal(hybrid.output[0].type, 'mcp_list_tools');
    assert.deepEqual(hybrid.output.slice(1).map((o) => o.type).sort(), ['function_call', 'mcp_call'], JSON.stringify(hybrid.output));
    const mc = hybrid.output.find((o) => o.type === 'mcp_call');
    assert.deepEqual([mc.server_label, mc.name, JSON.parse(mc.arguments), mc.output, mc.status],
      ['fs', 'read_text_file', { path: file }, NOTE, 'completed']);
    const fc = hybrid.output.find((o) => o.type === 'function_call');
    assert.deepEqual([fc.name, JSON.parse(fc.arguments)], ['get_weather', { city: 'Paris' }]);
    assert.ok(fc.call_id);
    let reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 1, 'the loop handed the client\'s call back after running its own');
    assert.deepEqual(offered(reqs[0]), [...exposed(['fs']), 'get_weather'].sort());

    seen = chats(up).length;
    const done = await client.responses.create({ model: 'mock-agent', tools, previous_response_id: hybrid.id,
      input: [{ type: 'function_call_output', call_id: fc.call_id, output: 'rainy' }] });
    assert.equal(done.output_text, `Tool results: ${NOTE} | rainy`);
    assert.deepEqual(afterListTools(done.output).map((o) => o.type), ['message']);
    reqs = chats(up).slice(seen);
    assert.equal(reqs.length, 1);
    // The model sees both of its calls (under their exposed names) and both results, each result
    // after the assistant turn that made the call (one turn with both calls, or one per call).
    const m = reqs[0].body.messages;
    assert.deepEqual(m[0], { role: 'user', content: `call fs__read_text_file ${JSON.stringify({ path: file })}\ncall get_weather {"city":"Paris"}` });
    assertCallsAnswered(m.slice(1), ['fs__read_text_file', 'get_weather'], [NOTE, 'rainy']);
  });
});
