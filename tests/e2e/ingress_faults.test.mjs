// The translated ingresses against a provider that misbehaves: POST /v1/responses (the official
// `openai` SDK's client.responses) and POST /v1/messages (the official `@anthropic-ai/sdk`'s
// client.messages) both run through the chat route and translate its answer back; here the
// OpenAI-shaped upstream behind them breaks its stream (cut, a line that is not JSON, an empty
// body, a body that is not SSE), fails before its first byte (500, 429, 503), answers a plain
// request with something that is not a chat.completion, or sends chunks of the wrong shape.
//
// What must hold for each fault, for each ingress, streamed and not:
//   - the client gets an error in the ingress's own shape: an HTTP error (OpenAI's
//     {error: {message, type, param, code}}, Anthropic's {type: "error", error: {type, message}})
//     when nothing went out yet, else the text so far and then one `error` event, and nothing after
//     it: never a response.completed / message_stop claiming success after a failure;
//   - never a hang: every call is bounded, and a cut is noticed at once, not at the provider timeout;
//   - a chunk of the wrong shape is left out (or the stream fails cleanly), the gateway does not crash;
//   - afterwards the gateway still answers normal requests, and at its stop its stderr has no
//     sanitizer report (the ASan/UBSan build).
//
// The upstream is a raw-socket server in this process (lib/fault_peers.mjs) whose every byte the
// test writes; the model name picks the fault.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, assertClean } from './lib/harness.mjs';
import {
  startRawUpstream, httpHead, httpChunk, lastChunk, completion, sseEvent, write, sleep,
} from './lib/fault_peers.mjs';

// A test is bounded as a whole, each call too: a hang fails with a message, it does not block the file.
const LIMIT = { timeout: 25000 };
const CALL_MS = 8000;
// The provider's idle timeout: a cut noticed only by it would take this long.
const PROVIDER_TIMEOUT_MS = 4000;

const OK_TEXT = 'ok from upstream';
const noMcp = { 'x-toolgate-mcp-servers': 'none' };

// --- the misbehaving upstream -------------------------------------------------------------------

const SSE_HEAD = httpHead(200, { 'Content-Type': 'text/event-stream', 'Transfer-Encoding': 'chunked' });
const data = (obj) => `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`;
const chunkOf = (model, fields) => ({ id: 'chatcmpl-ingress', object: 'chat.completion.chunk', created: 1, model, ...fields });
const contentChunk = (model, content) => chunkOf(model, { choices: [{ index: 0, delta: { content }, finish_reason: null }] });

