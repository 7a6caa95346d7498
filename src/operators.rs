//! Operators: the provider's staff who sign in to the console.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::types::EmailAddress;
use crate::types::Secret;

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including creating, resending and revoking invitations.
    Admin,
    /// Read-only.
    Viewer,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }

    /// Parses `admin` or `viewer`.
    pub fn parse(value: &str) -> Result<Self, OperatorError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "viewer" => Ok(Self::Viewer),
            _ => Err(OperatorError::Invalid(
                "role must be admin or viewer".into(),
            )),
        }
    }
}

/// A signed-in operator.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Operator {
    /// The operator's id.
    pub id: Uuid,
    /// Sign-in email.
    pub email: String,
    /// What they may do.
    pub role: Role,
}

/// An operator as the operator list shows them.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OperatorSummary {
    /// The operator's id.
    pub id: Uuid,
    /// Sign-in email.
    pub email: String,
    /// What they may do.
    pub role: Role,
    /// When the account was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Their latest sign-in, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    /// Sessions signed in as this operator that have not expired.
    pub sessions: i64,
}

/// Why an operator operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// An input was malformed; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// The email is taken.
    #[error("an operator with this email already exists")]
    Exists,
    /// No operator has this email or id.
    #[error("no such operator")]
    NotFound,
    /// The change would leave no admin.
    #[error("this is the last admin: make another operator admin first")]
    LastAdmin,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The minimum password length; long passphrases beat composition rules.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Adds an operator with an argon2-hashed password.
pub async fn add(
    db: &PgPool,
    email: &str,
    role: Role,
    password: &Secret,
    actor: &Actor,
) -> Result<Operator, OperatorError> {
    let email = EmailAddress::parse(email).map_err(|e| OperatorError::Invalid(e.to_string()))?;
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(OperatorError::Invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let hash = hash_password(password);
    let mut tx = db.begin().await?;
    let operator: Operator = sqlx::query_as(
        "insert into operators (email, password_hash, role) values ($1, $2, $3)
         on conflict (email) do nothing returning id, email::text, role",
    )
    .bind(email.as_str())
    .bind(hash)
    .bind(role)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(OperatorError::Exists)?;
    audit::record(
        &mut *tx,
        actor,
        Action::OperatorAdded,
        None,
        None,
        json!({ "email": operator.email, "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(operator)
}

/// Checks credentials. Unknown emails cost the same hashing work as wrong passwords.
pub async fn authenticate(
    db: &PgPool,
    email: &str,
    password: &Secret,
) -> Result<Option<Operator>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        email: String,
        role: Role,
        password_hash: String,
    }
    let row: Option<Row> = sqlx::query_as(
        "select id, email::text, role, password_hash from operators where email = $1",
    )
    .bind(email.trim())
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        let _ = verify_password(
            password,
            DUMMY_HASH.get_or_init(|| hash_password(&Secret::new("dummy-password"))),
        );
        return Ok(None);
    };
    if !verify_password(password, &row.password_hash) {
        return Ok(None);
    }
    sqlx::query("update operators set last_login_at = now() where id = $1")
        .bind(row.id)
        .execute(db)
        .await?;
    Ok(Some(Operator {
        id: row.id,
        email: row.email,
        role: row.role,
    }))
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn hash_password(password: &Secret) -> String {
    Argon2::default()
        .hash_password(
            password.expose().as_bytes(),
            &SaltString::generate(&mut OsRng),
        )
        .expect("argon2 hashing with default parameters succeeds")
        .to_string()
}

fn verify_password(password: &Secret, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
    })
}

/// Replaces an operator's password (the demo resets its operator on every start).
pub async fn set_password(
    db: &PgPool,
    email: &str,
    password: &Secret,
) -> Result<(), OperatorError> {
    sqlx::query("update operators set password_hash = $2 where email = $1")
        .bind(email)
        .bind(hash_password(password))
        .execute(db)
        .await?;
    Ok(())
}

