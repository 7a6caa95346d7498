//! Entra ID client: authorize and admin-consent URLs, code exchange with full ID-token
//! validation, and client-credentials / refresh-token acquisition.
//!
//! Built on `oauth2` (flows) and `openidconnect` (ID-token verification). Endpoints are built
//! from the configured authority rather than discovered: Microsoft's multi-tenant discovery
//! document has a templated issuer that openidconnect's issuer check cannot use.

mod access_token;
mod client_certificate;
mod error;
mod id_token;

use std::{
    fmt,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime},
};

use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
    basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType},
};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use crate::types::Untrusted;
use crate::types::{Secret, TenantId};
pub use access_token::{API_ROLE_READ, API_ROLE_WRITE, API_SCOPE, ApiIdentity, ApiTokenProblem};
pub use client_certificate::{BadPrivateKey, ClientCertificate, JWT_BEARER};
pub use error::{
    AadError, AadErrorKind, IdTokenProblem, IdentityError, OperatorSignInError, UserSignInError,
};
pub use id_token::GLOBAL_ADMIN_ROLE;

/// The resource every Graph scope is named under, whatever host Graph is served from.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// The scope asking for all the application permissions consented in a tenant.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The OpenID scopes asked for with every delegated sign-in.
pub const OPENID_SCOPES: [&str; 3] = ["openid", "profile", "offline_access"];
/// The scopes of an operator's sign-in: an ID token with their name and email, nothing else.
pub const OPERATOR_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// How long fetched signing keys are trusted before they are fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The least time between refetches of the signing keys caused by API access tokens naming an
/// unknown `kid` (unauthenticated input, unlike the ID tokens Gangway just redeemed).
const API_KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// Where Entra ID lives and who Gangway is there.
#[derive(Clone, Debug)]
pub struct EntraConfig {
    /// `https://login.microsoftonline.com`, or the emulator's base URL (a trailing slash is fine).
    pub authority: Url,
    /// `https://graph.microsoft.com`, or the emulator's base URL.
    pub graph_url: Url,
    /// The provider's multi-tenant application (client) id.
    pub client_id: String,
    /// That application's client secret; `None` for an app that only has a certificate (or,
    /// before the setup, no credential at all).
    pub client_secret: Option<Secret>,
    /// `{public_url}/authenticate/OAuth2Callback`, registered on the application.
    pub redirect_uri: Url,
}

/// Where Entra ID and Graph are, and where Microsoft sends users back: everything of an
/// [`EntraConfig`] but the app's credentials, which System Settings hold.
#[derive(Debug, Clone)]
pub struct EntraEndpoints {
    /// `https://login.microsoftonline.com`, or the emulator's base URL.
    pub authority: Url,
    /// `https://graph.microsoft.com`, or the emulator's base URL.
    pub graph_url: Url,
    /// `{public_url}/authenticate/OAuth2Callback`.
    pub redirect_uri: Url,
}

impl EntraEndpoints {
    /// The configuration of the app `client_id` (with `client_secret`, if it has one) here.
    pub fn app(&self, client_id: String, client_secret: Option<Secret>) -> EntraConfig {
        EntraConfig {
            authority: self.authority.clone(),
            graph_url: self.graph_url.clone(),
            client_id,
            client_secret,
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}

/// A delegated sign-in about to start: send the browser to `url`, keep the rest in the session.
#[derive(Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The authorize URL to redirect the browser to.
    pub url: Url,
    /// The `state` sent; the callback must present it exactly once.
    pub state: String,
    /// The `nonce` sent; the ID token must carry it.
    pub nonce: String,
    /// The PKCE verifier matching the S256 challenge sent; needed to redeem the code.
    pub pkce_verifier: String,
    /// The `{tenant}` path it was sent to (`organizations` or a tenant id): the code is
    /// redeemed there and nowhere else (AADSTS700005).
    pub authority: String,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("url", &self.url.as_str())
            .field("state", &self.state)
            .field("nonce", &self.nonce)
            .field("pkce_verifier", &"[redacted]")
            .field("authority", &self.authority)
            .finish()
    }
}

/// An application (admin-consent) request: send the browser to `url`, keep `state`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminConsentRequest {
    /// The v2 admin-consent URL.
    pub url: Url,
    /// The `state` sent; the callback must present it exactly once.
    pub state: String,
}

/// Who signed in, from a fully validated ID token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInAdmin {
    /// `tid`: the tenant the user signed in to.
    pub tenant_id: TenantId,
    /// `oid`: the user's object id in that tenant.
    pub object_id: Uuid,
    /// `preferred_username` (else `upn`, else `email`).
    pub username: String,
    /// `name`, when present.
    pub name: Option<String>,
    /// What the ID token's `wids` says about the Global Administrator role.
    pub global_admin: RoleClaim,
}

