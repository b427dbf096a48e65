// A fake Google OAuth token endpoint and Vertex AI upstream in one server, written from Google's
// documentation. It makes its own RSA key pair and hands out service-account credentials for it.
// POST /token takes the RS256 JWT assertion of the service-account flow (RFC 7523), checks its
// header, claims and signature with the public key, and issues opaque access tokens; the upstream
// answers only requests that carry one of them. Gemini (and embedding) models answer at the google
// publisher's generateContent / streamGenerateContent / predict; Claude models at the anthropic
// publisher's rawPredict / streamRawPredict, whose bodies carry anthropic_version and no model. Like
// the other fakes, a user line "call NAME {json}" becomes a tool call and tool results are echoed
// back ("Tool results: a | b"); model "gemini-429" is throttled.
import http from 'node:http';
import { generateKeyPairSync, verify, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { anthropicEvents } from './fake_native.mjs';

const jwtBearer = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const cloudPlatform = 'https://www.googleapis.com/auth/cloud-platform';
const email = 'toolgate-test@test-project.iam.gserviceaccount.com';
const project = 'test-project';

// The agent behaviour every fake shares: tool results are echoed, "call NAME {json}" lines become
// calls, anything else is answered with `plain(text)`.
function plan(text, results, plain) {
  if (results) return { text: 'Tool results: ' + results.join(' | '), calls: [] };
  const calls = [];
  for (const line of (text ?? '').split('\n')) {
    const m = line.match(/^call (\S+) (.*)$/);
    if (m) calls.push({ name: m[1], args: JSON.parse(m[2]) });
  }
  return calls.length ? { text: '', calls } : { text: plain(text), calls: [] };
}

// One base64url JWT segment (no padding allowed) as JSON; null if it is not one.
function segment(s) {
  if (!/^[A-Za-z0-9_-]+$/.test(s)) return null;
  try { return JSON.parse(Buffer.from(s, 'base64url').toString('utf8')); } catch { return null; }
}

// Why the token request is refused, or '' when it is good. Fills in `record` as it goes.
function checkAssertion(form, contentType, publicKey, tokenUri, record) {
  if (!/^application\/x-www-form-urlencoded\b/i.test(contentType ?? '')) return ['invalid_request', `content-type '${contentType}' is not application/x-www-form-urlencoded`];
  const p = new URLSearchParams(form);
  if (p.get('grant_type') !== jwtBearer) return ['unsupported_grant_type', `Invalid grant_type: ${p.get('grant_type')}`];
  const assertion = p.get('assertion') ?? '';
  record.assertion = assertion;
  const parts = assertion.split('.');
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[2])) return ['invalid_grant', 'Invalid JWT: not three base64url segments without padding'];
  const header = segment(parts[0]), claims = segment(parts[1]);
  record.header = header;
  record.claims = claims;
  if (!header || !claims) return ['invalid_grant', 'Invalid JWT: a segment is not base64url JSON'];
  if (header.alg !== 'RS256' || header.typ !== 'JWT' || header.kid !== 'kid-1') return ['invalid_grant', `Invalid JWT header: ${JSON.stringify(header)}`];
  if (claims.iss !== email) return ['invalid_grant', `Invalid grant: account not found (iss ${claims.iss})`];
  if (claims.aud !== tokenUri) return ['invalid_grant', `Invalid JWT: Failed audience check (aud ${claims.aud})`];
  if (claims.scope !== cloudPlatform) return ['invalid_scope', `Invalid OAuth scope: ${claims.scope}`];
  const now = Date.now() / 1000;
  if (!Number.isInteger(claims.iat) || Math.abs(claims.iat - now) > 120 || claims.exp - claims.iat !== 3600)
    return ['invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.'];
  if (!verify('RSA-SHA256', Buffer.from(parts[0] + '.' + parts[1]), publicKey, Buffer.from(parts[2], 'base64url'))) return ['invalid_grant', 'Invalid JWT Signature.'];
  return null;
}

const googleError = (code, status, message) => ({ error: { code, message, status } });
const anthropicError = (message) => ({ type: 'error', error: { type: 'invalid_request_error', message } });

// /v1/projects/P/locations/L/publishers/X/models/M:method[?query], the model percent-decoded.
const routeRe = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/(google|anthropic)\/models\/([^/:?]+):(\w+)(?:\?(.*))?$/;
const methods = { google: ['generateContent', 'streamGenerateContent', 'predict'], anthropic: ['rawPredict', 'streamRawPredict'] };
function route(url) {
  const m = routeRe.exec(url);
  if (!m) return null;
  const [, proj, location, publisher, rawModel, method, query = ''] = m;
  if (!methods[publisher].includes(method)) return null;
  if (method === 'streamGenerateContent' ? query !== 'alt=sse' : query !== '') return null;
  let model;
  try { model = decodeURIComponent(rawModel); } catch { return null; }
  return { project: proj, location, publisher, model, rawModel, method };
}

