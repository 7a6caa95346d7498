//! `POST /v1.0/applications/{id}/addKey` and `removeKey`: an app rolls its own certificates,
//! proving possession of a current one with a signed JWT, as Graph documents them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::errors::GraphError;
use super::{caller, require};
use crate::apps::App;
use crate::certificates::KeyCredential;
use crate::state::{Access, AppState, World};

/// The audience a proof of possession names: the Azure AD Graph's app id.
const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";
/// The longest a proof may live: `exp` is "nbf + 10 minutes".
const PROOF_LIFETIME_SECS: i64 = 600;
/// Permissions that let an app roll the keys of apps other than itself.
const WRITE_APPS: &[&str] = &[
    "Application.ReadWrite.OwnedBy",
    "Application.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// The key routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1.0/applications/{id}/addKey", post(add_key))
        .route("/v1.0/applications/{id}/removeKey", post(remove_key))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewKey {
    key: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    usage: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddKey {
    key_credential: NewKey,
    proof: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoveKey {
    key_id: Uuid,
    proof: String,
}

#[derive(Deserialize)]
struct Proof {
    aud: Option<String>,
    iss: Option<String>,
    // NumericDate may have a fraction (RFC 7519 §2).
    nbf: Option<f64>,
    exp: Option<f64>,
}

fn bad_request(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

/// The app addressed by `id` (its object id) in the caller's tenant, once
/// the caller may roll its keys: the app itself needs no permission, another app one of
/// [`WRITE_APPS`].
fn addressed<'w>(
    w: &'w World,
    access: &Access,
    headers: &HeaderMap,
    id: &str,
) -> Result<&'w App, GraphError> {
    let app = w
        .reg
        .apps
        .values()
        .filter(|a| a.home_tenant == access.tid)
        .find(|a| a.object_id.to_string() == id)
        .ok_or_else(|| GraphError::not_found(id))?;
    if caller_app(headers).as_deref() != Some(app.client_id.as_str()) {
        require(
            access,
            WRITE_APPS,
            &["Application.ReadWrite.All", "Directory.ReadWrite.All"],
        )?;
    }
    Ok(app)
}

/// The `appid` of the caller's app-only token (already authenticated by [`caller`]).
fn caller_app(headers: &HeaderMap) -> Option<String> {
    let token = headers.get("authorization")?.to_str().ok()?;
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["appid"].as_str().map(str::to_owned)
}

/// Checks the proof of possession: a JWT signed (RS256/PS256) by a certificate registered on
/// `app` and valid now, with `aud` [`PROOF_AUDIENCE`], `iss` the app's object id, `nbf` and
/// `exp` around now and at most ten minutes apart.
fn check_proof(app: &App, proof: &str) -> Result<(), GraphError> {
    let invalid = |why: &str| bad_request(format!("Proof of possession is invalid: {why}."));
    let header = jsonwebtoken::decode_header(proof).map_err(|_| invalid("not a JWT"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(invalid("it must be signed with RS256 or PS256"));
    }
    let now = OffsetDateTime::now_utc();
    let cert = app
        .certificate(header.x5t.as_deref(), header.x5t_s256.as_deref())
        .filter(|c| c.starts_at <= now && now < c.expires_at)
        .ok_or_else(|| invalid("it is not signed by a valid certificate of the application"))?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Proof>(
        proof,
        &DecodingKey::from_rsa_der(&cert.rsa_public_key),
        &validation,
    )
    .map_err(|_| invalid("its signature does not verify"))?
    .claims;
    if claims.aud.as_deref() != Some(PROOF_AUDIENCE) {
        return Err(invalid("aud must be 00000002-0000-0000-c000-000000000000"));
    }
    if claims.iss.as_deref() != Some(app.object_id.to_string().as_str()) {
        return Err(invalid("iss must be the application's object id"));
    }
    let now = now.unix_timestamp();
    match (claims.nbf.map(|n| n as i64), claims.exp.map(|e| e as i64)) {
        (Some(nbf), Some(exp)) if nbf <= now && now < exp && exp - nbf <= PROOF_LIFETIME_SECS => {
            Ok(())
        }
        _ => Err(invalid(
            "it is expired, not yet valid or lives longer than 10 minutes",
        )),
    }
}

async fn add_key(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<AddKey>,
) -> Response {
    let result = (|| {
        // `caller` takes the world's lock itself.
        let access = caller(&st, &headers)?;
        let mut w = st.world();
        let app = addressed(&w, &access, &headers, &id)?;
        let new = &body.key_credential;
        if new.kind != "AsymmetricX509Cert" || new.usage != "Verify" {
            return Err(bad_request(
                "keyCredential must be of type AsymmetricX509Cert with usage Verify.",
            ));
        }
        check_proof(app, &body.proof)?;
        let cert = KeyCredential::parse(&new.key, new.display_name.as_deref().unwrap_or(""))
            .map_err(bad_request)?;
        if app.certificates.iter().any(|c| c.der == cert.der) {
            return Err(bad_request(
                "The certificate is already registered on the application.",
            ));
        }
        let client_id = app.client_id.clone();
        let answer = cert.graph();
        w.reg
            .apps
            .get_mut(&client_id)
            .expect("found above under the same lock")
            .certificates
            .push(cert);
        Ok(answer)
    })();
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn remove_key(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<RemoveKey>,
) -> Response {
    let result = (|| {
        // `caller` takes the world's lock itself.
        let access = caller(&st, &headers)?;
        let mut w = st.world();
        let app = addressed(&w, &access, &headers, &id)?;
        check_proof(app, &body.proof)?;
        if !app.certificates.iter().any(|c| c.key_id == body.key_id) {
            return Err(GraphError::not_found(&body.key_id.to_string()));
        }
        let client_id = app.client_id.clone();
        w.reg
            .apps
            .get_mut(&client_id)
            .expect("found above under the same lock")
            .certificates
            .retain(|c| c.key_id != body.key_id);
        Ok(())
    })();
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
