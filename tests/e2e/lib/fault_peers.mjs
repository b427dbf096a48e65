// Peers that misbehave on purpose, for tests/e2e/faults.test.mjs: a raw-socket HTTP upstream whose
// every byte the test writes itself (resets, trickles, endless heads and bodies, bad UTF-8), a TCP
// server that accepts and never says a word (a stalled TLS handshake), stdio MCP servers written as
// small Node scripts from functions, raw client connections to the gateway, and the gateway's
// memory and file descriptors read from /proc. Everything listens on 127.0.0.1 on a port the
// kernel picks, and every start has a close.
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- a raw upstream ---------------------------------------------------------------------------

// An HTTP/1.1 server on raw sockets. Each request (head, then a Content-Length body) is handed to
// `respond(rec, sock)`, which writes whatever bytes it likes and may destroy the socket; once its
// promise settles and the socket is still open, the next request on the connection is read (keep-
// alive, so the gateway's pool is exercised too).
//   rec: { method, url, headers, raw, json, model, at, closed, finished }
//   rec.closed is set when the connection closes before the responder finished (the gateway hung
//   up); rec.finished once it did.
export async function startRawUpstream(respond) {
  const events = new EventEmitter();
  const sockets = new Set();
  const up = { requests: [], connections: 0, events };
  const server = net.createServer((sock) => {
    up.connections++;
    sockets.add(sock);
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let current = null;
    let busy = false;
    sock.on('error', () => {});
    sock.on('close', () => {
      sockets.delete(sock);
      if (current && !current.finished) { current.closed = true; events.emit('closed', current); }
    });
    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          const [line, ...fields] = head.split('\r\n');
          const headers = {};
          for (const f of fields) {
            const i = f.indexOf(':');
            if (i > 0) headers[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1).trim();
          }
          const length = Number(headers['content-length'] ?? 0);
          if (buf.length < end + 4 + length) return;
          const raw = buf.subarray(end + 4, end + 4 + length).toString('utf8');
          buf = buf.subarray(end + 4 + length);
          const [method, url] = line.split(' ');
          let json = null;
          try { json = JSON.parse(raw); } catch { /* keep raw */ }
          const rec = { method, url, headers, raw, json, model: json?.model ?? '', at: Date.now(), closed: false, finished: false };
          current = rec;
          up.requests.push(rec);
          events.emit('request', rec);
          try { await respond(rec, sock); } catch { /* a write on a closed socket */ }
          rec.finished = true;
          events.emit('finished', rec);
          if (sock.destroyed) return;
        }
      } finally {
        busy = false;
      }
    };
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); pump(); });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  up.port = server.address().port;
  up.url = `http://127.0.0.1:${up.port}/v1`;
  up.of = (model) => up.requests.filter((r) => r.model === model);
  // Resolves with the first request (already arrived or still to come) that `pred` accepts.
  up.waitForRequest = (pred, ms = 10000) => new Promise((resolve, reject) => {
    const hit = up.requests.find(pred);
    if (hit) return resolve(hit);
    const t = setTimeout(() => { events.off('request', on); reject(new Error(`no such upstream request within ${ms} ms`)); }, ms);
    const on = (rec) => { if (pred(rec)) { clearTimeout(t); events.off('request', on); resolve(rec); } };
    events.on('request', on);
  });
  up.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return up;
}

// Bytes for the raw responder.
export const httpHead = (status, headers = {}) =>
  `HTTP/1.1 ${status} ${status === 200 ? 'OK' : 'Status'}\r\n` +
  Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
export const httpChunk = (data) => {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return Buffer.concat([Buffer.from(b.length.toString(16) + '\r\n'), b, Buffer.from('\r\n')]);
};
export const lastChunk = '0\r\n\r\n';
export const completion = (model, content) => JSON.stringify({
  id: 'chatcmpl-fault', object: 'chat.completion', created: 1, model,
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null }],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
});
export const sseEvent = (model, delta, finish = null) => `data: ${JSON.stringify({
  id: 'chatcmpl-fault', object: 'chat.completion.chunk', created: 1, model,
  choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
})}\n\n`;

