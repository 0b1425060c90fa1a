//! What counts as input: the one definition of a datagram mcr relays, used
//! by the engines for every frame they receive and mirrored by the kernel
//! fast path's program ([`crate::fastpath::program`]), which forwards only
//! frames that pass every check below and hands every other frame on to the
//! engines, where [`check`] names the reason and it is counted in
//! [`crate::Drops`]. So both paths forward the same datagrams and count the
//! same drop reasons.
//!
//! The checks, in this order (the first that fails names the reason):
//!
//! | # | check | reason |
//! |---|---|---|
//! | 1 | the frame is at most [`MAX_FRAME`] bytes on the wire | `oversize` |
//! | 2 | it carries no VLAN tag other than VLAN 0 (a priority tag), in the kernel's metadata | `vlan` |
//! | 3 | Ethernet header present (link types with one) | `truncated` |
//! | 4a | the kernel's packet type is not `PACKET_OTHERHOST`: with a group or own destination MAC that means a VLAN tag no VLAN device took (the kernel clears the tag before protocol packet sockets see the frame, and marks it so) | `vlan` |
//! | 4b | ... otherwise a foreign destination MAC (on a link without Ethernet: always this) | `not_for_host` |
//! | 5 | not sent by one of this host's interfaces | `own_frame` |
//! | 6 | EtherType IPv4; IPv4 version 4, header length >= 20, total length >= header length | `malformed` |
//! | 7 | the frame holds the IPv4 total length (bytes after it are padding and are never forwarded) | `truncated` |
//! | 8 | IPv4 header checksum verifies | `ip_checksum` |
//! | 9 | protocol UDP | `malformed` |
//! | 10 | not a fragment | `fragment` |
//! | 11 | TTL not 0 | `ttl_zero` |
//! | 12 | source not 0.0.0.0/8, 127.0.0.0/8, multicast or 255.255.255.255 | `martian_source` |
//! | 13 | UDP length >= 8 and <= the IPv4 payload | `udp_length` |
//! | 14 | UDP checksum verifies, or is 0 (none sent), or is the sender's offload seed (see [`UdpChecksum::OffloadSeed`]) | `udp_checksum` |
//!
//! A frame that passes is relayed as the UDP payload up to the UDP length;
//! nothing past it is ever copied onto an output.

use mcr_wire::{checksum, ethernet, ipv4, udp, Error as WireError, MacAddr};
use std::net::Ipv4Addr;

/// The largest frame the engines take whole (a 9000-byte MTU plus Ethernet
/// and VLAN headers); larger frames are dropped as `oversize` on both
/// paths.
pub const MAX_FRAME: usize = 9216;

/// `PACKET_OTHERHOST`: the frame's destination MAC is another host's.
pub const PACKET_OTHERHOST: u8 = 3;

/// Why a received frame is not relayed (each is a counter in
/// [`crate::Drops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    Oversize,
    Vlan,
    NotForHost,
    Truncated,
    OwnFrame,
    Malformed,
    IpChecksum,
    Fragment,
    TtlZero,
    MartianSource,
    UdpLength,
    UdpChecksum,
    NoRule,
}

impl Reject {
    /// The counter's name (a field of [`crate::Drops`]).
    pub fn name(self) -> &'static str {
        match self {
            Reject::Oversize => "oversize",
            Reject::Vlan => "vlan",
            Reject::NotForHost => "not_for_host",
            Reject::Truncated => "truncated",
            Reject::OwnFrame => "own_frame",
            Reject::Malformed => "malformed",
            Reject::IpChecksum => "ip_checksum",
            Reject::Fragment => "fragment",
            Reject::TtlZero => "ttl_zero",
            Reject::MartianSource => "martian_source",
            Reject::UdpLength => "udp_length",
            Reject::UdpChecksum => "udp_checksum",
            Reject::NoRule => "no_rule",
        }
    }
}

