//! Small network value types shared by every protocol: [`Interface`],
//! [`IfAddr`] (an interface address with its prefix length) and
//! [`Ipv4Prefix`].

use core::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// An interface: kernel index plus name.
///
/// The index is the identity: equality, ordering and hashing look at the
/// index only (it is what sockets, vifs and the data plane use), so two values
/// with one index and different names are the same interface, and tables keyed
/// by interface list in index order. The name is carried for logs, events and
/// `mcrctl` output and should be the one the kernel reports for that index.
/// Cloning is cheap (the name is shared).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Interface {
    /// Kernel interface index (`if_nametoindex`), never 0 for a real
    /// interface.
    pub index: u32,
    /// Interface name, e.g. `"eth0"`.
    pub name: Arc<str>,
}

impl Interface {
    /// An interface with kernel index `index` and name `name`.
    pub fn new(index: u32, name: impl Into<Arc<str>>) -> Self {
        Interface {
            index,
            name: name.into(),
        }
    }
}

impl PartialEq for Interface {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}

impl Eq for Interface {}

impl PartialOrd for Interface {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Interface {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.index.cmp(&other.index)
    }
}

impl core::hash::Hash for Interface {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.index.hash(state);
    }
}

impl fmt::Display for Interface {
    /// The name, e.g. `eth0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The error of [`Ipv4Prefix::new`] and [`IfAddr::new`]: a prefix length
/// above 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPrefixLen(pub u8);

impl fmt::Display for BadPrefixLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPv4 prefix length {} is above 32", self.0)
    }
}

impl std::error::Error for BadPrefixLen {}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

/// An IPv4 prefix (network address and length), host bits always zero.
///
/// Ordered by address then length, so a sorted list of prefixes is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Prefix {
    /// The prefix of length `len` containing `addr` (host bits are cleared,
    /// so `10.1.2.3/16` becomes `10.1.0.0/16`).
    ///
    /// # Errors
    /// [`BadPrefixLen`] if `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, BadPrefixLen> {
        if len > 32 {
            return Err(BadPrefixLen(len));
        }
        Ok(Ipv4Prefix {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        })
    }

    /// The /32 prefix of one host.
    pub fn host(addr: Ipv4Addr) -> Self {
        Ipv4Prefix { addr, len: 32 }
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length in bits, 0..=32.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length prefix `0.0.0.0/0` (matches all).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// Whether `ip` is inside this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.addr)
    }
}

impl fmt::Display for Ipv4Prefix {
    /// CIDR notation, e.g. `10.1.0.0/16`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An address configured on an interface, with its prefix length (the
/// subnet it implies is what "directly connected" means when a protocol
/// checks a sender's address, e.g. a PIM Hello or an IGMP report from off
/// the subnet is ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IfAddr {
    /// The address itself (host bits kept).
    pub address: Ipv4Addr,
    /// Prefix length in bits, 0..=32.
    pub prefix_len: u8,
}

impl IfAddr {
    /// `address/prefix_len`.
    ///
    /// # Errors
    /// [`BadPrefixLen`] if `prefix_len > 32`.
    pub fn new(address: Ipv4Addr, prefix_len: u8) -> Result<Self, BadPrefixLen> {
        if prefix_len > 32 {
            return Err(BadPrefixLen(prefix_len));
        }
        Ok(IfAddr {
            address,
            prefix_len,
        })
    }

    /// The connected subnet (address with host bits cleared).
    pub fn subnet(&self) -> Ipv4Prefix {
        Ipv4Prefix {
            addr: Ipv4Addr::from(u32::from(self.address) & mask(self.prefix_len.min(32))),
            len: self.prefix_len.min(32),
        }
    }

    /// Whether `ip` is on this address's subnet.
    pub fn on_subnet(&self, ip: Ipv4Addr) -> bool {
        self.subnet().contains(ip)
    }
}

impl fmt::Display for IfAddr {
    /// e.g. `10.1.2.3/24`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p = Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 3), 16).unwrap();
        assert_eq!(p.to_string(), "10.1.0.0/16");
        assert!(p.contains(Ipv4Addr::new(10, 1, 255, 1)));
        assert!(!p.contains(Ipv4Addr::new(10, 2, 0, 1)));
        assert_eq!(
            Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 33),
            Err(BadPrefixLen(33))
        );
        assert!(Ipv4Prefix::new(Ipv4Addr::new(1, 2, 3, 4), 0)
            .unwrap()
            .contains(Ipv4Addr::BROADCAST));
        let a = IfAddr::new(Ipv4Addr::new(192, 168, 1, 7), 24).unwrap();
        assert!(a.on_subnet(Ipv4Addr::new(192, 168, 1, 200)));
        assert!(!a.on_subnet(Ipv4Addr::new(192, 168, 2, 1)));
        assert_eq!(a.subnet().to_string(), "192.168.1.0/24");
        assert_eq!(Ipv4Prefix::host(a.address).prefix_len(), 32);
        let e = Interface::new(3, "eth0");
        assert_eq!(e, Interface::new(3, "renamed"), "identity is the index");
        assert!(e < Interface::new(4, "a"));
        assert_eq!(e.to_string(), "eth0");
    }
}
