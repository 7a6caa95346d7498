//! Sign-in applications, the provider's OpenID Connect clients (admins change them, viewers
//! read): the list, registering one (a web application's client secret shown once), its page
//! with its settings and account links, editing, a new client secret (shown once) and deleting.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::list::{Empty, ListPage, ListQuery};
use super::reveal::{self, Reveal};
use super::{Chrome, FormErrors, Section, When, parse_id};
use crate::audit::Actor;
use crate::customers;
use crate::signin::applications::{self, ApplicationError, Field, Registered};
use crate::signin::assertions;
use crate::signin::links::{self, LinkError, LinkedUser};
use crate::signin::{AppKind, Application, GroupsClaim, NewApplication};
use crate::types::{ApplicationId, Secret};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};

const PER_PAGE: i64 = 25;
/// The most customers the form offers (and the list names).
const CUSTOMERS_SHOWN: i64 = 500;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::APPLICATIONS, get(list))
        .route(paths::NEW_APPLICATION, get(new_form).post(create))
        .route(paths::APPLICATION, get(detail))
        .route(paths::EDIT_APPLICATION, get(edit_form).post(update))
        .route(paths::APPLICATION_ROTATE, post(rotate))
        .route(paths::APPLICATION_DELETE, post(delete))
        .route(paths::APPLICATION_KEYS, post(register_keys))
        .route(paths::APPLICATION_LINK, post(add_link))
        .route(paths::APPLICATION_UNLINK, post(remove_link))
}

impl From<ApplicationError> for Error {
    fn from(e: ApplicationError) -> Self {
        match e {
            ApplicationError::NotFound => Self::NotFound,
            e @ (ApplicationError::Invalid { .. } | ApplicationError::NameTaken(_)) => {
                Self::BadRequest(e.to_string())
            }
            ApplicationError::Internal(e) => e.into(),
        }
    }
}

/// A kind as operators read it.
fn kind_label(kind: AppKind) -> &'static str {
    match kind {
        AppKind::Web => "Web (confidential: client secret or keys)",
        AppKind::Spa => "Single-page (public: PKCE)",
        AppKind::Native => "Native (public: PKCE)",
    }
}

/// Customer names by id, to name the admitted ones.
async fn customer_names(state: &AppState) -> Result<Vec<(Uuid, String)>> {
    let (found, _) = customers::list(&state.db, None, CUSTOMERS_SHOWN, 0).await?;
    Ok(found
        .into_iter()
        .map(|l| (l.customer.id.into(), l.customer.name))
        .collect())
}

/// Which customers an application admits, in words.
fn admitted(app: &Application, names: &HashMap<Uuid, String>) -> String {
    if app.all_customers {
        return "Every connected customer".into();
    }
    let mut chosen: Vec<&str> = app
        .customers
        .iter()
        .map(|id| names.get(id).map_or("(unknown customer)", String::as_str))
        .collect();
    chosen.sort_unstable();
    if chosen.is_empty() {
        "No customer".into()
    } else {
        chosen.join(", ")
    }
}

// ---------------------------------------------------------------------------------------------
// The list

