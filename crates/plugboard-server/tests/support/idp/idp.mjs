// A real OpenID Provider for Plugboard's sign-in tests: panva's certified `oidc-provider`, on 127.0.0.1 and a free
// port, with everything a test needs to drive it without a person:
//
// - two clients: `plugboard-confidential` (client_secret_basic, secret printed at start) and `plugboard-public`
//   (token_endpoint_auth_method none); PKCE is required for both; their redirect URIs come from the command line;
// - accounts the test creates (`POST /__test/accounts`), selected without a login page: the login interaction
//   completes by itself for the account named by `login_hint` (its sub or email) or, without one, the account chosen
//   last (`POST /__test/login-as`, or the last one created); consent is granted automatically;
// - key rotation on demand (`POST /__test/rotate-keys`): a new RS256 key signs from then on, the old one stays in the
//   JWKS (as a real rotation overlap would), so new ID tokens carry a new `kid`;
// - tampering (`POST /__test/tamper {"mode": …}`): a test-only interposition around the token endpoint rewrites the
//   `id_token` of each successful token response (re-signed with `jose`), for the negative cases a certified
//   provider never produces. Everything else stays the real provider. Modes: wrong_aud, wrong_iss, wrong_nonce,
//   expired, foreign_key (signed by a key not in the JWKS, with a kid the JWKS lacks), forged_kid (signed by another
//   key under the real kid), alg_none, hs256 (HMAC with the client secret: an algorithm the provider does not
//   advertise); `{"mode": null}` stops tampering;
// - `GET /__test/stats`: `{jwks_fetches, userinfo_requests, token_responses (with an ID token), access_tokens
//   (every token response with one), last_id_token_kid}`;
// - with `--connector`, the authorization server of an OAuth-protected MCP server: a client for a Plugboard
//   connector, `plugboard-connector` (client_secret_post, authorization_code and refresh_token: every code grant
//   gets a refresh token), a client for the MCP server itself, `mcp-resource-server` (client_secret_basic, no
//   grants), which checks access tokens at the introspection endpoint (RFC 7662, `/token/introspection`), and access
//   tokens that live `--access-token-ttl` seconds (default 3600); also what an MCP client discovering the server
//   needs: open dynamic client registration (RFC 7591, `/reg`) and resource indicators (RFC 8707: a token asked for
//   with `resource` is an opaque token for that resource).
//
// Usage: node idp.mjs --redirect-uri URI [--redirect-uri URI …] [--port N] [--claims-in-id-token]
//                     [--connector [--access-token-ttl SECONDS]]
// (port 0, the default, picks a free one)
// Prints one JSON line on stdout once listening:
//   {"issuer", "confidential_client": {"client_id", "client_secret"}, "public_client": {"client_id"}}
// and with `--connector` also "connector_client" and "resource_server", each {"client_id", "client_secret"}.
// Exits when its standard input closes (so it never outlives the test that started it).
//
// `--claims-in-id-token` sets `conformIdTokenClaims: false`, so email and name are in the ID token; by default
// (the certified behaviour for `response_type=code`) they are only at the userinfo endpoint.

import http from 'node:http';
import { randomBytes } from 'node:crypto';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const args = process.argv.slice(2);
const redirectUris = [];
let claimsInIdToken = false;
let connector = false;
let accessTokenTtl = 3600;
let port = 0;
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === '--redirect-uri' && args[i + 1]) {
    redirectUris.push(args[i + 1]);
    i += 1;
  } else if (args[i] === '--port' && args[i + 1]) {
    port = Number(args[i + 1]);
    i += 1;
  } else if (args[i] === '--claims-in-id-token') {
    claimsInIdToken = true;
  } else if (args[i] === '--connector') {
    connector = true;
  } else if (args[i] === '--access-token-ttl' && args[i + 1]) {
    accessTokenTtl = Number(args[i + 1]);
    i += 1;
  } else {
    process.stderr.write(`test IdP: unknown argument ${args[i]}\nusage: node idp.mjs --redirect-uri URI [--port N] [--claims-in-id-token] [--connector [--access-token-ttl SECONDS]]\n`);
    process.exit(2);
  }
}
if (redirectUris.length === 0) {
  process.stderr.write('test IdP: at least one --redirect-uri is required\n');
  process.exit(2);
}

