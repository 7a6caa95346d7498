//! Where webhooks may go. An endpoint URL names any host, so without a check Gangway would POST
//! to its own network for whoever adds an endpoint: loopback, private and link-local addresses,
//! the cloud metadata service. Such addresses are refused, when the endpoint is saved and again
//! when each event is sent, unless an admin allow-lists them (System Settings → Webhooks may
//! reach, audited like every setting).
//!
//! At send time the host is resolved by Gangway's own resolver, which drops every address the
//! rules refuse, and the connection goes to the addresses it returned: a name that resolves to
//! a public address when checked and to an internal one when connecting (DNS rebinding) never
//! reaches the internal one. Redirects are not followed and no proxy is used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use ipnet::IpNet;
use sqlx::PgPool;

/// The System Setting holding the allow-list.
pub const SETTING: &str = "webhook_allowed_networks";

/// The longest a save waits for DNS before accepting a name it could not resolve (the send
/// checks it again).
const SAVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What an admin allowed webhooks to reach beyond the public internet: networks (CIDRs or
/// single addresses) and host names (allowed whatever they resolve to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl Allowed {
    /// The allow-list from its entries: `10.20.0.0/16`, `127.0.0.1`, `::1`, `hooks.internal`.
    /// Names the first entry that is none of these.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut allowed = Self::default();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                allowed.nets.push(net.trunc());
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                allowed.nets.push(IpNet::from(canonical(ip)));
            } else if is_host_name(entry) {
                allowed.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{entry}` is not a network (10.20.0.0/16), an address (127.0.0.1, ::1) or a host name"
                ));
            }
        }
        Ok(allowed)
    }

    /// Whether webhooks may connect to `ip`: a public address, or one in an allowed network.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        internal_kind(ip).is_none() || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether the admin allowed host name `host` whatever it resolves to.
    fn lists_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

fn is_host_name(entry: &str) -> bool {
    entry.len() <= 253
        && entry.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The allow-list as stored (none: nothing beyond the public internet).
pub async fn allowed(db: &PgPool) -> Result<Allowed, sqlx::Error> {
    let stored = sqlx::query_scalar!("select value from settings where key = $1", SETTING)
        .fetch_optional(db)
        .await?
        .flatten();
    let entries: Vec<String> = stored
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    // The setting is checked when saved; an entry that no longer parses allows nothing.
    Ok(Allowed::parse(&entries).unwrap_or_default())
}

/// IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`)
/// as the IPv4 address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let from = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => from(hi, lo),
        [0x2002, hi, lo, ..] => from(hi, lo),
        _ => ip,
    }
}

/// Address ranges webhooks may not reach unless allow-listed, with what each is.
static INTERNAL: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    [
        ("169.254.169.254/32", "the cloud metadata service's address"),
        ("0.0.0.0/8", "an unspecified (\"this network\") address"),
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("169.254.0.0/16", "a link-local address"),
        ("192.0.0.0/24", "an address reserved for IETF protocols"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "an IPv4-compatible (deprecated) address"),
        ("100::/64", "a discard address"),
        ("2001:db8::/32", "a documentation address"),
        ("fc00::/7", "a unique local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local (deprecated) address"),
        ("ff00::/8", "a multicast address"),
    ]
    .into_iter()
    .map(|(net, kind)| (net.parse().expect("a valid network"), kind))
    .collect()
});

/// What kind of non-public address `ip` is ("a loopback address"), or `None` for a public one.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    let ip = canonical(ip);
    INTERNAL
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, kind)| *kind)
}

/// Why `url` may not be an endpoint, in words for the form; checks the host as written (an
/// address, or `localhost`) and, for a name, what it resolves to now (a name that does not
/// resolve yet is accepted: each send checks it again). http:// only to an allowed host.
pub async fn check(url: &url::Url, allowed: &Allowed) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let named = |ip: IpAddr| -> Result<(), String> {
        match internal_kind(ip) {
            Some(kind) if !allowed.admits(ip) => Err(format!(
                "{host} is {kind} ({ip}): webhooks may not reach it unless an admin allows it under System Settings → Webhooks may reach."
            )),
            _ => Ok(()),
        }
    };
    let addresses: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(_)) if allowed.lists_host(host) => Vec::new(),
        Some(url::Host::Domain(d)) if d == "localhost" || d.ends_with(".localhost") => {
            vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
        }
        Some(url::Host::Domain(d)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            match tokio::time::timeout(SAVE_LOOKUP_TIMEOUT, tokio::net::lookup_host((d, port)))
                .await
            {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                _ => Vec::new(),
            }
        }
        None => return Err("The URL has no host.".into()),
    };
    for ip in &addresses {
        named(*ip)?;
    }
    let allow_listed = allowed.lists_host(host)
        || (!addresses.is_empty()
            && addresses
                .iter()
                .all(|ip| internal_kind(*ip).is_some() && allowed.admits(*ip)));
    if url.scheme() == "http" && !allow_listed {
        return Err(
            "The URL must be https:// (http:// only to a host an admin allows under System Settings → Webhooks may reach).".into(),
        );
    }
    Ok(())
}