async function respond(rec, sock) {
  const m = rec.model;
  const stream = rec.json?.stream === true;
  const sendJson = (status, body, headers = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return write(sock, httpHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers }) + text);
  };
  // A whole SSE answer, chunked, with its end.
  const sendSse = (events) => write(sock, Buffer.concat([Buffer.from(SSE_HEAD), ...events.map(httpChunk), Buffer.from(lastChunk)]));
  const words = (text) => [sseEvent(m, { role: 'assistant', content: '' }),
    ...text.split(/(?= )/).map((w) => sseEvent(m, { content: w })), sseEvent(m, {}, 'stop'), 'data: [DONE]\n\n'];
  const opening = [sseEvent(m, { role: 'assistant', content: '' }), sseEvent(m, { content: 'Hello' }), sseEvent(m, { content: ' world' })];

  switch (m) {
    case 'f-ok':
      return stream ? sendSse(words(OK_TEXT)) : sendJson(200, completion(m, OK_TEXT));

    case 'f-cut':
      // Chunked: a few valid events, then the socket goes (no [DONE], no last chunk).
      if (!stream) {
        const body = completion(m, 'never whole');
        await write(sock, httpHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }) + body.slice(0, 40));
        await sleep(50);
        return sock.destroy();
      }
      await write(sock, Buffer.concat([Buffer.from(SSE_HEAD), ...opening.map(httpChunk)]));
      await sleep(150);  // the gateway reads and relays them first
      return sock.destroy();

    case 'f-cut-close': {
      // No Content-Length, no chunking: the body ends when the connection does. A few valid events,
      // then the upstream closes: no finish_reason, no [DONE].
      const head = `HTTP/1.1 200 OK\r\nContent-Type: ${stream ? 'text/event-stream' : 'application/json'}\r\nConnection: close\r\n\r\n`;
      await write(sock, head + (stream ? opening.join('') : completion(m, 'never whole').slice(0, 40)));
      await sleep(150);
      return sock.destroy();
    }

    case 'f-badline':
      // Content, then a data line that is not JSON, then more that must not reach anybody.
      if (!stream) return sendJson(200, completion(m, OK_TEXT));
      await write(sock, Buffer.concat([Buffer.from(SSE_HEAD), ...opening.map(httpChunk)]));
      await sleep(300);  // read and relayed apart from what follows (in one read, nothing would have gone out yet)
      await write(sock, httpChunk('data: {this is not json\n\n'));
      await sleep(30);
      return write(sock, Buffer.concat([httpChunk(sseEvent(m, { content: ' AFTER' })), httpChunk(sseEvent(m, {}, 'stop')),
        httpChunk('data: [DONE]\n\n'), Buffer.from(lastChunk)]));

    case 'f-badline-first':
      // The very first event is not JSON (nothing went out to the client yet).
      if (!stream) return sendJson(200, completion(m, OK_TEXT));
      return sendSse(['data: not json at all\n\n', ...words(' AFTER')]);

    case 'f-empty':
      // 200, text/event-stream, no body at all (for a plain request too).
      return write(sock, httpHead(200, { 'Content-Type': 'text/event-stream', 'Content-Length': 0 }));

    case 'f-500':
      return sendJson(500, { error: { message: 'upstream exploded', type: 'server_error' } });
    case 'f-429':
      return sendJson(429, { error: { message: 'slow down', type: 'rate_limit' } }, { 'Retry-After': '3' });
    case 'f-503':
      return sendJson(503, { error: { message: 'try later', type: 'server_error' } });

    case 'f-notjson': {
      // An error page with status 200 (a proxy in between), for a plain and for a streamed request.
      const page = '<html><body>upstream is confused</body></html>\n';
      return write(sock, httpHead(200, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(page) }) + page);
    }
    case 'f-truncjson':
      // Valid framing, a JSON body cut short.
      return sendJson(200, completion(m, 'cut short').slice(0, 60));

    case 'f-weird':
      // Chunks of the wrong shape between good ones: "good text" is all the content there is.
      if (!stream) {
        return sendJson(200, { id: 'chatcmpl-weird', object: 'chat.completion', created: 1, model: m, usage: 'lots',
          choices: [{ index: 0, message: { role: 'assistant', content: 123 }, finish_reason: 'stop' }, 'junk'] });
      }
      return sendSse([
        sseEvent(m, { role: 'assistant', content: '' }),
        data({ id: 'chatcmpl-ingress', object: 'chat.completion.chunk', created: 1, model: m }),  // no choices
        data(chunkOf(m, { choices: null })),
        data(chunkOf(m, { choices: 'nope' })),
        data(chunkOf(m, { choices: ['str', 5, null, []] })),
        data(chunkOf(m, { choices: [{ index: 0, delta: null }] })),
        data(chunkOf(m, { choices: [{ index: 0, delta: 'text' }] })),
        data(contentChunk(m, 123)),
        data(contentChunk(m, { nested: true })),
        data(contentChunk(m, ['a', 'b'])),
        data(contentChunk(m, null)),
        data(chunkOf(m, { choices: [{ index: 0, delta: { content: 'good', role: 7 }, finish_reason: null }] })),
        data(chunkOf(m, { choices: [{ index: 0, delta: { tool_calls: 'x' } }] })),
        data(chunkOf(m, { choices: [{ index: 0, delta: { tool_calls: [42, null, 'call'] } }] })),
        data(chunkOf(m, { choices: [{ index: 'zero', delta: { content: ' text' }, finish_reason: 5 }] })),
        data(chunkOf(m, { choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: 'lots' })),
        data(chunkOf(m, { choices: [], usage: { prompt_tokens: '3', completion_tokens: 2.5 } })),
        'data: [DONE]\n\n',
      ]);

    case 'f-nochoices':
      // A 200 that is JSON but no chat.completion (no choices), plain; streamed: chunks without choices.
      if (!stream) return sendJson(200, { id: 'chatcmpl-nochoices', object: 'chat.completion', created: 1, model: m,
        usage: { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 } });
      return sendSse([data({ id: 'chatcmpl-nochoices', object: 'chat.completion.chunk', created: 1, model: m }),
        data({ id: 'chatcmpl-nochoices', object: 'chat.completion.chunk', created: 1, model: m }), 'data: [DONE]\n\n']);

    default:
      return sendJson(200, completion(m, `unexpected model ${m}`));
  }
}

