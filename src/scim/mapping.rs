//! Which SCIM attribute is filled from which field of the directory copy, and the SCIM
//! representations (RFC 7643) of the copy's users and groups built with it. `externalId` is
//! always the object id (pushes are idempotent by it) and `active` is always "enabled and not
//! deleted"; the rest is the mapping's.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The core User schema (RFC 7643 §4.1).
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema (RFC 7643 §4.2).
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Declares a closed vocabulary with its wire names.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant,)+ }

        impl $name {
            /// Every value, in the order forms list them.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }

            /// The value named `name`, if any.
            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == name.trim())
            }
        }
    };
}

vocabulary! {
    /// A SCIM User attribute Gangway can fill.
    Target {
        /// `userName` (required).
        UserName = "userName",
        /// `displayName`.
        DisplayName = "displayName",
        /// `name.givenName`.
        GivenName = "name.givenName",
        /// `name.familyName`.
        FamilyName = "name.familyName",
        /// `title`.
        Title = "title",
        /// `emails` of type work.
        WorkEmail = "emails.work",
        /// `phoneNumbers` of type work.
        WorkPhone = "phoneNumbers.work",
        /// `phoneNumbers` of type mobile.
        MobilePhone = "phoneNumbers.mobile",
    }
}

vocabulary! {
    /// A user field of the directory copy, by its Microsoft Graph name.
    Source {
        /// The user principal name.
        UserPrincipalName = "userPrincipalName",
        /// The display name.
        DisplayName = "displayName",
        /// The first name.
        GivenName = "givenName",
        /// The last name.
        Surname = "surname",
        /// The mail address.
        Mail = "mail",
        /// Office phones (several).
        BusinessPhones = "businessPhones",
        /// The mobile phone.
        MobilePhone = "mobilePhone",
        /// The job title.
        JobTitle = "jobTitle",
        /// The department.
        Department = "department",
    }
}

impl Target {
    /// The top-level attribute it writes (what a server's `/Schemas` must list).
    pub fn attribute(self) -> &'static str {
        self.name().split('.').next().unwrap_or_default()
    }

    /// The PATCH path that clears it.
    fn clear_path(self) -> &'static str {
        match self {
            Self::GivenName | Self::FamilyName => self.name(),
            _ => self.attribute(),
        }
    }

    /// Whether it holds several values (each source value becomes one).
    fn multi(self) -> bool {
        matches!(self, Self::WorkEmail | Self::WorkPhone | Self::MobilePhone)
    }
}

/// SCIM attribute → copy field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping(BTreeMap<Target, Source>);

impl Default for Mapping {
    /// userName ← UPN, displayName, name, title, work email ← mail, work and mobile phones.
    fn default() -> Self {
        Self(BTreeMap::from([
            (Target::UserName, Source::UserPrincipalName),
            (Target::DisplayName, Source::DisplayName),
            (Target::GivenName, Source::GivenName),
            (Target::FamilyName, Source::Surname),
            (Target::Title, Source::JobTitle),
            (Target::WorkEmail, Source::Mail),
            (Target::WorkPhone, Source::BusinessPhones),
            (Target::MobilePhone, Source::MobilePhone),
        ]))
    }
}

impl Mapping {
    /// A mapping from its wire form (`{"userName": "userPrincipalName", …}`); says what is
    /// wrong with the first bad entry.
    pub fn parse(wire: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for (target, source) in wire {
            let t = Target::parse(target).ok_or_else(|| {
                format!(
                    "`{target}` is not a SCIM attribute Gangway fills; use one of {}.",
                    names(Target::ALL.iter().map(|t| t.name()))
                )
            })?;
            let s = Source::parse(source).ok_or_else(|| {
                format!(
                    "`{source}` (for {target}) is not a field of the directory copy; use one of {}.",
                    names(Source::ALL.iter().map(|s| s.name()))
                )
            })?;
            map.insert(t, s);
        }
        if !map.contains_key(&Target::UserName) {
            return Err("userName must be mapped (SCIM requires it).".into());
        }
        Ok(Self(map))
    }