/// What an ID token's `wids` (role template ids) says about one directory role. Entra ID puts
/// `wids` in tokens only when the app registration's `groupMembershipClaims` is
/// `DirectoryRole` or `All`, and only for users who hold a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoleClaim {
    /// `wids` names the role.
    Holds,
    /// `wids` is there without it.
    Lacks,
    /// No `wids`: the token says nothing either way; ask Graph.
    Unstated,
}

/// An operator Microsoft signed in to the provider's own tenant, from a fully validated ID token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorIdentity {
    /// `oid`: their object id in the provider's tenant (what Gangway keys operators on).
    pub oid: Uuid,
    /// `tid`: always the provider's tenant.
    pub tid: TenantId,
    /// `preferred_username` (else `upn`, else `email`): their UPN, normally.
    pub username: String,
    /// `name`, when present.
    pub name: Option<String>,
    /// `groups`: object ids of their groups, when the app registration asks for the claim.
    pub groups: Vec<Uuid>,
    /// `roles`: the app roles they are assigned.
    pub roles: Vec<String>,
    /// `sid`: their Entra session, which front-channel logout names.
    pub sid: Option<String>,
}

/// A customer's user Microsoft signed in to their own tenant, from a fully validated ID token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInUser {
    /// `tid`: the tenant they signed in to (always the one they were routed to).
    pub tenant_id: TenantId,
    /// `oid`: their object id there.
    pub object_id: Uuid,
    /// `preferred_username` (else `upn`, else `email`).
    pub username: String,
    /// `name`, when present.
    pub name: Option<String>,
    /// `sid`: their Entra session, when the token names one.
    pub sid: Option<String>,
    /// `amr`: how they authenticated, when the token says.
    pub amr: Vec<String>,
}

/// Why [`EntraClient::verify_api_token`] refused a token.
#[derive(Debug, thiserror::Error)]
pub enum ApiTokenError {
    /// The token failed a check.
    #[error("the access token was rejected: {0}")]
    Invalid(ApiTokenProblem),
    /// The signing keys could not be fetched.
    #[error(transparent)]
    Keys(IdentityError),
}

/// The outcome of a redeemed authorization code.
#[derive(Clone, Debug)]
pub struct DelegatedGrant {
    /// The verified identity of the signer.
    pub identity: SignedInAdmin,
    /// The refresh token (present when `offline_access` was granted).
    pub refresh_token: Option<Secret>,
    /// The Graph access token (opaque: never parsed).
    pub access_token: Secret,
    /// The scopes granted, as reported by the token endpoint.
    pub scopes: Vec<String>,
}

/// Tokens obtained from a refresh token.
#[derive(Clone, Debug)]
pub struct RefreshedGrant {
    /// The new access token.
    pub access_token: Secret,
    /// The rotated refresh token: persist it before using the access token.
    pub refresh_token: Option<Secret>,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// How long the access token lives, when Entra ID says.
    pub expires_in: Option<Duration>,
}

/// An access token and how long it lives.
#[derive(Clone, Debug)]
pub struct AppToken {
    /// The bearer token (opaque: never parsed).
    pub token: Secret,
    /// Its lifetime, when Entra ID says.
    pub expires_in: Option<Duration>,
}

/// The fields of an OpenID discovery document Gangway looks at.
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    /// Where it was read.
    #[serde(skip)]
    pub url: String,
    /// The issuer ID tokens carry; `{authority}/{tenantid}/v2.0` (a template) for
    /// `organizations` and `common`.
    pub issuer: String,
    /// The token endpoint.
    pub token_endpoint: String,
}

/// Talks to Entra ID as the provider application. Cheap to clone.
#[derive(Clone)]
pub struct EntraClient {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: EntraConfig,
    /// `cfg.authority` without a trailing slash.
    authority: String,
    http: reqwest::Client,
    jwks: RwLock<Option<CachedJwks>>,
    /// Serialises refetches so a burst of unknown-`kid` tokens causes one fetch.
    jwks_refetch: tokio::sync::Mutex<()>,
    /// The provider app's active certificate: while set, token requests as the provider
    /// authenticate with a client assertion instead of the client secret.
    certificate: RwLock<Option<ClientCertificate>>,
}

/// A client assertion still to be signed: by the provider app's certificate, for the token
/// endpoint a request goes to.
struct PendingAssertion {
    certificate: ClientCertificate,
    client_id: String,
    audience: String,
}