const MODELS = ['f-ok', 'f-cut', 'f-cut-close', 'f-badline', 'f-badline-first', 'f-empty', 'f-500', 'f-429', 'f-503',
  'f-notjson', 'f-truncjson', 'f-weird', 'f-nochoices'];

// --- calls, bounded -------------------------------------------------------------------------------

// Runs fn(signal) against a deadline: past it the call is aborted and the test fails with `what`.
async function bounded(what, fn, ms = CALL_MS) {
  const ac = new AbortController();
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => { ac.abort(); reject(new Error(`${what}: no answer within ${ms} ms (a hang)`)); }, ms);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => fn(ac.signal)), late]);
  } finally {
    clearTimeout(timer);
  }
}

// The SSE blocks of a body as {name, data}; comments (": keep-alive") left out.
function sseEvents(text) {
  return text.split('\n\n').filter((b) => b.trim() && !b.startsWith(':')).map((b) => {
    const m = /^event: ([\w.]+)\ndata: (.*)$/s.exec(b);
    assert.ok(m, `a well-formed SSE event: ${JSON.stringify(b)}\nin:\n${text}`);
    return { name: m[1], data: JSON.parse(m[2]) };
  });
}

let gw;  // the gateway of this file
const why = (r) => `${r ? `status ${r.status}, body:\n${(r.raw ?? '').slice(0, 3000)}\n` : ''}--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;

// One request on the wire: status, headers, body, its events when it is a stream, how long it took.
async function post(path, body) {
  return bounded(`POST ${path} ${body.model}${body.stream ? ' (stream)' : ''}`, async (signal) => {
    const start = Date.now();
    const res = await fetch(gw.url + path, {
      method: 'POST', signal, body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...noMcp },
    });
    const raw = await res.text();
    let json = null;
    try { json = JSON.parse(raw); } catch { /* not JSON */ }
    const out = { status: res.status, headers: res.headers, raw, json, ms: Date.now() - start };
    if (/^text\/event-stream/.test(res.headers.get('content-type') ?? '')) out.events = sseEvents(raw);
    return out;
  });
}
const responses = (model, stream) => post('/v1/responses', { model, input: 'hi', stream });
const messages = (model, stream) => post('/v1/messages', { model, max_tokens: 32, stream, messages: [{ role: 'user', content: 'hi' }] });

let oai, anth;
const opts = (signal) => ({ headers: noMcp, signal });
const sdkResponse = (model) => bounded(`responses.create ${model}`, (s) => oai.responses.create({ model, input: 'hi' }, opts(s)));
const sdkResponseStream = (model) => bounded(`responses.stream ${model}`,
  (s) => oai.responses.stream({ model, input: 'hi' }, opts(s)).finalResponse());
const sdkMessage = (model) => bounded(`messages.create ${model}`,
  (s) => anth.messages.create({ model, max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] }, opts(s)));
const sdkMessageStream = (model) => bounded(`messages.stream ${model}`,
  (s) => anth.messages.stream({ model, max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] }, opts(s)).finalMessage());

// --- what the answers must look like --------------------------------------------------------------

// OpenAI's error shape, exactly {error: {message, type, param, code}}, as a JSON answer.
function assertOpenAIError(r, status, { type, code } = {}) {
  assert.equal(r.status, status, why(r));
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, why(r));
  assert.deepEqual(Object.keys(r.json ?? {}), ['error'], why(r));
  const e = r.json.error;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type'], why(r));
  assert.ok(typeof e.message === 'string' && e.message.length > 0, why(r));
  assert.equal(typeof e.type, 'string', why(r));
  if (type) assert.equal(e.type, type, why(r));
  if (code) assert.equal(e.code, code, why(r));
}

// Anthropic's error shape, exactly {type: "error", error: {type, message}}, as a JSON answer.
function assertAnthropicError(r, status, type) {
  assert.equal(r.status, status, why(r));
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, why(r));
  assert.deepEqual(Object.keys(r.json ?? {}).sort(), ['error', 'type'], why(r));
  assert.equal(r.json.type, 'error', why(r));
  assert.deepEqual(Object.keys(r.json.error).sort(), ['message', 'type'], why(r));
  assert.equal(r.json.error.type, type, why(r));
  assert.ok(typeof r.json.error.message === 'string' && r.json.error.message.length > 0, why(r));
}

// A Responses stream on the wire: every event named by its data's type, sequence numbers 0, 1, ...
function assertResponsesEvents(r) {
  assert.equal(r.status, 200, why(r));
  assert.ok(r.events, `an event stream: ${why(r)}`);
  assert.ok(r.events.length > 0, why(r));
  r.events.forEach((e, i) => {
    assert.equal(e.data.type, e.name, why(r));
    assert.equal(e.data.sequence_number, i, why(r));
  });
  return r.events.map((e) => e.name);
}
const responsesText = (r) => r.events.filter((e) => e.name === 'response.output_text.delta').map((e) => e.data.delta).join('');

// A Responses stream that failed: the text so far, then exactly one `error` event, last; nothing
// that claims the answer ended. With `plainOk`, an HTTP error is right too (nothing went out yet).
function assertResponsesStreamFailed(r, { text, plainOk = false } = {}) {
  if (plainOk && r.status !== 200) return assertOpenAIError(r, 502, { type: 'upstream_error' });
  const names = assertResponsesEvents(r);
  for (const claim of ['response.completed', 'response.incomplete', 'response.output_text.done', 'response.output_item.done'])
    assert.ok(!names.includes(claim), `no ${claim} after an upstream failure: ${names.join(', ')}\n${why(r)}`);
  assert.equal(names.at(-1), 'error', `the stream ends with an error event: ${names.join(', ')}\n${why(r)}`);
  assert.equal(names.filter((n) => n === 'error').length, 1, why(r));
  const err = r.events.at(-1).data;
  assert.ok(typeof err.message === 'string' && err.message.length > 0, why(r));
  assert.ok('code' in err && 'param' in err, `OpenAI's error event fields: ${why(r)}`);
  if (text !== undefined) assert.equal(responsesText(r), text, why(r));
}

