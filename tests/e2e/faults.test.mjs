// Fault injection (issue 18): providers, MCP servers and clients that misbehave on purpose against
// the real binary. For every fault: the caller at fault gets a clear error (OpenAI's error shape
// with the right status, or an SSE error event once a stream has started), another client is
// served meanwhile or right after, the gateway stays up (GET /health), and where the fault is about
// size or count the gateway's memory stays bounded (VmRSS/VmHWM from /proc, growth only: the same
// tests run on the ASan build in CI, whose RSS is higher).
//
// Faults the other suites already assert are not repeated here:
//   integration.test.mjs  a silent upstream (504 after the provider timeout), request_timeout on a
//                         silent upstream and on an endless stream, a malformed stream event,
//                         client disconnects cancelling a plain or streamed upstream call, garbage
//                         on the client socket, max_connections/max_inflight 503s, body over
//                         max_body_bytes (413)
//   routing.test.mjs      resets before the first byte and a stream cut after its first content
//                         in a fallback pool (no second attempt once content went out)
//   mcp_client.test.mjs   a hanging tool (504, notifications/cancelled), a 10 MB result capped by
//                         max_result_bytes, a crashing or kill -9'd server restarted, a server
//                         that cannot start (required: /health 503)
//   agent_loop.test.mjs   a hanging tool timing out per call in the loop, a client leaving during a
//                         tool call (notifications/cancelled)
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, readSse, waitFor } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import {
  startRawUpstream, startSilentServer, httpHead, httpChunk, lastChunk, completion, sseEvent, write,
  writeByteByByte, pumpLazily, writeMcpServer, readMcpLog, connect, collect, parseResponses, sseData,
  fdCount, sanitized, watchMemory, sleep,
} from './lib/fault_peers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, 'fixtures', 'fixture_server.mjs');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
// Every test is bounded: a hang fails it (the hooks still stop what it started). Generous, for the
// ASan build on a loaded machine; the whole file takes about a minute on the release build.
const LIMIT = { timeout: 120000 };

// --- shared helpers ------------------------------------------------------------------------------

const chatBody = (model, content = 'hi', extra = {}) =>
  JSON.stringify({ model, messages: [{ role: 'user', content }], ...extra });

// One chat request, read whole (a stream by its SSE events), never waiting forever: a hang fails
// the test instead of blocking the file.
async function chat(gw, model, { stream = false, content = 'hi', headers = {}, timeoutMs = 30000 } = {}) {
  const start = Date.now();
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: chatBody(model, content, stream ? { stream: true } : {}), signal: AbortSignal.timeout(timeoutMs),
  });
  const out = { status: res.status, headers: Object.fromEntries(res.headers) };
  if (res.status === 200 && /event-stream/.test(res.headers.get('content-type') ?? '')) {
    out.events = await readSse(res);
    out.chunks = out.events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e));
    out.text = out.chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
    out.error = out.chunks.find((c) => c.error)?.error;
    out.done = out.events.at(-1) === '[DONE]';
  } else {
    out.raw = await res.text();
    try { out.json = JSON.parse(out.raw); } catch { /* kept raw */ }
    out.text = out.json?.choices?.[0]?.message?.content;
    out.error = out.json?.error;
  }
  out.ms = Date.now() - start;
  return out;
}

// OpenAI's error shape: {error: {message, type, code}} with a non-empty message.
function assertErrorShape(err, { type, code } = {}, why = '') {
  assert.ok(err && typeof err === 'object', `an error object ${why}`);
  assert.equal(typeof err.message, 'string', why);
  assert.ok(err.message.length > 0, why);
  assert.equal(typeof err.type, 'string', why);
  assert.ok('code' in err, `error.code present ${why}`);
  if (type) assert.equal(err.type, type, why);
  if (code) assert.equal(err.code, code, why);
}

// What to show when an assertion fails.
const why = (r, gw) => `response: ${JSON.stringify(r).slice(0, 2000)}\n--- gateway stderr (tail) ---\n${gw.logs.slice(-3000)}`;

// Another client's normal requests are answered: the demo model and mock-1 behind a healthy upstream.
async function assertServed(gw) {
  const demo = await chat(gw, 'toolgate-demo', { content: 'hello there' });
  assert.equal(demo.status, 200, why(demo, gw));
  assert.equal(demo.text, 'Hi! You said: hello there');
  const mock = await chat(gw, 'mock-1');
  assert.equal(mock.status, 200, why(mock, gw));
  assert.equal(mock.text, 'reply from mock-1');
}

// The gateway is alive and answers /health.
async function assertUp(gw) {
  assert.equal(gw.exited, null, `the gateway exited: ${JSON.stringify(gw.exited)}\n${gw.logs.slice(-3000)}`);
  const res = await fetch(gw.url + '/health', { signal: AbortSignal.timeout(10000) });
  assert.ok(res.status === 200, `health ${res.status}`);
  await res.arrayBuffer();
  assertNoSanitizerReport(gw);
}

// On the ASan build a report in the gateway's stderr is a failure (leaks are reported at exit: the
// after hooks check again once the gateway has stopped).
function assertNoSanitizerReport(gw) {
  if (gw) assert.doesNotMatch(gw.logs, /AddressSanitizer|LeakSanitizer|runtime error:/, `sanitizer report:\n${gw.logs.slice(-4000)}`);
}

// Memory bounds are for the release build; under ASan a freed block sits in its quarantine (256 MB
// by default) and everything is larger, so the bound is widened there.
const memBound = (gw, mb) => (sanitized(gw.proc.pid) ? mb * 2 + 256 : mb);
const memNote = (m) => `RSS ${m.before.toFixed(0)} MB before, peak ${m.peak.toFixed(0)} MB, ${m.after.toFixed(0)} MB after`;

const demoProvider = `
  - name: demo
    type: scripted
    models: [toolgate-demo]
    rules:
      - { when: "hello", reply: "Hi! You said: {input}" }`;

// --- providers -----------------------------------------------------------------------------------

