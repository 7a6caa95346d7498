//! What Gangway asks of a customer's tenant, in Microsoft's names and in plain words, per
//! consent mode. The wizard, the invitation email and the app registrations all read this.

use crate::types::ConsentMode;

/// One permission: its Microsoft Graph name, what it allows, and why the provider needs it.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    /// The Graph permission, e.g. `User.Read.All`.
    pub name: &'static str,
    /// What it allows, in plain words.
    pub plain: &'static str,
    /// Why the provider needs it.
    pub why: &'static str,
}

/// Graph permissions directory sync needs, delegated or application alike.
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

/// Delegated sign-ins also ask for `User.Read`: it lets the admin's token read `/organization`
/// (name and verified domains), which `User.Read.All` alone does not.
pub const USER_READ: Permission = Permission {
    name: "User.Read",
    plain: "Read your organisation's name and domains through your sign-in",
    why: "to confirm which organisation you signed in to",
};

/// App-only tokens read `/organization` with this; Graph refuses it otherwise.
pub const ORGANIZATION_READ: Permission = Permission {
    name: "Organization.Read.All",
    plain: "Read your organisation's name and verified domains",
    why: "to confirm which organisation gave consent",
};

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

/// What the admin is asked to grant in `mode`, in plain words.
pub fn for_mode(mode: ConsentMode) -> Vec<Permission> {
    let mut list = DIRECTORY_SYNC.to_vec();
    match mode {
        ConsentMode::Delegated => {
            list.push(USER_READ);
            list.extend_from_slice(DELEGATED_EXTRAS);
        }
        ConsentMode::Application | ConsentMode::CustomerApp => list.push(ORGANIZATION_READ),
    }
    list
}

/// The Graph scopes a delegated sign-in asks for (the OpenID ones are added by the client).
pub fn delegated_scopes() -> Vec<&'static str> {
    DIRECTORY_SYNC
        .iter()
        .chain([&USER_READ])
        .map(|p| p.name)
        .collect()
}

/// The application permissions an app registration needs.
pub fn application_scopes() -> Vec<&'static str> {
    DIRECTORY_SYNC
        .iter()
        .chain([&ORGANIZATION_READ])
        .map(|p| p.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_asks_for_sync_and_for_a_way_to_read_the_organisation() {
        let names = |mode| for_mode(mode).iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(
            delegated_scopes(),
            ["User.Read.All", "Group.Read.All", "User.Read"]
        );
        assert_eq!(
            application_scopes(),
            ["User.Read.All", "Group.Read.All", "Organization.Read.All"]
        );
        assert!(names(ConsentMode::Delegated).contains(&"offline_access"));
        assert!(!names(ConsentMode::CustomerApp).contains(&"offline_access"));
        assert!(names(ConsentMode::Application).contains(&"Organization.Read.All"));
    }
}
