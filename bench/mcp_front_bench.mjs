#!/usr/bin/env node
// toolgate /mcp benchmark: tools/call through toolgate's MCP front (Streamable HTTP, one session per
// client) against the same upstream MCP server called directly (toolgate's C++ demo server over
// stdio, one connection, requests multiplexed), in one run, at 1 and 64 concurrent sessions.
// Prints calls/s, p50/p99 and the ratio, and toolgate's peak RSS. Then what a client that declares
// roots costs: its own upstream session (a process of the demo server) from initialize to the first
// tools/list answer, against a client that declares nothing, and toolgate's memory per such client.
//
// usage: node bench/mcp_front_bench.mjs [--calls 4000] [--sessions 1,64] [--own 20]
// Needs: build/toolgate (cmake --build build --target toolgate).
import http from 'node:http';
import { pct, hwm, stdioMcpClient } from './lib.mjs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { startGateway } = await import(join(root, 'tests', 'e2e', 'lib', 'harness.mjs'));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const CALLS = Number(arg('calls', 4000));
const SESSIONS = arg('sessions', '1,64').split(',').map(Number);
const OWN = Number(arg('own', 20));
const bin = process.env.TOOLGATE_BIN || join(root, 'build', 'toolgate');

// Through toolgate: one MCP session per client over keep-alive HTTP.
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
function post(url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
      'content-length': Buffer.byteLength(payload), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}
async function httpSession(url, capabilities = {}) {
  const init = await post(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 'bench', version: '1' } } });
  const sid = init.headers['mcp-session-id'];
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': sid });
  let id = 1;
  const call = async (name, args) => {
    const r = await post(url, { jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name, arguments: args } }, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    if (!r.text.includes('"result"')) throw new Error(r.text);
    return r;
  };
  call.list = () => post(url, { jsonrpc: '2.0', id: id++, method: 'tools/list', params: {} }, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  call.end = () => new Promise((resolve) => http.request(url, { method: 'DELETE', agent, headers: { 'mcp-session-id': sid } }, (res) => res.resume().on('end', resolve)).end());
  return call;
}

// initialize -> notifications/initialized -> tools/list answered, for `count` clients one after another.
async function setup(url, capabilities, count) {
  const lat = [], sessions = [];
  for (let i = 0; i < count; i++) {
    const s = performance.now();
    const call = await httpSession(url, capabilities);
    const r = await call.list();
    if (!r.text.includes('demo__echo')) throw new Error(r.text);
    lat.push(performance.now() - s);
    sessions.push(call);
  }
  return { lat, sessions };
}
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

async function drive(callers, calls) {
  const lat = [];
  let n = 0;
  const t0 = performance.now();
  await Promise.all(callers.map(async (call) => {
    while (n < calls) {
      n++;
      const s = performance.now();
      await call();
      lat.push(performance.now() - s);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  return { rate: lat.length / secs, p50: pct(lat, 50), p99: pct(lat, 99) };
}

const gw = await startGateway(`
providers_from_env: false
log: { requests: false }
mcp_servers:
  - { name: demo, command: "${bin}", args: [demo-mcp-server], max_concurrency: 128, max_queue: 256 }
mcp_front: { max_sessions: 1000 }
`, { env: { TOOLGATE_BIN: bin } });
const direct = stdioMcpClient(bin, ['demo-mcp-server']);  // direct: JSON-RPC lines on its stdio
try {
  await direct.request('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } });
  for (let i = 0; i < 50; i++) {
    const s = (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data;
    if (s.every((x) => x.status === 'up')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const args = { text: 'hello from the benchmark' };
  console.log(`tools/call (demo echo) ${CALLS} calls per case, 3 interleaved rounds; direct = stdio to the server, toolgate = /mcp over HTTP\n`);
  console.log('| sessions | direct calls/s | toolgate calls/s | ratio | p50 direct / toolgate ms | p99 direct / toolgate ms |');
  console.log('|---|---|---|---|---|---|');
  for (const n of SESSIONS) {
    const directCallers = Array.from({ length: n }, () => () => direct.request('tools/call', { name: 'echo', arguments: args }));
    const sessions = await Promise.all(Array.from({ length: n }, () => httpSession(gw.url + '/mcp')));
    const gwCallers = sessions.map((call) => () => call('demo__echo', args));
    await drive(directCallers, 200);
    await drive(gwCallers, 200);
    const d = [], g = [];
    for (let round = 0; round < 3; round++) {
      d.push(await drive(directCallers, CALLS / 3));
      g.push(await drive(gwCallers, CALLS / 3));
    }
    const mid = (xs, k) => pct(xs.map((x) => x[k]), 50);
    console.log(`| ${n} | ${mid(d, 'rate').toFixed(0)} | ${mid(g, 'rate').toFixed(0)} | ${(100 * mid(g, 'rate') / mid(d, 'rate')).toFixed(1)}% | ` +
      `${mid(d, 'p50').toFixed(3)} / ${mid(g, 'p50').toFixed(3)} | ${mid(d, 'p99').toFixed(3)} / ${mid(g, 'p99').toFixed(3)} |`);
  }
  console.log(`\ntoolgate peak RSS (VmHWM): ${hwm(gw.proc.pid).toFixed(1)} MiB`);

  if (OWN > 0) {
    const url = gw.url + '/mcp';
    const before = rss(gw.proc.pid);
    const shared = await setup(url, {}, OWN);
    const mid = rss(gw.proc.pid);
    const own = await setup(url, { roots: { listChanged: true } }, OWN);
    const after = rss(gw.proc.pid);
    const servers = (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data;
    console.log(`\nclient setup (initialize -> first tools/list answered), ${OWN} clients each, one after another:`);
    console.log('| client declares | upstream session | p50 ms | p99 ms | toolgate RSS per client |');
    console.log('|---|---|---|---|---|');
    console.log(`| nothing | shared | ${pct(shared.lat, 50).toFixed(2)} | ${pct(shared.lat, 99).toFixed(2)} | ${((mid - before) * 1024 / OWN).toFixed(0)} KiB |`);
    console.log(`| roots | its own (a demo server process) | ${pct(own.lat, 50).toFixed(2)} | ${pct(own.lat, 99).toFixed(2)} | ${((after - mid) * 1024 / OWN).toFixed(0)} KiB |`);
    console.log(`(own sessions open: ${servers[0].client_sessions})`);
    for (const s of [...shared.sessions, ...own.sessions]) await s.end();
  }
} finally {
  direct.close();
  agent.destroy();
  await gw.stop();
}
