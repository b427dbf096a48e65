// The rest of the OpenAI surface, passed through by model (POST /v1/images/generations,
// /v1/completions, /v1/moderations, /v1/rerank): the official `openai` SDK talks to the real
// binary, which routes each request like chat and sends it to the same path of an OpenAI-shaped
// fake upstream (in this process, so the test sees the path, the body and the key it got); a
// provider that does not serve the path answers 400 unsupported_for_provider; keys and limits apply;
// the offline demo model answers all four. Everything a test starts is stopped when it ends.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startGateway, assertClean } from './lib/harness.mjs';
import { startFakeUpstream } from './lib/fake_upstream.mjs';
import { startFakeAnthropic, startFakeGemini } from './lib/fake_native.mjs';

const why = (gw) => `\n--- gateway stderr (tail) ---\n${gw?.logs.slice(-3000)}`;
const sdk = (gw, apiKey = 'client-key') => new OpenAI({ baseURL: gw.url + '/v1', apiKey, maxRetries: 0, timeout: 20000 });

async function post(gw, path, body, headers = {}) {
  const res = await fetch(gw.url + path, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
  });
  const raw = await res.text();
  let json = null;
  try { json = JSON.parse(raw); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, raw };
}

// What the fake upstream answers on each passed-through path (the chat path stays the default).
function answer(record) {
  const path = record.url.replace(/^\/v1/, '');
  const model = record.body?.model;
  if (model === 'img-fail') return 503;
  if (path === '/images/generations')
    return { status: 200, body: { created: 1, data: Array.from({ length: record.body.n ?? 1 },
      () => ({ url: `https://img.example/${encodeURIComponent(record.body.prompt)}.png` })) } };
  if (path === '/completions')
    return { status: 200, body: { id: 'cmpl-1', object: 'text_completion', created: 1, model,
      choices: [{ text: ' upon a time', index: 0, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 } } };
  if (path === '/moderations')
    return { status: 200, body: { id: 'modr-1', model, results: [{ flagged: true, categories: { violence: true }, category_scores: { violence: 0.9 } }] } };
  if (path === '/rerank')
    return { status: 200, body: { model, results: [{ index: 1, relevance_score: 0.8 }, { index: 0, relevance_score: 0.1 }] } };
  return null;
}

describe('passthrough by model to an OpenAI-shaped upstream', () => {
  let up, anth, gw;
  const calls = (path) => up.state.requests.filter((r) => r.url.endsWith(path));
  before(async () => {
    up = await startFakeUpstream({ intercept: answer });
    anth = await startFakeAnthropic();
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, timeout: 20s, models: [dall-e-3, gpt-3.5-turbo-instruct, omni-moderation-latest, rerank-1, img-fail] }
  - { name: claude, type: anthropic, base_url: "${anth.url}", api_key: sk-ant-fake, models: [claude-x] }
  - { name: demo, type: scripted, models: [toolgate-demo] }
keys:
  - { name: app, key: sk-app-pass }
  - { name: slow, key: sk-slow-pass, limits: { requests_per_minute: 1 } }
  - { name: narrow, key: sk-narrow-pass, models: [rerank-1] }
`);
  });
  after(async () => {
    try {
      await gw?.stop();
      if (gw) assertClean(gw);
    } finally {
      await Promise.all([up?.close(), anth?.close()]);
    }
  });

  test('images.generate: the body reaches /images/generations with the provider key, the answer comes back as it was', async () => {
    const r = await sdk(gw, 'sk-app-pass').images.generate({ model: 'dall-e-3', prompt: 'a lighthouse', n: 1, size: '1024x1024' });
    assert.equal(r.data[0].url, 'https://img.example/a%20lighthouse.png');
    const got = calls('/images/generations');
    assert.equal(got.length, 1);
    assert.equal(got[0].url, '/v1/images/generations');
    assert.deepEqual(got[0].body, { model: 'dall-e-3', prompt: 'a lighthouse', n: 1, size: '1024x1024' });
    assert.equal(got[0].headers.authorization, 'Bearer sk-upstream', 'the provider key, never the client key');
  });

  test('completions.create and moderations.create pass through; moderations without a model take omni-moderation-latest', async () => {
    const c = await sdk(gw, 'sk-app-pass').completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Once', max_tokens: 5 });
    assert.equal(c.choices[0].text, ' upon a time');
    assert.equal(c.usage.total_tokens, 6);
    assert.equal(calls('/completions').at(-1).body.max_tokens, 5);
    const m = await sdk(gw, 'sk-app-pass').moderations.create({ input: 'something violent' });
    assert.equal(m.results[0].flagged, true);
    assert.equal(calls('/moderations').at(-1).body.model, 'omni-moderation-latest');
  });

  test('rerank: passes through; a key may only use its models (403 before any upstream call)', async () => {
    const before = calls('/rerank').length;
    const r = await post(gw, '/v1/rerank', { model: 'rerank-1', query: 'q', documents: ['a', 'b'] }, { authorization: 'Bearer sk-narrow-pass' });
    assert.equal(r.status, 200, r.raw + why(gw));
    assert.deepEqual(r.json.results.map((x) => x.index), [1, 0]);
    const denied = await post(gw, '/v1/images/generations', { model: 'dall-e-3', prompt: 'x' }, { authorization: 'Bearer sk-narrow-pass' });
    assert.equal(denied.status, 403, denied.raw);
    assert.equal(calls('/rerank').length, before + 1);
  });

  test('errors: a provider that does not serve the path is 400 unsupported_for_provider; fields and keys are checked first', async () => {
    const key = { authorization: 'Bearer sk-app-pass' };
    const anthropic = await post(gw, '/v1/images/generations', { model: 'claude-x', prompt: 'x' }, key);
    assert.equal(anthropic.status, 400, anthropic.raw);
    assert.equal(anthropic.json.error.code, 'unsupported_for_provider');
    assert.match(anthropic.json.error.message, /provider 'claude' \(type anthropic\) does not serve \/v1\/images\/generations/);
    const noPrompt = await post(gw, '/v1/images/generations', { model: 'dall-e-3' }, key);
    assert.equal(noPrompt.status, 400);
    assert.equal(noPrompt.json.error.param, 'prompt');
    const noDocs = await post(gw, '/v1/rerank', { model: 'rerank-1', query: 'q' }, key);
    assert.equal(noDocs.status, 400);
    assert.equal(noDocs.json.error.param, 'documents');
    const streamed = await post(gw, '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'x', stream: true }, key);
    assert.equal(streamed.status, 400);
    assert.equal(streamed.json.error.code, 'unsupported_stream');
    const noKey = await post(gw, '/v1/moderations', { input: 'x' });
    assert.equal(noKey.status, 401);
    const down = await post(gw, '/v1/images/generations', { model: 'img-fail', prompt: 'x' }, key);
    assert.equal(down.status, 503, down.raw);  // an upstream 503 stays a 503 (as on chat), after the retries
    assert.equal(down.json.error.code, 'upstream_unavailable', down.raw);
    assert.doesNotMatch(down.raw, /fake upstream says/, 'the upstream body stays in the log');
  });

  test('a key limit counts these routes too: 429 with Retry-After on the second call in a minute', async () => {
    const one = await post(gw, '/v1/moderations', { input: 'a' }, { authorization: 'Bearer sk-slow-pass' });
    assert.equal(one.status, 200, one.raw);
    const two = await post(gw, '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'b' }, { authorization: 'Bearer sk-slow-pass' });
    assert.equal(two.status, 429, two.raw);
    assert.ok(Number(two.headers.get('retry-after')) >= 1);
  });

  test('the offline demo model answers all four', async () => {
    const c = sdk(gw, 'sk-app-pass');
    const img = await c.images.generate({ model: 'toolgate-demo', prompt: 'a cat', n: 2 });
    assert.equal(img.data.length, 2);
    assert.ok(Buffer.from(img.data[0].b64_json, 'base64').subarray(1, 4).toString() === 'PNG');
    const comp = await c.completions.create({ model: 'toolgate-demo', prompt: 'Hello' });
    assert.match(comp.choices[0].text, /Hello/);
    const mod = await c.moderations.create({ model: 'toolgate-demo', input: 'hi' });
    assert.equal(mod.results[0].flagged, false);
    const rr = await post(gw, '/v1/rerank', { model: 'toolgate-demo', query: 'red apple', documents: ['blue car', 'red apple pie', 'green apple'] },
      { authorization: 'Bearer sk-app-pass' });
    assert.deepEqual(rr.json.results.map((x) => x.index), [1, 2, 0]);
  });
});

// Images are priced per image (the catalog's dall-e-3, a provider's own `prices`): a key's budget
// reserves n images before the call and is charged for the images the answer holds.
describe('images priced per image against a budget', () => {
  let up, gw;
  const ADMIN = 'admin-token-images';
  before(async () => {
    up = await startFakeUpstream({ intercept: answer });
    gw = await startGateway(`
providers_from_env: false
admin: { token: ${ADMIN} }
state: { persist: false }   # the ledger in memory: no ./toolgate.db
providers:
  - name: openai      # the catalog's prices are those of the provider named openai
    type: openai
    base_url: "${up.url}"
    api_key: sk-upstream
    models: [dall-e-3, img-priced, img-unpriced]
    prices: { img-priced: { per_image: 0.25 } }
keys:
  - { name: budgeted, key: sk-budget-img, budget: { daily_usd: 1 } }
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

  test('spend is n x per_image; a request that cannot fit is 429 before the call; a model without a price is refused', async () => {
    const spent = async () => (await (await fetch(gw.url + '/admin/spend?key=budgeted&period=day',
      { headers: { authorization: `Bearer ${ADMIN}` } })).json()).spent_usd;
    const client = sdk(gw, 'sk-budget-img');
    const two = await client.images.generate({ model: 'img-priced', prompt: 'two boats', n: 2 });
    assert.equal(two.data.length, 2);
    assert.ok(Math.abs(await spent() - 0.5) < 1e-9, `spent ${await spent()}${why(gw)}`);
    const one = await client.images.generate({ model: 'dall-e-3', prompt: 'a boat' });  // the catalog's price
    assert.equal(one.data.length, 1);
    assert.ok(Math.abs(await spent() - 0.54) < 1e-9, `spent ${await spent()}`);
    const calls = up.state.requests.length;
    await assert.rejects(client.images.generate({ model: 'img-priced', prompt: 'too many', n: 2 }),
      (e) => e.status === 429 && e.code === 'budget_exceeded');
    assert.equal(up.state.requests.length, calls, 'refused before the call');
    await assert.rejects(client.images.generate({ model: 'img-unpriced', prompt: 'x' }),
      (e) => e.status === 403 && e.code === 'model_unpriced');
    assert.ok(Math.abs(await spent() - 0.54) < 1e-9);
  });
});

// Gemini's image models through the native adapter: Imagen by :predict (n images, size as an
// aspect ratio), a Gemini image model by :generateContent with image output; the answer in
// OpenAI's shape with b64_json.
describe('images on a Gemini provider', () => {
  let gem, gw;
  before(async () => {
    gem = await startFakeGemini();
    gw = await startGateway(`
providers_from_env: false
providers:
  - { name: gemini, type: google, base_url: "${gem.url}", api_key: gm-fake, models: [imagen-4.0-generate-001, gemini-2.5-flash-image] }
`);
  });
  after(async () => {
    try {
      await gw?.stop();
      if (gw) assertClean(gw);
    } finally {
      await gem?.close();
    }
  });

  test('imagen and gemini image models answer b64_json; url, n on a Gemini model and a filtered answer are clean 400s', async () => {
    const client = sdk(gw);
    const decoded = (img) => Buffer.from(img.b64_json, 'base64').toString();
    const im = await client.images.generate({ model: 'imagen-4.0-generate-001', prompt: 'a red kite', n: 2, size: '1792x1024', response_format: 'b64_json' });
    assert.deepEqual(im.data.map(decoded), ['a red kite#0|16:9', 'a red kite#1|16:9'], JSON.stringify(im) + why(gw));
    assert.equal(typeof im.created, 'number');
    const gm = await client.images.generate({ model: 'gemini-2.5-flash-image', prompt: 'a blue kite' });
    assert.deepEqual(gm.data.map(decoded), ['a blue kite#gemini']);
    const sent = gem.state.requests.map((r) => r.url);
    assert.ok(sent.some((u) => u.endsWith('/imagen-4.0-generate-001:predict')) && sent.some((u) => u.endsWith('/gemini-2.5-flash-image:generateContent')), sent.join(','));
    const bad = (code) => (e) => e.status === 400 && e.code === code;
    await assert.rejects(client.images.generate({ model: 'imagen-4.0-generate-001', prompt: 'x', response_format: 'url' }), bad('unsupported_for_provider'));
    await assert.rejects(client.images.generate({ model: 'gemini-2.5-flash-image', prompt: 'x', n: 2 }), bad('invalid_n'));
    await assert.rejects(client.images.generate({ model: 'imagen-4.0-generate-001', prompt: 'forbidden thing' }), bad('content_blocked'));
  });
});

describe('with guardrails configured', () => {
  test('the routes\' texts pass the guardrails: a blocked prompt is 400 before any upstream call, a redacted one goes out redacted, a completion and a transcript are checked on the way back; moderations pass', async (t) => {
    const up = await startFakeUpstream({ intercept: answer });
    t.after(() => up.close());
    const gw = await startGateway(`
providers_from_env: false
providers:
  - { name: local, type: openai, base_url: "${up.url}", api_key: sk-upstream, models: [dall-e-3, gpt-3.5-turbo-instruct, omni-moderation-latest, rerank-1] }
  - { name: demo, type: scripted, models: [toolgate-demo] }
plugins:
  - name: secret-scan
    config: { action: block }
  - name: pii-redact
    config: { entities: [email], action: redact }
  - name: word-filter
    stage: after_request
    config: { words: [upon, heard], action: redact }
`);
    t.after(async () => { await gw.stop(); assertClean(gw); });
    const AWS = 'AKIA' + 'Z7QK3VXRM2PLN4TB';
    // Blocked: nothing goes upstream.
    for (const [path, body] of [['/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: `key ${AWS}` }],
      ['/v1/images/generations', { model: 'dall-e-3', prompt: `a sign saying ${AWS}` }],
      ['/v1/rerank', { model: 'rerank-1', query: 'q', documents: ['a', { text: `b ${AWS}` }] }],
      ['/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: ['fine', `also ${AWS}`] }]]) {
      const r = await post(gw, path, body);
      assert.equal(r.status, 400, `${path}: ${r.raw}`);
      assert.equal(r.json.error.type, 'guardrail_violation', r.raw);
      assert.equal(r.json.error.code, 'secret-scan', r.raw);
      assert.ok(!r.raw.includes(AWS), 'the secret is not echoed');
    }
    const form = new FormData();
    form.append('model', 'toolgate-demo');
    form.append('prompt', `context ${AWS}`);
    form.append('file', new File([Buffer.from('RIFF....WAVE')], 'a.wav', { type: 'audio/wav' }));
    const blockedUpload = await fetch(`${gw.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    assert.equal(blockedUpload.status, 400);
    assert.equal((await blockedUpload.json()).error.code, 'secret-scan');
    assert.equal(up.state.requests.length, 0, 'nothing went upstream');

    // Redacted on the way out: the upstream sees a placeholder.
    const img = await post(gw, '/v1/images/generations', { model: 'dall-e-3', prompt: 'mail it to ann@example.com' });
    assert.equal(img.status, 200, img.raw + why(gw));
    const sent = up.state.requests.at(-1).body;
    assert.ok(!sent.prompt.includes('ann@example.com') && sent.prompt.startsWith('mail it to '), sent.prompt);
    const rr = await post(gw, '/v1/rerank', { model: 'rerank-1', query: 'who is bob@example.com', documents: ['x', { text: 'carl@example.com' }] });
    assert.equal(rr.status, 200, rr.raw);
    const sentRerank = JSON.stringify(up.state.requests.at(-1).body);
    assert.ok(!sentRerank.includes('@example.com'), sentRerank);

    // Checked on the way back: the completion's text and the transcript.
    const c = await post(gw, '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'once' });
    assert.equal(c.status, 200, c.raw);
    assert.ok(!c.json.choices[0].text.includes('upon'), c.json.choices[0].text);
    const ok = new FormData();
    ok.append('model', 'toolgate-demo');
    ok.append('file', new File([Buffer.from('RIFF....WAVE')], 'a.wav', { type: 'audio/wav' }));
    const tr = await fetch(`${gw.url}/v1/audio/transcriptions`, { method: 'POST', body: ok });
    const trJson = await tr.json();
    assert.equal(tr.status, 200, JSON.stringify(trJson));
    assert.ok(typeof trJson.text === 'string' && !trJson.text.includes('heard') && trJson.text.includes('offline demo'), trJson.text);

    const m = await post(gw, '/v1/moderations', { input: 'fine' });
    assert.equal(m.status, 200, m.raw + why(gw));
    const v = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(v, /toolgate_guardrail_verdicts_total\{plugin="secret-scan",stage="before_request",outcome="block"\} [1-9]/);
  });
});
