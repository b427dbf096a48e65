// A fake OpenAI-compatible upstream whose behaviour per request is scripted by the test, for the
// routing tests (fallback, retries, breakers, credentials). Runs in the test process on 127.0.0.1:0.
//
//   const a = await startFlakyUpstream('A');
//   a.script('500', '500', 'ok');   // the next three requests, in order; then the default
//   a.always(503);                  // the default once the script is used up ('ok' to begin with)
//   a.handler = (rec) => rec.auth === 'Bearer k1' ? 401 : 'ok';   // decides per request (wins over both)
//
// Actions:
//   'ok' | { ok: true, delay: ms }  the answer, with "from <name>" as its content (plain or SSE)
//   500 | '500' | { status, headers, body, delay }   that status with an OpenAI-shaped error body
//   'hang'    never answers (the socket stays open until the gateway gives up)
//   'reset'   destroys the socket before any byte of the answer (a TCP reset where Node can)
//   'cut'     streams: the role chunk and one content chunk ("partial from <name>"), then destroys
//             the socket; plain requests: like 'reset'
import http from 'node:http';
import { EventEmitter } from 'node:events';

export async function startFlakyUpstream(name) {
  const sockets = new Set();
  const events = new EventEmitter();
  const up = {
    name,
    requests: [],          // { method, url, auth, headers, body, stream, action, closed, at }
    queue: [],
    fallbackAction: 'ok',
    handler: null,
    script(...actions) { this.queue.push(...actions); return this; },
    always(action) { this.queue = []; this.fallbackAction = action; return this; },
    reset() { this.queue = []; this.fallbackAction = 'ok'; this.handler = null; return this; },
    get count() { return this.requests.length; },
    get auths() { return this.requests.map((r) => r.auth); },
    // Resolves once `n` requests in all have arrived; rejects after `ms`.
    waitForRequests(n, ms = 5000) {
      if (this.requests.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => { events.off('request', on); reject(new Error(`${name}: ${this.requests.length} of ${n} requests after ${ms} ms`)); }, ms);
        const on = () => { if (this.requests.length >= n) { clearTimeout(t); events.off('request', on); resolve(); } };
        events.on('request', on);
      });
    },
  };

  const completion = (model, content) => ({
    id: `chatcmpl-${name}`, object: 'chat.completion', created: 1, model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
  });
  const chunk = (model, delta, finish = null) => ({
    id: `chatcmpl-${name}`, object: 'chat.completion.chunk', created: 1, model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  });
  const sse = (obj) => `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`;
  const normalise = (a) => {
    if (typeof a === 'number') return { status: a };
    if (typeof a === 'string' && /^\d{3}$/.test(a)) return { status: Number(a) };
    if (typeof a === 'string') return { kind: a };
    if (a && a.ok) return { kind: 'ok', delay: a.delay ?? 0 };
    return a;
  };
  const destroy = (sock) => (typeof sock.resetAndDestroy === 'function' ? sock.resetAndDestroy() : sock.destroy());

  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      let body = null;
      try { body = JSON.parse(raw); } catch { /* keep null */ }
      const rec = { method: req.method, url: req.url, auth: req.headers.authorization ?? null, headers: req.headers,
        body, stream: body?.stream === true, action: null, closed: false, at: Date.now() };
      let action = up.handler ? up.handler(rec) : undefined;
      if (action === undefined) action = up.queue.length ? up.queue.shift() : up.fallbackAction;
      rec.action = action;
      up.requests.push(rec);
      res.on('close', () => { if (!res.writableEnded) rec.closed = true; });
      events.emit('request', rec);
      respond(req, res, rec, normalise(action));
    });
  });
  server.keepAliveTimeout = 30000;
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

  function respond(req, res, rec, a) {
    const model = rec.body?.model ?? '';
    if (a.kind === 'hang') return;
    if (a.kind === 'reset' || (a.kind === 'cut' && !rec.stream)) return destroy(req.socket);
    if (a.status) {
      const send = () => {
        res.statusCode = a.status;
        for (const [k, v] of Object.entries(a.headers ?? {})) res.setHeader(k, v);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(a.body ?? { error: { message: `${name} says ${a.status}`, type: 'fake_error' } }));
      };
      return a.delay ? setTimeout(send, a.delay) : send();
    }
    if (a.kind === 'cut') {
      res.statusCode = 200;
      res.setHeader('content-type', 'text/event-stream');
      res.write(sse(chunk(model, { role: 'assistant', content: '' })));
      res.write(sse(chunk(model, { content: `partial from ${name}` })), () => {
        // Let the gateway read and relay the chunk before the connection goes.
        setTimeout(() => destroy(req.socket), 50);
      });
      return;
    }
    if (a.kind !== 'ok') throw new Error(`unknown action ${JSON.stringify(a)}`);
    const answer = () => {
      if (res.destroyed) return;
      if (req.url.endsWith('/embeddings')) {
        const inputs = Array.isArray(rec.body?.input) ? rec.body.input : [rec.body?.input];
        const vec = name === 'A' ? [1, 0, 0] : name === 'B' ? [0, 1, 0] : [0, 0, 1];
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify({
          object: 'list', model,
          data: inputs.map((_, i) => ({ object: 'embedding', index: i, embedding: vec })),
          usage: { prompt_tokens: 2, total_tokens: 2 },
        }));
      }
      if (!rec.stream) {
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify(completion(model, `from ${name}`)));
      }
      res.setHeader('content-type', 'text/event-stream');
      let out = sse(chunk(model, { role: 'assistant', content: '' }));
      out += sse(chunk(model, { content: 'from ' }));
      out += sse(chunk(model, { content: name }));
      out += sse(chunk(model, {}, 'stop'));
      if (rec.body?.stream_options?.include_usage)
        out += sse({ ...chunk(model, {}), choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } });
      res.end(out + sse('[DONE]'));
    };
    return a.delay ? setTimeout(answer, a.delay) : answer();
  }

  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  up.port = server.address().port;
  up.url = `http://127.0.0.1:${up.port}/v1`;
  up.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return up;
}