const CONFIDENTIAL_ID = 'plugboard-confidential';
const PUBLIC_ID = 'plugboard-public';
const CONNECTOR_ID = 'plugboard-connector';
const RESOURCE_SERVER_ID = 'mcp-resource-server';
const clientSecret = randomBytes(32).toString('base64url');
const connectorSecret = randomBytes(32).toString('base64url');
const resourceServerSecret = randomBytes(32).toString('base64url');
const cookieKey = randomBytes(32).toString('base64url');

let keyCounter = 0;
async function newSigningKey() {
  keyCounter += 1;
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const jwk = await jose.exportJWK(privateKey);
  jwk.kid = `test-key-${keyCounter}-${randomBytes(6).toString('hex')}`;
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  return jwk;
}

// Newest first: oidc-provider signs with the first key that fits the algorithm.
const signingKeys = [await newSigningKey()];
const accounts = new Map(); // sub -> { email, email_verified, name }
let loginAs = null;
let tamperMode = null;
const stats = { jwks_fetches: 0, userinfo_requests: 0, token_responses: 0, access_tokens: 0, last_id_token_kid: null };

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

async function tamper(idToken, mode) {
  const header = jose.decodeProtectedHeader(idToken);
  const payload = jose.decodeJwt(idToken);
  const realKey = signingKeys.find((k) => k.kid === header.kid) ?? signingKeys[0];
  const signWith = async (claims, jwk, kid) => new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', typ: header.typ ?? 'JWT', kid })
    .sign(await jose.importJWK(jwk, 'RS256'));
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'wrong_aud':
      return signWith({ ...payload, aud: 'some-other-client' }, realKey, realKey.kid);
    case 'wrong_iss':
      return signWith({ ...payload, iss: 'http://127.0.0.1:1/not-the-issuer' }, realKey, realKey.kid);
    case 'wrong_nonce':
      return signWith({ ...payload, nonce: randomBytes(16).toString('base64url') }, realKey, realKey.kid);
    case 'expired':
      return signWith({ ...payload, iat: now - 7200, auth_time: now - 7200, exp: now - 3600 }, realKey, realKey.kid);
    case 'foreign_key': {
      const other = await newSigningKey();
      return signWith(payload, other, `unknown-${randomBytes(6).toString('hex')}`);
    }
    case 'forged_kid': {
      const other = await newSigningKey();
      return signWith(payload, other, realKey.kid);
    }
    case 'alg_none':
      return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
    case 'hs256':
      return new jose.SignJWT(payload)
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .sign(new TextEncoder().encode(clientSecret));
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
}

const server = http.createServer();
await new Promise((resolve) => { server.listen(port, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

function buildProvider() {
  const clientDefaults = {
    redirect_uris: redirectUris,
    response_types: ['code'],
    grant_types: ['authorization_code'],
  };
  const clients = [
    { ...clientDefaults, client_id: CONFIDENTIAL_ID, client_secret: clientSecret, token_endpoint_auth_method: 'client_secret_basic' },
    { ...clientDefaults, client_id: PUBLIC_ID, token_endpoint_auth_method: 'none' },
  ];
  const connectorConfig = {};
  if (connector) {
    clients.push(
      {
        ...clientDefaults,
        client_id: CONNECTOR_ID,
        client_secret: connectorSecret,
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['authorization_code', 'refresh_token'],
      },
      {
        client_id: RESOURCE_SERVER_ID,
        client_secret: resourceServerSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [],
        response_types: [],
        grant_types: [],
      },
    );
    connectorConfig.ttl = { AccessToken: accessTokenTtl };
    connectorConfig.scopes = ['openid', 'offline_access', 'mcp'];
    connectorConfig.issueRefreshToken = async (ctx, client) => client.grantTypeAllowed('refresh_token');
  }
  const p = new Provider(issuer, {
    ...connectorConfig,
    clients,
    jwks: { keys: signingKeys },
    cookies: { keys: [cookieKey] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    conformIdTokenClaims: !claimsInIdToken,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: connector },
      registration: { enabled: connector },
      resourceIndicators: {
        enabled: connector,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          scope: 'mcp',
          audience: resourceIndicator,
          accessTokenFormat: 'opaque',
          accessTokenTTL: accessTokenTtl,
        }),
      },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, sub) {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, ...account };
        },
      };
    },
  });
  // The interposition: counts, records and (when a mode is set) rewrites the ID token of token responses.
  p.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/jwks' && ctx.method === 'GET') stats.jwks_fetches += 1;
    if (ctx.path === '/me') stats.userinfo_requests += 1;
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body && typeof ctx.body.access_token === 'string') {
      stats.access_tokens += 1;
    }
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body && typeof ctx.body.id_token === 'string') {
      stats.token_responses += 1;
      if (tamperMode) ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token, tamperMode) };
      stats.last_id_token_kid = jose.decodeProtectedHeader(ctx.body.id_token).kid ?? null;
    }
  });
  return p;
}

