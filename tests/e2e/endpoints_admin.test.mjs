// AI endpoints made through the admin API (POST/GET/PUT/PATCH/DELETE /admin/endpoints) through the
// real binary: plain fetch as the client (status codes, headers and bodies matter), a fake upstream
// in this process that records every request the provider received, the real sqlite3 CLI reading
// the gateway's state file (a stored endpoint outlives a restart), and two gateway replicas on one
// real redis-server (an endpoint made, changed or deleted on one replica is seen by the other within
// its 2 s cache). The tests check what the admin API answers, what the provider got when the stored
// endpoint is called, and that refusals happen before any provider call. Every scenario has its own
// gateway and stops what it started, also when it fails.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, waitFor, cleanup, assertClean, cleanGateway as gateway } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { startRedis, sqlite } from './lib/state_peers.mjs';

const ADMIN = 'admin-secret-endpoints-admin';
const MODELS = ['mock-1', 'mock-2', 'mock-3'];
const pairs = (messages) => messages.map((m) => [m.role, m.content]);
const nowS = () => Math.floor(Date.now() / 1000);

// A temporary directory, removed when the test ends (after the gateways that use it stopped).
function tempDir(defer, prefix = 'toolgate-endpoints-admin-') {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// The fake upstream, with a script: while `up.script` has entries, each chat request is answered
// with the next one (the assistant's text), as JSON or as a stream, whichever the request asked for.
async function upstream(defer) {
  const script = [];
  const up = await startFakeUpstream({
    intercept: (rec) => {
      if (!rec.url.endsWith('/chat/completions') || script.length === 0) return undefined;
      const content = script.shift();
      if (rec.body?.stream) return { stream: [content] };
      return {
        status: 200,
        body: {
          id: 'chatcmpl-scripted', object: 'chat.completion', created: 1, model: rec.body?.model,
          choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null }],
          usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
        },
      };
    },
  });
  up.script = script;
  defer(() => up.close());
  return up;
}

// The chat requests the fake upstream has seen.
const chats = (up) => up.state.requests.filter((r) => r.url.endsWith('/chat/completions'));

const providerLine = (up) =>
  `  - { name: fake, type: openai, base_url: "${up.url}", api_key: sk-fake, timeout: 20s, models: ${JSON.stringify(MODELS)} }`;

// A config: the fake provider, `state` (in memory unless told), the admin token, `auth` (an admin
// token alone makes keys required: not so here unless told), then `rest`.
const config = (up, rest = '', { state = '{ persist: false }', admin = true, auth = '{ required: false }' } = {}) => `
providers_from_env: false
providers:
${providerLine(up)}
state: ${state}
auth: ${auth}
${admin ? `admin: { token: ${ADMIN} }` : ''}
${rest}`;

// Plain fetch: status, headers, parsed body (when JSON), raw text.
async function call(gw, method, path, { body, key = null, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(gw.url + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(20000) });
  } catch (e) {
    // No answer at all: say whether the gateway died, and why (a sanitizer report names the frames).
    if (!gw.exited) await waitFor(() => gw.exited, 3000, 'the gateway to exit').catch(() => {});
    const report = gw.logs.split('\n').filter((l) => /ERROR: AddressSanitizer|SUMMARY:|^\s*#\d+ .*\.\.\/(gateway|common|state)\//.test(l)).slice(0, 12);
    throw new Error(`${method} ${path}: no answer (${e.cause?.code ?? e.message}); gateway ${gw.exited ? `exited (${gw.exited.code ?? gw.exited.signal})` : 'still running'}\n${report.join('\n')}`);
  }
  const raw = await res.text();
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, raw };
}

// The admin API with the admin token (or another: token null sends none).
const admin = (gw, method, path, body, token = ADMIN) => call(gw, method, path, { body, key: token });
const endpoint = (gw, slug, body, opts = {}) => call(gw, 'POST', `/v1/endpoints/${slug}`, { ...opts, body });

