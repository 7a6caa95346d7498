//! One Graph delta page (`/users/delta`, `/groups/delta`) read into typed changes. Pure: the
//! store applies them, the tests feed it Graph-shaped JSON.
//!
//! Graph's rules, as they shape the types: an object marked `@removed` with reason `changed`
//! is soft-deleted (restorable for 30 days), `deleted` is gone for good; an object without
//! the annotation is an upsert — also when it comes back from a soft delete. With
//! `Prefer: return=minimal` an updated object carries only the properties that changed, and a
//! cleared property comes as `null`: so every property is *absent* (leave it alone), `null`
//! (clear it) or a value.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use uuid::Uuid;

/// A property as a delta page gives it: `None` absent (unchanged), `Some(None)` cleared,
/// `Some(Some(v))` set.
pub type Field<T> = Option<Option<T>>;

/// Reads a present property, `null` included, as `Some(…)`; absence is left to `default`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Field<T>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A user's replicated properties, each only when the page carried it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFields {
    /// `userPrincipalName`.
    #[serde(default, deserialize_with = "present")]
    pub user_principal_name: Field<String>,
    /// `displayName`.
    #[serde(default, deserialize_with = "present")]
    pub display_name: Field<String>,
    /// `givenName` (first name).
    #[serde(default, deserialize_with = "present")]
    pub given_name: Field<String>,
    /// `surname` (last name).
    #[serde(default, deserialize_with = "present")]
    pub surname: Field<String>,
    /// `mail`.
    #[serde(default, deserialize_with = "present")]
    pub mail: Field<String>,
    /// `businessPhones` (office phones).
    #[serde(default, deserialize_with = "present")]
    pub business_phones: Field<Vec<String>>,
    /// `mobilePhone`.
    #[serde(default, deserialize_with = "present")]
    pub mobile_phone: Field<String>,
    /// `jobTitle`.
    #[serde(default, deserialize_with = "present")]
    pub job_title: Field<String>,
    /// `department`.
    #[serde(default, deserialize_with = "present")]
    pub department: Field<String>,
    /// `accountEnabled`.
    #[serde(default, deserialize_with = "present")]
    pub account_enabled: Field<bool>,
}

/// A group's replicated properties, each only when the page carried it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupFields {
    /// `displayName`.
    #[serde(default, deserialize_with = "present")]
    pub display_name: Field<String>,
    /// `description`.
    #[serde(default, deserialize_with = "present")]
    pub description: Field<String>,
    /// `mail`.
    #[serde(default, deserialize_with = "present")]
    pub mail: Field<String>,
    /// `mailEnabled`.
    #[serde(default, deserialize_with = "present")]
    pub mail_enabled: Field<bool>,
    /// `securityEnabled`.
    #[serde(default, deserialize_with = "present")]
    pub security_enabled: Field<bool>,
}

/// Fields a later sighting of the same object in one page overrides, property by property.
pub trait Overlay {
    /// Takes every property `later` carries; keeps the rest.
    fn overlay(&mut self, later: Self);
}

/// `Overlay` for a struct of [`Field`]s.
macro_rules! overlay {
    ($t:ty: $($f:ident),+) => {
        impl Overlay for $t {
            fn overlay(&mut self, later: Self) {
                $(if later.$f.is_some() { self.$f = later.$f; })+
            }
        }
    };
}
overlay!(UserFields: user_principal_name, display_name, given_name, surname, mail, business_phones, mobile_phone, job_title, department, account_enabled);
overlay!(GroupFields: display_name, description, mail, mail_enabled, security_enabled);

/// One member change from a group's `members@delta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    /// The member's object id.
    pub id: Uuid,
    /// `#microsoft.graph.user`, `#microsoft.graph.group`, …
    pub kind: String,
    /// Whether the member left (`@removed`) rather than joined.
    pub removed: bool,
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<F> {
    /// New, changed or restored: apply the properties present.
    Upsert {
        /// The object id.
        id: Uuid,
        /// The properties the page carried.
        fields: F,
        /// Groups only: membership changes in this slice (a large group repeats across pages).
        members: Vec<MemberChange>,
    },
    /// `@removed` with reason `changed`: in the recycle bin, restorable; keep it, flagged.
    SoftDeleted(Uuid),
    /// `@removed` with reason `deleted`: gone for good.
    Deleted(Uuid),
}

impl<F> Change<F> {
    /// The object's id.
    pub fn id(&self) -> Uuid {
        match self {
            Self::Upsert { id, .. } | Self::SoftDeleted(id) | Self::Deleted(id) => *id,
        }
    }
}

