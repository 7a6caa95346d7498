// A relying party built on openid-client (npm), the certified OpenID Connect client, signing a
// user in through Gangway unchanged. Driven by tests/api/signin_clients.rs over stdin/stdout:
//   env: ISSUER, CLIENT_ID, CLIENT_SECRET (absent: a public client), PRIVATE_KEY_JWT (set:
//        authenticate with private_key_jwt instead), REDIRECT_URI, POST_LOGOUT_REDIRECT_URI,
//        LOGIN_HINT, OPENID_CLIENT (the module's path)
//   with PRIVATE_KEY_JWT: out: {"jwk": the public key to register}   in: any line, once done
//   out: {"authorize": URL}          in: the URL Gangway sent the browser back to
//   out: {"claims", "userinfo", "refreshed_claims", "refresh_reused_error", "end_session"}
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const client = await import(pathToFileURL(process.env.OPENID_CLIENT).href);
const env = (name) => process.env[name] || undefined;
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (value) => process.stdout.write(JSON.stringify(value) + '\n');

const secret = env('CLIENT_SECRET');
let authentication = secret ? client.ClientSecretBasic(secret) : client.None();
if (env('PRIVATE_KEY_JWT')) {
  // The application's own key pair: the public half is registered with Gangway.
  const { publicKey, privateKey } = await crypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['sign', 'verify'],
  );
  const kid = 'rp-key-1';
  say({ jwk: { ...(await crypto.subtle.exportKey('jwk', publicKey)), kid } });
  await lines.next();
  authentication = client.PrivateKeyJwt({ key: privateKey, kid });
}
// Loopback http in tests; a real deployment is https and needs no such option.
const config = await client.discovery(
  new URL(env('ISSUER')),
  env('CLIENT_ID'),
  secret,
  authentication,
  { execute: [client.allowInsecureRequests] },
);
// Verify ID token signatures against the JWKS (not only TLS to the token endpoint).
client.enableNonRepudiationChecks(config);

const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const authorize = client.buildAuthorizationUrl(config, {
  redirect_uri: env('REDIRECT_URI'),
  scope: 'openid profile email offline_access',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  nonce,
  state,
  login_hint: env('LOGIN_HINT'),
});
say({ authorize: authorize.href });

const callback = (await lines.next()).value;
const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
let refreshReusedError = null;
try {
  await client.refreshTokenGrant(config, tokens.refresh_token);
} catch (e) {
  refreshReusedError = e.error ?? String(e);
}
const endSession = client.buildEndSessionUrl(config, {
  id_token_hint: refreshed.id_token ?? tokens.id_token,
  post_logout_redirect_uri: env('POST_LOGOUT_REDIRECT_URI'),
  state: 'signed-out',
});
say({
  claims,
  userinfo,
  refreshed_claims: refreshed.claims() ?? null,
  refresh_reused_error: refreshReusedError,
  end_session: endSession.href,
});