const why = (r, gw) => `response ${r.status}: ${r.raw}\n--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;

// An error in OpenAI's shape with this status and code.
function assertError(r, status, code, gw) {
  assert.equal(r.status, status, why(r, gw));
  assert.equal(r.json?.error?.code, code, why(r, gw));
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal(typeof r.json.error.type, 'string');
  assert.ok('param' in r.json.error, 'the error has a param field (null when none)');
}

// A 200 chat.completion; its answer text.
function answerOf(r, gw) {
  assert.equal(r.status, 200, why(r, gw));
  assert.equal(r.json?.object, 'chat.completion', r.raw);
  assert.equal(r.json.choices[0].message.role, 'assistant', r.raw);
  return r.json.choices[0].message.content;
}

// A 200 SSE answer: the text of its deltas and the finish reasons; ends with [DONE].
function streamOf(r, gw) {
  assert.equal(r.status, 200, why(r, gw));
  assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/, r.raw);
  const data = r.raw.split(/\r?\n\r?\n/).map((e) => e.trim()).filter(Boolean).map((e) => {
    assert.ok(e.startsWith('data: '), `an SSE data event: ${JSON.stringify(e)}`);
    return e.slice(6);
  });
  assert.equal(data.at(-1), '[DONE]', r.raw);
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk', JSON.stringify(c));
  return {
    text: chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''),
    finish: chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean),
  };
}

// The 201 of a create (checked); its body.
async function create(gw, def) {
  const r = await admin(gw, 'POST', '/admin/endpoints', def);
  assert.equal(r.status, 201, why(r, gw));
  return r.json;
}

// Calls `fn` until it returns a truthy value, at most `ms`; the last value, or the error of a timeout.
async function pollUntil(fn, ms, what) {
  let last;
  await waitFor(async () => (last = await fn()), ms, what);
  return last;
}

const BULLETS = { type: 'object', required: ['bullets'], properties: { bullets: { type: 'array' } } };
const SHORT_INPUT = { type: 'object', required: ['input'], properties: { input: { type: 'string', maxLength: 20 } } };

// --- 1. the whole lifecycle on one gateway --------------------------------------------------------------

describe('the admin API round trip', () => {
  test('create, list, get, patch, put, delete: each answer has the documented shape, each change holds on the next call, the audit log names them', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up, `
endpoints:
  - { slug: from-config, model: mock-2 }