// A raw-socket upstream whose every byte the test writes itself (the model name picks the fault);
// a TCP server that never answers stands in for a stalled TLS handshake. The provider
// timeouts are short (2 s idle between reads, 1 s to connect); nothing the faulty upstream does may
// hang a client, crash the gateway, poison its connection pool or grow its memory without bound.
describe('faulty providers', () => {
  const TIMEOUT_MS = 2000;
  let raw, silent, healthy, gw;

  const CONTENT = 'Ünïcödé ✓ 😀 split in single bytes';

  async function respond(rec, sock) {
    const m = rec.model;
    const stream = rec.json?.stream === true;
    const sseHead = httpHead(200, { 'Content-Type': 'text/event-stream', 'Transfer-Encoding': 'chunked' });
    const jsonHead = (len) => httpHead(200, { 'Content-Type': 'application/json', 'Content-Length': len });
    const sendJson = async (body) => write(sock, jsonHead(Buffer.byteLength(body)) + body);
    const sendSse = async (pieces) => {
      let out = Buffer.from(sseHead);
      for (const p of pieces) out = Buffer.concat([out, httpChunk(p)]);
      return write(sock, Buffer.concat([out, Buffer.from(lastChunk)]));
    };
    const words = (text) => [sseEvent(m, { role: 'assistant', content: '' }),
      ...text.split(/(?= )/).map((w) => sseEvent(m, { content: w })), sseEvent(m, {}, 'stop'), 'data: [DONE]\n\n'];
    switch (m) {
      case 'm-ok':
        return stream ? sendSse(words('ok from raw')) : sendJson(completion(m, 'ok from raw'));
      case 'm-reset':
        if (!stream) {
          // Half the announced body, then a TCP reset.
          const body = completion(m, 'never whole');
          await write(sock, jsonHead(Buffer.byteLength(body)) + body.slice(0, 40));
          await sleep(50);
          return sock.resetAndDestroy();
        }
        // Content went out, then the reset lands in the middle of the next event (and of its chunk).
        await write(sock, Buffer.concat([Buffer.from(sseHead), httpChunk(sseEvent(m, { role: 'assistant', content: '' })),
          httpChunk(sseEvent(m, { content: 'partial ' }))]));
        await sleep(100);
        await write(sock, Buffer.from('40\r\ndata: {"id":"chatcmpl-fault","object":"chat.compl'));
        await sleep(50);
        return sock.resetAndDestroy();
      case 'm-bytes':
        // Every byte of the answer in its own write, head and chunk framing included; multi-byte
        // UTF-8 characters are split across reads too.
        if (!stream) {
          const body = completion(m, CONTENT);
          return writeByteByByte(sock, jsonHead(Buffer.byteLength(body)) + body);
        } else {
          let out = Buffer.from(sseHead);
          for (const p of words(CONTENT)) out = Buffer.concat([out, httpChunk(p)]);
          return writeByteByByte(sock, Buffer.concat([out, Buffer.from(lastChunk)]));
        }
      case 'm-utf8': {
        // Bytes that are not UTF-8 inside the content string: a lone 0xff, 0xfe, a truncated
        // two-byte sequence (0xc3 0x28) and an overlong encoding of '/' (0xc0 0xaf).
        const bad = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xc0, 0xaf]);
        const [pre, post] = completion(m, 'bad:@:end').split('@');
        if (!stream) {
          const body = Buffer.concat([Buffer.from(pre), bad, Buffer.from(post)]);
          return write(sock, Buffer.concat([Buffer.from(jsonHead(body.length)), body]));
        }
        const [epre, epost] = sseEvent(m, { content: 'bad:@:end' }).split('@');
        return write(sock, Buffer.concat([Buffer.from(sseHead), httpChunk(sseEvent(m, { role: 'assistant', content: 'fine ' })),
          httpChunk(Buffer.concat([Buffer.from(epre), bad, Buffer.from(epost)])), httpChunk(sseEvent(m, {}, 'stop')),
          httpChunk('data: [DONE]\n\n'), Buffer.from(lastChunk)]));
      }
      case 'm-huge': {
        // A 1 GiB body made on the fly, one 64 KiB piece at a time; never held by this process.
        if (!stream) {
          const pre = '{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"';
          await write(sock, jsonHead(GiB));
          rec.sent = await pumpLazily(sock, GiB, (off, n) => (off === 0 ? pre + 'a'.repeat(n - pre.length) : 'a'.repeat(n)));
          return;
        }
        // A stream whose content started, then one SSE line of 1 GiB that never ends.
        await write(sock, Buffer.concat([Buffer.from(sseHead), httpChunk(sseEvent(m, { role: 'assistant', content: '' })),
          httpChunk(sseEvent(m, { content: 'start ' }))]));
        const pre = 'data: {"choices":[{"index":0,"delta":{"content":"';
        rec.sent = await pumpLazily(sock, GiB, (off, n) => httpChunk(off === 0 ? pre + 'a'.repeat(n - pre.length) : 'a'.repeat(n)));
        return;
      }
      case 'm-slow-head':
        // A status line, then one more header line every 100 ms, never the blank line.
        await write(sock, 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n');
        for (let i = 0; !sock.destroyed && i < 600; i++) { await write(sock, `X-Pad-${i}: y\r\n`); await sleep(100); }
        return;
      case 'm-fat-head':
        // Header lines as fast as the gateway reads them, up to 1 GiB, never the blank line.
        await write(sock, 'HTTP/1.1 200 OK\r\n');
        rec.sent = await pumpLazily(sock, GiB, (off, n) => `X-Pad: ${'h'.repeat(n - 10)}\r\n`);
        return;
      case 'm-late': {
        // Silent past the provider timeout, then a whole answer: it must reach nobody.
        if (stream) {
          await write(sock, Buffer.concat([Buffer.from(sseHead), httpChunk(sseEvent(m, { role: 'assistant', content: '' })),
            httpChunk(sseEvent(m, { content: 'early ' }))]));
          await sleep(TIMEOUT_MS + 1500);
          if (sock.destroyed) return;
          await write(sock, Buffer.concat([httpChunk(sseEvent(m, { content: 'LATE ANSWER' })), httpChunk('data: [DONE]\n\n'), Buffer.from(lastChunk)]));
          return;
        }
        await sleep(TIMEOUT_MS + 1500);
        if (!sock.destroyed) await sendJson(completion(m, 'LATE ANSWER'));
        return;
      }
      default:
        return sendJson(completion(m, `unexpected model ${m}`));
    }
  }

  before(async () => {
    raw = await startRawUpstream(respond);
    silent = await startSilentServer();
    healthy = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
server: { shutdown_grace: 2s }
providers:
  - name: faulty
    type: openai
    base_url: ${raw.url}
    timeout: ${TIMEOUT_MS}ms
    connect_timeout: 2s
    models: [m-ok, m-reset, m-bytes, m-utf8, m-huge, m-slow-head, m-fat-head, m-late]
  - name: tlsstall
    type: openai
    base_url: https://127.0.0.1:${silent.port}/v1
    timeout: ${TIMEOUT_MS}ms
    connect_timeout: 1s
    models: [m-tls]
  - name: healthy
    type: openai
    base_url: ${healthy.url}
    models: [mock-1]
${demoProvider}
`);
  });
  after(async () => {
    await gw?.stop();
    await raw?.close();
    await silent?.close();
    await healthy?.close();
    assertNoSanitizerReport(gw);
  });

  // The connection to the faulty upstream is usable afterwards: a fresh request through the same
  // provider gets its own answer (nothing half-read was put back in the pool).
  async function assertProviderRecovers() {
    const r = await chat(gw, 'm-ok');
    assert.equal(r.status, 200, why(r, gw));
    assert.equal(r.text, 'ok from raw');
    const s = await chat(gw, 'm-ok', { stream: true });
    assert.equal(s.text, 'ok from raw', why(s, gw));
    assert.ok(s.done);
  }

  test('connection reset mid-stream: the content so far, then an error event; no [DONE], no hang', LIMIT, async () => {
    const pending = chat(gw, 'm-reset', { stream: true });
    await raw.waitForRequest((r) => r.model === 'm-reset');
    await assertServed(gw);
    const r = await pending;
    assert.equal(r.status, 200, why(r, gw));
    assert.equal(r.text, 'partial ');
    const last = r.chunks.at(-1);
    assertErrorShape(last.error, { type: 'upstream_error' }, why(r, gw));
    assert.ok(!r.done, 'no [DONE] after a reset stream');
    await assertProviderRecovers();
    await assertUp(gw);
  });

  test('connection reset in the middle of a plain body: 502 upstream_error', LIMIT, async () => {
    const r = await chat(gw, 'm-reset');
    assert.equal(r.status, 502, why(r, gw));
    assertErrorShape(r.error, { type: 'upstream_error' }, why(r, gw));
    await assertServed(gw);
    await assertProviderRecovers();
    await assertUp(gw);
  });

  test('an answer delivered one byte at a time is assembled whole, plain and streamed', LIMIT, async () => {
    const pending = chat(gw, 'm-bytes');
    await raw.waitForRequest((r) => r.model === 'm-bytes');
    await assertServed(gw);  // while the bytes trickle in
    const plain = await pending;
    assert.equal(plain.status, 200, why(plain, gw));
    assert.equal(plain.text, CONTENT);
    assert.equal(plain.json.usage.total_tokens, 5);
    const s = await chat(gw, 'm-bytes', { stream: true });
    assert.equal(s.status, 200, why(s, gw));
    assert.equal(s.text, CONTENT);
    assert.ok(s.done, 'ends with [DONE]');
    assert.equal(s.chunks.filter((c) => c.choices?.[0]?.finish_reason === 'stop').length, 1);
    await assertUp(gw);
  });

  test('invalid UTF-8 in the content: a clear 502 (plain) or an error event (stream), never bad bytes to the client', LIMIT, async () => {
    // What the gateway does: it refuses the answer as malformed rather than passing the bytes on or
    // replacing them. Either way what reaches the client must itself be valid UTF-8.
    const res = await fetch(gw.url + '/v1/chat/completions', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('m-utf8'), signal: AbortSignal.timeout(30000) });
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(bytes), 'the answer is valid UTF-8');
    assert.equal(res.status, 502, bytes.toString());
    assertErrorShape(JSON.parse(bytes).error, { type: 'upstream_error' });

    const sres = await fetch(gw.url + '/v1/chat/completions', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('m-utf8', 'hi', { stream: true }), signal: AbortSignal.timeout(30000) });
    const sbytes = Buffer.from(await sres.arrayBuffer());
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(sbytes), 'the stream is valid UTF-8');
    const events = sseData(sbytes.toString());
    assert.equal(sres.status, 200, sbytes.toString());
    const last = JSON.parse(events.at(-1));
    assertErrorShape(last.error, { type: 'upstream_error' }, sbytes.toString());
    assert.ok(!events.includes('[DONE]'));
    assert.ok(!sbytes.toString().includes(':end'), 'the broken event is not relayed');
    await assertServed(gw);
    await assertProviderRecovers();
    await assertUp(gw);
  });

  test('a 1 GiB plain body is cut off at the response limit: 502, bounded memory', LIMIT, async (t) => {
    const mem = watchMemory(gw.proc.pid);
    const pending = chat(gw, 'm-huge', { timeoutMs: 60000 });
    const rec = await raw.waitForRequest((r) => r.model === 'm-huge' && r.json?.stream !== true);
    await assertServed(gw);
    const r = await pending;
    const m = mem.stop();
    t.diagnostic(memNote(m));
    assert.equal(r.status, 502, why(r, gw));
    assertErrorShape(r.error, { type: 'upstream_error' }, why(r, gw));
    assert.match(r.error.message, /too large/);
    await waitFor(() => rec.finished, 20000, 'the upstream to see the connection closed');
    assert.ok(rec.sent < GiB / 4, `the gateway stopped reading early (${(rec.sent / MiB).toFixed(0)} MiB sent)`);
    t.diagnostic(`the upstream got ${(rec.sent / MiB).toFixed(0)} MiB of its 1 GiB out`);
    assert.ok(m.peak - m.before < memBound(gw, 200), `RSS grew ${(m.peak - m.before).toFixed(0)} MB (before ${m.before.toFixed(0)} MB)`);
    await assertServed(gw);
    await assertProviderRecovers();
    await assertUp(gw);
  });

  test('a 1 GiB SSE line that never ends: the stream ends with an error event at the event bound, bounded memory', LIMIT, async (t) => {
    const mem = watchMemory(gw.proc.pid);
    const pending = chat(gw, 'm-huge', { stream: true, timeoutMs: 60000 });
    const rec = await raw.waitForRequest((r) => r.model === 'm-huge' && r.json?.stream === true);
    await assertServed(gw);
    const r = await pending;
    const m = mem.stop();
    t.diagnostic(memNote(m));
    assert.equal(r.status, 200, why(r, gw));
    assert.equal(r.text, 'start ');
    assertErrorShape(r.chunks.at(-1).error, { type: 'upstream_error' }, why(r, gw));
    assert.ok(!r.done);
    await waitFor(() => rec.finished, 20000, 'the upstream to see the connection closed');
    assert.ok(rec.sent < GiB / 4, `the gateway stopped reading early (${(rec.sent / MiB).toFixed(0)} MiB sent)`);
    t.diagnostic(`the upstream got ${(rec.sent / MiB).toFixed(0)} MiB of its 1 GiB out`);
    assert.ok(m.peak - m.before < memBound(gw, 200), `RSS grew ${(m.peak - m.before).toFixed(0)} MB`);
    await assertProviderRecovers();
    await assertUp(gw);
  });

  test('response headers that never end (one line per 100 ms): 504 upstream_timeout after the provider timeout', LIMIT, async () => {
    const pending = chat(gw, 'm-slow-head');
    const rec = await raw.waitForRequest((r) => r.model === 'm-slow-head');
    await assertServed(gw);
    const r = await pending;
    assert.equal(r.status, 504, why(r, gw));
    assertErrorShape(r.error, { code: 'upstream_timeout' }, why(r, gw));
    assert.ok(r.ms >= TIMEOUT_MS * 0.9 && r.ms < TIMEOUT_MS + 8000, `took ${r.ms} ms (timeout ${TIMEOUT_MS} ms)`);
    await waitFor(() => rec.finished, 10000, 'the gateway to drop the upstream connection');
    await assertProviderRecovers();
    await assertUp(gw);
  });

  test('response headers that never end, as fast as they can be read: 502 at the head limit, bounded memory', LIMIT, async (t) => {
    const mem = watchMemory(gw.proc.pid);
    const r = await chat(gw, 'm-fat-head');
    const m = mem.stop();
    t.diagnostic(memNote(m));
    assert.equal(r.status, 502, why(r, gw));
    assertErrorShape(r.error, { type: 'upstream_error' }, why(r, gw));
    const rec = raw.of('m-fat-head').at(-1);
    await waitFor(() => rec.finished, 10000, 'the gateway to drop the upstream connection');
    assert.ok(rec.sent < GiB / 4, `stopped reading early (${(rec.sent / MiB).toFixed(0)} MiB sent)`);
    t.diagnostic(`the upstream got ${(rec.sent / MiB).toFixed(1)} MiB of head out`);
    assert.ok(m.peak - m.before < memBound(gw, 100), `RSS grew ${(m.peak - m.before).toFixed(0)} MB`);
    await assertServed(gw);
    await assertProviderRecovers();
    await assertUp(gw);
  });

  test('a TLS handshake that stalls (ClientHello never answered): 504 within the provider timeouts, the socket closed', LIMIT, async () => {
    const pending = chat(gw, 'm-tls');
    await waitFor(() => silent.firstBytes.length >= 1, 10000, 'the ClientHello');
    assert.equal(silent.firstBytes[0], 0x16, 'a TLS handshake record arrived');
    await assertServed(gw);
    const r = await pending;
    assert.equal(r.status, 504, why(r, gw));
    assertErrorShape(r.error, { code: 'upstream_timeout' }, why(r, gw));
    assert.ok(r.ms < TIMEOUT_MS + 8000, `took ${r.ms} ms (connect_timeout 1 s, timeout ${TIMEOUT_MS} ms)`);
    await waitFor(() => silent.closed >= silent.accepted, 10000, 'the gateway to close the stalled connection');
    // Streamed: nothing was sent yet, so a plain 504 as well.
    const s = await chat(gw, 'm-tls', { stream: true });
    assert.equal(s.status, 504, why(s, gw));
    await assertUp(gw);
  });

  test('an answer after the provider timeout: 504 for the caller, the late answer reaches nobody', LIMIT, async () => {
    const pending = chat(gw, 'm-late');
    const rec = await raw.waitForRequest((r) => r.model === 'm-late' && r.json?.stream !== true);
    await assertServed(gw);
    const r = await pending;
    assert.equal(r.status, 504, why(r, gw));
    assertErrorShape(r.error, { code: 'upstream_timeout' }, why(r, gw));
    assert.ok(!r.raw.includes('LATE'));
    // Streamed: the early content, then an error event; the late words never follow.
    const s = await chat(gw, 'm-late', { stream: true });
    assert.equal(s.status, 200, why(s, gw));
    assert.equal(s.text, 'early ');
    assertErrorShape(s.chunks.at(-1).error, { code: 'upstream_timeout' }, why(s, gw));
    assert.ok(!s.done);
    // The gateway hung up on both; requests made while the late answers were due get their own.
    await waitFor(() => rec.closed, 10000, 'the gateway to drop the late connection');
    for (let i = 0; i < 3; i++) await assertProviderRecovers();
    await assertUp(gw);
  });
});

// server.request_timeout (1.5 s) below the provider timeout (30 s): an upstream that answers after
// the request's deadline. The caller gets 504 request_timeout at the deadline, the upstream
// connection is dropped, and the answer that comes later is delivered to nobody.
describe('an answer after server.request_timeout', () => {
  let raw, healthy, gw;
  before(async () => {
    raw = await startRawUpstream(async (rec, sock) => {
      if (rec.model === 'm-ok') {
        const body = completion(rec.model, 'ok from raw');
        return write(sock, httpHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }) + body);
      }
      await sleep(3000);
      if (sock.destroyed) return;
      const body = completion(rec.model, 'LATE ANSWER');
      await write(sock, httpHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }) + body);
    });
    healthy = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
server: { request_timeout: 1500ms }
providers:
  - { name: faulty, type: openai, base_url: "${raw.url}", timeout: 30s, models: [m-ok, m-late] }
  - { name: healthy, type: openai, base_url: "${healthy.url}", models: [mock-1] }
${demoProvider}
`);
  });
  after(async () => {
    await gw?.stop();
    await raw?.close();
    await healthy?.close();
    assertNoSanitizerReport(gw);
  });

  test('504 request_timeout at the deadline; the upstream call is dropped; the next request gets its own answer', LIMIT, async () => {
    const pending = chat(gw, 'm-late');
    const rec = await raw.waitForRequest((r) => r.model === 'm-late');
    await assertServed(gw);
    const r = await pending;
    assert.equal(r.status, 504, why(r, gw));
    assertErrorShape(r.error, { code: 'request_timeout' }, why(r, gw));
    assert.ok(r.ms >= 1300 && r.ms < 9000, `took ${r.ms} ms`);
    await waitFor(() => rec.closed, 10000, 'the upstream connection to be dropped');
    const next = await chat(gw, 'm-ok');
    assert.equal(next.text, 'ok from raw', why(next, gw));
    await assertUp(gw);
  });
});

