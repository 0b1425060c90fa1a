//! The IGMP instance as the control thread runs it: one
//! [`mcr_protocols::igmp::Igmp`] in a [`Driver`], one `AF_PACKET` socket per
//! interface it runs on, the clock, and the [`Mrib`] its local-member state
//! goes to.
//!
//! # I/O (see `docs/architecture.md`, "IGMP sockets")
//!
//! * **Receive**: an `AF_PACKET`/`SOCK_DGRAM` socket bound to the interface
//!   and `ETH_P_IP`, with a classic BPF filter passing IP protocol 2 and
//!   rejecting `PACKET_OUTGOING` (also `PACKET_IGNORE_OUTGOING`), and
//!   `PACKET_MR_ALLMULTI` so the NIC delivers reports for every group. A raw
//!   `IPPROTO_IGMP` socket would only see IGMP for groups this host joined
//!   (or every interface's IGMP through the mroute socket, which another
//!   issue owns).
//! * **Send**: the same socket, with the IPv4 header (TTL 1, TOS 0xc0,
//!   Router Alert, RFC 2113 / RFC 3376 4) built by `mcr-wire` and the
//!   destination's multicast MAC: no routing lookup, the source address is
//!   exactly the one the election compares, and our queries are never read
//!   back. Needs only `CAP_NET_RAW`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mcr_dataplane::bpf::Insn;
use mcr_dataplane::socket::{attach_filter, new_socket, setsockopt};
use mcr_protocols::igmp::{
    Config as IgmpProtoConfig, Igmp, IgmpAction, IgmpEvent, InterfaceParams, Invalid, Message,
};
use mcr_protocols::{Action, Driver, IfAddr, Input, Interface, Mrib, Packet, Timestamp};
use mcr_wire::{igmp as wigmp, ipv4, MacAddr};

use crate::interfaces::Interfaces;

const ETH_P_IP: u16 = 0x0800;
/// Packets read per socket per loop pass: a flood on one interface cannot
/// starve the control socket (what is left is read on the next pass).
const READ_BUDGET: usize = 512;
/// Timers the driver holds at most: interfaces x (2 + groups).
const TIMER_CAPACITY: usize = 1 << 20;

/// The classic BPF program of an IGMP socket (`SOCK_DGRAM`: offsets start
/// at the IP header): reject our own frames, accept IP protocol 2.
fn igmp_filter() -> Vec<Insn> {
    let i = |code: u32, jt: u8, jf: u8, k: u32| Insn {
        code: code as u16,
        jt,
        jf,
        k,
    };
    // SKF_AD_OFF + SKF_AD_PKTTYPE
    let pkttype = (-0x1000i32 + 4) as u32;
    vec![
        i(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, pkttype),
        i(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 3, 0, 4), // OUTGOING
        i(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 9),
        i(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, 2),
        i(libc::BPF_RET | libc::BPF_K, 0, 0, 0xffff),
        i(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ]
}

/// One interface's IGMP socket.
#[derive(Debug)]
struct IgmpSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl IgmpSocket {
    fn open(ifindex: u32) -> io::Result<IgmpSocket> {
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
        let raw = fd.as_raw_fd();
        // Nothing is queued before the filter is in place.
        attach_filter(raw, &mcr_dataplane::bpf::drop_all())?;
        let _ = setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
        // Room for a burst of reports (a general query's answers, or a
        // flood) while the control thread is busy: about 10,000 small
        // frames.
        mcr_dataplane::socket::set_buffer(raw, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, 8 << 20);
        let sll = sockaddr_ll(ifindex, None);
        mcr_dataplane::socket::bind_sockaddr(raw, &sll)?;
        // SAFETY: packet_mreq is plain old data; all-zero is valid.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_ALLMULTI as u16;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        attach_filter(raw, &igmp_filter())?;
        Ok(IgmpSocket { fd, ifindex })
    }

    /// Reads one datagram: `(bytes, packet type)`, `None` when none waits.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, u8)>> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf`, `from` and `len` are live and describe buffers of
        // the sizes passed.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some((n as usize, from.sll_pkttype)))
    }

    fn send(&self, dst_mac: MacAddr, frame: &[u8]) -> io::Result<()> {
        let sll = sockaddr_ll(self.ifindex, Some(dst_mac));
        // SAFETY: `frame` and `sll` are live for the call and their sizes
        // are passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

fn sockaddr_ll(ifindex: u32, mac: Option<MacAddr>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_IP.to_be();
    sll.sll_ifindex = ifindex as i32;
    if let Some(m) = mac {
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&m.0);
    }
    sll
}

/// Parses one IPv4 datagram carrying IGMP into a protocol input, or the
/// reason it is invalid. Never panics (the `wire` views check every length).
pub fn parse_datagram(bytes: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8, bool, Message) {
    let unspec = Ipv4Addr::UNSPECIFIED;
    let bad = |why| (unspec, unspec, 0, false, Message::Invalid(why));
    let ip = match ipv4::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(mcr_wire::Error::Truncated) => return bad(Invalid::Truncated),
        Err(_) => return bad(Invalid::BadIpHeader),
    };
    let repr = match ipv4::Repr::parse(&ip) {
        Ok(r) => r,
        Err(mcr_wire::Error::Checksum) => return bad(Invalid::BadChecksum),
        Err(mcr_wire::Error::Truncated) => return bad(Invalid::Truncated),
        Err(_) => return bad(Invalid::BadIpHeader),
    };
    let (src, dst, ttl, ra) = (repr.src_addr, repr.dst_addr, repr.ttl, repr.router_alert);
    if repr.protocol != ipv4::PROTO_IGMP || ip.is_fragment() {
        return (src, dst, ttl, ra, Message::Invalid(Invalid::BadIpHeader));
    }
    let msg = match wigmp::Packet::new_checked(ip.payload()).and_then(|p| wigmp::Repr::parse(&p)) {
        Ok(r) => Message::Igmp(r),
        Err(e) => Message::Invalid(match e {
            mcr_wire::Error::Truncated => Invalid::Truncated,
            mcr_wire::Error::Checksum => Invalid::BadChecksum,
            mcr_wire::Error::BadLength => Invalid::BadLength,
            mcr_wire::Error::BadCount => Invalid::BadCount,
            mcr_wire::Error::Unrecognized => Invalid::UnknownType,
            _ => Invalid::BadLength,
        }),
    };
    (src, dst, ttl, ra, msg)
}

