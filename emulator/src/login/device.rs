//! The device authorization grant (v2-oauth2-device-code): `/{tenant}/oauth2/v2.0/devicecode`
//! hands out a device code and a user code; the user types the code at the verification page
//! (`/devicelogin`, Microsoft's is `https://microsoft.com/devicelogin`), then signs in and
//! consents on the same pages as the authorize endpoint; the device polls the token endpoint with
//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` ([`redeem`]).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::html::{self, escape};
use crate::apps::App;
use crate::directory::Authority;
use crate::login::errors::AadError;
use crate::rng::secret_token;
use crate::scopes::{self, Scope};
use crate::state::{AppState, DeviceAnswer, DeviceCode, Flow, Refresh, ResponseMode, Txn, World};

/// The grant type the device polls with.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// "the user has 15 minutes to sign in. This is the default value for `expires_in`."
const EXPIRES_IN: Duration = Duration::from_secs(900);
/// Seconds between polls, as Microsoft's answers say.
const INTERVAL_SECS: u64 = 5;
/// The verification page.
const VERIFICATION_PATH: &str = "/devicelogin";
/// Letters and digits of a user code, without the look-alikes (0/O, 1/I).
const USER_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Microsoft's user codes are nine characters (`FRWQDE7YL`).
const USER_CODE_LEN: usize = 9;

/// The device code endpoint, the verification page and the admin knob that expires codes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/devicecode", post(device_code))
        .route(VERIFICATION_PATH, get(enter_code).post(code_entered))
        .route("/_emulator/device-codes/expire", post(expire_all))
}

async fn device_code(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match request(&st, &tenant, &headers, &body) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response_with(&st.cfg.base_url),
    }
}

/// The device authorization request: `client_id` and `scope` (both required) at a tenant.
fn request(
    st: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, AadError> {
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_ok {
        return Err(super::token::malformed());
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let mut w = st.world();
    let authority = w
        .dir
        .resolve(tenant)
        .ok_or_else(|| super::oidc::unknown_tenant(tenant))?;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| AadError::missing("client_id"))?;
    let app = super::token::registered(&w, authority, tenant, client_id)?;
    let raw = params
        .get("scope")
        .ok_or_else(|| AadError::missing("scope"))?;
    let (oidc, graph) = requested(&app, raw)?;
    let device_code = secret_token(48);
    let user_code = user_code();
    w.auth.devices.insert(
        device_code.clone(),
        DeviceCode {
            client_id: app.client_id.clone(),
            authority,
            tenant_segment: tenant.to_string(),
            user_code: user_code.clone(),
            oidc,
            graph,
            expires: Instant::now() + EXPIRES_IN,
            answer: DeviceAnswer::Pending,
        },
    );
    let verification_uri = format!("{}{VERIFICATION_PATH}", st.cfg.base_url);
    Ok(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "expires_in": EXPIRES_IN.as_secs(),
        "interval": INTERVAL_SECS,
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        ),
    }))
}

/// The scopes asked for, as OIDC scopes and Graph permissions; AADSTS70011 for an unknown one.
/// Exposed APIs are not offered through the device flow here.
fn requested(app: &App, raw: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), AadError> {
    let parsed = scopes::parse_all(raw).map_err(|bad| {
        AadError::bad(
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid. The scope '{bad}' is not valid."),
        )
    })?;
    let mut oidc = BTreeSet::new();
    let mut graph = BTreeSet::new();
    for scope in parsed {
        match scope {
            Scope::Oidc(s) => {
                oidc.insert(s.to_string());
            }
            Scope::Graph(s) => {
                graph.insert(s.to_string());
            }
            Scope::GraphDefault => graph.extend(app.permissions.delegated_graph().cloned()),
            Scope::Api(s) => {
                return Err(AadError::bad(
                    "invalid_scope",
                    70011,
                    format!(
                        "The emulator's device flow issues tokens for Microsoft Graph only, not '{s}'."
                    ),
                ));
            }
        }
    }
    Ok((oidc, graph))
}

fn user_code() -> String {
    let mut rng = rand::thread_rng();
    (0..USER_CODE_LEN)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())]))
        .collect()
}

/// "Enter code": the verification page.
async fn enter_code() -> Html<String> {
    code_page(None)
}

fn code_page(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|m| {
            format!(
                r#"<p class="error" id="otcError" role="alert">{}</p>"#,
                escape(m)
            )
        })
        .unwrap_or_default();
    html::page(
        "Enter code",
        &format!(
            r#"<p>Enter the code displayed on your app or device.</p>{error}
<form method="post" action="{VERIFICATION_PATH}" name="f1">
<label for="otc">Code</label>
<input type="text" name="otc" id="otc" autocomplete="off">
<input type="submit" id="idSIButton9" value="Next">
</form>"#
        ),
    )
}

/// The verification page's form.
#[derive(serde::Deserialize)]
struct CodeForm {
    #[serde(default)]
    otc: String,
}

