//! The interactive endpoints: `/oauth2/v2.0/authorize`, `/v2.0/adminconsent` and legacy
//! `/adminconsent`, with their sign-in, consent and "need admin approval" pages.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use axum::Router;
use axum::extract::{Form, MatchedPath, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use uuid::Uuid;

use super::html::{self, escape, hidden};
use crate::apps::App;
use crate::directory::Authority;
use crate::login::errors::{AadError, aad_timestamp};
use crate::rng::secret_token;
use crate::scopes::{self, Scope};
use crate::state::{AppState, BrowserSession, Code, Flow, ResponseMode, Txn, World};

/// Name of the browser-session cookie (Microsoft's is also `ESTSAUTH`).
const SESSION_COOKIE: &str = "ESTSAUTH";

/// Authorize, admin consent, the form targets of their pages, and logout.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(AUTHORIZE, get(begin))
        .route(ADMIN_CONSENT_V2, get(begin))
        .route(ADMIN_CONSENT_LEGACY, get(begin))
        .route("/{tenant}/login", post(login))
        .route("/{tenant}/consent", post(consent))
        .route("/{tenant}/consent/return", get(return_without_consent))
        .route("/{tenant}/oauth2/v2.0/logout", get(logout))
}

type Params = HashMap<String, String>;

/// Where and how answers go back to the app once the redirect URI is trusted.
struct Reply<'a> {
    base_url: &'a str,
    redirect_uri: &'a str,
    state: Option<&'a str>,
    mode: ResponseMode,
}

impl Reply<'_> {
    fn from_txn<'a>(base_url: &'a str, txn: &'a Txn) -> Reply<'a> {
        Reply {
            base_url,
            redirect_uri: &txn.redirect_uri,
            state: txn.state.as_deref(),
            mode: txn.response_mode,
        }
    }

    /// Sends `fields` (plus `state`) to the redirect URI by 302 or auto-posting form.
    fn send(&self, mut fields: Vec<(&'static str, String)>) -> Response {
        if let Some(state) = self.state {
            fields.push(("state", state.to_string()));
        }
        match self.mode {
            ResponseMode::FormPost => html::form_post(self.redirect_uri, &fields).into_response(),
            ResponseMode::Query => {
                let mut url = match url::Url::parse(self.redirect_uri) {
                    Ok(u) => u,
                    Err(_) => {
                        return html::error(50011, "The redirect URI is not a URL.")
                            .into_response();
                    }
                };
                url.query_pairs_mut()
                    .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())));
                redirect(url.as_str())
            }
        }
    }

    /// Sends an [`AadError`] to the redirect URI.
    fn fail(&self, e: AadError) -> Response {
        self.error(e.error, e.code, &e.message)
    }

    /// Sends an OAuth error the way Microsoft does (`error`, `error_description`, `error_uri`).
    fn error(&self, error: &'static str, code: u32, message: &str) -> Response {
        self.error_after(Vec::new(), error, code, message)
    }

    /// [`Self::error`] after `first`: an admin consent's answer keeps `admin_consent=True` even
    /// when it carries an error (v2-admin-consent, "Unsuccessful response").
    fn error_after(
        &self,
        mut first: Vec<(&'static str, String)>,
        error: &'static str,
        code: u32,
        message: &str,
    ) -> Response {
        let e = AadError::bad(error, code, message);
        first.extend([
            ("error", error.to_string()),
            (
                "error_description",
                e.description(Uuid::new_v4(), Uuid::new_v4(), &aad_timestamp()),
            ),
            ("error_uri", e.error_uri(self.base_url)),
        ]);
        self.send(first)
    }
}

/// The `scope` parameter, parsed; AADSTS900144 when absent, 70011 when a scope is unknown.
fn requested_scopes(q: &Params) -> Result<Vec<Scope>, AadError> {
    let raw = q.get("scope").ok_or_else(|| AadError::missing("scope"))?;
    scopes::parse_all(raw).map_err(|bad| {
        AadError::bad(
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid. The scope '{bad}' is not valid."),
        )
    })
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => html::error(50011, "The redirect URI is not valid.").into_response(),
    }
}