// A Messages stream on the wire: every event named by its data's type.
function assertMessagesEvents(r) {
  assert.equal(r.status, 200, why(r));
  assert.ok(r.events, `an event stream: ${why(r)}`);
  assert.ok(r.events.length > 0, why(r));
  for (const e of r.events) assert.equal(e.data.type, e.name, why(r));
  assert.ok(!r.raw.includes('[DONE]'), why(r));
  return r.events.map((e) => e.name).filter((n) => n !== 'ping');
}
const messagesText = (r) => r.events.filter((e) => e.name === 'content_block_delta' && e.data.delta.type === 'text_delta')
  .map((e) => e.data.delta.text).join('');

// A Messages stream that failed: the text so far, then exactly one error event of Anthropic's
// shape, last; no message_delta / message_stop.
function assertMessagesStreamFailed(r, { text, plainOk = false, type = 'api_error', status = 502 } = {}) {
  if (plainOk && r.status !== 200) return assertAnthropicError(r, status, type);
  const names = assertMessagesEvents(r);
  for (const claim of ['message_delta', 'message_stop'])
    assert.ok(!names.includes(claim), `no ${claim} after an upstream failure: ${names.join(', ')}\n${why(r)}`);
  assert.equal(names.at(-1), 'error', `the stream ends with an error event: ${names.join(', ')}\n${why(r)}`);
  assert.equal(names.filter((n) => n === 'error').length, 1, why(r));
  const err = r.events.at(-1).data;
  assert.deepEqual(Object.keys(err).sort(), ['error', 'type'], why(r));
  assert.deepEqual(Object.keys(err.error).sort(), ['message', 'type'], why(r));
  assert.equal(err.error.type, type, why(r));
  assert.ok(err.error.message.length > 0, why(r));
  if (text !== undefined) assert.equal(messagesText(r), text, why(r));
}

