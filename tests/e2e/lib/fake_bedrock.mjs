// A fake Bedrock Runtime (Converse and ConverseStream), written from AWS's API reference. It
// recomputes every request's SigV4 signature from what arrived (the canonical request over the
// signed headers, the body's SHA-256, the wire path encoded a second time) with the secret it was
// given, and refuses a wrong one with 403 as Bedrock does. Streams are AWS event stream frames
// (prelude, string headers, payload, CRC-32s). Its models: "agent" models behave like the other
// fakes' (a user line "call NAME {json}" becomes a toolUse; after tool results they answer "Tool
// results: a | b"); "throttled" answers 429; anything else echoes the last user text. A Bedrock API
// key (`Authorization: Bearer ...`) is accepted when it is one of `bearerKeys`.
import http from 'node:http';
import { createHash, createHmac } from 'node:crypto';

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

// Every byte but RFC 3986 unreserved ones (and '/' in paths) as %XX.
function uriEncode(text, keepSlash) {
  let out = '';
  for (const b of Buffer.from(text, 'latin1')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

// What the signature must be, from the request as received.
export function expectedSignature(req, body, secret) {
  const auth = req.headers.authorization ?? '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { ok: false, why: 'no SigV4 Authorization header' };
  const [, accessKey, date, region, service, signedHeaders, signature] = m;
  const amzDate = req.headers['x-amz-date'] ?? '';
  const [path, query = ''] = req.url.split('?');
  const canonicalQuery = query ? query.split('&').map((p) => p.split('=')).sort().map(([k, v = '']) => `${k}=${v}`).join('&') : '';
  const headerLines = signedHeaders.split(';').map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, uriEncode(path, true), canonicalQuery, headerLines, signedHeaders, sha256(body)].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac('AWS4' + secret, date);
  for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
  const want = createHmac('sha256', key).update(toSign).digest('hex');
  return { ok: want === signature, accessKey, region, service, signedHeaders: signedHeaders.split(';'), why: want === signature ? '' : 'signature mismatch' };
}

// One event stream frame with string headers.
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
export function frame(headers, payload) {
  const parts = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name), v = Buffer.from(value);
    const h = Buffer.alloc(1 + n.length + 3 + v.length);
    h[0] = n.length; n.copy(h, 1); h[1 + n.length] = 7; h.writeUInt16BE(v.length, 2 + n.length); v.copy(h, 4 + n.length);
    parts.push(h);
  }
  const hb = Buffer.concat(parts), pb = Buffer.from(payload);
  const total = 16 + hb.length + pb.length;
  const msg = Buffer.alloc(total);
  msg.writeUInt32BE(total, 0); msg.writeUInt32BE(hb.length, 4); msg.writeUInt32BE(crc32(msg.subarray(0, 8)), 8);
  hb.copy(msg, 12); pb.copy(msg, 12 + hb.length);
  msg.writeUInt32BE(crc32(msg.subarray(0, total - 4)), total - 4);
  return msg;
}
const event = (type, body) => frame({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(body));

function plan(messages) {
  const last = messages?.at(-1);
  const results = (last?.content ?? []).filter((b) => b.toolResult).map((b) => b.toolResult.content?.[0]?.text ?? '');
  if (results.length) return { text: 'Tool results: ' + results.join(' | '), calls: [] };
  const text = (last?.content ?? []).map((b) => b.text ?? '').join('');
  const calls = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^call (\S+) (.*)$/);
    if (m) calls.push({ toolUseId: `tooluse_${calls.length + 1}`, name: m[1], input: JSON.parse(m[2]) });
  }
  return calls.length ? { text: '', calls } : { text: `Bedrock says: ${text}`, calls: [] };
}

