//! The closed vocabulary of events Gangway reports: one [`EventType`] per kind of change, with
//! its wire name. The endpoint filter, the console's checkboxes and the OpenAPI `webhooks`
//! section are all derived from it, so an event type exists everywhere or nowhere.

use serde_json::Value;

/// Declares [`EventType`] with its wire names and the list of those an endpoint may choose.
macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal,)*) => {
        /// A kind of event an endpoint may subscribe to, or the test event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($(#[$doc])* $variant,)*
            /// Sent by "Send test event" in the console, whatever the endpoint's filter.
            WebhookTest,
        }

        impl EventType {
            /// Every event type an endpoint may subscribe to, in the order the console lists
            /// them (the test event is not among them: it goes to one endpoint on demand).
            pub const SUBSCRIBABLE: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The name on the wire: the body's `type` and the endpoint's filter.
            pub fn name(self) -> &'static str {
                match self {
                    $(EventType::$variant => $wire,)*
                    EventType::WebhookTest => "webhook.test",
                }
            }
        }
    };
}

event_types! {
    /// A customer's admin opened their invitation link.
    InvitationOpened => "invitation.opened",
    /// An invitation's consent was verified and its tenant connected.
    InvitationConsented => "invitation.consented",
    /// The admin declined the consent.
    InvitationDeclined => "invitation.declined",
    /// The consent could not be verified.
    InvitationFailed => "invitation.failed",
    /// An operator revoked the invitation.
    InvitationRevoked => "invitation.revoked",
    /// A verified consent connected (or reconnected) a tenant.
    TenantConnected => "tenant.connected",
    /// The tenant's credential stopped working.
    TenantReconsentRequired => "tenant.reconsent_required",
    /// The tenant was offboarded.
    TenantOffboarded => "tenant.offboarded",
    /// What the tenant grants the provider's app no longer matches its permission profile.
    TenantConsentDrifted => "tenant.consent_drifted",
    /// A sync run finished.
    SyncCompleted => "sync.completed",
    /// A sync run failed.
    SyncFailed => "sync.failed",
    /// Users new to the copy.
    UserCreated => "directory.user.created",
    /// Users whose properties changed.
    UserUpdated => "directory.user.updated",
    /// Users deleted (to the recycle bin or for good).
    UserDeleted => "directory.user.deleted",
    /// Groups new to the copy.
    GroupCreated => "directory.group.created",
    /// Groups whose properties changed.
    GroupUpdated => "directory.group.updated",
    /// Groups deleted (to the recycle bin or for good).
    GroupDeleted => "directory.group.deleted",
    /// Memberships added.
    MembershipAdded => "directory.membership.added",
    /// Memberships removed.
    MembershipRemoved => "directory.membership.removed",
    /// A round would have deleted more than the tenant's threshold: its deletions wait for an
    /// operator.
    DeletionsHeld => "directory.deletions_held",
    /// Gangway rotated the provider app's certificate or client secret: the new one is in use.
    CredentialRotated => "credential.rotated",
}

impl EventType {
    /// The subscribable event type named `name`, if there is one.
    pub fn parse(name: &str) -> Option<EventType> {
        Self::SUBSCRIBABLE
            .iter()
            .copied()
            .find(|t| t.name() == name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An event: its type and the `data` its body carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub event_type: EventType,
    /// The body's `data`.
    pub data: Value,
}

impl Event {
    /// An event of `event_type` carrying `data`.
    pub fn new(event_type: EventType, data: Value) -> Self {
        Self { event_type, data }
    }
}

#[cfg(test)]
mod tests {
    use super::EventType;

    #[test]
    fn wire_names_are_unique_and_parse_back() {
        let all = EventType::SUBSCRIBABLE;
        assert_eq!(all.len(), 21);
        for t in all {
            assert_eq!(EventType::parse(t.name()), Some(*t));
            assert_eq!(all.iter().filter(|o| o.name() == t.name()).count(), 1);
        }
        assert_eq!(EventType::parse("webhook.test"), None);
        assert_eq!(EventType::parse("*"), None);
    }
}