// Writes and waits until the kernel took the bytes (or the socket went away).
export function write(sock, data) {
  return new Promise((resolve) => {
    if (sock.destroyed) return resolve(false);
    sock.write(data, (err) => resolve(!err));
  });
}

// Writes `data` one byte per write, `gapMs` apart (a peer that answers in the smallest pieces).
export async function writeByteByByte(sock, data, gapMs = 1) {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
  for (let i = 0; i < b.length; i++) {
    if (!(await write(sock, b.subarray(i, i + 1)))) return false;
    await sleep(gapMs);
  }
  return true;
}

// Writes `total` bytes made by piece(offset, size) without ever holding more than one piece:
// respects backpressure and stops as soon as the socket is closed. Resolves with the bytes the
// kernel accepted.
export async function pumpLazily(sock, total, piece, pieceSize = 64 * 1024) {
  let sent = 0;
  while (sent < total && !sock.destroyed) {
    const n = Math.min(pieceSize, total - sent);
    const ok = sock.write(piece(sent, n));
    sent += n;
    if (!ok) {
      await new Promise((r) => {
        const done = () => { sock.off('drain', done); sock.off('close', done); r(); };
        sock.on('drain', done);
        sock.on('close', done);
      });
    }
  }
  return sent;
}

// A TCP server that accepts connections, reads what comes (a TLS ClientHello) and never answers.
export async function startSilentServer() {
  const sockets = new Set();
  const s = { accepted: 0, closed: 0, firstBytes: [], sockets };
  const server = net.createServer((sock) => {
    s.accepted++;
    sockets.add(sock);
    sock.on('error', () => {});
    sock.once('data', (d) => s.firstBytes.push(d[0]));
    sock.on('close', () => { s.closed++; sockets.delete(sock); });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  s.port = server.address().port;
  s.close = async () => {
    for (const x of sockets) x.destroy();
    await new Promise((r) => server.close(r));
  };
  return s;
}

// --- stdio MCP servers ------------------------------------------------------------------------

// Writes a stdio MCP server that speaks newline-delimited JSON-RPC by hand (no SDK, so it can do
// what an SDK never would) and returns the script's path. It answers initialize, tools/list (the
// names in `tools`) and ping itself; `onCall(name, args, msg)` handles tools/call and `onInit(msg)`
// may take over initialize (return true when it did). Both are plain functions, inlined into the
// script with toString(): they see the script's helpers `send(obj)` (one JSON-RPC line), `out(s)`
// (raw bytes), `text(id, t)` (a text result) and `log(ev)`. Every message the server reads is
// appended to the JSON-lines file in $FAULT_LOG, so a test can see what the gateway sent it.
export function writeMcpServer(dir, name, { tools = [], onCall = () => {}, onInit = null } = {}) {
  const file = join(dir, `${name}.mjs`);
  // A function's source as an expression (a method shorthand `f() {}` is not one by itself).
  const expr = (fn) => {
    const src = fn.toString();
    if (/^(async\s+)?function\b/.test(src) || /^(async\s+)?(\([^)]*\)|\w+)\s*=>/.test(src)) return `(${src})`;
    return `(({ ${src} })[${JSON.stringify(fn.name)}])`;
  };
  writeFileSync(file, `// A fault-injecting MCP server written by tests/e2e/lib/fault_peers.mjs.
import { createInterface } from 'node:readline';
import { appendFileSync } from 'node:fs';
const LOG = process.env.FAULT_LOG || '';
const log = (ev) => { if (LOG) appendFileSync(LOG, JSON.stringify({ t: Date.now(), ...ev }) + '\\n'); };
const out = (s) => process.stdout.write(s);
const send = (m) => out(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\\n');
const text = (id, t) => send({ id, result: { content: [{ type: 'text', text: t }] } });
const TOOLS = ${JSON.stringify(tools)};
const onInit = ${onInit ? expr(onInit) : 'null'};
const onCall = ${expr(onCall)};
log({ event: 'started', pid: process.pid });
const rl = createInterface({ input: process.stdin });
rl.on('close', () => process.exit(0));
rl.on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  log({ method: m.method, id: m.id, params: m.method === 'tools/call' || m.method === 'notifications/cancelled' ? m.params : undefined });
  if (m.method === 'initialize') {
    if (onInit && onInit(m)) return;
    return send({ id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: ${JSON.stringify(name)}, version: '1' } } });
  }
  if (m.method === 'tools/list') return send({ id: m.id, result: { tools: TOOLS.map((n) => ({ name: n, inputSchema: { type: 'object' } })) } });
  if (m.method === 'tools/call') return onCall(m.params.name, m.params.arguments ?? {}, m);
  if (m.id !== undefined && m.method) return send({ id: m.id, result: {} });
});
`);
  return file;
}

// The messages a server of writeMcpServer logged so far.
export function readMcpLog(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// --- raw clients ------------------------------------------------------------------------------

export function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

// Collects what the gateway sends on `sock` until it closes the connection (or `ms` pass).
// Resolves with { data: Buffer, closed: whether the gateway closed it, ms: when }.
export function collect(sock, ms = 10000) {
  const start = Date.now();
  return new Promise((resolve) => {
    const parts = [];
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      resolve({ data: Buffer.concat(parts), closed, ms: Date.now() - start });
    };
    const t = setTimeout(() => finish(false), ms);
    sock.on('data', (d) => parts.push(d));
    sock.on('error', () => {});
    sock.on('close', () => finish(true));
    sock.on('end', () => finish(true));
  });
}

// Splits a byte stream into the HTTP/1.1 responses it holds (Content-Length or chunked bodies).
// The last one may be incomplete (then `complete` is false).
export function parseResponses(buf) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    const end = buf.indexOf('\r\n\r\n', pos);
    if (end < 0) break;
    const head = buf.subarray(pos, end).toString('latin1');
    const [line, ...fields] = head.split('\r\n');
    const headers = {};
    for (const f of fields) {
      const i = f.indexOf(':');
      headers[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1).trim();
    }
    const r = { status: Number(line.split(' ')[1]), headers, body: '', complete: false };
    out.push(r);
    pos = end + 4;
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts = [];
      for (;;) {
        const le = buf.indexOf('\r\n', pos);
        if (le < 0) return out;
        const size = parseInt(buf.subarray(pos, le).toString('latin1'), 16);
        if (Number.isNaN(size) || buf.length < le + 2 + size + 2) return out;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        pos = le + 2 + size + 2;
        if (size === 0) break;
      }
      r.body = Buffer.concat(parts).toString('utf8');
    } else {
      const n = Number(headers['content-length'] ?? 0);
      if (buf.length < pos + n) { r.body = buf.subarray(pos).toString('utf8'); return out; }
      r.body = buf.subarray(pos, pos + n).toString('utf8');
      pos += n;
    }
    r.complete = true;
  }
  return out;
}