// --- MCP servers ---------------------------------------------------------------------------------

// Stdio MCP servers written as small Node scripts (lib/fault_peers.mjs writeMcpServer) that flood
// stdout, mix garbage into their JSON-RPC, never answer, answer twice or with unknown ids, die
// during initialize or return 100 MB; the SDK fixture server "good" beside them must keep working,
// the gateway's memory must stay bounded, and each caller gets a clear answer or error.
describe('faulty MCP servers', () => {
  let dir, upstream, gw;
  const logOf = (name) => join(dir, `${name}.log`);
  const call = async (name, args = {}, headers = {}) => {
    const res = await fetch(gw.url + '/v1/mcp/tools/call', {
      method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ name, arguments: args }),
      signal: AbortSignal.timeout(60000) });
    return { status: res.status, body: await res.json() };
  };
  const timedCall = async (name, args = {}) => {
    const start = Date.now();
    const r = await call(name, args);
    r.ms = Date.now() - start;
    return r;
  };
  // The gateway's stderr reaches this process asynchronously.
  const waitForLog = (re) => waitFor(() => re.test(gw.logs), 5000, `a log line matching ${re}`);
  const servers = async () => Object.fromEntries((await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.map((s) => [s.name, s]));
  // Another client of the gateway is served: a tool of the healthy server, and a model answer.
  const assertOthersServed = async () => {
    const r = await call('good__slow', { ms: 10 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.result.content[0].text, 'slow done');
    await assertServed(gw);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'toolgate-faults-mcp-'));
    const flood = writeMcpServer(dir, 'flood', {
      tools: ['flood', 'spam'],
      onCall(name, args, m) {
        if (name === 'flood') {
          // 1 MB of junk lines, then one 40 MB line with no newline until its end (over the
          // gateway's 32 MiB line bound), then the real answer.
          for (let i = 0; i < 1000; i++) out('junk '.repeat(200) + '\n');
          const mb = 'x'.repeat(1024 * 1024);
          for (let i = 0; i < 40; i++) out(mb);
          out('\n');
          return text(m.id, 'after the flood');
        }
        // 200,000 one-byte junk lines (400 KB), then the answer.
        out('x\n'.repeat(200000));
        return text(m.id, 'after the spam');
      },
    });
    const endless = writeMcpServer(dir, 'endless', {
      tools: ['endless'],
      onCall() {
        // 100 MB without a newline, then silence.
        const mb = 'z'.repeat(1024 * 1024);
        for (let i = 0; i < 100; i++) out(mb);
      },
    });
    const garbage = writeMcpServer(dir, 'garbage', {
      tools: ['echo'],
      onInit(m) {
        out('Starting the garbage server v1.0 ...\n\n   \n{not json at all\n[1,2,3]\n{"foo":1}\n');
        out(Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x0a]));
        send({ method: 'notifications/unknown_thing', params: { x: 1 } });
        send({ id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'garbage', version: '1' } } });
        out('ready!\n{"jsonrpc":"2.0"}\n');
        return true;
      },
      onCall(name, args, m) {
        out('working on it...\n{"jsonrpc":"2.0","id":null,"result":{}}\n{"jsonrpc":"1.0","id":' + m.id + ',"result":{}}\n');
        out('{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"nobody","progress":1}}\n');
        text(m.id, `echo: ${args.message}`);
        out('done.\n');
      },
    });
    const silent = writeMcpServer(dir, 'silent', {
      tools: ['never', 'quick'],
      onCall(name, args, m) {
        if (name === 'quick') text(m.id, 'quick answer');
        // 'never': no answer, and notifications/cancelled is logged but ignored.
      },
    });
    const twice = writeMcpServer(dir, 'twice', {
      tools: ['dup'],
      onCall(name, args, m) {
        // Answers for ids nobody asked for, then the real answer twice, all in one write.
        const line = (o) => JSON.stringify({ jsonrpc: '2.0', ...o }) + '\n';
        out(line({ id: 987654, result: { content: [{ type: 'text', text: 'unknown numeric id' }] } }) +
          line({ id: 'not-ours', result: { content: [{ type: 'text', text: 'unknown string id' }] } }) +
          line({ id: 424242, error: { code: -32000, message: 'error for an unknown id' } }) +
          line({ id: m.id, result: { content: [{ type: 'text', text: `first answer to ${args.n}` }] } }) +
          line({ id: m.id, result: { content: [{ type: 'text', text: `second answer to ${args.n}` }] } }) +
          line({ id: m.id + 1, result: { content: [{ type: 'text', text: 'an answer in advance' }] } }));
      },
    });
    const dies = writeMcpServer(dir, 'dies', {
      tools: ['never_listed'],
      onInit() {
        out('{"jsonrpc":"2.0","id":');  // half an answer, then gone
        process.exit(1);
      },
    });
    const huge = writeMcpServer(dir, 'huge', {
      tools: ['huge', 'small'],
      onCall(name, args, m) {
        if (name === 'small') return text(m.id, 'small answer');
        // A 100 MB result on one line, written in 1 MB pieces.
        out(`{"jsonrpc":"2.0","id":${m.id},"result":{"content":[{"type":"text","text":"`);
        const mb = 'y'.repeat(1024 * 1024);
        for (let i = 0; i < 100; i++) out(mb);
        out('"}]}}\n');
      },
    });
    const env = (name) => `{ FAULT_LOG: "${logOf(name)}" }`;
    upstream = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: healthy, type: openai, base_url: "${upstream.url}", models: [mock-1, mock-agent] }
