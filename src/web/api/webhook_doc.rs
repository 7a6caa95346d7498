//! The OpenAPI 3.1 `webhooks` section: every event Gangway POSTs to the provider's endpoints,
//! with the Standard Webhooks headers and the body each carries. utoipa has no field for it, so
//! it is written here as JSON and added to the generated document.

use serde_json::{Value, json};

use crate::webhooks::EventType;

/// What an event's `data` holds, in words and as a schema.
fn data_schema(event: EventType) -> (&'static str, Value) {
    let uuid = json!({ "type": "string", "format": "uuid" });
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
            "A membership added or removed: one event per membership (removals include those that go with a deleted user or group).",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "group_id": uuid, "member_id": uuid }),
                &["tenant_id", "group_id", "member_id"],
            ),
        ),
        E::UserDeleted | E::GroupDeleted => (
            "An object deleted: one event per object, with its fields as last stored (as the directory API shows them) and `permanent` (false: in Entra ID's recycle bin). A sync round's deletions are logged at its end, once the deletion guard let them through; an operator approving held deletions logs them without a `run_id`. An object that left the tenant's sync scope (it stays in Entra ID) is reported the same way, `permanent` and with `scope`: `left`.",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "object_id": uuid, "permanent": { "type": "boolean" }, "scope": { "type": "string", "enum": ["left"] } }),
                &["tenant_id", "object_id", "permanent"],
            ),
        ),
        E::DeletionsHeld => (
            "A sync round would have deleted more than the tenant's threshold (`percent` of a chain's objects, or more than `objects`): everything else was applied and the deletions wait for an operator to approve or reject them. `users` and `groups` count all that is held now, `sample` names a few.",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "users": { "type": "integer" }, "groups": { "type": "integer" },
                        "sample": { "type": "array", "items": { "type": "string" } },
                        "percent": { "type": "integer" }, "objects": { "type": "integer" } }),
                &["tenant_id", "users", "groups", "sample"],
            ),
        ),
        E::UserCreated | E::UserUpdated | E::GroupCreated | E::GroupUpdated => (
            "An object created or updated: one event per object, with its fields as now stored (as the directory API shows them; a group without its member count). An object that entered the tenant's sync scope is reported created, with `scope`: `entered`.",
            base(
                json!({ "tenant_id": uuid, "run_id": run, "object_id": uuid, "scope": { "type": "string", "enum": ["entered"] } }),
                &["tenant_id", "object_id"],
            ),
        ),
        E::CredentialRotated => (
            "Gangway rotated the provider app's credential before it expired: the new one is in use (the old one is removed once every process switched). `key_id` is the new credential's keyId on the app registration, `thumbprint` a certificate's SHA-1 thumbprint; the secret itself is never sent.",
            base(
                json!({ "kind": { "type": "string", "enum": ["certificate", "secret"] },
                        "key_id": uuid, "thumbprint": { "type": "string" },
                        "expires_at": { "type": "string", "format": "date-time" } }),
                &["kind", "expires_at"],
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
                "id": { "type": "string", "format": "uuid", "description": "The event's id, as the event stream (GET /api/v1/events) shows it." },
                "type": { "type": "string", "const": event },
                "timestamp": { "type": "string", "format": "date-time", "description": "When the change was made." },
                "data": data,
            },
            "required": ["id", "type", "timestamp", "data"],
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
