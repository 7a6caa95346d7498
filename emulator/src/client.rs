//! A client for the admin API (`/_emulator/…`), for demos and tests that drive an emulator.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::Emulator;

/// A seeded emulator tenant as the admin API describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct EmulatedTenant {
    /// Tenant id (GUID).
    pub id: String,
    /// Organization name.
    pub display_name: String,
    /// Default (initial) domain.
    pub domain: String,
    /// Every verified domain.
    #[serde(default)]
    pub domains: Vec<String>,
    /// The Global Administrator's sign-in.
    pub admin: EmulatedLogin,
    /// A plain member's sign-in, when the tenant has one.
    pub member: Option<EmulatedLogin>,
}

/// A seeded user's sign-in.
#[derive(Debug, Clone, Deserialize)]
pub struct EmulatedLogin {
    /// User principal name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Object id.
    pub id: String,
}

/// An app registered in the emulator.
#[derive(Debug, Clone, Deserialize)]
pub struct RegisteredApp {
    /// Application (client) id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
}

/// The emulator's admin API (`/_emulator/…`).
#[derive(Clone)]
pub struct EmulatorAdmin {
    base: String,
    http: reqwest::Client,
}

impl EmulatorAdmin {
    /// A client for `emulator`, trusting its CA when it serves HTTPS.
    pub fn new(emulator: &Emulator) -> anyhow::Result<Self> {
        Self::at(emulator.base_url(), emulator.ca_pem())
    }

    /// A client for the emulator another process serves at `base_url`, trusting `ca_pem`
    /// when it serves HTTPS.
    pub fn at(base_url: &str, ca_pem: Option<&str>) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder();
        if let Some(pem) = ca_pem {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
        }
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http: http.build()?,
        })
    }

    /// The seeded tenants; the first is the provider's home tenant.
    pub async fn tenants(&self) -> anyhow::Result<Vec<EmulatedTenant>> {
        Ok(self
            .http
            .get(format!("{}/_emulator/tenants", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Registers an app (see the emulator's README for the fields).
    pub async fn register_app(&self, body: &Value) -> anyhow::Result<RegisteredApp> {
        let created = self.post("/_emulator/apps", body).await?;
        Ok(serde_json::from_value(created)?)
    }

    /// Grants `client_id` permissions in `tenant` without the consent UI.
    pub async fn grant(
        &self,
        tenant: &str,
        client_id: &str,
        delegated: &[&str],
        application: &[&str],
    ) -> anyhow::Result<()> {
        let body =
            json!({ "client_id": client_id, "delegated": delegated, "application": application });
        self.post(&format!("/_emulator/tenants/{tenant}/consents"), &body)
            .await?;
        Ok(())
    }

    /// POSTs `body` to an admin path such as `/_emulator/forgeries`; `null` when nothing is answered.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// GETs an admin path such as `/_emulator/graph`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// PATCHes `body` to an admin path such as `/_emulator/tenants/{tid}/users/{id}`.
    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// DELETEs an admin path such as `/_emulator/tenants/{tid}/users/{id}?hard=true`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
            .map(drop)
    }

    /// Sends an admin call: its JSON answer (`null` when there is none), or the status and
    /// the emulator's `{"error": …}` message as the error.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!(
                "the emulator answered {status}: {}",
                body["error"].as_str().unwrap_or("no message")
            );
        }
        Ok(body)
    }
}
