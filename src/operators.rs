//! Operators: the provider's staff who sign in to the console.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::invitations::EmailAddress;
use crate::secret::Secret;

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

/// A signed-in or listed operator.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Operator {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

/// Why an operator operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{0}")]
    Invalid(String),
    #[error("an operator with this email already exists")]
    Exists,
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
