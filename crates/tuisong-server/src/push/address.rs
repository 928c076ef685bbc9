//! Where message push may connect: a receiver's URL is parsed the WHATWG way (so
//! `2130706433`, `0x7f.1` and `127.1` are all 127.0.0.1), and every address it stands
//! for — an IP literal here, a name through [`VettingResolver`] at connect time, so the
//! connection uses exactly the addresses that were vetted — must be public unless the
//! operator allows private receivers (`push_allow_private`). Addresses that are never a
//! host (unspecified, multicast, broadcast, reserved) are refused even then.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::{Host, Url};

/// What an address is, for the purpose of sending a request to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A global unicast address.
    Public,
    /// Loopback, private, shared (CGNAT), link-local, unique-local, documentation,
    /// benchmarking and other special-purpose unicast ranges: inside some network.
    Internal,
    /// Not a host: unspecified, multicast, broadcast, reserved.
    Never,
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, bits: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

pub fn classify_v4(ip: Ipv4Addr) -> Reach {
    const NEVER: [([u8; 4], u32); 3] = [
        ([0, 0, 0, 0], 8),   // "this network", 0.0.0.0 itself
        ([224, 0, 0, 0], 4), // multicast
        ([240, 0, 0, 0], 4), // reserved, and 255.255.255.255 broadcast
    ];
    const INTERNAL: [([u8; 4], u32); 12] = [
        ([127, 0, 0, 0], 8),     // loopback
        ([10, 0, 0, 0], 8),      // private
        ([172, 16, 0, 0], 12),   // private
        ([192, 168, 0, 0], 16),  // private
        ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata (169.254.169.254)
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([198, 18, 0, 0], 15),   // benchmarking
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ];
    if NEVER.iter().any(|(n, b)| v4_in(ip, *n, *b)) {
        Reach::Never
    } else if INTERNAL.iter().any(|(n, b)| v4_in(ip, *n, *b)) {
        Reach::Internal
    } else {
        Reach::Public
    }
}

/// The stricter of two.
fn at_most(a: Reach, b: Reach) -> Reach {
    match (a, b) {
        (Reach::Never, _) | (_, Reach::Never) => Reach::Never,
        (Reach::Internal, _) | (_, Reach::Internal) => Reach::Internal,
        _ => Reach::Public,
    }
}

pub fn classify_v6(ip: Ipv6Addr) -> Reach {
    let bits = u128::from(ip);
    let low_v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if ip.is_unspecified() {
        return Reach::Never;
    }
    if ip.is_loopback() {
        return Reach::Internal;
    }
    if ip.segments()[0] & 0xff00 == 0xff00 {
        return Reach::Never; // multicast
    }
    // Forms that carry an IPv4 address: judged by it, and the deprecated or translated
    // ones never better than internal.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4); // ::ffff:a.b.c.d
    }
    if v6_in(ip, Ipv6Addr::UNSPECIFIED, 96) {
        return at_most(Reach::Internal, classify_v4(low_v4)); // ::a.b.c.d (compatible)
    }
    if v6_in(ip, Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96) {
        return at_most(Reach::Internal, classify_v4(low_v4)); // ::ffff:0:a.b.c.d (SIIT)
    }
    if v6_in(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(low_v4); // NAT64, well-known prefix
    }
    if v6_in(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        let embedded = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
        return classify_v4(embedded); // 6to4
    }
    const INTERNAL: [(Ipv6Addr, u32); 7] = [
        (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // NAT64, local use
        (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),     // discard
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),    // IETF: Teredo, benchmarking, …
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),    // documentation
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),     // unique local
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),    // link-local
    ];
    if INTERNAL.iter().any(|(n, b)| v6_in(ip, *n, *b)) {
        return Reach::Internal;
    }
    if v6_in(ip, Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10) {
        return Reach::Internal; // site-local (deprecated)
    }
    // Only 2000::/3 is global unicast; the rest is reserved.
    if v6_in(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        Reach::Public
    } else {
        Reach::Internal
    }
}

pub fn classify(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Which addresses receivers may have: public ones, and internal ones too when the
/// operator allows private receivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_private: bool,
}

impl AddressPolicy {
    pub fn permits(self, ip: IpAddr) -> bool {
        match classify(ip) {
            Reach::Public => true,
            Reach::Internal => self.allow_private,
            Reach::Never => false,
        }
    }