/// The token requests Gangway makes (code, refresh, client credentials): each carries the
/// client assertion, when there is one, as extra form parameters.
trait Authenticated: Sized {
    fn param(self, name: &'static str, value: String) -> Self;

    /// Adds `client_assertion_type` and a freshly signed `client_assertion`.
    fn authenticated(self, pending: Option<PendingAssertion>) -> Self {
        match pending {
            None => self,
            Some(p) => self
                .param("client_assertion_type", JWT_BEARER.to_owned())
                .param(
                    "client_assertion",
                    p.certificate.assertion(&p.client_id, &p.audience),
                ),
        }
    }
}

macro_rules! authenticated {
    ($($request:ident),*) => {$(
        impl<'a, TE, TR> Authenticated for oauth2::$request<'a, TE, TR>
        where
            TE: oauth2::ErrorResponse + 'static,
            TR: TokenResponse,
        {
            fn param(self, name: &'static str, value: String) -> Self {
                self.add_extra_param(name, value)
            }
        }
    )*};
}
authenticated!(
    CodeTokenRequest,
    ClientCredentialsTokenRequest,
    RefreshTokenRequest
);

#[derive(Clone)]
struct CachedJwks {
    keys: Arc<id_token::Jwks>,
    fetched_at: Instant,
    generation: u64,
}

impl fmt::Debug for EntraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraClient")
            .field("authority", &self.inner.authority)
            .field("client_id", &self.inner.cfg.client_id)
            .finish_non_exhaustive()
    }
}

/// The ID token Microsoft returns beside the access token.
#[derive(Clone, Deserialize, Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}
impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdTokenField([redacted])")
    }
}
impl ExtraTokenFields for IdTokenField {}

type EntraTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient<HasAuthUrl> = Client<
    AadError,
    EntraTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;
type TokenError = RequestTokenError<HttpClientError<reqwest::Error>, AadError>;

impl EntraClient {
    /// A client for `cfg`. `http` should follow no redirects (and may trust an extra root CA).
    pub fn new(cfg: EntraConfig, http: reqwest::Client) -> Self {
        let authority = cfg.authority.as_str().trim_end_matches('/').to_owned();
        Self {
            inner: Arc::new(Inner {
                cfg,
                authority,
                http,
                jwks: RwLock::new(None),
                jwks_refetch: tokio::sync::Mutex::new(()),
                certificate: RwLock::new(None),
            }),
        }
    }

    /// The issuer Entra ID puts in ID tokens of `tenant`: `{authority}/{tid}/v2.0`.
    pub fn issuer_for(&self, tenant: &TenantId) -> String {
        format!("{}/{tenant}/v2.0", self.inner.authority)
    }