`));
    const def = {
      slug: 'notes',
      model: 'mock-1',
      system_prompt: 'Summarize the notes.',
      prompt_template: 'Notes:\n{{input}}\nTone: {{tone | default: dry}}',
      limits: { max_tokens_per_request: 100 },
    };
    const before = nowS();
    const made = await create(gw, def);
    assert.equal(made.slug, 'notes');
    assert.equal(made.object, 'endpoint');
    assert.equal(made.model, 'mock-1');
    assert.equal(made.stream, true);
    assert.equal(made.sessions, false);
    assert.equal(made.input_schema, false);
    assert.equal(made.output_schema, false);
    assert.deepEqual(made.failover, []);
    assert.deepEqual(made.keys, []);
    assert.equal(made.rules, 0);
    assert.equal(made.max_tokens_per_request, 100);
    assert.equal(made.source, 'admin');
    assert.ok(Number.isInteger(made.updated_at) && made.updated_at >= before - 1 && made.updated_at <= nowS() + 1,
      `updated_at is the unix time in seconds: ${made.updated_at}`);
    assert.deepEqual(made.definition, def, 'the definition as sent');

    // Callable at once; the template is rendered and the limit's cap is sent.
    assert.equal(answerOf(await endpoint(gw, 'notes', { input: 'shipped v2' }), gw), 'reply from mock-1');
    assert.equal(chats(up).length, 1);
    assert.equal(chats(up)[0].body.model, 'mock-1');
    assert.equal(chats(up)[0].body.max_tokens, 100);
    assert.deepEqual(pairs(chats(up)[0].body.messages),
      [['system', 'Summarize the notes.'], ['user', 'Notes:\nshipped v2\nTone: dry']]);
    answerOf(await endpoint(gw, 'notes', { input: 'x', variables: { tone: 'warm' } }), gw);
    assert.deepEqual(pairs(chats(up)[1].body.messages).at(-1), ['user', 'Notes:\nx\nTone: warm']);

    // The list: the config's endpoints, then the stored ones (with their definition).
    const list = await admin(gw, 'GET', '/admin/endpoints');
    assert.equal(list.status, 200, why(list, gw));
    assert.equal(list.json.object, 'list');
    assert.deepEqual(list.json.data.map((e) => [e.slug, e.source]), [['from-config', 'config'], ['notes', 'admin']]);
    assert.equal(list.json.data[0].definition, undefined, 'a config endpoint has no stored definition');
    assert.deepEqual(list.json.data[1], made, 'listed as created');

    const one = await admin(gw, 'GET', '/admin/endpoints/notes');
    assert.equal(one.status, 200, why(one, gw));
    assert.deepEqual(one.json, made);

    // PATCH: a merge patch; nested objects merge, the rest stays.
    const p1 = await admin(gw, 'PATCH', '/admin/endpoints/notes',
      { system_prompt: 'Summarize the notes in French.', limits: { requests_per_minute: 100 } });
    assert.equal(p1.status, 200, why(p1, gw));
    assert.equal(p1.json.source, 'admin');
    assert.deepEqual(p1.json.definition, {
      ...def, system_prompt: 'Summarize the notes in French.', limits: { max_tokens_per_request: 100, requests_per_minute: 100 } });
    assert.equal(p1.json.max_tokens_per_request, 100);
    answerOf(await endpoint(gw, 'notes', { input: 'y' }), gw);
    assert.deepEqual(pairs(chats(up)[2].body.messages),
      [['system', 'Summarize the notes in French.'], ['user', 'Notes:\ny\nTone: dry']], 'the patch holds at once on this replica');

    // null removes a member.
    const p2 = await admin(gw, 'PATCH', '/admin/endpoints/notes', { system_prompt: null });
    assert.equal(p2.status, 200, why(p2, gw));
    assert.ok(!('system_prompt' in p2.json.definition), JSON.stringify(p2.json.definition));
    answerOf(await endpoint(gw, 'notes', { input: 'z' }), gw);
    assert.deepEqual(pairs(chats(up)[3].body.messages), [['user', 'Notes:\nz\nTone: dry']], 'no system prompt any more');

    // PUT: the whole definition replaced (no slug in the body: the path's).
    const put = await admin(gw, 'PUT', '/admin/endpoints/notes', { model: 'mock-2', input_schema: SHORT_INPUT });
    assert.equal(put.status, 200, why(put, gw));
    assert.deepEqual(put.json.definition, { model: 'mock-2', input_schema: SHORT_INPUT, slug: 'notes' });
    assert.equal(put.json.model, 'mock-2');
    assert.equal(put.json.input_schema, true);
    assert.equal(put.json.max_tokens_per_request, undefined, 'the old limits went with the old definition');
    assert.equal(answerOf(await endpoint(gw, 'notes', { input: 'plain' }), gw), 'reply from mock-2');
    assert.equal(chats(up)[4].body.model, 'mock-2');
    assert.equal(chats(up)[4].body.max_tokens, undefined);
    assert.deepEqual(pairs(chats(up)[4].body.messages), [['user', 'plain']], 'no template, no system prompt');
    assertError(await endpoint(gw, 'notes', { input: 'far too long for the schema' }), 422, 'input_validation_failed', gw);
    assert.equal(chats(up).length, 5, 'refused before the provider');
    assert.deepEqual((await admin(gw, 'GET', '/admin/endpoints/notes')).json.definition, put.json.definition);

    // DELETE: gone for calls and for the admin API.
    const del = await admin(gw, 'DELETE', '/admin/endpoints/notes');
    assert.equal(del.status, 200, why(del, gw));
    assert.deepEqual(del.json, { slug: 'notes', object: 'endpoint', deleted: true });
    assertError(await endpoint(gw, 'notes', { input: 'x' }), 404, 'endpoint_not_found', gw);
    assert.equal(chats(up).length, 5);
    for (const [m, body] of [['GET'], ['PUT', { model: 'mock-1' }], ['PATCH', { model: 'mock-1' }], ['DELETE']])
      assertError(await admin(gw, m, '/admin/endpoints/notes', body), 404, 'endpoint_not_found', gw);
    assert.deepEqual((await admin(gw, 'GET', '/admin/endpoints')).json.data.map((e) => e.slug), ['from-config']);
    assert.equal(answerOf(await endpoint(gw, 'from-config', { input: 'x' }), gw), 'reply from mock-2');

    // The audit log, newest first: create, three updates, delete, all naming the slug.
    let mine = [];
    await waitFor(async () => {
      const r = await admin(gw, 'GET', '/admin/audit');
      mine = r.status === 200 ? r.json.data.filter((x) => x.target === 'notes') : [];
      return mine.some((x) => x.action === 'endpoint.delete');
    }, 5000, 'the audit records of the endpoint');
    assert.deepEqual(mine.map((x) => x.action).reverse(),
      ['endpoint.create', 'endpoint.update', 'endpoint.update', 'endpoint.update', 'endpoint.delete'], JSON.stringify(mine));
    for (const x of mine) assert.equal(x.actor, 'admin', JSON.stringify(x));
  });
});

// --- 2. who may use the admin routes ------------------------------------------------------------------

describe('admin token', () => {
  test('every /admin/endpoints route needs the admin token (401 without or with another); without an admin section they are 404', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up));
    const routes = [['GET', '/admin/endpoints'], ['POST', '/admin/endpoints', { slug: 'sneaky', model: 'mock-1' }],
      ['GET', '/admin/endpoints/sneaky'], ['PUT', '/admin/endpoints/sneaky', { model: 'mock-1' }],
      ['PATCH', '/admin/endpoints/sneaky', { model: 'mock-1' }], ['DELETE', '/admin/endpoints/sneaky']];
    for (const [m, p, body] of routes) {
      for (const token of [null, 'wrong-token-0123456789', 'sk-fake']) {
        const r = await admin(gw, m, p, body, token);
        assert.equal(r.status, 401, `${m} ${p} with ${token ?? 'no token'}: ${why(r, gw)}`);
      }
    }
    assertError(await endpoint(gw, 'sneaky', { input: 'x' }), 404, 'endpoint_not_found', gw);
    assert.equal((await admin(gw, 'GET', '/admin/endpoints')).json.data.length, 0, 'nothing was stored');

    const plain = await gateway(defer, config(up, `