/// Gangway's resolver for webhook deliveries: the system's answer without the addresses
/// [`Allowed`] refuses (all of them for an allow-listed host name); none left is an error that
/// says so, and reqwest connects only to what it returns.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    allowed: Arc<RwLock<Allowed>>,
}

impl Resolver {
    /// Uses `allowed` from now on (each delivery round reads it again).
    pub fn set(&self, allowed: Allowed) {
        *self.allowed.write().expect("allow-list lock") = allowed;
    }

    /// The allow-list in use.
    pub fn allowed(&self) -> Allowed {
        self.allowed.read().expect("allow-list lock").clone()
    }
}

/// An outbound client whose names resolve through `resolver` (so internal addresses are never
/// connected to): `timeout`, no redirects followed, no proxy.
pub fn client(resolver: &Resolver, user_agent: &str, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(resolver.clone()))
        .user_agent(user_agent)
        .build()
        .expect("the outbound client builds")
}

/// Why nothing may be sent to `url` when its host is an address `allowed` refuses: an address
/// written in the URL is not resolved, so the resolver never sees it.
pub fn literal_refusal(url: &str, allowed: &Allowed) -> Option<String> {
    let ip = match url::Url::parse(url).ok()?.host()? {
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    (!allowed.admits(ip)).then(|| {
        format!(
            "not sent: {ip} is {}, which webhooks may not reach",
            internal_kind(ip).unwrap_or("an internal address")
        )
    })
}

/// A failed request in words for the delivery log: the resolver's refusal, no answer within
/// `timeout`, no connection.
pub fn failure(e: &reqwest::Error, timeout: Duration) -> String {
    let refused = std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find_map(|e| e.downcast_ref::<Refused>());
    if let Some(refused) = refused {
        format!("not sent: {refused}")
    } else if e.is_timeout() {
        format!("no answer within {} s", timeout.as_secs())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        format!("request failed: {e}")
    }
}

/// A host that resolved only to addresses webhooks may not reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves only to addresses webhooks may not reach ({addresses}); an admin can allow them under System Settings → Webhooks may reach"
)]
pub struct Refused {
    host: String,
    addresses: String,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let open = allowed.lists_host(&host);
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| open || allowed.admits(a.ip()))
                .collect();
            if kept.is_empty() {
                let addresses = found
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(Refused { host, addresses }) as _);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_of_both_families_are_recognised() {
        for internal in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(internal_kind(ip(internal)).is_some(), "{internal}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(internal_kind(ip(public)), None, "{public}");
        }
        assert_eq!(
            internal_kind(ip("::ffff:169.254.169.254")),
            Some("the cloud metadata service's address")
        );
    }

    #[test]
    fn the_allow_list_admits_its_networks_and_names_a_bad_entry() {
        let allowed = Allowed::parse(&[
            "127.0.0.0/8".into(),
            "fd00::1".into(),
            "hooks.internal".into(),
        ])
        .unwrap();
        assert!(allowed.admits(ip("127.0.0.1")));
        assert!(allowed.admits(ip("::ffff:127.0.0.1")));
        assert!(allowed.admits(ip("fd00::1")));
        assert!(!allowed.admits(ip("fd00::2")));
        assert!(!allowed.admits(ip("::1")));
        assert!(!allowed.admits(ip("10.0.0.1")));
        assert!(allowed.admits(ip("1.1.1.1")));
        assert!(allowed.lists_host("Hooks.Internal"));
        let bad = Allowed::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(bad.contains("10.0.0.0/33"), "{bad}");
        assert!(Allowed::parse(&["http://x".into()]).is_err());
    }

    #[tokio::test]
    async fn saving_refuses_internal_hosts_and_plain_http_unless_allowed() {
        let none = Allowed::default();
        let url = |s: &str| url::Url::parse(s).unwrap();
        for bad in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/hook",
            "https://[fe80::1]/hook",
            "https://[fd00::1]/hook",
            "https://100.64.0.1/hook",
            "https://0.0.0.0/hook",
            "https://localhost/hook",
            "http://127.0.0.1:8080/hook",
            "http://1.1.1.1/hook",
        ] {
            assert!(check(&url(bad), &none).await.is_err(), "{bad}");
        }
        let why = check(&url("https://169.254.169.254/"), &none)
            .await
            .unwrap_err();
        assert!(
            why.contains("the cloud metadata service's address"),
            "{why}"
        );
        assert!(check(&url("https://1.1.1.1/hook"), &none).await.is_ok());

        let loopback = Allowed::parse(&["127.0.0.0/8".into(), "::1".into()]).unwrap();
        assert!(
            check(&url("http://127.0.0.1:8080/hook"), &loopback)
                .await
                .is_ok()
        );
        assert!(
            check(&url("http://[::1]:8080/hook"), &loopback)
                .await
                .is_ok()
        );
        assert!(
            check(&url("http://localhost:8080/hook"), &loopback)
                .await
                .is_ok()
        );
        assert!(
            check(&url("https://10.0.0.5/hook"), &loopback)
                .await
                .is_err()
        );
        assert!(check(&url("http://1.1.1.1/hook"), &loopback).await.is_err());
    }
}
