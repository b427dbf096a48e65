// The routing layer through the real binary: fallback, retries, timeouts, resets, stream guards,
// circuit breakers, load balancing, least-latency, ab-test, conditional and content-based routing,
// credential rotation, aliases, the openai SDK, metrics/health/access log, embeddings, check-config.
// Every scenario gets its own gateway and its own scripted upstreams (lib/flaky_upstream.mjs), so
// breaker, budget, latency and key-cooldown state never leaks from one test into another.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startGateway, runToolgate, writeConfig, readSse, sleep, waitFor } from './lib/harness.mjs';
import { startFlakyUpstream } from './lib/flaky_upstream.mjs';

// --- helpers -------------------------------------------------------------------------------------

// Starts one scripted upstream per name ('a' -> upstream "A"), a gateway with yaml(ups), runs fn,
// and always stops both. A sanitizer report in the gateway's stderr fails the test.
async function scenario(names, yaml, fn) {
  const ups = {};
  let gw;
  try {
    for (const n of names) ups[n] = await startFlakyUpstream(n.toUpperCase());
    gw = await startGateway(yaml(ups));
    await fn(gw, ups);
  } finally {
    await gw?.stop();
    for (const u of Object.values(ups)) await u.close();
  }
  assert.doesNotMatch(gw.logs, /AddressSanitizer|LeakSanitizer|runtime error:/, `sanitizer report:\n${gw.logs.slice(-4000)}`);
}

// One provider line of type openai for an upstream.
// `extra` may set its own timeout (the default is 5s).
const prov = (name, up, extra = '') =>
  `  - { name: ${name}, type: openai, base_url: "${up.url}", api_key: sk-${name}-secret${/\btimeout:/.test(extra) ? '' : ', timeout: 5s'}${extra ? ', ' + extra : ''} }`;

const head = (ups, extra = {}) => `providers_from_env: false
providers:
${Object.entries(ups).map(([n, u]) => prov(n, u, extra[n])).join('\n')}
`;

// A chat request; streams are read whole. Returns status, headers, parsed body or events, and text.
async function chat(gw, model, { stream = false, headers = {}, content = 'hi', extra = {} } = {}) {
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }], ...(stream ? { stream: true } : {}), ...extra }),
  });
  const out = { status: res.status, headers: Object.fromEntries(res.headers) };
  if (stream && res.status === 200 && /event-stream/.test(res.headers.get('content-type') ?? '')) {
    out.events = await readSse(res);
    out.chunks = out.events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e));
    out.text = out.chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
    out.error = out.chunks.find((c) => c.error)?.error;
    out.done = out.events.at(-1) === '[DONE]';
  } else {
    const raw = await res.text();
    try { out.json = JSON.parse(raw); } catch { out.raw = raw; }
    out.text = out.json?.choices?.[0]?.message?.content;
  }
  return out;
}

// What to show when an assertion fails: the response and the end of the gateway's log.
const why = (r, gw) => `response: ${JSON.stringify(r)}\n--- gateway stderr (tail) ---\n${gw.logs.slice(-3000)}`;
const routeHeaders = (r) => ({ provider: r.headers['x-toolgate-provider'], model: r.headers['x-toolgate-model'], attempts: r.headers['x-toolgate-attempts'] });
const health = async (gw) => (await fetch(gw.url + '/health')).json();

// Runs `total` calls of fn(i), at most `width` at a time.
async function bounded(total, width, fn) {
  const results = new Array(total);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < total) { const i = next++; results[i] = await fn(i); }
  }));
  return results;
}

const fallbackAB = (ups, aRetry = '') => head(ups, { a: 'timeout: 300ms' }) + `
strategy:
  mode: fallback
  targets:
    - { provider: a${aRetry ? ', ' + aRetry : ''} }
    - { provider: b }
`;

// --- 1. fallback ----------------------------------------------------------------------------------

