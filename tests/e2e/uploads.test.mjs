// The multipart and binary routes of the OpenAI API, passed through by model: POST
// /v1/audio/transcriptions, /v1/audio/translations, /v1/images/edits and /v1/images/variations
// (multipart/form-data: the gateway reads the `model` part, routes it like chat, rewrites that one
// part to the upstream model name and sends every other byte as it came, same boundary) and
// POST /v1/audio/speech (JSON in, binary audio out). The official `openai` SDK talks to the real
// binary; the fake upstream below is a raw node:http server in this process, which keeps every body
// as bytes (lib/fake_upstream.mjs reads bodies as text and answers JSON only) so a test can compare
// what the client sent with what the provider got, byte for byte. The uploads are binary files
// with CRLFs, "--" and boundary-like strings inside. Errors, keys, the upload limit
// (server.max_upload_bytes) and the offline demo model are covered too. Everything a test starts is
// stopped when it ends.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { toFile, toStreamingFile } from 'openai';
import { startGateway, assertClean, waitFor, serversUp, repoRoot, toolgateBin, startOfflineDemo } from './lib/harness.mjs';

const why = (gw) => `\n--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;
const sha = (buf) => createHash('sha256').update(buf).digest('hex');
const sdk = (gw, apiKey = 'sk-app-up', extra = {}) =>
  new OpenAI({ baseURL: gw.url + '/v1', apiKey, maxRetries: 0, timeout: 20000, ...extra });

// An SDK client that keeps what it sends: the request's content-type and, unless `keepStream`, its
// body bytes (read here, then sent as a buffer: the same bytes the SDK would have sent). The SDK's
// own probe of fetch's FormData support (a fetch of "data:,") is not recorded.
function recordingSdk(gw, apiKey, sent, { keepStream = false } = {}) {
  return sdk(gw, apiKey, {
    fetch: async (url, init = {}) => {
      if (String(url).startsWith('data:')) return fetch(url, init);
      if (keepStream) {
        sent.push({ url: String(url), contentType: new Headers(init.headers).get('content-type'), body: null });
        return fetch(url, init);
      }
      const req = new Request(url, init);
      const body = init.body == null ? null : Buffer.from(await req.arrayBuffer());
      sent.push({ url: String(url), contentType: req.headers.get('content-type'), body });
      return fetch(url, { method: req.method, headers: req.headers, body, signal: init.signal });
    },
  });
}

// A plain request: status, headers, the body as bytes, as text and (when it is) as JSON.
async function send(gw, path, { body, contentType, key = 'sk-app-up' } = {}) {
  const headers = {};
  if (contentType) headers['content-type'] = contentType;
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(gw.url + path, { method: 'POST', headers, body });
  const bytes = Buffer.from(await res.arrayBuffer());
  const raw = bytes.toString('utf8');
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, bytes, raw, json };
}

// An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}.
function assertError(r, status, gw, { type = 'invalid_request_error', code, param } = {}) {
  assert.equal(r.status, status, r.raw + why(gw));
  assert.equal(typeof r.json?.error?.message, 'string', `an OpenAI-shaped error: ${r.raw}`);
  assert.ok(r.json.error.message.length > 0, r.raw);
  assert.equal(typeof r.json.error.type, 'string', r.raw);
  if (type) assert.equal(r.json.error.type, type, r.raw);
  if (code !== undefined) assert.equal(r.json.error.code, code, r.raw);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.raw);
}

// The first offset where two buffers differ, for a readable failure.
function assertSameBytes(actual, expected, what) {
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  const around = (b) => JSON.stringify(b.subarray(Math.max(0, i - 40), i + 40).toString('latin1'));
  assert.fail(`${what}: ${actual.length} bytes, expected ${expected.length}; first difference at ${i}\n` +
    `  got:      ${around(actual)}\n  expected: ${around(expected)}`);
}

// --- multipart -----------------------------------------------------------------------------------

function boundaryOf(contentType) {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  return m ? (m[1] ?? m[2]) : null;
}

// The parts of a multipart/form-data body (RFC 7578 / 2046): each with its name, filename, type,
// headers and the offsets of its value in `body`. Throws unless the body ends with the close
// delimiter.
function parseMultipart(body, boundary) {
  if (!boundary) throw new Error('no boundary');
  const delim = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`\r\n--${boundary}`);
  let pos = body.indexOf(delim);
  if (pos < 0 || (pos > 0 && body.indexOf(next) !== pos - 2)) throw new Error('no first delimiter');
  const parts = [];
  for (;;) {
    let at = pos + delim.length;
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts;  // the close delimiter
    while (body[at] === 0x20 || body[at] === 0x09) at++;             // transport padding
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) throw new Error(`no CRLF after the delimiter at ${pos}`);
    const hs = at + 2;
    let he, start;
    if (body[hs] === 0x0d && body[hs + 1] === 0x0a) { he = hs; start = hs + 2; } else {
      he = body.indexOf('\r\n\r\n', hs);
      if (he < 0) throw new Error(`the headers of the part at ${pos} do not end`);
      start = he + 4;
    }
    const headers = {};
    for (const line of body.subarray(hs, he).toString('latin1').split('\r\n').filter(Boolean)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const end = body.indexOf(next, start);
    if (end < 0) throw new Error(`truncated: no delimiter after the part at ${pos}`);
    const cd = headers['content-disposition'] ?? '';
    const name = /\bname="([^"]*)"/i.exec(cd)?.[1] ?? /\bname=([^;\s]+)/i.exec(cd)?.[1];
    const filename = /\bfilename="([^"]*)"/i.exec(cd)?.[1];
    parts.push({ name, filename, type: headers['content-type'], headers, start, end, value: body.subarray(start, end) });
    pos = end + 2;
  }
}

const field = (parts, name) => parts.find((p) => p.name === name)?.value.toString('utf8');

// `body` with the value of its `model` part replaced (what the gateway sends for an alias).
function withModel(body, boundary, model) {
  const m = parseMultipart(body, boundary).find((p) => p.name === 'model');
  assert.ok(m, 'the client sent a model part');
  return Buffer.concat([body.subarray(0, m.start), Buffer.from(model), body.subarray(m.end)]);
}

// Random bytes with what trips up a careless multipart reader sprinkled in: CRLFs, blank lines,
// "--", delimiter-looking lines (not this request's boundary: a client never sends its own), and a
// whole fake `model` part (a rewrite that searches instead of parsing would change the file).
function nastyBytes(size, head = 'RIFF') {
  const buf = randomBytes(size);
  const markers = ['\r\n', '--', '\r\n\r\n', '\r\n--', '\r\n------formdata-undici-000000000000\r\n',
    'Content-Disposition: form-data; name="model"\r\n\r\nstt\r\n', '--openai-boundary--\r\n', '\x00\xff\xfe\xc3\x28'];
  for (let i = 0, at = 64; at < size - 100; i++) {
    Buffer.from(markers[i % markers.length], 'latin1').copy(buf, at);
    at += 997 + ((i * 131) % 2000);
  }
  Buffer.from(head, 'latin1').copy(buf, 0);
  return buf;
}

// The same bytes, as a stream of pieces (the SDK then sends the request chunked, no length).
async function* pieces(buf, size = 16384) {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

// --- the fake upstream ---------------------------------------------------------------------------

const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// Audio the fake "speaks": every byte value (invalid UTF-8 on purpose), then random bytes.
const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const SPEECH = {
  mp3: Buffer.concat([Buffer.from('ID3\x04\x00', 'latin1'), allBytes, randomBytes(48 * 1024), allBytes]),
  wav: Buffer.concat([Buffer.from('RIFF\x24\x80\x00\x00WAVEfmt ', 'latin1'), allBytes, randomBytes(32 * 1024)]),
};
const heard = (verb, file) => `${verb} ${file.value.length} bytes of ${file.filename} sha256:${sha(file.value)}`;
const pngOf = (img) => Buffer.concat([PNG_SIG, createHash('sha256').update(img).digest()]).toString('base64');

// What the fake answers on each path; every answer is kept on the request's record (rec.answer).
function upstreamAnswer(rec) {
  const json = (status, obj) => ({ status, type: 'application/json', bytes: Buffer.from(JSON.stringify(obj, null, 1) + '\n') });
  const text = (type, s) => ({ status: 200, type, bytes: Buffer.from(s) });
  if (rec.url === '/v1/audio/speech') {
    rec.json = JSON.parse(rec.body.toString('utf8'));
    const fmt = rec.json.response_format ?? 'mp3';
    return { status: 200, type: fmt === 'wav' ? 'audio/wav' : 'audio/mpeg', bytes: SPEECH[fmt] ?? SPEECH.mp3 };
  }
  const ct = rec.headers['content-type'] ?? '';
  if (!ct.startsWith('multipart/form-data')) return json(415, { error: { message: `fake upstream wants multipart, got ${ct}` } });
  try {
    rec.parts = parseMultipart(rec.body, boundaryOf(ct));
  } catch (e) {
    rec.parseError = e.message;
    return json(400, { error: { message: `fake upstream cannot read the multipart body: ${e.message}`, type: 'invalid_request_error' } });
  }
  const model = field(rec.parts, 'model');
  if (model === 'whisper-fail') return json(500, { error: { message: 'whisper exploded with secret detail', type: 'server_error' } });
  if (model === 'whisper-400')
    return json(400, { error: { message: 'Invalid file format. Supported formats: flac, mp3, ogg, wav', type: 'invalid_request_error', param: 'file', code: null } });
  if (rec.url === '/v1/audio/transcriptions' || rec.url === '/v1/audio/translations') {
    const file = rec.parts.find((p) => p.name === 'file');
    const said = heard(rec.url.endsWith('/translations') ? 'translated' : 'heard', file);
    switch (field(rec.parts, 'response_format')) {
      case 'text': return text('text/plain; charset=utf-8', said + '\n');
      case 'srt': return text('application/x-subrip', `1\n00:00:00,000 --> 00:00:04,000\n${said}\n\n`);
      case 'vtt': return text('text/vtt; charset=utf-8', `WEBVTT\n\n00:00:00.000 --> 00:00:04.000\n${said}\n\n`);
      default: return json(200, { text: said, usage: { type: 'duration', seconds: 4 } });
    }
  }
  if (rec.url === '/v1/images/edits') {
    const images = rec.parts.filter((p) => p.name === 'image' || p.name === 'image[]');
    return json(200, { created: 1700000000, data: images.map((p) => ({ b64_json: pngOf(p.value) })),
      usage: { input_tokens: 50, output_tokens: 100, total_tokens: 150 } });
  }
  if (rec.url === '/v1/images/variations') {
    const img = rec.parts.find((p) => p.name === 'image');
    const n = Number(field(rec.parts, 'n') ?? 1);
    return json(200, { created: 1700000000, data: Array.from({ length: n }, (_, i) => ({ url: `https://img.example/var-${i}-${sha(img.value).slice(0, 12)}.png` })) });
  }
  return json(404, { error: { message: `fake upstream has no ${rec.url}` } });
}

