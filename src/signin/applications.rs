//! The provider's applications that sign users in through Gangway (OIDC clients): registering
//! them (a web application's client secret is shown once and only its hash kept), finding
//! them by client id, and authenticating them at the token endpoint.

use std::collections::{BTreeMap, HashSet};

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{SigninError, redirect};
use crate::audit::{self, Action, Actor};
use crate::crypto::{constant_time_eq, random_token, sha256};
use crate::db::ResultExt;
use crate::types::Secret;
use crate::webhooks::egress;

/// What kind of client an application is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// A server-side web application: confidential, authenticates with its client secret.
    Web,
    /// A single-page application: public, PKCE S256 required.
    Spa,
    /// A native (desktop, mobile) application: public, PKCE S256 required, loopback on any
    /// port and private-use schemes as redirect URIs.
    Native,
}

impl AppKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Spa => "spa",
            Self::Native => "native",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Web, Self::Spa, Self::Native]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Whether it holds a client secret (otherwise PKCE is its only proof).
    pub fn is_confidential(self) -> bool {
        self == Self::Web
    }
}

/// Which groups the `groups` claim lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "prefix")]
pub enum GroupsClaim {
    /// No `groups` claim.
    None,
    /// Every group of the user, by name.
    All,
    /// The user's groups whose names start with this prefix (case-insensitive).
    Filter(String),
}

impl GroupsClaim {
    /// The stored form: the kind (`none`, `all`, `filter`) and the prefix of a filter.
    pub fn stored(&self) -> (&'static str, Option<String>) {
        match self {
            Self::None => ("none", None),
            Self::All => ("all", None),
            Self::Filter(prefix) => ("filter", Some(prefix.trim().to_owned())),
        }
    }
}

/// A registered application.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Application {
    /// Gangway's id.
    pub id: Uuid,
    /// Its name, shown to users and operators.
    pub name: String,
    /// Confidential or public, and how.
    pub kind: AppKind,
    /// The `client_id` it presents.
    pub client_id: String,
    /// Where codes may be sent (exact match; see [`redirect::matches`]).
    pub redirect_uris: Vec<String>,
    /// Where the user may be sent after logging out.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens are posted, if anywhere.
    pub backchannel_logout_uri: Option<String>,
    /// Whether every connected customer may sign in (else only `customers`).
    pub all_customers: bool,
    /// The customers admitted when not all are.
    pub customers: Vec<Uuid>,
    /// Whether `sub` is pairwise (different for each application).
    pub pairwise_subject: bool,
    /// Which groups its tokens list.
    pub groups: GroupsClaim,
    /// Group name → role value, for the `roles` claim.
    pub role_mapping: BTreeMap<String, String>,
    /// Whether a user needs an account link ([`super::links`]) to sign in.
    pub require_account_link: bool,
}

impl Application {
    /// Whether `uri` is one of its redirect URIs.
    pub fn accepts_redirect(&self, uri: &str) -> bool {
        redirect::matches(self.kind, &self.redirect_uris, uri)
    }

    /// Whether `uri` is one of its post-logout redirect URIs (exact match only).
    pub fn accepts_post_logout_redirect(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether users of `customer_id` may sign in to it.
    pub fn admits(&self, customer_id: Uuid) -> bool {
        self.all_customers || self.customers.contains(&customer_id)
    }
}

/// An application to register, checked by [`NewApplication::check`].
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NewApplication {
    /// Its name (1–200 characters, unique whatever the case).
    pub name: String,
    /// Its kind.
    pub kind: AppKind,
    /// Its redirect URIs (1–20).
    pub redirect_uris: Vec<String>,
    /// Its post-logout redirect URIs.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Its back-channel logout URI.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// The customers admitted; `None` admits every connected customer.
    #[serde(default)]
    pub customers: Option<Vec<Uuid>>,
    /// Whether `sub` is pairwise.
    #[serde(default)]
    pub pairwise_subject: bool,
    /// Which groups its tokens list.
    pub groups: GroupsClaim,
    /// Group name → role value.
    #[serde(default)]
    pub role_mapping: BTreeMap<String, String>,
    /// Whether a user needs an account link to sign in.
    #[serde(default)]
    pub require_account_link: bool,
}

impl From<&Application> for NewApplication {
    /// The application's settings as they stand, to change some and save them again.
    fn from(a: &Application) -> Self {
        Self {
            name: a.name.clone(),
            kind: a.kind,
            redirect_uris: a.redirect_uris.clone(),
            post_logout_redirect_uris: a.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: a.backchannel_logout_uri.clone(),
            customers: (!a.all_customers).then(|| a.customers.clone()),
            pairwise_subject: a.pairwise_subject,
            groups: a.groups.clone(),
            role_mapping: a.role_mapping.clone(),
            require_account_link: a.require_account_link,
        }
    }
}

/// Which field of an application a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `name`.
    Name,
    /// `kind`.
    Kind,
    /// `redirect_uris`.
    RedirectUris,
    /// `post_logout_redirect_uris`.
    PostLogoutRedirectUris,
    /// `backchannel_logout_uri`.
    BackchannelLogoutUri,
    /// `customers`.
    Customers,
    /// `groups` and its filter.
    Groups,
    /// `role_mapping`.
    RoleMapping,
    /// The keys a `private_key_jwt` application authenticates with.
    Keys,
}