describe('fallback', () => {
  test('A answers 500: the client gets B\'s answer, with the routing headers', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u), async (gw, { a, b }) => {
      a.always(500);
      const r = await chat(gw, 'm-test');
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B', why(r, gw));
      assert.deepEqual(routeHeaders(r), { provider: 'b', model: 'm-test', attempts: '2' }, why(r, gw));
      assert.equal(a.count, 1);
      assert.equal(b.count, 1);
      assert.equal(b.requests[0].body.model, 'm-test', 'the requested model is the upstream model without a target model');
      assert.equal(b.requests[0].auth, 'Bearer sk-b-secret', 'B is called with its own key');
    });
  });

  test('A answers 400: neither retried nor fallen back', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u, 'retry: { attempts: 3, backoff: 10ms, max_backoff: 50ms }'), async (gw, { a, b }) => {
      a.always({ status: 400, body: { error: { message: 'temperature must be <= 2', type: 'invalid_request_error' } } });
      const r = await chat(gw, 'm-test');
      assert.equal(r.status, 400, why(r, gw));
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.match(r.json.error.message, /temperature must be <= 2/);
      assert.equal(a.count, 1, 'a 400 is not retried');
      assert.equal(b.count, 0, 'a 400 is not fallen back');
    });
  });
});

// --- 2. retries -----------------------------------------------------------------------------------

describe('retries', () => {
  const retry = 'retry: { attempts: 3, on_status_codes: [429, 500, 502, 503, 504], backoff: 10ms, max_backoff: 50ms, max_retry_after: 60s }';

  test('503 twice, then OK, with attempts: 3: A answers on the third attempt', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u, retry), async (gw, { a, b }) => {
      a.script(503, 503, 'ok');
      const r = await chat(gw, 'm-test');
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from A');
      assert.equal(a.count, 3);
      assert.equal(b.count, 0);
      assert.deepEqual(routeHeaders(r), { provider: 'a', model: 'm-test', attempts: '3' }, why(r, gw));
    });
  });

  test('429 with Retry-After: 120 (over max_retry_after): moves on to B at once', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u, retry), async (gw, { a, b }) => {
      a.script({ status: 429, headers: { 'retry-after': '120' } });
      const start = Date.now();
      const r = await chat(gw, 'm-test');
      const took = Date.now() - start;
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B');
      assert.equal(a.count, 1, 'A is not retried when it asks for a longer wait than max_retry_after');
      assert.equal(b.count, 1);
      assert.equal(r.headers['x-toolgate-attempts'], '2');
      assert.ok(took < 2000, `took ${took} ms`);
    });
  });

  test('429 with Retry-After: 5 under max_retry_after but past the request deadline (2s): moves on to B', async () => {
    const yaml = (u) => fallbackAB(u, retry) + 'server: { request_timeout: 2s }\nagent_loop: { loop_timeout: 1s }\n';
    await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
      a.script({ status: 429, headers: { 'retry-after': '5' } });
      const start = Date.now();
      const r = await chat(gw, 'm-test');
      const took = Date.now() - start;
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B');
      assert.equal(a.count, 1, 'no retry that could only start after the deadline');
      assert.equal(b.count, 1);
      assert.ok(took < 1500, `took ${took} ms`);
    });
  });

  test('429 with retry-after-ms: 50, then OK: A answers on the second attempt, after the wait', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u, retry), async (gw, { a, b }) => {
      a.script({ status: 429, headers: { 'retry-after-ms': '50' } }, 'ok');
      const r = await chat(gw, 'm-test');
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from A');
      assert.equal(a.count, 2);
      assert.equal(b.count, 0);
      assert.equal(r.headers['x-toolgate-attempts'], '2');
      const gap = a.requests[1].at - a.requests[0].at;
      assert.ok(gap >= 45, `the retry came ${gap} ms after the 429 (retry-after-ms: 50)`);
    });
  });
});

// --- 3./4. hang and reset -------------------------------------------------------------------------

describe('timeouts and resets', () => {
  test('A never answers (provider timeout 300ms): B answers', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u), async (gw, { a, b }) => {
      a.always('hang');
      const start = Date.now();
      const r = await chat(gw, 'm-test');
      const took = Date.now() - start;
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B');
      assert.equal(r.headers['x-toolgate-provider'], 'b');
      assert.equal(a.count, 1);
      assert.ok(took >= 250 && took < 3000, `took ${took} ms (A's timeout is 300 ms)`);
      await waitFor(() => a.requests[0].closed, 2000, 'the gateway to drop the hanging request');
    });
  });

  test('A resets the connection before the first byte (plain): B answers', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u), async (gw, { a, b }) => {
      a.always('reset');
      const r = await chat(gw, 'm-test');
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B');
      assert.equal(r.headers['x-toolgate-provider'], 'b');
      assert.ok(a.count >= 1);
      assert.equal(b.count, 1);
    });
  });

  test('A resets the connection before the first byte (stream): the stream comes whole from B only', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u), async (gw, { a, b }) => {
      a.always('reset');
      const r = await chat(gw, 'm-test', { stream: true });
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B', why(r, gw));
      assert.ok(r.done, 'ends with [DONE]');
      assert.equal(r.error, undefined);
      assert.ok(r.chunks.every((c) => c.id === 'chatcmpl-B'), `chunks from B only: ${JSON.stringify(r.chunks)}`);
      assert.equal(r.chunks.filter((c) => c.choices?.[0]?.delta?.role === 'assistant').length, 1, 'one role chunk');
      assert.equal(r.headers['x-toolgate-provider'], 'b');
      assert.ok(a.count >= 1);
      assert.equal(b.count, 1);
    });
  });
});

