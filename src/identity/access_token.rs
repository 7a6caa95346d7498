//! Access tokens Entra ID issues for the API the provider exposes on its own app registration
//! (`api://{client id}`): RS256 against the published keys, then every claim Gangway relies on.
//! Pure (keys and clock passed in) so it is tested without a network.
//!
//! Entra ID mints the version the registration asks for (`api.requestedAccessTokenVersion`;
//! `null`, its default, means 1), whatever endpoint the client used, and Gangway takes both,
//! each held to its own shape (access-token claims reference):
//!
//! | `ver` | `iss`                                  | `aud`                              | client  |
//! |-------|----------------------------------------|------------------------------------|---------|
//! | `2.0` | `{authority}/{tenant}/v2.0`            | the client id                      | `azp`   |
//! | `1.0` | `https://sts.windows.net/{tenant}/`    | the client id or `api://{client id}` | `appid` |
//!
//! The v1 issuer is Microsoft's fixed security token service, not the authority's host; the
//! emulator mints the same string, so no setting is needed (a sovereign cloud's v1 issuer is
//! another host: there, ask for v2 tokens). Either way the signature must verify with a key the
//! configured authority publishes, so the string alone vouches for nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openidconnect::JsonWebKey;
use openidconnect::core::CoreJwsSigningAlgorithm;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::TenantId;
use super::id_token::{CLOCK_SKEW, Jwks};

/// The delegated scope the provider's API exposes; a user's token must carry it in `scp`.
pub const API_SCOPE: &str = "Gangway.Manage";
/// The app role that lets a daemon (client credentials) change things through the API.
pub const API_ROLE_WRITE: &str = "Gangway.Write";
/// The app role that lets a daemon read through the API.
pub const API_ROLE_READ: &str = "Gangway.Read";