fn error_page(e: AadError) -> Response {
    (StatusCode::BAD_REQUEST, html::error(e.code, &e.message)).into_response()
}

fn app_not_found(client_id: &str, tenant: &str) -> AadError {
    AadError::bad(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

/// Checks what must hold before anything may be sent to the redirect URI; failures are pages.
fn trusted_app<'w>(
    w: &'w World,
    tenant: &str,
    q: &Params,
) -> Result<(Authority, &'w App, String), AadError> {
    let authority = w
        .dir
        .resolve(tenant)
        .ok_or_else(|| super::oidc::unknown_tenant(tenant))?;
    let client_id = q
        .get("client_id")
        .ok_or_else(|| AadError::missing("client_id"))?;
    let app = w
        .reg
        .apps
        .get(client_id)
        .ok_or_else(|| app_not_found(client_id, tenant))?;
    match authority {
        Authority::Tenant(t) if !app.multi_tenant && w.dir.tenants[t].id != app.home_tenant => {
            return Err(app_not_found(client_id, tenant));
        }
        Authority::Organizations | Authority::Common if !app.multi_tenant => {
            return Err(AadError::bad(
                "invalid_request",
                50194,
                format!(
                    "Application '{client_id}'({}) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.",
                    app.display_name
                ),
            ));
        }
        _ => {}
    }
    let redirect_uri = q
        .get("redirect_uri")
        .ok_or_else(|| AadError::missing("redirect_uri"))?;
    if !app.has_redirect(redirect_uri) {
        return Err(AadError::bad(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal."
            ),
        ));
    }
    Ok((authority, app, redirect_uri.clone()))
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The browser session's key and signed-in (tenant, user), if still valid for `authority`.
pub(super) fn session_user(
    w: &World,
    headers: &HeaderMap,
    authority: Authority,
) -> Option<(String, (Uuid, Uuid))> {
    let key = session_of(headers)?;
    let session = w.auth.sessions.get(&key)?;
    let (tid, oid) = (session.tid, session.oid);
    let t = w.dir.tenant_index(tid)?;
    if matches!(authority, Authority::Tenant(a) if a != t) {
        return None;
    }
    let user = w.dir.tenants[t].user(&oid.to_string())?;
    (user.life == crate::directory::Life::Active && user.account_enabled)
        .then_some((key, (tid, oid)))
}

/// The routes that open a sign-in; [`begin`] tells them apart by the matched route.
const AUTHORIZE: &str = "/{tenant}/oauth2/v2.0/authorize";
const ADMIN_CONSENT_V2: &str = "/{tenant}/v2.0/adminconsent";
const ADMIN_CONSENT_LEGACY: &str = "/{tenant}/adminconsent";

/// A refused request: the error, and the response mode that carries it back to the app.
type Refusal = (ResponseMode, AadError);

/// A sign-in request whose tenant, app and redirect URI have been checked.
struct Trusted<'a> {
    base_url: &'a str,
    tenant: &'a str,
    authority: Authority,
    app: &'a App,
    redirect_uri: String,
    q: &'a Params,
    /// The browser session's key and (tenant, user), if any.
    session: Option<(String, (Uuid, Uuid))>,
    /// The tenant a `domain_hint` names, on `organizations`/`common`.
    realm: Option<usize>,
}

impl Trusted<'_> {
    fn reply(&self, mode: ResponseMode) -> Reply<'_> {
        Reply {
            base_url: self.base_url,
            redirect_uri: &self.redirect_uri,
            state: self.q.get("state").map(String::as_str),
            mode,
        }
    }
}