// --- 5. streaming guard ---------------------------------------------------------------------------

describe('streams', () => {
  test('A cuts the stream after its first content: A\'s content, then an error event; no second attempt', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u, 'retry: { attempts: 3, backoff: 10ms, max_backoff: 50ms }'), async (gw, { a, b }) => {
      a.always('cut');
      const r = await chat(gw, 'm-test', { stream: true });
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'partial from A', why(r, gw));
      const last = JSON.parse(r.events.at(-1));
      assert.ok(last.error && typeof last.error.message === 'string', `last event is an error: ${r.events.at(-1)}`);
      assert.ok(!r.done, 'no [DONE] after a cut stream');
      assert.equal(r.headers['x-toolgate-provider'], 'a');
      assert.equal(a.count, 1, 'not retried after the first content byte');
      assert.equal(b.count, 0, 'not fallen back after the first content byte');
    });
  });

  test('A fails with 500 before any byte of a stream: the stream comes from B only', async () => {
    await scenario(['a', 'b'], (u) => fallbackAB(u), async (gw, { a, b }) => {
      a.always(500);
      const r = await chat(gw, 'm-test', { stream: true });
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B');
      assert.ok(r.done);
      assert.ok(r.chunks.every((c) => c.id === 'chatcmpl-B'));
      assert.equal(r.headers['x-toolgate-provider'], 'b');
      assert.equal(r.headers['x-toolgate-attempts'], '2');
      assert.equal(a.count, 1);
      assert.equal(b.count, 1);
    });
  });
});

// --- 6. circuit breaker ---------------------------------------------------------------------------

describe('circuit breaker', () => {
  test('opens after 2 failures, skips A, half-opens after its timeout, closes once A is healthy', async () => {
    const yaml = (u) => head(u) + `
strategy:
  mode: fallback
  targets:
    - { provider: a, circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout: 500ms } }
    - { provider: b }
`;
    await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
      a.always(500);
      for (let i = 0; i < 2; i++) {
        const r = await chat(gw, 'm-test');
        assert.equal(r.text, 'from B', why(r, gw));
      }
      assert.equal(a.count, 2);
      let h = await health(gw);
      assert.equal(h.routing[0].pool, 'default');
      assert.equal(h.routing[0].targets[0].target, 'a');
      assert.equal(h.routing[0].targets[0].breaker, 'open', JSON.stringify(h.routing));
      assert.equal(h.routing[0].targets[1].breaker, 'closed');
      for (let i = 0; i < 5; i++) {
        const r = await chat(gw, 'm-test');
        assert.equal(r.text, 'from B', why(r, gw));
        assert.equal(r.headers['x-toolgate-attempts'], '1', 'A is skipped, not tried');
      }
      assert.equal(a.count, 2, 'no request reaches A while its breaker is open');
      assert.equal(b.count, 7);

      // After the timeout, half-open: one probe reaches A; a failing probe opens the breaker again.
      await waitFor(async () => (await health(gw)).routing[0].targets[0].breaker === 'half_open', 3000, 'half_open');
      let r = await chat(gw, 'm-test');
      assert.equal(r.text, 'from B', why(r, gw));
      assert.equal(a.count, 3, 'the half-open breaker let one probe through');
      h = await health(gw);
      assert.equal(h.routing[0].targets[0].breaker, 'open', 'a failed probe opens it again');

      // A recovers: the next probe succeeds and closes the breaker (success_threshold 1).
      a.always('ok');
      await waitFor(async () => (await health(gw)).routing[0].targets[0].breaker === 'half_open', 3000, 'half_open again');
      r = await chat(gw, 'm-test');
      assert.equal(r.text, 'from A', why(r, gw));
      h = await health(gw);
      assert.equal(h.routing[0].targets[0].breaker, 'closed', JSON.stringify(h.routing));
      r = await chat(gw, 'm-test');
      assert.equal(r.text, 'from A');
      assert.equal(a.count, 5);
    });
  });

  test('every target\'s breaker open: 503 targets_unavailable with Retry-After', async () => {
    const yaml = (u) => head(u) + `
strategy:
  mode: fallback
  targets:
    - { provider: a, circuit_breaker: { failure_threshold: 1, timeout: 30s } }
    - { provider: b, circuit_breaker: { failure_threshold: 1, timeout: 30s } }
`;
    await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
      a.always(500);
      b.always(500);
      const first = await chat(gw, 'm-test');
      assert.equal(first.status, 502, why(first, gw));
      assert.equal(first.headers['x-toolgate-attempts'], '2');
      const r = await chat(gw, 'm-test');
      assert.equal(r.status, 503, why(r, gw));
      assert.equal(r.json.error.code, 'targets_unavailable');
      const ra = Number(r.headers['retry-after']);
      assert.ok(ra >= 1 && ra <= 31, `retry-after: ${r.headers['retry-after']}`);
      assert.equal(a.count, 1);
      assert.equal(b.count, 1);
    });
  });
});

