//! Account links: per application, a directory user linked to the provider's own account id
//! (iPECS links each Entra account to one account of its own). The database holds one link per
//! user and one user per account id in each application; the tokens carry the linked id as
//! `account_id`, and an application may refuse users without a link.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::SigninError;
use crate::audit::{self, Action, Actor};

/// The longest account id accepted.
pub const MAX_ACCOUNT_ID_CHARS: usize = 200;

/// A directory user linked to an account of an application.
#[derive(Debug, Clone)]
pub struct Link {
    /// Gangway's id of the user's tenant.
    pub tenant_id: Uuid,
    /// Microsoft's id of it (the tokens' `tid`).
    pub entra_tenant_id: Uuid,
    /// The tenant's name.
    pub tenant_name: String,
    /// The user's object id (the tokens' `oid`).
    pub object_id: Uuid,
    /// The user's UPN, as the copy knows it.
    pub user_principal_name: Option<String>,
    /// The user's name, as the copy knows it.
    pub display_name: Option<String>,
    /// The provider's account id.
    pub account_id: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Who made it, as stored.
    pub created_by: String,
}

/// A directory user to link, as found in the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkedUser {
    /// Gangway's id of the tenant.
    pub tenant_id: Uuid,
    /// The user's object id.
    pub object_id: Uuid,
}

/// Why a link was not made or removed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The account id is empty, too long or holds control characters.
    #[error(
        "the account id must be 1 to {MAX_ACCOUNT_ID_CHARS} characters, without control characters"
    )]
    InvalidAccountId,
    /// The copy has no such user (or the tenant is not connected).
    #[error("no such user in the directory copy of a connected tenant")]
    UnknownUser,
    /// The user is already linked, to another account id.
    #[error("this user is already linked to account \u{201c}{0}\u{201d}: remove that link first")]
    UserLinked(String),
    /// Another user is linked to this account id.
    #[error("account \u{201c}{0}\u{201d} is already linked to another user")]
    AccountTaken(String),
    /// There is no such link, or no such application.
    #[error("no such link")]
    NotFound,
    /// Something failed that is not the caller's doing.
    #[error(transparent)]
    Internal(#[from] SigninError),
}

impl From<sqlx::Error> for LinkError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// An account id as given: trimmed, 1–[`MAX_ACCOUNT_ID_CHARS`] characters, no control
/// characters.
pub fn account_id(raw: &str) -> Result<String, LinkError> {
    let id = raw.trim();
    if id.is_empty()
        || id.chars().count() > MAX_ACCOUNT_ID_CHARS
        || id.chars().any(char::is_control)
    {
        return Err(LinkError::InvalidAccountId);
    }
    Ok(id.to_owned())
}

/// The user with object id `object_id` of the tenant Microsoft knows as `entra_tenant_id`, if
/// the copy has them (and has not seen them deleted).
pub async fn user_by_object_id(
    db: &PgPool,
    entra_tenant_id: Uuid,
    object_id: Uuid,
) -> Result<Option<LinkedUser>, SigninError> {
    Ok(sqlx::query_as!(
        LinkedUser,
        "select u.tenant_id, u.object_id from directory_users u join tenants t on t.id = u.tenant_id
         where t.entra_tenant_id = $1 and u.object_id = $2 and u.soft_deleted_at is null
           and t.status <> 'offboarded'",
        entra_tenant_id,
        object_id
    )
    .fetch_optional(db)
    .await?)
}

/// The user whose UPN (or object id) is `who` in any connected tenant's copy.
pub async fn find_user(db: &PgPool, who: &str) -> Result<Option<LinkedUser>, SigninError> {
    let who = who.trim();
    let by_id = Uuid::parse_str(who).ok();
    Ok(sqlx::query_as!(
        LinkedUser,
        "select u.tenant_id, u.object_id from directory_users u join tenants t on t.id = u.tenant_id
         where (u.object_id = $1 or lower(u.user_principal_name) = lower($2))
           and u.soft_deleted_at is null and t.status <> 'offboarded'
         order by u.last_seen_at desc limit 1",
        by_id,
        who
    )
    .fetch_optional(db)
    .await?)
}

