//! Change-notification subscriptions (`/v1.0/subscriptions`): create, list, renew,
//! reauthorize, delete. Graph validates the notification URL while it creates one.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Collection, GraphClient, GraphError};
use crate::types::Secret;

/// What a new subscription asks for.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubscription<'a> {
    /// `updated,deleted` and the like.
    pub change_type: &'a str,
    /// Where Graph POSTs change notifications.
    pub notification_url: &'a str,
    /// Where Graph POSTs lifecycle notifications (it cannot be added later).
    pub lifecycle_notification_url: &'a str,
    /// `users` or `groups`.
    pub resource: &'a str,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    pub expiration_date_time: OffsetDateTime,
    /// Sent back with every notification; a secret (at most 128 characters).
    pub client_state: &'a str,
}

/// A subscription as Graph describes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Graph's id.
    pub id: String,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    pub expiration_date_time: OffsetDateTime,
}

impl GraphClient {
    /// `POST /v1.0/subscriptions`.
    #[tracing::instrument(skip_all)]
    pub async fn create_subscription(
        &self,
        access_token: &Secret,
        new: &NewSubscription<'_>,
    ) -> Result<Subscription, GraphError> {
        let request = self.http.post(self.url("v1.0/subscriptions")?).json(new);
        decode(&self.send(request, access_token).await?)
    }

    /// `GET /v1.0/subscriptions`: the subscriptions this app holds in the token's tenant.
    #[tracing::instrument(skip_all)]
    pub async fn subscriptions(
        &self,
        access_token: &Secret,
    ) -> Result<Vec<Subscription>, GraphError> {
        let all: Collection<Subscription> = self
            .get_json(self.url("v1.0/subscriptions")?, access_token)
            .await?;
        Ok(all.value)
    }

    /// `PATCH /v1.0/subscriptions/{id}` with a new `expirationDateTime`.
    #[tracing::instrument(skip_all)]
    pub async fn renew_subscription(
        &self,
        access_token: &Secret,
        id: &str,
        expires: OffsetDateTime,
    ) -> Result<Subscription, GraphError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Renewal {
            #[serde(with = "time::serde::rfc3339")]
            expiration_date_time: OffsetDateTime,
        }
        let request = self
            .http
            .request(Method::PATCH, self.subscription_url(id, "")?)
            .json(&Renewal {
                expiration_date_time: expires,
            });
        decode(&self.send(request, access_token).await?)
    }

    /// `POST /v1.0/subscriptions/{id}/reauthorize`, after a `reauthorizationRequired`.
    #[tracing::instrument(skip_all)]
    pub async fn reauthorize_subscription(
        &self,
        access_token: &Secret,
        id: &str,
    ) -> Result<(), GraphError> {
        let request = self.http.post(self.subscription_url(id, "/reauthorize")?);
        self.send(request, access_token).await.map(drop)
    }

    /// `DELETE /v1.0/subscriptions/{id}`; one already gone counts as deleted.
    #[tracing::instrument(skip_all)]
    pub async fn delete_subscription(
        &self,
        access_token: &Secret,
        id: &str,
    ) -> Result<(), GraphError> {
        let request = self.http.delete(self.subscription_url(id, "")?);
        match self.send(request, access_token).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    fn subscription_url(&self, id: &str, rest: &str) -> Result<url::Url, GraphError> {
        let mut url = self.url("v1.0/subscriptions")?;
        url.path_segments_mut()
            .map_err(|()| GraphError::Decode("Graph base cannot take a path".into()))?
            .push(id);
        if !rest.is_empty() {
            url.set_path(&format!("{}{rest}", url.path()));
        }
        Ok(url)
    }
}

fn decode(body: &[u8]) -> Result<Subscription, GraphError> {
    serde_json::from_slice(body).map_err(|e| GraphError::Decode(e.to_string()))
}