/// Builds the IPv4 datagram of a query: TTL 1, TOS 0xc0 (internetwork
/// control), Router Alert (RFC 2236 2, RFC 3376 4).
pub fn build_datagram(src: Ipv4Addr, dst: Ipv4Addr, msg: &wigmp::Repr) -> Vec<u8> {
    let len = msg.buffer_len();
    let mut ip = ipv4::Repr::new(src, dst, ipv4::PROTO_IGMP, 1, len);
    ip.tos = 0xc0;
    ip.dont_frag = false;
    ip.router_alert = true;
    let hl = ip.buffer_len();
    let mut buf = vec![0u8; hl + len];
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
    msg.emit(&mut wigmp::Packet::new_unchecked(&mut buf[hl..]));
    buf
}

/// Why a configured interface does not run IGMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRunning {
    /// Interface name.
    pub interface: String,
    /// For people.
    pub reason: String,
}

/// The IGMP instance with its sockets.
pub struct IgmpRunner {
    driver: Driver<Igmp>,
    epoch: Instant,
    sockets: BTreeMap<u32, IgmpSocket>,
    /// Addresses as last fed to the instance, per interface index.
    fed_addrs: BTreeMap<u32, BTreeSet<IfAddr>>,
    /// Configured interfaces that do not run, and why.
    pub not_running: Vec<NotRunning>,
    actions: Vec<IgmpAction>,
    buf: Vec<u8>,
    /// Sends that failed (socket errors), since start.
    pub send_errors: u64,
    /// (interface index, group) whose local members changed since the
    /// last [`IgmpRunner::take_member_changes`].
    member_changes: BTreeSet<(u32, Ipv4Addr)>,
}

impl Default for IgmpRunner {
    fn default() -> Self {
        IgmpRunner {
            driver: Driver::new(Igmp::new(), TIMER_CAPACITY),
            epoch: Instant::now(),
            sockets: BTreeMap::new(),
            fed_addrs: BTreeMap::new(),
            not_running: Vec::new(),
            actions: Vec::new(),
            buf: vec![0u8; 65536],
            send_errors: 0,
            member_changes: BTreeSet::new(),
        }
    }
}

/// The protocol parameters an interface gets from the config file.
pub fn params_of(c: &mcr_config::IgmpConfig) -> InterfaceParams {
    let mut p = InterfaceParams::new(
        c.version,
        c.robustness,
        Duration::from_secs(u64::from(c.query_interval)),
        Duration::from_secs(u64::from(c.query_response_interval)),
    );
    p.last_member_query_interval =
        Duration::from_millis(u64::from(c.last_member_query_interval_ms));
    p
}

