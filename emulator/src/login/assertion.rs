//! Client authentication with a certificate (`private_key_jwt`, RFC 7523): the client assertion
//! checked as Microsoft's "application authentication certificate credentials" describe it, each
//! refusal with the AADSTS code Microsoft documents for it.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::apps::App;
use crate::login::errors::AadError;
use crate::state::World;

/// The only `client_assertion_type` Entra ID takes.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Deserialize)]
struct Claims {
    aud: Option<String>,
    iss: Option<String>,
    sub: Option<String>,
    // NumericDate may have a fraction (RFC 7519 §2); MSAL for Python sends one.
    exp: Option<f64>,
    nbf: Option<f64>,
    jti: Option<String>,
}

/// AADSTS50027: a token that is not a readable JWT.
fn malformed() -> AadError {
    AadError::client(50027, "JWT token is invalid or malformed.")
}

/// AADSTS700027: no registered certificate verifies the signature.
fn bad_signature(reason: &str) -> AadError {
    AadError::client(
        700027,
        format!("Client assertion contains an invalid signature. [Reason - {reason}]"),
    )
}

/// Checks `assertion` for `app`, in Microsoft's order: a certificate registered on the app
/// named by `x5t` or `x5t#S256`, its RS256/PS256 signature, `aud` one of `audiences` (the token
/// endpoint the request was sent to), `iss` and `sub` the client id, `nbf`/`exp` around now,
/// and a `jti` not seen before (remembered until the assertion expires).
pub fn verify(
    w: &mut World,
    app: &App,
    assertion: &str,
    audiences: &[String],
) -> Result<(), AadError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| malformed())?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(malformed());
    }
    let cert = app
        .certificate(header.x5t.as_deref(), header.x5t_s256.as_deref())
        .ok_or_else(|| bad_signature("The key was not found."))?;
    let mut validation = Validation::new(header.alg);
    // Each claim is checked below, so that each refusal carries its own code.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(
        assertion,
        &DecodingKey::from_rsa_der(&cert.rsa_public_key),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => bad_signature(
            "The provided signature value did not match the expected signature value.",
        ),
        _ => malformed(),
    })?
    .claims;
    if !claims.aud.as_ref().is_some_and(|a| audiences.contains(a)) {
        return Err(AadError::client(
            700023,
            "Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let own = |c: &Option<String>| c.as_deref() == Some(app.client_id.as_str());
    if !own(&claims.iss) || !own(&claims.sub) {
        return Err(AadError::client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let Some(exp) = claims.exp.map(|e| e as i64) else {
        return Err(malformed());
    };
    if exp <= now || claims.nbf.is_some_and(|nbf| nbf as i64 > now) {
        return Err(AadError::client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {}, expiry time of assertion {exp}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                claims
                    .nbf
                    .map_or_else(|| "(none)".into(), |n| n.to_string())
            ),
        ));
    }
    let jti = claims.jti.ok_or_else(malformed)?;
    let seen = &mut w.auth.assertion_ids;
    seen.retain(|_, until| *until > now);
    if seen.insert((app.client_id.clone(), jti), exp).is_some() {
        return Err(AadError::client(
            50013,
            "Assertion is invalid: its 'jti' was already used. A client assertion is used once.",
        ));
    }
    Ok(())
}
