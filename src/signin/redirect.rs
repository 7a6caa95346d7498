//! Redirect URIs: which may be registered for each kind of application, and whether a
//! presented one matches a registered one. Exact string match, except that a native
//! application's loopback URI matches on any port (RFC 8252 §7.3).

use url::{Host, Url};

use super::AppKind;

/// The longest redirect URI accepted.
const MAX_URI_CHARS: usize = 2_000;

/// Whether `url` names this machine by IP literal or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A private-use URI scheme as RFC 8252 §7.1 asks: a reverse domain name (it has a dot).
fn is_private_use_scheme(scheme: &str) -> bool {
    scheme.contains('.') && !matches!(scheme, "http" | "https")
}

/// Checks a URI an administrator registers as a redirect (or post-logout redirect) URI of an
/// application of `kind`: absolute, no fragment; `https`, or `http` on loopback; native
/// applications may also use a private-use scheme (`com.example.app:/callback`).
pub fn check_registered(kind: AppKind, raw: &str) -> Result<Url, String> {
    if raw.is_empty() || raw.len() > MAX_URI_CHARS || raw.trim() != raw {
        return Err(format!("\u{201c}{raw}\u{201d} is not a URI"));
    }
    let url =
        Url::parse(raw).map_err(|_| format!("\u{201c}{raw}\u{201d} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!(
            "\u{201c}{raw}\u{201d} has a fragment (#…), which redirect URIs may not"
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "\u{201c}{raw}\u{201d} uses http: only https is allowed, except on loopback (127.0.0.1, [::1], localhost)"
        )),
        scheme if kind == AppKind::Native && is_private_use_scheme(scheme) => Ok(url),
        _ if kind == AppKind::Native => Err(format!(
            "\u{201c}{raw}\u{201d}: a native application redirects to https, to loopback, or to a private-use scheme named as a reverse domain (com.example.app:/callback)"
        )),
        _ => Err(format!("\u{201c}{raw}\u{201d} must use https")),
    }
}

/// Whether `presented` is one of `registered` for an application of `kind`: exactly, or for a
/// native application, a registered loopback IP-literal URI with any port.
pub fn matches(kind: AppKind, registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    if kind != AppKind::Native {
        return false;
    }
    let Ok(asked) = Url::parse(presented) else {
        return false;
    };
    if asked.scheme() != "http" || !matches!(asked.host(), Some(Host::Ipv4(_) | Host::Ipv6(_))) {
        return false;
    }
    registered
        .iter()
        .filter_map(|r| Url::parse(r).ok())
        .any(|r| {
            r.scheme() == "http"
                && is_loopback(&r)
                && r.host() == asked.host()
                && r.path() == asked.path()
                && r.query() == asked.query()
                && asked.fragment().is_none()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_apps_register_https_or_loopback_http_only() {
        assert!(check_registered(AppKind::Web, "https://app.example/cb").is_ok());
        assert!(check_registered(AppKind::Web, "http://127.0.0.1:8080/cb").is_ok());
        assert!(check_registered(AppKind::Web, "http://app.example/cb").is_err());
        assert!(check_registered(AppKind::Web, "https://app.example/cb#x").is_err());
        assert!(check_registered(AppKind::Web, "com.example.app:/cb").is_err());
        assert!(check_registered(AppKind::Spa, "javascript:alert(1)").is_err());
        assert!(check_registered(AppKind::Native, "com.example.app:/cb").is_ok());
        assert!(check_registered(AppKind::Native, "myapp:/cb").is_err());
    }

    #[test]
    fn only_native_loopback_uris_match_on_any_port() {
        let native = vec!["http://127.0.0.1/callback".to_owned()];
        assert!(matches(
            AppKind::Native,
            &native,
            "http://127.0.0.1:53122/callback"
        ));
        assert!(!matches(
            AppKind::Native,
            &native,
            "http://127.0.0.1:53122/other"
        ));
        assert!(!matches(
            AppKind::Native,
            &native,
            "http://127.0.0.2:53122/callback"
        ));
        assert!(!matches(
            AppKind::Native,
            &native,
            "https://127.0.0.1:53122/callback"
        ));
        let web = vec!["http://127.0.0.1:4000/callback".to_owned()];
        assert!(matches(
            AppKind::Web,
            &web,
            "http://127.0.0.1:4000/callback"
        ));
        assert!(!matches(
            AppKind::Web,
            &web,
            "http://127.0.0.1:4001/callback"
        ));
        assert!(!matches(
            AppKind::Web,
            &web,
            "http://127.0.0.1:4000/callback/"
        ));
    }
}