// A completed Responses stream, well-formed: created ... completed, the deltas adding up to the
// text of the final Response. Returns the text.
function assertResponsesStreamCompleted(r) {
  const names = assertResponsesEvents(r);
  assert.deepEqual(names.slice(0, 2), ['response.created', 'response.in_progress'], why(r));
  assert.equal(names.at(-1), 'response.completed', why(r));
  assert.ok(!names.includes('error'), why(r));
  const final = r.events.at(-1).data.response;
  assert.equal(final.status, 'completed', why(r));
  const text = final.output.filter((o) => o.type === 'message').flatMap((o) => o.content).map((c) => c.text).join('');
  assert.equal(responsesText(r), text, why(r));
  return text;
}

// A completed Messages stream, well-formed: message_start ... message_stop, blocks opened and
// closed in order. Returns the text.
function assertMessagesStreamCompleted(r) {
  const names = assertMessagesEvents(r);
  assert.equal(names[0], 'message_start', why(r));
  assert.deepEqual(names.slice(-2), ['message_delta', 'message_stop'], why(r));
  assert.ok(!names.includes('error'), why(r));
  let open = -1;
  for (const e of r.events) {
    if (e.name === 'content_block_start') { assert.equal(open, -1, why(r)); open = e.data.index; }
    if (e.name === 'content_block_delta') assert.equal(e.data.index, open, why(r));
    if (e.name === 'content_block_stop') { assert.equal(e.data.index, open, why(r)); open = -1; }
  }
  assert.equal(open, -1, why(r));
  return messagesText(r);
}

// The SDKs raise the failure as their API error.
const oaiFailed = (status) => (e) => {
  assert.ok(e instanceof OpenAI.APIError, `an OpenAI.APIError, not ${e?.constructor?.name}: ${e?.message}`);
  if (status !== undefined) assert.equal(e.status, status, e.message);
  return true;
};
const anthFailed = (type, status) => (e) => {
  assert.ok(e instanceof Anthropic.APIError, `an Anthropic.APIError, not ${e?.constructor?.name}: ${e?.message}`);
  if (type) assert.equal(e.type, type, e.message);
  if (status !== undefined) assert.equal(e.status, status, e.message);
  return true;
};

// The gateway is up and serves normal requests on both ingresses, plain and streamed.
async function assertServed() {
  assert.equal(gw.exited, null, `the gateway exited: ${JSON.stringify(gw.exited)}\n${gw.logs.slice(-3000)}`);
  const h = await fetch(gw.url + '/health', { signal: AbortSignal.timeout(5000) });
  assert.equal(h.status, 200);
  await h.arrayBuffer();
  const r = await sdkResponse('f-ok');
  assert.equal(r.status, 'completed');
  assert.equal(r.output_text, OK_TEXT);
  assert.equal((await sdkResponseStream('f-ok')).output_text, OK_TEXT);
  const m = await sdkMessage('f-ok');
  assert.deepEqual(m.content, [{ type: 'text', text: OK_TEXT }]);
  assert.equal(m.stop_reason, 'end_turn');
  const ms = await sdkMessageStream('f-ok');
  assert.equal(ms.content.map((b) => b.text).join(''), OK_TEXT);
  assert.doesNotMatch(gw.logs, /AddressSanitizer|LeakSanitizer|runtime error:/, `sanitizer report:\n${gw.logs.slice(-4000)}`);
}

// ---------------------------------------------------------------------------------------------------

