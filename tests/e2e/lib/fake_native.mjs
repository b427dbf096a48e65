// Fake Anthropic-shaped and Gemini-shaped upstreams for tests, written from the providers' API
// documentation. Their "agent" models behave like fake_upstream.mjs's mock-agent (a user line
// "call NAME {json}" becomes a tool call; after tool results they answer "Tool results: a | b"),
// so an agent loop through any adapter must end with the same answer.
import http from 'node:http';

// An Anthropic Messages stream of `content` blocks as SSE events: message_start, ping, each block
// (text word by word, tool input in three fragments), then message_delta and message_stop, or
// `error` instead of those two when given.
export function anthropicEvents({ id, model, content, stop, error = null }) {
  const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const out = [ev('message_start', { message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null,
    stop_sequence: null, usage: { input_tokens: 11, output_tokens: 1 } } }), ev('ping', {})];
  content.forEach((b, index) => {
    if (b.type === 'text') {
      out.push(ev('content_block_start', { index, content_block: { type: 'text', text: '' } }));
      for (const w of b.text.split(/(?= )/)) out.push(ev('content_block_delta', { index, delta: { type: 'text_delta', text: w } }));
    } else {
      out.push(ev('content_block_start', { index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } }));
      const a = JSON.stringify(b.input), step = Math.max(1, Math.ceil(a.length / 3));
      for (let q = 0; q < a.length; q += step) out.push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: a.slice(q, q + step) } }));
    }
    out.push(ev('content_block_stop', { index }));
  });
  if (error) {
    out.push(ev('error', { error }));
    return out;
  }
  out.push(ev('message_delta', { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 7 } }));
  out.push(ev('message_stop', {}));
  return out;
}

function plan(lastUserText, toolResults) {
  if (toolResults) return { content: 'Tool results: ' + toolResults.join(' | '), calls: [] };
  const calls = [];
  for (const line of (lastUserText ?? '').split('\n')) {
    const m = line.match(/^call (\S+) (.*)$/);
    if (m) calls.push({ name: m[1], args: JSON.parse(m[2]) });
  }
  return calls.length ? { content: null, calls } : { content: `no tools needed: ${lastUserText}`, calls: [] };
}

function serve(handler) {
  const state = { requests: [] };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let json = null;
      try { json = JSON.parse(body); } catch { /* raw */ }
      const record = { method: req.method, url: req.url, headers: req.headers, body: json };
      state.requests.push(record);
      handler(req, res, json, record);
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    r({
      state, port,
      lastRequest: () => state.requests[state.requests.length - 1],
      close: async () => { for (const s of sockets) s.destroy(); await new Promise((q) => server.close(q)); },
    });
  }));
}

const sendJson = (res, status, obj, headers = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(obj));
};

export async function startFakeAnthropic() {
  const srv = await serve((req, res, body) => {
    if (req.url !== '/v1/messages' || req.method !== 'POST') return sendJson(res, 404, { type: 'error', error: { type: 'not_found_error', message: 'no such route' } });
    if (req.headers['x-api-key'] !== 'sk-ant-fake' || !req.headers['anthropic-version'])
      return sendJson(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } });
    if (!body?.max_tokens) return sendJson(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } });
    // As the real API: roles alternate, starting with the user.
    for (let i = 0; i < body.messages.length; i++)
      if (body.messages[i].role !== (i % 2 ? 'assistant' : 'user'))
        return sendJson(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: 'messages: roles must alternate between "user" and "assistant"' } });
    if (body.model === 'claude-429') return sendJson(res, 429, { type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } }, { 'retry-after': '7' });
    const msgs = body.messages;
    const last = msgs[msgs.length - 1];
    const blocks = typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : last.content;
    // Tool results since the last plain user turn, in order.
    let results = null;
    if (blocks.some((b) => b.type === 'tool_result')) {
      results = [];
      for (let i = msgs.length - 1; i >= 0; i--) {
        const c = msgs[i].content;
        if (msgs[i].role !== 'user' || typeof c === 'string' || !c.some((b) => b.type === 'tool_result')) break;
        results.unshift(...c.filter((b) => b.type === 'tool_result').map((b) => (typeof b.content === 'string' ? b.content : b.content.map((x) => x.text).join(''))));
      }
    }
    const text = blocks.filter((b) => b.type === 'text').map((b) => b.text).join('\n');
    const p = plan(text, results);
    const n = srv.state.requests.length;
    const content = [];
    if (p.content) content.push({ type: 'text', text: p.content });
    p.calls.forEach((c, i) => content.push({ type: 'tool_use', id: `toolu_${n}_${i}`, name: c.name, input: c.args }));
    const stop = p.calls.length ? 'tool_use' : 'end_turn';
    const id = `msg_fake_${n}`;
    if (!body.stream) {
      return sendJson(res, 200, { id, type: 'message', role: 'assistant', model: body.model, content, stop_reason: stop, stop_sequence: null,
        usage: { input_tokens: 11, output_tokens: 7 } });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const overloaded = body.model === 'claude-overloaded-stream';
    const out = anthropicEvents({ id, model: body.model, content, stop,
      error: overloaded ? { type: 'overloaded_error', message: 'Overloaded' } : null });
    if (overloaded) return res.end(out.join(''));
    let i = 0;
    const step = () => { if (res.destroyed) return; if (i < out.length) { res.write(out[i++]); setTimeout(step, 2); } else res.end(); };
    step();
  });
  srv.url = `http://127.0.0.1:${srv.port}/v1`;
  return srv;
}

