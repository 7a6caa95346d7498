//! Authorize: checking the application's request, single sign-on through Gangway's session,
//! finding the user's tenant (the email page, or a hint), the round trip to the tenant's
//! Entra ID, and the code sent back to the application.
//!
//! Until the redirect URI is known to be the application's, problems are pages; after, they
//! go back to the application as OAuth errors. Problems of the user's organization (not
//! connected, offboarded, needing consent, not admitted, the user disabled) are pages that say
//! what to do, never a trip to Microsoft or an application that ends in a cryptic error.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use url::Url;
use uuid::Uuid;

use super::{MessagePage, REQUEST, SSO, SignInEvent, UPSTREAM};
use crate::audit::Actor;
use crate::identity::{AadError, IdentityError, UserSignInError};
use crate::settings::Live;
use crate::signin::claims::{self, Standing};
use crate::signin::grants::{self, CodeRequest};
use crate::signin::routing::{self, Refusal, RoutedTenant};
use crate::signin::sessions::{self, SigninSession};
use crate::signin::{Application, applications, links, provider};
use crate::types::TenantId;
use crate::types::Untrusted;
use crate::web::client_addr::ClientAddr;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::{AppState, paths};

/// The longest `state`, `nonce`, hint or challenge accepted.
const MAX_PARAM_CHARS: usize = 512;

/// An authorize request as it arrives.
#[derive(Deserialize, Default)]
pub(super) struct AuthorizeQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    domain_hint: Option<String>,
    /// Gangway's customer id, when the application knows which customer the user belongs to.
    customer_id: Option<String>,
}

/// What `prompt` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Prompt {
    /// Nothing: reuse a session if there is one.
    Default,
    /// Never show a page: answer `login_required` without a session.
    None,
    /// Authenticate again at Microsoft.
    Login,
    /// Let the user pick an account at Microsoft.
    SelectAccount,
}

/// A checked authorize request, kept in the session while the user signs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    application_id: Uuid,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    scopes: Vec<String>,
    prompt: Prompt,
    max_age: Option<u64>,
    login_hint: Option<String>,
    domain_hint: Option<String>,
}

/// The round trip to Microsoft under way: what the callback must see again, single use.
#[derive(Serialize, Deserialize)]
pub(super) struct Upstream {
    state: String,
    nonce: String,
    pkce_verifier: String,
    tenant: RoutedTenant,
}

/// The application's redirect URI with an OAuth error (and the request's `state`).
fn error_to_app(
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut url = match Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => {
            return Error::BadRequest("The redirect URI is not a URL.".into()).into_response();
        }
    };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("error", error);
        query.append_pair("error_description", description);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

fn bounded(value: Option<String>) -> Result<Option<String>, ()> {
    match value {
        Some(v) if v.len() > MAX_PARAM_CHARS => Err(()),
        Some(v) if v.is_empty() => Ok(None),
        v => Ok(v),
    }
}

/// Checks what must hold after the redirect URI is trusted; an error goes back to the app.
fn check(
    app: &Application,
    q: AuthorizeQuery,
    redirect_uri: String,
) -> Result<Pending, (&'static str, String)> {
    let too_long = || ("invalid_request", "a parameter is too long".to_owned());
    if q.response_type.as_deref() != Some("code") {
        return Err((
            "unsupported_response_type",
            "only response_type=code (the authorization code flow) is supported".into(),
        ));
    }
    let asked: Vec<&str> = q.scope.as_deref().unwrap_or_default().split(' ').collect();
    if !asked.contains(&"openid") {
        return Err(("invalid_scope", "scope must include openid".into()));
    }
    let scopes: Vec<String> = provider::SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .map(|s| (*s).to_owned())
        .collect();
    let challenge = bounded(q.code_challenge).map_err(|_| too_long())?;
    match (&challenge, q.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if c.len() == 43 => {}
        (Some(_), Some("S256")) => {
            return Err((
                "invalid_request",
                "code_challenge must be a SHA-256 in base64url (43 characters)".into(),
            ));
        }
        (Some(_), _) => {
            return Err((
                "invalid_request",
                "code_challenge_method must be S256".into(),
            ));
        }
        (None, _) if !app.kind.is_confidential() => {
            return Err((
                "invalid_request",
                "a public client must send a PKCE code_challenge with code_challenge_method=S256"
                    .into(),
            ));
        }
        (None, _) => {}
    }
    let prompt = match q.prompt.as_deref().unwrap_or_default() {
        "" => Prompt::Default,
        "none" => Prompt::None,
        "login" => Prompt::Login,
        "select_account" => Prompt::SelectAccount,
        other => {
            return Err((
                "invalid_request",
                format!("prompt {other:?} is not supported (none, login or select_account)"),
            ));
        }
    };
    let max_age = match q.max_age.as_deref() {
        None | Some("") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            (
                "invalid_request",
                "max_age must be a number of seconds".into(),
            )
        })?),
    };
    Ok(Pending {
        application_id: app.id,
        redirect_uri,
        state: bounded(q.state).map_err(|_| too_long())?,
        nonce: bounded(q.nonce).map_err(|_| too_long())?,
        code_challenge: challenge,
        scopes,
        prompt,
        max_age,
        login_hint: bounded(q.login_hint).map_err(|_| too_long())?,
        domain_hint: bounded(q.domain_hint).map_err(|_| too_long())?,
    })
}

