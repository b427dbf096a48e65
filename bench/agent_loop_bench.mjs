#!/usr/bin/env node
// toolgate agent-loop benchmark.
//
// Latency: one loop iteration (model turn with a tool call -> MCP tool -> model turn with the answer),
// done two ways in the same run against the same fake model and the same MCP server:
//   direct : this program plays the loop itself (streams turn 1, calls the tool over MCP on the
//            server's stdio, streams turn 2), with the leanest client Node has;
//   gateway: one streaming request to toolgate, which runs the loop.
// Prints p50/p99 of the whole exchange and of the time to the first token of the final turn, and
// the difference (the gateway's overhead per loop iteration), at concurrency 1 and 16.
// Memory: toolgate's RSS with 1,000 streaming loops in flight at once (each waiting on a slow tool),
// against its idle RSS, per loop.
//
// usage: node bench/agent_loop_bench.mjs [--requests 400] [--loops 1000]
// Needs: build/toolgate (cmake --build build --target toolgate) and tests/e2e/node_modules (npm ci).
import http from 'node:http';
import { pct, rss, hwm, stdioMcpClient } from './lib.mjs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const e2e = join(root, 'tests', 'e2e');
const { startGateway, sleep } = await import(join(e2e, 'lib', 'harness.mjs'));
const { startFakeUpstream } = await import(join(e2e, 'lib', 'fake_upstream.mjs'));

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const REQUESTS = arg('requests', 400);
const LOOPS = arg('loops', 1000);
const bin = process.env.TOOLGATE_BIN || join(root, 'build', 'toolgate');
const fixture = join(e2e, 'fixtures', 'fixture_server.mjs');


// Both paths use the same lean client: node:http with keep-alive, SSE parsed as it arrives.
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

