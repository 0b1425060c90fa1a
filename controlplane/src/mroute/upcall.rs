//! Parsing what the mroute socket reads: kernel upcalls (`struct igmpmsg`,
//! linux/mroute.h) among ordinary IGMP packets.
//!
//! An upcall overlays an IPv4 header: `im_msgtype` sits where the TTL is,
//! `im_mbz` (always 0) where the protocol is, the vif number where the
//! header checksum is, then `im_src` and `im_dst`. A real IP packet never
//! has protocol 0 on this socket (it only receives IGMP, protocol 2), so
//! `im_mbz == 0` tells the two apart. A `WHOLEPKT` upcall is followed by
//! the whole original IP packet (the kernel prepends a copy of its header).

use std::net::Ipv4Addr;

use super::sys;

/// Length of `struct igmpmsg`.
pub const IGMPMSG_LEN: usize = 20;

/// One kernel upcall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upcall<'a> {
    /// `IGMPMSG_NOCACHE`: a packet from `source` to `group` arrived on
    /// `vif` and matched no MFC entry.
    NoCache {
        /// Arrival vif.
        vif: u16,
        /// IP source.
        source: Ipv4Addr,
        /// Destination group.
        group: Ipv4Addr,
    },
    /// `IGMPMSG_WRONGVIF`: a packet of an entry arrived on `vif`, not the
    /// entry's incoming vif.
    WrongVif {
        /// Arrival vif.
        vif: u16,
        /// IP source.
        source: Ipv4Addr,
        /// Destination group.
        group: Ipv4Addr,
    },
    /// `IGMPMSG_WHOLEPKT`: a packet the MFC sent to the register vif; PIM
    /// encapsulates it in a Register (RFC 7761 section 4.4.1).
    WholePacket {
        /// IP source.
        source: Ipv4Addr,
        /// Destination group.
        group: Ipv4Addr,
        /// The original IP packet, header included.
        packet: &'a [u8],
    },
}

/// Why bytes read from the mroute socket are not an upcall we act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotUpcall {
    /// Shorter than `struct igmpmsg` (or a WHOLEPKT without its packet).
    Truncated,
    /// An ordinary IGMP packet (protocol field non-zero): drained, ignored.
    Igmp,
    /// An upcall type we do not know or did not enable (e.g. WRVIFWHOLE).
    UnknownType(u8),
}

/// Parses one datagram read from the mroute socket. Never panics.
pub fn parse(bytes: &[u8]) -> Result<Upcall<'_>, NotUpcall> {
    if bytes.len() < IGMPMSG_LEN {
        return Err(NotUpcall::Truncated);
    }
    if bytes[9] != 0 {
        return Err(NotUpcall::Igmp);
    }
    let msgtype = bytes[8];
    let vif = u16::from(bytes[10]) | (u16::from(bytes[11]) << 8);
    let ip = |o: usize| Ipv4Addr::new(bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]);
    let (source, group) = (ip(12), ip(16));
    match msgtype {
        sys::IGMPMSG_NOCACHE => Ok(Upcall::NoCache { vif, source, group }),
        sys::IGMPMSG_WRONGVIF => Ok(Upcall::WrongVif { vif, source, group }),
        sys::IGMPMSG_WHOLEPKT => {
            let packet = &bytes[IGMPMSG_LEN..];
            // The inner packet must at least hold its own IPv4 header.
            if packet.len() < 20 || packet[0] >> 4 != 4 {
                return Err(NotUpcall::Truncated);
            }
            Ok(Upcall::WholePacket {
                source,
                group,
                packet,
            })
        }
        t => Err(NotUpcall::UnknownType(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: u8, vif: u16, extra: &[u8]) -> Vec<u8> {
        let mut b = vec![0x45, 0, 0, 0, 0, 0, 0, 0, t, 0, vif as u8, (vif >> 8) as u8];
        b.extend_from_slice(&[10, 0, 0, 1, 239, 1, 2, 3]);
        b.extend_from_slice(extra);
        b
    }

    #[test]
    fn nocache_and_wrongvif() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let grp = Ipv4Addr::new(239, 1, 2, 3);
        // The kernel appends an 8-byte IGMP header to these; ignored.
        assert_eq!(
            parse(&msg(1, 3, &[1, 0, 0, 0, 0, 0, 0, 0])),
            Ok(Upcall::NoCache {
                vif: 3,
                source: src,
                group: grp
            })
        );
        assert_eq!(
            parse(&msg(2, 0x0102, &[])),
            Ok(Upcall::WrongVif {
                vif: 0x0102,
                source: src,
                group: grp
            })
        );
    }

    #[test]
    fn wholepkt_carries_the_inner_packet() {
        let inner = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 239, 1, 2, 3,
        ];
        match parse(&msg(3, 5, &inner)) {
            Ok(Upcall::WholePacket { packet, source, .. }) => {
                assert_eq!(packet, &inner[..]);
                assert_eq!(source, Ipv4Addr::new(10, 0, 0, 1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(&msg(3, 5, &inner[..10])), Err(NotUpcall::Truncated));
    }

    #[test]
    fn short_garbage_and_igmp_are_refused_without_panic() {
        assert_eq!(parse(&[]), Err(NotUpcall::Truncated));
        assert_eq!(parse(&[0; 19]), Err(NotUpcall::Truncated));
        let mut igmp = msg(1, 0, &[]);
        igmp[9] = 2; // protocol IGMP: a real report, not an upcall
        assert_eq!(parse(&igmp), Err(NotUpcall::Igmp));
        assert_eq!(parse(&msg(4, 0, &[])), Err(NotUpcall::UnknownType(4)));
        assert_eq!(parse(&msg(99, 0, &[])), Err(NotUpcall::UnknownType(99)));
        // Every prefix and every single-byte corruption of a WHOLEPKT.
        let inner = [0x45u8; 40];
        let b = msg(3, 1, &inner);
        for n in 0..=b.len() {
            let _ = parse(&b[..n]);
        }
        for i in 0..b.len() {
            for v in [0u8, 1, 2, 3, 4, 0xff] {
                let mut c = b.clone();
                c[i] = v;
                let _ = parse(&c);
            }
        }
    }
}
