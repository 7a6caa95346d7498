//! The OpenID Provider's documents and tokens, built with `openidconnect`'s provider-side
//! types: the discovery metadata, the token response with its signed ID token, and userinfo.

use std::time::{Duration, SystemTime};

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGenderClaim,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType, CoreTokenType,
};
use openidconnect::{
    AccessToken, AdditionalProviderMetadata, Audience, AuthUrl, AuthenticationMethodReference,
    EmptyExtraTokenFields, EndUserEmail, EndUserFamilyName, EndUserGivenName, EndUserName,
    EndUserUsername, IdToken, IdTokenClaims, IdTokenFields, IssuerUrl, JsonWebKeySetUrl, Nonce,
    ProviderMetadata, RefreshToken, ResponseTypes, Scope, StandardClaims, StandardTokenResponse,
    SubjectIdentifier, TokenUrl, UserInfoClaims, UserInfoUrl,
};
use serde::{Deserialize, Serialize};

use super::SigninError;
use super::claims::{GangwayClaims, UserClaims};
use super::keys::SigningKeys;

/// The OpenID scopes Gangway knows; others asked for are ignored.
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// Where each endpoint is, under the issuer.
pub struct Endpoints {
    /// The issuer (Gangway's public URL, no trailing slash).
    pub issuer: String,
    /// Authorization endpoint.
    pub authorize: String,
    /// Token endpoint.
    pub token: String,
    /// Userinfo endpoint.
    pub userinfo: String,
    /// JWKS.
    pub jwks: String,
    /// RFC 7009 revocation endpoint.
    pub revocation: String,
    /// RP-initiated logout.
    pub end_session: String,
}

/// Discovery fields `openidconnect`'s core metadata does not have.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExtraMetadata {
    /// RP-initiated logout.
    pub end_session_endpoint: String,
    /// RFC 7009.
    pub revocation_endpoint: String,
    /// Only S256.
    pub code_challenge_methods_supported: Vec<String>,
    /// Back-channel logout is offered.
    pub backchannel_logout_supported: bool,
    /// Back-channel logout tokens carry `sid`.
    pub backchannel_logout_session_supported: bool,
    /// How clients authenticate at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<CoreClientAuthMethod>,
    /// RFC 9207: the authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

/// Gangway's discovery document type.
pub type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The claims Gangway issues, for discovery.
const CLAIMS: [&str; 21] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "sid",
    "email",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "tid",
    "oid",
    "org_id",
    "org_name",
    "groups",
    "groups_truncated",
    "roles",
];

fn url_error(e: url::ParseError) -> SigninError {
    SigninError::Key(format!("an endpoint is not a URL: {e}"))
}

/// The discovery document (`/.well-known/openid-configuration`).
pub fn metadata(ends: &Endpoints) -> Result<Metadata, SigninError> {
    let auth = vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::PrivateKeyJwt,
        CoreClientAuthMethod::None,
    ];
    Ok(Metadata::new(
        IssuerUrl::new(ends.issuer.clone()).map_err(url_error)?,
        AuthUrl::new(ends.authorize.clone()).map_err(url_error)?,
        JsonWebKeySetUrl::new(ends.jwks.clone()).map_err(url_error)?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![
            CoreSubjectIdentifierType::Public,
            CoreSubjectIdentifierType::Pairwise,
        ],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        ExtraMetadata {
            end_session_endpoint: ends.end_session.clone(),
            revocation_endpoint: ends.revocation.clone(),
            code_challenge_methods_supported: vec!["S256".into()],
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
            revocation_endpoint_auth_methods_supported: auth.clone(),
            authorization_response_iss_parameter_supported: true,
        },
    )
    .set_token_endpoint(Some(TokenUrl::new(ends.token.clone()).map_err(url_error)?))
    .set_userinfo_endpoint(Some(
        UserInfoUrl::new(ends.userinfo.clone()).map_err(url_error)?,
    ))
    .set_scopes_supported(Some(
        SCOPES.iter().map(|s| Scope::new((*s).into())).collect(),
    ))
    .set_response_modes_supported(Some(vec![CoreResponseMode::Query]))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
    ]))
    .set_token_endpoint_auth_methods_supported(Some(auth))
    // What private_key_jwt assertions may be signed with.
    .set_token_endpoint_auth_signing_alg_values_supported(Some(vec![
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    ]))
    .set_claims_supported(Some(
        CLAIMS
            .iter()
            .map(|c| CoreClaimName::new((*c).into()))
            .collect(),
    )))
}

