//! The Entra ID tenant identifier (a GUID).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// An Entra ID tenant id. Parsed only from the hyphenated GUID form
/// (`72f988bf-86f1-41af-91ab-2d7cd011db47`, any case); shown lowercase hyphenated.
/// Domain names, `common`, `organizations` and other UUID spellings are rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Uuid);

/// The string given is not a tenant GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tenant id (expected a GUID such as 00000000-0000-0000-0000-000000000000)")]
pub struct InvalidTenantId;

impl TenantId {
    /// Parses the hyphenated GUID form only.
    pub fn parse(s: &str) -> Result<Self, InvalidTenantId> {
        strict_guid(s).map(Self).ok_or(InvalidTenantId)
    }

    /// Wraps a UUID (e.g. read back from the database).
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The tenant id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// Uuid::parse_str also takes the simple, braced and urn forms; Entra ids are always the
/// 36-character hyphenated form, and being strict keeps `iss` and `aud` comparisons exact.
fn strict_guid(s: &str) -> Option<Uuid> {
    let s = s.trim();
    let bytes = s.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    Uuid::parse_str(s).ok()
}

/// An application (client) id: a GUID in the hyphenated form, shown lowercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(Uuid);

/// The string given is not an application (client) id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a client id (expected a GUID such as 00000000-0000-0000-0000-000000000000)")]
pub struct InvalidClientId;

impl ClientId {
    /// Parses the hyphenated GUID form only.
    pub fn parse(s: &str) -> Result<Self, InvalidClientId> {
        strict_guid(s).map(Self).ok_or(InvalidClientId)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<Uuid> for TenantId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl From<TenantId> for Uuid {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

impl Serialize for TenantId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guid_and_displays_lowercase() {
        let t: TenantId = "72F988BF-86F1-41AF-91AB-2D7CD011DB47".parse().unwrap();
        assert_eq!(t.to_string(), "72f988bf-86f1-41af-91ab-2d7cd011db47");
    }

    #[test]
    fn rejects_non_guid_forms() {
        for s in [
            "",
            "common",
            "organizations",
            "contoso.onmicrosoft.com",
            "72f988bf86f141af91ab2d7cd011db47",
            "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
            "urn:uuid:72f988bf-86f1-41af-91ab-2d7cd011db47",
            "72f988bf-86f1-41af-91ab-2d7cd011db4z",
            "72f988bf-86f1-41af-91ab2-d7cd011db47",
        ] {
            assert!(TenantId::parse(s).is_err(), "{s} accepted");
        }
    }

    #[test]
    fn serde_round_trip() {
        let t = TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db47").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"72f988bf-86f1-41af-91ab-2d7cd011db47\"");
        assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), t);
        assert!(serde_json::from_str::<TenantId>("\"common\"").is_err());
    }
}
