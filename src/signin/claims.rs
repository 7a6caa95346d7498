//! What Gangway says about a signed-in user, from the directory copy: whether they may sign in
//! at all ([`standing`]) and the claims of their tokens ([`for_session`]).
//!
//! `groups` are names, transitive where the copy knows nesting (a group in a group counts),
//! with no overage cut-off at 200 as Entra ID has; the bound is [`MAX_GROUPS`] names, sorted,
//! past which the list is cut and `groups_truncated` is `true`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::AdditionalClaims;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sessions::SigninSession;
use super::{Application, GroupsClaim, SigninError};
use crate::crypto::sha256;

/// The most group names one token carries.
pub const MAX_GROUPS: usize = 1_000;

/// A user as the copy holds them.
#[derive(Debug, Clone, Default)]
pub struct DirectoryUser {
    /// `userPrincipalName`.
    pub user_principal_name: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `givenName`.
    pub given_name: Option<String>,
    /// `surname`.
    pub surname: Option<String>,
    /// `mail`.
    pub mail: Option<String>,
}

/// Where a user stands in the copy.
#[derive(Debug, Clone)]
pub enum Standing {
    /// In the copy, enabled, not deleted.
    Present(DirectoryUser),
    /// Not in the copy, but the first full round of the tenant's users has not finished: the
    /// copy cannot know yet. Admitted on Microsoft's word (it just signed them in, which it
    /// does only for enabled accounts), with the ID token's name and no groups or roles; only
    /// where the tenant's sync scope is everyone.
    NotYetCopied,
    /// Not in the copy, whose users are complete: not a member of the directory (anymore).
    Unknown,
    /// `accountEnabled` is false.
    Disabled,
    /// In Entra ID's recycle bin.
    Deleted,
    /// Outside the tenant's sync scope (or, in a scoped tenant, not copied yet, so not known to
    /// be in it): the provider serves only the people the scope holds, as Entra ID refuses a
    /// user not assigned to an app that requires assignment (AADSTS50105).
    OutOfScope,
}

/// Where user `object_id` of tenant `tenant_id` (Gangway's id) stands.
pub async fn standing(
    db: &PgPool,
    tenant_id: Uuid,
    object_id: Uuid,
) -> Result<Standing, SigninError> {
    let row = sqlx::query!(
        "select user_principal_name, display_name, given_name, surname, mail, account_enabled,
                soft_deleted_at, in_scope
         from directory_users where tenant_id = $1 and object_id = $2",
        tenant_id,
        object_id
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        let tenant = sqlx::query!(
            r#"select exists (select 1 from sync_state
                              where tenant_id = $1 and resource = 'users'
                                and last_round_at is not null) as "copied!",
                      coalesce((select sync_scope = 'all' from tenants where id = $1), true) as "everyone!""#,
            tenant_id
        )
        .fetch_one(db)
        .await?;
        return Ok(match (tenant.copied, tenant.everyone) {
            (true, _) => Standing::Unknown,
            (false, true) => Standing::NotYetCopied,
            (false, false) => Standing::OutOfScope,
        });
    };
    if row.soft_deleted_at.is_some() {
        return Ok(Standing::Deleted);
    }
    if row.account_enabled == Some(false) {
        return Ok(Standing::Disabled);
    }
    if !row.in_scope {
        return Ok(Standing::OutOfScope);
    }
    Ok(Standing::Present(DirectoryUser {
        user_principal_name: row.user_principal_name,
        display_name: row.display_name,
        given_name: row.given_name,
        surname: row.surname,
        mail: row.mail,
    }))
}

/// The claims beyond OpenID's standard ones that Gangway's ID tokens and userinfo carry.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GangwayClaims {
    /// The user's Entra tenant id.
    pub tid: String,
    /// The user's object id in it.
    pub oid: String,
    /// The customer's Gangway id.
    pub org_id: String,
    /// The customer's name.
    pub org_name: String,
    /// Group names, when the application asks for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Present and true when more groups than [`MAX_GROUPS`] were cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub groups_truncated: bool,
    /// Roles from the application's group → role mapping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The provider's account id the user is linked to in this application ([`super::links`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Gangway's session id (ID tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}
impl AdditionalClaims for GangwayClaims {}