/// Why an application was not registered or changed.
#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    /// A field is not acceptable; the message says why.
    #[error("{message}")]
    Invalid {
        /// The field.
        field: Field,
        /// Why, in words.
        message: String,
    },
    /// Another application already has this name.
    #[error("an application named \u{201c}{0}\u{201d} already exists")]
    NameTaken(String),
    /// There is no such application (anymore).
    #[error("no such application")]
    NotFound,
    /// Something failed that is not the caller's doing.
    #[error(transparent)]
    Internal(#[from] SigninError),
}

impl From<sqlx::Error> for ApplicationError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl ApplicationError {
    pub(crate) fn invalid(field: Field, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl NewApplication {
    /// Checks every field, reporting the first problem.
    pub fn check(&self) -> Result<(), ApplicationError> {
        let invalid = |field, m: &str| Err(ApplicationError::invalid(field, m));
        self.check_plain()?;
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return invalid(Field::Name, "the name must be 1 to 200 characters");
        }
        if self.redirect_uris.is_empty() || self.redirect_uris.len() > 20 {
            return invalid(Field::RedirectUris, "give 1 to 20 redirect URIs");
        }
        let uris = |field, list: &[String], kind| {
            list.iter().try_for_each(|uri| {
                redirect::check_registered(kind, uri)
                    .map(drop)
                    .map_err(|m| ApplicationError::invalid(field, m))
            })
        };
        uris(Field::RedirectUris, &self.redirect_uris, self.kind)?;
        if self.post_logout_redirect_uris.len() > 20 {
            return invalid(
                Field::PostLogoutRedirectUris,
                "give at most 20 post-logout redirect URIs",
            );
        }
        uris(
            Field::PostLogoutRedirectUris,
            &self.post_logout_redirect_uris,
            self.kind,
        )?;
        if let Some(uri) = &self.backchannel_logout_uri {
            uris(
                Field::BackchannelLogoutUri,
                std::slice::from_ref(uri),
                AppKind::Web,
            )?;
        }
        if let GroupsClaim::Filter(prefix) = &self.groups
            && (prefix.trim().is_empty() || prefix.chars().count() > 200)
        {
            return invalid(
                Field::Groups,
                "the groups filter must be 1 to 200 characters",
            );
        }
        if self.role_mapping.len() > 200
            || self
                .role_mapping
                .iter()
                .any(|(g, r)| g.is_empty() || r.is_empty() || g.len() > 256 || r.len() > 120)
        {
            return invalid(
                Field::RoleMapping,
                "each role mapping needs a group name and a role value",
            );
        }
        Ok(())
    }

    /// No field has a use for control characters (and Postgres refuses NUL in text): each is
    /// refused on its field, before anything else is said about it.
    fn check_plain(&self) -> Result<(), ApplicationError> {
        let control = |v: &String| v.chars().any(char::is_control);
        let filter = match &self.groups {
            GroupsClaim::Filter(prefix) => Some(prefix),
            _ => None,
        };
        let found = if control(&self.name) {
            Field::Name
        } else if self.redirect_uris.iter().any(control) {
            Field::RedirectUris
        } else if self.post_logout_redirect_uris.iter().any(control) {
            Field::PostLogoutRedirectUris
        } else if self.backchannel_logout_uri.iter().any(control) {
            Field::BackchannelLogoutUri
        } else if filter.is_some_and(control) {
            Field::Groups
        } else if self
            .role_mapping
            .iter()
            .any(|(g, r)| control(g) || control(r))
        {
            Field::RoleMapping
        } else {
            return Ok(());
        };
        Err(ApplicationError::invalid(
            found,
            "control characters are not allowed here",
        ))
    }
}

/// A newly registered application and, for a web application, its client secret: shown once.
#[derive(Debug)]
pub struct Registered {
    /// The application.
    pub application: Application,
    /// The client secret (web applications only); only its hash is stored.
    pub client_secret: Option<Secret>,
}

/// Logout tokens go where webhooks may go: no internal address unless an admin allowed it
/// (checked again at each send).
async fn check_outbound(db: &PgPool, app: &NewApplication) -> Result<(), ApplicationError> {
    let Some(uri) = &app.backchannel_logout_uri else {
        return Ok(());
    };
    let invalid = |m: String| ApplicationError::invalid(Field::BackchannelLogoutUri, m);
    let url = url::Url::parse(uri)
        .map_err(|_| invalid("the back-channel logout URI is not a URL".into()))?;
    egress::check(&url, &egress::allowed(db).await?)
        .await
        .map_err(|why| invalid(format!("back-channel logout URI: {why}")))
}

/// Registers `new` and audits it.
pub async fn register(
    db: &PgPool,
    new: &NewApplication,
    actor: &Actor,
) -> Result<Registered, ApplicationError> {
    new.check()?;
    check_outbound(db, new).await?;
    let client_id = Uuid::new_v4().to_string();
    let secret = new.kind.is_confidential().then(random_token);
    let secret_hash = secret.as_deref().map(|s| sha256(s.as_bytes()));
    let (groups_claim, groups_filter) = new.groups.stored();
    let mut tx = db.begin().await?;
    let id = sqlx::query_scalar!(
        r#"insert into signin_applications
             (name, kind, client_id, client_secret_sha256, redirect_uris, post_logout_redirect_uris,
              backchannel_logout_uri, all_customers, pairwise_subject, groups_claim, groups_filter,
              role_mapping, require_account_link)
           values ($1::text, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           on conflict on constraint signin_applications_name_key do nothing
           returning id"#,
        new.name.trim(),
        new.kind.as_str(),
        client_id,
        secret_hash,
        &new.redirect_uris,
        &new.post_logout_redirect_uris,
        new.backchannel_logout_uri,
        new.customers.is_none(),
        new.pairwise_subject,
        groups_claim,
        groups_filter,
        json!(new.role_mapping),
        new.require_account_link,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApplicationError::NameTaken(new.name.trim().to_owned()))?;
    admit(&mut tx, id, new.customers.as_deref()).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::SigninApplicationCreated,
        None,
        None,
        json!({ "application": new.name.trim(), "client_id": client_id, "kind": new.kind.as_str() }),
    )
    .await?;
    tx.commit().await?;
    let application = by_id(db, id)
        .await?
        .ok_or_else(|| SigninError::Key("the application vanished".into()))?;
    Ok(Registered {
        application,
        client_secret: secret.map(Secret::new),
    })
}

/// Replaces the customers application `id` admits with `customers` (`None`: all of them); each
/// must exist.
async fn admit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    customers: Option<&[Uuid]>,
) -> Result<(), ApplicationError> {
    sqlx::query!(
        "delete from signin_application_customers where application_id = $1",
        id
    )
    .execute(&mut **tx)
    .await?;
    let customers = customers.unwrap_or_default();
    let admitted = sqlx::query_scalar!(
        r#"with added as (
               insert into signin_application_customers (application_id, customer_id)
               select $1, c.id from customers c where c.id = any($2::uuid[])
               returning 1)
           select count(*) as "n!" from added"#,
        id,
        customers,
    )
    .fetch_one(&mut **tx)
    .await?;
    let asked = customers.iter().collect::<HashSet<_>>().len();
    if admitted != asked as i64 {
        return Err(ApplicationError::invalid(
            Field::Customers,
            "a customer to admit does not exist",
        ));
    }
    Ok(())
}

