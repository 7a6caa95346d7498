//! Invitations: minting and hashing link tokens, the lifecycle, listing, and the invitation email.

mod lifecycle;
mod listing;
pub mod mail;
pub mod reconsent;
pub mod scope;
pub mod token;
mod types;

pub(crate) use lifecycle::lock;
pub use lifecycle::{
    Context, Issued, MAX_REASON_CHARS, Opened, create, get, invite_again_for_tenant, open,
    record_setback, resend, revoke, touch,
};
pub use listing::{Filter, list, page_after};
pub use scope::InvitedScope;
pub use token::InvitationToken;
pub use types::{
    Invitation, InvitationError, InvitationStatus, NewInvitation, Setback, parse_validity,
};