${demoProvider}
mcp_servers:
  - { name: good, command: node, args: ["${fixture}"], env: { FIXTURE_BULK_TOOLS: "0" } }
  - { name: flood, command: node, args: ["${flood}"], env: ${env('flood')}, timeout: 5s }
  - { name: endless, command: node, args: ["${endless}"], env: ${env('endless')}, timeout: 3s }
  - { name: garbage, command: node, args: ["${garbage}"], env: ${env('garbage')} }
  - { name: silent, command: node, args: ["${silent}"], env: ${env('silent')}, timeout: 1500ms }
  - { name: twice, command: node, args: ["${twice}"], env: ${env('twice')} }
  - { name: dies, command: node, args: ["${dies}"], env: ${env('dies')} }
  - { name: huge, command: node, args: ["${huge}"], env: ${env('huge')}, timeout: 3s }
agent_loop:
  tool_timeout: 20s
`);
    await waitFor(async () => {
      const s = await servers();
      return Object.values(s).filter((x) => x.name !== 'dies').every((x) => x.status === 'up');
    }, 30000, 'the MCP servers up');
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assertNoSanitizerReport(gw);
  });

  test('a flood of junk lines and a 40 MB line on stdout: the line is dropped, the answer after it arrives, memory bounded', LIMIT, async (t) => {
    const mem = watchMemory(gw.proc.pid);
    const pending = timedCall('flood__flood');
    await waitFor(() => readMcpLog(logOf('flood')).some((e) => e.method === 'tools/call'), 10000, 'the call to reach the server');
    await assertOthersServed();
    const r = await pending;
    const m = mem.stop();
    t.diagnostic(memNote(m));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.result.content[0].text, 'after the flood');
    await waitForLog(/\[mcp:flood\].*dropped a message larger than 33554432 bytes/);
    assert.ok(m.peak - m.before < memBound(gw, 200), `RSS grew ${(m.peak - m.before).toFixed(0)} MB`);
    assert.equal((await servers()).flood.status, 'up');
    await assertUp(gw);
  });

  // A call to `<server>__<server>` that must fail: others are served while it runs, it ends with a
  // tool_error within the server's timeout (3 s, with room for a loaded machine); its memory use.
  async function failingCall(t, server) {
    const mem = watchMemory(gw.proc.pid);
    const pending = timedCall(`${server}__${server}`);
    await waitFor(() => readMcpLog(logOf(server)).some((e) => e.method === 'tools/call'), 10000, 'the call to reach the server');
    await assertOthersServed();
    const r = await pending;
    const m = mem.stop();
    t.diagnostic(memNote(m));
    assert.ok(r.status >= 500, JSON.stringify(r.body));
    assertErrorShape(r.body.error, { type: 'tool_error' }, JSON.stringify(r.body));
    assert.ok(r.ms < 3000 + 10000, `took ${r.ms} ms (server timeout 3 s)`);
    return { r, m };
  }

  test('one line of 100 MB that never ends: bounded memory, the call fails with an error, others are served', LIMIT, async (t) => {
    const { r, m } = await failingCall(t, 'endless');
    assert.ok(m.peak - m.before < memBound(gw, 200), `RSS grew ${(m.peak - m.before).toFixed(0)} MB`);
    await assertUp(gw);
  });

  test('200,000 one-byte junk lines: the answer arrives, and the gateway log does not grow with every line', LIMIT, async () => {
    const logBefore = gw.logs.length;
    const r = await call('flood__spam', {}, { 'x-request-id': 'spam-call' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.result.content[0].text, 'after the spam');
    // The call's access-log line comes after whatever the junk made the gateway log (one stderr).
    await waitFor(() => gw.accessLog().some((l) => l.request_id === 'spam-call'), 10000, 'the access-log line of the call');
    const grew = gw.logs.length - logBefore;
    assert.ok(grew < 2 * MiB, `the log grew by ${(grew / MiB).toFixed(1)} MB for 400 KB of junk`);
  });

  test('garbage lines between valid JSON-RPC messages are tolerated: the server is up, its tool works', LIMIT, async () => {
    assert.equal((await servers()).garbage.status, 'up');
    for (let i = 0; i < 3; i++) {
      const r = await call('garbage__echo', { message: `m${i}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.result.content, [{ type: 'text', text: `echo: m${i}` }]);
    }
    await waitForLog(/\[mcp:garbage\].*non-JSON output on stdout: Starting the garbage server/);
    await waitForLog(/\[mcp:garbage\].*ignored an invalid message/);
    await assertOthersServed();
    await assertUp(gw);
  });

  test('a server that never answers a tools/call (and ignores the cancellation): 504 at its timeout; its other tools, and the loop, go on', LIMIT, async () => {
    const pending = timedCall('silent__never');
    await waitFor(() => readMcpLog(logOf('silent')).some((e) => e.method === 'tools/call' && e.params?.name === 'never'), 10000, 'the call');
    // The same server answers another call while the first one waits.
    const quick = await call('silent__quick');
    assert.equal(quick.body.result.content[0].text, 'quick answer');
    await assertOthersServed();
    const r = await pending;
    assert.equal(r.status, 504, JSON.stringify(r.body));
    assertErrorShape(r.body.error, { type: 'tool_error', code: 'timeout' }, JSON.stringify(r.body));
    assert.ok(r.ms >= 1300 && r.ms < 1500 + 8000, `took ${r.ms} ms (server timeout 1.5 s)`);
    await waitFor(() => readMcpLog(logOf('silent')).some((e) => e.method === 'notifications/cancelled'), 5000, 'notifications/cancelled');

    // In a streamed agent loop the model gets the failure as the tool's result and still answers.
    const s = await chat(gw, 'mock-agent', { stream: true, content: 'call silent__never {}' });
    assert.equal(s.status, 200, why(s, gw));
    assert.ok(s.done);
    assert.match(s.text, /^Tool results: .*timeout/, s.text);
    await assertUp(gw);
  });

  test('answers to unknown ids, and the right answer twice: the first answer is delivered once', LIMIT, async () => {
    for (let n = 1; n <= 3; n++) {
      const r = await call('twice__dup', { n });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.result.content, [{ type: 'text', text: `first answer to ${n}` }]);
    }
  });

  test('answers to unknown ids and duplicates do not crash or confuse the session: each call gets an answer of its own', LIMIT, async () => {
    for (let n = 1; n <= 3; n++) {
      const r = await call('twice__dup', { n });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.match(r.body.result.content[0].text, new RegExp(`^(first|second) answer to ${n}$`), 'never an answer meant for another id');
    }
    assert.equal((await servers()).twice.status, 'up');
    await assertOthersServed();
    await assertUp(gw);
  });

  test('a server that dies during initialize: the gateway serves anyway, /health shows it down, it is retried with backoff', LIMIT, async () => {
    await waitFor(() => readMcpLog(logOf('dies')).filter((e) => e.method === 'initialize').length >= 2, 15000, 'a second initialize (restart)');
    const s = await servers();
    assert.notEqual(s.dies.status, 'up');
    assert.ok(s.dies.restarts >= 1);
    const health = await (await fetch(gw.url + '/health')).json();
    const h = health.mcp_servers.find((x) => x.name === 'dies');
    assert.notEqual(h.status, 'up');
    assert.equal(typeof h.last_error, 'string');
    assert.equal(health.status, 'degraded');
    const tools = (await (await fetch(gw.url + '/v1/mcp/tools')).json()).data.map((t) => t.name);
    assert.ok(!tools.some((t) => t.startsWith('dies__')));
    assert.ok(tools.includes('good__pid') && tools.includes('garbage__echo'));
    const r = await call('dies__never_listed');
    assert.equal(r.status, 404);
    assertErrorShape(r.body.error, { code: 'unknown_tool' });
    await assertOthersServed();
    // Backoff from 500 ms, doubling: a handful of starts, not a busy loop.
    const starts = readMcpLog(logOf('dies')).filter((e) => e.event === 'started').length;
    assert.ok(starts <= 10, `${starts} starts so far`);
  });

  test('a 100 MB tool result is refused at the line bound: the call fails, memory bounded, the server keeps working', LIMIT, async (t) => {
    const { r, m } = await failingCall(t, 'huge');
    await waitForLog(/\[mcp:huge\].*dropped a message larger than/);
    assert.ok(m.peak - m.before < memBound(gw, 200), `RSS grew ${(m.peak - m.before).toFixed(0)} MB`);
    const small = await call('huge__small');
    assert.equal(small.body.result.content[0].text, 'small answer');
    await assertUp(gw);
  });

  test('a 100 MB tool result gets an error that says it was too large, without waiting for the timeout', LIMIT, async () => {
    const r = await timedCall('huge__huge');
    assert.ok(r.status >= 500);
    assert.notEqual(r.body.error.code, 'timeout');
    assert.match(r.body.error.message, /large|limit|size/i);
    assert.ok(r.ms < 2500, `took ${r.ms} ms`);
  });
});

