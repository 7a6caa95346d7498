//! Scope strings: OIDC scopes, Graph permissions (short or full URI), `.default`, and which
//! permissions need an administrator's consent.

use std::collections::BTreeSet;

/// Graph's resource URI, as scopes are written in full.
pub const GRAPH: &str = "https://graph.microsoft.com";
/// Graph's well-known application id, accepted as a resource too.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// The OIDC scopes that are not Graph permissions.
pub const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Microsoft Graph's ids of the OIDC scopes as delegated permissions: a registration requests
/// them in `requiredResourceAccess` like any Graph permission (Graph permissions reference).
const OIDC_IDS: [(&str, &str); 4] = [
    ("openid", "37f7f235-527c-4136-accd-4a02d197296e"),
    ("profile", "14dad69e-099b-42c9-810b-d002981feec1"),
    ("email", "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0"),
    ("offline_access", "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"),
];

/// A Graph permission the emulator knows.
struct Known {
    /// Canonical name.
    name: &'static str,
    /// Whether delegated use needs an administrator's consent.
    admin: bool,
    /// Microsoft's id of the delegated permission (`Scope` in `requiredResourceAccess`), where
    /// one exists.
    scope_id: Option<&'static str>,
    /// Microsoft's id of the application permission (`Role`), where one exists.
    role_id: Option<&'static str>,
}

const fn known(
    name: &'static str,
    admin: bool,
    scope_id: &'static str,
    role_id: Option<&'static str>,
) -> Known {
    Known {
        name,
        admin,
        scope_id: Some(scope_id),
        role_id,
    }
}

/// Graph permissions the emulator knows, with Microsoft's permission ids.
const KNOWN: &[Known] = &[
    known(
        "User.Read",
        false,
        "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
        None,
    ),
    known(
        "User.ReadBasic.All",
        false,
        "b340eb25-3456-403f-be2f-af7a0d370277",
        Some("97235f07-e226-4f63-ace3-39588e11d3a1"),
    ),
    known(
        "User.Read.All",
        true,
        "a154be20-db9c-4678-8ab7-66f6cc099a59",
        Some("df021288-bdef-4463-88db-98f22de89214"),
    ),
    known(
        "User.ReadWrite.All",
        true,
        "204e0828-b5ca-4ad8-b9f3-f32a958e7cc4",
        Some("741f803b-c850-494e-b5df-cde7c675a1ca"),
    ),
    known(
        "Directory.Read.All",
        true,
        "06da0dbc-49e2-44d2-8312-53f166ab848a",
        Some("7ab1d382-f21e-4acd-a863-ba3e13f7da61"),
    ),
    known(
        "Directory.ReadWrite.All",
        true,
        "c5366453-9fb0-48a5-a156-24f0c49a4b84",
        Some("19dbc75e-c2e2-444c-a770-ec69d8559fc7"),
    ),
    known(
        "Group.Read.All",
        true,
        "5f8c59db-677d-491f-a6b8-5f174b11ec1d",
        Some("5b567255-7703-4780-807c-7be8301ae99b"),
    ),
    known(
        "Group.ReadWrite.All",
        true,
        "4e46008b-f24c-477d-8fff-7bb4ec7aafe0",
        Some("62a82d76-70ea-41e2-9197-370581804d09"),
    ),
    known(
        "GroupMember.Read.All",
        true,
        "bc024368-1153-4739-b217-4326f2e966d0",
        Some("98830695-27a2-44f7-8c18-0c3ebc9698f6"),
    ),
    known(
        "Organization.Read.All",
        true,
        "4908d5b9-3fb2-4b1e-9336-1888b7937185",
        Some("498476ce-e0fe-48b0-b801-37ba7e2685c6"),
    ),
    known(
        "Organization.ReadWrite.All",
        true,
        "46ca0847-7e6b-426e-9775-ea810a948356",
        Some("292d869f-3427-49a8-9dab-8c70152b74e9"),
    ),
    known(
        "Application.Read.All",
        true,
        "c79f8feb-a9db-4090-85f9-90d820caa0eb",
        Some("9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"),
    ),
    known(
        "Application.ReadWrite.All",
        true,
        "bdfbf15f-ee85-4955-8675-146e8e5296b5",
        Some("1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9"),
    ),
    // Application permission only: manage the apps the caller owns.
    Known {
        name: "Application.ReadWrite.OwnedBy",
        admin: true,
        scope_id: None,
        role_id: Some("18a4783c-866b-4cc7-a460-3d5e5662c884"),
    },
    known(
        "AppRoleAssignment.ReadWrite.All",
        true,
        "84bccea3-f856-4a8a-967b-dbe0a3d53a64",
        Some("06b708a9-e830-4db3-a914-8e69da51d44f"),
    ),
    known(
        "RoleManagement.Read.Directory",
        true,
        "741c54c3-0c1e-44a1-818b-3f97ab4e8c83",
        Some("483bed4a-2ad3-4361-a73b-c83ccdbdc53c"),
    ),
    known(
        "Mail.Read",
        false,
        "570282fd-fa5c-430d-a7fd-fc8dc98a9dca",
        Some("810c84a8-4a9e-49e6-bf7d-12d183f40d01"),
    ),
    known(
        "Calendars.Read",
        false,
        "465a38f9-76ea-45b9-9f34-9e8b0d4b0b42",
        Some("798ee544-9d2d-430c-a058-570e29e34338"),
    ),
];

