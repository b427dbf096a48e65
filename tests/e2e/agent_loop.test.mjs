// The agent loop end to end: the official `openai` SDK sends one request; toolgate offers the MCP
// tools of @modelcontextprotocol/server-everything (stdio) to a fake upstream model that calls them
// (streamed in fragments, as real providers do), runs the calls itself and returns the final answer.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, repoRoot, waitFor } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const fixture = join(here, 'fixtures', 'fixture_server.mjs');


const user = (content) => [{ role: 'user', content }];

describe('agent loop with server-everything and the openai SDK', () => {
  let upstream, gw, client;
  const chat = (body, headers = {}) => fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
providers:
  - name: local
    type: openai
    base_url: ${upstream.url}
    api_key: sk-upstream
    models: [mock-agent, mock-ok]
mcp_servers:
  - { name: everything, command: node, args: ["${everything}", stdio] }
  - { name: fixture, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" }, timeout: 20s }
agent_loop:
  tool_timeout: 10s
  keepalive_interval: 200ms
`);
    client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'any-client-key', maxRetries: 0, timeout: 20000 });
    await waitFor(async () => {
      const s = (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data;
      return s.every((x) => x.status === 'up');
    }, 20000, 'MCP servers up');
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  test('non-streaming: the final answer carries the real tool result, usage summed, the calls listed', async () => {
    const before = upstream.state.requests.length;
    const r = await client.chat.completions.create({ model: 'mock-agent', messages: user('call everything__echo {"message":"hello loop"}') });
    assert.equal(r.choices[0].message.content, 'Tool results: Echo: hello loop');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].message.tool_calls, undefined);
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens], [22, 14, 36]);
    assert.equal(r.toolgate.iterations, 2);
    assert.equal(r.toolgate.tool_calls.length, 1);
    assert.equal(r.toolgate.tool_calls[0].name, 'everything__echo');
    assert.equal(r.toolgate.tool_calls[0].ok, true);
    const reqs = upstream.state.requests.slice(before);
    assert.equal(reqs.length, 2);
    // The first turn was offered the MCP tools; the second saw the call and its result.
    const offered = reqs[0].body.tools.map((t) => t.function.name);
    assert.ok(offered.includes('everything__echo') && offered.includes('everything__get-sum'), offered.join(','));
    const m = reqs[1].body.messages;
    assert.equal(m[1].role, 'assistant');
    assert.equal(m[1].tool_calls[0].function.name, 'everything__echo');
    assert.deepEqual({ role: m[2].role, content: m[2].content }, { role: 'tool', content: 'Echo: hello loop' });
  });

  test('streaming: one well-formed message through the SDK, no intermediate finish_reason, usage summed', async () => {
    const stream = await client.chat.completions.create({
      model: 'mock-agent', stream: true, stream_options: { include_usage: true },
      messages: user('call everything__echo {"message":"streamed"}'),
    });
    let content = '', roles = 0, ids = new Set(), finishes = [], usage = null;
    for await (const chunk of stream) {
      ids.add(chunk.id);
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices[0];
      if (!c) continue;
      if (c.delta.role) roles++;
      if (c.delta.content) content += c.delta.content;
      assert.equal(c.delta.tool_calls, undefined, 'the gateway\'s own tool calls never reach the client');
      if (c.finish_reason) finishes.push(c.finish_reason);
    }
    assert.equal(content, 'Tool results: Echo: streamed');
    assert.equal(roles, 1);
    assert.equal(ids.size, 1);
    assert.deepEqual(finishes, ['stop']);
    assert.equal(usage.total_tokens, 36);
  });

  test('streaming: the SDK stream helper assembles the same final message', async () => {
    const runner = client.chat.completions.stream({ model: 'mock-agent', messages: user('call everything__echo {"message":"helper"}') });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0].message.content, 'Tool results: Echo: helper');
    assert.equal(final.choices[0].finish_reason, 'stop');
  });

  test('the raw stream shows tool progress as SSE comments and ends with one [DONE]', async () => {
    const res = await chat({ model: 'mock-agent', stream: true, messages: user('call everything__echo {"message":"raw"}') });
    const text = await res.text();
    assert.match(text, /^: tool everything__echo started$/m);
    assert.match(text, /^: tool everything__echo done in \d+ ms$/m);
    assert.equal(text.split('data: [DONE]').length, 2);
    assert.ok(text.trimEnd().endsWith('data: [DONE]'));
  });

  test('two tool calls in one turn both run, on two different tools', async () => {
    const r = await client.chat.completions.create({
      model: 'mock-agent',
      messages: user('call everything__echo {"message":"one"}\ncall everything__get-sum {"a":2,"b":3}'),
    });
    assert.equal(r.choices[0].message.content, 'Tool results: Echo: one | The sum of 2 and 3 is 5.');
    assert.deepEqual(r.toolgate.tool_calls.map((c) => [c.name, c.ok]), [['everything__echo', true], ['everything__get-sum', true]]);
  });

  test('the calls of one turn run in parallel', async () => {
    // Two calls of 1 s each (server-everything's long-running operation) finish in well under 2 s.
    const t0 = Date.now();
    const r = await client.chat.completions.create({
      model: 'mock-agent',
      messages: user('call everything__trigger-long-running-operation {"duration":1,"steps":2}\ncall everything__trigger-long-running-operation {"duration":1,"steps":2}'),
    });
    const elapsed = Date.now() - t0;
    assert.equal(r.toolgate.tool_calls.length, 2);
    assert.ok(r.toolgate.tool_calls.every((c) => c.ok && c.duration_ms >= 900), JSON.stringify(r.toolgate.tool_calls));
    assert.ok(elapsed < 1900, `two 1 s calls took ${elapsed} ms in total`);
  });

  test('a failing tool becomes a tool message and the model still answers', async () => {
    const r = await client.chat.completions.create({
      model: 'mock-agent', messages: user('call everything__nope {}\ncall everything__get-sum {"a":"x"}'),
    });
    assert.match(r.choices[0].message.content, /no tool named 'everything__nope'/);
    assert.match(r.choices[0].message.content, /Error/);
    assert.deepEqual(r.toolgate.tool_calls.map((c) => c.ok), [false, false]);
  });

  test('hybrid: MCP calls run in the gateway, client tool calls come back; the follow-up continues the loop', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const messages = user('call everything__echo {"message":"from mcp"}\ncall get_weather {"city":"Paris"}');
    const r = await client.chat.completions.create({ model: 'mock-agent', messages, tools });
    const msg = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, 1);
    assert.equal(msg.tool_calls[0].function.name, 'get_weather');
    assert.equal(msg.tool_calls[0].function.arguments, '{"city":"Paris"}');
    assert.deepEqual(r.toolgate.tool_calls.map((c) => c.name), ['everything__echo']);
    // The standard follow-up: the assistant message as received, plus the client's tool result.
    const before = upstream.state.requests.length;
    const follow = await client.chat.completions.create({
      model: 'mock-agent', tools,
      messages: [...messages, msg, { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: 'sunny, 21 C' }],
    });
    assert.equal(follow.choices[0].message.content, 'Tool results: Echo: from mcp | sunny, 21 C');
    const sent = upstream.state.requests[before].body.messages;
    assert.equal(sent[1].tool_calls.length, 2, 'the model sees its full earlier turn again');
  });

  test('a follow-up the gateway has no record of reaches the model exactly as sent', async () => {
    const messages = [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_unknown', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_unknown', content: 'rainy' },
    ];
    const before = upstream.state.requests.length;
    const r = await client.chat.completions.create({ model: 'mock-agent', messages });
    assert.equal(r.choices[0].message.content, 'Tool results: rainy');
    assert.deepEqual(upstream.state.requests[before].body.messages, messages);
  });

  test('hybrid while streaming: client tool-call fragments reach the SDK, renumbered, finish_reason tool_calls', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }];
    const runner = client.chat.completions.stream({
      model: 'mock-agent', tools, messages: user('call everything__echo {"message":"x"}\ncall get_weather {"city":"Oslo"}'),
    });
    const final = await runner.finalChatCompletion();
    const msg = final.choices[0].message;
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, 1);
    assert.equal(msg.tool_calls[0].function.name, 'get_weather');
    assert.equal(msg.tool_calls[0].function.arguments, '{"city":"Oslo"}');
  });

  test('headers narrow the injected tools, or switch MCP off', async () => {
    let before = upstream.state.requests.length;
    let r = await chat({ model: 'mock-ok', messages: user('hi') }, { 'x-toolgate-mcp-servers': 'none' });
    assert.equal(r.status, 200);
    assert.equal(upstream.state.requests[before].body.tools, undefined);
    before = upstream.state.requests.length;
    r = await chat({ model: 'mock-ok', messages: user('hi') }, { 'x-toolgate-mcp-tools': 'everything__echo, fixture__pid' });
    assert.deepEqual(upstream.state.requests[before].body.tools.map((t) => t.function.name).sort(), ['everything__echo', 'fixture__pid']);
    before = upstream.state.requests.length;
    r = await chat({ model: 'mock-ok', messages: user('hi') }, { 'x-toolgate-mcp-servers': 'fixture' });
    assert.ok(upstream.state.requests[before].body.tools.every((t) => t.function.name.startsWith('fixture__')));
    r = await chat({ model: 'mock-ok', messages: user('hi') }, { 'x-toolgate-mcp-servers': 'nosuch' });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, 'unknown_mcp_server');
    // tool_choice "none" from the client: no tools are offered at all.
    before = upstream.state.requests.length;
    await chat({ model: 'mock-ok', messages: user('hi'), tool_choice: 'none' });
    assert.equal(upstream.state.requests[before].body.tools, undefined);
  });

  test('n > 1 with MCP tools is a clear 400', async () => {
    const r = await chat({ model: 'mock-agent', n: 2, messages: user('hi') });
    assert.equal(r.status, 400);
    const e = (await r.json()).error;
    assert.equal(e.code, 'unsupported_n');
    assert.match(e.message, /x-toolgate-mcp-servers: none/);
  });

  test('limits from headers: max-iterations ends with an honest message and finish_reason length', async () => {
    const r = await client.chat.completions.create(
      { model: 'mock-agent', messages: user('call everything__echo {"message":"x"}') },
      { headers: { 'x-toolgate-max-iterations': '1' } });
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.match(r.choices[0].message.content, /stopped after 1 model turns \(max_iterations\)/);
    assert.equal(r.toolgate.stopped, 'max_iterations');
    const bad = await chat({ model: 'mock-agent', messages: user('x') }, { 'x-toolgate-tool-timeout': 'soon' });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, 'invalid_limit_header');
  });

  test('a tool that hangs times out per call (x-toolgate-tool-timeout); the loop goes on', async () => {
    const r = await client.chat.completions.create(
      { model: 'mock-agent', messages: user('call fixture__hang {}') },
      { headers: { 'x-toolgate-tool-timeout': '300ms' } });
    assert.match(r.choices[0].message.content, /could not be run \(timeout\)/);
    assert.equal(r.toolgate.tool_calls[0].error, 'timeout');
  });

  test('a client that leaves mid-loop cancels the tool call upstream (notifications/cancelled)', async () => {
    const count = async () => Number((await (await fetch(gw.url + '/v1/mcp/tools/call', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'fixture__cancellations' }) })).json()).result.content[0].text);
    const start = await count();
    const res = await chat({ model: 'mock-agent', stream: true, messages: user('call fixture__hang {}') });
    const reader = res.body.getReader();
    let seen = '';
    while (!seen.includes(': tool fixture__hang started')) seen += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    await waitFor(async () => (await count()) === start + 1, 5000, 'the fixture to see notifications/cancelled');
  });
});

describe('the offline default config (examples/gateway.yaml)', () => {
  let gw;
  before(async () => {
    const yaml = readFileSync(join(repoRoot, 'examples', 'gateway.yaml'), 'utf8');
    gw = await startGateway(yaml);
    await waitFor(async () => (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.every((s) => s.status === 'up'),
      10000, 'the demo MCP server');
  });
  after(async () => { await gw?.stop(); });

  test('the demo model calls the built-in demo MCP server and answers with its result', async () => {
    const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'unused', maxRetries: 0 });
    const r = await client.chat.completions.create({ model: 'toolgate-demo', messages: user('what time is it?') });
    assert.match(r.choices[0].message.content, /^The tool returned: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000 \(UTC\)$/);
    assert.equal(r.toolgate.tool_calls[0].name, 'demo__get_current_time');
    let text = '';
    const s = await client.chat.completions.create({ model: 'toolgate-demo', stream: true, messages: user('please add') });
    for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'The tool returned: 42');
  });

  test('examples/agent_session.sh runs as written against it, every step answered', async () => {
    const script = join(repoRoot, 'examples', 'agent_session.sh');
    const { stdout } = await execFileP('bash', [script, gw.url], { timeout: 60000, maxBuffer: 8 * 1024 * 1024 });
    const step = (n) => stdout.slice(stdout.indexOf(`== ${n}.`), stdout.indexOf(`== ${n + 1}.`) >= 0 ? stdout.indexOf(`== ${n + 1}.`) : undefined);
    assert.match(step(1), /Hello! I am toolgate's offline demo model/);
    assert.match(step(2), /"content":"The tool returned: \d{4}-/);
    assert.match(step(3), /data: \[DONE\]/);
    assert.match(step(4), /"finish_reason":"tool_calls"/);
    assert.match(step(5), /The tool returned: sunny, 21 C/);
    assert.match(step(7), /"object":"response".*"output_text","text":"The tool returned: \d{4}-/);
    assert.match(step(8), /event: message_start[\s\S]*"text_delta"[\s\S]*event: message_stop/);
    assert.match(step(9), /"type":"mcp_approval_request","id":"mcpr_[\s\S]*"type":"mcp_call"[\s\S]*"text":"The tool returned: \d{4}-/);
  });
});

// agent_loop.max_concurrent: past it, a new agent loop is refused at once with 503 overloaded and
// Retry-After (nothing queues); requests that run no loop are not counted; the slot comes back.
describe('agent_loop.max_concurrent', () => {
  let upstream, gw;
  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${upstream.url}", models: [mock-agent, mock-ok] }
mcp_servers:
  - { name: fixture, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" } }
agent_loop: { max_concurrent: 1, tool_timeout: 20s }
`);
    await waitFor(async () => (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.every((x) => x.status === 'up'),
      20000, 'MCP server up');
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });
  const chat = (content, headers = {}) => fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'mock-agent', messages: user(content) }) });

  test('one loop runs; a second is refused with 503 overloaded at once; a request without a loop is served', async () => {
    const seen = upstream.state.requests.length;
    const first = chat('call fixture__slow {"ms":1500}');
    // The first loop is running once its first turn reached the model.
    await waitFor(() => upstream.state.requests.length > seen, 10000, 'the first loop to start');
    const start = Date.now();
    const second = await chat('call fixture__slow {"ms":1}');
    assert.equal(second.status, 503);
    assert.equal(second.headers.get('retry-after'), '1');
    const body = await second.json();
    assert.equal(body.error.code, 'overloaded');
    assert.equal(body.error.type, 'server_error');
    assert.match(body.error.message, /limit of 1 agent loops/);
    assert.ok(Date.now() - start < 1000, 'refused at once, not queued');
    const plain = await chat('hello', { 'x-toolgate-mcp-servers': 'none' });
    assert.equal(plain.status, 200, 'a request that runs no loop does not count');
    const r = await first;
    assert.equal(r.status, 200);
    assert.match((await r.json()).choices[0].message.content, /slow done/);
    const again = await chat('call fixture__slow {"ms":1}');
    assert.equal(again.status, 200, 'the slot came back');
  });
});
