// toolgate's MCP client judged by the official conformance suite in client mode: for each scenario
// the suite starts its MCP server and runs lib/conformance_client.mjs, which starts toolgate with
// that server configured and performs the scenario's calls through toolgate's API. The suite checks
// what toolgate's client did on the wire (initialize fields, the tool call, SEP-1699's reconnect
// after the retry time with Last-Event-ID). The auth/* scenarios wait for OAuth to upstream
// servers (issue 17), and elicitation-sep1034-client-defaults for elicitation forwarded by a
// gateway (an MCP server's elicitation goes to a /mcp client, not to a person at toolgate).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanEnv, toolgateBin } from './lib/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const suite = join(here, 'node_modules', '.bin', 'conformance');
const out = mkdtempSync(join(tmpdir(), 'toolgate-conformance-client-'));

function runScenario(scenario) {
  return new Promise((resolve, reject) => {
    const p = spawn(suite, ['client', '--scenario', scenario, '--timeout', '60000', '-o', join(out, scenario),
      '--command', `node ${join(here, 'lib', 'conformance_client.mjs')}`],
    { cwd: here, env: cleanEnv({ TOOLGATE_BIN: toolgateBin, NO_COLOR: '1', FORCE_COLOR: '0' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d) => (text += d));
    p.stderr.on('data', (d) => (text += d));
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${scenario} timed out:\n${text}`)); }, 90000);
    p.on('exit', (code) => {
      clearTimeout(t);
      const dir = join(out, scenario);
      const runs = readdirSync(dir);
      const checks = JSON.parse(readFileSync(join(dir, runs[0], 'checks.json'), 'utf8'));
      resolve({ code, text, checks });
    });
  });
}

describe('MCP conformance suite, client mode, against toolgate\'s MCP client', () => {
  after(() => rmSync(out, { recursive: true, force: true }));

  for (const [scenario, must] of [
    ['initialize', ['mcp-client-initialization']],
    ['tools_call', ['tool-add-numbers']],
    ['sse-retry', ['client-sse-graceful-reconnect', 'client-sse-retry-timing', 'client-sse-last-event-id']],
  ]) {
    test(`${scenario}: every check passes, none warns`, async () => {
      const r = await runScenario(scenario);
      const bad = r.checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
      assert.deepEqual(bad.map((c) => `${c.id}: ${c.errorMessage ?? c.description}`), [], r.text);
      for (const id of must) assert.ok(r.checks.some((c) => c.id === id && c.status === 'SUCCESS'), `${id} passed\n${r.text}`);
      assert.equal(r.code, 0, r.text);
    });
  }
});
