//! The client's address and scheme, as every user of them sees them: the audit log's
//! address, the login limiter's key and the session cookie's `Secure` flag. `X-Forwarded-For`
//! and `X-Forwarded-Proto` count only when the TCP peer is one of `trusted_proxies`; from
//! anyone else they are ignored, since any client can write them.

use std::fmt;
use std::net::IpAddr;

use actix_web::{HttpRequest, web};

use crate::config::Settings;

/// A block of addresses, `10.0.0.0/8` or `::1/128`; a bare address is a block of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (raw, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("{raw:?} is not an address or ADDRESS/PREFIX"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{raw:?}: the prefix length must be 0..={max}"))?,
        };
        Ok(Self { net: net.to_canonical(), prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Where a request came from and whether it travelled over HTTPS up to Hangar or its proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOrigin {
    pub addr: Option<IpAddr>,
    pub https: bool,
}

impl ClientOrigin {
    /// The address as the audit log and the login limiter write it.
    pub fn addr_string(&self) -> Option<String> {
        self.addr.map(|a| a.to_string())
    }
}

/// The one place that decides a request's client address and scheme.
pub fn client_origin(req: &HttpRequest) -> ClientOrigin {
    let settings = req.app_data::<web::Data<Settings>>();
    let trusted = settings.map_or(&[][..], |s| s.trusted_proxies.as_slice());
    let tls = settings.is_some_and(|s| s.tls.is_some());
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    resolve(req.peer_addr().map(|a| a.ip()), tls, trusted, header("x-forwarded-for"), header("x-forwarded-proto"))
}

fn resolve(
    peer: Option<IpAddr>,
    tls: bool,
    trusted: &[Cidr],
    forwarded_for: Option<&str>,
    forwarded_proto: Option<&str>,
) -> ClientOrigin {
    let peer = peer.map(|p| p.to_canonical());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let Some(proxy) = peer.filter(|p| is_trusted(*p)) else {
        return ClientOrigin { addr: peer, https: tls };
    };
    // Each proxy appends the peer it saw, so the list is read from the right: the first
    // address that is not one of our proxies is the client; what lies left of it is the
    // client's own claim. An unparsable entry stops the walk at the last address trusted.
    let mut addr = proxy;
    for hop in forwarded_for.unwrap_or("").rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        addr = ip.to_canonical();
        if !is_trusted(addr) {
            break;
        }
    }
    let https = match forwarded_proto.and_then(|p| p.split(',').next()).map(str::trim) {
        Some(proto) => proto.eq_ignore_ascii_case("https"),
        None => tls,
    };
    ClientOrigin { addr: Some(addr), https }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("a test address")
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| Cidr::parse(c).expect("a test CIDR")).collect()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net = Cidr::parse("10.1.0.0/16").expect("valid");
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped peers match IPv4 blocks");
        assert!(Cidr::parse("0.0.0.0/0").expect("valid").contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::1").expect("valid").contains(ip("::1")));
        assert!(Cidr::parse("fd00::/8").expect("valid").contains(ip("fd12::1")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted = cidrs(&["127.0.0.1"]);
        let from_proxy = resolve(Some(ip("127.0.0.1")), false, &trusted, Some("203.0.113.7"), Some("https"));
        assert_eq!(from_proxy, ClientOrigin { addr: Some(ip("203.0.113.7")), https: true });

        let from_other = resolve(Some(ip("192.0.2.1")), false, &trusted, Some("203.0.113.7"), Some("https"));
        assert_eq!(from_other, ClientOrigin { addr: Some(ip("192.0.2.1")), https: false });

        let nobody_trusted = resolve(Some(ip("127.0.0.1")), true, &[], Some("203.0.113.7"), Some("http"));
        assert_eq!(nobody_trusted, ClientOrigin { addr: Some(ip("127.0.0.1")), https: true });
    }

    #[test]
    fn a_spoofed_left_entry_does_not_win() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // The client wrote 1.1.1.1 itself; the edge proxy appended the real 198.51.100.2.
        let origin = resolve(Some(ip("10.0.0.2")), false, &trusted, Some("1.1.1.1, 198.51.100.2, 10.0.0.5"), None);
        assert_eq!(origin.addr, Some(ip("198.51.100.2")));
        let garbage = resolve(Some(ip("10.0.0.2")), false, &trusted, Some("1.1.1.1, junk"), None);
        assert_eq!(garbage.addr, Some(ip("10.0.0.2")));
    }
}
