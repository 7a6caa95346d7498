//! A permission profile's value: what an invitation asks of a tenant, per consent mode, with
//! the reasons the customer is shown. Stored and edited by `settings::profiles`.

use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::permissions::{self, DELEGATED_EXTRAS};
use crate::types::ConsentMode;

/// One permission and why it is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// The Graph permission, e.g. `User.Read.All`.
    pub name: String,
    /// What it allows, in plain words.
    pub plain: String,
    /// Why the provider needs it.
    pub why: String,
}

impl From<&permissions::Permission> for Permission {
    fn from(p: &permissions::Permission) -> Self {
        Self {
            name: p.name.into(),
            plain: p.plain.into(),
            why: p.why.into(),
        }
    }
}

/// A profile as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Profile {
    /// Its id.
    pub id: super::ProfileId,
    /// Its name, unique whatever the case.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Delegated Graph scopes (the OpenID ones are added by the sign-in).
    pub delegated: Json<Vec<Permission>>,
    /// Application permissions.
    pub application: Json<Vec<Permission>>,
    /// Gangway's own read-only profile: kept current by Gangway, not editable.
    pub built_in: bool,
    /// Picked for invitations that name none.
    pub is_default: bool,
}

impl Profile {
    /// What the admin is asked to grant in `mode`, in plain words (delegated sign-ins add
    /// `openid profile` and `offline_access`).
    pub fn for_mode(&self, mode: ConsentMode) -> Vec<Permission> {
        match mode {
            ConsentMode::Delegated => self
                .delegated
                .iter()
                .cloned()
                .chain(DELEGATED_EXTRAS.iter().map(Permission::from))
                .collect(),
            ConsentMode::Application | ConsentMode::CustomerApp => self.application.0.clone(),
        }
    }

    /// The delegated Graph scopes a sign-in asks for.
    pub fn delegated_scopes(&self) -> Vec<String> {
        self.delegated.iter().map(|p| p.name.clone()).collect()
    }

    /// The application permissions the app registration needs for this profile.
    pub fn application_scopes(&self) -> Vec<String> {
        self.application.iter().map(|p| p.name.clone()).collect()
    }
}
