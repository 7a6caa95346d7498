//! How a customer grants the provider access to their tenant.

use super::Invalid;

/// How the customer grants access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// The admin signs in and consents for themselves; Gangway keeps a refresh token.
    Delegated,
    /// The admin grants the provider's app application permissions for the whole tenant.
    Application,
    /// The admin registers an app in their own tenant and hands over its credentials.
    CustomerApp,
}

impl ConsentMode {
    /// All modes, for forms.
    pub const ALL: [ConsentMode; 3] = [
        ConsentMode::Delegated,
        ConsentMode::Application,
        ConsentMode::CustomerApp,
    ];

    /// Accepts `delegated`, `application`, `customer-app` or `customer_app`.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        match value.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "delegated" => Ok(Self::Delegated),
            "application" => Ok(Self::Application),
            "customer_app" => Ok(Self::CustomerApp),
            _ => Err(Invalid(
                "mode must be delegated, application or customer-app".into(),
            )),
        }
    }

    /// The stored and CLI form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delegated => "delegated",
            Self::Application => "application",
            Self::CustomerApp => "customer_app",
        }
    }

    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Delegated => "Delegated (admin signs in)",
            Self::Application => "Application (admin consent)",
            Self::CustomerApp => "Customer's own app",
        }
    }
}
