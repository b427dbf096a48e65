// Routing inside the agent loop: every model turn of a loop is routed on its own. Two fake
// OpenAI-compatible upstreams running the "mock-agent" model (lib/fake_upstream.mjs: a user line
// "call TOOL {json}" becomes a tool call; a last message of role "tool" is answered with the tool
// results), each able to fail chosen turns (its opt-in `intercept`); the MCP tools come from
// @modelcontextprotocol/server-everything over stdio. Every scenario gets its own gateway and its
// own upstreams, so breaker and latency state never leaks from one test into another.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, readSse, waitFor } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const T = { timeout: 60000 };

// --- helpers -------------------------------------------------------------------------------------

const hasToolMessage = (rec) => (rec.body?.messages ?? []).some((m) => m.role === 'tool');
const failToolTurns = (status) => (rec) => (hasToolMessage(rec) ? status : undefined);
const failFirstTurns = (status) => (rec) => (hasToolMessage(rec) ? undefined : status);

// Starts upstreams A and B (with their intercepts), a gateway with yaml(ups), waits until the MCP
// server is up, runs fn, and always stops everything. A sanitizer report in the gateway's stderr
// fails the test.
async function scenario({ a: interceptA = null, b: interceptB = null }, yaml, fn) {
  const ups = {};
  let gw;
  try {
    ups.a = await startFakeUpstream({ intercept: interceptA });
    ups.b = await startFakeUpstream({ intercept: interceptB });
    gw = await startGateway(yaml(ups));
    await waitFor(async () => {
      const s = (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data;
      return s.length > 0 && s.every((x) => x.status === 'up');
    }, 20000, 'MCP server up');
    await fn(gw, ups);
  } finally {
    await gw?.stop();
    for (const u of Object.values(ups)) await u.close();
  }
  assert.doesNotMatch(gw.logs, /AddressSanitizer|LeakSanitizer|runtime error:/, `sanitizer report:\n${gw.logs.slice(-4000)}`);
}

const providers = (ups) => `providers_from_env: false
providers:
  - { name: a, type: openai, base_url: "${ups.a.url}", api_key: sk-a-secret, timeout: 5s, models: [mock-agent] }
  - { name: b, type: openai, base_url: "${ups.b.url}", api_key: sk-b-secret, timeout: 5s, models: [mock-agent] }
mcp_servers:
  - { name: everything, command: node, args: ["${everything}", stdio] }
`;

// A fallback pool [a, b]: a is tried once per turn (no retry) and has no breaker.
const fallbackAB = (ups) => providers(ups) + `
strategy:
  mode: fallback
  targets:
    - provider: a
      retry: { attempts: 1 }
      circuit_breaker: false
    - provider: b
agent_loop:
  tool_timeout: 10s
`;

const user = (content) => [{ role: 'user', content }];

// A chat request; streams are read whole.
async function chat(gw, body) {
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const out = { status: res.status, headers: Object.fromEntries(res.headers) };
  if (body.stream && res.status === 200 && /event-stream/.test(res.headers.get('content-type') ?? '')) {
    out.events = await readSse(res);
    out.chunks = out.events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e));
    out.text = out.chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
  } else {
    const raw = await res.text();
    try { out.json = JSON.parse(raw); } catch { out.raw = raw; }
    out.text = out.json?.choices?.[0]?.message?.content;
  }
  return out;
}

const routeHeaders = (r) => ({ provider: r.headers['x-toolgate-provider'], model: r.headers['x-toolgate-model'], attempts: r.headers['x-toolgate-attempts'] });
// What each upstream saw, for failure messages.
const seen = (ups) => Object.fromEntries(Object.entries(ups).map(([n, u]) => [n, u.state.requests.map((q) => ({
  url: q.url, model: q.body?.model, stream: q.body?.stream ?? false, roles: (q.body?.messages ?? []).map((m) => m.role).join(','),
  intercepted: q.intercepted ?? null }))]));
const why = (r, gw, ups) => `response: ${JSON.stringify(r)}\nupstreams saw: ${JSON.stringify(seen(ups))}\n` +
  `--- gateway stderr (tail) ---\n${gw.logs.slice(-3000)}`;

// The one access-log line of the chat request.
async function chatLogLine(gw) {
  await waitFor(() => gw.accessLog().some((l) => l.route === '/v1/chat/completions'), 3000, 'the access log line');
  const lines = gw.accessLog().filter((l) => l.route === '/v1/chat/completions');
  assert.equal(lines.length, 1, JSON.stringify(lines));
  return lines[0];
}

