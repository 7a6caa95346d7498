//! Access tokens Entra ID issues for the API the provider exposes on its own app registration
//! (`api://{client id}`): RS256 against the published keys, then every claim Gangway relies on.
//! Pure (keys and clock passed in) so it is tested without a network.

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
    /// `iss` is not `{authority}/{provider tenant}/v2.0` (or `tid` is another tenant).
    #[error("the token was issued by another tenant or issuer than the provider's")]
    WrongIssuer,
    /// `aud` is neither the provider app's client id nor `api://{client id}`.
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
    /// `upn` (else `preferred_username`) for a user; the calling app's id (`azp`, else `appid`)
    /// for a daemon.
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

/// Validates a raw access token against `jwks` at time `now`.
///
/// Order: header (`alg` RS256, `kid`) → key by `kid` (its own `issuer`, if any, must agree) →
/// signature → `iss` exactly `{authority}/{tenant}/v2.0` and `tid` the tenant → `aud` the
/// client id or `api://{client id}` → `exp` and `nbf`/`iat` with [`CLOCK_SKEW`] → `oid` →
/// `scp` holding [`API_SCOPE`] (a user) or `roles` not empty (an app).
pub(crate) fn validate(
    raw: &str,
    jwks: &Jwks,
    expected: &ApiExpected<'_>,
    now: SystemTime,
) -> Result<ApiIdentity, ApiTokenProblem> {
    let kid = key_id(raw)?;
    let (_, claims, message, signature) = split(raw)?;
    let expected_iss = format!("{}/{}/v2.0", expected.authority, expected.tenant);

    let candidates: Vec<_> = jwks.keys_with_kid(&kid).collect();
    if candidates.is_empty() {
        return Err(ApiTokenProblem::UnknownKey);
    }
    let tenant = expected.tenant.to_string();
    if candidates
        .iter()
        .any(|(_, iss)| iss.is_some_and(|iss| iss.replace("{tenantid}", &tenant) != expected_iss))
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
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(expected_iss.as_str())
        || text("tid").and_then(|t| TenantId::parse(t).ok()) != Some(expected.tenant)
    {
        return Err(ApiTokenProblem::WrongIssuer);
    }
    let app_id_uri = format!("api://{}", expected.client_id);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected.client_id || *aud == app_id_uri,
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
        text("upn").or_else(|| text("preferred_username"))
    } else {
        text("azp").or_else(|| text("appid"))
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