/// Saves `changed` as the settings of application `id` and audits it. Its kind cannot change
/// (a web application holds a secret, a public one none): register another instead.
pub async fn update(
    db: &PgPool,
    id: Uuid,
    changed: &NewApplication,
    actor: &Actor,
) -> Result<Application, ApplicationError> {
    changed.check()?;
    check_outbound(db, changed).await?;
    let before = by_id(db, id).await?.ok_or(ApplicationError::NotFound)?;
    if before.kind != changed.kind {
        return Err(ApplicationError::invalid(
            Field::Kind,
            "an application's kind cannot change: register a new application instead",
        ));
    }
    let (groups_claim, groups_filter) = changed.groups.stored();
    let mut tx = db.begin().await?;
    let updated = sqlx::query_scalar!(
        r#"update signin_applications a
           set name = $2::text, redirect_uris = $3, post_logout_redirect_uris = $4,
               backchannel_logout_uri = $5, all_customers = $6, pairwise_subject = $7,
               groups_claim = $8, groups_filter = $9, role_mapping = $10,
               require_account_link = $11
           where a.id = $1
             and not exists (select 1 from signin_applications o
                             where o.name = $2::text::citext and o.id <> $1)
           returning a.id"#,
        id,
        changed.name.trim(),
        &changed.redirect_uris,
        &changed.post_logout_redirect_uris,
        changed.backchannel_logout_uri,
        changed.customers.is_none(),
        changed.pairwise_subject,
        groups_claim,
        groups_filter,
        json!(changed.role_mapping),
        changed.require_account_link,
    )
    .fetch_optional(&mut *tx)
    .await
    // Two renames to one name at once: the constraint has the last word.
    .on_constraint("signin_applications_name_key", |_| {
        ApplicationError::NameTaken(changed.name.trim().to_owned())
    })?;
    if updated.is_none() {
        return Err(ApplicationError::NameTaken(changed.name.trim().to_owned()));
    }
    admit(&mut tx, id, changed.customers.as_deref()).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::SigninApplicationUpdated,
        None,
        None,
        json!({ "application": changed.name.trim(), "client_id": before.client_id }),
    )
    .await?;
    tx.commit().await?;
    by_id(db, id).await?.ok_or(ApplicationError::NotFound)
}

