//! What Gangway asks of a customer's tenant, in Microsoft's names and in plain words.

/// One permission: its Microsoft Graph name, what it allows, and why the provider needs it.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    pub name: &'static str,
    pub plain: &'static str,
    pub why: &'static str,
}

/// Graph permissions the directory-sync profile needs, delegated or application alike.
pub const DIRECTORY_SYNC: &[Permission] = &[
    Permission {
        name: "User.Read.All",
        plain: "Read all users' full profiles",
        why: "to copy names, email addresses and phone numbers of your users into the provider's directory",
    },
    Permission {
        name: "Group.Read.All",
        plain: "Read all groups",
        why: "to copy your groups and who belongs to them",
    },
];

/// Sign-in scopes a delegated grant adds, explained the same way.
pub const DELEGATED_EXTRAS: &[Permission] = &[
    Permission {
        name: "openid profile",
        plain: "Sign you in and read your basic profile",
        why: "to confirm that a Global Administrator of your tenant is granting access",
    },
    Permission {
        name: "offline_access",
        plain: "Maintain access to data you have given it access to",
        why: "so the directory copy stays current without you signing in again",
    },
];

/// Graph scope names requested for the directory-sync profile.
pub fn graph_scopes() -> Vec<&'static str> {
    DIRECTORY_SYNC.iter().map(|p| p.name).collect()
}

/// Application permissions an app needs: the directory-sync ones plus `Organization.Read.All`,
/// with which Gangway confirms which tenant granted them.
pub fn application_scopes() -> Vec<&'static str> {
    let mut scopes = graph_scopes();
    scopes.push("Organization.Read.All");
    scopes
}
