// /mcp as an OAuth-protected resource: the official MCP SDK client, with its own OAuth support,
// finds the issuer through the 401 and the protected resource metadata, registers, authorizes
// (PKCE) at a test identity provider (lib/test_idp.mjs), gets a JWT, lists and calls tools. Then
// tokens made to be wrong: a bad signature, another audience, expired, alg none, a key of another
// issuer (401), a token without a granting scope (403 insufficient_scope); RS256, ES256 and EdDSA
// accepted; a narrow scope sees only its tools; the static keys of mcp_front keep working beside it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { startGateway, serversUp } from './lib/harness.mjs';
import { startIdp, makeKeys, signJwt } from './lib/test_idp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const everything = join(here, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const STATIC = 'static-key-0123456789abcdef';

// The SDK's OAuth client hooks, with the browser step done by fetch (the IdP redirects at once).
class Provider {
  constructor() { this.client = undefined; this.saved = undefined; this.code = undefined; }
  get redirectUrl() { return 'http://127.0.0.1:9/callback'; }
  get clientMetadata() {
    return { client_name: 'sdk test client', redirect_uris: [this.redirectUrl], grant_types: ['authorization_code'],
      response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() { return this.client; }
  saveClientInformation(c) { this.client = c; }
  tokens() { return this.saved; }
  saveTokens(t) { this.saved = t; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
  async redirectToAuthorization(url) {
    const res = await fetch(url, { redirect: 'manual' });
    this.code = new URL(res.headers.get('location')).searchParams.get('code');
  }
}

describe('/mcp behind OAuth', () => {
  let idp, other, gw, audience;

  before(async () => {
    idp = await startIdp();
    other = await startIdp();
    gw = await startGateway(`
providers_from_env: false
mcp_front:
  keys: [{ name: static, key: "${STATIC}", tools: ["admin__echo"] }]
  auth:
    type: oauth
    issuer: "${idp.url}"
    audience: "http://127.0.0.1:@PORT@/mcp"
    scopes_to_tools: { "tools.read": ["docs__*"], "tools.admin": ["*"] }
mcp_servers:
  - { name: docs, command: node, args: ["${everything}", stdio] }
  - { name: admin, command: "\${TOOLGATE_BIN}", args: [demo-mcp-server] }
`);
    audience = `${gw.url}/mcp`;
    await serversUp(gw, 20000);
  });
  after(async () => {
    await gw?.stop();
    await idp?.close();
    await other?.close();
  });

  async function initialize(token) {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(audience, {
      method: 'POST', headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    await res.text();
    return { status: res.status, www: res.headers.get('www-authenticate') ?? '' };
  }

  async function toolsWith(token) {
    const client = new Client({ name: 'raw', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(audience), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const names = (await client.listTools()).tools.map((t) => t.name);
    await client.close();
    return names;
  }

  test('no token: 401 pointing to the protected resource metadata, which names the issuer', async () => {
    const r = await initialize();
    assert.equal(r.status, 401);
    const md = `${gw.url}/.well-known/oauth-protected-resource/mcp`;
    assert.equal(r.www, `Bearer resource_metadata="${md}"`);
    const doc = await (await fetch(md)).json();
    assert.equal(doc.resource, audience);
    assert.deepEqual(doc.authorization_servers, [idp.url]);
    assert.deepEqual(doc.scopes_supported, ['tools.read', 'tools.admin']);
    assert.equal((await fetch(`${gw.url}/.well-known/oauth-protected-resource`)).status, 200);
  });

  test('the official SDK client authorizes at the identity provider and uses its tools', async () => {
    idp.scopeGranted = 'tools.read';  // the identity provider's policy: this user reads docs only
    const provider = new Provider();
    let transport = new StreamableHTTPClientTransport(new URL(audience), { authProvider: provider });
    await assert.rejects(new Client({ name: 'sdk', version: '1' }).connect(transport), UnauthorizedError);
    assert.ok(provider.code, 'the SDK went to the authorization endpoint');
    await transport.finishAuth(provider.code);
    assert.equal(idp.issued.length, 1);
    assert.equal(idp.issued[0].resource, audience, 'the token was asked for this resource (RFC 8707)');
    transport = new StreamableHTTPClientTransport(new URL(audience), { authProvider: provider });
    const client = new Client({ name: 'sdk', version: '1' });
    await client.connect(transport);
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('docs__echo'), names.join());
    assert.ok(names.every((n) => n.startsWith('docs__')), `a narrow scope sees only its tools: ${names.join()}`);
    const r = await client.callTool({ name: 'docs__echo', arguments: { message: 'via oauth' } });
    assert.match(JSON.stringify(r.content), /via oauth/);
    await assert.rejects(client.callTool({ name: 'admin__echo', arguments: { text: 'x' } }));
    await client.close();
    idp.scopeGranted = null;
  });

  test('RS256, ES256 and EdDSA tokens of the issuer; "*" grants every tool', async () => {
    for (const kid of ['r', 'e', 'd']) assert.equal((await initialize(idp.token(audience, {}, kid))).status, 200, kid);
    const all = await toolsWith(idp.token(audience, { scope: 'tools.admin' }, 'e'));
    assert.ok(all.includes('admin__echo') && all.includes('docs__echo'), all.join());
  });

  test('wrong tokens are refused with 401 invalid_token', async () => {
    const forgedKeys = makeKeys();
    const now = Math.floor(Date.now() / 1000);
    const cases = {
      'bad signature': signJwt({ iss: idp.url, aud: audience, sub: 'x', scope: 'tools.read', exp: now + 600 }, forgedKeys.r, 'r'),
      'another audience': idp.token('http://127.0.0.1:1/mcp'),
      expired: idp.token(audience, { exp: now - 3600 }),
      'not yet valid': idp.token(audience, { nbf: now + 3600 }),
      'alg none': idp.token(audience, {}, 'r', { alg: 'none' }),
      'HS256 with the public key as secret': idp.token(audience, {}, 'r', { alg: 'HS256' }),
      'a key of another issuer': other.token(audience),
      'another issuer claiming ours': signJwt({ iss: idp.url, aud: audience, sub: 'x', scope: 'tools.read', exp: now + 600 }, other.keys.r, 'r'),
    };
    for (const [what, token] of Object.entries(cases)) {
      const r = await initialize(token);
      assert.equal(r.status, 401, what);
      assert.match(r.www, /error="invalid_token"/, what);
      assert.match(r.www, /resource_metadata="/, what);
    }
  });

  test('a token without a granting scope: 403 insufficient_scope naming the scopes', async () => {
    const r = await initialize(idp.token(audience, { scope: 'email profile' }));
    assert.equal(r.status, 403);
    assert.match(r.www, /error="insufficient_scope"/);
    assert.match(r.www, /scope="tools.read tools.admin"/);
  });

  test('the static keys of mcp_front keep working beside it', async () => {
    const names = await toolsWith(STATIC);
    assert.deepEqual(names, ['admin__echo']);
    const r = await initialize('not-a-key-of-this-gateway');
    assert.equal(r.status, 401);
    assert.match(r.www, /resource_metadata=/);
  });

  test('no token reaches the gateway\'s log', async () => {
    for (const t of idp.issued) assert.ok(!gw.logs.includes(t.token));
  });
});