/// The standard claims of `user` that `scopes` allow (`profile`, `email`).
fn standard_claims(user: &UserClaims, scopes: &[String]) -> StandardClaims<CoreGenderClaim> {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut claims = StandardClaims::new(SubjectIdentifier::new(user.sub.clone()));
    if has("profile") {
        claims = claims
            .set_name(user.name.clone().map(|n| EndUserName::new(n).into()))
            .set_given_name(
                user.given_name
                    .clone()
                    .map(|n| EndUserGivenName::new(n).into()),
            )
            .set_family_name(
                user.family_name
                    .clone()
                    .map(|n| EndUserFamilyName::new(n).into()),
            )
            .set_preferred_username(user.preferred_username.clone().map(EndUserUsername::new));
    }
    if has("email") {
        claims = claims.set_email(user.email.clone().map(EndUserEmail::new));
    }
    claims
}

/// Token-response fields: `id_token` with Gangway's claims.
pub type TokenFields = IdTokenFields<
    GangwayClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
/// The token endpoint's answer.
pub type TokenResponse = StandardTokenResponse<TokenFields, CoreTokenType>;

/// What a token response is made of.
pub struct Issue<'a> {
    /// The issuer.
    pub issuer: &'a str,
    /// The application's client id (`aud`).
    pub client_id: &'a str,
    /// The user.
    pub user: &'a UserClaims,
    /// The scopes granted.
    pub scopes: &'a [String],
    /// The authorize request's nonce (ID tokens from a code only).
    pub nonce: Option<&'a str>,
    /// The access token.
    pub access_token: &'a str,
    /// The refresh token, when `offline_access` was granted.
    pub refresh_token: Option<&'a str>,
    /// How long the access token and ID token live.
    pub lifetime: Duration,
}

/// The token response: the access token, the refresh token and an ID token signed by the
/// current key (with `at_hash`).
pub fn token_response(keys: &SigningKeys, issue: &Issue<'_>) -> Result<TokenResponse, SigninError> {
    let now = SystemTime::now();
    let user = issue.user;
    let access = AccessToken::new(issue.access_token.to_owned());
    let claims = IdTokenClaims::new(
        IssuerUrl::new(issue.issuer.to_owned()).map_err(url_error)?,
        vec![Audience::new(issue.client_id.to_owned())],
        (now + issue.lifetime).into(),
        now.into(),
        standard_claims(user, issue.scopes),
        user.extra.clone(),
    )
    .set_nonce(issue.nonce.map(|n| Nonce::new(n.to_owned())))
    .set_auth_time(Some(SystemTime::from(user.auth_time).into()))
    .set_auth_method_refs((!user.amr.is_empty()).then(|| {
        user.amr
            .iter()
            .map(|m| AuthenticationMethodReference::new(m.clone()))
            .collect()
    }));
    let id_token = IdToken::new(
        claims,
        &keys.current,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some(&access),
        None,
    )
    .map_err(|e| SigninError::Key(format!("signing an ID token: {e}")))?;
    let mut response = TokenResponse::new(
        access,
        CoreTokenType::Bearer,
        TokenFields::new(Some(id_token), EmptyExtraTokenFields {}),
    );
    response.set_expires_in(Some(&issue.lifetime));
    response.set_refresh_token(issue.refresh_token.map(|t| RefreshToken::new(t.to_owned())));
    response.set_scopes(Some(
        issue.scopes.iter().map(|s| Scope::new(s.clone())).collect(),
    ));
    Ok(response)
}