// --- 7./8./9. loadbalance, least-latency, ab-test -------------------------------------------------

describe('strategies', () => {
  test('loadbalance 3:1 over 400 requests: 300/100 (smooth weighted round robin)', async () => {
    const yaml = (u) => head(u) + `
strategy:
  mode: loadbalance
  targets:
    - { provider: a, weight: 3 }
    - { provider: b, weight: 1 }
`;
    await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
      const results = await bounded(400, 8, () => chat(gw, 'm-test'));
      assert.ok(results.every((r) => r.status === 200), `non-200: ${JSON.stringify(results.find((r) => r.status !== 200))}`);
      const fromA = results.filter((r) => r.text === 'from A').length;
      const fromB = results.filter((r) => r.text === 'from B').length;
      assert.ok(Math.abs(a.count - 300) <= 8, `A got ${a.count}`);
      assert.ok(Math.abs(b.count - 100) <= 8, `B got ${b.count}`);
      assert.equal(fromA + fromB, 400);
      assert.equal(fromA, a.count);
    });
  });

  test('least-latency pool "fast": after a warm-up most requests go to the faster target', async () => {
    const yaml = (u) => head(u) + `
pools:
  - name: fast
    mode: least-latency
    targets: [ { provider: a, model: m-a }, { provider: b, model: m-b } ]
`;
    await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
      a.always({ ok: true, delay: 80 });
      b.always({ ok: true, delay: 5 });
      for (let i = 0; i < 20; i++) {
        const r = await chat(gw, 'fast');
        assert.equal(r.status, 200, why(r, gw));
      }
      assert.ok(a.count >= 1 && b.count >= 1, 'both targets got samples in the warm-up');
      assert.ok(a.requests.every((q) => q.body.model === 'm-a') && b.requests.every((q) => q.body.model === 'm-b'));
      let toB = 0;
      for (let i = 0; i < 40; i++) {
        const r = await chat(gw, 'fast');
        if (r.text === 'from B') toB++;
      }
      assert.ok(toB > 28, `${toB} of 40 went to B`);
      const h = await health(gw);
      const pool = h.routing.find((p) => p.pool === 'fast');
      assert.equal(pool.mode, 'least-latency');
      assert.ok(pool.targets[1].p50_ms < pool.targets[0].p50_ms, JSON.stringify(pool));
    });
  });

  test('ab-test 50:50: sticky per bearer key, and both variants near half across 200 keys', async () => {
    const yaml = (u) => head(u) + `
strategy:
  mode: ab-test
  targets: [ { provider: a }, { provider: b } ]
  variants:
    - { label: a, target: a, weight: 50 }
    - { label: b, target: b, weight: 50 }
`;
    await scenario(['a', 'b'], yaml, async (gw) => {
      const seen = new Set();
      for (let i = 0; i < 10; i++) {
        const r = await chat(gw, 'm-test', { headers: { authorization: 'Bearer client-key-sticky' } });
        assert.equal(r.status, 200, why(r, gw));
        seen.add(r.headers['x-toolgate-variant']);
        assert.equal(r.text, `from ${r.headers['x-toolgate-variant'].toUpperCase()}`, 'the variant\'s target answers');
      }
      assert.equal(seen.size, 1, `one key, one variant: ${[...seen]}`);
      assert.ok(['a', 'b'].includes([...seen][0]));
      const results = await bounded(200, 8, (i) => chat(gw, 'm-test', { headers: { authorization: `Bearer client-key-${i}` } }));
      const counts = { a: 0, b: 0 };
      for (const r of results) counts[r.headers['x-toolgate-variant']]++;
      assert.equal(counts.a + counts.b, 200, JSON.stringify(counts));
      assert.ok(counts.a >= 60 && counts.a <= 140, `variant split ${JSON.stringify(counts)}`);
      assert.ok(counts.b >= 60 && counts.b <= 140, `variant split ${JSON.stringify(counts)}`);
      // The same keys again get the same variants.
      const again = await bounded(20, 8, (i) => chat(gw, 'm-test', { headers: { authorization: `Bearer client-key-${i}` } }));
      again.forEach((r, i) => assert.equal(r.headers['x-toolgate-variant'], results[i].headers['x-toolgate-variant'], `key ${i}`));
    });
  });
});