    /// The wire form.
    pub fn wire(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(t, s)| (t.name().to_owned(), s.name().to_owned()))
            .collect()
    }

    /// The mapping without what a server's User schema does not list (`None`: it did not say).
    pub fn served_by(&self, attributes: Option<&BTreeSet<String>>) -> Self {
        let Some(attributes) = attributes else {
            return self.clone();
        };
        Self(
            self.0
                .iter()
                .filter(|(t, _)| {
                    **t == Target::UserName || attributes.contains(&t.attribute().to_lowercase())
                })
                .map(|(t, s)| (*t, *s))
                .collect(),
        )
    }

    /// The PATCH paths that clear the mapped attributes `user` leaves out.
    pub fn cleared(&self, user: &Value) -> Vec<&'static str> {
        let mut paths: BTreeSet<&'static str> = BTreeSet::new();
        for t in self.0.keys() {
            if at_path(user, t.clear_path()).is_none() {
                paths.insert(t.clear_path());
            }
        }
        paths.into_iter().collect()
    }

    /// The attributes (dotted paths) a pushed user carries: what drift is judged on.
    fn user_paths(&self) -> BTreeSet<&'static str> {
        let mut paths: BTreeSet<&'static str> = ["externalId", "userName", "active"].into();
        paths.extend(self.0.keys().map(|t| t.clear_path()));
        paths
    }
}

fn names<'a>(all: impl Iterator<Item = &'a str>) -> String {
    all.map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// A user of the copy, as the push reads it.
#[derive(Debug, Clone)]
pub struct CopyUser {
    /// Its object id.
    pub object_id: Uuid,
    /// Its user principal name.
    pub user_principal_name: Option<String>,
    /// Its display name.
    pub display_name: Option<String>,
    /// Its first name.
    pub given_name: Option<String>,
    /// Its last name.
    pub surname: Option<String>,
    /// Its mail address.
    pub mail: Option<String>,
    /// Its office phones.
    pub business_phones: Vec<String>,
    /// Its mobile phone.
    pub mobile_phone: Option<String>,
    /// Its job title.
    pub job_title: Option<String>,
    /// Its department.
    pub department: Option<String>,
    /// Whether the account is enabled (unknown counts as enabled).
    pub account_enabled: Option<bool>,
    /// Whether it is in the recycle bin.
    pub soft_deleted: bool,
}

impl CopyUser {
    fn values(&self, source: Source) -> Vec<String> {
        let one = |v: &Option<String>| v.iter().filter(|s| !s.is_empty()).cloned().collect();
        match source {
            Source::UserPrincipalName => one(&self.user_principal_name),
            Source::DisplayName => one(&self.display_name),
            Source::GivenName => one(&self.given_name),
            Source::Surname => one(&self.surname),
            Source::Mail => one(&self.mail),
            Source::BusinessPhones => self
                .business_phones
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            Source::MobilePhone => one(&self.mobile_phone),
            Source::JobTitle => one(&self.job_title),
            Source::Department => one(&self.department),
        }
    }
}

/// The SCIM User for `user` under `mapping`; `None` when it has nothing for `userName`.
pub fn user(mapping: &Mapping, user: &CopyUser) -> Option<Value> {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([USER_SCHEMA]));
    out.insert("externalId".into(), json!(user.object_id.to_string()));
    out.insert(
        "active".into(),
        json!(user.account_enabled.unwrap_or(true) && !user.soft_deleted),
    );
    let mut name = Map::new();
    let (mut emails, mut phones) = (Vec::new(), Vec::new());
    for (target, source) in &mapping.0 {
        let values = user.values(*source);
        if target.multi() {
            let (list, kind) = match target {
                Target::WorkEmail => (&mut emails, "work"),
                Target::WorkPhone => (&mut phones, "work"),
                _ => (&mut phones, "mobile"),
            };
            list.extend(
                values
                    .into_iter()
                    .map(|v| json!({"value": v, "type": kind})),
            );
            continue;
        }
        let Some(value) = values.into_iter().next() else {
            continue;
        };
        match target {
            Target::GivenName => name.insert("givenName".into(), json!(value)),
            Target::FamilyName => name.insert("familyName".into(), json!(value)),
            other => out.insert(other.name().into(), json!(value)),
        };
    }
    if !out.contains_key("userName") {
        return None;
    }
    if !name.is_empty() {
        out.insert("name".into(), Value::Object(name));
    }
    if let Some(first) = emails.first_mut() {
        first["primary"] = json!(true);
        out.insert("emails".into(), Value::Array(emails));
    }
    if !phones.is_empty() {
        out.insert("phoneNumbers".into(), Value::Array(phones));
    }
    Some(Value::Object(out))
}

/// A member of a group as the copy holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// Its object id.
    pub object_id: Uuid,
    /// A group (nested) rather than a user.
    pub group: bool,
}

/// The SCIM Group for a group of the copy, its members given by the server's ids (those the
/// server does not have yet are left out).
pub fn group(object_id: Uuid, display_name: &str, members: &[(String, bool)]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|(id, group)| json!({"value": id, "type": if *group { "Group" } else { "User" }}))
        .collect();
    json!({
        "schemas": [GROUP_SCHEMA],
        "externalId": object_id.to_string(),
        "displayName": display_name,
        "members": members,
    })
}

