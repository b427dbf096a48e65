#!/usr/bin/env node
// toolgate soak test: the gateway under a steady mixed load for a long time, to see leaks (memory,
// file descriptors), crashes and rare failures that a benchmark's short run never meets.
//
// Load: open loop at a fixed arrival rate (requests are started on a schedule, not after the last
// one ended; at most --max-inflight in flight, an arrival past that is counted as an error), mixed:
//   agent       streamed agent loop: a fake OpenAI model calls a tool of the real
//               @modelcontextprotocol/server-everything (stdio, echo or get-sum), then answers
//               with the tool's result; checked: the answer, the tool comments, one finish_reason,
//               usage summed over both turns, one [DONE] at the end;
//   chat        plain chat to the same fake model, non-streamed and streamed in turn (every other
//               one with MCP switched off for the request); answer, finish_reason, usage, [DONE];
//   mcp         toolgate's own /mcp: tools/list and tools/call (echo or get-sum) on long-lived
//               sessions (raw JSON-RPC over HTTP), and whole client sessions with the official SDK
//               (initialize, its GET stream, tools/list, tools/call, DELETE).
// Every --report-every seconds one line: requests done, errors, p50/p99/max per kind in that
// interval, toolgate's RSS and open fds, the MCP server's RSS. At the end: totals, and toolgate's RSS
// and fds after the warm-up against the end, both measured at rest (nothing in flight, client
// connections closed). Exit code 1 on any error, or when fds or RSS grew past the bounds below.
// Everything listens on 127.0.0.1 (free ports) and is stopped at the end, also on failure or Ctrl-C.
//
// usage: node bench/soak.mjs [--minutes 10] [--rate 20] [--report-every 60]
//          [--mix agent=50,chat=30,mcp=20] [--max-inflight 64] [--timeout 30] [--seed 1]
// smoke: node bench/soak.mjs --minutes 0.3 --rate 20 --report-every 5
// Needs: build/toolgate (or TOOLGATE_BIN) and tests/e2e/node_modules (npm ci in tests/e2e).
import http from 'node:http';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pct, rss, hwm, fdKinds, childProcesses, agentFetch } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const e2e = join(root, 'tests', 'e2e');
const { startGateway, sleep, waitFor } = await import(join(e2e, 'lib', 'harness.mjs'));
const { startFakeUpstream } = await import(join(e2e, 'lib', 'fake_upstream.mjs'));
const sdk = join(e2e, 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm', 'client');
const { Client } = await import(join(sdk, 'index.js'));
const { StreamableHTTPClientTransport } = await import(join(sdk, 'streamableHttp.js'));
const everything = join(e2e, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const MINUTES = Number(arg('minutes', 10));
const RATE = Number(arg('rate', 20));
const REPORT_S = Number(arg('report-every', 60));
const MAX_INFLIGHT = Number(arg('max-inflight', 64));
const TIMEOUT_MS = Number(arg('timeout', 30)) * 1000;
const MIX = Object.fromEntries(arg('mix', 'agent=50,chat=30,mcp=20').split(',').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
for (const k of Object.keys(MIX)) if (!['agent', 'chat', 'mcp'].includes(k)) throw new Error(`--mix: unknown kind ${k}`);
const DURATION_S = MINUTES * 60;
// The first seconds are not in the start figures: connection pools, allocator arenas, the JIT of the
// MCP server and the gateway's caches fill up then. 15 s (300 requests at the default rate) is enough
// for that here; a short run keeps a tenth of its time, at least 3 s.
const WARMUP_S = Math.min(15, Math.max(3, DURATION_S / 10));
// Bounds, measured at rest after the warm-up and at the end. fds: nothing a request opens may stay
// open; the slack covers the upstream connection pool (per worker thread, idle ones kept 60 s), which
// may hold a few more connections after a busier moment. RSS: the allocator keeps freed memory and
// fragments, so RSS is not flat to the byte, but at a steady load it levels off after the warm-up
// (here: within 0.5 MiB of 20 MiB over 10 minutes). 8 MiB or a fifth of the start figure, whichever
// is larger, leaves room for that many times over and still catches a leak of 1 KiB per request at
// the default 12,000 requests (12 MiB before allocator overhead; a leaked request or answer body is
// several KiB). Smaller leaks show as a slope in the per-interval RSS column. Also at rest: the
// /mcp session gauge must be back to the long-lived sessions, and no request but /metrics in flight.
const FD_BOUND = 10;
const rssBound = (start) => Math.max(8, start * 0.2);
const KINDS = ['agent', 'chat', 'chat_stream', 'mcp_call', 'mcp_list', 'mcp_session'];
const bin = process.env.TOOLGATE_BIN || join(root, 'build', 'toolgate');

// A small seeded PRNG, so that a run's sequence of kinds is the same every time (--seed).
let seed = Number(arg('seed', 1)) >>> 0;
const random = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (weights) => {
  const total = Object.values(weights).reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (const [k, w] of Object.entries(weights)) if ((r -= w) < 0) return k;
  return Object.keys(weights)[0];
};

// ---------- what is started, and how it is always stopped ----------
let upstream = null, gw = null;
let agent = new http.Agent({ keepAlive: true, maxSockets: MAX_INFLIGHT + 8 });
// Each request's own abort signal, fired by its deadline or by the stop (one listener each, none on
// a shared signal that would pile up over a long run).
const deadlines = new Set();
let stopping = false;
function withDeadline() {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), TIMEOUT_MS);
  deadlines.add(ac);
  return { signal: ac.signal, done: () => { clearTimeout(timer); deadlines.delete(ac); } };
}
let cleanupP = null;
const cleanup = () => (cleanupP ??= (async () => {
  stopping = true;
  for (const ac of deadlines) ac.abort();
  agent.destroy();
  const exit = await gw?.stop();
  await upstream?.close();
  return exit;
})());
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) { gw?.proc.kill('SIGKILL'); process.exit(130); }
    interrupted = true;
    console.log(`\n${sig}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', () => { if (gw && !gw.exited) gw.proc.kill('SIGKILL'); });

// ---------- checks ----------
class Failure extends Error {
  constructor(reason, detail = '') { super(`${reason}${detail ? `: ${detail}` : ''}`); this.reason = reason; }
}
const check = (cond, reason, detail) => { if (!cond) throw new Failure(reason, typeof detail === 'function' ? detail() : detail); };
const clip = (s, n = 300) => (s.length > n ? s.slice(0, n) + '...' : s);

// One HTTP exchange on the shared keep-alive agent: { status, headers, text }.
function send(method, path, body, headers = {}) {
  const deadline = withDeadline();
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const { signal } = deadline;
    const req = http.request(gw.url + path, { method, agent, signal, headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', (e) => reject(signal.aborted && !stopping ? new Failure('timeout', `no answer in ${TIMEOUT_MS} ms`) : e));
    req.end(payload);
  }).finally(deadline.done);
}

// An SSE body, all of it: its data payloads (parsed), its comments, and whether it ended with one
// [DONE] as its last event. In a chat stream, an event with an `error` is a failure.
function parseSse(text, { chat = true } = {}) {
  const blocks = text.split('\n\n');
  check(blocks.at(-1) === '', 'stream not ended by a blank line', () => JSON.stringify(text.slice(-200)));
  const events = [], comments = [];
  let done = 0, doneLast = false;
  for (const block of blocks.slice(0, -1)) {
    const lines = block.split('\n');
    for (const l of lines) if (l.startsWith(':')) comments.push(l.slice(1).trim());
    const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
    if (!data) continue;
    doneLast = data === '[DONE]';
    if (doneLast) { done++; continue; }
    check(done === 0, 'event after [DONE]', data);
    let ev;
    try { ev = JSON.parse(data); } catch { throw new Failure('bad JSON in the stream', data); }
    check(!chat || !ev.error, 'error event in the stream', data);
    events.push(ev);
  }
  return { events, comments, done, doneLast };
}

// A chat completion stream: the assembled content, every finish_reason, the usage chunk.
function readChatStream(r) {
  check(r.status === 200, `status ${r.status}`, () => clip(r.text));
  check(/^text\/event-stream/.test(r.headers['content-type'] ?? ''), 'not an event stream', r.headers['content-type']);
  const s = parseSse(r.text);
  check(s.done === 1 && s.doneLast, 'stream does not end with one [DONE]', () => `${s.done} [DONE], last event: ${JSON.stringify(r.text.slice(-120))}`);
  let content = '', usage = null, toolDeltas = 0;
  const finishes = [];
  for (const ev of s.events) {
    if (ev.usage) usage = ev.usage;
    const c = ev.choices?.[0];
    if (!c) continue;
    if (c.delta?.content) content += c.delta.content;
    if (c.delta?.tool_calls) toolDeltas++;
    if (c.finish_reason) finishes.push(c.finish_reason);
  }
  return { content, usage, finishes, toolDeltas, comments: s.comments };
}

// ---------- the kinds of request ----------
const userMsg = (content) => [{ role: 'user', content }];
// The two deterministic tools of server-everything, and what each answers.
const toolCase = (i) => (i % 2 === 0
  ? { tool: 'echo', args: { message: `soak ${i}` }, answer: `Echo: soak ${i}` }
  : { tool: 'get-sum', args: { a: i % 1000, b: 7 }, answer: `The sum of ${i % 1000} and 7 is ${(i % 1000) + 7}.` });

const ops = {
  async agent(i) {
    const c = toolCase(i);
    const name = `everything__${c.tool}`;
    const r = await send('POST', '/v1/chat/completions', { model: 'mock-agent-fast', stream: true, stream_options: { include_usage: true },
      messages: userMsg(`call ${name} ${JSON.stringify(c.args)}`) });
    const s = readChatStream(r);
    check(s.content === `Tool results: ${c.answer}`, 'wrong final answer (tool result missing)',
      () => `${JSON.stringify(s.content)}, finish_reason ${s.finishes.join(',') || '-'}, comments: ${s.comments.join(' / ') || '-'}`);
    check(s.comments.includes(`tool ${name} started`), 'no "tool started" comment', () => s.comments.join(' / '));
    check(s.comments.some((x) => new RegExp(`^tool ${name} done in \\d+ ms$`).test(x)), 'no "tool done" comment', () => s.comments.join(' / '));
    check(s.toolDeltas === 0, 'tool-call deltas reached the client');
    check(s.finishes.length === 1 && s.finishes[0] === 'stop', 'finish_reason not one "stop"', () => s.finishes.join(','));
    check(s.usage?.total_tokens === 36, 'usage not summed over both turns', () => JSON.stringify(s.usage));
  },
  async chat(i) {
    const headers = i % 2 ? { 'x-toolgate-mcp-servers': 'none' } : {};
    const r = await send('POST', '/v1/chat/completions', { model: 'mock-ok', messages: userMsg(`hello ${i}`) }, headers);
    check(r.status === 200, `status ${r.status}`, () => clip(r.text));
    let j;
    try { j = JSON.parse(r.text); } catch { throw new Failure('bad JSON', clip(r.text)); }
    check(j.choices?.[0]?.message?.content === 'reply from mock-ok', 'wrong answer', () => clip(r.text));
    check(j.choices[0].finish_reason === 'stop', 'finish_reason not "stop"', j.choices[0].finish_reason);
    check(j.usage?.total_tokens === 18, 'wrong usage', () => JSON.stringify(j.usage));
  },
  async chat_stream(i) {
    const headers = i % 2 ? { 'x-toolgate-mcp-servers': 'none' } : {};
    const r = await send('POST', '/v1/chat/completions', { model: 'mock-ok', stream: true, stream_options: { include_usage: true },
      messages: userMsg(`hello ${i}`) }, headers);
    const s = readChatStream(r);
    check(s.content === 'Hello from the fake upstream', 'wrong answer', () => JSON.stringify(s.content));
    check(s.finishes.length === 1 && s.finishes[0] === 'stop', 'finish_reason not one "stop"', () => s.finishes.join(','));
    check(s.usage?.total_tokens === 10, 'wrong usage', () => JSON.stringify(s.usage));
  },
  async mcp_call(i) {
    const c = toolCase(i);
    const res = await mcpSessions[i % mcpSessions.length].rpc('tools/call', { name: `everything__${c.tool}`, arguments: c.args });
    check(!res.isError, 'tool error', () => JSON.stringify(res));
    check(res.content?.[0]?.text === c.answer, 'wrong tool result', () => JSON.stringify(res));
  },
  async mcp_list(i) {
    const res = await mcpSessions[i % mcpSessions.length].rpc('tools/list', {});
    const names = (res.tools ?? []).map((t) => t.name);
    check(names.length === toolCount && names.includes('everything__echo') && names.includes('everything__get-sum') && !res.nextCursor,
      'wrong tool list', () => `${names.length} tools (expected ${toolCount}): ${names.join(',')}`);
  },
  // A whole client session with the official SDK: initialize (and the GET stream it opens), list,
  // call, DELETE, close. Its connections go through the shared agent (agentFetch) like the rest.
  async mcp_session(i) {
    const errors = [];
    const client = new Client({ name: 'soak', version: '1.0.0' });
    client.onerror = (e) => errors.push(e);
    const transport = new StreamableHTTPClientTransport(new URL(gw.url + '/mcp'), { fetch: agentFetch(agent) });
    const deadline = withDeadline();
    const opts = { timeout: TIMEOUT_MS, signal: deadline.signal };
    try {
      await client.connect(transport, opts);
      const list = await client.listTools({}, opts);
      check(list.tools.length === toolCount, 'wrong tool list', () => `${list.tools.length} tools`);
      const c = toolCase(i);
      const res = await client.callTool({ name: `everything__${c.tool}`, arguments: c.args }, undefined, opts);
      check(!res.isError && res.content?.[0]?.text === c.answer, 'wrong tool result', () => JSON.stringify(res));
      await transport.terminateSession();
      check(errors.length === 0, 'SDK transport error', () => errors.map(String).join(' / '));
    } finally {
      deadline.done();
      await client.close();
    }
  },
};
const mcpMix = { mcp_call: 45, mcp_list: 35, mcp_session: 20 };
let chatTurn = 0;
const kindFor = (top) => (top === 'agent' ? 'agent' : top === 'chat' ? (chatTurn++ % 2 ? 'chat_stream' : 'chat') : pick(mcpMix));

// A long-lived /mcp session, raw JSON-RPC over HTTP (as IDE clients keep one open).
let toolCount = 0;
async function rawSession() {
  const base = { accept: 'application/json, text/event-stream' };
  const init = await send('POST', '/mcp', { jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'soak-raw', version: '1' } } }, base);
  check(init.status === 200 && init.headers['mcp-session-id'], `initialize: status ${init.status}`, () => clip(init.text));
  const headers = { ...base, 'mcp-session-id': init.headers['mcp-session-id'], 'mcp-protocol-version': '2025-11-25' };
  const note = await send('POST', '/mcp', { jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  check(note.status === 202, `notifications/initialized: status ${note.status}`, () => clip(note.text));
  let id = 1;
  return {
    headers,
    async rpc(method, params) {
      const myId = id++;
      const r = await send('POST', '/mcp', { jsonrpc: '2.0', id: myId, method, params }, headers);
      check(r.status === 200, `status ${r.status}`, () => clip(r.text));
      const ct = r.headers['content-type'] ?? '';
      let msgs;
      if (ct.startsWith('text/event-stream')) msgs = parseSse(r.text, { chat: false }).events;
      else {
        try { msgs = [JSON.parse(r.text)]; } catch { throw new Failure('bad JSON', clip(r.text)); }
      }
      const answer = msgs.find((m) => m.id === myId && ('result' in m || 'error' in m));
      check(answer, 'no JSON-RPC answer', () => clip(r.text));
      check(!answer.error, 'JSON-RPC error', () => JSON.stringify(answer.error));
      return answer.result;
    },
  };
}
let mcpSessions = [];
const RAW_SESSIONS = 4;

// ---------- measurements ----------
let mcpChild = null;
const findMcpChild = () => childProcesses(gw.proc.pid).find((c) => c.cmdline.includes('server-everything')) ?? null;
const fdsOf = () => fdKinds(gw.proc.pid, { listenPort: gw.port, upstreamPorts: [upstream.port] });
const mb = (x) => x.toFixed(1);
const safe = (f) => { try { return f(); } catch { return NaN; } };

// The gauges and counters of /metrics that must agree with what this program did.
async function gatewayMetrics() {
  const r = await send('GET', '/metrics');
  check(r.status === 200, `/metrics: status ${r.status}`);
  const sum = (name) => r.text.split('\n').filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
    .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return { sessions: sum('toolgate_mcp_front_sessions'), inflight: sum('toolgate_inflight_requests'),
    toolCalls: sum('toolgate_mcp_tool_calls_total'), toolErrors: sum('toolgate_mcp_tool_errors_total') };
}

async function mcpStatus() {
  const r = await send('GET', '/v1/mcp/servers');
  check(r.status === 200, `/v1/mcp/servers: status ${r.status}`);
  return JSON.parse(r.text).data;
}

// ---------- the run ----------
const stats = {
  done: 0, errors: 0, dropped: 0, launched: 0, inflight: 0, maxInflight: 0,
  byError: new Map(), firstErrors: [],
  interval: Object.fromEntries(KINDS.map((k) => [k, []])), intervalDone: 0, intervalErrors: 0,
  total: Object.fromEntries(KINDS.map((k) => [k, []])),
};
const MAX_SHOWN = 5;
function fail(kind, e) {
  const reason = e instanceof Failure ? e.reason : e?.code ?? e?.name ?? 'exception';
  const key = `${kind}: ${reason}`;
  stats.errors++;
  stats.intervalErrors++;
  stats.byError.set(key, (stats.byError.get(key) ?? 0) + 1);
  if (stats.firstErrors.length < MAX_SHOWN) {
    stats.firstErrors.push(key);
    console.log(`  error #${stats.errors} (${kind}, at ${clock().toFixed(1)} s): ${clip(String(e?.message ?? e), 600)}`);
  }
}

