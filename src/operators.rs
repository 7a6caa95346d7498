//! Operators: the provider's staff who sign in to the console.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api_tokens;
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
#[derive(Debug, Clone, serde::Serialize)]
pub struct Operator {
    /// The operator's id.
    pub id: Uuid,
    /// Sign-in email.
    pub email: String,
    /// What they may do.
    pub role: Role,
}

/// An operator as the operator list shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OperatorSummary {
    /// The operator's id.
    pub id: crate::types::OperatorId,
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
    /// The account was removed by an admin and stays out until one restores it.
    #[error(
        "the operator account {0} was removed by an admin: ask an admin to restore it (Operators page, or `gangway operator restore {0}`)"
    )]
    Blocked(String),
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
    // Adding a removed operator back is restoring them.
    sqlx::query!(
        "delete from operator_blocks where email = $1",
        email.as_str() as &str
    )
    .execute(&mut *tx)
    .await?;
    let operator = sqlx::query_as!(
        Operator,
        r#"insert into operators (email, password_hash, role) values ($1, $2, $3)
           on conflict (email) do nothing
           returning id, email::text as "email!", role as "role: Role""#,
        email.as_str() as &str,
        hash,
        role as Role,
    )
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
    // `password_hash` is None for operators who sign in with Entra ID only.
    let row = sqlx::query!(
        r#"select id, email::text as "email!", role as "role: Role", password_hash
           from operators where email = $1"#,
        email.trim() as &str,
    )
    .fetch_optional(db)
    .await?;
    let Some((row, hash)) = row.and_then(|r| r.password_hash.clone().map(|h| (r, h))) else {
        let _ = verify_password(
            password,
            DUMMY_HASH.get_or_init(|| hash_password(&Secret::new("dummy-password"))),
        );
        return Ok(None);
    };
    if !verify_password(password, &hash) {
        return Ok(None);
    }
    sqlx::query!(
        "update operators set last_login_at = now() where id = $1",
        row.id
    )
    .execute(db)
    .await?;
    Ok(Some(Operator {
        id: row.id,
        email: row.email,
        role: row.role,
    }))
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Which Entra ID groups (object ids) and app roles (values) make an operator an admin or a
/// viewer when they sign in with Entra ID.
#[derive(Debug, Clone, Copy)]
pub struct RoleMapping<'a> {
    /// Members of these groups are admins.
    pub admin_groups: &'a [Uuid],
    /// Members of these groups are viewers.
    pub viewer_groups: &'a [Uuid],
    /// Holders of these app roles are admins.
    pub admin_roles: &'a [String],
    /// Holders of these app roles are viewers.
    pub viewer_roles: &'a [String],
}

impl RoleMapping<'_> {
    /// The role of someone in `groups` holding app roles `roles`: admin when anything maps to
    /// admin (admin wins), else viewer when anything maps to viewer, else none. App role values
    /// are compared exactly, as Entra ID issues them.
    pub fn role_for(&self, groups: &[Uuid], roles: &[String]) -> Option<Role> {
        let any = |mapped_groups: &[Uuid], mapped_roles: &[String]| {
            groups.iter().any(|g| mapped_groups.contains(g))
                || roles.iter().any(|r| mapped_roles.contains(r))
        };
        if any(self.admin_groups, self.admin_roles) {
            Some(Role::Admin)
        } else if any(self.viewer_groups, self.viewer_roles) {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// Whether nothing at all is mapped (no one could sign in).
    pub fn is_empty(&self) -> bool {
        self.admin_groups.is_empty()
            && self.viewer_groups.is_empty()
            && self.admin_roles.is_empty()
            && self.viewer_roles.is_empty()
    }
}

/// Someone Entra ID signed in to the provider's tenant, as operators need them.
#[derive(Debug, Clone, Copy)]
pub struct EntraSignIn<'a> {
    /// Their object id in the provider's tenant.
    pub oid: Uuid,
    /// Their user name (UPN), the operator's email.
    pub username: &'a str,
    /// The role their groups and app roles map to.
    pub role: Role,
}