export async function startFakeBedrock({ secret, bearerKeys = [] }) {
  const state = { requests: [] };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let body = null;
      try { body = JSON.parse(raw.toString()); } catch { /* raw */ }
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const sig = bearer !== undefined
        ? { ok: bearerKeys.includes(bearer), bearer, why: 'API key not valid' }
        : expectedSignature(req, raw, secret);
      const record = { method: req.method, url: req.url, headers: req.headers, body, sig };
      state.requests.push(record);
      const m = /^\/model\/([^/]+)\/(converse|converse-stream|invoke)$/.exec(req.url);
      const json = (status, o, extra = {}) => { res.writeHead(status, { 'content-type': 'application/json', ...extra }); res.end(JSON.stringify(o)); };
      if (!sig.ok) return json(403, { message: `The request signature we calculated does not match the signature you provided (${sig.why}).` }, { 'x-amzn-errortype': 'InvalidSignatureException' });
      if (!m) return json(404, { message: 'unknown operation' });
      const model = decodeURIComponent(m[1]);
      if (model === 'throttled') return json(429, { message: 'Too many requests, please wait before trying again.' }, { 'retry-after': '2' });
      // InvokeModel with the embedding models' bodies (Titan: one text; Cohere: a list).
      if (m[2] === 'invoke') {
        if (model.startsWith('amazon.titan-embed') && typeof body?.inputText === 'string')
          return json(200, { embedding: [body.inputText.length, body.dimensions ?? 1024, 0.5], inputTextTokenCount: body.inputText.split(' ').length });
        if (model.startsWith('cohere.embed') && Array.isArray(body?.texts) && body.input_type)
          return json(200, { id: 'e1', texts: body.texts, embeddings: body.texts.map((t, i) => [i, t.length]), response_type: 'embeddings_floats' });
        return json(400, { message: 'Malformed input request: required key [inputText] not found' }, { 'x-amzn-errortype': 'ValidationException' });
      }
      const p = plan(body?.messages);
      const usage = { inputTokens: 11, outputTokens: 7, totalTokens: 18 };
      if (m[2] === 'converse') {
        const content = [];
        if (p.text) content.push({ text: p.text });
        for (const c of p.calls) content.push({ toolUse: c });
        return json(200, { output: { message: { role: 'assistant', content } }, stopReason: p.calls.length ? 'tool_use' : 'end_turn', usage, metrics: { latencyMs: 5 } });
      }
      res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
      const out = [event('messageStart', { role: 'assistant', p: 'abcdefghijklmnop' })];
      let index = 0;
      if (p.text) {
        const half = Math.ceil(p.text.length / 2);
        out.push(event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: p.text.slice(0, half) } }));
        out.push(event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: p.text.slice(half) } }));
        out.push(event('contentBlockStop', { contentBlockIndex: 0 }));
        index = 1;
      }
      for (const c of p.calls) {
        out.push(event('contentBlockStart', { contentBlockIndex: index, start: { toolUse: { toolUseId: c.toolUseId, name: c.name } } }));
        const args = JSON.stringify(c.input);
        out.push(event('contentBlockDelta', { contentBlockIndex: index, delta: { toolUse: { input: args.slice(0, 3) } } }));
        out.push(event('contentBlockDelta', { contentBlockIndex: index, delta: { toolUse: { input: args.slice(3) } } }));
        out.push(event('contentBlockStop', { contentBlockIndex: index }));
        index++;
      }
      out.push(event('messageStop', { stopReason: p.calls.length ? 'tool_use' : 'end_turn' }));
      out.push(event('metadata', { usage, metrics: { latencyMs: 5 } }));
      // Frames split across writes at odd places, as TCP may deliver them.
      const all = Buffer.concat(out);
      for (let i = 0; i < all.length; i += 37) res.write(all.subarray(i, i + 37));
      res.end();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    state, port, url: `http://127.0.0.1:${port}`,
    lastRequest: () => state.requests.at(-1),
    close: async () => { for (const s of sockets) s.destroy(); await new Promise((q) => server.close(q)); },
  };
}