impl IgmpRunner {
    /// Now, on the instance's clock.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.epoch.elapsed())
    }

    /// The instance (for `show` commands).
    pub fn protocol(&self) -> &Igmp {
        self.driver.protocol()
    }

    /// Whether an instance runs on at least one interface.
    pub fn is_running(&self) -> bool {
        self.driver.protocol().is_running()
    }

    /// The (interface index, group) pairs whose local members changed
    /// since the last call.
    pub fn take_member_changes(&mut self) -> BTreeSet<(u32, Ipv4Addr)> {
        std::mem::take(&mut self.member_changes)
    }

    /// The descriptors to poll for input.
    pub fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        for s in self.sockets.values() {
            fds.push(libc::pollfd {
                fd: s.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }

    /// How long the loop may sleep before a timer is due (`None`: no timer).
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.driver.poll_timeout(self.now())
    }

    /// Makes the instance run on exactly `wanted` (interface names with
    /// their parameters) among the interfaces that exist and are up, and
    /// feeds address changes. Returns the events to publish.
    pub fn sync(
        &mut self,
        wanted: &BTreeMap<String, InterfaceParams>,
        interfaces: &Interfaces,
        mrib: &mut Mrib,
    ) -> Vec<serde_json::Value> {
        let now = self.now();
        let mut config = IgmpProtoConfig::default();
        self.not_running.clear();
        for (name, params) in wanted {
            let reason = match interfaces.get(name) {
                None => Some("interface does not exist".to_string()),
                Some(i) if !i.up => Some("interface is down".to_string()),
                Some(i) => {
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        self.sockets.entry(i.index)
                    {
                        match IgmpSocket::open(i.index) {
                            Ok(s) => {
                                slot.insert(s);
                            }
                            Err(e) => {
                                tracing::warn!(interface = %name, error = %e, "cannot open the IGMP socket (needs CAP_NET_RAW)");
                            }
                        }
                    }
                    if self.sockets.contains_key(&i.index) {
                        config
                            .interfaces
                            .insert(Interface::new(i.index, name.as_str()), params.clone());
                        None
                    } else {
                        Some("cannot open the IGMP socket (needs CAP_NET_RAW)".to_string())
                    }
                }
            };
            if let Some(reason) = reason {
                self.not_running.push(NotRunning {
                    interface: name.clone(),
                    reason,
                });
            }
        }
        // Addresses first, so a starting interface queries from its address.
        let mut inputs = Vec::new();
        let mut seen = BTreeSet::new();
        for i in interfaces.iter() {
            seen.insert(i.index);
            let now_addrs: BTreeSet<IfAddr> = i
                .nets
                .iter()
                .filter_map(|(a, l)| IfAddr::new(*a, *l).ok())
                .collect();
            let before = self.fed_addrs.get(&i.index).cloned().unwrap_or_default();
            let ifc = Interface::new(i.index, i.name.as_str());
            for a in before.difference(&now_addrs) {
                inputs.push(Input::AddressRemoved {
                    interface: ifc.clone(),
                    address: *a,
                });
            }
            for a in now_addrs.difference(&before) {
                inputs.push(Input::AddressAdded {
                    interface: ifc.clone(),
                    address: *a,
                });
            }
            self.fed_addrs.insert(i.index, now_addrs);
        }
        let gone: Vec<u32> = self
            .fed_addrs
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        for k in gone {
            for a in self.fed_addrs.remove(&k).unwrap_or_default() {
                inputs.push(Input::AddressRemoved {
                    interface: Interface::new(k, ""),
                    address: a,
                });
            }
        }
        let mut actions = std::mem::take(&mut self.actions);
        for input in inputs {
            self.driver.feed(now, input, &mut actions);
        }
        self.driver
            .feed(now, Input::Config(config.clone()), &mut actions);
        // Sockets of interfaces that no longer run are closed.
        self.sockets
            .retain(|idx, _| config.interfaces.keys().any(|i| i.index == *idx));
        let events = self.execute(&mut actions, interfaces, mrib);
        self.actions = actions;
        events
    }

    /// Reads what the sockets hold, fires due timers and executes the
    /// actions. Returns the events to publish.
    pub fn step(&mut self, interfaces: &Interfaces, mrib: &mut Mrib) -> Vec<serde_json::Value> {
        let mut actions = std::mem::take(&mut self.actions);
        let now = self.now();
        self.driver.fire_due(now, &mut actions);
        let idxs: Vec<u32> = self.sockets.keys().copied().collect();
        for idx in idxs {
            let name = interfaces
                .iter()
                .find(|i| i.index == idx)
                .map(|i| i.name.clone())
                .unwrap_or_default();
            for _ in 0..READ_BUDGET {
                let Some(sock) = self.sockets.get(&idx) else {
                    break;
                };
                let (n, pkttype) = match sock.recv(&mut self.buf) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(ifindex = idx, error = %e, "IGMP socket read failed");
                        break;
                    }
                };
                if pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                let n = n.min(self.buf.len());
                let (source, destination, ttl, router_alert, message) =
                    parse_datagram(&self.buf[..n]);
                self.driver.feed(
                    now,
                    Input::Packet(Packet {
                        interface: Interface::new(idx, name.as_str()),
                        source,
                        destination,
                        ttl,
                        router_alert,
                        message,
                    }),
                    &mut actions,
                );
            }
        }
        let events = self.execute(&mut actions, interfaces, mrib);
        self.actions = actions;
        events
    }

    fn execute(
        &mut self,
        actions: &mut Vec<IgmpAction>,
        interfaces: &Interfaces,
        mrib: &mut Mrib,
    ) -> Vec<serde_json::Value> {
        let mut events = Vec::new();
        for a in actions.drain(..) {
            match a {
                Action::Send {
                    interface,
                    destination,
                    message: Message::Igmp(repr),
                } => {
                    let Some(sock) = self.sockets.get(&interface.index) else {
                        continue;
                    };
                    let Some(src) = interfaces
                        .iter()
                        .find(|i| i.index == interface.index)
                        .and_then(|i| i.addrs.iter().min().copied())
                    else {
                        continue;
                    };
                    let frame = build_datagram(src, destination, &repr);
                    if let Err(e) = sock.send(MacAddr::from_ipv4_multicast(destination), &frame) {
                        self.send_errors += 1;
                        tracing::debug!(interface = %interface.name, error = %e, "IGMP send failed");
                    }
                }
                Action::Send { .. } => {}
                Action::Mrib(u) => {
                    use mcr_protocols::MribUpdate as U;
                    if let U::SetLocalMembers {
                        interface, group, ..
                    }
                    | U::RemoveLocalMembers { interface, group } = &u
                    {
                        self.member_changes.insert((interface.index, *group));
                    }
                    if let Err(e) = mrib.apply(u) {
                        tracing::warn!(error = %e, "IGMP member not recorded in the MRIB");
                    }
                }
                Action::Event(e) => {
                    // Querier changes are rare and worth a log line; joins
                    // and leaves can be thousands a second (events only).
                    if e.kind == "querier-change" {
                        let p = &e.payload;
                        tracing::info!(
                            interface = %mcr_config::text::escape(&p.interface),
                            querier = ?p.querier,
                            us = ?p.us,
                            reason = ?p.reason,
                            "IGMP querier"
                        );
                    }
                    events.push(event_json(e.kind, &e.payload));
                }
                Action::Join { .. } | Action::Leave { .. } => {}
                Action::ArmTimer { .. } | Action::CancelTimer { .. } => {}
            }
        }
        events
    }

    /// Stops every interface (withdrawing members) and closes the sockets.
    pub fn shutdown(&mut self, interfaces: &Interfaces, mrib: &mut Mrib) -> Vec<serde_json::Value> {
        let mut actions = std::mem::take(&mut self.actions);
        let now = self.now();
        self.driver.feed(now, Input::Shutdown, &mut actions);
        let ev = self.execute(&mut actions, interfaces, mrib);
        self.sockets.clear();
        ev
    }
}

