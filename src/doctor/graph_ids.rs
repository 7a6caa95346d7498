//! Microsoft's ids of the Microsoft Graph permissions Gangway knows: an app registration's
//! `requiredResourceAccess` names permissions by these ids, profiles by their names.

/// Microsoft Graph's application id, the `resourceAppId` of its permissions.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// One Graph permission: its name, the id of its delegated form (`Scope`) and of its
/// application form (`Role`), where each exists.
struct Known {
    name: &'static str,
    scope: Option<&'static str>,
    role: Option<&'static str>,
}

const fn known(name: &'static str, scope: &'static str, role: &'static str) -> Known {
    Known {
        name,
        scope: Some(scope),
        role: Some(role),
    }
}

/// From Microsoft's Graph permissions reference. A name missing here is reported as
/// "cannot verify", never as missing.
const KNOWN: &[Known] = &[
    // OpenID Connect's scopes, delegated only: what a user's sign-in asks.
    Known {
        name: "openid",
        scope: Some("37f7f235-527c-4136-accd-4a02d197296e"),
        role: None,
    },
    Known {
        name: "profile",
        scope: Some("14dad69e-099b-42c9-810b-d002981feec1"),
        role: None,
    },
    Known {
        name: "email",
        scope: Some("64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0"),
        role: None,
    },
    Known {
        name: "User.Read",
        scope: Some("e1fe6dd8-ba31-4d61-89e7-88639da4683d"),
        role: None,
    },
    known(
        "User.ReadBasic.All",
        "b340eb25-3456-403f-be2f-af7a0d370277",
        "97235f07-e226-4f63-ace3-39588e11d3a1",
    ),
    known(
        "User.Read.All",
        "a154be20-db9c-4678-8ab7-66f6cc099a59",
        "df021288-bdef-4463-88db-98f22de89214",
    ),
    known(
        "User.ReadWrite.All",
        "204e0828-b5ca-4ad8-b9f3-f32a958e7cc4",
        "741f803b-c850-494e-b5df-cde7c675a1ca",
    ),
    known(
        "Group.Read.All",
        "5f8c59db-677d-491f-a6b8-5f174b11ec1d",
        "5b567255-7703-4780-807c-7be8301ae99b",
    ),
    known(
        "Group.ReadWrite.All",
        "4e46008b-f24c-477d-8fff-7bb4ec7aafe0",
        "62a82d76-70ea-41e2-9197-370581804d09",
    ),
    known(
        "GroupMember.Read.All",
        "bc024368-1153-4739-b217-4326f2e966d0",
        "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    ),
    known(
        "Directory.Read.All",
        "06da0dbc-49e2-44d2-8312-53f166ab848a",
        "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    ),
    known(
        "Directory.ReadWrite.All",
        "c5366453-9fb0-48a5-a156-24f0c49a4b84",
        "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
    ),
    known(
        "Organization.Read.All",
        "4908d5b9-3fb2-4b1e-9336-1888b7937185",
        "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    ),
    known(
        "Organization.ReadWrite.All",
        "46ca0847-7e6b-426e-9775-ea810a948356",
        "292d869f-3427-49a8-9dab-8c70152b74e9",
    ),
    known(
        "Application.Read.All",
        "c79f8feb-a9db-4090-85f9-90d820caa0eb",
        "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    ),
    known(
        "Application.ReadWrite.All",
        "bdfbf15f-ee85-4955-8675-146e8e5296b5",
        "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    ),
    // Application only: manage the apps the caller owns (secret rotation).
    Known {
        name: "Application.ReadWrite.OwnedBy",
        scope: None,
        role: Some("18a4783c-866b-4cc7-a460-3d5e5662c884"),
    },
    known(
        "AppCatalog.Read.All",
        "88e58d74-d3df-44f3-ad47-e89edf4472e4",
        "e12dae10-5a57-4817-b79d-dfbec5348930",
    ),
    known(
        "AppCatalog.ReadWrite.All",
        "1ca167d5-1655-44a1-8adf-1414072e1ef9",
        "dc149144-f292-421e-b185-5953f2e98d7f",
    ),
    Known {
        name: "Presence.Read",
        scope: Some("76bc735e-aecd-4a1d-8b4c-2b915deabb79"),
        role: None,
    },
    known(
        "Presence.Read.All",
        "9c7a330d-35b3-4aa1-963d-cb2b9f927841",
        "a70e0c2d-e793-494c-94c4-118fa0a67f42",
    ),
    known(
        "Team.ReadBasic.All",
        "485be79e-c497-4b35-9400-0e3fa7f2a5d4",
        "2280dda6-0bfd-44ee-a2f4-cb867cfc4c1e",
    ),
    known(
        "Mail.Read",
        "570282fd-fa5c-430d-a7fd-fc8dc98a9dca",
        "810c84a8-4a9e-49e6-bf7d-12d183f40d01",
    ),
    known(
        "Calendars.Read",
        "465a38f9-76ea-45b9-9f34-9e8b0d4b0b42",
        "798ee544-9d2d-430c-a058-570e29e34338",
    ),
];

/// How a permission is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// On behalf of a signed-in user: `Scope` in `requiredResourceAccess`.
    Delegated,
    /// As the app itself: `Role`.
    Application,
}

impl Kind {
    /// `requiredResourceAccess[].resourceAccess[].type`.
    pub fn access_type(self) -> &'static str {
        match self {
            Self::Delegated => "Scope",
            Self::Application => "Role",
        }
    }

    /// As the Entra admin center names the kind.
    pub fn label(self) -> &'static str {
        match self {
            Self::Delegated => "delegated",
            Self::Application => "application",
        }
    }
}

/// What Gangway knows about a permission of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Microsoft's id of it, and its name as Microsoft spells it.
    Id(&'static str, &'static str),
    /// Known, but Microsoft offers it only in the other kind (`User.Read` has no application
    /// form).
    NoSuchKind(&'static str),
    /// Not in Gangway's table.
    Unknown,
}

/// Microsoft's id of permission `name` (any case) used as `kind`.
pub fn lookup(name: &str, kind: Kind) -> Lookup {
    let Some(k) = KNOWN
        .iter()
        .find(|k| k.name.eq_ignore_ascii_case(name.trim()))
    else {
        return Lookup::Unknown;
    };
    let id = match kind {
        Kind::Delegated => k.scope,
        Kind::Application => k.role,
    };
    match id {
        Some(id) => Lookup::Id(id, k.name),
        None => Lookup::NoSuchKind(k.name),
    }
}

/// The permission Microsoft's `id` stands for in `kind`, if Gangway knows it.
pub fn name_of(id: &str, kind: Kind) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|k| {
            let own = match kind {
                Kind::Delegated => k.scope,
                Kind::Application => k.role,
            };
            own.is_some_and(|own| own.eq_ignore_ascii_case(id))
        })
        .map(|k| k.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_map_both_ways() {
        assert_eq!(
            lookup("user.read.all", Kind::Application),
            Lookup::Id("df021288-bdef-4463-88db-98f22de89214", "User.Read.All")
        );
        assert_eq!(
            lookup("Presence.Read.All", Kind::Delegated),
            Lookup::Id("9c7a330d-35b3-4aa1-963d-cb2b9f927841", "Presence.Read.All")
        );
        assert_eq!(
            lookup("User.Read", Kind::Application),
            Lookup::NoSuchKind("User.Read")
        );
        assert_eq!(lookup("Coffee.Make.All", Kind::Delegated), Lookup::Unknown);
        assert_eq!(
            name_of("5B567255-7703-4780-807C-7BE8301AE99B", Kind::Application),
            Some("Group.Read.All")
        );
        assert_eq!(
            name_of("5b567255-7703-4780-807c-7be8301ae99b", Kind::Delegated),
            None
        );
    }

    #[test]
    fn every_id_is_a_distinct_guid() {
        let mut ids: Vec<&str> = KNOWN
            .iter()
            .flat_map(|k| [k.scope, k.role])
            .flatten()
            .collect();
        assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
        let all = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all, "an id is listed twice");
    }

    #[test]
    fn gangways_own_permissions_are_known() {
        use crate::types::permissions;
        for name in permissions::delegated_scopes() {
            assert!(
                matches!(lookup(name, Kind::Delegated), Lookup::Id(..)),
                "{name}"
            );
        }
        for name in permissions::application_scopes() {
            assert!(
                matches!(lookup(name, Kind::Application), Lookup::Id(..)),
                "{name}"
            );
        }
    }
}