let provider = buildProvider();

function findAccountByHint(hint) {
  if (!hint) return loginAs;
  if (accounts.has(hint)) return hint;
  for (const [sub, a] of accounts) if (a.email === hint) return sub;
  return null;
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  if (prompt.name === 'login') {
    const sub = findAccountByHint(params.login_hint);
    if (!sub) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('test IdP: no account to sign in as: create one with POST /__test/accounts (or pass a known login_hint)\n');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: sub } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  res.writeHead(400, { 'content-type': 'text/plain' });
  res.end(`test IdP: unexpected prompt ${prompt.name}\n`);
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

const TAMPER_MODES = new Set(['wrong_aud', 'wrong_iss', 'wrong_nonce', 'expired', 'foreign_key', 'forged_kid', 'alg_none', 'hs256']);

async function control(req, res, path) {
  if (req.method === 'POST' && path === '/__test/accounts') {
    const body = await readJson(req);
    const sub = body.sub ?? `user-${randomBytes(8).toString('hex')}`;
    const account = { email: body.email, email_verified: body.email_verified ?? true };
    if (body.name !== undefined) account.name = body.name;
    accounts.set(sub, account);
    loginAs = sub;
    return json(res, 201, { sub });
  }
  if (req.method === 'POST' && path === '/__test/login-as') {
    const { sub } = await readJson(req);
    if (!accounts.has(sub)) return json(res, 404, { error: `no account ${sub}` });
    loginAs = sub;
    return json(res, 200, { sub });
  }
  if (req.method === 'POST' && path === '/__test/rotate-keys') {
    signingKeys.unshift(await newSigningKey());
    provider = buildProvider();
    return json(res, 200, { kid: signingKeys[0].kid });
  }
  if (req.method === 'POST' && path === '/__test/tamper') {
    const { mode } = await readJson(req);
    if (mode !== null && !TAMPER_MODES.has(mode)) return json(res, 400, { error: `unknown mode ${mode}`, modes: [...TAMPER_MODES] });
    tamperMode = mode;
    return json(res, 200, { mode });
  }
  if (req.method === 'GET' && path === '/__test/stats') return json(res, 200, stats);
  return json(res, 404, { error: 'no such test endpoint' });
}

server.on('request', (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  let handled;
  if (path.startsWith('/__test/')) handled = control(req, res, path);
  else if (path.startsWith('/interaction/')) handled = interaction(req, res);
  else {
    provider.callback()(req, res);
    return;
  }
  handled.catch((err) => {
    process.stderr.write(`test IdP: ${req.method} ${path}: ${err.stack ?? err}\n`);
    if (!res.headersSent) json(res, 500, { error: String(err.message ?? err) });
    else res.end();
  });
});

const started = {
  issuer,
  confidential_client: { client_id: CONFIDENTIAL_ID, client_secret: clientSecret },
  public_client: { client_id: PUBLIC_ID },
};
if (connector) {
  started.connector_client = { client_id: CONNECTOR_ID, client_secret: connectorSecret };
  started.resource_server = { client_id: RESOURCE_SERVER_ID, client_secret: resourceServerSecret };
}
process.stdout.write(`${JSON.stringify(started)}\n`);

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