endpoints:
  - { slug: only-config, model: mock-1 }
`, { admin: false }));
    for (const [m, p, body] of routes) {
      const r = await admin(plain, m, p, body);
      assert.equal(r.status, 404, `${m} ${p} without an admin section: ${why(r, plain)}`);
    }
    assertError(await endpoint(plain, 'sneaky', { input: 'x' }), 404, 'endpoint_not_found', plain);
    assert.equal(answerOf(await endpoint(plain, 'only-config', { input: 'x' }), plain), 'reply from mock-1');
    assert.equal(chats(up).length, 1);
  });
});

// --- 3. what is refused -------------------------------------------------------------------------------

describe('validation', () => {
  test('invalid definitions are 400 invalid_endpoint and nothing is stored; a taken slug is 409 endpoint_exists', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up));
    const refused = [
      [{ slug: 'bad-key', model: 'mock-1', nope: 1 }, /^invalid endpoint: endpoint\.nope: unknown key \(known: .*system_prompt.*\)/],
      [{ slug: 'bad-ref', model: 'mock-1', input_schema: { $ref: 'file:schema.json' } }, /a file reference works in the config file only/],
      [{ slug: 'bad-ref-out', model: 'mock-1', output_schema: { $ref: 'file:/etc/hostname' } }, /a file reference works in the config file only/],
      [{ slug: 'Bad Slug!', model: 'mock-1' }, /slug/],
      [{ slug: 'x'.repeat(65), model: 'mock-1' }, /slug/],
      [{ model: 'mock-1' }, /slug/],
      [{ slug: 'no-model' }, /model/],
      [{ slug: 'bad-template', model: 'mock-1', prompt_template: 'Text: {{input' }, /prompt_template/],
      [{ slug: 'bad-schema', model: 'mock-1', input_schema: 'not a schema' }, /input_schema/],
      [{ slug: 'bad-limit', model: 'mock-1', limits: { requests_per_minute: -1 } }, /requests_per_minute/],
      [{ slug: 'bad-mcp', model: 'mock-1', mcp: { servers: ['nowhere'] } }, /nowhere/],
      [{ slug: 'bad-sessions', model: 'mock-1', sessions: { enabled: true } }, /sessions/],
    ];
    for (const [def, message] of refused) {
      const r = await admin(gw, 'POST', '/admin/endpoints', def);
      assertError(r, 400, 'invalid_endpoint', gw);
      assert.match(r.json.error.message, message, JSON.stringify(def));
      assert.match(r.json.error.message, /^invalid endpoint: /);
      assert.equal(r.json.error.type, 'invalid_request_error', r.raw);
    }
    assert.equal((await admin(gw, 'GET', '/admin/endpoints')).json.data.length, 0, 'nothing was stored');
    assertError(await endpoint(gw, 'bad-key', { input: 'x' }), 404, 'endpoint_not_found', gw);

    const def = { slug: 'taken', model: 'mock-1', system_prompt: 'First.' };
    const made = await create(gw, def);
    const again = await admin(gw, 'POST', '/admin/endpoints', { slug: 'taken', model: 'mock-2' });
    assertError(again, 409, 'endpoint_exists', gw);
    assert.deepEqual((await admin(gw, 'GET', '/admin/endpoints/taken')).json, made, 'the first one stays');

    // PUT keeps the slug; a change that does not check out leaves the stored definition as it was.
    assertError(await admin(gw, 'PUT', '/admin/endpoints/taken', { slug: 'renamed', model: 'mock-1' }), 400, 'invalid_endpoint', gw);
    assertError(await admin(gw, 'PUT', '/admin/endpoints/taken', { slug: 'taken', nope: true, model: 'mock-1' }), 400, 'invalid_endpoint', gw);
    const noModel = await admin(gw, 'PATCH', '/admin/endpoints/taken', { model: null, system_prompt: 'Changed.' });
    assertError(noModel, 400, 'invalid_endpoint', gw);
    assert.match(noModel.json.error.message, /model/);
    assertError(await admin(gw, 'PATCH', '/admin/endpoints/taken', { limits: { requests_per_minute: 'many' } }), 400, 'invalid_endpoint', gw);
    assertError(await admin(gw, 'PATCH', '/admin/endpoints/taken', { slug: 'other' }), 400, 'invalid_endpoint', gw);
    assert.deepEqual((await admin(gw, 'GET', '/admin/endpoints/taken')).json, made, 'unchanged after the refused changes');
    assertError(await admin(gw, 'GET', '/admin/endpoints/renamed'), 404, 'endpoint_not_found', gw);
    assertError(await admin(gw, 'GET', '/admin/endpoints/other'), 404, 'endpoint_not_found', gw);
    answerOf(await endpoint(gw, 'taken', { input: 'x' }), gw);
    assert.deepEqual(pairs(chats(up)[0].body.messages), [['system', 'First.'], ['user', 'x']]);
    // A slug in the PUT body equal to the path's is fine.
    const same = await admin(gw, 'PUT', '/admin/endpoints/taken', { slug: 'taken', model: 'mock-3' });
    assert.equal(same.status, 200, why(same, gw));
    assert.equal(same.json.model, 'mock-3');
  });

  test('at most 1000 stored endpoints: the 1001st is 409 too_many_endpoints; after a delete there is room again', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up));
    const slugs = Array.from({ length: 1000 }, (_, i) => `many-${i}`);
    let next = 0;
    const worker = async () => {
      while (next < slugs.length) {
        const slug = slugs[next++];
        const r = await admin(gw, 'POST', '/admin/endpoints', { slug, model: 'mock-1' });
        assert.equal(r.status, 201, `${slug}: ${why(r, gw)}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    const list = await admin(gw, 'GET', '/admin/endpoints');
    assert.equal(list.status, 200, why(list, gw));
    assert.equal(list.json.data.length, 1000);
    assertError(await admin(gw, 'POST', '/admin/endpoints', { slug: 'one-too-many', model: 'mock-1' }), 409, 'too_many_endpoints', gw);
    assertError(await admin(gw, 'GET', '/admin/endpoints/one-too-many'), 404, 'endpoint_not_found', gw);
    assert.equal((await admin(gw, 'DELETE', '/admin/endpoints/many-0')).status, 200);
    await create(gw, { slug: 'one-too-many', model: 'mock-1' });
    assert.equal(answerOf(await endpoint(gw, 'one-too-many', { input: 'x' }), gw), 'reply from mock-1');
    assert.equal(answerOf(await endpoint(gw, 'many-999', { input: 'x' }), gw), 'reply from mock-1');
  });
});