let t0 = 0, pausedMs = 0;
const clock = () => (performance.now() - t0 - pausedMs) / 1000;  // active seconds, pauses excluded

function launch(i) {
  if (stats.inflight >= MAX_INFLIGHT) {
    stats.dropped++;
    fail('arrival', new Failure('dropped', `${MAX_INFLIGHT} requests still in flight`));
    return;
  }
  const kind = kindFor(pick(MIX));
  stats.inflight++;
  stats.maxInflight = Math.max(stats.maxInflight, stats.inflight);
  const start = performance.now();
  ops[kind](i).then(() => {
    const ms = performance.now() - start;
    stats.interval[kind].push(ms);
    stats.total[kind].push(ms);
    stats.done++;
    stats.intervalDone++;
  }, (e) => { if (!stopping) fail(kind, e); }).finally(() => { stats.inflight--; });
}

// At rest: nothing in flight, and the client connections closed (a new agent for what follows),
// so that fds compare like with like. Returns toolgate's RSS and fds, and the MCP server's RSS.
async function atRest(label) {
  const pause = performance.now();
  await waitFor(() => stats.inflight === 0, TIMEOUT_MS + 5000, `${label}: requests in flight to end`);
  const metrics = await gatewayMetrics();
  const old = agent;
  agent = new http.Agent({ keepAlive: true, maxSockets: MAX_INFLIGHT + 8 });
  old.destroy();
  let fds = fdsOf();
  for (let n = 0; fds.client > 0 && n < 50; n++) { await sleep(20); fds = fdsOf(); }
  const child = findMcpChild();
  const m = { rss: rss(gw.proc.pid), fds, mcpRss: child ? safe(() => rss(child.pid)) : NaN, metrics };
  pausedMs += performance.now() - pause;
  return m;
}

