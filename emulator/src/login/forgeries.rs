//! Forged tokens on request, so a relying party can prove it refuses them: once armed, the next
//! ID token (or access token for an exposed API) the emulator issues is spoiled in the chosen way.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::login::keys::{Keys, SigningKey};

/// How to spoil the next ID token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForgeryKind {
    /// Signed by a key that is not published (the header still names the current `kid`).
    WrongKey,
    /// `alg: none` and no signature.
    AlgNone,
    /// `aud` is some other client id.
    WrongAud,
    /// `iss` names another tenant.
    WrongIss,
    /// `exp` (and `iat`/`nbf`) an hour in the past.
    Expired,
    /// `nonce` differs from the one the app sent.
    BadNonce,
}

/// Which token a forgery spoils.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForgeryTarget {
    /// The next ID token (the default).
    #[default]
    IdToken,
    /// The next access token issued for an API an app exposes (not Graph's).
    AccessToken,
}

/// An armed forgery; `WrongKey` carries its unpublished key.
pub struct Forgery {
    kind: ForgeryKind,
    target: ForgeryTarget,
    foreign: Option<SigningKey>,
}

impl Forgery {
    /// Prepares a forgery of the next token of `target`; generating the foreign key is slow, so
    /// call it off the async threads.
    pub fn prepare_for(kind: ForgeryKind, target: ForgeryTarget) -> anyhow::Result<Self> {
        let foreign = match kind {
            ForgeryKind::WrongKey => Some(SigningKey::generate()?),
            _ => None,
        };
        Ok(Self {
            kind,
            target,
            foreign,
        })
    }

    /// Spoils `claims` and encodes the token.
    pub fn forge(&self, keys: &Keys, mut claims: Value, base_url: &str) -> anyhow::Result<String> {
        let now = claims["iat"].as_i64().unwrap_or_default();
        match self.kind {
            ForgeryKind::WrongAud => claims["aud"] = json!(Uuid::new_v4()),
            // Another tenant's issuer, in the token's own version.
            ForgeryKind::WrongIss if claims["ver"] == "1.0" => {
                claims["iss"] = json!(format!("https://sts.windows.net/{}/", Uuid::new_v4()))
            }
            ForgeryKind::WrongIss => {
                claims["iss"] = json!(format!("{base_url}/{}/v2.0", Uuid::new_v4()))
            }
            ForgeryKind::Expired => {
                claims["iat"] = json!(now - 7200);
                claims["nbf"] = json!(now - 7200);
                claims["exp"] = json!(now - 3600);
            }
            ForgeryKind::BadNonce => claims["nonce"] = json!(format!("forged-{}", Uuid::new_v4())),
            ForgeryKind::WrongKey | ForgeryKind::AlgNone => {}
        }
        match (&self.foreign, self.kind) {
            (Some(key), _) => keys.sign_with(key, &claims),
            (None, ForgeryKind::AlgNone) => {
                let header = json!({"typ": "JWT", "alg": "none", "kid": keys.current_kid()});
                Ok(format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                ))
            }
            (None, _) => keys.sign(&claims),
        }
    }

    /// What it does.
    pub fn kind(&self) -> ForgeryKind {
        self.kind
    }
}

/// The armed forgeries, if any: one for ID tokens, one for API access tokens.
#[derive(Default)]
pub struct Forgeries {
    id: Mutex<Option<Forgery>>,
    access: Mutex<Option<Forgery>>,
}

impl Forgeries {
    /// Arms `forgery` for the next token of its target (replacing one not yet used).
    pub fn arm(&self, forgery: Forgery) {
        let slot = match forgery.target {
            ForgeryTarget::IdToken => &self.id,
            ForgeryTarget::AccessToken => &self.access,
        };
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(forgery);
    }

    /// Takes the armed ID-token forgery, so it applies once.
    pub fn take(&self) -> Option<Forgery> {
        self.id.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Takes the armed API access-token forgery, so it applies once.
    pub fn take_access(&self) -> Option<Forgery> {
        self.access.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
