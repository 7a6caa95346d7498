//! The OpenAPI 3.1 `webhooks` section: every event Gangway POSTs to the provider's endpoints,
//! with the Standard Webhooks headers and the body each carries. utoipa has no field for it, so
//! it is written here as JSON and added to the generated document.

use serde_json::{Value, json};

use crate::webhooks::EventType;

/// What an event's `data` holds, in words and as a schema.
fn data_schema(event: EventType) -> (&'static str, Value) {
    let uuid = json!({ "type": "string", "format": "uuid" });
    let ids = json!({ "type": "array", "items": uuid });
    let run =
        json!({ "type": "integer", "description": "The sync run (see /tenants/{id}/sync-runs)" });
    let base = |props: Value, required: &[&str]| json!({ "type": "object", "properties": props, "required": required });
    use EventType as E;
    match event {
        E::InvitationOpened
        | E::InvitationConsented
        | E::InvitationDeclined
        | E::InvitationFailed
        | E::InvitationRevoked => (
            "An invitation changed state (opened, consented, declined, failed, revoked); `reason` for declined and failed.",
            base(
                json!({ "invitation_id": uuid, "customer_id": uuid, "tenant_id": uuid, "reason": { "type": "string" } }),
                &["invitation_id"],
            ),
        ),
        E::TenantConnected => (
            "A verified consent connected (or reconnected) a tenant.",
            base(
                json!({ "tenant_id": uuid, "entra_tenant_id": uuid, "display_name": { "type": "string" },
                        "customer_id": uuid, "consent_mode": { "type": "string", "enum": ["delegated", "application", "customer_app"] },
                        "invitation_id": uuid }),
                &["tenant_id", "entra_tenant_id"],
            ),
        ),
        E::TenantReconsentRequired => (
            "The tenant's credential stopped working; its syncs stop until the customer consents again.",
            base(
                json!({ "tenant_id": uuid, "reason": { "type": "string" } }),
                &["tenant_id"],
            ),
        ),
        E::TenantConsentDrifted => (
            "What the tenant grants the provider's app no longer matches its permission profile: a permission missing, the app disabled or deleted, or permissions granted beyond the profile.",
            base(
                json!({ "tenant_id": uuid, "summary": { "type": "string" },
                        "service_principal": { "type": "string", "enum": ["enabled", "disabled", "missing"] },
                        "missing": { "type": "array", "items": { "type": "string" } },
                        "extra": { "type": "array", "items": { "type": "string" } } }),
                &["tenant_id", "summary"],
            ),
        ),
        E::TenantOffboarded => (
            "The tenant was offboarded: credential, directory copy and sync state erased.",
            base(
                json!({ "tenant_id": uuid, "entra_tenant_id": uuid, "display_name": { "type": "string" }, "customer_id": uuid }),
                &["tenant_id"],
            ),
        ),
        E::SyncCompleted => (
            "A directory sync run finished, with its counts.",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "trigger": { "type": "string" },
                        "added": { "type": "integer" }, "updated": { "type": "integer" },
                        "soft_deleted": { "type": "integer" }, "removed": { "type": "integer" },
                        "members_added": { "type": "integer" }, "members_removed": { "type": "integer" },
                        "pages": { "type": "integer" } }),
                &["tenant_id", "run_id"],
            ),
        ),
        E::SyncFailed => (
            "A directory sync run failed; it is retried with backoff.",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "trigger": { "type": "string" }, "error": { "type": "string" } }),
                &["tenant_id", "run_id"],
            ),
        ),
        E::MembershipAdded | E::MembershipRemoved => (
            "Memberships added or removed by one sync page: one request per page, listing them all.",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "memberships": { "type": "array", "items": {
                    "type": "object", "properties": { "group_id": uuid, "member_id": uuid } } } }),
                &["tenant_id", "memberships"],
            ),
        ),
        E::UserDeleted | E::GroupDeleted => (
            "Objects deleted by one sync page: `soft_deleted` (in Entra ID's recycle bin) and `deleted` (for good).",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "soft_deleted": ids, "deleted": ids }),
                &["tenant_id"],
            ),
        ),
        E::UserCreated | E::UserUpdated | E::GroupCreated | E::GroupUpdated => (
            "Objects created or updated by one sync page: one request per page, each object as now stored (as the directory API returns it).",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "objects": { "type": "array", "items": { "type": "object" } } }),
                &["tenant_id", "objects"],
            ),
        ),
        E::WebhookTest => (
            "Sent by \"Send test event\" in the console, whatever the endpoint's filter.",
            base(
                json!({ "endpoint_id": uuid, "message": { "type": "string" } }),
                &[],
            ),
        ),
    }
}

/// The `webhooks` object: one POST operation per event type.
pub fn section() -> Value {
    let header = |name: &str, description: &str, example: &str| {
        json!({ "name": name, "in": "header", "required": true, "description": description,
                "schema": { "type": "string" }, "example": example })
    };
    let headers = json!([
        header(
            "webhook-id",
            "The message id: the same on every retry of one event, so a receiver can drop duplicates.",
            "msg_2b7e1516a0f04cbb9c1d9f4b0f7c2a11"
        ),
        header(
            "webhook-timestamp",
            "Unix seconds when this attempt was signed; refuse ones far from now (5 minutes).",
            "1764599400"
        ),
        header(
            "webhook-signature",
            "Space-separated `v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded part of the endpoint's `whsec_` secret. During 24 hours after a rotation both the new and the old secret sign.",
            "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
        ),
    ]);
    let mut out = serde_json::Map::new();
    for event_type in EventType::SUBSCRIBABLE
        .iter()
        .chain([&EventType::WebhookTest])
    {
        let (description, data) = data_schema(*event_type);
        let event = event_type.name();
        let body = json!({
            "type": "object",
            "properties": {
                "type": { "type": "string", "const": event },
                "timestamp": { "type": "string", "format": "date-time" },
                "data": data,
            },
            "required": ["type", "timestamp", "data"],
        });
        out.insert(
            event.to_owned(),
            json!({ "post": {
                "summary": event,
                "description": description,
                "operationId": format!("webhook_{}", event.replace('.', "_")),
                "tags": ["webhooks"],
                "parameters": headers,
                "requestBody": { "required": true, "content": { "application/json": { "schema": body } } },
                "responses": {
                    "2XX": { "description": "Delivered: never sent again." },
                    "default": { "description": "Anything else (or no answer within 10 s) is retried: 30 s doubling to 2 h, for more than a day, then the delivery is marked failed." }
                }
            }}),
        );
    }
    Value::Object(out)
}