// Streams one chat request; returns the assembled content and tool calls, and when the first
// content token arrived.
function streamChat(url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } }, (res) => {
      if (res.statusCode !== 200) { res.resume(); return reject(new Error(`status ${res.statusCode}`)); }
      res.setEncoding('utf8');
      let buf = '', content = '', firstToken = null;
      const calls = [];
      res.on('data', (d) => {
        buf += d;
        let idx;
        while ((idx = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          if (!block.startsWith('data: ') || block === 'data: [DONE]') continue;
          const delta = JSON.parse(block.slice(6)).choices?.[0]?.delta;
          if (!delta) continue;
          if (delta.content) {
            if (firstToken === null) firstToken = performance.now();
            content += delta.content;
          }
          for (const f of delta.tool_calls ?? []) {
            const t = (calls[f.index] ??= { id: '', name: '', arguments: '' });
            if (f.id) t.id = f.id;
            if (f.function?.name) t.name = f.function.name;
            if (f.function?.arguments) t.arguments += f.function.arguments;
          }
        }
      });
      res.on('end', () => resolve({ content, calls, firstToken }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const upstream = await startFakeUpstream();
const gw = await startGateway(`
providers_from_env: false
log: { requests: false }
providers:
  - { name: local, type: openai, base_url: "${upstream.url}", api_key: sk-bench, models: [mock-agent-fast] }
mcp_servers:
  - { name: demo, command: "${bin}", args: [demo-mcp-server] }
  - { name: fixture, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" }, timeout: 60s, max_concurrency: ${LOOPS + 24}, max_queue: ${LOOPS + 24} }
`, { env: { TOOLGATE_BIN: bin } });
const mcp = stdioMcpClient(bin, ['demo-mcp-server']);  // the leanest client, so the direct path costs little
await mcp.init();

try {
  for (let i = 0; i < 50; i++) {
    const s = (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data;
    if (s.every((x) => x.status === 'up')) break;
    await sleep(100);
  }
  // The tools as the gateway offers them, so both paths send the model the same request.
  const demoTools = (await mcp.listTools()).tools.map((t) => ({
    type: 'function', function: { name: `demo__${t.name}`, description: t.description, parameters: t.inputSchema } }));
  const prompt = (i) => [{ role: 'user', content: `call demo__echo {"text":"hello ${i}"}` }];
  const expected = (i) => `Tool results: hello ${i}`;

  async function direct(i) {
    const t0 = performance.now();
    const messages = prompt(i);
    const url = upstream.url + '/chat/completions';
    const t1 = await streamChat(url, { model: 'mock-agent-fast', stream: true, messages, tools: demoTools });
    const call = t1.calls[0];
    const r = await mcp.callTool({ name: call.name.replace(/^demo__/, ''), arguments: JSON.parse(call.arguments) });
    const text = r.content.map((c) => c.text).join('\n');
    const next = [...messages,
      { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }] },
      { role: 'tool', tool_call_id: call.id, content: text }];
    const t2 = await streamChat(url, { model: 'mock-agent-fast', stream: true, messages: next, tools: demoTools });
    if (t2.content !== expected(i)) throw new Error(`direct: unexpected answer ${t2.content}`);
    return { total: performance.now() - t0, ttft: t2.firstToken - t0 };
  }
  async function gateway(i) {
    const t0 = performance.now();
    const r = await streamChat(gw.url + '/v1/chat/completions', { model: 'mock-agent-fast', stream: true, messages: prompt(i) },
      { 'x-toolgate-mcp-servers': 'demo' });
    if (r.content !== expected(i)) throw new Error(`gateway: unexpected answer ${r.content}`);
    return { total: performance.now() - t0, ttft: r.firstToken - t0 };
  }

  async function measure(fn, n, conc) {
    const out = [];
    let next = 0;
    await Promise.all(Array.from({ length: conc }, async () => {
      while (next < n) out.push(await fn(next++));
    }));
    return out;
  }

  console.log(`agent loop benchmark: ${REQUESTS} loops per path and concurrency, interleaved in 4 rounds`);
  console.log('one loop = model turn (tool call, streamed) + MCP tool (demo echo, stdio) + model turn (answer, streamed)\n');
  console.log('| concurrency | path | loops/s | p50 total ms | p99 total ms | p50 TTFT ms | p99 TTFT ms |');
  console.log('|---|---|---|---|---|---|---|');
  const summary = [];
  for (const conc of [1, 16]) {
    await measure(direct, 50, conc);  // warm-up
    await measure(gateway, 50, conc);
    const res = { direct: [], gateway: [] }, time = { direct: 0, gateway: 0 };
    for (let round = 0; round < 4; round++) {
      for (const [name, fn] of [['direct', direct], ['gateway', gateway]]) {
        const t = performance.now();
        res[name].push(...(await measure(fn, REQUESTS / 4, conc)));
        time[name] += performance.now() - t;
      }
    }
    for (const name of ['direct', 'gateway']) {
      const r = res[name];
      console.log(`| ${conc} | ${name} | ${(r.length / (time[name] / 1000)).toFixed(0)} | ${pct(r.map((x) => x.total), 50).toFixed(2)} | ${pct(r.map((x) => x.total), 99).toFixed(2)} | ${pct(r.map((x) => x.ttft), 50).toFixed(2)} | ${pct(r.map((x) => x.ttft), 99).toFixed(2)} |`);
    }
    const d = (k, p) => {
      const v = pct(res.gateway.map((x) => x[k]), p) - pct(res.direct.map((x) => x[k]), p);
      return `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
    };
    summary.push(`concurrency ${conc}: through the gateway ${d('total', 50)} ms at p50 (${d('total', 99)} ms at p99) per loop iteration; ` +
      `time to the final turn's first token ${d('ttft', 50)} ms at p50; throughput ${(100 * (res.gateway.length / time.gateway) / (res.direct.length / time.direct)).toFixed(1)}% of direct`);
  }
  console.log('\n' + summary.join('\n'));

  // Memory: LOOPS streaming loops in flight at once, each waiting on a 3 s tool.
  await sleep(500);
  const idle = rss(gw.proc.pid);
  let started = 0, done = 0, failed = 0;
  const t0 = performance.now();
  const loops = Array.from({ length: LOOPS }, async (_, i) => {
    try {
      const res = await fetch(gw.url + '/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-toolgate-mcp-servers': 'fixture' },
        body: JSON.stringify({ model: 'mock-agent-fast', stream: true, messages: [{ role: 'user', content: 'call fixture__slow {"ms":3000}' }] }),
      });
      const decoder = new TextDecoder();
      let text = '', counted = false;
      for await (const chunk of res.body) {
        text += decoder.decode(chunk, { stream: true });
        if (!counted && text.includes(': tool fixture__slow started')) { counted = true; started++; }
      }
      if (text.includes('slow done') && text.includes('data: [DONE]')) done++; else failed++;
    } catch { failed++; }
  });
  while (started < LOOPS && performance.now() - t0 < 20000) await sleep(20);
  const allIn = performance.now() - t0;
  const peak = rss(gw.proc.pid);
  await Promise.all(loops);
  console.log(`\nmemory: ${started} of ${LOOPS} streaming loops in flight at once (all in after ${allIn.toFixed(0)} ms); ` +
    `RSS idle ${idle.toFixed(1)} MiB, in flight ${peak.toFixed(1)} MiB, ` +
    `${((peak - idle) * 1024 / LOOPS).toFixed(1)} KiB per loop; peak RSS (VmHWM) ${hwm(gw.proc.pid).toFixed(1)} MiB; ` +
    `completed ${done}, failed ${failed}, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
} finally {
  mcp.close();
  agent.destroy();
  await gw.stop();
  await upstream.close();
}
