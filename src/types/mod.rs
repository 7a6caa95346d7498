//! Value types parsed where input enters and shared by several layers: a value of one of
//! these types has been checked, so code further in never sees a raw string in its place.

mod branding;
mod consent_mode;
mod email;
mod ids;
pub mod permissions;
pub mod profile;
pub mod schedule;
mod secret;
mod tenant_id;
mod untrusted;

pub use branding::Branding;
pub use consent_mode::ConsentMode;
pub use email::{DomainName, EmailAddress};
pub use ids::{
    ApiTokenId, ApplicationId, CustomerId, InvitationId, OperatorId, ProfileId, ScimConnectionId,
    TenantRecordId, WebhookId,
};
pub use profile::Profile;
pub use schedule::{Schedule, ScheduleError};
pub use secret::Secret;
pub use tenant_id::{ClientId, InvalidClientId, InvalidTenantId, TenantId};
pub use untrusted::{UNTRUSTED_LOG_CHARS, Untrusted};

/// A value that does not have the shape its type demands; the message says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
