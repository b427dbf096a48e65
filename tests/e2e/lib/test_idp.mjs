// A small identity provider for /mcp behind OAuth: RFC 8414 metadata with a jwks_uri, dynamic
// registration, an /authorize that answers at once with a redirect (the person clicked "allow"),
// a /token that checks PKCE and issues JWT access tokens (RS256 by default) for the requested
// `resource` and scope, and a JWK set with an RSA, a P-256 and an Ed25519 key. sign() makes any
// token a test needs (other keys, algorithms, claims). Listens on 127.0.0.1 on a free port.
import http from 'node:http';
import { createHash, generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto';

const b64url = (v) => Buffer.from(v).toString('base64url');

export function makeKeys() {
  return {
    r: { alg: 'RS256', ...generateKeyPairSync('rsa', { modulusLength: 2048 }) },
    e: { alg: 'ES256', ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
    d: { alg: 'EdDSA', ...generateKeyPairSync('ed25519') },
  };
}

// A compact JWS of `claims` with `key` (one of makeKeys()), header {alg, kid} unless overridden.
export function signJwt(claims, key, kid, header = {}) {
  const h = { alg: key.alg, typ: 'JWT', kid, ...header };
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(claims))}`;
  if (h.alg === 'none') return `${input}.`;
  const data = Buffer.from(input);
  const sig = key.alg === 'EdDSA' ? cryptoSign(null, data, key.privateKey)
    : key.alg === 'ES256' ? cryptoSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : cryptoSign('sha256', data, key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

export async function startIdp() {
  const idp = { keys: makeKeys(), codes: new Map(), clients: new Map(), issued: [], requests: [], scopeGranted: null };
  const body = async (req) => { let d = ''; for await (const c of req) d += c; return d; };
  const json = (res, status, v) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
  const srv = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    idp.requests.push(url.pathname);
    if (url.pathname === '/.well-known/oauth-authorization-server' || url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer: idp.url, authorization_endpoint: `${idp.url}/authorize`, token_endpoint: `${idp.url}/token`,
        registration_endpoint: `${idp.url}/register`, jwks_uri: `${idp.url}/jwks`, response_types_supported: ['code'],
        grant_types_supported: ['authorization_code', 'refresh_token'], code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['none'], scopes_supported: ['tools.read', 'tools.admin'],
      });
    }
    if (url.pathname === '/jwks') {
      const keys = Object.entries(idp.keys).map(([kid, k]) => ({ ...k.publicKey.export({ format: 'jwk' }), kid, alg: k.alg, use: 'sig' }));
      return json(res, 200, { keys });
    }
    if (url.pathname === '/register' && req.method === 'POST') {
      const reg = JSON.parse(await body(req));
      const client = { ...reg, client_id: `c-${randomBytes(6).toString('hex')}`, token_endpoint_auth_method: 'none' };
      idp.clients.set(client.client_id, client);
      return json(res, 201, client);
    }
    if (url.pathname === '/authorize') {
      const q = Object.fromEntries(url.searchParams);
      const code = randomBytes(12).toString('hex');
      idp.codes.set(code, q);
      const back = new URL(q.redirect_uri);
      back.searchParams.set('code', code);
      if (q.state) back.searchParams.set('state', q.state);
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      const f = Object.fromEntries(new URLSearchParams(await body(req)));
      const q = idp.codes.get(f.code);
      idp.codes.delete(f.code);
      if (!q) return json(res, 400, { error: 'invalid_grant' });
      if (createHash('sha256').update(f.code_verifier ?? '').digest('base64url') !== q.code_challenge) return json(res, 400, { error: 'invalid_grant' });
      const scope = idp.scopeGranted ?? q.scope ?? 'tools.read';
      const now = Math.floor(Date.now() / 1000);
      const token = signJwt({ iss: idp.url, aud: f.resource ?? q.resource, sub: 'ada', scope, iat: now, exp: now + 600 }, idp.keys.r, 'r');
      idp.issued.push({ token, scope, resource: f.resource });
      return json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 600, scope });
    }
    json(res, 404, { error: 'not_found' });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  idp.url = `http://127.0.0.1:${srv.address().port}`;
  // A token of this issuer for `aud` (claims and header overridable).
  idp.token = (aud, claims = {}, keyId = 'r', header = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ iss: idp.url, aud, sub: 'ada', scope: 'tools.read', iat: now, exp: now + 600, ...claims }, idp.keys[keyId], keyId, header);
  };
  idp.close = () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); });
  return idp;
}