// The tool-result turn: the assistant's call to everything__echo and its result, in that order.
function assertToolTurn(rec, text) {
  const m = rec.body.messages;
  assert.equal(m.length, 3, JSON.stringify(m));
  assert.equal(m[0].role, 'user');
  assert.equal(m[1].role, 'assistant');
  assert.equal(m[1].tool_calls.length, 1);
  assert.equal(m[1].tool_calls[0].function.name, 'everything__echo');
  assert.deepEqual({ role: m[2].role, content: m[2].content, id: m[2].tool_call_id },
    { role: 'tool', content: `Echo: ${text}`, id: m[1].tool_calls[0].id });
}

// The first turn: the user's message only, offered the MCP tools.
function assertFirstTurn(rec) {
  assert.equal(rec.url, '/v1/chat/completions');
  assert.equal(hasToolMessage(rec), false);
  assert.deepEqual(rec.body.messages.map((m) => m.role), ['user']);
  assert.ok((rec.body.tools ?? []).some((t) => t.function?.name === 'everything__echo'), 'the MCP tools are offered');
}

// --- 1. a failing tool-result turn falls back on its own ------------------------------------------

describe('a fallback pool [a, b]; A fails every turn that carries a tool result', () => {
  test('non-streamed: turn 1 on A, turn 2 fails on A and falls back to B; the answer carries the tool result', T, async () => {
    await scenario({ a: failToolTurns(500) }, fallbackAB, async (gw, ups) => {
      const { a, b } = ups;
      const r = await chat(gw, { model: 'mock-agent', messages: user('call everything__echo {"message":"hi"}') });
      assert.equal(r.status, 200, why(r, gw, ups));
      assert.equal(r.text, 'Tool results: Echo: hi', why(r, gw, ups));
      assert.equal(r.json.choices[0].finish_reason, 'stop');
      assert.equal(r.json.choices[0].message.tool_calls, undefined);
      assert.equal(r.json.toolgate.iterations, 2);
      assert.deepEqual(r.json.toolgate.tool_calls.map((c) => [c.name, c.ok]), [['everything__echo', true]]);
      assert.deepEqual(routeHeaders(r), { provider: 'b', model: 'mock-agent', attempts: '3' }, why(r, gw, ups));

      const [a1, a2] = a.state.requests;
      assert.equal(a.state.requests.length, 2, why(r, gw, ups));
      assert.equal(b.state.requests.length, 1, why(r, gw, ups));
      assertFirstTurn(a1);
      assert.equal(a1.intercepted, undefined, 'A answered turn 1');
      assert.equal(a2.intercepted, 500, 'A failed turn 2');
      assertToolTurn(a2, 'hi');
      const [b1] = b.state.requests;
      assertToolTurn(b1, 'hi');
      assert.equal(b1.body.model, 'mock-agent');
      assert.deepEqual(b1.body, a2.body, 'B gets the same turn A failed');
      assert.equal(b1.headers.authorization, 'Bearer sk-b-secret');

      const line = await chatLogLine(gw);
      assert.deepEqual({ provider: line.provider, attempts: line.attempts, iterations: line.iterations, tool_calls: line.tool_calls },
        { provider: 'b', attempts: 3, iterations: 2, tool_calls: 1 }, JSON.stringify(line));
    });
  });

  test('streamed: one well-formed answer ending in [DONE]; B answered the tool-result turn', T, async () => {
    await scenario({ a: failToolTurns(500) }, fallbackAB, async (gw, ups) => {
      const { a, b } = ups;
      const r = await chat(gw, { model: 'mock-agent', stream: true, messages: user('call everything__echo {"message":"hi"}') });
      assert.equal(r.status, 200, why(r, gw, ups));
      assert.equal(r.text, 'Tool results: Echo: hi', why(r, gw, ups));
      assert.equal(r.events.at(-1), '[DONE]');
      assert.equal(r.events.filter((e) => e === '[DONE]').length, 1);
      assert.equal(r.chunks.find((c) => c.error), undefined, why(r, gw, ups));
      assert.equal(new Set(r.chunks.map((c) => c.id)).size, 1, 'one answer: one id');
      assert.equal(r.chunks.filter((c) => c.choices?.[0]?.delta?.role).length, 1, 'one role chunk');
      assert.deepEqual(r.chunks.map((c) => c.choices?.[0]?.finish_reason).filter(Boolean), ['stop']);
      assert.ok(r.chunks.every((c) => c.choices?.[0]?.delta?.tool_calls === undefined), 'the gateway\'s own tool calls stay inside');

      assert.equal(a.state.requests.length, 2, why(r, gw, ups));
      assert.equal(b.state.requests.length, 1, why(r, gw, ups));
      assertFirstTurn(a.state.requests[0]);
      assert.equal(a.state.requests[0].intercepted, undefined);
      assert.equal(a.state.requests[1].intercepted, 500);
      const [b1] = b.state.requests;
      assertToolTurn(b1, 'hi');
      assert.equal(b1.body.stream, true);

      // The headers go out with the first content, turn 1's role chunk from A: they name that turn.
      // The access log line, written at the end, counts every turn.
      assert.deepEqual(routeHeaders(r), { provider: 'a', model: 'mock-agent', attempts: '1' }, why(r, gw, ups));
      const line = await chatLogLine(gw);
      assert.deepEqual({ provider: line.provider, attempts: line.attempts, iterations: line.iterations, tool_calls: line.tool_calls },
        { provider: 'b', attempts: 3, iterations: 2, tool_calls: 1 }, JSON.stringify(line));
    });
  });
});