/// A code typed at the verification page: unknown, used or expired codes stay on the page with
/// Microsoft's words; a live one starts the sign-in at the authority the device asked on.
async fn code_entered(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let typed = f.otc.trim().to_ascii_uppercase();
    let mut w = st.world();
    let found = w
        .auth
        .devices
        .iter()
        .find(|(_, d)| d.user_code == typed && d.answer == DeviceAnswer::Pending)
        .map(|(code, d)| (code.clone(), d.clone()));
    let Some((device_code, device)) = found else {
        return code_page(Some("That code didn't work. Check the code and try again."))
            .into_response();
    };
    if device.expires <= Instant::now() {
        return code_page(Some(
            "That code has expired. Go back to your app or device and get a new code.",
        ))
        .into_response();
    }
    let session = super::authorize::session_user(&w, &headers, device.authority);
    let txn = Txn {
        flow: Flow::Device,
        authority: device.authority,
        tenant_segment: device.tenant_segment.clone(),
        client_id: device.client_id.clone(),
        redirect_uri: String::new(),
        state: None,
        nonce: None,
        oidc: device.oidc.clone(),
        graph: device.graph.clone(),
        api: BTreeSet::new(),
        code_challenge: None,
        response_mode: ResponseMode::Query,
        prompt: None,
        login_hint: None,
        realm: None,
        user: session.as_ref().map(|(_, who)| *who),
        session: session.map(|(key, _)| key),
        device_code: Some(device_code),
    };
    super::authorize::start(&st, &mut w, txn)
}

/// The user signed in and consented: the device's next poll gets the tokens.
pub(super) fn approve(w: &mut World, txn: &Txn, tid: Uuid, oid: Uuid) -> Response {
    let app = w
        .reg
        .apps
        .get(&txn.client_id)
        .map(|a| a.display_name.clone())
        .unwrap_or_default();
    if let Some(device) = device_of(w, txn) {
        device.answer = DeviceAnswer::Approved(tid, oid);
    }
    html::page(
        "You're signed in",
        &format!(
            r#"<p id="deviceApproved">You have signed in to the {} application on your device. You may now close this window.</p>"#,
            escape(&app)
        ),
    )
    .into_response()
}

/// The user declined, or could not grant, what the device asked for: its polls end with
/// `authorization_declined`.
pub(super) fn decline(w: &mut World, txn: &Txn, code: u32, message: &str) -> Response {
    if let Some(device) = device_of(w, txn) {
        device.answer = DeviceAnswer::Declined;
    }
    (
        axum::http::StatusCode::BAD_REQUEST,
        html::error(code, message),
    )
        .into_response()
}

fn device_of<'w>(w: &'w mut World, txn: &Txn) -> Option<&'w mut DeviceCode> {
    txn.device_code
        .as_ref()
        .and_then(|code| w.auth.devices.get_mut(code))
}

/// The device's poll: `authorization_pending` until the user is done, then the tokens once.
pub(super) fn redeem(
    st: &AppState,
    w: &mut World,
    app: &App,
    authority: Authority,
    params: &HashMap<String, String>,
) -> Result<Value, AadError> {
    let code = params
        .get("device_code")
        .ok_or_else(|| AadError::missing("device_code"))?;
    let device = w
        .auth
        .devices
        .get(code)
        .filter(|d| d.client_id == app.client_id && d.authority == authority)
        .ok_or_else(|| {
            AadError::bad(
                "bad_verification_code",
                70018,
                "Invalid verification code: the device code was not recognized.",
            )
        })?;
    if device.expires <= Instant::now() {
        return Err(AadError::bad(
            "expired_token",
            70019,
            "Verification code expired.",
        ));
    }
    let (tid, oid) = match device.answer {
        DeviceAnswer::Pending => {
            return Err(AadError::bad(
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            ));
        }
        DeviceAnswer::Declined => {
            return Err(AadError::bad(
                "authorization_declined",
                65004,
                "User declined to consent to access the app.",
            ));
        }
        DeviceAnswer::Approved(tid, oid) => (tid, oid),
    };
    let Some(device) = w.auth.devices.remove(code) else {
        unreachable!("looked up above")
    };
    let grant = Refresh {
        client_id: app.client_id.clone(),
        tid,
        oid,
        oidc: device.oidc,
        graph: device.graph,
        api: BTreeSet::new(),
        issued_at: OffsetDateTime::now_utc(),
        last_used: Instant::now(),
        revoked: None,
        sid: None,
    };
    super::token::user_tokens(st, w, app, &grant, None, params)
}

/// Expires every outstanding device code, as 15 minutes passing would (tests of `expired_token`).
async fn expire_all(State(st): State<AppState>) -> Json<Value> {
    let mut w = st.world();
    let now = Instant::now();
    for device in w.auth.devices.values_mut() {
        device.expires = now;
    }
    Json(json!({"expired": w.auth.devices.len()}))
}