// --- 4. the config's endpoints ------------------------------------------------------------------------

describe('config endpoints', () => {
  test('are listed and read through the admin API but not changed: POST/PUT/PATCH/DELETE on their slug are 409 config_endpoint', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up, `
endpoints:
  - slug: fixed
    model: mock-1
    system_prompt: "From the file."
    limits: { max_tokens_per_request: 40 }
`));
    const got = await admin(gw, 'GET', '/admin/endpoints/fixed');
    assert.equal(got.status, 200, why(got, gw));
    assert.equal(got.json.slug, 'fixed');
    assert.equal(got.json.object, 'endpoint');
    assert.equal(got.json.source, 'config');
    assert.equal(got.json.model, 'mock-1');
    assert.equal(got.json.max_tokens_per_request, 40);
    assert.equal(got.json.definition, undefined);

    assertError(await admin(gw, 'POST', '/admin/endpoints', { slug: 'fixed', model: 'mock-2' }), 409, 'config_endpoint', gw);
    assertError(await admin(gw, 'PUT', '/admin/endpoints/fixed', { model: 'mock-2' }), 409, 'config_endpoint', gw);
    assertError(await admin(gw, 'PATCH', '/admin/endpoints/fixed', { system_prompt: 'Hijacked.' }), 409, 'config_endpoint', gw);
    assertError(await admin(gw, 'DELETE', '/admin/endpoints/fixed'), 409, 'config_endpoint', gw);

    const list = await admin(gw, 'GET', '/admin/endpoints');
    assert.deepEqual(list.json.data.map((e) => [e.slug, e.source, e.model]), [['fixed', 'config', 'mock-1']]);
    assert.equal(answerOf(await endpoint(gw, 'fixed', { input: 'x' }), gw), 'reply from mock-1');
    assert.equal(chats(up).length, 1);
    assert.deepEqual(pairs(chats(up)[0].body.messages), [['system', 'From the file.'], ['user', 'x']]);
    assert.equal(chats(up)[0].body.max_tokens, 40);
  });
});

// --- 5. a stored endpoint at call time ----------------------------------------------------------------

