//! `rpf_provider: "kernel"`: the namespace's unicast FIB over rtnetlink.
//!
//! A lookup is one `RTM_GETROUTE` request for the source with
//! `RTM_F_FIB_MATCH` (the kernel does the longest-prefix match, as
//! `ip route get fibmatch S` does) answered by one
//! `RTM_NEWROUTE`: output interface (`RTA_OIF`), gateway (`RTA_GATEWAY`,
//! absent when the source is directly connected) and metric
//! (`RTA_PRIORITY`). Changes come from a second socket subscribed to
//! `RTNLGRP_IPV4_ROUTE`: each `RTM_NEWROUTE`/`RTM_DELROUTE` of the main
//! table names a prefix, which is looked up again and reported as an
//! [`RpfChange`] for that prefix; nothing polls.
//!
//! The messages are built and read here by hand, like the link monitor in
//! `interfaces.rs`: the few fixed layouts used (nlmsghdr, rtmsg, rtattr)
//! are stable kernel ABI, and parsing never trusts a length without a
//! bounds check. A crate such as `netlink-packet-route` would bring a
//! large dependency tree for four attributes.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use mcr_protocols::{Interface, Ipv4Prefix, RpfChange, RpfRoute};

use super::{Lookup, RpfNotice, RpfProvider, RpfProviderStatus, KERNEL_PREFERENCE};

const NLMSG_HDR: usize = 16;
const RTMSG_LEN: usize = 12;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 1;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;
/// `rtm_flags` bit: return the FIB entry that matched (Linux 4.13+).
const RTM_F_FIB_MATCH: u32 = 0x2000;
/// `RTMGRP_IPV4_ROUTE`: the legacy group bit of `RTNLGRP_IPV4_ROUTE` (7).
const RTMGRP_IPV4_ROUTE: u32 = 0x40;

/// A route as read from one `RTM_NEWROUTE`/`RTM_DELROUTE` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMsg {
    /// `RTM_NEWROUTE` or `RTM_DELROUTE`.
    pub kind: u16,
    /// Destination prefix.
    pub prefix: Ipv4Prefix,
    /// Routing table.
    pub table: u32,
    /// `rtm_type` (1 = unicast).
    pub route_type: u8,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Metric (`RTA_PRIORITY`).
    pub metric: u32,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Splits a datagram into `(type, payload)` messages; stops at the first
/// malformed header.
pub fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(ty)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        if len < NLMSG_HDR || at + len > buf.len() {
            break;
        }
        out.push((ty, &buf[at + NLMSG_HDR..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// Reads an IPv4 route message body (rtmsg + attributes); `None` for other
/// families or malformed bodies.
pub fn parse_route(kind: u16, body: &[u8]) -> Option<RouteMsg> {
    if body.len() < RTMSG_LEN || i32::from(body[0]) != libc::AF_INET {
        return None;
    }
    let dst_len = body[1];
    let mut r = RouteMsg {
        kind,
        prefix: Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, dst_len.min(32)).ok()?,
        table: u32::from(body[4]),
        route_type: body[7],
        oif: None,
        gateway: None,
        metric: 0,
    };
    let mut at = RTMSG_LEN;
    while let (Some(len), Some(ty)) = (u16_at(body, at), u16_at(body, at + 2)) {
        let len = usize::from(len);
        if len < 4 || at + len > body.len() {
            break;
        }
        let v = &body[at + 4..at + len];
        let v4 = || -> Option<Ipv4Addr> { Some(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?)) };
        match ty {
            RTA_DST => r.prefix = Ipv4Prefix::new(v4()?, dst_len.min(32)).ok()?,
            RTA_OIF => r.oif = u32_at(v, 0),
            RTA_GATEWAY => r.gateway = v4(),
            RTA_PRIORITY => r.metric = u32_at(v, 0).unwrap_or(0),
            RTA_TABLE => r.table = u32_at(v, 0).unwrap_or(r.table),
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Some(r)
}

/// The name of interface `index` (its number when unknown).
pub fn index_to_name(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes as if_indextoname requires; on
    // success it holds a NUL-terminated name.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return index.to_string();
    }
    // SAFETY: if_indextoname succeeded, so `buf` is NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn netlink_socket(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
    let ty = libc::SOCK_RAW | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    let fd = mcr_dataplane::socket::new_socket(libc::AF_NETLINK, ty, libc::NETLINK_ROUTE)?;
    // SAFETY: sockaddr_nl is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = groups;
    mcr_dataplane::socket::bind_sockaddr(fd.as_raw_fd(), &sa)?;
    Ok(fd)
}

/// The kernel FIB provider.
pub struct KernelRpf {
    query: OwnedFd,
    monitor: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
    error: Option<String>,
}

impl std::fmt::Debug for KernelRpf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelRpf").finish_non_exhaustive()
    }
}

impl KernelRpf {
    /// Opens the query and the monitor sockets.
    ///
    /// # Errors
    /// A netlink socket cannot be opened or bound.
    pub fn open() -> io::Result<KernelRpf> {
        let query = netlink_socket(0, false)?;
        // A lookup is answered by the kernel within the sendmsg call; the
        // timeout only guards against a kernel that never answers.
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        mcr_dataplane::socket::setsockopt(
            query.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv,
        )?;
        let monitor = netlink_socket(RTMGRP_IPV4_ROUTE, true)?;
        Ok(KernelRpf {
            query,
            monitor,
            seq: 0,
            buf: vec![0u8; 65_536],
            error: None,
        })
    }