/// Where the network header starts on the input interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkKind {
    /// An Ethernet header (14 bytes) precedes IPv4.
    Ethernet,
    /// No link-layer header (tun, WireGuard, GRE, IPIP, SIT: `ARPHRD_NONE`
    /// and the tunnel types): the frame is the IPv4 packet.
    Ip,
}

impl LinkKind {
    /// The kind for an `ARPHRD_*` hardware type: Ethernet for Ethernet and
    /// loopback (whose frames carry a zeroed Ethernet header), no header
    /// for everything else this relay can take input from.
    pub fn from_arphrd(hatype: u16) -> LinkKind {
        match hatype {
            1 | 772 => LinkKind::Ethernet,
            _ => LinkKind::Ip,
        }
    }

    pub fn header_len(self) -> usize {
        match self {
            LinkKind::Ethernet => ethernet::HEADER_LEN,
            LinkKind::Ip => 0,
        }
    }
}

/// What the kernel says about a frame beside its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// Bytes the frame had on the wire (may exceed the bytes received).
    pub wire_len: usize,
    /// The VLAN TCI the kernel moved out of the frame, if any.
    pub vlan_tci: Option<u16>,
    /// `sll_pkttype` (`PACKET_HOST`, `PACKET_MULTICAST`, ...).
    pub pkt_type: u8,
}

/// The UDP checksum of an accepted datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpChecksum {
    /// 0: the sender computed none.
    None,
    /// A checksum that verified over the datagram (the field's value).
    Verified(u16),
    /// The field holds only the pseudo-header sum: the sender's kernel left
    /// the checksum to its device (checksum offload), so the datagram has
    /// not crossed a wire yet and carries no checksum to verify. Seen on
    /// frames from a local or virtual (veth) sender.
    OffloadSeed,
}

/// An accepted datagram: the fields the relay needs, and its payload.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    pub checksum: UdpChecksum,
    /// The UDP payload, up to the UDP length.
    pub payload: &'a [u8],
}

/// Whether a VLAN TCI names a VLAN (VLAN 0 is a priority tag only).
pub fn is_vlan(tci: u16) -> bool {
    tci & 0x0fff != 0
}

/// Judges one received frame (see the module docs for the checks and
/// their order). `is_local_mac` says whether a source MAC is one of this
/// host's.
pub fn check<'a>(
    bytes: &'a [u8],
    link: LinkKind,
    meta: Meta,
    is_local_mac: impl Fn(&MacAddr) -> bool,
) -> Result<Datagram<'a>, Reject> {
    let ip_bytes = network_bytes(bytes, link, meta, is_local_mac)?;
    let ip = ipv4::Packet::new_checked(ip_bytes).map_err(wire)?;
    let header = &ip_bytes[..usize::from(ip.header_len())];
    if !checksum::verify(header) {
        return Err(Reject::IpChecksum);
    }
    if ip.protocol() != ipv4::PROTO_UDP {
        return Err(Reject::Malformed);
    }
    if ip.is_fragment() {
        return Err(Reject::Fragment);
    }
    if ip.ttl() == 0 {
        return Err(Reject::TtlZero);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if ipv4::is_martian_source(src) {
        return Err(Reject::MartianSource);
    }
    let payload = ip.payload();
    let dgram = udp::Packet::new_checked(payload).map_err(|_| Reject::UdpLength)?;
    let checksum = if dgram.checksum() == 0 {
        UdpChecksum::None
    } else if dgram.checksum_is_offload_seed(src, dst) {
        UdpChecksum::OffloadSeed
    } else if dgram.verify_checksum(src, dst) {
        UdpChecksum::Verified(dgram.checksum())
    } else {
        return Err(Reject::UdpChecksum);
    };
    Ok(Datagram {
        src,
        dst,
        src_port: dgram.src_port(),
        dst_port: dgram.dst_port(),
        ttl: ip.ttl(),
        checksum,
        payload: dgram.payload(),
    })
}

/// A packet a route may take (see [`check_routed`]): the whole IPv4
/// packet, up to its total length, and the fields the route lookup needs.
#[derive(Debug, Clone, Copy)]
pub struct Routed<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// The IPv4 packet, header included, without link-layer padding.
    pub packet: &'a [u8],
}