/// `GET /oidc/authorize`.
pub(super) async fn authorize(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Response> {
    state.limits.consent_starts.check(client)?;
    let live = state.live().await?;
    let unknown_app = || {
        MessagePage::new(&live.settings.branding, "bad", "This sign-in link is not valid")
            .says("The application that sent you here is not registered with Gangway. Go back to it and try again, or contact its support.")
            .respond(StatusCode::BAD_REQUEST)
    };
    let Some(client_id) = q.client_id.clone() else {
        return Ok(unknown_app());
    };
    let Some(app) = applications::by_client_id(&state.db, &client_id).await? else {
        return Ok(unknown_app());
    };
    let Some(redirect_uri) = q.redirect_uri.clone().filter(|r| app.accepts_redirect(r)) else {
        tracing::info!(application = %app.client_id, redirect_uri = ?q.redirect_uri.as_deref().map(Untrusted), "authorize with an unregistered redirect URI");
        return Ok(MessagePage::new(&live.settings.branding, "bad", "This sign-in link is not valid")
            .says(format!("{} asked to send you back to an address it has not registered, so Gangway will not send you there. Contact the application's support.", app.name))
            .respond(StatusCode::BAD_REQUEST));
    };
    let customer_id = q.customer_id.clone();
    let raw_state = q.state.clone();
    let pending = match check(&app, q, redirect_uri.clone()) {
        Ok(p) => p,
        Err((error, description)) => {
            return Ok(error_to_app(
                &redirect_uri,
                raw_state.as_deref(),
                error,
                &description,
            ));
        }
    };
    // Single sign-on: a live Gangway session answers at once, unless the request wants a
    // fresh authentication.
    if let Some(sso) = usable_session(&state, &session, &pending).await? {
        let routed = routing::by_tenant(&state.db, &app, &tenant_of(&state, &sso).await?).await?;
        return match routed {
            Ok(tenant) => complete(&state, &session, client, &app, pending, &tenant, sso).await,
            Err(refusal) => refuse(&state, &live, client, &app, None, refusal).await,
        };
    }
    if pending.prompt == Prompt::None {
        return Ok(error_to_app(
            &pending.redirect_uri,
            pending.state.as_deref(),
            "login_required",
            "the user is not signed in to Gangway",
        ));
    }
    session.insert(REQUEST, &pending).await?;
    // Hints skip the email page: the login hint's or the domain hint's domain, or a customer.
    let routed = if let Some(domain) = pending
        .login_hint
        .as_deref()
        .and_then(routing::domain_of)
        .or_else(|| {
            pending
                .domain_hint
                .as_deref()
                .and_then(|d| routing::domain_of(&format!("x@{d}")))
        }) {
        Some(routing::by_domain(&state.db, &app, &domain).await?)
    } else if let Some(customer) = customer_id.as_deref().and_then(|c| Uuid::parse_str(c).ok()) {
        routing::by_customer(&state.db, &app, customer)
            .await?
            .transpose()
    } else {
        None
    };
    match routed {
        Some(Ok(tenant)) => leave_for_microsoft(&state, &live, &session, &pending, tenant).await,
        Some(Err(refusal)) => refuse(&state, &live, client, &app, None, refusal).await,
        None => Ok(Redirect::to(paths::SIGNIN_EMAIL).into_response()),
    }
}

/// Microsoft's id of the session's tenant.
async fn tenant_of(state: &AppState, sso: &SigninSession) -> Result<TenantId> {
    let id = sqlx::query_scalar!(
        "select entra_tenant_id from tenants where id = $1",
        sso.tenant_id
    )
    .fetch_one(&state.db)
    .await?;
    Ok(TenantId::from(id))
}

/// The browser's Gangway session, if it is live and may answer `pending` without Microsoft.
async fn usable_session(
    state: &AppState,
    session: &Session,
    pending: &Pending,
) -> Result<Option<SigninSession>> {
    if matches!(pending.prompt, Prompt::Login | Prompt::SelectAccount) {
        return Ok(None);
    }
    let Some(id) = session.get::<Uuid>(SSO).await? else {
        return Ok(None);
    };
    let Some(sso) = sessions::resume(&state.db, id).await? else {
        return Ok(None);
    };
    if let Some(max_age) = pending.max_age {
        let age = OffsetDateTime::now_utc() - sso.auth_time;
        if age.whole_seconds() > max_age as i64 {
            return Ok(None);
        }
    }
    Ok(Some(sso))
}

/// The email page's form.
#[derive(askama::Template, askama_web::WebTemplate)]
#[template(path = "signin/email.html")]
struct EmailPage {
    provider: crate::types::Branding,
    title: String,
    application: String,
    csrf: String,
    email: String,
    error: Option<String>,
}

/// The pending request and its application, or the page saying the sign-in must start over.
async fn pending_request(
    state: &AppState,
    live: &Live,
    session: &Session,
) -> Result<Result<(Pending, Application), Response>> {
    let restart = || {
        MessagePage::new(&live.settings.branding, "warn", "Start again from the application")
            .says("This sign-in expired or was already finished (or was started in another browser). Go back to the application and sign in again.")
            .respond(StatusCode::BAD_REQUEST)
    };
    let Some(pending) = session.get::<Pending>(REQUEST).await? else {
        return Ok(Err(restart()));
    };
    match applications::by_id(&state.db, pending.application_id).await? {
        Some(app) => Ok(Ok((pending, app))),
        None => Ok(Err(restart())),
    }
}

/// `GET /oidc/signin`: the work email, whose domain finds the tenant.
pub(super) async fn email_page(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
) -> Result<Response> {
    let live = state.live().await?;
    let (_, app) = match pending_request(&state, &live, &session).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    Ok(EmailPage {
        provider: live.settings.branding.clone(),
        title: format!("Sign in to {}", app.name),
        application: app.name,
        csrf,
        email: String::new(),
        error: None,
    }
    .into_response())
}

/// The email form.
#[derive(Deserialize)]
pub(super) struct EmailForm {
    #[serde(default)]
    email: String,
}

/// `POST /oidc/signin`: routes by the email's domain and leaves for Microsoft.
pub(super) async fn email_submit(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<EmailForm>,
) -> Result<Response> {
    state.limits.consent_starts.check(client)?;
    let live = state.live().await?;
    let (mut pending, app) = match pending_request(&state, &live, &session).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let email = form.email.trim().to_owned();
    let Some(domain) = routing::domain_of(&email).filter(|_| email.len() <= 254) else {
        let page = EmailPage {
            provider: live.settings.branding.clone(),
            title: format!("Sign in to {}", app.name),
            application: app.name,
            csrf,
            email,
            error: Some("Enter your work email, like name@company.com.".into()),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    match routing::by_domain(&state.db, &app, &domain).await? {
        Ok(tenant) => {
            pending.login_hint = Some(email);
            session.insert(REQUEST, &pending).await?;
            leave_for_microsoft(&state, &live, &session, &pending, tenant).await
        }
        Err(refusal) => refuse(&state, &live, client, &app, None, refusal).await,
    }
}

/// Sends the browser to the tenant's Entra ID sign-in with the provider's app.
async fn leave_for_microsoft(
    state: &AppState,
    live: &Live,
    session: &Session,
    pending: &Pending,
    tenant: RoutedTenant,
) -> Result<Response> {
    let prompt = match pending.prompt {
        Prompt::Login => Some("login"),
        Prompt::SelectAccount => Some("select_account"),
        Prompt::Default | Prompt::None => None,
    };
    let request = live.entra()?.user_sign_in_request(
        &tenant.entra_tenant_id,
        &super::callback_url(&state.cfg.public_url),
        pending.login_hint.as_deref(),
        pending.domain_hint.as_deref(),
        prompt,
    );
    session
        .insert(
            UPSTREAM,
            Upstream {
                state: request.state,
                nonce: request.nonce,
                pkce_verifier: request.pkce_verifier,
                tenant,
            },
        )
        .await?;
    Ok(Redirect::to(request.url.as_str()).into_response())
}

/// What Microsoft sends back.
#[derive(Deserialize, Default)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /oidc/callback`: Microsoft's answer. The state must be this browser's, the ID token
/// valid and of the routed tenant, the tenant still admitted, the user in the copy, enabled
/// and not deleted; then Gangway's session starts and the application gets its code.
pub(super) async fn callback(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    Query(query): Query<CallbackQuery>,
) -> Result<Response> {
    state.limits.callbacks.check(client)?;
    // Taken out first: whatever happens next, this state cannot be presented again.
    let upstream: Option<Upstream> = session.remove(UPSTREAM).await?;
    let live = state.live().await?;
    let (pending, app) = match pending_request(&state, &live, &session).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let state_ok = upstream.as_ref().is_some_and(|u| {
        query
            .state
            .as_deref()
            .is_some_and(|s| crate::crypto::constant_time_eq(s.as_bytes(), u.state.as_bytes()))
    });
    let Some(upstream) = upstream.filter(|_| state_ok) else {
        return Ok(MessagePage::new(&live.settings.branding, "warn", "Start again from the application")
            .says("This sign-in expired or was already used (or was started in another browser). Go back to the application and sign in again.")
            .respond(StatusCode::BAD_REQUEST));
    };
    let tenant = upstream.tenant.clone();
    if let Some(error) = query.error.as_deref().filter(|e| !e.is_empty()) {
        let aad = AadError::from_redirect(error, query.error_description.as_deref());
        tracing::info!(error = ?Untrusted(&aad.error), description = ?Untrusted(aad.summary()), "Microsoft refused the sign-in");
        let code = aad
            .code()
            .map(|c| format!("AADSTS{c}"))
            .unwrap_or(aad.error.clone());
        audit_refusal(
            &state,
            client,
            &app,
            &tenant,
            None,
            &format!("Microsoft answered {code}"),
        )
        .await?;
        let mut page = MessagePage::new(
            &live.settings.branding,
            "bad",
            "Microsoft did not sign you in",
        )
        .says(microsoft_refusal_text(&aad, &tenant))
        .says(format!(
            "Go back to {} and try again; if it keeps happening, contact your IT department.",
            app.name
        ));
        page.detail = Some(format!(
            "{code}: {}",
            aad.summary().chars().take(300).collect::<String>()
        ));
        return Ok(page.respond(StatusCode::FORBIDDEN));
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(MessagePage::new(&live.settings.branding, "warn", "Start again from the application")
            .says("Microsoft's answer carried neither a code nor an error. Go back to the application and sign in again.")
            .respond(StatusCode::BAD_REQUEST));
    };
    let redeemed = live
        .entra()?
        .redeem_user_code(
            &tenant.entra_tenant_id,
            &super::callback_url(&state.cfg.public_url),
            code,
            &upstream.pkce_verifier,
            &upstream.nonce,
        )
        .await;
    let user = match redeemed {
        Ok(user) => user,
        Err(e) => {
            let (reason, text) = match &e {
                UserSignInError::WrongTenant { actual, username, .. } => (
                    format!("signed in to tenant {actual}, not the routed tenant"),
                    format!("You signed in with {username}, an account of another organization than {}. Sign in with your account of {}.", tenant.display_name, tenant.display_name),
                ),
                UserSignInError::Identity(IdentityError::Transport(why)) => (
                    format!("could not reach Microsoft: {why}"),
                    "Gangway could not reach Microsoft to finish the sign-in. Try again in a moment.".to_owned(),
                ),
                UserSignInError::Identity(other) => (
                    other.to_string(),
                    "Microsoft's answer did not pass Gangway's checks, so it was refused for safety. Go back to the application and try again.".to_owned(),
                ),
            };
            audit_refusal(&state, client, &app, &tenant, None, &reason).await?;
            return Ok(MessagePage::new(
                &live.settings.branding,
                "bad",
                "You could not be signed in",
            )
            .says(text)
            .respond(StatusCode::FORBIDDEN));
        }
    };
    // The tenant may have been offboarded (or the application changed) while the user was at
    // Microsoft.
    let tenant = match routing::recheck(&state.db, &app, &tenant).await? {
        Ok(tenant) => tenant,
        Err(refusal) => {
            return refuse(&state, &live, client, &app, Some(&user.username), refusal).await;
        }
    };
    let standing = claims::standing(&state.db, tenant.id, user.object_id).await?;
    let refused_user = match standing {
        Standing::Present(_) | Standing::NotYetCopied => None,
        Standing::Disabled => Some((
            "the user is disabled in the directory",
            "Your account is disabled in your organization's directory.".to_owned(),
        )),
        Standing::Deleted => Some((
            "the user is deleted in the directory",
            "Your account was deleted from your organization's directory.".to_owned(),
        )),
        Standing::Unknown => Some((
            "the user is not in the directory copy",
            "Your account is not (or no longer) in your organization's directory as Gangway knows it.".to_owned(),
        )),
        // As Entra ID words AADSTS50105 for an app that requires assignment.
        Standing::OutOfScope => Some((
            "the user is outside the tenant's sync scope",
            format!(
                "{} has given {} only to some of its people, and your account is not among them.",
                tenant.display_name, live.settings.branding.name
            ),
        )),
    };
    if let Some((reason, text)) = refused_user {
        audit_refusal(&state, client, &app, &tenant, Some(&user.username), reason).await?;
        return Ok(MessagePage::new(&live.settings.branding, "bad", "You cannot sign in")
            .says(format!("Microsoft signed you in as {}, but {text}", user.username))
            .says(format!("Ask your IT department whether your account may use {}. Changes reach {} within the next directory sync.", app.name, live.settings.branding.name))
            .respond(StatusCode::FORBIDDEN));
    }
    let sso = sessions::start(&state.db, tenant.id, &user).await?;
    // A fresh session id for a fresh sign-in (no fixation).
    session.cycle_id().await?;
    session.insert(SSO, sso.id).await?;
    complete(&state, &session, client, &app, pending, &tenant, sso).await
}

/// What Microsoft's refusal means for the user.
fn microsoft_refusal_text(aad: &AadError, tenant: &RoutedTenant) -> String {
    match aad.code() {
        Some(50057) => "Your account is disabled in your organization's directory.".into(),
        Some(65001 | 65004 | 90093 | 90094 | 90095) => format!(
            "{} has not allowed this application to sign its people in. An administrator of {} can allow it.",
            tenant.display_name, tenant.display_name
        ),
        Some(700016 | 650052) => format!(
            "The application is not (or no longer) set up in {}'s Microsoft directory. Its administrator must connect it again.",
            tenant.display_name
        ),
        _ if aad.error == "access_denied" => "You cancelled the sign-in at Microsoft.".into(),
        _ => "Microsoft could not complete the sign-in.".into(),
    }
}

/// Sends the application its code: the sign-in succeeded.
#[allow(clippy::too_many_arguments)]
async fn complete(
    state: &AppState,
    session: &Session,
    client: ClientAddr,
    app: &Application,
    pending: Pending,
    tenant: &RoutedTenant,
    sso: SigninSession,
) -> Result<Response> {
    session.remove::<Pending>(REQUEST).await?;
    let username =
        sqlx::query_scalar!("select username from signin_sessions where id = $1", sso.id)
            .fetch_one(&state.db)
            .await?;
    if app.require_account_link
        && links::account_of(&state.db, app.id, tenant.id, sso.object_id)
            .await?
            .is_none()
    {
        audit_refusal(
            state,
            client,
            app,
            tenant,
            Some(&username),
            "no account link",
        )
        .await?;
        let live = state.live().await?;
        let provider = &live.settings.branding;
        return Ok(MessagePage::new(provider, "bad", format!("Your account is not set up for {}", app.name))
            .says(format!("Microsoft signed you in as {username}, but {} needs your {provider} account linked to it first, and it is not yet.", app.name))
            .says(format!("Contact {} to have it set up, then sign in again.", provider.contact()))
            .respond(StatusCode::FORBIDDEN));
    }
    let code = grants::issue_code(
        &state.db,
        &CodeRequest {
            application_id: app.id,
            session_id: sso.id,
            redirect_uri: &pending.redirect_uri,
            code_challenge: pending.code_challenge.as_deref(),
            nonce: pending.nonce.as_deref(),
            scopes: &pending.scopes,
        },
    )
    .await?;
    SignInEvent {
        actor: Actor::Anonymous(client.ip()),
        tenant_id: Some(tenant.id),
        application: app,
        customer: Some(&tenant.customer_name),
        user: Some(&username),
    }
    .record(&state.db, None)
    .await?;
    let mut url = Url::parse(&pending.redirect_uri)
        .map_err(|_| Error::BadRequest("The redirect URI is not a URL.".into()))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(s) = &pending.state {
            query.append_pair("state", s);
        }
        query.append_pair("iss", &super::issuer(&state.cfg));
    }
    Ok(Redirect::to(url.as_str()).into_response())
}

async fn audit_refusal(
    state: &AppState,
    client: ClientAddr,
    app: &Application,
    tenant: &RoutedTenant,
    user: Option<&str>,
    reason: &str,
) -> Result<()> {
    SignInEvent {
        actor: Actor::Anonymous(client.ip()),
        tenant_id: Some(tenant.id),
        application: app,
        customer: Some(&tenant.customer_name),
        user,
    }
    .record(&state.db, Some(reason))
    .await
}

/// The page for an organization that cannot sign in now, audited.
async fn refuse(
    state: &AppState,
    live: &Live,
    client: ClientAddr,
    app: &Application,
    user: Option<&str>,
    refusal: Refusal,
) -> Result<Response> {
    SignInEvent {
        actor: Actor::Anonymous(client.ip()),
        tenant_id: None,
        application: app,
        customer: None,
        user,
    }
    .record(&state.db, Some(refusal.reason()))
    .await?;
    let provider = &live.settings.branding.name;
    let (heading, text) = match &refusal {
        Refusal::UnknownDomain(domain) => (
            "Your organization is not connected".to_owned(),
            format!(
                "No organization connected to {provider} uses the domain {domain}. Check the email you entered; if it is right, your organization has not connected its Microsoft directory to {provider} yet: ask your IT department to contact {provider}."
            ),
        ),
        Refusal::NotConnected => (
            "Your organization is not connected".to_owned(),
            format!(
                "Your organization has not connected its Microsoft directory to {provider} yet. Ask your IT department to contact {provider}."
            ),
        ),
        Refusal::Offboarded(org) => (
            format!("{org} is no longer connected"),
            format!(
                "{org} disconnected its Microsoft directory from {provider}, so its people cannot sign in to {} through it.",
                app.name
            ),
        ),
        Refusal::ReconsentRequired(org) => (
            format!("{org} needs to renew its connection"),
            format!(
                "{provider}'s access to {org}'s Microsoft directory has stopped working. An administrator of {org} must approve it again; {provider} can send them a new link."
            ),
        ),
        Refusal::Disabled(org) => (
            format!("Sign-in for {org} is paused"),
            format!(
                "{provider} has paused its connection to {org}. Contact {provider} to resume it."
            ),
        ),
        Refusal::OwnApplication(org) => (
            format!("{org} cannot sign in this way"),
            format!(
                "{org} connected to {provider} with its own app registration, which does not sign people in. An administrator of {org} can connect {provider}'s application instead."
            ),
        ),
        Refusal::NotAdmitted(org) => (
            format!("{} is not available to {org}", app.name),
            format!(
                "{} is not offered to {org}. If you think it should be, contact {provider}.",
                app.name
            ),
        ),
    };
    Ok(MessagePage::new(&live.settings.branding, "bad", heading)
        .says(text)
        .respond(StatusCode::FORBIDDEN))
}
