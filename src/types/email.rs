//! Email addresses and domain names, checked for shape where they enter.

use super::Invalid;

/// An email address: `local@domain.tld` without spaces or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses an address (surrounding spaces are dropped).
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        let bad = || Invalid(format!("`{value}` is not an email address"));
        let (local, domain) = value.split_once('@').ok_or_else(bad)?;
        let ok = !local.is_empty()
            && value.len() <= 254
            && is_domain(domain)
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c))
            && !local.contains('@');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(bad())
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DNS domain name such as `contoso.com`, lowercase, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainName(String);

impl DomainName {
    /// Parses a domain name (any case, an optional trailing dot).
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim().trim_end_matches('.').to_ascii_lowercase();
        if is_domain(&value) {
            Ok(Self(value))
        } else {
            Err(Invalid(format!(
                "`{value}` is not a domain name such as contoso.com"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_domain(value: &str) -> bool {
    let labels: Vec<&str> = value.split('.').collect();
    labels.len() >= 2
        && value.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_domains_are_checked_for_shape() {
        assert_eq!(EmailAddress::parse(" a@b.co ").unwrap().as_str(), "a@b.co");
        for bad in ["a", "a@b", "a b@c.co", "a@b@c.co", "a\0@b.co", "<a@b.co>"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            DomainName::parse("Contoso.COM.").unwrap().as_str(),
            "contoso.com"
        );
        for bad in ["contoso", "-a.com", "a..com", "no spaces.com x"] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