/// Judges one received frame for a route (a multicast router's
/// forwarding, DESIGN.md "Relay rules and routes"): checks 1 to 8 and 12
/// of [`check`] only, so any IP protocol, port and fragment passes. The
/// TTL is the caller's to judge (a route never forwards at TTL <= 1, and
/// counts that only for packets it matches).
pub fn check_routed<'a>(
    bytes: &'a [u8],
    link: LinkKind,
    meta: Meta,
    is_local_mac: impl Fn(&MacAddr) -> bool,
) -> Result<Routed<'a>, Reject> {
    let ip_bytes = network_bytes(bytes, link, meta, is_local_mac)?;
    let ip = ipv4::Packet::new_checked(ip_bytes).map_err(wire)?;
    let header_len = usize::from(ip.header_len());
    if !checksum::verify(&ip_bytes[..header_len]) {
        return Err(Reject::IpChecksum);
    }
    let src = ip.src_addr();
    if ipv4::is_martian_source(src) {
        return Err(Reject::MartianSource);
    }
    Ok(Routed {
        src,
        dst: ip.dst_addr(),
        ttl: ip.ttl(),
        packet: &ip_bytes[..usize::from(ip.total_len())],
    })
}

/// Readies a routed packet's header for forwarding: decrements the TTL
/// of an IPv4 header whose checksum verified and updates the checksum by
/// difference (RFC 1624, eqn. 3, over the TTL/protocol word). Returns
/// false, leaving the header untouched, when the packet must not be
/// forwarded: TTL <= 1 (a router never forwards it, RFC 1812 section
/// 5.3.1), or fewer than 20 bytes.
pub fn decrement_ttl(header: &mut [u8]) -> bool {
    if header.len() < ipv4::MIN_HEADER_LEN || header[8] <= 1 {
        return false;
    }
    let ttl = header[8];
    let proto = header[9];
    let old = u64::from(u16::from_be_bytes([ttl, proto]));
    let new = u64::from(u16::from_be_bytes([ttl - 1, proto]));
    let c = u16::from_be_bytes([header[10], header[11]]);
    header[8] = ttl - 1;
    header[10..12].copy_from_slice(&checksum::adjust(c, old, new).to_be_bytes());
    true
}