export async function startFakeVertex(opts = {}) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const state = { requests: [], exchanges: [] };
  const issued = new Set();
  const sockets = new Set();
  const timers = new Set();
  let lifetime = opts.tokenLifetime ?? 3599;
  let tokenDelayMs = opts.tokenDelayMs ?? 0;
  let files = 0;
  let port = 0;
  const tokenUri = () => `http://127.0.0.1:${port}/token`;
  const later = (ms, fn) => { const t = setTimeout(() => { timers.delete(t); fn(); }, ms); timers.add(t); };

  function token(req, res, raw, json) {
    const record = { ok: false, why: '', claims: null, header: null };
    state.exchanges.push(record);
    const bad = checkAssertion(raw, req.headers['content-type'], publicKey, tokenUri(), record);
    const answer = () => {
      if (res.destroyed) return;
      if (bad) {
        record.why = bad[1];
        return json(400, { error: bad[0], error_description: bad[1] });
      }
      record.ok = true;
      record.token = `ya29.fake-${state.exchanges.length}-${randomBytes(12).toString('hex')}`;
      issued.add(record.token);
      json(200, { access_token: record.token, expires_in: lifetime, token_type: 'Bearer' });
    };
    if (tokenDelayMs > 0) later(tokenDelayMs, answer); else answer();
  }

  function gemini(r, body, res, json, record) {
    if (!Array.isArray(body?.contents) || !body.contents.length || !body.contents.every((c) => Array.isArray(c?.parts)))
      return json(400, googleError(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument: contents must be a non-empty list of {role, parts}.'));
    // The API parses bodies strictly: JSON Schema keywords outside its Schema subset are refused.
    const unknown = JSON.stringify(body.tools ?? []).match(/"(\$schema|additionalProperties|exclusiveMinimum|default)"/);
    if (unknown) return json(400, googleError(400, 'INVALID_ARGUMENT', `Invalid JSON payload received. Unknown name "${unknown[1]}"`));
    const last = body.contents.at(-1);
    const responses = last.parts.filter((p) => p.functionResponse);
    const results = responses.length ? responses.map((p) => p.functionResponse.response?.result ?? JSON.stringify(p.functionResponse.response)) : null;
    const text = last.parts.filter((p) => p.text !== undefined).map((p) => p.text).join('\n');
    const p = plan(text, results, (t) => `Vertex Gemini says: ${t}`);
    const parts = [];
    if (p.text) parts.push({ text: p.text });
    for (const c of p.calls) parts.push({ functionCall: { name: c.name, args: c.args } });
    const usageMetadata = { promptTokenCount: 11, candidatesTokenCount: 7, totalTokenCount: 18 };
    const n = state.requests.length;
    const meta = { modelVersion: r.model, responseId: `vresp${n}` };
    if (r.method === 'generateContent')
      return json(200, { candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }], usageMetadata, ...meta });
    // Text in word pieces, each function call whole, then the finish with the usage.
    const out = [];
    if (p.text) for (const w of p.text.split(/(?= )/)) out.push({ candidates: [{ content: { role: 'model', parts: [{ text: w }] }, index: 0 }], ...meta });
    for (const c of p.calls) out.push({ candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: c.name, args: c.args } }] }, index: 0 }], ...meta });
    out.push({ candidates: [{ content: { role: 'model', parts: [] }, finishReason: 'STOP', index: 0 }], usageMetadata, ...meta });
    record.status = 200;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    drip(res, out.map((o) => `data: ${JSON.stringify(o)}\r\n\r\n`));
  }

  function predict(body, json) {
    const instances = body?.instances;
    if (!Array.isArray(instances) || !instances.length || !instances.every((x) => typeof x?.content === 'string'))
      return json(400, googleError(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument: instances must be a non-empty list of {content}.'));
    return json(200, {
      predictions: instances.map((x, i) => ({ embeddings: { values: [i, x.content.length, 0.25], statistics: { token_count: x.content.length, truncated: false } } })),
      metadata: { billableCharacterCount: instances.reduce((n, x) => n + x.content.length, 0) },
    });
  }

  function claude(r, req, body, res, json, record) {
    // Vertex authenticates with the OAuth token and versions the API in the body.
    if (req.headers['x-api-key'] !== undefined) return json(400, anthropicError('x-api-key: Vertex AI does not take an API key header'));
    if (req.headers['anthropic-version'] !== undefined) return json(400, anthropicError('anthropic-version: Vertex AI takes anthropic_version in the body, not as a header'));
    if (body?.anthropic_version !== 'vertex-2023-10-16') return json(400, anthropicError(`anthropic_version: expected 'vertex-2023-10-16', got ${JSON.stringify(body?.anthropic_version)}`));
    if (body.model !== undefined) return json(400, anthropicError('model: Extra inputs are not permitted (the model is named in the URL)'));
    const streaming = r.method === 'streamRawPredict';
    if ((body.stream === true) !== streaming) return json(400, anthropicError(`stream: must be ${streaming} for ${r.method}`));
    if (!body.max_tokens) return json(400, anthropicError('max_tokens: Field required'));
    const msgs = body.messages;
    if (!Array.isArray(msgs) || !msgs.length) return json(400, anthropicError('messages: Field required'));
    for (let i = 0; i < msgs.length; i++)
      if (msgs[i].role !== (i % 2 ? 'assistant' : 'user')) return json(400, anthropicError('messages: roles must alternate between "user" and "assistant"'));
    const blocks = (m) => (typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content);
    const last = blocks(msgs.at(-1));
    // Tool results since the last plain user turn, in order.
    let results = null;
    if (last.some((b) => b.type === 'tool_result')) {
      results = [];
      for (let i = msgs.length - 1; i >= 0; i--) {
        const bs = blocks(msgs[i]);
        if (msgs[i].role !== 'user' || !bs.some((b) => b.type === 'tool_result')) break;
        results.unshift(...bs.filter((b) => b.type === 'tool_result').map((b) => (typeof b.content === 'string' ? b.content : b.content.map((x) => x.text).join(''))));
      }
    }
    const p = plan(last.filter((b) => b.type === 'text').map((b) => b.text).join('\n'), results, (t) => `Vertex Claude says: ${t}`);
    const n = state.requests.length;
    const content = [];
    if (p.text) content.push({ type: 'text', text: p.text });
    p.calls.forEach((c, i) => content.push({ type: 'tool_use', id: `toolu_v${n}_${i}`, name: c.name, input: c.args }));
    const stop = p.calls.length ? 'tool_use' : 'end_turn';
    const id = `msg_vrtx_${n}`;
    if (!streaming)
      return json(200, { id, type: 'message', role: 'assistant', model: r.model, content, stop_reason: stop, stop_sequence: null, usage: { input_tokens: 11, output_tokens: 7 } });
    const out = anthropicEvents({ id, model: r.model, content, stop });
    record.status = 200;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    drip(res, out);
  }

  // Writes a stream's pieces a few milliseconds apart, so that they arrive in separate reads.
  function drip(res, pieces) {
    let i = 0;
    const step = () => {
      if (res.destroyed) return;
      if (i < pieces.length) { res.write(pieces[i++]); later(2, step); } else res.end();
    };
    step();
  }

  function upstream(req, res, raw, json) {
    let body = null;
    try { body = JSON.parse(raw); } catch { /* kept raw */ }
    const r = route(req.url);
    const record = { method: req.method, url: req.url, headers: req.headers, body, route: r, status: 0 };
    state.requests.push(record);
    const answer = (status, o, extra) => { record.status = status; json(status, o, extra); };
    if (req.method !== 'POST' || !r)
      return answer(404, googleError(404, 'NOT_FOUND', `The requested URL ${req.method} ${req.url.split('?')[0]} was not found on this server.`));
    const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!auth || !issued.has(auth[1]))
      return answer(401, googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token.'));
    if (r.project !== project)
      return answer(403, googleError(403, 'PERMISSION_DENIED', `Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/${r.project}/locations/${r.location}/publishers/${r.publisher}/models/${r.model}' (or it may not exist).`));
    if (body === null) return answer(400, googleError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.'));
    if (r.model === 'gemini-429')
      return answer(429, googleError(429, 'RESOURCE_EXHAUSTED', 'Resource exhausted. Please try again later.'), { 'retry-after': '3' });
    if (r.publisher === 'anthropic') return claude(r, req, body, res, answer, record);
    if (r.method === 'predict') return predict(body, answer);
    return gemini(r, body, res, answer, record);
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const json = (status, o, extra = {}) => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...extra });
        res.end(JSON.stringify(o));
      };
      if (req.method === 'POST' && req.url === '/token') return token(req, res, raw, json);
      upstream(req, res, raw, json);
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;

  const credentials = (overrides = {}) => ({
    type: 'service_account', project_id: project, private_key_id: 'kid-1', private_key: pem,
    client_email: email, client_id: '1234', token_uri: tokenUri(), ...overrides,
  });
  return {
    state, issued, port, email,
    url: `http://127.0.0.1:${port}/v1`,
    tokenUri: tokenUri(),
    credentials,
    // Writes credentials(overrides) to a new file in `dir`; returns its path.
    writeCredentials: (dir, overrides) => {
      const file = join(dir, `service-account-${++files}.json`);
      writeFileSync(file, JSON.stringify(credentials(overrides), null, 2), { mode: 0o600 });
      return file;
    },
    lastRequest: () => state.requests.at(-1),
    // Every token issued so far stops working: the next upstream call with one gets 401.
    revokeAll: () => issued.clear(),
    setTokenLifetime: (seconds) => { lifetime = seconds; },
    // Token answers wait this long (0: none), to widen the window in which requests overlap.
    setTokenDelay: (ms) => { tokenDelayMs = ms; },
    close: async () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise((q) => server.close(q));
    },
  };
}
