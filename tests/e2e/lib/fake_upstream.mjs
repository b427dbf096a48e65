// A fake OpenAI-compatible upstream for tests, run in the test process so the test can see exactly
// what the gateway sent and when it hung up. The model name picks the behaviour.
//
// Opt-in: startFakeUpstream({ intercept }) calls intercept(record) for each request (record.body is
// the parsed JSON); a number or { status, headers, body } answers with that status and an
// OpenAI-shaped error instead of the normal behaviour; { stream: [pieces] } streams those content
// deltas (then finish and [DONE]); { hang: true } never answers; undefined keeps the normal behaviour.
// record.intercepted is set when it did. Without the option nothing changes.
import http from 'node:http';

export async function startFakeUpstream({ intercept = null } = {}) {
  const state = { requests: [], connections: 0, closedEarly: 0, activeStreams: 0 };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => handle(req, res, body));
  });
  server.keepAliveTimeout = 30000;
  server.on('connection', (s) => {
    state.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const completion = (model, content, extra = {}) => ({
    id: 'chatcmpl-fake', object: 'chat.completion', created: 1, model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }, ...extra,
  });
  const chunk = (model, delta, finish = null) => ({
    id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  });

  function handle(req, res, body) {
    let json = null;
    try { json = JSON.parse(body); } catch { /* keep raw */ }
    const record = { method: req.method, url: req.url, headers: req.headers, body: json, raw: body, closed: false };
    state.requests.push(record);
    res.on('close', () => { if (!res.writableEnded) { record.closed = true; state.closedEarly++; } });
    if (intercept) {
      let a = intercept(record);
      if (typeof a === 'number') a = { status: a };
      if (a && a.hang) { record.intercepted = 'hang'; return; }  // never answers
      if (a && a.stream) {
        // A scripted stream: each string of a.stream is one content delta, then finish and [DONE].
        record.intercepted = 200;
        res.setHeader('content-type', 'text/event-stream');
        const m = json?.model ?? 'fake';
        res.write(`data: ${JSON.stringify(chunk(m, { role: 'assistant', content: '' }))}\n\n`);
        for (const piece of a.stream) res.write(`data: ${JSON.stringify(chunk(m, { content: piece }))}\n\n`);
        res.write(`data: ${JSON.stringify(chunk(m, {}, 'stop'))}\n\n`);
        return res.end('data: [DONE]\n\n');
      }
      if (a) {
        record.intercepted = a.status;
        res.statusCode = a.status;
        for (const [k, v] of Object.entries(a.headers ?? {})) res.setHeader(k, v);
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify(a.body ?? { error: { message: `fake upstream says ${a.status}`, type: 'fake_error' } }));
      }
    }

    if (req.url.endsWith('/embeddings')) {
      res.setHeader('content-type', 'application/json');
      const inputs = Array.isArray(json.input) ? json.input : [json.input];
      return res.end(JSON.stringify({
        object: 'list', model: json.model,
        data: inputs.map((_, i) => ({ object: 'embedding', index: i, embedding: [0.1, 0.2, 0.3] })),
        usage: { prompt_tokens: 3, total_tokens: 3 },
      }));
    }
    const model = json?.model ?? '';
    if (model.startsWith('mock-agent')) return agent(json, res);
    const send = (status, obj) => { res.statusCode = status; res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(obj)); };
    switch (model) {
      case 'mock-500': return send(500, { error: { message: 'upstream exploded with secret detail' } });
      case 'mock-429': res.setHeader('retry-after', '7'); return send(429, { error: { message: 'slow down' } });
      case 'mock-401': return send(401, { error: { message: 'bad key' } });
      case 'mock-400': return send(400, { error: { message: 'temperature must be <= 2' } });
      case 'mock-hang': return; // never answers
      case 'mock-garbage':
        if (json.stream) {
          res.setHeader('content-type', 'text/event-stream');
          res.write(`data: ${JSON.stringify(chunk(model, { role: 'assistant', content: 'ok' }))}\n\n`);
          return res.end('data: {this is not json\n\n');
        }
        res.setHeader('content-type', 'application/json');
        return res.end('<html>definitely not json');
      default: break;
    }
    if (!json?.stream) {
      const content = model === 'mock-echo' ? JSON.stringify(json) : `reply from ${model}`;
      return send(200, completion(model, content));
    }
    res.statusCode = 200;
    res.setHeader('content-type', 'text/event-stream');
    const words = ['Hello', ' from', ' the', ' fake', ' upstream'];
    const includeUsage = json.stream_options?.include_usage === true;
    const delay = model === 'mock-slow-stream' ? 50 : model === 'mock-paced' ? 150 : 0;
    const forever = model === 'mock-slow-stream';
    state.activeStreams++;
    res.on('close', () => state.activeStreams--);
    let i = 0;
    const first = () => res.write(`data: ${JSON.stringify(chunk(model, { role: 'assistant', content: '' }))}\n\n`);
    const step = () => {
      if (res.destroyed) return;
      if (forever || i < words.length) {
        res.write(`data: ${JSON.stringify(chunk(model, { content: words[i % words.length] }))}\n\n`);
        i++;
        return delay ? setTimeout(step, delay) : step();
      }
      res.write(`data: ${JSON.stringify(chunk(model, {}, 'stop'))}\n\n`);
      if (includeUsage) {
        res.write(`data: ${JSON.stringify({ ...chunk(model, {}), choices: [], usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } })}\n\n`);
      }
      res.end('data: [DONE]\n\n');
    };
    first();
    delay ? setTimeout(step, delay) : step();
  }

  // A model that calls tools: a user line "call NAME {json}" becomes a tool call (several lines,
  // several calls in one turn); after tool messages it answers with every tool result since the
  // last user message. Streamed like real providers: tool-call arguments in three fragments.
  function agent(json, res) {
    const msgs = json.messages ?? [];
    const last = msgs[msgs.length - 1] ?? {};
    let content = null;
    const calls = [];
    if (last.role === 'tool') {
      const results = [];
      for (let i = msgs.length - 1; i >= 0 && msgs[i].role !== 'user'; i--) if (msgs[i].role === 'tool') results.unshift(msgs[i].content);
      content = 'Tool results: ' + results.join(' | ');
    } else {
      const text = typeof last.content === 'string' ? last.content : '';
      for (const line of text.split('\n')) {
        const m = line.match(/^call (\S+) (.*)$/);
        if (m) calls.push({ name: m[1], arguments: m[2] });
      }
      if (!calls.length) content = `no tools needed: ${text}`;
    }
    const n = state.requests.length;
    const toolCalls = calls.map((c, i) => ({ id: `call_${n}_${i}`, type: 'function', function: { name: c.name, arguments: c.arguments } }));
    const finish = calls.length ? 'tool_calls' : 'stop';
    const usage = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 };
    const id = `chatcmpl-agent-${n}`;
    if (!json.stream) {
      const message = { role: 'assistant', content };
      if (toolCalls.length) message.tool_calls = toolCalls;
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ id, object: 'chat.completion', created: 1, model: json.model,
        choices: [{ index: 0, message, finish_reason: finish, logprobs: null }], usage }));
    }
    res.setHeader('content-type', 'text/event-stream');
    const ev = (delta, fin = null) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1, model: json.model,
      choices: [{ index: 0, delta, finish_reason: fin, logprobs: null }] })}\n\n`;
    const out = [ev({ role: 'assistant', content: '' })];
    if (content) for (const w of content.split(/(?= )/)) out.push(ev({ content: w }));
    toolCalls.forEach((c, i) => {
      out.push(ev({ tool_calls: [{ index: i, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } }] }));
      const a = c.function.arguments, step = Math.max(1, Math.ceil(a.length / 3));
      for (let p = 0; p < a.length; p += step) out.push(ev({ tool_calls: [{ index: i, function: { arguments: a.slice(p, p + step) } }] }));
    });
    out.push(ev({}, finish));
    if (json.stream_options?.include_usage) out.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1, model: json.model, choices: [], usage })}\n\n`);
    out.push('data: [DONE]\n\n');
    if (json.model.includes('fast')) return res.end(out.join(''));  // benchmarks: no pacing
    let i = 0;
    const step = () => { if (res.destroyed) return; if (i < out.length) { res.write(out[i++]); setTimeout(step, 2); } else res.end(); };
    step();
  }

  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    state,
    port,
    url: `http://127.0.0.1:${port}/v1`,
    lastRequest: () => state.requests[state.requests.length - 1],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
