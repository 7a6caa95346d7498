// A relying party's back-channel logout endpoint, validating Gangway's logout tokens as OpenID
// Connect Back-Channel Logout 1.0 §2.6 says, with `jose` (the JOSE library openid-client is
// built on): the signature against the issuer's JWKS (found by discovery), `iss`, `aud`, `iat`
// and `exp`, the `logout+jwt` type, the back-channel logout event, `sid` or `sub`, no `nonce`.
// Driven by tests/api/signin_backchannel.rs over stdin/stdout:
//   env: ISSUER, JOSE (the module's path)
//   out: {"listening": URL}     in: the application's client id (the token's audience)
//   out, per POST: {"validated": {"header", "claims"}} (answered 200) or {"refused": why} (400)
import http from 'node:http';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const jose = await import(pathToFileURL(process.env.JOSE).href);
const issuer = process.env.ISSUER;
const say = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
if (!discovery.backchannel_logout_supported) {
  throw new Error('the issuer does not offer back-channel logout');
}
const jwks = jose.createRemoteJWKSet(new URL(discovery.jwks_uri));

async function validate(request) {
  if (request.headers['content-type'] !== 'application/x-www-form-urlencoded') {
    throw new Error(`not form-encoded: ${request.headers['content-type']}`);
  }
  let body = '';
  for await (const chunk of request) body += chunk;
  const token = new URLSearchParams(body).get('logout_token');
  if (!token) throw new Error('no logout_token');
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
    issuer,
    audience: clientId,
    typ: 'logout+jwt',
    algorithms: ['RS256'],
    requiredClaims: ['iat', 'exp', 'jti'],
    maxTokenAge: '2 minutes',
  });
  if (typeof payload.events?.[EVENT] !== 'object') throw new Error('no back-channel logout event');
  if ('nonce' in payload) throw new Error('a logout token carries no nonce');
  if (!payload.sid && !payload.sub) throw new Error('neither sid nor sub');
  return { header: protectedHeader, claims: payload };
}

const server = http.createServer(async (request, response) => {
  try {
    say({ validated: await validate(request) });
    response.writeHead(200, { 'cache-control': 'no-store' }).end();
  } catch (e) {
    say({ refused: String(e) });
    response.writeHead(400, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ error: 'invalid_request' }));
  }
});
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
await new Promise((ready) => server.listen(0, '127.0.0.1', ready));
say({ listening: `http://127.0.0.1:${server.address().port}/backchannel-logout` });
const clientId = (await lines.next()).value;
// Ends when the test closes stdin.
await lines.next();
server.close();