/// The page's changes with one entry per object, in first-seen order: what the object ends
/// up as after the page. Repeated upserts merge (a large group comes back with another slice
/// of members); a delete after an upsert wins, an upsert after a delete restores.
pub fn fold<F: Overlay>(changes: Vec<Change<F>>) -> Vec<Change<F>> {
    let mut at = std::collections::HashMap::with_capacity(changes.len());
    let mut out: Vec<Change<F>> = Vec::with_capacity(changes.len());
    for change in changes {
        let Some(&i) = at.get(&change.id()) else {
            at.insert(change.id(), out.len());
            out.push(change);
            continue;
        };
        match (&mut out[i], change) {
            (
                Change::Upsert {
                    fields, members, ..
                },
                Change::Upsert {
                    fields: later,
                    members: more,
                    ..
                },
            ) => {
                fields.overlay(later);
                members.extend(more);
            }
            (slot, change) => *slot = change,
        }
    }
    out
}

/// Where the round goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// `@odata.nextLink`: more pages in this round.
    Next(String),
    /// `@odata.deltaLink`: the round is complete; the next round starts here.
    Delta(String),
}

/// One page: its changes and where to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<F> {
    /// The objects, in page order (duplicates possible: apply in order).
    pub changes: Vec<Change<F>>,
    /// The next or delta link, exactly as Graph gave it.
    pub link: Link,
}

impl<F> Page<F> {
    /// Objects and member changes: what applying the page writes.
    pub fn size(&self) -> usize {
        self.changes
            .iter()
            .map(|c| match c {
                Change::Upsert { members, .. } => 1 + members.len(),
                _ => 1,
            })
            .sum()
    }

    /// Takes the round's next page in: its changes after these, and its link.
    pub fn append(&mut self, later: Page<F>) {
        self.changes.extend(later.changes);
        self.link = later.link;
    }
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// Not the JSON shape of a delta page.
    #[error("not a delta page: {0}")]
    Shape(String),
}

/// Reads a delta page of objects with properties `F`.
pub fn parse<F: DeserializeOwned + Default>(body: &[u8]) -> Result<Page<F>, DeltaError> {
    let shape = |m: &str| DeltaError::Shape(m.to_owned());
    let doc: Value = serde_json::from_slice(body).map_err(|e| DeltaError::Shape(e.to_string()))?;
    let link = match (
        doc.get("@odata.nextLink").and_then(Value::as_str),
        doc.get("@odata.deltaLink").and_then(Value::as_str),
    ) {
        (Some(next), _) => Link::Next(next.to_owned()),
        (None, Some(delta)) => Link::Delta(delta.to_owned()),
        (None, None) => return Err(shape("neither @odata.nextLink nor @odata.deltaLink")),
    };
    let items = doc
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("no value array"))?;
    let changes = items.iter().map(change).collect::<Result<Vec<_>, _>>()?;
    Ok(Page { changes, link })
}

