// Integration tests of the real toolgate binary against a fake OpenAI-compatible upstream.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startGateway, runToolgate, writeConfig, readSse, sleep, waitFor } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';

const MODELS = ['mock-ok', 'mock-echo', 'mock-stream', 'mock-slow-stream', 'mock-paced', 'mock-500', 'mock-429',
  'mock-401', 'mock-400', 'mock-hang', 'mock-garbage', 'text-embedding-fake'];

function config(upstreamUrl, extra = '') {
  return `
providers_from_env: false
server: { max_body_bytes: 65536, shutdown_grace: 5s }
providers:
  - name: local
    type: openai
    base_url: ${upstreamUrl}
    api_key: sk-upstream-secret-123
    timeout: 1s
    models: [${MODELS.join(', ')}]
  - name: dead
    type: openai
    base_url: http://127.0.0.1:1/v1
    models: [dead-model]
    connect_timeout: 1s
  - name: demo
    type: scripted
    models: [toolgate-demo]
    token_delay: 30ms
${extra}`;
}

const chatBody = (model, extra = {}) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

describe('toolgate against a fake upstream', () => {
  let upstream, gw;
  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway(config(upstream.url));
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const post = (path, body, headers = {}) =>
    fetch(gw.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  test('non-streaming completion passes unknown fields through and uses the upstream key', async () => {
    const res = await post('/v1/chat/completions',
      chatBody('local/mock-echo', { my_vendor_field: { nested: [1, 2.5, 'x'] }, temperature: 0.2 }),
      { authorization: 'Bearer client-key-must-not-leak' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('x-request-id'), /^req_[0-9a-f]{24}$/);
    const json = await res.json();
    assert.equal(json.choices[0].message.role, 'assistant');
    const seen = upstream.lastRequest();
    assert.equal(seen.url, '/v1/chat/completions');
    assert.equal(seen.body.model, 'mock-echo', 'provider prefix is stripped');
    assert.deepEqual(seen.body.my_vendor_field, { nested: [1, 2.5, 'x'] });
    assert.equal(seen.body.temperature, 0.2);
    assert.equal(seen.headers.authorization, 'Bearer sk-upstream-secret-123');
    assert.equal(json.usage.total_tokens, 18);
  });

  test('client x-request-id is echoed and forwarded; an unchanged body is forwarded byte for byte', async () => {
    const body = '{"model":"mock-ok",  "messages":[{"role":"user","content":"hi"}], "top_p": 1.0e0, "x": [1.50]}';
    const res = await post('/v1/chat/completions', body, { 'x-request-id': 'trace-abc.123' });
    assert.equal(res.status, 200);
    assert.equal(upstream.lastRequest().raw, body);
    assert.equal(res.headers.get('x-request-id'), 'trace-abc.123');
    assert.equal(upstream.lastRequest().headers['x-request-id'], 'trace-abc.123');
    await res.arrayBuffer();
    const bad = await post('/v1/chat/completions', chatBody('mock-ok'), { 'x-request-id': 'evil"\\value' });
    assert.match(bad.headers.get('x-request-id'), /^req_/);
    await bad.arrayBuffer();
  });

  test('streaming is relayed chunk by chunk, as the upstream sends it', async () => {
    const start = Date.now();
    const res = await post('/v1/chat/completions', chatBody('mock-paced', { stream: true }));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const arrivals = [];
    const events = await readSse(res, () => arrivals.push(Date.now() - start));
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, 'Hello from the fake upstream');
    // The upstream paces 150 ms between words: the first word must arrive long before the end.
    assert.ok(arrivals.at(-1) - arrivals[1] >= 500, `chunks were buffered: ${arrivals}`);
    // No usage chunk unless asked; the gateway asked the upstream for usage anyway.
    assert.ok(chunks.every((c) => c.usage === undefined));
    assert.equal(upstream.lastRequest().body.stream_options.include_usage, true);
  });

  test('stream_options.include_usage is honoured', async () => {
    const res = await post('/v1/chat/completions', chatBody('mock-stream', { stream: true, stream_options: { include_usage: true } }));
    const events = await readSse(res);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const usage = chunks.find((c) => c.usage);
    assert.deepEqual(usage.usage, { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 });
    assert.deepEqual(usage.choices, []);
  });

  test('upstream errors map to OpenAI-shaped errors with the right status', async () => {
    const cases = [
      ['mock-500', 502, 'upstream_error'],
      ['mock-429', 429, 'rate_limit_error'],
      ['mock-401', 502, 'upstream_error'],
      ['mock-400', 400, 'invalid_request_error'],
      ['mock-garbage', 502, 'upstream_error'],
      ['dead-model', 502, 'upstream_error'],
    ];
    for (const [model, status, type] of cases) {
      const res = await post('/v1/chat/completions', chatBody(model));
      assert.equal(res.status, status, model);
      const json = await res.json();
      assert.equal(json.error.type, type, model);
      assert.equal(typeof json.error.message, 'string');
      assert.ok(!json.error.message.includes('secret'), 'upstream 5xx details stay in the log');
    }
    const r400 = await (await post('/v1/chat/completions', chatBody('mock-400'))).json();
    assert.match(r400.error.message, /temperature must be <= 2/);
  });

  test('an upstream that does not answer gives 504 after the provider timeout', async () => {
    const start = Date.now();
    const res = await post('/v1/chat/completions', chatBody('mock-hang'));
    assert.equal(res.status, 504);
    assert.equal((await res.json()).error.code, 'upstream_timeout');
    const took = Date.now() - start;
    assert.ok(took >= 900 && took < 5000, `took ${took} ms`);
  });

  test('a malformed upstream stream ends with an error event, never a hang', async () => {
    const res = await post('/v1/chat/completions', chatBody('mock-garbage', { stream: true }));
    assert.equal(res.status, 200);
    const events = await readSse(res);
    const last = JSON.parse(events.at(-1));
    assert.equal(last.error.type, 'upstream_error');
  });

  test('a client that drops a stream cancels the upstream request', async () => {
    const before = upstream.state.closedEarly;
    const res = await post('/v1/chat/completions', chatBody('mock-slow-stream', { stream: true }));
    const reader = res.body.getReader();
    await reader.read();
    await reader.read();
    await reader.cancel();
    let waited = 0;
    while (upstream.state.closedEarly === before && waited < 3000) { await sleep(20); waited += 20; }
    assert.equal(upstream.state.closedEarly, before + 1, 'upstream request was not cancelled');
    assert.ok(waited < 2000, `cancellation took ${waited} ms`);
  });

  test('a client that disconnects while waiting for a non-streamed answer cancels the upstream call', async () => {
    const before = upstream.state.closedEarly;
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    const body = chatBody('mock-hang');
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await sleep(200);
    sock.destroy();
    let waited = 0;
    while (upstream.state.closedEarly === before && waited < 3000) { await sleep(20); waited += 20; }
    assert.equal(upstream.state.closedEarly, before + 1);
    assert.ok(waited < 800, `cancellation took ${waited} ms (the provider timeout is 1 s)`);
  });

  test('upstream connections are pooled and kept alive', async () => {
    const before = upstream.state.connections;
    for (let i = 0; i < 20; i++) {
      const res = await post('/v1/chat/completions', chatBody('mock-ok'));
      await res.arrayBuffer();
    }
    // Two worker threads: each may open its own connection.
    assert.ok(upstream.state.connections - before <= 2, `opened ${upstream.state.connections - before} connections`);
  });

  test('bad requests get clear 4xx errors', async () => {
    const big = JSON.stringify({ model: 'mock-ok', messages: [{ role: 'user', content: 'x'.repeat(70000) }] });
    const cases = [
      [post('/v1/chat/completions', '{"model": "mock-ok", "messages": ['), 400, 'invalid_json'],
      [post('/v1/chat/completions', '[1,2]'), 400, 'invalid_json'],
      [post('/v1/chat/completions', ''), 400, 'invalid_json'],
      [post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }] })), 400, 'missing_model'],
      [post('/v1/chat/completions', JSON.stringify({ model: 'mock-ok' })), 400, 'invalid_messages'],
      [post('/v1/chat/completions', JSON.stringify({ model: 'mock-ok', messages: [{ content: 'x' }] })), 400, 'invalid_messages'],
      [post('/v1/chat/completions', chatBody('mock-ok', { stream: 'yes' })), 400, 'invalid_stream'],
      [post('/v1/chat/completions', chatBody('no-such-model')), 404, 'model_not_found'],
      [post('/v1/chat/completions', big), 413, 'payload_too_large'],
      [post('/v1/nothing-here', '{}'), 404, 'unknown_route'],
      [fetch(gw.url + '/v1/chat/completions'), 405, 'method_not_allowed'],
      [post('/v1/models', '{}'), 405, 'method_not_allowed'],
      [post('/v1/chat/completions', '['.repeat(100) + ']'.repeat(100)), 400, 'invalid_json'],
    ];
    for (const [p, status, code] of cases) {
      const res = await p;
      assert.equal(res.status, status, code);
      const json = await res.json();
      assert.equal(json.error.code, code);
      assert.ok(json.error.message.length > 0);
    }
  });

  test('garbage on the socket does not hurt the gateway', async () => {
    for (const junk of ['GARBAGE\r\n\r\n', 'POST / HTTP/1.1\r\nContent-Length: zz\r\n\r\n', '\x00\x01\x02\xff'.repeat(100)]) {
      const sock = net.connect(gw.port, '127.0.0.1');
      await new Promise((r) => sock.on('connect', r));
      sock.write(junk);
      const reply = await new Promise((r) => { let d = ''; sock.on('data', (x) => (d += x)); sock.on('close', () => r(d)); setTimeout(() => { sock.destroy(); r(d); }, 2000); });
      if (reply) assert.match(reply, /^HTTP\/1\.1 4\d\d/);
    }
    const res = await fetch(gw.url + '/health');
    assert.equal(res.status, 200);
  });

  test('embeddings are routed to the provider', async () => {
    const res = await post('/v1/embeddings', JSON.stringify({ model: 'text-embedding-fake', input: ['a', 'b'] }));
    assert.equal(res.status, 200);
    const json = await res.json();
    assert.equal(json.data.length, 2);
    assert.equal(upstream.lastRequest().url, '/v1/embeddings');
    const demo = await (await post('/v1/embeddings', JSON.stringify({ model: 'toolgate-demo', input: 'hello' }))).json();
    assert.equal(demo.data[0].embedding.length, 16);
    const missing = await post('/v1/embeddings', JSON.stringify({ model: 'toolgate-demo' }));
    assert.equal(missing.status, 400);
  });

  test('models, health and metrics', async () => {
    const models = await (await fetch(gw.url + '/v1/models')).json();
    const ids = models.data.map((m) => m.id);
    assert.ok(ids.includes('mock-ok') && ids.includes('toolgate-demo') && ids.includes('dead-model'));
    assert.equal(models.data.find((m) => m.id === 'toolgate-demo').owned_by, 'toolgate-demo');
    const one = await fetch(gw.url + '/v1/models/toolgate-demo');
    assert.equal((await one.json()).id, 'toolgate-demo');
    assert.equal((await fetch(gw.url + '/v1/models/nope')).status, 404);

    const health = await (await fetch(gw.url + '/health')).json();
    const local = health.providers.find((p) => p.name === 'local');
    assert.equal(local.available, true);
    assert.equal(typeof local.last_latency_ms, 'number');
    const dead = health.providers.find((p) => p.name === 'dead');
    assert.ok(dead.last_failure_unix_ms > 0);

    const text = await (await fetch(gw.url + '/metrics')).text();
    assert.match(text, /toolgate_requests_total\{route="\/v1\/chat\/completions",status="200",provider="local",model="mock-ok"\} \d+/);
    assert.match(text, /toolgate_request_duration_seconds_bucket\{route="\/v1\/chat\/completions",provider="local",le="\+Inf"\} \d+/);
    assert.match(text, /toolgate_tokens_total\{provider="local",model="mock-ok",kind="prompt"\} \d+/);
    assert.match(text, /status="504"/);
  });

  test('one JSON access-log line per request, and no secrets in the logs', async () => {
    await sleep(300); // access lines are written in batches, at least every 100 ms
    const lines = gw.accessLog();
    assert.ok(lines.length > 20);
    const line = lines.find((l) => l.model === 'mock-ok' && l.status === 200);
    for (const k of ['ts', 'request_id', 'route', 'provider', 'status', 'latency_ms', 'prompt_tokens', 'completion_tokens'])
      assert.ok(k in line, `missing ${k}`);
    assert.ok(!gw.logs.includes('sk-upstream-secret-123'));
    assert.ok(!gw.logs.includes('client-key-must-not-leak'));
  });
});