// --- clients -------------------------------------------------------------------------------------

// Clients on raw sockets: slow heads and bodies (slowloris), pipelining, request smuggling. The
// head and body timeouts are 1 s here; a fake upstream records every request that reaches a model,
// so a smuggled request that got executed shows up there.
describe('misbehaving clients', () => {
  let upstream, gw;
  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
server: { header_timeout: 1s, body_timeout: 1s, keepalive_timeout: 10s }
providers:
  - { name: healthy, type: openai, base_url: "${upstream.url}", models: [mock-1, mock-echo] }
${demoProvider}
`);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    assertNoSanitizerReport(gw);
  });
  const seenUpstream = (marker) => upstream.state.requests.filter((r) => r.raw.includes(marker));

  // Writes `text` one byte per 100 ms until the gateway closes the connection or `ms` pass.
  async function trickle(sock, text, ms) {
    const start = Date.now();
    let i = 0;
    while (!sock.destroyed && i < text.length && Date.now() - start < ms) {
      sock.write(text[i++]);
      await sleep(100);
    }
    return i;
  }

  test('slowloris head (one byte per 100 ms): closed at header_timeout, others served meanwhile', LIMIT, async () => {
    const sock = await connect(gw.port);
    const closed = collect(sock, 15000);
    const head = `GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(300)}\r\n\r\n`;
    const trickling = trickle(sock, head, 12000);
    await assertServed(gw);
    const r = await closed;
    const sent = await trickling;
    assert.ok(r.closed, 'the gateway closed the connection');
    assert.ok(r.ms >= 800 && r.ms < 8000, `closed after ${r.ms} ms (header_timeout 1 s)`);
    assert.ok(sent < head.length, 'before the head was complete');
    assert.ok(r.data.length === 0 || /^HTTP\/1\.1 4\d\d/.test(r.data.toString()), r.data.toString());
    await assertUp(gw);
  });

  test('slowloris head on a kept-alive connection: the second head is bounded by header_timeout too', LIMIT, async () => {
    const sock = await connect(gw.port);
    const first = new Promise((resolve) => {
      let d = '';
      const on = (x) => { d += x; if (parseResponses(Buffer.from(d))[0]?.complete) { sock.off('data', on); resolve(d); } };
      sock.on('data', on);
    });
    sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(await first, /^HTTP\/1\.1 200/);
    const closed = collect(sock, 5000);
    const trickling = trickle(sock, `GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(300)}\r\n\r\n`, 5000);
    const r = await closed;
    await trickling;
    sock.destroy();
    assert.ok(r.closed && r.ms < 4500, `closed: ${r.closed}, after ${r.ms} ms (header_timeout 1 s, keepalive_timeout 10 s)`);
  });

  test('slowloris body (one byte per 100 ms): closed at body_timeout, the request never reaches a model', LIMIT, async () => {
    const sock = await connect(gw.port);
    const body = chatBody('mock-echo', `SLOW-BODY ${'b'.repeat(200)}`);
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    const closed = collect(sock, 15000);
    const trickling = trickle(sock, body, 12000);
    await assertServed(gw);
    const r = await closed;
    const sent = await trickling;
    assert.ok(r.closed, 'the gateway closed the connection');
    assert.ok(r.ms >= 800 && r.ms < 8000, `closed after ${r.ms} ms (body_timeout 1 s)`);
    assert.ok(sent < body.length);
    assert.ok(r.data.length === 0 || /^HTTP\/1\.1 4\d\d/.test(r.data.toString()), r.data.toString());
    assert.equal(seenUpstream('SLOW-BODY').length, 0);
    await assertUp(gw);
  });

  test('pipelined requests in one write: all answered, in order', LIMIT, async () => {
    const post = (id, body, extra = '') => `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${id}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
    const get = (id, path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${id}\r\n${extra}\r\n`;
    const reqs = [
      get('pipe-1', '/healthz'),
      post('pipe-2', chatBody('mock-echo', 'PIPE-2')),
      get('pipe-3', '/v1/models/toolgate-demo'),
      post('pipe-4', chatBody('toolgate-demo', 'hello PIPE-4', { stream: true })),
      post('pipe-5', chatBody('mock-1', 'PIPE-5')),
      post('pipe-6', chatBody('toolgate-demo', 'hello PIPE-6'), 'Connection: close\r\n'),
    ];
    const sock = await connect(gw.port);
    const done = collect(sock, 20000);
    sock.write(reqs.join(''));
    const r = await done;
    assert.ok(r.closed, 'closed after the request with Connection: close');
    const res = parseResponses(r.data);
    assert.equal(res.length, 6, r.data.toString().slice(0, 3000));
    assert.deepEqual(res.map((x) => x.headers['x-request-id']), ['pipe-1', 'pipe-2', 'pipe-3', 'pipe-4', 'pipe-5', 'pipe-6']);
    assert.ok(res.every((x) => x.status === 200 && x.complete), JSON.stringify(res.map((x) => x.status)));
    assert.match(JSON.parse(res[1].body).choices[0].message.content, /PIPE-2/);
    assert.equal(JSON.parse(res[2].body).id, 'toolgate-demo');
    const events = sseData(res[3].body);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join(''), 'Hi! You said: hello PIPE-4');
    assert.equal(JSON.parse(res[4].body).choices[0].message.content, 'reply from mock-1');
    assert.equal(JSON.parse(res[5].body).choices[0].message.content, 'Hi! You said: hello PIPE-6');
    await assertUp(gw);
  });

  // Each smuggling attempt carries a second, smuggled request (a chat call with a marker) where a
  // parser that framed the first one differently would read it as the next request.
  const smuggled = (tag) => {
    const body = chatBody('mock-echo', `SMUGGLED-${tag}`);
    return `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  };
  const firstBody = chatBody('mock-echo', 'outer');
  const attempts = [
    ['Content-Length then Transfer-Encoding: chunked', (t) => `Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled(t)}`],
    ['Transfer-Encoding: chunked then Content-Length', (t) => `Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled(t)}`],
    ['two different Content-Length headers', (t) => `Content-Length: ${firstBody.length}\r\nContent-Length: ${firstBody.length + smuggled(t).length}\r\n\r\n${firstBody}${smuggled(t)}`],
    ['Content-Length: a list of two values', (t) => `Content-Length: ${firstBody.length}, ${firstBody.length + smuggled(t).length}\r\n\r\n${firstBody}${smuggled(t)}`],
    ['Transfer-Encoding: chunked twice', (t) => `Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled(t)}`],
    ['Transfer-Encoding: chunked;q=1 (a parameter on chunked)', (t) => `Transfer-Encoding: chunked;q=1\r\n\r\n${smuggled(t)}`],
    ['a space before the colon (Transfer-Encoding : chunked)', (t) => `Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled(t)}`],
  ];
  // Transfer codings the gateway does not implement: a request whose Transfer-Encoding does not end
  // in chunked has no length it can know (RFC 9112 6.3: 400, then close).
  const unknownCodings = [
    ['Transfer-Encoding: chunked, identity', (t) => `Transfer-Encoding: chunked, identity\r\n\r\n${smuggled(t)}`],
    ['Transfer-Encoding: identity', (t) => `Transfer-Encoding: identity\r\n\r\n${smuggled(t)}`],
    ['Transfer-Encoding: xchunked', (t) => `Transfer-Encoding: xchunked\r\n\r\n${smuggled(t)}`],
  ];

  // A header folded over two lines (obs-fold): a proxy in front that does not unfold it frames the
  // request differently from one that does, so a gateway should refuse it.
  const obsFold = ['obs-fold (Transfer-Encoding:\\r\\n chunked)', (t) => `Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${smuggled(t)}`];

  async function smuggle(tag, rest) {
    const sock = await connect(gw.port);
    // A refusal closes the connection at once; 2 s is only the bound for a gateway that keeps it open.
    const done = collect(sock, 2000);
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${rest(tag)}`);
    const r = await done;
    sock.destroy();
    // A connection's requests are handled one after the other, each to its end (the model call
    // included) before the next is read: once the gateway closed it, a smuggled request that ran
    // has already reached the upstream.
    return { ...r, responses: parseResponses(r.data), upstream: seenUpstream(`SMUGGLED-${tag}`) };
  }

  for (const [name, rest] of attempts) {
    test(`smuggling, ${name}: 400, the connection closed, the smuggled request never executed`, LIMIT, async () => {
      const tag = name.replace(/\W+/g, '_');
      const r = await smuggle(tag, rest);
      assert.equal(r.upstream.length, 0, 'the smuggled request reached the model');
      assert.ok(r.closed, 'the gateway closed the connection');
      assert.equal(r.responses.length, 1, r.data.toString());
      assert.equal(r.responses[0].status, 400, r.data.toString());
      assertErrorShape(JSON.parse(r.responses[0].body).error, { type: 'invalid_request_error' });
      await assertServed(gw);
      await assertUp(gw);
    });
  }

  // RFC 9112 5.2 lets a server either refuse an obs-fold or unfold it before reading the field;
  // Beast unfolds it (Transfer-Encoding: chunked), so the gateway frames the folded request as
  // chunked and what follows as the next request, both the same way a parser that unfolds does.
  // What must hold is that this framing is consistent: the empty chunked body is refused for what
  // it is (400 invalid_json) and the next request is read where that framing says it starts.
  test(`smuggling, ${obsFold[0]}: unfolded per RFC 9112 5.2, framed as chunked, consistently`, LIMIT, async () => {
    const r = await smuggle('obs_fold', obsFold[1]);
    assert.ok(r.responses.length >= 1, r.data.toString());
    assert.equal(r.responses[0].status, 400, r.data.toString());
    assert.equal(JSON.parse(r.responses[0].body).error.code, 'invalid_json', 'the empty chunked body, not a framing error');
    if (r.responses.length > 1) assert.equal(r.responses[1].status, 200, 'the next request, framed where chunked ends');
    await assertServed(gw);
    await assertUp(gw);
  });

  for (const [name, rest] of unknownCodings) {
    test(`smuggling, ${name}: 400, the connection closed, the smuggled request never executed`,
      LIMIT, async () => {
        const tag = name.replace(/\W+/g, '_');
        const r = await smuggle(tag, rest);
        assert.equal(r.upstream.length, 0, 'the smuggled request reached the model');
        assert.ok(r.closed, 'the gateway closed the connection');
        assert.equal(r.responses.length, 1, r.data.toString());
        assert.equal(r.responses[0].status, 400, r.data.toString());
      });
  }
});

// Ten thousand idle connections (the default server.max_connections); max_connections is raised
// a little here so that the test's own probes fit. FAULTS_IDLE_CONNECTIONS lowers the count for a
// slow machine (10,000 by default). While they are open a normal request is served; memory grows
// by a bounded amount per connection; once the clients close them, the gateway frees them all.
describe('10,000 idle client connections', () => {
  const N = Number(process.env.FAULTS_IDLE_CONNECTIONS ?? 10000);
  let upstream, gw;
  const socks = [];
  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
server: { max_connections: ${N + 100}, header_timeout: 120s }
providers:
  - { name: healthy, type: openai, base_url: "${upstream.url}", models: [mock-1] }
${demoProvider}
`);
  });
  after(async () => {
    for (const s of socks) s.destroy();
    await gw?.stop();
    await upstream?.close();
    assertNoSanitizerReport(gw);
  });

  // Opens n connections in batches of 500 and keeps them in `socks`.
  async function openIdle(n) {
    for (let i = 0; i < n; i += 500) {
      const batch = await Promise.all(Array.from({ length: Math.min(500, n - i) }, () => connect(gw.port)));
      for (const s of batch) { s.on('error', () => {}); socks.push(s); }
    }
  }

  test(`${N} idle connections: a normal request is still served, memory bounded, all freed after`, LIMIT, async (t) => {
    const pid = gw.proc.pid;
    const fdsBefore = fdCount(pid);
    const mem = watchMemory(pid);
    await openIdle(N);
    await waitFor(() => fdCount(pid) >= fdsBefore + N, 30000, `the gateway to accept ${N} connections (has ${fdCount(pid) - fdsBefore})`);
    await assertServed(gw);
    const h = await fetch(gw.url + '/health');
    assert.equal(h.status, 200);
    const m = mem.stop();
    t.diagnostic(memNote(m));
    const perConn = ((m.peak - m.before) * 1024) / N;
    // Each idle connection holds a session and an 8 KiB read buffer: well under 20 KiB each.
    assert.ok(m.peak - m.before < memBound(gw, (20 * N) / 1024), `RSS grew ${(m.peak - m.before).toFixed(0)} MB for ${N} connections (${perConn.toFixed(1)} KiB each)`);
    assert.ok(socks.every((s) => !s.destroyed), 'no idle connection was dropped before its header_timeout');
    for (const s of socks) s.destroy();
    socks.length = 0;
    await waitFor(() => fdCount(pid) <= fdsBefore + 10, 30000, `the gateway to close them (still ${fdCount(pid) - fdsBefore} more fds)`);
    await assertServed(gw);
    // Freed, not leaked: a second round of as many connections reuses that memory.
    const again = watchMemory(pid);
    await openIdle(N);
    await waitFor(() => fdCount(pid) >= fdsBefore + N, 30000, 'the second round accepted');
    await assertServed(gw);
    const m2 = again.stop();
    t.diagnostic(`second round: ${memNote(m2)}`);
    assert.ok(m2.peak - m.after < memBound(gw, (m.peak - m.before) / 2 + 20), `the second round grew RSS by ${(m2.peak - m.after).toFixed(0)} MB more`);
    for (const s of socks) s.destroy();
    socks.length = 0;
    await waitFor(() => fdCount(pid) <= fdsBefore + 10, 30000, 'the gateway to close the second round');
    await assertUp(gw);
  });
});

