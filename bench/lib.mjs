// Pieces the Node benchmark programs share.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import { Readable } from 'node:stream';

// The p-th percentile of a list of numbers.
export const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// A process's current and peak resident memory, in MiB.
const status = (pid, field) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+)`))[1]) / 1024;
export const rss = (pid) => status(pid, 'VmRSS');
export const hwm = (pid) => status(pid, 'VmHWM');

// The leanest MCP client there is: JSON-RPC lines on a server's stdio, requests multiplexed.
export function stdioMcpClient(command, args) {
  const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const pending = new Map();
  let nextId = 1, buf = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    buf += d;
    let idx;
    while ((idx = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, idx));
      buf = buf.slice(idx + 1);
      pending.get(msg.id)?.(msg);
      pending.delete(msg.id);
    }
  });
  const request = (method, params) => new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    proc.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
  });
  return {
    request,
    async init() {
      await request('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } });
      proc.stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');
    },
    listTools: async () => (await request('tools/list', {})).result,
    callTool: async (p) => (await request('tools/call', p)).result,
    close: () => proc.kill(),
  };
}

// A process's open file descriptors, counted by what they are. TCP sockets are told apart by the
// ports given: `client` (local port `listenPort`, not listening), `upstream` (remote port one of
// `upstreamPorts`), `listen`, other `tcp`; then other sockets (unix), pipes, anon inodes (epoll,
// eventfd, timerfd), and files. A leak shows up as a growing kind, not only a growing total.
export function fdKinds(pid, { listenPort = -1, upstreamPorts = [] } = {}) {
  const tcp = new Map();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let lines = [];
    try { lines = readFileSync(table, 'utf8').split('\n').slice(1); } catch { continue; }
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const port = (a) => parseInt(a.slice(a.lastIndexOf(':') + 1), 16);
      tcp.set(f[9], { local: port(f[1]), remote: port(f[2]), listening: f[3] === '0A' });
    }
  }
  const out = { total: 0, client: 0, upstream: 0, listen: 0, tcp: 0, socket: 0, pipe: 0, anon: 0, file: 0 };
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try { target = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }  // closed meanwhile
    out.total++;
    const sock = /^socket:\[(\d+)\]$/.exec(target);
    if (sock) {
      const t = tcp.get(sock[1]);
      if (!t) out.socket++;
      else if (t.listening) out.listen++;
      else if (t.local === listenPort) out.client++;
      else if (upstreamPorts.includes(t.remote)) out.upstream++;
      else out.tcp++;
    } else if (target.startsWith('pipe:')) out.pipe++;
    else if (target.startsWith('anon_inode:')) out.anon++;
    else out.file++;
  }
  return out;
}

// The direct children of a process, as { pid, cmdline }.
export function childProcesses(pid) {
  const pids = new Set();
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/)) if (c) pids.add(Number(c));
    } catch { /* the thread ended meanwhile */ }
  }
  return [...pids].map((p) => {
    try { return { pid: p, cmdline: readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').trim() }; } catch { return null; }
  }).filter(Boolean);
}

// A fetch() on node:http and a given Agent, for clients that take a fetch function (the MCP SDK's
// transports): the caller then owns the connections, and can count and close them, where the global
// fetch keeps its own pool out of reach.
export function agentFetch(agent) {
  return (input, init = {}) => new Promise((resolve, reject) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers = Object.fromEntries(new Headers(init.headers ?? {}).entries());
    const body = init.body == null ? null : Buffer.from(init.body);
    if (body) headers['content-length'] = String(body.length);
    const req = http.request(url, { method: init.method ?? 'GET', headers, agent, signal: init.signal ?? undefined }, (res) => {
      const h = new Headers();
      for (const [k, v] of Object.entries(res.headers)) for (const x of [].concat(v)) h.append(k, x);
      const empty = [101, 204, 205, 304].includes(res.statusCode) || init.method === 'HEAD';
      if (empty) res.resume();
      resolve(new Response(empty ? null : Readable.toWeb(res), { status: res.statusCode, statusText: res.statusMessage, headers: h }));
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}