/// The userinfo answer for `user` under `scopes` (no `sid`: that belongs to ID tokens).
pub fn userinfo(
    user: &UserClaims,
    scopes: &[String],
) -> UserInfoClaims<GangwayClaims, CoreGenderClaim> {
    let mut extra = user.extra.clone();
    extra.sid = None;
    UserInfoClaims::new(standard_claims(user, scopes), extra)
}

/// What a back-channel logout token says.
pub struct Logout<'a> {
    /// Gangway's issuer.
    pub issuer: &'a str,
    /// The application told (`aud`).
    pub client_id: &'a str,
    /// The user's `sub` for that application.
    pub subject: &'a str,
    /// The session that ended (`sid`).
    pub sid: &'a str,
}

/// How long a logout token is good for: only the delivery it is minted for.
const LOGOUT_TOKEN_LIFETIME: Duration = Duration::from_secs(120);

/// A logout token (OpenID Connect Back-Channel Logout 1.0 §2.4): `iss`, `aud`, `iat`, `exp`,
/// a fresh `jti`, `sub`, `sid` and the back-channel logout event, never a `nonce`; typed
/// `logout+jwt` (§2.4 recommends explicit typing, and `openidconnect`'s ID token type cannot
/// set it), signed RS256 by the current key with its `kid`.
pub fn logout_token(keys: &SigningKeys, logout: &Logout<'_>) -> Result<String, SigninError> {
    use base64::Engine;
    use openidconnect::{JsonWebKey, PrivateSigningKey};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let kid = keys
        .current
        .as_verification_key()
        .key_id()
        .map(|k| k.as_str().to_owned());
    let header = serde_json::json!({ "alg": "RS256", "typ": "logout+jwt", "kid": kid });
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = serde_json::json!({
        "iss": logout.issuer,
        "aud": logout.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME.as_secs(),
        "jti": crate::crypto::random_token(),
        "sub": logout.subject,
        "sid": logout.sid,
        "events": { super::backchannel::EVENT: {} },
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = keys
        .current
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            input.as_bytes(),
        )
        .map_err(|e| SigninError::Key(format!("signing a logout token: {e}")))?;
    Ok(format!("{input}.{}", b64(&signature)))
}

/// Gangway's ID token type.
pub type GangwayIdToken = IdToken<
    GangwayClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// What a logout request's `id_token_hint` says, once its signature is verified.
#[derive(Debug, Clone)]
pub struct LogoutHint {
    /// The application it was issued to (`aud`).
    pub client_id: String,
    /// Gangway's session (`sid`).
    pub sid: Option<String>,
}

/// Verifies an `id_token_hint`: signed by one of Gangway's published keys, issued by
/// `issuer`, with a single audience. An expired token is fine (RP-initiated logout §2).
pub fn verify_hint(keys: &SigningKeys, issuer: &str, raw: &str) -> Option<LogoutHint> {
    let token: GangwayIdToken = raw.parse().ok()?;
    // The audience is needed to build the verifier; the signature check below covers it.
    let payload = raw.split('.').nth(1)?;
    let unverified: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).ok()?,
    )
    .ok()?;
    let client_id = match &unverified["aud"] {
        serde_json::Value::String(aud) => aud.clone(),
        serde_json::Value::Array(auds) if auds.len() == 1 => auds[0].as_str()?.to_owned(),
        _ => return None,
    };
    let verifier = openidconnect::IdTokenVerifier::new_public_client(
        openidconnect::ClientId::new(client_id.clone()),
        IssuerUrl::new(issuer.to_owned()).ok()?,
        keys.jwks(),
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
    // Expired hints are welcome: logout often comes after the ID token's hour.
    .set_time_fn(|| std::time::UNIX_EPOCH.into());
    let claims = token.claims(&verifier, |_: Option<&Nonce>| Ok(())).ok()?;
    Some(LogoutHint {
        client_id,
        sid: claims.additional_claims().sid.clone(),
    })
}
