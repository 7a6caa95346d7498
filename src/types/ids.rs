//! Gangway's own record ids, one type each, so an invitation's id cannot stand where a tenant's
//! is expected (in a query, a function call or a console address). Each is a UUID: stored as
//! `uuid`, written as the hyphenated form in JSON and addresses.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Declares a record id type: a UUID newtype, transparent to sqlx and serde.
macro_rules! record_id {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        /// Any UUID spelling (console addresses carry the id).
        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )+};
}

record_id! {
    /// A customer (`customers.id`).
    CustomerId;
    /// An invitation (`invitations.id`).
    InvitationId;
    /// A connected tenant as Gangway records it (`tenants.id`); not Microsoft's directory id,
    /// which is a [`TenantId`](super::TenantId).
    TenantRecordId;
    /// A webhook endpoint (`webhook_endpoints.id`).
    WebhookId;
    /// An API token (`api_tokens.id`).
    ApiTokenId;
    /// A permission profile (`permission_profiles.id`).
    ProfileId;
    /// A console operator (`operators.id`).
    OperatorId;
    /// A sign-in application, an OpenID Connect client of Gangway (`signin_applications.id`).
    ApplicationId;
    /// A SCIM push connection (`scim_connections.id`).
    ScimConnectionId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_show_as_a_uuid() {
        let id: CustomerId = "72F988BF-86F1-41AF-91AB-2D7CD011DB47".parse().unwrap();
        assert_eq!(id.to_string(), "72f988bf-86f1-41af-91ab-2d7cd011db47");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"72f988bf-86f1-41af-91ab-2d7cd011db47\""
        );
        assert!("not-an-id".parse::<TenantRecordId>().is_err());
    }
}
