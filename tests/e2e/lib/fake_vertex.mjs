// A fake Google OAuth token endpoint and Vertex AI upstream in one server, written from Google's
// documentation. The token endpoint takes the service account's RS256 JWT assertion (RFC 7523),
// checks its header, claims and signature with the account's public key, and issues opaque access
// tokens; the upstream accepts only those tokens. Gemini models answer at the google publisher's
// generateContent / streamGenerateContent / predict; Claude models at the anthropic publisher's
// rawPredict / streamRawPredict, whose bodies carry anthropic_version and no model. Like the other
// fakes, a user line "call NAME {json}" becomes a tool call, and tool results are echoed back.
import http from 'node:http';
import { generateKeyPairSync, verify, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const b64url = (s) => Buffer.from(s, 'base64url');

function plan(text, results) {
  if (results) return { text: 'Tool results: ' + results.join(' | '), calls: [] };
  const calls = [];
  for (const line of (text ?? '').split('\n')) {
    const m = line.match(/^call (\S+) (.*)$/);
    if (m) calls.push({ name: m[1], args: JSON.parse(m[2]) });
  }
  return { text: calls.length ? '' : text, calls };
}

export async function startFakeVertex() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const state = { requests: [], exchanges: [] };
  const issued = new Set();
  const sockets = new Set();
  let port = 0;
  const email = 'toolgate-test@test-project.iam.gserviceaccount.com';
  const tokenUri = () => `http://127.0.0.1:${port}/token`;

  function exchange(form) {
    const p = new URLSearchParams(form);
    if (p.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return 'unsupported grant_type';
    const parts = (p.get('assertion') ?? '').split('.');
    if (parts.length !== 3) return 'not a JWT';
    const header = JSON.parse(b64url(parts[0])), claims = JSON.parse(b64url(parts[1]));
    state.exchanges.at(-1).claims = claims;
    if (header.alg !== 'RS256' || header.typ !== 'JWT' || header.kid !== 'kid-1') return 'bad header ' + JSON.stringify(header);
    if (claims.iss !== email || claims.aud !== tokenUri() || claims.scope !== 'https://www.googleapis.com/auth/cloud-platform') return 'bad claims';
    if (Math.abs(claims.iat - Date.now() / 1000) > 120 || claims.exp - claims.iat !== 3600) return 'bad times';
    if (!verify('RSA-SHA256', Buffer.from(parts[0] + '.' + parts[1]), publicKey, b64url(parts[2]))) return 'Invalid JWT Signature.';
    return null;
  }

  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const json = (status, o, extra = {}) => { res.writeHead(status, { 'content-type': 'application/json', ...extra }); res.end(JSON.stringify(o)); };
      if (req.url === '/token') {
        state.exchanges.push({ ok: false });
        const why = exchange(raw);
        if (why) { state.exchanges.at(-1).why = why; return json(400, { error: 'invalid_grant', error_description: why }); }
        const token = `ya29.fake-${state.exchanges.length}-${randomBytes(8).toString('hex')}`;
        issued.add(token);
        state.exchanges.at(-1).ok = true;
        return json(200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
      }
      let body = null;
      try { body = JSON.parse(raw); } catch { /* raw */ }
      state.requests.push({ url: req.url, headers: req.headers, body });
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!auth || !issued.has(auth[1]))
        return json(401, { error: { code: 401, message: 'Request had invalid authentication credentials. Expected OAuth 2 access token.', status: 'UNAUTHENTICATED' } });
      const m = /^\/v1\/projects\/test-project\/locations\/us-central1\/publishers\/(google|anthropic)\/models\/([^:/]+):(\w+)(\?alt=sse)?$/.exec(req.url);
      if (!m) return json(404, { error: { code: 404, message: 'not found: ' + req.url, status: 'NOT_FOUND' } });
      const [, publisher, rawModel, method] = m;
      const model = decodeURIComponent(rawModel);
      if (model === 'gemini-429') return json(429, { error: { code: 429, message: 'Resource exhausted. Please try again later.', status: 'RESOURCE_EXHAUSTED' } }, { 'retry-after': '3' });
      if (publisher === 'google' && method === 'predict')
        return json(200, { predictions: body.instances.map((x, i) => ({ embeddings: { values: [i, x.content.length, 0.25], statistics: { token_count: x.content.length, truncated: false } } })) });
      if (publisher === 'google') {
        const last = body.contents.at(-1);
        const results = last.parts.some((p) => p.functionResponse) ? last.parts.filter((p) => p.functionResponse).map((p) => p.functionResponse.response.result ?? JSON.stringify(p.functionResponse.response)) : null;
        const pl = plan(last.parts.map((p) => p.text ?? '').join(''), results);
        const parts = [];
        if (pl.text) parts.push({ text: results ? pl.text : `Vertex Gemini says: ${pl.text}` });
        for (const c of pl.calls) parts.push({ functionCall: { name: c.name, args: c.args } });
        const usageMetadata = { promptTokenCount: 11, candidatesTokenCount: 7, totalTokenCount: 18 };
        if (method === 'generateContent') return json(200, { candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }], usageMetadata });
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const p of parts) res.write(`data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts: [p] }, index: 0 }] })}\r\n\r\n`);
        return res.end(`data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts: [] }, finishReason: 'STOP', index: 0 }], usageMetadata })}\r\n\r\n`);
      }
      // Claude on Vertex: Anthropic's Messages API, the model in the path.
      if (body?.anthropic_version !== 'vertex-2023-10-16' || body.model !== undefined || req.headers['x-api-key'] || req.headers['anthropic-version'])
        return json(400, { type: 'error', error: { type: 'invalid_request_error', message: 'not a Vertex request' } });
      const last = body.messages.at(-1);
      const blocks = typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : last.content;
      const tr = blocks.filter((b) => b.type === 'tool_result');
      const pl = plan(blocks.filter((b) => b.type === 'text').map((b) => b.text).join(''), tr.length ? tr.map((b) => (typeof b.content === 'string' ? b.content : b.content.map((x) => x.text).join(''))) : null);
      const content = [];
      if (pl.text) content.push({ type: 'text', text: tr.length ? pl.text : `Vertex Claude says: ${pl.text}` });
      pl.calls.forEach((c, i) => content.push({ type: 'tool_use', id: `toolu_${i}`, name: c.name, input: c.args }));
      const stop = pl.calls.length ? 'tool_use' : 'end_turn';
      if (method === 'rawPredict')
        return json(200, { id: 'msg_v', type: 'message', role: 'assistant', model, content, stop_reason: stop, usage: { input_tokens: 11, output_tokens: 7 } });
      if (method !== 'streamRawPredict' || body.stream !== true) return json(404, { error: { code: 404, message: 'no such method', status: 'NOT_FOUND' } });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const ev = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
      ev('message_start', { message: { id: 'msg_v', type: 'message', role: 'assistant', model, content: [], usage: { input_tokens: 11, output_tokens: 1 } } });
      content.forEach((b, index) => {
        if (b.type === 'text') {
          ev('content_block_start', { index, content_block: { type: 'text', text: '' } });
          for (const w of b.text.split(/(?= )/)) ev('content_block_delta', { index, delta: { type: 'text_delta', text: w } });
        } else {
          ev('content_block_start', { index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } });
          ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(b.input) } });
        }
        ev('content_block_stop', { index });
      });
      ev('message_delta', { delta: { stop_reason: stop }, usage: { output_tokens: 7 } });
      ev('message_stop', {});
      res.end();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;
  const credentials = (over = {}) => ({ type: 'service_account', project_id: 'test-project', private_key_id: 'kid-1', private_key: pem,
    client_email: email, client_id: '1234', token_uri: tokenUri(), ...over });
  return {
    state, issued, pem, url: `http://127.0.0.1:${port}/v1`, tokenUri: tokenUri(),
    credentials,
    writeCredentials: (dir, name, over) => { const f = join(dir, name); writeFileSync(f, JSON.stringify(credentials(over))); return f; },
    revokeAll: () => issued.clear(),
    lastRequest: () => state.requests.at(-1),
    close: async () => { for (const s of sockets) s.destroy(); await new Promise((q) => server.close(q)); },
  };
}
