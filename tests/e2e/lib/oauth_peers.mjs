// An OAuth-protected MCP server and its authorization server, for toolgate's upstream OAuth:
// - the authorization server (RFC 8414 metadata, dynamic registration, an /authorize that answers at
//   once with a redirect, as a person who clicks "allow" would, or with access_denied when told to,
//   a /token that checks client_secret_basic, PKCE S256, redirect_uri and `resource`, issues
//   refresh tokens and rotates them), and which records every request it got;
// - the MCP server: the official SDK's McpServer over stateless Streamable HTTP, behind a bearer
//   check of the tokens the authorization server issued (401 with resource_metadata, RFC 9728
//   metadata at the path-based well-known URL).
// Both listen on 127.0.0.1 on free ports; close() stops both.
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const b64url = (buf) => buf.toString('base64url');
const token = (prefix) => `${prefix}-${b64url(randomBytes(18))}`;

function listen(handler) {
  const srv = http.createServer((req, res) => {
    handler(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e?.stack ?? e));
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

async function body(req) {
  let data = '';
  for await (const chunk of req) data += chunk;
  return data;
}

function json(res, status, value, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
}

export async function startProtectedMcp({ lifetime = 3600 } = {}) {
  const as = {
    lifetime, deny: false, iss: null,  // iss: what the redirect names as its issuer (RFC 9207), if anything
    clients: new Map(), codes: new Map(), access: new Map(), refresh: new Map(),
    requests: [],   // { path, grant, ... } of every request
    problems: [],   // what a request did wrong (an empty list at the end is part of the tests)
  };
  const asServer = await listen(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    as.requests.push({ method: req.method, path: url.pathname });
    if (url.pathname === '/.well-known/oauth-authorization-server') {
      return json(res, 200, {
        issuer: as.url, authorization_endpoint: `${as.url}/authorize`, token_endpoint: `${as.url}/token`,
        registration_endpoint: `${as.url}/register`, response_types_supported: ['code'],
        grant_types_supported: ['authorization_code', 'refresh_token'], code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic'],
      });
    }
    if (url.pathname === '/register' && req.method === 'POST') {
      const reg = JSON.parse(await body(req));
      if (!Array.isArray(reg.redirect_uris) || reg.redirect_uris.length === 0) as.problems.push('registration without redirect_uris');
      const client = { client_id: token('client'), client_secret: token('secret'), redirect_uris: reg.redirect_uris };
      as.clients.set(client.client_id, client);
      return json(res, 201, { ...client, token_endpoint_auth_method: 'client_secret_basic' });
    }
    if (url.pathname === '/authorize' && req.method === 'GET') {
      const q = Object.fromEntries(url.searchParams);
      as.requests.at(-1).query = q;
      const client = as.clients.get(q.client_id);
      if (!client) as.problems.push(`authorize: unknown client ${q.client_id}`);
      if (!client?.redirect_uris.includes(q.redirect_uri)) as.problems.push(`authorize: unregistered redirect_uri ${q.redirect_uri}`);
      if (q.code_challenge_method !== 'S256' || !q.code_challenge) as.problems.push('authorize: no PKCE S256');
      if (q.resource !== as.resource) as.problems.push(`authorize: resource ${q.resource}`);
      if (!q.state) as.problems.push('authorize: no state');
      const back = new URL(q.redirect_uri);
      if (as.deny) {
        back.searchParams.set('error', 'access_denied');
        back.searchParams.set('error_description', 'the user said no');
      } else {
        const code = token('code');
        as.codes.set(code, { client_id: q.client_id, challenge: q.code_challenge, redirect_uri: q.redirect_uri, scope: q.scope });
        back.searchParams.set('code', code);
      }
      back.searchParams.set('state', q.state);
      if (as.iss) back.searchParams.set('iss', as.iss);
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      const form = Object.fromEntries(new URLSearchParams(await body(req)));
      as.requests.at(-1).grant = form.grant_type;
      const basic = (req.headers.authorization ?? '').replace(/^Basic /, '');
      const [id, secret] = Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent);
      const client = as.clients.get(id);
      if (!client || client.client_secret !== secret) return json(res, 401, { error: 'invalid_client' });
      if (form.resource !== as.resource) as.problems.push(`token: resource ${form.resource}`);
      let scope;
      if (form.grant_type === 'authorization_code') {
        const c = as.codes.get(form.code);
        as.codes.delete(form.code);
        if (!c) return json(res, 400, { error: 'invalid_grant', error_description: 'unknown or used code' });
        if (b64url(createHash('sha256').update(form.code_verifier ?? '').digest()) !== c.challenge)
          return json(res, 400, { error: 'invalid_grant', error_description: 'PKCE verifier does not match' });
        if (form.redirect_uri !== c.redirect_uri) return json(res, 400, { error: 'invalid_grant', error_description: 'redirect_uri' });
        scope = c.scope;
      } else if (form.grant_type === 'refresh_token') {
        const r = as.refresh.get(form.refresh_token);
        if (!r) return json(res, 400, { error: 'invalid_grant', error_description: 'refresh token revoked' });
        as.refresh.delete(form.refresh_token);  // rotated
        scope = r.scope;
      } else {
        return json(res, 400, { error: 'unsupported_grant_type' });
      }
      const access = token('at');
      const refresh = token('rt');
      as.access.set(access, { expires: Date.now() + as.lifetime * 1000, scope });
      as.refresh.set(refresh, { scope });
      return json(res, 200, { access_token: access, token_type: 'Bearer', expires_in: as.lifetime, refresh_token: refresh, scope });
    }
    json(res, 404, { error: 'not_found' });
  });
  as.url = `http://127.0.0.1:${asServer.address().port}`;
  as.revokeAll = () => { as.access.clear(); as.refresh.clear(); };
  as.revokeAccess = () => as.access.clear();

  const rs = { calls: 0, unauthorized: 0, tokensSeen: new Set() };
  const rsServer = await listen(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/.well-known/oauth-protected-resource/mcp') {
      return json(res, 200, { resource: as.resource, authorization_servers: [as.url], scopes_supported: ['tools'] });
    }
    if (url.pathname !== '/mcp') return json(res, 404, { error: 'not_found' });
    if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed' });
    const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const t = as.access.get(bearer);
    if (!t || t.expires < Date.now()) {
      rs.unauthorized++;
      return json(res, 401, { error: 'invalid_token' }, {
        'www-authenticate': `Bearer error="invalid_token", resource_metadata="${rs.url}/.well-known/oauth-protected-resource/mcp"`,
      });
    }
    rs.tokensSeen.add(bearer);
    const server = new McpServer({ name: 'protected', version: '1.0.0' });
    server.tool('whoami', 'Says who answers', async () => {
      rs.calls++;
      return { content: [{ type: 'text', text: 'hello from the protected server' }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => { transport.close(); server.close(); });
    await server.connect(transport);
    await transport.handleRequest(req, res, JSON.parse(await body(req)));
  });
  rs.url = `http://127.0.0.1:${rsServer.address().port}`;
  as.resource = `${rs.url}/mcp`;

  return {
    as, rs, url: as.resource,
    close: () => Promise.all([asServer, rsServer].map((s) => new Promise((r) => { s.closeAllConnections(); s.close(r); }))),
  };
}