    /// The token endpoint for `tenant` (`organizations`, `common` or a tenant GUID).
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.inner.authority)
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.inner.authority)
    }

    /// Makes token requests as the provider app authenticate with `certificate` (a client
    /// assertion) from now on, or with the client secret again when `None`.
    pub fn set_certificate(&self, certificate: Option<ClientCertificate>) {
        *self
            .inner
            .certificate
            .write()
            .unwrap_or_else(|e| e.into_inner()) = certificate;
    }

    /// A client for the same app that signs its token requests with `certificate`: proves a
    /// certificate works before it becomes the active one.
    pub fn with_certificate(&self, certificate: ClientCertificate) -> Self {
        let client = Self::new(self.inner.cfg.clone(), self.inner.http.clone());
        client.set_certificate(Some(certificate));
        client
    }

    /// The `x5t#S256` of the certificate token requests are signed with, if any.
    pub fn certificate_thumbprint(&self) -> Option<String> {
        self.inner
            .certificate
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.x5t_s256().to_owned())
    }

    fn oauth_client(
        &self,
        client_id: &str,
        secret: Option<&Secret>,
        token_tenant: &str,
    ) -> Result<(OAuthClient<EndpointNotSet>, Option<PendingAssertion>), IdentityError> {
        self.oauth_client_for(
            client_id,
            secret,
            token_tenant,
            &self.inner.cfg.redirect_uri,
        )
    }

    /// A client for `client_id` with no credential: enough for an authorize URL, which never
    /// carries one. Also returns the token endpoint of `token_tenant` (an assertion's audience).
    fn public_client(
        &self,
        client_id: &str,
        token_tenant: &str,
        redirect_uri: &Url,
    ) -> Result<(OAuthClient<EndpointNotSet>, String), IdentityError> {
        let audience = self.token_endpoint(token_tenant);
        let token_url = TokenUrl::new(audience.clone())
            .map_err(|_| IdentityError::Transport("invalid token endpoint URL".into()))?;
        let client = Client::new(ClientId::new(client_id.to_owned()))
            .set_token_uri(token_url)
            // Entra ID documents client_secret_post; MSAL sends the secret in the body too.
            .set_auth_type(AuthType::RequestBody)
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()));
        Ok((client, audience))
    }

    /// [`Self::oauth_client`] sending `redirect_uri` (the operator sign-in has its own).
    ///
    /// The one place that decides how Gangway authenticates: the provider app with an active
    /// certificate signs a client assertion (added to the request by
    /// [`Authenticated::authenticated`]), anything else sends its client secret; with neither
    /// (before the setup) nothing is sent to Entra ID.
    fn oauth_client_for(
        &self,
        client_id: &str,
        secret: Option<&Secret>,
        token_tenant: &str,
        redirect_uri: &Url,
    ) -> Result<(OAuthClient<EndpointNotSet>, Option<PendingAssertion>), IdentityError> {
        let (client, audience) = self.public_client(client_id, token_tenant, redirect_uri)?;
        let certificate = (client_id == self.inner.cfg.client_id)
            .then(|| {
                self.inner
                    .certificate
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            })
            .flatten();
        match (certificate, secret) {
            (Some(certificate), _) => Ok((
                client,
                Some(PendingAssertion {
                    certificate,
                    client_id: client_id.to_owned(),
                    audience,
                }),
            )),
            (None, Some(secret)) => Ok((
                client.set_client_secret(ClientSecret::new(secret.expose().to_owned())),
                None,
            )),
            (None, None) => Err(IdentityError::NoCredential),
        }
    }

    /// Starts a delegated sign-in: the authorize URL on
    /// `{authority}/organizations/oauth2/v2.0/authorize` with `response_type=code`, PKCE S256,
    /// fresh random `state` and `nonce`, scopes `openid profile offline_access` plus each
    /// of `graph_scopes` (bare names like `User.Read.All`, or full URIs), `prompt=select_account`
    /// and an optional `login_hint`.
    pub fn delegated_request(
        &self,
        graph_scopes: &[&str],
        login_hint: Option<&str>,
    ) -> AuthRequest {
        let scopes = OPENID_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .chain(graph_scopes.iter().map(|s| graph_scope(s)));
        self.authorize_request(
            "organizations",
            scopes,
            Some("select_account"),
            login_hint,
            &self.inner.cfg.redirect_uri,
        )
    }

    /// Starts the sign-in that binds an admin consent to a person: the authorize URL on
    /// `{authority}/{tenant}/oauth2/v2.0/authorize` asking only for `openid profile` (an ID
    /// token, no access kept), with PKCE, `state` and `nonce` as for a delegated sign-in.
    /// `silent` sends `prompt=none`: right after consenting the admin is still signed in at
    /// Microsoft, so no page is shown; otherwise `prompt=select_account`.
    pub fn admin_sign_in_request(
        &self,
        tenant: &TenantId,
        login_hint: Option<&str>,
        silent: bool,
    ) -> AuthRequest {
        let scopes = OPENID_SCOPES[..2].iter().map(|s| (*s).to_owned());
        let prompt = if silent { "none" } else { "select_account" };
        self.authorize_request(
            &tenant.to_string(),
            scopes,
            Some(prompt),
            login_hint,
            &self.inner.cfg.redirect_uri,
        )
    }

    /// Starts an operator's sign-in to the console with their account in the provider's own
    /// `tenant`: the authorize URL on `{authority}/{tenant}/oauth2/v2.0/authorize` asking for
    /// `openid profile email` (an ID token, nothing kept), with PKCE S256, fresh `state` and
    /// `nonce`, `response_mode=query`, back to `redirect_uri` (registered on the app beside the
    /// consent callback). No `prompt`: someone already signed in at Microsoft goes straight
    /// through, which is what single sign-on is for. Finish with [`Self::redeem_operator_code`].
    pub fn operator_sign_in_request(&self, tenant: &TenantId, redirect_uri: &Url) -> AuthRequest {
        let scopes = OPERATOR_SCOPES.iter().map(|s| (*s).to_owned());
        let mut req = self.authorize_request(&tenant.to_string(), scopes, None, None, redirect_uri);
        req.url
            .query_pairs_mut()
            .append_pair("response_mode", "query");
        req
    }

    /// Redeems the code of an operator sign-in ([`Self::operator_sign_in_request`]) at
    /// `{authority}/{tenant}/oauth2/v2.0/token` and validates the ID token with every check of
    /// [`Self::verify_id_token`], then demands that it was issued by `tenant` itself (a
    /// single-tenant sign-in: any other `tid` is refused) and that its groups fit in it (an
    /// overage — too many groups, `_claim_names` / `hasgroups` instead of `groups` — is refused:
    /// map app roles instead).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn redeem_operator_code(
        &self,
        tenant: &TenantId,
        redirect_uri: &Url,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<OperatorIdentity, OperatorSignInError> {
        let (_, verified) = self
            .exchange_code(
                &tenant.to_string(),
                redirect_uri,
                code,
                pkce_verifier,
                nonce,
            )
            .await?;
        operator_identity(verified, tenant)
    }

    /// Starts the sign-in of a customer's user (Gangway as an OpenID Provider federating to
    /// the user's own tenant): the authorize URL on `{authority}/{tenant}/oauth2/v2.0/authorize`
    /// asking for `openid profile email` with PKCE S256, fresh `state` and `nonce`,
    /// `response_mode=query`, back to `redirect_uri`; `login_hint`, `domain_hint` and `prompt`
    /// passed on when given. Finish with [`Self::redeem_user_code`].
    pub fn user_sign_in_request(
        &self,
        tenant: &TenantId,
        redirect_uri: &Url,
        login_hint: Option<&str>,
        domain_hint: Option<&str>,
        prompt: Option<&str>,
    ) -> AuthRequest {
        let scopes = OPERATOR_SCOPES.iter().map(|s| (*s).to_owned());
        let mut req = self.authorize_request(
            &tenant.to_string(),
            scopes,
            prompt,
            login_hint,
            redirect_uri,
        );
        let mut query = req.url.query_pairs_mut();
        query.append_pair("response_mode", "query");
        if let Some(hint) = domain_hint.filter(|h| !h.is_empty()) {
            query.append_pair("domain_hint", hint);
        }
        drop(query);
        req
    }

    /// Redeems the code of a customer user's sign-in ([`Self::user_sign_in_request`]) at
    /// `{authority}/{tenant}/oauth2/v2.0/token`, validates the ID token with every check of
    /// [`Self::verify_id_token`], and demands that its `tid` is `tenant`, the tenant the user
    /// was routed to.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn redeem_user_code(
        &self,
        tenant: &TenantId,
        redirect_uri: &Url,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<SignedInUser, UserSignInError> {
        let (_, verified) = self
            .exchange_code(
                &tenant.to_string(),
                redirect_uri,
                code,
                pkce_verifier,
                nonce,
            )
            .await?;
        let id_token::Verified { identity, operator } = verified;
        if identity.tenant_id != *tenant {
            return Err(UserSignInError::WrongTenant {
                expected: *tenant,
                actual: identity.tenant_id,
                username: identity.username,
            });
        }
        Ok(SignedInUser {
            tenant_id: identity.tenant_id,
            object_id: identity.object_id,
            username: identity.username,
            name: identity.name,
            sid: operator.sid,
            amr: operator.amr,
        })
    }

    /// The one code exchange every sign-in uses: redeems `code` with its PKCE verifier at
    /// `{authority}/{tenant}/oauth2/v2.0/token` (sending `redirect_uri`, the one the sign-in
    /// asked with) and validates the ID token the answer carries against `nonce` with every
    /// check; nothing is returned unless it passes.
    async fn exchange_code(
        &self,
        tenant: &str,
        redirect_uri: &Url,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<(EntraTokenResponse, id_token::Verified), IdentityError> {
        let (client, assertion) = self.oauth_client_for(
            &self.inner.cfg.client_id,
            self.inner.cfg.client_secret.as_ref(),
            tenant,
            redirect_uri,
        )?;
        let resp = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .authenticated(assertion)
            .request_async(&self.inner.http)
            .await
            .map_err(token_error)?;
        let raw_id_token = resp
            .extra_fields()
            .id_token
            .as_deref()
            .ok_or(IdentityError::InvalidIdToken(IdTokenProblem::Missing))?;
        let verified = self.verify_full(raw_id_token, nonce).await?;
        Ok((resp, verified))
    }

    fn authorize_request(
        &self,
        tenant: &str,
        scopes: impl Iterator<Item = String>,
        prompt: Option<&str>,
        login_hint: Option<&str>,
        redirect_uri: &Url,
    ) -> AuthRequest {
        let auth_url = AuthUrl::new(self.endpoint(&format!("{tenant}/oauth2/v2.0/authorize")))
            .expect("authority joined with a tenant id and a fixed path is a URL");
        let client = self
            .public_client(&self.inner.cfg.client_id, "organizations", redirect_uri)
            .expect("authority joined with a fixed path is a URL")
            .0
            .set_auth_uri(auth_url);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random_len(32).into_secret();
        let mut req = client
            .authorize_url(|| CsrfToken::new_random_len(32))
            .set_pkce_challenge(challenge)
            .add_scopes(scopes.map(Scope::new))
            .add_extra_param("nonce", nonce.clone());
        if let Some(prompt) = prompt {
            req = req.add_extra_param("prompt", prompt.to_owned());
        }
        if let Some(hint) = login_hint.filter(|h| !h.is_empty()) {
            req = req.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state) = req.url();
        AuthRequest {
            url,
            state: state.into_secret(),
            nonce,
            pkce_verifier: verifier.into_secret(),
            authority: tenant.to_owned(),
        }
    }

    /// Starts an application-permission consent: the v2 admin-consent URL
    /// `{authority}/organizations/v2.0/adminconsent?client_id&scope=https://graph.microsoft.com/.default&redirect_uri&state`.
    /// Success arriving at the callback proves nothing about who is in the browser: bind it to
    /// an administrator's sign-in ([`Self::admin_sign_in_request`]) and confirm it with
    /// [`Self::app_token`].
    pub fn admin_consent_request(&self) -> AdminConsentRequest {
        let state = CsrfToken::new_random_len(32).into_secret();
        let mut url = Url::parse(&self.endpoint("organizations/v2.0/adminconsent"))
            .expect("authority joined with a fixed path is a URL");
        url.query_pairs_mut()
            .append_pair("client_id", &self.inner.cfg.client_id)
            .append_pair("scope", GRAPH_DEFAULT_SCOPE)
            .append_pair("redirect_uri", self.inner.cfg.redirect_uri.as_str())
            .append_pair("state", &state);
        AdminConsentRequest { url, state }
    }

    /// Redeems an authorization code (with its PKCE verifier) at
    /// `{authority}/{tenant}/oauth2/v2.0/token`, where `tenant` is the path the sign-in was
    /// requested on ([`AuthRequest::authority`]: Entra ID refuses a code redeemed against another,
    /// AADSTS700005), and fully validates the ID token against `nonce`. Nothing is returned
    /// unless the ID token passes every check.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn redeem_code(
        &self,
        tenant: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<DelegatedGrant, IdentityError> {
        let redirect_uri = &self.inner.cfg.redirect_uri;
        let (resp, verified) = self
            .exchange_code(tenant, redirect_uri, code, pkce_verifier, nonce)
            .await?;
        let identity = verified.identity;
        tracing::info!(tenant_id = %identity.tenant_id, "authorization code redeemed");
        Ok(DelegatedGrant {
            identity,
            refresh_token: resp
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
            access_token: Secret::new(resp.access_token().secret().clone()),
            scopes: granted_scopes(&resp),
        })
    }

    /// Validates a raw ID token for this application and `nonce`; see [`IdTokenProblem`] for
    /// every check. Signing keys come from `{authority}/common/discovery/v2.0/keys`, cached, and
    /// refetched once when the token names an unknown `kid` (key rotation).
    #[tracing::instrument(skip_all)]
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<SignedInAdmin, IdentityError> {
        Ok(self.verify_full(id_token, nonce).await?.identity)
    }

    async fn verify_full(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<id_token::Verified, IdentityError> {
        let kid = id_token::key_id(id_token).map_err(IdentityError::InvalidIdToken)?;
        let mut keys = self.signing_keys().await?;
        if !keys.keys.has_kid(&kid) {
            tracing::info!("ID token signed with an unknown key id; refetching signing keys");
            keys = self.refetch_signing_keys(keys.generation).await?;
        }
        let expected = id_token::Expected {
            authority: &self.inner.authority,
            client_id: &self.inner.cfg.client_id,
            nonce,
        };
        id_token::validate_full(id_token, &keys.keys, &expected, SystemTime::now())
            .map_err(IdentityError::InvalidIdToken)
    }

    /// Validates an access token Entra ID issued for the API the provider exposes on its own
    /// registration (`client_id`, application ID URI `api://{client_id}`) in `tenant`, the
    /// provider's own: see [`ApiTokenProblem`] for every check. Keys as for
    /// [`Self::verify_id_token`]: cached, refetched once on an unknown `kid` — at most once a
    /// minute for these tokens, which anyone can send.
    #[tracing::instrument(skip_all)]
    pub async fn verify_api_token(
        &self,
        token: &str,
        tenant: &TenantId,
        client_id: &str,
    ) -> Result<ApiIdentity, ApiTokenError> {
        let kid = access_token::key_id(token).map_err(ApiTokenError::Invalid)?;
        let mut keys = self.signing_keys().await.map_err(ApiTokenError::Keys)?;
        // Anyone can send an API request naming a made-up `kid`: refetch at most once a
        // minute for those, so they cannot hammer the keys endpoint.
        if !keys.keys.has_kid(&kid) && keys.fetched_at.elapsed() >= API_KEY_REFETCH_INTERVAL {
            tracing::info!("access token signed with an unknown key id; refetching signing keys");
            keys = self
                .refetch_signing_keys(keys.generation)
                .await
                .map_err(ApiTokenError::Keys)?;
        }
        let expected = access_token::ApiExpected {
            authority: &self.inner.authority,
            tenant: *tenant,
            client_id,
        };
        access_token::validate(token, &keys.keys, &expected, SystemTime::now())
            .map_err(ApiTokenError::Invalid)
    }

    async fn signing_keys(&self) -> Result<CachedJwks, IdentityError> {
        let cached = self.inner.jwks.read().expect("jwks lock").clone();
        match cached {
            Some(c) if c.fetched_at.elapsed() < JWKS_MAX_AGE => Ok(c),
            // Past their age the keys are refreshed, but an outage at Microsoft should not stop
            // sign-ins while the old keys still verify; an unknown kid refetches regardless.
            Some(c) => match self.refetch_signing_keys(c.generation).await {
                Ok(fresh) => Ok(fresh),
                Err(e) => {
                    tracing::warn!(error = ?e, "could not refresh signing keys; using cached ones");
                    Ok(c)
                }
            },
            None => self.refetch_signing_keys(0).await,
        }
    }

    /// Fetches the key set unless someone else already replaced generation `seen`.
    async fn refetch_signing_keys(&self, seen: u64) -> Result<CachedJwks, IdentityError> {
        let _guard = self.inner.jwks_refetch.lock().await;
        if let Some(c) = self.inner.jwks.read().expect("jwks lock").clone()
            && c.generation > seen
        {
            return Ok(c);
        }
        let url = self.endpoint("common/discovery/v2.0/keys");
        let resp = self
            .inner
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| IdentityError::Transport(format!("fetching signing keys: {e}")))?;
        if !resp.status().is_success() {
            return Err(IdentityError::Transport(format!(
                "fetching signing keys: HTTP {}",
                resp.status().as_u16()
            )));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| IdentityError::Transport(format!("fetching signing keys: {e}")))?;
        let keys = id_token::Jwks::from_json(&body).map_err(IdentityError::Transport)?;
        let fresh = CachedJwks {
            keys: Arc::new(keys),
            fetched_at: Instant::now(),
            generation: seen + 1,
        };
        *self.inner.jwks.write().expect("jwks lock") = Some(fresh.clone());
        Ok(fresh)
    }

    /// Reads `{authority}/{tenant}/v2.0/.well-known/openid-configuration` (`tenant`:
    /// `organizations`, `common` or a tenant GUID): whether the authority answers as Entra ID
    /// does, and with which issuer. Gangway builds its endpoints from the authority instead
    /// (see the module's docs); the setup check reads this to prove the two agree.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn discovery(&self, tenant: &str) -> Result<Discovery, IdentityError> {
        let url = self.endpoint(&format!("{tenant}/v2.0/.well-known/openid-configuration"));
        let transport = |e: reqwest::Error| {
            IdentityError::Transport(format!("fetching {url}: {}", e.without_url()))
        };
        let resp = self
            .inner
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<AadError>(&body) {
                Ok(aad) if !aad.error.is_empty() => IdentityError::Aad(Box::new(aad)),
                _ => IdentityError::Transport(format!("fetching {url}: HTTP {}", status.as_u16())),
            });
        }
        let mut doc: Discovery = serde_json::from_slice(&body).map_err(|_| {
            IdentityError::Transport(format!("{url} is not an OpenID discovery document"))
        })?;
        doc.url = url;
        Ok(doc)
    }

    /// A client-credentials access token for Graph (`https://graph.microsoft.com/.default`) in
    /// `tenant`: as the provider application, or with `creds` (client id, secret) for a
    /// customer's own application. Proves a consent or a customer's credentials.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn app_token(
        &self,
        tenant: &TenantId,
        creds: Option<(&str, &Secret)>,
    ) -> Result<Secret, IdentityError> {
        Ok(self.app_access_token(tenant, creds).await?.token)
    }

    /// [`Self::app_token`] with its lifetime, for callers that cache it.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn app_access_token(
        &self,
        tenant: &TenantId,
        creds: Option<(&str, &Secret)>,
    ) -> Result<AppToken, IdentityError> {
        let (client_id, secret) = match creds {
            Some((client_id, secret)) => (client_id, Some(secret)),
            None => (
                self.inner.cfg.client_id.as_str(),
                self.inner.cfg.client_secret.as_ref(),
            ),
        };
        let (client, assertion) = self.oauth_client(client_id, secret, &tenant.to_string())?;
        let resp = client
            .exchange_client_credentials()
            .add_scope(Scope::new(GRAPH_DEFAULT_SCOPE.to_owned()))
            .authenticated(assertion)
            .request_async(&self.inner.http)
            .await
            .map_err(token_error)?;
        Ok(AppToken {
            token: Secret::new(resp.access_token().secret().clone()),
            expires_in: resp.expires_in(),
        })
    }

    /// Redeems a delegated refresh token in `tenant` for new tokens (asking for `scopes`, or
    /// `https://graph.microsoft.com/.default` when empty). The refresh token rotates: persist the
    /// returned one before using the access token. `invalid_grant` ([`AadError::is_invalid_grant`])
    /// means a new consent is needed.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn refresh(
        &self,
        tenant: &TenantId,
        refresh_token: &Secret,
        scopes: &[&str],
    ) -> Result<RefreshedGrant, IdentityError> {
        let (client, assertion) = self.oauth_client(
            &self.inner.cfg.client_id,
            self.inner.cfg.client_secret.as_ref(),
            &tenant.to_string(),
        )?;
        let rt = RefreshToken::new(refresh_token.expose().to_owned());
        let mut req = client.exchange_refresh_token(&rt).authenticated(assertion);
        if scopes.is_empty() {
            req = req.add_scope(Scope::new(GRAPH_DEFAULT_SCOPE.to_owned()));
        } else {
            req = req.add_scopes(scopes.iter().map(|s| Scope::new(graph_scope(s))));
        }
        let resp = req
            .request_async(&self.inner.http)
            .await
            .map_err(token_error)?;
        Ok(RefreshedGrant {
            access_token: Secret::new(resp.access_token().secret().clone()),
            refresh_token: resp
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
            scopes: granted_scopes(&resp),
            expires_in: resp.expires_in(),
        })
    }
}

