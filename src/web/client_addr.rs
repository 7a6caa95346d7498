//! The client's address as Gangway sees it: the peer, or — when the peer is a trusted proxy —
//! the address the proxies say they forwarded for.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};

use super::error::Error;
use crate::config::{Config, TrustedProxies};

/// Who sent a request, for rate limits and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    /// The client's IP address.
    pub fn ip(self) -> IpAddr {
        self.0
    }

    /// The client behind `peer`. Forwarding headers count only when `peer` is trusted, and
    /// then they are read from the right (each proxy appends the address it saw) past trusted
    /// hops to the first untrusted address: everything left of it is whatever the client
    /// chose to send. `X-Forwarded-For` wins over `Forwarded` when both are present, as nearly
    /// every proxy appends the former and passes the latter on untouched. A hop that cannot be
    /// read leaves the peer as the client.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let peer = peer.to_canonical();
        if !trusted.contains(peer) {
            return Self(peer);
        }
        let hops = if headers.contains_key(X_FORWARDED_FOR) {
            walk(headers, &X_FORWARDED_FOR, trusted, xff_hop)
        } else {
            walk(headers, &header::FORWARDED, trusted, forwarded_hop)
        };
        Self(hops.unwrap_or(peer))
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S> FromRequestParts<S> for ClientAddr
where
    Arc<Config>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or_else(|| {
                Error::Internal(anyhow::anyhow!(
                    "the server was started without peer addresses"
                ))
            })?;
        let cfg = Arc::<Config>::from_ref(state);
        Ok(Self::resolve(
            peer.ip(),
            &parts.headers,
            &cfg.trusted_proxies,
        ))
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The first untrusted hop from the right of every `name` header line taken as one list, or
/// the leftmost one when all are trusted; `None` when none is present or a hop reached is
/// unreadable. Hops are parsed only as far as the walk goes, so junk a client put in front
/// cannot push it back to the shared peer address.
fn walk(
    headers: &HeaderMap,
    name: &HeaderName,
    trusted: &TrustedProxies,
    hop: fn(&[u8]) -> Option<IpAddr>,
) -> Option<IpAddr> {
    let lines: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
    let mut last = None;
    for element in lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|&b| b == b','))
    {
        let addr = hop(element)?.to_canonical();
        if !trusted.contains(addr) {
            return Some(addr);
        }
        last = Some(addr);
    }
    last
}

/// One `X-Forwarded-For` entry: an address, some proxies add a port.
fn xff_hop(entry: &[u8]) -> Option<IpAddr> {
    node(std::str::from_utf8(entry).ok()?.trim())
}

/// One RFC 7239 element (`for=…;proto=…;by=…`): its `for` node. `unknown` and obfuscated
/// identifiers (`_hidden`) name no address, so they count as unreadable.
fn forwarded_hop(element: &[u8]) -> Option<IpAddr> {
    let element = std::str::from_utf8(element).ok()?;
    let value = element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    node(value)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn node(value: &str) -> Option<IpAddr> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    value
        .strip_prefix('[')?
        .strip_suffix(']')?
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn client(peer: &str, trusted: &str, headers: &[(&str, &str)]) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        let trusted = TrustedProxies::parse(trusted).unwrap();
        ClientAddr::resolve(peer.parse().unwrap(), &map, &trusted).to_string()
    }

    const XFF: &str = "x-forwarded-for";

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        assert_eq!(
            client("203.0.113.9", "", &[(XFF, "198.51.100.1")]),
            "203.0.113.9"
        );
        assert_eq!(
            client(
                "203.0.113.9",
                "10.0.0.0/8",
                &[("forwarded", "for=198.51.100.1")]
            ),
            "203.0.113.9"
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_hops_are_walked_from_the_right() {
        let lb = "10.0.0.0/8";
        assert_eq!(
            client("10.0.0.2", lb, &[(XFF, "198.51.100.1")]),
            "198.51.100.1"
        );
        // A client-supplied prefix is skipped: the first untrusted hop from the right counts.
        assert_eq!(
            client("10.0.0.2", lb, &[(XFF, "1.1.1.1, 198.51.100.1, 10.0.0.7")]),
            "198.51.100.1"
        );
        // Several header lines are one list, in order.
        assert_eq!(
            client("10.0.0.2", lb, &[(XFF, "1.1.1.1"), (XFF, "198.51.100.1")]),
            "198.51.100.1"
        );
        // Junk left of the client does not matter; a port is dropped.
        assert_eq!(
            client("10.0.0.2", lb, &[(XFF, "<script>, 198.51.100.1:5100")]),
            "198.51.100.1"
        );
        // All hops trusted: the leftmost is the client.
        assert_eq!(
            client("10.0.0.2", lb, &[(XFF, "10.9.9.9, 10.0.0.7")]),
            "10.9.9.9"
        );
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.2", lb, &[]), "10.0.0.2");
        // IPv4-mapped peers are IPv4.
        assert_eq!(
            client("::ffff:10.0.0.2", lb, &[(XFF, "::ffff:198.51.100.1")]),
            "198.51.100.1"
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let lb = "10.0.0.0/8";
        let forwarded = |value| client("10.0.0.2", lb, &[("forwarded", value)]);
        assert_eq!(forwarded("for=198.51.100.1;proto=https"), "198.51.100.1");
        assert_eq!(
            forwarded(r#"for=1.1.1.1, For="[2001:db8:cafe::17]:4711";by=10.0.0.2, for=10.0.0.5"#),
            "2001:db8:cafe::17"
        );
        assert_eq!(forwarded(r#"for="198.51.100.1:80""#), "198.51.100.1");
        // With both, X-Forwarded-For is the proxy's.
        assert_eq!(
            client(
                "10.0.0.2",
                lb,
                &[("forwarded", "for=1.1.1.1"), (XFF, "198.51.100.1")]
            ),
            "198.51.100.1"
        );
    }

    #[test]
    fn unreadable_hops_leave_the_peer_as_the_client() {
        let lb = "10.0.0.0/8";
        for (name, value) in [
            (XFF, "not-an-address"),
            (XFF, "198.51.100.1, "),
            (XFF, "198.51.100.1, 10.0.0.7, 300.1.1.1"),
            ("forwarded", "for=unknown"),
            ("forwarded", "for=_hidden"),
            ("forwarded", "proto=https"),
            ("forwarded", r#"for="[2001:db8::1]"#),
            ("forwarded", "for=[2001:db8::1]:80x"),
        ] {
            assert_eq!(
                client("10.0.0.2", lb, &[(name, value)]),
                "10.0.0.2",
                "{value}"
            );
        }
    }
}
