//! Invitation link tokens: 32 random bytes, base64url; only their SHA-256 is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::{random_token, sha256};

/// A token as it travels in a link. Never stored, never logged.
pub struct InvitationToken(String);

impl InvitationToken {
    /// Mints a fresh token from the OS's random source.
    pub fn mint() -> Self {
        Self(random_token())
    }

    /// Accepts only strings shaped like a minted token, so junk never reaches the database.
    pub fn parse(value: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(value.trim()).ok()?;
        (decoded.len() == 32).then(|| Self(value.trim().to_owned()))
    }

    /// What the database keeps.
    pub fn hash(&self) -> Vec<u8> {
        sha256(self.0.as_bytes())
    }

    /// The token text, for building the link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for InvitationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InvitationToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_junk_does_not() {
        let token = InvitationToken::mint();
        assert_eq!(token.expose().len(), 43);
        let parsed = InvitationToken::parse(token.expose()).unwrap();
        assert_eq!(parsed.hash(), token.hash());
        assert_ne!(InvitationToken::mint().hash(), token.hash());
        for junk in ["", "abc", "' or 1=1 --", &"A".repeat(44)] {
            assert!(InvitationToken::parse(junk).is_none(), "{junk}");
        }
    }
}