describe('a stored endpoint at call time', () => {
  test('text is taken literally: ${HOME} in a stored system prompt and template reaches the provider as written (the config file expands it)', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up, `
endpoints:
  - { slug: cfg-home, model: mock-1, system_prompt: "Home is \${HOME}." }
`));
    const def = { slug: 'adm-home', model: 'mock-1', system_prompt: 'Home is ${HOME}.', prompt_template: 'In ${HOME} and $${X}: {{input}}' };
    const made = await create(gw, def);
    assert.deepEqual(made.definition, def);
    answerOf(await endpoint(gw, 'adm-home', { input: 'hello' }), gw);
    assert.deepEqual(pairs(chats(up)[0].body.messages), [['system', 'Home is ${HOME}.'], ['user', 'In ${HOME} and $${X}: hello']]);
    assert.deepEqual((await admin(gw, 'GET', '/admin/endpoints/adm-home')).json.definition, def);

    // The same text in the config file is expanded from the gateway's environment.
    answerOf(await endpoint(gw, 'cfg-home', { input: 'hello' }), gw);
    assert.equal(chats(up)[1].body.messages[0].content, `Home is ${process.env.HOME ?? ''}.`);
  });

  test('input_schema (422 before the provider), output_schema (response_format, repaired once) and streaming work as for a config endpoint', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up));
    await create(gw, { slug: 'checked', model: 'mock-1', system_prompt: 'Be brief.', input_schema: SHORT_INPUT });
    for (const input of ['x'.repeat(21), 12345]) {
      const r = await endpoint(gw, 'checked', { input });
      assertError(r, 422, 'input_validation_failed', gw);
      assert.equal(r.json.error.param, 'input', r.raw);
    }
    assert.equal(chats(up).length, 0, 'the provider was not called');
    answerOf(await endpoint(gw, 'checked', { input: 'short' }), gw);
    assert.deepEqual(pairs(chats(up)[0].body.messages), [['system', 'Be brief.'], ['user', 'short']]);

    // Streamed, by default.
    const s = streamOf(await endpoint(gw, 'checked', { input: 'short', stream: true }), gw);
    assert.equal(s.text, 'Hello from the fake upstream');
    assert.deepEqual(s.finish, ['stop']);
    assert.equal(chats(up)[1].body.stream, true);
    // stream: false through a patch: a stream is refused.
    const off = await admin(gw, 'PATCH', '/admin/endpoints/checked', { stream: false });
    assert.equal(off.status, 200, why(off, gw));
    assert.equal(off.json.stream, false);
    assertError(await endpoint(gw, 'checked', { input: 'short', stream: true }), 400, 'stream_not_allowed', gw);
    assert.equal(chats(up).length, 2);

    // The output schema is sent as response_format and checked; one repair turn.
    const made = await create(gw, { slug: 'extract', model: 'mock-2', output_schema: BULLETS });
    assert.equal(made.output_schema, true);
    up.script.push('not json', '{"bullets":["a"]}');
    assert.equal(answerOf(await endpoint(gw, 'extract', { input: 'text' }), gw), '{"bullets":["a"]}');
    assert.equal(chats(up).length, 4, 'the call and one repair');
    assert.deepEqual(chats(up)[2].body.response_format, { type: 'json_schema', json_schema: { name: 'extract', schema: BULLETS } });
    up.script.push('{"bullets":["s"]}');
    const j = streamOf(await endpoint(gw, 'extract', { input: 'text', stream: true }), gw);
    assert.equal(j.text, '{"bullets":["s"]}');
    up.script.push('still not json', 'nor this');
    assertError(await endpoint(gw, 'extract', { input: 'text' }), 422, 'output_validation_failed', gw);
  });

  test('limits: requests_per_minute 2 makes the third call 429 with retry-after; a patch that removes the limit lets calls pass again', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up));
    await create(gw, { slug: 'tight', model: 'mock-1', limits: { requests_per_minute: 2 } });
    await create(gw, { slug: 'loose', model: 'mock-1' });
    for (let i = 0; i < 2; i++) assert.equal(answerOf(await endpoint(gw, 'tight', { input: `call ${i}` }), gw), 'reply from mock-1');
    const r = await endpoint(gw, 'tight', { input: 'call 2' });
    assertError(r, 429, 'rate_limit_exceeded', gw);
    const retry = r.headers.get('retry-after');
    assert.ok(retry && Number(retry) >= 1 && Number(retry) <= 60, `retry-after: ${retry}`);
    assert.equal(chats(up).length, 2, 'the third call did not reach the provider');
    assert.equal(answerOf(await endpoint(gw, 'loose', { input: 'x' }), gw), 'reply from mock-1', 'the limit is the endpoint\'s own');

    const p = await admin(gw, 'PATCH', '/admin/endpoints/tight', { limits: { requests_per_minute: null } });
    assert.equal(p.status, 200, why(p, gw));
    assert.deepEqual(p.json.definition, { slug: 'tight', model: 'mock-1', limits: {} });
    for (let i = 3; i < 6; i++) assert.equal(answerOf(await endpoint(gw, 'tight', { input: `call ${i}` }), gw), 'reply from mock-1');
    assert.equal(chats(up).length, 6);

    // And back: a limit set again through a patch is enforced again.
    const again = await admin(gw, 'PATCH', '/admin/endpoints/tight', { limits: { requests_per_minute: 1 } });
    assert.equal(again.status, 200, why(again, gw));
    const seen = chats(up).length;
    let limited = null;
    for (let i = 0; i < 3 && !limited; i++) {
      const c = await endpoint(gw, 'tight', { input: `again ${i}` });
      if (c.status === 429) limited = c; else answerOf(c, gw);
    }
    assert.ok(limited, 'a limit of 1 per minute refuses within three calls');
    assertError(limited, 429, 'rate_limit_exceeded', gw);
    assert.ok(chats(up).length - seen <= 1, 'at most one call passed under a limit of 1');
  });

  test('keys: [app-a] admits app-a and refuses app-b with 403 endpoint_forbidden; a key made through the admin API can be named too', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const gw = await gateway(defer, config(up, `
keys:
  - { name: app-a, key: sk-a-endpoints-admin }
  - { name: app-b, key: sk-b-endpoints-admin }
`, { auth: '{ required: true }' }));
    const made = await create(gw, { slug: 'private', model: 'mock-1', keys: ['app-a'] });
    assert.deepEqual(made.keys, ['app-a']);
    await create(gw, { slug: 'open', model: 'mock-1' });
    const denied = await endpoint(gw, 'private', { input: 'x' }, { key: 'sk-b-endpoints-admin' });
    assertError(denied, 403, 'endpoint_forbidden', gw);
    assert.equal(denied.json.error.type, 'permission_error', denied.raw);
    assert.equal((await endpoint(gw, 'private', { input: 'x' })).status, 401, 'no key at all');
    assert.equal(chats(up).length, 0);
    assert.equal(answerOf(await endpoint(gw, 'private', { input: 'x' }, { key: 'sk-a-endpoints-admin' }), gw), 'reply from mock-1');
    assert.equal(answerOf(await endpoint(gw, 'open', { input: 'x' }, { key: 'sk-b-endpoints-admin' }), gw), 'reply from mock-1');
    assert.equal(chats(up).length, 2);

    // A key made through the admin API, then the endpoint scoped to it alone.
    const key = await admin(gw, 'POST', '/admin/keys', { name: 'app-c' });
    assert.equal(key.status, 201, why(key, gw));
    const p = await admin(gw, 'PATCH', '/admin/endpoints/private', { keys: ['app-c'] });
    assert.equal(p.status, 200, why(p, gw));
    assert.deepEqual(p.json.keys, ['app-c']);
    assert.equal(answerOf(await endpoint(gw, 'private', { input: 'x' }, { key: key.json.key }), gw), 'reply from mock-1');
    assertError(await endpoint(gw, 'private', { input: 'x' }, { key: 'sk-a-endpoints-admin' }), 403, 'endpoint_forbidden', gw);
    assert.equal(chats(up).length, 3);
  });
});