/// One requested scope after parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// openid, profile, email or offline_access.
    Oidc(&'static str),
    /// A Graph permission in its canonical short form.
    Graph(&'static str),
    /// `https://graph.microsoft.com/.default`.
    GraphDefault,
    /// A scope of an API an app exposes, in full: `api://{id}/Gangway.Manage`. Whether the
    /// resource exposes it is checked when a token is issued.
    Api(String),
}

/// Parses one scope; `None` for anything the emulator does not know (AADSTS70011 / 65005).
pub fn parse(raw: &str) -> Option<Scope> {
    if let Some(s) = OIDC.iter().find(|s| s.eq_ignore_ascii_case(raw)) {
        return Some(Scope::Oidc(s));
    }
    if is_api_scope(raw) {
        return Some(Scope::Api(raw.to_string()));
    }
    let short = strip_resource(raw)?;
    if short == ".default" {
        return Some(Scope::GraphDefault);
    }
    canonical(short).map(Scope::Graph)
}

/// Parses a space-separated scope parameter.
pub fn parse_all(raw: &str) -> Result<Vec<Scope>, String> {
    raw.split_whitespace()
        .map(|s| parse(s).ok_or_else(|| s.to_string()))
        .collect()
}

/// Whether `raw` names a scope of an exposed API (`api://…/value`).
pub fn is_api_scope(raw: &str) -> bool {
    raw.get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("api://"))
        && raw[6..]
            .rsplit_once('/')
            .is_some_and(|(r, v)| !r.is_empty() && !v.is_empty())
}

fn strip_resource(raw: &str) -> Option<&str> {
    let lower = raw.to_ascii_lowercase();
    for prefix in [GRAPH, GRAPH_APP_ID] {
        if lower.starts_with(prefix) && raw[prefix.len()..].starts_with('/') {
            return Some(&raw[prefix.len() + 1..]);
        }
    }
    (!raw.contains('/') && !raw.contains(':')).then_some(raw)
}

fn lookup(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// The canonical spelling of a known Graph permission.
pub fn canonical(name: &str) -> Option<&'static str> {
    lookup(name).map(|k| k.name)
}

/// Whether a delegated permission needs an administrator's consent.
pub fn needs_admin(name: &str) -> bool {
    lookup(name).is_some_and(|k| k.admin)
}

/// Microsoft's id of a delegated Graph permission, OIDC scopes included.
pub fn scope_id(name: &str) -> Option<&'static str> {
    lookup(name).and_then(|k| k.scope_id).or_else(|| {
        OIDC_IDS
            .iter()
            .find(|(oidc, _)| oidc.eq_ignore_ascii_case(name))
            .map(|(_, id)| *id)
    })
}

/// Microsoft's id of an application Graph permission (app role).
pub fn role_id(name: &str) -> Option<&'static str> {
    lookup(name).and_then(|k| k.role_id)
}

/// The Graph permission whose delegated (`Scope`) or application (`Role`) id is `id`, as
/// `requiredResourceAccess` names it.
pub fn by_id(id: &str, role: bool) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|k| {
            let known = if role { k.role_id } else { k.scope_id };
            known.is_some_and(|k| k.eq_ignore_ascii_case(id))
        })
        .map(|k| k.name)
        .or_else(|| {
            OIDC_IDS
                .iter()
                .find(|(_, oidc)| !role && oidc.eq_ignore_ascii_case(id))
                .map(|(name, _)| *name)
        })
}

/// Full URI of a Graph permission, as Microsoft writes granted scopes.
pub fn full(name: &str) -> String {
    format!("{GRAPH}/{name}")
}

/// Whether `granted` includes any of `allowed`.
pub fn any_of(granted: &BTreeSet<String>, allowed: &[&str]) -> bool {
    allowed.iter().any(|a| granted.contains(*a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_names_parse_to_the_same_permission() {
        assert_eq!(parse("user.read.all"), Some(Scope::Graph("User.Read.All")));
        assert_eq!(
            parse("https://graph.microsoft.com/User.Read.All"),
            Some(Scope::Graph("User.Read.All"))
        );
        assert_eq!(
            parse("00000003-0000-0000-c000-000000000000/.default"),
            Some(Scope::GraphDefault)
        );
        assert_eq!(parse("offline_access"), Some(Scope::Oidc("offline_access")));
        assert_eq!(parse("https://outlook.office.com/Mail.Read"), None);
        assert_eq!(parse("Coffee.Make"), None);
    }

    #[test]
    fn permission_ids_are_microsofts() {
        assert_eq!(
            role_id("user.read.all"),
            Some("df021288-bdef-4463-88db-98f22de89214")
        );
        assert_eq!(
            scope_id("User.Read"),
            Some("e1fe6dd8-ba31-4d61-89e7-88639da4683d")
        );
        assert_eq!(role_id("User.Read"), None, "User.Read is delegated only");
        assert_eq!(
            scope_id("openid"),
            Some("37f7f235-527c-4136-accd-4a02d197296e")
        );
        assert_eq!(role_id("openid"), None, "OIDC scopes are delegated only");
    }

    #[test]
    fn admin_only_permissions() {
        assert!(
            needs_admin("User.Read.All")
                && needs_admin("Directory.Read.All")
                && needs_admin("Group.Read.All")
        );
        assert!(
            !needs_admin("User.Read")
                && !needs_admin("User.ReadBasic.All")
                && !needs_admin("openid")
        );
    }
}