struct Row {
    url: String,
    name: String,
    kind: &'static str,
    client_id: String,
    redirect_uris: Vec<String>,
    customers: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/applications.html")]
struct ApplicationsPage {
    chrome: Chrome,
    list: ListPage<Row>,
    notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Query(done): Query<Done>,
    query: ListQuery<()>,
) -> Result<ApplicationsPage> {
    let (found, total) = applications::list(
        &state.db,
        query.q.as_deref(),
        PER_PAGE,
        query.offset(PER_PAGE),
    )
    .await?;
    let names: HashMap<Uuid, String> = customer_names(&state).await?.into_iter().collect();
    let chrome = Chrome::new(&state, &operator, csrf, Section::Applications);
    let first = Empty::first_run(
        "No applications yet",
        "Register each of your applications whose users sign in with their organization's Microsoft account: Gangway becomes its OpenID Provider.",
        chrome
            .is_admin
            .then(|| ("Register an application", paths::NEW_APPLICATION.to_owned())),
    );
    let rows = found
        .iter()
        .map(|a| Row {
            url: paths::application(a.id.into()),
            name: a.name.clone(),
            kind: kind_label(a.kind),
            client_id: a.client_id.clone(),
            redirect_uris: a.redirect_uris.clone(),
            customers: admitted(a, &names),
        })
        .collect();
    Ok(ApplicationsPage {
        chrome,
        list: ListPage::new(
            query,
            paths::APPLICATIONS,
            PER_PAGE,
            rows,
            total,
            "applications",
            first,
        ),
        notice: (done.done.as_deref() == Some("deleted")).then_some(
            "Application deleted: its client id, tokens and account links no longer work.",
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// One application, with its account links

struct LinkRow {
    user: String,
    upn: String,
    tenant: String,
    tenant_id: Uuid,
    object_id: Uuid,
    account_id: String,
    linked: When,
}

/// The add-link form as typed, kept on a refusal.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LinkForm {
    user: String,
    account_id: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/application.html")]
struct DetailPage {
    chrome: Chrome,
    id: ApplicationId,
    app: Application,
    kind: &'static str,
    customers: String,
    groups: String,
    roles: Vec<(String, String)>,
    issuer: String,
    notice: Option<&'static str>,
    /// A client secret just made: shown this once.
    secret: Option<String>,
    /// The `kid`s of its keys, when it authenticates with `private_key_jwt`.
    key_ids: Option<Vec<String>>,
    /// The JWK Set as pasted, kept on a refusal.
    keys_form: String,
    keys_error: Option<String>,
    /// The account links.
    list: ListPage<LinkRow>,
    link_form: LinkForm,
    link_error: Option<String>,
}

async fn detail_page(
    state: &AppState,
    chrome: Chrome,
    id: ApplicationId,
    query: ListQuery<()>,
) -> Result<DetailPage> {
    let app = applications::by_id(&state.db, id.into())
        .await?
        .ok_or(Error::NotFound)?;
    let names: HashMap<Uuid, String> = customer_names(state).await?.into_iter().collect();
    let (found, total) = links::list(
        &state.db,
        app.id,
        query.q.as_deref(),
        PER_PAGE,
        query.offset(PER_PAGE),
    )
    .await?;
    let first = Empty::first_run(
        "No account links yet",
        "Link a user of a connected tenant to their account in this application: its tokens then carry it as account_id.",
        None,
    );
    let links = found
        .into_iter()
        .map(|l| LinkRow {
            user: l.display_name.unwrap_or_else(|| "(not in the copy)".into()),
            upn: l.user_principal_name.unwrap_or_default(),
            tenant: l.tenant_name,
            tenant_id: l.tenant_id,
            object_id: l.object_id,
            account_id: l.account_id,
            linked: When::new(l.created_at),
        })
        .collect();
    Ok(DetailPage {
        kind: kind_label(app.kind),
        customers: admitted(&app, &names),
        groups: match &app.groups {
            GroupsClaim::None => "None".into(),
            GroupsClaim::All => "Every group of the user".into(),
            GroupsClaim::Filter(prefix) => format!("Groups whose names start with “{prefix}”"),
        },
        roles: app
            .role_mapping
            .iter()
            .map(|(g, r)| (g.clone(), r.clone()))
            .collect(),
        issuer: crate::web::oidc::issuer(&state.cfg),
        notice: None,
        secret: None,
        key_ids: assertions::registered_kids(&state.db, app.id).await?,
        keys_form: String::new(),
        keys_error: None,
        list: ListPage::new(
            query,
            paths::application(id),
            PER_PAGE,
            links,
            total,
            "links",
            first,
        ),
        link_form: LinkForm::default(),
        link_error: None,
        chrome,
        id,
        app,
    })
}

async fn detail(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Path(id): Path<String>,
    Query(done): Query<Done>,
    query: ListQuery<()>,
) -> Result<DetailPage> {
    let id: ApplicationId = parse_id(&id)?;
    let chrome = Chrome::new(&state, &operator, csrf, Section::Applications);
    let mut page = detail_page(&state, chrome, id, query).await?;
    page.secret = reveal::take(&session, |r| match r {
        Reveal::ClientSecret {
            application,
            secret,
        } if application == id => Some(secret),
        _ => None,
    })
    .await?;
    page.notice = match done.done.as_deref() {
        Some("registered") => Some("Application registered."),
        Some("updated") => Some("Settings saved: they apply to the next sign-in."),
        Some("rotated") => Some(
            "New client secret made: the old one no longer works. Give this one to the application.",
        ),
        Some("keys") => Some(
            "Keys registered: the application now signs its token requests (private_key_jwt), and its client secret no longer works.",
        ),
        Some("linked") => Some("Account linked."),
        Some("unlinked") => Some("Account link removed."),
        _ => None,
    };
    Ok(page)
}

/// Keeps a new client secret for the application's page, shown there once, and redirects.
async fn reveal_secret(
    session: &Session,
    id: ApplicationId,
    secret: Secret,
    done: &str,
) -> Result<Redirect> {
    reveal::keep(
        session,
        Reveal::ClientSecret {
            application: id,
            secret: secret.expose().to_owned(),
        },
    )
    .await?;
    Ok(done_at(id, done))
}

/// The application's page with `?done=`.
fn done_at(id: ApplicationId, done: &str) -> Redirect {
    Redirect::to(&format!("{}?done={done}", paths::application(id)))
}

async fn rotate(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    session: Session,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id: ApplicationId = parse_id(&id)?;
    let secret =
        applications::rotate_secret(&state.db, id.into(), &Actor::Operator(operator.email)).await?;
    reveal_secret(&session, id, secret, "rotated").await
}

async fn delete(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    applications::delete(&state.db, parse_id(&id)?, &Actor::Operator(operator.email)).await?;
    Ok(Redirect::to(&format!(
        "{}?done=deleted",
        paths::APPLICATIONS
    )))
}

async fn add_link(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    query: ListQuery<()>,
    Form(form): Form<LinkForm>,
) -> Result<Response> {
    let id: ApplicationId = parse_id(&id)?;
    let actor = Actor::Operator(operator.email.clone());
    let result = match links::find_user(&state.db, &form.user).await? {
        Some(user) => links::link(&state.db, id.into(), user, &form.account_id, &actor).await,
        None => Err(LinkError::UnknownUser),
    };
    let refusal = match result {
        Ok(_) => return Ok(done_at(id, "linked").into_response()),
        Err(LinkError::NotFound) => return Err(Error::NotFound),
        Err(LinkError::Internal(e)) => return Err(e.into()),
        Err(LinkError::UnknownUser) => format!(
            "No user “{}” in the directory copy of a connected tenant: give their UPN or object id.",
            form.user.trim()
        ),
        Err(e) => e.to_string(),
    };
    let chrome = Chrome::new(&state, &operator, csrf, Section::Applications);
    let mut page = detail_page(&state, chrome, id, query).await?;
    page.link_error = Some(refusal);
    page.link_form = form;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// The keys form: a JWK Set as pasted.
#[derive(Deserialize)]
struct KeysForm {
    #[serde(default)]
    jwks: String,
}

async fn register_keys(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    query: ListQuery<()>,
    Form(form): Form<KeysForm>,
) -> Result<Response> {
    let id: ApplicationId = parse_id(&id)?;
    let actor = Actor::Operator(operator.email.clone());
    let refusal = match serde_json::from_str::<serde_json::Value>(&form.jwks) {
        Err(_) => "This is not JSON: paste the application's JWK Set, {\"keys\": [...]}.".into(),
        Ok(jwks) => match assertions::register_keys(&state.db, id.into(), &jwks, &actor).await {
            Ok(_) => return Ok(done_at(id, "keys").into_response()),
            Err(e @ ApplicationError::Invalid { .. }) => capitalized(&e.to_string()),
            Err(e) => return Err(e.into()),
        },
    };
    let chrome = Chrome::new(&state, &operator, csrf, Section::Applications);
    let mut page = detail_page(&state, chrome, id, query).await?;
    page.keys_error = Some(refusal);
    page.keys_form = form.jwks;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(Deserialize)]
struct UnlinkForm {
    #[serde(default)]
    tenant_id: String,
    #[serde(default)]
    object_id: String,
}

async fn remove_link(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
    Form(form): Form<UnlinkForm>,
) -> Result<Redirect> {
    let id: ApplicationId = parse_id(&id)?;
    let user = LinkedUser {
        tenant_id: parse_id(&form.tenant_id)?,
        object_id: parse_id(&form.object_id)?,
    };
    match links::unlink(&state.db, id.into(), user, &Actor::Operator(operator.email)).await {
        Ok(()) => Ok(done_at(id, "unlinked")),
        Err(LinkError::Internal(e)) => Err(e.into()),
        Err(_) => Err(Error::NotFound),
    }
}

// ---------------------------------------------------------------------------------------------
// Registering and editing

/// The form as typed, kept whole when it has to be shown again.
#[derive(Default)]
struct AppForm {
    name: String,
    kind: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    backchannel_logout_uri: String,
    /// `all` or `chosen`.
    admitted: String,
    customers: Vec<String>,
    /// `none`, `all` or `filter`.
    groups: String,
    groups_filter: String,
    /// One `group name = role` a line.
    role_mapping: String,
    pairwise_subject: bool,
    require_account_link: bool,
}

impl AppForm {
    /// The form of a new application.
    fn blank() -> Self {
        Self {
            kind: "web".into(),
            admitted: "all".into(),
            groups: "none".into(),
            ..Self::default()
        }
    }

    /// The form as posted: pairs, since `customer` repeats once per ticked box.
    fn posted(fields: &[(String, String)]) -> Self {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Self {
            name: field("name"),
            kind: field("kind"),
            redirect_uris: field("redirect_uris"),
            post_logout_redirect_uris: field("post_logout_redirect_uris"),
            backchannel_logout_uri: field("backchannel_logout_uri"),
            admitted: field("admitted"),
            customers: fields
                .iter()
                .filter(|(k, _)| k == "customer")
                .map(|(_, v)| v.clone())
                .collect(),
            groups: field("groups"),
            groups_filter: field("groups_filter"),
            role_mapping: field("role_mapping"),
            pairwise_subject: field("pairwise_subject") == "on",
            require_account_link: field("require_account_link") == "on",
        }
    }

    /// The form showing `app`'s settings.
    fn of(app: &Application) -> Self {
        let (groups, groups_filter) = app.groups.stored();
        Self {
            name: app.name.clone(),
            kind: app.kind.as_str().into(),
            redirect_uris: app.redirect_uris.join("\n"),
            post_logout_redirect_uris: app.post_logout_redirect_uris.join("\n"),
            backchannel_logout_uri: app.backchannel_logout_uri.clone().unwrap_or_default(),
            admitted: if app.all_customers { "all" } else { "chosen" }.into(),
            customers: app.customers.iter().map(Uuid::to_string).collect(),
            groups: groups.into(),
            groups_filter: groups_filter.unwrap_or_default(),
            role_mapping: app
                .role_mapping
                .iter()
                .map(|(g, r)| format!("{g} = {r}"))
                .collect::<Vec<_>>()
                .join("\n"),
            pairwise_subject: app.pairwise_subject,
            require_account_link: app.require_account_link,
        }
    }

    fn chose(&self, customer: &Uuid) -> bool {
        self.customers.contains(&customer.to_string())
    }

    /// The application the form describes, or what is wrong with it (the domain checks the
    /// rest when saving).
    fn parse(&self) -> std::result::Result<NewApplication, Box<FieldErrors>> {
        let mut errors = FieldErrors::default();
        let lines = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let kind = AppKind::parse(&self.kind);
        if kind.is_none() {
            errors.kind = Some("Choose the kind of application.".into());
        }
        let customers = match self.admitted.as_str() {
            "chosen" => {
                let ids: Vec<Uuid> = self
                    .customers
                    .iter()
                    .filter_map(|c| Uuid::parse_str(c).ok())
                    .collect();
                if ids.is_empty() {
                    errors.customers = Some(
                        "Choose at least one customer, or admit every connected customer.".into(),
                    );
                }
                Some(ids)
            }
            _ => None,
        };
        let groups = match self.groups.as_str() {
            "all" => GroupsClaim::All,
            "filter" => GroupsClaim::Filter(self.groups_filter.trim().to_owned()),
            _ => GroupsClaim::None,
        };
        let mut role_mapping = BTreeMap::new();
        for line in lines(&self.role_mapping) {
            match line.rsplit_once('=') {
                Some((group, role)) if !group.trim().is_empty() && !role.trim().is_empty() => {
                    role_mapping.insert(group.trim().to_owned(), role.trim().to_owned());
                }
                _ => {
                    errors.role_mapping = Some(format!(
                        "“{line}” is not a mapping: write one “group name = role” a line."
                    ));
                }
            }
        }
        if errors.any() {
            return Err(Box::new(errors));
        }
        Ok(NewApplication {
            name: self.name.trim().to_owned(),
            kind: kind.unwrap_or(AppKind::Web),
            redirect_uris: lines(&self.redirect_uris),
            post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
            backchannel_logout_uri: Some(self.backchannel_logout_uri.trim())
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
            customers,
            pairwise_subject: self.pairwise_subject,
            groups,
            role_mapping,
            require_account_link: self.require_account_link,
        })
    }
}

/// One message per field, in the form's order.
#[derive(Default)]
struct FieldErrors {
    name: Option<String>,
    kind: Option<String>,
    redirect_uris: Option<String>,
    post_logout_redirect_uris: Option<String>,
    backchannel_logout_uri: Option<String>,
    customers: Option<String>,
    groups: Option<String>,
    role_mapping: Option<String>,
}

impl FieldErrors {
    /// The domain's refusal on its field; `None` when it is not the form's to show.
    fn from_refusal(e: &ApplicationError) -> Option<Self> {
        let mut out = Self::default();
        let message = Some(capitalized(&e.to_string()));
        match e {
            ApplicationError::NameTaken(_) => out.name = message,
            ApplicationError::Invalid { field, .. } => {
                *match field {
                    Field::Name => &mut out.name,
                    Field::Kind => &mut out.kind,
                    Field::RedirectUris => &mut out.redirect_uris,
                    Field::PostLogoutRedirectUris => &mut out.post_logout_redirect_uris,
                    Field::BackchannelLogoutUri => &mut out.backchannel_logout_uri,
                    Field::Customers => &mut out.customers,
                    Field::Groups => &mut out.groups,
                    Field::RoleMapping => &mut out.role_mapping,
                    // Keys are registered through the JSON API only.
                    Field::Keys => return None,
                } = message;
            }
            _ => return None,
        }
        Some(out)
    }
}

/// A domain message as a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".")
        .unwrap_or_default()
}

impl FormErrors for FieldErrors {
    fn fields(&self) -> Vec<(&'static str, &Option<String>)> {
        [
            ("name", &self.name),
            ("kind", &self.kind),
            ("redirect_uris", &self.redirect_uris),
            ("post_logout_redirect_uris", &self.post_logout_redirect_uris),
            ("backchannel_logout_uri", &self.backchannel_logout_uri),
            ("customers", &self.customers),
            ("groups_filter", &self.groups),
            ("role_mapping", &self.role_mapping),
        ]
        .into()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/application_form.html")]
struct FormPage {
    chrome: Chrome,
    /// `None` when registering.
    editing: Option<(ApplicationId, String)>,
    action: String,
    form: AppForm,
    errors: FieldErrors,
    all_customers: Vec<(Uuid, String)>,
}

impl FormPage {
    async fn new(
        state: &AppState,
        chrome: Chrome,
        editing: Option<&Application>,
        form: AppForm,
    ) -> Result<Self> {
        Ok(Self {
            chrome,
            action: editing.map_or_else(
                || paths::NEW_APPLICATION.to_owned(),
                |a| paths::edit_application(a.id.into()),
            ),
            editing: editing.map(|a| (a.id.into(), a.name.clone())),
            form,
            errors: FieldErrors::default(),
            all_customers: customer_names(state).await?,
        })
    }

    /// The form again with its problems, as 422.
    fn refused(mut self, errors: FieldErrors) -> Response {
        self.errors = errors;
        (StatusCode::UNPROCESSABLE_ENTITY, self).into_response()
    }

    fn kinds(&self) -> [(&'static str, &'static str, &'static str); 3] {
        [
            (
                "web",
                "Web application",
                "Runs on a server and keeps a client secret (shown once).",
            ),
            (
                "spa",
                "Single-page application",
                "Runs in the browser: no secret, PKCE (S256) required.",
            ),
            (
                "native",
                "Native application",
                "Desktop or mobile: no secret, PKCE required; loopback on any port and private-use schemes (com.example.app:/callback) as redirect URIs.",
            ),
        ]
    }
}

/// The form again with the domain's refusal on its field, or the error it is.
fn refusal(page: FormPage, e: ApplicationError) -> Result<Response> {
    match FieldErrors::from_refusal(&e) {
        Some(errors) => Ok(page.refused(errors)),
        None => Err(e.into()),
    }
}

async fn new_form(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
) -> Result<FormPage> {
    let chrome = Chrome::new(&state, &operator, csrf, Section::Applications);
    FormPage::new(&state, chrome, None, AppForm::blank()).await
}

async fn create(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let form = AppForm::posted(&fields);
    let parsed = form.parse();
    let chrome = Chrome::new(&state, &operator, csrf, Section::Applications);
    let page = FormPage::new(&state, chrome, None, form).await?;
    let new = match parsed {
        Ok(new) => new,
        Err(errors) => return Ok(page.refused(*errors)),
    };
    match applications::register(&state.db, &new, &Actor::Operator(operator.email)).await {
        Ok(Registered {
            application,
            client_secret: Some(secret),
        }) => Ok(
            reveal_secret(&session, application.id.into(), secret, "registered")
                .await?
                .into_response(),
        ),
        Ok(registered) => {
            Ok(done_at(registered.application.id.into(), "registered").into_response())
        }
        Err(e) => refusal(page, e),
    }
}

async fn edit_form(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
) -> Result<FormPage> {
    let app = applications::by_id(&state.db, parse_id(&id)?)
        .await?
        .ok_or(Error::NotFound)?;
    let chrome = Chrome::new(&state, &operator, csrf, Section::Applications);
    FormPage::new(&state, chrome, Some(&app), AppForm::of(&app)).await
}

async fn update(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let app = applications::by_id(&state.db, parse_id(&id)?)
        .await?
        .ok_or(Error::NotFound)?;
    let mut form = AppForm::posted(&fields);
    // The kind is not on the edit form: it cannot change.
    form.kind = app.kind.as_str().into();
    let parsed = form.parse();
    let chrome = Chrome::new(&state, &operator, csrf, Section::Applications);
    let page = FormPage::new(&state, chrome, Some(&app), form).await?;
    let changed = match parsed {
        Ok(changed) => changed,
        Err(errors) => return Ok(page.refused(*errors)),
    };
    match applications::update(
        &state.db,
        app.id,
        &changed,
        &Actor::Operator(operator.email),
    )
    .await
    {
        Ok(app) => Ok(done_at(app.id.into(), "updated").into_response()),
        Err(e) => refusal(page, e),
    }
}