// --- 10./11. conditional and content-based --------------------------------------------------------

describe('conditions', () => {
  test('conditional: model_prefix gpt- and header x-tier: gold go to B, the rest to A', async () => {
    const yaml = (u) => head(u) + `
strategy:
  mode: conditional
  targets: [ { provider: a }, { provider: b } ]
  conditions:
    - { key: model_prefix, value: "gpt-", target: b }
    - { key: header, name: x-tier, value: gold, target: b }
`;
    await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
      let r = await chat(gw, 'gpt-4o');
      assert.equal(r.text, 'from B', why(r, gw));
      assert.equal(b.requests.at(-1).body.model, 'gpt-4o');
      r = await chat(gw, 'llama-3');
      assert.equal(r.text, 'from A', why(r, gw));
      assert.equal(a.requests.at(-1).body.model, 'llama-3');
      r = await chat(gw, 'llama-3', { headers: { 'x-tier': 'gold' } });
      assert.equal(r.text, 'from B', why(r, gw));
      r = await chat(gw, 'llama-3', { headers: { 'x-tier': 'silver' } });
      assert.equal(r.text, 'from A', why(r, gw));
      assert.equal(a.count, 2);
      assert.equal(b.count, 2);
    });
  });

  test('content-based: prompt_regex (?i)invoice goes to B, other prompts to A', async () => {
    const yaml = (u) => head(u) + `
strategy:
  mode: content-based
  targets: [ { provider: a }, { provider: b } ]
  content_conditions:
    - { type: prompt_regex, value: "(?i)invoice", target: b }
`;
    await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
      let r = await chat(gw, 'm-test', { content: 'Please send me the INVOICE for March' });
      assert.equal(r.text, 'from B', why(r, gw));
      r = await chat(gw, 'm-test', { content: 'an invoice, lower case' });
      assert.equal(r.text, 'from B', why(r, gw));
      r = await chat(gw, 'm-test', { content: 'tell me a joke' });
      assert.equal(r.text, 'from A', why(r, gw));
      assert.equal(a.count, 1);
      assert.equal(b.count, 2);
    });
  });
});

// --- 12./13. credentials and aliases --------------------------------------------------------------

describe('credentials and aliases', () => {
  test('key-one refused with 401: the same target is retried with key-two; later requests use key-two; no key in the log', async () => {
    const yaml = (u) => `providers_from_env: false
providers:
  - { name: b, type: openai, base_url: "${u.b.url}", api_keys: [key-one, key-two], timeout: 5s }
strategy:
  mode: single
  targets: [ { provider: b } ]
`;
    await scenario(['b'], yaml, async (gw, { b }) => {
      b.handler = (rec) => (rec.auth === 'Bearer key-one' ? { status: 401, body: { error: { message: 'invalid api key' } } } : 'ok');
      const r = await chat(gw, 'm-test');
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B');
      assert.deepEqual(b.auths, ['Bearer key-one', 'Bearer key-two']);
      for (let i = 0; i < 3; i++) {
        const again = await chat(gw, 'm-test');
        assert.equal(again.status, 200, why(again, gw));
      }
      assert.deepEqual(b.auths.slice(2), ['Bearer key-two', 'Bearer key-two', 'Bearer key-two'], 'key-one cools down');
      await sleep(300); // access lines are written in batches, at least every 100 ms
      assert.ok(!gw.logs.includes('key-one'), `key-one in the log:\n${gw.logs}`);
      assert.ok(!gw.logs.includes('key-two'), `key-two in the log:\n${gw.logs}`);
    });
  });

  test('alias cheap -> b/gpt-x reaches B with model gpt-x', async () => {
    const yaml = (u) => head(u) + `
aliases: { cheap: b/gpt-x }
strategy:
  mode: fallback
  targets: [ { provider: a }, { provider: b } ]
`;
    await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
      const r = await chat(gw, 'cheap');
      assert.equal(r.status, 200, why(r, gw));
      assert.equal(r.text, 'from B');
      assert.equal(b.requests[0].body.model, 'gpt-x');
      assert.equal(r.headers['x-toolgate-provider'], 'b');
      assert.equal(a.count, 0, 'the alias pins provider b: the default pool is not used');
    });
  });
});