describe('request_timeout bounds a whole request', () => {
  let upstream, gw;
  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
server: { request_timeout: 1s }
providers:
  - { name: local, type: openai, base_url: "${upstream.url}", timeout: 30s, models: [mock-hang, mock-slow-stream] }
`);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  test('a silent upstream: 504 request_timeout after about 1 s, and the upstream call is dropped', async () => {
    const start = Date.now();
    const res = await fetch(gw.url + '/v1/chat/completions', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('mock-hang') });
    const took = Date.now() - start;
    assert.equal(res.status, 504);
    assert.equal((await res.json()).error.code, 'request_timeout');
    assert.ok(took >= 900 && took < 3000, `took ${took} ms`);
    await sleep(100);
    assert.equal(upstream.lastRequest().closed, true);
  });

  test('an endless stream is ended with an error event at the deadline', async () => {
    const start = Date.now();
    const res = await fetch(gw.url + '/v1/chat/completions', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('mock-slow-stream', { stream: true }) });
    assert.equal(res.status, 200);
    const events = await readSse(res);
    const took = Date.now() - start;
    assert.ok(events.length > 5, 'chunks flowed before the deadline');
    assert.equal(JSON.parse(events.at(-1)).error.code, 'request_timeout');
    assert.ok(took >= 900 && took < 3000, `took ${took} ms`);
  });
});

describe('overload: server.max_inflight and server.max_connections answer a fast 503', () => {
  let upstream, gw;
  before(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway(`
providers_from_env: false
server: { max_inflight: 2, max_connections: 4 }
providers:
  - { name: local, type: openai, base_url: "${upstream.url}", timeout: 30s, models: [mock-hang, mock-1] }
`);
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const chat = (model, signal) => fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody(model), signal });

  test('past max_inflight: 503 overloaded with Retry-After, and the slots come back', async () => {
    const held = new AbortController();
    const hanging = [chat('mock-hang', held.signal).catch(() => null), chat('mock-hang', held.signal).catch(() => null)];
    await waitFor(() => upstream.state.requests.filter((r) => r.body?.model === 'mock-hang').length >= 2, 5000, 'two upstream calls');
    const start = Date.now();
    const res = await chat('mock-1');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    const body = await res.json();
    assert.equal(body.error.code, 'overloaded');
    assert.equal(body.error.type, 'server_error');
    assert.ok(Date.now() - start < 1000, 'answered at once, not queued');
    held.abort();
    await Promise.all(hanging);
    await waitFor(async () => (await chat('mock-1')).status === 200, 5000, 'a slot free again');
  });

});

describe('overload: server.max_connections', () => {
  let gw;
  before(async () => {
    gw = await startGateway(`
providers_from_env: false
server: { max_connections: 4 }
`);
  });
  after(async () => { await gw?.stop(); });

  // One request on a raw connection: the whole answer's text (by its Content-Length), or what came
  // before the gateway closed the connection.
  const ask = (s) => new Promise((resolve) => {
    let text = '';
    const complete = () => {
      const end = text.indexOf('\r\n\r\n');
      const length = /content-length: *(\d+)/i.exec(text.slice(0, end));
      return end >= 0 && length && Buffer.byteLength(text.slice(end + 4)) >= Number(length[1]);
    };
    const done = () => { s.off('data', onData); s.off('close', done); resolve(text); };
    const onData = (d) => { text += d; if (complete()) done(); };
    s.on('data', onData);
    s.once('close', done);
    s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
  });

  test('connections past the limit get 503 overloaded and are closed; those before are served', async () => {
    // Connections are opened and asked one at a time, so the gateway accepts them in order. The
    // harness's readiness checks may still hold a connection or two (a check that timed out under
    // load leaves its socket in the accept queue), so the first 503 may come before the fifth.
    const socks = [];
    try {
      const answers = [];
      for (let i = 0; i < 6; i++) {
        const s = net.connect(gw.port, '127.0.0.1');
        await new Promise((r) => s.once('connect', r));
        socks.push(s);
        const closed = new Promise((r) => s.once('close', r));
        const text = await ask(s);
        answers.push(text);
        if (/^HTTP\/1\.1 503/.test(text)) {
          await closed;  // the connection past the limit is closed by the gateway
          break;
        }
        assert.match(text, /^HTTP\/1\.1 200/);
      }
      const last = answers.at(-1);
      assert.ok(answers.length >= 2 && answers.length <= 5, `a 503 after 1 to 4 served connections: ${answers.length}`);
      assert.match(last, /^HTTP\/1\.1 503/);
      assert.match(last, /retry-after: 1/i);
      assert.match(last, /"code":"overloaded"/);
      // The connections that were served are still open, and still served.
      assert.match(await ask(socks[0]), /^HTTP\/1\.1 200/);
    } finally {
      for (const s of socks) s.destroy();
    }
    await waitFor(async () => (await fetch(gw.url + '/healthz')).status === 200, 5000, 'connections free again');
  });
});

describe('process lifecycle', () => {
  test('SIGTERM lets an in-flight stream finish, then exits 0', async () => {
    const gw = await startGateway(config('http://127.0.0.1:1/v1'));
    try {
      const res = await fetch(gw.url + '/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: chatBody('toolgate-demo', { stream: true }),
      });
      assert.equal(res.status, 200);
      const done = readSse(res);
      await sleep(60);
      gw.proc.kill('SIGTERM');
      const events = await done;
      assert.equal(events.at(-1), '[DONE]', 'the in-flight stream completed');
      const exit = await gw.waitExit();
      assert.equal(exit.code, 0);
      await assert.rejects(fetch(gw.url + '/health'));
    } finally {
      await gw.stop('SIGKILL');
    }
  });

  test('SIGTERM past the grace cancels what still runs, closes its connection and exits 0, bounded', async () => {
    const upstream = await startFakeUpstream();
    const gw = await startGateway(`
providers_from_env: false
server: { shutdown_grace: 300ms, request_timeout: 60s }
providers:
  - { name: local, type: openai, base_url: ${upstream.url}, timeout: 60s, models: [mock-hang] }
`);
    try {
      const pending = fetch(gw.url + '/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('mock-hang') })
        .then((r) => ({ status: r.status }), (e) => ({ error: e }));
      await waitFor(async () => upstream.state.requests.length === 1, 5000, 'the request to reach the upstream');
      const start = Date.now();
      gw.proc.kill('SIGTERM');
      const exit = await gw.waitExit();
      const took = Date.now() - start;
      assert.equal(exit.code, 0);
      assert.ok(took >= 250 && took < 2500, `exited ${took} ms after SIGTERM (grace 300 ms)`);
      const r = await pending;
      assert.ok(r.error || r.status >= 500, 'the hanging request ended, not answered 200');
      assert.match(gw.logs, /shutdown grace period over; closing 1 connection/);
      await waitFor(async () => upstream.state.closedEarly >= 1, 3000,
        'the upstream call to be dropped');
    } finally {
      await gw.stop('SIGKILL');
      await upstream.close();
    }
  });

  test('check-config reports the offending key and exits 1', async () => {
    const bad = writeConfig('server:\n  listen: 127.0.0.1:0\nproviders:\n  - name: x\n    type: openai\n    base_url: http://h\n    modles: [a]\n');
    try {
      const r = await runToolgate(['check-config', '--config', bad.file]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /gateway\.yaml:4: providers\[0\]: unknown key 'modles'/);
    } finally { bad.cleanup(); }
    const good = writeConfig('providers:\n  - {name: demo, type: scripted}\n');
    try {
      const r = await runToolgate(['check-config', '--config', good.file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /OK/);
    } finally { good.cleanup(); }
  });

  test('--help and --version', async () => {
    const help = await runToolgate(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /serve/);
    assert.match(help.stdout, /check-config/);
    const version = await runToolgate(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /toolgate \d+\.\d+\.\d+/);
    const none = await runToolgate([]);
    assert.notEqual(none.code, 0);
  });

  test('a port already in use is a clear start-up error', async () => {
    const blocker = net.createServer();
    await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
    const cfg = writeConfig('providers:\n  - {name: demo, type: scripted}\n');
    try {
      const r = await runToolgate(['serve', '--config', cfg.file, '--listen', `127.0.0.1:${blocker.address().port}`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot listen/);
    } finally {
      cfg.cleanup();
      blocker.close();
    }
  });
});