/// Links `user` to `account` in application `application_id` and audits it. Linking a user
/// again to the same account changes nothing (`Ok(false)`); a new link is `Ok(true)`.
pub async fn link(
    db: &PgPool,
    application_id: Uuid,
    user: LinkedUser,
    account: &str,
    actor: &Actor,
) -> Result<bool, LinkError> {
    let account = account_id(account)?;
    let mut tx = db.begin().await?;
    let existing = sqlx::query_scalar!(
        "select account_id from signin_account_links
         where application_id = $1 and tenant_id = $2 and object_id = $3",
        application_id,
        user.tenant_id,
        user.object_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    match existing {
        Some(same) if same == account => return Ok(false),
        Some(other) => return Err(LinkError::UserLinked(other)),
        None => {}
    }
    let app = sqlx::query_scalar!(
        r#"select name::text as "name!" from signin_applications where id = $1"#,
        application_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(LinkError::NotFound)?;
    sqlx::query!(
        "insert into signin_account_links (application_id, tenant_id, object_id, account_id, created_by)
         values ($1, $2, $3, $4, $5)",
        application_id,
        user.tenant_id,
        user.object_id,
        account,
        actor.to_string(),
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) => match d.constraint() {
            Some("signin_account_links_account_key") => LinkError::AccountTaken(account.clone()),
            // A concurrent link of the same user got there first.
            Some("signin_account_links_user_key") => LinkError::UserLinked(account.clone()),
            _ => e.into(),
        },
        _ => e.into(),
    })?;
    audit::record(
        &mut *tx,
        actor,
        Action::SigninAccountLinked,
        None,
        Some(user.tenant_id),
        json!({ "application": app, "object_id": user.object_id, "account_id": account }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Removes `user`'s link in application `application_id` and audits it.
pub async fn unlink(
    db: &PgPool,
    application_id: Uuid,
    user: LinkedUser,
    actor: &Actor,
) -> Result<(), LinkError> {
    let mut tx = db.begin().await?;
    let gone = sqlx::query!(
        r#"delete from signin_account_links l using signin_applications a
           where l.application_id = $1 and l.tenant_id = $2 and l.object_id = $3
             and a.id = l.application_id
           returning l.account_id, a.name::text as "application!""#,
        application_id,
        user.tenant_id,
        user.object_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(LinkError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::SigninAccountUnlinked,
        None,
        Some(user.tenant_id),
        json!({ "application": gone.application, "object_id": user.object_id, "account_id": gone.account_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The account id `user` is linked to in application `application_id`, if any.
pub async fn account_of(
    db: &PgPool,
    application_id: Uuid,
    tenant_id: Uuid,
    object_id: Uuid,
) -> Result<Option<String>, SigninError> {
    Ok(sqlx::query_scalar!(
        "select account_id from signin_account_links
         where application_id = $1 and tenant_id = $2 and object_id = $3",
        application_id,
        tenant_id,
        object_id
    )
    .fetch_optional(db)
    .await?)
}

/// A checked query for [`Link`]s of application `$1`, then `$tail` with its arguments.
macro_rules! select_links {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Link,
            r#"select l.tenant_id, t.entra_tenant_id, t.display_name as tenant_name, l.object_id,
                      u.user_principal_name as "user_principal_name?",
                      u.display_name as "display_name?", l.account_id, l.created_at, l.created_by
               from signin_account_links l join tenants t on t.id = l.tenant_id
                 left join directory_users u
                   on u.tenant_id = l.tenant_id and u.object_id = l.object_id
               where l.application_id = $1"# + $tail
            $(, $arg)*
        )
    };
}

/// The link of `user` in application `application_id`.
pub async fn get(
    db: &PgPool,
    application_id: Uuid,
    user: LinkedUser,
) -> Result<Option<Link>, SigninError> {
    Ok(select_links!(
        " and l.tenant_id = $2 and l.object_id = $3",
        application_id,
        user.tenant_id,
        user.object_id
    )
    .fetch_optional(db)
    .await?)
}

/// A page of application `application_id`'s links, newest first, those whose account id, UPN
/// or name contains `search` (case-insensitive), with the total matching.
pub async fn list(
    db: &PgPool,
    application_id: Uuid,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Link>, i64), SigninError> {
    let pattern = search.map(crate::db::contains_pattern);
    let rows = select_links!(
        r" and ($2::text is null or l.account_id ilike $2 escape '\' or u.user_principal_name ilike $2 escape '\'
               or u.display_name ilike $2 escape '\')
           order by l.created_at desc, l.account_id limit $3 offset $4",
        application_id,
        pattern,
        limit,
        offset
    )
    .fetch_all(db)
    .await?;
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from signin_account_links l
             left join directory_users u on u.tenant_id = l.tenant_id and u.object_id = l.object_id
           where l.application_id = $1
             and ($2::text is null or l.account_id ilike $2 escape '\' or u.user_principal_name ilike $2 escape '\'
                  or u.display_name ilike $2 escape '\')"#,
        application_id,
        pattern
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

/// A page of application `application_id`'s links for the JSON API, by account id, after the
/// account id `after`.
pub async fn page_after(
    db: &PgPool,
    application_id: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Link>, SigninError> {
    Ok(select_links!(
        " and ($2::text is null or l.account_id > $2) order by l.account_id limit $3",
        application_id,
        after,
        limit
    )
    .fetch_all(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_trimmed_and_bounded() {
        assert_eq!(account_id("  ipecs-42 ").unwrap(), "ipecs-42");
        assert!(account_id("").is_err());
        assert!(account_id("   ").is_err());
        assert!(account_id("a\u{7}b").is_err());
        assert!(account_id(&"x".repeat(201)).is_err());
        assert!(account_id(&"x".repeat(200)).is_ok());
    }
}