/// The application permissions named in an app-only access token's `roles` claim, read
/// without verifying anything: access tokens belong to Graph and may change shape (or be
/// encrypted) at any time, so this is for showing what was granted and nothing else; an
/// unreadable token simply names none.
pub fn app_token_roles(token: &Secret) -> Vec<String> {
    use base64::Engine;
    let payload = token.expose().split('.').nth(1).and_then(|p| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()
    });
    #[derive(Deserialize)]
    struct Roles {
        #[serde(default)]
        roles: Vec<String>,
    }
    let mut roles = payload
        .and_then(|p| serde_json::from_slice::<Roles>(&p).ok())
        .map(|r| r.roles)
        .unwrap_or_default();
    roles.sort();
    roles
}

/// The operator behind a verified token, if it was issued by `tenant` and its groups fit.
fn operator_identity(
    verified: id_token::Verified,
    tenant: &TenantId,
) -> Result<OperatorIdentity, OperatorSignInError> {
    let id_token::Verified { identity, operator } = verified;
    if identity.tenant_id != *tenant {
        return Err(OperatorSignInError::WrongTenant {
            expected: *tenant,
            actual: identity.tenant_id,
            username: identity.username,
        });
    }
    if operator.groups_overage {
        return Err(OperatorSignInError::GroupsOverage {
            username: identity.username,
            oid: identity.object_id,
        });
    }
    Ok(OperatorIdentity {
        oid: identity.object_id,
        tid: identity.tenant_id,
        username: identity.username,
        name: identity.name,
        groups: operator.groups,
        roles: operator.roles,
        sid: operator.sid,
    })
}