async function startUpstream() {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const rec = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(rec);
      try {
        rec.answer = upstreamAnswer(rec);
      } catch (e) {
        rec.answer = { status: 500, type: 'application/json', bytes: Buffer.from(JSON.stringify({ error: { message: `fake upstream broke: ${e.message}` } })) };
      }
      res.writeHead(rec.answer.status, { 'content-type': rec.answer.type, 'content-length': rec.answer.bytes.length });
      res.end(rec.answer.bytes);
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    requests,
    url: `http://127.0.0.1:${server.address().port}/v1`,
    calls: (path) => requests.filter((r) => r.url === '/v1' + path),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

// --- through a provider --------------------------------------------------------------------------

const AUDIO = nastyBytes(200 * 1024);
const AUDIO2 = nastyBytes(150 * 1024, 'ID3\x04');
const IMG1 = nastyBytes(120 * 1024, '\x89PNG\r\n\x1a\n');
const IMG2 = nastyBytes(90 * 1024, '\x89PNG\r\n\x1a\n');
const MASK = nastyBytes(30 * 1024, '\x89PNG\r\n\x1a\n');

describe('multipart and binary routes passed through to an OpenAI-shaped upstream', () => {
  let up, gw;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, timeout: 20s, models: [whisper-1, whisper-fail, whisper-400, tts-1, gpt-image-1, dall-e-2] }
  - { name: claude, type: anthropic, base_url: "${up.url}", api_key: sk-ant-fake, models: [claude-x] }
aliases: { stt: local/whisper-1 }
keys:
  - { name: app, key: sk-app-up }
  - { name: narrow, key: sk-narrow-up, models: [stt] }
`);
  });
  after(async () => {
    try {
      await gw?.stop();
      if (gw) assertClean(gw);
    } finally {
      await up?.close();
    }
  });

  test('audio.transcriptions through an alias: the model part becomes the upstream model, every other byte and the boundary stay; the answer comes back as it was', async () => {
    const sent = [];
    const before = up.calls('/audio/transcriptions').length;
    const prompt = 'Zoë, naïve café — “quotes”\r\n--and a line break';
    const { data, response } = await recordingSdk(gw, 'sk-app-up', sent).audio.transcriptions.create({
      file: await toFile(AUDIO, 'speech.wav', { type: 'audio/wav' }), model: 'stt', language: 'fr', prompt, temperature: 0.2,
    }).withResponse();

    const got = up.calls('/audio/transcriptions');
    assert.equal(got.length, before + 1, why(gw));
    const rec = got.at(-1);
    assert.equal(rec.method, 'POST');
    assert.equal(rec.headers.authorization, 'Bearer sk-upstream', 'the provider key, never the client key');
    const client = sent.at(-1);
    assert.match(client.contentType, /^multipart\/form-data; boundary=/);
    assert.match(rec.headers['content-type'], /^multipart\/form-data/i);
    assert.equal(boundaryOf(rec.headers['content-type']), boundaryOf(client.contentType), 'the same boundary');
    assert.equal(rec.parseError, undefined);
    assert.equal(field(rec.parts, 'model'), 'whisper-1');
    const file = rec.parts.find((p) => p.name === 'file');
    assertSameBytes(file.value, AUDIO, 'the file part upstream');
    assert.equal(file.filename, 'speech.wav');
    assert.equal(file.type, 'audio/wav');
    assert.equal(field(rec.parts, 'prompt'), prompt);
    assert.equal(field(rec.parts, 'language'), 'fr');
    assert.equal(field(rec.parts, 'temperature'), '0.2');
    assertSameBytes(rec.body, withModel(client.body, boundaryOf(client.contentType), 'whisper-1'), 'the upstream body (the client\'s, model rewritten)');

    assert.equal(data.text, heard('heard', file));
    assert.deepEqual(data.usage, { type: 'duration', seconds: 4 });
    assert.match(response.headers.get('content-type'), /^application\/json/);
    assert.equal(response.headers.get('x-toolgate-provider'), 'local');
    assert.equal(response.headers.get('x-toolgate-model'), 'whisper-1');
  });

  test('response_format text, srt and vtt: the upstream text and its content-type come back unchanged', async () => {
    const file = await toFile(AUDIO, 'speech.wav', { type: 'audio/wav' });
    const said = `heard ${AUDIO.length} bytes of speech.wav sha256:${sha(AUDIO)}`;
    const cases = [
      ['text', 'text/plain; charset=utf-8', said + '\n'],
      ['srt', 'application/x-subrip', `1\n00:00:00,000 --> 00:00:04,000\n${said}\n\n`],
      ['vtt', 'text/vtt; charset=utf-8', `WEBVTT\n\n00:00:00.000 --> 00:00:04.000\n${said}\n\n`],
    ];
    for (const [format, type, body] of cases) {
      const { data, response } = await sdk(gw).audio.transcriptions.create({ file, model: 'stt', response_format: format }).withResponse();
      assert.equal(data, body, `${format}${why(gw)}`);
      assert.equal(response.headers.get('content-type'), type, format);
      const rec = up.calls('/audio/transcriptions').at(-1);
      assert.equal(field(rec.parts, 'response_format'), format);
      assert.equal(field(rec.parts, 'model'), 'whisper-1');
    }
  });

  test('audio.translations with a streamed (chunked) upload: the file arrives whole, the model part as it was', async () => {
    const sent = [];
    const before = up.calls('/audio/translations').length;
    const r = await recordingSdk(gw, 'sk-app-up', sent, { keepStream: true }).audio.translations.create({
      file: toStreamingFile(pieces(AUDIO2), 'german.mp3', { type: 'audio/mpeg' }), model: 'whisper-1', response_format: 'json',
    });
    const got = up.calls('/audio/translations');
    assert.equal(got.length, before + 1, why(gw));
    const rec = got.at(-1);
    assert.equal(rec.headers.authorization, 'Bearer sk-upstream');
    assert.equal(boundaryOf(rec.headers['content-type']), boundaryOf(sent.at(-1).contentType), 'the same boundary');
    assert.equal(rec.parseError, undefined);
    assert.deepEqual(rec.parts.map((p) => p.name), ['file', 'model', 'response_format']);
    const file = rec.parts[0];
    assertSameBytes(file.value, AUDIO2, 'the file part upstream');
    assert.equal(file.filename, 'german.mp3');
    assert.equal(file.type, 'audio/mpeg');
    assert.equal(field(rec.parts, 'model'), 'whisper-1');
    assert.equal(r.text, heard('translated', file));
  });

  test('a hand-written multipart body (model part last, a part with its own content-type, "--boundary" inside the file) is forwarded byte for byte but the model', async () => {
    const B = 'tgB7MA4YWxkTrZu0gW';
    const file = Buffer.concat([nastyBytes(96 * 1024, 'OggS'), Buffer.from(`x--${B}\r\nnot a delimiter: a--${B}--\r\n`), nastyBytes(4096, 'tail')]);
    const head = Buffer.concat([
      Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="file"; filename="clip.ogg"\r\nContent-Type: audio/ogg\r\n\r\n`),
      file,
      Buffer.from(`\r\n--${B}\r\nContent-Disposition: form-data; name="prompt"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln` +
        `\r\n--${B}\r\nContent-Disposition: form-data; name="response_format"\r\n\r\njson` +
        `\r\n--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\n`),
    ]);
    const tail = Buffer.from(`\r\n--${B}--\r\n`);
    const before = up.calls('/audio/transcriptions').length;
    const r = await send(gw, '/v1/audio/transcriptions', { body: Buffer.concat([head, Buffer.from('stt'), tail]), contentType: `multipart/form-data; boundary=${B}` });
    assert.equal(r.status, 200, r.raw + why(gw));
    const got = up.calls('/audio/transcriptions');
    assert.equal(got.length, before + 1);
    const rec = got.at(-1);
    assert.equal(boundaryOf(rec.headers['content-type']), B);
    assertSameBytes(rec.body, Buffer.concat([head, Buffer.from('whisper-1'), tail]), 'the upstream body');
    assertSameBytes(r.bytes, rec.answer.bytes, 'the answer body');
    assert.equal(r.headers.get('content-type'), rec.answer.type);
    assert.equal(r.json.text, `heard ${file.length} bytes of clip.ogg sha256:${sha(file)}`);
  });

  test('audio.speech: the JSON body reaches the upstream, its binary audio comes back byte for byte with its content-type', async () => {
    const client = sdk(gw);
    const input = 'Bonjour — ça va? 🎙';
    const res = await client.audio.speech.create({ model: 'tts-1', input, voice: 'alloy', response_format: 'mp3', speed: 1.25 });
    assert.equal(res.headers.get('content-type'), 'audio/mpeg');
    assertSameBytes(Buffer.from(await res.arrayBuffer()), SPEECH.mp3, 'the mp3 the client got');
    const rec = up.calls('/audio/speech').at(-1);
    assert.deepEqual(rec.json, { model: 'tts-1', input, voice: 'alloy', response_format: 'mp3', speed: 1.25 });
    assert.equal(rec.headers.authorization, 'Bearer sk-upstream');
    const wav = await client.audio.speech.create({ model: 'tts-1', input: 'hi', voice: 'nova', response_format: 'wav' });
    assert.equal(wav.headers.get('content-type'), 'audio/wav');
    assertSameBytes(Buffer.from(await wav.arrayBuffer()), SPEECH.wav, 'the wav the client got');
  });

  test('images.edit (two images and a mask) and images.createVariation: every file part arrives whole, the JSON answer comes back', async () => {
    const sent = [];
    const client = recordingSdk(gw, 'sk-app-up', sent);
    const edit = await client.images.edit({
      image: [await toFile(IMG1, 'a.png', { type: 'image/png' }), await toFile(IMG2, 'b.png', { type: 'image/png' })],
      mask: await toFile(MASK, 'mask.png', { type: 'image/png' }),
      prompt: 'add a red hat', model: 'gpt-image-1', n: 1, size: '1024x1024',
    });
    let rec = up.calls('/images/edits').at(-1);
    assert.ok(rec, why(gw));
    assert.equal(rec.headers.authorization, 'Bearer sk-upstream');
    assert.equal(rec.parseError, undefined);
    const images = rec.parts.filter((p) => p.name === 'image[]');
    assert.equal(images.length, 2);
    assertSameBytes(images[0].value, IMG1, 'the first image upstream');
    assertSameBytes(images[1].value, IMG2, 'the second image upstream');
    assertSameBytes(rec.parts.find((p) => p.name === 'mask').value, MASK, 'the mask upstream');
    assert.equal(field(rec.parts, 'prompt'), 'add a red hat');
    assert.equal(field(rec.parts, 'model'), 'gpt-image-1');
    assertSameBytes(rec.body, sent.at(-1).body, 'the upstream body (nothing to rewrite)');
    assert.equal(edit.created, 1700000000);
    assert.deepEqual(edit.data.map((d) => d.b64_json), [pngOf(IMG1), pngOf(IMG2)]);
    assert.equal(edit.usage.total_tokens, 150);

    const variation = await client.images.createVariation({
      image: await toFile(IMG2, 'b.png', { type: 'image/png' }), model: 'dall-e-2', n: 2, size: '256x256', response_format: 'url',
    });
    rec = up.calls('/images/variations').at(-1);
    assert.ok(rec, why(gw));
    assertSameBytes(rec.parts.find((p) => p.name === 'image').value, IMG2, 'the image upstream');
    assert.equal(field(rec.parts, 'n'), '2');
    assertSameBytes(rec.body, sent.at(-1).body, 'the upstream body (nothing to rewrite)');
    assert.deepEqual(variation.data.map((d) => d.url), [0, 1].map((i) => `https://img.example/var-${i}-${sha(IMG2).slice(0, 12)}.png`));
  });

  test('errors before any upstream call: no model, not multipart, a malformed body, a provider that does not serve the route', async () => {
    const before = up.requests.length;
    const audio = new File([AUDIO.subarray(0, 20000)], 'a.wav', { type: 'audio/wav' });

    const noModel = new FormData();
    noModel.append('file', audio);
    noModel.append('language', 'en');
    assertError(await send(gw, '/v1/audio/transcriptions', { body: noModel }), 400, gw, { param: 'model' });
    const emptyModel = new FormData();
    emptyModel.append('file', audio);
    emptyModel.append('model', '');
    assertError(await send(gw, '/v1/audio/transcriptions', { body: emptyModel }), 400, gw, { param: 'model' });
    const noModelImage = new FormData();
    noModelImage.append('image', new File([IMG1.subarray(0, 20000)], 'a.png', { type: 'image/png' }));
    noModelImage.append('prompt', 'x');
    assertError(await send(gw, '/v1/images/edits', { body: noModelImage }), 400, gw, { param: 'model' });
    assertError(await send(gw, '/v1/audio/speech', { body: JSON.stringify({ input: 'hi', voice: 'alloy' }), contentType: 'application/json' }),
      400, gw, { param: 'model' });
    const noFile = new FormData();
    noFile.append('model', 'whisper-1');
    noFile.append('language', 'en');
    assertError(await send(gw, '/v1/audio/transcriptions', { body: noFile }), 400, gw, { param: 'file' });
    // Two model fields: routing, the key's list and the price would read one, an upstream the other.
    const twoModels = new FormData();
    twoModels.append('model', 'whisper-1');
    twoModels.append('file', audio);
    twoModels.append('Model', 'gpt-4o-transcribe');
    assertError(await send(gw, '/v1/audio/transcriptions', { body: twoModels }), 400, gw, { param: 'model' });

    // Not multipart at all.
    assertError(await send(gw, '/v1/audio/transcriptions', { body: JSON.stringify({ model: 'whisper-1', file: 'aGVsbG8=' }), contentType: 'application/json' }), 400, gw);
    assertError(await send(gw, '/v1/audio/translations', { body: 'model=whisper-1', contentType: 'application/x-www-form-urlencoded' }), 400, gw);
    // multipart without a boundary, with another boundary than the body's, cut short.
    const B = 'tgBoundaryXYZ';
    const good = Buffer.concat([
      Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n`),
      Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
      AUDIO.subarray(0, 50000), Buffer.from(`\r\n--${B}--\r\n`),
    ]);
    assertError(await send(gw, '/v1/audio/transcriptions', { body: good, contentType: 'multipart/form-data' }), 400, gw);
    assertError(await send(gw, '/v1/audio/transcriptions', { body: good, contentType: 'multipart/form-data; boundary=someOtherBoundary' }), 400, gw);
    assertError(await send(gw, '/v1/audio/transcriptions', { body: good.subarray(0, 30000), contentType: `multipart/form-data; boundary=${B}` }), 400, gw);
    assertError(await send(gw, '/v1/images/variations', { body: good.subarray(0, 30000), contentType: `multipart/form-data; boundary=${B}` }), 400, gw);

    // A provider of type anthropic serves none of these routes.
    const anth = new FormData();
    anth.append('file', audio);
    anth.append('model', 'claude-x');
    const a1 = await send(gw, '/v1/audio/transcriptions', { body: anth });
    assertError(a1, 400, gw, { code: 'unsupported_for_provider' });
    assert.match(a1.json.error.message, /claude/);
    assertError(await send(gw, '/v1/audio/speech', { body: JSON.stringify({ model: 'claude-x', input: 'hi', voice: 'alloy' }), contentType: 'application/json' }),
      400, gw, { code: 'unsupported_for_provider' });
    const anthImage = new FormData();
    anthImage.append('image', new File([IMG1.subarray(0, 20000)], 'a.png', { type: 'image/png' }));
    anthImage.append('prompt', 'x');
    anthImage.append('model', 'claude-x');
    assertError(await send(gw, '/v1/images/edits', { body: anthImage }), 400, gw, { code: 'unsupported_for_provider' });

    assert.deepEqual(up.requests.slice(before).map((r) => r.url), [], 'nothing went upstream');
  });

  test('upstream errors: a 500 comes back as an OpenAI-shaped 5xx without the upstream detail; a 400 stays a 400', async () => {
    const before = up.requests.length;
    const fail = new FormData();
    fail.append('file', new File([AUDIO], 'a.wav', { type: 'audio/wav' }));
    fail.append('model', 'whisper-fail');
    const r = await send(gw, '/v1/audio/transcriptions', { body: fail });
    assert.ok(r.status >= 500 && r.status < 600, `status ${r.status}: ${r.raw}${why(gw)}`);
    assertError(r, r.status, gw, { type: null });
    assert.doesNotMatch(r.raw, /secret detail/, 'the upstream 5xx detail stays in the log');
    const tried = up.requests.slice(before);
    assert.ok(tried.length >= 1 && tried.every((x) => x.url === '/v1/audio/transcriptions'), JSON.stringify(tried.map((x) => x.url)));
    for (const t of tried) {
      const file = t.parts?.find((p) => p.name === 'file');
      assert.ok(file, `an attempt without a file part: ${t.parseError}`);
      assertSameBytes(file.value, AUDIO, 'the file of every attempt');
    }

    const err = await sdk(gw).audio.transcriptions.create({ file: await toFile(AUDIO.subarray(0, 1000), 'a.xyz'), model: 'whisper-400' }).catch((e) => e);
    assert.equal(err.status, 400, String(err) + why(gw));
    assert.match(err.message, /Invalid file format/);
  });

  test('keys: none is 401; a key may only use its models (403 model_not_allowed before any upstream call); its requests are logged', async () => {
    const before = up.requests.length;
    const form = () => {
      const f = new FormData();
      f.append('file', new File([AUDIO.subarray(0, 30000)], 'a.wav', { type: 'audio/wav' }));
      f.append('model', 'stt');
      return f;
    };
    const noKey = await send(gw, '/v1/audio/transcriptions', { body: form(), key: null });
    assertError(noKey, 401, gw, { code: 'missing_api_key' });
    const wrongKey = await send(gw, '/v1/audio/transcriptions', { body: form(), key: 'sk-nobody' });
    assertError(wrongKey, 401, gw, { type: null, code: 'invalid_api_key' });
    assert.equal(up.requests.length, before, 'nothing went upstream');

    const narrow = sdk(gw, 'sk-narrow-up');
    const ok = await narrow.audio.transcriptions.create({ file: await toFile(AUDIO.subarray(0, 30000), 'a.wav', { type: 'audio/wav' }), model: 'stt' });
    assert.match(ok.text, /^heard 30000 bytes of a\.wav/);
    assert.equal(up.requests.length, before + 1);

    const speech = await narrow.audio.speech.create({ model: 'tts-1', input: 'hi', voice: 'alloy' }).catch((e) => e);
    assert.equal(speech.status, 403, String(speech));
    assert.equal(speech.type, 'permission_error');
    assert.equal(speech.code, 'model_not_allowed');
    const edit = await narrow.images.edit({ image: await toFile(IMG1.subarray(0, 20000), 'a.png', { type: 'image/png' }), prompt: 'x', model: 'gpt-image-1' }).catch((e) => e);
    assert.equal(edit.status, 403, String(edit));
    assert.equal(edit.code, 'model_not_allowed');
    const trans = await narrow.audio.translations.create({ file: await toFile(AUDIO.subarray(0, 1000), 'a.wav'), model: 'whisper-fail' }).catch((e) => e);
    assert.equal(trans.status, 403, String(trans));
    assert.equal(trans.code, 'model_not_allowed');
    assert.equal(up.requests.length, before + 1, 'the refused requests did not go upstream');

    await waitFor(() => gw.accessLog().some((l) => l.route === '/v1/audio/transcriptions' && l.key === 'narrow' && l.status === 200),
      3000, 'the access-log line of the narrow key\'s transcription');
    const line = gw.accessLog().find((l) => l.route === '/v1/audio/transcriptions' && l.key === 'narrow' && l.status === 200);
    assert.equal(line.model, 'stt', JSON.stringify(line));
    assert.equal(line.provider, 'local', JSON.stringify(line));
  });
});

// --- the upload limit ----------------------------------------------------------------------------

describe('server.max_upload_bytes bounds multipart uploads; server.max_body_bytes the other bodies', () => {
  let up, gw;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(`
providers_from_env: false
server: { max_body_bytes: 65536, max_upload_bytes: 131072 }
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, timeout: 20s, models: [whisper-1, tts-1, gpt-image-1] }
`);
  });
  after(async () => {
    try {
      await gw?.stop();
      if (gw) assertClean(gw);
    } finally {
      await up?.close();
    }
  });

  test('an upload above max_body_bytes but within max_upload_bytes passes whole', async () => {
    const file = AUDIO.subarray(0, 100 * 1024);
    const r = await sdk(gw, 'any').audio.transcriptions.create({ file: await toFile(file, 'a.wav', { type: 'audio/wav' }), model: 'whisper-1' });
    assert.equal(r.text, `heard ${file.length} bytes of a.wav sha256:${sha(file)}`);
    assertSameBytes(up.calls('/audio/transcriptions').at(-1).parts.find((p) => p.name === 'file').value, file, 'the file upstream');
  });

  test('an upload above max_upload_bytes is 413 payload_too_large (with a length or chunked), nothing goes upstream, the gateway serves on', async () => {
    const before = up.requests.length;
    const client = sdk(gw, 'any');
    const sized = await client.audio.transcriptions.create({ file: await toFile(AUDIO, 'a.wav', { type: 'audio/wav' }), model: 'whisper-1' }).catch((e) => e);
    assert.equal(sized.status, 413, String(sized) + why(gw));
    assert.equal(sized.code, 'payload_too_large');
    assert.equal(sized.type, 'invalid_request_error');
    const chunked = await client.audio.translations.create({ file: toStreamingFile(pieces(AUDIO), 'a.wav', { type: 'audio/wav' }), model: 'whisper-1' }).catch((e) => e);
    assert.equal(chunked.status, 413, String(chunked) + why(gw));
    assert.equal(chunked.code, 'payload_too_large');
    const image = await client.images.edit({ image: await toFile(nastyBytes(140 * 1024), 'a.png', { type: 'image/png' }), prompt: 'x', model: 'gpt-image-1' }).catch((e) => e);
    assert.equal(image.status, 413, String(image));
    assert.equal(up.requests.length, before, 'nothing went upstream');

    const small = await client.audio.transcriptions.create({ file: await toFile(AUDIO.subarray(0, 5000), 'a.wav', { type: 'audio/wav' }), model: 'whisper-1' });
    assert.match(small.text, /^heard 5000 bytes/);
  });

  test('JSON bodies keep max_body_bytes: a speech or chat request above it is 413', async () => {
    const before = up.requests.length;
    const speech = await send(gw, '/v1/audio/speech', { key: 'any', contentType: 'application/json',
      body: JSON.stringify({ model: 'tts-1', input: 'x'.repeat(100 * 1024), voice: 'alloy' }) });
    assertError(speech, 413, gw, { code: 'payload_too_large' });
    const chat = await send(gw, '/v1/chat/completions', { key: 'any', contentType: 'application/json',
      body: JSON.stringify({ model: 'whisper-1', messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] }) });
    assertError(chat, 413, gw, { code: 'payload_too_large' });
    assert.equal(up.requests.length, before);
    const res = await sdk(gw, 'any').audio.speech.create({ model: 'tts-1', input: 'short', voice: 'alloy' });
    assertSameBytes(Buffer.from(await res.arrayBuffer()), SPEECH.mp3, 'a small speech request still works');
  });
});

// --- the offline demo ----------------------------------------------------------------------------

describe('the offline demo model on the default config (examples/gateway.yaml, no upstream)', () => {
  let gw;
  before(async () => {
    gw = await startOfflineDemo();
  });
  after(async () => {
    await gw?.stop();
    if (gw) assertClean(gw);
  });

  test('transcriptions answer {"text": ...}', async () => {
    const c = sdk(gw, 'unused');
    const t = await c.audio.transcriptions.create({ file: await toFile(AUDIO.subarray(0, 40000), 'a.wav', { type: 'audio/wav' }), model: 'toolgate-demo' });
    assert.equal(typeof t.text, 'string', JSON.stringify(t) + why(gw));
    assert.ok(t.text.length > 0);
  });

  test('speech answers audio/wav (RIFF ... WAVE)', async () => {
    const res = await sdk(gw, 'unused').audio.speech.create({ model: 'toolgate-demo', input: 'hello from the demo', voice: 'alloy', response_format: 'wav' });
    assert.match(res.headers.get('content-type') ?? '', /^audio\/wav/);
    const buf = Buffer.from(await res.arrayBuffer());
    assert.ok(buf.length > 44, `${buf.length} bytes`);
    assert.equal(buf.subarray(0, 4).toString('latin1'), 'RIFF');
    assert.equal(buf.subarray(8, 12).toString('latin1'), 'WAVE');
  });

  test('images.edit and images.createVariation answer a PNG in b64_json', async () => {
    const c = sdk(gw, 'unused');
    const edit = await c.images.edit({ image: await toFile(IMG1.subarray(0, 30000), 'a.png', { type: 'image/png' }), prompt: 'add a hat', model: 'toolgate-demo' });
    assert.ok(edit.data.length >= 1, JSON.stringify(edit));
    assert.match(edit.data[0].b64_json, /^iVBOR/);
    const v = await c.images.createVariation({ image: await toFile(IMG2.subarray(0, 30000), 'b.png', { type: 'image/png' }), model: 'toolgate-demo' });
    assert.ok(v.data.length >= 1, JSON.stringify(v));
    assert.match(v.data[0].b64_json, /^iVBOR/);
  });
});