test('pools and aliases are model names in /v1/models; a wrong method gets 405 with Allow', async () => {
  const yaml = (u) => head(u, { a: 'models: [m-a]' }) + `
aliases: { cheap: a/m-a }
pools:
  - name: fast
    mode: fallback
    targets: [ { provider: a, model: m-a } ]
`;
  await scenario(['a'], yaml, async (gw) => {
    const models = await (await fetch(gw.url + '/v1/models')).json();
    const ids = models.data.map((m) => m.id);
    for (const id of ['m-a', 'fast', 'cheap']) assert.ok(ids.includes(id), ids.join(','));
    const one = await (await fetch(gw.url + '/v1/models/fast')).json();
    assert.match(one.description, /routing pool \(fallback\)/);
    const wrong = await fetch(gw.url + '/v1/chat/completions');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'POST');
    assert.equal((await wrong.json()).error.code, 'method_not_allowed');
    const none = await fetch(gw.url + '/v1/nothing-here');
    assert.equal(none.status, 404);
    assert.equal((await none.json()).error.code, 'unknown_route');
  });
});

// --- 14. the openai SDK ---------------------------------------------------------------------------

test('openai SDK: whole plain and streamed answers while A fails with 500, routing header readable', async () => {
  await scenario(['a', 'b'], (u) => fallbackAB(u), async (gw, { a, b }) => {
    a.always(500);
    const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'sdk-client-key', maxRetries: 0, timeout: 10000 });
    const { data, response } = await client.chat.completions
      .create({ model: 'm-test', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    assert.equal(data.choices[0].message.content, 'from B');
    assert.equal(response.headers.get('x-toolgate-provider'), 'b');
    assert.equal(response.headers.get('x-toolgate-attempts'), '2');

    const streamed = await client.chat.completions
      .create({ model: 'm-test', stream: true, messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    assert.equal(streamed.response.headers.get('x-toolgate-provider'), 'b');
    let text = '';
    let finish = null;
    for await (const c of streamed.data) {
      text += c.choices[0]?.delta?.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, 'from B');
    assert.equal(finish, 'stop');

    const raw = await client.chat.completions.create({ model: 'm-test', messages: [{ role: 'user', content: 'hi' }] }).asResponse();
    assert.equal(raw.status, 200);
    assert.equal(raw.headers.get('x-toolgate-provider'), 'b');
    assert.equal((await raw.json()).choices[0].message.content, 'from B');
    assert.equal(a.count, 3);
    assert.equal(b.count, 3);
  });
});

// --- 15. metrics and access log -------------------------------------------------------------------

test('/metrics has per-target series; the access log has attempts', async () => {
  const yaml = (u) => head(u) + `
strategy:
  mode: fallback
  targets:
    - { provider: a, model: m-a }
    - { provider: b }
`;
  await scenario(['a', 'b'], yaml, async (gw, { a, b }) => {
    a.script(500);
    let r = await chat(gw, 'm-test');
    assert.equal(r.text, 'from B', why(r, gw));
    r = await chat(gw, 'm-test');
    assert.equal(r.text, 'from A', why(r, gw));
    assert.equal(a.requests[1].body.model, 'm-a');
    assert.equal(r.headers['x-toolgate-model'], 'm-a');
    const text = await (await fetch(gw.url + '/metrics')).text();
    assert.match(text, /^toolgate_route_target_requests_total\{pool="default",target="a\/m-a"\} 2$/m, text);
    assert.match(text, /^toolgate_route_target_requests_total\{pool="default",target="b"\} 1$/m);
    assert.match(text, /^toolgate_route_target_failures_total\{pool="default",target="a\/m-a"\} 1$/m);
    assert.match(text, /^toolgate_route_target_breaker_state\{pool="default",target="a\/m-a"\} 0$/m);
    assert.match(text, /^toolgate_route_target_breaker_state\{pool="default",target="b"\} 0$/m);
    await waitFor(() => gw.accessLog().filter((l) => l.route === '/v1/chat/completions').length >= 2, 3000, 'access log lines');
    const lines = gw.accessLog().filter((l) => l.route === '/v1/chat/completions');
    assert.ok(lines.every((l) => 'attempts' in l), JSON.stringify(lines));
    assert.deepEqual(lines.map((l) => l.attempts), [2, 1]);
  });
});

// --- 16. embeddings -------------------------------------------------------------------------------

test('embeddings through a fallback pool: A 500, B answers', async () => {
  await scenario(['a', 'b'], (u) => fallbackAB(u), async (gw, { a, b }) => {
    a.always(500);
    const res = await fetch(gw.url + '/v1/embeddings', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'emb-test', input: ['x', 'y'] }),
    });
    const body = await res.text();
    assert.equal(res.status, 200, `${body}\n${gw.logs.slice(-3000)}`);
    const json = JSON.parse(body);
    assert.equal(json.data.length, 2);
    assert.deepEqual(json.data[0].embedding, [0, 1, 0], 'B\'s vector');
    assert.equal(a.count, 1);
    assert.equal(a.requests[0].url, '/v1/embeddings');
    assert.equal(b.count, 1);
    assert.equal(b.requests[0].url, '/v1/embeddings');
    assert.equal(res.headers.get('x-toolgate-provider'), 'b');
  });
});