/// Authorize and admin consent: failures before the redirect URI is trusted are pages; then the
/// route's own checks may answer the app, else the sign-in starts.
async fn begin(
    State(st): State<AppState>,
    route: MatchedPath,
    Path(tenant): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.world();
    let (authority, app, redirect_uri) = match trusted_app(&w, &tenant, &q) {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let asked = Trusted {
        base_url: &st.cfg.base_url,
        tenant: &tenant,
        authority,
        app,
        redirect_uri,
        q: &q,
        session: session_user(&w, &headers, authority),
        realm: hinted_realm(&w, authority, &q),
    };
    let txn = match route.as_str() {
        ADMIN_CONSENT_V2 => admin_consent(&asked, true),
        ADMIN_CONSENT_LEGACY => admin_consent(&asked, false),
        _ => authorize(&asked),
    };
    match txn {
        Ok(txn) => start(&st, &mut w, txn),
        Err((mode, e)) => asked.reply(mode).fail(e),
    }
}

/// The tenant whose verified domain `domain_hint` names, when the authority leaves the tenant
/// open: the hint "skips the email-based discovery process", so the user is looked up there.
/// Other hints (`organizations`, `consumers`, a domain nobody has) change nothing.
fn hinted_realm(w: &World, authority: Authority, q: &Params) -> Option<usize> {
    if matches!(authority, Authority::Tenant(_)) {
        return None;
    }
    let hint = q.get("domain_hint")?;
    match w.dir.resolve(hint) {
        Some(Authority::Tenant(t)) if Uuid::parse_str(hint).is_err() => Some(t),
        _ => None,
    }
}

fn authorize(asked: &Trusted) -> Result<Txn, Refusal> {
    let q = asked.q;
    let mode = match q.get("response_mode").map(String::as_str) {
        None | Some("query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => ResponseMode::Query,
    };
    if let Some(other) = q
        .get("response_mode")
        .filter(|m| !["query", "form_post"].contains(&m.as_str()))
    {
        return Err((
            mode,
            AadError::bad(
                "invalid_request",
                9002313,
                format!("The emulator does not support response_mode '{other}'."),
            ),
        ));
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err((
            mode,
            AadError::bad(
                "unsupported_response_type",
                700054,
                "response_type must be 'code' (the only type the emulator issues).",
            ),
        ));
    }
    let parsed = match requested_scopes(q) {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => return Err((mode, AadError::missing("scope"))),
        Err(e) => return Err((mode, e)),
    };
    let mut oidc = BTreeSet::new();
    let mut graph = BTreeSet::new();
    let mut api = BTreeSet::new();
    for s in parsed {
        match s {
            Scope::Oidc(s) => {
                oidc.insert(s.to_string());
            }
            Scope::Graph(s) => {
                graph.insert(s.to_string());
            }
            Scope::GraphDefault => graph.extend(asked.app.permissions.delegated_graph().cloned()),
            Scope::Api(s) => {
                api.insert(s);
            }
        }
    }
    let code_challenge = match (
        q.get("code_challenge"),
        q.get("code_challenge_method").map(String::as_str),
    ) {
        (None, _) => None,
        (Some(c), None | Some("plain")) => Some((c.clone(), "plain".to_string())),
        (Some(c), Some("S256")) => Some((c.clone(), "S256".to_string())),
        (Some(_), Some(m)) => {
            return Err((
                mode,
                AadError::bad(
                    "invalid_request",
                    501471,
                    format!("The code_challenge_method '{m}' is not supported."),
                ),
            ));
        }
    };
    let prompt = q.get("prompt").cloned();
    if let Some(p) = prompt
        .as_deref()
        .filter(|p| !["login", "none", "consent", "select_account"].contains(p))
    {
        return Err((
            mode,
            AadError::bad(
                "invalid_request",
                90023,
                format!("Invalid prompt value '{p}'."),
            ),
        ));
    }
    if prompt.as_deref() == Some("none") && asked.session.is_none() {
        return Err((
            mode,
            AadError::bad(
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            ),
        ));
    }
    let reuse_session = !matches!(prompt.as_deref(), Some("login" | "select_account"));
    let session = asked.session.clone().filter(|_| reuse_session);
    Ok(Txn {
        flow: Flow::Authorize,
        authority: asked.authority,
        tenant_segment: asked.tenant.to_string(),
        client_id: asked.app.client_id.clone(),
        redirect_uri: asked.redirect_uri.clone(),
        state: q.get("state").cloned(),
        nonce: q.get("nonce").cloned(),
        oidc,
        graph,
        api,
        code_challenge,
        response_mode: mode,
        prompt,
        login_hint: q.get("login_hint").cloned(),
        realm: asked.realm,
        user: session.as_ref().map(|(_, who)| *who),
        session: session.map(|(key, _)| key),
        device_code: None,
    })
}

fn admin_consent(asked: &Trusted, v2: bool) -> Result<Txn, Refusal> {
    let q = asked.q;
    if v2 {
        if let Err(e) = requested_scopes(q) {
            return Err((ResponseMode::Query, e));
        }
    }
    Ok(Txn {
        flow: Flow::AdminConsent { v2 },
        authority: asked.authority,
        tenant_segment: asked.tenant.to_string(),
        client_id: asked.app.client_id.clone(),
        redirect_uri: asked.redirect_uri.clone(),
        state: q.get("state").cloned(),
        nonce: None,
        oidc: BTreeSet::new(),
        graph: BTreeSet::new(),
        api: BTreeSet::new(),
        code_challenge: None,
        response_mode: ResponseMode::Query,
        prompt: None,
        login_hint: q.get("login_hint").cloned(),
        realm: asked.realm,
        user: asked.session.as_ref().map(|(_, who)| *who),
        session: asked.session.as_ref().map(|(key, _)| key.clone()),
        device_code: None,
    })
}

/// Stores the transaction and shows sign-in, or goes on directly when a session is reused.
pub(super) fn start(st: &AppState, w: &mut World, txn: Txn) -> Response {
    let ctx = secret_token(24);
    let signed_in = txn.user.is_some();
    let hint = txn.login_hint.clone().unwrap_or_default();
    let segment = txn.tenant_segment.clone();
    w.auth.txns.insert(ctx.clone(), txn);
    if signed_in {
        after_sign_in(st, w, &ctx)
    } else {
        signin_page(&segment, &ctx, &hint, None).into_response()
    }
}

fn signin_page(
    segment: &str,
    ctx: &str,
    login: &str,
    error: Option<(u32, String)>,
) -> Html<String> {
    let error = error
        .map(|(code, msg)| {
            format!(
                r#"<p class="error" id="usernameError" role="alert">AADSTS{code}: {}</p>"#,
                escape(&msg)
            )
        })
        .unwrap_or_default();
    html::page(
        "Sign in",
        &format!(
            r#"{error}<form method="post" action="/{segment}/login" name="f1">{ctx}
<label for="i0116">Email, phone, or Skype</label>
<input type="text" name="login" id="i0116" autocomplete="username" value="{login}">
<label for="i0118">Password</label>
<input type="password" name="passwd" id="i0118" autocomplete="current-password">
<input type="submit" id="idSIButton9" value="Sign in">
</form>"#,
            segment = escape(segment),
            ctx = hidden("ctx", ctx),
            login = escape(login),
        ),
    )
}

/// The sign-in form's fields.
#[derive(serde::Deserialize)]
struct LoginForm {
    ctx: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    passwd: String,
}

fn lost_transaction() -> Response {
    error_page(AadError::bad(
        "invalid_request",
        9002313,
        "Invalid request. Request is malformed or invalid. (The sign-in transaction is unknown or finished; start again from the application.)",
    ))
}

async fn login(State(st): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let mut w = st.world();
    let Some(txn) = w.auth.txns.get(&f.ctx) else {
        return lost_transaction();
    };
    let lookup = txn.realm.map_or(txn.authority, Authority::Tenant);
    let segment = txn.tenant_segment.clone();
    let retry = |code: u32, msg: String| {
        signin_page(&segment, &f.ctx, &f.login, Some((code, msg))).into_response()
    };
    let Some((t, u)) = w.dir.find_login(lookup, &f.login) else {
        return retry(
            50034,
            format!(
                "The user account {} does not exist in the '{segment}' directory. To sign into this application, the account must be added to the directory.",
                f.login
            ),
        );
    };
    let tenant = &w.dir.tenants[t];
    let user = &tenant.users[u];
    if user.life != crate::directory::Life::Active {
        return retry(
            50034,
            format!(
                "The user account {} does not exist in the '{segment}' directory.",
                f.login
            ),
        );
    }
    if user.password() != f.passwd {
        return retry(
            50126,
            "Error validating credentials due to invalid username or password.".into(),
        );
    }
    if !user.account_enabled {
        return retry(50057, "The user account is disabled.".into());
    }
    let who = (tenant.id, user.id);
    let key = secret_token(32);
    w.auth.sessions.insert(
        key.clone(),
        BrowserSession {
            tid: who.0,
            oid: who.1,
            sid: Uuid::new_v4().to_string(),
            apps: Vec::new(),
        },
    );
    if let Some(txn) = w.auth.txns.get_mut(&f.ctx) {
        txn.user = Some(who);
        txn.session = Some(key.clone());
    }
    let mut resp = after_sign_in(&st, &mut w, &f.ctx);
    let secure = if st.cfg.base_url.starts_with("https") {
        "; Secure"
    } else {
        ""
    };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={key}; Path=/; HttpOnly; SameSite=Lax{secure}"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// After sign-in: issue a code straight away, or show consent, or the "need admin" page.
fn after_sign_in(st: &AppState, w: &mut World, ctx: &str) -> Response {
    let Some(txn) = w.auth.txns.get(ctx).cloned() else {
        return lost_transaction();
    };
    let base = st.cfg.base_url.as_str();
    let reply = Reply::from_txn(base, &txn);
    let Some((tid, oid)) = txn.user else {
        return lost_transaction();
    };
    let Some((t, user)) = signer(w, tid, oid) else {
        return lost_transaction();
    };
    let Some(app) = w.reg.apps.get(&txn.client_id).cloned() else {
        return lost_transaction();
    };
    if !app.multi_tenant && app.home_tenant != tid {
        return error_page(app_not_found(&app.client_id, &tid.to_string()));
    }
    match txn.flow {
        Flow::Authorize | Flow::Device => {
            let granted = w.reg.delegated_for(tid, &app.client_id, oid);
            let missing: Vec<&String> =
                txn.graph.iter().filter(|s| !granted.contains(*s)).collect();
            let consented = w.reg.has_delegated_consent(tid, &app.client_id, oid);
            if missing.is_empty() && consented && txn.prompt.as_deref() != Some("consent") {
                w.auth.txns.remove(ctx);
                return complete(w, &txn, tid, oid, &reply);
            }
            if txn.prompt.as_deref() == Some("none") {
                return reply.error(
                    "consent_required",
                    65001,
                    &format!("The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.", app.client_id, app.display_name),
                );
            }
            if let Some((_, message)) = consent_refusal(w, t, &user, &app, missing.into_iter()) {
                return need_admin_page(&txn, ctx, &message).into_response();
            }
            let mut listed: Vec<String> = txn.graph.iter().cloned().collect();
            listed.extend(txn.oidc.iter().cloned());
            consent_page(&txn, ctx, &app, &user.user_principal_name, &listed, false).into_response()
        }
        Flow::AdminConsent { .. } => {
            if !user.is_admin {
                let message = needs_admin_message(&app.display_name);
                return need_admin_page(&txn, ctx, &message).into_response();
            }
            let mut listed: Vec<String> = app.permissions.application.iter().cloned().collect();
            listed.extend(
                app.permissions
                    .delegated
                    .iter()
                    .filter(|d| !app.permissions.application.contains(*d))
                    .cloned(),
            );
            consent_page(&txn, ctx, &app, &user.user_principal_name, &listed, true).into_response()
        }
    }
}

fn consent_page(
    txn: &Txn,
    ctx: &str,
    app: &App,
    upn: &str,
    perms: &[String],
    for_org: bool,
) -> Html<String> {
    let items: String = perms
        .iter()
        .map(|p| format!("<li class=\"permission\">{}</li>", escape(p)))
        .collect();
    let org_note = if for_org {
        "<p id=\"orgConsent\"><strong>Accept for your organization</strong>: accepting grants these permissions for every user in your organization. Only a Global Administrator can accept.</p>"
    } else {
        ""
    };
    html::page(
        "Permissions requested",
        &format!(
            r#"<p id="signedInAs">{upn}</p>
<p><strong id="appName">{app}</strong> ({client_id}) wants to:</p>
<ul id="permissions">{items}</ul>{org_note}
<form method="post" action="/{segment}/consent">{ctx}
<button type="submit" name="decision" value="accept" id="idBtn_Accept">Accept</button>
<button type="submit" name="decision" value="decline" id="idBtn_Back">Cancel</button>
</form>"#,
            upn = escape(upn),
            app = escape(&app.display_name),
            client_id = escape(&app.client_id),
            segment = escape(&txn.tenant_segment),
            ctx = hidden("ctx", ctx),
        ),
    )
}

/// Why `user` of tenant `t` may not consent themselves to `scopes` of `app`: Microsoft's code
/// and text. Admins always may; a member may not grant admin-only permissions (AADSTS90094),
/// nor anything when the tenant turned user consent off (AADSTS90093, "Policy prevents
/// granting permissions").
fn consent_refusal<'s>(
    w: &World,
    t: usize,
    user: &crate::directory::User,
    app: &App,
    mut scopes: impl Iterator<Item = &'s String>,
) -> Option<(u32, String)> {
    if user.is_admin {
        return None;
    }
    if scopes.any(|s| scopes::needs_admin(s)) {
        return Some((90094, needs_admin_message(&app.display_name)));
    }
    let tenant = &w.dir.tenants[t];
    (!tenant.user_consent).then(|| {
        let org = &tenant.display_name;
        (
            90093,
            format!(
                "An administrator of {org} set a policy that prevents you from granting {} the permissions it's requesting. Contact an administrator of {org}, who can grant permissions to this app on your behalf.",
                app.display_name
            ),
        )
    })
}

fn need_admin_page(txn: &Txn, ctx: &str, message: &str) -> Html<String> {
    html::page(
        "Need admin approval",
        &format!(
            r#"<p id="needAdmin">{message}</p>
<p><a id="returnToApp" href="/{segment}/consent/return?ctx={ctx}">Return to the application without granting consent</a></p>"#,
            message = escape(message),
            segment = escape(&txn.tenant_segment),
            ctx = escape(ctx),
        ),
    )
}

/// The consent form's fields.
#[derive(serde::Deserialize)]
struct ConsentForm {
    ctx: String,
    #[serde(default)]
    decision: String,
}

async fn consent(State(st): State<AppState>, Form(f): Form<ConsentForm>) -> Response {
    let mut w = st.world();
    let Some(txn) = w.auth.txns.remove(&f.ctx) else {
        return lost_transaction();
    };
    let base = st.cfg.base_url.as_str();
    let reply = Reply::from_txn(base, &txn);
    let Some((tid, oid)) = txn.user else {
        return lost_transaction();
    };
    let Some((t, user)) = signer(&w, tid, oid) else {
        return lost_transaction();
    };
    let is_admin = user.is_admin;
    let Some(app) = w.reg.apps.get(&txn.client_id).cloned() else {
        return lost_transaction();
    };
    let accepted = f.decision == "accept";
    match txn.flow {
        Flow::Authorize | Flow::Device if !accepted => refuse(
            &mut w,
            &txn,
            &reply,
            65004,
            "User declined to consent to access the app.",
        ),
        Flow::AdminConsent { .. } if !accepted => reply.error_after(
            vec![("admin_consent", "True".into())],
            "consent_required",
            65004,
            "User declined to consent to access the app.",
        ),
        Flow::Authorize | Flow::Device => {
            if let Some((code, message)) = consent_refusal(&w, t, &user, &app, txn.graph.iter()) {
                return refuse(&mut w, &txn, &reply, code, &message);
            }
            let needs_admin = txn.graph.iter().any(|s| scopes::needs_admin(s));
            let perms = crate::apps::Permissions {
                delegated: txn.graph.clone(),
                application: BTreeSet::new(),
            };
            // An admin consenting to admin-only scopes consents for the organization, as the
            // "Consent on behalf of your organization" box does.
            let on_behalf = if is_admin && needs_admin {
                None
            } else {
                Some(oid)
            };
            w.reg.grant(tid, &app.client_id, on_behalf, &perms);
            complete(&mut w, &txn, tid, oid, &reply)
        }
        Flow::AdminConsent { v2 } => {
            if !is_admin {
                return reply.error(
                    "access_denied",
                    90094,
                    &needs_admin_message(&app.display_name),
                );
            }
            let new_principal = !w.reg.grants.contains_key(&(tid, app.client_id.clone()));
            w.reg.grant(tid, &app.client_id, None, &app.permissions);
            if new_principal {
                let delay = st.propagation.delay();
                if let Some(grant) = w.reg.grants.get_mut(&(tid, app.client_id.clone())) {
                    grant.usable_from = Some(Instant::now() + delay);
                }
            }
            let mut fields = vec![
                ("admin_consent", "True".to_string()),
                ("tenant", tid.to_string()),
            ];
            if v2 {
                let mut granted: Vec<String> = app
                    .permissions
                    .application
                    .iter()
                    .map(|p| scopes::full(p))
                    .collect();
                for d in app.permissions.delegated_graph() {
                    if !app.permissions.application.contains(d) {
                        granted.push(scopes::full(d));
                    }
                }
                fields.push(("scope", granted.join(" ")));
            }
            tracing::info!(tenant = %tid, client_id = %app.client_id, "admin consent granted");
            reply.send(fields)
        }
    }
}

#[derive(serde::Deserialize)]
struct ReturnQuery {
    ctx: String,
}

async fn return_without_consent(
    State(st): State<AppState>,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let mut w = st.world();
    let Some(txn) = w.auth.txns.remove(&q.ctx) else {
        return lost_transaction();
    };
    let Some(app) = w.reg.apps.get(&txn.client_id) else {
        return lost_transaction();
    };
    // The page said why (AADSTS90093 or 90094); the answer says the same.
    let refusal = txn
        .user
        .and_then(|(tid, oid)| signer(&w, tid, oid))
        .and_then(|(t, user)| consent_refusal(&w, t, &user, app, txn.graph.iter()));
    let (code, message) =
        refusal.unwrap_or_else(|| (90094, needs_admin_message(&app.display_name)));
    refuse(
        &mut w,
        &txn,
        &Reply::from_txn(&st.cfg.base_url, &txn),
        code,
        &message,
    )
}

/// A signed-in, consented user: a code to the app's redirect URI, or the device's approval.
fn complete(w: &mut World, txn: &Txn, tid: Uuid, oid: Uuid, reply: &Reply) -> Response {
    match txn.flow {
        Flow::Device => super::device::approve(w, txn, tid, oid),
        _ => issue_code(w, txn, tid, oid, reply),
    }
}

/// A declined or refused consent: `access_denied` to the app, or the device's decline.
fn refuse(w: &mut World, txn: &Txn, reply: &Reply, code: u32, message: &str) -> Response {
    match txn.flow {
        Flow::Device => super::device::decline(w, txn, code, message),
        _ => reply.error("access_denied", code, message),
    }
}

/// The signed-in user of a transaction: their tenant's index and a copy of them.
fn signer(w: &World, tid: Uuid, oid: Uuid) -> Option<(usize, crate::directory::User)> {
    let t = w.dir.tenant_index(tid)?;
    Some((t, w.dir.tenants[t].user(&oid.to_string())?.clone()))
}

/// Microsoft's AADSTS90094 text.
fn needs_admin_message(app_name: &str) -> String {
    format!(
        "{app_name} needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it."
    )
}

fn issue_code(w: &mut World, txn: &Txn, tid: Uuid, oid: Uuid, reply: &Reply) -> Response {
    let code = secret_token(48);
    // The session remembers the app, so signing out reaches its front-channel logout URL.
    let sid = txn
        .session
        .as_ref()
        .and_then(|key| w.auth.sessions.get_mut(key))
        .map(|session| {
            if !session.apps.contains(&txn.client_id) {
                session.apps.push(txn.client_id.clone());
            }
            session.sid.clone()
        });
    w.auth.codes.insert(
        code.clone(),
        Code {
            client_id: txn.client_id.clone(),
            authority: txn.authority,
            redirect_uri: txn.redirect_uri.clone(),
            tid,
            oid,
            oidc: txn.oidc.clone(),
            graph: txn.graph.clone(),
            api: txn.api.clone(),
            nonce: txn.nonce.clone(),
            code_challenge: txn.code_challenge.clone(),
            sid,
            issued: Instant::now(),
            redeemed: false,
        },
    );
    reply.send(vec![
        ("code", code),
        ("session_state", Uuid::new_v4().to_string()),
    ])
}

/// Ends the browser session. When it had signed in to apps with a front-channel logout URL,
/// the page loads each in an iframe (`?sid=…`, as Microsoft calls them) and then goes on to
/// `post_logout_redirect_uri`; the redirect is followed only when it is a registered redirect
/// URI of the app named by `client_id`, or of an app signed in to in this session.
async fn logout(
    State(st): State<AppState>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.world();
    let session = session_of(&headers).and_then(|key| w.auth.sessions.remove(&key));
    let apps: Vec<App> = session
        .iter()
        .flat_map(|s| s.apps.iter())
        .chain(q.get("client_id"))
        .filter_map(|id| w.reg.apps.get(id).cloned())
        .collect();
    drop(w);
    let next = q
        .get("post_logout_redirect_uri")
        .filter(|uri| apps.iter().any(|a| a.has_redirect(uri)));
    let frames: Vec<String> = match &session {
        Some(s) => apps
            .iter()
            .filter(|a| s.apps.contains(&a.client_id))
            .filter_map(|a| a.logout_url.as_deref())
            .filter_map(|u| url::Url::parse(u).ok())
            .map(|mut u| {
                u.query_pairs_mut().append_pair("sid", &s.sid);
                u.to_string()
            })
            .collect(),
        None => Vec::new(),
    };
    let mut resp = match (next, frames.is_empty()) {
        (Some(uri), true) => redirect(uri),
        _ => signed_out_page(&frames, next.map(String::as_str)).into_response(),
    };
    let clear = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// "You signed out": the front-channel logout iframes, then on to `next` once they loaded
/// (or after three seconds), with a link for browsers without script.
fn signed_out_page(frames: &[String], next: Option<&str>) -> Html<String> {
    let iframes: String = frames
        .iter()
        .map(|src| {
            format!(
                r#"<iframe class="logout" src="{}" width="0" height="0" style="display:none" title="Signing out of an application"></iframe>"#,
                escape(src)
            )
        })
        .collect();
    let onward = match next {
        Some(uri) => format!(
            r#"<p><a id="continue" href="{uri}">Continue</a></p>
<script>(function(){{var f=document.querySelectorAll("iframe.logout"),n=f.length,done=false;
function go(){{if(!done){{done=true;location.replace(document.getElementById("continue").href);}}}}
if(n===0){{go();}}f.forEach(function(e){{e.addEventListener("load",function(){{if(--n<=0){{go();}}}});}});
setTimeout(go,3000);}})();</script>"#,
            uri = escape(uri)
        ),
        None => "<p>It's a good idea to close all browser windows.</p>".into(),
    };
    html::page(
        "You signed out of your account",
        &format!("{iframes}{onward}"),
    )
}