/// Deletes application `id` with everything issued to it (codes, grants, tokens, account
/// links) and audits it; its client id stops working at once.
pub async fn delete(db: &PgPool, id: Uuid, actor: &Actor) -> Result<(), ApplicationError> {
    let mut tx = db.begin().await?;
    let gone = sqlx::query!(
        r#"delete from signin_applications where id = $1 returning name::text as "name!", client_id"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApplicationError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::SigninApplicationDeleted,
        None,
        None,
        json!({ "application": gone.name, "client_id": gone.client_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Gives web application `id` a new client secret (the old one stops working at once: the
/// application must be given the new one) and audits it. The secret is answered once.
pub async fn rotate_secret(
    db: &PgPool,
    id: Uuid,
    actor: &Actor,
) -> Result<Secret, ApplicationError> {
    let app = by_id(db, id).await?.ok_or(ApplicationError::NotFound)?;
    if !app.kind.is_confidential() {
        return Err(ApplicationError::invalid(
            Field::Kind,
            "only a web application has a client secret",
        ));
    }
    let secret = random_token();
    let mut tx = db.begin().await?;
    let replaced = sqlx::query!(
        "update signin_applications set client_secret_sha256 = $2
         where id = $1 and jwks is null",
        id,
        sha256(secret.as_bytes()),
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if replaced == 0 {
        return Err(ApplicationError::invalid(
            Field::Keys,
            "this application authenticates with its registered keys (private_key_jwt): it has no client secret to replace",
        ));
    }
    audit::record(
        &mut *tx,
        actor,
        Action::SigninSecretRotated,
        None,
        None,
        json!({ "application": app.name, "client_id": app.client_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(Secret::new(secret))
}

/// One stored row, before its kind and claims are parsed.
struct Row {
    id: Uuid,
    name: String,
    kind: String,
    client_id: String,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    backchannel_logout_uri: Option<String>,
    all_customers: bool,
    customers: Option<Vec<Uuid>>,
    pairwise_subject: bool,
    groups_claim: String,
    groups_filter: Option<String>,
    role_mapping: serde_json::Value,
    require_account_link: bool,
}

impl Row {
    fn into_application(self) -> Application {
        let groups = match (self.groups_claim.as_str(), self.groups_filter) {
            ("all", _) => GroupsClaim::All,
            ("filter", Some(prefix)) => GroupsClaim::Filter(prefix),
            _ => GroupsClaim::None,
        };
        Application {
            id: self.id,
            name: self.name,
            // The column's check constraint admits only the three kinds.
            kind: AppKind::parse(&self.kind).unwrap_or(AppKind::Web),
            client_id: self.client_id,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            backchannel_logout_uri: self.backchannel_logout_uri,
            all_customers: self.all_customers,
            customers: self.customers.unwrap_or_default(),
            pairwise_subject: self.pairwise_subject,
            groups,
            role_mapping: serde_json::from_value(self.role_mapping).unwrap_or_default(),
            require_account_link: self.require_account_link,
        }
    }
}

/// A checked query for [`Row`]s: the application columns, then `$tail` (its `where`, order and
/// limit) with its arguments.
macro_rules! select_applications {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Row,
            r#"select a.id, a.name::text as "name!", a.kind, a.client_id, a.redirect_uris,
                  a.post_logout_redirect_uris, a.backchannel_logout_uri, a.all_customers,
                  array(select customer_id from signin_application_customers c
                        where c.application_id = a.id) as customers,
                  a.pairwise_subject, a.groups_claim, a.groups_filter, a.role_mapping,
                  a.require_account_link
           from signin_applications a"# + $tail
            $(, $arg)*
        )
    };
}

/// The application with Gangway id `id`.
pub async fn by_id(db: &PgPool, id: Uuid) -> Result<Option<Application>, SigninError> {
    let row = select_applications!(" where a.id = $1", id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(Row::into_application))
}

/// The origins (`scheme://host[:port]`) of single-page applications' redirect URIs: the pages
/// that may call the token endpoint from a browser.
pub async fn spa_origins(db: &PgPool) -> Result<Vec<String>, SigninError> {
    let uris = sqlx::query_scalar!(
        r#"select distinct unnest(redirect_uris) as "uri!" from signin_applications
           where kind = 'spa'"#
    )
    .fetch_all(db)
    .await?;
    let mut origins: Vec<String> = uris
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    origins.sort();
    origins.dedup();
    Ok(origins)
}

/// The application presenting `client_id`.
pub async fn by_client_id(
    db: &PgPool,
    client_id: &str,
) -> Result<Option<Application>, SigninError> {
    if client_id.is_empty() || client_id.len() > 100 {
        return Ok(None);
    }
    let row = select_applications!(" where a.client_id = $1", client_id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(Row::into_application))
}

/// Authenticates a client at the token, revocation and similar endpoints: a web application
/// must present its secret; a public one presents none (PKCE proves it instead). `None` when
/// the client is unknown or its proof is wrong, which callers answer `invalid_client`.
pub async fn authenticate(
    db: &PgPool,
    client_id: &str,
    secret: Option<&str>,
) -> Result<Option<Application>, SigninError> {
    let Some(app) = by_client_id(db, client_id).await? else {
        return Ok(None);
    };
    if !app.kind.is_confidential() {
        return Ok(secret.is_none().then_some(app));
    }
    let Some(secret) = secret else {
        return Ok(None);
    };
    let stored = sqlx::query_scalar!(
        "select client_secret_sha256 from signin_applications where id = $1",
        app.id
    )
    .fetch_one(db)
    .await?;
    let ok = stored.is_some_and(|h| constant_time_eq(&h, &sha256(secret.as_bytes())));
    Ok(ok.then_some(app))
}

/// Applications by name, at most `limit` after the name `after` (case-insensitive order).
pub async fn page_after(
    db: &PgPool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Application>, SigninError> {
    let rows = select_applications!(
        "
           where $1::text is null or a.name > $1::text::citext
           order by a.name limit $2",
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Row::into_application).collect())
}

/// Applications by name, optionally those whose name or client id contains `search`; with the
/// total matching.
pub async fn list(
    db: &PgPool,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Application>, i64), SigninError> {
    let pattern = search.map(crate::db::contains_pattern);
    let rows = select_applications!(
        r"
           where $1::text is null or a.name ilike $1 escape '\' or a.client_id ilike $1 escape '\'
           order by a.name limit $2 offset $3",
        pattern,
        limit,
        offset
    )
    .fetch_all(db)
    .await?;
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from signin_applications a
           where $1::text is null or a.name ilike $1 escape '\' or a.client_id ilike $1 escape '\'"#,
        pattern
    )
    .fetch_one(db)
    .await?;
    Ok((rows.into_iter().map(Row::into_application).collect(), total))
}