    /// `ip route get SOURCE`: the kernel's answer.
    ///
    /// # Errors
    /// The request cannot be sent or the answer read.
    pub fn resolve(&mut self, source: Ipv4Addr) -> io::Result<Option<RpfRoute>> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = Vec::with_capacity(NLMSG_HDR + RTMSG_LEN + 8);
        req.extend_from_slice(&((NLMSG_HDR + RTMSG_LEN + 8) as u32).to_ne_bytes());
        req.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
        req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        req.extend_from_slice(&self.seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(&[libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0]);
        // RTM_F_FIB_MATCH: answer with the matching FIB entry itself (its
        // metric and prefix included), not a route cache entry.
        req.extend_from_slice(&RTM_F_FIB_MATCH.to_ne_bytes());
        req.extend_from_slice(&8u16.to_ne_bytes());
        req.extend_from_slice(&RTA_DST.to_ne_bytes());
        req.extend_from_slice(&source.octets());
        let fd = self.query.as_raw_fd();
        // SAFETY: `req` is valid for reads of its length.
        if unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::recv(fd, self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let data = &self.buf[..n as usize];
            for (ty, body) in messages(data) {
                // Skip answers to an earlier, timed-out request.
                let seq = u32_at(data, 8).unwrap_or(0);
                if seq != self.seq {
                    continue;
                }
                match ty {
                    NLMSG_ERROR => {
                        let code = u32_at(body, 0).unwrap_or(0) as i32;
                        // 0: no route answer; unreachable: no route.
                        let no_route = [0, libc::ENETUNREACH, libc::EHOSTUNREACH, libc::EINVAL];
                        return if no_route.contains(&-code) {
                            Ok(None)
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    RTM_NEWROUTE => {
                        let Some(r) = parse_route(ty, body) else {
                            return Ok(None);
                        };
                        if r.route_type != RTN_UNICAST {
                            return Ok(None);
                        }
                        return Ok(r.oif.map(|oif| RpfRoute {
                            interface: Interface::new(oif, index_to_name(oif)),
                            neighbor: r.gateway,
                            metric: r.metric,
                            preference: KERNEL_PREFERENCE,
                        }));
                    }
                    _ => {}
                }
            }
        }
    }
}

impl RpfProvider for KernelRpf {
    fn kind(&self) -> &'static str {
        "kernel"
    }

    fn lookup(&mut self, _: Instant, source: Ipv4Addr) -> Lookup {
        match self.resolve(source) {
            Ok(r) => Lookup::Answer(r),
            Err(e) => Lookup::Unavailable(format!("kernel route lookup failed: {e}")),
        }
    }

    fn poll_fd(&self) -> Option<(RawFd, i16)> {
        Some((self.monitor.as_raw_fd(), libc::POLLIN))
    }

    fn poll(&mut self, _: Instant) -> Vec<RpfNotice> {
        let mut prefixes: Vec<Ipv4Prefix> = Vec::new();
        let fd = self.monitor.as_raw_fd();
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::recv(fd, self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
            if n < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                    // Notifications were lost: everything may have changed.
                    if let Ok(all) = Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 0) {
                        prefixes.push(all);
                    }
                    continue;
                }
                break;
            }
            if n == 0 {
                break;
            }
            for (ty, body) in messages(&self.buf[..n as usize]) {
                if ty != RTM_NEWROUTE && ty != RTM_DELROUTE {
                    continue;
                }
                if let Some(r) = parse_route(ty, body) {
                    if r.table == RT_TABLE_MAIN && !prefixes.contains(&r.prefix) {
                        prefixes.push(r.prefix);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for prefix in prefixes {
            match self.resolve(prefix.addr()) {
                Ok(route) => {
                    self.error = None;
                    out.push(RpfNotice::Change(RpfChange { prefix, route }));
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    fn status(&self) -> RpfProviderStatus {
        RpfProviderStatus {
            kind: "kernel".into(),
            socket: None,
            state: "up".into(),
            error: self.error.clone(),
            connects: 0,
            cached: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_route_message_and_survives_garbage() {
        // nlmsghdr + rtmsg (AF_INET, /16, table main, unicast) + RTA_DST +
        // RTA_OIF + RTA_GATEWAY + RTA_PRIORITY.
        let mut m = Vec::new();
        let body_len = RTMSG_LEN + 8 * 4;
        m.extend_from_slice(&((NLMSG_HDR + body_len) as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[2, 16, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]);
        for (ty, v) in [
            (RTA_DST, [10, 1, 0, 0]),
            (RTA_OIF, 5u32.to_ne_bytes()),
            (RTA_GATEWAY, [10, 2, 0, 1]),
            (RTA_PRIORITY, 100u32.to_ne_bytes()),
        ] {
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(&v);
        }
        let msgs = messages(&m);
        assert_eq!(msgs.len(), 1);
        let r = parse_route(msgs[0].0, msgs[0].1).unwrap();
        assert_eq!(r.prefix.to_string(), "10.1.0.0/16");
        assert_eq!(r.oif, Some(5));
        assert_eq!(r.gateway, Some(Ipv4Addr::new(10, 2, 0, 1)));
        assert_eq!(r.metric, 100);
        assert_eq!(r.table, 254);
        for cut in 0..m.len() {
            for (ty, body) in messages(&m[..cut]) {
                let _ = parse_route(ty, body);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            for (ty, body) in messages(&b) {
                let _ = parse_route(ty, body);
            }
            let _ = parse_route(RTM_NEWROUTE, &b);
        }
    }
}