// --- 2. the reverse: turn 1 falls back, turn 2 starts at A again ----------------------------------

test('A fails the first turn with 503: it falls back to B; the tool-result turn goes to A again', T, async () => {
  await scenario({ a: failFirstTurns(503) }, fallbackAB, async (gw, ups) => {
    const { a, b } = ups;
    const r = await chat(gw, { model: 'mock-agent', messages: user('call everything__echo {"message":"back to a"}') });
    assert.equal(r.status, 200, why(r, gw, ups));
    assert.equal(r.text, 'Tool results: Echo: back to a', why(r, gw, ups));
    assert.equal(r.json.toolgate.iterations, 2);
    assert.deepEqual(routeHeaders(r), { provider: 'a', model: 'mock-agent', attempts: '3' }, why(r, gw, ups));

    assert.equal(a.state.requests.length, 2, why(r, gw, ups));
    assert.equal(b.state.requests.length, 1, why(r, gw, ups));
    const [a1, a2] = a.state.requests;
    const [b1] = b.state.requests;
    assertFirstTurn(a1);
    assert.equal(a1.intercepted, 503, 'A failed turn 1');
    assertFirstTurn(b1);
    assert.deepEqual(b1.body, a1.body, 'B gets the same turn A failed');
    assertToolTurn(a2, 'back to a');
    assert.equal(a2.intercepted, undefined, 'A answered turn 2');

    const line = await chatLogLine(gw);
    assert.deepEqual({ provider: line.provider, attempts: line.attempts, iterations: line.iterations, tool_calls: line.tool_calls },
      { provider: 'a', attempts: 3, iterations: 2, tool_calls: 1 }, JSON.stringify(line));
  });
});

// --- 3. agent_loop.tool_turn_model ----------------------------------------------------------------

test('tool_turn_model: turn 1 goes to the default pool (A), the tool-result turn to the toolpool (B)', T, async () => {
  const yaml = (ups) => providers(ups) + `
strategy:
  mode: single
  targets: [ { provider: a } ]
pools:
  - name: toolpool
    mode: single
    targets: [ { provider: b, model: mock-agent } ]
agent_loop:
  tool_timeout: 10s
  tool_turn_model: toolpool
`;
  await scenario({}, yaml, async (gw, ups) => {
    const { a, b } = ups;
    const r = await chat(gw, { model: 'mock-agent', messages: user('call everything__echo {"message":"pooled"}') });
    assert.equal(r.status, 200, why(r, gw, ups));
    assert.equal(r.text, 'Tool results: Echo: pooled', why(r, gw, ups));
    assert.equal(r.json.toolgate.iterations, 2);
    assert.deepEqual(routeHeaders(r), { provider: 'b', model: 'mock-agent', attempts: '2' }, why(r, gw, ups));

    assert.equal(a.state.requests.length, 1, why(r, gw, ups));
    assert.equal(b.state.requests.length, 1, why(r, gw, ups));
    assertFirstTurn(a.state.requests[0]);
    assert.equal(a.state.requests[0].body.model, 'mock-agent');
    assert.ok(a.state.requests.every((q) => !hasToolMessage(q)), 'A never sees a tool message');
    const [b1] = b.state.requests;
    assertToolTurn(b1, 'pooled');
    assert.equal(b1.body.model, 'mock-agent', 'the pool target\'s model, not the pool name');
    assert.equal(b1.headers.authorization, 'Bearer sk-b-secret');
  });
});

// --- 4. the openai SDK ----------------------------------------------------------------------------

test('openai SDK: chat.completions.create through the loop while A fails tool-result turns', T, async () => {
  await scenario({ a: failToolTurns(500) }, fallbackAB, async (gw, ups) => {
    const { a, b } = ups;
    const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'sdk-client-key', maxRetries: 0, timeout: 20000 });
    const { data, response } = await client.chat.completions
      .create({ model: 'mock-agent', messages: user('call everything__echo {"message":"sdk"}') }).withResponse();
    assert.equal(data.choices[0].message.content, 'Tool results: Echo: sdk', JSON.stringify(seen(ups)));
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.equal(response.headers.get('x-toolgate-provider'), 'b');
    assert.equal(response.headers.get('x-toolgate-attempts'), '3');
    assert.equal(a.state.requests.length, 2, JSON.stringify(seen(ups)));
    assert.equal(b.state.requests.length, 1, JSON.stringify(seen(ups)));
    assertToolTurn(b.state.requests[0], 'sdk');
  });
});