// A client that goes away at each point of a streamed agent loop: before the first byte (the model
// is still thinking), during a tool call (a slow MCP tool), during the final turn (a slow stream).
// The model is a raw upstream that records each turn and when its connection closed; the MCP
// server logs what it received. What must hold: the work stops where the client left (the upstream
// call is dropped, the tool call is cancelled, no further model turn is made) and the request
// ends (its access-log line is written).
describe('a client that leaves a streamed agent loop', () => {
  let dir, raw, healthy, gw;
  const mcpLog = () => readMcpLog(join(dir, 'slowmcp.log'));
  const marker = (rec) => rec.json?.messages?.[0]?.content ?? '';
  const turns = (tag) => raw.requests.filter((r) => marker(r).includes(tag));

  // Turn 1: "hold" never answers; "call X" asks for tool X. After a tool message: 200 words, one
  // per 50 ms. Streamed or plain, as the gateway asks.
  async function model(rec, sock) {
    const m = rec.model;
    const msgs = rec.json.messages;
    const last = msgs.at(-1);
    const head = httpHead(200, { 'Content-Type': 'text/event-stream', 'Transfer-Encoding': 'chunked' });
    if (last.role === 'user' && last.content.includes('hold')) {
      if (!sock.destroyed) await new Promise((r) => sock.once('close', r));
      return;
    }
    if (last.role === 'user') {
      const tool = /call (\S+)/.exec(last.content)[1];
      const call = { index: 0, id: 'call_1', type: 'function', function: { name: tool, arguments: '{}' } };
      if (!rec.json.stream) {
        const body = JSON.stringify({ id: 'c1', object: 'chat.completion', created: 1, model: m,
          choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [call] }, finish_reason: 'tool_calls' }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
        return write(sock, httpHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }) + body);
      }
      return write(sock, Buffer.concat([Buffer.from(head), httpChunk(sseEvent(m, { role: 'assistant', content: null, tool_calls: [call] })),
        httpChunk(sseEvent(m, {}, 'tool_calls')), httpChunk('data: [DONE]\n\n'), Buffer.from(lastChunk)]));
    }
    await write(sock, Buffer.concat([Buffer.from(head), httpChunk(sseEvent(m, { role: 'assistant', content: '' }))]));
    rec.words = 0;
    for (let i = 0; i < 200 && !sock.destroyed; i++) {
      await write(sock, httpChunk(sseEvent(m, { content: `w${i} ` })));
      rec.words++;
      await sleep(50);
    }
    if (!sock.destroyed) await write(sock, Buffer.concat([httpChunk(sseEvent(m, {}, 'stop')), httpChunk('data: [DONE]\n\n'), Buffer.from(lastChunk)]));
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'toolgate-faults-loop-'));
    const slow = writeMcpServer(dir, 'slowmcp', {
      tools: ['slow', 'fast'],
      onCall(name, args, m) {
        if (name === 'fast') return text(m.id, 'fast result');
        // Answers after 8 s, unless cancelled first (the log shows which).
        const t = setTimeout(() => { log({ event: 'answered', id: m.id }); text(m.id, 'slow result'); }, 8000);
        process.stdin.on('data', (d) => {
          if (String(d).includes('notifications/cancelled')) clearTimeout(t);
        });
      },
    });
    raw = await startRawUpstream(model);
    healthy = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: agent, type: openai, base_url: "${raw.url}", timeout: 30s, models: [m-agent] }
  - { name: healthy, type: openai, base_url: "${healthy.url}", models: [mock-1] }
