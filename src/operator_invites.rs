//! Operators invited from the console: an admin names an email address and a role; the
//! invitee gets a one-time link (only its SHA-256 kept, valid for three days) by the mail outbox
//! and sets their own password with it.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use url::Url;

use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::invitations::InvitationToken;
use crate::invitations::mail::{self, Email};
use crate::operators::{self, MIN_PASSWORD_LEN, Operator, OperatorError, Role};
use crate::types::{EmailAddress, Secret};

/// How long an operator's link works.
pub const VALID_FOR: time::Duration = time::Duration::days(3);

/// Why an invitation cannot be made or used; each message is for the person at the form.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The input is not acceptable; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// Someone with this address already is an operator.
    #[error("{0} already is an operator.")]
    AlreadyOperator(String),
    /// The link is unknown, used or expired.
    #[error(
        "This link is not valid any more: it was used, replaced or has expired. Ask an admin for a new one."
    )]
    LinkNotValid,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<OperatorError> for InviteError {
    fn from(e: OperatorError) -> Self {
        match e {
            OperatorError::Db(e) => Self::Db(e),
            OperatorError::Exists => Self::Invalid("This address already is an operator.".into()),
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// An invitation waiting to be used.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Who is invited.
    pub email: String,
    /// With which role.
    pub role: Role,
    /// Until when the link works.
    pub expires_at: OffsetDateTime,
    /// Who invited them.
    pub created_by: String,
}

/// What [`invite`] made: the invitation and its link, which exists only here.
pub struct Issued {
    /// The invitee's address.
    pub email: String,
    /// The one-time link.
    pub link: Url,
}

/// Where an invitation's link leads, relative to the portal.
pub const JOIN_PATH: &str = "/console/join";

/// Invites `email` as an operator with `role`: replaces an open invitation for the address,
/// queues the mail (sealed; `provider` names who invites) and audits it, in one transaction.
pub async fn invite(
    db: &PgPool,
    keys: &Keyring,
    public_url: &Url,
    provider: &str,
    email: &str,
    role: Role,
    actor: &Actor,
) -> Result<Issued, InviteError> {
    let email = EmailAddress::parse(email.trim()).map_err(|_| {
        InviteError::Invalid(format!(
            "Enter an email address like name@provider.example: “{}” is not one.",
            email.trim()
        ))
    })?;
    let mut tx = db.begin().await?;
    let exists = sqlx::query_scalar!(
        r#"select exists (select 1 from operators where email = $1) as "exists!""#,
        email.as_str() as &str,
    )
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Err(InviteError::AlreadyOperator(email.as_str().to_owned()));
    }
    let token = InvitationToken::mint();
    sqlx::query!(
        "delete from operator_invitations where email = $1 and accepted_at is null",
        email.as_str() as &str,
    )
    .execute(&mut *tx)
    .await?;
    let expires_at = OffsetDateTime::now_utc() + VALID_FOR;
    sqlx::query!(
        "insert into operator_invitations (email, role, token_sha256, expires_at, created_by)
         values ($1, $2, $3, $4, $5)",
        email.as_str() as &str,
        role as Role,
        token.hash(),
        expires_at,
        match actor {
            Actor::Operator(email) => email.clone(),
            other => other.to_string(),
        },
    )
    .execute(&mut *tx)
    .await?;
    let mut link = public_url
        .join(JOIN_PATH)
        .expect("a path joins the public URL");
    link.query_pairs_mut().append_pair("token", token.expose());
    let email_text = format!(
        "You are invited to the {provider} onboarding console (Gangway) as {role}.\n\n\
         Set your password with this link, within {days} days (until {until}); it works once:\n\n{link}\n\n\
         If you did not expect this, ignore this mail.\n",
        role = role.as_str(),
        days = VALID_FOR.whole_days(),
        until = crate::format::datetime(expires_at),
    );
    let html = format!(
        "<p>{}</p>",
        html_escape(&email_text).replace("\n\n", "</p><p>")
    );
    let mail = Email {
        to: email.as_str().to_owned(),
        subject: format!("Your {provider} console account"),
        text: email_text,
        html,
    };
    mail::enqueue_email(&mut tx, keys, &mail, None).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::OperatorInvited,
        None,
        None,
        json!({ "email": email.as_str(), "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(Issued {
        email: email.as_str().to_owned(),
        link,
    })
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The open invitation a link names, if it still works.
pub async fn find(db: &PgPool, token: &InvitationToken) -> Result<Pending, InviteError> {
    sqlx::query_as!(
        Pending,
        r#"select email::text as "email!", role as "role: Role", expires_at, created_by
           from operator_invitations
           where token_sha256 = $1 and accepted_at is null and expires_at > now()"#,
        token.hash(),
    )
    .fetch_optional(db)
    .await?
    .ok_or(InviteError::LinkNotValid)
}

/// Uses the link: the invitee becomes an operator with `password`. The link works once.
pub async fn accept(
    db: &PgPool,
    token: &InvitationToken,
    password: &Secret,
) -> Result<Operator, InviteError> {
    // Checked before the link is spent, so a short password costs the invitee nothing.
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(InviteError::Invalid(format!(
            "Choose a password of at least {MIN_PASSWORD_LEN} characters; a few words make a good one."
        )));
    }
    let used = sqlx::query!(
        r#"update operator_invitations set accepted_at = now()
           where token_sha256 = $1 and accepted_at is null and expires_at > now()
           returning email::text as "email!", role as "role: Role""#,
        token.hash(),
    )
    .fetch_optional(db)
    .await?
    .ok_or(InviteError::LinkNotValid)?;
    let email = used.email;
    Ok(operators::add(
        db,
        &email,
        used.role,
        password,
        &Actor::Operator(email.clone()),
    )
    .await?)
}

/// The invitations not used yet, newest first (expired ones included, until replaced).
pub async fn pending(db: &PgPool) -> Result<Vec<Pending>, sqlx::Error> {
    sqlx::query_as!(
        Pending,
        r#"select email::text as "email!", role as "role: Role", expires_at, created_by
           from operator_invitations
           where accepted_at is null order by created_at desc"#,
    )
    .fetch_all(db)
    .await
}
