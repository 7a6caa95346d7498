//! The administrator's one sign-in for the setup: the OAuth 2.0 device authorization grant
//! (v2-oauth2-device-code) with a public client, because before the setup Gangway has no
//! registration of its own to sign in with. Gangway asks Entra ID for a user code, the
//! administrator enters it at Microsoft's page and signs in, and Gangway polls the token
//! endpoint — no slower than the `interval` Entra ID gives — for a delegated Graph token with
//! the setup's permissions ([`super::SETUP_SCOPES`]).
//!
//! The device code is a bearer credential until it expires: it is a [`Secret`], never logged.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::SETUP_SCOPES;
use crate::identity::{AadError, GRAPH_RESOURCE};
use crate::types::{Secret, TenantId};

/// Microsoft's "Microsoft Graph Command Line Tools", a public client present in every tenant:
/// the default of `GANGWAY_SETUP_CLIENT_ID`.
pub const DEFAULT_SETUP_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
/// The grant type of the device's polls.
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The least time between polls whatever Entra ID says, so a zero `interval` cannot spin.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Where the sign-in happens: Entra ID's host, the provider's tenant and the public client.
#[derive(Clone, Debug)]
pub struct DeviceLogin {
    /// The authority (`https://login.microsoftonline.com`).
    pub authority: Url,
    /// The provider's tenant: only its users can sign in.
    pub tenant: TenantId,
    /// The public client (`GANGWAY_SETUP_CLIENT_ID`).
    pub client_id: String,
}

/// Entra ID's answer to the device authorization request.
#[derive(Debug, Deserialize)]
pub struct Started {
    /// What the device polls with; a secret.
    #[serde(deserialize_with = "secret")]
    pub device_code: Secret,
    /// What the administrator types at [`Self::verification_uri`].
    pub user_code: String,
    /// Microsoft's page where the code is entered.
    pub verification_uri: String,
    /// Seconds until both codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    #[serde(default = "default_interval")]
    pub interval: u64,
    /// Microsoft's instructions (where to go, which code).
    pub message: String,
}

fn default_interval() -> u64 {
    5
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

impl Started {
    /// The wait between polls Entra ID asked for.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval).max(MIN_INTERVAL)
    }
}

/// Where a poll left the sign-in.
#[derive(Debug)]
pub enum Poll {
    /// The administrator has not finished: ask again after the interval.
    Pending,
    /// Signed in: their delegated Graph access token.
    SignedIn(Secret),
}

/// Why the sign-in ended without a token.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The administrator declined the consent, or could not grant it (`authorization_declined`).
    #[error(
        "the sign-in was declined: the administrator cancelled, or is not allowed to grant the permissions the setup needs ({})",
        .0.summary()
    )]
    Declined(Box<AadError>),
    /// The codes expired before the sign-in finished (`expired_token`).
    #[error("the code expired before the sign-in finished: start again")]
    Expired,
    /// Entra ID no longer knows the device code (`bad_verification_code`).
    #[error("Microsoft no longer knows this sign-in: start again")]
    Unknown,
    /// Entra ID refused the request: unknown tenant or client, a client that is not public…
    #[error("Microsoft refused the sign-in: {}", .0.summary())]
    Refused(Box<AadError>),
    /// Entra ID could not be reached or answered nonsense.
    #[error("could not reach Microsoft's sign-in: {0}")]
    Unreachable(String),
}

impl DeviceLogin {
    fn endpoint(&self, path: &str) -> Result<Url, SignInError> {
        self.authority
            .join(&format!("{}/oauth2/v2.0/{path}", self.tenant))
            .map_err(|e| SignInError::Unreachable(e.to_string()))
    }

    /// Asks Entra ID for a device code and a user code for the setup's delegated permissions.
    pub async fn start(&self, http: &reqwest::Client) -> Result<Started, SignInError> {
        let scope = SETUP_SCOPES
            .map(|s| format!("{GRAPH_RESOURCE}/{s}"))
            .join(" ");
        let response = http
            .post(self.endpoint("devicecode")?)
            .form(&[("client_id", self.client_id.as_str()), ("scope", &scope)])
            .send()
            .await
            .map_err(|e| SignInError::Unreachable(e.without_url().to_string()))?;
        if response.status().is_success() {
            response
                .json()
                .await
                .map_err(|e| SignInError::Unreachable(e.without_url().to_string()))
        } else {
            Err(SignInError::Refused(Box::new(refusal(response).await)))
        }
    }

    /// Asks once whether the administrator has signed in.
    pub async fn poll(
        &self,
        http: &reqwest::Client,
        device_code: &Secret,
    ) -> Result<Poll, SignInError> {
        let response = http
            .post(self.endpoint("token")?)
            .form(&[
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", self.client_id.as_str()),
                ("device_code", device_code.expose()),
            ])
            .send()
            .await
            .map_err(|e| SignInError::Unreachable(e.without_url().to_string()))?;
        if response.status().is_success() {
            #[derive(Deserialize)]
            struct Tokens {
                access_token: String,
            }
            let tokens: Tokens = response
                .json()
                .await
                .map_err(|e| SignInError::Unreachable(e.without_url().to_string()))?;
            return Ok(Poll::SignedIn(Secret::new(tokens.access_token)));
        }
        let error = refusal(response).await;
        match error.error.as_str() {
            "authorization_pending" | "slow_down" => Ok(Poll::Pending),
            "authorization_declined" => Err(SignInError::Declined(Box::new(error))),
            "expired_token" => Err(SignInError::Expired),
            "bad_verification_code" => Err(SignInError::Unknown),
            _ => Err(SignInError::Refused(Box::new(error))),
        }
    }

    /// Polls until the administrator has signed in, waiting `interval` between polls, or the
    /// codes expire.
    pub async fn wait(
        &self,
        http: &reqwest::Client,
        started: &Started,
    ) -> Result<Secret, SignInError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(started.expires_in);
        loop {
            tokio::time::sleep(started.interval()).await;
            match self.poll(http, &started.device_code).await? {
                Poll::SignedIn(token) => return Ok(token),
                Poll::Pending if tokio::time::Instant::now() >= deadline => {
                    return Err(SignInError::Expired);
                }
                Poll::Pending => {}
            }
        }
    }
}

/// Microsoft's error body, or what stands in for it when the body is not one.
async fn refusal(response: reqwest::Response) -> AadError {
    let status = response.status();
    response
        .json::<AadError>()
        .await
        .unwrap_or_else(|_| AadError {
            error: format!("HTTP {status}"),
            ..AadError::default()
        })
}