/// What [`sign_in_with_entra`] did.
#[derive(Debug, Clone)]
pub struct EntraSignedIn {
    /// The operator, with the role they now have.
    pub operator: Operator,
    /// A new operator account was made for them.
    pub created: bool,
    /// An existing account with their email was linked to their Entra ID object.
    pub linked: bool,
    /// Their role before, when the mapping changed it.
    pub previous_role: Option<Role>,
}

/// Signs in the operator Entra ID vouched for, in one transaction: found by Entra object id,
/// else an account with their UPN as email that no Entra object is linked to yet (linked now),
/// else created (no password) — with the role their groups and app roles map to, which
/// replaces the stored one when it differs. Audited (added, linked, role changed, signed in)
/// with `detail`. An email already linked to another Entra object is refused, and so is an
/// operator an admin removed (by object id or email), whatever the mapping says.
pub async fn sign_in_with_entra(
    db: &PgPool,
    who: EntraSignIn<'_>,
    detail: serde_json::Value,
) -> Result<EntraSignedIn, OperatorError> {
    let email = EmailAddress::parse(who.username).map_err(|_| {
        OperatorError::Invalid(format!(
            "the Microsoft account name `{}` is not an email address, which an operator account needs",
            who.username
        ))
    })?;
    let mut tx = db.begin().await?;
    let blocked = sqlx::query_scalar!(
        r#"select email::text as "email!" from operator_blocks
           where entra_object_id = $1 or email = $2 limit 1"#,
        who.oid,
        email.as_str() as &str,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(email) = blocked {
        return Err(OperatorError::Blocked(email));
    }
    struct Row {
        id: Uuid,
        email: String,
        role: Role,
        entra_object_id: Option<Uuid>,
    }
    let by_oid = sqlx::query_as!(
        Row,
        r#"select id, email::text as "email!", role as "role: Role", entra_object_id
           from operators where entra_object_id = $1 for update"#,
        who.oid
    )
    .fetch_optional(&mut *tx)
    .await?;
    let existing = match by_oid {
        Some(row) => Some(row),
        None => {
            sqlx::query_as!(
                Row,
                r#"select id, email::text as "email!", role as "role: Role", entra_object_id
                   from operators where email = $1 for update"#,
                email.as_str() as &str,
            )
            .fetch_optional(&mut *tx)
            .await?
        }
    };
    let actor = Actor::Operator(email.as_str().to_owned());
    let (mut created, mut linked, mut previous_role) = (false, false, None);
    let operator = match existing {
        Some(row) if row.entra_object_id.is_some_and(|o| o != who.oid) => {
            return Err(OperatorError::Invalid(format!(
                "the operator account {} belongs to another Microsoft account: an admin must remove it before you can sign in",
                row.email
            )));
        }
        Some(row) => {
            linked = row.entra_object_id.is_none();
            if row.role != who.role {
                previous_role = Some(row.role);
            }
            sqlx::query!(
                "update operators set entra_object_id = $2, role = $3, last_login_at = now()
                 where id = $1",
                row.id,
                who.oid,
                who.role as Role,
            )
            .execute(&mut *tx)
            .await?;
            if who.role == Role::Viewer && row.role == Role::Admin {
                // A demotion ends their other sessions and write tokens, as `set_role` does.
                lost_admin(&mut tx, row.id, &row.email, &actor).await?;
            }
            Operator {
                id: row.id,
                email: row.email,
                role: who.role,
            }
        }
        None => {
            created = true;
            sqlx::query_as!(
                Operator,
                r#"insert into operators (email, password_hash, role, entra_object_id, last_login_at)
                   values ($1, null, $2, $3, now())
                   returning id, email::text as "email!", role as "role: Role""#,
                email.as_str() as &str,
                who.role as Role,
                who.oid,
            )
            .fetch_one(&mut *tx)
            .await?
        }
    };
    let oid = who.oid.to_string();
    if created {
        audit::record(
            &mut *tx,
            &actor,
            Action::OperatorAdded,
            None,
            None,
            json!({ "email": operator.email, "role": operator.role, "source": "entra", "entra_object_id": oid }),
        )
        .await?;
    }
    if let Some(previous) = previous_role {
        audit::record(
            &mut *tx,
            &actor,
            Action::OperatorRoleChanged,
            None,
            None,
            json!({ "email": operator.email, "role": operator.role, "previous": previous, "source": "entra groups and app roles" }),
        )
        .await?;
    }
    let mut signed_in = json!({ "method": "entra", "entra_object_id": oid, "role": operator.role });
    if linked {
        signed_in["linked"] = json!(true);
    }
    if let (Some(out), Some(extra)) = (signed_in.as_object_mut(), detail.as_object()) {
        out.extend(extra.clone());
    }
    audit::record(
        &mut *tx,
        &actor,
        Action::OperatorSignedIn,
        None,
        None,
        signed_in,
    )
    .await?;
    tx.commit().await?;
    Ok(EntraSignedIn {
        operator,
        created,
        linked,
        previous_role,
    })
}

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
    sqlx::query!(
        "update operators set password_hash = $2 where email = $1",
        email as &str,
        hash_password(password),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The operator with `id`, as they are now (one lookup by primary key).
pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<Operator>, sqlx::Error> {
    sqlx::query_as!(
        Operator,
        r#"select id, email::text as "email!", role as "role: Role" from operators where id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// The operator signing in with `email`.
pub async fn find_by_email(db: &PgPool, email: &str) -> Result<Operator, OperatorError> {
    sqlx::query_as!(
        Operator,
        r#"select id, email::text as "email!", role as "role: Role" from operators where email = $1"#,
        email.trim() as &str,
    )
    .fetch_optional(db)
    .await?
    .ok_or(OperatorError::NotFound)
}

/// Every operator, by email, with their last sign-in and live session count.
pub async fn list(db: &PgPool) -> Result<Vec<OperatorSummary>, sqlx::Error> {
    sqlx::query_as!(
        OperatorSummary,
        r#"select o.id as "id: crate::types::OperatorId", o.email::text as "email!",
                  o.role as "role: Role", o.created_at,
                  o.last_login_at,
                  (select count(*) from sessions s
                   where s.operator_id = o.id and s.expires_at > now()) as "sessions!"
           from operators o order by o.email"#,
    )
    .fetch_all(db)
    .await
}

/// Gives operator `id` the role `role`. A demotion ends their sessions, so no page they have
/// open keeps admin buttons, and revokes their write tokens; the last admin cannot be demoted.
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
    sqlx::query!(
        "update operators set role = $2 where id = $1",
        id,
        role as Role
    )
    .execute(&mut *tx)
    .await?;
    if role == Role::Viewer {
        lost_admin(&mut tx, id, &current.email, actor).await?;
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

/// Removes operator `id`; their sessions and API tokens go with them, and they are blocked:
/// signing in with Entra ID does not make the account again until an admin restores it
/// ([`restore`]). The last admin cannot be removed.
pub async fn remove(db: &PgPool, id: Uuid, actor: &Actor) -> Result<Operator, OperatorError> {
    let mut tx = db.begin().await?;
    let removed = lock_checked(&mut tx, id, true).await?;
    api_tokens::revoke_owned(
        &mut tx,
        id,
        &removed.email,
        false,
        "its owner was removed",
        actor,
    )
    .await?;
    // Sessions cascade; invitations they created stay, without the link to them.
    let entra_object_id = sqlx::query_scalar!(
        "delete from operators where id = $1 returning entra_object_id",
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into operator_blocks (email, entra_object_id, role, blocked_by)
         values ($1, $2, $3, $4)
         on conflict (email) do update set entra_object_id = excluded.entra_object_id,
             role = excluded.role, blocked_at = now(), blocked_by = excluded.blocked_by",
        removed.email.as_str() as &str,
        entra_object_id,
        removed.role as Role,
        actor.to_string(),
    )
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

/// An operator removed by an admin, blocked until restored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemovedOperator {
    /// Their email.
    pub email: String,
    /// The role they had.
    pub role: Role,
    /// When they were removed.
    #[serde(with = "time::serde::rfc3339")]
    pub blocked_at: OffsetDateTime,
    /// Who removed them.
    pub blocked_by: String,
}

/// Every removed operator, most recently removed first.
pub async fn removed(db: &PgPool) -> Result<Vec<RemovedOperator>, sqlx::Error> {
    sqlx::query_as!(
        RemovedOperator,
        r#"select email::text as "email!", role as "role: Role", blocked_at, blocked_by
           from operator_blocks order by blocked_at desc"#,
    )
    .fetch_all(db)
    .await
}

/// Lets the removed operator `email` sign in again (with Entra ID, where the mapping decides
/// their role; a password account is added again with `add`). Audited.
pub async fn restore(db: &PgPool, email: &str, actor: &Actor) -> Result<(), OperatorError> {
    let mut tx = db.begin().await?;
    let email = sqlx::query_scalar!(
        r#"delete from operator_blocks where email = $1 returning email::text as "email!""#,
        email.trim() as &str,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(OperatorError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::OperatorRestored,
        None,
        None,
        json!({ "email": email }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
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
    let operator = sqlx::query_as!(
        Operator,
        r#"select id, email::text as "email!", role as "role: Role" from operators where id = $1"#,
        id
    )
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
    let admins = sqlx::query_scalar!("select id from operators where role = 'admin' for update")
        .fetch_all(&mut *tx)
        .await?;
    let operator = sqlx::query_as!(Operator, r#"select id, email::text as "email!", role as "role: Role" from operators where id = $1 for update"#, id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(OperatorError::NotFound)?;
    if losing_admin && operator.role == Role::Admin && admins == [id] {
        return Err(OperatorError::LastAdmin);
    }
    Ok(operator)
}

/// What an admin who becomes a viewer loses: their sessions and their write tokens.
async fn lost_admin(
    tx: &mut PgConnection,
    id: Uuid,
    email: &str,
    actor: &Actor,
) -> Result<(), sqlx::Error> {
    end_sessions_in(tx, id, None).await?;
    api_tokens::revoke_owned(
        tx,
        id,
        email,
        true,
        "its owner is no longer an admin",
        actor,
    )
    .await?;
    Ok(())
}

async fn end_sessions_in(
    tx: &mut PgConnection,
    id: Uuid,
    keep: Option<&[u8]>,
) -> Result<u64, sqlx::Error> {
    let ended = sqlx::query!(
        "delete from sessions where operator_id = $1 and ($2::bytea is null or id_sha256 <> $2)",
        id,
        keep,
    )
    .execute(&mut *tx)
    .await?;
    Ok(ended.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_wins_over_viewer_and_unmapped_is_none() {
        let (a, v, x) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (admin_roles, viewer_roles) = (
            vec!["Gangway.Admin".to_owned()],
            vec!["Gangway.Viewer".to_owned()],
        );
        let mapping = RoleMapping {
            admin_groups: &[a],
            viewer_groups: &[v],
            admin_roles: &admin_roles,
            viewer_roles: &viewer_roles,
        };
        let roles = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(mapping.role_for(&[v, a], &[]), Some(Role::Admin));
        assert_eq!(mapping.role_for(&[v], &[]), Some(Role::Viewer));
        assert_eq!(
            mapping.role_for(&[v], &roles(&["Gangway.Admin"])),
            Some(Role::Admin)
        );
        assert_eq!(
            mapping.role_for(&[], &roles(&["Gangway.Viewer"])),
            Some(Role::Viewer)
        );
        assert_eq!(
            mapping.role_for(&[x], &roles(&["gangway.admin", "Other"])),
            None
        );
        assert_eq!(mapping.role_for(&[], &[]), None);
        assert!(!mapping.is_empty());
        let none = RoleMapping {
            admin_groups: &[],
            viewer_groups: &[],
            admin_roles: &[],
            viewer_roles: &[],
        };
        assert!(none.is_empty());
        assert_eq!(none.role_for(&[a], &roles(&["Gangway.Admin"])), None);
    }
}
