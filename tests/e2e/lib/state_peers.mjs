// The real state servers an e2e test talks to beside the gateway: a throwaway redis-server on a
// free 127.0.0.1 port (started, killed, restarted and always stopped by the test), and the sqlite3
// CLI reading the gateway's database file as any operator would.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort } from './harness.mjs';

const run = promisify(execFile);
export const redisBin = process.env.REDIS_SERVER_BIN || '/usr/bin/redis-server';
export const sqliteBin = process.env.SQLITE3_BIN || '/usr/bin/sqlite3';

// Starts redis-server without persistence; resolves once it accepts connections. The returned
// handle can kill it (SIGKILL, as a crash), start it again on the same port, and stop it.
export async function startRedis({ port = null, startTimeoutMs = 10000 } = {}) {
  const r = { port: port ?? await freePort(), proc: null, logs: '' };
  r.url = `redis://127.0.0.1:${r.port}/0`;

  r.start = async () => {
    const proc = spawn(redisBin, ['--port', String(r.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    r.proc = proc;
    const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
    proc.exitedPromise = exited;
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`redis-server did not start:\n${r.logs}`)); }, startTimeoutMs);
      const onData = (d) => {
        r.logs += d;
        if (/Ready to accept connections/.test(r.logs.slice(-4096))) { clearTimeout(t); resolve(); }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', (d) => (r.logs += d));
      exited.then((e) => { clearTimeout(t); reject(new Error(`redis-server exited (${e.code ?? e.signal}):\n${r.logs}`)); });
    });
    // Later output is kept for failure messages; the handlers stay attached.
    return r;
  };
  // A crash: the process is gone at once, with whatever it held.
  r.kill = async () => {
    const p = r.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGKILL');
    await p.exitedPromise;
  };
  r.stop = async () => {
    const p = r.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    await p.exitedPromise;
    clearTimeout(t);
  };
  r.restart = async () => { await r.kill(); return r.start(); };
  await r.start();
  return r;
}

// Runs one SQL statement on the database file with the sqlite3 CLI; returns the rows as objects.
// The CLI waits for a writer's lock (the gateway writes in batches) rather than failing.
export async function sqlite(dbPath, sql) {
  const { stdout } = await run(sqliteBin, ['-json', '-cmd', '.timeout 5000', dbPath, sql], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim() ? JSON.parse(stdout) : [];
}

// The CLI's plain output (e.g. `.dump`, `.tables`).
export async function sqliteText(dbPath, command) {
  const { stdout } = await run(sqliteBin, ['-cmd', '.timeout 5000', dbPath, command], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}
