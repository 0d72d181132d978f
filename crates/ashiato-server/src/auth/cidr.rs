//! Source-network allow-lists: `10.0.0.0/8`, `192.168.1.7`, `::1/128`.
//! An IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, what a dual-stack socket
//! reports) matches IPv4 networks.

use std::fmt;
use std::net::IpAddr;

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `ADDR/PREFIX` or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let invalid = || format!("{text:?} is not a network like 10.0.0.0/8 or an address");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
            None => max,
        };
        if prefix > max {
            return Err(invalid());
        }
        Ok(Cidr { network, prefix })
    }

    /// Whether `peer` is inside this network.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            IpAddr::V4(_) => peer,
        };
        match (self.network, peer) {
            (IpAddr::V4(network), IpAddr::V4(peer)) => {
                prefix_matches(&network.octets(), &peer.octets(), self.prefix)
            }
            (IpAddr::V6(network), IpAddr::V6(peer)) => {
                prefix_matches(&network.octets(), &peer.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.network, self.prefix)
    }
}

fn prefix_matches(network: &[u8], peer: &[u8], prefix: u8) -> bool {
    let mut remaining = u32::from(prefix);
    for (network_byte, peer_byte) in network.iter().zip(peer) {
        if remaining == 0 {
            return true;
        }
        let bits = remaining.min(8);
        let mask = (0xffu16 << (8 - bits)) as u8;
        if network_byte & mask != peer_byte & mask {
            return false;
        }
        remaining -= bits;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_contains() {
        let cases = [
            ("10.0.0.0/8", "10.200.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.0", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "127.0.0.1", false),
        ];
        for (network, peer, expected) in cases {
            let cidr = Cidr::parse(network).unwrap();
            assert_eq!(
                cidr.contains(peer.parse().unwrap()),
                expected,
                "{network} {peer}"
            );
        }
    }

    #[test]
    fn test_bad_networks() {
        for text in ["10.0.0.0/33", "example.com", "10.0.0/8", "::/129", ""] {
            assert!(Cidr::parse(text).is_err(), "{text}");
        }
    }
}