// --- 17. check-config -----------------------------------------------------------------------------

describe('check-config', () => {
  const base = `providers_from_env: false
providers:
  - { name: a, type: openai, base_url: "http://127.0.0.1:1/v1" }
  - { name: b, type: openai, base_url: "http://127.0.0.1:2/v1", api_keys: [k1, k2] }
`;
  const check = async (yaml) => {
    const cfg = writeConfig(yaml);
    try { return await runToolgate(['check-config', '--config', cfg.file]); } finally { cfg.cleanup(); }
  };

  test('an unknown provider in a target', async () => {
    const r = await check(base + 'strategy:\n  mode: fallback\n  targets: [ { provider: a }, { provider: nosuch } ]\n');
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /strategy\.targets\[1\]\.provider: unknown provider 'nosuch'/, r.stderr);
  });

  test('an alias cycle', async () => {
    const r = await check(base + 'aliases: { x: y, y: x }\n');
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /alias cycle/, r.stderr);
  });

  test('a bad regex in content_conditions', async () => {
    const r = await check(base + `strategy:
  mode: content-based
  targets: [ { provider: a }, { provider: b } ]
  content_conditions:
    - { type: prompt_regex, value: "(unclosed", target: b }
`);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /content_conditions\[0\]\.value: not a valid RE2 regular expression/, r.stderr);
  });

  test('a valid routing config', async () => {
    const r = await check(base + `aliases: { cheap: b/gpt-x, quick: fast }
strategy:
  mode: fallback
  targets:
    - provider: a
      model: m-a
      weight: 3
      retry: { attempts: 3, on_status_codes: [429, 500, 502, 503, 504], backoff: 10ms, max_backoff: 50ms, max_retry_after: 60s }
      circuit_breaker: { failure_threshold: 5, success_threshold: 2, timeout: 30s }
      max_concurrency: 64
      max_queue: 256
    - { provider: b, circuit_breaker: false }
pools:
  - name: fast
    mode: least-latency
    targets: [ { provider: a, model: m-a }, { provider: b, model: m-b } ]
  - name: exp
    mode: ab-test
    targets: [ { provider: a, model: m-a }, { provider: b, model: m-b } ]
    variants: [ { label: control, target: a, weight: 50 }, { label: treatment, target: b, weight: 50 } ]
  - name: cond
    mode: conditional
    targets: [ { provider: a, model: m-a }, { provider: b, model: m-b } ]
    conditions: [ { key: header, name: x-tier, value: gold, target: b }, { key: time_of_day, value: "22:00-06:00", target: a } ]
`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /OK/);
  });
});
