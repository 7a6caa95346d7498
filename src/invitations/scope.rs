//! A sync scope chosen on an invitation: the operator narrows what the provider will copy of a
//! tenant before it is connected, and the customer's admin reads it on the wizard's review
//! page before consenting.
//!
//! Before consent the tenant's groups are not in the copy, so an invitation keeps them as the
//! operator named them (display names or object ids). At consent the tenant takes the scope
//! with the names pending (a re-consent invitation sets none, so a connected tenant keeps its
//! own); the directory resolves them after a full round (`directory::invited_scope`).

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};

/// The most groups an invitation may name.
pub const MAX_GROUPS: usize = 50;
/// The longest group name (Entra ID's `displayName` holds at most 256 characters).
pub const MAX_NAME_CHARS: usize = 256;

/// A scope an invitation sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitedScope {
    /// The members of these groups (display names or object ids), at any depth.
    Groups(Vec<String>),
    /// The users and groups assigned to the provider's enterprise app.
    AppAssignments,
}

impl InvitedScope {
    /// Reads a scope as an operator gives it: kind `all` (or nothing) sets none; `groups`
    /// needs 1 to [`MAX_GROUPS`] names (blank ones dropped, repeats once) of at most
    /// [`MAX_NAME_CHARS`] characters, without control characters. The error is a sentence.
    pub fn parse(kind: &str, groups: &[String]) -> Result<Option<Self>, String> {
        let kind = kind.trim();
        if kind.is_empty() {
            return Ok(None);
        }
        match kind {
            "all" => Ok(None),
            "app_assignments" => Ok(Some(Self::AppAssignments)),
            "groups" => Ok(Some(Self::Groups(names(groups)?))),
            _ => Err(format!(
                "`{kind}` is not a sync scope: choose all, groups or app_assignments."
            )),
        }
    }

    /// The scope stored on an invitation (`None` for none).
    pub fn stored(kind: Option<&str>, groups: &[String]) -> Option<Self> {
        match kind? {
            "groups" => Some(Self::Groups(groups.to_vec())),
            "app_assignments" => Some(Self::AppAssignments),
            _ => None,
        }
    }

    /// Its kind as stored (and as a tenant's `sync_scope` names it).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Groups(_) => "groups",
            Self::AppAssignments => "app_assignments",
        }
    }

    /// The groups it names (none for the app-assignment kind).
    pub fn groups(&self) -> &[String] {
        match self {
            Self::Groups(names) => names,
            Self::AppAssignments => &[],
        }
    }

    /// What it is, for operators.
    pub fn described(&self) -> String {
        match self {
            Self::Groups(names) => format!(
                "Members of {} (and of groups nested in them)",
                names.join(", ")
            ),
            Self::AppAssignments => {
                "People and groups assigned to the app (and those groups' members)".into()
            }
        }
    }

    /// What the customer's admin is told the provider will copy.
    pub fn told_to_customer(&self, provider: &str) -> String {
        match self {
            Self::Groups(names) => format!(
                "{provider} will copy only the members of: {} — and of groups nested in them.",
                names.join(", ")
            ),
            Self::AppAssignments => format!(
                "{provider} will copy only the people and groups assigned to {provider}'s application in your organisation (Enterprise applications › Users and groups in the Microsoft Entra admin center), and the members of those groups."
            ),
        }
    }
}

/// The names of a group scope, checked.
fn names(groups: &[String]) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for name in groups.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(format!(
                "A group name has at most {MAX_NAME_CHARS} characters."
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("A group name cannot hold control characters.".into());
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    if names.is_empty() {
        return Err("Name at least one group (its display name or object id).".into());
    }
    if names.len() > MAX_GROUPS {
        return Err(format!("Name at most {MAX_GROUPS} groups."));
    }
    Ok(names)
}

/// In the consent's transaction: gives tenant `tenant` the scope `invited` (if the invitation
/// `invitation` set one), with its groups pending; audited as [`Action::TenantScopeChanged`].
/// The end of the sync the consent queues applies it (a new tenant's copy is empty until
/// then) and resolves the groups.
pub async fn apply_at_consent(
    tx: &mut PgConnection,
    invitation: Uuid,
    tenant: Uuid,
    invited: Option<&InvitedScope>,
    actor: &Actor,
) -> Result<(), sqlx::Error> {
    let Some(invited) = invited else {
        return Ok(());
    };
    let kind = invited.as_str();
    let old = sqlx::query_scalar!(
        "select sync_scope from tenants where id = $1 for update",
        tenant
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "delete from sync_scope_principals where tenant_id = $1 and source = 'chosen'",
        tenant
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("delete from sync_scope_names where tenant_id = $1", tenant)
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "insert into sync_scope_names (tenant_id, name) select $1, unnest($2::text[])",
        tenant,
        invited.groups(),
    )
    .execute(&mut *tx)
    .await?;
    // Assignments read for another kind may be stale: read again before applying.
    sqlx::query!(
        "update tenants set sync_scope = $2,
                scope_assignments_read_at = case when sync_scope = $2 then scope_assignments_read_at end
         where id = $1",
        tenant,
        kind,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::TenantScopeChanged,
        Some(invitation),
        Some(tenant),
        json!({
            "from": old, "to": kind, "groups_named": invited.groups(),
        }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn invitations_name_groups_within_bounds() {
        assert_eq!(InvitedScope::parse("", &[]), Ok(None));
        assert_eq!(InvitedScope::parse("all", &strings(&["Sales"])), Ok(None));
        assert_eq!(
            InvitedScope::parse("app_assignments", &[]),
            Ok(Some(InvitedScope::AppAssignments))
        );
        assert_eq!(
            InvitedScope::parse("groups", &strings(&[" Sales ", "", "Support", "Sales"])),
            Ok(Some(InvitedScope::Groups(strings(&["Sales", "Support"]))))
        );
        let too_many: Vec<String> = (0..=MAX_GROUPS).map(|i| format!("g{i}")).collect();
        for (kind, groups) in [
            ("groups", vec![]),
            ("groups", strings(&["  "])),
            ("groups", vec!["x".repeat(MAX_NAME_CHARS + 1)]),
            ("groups", strings(&["Sa\nles"])),
            ("groups", too_many),
            ("some", vec![]),
        ] {
            let e = InvitedScope::parse(kind, &groups).unwrap_err();
            assert!(e.ends_with('.'), "{e}");
        }
    }

    #[test]
    fn the_customer_reads_what_will_be_copied() {
        let groups = InvitedScope::Groups(strings(&["Sales", "Support"]));
        assert_eq!(
            groups.told_to_customer("Northwind"),
            "Northwind will copy only the members of: Sales, Support — and of groups nested in them."
        );
        assert!(
            InvitedScope::AppAssignments
                .told_to_customer("Northwind")
                .contains("assigned to Northwind's application")
        );
    }
}