describe('translated ingresses (/v1/responses, /v1/messages) against a misbehaving upstream', () => {
  let up;

  before(async () => {
    up = await startRawUpstream(respond);
    gw = await startGateway(`
providers_from_env: false
server: { shutdown_grace: 2s }
providers:
  - name: faulty
    type: openai
    base_url: ${up.url}
    api_key: sk-upstream
    timeout: ${PROVIDER_TIMEOUT_MS}ms
    connect_timeout: 2s
    models: [${MODELS.join(', ')}]
`);
    oai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client-key', maxRetries: 0, timeout: CALL_MS });
    anth = new Anthropic({ baseURL: gw.url, apiKey: 'client-key', maxRetries: 0, timeout: CALL_MS });
    await assertServed();
  });
  after(async () => {
    try {
      await gw?.stop();
      if (gw) assertClean(gw);
    } finally {
      await up?.close();
    }
  });

  // 1. A stream cut in the middle.

  test('responses: stream cut mid-way (socket destroyed, no [DONE]): the text so far, then one error event, at once', LIMIT, async () => {
    const r = await responses('f-cut', true);
    assertResponsesStreamFailed(r, { text: 'Hello world' });
    assert.ok(r.ms < PROVIDER_TIMEOUT_MS, `noticed at once, not at the provider timeout (${r.ms} ms)`);
    const deltas = [];
    await assert.rejects(bounded('responses.stream f-cut', (s) => oai.responses.stream({ model: 'f-cut', input: 'hi' }, opts(s))
      .on('response.output_text.delta', (e) => deltas.push(e.delta)).finalResponse()), oaiFailed());
    assert.deepEqual(deltas, ['Hello', ' world']);
    // Plain: the body cut in the middle.
    assertOpenAIError(await responses('f-cut', false), 502, { type: 'upstream_error' });
    await assert.rejects(sdkResponse('f-cut'), oaiFailed(502));
    await assertServed();
  });

  test('messages: stream cut mid-way (socket destroyed, no [DONE]): the text so far, then one Anthropic error event, at once', LIMIT, async () => {
    const r = await messages('f-cut', true);
    assertMessagesStreamFailed(r, { text: 'Hello world' });
    assert.ok(r.ms < PROVIDER_TIMEOUT_MS, `noticed at once, not at the provider timeout (${r.ms} ms)`);
    const texts = [];
    await assert.rejects(bounded('messages.stream f-cut', (s) => anth.messages.stream({ model: 'f-cut', max_tokens: 32,
      messages: [{ role: 'user', content: 'hi' }] }, opts(s)).on('text', (d) => texts.push(d)).finalMessage()), anthFailed('api_error'));
    assert.deepEqual(texts, ['Hello', ' world']);
    assertAnthropicError(await messages('f-cut', false), 502, 'api_error');
    await assert.rejects(sdkMessage('f-cut'), anthFailed('api_error', 502));
    await assertServed();
  });

  test('responses: a close-delimited stream that ends after a few events (no finish_reason, no [DONE]): an error, not response.completed', LIMIT, async () => {
    assertResponsesStreamFailed(await responses('f-cut-close', true), { text: 'Hello world' });
    await assert.rejects(sdkResponseStream('f-cut-close'), oaiFailed());
    assertOpenAIError(await responses('f-cut-close', false), 502, { type: 'upstream_error' });
    await assertServed();
  });

  test('messages: a close-delimited stream that ends after a few events (no finish_reason, no [DONE]): an error, not message_stop', LIMIT, async () => {
    assertMessagesStreamFailed(await messages('f-cut-close', true), { text: 'Hello world' });
    await assert.rejects(sdkMessageStream('f-cut-close'), anthFailed('api_error'));
    assertAnthropicError(await messages('f-cut-close', false), 502, 'api_error');
    await assertServed();
  });

  // 2. A data line that is not JSON.

  test('responses: a data: line that is not JSON mid-stream: the text before it, then one error event; nothing after it is relayed', LIMIT, async () => {
    const r = await responses('f-badline', true);
    assertResponsesStreamFailed(r, { text: 'Hello world' });
    assert.ok(!r.raw.includes('AFTER'), why(r));
    await assert.rejects(sdkResponseStream('f-badline'), oaiFailed());
    // Before anything went out: a plain 502.
    const first = await responses('f-badline-first', true);
    assertResponsesStreamFailed(first, { text: '', plainOk: true });
    assert.ok(!first.raw.includes('AFTER'), why(first));
    await assert.rejects(sdkResponseStream('f-badline-first'), oaiFailed());
    await assertServed();
  });

  test('messages: a data: line that is not JSON mid-stream: the text before it, then one error event; nothing after it is relayed', LIMIT, async () => {
    const r = await messages('f-badline', true);
    assertMessagesStreamFailed(r, { text: 'Hello world' });
    assert.ok(!r.raw.includes('AFTER'), why(r));
    await assert.rejects(sdkMessageStream('f-badline'), anthFailed('api_error'));
    const first = await messages('f-badline-first', true);
    assertMessagesStreamFailed(first, { text: '', plainOk: true });
    assert.ok(!first.raw.includes('AFTER'), why(first));
    await assert.rejects(sdkMessageStream('f-badline-first'), anthFailed('api_error'));
    await assertServed();
  });

  // 3. An empty event stream.

  test('responses: a 200 text/event-stream with an empty body: an error (502 or an error event), not a completed empty Response', LIMIT, async () => {
    assertResponsesStreamFailed(await responses('f-empty', true), { text: '', plainOk: true });
    await assert.rejects(sdkResponseStream('f-empty'), oaiFailed());
    assertOpenAIError(await responses('f-empty', false), 502, { type: 'upstream_error' });
    await assert.rejects(sdkResponse('f-empty'), oaiFailed(502));
    await assertServed();
  });

  test('messages: a 200 text/event-stream with an empty body: an error (502 or an error event), not an empty message_stop', LIMIT, async () => {
    assertMessagesStreamFailed(await messages('f-empty', true), { text: '', plainOk: true });
    await assert.rejects(sdkMessageStream('f-empty'), anthFailed('api_error'));
    assertAnthropicError(await messages('f-empty', false), 502, 'api_error');
    await assert.rejects(sdkMessage('f-empty'), anthFailed('api_error', 502));
    await assertServed();
  });

  // 4. An error status before any byte.

  test('responses: upstream 500, 429 and 503 before any byte: plain errors in OpenAI\'s shape, streamed or not', LIMIT, async () => {
    const cases = [
      { model: 'f-500', status: 502, type: 'upstream_error', code: 'upstream_error', cls: OpenAI.InternalServerError },
      { model: 'f-429', status: 429, type: 'rate_limit_error', code: 'upstream_rate_limited', cls: OpenAI.RateLimitError },
      { model: 'f-503', status: 503, type: 'upstream_error', code: 'upstream_unavailable', cls: OpenAI.InternalServerError },
    ];
    for (const c of cases) {
      for (const stream of [false, true]) {
        const r = await responses(c.model, stream);
        assertOpenAIError(r, c.status, { type: c.type, code: c.code });
        if (c.status === 429) assert.equal(r.headers.get('retry-after'), '3', why(r));
      }
      const check = (e) => e instanceof c.cls && e.status === c.status && e.type === c.type && e.code === c.code;
      await assert.rejects(sdkResponse(c.model), check);
      await assert.rejects(sdkResponseStream(c.model), check);
    }
    await assertServed();
  });

  test('messages: upstream 500, 429 and 503 before any byte: plain errors in Anthropic\'s shape (api_error, rate_limit_error, overloaded_error), streamed or not', LIMIT, async () => {
    const cases = [
      { model: 'f-500', status: 502, type: 'api_error', cls: Anthropic.InternalServerError },
      { model: 'f-429', status: 429, type: 'rate_limit_error', cls: Anthropic.RateLimitError },
      { model: 'f-503', status: 503, type: 'overloaded_error', cls: Anthropic.InternalServerError },
    ];
    for (const c of cases) {
      for (const stream of [false, true]) {
        const r = await messages(c.model, stream);
        assertAnthropicError(r, c.status, c.type);
        if (c.status === 429) assert.equal(r.headers.get('retry-after'), '3', why(r));
      }
      const check = (e) => e instanceof c.cls && e.status === c.status && e.type === c.type;
      await assert.rejects(sdkMessage(c.model), check);
      await assert.rejects(sdkMessageStream(c.model), check);
    }
    await assertServed();
  });

  // 5. A plain answer that is not JSON, or JSON cut short.

  test('responses: a plain answer that is not JSON or is truncated JSON: 502 in OpenAI\'s shape; streamed, a body that is no event stream: an error', LIMIT, async () => {
    for (const model of ['f-notjson', 'f-truncjson']) {
      assertOpenAIError(await responses(model, false), 502, { type: 'upstream_error' });
      await assert.rejects(sdkResponse(model), oaiFailed(502));
    }
    // The same bodies to a streamed request (an upstream that ignored stream: true, or a proxy's page).
    assertResponsesStreamFailed(await responses('f-truncjson', true), { text: '', plainOk: true });
    assertResponsesStreamFailed(await responses('f-notjson', true), { text: '', plainOk: true });
    await assert.rejects(sdkResponseStream('f-notjson'), oaiFailed());
    await assertServed();
  });

  test('messages: a plain answer that is not JSON or is truncated JSON: 502 api_error; streamed, a body that is no event stream: an error', LIMIT, async () => {
    for (const model of ['f-notjson', 'f-truncjson']) {
      assertAnthropicError(await messages(model, false), 502, 'api_error');
      await assert.rejects(sdkMessage(model), anthFailed('api_error', 502));
    }
    assertMessagesStreamFailed(await messages('f-truncjson', true), { text: '', plainOk: true });
    assertMessagesStreamFailed(await messages('f-notjson', true), { text: '', plainOk: true });
    await assert.rejects(sdkMessageStream('f-notjson'), anthFailed('api_error'));
    await assertServed();
  });

  // 6. Chunks of the wrong shape.

  test('responses: chunks without choices or with mistyped deltas (content: 123, ...): a well-formed Response without them, or a clean error', LIMIT, async () => {
    const r = await responses('f-weird', true);
    const failed = r.status !== 200 || r.events?.at(-1)?.name === 'error';
    if (failed) {
      assertResponsesStreamFailed(r, { plainOk: true });
      await assert.rejects(sdkResponseStream('f-weird'), oaiFailed());
    } else {
      assert.equal(assertResponsesStreamCompleted(r), 'good text');
      const s = await sdkResponseStream('f-weird');
      assert.equal(s.status, 'completed');
      assert.equal(s.output_text, 'good text');
    }
    // Plain: content 123 and a choice that is a string: no text to show, no crash.
    const p = await responses('f-weird', false);
    if (p.status === 200) {
      assert.equal(p.json?.object, 'response', why(p));
      assert.deepEqual(p.json.output, [], why(p));
    } else {
      assertOpenAIError(p, 502, { type: 'upstream_error' });
    }
    await assertServed();
  });

  test('messages: chunks without choices or with mistyped deltas (content: 123, ...): a well-formed message without them, or a clean error', LIMIT, async () => {
    const r = await messages('f-weird', true);
    const failed = r.status !== 200 || r.events?.at(-1)?.name === 'error';
    if (failed) {
      assertMessagesStreamFailed(r, { plainOk: true });
      await assert.rejects(sdkMessageStream('f-weird'), anthFailed('api_error'));
    } else {
      assert.equal(assertMessagesStreamCompleted(r), 'good text');
      const s = await sdkMessageStream('f-weird');
      assert.deepEqual(s.content.map(({ type, text }) => ({ type, text })), [{ type: 'text', text: 'good text' }]);
      assert.equal(s.stop_reason, 'end_turn');
    }
    const p = await messages('f-weird', false);
    if (p.status === 200) {
      assert.equal(p.json?.type, 'message', why(p));
      assert.deepEqual(p.json.content, [], why(p));
    } else {
      assertAnthropicError(p, 502, 'api_error');
    }
    await assertServed();
  });

  test('responses: an upstream 200 that is JSON but no chat.completion (no choices): a well-formed Response or an error, never the upstream body as it is', LIMIT, async () => {
    const s = await responses('f-nochoices', true);
    assert.equal(assertResponsesStreamCompleted(s), '');
    const p = await responses('f-nochoices', false);
    if (p.status === 200) {
      assert.equal(p.json?.object, 'response', `a Response object, not the upstream's body: ${why(p)}`);
      assert.match(p.json.id, /^resp_/, why(p));
      assert.ok(Array.isArray(p.json.output), why(p));
    } else {
      assertOpenAIError(p, 502, { type: 'upstream_error' });
    }
    await assertServed();
  });

  test('messages: an upstream 200 that is JSON but no chat.completion (no choices): a well-formed message or an error, never the upstream body as it is', LIMIT, async () => {
    const s = await messages('f-nochoices', true);
    assert.equal(assertMessagesStreamCompleted(s), '');
    const p = await messages('f-nochoices', false);
    if (p.status === 200) {
      assert.equal(p.json?.type, 'message', `a Message object, not the upstream's body: ${why(p)}`);
      assert.match(p.json.id, /^msg_/, why(p));
      assert.ok(Array.isArray(p.json.content), why(p));
    } else {
      assertAnthropicError(p, 502, 'api_error');
    }
    await assertServed();
  });
});
