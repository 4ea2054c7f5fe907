//! Egress policy: which URLs a plugin may reach and which addresses it may connect to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

/// What a plugin may reach over HTTP, from its `http` grant in the workspace file.
#[derive(Debug, Clone, Default)]
pub struct HttpGrant {
    /// Origins the plugin may send requests to.
    pub allow: Vec<HostPattern>,
    /// Which special addresses it may connect to.
    pub addresses: AddressPolicy,
    /// The largest response body it may receive.
    pub max_response: u64,
}

impl HttpGrant {
    /// The default response cap: 10 MiB.
    pub const DEFAULT_MAX_RESPONSE: u64 = 10 << 20;
}

/// A granted origin such as `https://pokeapi.co`, `https://*.example.com:8443` or
/// `http://127.0.0.1:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    text: String,
    scheme: String,
    host: HostMatch,
    /// `None` means any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// `*`: any host.
    Any,
    /// An exact host name or IP address (lower case).
    Exact(String),
    /// `*.example.com`: any subdomain, stored as `.example.com`.
    Subdomain(String),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl HostPattern {
    /// Parses `scheme://host[:port]`; `host` may be `*` or start with `*.`, `port` may be `*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "`{text}` is not a host pattern ({why}); write it like `https://api.example.com`, `https://*.example.com:8443` or `http://127.0.0.1:*`"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad(
                "only a scheme, a host and a port; no path, query or user",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal has colons inside brackets: `[::1]:8080` or `[::1]`.
            Some((h, p)) if !p.contains(']') => (h, Some(p)),
            _ => (rest, None),
        };
        let port = match port {
            None => Some(if scheme == "https" { 443 } else { 80 }),
            Some("*") => None,
            Some(p) => Some(
                p.parse()
                    .map_err(|_| bad("the port must be a number or `*`"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(bad("`*.` must be followed by a domain"));
            }
            HostMatch::Subdomain(format!(".{domain}"))
        } else if host.is_empty() || host.contains('*') {
            return Err(bad("`*` may only stand alone or start the host as `*.`"));
        } else {
            // Canonicalise through the URL parser, so `http://127.1` and `http://127.0.0.1`
            // are the same grant.
            let url =
                Url::parse(&format!("{scheme}://{host}/")).map_err(|e| bad(&e.to_string()))?;
            HostMatch::Exact(url.host_str().unwrap_or_default().to_string())
        };
        Ok(Self {
            text: text.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// Whether every origin `other` matches also matches this pattern.
    pub fn covers(&self, other: &HostPattern) -> bool {
        let port = match (self.port, other.port) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        let host = match (&self.host, &other.host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Subdomain(s), HostMatch::Exact(h)) => {
                h.ends_with(s.as_str()) && h.len() > s.len()
            }
            (HostMatch::Subdomain(s), HostMatch::Subdomain(t)) => t.ends_with(s.as_str()),
            _ => false,
        };
        self.scheme == other.scheme && port && host
    }

    /// Whether `url`'s scheme, host and port fall under this pattern.
    pub fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        if let Some(port) = self.port
            && url.port_or_known_default() != Some(port)
        {
            return false;
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => *h == host,
            HostMatch::Subdomain(suffix) => {
                host.ends_with(suffix.as_str()) && host.len() > suffix.len()
            }
        }
    }
}

/// Which special-purpose addresses a grant lets a plugin connect to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AddressPolicy {
    /// 127.0.0.0/8 and ::1.
    pub allow_loopback: bool,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7, and link-local addresses.
    pub allow_private: bool,
    /// Cloud metadata services (169.254.169.254, fd00:ec2::254).
    pub allow_metadata: bool,
}

