//! Scope strings: OIDC scopes, Graph permissions (short or full URI), `.default`, and which
//! permissions need an administrator's consent.

use std::collections::BTreeSet;

/// Graph's resource URI, as scopes are written in full.
pub const GRAPH: &str = "https://graph.microsoft.com";
/// Graph's well-known application id, accepted as a resource too.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// The OIDC scopes that are not Graph permissions.
pub const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Graph permissions the emulator knows, with whether delegated use needs admin consent.
const KNOWN: &[(&str, bool)] = &[
    ("User.Read", false),
    ("User.ReadBasic.All", false),
    ("User.Read.All", true),
    ("User.ReadWrite.All", true),
    ("Directory.Read.All", true),
    ("Directory.ReadWrite.All", true),
    ("Group.Read.All", true),
    ("Group.ReadWrite.All", true),
    ("GroupMember.Read.All", true),
    ("Organization.Read.All", true),
    ("Application.Read.All", true),
    ("Mail.Read", false),
    ("Calendars.Read", false),
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
}

/// Parses one scope; `None` for anything the emulator does not know (AADSTS70011 / 65005).
pub fn parse(raw: &str) -> Option<Scope> {
    if let Some(s) = OIDC.iter().find(|s| s.eq_ignore_ascii_case(raw)) {
        return Some(Scope::Oidc(s));
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

fn strip_resource(raw: &str) -> Option<&str> {
    let lower = raw.to_ascii_lowercase();
    for prefix in [GRAPH, GRAPH_APP_ID] {
        if lower.starts_with(prefix) && raw[prefix.len()..].starts_with('/') {
            return Some(&raw[prefix.len() + 1..]);
        }
    }
    (!raw.contains('/') && !raw.contains(':')).then_some(raw)
}

/// The canonical spelling of a known Graph permission.
pub fn canonical(name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(k, _)| *k)
}

/// Whether a delegated permission needs an administrator's consent.
pub fn needs_admin(name: &str) -> bool {
    KNOWN
        .iter()
        .any(|(k, admin)| *admin && k.eq_ignore_ascii_case(name))
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
