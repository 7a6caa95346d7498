//! What users and groups share for lists and delta: their Graph names, the permissions that read
//! them and their default properties.

use serde_json::{Map, Value};

use crate::directory::{Changes, Group, Life, Tenant, User};

/// Application permissions that allow reading users.
pub const USERS_APP: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Delegated permissions that allow reading users.
pub const USERS_DELEGATED: &[&str] = &[
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Permissions (either kind) that allow reading groups.
pub const GROUPS: &[&str] = &[
    "Group.Read.All",
    "Group.ReadWrite.All",
    "GroupMember.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Properties Graph returns for a user when there is no `$select`.
const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// A user or group, for the code shared by lists and delta.
pub trait Entity {
    /// Graph's entity-set name (`users`, `groups`).
    const SET: &'static str;
    /// Graph's type name, for `$select` errors.
    const TYPE: &'static str;
    /// Application permissions that allow reading this kind.
    const APP: &'static [&'static str];
    /// Delegated permissions that allow reading this kind.
    const DELEGATED: &'static [&'static str];
    /// All properties.
    fn json(&self) -> Map<String, Value>;
    /// Lifecycle state.
    fn life(&self) -> Life;
    /// Version of the last change.
    fn version(&self) -> u64;
    /// Creation and per-property change versions.
    fn changes(&self) -> &Changes;
    /// Properties returned without `$select` (`None`: all).
    const DEFAULTS: Option<&'static [&'static str]>;
    /// The tenant's objects of this kind.
    fn all(t: &Tenant) -> &[Self]
    where
        Self: Sized;
    /// A non-purged object by id (users also by user principal name).
    fn find<'t>(t: &'t Tenant, id: &str) -> Option<&'t Self>
    where
        Self: Sized;
}

/// Implements [`Entity`] for a directory type that has `to_json`, `life` and `version`.
macro_rules! entity {
    ($ty:ty {
        set: $set:literal,
        type: $name:literal,
        app: $app:expr,
        delegated: $delegated:expr,
        defaults: $defaults:expr,
        all: |$t:ident| $all:expr,
        find: |$ft:ident, $id:ident| $find:expr $(,)?
    }) => {
        impl Entity for $ty {
            const SET: &'static str = $set;
            const TYPE: &'static str = $name;
            const APP: &'static [&'static str] = $app;
            const DELEGATED: &'static [&'static str] = $delegated;
            const DEFAULTS: Option<&'static [&'static str]> = $defaults;
            fn json(&self) -> Map<String, Value> {
                self.to_json()
            }
            fn life(&self) -> Life {
                self.life
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn changes(&self) -> &Changes {
                &self.changes
            }
            fn all($t: &Tenant) -> &[Self] {
                $all
            }
            fn find<'t>($ft: &'t Tenant, $id: &str) -> Option<&'t Self> {
                $find
            }
        }
    };
}

entity!(User {
    set: "users",
    type: "microsoft.graph.user",
    app: USERS_APP,
    delegated: USERS_DELEGATED,
    defaults: Some(USER_DEFAULT),
    all: |t| &t.users,
    find: |t, id| t.user(id),
});

entity!(Group {
    set: "groups",
    type: "microsoft.graph.group",
    app: GROUPS,
    delegated: GROUPS,
    defaults: None,
    all: |t| &t.groups,
    find: |t, id| t.group_index(id).map(|g| &t.groups[g]),
});
