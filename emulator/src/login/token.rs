//! `/{tenant}/oauth2/v2.0/token`: authorization_code, refresh_token and client_credentials, with
//! client authentication by `client_secret_post`, `client_secret_basic` or a certificate's
//! client assertion (`private_key_jwt`, [`super::assertion`]).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::apps::{App, GroupClaims, SecretCheck};
use crate::directory::Authority;
use crate::login::errors::AadError;
use crate::login::{assertion, device};
use crate::rng::secret_token;
use crate::scopes::{self, GRAPH, GRAPH_APP_ID};
use crate::state::{Access, AppState, Refresh, Revoked, World};

/// Authorization codes live 10 minutes, as Microsoft's do.
const CODE_LIFETIME_SECS: u64 = 600;

/// The token endpoint.
pub fn router() -> Router<AppState> {
    Router::new().route("/{tenant}/oauth2/v2.0/token", post(token))
}

async fn token(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match grant(&st, &tenant, &headers, &body) {
        Ok(v) => {
            let mut resp = Json(v).into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store, no-cache"),
            );
            resp
        }
        Err(e) => e.into_response_with(&st.cfg.base_url),
    }
}

fn grant(st: &AppState, tenant: &str, headers: &HeaderMap, body: &[u8]) -> Result<Value, AadError> {
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_ok {
        return Err(malformed());
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| AadError::missing("grant_type"))?
        .clone();
    let mut w = st.world();
    let authority = w
        .dir
        .resolve(tenant)
        .ok_or_else(|| super::oidc::unknown_tenant(tenant))?;
    let app = if let Some(kind) = params.get("client_assertion_type") {
        if kind != assertion::JWT_BEARER {
            return Err(malformed());
        }
        let client_id = params
            .get("client_id")
            .ok_or_else(|| AadError::missing("client_id"))?;
        let assertion = params
            .get("client_assertion")
            .ok_or_else(|| AadError::missing("client_assertion"))?;
        let app = registered(&w, authority, tenant, client_id)?;
        // The token endpoint as the client named it, or with the tenant's id.
        let mut audiences = vec![format!("{}/{tenant}/oauth2/v2.0/token", st.cfg.base_url)];
        if let Authority::Tenant(t) = authority {
            audiences.push(format!(
                "{}/{}/oauth2/v2.0/token",
                st.cfg.base_url, w.dir.tenants[t].id
            ));
        }
        assertion::verify(&mut w, &app, assertion, &audiences)?;
        app
    } else {
        let (client_id, secret) = client_credentials(headers, &params)?;
        let public_ok = grant_type != "client_credentials";
        authenticate(
            &w,
            authority,
            tenant,
            &client_id,
            secret.as_deref(),
            public_ok,
        )?
    };
    match grant_type.as_str() {
        "authorization_code" => redeem_code(st, &mut w, &app, authority, &params),
        "refresh_token" => redeem_refresh(st, &mut w, &app, &params),
        "client_credentials" => app_only(st, &mut w, &app, authority, tenant, &params),
        device::DEVICE_CODE_GRANT => device::redeem(st, &mut w, &app, authority, &params),
        other => Err(AadError::bad(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// AADSTS9002313, Microsoft's answer to a request it cannot make sense of.
pub(super) fn malformed() -> AadError {
    AadError::bad(
        "invalid_request",
        9002313,
        "Invalid request. Request is malformed or invalid.",
    )
}

/// Client id and secret from HTTP Basic (`client_secret_basic`) or the body (`client_secret_post`).
fn client_credentials(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(String, Option<String>), AadError> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(b64) = auth.strip_prefix("Basic ") {
            let decoded = STANDARD.decode(b64.trim()).map_err(|_| malformed())?;
            let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
            let unescape = |s: &str| -> String {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            return Ok((unescape(id), Some(unescape(secret))));
        }
    }
    let id = params
        .get("client_id")
        .ok_or_else(|| AadError::missing("client_id"))?;
    Ok((id.clone(), params.get("client_secret").cloned()))
}

/// The app `client_id` names, if it may get tokens at `tenant`'s endpoint (AADSTS700016).
pub(super) fn registered(
    w: &World,
    authority: Authority,
    tenant: &str,
    client_id: &str,
) -> Result<App, AadError> {
    let not_found = || {
        AadError::bad(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )
    };
    let app = match authority {
        Authority::Tenant(t) => {
            let tid = w.dir.tenants[t].id;
            let app = w.reg.apps.get(client_id).ok_or_else(not_found)?;
            // Multi-tenant apps may redeem codes for any tenant they are being consented in.
            if !app.multi_tenant && app.home_tenant != tid {
                return Err(not_found());
            }
            app
        }
        _ => w.reg.apps.get(client_id).ok_or_else(not_found)?,
    };
    Ok(app.clone())
}

/// Client authentication by secret (`client_secret_post` or `client_secret_basic`); a public
/// client sends none, except for client credentials (`public_ok` false).
fn authenticate(
    w: &World,
    authority: Authority,
    tenant: &str,
    client_id: &str,
    secret: Option<&str>,
    public_ok: bool,
) -> Result<App, AadError> {
    let app = registered(w, authority, tenant, client_id)?;
    if secret.is_none() && app.public_client && public_ok {
        return Ok(app);
    }
    let Some(secret) = secret else {
        return Err(AadError::client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    match app.check_secret(secret) {
        SecretCheck::Valid => Ok(app),
        SecretCheck::Wrong => Err(AadError::client(
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        )),
        SecretCheck::Expired => Err(AadError::client(
            7000222,
            format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
            ),
        )),
    }
}

fn redeem_code(
    st: &AppState,
    w: &mut World,
    app: &App,
    authority: Authority,
    params: &HashMap<String, String>,
) -> Result<Value, AadError> {
    let code = params
        .get("code")
        .ok_or_else(|| AadError::missing("code"))?;
    let invalid_grant = |n: u32, m: &str| AadError::bad("invalid_grant", n, m);
    let record = w.auth.codes.get_mut(code).ok_or_else(|| {
        invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
    })?;
    if record.redeemed {
        return Err(invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    if record.issued.elapsed().as_secs() > CODE_LIFETIME_SECS {
        return Err(invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    if record.client_id != app.client_id {
        return Err(invalid_grant(
            700005,
            "Provided Authorization Code is intended to use against other tenant or app, thus rejected.",
        ));
    }
    // AADSTS700005: a code is redeemed against the same tenant path it was acquired for
    // (`/organizations`, `/common` or `/{tenant}`), never another.
    if authority != record.authority {
        return Err(invalid_grant(
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        ));
    }
    if params.get("redirect_uri") != Some(&record.redirect_uri) {
        return Err(AadError::bad(
            "invalid_grant",
            500112,
            "The reply address does not match the reply address provided when requesting Authorization code.",
        ));
    }
    if let Some((challenge, method)) = &record.code_challenge {
        let verifier = params.get("code_verifier").ok_or_else(|| {
            invalid_grant(501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request. (code_verifier is missing)")
        })?;
        let computed = if method == "S256" {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        } else {
            verifier.clone()
        };
        if &computed != challenge {
            return Err(invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
    }
    record.redeemed = true;
    let record = record.clone();
    let refresh = Refresh {
        client_id: app.client_id.clone(),
        tid: record.tid,
        oid: record.oid,
        oidc: record.oidc.clone(),
        graph: record.graph.clone(),
        api: record.api.clone(),
        issued_at: OffsetDateTime::now_utc(),
        last_used: Instant::now(),
        revoked: None,
        sid: record.sid.clone(),
    };
    user_tokens(st, w, app, &refresh, record.nonce.as_deref(), params)
}

fn redeem_refresh(
    st: &AppState,
    w: &mut World,
    app: &App,
    params: &HashMap<String, String>,
) -> Result<Value, AadError> {
    let rt = params
        .get("refresh_token")
        .ok_or_else(|| AadError::missing("refresh_token"))?;
    let record = w.auth.refresh.get_mut(rt).ok_or_else(|| {
        AadError::bad(
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        )
    })?;
    if record.client_id != app.client_id {
        return Err(AadError::bad(
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed: the refresh token was issued to a different client.",
        ));
    }
    if record.revoked == Some(Revoked::Consent) {
        return Err(AadError::bad(
            "invalid_grant",
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
                app.client_id, app.display_name
            ),
        ));
    }
    let tid = record.tid;
    disabled(w, app, tid)?;
    let Some(record) = w.auth.refresh.get_mut(rt) else {
        unreachable!("looked up above")
    };
    let idle = record.last_used.elapsed();
    if idle >= st.cfg.refresh_inactivity {
        return Err(AadError::bad(
            "invalid_grant",
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {}.",
                record
                    .issued_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                humanize(idle)
            ),
        ));
    }
    record.last_used = Instant::now();
    let mut next = record.clone();
    next.issued_at = OffsetDateTime::now_utc();
    // The new access token carries what is granted now: a scope an admin took out of the
    // tenant's grant (or the user's own) since the refresh token was issued is not in it.
    if let Some(grant) = w.reg.grants.get(&(tid, app.client_id.clone())) {
        let own = grant.by_user.get(&next.oid);
        next.graph.retain(|p| {
            grant.tenant_wide.delegated.contains(p) || own.is_some_and(|o| o.contains(p))
        });
    }
    // A `scope` picks the resource of the new access token: an exposed API's scopes, or Graph.
    if let Some(scope) = params.get("scope") {
        next.api = scope
            .split_whitespace()
            .filter(|s| scopes::is_api_scope(s))
            .map(str::to_owned)
            .collect();
    }
    user_tokens(st, w, app, &next, None, params)
}

/// AADSTS7000112: the app's service principal in `tid` is disabled (`accountEnabled` false),
/// so Entra ID issues it no token there.
fn disabled(w: &World, app: &App, tid: Uuid) -> Result<(), AadError> {
    if w.reg
        .grants
        .get(&(tid, app.client_id.clone()))
        .is_some_and(|g| g.disabled)
    {
        return Err(AadError::bad(
            "unauthorized_client",
            7000112,
            format!(
                "Application '{}'({}) is disabled.",
                app.client_id, app.display_name
            ),
        ));
    }
    Ok(())
}

fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Access, refresh and ID tokens for a signed-in user; the refresh token always rotates.
pub(super) fn user_tokens(
    st: &AppState,
    w: &mut World,
    app: &App,
    grant: &Refresh,
    nonce: Option<&str>,
    params: &HashMap<String, String>,
) -> Result<Value, AadError> {
    let t = w.dir.tenant_index(grant.tid).ok_or_else(malformed)?;
    let tenant = &w.dir.tenants[t];
    let user = tenant
        .user(&grant.oid.to_string())
        .filter(|u| u.life == crate::directory::Life::Active && u.account_enabled)
        .ok_or_else(|| {
            AadError::bad(
                "invalid_grant",
                50057,
                "The user account is disabled or deleted.",
            )
        })?
        .clone();
    let ttl = st.cfg.access_ttl;
    let (access, mut scope) = match api_grant(w, grant.tid, &grant.api)? {
        Some((resource, values)) => {
            let access = api_user_token(st, w, t, app, &resource, &values, grant, &user)?;
            (access, grant.api.iter().cloned().collect::<Vec<String>>())
        }
        None => {
            let access = secret_token(64);
            w.auth.access.insert(
                access.clone(),
                Access {
                    tid: grant.tid,
                    oid: Some(grant.oid),
                    client_id: app.client_id.clone(),
                    permissions: grant.graph.clone(),
                    expires: Instant::now() + ttl,
                },
            );
            (
                access,
                grant.graph.iter().map(|s| scopes::full(s)).collect(),
            )
        }
    };
    scope.extend(
        grant
            .oidc
            .iter()
            .filter(|s| *s != "offline_access")
            .cloned(),
    );
    let mut out = json!({
        "token_type": "Bearer",
        "scope": scope.join(" "),
        "expires_in": ttl.as_secs(),
        "ext_expires_in": ttl.as_secs(),
        "access_token": access,
    });
    if grant.oidc.contains("offline_access") {
        let rt = secret_token(96);
        w.auth.refresh.insert(rt.clone(), grant.clone());
        out["refresh_token"] = json!(rt);
    }
    if grant.oidc.contains("openid") {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "aud": app.client_id,
            "iss": format!("{}/{}/v2.0", st.cfg.base_url, grant.tid),
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs() as i64,
            "ver": "2.0",
            "tid": grant.tid,
            "oid": grant.oid,
            "sub": pairwise_sub(grant.oid, &app.client_id),
            "uti": secret_token(16),
            "rh": "0.emulator",
        });
        if grant.oidc.contains("profile") {
            claims["name"] = json!(user.display_name);
            claims["preferred_username"] = json!(user.user_principal_name);
        } else {
            claims["preferred_username"] = json!(user.user_principal_name);
        }
        if grant.oidc.contains("email") {
            if let Some(mail) = &user.mail {
                claims["email"] = json!(mail);
            }
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(sid) = &grant.sid {
            claims["sid"] = json!(sid);
        }
        membership_claims(&mut claims, &w.dir.tenants[t], app, grant.oid);
        let roles = w.reg.roles_of(grant.tid, &app.client_id, grant.oid);
        if !roles.is_empty() {
            claims["roles"] = json!(roles);
        }
        let keys = st.keys.read().unwrap_or_else(|e| e.into_inner());
        let jwt = match st.forgeries.take() {
            Some(forgery) => {
                tracing::warn!(kind = ?forgery.kind(), "issuing a forged ID token, as armed through the admin API");
                forgery.forge(&keys, claims, &st.cfg.base_url)
            }
            None => keys.sign(&claims),
        }
        .map_err(|_| malformed())?;
        out["id_token"] = json!(jwt);
    }
    if params.get("client_info").map(String::as_str) == Some("1") {
        let info = json!({"uid": grant.oid, "utid": grant.tid}).to_string();
        out["client_info"] = json!(URL_SAFE_NO_PAD.encode(info));
    }
    Ok(out)
}

/// AADSTS500011: the resource an exposed-API scope names is not in the tenant.
fn unknown_resource(uri: &str) -> AadError {
    AadError::bad(
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {uri} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        ),
    )
}

/// The exposed API that `scopes` (in full, `api://{id}/value`) ask for in `tid`: its app and
/// the scope values, or `None` when there are none. Refused as Entra does when the resource has
/// no service principal in the tenant, a scope is not exposed, or two resources are named.
fn api_grant(
    w: &World,
    tid: Uuid,
    scopes: &BTreeSet<String>,
) -> Result<Option<(App, Vec<String>)>, AadError> {
    let mut found: Option<(App, Vec<String>)> = None;
    for scope in scopes {
        let (uri, value) = scope.rsplit_once('/').ok_or_else(malformed)?;
        let resource = w
            .reg
            .resource(uri)
            .filter(|r| w.reg.grants.contains_key(&(tid, r.client_id.clone())))
            .ok_or_else(|| unknown_resource(uri))?;
        let exposed = resource
            .api_scopes
            .iter()
            .find(|e| e.is_enabled && e.value.eq_ignore_ascii_case(value))
            .ok_or_else(|| {
                AadError::bad(
                    "invalid_scope",
                    70011,
                    format!("The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not exist."),
                )
            })?
            .value
            .clone();
        match &mut found {
            None => found = Some((resource.clone(), vec![exposed])),
            Some((r, values)) if r.client_id == resource.client_id => values.push(exposed),
            Some(_) => {
                return Err(AadError::bad(
                    "invalid_request",
                    28000,
                    format!(
                        "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
                    ),
                ));
            }
        }
    }
    Ok(found)
}

/// Signs an access token for an exposed API, spoiled instead when an access-token forgery is
/// armed.
fn sign_api_token(st: &AppState, claims: Value) -> Result<String, AadError> {
    let keys = st.keys.read().unwrap_or_else(|e| e.into_inner());
    match st.forgeries.take_access() {
        Some(forgery) => {
            tracing::warn!(kind = ?forgery.kind(), "issuing a forged access token, as armed through the admin API");
            forgery.forge(&keys, claims, &st.cfg.base_url)
        }
        None => keys.sign(&claims),
    }
    .map_err(|_| {
        AadError::bad(
            "server_error",
            50000,
            "The access token could not be signed.",
        )
    })
}

/// Reshapes v2.0 access-token claims into v1.0 ones unless `resource` asks for v2.0
/// (`api.requestedAccessTokenVersion` 2; null or 1 mean v1.0 — apiApplication resource): the
/// issuer is Microsoft's fixed `https://sts.windows.net/{tid}/` (not this emulator's host),
/// `aud` the resource identifier the client asked for, `appid`/`appidacr` instead of
/// `azp`/`azpacr`, `unique_name` instead of `preferred_username` (access-token claims reference).
fn as_version(claims: &mut Value, resource: &App, requested: &str, tid: Uuid) {
    if resource.access_token_version == Some(2) {
        return;
    }
    let Some(c) = claims.as_object_mut() else {
        return;
    };
    c.insert("ver".into(), json!("1.0"));
    c.insert(
        "iss".into(),
        json!(format!("https://sts.windows.net/{tid}/")),
    );
    c.insert("aud".into(), json!(requested));
    for (v2, v1) in [
        ("azp", "appid"),
        ("azpacr", "appidacr"),
        ("preferred_username", "unique_name"),
    ] {
        if let Some(value) = c.remove(v2) {
            c.insert(v1.into(), value);
        }
    }
}

/// An access token for `resource` (an API an app exposes) on behalf of the signed-in user, in
/// the version the resource asks for ([`as_version`]): `scp` the granted scopes, the user's
/// `groups` (as the resource's registration asks) and app roles of the resource, `upn`.
#[allow(clippy::too_many_arguments)]
fn api_user_token(
    st: &AppState,
    w: &World,
    t: usize,
    app: &App,
    resource: &App,
    values: &[String],
    grant: &Refresh,
    user: &crate::directory::User,
) -> Result<String, AadError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "aud": resource.client_id,
        "iss": format!("{}/{}/v2.0", st.cfg.base_url, grant.tid),
        "iat": now,
        "nbf": now,
        "exp": now + st.cfg.access_ttl.as_secs() as i64,
        "ver": "2.0",
        "tid": grant.tid,
        "oid": grant.oid,
        "sub": pairwise_sub(grant.oid, &resource.client_id),
        "azp": app.client_id,
        "azpacr": "1",
        "scp": values.join(" "),
        "name": user.display_name,
        "preferred_username": user.user_principal_name,
        "upn": user.user_principal_name,
        "uti": secret_token(16),
        "rh": "0.emulator",
    });
    membership_claims(&mut claims, &w.dir.tenants[t], resource, grant.oid);
    let roles = w.reg.roles_of(grant.tid, &resource.client_id, grant.oid);
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    // The resource as the client named it (every scope names the same one).
    let requested = grant
        .api
        .iter()
        .next()
        .and_then(|s| s.rsplit_once('/'))
        .map_or(resource.client_id.as_str(), |(uri, _)| uri);
    as_version(&mut claims, resource, requested, grant.tid);
    sign_api_token(st, claims)
}

/// An app-only access token of `app` for `resource` (client credentials with
/// `{requested}/.default`, `requested` an application ID URI or client id), in the version the
/// resource asks for ([`as_version`]): the app roles of the resource granted to the app in
/// `roles` (none: no `roles` claim), no `scp`.
fn api_app_token(
    st: &AppState,
    w: &World,
    app: &App,
    resource: &App,
    requested: &str,
    tid: Uuid,
) -> Result<Value, AadError> {
    let uri = resource
        .identifier_uris
        .first()
        .cloned()
        .unwrap_or_else(|| resource.client_id.clone());
    if !w
        .reg
        .grants
        .contains_key(&(tid, resource.client_id.clone()))
    {
        return Err(unknown_resource(&uri));
    }
    let ttl = st.cfg.access_ttl;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let sp = crate::apps::Registry::service_principal_id(tid, &app.client_id);
    let mut claims = json!({
        "aud": resource.client_id,
        "iss": format!("{}/{tid}/v2.0", st.cfg.base_url),
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs() as i64,
        "ver": "2.0",
        "tid": tid,
        "oid": sp,
        "sub": sp,
        "azp": app.client_id,
        "azpacr": "1",
        "idtyp": "app",
        "uti": secret_token(16),
        "rh": "0.emulator",
    });
    let roles = w.reg.app_roles_of(tid, &resource.client_id, &app.client_id);
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    as_version(&mut claims, resource, requested, tid);
    let access = sign_api_token(st, claims)?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "ext_expires_in": ttl.as_secs(),
        "access_token": access,
    }))
}

/// The most groups a JWT names; past it Entra sends the overage claim instead.
pub const MAX_TOKEN_GROUPS: usize = 200;

/// `groups` and `wids` as the registration's `groupMembershipClaims` asks. `wids`: the role
/// template ids of the user's directory roles (`DirectoryRole`, `All`), absent when they hold
/// none. `groups`: the object ids of the user's security groups (`SecurityGroup`) or of all
/// (`All`); past [`MAX_TOKEN_GROUPS`] none, and `_claim_names` / `_claim_sources` pointing at
/// the Graph call that lists them, as Entra does.
fn membership_claims(claims: &mut Value, tenant: &crate::directory::Tenant, app: &App, oid: Uuid) {
    if app.group_claims.emits_wids() {
        let wids: Vec<&str> = tenant
            .roles_of(oid)
            .iter()
            .map(|r| r.role_template_id)
            .collect();
        if !wids.is_empty() {
            claims["wids"] = json!(wids);
        }
    }
    let wanted = |g: &&crate::directory::Group| match app.group_claims {
        GroupClaims::None | GroupClaims::DirectoryRole | GroupClaims::ApplicationGroup => false,
        GroupClaims::SecurityGroup => g.security_enabled,
        GroupClaims::All => true,
    };
    if !matches!(
        app.group_claims,
        GroupClaims::SecurityGroup | GroupClaims::All
    ) {
        return;
    }
    let groups: Vec<Uuid> = tenant
        .groups
        .iter()
        .filter(|g| g.life == crate::directory::Life::Active && g.members.contains(&oid))
        .filter(wanted)
        .map(|g| g.id)
        .collect();
    if groups.len() > MAX_TOKEN_GROUPS {
        claims["_claim_names"] = json!({"groups": "src1"});
        claims["_claim_sources"] = json!({"src1": {
            "endpoint": format!("https://graph.microsoft.com/v1.0/users/{oid}/getMemberObjects")
        }});
    } else {
        claims["groups"] = json!(groups);
    }
}

/// `sub` is pairwise: stable per user and app, different across apps.
fn pairwise_sub(oid: Uuid, client_id: &str) -> String {
    let digest = Sha256::digest(format!("{oid}:{client_id}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..32])
}

fn app_only(
    st: &AppState,
    w: &mut World,
    app: &App,
    authority: Authority,
    tenant: &str,
    params: &HashMap<String, String>,
) -> Result<Value, AadError> {
    let scope = params
        .get("scope")
        .ok_or_else(|| AadError::missing("scope"))?;
    let single = scope.split_whitespace().count() == 1;
    let valid = single
        && [GRAPH, GRAPH_APP_ID]
            .iter()
            .any(|r| scope.eq_ignore_ascii_case(&format!("{r}/.default")));
    // `{application ID URI}/.default`: an API another (or this) app exposes.
    let api = (!valid && single)
        .then(|| scope.strip_suffix("/.default"))
        .flatten()
        .and_then(|uri| w.reg.resource(uri).cloned());
    if !valid && api.is_none() {
        return Err(AadError::bad(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    let Authority::Tenant(t) = authority else {
        return Err(AadError::bad(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' cannot be used for the client credentials flow: use the tenant ID or one of its verified domains."
            ),
        ));
    };
    let tid = w.dir.tenants[t].id;
    if let Some(resource) = api {
        if app.home_tenant != tid && !w.reg.grants.contains_key(&(tid, app.client_id.clone())) {
            return Err(AadError::bad(
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{}' was not found in the directory '{tenant}'.",
                    app.client_id
                ),
            ));
        }
        let requested = scope.strip_suffix("/.default").unwrap_or(scope);
        return api_app_token(st, w, app, &resource, requested, tid);
    }
    // A service principal just created by an admin consent is not usable yet.
    let propagating = w
        .reg
        .grants
        .get(&(tid, app.client_id.clone()))
        .is_some_and(|g| !g.usable());
    disabled(w, app, tid)?;
    // The home tenant always has the app's service principal, even after its grants are revoked.
    let roles = w
        .reg
        .roles_for(tid, &app.client_id)
        .filter(|_| !propagating)
        .or_else(|| (app.home_tenant == tid).then(BTreeSet::new));
    let roles: BTreeSet<String> = roles.ok_or_else(|| {
        AadError::bad(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", app.client_id),
        )
    })?;
    let ttl = st.cfg.access_ttl;
    // Like Microsoft's, an app-only Graph token is a JWT naming the granted application
    // permissions in `roles` (clients are told to treat it as opaque; Graph here looks it up).
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs() as i64,
        "appid": app.client_id,
        "idtyp": "app",
        "roles": roles,
        "tid": tid,
        "jti": secret_token(16),
    });
    let access = st
        .keys
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .sign(&claims)
        .map_err(|_| {
            AadError::bad(
                "server_error",
                50000,
                "The access token could not be signed.",
            )
        })?;
    w.auth.access.insert(
        access.clone(),
        Access {
            tid,
            oid: None,
            client_id: app.client_id.clone(),
            permissions: roles,
            expires: Instant::now() + ttl,
        },
    );
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "ext_expires_in": ttl.as_secs(),
        "access_token": access,
    }))
}