fn event_json(kind: &str, e: &IgmpEvent) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_else(|_| serde_json::json!({}));
    v["event"] = serde_json::json!(kind);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_datagram_round_trips() {
        let q = wigmp::Repr::QueryV3 {
            max_resp_code: 100,
            group: Ipv4Addr::UNSPECIFIED,
            s_flag: false,
            qrv: 2,
            qqic: 125,
            sources: vec![],
        };
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let b = build_datagram(src, Ipv4Addr::new(224, 0, 0, 1), &q);
        assert_eq!(b.len(), 24 + 12);
        let (s, d, ttl, ra, m) = parse_datagram(&b);
        assert_eq!((s, d, ttl, ra), (src, Ipv4Addr::new(224, 0, 0, 1), 1, true));
        assert_eq!(m, Message::Igmp(q));
    }

    #[test]
    fn every_prefix_and_corruption_parses_without_panic() {
        let q = wigmp::Repr::ReportV3 {
            records: vec![wigmp::GroupRecordRepr {
                record_type: wigmp::RecordType::ModeIsInclude,
                group: Ipv4Addr::new(239, 1, 1, 1),
                sources: vec![Ipv4Addr::new(10, 1, 1, 1)],
                aux_data: vec![],
            }],
        };
        let b = build_datagram(Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(224, 0, 0, 22), &q);
        for n in 0..b.len() {
            let _ = parse_datagram(&b[..n]);
        }
        assert_eq!(
            parse_datagram(&b[..10]).4,
            Message::Invalid(Invalid::Truncated)
        );
        let mut c = b.clone();
        let last = c.len() - 1;
        c[last] ^= 0xff;
        assert_eq!(parse_datagram(&c).4, Message::Invalid(Invalid::BadChecksum));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] = 0xff;
            let _ = parse_datagram(&c);
        }
    }
}