/// Completes the transport checksum of a routed IPv4 packet whose sender
/// left it to checksum offload (`TP_STATUS_CSUMNOTREADY` in the frame's
/// `PACKET_AUXDATA`): the field then holds only the pseudo-header seed,
/// and a packet forwarded as is fails the receiver's check. Computes the
/// UDP (RFC 768) or TCP (RFC 793) checksum over the pseudo-header and the
/// whole segment (the packet must end where its IP total length says) and
/// writes it in place; a UDP result of 0 is sent as 0xffff (RFC 768: 0
/// means "none"). Returns false, leaving the bytes untouched, for other
/// protocols, fragments, or a header or segment too short to hold the
/// field: such a packet goes out as it came.
pub fn complete_l4_checksum(packet: &mut [u8]) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < ipv4::MIN_HEADER_LEN || packet.len() < header_len {
        return false;
    }
    // More-fragments bit or a fragment offset: the segment is not whole.
    if u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0 {
        return false;
    }
    let protocol = packet[9];
    let field = match protocol {
        ipv4::PROTO_UDP => 6,
        6 => 16, // TCP
        _ => return false,
    };
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let segment = &mut packet[header_len..];
    if segment.len() < field + 2 || segment.len() > usize::from(u16::MAX) {
        return false;
    }
    segment[field..field + 2].fill(0);
    let acc = checksum::pseudo_header(src, dst, protocol, segment.len() as u32);
    let c = match !checksum::fold(checksum::add(acc, segment)) {
        0 if protocol == ipv4::PROTO_UDP => 0xffff,
        c => c,
    };
    segment[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Checks 1 to 5 and the EtherType of [`check`]: the network-layer bytes
/// of a frame this host may take.
fn network_bytes(
    bytes: &[u8],
    link: LinkKind,
    meta: Meta,
    is_local_mac: impl Fn(&MacAddr) -> bool,
) -> Result<&[u8], Reject> {
    if meta.wire_len.max(bytes.len()) > MAX_FRAME {
        return Err(Reject::Oversize);
    }
    if meta.vlan_tci.is_some_and(is_vlan) {
        return Err(Reject::Vlan);
    }
    let ip_bytes = match link {
        LinkKind::Ethernet => {
            let frame = ethernet::Frame::new_checked(bytes).map_err(wire)?;
            if meta.pkt_type == PACKET_OTHERHOST {
                // The kernel marks a frame for this host (a group or our
                // own MAC) "other host" only when it carried a VLAN tag
                // that no VLAN device on this interface takes; it clears
                // the tag from the metadata before packet sockets of one
                // protocol see the frame, so this is how such a frame is
                // known here.
                let dst = frame.dst_addr();
                return Err(if dst.0[0] & 1 == 1 || is_local_mac(&dst) {
                    Reject::Vlan
                } else {
                    Reject::NotForHost
                });
            }
            if is_local_mac(&frame.src_addr()) {
                return Err(Reject::OwnFrame);
            }
            match frame.ethertype() {
                ethernet::ETHERTYPE_IPV4 => {}
                // A tag left in the bytes (a second tag).
                0x8100 | 0x88a8 => return Err(Reject::Vlan),
                _ => return Err(Reject::Malformed),
            }
            frame.payload()
        }
        LinkKind::Ip if meta.pkt_type == PACKET_OTHERHOST => return Err(Reject::NotForHost),
        LinkKind::Ip => bytes,
    };
    Ok(ip_bytes)
}

fn wire(e: WireError) -> Reject {
    match e {
        WireError::Truncated => Reject::Truncated,
        _ => Reject::Malformed,
    }
}

/// The addresses and ports a UDP checksum covers (besides the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

impl Datagram<'_> {
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            src: self.src,
            dst: self.dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
        }
    }
}

/// The UDP checksum of the datagram relayed with new endpoints: the
/// input's verified checksum updated by difference (RFC 1624; the payload
/// is unchanged), 0 when the input had none or when only the sender's
/// offload seed was present (the bytes never had a checksum, and a frame
/// sent by the engines gets no offload). Never a fresh checksum over bytes
/// whose own checksum failed: those were dropped by [`check`].
pub fn relayed_checksum(check: UdpChecksum, from: Endpoints, to: Endpoints) -> u16 {
    let UdpChecksum::Verified(c) = check else {
        return 0;
    };
    let old = fields(from.src, from.dst, from.src_port, from.dst_port);
    let new = fields(to.src, to.dst, to.src_port, to.dst_port);
    match checksum::adjust(c, old, new) {
        0 => 0xffff,
        c => c,
    }
}

