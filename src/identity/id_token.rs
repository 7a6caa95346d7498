//! ID-token validation: RS256 against the tenant's published keys, then every claim Gangway
//! relies on. Pure (keys and clock passed in) so it is tested without a network.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, IssuerUrl,
    JsonWebKeySet, Nonce, SignatureVerificationError,
    core::{
        CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{IdTokenProblem, RoleClaim, SignedInAdmin, TenantId};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The longest an ID token may have existed when it reaches us. Gangway validates only tokens
/// it has just redeemed, and Entra ID's ID tokens live an hour (at most a day by policy), so an
/// older `iat` means a replayed or minted-long-ago token whatever its `exp` says.
pub(crate) const MAX_ID_TOKEN_AGE: Duration = Duration::from_secs(60 * 60);

/// Global Administrator role template id, as it appears in `wids`.
pub const GLOBAL_ADMIN_ROLE: &str = "62e90394-69f5-4237-9190-012177145e10";

/// The Microsoft-specific claims Gangway reads; the standard ones come from openidconnect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntraClaims {
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    wids: Option<Vec<String>>,
    #[serde(default)]
    upn: Option<String>,
    // openidconnect's IdTokenClaims has no `nbf`; it is checked below.
    #[serde(default)]
    nbf: Option<i64>,
    /// Group object ids, when the registration asks for the groups claim.
    #[serde(default)]
    groups: Option<Vec<String>>,
    /// App role values the user is assigned.
    #[serde(default)]
    roles: Option<Vec<String>>,
    /// The Entra session id (front-channel logout).
    #[serde(default)]
    sid: Option<String>,
    /// How the user authenticated (`pwd`, `mfa`, …), when present.
    #[serde(default)]
    amr: Option<Vec<String>>,
    /// Implicit-flow overage marker: too many groups to list.
    #[serde(default)]
    hasgroups: Option<bool>,
    /// Distributed claims: `{"groups": "src1"}` is the JWT overage marker.
    #[serde(default, rename = "_claim_names")]
    claim_names: Option<Map<String, Value>>,
}
impl AdditionalClaims for EntraClaims {}

type EntraIdToken = IdToken<
    EntraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// A JSON Web Key Set as Microsoft publishes it, keeping each key's own `issuer` (which
/// openidconnect's key type drops).
#[derive(Clone, Debug, Default)]
pub(crate) struct Jwks {
    keys: Vec<JwksEntry>,
}

#[derive(Clone, Debug)]
struct JwksEntry {
    kid: Option<String>,
    key: CoreJsonWebKey,
    issuer: Option<String>,
}

impl Jwks {
    /// Parses `{"keys":[…]}`; keys of a kind openidconnect cannot read are skipped.
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, String> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let raw_keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS has no \"keys\" array")?;
        let keys = raw_keys
            .iter()
            .filter_map(|raw| {
                let key: CoreJsonWebKey = serde_json::from_value(raw.clone()).ok()?;
                Some(JwksEntry {
                    kid: raw.get("kid").and_then(Value::as_str).map(str::to_owned),
                    issuer: raw.get("issuer").and_then(Value::as_str).map(str::to_owned),
                    key,
                })
            })
            .collect();
        Ok(Self { keys })
    }

    /// Whether a key with this `kid` is present.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys published under `kid`, each with the `issuer` it is scoped to (if any).
    pub(crate) fn keys_with_kid<'a>(
        &'a self,
        kid: &'a str,
    ) -> impl Iterator<Item = (&'a CoreJsonWebKey, Option<&'a str>)> + 'a {
        self.with_kid(kid).map(|e| (&e.key, e.issuer.as_deref()))
    }

    fn with_kid<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a JwksEntry> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }
}

type JsonObject = Map<String, Value>;

/// What the token must say.
pub(crate) struct Expected<'a> {
    /// Authority base without trailing slash, e.g. `https://login.microsoftonline.com`.
    pub authority: &'a str,
    /// Our client id (the only allowed `aud`).
    pub client_id: &'a str,
    /// The nonce sent with this session's authorize request.
    pub nonce: &'a str,
}

/// The header fields needed before verification: which key to use.
pub(crate) fn key_id(raw: &str) -> Result<String, IdTokenProblem> {
    let (header, _) = unverified_parts(raw)?;
    header_kid(&header)
}

fn header_kid(header: &Map<String, Value>) -> Result<String, IdTokenProblem> {
    match header.get("kid").and_then(Value::as_str) {
        Some(kid) if !kid.is_empty() => Ok(kid.to_owned()),
        _ => Err(IdTokenProblem::Malformed),
    }
}