export async function startFakeGemini() {
  const srv = await serve((req, res, body) => {
    const m = req.url.match(/^\/v1beta\/models\/([^:/?]+):(generateContent|streamGenerateContent\?alt=sse|batchEmbedContents|predict)$/);
    if (!m || req.method !== 'POST') return sendJson(res, 404, { error: { code: 404, message: 'not found', status: 'NOT_FOUND' } });
    if (req.headers['x-goog-api-key'] !== 'gm-fake') return sendJson(res, 400, { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT' } });
    const [, model, method] = m;
    // Images: Imagen's :predict answers sampleCount images; a Gemini image model answers text and
    // an inline image. The bytes are the prompt, so a test can tell them apart.
    if (method === 'predict') {
      if (!model.startsWith('imagen')) return sendJson(res, 400, { error: { code: 400, message: 'predict is for Imagen', status: 'INVALID_ARGUMENT' } });
      const prompt = body.instances?.[0]?.prompt ?? '';
      if (prompt.includes('forbidden')) return sendJson(res, 200, {});  // all filtered out, as Imagen does
      return sendJson(res, 200, { predictions: Array.from({ length: body.parameters?.sampleCount ?? 1 },
        (_, i) => ({ mimeType: 'image/png', bytesBase64Encoded: Buffer.from(`${prompt}#${i}|${body.parameters?.aspectRatio ?? ''}`).toString('base64') })) });
    }
    if (model.includes('-image') && method === 'generateContent') {
      const prompt = body.contents?.[0]?.parts?.[0]?.text ?? '';
      if (!body.generationConfig?.responseModalities?.includes('IMAGE'))
        return sendJson(res, 400, { error: { code: 400, message: 'responseModalities must include IMAGE', status: 'INVALID_ARGUMENT' } });
      return sendJson(res, 200, { candidates: [{ content: { role: 'model', parts: [{ text: 'Here it is.' },
        { inlineData: { mimeType: 'image/png', data: Buffer.from(`${prompt}#gemini`).toString('base64') } }] }, finishReason: 'STOP', index: 0 }],
        usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 1290, totalTokenCount: 1295 } });
    }
    if (method === 'batchEmbedContents')
      return sendJson(res, 200, { embeddings: body.requests.map((r, i) => ({ values: [i, r.content.parts[0].text.length, 0.5] })) });
    // As the real API: JSON Schema keywords outside Gemini's Schema subset are rejected.
    const bad = JSON.stringify(body.tools ?? []).match(/"(\$schema|additionalProperties|exclusiveMinimum|default)"/);
    if (bad) return sendJson(res, 400, { error: { code: 400, message: `Invalid JSON payload received. Unknown name "${bad[1]}"`, status: 'INVALID_ARGUMENT' } });
    if (model === 'gemini-blocked') return sendJson(res, 200, { promptFeedback: { blockReason: 'SAFETY' } });
    const contents = body.contents;
    const last = contents[contents.length - 1];
    let results = null;
    if (last.parts.some((p) => p.functionResponse)) {
      results = last.parts.filter((p) => p.functionResponse).map((p) => p.functionResponse.response.result ?? JSON.stringify(p.functionResponse.response));
    }
    const text = last.parts.filter((p) => p.text !== undefined).map((p) => p.text).join('\n');
    const pl = plan(text, results);
    const parts = [];
    if (pl.content) parts.push({ text: pl.content });
    for (const c of pl.calls) parts.push({ functionCall: { name: c.name, args: c.args } });
    const usageMetadata = { promptTokenCount: 11, candidatesTokenCount: 7, totalTokenCount: 18 };
    const n = srv.state.requests.length;
    if (!method.startsWith('stream'))
      return sendJson(res, 200, { candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }], usageMetadata, modelVersion: model, responseId: `resp${n}` });
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const out = [];
    // Text in word pieces, then each function call whole, then the finish with usage.
    if (pl.content) for (const w of pl.content.split(/(?= )/)) out.push({ candidates: [{ content: { role: 'model', parts: [{ text: w }] }, index: 0 }], modelVersion: model, responseId: `resp${n}` });
    for (const c of pl.calls) out.push({ candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: c.name, args: c.args } }] }, index: 0 }], modelVersion: model, responseId: `resp${n}` });
    out.push({ candidates: [{ content: { role: 'model', parts: [] }, finishReason: 'STOP', index: 0 }], usageMetadata, modelVersion: model, responseId: `resp${n}` });
    let i = 0;
    const step = () => { if (res.destroyed) return; if (i < out.length) { res.write(`data: ${JSON.stringify(out[i++])}\r\n\r\n`); setTimeout(step, 2); } else res.end(); };
    step();
  });
  srv.url = `http://127.0.0.1:${srv.port}/v1beta`;
  return srv;
}
