//! IPv4 headers (RFC 791), options included.

use crate::{addr, be16, checksum, Error, Result};
use std::net::Ipv4Addr;

mod field {
    use crate::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options, in bytes.
pub const MIN_HEADER_LEN: usize = field::DST_ADDR.end;
/// Protocol number of IGMP.
pub const PROTO_IGMP: u8 = 2;
/// Protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// Protocol number of PIM.
pub const PROTO_PIM: u8 = 103;

/// Option type of End of Option List (RFC 791).
const OPT_END: u8 = 0;
/// Option type of No Operation (RFC 791).
const OPT_NOP: u8 = 1;
/// Option type of Router Alert (RFC 2113): copied flag + number 20.
pub const OPT_ROUTER_ALERT: u8 = 0x94;
/// The Router Alert option as IGMP senders write it (RFC 2113, value 0:
/// "router shall examine packet"), four bytes.
pub const ROUTER_ALERT: [u8; 4] = [OPT_ROUTER_ALERT, 4, 0, 0];

/// Whether `addr` can never be the source of a datagram (RFC 1122 3.2.1.3,
/// RFC 5735): "this network" 0.0.0.0/8, loopback 127.0.0.0/8, multicast
/// 224.0.0.0/4 and the limited broadcast 255.255.255.255. The kernel's own
/// input path drops these as martians.
pub fn is_martian_source(addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    o[0] == 0 || o[0] == 127 || addr.is_multicast() || addr.is_broadcast()
}

const DONT_FRAG: u16 = 0x4000;
const MORE_FRAGS: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

view! {
    /// A view over an IPv4 packet.
    ///
    /// `new_checked` guarantees the version is 4, the header length is at least
    /// 20 and fits, and the total length fits the buffer; bytes past the total
    /// length (Ethernet padding) are outside [`payload`](Self::payload).
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks, in this order: 20 bytes present ([`Error::Truncated`]),
    /// version 4 ([`Error::BadVersion`]; the meaning of every other field
    /// depends on it), header length at least 20 ([`Error::BadHeaderLen`]),
    /// total length at least the header length ([`Error::BadLength`]), and
    /// the buffer holding the total length ([`Error::Truncated`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = usize::from(self.header_len());
        if header_len < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::BadLength);
        }
        if len < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The version field (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL times 4), options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The type-of-service byte (DSCP and ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// The total length in bytes, header included.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// The Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & DONT_FRAG != 0
    }

    /// The More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & MORE_FRAGS != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// More Fragments set or a non-zero offset: this packet is a piece of a
    /// larger datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & (MORE_FRAGS | OFFSET_MASK) != 0
    }

    /// The time to live (hops).
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload (e.g. [`PROTO_UDP`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// The option bytes (between the fixed header and the header length).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..usize::from(self.header_len())]
    }

    /// Whether the header checksum verifies (RFC 791, RFC 1071).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..usize::from(self.header_len())])
    }

    /// Whether the options carry a Router Alert (RFC 2113), which IGMP
    /// messages must have (RFC 2236 2, RFC 3376 4). Malformed options are
    /// [`Error::BadOption`].
    pub fn router_alert(&self) -> Result<bool> {
        let opts = self.options();
        let mut i = 0;
        let mut found = false;
        while i < opts.len() {
            match opts[i] {
                OPT_END => break,
                OPT_NOP => i += 1,
                kind => {
                    let len = match opts.get(i + 1) {
                        Some(&l) if l >= 2 && i + usize::from(l) <= opts.len() => usize::from(l),
                        _ => return Err(Error::BadOption),
                    };
                    if kind == OPT_ROUTER_ALERT {
                        if len != 4 {
                            return Err(Error::BadOption);
                        }
                        found = true;
                    }
                    i += len;
                }
            }
        }
        Ok(found)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the header up to the total length, borrowed for the
    /// buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        &b[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version and the header length in bytes (a multiple of 4,
    /// at most 60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) & 0x0f);
    }

    /// Sets the type-of-service byte.
    #[inline]
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    /// Sets the total length in bytes.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the identification field.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the flags and the fragment offset (in bytes, a multiple of 8).
    #[inline]
    pub fn set_flags_and_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= DONT_FRAG;
        }
        if more_frags {
            v |= MORE_FRAGS;
        }
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    /// Sets the checksum field as is.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// The option bytes, writable (the header length must be set first).
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..end]
    }

    /// Computes the header checksum over the header as it stands and
    /// writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let end = usize::from(self.header_len());
        let c = checksum::checksum(&self.buffer.as_ref()[..end]);
        self.set_checksum(c);
    }

    /// The bytes after the header up to the total length, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (
            usize::from(self.header_len()),
            usize::from(self.total_len()),
        );
        &mut self.buffer.as_mut()[start..end]
    }
}

/// The meaning of an IPv4 header.
///
/// Of the options only Router Alert is kept (as a flag): it is the one the
/// protocols here send; others are checked for structure and skipped, so a
/// re-emitted packet drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Time to live (hops).
    pub ttl: u8,
    /// Type-of-service byte (DSCP and ECN; IGMP uses 0xc0, internetwork
    /// control).
    pub tos: u8,
    /// Identification field.
    pub ident: u16,
    /// Don't Fragment flag.
    pub dont_frag: bool,
    /// More Fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Whether the header carries the Router Alert option (RFC 2113).
    pub router_alert: bool,
    /// Length of the payload in bytes (total length minus header length).
    pub payload_len: usize,
}

impl Repr {
    /// The header of a plain datagram: no options, TOS 0, identification
    /// 0, Don't Fragment set (the data plane sends only what fits).
    #[inline]
    pub const fn new(
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
        protocol: u8,
        ttl: u8,
        payload_len: usize,
    ) -> Repr {
        Repr {
            src_addr,
            dst_addr,
            protocol,
            ttl,
            tos: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            router_alert: false,
            payload_len,
        }
    }

    /// Reads and validates a header: everything `check_len` checks, the
    /// header checksum ([`Error::Checksum`]) and the option structure
    /// ([`Error::BadOption`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let router_alert = packet.router_alert()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            router_alert,
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
        })
    }

    /// The header length in bytes: 20, or 24 with Router Alert.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        if self.router_alert {
            MIN_HEADER_LEN + ROUTER_ALERT.len()
        } else {
            MIN_HEADER_LEN
        }
    }

    /// Writes the header, with a valid checksum, into the first
    /// [`buffer_len`](Self::buffer_len) bytes (the payload is left alone).
    /// The total length is `buffer_len() + payload_len`, truncated to 16
    /// bits: callers keep payloads within 65515 bytes. Panics if the buffer
    /// is shorter than `buffer_len()`.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        let header_len = self.buffer_len();
        packet.set_version_and_header_len(4, header_len as u8);
        packet.set_tos(self.tos);
        packet.set_total_len((header_len + self.payload_len) as u16);
        packet.set_ident(self.ident);
        packet.set_flags_and_offset(self.dont_frag, self.more_frags, self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        if self.router_alert {
            packet.options_mut().copy_from_slice(&ROUTER_ALERT);
        }
        packet.fill_checksum();
    }
}