fn unverified_parts(raw: &str) -> Result<(JsonObject, JsonObject), IdTokenProblem> {
    let mut parts = raw.split('.');
    let (Some(h), Some(p), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenProblem::Malformed);
    };
    let decode = |s: &str| -> Result<Map<String, Value>, IdTokenProblem> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| IdTokenProblem::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| IdTokenProblem::Malformed)
    };
    let header = decode(h)?;
    // The algorithm is decided here, before any key is looked at: RS256 or nothing.
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(IdTokenProblem::AlgorithmNotAllowed);
    }
    Ok((header, decode(p)?))
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The claims beyond identity that operator sign-in reads, from a verified token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OperatorClaims {
    /// `groups`, the entries that are object ids (GUIDs); others (on-premises names) are skipped.
    pub groups: Vec<Uuid>,
    /// Whether the token says the groups did not fit (`_claim_names.groups` or `hasgroups`).
    pub groups_overage: bool,
    /// `roles`, in the token's order.
    pub roles: Vec<String>,
    /// `sid`, when present.
    pub sid: Option<String>,
    /// `amr`, when present (passed through to the provider's applications).
    pub amr: Vec<String>,
}

/// The longest `sid` kept (Microsoft's are GUIDs); longer ones are treated as absent.
const MAX_SID_CHARS: usize = 128;

/// A validated ID token: who signed in, and what operator sign-in reads of it.
pub(crate) struct Verified {
    pub identity: SignedInAdmin,
    pub operator: OperatorClaims,
}

fn operator_claims(extra: &EntraClaims) -> OperatorClaims {
    let groups = extra
        .groups
        .iter()
        .flatten()
        .filter_map(|g| Uuid::parse_str(g).ok())
        .collect();
    let groups_overage = extra.hasgroups == Some(true)
        || extra
            .claim_names
            .as_ref()
            .is_some_and(|names| names.contains_key("groups"));
    OperatorClaims {
        groups,
        groups_overage,
        roles: extra.roles.clone().unwrap_or_default(),
        amr: extra
            .amr
            .iter()
            .flatten()
            .filter(|m| !m.is_empty() && m.len() <= 32 && m.chars().all(|c| c.is_ascii_graphic()))
            .take(10)
            .cloned()
            .collect(),
        sid: extra.sid.clone().filter(|s| {
            !s.is_empty() && s.len() <= MAX_SID_CHARS && s.chars().all(|c| c.is_ascii_graphic())
        }),
    }
}

/// Validates a raw ID token against `jwks` at time `now`; see [`validate_full`].
#[cfg(test)]
pub(crate) fn validate(
    raw: &str,
    jwks: &Jwks,
    expected: &Expected<'_>,
    now: SystemTime,
) -> Result<SignedInAdmin, IdTokenProblem> {
    validate_full(raw, jwks, expected, now).map(|v| v.identity)
}