const fmtLat = (xs) => (xs.length ? `${pct(xs, 50).toFixed(1)}/${pct(xs, 99).toFixed(1)}/${Math.max(...xs).toFixed(1)}` : '-');
let intervalNo = 0, restartSeen = false;
async function report(final = false) {
  intervalNo++;
  const parts = KINDS.filter((k) => stats.interval[k].length).map((k) => `${k} ${fmtLat(stats.interval[k])}`);
  const f = fdsOf();
  let servers = '';
  try {
    const s = (await mcpStatus())[0];
    servers = s.status === 'up' && !s.restarts ? '' : ` | MCP server ${s.status}, ${s.restarts} restarts`;
    if (s.restarts && !restartSeen) { restartSeen = true; fail('mcp_server', new Failure('restarted', `${s.restarts} restarts, last error: ${s.last_error ?? '-'}`)); }
  } catch (e) { fail('status', e); }
  const child = findMcpChild();
  if (child?.pid !== mcpChild?.pid && !restartSeen) { restartSeen = true; fail('mcp_server', new Failure('process changed', `pid ${mcpChild?.pid} -> ${child?.pid}`)); }
  mcpChild = child ?? mcpChild;
  console.log(`#${String(intervalNo).padStart(2)} ${(clock() / 60).toFixed(2)} min${final ? ' (last)' : ''}: ${stats.intervalDone} done, ${stats.intervalErrors} errors` +
    ` | ms p50/p99/max: ${parts.join(', ') || '-'}` +
    ` | toolgate RSS ${mb(rss(gw.proc.pid))} MiB, ${f.total} fds (${f.client} client, ${f.upstream} upstream conns)` +
    ` | everything RSS ${child ? mb(safe(() => rss(child.pid))) : '?'} MiB${servers}`);
  for (const k of KINDS) stats.interval[k] = [];
  stats.intervalDone = 0;
  stats.intervalErrors = 0;
}
let exitCode = 1;
try {
  upstream = await startFakeUpstream();
  gw = await startGateway(`
providers_from_env: false
log: { requests: false }
state: { persist: false }
providers:
  - { name: local, type: openai, base_url: "${upstream.url}", api_key: sk-soak, models: [mock-agent-fast, mock-ok] }
mcp_servers:
  - { name: everything, command: node, args: ["${everything}", stdio] }
`);
  await waitFor(async () => (await mcpStatus()).every((s) => s.status === 'up'), 20000, 'the MCP server up');
  await waitFor(() => (mcpChild = findMcpChild()), 5000, 'the MCP server process');
  mcpSessions = await Promise.all(Array.from({ length: RAW_SESSIONS }, rawSession));
  toolCount = (await mcpSessions[0].rpc('tools/list', {})).tools.length;

  const planned = Math.floor(DURATION_S * RATE);
  console.log(`soak: ${MINUTES} min at ${RATE} requests/s (${planned} requests), open loop, at most ${MAX_INFLIGHT} in flight; ` +
    `mix ${Object.entries(MIX).map(([k, v]) => `${k} ${v}`).join(', ')} (mcp: ${Object.entries(mcpMix).map(([k, v]) => `${k.slice(4)} ${v}`).join(', ')}); ` +
    `warm-up ${WARMUP_S.toFixed(0)} s`);
  console.log(`toolgate pid ${gw.proc.pid} (${bin}), MCP server @modelcontextprotocol/server-everything over stdio, pid ${mcpChild.pid}, ${toolCount} tools; ` +
    `fake OpenAI upstream in this process; everything on 127.0.0.1`);
  console.log(`idle: toolgate RSS ${mb(rss(gw.proc.pid))} MiB, ${fdsOf().total} fds\n`);

  // The schedule: arrival k at k / RATE active seconds.
  t0 = performance.now();
  let start = null, nextReport = REPORT_S;
  while (!interrupted) {
    const t = clock();
    if (gw.exited) { fail('gateway', new Failure('exited', JSON.stringify(gw.exited))); break; }
    if (t >= DURATION_S || stats.launched >= planned) break;
    if (!start && t >= WARMUP_S) {
      start = await atRest('warm-up');
      console.log(`after warm-up (${WARMUP_S.toFixed(0)} s, at rest): toolgate RSS ${mb(start.rss)} MiB, ${start.fds.total} fds, everything RSS ${mb(start.mcpRss)} MiB`);
      continue;
    }
    if (t >= nextReport) { await report(); nextReport += REPORT_S; continue; }
    if (upstream.state.requests.length > 2000) upstream.state.requests.splice(0, 1900);  // the fake keeps every request
    const due = Math.min(planned, Math.floor(t * RATE) + 1);
    while (stats.launched < due) launch(stats.launched++);
    await sleep(Math.max(1, Math.min(50, (stats.launched / RATE - clock()) * 1000)));
  }
  if (interrupted) throw new Error('interrupted');
  const ranFor = clock();
  const end = gw.exited ? null : await atRest('end');
  if (stats.intervalDone || stats.intervalErrors) await report(true);
  if (!start) start = end;  // a run shorter than its warm-up

  // ---------- summary ----------
  const elapsed = ranFor;
  console.log(`\nsummary: ${stats.done + stats.errors} requests in ${elapsed.toFixed(0)} s (${((stats.done + stats.errors) / elapsed).toFixed(1)}/s), ` +
    `${stats.done} ok, ${stats.errors} errors${stats.dropped ? ` (${stats.dropped} arrivals dropped)` : ''}; at most ${stats.maxInflight} in flight`);
  console.log('| kind | requests | p50 ms | p99 ms | max ms |');
  console.log('|---|---|---|---|---|');
  for (const k of KINDS) {
    const xs = stats.total[k];
    if (xs.length) console.log(`| ${k} | ${xs.length} | ${pct(xs, 50).toFixed(2)} | ${pct(xs, 99).toFixed(2)} | ${Math.max(...xs).toFixed(2)} |`);
  }
  for (const [k, n] of stats.byError) console.log(`errors: ${k}: ${n}`);
  const problems = [...stats.byError.keys()].map((k) => `errors (${k})`);
  if (end) {
    const dRss = end.rss - start.rss, dFds = end.fds.total - start.fds.total;
    const kinds = (f) => Object.entries(f).filter(([k, v]) => k !== 'total' && v).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`toolgate RSS at rest: after warm-up ${mb(start.rss)} MiB, at the end ${mb(end.rss)} MiB, drift ${dRss >= 0 ? '+' : ''}${mb(dRss)} MiB ` +
      `(bound +${mb(rssBound(start.rss))} MiB); peak (VmHWM) ${mb(hwm(gw.proc.pid))} MiB`);
    console.log(`toolgate fds at rest: after warm-up ${start.fds.total} (${kinds(start.fds)}), at the end ${end.fds.total} (${kinds(end.fds)}), ` +
      `drift ${dFds >= 0 ? '+' : ''}${dFds} (bound +${FD_BOUND})`);
    console.log(`everything (MCP server) RSS: after warm-up ${mb(start.mcpRss)} MiB, at the end ${mb(end.mcpRss)} MiB (not checked: not ours)`);
    const me = end.metrics, ours = stats.total.agent.length + stats.total.mcp_call.length + stats.total.mcp_session.length;
    console.log(`toolgate /metrics at rest: ${me.sessions} /mcp sessions open (expected ${RAW_SESSIONS}, the long-lived ones), ` +
      `${me.inflight} request in flight (expected 1, the /metrics request), ${me.toolCalls} tool calls (${ours} by the requests that passed), ${me.toolErrors} tool errors`);
    if (me.sessions !== RAW_SESSIONS) problems.push(`${me.sessions} /mcp sessions open at the end`);
    if (me.inflight !== 1) problems.push(`${me.inflight} requests in flight at rest`);
    if (me.toolErrors) problems.push(`${me.toolErrors} tool errors in /metrics`);
    if (!stats.errors && me.toolCalls !== ours) problems.push(`tool calls in /metrics (${me.toolCalls}) differ from the requests' (${ours})`);
    if (dFds > FD_BOUND) problems.push(`fds grew by ${dFds}`);
    if (dRss > rssBound(start.rss)) problems.push(`RSS grew by ${mb(dRss)} MiB`);
  }
  const servers = gw.exited ? [] : await mcpStatus();
  console.log(`MCP server: ${servers.map((s) => `${s.name} ${s.status}, ${s.restarts} restarts`).join('; ') || 'unknown'}`);
  const exit = await cleanup();
  const bad = gw.logs.split('\n').filter((l) => /^\[[^\]]*\] \[(warning|error|critical)\]|Sanitizer|runtime error|terminate called/.test(l));
  console.log(`toolgate stopped: ${exit?.code === 0 ? 'exit code 0' : JSON.stringify(exit)}; its log has ${bad.length} warning/error lines${bad.length ? ':' : ''}`);
  for (const l of bad.slice(0, 5)) console.log(`  ${clip(l, 300)}`);
  if (exit?.code !== 0) problems.push(`toolgate exit ${JSON.stringify(exit)}`);
  if (bad.length) problems.push('warnings/errors in the toolgate log');
  console.log(problems.length ? `\nFAIL: ${problems.join('; ')}` : '\nPASS');
  exitCode = problems.length ? 1 : 0;
} catch (e) {
  if (!interrupted) console.error(`soak: ${e?.stack ?? e}`);
  if (gw?.logs && !interrupted) console.error(`toolgate log (end):\n${gw.logs.slice(-3000)}`);
} finally {
  await cleanup();
}
process.exit(interrupted ? 130 : exitCode);
