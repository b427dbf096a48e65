// Starts the real toolgate binary for a test and always stops it again.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '../../..');
export const toolgateBin = process.env.TOOLGATE_BIN || join(repoRoot, 'build', 'toolgate');

// A clean environment: no provider keys of the developer's leak into a test.
export function cleanEnv(extra = {}) {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
  return { ...env, ...extra };
}

export function writeConfig(yaml) {
  const dir = mkdtempSync(join(tmpdir(), 'toolgate-test-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function runToolgate(args, { env = {}, timeoutMs = 10000 } = {}) {
  return await new Promise((resolveP, reject) => {
    const p = spawn(toolgateBin, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('toolgate did not exit in time')); }, timeoutMs);
    p.on('exit', (code, signal) => { clearTimeout(t); resolveP({ code, signal, stdout, stderr }); });
  });
}

// A port nobody listens on right now (the kernel's pick for port 0, released again).
export async function freePort() {
  return await new Promise((resolveP, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolveP(port));
    });
  });
}

// Starts `toolgate serve` on a free port; resolves once GET /health answers (with any status: a
// gateway whose required MCP server is down answers 503, and is serving).
export async function startGateway(yaml, { env = {}, startTimeoutMs = 10000 } = {}) {
  const deadline = Date.now() + startTimeoutMs;
  for (let attempt = 1; ; ++attempt) {
    const port = await freePort();
    try {
      return await startOn(port, yaml, env, deadline);
    } catch (e) {
      // Another process took the port between freePort() and the bind: try another one.
      if (!e.portTaken || attempt >= 5) throw e;
    }
  }
}

async function startOn(port, yaml, env, deadline) {
  // "@PORT@" in the config is the port it will listen on (for URLs that must name the gateway).
  const cfg = writeConfig(yaml.replaceAll('@PORT@', String(port)));
  // In a process group of its own, so that whatever it leaves behind can be killed with it.
  const proc = spawn(toolgateBin, ['serve', '--config', cfg.file, '--listen', `127.0.0.1:${port}`], {
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const gw = { proc, logs: '', stdout: '', url: `http://127.0.0.1:${port}`, port, exited: null };
  let stopping = false, ready = false;
  const exited = new Promise((r) => proc.on('exit', (code, signal) => {
    gw.exited = { code, signal };
    // A child it started and did not stop (or one stuck before exec, holding its stdout and
    // stderr) must not outlive it and keep this test process waiting on those pipes.
    try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* the group is gone */ }
    setTimeout(() => { proc.stdout.destroy(); proc.stderr.destroy(); }, 200).unref();
    // A gateway that dies on its own is a bug: show why (sanitizer reports land in its stderr).
    if (!stopping && ready) process.stderr.write(`toolgate exited unexpectedly (${code ?? signal}):\n${gw.logs.slice(-200000)}\n`);
    r(gw.exited);
  }));
  proc.stdout.on('data', (d) => (gw.stdout += d));
  proc.stderr.on('data', (d) => (gw.logs += d));
  while (!gw.exited) {
    try {
      await fetch(gw.url + '/health', { signal: AbortSignal.timeout(1000) });
      ready = true;
      break;
    } catch {
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exited;
        cfg.cleanup();
        throw new Error('toolgate did not start:\n' + gw.logs);
      }
      await sleep(10);
    }
  }
  if (!ready) {
    cfg.cleanup();
    const err = new Error('toolgate exited during start:\n' + gw.logs);
    err.portTaken = /address already in use/i.test(gw.logs);
    throw err;
  }
  gw.stop = async (signal = 'SIGTERM', timeoutMs = 15000) => {
    if (gw.exited) { cfg.cleanup(); return gw.exited; }
    stopping = true;
    proc.kill(signal);
    const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    const r = await exited;
    clearTimeout(t);
    cfg.cleanup();
    return r;
  };
  gw.waitExit = () => { stopping = true; return exited; };
  gw.accessLog = () => gw.logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  return gw;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `pred` every 100 ms until it holds; throws after `ms`, also when a call of `pred` itself
// hangs (e.g. a fetch to a gateway that stopped answering).
export async function waitFor(pred, ms = 15000, what = 'condition') {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    let timer;
    const late = new Promise((r) => { timer = setTimeout(() => r('late'), Math.max(1, end - Date.now())); });
    const got = await Promise.race([Promise.resolve().then(pred), late]).finally(() => clearTimeout(timer));
    if (got === 'late') break;
    if (got) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Waits until every MCP server of the gateway is up; the error shows their last status and the
// end of the gateway's log.
export async function serversUp(gw, ms = 30000, what = 'MCP servers up', headers = {}) {
  let last = null;
  try {
    await waitFor(async () => {
      const r = await fetch(gw.url + '/v1/mcp/servers', { headers, signal: AbortSignal.timeout(2000) });
      last = await r.json();
      return last.data.every((s) => s.status === 'up');
    }, ms, what);
  } catch (e) {
    e.message += `\nservers: ${JSON.stringify(last)}\ngateway log (end):\n${gw.logs.slice(-4000)}`;
    throw e;
  }
}

// Reads an SSE response body into its data payloads, as they arrive.
export async function readSse(res, onEvent = () => {}) {
  const decoder = new TextDecoder();
  let buf = '';
  const events = [];
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let idx;
    while ((idx = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, idx);
      buf = buf.slice(idx + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data) { events.push(data); onEvent(data); }
    }
  }
  return events;
}

// The text, last finish reason and usage of a streamed completion from the openai SDK.
export async function collectStream(stream) {
  let text = '', finish = null, usage = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      text += ch.delta?.content ?? '';
      finish = ch.finish_reason ?? finish;
    }
  }
  return { text, finish, usage };
}

// What a test started, stopped when it ends (last first), every step even when one fails; the
// first failure of a step (a sanitizer report, a server that would not stop) fails the test.
export function cleanup(t) {
  const stack = [];
  t.after(async () => {
    let first = null;
    while (stack.length) { try { await stack.pop()(); } catch (e) { first ??= e; } }
    if (first) throw first;
  });
  return (fn) => stack.push(fn);
}

// The gateway's log has no sanitizer report.
export function assertClean(gw) {
  if (/AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:/.test(gw.logs))
    throw new Error(`sanitizer report in the gateway's log:\n${gw.logs.slice(-4000)}`);
}

// A gateway on `yaml`, stopped (and its log checked) when the test ends.
export async function cleanGateway(defer, yaml, opts) {
  const gw = await startGateway(yaml, opts);
  defer(async () => { await gw.stop(); assertClean(gw); });
  return gw;
}

// The gateway on the default config (examples/gateway.yaml: the offline demo model and the demo
// MCP server, no upstream), once its MCP server is up.
export async function startOfflineDemo() {
  const gw = await startGateway(readFileSync(join(repoRoot, 'examples', 'gateway.yaml'), 'utf8'), { env: { TOOLGATE_BIN: toolgateBin } });
  await serversUp(gw, 15000, 'the demo MCP server');
  return gw;
}