/// Validates a raw ID token against `jwks` at time `now`.
///
/// Order: header (`alg` RS256, `kid` present) → `tid` is a GUID → expected issuer
/// `{authority}/{tid}/v2.0` → key by `kid` (its own `issuer`, if any, must agree) →
/// openidconnect's verifier (signature, `iss`, `aud`, `azp`, `exp`, `nonce`) → `nbf`, `iat`
/// (neither in the future, `iat` not older than [`MAX_ID_TOKEN_AGE`]), `oid`.
pub(crate) fn validate_full(
    raw: &str,
    jwks: &Jwks,
    expected: &Expected<'_>,
    now: SystemTime,
) -> Result<Verified, IdTokenProblem> {
    if expected.nonce.is_empty() {
        // An empty expected nonce would match a token without one.
        return Err(IdTokenProblem::NonceMismatch);
    }
    let (header, payload) = unverified_parts(raw)?;
    let kid = header_kid(&header)?;

    // The issuer depends on the tenant, which only the token names: read `tid` unverified to
    // know which issuer to demand, then the signed token must carry exactly that issuer.
    let tid = payload
        .get("tid")
        .and_then(Value::as_str)
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or(IdTokenProblem::TenantNotGuid)?;
    let expected_iss = format!("{}/{}/v2.0", expected.authority, tid);

    let candidates: Vec<&JwksEntry> = jwks.with_kid(&kid).collect();
    if candidates.is_empty() {
        return Err(IdTokenProblem::UnknownKey);
    }
    // Microsoft's keys carry `"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"`;
    // a key scoped to another issuer must not vouch for this one.
    for c in &candidates {
        if let Some(key_iss) = &c.issuer
            && key_iss.replace("{tenantid}", &tid.to_string()) != expected_iss
        {
            return Err(IdTokenProblem::WrongIssuer);
        }
    }

    let token: EntraIdToken = raw.parse().map_err(|_| IdTokenProblem::Malformed)?;
    let issuer = IssuerUrl::new(expected_iss.clone()).map_err(|_| IdTokenProblem::WrongIssuer)?;
    let keys = JsonWebKeySet::new(candidates.iter().map(|c| c.key.clone()).collect());
    // openidconnect compares `exp` with no leeway, so its clock runs CLOCK_SKEW behind.
    let lenient_now = now.checked_sub(CLOCK_SKEW).unwrap_or(UNIX_EPOCH);
    let verifier = IdTokenVerifier::new_public_client(
        ClientId::new(expected.client_id.to_owned()),
        issuer,
        keys,
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
    .set_time_fn(move || lenient_now.into());
    let nonce = Nonce::new(expected.nonce.to_owned());
    let claims = token.claims(&verifier, &nonce).map_err(classify)?;

    // Everything below reads claims whose signature has been verified.
    if payload.get("iss").and_then(Value::as_str) != Some(expected_iss.as_str()) {
        // IssuerUrl equality goes through URL handling; demand the exact string as well.
        return Err(IdTokenProblem::WrongIssuer);
    }
    // openidconnect leaves `azp` unchecked: a token obtained by another app must not pass.
    if claims
        .authorized_party()
        .is_some_and(|azp| azp.as_str() != expected.client_id)
    {
        return Err(IdTokenProblem::WrongAudience);
    }
    let extra = claims.additional_claims();
    if extra.tid.as_deref().and_then(|t| TenantId::parse(t).ok()) != Some(tid) {
        return Err(IdTokenProblem::TenantNotGuid);
    }
    let latest_ok = unix(now) + CLOCK_SKEW.as_secs() as i64;
    if claims.issue_time().timestamp() > latest_ok || extra.nbf.is_some_and(|nbf| nbf > latest_ok) {
        return Err(IdTokenProblem::NotYetValid);
    }
    let earliest_ok = unix(now) - (MAX_ID_TOKEN_AGE + CLOCK_SKEW).as_secs() as i64;
    if claims.issue_time().timestamp() < earliest_ok {
        return Err(IdTokenProblem::IssuedTooLongAgo);
    }
    let object_id = extra
        .oid
        .as_deref()
        .and_then(|o| Uuid::parse_str(o).ok())
        .ok_or(IdTokenProblem::Malformed)?;
    let username = claims
        .preferred_username()
        .map(|u| u.as_str().to_owned())
        .or_else(|| extra.upn.clone())
        .or_else(|| claims.email().map(|e| e.as_str().to_owned()))
        .ok_or(IdTokenProblem::Malformed)?;
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned());
    let global_admin = match &extra.wids {
        None => RoleClaim::Unstated,
        Some(wids)
            if wids
                .iter()
                .any(|w| w.eq_ignore_ascii_case(GLOBAL_ADMIN_ROLE)) =>
        {
            RoleClaim::Holds
        }
        Some(_) => RoleClaim::Lacks,
    };

    Ok(Verified {
        identity: SignedInAdmin {
            tenant_id: tid,
            object_id,
            username,
            name,
            global_admin,
        },
        operator: operator_claims(extra),
    })
}

fn classify(e: ClaimsVerificationError) -> IdTokenProblem {
    use ClaimsVerificationError as C;
    use SignatureVerificationError as S;
    match e {
        C::Expired(_) => IdTokenProblem::Expired,
        C::InvalidAudience(_) => IdTokenProblem::WrongAudience,
        C::InvalidIssuer(_) => IdTokenProblem::WrongIssuer,
        C::InvalidNonce(_) => IdTokenProblem::NonceMismatch,
        C::SignatureVerification(s) => match s {
            S::DisallowedAlg(_) | S::NoSignature | S::UnsupportedAlg(_) => {
                IdTokenProblem::AlgorithmNotAllowed
            }
            S::NoMatchingKey | S::AmbiguousKeyId(_) | S::InvalidKey(_) => {
                IdTokenProblem::UnknownKey
            }
            _ => IdTokenProblem::BadSignature,
        },
        _ => IdTokenProblem::Malformed,
    }
}