    /// Parses a receiver URL and vets what can be vetted before connecting: the scheme,
    /// no user name or password, and an IP-literal host (names are vetted by
    /// [`VettingResolver`] when the connection is made).
    pub fn vet_url(self, raw: &str) -> Result<Url, UrlRefusal> {
        let url = Url::parse(raw.trim()).map_err(|_| UrlRefusal::Malformed)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlRefusal::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Credentials);
        }
        let ip = match url.host() {
            None => return Err(UrlRefusal::Malformed),
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        match ip {
            Some(ip) if !self.permits(ip) => Err(UrlRefusal::Address),
            _ => Ok(url),
        }
    }
}

/// Why a receiver URL is refused before any connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlRefusal {
    Malformed,
    Scheme,
    Credentials,
    /// The host is, or resolves only to, addresses the policy does not permit.
    Address,
}

impl UrlRefusal {
    /// What the caller is told: the operator's policy, never what lies behind it.
    pub fn message(self) -> &'static str {
        match self {
            UrlRefusal::Malformed => "url must be an absolute http(s) URL with a host",
            UrlRefusal::Scheme => "url must start with http:// or https://",
            UrlRefusal::Credentials => "url must not contain a user name or password",
            UrlRefusal::Address => {
                "url is not allowed: its host is not a public address (loopback, private, \
                 link-local and other internal addresses are refused unless the operator \
                 sets push_allow_private)"
            }
        }
    }
}

/// Every address of a name was refused by the policy (or it had none).
#[derive(Debug, thiserror::Error)]
#[error("the receiver's host has no address the push policy permits")]
pub struct AddressRefused;

/// True when `AddressRefused` is somewhere in the chain of `e`.
pub fn refused_in(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<AddressRefused>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Resolves a receiver's name once and keeps only the addresses the policy permits: the
/// connection is made to those, so a name cannot be re-resolved to somewhere else
/// between the check and the request.
#[derive(Debug, Clone, Copy)]
pub struct VettingResolver(pub AddressPolicy);

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found.filter(|a| policy.permits(a.ip())).collect();
            if kept.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// A URL as it may be shown or logged: a user name or password replaced. (New configs
/// cannot have one; this covers anything stored before that rule.)
pub fn shown_url(raw: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, raw),
    };
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        None => raw.to_owned(),
        Some((_, host)) => {
            let scheme = scheme.map(|s| format!("{s}://")).unwrap_or_default();
            format!("{scheme}[redacted]@{host}{tail}")
        }
    }
}