fn fields(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u64 {
    let acc = checksum::add(0, &src.octets());
    let acc = checksum::add(acc, &dst.octets());
    acc + u64::from(sport) + u64::from(dport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);

    /// A valid Ethernet/IPv4/UDP frame with a real UDP checksum.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 42 + payload.len()];
        f[0..6].copy_from_slice(&[1, 0, 0x5e, 1, 1, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        f[12..14].copy_from_slice(&[8, 0]);
        let ip_len = 28 + payload.len();
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[8] = 5;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&SRC.octets());
        ip[16..20].copy_from_slice(&GROUP.octets());
        let c = checksum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let u = &mut ip[20..];
        u[0..2].copy_from_slice(&4321u16.to_be_bytes());
        u[2..4].copy_from_slice(&5000u16.to_be_bytes());
        u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u[8..].copy_from_slice(payload);
        let mut p = udp::Packet::new_unchecked(&mut u[..]);
        p.fill_checksum(SRC, GROUP);
        f
    }

    fn meta(f: &[u8]) -> Meta {
        Meta {
            wire_len: f.len(),
            vlan_tci: None,
            pkt_type: 2,
        }
    }

    fn judge(f: &[u8]) -> Result<Datagram<'_>, Reject> {
        check(f, LinkKind::Ethernet, meta(f), |_| false)
    }

    fn refix_ip(f: &mut [u8]) {
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }

    /// The route rewrite against fixed bytes: the Wikipedia/RFC-style
    /// example header (TTL 64, UDP, checksum 0xb861) leaves with TTL 63 and
    /// checksum 0xb961, every other byte equal; and against a full
    /// recompute for every TTL.
    #[test]
    fn ttl_decrement_updates_the_checksum_incrementally() {
        let mut h: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(checksum::verify(&h));
        assert!(decrement_ttl(&mut h));
        assert_eq!(
            h,
            [
                0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x3f, 0x11, 0xb9, 0x61, 0xc0, 0xa8,
                0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
            ]
        );
        // TTL 1 and 0: never forwarded, the header left as it was.
        for ttl in [0u8, 1] {
            let mut t = h;
            t[8] = ttl;
            let before = t;
            assert!(!decrement_ttl(&mut t));
            assert_eq!(t, before);
        }
        assert!(!decrement_ttl(&mut [0x45; 19]));
        for ttl in 2..=255u8 {
            for proto in [2u8, 6, 17, 103] {
                let mut h = [0u8; 24];
                h[0] = 0x46;
                h[2..4].copy_from_slice(&24u16.to_be_bytes());
                h[8] = ttl;
                h[9] = proto;
                h[12..16].copy_from_slice(&[10, 0, ttl, 1]);
                h[16..20].copy_from_slice(&[239, 1, 2, proto]);
                h[20..24].copy_from_slice(&[0x94, 4, 0, 0]);
                let c = checksum::checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                let mut want = h;
                want[8] = ttl - 1;
                want[10..12].copy_from_slice(&[0, 0]);
                let c = checksum::checksum(&want);
                want[10..12].copy_from_slice(&c.to_be_bytes());
                assert!(decrement_ttl(&mut h));
                assert!(checksum::verify(&h), "ttl {ttl} proto {proto}");
                assert_eq!(h[8], ttl - 1);
                assert_eq!(h[..10], want[..10]);
                assert_eq!(h[12..], want[12..]);
            }
        }
    }

    /// A routed IPv4 packet: 20-byte header (checksum set) + `segment`.
    fn routed_packet(protocol: u8, segment: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(20 + segment.len() as u16).to_be_bytes());
        p[8] = 63;
        p[9] = protocol;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[239, 1, 1, 1]);
        let c = checksum::checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(segment);
        p
    }

    /// A sender's offload seed (pseudo-header sum only) becomes the real
    /// checksum, on fixed bytes: UDP 10.0.0.1:5000 -> 239.1.1.1:6000
    /// "hello" (seed 0xfa21, checksum 0x9706) and a TCP SYN 1234 -> 80
    /// (seed 0xfa1d, checksum 0xb0bc); every other byte unchanged.
    #[test]
    fn offload_seed_is_completed_to_the_real_checksum() {
        let udp_seg = [
            0x13, 0x88, 0x17, 0x70, 0x00, 0x0d, 0xfa, 0x21, b'h', b'e', b'l', b'l', b'o',
        ];
        let mut p = routed_packet(17, &udp_seg);
        let before = p.clone();
        assert!(complete_l4_checksum(&mut p));
        assert_eq!(p[26..28], [0x97, 0x06]);
        assert_eq!(p[..26], before[..26]);
        assert_eq!(p[28..], before[28..]);
        let dgram = udp::Packet::new_checked(&p[20..]).unwrap();
        assert!(dgram.verify_checksum(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(239, 1, 1, 1)));

        let mut tcp_seg = [0u8; 20];
        tcp_seg[..4].copy_from_slice(&[0x04, 0xd2, 0x00, 0x50]);
        tcp_seg[4..8].copy_from_slice(&1u32.to_be_bytes());
        tcp_seg[12] = 0x50;
        tcp_seg[13] = 0x02;
        tcp_seg[14..16].copy_from_slice(&[0xff, 0xff]);
        tcp_seg[16..18].copy_from_slice(&[0xfa, 0x1d]);
        let mut p = routed_packet(6, &tcp_seg);
        assert!(complete_l4_checksum(&mut p));
        assert_eq!(p[36..38], [0xb0, 0xbc]);
        let acc = checksum::pseudo_header(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(239, 1, 1, 1),
            6,
            20,
        );
        assert_eq!(checksum::fold(checksum::add(acc, &p[20..])), 0xffff);

        // A UDP sum of all ones would give checksum 0 ("none"): 0xffff.
        let mut seg = vec![0x13, 0x88, 0x17, 0x70, 0x00, 0x0a, 0, 0, 0, 0];
        let acc = checksum::pseudo_header(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(239, 1, 1, 1),
            17,
            10,
        );
        let word = !checksum::fold(checksum::add(acc, &seg));
        seg[8..10].copy_from_slice(&word.to_be_bytes());
        let mut p = routed_packet(17, &seg);
        assert!(complete_l4_checksum(&mut p));
        assert_eq!(p[26..28], [0xff, 0xff]);

        // Other protocols, fragments and short segments are left alone.
        for mut p in [
            routed_packet(2, &[0x16, 0, 0xfa, 0x04, 239, 1, 1, 1]),
            routed_packet(17, &udp_seg[..7]),
            {
                let mut f = routed_packet(17, &udp_seg);
                f[6] = 0x20; // more fragments
                f
            },
            vec![0x45; 19],
            vec![],
        ] {
            let before = p.clone();
            assert!(!complete_l4_checksum(&mut p));
            assert_eq!(p, before);
        }
    }

    /// A route takes any protocol and fragments; its packet ends at the IP
    /// total length (padding is never forwarded).
    #[test]
    fn routed_packets_of_any_protocol_pass_whole() {
        let mut f = frame(b"abcd");
        f.extend_from_slice(&[0, 0, 0]); // link-layer padding
        f[14 + 9] = 6; // TCP: not a relay's datagram
        f[14 + 6] = 0x20; // more fragments
        f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&f[14..34]);
        f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        let meta = Meta {
            wire_len: f.len(),
            ..Meta::default()
        };
        assert!(check(&f, LinkKind::Ethernet, meta, |_| false).is_err());
        let r = check_routed(&f, LinkKind::Ethernet, meta, |_| false).unwrap();
        assert_eq!((r.src, r.dst, r.ttl), (SRC, GROUP, 5));
        assert_eq!(r.packet, &f[14..f.len() - 3]);
        // Own frames and bad header checksums are still refused.
        assert!(matches!(
            check_routed(&f, LinkKind::Ethernet, meta, |_| true),
            Err(Reject::OwnFrame)
        ));
        f[14 + 11] ^= 1;
        assert!(matches!(
            check_routed(&f, LinkKind::Ethernet, meta, |_| false),
            Err(Reject::IpChecksum)
        ));
    }

    #[test]
    fn a_valid_frame_passes_and_padding_is_not_payload() {
        let mut f = frame(b"hello");
        f.extend_from_slice(&[0xee; 20]);
        let d = judge(&f).unwrap();
        assert_eq!(d.payload, b"hello");
        assert!(matches!(d.checksum, UdpChecksum::Verified(_)));
    }

    #[test]
    fn each_fault_has_its_reason() {
        let base = frame(b"payload!");
        let case = |name: &str, f: Vec<u8>, want: Reject| {
            assert_eq!(judge(&f).err(), Some(want), "{name}");
        };
        let mut f = base.clone();
        f[44] ^= 0xff;
        case("payload corrupted", f, Reject::UdpChecksum);
        let mut f = base.clone();
        f[26] ^= 1;
        case("IPv4 header checksum", f, Reject::IpChecksum);
        let mut f = base.clone();
        f[22] = 0;
        refix_ip(&mut f);
        case("TTL 0", f, Reject::TtlZero);
        for src in [
            [255, 255, 255, 255],
            [127, 0, 0, 1],
            [0, 1, 2, 3],
            [224, 0, 0, 5],
        ] {
            let mut f = base.clone();
            f[26..30].copy_from_slice(&src);
            refix_ip(&mut f);
            case("martian", f, Reject::MartianSource);
        }
        for len in [0u16, 7, 17] {
            let mut f = base.clone();
            f[38..40].copy_from_slice(&len.to_be_bytes());
            case("UDP length", f, Reject::UdpLength);
        }
        let mut f = base.clone();
        f.truncate(40);
        case("truncated", f, Reject::Truncated);
        let mut f = base.clone();
        f[14] = 0x44;
        case("IHL 4", f, Reject::Malformed);
        let mut f = base.clone();
        f[20] = 0x20;
        refix_ip(&mut f);
        case("fragment", f, Reject::Fragment);
        let mut f = base.clone();
        f[23] = 6;
        refix_ip(&mut f);
        case("not UDP", f, Reject::Malformed);
        let f = base.clone();
        let mut m = meta(&f);
        m.vlan_tci = Some(10);
        assert_eq!(
            check(&f, LinkKind::Ethernet, m, |_| false).err(),
            Some(Reject::Vlan)
        );
        m.vlan_tci = Some(0x6000);
        assert!(check(&f, LinkKind::Ethernet, m, |_| false).is_ok());
        m.vlan_tci = None;
        m.pkt_type = PACKET_OTHERHOST;
        // To a group MAC: only a VLAN tag makes that "other host".
        assert_eq!(
            check(&f, LinkKind::Ethernet, m, |_| false).err(),
            Some(Reject::Vlan)
        );
        let mut foreign = f.clone();
        foreign[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
        assert_eq!(
            check(&foreign, LinkKind::Ethernet, m, |_| false).err(),
            Some(Reject::NotForHost)
        );
        m.pkt_type = 2;
        m.wire_len = MAX_FRAME + 1;
        assert_eq!(
            check(&f, LinkKind::Ethernet, m, |_| false).err(),
            Some(Reject::Oversize)
        );
        assert_eq!(
            check(&f, LinkKind::Ethernet, meta(&f), |_| true).err(),
            Some(Reject::OwnFrame)
        );
        // At the network header, an L3 link reads the same packet.
        let d = check(&base[14..], LinkKind::Ip, meta(&base[14..]), |_| true).unwrap();
        assert_eq!(d.payload, b"payload!");
    }

    #[test]
    fn offload_seed_and_zero_are_accepted() {
        let mut f = frame(b"abc");
        f[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(judge(&f).unwrap().checksum, UdpChecksum::None);
        let seed = checksum::fold(checksum::pseudo_header(SRC, GROUP, 17, 11));
        f[40..42].copy_from_slice(&seed.to_be_bytes());
        assert_eq!(judge(&f).unwrap().checksum, UdpChecksum::OffloadSeed);
    }

    #[test]
    fn relayed_checksum_is_right_for_the_new_header() {
        let f = frame(b"relay me, please");
        let d = judge(&f).unwrap();
        let out = SocketAddrV4::new(Ipv4Addr::new(239, 9, 9, 9), 6000);
        let src = Ipv4Addr::new(10, 78, 0, 1);
        let to = Endpoints {
            src,
            dst: *out.ip(),
            src_port: d.src_port,
            dst_port: out.port(),
        };
        let c = relayed_checksum(d.checksum, d.endpoints(), to);
        let mut u = f[34..].to_vec();
        u[2..4].copy_from_slice(&6000u16.to_be_bytes());
        u[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(udp::Packet::new_checked(&u[..])
            .unwrap()
            .verify_checksum(src, *out.ip()));
    }
}