// --- 6. where they are kept ---------------------------------------------------------------------------

describe('storage', () => {
  test('SQLite: a stored endpoint is a row of the documents table and still answers after the gateway restarts on the same file', async (t) => {
    const defer = cleanup(t);
    const up = await upstream(defer);
    const dir = tempDir(defer);
    const db = join(dir, 'state.db');
    const yaml = config(up, '', { state: `{ sqlite: { path: "${db}" } }` });
    const def = { slug: 'durable', model: 'mock-2', system_prompt: 'Still here.', limits: { max_tokens_per_request: 30 } };

    const first = await gateway(defer, yaml);
    const made = await create(first, def);
    answerOf(await endpoint(first, 'durable', { input: 'before' }), first);

    // The row, as the sqlite3 CLI reads it.
    let rows = [];
    await waitFor(async () => (rows = await sqlite(db, "SELECT collection, id, body, updated_ms FROM documents WHERE collection = 'endpoints'")).length === 1,
      5000, 'the documents row');
    assert.equal(rows[0].id, 'durable');
    assert.deepEqual(JSON.parse(rows[0].body), def);
    assert.equal(Math.floor(rows[0].updated_ms / 1000), made.updated_at);

    await first.stop();
    assertClean(first);
    const second = await gateway(defer, yaml);
    assert.equal(answerOf(await endpoint(second, 'durable', { input: 'after' }), second), 'reply from mock-2');
    const sent = chats(up).at(-1).body;
    assert.deepEqual(pairs(sent.messages), [['system', 'Still here.'], ['user', 'after']]);
    assert.equal(sent.max_tokens, 30);
    const got = await admin(second, 'GET', '/admin/endpoints/durable');
    assert.equal(got.status, 200, why(got, second));
    assert.deepEqual(got.json, made, 'the same definition and time after the restart');

    // A change made after the restart is in the file; a delete removes the row.
    const p = await admin(second, 'PATCH', '/admin/endpoints/durable', { system_prompt: 'Changed after restart.' });
    assert.equal(p.status, 200, why(p, second));
    await waitFor(async () => {
      const r = await sqlite(db, "SELECT body FROM documents WHERE collection = 'endpoints' AND id = 'durable'");
      return r.length === 1 && JSON.parse(r[0].body).system_prompt === 'Changed after restart.';
    }, 5000, 'the patched row');
    assert.equal((await admin(second, 'DELETE', '/admin/endpoints/durable')).status, 200);
    await waitFor(async () => (await sqlite(db, "SELECT count(*) AS n FROM documents WHERE collection = 'endpoints'"))[0].n === 0,
      5000, 'the row deleted');
    await second.stop();
    assertClean(second);
    const third = await gateway(defer, yaml);
    assertError(await endpoint(third, 'durable', { input: 'x' }), 404, 'endpoint_not_found', third);
    assert.deepEqual((await admin(third, 'GET', '/admin/endpoints')).json.data, []);
  });

  test('Redis: two replicas share the endpoints (a hash <prefix>docs:endpoints); a create, change or delete on A shows on B within its cache time', async (t) => {
    const defer = cleanup(t);
    const upA = await upstream(defer);
    const upB = await upstream(defer);
    const redis = await startRedis();
    defer(() => redis.stop());
    const prefix = 'tgea:';
    const yaml = (up) => config(up, '', { state: `{ persist: false, redis: { url: "redis://127.0.0.1:${redis.port}/0", prefix: "${prefix}" } }` });
    const [a, b] = await Promise.all([gateway(defer, yaml(upA)), gateway(defer, yaml(upB))]);
    const hash = `${prefix}docs:endpoints`;

    // B looks first (and may cache the miss), then A creates it.
    assertError(await endpoint(b, 'shared', { input: 'x' }), 404, 'endpoint_not_found', b);
    const def = { slug: 'shared', model: 'mock-1', system_prompt: 'Version one.' };
    const made = await create(a, def);
    assert.equal(answerOf(await endpoint(a, 'shared', { input: 'on a' }), a), 'reply from mock-1', 'at once on A');
    assert.deepEqual(pairs(chats(upA)[0].body.messages), [['system', 'Version one.'], ['user', 'on a']]);

    // In redis: one field per slug, "<updated_ms> <json>".
    assert.deepEqual(await redis.cli('HKEYS', hash), ['shared']);
    const [value] = await redis.cli('HGET', hash, 'shared');
    const m = /^(\d+) (.*)$/s.exec(value);
    assert.ok(m, `the stored value: ${value}`);
    assert.equal(Math.floor(Number(m[1]) / 1000), made.updated_at);
    assert.deepEqual(JSON.parse(m[2]), def);

    // The admin API on B reads the store; a call on B sees it within its cache time.
    const onB = await admin(b, 'GET', '/admin/endpoints/shared');
    assert.equal(onB.status, 200, why(onB, b));
    assert.deepEqual(onB.json, made);
    let t0 = Date.now();
    await pollUntil(async () => (await endpoint(b, 'shared', { input: 'on b' })).status === 200, 6000, 'the endpoint callable on B');
    assert.ok(Date.now() - t0 < 4500, `seen on B after ${Date.now() - t0} ms (cache 2 s)`);
    assert.deepEqual(pairs(chats(upB).at(-1).body.messages), [['system', 'Version one.'], ['user', 'on b']]);
    // Two replicas cannot both create it.
    assertError(await admin(b, 'POST', '/admin/endpoints', { slug: 'shared', model: 'mock-2' }), 409, 'endpoint_exists', b);

    // A change on A: at once on A, within the cache time on B.
    const p = await admin(a, 'PATCH', '/admin/endpoints/shared', { system_prompt: 'Version two.' });
    assert.equal(p.status, 200, why(p, a));
    answerOf(await endpoint(a, 'shared', { input: 'on a' }), a);
    assert.equal(chats(upA).at(-1).body.messages[0].content, 'Version two.');
    t0 = Date.now();
    await pollUntil(async () => {
      answerOf(await endpoint(b, 'shared', { input: 'on b' }), b);
      return chats(upB).at(-1).body.messages[0].content === 'Version two.';
    }, 6000, 'the change seen on B');
    assert.ok(Date.now() - t0 < 4500, `change seen on B after ${Date.now() - t0} ms (cache 2 s)`);

    // A delete on A: 404 at once on A, within the cache time on B; the hash is empty.
    const d = await admin(a, 'DELETE', '/admin/endpoints/shared');
    assert.equal(d.status, 200, why(d, a));
    assertError(await endpoint(a, 'shared', { input: 'x' }), 404, 'endpoint_not_found', a);
    assert.deepEqual(await redis.cli('HKEYS', hash), []);
    assertError(await admin(b, 'GET', '/admin/endpoints/shared'), 404, 'endpoint_not_found', b);
    t0 = Date.now();
    const gone = await pollUntil(async () => {
      const r = await endpoint(b, 'shared', { input: 'x' });
      return r.status === 404 ? r : null;
    }, 6000, 'the endpoint gone on B');
    assertError(gone, 404, 'endpoint_not_found', b);
    assert.ok(Date.now() - t0 < 4500, `delete seen on B after ${Date.now() - t0} ms (cache 2 s)`);
  });
});
