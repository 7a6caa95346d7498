//! An application rolling its own certificates: `POST /v1.0/applications/{id}/addKey` and
//! `removeKey`, each with a proof of possession signed by a current certificate of the app.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{GraphClient, GraphError};
use crate::types::Secret;

/// The `keyCredential` Graph answers `addKey` with (the parts Gangway keeps).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedKey {
    /// The credential's id on the application, which `removeKey` names.
    pub key_id: Uuid,
}

impl GraphClient {
    /// `POST /v1.0/applications/{object_id}/addKey`: registers the certificate `der` (public
    /// part only) as `display_name`, proven by `proof`.
    #[tracing::instrument(skip_all)]
    pub async fn add_key(
        &self,
        access_token: &Secret,
        object_id: &str,
        der: &[u8],
        display_name: &str,
        proof: &str,
    ) -> Result<AddedKey, GraphError> {
        let body = json!({
            "keyCredential": {
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "key": STANDARD.encode(der),
                "displayName": display_name,
            },
            "passwordCredential": null,
            "proof": proof,
        });
        let url = self.url(&format!("v1.0/applications/{object_id}/addKey"))?;
        let body = self
            .send(self.http.post(url).json(&body), access_token)
            .await?;
        serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// `POST /v1.0/applications/{object_id}/removeKey` of the credential `key_id`, proven by
    /// `proof`; one already gone counts as removed.
    #[tracing::instrument(skip_all)]
    pub async fn remove_key(
        &self,
        access_token: &Secret,
        object_id: &str,
        key_id: Uuid,
        proof: &str,
    ) -> Result<(), GraphError> {
        let url = self.url(&format!("v1.0/applications/{object_id}/removeKey"))?;
        let request = self
            .http
            .post(url)
            .json(&json!({"keyId": key_id, "proof": proof}));
        match self.send(request, access_token).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }
}
