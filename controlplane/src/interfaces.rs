//! What interfaces this namespace has right now, and a netlink monitor that
//! says when that changes.

use mcr_wire::MacAddr;
use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub const ARPHRD_ETHER: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub up: bool,
    pub addrs: Vec<Ipv4Addr>,
    /// The IPv4 addresses with their prefix lengths (the connected
    /// subnets IGMP checks senders against).
    pub nets: Vec<(Ipv4Addr, u8)>,
    pub mtu: u32,
    /// The link type (`ARPHRD_*`, the interface's `type` in sysfs): whether
    /// its frames carry an Ethernet header decides where input is read.
    pub hatype: u16,
}

impl Interface {
    /// Where the network header starts on this interface.
    pub fn link_kind(&self) -> mcr_dataplane::input::LinkKind {
        mcr_dataplane::input::LinkKind::from_arphrd(self.hatype)
    }
}

/// An interface's MTU (SIOCGIFMTU: right in any namespace, unlike /sys,
/// which shows the namespace it was mounted in); 0 if it cannot be read.
fn mtu_of(name: &str) -> u32 {
    mcr_dataplane::socket::iface_mtu(name).unwrap_or(0)
}

/// The interfaces of this network namespace, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    by_name: BTreeMap<String, Interface>,
}

impl Interfaces {
    /// Reads the current interfaces (getifaddrs).
    pub fn scan() -> io::Result<Interfaces> {
        let mut by_name: BTreeMap<String, Interface> = BTreeMap::new();
        for ifa in nix::ifaddrs::getifaddrs()? {
            let entry = by_name
                .entry(ifa.interface_name.clone())
                .or_insert_with(|| Interface {
                    name: ifa.interface_name.clone(),
                    index: 0,
                    mac: None,
                    up: false,
                    addrs: Vec::new(),
                    nets: Vec::new(),
                    mtu: 0,
                    hatype: ARPHRD_ETHER,
                });
            entry.up = ifa.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP);
            let Some(addr) = ifa.address else { continue };
            if let Some(link) = addr.as_link_addr() {
                entry.index = link.ifindex() as u32;
                entry.hatype = link.hatype();
                if let Some(mac) = link.addr() {
                    if mac != [0; 6] {
                        entry.mac = Some(MacAddr(mac));
                    }
                }
            } else if let Some(sin) = addr.as_sockaddr_in() {
                entry.addrs.push(sin.ip());
                let len = ifa
                    .netmask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in())
                    .map(|m| u32::from(m.ip()).count_ones() as u8)
                    .unwrap_or(32);
                entry.nets.push((sin.ip(), len));
            }
        }
        // Interfaces without a link-layer entry still have an index.
        for iface in by_name.values_mut() {
            iface.mtu = mtu_of(&iface.name);
            // A link without a hardware address (tun) has no AF_PACKET
            // entry to say its type.
            if let Ok(t) = mcr_dataplane::socket::iface_link_type(&iface.name) {
                iface.hatype = t;
            }
            if iface.index == 0 {
                iface.index = nix::net::if_::if_nametoindex(iface.name.as_str()).unwrap_or(0);
            }
        }
        by_name.retain(|_, i| i.index != 0);
        Ok(Interfaces { by_name })
    }

    pub fn from_list(list: Vec<Interface>) -> Interfaces {
        Interfaces {
            by_name: list.into_iter().map(|i| (i.name.clone(), i)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Interface> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Interface> {
        self.by_name.values()
    }

    /// Every MAC address of this host: frames from these are our own.
    /// Interfaces whose frames start at the network header.
    pub fn ip_links(&self) -> Vec<u32> {
        self.by_name
            .values()
            .filter(|i| i.link_kind() == mcr_dataplane::input::LinkKind::Ip)
            .map(|i| i.index)
            .collect()
    }

    pub fn local_macs(&self) -> Vec<MacAddr> {
        let mut macs: Vec<MacAddr> = self.by_name.values().filter_map(|i| i.mac).collect();
        macs.sort();
        macs.dedup();
        macs
    }
}

/// A netlink socket subscribed to link and address changes.
pub struct LinkMonitor {
    fd: OwnedFd,
}

const RTMGRP_LINK: u32 = 1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;

impl LinkMonitor {
    pub fn open() -> io::Result<LinkMonitor> {
        let fd = mcr_dataplane::socket::new_socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            libc::NETLINK_ROUTE,
        )?;
        // SAFETY: sockaddr_nl is plain old data; all-zero is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR;
        mcr_dataplane::socket::bind_sockaddr(fd.as_raw_fd(), &sa)?;
        Ok(LinkMonitor { fd })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every pending notification. Returns true if there was any (or
    /// the socket overflowed, which also means "rescan").
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut changed = false;
        loop {
            // SAFETY: buf is valid for writes of its full length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                changed = true;
                continue;
            }
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                changed = true;
                continue;
            }
            return changed;
        }
    }
}
