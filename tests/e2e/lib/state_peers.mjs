// The real state servers an e2e test talks to beside the gateway: a throwaway redis-server on a
// free 127.0.0.1 port (started, killed, restarted and always stopped by the test), a throwaway
// PostgreSQL 15 cluster read with the real psql CLI, and the sqlite3 CLI reading the gateway's
// database file as any operator would.
import { spawn, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, chownSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './harness.mjs';

const run = promisify(execFile);
export const redisBin = process.env.REDIS_SERVER_BIN || '/usr/bin/redis-server';
export const redisCliBin = process.env.REDIS_CLI_BIN || '/usr/bin/redis-cli';
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
  // One command through the real redis-cli; its reply's lines (a list reply: one per element).
  r.cli = async (...args) => {
    const { stdout } = await run(redisCliBin, ['-p', String(r.port), ...args]);
    return stdout.split('\n').filter((l) => l !== '');
  };
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

export const pgBinDir = process.env.PG_BIN_DIR || '/usr/lib/postgresql/15/bin';

// A PostgreSQL 15 cluster in a temporary directory (initdb with trust auth, superuser `tg`) on a
// free 127.0.0.1 port; resolves once `pg_ctl -w start` says it accepts connections. initdb refuses
// root, so as root every pg_ctl runs as the postgres user. The handle can stop it (fast, as an
// operator would), start it again on the same port, and close it (immediate stop, directory
// removed), which also happens when this process exits without closing it. Throws, saying what is
// missing, when the binaries or the postgres user are not there.
export async function startPostgres({ port = null } = {}) {
  if (!existsSync(join(pgBinDir, 'initdb')))
    throw new Error(`no PostgreSQL 15 binaries in ${pgBinDir} (Debian package postgresql-15; scripts/setup.sh installs it)`);
  const root = process.getuid() === 0;
  let uid = 0, gid = 0;
  if (root) {
    try {
      uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    } catch {
      throw new Error("running as root, but there is no 'postgres' user to run initdb as (initdb refuses root)");
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'toolgate-pg-'));
  if (root) chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  const pg = { port: port ?? await freePort(), dir, closed: false };
  pg.url = (db = 'postgres', userinfo = 'tg') => `postgresql://${userinfo}@127.0.0.1:${pg.port}/${db}`;
  const quote = (a) => `'${String(a).replace(/'/g, `'\\''`)}'`;
  const argv = (bin, args) => (root
    ? ['su', ['postgres', '-s', '/bin/sh', '-c', [join(pgBinDir, bin), ...args].map(quote).join(' ')]]
    : [join(pgBinDir, bin), args]);
  const pgRun = async (bin, args) => {
    const [file, list] = argv(bin, args);
    try {
      await run(file, list, { timeout: 60000 });
    } catch (e) {
      throw new Error(`${bin} ${args.at(-1)} failed: ${e.stderr || e.message}\n${pg.logs()}`);
    }
  };
  pg.logs = () => { try { return execFileSync('tail', ['-c', '3000', join(dir, 'server.log')]).toString(); } catch { return ''; } };
  const stopNow = () => {
    if (pg.closed) return;
    pg.closed = true;
    process.off('exit', stopNow);
    if (existsSync(join(data, 'postmaster.pid'))) {
      const [file, list] = argv('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']);
      try { execFileSync(file, list, { stdio: 'ignore', timeout: 30000 }); } catch { /* already down */ }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', stopNow);

  pg.start = () => pgRun('pg_ctl', ['-D', data, '-w', '-t', '30', '-l', join(dir, 'server.log'),
    '-o', `-p ${pg.port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start']);
  pg.stop = () => pgRun('pg_ctl', ['-D', data, '-w', '-m', 'fast', 'stop']);
  pg.close = async () => stopNow();
  try {
    await pgRun('initdb', ['-D', data, '-A', 'trust', '-U', 'tg', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    await pg.start();
  } catch (e) {
    stopNow();
    throw e;
  }
  return pg;
}

// Runs one statement with the real psql CLI as tg; returns its unaligned, tuples-only output
// (rows on lines, columns split by '|').
export async function psql(pg, sql, db = 'postgres') {
  const { stdout } = await run(join(pgBinDir, 'psql'), ['-X', '-h', '127.0.0.1', '-p', String(pg.port), '-U', 'tg', '-d', db,
    '-v', 'ON_ERROR_STOP=1', '-Atc', sql], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}