// The data payloads of an SSE body.
export const sseData = (body) => body.split('\n\n').map((b) => b.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')).filter(Boolean);

// --- the gateway process, from /proc -----------------------------------------------------------

function status(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

export const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;
// Whether the binary runs under AddressSanitizer (CI runs the same tests on that build): its RSS
// is higher and freed memory sits in a quarantine (256 MB by default) for a while.
export const sanitized = (pid) => /libasan|libclang_rt\.asan/.test(readFileSync(`/proc/${pid}/maps`, 'utf8'));

// Watches a process's memory across a fault: resets the kernel's peak-RSS mark (clear_refs 5)
// where it may, and samples VmRSS every 50 ms as well, so `stop()` knows the peak even where the
// mark cannot be reset. Returns { before, peak, after } in MB.
export function watchMemory(pid) {
  let reset = true;
  try { writeFileSync(`/proc/${pid}/clear_refs`, '5'); } catch { reset = false; /* not allowed: sampling only */ }
  const before = status(pid).rss;
  let peak = before;
  const t = setInterval(() => { try { peak = Math.max(peak, status(pid).rss); } catch { /* gone */ } }, 50);
  return {
    before,
    stop() {
      clearInterval(t);
      const s = status(pid);
      return { before, peak: Math.max(peak, reset ? s.hwm : 0, s.rss), after: s.rss };
    },
  };
}
