// The client under test for `conformance client`: the suite starts a scenario's MCP server and runs
//   node lib/conformance_client.mjs <server url>
// (the scenario's name in MCP_CONFORMANCE_SCENARIO, its credentials, when it has any, in
// MCP_CONFORMANCE_CONTEXT). This starts toolgate with that URL as its one MCP server, waits until
// toolgate's MCP client is connected to it, performs the scenario's calls through toolgate's HTTP
// API, checks what came back, and exits 0 only when it was right. The scenario's own checks (what
// the server saw toolgate's client do) are the suite's verdict.
//
// For the auth/* scenarios it also plays the person at the browser, as an operator would with curl:
// whenever toolgate says the server needs authorization, it asks GET /admin/mcp/servers/scenario/
// authorize for the URL, opens it (the suite's authorization server answers at once with a redirect
// to toolgate's /oauth/callback) and follows the redirect back to toolgate.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, serversUp } from './harness.mjs';

const url = process.argv.at(-1);
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? '{}');
const admin = 'conformance-admin-token';
const key = 'conformance-client-key';  // with the admin API on, /v1 routes take virtual keys
const keyed = { authorization: `Bearer ${key}` };
const auth = scenario.startsWith('auth/');

// What each scenario asks the client to do once connected: a tool call and the text it must give.
const calls = {
  tools_call: { tool: 'add_numbers', args: { a: 2, b: 3 }, text: 'The sum of 2 and 3 is 5' },
  'sse-retry': { tool: 'test_reconnection', args: {}, text: 'Reconnection test completed successfully' },
};
const call = auth ? { tool: 'test-tool', args: {}, text: '"test"' } : calls[scenario];

// The server's auth section, as an operator would write it for this authorization server.
function authYaml(keyFile) {
  if (!auth) return '';
  const lines = ['type: oauth'];
  if (context.idp_id_token) {
    // SEP-990: the company's identity provider vouches for the user; no browser step.
    lines.push('flow: enterprise', `client_id: ${context.client_id}`, `client_secret: ${context.client_secret}`,
      `idp_token_endpoint: "${context.idp_token_endpoint}"`, `idp_client_id: ${context.idp_client_id}`,
      `id_token: "${context.idp_id_token}"`);
  } else if (context.private_key_pem) {
    lines.push('flow: client_credentials', `client_id: ${context.client_id}`, `private_key_file: ${keyFile}`,
      'token_endpoint_auth: private_key_jwt');
  } else if (scenario === 'auth/client-credentials-basic') {
    lines.push('flow: client_credentials', `client_id: ${context.client_id}`, `client_secret: ${context.client_secret}`);
  } else if (context.client_id) {
    lines.push(`client_id: ${context.client_id}`, `client_secret: ${context.client_secret}`);
  } else {
    // Used where the authorization server accepts client ID metadata documents; else registration.
    lines.push('client_metadata_url: https://conformance-test.local/client-metadata.json');
  }
  return `\n    auth: { ${lines.join(', ')} }`;
}

async function server(gw) {
  const res = await fetch(gw.url + '/v1/mcp/servers', { headers: keyed });
  return (await res.json()).data.find((s) => s.name === 'scenario');
}

// The browser step: toolgate's authorization URL, the authorization server's redirect, the callback.
let authorizations = 0;
async function authorize(gw) {
  if (++authorizations > 5) throw new Error('toolgate asked for more than five authorizations');
  const res = await fetch(`${gw.url}/admin/mcp/servers/scenario/authorize`, { headers: { authorization: `Bearer ${admin}` } });
  const body = await res.json();
  console.log(`authorize: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  if (res.status !== 200) return false;
  const at = await fetch(body.authorization_url, { redirect: 'manual' });
  const back = at.headers.get('location');
  if (at.status !== 302 || !back) throw new Error(`the authorization server answered ${at.status} without a redirect`);
  if (!back.startsWith(gw.url + '/oauth/callback?')) throw new Error(`redirected to ${back}, not to toolgate's callback`);
  const cb = await fetch(back);
  const page = await cb.text();
  console.log(`callback: HTTP ${cb.status} ${page.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim()}`);
  return cb.status === 200;
}

// Until the server is up (authorizing when toolgate asks for it); false when its authorization failed.
async function connected(gw, ms) {
  const until = Date.now() + ms;
  let s;
  while (Date.now() < until) {
    s = await server(gw);
    if (s?.status === 'up') return true;
    if (s?.status === 'needs_authorization') {
      if (!(await authorize(gw))) return false;
      continue;
    }
    if (s?.auth?.state === 'failed') {
      console.log(`authorization failed: ${s.auth.reason}`);
      return false;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`toolgate did not connect to ${url}: ${JSON.stringify(s)}`);
}

let gw, dir;
try {
  dir = mkdtempSync(join(tmpdir(), 'toolgate-cc-'));
  const keyFile = join(dir, 'client.pem');
  if (context.private_key_pem) writeFileSync(keyFile, context.private_key_pem, { mode: 0o600 });
  gw = await startGateway(`
providers_from_env: false
admin: { token: ${admin} }
state: { persist: false }
keys: [{ name: conformance, key: ${key} }]
tool_names: { prefix_mode: never }
mcp_servers:
  - name: scenario
    url: "${url}"${authYaml(keyFile)}
`);
  if (auth) {
    if (!(await connected(gw, 20000))) throw new Error('not connected');
  } else {
    await serversUp(gw, 20000, `toolgate connected to the ${scenario} server at ${url}`, keyed);
  }
  const tools = await (await fetch(gw.url + '/v1/mcp/tools', { headers: keyed })).json();
  console.log(`tools: ${tools.data.map((t) => t.name).join(', ') || '(none)'}`);
  if (call) {
    // A call may be refused for want of scope (step-up): authorize again, then call again.
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(gw.url + '/v1/mcp/tools/call', {
        method: 'POST', headers: { 'content-type': 'application/json', ...keyed },
        body: JSON.stringify({ name: call.tool, arguments: call.args }), signal: AbortSignal.timeout(20000),
      });
      const text = JSON.stringify(await res.json());
      console.log(`tools/call ${call.tool}: HTTP ${res.status} ${text.slice(0, 500)}`);
      if (res.status === 200 && text.includes(call.text)) break;
      const s = await server(gw);
      if (attempt < 3 && s?.status === 'needs_authorization' && (await authorize(gw))) continue;
      throw new Error(`expected "${call.text}"`);
    }
  }
  await gw.stop();
  gw = null;
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
} catch (e) {
  console.error(`conformance client (${scenario}): ${e.stack ?? e}`);
  if (gw) console.error(`gateway log (end):\n${gw.logs.slice(-(process.env.CC_LOG_BYTES ?? 3000))}`);
  await gw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  process.exit(1);
}