${demoProvider}
mcp_servers:
  - { name: slowmcp, command: node, args: ["${slow}"], env: { FAULT_LOG: "${join(dir, 'slowmcp.log')}" }, timeout: 20s }
agent_loop:
  tool_timeout: 20s
  keepalive_interval: 200ms
`);
    await waitFor(async () => (await (await fetch(gw.url + '/v1/mcp/servers')).json()).data.every((s) => s.status === 'up'), 20000, 'slowmcp up');
  });
  after(async () => {
    await gw?.stop();
    await raw?.close();
    await healthy?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assertNoSanitizerReport(gw);
  });

  // The request with this id has ended: the gateway wrote its access-log line.
  const ended = (id) => waitFor(() => gw.accessLog().some((l) => l.request_id === id), 10000, `the access-log line of ${id}`);

  const startStream = (tag, content, id) => fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: chatBody('m-agent', `${tag} ${content}`, { stream: true }), signal: AbortSignal.timeout(30000) });

  // Reads the stream until `pred(textSoFar)` holds, then drops the connection.
  async function readUntilThenLeave(res, pred) {
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let seen = '';
    while (!pred(seen)) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += dec.decode(value, { stream: true });
    }
    await reader.cancel();
    return seen;
  }

  test('before the first byte: the model call is dropped, no tool call, no second turn', LIMIT, async () => {
    const sock = await connect(gw.port);
    const body = chatBody('m-agent', 'LEAVE-A hold', { stream: true });
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: leave-a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const rec = await raw.waitForRequest((r) => marker(r).includes('LEAVE-A'));
    sock.destroy();
    await waitFor(() => rec.closed, 10000, 'the gateway to drop the model call');
    await ended('leave-a');
    assert.equal(turns('LEAVE-A').length, 1);
    assert.ok(!mcpLog().some((e) => e.method === 'tools/call'), 'no tool was called');
    await assertServed(gw);
    await assertUp(gw);
  });

  test('during a slow tool call: the call is cancelled (or finishes cleanly) and turn 2 is never asked of the model', LIMIT, async () => {
    const res = await startStream('LEAVE-B', 'call slowmcp__slow', 'leave-b');
    assert.equal(res.status, 200);
    await readUntilThenLeave(res, (s) => s.includes(': tool slowmcp__slow started'));
    await waitFor(() => mcpLog().some((e) => e.method === 'notifications/cancelled' || e.event === 'answered'), 10000,
      'the tool call to be cancelled or answered');
    await ended('leave-b');
    assert.ok(mcpLog().some((e) => e.method === 'notifications/cancelled'), 'the gateway cancelled the tool call');
    assert.equal(turns('LEAVE-B').length, 1, 'no model turn after the client left');
    await assertServed(gw);
    await assertUp(gw);
  });

  test('during the final turn: the model\'s stream is closed by the gateway', LIMIT, async () => {
    const res = await startStream('LEAVE-C', 'call slowmcp__fast', 'leave-c');
    assert.equal(res.status, 200);
    const seen = await readUntilThenLeave(res, (s) => s.includes('w1 '));
    assert.match(seen, /: tool slowmcp__fast done/);
    await waitFor(() => turns('LEAVE-C').length === 2 && turns('LEAVE-C')[1].closed, 10000, 'the final turn\'s connection to be closed');
    const final = turns('LEAVE-C')[1];
    assert.ok(final.words < 200, `closed after ${final.words} of the model's 200 words`);
    await ended('leave-c');
    assert.equal(turns('LEAVE-C').length, 2);
    await assertServed(gw);
    await assertUp(gw);
  });
});
