//! Writing the provider's own app registration: create or patch the `application`, create its
//! service principal, make it an owner of the registration, grant it Graph's application
//! permissions in the provider's tenant, add or remove client secrets
//! (`addPassword`/`removePassword`), and read its certificates with their keys.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Collection, GraphClient, GraphError};
use crate::types::Secret;

/// A client secret as `addPassword` returns it: the only time its text is shown.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPassword {
    /// Graph's id of the credential, what `removePassword` names.
    pub key_id: Uuid,
    /// The secret itself.
    #[serde(deserialize_with = "secret")]
    pub secret_text: Secret,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub end_date_time: OffsetDateTime,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPassword")
            .field("key_id", &self.key_id)
            .field("end_date_time", &self.end_date_time)
            .finish_non_exhaustive()
    }
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// A directory object as Graph lists it among owners.
#[derive(Debug, Deserialize)]
struct DirectoryObject {
    id: Uuid,
}

impl GraphClient {
    /// Sends `body` with `method` to `path` under the Graph base; the answer's body.
    async fn write(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        access_token: &Secret,
    ) -> Result<Vec<u8>, GraphError> {
        let request = self.http.request(method, self.url(path)?).json(body);
        self.send(request, access_token).await
    }

    /// `POST /v1.0/applications`: the new application (its `id` and `appId`).
    #[tracing::instrument(skip_all)]
    pub async fn create_application(
        &self,
        access_token: &Secret,
        body: &Value,
    ) -> Result<Value, GraphError> {
        let answer = self
            .write(Method::POST, "v1.0/applications", body, access_token)
            .await?;
        serde_json::from_slice(&answer).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// `PATCH /v1.0/applications/{object id}`: properties left out keep their values.
    #[tracing::instrument(skip_all)]
    pub async fn update_application(
        &self,
        access_token: &Secret,
        object_id: &str,
        body: &Value,
    ) -> Result<(), GraphError> {
        let path = format!("v1.0/applications/{object_id}");
        self.write(Method::PATCH, &path, body, access_token)
            .await
            .map(drop)
    }

    /// `GET /v1.0/applications/{object id}?$select=keyCredentials`: the certificates, each
    /// with its `key` (Graph returns it only on `$select` for a single object), so a `PATCH`
    /// can send the collection back whole with another added.
    #[tracing::instrument(skip_all)]
    pub async fn key_credentials(
        &self,
        access_token: &Secret,
        object_id: &str,
    ) -> Result<Vec<Value>, GraphError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyCredentials {
            #[serde(default)]
            key_credentials: Vec<Value>,
        }
        let url = self.url(&format!(
            "v1.0/applications/{object_id}?$select=keyCredentials"
        ))?;
        let app: KeyCredentials = self.get_json(url, access_token).await?;
        Ok(app.key_credentials)
    }

    /// `GET /v1.0/servicePrincipals(appId='…')`; `None` when the tenant has none.
    #[tracing::instrument(skip_all)]
    pub async fn service_principal(
        &self,
        access_token: &Secret,
        app_id: &str,
    ) -> Result<Option<Value>, GraphError> {
        let url = self.url(&format!("v1.0/servicePrincipals(appId='{app_id}')"))?;
        match self.get_json(url, access_token).await {
            Ok(sp) => Ok(Some(sp)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1.0/servicePrincipals`: the app's service principal in the token's tenant.
    #[tracing::instrument(skip_all)]
    pub async fn create_service_principal(
        &self,
        access_token: &Secret,
        app_id: &str,
    ) -> Result<Value, GraphError> {
        let answer = self
            .write(
                Method::POST,
                "v1.0/servicePrincipals",
                &json!({ "appId": app_id }),
                access_token,
            )
            .await?;
        serde_json::from_slice(&answer).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// `GET /v1.0/applications/{object id}/owners`: the owners' object ids.
    #[tracing::instrument(skip_all)]
    pub async fn application_owners(
        &self,
        access_token: &Secret,
        object_id: &str,
    ) -> Result<Vec<Uuid>, GraphError> {
        let url = self.url(&format!("v1.0/applications/{object_id}/owners"))?;
        let owners: Collection<DirectoryObject> = self.get_json(url, access_token).await?;
        Ok(owners.value.into_iter().map(|o| o.id).collect())
    }

    /// `POST /v1.0/applications/{object id}/owners/$ref`: adds `owner` (a directory object).
    #[tracing::instrument(skip_all)]
    pub async fn add_application_owner(
        &self,
        access_token: &Secret,
        object_id: &str,
        owner: Uuid,
    ) -> Result<(), GraphError> {
        let reference = self.url(&format!("v1.0/directoryObjects/{owner}"))?;
        let path = format!("v1.0/applications/{object_id}/owners/$ref");
        let body = json!({ "@odata.id": reference.as_str() });
        self.write(Method::POST, &path, &body, access_token)
            .await
            .map(drop)
    }

    /// `GET /v1.0/servicePrincipals/{id}/appRoleAssignments`: the ids of the app roles
    /// (application permissions) granted to the service principal.
    #[tracing::instrument(skip_all)]
    pub async fn granted_app_roles(
        &self,
        access_token: &Secret,
        service_principal: &str,
    ) -> Result<Vec<String>, GraphError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Assignment {
            app_role_id: String,
        }
        let url = self.url(&format!(
            "v1.0/servicePrincipals/{service_principal}/appRoleAssignments"
        ))?;
        let all: Collection<Assignment> = self.get_json(url, access_token).await?;
        Ok(all.value.into_iter().map(|a| a.app_role_id).collect())
    }

    /// `POST /v1.0/servicePrincipals/{id}/appRoleAssignments`: grants the service principal
    /// the app role `app_role_id` of the resource service principal `resource`.
    #[tracing::instrument(skip_all)]
    pub async fn grant_app_role(
        &self,
        access_token: &Secret,
        service_principal: &str,
        resource: &str,
        app_role_id: &str,
    ) -> Result<(), GraphError> {
        let path = format!("v1.0/servicePrincipals/{service_principal}/appRoleAssignments");
        let body = json!({
            "principalId": service_principal,
            "resourceId": resource,
            "appRoleId": app_role_id,
        });
        self.write(Method::POST, &path, &body, access_token)
            .await
            .map(drop)
    }

    /// `POST /v1.0/applications/{object id}/addPassword`: a new client secret valid until
    /// `ends`, named `display_name`.
    #[tracing::instrument(skip_all)]
    pub async fn add_password(
        &self,
        access_token: &Secret,
        object_id: &str,
        display_name: &str,
        ends: OffsetDateTime,
    ) -> Result<NewPassword, GraphError> {
        let ends = ends
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| GraphError::Decode(e.to_string()))?;
        let body = json!({
            "passwordCredential": { "displayName": display_name, "endDateTime": ends },
        });
        let path = format!("v1.0/applications/{object_id}/addPassword");
        let answer = self.write(Method::POST, &path, &body, access_token).await?;
        serde_json::from_slice(&answer).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// `POST /v1.0/applications/{object id}/removePassword`: the secret `key_id` stops working.
    #[tracing::instrument(skip_all)]
    pub async fn remove_password(
        &self,
        access_token: &Secret,
        object_id: &str,
        key_id: Uuid,
    ) -> Result<(), GraphError> {
        let path = format!("v1.0/applications/{object_id}/removePassword");
        self.write(
            Method::POST,
            &path,
            &json!({ "keyId": key_id }),
            access_token,
        )
        .await
        .map(drop)
    }
}
