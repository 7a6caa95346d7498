//! How customers see the provider.

use url::Url;

use super::EmailAddress;

/// How customers see the provider: on every wizard page, in the invitation mail, on errors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Branding {
    /// The provider's name.
    pub name: String,
    /// Its logo.
    pub logo_url: Option<Url>,
    /// Support by email.
    pub support_email: Option<EmailAddress>,
    /// Support on the web.
    pub support_url: Option<Url>,
    /// Terms of service.
    pub terms_url: Option<Url>,
    /// Privacy statement.
    pub privacy_url: Option<Url>,
}

/// The provider's name, as sentences use it.
impl std::fmt::Display for Branding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Branding {
    /// Whether customers are given a support email or page to write to.
    pub fn has_support_contact(&self) -> bool {
        self.support_email.is_some() || self.support_url.is_some()
    }

    /// "contact X" in words that say how: the email and/or the page, else the person who
    /// invited them (the console warns the operator that no contact is set).
    pub fn contact(&self) -> String {
        match (&self.support_email, &self.support_url) {
            (Some(mail), Some(url)) => format!("{} ({} or {})", self.name, mail.as_str(), url),
            (Some(mail), None) => format!("{} at {}", self.name, mail.as_str()),
            (None, Some(url)) => format!("{} at {}", self.name, url),
            (None, None) => format!("the person at {} who invited you", self.name),
        }
    }
}