fn object_id(item: &Value) -> Result<Uuid, DeltaError> {
    item.get("id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| DeltaError::Shape("an object without a GUID id".into()))
}

fn change<F: DeserializeOwned + Default>(item: &Value) -> Result<Change<F>, DeltaError> {
    let id = object_id(item)?;
    if let Some(removed) = item.get("@removed") {
        return Ok(match removed.get("reason").and_then(Value::as_str) {
            Some("deleted") => Change::Deleted(id),
            // `changed`, or a reason Graph may add later: keep the row, flagged, not lost.
            _ => Change::SoftDeleted(id),
        });
    }
    let fields = serde_json::from_value(item.clone())
        .map_err(|e| DeltaError::Shape(format!("object {id}: {e}")))?;
    let members = item
        .get("members@delta")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(member).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default();
    Ok(Change::Upsert {
        id,
        fields,
        members,
    })
}

fn member(item: &Value) -> Result<MemberChange, DeltaError> {
    Ok(MemberChange {
        id: object_id(item)?,
        kind: item
            .get("@odata.type")
            .and_then(Value::as_str)
            .unwrap_or("#microsoft.graph.directoryObject")
            .to_owned(),
        removed: item.get("@removed").is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "6e9b1a6e-0000-4000-8000-00000000000a";
    const B: &str = "6e9b1a6e-0000-4000-8000-00000000000b";
    const C: &str = "6e9b1a6e-0000-4000-8000-00000000000c";

    #[test]
    fn a_users_page_reads_upserts_soft_and_hard_deletes_and_the_next_link() {
        let body = format!(
            r#"{{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users(displayName,mail)",
                "@odata.nextLink":"https://graph.microsoft.com/v1.0/users/delta()?$skiptoken=pqwSUjGYvb3jQpbwVAwEL7yuI3dU1LecfkkfLPtnIjsXoYQp",
                "value":[
                  {{"id":"{A}","userPrincipalName":"ada@contoso.com","displayName":"Ada","givenName":"Ada","surname":null,
                    "businessPhones":["+1 425 555 0109"],"accountEnabled":true}},
                  {{"id":"{B}","@removed":{{"reason":"changed"}}}},
                  {{"id":"{C}","@removed":{{"reason":"deleted"}}}}
                ]}}"#
        );
        let page: Page<UserFields> = parse(body.as_bytes()).unwrap();
        assert!(matches!(&page.link, Link::Next(l) if l.contains("$skiptoken=")));
        let Change::Upsert {
            id,
            fields,
            members,
        } = &page.changes[0]
        else {
            panic!("{:?}", page.changes[0]);
        };
        assert_eq!(id.to_string(), A);
        assert_eq!(
            fields.user_principal_name,
            Some(Some("ada@contoso.com".into()))
        );
        assert_eq!(fields.surname, Some(None), "null means cleared");
        assert_eq!(fields.mail, None, "absent means unchanged");
        assert_eq!(
            fields.business_phones,
            Some(Some(vec!["+1 425 555 0109".into()]))
        );
        assert_eq!(fields.account_enabled, Some(Some(true)));
        assert!(members.is_empty());
        assert_eq!(page.changes[1], Change::SoftDeleted(B.parse().unwrap()));
        assert_eq!(page.changes[2], Change::Deleted(C.parse().unwrap()));
    }

    #[test]
    fn a_minimal_update_carries_only_what_changed_and_a_group_its_member_slice() {
        let body = format!(
            r##"{{"@odata.deltaLink":"https://graph.microsoft.com/v1.0/groups/delta()?$deltatoken=Hf0nJ2sOH9lvsxEQrd",
                "value":[
                  {{"id":"{A}","description":"Sales, EMEA",
                    "members@delta":[
                      {{"@odata.type":"#microsoft.graph.user","id":"{B}"}},
                      {{"@odata.type":"#microsoft.graph.user","id":"{C}","@removed":{{"reason":"deleted"}}}}
                    ]}}
                ]}}"##
        );
        let page: Page<GroupFields> = parse(body.as_bytes()).unwrap();
        assert!(matches!(&page.link, Link::Delta(l) if l.contains("$deltatoken=")));
        let Change::Upsert {
            fields, members, ..
        } = &page.changes[0]
        else {
            panic!();
        };
        assert_eq!(
            fields,
            &GroupFields {
                description: Some(Some("Sales, EMEA".into())),
                ..GroupFields::default()
            }
        );
        assert_eq!(members.len(), 2);
        assert!(!members[0].removed && members[0].kind == "#microsoft.graph.user");
        assert!(members[1].removed);
    }

    #[test]
    fn an_object_seen_twice_in_a_page_ends_as_its_last_state() {
        let (a, b): (Uuid, Uuid) = (A.parse().unwrap(), B.parse().unwrap());
        let name = |n: &str| GroupFields {
            display_name: Some(Some(n.into())),
            ..GroupFields::default()
        };
        let member = |id: Uuid| MemberChange {
            id,
            kind: "#microsoft.graph.user".into(),
            removed: false,
        };
        let folded = fold(vec![
            Change::Upsert {
                id: a,
                fields: name("Sales"),
                members: vec![member(b)],
            },
            Change::SoftDeleted(b),
            Change::Upsert {
                id: a,
                fields: GroupFields {
                    description: Some(None),
                    ..GroupFields::default()
                },
                members: vec![member(a)],
            },
            Change::Upsert {
                id: b,
                fields: name("Back"),
                members: vec![],
            },
        ]);
        assert_eq!(folded.len(), 2);
        let Change::Upsert {
            fields, members, ..
        } = &folded[0]
        else {
            panic!("{folded:?}");
        };
        assert_eq!(fields.display_name, Some(Some("Sales".into())));
        assert_eq!(fields.description, Some(None));
        assert_eq!(members.len(), 2, "both slices of members are kept");
        assert!(
            matches!(&folded[1], Change::Upsert { id, .. } if *id == b),
            "restored"
        );
        assert_eq!(
            fold(vec![name_change(a), Change::Deleted(a)]),
            vec![Change::Deleted(a)]
        );
    }

    fn name_change(id: Uuid) -> Change<GroupFields> {
        Change::Upsert {
            id,
            fields: GroupFields::default(),
            members: vec![],
        }
    }

    #[test]
    fn pages_that_are_not_delta_pages_are_refused() {
        for body in [
            "not json",
            r#"{"value":[]}"#,
            r#"{"@odata.deltaLink":"x"}"#,
            r#"{"@odata.deltaLink":"x","value":[{"displayName":"no id"}]}"#,
            r#"{"@odata.deltaLink":"x","value":[{"id":"1","displayName":"not a guid"}]}"#,
        ] {
            assert!(parse::<UserFields>(body.as_bytes()).is_err(), "{body}");
        }
        let empty: Page<UserFields> = parse(br#"{"@odata.nextLink":"n","value":[]}"#).unwrap();
        assert!(
            empty.changes.is_empty(),
            "an empty page with a next link is normal"
        );
    }
}