/// Why an access token for the API was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiTokenProblem {
    /// Not three base64url JSON parts, or a claim Gangway needs is missing or malformed.
    #[error("the token is not a well-formed Entra ID access token")]
    Malformed,
    /// `alg` is not RS256.
    #[error("the token is not signed with RS256")]
    AlgorithmNotAllowed,
    /// No published key has the token's `kid`, even after fetching the keys again.
    #[error("the token is signed with a key Entra ID does not publish")]
    UnknownKey,
    /// The signature does not verify with the published key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `ver` is neither `1.0` nor `2.0`.
    #[error("the token's version (ver) is neither 1.0 nor 2.0")]
    UnknownVersion,
    /// `iss` is not the provider tenant's issuer for the token's version (or `tid` is another
    /// tenant).
    #[error(
        "the token was issued by another tenant or issuer than the provider's (v1.0 tokens: https://sts.windows.net/{{tenant}}/, v2.0: {{authority}}/{{tenant}}/v2.0)"
    )]
    WrongIssuer,
    /// `aud` is not this API: the client id (v2.0), or it or `api://{client id}` (v1.0).
    #[error("the token is for another audience than this API")]
    WrongAudience,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` (or `iat`) is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Neither `scp` holding the API's scope nor any `roles`.
    #[error("the token carries neither the scope Gangway.Manage nor an app role")]
    MissingScope,
}

/// Who calls the API with a verified Entra ID access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiIdentity {
    /// `oid`: the user's, or the calling app's service principal's, object id.
    pub oid: Uuid,
    /// `tid`: the provider's tenant.
    pub tid: TenantId,
    /// `upn` (else `preferred_username` in v2.0, `unique_name` in v1.0) for a user; the
    /// calling app's id (`azp` in v2.0, `appid` in v1.0) for a daemon.
    pub name: String,
    /// `scp`, split on spaces: empty for an app-only (client credentials) token.
    pub scp: Vec<String>,
    /// `roles`: the app roles granted to the user or app.
    pub roles: Vec<String>,
    /// `groups`: the user's group object ids, when the registration asks for the claim.
    pub groups: Vec<Uuid>,
    /// Whether the groups did not fit in the token (`_claim_names.groups` or `hasgroups`).
    pub groups_overage: bool,
}

impl ApiIdentity {
    /// Whether a user signed in (delegated: `scp` present), rather than an app on its own.
    pub fn is_delegated(&self) -> bool {
        !self.scp.is_empty()
    }
}

/// What the token must say.
pub(crate) struct ApiExpected<'a> {
    /// Authority base without trailing slash.
    pub authority: &'a str,
    /// The provider's own tenant.
    pub tenant: TenantId,
    /// The provider app's client id.
    pub client_id: &'a str,
}

type JsonObject = Map<String, Value>;

/// The `kid` of a token whose `alg` is RS256.
pub(crate) fn key_id(raw: &str) -> Result<String, ApiTokenProblem> {
    let (header, _, _, _) = split(raw)?;
    match header.get("kid").and_then(Value::as_str) {
        Some(kid) if !kid.is_empty() => Ok(kid.to_owned()),
        _ => Err(ApiTokenProblem::Malformed),
    }
}

/// Header, payload, the signed message and the signature.
fn split(raw: &str) -> Result<(JsonObject, JsonObject, &str, Vec<u8>), ApiTokenProblem> {
    let mut parts = raw.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiTokenProblem::Malformed);
    };
    let json = |s: &str| -> Result<JsonObject, ApiTokenProblem> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| ApiTokenProblem::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| ApiTokenProblem::Malformed)
    };
    let header = json(h)?;
    // The algorithm is decided before any key is looked at: RS256 or nothing.
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(ApiTokenProblem::AlgorithmNotAllowed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| ApiTokenProblem::Malformed)?;
    if signature.is_empty() {
        return Err(ApiTokenProblem::AlgorithmNotAllowed);
    }
    let message = &raw[..h.len() + 1 + p.len()];
    Ok((header, json(p)?, message, signature))
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The two shapes of access token Entra ID issues (see the module's table).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl Version {
    fn of(claims: &JsonObject) -> Result<Self, ApiTokenProblem> {
        match claims.get("ver").and_then(Value::as_str) {
            Some("1.0") => Ok(Self::V1),
            Some("2.0") => Ok(Self::V2),
            _ => Err(ApiTokenProblem::UnknownVersion),
        }
    }

    fn issuer(self, expected: &ApiExpected<'_>) -> String {
        match self {
            Self::V1 => format!("https://sts.windows.net/{}/", expected.tenant),
            Self::V2 => format!("{}/{}/v2.0", expected.authority, expected.tenant),
        }
    }

    /// The claim naming the calling application.
    fn client_claim(self) -> &'static str {
        match self {
            Self::V1 => "appid",
            Self::V2 => "azp",
        }
    }

    /// The user's name after `upn`.
    fn username_claim(self) -> &'static str {
        match self {
            Self::V1 => "unique_name",
            Self::V2 => "preferred_username",
        }
    }
}

/// Validates a raw access token against `jwks` at time `now`.
///
/// Order: header (`alg` RS256, `kid`) → key by `kid` (its own `issuer`, if any, must be the
/// tenant's v2.0 issuer: Microsoft publishes one key set for both versions) → signature →
/// `ver` 1.0 or 2.0 → `iss` exactly that version's issuer and `tid` the tenant → `aud` as that
/// version puts it → `exp` and `nbf`/`iat` with [`CLOCK_SKEW`] → `oid` → `scp` holding
/// [`API_SCOPE`] (a user) or `roles` not empty (an app) → the caller's name.
pub(crate) fn validate(
    raw: &str,
    jwks: &Jwks,
    expected: &ApiExpected<'_>,
    now: SystemTime,
) -> Result<ApiIdentity, ApiTokenProblem> {
    let kid = key_id(raw)?;
    let (_, claims, message, signature) = split(raw)?;
    let key_iss = Version::V2.issuer(expected);

    let candidates: Vec<_> = jwks.keys_with_kid(&kid).collect();
    if candidates.is_empty() {
        return Err(ApiTokenProblem::UnknownKey);
    }
    let tenant = expected.tenant.to_string();
    if candidates
        .iter()
        .any(|(_, iss)| iss.is_some_and(|iss| iss.replace("{tenantid}", &tenant) != key_iss))
    {
        return Err(ApiTokenProblem::WrongIssuer);
    }
    let verified = candidates.iter().any(|(key, _)| {
        key.verify_signature(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            message.as_bytes(),
            &signature,
        )
        .is_ok()
    });
    if !verified {
        return Err(ApiTokenProblem::BadSignature);
    }

    // Everything below reads claims whose signature has been verified.
    let version = Version::of(&claims)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(version.issuer(expected).as_str())
        || text("tid").and_then(|t| TenantId::parse(t).ok()) != Some(expected.tenant)
    {
        return Err(ApiTokenProblem::WrongIssuer);
    }
    let app_id_uri = format!("api://{}", expected.client_id);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => {
            aud == expected.client_id || (version == Version::V1 && *aud == app_id_uri)
        }
        _ => false,
    };
    if !aud_ok {
        return Err(ApiTokenProblem::WrongAudience);
    }
    let now = unix(now);
    let skew = CLOCK_SKEW.as_secs() as i64;
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = time("exp").ok_or(ApiTokenProblem::Malformed)?;
    if exp + skew <= now {
        return Err(ApiTokenProblem::Expired);
    }
    if time("nbf").is_some_and(|t| t > now + skew) || time("iat").is_some_and(|t| t > now + skew) {
        return Err(ApiTokenProblem::NotYetValid);
    }
    let oid = text("oid")
        .and_then(|o| Uuid::parse_str(o).ok())
        .ok_or(ApiTokenProblem::Malformed)?;
    let scp: Vec<String> = text("scp")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let roles = strings(claims.get("roles"));
    let delegated = !scp.is_empty();
    if delegated && !scp.iter().any(|s| s == API_SCOPE) {
        return Err(ApiTokenProblem::MissingScope);
    }
    if !delegated && roles.is_empty() {
        return Err(ApiTokenProblem::MissingScope);
    }
    let name = if delegated {
        text("upn").or_else(|| text(version.username_claim()))
    } else {
        text(version.client_claim())
    }
    .filter(|n| !n.is_empty() && n.len() <= 256 && !n.chars().any(char::is_control))
    .ok_or(ApiTokenProblem::Malformed)?
    .to_owned();
    let groups = strings(claims.get("groups"))
        .iter()
        .filter_map(|g| Uuid::parse_str(g).ok())
        .collect();
    let groups_overage = claims.get("hasgroups").and_then(Value::as_bool) == Some(true)
        || claims
            .get("_claim_names")
            .and_then(Value::as_object)
            .is_some_and(|n| n.contains_key("groups"));
    Ok(ApiIdentity {
        oid,
        tid: expected.tenant,
        name,
        scp,
        roles,
        groups,
        groups_overage,
    })
}