/// Everything a token says about a user.
#[derive(Debug, Clone)]
pub struct UserClaims {
    /// `sub`.
    pub sub: String,
    /// `email`, from the copy's `mail`.
    pub email: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `given_name`.
    pub given_name: Option<String>,
    /// `family_name`.
    pub family_name: Option<String>,
    /// `preferred_username`: the UPN.
    pub preferred_username: Option<String>,
    /// When Microsoft authenticated the user.
    pub auth_time: OffsetDateTime,
    /// How, as Microsoft said.
    pub amr: Vec<String>,
    /// Gangway's own claims.
    pub extra: GangwayClaims,
}

/// The `sub` of user `oid` of tenant `tid` for `app`: `{tid}:{oid}` everywhere, or a pairwise
/// value (a hash with the client id) when the application asked for one.
pub fn subject(app: &Application, tid: Uuid, oid: Uuid) -> String {
    if app.pairwise_subject {
        let digest = sha256(format!("{}\n{tid}\n{oid}", app.client_id).as_bytes());
        URL_SAFE_NO_PAD.encode(digest)
    } else {
        format!("{tid}:{oid}")
    }
}

/// The user's groups' names, transitive (nesting followed, cycles harmless), sorted, at most
/// [`MAX_GROUPS`] + 1 (to tell that some were cut).
async fn group_names(
    db: &PgPool,
    tenant_id: Uuid,
    object_id: Uuid,
) -> Result<Vec<String>, SigninError> {
    Ok(sqlx::query_scalar!(
        r#"with recursive member_of(id) as (
               select group_id from directory_group_members where tenant_id = $1 and member_id = $2
               union
               select m.group_id from directory_group_members m join member_of g on m.member_id = g.id
               where m.tenant_id = $1
           )
           select g.display_name as "name!" from member_of join directory_groups g
             on g.tenant_id = $1 and g.object_id = member_of.id
           where g.soft_deleted_at is null and g.in_scope and g.display_name is not null
           order by 1 limit $3"#,
        tenant_id,
        object_id,
        (MAX_GROUPS + 1) as i64,
    )
    .fetch_all(db)
    .await?)
}

/// The claims for the user of `session` signing in to `app`.
pub async fn for_session(
    db: &PgPool,
    app: &Application,
    session: &SigninSession,
) -> Result<UserClaims, SigninError> {
    let org = sqlx::query!(
        r#"select t.entra_tenant_id, c.id as customer_id, c.name::text as "customer_name!",
                  s.username
           from tenants t join customers c on c.id = t.customer_id
             join signin_sessions s on s.id = $2
           where t.id = $1"#,
        session.tenant_id,
        session.id
    )
    .fetch_one(db)
    .await?;
    let user = match standing(db, session.tenant_id, session.object_id).await? {
        Standing::Present(user) => user,
        _ => DirectoryUser {
            user_principal_name: Some(org.username.clone()),
            ..DirectoryUser::default()
        },
    };
    let mut all_groups = group_names(db, session.tenant_id, session.object_id).await?;
    let truncated = all_groups.len() > MAX_GROUPS;
    all_groups.truncate(MAX_GROUPS);
    let mut roles: Vec<String> = app
        .role_mapping
        .iter()
        .filter(|(group, _)| all_groups.iter().any(|g| g.eq_ignore_ascii_case(group)))
        .map(|(_, role)| role.clone())
        .collect();
    roles.sort();
    roles.dedup();
    let groups = match &app.groups {
        GroupsClaim::None => None,
        GroupsClaim::All => Some(all_groups),
        GroupsClaim::Filter(prefix) => {
            let prefix = prefix.to_lowercase();
            Some(
                all_groups
                    .into_iter()
                    .filter(|g| g.to_lowercase().starts_with(&prefix))
                    .collect(),
            )
        }
    };
    Ok(UserClaims {
        sub: subject(app, org.entra_tenant_id, session.object_id),
        email: user.mail,
        name: user.display_name,
        given_name: user.given_name,
        family_name: user.surname,
        preferred_username: user.user_principal_name,
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        extra: GangwayClaims {
            tid: org.entra_tenant_id.to_string(),
            oid: session.object_id.to_string(),
            org_id: org.customer_id.to_string(),
            org_name: org.customer_name,
            groups_truncated: truncated && groups.is_some(),
            groups,
            roles,
            account_id: super::links::account_of(db, app.id, session.tenant_id, session.object_id)
                .await?,
            sid: Some(session.sid.clone()),
        },
    })
}