/// What kind of special address `ip` is, if any.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Unwraps IPv4 addresses embedded in IPv6 ones (mapped `::ffff:a.b.c.d`, compatible
/// `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`), so that they are checked as the IPv4 address
/// the packets really go to.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded =
                Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            let compatible =
                s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified();
            let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            if let Some(v4) = v6.to_ipv4_mapped() {
                IpAddr::V4(v4)
            } else if compatible || nat64 {
                IpAddr::V4(embedded)
            } else {
                ip
            }
        }
        v4 => v4,
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [169, 254, 169, 254] | [100, 100, 100, 200] => "a cloud metadata address",
        [127, ..] => "a loopback address",
        [0, ..] => "an unspecified address",
        [10, ..] | [192, 168, ..] => "a private address",
        [172, b, ..] if (16..=31).contains(&b) => "a private address",
        [100, b, ..] if (64..=127).contains(&b) => "a shared (CGNAT) address",
        [169, 254, ..] => "a link-local address",
        [a, ..] if a >= 224 => "a multicast or reserved address",
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(
        if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
            "a cloud metadata address"
        } else if ip.is_loopback() {
            "a loopback address"
        } else if ip.is_unspecified() {
            "an unspecified address"
        } else if s[0] & 0xfe00 == 0xfc00 {
            "a unique-local address"
        } else if s[0] & 0xffc0 == 0xfe80 {
            "a link-local address"
        } else if s[0] & 0xff00 == 0xff00 {
            "a multicast address"
        } else {
            return None;
        },
    )
}

impl AddressPolicy {
    /// `Err` with the reason when the policy does not let a plugin connect to `ip` over HTTP.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        self.check_in(ip, "http")
    }

    /// `Err` with the reason when the policy of the plugin's `grant` (`http`, `s3`) does not let
    /// it connect to `ip`; the reason names the flag in that grant that would allow it.
    pub fn check_in(&self, ip: IpAddr, grant: &str) -> Result<(), String> {
        let Some(kind) = classify(ip) else {
            return Ok(());
        };
        let allowed = match kind {
            "a loopback address" => self.allow_loopback,
            "a cloud metadata address" => self.allow_metadata,
            "a private address"
            | "a shared (CGNAT) address"
            | "a link-local address"
            | "a unique-local address" => self.allow_private,
            _ => false,
        };
        if allowed {
            return Ok(());
        }
        let flag = match kind {
            "a loopback address" => "allow_loopback",
            "a cloud metadata address" => "allow_metadata",
            "an unspecified address"
            | "a multicast or reserved address"
            | "a multicast address" => {
                return Err(format!("{} is {kind}", canonical(ip)));
            }
            _ => "allow_private",
        };
        Err(format!(
            "{} is {kind}; set `{flag} = true` in the plugin's `{grant}` grant to allow it",
            canonical(ip)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn patterns() {
        let p = HostPattern::parse("https://*.example.com:8443").unwrap();
        assert!(p.matches(&url("https://api.example.com:8443/x")));
        assert!(!p.matches(&url("https://example.com:8443/")));
        assert!(!p.matches(&url("https://api.example.com/")));
        assert!(!p.matches(&url("http://api.example.com:8443/")));
        assert!(!p.matches(&url("https://api.example.com.evil.test:8443/")));
        let p = HostPattern::parse("https://pokeapi.co").unwrap();
        assert!(p.matches(&url("https://PokeAPI.co/api/v2")));
        assert!(!p.matches(&url("https://pokeapi.co:444/")));
        let p = HostPattern::parse("http://127.1:*").unwrap();
        assert!(p.matches(&url("http://127.0.0.1:9/")));
        assert!(
            HostPattern::parse("pokeapi.co")
                .unwrap_err()
                .contains("no scheme")
        );
        assert!(HostPattern::parse("https://a.com/path").is_err());
        assert!(HostPattern::parse("https://a*.com").is_err());
    }

    #[test]
    fn special_addresses_are_refused_by_default() {
        let p = AddressPolicy::default();
        for ip in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "10.0.0.5",
            "172.20.1.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "169.254.169.254",
            "fd00::1",
            "fe80::1",
            "0.0.0.0",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(p.check(ip).is_err(), "{ip} must be refused");
        }
        assert!(p.check("93.184.216.34".parse().unwrap()).is_ok());
        assert!(p.check("2606:2800:220:1::1".parse().unwrap()).is_ok());
        let loopback = AddressPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(loopback.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(loopback.check("10.0.0.1".parse().unwrap()).is_err());
        assert_eq!(
            p.check("::ffff:169.254.169.254".parse().unwrap())
                .unwrap_err(),
            "169.254.169.254 is a cloud metadata address; set `allow_metadata = true` in the plugin's `http` grant to allow it"
        );
    }
}