/// `User.Read.All` → `https://graph.microsoft.com/User.Read.All`; OpenID scopes and full URIs
/// are kept as they are.
pub fn graph_scope(scope: &str) -> String {
    if scope.contains("://") || OPENID_SCOPES.contains(&scope) || scope == "email" {
        scope.to_owned()
    } else {
        format!("{GRAPH_RESOURCE}/{scope}")
    }
}

fn granted_scopes(resp: &EntraTokenResponse) -> Vec<String> {
    resp.scopes()
        .map(|s| s.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

/// Maps an oauth2 error without ever echoing a response body (a success body holds tokens).
fn token_error(e: TokenError) -> IdentityError {
    match e {
        RequestTokenError::ServerResponse(aad) => {
            tracing::info!(
                error = ?Untrusted(&aad.error),
                description = ?Untrusted(aad.summary()),
                "token endpoint refused the request"
            );
            IdentityError::Aad(Box::new(aad))
        }
        RequestTokenError::Request(e) => IdentityError::Transport(format!("token request: {e}")),
        RequestTokenError::Parse(e, _body) => IdentityError::Transport(format!(
            "token endpoint answer unreadable at `{}`",
            e.path()
        )),
        RequestTokenError::Other(msg) => IdentityError::Transport(format!("token endpoint: {msg}")),
    }
}

#[cfg(test)]
mod emulator_tests;
#[cfg(test)]
pub(crate) mod test_http;
#[cfg(test)]
mod tests;