/// A receiver URL as the log shows it: [`shown_url`] without the query and fragment,
/// where a developer's own key or token may sit.
pub fn logged_url(raw: &str) -> String {
    let shown = shown_url(raw);
    match shown.find(['?', '#']) {
        Some(at) => format!("{}?…", &shown[..at]),
        None => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_shows_no_query_and_no_userinfo() {
        assert_eq!(
            logged_url("https://u:pw@recv.example.com/wx?key=s3cret#x"),
            "https://[redacted]@recv.example.com/wx?…"
        );
        assert_eq!(
            logged_url("https://recv.example.com/wx"),
            "https://recv.example.com/wx"
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn addresses_are_classified_by_their_range() {
        for (addr, want) in [
            ("8.8.8.8", Reach::Public),
            ("1.1.1.1", Reach::Public),
            ("172.32.0.1", Reach::Public),
            ("100.128.0.1", Reach::Public),
            ("127.0.0.1", Reach::Internal),
            ("127.255.255.254", Reach::Internal),
            ("10.1.2.3", Reach::Internal),
            ("172.16.0.1", Reach::Internal),
            ("172.31.255.255", Reach::Internal),
            ("192.168.1.1", Reach::Internal),
            ("100.64.0.1", Reach::Internal),
            ("169.254.169.254", Reach::Internal),
            ("192.0.2.1", Reach::Internal),
            ("198.18.0.1", Reach::Internal),
            ("0.0.0.0", Reach::Never),
            ("0.1.2.3", Reach::Never),
            ("224.0.0.1", Reach::Never),
            ("239.255.255.250", Reach::Never),
            ("255.255.255.255", Reach::Never),
            ("240.0.0.1", Reach::Never),
            ("2606:4700:4700::1111", Reach::Public),
            ("2001:4860:4860::8888", Reach::Public),
            ("::1", Reach::Internal),
            ("::", Reach::Never),
            ("fc00::1", Reach::Internal),
            ("fd12:3456::1", Reach::Internal),
            ("fe80::1", Reach::Internal),
            ("febf::1", Reach::Internal),
            ("fec0::1", Reach::Internal),
            ("ff02::1", Reach::Never),
            ("2001:db8::1", Reach::Internal),
            ("2001::1", Reach::Internal),
            ("::ffff:127.0.0.1", Reach::Internal),
            ("::ffff:169.254.169.254", Reach::Internal),
            ("::ffff:0.0.0.0", Reach::Never),
            ("::ffff:8.8.8.8", Reach::Public),
            ("::127.0.0.1", Reach::Internal),
            ("::8.8.8.8", Reach::Internal),
            ("::ffff:0:127.0.0.1", Reach::Internal),
            ("64:ff9b::7f00:1", Reach::Internal),
            ("64:ff9b::808:808", Reach::Public),
            ("2002:7f00:1::1", Reach::Internal),
            ("2002:808:808::1", Reach::Public),
            ("4000::1", Reach::Internal),
        ] {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn the_policy_permits_internal_addresses_only_when_allowed_and_never_non_hosts() {
        let strict = AddressPolicy::default();
        let open = AddressPolicy {
            allow_private: true,
        };
        assert!(strict.permits(ip("8.8.8.8")) && open.permits(ip("8.8.8.8")));
        assert!(!strict.permits(ip("127.0.0.1")) && open.permits(ip("127.0.0.1")));
        assert!(!strict.permits(ip("::1")) && open.permits(ip("::1")));
        for never in ["0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "ff02::1"] {
            assert!(!open.permits(ip(never)), "{never}");
        }
    }

    #[test]
    fn every_spelling_of_an_internal_host_is_refused() {
        let strict = AddressPolicy::default();
        for url in [
            "http://127.0.0.1:9000/cb",
            "http://2130706433/cb",
            "http://0x7f.1/cb",
            "http://0x7f000001/cb",
            "http://127.1/cb",
            "http://0177.0.0.1/cb",
            "http://127.0.0.1./cb",
            "http://0.0.0.0:80/",
            "http://0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
            "https://192.168.0.10/",
        ] {
            assert_eq!(
                strict.vet_url(url).map(|u| u.to_string()),
                Err(UrlRefusal::Address),
                "{url}"
            );
        }
        assert!(strict.vet_url("https://example.com/wx").is_ok());
        assert!(strict.vet_url("http://8.8.8.8:8080/wx").is_ok());
        assert_eq!(
            strict.vet_url("http://user:pw@example.com/"),
            Err(UrlRefusal::Credentials)
        );
        assert_eq!(
            strict.vet_url("ftp://example.com/"),
            Err(UrlRefusal::Scheme)
        );
        assert_eq!(strict.vet_url("http://"), Err(UrlRefusal::Malformed));
        let open = AddressPolicy {
            allow_private: true,
        };
        assert!(open.vet_url("http://127.1:9000/cb").is_ok());
        assert_eq!(open.vet_url("http://0.0.0.0/"), Err(UrlRefusal::Address));
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_permitted_addresses() {
        let strict = VettingResolver(AddressPolicy::default());
        let name: Name = "localhost".parse().expect("name");
        let e = strict
            .resolve(name)
            .await
            .err()
            .expect("localhost is refused");
        assert!(refused_in(&*e), "{e}");
        let open = VettingResolver(AddressPolicy {
            allow_private: true,
        });
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = open.resolve(name).await.expect("allowed").collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn a_user_name_or_password_is_never_shown() {
        assert_eq!(
            shown_url("http://user:pw@example.com:81/wx?a=1"),
            "http://[redacted]@example.com:81/wx?a=1"
        );
        assert_eq!(shown_url("https://tok@h/"), "https://[redacted]@h/");
        assert_eq!(shown_url("https://h/wx?to=a@b"), "https://h/wx?to=a@b");
        assert_eq!(shown_url("https://h/wx"), "https://h/wx");
    }
}