/// What is hashed for a group: its name and members by object id, so a member the server
/// had not yet created does not make the hash look current.
pub fn group_key(object_id: Uuid, display_name: &str, members: &BTreeSet<Member>) -> Value {
    let members: Vec<String> = members
        .iter()
        .map(|m| format!("{}:{}", if m.group { "g" } else { "u" }, m.object_id))
        .collect();
    json!({"externalId": object_id.to_string(), "displayName": display_name, "members": members})
}

/// The SHA-256 of a representation, as the ledger keeps it.
pub fn hash(value: &Value) -> Vec<u8> {
    Sha256::digest(serde_json::to_vec(value).unwrap_or_default()).to_vec()
}

/// The value at a dotted path (`name.givenName`); an empty list or object counts as absent.
fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let found = path
        .split('.')
        .try_fold(value, |v, key| v.as_object()?.get(key))?;
    match found {
        Value::Null => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(o) if o.is_empty() => None,
        v => Some(v),
    }
}

/// A value compared for drift: lists as sorted `(type, value)` pairs, whatever else the
/// server adds to each entry (`primary`, `display`, `$ref`).
fn normalized(value: Option<&Value>) -> Value {
    match value {
        Some(Value::Array(items)) => {
            let mut pairs: Vec<(String, String)> = items
                .iter()
                .map(|i| {
                    let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    (s("type"), s("value"))
                })
                .collect();
            pairs.sort();
            json!(pairs)
        }
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// Whether a user the server answered differs from what Gangway would push.
pub fn user_drifted(mapping: &Mapping, server: &Value, desired: &Value) -> bool {
    drifted(mapping.user_paths(), server, desired)
}

/// Whether a group the server answered differs from what Gangway would push.
pub fn group_drifted(server: &Value, desired: &Value) -> bool {
    drifted(
        ["externalId", "displayName", "members"].into(),
        server,
        desired,
    )
}

fn drifted(paths: BTreeSet<&'static str>, server: &Value, desired: &Value) -> bool {
    paths
        .into_iter()
        .any(|p| normalized(at_path(server, p)) != normalized(at_path(desired, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone() -> CopyUser {
        CopyUser {
            object_id: Uuid::nil(),
            user_principal_name: Some("ada@contoso.example".into()),
            display_name: Some("Ada L".into()),
            given_name: Some("Ada".into()),
            surname: None,
            mail: Some("ada@contoso.example".into()),
            business_phones: vec!["+1 1".into(), "+1 2".into()],
            mobile_phone: None,
            job_title: None,
            department: Some("R&D".into()),
            account_enabled: Some(true),
            soft_deleted: true,
        }
    }

    #[test]
    fn the_default_mapping_fills_the_core_attributes_and_clears_what_the_copy_lacks() {
        let m = Mapping::default();
        let u = user(&m, &someone()).unwrap();
        assert_eq!(u["userName"], "ada@contoso.example");
        assert_eq!(u["active"], false, "a soft-deleted user is inactive");
        assert_eq!(u["name"], json!({"givenName": "Ada"}));
        assert_eq!(u["emails"][0]["primary"], true);
        assert_eq!(u["phoneNumbers"].as_array().unwrap().len(), 2);
        assert_eq!(m.cleared(&u), vec!["name.familyName", "title"]);
        assert!(!user_drifted(&m, &u, &u));
        let mut changed = u.clone();
        changed["phoneNumbers"][1]["value"] = json!("+1 3");
        assert!(user_drifted(&m, &changed, &u));
    }

    #[test]
    fn a_mapping_names_its_bad_entry_and_requires_user_name() {
        let wire = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let err = Mapping::parse(&wire(&[("userName", "mail"), ("nick", "mail")])).unwrap_err();
        assert!(err.contains("`nick`"), "{err}");
        let err = Mapping::parse(&wire(&[("userName", "shoeSize")])).unwrap_err();
        assert!(err.contains("`shoeSize`"), "{err}");
        assert!(Mapping::parse(&wire(&[("title", "jobTitle")])).is_err());
        let m = Mapping::parse(&wire(&[("userName", "mail"), ("title", "department")])).unwrap();
        assert_eq!(user(&m, &someone()).unwrap()["title"], "R&D");
        assert_eq!(
            Mapping::parse(&Mapping::default().wire()).unwrap(),
            Mapping::default()
        );
    }
}