/// The operator with `id`, as they are now (one lookup by primary key).
pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<Operator>, sqlx::Error> {
    sqlx::query_as("select id, email::text, role from operators where id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The operator signing in with `email`.
pub async fn find_by_email(db: &PgPool, email: &str) -> Result<Operator, OperatorError> {
    sqlx::query_as("select id, email::text, role from operators where email = $1")
        .bind(email.trim())
        .fetch_optional(db)
        .await?
        .ok_or(OperatorError::NotFound)
}

/// Every operator, by email, with their last sign-in and live session count.
pub async fn list(db: &PgPool) -> Result<Vec<OperatorSummary>, sqlx::Error> {
    sqlx::query_as(
        "select o.id, o.email::text, o.role, o.created_at, o.last_login_at,
                (select count(*) from sessions s where s.operator_id = o.id and s.expires_at > now()) as sessions
         from operators o order by o.email",
    )
    .fetch_all(db)
    .await
}

/// Gives operator `id` the role `role`. A demotion ends their sessions, so no page they have
/// open keeps admin buttons; the last admin cannot be demoted.
pub async fn set_role(
    db: &PgPool,
    id: Uuid,
    role: Role,
    actor: &Actor,
) -> Result<Operator, OperatorError> {
    let mut tx = db.begin().await?;
    let current = lock_checked(&mut tx, id, role == Role::Viewer).await?;
    if current.role == role {
        return Ok(current);
    }
    sqlx::query("update operators set role = $2 where id = $1")
        .bind(id)
        .bind(role)
        .execute(&mut *tx)
        .await?;
    if role == Role::Viewer {
        end_sessions_in(&mut tx, id, None).await?;
    }
    audit::record(
        &mut *tx,
        actor,
        Action::OperatorRoleChanged,
        None,
        None,
        json!({ "email": current.email, "role": role, "previous": current.role }),
    )
    .await?;
    tx.commit().await?;
    Ok(Operator { role, ..current })
}

/// Removes operator `id`; their sessions go with them. The last admin cannot be removed.
pub async fn remove(db: &PgPool, id: Uuid, actor: &Actor) -> Result<Operator, OperatorError> {
    let mut tx = db.begin().await?;
    let removed = lock_checked(&mut tx, id, true).await?;
    // Sessions cascade; invitations they created stay, without the link to them.
    sqlx::query("delete from operators where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::OperatorRemoved,
        None,
        None,
        json!({ "email": removed.email, "role": removed.role }),
    )
    .await?;
    tx.commit().await?;
    Ok(removed)
}

/// Signs operator `id` out everywhere but the session whose stored key is `keep` (the caller's
/// own, when they sign themselves out elsewhere); returns how many sessions ended.
pub async fn end_sessions(
    db: &PgPool,
    id: Uuid,
    keep: Option<&[u8]>,
    actor: &Actor,
) -> Result<u64, OperatorError> {
    let mut tx = db.begin().await?;
    let operator: Operator =
        sqlx::query_as("select id, email::text, role from operators where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(OperatorError::NotFound)?;
    let ended = end_sessions_in(&mut tx, id, keep).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::OperatorSessionsEnded,
        None,
        None,
        json!({ "email": operator.email, "sessions": ended }),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// Locks operator `id` and, when `losing_admin` and they are an admin, refuses if they are the
/// last one. Every admin row is locked, so two admins demoting each other cannot both succeed.
async fn lock_checked(
    tx: &mut PgConnection,
    id: Uuid,
    losing_admin: bool,
) -> Result<Operator, OperatorError> {
    let admins: Vec<Uuid> =
        sqlx::query_scalar("select id from operators where role = 'admin' for update")
            .fetch_all(&mut *tx)
            .await?;
    let operator: Operator =
        sqlx::query_as("select id, email::text, role from operators where id = $1 for update")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(OperatorError::NotFound)?;
    if losing_admin && operator.role == Role::Admin && admins == [id] {
        return Err(OperatorError::LastAdmin);
    }
    Ok(operator)
}

async fn end_sessions_in(
    tx: &mut PgConnection,
    id: Uuid,
    keep: Option<&[u8]>,
) -> Result<u64, sqlx::Error> {
    let ended = sqlx::query(
        "delete from sessions where operator_id = $1 and ($2::bytea is null or id_sha256 <> $2)",
    )
    .bind(id)
    .bind(keep)
    .execute(&mut *tx)
    .await?;
    Ok(ended.rows_affected())
}
